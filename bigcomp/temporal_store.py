"""Block codec and payload formats of the temporal model (:mod:`bigcomp.temporal`).

One *block* is ``(t, *tile)`` pixels of a series with the time axis first. Given the block's
per-pixel median ``m`` and stored noise ``s`` (see :class:`TemporalParams`):

* ``z = (x - m) / s``; pixels with ``|z| > threshold`` are *outliers*, kept exactly;
* the others get ``k = rint((x - m) / (q·s))`` and come back as ``x' = m + k·q·s``, rounded and
  clipped to the dtype for integer data (cast for float data);
* the encoder recomputes ``x'`` exactly as the decoder will and checks
  ``|x' - x| <= q/2·s + 0.5`` (integers; float: ``q/2·s + spacing(x)``) on every pixel; a pixel
  that fails (floating-point edge cases) becomes an outlier.

Stored noise
------------
``s`` is a float32 whose mantissa is rounded *up* to :data:`NOISE_MANTISSA_BITS` bits (relative
precision ``2**-5``); its *code* is the float32 bit pattern shifted right by ``23 - 5``. The
payload holds ``code - base_code(m)`` (>= 0), where ``base_code`` is the code of the noise the
decoder can compute from the median alone (camera σ at ``m``, the floor): with
``noise="camera"`` the payload is all zeros and costs a few bytes.

Payloads
--------
Every payload (one element of a zarr variable-length-bytes array) is self-checking::

    offset size  field (little-endian)
    0      3     magic b"BCT"
    3      1     format version (1)
    4      1     kind: 1 median, 2 noise, 3 residuals, 4 outliers
    5      1     variant (per kind, below)
    6      2     reserved (0)
    8      4     count: pixels (kinds 1-3) or outliers (kind 4)
    12     4     CRC32C of the body
    16     ..    body: u32 n, u32 length[n], then the n sections

median  0: foundation lossless (:func:`bigcomp.encode_chunk`, q=0) of ``clip(m - base)`` as
           uint8/uint16; sections: base (i64), chunk, escape gaps, escape values (zig-zag
           ``m - base``, ``max`` coder) for pixels beyond the uint16 range.
        1: zig-zag of the first difference of the flattened tile, ``max`` coder.
        2: raw little-endian values, byte-shuffled, zlib (float data, or wide integers).
noise   0: ``code - base_code(m)``, ``max`` coder (row length = tile width).
resid.  0: zig-zag ``k``, ``max`` coder; 1: zig-zag of ``k[t] - k[t-1]`` (previous frame as
           predictor), ``max`` coder; 2: foundation lossless of ``k + 127`` as uint8. The
           encoder codes all that apply and keeps the smallest.
outl.   0: gaps between flat indices (``max`` coder, row length 1) and zig-zag ``x - m``
           (``max`` coder); 1: gaps and raw values (zlib), for floats or huge values.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np
from crc32c import crc32c

from .chunk import decode_chunk, encode_chunk
from .errors import CorruptChunkError, FormatVersionError, ParameterError
from .kernels._coders import decode_max, encode_max, unzigzag, zigzag
from .noise import CameraModel

__all__ = [
    "NOISE_MANTISSA_BITS",
    "NOISE_MODES",
    "TemporalParams",
    "decode_block",
    "decode_model",
    "encode_block",
    "encode_model",
    "fit_model",
    "lower_median",
    "noise_code",
    "noise_value",
    "reconstruct",
]

MAGIC = b"BCT"
FORMAT_VERSION = 1
KINDS = {"median": 1, "noise": 2, "residuals": 3, "outliers": 4}
NOISE_MODES = ("mad", "camera", "max")
NOISE_MANTISSA_BITS = 5
MAD_SCALE = 1.4826
_SHIFT = 23 - NOISE_MANTISSA_BITS
_HEAD = struct.Struct("<3sBBBHII")
_K_LIMIT = 1 << 20  # |k| beyond this: the pixel is kept as an outlier
_INT_DTYPES = tuple(np.dtype(d) for d in ("uint8", "uint16", "uint32", "int8", "int16", "int32"))
_FLOAT_DTYPES = (np.dtype("float32"), np.dtype("float64"))
SUPPORTED_DTYPES = _INT_DTYPES + _FLOAT_DTYPES


# ------------------------------------------------------------------------------ parameters
@dataclass(frozen=True)
class TemporalParams:
    """Everything a block needs to be encoded or decoded (all of it is in the store metadata).

    Parameters
    ----------
    dtype : numpy.dtype
        The data's dtype (one of :data:`SUPPORTED_DTYPES`).
    q : float
        Quantisation step in units of the pixel's noise ``s`` (> 0).
    threshold : float
        Pixels with ``|x - m| / s > threshold`` are kept exactly.
    noise : {"mad", "camera", "max"}
        ``s = max(1.4826·MAD, floor)``, ``max(camera σ(m), floor)`` or the largest of the three.
    camera : CameraModel or None
        Needed for ``"camera"``; used by ``"max"`` when given.
    floor : float
        Smallest noise (data units). For float data ``0`` means ``2**-20·|m|``.
    """

    dtype: np.dtype
    q: float = 1.0
    threshold: float = 4.0
    noise: str = "max"
    camera: CameraModel | None = None
    floor: float = 1.0

    def base_noise(self, m: np.ndarray) -> np.ndarray:
        """The noise the decoder derives from the median alone (float64)."""
        m = np.asarray(m, np.float64)
        b = np.full(m.shape, max(float(self.floor), 1e-30))
        if self.camera is not None and self.noise in ("camera", "max"):
            b = np.maximum(b, self.camera.sigma(m))
        if self.dtype.kind == "f" and self.floor == 0:
            b = np.maximum(b, np.abs(m) * 2.0**-20)
        return b

    def to_dict(self) -> dict:
        """JSON-serialisable form (the store's metadata)."""
        return {"dtype": self.dtype.name, "q": self.q, "threshold": self.threshold,
                "noise": self.noise, "noise_floor": self.floor,
                "camera": None if self.camera is None else self.camera.to_dict(),
                "noise_mantissa_bits": NOISE_MANTISSA_BITS}

    @classmethod
    def from_dict(cls, d: dict) -> TemporalParams:
        """Inverse of :meth:`to_dict`."""
        if d.get("noise_mantissa_bits", NOISE_MANTISSA_BITS) != NOISE_MANTISSA_BITS:
            raise FormatVersionError("store uses another noise precision: upgrade bigcomp")
        cam = d.get("camera")
        return cls(np.dtype(d["dtype"]), float(d["q"]), float(d["threshold"]), d["noise"],
                   None if cam is None else CameraModel(**cam), float(d["noise_floor"]))


# --------------------------------------------------------------------------- statistics
def lower_median(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Lower median along ``axis`` (an element of the data: exact for integers).

    Examples
    --------
    >>> lower_median(np.array([[3, 1], [1, 5], [2, 9], [7, 2]], np.uint16)).tolist()
    [2, 2]
    """
    n = x.shape[axis]
    return np.take(np.partition(x, (n - 1) // 2, axis=axis), (n - 1) // 2, axis=axis)


def noise_code(s: np.ndarray) -> np.ndarray:
    """Code (uint32) of the smallest stored noise value >= ``s`` (``s > 0``)."""
    s = np.asarray(s, np.float64)
    f = s.astype(np.float32)
    f = np.where(f.astype(np.float64) < s, np.nextafter(f, np.float32(np.inf)), f)
    bits = f.view(np.uint32).astype(np.uint64)
    return ((bits + ((1 << _SHIFT) - 1)) >> _SHIFT).astype(np.uint32)


def noise_value(code: np.ndarray) -> np.ndarray:
    """Stored noise (float64) of a :func:`noise_code`."""
    bits = np.asarray(code, np.uint32) << np.uint32(_SHIFT)
    return bits.view(np.float32).astype(np.float64)


def fit_model(x: np.ndarray, params: TemporalParams) -> tuple[np.ndarray, np.ndarray]:
    """Median and noise code of a block ``(t, *tile)`` (time first).

    Returns
    -------
    m : numpy.ndarray
        Lower median over time, in the data's dtype.
    code : numpy.ndarray
        :func:`noise_code` of ``s`` (uint32); ``noise_value(code)`` is the stored noise.
    """
    m = lower_median(x, 0)
    base = params.base_noise(m)
    if params.noise == "camera":
        return m, noise_code(base)
    wide = np.float64 if x.dtype.kind == "f" or x.dtype.itemsize >= 4 else np.int32
    mad = lower_median(np.abs(x.astype(wide) - m.astype(wide)), 0)
    return m, noise_code(np.maximum(MAD_SCALE * mad.astype(np.float64), base))


# -------------------------------------------------------------------------------- payloads
def _sections(parts: list[bytes]) -> bytes:
    head = np.array([len(parts), *map(len, parts)], "<u4").tobytes()
    return head + b"".join(parts)


def _pack(kind: str, variant: int, count: int, parts: list[bytes]) -> bytes:
    body = _sections(parts)
    return _HEAD.pack(MAGIC, FORMAT_VERSION, KINDS[kind], variant, 0, count, crc32c(body)) + body


def _unpack(buf: bytes, kind: str, where: str) -> tuple[int, int, list[memoryview]]:
    """Check a payload and return (variant, count, sections)."""
    buf = bytes(buf)
    if len(buf) == 0:
        raise CorruptChunkError(f"{where}: payload missing (store incomplete: was the "
                                "compression interrupted? run it again)")
    if len(buf) < _HEAD.size + 4:
        raise CorruptChunkError(f"{where}: payload truncated ({len(buf)} bytes)")
    magic, version, k, variant, _, count, crc = _HEAD.unpack_from(buf)
    if magic != MAGIC:
        raise CorruptChunkError(f"{where}: not a bigcomp temporal payload")
    if version > FORMAT_VERSION:
        raise FormatVersionError(f"{where}: payload format {version} is newer than this "
                                 f"bigcomp reads ({FORMAT_VERSION}): upgrade bigcomp")
    if k != KINDS[kind]:
        raise CorruptChunkError(f"{where}: expected a {kind} payload, found kind {k}")
    body = memoryview(buf)[_HEAD.size:]
    if crc32c(body) != crc:
        raise CorruptChunkError(f"{where}: checksum mismatch (corrupt payload)")
    n = int(np.frombuffer(body[:4], "<u4")[0])
    if len(body) < 4 + 4 * n:
        raise CorruptChunkError(f"{where}: bad section table")
    lengths = np.frombuffer(body[4 : 4 + 4 * n], "<u4").astype(np.int64)
    ends = 4 + 4 * n + np.cumsum(lengths)
    if n and ends[-1] != len(body):
        raise CorruptChunkError(f"{where}: section lengths do not match the payload")
    starts = np.concatenate([[4 + 4 * n], ends[:-1]])
    return variant, count, [body[a:b] for a, b in zip(starts, ends, strict=True)]


def _max_or_raw(u: np.ndarray, row_length: int) -> tuple[int, bytes]:
    """``max``-code uint64 symbols when they fit in uint32, else zlib of raw uint64."""
    if u.size == 0 or int(u.max()) < (1 << 32):
        return 0, encode_max(np.ascontiguousarray(u, np.uint32), row_length)
    return 1, zlib.compress(u.astype("<u8").tobytes(), 6)


def _shuffled(a: np.ndarray) -> bytes:
    b = np.ascontiguousarray(a, a.dtype.newbyteorder("<")).view(np.uint8)
    return zlib.compress(b.reshape(-1, a.dtype.itemsize).T.tobytes(), 6)


def _unshuffled(buf, dtype: np.dtype, n: int) -> np.ndarray:
    raw = np.frombuffer(zlib.decompress(buf), np.uint8)
    if raw.size != n * dtype.itemsize:
        raise ValueError("raw section has the wrong length")
    return raw.reshape(dtype.itemsize, n).T.copy().view(dtype.newbyteorder("<")).reshape(-1)


def _encode_gaps(flat_index: np.ndarray) -> bytes:
    gaps = np.diff(flat_index, prepend=-1) - 1
    return encode_max(gaps.astype(np.uint32), 1)


def _decode_gaps(buf, n: int) -> np.ndarray:
    return np.cumsum(decode_max(buf, n, 1).astype(np.int64) + 1) - 1


def _encode_median(m: np.ndarray) -> bytes:
    n = m.size
    if m.dtype.kind == "f":
        return _pack("median", 2, n, [_shuffled(m)])
    if n == 0:
        return _pack("median", 1, 0, [b""])
    v = m.astype(np.int64)
    base = int(v.min())
    span = 255 if int(v.max()) - base <= 255 else 65535
    esc = np.flatnonzero(v.ravel() - base > span)
    if esc.size <= n // 100:
        small = np.minimum(v - base, span).astype(np.uint8 if span == 255 else np.uint16)
        escv = zigzag(v.ravel()[esc] - base)
        return _pack("median", 0, n, [np.int64(base).tobytes(), encode_chunk(small, q=0),
                                      np.uint32(esc.size).tobytes(), _encode_gaps(esc),
                                      encode_max(escv.astype(np.uint32), 1)])
    d = zigzag(np.diff(v.ravel(), prepend=0))
    if int(d.max()) < (1 << 32):
        return _pack("median", 1, n, [encode_max(d.astype(np.uint32), m.shape[-1])])
    return _pack("median", 2, n, [_shuffled(m)])


def _decode_median(buf, shape: tuple[int, ...], dtype: np.dtype, where: str) -> np.ndarray:
    variant, count, parts = _unpack(buf, "median", where)
    n = int(np.prod(shape))
    if count != n:
        raise CorruptChunkError(f"{where}: median payload for {count} pixels, expected {n}")
    try:
        if variant == 0:
            base = int(np.frombuffer(parts[0], "<i8")[0])
            v = decode_chunk(parts[1]).astype(np.int64).reshape(-1) + base
            nesc = int(np.frombuffer(parts[2], "<u4")[0])
            esc = _decode_gaps(parts[3], nesc)
            v[esc] = unzigzag(decode_max(parts[4], nesc, 1)) + base
        elif variant == 1:
            v = np.cumsum(unzigzag(decode_max(parts[0], n, shape[-1])))
        elif variant == 2:
            return _unshuffled(parts[0], dtype, n).astype(dtype).reshape(shape)
        else:
            raise ValueError(f"unknown median variant {variant}")
        return v.astype(dtype).reshape(shape)
    except (ValueError, IndexError) as exc:
        raise CorruptChunkError(f"{where}: {exc}") from exc


def encode_model(m: np.ndarray, code: np.ndarray, params: TemporalParams) -> tuple[bytes, bytes]:
    """Median and noise payloads of one tile."""
    r = code.astype(np.int64) - noise_code(params.base_noise(m)).astype(np.int64)
    if r.size and r.min() < 0:  # cannot happen: s >= base noise by construction
        raise AssertionError("noise below its base value")
    noise = _pack("noise", 0, r.size, [encode_max(r.astype(np.uint32).ravel(), m.shape[-1])])
    return _encode_median(m), noise


def decode_model(median: bytes, noise: bytes, shape: tuple[int, ...], params: TemporalParams,
                 where: str = "model") -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_model`: ``(m, s)``, ``s`` the stored noise (float64)."""
    m = _decode_median(median, shape, params.dtype, f"{where} median")
    variant, count, parts = _unpack(noise, "noise", f"{where} noise")
    if variant != 0 or count != m.size:
        raise CorruptChunkError(f"{where} noise: bad header (variant {variant}, count {count})")
    try:
        r = decode_max(parts[0], m.size, shape[-1]).reshape(shape)
    except ValueError as exc:
        raise CorruptChunkError(f"{where} noise: {exc}") from exc
    code = noise_code(params.base_noise(m)).astype(np.int64) + r
    return m, noise_value(code.astype(np.uint32))


# ---------------------------------------------------------------------------- residuals
def reconstruct(m: np.ndarray, qs: np.ndarray, k: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``m + k·qs`` rounded and clipped to an integer ``dtype``, or cast to a float one."""
    v = m.astype(np.float64) + k * qs
    if dtype.kind == "f":
        return v.astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.rint(v), info.min, info.max).astype(dtype)


def allowed_error(x: np.ndarray, s: np.ndarray, q: float) -> np.ndarray:
    """The documented bound ``q/2·s + 0.5`` (integers) or ``q/2·s + spacing(x)`` (floats)."""
    if x.dtype.kind == "f":
        return q / 2 * s + np.abs(np.spacing(x)).astype(np.float64)
    return q / 2 * s + 0.5


def encode_block(x: np.ndarray, m: np.ndarray, s: np.ndarray,
                 params: TemporalParams) -> tuple[bytes, bytes, dict]:
    """Residual and outlier payloads of a block ``(t, *tile)``.

    Returns
    -------
    residuals, outliers : bytes
    stats : dict
        ``n`` pixels, ``outliers``, ``forced`` (outliers only because the bound check failed),
        ``variant`` of the residual payload, ``max_err`` (largest ``|x' - x| / s`` of the
        non-outliers).
    """
    q, dt = params.q, x.dtype
    xf = x.astype(np.float64)
    qs = q * s
    dev = xf - m.astype(np.float64)
    out = ~(np.abs(dev / s) <= params.threshold)
    kf = np.rint(dev / qs)
    out |= np.abs(kf) > _K_LIMIT
    kf[out] = 0
    k = kf.astype(np.int32)
    # verify the bound on the values the decoder will produce
    err = np.abs(reconstruct(m, qs, k, dt).astype(np.float64) - xf)
    bad = (err > allowed_error(x, s, q)) & ~out
    forced = int(bad.sum())
    if forced:
        out |= bad
        k[bad] = 0
    err[out] = 0
    max_err = float((err / s).max(initial=0.0))

    # residuals: keep the smallest of the coders that apply
    rl = x.shape[-1] if x.ndim > 1 else 1
    cands = [(0, encode_max(zigzag(k).astype(np.uint32).ravel(), rl))]
    if k.shape[0] > 1:
        d = k.copy()
        d[1:] -= k[:-1]
        cands.append((1, encode_max(zigzag(d).astype(np.uint32).ravel(), rl)))
    if k.size and np.abs(k).max() <= 127:
        cands.append((2, encode_chunk((k + 127).astype(np.uint8), q=0)))
    variant, best = min(cands, key=lambda c: len(c[1]))
    resid = _pack("residuals", variant, k.size, [best])

    # outliers: exact values
    idx = np.flatnonzero(out)
    if dt.kind == "f":
        ov, vals = 1, _shuffled(x.reshape(-1)[idx])
    else:
        mb = np.broadcast_to(m, x.shape).reshape(-1)[idx].astype(np.int64)
        ov, vals = _max_or_raw(zigzag(x.reshape(-1)[idx].astype(np.int64) - mb), 1)
    outl = _pack("outliers", ov, idx.size, [_encode_gaps(idx), vals])
    stats = {"n": int(x.size), "outliers": int(idx.size), "forced": forced,
             "variant": variant, "max_err": max_err}
    return resid, outl, stats


def decode_block(resid: bytes, outl: bytes, m: np.ndarray, s: np.ndarray,
                 shape: tuple[int, ...], params: TemporalParams,
                 where: str = "block") -> np.ndarray:
    """Inverse of :func:`encode_block`: the block ``(t, *tile)`` in the data's dtype."""
    dt = params.dtype
    n = int(np.prod(shape))
    rl = shape[-1] if len(shape) > 1 else 1
    variant, count, parts = _unpack(resid, "residuals", f"{where} residuals")
    if count != n:
        raise CorruptChunkError(f"{where} residuals: {count} pixels, expected {n}")
    try:
        if variant == 2:
            k = decode_chunk(parts[0]).astype(np.int64).reshape(shape) - 127
        elif variant in (0, 1):
            k = unzigzag(decode_max(parts[0], n, rl)).reshape(shape)
            if variant == 1:
                k = np.cumsum(k, axis=0)
        else:
            raise ValueError(f"unknown residual variant {variant}")
    except ValueError as exc:
        raise CorruptChunkError(f"{where} residuals: {exc}") from exc
    x = reconstruct(m, params.q * s, k, dt).reshape(-1)
    variant, count, parts = _unpack(outl, "outliers", f"{where} outliers")
    try:
        idx = _decode_gaps(parts[0], count)
        if count and (idx[-1] >= n or idx[0] < 0):
            raise ValueError("outlier index out of range")
        if variant == 1 and dt.kind == "f":
            x[idx] = _unshuffled(parts[1], dt, count)
        elif variant == 1:
            raw = np.frombuffer(zlib.decompress(parts[1]), "<u8")
            if raw.size != count:
                raise ValueError("outlier values have the wrong length")
            mb = np.broadcast_to(m, shape).reshape(-1)[idx].astype(np.int64)
            x[idx] = (unzigzag(raw) + mb).astype(dt)
        elif variant == 0:
            mb = np.broadcast_to(m, shape).reshape(-1)[idx].astype(np.int64)
            x[idx] = (unzigzag(decode_max(parts[1], count, 1)) + mb).astype(dt)
        else:
            raise ValueError(f"unknown outlier variant {variant}")
    except (ValueError, IndexError, zlib.error) as exc:
        raise CorruptChunkError(f"{where} outliers: {exc}") from exc
    return x.reshape(shape)


def check_params(q, threshold, noise, camera, floor) -> None:
    """Raise :class:`ParameterError` for parameters no series can be compressed with."""
    if not isinstance(q, (int, float, np.integer, np.floating)) or not np.isfinite(q) or q <= 0:
        raise ParameterError(f"q must be a finite number > 0 (quantisation step in units of "
                             f"each pixel's noise), got {q!r}; for exact storage use "
                             "bigcomp.compress(..., mode='lossless')")
    if not isinstance(threshold, (int, float, np.integer, np.floating)) or not threshold > 0:
        raise ParameterError(f"threshold must be > 0 (in noise units; pixels beyond it are "
                             f"kept exactly), got {threshold!r}")
    if noise not in NOISE_MODES:
        raise ParameterError(f"noise must be one of {NOISE_MODES}, got {noise!r}")
    if noise == "camera" and camera is None:
        raise ParameterError("noise='camera' needs camera=CameraModel(gain=..., offset=..., "
                             "read_noise=...); or use noise='mad' to estimate it per pixel")
    if camera is not None and not isinstance(camera, CameraModel):
        raise ParameterError(f"camera must be a bigcomp.CameraModel, got {type(camera).__name__}")
    if not isinstance(floor, (int, float, np.integer, np.floating)) or not floor >= 0:
        raise ParameterError(f"noise_floor must be a number >= 0, got {floor!r}")
