"""The chunk bitstream: header layout, versioning and checksum.

Every encoded chunk stands alone. Layout of format versions 1 to 4 (all little-endian)::

    offset  size        field
    0       4           magic b"BGCP"
    4       1           format version: the oldest that can decode the chunk (4 for coded
                        escape offsets, 3 for oriented residuals, else 2 for the rice coder,
                        else 1; version 1 has no coder 2)
    5       1           mode: 0 lossless, 1 within-noise-level (WNL)
    6       1           order: 0 quantise-then-predict, 1 predict-then-quantise (DPCM)
    7       1           coder: 0 fast (bit-packed blocks of 32), 1 max (rANS with contexts),
                        2 rice (Golomb-Rice blocks of 64; format version 2)
    8       1           dtype: 1 uint8, 2 uint16, 3 float32
    9       1           ndim (0..32)
    10      2           reserved (0)
    12      4·ndim      shape, uint32 each
    ..      4           planes per prediction run (uint32): plane p is predicted from plane p-1
                        unless p is a multiple of it; runs decode independently (in parallel)
    ..      32          q, gain, offset, read_noise (float64 each; zeros when lossless)
    ..      4           intra taps n, intra shift, inter taps n, inter shift (uint8 each)
    ..      8·n         taps, intra then inter: dp, dy, dx (int8), pad, coefficient (int32)
    ..      8           payload length in bytes (uint64)
    ..      8           number of escapes (uint64)
    ..      payload     entropy-coded residuals
    ..      escapes     exact values (DPCM escapes), in the data's dtype (none from version 4)
    end-4   4           CRC32C of everything before it

Version 3 changes no field: in quantise-then-predict chunks of version >= 3 the residuals are
*oriented* (their sign flipped where the unrounded prediction lies above the rounded one, see
:mod:`bigcomp.kernels._predict`).

Version 4 changes where predict-then-quantise escapes go: the payload codes one symbol per pixel
and then, per escape, the zig-zagged offset of its value from the value nearest its prediction
(:mod:`bigcomp.kernels._dpcm`); the escapes field is empty. Chunks without escapes keep their
older version.

A reader checks, in order: length, magic, version (a newer version raises
:class:`~bigcomp.errors.FormatVersionError`), the header fields, the total length (a short
chunk is *truncated*), then the checksum (a mismatch is *corrupt*).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from crc32c import crc32c

from .errors import CorruptChunkError, FormatVersionError, UnsupportedDataError
from .predictors import Taps

__all__ = ["CODER_VERSION", "FORMAT_VERSION", "MAGIC", "ChunkHeader", "pack_chunk", "unpack_chunk"]

MAGIC = b"BGCP"
FORMAT_VERSION = 4  # the newest version this bigcomp reads and writes
CODER_VERSION = {"fast": 1, "max": 1, "rice": 2}  # the oldest version that has each coder
ORIENTED_VERSION = 3  # quantise-then-predict residuals are oriented from this version on
OFFSETS_VERSION = 4  # predict-then-quantise escapes are coded offsets from this version on
MODES = {"lossless": 0, "wnl": 1}
ORDERS = {"qp": 0, "pq": 1}
CODERS = {"fast": 0, "max": 1, "rice": 2}
DTYPES = {np.dtype("uint8"): 1, np.dtype("uint16"): 2, np.dtype("float32"): 3}
_FIXED = struct.Struct("<4sBBBBBB2x")
_PARAMS = struct.Struct("<dddd")
_PRED = struct.Struct("<BBBB")
_TAP = struct.Struct("<bbbxi")
_LENGTHS = struct.Struct("<QQ")
_RUN = struct.Struct("<I")
_CRC = struct.Struct("<I")


def _key(table: dict, value):
    return next(k for k, v in table.items() if v == value)


@dataclass(frozen=True)
class ChunkHeader:
    """Everything a decoder needs besides the payload."""

    mode: str
    order: str
    coder: str
    dtype: np.dtype
    shape: tuple[int, ...]
    q: float
    gain: float
    offset: float
    read_noise: float
    intra: Taps
    inter: Taps
    run: int = 1
    oriented: bool = False  # residual signs follow the prediction's rounding (version >= 3)
    escape_offsets: int = 0  # escapes coded as offsets after the pixels' symbols (version >= 4)


def _pack_taps(taps: Taps) -> bytes:
    return b"".join(_TAP.pack(*off, c) for off, c in zip(taps.offsets, taps.coefs, strict=True))


def pack_chunk(header: ChunkHeader, payload: bytes, escapes: np.ndarray) -> bytes:
    """Serialise one encoded chunk (header, payload, escapes, checksum); ``escapes`` must be
    empty when the header counts escape offsets (they are in the payload)."""
    dtype = np.dtype(header.dtype)
    if header.escape_offsets and escapes.size:
        raise ValueError("escapes are either offsets in the payload or values, not both")
    if dtype not in DTYPES:
        raise UnsupportedDataError(f"dtype {dtype} has no bitstream code")
    parts = [
        _FIXED.pack(
            MAGIC,
            chunk_version(header),
            MODES[header.mode],
            ORDERS[header.order],
            CODERS[header.coder],
            DTYPES[dtype],
            len(header.shape),
        ),
        struct.pack(f"<{len(header.shape)}I", *header.shape),
        _RUN.pack(header.run),
        _PARAMS.pack(header.q, header.gain, header.offset, header.read_noise),
        _PRED.pack(
            len(header.intra.coefs), header.intra.shift, len(header.inter.coefs), header.inter.shift
        ),
        _pack_taps(header.intra),
        _pack_taps(header.inter),
        _LENGTHS.pack(len(payload), header.escape_offsets or escapes.size),
        payload,
        np.ascontiguousarray(escapes, dtype=dtype.newbyteorder("<")).tobytes(),
    ]
    body = b"".join(parts)
    return body + _CRC.pack(crc32c(body))


def chunk_version(header: ChunkHeader) -> int:
    """The oldest format version that decodes a chunk with this header."""
    if header.oriented and header.order != "qp":
        raise ValueError("only quantise-then-predict residuals can be oriented")
    if header.escape_offsets and header.order != "pq":
        raise ValueError("only predict-then-quantise chunks have escapes")
    return max(CODER_VERSION[header.coder], ORIENTED_VERSION if header.oriented else 1,
               OFFSETS_VERSION if header.escape_offsets else 1)


class _Reader:
    def __init__(self, buf: memoryview):
        self.buf = buf
        self.pos = 0

    def take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.buf):
            raise CorruptChunkError(
                f"truncated bigcomp chunk: {len(self.buf)} bytes end inside the {what}; "
                "the chunk was cut short (interrupted write or copy): re-copy or re-compress it"
            )
        view = self.buf[self.pos : self.pos + n]
        self.pos += n
        return view

    def unpack(self, fmt: struct.Struct, what: str) -> tuple:
        return fmt.unpack(self.take(fmt.size, what))


def _unpack_taps(reader: _Reader, n: int, shift: int, what: str, *, intra: bool) -> Taps:
    offsets, coefs = [], []
    for _ in range(n):
        dp, dy, dx, c = reader.unpack(_TAP, what)
        causal = dp == -1 or dy < 0 or (dy == 0 and dx < 0)
        # intra taps serve planes without a predecessor: they may not read one
        if dp not in ((0,) if intra else (0, -1)) or not causal or abs(dy) > 8 or abs(dx) > 8:
            raise CorruptChunkError(f"corrupt bigcomp chunk: non-causal predictor tap {dp, dy, dx}")
        offsets.append((dp, dy, dx))
        coefs.append(c)
    if shift > 30:
        raise CorruptChunkError(f"corrupt bigcomp chunk: predictor shift {shift}")
    return Taps(tuple(offsets), tuple(coefs), shift)


def unpack_chunk(buf) -> tuple[ChunkHeader, memoryview, np.ndarray]:
    """Parse and verify one encoded chunk.

    Returns
    -------
    header, payload, escapes

    Raises
    ------
    CorruptChunkError
        Truncated, not a bigcomp chunk, bad field, or checksum mismatch.
    FormatVersionError
        Written by a newer bigcomp.
    """
    view = memoryview(buf).cast("B")
    reader = _Reader(view)
    magic, version, mode, order, coder, dtype_code, ndim = reader.unpack(_FIXED, "header")
    if magic != MAGIC:
        raise CorruptChunkError(
            f"not a bigcomp chunk (magic {bytes(magic)!r}, expected {MAGIC!r}): "
            "the data was written by another codec or is damaged"
        )
    if version > FORMAT_VERSION:
        raise FormatVersionError(
            f"chunk written in bigcomp format version {version}; this bigcomp reads versions "
            f"<= {FORMAT_VERSION}: upgrade bigcomp (pip install -U bigcomp)"
        )
    if version < 1:
        raise CorruptChunkError(f"corrupt bigcomp chunk: format version {version}")
    try:
        mode_s, order_s, coder_s = _key(MODES, mode), _key(ORDERS, order), _key(CODERS, coder)
        dtype = _key(DTYPES, dtype_code)
    except StopIteration:
        raise CorruptChunkError(
            f"corrupt bigcomp chunk: unknown mode/order/coder/dtype {mode, order, coder, dtype_code}"
        ) from None
    if CODER_VERSION[coder_s] > version:
        raise CorruptChunkError(f"corrupt bigcomp chunk: coder {coder_s} in format version {version}")
    if ndim > 32:
        raise CorruptChunkError(f"corrupt bigcomp chunk: ndim {ndim}")
    shape = struct.unpack(f"<{ndim}I", reader.take(4 * ndim, "shape"))
    (run,) = reader.unpack(_RUN, "header")
    planes = int(np.prod(shape[:-2])) if ndim >= 3 else 1
    if run < 1 or planes % run:
        raise CorruptChunkError(f"corrupt bigcomp chunk: {run} planes per run for {planes} planes")
    q, gain, offset, read_noise = reader.unpack(_PARAMS, "parameters")
    n_intra, s_intra, n_inter, s_inter = reader.unpack(_PRED, "predictor")
    intra = _unpack_taps(reader, n_intra, s_intra, "predictor taps", intra=True)
    inter = _unpack_taps(reader, n_inter, s_inter, "predictor taps", intra=False)
    n_payload, n_escapes = reader.unpack(_LENGTHS, "lengths")
    offsets = version >= OFFSETS_VERSION and order_s == "pq"
    n_values = 0 if offsets else n_escapes  # escape values stored after the payload
    expected = reader.pos + n_payload + n_values * dtype.itemsize + _CRC.size
    if len(view) < expected:
        raise CorruptChunkError(
            f"truncated bigcomp chunk: {len(view)} bytes, its header announces {expected}; "
            "the chunk was cut short (interrupted write or copy): re-copy or re-compress it"
        )
    if len(view) > expected:
        raise CorruptChunkError(
            f"corrupt bigcomp chunk: {len(view)} bytes, its header announces {expected}"
        )
    (stored_crc,) = _CRC.unpack(view[-_CRC.size :])
    if crc32c(view[: -_CRC.size]) != stored_crc:
        raise CorruptChunkError(
            "corrupt bigcomp chunk: checksum mismatch (bit flip on disk or in transfer); "
            "restore the chunk from a backup or re-compress the source"
        )
    payload = reader.take(n_payload, "payload")
    escapes = np.frombuffer(
        reader.take(n_values * dtype.itemsize, "escapes"), dtype=dtype.newbyteorder("<")
    )
    header = ChunkHeader(
        mode_s, order_s, coder_s, dtype, tuple(shape), q, gain, offset, read_noise, intra, inter,
        run, oriented=version >= ORIENTED_VERSION and order_s == "qp",
        escape_offsets=n_escapes if offsets else 0,
    )
    return header, payload, escapes
