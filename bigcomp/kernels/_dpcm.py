"""numba kernels: closed-loop DPCM (predict-then-quantise order) on integer camera data.

Works in the stabilised domain in fixed point: ``Y[x] = round(forward(x) / q * 2**F)`` is an
int64 table over every integer value, so one quantisation step ``q`` is ``S = 2**F``. For each
pixel in raster order the prediction ``p`` is a linear function (taps as in ``_predict``) of the
*reconstructed* neighbours' ``Y``; the residual ``m = round((Y[x] - p) / S)`` is coded and the
decoder writes back the integer ``x'`` whose ``Y`` is nearest ``p + m·S``. The encoder tries
``m`` and ``m ± 1`` and keeps the first whose ``x'`` lies within ``S/2`` of ``Y[x]``; if none
does, it codes an escape (symbol 0) and stores ``x`` exactly: as the value itself (format
versions 1-3) or, with ``offsets`` (version 4), as ``x - x0`` where ``x0`` is the integer whose
``Y`` is nearest ``p`` (decoder and encoder both know it; escapes happen where counts are few
per step, so the offset is small). Symbols are ``zigzag(m) + 1``. Everything is integer
arithmetic, so all platforms reconstruct the same values.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._numba import jit, pjit
from ._predict import _row_sum, _vector_taps, _window, current_row_taps

__all__ = ["FRACTION_BITS", "dpcm_decode", "dpcm_encode"]

FRACTION_BITS = 16


def coarse_index(table: np.ndarray) -> tuple[np.ndarray, int]:
    """Bucket index of a monotonic table for :func:`_nearest` (at most ~2**18 buckets)."""
    span = int(table[-1] - table[0]) + 1
    shift = max(FRACTION_BITS - 2, int(np.ceil(np.log2(max(span, 2)))) - 18)
    edges = table[0] + (np.arange((span >> shift) + 2, dtype=np.int64) << shift)
    return np.searchsorted(table, edges).astype(np.int64), shift


@jit
def _nearest(target, table, coarse, cshift):
    """Index of the entry of the increasing ``table`` nearest ``target`` (the lower one on a
    tie): the bucket of :func:`coarse_index`, then a binary search within it."""
    n_table = table.size
    t0 = table[0]
    b = (target - t0) >> cshift
    if b < 0:
        return 0
    if b >= coarse.size - 1:
        return n_table - 1
    # a bucket past the last entry (the table span a multiple of the bucket size) starts at
    # n_table: clamp, so the search never reads past the table
    lo = min(coarse[b], n_table - 1)
    hi = min(coarse[b + 1], n_table - 1)
    while lo < hi:
        mid = (lo + hi) >> 1
        if table[mid] < target:
            lo = mid + 1
        else:
            hi = mid
    if table[lo] >= target and lo > 0 and target - table[lo - 1] <= table[lo] - target:
        lo -= 1
    return lo


def _make(encode):
    def kernel(a, sym, exc, n_exc, nz, table, coarse, cshift, intra, intra_c, intra_s, inter,
               inter_c, inter_s, offsets, yrec, out):
        n_planes, n_rows, n_cols = out.shape
        n_stacks = n_planes // nz
        half = np.int64(1) << (FRACTION_BITS - 1)
        max_code = np.int64(0xFFFFFFFF)  # zigzag(m) + 1 must fit a uint32 symbol
        step = np.int64(1) << FRACTION_BITS
        plane_size = n_rows * n_cols
        n_table = table.size
        t0 = table[0]
        for s in prange(n_stacks):
            e = s * nz * plane_size  # escapes of stack s start at its first pixel index (upper bound)
            n_e = 0
            acc_row = np.empty(n_cols, np.int64)
            for p in range(s * nz, (s + 1) * nz):
                has_prev = (p % nz) != 0
                taps = inter if has_prev else intra
                coefs = inter_c if has_prev else intra_c
                shift = inter_s if has_prev else intra_s
                rnd = np.int64(1) << (shift - 1) if shift > 0 else np.int64(0)
                dymin, dymax, x0, x1 = _window(taps, n_cols)
                off_row = _vector_taps(taps, True)  # summed for a whole row at once
                west = current_row_taps(taps)  # need this row's reconstruction: per pixel
                for y in range(n_rows):
                    row_inner = y + dymin >= 0 and y + dymax < n_rows
                    if row_inner and x1 > x0:
                        _row_sum(acc_row[x0:x1], yrec, p, y, x0, taps, coefs, off_row, rnd)
                    for x in range(n_cols):
                        i = p * plane_size + y * n_cols + x
                        # prediction from reconstructed neighbours (fallback at the borders)
                        if row_inner and x0 <= x < x1:
                            acc = acc_row[x]
                            for t in west:
                                acc += coefs[t] * yrec[p, y, x + taps[t, 2]]
                            pred = acc >> shift
                        elif x > 0:
                            pred = yrec[p, y, x - 1]
                        elif y > 0:
                            pred = yrec[p, y - 1, x]
                        elif has_prev:
                            pred = yrec[p - 1, y, x]
                        else:
                            pred = t0
                        if encode:
                            v = table[a[p, y, x]]
                            m0 = (v - pred + half) >> FRACTION_BITS
                            code = np.uint32(0)
                            xr = np.int64(a[p, y, x])
                            tries = 3
                        else:
                            code = sym[i]
                            tries = 0 if code == 0 else 1
                            if code == 0:
                                xr = np.int64(exc[e + n_e]) if e + n_e < exc.size else 0
                                if offsets:
                                    xr += _nearest(pred, table, coarse, cshift)
                                if xr < 0 or xr >= n_table:  # corrupt: counted, kept in range
                                    xr = 0
                                    n_e += n_table
                                n_e += 1
                            else:
                                z = np.int64(code) - 1
                                m0 = (z >> 1) ^ -(z & 1)
                        for j in range(tries):
                            m = m0 - 1 if j == 1 else (m0 + 1 if j == 2 else m0)  # m0, m0 - 1, m0 + 1
                            cand = _nearest(pred + m * step, table, coarse, cshift)
                            if not encode:
                                xr = cand
                            elif abs(table[cand] - v) <= half - 1 and (
                                    (m << 1) ^ (m >> 63)) < max_code:
                                # exact despite rounding, and its code fits uint32 (a fitted
                                # predictor can extrapolate far off the table at tiny q: escape)
                                code = np.uint32(((m << 1) ^ (m >> 63)) + 1)
                                xr = cand
                                break
                        if encode:
                            sym[i] = code
                            if code == 0:
                                exc[e + n_e] = xr - _nearest(pred, table, coarse, cshift) if (
                                    offsets) else xr
                                n_e += 1
                        out[p, y, x] = xr
                        yrec[p, y, x] = table[xr]
            n_exc[s] = n_e

    # its own name per variant: the on-disk cache files kernels by name (closing over a plain
    # bool keeps it cacheable: the cache key hashes the closure's values)
    kernel.__qualname__ = kernel.__name__ = "dpcm_encode_kernel" if encode else "dpcm_decode_kernel"
    return pjit(kernel)


_enc_par, _enc_ser = _make(True)
_dec_par, _dec_ser = _make(False)


def dpcm_encode(a, nz, table, intra, inter, *, offsets=False, parallel=True):
    """Closed-loop DPCM of integer array ``a`` (3-D, int32).

    Returns ``(symbols uint32 flat, escapes int64 (exact values, or with ``offsets`` their
    offsets from the value nearest the prediction; in stack order), reconstruction int32 like
    a)``.
    """
    sym = np.empty(a.size, np.uint32)
    exc = np.empty(a.size, np.int64)
    n_stacks = a.shape[0] // nz
    n_exc = np.zeros(n_stacks, np.int64)
    yrec = np.empty(a.shape, np.int64)
    out = np.empty(a.shape, np.int32)
    kernel = _enc_par if parallel else _enc_ser
    kernel(a, sym, exc, n_exc, nz, table, *coarse_index(table), *intra, *inter, bool(offsets),
           yrec, out)
    stack = a.size // max(n_stacks, 1)
    escapes = np.concatenate([exc[s * stack : s * stack + n_exc[s]] for s in range(n_stacks)])
    return sym, escapes, out


def dpcm_decode(sym, escapes, shape, nz, table, intra, inter, *, offsets=False, parallel=True):
    """Inverse of :func:`dpcm_encode`; raises ``ValueError`` if escapes are missing or lead
    outside the table."""
    n_stacks = shape[0] // nz
    stack = int(np.prod(shape)) // max(n_stacks, 1)
    # place the escapes of each stack at the start of its own slot (the encoder's layout)
    counts = np.zeros(n_stacks, np.int64)
    if n_stacks:
        counts = (sym.reshape(n_stacks, stack) == 0).sum(axis=1)
    if counts.sum() != escapes.size:
        raise ValueError(
            f"corrupt bigcomp payload: {counts.sum()} escapes coded, {escapes.size} stored"
        )
    exc = np.zeros(sym.size, np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]) if n_stacks else counts
    for s in range(n_stacks):
        exc[s * stack : s * stack + counts[s]] = escapes[starts[s] : starts[s] + counts[s]]
    n_exc = np.zeros(n_stacks, np.int64)
    yrec = np.empty(shape, np.int64)
    out = np.empty(shape, np.int32)
    kernel = _dec_par if parallel else _dec_ser
    kernel(out, sym, exc, n_exc, nz, table, *coarse_index(table), *intra, *inter, bool(offsets),
           yrec, out)
    if (n_exc != counts).any():
        raise ValueError("corrupt bigcomp payload: an escape lies outside the value range")
    return out
