"""Compile the CPU kernels into the on-disk cache ahead of the work (``bigcomp.warmup()``,
``bigcomp warmup``, :class:`bigcomp.WarmupPlugin`).

The kernels are cached on disk on first use anyway (:mod:`bigcomp.kernels._cache`); warming up
moves that one-off cost (minutes on a small machine, for every dtype and coder) to when it
suits: while a container image or a cluster environment is built, or once per machine. It
encodes and decodes small synthetic chunks of each dtype in every mode and with each coder,
from writable and read-only arrays and buffers (they compile separately), covers the
accumulators the predictors may need (int32 or int64, depending on the fitted coefficients),
then compiles the parallel twin of every serial kernel it ran and the other way round, without
running it (so it is safe on any thread, a dask worker's included).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["WarmupReport", "warmup"]

_DTYPES = ("uint8", "uint16", "float32")
_CODERS = ("fast", "max", "rice")
# (rows, cols) of planes: 2 x 32 x 256 codes rice groups fused with prediction, the small
# 2-D chunk the separate passes (groups of more rows than a stack has)
_SHAPES = ((2, 32, 256), (8, 16))


@dataclass(frozen=True)
class WarmupReport:
    """What :func:`warmup` did."""

    cache_dir: str
    """The folder of this installation's cache entries."""
    writable: bool
    """Whether compiled kernels could be saved there."""
    compiled: int
    """Kernels compiled (cache misses; 0 on a warm cache)."""
    loaded: int
    """Kernels loaded from the cache."""
    seconds: float

    def __str__(self) -> str:
        state = "" if self.writable else " (NOT writable: nothing saved)"
        return (f"{self.compiled} kernels compiled, {self.loaded} loaded from the cache in "
                f"{self.seconds:.1f} s; cache: {self.cache_dir}{state}")


def _counts() -> tuple[int, int]:
    from .kernels._numba import dispatchers

    hits = misses = 0
    for d in dispatchers():
        stats = d.stats
        hits += sum(stats.cache_hits.values())
        misses += sum(stats.cache_misses.values())
    return hits, misses


def _sample(dtype, shape, camera, rng):
    """Noisy smooth data of ``camera`` (so that every predictor and coder path runs)."""
    import numpy as np

    grid = np.indices(shape, dtype=np.float64)
    signal = 12 + 8 * np.sin(grid[-1] / 7.0) * np.cos(grid[-2] / 5.0) + grid[0]
    electrons = rng.poisson(signal) + rng.normal(0, camera.read_noise, shape)
    values = camera.offset + camera.gain * electrons
    if np.dtype(dtype).kind == "u":
        return np.clip(np.rint(values), 0, np.iinfo(dtype).max).astype(dtype)
    return values.astype(dtype)


def _chunks(dtypes, coders) -> None:
    """Encode and decode one chunk per dtype, shape, mode, coder and buffer kind."""
    import numpy as np

    from .chunk import decode_chunk, encode_chunk
    from .noise import CameraModel

    camera = CameraModel(gain=2.0, offset=10.0, read_noise=1.5)
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        for shape in _SHAPES:
            data = _sample(dtype, shape, camera, rng)
            frozen = data.copy()
            frozen.flags.writeable = False
            for coder in coders:
                for q, order in ((0.0, "qp"), (1.0, "qp"), (1.0, "pq")):
                    if np.dtype(dtype).kind == "f" and (q == 0 or order == "pq"):
                        continue  # float32 is lossy and quantise-then-predict only
                    cam = camera if q else None
                    encode_chunk(frozen, q=q, camera=cam, order=order, coder=coder)
                    chunk = encode_chunk(data, q=q, camera=cam, order=order, coder=coder)
                    decode_chunk(chunk)  # read-only buffer (bytes)
                    decode_chunk(bytearray(chunk))  # writable one


def _accumulators(dtypes, coders) -> None:
    """Run the prediction kernels with int32 and int64 accumulators (which one a chunk gets
    depends on its fitted coefficients) for the integer arrays the chunks of ``dtypes``
    predict: the data itself when lossless (writable or not), bin indices when lossy."""
    import numpy as np

    from .kernels._fused import decode_fast_fused, encode_fast_fused
    from .kernels._fused_rice import decode_rice_fused, encode_rice_fused
    from .kernels._predict import predict_decode, predict_encode
    from .predictors import FIXED_INTER, FIXED_INTRA

    intra = FIXED_INTRA["avg4"].as_arrays()
    inter = FIXED_INTER["avg6"].as_arrays()
    fused = [(encode_fast_fused, decode_fast_fused)] if "fast" in coders else []
    if "rice" in coders:
        fused.append((encode_rice_fused, decode_rice_fused))
    shape = (2, 32, 256)  # rice groups of 16 rows: fused both ways
    arrays = []
    for dtype in dtypes:
        dt = np.dtype(dtype)
        k = (np.arange(np.prod(shape)) % 200).astype(dt if dt.kind == "u" else np.int32)
        arrays.append(k.reshape(shape))
        if dt.kind == "u":  # lossless: the data itself, maybe read-only
            frozen = k.reshape(shape)
            frozen.flags.writeable = False
            arrays.append(frozen)
    for k in arrays:
        for hi in (255, 1 << 30):  # small range: int32 accumulator; huge: int64
            args = (2, intra, inter, 0, hi)
            kw = {"orient": True, "parallel": False}
            if {"max", "rice"} & set(coders):  # (rice: rows longer than its groups)
                res = predict_encode(k, *args, **kw)
                predict_decode(res, shape, *args, dtype=k.dtype, **kw)
            for encode, decode in fused:
                payload = encode(k, *args, **kw)
                decode(payload, shape, *args, dtype=k.dtype, **kw)
                decode(payload.tobytes(), shape, *args, dtype=k.dtype, **kw)


def _twins() -> None:
    """Compile the parallel twin of every serial kernel that ran, and the other way round
    (compiled, not run: safe on any thread)."""
    from .kernels._numba import parallel_twins

    for pair in parallel_twins():
        for done, twin in (pair, pair[::-1]):
            for sig in done.signatures:
                if sig not in twin.overloads:
                    twin.compile(sig)


def warmup(
    dtypes: Iterable[str] = _DTYPES, coders: Iterable[str] = _CODERS
) -> WarmupReport:
    """Compile (or load) the CPU kernels that encode and decode chunks, into the disk cache.

    Every kernel is cached on disk the first time it compiles (in the per-user cache directory,
    or ``$BIGCOMP_CACHE_DIR``), so a later process loads it in milliseconds instead of
    compiling it for seconds. ``warmup`` pays that cost ahead of time, for every mode (lossless,
    ``qp`` and ``pq``), coder, parallel and serial kernel, and the given dtypes: run it once
    per machine or while building a container or cluster image (``bigcomp warmup``); on a warm
    cache it just loads the kernels (a second or two), so a long-running process or a dask
    worker (:class:`bigcomp.WarmupPlugin`) can call it to start at full speed.

    Parameters
    ----------
    dtypes : iterable of str
        Data types to prepare for (``"uint8"``, ``"uint16"``, ``"float32"``; default all).
    coders : iterable of str
        Coders to prepare for (``"fast"``, ``"max"``, ``"rice"``; default all).

    Returns
    -------
    WarmupReport
        The cache folder, whether it is writable, and how many kernels were compiled and
        loaded.

    Raises
    ------
    ParameterError
        For an unknown dtype or coder.

    Notes
    -----
    Entries are specific to the CPU model; a cache built on another model is recompiled (set
    ``NUMBA_CPU_NAME=generic`` both when warming up and when running for a portable cache, at
    some speed cost). It is not thread-safe to run it while other threads compress.
    """
    from .chunk import CODERS, SUPPORTED_DTYPES
    from .errors import ParameterError
    from .kernels import _cache

    dtypes = tuple(str(d) for d in dtypes)
    coders = tuple(coders)
    supported = [str(d) for d in SUPPORTED_DTYPES]
    for d in dtypes:
        if d not in supported:
            raise ParameterError(f"dtype must be one of {supported}, got {d!r}")
    for c in coders:
        if c not in CODERS:
            raise ParameterError(f"coder must be one of {CODERS}, got {c!r}")
    start = time.perf_counter()
    hits0, misses0 = _counts()
    _chunks(dtypes, coders)
    _accumulators(dtypes, coders)
    _twins()
    hits, misses = _counts()
    enabled = _cache.cache_enabled()
    return WarmupReport(
        cache_dir=str(_cache.cache_dir()) if enabled else "(disabled: BIGCOMP_NUMBA_CACHE=0)",
        writable=enabled and not _cache._saves_failed,
        compiled=misses - misses0,
        loaded=hits - hits0,
        seconds=time.perf_counter() - start,
    )
