"""Limits that keep an untrusted chunk from exhausting a machine.

A chunk's header states its shape; a few hundred bytes can claim terabytes (a constant chunk
is legitimately 5 bytes of payload whatever its size). Before anything is allocated the decoder
checks the memory decoding will take -- the decoded array plus the codec's intermediates,
:func:`decode_bytes_per_pixel` per pixel -- against a per-chunk limit, which the encoder
respects too (so every chunk bigcomp writes can be read back with the same limit).

The limit is, in order: the value set with :func:`set_max_chunk_bytes` (or inside
:func:`max_chunk_bytes_set`), the environment variable ``BIGCOMP_MAX_CHUNK_BYTES`` (bytes; set
it on dask workers too), or :data:`DEFAULT_MAX_CHUNK_BYTES` (1 GiB of working memory: a
uint16 chunk of up to 150 Mpixels, 75x bigcomp's default 16 x 256 x 256 chunk).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from .errors import ChunkTooLargeError, ParameterError

__all__ = [
    "DEFAULT_MAX_CHUNK_BYTES",
    "check_chunk_size",
    "decode_bytes_per_pixel",
    "max_chunk_bytes",
    "max_chunk_bytes_set",
    "set_max_chunk_bytes",
]

DEFAULT_MAX_CHUNK_BYTES = 1 << 30
ENV = "BIGCOMP_MAX_CHUNK_BYTES"
_override: int | None = None


def _parse(value, where: str) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{where} must be a whole number of bytes, got {value!r}") from None
    if n < 1:
        raise ParameterError(f"{where} must be >= 1 byte, got {n}")
    return n


def max_chunk_bytes() -> int:
    """The largest decoded size of one chunk, in bytes, that bigcomp encodes or decodes."""
    if _override is not None:
        return _override
    env = os.environ.get(ENV)
    return _parse(env, f"environment variable {ENV}") if env else DEFAULT_MAX_CHUNK_BYTES


def set_max_chunk_bytes(nbytes: int | None) -> None:
    """Set the per-chunk limit for this process (``None``: back to the environment/default).

    Dask workers are other processes: set ``BIGCOMP_MAX_CHUNK_BYTES`` in their environment.
    """
    global _override
    _override = None if nbytes is None else _parse(nbytes, "max_chunk_bytes")


@contextlib.contextmanager
def max_chunk_bytes_set(nbytes: int | None) -> Iterator[None]:
    """Context manager: :func:`set_max_chunk_bytes` for the ``with`` block only."""
    global _override
    old = _override
    set_max_chunk_bytes(nbytes)
    try:
        yield
    finally:
        _override = old


def decode_bytes_per_pixel(dtype, mode: str, order: str) -> int:
    """Peak memory per pixel of decoding a chunk, output included (an upper estimate).

    Lossless: the output and a uint32 residual (+ a token byte, ``max``); WNL ``qp``: also the
    bin indices; float32: int32 steps and float64 temporaries of the inverse transform; ``pq``:
    up to two uint32 symbols, int64 escape slots and reconstructions, int32 values.
    """
    itemsize = np.dtype(dtype).itemsize
    if mode == "lossless":
        return itemsize + 5
    if order == "pq":
        return 36 + itemsize
    if np.dtype(dtype).kind == "f":
        return 40
    return 2 * itemsize + 5


def check_chunk_size(n_values: int, bytes_per_pixel: int, shape, *,
                     encoding: bool = False) -> None:
    """Raise :class:`ChunkTooLargeError` if ``n_values`` pixels at ``bytes_per_pixel`` of
    working memory each exceed the per-chunk limit."""
    limit = max_chunk_bytes()
    nbytes = n_values * bytes_per_pixel
    if nbytes <= limit:
        return
    what = ("encoding this chunk makes one that takes" if encoding else
            "the chunk's header claims a chunk that takes")
    advice = ("use smaller chunks (e.g. chunks=(16, 256, 256))" if encoding else
              "if you trust this data, raise the limit; otherwise the chunk is damaged or "
              "hostile")
    raise ChunkTooLargeError(
        f"{what} {nbytes / 2**30:.3g} GiB of memory to decode (shape {tuple(shape)}), above "
        f"the limit of "
        f"{limit / 2**30:.3g} GiB per chunk: {advice} (bigcomp.set_max_chunk_bytes(n) or the "
        f"environment variable {ENV}=n)"
    )
