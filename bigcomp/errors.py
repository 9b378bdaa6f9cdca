"""Exceptions raised by bigcomp.

Every error says what went wrong *and* what to do about it. All derive from
:class:`BigcompError`, so ``except bigcomp.BigcompError`` catches them all.
"""

from __future__ import annotations

__all__ = [
    "BigcompError",
    "ChunkMismatchError",
    "ChunkTooLargeError",
    "CorruptChunkError",
    "FormatVersionError",
    "ParameterError",
    "UnsupportedDataError",
]


class BigcompError(Exception):
    """Base class of all bigcomp errors."""


class ParameterError(BigcompError, ValueError):
    """A codec or camera parameter is out of range (negative gain, q < 0, ...)."""


class UnsupportedDataError(BigcompError, TypeError):
    """The data cannot be encoded as given (wrong dtype, NaN or inf values, ...)."""


class CorruptChunkError(BigcompError, ValueError):
    """An encoded chunk is truncated, has a bad checksum or is otherwise damaged."""


class FormatVersionError(BigcompError, ValueError):
    """An encoded chunk was written by a newer (unknown) bitstream format version."""


class ChunkMismatchError(CorruptChunkError):
    """A valid chunk that does not belong where it was read: its shape, dtype, mode or codec
    parameters differ from the array's metadata (a misplaced or substituted chunk)."""


class ChunkTooLargeError(BigcompError, ValueError):
    """A chunk would decode (or encode) to more bytes than the configured per-chunk limit
    (:func:`bigcomp.set_max_chunk_bytes`, environment variable ``BIGCOMP_MAX_CHUNK_BYTES``)."""
