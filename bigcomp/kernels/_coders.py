"""Entropy coders for arrays of non-negative integers (zig-zagged prediction residuals).

Two coders, both for 1-D ``uint32`` symbol arrays whose length ``n`` the caller stores. All
multi-byte fields are little-endian; ``n == 0`` gives an empty payload for both coders.

``fast`` (cuSZp-style fixed-length blocks)
------------------------------------------
The symbols are cut into ``B = ceil(n / 32)`` blocks of 32 (the last one zero-padded). Payload::

    u8  width[B]          bit length (0..32) of the largest symbol of each block
    u8  zero[pad]         zero padding up to a multiple of 4 bytes
    u32 words[...]        block k: width[k] words (4 * width[k] bytes) starting at word
                          sum(width[:k]); its 32 symbols are packed LSB-first, symbol j in bits
                          [j*w, (j+1)*w) of the block's little-endian bit string

so ``len == pad4(B) + 4 * sum(width)`` and every block starts at a word boundary.

``max`` (context-modelled rANS)
-------------------------------
*Tokens* (JPEG XL HybridUint 4-1-1): ``v < 16`` is token ``v``; otherwise with ``L = bitlen(v)``
the token is ``16 + 2 (L - 5) + ((v >> (L - 2)) & 1)`` (< 72) and the ``L - 2`` low bits of ``v``
are raw *extra bits*.

*Segments*: runs of ``rows_per_segment * row_length`` symbols (the last one shorter), coded
independently. *Context* of symbol ``i`` in column ``c`` and segment row ``r``, from the tokens
``tW, tN, tNW, tNE`` of its neighbours: ``S = tW + tN + tNW + tNE``, where in rows ``r > 0`` a
missing ``W``/``NW`` (``c == 0``) or ``NE`` (``c == row_length - 1``) is replaced by ``tN``; in row
``r == 0`` ``S = 4 tW`` (``S = 0`` for ``c == 0``). ``ctx = #{t in (3, 6, 9, 12, 16, 21, 28):
t <= S}`` (8 contexts).

*rANS* (ryg_rans style): 32-bit states, ``L = 2**16``, 16-bit words, 12-bit frequencies
``f = f[table[ctx], token]`` (each table sums to 4096), ``start`` = sum of the frequencies of the
smaller tokens of the table. Four states per segment; symbol ``j`` of a segment (``j = i -
segment start``) uses lane ``j % 4``. The encoder starts every lane at ``L`` and processes the
segment's symbols backwards: ``if x >= f << 20: emit(x & 0xFFFF); x >>= 16``, then ``x = ((x //
f) << 12) + x % f + start``; finally it emits the lanes 3..0, each high word then low word.
Emitted words are stored in reverse order of emission, so the decoder reads forwards: lanes
0..3 (low word, high word), then per symbol ``slot = x & 4095``, token ``t`` with ``start <=
slot < start + f``, ``x = f * (x >> 12) + slot - start``, ``if x < L: x = x << 16 | next word``.
At the end every lane is ``L`` again and every word is consumed.

*Extra bits*: per segment, in symbol order, appended LSB-first into u32 words (the last partly
used word zero-filled).

Payload::

    u8  mode              0: all symbols equal -> u32 value follows, end (5 bytes)
                          1: rANS, the rest of this list follows
                          (2: the level model of chunks with flag bit 2, a payload of
                          prediction and coding together: :mod:`bigcomp.kernels._level`)
    u32 rows_per_segment  (>= 1)
    u8  ntab              number of frequency tables (1..8)
    u8  table[8]          table index (< ntab) used by each context
    per table:
        u8  token_mask[9]  bit t (byte t // 8, bit t % 8) set: f[t] >= 1
        u16 freq[m - 1]    frequencies of the m present tokens in ascending order, the last
                           omitted (= 4096 - sum, must be >= 1)
    u8  zero[pad]         to a multiple of 4 bytes
    u32 rans_words[S]     per segment, number of u16 rANS words (>= 8)
    u32 extra_words[S]    per segment, number of u32 extra-bit words
    u16 rans[...]         the segments' rANS streams, concatenated; one zero u16 if the count is odd
    u32 extra[...]        the segments' extra-bit streams, concatenated

with ``S = ceil(n / (rows_per_segment * row_length))``. Frequencies are indexed ``f[table[ctx],
token]``. Encoder choices (not needed to decode): ``rows_per_segment = max(1, 2**17 //
row_length)``; adjacent contexts share a table when that shrinks the estimated size
(:func:`bigcomp.kernels._rans.merge_contexts`); counts are normalised by
:func:`bigcomp.kernels._rans.normalize`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import prange

from . import _rans as R
from ._numba import jit, pjit, readonly, use_parallel
from ._scratch import scratch

__all__ = ["decode_fast", "decode_max", "encode_fast", "encode_max", "unzigzag", "zigzag"]


def zigzag(v) -> np.ndarray:
    """Signed integers as the unsigned symbols the coders take: 0, -1, 1, -2 -> 0, 1, 2, 3
    (uint64; ``.astype(np.uint32)`` where they fit)."""
    v = np.asarray(v).astype(np.int64)
    return ((v << 1) ^ (v >> 63)).astype(np.uint64)


def unzigzag(u) -> np.ndarray:
    """Inverse of :func:`zigzag` (int64)."""
    u = np.asarray(u).astype(np.uint64)
    return (u >> np.uint64(1)).astype(np.int64) ^ -(u & np.uint64(1)).astype(np.int64)


def _corrupt(what: str) -> ValueError:
    return ValueError(f"corrupt bigcomp payload: {what}")


def _as_u8(payload) -> np.ndarray:
    if isinstance(payload, np.ndarray):
        return np.ascontiguousarray(payload).reshape(-1).view(np.uint8)
    return np.frombuffer(payload, dtype=np.uint8)


def _aligned(a: np.ndarray) -> np.ndarray:
    return a if a.ctypes.data % a.itemsize == 0 else a.copy()


def _check_symbols(symbols: np.ndarray) -> np.ndarray:
    symbols = np.asarray(symbols)
    if symbols.dtype != np.uint32 or symbols.ndim != 1:
        raise TypeError("symbols must be a 1-D uint32 array")
    return np.ascontiguousarray(symbols)


# ------------------------------------------------------------------------------------ fast
_GROUP = 2048  # blocks per parallel work item


@jit
def _widths_range(sym, widths):
    n = sym.size
    for k in range(widths.size):
        o = np.uint32(0)
        if 32 * k + 32 <= n:  # constant trip count: unrolled
            for j in range(32 * k, 32 * k + 32):
                o |= sym[j]
        else:
            for j in range(32 * k, n):
                o |= sym[j]
        widths[k] = R._bitlen(np.int64(o))


@jit
def _pack_range(sym, widths, offs, words):
    n = sym.size
    for k in range(widths.size):
        b = np.int64(widths[k])
        if b == 0:
            continue
        w = offs[k]
        base = 32 * k
        acc = np.int64(0)
        nacc = 0
        if base + 32 <= n and b <= 8:  # 4 symbols (<= 32 bits) at a time
            for j in range(base, base + 32, 4):
                v = (np.int64(sym[j]) | (np.int64(sym[j + 1]) << b) | (np.int64(sym[j + 2]) << 2 * b)
                     | (np.int64(sym[j + 3]) << 3 * b))
                acc |= v << nacc
                nacc += 4 * b
                if nacc >= 32:
                    words[w] = np.uint32(acc & 0xFFFFFFFF)
                    w += 1
                    acc >>= 32
                    nacc -= 32
        elif base + 32 <= n and b <= 16:  # 2 symbols at a time
            for j in range(base, base + 32, 2):
                acc |= (np.int64(sym[j]) | (np.int64(sym[j + 1]) << b)) << nacc
                nacc += 2 * b
                if nacc >= 32:
                    words[w] = np.uint32(acc & 0xFFFFFFFF)
                    w += 1
                    acc >>= 32
                    nacc -= 32
        elif base + 32 <= n:
            for j in range(base, base + 32):
                acc |= np.int64(sym[j]) << nacc
                nacc += b
                if nacc >= 32:
                    words[w] = np.uint32(acc & 0xFFFFFFFF)
                    w += 1
                    acc >>= 32
                    nacc -= 32
        else:  # last block, zero-padded
            for j in range(base, base + 32):
                if j < n:
                    acc |= np.int64(sym[j]) << nacc
                nacc += b
                if nacc >= 32:
                    words[w] = np.uint32(acc & 0xFFFFFFFF)
                    w += 1
                    acc >>= 32
                    nacc -= 32


@jit
def _offsets_range(widths, offs):
    """Exclusive prefix sum of ``widths`` into ``offs``; returns the total."""
    total = np.int64(0)
    for k in range(widths.size):
        offs[k] = total
        total += widths[k]
    return total


@jit
def _unpack_range(widths, offs, words, out):
    """Returns 1 if the padding of the last block is not zero."""
    n = out.size
    for k in range(widths.size):
        b = np.int64(widths[k])
        base = 32 * k
        m = min(32, n - base)
        mask = (np.int64(1) << b) - 1
        w = offs[k]
        acc = np.int64(0)
        nacc = 0
        for j in range(32):
            if nacc < b:
                acc |= np.int64(words[w]) << nacc
                w += 1
                nacc += 32
            v = acc & mask
            if j < m:
                out[base + j] = np.uint32(v)
            elif v != 0:
                return 1
            acc >>= b
            nacc -= b
    return 0


# The work items get array views starting at index 0 (numba then drops its negative-index checks).
def _fast_widths(sym, widths):
    for g in prange(-(-widths.size // _GROUP)):
        k0, k1 = g * _GROUP, min(widths.size, (g + 1) * _GROUP)
        _widths_range(sym[32 * k0 : 32 * k1], widths[k0:k1])


def _fast_pack(sym, widths, offs, words):
    for g in prange(-(-widths.size // _GROUP)):
        k0, k1 = g * _GROUP, min(widths.size, (g + 1) * _GROUP)
        _pack_range(sym[32 * k0 : 32 * k1], widths[k0:k1], offs[k0:k1], words)


def _fast_unpack(widths, offs, words, out, err):
    for g in prange(-(-widths.size // _GROUP)):
        k0, k1 = g * _GROUP, min(widths.size, (g + 1) * _GROUP)
        err[g] = _unpack_range(widths[k0:k1], offs[k0:k1], words, out[32 * k0 : 32 * k1])


_widths_p, _widths_s = pjit(_fast_widths)
_pack_p, _pack_s = pjit(_fast_pack)
_unpack_p, _unpack_s = pjit(_fast_unpack)


def _offsets(widths: np.ndarray) -> np.ndarray:
    offs = np.empty(widths.size, np.int64)
    if widths.size:
        offs[0] = 0
        np.cumsum(widths[:-1], dtype=np.int64, out=offs[1:])
    return offs


def encode_fast(symbols: np.ndarray, *, parallel: bool | None = None) -> bytes:
    """Encode symbols with the ``fast`` coder (bit-packed blocks of 32).

    Parameters
    ----------
    symbols : numpy.ndarray
        1-D C-contiguous ``uint32`` array.

    Returns
    -------
    bytes
        Payload, format in the module docstring; it does not record ``len(symbols)``.
    """
    sym = _check_symbols(symbols)
    par = use_parallel() if parallel is None else parallel
    nblk = -(-sym.size // 32)
    head = -(-nblk // 4) * 4
    widths = np.empty(nblk, np.uint8)
    (_widths_p if par else _widths_s)(sym, widths)
    offs = _offsets(widths)
    nwords = int(offs[-1]) + int(widths[-1]) if nblk else 0
    out = np.empty(head + 4 * nwords, np.uint8)
    out[:nblk] = widths
    out[nblk:head] = 0
    (_pack_p if par else _pack_s)(sym, widths, offs, out[head:].view(np.uint32))
    return out.tobytes()


def fast_layout(payload, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Check a ``fast`` payload of ``n`` symbols against the sizes it announces; return its
    block widths (uint8) and words (uint32). Raises ``ValueError`` when it is inconsistent."""
    buf = _as_u8(payload)
    n = int(n)
    if n < 0:
        raise ValueError("n must be >= 0")
    nblk = -(-n // 32)
    head = -(-nblk // 4) * 4
    if buf.size < head:
        raise _corrupt("fast payload shorter than its block widths")
    widths = buf[:nblk]
    if nblk and int(widths.max()) > 32:
        raise _corrupt("fast block width > 32")
    if buf[nblk:head].any():
        raise _corrupt("nonzero padding")
    nwords = int(widths.sum(dtype=np.int64))
    if buf.size != head + 4 * nwords:
        raise _corrupt(f"fast payload has {buf.size} bytes, expected {head + 4 * nwords} for n={n}")
    return readonly(widths), readonly(_aligned(buf[head:].view(np.uint32)))


def decode_fast(
    payload: bytes | memoryview | np.ndarray, n: int, *, parallel: bool | None = None
) -> np.ndarray:
    """Decode a payload of :func:`encode_fast`.

    Parameters
    ----------
    payload : bytes, memoryview or numpy.ndarray
        The encoded bytes (an array is read as its raw bytes).
    n : int
        Number of symbols that were encoded.

    Returns
    -------
    numpy.ndarray
        ``uint32`` array of length ``n``.

    Raises
    ------
    ValueError
        If the payload is inconsistent with ``n`` or detectably corrupt.
    """
    widths, words = fast_layout(payload, n)
    n = int(n)
    nblk = widths.size
    offs = _offsets(widths)
    out = np.empty(n, np.uint32)
    err = np.zeros(-(-nblk // _GROUP), np.int64)
    par = use_parallel() if parallel is None else parallel
    (_unpack_p if par else _unpack_s)(widths, offs, words, out, err)
    if err.any():
        raise _corrupt("nonzero padding in the last block")
    return out


# ------------------------------------------------------------------------------------- max
def encode_max(
    symbols: np.ndarray, row_length: int, *, parallel: bool | None = None
) -> bytes:
    """Encode symbols with the ``max`` coder (context-modelled rANS of hybrid-integer tokens).

    Parameters
    ----------
    symbols : numpy.ndarray
        1-D C-contiguous ``uint32`` array (a flattened image with rows of ``row_length``).
    row_length : int
        Row length (>= 1) defining the west/north neighbours used as context.

    Returns
    -------
    bytes
        Payload, format in the module docstring; it does not record ``len(symbols)``.
    """
    sym = _check_symbols(symbols)
    rl = int(row_length)
    if rl < 1:
        raise ValueError("row_length must be >= 1")
    n = sym.size
    if n == 0:
        return b""
    if R.is_constant(sym):
        return b"\x00" + np.array([sym[0]], "<u4").tobytes()
    par = use_parallel() if parallel is None else parallel
    rows = max(1, R.SEG_TARGET // rl)
    seg_len = min(rows * rl, n)
    nseg = -(-n // seg_len)
    # intermediates in per-thread scratch: fresh arrays would cost a page fault per 4 KiB
    toks = scratch("max_tokens", n, np.uint8)
    keys = scratch("max_keys", n, np.uint16)
    hist = np.zeros((nseg, R.NCTX * R.NTOK), np.int64)
    ext = scratch("max_extra", n + nseg, np.uint32)
    ext_cnt = np.empty(nseg, np.int64)
    (R._enc_pass1_par if par else R._enc_pass1_ser)(sym, rl, seg_len, toks, keys, hist, ext, ext_cnt)
    counts = hist.sum(axis=0).reshape(R.NCTX, R.NTOK)
    table = R.merge_contexts(counts)
    tcounts = np.zeros((int(table.max()) + 1, R.NTOK), np.int64)
    np.add.at(tcounts, table, counts)
    freqs = np.zeros_like(tcounts)
    R.normalize(tcounts, freqs)
    tabs = [np.zeros(R.NCTX * R.NTOK, np.uint64) for _ in range(5)]
    R.enc_tables(freqs[table], *tabs)
    rbuf = scratch("max_rans", n + 2 * R.NLANES * nseg, np.uint16)
    rstart = np.empty(nseg, np.int64)
    rcnt = np.empty(nseg, np.int64)
    (R._enc_pass2_par if par else R._enc_pass2_ser)(keys, seg_len, *tabs, rbuf, rstart, rcnt)
    head = b"\x01" + np.array([rows], "<u4").tobytes() + R.tables_to_bytes(table, freqs)
    head += bytes(-len(head) % 4)
    directory = np.concatenate([rcnt, ext_cnt]).astype("<u4").tobytes()
    parts = [head, directory]
    parts += [rbuf[rstart[s] : rstart[s] + rcnt[s]] for s in range(nseg)]
    if int(rcnt.sum()) % 2:
        parts.append(bytes(2))
    parts += [ext[s * seg_len + s : s * seg_len + s + ext_cnt[s]] for s in range(nseg)]
    return b"".join(parts)


_DEC_ERRORS = {
    1: "rANS stream shorter than its initial states",
    2: "rANS stream exhausted or invalid rANS state",
    3: "extra-bit stream exhausted",
    5: "segment streams not fully consumed",
    6: "final rANS state mismatch",
}


def decode_max(
    payload: bytes | memoryview | np.ndarray, n: int, row_length: int, *,
    parallel: bool | None = None, out: np.ndarray | None = None,
) -> np.ndarray:
    """Decode a payload of :func:`encode_max`.

    Parameters
    ----------
    payload : bytes, memoryview or numpy.ndarray
        The encoded bytes (an array is read as its raw bytes).
    n : int
        Number of symbols that were encoded.
    row_length : int
        The ``row_length`` given to :func:`encode_max`.
    out : numpy.ndarray or callable, optional
        1-D ``uint32`` array of length ``n`` to decode into, or a function of ``n`` returning
        one (called once the payload has been checked).

    Returns
    -------
    numpy.ndarray
        ``uint32`` array of length ``n``.

    Raises
    ------
    ValueError
        If the payload is inconsistent with ``n`` or detectably corrupt.
    """
    buf = _as_u8(payload)
    n, rl = int(n), int(row_length)
    if n < 0 or rl < 1:
        raise ValueError("n must be >= 0 and row_length >= 1")
    if n == 0:
        if buf.size:
            raise _corrupt("nonempty payload for n=0")
        return np.empty(0, np.uint32)
    lay = parse_max(buf, n, rl)
    # allocated only now that the payload's sizes are consistent with n
    out = np.empty(n, np.uint32) if out is None else out(n) if callable(out) else out
    if lay.constant is not None:
        out[...] = lay.constant
        return out
    toks = scratch("max_tokens", n, np.uint8)
    err = np.zeros(lay.nseg, np.int64)
    par = use_parallel() if parallel is None else parallel
    kernel = R._dec_par if par else R._dec_ser
    kernel(lay.rw, lay.rofs, lay.rcnt, lay.ew, lay.eofs, lay.ecnt, lay.lut, lay.fs,
           lay.ctab * R.PSCALE, lay.ctab * R.NTOK, rl, lay.seg_len, toks, out, err)
    if err.any():
        raise _corrupt(_DEC_ERRORS[int(err.max())])
    return out


class MaxLayout(NamedTuple):
    """A validated ``max`` payload, ready for a segment decoder (CPU or GPU)."""

    constant: int | None  # all symbols equal (mode 0): the value; the rest is unset
    seg_len: int = 0
    nseg: int = 0
    rw: np.ndarray | None = None  # rANS words (uint16), all segments
    rofs: np.ndarray | None = None  # per segment: first rANS word, count
    rcnt: np.ndarray | None = None
    ew: np.ndarray | None = None  # extra-bit words (uint32), all segments
    eofs: np.ndarray | None = None
    ecnt: np.ndarray | None = None
    lut: np.ndarray | None = None  # decoding tables (slot -> token, frequencies/starts)
    fs: np.ndarray | None = None
    ctab: np.ndarray | None = None  # table index of each context


def parse_max(buf: np.ndarray, n: int, rl: int) -> MaxLayout:
    """Check a ``max`` payload of ``n > 0`` symbols against every size it announces and split
    it into the arrays the segment decoders read. Raises ``ValueError`` when it is corrupt."""
    if buf.size < 5 or buf[0] > 1:
        raise _corrupt("bad max header")
    if buf[0] == 0:
        if buf.size != 5:
            raise _corrupt("bad constant payload length")
        return MaxLayout(int(buf[1:5].view("<u4")[0]))
    rows = int(buf[1:5].view("<u4")[0])
    if rows < 1:
        raise _corrupt("rows_per_segment == 0")
    seg_len = min(rows * rl, n)
    nseg = -(-n // seg_len)
    table, freqs, pos = R.tables_from_bytes(buf, 5)
    pos += -pos % 4
    rcnt, ecnt, pos, nr, ne = R.read_directory(buf, pos, nseg, n + 2 * R.NLANES, n, "segments")
    rw = readonly(_aligned(buf[pos : pos + 2 * nr].view(np.uint16)))
    pos += 2 * nr + 2 * (nr % 2)
    ew = readonly(_aligned(buf[pos : pos + 4 * ne].view(np.uint32)))
    rofs = np.concatenate([[0], np.cumsum(rcnt)[:-1]]).astype(np.int64)
    eofs = np.concatenate([[0], np.cumsum(ecnt)[:-1]]).astype(np.int64)
    lut = np.empty(freqs.shape[0] * R.PSCALE, np.uint8)
    fs = np.empty(freqs.shape[0] * R.NTOK, np.int64)
    R.dec_tables(freqs, lut, fs)
    return MaxLayout(None, seg_len, nseg, rw, rofs, rcnt, ew, eofs, ecnt, lut, fs, table[R.CMAP])

