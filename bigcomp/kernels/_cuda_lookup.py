"""GPU kernels (numba.cuda): table look-ups and the analytic float32 transform.

* :func:`lookup` — ``out[i] = table[values[i]]`` (``bin`` on encode, ``rec`` on decode), one
  thread per element (grid-stride).
* :func:`vst_forward` / :func:`vst_inverse` — float32 data: ``k = rint(VST(x) / q)`` and
  ``float32(VST⁻¹(k q))`` exactly as :class:`bigcomp.noise.CameraModel` computes them in float64.
  Every product and sum goes through a round-to-nearest intrinsic (``__dmul_rn``/``__dadd_rn``)
  so that NVVM cannot contract them into fused multiply-adds, and division and square root are
  the IEEE-rounded ones (numba's default), so the GPU gives numpy's results bit for bit.
"""

from __future__ import annotations

import math

import numpy as np

from ._cuda_common import SIM, cuda, device_function, device_kernel, launch

__all__ = ["FLOAT_K_LIMIT", "lookup", "vst_forward", "vst_inverse"]

FLOAT_K_LIMIT = 1 << 29  # as bigcomp.chunk._FLOAT_K_LIMIT

if cuda is not None and not SIM:  # pragma: no cover - needs a GPU
    from numba.cuda import libdevice

    @device_function
    def _mul(a, b):
        return libdevice.dmul_rn(a, b)

    @device_function
    def _add(a, b):
        return libdevice.dadd_rn(a, b)

else:

    @device_function
    def _mul(a, b):
        return a * b

    @device_function
    def _add(a, b):
        return a + b


@device_kernel
def _lookup(values, table, out):
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, values.size, step):
        out[i] = table[values[i]]


def lookup(values, table, out) -> None:
    """``out[i] = table[values[i]]`` for 1-D device arrays (``values`` must be valid indices)."""
    if values.size:
        launch(_lookup, values.size)(values, table, out)


@device_function
def _rint(y):
    """Round half to even (numpy's ``rint``), exact for |y| < 2**52."""
    r = math.floor(y)
    d = y - r
    if d > 0.5 or (d == 0.5 and r - 2.0 * math.floor(r * 0.5) != 0.0):
        r += 1.0
    return r


@device_kernel
def _forward(x, offset, gain, c, sqrt_c, two_sqrt_c, q, limit, out, flags):
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    bad_value = 0
    too_big = 0
    for i in range(start, x.size, step):
        v = np.float64(x[i])
        if not math.isfinite(v):
            bad_value = 1
            out[i] = 0
            continue
        u = (v - offset) / gain
        y = _mul(2.0, math.sqrt(_add(u, c))) if u >= 0.0 else _add(two_sqrt_c, u / sqrt_c)
        y = y / q
        if abs(y) >= limit:
            too_big = 1
            out[i] = 0
            continue
        out[i] = np.int32(_rint(y))
    if bad_value:
        cuda.atomic.max(flags, 0, 1)
    if too_big:
        cuda.atomic.max(flags, 1, 1)


def vst_forward(x, camera, q: float, out, flags) -> None:
    """``out = rint(camera.forward(x) / q)`` as int32; ``flags[0]``: a non-finite value,
    ``flags[1]``: a value at or beyond :data:`FLOAT_K_LIMIT` (both int64, zeroed by the caller)."""
    c = 0.375 + camera.read_noise**2  # as CameraModel._c
    sqrt_c = math.sqrt(c)
    if x.size:
        launch(_forward, x.size)(
            x,
            camera.offset,
            camera.gain,
            c,
            sqrt_c,
            2.0 * sqrt_c,
            float(q),
            float(FLOAT_K_LIMIT),
            out,
            flags,
        )


@device_kernel
def _inverse(k, q, gain, offset, c, sqrt_c, y0, out):
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, k.size, step):
        y = _mul(np.float64(k[i]), q)
        if y >= y0:
            h = y / 2.0
            u = _add(_mul(h, h), -c)
        else:
            u = _mul(_add(y, -y0), sqrt_c)
        out[i] = np.float32(_add(_mul(u, gain), offset))


def vst_inverse(k, camera, q: float, out) -> None:
    """``out = float32(camera.inverse(k * q))`` for int32 ``k``."""
    c = 0.375 + camera.read_noise**2
    sqrt_c = math.sqrt(c)
    if k.size:
        launch(_inverse, k.size)(
            k, float(q), camera.gain, camera.offset, c, sqrt_c, 2.0 * sqrt_c, out
        )
