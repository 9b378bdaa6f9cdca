"""numba kernel: table look-up ``out[i] = table[values[i]]`` (quantisation and reconstruction)."""

from __future__ import annotations

import numpy as np
from numba import prange

from ._numba import pjit, readonly

__all__ = ["lookup"]


def _lookup_kernel(values, table, out):
    n = values.size
    block = 1 << 16
    for b in prange((n + block - 1) // block):
        # 0-based views: numba drops the negative-index checks and vectorises (2x faster)
        v = values[b * block : min(n, (b + 1) * block)]
        o = out[b * block : min(n, (b + 1) * block)]
        for i in range(v.size):
            o[i] = table[v[i]]


_lookup_par, _lookup_ser = pjit(_lookup_kernel)


def lookup(
    values: np.ndarray, table: np.ndarray, dtype, *, parallel: bool = True, out=None
) -> np.ndarray:
    """``table[values]`` as an array of ``dtype`` and ``values``' shape (into ``out`` if given).

    ``values`` must only hold valid indices of ``table`` (the caller checks decoded data).
    """
    flat = readonly(np.ascontiguousarray(values).reshape(-1))
    out = np.empty(flat.size, dtype) if out is None else out.reshape(-1)
    (_lookup_par if parallel else _lookup_ser)(flat, readonly(table), out)
    return out.reshape(values.shape)
