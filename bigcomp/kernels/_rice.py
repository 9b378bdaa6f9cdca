"""The ``rice`` coder: Golomb-Rice codes with one parameter per block of 64 symbols.

Fixed-width packing (the ``fast`` coder) pays for the largest symbol of every block; on noise
(prediction residuals of about 1.5 quantisation steps) that is ~3.4 bits per symbol against an
entropy near 2.4. A Rice code spends ``(v >> k) + 1 + k`` bits on symbol ``v``: within ~0.2 bit
of the entropy on such residuals, and still one table-free pass per symbol both ways.

Format (for ``n`` uint32 symbols whose count the caller stores; ``n == 0`` gives an empty
payload; all fields little-endian)::

    u32 symbols_per_group S          (>= 1)
    u32 group_words[G]               G = ceil(n / S): u32 words of each group's bit string
    u32 words[...]                   the groups' bit strings, concatenated

Group ``g`` holds symbols ``[g S, min(n, (g + 1) S))``; its bit string is read LSB-first from
its words and ends zero-padded to a word. It is a sequence of *blocks* of 64 symbols (the last
one of a group shorter). A block of ``m`` symbols starts with its header ``h`` (0..15), coded
against the previous block's ``p`` (``p = 0`` before the first block of a group): a zero bit
means ``h = p``; bits 1, 0, ``s`` mean ``h = p + 1`` (``s = 0``) or ``h = p - 1`` (``s = 1``);
bits 1, 1 and 4 bits give ``h`` itself. Then:

- ``h < 15``: Rice parameter ``k = h``, then three parts:

  1. the ``k`` low bits of every symbol (``m k`` bits);
  2. per symbol, ``u = min(v >> k, 16)`` zero bits then a one bit;
  3. per symbol with ``u == 16`` (an *escape*), in order: ``e = (v >> k) - 16`` as its bit
     length ``L`` (0..32) in 6 bits, then the ``L`` bits of ``e``.

- ``h == 15``: fixed width: ``w`` (0..32) in 6 bits, then every symbol in ``w`` bits.

The low bits come first so that both ways they are plain fixed-width packing, and the unary
part decodes with one count-trailing-zeros per symbol.

Encoder choices (not needed to decode): ``S`` is a whole number of rows of about 4096 symbols
(4096 when rows are longer than 65536 symbols), so prediction and coding can be fused per group
of rows; each block takes the Rice parameter estimated cheapest from its sum (one of three near
``log2`` of its mean), or the fixed width where that is smaller.
"""

from __future__ import annotations

import types
from types import SimpleNamespace

import numpy as np
from numba import prange
from numba.cpython.unsafe.numbers import trailing_zeros

from ._numba import jit, pjit, readonly, use_parallel
from ._rans import _bitlen

__all__ = ["build", "decode_rice", "encode_rice", "group_symbols", "max_group_words", "rice_layout"]

BLOCK = 64
ESCAPE = 16  # q >= ESCAPE: escape code
FIXED = 15  # block header of a fixed-width block
GROUP_TARGET = 4096
_MAX_FUSED_ROW = 1 << 16


def _corrupt(what: str) -> ValueError:
    return ValueError(f"corrupt bigcomp payload: {what}")


def group_symbols(row_length: int) -> int:
    """Symbols per group the encoder uses for rows of ``row_length``."""
    row_length = max(int(row_length), 1)
    if row_length > _MAX_FUSED_ROW:
        return GROUP_TARGET
    return row_length * max(1, GROUP_TARGET // row_length)


def max_group_words(s: int) -> int:
    """Upper bound on the words of a group of ``s`` symbols (a fixed-width block of 32 bits)."""
    return (-(-s // BLOCK) * (12 + 32 * BLOCK) + 31) // 32 + 1


@jit
def _ctz(x):
    """Trailing zero bits of a nonzero uint64."""
    return trailing_zeros(x)


@jit
def _rice_bits(blk, k):
    """Exact bits of the symbols of ``blk`` under Rice parameter ``k`` (escapes included)."""
    bits = np.int64(0)
    for j in range(blk.size):
        q = np.int64(blk[j]) >> k
        if q < ESCAPE:
            bits += q + 1 + k
        else:
            bits += ESCAPE + 1 + k + 6 + _bitlen(q - ESCAPE)
    return bits

@jit
def _choose(blk):
    """Header ``h`` (Rice parameter, or FIXED) and fixed width of block ``blk`` (a 0-based
    view of at most 64 symbols, so numba vectorises the sums).

    The Rice parameter is the cheapest of three near ``log2`` of the mean by an estimate
    from the sum alone (each symbol's low bits taken as uniform: one pass, within 0.3 % of
    the exact counts' best on residuals); blocks with escapes count their bits exactly.
    """
    m = blk.size
    total32 = np.uint32(0)
    top = np.uint32(0)
    for j in range(m):
        total32 = np.uint32(total32 + blk[j])
        top = max(top, blk[j])
    if top < (1 << 25):  # 64 symbols < 2**25 sum below 2**31
        total = np.int64(total32)
    else:
        total = np.int64(0)
        for j in range(m):
            total += np.int64(blk[j])
    width = _bitlen(np.int64(top))
    mean = total >> 6 if m == BLOCK else total // m
    k0 = max(0, min(FIXED - 3, _bitlen(mean) - 2))  # the mean has bit length k0 + 2
    # bits under parameter k: m (k + 1) + sum(v >> k) ~ m (k + 1) + (total - m (2**k - 1) / 2)
    # / 2**k, scaled by 2**(k0 + 3) to stay integer (bitwise the same on CPU and GPU)
    scale = np.int64(1) << (k0 + 3)
    best_k = k0
    best = np.int64(-1)
    for d in range(3):
        k = k0 + d
        est = scale * m * (k + 1) + (2 * total - m * ((np.int64(1) << k) - 1)) * (
            np.int64(1) << (2 - d))
        if best < 0 or est < best:
            best_k = k
            best = est
    if (np.int64(top) >> best_k) >= ESCAPE:  # escapes cost other than the estimate: count them
        best = _rice_bits(blk, best_k) * scale
    if (6 + m * width) * scale <= best:  # (header bits not counted: a choice, not the format)
        return FIXED, width
    return best_k, width

@jit
def _flush(out, w, acc, nacc):
    """Store the accumulator's low word at ``out[w]`` and drop it if it is full
    (branch-free: the store happens anyway, the next one overwrites a partial word)."""
    out[w] = np.uint32(acc & 0xFFFFFFFF)
    f = nacc >> 5
    return w + f, acc >> (f << 5), nacc - (f << 5)

@jit
def encode_group(sym, out):
    """Code all of ``sym`` (one group) into ``out``; returns the words written.

    ``out`` needs one word more than the result: words are stored before knowing whether they
    are full. The accumulator is an int64 holding at most 63 bits (< 32 pending + <= 32 new),
    so its sign bit stays clear and its shifts stay logical.
    """
    n = sym.size
    acc = np.int64(0)
    nacc = np.int64(0)
    w = 0
    prev = np.int64(0)
    for b0 in range(0, n, BLOCK):
        b1 = min(n, b0 + BLOCK)
        blk = sym[b0:b1]
        m = b1 - b0
        h, width = _choose(blk)
        if h == prev:
            acc |= np.int64(0) << nacc
            nacc += 1
        elif h == prev + 1 or h == prev - 1:
            acc |= np.int64(1 | ((h < prev) << 2)) << nacc
            nacc += 3
        else:
            acc |= np.int64(3 | (h << 2)) << nacc
            nacc += 6
        prev = h
        if h == FIXED:
            acc |= np.int64(width) << nacc
            nacc += 6
        w, acc, nacc = _flush(out, w, acc, nacc)
        if h == FIXED:
            for j in range(m):
                acc |= np.int64(blk[j]) << nacc
                nacc += width
                w, acc, nacc = _flush(out, w, acc, nacc)
            continue
        k = np.int64(h)
        mask = (np.int64(1) << k) - 1
        # 1. low bits, up to eight symbols per insertion (at most 32 bits)
        j = 0
        if 0 < k <= 4:
            while j + 8 <= m:
                x = (((np.int64(blk[j]) & mask) | ((np.int64(blk[j + 1]) & mask) << k))
                     | (((np.int64(blk[j + 2]) & mask) << 2 * k)
                        | ((np.int64(blk[j + 3]) & mask) << 3 * k))
                     | (((np.int64(blk[j + 4]) & mask) << 4 * k)
                        | ((np.int64(blk[j + 5]) & mask) << 5 * k))
                     | (((np.int64(blk[j + 6]) & mask) << 6 * k)
                        | ((np.int64(blk[j + 7]) & mask) << 7 * k)))
                acc |= x << nacc
                nacc += 8 * k
                w, acc, nacc = _flush(out, w, acc, nacc)
                j += 8
        elif 4 < k <= 8:
            while j + 4 <= m:
                x = ((np.int64(blk[j]) & mask) | ((np.int64(blk[j + 1]) & mask) << k)
                     | ((np.int64(blk[j + 2]) & mask) << 2 * k)
                     | ((np.int64(blk[j + 3]) & mask) << 3 * k))
                acc |= x << nacc
                nacc += 4 * k
                w, acc, nacc = _flush(out, w, acc, nacc)
                j += 4
        elif 8 < k <= 16:
            while j + 2 <= m:
                x = (np.int64(blk[j]) & mask) | ((np.int64(blk[j + 1]) & mask) << k)
                acc |= x << nacc
                nacc += 2 * k
                w, acc, nacc = _flush(out, w, acc, nacc)
                j += 2
        if k > 0:
            while j < m:
                acc |= (np.int64(blk[j]) & mask) << nacc
                nacc += k
                w, acc, nacc = _flush(out, w, acc, nacc)
                j += 1
        # 2. unary high parts, capped at the escape; eight symbols per insertion when their
        # codes fit in 32 bits (the serial chain through nacc is then per eight symbols)
        any_esc = np.int64(0)
        for j in range(0, m, 8):
            if j + 8 <= m:
                u0 = min(np.int64(blk[j]) >> k, ESCAPE)
                u1 = min(np.int64(blk[j + 1]) >> k, ESCAPE)
                u2 = min(np.int64(blk[j + 2]) >> k, ESCAPE)
                u3 = min(np.int64(blk[j + 3]) >> k, ESCAPE)
                u4 = min(np.int64(blk[j + 4]) >> k, ESCAPE)
                u5 = min(np.int64(blk[j + 5]) >> k, ESCAPE)
                u6 = min(np.int64(blk[j + 6]) >> k, ESCAPE)
                u7 = min(np.int64(blk[j + 7]) >> k, ESCAPE)
                any_esc |= u0 | u1 | u2 | u3 | u4 | u5 | u6 | u7  # bit 4 set: an escape
                c0 = u0
                c1 = c0 + 1 + u1
                c2 = c1 + 1 + u2
                c3 = c2 + 1 + u3
                c4 = c3 + 1 + u4
                c5 = c4 + 1 + u5
                c6 = c5 + 1 + u6
                c7 = c6 + 1 + u7
                if c7 < 32:
                    x = (((np.int64(1) << c0) | (np.int64(1) << c1)) | ((np.int64(1) << c2)
                         | (np.int64(1) << c3))) | (((np.int64(1) << c4) | (np.int64(1) << c5))
                         | ((np.int64(1) << c6) | (np.int64(1) << c7)))
                    acc |= x << nacc
                    nacc += c7 + 1
                    w, acc, nacc = _flush(out, w, acc, nacc)
                    continue
            for i in range(j, min(m, j + 8)):  # long codes or a short tail: one at a time
                u = min(np.int64(blk[i]) >> k, ESCAPE)
                any_esc |= u
                acc |= np.int64(1) << (nacc + u)
                nacc += u + 1
                w, acc, nacc = _flush(out, w, acc, nacc)
        n_esc = any_esc & ESCAPE
        # 3. escapes
        if n_esc:
            for j in range(m):
                q = np.int64(blk[j]) >> k
                if q >= ESCAPE:
                    e = q - ESCAPE
                    length = _bitlen(e)
                    acc |= length << nacc
                    nacc += 6
                    w, acc, nacc = _flush(out, w, acc, nacc)
                    acc |= e << nacc
                    nacc += length
                    w, acc, nacc = _flush(out, w, acc, nacc)
    if nacc > 0:
        out[w] = np.uint32(acc & 0xFFFFFFFF)
        w += 1
    return w

@jit
def decode_group(words, out):
    """Decode the group bit string ``words`` into all of ``out``; returns 0, or 1 if it is
    corrupt (an invalid code, a width > 32, bits missing, or words or nonzero bits left).

    Words past the end read as zeros; the check at the end catches reading them. The
    refills are written out in each loop: a helper returning ``(r, acc, nacc)`` made this
    decoder 5x slower in numba (measured), unlike :func:`_flush` in the encoder (~2 %).
    """
    n = out.size
    nw = words.size
    acc = np.int64(0)
    nacc = np.int64(0)
    r = 0
    prev = np.int64(0)
    for b0 in range(0, n, BLOCK):
        b1 = min(n, b0 + BLOCK)
        blk = out[b0:b1]
        m = b1 - b0
        if nacc < 32:
            if r < nw:
                acc |= np.int64(words[r]) << nacc
            r += 1
            nacc += 32
        if (acc & 1) == 0:
            h = prev
            acc >>= 1
            nacc -= 1
        elif (acc & 2) == 0:
            h = prev - 1 if acc & 4 else prev + 1
            acc >>= 3
            nacc -= 3
        else:
            h = (acc >> 2) & 15
            acc >>= 6
            nacc -= 6
        if h < 0 or h > FIXED:
            return 1
        prev = h
        if h == FIXED:
            width = acc & 63
            acc >>= 6
            nacc -= 6
            if width > 32:
                return 1
            mask = (np.int64(1) << width) - 1
            for j in range(m):
                if nacc < 32:
                    if r < nw:
                        acc |= np.int64(words[r]) << nacc
                    r += 1
                    nacc += 32
                blk[j] = np.uint32(acc & mask)
                acc >>= width
                nacc -= width
            continue
        k = h
        mask = (np.int64(1) << k) - 1
        # 1. low bits
        if k > 0:
            for j in range(m):
                if nacc < 32:
                    if r < nw:
                        acc |= np.int64(words[r]) << nacc
                    r += 1
                    nacc += 32
                blk[j] = np.uint32(acc & mask)
                acc >>= k
                nacc -= k
        else:
            for j in range(m):
                blk[j] = 0
        # 2. unary high parts: the ones of a window of >= 32 bits are taken lowest first
        # (x &= x - 1), so the serial chain is one operation per symbol; zeros after the last
        # one of a window stay in the accumulator and count towards the next symbol
        n_esc = 0
        j = 0
        while j < m:
            if nacc < 32:
                if r < nw:
                    acc |= np.int64(words[r]) << nacc
                r += 1
                nacc += 32
            x = np.uint64(acc)
            if x == 0:  # >= 32 zeros: no valid code
                return 1
            last = np.int64(-1)
            while x != 0 and j < m:
                p = np.int64(_ctz(x))
                x &= x - np.uint64(1)
                u = p - last - 1
                last = p
                if u > ESCAPE:
                    return 1
                n_esc += u == ESCAPE
                blk[j] |= np.uint32(u << k)
                j += 1
            acc >>= last + 1
            nacc -= last + 1
        # 3. escapes
        if n_esc:
            for j in range(m):
                if (np.int64(blk[j]) >> k) == ESCAPE:
                    if nacc < 32:
                        if r < nw:
                            acc |= np.int64(words[r]) << nacc
                        r += 1
                        nacc += 32
                    length = acc & 63
                    acc >>= 6
                    nacc -= 6
                    if length > 32:
                        return 1
                    if nacc < 32:
                        if r < nw:
                            acc |= np.int64(words[r]) << nacc
                        r += 1
                        nacc += 32
                    e = acc & ((np.int64(1) << length) - 1)
                    acc >>= length
                    nacc -= length
                    v = ((ESCAPE + e) << k) | (np.int64(blk[j]) & mask)
                    if v >= np.int64(1) << 32:
                        return 1
                    blk[j] = np.uint32(v)
    used = 32 * r - nacc  # bits consumed
    if (used + 31) // 32 != nw or acc != 0:
        return 1
    return 0


def build(compile, ctz, bitlen):
    """Compile the coder's per-group functions for another target from the CPU's own source
    (``cuda.jit(device=True)`` for the GPU kernels), so both write the same bits. ``ctz(x)``
    counts the trailing zero bits of a nonzero uint64 and ``bitlen(v)`` gives the bit length of
    ``0 <= v < 2**32``, both compiled for that target; the functions above call them as
    ``_ctz`` and ``_bitlen``.

    Returns a namespace with ``choose``, ``encode_group`` and ``decode_group``. (The CPU's are
    the module's own, plain ``@jit`` functions: numba caches those on disk, not closures.)
    """
    namespace = dict(globals(), _ctz=ctz, _bitlen=bitlen)
    for disp in (_rice_bits, _choose, _flush, encode_group, decode_group):
        f = disp.py_func
        namespace[f.__name__] = compile(
            types.FunctionType(f.__code__, namespace, f.__name__, f.__defaults__, f.__closure__)
        )
    return SimpleNamespace(choose=namespace["_choose"], encode_group=namespace["encode_group"],
                           decode_group=namespace["decode_group"])


def _encode_kernel(sym, s, gmax, scratch_words, group_words):
    n = sym.size
    for g in prange(group_words.size):
        a = g * s
        b = min(n, a + s)
        group_words[g] = encode_group(sym[a:b], scratch_words[g * gmax : (g + 1) * gmax])


def _concat_kernel(scratch_words, gmax, group_start, group_words, out):
    for g in prange(group_words.size):
        src = scratch_words[g * gmax : g * gmax + group_words[g]]
        dst = out[group_start[g] : group_start[g] + group_words[g]]
        for i in range(src.size):
            dst[i] = src[i]


def _decode_kernel(words, group_start, group_words, s, out, bad):
    n = out.size
    for g in prange(group_words.size):
        a = g * s
        b = min(n, a + s)
        bad[g] = decode_group(words[group_start[g] : group_start[g] + group_words[g]], out[a:b])


_enc_p, _enc_s = pjit(_encode_kernel)
_concat_p, _concat_s = pjit(_concat_kernel)
_dec_p, _dec_s = pjit(_decode_kernel)


def assemble(s: int, scratch_words, gmax: int, group_words, *, parallel: bool) -> np.ndarray:
    """The payload (uint8 array) from groups coded into ``scratch_words[g * gmax:]``."""
    n_groups = group_words.size
    group_start = np.zeros(n_groups, np.int64)
    np.cumsum(group_words[:-1], out=group_start[1:])
    nwords = int(group_start[-1] + group_words[-1])
    out = np.empty(1 + n_groups + nwords, np.uint32)
    out[0] = s
    out[1 : 1 + n_groups] = group_words
    (_concat_p if parallel else _concat_s)(
        scratch_words, gmax, group_start, group_words, out[1 + n_groups :]
    )
    return out.view(np.uint8)


def encode_rice(symbols: np.ndarray, row_length: int, *, parallel: bool | None = None) -> bytes:
    """Encode symbols with the ``rice`` coder.

    Parameters
    ----------
    symbols : numpy.ndarray
        1-D C-contiguous ``uint32`` array.
    row_length : int
        Symbols per row of the data (sets the group size; any value decodes).

    Returns
    -------
    bytes
        Payload, format in the module docstring; it does not record ``len(symbols)``.
    """
    sym = np.asarray(symbols)
    if sym.dtype != np.uint32 or sym.ndim != 1:
        raise TypeError("symbols must be a 1-D uint32 array")
    sym = np.ascontiguousarray(sym)
    if sym.size == 0:
        return b""
    par = use_parallel() if parallel is None else parallel
    s = group_symbols(row_length)
    gmax = max_group_words(s)
    n_groups = -(-sym.size // s)
    scratch_words = np.empty(n_groups * gmax, np.uint32)
    group_words = np.empty(n_groups, np.int64)
    (_enc_p if par else _enc_s)(sym, s, gmax, scratch_words, group_words)
    return assemble(s, scratch_words, gmax, group_words, parallel=par).tobytes()


def rice_layout(payload, n: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """Check a ``rice`` payload of ``n`` symbols against the sizes it announces.

    Returns ``(symbols_per_group, group_start, group_words, words)``; raises ``ValueError``
    when the payload is inconsistent.
    """
    if isinstance(payload, np.ndarray):
        buf = np.ascontiguousarray(payload).reshape(-1).view(np.uint8)
    else:
        buf = np.frombuffer(payload, dtype=np.uint8)
    n = int(n)
    if n < 0:
        raise ValueError("n must be >= 0")
    if n == 0:
        if buf.size:
            raise _corrupt("rice payload of zero symbols is not empty")
        empty = np.empty(0, np.int64)
        return 1, empty, empty, np.empty(0, np.uint32)
    if buf.size < 4 or buf.size % 4:
        raise _corrupt(f"rice payload of {buf.size} bytes is not a whole number of words")
    u32 = buf.view(np.uint32) if buf.ctypes.data % 4 == 0 else buf.copy().view(np.uint32)
    s = int(u32[0])
    if s < 1:
        raise _corrupt("rice group size 0")
    n_groups = -(-n // s)
    if u32.size < 1 + n_groups:
        raise _corrupt("rice payload shorter than its group sizes")
    group_words = u32[1 : 1 + n_groups].astype(np.int64)
    if group_words.size and int(group_words.max()) > max_group_words(s):
        raise _corrupt("rice group longer than any group can be")
    group_start = np.zeros(n_groups, np.int64)
    np.cumsum(group_words[:-1], out=group_start[1:])
    nwords = int(group_start[-1] + group_words[-1])
    if u32.size != 1 + n_groups + nwords:
        raise _corrupt(
            f"rice payload has {4 * u32.size} bytes, expected {4 * (1 + n_groups + nwords)}"
        )
    return s, group_start, group_words, readonly(u32[1 + n_groups :])


def decode_rice(payload, n: int, *, parallel: bool | None = None) -> np.ndarray:
    """Decode a payload of :func:`encode_rice` into ``n`` uint32 symbols.

    Raises
    ------
    ValueError
        If the payload is inconsistent with ``n`` or detectably corrupt.
    """
    s, group_start, group_words, words = rice_layout(payload, n)
    out = np.empty(int(n), np.uint32)
    if out.size == 0:
        return out
    bad = np.zeros(group_words.size, np.int64)
    par = use_parallel() if parallel is None else parallel
    (_dec_p if par else _dec_s)(words, group_start, group_words, s, out, bad)
    if bad.any():
        raise _corrupt(f"{int(np.count_nonzero(bad))} rice groups do not decode")
    return out
