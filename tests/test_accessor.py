"""The ``DataArray.bigcomp`` accessor (registered by ``import bigcomp``)."""

from __future__ import annotations

import numpy as np
import pytest

import bigcomp
from bigcomp.datasets import light_sheet

xr = pytest.importorskip("xarray")

SYN = light_sheet((8, 128, 128), seed=4)
CAM = bigcomp.CameraModel(SYN.gain, SYN.offset, SYN.read_noise)


def _array():
    return xr.DataArray(SYN.data, dims=("z", "y", "x"), name="cells",
                        coords={"z": np.arange(8) * 0.5}, attrs={"note": "synthetic"})


def test_compress_open_ratio(tmp_path):
    res = _array().bigcomp.compress(tmp_path / "a.zarr", q=1.0, camera=CAM, chunks=(4, 64, 64),
                                    progress=False, scheduler="synchronous")
    back = bigcomp.open(tmp_path / "a.zarr")
    assert back.name == "cells"
    assert back.attrs["note"] == "synthetic"
    assert back.bigcomp.compressed_size() == res.stored_bytes
    assert back.bigcomp.ratio() == pytest.approx(res.ratio)
    assert back.bigcomp.ratio() > 2


def test_estimate_noise():
    with pytest.warns(bigcomp.PoorFitWarning, match="poorly determined"):  # no dark region
        cam = _array().bigcomp.estimate_noise(chunks=(8, 128, 128))
    assert cam.gain == pytest.approx(SYN.gain, rel=0.2)


def test_size_needs_an_opened_array(tmp_path):
    with pytest.raises(bigcomp.BigcompError, match=r"bigcomp.open"):
        _array().bigcomp.ratio()
    _array().bigcomp.compress(tmp_path / "a.zarr", mode="lossless", progress=False)
    with pytest.raises(bigcomp.BigcompError, match="whole stored array"):
        bigcomp.open(tmp_path / "a.zarr").isel(z=slice(0, 2)).bigcomp.compressed_size()
