"""The per-tile SIREN: numpy evaluation (decoding) and the batched torch version (training).

Decoding never needs torch: :func:`evaluate_tile` runs the network in float32 numpy on the
dequantised weights, over the tile's full coordinate grid in fixed blocks of points, so a tile
decodes to the same bits whether it is read alone or as part of the whole array.

Training stacks the weights of ``T`` tiles (``(T, in, out)``) and runs one batched matmul
(``torch.baddbmm``) per layer for all tiles at once.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .bitstream import layer_shapes
from .tiling import coordinates

try:  # optional extra [inr]; decoding works without it
    import torch
except ImportError:  # pragma: no cover - exercised where torch is absent
    torch = None

__all__ = ["evaluate_tile", "forward", "init_params", "require_torch"]

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


def init_params(ntiles: int, dims: int, width: int, depth: int, generator) -> list:
    """SIREN initialisation of one network, repeated for ``ntiles`` (float32 CPU tensors).

    First layer ``U(−1/D, 1/D)``; hidden layers ``U(−√(6/w), √(6/w))`` (w0 folded in); biases
    ``U(−1/√fan_in, 1/√fan_in)``-style as in SIREN's reference code.
    """
    tt = require_torch()
    out = []
    for k, shape in enumerate(layer_shapes(dims, width, depth)):
        fan_in = shape[0] if len(shape) == 2 else None
        if len(shape) == 2:
            bound = 1.0 / dims if k == 0 else math.sqrt(6.0 / fan_in)
            if k == 2 * depth:  # output layer: small
                bound = math.sqrt(6.0 / fan_in) / 30.0
        else:
            prev = layer_shapes(dims, width, depth)[k - 1][0]
            bound = 1.0 / math.sqrt(prev)
        t = (tt.rand(shape, generator=generator) * 2.0 - 1.0) * bound
        out.append(t.unsqueeze(0).repeat(ntiles, *([1] * len(shape))).contiguous())
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
