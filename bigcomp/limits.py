"""Limits that keep an untrusted chunk from exhausting a machine.

A chunk's header states its shape; a few hundred bytes can claim terabytes (a constant chunk
is legitimately 5 bytes of payload whatever its size). Before anything is allocated the decoder
checks the decoded size against a per-chunk limit, which the encoder respects too (so every
chunk bigcomp writes can be read back with the same limit).

The limit is, in order: the value set with :func:`set_max_chunk_bytes` (or inside
:func:`max_chunk_bytes_set`), the environment variable ``BIGCOMP_MAX_CHUNK_BYTES`` (bytes; set
it on dask workers too), or :data:`DEFAULT_MAX_CHUNK_BYTES` (1 GiB: 500x bigcomp's default
2 MiB chunk; decoding one takes about 5x its size in working memory).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from .errors import ChunkTooLargeError, ParameterError

__all__ = [
    "DEFAULT_MAX_CHUNK_BYTES",
    "check_chunk_size",
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


def check_chunk_size(n_values: int, itemsize: int, shape, *, encoding: bool = False) -> None:
    """Raise :class:`ChunkTooLargeError` if ``n_values`` items exceed the per-chunk limit."""
    limit = max_chunk_bytes()
    nbytes = n_values * itemsize
    if nbytes <= limit:
        return
    what = ("this chunk is" if encoding else
            "the chunk's header claims a chunk that decodes to")
    advice = ("use smaller chunks (e.g. chunks=(16, 256, 256))" if encoding else
              "if you trust this data, raise the limit; otherwise the chunk is damaged or "
              "hostile")
    raise ChunkTooLargeError(
        f"{what} {nbytes / 2**30:.3g} GiB (shape {tuple(shape)}), above the limit of "
        f"{limit / 2**30:.3g} GiB per chunk: {advice} (bigcomp.set_max_chunk_bytes(n) or the "
        f"environment variable {ENV}=n)"
    )
