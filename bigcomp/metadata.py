"""Physical metadata: pixel sizes, units, axis types, time steps, channel names and colours.

bigcomp carries physical metadata the way xarray does: as *coordinates*. A regularly spaced
numeric coordinate along a space or time axis gives that axis' pixel size (its step) and origin
(its first value); its ``units`` attribute gives the unit. A coordinate along the channel axis
gives the channel names; its attributes ``channel_colors`` and ``channel_windows`` (dicts keyed
by channel name, so that they survive selecting channels) give each channel's colour
(``"RRGGBB"``) and display window (``[start, end, min, max]``).

Every input reader (:mod:`bigcomp.io`) turns what its format holds into such coordinates
(:func:`bigcomp.tiffmeta.tiff_coords`, :func:`coords_from_ome`, xarray's own coordinates); every
writer turns them back into what its format holds (:func:`ome_block` for OME-Zarr,
:func:`bigcomp.tiffmeta.tiff_metadata` for OME-TIFF). Units are normalised to the UDUNITS-2
names NGFF allows (:func:`normalize_unit`: ``"µm"``, ``"um"`` and ``"micron"`` ->
``"micrometer"``).

Examples
--------
>>> normalize_unit("µm"), normalize_unit("um"), normalize_unit("microns"), normalize_unit("ms")
('micrometer', 'micrometer', 'micrometer', 'millisecond')
>>> normalize_unit("pixel") is None
True
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "NGFF_UNITS",
    "annotate_store",
    "axis_coords",
    "axis_type",
    "channel_coord",
    "channel_info",
    "coords_from_ome",
    "coords_from_record",
    "describe",
    "ngff_order",
    "normalize_unit",
    "ome_block",
    "physical_record",
    "select",
    "valid_ngff_axes",
]

# ------------------------------------------------------------------------------ units
_PREFIXES = {"yocto": "y", "zepto": "z", "atto": "a", "femto": "f", "pico": "p", "nano": "n",
             "micro": "u", "milli": "m", "centi": "c", "deci": "d", "": "", "hecto": "h",
             "kilo": "k", "mega": "M", "giga": "G", "tera": "T", "peta": "P", "exa": "E",
             "zetta": "Z", "yotta": "Y"}
NGFF_UNITS = {  # the UDUNITS-2 names NGFF 0.4/0.5 allow on space and time axes
    "space": frozenset({p + "meter" for p in _PREFIXES}
                       | {"angstrom", "foot", "inch", "mile", "parsec", "yard"}),
    "time": frozenset({p + "second" for p in _PREFIXES} | {"minute", "hour", "day"}),
}
_SYMBOLS = {s + "m": p + "meter" for p, s in _PREFIXES.items()} | {
    s + "s": p + "second" for p, s in _PREFIXES.items()}
_SYMBOLS |= {"µm": "micrometer", "μm": "micrometer", "µs": "microsecond", "μs": "microsecond",
             "Å": "angstrom", "min": "minute", "h": "hour", "hr": "hour",
             "d": "day", "in": "inch", "ft": "foot", "yd": "yard", "mi": "mile", "pc": "parsec",
             "sec": "second", "msec": "millisecond", "usec": "microsecond", "nsec": "nanosecond"}
_WORDS = {"micron": "micrometer", "angstroem": "angstrom", "ångström": "angstrom",
          "mins": "minute", "hrs": "hour", "secs": "second", "feet": "foot", "inches": "inch"}


def normalize_unit(unit: Any, kind: str | None = None) -> str | None:
    """The NGFF (UDUNITS-2) name of a length or time unit, or ``None`` if it is not one.

    Parameters
    ----------
    unit : str
        A name or symbol in any common spelling: ``"µm"`` (micro sign or Greek mu), ``"um"``,
        ``"micron"``, ``"micrometre"``, ``"Micrometers"``, ``"nm"``, ``"Å"``, ``"s"``,
        ``"sec"``, ``"ms"``, ``"min"``, ``"h"``, ImageJ's ``"\\u00B5m"``...
    kind : {"space", "time"}, optional
        Accept only units of this kind.

    Returns
    -------
    str or None
        E.g. ``"micrometer"``, ``"second"``; ``None`` for ``"pixel"``, empty or unknown units.

    Examples
    --------
    >>> normalize_unit("micrometre"), normalize_unit("Å"), normalize_unit("s", "space")
    ('micrometer', 'angstrom', None)
    """
    if not isinstance(unit, str) or not unit.strip():
        return None
    text = unit.strip()
    if "\\u" in text:  # ImageJ writes "\u00B5m" escaped
        with contextlib.suppress(UnicodeDecodeError):
            text = text.encode("ascii", "backslashreplace").decode("unicode_escape")
    name = _SYMBOLS.get(text)  # symbols are case sensitive (Mm megameter, mm millimeter)
    if name is None:
        word = text.lower().replace("metre", "meter").replace(" ", "")
        word = _WORDS.get(word, word)
        for cand in (word, word.removesuffix("s")):
            cand = _WORDS.get(cand, cand)
            if any(cand in units for units in NGFF_UNITS.values()):
                name = cand
                break
    if name is None:
        return None
    if kind is not None and name not in NGFF_UNITS.get(kind, ()):
        return None
    return name


# ------------------------------------------------------------------------------ axes
_AXIS_TYPES = {"t": "time", "time": "time", "c": "channel", "ch": "channel",
               "channel": "channel", "z": "space", "y": "space", "x": "space"}
_DEFAULT_COLORS = ("0000FF", "00FF00", "FF0000", "FF00FF", "00FFFF", "FFFF00", "FFFFFF")


def axis_type(name: str) -> str | None:
    """NGFF axis type of a dimension name: ``"time"``, ``"channel"``, ``"space"`` or ``None``.

    Examples
    --------
    >>> [axis_type(d) for d in ("t", "c", "z", "y", "x", "angle")]
    ['time', 'channel', 'space', 'space', 'space', None]
    """
    return _AXIS_TYPES.get(str(name).lower())


def valid_ngff_axes(types: Sequence[str | None]) -> bool:
    """Whether axes of these types make an NGFF 0.5 image: 2-5 axes, 2-3 of type space
    (last), at most one time axis (first) and at most one channel or custom axis between.

    Examples
    --------
    >>> valid_ngff_axes(["time", "channel", "space", "space", "space"])
    True
    >>> valid_ngff_axes(["time", "space", "channel", "space", "space"])  # ImageJ's TZCYX
    False
    """
    if not 2 <= len(types) <= 5:
        return False
    rank = [0 if t == "time" else 2 if t == "space" else 1 for t in types]
    n_space = rank.count(2)
    return (rank == sorted(rank) and 2 <= n_space <= 3 and rank.count(0) <= 1
            and rank.count(1) <= 1)


def ngff_order(dims: Sequence[str]) -> tuple[int, ...] | None:
    """The permutation putting ``dims`` in NGFF order (time, channel or custom, space), or
    ``None`` when they are in it already or no order of them is an NGFF image.

    Examples
    --------
    >>> ngff_order(("t", "z", "c", "y", "x"))  # ImageJ's hyperstack order
    (0, 2, 1, 3, 4)
    >>> ngff_order(("t", "c", "z", "y", "x")) is None
    True
    """
    types = [axis_type(d) for d in dims]
    rank = {"time": 0, "channel": 1, None: 1, "space": 2}
    perm = tuple(sorted(range(len(types)), key=lambda i: (rank[types[i]], i)))
    if valid_ngff_axes(types) or not valid_ngff_axes([types[i] for i in perm]):
        return None
    return perm


def _step(values: np.ndarray) -> tuple[float, float, str | None] | None:
    """(step, first value, unit implied by the dtype) of a regularly spaced 1-D coordinate."""
    v = np.asarray(values)
    if v.ndim != 1 or v.size == 0:
        return None
    implied = None
    if v.dtype.kind in "mM":  # datetimes and timedeltas: steps in seconds, no origin
        start = 0.0
        if v.dtype.kind == "M":
            v = v - v[0]
        v = v / np.timedelta64(1, "s")
        implied = "second"
    elif v.dtype.kind in "iuf":
        v = v.astype(np.float64)
        start = float(v[0])
    else:
        return None
    if v.size == 1:
        return 1.0, start, implied
    d = np.diff(v)
    if not (np.all(np.isfinite(d)) and d[0] > 0 and np.allclose(d, d[0], rtol=1e-6)):
        return None
    return float(d[0]), start, implied


def describe(dims: Sequence[str], coords: Mapping[str, Any]) -> list[dict]:
    """Per axis: ``name``, ``type``, ``scale``, ``translation`` and ``unit`` (NGFF name or
    ``None``), read from regularly spaced coordinates (see the module docstring).

    Examples
    --------
    >>> import xarray as xr
    >>> c = {"x": xr.Variable("x", [0.0, 0.5, 1.0], {"units": "µm"})}
    >>> describe(("y", "x"), c)[1]
    {'name': 'x', 'type': 'space', 'scale': 0.5, 'translation': 0.0, 'unit': 'micrometer'}
    """
    out = []
    for d in dims:
        kind = axis_type(d)
        ax = {"name": str(d), "type": kind, "scale": 1.0, "translation": 0.0, "unit": None}
        c = coords.get(d)
        if c is not None and kind in ("space", "time") and tuple(c.dims) == (d,):
            found = _step(c.values)
            if found is not None:
                ax["scale"], ax["translation"], implied = found
                ax["unit"] = normalize_unit(c.attrs.get("units"), kind) or implied
        out.append(ax)
    return out


def channel_info(dims: Sequence[str], coords: Mapping[str, Any]) -> list[dict] | None:
    """The channels (``label``, ``color``, ``window``: ``None`` when unknown) of the channel
    axis, from its coordinate (see the module docstring); ``None`` without one."""
    axis = next((d for d in dims if axis_type(d) == "channel"), None)
    c = coords.get(axis) if axis is not None else None
    if c is None or tuple(c.dims) != (axis,):
        return None
    colors = c.attrs.get("channel_colors") or {}
    windows = c.attrs.get("channel_windows") or {}
    out = []
    for i, v in enumerate(np.asarray(c.values).tolist()):
        key = str(v)
        out.append({"label": key if isinstance(v, str) else None,
                    "color": colors.get(key), "window": windows.get(key), "index": i})
    return out


def _color_hex(value: Any) -> str | None:
    """``"RRGGBB"`` of an ``"RRGGBB"``/``"#RRGGBB"`` string or an RGB(A) sequence."""
    if isinstance(value, str) and re.fullmatch(r"#?[0-9A-Fa-f]{6}", value.strip()):
        return value.strip().lstrip("#").upper()
    if isinstance(value, (list, tuple)) and len(value) in (3, 4):
        vals = [float(x) for x in value[:3]]
        if max(vals) <= 1.0:
            vals = [x * 255 for x in vals]
        return "".join(f"{round(min(max(x, 0), 255)):02X}" for x in vals)
    return None


def _window(channel: dict, dtype) -> dict | None:
    w = channel.get("window")
    if isinstance(w, Mapping) and all(k in w for k in ("start", "end")):
        start, end = float(w["start"]), float(w["end"])
        lo, hi = float(w.get("min", min(start, 0))), float(w.get("max", end))
    elif isinstance(w, (list, tuple)) and len(w) >= 2:
        start, end = float(w[0]), float(w[1])
        lo, hi = (float(w[2]), float(w[3])) if len(w) >= 4 else (min(start, 0.0), end)
    else:
        start = end = lo = hi = None
    if dtype is not None and np.dtype(dtype).kind in "iu" and len(w or ()) < 4:
        info = np.iinfo(np.dtype(dtype))  # the range the display window can take
        lo, hi = float(info.min), float(info.max)
        start, end = (lo, hi) if start is None else (start, end)
    if start is None:
        return None
    return {"start": start, "end": end, "min": min(lo, start), "max": max(hi, end)}


def ome_block(dims: Sequence[str], coords: Mapping[str, Any], name: str | None = None, *,
              levels: Sequence[tuple[str, Sequence[float]]] = (("0", ()),), dtype=None,
              ) -> dict | None:
    """The NGFF 0.5 ``ome`` attributes of an image: ``multiscales`` (and ``omero``).

    Parameters
    ----------
    dims : sequence of str
        Axis names, in the array's order.
    coords : mapping
        Coordinates (``xarray.Variable`` or ``DataArray``) by name: scale, translation and
        units come from regularly spaced ones, channel names from the channel axis' one.
    name : str, optional
        The multiscale's ``name``.
    levels : sequence of (path, factors)
        The pyramid, full resolution first: each level's array path and its downsampling
        factor per axis relative to level 0 (``()``: all 1). Its scale is level 0's times
        the factors; its translation is level 0's.
    dtype : numpy.dtype, optional
        The data type: integer types give the default display window (the whole range) of
        channels that have none.

    Returns
    -------
    dict or None
        ``{"version": "0.5", "multiscales": [...]}`` plus ``"omero"`` when the channels have
        names or colours; ``None`` when the axes cannot form an NGFF image (fewer than 2 or
        more than 5, or not ordered time, channel, space as NGFF requires, e.g. ImageJ's
        ``TZCYX``).

    Examples
    --------
    >>> ome = ome_block(("z", "y", "x"), {}, levels=[("0", ()), ("1", (1, 2, 2))])
    >>> [d["coordinateTransformations"][0]["scale"] for d in ome["multiscales"][0]["datasets"]]
    [[1.0, 1.0, 1.0], [1.0, 2.0, 2.0]]
    """
    axes = describe(dims, coords)
    if not valid_ngff_axes([a["type"] for a in axes]):
        return None
    out_axes = []
    for a in axes:
        ax: dict[str, Any] = {"name": a["name"]}
        if a["type"]:
            ax["type"] = a["type"]
        if a["unit"]:
            ax["unit"] = a["unit"]
        out_axes.append(ax)
    scale = [a["scale"] for a in axes]
    trans = [a["translation"] for a in axes]
    datasets = []
    for path, factors in levels:
        f = list(factors) or [1] * len(dims)
        transforms: list[dict] = [{"type": "scale", "scale": [
            float(s * k) for s, k in zip(scale, f, strict=True)]}]
        if any(trans):
            transforms.append({"type": "translation", "translation": [float(t) for t in trans]})
        datasets.append({"path": str(path), "coordinateTransformations": transforms})
    ms: dict[str, Any] = {"axes": out_axes, "datasets": datasets}
    if name:
        ms["name"] = str(name)
    ome: dict[str, Any] = {"version": "0.5", "multiscales": [ms]}
    omero = _omero(dims, coords, dtype)
    if omero:
        ome["omero"] = omero
    return ome


def _omero(dims, coords, dtype) -> dict | None:
    channels = channel_info(dims, coords)
    if not channels or not any(ch["label"] or ch["color"] or ch["window"] for ch in channels):
        return None
    out = []
    for i, ch in enumerate(channels):
        window = _window(ch, dtype)
        if window is None:  # float data without a known window: NGFF needs one per channel
            return None
        color = _color_hex(ch["color"]) or (
            "FFFFFF" if len(channels) == 1 else _DEFAULT_COLORS[i % len(_DEFAULT_COLORS)])
        entry = {"color": color, "window": window, "active": True}
        if ch["label"]:
            entry["label"] = ch["label"]
        out.append(entry)
    return {"channels": out}


# ------------------------------------------------------------------------------ coordinates
def _variable(dim: str, values, attrs: dict):
    import xarray as xr

    return xr.Variable(dim, values, attrs)


def axis_coords(dims: Sequence[str], shape: Sequence[int], axes: Sequence[Mapping]) -> dict:
    """Coordinates of the space/time axes of ``axes`` (dicts with ``scale``, ``translation``,
    ``unit``) that carry something: a scale or translation other than 1/0, or a unit."""
    out = {}
    for d, n, ax in zip(dims, shape, axes, strict=True):
        kind = axis_type(d) or ax.get("type")
        if kind not in ("space", "time"):
            continue
        scale = float(ax.get("scale") or 1.0)
        trans = float(ax.get("translation") or 0.0)
        unit = normalize_unit(ax.get("unit"), kind)
        if scale == 1.0 and trans == 0.0 and unit is None:
            continue
        out[d] = _variable(d, trans + scale * np.arange(n, dtype=np.float64),
                           {"units": unit} if unit else {})
    return out


def channel_coord(dim: str, n: int, channels: Sequence[Mapping]) -> dict:
    """The channel axis' coordinate: names (or indices), with colours and windows by name."""
    if not channels or len(channels) != n:
        return {}
    labels = [ch.get("label") for ch in channels]
    named = all(isinstance(v, str) and v for v in labels) and len(set(labels)) == n
    keys = labels if named else [str(i) for i in range(n)]
    attrs: dict[str, Any] = {}
    colors = {k: _color_hex(ch.get("color")) for k, ch in zip(keys, channels, strict=True)}
    if any(colors.values()):
        attrs["channel_colors"] = {k: v for k, v in colors.items() if v}
    windows = {k: ch.get("window") for k, ch in zip(keys, channels, strict=True)}
    if any(windows.values()):
        attrs["channel_windows"] = {k: _as_window_list(v) for k, v in windows.items() if v}
    if not named and not attrs:
        return {}
    values = np.array(labels, dtype=object).astype(str) if named else np.arange(n)
    return {dim: _variable(dim, values, attrs)}


def _as_window_list(w) -> list[float]:
    if isinstance(w, Mapping):
        return [float(w[k]) for k in ("start", "end", "min", "max") if k in w]
    return [float(x) for x in w]


def coords_from_ome(dims: Sequence[str], shape: Sequence[int], multiscale: Mapping,
                    omero: Mapping | None = None, level: int = 0) -> dict:
    """Coordinates (with units, channel names, colours and windows) of level ``level`` of an
    NGFF ``multiscale`` (0.4 or 0.5) and its ``omero`` block."""
    ndim = len(dims)
    ds = multiscale["datasets"][level]
    scale, trans = [1.0] * ndim, [0.0] * ndim
    for transforms in (multiscale.get("coordinateTransformations") or [],
                       ds.get("coordinateTransformations") or []):
        for t in transforms:  # a global transform applies after the dataset's
            if t.get("type") == "scale" and len(t.get("scale") or []) == ndim:
                scale = [a * float(s) for a, s in zip(scale, t["scale"], strict=True)]
                trans = [a * float(s) for a, s in zip(trans, t["scale"], strict=True)]
            elif t.get("type") == "translation" and len(t.get("translation") or []) == ndim:
                trans = [a + float(s) for a, s in zip(trans, t["translation"], strict=True)]
    axes = multiscale.get("axes") or []
    info = []
    for i in range(ndim):
        ax = axes[i] if i < len(axes) and isinstance(axes[i], Mapping) else {}
        info.append({"type": ax.get("type"), "unit": ax.get("unit"), "scale": scale[i],
                     "translation": trans[i]})
    out = axis_coords(dims, shape, info)
    chan = next((i for i, d in enumerate(dims) if axis_type(d) == "channel"
                 or info[i]["type"] == "channel"), None)
    if chan is not None and omero and isinstance(omero.get("channels"), list):
        out.update(channel_coord(dims[chan], shape[chan], omero["channels"]))
    return out


# ------------------------------------------------------------------------------ temporal / INR
def physical_record(dims: Sequence[str], coords: Mapping[str, Any]) -> dict | None:
    """Compact JSON of the physical metadata in ``coords``, for stores that keep no
    coordinate arrays (temporal and INR modes); ``None`` when there is nothing to keep."""
    axes = describe(dims, coords)
    rec: dict[str, Any] = {}
    for a in axes:
        if a["scale"] != 1.0 or a["translation"] != 0.0 or a["unit"]:
            rec.setdefault("axes", {})[a["name"]] = {
                k: a[k] for k in ("scale", "translation", "unit") if a[k] not in (None, 0.0)}
    channels = channel_info(dims, coords)
    if channels and any(ch["label"] or ch["color"] or ch["window"] for ch in channels):
        rec["channels"] = [{k: ch[k] for k in ("label", "color", "window") if ch[k]}
                           for ch in channels]
    return rec or None


def coords_from_record(record: Mapping | None, dims: Sequence[str], shape: Sequence[int]) -> dict:
    """Coordinates back from :func:`physical_record`."""
    if not record:
        return {}
    axes = record.get("axes") or {}
    info = [{"scale": axes.get(d, {}).get("scale", 1.0),
             "translation": axes.get(d, {}).get("translation", 0.0),
             "unit": axes.get(d, {}).get("unit")} for d in dims]
    out = axis_coords(dims, shape, info)
    chan = next((i for i, d in enumerate(dims) if axis_type(d) == "channel"), None)
    if chan is not None and record.get("channels"):
        out.update(channel_coord(dims[chan], shape[chan], record["channels"]))
    return out


def annotate_store(path: str, entries: Mapping[str, Any]) -> None:
    """Add ``entries`` to the ``bigcomp`` attributes of the store at ``path`` (its group
    ``zarr.json`` rewritten atomically, compact if it was compact)."""
    import json
    import os

    from .store import _write_atomic

    fn = os.path.join(path, "zarr.json")
    with open(fn, encoding="utf-8") as f:
        text = f.read()
    doc = json.loads(text)
    doc.setdefault("attributes", {}).setdefault("bigcomp", {}).update(entries)
    indent = 2 if "\n " in text else None
    _write_atomic(fn, json.dumps(doc, indent=indent, ensure_ascii=False,
                                 separators=None if indent else (",", ":")).encode())


def select(arr, region: Sequence[slice]):
    """``arr[region]`` keeping each space/time axis' origin: an axis without a coordinate gets
    one (pixel indices) before a region that does not start at 0 is cut, so the output's
    ``translation`` says where the region lies."""
    region = tuple(region) + (slice(None),) * (arr.ndim - len(region))
    add = {}
    for d, sl, n in zip(arr.dims, region, arr.shape, strict=True):
        if d not in arr.coords and axis_type(d) in ("space", "time") and sl.indices(n)[0]:
            add[d] = np.arange(n, dtype=np.float64)
    return (arr.assign_coords(add) if add else arr)[region]
