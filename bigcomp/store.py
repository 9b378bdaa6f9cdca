"""Layout of a bigcomp store, its metadata, atomic chunk writes and resuming.

A store is a zarr v3 group (an OME-Zarr 0.5 image when the array has 2-5 axes)::

    out.zarr/
      zarr.json     group: attributes {"ome": {multiscales...}, "bigcomp": {...}}
      0/zarr.json   the data: serializer bigcomp.wnl or bigcomp.lossless, compressors none,
                    dimension_names = the axis names, attributes = the source's attributes
      0/c/i/j/k     one file per chunk (chunk key encoding "default", separator "/")
      x/, y/, ...   coordinate arrays, as xarray writes them (so xarray.open_zarr reads them)

The ``bigcomp`` block records the job (mode, q, camera, order, coder, chunks, dims, source shape
and dtype), the error bound, the codec and ``"complete"``: false until every chunk is written.

Chunks are written by :class:`ChunkWriter` (a picklable callable run by dask workers): encode
with :func:`bigcomp.encode_chunk` exactly as the zarr codec would (edge chunks padded with the
fill value 0), write to ``<key>.<uuid>.partial``, fsync, rename onto the key. A reader thus sees
a chunk whole or not at all. On resume :meth:`ChunkWriter.scan` keeps the chunk files whose
length and CRC32C check out and whose header matches the job, and deletes the rest.
"""

from __future__ import annotations

import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import BigcompError, CorruptChunkError, FormatVersionError

__all__ = [
    "DATA",
    "ChunkWriter",
    "IncompleteStoreError",
    "StoreExistsError",
    "create_store",
    "finalize",
    "ome_metadata",
    "prepare",
    "read_metadata",
]

DATA = "0"  # path of the data array (level 0 of the OME-Zarr multiscale)
LAYOUT_VERSION = 1
_JOB_KEYS = ("shape", "dtype", "chunks", "dims", "mode", "q", "order", "coder", "camera")
_AXIS_TYPES = {"t": "time", "time": "time", "c": "channel", "channel": "channel",
               "z": "space", "y": "space", "x": "space"}
_UNITS = {"space": {"angstrom", "nanometer", "micrometer", "millimeter", "centimeter", "meter"},
          "time": {"nanosecond", "microsecond", "millisecond", "second", "minute", "hour"}}


class StoreExistsError(BigcompError, FileExistsError):
    """The destination exists and holds something else than this compression job."""


class IncompleteStoreError(BigcompError):
    """The store was left incomplete by an interrupted run."""


def read_metadata(path: str | os.PathLike) -> dict | None:
    """The ``bigcomp`` block of a store, or ``None`` if ``path`` is not a bigcomp store."""
    import json

    meta = os.path.join(path, "zarr.json")
    if not os.path.isfile(meta):
        return None
    try:
        with open(meta, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    block = doc.get("attributes", {}).get("bigcomp")
    return block if isinstance(block, dict) else None


def _is_zarr(path: str) -> bool:
    return any(os.path.exists(os.path.join(path, f)) for f in ("zarr.json", ".zgroup", ".zarray"))


def prepare(dest: str, job: dict, *, overwrite: bool) -> str:
    """Decide what to do with ``dest``: ``"new"``, ``"resume"`` or ``"done"``.

    Raises
    ------
    StoreExistsError
        ``dest`` exists, ``overwrite`` is false and it is not this job (or not a bigcomp store),
        or ``overwrite`` is true but ``dest`` is not a zarr store (never deleted).
    """
    if not os.path.exists(dest):
        return "new"
    if overwrite:
        if os.path.isdir(dest) and (_is_zarr(dest) or not os.listdir(dest)):
            shutil.rmtree(dest)
            return "new"
        raise StoreExistsError(
            f"{dest} exists and is not a zarr store: refusing to delete it even with "
            "overwrite=True (--overwrite); remove it yourself or choose another output path")
    meta = read_metadata(dest)
    if meta is None:
        raise StoreExistsError(
            f"{dest} already exists and is not a bigcomp store: pass overwrite=True "
            "(CLI: --overwrite) to replace it, or choose another output path")
    old = meta.get("job", {})
    diffs = [f"{k}: {old.get(k)!r} in the store, {job[k]!r} now" for k in _JOB_KEYS
             if _canon(old.get(k)) != _canon(job[k])]
    if diffs:
        raise StoreExistsError(
            f"{dest} holds a different compression job ({'; '.join(diffs)}): pass "
            "overwrite=True (CLI: --overwrite) to replace it, or choose another output path")
    return "done" if meta.get("complete") else "resume"


def _canon(value):
    """JSON round trip, so tuples compare equal to the lists read back."""
    import json

    return json.loads(json.dumps(value))


def ome_metadata(dims: tuple[str, ...], coords: dict, name: str | None) -> dict | None:
    """NGFF 0.5 ``ome`` block for a single-level image, or ``None`` outside 2-5 axes."""
    if not 2 <= len(dims) <= 5:
        return None
    axes, scale, trans = [], [], []
    for d in dims:
        ax: dict[str, Any] = {"name": d}
        kind = _AXIS_TYPES.get(d.lower())
        if kind:
            ax["type"] = kind
        s, t, unit = 1.0, 0.0, None
        c = coords.get(d)
        if c is not None and kind in ("space", "time") and c.ndim == 1 and c.size >= 1 and (
                c.dtype.kind in "iuf"):
            v = np.asarray(c.values, np.float64)
            step = np.diff(v)
            if v.size == 1 or (step.size and np.allclose(step, step[0]) and step[0] > 0):
                s, t = (float(step[0]) if step.size else 1.0), float(v[0])
            unit = c.attrs.get("units")
        if unit in _UNITS.get(kind or "", ()):
            ax["unit"] = unit
        axes.append(ax)
        scale.append(s)
        trans.append(t)
    transforms: list[dict] = [{"type": "scale", "scale": scale}]
    if any(trans):
        transforms.append({"type": "translation", "translation": trans})
    ms = {"axes": axes, "datasets": [{"path": DATA, "coordinateTransformations": transforms}]}
    if name:
        ms["name"] = name
    return {"version": "0.5", "multiscales": [ms]}


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def create_store(dest: str, *, shape, dtype, chunks, dims, serializer, coords: dict,
                 attrs: dict, meta: dict, ome: dict | None) -> None:
    """Write the group, the (empty) data array and the coordinate arrays."""
    import warnings

    import xarray as xr
    import zarr
    from zarr.errors import UnstableSpecificationWarning

    keep = {k: v for k, v in coords.items() if set(v.dims) <= set(dims) and k != DATA}
    if keep:  # xarray writes coordinates with its own encoding (datetimes, strings, ...)
        with warnings.catch_warnings():
            # string coordinates (channel names) use a zarr v3 data type without a finished
            # spec; zarr-python and xarray read it, and the image data is unaffected
            warnings.simplefilter("ignore", UnstableSpecificationWarning)
            xr.Dataset(coords={k: v.load() if hasattr(v, "load") else v
                               for k, v in keep.items()}
                       ).to_zarr(dest, mode="w-", zarr_format=3, consolidated=False)
        group = zarr.open_group(dest, mode="r+")
    else:
        group = zarr.open_group(dest, mode="w-", zarr_format=3)
    group.create_array(
        DATA, shape=shape, chunks=chunks, dtype=dtype, serializer=serializer, compressors=None,
        fill_value=0, dimension_names=tuple(dims),
        chunk_key_encoding={"name": "default", "separator": "/"},
        attributes=_jsonable({k: v for k, v in attrs.items() if k != "bigcomp"}),
    )
    extra = {"bigcomp": _jsonable(meta)}
    if ome is not None:
        extra["ome"] = ome
    group.attrs.update(extra)


def finalize(dest: str, meta: dict) -> None:
    """Mark the store complete and consolidate its metadata (``zarr.json`` written atomically).

    Consolidated metadata lets ``xarray.open_zarr(path)`` open the store without a warning.
    """
    import warnings

    import zarr
    from zarr.errors import UnstableSpecificationWarning, ZarrUserWarning

    group = zarr.open_group(dest, mode="r+")
    group.attrs.update({"bigcomp": _jsonable({**meta, "complete": True})})
    with warnings.catch_warnings():
        # "consolidated metadata is not part of the zarr v3 spec": known, xarray and zarr-python
        # read it; other readers ignore the extra key
        warnings.simplefilter("ignore", ZarrUserWarning)
        # string coordinates: see create_store
        warnings.simplefilter("ignore", UnstableSpecificationWarning)
        zarr.consolidate_metadata(dest)


@dataclass(frozen=True)
class ChunkWriter:
    """Encode one block and write it atomically where zarr expects the chunk (picklable).

    Parameters
    ----------
    array_dir : str
        Directory of the data array (``<store>/0``).
    shape, chunks : tuple of int
        Array and regular chunk shape.
    dtype : str
    q, camera, order, coder
        Codec parameters (``q = 0``: lossless; ``camera`` a dict or ``None``).
    """

    array_dir: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str
    q: float
    camera: dict | None
    order: str
    coder: str

    def key(self, idx: tuple[int, ...]) -> str:
        """The zarr chunk key of block ``idx`` (``"c/0/1/2"``)."""
        return "/".join(("c", *map(str, idx)))

    def path(self, idx: tuple[int, ...]) -> str:
        return os.path.join(self.array_dir, *self.key(idx).split("/"))

    def encode(self, block: np.ndarray) -> bytes:
        from .chunk import encode_chunk
        from .noise import CameraModel

        block = np.asarray(block)
        if block.shape != self.chunks:  # edge chunk: zarr pads with the fill value
            full = np.zeros(self.chunks, block.dtype)
            full[tuple(slice(0, s) for s in block.shape)] = block
            block = full
        camera = CameraModel(**self.camera) if self.camera and self.q > 0 else None
        return encode_chunk(block, q=self.q, camera=camera, order=self.order, coder=self.coder)

    def __call__(self, block: np.ndarray, idx: tuple[int, ...]) -> int:
        """Write block ``idx``; returns the number of bytes written."""
        blob = self.encode(block)
        path = self.path(idx)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{uuid.uuid4().hex}.partial"
        try:
            with open(tmp, "wb") as f:
                f.write(blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # atomic on POSIX and Windows
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return len(blob)

    def _valid(self, path: str) -> bool:
        from .format import unpack_chunk

        try:
            with open(path, "rb") as f:
                header, _, _ = unpack_chunk(f.read())
        except (OSError, CorruptChunkError, FormatVersionError):
            return False
        wnl = self.q > 0
        cam = self.camera or {}
        return (tuple(header.shape) == self.chunks and header.dtype == np.dtype(self.dtype)
                and header.coder == self.coder and header.mode == ("wnl" if wnl else "lossless")
                and (not wnl or (header.order == self.order and header.q == self.q
                                 and header.gain == cam.get("gain")
                                 and header.offset == cam.get("offset")
                                 and header.read_noise == cam.get("read_noise"))))

    def scan(self, threads: int | None = None) -> set[tuple[int, ...]]:
        """Indices of the chunks already written and valid; deletes invalid and partial files."""
        grid = tuple(-(-s // c) for s, c in zip(self.shape, self.chunks, strict=True))
        found: dict[tuple[int, ...], str] = {}
        root = os.path.join(self.array_dir, "c")
        for dirpath, _, files in os.walk(root):
            for name in files:
                full = os.path.join(dirpath, name)
                parts = os.path.relpath(full, root).split(os.sep)
                try:
                    idx = tuple(int(p) for p in parts)
                except ValueError:  # *.partial left by a killed run, or foreign files
                    if name.endswith(".partial"):
                        os.unlink(full)
                    continue
                if len(idx) == len(grid) and all(0 <= i < n for i, n in zip(idx, grid,
                                                                           strict=True)):
                    found[idx] = full
        with ThreadPoolExecutor(threads or min(8, os.cpu_count() or 1)) as pool:
            ok = dict(zip(found, pool.map(self._valid, found.values()), strict=True))
        for idx, good in ok.items():
            if not good:
                os.unlink(found[idx])
        return {idx for idx, good in ok.items() if good}

    def stored_bytes(self) -> int:
        """Total size of the chunk files."""
        total = 0
        for dirpath, _, files in os.walk(os.path.join(self.array_dir, "c")):
            total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files
                         if not f.endswith(".partial"))
        return total
