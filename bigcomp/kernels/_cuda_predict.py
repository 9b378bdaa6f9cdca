"""GPU kernels (numba.cuda): integer linear prediction, same residuals as ``_predict.py``.

The predictor rule (taps, int64 arithmetic, clipping, border fallback to west / north /
previous plane / ``lo``, zig-zag, oriented residuals) is the one documented in
:mod:`bigcomp.kernels._predict`; a single device function :func:`_predict_at` implements it for
both directions.

Encode is fully parallel: one thread per pixel (grid-stride), reading the original values.

Decode has the causal dependency: a pixel needs its west neighbours on the same row, the rows
above (up to ``dxmax`` columns to the right) and the previous plane. One thread block decodes
one prediction run (``nz`` planes, independent of the others) as a *wavefront*: the block's
threads take consecutive rows of a band, and at step ``t`` thread ``j`` decodes column
``t - lag * j`` with ``lag = max(dxmax) + 1``, so that whatever a pixel reads was written at an
earlier step; a ``syncthreads`` separates the steps (it also makes the writes visible). Bands of
rows, then planes, follow one another. Parallelism is therefore ``runs x threads per block``:
fine for chunks with many runs, limited for one large 2-D image.
"""

from __future__ import annotations

import numpy as np

from ._cuda_common import SIM, cuda, device_function, device_kernel, launch

__all__ = ["DECODE_TPB", "predict_decode", "predict_encode", "predictor_info"]

DECODE_TPB = 4 if SIM else 128  # rows decoded concurrently per prediction run

# layout of the int64 ``info`` array describing the predictor pair
_I_START, _I_END, _I_SHIFT = 0, 1, 2  # intra taps [start, end) of the tap arrays, shift
_E_START, _E_END, _E_SHIFT = 3, 4, 5  # inter taps
_I_REACH = 6  # dymin, dymax, dxmin, dxmax of the intra taps (4 values)
_E_REACH = 10  # the same for the inter taps
_ORIENT = 14  # 1: oriented residuals (chunk format version 3)
_INFO_SIZE = 15


def predictor_info(intra, inter, orient: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Host arrays (taps int64 (T, 3), coefs int64 (T,), info int64) and the decode lag.

    ``intra``/``inter`` are ``(taps, coefs, shift)`` triples of :meth:`Taps.as_arrays`;
    ``orient``: oriented residuals.
    """
    taps = np.concatenate([intra[0], inter[0]]).astype(np.int64).reshape(-1, 3)
    coefs = np.concatenate([intra[1], inter[1]]).astype(np.int64)
    ni = intra[0].shape[0]
    info = np.zeros(_INFO_SIZE, np.int64)
    info[_I_START], info[_I_END], info[_I_SHIFT] = 0, ni, intra[2]
    info[_E_START], info[_E_END], info[_E_SHIFT] = ni, taps.shape[0], inter[2]
    info[_ORIENT] = int(bool(orient))
    lag = 1
    for base, t in ((_I_REACH, intra[0]), (_E_REACH, inter[0])):
        t = np.asarray(t, np.int64).reshape(-1, 3)
        reach = (
            min(0, int(t[:, 1].min(initial=0))),
            max(0, int(t[:, 1].max(initial=0))),
            min(0, int(t[:, 2].min(initial=0))),
            max(0, int(t[:, 2].max(initial=0))),
        )
        info[base : base + 4] = reach
        lag = max(lag, reach[3] + 1)
    if taps.shape[0] == 0:  # keep device arrays non-empty
        taps = np.zeros((1, 3), np.int64)
        coefs = np.zeros(1, np.int64)
    return taps, coefs, info, lag


@device_function
def _predict_at(k, p, y, x, has_prev, taps, coefs, info, lo, hi):
    """``2 * prediction + flip`` (int64) of pixel ``(p, y, x)`` from already known neighbours:
    ``flip`` (0 or 1) says whether the residual's sign is flipped (oriented residuals)."""
    n_rows = k.shape[1]
    n_cols = k.shape[2]
    if has_prev:
        t0 = info[_E_START]
        t1 = info[_E_END]
        shift = info[_E_SHIFT]
        r = _E_REACH
    else:
        t0 = info[_I_START]
        t1 = info[_I_END]
        shift = info[_I_SHIFT]
        r = _I_REACH
    dymin = info[r]
    dymax = info[r + 1]
    x0 = -info[r + 2]
    x1 = n_cols - info[r + 3]
    if y + dymin >= 0 and y + dymax < n_rows and x1 > x0 and x0 <= x < x1:
        acc = np.int64(0)
        if shift > 0:
            acc = np.int64(1) << (shift - 1)
        for t in range(t0, t1):
            acc += coefs[t] * np.int64(k[p + taps[t, 0], y + taps[t, 1], x + taps[t, 2]])
        flip = np.int64(0)
        if shift > 0:
            flip = (acc >> (shift - 1)) & info[_ORIENT]
        return 2 * min(max(acc >> shift, lo), hi) + flip
    if x > 0:
        return 2 * np.int64(k[p, y, x - 1])
    if y > 0:
        return 2 * np.int64(k[p, y - 1, x])
    if has_prev:
        return 2 * np.int64(k[p - 1, y, x])
    return 2 * np.int64(lo)


@device_kernel
def _encode(k, nz, taps, coefs, info, lo, hi, out):
    n_rows = k.shape[1]
    n_cols = k.shape[2]
    plane = n_rows * n_cols
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, out.size, step):
        p = i // plane
        rem = i - p * plane
        y = rem // n_cols
        x = rem - y * n_cols
        has_prev = (p % nz) != 0
        pf = _predict_at(k, p, y, x, has_prev, taps, coefs, info, lo, hi)
        f = pf & 1
        r = ((np.int64(k[p, y, x]) - (pf >> 1)) ^ -f) + f
        out[i] = np.uint32(((r << 1) ^ (r >> 63)) & 0xFFFFFFFF)


def predict_encode(k, nz: int, taps, coefs, info, lo: int, hi: int, out) -> None:
    """Zig-zagged residuals (uint32, flat ``out``) of the 3-D device array ``k``."""
    if out.size:
        launch(_encode, out.size)(k, nz, taps, coefs, info, np.int64(lo), np.int64(hi), out)


@device_kernel
def _decode(res, nz, taps, coefs, info, lo, hi, lag, k, bad):
    n_rows = k.shape[1]
    n_cols = k.shape[2]
    run = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    nthreads = cuda.blockDim.x
    n_bad = 0
    for p in range(run * nz, (run + 1) * nz):
        has_prev = (p % nz) != 0
        for y0 in range(0, n_rows, nthreads):
            y = y0 + tid
            steps = n_cols + lag * (nthreads - 1)
            for t in range(steps):
                x = t - lag * tid
                if y < n_rows and x >= 0 and x < n_cols:
                    pf = _predict_at(k, p, y, x, has_prev, taps, coefs, info, lo, hi)
                    f = pf & 1
                    z = np.int64(res[(p * n_rows + y) * n_cols + x])
                    v = (pf >> 1) + ((((z >> 1) ^ -(z & 1)) ^ -f) + f)
                    if v < lo or v > hi:
                        n_bad += 1
                    k[p, y, x] = v
                cuda.syncthreads()
    if n_bad:
        cuda.atomic.add(bad, run, n_bad)


def predict_decode(res, nz: int, taps, coefs, info, lag: int, lo: int, hi: int, k, bad) -> None:
    """Decode the 3-D device array ``k`` from residuals ``res``; ``bad[run]`` (int64, zeroed by
    the caller) counts values outside ``[lo, hi]`` (a corrupt payload)."""
    n_runs = k.shape[0] // nz
    if k.size and n_runs:
        tpb = max(1, min(DECODE_TPB, k.shape[1]))
        _decode[n_runs, tpb](res, nz, taps, coefs, info, np.int64(lo), np.int64(hi), lag, k, bad)
