"""Prediction fused with the ``rice`` coder (format in :mod:`bigcomp.kernels._rice`).

A rice group is a whole number of rows (when rows are at most 65536 symbols), so a work item of
a few groups (~32 Ki pixels) predicts its rows into a per-worker buffer and codes them while
they are in cache; decoding a stack decodes a few groups into a buffer and reconstructs their
rows. Longer rows, and stacks shorter than four groups, fall back to separate passes. The payload is byte-for-byte
``encode_rice(predict_encode(...), n_cols)``.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._numba import jit, pjit, readonly
from ._predict import decode_rows, encode_rows, predict_decode, predict_encode, with_accumulator
from ._rice import (
    assemble,
    decode_group,
    decode_rice,
    encode_group,
    encode_rice,
    group_symbols,
    max_group_words,
    rice_layout,
)
from ._scratch import scratch

__all__ = ["decode_rice_fused", "encode_rice_fused"]

WORK_PIXELS = 1 << 15


def _fused_kernel(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, orient,
                  group_rows, groups_per_item, n_workers, gmax, words, group_words):
    n_planes, n_rows, n_cols = k.shape
    total_rows = n_planes * n_rows
    n_groups = group_words.size
    n_items = -(-n_groups // groups_per_item)
    s = group_rows * n_cols
    for w in prange(n_workers):
        buf = np.empty(groups_per_item * s, np.uint32)  # small enough to stay in cache
        for item in range(w * n_items // n_workers, (w + 1) * n_items // n_workers):
            g0 = item * groups_per_item
            g1 = min(n_groups, g0 + groups_per_item)
            r0 = g0 * group_rows
            r1 = min(total_rows, g1 * group_rows)
            res = buf[: (r1 - r0) * n_cols]
            encode_rows(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, orient,
                        r0, r1, res)
            for g in range(g0, g1):
                a = (g - g0) * s
                b = min(res.size, a + s)
                group_words[g] = encode_group(res[a:b], words[g * gmax : (g + 1) * gmax])


_fused_p, _fused_s = pjit(_fused_kernel)


def encode_rice_fused(k, nz, intra, inter, lo, hi, *, orient=False, parallel=True) -> np.ndarray:
    """``rice`` payload (uint8 array) of the residuals of ``k`` (3-D) under a predictor pair.

    Same arguments as :func:`bigcomp.kernels._predict.predict_encode`; the result equals
    ``encode_rice(predict_encode(k, ...), k.shape[2])``.
    """
    n_planes, n_rows, n_cols = k.shape
    if k.size == 0:
        return np.empty(0, np.uint8)
    s = group_symbols(n_cols)
    if s % n_cols:  # rows longer than a group: separate passes
        res = predict_encode(k, nz, intra, inter, lo, hi, orient=orient, parallel=parallel,
                             out=scratch("residuals", k.size, np.uint32))
        return np.frombuffer(encode_rice(res, n_cols, parallel=parallel), np.uint8)
    intra, inter = with_accumulator(intra, inter, lo, hi)
    group_rows = s // n_cols
    n_groups = -(-(n_planes * n_rows) // group_rows)
    groups_per_item = max(1, WORK_PIXELS // s)
    n_items = -(-n_groups // groups_per_item)
    n_workers = min(n_items, 4 * numba.get_num_threads()) if parallel else 1
    gmax = max_group_words(s)
    words = scratch("rice_words", n_groups * gmax, np.uint32)
    group_words = np.empty(n_groups, np.int64)
    (_fused_p if parallel else _fused_s)(
        readonly(k), nz, intra[0], intra[1], intra[2], inter[0], inter[1], inter[2], lo, hi, bool(orient),
        group_rows, groups_per_item, n_workers, gmax, words, group_words,
    )
    return assemble(s, words, gmax, group_words, parallel=parallel)


@jit
def _decode_groups(words, group_start, group_words, s, g0, g1, buf):
    """Decode groups ``g0 <= g < g1`` into ``buf`` (group ``g`` at ``s * (g - g0)``); returns
    the number of corrupt groups."""
    bad = 0
    for g in range(g0, g1):
        a = (g - g0) * s
        bad += decode_group(words[group_start[g] : group_start[g] + group_words[g]],
                            buf[a : a + s])
    return bad


def _fused_decode_kernel(words, group_start, group_words, s, last_size, nz, intra, intra_c,
                         intra_s, inter, inter_c, inter_s, lo, hi, orient, rows_per_item, k,
                         bad):
    n_planes, n_rows, n_cols = k.shape
    rows = nz * n_rows  # rows per stack
    group_rows = s // n_cols
    n_groups = group_words.size
    for st in prange(n_planes // nz):
        buf = np.empty((rows_per_item // group_rows + 2) * s, np.uint32)
        n_bad = 0
        for r0 in range(st * rows, (st + 1) * rows, rows_per_item):
            r1 = min((st + 1) * rows, r0 + rows_per_item)
            g0 = r0 // group_rows
            g1 = -(-r1 // group_rows)
            if g1 == n_groups:  # the last group may be short
                n_bad += _decode_groups(words, group_start, group_words, s, g0, g1 - 1, buf)
                a = (g1 - 1 - g0) * s
                n_bad += decode_group(
                    words[group_start[g1 - 1] : group_start[g1 - 1] + group_words[g1 - 1]],
                    buf[a : a + last_size],
                )
            else:
                n_bad += _decode_groups(words, group_start, group_words, s, g0, g1, buf)
            skip = (r0 - g0 * group_rows) * n_cols
            n_bad += decode_rows(buf[skip : skip + (r1 - r0) * n_cols], nz, intra, intra_c,
                                 intra_s, inter, inter_c, inter_s, lo, hi, orient, r0, r1, k)
        bad[st] = n_bad


_fdec_p, _fdec_s = pjit(_fused_decode_kernel)


def decode_rice_fused(payload, shape, nz, intra, inter, lo, hi, *, dtype, orient=False,
                      parallel=True, out=None) -> np.ndarray:
    """Inverse of :func:`encode_rice_fused`: the array of ``shape`` (3-D) and ``dtype``.

    Raises ``ValueError`` for a payload inconsistent with ``shape`` or corrupt.
    """
    n = int(np.prod(shape))
    s, group_start, group_words, words = rice_layout(payload, n)
    n_cols = shape[2]
    if n == 0:
        return np.empty(shape, dtype) if out is None else out.reshape(shape)
    # separate passes when groups are not whole rows, or when stacks are so short that each
    # would decode whole groups for a few of their rows (every stack decodes the groups it
    # overlaps)
    if s % n_cols or nz * shape[1] < 4 * (s // n_cols):
        res = decode_rice(payload, n, parallel=parallel)
        return predict_decode(res, shape, nz, intra, inter, lo, hi, orient=orient, dtype=dtype,
                              parallel=parallel, out=out)
    k = np.empty(shape, dtype) if out is None else out.reshape(shape)
    intra, inter = with_accumulator(intra, inter, lo, hi)
    bad = np.zeros(max(shape[0] // nz, 1), np.int64)
    group_rows = s // n_cols
    rows_per_item = max(group_rows, WORK_PIXELS // n_cols // group_rows * group_rows)
    last_size = n - (group_words.size - 1) * s
    (_fdec_p if parallel else _fdec_s)(
        words, group_start, group_words, s, last_size, nz, intra[0], intra[1], intra[2],
        inter[0], inter[1], inter[2], lo, hi, bool(orient), rows_per_item, k, bad,
    )
    if bad.any():
        raise ValueError(f"corrupt bigcomp payload: {int(bad.sum())} rice groups or values bad")
    return k
