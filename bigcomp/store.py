"""Layout of a bigcomp store, its metadata, atomic chunk writes and resuming.

A store is a zarr v3 group (an OME-Zarr 0.5 image when the array has 2-5 axes)::

    out.zarr/
      zarr.json     group: attributes {"ome": {multiscales, omero}, "bigcomp": {...},
                    "about": how to read the store}; no consolidated metadata (see finalize)
      0/zarr.json   the data: serializer bigcomp.wnl or bigcomp.lossless, compressors none,
                    dimension_names = the axis names, attributes = the source's attributes
                    (``0/zarr.json.incomplete`` until the last chunk is written, see below)
      0/c/i/j/k     one file per chunk (chunk key encoding "default", separator "/")
      1/, 2/, ...   pyramid levels (bigcomp.pyramid), laid out as 0/ and pending as it is
      x/, y/, ...   coordinate arrays, as xarray writes them (so xarray.open_zarr reads them):
                    pixel sizes and units, channel names (see bigcomp.metadata)

The ``bigcomp`` block records the job (mode, q, camera, order, coder, chunks, dims, source shape
and dtype), the source (kind, path, size and time of a file, and a content fingerprint: a hash of
a few sampled chunks), the error bound, the codec and ``"complete"``: false until every chunk is
written.

While a job runs, the data array's metadata is kept at ``0/zarr.json.incomplete``: zarr, xarray
and other readers see no array ``0`` (``group["0"]`` raises ``KeyError``, ``xarray.open_zarr``
finds no data variable) instead of an array whose missing chunks read as zeros. :func:`finalize`
renames it onto ``0/zarr.json`` (atomic) and marks the group complete. ``bigcomp.open(path, allow_incomplete=True)`` reads an incomplete store through
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
from collections.abc import Iterator, Sequence
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
_JOB_KEYS = ("shape", "dtype", "chunks", "dims", "mode", "q", "order", "coder", "camera",
             "pyramid")
_JOB_DEFAULTS = {"pyramid": []}  # what a store written before the key existed holds


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
    old = {k: old.get(k, _JOB_DEFAULTS.get(k)) for k in _JOB_KEYS}
    differ = [k for k in _JOB_KEYS if k in job and _canon(old[k]) != _canon(job[k])]
    diffs = [f"{k}: {old[k]!r} in the store, {job[k]!r} now" for k in differ]
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


def ome_metadata(dims: tuple[str, ...], coords: dict, name: str | None, *,
                 levels: Sequence[tuple[str, Sequence[float]]] = ((DATA, ()),),
                 dtype=None) -> dict | None:
    """NGFF 0.5 ``ome`` block of the store's image (see :func:`bigcomp.metadata.ome_block`).

    Parameters
    ----------
    dims, coords, name
        Axis names, coordinates (pixel sizes, units, channel names) and image name.
    levels : sequence of (path, factors)
        The pyramid, level 0 (``DATA``) first: each level's array path and its downsampling
        factor per axis relative to level 0 (``()``: none). One level by default.
    dtype : numpy.dtype, optional
        The data type (the default display window of channels).

    Returns
    -------
    dict or None
        ``None`` outside 2-5 axes or when the axes are not in NGFF order (time, channel,
        space); the store then has no ``ome`` block (its coordinates still carry the metadata).
    """
    from .metadata import ome_block

    return ome_block(dims, coords, name, levels=levels, dtype=dtype)


def about(array: str = DATA) -> str:
    """The human-readable note on how to read a bigcomp store (its ``about`` attribute),
    for whoever opens it without bigcomp (``zarr.json`` is plain JSON)."""
    return (
        f"bigcomp store: a zarr v3 group (OME-Zarr 0.5 when it has an 'ome' attribute) whose "
        f"image array '{array}' is compressed with the bigcomp codecs (bigcomp.wnl: within "
        "noise level, bigcomp.lossless: exact). To read it, install bigcomp (pip install "
        "bigcomp), which registers the codecs with zarr, then use bigcomp.open(path) "
        f"(xarray), zarr.open_group(path)['{array}'], xarray.open_zarr(path, "
        "consolidated=False), or napari (pip install 'bigcomp[napari]'). Without bigcomp, "
        "zarr raises \"Unknown codec: 'bigcomp.wnl'\". To share it with readers that lack "
        "bigcomp (tensorstore, Fiji, other languages), run 'bigcomp export STORE OUT.zarr': "
        "a plain OME-Zarr (zstd) with the same metadata. Attribute 'bigcomp' records how the "
        "store was made (mode, error bound, camera model, source); 'ome' its axes, pixel "
        "sizes and channels.")


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
                 attrs: dict, meta: dict, ome: dict | None, levels=()) -> None:
    """Write the group, the coordinate arrays and the data array's *pending* metadata.

    The data array's ``zarr.json`` goes to ``0/zarr.json.incomplete`` (see :func:`finalize`),
    and so does each pyramid level's (``levels``: dicts with ``path``, ``shape``, ``chunks``
    and ``serializer``, see :mod:`bigcomp.pyramid`);
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
    arrays = {DATA: array_json}
    for lv in levels:
        arrays[lv["path"]] = _array_metadata(shape=lv["shape"], dtype=dtype, chunks=lv["chunks"],
                                             dims=dims, serializer=lv["serializer"], attrs={})
    keep = {k: v for k, v in coords.items() if set(v.dims) <= set(dims) and k not in arrays}
    if os.path.exists(dest):  # prepare() said "new": someone else is writing here
        raise StoreExistsError(f"{dest} appeared while this job started: is another compress "
                               "writing it? Choose another output path")
    try:
        with writing(dest, "run the same command again"):
            _create(dest, keep, arrays, meta, ome)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)  # new and ours: do not leave half a skeleton
        raise


def _create(dest: str, coords: dict, arrays: dict[str, bytes], meta: dict,
            ome: dict | None) -> None:
    import warnings

    import xarray as xr
    import zarr
    from zarr.errors import UnstableSpecificationWarning

    if coords:  # xarray writes coordinates with its own encoding (datetimes, strings, ...)
        with warnings.catch_warnings():
            # string coordinates (channel names) use a zarr v3 data type without a finished
            # spec; zarr-python and xarray read it, and the image data is unaffected
            warnings.simplefilter("ignore", UnstableSpecificationWarning)
            ds = xr.Dataset(coords=_coords_to_write(coords))
            ds.to_zarr(dest, mode="w-", zarr_format=3, consolidated=False,
                       encoding={k: {"_FillValue": None} for k, v in ds.coords.items()
                                 if v.dtype.kind == "f"})  # no NaN fill on coordinates
        group = zarr.open_group(dest, mode="r+")
    else:
        group = zarr.open_group(dest, mode="w-", zarr_format=3)
    for path, array_json in arrays.items():  # level 0 and the pyramid levels
        os.makedirs(os.path.join(dest, path), exist_ok=True)
        _write_atomic(os.path.join(dest, path, PENDING), array_json)
    extra = {"bigcomp": _jsonable(meta), "about": about(meta.get("array", DATA))}
    if ome is not None:
        extra["ome"] = ome
    group.attrs.update(extra)


DTYPE_ATTR = "bigcomp_dtype"  # a datetime/timedelta coordinate's unit, restored by open


def _coords_to_write(coords: dict) -> dict:
    """Coordinates as xarray will write them; datetimes and timedeltas record their dtype
    (xarray reads them back as nanoseconds otherwise)."""
    out = {}
    for k, v in coords.items():
        v = v.load() if hasattr(v, "load") else v
        if v.dtype.kind in "mM" and v.dtype != np.dtype(f"{v.dtype.kind}8[ns]"):
            v = v.copy()
            v.attrs[DTYPE_ATTR] = v.dtype.str[1:]
        out[k] = v
    return out


def finalize(dest: str, meta: dict) -> None:
    """Publish the data array and mark the store complete.

    In this order: ``0/zarr.json.incomplete`` is renamed onto ``0/zarr.json`` (atomic: from
    then on zarr and xarray see the array, all of whose chunks are written), then the group's
    ``zarr.json`` is rewritten (atomically) with ``"complete": true``. A run killed in between
    leaves a store the next run of the job finalizes.

    The metadata is *not* consolidated: zarr parses consolidated metadata whole, so a zarr
    without bigcomp's codecs could not even open the group to read its ``about`` note and
    ``ome`` block. Open the store with ``xarray.open_zarr(path, consolidated=False)`` (what
    :func:`bigcomp.open` does). A store written before (with consolidated metadata) loses it
    here when it is finalized again.

    Raises
    ------
    StoreWriteError
        The file system refused a write.
    """
    import zarr

    with writing(dest):
        for path in [*(lv["path"] for lv in meta.get("levels") or ()), DATA]:
            pending = os.path.join(dest, path, PENDING)  # the pyramid levels, then level 0
            if os.path.exists(pending):
                os.replace(pending, os.path.join(dest, path, "zarr.json"))
        group = zarr.open_group(dest, mode="r+", use_consolidated=False)
        group.attrs.update({"bigcomp": _jsonable({**meta, "complete": True})})


class _PendingStore(WrapperStore):
    """Read-only view of a store in which an array's ``<path>/zarr.json`` is its
    ``<path>/zarr.json.incomplete`` while that exists (level 0 and the pyramid levels)."""

    async def _map(self, key: str) -> str:
        head, sep, tail = key.rpartition("/")
        if sep and tail == "zarr.json" and "/" not in head:
            pending = f"{head}/{PENDING}"
            if await self._store.exists(pending):
                return pending
        return key

    async def get(self, key, prototype, byte_range=None):
        return await self._store.get(await self._map(key), prototype, byte_range)

    async def exists(self, key: str) -> bool:
        return await self._store.exists(await self._map(key))


def incomplete_store(path: str) -> Any:
    """A read-only zarr store of ``path`` that shows an incomplete store's data array.

    ``xarray.open_zarr(incomplete_store(path), consolidated=False)`` reads the array, missing
    chunks as the fill value 0 (what ``bigcomp.open(path, allow_incomplete=True)`` does). On a
    complete store (or one of layout 1) it reads the same as ``path``.
    """
    from zarr.storage import LocalStore

    store = LocalStore(path, read_only=True)
    if any(os.path.exists(os.path.join(path, d, PENDING)) for d in os.listdir(path)):
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
    noise_maps : NoiseMaps, optional
        Per-pixel camera maps of the sensor (kept in the codec configuration); each chunk
        refers to them with the origin of its planes.
    """

    array_dir: str
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str
    q: float
    camera: dict | None
    order: str
    coder: str
    noise_maps: Any = None

    def key(self, idx: tuple[int, ...]) -> str:
        """The zarr chunk key of block ``idx`` (``"c/0/1/2"``)."""
        return "/".join(("c", *map(str, idx)))

    def path(self, idx: tuple[int, ...]) -> str:
        return os.path.join(self.array_dir, *self.key(idx).split("/"))

    def encode(self, block: np.ndarray, idx: tuple[int, ...] | None = None) -> bytes:
        from .chunk import encode_chunk
        from .noise import CameraModel

        block = np.asarray(block)
        if block.shape != self.chunks:  # edge chunk: zarr pads with the fill value
            full = np.zeros(self.chunks, block.dtype)
            full[tuple(slice(0, s) for s in block.shape)] = block
            block = full
        cam = {k: v for k, v in (self.camera or {}).items() if k != "noise_maps"}
        camera = CameraModel(**cam) if cam and self.q > 0 else None
        maps, origin = None, (0, 0)
        if self.noise_maps is not None and self.q > 0:
            maps = self.noise_maps
            if idx is not None and len(idx) >= 2:
                origin = (idx[-2] * self.chunks[-2], idx[-1] * self.chunks[-1])
        return encode_chunk(block, q=self.q, camera=camera, order=self.order, coder=self.coder,
                            noise_maps=maps, origin=origin)

    def __call__(self, block: np.ndarray, idx: tuple[int, ...]) -> int:
        """Write block ``idx``; returns the number of bytes written.

        Raises
        ------
        StoreWriteError
            The file system refused the write (full, no permission); no partial file is left.
        """
        blob = self.encode(block, idx)
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
                                 and header.read_noise == cam.get("read_noise")
                                 and bool(header.pixel_model) == (self.noise_maps is not None))))

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
