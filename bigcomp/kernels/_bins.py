"""numba kernel: greedy quantisation bins of an increasing transform (see
:func:`bigcomp.noise.greedy_bins`)."""

from __future__ import annotations

import numpy as np

from ._numba import jit

__all__ = ["greedy", "greedy_bins_kernel"]


def _greedy_kernel(y, half, bins, recs):
    """Bins of consecutive positions of ``y``; returns the number of bins (``recs[:n]``)."""
    n = y.size
    a = 0
    r = 0
    nb = 0
    while a < n:
        # reconstruction: the last r with y[r] <= y[a] + half
        if r < a:
            r = a
        while r + 1 < n and y[r + 1] <= y[a] + half:
            r += 1
        # end: the last b with y[b] <= y[r] + half
        b = r
        while b + 1 < n and y[b + 1] <= y[r] + half:
            b += 1
        for i in range(a, b + 1):
            bins[i] = nb
        recs[nb] = r
        nb += 1
        a = b + 1
    return nb


greedy_bins_kernel = jit(_greedy_kernel)


def greedy(y: np.ndarray, half: float) -> tuple[np.ndarray, np.ndarray]:
    bins = np.empty(y.size, np.uint32)
    recs = np.empty(y.size, np.int64)
    nb = greedy_bins_kernel(np.ascontiguousarray(y, np.float64), float(half), bins, recs)
    return bins, recs[:nb].copy()
