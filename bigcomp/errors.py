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
    "IncompleteStoreError",
    "MissingNoiseMapsError",
    "ParameterError",
    "SourceReadError",
    "StoreExistsError",
    "StoreWriteError",
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


class MissingNoiseMapsError(BigcompError, ValueError):
    """A chunk coded with per-pixel camera maps kept once per array was decoded without them
    (decode it through its array, or pass the maps)."""


class ChunkTooLargeError(BigcompError, ValueError):
    """A chunk would decode (or encode) to more bytes than the configured per-chunk limit
    (:func:`bigcomp.set_max_chunk_bytes`, environment variable ``BIGCOMP_MAX_CHUNK_BYTES``)."""


class StoreExistsError(BigcompError, FileExistsError):
    """The destination exists and holds something else than this compression job."""


class IncompleteStoreError(BigcompError):
    """The store was left incomplete by an interrupted run."""


class StoreWriteError(BigcompError, OSError):
    """Writing a store (or a decoded output) failed: disk full, no permission, ...

    ``errno`` and ``filename`` are those of the underlying ``OSError``; the message says what
    to do.
    """

    def __str__(self) -> str:  # the message, not OSError's "[Errno n] ..." formatting
        return str(self.args[0]) if self.args else ""

    def __reduce__(self):  # keep errno and filename through pickling (dask workers)
        return _rebuild_write_error, (str(self), self.errno, self.strerror, self.filename)


def _rebuild_write_error(message: str, code, strerror, filename) -> StoreWriteError:
    err = StoreWriteError(message)
    err.errno, err.strerror, err.filename = code, strerror, filename
    return err


class SourceReadError(BigcompError, OSError):
    """A region of the source file could not be read (truncated, damaged, removed)."""
