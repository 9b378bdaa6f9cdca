"""GPU kernels (numba.cuda) of the ``fast`` coder: bit-packed blocks of 32 symbols.

Payload format: :mod:`bigcomp.kernels._coders` (``u8 width[B]``, zero padding to 4 bytes, the
blocks' u32 words at word offset ``sum(width[:k])``).

Encode: one thread per block computes its width (bit length of the OR of its 32 symbols); an
exclusive prefix sum of the widths gives every block's word offset; one thread per block packs
its symbols LSB-first. Decode: the same prefix sum, then one thread per block unpacks.
"""

from __future__ import annotations

import numpy as np

from ._cuda_common import (
    cuda,
    device_function,
    device_kernel,
    empty,
    exclusive_scan,
    launch,
    scalar,
    to_host,
)
from ._rans import bitlen_source

__all__ = ["bitlen", "decode_fast", "encode_fast"]


bitlen = device_function(bitlen_source)  # the CPU's bit length, as a device function


@device_kernel
def _widths(sym, widths_u8, widths):
    n = sym.size
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for k in range(start, widths_u8.size, step):
        o = np.int64(0)
        for j in range(32 * k, min(n, 32 * k + 32)):
            o |= np.int64(sym[j])
        w = bitlen(o)
        widths_u8[k] = np.uint8(w)
        widths[k] = w
    if start == 0:
        widths[widths_u8.size] = 0  # trailing zero: the scan's last entry is the total


@device_kernel
def _pack(sym, widths, offs, words):
    n = sym.size
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for k in range(start, offs.size - 1, step):
        b = widths[k]
        if b == 0:
            continue
        w = offs[k]
        acc = np.int64(0)
        nacc = np.int64(0)
        for j in range(32 * k, 32 * k + 32):
            if j < n:
                acc |= np.int64(sym[j]) << nacc
            nacc += b
            if nacc >= 32:
                words[w] = np.uint32(acc & 0xFFFFFFFF)
                w += 1
                acc >>= 32
                nacc -= 32


def encode_fast(sym) -> bytes:
    """Payload of the ``fast`` coder for the 1-D uint32 device array ``sym``."""
    n = int(sym.size)
    if n == 0:
        return b""
    nblk = -(-n // 32)
    head = -(-nblk // 4) * 4
    widths_u8 = empty(nblk, np.uint8)
    widths = empty(nblk + 1, np.int64)
    launch(_widths, nblk)(sym, widths_u8, widths)
    offs = exclusive_scan(widths)
    nwords = scalar(offs, nblk)
    words = empty(max(nwords, 1), np.uint32)
    if nwords:
        launch(_pack, nblk)(sym, widths, offs, words)
    out = np.empty(head + 4 * nwords, np.uint8)
    out[:nblk] = to_host(widths_u8)
    out[nblk:head] = 0
    if nwords:
        out[head:] = to_host(words[:nwords]).view(np.uint8)
    return out.tobytes()


@device_kernel
def _widths_in(widths_u8, widths, flags):
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    big = 0
    for k in range(start, widths_u8.size, step):
        w = np.int64(widths_u8[k])
        widths[k] = w
        if w > 32:
            big = 1
    if start == 0:
        widths[widths_u8.size] = 0
    if big:
        cuda.atomic.max(flags, 0, 1)


@device_kernel
def _unpack(words, widths, offs, out, flags):
    n = out.size
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for k in range(start, offs.size - 1, step):
        b = widths[k]
        base = 32 * k
        m = min(32, n - base)
        mask = (np.int64(1) << b) - 1
        w = offs[k]
        acc = np.int64(0)
        nacc = np.int64(0)
        for j in range(32):
            if nacc < b:
                acc |= np.int64(words[w]) << nacc
                w += 1
                nacc += 32
            v = acc & mask
            if j < m:
                out[base + j] = np.uint32(v)
            elif v != 0:
                cuda.atomic.max(flags, 1, 1)
            acc >>= b
            nacc -= b


def decode_fast(payload: np.ndarray, n: int, out, flags) -> None:
    """Decode a host ``fast`` payload (uint8 array) of ``n`` symbols into the device array
    ``out``. ``flags`` is a zeroed int64 device array of 2; raises ``ValueError`` when corrupt."""
    from ._cuda_common import to_device

    nblk = -(-n // 32)
    head = -(-nblk // 4) * 4
    if payload.size < head:
        raise ValueError("corrupt bigcomp payload: fast payload shorter than its block widths")
    if payload[nblk:head].any():
        raise ValueError("corrupt bigcomp payload: nonzero padding")
    if n == 0:
        return
    widths_u8 = to_device(payload[:nblk])
    widths = empty(nblk + 1, np.int64)
    launch(_widths_in, nblk)(widths_u8, widths, flags)
    if scalar(flags, 0):
        raise ValueError("corrupt bigcomp payload: fast block width > 32")
    offs = exclusive_scan(widths)
    nwords = scalar(offs, nblk)
    if payload.size != head + 4 * nwords:
        raise ValueError(
            f"corrupt bigcomp payload: fast payload has {payload.size} bytes, expected "
            f"{head + 4 * nwords} for n={n}"
        )
    words = to_device(payload[head:].view(np.uint32) if nwords else np.zeros(1, np.uint32))
    launch(_unpack, nblk)(words, widths, offs, out, flags)
    if scalar(flags, 1):
        raise ValueError("corrupt bigcomp payload: nonzero padding in the last block")
