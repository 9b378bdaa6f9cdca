"""Per-thread scratch buffers for a chunk's intermediate arrays.

First-touch page faults cost about as much as a fast kernel's whole pass over a fresh array, so
the intermediate arrays of encoding and decoding (bin indices, residuals) live in buffers that
each thread keeps and reuses; they grow to the largest chunk the thread has seen, up to
:data:`KEEP_BYTES` each (a larger request gets a fresh array, freed with its chunk, so one huge
chunk does not pin its memory for the thread's life).
"""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["scratch"]

_local = threading.local()
KEEP_BYTES = 256 << 20  # 64 Mi uint32 residuals: 32x the default 2 MiB chunk


def scratch(name: str, size: int, dtype) -> np.ndarray:
    """A 1-D array of ``size`` elements of ``dtype``, reused by later calls on this thread.

    The contents are undefined, and the array is only valid until the next call with the same
    ``name`` on the same thread: never return it to a caller.
    """
    dtype = np.dtype(dtype)
    buffers = getattr(_local, "buffers", None)
    if buffers is None:
        buffers = _local.buffers = {}
    nbytes = size * dtype.itemsize
    if nbytes > KEEP_BYTES:
        return np.empty(size, dtype)
    buf = buffers.get(name)
    if buf is None or buf.size < nbytes:
        buf = buffers[name] = np.empty(max(nbytes, 1), np.uint8)
    return buf[:nbytes].view(dtype)
