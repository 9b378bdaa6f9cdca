"""compress/open/info/CLI with the temporal model and the neural (INR) mode (their stores are
tested in test_temporal and test_inr): the same surface as the chunked modes."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

import bigcomp
from bigcomp.cli import app
from bigcomp.datasets import diffraction_series

PHOTON_COUNTING = {"gain": 1.0, "offset": 0.0, "read_noise": 0.0}


def test_compress_open_temporal(tmp_path):
    syn = diffraction_series((6, 64, 64), seed=3)
    res = bigcomp.compress(syn.data, tmp_path / "t.zarr", mode="temporal", q=1.0,
                           camera=PHOTON_COUNTING, noise="camera", dims=("t", "y", "x"),
                           progress=False)
    assert res.ratio > 1.5
    arr = bigcomp.open(res.path)
    assert arr.dims == ("t", "y", "x")
    assert arr.attrs["bigcomp"]["mode"] == "temporal"
    back = arr.values
    assert back.dtype == syn.data.dtype
    # photon counting: s >= 1 count, so every pixel is within q/2·s + 0.5 of the original
    s = np.maximum(np.sqrt(np.median(syn.data, axis=0)), 1.0)
    assert np.all(np.abs(back.astype(float) - syn.data) <= 0.5 * s * 1.04 + 0.5)
    np.testing.assert_array_equal(arr[2:4, 10:20].values, back[2:4, 10:20])
    assert arr.bigcomp.compressed_size() == res.stored_bytes
    assert arr.bigcomp.ratio() == res.ratio


def test_temporal_rejects_unknown_option(tmp_path):
    import pytest

    with pytest.raises(bigcomp.ParameterError, match="unknown options"):
        bigcomp.compress(np.zeros((4, 8, 8), "uint16"), tmp_path / "x.zarr", mode="wnl",
                         threshold=3.0, camera=PHOTON_COUNTING, progress=False)


def test_cli_temporal(tmp_path):
    import tifffile

    syn = diffraction_series((5, 48, 48), seed=4)
    tifffile.imwrite(tmp_path / "in.tif", syn.data)
    result = CliRunner().invoke(app, [
        "compress", str(tmp_path / "in.tif"), str(tmp_path / "out.zarr"), "--temporal",
        "--noise", "camera", "--gain", "1", "--offset", "0", "--read-noise", "0",
        "--scheduler", "threads", "--no-progress", "--dims", "tyx",
    ])
    assert result.exit_code == 0, result.output
    assert bigcomp.open(tmp_path / "out.zarr").shape == syn.data.shape
    info = CliRunner().invoke(app, ["info", str(tmp_path / "out.zarr")])
    assert info.exit_code == 0, info.output
    assert "temporal q=1σ" in info.output
    assert bigcomp.__version__ in info.output  # the version that wrote the store
    assert "kept exactly" in info.output
    ratio = bigcomp.open(tmp_path / "out.zarr").bigcomp.ratio()
    assert f"{ratio:.2f}x" in info.output


def test_compress_open_inr(tmp_path):
    import pytest

    pytest.importorskip("torch")
    from bigcomp.datasets import light_sheet

    syn = light_sheet((8, 32, 32), seed=5)
    res = bigcomp.compress(syn.data, tmp_path / "i.zarr", mode="inr", camera={
        "gain": syn.gain, "offset": syn.offset, "read_noise": syn.read_noise},
        tile=(8, 16, 16), steps=20, width=8, progress=False)
    assert res.ratio > 1
    arr = bigcomp.open(res.path)
    assert arr.attrs["bigcomp"]["mode"] == "inr"
    assert arr.shape == syn.data.shape
    assert arr.dims == ("z", "y", "x")
    np.testing.assert_array_equal(arr[:, 16:, :16].values, arr.values[:, 16:, :16])
    assert arr.bigcomp.compressed_size() == res.stored_bytes  # every stored byte
    assert arr.bigcomp.ratio() == res.ratio


def test_cli_inr(tmp_path):
    import pytest

    pytest.importorskip("torch")
    import tifffile

    from bigcomp.datasets import light_sheet

    syn = light_sheet((8, 64, 64), seed=5)
    tifffile.imwrite(tmp_path / "in.tif", syn.data)
    cam = ["--gain", syn.gain, "--offset", syn.offset, "--read-noise", syn.read_noise]
    result = CliRunner().invoke(app, [str(a) for a in [
        "compress", tmp_path / "in.tif", tmp_path / "i.zarr", "--inr", "--target-ratio", 30,
        "--steps", 20, "--no-progress", *cam]])
    assert result.exit_code == 0, result.output
    assert "not noise-exact" in result.output
    arr = bigcomp.open(tmp_path / "i.zarr")
    assert arr.attrs["bigcomp"]["training"]["target_ratio"] == 30
    assert arr.bigcomp.ratio() > 20
    info = CliRunner().invoke(app, ["info", str(tmp_path / "i.zarr")])
    assert info.exit_code == 0, info.output
    assert "inr (neural, not noise-exact)" in info.output
    assert "target ratio 30" in info.output
    assert bigcomp.__version__ in info.output
    for bad, message in ([["--target-ratio", "20"], "options of --inr"],
                         [["--inr", "--lossless"], "choose one of"]):
        res = CliRunner().invoke(app, [str(a) for a in [
            "compress", tmp_path / "in.tif", tmp_path / "x.zarr", *bad, *cam]])
        assert res.exit_code == 2
        assert message in res.output


def test_cli_inr_grid(tmp_path):
    import pytest

    pytest.importorskip("torch")
    import tifffile

    from bigcomp.datasets import light_sheet

    syn = light_sheet((8, 64, 96), seed=5)
    tifffile.imwrite(tmp_path / "in.tif", syn.data)
    cam = ["--gain", syn.gain, "--offset", syn.offset, "--read-noise", syn.read_noise]
    result = CliRunner().invoke(app, [str(a) for a in [
        "compress", tmp_path / "in.tif", tmp_path / "g.zarr", "--inr", "--inr-model", "grid",
        "--target-ratio", 25, "--steps", 40, "--no-progress", *cam]])
    assert result.exit_code == 0, result.output
    arr = bigcomp.open(tmp_path / "g.zarr")
    meta = arr.attrs["bigcomp"]
    assert meta["model"] == "grid"
    assert meta["training"]["steps"] == 40
    assert arr.shape == syn.data.shape
    assert arr.bigcomp.ratio() > 10
    info = CliRunner().invoke(app, ["info", str(tmp_path / "g.zarr")])
    assert info.exit_code == 0, info.output
    assert "inr grid" in info.output
    assert "decoder 2x24" in info.output
    for bad, message in ([["--inr-model", "grid"], "options of --inr"],
                         [["--inr", "--inr-model", "mlp"], "must be 'siren' or 'grid'"],
                         [["--inr", "--inr-model", "grid", "--target-psnr", "40"],
                          "not --target-psnr"]):
        res = CliRunner().invoke(app, [str(a) for a in [
            "compress", tmp_path / "in.tif", tmp_path / "x.zarr", *bad, *cam]])
        assert res.exit_code == 2, res.output
        assert message in res.output
