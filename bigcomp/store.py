"""Layout of a bigcomp store, its metadata, atomic chunk writes and resuming.

A store is a zarr v3 group (an OME-Zarr 0.5 image when the array has 2-5 axes)::

    out.zarr/
      zarr.json     group: attributes {"ome": {multiscales...}, "bigcomp": {...}}
      0/zarr.json   the data: serializer bigcomp.wnl or bigcomp.lossless, compressors none,
                    dimension_names = the axis names, attributes = the source's attributes
                    (``0/zarr.json.incomplete`` until the last chunk is written, see below)
      0/c/i/j/k     one file per chunk (chunk key encoding "default", separator "/")
      x/, y/, ...   coordinate arrays, as xarray writes them (so xarray.open_zarr reads them)

The ``bigcomp`` block records the job (mode, q, camera, order, coder, chunks, dims, source shape
and dtype), the source (kind, path, size and time of a file, and a content fingerprint: a hash of
a few sampled chunks), the error bound, the codec and ``"complete"``: false until every chunk is
written.

While a job runs, the data array's metadata is kept at ``0/zarr.json.incomplete``: zarr, xarray
and other readers see no array ``0`` (``group["0"]`` raises ``KeyError``, ``xarray.open_zarr``
finds no data variable) instead of an array whose missing chunks read as zeros. :func:`finalize`
renames it onto ``0/zarr.json`` (atomic), marks the group complete and consolidates the
metadata. ``bigcomp.open(path, allow_incomplete=True)`` reads an incomplete store through
:func:`incomplete_store`.

Chunks are written by :class:`ChunkWriter` (a picklable callable run by dask workers): encode
with :func:`bigcomp.encode_chunk` exactly as the zarr codec would (edge chunks padded with the
fill value 0), write to ``<key>.<uuid>.partial``, fsync, rename onto the key. A reader thus sees
a chunk whole or not at all. On resume :meth:`ChunkWriter.scan` keeps the chunk files whose
length and CRC32C check out and whose header matches the job, and deletes the rest. A store is
resumed only by the same job on the same data (:func:`check_job`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from zarr.storage import WrapperStore

from .errors import (  # the store's errors live with the others; imported here as before
    BigcompError,
    CorruptChunkError,
    FormatVersionError,
    IncompleteStoreError,
    SourceReadError,
    StoreExistsError,
    StoreWriteError,
)
from .io import is_zarr_dir

__all__ = [
    "DATA",
    "PENDING",
    "ChunkWriter",
    "IncompleteStoreError",
    "SourceReadError",
    "StoreExistsError",
    "StoreWriteError",
    "check_job",
    "create_store",
    "finalize",
    "incomplete_store",
    "ome_metadata",
    "prepare",
    "read_metadata",
    "sample_blocks",
    "source_record",
    "writing",
]

DATA = "0"  # path of the data array (level 0 of the OME-Zarr multiscale)
PENDING = "zarr.json.incomplete"  # the data array's zarr.json while the job runs
LAYOUT_VERSION = 2  # 2: source fingerprint, array metadata pending until complete
FINGERPRINT_BLOCKS = 4  # chunks hashed for the source fingerprint
_JOB_KEYS = ("shape", "dtype", "chunks", "dims", "mode", "q", "order", "coder", "camera")
_AXIS_TYPES = {"t": "time", "time": "time", "c": "channel", "channel": "channel",
               "z": "space", "y": "space", "x": "space"}
_UNITS = {"space": {"angstrom", "nanometer", "micrometer", "millimeter", "centimeter", "meter"},
          "time": {"nanosecond", "microsecond", "millisecond", "second", "minute", "hour"}}


def read_metadata(path: str | os.PathLike) -> dict | None:
    """The ``bigcomp`` block of a store, or ``None`` if ``path`` is not a bigcomp store."""
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


# ------------------------------------------------------------------------------ errors
_NO_SPACE = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)
_NO_PERMISSION = (errno.EACCES, errno.EPERM, errno.EROFS)


def write_error(exc: OSError, target: str, then: str) -> StoreWriteError:
    """A :class:`StoreWriteError` for ``exc``, raised while writing ``target``.

    Parameters
    ----------
    exc : OSError
        What the operating system said.
    target : str
        The store or output being written.
    then : str
        What to do once the cause is fixed (e.g. "run the same command again to resume").
    """
    where = exc.filename or target
    if exc.errno in _NO_SPACE:
        msg = f"no space left on the device (or quota exceeded) writing {where}: free some space"
    elif exc.errno in _NO_PERMISSION:
        msg = (f"no permission to write {where} ({exc.strerror}): fix the permissions or choose "
               "a destination you can write to")
    else:
        msg = f"could not write {where}: {exc.strerror or exc}; fix the cause"
    err = StoreWriteError(f"{msg}, then {then}")
    err.errno, err.strerror, err.filename = exc.errno, exc.strerror, where
    return err


_RESUME = "run the same command again: the chunks already written are kept and the job resumes"


@contextlib.contextmanager
def writing(target: str, then: str = _RESUME) -> Iterator[None]:
    """Turn an ``OSError`` raised in the block into a :class:`StoreWriteError` about ``target``.

    ``FileExistsError``, bigcomp's own errors and errors about files outside ``target`` (such
    as the source being read) pass through unchanged.
    """
    try:
        yield
    except (BigcompError, FileExistsError):
        raise
    except OSError as exc:
        if exc.filename and not os.path.abspath(os.fsdecode(exc.filename)).startswith(
                os.path.abspath(target)):
            raise
        raise write_error(exc, target, then) from exc


# ------------------------------------------------------------------------------ source identity
def sample_blocks(numblocks: tuple[int, ...], n: int = FINGERPRINT_BLOCKS
                  ) -> list[tuple[int, ...]]:
    """Indices of up to ``n`` blocks spread evenly over a block grid (first and last included).

    Examples
    --------
    >>> sample_blocks((2, 3), 4)
    [(0, 0), (0, 2), (1, 0), (1, 2)]
    """
    total = int(np.prod(numblocks))
    flat = np.unique(np.linspace(0, total - 1, min(n, total)).round().astype(int))
    return [tuple(int(i) for i in np.unravel_index(f, numblocks)) for f in flat]


def block_digest(block) -> tuple[str, bool]:
    """blake2b-128 hex digest of a block's values (little-endian, C order), and whether all
    its values are finite. Runs on a dask worker: only the digest travels back."""
    a = np.asarray(block)
    a = np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<"))
    digest = hashlib.blake2b(a.reshape(-1).view(np.uint8).data, digest_size=16).hexdigest()
    return digest, bool(a.dtype.kind != "f" or np.isfinite(a).all())


def source_record(src, chunks: tuple[int, ...], blocks: list[tuple[int, ...]],
                  digests: list[str]) -> dict:
    """The ``source`` entry of a store's metadata: what it was made from.

    Parameters
    ----------
    src : bigcomp.io.Source
    chunks : tuple of int
        Chunk shape the ``blocks`` index.
    blocks, digests
        Sampled block indices (:func:`sample_blocks`) and their :func:`block_digest`.

    Returns
    -------
    dict
        ``kind``, ``path`` (absolute, ``None`` in memory), ``size`` and ``mtime`` (files only:
        informative), ``shape``, ``dtype``, ``sampled_chunks`` and ``fingerprint``: a blake2b
        hash of shape, dtype, chunks and the sampled chunks' values. The fingerprint decides
        whether a store holds this source (:func:`check_job`).
    """
    h = hashlib.blake2b(digest_size=16, person=b"bigcomp-source")
    h.update(json.dumps([list(src.shape), np.dtype(src.dtype).name, list(chunks),
                         [list(b) for b in blocks]]).encode())
    for d in digests:
        h.update(bytes.fromhex(d))
    path = os.path.abspath(src.path) if src.path else None
    record: dict[str, Any] = {"kind": src.kind, "path": path, "size": None, "mtime": None}
    if path and os.path.isfile(path):
        st = os.stat(path)
        record["size"] = st.st_size
        record["mtime"] = datetime.fromtimestamp(st.st_mtime, UTC).isoformat(
            timespec="seconds")
    record.update(shape=list(src.shape), dtype=np.dtype(src.dtype).name,
                  sampled_chunks=[list(b) for b in blocks],
                  fingerprint="blake2b:" + h.hexdigest())
    return record


def _describe(rec: dict) -> str:
    shape = "x".join(map(str, rec.get("shape") or ())) + f" {rec.get('dtype')}"
    if not rec.get("path"):
        return f"an in-memory {rec.get('kind')} array ({shape})"
    if rec.get("size") is None:
        return f"{rec['path']} ({rec.get('kind')}, {shape})"
    return f"{rec['path']} ({shape}, {rec['size']:,} bytes, modified {rec.get('mtime')})"


_OVERWRITE = "pass overwrite=True (CLI: --overwrite) to replace it, or choose another output path"


def check_job(dest: str, meta: dict, job: dict, source: dict) -> None:
    """Raise unless the store's metadata ``meta`` records this ``job`` on this ``source``.

    Keys missing from ``job`` are not compared (the camera, before it is estimated). The
    source is compared by its content fingerprint when shape, dtype and chunks agree (else
    those differences are reported): a file that was touched or moved but reads the same
    resumes; different data never does. path, size and time only describe the difference.

    Raises
    ------
    StoreExistsError
        The parameters differ (listed), the data differ, or the store predates source
        fingerprints (bigcomp layout 1). Such a store is refused rather than resumed: nothing
        tells whether it holds this source, and resuming another source's store mixes both.
    """
    old = meta.get("job", {})
    differ = [k for k in _JOB_KEYS if k in job and _canon(old.get(k)) != _canon(job[k])]
    diffs = [f"{k}: {old.get(k)!r} in the store, {job[k]!r} now" for k in differ]
    if set(differ) & {"shape", "dtype", "chunks"}:
        source = {}  # other blocks were sampled: the fingerprints cannot be compared
    rec = meta.get("source") or {}
    also = f"; the parameters differ too ({'; '.join(diffs)})" if diffs else ""
    if source and not rec.get("fingerprint"):
        raise StoreExistsError(
            f"{dest} has no fingerprint of its source (written by bigcomp "
            f"{meta.get('version', '?')}, store layout {meta.get('layout', 1)}), so this run "
            f"cannot tell whether it holds {_describe(source)}{also}: {_OVERWRITE}")
    if source and rec["fingerprint"] != source["fingerprint"]:
        same_file = all(rec.get(k) == source.get(k) for k in ("path", "size", "mtime"))
        hint = (" (same path, size and time: is the source generated non-deterministically?)"
                if same_file else "")
        raise StoreExistsError(
            f"{dest} holds the compression of other data: it was made from "
            f"{_describe(rec)}, this run reads {_describe(source)}, and their sampled chunks "
            f"differ{hint}{also}. Resuming would mix the two: {_OVERWRITE}")
    if diffs:
        raise StoreExistsError(
            f"{dest} holds a different compression job ({'; '.join(diffs)}): {_OVERWRITE}")


def prepare(dest: str, job: dict, *, source: dict, overwrite: bool) -> str:
    """Decide what to do with ``dest``: ``"new"``, ``"resume"`` or ``"done"``.

    Parameters
    ----------
    dest : str
        The store.
    job : dict
        The job's parameters (``_JOB_KEYS``).
    source : dict
        :func:`source_record` of the data to compress.
    overwrite : bool
        Delete an existing zarr store at ``dest``.

    Raises
    ------
    StoreExistsError
        ``dest`` exists, ``overwrite`` is false and it is not this job on this source (see
        :func:`check_job`) or not a bigcomp store, or ``overwrite`` is true but ``dest`` is not
        a zarr store (never deleted).
    """
    if not os.path.exists(dest):
        return "new"
    if overwrite:
        if os.path.isdir(dest) and (is_zarr_dir(dest) or not os.listdir(dest)):
            with writing(dest, "run the command again"):
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
    check_job(dest, meta, job, source)
    return "done" if meta.get("complete") else "resume"


def _canon(value):
    """JSON round trip, so tuples compare equal to the lists read back."""
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


def _array_metadata(*, shape, dtype, chunks, dims, serializer, attrs: dict) -> bytes:
    """The data array's ``zarr.json``, as zarr-python writes it (made in memory)."""
    import zarr
    from zarr.storage import MemoryStore

    mem: dict = {}
    zarr.create_array(
        MemoryStore(store_dict=mem), shape=shape, chunks=chunks, dtype=dtype,
        serializer=serializer, compressors=None, fill_value=0, dimension_names=tuple(dims),
        chunk_key_encoding={"name": "default", "separator": "/"},
        attributes=_jsonable({k: v for k, v in attrs.items() if k != "bigcomp"}),
    )
    return mem["zarr.json"].to_bytes()


def _write_atomic(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` through a fsynced temporary file and a rename."""
    tmp = f"{path}.{uuid.uuid4().hex}.partial"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def create_store(dest: str, *, shape, dtype, chunks, dims, serializer, coords: dict,
                 attrs: dict, meta: dict, ome: dict | None) -> None:
    """Write the group, the coordinate arrays and the data array's *pending* metadata.

    The data array's ``zarr.json`` goes to ``0/zarr.json.incomplete`` (see :func:`finalize`);
    the group's ``bigcomp`` attributes are written last, so a store without them was never
    started.

    Raises
    ------
    StoreWriteError
        The file system refused a write (full, read-only, no permission); nothing is left at
        ``dest``.
    """
    array_json = _array_metadata(shape=shape, dtype=dtype, chunks=chunks, dims=dims,
                                 serializer=serializer, attrs=attrs)
    keep = {k: v for k, v in coords.items() if set(v.dims) <= set(dims) and k != DATA}
    if os.path.exists(dest):  # prepare() said "new": someone else is writing here
        raise StoreExistsError(f"{dest} appeared while this job started: is another compress "
                               "writing it? Choose another output path")
    try:
        with writing(dest, "run the same command again"):
            _create(dest, keep, array_json, meta, ome)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)  # new and ours: do not leave half a skeleton
        raise


def _create(dest: str, coords: dict, array_json: bytes, meta: dict, ome: dict | None) -> None:
    import warnings

    import xarray as xr
    import zarr
    from zarr.errors import UnstableSpecificationWarning

    if coords:  # xarray writes coordinates with its own encoding (datetimes, strings, ...)
        with warnings.catch_warnings():
            # string coordinates (channel names) use a zarr v3 data type without a finished
            # spec; zarr-python and xarray read it, and the image data is unaffected
            warnings.simplefilter("ignore", UnstableSpecificationWarning)
            xr.Dataset(coords={k: v.load() if hasattr(v, "load") else v
                               for k, v in coords.items()}
                       ).to_zarr(dest, mode="w-", zarr_format=3, consolidated=False)
        group = zarr.open_group(dest, mode="r+")
    else:
        group = zarr.open_group(dest, mode="w-", zarr_format=3)
    os.makedirs(os.path.join(dest, DATA), exist_ok=True)
    _write_atomic(os.path.join(dest, DATA, PENDING), array_json)
    extra = {"bigcomp": _jsonable(meta)}
    if ome is not None:
        extra["ome"] = ome
    group.attrs.update(extra)


def finalize(dest: str, meta: dict) -> None:
    """Publish the data array, mark the store complete and consolidate its metadata.

    In this order: ``0/zarr.json.incomplete`` is renamed onto ``0/zarr.json`` (atomic: from
    then on zarr and xarray see the array, all of whose chunks are written), the group's
    ``zarr.json`` is rewritten (atomically) with ``"complete": true``, and the metadata is
    consolidated, which lets ``xarray.open_zarr(path)`` open the store without a warning. A
    run killed in between leaves a store the next run of the job finalizes.

    Raises
    ------
    StoreWriteError
        The file system refused a write.
    """
    import warnings

    import zarr
    from zarr.errors import UnstableSpecificationWarning, ZarrUserWarning

    pending = os.path.join(dest, DATA, PENDING)
    with writing(dest):
        if os.path.exists(pending):
            os.replace(pending, os.path.join(dest, DATA, "zarr.json"))
        group = zarr.open_group(dest, mode="r+")
        group.attrs.update({"bigcomp": _jsonable({**meta, "complete": True})})
        with warnings.catch_warnings():
            # "consolidated metadata is not part of the zarr v3 spec": known, xarray and
            # zarr-python read it; other readers ignore the extra key
            warnings.simplefilter("ignore", ZarrUserWarning)
            # string coordinates: see create_store
            warnings.simplefilter("ignore", UnstableSpecificationWarning)
            zarr.consolidate_metadata(dest)


class _PendingStore(WrapperStore):
    """Read-only view of a store in which ``0/zarr.json`` is ``0/zarr.json.incomplete``."""

    _KEY = f"{DATA}/zarr.json"

    def _map(self, key: str) -> str:
        return f"{DATA}/{PENDING}" if key == self._KEY else key

    async def get(self, key, prototype, byte_range=None):
        return await self._store.get(self._map(key), prototype, byte_range)

    async def exists(self, key: str) -> bool:
        return await self._store.exists(self._map(key))


def incomplete_store(path: str) -> Any:
    """A read-only zarr store of ``path`` that shows an incomplete store's data array.

    ``xarray.open_zarr(incomplete_store(path), consolidated=False)`` reads the array, missing
    chunks as the fill value 0 (what ``bigcomp.open(path, allow_incomplete=True)`` does). On a
    complete store (or one of layout 1) it reads the same as ``path``.
    """
    from zarr.storage import LocalStore

    store = LocalStore(path, read_only=True)
    if os.path.exists(os.path.join(path, DATA, PENDING)):
        return _PendingStore(store)
    return store


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
        """Write block ``idx``; returns the number of bytes written.

        Raises
        ------
        StoreWriteError
            The file system refused the write (full, no permission); no partial file is left.
        """
        blob = self.encode(block)
        path = self.path(idx)
        with writing(os.path.dirname(self.array_dir)):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            _write_atomic(path, blob)
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
                        with writing(os.path.dirname(self.array_dir)):
                            os.unlink(full)
                    continue
                if len(idx) == len(grid) and all(0 <= i < n for i, n in zip(idx, grid,
                                                                           strict=True)):
                    found[idx] = full
        with ThreadPoolExecutor(threads or min(8, os.cpu_count() or 1)) as pool:
            ok = dict(zip(found, pool.map(self._valid, found.values()), strict=True))
        with writing(os.path.dirname(self.array_dir)):
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
