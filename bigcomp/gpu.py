"""GPU encoding and decoding of chunks: the same bitstream as :mod:`bigcomp.chunk`, byte for byte.

:func:`encode_chunk_gpu` runs every stage of :func:`bigcomp.encode_chunk` on the device
(quantisation look-up or float transform, prediction, the ``fast``, ``rice`` or ``max`` coder,
including the ``max`` coder's level model where the CPU uses it: lossless and single-plane
chunks of at least 4096 pixels in rows of at least 32, format version 6/7, see
:mod:`bigcomp.kernels._level` and :mod:`bigcomp.kernels._cuda_level`) and returns the very bytes
the CPU writes. :func:`decode_chunk_gpu` decodes any chunk (CPU- or GPU-written) into a device
array (level-model chunks on the host: their fused prediction and entropy decoding is one
sequential chain per row pair). Only small things happen on the host: the predictor choice (the
CPU's :func:`~bigcomp.predictors.choose_predictor` on a sample copied from the device), the
level model's thresholds and biases (the CPU's choice, on the sampled rows copied from the
device), the ``max`` coder's frequency tables (from a device histogram), the header and the CRC.

The kernels are numba.cuda kernels (``bigcomp/kernels/_cuda_*.py``): they take CuPy arrays on a
real GPU and run on numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) in CI. CuPy is never
imported by the CPU path; :func:`gpu_available` says whether a GPU path can run here.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .errors import BigcompError, CorruptChunkError, ParameterError, UnsupportedDataError

__all__ = [
    "decode_chunk_gpu",
    "dispatch_decode",
    "dispatch_encode",
    "encode_chunk_gpu",
    "gpu_available",
]


def gpu_available() -> bool:
    """True when CuPy imports and at least one CUDA device is visible.

    Examples
    --------
    >>> isinstance(gpu_available(), bool)
    True
    """
    try:
        import cupy
    except ImportError:
        return False
    try:
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # no driver, no device  # noqa: BLE001
        return False


def _is_cupy(x) -> bool:
    return type(x).__module__.split(".")[0] == "cupy"


def _is_device(x) -> bool:
    from .kernels._cuda_common import is_device_array

    return is_device_array(x)


# --------------------------------------------------------------------------------- encoding
def _device_input(data):
    """(flat device array, shape, dtype) of any array: device arrays are used in place."""
    from .kernels._cuda_common import to_device

    if _is_cupy(data):
        import cupy

        a = cupy.ascontiguousarray(data)
        return a.reshape(-1), tuple(a.shape), np.dtype(a.dtype)
    if _is_device(data):
        if not data.is_c_contiguous():
            raise UnsupportedDataError("device arrays must be C-contiguous")
        return data.reshape(data.size), tuple(data.shape), np.dtype(data.dtype)
    a = np.ascontiguousarray(data)
    return to_device(a.reshape(-1)), a.shape, a.dtype


@functools.lru_cache(maxsize=16)
def _device_table(camera, q: float, dtype: str, which: str):
    from .kernels._cuda_common import to_device
    from .noise import quantisation_tables

    tables = quantisation_tables(camera, q, dtype)
    return to_device(getattr(tables, which)), tables.nbins


def _sample_for_predictor(k, shape3, nz: int):
    """A host array of ``shape3`` holding ``k`` wherever :func:`choose_predictor` reads it.

    The predictor choice reads the pixels of a deterministic sample and their causal
    neighbours; only those are copied from the device (the rest of the host array is zero and
    never read), so the choice is the CPU's.
    """
    from . import predictors as P
    from .kernels._cuda_common import to_device, to_host

    offsets = {(0, 0, 0)}
    for taps in (*P.FIXED_INTRA.values(), *P.FIXED_INTER.values()):
        offsets.update(taps.offsets)
    for group in (P.LS_INTRA, P.LS_INTER, P.LS_INTER_WIDE):
        offsets.update(group)
    offsets = np.array(sorted(offsets), np.int64)
    host = np.zeros(shape3, k.dtype)  # calloc: untouched pages cost nothing
    if max(abs(offsets[:, 1:]).max(), 0) > 3:  # the sampler's margin: copy everything
        host[...] = to_host(k).reshape(shape3)
        return host
    idx = []
    for inter in (False, True):
        where = P._positions(shape3, nz, inter, P.FIT_SAMPLE, margin=3)
        if where is None:
            continue
        p, y, x = where
        for dp, dy, dx in offsets:
            if dp and not inter:
                continue
            idx.append(((p + dp) * shape3[1] + (y + dy)) * shape3[2] + (x + dx))
    if not idx:
        return host
    flat = np.unique(np.concatenate(idx))
    vals = np.empty(flat.size, k.dtype)
    dev_vals = _gather(k, to_device(flat))
    vals[...] = to_host(dev_vals)
    host.reshape(-1)[flat] = vals
    return host


def _gather(k, idx):
    from .kernels._cuda_common import empty, launch
    from .kernels._cuda_lookup import _lookup

    out = empty(idx.size, k.dtype)
    launch(_lookup, idx.size)(idx, k, out)  # out[i] = k[idx[i]]
    return out


def encode_chunk_gpu(
    data,
    *,
    q: float = 0.0,
    camera=None,
    order: str = "qp",
    coder: str = "max",
    rows_per_segment: int | None = None,
) -> bytes:
    """Compress one array on the GPU into the chunk :func:`bigcomp.encode_chunk` writes.

    Parameters
    ----------
    data : cupy.ndarray, numba device array or array_like
        uint8, uint16 or float32 chunk; host arrays are copied to the device first.
    q, camera, coder
        As :func:`bigcomp.encode_chunk`.
    order : {"qp"}
        Only the parallel quantise-then-predict order has GPU kernels.
    rows_per_segment : int, optional
        ``max`` coder only. ``None`` (default) makes the CPU's segments, so the chunk is byte for
        byte the CPU's; smaller values make more, shorter rANS segments of the neighbour-context
        payload (faster GPU decoding, slightly larger chunks; chunks the CPU gives the level
        model, which only decodes on the host, keep that payload too) that every bigcomp
        decoder reads.

    Returns
    -------
    bytes
    """
    from .chunk import (
        _NO_TAPS,
        _as_3d,
        encode_chunk,
        float_exact_pixels,
        header_inter,
        oriented_residuals,
        predictor_for,
        validate_parameters,
    )
    from .format import EXACT_DTYPE, ChunkHeader, pack_chunk
    from .kernels import _cuda_common as C
    from .kernels import _cuda_fast, _cuda_level, _cuda_lookup, _cuda_max, _cuda_predict, _cuda_rice
    from .kernels._level import level_model_applies
    from .noise import CameraModel
    from .pixelcamera import PixelCamera

    # normalise input
    validate_parameters(q, camera, order, coder)
    if isinstance(camera, PixelCamera) and q > 0:  # no GPU kernels: coded on the host
        return encode_chunk(C.to_host(data) if _is_device(data) else np.asarray(data), q=q,
                            camera=camera, order=order, coder=coder)
    if order == "pq":
        raise ParameterError(
            "order='pq' (closed-loop DPCM) is sequential along rows and has no GPU kernels: "
            "use order='qp' on the GPU, or encode on the CPU with "
            "bigcomp.encode_chunk(cupy.asnumpy(data), order='pq')"
        )
    C.require_cuda()
    flat, shape, dtype = _device_input(data)
    q = float(q)
    if dtype not in (np.dtype("uint8"), np.dtype("uint16"), np.dtype("float32")):
        raise UnsupportedDataError(
            f"bigcomp encodes uint8, uint16 and float32 data, not {dtype}; "
            "convert first (e.g. data.astype('uint16') for integer camera counts that fit)"
        )
    n = math.prod(shape)
    if n == 0 or any(s >= 1 << 32 for s in shape) or len(shape) > 32:
        # nothing to compute (or an error to raise): the CPU path says it
        return encode_chunk(np.empty(shape, dtype), q=q, camera=camera, order=order, coder=coder)
    if dtype.kind == "f" and q == 0:
        raise UnsupportedDataError(
            "lossless mode (q=0) supports uint8/uint16; float32 data needs q > 0 "
            "(or a lossless byte codec such as zstd)"
        )
    shape3, nz = _as_3d(shape)
    lossless = q == 0
    cam = camera if camera is not None else CameraModel()
    exact = np.empty(0, EXACT_DTYPE)

    # quantise to integers k with known range [lo, hi]
    if lossless:
        k = flat
        lo, hi = 0, int(np.iinfo(dtype).max)
    elif dtype.kind == "u":
        table, nbins = _device_table(cam, q, dtype.name, "bin")
        k = C.empty(n, dtype)
        _cuda_lookup.lookup(flat, table, k)
        lo, hi = 0, nbins - 1
    else:
        k = C.empty(n, np.int32)
        flags = C.zeros(2, np.int64)
        _cuda_lookup.vst_forward(flat, cam, q, k, flags)
        bad = C.to_host(flags)
        if bad[0]:
            raise UnsupportedDataError(
                "data contains NaN or inf: replace them before compressing "
                "(e.g. np.nan_to_num(data, nan=0.0)) or keep a mask separately"
            )
        if bad[1]:
            raise UnsupportedDataError(
                f"float32 values too large for q={q}: increase q or rescale the data"
            )
        # the float32 reconstructions are checked on the host, with the CPU's very code
        k_host = C.to_host(k)
        exact = float_exact_pixels(C.to_host(flat), k_host, cam, q)
        k = C.to_device(k_host)
        lo, hi = -_cuda_lookup.FLOAT_K_LIMIT, _cuda_lookup.FLOAT_K_LIMIT
    k3 = k.reshape(shape3)

    # predict (choice on the host from a sample, residuals on the device)
    intra, inter = predictor_for(_sample_for_predictor(k, shape3, nz), nz, lo, hi, coder)
    orient = oriented_residuals(coder)
    payload = None
    level_fraction = False
    # the max coder's level model (format versions 6, 7) where the CPU uses it; not with the
    # neighbour-context coder's rows_per_segment (asked for to decode on the GPU: level-model
    # chunks decode on the host)
    level = (coder == "max" and rows_per_segment is None
             and level_model_applies(shape3, lo, hi, q))
    if level:
        payload = _cuda_level.encode_level_gpu(k, shape3, nz, intra.as_arrays(),
                                               inter.as_arrays(), lo, hi)
        level = payload is not None  # else every symbol is the same: the 5-byte payload
        level_fraction = level and payload[3] != 0  # fraction bits (format version 7)
    if not level:
        taps, coefs, info, _ = _cuda_predict.predictor_info(intra.as_arrays(),
                                                            inter.as_arrays(), orient=orient)
        symbols = C.empty(n, np.uint32)
        _cuda_predict.predict_encode(
            k3, nz, C.to_device(taps), C.to_device(coefs), C.to_device(info), lo, hi, symbols
        )

    # code
    if level:
        pass  # the level model's payload, made above
    elif coder == "fast":
        payload = _cuda_fast.encode_fast(symbols)
    elif coder == "rice":
        payload = _cuda_rice.encode_rice(symbols, shape3[2])
    else:
        payload = _cuda_max.encode_max(symbols, shape3[2], rows_per_segment)
    header = ChunkHeader(
        "lossless" if lossless else "wnl",
        "qp",
        coder,
        dtype,
        tuple(int(s) for s in shape),
        q,
        cam.gain,
        cam.offset,
        cam.read_noise,
        intra if n else _NO_TAPS,
        header_inter(inter, shape3, level_fraction) if n else _NO_TAPS,
        nz,
        oriented=orient,
        exact=exact.size,
        level_model=level,
        level_fraction=level_fraction,
    )
    return pack_chunk(header, payload, exact)


# --------------------------------------------------------------------------------- decoding
def _host_bytes(buf) -> memoryview | bytes:
    if _is_cupy(buf) or _is_device(buf):
        from .kernels._cuda_common import to_host

        return to_host(buf).reshape(-1).view(np.uint8).tobytes()
    return buf


def decode_chunk_gpu(buf, *, out=None, expect: dict | None = None, noise_maps=None):
    """Decompress a chunk (written by the CPU or the GPU) into a device array.

    Parameters
    ----------
    buf : bytes-like, or a device array of uint8
        The encoded chunk; its header is parsed and its checksum verified on the host.
    out : device array, optional
        Where to write the result (any shape with the chunk's size and item size).
    expect : dict, optional
        Header fields the chunk must have (:func:`bigcomp.chunk.check_header`).
    noise_maps : NoiseMaps, optional
        The per-pixel camera maps its array keeps (:func:`bigcomp.decode_chunk`).

    Returns
    -------
    cupy.ndarray (or a numba device array where CuPy is absent, e.g. on the simulator)
        ``out`` when given.

    Raises
    ------
    CorruptChunkError
        The chunk is truncated or damaged.
    FormatVersionError
        The chunk comes from a newer bigcomp.

    Notes
    -----
    Chunks of the ``pq`` order, chunks with per-pixel noise classes and ``max`` chunks of the
    level model (format versions 6 and 7) have no GPU decoder: they are decoded on the CPU and
    copied to the device.
    """
    from .chunk import _as_3d, check_header, decode_chunk, decoding_parameters
    from .format import unpack_chunk
    from .kernels import _cuda_common as C
    from .kernels import _cuda_fast, _cuda_lookup, _cuda_max, _cuda_predict, _cuda_rice

    C.require_cuda()
    raw = _host_bytes(buf)
    header, payload, escapes = unpack_chunk(raw)
    if expect:
        check_header(header, expect)
    dtype = header.dtype
    n = math.prod(header.shape)
    if (n == 0 or (header.mode == "wnl" and header.order == "pq") or header.pixel_model
            or header.level_model):
        result = C.to_device(decode_chunk(raw, noise_maps=noise_maps).reshape(-1))
        return _deliver(result.reshape(header.shape) if n else result, header, out)
    shape3, _ = _as_3d(header.shape)
    nz = header.run
    pay = np.frombuffer(payload, np.uint8)
    symbols = C.empty(n, np.uint32)
    try:
        if header.coder == "fast":
            _cuda_fast.decode_fast(pay, n, symbols, C.zeros(2, np.int64))
        elif header.coder == "rice":
            _cuda_rice.decode_rice(pay, n, symbols, C.zeros(1, np.int64))
        else:
            _cuda_max.decode_max(pay, n, shape3[2], symbols)
    except ValueError as exc:
        raise CorruptChunkError(f"corrupt bigcomp chunk: {exc}") from exc
    cam, lo, hi = decoding_parameters(header)
    if len(header.intra.coefs) == 0:
        raise CorruptChunkError("corrupt bigcomp chunk: no predictor taps")
    if any(dp != 0 for dp, _dy, _dx in header.intra.offsets):
        # an intra tap into the previous plane would read the last plane of another prediction
        # run, which another thread block decodes concurrently (a data race); no encoder writes it
        raise CorruptChunkError("corrupt bigcomp chunk: intra predictor tap into another plane")
    taps, coefs, info, lag = _cuda_predict.predictor_info(
        header.intra.as_arrays(), header.inter.as_arrays(), orient=header.oriented
    )
    k_dtype = dtype if dtype.kind == "u" else np.dtype(np.int32)
    direct = header.mode == "lossless" and out is not None and _fits(out, n, dtype)
    k = _flat_view(out, dtype) if direct else C.empty(n, k_dtype)
    bad = C.zeros(max(shape3[0] // nz, 1), np.int64)
    _cuda_predict.predict_decode(
        symbols,
        nz,
        C.to_device(taps),
        C.to_device(coefs),
        C.to_device(info),
        lag,
        lo,
        hi,
        k.reshape(shape3),
        bad,
    )
    n_bad = int(C.to_host(bad).sum())
    if n_bad:
        raise CorruptChunkError(f"corrupt bigcomp payload: {n_bad} values out of range")
    if direct:
        return out
    if header.mode == "lossless":
        result = k
    elif dtype.kind == "u":
        table, _ = _device_table(cam, header.q, dtype.name, "rec")
        result = C.empty(n, dtype)
        _cuda_lookup.lookup(k, table, result)
    else:
        result = C.empty(n, np.float32)
        _cuda_lookup.vst_inverse(k, cam, header.q, result)
        if header.exact:  # pixels stored exactly (format version 5): rare, set on the host
            host = C.to_host(result)
            host[escapes["index"]] = escapes["value"]
            result = C.to_device(host)
    return _deliver(result.reshape(header.shape), header, out)


def _fits(out, n: int, dtype) -> bool:
    return (
        int(out.size) == n
        and np.dtype(out.dtype).itemsize == dtype.itemsize
        and (out.flags["C_CONTIGUOUS"] if _is_cupy(out) else out.is_c_contiguous())
    )


def _flat_view(out, dtype):
    if _is_cupy(out):
        return out.reshape(-1).view(dtype)
    return out.reshape(out.size).view(dtype)


def _deliver(result, header, out):
    """``result`` itself, or copied into ``out`` (device or host array)."""
    if out is None:
        return result
    n = math.prod(header.shape)
    dtype = np.dtype(header.dtype)
    if int(out.size) != n or np.dtype(out.dtype).itemsize != dtype.itemsize:
        raise BigcompError(
            f"output buffer of {out.size} x {out.dtype} cannot hold the decoded chunk "
            f"of shape {header.shape} and dtype {dtype}"
        )
    from .kernels._cuda_common import to_host

    if isinstance(out, np.ndarray):
        out.reshape(-1).view(dtype)[...] = to_host(result).reshape(-1)
        return out
    if _is_cupy(out):
        import cupy

        out.reshape(-1).view(dtype)[...] = cupy.asarray(result).reshape(-1)
        return out
    _flat_view(out, dtype).copy_to_device(result.reshape(n))
    return out


# --------------------------------------------------------------------------------- dispatch
_GPU = ("gpu", "cuda")


def _check_device(device) -> str | None:
    if device is None:
        return None
    if device not in ("cpu", *_GPU):
        raise ParameterError(f"device must be 'cpu', 'gpu' or None (by array type), got {device!r}")
    return "gpu" if device in _GPU else "cpu"


def dispatch_encode(array, *, device: str | None = None, **kw) -> bytes:
    """Encode on the GPU when ``array`` is a device array (or ``device="gpu"``), else on the CPU.

    Both paths write the same bytes. ``device="cpu"`` copies a device array to the host first.
    ``order="pq"`` and per-pixel camera maps have no GPU kernels and are always encoded on
    the CPU.
    """
    from .chunk import encode_chunk
    from .pixelcamera import PixelCamera

    where = _check_device(device) or ("gpu" if _is_device(array) else "cpu")
    per_pixel = kw.get("noise_maps") is not None or isinstance(kw.get("camera"), PixelCamera)
    if where == "gpu" and kw.get("order", "qp") != "pq" and not per_pixel:
        return encode_chunk_gpu(array, **kw)
    if _is_device(array):
        from .kernels._cuda_common import to_host

        array = to_host(array)
    return encode_chunk(array, **kw)


def dispatch_decode(buf, out=None, device: str | None = None, expect: dict | None = None,
                    noise_maps=None):
    """Decode on the GPU when ``out`` or ``buf`` is a device array (or ``device="gpu"``).

    The GPU path returns a device array (CuPy where available), the CPU path a numpy array.
    """
    from .chunk import decode_chunk

    on_device = (out is not None and _is_device(out)) or _is_device(buf)
    where = _check_device(device) or ("gpu" if on_device else "cpu")
    if where == "gpu":
        return decode_chunk_gpu(buf, out=out, expect=expect, noise_maps=noise_maps)
    return decode_chunk(_host_bytes(buf), out=out, expect=expect, noise_maps=noise_maps)
