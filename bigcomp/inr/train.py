"""Batched training of the per-tile SIRENs (torch).

All tiles of a group are trained at once: stacked weights, one ``baddbmm`` per layer, one fused
Adam (``fused=True`` where the build supports it, else ``foreach``) over the stacked tensors,
cosine learning-rate decay. Each step draws ``batch`` points per tile: half uniformly over the
tile's valid box, half from a pool drawn once in proportion to the saliency map.

The last ``qat`` fraction of the steps is quantisation-aware: the step of every tensor of every
tile is fixed from its residual range (:func:`bigcomp.inr.bitstream.step_codes`) and the forward
pass uses ``shared + round(r / step)·step`` with a straight-through gradient, so the network
learns to live with the weights the decoder will see.

Shared initialisation (weight transfer): :func:`pretrain_shared` runs Reptile on random
modelled tiles — copies of the shared network are trained a few steps on a batch of tiles, and
the shared weights move towards their mean. Every tile starts from the result and stores only
its difference from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import bitstream as B
from .model import forward, init_params, require_torch

__all__ = ["TileSet", "fit_tiles", "pretrain_shared"]

SALIENT = 0.5  # fraction of each step's points drawn from the saliency pool


@dataclass
class TileSet:
    """Training data of ``G`` tiles on one device.

    values : (G, N) float32, normalised ``(x − mean) / scale`` on the full tile grid (padding 0)
    valid : (G, D) int64 valid lengths; pool : (G, M) int64 saliency-drawn flat indices
    coords : list of D float32 coordinate tables; strides : D flat strides of the full tile
    """

    values: object
    valid: object
    pool: object
    coords: list
    strides: tuple[int, ...]

    @property
    def ntiles(self) -> int:
        return int(self.values.shape[0])

    def subset(self, sel) -> TileSet:
        return TileSet(self.values[sel], self.valid[sel], self.pool[sel], self.coords,
                       self.strides)

    def sample(self, batch: int, gen):
        """Flat indices ``(G, batch)`` and coordinates ``(G, batch, D)``."""
        torch = require_torch()
        g = self.ntiles
        dev = self.values.device
        ns = round(batch * SALIENT)
        nu = batch - ns
        flat = torch.zeros((g, nu), dtype=torch.int64, device=dev)
        for a, s in enumerate(self.strides):
            r = torch.rand((g, nu), generator=gen, device=dev)
            flat += (r * self.valid[:, a:a + 1]).long().clamp_max(
                self.valid[:, a:a + 1] - 1) * s
        pick = torch.randint(0, self.pool.shape[1], (g, ns), generator=gen,
                             device=dev)
        idx = torch.cat([flat, self.pool.gather(1, pick)], dim=1)
        x = torch.stack([c[(idx // s) % c.shape[0]]
                         for c, s in zip(self.coords, self.strides, strict=True)], dim=-1)
        return idx, x


def _adam(params, lr: float):
    torch = require_torch()
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):  # no fused kernel for this device/build
        return torch.optim.Adam(params, lr=lr, foreach=True)


def _codes(params, shared, bits: int) -> np.ndarray:
    """Step codes ``(G, L)`` from the current residual ranges."""
    cols = []
    for p, s in zip(params, shared, strict=True):
        r = (p.detach() - s.detach()).flatten(1).abs().amax(dim=1)
        cols.append(r.double().cpu().numpy())
    return B.step_codes(np.stack(cols, axis=1), bits)


def _fake_quant(params, shared, steps, qmax):
    """``shared + round(r/step)·step`` with a straight-through gradient."""
    out = []
    for j, (p, s) in enumerate(zip(params, shared, strict=True)):
        st = steps[:, j].reshape((-1,) + (1,) * (p.dim() - 1))
        r = p - s
        rq = (r / st).round().clamp(-int(qmax[j]), int(qmax[j])) * st
        out.append(s + r + (rq - r).detach())
    return out


def fit_tiles(data: TileSet, params: list, shared: list, *, steps: int, batch: int, lr: float,
              w0: float, bits: int, qat: float, gen, bf16: bool = False,
              final_codes: bool = True, codes=None, t0: float = 0.0, masks=None):
    """Train ``params`` (list of ``(G, ...)`` tensors) on ``data``.

    Returns the trained float parameters (detached) and, with ``final_codes``, the step codes
    ``(G, L)`` used by quantisation-aware training (``None`` otherwise). ``codes`` (``(G, L)``)
    fixes the step codes and makes every step quantisation-aware (the short retraining after
    rate control coarsened the steps); ``t0`` starts the cosine schedule at that fraction.
    ``masks`` (0/1 tensors like ``params``) zero the gradients of padding units (tiles of
    different widths trained as one batch, ``compress._padded_groups``), which therefore
    stay at their start value.
    """
    torch = require_torch()
    params = [p.detach().clone().requires_grad_(True) for p in params]
    opt = _adam(params, lr)
    qat_start = steps - round(steps * qat) if final_codes else steps
    qmax = B.level_limits(len(params), bits)
    steps_t = None
    if codes is not None:
        codes = np.asarray(codes, np.uint8)
        steps_t = torch.from_numpy(B.steps_from_codes(codes)).to(data.values.device)
        qat_start = -1
    for it in range(steps):
        frac = t0 + (1.0 - t0) * it / steps
        lr_t = lr * (0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * frac)))
        for grp in opt.param_groups:
            grp["lr"] = lr_t
        if it == qat_start:
            codes = _codes(params, shared, bits)
            steps_t = torch.from_numpy(B.steps_from_codes(codes)).to(data.values.device)
        idx, x = data.sample(batch, gen)
        target = data.values.gather(1, idx)
        eff = params if codes is None else _fake_quant(params, shared, steps_t, qmax)
        pred = forward(eff, x, w0, bf16=bf16)
        loss = (pred - target).square().mean(dim=1).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if masks is not None:
            for p, m in zip(params, masks, strict=True):
                p.grad.mul_(m)
        opt.step()
    out = [p.detach() for p in params]
    if final_codes and codes is None:
        codes = _codes(out, shared, bits)
    return out, codes


def pretrain_shared(data: TileSet, *, dims: int, width: int, depth: int, outer: int,
                    inner: int, meta_tiles: int, batch: int, lr: float, w0: float, gen,
                    bf16: bool = False) -> list:
    """Reptile: shared weights ``(1, ...)`` that adapt fast to any tile of ``data``."""
    torch = require_torch()
    dev = data.values.device
    shared = [p.to(dev) for p in init_params(1, dims, width, depth, gen_cpu(gen))]
    for o in range(outer):
        m = min(meta_tiles, data.ntiles)
        sel = torch.randperm(data.ntiles, generator=gen, device=dev)[:m]
        start = [s.expand(m, *s.shape[1:]).contiguous() for s in shared]
        adapted, _ = fit_tiles(data.subset(sel), start, shared, steps=inner, batch=batch,
                               lr=lr, w0=w0, bits=8, qat=0.0, gen=gen, bf16=bf16,
                               final_codes=False)
        eps = 1.0 - 0.9 * o / max(1, outer)
        shared = [s + eps * (a.mean(dim=0, keepdim=True) - s)
                  for s, a in zip(shared, adapted, strict=True)]
    return shared


def gen_cpu(gen):
    """A CPU generator seeded from ``gen`` (initial weights are drawn on the CPU)."""
    torch = require_torch()
    seed = int(torch.randint(0, 2**62, (1,), generator=gen, device=gen.device).item())
    g = torch.Generator()
    g.manual_seed(seed)
    return g
