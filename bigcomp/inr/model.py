"""The per-tile SIREN: numpy evaluation (decoding) and the batched torch version (training).

Decoding never needs torch: :func:`evaluate_tile` runs the network in float32 numpy on the
dequantised weights, over the tile's full coordinate grid in fixed blocks of points, so a tile
decodes to the same bits whether it is read alone or as part of the whole array.

Training stacks the weights of ``T`` tiles (``(T, in, out)``) and runs one batched matmul
(``torch.baddbmm``) per layer for all tiles at once.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np
from threadpoolctl import ThreadpoolController

from .bitstream import layer_shapes
from .tiling import coordinates

try:  # optional extra [inr]; decoding works without it
    import torch
except ImportError:  # pragma: no cover - exercised where torch is absent
    torch = None

__all__ = ["evaluate_tile", "forward", "init_bounds", "init_params", "require_torch",
           "seeded_init"]

EVAL_BLOCK = 1 << 15  # points per numpy evaluation block (fixed: part of deterministic decode)


def require_torch():
    """Return the torch module or raise an ImportError saying how to install it."""
    if torch is None:
        raise ImportError("the INR mode trains with PyTorch: pip install 'bigcomp[inr]' "
                          "(or pip install torch)")
    return torch


def split(flat: np.ndarray, shapes: Sequence[tuple[int, ...]]) -> list[np.ndarray]:
    """Views of a flat parameter vector as the tensors of ``shapes``."""
    out, o = [], 0
    for s in shapes:
        n = math.prod(s)
        out.append(flat[o:o + n].reshape(s))
        o += n
    return out


def evaluate_tile(flat: np.ndarray, model_shape: Sequence[int], valid: Sequence[int], *,
                  width: int, depth: int, w0: float) -> np.ndarray:
    """Network output (float32, before mean/scale) on the valid part of a tile.

    ``flat``: float32 parameters; ``model_shape``: full tile length of each input axis;
    ``valid``: the valid lengths (edge tiles). Returns an array of shape ``valid``.
    """
    # one BLAS thread: the products are small (blocks of 32 Ki points by <= 64), and tiles
    # decode in parallel under dask; a threaded BLAS per tile oversubscribed two cores and
    # decoded a 16-tile array 6-25x slower (measured)
    with _blas().limit(limits=1, user_api="blas"):
        return _evaluate(flat, model_shape, valid, width=width, depth=depth, w0=w0)


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _evaluate(flat: np.ndarray, model_shape: Sequence[int], valid: Sequence[int], *,
              width: int, depth: int, w0: float) -> np.ndarray:
    ps = split(np.asarray(flat, np.float32), layer_shapes(len(model_shape), width, depth))
    axes = [c[:v] for c, v in zip(coordinates(model_shape), valid, strict=True)]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, len(axes))
    out = np.empty(grid.shape[0], np.float32)
    f0 = np.float32(w0)
    for s in range(0, grid.shape[0], EVAL_BLOCK):
        h = np.sin(f0 * (grid[s:s + EVAL_BLOCK] @ ps[0] + ps[1]))
        for j in range(1, depth):
            h = np.sin(h @ ps[2 * j] + ps[2 * j + 1])
        out[s:s + EVAL_BLOCK] = (h @ ps[-2])[:, 0] + ps[-1][0]
    return out.reshape(tuple(valid))


def init_bounds(dims: int, width: int, depth: int) -> list[float]:
    """Half-widths of the uniform SIREN initialisation of each tensor (:func:`layer_shapes` order).

    First layer ``1/D``; hidden layers ``√(6/w)`` (w0 folded in); output layer ``√(6/w)/30``;
    biases ``1/√fan_in`` as in SIREN's reference code.
    """
    shapes = layer_shapes(dims, width, depth)
    out = []
    for k, shape in enumerate(shapes):
        if len(shape) == 2:
            bound = 1.0 / dims if k == 0 else math.sqrt(6.0 / shape[0])
            if k == 2 * depth:  # output layer: small
                bound = math.sqrt(6.0 / shape[0]) / 30.0
        else:
            bound = 1.0 / math.sqrt(shapes[k - 1][0])
        out.append(bound)
    return out


def init_params(ntiles: int, dims: int, width: int, depth: int, generator) -> list:
    """SIREN initialisation of one network (:func:`init_bounds`), repeated for ``ntiles``.

    float32 CPU tensors of shape ``(ntiles, *shape)``, drawn from the torch ``generator``.
    """
    tt = require_torch()
    out = []
    for shape, bound in zip(layer_shapes(dims, width, depth), init_bounds(dims, width, depth),
                            strict=True):
        t = (tt.rand(shape, generator=generator) * 2.0 - 1.0) * bound
        out.append(t.unsqueeze(0).repeat(ntiles, *([1] * len(shape))).contiguous())
    return out


_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (uint64 in, uint64 out; wraps modulo 2**64)."""
    with np.errstate(over="ignore"):
        z = (x + np.uint64(0x9E3779B97F4A7C15)) & _M64
        z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return z ^ (z >> np.uint64(31))


def seeded_init(dims: int, width: int, depth: int, seed: int) -> np.ndarray:
    """SIREN initialisation as a flat float32 vector, reproducible from ``seed`` alone.

    The uniform numbers come from a SplitMix64 hash of ``(seed, index)`` in numpy integer
    arithmetic, so every platform and numpy version regenerates the same bits: a store can use
    this vector as the origin of its residuals without storing it (``shared: "seeded"``).

    Examples
    --------
    >>> a = seeded_init(3, 8, 2, seed=7)
    >>> a.dtype, a.size, bool((a == seeded_init(3, 8, 2, seed=7)).all())
    (dtype('float32'), 113, True)
    """
    shapes = layer_shapes(dims, width, depth)
    n = sum(math.prod(s) for s in shapes)
    key = np.uint64((int(seed) & 0xFFFFFFFF) << 32)
    bits = _splitmix64(np.arange(n, dtype=np.uint64) | key) >> np.uint64(11)
    u = bits.astype(np.float64) * (1.0 / 9007199254740992.0)  # [0, 1), 53 bits
    out = np.empty(n, np.float32)
    o = 0
    for shape, bound in zip(shapes, init_bounds(dims, width, depth), strict=True):
        k = math.prod(shape)
        out[o:o + k] = ((u[o:o + k] * 2.0 - 1.0) * bound).astype(np.float32)
        o += k
    return out


def forward(params: Sequence, x, w0: float, *, bf16: bool = False):
    """Batched network: ``x (T, B, D)`` -> ``(T, B)``; ``params`` as from :func:`init_params`.

    The first layer and its sine argument stay float32; with ``bf16`` (CUDA only) the hidden
    and output matmuls run under bfloat16 autocast.
    """
    tt = require_torch()
    depth = (len(params) - 2) // 2
    h = tt.sin(w0 * tt.baddbmm(params[1].unsqueeze(1), x, params[0]))
    ctx = (tt.autocast("cuda", dtype=tt.bfloat16) if bf16 else _null())
    with ctx:
        for j in range(1, depth):
            h = tt.sin(tt.baddbmm(params[2 * j + 1].unsqueeze(1), h, params[2 * j]))
        y = tt.baddbmm(params[-1].unsqueeze(1), h, params[-2])
    return y.squeeze(-1).float()


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False
