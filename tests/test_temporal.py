"""Temporal statistics model: bound per pixel, chunk-wise dask, 5D/xarray, errors."""

from __future__ import annotations

import os

import dask
import dask.array as da
import numpy as np
import pytest

from bigcomp import datasets, temporal
from bigcomp.errors import CorruptChunkError, ParameterError, UnsupportedDataError
from bigcomp.noise import CameraModel
from bigcomp.temporal import compress_temporal, median_mad, open_temporal, temporal_info

PHOTON = CameraModel(1.0, 0.0, 0.0)


def check_bound(x: np.ndarray, path: str, time_axis: int = 0) -> dict:
    """Every outlier exact, every other pixel within q/2·s + 0.5 (s, m: the stored ones)."""
    meta = temporal._read_meta(path)
    dec = open_temporal(path).compute()
    assert dec.dtype == x.dtype
    assert dec.shape == x.shape
    m = np.moveaxis(open_temporal(path, component="median").compute(), time_axis, 0)
    s = np.moveaxis(open_temporal(path, component="noise").compute(), time_axis, 0)
    xs, ds = np.moveaxis(x, time_axis, 0), np.moveaxis(dec, time_axis, 0)
    # broadcast the per-block model over the frames of each block
    rep = np.concatenate([np.full(b - a, i) for i, (a, b) in enumerate(meta["blocks"])])
    m, s = m[rep], s[rep]
    xf = xs.astype(np.float64)
    err = np.abs(ds.astype(np.float64) - xf)
    outlier = np.abs(xf - m) > meta["threshold"] * s
    assert (err[outlier] == 0).all()
    if x.dtype.kind == "f":
        allowed = meta["q"] / 2 * s + np.abs(np.spacing(xs)).astype(np.float64)
    else:
        allowed = meta["q"] / 2 * s + 0.5
    assert (err <= allowed).all()
    return {"err": err, "outlier": outlier, "s": s, "m": m}


@pytest.fixture(scope="module")
def series():
    return datasets.diffraction_series((8, 64, 64), seed=3)


@pytest.mark.parametrize(("noise", "q"), [("camera", 1.0), ("max", 2.0), ("mad", 4.0)])
def test_bound_diffraction(tmp_path, series, noise, q):
    path = compress_temporal(series.data, tmp_path / "t.zarr", q=q, noise=noise,
                             camera=PHOTON)
    r = check_bound(series.data, path)
    info = temporal_info(path)
    assert info["ratio"] > 1.5
    assert info["outlier_fraction"] == pytest.approx(r["outlier"].mean())
    assert info["max_error_sigma"] <= q / 2 + 0.5 / r["s"].min() + 1e-6
    # strong Bragg spot peaks are outliers, hence exact (with the camera noise: the MAD is
    # inflated where a spot is lit in many of the 8 frames)
    t, y, x = (np.rint(series.spots[series.spots[:, 3] > 2000][:, :3]).astype(int)).T
    y, x = np.clip(y, 0, 63), np.clip(x, 0, 63)
    assert r["outlier"][t, y, x].mean() > (0.9 if noise == "camera" else 0.5)


@pytest.mark.parametrize("dtype", ["uint8", "int32", "float32"])
def test_bound_dtypes(tmp_path, dtype):
    rng = np.random.default_rng(0)
    bg = rng.uniform(5, 50, (32, 40))
    x = rng.poisson(bg, (6, 32, 40)).astype(np.float64)
    x[2, 5:8, 5:8] += 200  # a "cosmic ray"
    if dtype == "int32":
        x[:, 10, :] = -1  # detector gap marker, constant in time
        x[:, 11, 3] = [-2, -2, -1, -2, -2, -2]  # a flickering bad pixel
    if dtype == "float32":
        x = x / 7.0
    x = x.astype(dtype)
    path = compress_temporal(x, tmp_path / "t.zarr", q=1.5, chunks=(4, 16, 16))
    r = check_bound(x, path)
    assert r["outlier"][2, 5:8, 5:8].all()
    if dtype == "int32":
        dec = open_temporal(path).compute()
        assert (dec[:, 10] == -1).all()  # constant markers come back exactly


def test_chunkwise_out_of_core(tmp_path, monkeypatch):
    """A dask source of several chunks in t and space is never materialised whole."""
    shape, src_chunks = (12, 96, 80), (4, 48, 40)

    def make(block_id=None):
        rng = np.random.default_rng(hash(block_id) % 2**32)
        out = rng.poisson(20.0, src_chunks).astype(np.uint16)
        out[1, 3, 3] = 5000
        return out

    src = da.map_blocks(make, chunks=tuple((c,) * (n // c) for n, c in
                                           zip(shape, src_chunks, strict=True)),
                        dtype=np.uint16, meta=np.empty((0, 0, 0), np.uint16))
    full = src.nbytes

    class Peak(dask.callbacks.Callback):
        biggest = 0

        def _posttask(self, key, result, dsk, state, worker_id):
            Peak.biggest = max(Peak.biggest, getattr(result, "nbytes", 0))

    with Peak():
        path = compress_temporal(src, tmp_path / "t.zarr", q=1.0, chunks=(6, 32, 32),
                                 camera=CameraModel(1, 0, 0))
    assert 0 < Peak.biggest <= full // 2
    x = src.compute()
    check_bound(x, path)
    meta = temporal._read_meta(path)
    assert len(meta["tchunks"]) == 2
    assert meta["tile"] == [32, 32]

    # a region decodes only the residual chunks it touches
    calls = []
    orig = temporal._Reader.__getitem__
    monkeypatch.setattr(temporal._Reader, "__getitem__",
                        lambda self, key: calls.append(key) or orig(self, key))
    region = open_temporal(path)[7, 40:50, 10:20].compute()
    assert len(calls) == 1
    np.testing.assert_array_equal(region, open_temporal(path).compute()[7, 40:50, 10:20])


def test_window_drift(tmp_path):
    rng = np.random.default_rng(1)
    ramp = np.linspace(100, 300, 13)[:, None, None]  # background drifting 3x
    x = rng.poisson(np.broadcast_to(ramp, (13, 24, 24))).astype(np.uint16)
    path = compress_temporal(x, tmp_path / "w.zarr", window=4, camera=PHOTON, q=1.0)
    meta = temporal._read_meta(path)
    assert meta["blocks"] == [[0, 4], [4, 8], [8, 13]]  # short tail merged
    assert open_temporal(path, component="median").shape == (3, 24, 24)
    r = check_bound(x, path)
    one = compress_temporal(x, tmp_path / "one.zarr", camera=PHOTON, q=1.0)
    # one median cannot follow the drift: the MAD (so the error) is several times larger
    s_one = open_temporal(one, component="noise").compute()
    assert r["s"].mean() < s_one.mean() / 3
    assert r["outlier"].mean() < 0.05


def test_5d_xarray_and_time_axis(tmp_path):
    xr = pytest.importorskip("xarray")
    s = datasets.timelapse_5d((4, 2, 3, 24, 20), seed=2)
    arr = xr.DataArray(s.data, dims=("t", "c", "z", "y", "x"), attrs={"unit": "ADU"})
    cam = CameraModel(s.gain, s.offset, s.read_noise)
    path = compress_temporal(arr, tmp_path / "x.zarr", time_axis="t", camera=cam)
    check_bound(s.data, path)
    assert temporal_info(path)["dims"] == ["t", "c", "z", "y", "x"]
    # time axis not first, numpy input, given by index
    moved = np.ascontiguousarray(np.moveaxis(s.data, 0, 2))  # (c, z, t, y, x)
    path2 = compress_temporal(moved, tmp_path / "m.zarr", time_axis=2, camera=cam)
    check_bound(moved, path2, time_axis=2)
    np.testing.assert_array_equal(np.moveaxis(open_temporal(path2).compute(), 2, 0),
                                  open_temporal(path).compute())


def test_median_mad():
    x = np.random.default_rng(0).poisson(100, (9, 20, 30)).astype(np.uint16)
    m, mad = median_mad(da.from_array(x, chunks=(3, 10, 10)), tile=16)
    assert m.shape == (1, 20, 30)
    assert m.numblocks == (1, 2, 2)
    np.testing.assert_array_equal(m.compute()[0], np.sort(x, 0)[4])
    ref = np.sort(np.abs(x - np.sort(x, 0)[4].astype(float)), 0)[4]
    np.testing.assert_array_equal(mad.compute()[0], ref)


def test_errors(tmp_path):
    x = np.zeros((5, 8, 8), np.uint16)
    with pytest.raises(ParameterError, match="needs >= 3"):
        compress_temporal(x[:2], tmp_path / "a.zarr")
    with pytest.raises(ParameterError, match="time_axis"):
        compress_temporal(x, tmp_path / "a.zarr", time_axis=3)
    with pytest.raises(ParameterError, match="xarray"):
        compress_temporal(x, tmp_path / "a.zarr", time_axis="t")
    xr = pytest.importorskip("xarray")
    with pytest.raises(ParameterError, match="not a dimension"):
        compress_temporal(xr.DataArray(x, dims=("z", "y", "x")), tmp_path / "a.zarr",
                          time_axis="t")
    bad = x.astype(np.float32)
    bad[1, 2, 3] = np.nan
    with pytest.raises(UnsupportedDataError, match="NaN"):
        compress_temporal(bad, tmp_path / "a.zarr")
    with pytest.raises(UnsupportedDataError, match="NaN"):  # found while streaming chunks
        compress_temporal(da.from_array(bad, chunks=(5, 4, 4)), tmp_path / "b.zarr")
    with pytest.raises(UnsupportedDataError, match="int64"):
        compress_temporal(x.astype(np.int64), tmp_path / "a.zarr")
    for kw, msg in [({"q": 0}, "q must"), ({"noise": "std"}, "noise must"),
                    ({"noise": "camera"}, "camera="), ({"window": 2}, "window"),
                    ({"threshold": -1}, "threshold")]:
        with pytest.raises(ParameterError, match=msg):
            compress_temporal(x, tmp_path / "a.zarr", **kw)
    compress_temporal(x, tmp_path / "c.zarr")
    with pytest.raises(ParameterError, match="overwrite=True"):
        compress_temporal(x, tmp_path / "c.zarr")
    compress_temporal(x, tmp_path / "c.zarr", overwrite=True)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ParameterError, match="not a zarr store"):
        compress_temporal(x, tmp_path / "plain", overwrite=True)
    with pytest.raises(ParameterError, match="not a bigcomp"):
        open_temporal(tmp_path / "plain")


def test_corrupt_payload(tmp_path):
    x = np.random.default_rng(0).poisson(30, (4, 16, 16)).astype(np.uint16)
    path = compress_temporal(x, tmp_path / "t.zarr", camera=PHOTON)
    fn = os.path.join(path, "residuals", "c", "0", "0", "0")
    with open(fn, "rb") as f:
        raw = bytearray(f.read())
    raw[-1] ^= 0xFF
    with open(fn, "wb") as f:
        f.write(bytes(raw))
    with pytest.raises(CorruptChunkError, match=r"chunk \(0, 0, 0\)"):
        open_temporal(path).compute()
