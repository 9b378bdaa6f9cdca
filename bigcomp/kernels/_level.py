"""The ``max`` coder's *level model* (chunk flag bit 2): prediction fused with rANS coding, the
context of each residual being the level of its own prediction.

Why: a camera pixel's noise grows with its signal (σ² = g (x − o) + g² σ_r²), so the spread of
a prediction residual is known from the predicted value before the pixel is coded; neighbour
residuals (today's contexts) only hint at it. Measured on the benchmark data (see
``benchmarks/research/lossless_*.py`` and docs/benchmarks.md) the level context and a
per-level bias correction take 2-9 % off lossless chunks and 1-5 % off single planes at q = 1.

Model (all integers, every platform the same)
---------------------------------------------
Values ``k`` (integers in ``[lo, hi]``, at most 65536 of them), the chunk's predictor pair (as
:mod:`bigcomp.kernels._predict`: taps, coefficients, ``shift``). For each pixel in row-major
order, the prediction in 1/16 units::

    A = (S + 2**(shift-5)) >> (shift-4)   if shift > 4       S = sum of c_i * k[tap_i]
    A = S << (4 - shift)                  if shift <= 4
    A = F << 4                            where a tap falls outside the plane: F = the
                                          fallback (west, else north, else previous plane,
                                          else lo)

its *level* ``L = #{j : t_j <= V}`` (``t`` strictly increasing, at most 31 thresholds), ``V``
the prediction in units of ``2**-f`` (``f`` the payload's fraction bits, 0 to 4: 0 the rounded
value, format version 6; more from version 7, chunk flag bit 3)::

    V = clip((A + h) >> (4 - f), lo << f, hi << f)        h = 2**(3 - f), 0 where f = 4

then with the level's bias ``b[L]`` (int8, 1/16 units)::

    B = A + b[L] + 8;   p = clip(B >> 4, lo, hi);   flip = (B >> 3) & 1
    r = k - p, negated where flip;   symbol = zigzag(r) = (r << 1) ^ (r >> 63)

Symbols are tokenised as the ``max`` coder's (HybridUint 4-1-0: tokens < 72 plus raw extra
bits, :mod:`bigcomp.kernels._coders`); the token of a pixel of level ``L`` is coded with
frequency table ``table[L]``.

Streams. The chunk's rows (plane by plane) form prediction runs of ``nz`` planes; each run is
cut into *segments* of ``rows_per_segment`` rows (even; the last segment of a run may be
shorter; a segment never crosses runs). Each segment has two *streams*: stream 0 holds its rows
0, 2, 4, ..., stream 1 its rows 1, 3, ... (row-major within the stream), so that a decoder may
reconstruct two adjacent rows at once, the lower a few pixels behind. A stream is rANS as the
``max`` coder's (32-bit state, L = 2**16, 16-bit words, 12-bit frequencies) with one state: the
encoder runs backwards from L and finally emits the state, high word then low word; words are
stored in the reverse order of emission (the decoder reads forwards: the state's low word,
high word, then one word after each symbol whose state fell below L; at the end the state is
L again and every word is read). Extra bits: per stream, in symbol order, LSB-first into u32
words (the last one zero-filled).

Payload::

    u8  mode              2 (level model)
    u8  nlevels           1..32
    u8  ntab              1..nlevels
    u8  frac              f: 0 (version 6), 1..4 (version 7: chunk flag bit 3)
    u32 rows_per_segment  even, >= 2
    u16 threshold[nlevels - 1]   strictly increasing, in (lo << f, hi << f]
    i8  bias[nlevels]
    u8  table[nlevels]    < ntab
    per table: u8 token_mask[9], u16 freq[m - 1] (as the ``max`` coder's tables)
    u8  zero[pad]         to a multiple of 4 bytes
    u32 rans_words[2 S]   per stream (segment s: streams 2s, 2s + 1), >= 2
    u32 extra_words[2 S]
    u16 rans[...]         the streams' words, concatenated; one zero u16 if the count is odd
    u32 extra[...]

``S`` = the segments of all runs. Encoder choices (not needed to decode): segments inside
planes where the heights allow (:func:`rows_per_segment`: decoders may then run planes on
several threads), thresholds at
quantiles of the predicted values of a sample of rows, biases = their mean residual, levels
sharing a table where that shrinks the estimated size.
"""

from __future__ import annotations

import numpy as np
from numba import prange
from numba.cpython.unsafe.numbers import leading_zeros

from . import _rans as R
from ._numba import jit, pjit, readonly
from ._predict import _fallback, _row_sum, _vector_taps, _window, with_accumulator
from ._scratch import scratch

__all__ = ["encode_level", "level_labels", "level_model_applies", "level_payload", "level_tables",
           "rows_per_segment", "sample_rows", "segments"]

MODE = 2
MAX_LEVELS = 32
STATE_WORDS = 2  # u16 words of a stream's final rANS state
MIN_PIXELS = 1 << 12  # smaller chunks keep the neighbour contexts (thresholds/tables cost)
MIN_COLS = 32  # (and chunks of narrower rows: see level_model_applies)
SAMPLE_PIXELS = 1 << 16  # pixels (1/4 of small chunks, 1/32 of large ones) choosing levels
SEG_TARGET = 1 << 17  # symbols per segment the encoder aims for
WAVE_MIN_PLANE = 1 << 15  # pixels a plane needs for segments cut inside planes (wavefront)
_HEAD = np.dtype([("mode", "u1"), ("nlevels", "u1"), ("ntab", "u1"), ("frac", "u1"),
                  ("rows", "<u4")])


def level_model_applies(shape3: tuple[int, int, int], lo: int, hi: int, q: float) -> bool:
    """Whether the encoder gives a ``max`` chunk of ``shape3`` (planes, rows, columns) and
    values in ``[lo, hi]`` the level model: integer values 0..65535 (its table spans them), at
    least ``MIN_PIXELS``, rows of at least ``MIN_COLS`` (narrower rows decode one at a time,
    slower than the neighbour-context coder's two passes: 11 x 13 planes 25 % slower), and
    lossless or a single plane. Whole stacks at q > 0 keep the neighbour contexts: the level
    model takes 1-8 % off them too, but encodes a third slower (docs/benchmarks.md), and their
    ratio already leads every peer."""
    n = shape3[0] * shape3[1] * shape3[2]
    return (0 <= lo and hi <= 65535 and n >= MIN_PIXELS and shape3[2] >= MIN_COLS
            and (q == 0 or shape3[0] == 1))


# ------------------------------------------------------------------------ prediction
@jit
def _rnd16(shift):
    """Rounding term so that ``(sum + rnd) >> (shift - 4)`` rounds to 1/16."""
    return np.int64(1) << (shift - 5) if shift > 4 else np.int64(0)


@jit
def _model_row(k, p, y, has_prev, taps, coefs, shift, sel, lo, hi, fb, lbl, acc, jbuf, ebuf, sym,
               ctx, stats):
    """Encoder: symbols and levels of one row (``sym``/``ctx``: the row's outputs; ``lbl``:
    each value's ``level << 8 | bias`` (bias in two's complement); ``jbuf``/``ebuf``: row
    scratch), or with ``stats`` the level-free quantities ``V`` (the prediction in units of
    ``2**-fb``, in ``sym``) and ``16 k - A`` (in ``ctx``, int64) that choose thresholds and
    biases. Shifts below 4 come scaled to 4 (:func:`_scaled`)."""
    n_cols = k.shape[2]
    down = max(shift - 4, 0)
    sf = 4 - fb
    h = (1 << sf) >> 1
    lof = lo << fb
    hif = hi << fb
    dymin, dymax, x0, x1 = _window(taps, n_cols)
    if not (y + dymin >= 0 and y + dymax < k.shape[1] and x1 > x0):
        x0 = n_cols
        x1 = n_cols
    else:  # inner pixels (0-based views)
        n = x1 - x0
        accv = acc[x0:x1]
        _row_sum(accv, k, p, y, x0, taps, coefs, sel, coefs.dtype.type(_rnd16(shift)))
        kv = k[p, y, x0:x1]
        sv = sym[x0:x1]
        cv = ctx[x0:x1]
        if stats:
            for i in range(n):
                a = np.int64(accv[i]) >> down
                sv[i] = min(max((a + h) >> sf, lof), hif)
                cv[i] = 16 * np.int64(kv[i]) - a
        else:  # three loops: the arithmetic vectorises, only the look-ups are scalar
            jv = jbuf[:n]
            ev = ebuf[:n]
            for i in range(n):
                jv[i] = min(max(((np.int64(accv[i]) >> down) + h) >> sf, lof), hif) - lof
            for i in range(n):
                ev[i] = lbl[jv[i]]
            for i in range(n):
                a = np.int64(accv[i]) >> down
                e = np.int64(ev[i])
                b = a + (((e & 0xFF) ^ 0x80) - 0x80) + 8
                m = -((b >> 3) & 1)
                r = ((np.int64(kv[i]) - min(max(b >> 4, lo), hi)) ^ m) - m
                sv[i] = (r << 1) ^ (r >> 63)
                cv[i] = e >> 8
    # border pixels (all of them in rows the taps do not fit): the fallback, whole values
    for x in range(x0):
        _model_border(k, p, y, x, has_prev, lo, hi, fb, lbl, sym, ctx, stats)
    for x in range(x1, n_cols):
        _model_border(k, p, y, x, has_prev, lo, hi, fb, lbl, sym, ctx, stats)


@jit
def _model_border(k, p, y, x, has_prev, lo, hi, fb, lbl, sym, ctx, stats):
    a = _fallback(k, p, y, x, has_prev, lo) << 4
    v = np.int64(k[p, y, x])
    sf = 4 - fb
    p0 = min(max((a + ((1 << sf) >> 1)) >> sf, lo << fb), hi << fb)
    if stats:
        sym[x] = p0
        ctx[x] = 16 * v - a
        return
    e = np.int64(lbl[p0 - (lo << fb)])
    b = a + (((e & 0xFF) ^ 0x80) - 0x80) + 8
    m = -((b >> 3) & 1)
    r = ((v - min(max(b >> 4, lo), hi)) ^ m) - m
    sym[x] = (r << 1) ^ (r >> 63)
    ctx[x] = e >> 8


def _model_kernel(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, fb, rows, p0,
                  d):
    """The level-free statistics (``_model_row`` with ``stats``) of the global rows ``rows``
    (output row ``i`` for ``rows[i]``)."""
    _, n_rows, n_cols = k.shape
    sel_a = _vector_taps(intra, False)
    sel_b = _vector_taps(inter, False)
    n_work = min(rows.size, 64)
    none = np.zeros(1, np.uint16)
    for w in prange(n_work):
        acc = np.empty(n_cols, inter_c.dtype)
        jbuf = np.empty(0, np.int64)
        for i in range(w * rows.size // n_work, (w + 1) * rows.size // n_work):
            g = rows[i]
            p = g // n_rows
            y = g - p * n_rows
            out = slice(i * n_cols, (i + 1) * n_cols)
            if p % nz:
                _model_row(k, p, y, True, inter, inter_c, inter_s, sel_b, lo, hi, fb, none, acc,
                           jbuf, none, p0[out], d[out], True)
            else:
                _model_row(k, p, y, False, intra, intra_c, intra_s, sel_a, lo, hi, fb, none, acc,
                           jbuf, none, p0[out], d[out], True)


_model_par, _model_ser = pjit(_model_kernel)


# ------------------------------------------------------------------------- streams
def segments(n_planes: int, n_rows: int, nz: int, rows_per_segment: int) -> np.ndarray:
    """``(first row, end row)`` of every segment, runs in order (global row numbers)."""
    run_rows = nz * n_rows
    out = []
    for r0 in range(0, n_planes * n_rows, run_rows):
        for g0 in range(r0, r0 + run_rows, rows_per_segment):
            out.append((g0, min(g0 + rows_per_segment, r0 + run_rows)))
    return np.array(out, np.int64).reshape(-1, 2)


@jit
def _stream_rows(g0, g1, parity):
    """Rows of the stream ``parity`` of segment ``[g0, g1)``: first row and count."""
    return g0 + parity, (g1 - g0 - parity + 1) // 2


@jit
def _enc_stream1(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, sel_a, sel_b, lo, hi, fb,
                 lbl, g0, cnt, keys, hist, ext):
    """One stream (rows ``g0, g0 + 2, ...``, ``cnt`` of them): each row's symbols and levels
    (into small buffers that stay in cache), then its tokens, keys (``level * NTOK +
    token``, stream order), histogram and extra bits. Returns the number of extra-bit words."""
    _, n_rows, n_cols = k.shape
    acc = np.empty(n_cols, inter_c.dtype)
    sym = np.empty(n_cols, np.uint32)
    ctx = np.empty(n_cols, np.uint8)
    jbuf = np.empty(n_cols, np.int64)
    ebuf = np.empty(n_cols, np.uint16)
    hist2 = np.zeros((2, hist.size), np.int32)  # (a stream has < 2**31 symbols)
    w = 0
    eacc = np.int64(0)
    nacc = 0
    for r in range(cnt):
        g = g0 + 2 * r
        p = g // n_rows
        y = g - p * n_rows
        if p % nz:
            _model_row(k, p, y, True, inter, inter_c, inter_s, sel_b, lo, hi, fb, lbl, acc, jbuf,
                       ebuf, sym, ctx, False)
        else:
            _model_row(k, p, y, False, intra, intra_c, intra_s, sel_a, lo, hi, fb, lbl, acc, jbuf,
                       ebuf, sym, ctx, False)
        krow = keys[r * n_cols : (r + 1) * n_cols]
        for c in range(n_cols):  # two histograms: repeated keys do not queue on one counter
            v = np.int64(sym[c])
            nb = max(62 - leading_zeros(np.uint64(v)), 0)  # bit length - 2
            t = v if v < 16 else 2 * nb + 10 + ((v >> nb) & 1)
            key = np.int64(ctx[c]) * R.NTOK + t
            krow[c] = key
            hist2[c & 1, key] += 1
            if v >= 16:
                eacc |= (v & ((np.int64(1) << nb) - 1)) << nacc
                nacc += nb
                if nacc >= 32:
                    ext[w] = np.uint32(eacc & 0xFFFFFFFF)
                    w += 1
                    eacc >>= 32
                    nacc -= 32
    for j in range(hist.size):
        hist[j] += hist2[0, j] + hist2[1, j]
    if nacc > 0:
        ext[w] = np.uint32(eacc)
        w += 1
    return w


def _enc_pass1(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s, lo, hi, fb, lbl, segs,
               keys, hist, ext, ext_cnt):
    n_cols = k.shape[2]
    sel_a = _vector_taps(intra, False)
    sel_b = _vector_taps(inter, False)
    for s in prange(2 * segs.shape[0]):
        g0, g1 = segs[s // 2, 0], segs[s // 2, 1]
        first, cnt = _stream_rows(g0, g1, s % 2)
        a = g0 * n_cols + (s % 2) * ((g1 - g0 + 1) // 2) * n_cols  # stream-ordered layout
        m = cnt * n_cols
        ext_cnt[s] = _enc_stream1(k, nz, intra, intra_c, intra_s, inter, inter_c, inter_s,
                                  sel_a, sel_b, lo, hi, fb, lbl, first, cnt, keys[a : a + m],
                                  hist[s], ext[a + s : a + m + s + 1])


_enc_pass1_par, _enc_pass1_ser = pjit(_enc_pass1)


@jit
def _enc_streams2(k0, k1, xmax, rcp, shift, bias, cmpl, r0, r1):
    """Backward rANS passes over the two streams of a segment (one state each), interleaved
    for two independent chains; each fills its buffer from the end. Returns both starts."""
    p0, p1 = r0.size, r1.size
    x0 = np.uint64(R.RANS_L)
    x1 = np.uint64(R.RANS_L)
    m0, m1 = k0.size, k1.size
    for j in range(m0):
        k = k0[m0 - 1 - j]
        r = np.uint64(x0 >= xmax[k])
        r0[p0 - 1] = np.uint16(x0 & np.uint64(0xFFFF))  # kept only where renormalised
        p0 -= np.int64(r)
        x0 >>= r << np.uint64(4)
        q = (x0 + ((x0 * rcp[k]) >> np.uint64(32))) >> shift[k]
        x0 = x0 + bias[k] + q * cmpl[k]
        if j < m1:
            k = k1[m1 - 1 - j]
            r = np.uint64(x1 >= xmax[k])
            r1[p1 - 1] = np.uint16(x1 & np.uint64(0xFFFF))
            p1 -= np.int64(r)
            x1 >>= r << np.uint64(4)
            q = (x1 + ((x1 * rcp[k]) >> np.uint64(32))) >> shift[k]
            x1 = x1 + bias[k] + q * cmpl[k]
    r0[p0 - 1] = np.uint16(x0 >> np.uint64(16))  # the final states: high word, low word
    r0[p0 - 2] = np.uint16(x0 & np.uint64(0xFFFF))
    r1[p1 - 1] = np.uint16(x1 >> np.uint64(16))
    r1[p1 - 2] = np.uint16(x1 & np.uint64(0xFFFF))
    return p0 - 2, p1 - 2


def _enc_pass2(keys, segs, n_cols, xmax, rcp, shift, bias, cmpl, rbuf, rstart, rcnt):
    for i in prange(segs.shape[0]):
        g0, g1 = segs[i, 0], segs[i, 1]
        m0 = ((g1 - g0 + 1) // 2) * n_cols  # stream 0 has the larger half
        m1 = ((g1 - g0) // 2) * n_cols
        a = g0 * n_cols
        # stream s owns rbuf[a + 2 s : ...]: room for its symbols' words and its state
        b0 = a + STATE_WORDS * (2 * i)
        b1 = b0 + m0 + STATE_WORDS
        s0, s1 = _enc_streams2(keys[a : a + m0], keys[a + m0 : a + m0 + m1], xmax, rcp, shift,
                               bias, cmpl, rbuf[b0 : b0 + m0 + STATE_WORDS],
                               rbuf[b1 : b1 + m1 + STATE_WORDS])
        rstart[2 * i] = b0 + s0
        rcnt[2 * i] = m0 + STATE_WORDS - s0
        rstart[2 * i + 1] = b1 + s1
        rcnt[2 * i + 1] = m1 + STATE_WORDS - s1


_enc_pass2_par, _enc_pass2_ser = pjit(_enc_pass2)


# ------------------------------------------------------------------------- decoding
# ------------------------------------------------------------------------ wrappers
def _scaled(taps):
    """A predictor ``(taps, coefs, shift)`` with a shift below 4 as the same sums in 1/16
    (coefficients times ``2**(4 - shift)``, shift 4): the kernels then only shift down."""
    t, c, shift = taps
    if shift >= 4:
        return taps
    return t, c << (4 - shift), 4


def _levels_lut(thresholds: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Level of every value ``lo..hi`` (uint8): the thresholds at or below it."""
    edges = np.concatenate([[lo], thresholds, [hi + 1]]).astype(np.int64)
    return np.repeat(np.arange(edges.size - 1, dtype=np.uint8), np.diff(edges))


def _choose_levels(k, nz, intra, inter, lo, hi, fb, parallel, max_levels):
    """Thresholds (increasing, in ``(lo << fb, hi << fb]``) at quantiles of the predicted
    values (units of ``2**-fb``) of a sample of rows, and each level's bias (its mean
    ``16 k - A``, int8)."""
    lo, hi = lo << fb, hi << fb  # (the kernel takes whole values and fb)
    n_planes, n_rows, n_cols = k.shape
    rows = sample_rows(n_planes * n_rows, n_cols)
    p0 = np.empty(rows.size * n_cols, np.int64)
    d = np.empty(rows.size * n_cols, np.int64)
    (_model_par if parallel else _model_ser)(k, nz, *intra, *inter, lo >> fb, hi >> fb, fb,
                                             rows, p0, d)
    cum = np.cumsum(np.bincount(p0 - lo, minlength=hi - lo + 1))
    # value at each quantile: the first whose cumulative count reaches it
    ranks = (np.arange(1, max_levels) * p0.size) // max_levels
    qs = np.searchsorted(cum, ranks, side="right") + lo
    thresholds = np.unique(np.clip(qs, lo + 1, hi))
    level = _levels_lut(thresholds, lo, hi)[p0 - lo]
    sums = np.bincount(level, weights=d, minlength=thresholds.size + 1)
    counts = np.bincount(level, minlength=thresholds.size + 1)
    bias = np.clip(np.rint(sums / np.maximum(counts, 1)), -128, 127).astype(np.int64)
    return thresholds.astype(np.int64), bias


def sample_rows(total: int, n_cols: int) -> np.ndarray:
    """The global rows (of ``total`` rows of ``n_cols``) whose predictions choose the levels:
    spread over every plane and every height (a golden-ratio sequence: no alignment with the
    planes, whose first rows use the fallback predictor)."""
    n = total * n_cols
    sample = max(SAMPLE_PIXELS >> 2, min(SAMPLE_PIXELS, n >> 2), n >> 5)
    want = min(total, max(1, -(-sample // n_cols)))
    return np.unique((np.arange(want) * 0.6180339887498949 % 1.0 * total).astype(np.int64))


def level_labels(thresholds: np.ndarray, bias: np.ndarray, lo: int, hi: int,
                 fb: int) -> np.ndarray:
    """Each prediction's ``level << 8 | bias`` (uint16, bias in two's complement), indexed by
    the prediction in units of ``2**-fb`` minus ``lo << fb``."""
    levels = np.arange(thresholds.size + 1)
    return ((levels << 8) | (bias & 0xFF)).astype(np.uint16)[
        _levels_lut(thresholds, lo << fb, hi << fb)]


def level_tables(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """``(table of each level, normalised frequencies of each table)`` from the token counts of
    each level (``nlevels x NTOK``), or None where every symbol is the same (the
    neighbour-context payload's constant form is then smaller)."""
    nonzero = np.flatnonzero(counts)
    if nonzero.size == 1 and nonzero[0] % R.NTOK < 16:
        return None
    used = counts.sum(axis=1) > 0
    # a level no pixel has gets its neighbour's table (merging then costs nothing)
    table = R.merge_contexts(_fill_empty(counts, used))
    tcounts = np.zeros((int(table.max()) + 1, R.NTOK), np.int64)
    np.add.at(tcounts, table, counts)
    tcounts[tcounts.sum(axis=1) == 0, 0] = 1  # a table only empty levels use: any valid one
    freqs = np.zeros_like(tcounts)
    R.normalize(tcounts, freqs)
    return table, freqs


def level_payload(fb: int, rps: int, thresholds: np.ndarray, bias: np.ndarray,
                  table: np.ndarray, freqs: np.ndarray, rcnt: np.ndarray, ecnt: np.ndarray,
                  rans: list, extra: list) -> bytes:
    """The payload's bytes: header, model, directory (``rcnt``/``ecnt``: each stream's rANS
    words and extra-bit words), then ``rans`` and ``extra`` (buffers of u16 and u32 words,
    the streams' in order)."""
    head = np.zeros(1, _HEAD)
    head[0] = (MODE, thresholds.size + 1, freqs.shape[0], fb, rps)
    parts = [head.tobytes(), thresholds.astype("<u2").tobytes(), bias.astype("i1").tobytes(),
             table.astype(np.uint8).tobytes(), R.freqs_to_bytes(freqs)]
    size = sum(map(len, parts))
    parts.append(bytes(-size % 4))
    parts.append(np.concatenate([rcnt, ecnt]).astype("<u4").tobytes())
    parts += rans
    if int(np.sum(rcnt)) % 2:
        parts.append(bytes(2))
    parts += extra
    return b"".join(parts)


def rows_per_segment(n_planes: int, n_rows: int, n_cols: int) -> int:
    """The encoder's segment height (even; about ``SEG_TARGET`` symbols). A stack's segments
    are cut to lie inside planes where the rows allow (an even divisor of ``n_rows`` of at
    least a quarter of the target, else whole planes): a decoder may then reconstruct
    successive planes on several threads at once, each a few rows behind the one before
    (:func:`bigcomp.kernels._level_dec.decode_level`). Odd heights, single planes and planes
    of fewer than ``WAVE_MIN_PLANE`` pixels keep the plain cut (a segment per small plane would
    cost its stream directory and states, 24 bytes, each: 0.8 % of a 64 x 64 plane)."""
    target = max(2, (SEG_TARGET // max(n_cols, 1)) // 2 * 2)
    if n_planes == 1 or n_rows % 2 or n_rows * n_cols < WAVE_MIN_PLANE:
        return target
    if target >= n_rows:
        return n_rows
    for d in range(target, max(target // 4, 2) - 1, -2):
        if n_rows % d == 0:
            return d
    return n_rows


def levels_for(n: int) -> int:
    """Levels a chunk of ``n`` pixels gets at most (each costs ~5 bytes and maybe a table;
    measured: 32 levels take another 0.1-0.5 % off chunks of a million pixels and more, and
    lose on small ones)."""
    return 8 if n < 1 << 15 else 16 if n < 1 << 20 else 32


def fraction_bits(lo: int, hi: int) -> int:
    """The fraction bits ``f`` the encoder gives the levels of values ``[lo, hi]``: 2 where the
    thresholds fit (``hi << 2 <= 65535``), else 0. Measured on single planes at q = 1 (where
    the predicted values crowd a few integers, so whole-value quantiles merge) the chunks
    are 0.6-1.1 % smaller; lossless 16-bit chunks keep whole levels (format version 6)."""
    return 2 if hi << 2 <= 65535 else 0


def encode_level(k, nz, intra, inter, lo, hi, *, parallel=True,
                 max_levels: int | None = None, fraction: int | None = None) -> bytes | None:
    """Level-model ``max`` payload of ``k`` (3-D integers in ``[lo, hi]``), or None where all
    symbols are equal (the neighbour-context payload's constant form is smaller).

    ``intra``/``inter``: ``(taps, coefs, shift)`` triples as :func:`predict_encode` takes.
    """
    n_planes, n_rows, n_cols = k.shape
    n = k.size
    max_levels = levels_for(n) if max_levels is None else max_levels
    k = readonly(k)
    intra, inter = with_accumulator(_scaled(intra), _scaled(inter), lo, hi)
    fb = fraction_bits(lo, hi) if fraction is None else fraction
    thresholds, bias = _choose_levels(k, nz, intra, inter, lo, hi, fb, parallel, max_levels)
    lbl = level_labels(thresholds, bias, lo, hi, fb)
    rps = rows_per_segment(n_planes, n_rows, n_cols)
    segs = segments(n_planes, n_rows, nz, rps)
    nstream = 2 * segs.shape[0]
    nlev = thresholds.size + 1
    keys = scratch("max_keys", n, np.uint16)
    hist = np.zeros((nstream, nlev * R.NTOK), np.int64)
    ext = scratch("max_extra", n + nstream, np.uint32)
    ext_cnt = np.empty(nstream, np.int64)
    (_enc_pass1_par if parallel else _enc_pass1_ser)(k, nz, *intra, *inter, lo, hi, fb, lbl, segs,
                                                      keys, hist, ext, ext_cnt)
    tables = level_tables(hist.sum(axis=0).reshape(nlev, R.NTOK))
    if tables is None:
        return None  # every symbol the same: the neighbour-context payload's constant form
    table, freqs = tables
    tabs = [np.zeros(nlev * R.NTOK, np.uint64) for _ in range(5)]
    R.enc_tables(freqs[table], *tabs)
    rbuf = scratch("max_rans", n + STATE_WORDS * nstream, np.uint16)
    rstart = np.empty(nstream, np.int64)
    rcnt = np.empty(nstream, np.int64)
    (_enc_pass2_par if parallel else _enc_pass2_ser)(keys, segs, n_cols, *tabs, rbuf, rstart,
                                                      rcnt)
    extra = []
    for s in range(nstream):
        g0, g1 = segs[s // 2]
        a = g0 * n_cols + (s % 2) * ((g1 - g0 + 1) // 2) * n_cols
        extra.append(ext[a + s : a + s + ext_cnt[s]])
    return level_payload(fb, rps, thresholds, bias, table, freqs, rcnt, ext_cnt,
                         [rbuf[rstart[s] : rstart[s] + rcnt[s]] for s in range(nstream)], extra)


def _fill_empty(counts: np.ndarray, used: np.ndarray) -> np.ndarray:
    """``counts`` where each level without pixels copies the nearest used level below (or
    above) it, so that the greedy merge folds it in at no cost."""
    out = counts.copy()
    idx = np.flatnonzero(used)
    if idx.size == 0:
        return out
    for c in np.flatnonzero(~used):
        below = idx[idx < c]
        out[c] = counts[below[-1] if below.size else idx[0]]
    return out


