"""Round trips through every input kind bigcomp.compress reads lazily."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import bigcomp
from bigcomp.errors import ParameterError, UnsupportedDataError
from bigcomp.io import default_dims, open_source, split_path

h5py = pytest.importorskip("h5py")
tifffile = pytest.importorskip("tifffile")
xr = pytest.importorskip("xarray")

DATA = np.random.default_rng(0).poisson(30, (2, 3, 40, 50)).astype("uint16") + 100
KW = {"mode": "lossless", "chunks": (1, 2, 32, 32), "progress": False,
      "scheduler": "synchronous"}


def _round_trip(source, tmp_path, expect_dims=None, **kw):
    out = tmp_path / "out.zarr"
    res = bigcomp.compress(source, out, **{**KW, **kw})
    back = bigcomp.open(out)
    np.testing.assert_array_equal(back.values, DATA)
    assert res.chunks_written == 2 * 2 * 2 * 2
    if expect_dims:
        assert back.dims == tuple(expect_dims)
    return back


def test_numpy(tmp_path):
    _round_trip(DATA, tmp_path, default_dims(4))


def test_dask(tmp_path):
    da = pytest.importorskip("dask.array")
    _round_trip(da.from_array(DATA, chunks=(1, 1, 17, 50)), tmp_path)


def test_xarray(tmp_path):
    arr = xr.DataArray(DATA, dims=("t", "c", "y", "x"), name="img",
                       coords={"c": ["dapi", "gfp", "rfp"], "x": np.arange(50) * 0.2},
                       attrs={"objective": "20x"})
    back = _round_trip(arr, tmp_path, ("t", "c", "y", "x"))
    assert back.name == "img"
    assert back.attrs["objective"] == "20x"
    assert list(back.c.values) == ["dapi", "gfp", "rfp"]
    np.testing.assert_allclose(back.x.values, arr.x.values)


def test_tiff(tmp_path):
    path = tmp_path / "in.tif"
    tifffile.imwrite(path, DATA, metadata={"axes": "TCYX"}, photometric="minisblack",
                     compression="zlib")
    _round_trip(str(path), tmp_path, ("t", "c", "y", "x"))
    assert open_source(path).to_dask().chunks[-2:] == ((40,), (50,))  # whole planes


def test_hdf5(tmp_path):
    path = tmp_path / "in.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data", data=DATA, chunks=(1, 1, 20, 50))
        f.create_dataset("entry/other", data=DATA[0])
    _round_trip(f"{path}:/entry/data", tmp_path)
    _round_trip(str(path), tmp_path, dataset="/entry/data", overwrite=True)
    with pytest.raises(ParameterError, match="holds 2 image datasets"):
        open_source(path)
    with pytest.raises(ParameterError, match="no dataset"):
        open_source(f"{path}:/nope")


@pytest.mark.parametrize("fmt", [2, 3])
def test_zarr(tmp_path, fmt):
    path = tmp_path / "in.zarr"
    z = zarr.create_array(path, shape=DATA.shape, chunks=(1, 1, 16, 16), dtype=DATA.dtype,
                          zarr_format=fmt, **({"dimension_names": ("t", "c", "y", "x")}
                                              if fmt == 3 else {}))
    z[:] = DATA
    _round_trip(str(path), tmp_path, ("t", "c", "y", "x") if fmt == 3 else None)


@pytest.mark.parametrize("fmt", [2, 3])
def test_ome_zarr(tmp_path, fmt):
    path = tmp_path / "in.ome.zarr"
    g = zarr.open_group(path, mode="w", zarr_format=fmt)
    g.create_array("s0", shape=DATA.shape, chunks=(1, 1, 20, 25), dtype=DATA.dtype)[:] = DATA
    g.create_array("s1", shape=(2, 3, 20, 25), chunks=(1, 1, 20, 25), dtype=DATA.dtype)
    axes = [{"name": "t", "type": "time"}, {"name": "c", "type": "channel"},
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"}]
    ms = {"axes": axes, "datasets": [
        {"path": "s0", "coordinateTransformations": [{"type": "scale",
                                                      "scale": [1, 1, 0.5, 0.5]}]},
        {"path": "s1", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1, 1]}]}]}
    if fmt == 3:
        g.attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    else:
        g.attrs["multiscales"] = [{"version": "0.4", **ms}]
    back = _round_trip(str(path), tmp_path, ("t", "c", "y", "x"))
    np.testing.assert_allclose(back.y.values[:3], [0, 0.5, 1.0])
    # the output is OME-Zarr 0.5 itself and reads back as a source
    axes_out = zarr.open_group(tmp_path / "out.zarr").attrs["ome"]["multiscales"][0]["axes"]
    assert [a["name"] for a in axes_out] == ["t", "c", "y", "x"]
    assert axes_out[2] == {"name": "y", "type": "space", "unit": "micrometer"}


def test_bigcomp_store_as_source(tmp_path):
    first = tmp_path / "first.zarr"
    bigcomp.compress(DATA, first, **KW)
    assert open_source(first).kind == "bigcomp"
    _round_trip(str(first), tmp_path)


def test_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        open_source(tmp_path / "missing.tif")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(UnsupportedDataError, match="unknown file format"):
        open_source(tmp_path / "notes.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UnsupportedDataError, match="not a zarr store"):
        open_source(tmp_path / "empty")
    with pytest.raises(ParameterError, match="dims must name"):
        open_source(DATA, dims="zyx")
    with pytest.raises(UnsupportedDataError, match="not float64"):
        bigcomp.compress(DATA.astype("float64"), tmp_path / "f.zarr", **KW)
    with pytest.raises(UnsupportedDataError, match="Dataset"):
        open_source(xr.Dataset({"a": ("x", [1, 2])}))
    assert split_path("a/b.h5:/x/y") == ("a/b.h5", "/x/y")
    assert open_source(DATA, dims="tcyx").dims == ("t", "c", "y", "x")
