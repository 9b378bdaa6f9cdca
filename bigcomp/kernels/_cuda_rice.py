"""GPU kernels (numba.cuda) of the ``rice`` coder (format in :mod:`bigcomp.kernels._rice`).

The per-group encoder and decoder are the CPU's own source, compiled for the device by
:func:`bigcomp.kernels._rice.build`, so both write the same bits. Encode: one thread per group
codes it into its own region of a scratch buffer; an exclusive prefix sum of the groups' word
counts places them; one thread per group copies its words to the payload. Decode: the host
parses the group sizes, one thread per group decodes.
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
    to_device,
    to_host,
)
from ._cuda_fast import bitlen
from ._rice import build, group_symbols, max_group_words, rice_layout

__all__ = ["decode_rice", "encode_rice"]


@device_function
def _ctz(x):
    """Trailing zero bits of a nonzero uint64 (binary search: no 64-bit intrinsic needed)."""
    n = 0
    if (x & np.uint64(0xFFFFFFFF)) == 0:
        n += 32
        x >>= np.uint64(32)
    if (x & np.uint64(0xFFFF)) == 0:
        n += 16
        x >>= np.uint64(16)
    if (x & np.uint64(0xFF)) == 0:
        n += 8
        x >>= np.uint64(8)
    if (x & np.uint64(0xF)) == 0:
        n += 4
        x >>= np.uint64(4)
    if (x & np.uint64(0x3)) == 0:
        n += 2
        x >>= np.uint64(2)
    if (x & np.uint64(0x1)) == 0:
        n += 1
    return n


_gpu = build(device_function, _ctz, bitlen)
_encode_group = _gpu.encode_group
_decode_group = _gpu.decode_group


@device_kernel
def _encode_groups(sym, s, gmax, scratch, counts):
    n = sym.size
    n_groups = counts.size - 1
    start = cuda.grid(1)
    for g in range(start, n_groups, cuda.gridsize(1)):
        a = g * s
        b = min(n, a + s)
        counts[g] = _encode_group(sym[a:b], scratch[g * gmax : (g + 1) * gmax])
    if start == 0:
        counts[n_groups] = 0  # trailing zero: the scan's last entry is the total


@device_kernel
def _compact(scratch, gmax, offs, words):
    start = cuda.grid(1)
    for g in range(start, offs.size - 1, cuda.gridsize(1)):
        o = offs[g]
        for i in range(offs[g + 1] - o):
            words[o + i] = scratch[g * gmax + i]


@device_kernel
def _decode_groups(words, starts, counts, s, out, flags):
    n = out.size
    start = cuda.grid(1)
    for g in range(start, counts.size, cuda.gridsize(1)):
        a = g * s
        b = min(n, a + s)
        if _decode_group(words[starts[g] : starts[g] + counts[g]], out[a:b]):
            cuda.atomic.max(flags, 0, 1)


def encode_rice(sym, row_length: int) -> bytes:
    """Payload of the ``rice`` coder for the 1-D uint32 device array ``sym``."""
    n = int(sym.size)
    if n == 0:
        return b""
    s = group_symbols(row_length)
    gmax = max_group_words(s)
    n_groups = -(-n // s)
    scratch = empty(n_groups * gmax, np.uint32)
    counts = empty(n_groups + 1, np.int64)
    launch(_encode_groups, n_groups)(sym, s, gmax, scratch, counts)
    offs = exclusive_scan(counts)
    total = scalar(offs, n_groups)
    words = empty(max(total, 1), np.uint32)
    launch(_compact, n_groups)(scratch, gmax, offs, words)
    out = np.empty(1 + n_groups + total, np.uint32)
    out[0] = s
    out[1 : 1 + n_groups] = to_host(counts)[:n_groups]
    out[1 + n_groups :] = to_host(words)[:total]
    return out.tobytes()


def decode_rice(payload: np.ndarray, n: int, out, flags) -> None:
    """Decode a host ``rice`` payload (uint8 array) of ``n`` symbols into the device array
    ``out``. ``flags`` is a zeroed int64 device array of 1; raises ``ValueError`` when corrupt
    (the payload's sizes are checked on the host first)."""
    s, starts, counts, words = rice_layout(payload, n)
    if n == 0:
        return
    launch(_decode_groups, counts.size)(
        to_device(words if words.size else np.zeros(1, np.uint32)),
        to_device(starts),
        to_device(counts),
        s,
        out,
        flags,
    )
    if scalar(flags, 0):
        raise ValueError("corrupt bigcomp payload: rice groups do not decode")
