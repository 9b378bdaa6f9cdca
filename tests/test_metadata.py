"""Physical metadata in and out (issue 20): pixel sizes, units, time steps, channel names and
colours from OME-TIFF, ImageJ TIFF, plain TIFF, xarray and OME-Zarr inputs into the store's
``ome`` block and coordinates, and out again through ``bigcomp decompress`` (OME-TIFF and
OME-Zarr)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr

import bigcomp
from bigcomp.io import write_decoded
from bigcomp.metadata import normalize_unit, ome_block, valid_ngff_axes

tifffile = pytest.importorskip("tifffile")

KW = {"mode": "lossless", "progress": False, "scheduler": "synchronous", "pyramid": False}
RNG = np.random.default_rng(20)


def _attrs(path) -> dict:
    with open(f"{path}/zarr.json", encoding="utf-8") as f:
        return json.load(f)["attributes"]


def _ms(path) -> dict:
    return _attrs(path)["ome"]["multiscales"][0]


def _scale(ms: dict, level: int = 0) -> list[float]:
    return ms["datasets"][level]["coordinateTransformations"][0]["scale"]


def _units(ms: dict) -> dict:
    return {a["name"]: a.get("unit") for a in ms["axes"]}


@pytest.mark.parametrize(("unit", "kind", "name"), [
    ("µm", None, "micrometer"), ("μm", None, "micrometer"), ("um", None, "micrometer"),
    ("micron", None, "micrometer"), ("microns", None, "micrometer"),
    ("micrometre", None, "micrometer"), ("Micrometers", None, "micrometer"),
    ("\\u00B5m", None, "micrometer"), ("nm", "space", "nanometer"), ("Å", None, "angstrom"),
    ("mm", None, "millimeter"), ("Mm", None, "megameter"), ("s", "time", "second"),
    ("sec", None, "second"), ("ms", None, "millisecond"), ("µs", None, "microsecond"),
    ("min", None, "minute"), ("h", None, "hour"), ("second", None, "second"),
    ("s", "space", None), ("µm", "time", None), ("pixel", None, None), ("", None, None),
    (None, None, None), ("furlong", None, None)])
def test_normalize_unit(unit, kind, name):
    assert normalize_unit(unit, kind) == name


def test_ngff_axis_order():
    assert valid_ngff_axes(["time", "channel", "space", "space", "space"])
    assert valid_ngff_axes(["space", "space"])
    assert not valid_ngff_axes(["time", "space", "channel", "space", "space"])
    assert not valid_ngff_axes(["space"])
    assert not valid_ngff_axes(["channel", "channel", "space", "space"])
    assert ome_block(("z", "c", "y", "x"), {}) is None  # not an NGFF image: no block


def test_ome_tiff_in_and_out(tmp_path):
    data = RNG.integers(0, 4000, (3, 2, 4, 32, 48)).astype("uint16")
    src = tmp_path / "cells.ome.tif"
    tifffile.imwrite(src, data, ome=True, metadata={
        "axes": "TCZYX", "PhysicalSizeX": 0.325, "PhysicalSizeXUnit": "µm",
        "PhysicalSizeY": 0.325, "PhysicalSizeYUnit": "µm", "PhysicalSizeZ": 500.0,
        "PhysicalSizeZUnit": "nm", "TimeIncrement": 250.0, "TimeIncrementUnit": "ms",
        "Channel": {"Name": ["DAPI", "GFP"], "Color": [0x0000FFFF, 0x00FF00FF]}})
    out = tmp_path / "cells.zarr"
    bigcomp.compress(src, out, **KW)
    ms = _ms(out)
    assert [a["name"] for a in ms["axes"]] == list("tczyx")
    assert [a.get("type") for a in ms["axes"]] == ["time", "channel", "space", "space", "space"]
    assert _units(ms) == {"t": "millisecond", "c": None, "z": "nanometer", "y": "micrometer",
                          "x": "micrometer"}
    assert _scale(ms) == [250.0, 1.0, 500.0, 0.325, 0.325]
    omero = _attrs(out)["ome"]["omero"]["channels"]
    assert [(c["label"], c["color"]) for c in omero] == [("DAPI", "0000FF"), ("GFP", "00FF00")]
    arr = bigcomp.open(out)
    assert list(arr.c.values) == ["DAPI", "GFP"]
    assert arr.x.attrs["units"] == "micrometer"
    assert float(arr.x[1]) == pytest.approx(0.325)
    # out again: OME-TIFF with the physical sizes, names, colours and resolution tags
    write_decoded(arr, str(tmp_path / "back.tif"), progress=False)
    with tifffile.TiffFile(tmp_path / "back.tif") as tif:
        assert tif.is_ome
        assert tif.series[0].axes == "TCZYX"
        pixels = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
        assert pixels["PhysicalSizeX"] == pytest.approx(0.325)
        assert pixels["PhysicalSizeXUnit"] == "µm"
        assert pixels["PhysicalSizeZ"] == pytest.approx(500.0)
        assert pixels["PhysicalSizeZUnit"] == "nm"
        assert pixels["TimeIncrement"] == pytest.approx(250.0)
        assert pixels["TimeIncrementUnit"] == "ms"
        assert [c["Name"] for c in pixels["Channel"]] == ["DAPI", "GFP"]
        num, den = tif.pages[0].tags["XResolution"].value
        assert tif.pages[0].tags["ResolutionUnit"].value == 3  # centimetre
        assert num / den == pytest.approx(1e4 / 0.325)
        np.testing.assert_array_equal(tif.asarray(), data)
    # ... and it reads back into the same store metadata
    bigcomp.compress(tmp_path / "back.tif", tmp_path / "again.zarr", **KW)
    assert _ms(tmp_path / "again.zarr")["axes"] == ms["axes"]
    assert _scale(_ms(tmp_path / "again.zarr")) == pytest.approx(_scale(ms))
    assert _attrs(tmp_path / "again.zarr")["ome"]["omero"] == _attrs(out)["ome"]["omero"]
    # OME-Zarr out: the full block, the same array path, the data
    write_decoded(arr, str(tmp_path / "back.zarr"), progress=False)
    plain = _attrs(tmp_path / "back.zarr")
    assert plain["ome"]["multiscales"][0]["axes"] == ms["axes"]
    assert plain["ome"]["omero"] == _attrs(out)["ome"]["omero"]
    assert "bigcomp" not in plain  # not a bigcomp store
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "back.zarr", path="0")[:], data)


def test_imagej_hyperstack_in_ngff_order(tmp_path):
    data = RNG.integers(0, 4000, (2, 3, 2, 32, 32)).astype("uint16")  # ImageJ's TZCYX
    green, magenta = np.zeros((3, 256), "uint8"), np.zeros((3, 256), "uint8")
    green[1] = magenta[0] = magenta[2] = np.arange(256)
    src = tmp_path / "ij.tif"
    tifffile.imwrite(src, data, imagej=True, resolution=(1 / 0.2, 1 / 0.2), metadata={
        "axes": "TZCYX", "spacing": 1.5, "unit": "micron", "finterval": 30.0,
        "LUTs": [green, magenta], "Ranges": (10.0, 900.0, 20.0, 2000.0)})
    out = tmp_path / "ij.zarr"
    bigcomp.compress(src, out, **KW)
    arr = bigcomp.open(out)
    assert arr.dims == ("t", "c", "z", "y", "x")  # NGFF order, read through a transpose
    np.testing.assert_array_equal(arr.values, data.transpose(0, 2, 1, 3, 4))
    ms = _ms(out)
    assert _scale(ms) == pytest.approx([30.0, 1.0, 1.5, 0.2, 0.2])
    assert _units(ms) == {"t": "second", "c": None, "z": "micrometer", "y": "micrometer",
                          "x": "micrometer"}
    omero = _attrs(out)["ome"]["omero"]["channels"]
    assert [c["color"] for c in omero] == ["00FF00", "FF00FF"]
    assert [(c["window"]["start"], c["window"]["end"]) for c in omero] == [
        (10.0, 900.0), (20.0, 2000.0)]
    # explicit dims keep the file's order (and then no NGFF block: c after z)
    bigcomp.compress(src, tmp_path / "raw.zarr", dims="tzcyx", **KW)
    assert bigcomp.open(tmp_path / "raw.zarr").shape == data.shape
    assert "ome" not in _attrs(tmp_path / "raw.zarr")


def test_plain_tiff_resolution_in_centimetres(tmp_path):
    data = RNG.integers(0, 200, (5, 16, 16)).astype("uint8")
    tifffile.imwrite(tmp_path / "p.tif", data, resolution=(1e4 / 0.65, 1e4 / 0.65),
                     resolutionunit="CENTIMETER")
    bigcomp.compress(tmp_path / "p.tif", tmp_path / "p.zarr", **KW)
    ms = _ms(tmp_path / "p.zarr")
    assert _scale(ms) == pytest.approx([1.0, 0.65, 0.65])
    assert _units(ms)["x"] == "micrometer"
    # a print resolution in inches (72 dpi) is not a pixel size
    tifffile.imwrite(tmp_path / "dpi.tif", data, resolution=(72, 72), resolutionunit="INCH")
    bigcomp.compress(tmp_path / "dpi.tif", tmp_path / "dpi.zarr", **KW)
    assert _scale(_ms(tmp_path / "dpi.zarr")) == [1.0, 1.0, 1.0]


def _xarray(units: str = "µm") -> xr.DataArray:
    data = RNG.integers(0, 4000, (4, 2, 32, 32)).astype("uint16")
    t = (np.datetime64("2024-05-01T12:00:00", "us")
         + np.arange(4) * np.timedelta64(1500, "ms")).astype("datetime64[us]")
    arr = xr.DataArray(data, dims=("t", "c", "y", "x"), name="cells", coords={
        "t": t, "c": ["DAPI", "GFP"], "y": ("y", 10.0 + 0.5 * np.arange(32), {"units": units}),
        "x": ("x", 0.5 * np.arange(32), {"units": units}),
        "stage_z": ("t", np.linspace(0.0, 1.0, 4))})  # a non-dimension coordinate along t
    arr.c.attrs["channel_colors"] = {"DAPI": "0000FF", "GFP": "00FF00"}
    return arr


@pytest.mark.parametrize("units", ["µm", "um", "micron", "micrometer"])
def test_xarray_in_and_out(tmp_path, units):
    src = _xarray(units)
    out = tmp_path / "x.zarr"
    bigcomp.compress(src, out, chunks=(1, 1, 32, 32), **KW)
    ms = _ms(out)
    assert _units(ms) == {"t": "second", "c": None, "y": "micrometer", "x": "micrometer"}
    assert _scale(ms) == pytest.approx([1.5, 1.0, 0.5, 0.5])
    assert ms["datasets"][0]["coordinateTransformations"][1]["translation"] == [
        0.0, 0.0, 10.0, 0.0]
    assert ms["name"] == "cells"
    omero = _attrs(out)["ome"]["omero"]["channels"]
    assert [(c["label"], c["color"]) for c in omero] == [("DAPI", "0000FF"), ("GFP", "00FF00")]
    back = bigcomp.open(out)  # filterwarnings=error: no chunk warning (non-dim coord along t)
    assert back.t.dtype == np.dtype("datetime64[us]")  # not turned into [ns]
    np.testing.assert_array_equal(back.t.values, src.t.values)
    assert "_FillValue" not in back.x.attrs
    assert "_FillValue" not in back.stage_z.attrs
    assert back.x.attrs == {"units": units}  # the user's attributes, as given
    assert back.c.attrs["channel_colors"] == src.c.attrs["channel_colors"]
    xr.testing.assert_identical(back.drop_attrs().compute(), src.drop_attrs())


def test_ome_zarr_input(tmp_path):
    data = RNG.integers(0, 4000, (2, 8, 32, 32)).astype("uint16")
    src = tmp_path / "in.ome.zarr"
    group = zarr.open_group(src, mode="w", zarr_format=3)
    group.create_array("s0", data=data, chunks=(1, 8, 32, 32), dimension_names=list("czyx"))
    group.attrs["ome"] = {"version": "0.5", "multiscales": [{
        "name": "embryo",
        "axes": [{"name": "c", "type": "channel"},
                 {"name": "z", "type": "space", "unit": "micrometer"},
                 {"name": "y", "type": "space", "unit": "micrometer"},
                 {"name": "x", "type": "space", "unit": "micrometer"}],
        "datasets": [{"path": "s0", "coordinateTransformations": [
            {"type": "scale", "scale": [1.0, 2.0, 0.4, 0.4]},
            {"type": "translation", "translation": [0.0, 5.0, 0.0, 0.0]}]}]}],
        "omero": {"channels": [
            {"label": "H2B", "color": "FF0000", "window": {"start": 50, "end": 3000,
                                                          "min": 0, "max": 65535}},
            {"label": "actin", "color": "00FFFF", "window": {"start": 60, "end": 2000,
                                                            "min": 0, "max": 65535}}]}}
    out = tmp_path / "out.zarr"
    bigcomp.compress(src, out, **KW)
    ms = _ms(out)
    assert ms["name"] == "embryo"
    assert _units(ms) == {"c": None, "z": "micrometer", "y": "micrometer", "x": "micrometer"}
    assert _scale(ms) == pytest.approx([1.0, 2.0, 0.4, 0.4])
    assert ms["datasets"][0]["coordinateTransformations"][1]["translation"] == [
        0.0, 5.0, 0.0, 0.0]
    omero = _attrs(out)["ome"]["omero"]["channels"]
    assert [(c["label"], c["color"], c["window"]["start"], c["window"]["end"])
            for c in omero] == [("H2B", "FF0000", 50, 3000), ("actin", "00FFFF", 60, 2000)]


def test_decompress_region_keeps_origin(tmp_path):
    out = tmp_path / "x.zarr"
    bigcomp.compress(_xarray()[:, :, :, :], out, chunks=(1, 1, 32, 32), **KW)
    from typer.testing import CliRunner

    from bigcomp.cli import app

    res = CliRunner().invoke(app, ["decompress", str(out), str(tmp_path / "part.zarr"),
                                   "--region", "1:3,1,4:20", "--no-progress"])
    assert res.exit_code == 0, res.output
    ms = _ms(tmp_path / "part.zarr")
    transforms = ms["datasets"][0]["coordinateTransformations"]
    # datetimes have no NGFF origin (the t coordinate array keeps them): 0 on t
    assert transforms[1]["translation"] == pytest.approx([0.0, 0.0, 12.0, 0.0])
    assert [c["label"] for c in _attrs(tmp_path / "part.zarr")["ome"]["omero"]["channels"]] == [
        "GFP"]


def test_temporal_store_keeps_physical_metadata(tmp_path):
    src = _xarray().isel(c=0).astype("uint16").drop_vars("stage_z")
    src = xr.concat([src] * 2, "t").assign_coords(t=0.25 * np.arange(8)).isel(t=slice(0, 6))
    src.t.attrs["units"] = "s"
    out = tmp_path / "t.zarr"
    bigcomp.compress(src, out, mode="temporal", q=1.0, camera={"gain": 1.0, "offset": 0.0,
                                                               "read_noise": 1.0},
                     progress=False, scheduler="synchronous")
    back = bigcomp.open(out)
    assert back.t.attrs["units"] == "second"
    np.testing.assert_allclose(back.t.values, 0.25 * np.arange(6))
    np.testing.assert_allclose(back.x.values, 0.5 * np.arange(32))
    assert back.x.attrs["units"] == "micrometer"
