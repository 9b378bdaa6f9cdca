"""GPU encoder (numba.cuda) of the ``max`` coder's level model (chunk flag bit 2, format version
6; fractional levels, flag bit 3, version 7): the very payload
:func:`bigcomp.kernels._level.encode_level` writes, byte for byte.

Payload format and model: :mod:`bigcomp.kernels._level`. The encoder's choices come from the
CPU's own functions: thresholds and biases from :func:`~bigcomp.kernels._level._choose_levels`
(run on the host on a copy of the sampled rows and the rows their predictions read, gathered on
the device), the segment layout from :func:`~bigcomp.kernels._level.rows_per_segment` and
:func:`~bigcomp.kernels._level.segments`, the frequency tables from a device histogram by
:func:`~bigcomp.kernels._rans.merge_contexts`, :func:`~bigcomp.kernels._rans.normalize` and the
level model's ``_fill_empty``; the fraction bits from
:func:`~bigcomp.kernels._level.fraction_bits`.

Encode
    1. one thread per pixel, in *stream order* (each segment's even rows, then its odd rows: a
       stream's pixels are contiguous): prediction in 1/16 (the tap sum in int64, which holds
       the CPU's int32 or int64 accumulator exactly; the fallback at borders), level (from the
       prediction in units of ``2**-f``), bias, oriented zig-zag symbol, token, key
       ``level * NTOK + token`` and extra-bit count, as ``_model_row``/``_model_border``/
       ``_enc_stream1``; a shared-memory histogram of the keys per block, merged with atomics;
    2. extra bits: an exclusive prefix sum of the bit counts gives every symbol's bit position
       in its stream; each symbol ORs its bits into the zeroed word array (atomics);
    3. rANS: one thread per stream runs it backwards exactly as ``_enc_streams2`` (the CPU's
       tables: reciprocal multiply instead of a division), counting the words it emits: each
       emitting symbol keeps its word and count, which place the word (ascending symbol order,
       after the stream's final state: low word, high word) once the stream's total is known;
    4. the host joins header, tables, directory and the streams as ``encode_level``.
There is no GPU decoder of this payload (one sequential chain per row pair): level-model chunks
are decoded on the host.
"""

from __future__ import annotations

import numpy as np

from . import _level as LV
from . import _rans as R
from ._cuda_common import (
    cuda,
    device_kernel,
    empty,
    exclusive_scan,
    launch,
    to_device,
    to_host,
    zeros,
)
from ._cuda_max import token_bits
from ._numba import readonly, use_parallel
from ._predict import _window, with_accumulator

__all__ = ["encode_level_gpu"]

NTOK = R.NTOK
NKEYS = LV.MAX_LEVELS * NTOK  # the histogram's size for any number of levels
STATE_WORDS = LV.STATE_WORDS
_L = R.RANS_L


# ------------------------------------------------------------------------ level choice (host)
def _rows_read(rows, shape3, nz, intra, inter) -> np.ndarray:
    """Every global row the predictions of ``rows`` read: the rows themselves, their taps'
    rows (where inside the chunk) and the fallback's north and previous-plane rows."""
    n_planes, n_rows, _ = shape3
    p, y = rows // n_rows, rows % n_rows
    has_prev = p % nz != 0
    out = [rows]
    for w, sel in ((0, ~has_prev), (1, has_prev)):
        taps = (intra, inter)[w][0]
        offs = {(0, -1)} | {(int(dp), int(dy)) for dp, dy, _ in np.asarray(taps)}
        if w:
            offs.add((-1, 0))
        for dp, dy in offs:
            pp, yy = p[sel] + dp, y[sel] + dy
            ok = (pp >= 0) & (pp < n_planes) & (yy >= 0) & (yy < n_rows)
            out.append(pp[ok] * n_rows + yy[ok])
    return np.unique(np.concatenate(out))


@device_kernel
def _gather_rows(k, rows, n_cols, out):
    """``out[j, :] = k[rows[j], :]`` (flat arrays, rows of ``n_cols``)."""
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, out.size, step):
        j = i // n_cols
        out[i] = k[rows[j] * n_cols + (i - j * n_cols)]


def _host_sample(k, shape3, nz, intra, inter) -> np.ndarray:
    """A host array of ``shape3`` holding ``k`` (flat device array) in every row the level
    choice reads (zero elsewhere, never read)."""
    n_planes, n_rows, n_cols = shape3
    rows = _rows_read(LV.sample_rows(n_planes * n_rows, n_cols), shape3, nz, intra, inter)
    if rows.size == n_planes * n_rows:
        return to_host(k).reshape(shape3)
    host = np.zeros(shape3, k.dtype)  # calloc: untouched pages cost nothing
    got = empty(rows.size * n_cols, k.dtype)
    launch(_gather_rows, got.size)(k, to_device(rows), n_cols, got)
    host.reshape(-1, n_cols)[rows] = to_host(got).reshape(-1, n_cols)
    return host


# ----------------------------------------------------------------------------------- kernels
@device_kernel
def _level_keys(k, n_rows, n_cols, nz, lo, hi, fb, row_of, taps, coefs, pinfo, lbl, sym, keys,
                nbits, hist):
    """Per pixel (stream order ``i``; ``row_of``: the global row of each stream-ordered row):
    symbol, key and extra-bit count (``_model_row``/``_model_border``/``_enc_stream1``), and
    the histogram of the keys. ``pinfo[w]`` (``w`` 0 intra, 1 inter): first tap, end tap,
    shift down to 1/16, rounding term, ``dymin``, ``dymax``, ``x0``, ``x1``; ``fb``: the
    levels' fraction bits (``lbl`` is indexed by the prediction in units of ``2**-fb``)."""
    h = cuda.shared.array(NKEYS, np.int32)
    for j in range(cuda.threadIdx.x, NKEYS, cuda.blockDim.x):
        h[j] = 0
    cuda.syncthreads()
    n = sym.size
    plane = n_rows * n_cols
    sf = 4 - fb
    half = (np.int64(1) << sf) >> 1
    lof = np.int64(lo) << fb
    hif = np.int64(hi) << fb
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, n, step):
        r = i // n_cols
        c = i - r * n_cols
        g = row_of[r]
        p = g // n_rows
        y = g - p * n_rows
        has_prev = p % nz != 0
        w = 1 if has_prev else 0
        base = g * n_cols
        v = np.int64(k[base + c])
        if (y + pinfo[w, 4] >= 0 and y + pinfo[w, 5] < n_rows and pinfo[w, 7] > pinfo[w, 6]
                and c >= pinfo[w, 6] and c < pinfo[w, 7]):
            s = pinfo[w, 3]
            for t in range(pinfo[w, 0], pinfo[w, 1]):
                s += coefs[t] * np.int64(
                    k[base + taps[t, 0] * plane + taps[t, 1] * n_cols + c + taps[t, 2]])
            a = s >> pinfo[w, 2]
        else:  # the fallback (_predict._fallback), whole values
            if c > 0:
                f = np.int64(k[base + c - 1])
            elif y > 0:
                f = np.int64(k[base - n_cols + c])
            elif has_prev:
                f = np.int64(k[base - plane + c])
            else:
                f = np.int64(lo)
            a = f << 4
        e = np.int64(lbl[min(max((a + half) >> sf, lof), hif) - lof])
        b = a + (((e & 0xFF) ^ 0x80) - 0x80) + 8
        m = -((b >> 3) & 1)
        res = ((v - min(max(b >> 4, lo), hi)) ^ m) - m
        z = (res << 1) ^ (res >> 63)
        t, nb = token_bits(z)
        key = (e >> 8) * NTOK + t
        sym[i] = np.uint32(z)
        keys[i] = np.uint16(key)
        nbits[i] = np.uint8(nb)
        cuda.atomic.add(h, key, np.int32(1))
    if start == 0:
        nbits[n] = 0
    cuda.syncthreads()
    for j in range(cuda.threadIdx.x, NKEYS, cuda.blockDim.x):
        if h[j]:
            cuda.atomic.add(hist, j, np.int64(h[j]))


@device_kernel
def _stream_counts(pos, sstart, per_word, fixed, cnt):
    """``cnt[s] = fixed + ceil((pos[b] - pos[a]) / per_word)`` per stream ``[a, b)``; trailing
    zero entry for the scan."""
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    ns = cnt.size - 1
    for s in range(start, ns, step):
        d = pos[sstart[s + 1]] - pos[sstart[s]]
        cnt[s] = fixed + (d + per_word - 1) // per_word
    if start == 0:
        cnt[ns] = 0


@device_kernel
def _scatter_extra(sym, nbits, bpos, n_cols, stream_of_row, sstart, eofs, ext):
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, sym.size, step):
        nb = np.int64(nbits[i])
        if nb == 0:
            continue
        s = stream_of_row[i // n_cols]
        bit = bpos[i] - bpos[sstart[s]]
        wd = eofs[s] + bit // 32
        off = bit % 32
        val = np.int64(sym[i]) & ((np.int64(1) << nb) - 1)
        cuda.atomic.or_(ext, wd, np.uint32((val << off) & 0xFFFFFFFF))
        if off + nb > 32:
            cuda.atomic.or_(ext, wd + 1, np.uint32(val >> (32 - off)))


@device_kernel
def _rans_streams(keys, sstart, xmax, rcp, shift, bias, cmpl, slot, word, states, nwords):
    """One thread per stream: ``_level._enc_streams2``'s backward pass over it. A symbol where
    it emits a word gets the word and its ``slot`` (words emitted so far, this one included;
    0 where none): the stream stores the words in ascending symbol order after its state, so
    that word goes to ``STATE_WORDS + nwords - slot``."""
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for s in range(start, states.size, step):
        a = sstart[s]
        x = np.uint64(_L)
        e = np.int32(0)
        i = sstart[s + 1] - 1
        while i >= a:
            key = keys[i]
            if x >= xmax[key]:
                e += 1
                slot[i] = e
                word[i] = np.uint16(x & np.uint64(0xFFFF))
                x >>= np.uint64(16)
            else:
                slot[i] = 0
            q = (x + ((x * rcp[key]) >> np.uint64(32))) >> shift[key]
            x = x + bias[key] + q * cmpl[key]
            i -= 1
        states[s] = np.int64(x)
        nwords[s] = e


@device_kernel
def _place_words(slot, word, n_cols, stream_of_row, nwords, rofs, rans):
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, slot.size, step):
        e = slot[i]
        if e:
            s = stream_of_row[i // n_cols]
            rans[rofs[s] + STATE_WORDS + nwords[s] - e] = word[i]


@device_kernel
def _place_states(states, rofs, rans):
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for s in range(start, states.size, step):
        x = states[s]
        rans[rofs[s]] = np.uint16(x & 0xFFFF)  # low word, high word
        rans[rofs[s] + 1] = np.uint16((x >> 16) & 0xFFFF)


# ------------------------------------------------------------------------------------ driver
def _predictor_arrays(intra, inter, n_cols):
    """Taps, int64 coefficients and ``pinfo`` rows (see :func:`_level_keys`) of the scaled
    predictor pair (intra first)."""
    taps, coefs, info = [], [], []
    t0 = 0
    for t, c, sh in (intra, inter):
        t = np.asarray(t, np.int64).reshape(-1, 3)
        dymin, dymax, x0, x1 = _window(np.asarray(t, np.int32), n_cols)
        down = max(int(sh) - 4, 0)
        rnd = 1 << (int(sh) - 5) if sh > 4 else 0
        info.append([t0, t0 + t.shape[0], down, rnd, dymin, dymax, x0, x1])
        taps.append(t)
        coefs.append(np.asarray(c, np.int64))
        t0 += t.shape[0]
    return np.concatenate(taps), np.concatenate(coefs), np.array(info, np.int64)


def _stream_layout(segs: np.ndarray, n_cols: int):
    """Stream order: the global row of each stream-ordered row, each such row's stream, and
    the streams' first pixels (plus the end)."""
    row_of, stream_of_row, sstart = [], [], [0]
    for i, (g0, g1) in enumerate(segs):
        for parity in (0, 1):
            rows = np.arange(g0 + parity, g1, 2, dtype=np.int64)
            row_of.append(rows)
            stream_of_row.append(np.full(rows.size, 2 * i + parity, np.int64))
            sstart.append(sstart[-1] + rows.size * n_cols)
    return np.concatenate(row_of), np.concatenate(stream_of_row), np.array(sstart, np.int64)


def encode_level_gpu(k, shape3, nz: int, intra, inter, lo: int, hi: int, *,
                     max_levels: int | None = None, fraction: int | None = None) -> bytes | None:
    """:func:`~bigcomp.kernels._level.encode_level` of the flat device array ``k`` (integers
    in ``[lo, hi]``, viewed as ``shape3``): the same bytes, or None where it returns None.
    ``max_levels``, ``fraction``: as ``encode_level``'s (None: the encoder's choice)."""
    n_planes, n_rows, n_cols = (int(s) for s in shape3)
    shape3 = (n_planes, n_rows, n_cols)
    n = n_planes * n_rows * n_cols
    intra, inter = with_accumulator(LV._scaled(intra), LV._scaled(inter), lo, hi)
    fb = LV.fraction_bits(lo, hi) if fraction is None else int(fraction)
    max_levels = LV.levels_for(n) if max_levels is None else int(max_levels)

    # thresholds and biases: the CPU's choice, on the rows it reads
    host = readonly(_host_sample(k, shape3, nz, intra, inter))
    parallel = use_parallel() and n >= 1 << 19
    thresholds, bias = LV._choose_levels(host, nz, intra, inter, lo, hi, fb, parallel,
                                         max_levels)
    nlev = thresholds.size + 1
    lbl = LV.level_labels(thresholds, bias, lo, hi, fb)

    # segments and streams
    rps = LV.rows_per_segment(n_planes, n_rows, n_cols)
    segs = LV.segments(n_planes, n_rows, nz, rps)
    nstream = 2 * segs.shape[0]
    row_of, stream_of_row, sstart = _stream_layout(segs, n_cols)
    d_stream_of_row, d_sstart = to_device(stream_of_row), to_device(sstart)

    # 1. symbols, keys, histogram
    taps, coefs, pinfo = _predictor_arrays(intra, inter, n_cols)
    sym = empty(n, np.uint32)
    keys = empty(n, np.uint16)
    nbits = empty(n + 1, np.uint8)
    hist = zeros(NKEYS, np.int64)
    launch(_level_keys, n)(k, n_rows, n_cols, nz, lo, hi, fb, to_device(row_of), to_device(taps),
                           to_device(coefs), to_device(pinfo), to_device(lbl), sym, keys,
                           nbits, hist)
    counts = to_host(hist)[: nlev * R.NTOK].reshape(nlev, R.NTOK)

    # frequency tables: encode_level's
    tables = LV.level_tables(counts)
    if tables is None:
        return None  # every symbol the same: the neighbour-context payload's constant form
    table, freqs = tables
    tabs = [np.zeros(nlev * R.NTOK, np.uint64) for _ in range(5)]
    R.enc_tables(freqs[table], *tabs)
    xmax, rcp, shift, tbias, cmpl = (to_device(t) for t in tabs)

    # 2. extra bits (per stream: a scan of the bit counts)
    bpos = exclusive_scan(nbits)
    ecnt = empty(nstream + 1, np.int64)
    launch(_stream_counts, nstream)(bpos, d_sstart, 32, 0, ecnt)
    ecnt = to_host(ecnt)[:nstream]
    eofs = np.concatenate([[0], np.cumsum(ecnt)])
    ne = int(eofs[-1])
    ext = zeros(max(ne, 1), np.uint32)
    launch(_scatter_extra, n)(sym, nbits, bpos, n_cols, d_stream_of_row, d_sstart,
                              to_device(eofs), ext)

    # 3. rANS streams (their word counts), then word placement
    slot = empty(n, np.int32)
    word = empty(n, np.uint16)
    states = empty(nstream, np.int64)
    nwords = empty(nstream, np.int32)
    launch(_rans_streams, nstream)(keys, d_sstart, xmax, rcp, shift, tbias, cmpl, slot, word,
                                   states, nwords)
    rcnt = to_host(nwords).astype(np.int64) + STATE_WORDS
    rofs = np.concatenate([[0], np.cumsum(rcnt)])
    nr = int(rofs[-1])
    rans = empty(nr, np.uint16)
    d_rofs = to_device(rofs)
    launch(_place_words, n)(slot, word, n_cols, d_stream_of_row, nwords, d_rofs, rans)
    launch(_place_states, nstream)(states, d_rofs, rans)

    # 4. assemble on the host (encode_level's layout)
    return LV.level_payload(fb, rps, thresholds, bias, table, freqs, rcnt, ecnt,
                            [to_host(rans).astype("<u2")],
                            [to_host(ext)[:ne].astype("<u4")] if ne else [])
