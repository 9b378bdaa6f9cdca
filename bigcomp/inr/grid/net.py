"""Latent-grid model geometry and its numpy decoder (torch is not needed to decode).

A tile covers ``model_shape = (d, h, w)`` voxels (a 2-D tile has ``d = 1``). Level ``l`` of
``L`` (0 the coarsest) holds ``C`` integer latent channels on a ``(d_l, h_l, w_l)`` grid with
``d_l = ceil(d / 2**max(1, L−1−l))`` and ``h_l = ceil(h / 2**(L+1−l))`` (``w_l`` alike), at
least 1: with 4 levels y and x are cut by 32, 16, 8, 4 and z by 8, 4, 2, 2.

Voxel ``i`` along an axis of tile length ``n`` reads the latent position ``u = i·(m−1)/(n−1)``
of that axis' ``m`` latents (``u = 0`` if ``n`` or ``m`` is 1), linearly interpolated between
``i0 = min(floor(u), m−2)`` and ``i0 + 1`` (corner-aligned; :func:`axis_weights`, float64 then
float32). A voxel's feature vector is the trilinear interpolation of every level's channels
(``C·L`` values, level-major); the decoder MLP maps it through ``Linear -> GELU`` (tanh
approximation) layers to one value, the voxel in the normalised fitting domain.

With learned upsampling (stores with ``meta["upsample"]`` = kernel radii), every level is
first resampled the same way to the finest latent grid and filtered there along z, y and x by
its own symmetric kernels (edge-replicated, :func:`upsampled`); the voxels then interpolate
that one grid of ``C·L`` channels.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import numpy as np
from threadpoolctl import ThreadpoolController

__all__ = ["axis_weights", "decode_tile", "fine_shape", "gelu", "kernels", "level_shapes",
           "mlp_shapes", "upsampled"]

EVAL_BLOCK = 1 << 12  # voxels per MLP block when decoding (in cache: 25 % faster than 2^16)
_GELU_C = np.float32(math.sqrt(2.0 / math.pi))


def level_shapes(model_shape: Sequence[int], levels: int) -> list[tuple[int, int, int]]:
    """Latent grid shape of every level, coarsest first (module docstring).

    Examples
    --------
    >>> level_shapes((32, 256, 256), 4)
    [(4, 8, 8), (8, 16, 16), (16, 32, 32), (16, 64, 64)]
    """
    d, h, w = (int(v) for v in model_shape)
    out = []
    for lev in range(levels):
        fz, fxy = 2 ** max(1, levels - 1 - lev), 2 ** (levels + 1 - lev)
        out.append((max(1, -(-d // fz)), max(1, -(-h // fxy)), max(1, -(-w // fxy))))
    return out


def mlp_shapes(features: int, hidden: int, layers: int) -> list[tuple[int, int]]:
    """(out, in) of every Linear of the decoder: ``layers`` hidden layers and one output."""
    dims = [features] + [hidden] * layers + [1]
    return [(b, a) for a, b in itertools.pairwise(dims)]


@functools.cache
def axis_weights(n: int, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interpolation along one axis: ``(i0, i1, f)`` for the ``n`` voxels from ``m`` latents.

    ``value = (1 − f)·lat[i0] + f·lat[i1]``; ``i1 = min(i0 + 1, m − 1)``.
    """
    if n == 1 or m == 1:
        z = np.zeros(n, np.int64)
        return z, z, np.zeros(n, np.float32)
    u = np.arange(n, dtype=np.float64) * ((m - 1) / (n - 1))
    i0 = np.minimum(np.floor(u).astype(np.int64), m - 2)
    f = (u - i0).astype(np.float32)
    for a in (i0, f):
        a.setflags(write=False)
    return i0, i0 + 1, f


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (as ``torch.nn.functional.gelu(approximate="tanh")``)."""
    return np.float32(0.5) * x * (np.float32(1.0) + np.tanh(
        _GELU_C * (x + np.float32(0.044715) * x * x * x)))


def _interp_axis(lat: np.ndarray, axis: int, n: int, valid: int) -> np.ndarray:
    i0, i1, f = axis_weights(n, lat.shape[axis])
    i0, i1, f = i0[:valid], i1[:valid], f[:valid]
    shape = [1] * lat.ndim
    shape[axis] = valid
    f = f.reshape(shape)
    return (np.take(lat, i0, axis=axis) * (np.float32(1.0) - f)
            + np.take(lat, i1, axis=axis) * f)


def fine_shape(shapes: Sequence[Sequence[int]]) -> tuple[int, int, int]:
    """The finest latent grid: the largest level length along each axis."""
    return tuple(max(int(s[a]) for s in shapes) for a in range(3))


def kernels(taps: np.ndarray, radii: Sequence[int]) -> list[list[np.ndarray]]:
    """Per level and axis (z, y, x) the symmetric upsampling kernel ``[t_r … t_1, 1 + t_0,
    t_1 … t_r]`` from ``taps (L, 3, R + 1)`` (``r = radii[axis]`` ≤ R; unused taps ignored)."""
    taps = np.asarray(taps, np.float32)
    out = []
    for lev in range(taps.shape[0]):
        ax = []
        for a, r in enumerate(radii):
            side = taps[lev, a, 1:r + 1]
            ax.append(np.concatenate([side[::-1], taps[lev, a, :1] + np.float32(1.0), side]))
        out.append(ax)
    return out


def _filter_axis(v: np.ndarray, axis: int, kern: np.ndarray) -> np.ndarray:
    r = (kern.size - 1) // 2
    if r == 0:
        return v * kern[0]
    pad = [(0, 0)] * v.ndim
    pad[axis] = (r, r)
    p = np.pad(v, pad, mode="edge")
    n = v.shape[axis]
    out = np.zeros_like(v)
    for k in range(kern.size):
        out += kern[k] * np.take(p, np.arange(k, k + n), axis=axis)
    return out


def upsampled(latents: Sequence[np.ndarray], taps: np.ndarray,
              radii: Sequence[int]) -> np.ndarray:
    """Learned upsampling: every level resampled (corner-aligned, linear) to the finest
    latent grid, then filtered there by its separable kernels (edge-replicated):
    ``(C·L, *fine)`` float32."""
    fine = fine_shape([lat.shape[1:] for lat in latents])
    out = []
    for lat, ks in zip(latents, kernels(taps, radii), strict=True):
        v = np.asarray(lat, np.float32)
        for axis in (3, 2, 1):
            v = _interp_axis(v, axis, fine[axis - 1], fine[axis - 1])
        for axis in (1, 2, 3):
            v = _filter_axis(v, axis, ks[axis - 1])
        out.append(v)
    return np.concatenate(out, axis=0)


def features(latents: Sequence[np.ndarray], model_shape: Sequence[int],
             valid: Sequence[int], up: tuple[np.ndarray, Sequence[int]] | None = None
             ) -> np.ndarray:
    """``(C·L, *valid)`` float32 features of the valid box of a tile from its latents.

    ``up = (taps, radii)``: learned upsampling (:func:`upsampled`) first, then the finest grid
    is interpolated to the voxels; else every level is interpolated directly.
    """
    grids = [upsampled(latents, *up)] if up is not None else latents
    out = []
    for lat in grids:
        v = np.asarray(lat, np.float32)
        for axis in (3, 2, 1):  # x, y, z of (C, d, h, w)
            v = _interp_axis(v, axis, int(model_shape[axis - 1]), int(valid[axis - 1]))
        out.append(v)
    return np.concatenate(out, axis=0)


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def decode_tile(latents: Sequence[np.ndarray], mlp: Sequence[tuple[np.ndarray, np.ndarray]],
                model_shape: Sequence[int], valid: Sequence[int],
                up: tuple[np.ndarray, Sequence[int]] | None = None) -> np.ndarray:
    """Normalised values (float32, shape ``valid``) of a tile's valid box.

    ``latents``: the tile's integer grids ``(C, d_l, h_l, w_l)``, coarsest first; ``mlp``:
    float32 ``(weight (out, in), bias (out,))`` per layer. Fixed evaluation blocks and one BLAS
    thread, so a tile decodes to the same values alone or with its neighbours. ``up``: the
    learned upsampling's ``(taps, radii)`` (:func:`upsampled`).
    """
    feats = features(latents, model_shape, valid, up)
    flat = feats.reshape(feats.shape[0], -1).T
    out = np.empty(flat.shape[0], np.float32)
    ws = [(np.asarray(w, np.float32).T.copy(), np.asarray(b, np.float32)) for w, b in mlp]
    with _blas().limit(limits=1, user_api="blas"):
        for s in range(0, flat.shape[0], EVAL_BLOCK):
            h = flat[s:s + EVAL_BLOCK]
            for j, (w, b) in enumerate(ws):
                h = h @ w + b
                if j < len(ws) - 1:
                    h = gelu(h)
            out[s:s + EVAL_BLOCK] = h[:, 0]
    return out.reshape(tuple(int(v) for v in valid))
