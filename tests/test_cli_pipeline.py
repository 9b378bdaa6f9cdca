"""``bigcomp compress | decompress | info | estimate-noise``."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

import bigcomp
from bigcomp.cli import app
from bigcomp.datasets import light_sheet

tifffile = pytest.importorskip("tifffile")

SYN = light_sheet((6, 96, 96), seed=5)
FAST = ["--scheduler", "synchronous", "--no-progress", "--chunks", "4,64,64"]


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def tif(tmp_path):
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, SYN.data, metadata={"axes": "ZYX"}, photometric="minisblack")
    return path


def test_help_lists_commands():
    out = run("--help").output
    for cmd in ("compress", "decompress", "info", "estimate-noise", "demo", "version"):
        assert cmd in out
    assert "--read-noise" in run("compress", "--help").output


def test_compress_info_decompress(tmp_path, tif):
    out = tmp_path / "out.zarr"
    res = run("compress", tif, out, "--q", 1, "--gain", SYN.gain, "--offset", SYN.offset,
              "--read-noise", SYN.read_noise, *FAST)
    assert res.exit_code == 0, res.output
    assert "8 chunks written" in res.output
    assert "camera (given)" in res.output
    info = run("info", out)
    assert info.exit_code == 0, info.output
    assert "wnl q=1σ" in info.output
    assert "ratio" in info.output
    assert "4,64,64" in info.output
    res = run("decompress", out, tmp_path / "region.tif", "--region", "1:3,:,10:20",
              "--no-progress")
    assert res.exit_code == 0, res.output
    region = tifffile.imread(tmp_path / "region.tif")
    np.testing.assert_array_equal(region, bigcomp.open(out).values[1:3, :, 10:20])
    res = run("decompress", out, tmp_path / "all.zarr", "--no-progress")
    assert res.exit_code == 0, res.output
    xr = pytest.importorskip("xarray")
    full = xr.open_zarr(tmp_path / "all.zarr")["0"]  # an OME-Zarr: the store's array path
    np.testing.assert_array_equal(full.values, bigcomp.open(out).values)
    # same job again: resumes (nothing to do); another q: refused without --overwrite
    again = run("compress", tif, out, "--q", 1, "--gain", SYN.gain, "--offset", SYN.offset,
                "--read-noise", SYN.read_noise, *FAST)
    assert "0 chunks written, 8 already done" in again.output
    other = run("compress", tif, out, "--q", 2, *FAST)
    assert other.exit_code == 1
    assert "--overwrite" in other.output


def test_lossless_and_estimate_noise(tmp_path, tif):
    res = run("compress", tif, tmp_path / "l.zarr", "--lossless", "--coder", "fast", *FAST)
    assert res.exit_code == 0, res.output
    np.testing.assert_array_equal(bigcomp.open(tmp_path / "l.zarr").values, SYN.data)
    res = run("estimate-noise", tif)
    assert res.exit_code == 0, res.output
    assert "--gain" in res.output
    assert "--read-noise" in res.output
    assert "±" in res.output  # the estimate's uncertainty, and the model compress would use
    assert "conservative" in res.output


def test_errors(tmp_path, tif):
    res = run("compress", tmp_path / "missing.tif", tmp_path / "o.zarr", *FAST)
    assert res.exit_code == 1
    assert "no such file" in res.output
    (tmp_path / "x.csv").write_text("1,2")
    res = run("compress", tmp_path / "x.csv", tmp_path / "o.zarr", *FAST)
    assert res.exit_code == 1
    assert "unknown file format" in res.output
    res = run("info", tmp_path)
    assert res.exit_code == 1
    assert "not a bigcomp store" in res.output
    run("compress", tif, tmp_path / "l.zarr", "--lossless", *FAST)
    res = run("decompress", tmp_path / "l.zarr", tmp_path / "o.png")
    assert res.exit_code == 1
    assert ".tif" in res.output
    res = run("decompress", tmp_path / "l.zarr", tmp_path / "o.tif", "--region", "a:b")
    assert res.exit_code != 0
    assert "region" in res.output
