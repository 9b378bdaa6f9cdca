"""Physical metadata of TIFF files: OME-XML, ImageJ metadata and resolution tags in
(:func:`tiff_coords`, as coordinates: see :mod:`bigcomp.metadata`), OME-TIFF metadata out
(:func:`tiff_metadata`, keyword arguments of ``tifffile.TiffWriter.write``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .metadata import (
    _color_hex,
    axis_coords,
    axis_type,
    channel_coord,
    channel_info,
    describe,
    normalize_unit,
)

__all__ = ["tiff_coords", "tiff_metadata"]

_OME_TIME = {"picosecond": "ps", "nanosecond": "ns", "microsecond": "µs",
             "millisecond": "ms", "second": "s", "minute": "min", "hour": "h", "day": "d"}
_OME_LENGTH = {"angstrom": "Å", "picometer": "pm", "nanometer": "nm", "micrometer": "µm",
               "millimeter": "mm", "centimeter": "cm", "decimeter": "dm", "meter": "m",
               "kilometer": "km", "inch": "in", "foot": "ft", "yard": "yd", "mile": "mi"}


def _ome_color(value) -> str | None:
    try:
        rgba = int(value) & 0xFFFFFFFF
    except (TypeError, ValueError):
        return None
    return f"{rgba >> 8:06X}"


def _ome_image(xml: str, series: int, shape: Sequence[int]):
    """The OME-XML ``Pixels`` element of image ``series`` (``None`` if absent or unparsable)."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    images = root.findall("{*}Image")
    if not 0 <= series < len(images):
        return None
    return images[series].find("{*}Pixels")


def _ome_tiff_axes(pixels, dims: Sequence[str], shape: Sequence[int]) -> tuple[list, list]:
    """(per-axis info, channels) from an OME ``Pixels`` element."""
    get = pixels.attrib.get
    info = []
    for d in dims:
        ax: dict[str, Any] = {}
        if d in ("x", "y", "z"):
            key = "PhysicalSize" + d.upper()
            if get(key) is not None:
                ax = {"scale": float(get(key)), "unit": normalize_unit(get(key + "Unit", "µm"))}
        elif d == "t" and get("TimeIncrement") is not None:
            ax = {"scale": float(get("TimeIncrement")),
                  "unit": normalize_unit(get("TimeIncrementUnit", "s"))}
        info.append(ax)
    channels = [{"label": ch.attrib.get("Name"), "color": _ome_color(ch.attrib.get("Color"))}
                for ch in pixels.findall("{*}Channel")]
    return info, channels


def _imagej_axes(meta: dict, page, dims: Sequence[str]) -> tuple[list, list]:
    """(per-axis info, channels) from ImageJ metadata and the page's resolution tags."""
    unit = meta.get("unit")
    info = []
    xres = _resolution(page, "XResolution")
    yres = _resolution(page, "YResolution")
    for d in dims:
        ax: dict[str, Any] = {}
        if d in ("x", "y") and (xres if d == "x" else yres):
            res = xres if d == "x" else yres
            ax = {"scale": 1.0 / res, "unit": normalize_unit(meta.get(f"{d}unit", unit))}
            origin = meta.get(f"{d}origin")
            if origin:
                ax["translation"] = -float(origin) * ax["scale"]
        elif d == "z" and meta.get("spacing"):
            ax = {"scale": float(meta["spacing"]),
                  "unit": normalize_unit(meta.get("zunit", unit))}
        elif d == "t" and meta.get("finterval"):
            ax = {"scale": float(meta["finterval"]),
                  "unit": normalize_unit(meta.get("tunit", "second")) or "second"}
        info.append(ax)
    n = int(meta.get("channels") or 0)
    channels: list[dict] = []
    if n > 1 or "LUTs" in meta:
        n = max(n, 1)
        luts = meta.get("LUTs") or []
        ranges = meta.get("Ranges") or ()
        for i in range(n):
            ch: dict[str, Any] = {"label": None, "color": None}
            if i < len(luts) and np.asarray(luts[i]).shape == (3, 256):
                ch["color"] = "".join(f"{int(v):02X}" for v in np.asarray(luts[i])[:, -1])
            if len(ranges) >= 2 * (i + 1):
                ch["window"] = [float(ranges[2 * i]), float(ranges[2 * i + 1])]
            channels.append(ch)
    return info, channels


def _resolution(page, tag: str) -> float | None:
    """Pixels per unit of a resolution tag, or ``None`` (absent or the 1/1 placeholder)."""
    t = page.tags.get(tag)
    if t is None:
        return None
    num, den = t.value if isinstance(t.value, tuple) else (t.value, 1)
    if not den or not num:
        return None
    res = num / den
    return None if res == 1.0 else res


def tiff_coords(tif, series: int, dims: Sequence[str], shape: Sequence[int]) -> dict:
    """Coordinates of TIFF series ``series``: pixel sizes, time step, units and channels from
    its OME-XML, else its ImageJ metadata and resolution tags, else resolution tags in
    centimetres (converted to micrometres; inch resolutions are print DPI and ignored).

    Parameters
    ----------
    tif : tifffile.TiffFile
    series : int
    dims, shape
        The series' axis names (lower case) and shape.
    """
    info: list[dict] = [{} for _ in dims]
    channels: list[dict] = []
    page = tif.series[series].pages[0] if tif.series[series].pages else tif.pages[0]
    pixels = _ome_image(tif.ome_metadata, series, shape) if tif.is_ome else None
    if pixels is not None:
        info, channels = _ome_tiff_axes(pixels, dims, shape)
    elif tif.is_imagej and tif.imagej_metadata is not None:
        info, channels = _imagej_axes(tif.imagej_metadata, page, dims)
    else:
        unit = page.tags.get("ResolutionUnit")
        if unit is not None and int(unit.value) == 3:  # centimetre
            for i, d in enumerate(dims):
                res = _resolution(page, "XResolution" if d == "x" else "YResolution")
                if d in ("x", "y") and res:
                    info[i] = {"scale": 1e4 / res, "unit": "micrometer"}
    out = axis_coords(dims, shape, info)
    chan = next((i for i, d in enumerate(dims) if axis_type(d) == "channel"), None)
    if chan is not None and channels:
        out.update(channel_coord(dims[chan], shape[chan], channels))
    return out


def tiff_metadata(dims: Sequence[str], coords: Mapping[str, Any]) -> dict:
    """Keyword arguments for ``tifffile.TiffWriter.write`` that carry the physical metadata
    into an OME-TIFF: ``metadata`` (axes, ``PhysicalSize*``, ``TimeIncrement``, channel names
    and colours) and the resolution tags (pixels per centimetre) for readers of plain TIFF.

    Returns
    -------
    dict
        ``{"metadata": {...}}``, plus ``resolution`` and ``resolutionunit`` when x and y have
        a length unit. ``metadata`` holds only ``axes`` when the axes are not TIFF's (T, C,
        Z, Y, X).
    """
    axes = "".join(dims).upper()
    if len(axes) != len(dims) or not set(axes) <= set("TCZYX") or len(set(axes)) != len(axes):
        return {"metadata": {"axes": axes} if len(axes) == len(dims) else {}}
    meta: dict[str, Any] = {"axes": axes}
    kwargs: dict[str, Any] = {}
    by_name = {a["name"]: a for a in describe(dims, coords)}
    for d in ("x", "y", "z"):
        a = by_name.get(d)
        if a and a["unit"] in _OME_LENGTH:
            meta[f"PhysicalSize{d.upper()}"] = a["scale"]
            meta[f"PhysicalSize{d.upper()}Unit"] = _OME_LENGTH[a["unit"]]
    t = by_name.get("t")
    if t and t["unit"] in _OME_TIME:
        meta["TimeIncrement"] = t["scale"]
        meta["TimeIncrementUnit"] = _OME_TIME[t["unit"]]
    channels = channel_info(dims, coords)
    if channels:
        chan: dict[str, list] = {}
        if all(ch["label"] for ch in channels):
            chan["Name"] = [ch["label"] for ch in channels]
        if all(_color_hex(ch["color"]) for ch in channels):
            chan["Color"] = [_signed_rgba(_color_hex(ch["color"])) for ch in channels]
        if chan:
            meta["Channel"] = chan
    x, y = by_name.get("x"), by_name.get("y")
    if x and y and x["unit"] in _CM and y["unit"] in _CM:
        kwargs["resolution"] = (1.0 / (x["scale"] * _CM[x["unit"]]),
                                1.0 / (y["scale"] * _CM[y["unit"]]))
        kwargs["resolutionunit"] = "CENTIMETER"
    kwargs["metadata"] = meta
    return kwargs


_CM = {"nanometer": 1e-7, "micrometer": 1e-4, "millimeter": 0.1, "centimeter": 1.0,
       "meter": 100.0, "angstrom": 1e-8}


def _signed_rgba(hex6: str) -> int:
    v = (int(hex6, 16) << 8) | 0xFF
    return v - (1 << 32) if v >= 1 << 31 else v
