"""Decoding of the ``max`` coder's level model (format in :mod:`bigcomp.kernels._level`).

A pixel's table and bias come from its own prediction, which needs its west neighbour: the
prediction and the entropy decoding are one dependency chain per pixel (about 30 cycles). Rows
come in two streams (even, odd rows of a segment), so two adjacent rows are decoded together,
the lower one ``lag`` pixels behind: two chains interleave in one loop (:func:`_dec_pair`).
Every loop keeps a stream's state in four registers (rANS state, next word, extra-bit
position, west value) and checks the stream positions after each row: the word buffers are
copies padded by a row's worth of words, so a corrupt stream reads padding, never past the
buffer.

Threads. A prediction run is one chain of planes, but plane ``p + 1`` only reads the rows of
plane ``p`` at and a few below its own: where the encoder cut the segments inside planes
(:func:`~bigcomp.kernels._level.rows_per_segment`), :func:`_decode_wave` decodes successive
planes on several threads, each in blocks of rows that start once the plane before has
decoded the rows they read. Other payloads decode one run per thread.
"""

from __future__ import annotations

import threading

import numba
import numpy as np
from numba import prange

from . import _rans as R
from ._level import (
    _HEAD,
    MAX_LEVELS,
    MODE,
    WAVE_MIN_PLANE,
    _levels_lut,
    _rnd16,
    _scaled,
    segments,
)
from ._numba import jit, pjit, readonly, specialise
from ._predict import _fallback, _row_sum, _vector_taps, _west_coefs, _window, with_accumulator

__all__ = ["decode_level"]

# per token: the symbol's value without its extra bits, and how many extra bits follow
TOKEN_BASE = np.array([t if t < 16 else ((t & 1) | 2) << ((t >> 1) - 5) for t in range(R.NTOK)],
                      np.int64)
TOKEN_BITS = np.array([0 if t < 16 else (t >> 1) - 5 for t in range(R.NTOK)], np.int64)
# stream state (int64[5]): rANS state, next word, end word, next extra bit, end extra bit
XS, RP, REND, BP, BEND = range(5)
PAIR_MIN_COLS = 32  # rows narrower than this are decoded one at a time
LAG = 5  # columns row B of a pair runs behind row A
BLOCK_PIXELS = 1 << 15  # pixels a thread of the wavefront decodes per call (_decode_wave)


@numba.njit(nogil=True, inline="always")
def _dec_sym(tb, xs, rp, bp, lut, fs, rw, ew):
    """One symbol coded with table ``tb``: ``(symbol, state, rp, bp)``. No branch, no check
    (see the module docstring)."""
    slot = xs & (R.PSCALE - 1)
    t = np.int64(lut[np.uint64((tb << R.PBITS) | slot)])
    e = fs[np.uint64(tb * R.NTOK + t)]
    xs = (e & 0xFFFF) * (xs >> R.PBITS) + slot - (e >> 16)
    rr = np.int64(xs < R.RANS_L)
    xs = (xs << (16 * rr)) | np.int64(rw[np.uint64(rp)]) * rr
    rp += rr
    nb = TOKEN_BITS[np.uint64(t)]
    w = np.uint64(bp >> 5)
    bits = ((np.int64(ew[w]) | (np.int64(ew[w + np.uint64(1)]) << 32)) >> (bp & 31))
    z = TOKEN_BASE[np.uint64(t)] | (bits & ((np.int64(1) << nb) - 1))
    return z, xs, rp, bp + nb


FB_FIXED = -1  # fraction bits frozen in a specialised copy of the decoders (-1: the argument)


@numba.njit(nogil=True, inline="always")
def _model(a, lo, hi, tblut, fb):
    """Table, prediction and sign flip (-1/0) of a prediction ``a`` in 1/16 (its level in
    units of ``2**-fb``; a constant in the specialised decoders: a variable shift in this
    chain costs up to 10 % of the decoding speed)."""
    if FB_FIXED >= 0:
        fb = FB_FIXED
    sf = 4 - fb
    e = np.int64(tblut[np.uint64(min(max((a + ((1 << sf) >> 1)) >> sf, lo << fb), hi << fb)
                                 - (lo << fb))])
    b = a + (((e & 0xFF) ^ 0x80) - 0x80) + 8
    return e >> 8, min(max(b >> 4, lo), hi), -((b >> 3) & 1)


@jit
def _finish(k, p, y, x, a, lo, hi, tblut, fb, lut, fs, rw, ew, ss):
    """Decode the pixel whose prediction is ``a`` (1/16) from stream ``ss``; returns 1 when
    its value falls outside ``[lo, hi]``."""
    tb, pred, m = _model(a, lo, hi, tblut, fb)
    z, xs, rp, bp = _dec_sym(tb, ss[XS], ss[RP], ss[BP], lut, fs, rw, ew)
    ss[XS] = xs
    ss[RP] = rp
    ss[BP] = bp
    v = pred + ((((z >> 1) ^ -(z & 1)) ^ m) - m)
    k[p, y, x] = v
    return np.int64(v < lo or v > hi)


@numba.njit(nogil=True, inline="always")
def _edge(k, p, y, x, has_prev, lo, x0, x1, acc, cur, c1, c2, c3, down, lower, mc, up):
    """Prediction (1/16) of a pixel a row pair decodes alone, outside its interleaved
    columns: the fallback outside ``[x0, x1)``, else the row's sum, its west taps and, in the
    ``lower`` row, its taps into the row above (``mc``, dx = -3..3, over ``up``)."""
    if x < x0 or x >= x1:
        return _fallback(k, p, y, x, has_prev, lo) << 4
    a = np.int64(acc[x]) + _west(cur, x, c1, c2, c3)
    if lower:
        for d in range(7):
            if mc[d]:  # (only taps inside the row: x + d - 3 is then a column of it)
                a += mc[d] * np.int64(up[x + d - 3])
    return a >> down


@jit
def _overrun(ss):
    """2 where a stream has read past its rANS words, 3 past its extra bits, else 0."""
    return 2 if ss[RP] > ss[REND] else 3 if ss[BP] > ss[BEND] else 0


@jit
def _west(cur, x, c1, c2, c3):
    return (c1 * np.int64(cur[x - 1]) if c1 else 0) + (c2 * np.int64(cur[x - 2]) if c2 else 0) + (
        c3 * np.int64(cur[x - 3]) if c3 else 0)


@jit
def _info(taps, coefs, n_cols):
    """What the row decoders need of a predictor, computed once per run: the rows it reaches,
    the columns ``x0 <= x < x1`` where it fits, its west coefficients (-1, -2, -3) and whether
    it has other current-row taps."""
    dymin, dymax, x0, x1 = _window(taps, n_cols)
    c1, c2, c3, generic = _west_coefs(taps, coefs)
    return np.array([dymin, dymax, x0, x1, c1, c2, c3, generic], np.int64)


@jit
def _dec_row(k, p, y, has_prev, taps, coefs, shift, sel, info, lo, hi, tblut, fb, lut, fs, rw, ew,
             ss, acc):
    """Decode row ``y`` of plane ``p`` from stream ``ss``. Returns (stream error or 0,
    values out of range)."""
    n_cols = k.shape[2]
    down = max(shift - 4, 0)  # (shifts below 4 come scaled to 4: see _scaled)
    dymin, dymax, x0, x1 = info[0], info[1], info[2], info[3]
    c1, c2, c3, generic = info[4], info[5], info[6], info[7]
    if y + dymin >= 0 and y + dymax < k.shape[1] and x1 > x0:
        _row_sum(acc[x0:x1], k, p, y, x0, taps, coefs, sel, coefs.dtype.type(_rnd16(shift)))
    else:
        x0 = n_cols
        x1 = n_cols
    cur = k[p, y]
    xs, rp, bp = ss[XS], ss[RP], ss[BP]
    w1 = np.int64(0)  # west values (a tap dx = -j is only used where x0 >= j)
    w2 = np.int64(0)
    w3 = np.int64(0)
    bad = np.int64(0)
    for x in range(n_cols):
        if x0 <= x < x1:
            a = np.int64(acc[x]) + c1 * w1 + c2 * w2 + c3 * w3
            if generic:  # west taps beyond -3
                for t in range(taps.shape[0]):
                    if taps[t, 0] == 0 and taps[t, 1] == 0 and taps[t, 2] < -3:
                        a += coefs[t] * np.int64(cur[x + taps[t, 2]])
            a >>= down
        else:  # border pixels (the whole row where the taps do not fit): the fallback
            a = _fallback(k, p, y, x, has_prev, lo) << 4
        tb, pred, m = _model(a, lo, hi, tblut, fb)
        z, xs, rp, bp = _dec_sym(tb, xs, rp, bp, lut, fs, rw, ew)
        v = pred + ((((z >> 1) ^ -(z & 1)) ^ m) - m)
        bad |= (v - lo) | (hi - v)  # negative: out of range
        cur[x] = v
        w3 = w2
        w2 = w1
        w1 = v
    ss[XS], ss[RP], ss[BP] = xs, rp, bp
    n_bad = np.int64(bad < 0)
    return _overrun(ss), n_bad


@jit
def _pairable(n_rows, ya, info_a, yb, info_b):
    """Whether rows A (``ya``) and B (``yb``, the row after it) both have every tap inside the
    plane and west taps -1..-3 only (then :func:`_dec_pair` interleaves them)."""
    for y, info in ((ya, info_a), (yb, info_b)):
        if not (y + info[0] >= 0 and y + info[1] < n_rows and info[3] > info[2]) or info[7]:
            return False
    return True


@jit
def _dec_pair(k, pa, ya, ha, ta, ca, sa, sela, infa, pb, yb, hb, tb, cbb, sb, selb, infb, lo, hi,
              tblut, fb, lut, fs, rw, ew, ssa, ssb, accs, pre, mc):
    """Decode two adjacent rows, A (stream ``ssa``) and B below it (stream ``ssb``), both with
    every tap inside the plane and west taps -1..-3 only. B's taps into A's row (dx within
    -3..3: their coefficients summed per dx into ``mc``) are read in the loop, B ``lag``
    pixels behind A, so their two chains interleave (``accs``: a row of scratch for each).
    Returns (stream error or 0, values out of range)."""
    n_rows, n_cols = k.shape[1], k.shape[2]
    acca, accb = accs[0], accs[1]
    x0a, x1a, x0b, x1b = infa[2], infa[3], infb[2], infb[3]
    ga = pa * n_rows + ya
    # B lags A by LAG pixels: it reads A's row up to 3 columns ahead of itself, values A
    # wrote at least one iteration before (a shorter lag would chain B to A's last store)
    n_pre, lag = 0, LAG
    mc[:] = 0  # B's coefficients on A's row, dx = -3..3
    dense = True
    for t in range(tb.shape[0]):
        if tb[t, 0] == 0 and tb[t, 1] == 0:
            continue
        if (pb + tb[t, 0]) * n_rows + yb + tb[t, 1] == ga:
            dense = dense and -3 <= tb[t, 2] <= 3
            if dense:
                mc[tb[t, 2] + 3] += cbb[t]
        else:
            pre[n_pre] = t
            n_pre += 1
    # the interleaved columns: A at xa, B at xa - lag, every read inside the rows
    h0 = max(x0a, x0b + lag, 3 + lag)
    h1 = min(x1a, x1b + lag, n_cols - 3 + lag)
    if h1 <= h0 or not dense:
        ea, bad = _dec_row(k, pa, ya, ha, ta, ca, sa, sela, infa, lo, hi, tblut, fb, lut, fs, rw,
                           ew, ssa, acca)
        if ea:
            return ea, bad
        eb, bad_b = _dec_row(k, pb, yb, hb, tb, cbb, sb, selb, infb, lo, hi, tblut, fb, lut, fs, rw,
                             ew, ssb, accb)
        return eb, bad + bad_b
    _row_sum(acca[x0a:x1a], k, pa, ya, x0a, ta, ca, sela, ca.dtype.type(_rnd16(sa)))
    _row_sum(accb[x0b:x1b], k, pb, yb, x0b, tb, cbb, pre[:n_pre], cbb.dtype.type(_rnd16(sb)))
    downa = max(sa - 4, 0)
    downb = max(sb - 4, 0)
    c1a, c2a, c3a = infa[4], infa[5], infa[6]
    c1b, c2b, c3b = infb[4], infb[5], infb[6]
    cura = k[pa, ya]
    curb = k[pb, yb]
    n_bad = 0
    for x in range(h0):  # A's first pixels, alone
        a = _edge(k, pa, ya, x, ha, lo, x0a, x1a, acca, cura, c1a, c2a, c3a, downa, False, mc,
                  cura)
        n_bad += _finish(k, pa, ya, x, a, lo, hi, tblut, fb, lut, fs, rw, ew, ssa)
    for x in range(h0 - lag):  # B's first pixels
        b = _edge(k, pb, yb, x, hb, lo, x0b, x1b, accb, curb, c1b, c2b, c3b, downb, True, mc,
                  cura)
        n_bad += _finish(k, pb, yb, x, b, lo, hi, tblut, fb, lut, fs, rw, ew, ssb)
    # the two chains; 0-based views indexed by an unsigned counter (no negative indices)
    m0, m1, m2, m3, m4, m5, m6 = mc[0], mc[1], mc[2], mc[3], mc[4], mc[5], mc[6]
    xsa, rpa, bpa = ssa[XS], ssa[RP], ssa[BP]
    xsb, rpb, bpb = ssb[XS], ssb[RP], ssb[BP]
    av = acca[h0:h1]
    bv = accb[h0 - lag : h1 - lag]
    rowa = cura[h0 - 3 : h1]  # rowa[i + 3]: A's pixel h0 + i
    rowb = curb[h0 - lag - 3 : h1 - lag]  # rowb[i + 3]: B's pixel h0 - lag + i
    above = cura[h0 - lag - 3 : h1 - lag + 3]  # above[i + 3 + dx]: A's row over B's pixel
    wa = np.int64(cura[h0 - 1])
    wb = np.int64(curb[h0 - lag - 1])
    bad = np.int64(0)
    one, two, three = np.uint64(1), np.uint64(2), np.uint64(3)
    for x in range(h1 - h0):
        i = np.uint64(x)
        a = (np.int64(av[i]) + c1a * wa + c2a * np.int64(rowa[i + one])
             + c3a * np.int64(rowa[i])) >> downa
        tba, preda, ma = _model(a, lo, hi, tblut, fb)
        za, xsa, rpa, bpa = _dec_sym(tba, xsa, rpa, bpa, lut, fs, rw, ew)
        b = (np.int64(bv[i]) + c1b * wb + c2b * np.int64(rowb[i + one])
             + c3b * np.int64(rowb[i]) + m0 * np.int64(above[i]) + m1 * np.int64(above[i + one])
             + m2 * np.int64(above[i + two]) + m3 * np.int64(above[i + three])
             + m4 * np.int64(above[i + np.uint64(4)]) + m5 * np.int64(above[i + np.uint64(5)])
             + m6 * np.int64(above[i + np.uint64(6)])) >> downb
        tbb, predb, mb = _model(b, lo, hi, tblut, fb)
        zb, xsb, rpb, bpb = _dec_sym(tbb, xsb, rpb, bpb, lut, fs, rw, ew)
        wa = preda + ((((za >> 1) ^ -(za & 1)) ^ ma) - ma)
        wb = predb + ((((zb >> 1) ^ -(zb & 1)) ^ mb) - mb)
        bad |= (wa - lo) | (hi - wa) | (wb - lo) | (hi - wb)  # negative: out of range
        rowa[i + three] = wa
        rowb[i + three] = wb
    n_bad += bad < 0
    ssa[XS], ssa[RP], ssa[BP] = xsa, rpa, bpa
    ssb[XS], ssb[RP], ssb[BP] = xsb, rpb, bpb
    for x in range(h1, n_cols):  # A's last pixels
        a = _edge(k, pa, ya, x, ha, lo, x0a, x1a, acca, cura, c1a, c2a, c3a, downa, False, mc,
                  cura)
        n_bad += _finish(k, pa, ya, x, a, lo, hi, tblut, fb, lut, fs, rw, ew, ssa)
    for x in range(h1 - lag, n_cols):  # B's last pixels
        b = _edge(k, pb, yb, x, hb, lo, x0b, x1b, accb, curb, c1b, c2b, c3b, downb, True, mc,
                  cura)
        n_bad += _finish(k, pb, yb, x, b, lo, hi, tblut, fb, lut, fs, rw, ew, ssb)
    e = _overrun(ssa)
    return (e if e else _overrun(ssb)), n_bad


@jit
def _dec_block(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, tblut, fb, lut, fs,
               rw, rofs, rcnt, ew, eofs, ecnt, segs, i, ga, gb, ss):
    """Decode rows ``ga <= g < gb`` (global row numbers) of segment ``i``, its streams' states
    in ``ss`` (2 x 5): set up at the segment's first row, checked at its last. Returns an
    error code (0 fine) and the number of values out of range."""
    _, n_rows, n_cols = k.shape
    g0, g1 = segs[i, 0], segs[i, 1]
    sel_a = _vector_taps(intra, True)
    sel_b = _vector_taps(inter, True)
    inf_a = _info(intra, intra_c, n_cols)
    inf_b = _info(inter, inter_c, n_cols)
    pairs = n_cols >= PAIR_MIN_COLS  # narrower rows: the two chains would barely overlap
    accs = np.empty((2, n_cols), inter_c.dtype)
    acc = accs[0]
    pre = np.empty(max(intra.shape[0], inter.shape[0]), np.int64)
    mc = np.empty(7, np.int64)
    n_bad = 0
    if ga == g0:
        for par in range(2):
            st = 2 * i + par
            if rcnt[st] < 2:
                return 1, n_bad
            r0 = rofs[st]
            ss[par, XS] = np.int64(rw[r0]) | (np.int64(rw[r0 + 1]) << 16)
            ss[par, RP] = r0 + 2
            ss[par, REND] = r0 + rcnt[st]
            ss[par, BP] = 32 * eofs[st]
            ss[par, BEND] = 32 * (eofs[st] + ecnt[st])
    g = ga
    while g < gb:
        p = g // n_rows
        y = g - p * n_rows
        pb = (g + 1) // n_rows
        yb = g + 1 - pb * n_rows
        ia, ib = p % nz != 0, pb % nz != 0  # planes with a predecessor: inter taps
        if pairs and g + 1 < gb and _pairable(n_rows, y, inf_b if ia else inf_a, yb,
                                              inf_b if ib else inf_a):
            err, bad = _dec_pair(
                k, p, y, ia, inter if ia else intra, inter_c if ia else intra_c,
                inter_s if ia else intra_s, sel_b if ia else sel_a, inf_b if ia else inf_a,
                pb, yb, ib, inter if ib else intra, inter_c if ib else intra_c,
                inter_s if ib else intra_s, sel_b if ib else sel_a, inf_b if ib else inf_a,
                lo, hi, tblut, fb, lut, fs, rw, ew, ss[(g - g0) & 1], ss[(g + 1 - g0) & 1], accs,
                pre, mc)
            g += 2
        else:
            err, bad = _dec_row(k, p, y, ia, inter if ia else intra,
                                inter_c if ia else intra_c, inter_s if ia else intra_s,
                                sel_b if ia else sel_a, inf_b if ia else inf_a, lo, hi,
                                tblut, fb, lut, fs, rw, ew, ss[(g - g0) & 1], acc)
            g += 1
        n_bad += bad
        if err:
            return err, n_bad
    if gb == g1:
        for par in range(2):
            if ss[par, RP] != ss[par, REND]:
                return 5, n_bad
            # every extra word read, the bits after the last extra bit zero
            used = ss[par, BP] - (ss[par, BEND] - 32 * ecnt[2 * i + par])
            if (used + 31) // 32 != ecnt[2 * i + par]:
                return 5, n_bad
            w = ss[par, BP] >> 5
            if ss[par, BP] & 31 and np.int64(ew[w]) >> (ss[par, BP] & 31):
                return 5, n_bad
            if ss[par, XS] != R.RANS_L:
                return 6, n_bad
    return 0, n_bad


@jit
def _dec_run(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, tblut, fb, lut, fs,
             rw, rofs, rcnt, ew, eofs, ecnt, segs, seg0, seg1):
    """Decode one prediction run (its segments ``seg0 <= i < seg1``). Returns an error code
    (0 fine) and the number of values out of range."""
    ss = np.zeros((2, 5), np.int64)
    n_bad = 0
    for i in range(seg0, seg1):
        err, bad = _dec_block(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi,
                              tblut, fb, lut, fs, rw, rofs, rcnt, ew, eofs, ecnt, segs, i,
                              segs[i, 0], segs[i, 1], ss)
        n_bad += bad
        if err:
            return err, n_bad
    return 0, n_bad


def _dec_kernel(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, tblut, fb, lut, fs,
                rw, rofs, rcnt, ew, eofs, ecnt, segs, run_seg, err, bad):
    for s in prange(run_seg.size - 1):
        e, b = _dec_run(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, tblut,
                        fb, lut, fs, rw, rofs, rcnt, ew, eofs, ecnt, segs, run_seg[s],
                        run_seg[s + 1])
        err[s] = e
        bad[s] = b


_dec_par, _dec_ser = pjit(_dec_kernel)


def _with_fraction(fb: int) -> tuple:
    """``(_dec_block, _dec_par, _dec_ser)`` compiled with the fraction bits ``fb`` a constant
    (each function of the chain a copy whose globals name the specialised callees)."""
    name = f"_f{fb}"
    model = numba.njit(nogil=True, inline="always")(
        specialise(_model.py_func, "_model" + name, FB_FIXED=fb))
    finish = jit(specialise(_finish.py_func, "_finish" + name, _model=model))
    row = jit(specialise(_dec_row.py_func, "_dec_row" + name, _model=model))
    pair = jit(specialise(_dec_pair.py_func, "_dec_pair" + name, _model=model, _finish=finish,
                          _dec_row=row))
    block = jit(specialise(_dec_block.py_func, "_dec_block" + name, _dec_pair=pair,
                           _dec_row=row))
    run = jit(specialise(_dec_run.py_func, "_dec_run" + name, _dec_block=block))
    par, ser = pjit(specialise(_dec_kernel, "_dec_kernel" + name, _dec_run=run))
    return block, par, ser


# whole levels (lossless 16-bit chunks: where the speed targets are) get their own compilation
_DECODERS = {0: _with_fraction(0)}
_GENERIC = (_dec_block, _dec_par, _dec_ser)


def _decode_wave(args: tuple, workers: int, inter_taps: np.ndarray,
                 dec_block=_dec_block) -> tuple[np.ndarray, np.ndarray]:
    """Decode a stack whose segments lie inside planes on ``workers`` threads, a wavefront:
    worker ``w`` decodes planes ``w, w + workers, ...`` in blocks of rows, each block once the
    planes it predicts from have decoded the rows it reads. Returns the error codes and
    out-of-range counts of the blocks (as :func:`_dec_kernel`'s)."""
    k, nz, segs = args[0], args[1], args[-1]
    n_planes, n_rows, n_cols = k.shape
    back = inter_taps[inter_taps[:, 0] < 0]  # taps into the plane before (format: dp >= -1)
    below = max(int(back[:, 1].max()) if back.size else 0, 0)  # its rows below the pixel's
    # rows per call: ~BLOCK_PIXELS, at most an eighth of a plane (a plane waits for the
    # blocks of the one before that it reads: the smaller they are, the sooner it starts)
    block = max(2, min(-(-BLOCK_PIXELS // n_cols), n_rows // 8) + 1) // 2 * 2
    done = [0] * n_planes  # rows decoded of each plane
    failed = [False]
    cond = threading.Condition()
    errors, bads = [], []

    def ready(p: int, need: int) -> bool:
        if failed[0]:
            return True
        return p % nz == 0 or done[p - 1] >= need

    def work(w: int) -> None:
        ss = np.zeros((2, 5), np.int64)
        n_bad = 0
        for p in range(w, n_planes, workers):
            for i in range(int(np.searchsorted(segs[:, 0], p * n_rows)), segs.shape[0]):
                g0, g1 = int(segs[i, 0]), int(segs[i, 1])
                if g0 >= (p + 1) * n_rows:
                    break
                for ga in range(g0, g1, block):
                    gb = min(ga + block, g1)
                    need = min(n_rows, gb - p * n_rows + below)
                    with cond:
                        cond.wait_for(lambda: ready(p, need))  # noqa: B023
                        if failed[0]:
                            return
                    e, b = dec_block(*args, i, ga, gb, ss)
                    n_bad += b
                    with cond:
                        if e:
                            failed[0] = True
                            errors.append(e)
                        done[p] = gb - p * n_rows
                        cond.notify_all()
                    if e:
                        bads.append(n_bad)
                        return
        bads.append(n_bad)

    def guarded(w: int) -> None:
        try:
            work(w)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, after the others stop
            with cond:
                failed[0] = True
                raised.append(exc)
                cond.notify_all()

    raised: list[BaseException] = []
    threads = [threading.Thread(target=guarded, args=(w,), daemon=True) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if raised:
        raise raised[0]
    return np.array(errors or [0], np.int64), np.array(bads or [0], np.int64)


def _corrupt(what: str) -> ValueError:
    return ValueError(f"corrupt bigcomp payload: {what}")


_DEC_ERRORS = {
    1: "rANS stream shorter than its initial state",
    2: "rANS stream exhausted",
    3: "extra-bit stream exhausted",
    5: "stream not fully consumed",
    6: "final rANS state mismatch",
}


def decode_level(payload, shape, nz, intra, inter, lo, hi, *, dtype, fraction=False,
                 parallel=True, out=None, workers=None):
    """Values (array of ``shape``, 3-D, ``dtype``) of a level-model payload.

    ``intra``/``inter``: the chunk's ``(taps, coefs, shift)`` triples; ``fraction``: the chunk
    has levels at a fraction of a value (flag bit 3, version 7). With ``parallel``, a
    stack whose segments lie inside planes decodes as a wavefront on ``workers`` threads
    (default: numba's thread count), other payloads one prediction run per thread. Raises
    ``ValueError`` when the payload is corrupt or a value falls outside ``[lo, hi]``.
    """
    buf = payload if isinstance(payload, np.ndarray) else np.frombuffer(payload, np.uint8)
    n_planes, n_rows, n_cols = shape
    if hi - lo + 1 > 65536:
        raise _corrupt("level model for a range of more than 65536 values")
    if buf.size < _HEAD.itemsize:
        raise _corrupt("truncated level-model header")
    head = buf[: _HEAD.itemsize].view(_HEAD)[0]
    nlev, ntab, rps = int(head["nlevels"]), int(head["ntab"]), int(head["rows"])
    fb = int(head["frac"])
    if head["mode"] != MODE or not 1 <= nlev <= MAX_LEVELS or not (
            1 <= ntab <= nlev) or rps < 2 or rps % 2:
        raise _corrupt("bad level-model header")
    if (fb > 0) != bool(fraction) or fb > 4 or (hi << fb) > 65535:
        raise _corrupt(f"level fraction bits {fb} in a chunk whose flags say "
                       f"{'fractional' if fraction else 'whole'} levels of values <= {hi}")
    pos = _HEAD.itemsize
    if buf.size < pos + 2 * (nlev - 1) + 2 * nlev:
        raise _corrupt("truncated level-model header")
    thresholds = buf[pos : pos + 2 * (nlev - 1)].view("<u2").astype(np.int64)
    pos += 2 * (nlev - 1)
    bias = buf[pos : pos + nlev].view(np.int8).astype(np.int64)
    pos += nlev
    table = buf[pos : pos + nlev].astype(np.int64)
    pos += nlev
    if (np.diff(thresholds) <= 0).any() or (nlev > 1 and (thresholds[0] <= lo << fb
                                                         or thresholds[-1] > hi << fb)):
        raise _corrupt("bad level thresholds")
    if (table >= ntab).any():
        raise _corrupt("bad level table map")
    freqs, pos = R.freqs_from_bytes(buf, pos, ntab)
    pad = -pos % 4
    if buf[pos : pos + pad].any():
        raise _corrupt("nonzero padding")
    pos += pad
    segs = segments(n_planes, n_rows, nz, rps)
    n = n_planes * n_rows * n_cols
    rcnt, ecnt, pos, nr, ne = R.read_directory(buf, pos, 2 * segs.shape[0], n + 2, n, "streams")
    # copies padded by a row's worth of words: a row's decoding reads them unchecked
    pad = n_cols + 8
    rw = np.zeros(nr + pad, np.uint16)
    rw[:nr] = buf[pos : pos + 2 * nr].view("<u2")
    pos += 2 * nr + 2 * (nr % 2)
    ew = np.zeros(ne + pad, np.uint32)
    ew[:ne] = buf[pos : pos + 4 * ne].view("<u4")
    rofs = np.concatenate([[0], np.cumsum(rcnt)[:-1]]).astype(np.int64)
    eofs = np.concatenate([[0], np.cumsum(ecnt)[:-1]]).astype(np.int64)
    lut = np.empty(ntab * R.PSCALE, np.uint8)
    fs = np.empty(ntab * R.NTOK, np.int64)
    R.dec_tables(freqs, lut, fs)
    # each value's table and bias, straight from it: table << 8 | bias (two's complement)
    tblut = ((table << 8) | (bias & 0xFF)).astype(np.uint16)[
        _levels_lut(thresholds, lo << fb, hi << fb)]
    runs = n_planes // nz
    per_run = segs.shape[0] // runs
    run_seg = np.arange(runs + 1, dtype=np.int64) * per_run
    k = np.empty(shape, dtype) if out is None else out.reshape(shape)
    err = np.zeros(runs, np.int64)
    bad = np.zeros(runs, np.int64)
    intra, inter = with_accumulator(_scaled(intra), _scaled(inter), lo, hi)
    block, par, ser = _DECODERS.get(fb, _GENERIC)
    args = (k, nz, *intra, *inter, lo, hi, tblut, fb, lut, fs, readonly(rw), rofs, rcnt,
            readonly(ew), eofs, ecnt, segs)
    workers = min(numba.get_num_threads() if workers is None else workers,
                  n_planes) if parallel else 1
    # the wavefront where segments lie inside planes of some size (a crafted chunk of many
    # tiny planes would otherwise cost a Python-level wait per plane)
    if (workers > 1 and n_rows % rps == 0 and n_rows * n_cols >= WAVE_MIN_PLANE
            and not (runs > 1 and nz == 1)):
        err, bad = _decode_wave(args, workers, inter[0], block)
    else:
        (par if parallel else ser)(*args, run_seg, err, bad)
    if err.any():
        raise _corrupt(_DEC_ERRORS[int(err.max())])
    if bad.any():
        raise _corrupt(f"{int(bad.sum())} values out of range")
    return k
