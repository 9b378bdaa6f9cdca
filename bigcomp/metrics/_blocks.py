"""Dask plumbing shared by the metrics: array coercion and per-block statistics.

Every metric works chunk by chunk: a per-block function returns a short float64 vector of
statistics (sums, maxima, histogram counts), :func:`block_vectors` stacks them lazily with
``map_blocks``, and the caller combines the (n_blocks, K) table in numpy. Memory is bounded by
the chunk size, never by the array size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np

from ..errors import ParameterError

__all__ = ["as_dask", "block_tables", "block_vectors", "default_chunks", "halo_slices"]


def default_chunks(shape: Sequence[int], itemsize: int = 2) -> tuple[int, ...]:
    """Whole 2-D planes, up to 16 of them along axis -3, further leading axes 1 by 1."""
    shape = tuple(int(s) for s in shape)
    if len(shape) <= 2:
        return shape
    return (1,) * (len(shape) - 3) + (min(16, shape[-3]),) + shape[-2:]


def as_dask(x: Any, like: da.Array | None = None,
            chunks: Sequence[int] | str | None = None) -> da.Array:
    """Wrap numpy (or array-like) data as a dask array; rechunk to ``like``'s chunks if given."""
    if not isinstance(x, da.Array):
        x = np.asarray(x)
        x = da.from_array(x, chunks=chunks or default_chunks(x.shape, x.dtype.itemsize))
    elif chunks is not None:
        x = x.rechunk(chunks)
    if like is not None:
        if x.shape != like.shape:
            raise ParameterError(f"arrays differ in shape: {x.shape} vs {like.shape}")
        if x.chunks != like.chunks:
            x = x.rechunk(like.chunks)
    return x


def block_vectors(func: Callable[..., np.ndarray], arrays: Sequence[da.Array], size: int,
                  **kwargs: Any) -> da.Array:
    """Lazy ``(*numblocks, size)`` array of ``func(*blocks, **kwargs)`` (a float64 vector each).

    ``arrays`` must share shape and chunks.
    """
    first = arrays[0]
    nd = first.ndim

    def wrapped(*blocks: np.ndarray) -> np.ndarray:
        vec = np.asarray(func(*blocks, **kwargs), dtype=np.float64)
        return vec.reshape((1,) * nd + (size,))

    chunks = (*((1,) * len(c) for c in first.chunks), (size,))
    return da.map_blocks(wrapped, *arrays, dtype=np.float64, chunks=chunks, new_axis=nd,
                         meta=np.empty((0,) * (nd + 1), np.float64))


def halo_slices(x: da.Array, depth: Sequence[int]):
    """Yield ``(slices_with_halo, origin, interior)`` per block of ``x``.

    ``origin`` is the global index of the halo'd block's first element; ``interior`` the
    global ``(start, stop)`` per axis of the block itself. The halo is clipped at the array
    edges (no padding).
    """
    bounds = [np.concatenate([[0], np.cumsum(c)]) for c in x.chunks]
    for idx in np.ndindex(*x.numblocks):
        sl, origin, interior = [], [], []
        for ax, i in enumerate(idx):
            start, stop = int(bounds[ax][i]), int(bounds[ax][i + 1])
            lo, hi = max(0, start - depth[ax]), min(x.shape[ax], stop + depth[ax])
            sl.append(slice(lo, hi))
            origin.append(lo)
            interior.append((start, stop))
        yield tuple(sl), tuple(origin), tuple(interior)


def block_tables(func: Callable[..., np.ndarray], arrays: Sequence[da.Array],
                 depth: Sequence[int], ncols: int, **kwargs: Any) -> np.ndarray:
    """Run ``func(*halo_blocks, origin=, interior=, **kwargs)`` per block; stack the row tables.

    Each call returns an ``(n, ncols)`` table (e.g. one row per detected spot, in global
    coordinates); the tables of all blocks are computed in parallel and concatenated.
    """
    tasks = [dask.delayed(func)(*(a[sl] for a in arrays), origin=origin, interior=interior,
                                **kwargs)
             for sl, origin, interior in halo_slices(arrays[0], depth)]
    tables = dask.compute(*tasks)
    if not tables:
        return np.empty((0, ncols))
    return np.concatenate([np.asarray(t, np.float64).reshape(-1, ncols) for t in tables])
