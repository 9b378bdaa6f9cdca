"""numba kernels: integer linear prediction of quantised values (quantise-then-predict order).

Arrays are viewed as ``(planes, rows, cols)``. A predictor is a list of causal *taps*
``(dp, dy, dx)`` with integer coefficients and a right shift::

    pred = clip((sum_i c_i * k[p+dp_i, y+dy_i, x+dx_i] + 2**(shift-1)) >> shift, lo, hi)

``intra`` taps (dp == 0) serve planes without a predecessor, ``inter`` taps (may use dp == -1)
the others; plane ``p`` has a predecessor when ``p % nz != 0`` (``nz`` planes per stack).
Pixels where a tap would fall outside the plane use the fallback: west, else north, else the
previous plane, else ``lo``. Sums are exact integers, so every platform gives the same residuals:
they accumulate in int32 (twice the SIMD width) when ``sum|c_i| * max(|lo|, |hi|) + 2**shift``
cannot overflow it, else in int64 (:func:`accumulator_dtype`).
Residuals are zig-zag mapped to uint32: 0, -1, 1, -2, ... -> 0, 1, 2, 3, ...
"""

from __future__ import annotations

import numpy as np
from numba import prange

from ._numba import jit, pjit

__all__ = ["predict_decode", "predict_encode"]


@jit
def _reach(taps):
    dymin = 0
    dymax = 0
    dxmin = 0
    dxmax = 0
    for t in range(taps.shape[0]):
        dymin = min(dymin, taps[t, 1])
        dymax = max(dymax, taps[t, 1])
        dxmin = min(dxmin, taps[t, 2])
        dxmax = max(dxmax, taps[t, 2])
    return dymin, dymax, dxmin, dxmax


@jit
def _fallback(k, p, y, x, has_prev, lo):
    if x > 0:
        return np.int64(k[p, y, x - 1])
    if y > 0:
        return np.int64(k[p, y - 1, x])
    if has_prev:
        return np.int64(k[p - 1, y, x])
    return np.int64(lo)


@jit
def _west_coefs(taps, coefs):
    """Coefficients of the west taps dx = -1, -2, -3, and whether other west taps exist."""
    c1 = np.int64(0)
    c2 = np.int64(0)
    c3 = np.int64(0)
    generic = False
    for t in range(taps.shape[0]):
        if taps[t, 0] == 0 and taps[t, 1] == 0:
            if taps[t, 2] == -1:
                c1 += coefs[t]
            elif taps[t, 2] == -2:
                c2 += coefs[t]
            elif taps[t, 2] == -3:
                c3 += coefs[t]
            else:
                generic = True
    return c1, c2, c3, generic


@jit
def _vector_taps(taps, skip_current_row):
    """Indices of the taps summed row-wise (all, or those not on the current row)."""
    sel = np.empty(taps.shape[0], np.int64)
    m = 0
    for t in range(taps.shape[0]):
        if not (skip_current_row and taps[t, 0] == 0 and taps[t, 1] == 0):
            sel[m] = t
            m += 1
    return sel[:m]


@jit
def _row_sum(accv, k, p, y, x0, taps, coefs, sel, rnd):
    """``accv[i] = rnd + sum_t c_t * k[p + dp_t, y + dy_t, x0 + i + dx_t]`` over the taps
    ``sel``, four taps per pass (fewer loads and stores of ``accv``); vectorised."""
    n = accv.size
    for i in range(n):
        accv[i] = rnd
    j = 0
    while j + 4 <= sel.size:
        t0, t1, t2, t3 = sel[j], sel[j + 1], sel[j + 2], sel[j + 3]
        c0, c1, c2, c3 = coefs[t0], coefs[t1], coefs[t2], coefs[t3]
        a0 = x0 + taps[t0, 2]
        a1 = x0 + taps[t1, 2]
        a2 = x0 + taps[t2, 2]
        a3 = x0 + taps[t3, 2]
        s0 = k[p + taps[t0, 0], y + taps[t0, 1], a0 : a0 + n]
        s1 = k[p + taps[t1, 0], y + taps[t1, 1], a1 : a1 + n]
        s2 = k[p + taps[t2, 0], y + taps[t2, 1], a2 : a2 + n]
        s3 = k[p + taps[t3, 0], y + taps[t3, 1], a3 : a3 + n]
        for i in range(n):
            accv[i] += c0 * s0[i] + c1 * s1[i] + c2 * s2[i] + c3 * s3[i]
        j += 4
    for rest in range(j, sel.size):
        t = sel[rest]
        c = coefs[t]
        a = x0 + taps[t, 2]
        src = k[p + taps[t, 0], y + taps[t, 1], a : a + n]
        for i in range(n):
            accv[i] += c * src[i]


@jit
def encode_rows(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, r0, r1, out):
    """Residuals of the global rows ``r0 <= r < r1`` (row ``r`` = plane ``r // rows``, row
    ``r % rows``) into ``out`` (flat, 0-based: pixel ``(r, x)`` at ``(r - r0) * cols + x``)."""
    _, n_rows, n_cols = k.shape
    acc = np.empty(n_cols, inter_c.dtype)
    sel_intra = _vector_taps(intra, False)
    sel_inter = _vector_taps(inter, False)
    for g in range(r0, r1):
        p = g // n_rows
        y = g - p * n_rows
        has_prev = (p % nz) != 0
        taps = inter if has_prev else intra
        coefs = inter_c if has_prev else intra_c
        shift = inter_s if has_prev else intra_s
        rnd = coefs.dtype.type(1 << (shift - 1) if shift > 0 else 0)
        dymin, dymax, dxmin, dxmax = _reach(taps)
        x0 = -dxmin
        x1 = n_cols - dxmax
        row = (g - r0) * n_cols
        inner = y + dymin >= 0 and y + dymax < n_rows and x1 > x0
        if inner:
            # 0-based views: numba drops negative-index checks and vectorises
            n = x1 - x0
            accv = acc[x0:x1]
            _row_sum(accv, k, p, y, x0, taps, coefs, sel_inter if has_prev else sel_intra, rnd)
            kv = k[p, y, x0:x1]
            outv = out[row + x0 : row + x1]
            for i in range(n):
                pred = min(max(accv[i] >> shift, lo), hi)
                r = np.int64(kv[i]) - pred
                outv[i] = np.uint32((r << 1) ^ (r >> 63))
        # border pixels (all of them in rows the taps do not fit)
        xa = x0 if inner else n_cols
        xb = x1 if inner else n_cols
        for x in range(xa):
            r = np.int64(k[p, y, x]) - _fallback(k, p, y, x, has_prev, lo)
            out[row + x] = np.uint32((r << 1) ^ (r >> 63))
        for x in range(xb, n_cols):
            r = np.int64(k[p, y, x]) - _fallback(k, p, y, x, has_prev, lo)
            out[row + x] = np.uint32((r << 1) ^ (r >> 63))


def _encode_kernel(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, out):
    n_planes, n_rows, n_cols = k.shape
    plane = n_rows * n_cols
    for p in prange(n_planes):
        encode_rows(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi,
                    p * n_rows, (p + 1) * n_rows, out[p * plane : (p + 1) * plane])


_encode_par, _encode_ser = pjit(_encode_kernel)


@jit
def decode_rows(res, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, r0, r1, k):
    """Decode the global rows ``r0 <= r < r1`` of ``k`` (in order; rows before ``r0`` of the
    same stack already decoded) from ``res`` (flat, 0-based: pixel ``(r, x)`` at ``(r - r0) *
    cols + x``). Returns the number of values outside ``[lo, hi]``."""
    _, n_rows, n_cols = k.shape
    acc = np.empty(n_cols, inter_c.dtype)
    sel_intra = _vector_taps(intra, True)
    sel_inter = _vector_taps(inter, True)
    n_bad = 0
    for g in range(r0, r1):
        p = g // n_rows
        y = g - p * n_rows
        has_prev = (p % nz) != 0
        taps = inter if has_prev else intra
        coefs = inter_c if has_prev else intra_c
        shift = inter_s if has_prev else intra_s
        rnd = coefs.dtype.type(1 << (shift - 1) if shift > 0 else 0)
        dymin, dymax, dxmin, dxmax = _reach(taps)
        x0 = -dxmin
        x1 = n_cols - dxmax
        c1, c2, c3, generic = _west_coefs(taps, coefs)
        row = (g - r0) * n_cols
        inner = y + dymin >= 0 and y + dymax < n_rows and x1 > x0
        # left border, sequential fallback
        xa = x0 if inner else n_cols
        for x in range(min(xa, n_cols)):
            z = np.int64(res[row + x])
            v = _fallback(k, p, y, x, has_prev, lo) + ((z >> 1) ^ -(z & 1))
            n_bad += v < lo or v > hi
            k[p, y, x] = v
        if not inner:
            continue
        # taps that do not read the current row: vectorisable (0-based views)
        _row_sum(acc[x0:x1], k, p, y, x0, taps, coefs, sel_inter if has_prev else sel_intra,
                 rnd)
        # taps on the current row (west neighbours): sequential, values kept in registers
        cur = k[p, y]
        if generic:
            for x in range(x0, x1):
                a = acc[x]
                for t in range(taps.shape[0]):
                    if taps[t, 0] == 0 and taps[t, 1] == 0:
                        a += coefs[t] * cur[x + taps[t, 2]]
                z = np.int64(res[row + x])
                v = min(max(a >> shift, lo), hi) + ((z >> 1) ^ -(z & 1))
                n_bad += v < lo or v > hi
                cur[x] = v
        else:
            w1 = np.int64(cur[x0 - 1]) if x0 >= 1 else np.int64(0)
            w2 = np.int64(cur[x0 - 2]) if x0 >= 2 else np.int64(0)
            w3 = np.int64(cur[x0 - 3]) if x0 >= 3 else np.int64(0)
            for x in range(x0, x1):
                a = acc[x] + c1 * w1 + c2 * w2 + c3 * w3
                z = np.int64(res[row + x])
                v = min(max(a >> shift, lo), hi) + ((z >> 1) ^ -(z & 1))
                n_bad += v < lo or v > hi
                cur[x] = v
                w3 = w2
                w2 = w1
                w1 = v
        for x in range(x1, n_cols):
            z = np.int64(res[row + x])
            v = _fallback(k, p, y, x, has_prev, lo) + ((z >> 1) ^ -(z & 1))
            n_bad += v < lo or v > hi
            cur[x] = v
    return n_bad


def _decode_kernel(res, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, k, bad):
    n_planes, n_rows, n_cols = k.shape
    rows = nz * n_rows  # rows per stack
    for s in prange(n_planes // nz):
        bad[s] = decode_rows(res[s * rows * n_cols : (s + 1) * rows * n_cols], nz, intra, intra_c,
                             intra_s, inter, inter_c, inter_s, lo, hi, s * rows, (s + 1) * rows, k)


_decode_par, _decode_ser = pjit(_decode_kernel)


def accumulator_dtype(intra, inter, lo, hi) -> np.dtype:
    """int32 when no prediction sum of values in ``[lo, hi]`` can overflow it, else int64."""
    reach = max(abs(int(lo)), abs(int(hi)))
    worst = max(
        int(np.abs(c.astype(np.int64)).sum()) * reach + (1 << max(int(s), 0))
        for _, c, s in (intra, inter)
    )
    return np.dtype(np.int32) if worst < 2**31 else np.dtype(np.int64)


def with_accumulator(intra, inter, lo, hi):
    acc = accumulator_dtype(intra, inter, lo, hi)
    return (
        (intra[0], intra[1].astype(acc), intra[2]),
        (inter[0], inter[1].astype(acc), inter[2]),
    )


def predict_encode(k, nz, intra, inter, lo, hi, *, parallel=True, out=None):
    """Zig-zagged residuals (uint32, flat) of ``k`` (3-D, any integer dtype) under a predictor pair.

    ``intra``/``inter`` are ``(taps int32 (T, 3), coefs int64 (T,), shift)`` triples.
    """
    out = np.empty(k.size, np.uint32) if out is None else out
    intra, inter = with_accumulator(intra, inter, lo, hi)
    kernel = _encode_par if parallel else _encode_ser
    kernel(k, nz, intra[0], intra[1], intra[2], inter[0], inter[1], inter[2], lo, hi, out)
    return out


def predict_decode(
    res, shape, nz, intra, inter, lo, hi, *, dtype=np.int32, parallel=True, out=None
):
    """Inverse of :func:`predict_encode`: array of ``shape`` (3-D) and ``dtype``.

    Raises ``ValueError`` when a decoded value falls outside ``[lo, hi]`` (corrupt residuals).
    """
    k = np.empty(shape, dtype) if out is None else out.reshape(shape)
    bad = np.zeros(max(shape[0] // nz, 1), np.int64)
    intra, inter = with_accumulator(intra, inter, lo, hi)
    kernel = _decode_par if parallel else _decode_ser
    kernel(res, nz, intra[0], intra[1], intra[2], inter[0], inter[1], inter[2], lo, hi, k, bad)
    if bad.any():
        raise ValueError(f"corrupt bigcomp payload: {int(bad.sum())} values out of range")
    return k
