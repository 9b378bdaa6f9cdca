"""INR mode: true ratio, region decode, deterministic decode, clear errors (tiny CPU runs)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bigcomp.datasets import light_sheet
from bigcomp.errors import ParameterError, UnsupportedDataError
from bigcomp.inr import bitstream as B
from bigcomp.inr import compress_inr, inr_info, open_inr
from bigcomp.noise import CameraModel

FAST = {"steps": 40, "batch": 256}


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def stack():
    s = light_sheet((6, 48, 40), seed=3)
    data = s.data.copy()
    data[:, :, :16] = np.random.default_rng(0).poisson(4, (6, 48, 16)) * 2 + 100  # flat region
    return data, CameraModel(s.gain, s.offset, s.read_noise)


@pytest.fixture(scope="module")
def store(stack, tmp_path_factory):
    torch.set_num_threads(1)
    data, cam = stack
    path = str(tmp_path_factory.mktemp("inr") / "s.zarr")
    compress_inr(data, path, camera=cam, tile=(3, 16, 16), width=12, **FAST)
    return path


def test_ratio_counts_every_stored_byte(stack, store):
    data, _ = stack
    info = inr_info(store)
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(store) for f in fs)
    assert info["stored_bytes"] == total
    assert info["raw_bytes"] == data.nbytes
    assert info["ratio"] == pytest.approx(data.nbytes / total)
    assert set(info["breakdown"]) == {"zarr.json", "tiles", "shared", "residuals", "packs"}
    assert info["n_tiles"] == 2 * 3 * 3
    assert 0 < info["n_empty"] < info["n_tiles"]  # the flat left strip is stored as means


def test_region_decode_equals_full_decode(store):
    arr = open_inr(store)
    full = arr.compute()
    assert full.shape == (6, 48, 40)
    assert full.dtype == np.uint16
    region = arr[1:5, 10:37, 5:33]
    np.testing.assert_array_equal(region.compute(), full[1:5, 10:37, 5:33])
    one = arr[3:5, 17:30, 20:31]  # inside a single tile
    decodes = [k for k in one.__dask_optimize__(one.__dask_graph__(), one.__dask_keys__())
               if isinstance(k, tuple) and str(k[0]).startswith("bigcomp-inr")]
    assert len(decodes) == 1
    np.testing.assert_array_equal(one.compute(), full[3:5, 17:30, 20:31])


def test_decode_is_deterministic_and_faithful(stack, store):
    data, _ = stack
    a = open_inr(store).compute()
    b = open_inr(store).compute()
    np.testing.assert_array_equal(a, b)
    info = inr_info(store)
    table = np.asarray(__import__("zarr").open_array(store + "/tiles")[...])
    for i in np.flatnonzero(table[:, 1] == 0):  # empty tiles decode to their rounded mean
        idx = np.unravel_index(i, (2, 3, 3))
        blk = a[idx[0] * 3:(idx[0] + 1) * 3, idx[1] * 16:(idx[1] + 1) * 16,
                idx[2] * 16:(idx[2] + 1) * 16]
        assert (blk == np.uint16(round(float(table[i, 0])))).all()
    assert info["n_empty"] > 0
    err = np.abs(a.astype(float) - data.astype(float))
    assert err.mean() < data.std()  # a (crude) fit, not noise


def test_target_ratio_is_met(tmp_path):
    data = light_sheet((8, 64, 64), seed=1).data
    path = compress_inr(data, tmp_path / "r.zarr", target_ratio=6, tile=(8, 32, 32), **FAST)
    info = inr_info(path)
    assert info["ratio"] >= 6
    assert info["width"] >= 4


def test_float_data_and_2d(tmp_path):
    y, x = np.mgrid[0:40, 0:36]
    data = (np.sin(x / 5.0) * np.cos(y / 7.0) * 50).astype(np.float32)
    path = compress_inr(data, tmp_path / "f.zarr", tile=(20, 18), width=8, **FAST)
    out = open_inr(path).compute()
    assert out.dtype == np.float32
    assert out.shape == data.shape
    assert np.isfinite(out).all()


def test_bitstream_roundtrip():
    rng = np.random.default_rng(0)
    shapes = B.layer_shapes(2, 6)
    p = B.nparams(2, 6)
    resid = rng.normal(0, 0.01, (5, p)).astype(np.float32)
    maxabs = np.stack([np.abs(resid[:, a:b]).max(1) for a, b in
                       zip(np.cumsum([0] + [math.prod(s) for s in shapes])[:-1],
                           np.cumsum([math.prod(s) for s in shapes]), strict=True)], 1)
    codes = B.step_codes(maxabs, 8)
    q = B.quantise(resid, codes, shapes, 8)
    assert np.abs(q).max() <= 127
    q2, c2 = B.decode_pack(B.encode_pack(q, codes), 5, len(shapes), p)
    np.testing.assert_array_equal(q, q2)
    np.testing.assert_array_equal(codes, c2)
    shared = np.zeros(p, np.float32)
    w = B.dequantise(shared, q, codes, shapes)
    assert np.abs(w - resid).max() <= B.steps_from_codes(codes).max() / 2 + 1e-7


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"target_ratio": 100, "target_psnr": 30}, "not both"),
    ({"tile": (8, 100, 16)}, "larger than the data"),
    ({"tile": (4, 16)}, "axes"),
    ({"steps": -5}, "steps"),
    ({"steps": 2.5}, "steps"),
    ({"target_ratio": 0.5}, "target_ratio"),
    ({"width": 16, "target_ratio": 50}, "width"),
    ({"device": "tpu"}, "device"),
    ({"target_ratio": 1e7}, "out of reach"),
])
def test_bad_parameters(stack, tmp_path, kwargs, match):
    data, _ = stack
    kw = {"tile": (3, 16, 16), **FAST, **kwargs}
    with pytest.raises(ParameterError, match=match):
        compress_inr(data, tmp_path / "e.zarr", **kw)


def test_bad_data_and_existing_dest(stack, store, tmp_path):
    data, _ = stack
    bad = data.astype(np.float32)
    bad[2, 3, 4] = np.nan
    with pytest.raises(UnsupportedDataError, match="NaN"):
        compress_inr(bad, tmp_path / "n.zarr", tile=(3, 16, 16), **FAST)
    with pytest.raises(UnsupportedDataError):
        compress_inr(data.astype(np.complex64), tmp_path / "c.zarr", **FAST)
    with pytest.raises(ParameterError, match="overwrite"):
        compress_inr(data, store, tile=(3, 16, 16), **FAST)
    with pytest.raises(ParameterError, match=r"not a bigcomp INR store|no INR store"):
        open_inr(tmp_path)
