"""Kernels of the ``max`` entropy coder: hybrid-integer tokens, context-modelled 4-lane rANS.

The payload format is specified in the docstring of :mod:`bigcomp.kernels._coders`; this module
holds the numba kernels and the (de)serialisation of the frequency tables.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import prange

from ._numba import jit, pjit

NTOK = 72  # tokens 0..71
PBITS = 12  # probability precision
PSCALE = 1 << PBITS
RANS_L = 1 << 16  # lower bound of the normalised rANS state
NLANES = 4  # interleaved rANS states per segment
NCTX = 8
CTX_THRESHOLDS = (3, 6, 9, 12, 16, 21, 28)  # ctx = #thresholds <= (tW + tN + tNW + tNE)
SEG_TARGET = 1 << 17  # symbols per segment the encoder aims for
CMAP = np.searchsorted(np.array(CTX_THRESHOLDS), np.arange(4 * (NTOK - 1) + 1), side="right").astype(
    np.int64
)
_KBASE = CMAP * NTOK


def bitlen_source(v):
    """Bit length of ``0 <= v < 2**32`` (int64). Plain Python, compiled twice: for the CPU
    here (``_bitlen``) and as a CUDA device function (``_cuda_fast.bitlen``)."""
    b = np.int64(0)
    if v >= 65536:
        v >>= 16
        b += 16
    if v >= 256:
        v >>= 8
        b += 8
    if v >= 16:
        v >>= 4
        b += 4
    if v >= 4:
        v >>= 2
        b += 2
    if v >= 2:
        v >>= 1
        b += 1
    return b + v


_bitlen = numba.njit(nogil=True, inline="always")(bitlen_source)


@jit
def is_constant(sym):
    """Whether all symbols are equal (early exit)."""
    v = sym[0]
    for i in range(1, sym.size):  # noqa: SIM110 - numba
        if sym[i] != v:
            return False
    return True


@jit
def _enc_seg1(sym, rl, toks, keys, h, ext):
    """Forward pass over one segment: tokens, context keys, histogram ``h``, extra bits into
    ``ext``; returns the number of extra-bit words. Row by row: tokens and contexts (the rule
    of the module docstring, as in _dec_seg) are data-parallel and vectorised; only the
    histogram and the extra bits are a sequential loop."""
    b, w = sym.size, 0
    acc = np.int64(0)
    nacc = 0
    fbuf = np.empty(rl, np.float64)
    cbuf = np.empty(rl, np.int64)
    i0 = 0
    while i0 < b:
        m = min(rl, b - i0)
        row = sym[i0 : i0 + m]
        trow = toks[i0 : i0 + m]
        # tokens: bit length from the float64 exponent (exact for v < 2**32)
        fv = fbuf[:m]
        for c in range(m):
            fv[c] = row[c]
        ev = fbuf.view(np.int64)[:m]
        for c in range(m):
            v = np.int64(row[c])
            nbits = max((ev[c] >> 52) - 1024, 0)  # bit length - 2
            big = 2 * nbits + 10 + ((v >> nbits) & 1)
            trow[c] = v if v < 16 else big
        # contexts
        cs = cbuf[:m]
        if i0 == 0:
            cs[0] = 0
            for c in range(1, m):
                cs[c] = 4 * np.int64(trow[c - 1])
        else:
            pn = toks[i0 - rl : i0]  # the full row above
            cs[0] = 3 * np.int64(pn[0]) + np.int64(pn[1] if rl > 1 else pn[0])
            inner = min(m, rl - 1)
            for c in range(1, inner):
                cs[c] = (np.int64(trow[c - 1]) + np.int64(pn[c]) + np.int64(pn[c - 1])
                         + np.int64(pn[c + 1]))
            if m == rl and rl > 1:
                c = rl - 1
                cs[c] = np.int64(trow[c - 1]) + 2 * np.int64(pn[c]) + np.int64(pn[c - 1])
        # keys, histogram, extra bits
        krow = keys[i0 : i0 + m]
        for c in range(m):
            t = np.int64(trow[c])
            k = _KBASE[cs[c]] + t
            krow[c] = k
            h[k] += 1
            if t >= 16:
                nbits = (t >> 1) - 5
                acc |= (np.int64(row[c]) & ((np.int64(1) << nbits) - 1)) << nacc
                nacc += nbits
                if nacc >= 32:
                    ext[w] = np.uint32(acc & 0xFFFFFFFF)
                    w += 1
                    acc >>= 32
                    nacc -= 32
        i0 += m
    if nacc > 0:
        ext[w] = np.uint32(acc)
        w += 1
    return w


# The per-segment functions get views starting at index 0 (numba then drops negative-index checks).
def _enc_pass1(sym, rl, seg_len, toks, keys, hist, ext, ext_cnt):
    n = sym.size
    for s in prange(hist.shape[0]):
        a = s * seg_len
        b = min(n, a + seg_len)
        w0 = a + s  # segment s owns ext[a + s : b + s + 1]
        ext_cnt[s] = _enc_seg1(sym[a:b], rl, toks[a:b], keys[a:b], hist[s], ext[w0 : b + s + 1])


_enc_pass1_par, _enc_pass1_ser = pjit(_enc_pass1)


@jit
def _enc_seg2(keys, xmax, rcp, shift, bias, cmpl, rbuf):
    """Backward rANS pass over one segment, filling ``rbuf`` from its end; returns the start."""
    a, b, p = 0, keys.size, rbuf.size
    st = np.full(NLANES, np.uint64(RANS_L))
    for i in range(b - 1, a - 1, -1):
        k = keys[i]
        lane = (i - a) & (NLANES - 1)
        x = st[lane]
        # branchless renormalisation: the word is written below the stream either way and is
        # kept only when the stream grows (else the next word or the final states overwrite it)
        r = np.uint64(x >= xmax[k])
        rbuf[p - 1] = np.uint16(x & np.uint64(0xFFFF))
        p -= np.int64(r)
        x >>= r << np.uint64(4)
        q = (x + ((x * rcp[k]) >> np.uint64(32))) >> shift[k]
        st[lane] = x + bias[k] + q * cmpl[k]
    for lane in range(NLANES - 1, -1, -1):
        rbuf[p - 1] = np.uint16(st[lane] >> np.uint64(16))
        rbuf[p - 2] = np.uint16(st[lane] & np.uint64(0xFFFF))
        p -= 2
    return p


def _enc_pass2(keys, seg_len, xmax, rcp, shift, bias, cmpl, rbuf, rstart, rcnt):
    n = keys.size
    for s in prange(rstart.size):
        a = s * seg_len
        b = min(n, a + seg_len)
        r0 = a + 2 * NLANES * s  # segment s owns rbuf[r0 : r0 + b - a + 8]
        m = b - a + 2 * NLANES
        start = _enc_seg2(keys[a:b], xmax, rcp, shift, bias, cmpl, rbuf[r0 : r0 + m])
        rstart[s] = r0 + start
        rcnt[s] = m - start


_enc_pass2_par, _enc_pass2_ser = pjit(_enc_pass2)


@jit
def normalize(counts, freqs):
    """Scale each row of ``counts`` (ntab, NTOK) to sum ``PSCALE`` with every count>0 -> freq>=1.

    f = max(1, c * 4096 // total); then while the sum is short, add 1 to the token with the largest
    c/f; while it is over, subtract 1 from the token with f > 1 and the smallest c/f (ties: lowest
    token).  Rows with total 0 stay 0.
    """
    for r in range(counts.shape[0]):
        tot = 0
        for t in range(NTOK):
            tot += counts[r, t]
        if tot == 0:
            continue
        ssum = 0
        for t in range(NTOK):
            c = counts[r, t]
            f = 0
            if c > 0:
                f = max(1, (c * PSCALE) // tot)
            freqs[r, t] = f
            ssum += f
        while ssum != PSCALE:
            best = -1
            for t in range(NTOK):
                c = counts[r, t]
                f = freqs[r, t]
                if c == 0 or (ssum > PSCALE and f <= 1):
                    continue
                if best < 0 or (ssum < PSCALE and c * freqs[r, best] > counts[r, best] * f) or (ssum > PSCALE and c * freqs[r, best] < counts[r, best] * f):
                    best = t
            if ssum < PSCALE:
                freqs[r, best] += 1
                ssum += 1
            else:
                freqs[r, best] -= 1
                ssum -= 1


@jit
def enc_tables(freqs, xmax, rcp, shift, bias, cmpl):
    """Per (ctx, token) encoder constants; q = x // f == (x + (x * rcp >> 32)) >> shift."""
    for r in range(freqs.shape[0]):
        start = 0
        for t in range(NTOK):
            f = freqs[r, t]
            k = r * NTOK + t
            if f == 0:
                continue
            sh = 0
            while (1 << sh) < f:
                sh += 1
            m = ((np.int64(1) << (32 + sh)) + f - 1) // f  # in [2**32, 2**33)
            xmax[k] = np.uint64(f) << np.uint64(32 - PBITS)  # ((L >> 12) << 16) * f
            rcp[k] = np.uint64(m - (np.int64(1) << 32))
            shift[k] = sh
            bias[k] = start
            cmpl[k] = PSCALE - f
            start += f


@jit
def dec_tables(freqs, lut, fs):
    """Decoding tables: lut[tab*4096 + slot] = token, fs[tab*NTOK + token] = freq | start << 16."""
    for r in range(freqs.shape[0]):
        start = 0
        for t in range(NTOK):
            f = freqs[r, t]
            fs[r * NTOK + t] = f | (start << 16)
            for j in range(f):
                lut[r * PSCALE + start + j] = t
            start += f


@jit
def _dec_seg(rw, ew, lut, fs, cbase, kbase, rl, toks, out):
    """Decode one segment from its rANS words ``rw`` and extra-bit words ``ew``; returns 0 or an
    error code."""
    p, pend, q, qend, a, b = 0, rw.size, 0, ew.size, 0, out.size
    if pend - p < 2 * NLANES:
        return 1
    st = np.empty(NLANES, np.int64)
    for lane in range(NLANES):
        st[lane] = np.int64(rw[p]) | (np.int64(rw[p + 1]) << 16)
        p += 2
    acc = np.int64(0)
    nacc = 0
    i0 = a
    while i0 < b:  # row by row; the context rule of the module docstring (as in _enc_seg1)
        m = min(rl, b - i0)
        first = i0 == a
        tn = 0 if first else np.int64(toks[i0 - rl])
        tw = tn
        tnw = tn
        for c in range(m):
            i = i0 + c
            if first:
                cs = 4 * tw
            else:
                tne = np.int64(toks[i - rl + 1]) if c < rl - 1 else tn
                cs = tw + tn + tnw + tne
                tnw = tn
                tn = tne
            lane = (i - a) & (NLANES - 1)
            x = st[lane]
            slot = x & (PSCALE - 1)
            t = np.int64(lut[cbase[cs] + slot])
            e = fs[kbase[cs] + t]
            x = (e & 0xFFFF) * (x >> PBITS) + slot - (e >> 16)
            r = np.int64(x < RANS_L)  # branchless renormalisation
            x = (x << (16 * r)) | (np.int64(rw[min(p, pend - 1)]) & -r)
            p += r
            if x < RANS_L or p > pend:
                return 2
            st[lane] = x
            toks[i] = t
            tw = t
            if t < 16:
                out[i] = t
            else:
                nbits = (t >> 1) - 5
                if nacc < nbits:
                    if q >= qend:
                        return 3
                    acc |= np.int64(ew[q]) << nacc
                    q += 1
                    nacc += 32
                out[i] = np.uint32((((t & 1) | 2) << nbits) | (acc & ((np.int64(1) << nbits) - 1)))
                acc >>= nbits
                nacc -= nbits
        i0 += m
    if p != pend or q != qend or acc != 0:
        return 5
    for lane in range(NLANES):
        if st[lane] != RANS_L:
            return 6
    return 0


@jit
def _dec_seg_pair(rwa, ewa, rwb, ewb, lut, fs, cbase, kbase, rl, toka, outa, tokb, outb):
    """:func:`_dec_seg` of two segments of equal length at once: their symbols alternate in one
    loop, so the two dependency chains (token -> context -> token) overlap (-23 % time).
    Returns the two error codes. The loop body is :func:`_dec_seg`'s, written out per segment
    (numba does not inline a helper returning the eight state values as well)."""
    pa, pb, qa, qb = 0, 0, 0, 0
    pend_a, pend_b, qend_a, qend_b = rwa.size, rwb.size, ewa.size, ewb.size
    n = outa.size
    if pend_a < 2 * NLANES or pend_b < 2 * NLANES:
        return 1 if pend_a < 2 * NLANES else 0, 1 if pend_b < 2 * NLANES else 0
    sta = np.empty(NLANES, np.int64)
    stb = np.empty(NLANES, np.int64)
    for lane in range(NLANES):
        sta[lane] = np.int64(rwa[pa]) | (np.int64(rwa[pa + 1]) << 16)
        stb[lane] = np.int64(rwb[pb]) | (np.int64(rwb[pb + 1]) << 16)
        pa += 2
        pb += 2
    acca, accb = np.int64(0), np.int64(0)
    nacca, naccb = 0, 0
    erra, errb = 0, 0
    i0 = 0
    while i0 < n:
        m = min(rl, n - i0)
        first = i0 == 0
        tna = 0 if first else np.int64(toka[i0 - rl])
        tnb = 0 if first else np.int64(tokb[i0 - rl])
        twa, tnwa, twb, tnwb = tna, tna, tnb, tnb
        for c in range(m):
            i = i0 + c
            if first:
                csa = 4 * twa
                csb = 4 * twb
            else:
                tnea = np.int64(toka[i - rl + 1]) if c < rl - 1 else tna
                tneb = np.int64(tokb[i - rl + 1]) if c < rl - 1 else tnb
                csa = twa + tna + tnwa + tnea
                csb = twb + tnb + tnwb + tneb
                tnwa, tna, tnwb, tnb = tna, tnea, tnb, tneb
            lane = i & (NLANES - 1)
            xa = sta[lane]
            slota = xa & (PSCALE - 1)
            ta = np.int64(lut[cbase[csa] + slota])
            ea = fs[kbase[csa] + ta]
            xa = (ea & 0xFFFF) * (xa >> PBITS) + slota - (ea >> 16)
            ra = np.int64(xa < RANS_L)
            xa = (xa << (16 * ra)) | (np.int64(rwa[min(pa, pend_a - 1)]) & -ra)
            pa += ra
            if xa < RANS_L or pa > pend_a:
                erra = 2
            sta[lane] = xa
            toka[i] = ta
            twa = ta
            if ta < 16:
                outa[i] = ta
            else:
                nba = (ta >> 1) - 5
                if nacca < nba:
                    if qa >= qend_a:
                        erra = 3
                    else:
                        acca |= np.int64(ewa[qa]) << nacca
                        qa += 1
                        nacca += 32
                outa[i] = np.uint32((((ta & 1) | 2) << nba) | (acca & ((np.int64(1) << nba) - 1)))
                acca >>= nba
                nacca -= nba
            xb = stb[lane]
            slotb = xb & (PSCALE - 1)
            tb = np.int64(lut[cbase[csb] + slotb])
            eb = fs[kbase[csb] + tb]
            xb = (eb & 0xFFFF) * (xb >> PBITS) + slotb - (eb >> 16)
            rb = np.int64(xb < RANS_L)
            xb = (xb << (16 * rb)) | (np.int64(rwb[min(pb, pend_b - 1)]) & -rb)
            pb += rb
            if xb < RANS_L or pb > pend_b:
                errb = 2
            stb[lane] = xb
            tokb[i] = tb
            twb = tb
            if tb < 16:
                outb[i] = tb
            else:
                nbb = (tb >> 1) - 5
                if naccb < nbb:
                    if qb >= qend_b:
                        errb = 3
                    else:
                        accb |= np.int64(ewb[qb]) << naccb
                        qb += 1
                        naccb += 32
                outb[i] = np.uint32((((tb & 1) | 2) << nbb) | (accb & ((np.int64(1) << nbb) - 1)))
                accb >>= nbb
                naccb -= nbb
            if erra or errb:
                return erra, errb
        i0 += m
    if pa != pend_a or qa != qend_a or acca != 0:
        erra = 5
    if pb != pend_b or qb != qend_b or accb != 0:
        errb = 5
    for lane in range(NLANES):
        if erra == 0 and sta[lane] != RANS_L:
            erra = 6
        if errb == 0 and stb[lane] != RANS_L:
            errb = 6
    return erra, errb


def _dec_kernel(rw, rofs, rcnt, ew, eofs, ecnt, lut, fs, cbase, kbase, rl, seg_len, toks, out, err):
    n = out.size
    nseg = rofs.size
    for j in prange((nseg + 1) // 2):  # segments in pairs; a last odd or shorter one alone
        s = 2 * j
        a = s * seg_len
        b = min(n, a + seg_len)
        if s + 1 < nseg and min(n, b + seg_len) - b == b - a:
            c = b + seg_len
            ea, eb = _dec_seg_pair(
                rw[rofs[s] : rofs[s] + rcnt[s]], ew[eofs[s] : eofs[s] + ecnt[s]],
                rw[rofs[s + 1] : rofs[s + 1] + rcnt[s + 1]],
                ew[eofs[s + 1] : eofs[s + 1] + ecnt[s + 1]], lut, fs, cbase, kbase, rl,
                toks[a:b], out[a:b], toks[b:c], out[b:c])
            err[s] = ea
            err[s + 1] = eb
            continue
        for t in range(s, min(s + 2, nseg)):
            a = t * seg_len
            b = min(n, a + seg_len)
            err[t] = _dec_seg(rw[rofs[t] : rofs[t] + rcnt[t]], ew[eofs[t] : eofs[t] + ecnt[t]],
                              lut, fs, cbase, kbase, rl, toks[a:b], out[a:b])


_dec_par, _dec_ser = pjit(_dec_kernel)


def merge_contexts(counts: np.ndarray) -> np.ndarray:
    """Table index of each context (a row of ``counts``; ``NCTX`` of them for the neighbour
    contexts, one per level for the level model): adjacent contexts are merged greedily
    (largest gain first, ties to the lowest index) while the estimated size (entropy + table
    bits) drops. Scalar loops in a fixed order: the same choice in every run (the GPU encoder
    calls this too)."""
    table = np.empty(counts.shape[0], np.int64)
    _merge_kernel(np.ascontiguousarray(counts, dtype=np.float64), table)
    return table


@jit
def _table_cost(h):
    """Estimated bits of a table's symbols (ideal code lengths) plus its serialised size."""
    total = 0.0
    m = 0
    for t in range(h.size):
        if h[t] > 0:
            total += h[t]
            m += 1
    bits = 8.0 * (9 + 2 * max(m - 1, 0))
    for t in range(h.size):
        if h[t] > 0:
            bits += h[t] * math.log2(total / h[t])
    return bits


@jit
def _merge_kernel(counts, table):
    n = counts.shape[0]
    hs = counts.copy()
    first = np.arange(n)  # first context of each group
    costs = np.empty(n)
    for j in range(n):
        costs[j] = _table_cost(hs[j])
    deltas = np.empty(max(n - 1, 0))
    for j in range(n - 1):
        deltas[j] = _table_cost(hs[j] + hs[j + 1]) - costs[j] - costs[j + 1]
    m = n
    while m > 1:
        j = 0
        for i in range(1, m - 1):
            if deltas[i] < deltas[j]:
                j = i
        if deltas[j] >= 0:
            break
        hs[j] += hs[j + 1]
        costs[j] = _table_cost(hs[j])
        for i in range(j + 1, m - 1):  # close the gap
            hs[i] = hs[i + 1]
            costs[i] = costs[i + 1]
            first[i] = first[i + 1]
        for i in range(j, m - 2):
            deltas[i] = deltas[i + 1]
        m -= 1
        # only the merges next to the new group change
        for i in (j - 1, j):
            if 0 <= i < m - 1:
                deltas[i] = _table_cost(hs[i] + hs[i + 1]) - costs[i] - costs[i + 1]
    for g in range(m):
        end = first[g + 1] if g + 1 < m else n
        for c in range(first[g], end):
            table[c] = g


def read_directory(buf: np.ndarray, pos: int, count: int, most_words: int, most_extra: int,
                   what: str) -> tuple[np.ndarray, np.ndarray, int, int, int]:
    """The stream directory at byte ``pos`` of a payload (``count`` u32 rANS word counts, then
    ``count`` u32 extra-bit word counts), checked: the words it announces fill the rest of
    the payload exactly (u16 rANS words, a zero u16 after an odd count, then u32 extra
    words), no count above ``most_words`` / ``most_extra``. Returns ``(rcnt, ecnt, offset of
    the rANS words, their number, the extra words' number)``; ``what`` names the streams in
    errors (plural). Raises ``ValueError`` when the payload is corrupt."""
    if buf.size < pos + 8 * count:
        raise ValueError(f"corrupt bigcomp payload: payload too short for {count} {what}")
    d = buf[pos : pos + 8 * count].view("<u4").astype(np.int64)
    rcnt, ecnt = d[:count], d[count:]
    pos += 8 * count
    nr, ne = int(rcnt.sum()), int(ecnt.sum())
    rpad = 2 * (nr % 2)
    if buf.size != pos + 2 * nr + rpad + 4 * ne:
        raise ValueError("corrupt bigcomp payload: size mismatch")
    if (rcnt > most_words).any() or (ecnt > most_extra).any():
        raise ValueError(f"corrupt bigcomp payload: bad {what[:-1]} sizes")
    if buf[pos + 2 * nr : pos + 2 * nr + rpad].any():
        raise ValueError("corrupt bigcomp payload: nonzero padding")
    return rcnt, ecnt, pos, nr, ne


def tables_to_bytes(table: np.ndarray, freqs: np.ndarray) -> bytes:
    """Serialise ``ntab``, the context -> table map and the tables: per table a 9-byte token
    bitmask and the u16 frequencies of its tokens except the last (implied)."""
    return bytes([freqs.shape[0]]) + table.astype(np.uint8).tobytes() + freqs_to_bytes(freqs)


def freqs_to_bytes(freqs: np.ndarray) -> bytes:
    """Per table (row of ``freqs``) a 9-byte token bitmask and the u16 frequencies of its
    present tokens except the last (implied: the row sums to ``PSCALE``)."""
    parts = []
    for f in freqs:
        present = f > 0
        parts.append(np.packbits(present, bitorder="little").tobytes())
        parts.append(f[present][:-1].astype("<u2").tobytes())
    return b"".join(parts)


def tables_from_bytes(buf: np.ndarray, pos: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Parse :func:`tables_to_bytes` output at ``buf[pos:]``; returns (table, freqs, end)."""
    if pos + 1 + NCTX > buf.size:
        raise ValueError("corrupt bigcomp payload: truncated frequency tables")
    ntab = int(buf[pos])
    table = buf[pos + 1 : pos + 1 + NCTX].astype(np.int64)
    pos += 1 + NCTX
    if not 1 <= ntab <= NCTX or (table >= ntab).any():
        raise ValueError("corrupt bigcomp payload: bad context map")
    freqs, pos = freqs_from_bytes(buf, pos, ntab)
    return table, freqs, pos


def freqs_from_bytes(buf: np.ndarray, pos: int, ntab: int) -> tuple[np.ndarray, int]:
    """Parse ``ntab`` tables of :func:`freqs_to_bytes` at ``buf[pos:]``; returns (freqs, end)."""
    freqs = np.zeros((ntab, NTOK), np.int64)
    for r in range(ntab):
        if pos + 9 > buf.size:
            raise ValueError("corrupt bigcomp payload: truncated frequency tables")
        present = np.unpackbits(buf[pos : pos + 9], bitorder="little").astype(bool)
        pos += 9
        m = int(present.sum())
        if m == 0 or present[NTOK:].any():
            raise ValueError("corrupt bigcomp payload: bad token mask")
        if pos + 2 * (m - 1) > buf.size:
            raise ValueError("corrupt bigcomp payload: truncated frequency tables")
        f = buf[pos : pos + 2 * (m - 1)].view("<u2").astype(np.int64)
        pos += 2 * (m - 1)
        last = PSCALE - int(f.sum())
        if (f < 1).any() or last < 1:
            raise ValueError("corrupt bigcomp payload: bad frequencies")
        freqs[r, present[:NTOK]] = np.append(f, last)
    return freqs, pos
