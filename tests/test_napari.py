"""The napari reader (bigcomp.napari), headless: layer data tuples of every store mode with
scale, units, channels and contrast limits; the npe2 manifest."""

from __future__ import annotations

import os
import warnings
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import bigcomp
from bigcomp.napari import contrast_limits, napari_get_reader, read_bigcomp

CAM = {"gain": 1.0, "offset": 100.0, "read_noise": 1.5}
KW = {"progress": False, "scheduler": "synchronous"}
MANIFEST = Path(bigcomp.__file__).parent / "napari" / "napari.yaml"


def _source(nc: int = 2) -> xr.DataArray:
    data = (np.random.default_rng(3).poisson(50, (nc, 4, 70, 90)) + 100).astype("uint16")
    data[:, :, 30:40, 30:40] += 2000  # a bright object
    return xr.DataArray(data, dims=("c", "z", "y", "x"), name="embryo", coords={
        "c": ["H2B", "actin"][:nc], "z": ("z", 2.0 * np.arange(4), {"units": "µm"}),
        "y": ("y", 0.4 * np.arange(70), {"units": "um"}),
        "x": ("x", 0.4 * np.arange(90), {"units": "micron"})})


def test_wnl_pyramid_layers(tmp_path):
    out = tmp_path / "a.zarr"
    bigcomp.compress(_source(), out, q=1.0, camera=CAM, chunks=(1, 4, 32, 32), **KW)
    assert napari_get_reader(str(out)) is read_bigcomp
    assert napari_get_reader([str(out)]) is read_bigcomp
    [(data, kwargs, kind)] = read_bigcomp(str(out))
    assert kind == "image"
    assert kwargs["multiscale"]
    assert [d.shape for d in data] == [(2, 4, 70, 90), (2, 4, 35, 45), (2, 4, 18, 23)]
    assert kwargs["channel_axis"] == 0
    assert kwargs["name"] == ["embryo [H2B]", "embryo [actin]"]
    assert kwargs["scale"] == pytest.approx([2.0, 0.4, 0.4])  # without the channel axis
    assert kwargs["axis_labels"] == ["z", "y", "x"]
    assert kwargs["units"] == ["micrometer"] * 3
    assert kwargs["colormap"] == ["#0000ff", "#00ff00"]  # the store's omero colours
    for lo, hi in kwargs["contrast_limits"]:
        assert 100 <= lo < 200 < hi <= 2300
    np.testing.assert_array_equal(np.asarray(data[0][1, 2]), bigcomp.open(out).values[1, 2])


def test_channel_colours_and_windows(tmp_path):
    src = _source()
    src.c.attrs.update(channel_colors={"H2B": "FF00FF", "actin": "FFFFFF"},
                       channel_windows={"H2B": [110, 1500]})
    bigcomp.compress(src, tmp_path / "c.zarr", mode="lossless", pyramid=False, **KW)
    [(_, kwargs, _)] = read_bigcomp(str(tmp_path / "c.zarr"))
    assert kwargs["colormap"] == ["#ff00ff", "gray"]
    assert kwargs["contrast_limits"][0] == [110.0, 1500.0]  # the stored window
    assert kwargs["contrast_limits"][1] != [0.0, 65535.0]  # sampled: no window known


def test_lossless_single_channel(tmp_path):
    src = _source(1).isel(c=0).drop_vars("c")
    bigcomp.compress(src, tmp_path / "l.zarr", mode="lossless", pyramid=False, **KW)
    [(data, kwargs, _)] = read_bigcomp(str(tmp_path / "l.zarr"))
    assert not kwargs["multiscale"]
    assert data.shape == (4, 70, 90)
    assert "channel_axis" not in kwargs
    assert kwargs["name"] == "embryo"
    assert kwargs["scale"] == pytest.approx([2.0, 0.4, 0.4])
    lo, hi = kwargs["contrast_limits"]
    assert lo < hi
    np.testing.assert_array_equal(np.asarray(data), src.values)


def test_temporal_layers(tmp_path):
    src = _source(1).isel(c=0).drop_vars("c").rename(z="t").assign_coords(
        t=("t", 0.5 * np.arange(4), {"units": "s"}))
    bigcomp.compress(src, tmp_path / "t.zarr", mode="temporal", q=1.0, camera=CAM, **KW)
    [(data, kwargs, _)] = read_bigcomp(str(tmp_path / "t.zarr"))
    assert data.shape == (4, 70, 90)
    assert not kwargs["multiscale"]
    assert kwargs["scale"] == pytest.approx([0.5, 0.4, 0.4])
    assert kwargs["units"] == ["second", "micrometer", "micrometer"]


def test_inr_layers(tmp_path):
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        src = _source(1).isel(c=0, z=slice(0, 3)).drop_vars("c").astype("float32")
        bigcomp.compress(src, tmp_path / "i.zarr", mode="inr", target_ratio=20, steps=30,
                         **KW)
    finally:
        torch.set_num_threads(n)
    [(data, kwargs, _)] = read_bigcomp(str(tmp_path / "i.zarr"))
    assert data.shape == (3, 70, 90)
    assert kwargs["scale"] == pytest.approx([2.0, 0.4, 0.4])
    assert kwargs["units"] == ["micrometer"] * 3


def test_not_a_bigcomp_store(tmp_path):
    assert napari_get_reader(str(tmp_path)) is None
    assert napari_get_reader(str(tmp_path / "missing.zarr")) is None
    assert napari_get_reader([str(tmp_path), str(tmp_path)]) is None


def test_contrast_limits_sample_few_chunks():
    import dask.array as da

    calls = []

    def block(x):
        if x.size:  # not dask's meta probes
            calls.append(1)
        return x

    x = da.from_array(np.arange(64 * 64, dtype="uint16").reshape(64, 64), chunks=8)
    lim = contrast_limits(x.map_blocks(block, dtype=x.dtype), n=4, percentiles=(0, 100))
    assert len(calls) == 4  # of 64 chunks
    assert lim[0][0] == 0
    assert lim[0][1] == 64 * 64 - 1


def test_manifest_valid():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # npe2's pydantic 1 idioms
        npe2 = pytest.importorskip("npe2")
        manifest = npe2.PluginManifest.from_file(MANIFEST)
    assert manifest.name == "bigcomp"
    [reader] = manifest.contributions.readers
    assert reader.accepts_directories
    assert "*.zarr" in reader.filename_patterns
    [command] = manifest.contributions.commands
    module, _, func = command.python_name.partition(":")
    assert module == "bigcomp.napari"
    assert func == "napari_get_reader"


def test_manifest_entry_point():
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '[project.entry-points."napari.manifest"]' in pyproject
    assert 'bigcomp = "bigcomp.napari:napari.yaml"' in pyproject
    eps = {e.name: e.value for e in entry_points(group="napari.manifest")}
    if "bigcomp" not in eps:  # an editable install made before the entry point existed
        pytest.skip("bigcomp installed without its napari.manifest entry point: reinstall")
    assert eps["bigcomp"] == "bigcomp.napari:napari.yaml"
    assert os.path.isfile(MANIFEST)
