"""INR stores: a zarr v3 group of weights, written by :func:`compress_inr`, read by :func:`open_inr`.

Layout (``format_version`` 1)::

    zarr.json            group; attributes["bigcomp"] = metadata (mode "inr", shape, dtype, tile,
                         width, depth, w0, bits, pack_tiles, camera, training parameters)
    tiles/               float32 (ntiles, 2): [mean, scale] per tile in C order over the tile
                         grid; scale == 0 marks an empty tile (decoded as its mean)
    shared/              float16 (P,): the shared network (weight transfer origin)
    residuals/           uint8: the packs of quantised, entropy-coded residuals, concatenated
                         (format in :mod:`bigcomp.inr.bitstream`)
    packs/               uint64 (npacks + 1,): byte offsets of the packs in residuals

Modelled tile ``i`` (the ``k``-th tile with scale > 0) is row ``k % pack_tiles`` of pack
``k // pack_tiles`` and decodes to ``mean + scale · net(coords)``, rounded and clipped for
integer dtypes.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import threading
from typing import Any

import numpy as np

from ..errors import CorruptChunkError, FormatVersionError, ParameterError
from . import bitstream as B
from .model import evaluate_tile
from .tiling import TileGrid

__all__ = ["FORMAT_VERSION", "inr_info", "open_inr", "read_meta", "write_store"]

FORMAT_VERSION = 1


def write_store(dest: str, meta: dict, table: np.ndarray, shared: np.ndarray,
                packs: list[bytes], *, overwrite: bool) -> str:
    """Write the group (see the module docstring); returns ``dest``."""
    import zarr

    path = os.fspath(dest)
    if os.path.exists(path):
        if not overwrite:
            raise ParameterError(f"{path} exists; pass overwrite=True to replace it")
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    g = zarr.open_group(path, mode="w-")
    g.attrs["bigcomp"] = meta
    blob = np.frombuffer(b"".join(packs), np.uint8)
    offsets = np.cumsum([0] + [len(p) for p in packs]).astype(np.uint64)
    for name, arr, comp in (("tiles", table.astype(np.float32), "auto"),
                            ("shared", shared.astype(np.float16), None),
                            ("residuals", blob, None),
                            ("packs", offsets, "auto")):
        chunks = (max(1, min(arr.shape[0], 1 << 20)), *arr.shape[1:])
        z = g.create_array(name, shape=arr.shape, dtype=arr.dtype, chunks=chunks,
                           compressors=comp)
        if arr.size:
            z[...] = arr
    return path


def read_meta(path: str) -> dict:
    """The ``bigcomp`` metadata block of an INR store (checked)."""
    import zarr

    try:
        g = zarr.open_group(os.fspath(path), mode="r")
    except FileNotFoundError as exc:
        raise ParameterError(f"no INR store at {path}") from exc
    meta = g.attrs.get("bigcomp")
    if not isinstance(meta, dict) or meta.get("mode") != "inr":
        raise ParameterError(f"{path} is not a bigcomp INR store (no bigcomp mode 'inr')")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise FormatVersionError(
            f"{path} has INR format version {meta['format_version']}, this bigcomp reads up to "
            f"{FORMAT_VERSION}; upgrade bigcomp")
    return dict(meta)


class _Decoder:
    """Decodes one tile of a store (picklable: handles are reopened in each process)."""

    def __init__(self, path: str, meta: dict):
        import zarr

        self.path = os.fspath(path)
        self.meta = meta
        self.grid = TileGrid(tuple(meta["shape"]), tuple(meta["tile"]))
        self.dtype = np.dtype(meta["dtype"])
        g = zarr.open_group(self.path, mode="r")
        self.table = np.asarray(g["tiles"][...], np.float32).reshape(-1, 2)
        self.shared = np.asarray(g["shared"][...], np.float32)
        self.offsets = np.asarray(g["packs"][...], np.uint64)
        if self.table.shape[0] != self.grid.ntiles:
            raise CorruptChunkError(f"INR store {path}: tile table has {self.table.shape[0]} "
                                    f"rows, the grid {self.grid.ntiles} tiles")
        self.slot = np.cumsum(self.table[:, 1] > 0) - 1
        self.shapes = B.layer_shapes(len(self.grid.axes), meta["width"], meta["depth"])
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._res = None
        self._pack = functools.lru_cache(maxsize=8)(self._decode_pack)

    def __getstate__(self):
        state = dict(self.__dict__)
        for k in ("_lock", "_res", "_pack"):
            state.pop(k, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_runtime()

    def _decode_pack(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        import zarr

        with self._lock:
            if self._res is None:
                self._res = zarr.open_array(self.path + "/residuals", mode="r")
        lo, hi = int(self.offsets[j]), int(self.offsets[j + 1])
        k = min(self.meta["pack_tiles"], self.meta["n_model"] - j * self.meta["pack_tiles"])
        buf = np.asarray(self._res[lo:hi], np.uint8)
        q, codes = B.decode_pack(buf, k, len(self.shapes), self.shared.size,
                                 what=f"pack {j} of {self.path}")
        return B.dequantise(self.shared, q, codes, self.shapes), codes

    def tile(self, i: int) -> np.ndarray:
        """Decoded tile ``i`` with the array's dtype and the tile's block shape."""
        sl = self.grid.slices(i)
        shape = tuple(s.stop - s.start for s in sl)
        mean, scale = (float(v) for v in self.table[i])
        if scale == 0:
            vals = np.full(shape, np.float32(mean), np.float32)
        else:
            slot = int(self.slot[i])
            k = self.meta["pack_tiles"]
            weights, _ = self._pack(slot // k)
            y = evaluate_tile(weights[slot % k], self.grid.model_shape, self.grid.valid(i),
                              width=self.meta["width"], depth=self.meta["depth"],
                              w0=self.meta["w0"])
            vals = (y * np.float32(scale) + np.float32(mean)).reshape(shape)
        return to_dtype(vals, self.dtype)

    def block(self, idx: tuple[int, ...]) -> np.ndarray:
        return self.tile(int(np.ravel_multi_index(idx, self.grid.counts)))


def to_dtype(vals: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 values -> ``dtype`` (rounded and clipped for integers)."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.rint(vals), info.min, info.max).astype(dtype)
    return vals.astype(dtype)


def open_inr(path: str | os.PathLike):
    """Open an INR store as a lazy dask array, one chunk per tile.

    Reading a region computes only the chunks (tiles) that overlap it; each is decoded from its
    pack of weights and evaluated on the CPU in float32 numpy (torch is not needed), so the same
    store always decodes to the same values.

    Parameters
    ----------
    path : str or os.PathLike
        A directory written by :func:`bigcomp.inr.compress_inr`.

    Returns
    -------
    dask.array.Array

    Examples
    --------
    >>> arr = open_inr("stack.inr.zarr")  # doctest: +SKIP
    >>> arr[10, 100:200, 100:200].compute()  # doctest: +SKIP
    """
    import dask.array as da
    from dask.highlevelgraph import HighLevelGraph

    meta = read_meta(path)
    dec = _Decoder(os.fspath(path), meta)
    grid = dec.grid
    name = f"bigcomp-inr-{os.path.abspath(os.fspath(path))}-{meta.get('token', '')}"
    dsk = {(name, *idx): (dec.block, idx) for idx in np.ndindex(*grid.counts)}
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=())
    return da.Array(graph, name, chunks=grid.chunks(), dtype=dec.dtype,
                    meta=np.empty((0,) * len(grid.shape), dec.dtype))


def inr_info(path: str | os.PathLike) -> dict[str, Any]:
    """Sizes and parameters of an INR store.

    ``stored_bytes`` counts every file of the store (weights, index, means, offsets and the
    zarr metadata files); ``ratio = raw_bytes / stored_bytes``. ``breakdown`` gives the bytes
    of each member (``zarr.json`` is the group's metadata file).
    """
    meta = read_meta(path)
    root = os.fspath(path)
    breakdown: dict[str, int] = {}
    for dirpath, _, files in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        key = "zarr.json" if rel == "." else rel.split(os.sep)[0]
        for f in files:
            n = os.path.getsize(os.path.join(dirpath, f))
            k = key if rel != "." else f
            breakdown[k] = breakdown.get(k, 0) + n
    stored = sum(breakdown.values())
    raw = math.prod(meta["shape"]) * np.dtype(meta["dtype"]).itemsize
    return {"raw_bytes": raw, "stored_bytes": stored, "ratio": raw / stored if stored else 0.0,
            "breakdown": breakdown, "n_tiles": meta["n_tiles"], "n_model": meta["n_model"],
            "n_empty": meta["n_tiles"] - meta["n_model"], "width": meta["width"],
            "bits": meta["bits"], "tile": tuple(meta["tile"]), "meta": meta}
