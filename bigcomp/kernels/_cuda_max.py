"""GPU kernels (numba.cuda) of the ``max`` coder: hybrid-uint tokens, contexts, 4-lane rANS.

Payload format: :mod:`bigcomp.kernels._coders`. The frequency tables are built on the host by
the CPU's own functions (:func:`~bigcomp.kernels._rans.merge_contexts`,
:func:`~bigcomp.kernels._rans.normalize`) from a histogram made on the device, so they are the
CPU's tables.

Encode
    1. one thread per symbol: token, context (recomputed from the neighbours' symbols: the
       context rule only reads tokens, which are functions of the symbols), table key, number
       of extra bits; a shared-memory histogram of the keys per block, merged with atomics;
    2. extra bits: exclusive prefix sum of the bit counts gives every symbol's bit position in
       its segment; each symbol ORs its bits into the zeroed word array (atomics, a field may
       straddle two words);
    3. rANS: one thread per (segment, lane) runs its lane backwards exactly as the CPU and marks
       the symbols where it emitted a 16-bit word; a prefix sum of the marks places the words
       (the stream stores them in ascending symbol order after the 8 words of final states);
    4. the host joins header, directory and the two streams.
Decode
    one thread per segment (the lanes share one word stream, so a segment is sequential), the
    CPU's ``_dec_seg`` loop. Parallelism is the number of segments: the CPU's encoder makes
    segments of ~2**17 symbols; ``rows_per_segment`` lets a GPU encoder make smaller ones.
"""

from __future__ import annotations

import numpy as np

from . import _rans as R
from ._cuda_common import (
    TPB,
    cuda,
    device_function,
    device_kernel,
    empty,
    exclusive_scan,
    launch,
    scalar,
    to_device,
    to_host,
    zeros,
)
from ._cuda_fast import bitlen

__all__ = ["decode_max", "default_rows_per_segment", "encode_max"]

NKEYS = R.NCTX * R.NTOK
_KBASE = np.ascontiguousarray(R.CMAP * R.NTOK, dtype=np.int64)
_L = R.RANS_L


def default_rows_per_segment(row_length: int) -> int:
    """The CPU encoder's choice (needed for byte-identical payloads)."""
    return max(1, R.SEG_TARGET // int(row_length))


# ----------------------------------------------------------------------------------- encode
@device_kernel
def _any_diff(sym, flags):
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    v0 = sym[0]
    diff = 0
    for i in range(start, sym.size, step):
        if sym[i] != v0:
            diff = 1
    if diff:
        cuda.atomic.max(flags, 0, 1)


@device_kernel
def _tokens(sym, rl, seg_len, kbase, keys, nbits, hist):
    """Token key and extra-bit count of every symbol, histogram of the keys."""
    h = cuda.shared.array(NKEYS, np.int32)
    for j in range(cuda.threadIdx.x, NKEYS, cuda.blockDim.x):
        h[j] = 0
    cuda.syncthreads()
    n = sym.size
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, n, step):
        a = (i // seg_len) * seg_len
        j = i - a
        c = j % rl
        t, nb = token_bits(np.int64(sym[i]))
        if j < rl:  # first row of the segment
            cs = np.int64(0)
            if c > 0:
                cs = 4 * _token(np.int64(sym[i - 1]))
        else:
            tn = _token(np.int64(sym[i - rl]))
            if c > 0:
                tw = _token(np.int64(sym[i - 1]))
                tnw = _token(np.int64(sym[i - rl - 1]))
            else:
                tw = tn
                tnw = tn
            tne = tn
            if c < rl - 1:
                tne = _token(np.int64(sym[i - rl + 1]))
            cs = tw + tn + tnw + tne
        key = kbase[cs] + t
        keys[i] = np.uint16(key)
        nbits[i] = nb
        cuda.atomic.add(h, key, np.int32(1))
    if start == 0:
        nbits[n] = 0
    cuda.syncthreads()
    for j in range(cuda.threadIdx.x, NKEYS, cuda.blockDim.x):
        if h[j]:
            cuda.atomic.add(hist, j, np.int64(h[j]))


@device_function
def token_bits(v):
    """Token of the symbol ``v`` (HybridUint 4-1-0, as the CPU's) and its extra-bit count."""
    if v < 16:
        return v, np.int64(0)
    nb = bitlen(v) - 2
    return 2 * nb + 10 + ((v >> nb) & 1), nb


@device_function
def _token(v):
    return token_bits(v)[0]


@device_kernel
def _seg_counts(pos, seg_len, n, per_word, fixed, cnt):
    """``cnt[s] = fixed + ceil((pos[b] - pos[a]) / per_word)`` per segment ``[a, b)``; trailing
    zero entry for the scan."""
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    nseg = cnt.size - 1
    for s in range(start, nseg, step):
        a = s * seg_len
        b = min(n, a + seg_len)
        d = pos[b] - pos[a]
        cnt[s] = fixed + (d + per_word - 1) // per_word
    if start == 0:
        cnt[nseg] = 0


@device_kernel
def _scatter_extra(sym, nbits, bpos, seg_len, eofs, ext):
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, sym.size, step):
        nb = nbits[i]
        if nb == 0:
            continue
        s = i // seg_len
        bit = bpos[i] - bpos[s * seg_len]
        w = eofs[s] + bit // 32
        off = bit % 32
        val = np.int64(sym[i]) & ((np.int64(1) << nb) - 1)
        cuda.atomic.or_(ext, w, np.uint32((val << off) & 0xFFFFFFFF))
        if off + nb > 32:
            cuda.atomic.or_(ext, w + 1, np.uint32(val >> (32 - off)))


@device_kernel
def _rans_lanes(keys, seg_len, xmax, rcp, shift, bias, cmpl, emit, word, states):
    """One thread per (segment, lane): the CPU's backward rANS pass (``_rans._enc_seg2``)
    restricted to one lane, with the CPU's tables: ``x // f`` as a multiply-high by a
    reciprocal and a shift (a 64-bit division is a long software routine on a GPU)."""
    n = keys.size
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for g in range(start, states.size, step):
        s = g // 4
        lane = g - 4 * s
        a = s * seg_len
        m = min(n, a + seg_len) - a
        x = np.uint64(_L)
        if lane < m:
            j = lane + ((m - 1 - lane) // 4) * 4  # the lane's last symbol
            while j >= 0:
                i = a + j
                key = keys[i]
                if x >= xmax[key]:
                    emit[i] = 1
                    word[i] = np.uint16(x & np.uint64(0xFFFF))
                    x >>= np.uint64(16)
                else:
                    emit[i] = 0
                q = (x + ((x * rcp[key]) >> np.uint64(32))) >> shift[key]
                x = x + bias[key] + q * cmpl[key]
                j -= 4
        states[g] = np.int64(x)
    if start == 0:
        emit[n] = 0


@device_kernel
def _place_words(emit, word, epos, seg_len, rofs, rans):
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, emit.size - 1, step):
        if emit[i]:
            s = i // seg_len
            rans[rofs[s] + 8 + epos[i] - epos[s * seg_len]] = word[i]


@device_kernel
def _place_states(states, rofs, rans):
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for g in range(start, states.size, step):
        s = g // 4
        lane = g - 4 * s
        x = states[g]
        rans[rofs[s] + 2 * lane] = np.uint16(x & 0xFFFF)
        rans[rofs[s] + 2 * lane + 1] = np.uint16((x >> 16) & 0xFFFF)


def encode_max(sym, row_length: int, rows_per_segment: int | None = None) -> bytes:
    """Payload of the ``max`` coder for the 1-D uint32 device array ``sym``.

    ``rows_per_segment=None`` makes the CPU encoder's segments (the payload is then byte for
    byte the CPU's); smaller values give more parallel decoding, and any CPU decoder reads them.
    """
    n = int(sym.size)
    rl = int(row_length)
    if rl < 1:
        raise ValueError("row_length must be >= 1")
    if n == 0:
        return b""
    flags = zeros(1, np.int64)
    launch(_any_diff, n)(sym, flags)
    if not scalar(flags, 0):
        return b"\x00" + np.array([scalar(sym, 0)], "<u4").tobytes()
    rows = default_rows_per_segment(rl) if rows_per_segment is None else int(rows_per_segment)
    if rows < 1:
        raise ValueError("rows_per_segment must be >= 1")
    seg_len = min(rows * rl, n)
    nseg = -(-n // seg_len)

    # 1. tokens, keys, histogram
    keys = empty(n, np.uint16)
    nbits = empty(n + 1, np.int64)
    hist = zeros(NKEYS, np.int64)
    launch(_tokens, n)(sym, rl, seg_len, to_device(_KBASE), keys, nbits, hist)
    counts = to_host(hist).reshape(R.NCTX, R.NTOK)
    table = R.merge_contexts(counts)
    tcounts = np.zeros((int(table.max()) + 1, R.NTOK), np.int64)
    np.add.at(tcounts, table, counts)
    freqs = np.zeros_like(tcounts)
    R.normalize(tcounts, freqs)
    tabs = [np.zeros(R.NCTX * R.NTOK, np.uint64) for _ in range(5)]  # the CPU encoder's
    R.enc_tables(freqs[table], *tabs)
    xmax, rcp, shift, bias, cmpl = (to_device(t) for t in tabs)

    # 2. extra bits
    bpos = exclusive_scan(nbits)
    ecnt = empty(nseg + 1, np.int64)
    launch(_seg_counts, nseg)(bpos, seg_len, n, 32, 0, ecnt)
    eofs = exclusive_scan(ecnt)
    ne = scalar(eofs, nseg)
    ext = zeros(max(ne, 1), np.uint32)
    launch(_scatter_extra, n)(sym, nbits, bpos, seg_len, eofs, ext)

    # 3. rANS lanes, then word placement
    emit = empty(n + 1, np.int64)
    word = empty(n, np.uint16)
    states = empty(4 * nseg, np.int64)
    launch(_rans_lanes, 4 * nseg)(keys, seg_len, xmax, rcp, shift, bias, cmpl, emit, word,
                                  states)
    epos = exclusive_scan(emit)
    rcnt = empty(nseg + 1, np.int64)
    launch(_seg_counts, nseg)(epos, seg_len, n, 1, 2 * R.NLANES, rcnt)
    rofs = exclusive_scan(rcnt)
    nr = scalar(rofs, nseg)
    rans = empty(nr, np.uint16)
    launch(_place_words, n)(emit, word, epos, seg_len, rofs, rans)
    launch(_place_states, 4 * nseg)(states, rofs, rans)

    # 4. assemble on the host
    head = b"\x01" + np.array([rows], "<u4").tobytes() + R.tables_to_bytes(table, freqs)
    head += bytes(-len(head) % 4)
    directory = np.concatenate([to_host(rcnt)[:nseg], to_host(ecnt)[:nseg]]).astype("<u4")
    parts = [head, directory.tobytes(), to_host(rans).astype("<u2").tobytes()]
    if nr % 2:
        parts.append(bytes(2))
    if ne:
        parts.append(to_host(ext)[:ne].astype("<u4").tobytes())
    return b"".join(parts)


# ----------------------------------------------------------------------------------- decode
@device_kernel
def _decode_segments(
    rw, rofs, rcnt, ew, eofs, ecnt, lut, fs, cbase, kbase, rl, seg_len, toks, out, err
):
    """One thread per segment: the CPU's ``_dec_seg``."""
    n = out.size
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for s in range(start, rofs.size, step):
        a = s * seg_len
        b = min(n, a + seg_len)
        p = rofs[s]
        pend = p + rcnt[s]
        q = eofs[s]
        qend = q + ecnt[s]
        code = 0
        if pend - p < 8:
            err[s] = 1
            continue
        x0 = np.int64(rw[p]) | (np.int64(rw[p + 1]) << 16)
        x1 = np.int64(rw[p + 2]) | (np.int64(rw[p + 3]) << 16)
        x2 = np.int64(rw[p + 4]) | (np.int64(rw[p + 5]) << 16)
        x3 = np.int64(rw[p + 6]) | (np.int64(rw[p + 7]) << 16)
        p += 8
        acc = np.int64(0)
        nacc = np.int64(0)
        i0 = a
        while i0 < b and code == 0:
            m = min(rl, b - i0)
            first = i0 == a
            tn = np.int64(0)
            if not first:
                tn = np.int64(toks[i0 - rl])
            tw = tn
            tnw = tn
            for c in range(m):
                i = i0 + c
                if first:
                    cs = 4 * tw
                else:
                    tne = tn
                    if c < rl - 1:
                        tne = np.int64(toks[i - rl + 1])
                    cs = tw + tn + tnw + tne
                    tnw = tn
                    tn = tne
                lane = (i - a) & 3
                if lane == 0:
                    x = x0
                elif lane == 1:
                    x = x1
                elif lane == 2:
                    x = x2
                else:
                    x = x3
                slot = x & 4095
                t = np.int64(lut[cbase[cs] + slot])
                e = fs[kbase[cs] + t]
                x = (e & 0xFFFF) * (x >> 12) + slot - (e >> 16)
                if x < _L:
                    if p >= pend:
                        code = 2
                        break
                    x = (x << 16) | np.int64(rw[p])
                    p += 1
                    if x < _L:
                        code = 2
                        break
                if lane == 0:
                    x0 = x
                elif lane == 1:
                    x1 = x
                elif lane == 2:
                    x2 = x
                else:
                    x3 = x
                toks[i] = np.uint8(t)
                tw = t
                if t < 16:
                    out[i] = np.uint32(t)
                else:
                    nb = (t >> 1) - 5
                    if nacc < nb:
                        if q >= qend:
                            code = 3
                            break
                        acc |= np.int64(ew[q]) << nacc
                        q += 1
                        nacc += 32
                    v = (((t & 1) | 2) << nb) | (acc & ((np.int64(1) << nb) - 1))
                    out[i] = np.uint32(v)
                    acc >>= nb
                    nacc -= nb
            i0 += m
        if code == 0 and (p != pend or q != qend or acc != 0):
            code = 5
        if code == 0 and (x0 != _L or x1 != _L or x2 != _L or x3 != _L):
            code = 6
        err[s] = code


def decode_max(payload: np.ndarray, n: int, row_length: int, out) -> None:
    """Decode a host ``max`` payload (uint8 array) of ``n`` symbols into the device array
    ``out``; raises ``ValueError`` when it is corrupt (the CPU decoder's checks)."""
    from ._coders import _DEC_ERRORS, _corrupt, parse_max

    buf = payload
    rl = int(row_length)
    if n == 0:
        if buf.size:
            raise _corrupt("nonempty payload for n=0")
        return
    lay = parse_max(buf, n, rl)
    if lay.constant is not None:
        from ._cuda_common import fill

        fill(out, np.uint32(lay.constant))
        return
    rw, ew, nseg, ctab = lay.rw, lay.ew, lay.nseg, lay.ctab
    toks = empty(n, np.uint8)
    err = zeros(nseg, np.int64)
    launch(_decode_segments, nseg, tpb=min(TPB, 64))(
        to_device(rw if rw.size else np.zeros(1, np.uint16)),
        to_device(lay.rofs),
        to_device(lay.rcnt),
        to_device(ew if ew.size else np.zeros(1, np.uint32)),
        to_device(lay.eofs),
        to_device(lay.ecnt),
        to_device(lay.lut),
        to_device(lay.fs),
        to_device((ctab * R.PSCALE).astype(np.int64)),
        to_device((ctab * R.NTOK).astype(np.int64)),
        rl,
        lay.seg_len,
        toks,
        out,
        err,
    )
    codes = to_host(err)
    if codes.any():
        raise _corrupt(_DEC_ERRORS[int(codes.max())])
