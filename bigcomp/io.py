"""Lazy readers: numpy / dask / xarray arrays and TIFF, HDF5, zarr v2/v3 and OME-Zarr files.

:func:`open_source` turns whatever the user passes into a :class:`Source`: shape, dtype, axis
names, coordinates and attributes, plus :meth:`Source.to_dask` giving a lazy dask array. File
readers never load the whole array: every dask block reads its own region, through a handle
opened once per process (so the graph pickles to distributed workers as a path, not a handle).
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ParameterError, UnsupportedDataError

if TYPE_CHECKING:
    import dask.array
    import xarray

__all__ = ["Source", "default_dims", "open_source", "split_path"]

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZARR_FILES = ("zarr.json", ".zgroup", ".zarray")
_SUPPORTED = ("TIFF (.tif/.tiff, read with tifffile), HDF5 (.h5/.hdf5/.nxs, 'file.h5:/dataset'), "
              "zarr v2/v3 and OME-Zarr directories, or a numpy/dask/xarray array")


def is_zarr_dir(path: str) -> bool:
    """Whether directory ``path`` holds a zarr v2 or v3 group or array."""
    return any(os.path.exists(os.path.join(path, f)) for f in _ZARR_FILES)


def default_dims(ndim: int) -> tuple[str, ...]:
    """Axis names used when the source has none: ``yx``, ``zyx``, ``tzyx``, ``tczyx``.

    Examples
    --------
    >>> default_dims(4)
    ('t', 'z', 'y', 'x')
    """
    names = {0: (), 1: ("x",), 2: ("y", "x"), 3: ("z", "y", "x"), 4: ("t", "z", "y", "x"),
             5: ("t", "c", "z", "y", "x")}
    return names.get(ndim, tuple(f"dim_{i}" for i in range(ndim)))


def _check_dims(dims, ndim: int) -> tuple[str, ...]:
    if isinstance(dims, str) and len(dims) == ndim and "," not in dims:
        dims = tuple(dims)
    elif isinstance(dims, str):
        dims = tuple(d.strip() for d in dims.split(","))
    dims = tuple(str(d) for d in dims)
    if len(dims) != ndim or len(set(dims)) != ndim:
        raise ParameterError(f"dims must name each of the {ndim} axes once, got {dims!r}")
    return dims


@dataclass
class Source:
    """A lazily readable array with its axis names, coordinates and attributes.

    Attributes
    ----------
    kind : str
        ``"numpy"``, ``"dask"``, ``"xarray"``, ``"tiff"``, ``"hdf5"``, ``"zarr"``,
        ``"ome-zarr"`` or ``"bigcomp"`` (a store written by :func:`bigcomp.compress`).
    shape, dtype, dims, name, path
        Description of the array (``path`` is ``None`` for in-memory sources).
    coords : dict
        Coordinate variables (``xarray.Variable``) by name.
    attrs : dict
        Attributes of the array (for a bigcomp store, ``attrs["bigcomp"]`` is its metadata).
    """

    kind: str
    shape: tuple[int, ...]
    dtype: np.dtype
    dims: tuple[str, ...]
    name: str | None = None
    path: str | None = None
    coords: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    _array: Any = None  # dask array for in-memory and bigcomp sources
    _reader: Any = None  # _BlockReader for files

    def to_dask(self, chunks=None) -> dask.array.Array:
        """Lazy dask array, with ``chunks`` (one block read per chunk) or the native chunks."""
        import dask.array as da
        from dask.base import tokenize

        if self._reader is None:
            return self._array if chunks is None else self._array.rechunk(chunks)
        chunks = da.core.normalize_chunks(chunks or self._reader.native_chunks, self.shape,
                                          dtype=self.dtype)
        name = f"read-{self.kind}-" + tokenize(self._reader.token, chunks)
        return da.map_blocks(self._reader, chunks=chunks, dtype=self.dtype, name=name,
                             meta=np.empty((0,) * len(self.shape), self.dtype))

    def to_xarray(self, chunks=None) -> xarray.DataArray:
        """Lazy ``xarray.DataArray`` of the source."""
        import xarray as xr

        return xr.DataArray(self.to_dask(chunks), dims=self.dims, coords=self.coords,
                            attrs=self.attrs, name=self.name)


# ---------------------------------------------------------------------------- file handles
_HANDLES: dict[tuple, Any] = {}
_HANDLES_LOCK = threading.Lock()


@dataclass(frozen=True)
class _BlockReader:
    """Picklable callable reading one dask block (``block_info``) of a file-backed array."""

    kind: str
    path: str
    key: str | int | None
    native_chunks: tuple[int, ...]
    token: tuple = ()
    perm: tuple[int, ...] | None = None  # axis i of the blocks is axis perm[i] of the file

    def handle(self):
        stat = os.stat(self.path)
        cache_key = (self.kind, self.path, self.key, stat.st_mtime_ns, stat.st_size)
        with _HANDLES_LOCK:  # one handle per file and process, opened on first use
            if cache_key not in _HANDLES:
                _HANDLES[cache_key] = _OPENERS[self.kind](self.path, self.key)
            return _HANDLES[cache_key]

    def __call__(self, block_info=None) -> np.ndarray:
        """Read one block.

        Raises
        ------
        SourceReadError
            The region cannot be read: the file is truncated, damaged or gone.
        """
        from .store import SourceReadError

        loc = block_info[None]["array-location"]
        region = tuple(slice(a, b) for a, b in loc)
        try:
            if self.perm is not None:
                native = [slice(None)] * len(self.perm)
                for i, j in enumerate(self.perm):
                    native[j] = region[i]
                return np.transpose(np.asarray(self.handle()[tuple(native)]), self.perm)
            return np.asarray(self.handle()[region])
        except MemoryError:
            raise
        except Exception as exc:  # the readers' errors vary (tifffile, h5py, zarr, OS)
            where = ", ".join(f"{a}:{b}" for a, b in loc)
            raise SourceReadError(
                f"cannot read [{where}] of {self.path} ({type(exc).__name__}: {exc}): the file "
                "may be truncated or damaged (still being written or copied?); check it, "
                "then run the same command again") from exc


def _open_tiff(path: str, series):
    import tifffile
    import zarr

    tif = tifffile.TiffFile(path)
    return zarr.open_array(tif.aszarr(series=series or 0), mode="r")


def _open_hdf5(path: str, key):
    import h5py

    return h5py.File(path, "r")[key]


def _open_zarr(path: str, key):
    import zarr

    return zarr.open_array(path, path=key or "", mode="r")


_OPENERS = {"tiff": _open_tiff, "hdf5": _open_hdf5, "zarr": _open_zarr, "ome-zarr": _open_zarr}


def _file_token(path: str) -> tuple:
    stat = os.stat(path)
    return (path, stat.st_mtime_ns, stat.st_size)


# ---------------------------------------------------------------------------- path handling
def split_path(source: str | os.PathLike, dataset: str | None = None) -> tuple[str, str | None]:
    """Split ``"file.h5:/group/data"`` into the file and the dataset inside it.

    Examples
    --------
    >>> split_path("no/such/file.h5:/entry/data")
    ('no/such/file.h5', '/entry/data')
    """
    text = os.fspath(source)
    if dataset is None and not os.path.exists(text) and ":" in text[2:]:
        head, _, tail = text.rpartition(":")
        if head and not tail.startswith(("\\", "//")):
            return head, tail
    return text, dataset


def _sniff(path: str) -> str:
    if os.path.isdir(path):
        if is_zarr_dir(path):
            return "zarr"
        raise UnsupportedDataError(
            f"{path} is a directory but not a zarr store (no zarr.json, .zgroup or .zarray); "
            f"bigcomp reads {_SUPPORTED}")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[:4] in _TIFF_MAGIC:
        return "tiff"
    if head == _HDF5_MAGIC:
        return "hdf5"
    raise UnsupportedDataError(
        f"cannot read {path}: unknown file format (not TIFF, HDF5 or zarr); bigcomp reads "
        f"{_SUPPORTED}. Convert it first or pass the data as an array.")


def open_source(source, *, dataset: str | None = None, dims=None) -> Source:
    """Describe ``source`` (array or path) as a lazily readable :class:`Source`.

    Parameters
    ----------
    source : array_like, dask.array.Array, xarray.DataArray, str or os.PathLike
        The data, or a path to a TIFF, HDF5 (``"file.h5:/dataset"``) or zarr store.
    dataset : str, optional
        Dataset inside an HDF5 file or array inside a zarr group; for a multi-series TIFF,
        the series number.
    dims : sequence of str, optional
        Axis names, overriding the source's (default by dimensionality: :func:`default_dims`).

    Returns
    -------
    Source

    Raises
    ------
    FileNotFoundError
        The path does not exist.
    UnsupportedDataError
        The format is not one bigcomp reads.
    ParameterError
        ``dataset`` is missing (several candidates) or unknown, or ``dims`` do not fit.
    """
    if isinstance(source, (str, os.PathLike)):
        path, dataset = split_path(source, dataset)
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such file or directory: {path!r} ({_SUPPORTED})")
        kind = _sniff(path)
        src = {"tiff": _tiff_source, "hdf5": _hdf5_source, "zarr": _zarr_source}[kind](
            path, dataset)
        if kind == "tiff" and dims is None:
            src = _ngff_order(src)
    else:
        src = _array_source(source)
    if dims is not None:
        new = _check_dims(dims, len(src.shape))
        if src.coords:
            src.coords = {k: v for k, v in src.coords.items() if set(v.dims) <= set(src.dims)}
            rename = dict(zip(src.dims, new, strict=True))
            src.coords = {rename.get(k, k): v.copy() for k, v in src.coords.items()}
            for v in src.coords.values():
                v.dims = tuple(rename[d] for d in v.dims)
        src.dims = new
    return src


def _array_source(obj) -> Source:
    import dask.array as da

    mod = type(obj).__module__
    if mod.startswith("xarray") and hasattr(obj, "dims") and hasattr(obj, "variable"):
        data = obj.data
        arr = data if isinstance(data, da.Array) else da.from_array(np.asarray(data),
                                                                    chunks="auto")
        coords = {k: v.variable for k, v in obj.coords.items()}
        return Source("xarray", tuple(obj.shape), np.dtype(obj.dtype), tuple(map(str, obj.dims)),
                      None if obj.name is None else str(obj.name), None, coords,
                      dict(obj.attrs), arr)
    if mod.startswith("xarray"):
        raise UnsupportedDataError(
            "pass one xarray.DataArray (e.g. ds['name']), not a Dataset")
    if isinstance(obj, da.Array):
        return Source("dask", tuple(obj.shape), np.dtype(obj.dtype), default_dims(obj.ndim),
                      _array=obj)
    if not hasattr(obj, "shape") or not hasattr(obj, "dtype"):
        obj = np.asarray(obj)
    arr = da.from_array(obj, chunks="auto") if not isinstance(obj, np.ndarray) else (
        da.from_array(obj, chunks="auto", asarray=False))
    return Source("numpy", tuple(obj.shape), np.dtype(obj.dtype), default_dims(len(obj.shape)),
                  _array=arr)


def _tiff_source(path: str, dataset) -> Source:
    try:
        import tifffile
    except ImportError as exc:  # pragma: no cover - io extra
        raise ImportError("reading TIFF needs tifffile: pip install 'bigcomp[io]'") from exc
    from .tiffmeta import tiff_coords

    series = int(dataset) if dataset is not None else 0
    with tifffile.TiffFile(path) as tif:
        if not 0 <= series < len(tif.series):
            raise ParameterError(f"{path} has {len(tif.series)} image series; got {dataset!r}")
        s = tif.series[series]
        shape, dtype, axes = tuple(s.shape), np.dtype(s.dtype), s.axes.lower()
        native = (1,) * max(len(shape) - 2, 0) + shape[-2:]  # whole planes
        dims = tuple(axes) if set(axes) <= set("tczyx") and len(set(axes)) == len(axes) else (
            default_dims(len(shape)))
        try:  # pixel sizes, units, time step, channels: OME-XML, ImageJ or resolution tags
            coords = tiff_coords(tif, series, dims, shape)
        except Exception:  # noqa: BLE001 - damaged metadata never stops reading the pixels
            coords = {}
    reader = _BlockReader("tiff", os.path.abspath(path), series, native,
                          (*_file_token(path), series))
    return Source("tiff", shape, dtype, dims, Path(path).stem.split(".")[0], path, coords,
                  _reader=reader)


def _ngff_order(src: Source) -> Source:
    """A file source with its axes in NGFF order (time, channel, space: ImageJ's ``TZCYX``
    becomes ``TCZYX``), read through a transposing block reader; others unchanged."""
    from dataclasses import replace

    from .metadata import ngff_order

    perm = ngff_order(src.dims)
    if perm is None:
        return src
    reader = replace(src._reader, native_chunks=tuple(src._reader.native_chunks[i]
                                                      for i in perm),
                     token=(*src._reader.token, perm), perm=perm)
    return replace(src, shape=tuple(src.shape[i] for i in perm),
                   dims=tuple(src.dims[i] for i in perm), _reader=reader)


def _hdf5_source(path: str, dataset) -> Source:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - io extra
        raise ImportError("reading HDF5 needs h5py: pip install 'bigcomp[io]'") from exc
    with h5py.File(path, "r") as f:
        if dataset is None:
            found: list[str] = []
            f.visititems(lambda n, o: found.append("/" + n) if isinstance(o, h5py.Dataset)
                         and o.ndim >= 2 else None)
            if len(found) != 1:
                raise ParameterError(
                    f"{path} holds {len(found)} image datasets {found[:10]}: name one, as "
                    f"'{path}:/path/to/data' or dataset='/path/to/data'")
            dataset = found[0]
        obj = f.get(dataset)
        if not isinstance(obj, h5py.Dataset):
            raise ParameterError(f"{path} has no dataset {dataset!r}")
        shape, dtype = tuple(obj.shape), np.dtype(obj.dtype)
        labels = tuple(d.label for d in obj.dims)
        native = obj.chunks or (1,) * max(len(shape) - 2, 0) + shape[-2:]
        attrs = {k: _plain(v) for k, v in obj.attrs.items() if k != "DIMENSION_LIST"}
    dims = labels if all(labels) and len(set(labels)) == len(labels) else default_dims(len(shape))
    reader = _BlockReader("hdf5", os.path.abspath(path), dataset, tuple(native),
                          (*_file_token(path), dataset))
    return Source("hdf5", shape, dtype, dims, dataset.rsplit("/", 1)[-1], path,
                  attrs={k: v for k, v in attrs.items() if v is not None}, _reader=reader)


def _plain(value):
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.size <= 64:
        return value.tolist()
    return value if isinstance(value, (str, int, float, bool)) else None


def _zarr_source(path: str, dataset) -> Source:
    import zarr

    node = zarr.open(path, path=dataset or "", mode="r")
    if isinstance(node, zarr.Group):
        attrs = node.attrs.asdict()
        if "bigcomp" in attrs:
            from .pipeline import open as bigcomp_open

            arr = bigcomp_open(os.path.join(path, dataset or ""))
            return Source("bigcomp", tuple(arr.shape), np.dtype(arr.dtype), tuple(arr.dims),
                          None if arr.name is None else str(arr.name), path,
                          {k: v.variable for k, v in arr.coords.items()}, dict(arr.attrs),
                          arr.data)
        ome = attrs.get("ome", attrs)
        if "multiscales" in ome:
            return _ome_source(path, dataset, node, ome["multiscales"][0])
        arrays = [n for n, a in node.arrays() if a.ndim >= 2]
        if len(arrays) != 1:
            raise ParameterError(
                f"zarr group {path} holds {len(arrays)} image arrays {sorted(arrays)[:10]}: name "
                f"one, as '{path}:name' or dataset='name'")
        dataset = f"{dataset or ''}/{arrays[0]}".strip("/")
        node = node[arrays[0]]
    dims = getattr(node.metadata, "dimension_names", None) or node.attrs.get("_ARRAY_DIMENSIONS")
    dims = tuple(dims) if dims and all(dims) else default_dims(node.ndim)
    attrs = {k: v for k, v in node.attrs.asdict().items() if not k.startswith("_ARRAY")}
    reader = _BlockReader("zarr", os.path.abspath(path), dataset, tuple(node.chunks),
                          (os.path.abspath(path), dataset, _zarr_mtime(path)))
    return Source("zarr", tuple(node.shape), np.dtype(node.dtype), dims,
                  (dataset or Path(path).stem).rsplit("/", 1)[-1], path, attrs=attrs,
                  _reader=reader)


def _zarr_mtime(path: str) -> int:
    return max((os.stat(os.path.join(path, f)).st_mtime_ns for f in _ZARR_FILES
                if os.path.exists(os.path.join(path, f))), default=0)


def _ome_source(path: str, dataset, group, multiscale: dict) -> Source:
    from .metadata import coords_from_ome

    level = multiscale["datasets"][0]
    key = f"{dataset or ''}/{level['path']}".strip("/")
    arr = group[level["path"]]
    axes = multiscale.get("axes") or []
    names = tuple((a["name"] if isinstance(a, dict) else a) for a in axes)
    dims = names if len(names) == arr.ndim else default_dims(arr.ndim)
    attrs = group.attrs.asdict()
    omero = attrs.get("ome", attrs).get("omero")
    coords = coords_from_ome(dims, arr.shape, multiscale if len(names) == arr.ndim
                             else {"datasets": [level]}, omero)
    reader = _BlockReader("ome-zarr", os.path.abspath(path), key, tuple(arr.chunks),
                          (os.path.abspath(path), key, _zarr_mtime(path)))
    return Source("ome-zarr", tuple(arr.shape), np.dtype(arr.dtype), dims,
                  multiscale.get("name") or Path(path).stem, path, coords, {}, _reader=reader)


# ---------------------------------------------------------------------------- writers
def write_decoded(arr: xarray.DataArray, path: str, *, scheduler="threads",
                  progress: bool | None = True, overwrite: bool = False,
                  compressor: str = "zstd", levels: list | None = None,
                  factors: list | None = None, provenance: dict | None = None) -> None:
    """Write a (lazy) DataArray to OME-TIFF (``.tif``/``.tiff``) or OME-Zarr (``.zarr``),
    atomically, with its physical metadata.

    TIFF is written plane by plane, a slab of chunks at a time (BigTIFF above 4 GB), as an
    OME-TIFF when the axes are TIFF's (T, C, Z, Y, X): pixel sizes, time step, channel names
    and colours from the coordinates (:func:`bigcomp.tiffmeta.tiff_metadata`), and the x/y
    resolution tags in pixels per centimetre. zarr is written as a plain OME-Zarr 0.5 image
    (:func:`bigcomp.export.write_ome_zarr`: array ``0`` with zstd, ``ome`` attributes,
    coordinates, attrs), one task per chunk. Either is written to
    ``<path>.partial-<uuid>`` next to ``path`` and renamed onto ``path`` only once complete:
    a failed write (a corrupt chunk, a full disk) removes the temporary and leaves ``path`` as
    it was — absent, or the old output when ``overwrite`` is true.

    Parameters
    ----------
    arr : xarray.DataArray
    path : str
        ``.tif``, ``.tiff`` or ``.zarr``.
    scheduler : str
        dask scheduler of the decoding.
    progress : bool, optional
        Show a progress bar.
    overwrite : bool
        Replace an existing ``path`` (a file, or a zarr store; never another directory).
    compressor : {"zstd", "blosc"}
        zarr output: the codec.
    levels, factors, provenance
        zarr output: lower pyramid levels (DataArrays), every level's downsampling factors
        and the ``bigcomp_export`` attribute (see :func:`bigcomp.export.write_ome_zarr`).

    Raises
    ------
    ParameterError
        Unknown output format, or TIFF output of a 1-D array.
    StoreExistsError
        ``path`` exists and ``overwrite`` is false, or it is a directory that is not a zarr
        store.
    StoreWriteError
        The file system refused a write (disk full, no permission).
    CorruptChunkError
        A chunk of the source store is damaged.
    """
    from .store import StoreExistsError, writing

    path = os.path.normpath(os.fspath(path))  # "out.zarr/": the temporary goes next to it
    fmt = "zarr" if path.lower().endswith(".zarr") else "tiff" if path.lower().endswith(
        (".tif", ".tiff")) else None
    if fmt is None:
        raise ParameterError(f"unknown output format {path!r}: use .tif/.tiff or .zarr")
    if fmt == "tiff" and arr.ndim < 2:
        raise ParameterError("TIFF output needs at least 2 axes: write .zarr instead")
    if os.path.lexists(path) and not overwrite:
        raise StoreExistsError(f"{path} exists: pass overwrite=True (CLI: --overwrite) to "
                               "replace it, or choose another output path")
    if os.path.isdir(path) and not os.path.islink(path) and not is_zarr_dir(path):
        raise StoreExistsError(f"{path} is a directory but not a zarr store: refusing to "
                               "replace it; remove it yourself or choose another output path")
    tmp = f"{path}.partial-{uuid.uuid4().hex[:12]}"
    try:
        with writing(path, "run the command again"):
            if fmt == "zarr":
                from .export import write_ome_zarr

                write_ome_zarr([arr, *(levels or [])], tmp, compressor=compressor,
                               factors=factors, name=None if arr.name is None else str(
                                   arr.name), provenance=provenance, scheduler=scheduler,
                               progress=progress, label=path)
            else:
                _write_tiff(arr, tmp, path, scheduler, progress)
            _swap_in(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def _remove(path: str) -> None:
    """Delete a file or directory tree if it exists (best effort: a cleanup)."""
    import shutil

    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        with contextlib.suppress(OSError):
            os.unlink(path)


def _swap_in(new: str, path: str) -> None:
    """Rename ``new`` onto ``path``: atomic for a file over a file or nothing; a directory
    involved is moved aside first and put back if the second rename fails."""
    if not os.path.lexists(path) or not (os.path.isdir(new) or os.path.isdir(path)):
        os.replace(new, path)
        return
    old = f"{path}.old-{uuid.uuid4().hex[:12]}"
    os.replace(path, old)
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old, path)
        raise
    _remove(old)


def _write_tiff(arr: xarray.DataArray, tmp: str, path: str, scheduler, progress) -> None:
    import tifffile

    from .pipeline import _progress_bar
    from .tiffmeta import tiff_metadata

    data = arr.data
    lead = arr.shape[:-2]
    depth = data.chunks[-3] if arr.ndim >= 3 else (1,)
    slabs = [(outer, start, n) for outer in np.ndindex(*lead[:-1])
             for start, n in zip(np.cumsum((0, *depth[:-1])), depth, strict=True)]
    bar = _progress_bar(progress, f"writing {path}", len(slabs))

    def pages():
        for outer, start, n in slabs:
            index = (*outer, slice(int(start), int(start) + n)) if arr.ndim >= 3 else ()
            slab = np.asarray(data[index].compute(scheduler=scheduler))
            yield from slab.reshape(-1, *arr.shape[-2:])
            if bar:
                bar.advance(bar.task_ids[0])

    kwargs = tiff_metadata(tuple(map(str, arr.dims)), arr.coords)
    ome = _ome_axes(arr.dims)
    if ome and arr.name is not None:
        kwargs["metadata"]["Name"] = str(arr.name)
    elif not ome and not set(kwargs["metadata"].get("axes", "")) <= set("TCZYXS"):
        kwargs["metadata"] = {}
    with bar or contextlib.nullcontext(), tifffile.TiffWriter(
            tmp, bigtiff=arr.nbytes > 2**32 - 2**25, ome=ome) as tif:
        tif.write(pages(), shape=arr.shape, dtype=arr.dtype, photometric="minisblack",
                  **kwargs)


def _ome_axes(dims) -> bool:
    """Whether tifffile can write these axes as OME-TIFF (T, C, Z, Y, X, each once, Y X last)."""
    axes = "".join(map(str, dims)).upper()
    return (len(axes) == len(dims) and set(axes) <= set("TCZYX") and len(set(axes)) == len(axes)
            and axes.endswith("YX"))
