"""numba kernels: per-pixel quantisation with noise classes (format version 6).

Pixel ``i`` of a plane has a class ``c`` and an integer offset ``o``. Quantising value ``x``
gives ``bins[c, x - o + base] + align[c]``; reconstructing index ``k`` gives
``clip(rec[c, k - align[c]] + o, 0, top)``. Every plane of a chunk uses the same maps.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._numba import pjit, readonly

__all__ = ["dequantise_classes", "quantise_classes"]

_BLOCK = 1 << 16


def _quantise_kernel(x, cls, offsets, bins, align, base, out):
    n = x.size
    plane = cls.size
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            p = i % plane
            c = cls[p]
            out[i] = bins[c, np.int64(x[i]) - offsets[p] + base] + align[c]


def _dequantise_kernel(k, cls, offsets, rec, nbins, align, top, out, bad):
    n = k.size
    plane = cls.size
    for b in prange((n + _BLOCK - 1) // _BLOCK):
        wrong = 0
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            p = i % plane
            c = cls[p]
            j = np.int64(k[i]) - align[c]
            if j < 0 or j >= nbins[c]:
                wrong += 1
                j = 0
            v = rec[c, j] + offsets[p]
            out[i] = min(max(v, 0), top)
        bad[b] = wrong


_quantise_par, _quantise_ser = pjit(_quantise_kernel)
_dequantise_par, _dequantise_ser = pjit(_dequantise_kernel)


def quantise_classes(x: np.ndarray, cls: np.ndarray, offsets: np.ndarray, bins: np.ndarray,
                     align: np.ndarray, base: int, *, parallel: bool = True) -> np.ndarray:
    """Bin indices (int32, ``x``'s shape) of integer pixels ``x`` whose last two axes are the
    maps' (``cls`` uint16, ``offsets`` int64); ``bins`` is (classes, table length) int32."""
    flat = readonly(np.ascontiguousarray(x).reshape(-1))
    out = np.empty(flat.size, np.int32)
    (_quantise_par if parallel else _quantise_ser)(
        flat, readonly(cls.reshape(-1)), readonly(offsets.reshape(-1)), readonly(bins),
        readonly(align), np.int64(base), out)
    return out.reshape(x.shape)


def dequantise_classes(k: np.ndarray, cls: np.ndarray, offsets: np.ndarray, rec: np.ndarray,
                       nbins: np.ndarray, align: np.ndarray, dtype, *, parallel: bool = True
                       ) -> np.ndarray:
    """Reconstructed pixels (``dtype``, flat) of bin indices ``k``.

    Raises
    ------
    ValueError
        An index lies outside its class's bins (a damaged chunk).
    """
    flat = readonly(np.ascontiguousarray(k).reshape(-1))
    out = np.empty(flat.size, dtype)
    bad = np.zeros(max(1, -(-flat.size // _BLOCK)), np.int64)
    (_dequantise_par if parallel else _dequantise_ser)(
        flat, readonly(cls.reshape(-1)), readonly(offsets.reshape(-1)), readonly(rec),
        readonly(nbins), readonly(align), np.int64(np.iinfo(dtype).max), out, bad)
    if bad.any():
        raise ValueError(f"{int(bad.sum())} decoded values lie outside their noise class's bins")
    return out
