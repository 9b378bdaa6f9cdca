"""The chunk bitstream: header layout, versioning and checksum.

Every encoded chunk stands alone. Layout of format versions 1 to 7 (all little-endian)::

    offset  size        field
    0       4           magic b"BGCP"
    4       1           format version: the oldest that can decode the chunk (5 for exact
                        float32 values, 4 for coded escape offsets, 3 for oriented residuals,
                        else 2 for the rice coder, else 1; version 1 has no coder 2)
    5       1           mode: 0 lossless, 1 within-noise-level (WNL)
    6       1           order: 0 quantise-then-predict, 1 predict-then-quantise (DPCM)
    7       1           coder: 0 fast (bit-packed blocks of 32), 1 max (rANS with contexts),
                        2 rice (Golomb-Rice blocks of 64; format version 2)
    8       1           dtype: 1 uint8, 2 uint16, 3 float32
    9       1           ndim (0..32)
    10      2           flags (version >= 5; before: reserved, 0): bit 0 residuals oriented,
                        bit 1 (version >= 6) a per-pixel noise model follows, bit 2
                        (version >= 6) the ``max`` payload is the level model, bit 3
                        (version >= 7) its levels are at a fraction of a value; the others 0
    12      4·ndim      shape, uint32 each
    ..      4           planes per prediction run (uint32): plane p is predicted from plane p-1
                        unless p is a multiple of it; runs decode independently (in parallel)
    ..      32          q, gain, offset, read_noise (float64 each; zeros when lossless)
    ..      4           intra taps n, intra shift, inter taps n, inter shift (uint8 each)
    ..      8·n         taps, intra then inter: dp, dy, dx (int8), pad, coefficient (int32)
    ..      8           payload length in bytes (uint64)
    ..      8           number of escapes (uint64)
    ..      8           noise model length in bytes (uint64; only with flag bit 1)
    ..      payload     entropy-coded residuals
    ..      escapes     exact values (DPCM escapes), in the data's dtype (none from version 4);
                        from version 5, in float32 chunks, (u64 flat index, f32 value) pairs
    ..      model       per-pixel noise classes and maps (flag bit 1; bigcomp.pixelmodel)
    end-4   4           CRC32C of everything before it

Version 3 changes no field: in quantise-then-predict chunks of version >= 3 the residuals are
*oriented* (their sign flipped where the unrounded prediction lies above the rounded one, see
:mod:`bigcomp.kernels._predict`).

Version 4 changes where predict-then-quantise escapes go: the payload codes one symbol per pixel
and then, per escape, the zig-zagged offset of its value from the value nearest its prediction
(:mod:`bigcomp.kernels._dpcm`); the escapes field is empty. Chunks without escapes keep their
older version.

Version 5 says in flag bit 0 whether quantise-then-predict residuals are oriented (``fast``
chunks are not; before version 5 that followed from the version) and adds exact pixels to
float32 (quantise-then-predict) chunks: where the float32
reconstruction of a pixel's quantised value would miss the bound (float32 is coarser than the
step where the transform is steep), the encoder stores the pixel's value itself: 12 bytes per
pixel, ``(index, value)`` with strictly increasing flat indices, overwriting the decoded value.
Chunks without such pixels keep their older version.

Version 6 adds per-pixel noise models (sCMOS camera maps) to integer within-noise-level
quantise-then-predict chunks (flag bit 1): noise classes, each with its own integer table, and
per-pixel class and integer offset maps, inline or kept once per array and referenced by digest
(:mod:`bigcomp.pixelmodel`). It also adds the ``max`` coder's *level model* to integer
quantise-then-predict chunks (flag bit 2, lossless or WNL; the residuals are oriented): each
residual's context is the level of its own prediction, plus a bias per level; the payload
layout is in :mod:`bigcomp.kernels._level`.

Version 7 adds fractional levels to the level model (flag bit 3, with bit 2): a pixel's level
is read off its prediction in units of 1/2, 1/4, 1/8 or 1/16 of a value (the payload's fraction
bits) rather than the rounded value. Single planes at q >= 1, whose predictions crowd a few
integers, take 0.6-1.1 % less. Level-model chunks without them keep version 6. A single plane
of version 7 carries no inter-plane taps (never used there; older versions keep them).

A reader checks, in order: length, magic, version (a newer version raises
:class:`~bigcomp.errors.FormatVersionError` if the checksum holds; a damaged chunk whose version
byte was hit is *corrupt*), the header fields, the total length (a short chunk is *truncated*), the checksum (a
mismatch is *corrupt*), the decoded size against the per-chunk limit (:mod:`bigcomp.limits`),
then that the payload is long enough for the pixels the header claims (a lower bound per
coder). Nothing is allocated for the pixels before all of these pass.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import numpy as np
from crc32c import crc32c

from .errors import CorruptChunkError, FormatVersionError, UnsupportedDataError
from .limits import check_chunk_size, decode_bytes_per_pixel
from .predictors import Taps

__all__ = ["CODER_VERSION", "FORMAT_VERSION", "MAGIC", "ChunkHeader", "pack_chunk", "unpack_chunk"]

MAGIC = b"BGCP"
FORMAT_VERSION = 7  # the newest version this bigcomp reads and writes
CODER_VERSION = {"fast": 1, "max": 1, "rice": 2}  # the oldest version that has each coder
ORIENTED_VERSION = 3  # quantise-then-predict residuals are oriented from this version on
OFFSETS_VERSION = 4  # predict-then-quantise escapes are coded offsets from this version on
EXACT_VERSION = 5  # float32 chunks may carry exact (index, value) pixels from this version on
EXACT_DTYPE = np.dtype([("index", "<u8"), ("value", "<f4")])  # packed: 12 bytes
MODES = {"lossless": 0, "wnl": 1}
ORDERS = {"qp": 0, "pq": 1}
CODERS = {"fast": 0, "max": 1, "rice": 2}
DTYPES = {np.dtype("uint8"): 1, np.dtype("uint16"): 2, np.dtype("float32"): 3}
_FIXED = struct.Struct("<4sBBBBBBH")
FLAGS_VERSION = 5  # the reserved field holds flags from this version on
FLAG_ORIENTED = 1
FLAG_PIXEL_MODEL = 1 << 1  # a per-pixel noise model section follows (version >= 6)
FLAG_LEVEL_MODEL = 1 << 2  # the max payload is the level model (kernels/_level.py; version >= 6)
FLAG_LEVEL_FRACTION = 1 << 3  # its levels are at a fraction of a value (version >= 7)
LEVEL_FRACTION_VERSION = 7
LEVEL_MODEL_VERSION = 6
PIXEL_MODEL_VERSION = 6
_MODEL_LENGTH = struct.Struct("<Q")
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
    exact: int = 0  # float32 pixels stored exactly as (index, value) pairs (version >= 5)
    pixel_model: bytes = b""  # per-pixel noise classes and maps (version >= 6)
    level_model: bool = False  # max payload with level contexts (version >= 6)
    level_fraction: bool = False  # ... whose levels are at a fraction of a value (version >= 7)


def _pack_taps(taps: Taps) -> bytes:
    return b"".join(_TAP.pack(*off, c) for off, c in zip(taps.offsets, taps.coefs, strict=True))


def pack_chunk(header: ChunkHeader, payload: bytes, escapes: np.ndarray) -> bytes:
    """Serialise one encoded chunk (header, payload, escapes, checksum); ``escapes`` must be
    empty when the header counts escape offsets (they are in the payload)."""
    dtype = np.dtype(header.dtype)
    if header.escape_offsets and escapes.size:
        raise ValueError("escapes are either offsets in the payload or values, not both")
    if header.exact != (escapes.size if escapes.dtype == EXACT_DTYPE else 0):
        raise ValueError("exact pixels must come as an EXACT_DTYPE array of header.exact pairs")
    escape_dtype = EXACT_DTYPE if header.exact else dtype.newbyteorder("<")
    if dtype not in DTYPES:
        raise UnsupportedDataError(f"dtype {dtype} has no bitstream code")
    version = chunk_version(header)
    parts = [
        _FIXED.pack(
            MAGIC,
            version,
            MODES[header.mode],
            ORDERS[header.order],
            CODERS[header.coder],
            DTYPES[dtype],
            len(header.shape),
            (FLAG_ORIENTED if header.oriented and version >= FLAGS_VERSION else 0)
            | (FLAG_PIXEL_MODEL if header.pixel_model else 0)
            | (FLAG_LEVEL_MODEL if header.level_model else 0)
            | (FLAG_LEVEL_FRACTION if header.level_fraction else 0),
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
        _MODEL_LENGTH.pack(len(header.pixel_model)) if header.pixel_model else b"",
        payload,
        np.ascontiguousarray(escapes, dtype=escape_dtype).tobytes() if escapes.size else b"",
        header.pixel_model,
    ]
    body = b"".join(parts)
    return body + _CRC.pack(crc32c(body))


def chunk_version(header: ChunkHeader) -> int:
    """The oldest format version that decodes a chunk with this header."""
    if header.oriented and header.order != "qp":
        raise ValueError("only quantise-then-predict residuals can be oriented")
    if header.escape_offsets and header.order != "pq":
        raise ValueError("only predict-then-quantise chunks have escapes")
    if header.exact and (header.order != "qp" or np.dtype(header.dtype).kind != "f"):
        raise ValueError("only float32 quantise-then-predict chunks have exact pixels")
    if header.pixel_model and (header.mode != "wnl" or header.order != "qp"
                               or np.dtype(header.dtype).kind != "u"):
        raise ValueError("only integer within-noise-level quantise-then-predict chunks have a "
                         "per-pixel noise model")
    if header.level_model and (header.coder != "max" or header.order != "qp"
                               or not header.oriented or np.dtype(header.dtype).kind != "u"):
        raise ValueError("only integer max quantise-then-predict chunks (oriented residuals) "
                         "have the level model")
    if header.level_fraction and not header.level_model:
        raise ValueError("only level-model chunks have fractional levels")
    return max(CODER_VERSION[header.coder], ORIENTED_VERSION if header.oriented else 1,
               OFFSETS_VERSION if header.escape_offsets else 1,
               EXACT_VERSION if header.exact else 1,
               PIXEL_MODEL_VERSION if header.pixel_model else 1,
               LEVEL_MODEL_VERSION if header.level_model else 1,
               LEVEL_FRACTION_VERSION if header.level_fraction else 1)


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
        ``escapes`` holds the DPCM escape values of versions 1-3 (data dtype), the exact
        pixels of version 5 float32 chunks (:data:`EXACT_DTYPE`), or nothing.

    Raises
    ------
    CorruptChunkError
        Truncated, not a bigcomp chunk, bad field, or checksum mismatch.
    FormatVersionError
        Written by a newer bigcomp.
    ChunkTooLargeError
        It would decode to more than the per-chunk limit (:mod:`bigcomp.limits`).
    """
    try:
        view = memoryview(buf).cast("B")
    except TypeError:
        raise UnsupportedDataError(
            "a bigcomp chunk is bytes-like (bytes, bytearray, memoryview or a contiguous "
            f"uint8 array), got {type(buf).__name__}"
        ) from None
    reader = _Reader(view)
    magic, version, mode, order, coder, dtype_code, ndim, flags = reader.unpack(_FIXED, "header")
    if magic != MAGIC:
        raise CorruptChunkError(
            f"not a bigcomp chunk (magic {bytes(magic)!r}, expected {MAGIC!r}): "
            "the data was written by another codec or is damaged"
        )
    if version > FORMAT_VERSION:
        # a newer layout cannot be parsed, but its checksum still closes the chunk: without
        # it, a damaged version byte would tell the user to upgrade
        if len(view) < _FIXED.size + _CRC.size or not _crc_ok(view):
            raise CorruptChunkError(
                f"corrupt bigcomp chunk: format version {version} and a checksum mismatch "
                "(damaged on disk or in transfer); restore the chunk or re-compress the source"
            )
        raise FormatVersionError(
            f"chunk written in bigcomp format version {version}; this bigcomp reads versions "
            f"<= {FORMAT_VERSION}: upgrade bigcomp (pip install -U bigcomp)"
        )
    if version < 1:
        raise CorruptChunkError(f"corrupt bigcomp chunk: format version {version}")
    allowed = FLAG_ORIENTED if version >= FLAGS_VERSION and order == ORDERS["qp"] else 0
    if (version >= PIXEL_MODEL_VERSION and order == ORDERS["qp"] and mode == MODES["wnl"]
            and dtype_code in (DTYPES[np.dtype("uint8")], DTYPES[np.dtype("uint16")])):
        allowed |= FLAG_PIXEL_MODEL
    if (version >= LEVEL_MODEL_VERSION and order == ORDERS["qp"] and coder == CODERS["max"]
            and flags & FLAG_ORIENTED
            and dtype_code in (DTYPES[np.dtype("uint8")], DTYPES[np.dtype("uint16")])):
        allowed |= FLAG_LEVEL_MODEL
        if version >= LEVEL_FRACTION_VERSION and flags & FLAG_LEVEL_MODEL:
            allowed |= FLAG_LEVEL_FRACTION
    if flags & ~allowed:
        raise CorruptChunkError(f"corrupt bigcomp chunk: flags {flags:#x} in version {version}")
    try:
        mode_s, order_s, coder_s = _key(MODES, mode), _key(ORDERS, order), _key(CODERS, coder)
        dtype = _key(DTYPES, dtype_code)
    except StopIteration:
        raise CorruptChunkError(
            f"corrupt bigcomp chunk: unknown mode/order/coder/dtype {mode, order, coder, dtype_code}"
        ) from None
    if CODER_VERSION[coder_s] > version:
        raise CorruptChunkError(f"corrupt bigcomp chunk: coder {coder_s} in format version {version}")
    if dtype.kind == "f" and (mode_s == "lossless" or order_s == "pq"):
        # no encoder writes these: lossless and predict-then-quantise are integer-only
        raise CorruptChunkError(
            f"corrupt bigcomp chunk: float32 data in {mode_s} mode, order {order_s}"
        )
    if ndim > 32:
        raise CorruptChunkError(f"corrupt bigcomp chunk: ndim {ndim}")
    shape = struct.unpack(f"<{ndim}I", reader.take(4 * ndim, "shape"))
    n = math.prod(shape)  # exact: numpy's product wraps around for huge shapes
    (run,) = reader.unpack(_RUN, "header")
    planes = math.prod(shape[:-2]) if ndim >= 3 else 1
    if run < 1 or planes % run:
        raise CorruptChunkError(f"corrupt bigcomp chunk: {run} planes per run for {planes} planes")
    q, gain, offset, read_noise = reader.unpack(_PARAMS, "parameters")
    n_intra, s_intra, n_inter, s_inter = reader.unpack(_PRED, "predictor")
    intra = _unpack_taps(reader, n_intra, s_intra, "predictor taps", intra=True)
    inter = _unpack_taps(reader, n_inter, s_inter, "predictor taps", intra=False)
    n_payload, n_escapes = reader.unpack(_LENGTHS, "lengths")
    (n_model,) = (reader.unpack(_MODEL_LENGTH, "lengths") if flags & FLAG_PIXEL_MODEL
                  else (0,))
    if flags & FLAG_PIXEL_MODEL and n_model == 0:
        raise CorruptChunkError("corrupt bigcomp chunk: flagged noise model is empty")
    offsets = version >= OFFSETS_VERSION and order_s == "pq"
    exact = version >= EXACT_VERSION and dtype.kind == "f"
    if n_escapes and not (order_s == "pq" or exact):
        raise CorruptChunkError(
            f"corrupt bigcomp chunk: {n_escapes} escapes in a {mode_s} {order_s} chunk"
        )
    if n_escapes > n:
        raise CorruptChunkError(f"corrupt bigcomp chunk: {n_escapes} escapes in {n} pixels")
    escape_dtype = EXACT_DTYPE if exact else dtype.newbyteorder("<")
    n_values = 0 if offsets else n_escapes  # escape entries stored after the payload
    expected = reader.pos + n_payload + n_values * escape_dtype.itemsize + n_model + _CRC.size
    if len(view) < expected:
        raise CorruptChunkError(
            f"truncated bigcomp chunk: {len(view)} bytes, its header announces {expected}; "
            "the chunk was cut short (interrupted write or copy): re-copy or re-compress it"
        )
    if len(view) > expected:
        raise CorruptChunkError(
            f"corrupt bigcomp chunk: {len(view)} bytes, its header announces {expected}"
        )
    if not _crc_ok(view):
        raise CorruptChunkError(
            "corrupt bigcomp chunk: checksum mismatch (bit flip on disk or in transfer); "
            "restore the chunk from a backup or re-compress the source"
        )
    # after the checksum: damage is not a size
    check_chunk_size(n, decode_bytes_per_pixel(dtype, mode_s, order_s), shape)
    n_symbols = n + (n_escapes if offsets else 0)
    if n_symbols > max_symbols(coder_s, n_payload):
        raise CorruptChunkError(
            f"corrupt bigcomp chunk: its header claims {n} pixels, more than a {coder_s} "
            f"payload of {n_payload} bytes can hold"
        )
    payload = reader.take(n_payload, "payload")
    escapes = np.frombuffer(reader.take(n_values * escape_dtype.itemsize, "escapes"),
                            dtype=escape_dtype)
    pixel_model = bytes(reader.take(n_model, "noise model"))
    if exact and n_values:
        index = escapes["index"]
        if index[-1] >= n or (np.diff(index.astype(np.int64)) <= 0).any() or not np.isfinite(
                escapes["value"]).all():
            raise CorruptChunkError("corrupt bigcomp chunk: bad exact pixels")
    header = ChunkHeader(
        mode_s, order_s, coder_s, dtype, tuple(shape), q, gain, offset, read_noise, intra, inter,
        run, oriented=bool(flags & FLAG_ORIENTED) if version >= FLAGS_VERSION else (
            version >= ORIENTED_VERSION and order_s == "qp"),
        escape_offsets=n_escapes if offsets else 0, exact=n_values if exact else 0,
        pixel_model=pixel_model, level_model=bool(flags & FLAG_LEVEL_MODEL),
        level_fraction=bool(flags & FLAG_LEVEL_FRACTION),
    )
    return header, payload, escapes


def _crc_ok(view: memoryview) -> bool:
    (stored,) = _CRC.unpack(view[-_CRC.size :])
    return crc32c(view[: -_CRC.size]) == stored


# Most symbols a payload of each coder can hold (a lower bound on its bytes per symbol): fast
# spends a width byte per block of 32 symbols; rice at least 7 bits per block of 64 (header bit
# and a 6-bit width 0) after 12 for a group's first; max none (a constant chunk is 5 bytes
# whatever its size, and rANS codes a certain symbol in zero bits): the size limit bounds it.
def max_symbols(coder: str, payload_bytes: int) -> int | float:
    """Most symbols that a ``coder`` payload of ``payload_bytes`` bytes can decode to."""
    if coder == "fast":
        return 32 * payload_bytes
    if coder == "rice":
        return 64 * (8 * payload_bytes // 7 + 1)
    return math.inf
