"""Latent-grid INR stores (``format_version`` 4, ``meta["model"] == "grid"``).

Layout::

    zarr.json            group; attributes["bigcomp"] = metadata (compact JSON): mode "inr",
                         model "grid", shape, dtype, tile, levels (latent grid shapes),
                         channels, hidden, layers, arm_hidden, norm [mean, std] (fitting
                         domain), domain, camera (only when it differs from the domain's),
                         bounds ([lo, hi] per level), layout, training parameters
    payload/             uint8, uncompressed: byte ranges given by meta["layout"]:
                           mlp      float16 LE step of every decoder tensor (weight, bias per
                                    layer, then the upsampling taps (L, 3, R + 1) when
                                    meta["upsample"] gives their radii), then the tensors'
                                    8-bit integers in that order, zig-zagged and coded with
                                    bigcomp's ``max`` coder (row length = hidden)
                           arm      the integer entropy model (:class:`entropy.IntARM` bytes)
                           offsets  uint64 LE (ntiles + 1,): tile streams within ``latents``
                           latents  per tile, its latent pyramid coded by
                                    :func:`entropy.encode_latents`

Tile ``i`` (C order over the tile grid) decodes to ``inverse(mean + std · mlp(features))``
(:func:`bigcomp.inr.grid.net.decode_tile`; ``inverse`` is the camera model's inverse
variance-stabilising transform, or the identity in the linear domain).
"""

from __future__ import annotations

import math
import os
import shutil
import threading
from typing import Any

import numpy as np

from ...errors import CorruptChunkError, ParameterError
from ...kernels._coders import decode_max, encode_max, unzigzag, zigzag
from ..tiling import TileGrid
from . import entropy
from .net import decode_tile, mlp_shapes

__all__ = ["FORMAT_VERSION", "GridDecoder", "decode_mlp", "encode_mlp", "grid_info",
           "write_grid_store"]

FORMAT_VERSION = 4
PAYLOAD_CHUNK = 1 << 20


def model_shape(tile) -> tuple[int, int, int]:
    """The (d, h, w) a tile's latent pyramid covers: its last three axes (2-D: d = 1)."""
    t = tuple(int(v) for v in tile)
    return (1, *t) if len(t) == 2 else t[-3:]


def encode_mlp(ints: list[np.ndarray], steps: list[float], hidden: int) -> bytes:
    """The decoder's float16 steps, then its integer tensors zig-zagged and ``max``-coded."""
    flat = np.concatenate([np.asarray(q, np.int64).ravel() for q in ints])
    head = np.asarray(steps, "<f2").tobytes()
    return head + encode_max(np.ascontiguousarray(zigzag(flat).astype(np.uint32)), int(hidden))


def taps_shape(meta: dict) -> tuple[int, int, int] | None:
    """Shape of the learned upsampling taps ``(L, 3, max radius + 1)``; ``None`` without."""
    radii = meta.get("upsample")
    return None if not radii else (len(meta["levels"]), 3, max(radii) + 1)


def decode_mlp(buf, meta: dict) -> tuple[list[tuple[np.ndarray, np.ndarray]],
                                         np.ndarray | None]:
    """float32 ``(weight, bias)`` per layer and the upsampling taps (or ``None``) from the
    ``mlp`` part (module docstring)."""
    sizes = mlp_shapes(len(meta["levels"]) * meta["channels"], meta["hidden"], meta["layers"])
    tshape = taps_shape(meta)
    ntensors = 2 * len(sizes) + (tshape is not None)
    n = sum(o * i + o for o, i in sizes) + (math.prod(tshape) if tshape else 0)
    buf = np.asarray(buf, np.uint8)
    if buf.size < 2 * ntensors:
        raise CorruptChunkError(f"INR grid store: decoder part of {buf.size} bytes is truncated")
    steps = buf[:2 * ntensors].view("<f2").astype(np.float64)
    q = unzigzag(decode_max(buf[2 * ntensors:], n, int(meta["hidden"]))).astype(np.int64)
    out, o = [], 0
    for k, (fo, fi) in enumerate(sizes):
        w = q[o:o + fo * fi].reshape(fo, fi).astype(np.float32) * np.float32(steps[2 * k])
        o += fo * fi
        b = q[o:o + fo].astype(np.float32) * np.float32(steps[2 * k + 1])
        o += fo
        out.append((w, b))
    taps = None
    if tshape is not None:
        taps = q[o:].reshape(tshape).astype(np.float32) * np.float32(steps[-1])
    return out, taps


def write_grid_store(dest: str, meta: dict, parts: dict[str, bytes], *, overwrite: bool) -> str:
    """Write the group (module docstring); fills ``meta["layout"]`` and the format version.

    The group is written to ``dest + ".partial"`` and renamed, so ``dest`` never holds half a
    store.
    """
    import zarr

    path = os.fspath(dest)
    if os.path.exists(path) and not overwrite:
        raise ParameterError(f"{path} exists; pass overwrite=True to replace it")
    layout, o = {}, 0
    for k in ("mlp", "arm", "offsets", "latents"):
        layout[k] = [o, len(parts[k])]
        o += len(parts[k])
    meta = {**meta, "layout": layout, "format_version": FORMAT_VERSION}
    blob = np.frombuffer(b"".join(parts[k] for k in layout), np.uint8)
    tmp = path + ".partial"
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    with zarr.config.set({"json_indent": None}):
        g = zarr.open_group(tmp, mode="w-")
        g.attrs["bigcomp"] = meta
        z = g.create_array("payload", shape=blob.shape, dtype=np.uint8,
                           chunks=(max(1, min(blob.size, PAYLOAD_CHUNK)),), compressors=None,
                           fill_value=0)
        if blob.size:
            z[...] = blob
    if os.path.exists(path):
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    os.replace(tmp, path)
    return path


class GridDecoder:
    """Decodes one tile of a grid store (picklable: the payload is re-read per process)."""

    def __init__(self, path: str, meta: dict):
        from ..store import domain_camera

        self.path = os.fspath(path)
        self.meta = meta
        self.grid = TileGrid(tuple(meta["shape"]), tuple(meta["tile"]))
        self.dtype = np.dtype(meta["dtype"])
        self.camera = domain_camera(meta)
        self.model_shape = model_shape(meta["tile"])
        self.shapes = [(int(meta["channels"]), *map(int, s)) for s in meta["levels"]]
        self.bounds = np.asarray(meta["bounds"], np.int64).reshape(-1, 2)
        self._init_runtime()

    def _init_runtime(self) -> None:
        self._lock = threading.Lock()
        self._parts: dict[str, Any] | None = None

    def __getstate__(self):
        state = dict(self.__dict__)
        for k in ("_lock", "_parts"):
            state.pop(k, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._init_runtime()

    def _load(self) -> dict[str, Any]:
        import zarr

        with self._lock:
            if self._parts is None:
                m = self.meta
                blob = np.asarray(zarr.open_array(self.path + "/payload", mode="r")[...],
                                  np.uint8)
                lay = {k: blob[o:o + n] for k, (o, n) in m["layout"].items()}
                if sum(n for _, n in m["layout"].values()) != blob.size:
                    raise CorruptChunkError(f"INR grid store {self.path}: payload has "
                                            f"{blob.size} bytes, its layout says otherwise")
                offsets = lay["offsets"].view("<u8").astype(np.int64)
                if (offsets.size != self.grid.ntiles + 1 or offsets[0] != 0
                        or offsets[-1] != lay["latents"].size or (np.diff(offsets) < 0).any()):
                    raise CorruptChunkError(f"INR grid store {self.path}: bad tile offsets")
                adims = [len(entropy.CONTEXT), m["arm_hidden"], m["arm_hidden"], 2]
                self._parts = {
                    "mlp": decode_mlp(lay["mlp"], m),  # (layers, taps)
                    "arm": entropy.IntARM.from_bytes(lay["arm"].tobytes(), adims,
                                                     len(m["levels"])),
                    "offsets": offsets, "latents": lay["latents"]}
        return self._parts

    def latents(self, i: int) -> list[np.ndarray]:
        """The integer latent pyramid of tile ``i``."""
        p = self._load()
        lo, hi = int(p["offsets"][i]), int(p["offsets"][i + 1])
        return entropy.decode_latents(p["latents"][lo:hi].tobytes(), self.shapes, p["arm"],
                                      self.bounds)

    def tile(self, i: int) -> np.ndarray:
        """Decoded tile ``i`` with the array's dtype and the tile's block shape."""
        from ..store import to_dtype

        sl = self.grid.slices(i)
        shape = tuple(s.stop - s.start for s in sl)
        valid = model_shape(shape)
        layers, taps = self._load()["mlp"]
        up = None if taps is None else (taps, self.meta["upsample"])
        y = decode_tile(self.latents(i), layers, self.model_shape, valid, up)
        mean, std = self.meta["norm"]
        vals = (y.astype(np.float64) * std + mean).reshape(shape)
        if self.camera is not None:
            vals = self.camera.inverse(vals)
        return to_dtype(vals, self.dtype)

    def block(self, idx: tuple[int, ...]) -> np.ndarray:
        return self.tile(int(np.ravel_multi_index(idx, self.grid.counts)))


def grid_info(path: str, meta: dict) -> dict[str, Any]:
    """:func:`bigcomp.inr.inr_info` of a grid store."""
    from ..store import stored_breakdown

    breakdown = stored_breakdown(path)
    stored = sum(breakdown.values())
    raw = math.prod(meta["shape"]) * np.dtype(meta["dtype"]).itemsize
    grid = TileGrid(tuple(meta["shape"]), tuple(meta["tile"]))
    return {"raw_bytes": raw, "stored_bytes": stored, "ratio": raw / stored if stored else 0.0,
            "breakdown": breakdown,
            "parts": {k: int(n) for k, (_, n) in meta["layout"].items()},
            "model": "grid", "n_tiles": grid.ntiles, "n_model": grid.ntiles, "n_empty": 0,
            "levels": [tuple(s) for s in meta["levels"]], "channels": meta["channels"],
            "hidden": meta["hidden"], "tile": tuple(meta["tile"]), "meta": meta}
