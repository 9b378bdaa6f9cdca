"""Exceptions raised by bigcomp.

Every error says what went wrong *and* what to do about it. All derive from
:class:`BigcompError`, so ``except bigcomp.BigcompError`` catches them all.
"""

from __future__ import annotations

__all__ = [
    "BigcompError",
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
