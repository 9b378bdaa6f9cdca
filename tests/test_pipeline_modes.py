"""compress/open/CLI with the temporal model (the store and codec are tested in test_temporal)."""

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
    np.testing.assert_array_equal(arr[:, 16:, :16].values, arr.values[:, 16:, :16])
