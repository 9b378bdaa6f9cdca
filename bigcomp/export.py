"""Plain OME-Zarr out of a bigcomp store, for readers that do not have bigcomp.

:func:`export` decodes a store (or a region of it), level by level when it has a pyramid, and
writes a zarr v3 / OME-Zarr 0.5 image with one of zarr's standard codecs (zstd by default, or
blosc) that tensorstore, ngff-zarr, ome-zarr-py, napari-ome-zarr, Fiji (via n5-zarr / the
OME-Zarr readers) or another language read without bigcomp. It is out of core: one dask task
per output chunk decodes the source chunks it needs and writes that chunk, so memory is bounded
by chunk size x workers.

The output keeps the metadata: axis names and types, pixel sizes and units, translation (a
region's origin), channel names, colours and windows (``ome`` attributes, derived from the
coordinates by :func:`bigcomp.metadata.ome_block`), the coordinates themselves (so
``xarray.open_zarr`` sees them) and, as ``bigcomp_export``, where it came from (the store, its
mode and error bound). :func:`bigcomp.io.write_decoded` (``bigcomp decompress out.zarr``) writes
the same layout with one level.

Layout of the output::

    out.zarr/
      zarr.json   group: attributes {"ome": {...}, "bigcomp_export": {...}}; consolidated
      0/          level 0 (full resolution), zstd; dimension_names = the axis names
      1/, 2/ ...  lower pyramid levels, as in the store
      x/, c/ ...  coordinate arrays (xarray's encoding)
"""

from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ParameterError

if TYPE_CHECKING:
    import xarray

__all__ = ["COMPRESSORS", "export", "write_ome_zarr"]

COMPRESSORS = ("zstd", "blosc")


def _codec(compressor: str):
    from zarr.codecs import BloscCodec, ZstdCodec

    if compressor == "zstd":
        return ZstdCodec(level=3)
    if compressor == "blosc":
        return BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")
    raise ParameterError(f"compressor must be one of {COMPRESSORS}, got {compressor!r}")


@dataclass(frozen=True)
class _BlockWriter:
    """Write one block into a zarr array at ``path`` (picklable; the array is opened once per
    process)."""

    path: str

    def __call__(self, block: np.ndarray, region: tuple[tuple[int, int], ...]) -> int:
        arr = _open_array(self.path)
        arr[tuple(slice(a, b) for a, b in region)] = np.asarray(block)
        return int(np.asarray(block).nbytes)


@functools.lru_cache(maxsize=64)
def _open_array(path: str):
    import zarr

    return zarr.open_array(path, mode="r+")


def write_ome_zarr(levels: list[xarray.DataArray], dest: str, *, compressor: str = "zstd",
                   factors: list[tuple[float, ...]] | None = None, name: str | None = None,
                   provenance: dict | None = None, scheduler="threads",
                   progress: bool | None = None, label: str | None = None) -> int:
    """Write ``levels`` (full resolution first) as a plain OME-Zarr 0.5 image at ``dest``.

    Parameters
    ----------
    levels : list of xarray.DataArray
        Level 0 with its coordinates, then lower levels (their coordinates are not used).
    dest : str
        A new directory.
    compressor : {"zstd", "blosc"}
        zstd (level 3, the default) or blosc (zstd level 3, byte shuffle).
    factors : list of tuple of float, optional
        Each level's downsampling factors relative to level 0 (default: from the shapes).
    name : str, optional
        The image name (``multiscales[0].name``).
    provenance : dict, optional
        Stored as the group attribute ``bigcomp_export``.
    scheduler, progress, label
        dask scheduler, progress bar and its label.

    Returns
    -------
    int
        Bytes of decoded data written.
    """
    import warnings

    import xarray as xr
    import zarr
    from dask import delayed
    from zarr.errors import UnstableSpecificationWarning, ZarrUserWarning

    from .metadata import ome_block
    from .pipeline import _compute, _scheduler
    from .store import _coords_to_write, _jsonable

    base = levels[0]
    dims = tuple(map(str, base.dims))
    if factors is None:
        factors = [tuple(n0 / max(n, 1) for n0, n in zip(base.shape, lv.shape, strict=True))
                   for lv in levels]
    paths = [str(i) for i in range(len(levels))]
    codec = _codec(compressor)
    coords = {k: v.variable for k, v in base.coords.items() if set(v.dims) <= set(dims)}
    with warnings.catch_warnings():
        # string coordinates (channel names) use a zarr v3 data type without a finished spec
        warnings.simplefilter("ignore", UnstableSpecificationWarning)
        if coords:
            ds = xr.Dataset(coords=_coords_to_write(coords))
            ds.to_zarr(dest, mode="w-", zarr_format=3, consolidated=False,
                       encoding={k: {"_FillValue": None} for k, v in ds.coords.items()
                                 if v.dtype.kind == "f"})
            group = zarr.open_group(dest, mode="r+", use_consolidated=False)
        else:
            group = zarr.open_group(dest, mode="w-", zarr_format=3)
    tasks = []
    nbytes = 0
    attrs = _jsonable({k: v for k, v in base.attrs.items() if k != "bigcomp"})
    for path, level in zip(paths, levels, strict=True):
        data = level.data
        chunks = tuple(int(c) for c in data.chunksize)
        arr = group.create_array(path, shape=level.shape, chunks=chunks, dtype=level.dtype,
                                 compressors=codec, fill_value=0, dimension_names=dims,
                                 attributes=attrs if path == "0" else {})
        data = data.rechunk(chunks)  # one task per output chunk: no two write one chunk
        writer = _BlockWriter(os.path.join(os.path.abspath(dest), path))
        blocks = data.to_delayed()
        starts = [np.cumsum((0, *c[:-1])) for c in data.chunks]
        for idx in np.ndindex(*data.numblocks):
            region = tuple((int(s[i]), int(s[i]) + int(c[i]))
                           for s, c, i in zip(starts, data.chunks, idx, strict=True))
            tasks.append(delayed(writer, pure=False)(blocks[idx], region))
        nbytes += int(np.prod(level.shape)) * level.dtype.itemsize
        del arr
    ome = ome_block(dims, coords, name, levels=list(zip(paths, factors, strict=True)),
                    dtype=base.dtype)
    extra: dict[str, Any] = {}
    if ome is not None:
        extra["ome"] = ome
    if provenance:
        extra["bigcomp_export"] = _jsonable(provenance)
    group.attrs.update(extra)
    with _scheduler(scheduler) as (client, kwargs):
        _compute(tasks, client, kwargs, progress, f"writing {label or dest}")
    _open_array.cache_clear()
    with warnings.catch_warnings():
        # "consolidated metadata is not part of the zarr v3 spec": zarr-python and xarray read
        # it (xarray.open_zarr then opens without a warning); other readers ignore the key
        warnings.simplefilter("ignore", ZarrUserWarning)
        warnings.simplefilter("ignore", UnstableSpecificationWarning)
        zarr.consolidate_metadata(dest)
    return nbytes


def store_levels(meta: dict) -> list[tuple[str, tuple[float, ...]]]:
    """(path, factors relative to level 0) of each level of a store, level 0 first, from its
    ``bigcomp`` metadata (``levels``, written by :mod:`bigcomp.pyramid`)."""
    from .store import DATA

    out: list[tuple[str, tuple[float, ...]]] = [(str(meta.get("array", DATA)), ())]
    if meta.get("mode") in ("temporal", "inr") or meta.get("level"):
        return out
    return out + [(str(lv["path"]), tuple(float(f) for f in lv["factors"]))
                  for lv in meta.get("levels") or ()]


def _level_region(region: tuple[slice, ...], shape0, shape, factors) -> tuple[slice, ...]:
    """The region of a lower level covering ``region`` of level 0."""
    out = []
    for sl, n0, n, f in zip(region, shape0, shape, factors, strict=True):
        start, stop, _ = sl.indices(n0)
        out.append(slice(min(math.floor(start / f), n),
                         min(max(math.ceil(stop / f), math.floor(start / f) + 1), n)))
    return tuple(out)


def export(store: str | os.PathLike, dest: str | os.PathLike, *, region=None,
           compressor: str = "zstd", scheduler="threads", progress: bool | None = None,
           overwrite: bool = False) -> dict:
    """Write a bigcomp store (or a region of it) as a plain OME-Zarr, readable without bigcomp.

    Parameters
    ----------
    store : str or os.PathLike
        A bigcomp store of any mode (wnl, lossless, temporal, INR).
    dest : str or os.PathLike
        The output directory (``.zarr``). Written to a temporary next to it and renamed into
        place once complete.
    region : tuple of slice, optional
        Part of level 0 to export (lower levels: the part covering it).
    compressor : {"zstd", "blosc"}
        zarr's zstd codec (level 3, default) or blosc (zstd level 3, byte shuffle).
    scheduler : str or distributed.Client
        dask scheduler (default ``"threads"``).
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    overwrite : bool
        Replace an existing zarr store at ``dest``.

    Returns
    -------
    dict
        ``path``, ``levels``, ``shape`` (level 0), ``raw_bytes`` (decoded, all levels),
        ``stored_bytes`` (the output's files) and ``seconds``.

    Raises
    ------
    BigcompError
        Not a bigcomp store, or an incomplete one.
    StoreExistsError
        ``dest`` exists and ``overwrite`` is false.
    ParameterError
        Unknown compressor.

    Notes
    -----
    Axes not in NGFF order (time, channel, space) are transposed into it. Lower pyramid
    levels are read with zarr (bigcomp's codecs), level 0 with :func:`bigcomp.open`.

    Examples
    --------
    >>> export("stack.zarr", "stack.plain.zarr")  # doctest: +SKIP
    """
    import dask.array as da
    import zarr

    from .io import write_decoded
    from .metadata import ngff_order, select
    from .pipeline import open as open_store

    t0 = time.perf_counter()
    _codec(compressor)  # check before any work
    store, dest = os.fspath(store), os.fspath(dest)
    base = open_store(store)
    meta = base.attrs.get("bigcomp", {})
    region = tuple(region) if region is not None else ()
    region = region + (slice(None),) * (base.ndim - len(region))
    arrays = [select(base, region)]
    factors = [tuple(1.0 for _ in base.dims)]
    for path, f in store_levels(meta)[1:]:
        z = zarr.open_array(store, path=path, mode="r")
        lv = da.from_zarr(z, chunks=z.chunks)
        lv = lv[_level_region(region, base.shape, z.shape, f)]
        arrays.append(_wrap(lv, base.dims))
        factors.append(f)
    perm = ngff_order(base.dims)
    if perm is not None:
        order = [base.dims[i] for i in perm]
        arrays = [a.transpose(*order) for a in arrays]
        factors = [tuple(f[i] for i in perm) for f in factors]
    provenance = {"source": os.path.abspath(store), "mode": meta.get("mode") or meta.get(
        "job", {}).get("mode"), "error_bound": meta.get("error_bound", meta.get("bound")),
        "bigcomp": meta.get("version"),
        "region": [[s.start, s.stop] for s in region] if any(
            s != slice(None) for s in region) else None}
    write_decoded(arrays[0], dest, scheduler=scheduler, progress=progress,
                  overwrite=overwrite, levels=arrays[1:], factors=factors,
                  compressor=compressor, provenance=provenance)
    stored = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(dest) for f in fs)
    raw = sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in arrays)
    return {"path": dest, "levels": len(arrays), "shape": tuple(arrays[0].shape),
            "raw_bytes": raw, "stored_bytes": stored, "seconds": time.perf_counter() - t0}


def _wrap(data, dims) -> xarray.DataArray:
    import xarray as xr

    return xr.DataArray(data, dims=dims)
