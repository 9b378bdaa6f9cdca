"""Prediction fused with the ``fast`` coder: one pass from bin indices to the packed payload.

The unfused path writes every residual (4 bytes per pixel) to memory, then reads them twice
(block widths, packing). Here the rows are cut into *groups* of about 64 Ki pixels that start on
a 32-symbol block boundary; each group predicts its rows into a residual buffer, and while those
residuals are still in cache computes its block widths and packs them into its own region of a
word buffer. A second pass concatenates the groups' words. The payload is byte-for-byte the one
of ``encode_fast(predict_encode(...))`` (format in :mod:`bigcomp.kernels._coders`).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from ._coders import _offsets_range, _pack_range, _widths_range
from ._numba import pjit
from ._predict import encode_rows, with_accumulator
from ._scratch import scratch

__all__ = ["encode_fast_fused"]

GROUP_PIXELS = 1 << 15


def _group_rows(n_cols: int) -> int:
    """Rows per group: a multiple of the rows after which a group starts on a block boundary."""
    step = 32 // math.gcd(n_cols, 32)
    rows = max(1, GROUP_PIXELS // max(n_cols, 1))
    return max(step, rows // step * step)


def _fused_kernel(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi,
                  rows_per_group, n_workers, widths, offs, words, group_words):
    n_planes, n_rows, n_cols = k.shape
    total_rows = n_planes * n_rows
    n_groups = group_words.size
    for w in prange(n_workers):
        # one residual buffer per worker, small enough to stay in cache
        buf = np.empty(rows_per_group * n_cols, np.uint32)
        for g in range(w * n_groups // n_workers, (w + 1) * n_groups // n_workers):
            r0 = g * rows_per_group
            r1 = min(total_rows, r0 + rows_per_group)
            b0 = r0 * n_cols // 32  # groups start on a block boundary
            b1 = (r1 * n_cols + 31) // 32
            res = buf[: (r1 - r0) * n_cols]
            encode_rows(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi,
                        r0, r1, res)
            _widths_range(res, widths[b0:b1])
            group_words[g] = _offsets_range(widths[b0:b1], offs[b0:b1])
            # the group's own region of the word buffer: at most 32 words per block
            _pack_range(res, widths[b0:b1], offs[b0:b1], words[32 * b0 : 32 * b1])


def _concat_kernel(words, rows_per_group, n_cols, group_start, group_words, out):
    for g in prange(group_words.size):
        b0 = (g * rows_per_group * n_cols) // 32
        src = words[32 * b0 : 32 * b0 + group_words[g]]
        dst = out[group_start[g] : group_start[g] + group_words[g]]
        for i in range(src.size):
            dst[i] = src[i]


_fused_p, _fused_s = pjit(_fused_kernel)
_concat_p, _concat_s = pjit(_concat_kernel)


def encode_fast_fused(k, nz, intra, inter, lo, hi, *, parallel=True) -> np.ndarray:
    """``fast`` payload (uint8 array) of the residuals of ``k`` (3-D) under a predictor pair.

    Same arguments as :func:`bigcomp.kernels._predict.predict_encode`; the result equals
    ``encode_fast(predict_encode(k, ...))``.
    """
    n_planes, n_rows, n_cols = k.shape
    n = k.size
    nblk = -(-n // 32)
    head = -(-nblk // 4) * 4
    if n == 0:
        return np.empty(0, np.uint8)
    intra, inter = with_accumulator(intra, inter, lo, hi)
    rows_per_group = _group_rows(n_cols)
    n_groups = -(-(n_planes * n_rows) // rows_per_group)
    n_workers = min(n_groups, 4 * numba.get_num_threads()) if parallel else 1
    words = scratch("fused_words", 32 * nblk, np.uint32)
    offs = scratch("fused_offsets", nblk, np.int64)
    widths = np.empty(nblk, np.uint8)
    group_words = np.empty(n_groups, np.int64)
    (_fused_p if parallel else _fused_s)(
        k, nz, intra[0], intra[1], intra[2], inter[0], inter[1], inter[2], lo, hi,
        rows_per_group, n_workers, widths, offs, words, group_words,
    )
    group_start = np.zeros(n_groups, np.int64)
    np.cumsum(group_words[:-1], out=group_start[1:])
    nwords = int(group_start[-1] + group_words[-1])
    out = np.empty(head + 4 * nwords, np.uint8)
    out[:nblk] = widths
    out[nblk:head] = 0
    (_concat_p if parallel else _concat_s)(
        words, rows_per_group, n_cols, group_start, group_words, out[head:].view(np.uint32)
    )
    return out
