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
*Oriented* residuals (``orient=True``, chunk format version 3): where the prediction has a
fraction (``shift > 0``), the residual's sign is flipped before the zig-zag when the unrounded
prediction lies above the rounded one (bit ``shift - 1`` of the sum, rounding term included, is
set), so the more likely of ``+1``/``-1`` gets the smaller code. Border pixels (fallback
predictions are whole) are never flipped.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ._numba import jit, pjit, readonly, specialise

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
def _window(taps, n_cols):
    """Rows the taps reach (``dymin``, ``dymax``) and the columns ``x0 <= x < x1`` where every
    tap falls inside a row of ``n_cols``."""
    dymin, dymax, dxmin, dxmax = _reach(taps)
    return dymin, dymax, -dxmin, n_cols - dxmax


@jit
def _rounding(coefs, shift):
    """``2**(shift-1)`` (0 for shift 0) in the accumulator's dtype."""
    return coefs.dtype.type(1 << (shift - 1) if shift > 0 else 0)


@jit
def _flip_mask(shift, orient):
    """``(left, on)``: ``((sum << left) >> 63) & on`` is -1 where the residual's sign flips
    (the bit ``shift - 1`` of the int64 sum, broadcast), else 0: branch-free."""
    on = orient and shift > 0
    return (64 - shift if on else 0), np.int64(-1 if on else 0)


@numba.njit(nogil=True, inline="always")
def _plain(z, a, left):
    """Residual of zig-zag code ``z`` (``a`` and ``left`` unused: :func:`_oriented`'s
    signature, so that either can serve the chain loops)."""
    return (z >> 1) ^ -(z & 1)


@numba.njit(nogil=True, inline="always")
def _oriented(z, a, left):
    """Residual of zig-zag code ``z``, negated where bit ``63 - left`` of the sum ``a`` is set
    (shift-and-mask, not a select: in this loop-carried chain LLVM turns a select into a
    mispredicted branch, 30 % slower)."""
    m = (np.int64(a) << left) >> 63
    return (((z >> 1) ^ -(z & 1)) ^ m) - m


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
def _taps_where(taps, off_row, on_row):
    """Indices of the taps off the current row (``dp``/``dy`` not both 0) and/or on it."""
    sel = np.empty(taps.shape[0], np.int64)
    m = 0
    for t in range(taps.shape[0]):
        current = taps[t, 0] == 0 and taps[t, 1] == 0
        if (on_row and current) or (off_row and not current):
            sel[m] = t
            m += 1
    return sel[:m]


@jit
def _vector_taps(taps, skip_current_row):
    """Indices of the taps summed row-wise (all, or those not on the current row)."""
    return _taps_where(taps, True, not skip_current_row)


@jit
def current_row_taps(taps):
    """Indices of the taps on the current row (they need this row's values: per pixel)."""
    return _taps_where(taps, False, True)


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
def encode_rows(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, orient, r0, r1,
                out):
    """Residuals of the global rows ``r0 <= r < r1`` (row ``r`` = plane ``r // rows``, row
    ``r % rows``) into ``out`` (flat, 0-based: pixel ``(r, x)`` at ``(r - r0) * cols + x``)."""
    _, n_rows, n_cols = k.shape
    acc = np.empty(n_cols, inter_c.dtype)
    sel_intra = _vector_taps(intra, False)
    sel_inter = _vector_taps(inter, False)
    # per predictor, once: rounding term, flip mask, the window where all taps fit
    rnd_a, rnd_b = _rounding(intra_c, intra_s), _rounding(inter_c, inter_s)
    left_a, on_a = _flip_mask(intra_s, orient)
    left_b, on_b = _flip_mask(inter_s, orient)
    win_a = _window(intra, n_cols)
    win_b = _window(inter, n_cols)
    for g in range(r0, r1):
        p = g // n_rows
        y = g - p * n_rows
        has_prev = (p % nz) != 0
        taps = inter if has_prev else intra
        coefs = inter_c if has_prev else intra_c
        shift = inter_s if has_prev else intra_s
        rnd = rnd_b if has_prev else rnd_a
        left = left_b if has_prev else left_a
        on = on_b if has_prev else on_a
        dymin, dymax, x0, x1 = win_b if has_prev else win_a
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
                a = accv[i]
                m = ((np.int64(a) << left) >> 63) & on  # -1: flip the sign
                r = ((np.int64(kv[i]) - min(max(a >> shift, lo), hi)) ^ m) - m
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


def _encode_kernel(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, orient, out):
    n_planes, n_rows, n_cols = k.shape
    plane = n_rows * n_cols
    for p in prange(n_planes):
        encode_rows(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, orient,
                    p * n_rows, (p + 1) * n_rows, out[p * plane : (p + 1) * plane])


_encode_par, _encode_ser = pjit(_encode_kernel)


@jit
def _decode_border(res, k, p, y, x_start, x_end, has_prev, lo, hi):
    """Decode pixels ``x_start <= x < x_end`` of a row with the fallback predictor (west, else
    north, else previous plane, else ``lo``), in order; returns the number out of range."""
    n_bad = 0
    for x in range(x_start, x_end):
        z = np.int64(res[x])
        v = _fallback(k, p, y, x, has_prev, lo) + ((z >> 1) ^ -(z & 1))
        n_bad += v < lo or v > hi
        k[p, y, x] = v
    return n_bad


@jit
def _decode_row(res, k, p, y, has_prev, taps, coefs, shift, sel, lo, hi, orient, acc):
    """Decode row ``y`` of plane ``p`` from its residuals ``res`` (0-based, one row); returns
    the number of values outside ``[lo, hi]``."""
    n_cols = k.shape[2]
    rnd = _rounding(coefs, shift)
    left, on = _flip_mask(shift, orient)
    dymin, dymax, x0, x1 = _window(taps, n_cols)
    c1, c2, c3, generic = _west_coefs(taps, coefs)
    inner = y + dymin >= 0 and y + dymax < k.shape[1] and x1 > x0
    # left border (the whole row where the taps do not fit), sequential fallback
    n_bad = _decode_border(res, k, p, y, 0, x0 if inner else n_cols, has_prev, lo, hi)
    if not inner:
        return n_bad
    # taps that do not read the current row: vectorisable (0-based views)
    _row_sum(acc[x0:x1], k, p, y, x0, taps, coefs, sel, rnd)
    # taps on the current row (west neighbours): sequential, values kept in registers
    cur = k[p, y]
    if generic:
        for x in range(x0, x1):
            a = acc[x]
            for t in range(taps.shape[0]):
                if taps[t, 0] == 0 and taps[t, 1] == 0:
                    a += coefs[t] * cur[x + taps[t, 2]]
            z = np.int64(res[x])
            m = ((np.int64(a) << left) >> 63) & on
            v = min(max(a >> shift, lo), hi) + ((((z >> 1) ^ -(z & 1)) ^ m) - m)
            n_bad += v < lo or v > hi
            cur[x] = v
    elif on:  # the chain compiled twice, so that plain residuals pay nothing for the flip
        n_bad += _west_chain_oriented(acc, res, cur, x0, x1, c1, c2, c3, shift, lo, hi, left)
    else:
        n_bad += _west_chain_plain(acc, res, cur, x0, x1, c1, c2, c3, shift, lo, hi, left)
    return n_bad + _decode_border(res, k, p, y, x1, n_cols, has_prev, lo, hi)


def _west_chain(acc, res, cur, x0, x1, c1, c2, c3, shift, lo, hi, left):
    """Decode ``x0 <= x < x1`` of row ``cur`` (west taps -1..-3 only, values in registers);
    ``_residual``: :func:`_plain` or :func:`_oriented` (one specialisation each, below).
    Returns the number out of range."""
    n_bad = 0
    w1 = np.int64(cur[x0 - 1]) if x0 >= 1 else np.int64(0)
    w2 = np.int64(cur[x0 - 2]) if x0 >= 2 else np.int64(0)
    w3 = np.int64(cur[x0 - 3]) if x0 >= 3 else np.int64(0)
    for x in range(x0, x1):
        a = acc[x] + c1 * w1 + c2 * w2 + c3 * w3
        v = min(max(a >> shift, lo), hi) + _residual(np.int64(res[x]), a, left)  # noqa: F821
        n_bad += v < lo or v > hi
        cur[x] = v
        w3 = w2
        w2 = w1
        w1 = v
    return n_bad


# a compiled function passed as an argument would make every caller uncacheable
_west_chain_plain = jit(specialise(_west_chain, "_west_chain_plain", _residual=_plain))
_west_chain_oriented = jit(specialise(_west_chain, "_west_chain_oriented", _residual=_oriented))


@jit
def _decode_row_pair(ra, rb, k, pa, ya, pb, yb, taps, coefs, shift, sel, lo, hi, orient, acca,
                     accb):
    """:func:`_decode_row` of two independent rows at once (rows of two planes, same inter
    taps, both away from the top/bottom border, west taps -1..-3 only): the two sequential
    west-neighbour chains alternate in one loop and overlap."""
    n_cols = k.shape[2]
    rnd = _rounding(coefs, shift)
    left, on = _flip_mask(shift, orient)
    _, _, x0, x1 = _window(taps, n_cols)
    c1, c2, c3, _ = _west_coefs(taps, coefs)
    n_bad = _decode_border(ra, k, pa, ya, 0, x0, True, lo, hi)
    n_bad += _decode_border(rb, k, pb, yb, 0, x0, True, lo, hi)
    _row_sum(acca[x0:x1], k, pa, ya, x0, taps, coefs, sel, rnd)
    _row_sum(accb[x0:x1], k, pb, yb, x0, taps, coefs, sel, rnd)
    cura = k[pa, ya]
    curb = k[pb, yb]
    if on:
        n_bad += _west_chain_pair_oriented(acca, accb, ra, rb, cura, curb, x0, x1, c1, c2, c3,
                                           shift, lo, hi, left)
    else:
        n_bad += _west_chain_pair_plain(acca, accb, ra, rb, cura, curb, x0, x1, c1, c2, c3,
                                        shift, lo, hi, left)
    n_bad += _decode_border(ra, k, pa, ya, x1, n_cols, True, lo, hi)
    return n_bad + _decode_border(rb, k, pb, yb, x1, n_cols, True, lo, hi)


def _west_chain_pair(acca, accb, ra, rb, cura, curb, x0, x1, c1, c2, c3, shift, lo, hi, left):
    """:func:`_west_chain` of two independent rows, their chains alternating in one loop."""
    n_bad = 0
    wa1 = np.int64(cura[x0 - 1]) if x0 >= 1 else np.int64(0)
    wa2 = np.int64(cura[x0 - 2]) if x0 >= 2 else np.int64(0)
    wa3 = np.int64(cura[x0 - 3]) if x0 >= 3 else np.int64(0)
    wb1 = np.int64(curb[x0 - 1]) if x0 >= 1 else np.int64(0)
    wb2 = np.int64(curb[x0 - 2]) if x0 >= 2 else np.int64(0)
    wb3 = np.int64(curb[x0 - 3]) if x0 >= 3 else np.int64(0)
    for x in range(x0, x1):
        a = acca[x] + c1 * wa1 + c2 * wa2 + c3 * wa3
        b = accb[x] + c1 * wb1 + c2 * wb2 + c3 * wb3
        va = min(max(a >> shift, lo), hi) + _residual(np.int64(ra[x]), a, left)  # noqa: F821
        vb = min(max(b >> shift, lo), hi) + _residual(np.int64(rb[x]), b, left)  # noqa: F821
        n_bad += (va < lo or va > hi) + (vb < lo or vb > hi)
        cura[x] = va
        curb[x] = vb
        wa3 = wa2
        wa2 = wa1
        wa1 = va
        wb3 = wb2
        wb2 = wb1
        wb1 = vb
    return n_bad


_west_chain_pair_plain = jit(specialise(_west_chain_pair, "_west_chain_pair_plain",
                                        _residual=_plain))
_west_chain_pair_oriented = jit(specialise(_west_chain_pair, "_west_chain_pair_oriented",
                                           _residual=_oriented))


@jit
def decode_rows(res, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, orient, r0, r1,
                k):
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
        row = (g - r0) * n_cols
        if p % nz:
            n_bad += _decode_row(res[row : row + n_cols], k, p, y, True, inter, inter_c, inter_s,
                                 sel_inter, lo, hi, orient, acc)
        else:
            n_bad += _decode_row(res[row : row + n_cols], k, p, y, False, intra, intra_c,
                                 intra_s, sel_intra, lo, hi, orient, acc)
    return n_bad


@jit
def decode_stack(res, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, orient, s, k):
    """Decode stack ``s`` (planes ``s*nz`` to ``s*nz + nz - 1``) from its residuals ``res``
    (flat, 0-based). The first plane row by row; then the others in pairs ``(p, p + 1)``: row
    ``y`` of ``p`` together with row ``y - lag`` of ``p + 1``, which by then has every row of
    ``p`` its taps read. Returns the number of values outside ``[lo, hi]``."""
    _, n_rows, n_cols = k.shape
    plane = n_rows * n_cols
    p0 = s * nz
    n_bad = decode_rows(res[:plane], nz, intra, intra_c, intra_s, inter, inter_c, inter_s,
                        lo, hi, orient, p0 * n_rows, (p0 + 1) * n_rows, k)
    dymin, dymax, x0, x1 = _window(inter, n_cols)
    lag = 1
    for t in range(inter.shape[0]):
        if inter[t, 0] != 0:
            lag = max(lag, inter[t, 1] + 1)
    _, _, _, generic = _west_coefs(inter, inter_c)
    sel = _vector_taps(inter, True)
    acca = np.empty(n_cols, inter_c.dtype)
    accb = np.empty(n_cols, inter_c.dtype)
    p = p0 + 1
    while p + 1 < p0 + nz and not generic and x1 > x0 and lag < n_rows:
        oa = (p - p0) * plane
        ob = oa + plane
        for step in range(n_rows + lag):
            ya = step
            yb = step - lag
            ra = res[oa + ya * n_cols : oa + ya * n_cols + n_cols]
            rb = res[ob + yb * n_cols : ob + yb * n_cols + n_cols]
            inner_a = ya < n_rows and ya + dymin >= 0 and ya + dymax < n_rows
            inner_b = yb >= 0 and yb + dymin >= 0 and yb + dymax < n_rows
            if inner_a and inner_b:
                n_bad += _decode_row_pair(ra, rb, k, p, ya, p + 1, yb, inter, inter_c, inter_s,
                                          sel, lo, hi, orient, acca, accb)
                continue
            if ya < n_rows:
                n_bad += _decode_row(ra, k, p, ya, True, inter, inter_c, inter_s, sel, lo, hi,
                                     orient, acca)
            if yb >= 0:
                n_bad += _decode_row(rb, k, p + 1, yb, True, inter, inter_c, inter_s, sel, lo,
                                     hi, orient, accb)
        p += 2
    n_bad += decode_rows(res[(p - p0) * plane :], nz, intra, intra_c, intra_s, inter, inter_c,
                         inter_s, lo, hi, orient, p * n_rows, (p0 + nz) * n_rows, k)
    return n_bad


def _decode_kernel(res, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, orient, k,
                   bad):
    n_planes, n_rows, n_cols = k.shape
    size = nz * n_rows * n_cols  # pixels per stack
    for s in prange(n_planes // nz):
        bad[s] = decode_stack(res[s * size : (s + 1) * size], nz, intra, intra_c, intra_s,
                              inter, inter_c, inter_s, lo, hi, orient, s, k)


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


def predict_encode(k, nz, intra, inter, lo, hi, *, orient=False, parallel=True, out=None):
    """Zig-zagged residuals (uint32, flat) of ``k`` (3-D, any integer dtype) under a predictor pair.

    ``intra``/``inter`` are ``(taps int32 (T, 3), coefs int64 (T,), shift)`` triples;
    ``orient``: oriented residuals (module docstring; chunk format version 3).
    """
    out = np.empty(k.size, np.uint32) if out is None else out
    intra, inter = with_accumulator(intra, inter, lo, hi)
    kernel = _encode_par if parallel else _encode_ser
    kernel(readonly(k), nz, intra[0], intra[1], intra[2], inter[0], inter[1], inter[2], lo, hi,
           bool(orient), out)
    return out


def predict_decode(
    res, shape, nz, intra, inter, lo, hi, *, orient=False, dtype=np.int32, parallel=True, out=None
):
    """Inverse of :func:`predict_encode`: array of ``shape`` (3-D) and ``dtype``.

    Raises ``ValueError`` when a decoded value falls outside ``[lo, hi]`` (corrupt residuals).
    """
    k = np.empty(shape, dtype) if out is None else out.reshape(shape)
    bad = np.zeros(max(shape[0] // nz, 1), np.int64)
    intra, inter = with_accumulator(intra, inter, lo, hi)
    kernel = _decode_par if parallel else _decode_ser
    kernel(res, nz, intra[0], intra[1], intra[2], inter[0], inter[1], inter[2], lo, hi,
           bool(orient), k, bad)
    if bad.any():
        raise ValueError(f"corrupt bigcomp payload: {int(bad.sum())} values out of range")
    return k
