"""napari reader for bigcomp stores (npe2 manifest ``napari.yaml``; ``pip install
'bigcomp[napari]'``).

Opening a bigcomp store in napari (drag and drop, ``napari store.zarr`` or
``viewer.open("store.zarr", plugin="bigcomp")``) adds one image layer per channel, lazily: the
data stay dask arrays whose chunks are decoded as napari shows them. Every mode is read:
within-noise-level and lossless stores (a multiscale layer when the store has pyramid levels),
temporal and INR stores. Layers get the store's pixel sizes (``scale``), origin
(``translate``), axis names and units, channel names and colours, and contrast limits computed
from a few chunks of the smallest level (never the whole store).

The functions here do not import napari: :func:`read_bigcomp` returns napari's layer data
tuples ``(data, kwargs, "image")``, usable and testable without it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["contrast_limits", "napari_get_reader", "read_bigcomp"]

SAMPLE_CHUNKS = 4  # chunks per channel decoded for the contrast limits


def napari_get_reader(path: str | list[str]):
    """npe2 ``get_reader``: :func:`read_bigcomp` if ``path`` is a bigcomp store, else ``None``
    (so napari asks the next reader, e.g. napari-ome-zarr for plain OME-Zarr)."""
    from ..store import read_metadata

    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, (str, os.PathLike)) or read_metadata(os.fspath(path)) is None:
        return None
    return read_bigcomp


def _levels(path: str, base, meta: dict) -> list:
    """Level 0 (``base``, a dask array) and the store's lower pyramid levels (dask arrays
    read with zarr through bigcomp's codecs)."""
    import dask.array as da
    import zarr

    from ..export import store_levels

    out = [base]
    for p, _ in store_levels(meta)[1:]:
        z = zarr.open_array(path, path=p, mode="r")
        out.append(da.from_zarr(z, chunks=z.chunks))
    return out


def _open_fast(path: str):
    """A complete wnl / lossless store with an ``ome`` block as a DataArray whose coordinates
    come from that block (zarr alone, no xarray decoding of the coordinate arrays: faster
    than :func:`bigcomp.open`), or ``None``."""
    import dask.array as da
    import xarray as xr
    import zarr

    from ..metadata import coords_from_ome
    from ..store import read_metadata

    meta = read_metadata(path) or {}
    if not meta.get("complete") or "job" not in meta:
        return None
    group = zarr.open_group(path, mode="r", use_consolidated=False)
    ome = group.attrs.get("ome")
    if not ome:
        return None
    z = group[meta.get("array", "0")]
    dims = tuple(meta["job"]["dims"])
    coords = coords_from_ome(dims, z.shape, ome["multiscales"][0], ome.get("omero"))
    return xr.DataArray(da.from_zarr(z, chunks=z.chunks), dims=dims, coords=coords,
                        name=meta.get("name"), attrs={"bigcomp": meta})


def _sample(x, axis: int | None, index: int | None, n: int) -> list[np.ndarray]:
    """Up to ``n`` blocks of dask array ``x`` spread evenly over its block grid (in channel
    ``index`` of ``axis`` when given), computed together."""
    import dask

    from ..store import sample_blocks

    if axis is not None:
        x = x[(slice(None),) * axis + (slice(index, index + 1),)]
    picks = [x.blocks[i] for i in sample_blocks(x.numblocks, n)]
    return [np.asarray(b) for b in dask.compute(*picks, scheduler="threads")]


def contrast_limits(x, *, channel_axis: int | None = None, n: int = SAMPLE_CHUNKS,
                    percentiles: tuple[float, float] = (0.1, 99.9)) -> list[list[float]]:
    """Contrast limits per channel (one pair without ``channel_axis``) from ``n`` chunks of
    ``x`` spread over the array: the ``percentiles`` of their values (min/max if they are
    equal).

    Examples
    --------
    >>> import dask.array as da
    >>> x = da.from_array(np.arange(1000, dtype="uint16").reshape(10, 100), chunks=(5, 50))
    >>> contrast_limits(x, n=4, percentiles=(0, 100))
    [[0.0, 999.0]]
    """
    channels = [None] if channel_axis is None else range(x.shape[channel_axis])
    out = []
    for c in channels:
        vals = np.concatenate([b.ravel() for b in _sample(x, channel_axis, c, n)])
        vals = vals[np.isfinite(vals)] if vals.dtype.kind == "f" else vals
        if vals.size == 0:
            out.append([0.0, 1.0])
            continue
        lo, hi = (float(v) for v in np.percentile(vals, percentiles))
        if hi <= lo:
            lo, hi = float(vals.min()), float(vals.max())
        if hi <= lo:
            hi = lo + 1.0
        out.append([lo, hi])
    return out


def _full_range(window, dtype) -> bool:
    """Whether an omero-style window is just the dtype's range (written when none was known)."""
    if np.dtype(dtype).kind not in "iu" or not window or len(window) < 2:
        return True
    info = np.iinfo(np.dtype(dtype))
    return float(window[0]) <= info.min and float(window[1]) >= info.max


def read_bigcomp(path: str | list[str]) -> list[tuple[Any, dict, str]]:
    """Layer data tuples of a bigcomp store (any mode), lazily.

    Parameters
    ----------
    path : str
        A bigcomp store.

    Returns
    -------
    list of (data, kwargs, "image")
        ``data``: a dask array, or a list of them (full resolution first) when the store has
        pyramid levels (``kwargs["multiscale"]``). ``kwargs``: ``name``, ``scale``,
        ``translate``, ``axis_labels``, ``units`` (``"pixel"`` where unknown), and, with a
        channel axis, ``channel_axis`` with per-channel ``name``, ``colormap`` and
        ``contrast_limits``; ``metadata["bigcomp"]`` is the store's metadata.

    Examples
    --------
    >>> [(data, kwargs, kind)] = read_bigcomp("stack.zarr")  # doctest: +SKIP
    """
    from ..metadata import axis_type, channel_info, describe
    from ..pipeline import open as open_store

    if isinstance(path, (list, tuple)):
        path = path[0]
    path = os.fspath(path)
    arr = _open_fast(path)
    if arr is None:
        arr = open_store(path)
    meta = arr.attrs.get("bigcomp", {})
    dims = tuple(map(str, arr.dims))
    coords = {k: v.variable for k, v in arr.coords.items()}
    axes = describe(dims, coords)
    levels = _levels(path, arr.data, meta)
    chan = next((i for i, d in enumerate(dims) if axis_type(d) == "channel"), None)
    keep = [i for i in range(len(dims)) if i != chan]
    name = str(arr.name) if arr.name is not None else os.path.basename(os.path.normpath(path))
    kwargs: dict[str, Any] = {
        "scale": [axes[i]["scale"] for i in keep],
        "translate": [axes[i]["translation"] for i in keep],
        "axis_labels": [dims[i] for i in keep],
        "units": [axes[i]["unit"] or "pixel" for i in keep],
        "metadata": {"bigcomp": meta, "path": os.path.abspath(path)},
        "multiscale": len(levels) > 1,
    }
    limits = contrast_limits(levels[-1], channel_axis=chan)
    if chan is None:
        kwargs["name"] = name
        kwargs["contrast_limits"] = limits[0]
    else:
        n = arr.shape[chan]
        info = channel_info(dims, coords) or [{"label": None, "color": None, "window": None}
                                             for _ in range(n)]
        kwargs["channel_axis"] = chan
        kwargs["name"] = [f"{name} [{ch['label'] or i}]" for i, ch in enumerate(info)]
        kwargs["contrast_limits"] = [
            [float(ch["window"][0]), float(ch["window"][1])]
            if ch.get("window") and not _full_range(ch["window"], arr.dtype) else lim
            for ch, lim in zip(info, limits, strict=True)]
        colors = [ch.get("color") for ch in info]
        if all(colors):
            kwargs["colormap"] = ["gray" if c.upper() == "FFFFFF" else f"#{c.lower()}"
                                  for c in colors]
    data = levels if len(levels) > 1 else levels[0]
    return [(data, kwargs, "image")]
