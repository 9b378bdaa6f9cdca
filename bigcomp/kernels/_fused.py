"""Prediction fused with the ``fast`` coder: residuals never make a round trip through memory.

The unfused path writes every residual (4 bytes per pixel) to memory and reads it back (twice
when encoding: block widths, packing). Here the rows are cut into *groups* of about 32 Ki
pixels. Encoding: each group (starting on a 32-symbol block boundary) predicts its rows into a
small per-worker buffer and, while those residuals are in cache, computes its block widths and
packs them into its own region of a word buffer; a second pass concatenates the groups' words.
Decoding: each stack (in parallel) unpacks the blocks of one group of rows into a small buffer
and reconstructs those rows. The payload is byte-for-byte ``encode_fast(predict_encode(...))``
(format in :mod:`bigcomp.kernels._coders`).
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from ._coders import (
    _corrupt,
    _offsets,
    _offsets_range,
    _pack_range,
    _unpack_range,
    _widths_range,
    fast_layout,
)
from ._numba import jit, pjit, readonly
from ._predict import decode_rows, encode_rows, with_accumulator
from ._scratch import scratch

__all__ = ["decode_fast_fused", "encode_fast_fused"]

GROUP_PIXELS = 1 << 15


def _group_rows(n_cols: int) -> int:
    """Rows per group: a multiple of the rows after which a group starts on a block boundary."""
    step = 32 // math.gcd(n_cols, 32)
    rows = max(1, GROUP_PIXELS // max(n_cols, 1))
    return max(step, rows // step * step)


def _fused_kernel(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, orient,
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
            encode_rows(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, orient,
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


def encode_fast_fused(k, nz, intra, inter, lo, hi, *, orient=False, parallel=True) -> np.ndarray:
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
        readonly(k), nz, intra[0], intra[1], intra[2], inter[0], inter[1], inter[2], lo, hi, bool(orient),
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


@jit
def _unpack_blocks(widths, offs, words, b0, b1, buf):
    """Unpack whole blocks ``b0 <= b < b1`` into ``buf`` (block ``b`` at ``32 * (b - b0)``)."""
    for b in range(b0, b1):
        w = offs[b]
        nb = np.int64(widths[b])
        mask = (np.int64(1) << nb) - 1
        acc = np.int64(0)
        nacc = 0
        o = buf[32 * (b - b0) : 32 * (b - b0) + 32]
        for j in range(32):
            if nacc < nb:
                acc |= np.int64(words[w]) << nacc
                w += 1
                nacc += 32
            o[j] = np.uint32(acc & mask)
            acc >>= nb
            nacc -= nb


def _fused_decode_kernel(widths, offs, words, nz, intra, intra_c, intra_s, inter, inter_c,
                         inter_s, lo, hi, orient, rows_per_group, k, bad):
    n_planes, n_rows, n_cols = k.shape
    rows = nz * n_rows  # rows per stack
    for s in prange(n_planes // nz):
        buf = np.empty(rows_per_group * n_cols + 64, np.uint32)
        n_bad = 0
        for r0 in range(s * rows, (s + 1) * rows, rows_per_group):
            r1 = min((s + 1) * rows, r0 + rows_per_group)
            b0 = r0 * n_cols // 32
            b1 = (r1 * n_cols + 31) // 32
            _unpack_blocks(widths, offs, words, b0, b1, buf)
            skip = r0 * n_cols - 32 * b0
            n_bad += decode_rows(buf[skip : skip + (r1 - r0) * n_cols], nz, intra, intra_c,
                                 intra_s, inter, inter_c, inter_s, lo, hi, orient, r0, r1, k)
        bad[s] = n_bad


_fdec_p, _fdec_s = pjit(_fused_decode_kernel)


def decode_fast_fused(payload, shape, nz, intra, inter, lo, hi, *, dtype, orient=False,
                      parallel=True, out=None) -> np.ndarray:
    """Inverse of :func:`encode_fast_fused`: the array of ``shape`` (3-D) and ``dtype``.

    Raises ``ValueError`` for a payload inconsistent with ``shape`` or corrupt (values outside
    ``[lo, hi]``, nonzero padding).
    """
    n = int(np.prod(shape))
    widths, words = fast_layout(payload, n)
    k = np.empty(shape, dtype) if out is None else out.reshape(shape)
    if n == 0:
        return k
    offs = _offsets(widths)
    last = np.empty(n - 32 * (widths.size - 1), np.uint32)
    if _unpack_range(widths[-1:], offs[-1:], words, last):
        raise _corrupt("nonzero padding in the last block")
    intra, inter = with_accumulator(intra, inter, lo, hi)
    bad = np.zeros(max(shape[0] // nz, 1), np.int64)
    rows_per_group = max(1, GROUP_PIXELS // max(shape[2], 1))
    (_fdec_p if parallel else _fdec_s)(
        widths, offs, words, nz, intra[0], intra[1], intra[2], inter[0], inter[1], inter[2],
        lo, hi, bool(orient), rows_per_group, k, bad,
    )
    if bad.any():
        raise ValueError(f"corrupt bigcomp payload: {int(bad.sum())} values out of range")
    return k
