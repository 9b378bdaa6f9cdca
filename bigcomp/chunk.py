"""Encode and decode one chunk: the whole codec pipeline for a single in-memory array.

``encode_chunk`` = normalise input -> quantise (tables, or analytic VST for float32) -> predict
-> entropy-code -> :func:`bigcomp.format.pack_chunk`. ``decode_chunk`` reverses it. The codec
classes (numcodecs, zarr v3) are thin wrappers around these two functions.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import (
    BigcompError,
    ChunkMismatchError,
    CorruptChunkError,
    ParameterError,
    UnsupportedDataError,
)
from .format import EXACT_DTYPE, ChunkHeader, pack_chunk, unpack_chunk
from .kernels import _coders, _rice
from .kernels._dpcm import FRACTION_BITS, dpcm_decode, dpcm_encode
from .kernels._fused import decode_fast_fused, encode_fast_fused
from .kernels._fused_rice import decode_rice_fused, encode_rice_fused
from .kernels._level import encode_level, level_model_applies
from .kernels._level_dec import decode_level
from .kernels._lookup import lookup
from .kernels._numba import cores_free, use_parallel
from .kernels._pixelmodel import dequantise_classes, quantise_classes
from .kernels._predict import predict_decode, predict_encode
from .kernels._scratch import scratch
from .limits import check_chunk_size, decode_bytes_per_pixel
from .noise import CameraModel, quantisation_tables
from .pixelcamera import PixelCamera
from .pixelmodel import NoiseMaps, build_model, parse_model
from .pixelmodel import noise_maps as noise_maps_of
from .predictors import Taps, choose_predictor

__all__ = ["SUPPORTED_DTYPES", "decode_chunk", "encode_chunk", "error_bound"]

SUPPORTED_DTYPES = (np.dtype("uint8"), np.dtype("uint16"), np.dtype("float32"))
ORDERS = ("qp", "pq")
CODERS = ("fast", "max", "rice")
_FLOAT_K_LIMIT = 1 << 29
# predict-then-quantise works on forward(x) / q in fixed point (2**FRACTION_BITS per step);
# below 2**29 steps the int64 table is exact to well under one unit and residual codes fit
# uint32, beyond it the arithmetic the bound rests on cannot hold
_DPCM_STEP_LIMIT = 1 << 29
_NO_TAPS = Taps((), (), 0)
# below this many pixels a chunk is faster on one thread than in numba's parallel regions
# (measured on 2 free cores: 2**18..2**20-pixel chunks encode 1.3-1.7x faster in parallel);
# a busy machine runs chunks on one thread whatever their size (see cores_free)
PARALLEL_MIN_SIZE = 1 << 19


def _as_3d(shape: tuple[int, ...]) -> tuple[tuple[int, int, int], int]:
    """View a chunk as (planes, rows, cols); ``nz`` planes form one stack along axis -3."""
    if len(shape) == 0:
        return (1, 1, 1), 1
    if len(shape) == 1:
        return (1, 1, shape[0]), 1
    if len(shape) == 2:
        return (1, shape[0], shape[1]), 1
    planes = math.prod(shape[:-2])
    return (planes, shape[-2], shape[-1]), max(1, shape[-3])


def validate_parameters(q: float, camera: CameraModel | None, order: str, coder: str) -> None:
    """Raise :class:`ParameterError` for parameters no chunk can be encoded with."""
    if not isinstance(q, (int, float, np.floating, np.integer)) or not np.isfinite(q) or q < 0:
        raise ParameterError(
            f"q must be a finite number >= 0 (quantisation step in noise sigma; 0 = lossless), "
            f"got {q!r}"
        )
    if q > 0 and camera is None:
        raise ParameterError(
            "lossy (q > 0) compression needs the camera model: pass "
            "camera=CameraModel(gain=..., offset=..., read_noise=...) "
            "(bigcomp.estimate_camera(data) estimates it from the data)"
        )
    if camera is not None and not isinstance(camera, (CameraModel, PixelCamera)):
        raise ParameterError("camera must be a bigcomp.CameraModel or PixelCamera, got "
                             f"{type(camera).__name__}")
    if order not in ORDERS:
        raise ParameterError(f"order must be one of {ORDERS}, got {order!r}")
    if coder not in CODERS:
        raise ParameterError(f"coder must be one of {CODERS}, got {coder!r}")


def oriented_residuals(coder: str, order: str = "qp") -> bool:
    """Whether a chunk of ``coder`` and ``order`` codes oriented residuals (format version 3;
    the CPU and GPU encoders both ask here): ``max`` and ``rice`` in the ``qp`` order (1-9 %
    smaller); ``fast`` keeps plain ones (its bit widths barely gain, and the sign flip
    lengthens its decoder's west-neighbour chain: a third slower)."""
    return order == "qp" and coder != "fast"


def predictor_for(k: np.ndarray, nz: int, lo: int, hi: int, coder: str, order: str = "qp"
                  ) -> tuple[Taps, Taps]:
    """The predictor pair a chunk coded with ``coder`` gets (the GPU encoder calls this too,
    so both write the same bytes): ``fast`` only the fixed predictors (cheap); ``max`` and
    ``rice`` also the least-squares fits and their reweighted refit, scored on oriented
    residuals where they code them (``order``); only ``max`` the 37-tap fit (``rice`` trades
    its 0-3 % for half the prediction time)."""
    fitted = coder != "fast"
    return choose_predictor(k, nz, lo, hi, fit=fitted, reweight=fitted,
                            orient=oriented_residuals(coder, order), wide=coder == "max")


def header_inter(inter: Taps, shape3: tuple[int, int, int], level_fraction: bool) -> Taps:
    """The inter-plane taps a chunk's header carries: none in a single plane of format version
    7 (fractional levels), where they would never be used (32 bytes); chunks of older versions
    keep them, as their decoders expect. The GPU encoder calls this too (same bytes)."""
    return _NO_TAPS if level_fraction and shape3[0] == 1 else inter


def _conversion_hint(dtype: np.dtype) -> str:
    if dtype.kind == "f":
        return "data.astype('float32')"
    if dtype.kind in "iub" and dtype.itemsize <= 2:
        return "data.astype('uint16') if no value is negative"
    if dtype.kind in "iu":
        return "data.astype('uint16') if every value fits 0..65535"
    return "a numeric array of camera counts"


def _native(a: np.ndarray) -> np.ndarray:
    """``a`` in native byte order when it is a supported dtype in the other one (big-endian
    TIFF/HDF5 data): the same numbers, so encoded without asking."""
    if a.dtype.byteorder not in ("=", "|") and a.dtype.newbyteorder("=") in SUPPORTED_DTYPES:
        return a.astype(a.dtype.newbyteorder("="))
    return a


def _check_data(a: np.ndarray, q: float, order: str) -> None:
    if a.dtype not in SUPPORTED_DTYPES:
        raise UnsupportedDataError(
            f"bigcomp encodes uint8, uint16 and float32 data, not {a.dtype}; "
            f"convert first ({_conversion_hint(a.dtype)})"
        )
    if a.dtype.kind == "f":
        if not np.isfinite(a).all():
            raise UnsupportedDataError(
                "data contains NaN or inf: replace them before compressing "
                "(e.g. np.nan_to_num(data, nan=0.0)) or keep a mask separately"
            )
        if q == 0:
            raise UnsupportedDataError(
                "lossless mode (q=0) supports uint8/uint16; float32 data needs q > 0 "
                "(or a lossless byte codec such as zstd)"
            )
        if order == "pq":
            raise UnsupportedDataError("order='pq' supports uint8/uint16; use order='qp' for float32")
    if any(s >= 1 << 32 for s in a.shape) or a.ndim > 32:
        raise UnsupportedDataError(f"chunk shape {a.shape} is too large for one chunk")
    check_chunk_size(a.size, decode_bytes_per_pixel(a.dtype, "wnl" if q else "lossless", order),
                     a.shape, encoding=True)


def error_bound(q: float, camera: CameraModel | None, dtype, order: str = "qp") -> float:
    """Largest error in noise-σ units (stabilised domain) of any pixel, for these parameters.

    Exact (from the quantisation tables) for integer data in the ``"qp"`` order; ``q/2`` for the
    ``"pq"`` order and for float32 (the encoder checks every float32 reconstruction and stores
    the pixels that would miss it exactly).
    """
    if q == 0:
        return 0.0
    if isinstance(camera, PixelCamera):  # of each pixel's own transform (bigcomp.pixelmodel)
        return q / 2
    dt = np.dtype(dtype)
    if dt.kind == "u" and order == "pq":
        return q / 2
    if dt.kind == "u":
        return quantisation_tables(camera, float(q), dt.name).max_error
    return q / 2


def encode_chunk(
    data,
    *,
    q: float = 0.0,
    camera: CameraModel | None = None,
    order: str = "qp",
    coder: str = "max",
    noise_maps: NoiseMaps | None = None,
    origin: tuple[int, int] = (0, 0),
) -> bytes:
    """Compress one array into a self-describing chunk.

    Parameters
    ----------
    data : array_like of uint8, uint16 or float32
        The chunk (any number of dimensions; the last two are rows and columns).
    q : float
        Quantisation step in noise-σ units; 0 means lossless. Every pixel comes back within
        :func:`error_bound` (≤ q/2) of the original in the stabilised domain.
    camera : CameraModel or PixelCamera, optional
        Needed when ``q > 0``. A :class:`~bigcomp.pixelcamera.PixelCamera` (per-pixel maps of
        the chunk's planes: rows and columns as the data's last two axes) keeps every pixel
        within ``q/2`` of its own noise (uint8/uint16, ``order="qp"``).
    order : {"qp", "pq"}
        Quantise-then-predict (parallel) or predict-then-quantise (closed-loop DPCM).
    coder : {"fast", "max", "rice"}
        Bit-packed blocks of 32 (fastest), context-modelled rANS (smallest), or Golomb-Rice
        blocks of 64 (within ~10 % of ``max``, encoding about twice as fast).
    noise_maps : NoiseMaps, optional
        Per-pixel noise classes of the whole sensor (:func:`bigcomp.pixelmodel.noise_maps`),
        kept once per array: the chunk refers to them (and its planes' ``origin``, row and
        column on the sensor) instead of carrying its window of them, and decodes only with
        them. Takes the place of ``camera``.

    Returns
    -------
    bytes
    """
    # normalise input
    if noise_maps is not None and not isinstance(noise_maps, NoiseMaps):
        raise ParameterError("noise_maps must be a bigcomp.pixelmodel.NoiseMaps, got "
                             f"{type(noise_maps).__name__}")
    validate_parameters(q, camera if noise_maps is None else camera or noise_maps.cameras[0],
                        order, coder)
    if q == 0:  # nothing is quantised: both orders are the same integer prediction
        order = "qp"
    a = np.asarray(data)
    if not a.flags.c_contiguous:  # (np.ascontiguousarray would make a 0-d array 1-d)
        a = a.copy(order="C")
    a = _native(a)
    _check_data(a, q, order)
    q = float(q)
    pixel_camera = camera if isinstance(camera, PixelCamera) and q > 0 else None
    if pixel_camera is not None or (noise_maps is not None and q > 0):
        _check_pixel_camera(a, order)
        if pixel_camera is not None:
            pixel_camera.check_frame(a.shape)
            camera = pixel_camera.median_model()
        elif camera is None:
            camera = noise_maps.cameras[0]
    # one prediction run per stack: splitting into independently decodable runs would allow
    # parallel decoding of one chunk but costs ~1% per extra run (an intra-predicted plane is
    # ~35% larger in lossless mode); chunks decode in parallel under zarr/dask anyway
    shape3, nz = _as_3d(a.shape)
    lossless = q == 0
    cam = camera if camera is not None else CameraModel()
    parallel = use_parallel() and a.size >= PARALLEL_MIN_SIZE and cores_free()
    escapes = np.empty(0, a.dtype)
    n_offsets = 0
    if order == "pq" and not lossless:
        table = _dpcm_table(cam, q, a.dtype)  # refuses q the arithmetic cannot serve

    # quantise to integers k with known range [lo, hi]
    # (integer data keeps its dtype: bin indices fit, and lossless needs no copy at all)
    model = None
    if lossless:
        k = a
        lo, hi = 0, int(np.iinfo(a.dtype).max)
    elif pixel_camera is not None or noise_maps is not None:
        if noise_maps is None:
            model = build_model(noise_maps_of(pixel_camera, a.dtype), a, q, inline=True)
        else:
            model = build_model(noise_maps, a, q, origin=origin)
        model_bytes = model.to_bytes()  # (a nested chunk: before the scratch buffers fill)
        bins, _, _, base = model.tables(q, a.dtype)
        k = quantise_classes(a, model.cls, model.offsets, bins, model.align, base,
                             parallel=parallel)
        lo, hi = model.index_range(q, a.dtype)
    elif a.dtype.kind == "u":
        tables = quantisation_tables(cam, q, a.dtype.name)
        k = lookup(a, tables.bin, a.dtype, parallel=parallel, out=scratch("k", a.size, a.dtype))
        lo, hi = 0, tables.nbins - 1
    else:
        forward = cam.forward(a)
        y = forward / q
        largest = float(np.abs(y).max(initial=0))
        if largest >= _FLOAT_K_LIMIT:
            raise UnsupportedDataError(
                f"float32 values too large for q={q:g} with this camera: they span "
                f"{largest:.3g} steps of q from the transform's zero (the limit is 2**29); use "
                f"q >= {largest * q / _FLOAT_K_LIMIT * 1.01:.3g}, or check the camera's gain "
                "and offset against the data's units"
            )
        k = np.rint(y).astype(np.int32)
        escapes = float_exact_pixels(a, k, cam, q, forward=forward)
        lo, hi = -_FLOAT_K_LIMIT, _FLOAT_K_LIMIT
    k = k.reshape(shape3)

    # predict and code
    orient = oriented_residuals(coder, order)
    level = level_fraction = False
    if a.size == 0:
        intra, inter = _NO_TAPS, _NO_TAPS
        symbols = np.empty(0, np.uint32)
    else:
        intra, inter = predictor_for(k, nz, lo, hi, coder, order)
        # the max coder's level model (format version 6): lossless and single-plane chunks
        level = coder == "max" and order == "qp" and level_model_applies(shape3, lo, hi, q)
        if level:
            payload = encode_level(k, nz, intra.as_arrays(), inter.as_arrays(), lo, hi,
                                   parallel=parallel)
            level = payload is not None  # else every symbol is the same: the 5-byte payload
            level_fraction = level and payload[3] != 0  # fraction bits (format version 7)
        if level or (order == "qp" and coder != "max"):  # residuals never leave the cache
            symbols = None
        elif order == "qp":
            symbols = predict_encode(
                k, nz, intra.as_arrays(), inter.as_arrays(), lo, hi, orient=orient,
                parallel=parallel, out=scratch("residuals", k.size, np.uint32),
            )
        else:
            symbols, offsets, _ = dpcm_encode(
                a.reshape(shape3).astype(np.int32),
                nz,
                table,
                intra.as_arrays(),
                inter.as_arrays(),
                offsets=True,
                parallel=parallel,
            )
            # escapes (0.5-5 % of pixels at q = 1σ): their small offsets follow the pixels'
            # symbols in the payload (format version 4), not 16 raw bits each
            n_offsets = offsets.size
            symbols = np.concatenate([symbols, _coders.zigzag(offsets).astype(np.uint32)])
    row_length = max(1, shape3[2])  # an empty axis codes nothing, in rows of any length
    if level:
        pass  # the level model's payload, made above
    elif coder == "fast" and symbols is None:
        payload = encode_fast_fused(
            k, nz, intra.as_arrays(), inter.as_arrays(), lo, hi, parallel=parallel
        )
    elif coder == "rice" and symbols is None:
        payload = encode_rice_fused(
            k, nz, intra.as_arrays(), inter.as_arrays(), lo, hi, orient=orient, parallel=parallel
        )
    elif coder == "fast":
        payload = _coders.encode_fast(symbols, parallel=parallel)
    elif coder == "rice":
        payload = _rice.encode_rice(symbols, row_length, parallel=parallel)
    else:
        payload = _coders.encode_max(symbols, row_length, parallel=parallel)
    header = ChunkHeader(
        "lossless" if lossless else "wnl",
        order,
        coder,
        a.dtype,
        tuple(int(s) for s in a.shape),
        q,
        cam.gain,
        cam.offset,
        cam.read_noise,
        intra,
        header_inter(inter, shape3, level_fraction),
        nz,
        oriented=orient,
        escape_offsets=n_offsets,
        exact=escapes.size if escapes.dtype == EXACT_DTYPE else 0,
        pixel_model=model_bytes if model is not None else b"",
        level_model=level,
        level_fraction=level_fraction,
    )
    return pack_chunk(header, payload, escapes)


def _check_pixel_camera(a: np.ndarray, order: str) -> None:
    """Raise where per-pixel maps cannot code ``a`` (they serve integer planes, qp order)."""
    if a.dtype.kind != "u":
        raise UnsupportedDataError(
            "per-pixel camera maps (PixelCamera) code uint8/uint16 camera counts, not "
            f"{a.dtype}: pass the camera's median model (camera.median_model()) for float data")
    if order != "qp":
        raise ParameterError("per-pixel camera maps (PixelCamera) need order='qp'")
    if a.ndim < 2:
        raise UnsupportedDataError(
            f"per-pixel camera maps need data with rows and columns, got shape {a.shape}")


def float_exact_pixels(a: np.ndarray, k: np.ndarray, camera: CameraModel, q: float, *,
                       forward: np.ndarray | None = None) -> np.ndarray:
    """Make float32 quantisation provably within ``q/2``: the pixels the decoder's float32
    reconstruction would put further away.

    The decoder writes ``float32(inverse(k q))``. Where the transform is steep, float32's
    spacing there (times the slope) is a sizeable part of ``q`` and the rounding can push a
    pixel past ``q/2``. Such a pixel gets ``k ± 1`` where that lands within the bound (``k`` is
    changed in place), else it is stored exactly. ``forward`` is ``camera.forward(a)`` where the
    caller has it already.

    Returns
    -------
    ndarray of :data:`bigcomp.format.EXACT_DTYPE`
        Flat index and value of each exactly stored pixel (in index order; usually none).
    """
    flat_a, flat_k = a.reshape(-1), k.reshape(-1)
    target = (camera.forward(flat_a) if forward is None else forward).reshape(-1)
    half = q / 2
    err = np.abs(camera.forward(camera.inverse(flat_k * q).astype(np.float32)) - target)
    miss = np.flatnonzero(err > half)
    if miss.size == 0:
        return np.empty(0, EXACT_DTYPE)
    best_k, best_err = flat_k[miss].copy(), err[miss]
    for step in (-1, 1):
        cand = flat_k[miss] + step
        e = np.abs(camera.forward(camera.inverse(cand * q).astype(np.float32)) - target[miss])
        better = e < best_err
        best_k[better], best_err[better] = cand[better], e[better]
    flat_k[miss] = best_k
    still = miss[best_err > half]
    exact = np.empty(still.size, EXACT_DTYPE)
    exact["index"] = still
    exact["value"] = flat_a[still]
    return exact


def _dpcm_table(camera: CameraModel, q: float, dtype) -> np.ndarray:
    """``round(forward(x) / q * 2**FRACTION_BITS)`` for every integer ``x`` of ``dtype``.

    Raises :class:`ParameterError` where ``q`` is so small against the transform's range that
    the fixed-point arithmetic of the predict-then-quantise order cannot hold the bound.
    """
    values = np.arange(np.iinfo(dtype).max + 1, dtype=np.float64)
    steps = camera.forward(values) / q
    largest = float(np.abs(steps).max())
    if not largest < _DPCM_STEP_LIMIT:
        finest = float(np.diff(camera.forward(values)).min())
        raise ParameterError(
            f"q={q:g} is too small for order='pq' with this camera and {np.dtype(dtype)} data: "
            f"the transform spans {largest:.3g} steps of q (the limit is 2**29). Steps below "
            f"{finest:.3g} σ (the finest spacing of two integers here) keep every value exact "
            "anyway: use q=0 (lossless), order='qp', or q >= "
            f"{largest * q / _DPCM_STEP_LIMIT * 1.01:.3g}"
        )
    return np.rint(steps * (1 << FRACTION_BITS)).astype(np.int64)


def decoding_parameters(header) -> tuple[CameraModel | None, int, int]:
    """Camera model (WNL) and range ``[lo, hi]`` of the predicted integers of a chunk.

    Raises :class:`CorruptChunkError` for header values no encoder writes.
    """
    dtype = header.dtype
    cam = None
    if header.mode == "wnl":
        try:
            cam = CameraModel(header.gain, header.offset, header.read_noise)
        except ParameterError as exc:
            raise CorruptChunkError(f"corrupt bigcomp chunk header: {exc}") from exc
        if not (np.isfinite(header.q) and header.q > 0):
            raise CorruptChunkError(f"corrupt bigcomp chunk header: q = {header.q}")
    if header.mode == "lossless" or header.order == "pq":  # pq needs no bins
        return cam, 0, int(np.iinfo(dtype).max)
    if dtype.kind == "u":
        return cam, 0, quantisation_tables(cam, header.q, dtype.name).nbins - 1
    return cam, -_FLOAT_K_LIMIT, _FLOAT_K_LIMIT


def check_header(header: ChunkHeader, expect: dict) -> None:
    """Raise :class:`ChunkMismatchError` where a chunk's header differs from what the array
    it was read for says (``expect``: any of ``shape``, ``dtype``, ``mode``, ``q``, ``gain``,
    ``offset``, ``read_noise``, ``order``, ``coder``, ``per_pixel``)."""
    got = {"shape": tuple(header.shape), "dtype": np.dtype(header.dtype), "mode": header.mode,
           "q": header.q, "gain": header.gain, "offset": header.offset,
           "read_noise": header.read_noise, "order": header.order, "coder": header.coder,
           "per_pixel": bool(header.pixel_model)}
    if header.mode == "lossless":  # one integer prediction whatever the order
        got["order"] = "qp"
    wanted = {k: (tuple(v) if k == "shape" else np.dtype(v) if k == "dtype" else v)
              for k, v in expect.items() if v is not None}
    unknown = set(wanted) - set(got)
    if unknown:
        raise ParameterError(f"cannot check chunk fields {sorted(unknown)}")
    diffs = [f"{k} {got[k]!r} (array: {v!r})" for k, v in wanted.items()
             if got[k] != v and not (k in ("q", "gain", "offset", "read_noise", "per_pixel")
                                     and got["mode"] == "lossless")]
    if diffs:
        raise ChunkMismatchError(
            f"bigcomp chunk does not belong to this array: {', '.join(diffs)}. It was written "
            "by another job or copied from another array; re-compress the source or restore "
            "the store's chunk from a backup"
        )


def decode_chunk(buf, out: np.ndarray | None = None, *, expect: dict | None = None,
                 noise_maps: NoiseMaps | None = None) -> np.ndarray:
    """Decompress a chunk made by :func:`encode_chunk`.

    Parameters
    ----------
    buf : bytes-like
        The encoded chunk.
    out : ndarray, optional
        Where to write the result (the chunk's size and item size).
    expect : dict, optional
        Header fields the chunk must have (see :func:`check_header`), checked before anything
        is decoded: how the zarr codecs make sure a chunk belongs to its array.
    noise_maps : NoiseMaps, optional
        The per-pixel camera maps of the chunk's array, where its chunks refer to them.

    Raises
    ------
    CorruptChunkError
        The chunk is truncated or damaged (its checksum does not match).
    ChunkMismatchError
        The chunk does not match ``expect``.
    ChunkTooLargeError
        The chunk would decode to more than :func:`bigcomp.limits.max_chunk_bytes`.
    FormatVersionError
        The chunk comes from a newer bigcomp.
    """
    header, payload, escapes = unpack_chunk(buf)
    if expect:
        check_header(header, expect)
    # the nested maps chunk decodes through the same scratch buffers: before the payload
    model = (parse_model(header.pixel_model, header.shape, header.dtype, header.q, noise_maps)
             if header.pixel_model else None)
    shape3, _ = _as_3d(header.shape)
    nz = header.run
    n = math.prod(header.shape)
    n_offsets = header.escape_offsets  # coded after the pixels' symbols (version 4, pq)
    dtype = header.dtype
    parallel = use_parallel() and n >= PARALLEL_MIN_SIZE and cores_free()
    # qp order + fast or rice coder: unpacking is fused with prediction (no symbol array)
    fused = n > 0 and (header.coder != "max" or header.level_model) and (
        header.mode == "lossless" or header.order == "qp")
    try:
        if fused:
            symbols = None
        elif header.coder == "fast":
            symbols = _coders.decode_fast(payload, n + n_offsets, parallel=parallel)
        elif header.coder == "rice":
            symbols = _rice.decode_rice(payload, n + n_offsets, parallel=parallel)
        else:
            symbols = _coders.decode_max(  # scratch taken once the payload checks out
                payload, n + n_offsets, max(1, shape3[2]), parallel=parallel,
                out=lambda size: scratch("residuals", size, np.uint32))
    except ValueError as exc:
        raise CorruptChunkError(f"corrupt bigcomp chunk: {exc}") from exc
    cam, lo, hi = decoding_parameters(header)
    if model is not None:
        lo, hi = model.index_range(header.q, dtype)
    intra, inter = header.intra.as_arrays(), header.inter.as_arrays()

    if n == 0:
        result = np.empty(header.shape, dtype)
    elif header.mode == "wnl" and header.order == "pq":
        try:
            table = _dpcm_table(cam, header.q, dtype)
        except ParameterError as exc:
            raise CorruptChunkError(f"corrupt bigcomp chunk header: {exc}") from exc
        if n_offsets:
            escapes, symbols = _coders.unzigzag(symbols[n:]), symbols[:n]
        try:
            values = dpcm_decode(symbols, escapes.astype(np.int64), shape3, nz, table, intra,
                                 inter, offsets=bool(n_offsets), parallel=parallel)
        except ValueError as exc:
            raise CorruptChunkError(str(exc)) from exc
        result = values.astype(dtype).reshape(header.shape)
    else:
        if intra[0].size == 0:
            raise CorruptChunkError("corrupt bigcomp chunk: no predictor taps")
        k_dtype = dtype if dtype.kind == "u" and model is None else np.dtype(np.int32)
        # lossless: k is the result; lossy: an intermediate, kept in scratch
        k_out = None if header.mode == "lossless" else scratch("k", n, k_dtype)
        try:
            if header.level_model:
                k = decode_level(payload, shape3, nz, intra, inter, lo, hi, dtype=k_dtype,
                                 fraction=header.level_fraction,
                                 parallel=parallel, out=k_out)
            elif fused and header.coder == "rice":
                k = decode_rice_fused(payload, shape3, nz, intra, inter, lo, hi, dtype=k_dtype,
                                      orient=header.oriented, parallel=parallel, out=k_out)
            elif fused:
                k = decode_fast_fused(payload, shape3, nz, intra, inter, lo, hi, dtype=k_dtype,
                                      orient=header.oriented, parallel=parallel, out=k_out)
            else:
                k = predict_decode(symbols, shape3, nz, intra, inter, lo, hi, dtype=k_dtype,
                                   orient=header.oriented, parallel=parallel, out=k_out)
        except ValueError as exc:
            raise CorruptChunkError(str(exc)) from exc
        if header.mode == "lossless":
            result = k
        elif model is not None:
            _, rec, nbins, _ = model.tables(header.q, dtype)
            try:
                result = dequantise_classes(k, model.cls, model.offsets, rec, nbins,
                                            model.align, dtype, parallel=parallel)
            except ValueError as exc:
                raise CorruptChunkError(f"corrupt bigcomp chunk: {exc}") from exc
        elif dtype.kind == "u":
            rec = quantisation_tables(cam, header.q, dtype.name).rec
            result = lookup(k, rec, dtype, parallel=parallel)
        else:
            result = cam.inverse(k * header.q).astype(np.float32).reshape(-1)
            if header.exact:
                result[escapes["index"]] = escapes["value"]
        result = result.reshape(header.shape)

    # setup output
    if out is None:
        return result
    out_arr = np.asarray(out)
    if out_arr.size != result.size or out_arr.dtype.itemsize != result.dtype.itemsize:
        raise BigcompError(
            f"output buffer of {out_arr.size} x {out_arr.dtype} cannot hold the decoded chunk "
            f"of shape {header.shape} and dtype {dtype}"
        )
    out_arr.reshape(-1).view(dtype)[...] = result.reshape(-1)
    return out
