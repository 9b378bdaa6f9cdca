"""Landing on the byte budget: rate-distortion re-quantisation of the frozen integer latents.

Training steers the rate weight λ towards the budget but ends near it, not on it. Once the
latents are rounded and frozen, :func:`land` cuts an excess: it moves single latents by ±1
where that costs the least squared error per bit saved, until the code length meets an aim.

- Classes: a sweep visits the latents in ``CLASSES`` = 18 classes of (z mod 2, y mod 3,
  x mod 3). A latent's code depends on itself and the 13 causal neighbours of its context,
  so moving latent ``i`` changes the codes of ``i`` and of the latents whose context holds
  ``i``; within one class no latent's window holds two members. Moving every member of a
  class by ``δ`` and re-reading the codes therefore gives, for every member at once, the
  exact change ``ΔR_i(δ)`` its own move would make (one ARM pass per ``δ``).
- Distortion: a Taylor model of the total squared error over all voxels, ``ΔD_i(δ) = g_i·δ
  + ½·h_l·δ²``, with ``g`` its exact gradient, renewed after every class (kept for a whole
  sweep, it doubled the error of a 10 % cut on a small stack; renewed, the cut cost +2.3 %),
  and ``h_l`` the level's mean diagonal curvature from a sparse random ±1 probe (unbiased:
  cross terms have zero mean).
- Per class, every member takes its best ``δ ∈ {−1, 0, 1}`` of ``ΔD + μ·ΔR`` among the moves
  that cut the rate; ``μ`` is bisected so that the class cuts its share of what is left.

Moved together, neighbours break both models (a first version moving 18 000 latents at once
saw the error rise where it predicted a fall, and the rate rise with it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Landing", "land"]

CHUNK = 1 << 18  # voxels per evaluation chunk
PROBE = 8  # the curvature probe moves one latent in PROBE of a level
STRIDES = (2, 3, 3)  # class = (z mod 2, y mod 3, x mod 3): no window holds two members
CLASSES = STRIDES[0] * STRIDES[1] * STRIDES[2]
SWEEPS = 2  # at most; a sweep takes one gradient pass over the voxels per class
QMIN, QMAX = -128, 127  # the latent alphabet's bounds (entropy.py)


@dataclass
class Landing:
    """What :func:`land` did: per round the rate (bits) and squared error before and
    after, the moves and the multiplier; ``curvature`` per level."""

    curvature: list[float]
    rounds: list[dict] = field(default_factory=list)


class _Evaluator:
    """Total squared error of the decoded array over every voxel, and its gradient."""

    def __init__(self, torch, model, sampler):
        self.torch, self.model, self.sampler = torch, model, sampler

    def sse(self, lats, grad: bool = False):
        torch, model, sampler = self.torch, self.model, self.sampler
        lats = [q.detach().clone().requires_grad_(grad) for q in lats]
        with torch.set_grad_enabled(grad):
            base = [model.grid(lats)] if model.radii is not None else list(lats)
        det = [b.detach().requires_grad_(grad) for b in base]
        acc = [torch.zeros_like(b) for b in base] if grad else None
        total = 0.0
        for idx, tile_idx, local in sampler.chunks(CHUNK):
            with torch.set_grad_enabled(grad):
                pred = model.decode(sampler.features(det, tile_idx, local))
                err = ((pred - sampler.values[idx]) ** 2).sum()
            if grad:
                for a, gr in zip(acc, torch.autograd.grad(err, det), strict=True):
                    a += gr
            total += float(err.detach())
        if not grad:
            return total, None
        return total, list(torch.autograd.grad(base, lats, grad_outputs=acc))


def _curvature(torch, ev, q, g, sse0: float, gen) -> list[float]:
    """Per level: mean ``∂²SSE/∂q_i²`` from a sparse random ±1 probe."""
    out = []
    for lev, ql in enumerate(q):
        pick = torch.rand(ql.shape, generator=gen, device=ql.device) < 1 / PROBE
        sign = torch.where(torch.rand(ql.shape, generator=gen, device=ql.device) < 0.5,
                           -1.0, 1.0)
        sign = torch.where(ql + sign > QMAX, -1.0, torch.where(ql + sign < QMIN, 1.0, sign))
        d = pick.to(ql.dtype) * sign
        n = float(pick.sum())
        if n == 0:
            out.append(0.0)
            continue
        probe = [p + d if i == lev else p for i, p in enumerate(q)]
        sse1, _ = ev.sse(probe)
        out.append(max(2 * (sse1 - sse0 - float((g[lev] * d).sum())) / n, 0.0))
    return out


def _bits(torch, model, q):
    """Code length in bits of every latent (per level, its shape) under the float ARM."""
    from .train import laplace_bits

    with torch.no_grad():
        return [laplace_bits(torch, ql.reshape(-1), *model.laplace_params(ql, lev)).view(
            ql.shape) for lev, ql in enumerate(q)]


def _window_sum(torch, d):
    """``out[i] = d[i] + Σ_o d[i − o]`` over the context offsets ``o``: the change of every
    code whose context holds ``i`` (``d (T, C, D, H, W)``)."""
    from .entropy import CONTEXT

    _t, _c, dd, hh, ww = d.shape
    p = torch.nn.functional.pad(d, (1,) * 6)
    out = d.clone()
    for oz, oy, ox in CONTEXT:
        out += p[..., 1 - oz:1 - oz + dd, 1 - oy:1 - oy + hh, 1 - ox:1 - ox + ww]
    return out


def _members(torch, ql, cls: int):
    """Mask of the latents of ``ql (T, C, D, H, W)`` in class ``cls`` (module docstring)."""
    sz, sy, sx = STRIDES
    kz, ky, kx = cls // (sy * sx), cls // sx % sy, cls % sx
    d, h, w = ql.shape[2:]
    z = torch.arange(d, device=ql.device).view(-1, 1, 1) % sz == kz
    y = torch.arange(h, device=ql.device).view(1, -1, 1) % sy == ky
    x = torch.arange(w, device=ql.device).view(1, 1, -1) % sx == kx
    return (z & y & x).expand(ql.shape)


def _choose(dd, dr, mu: float):
    """Per latent the column of ``dd + μ·dr`` (rows δ = −1, 0, +1) that is least."""
    return (dd + mu * dr).argmin(0)


def _predicted_rate(dd, dr, mu: float) -> float:
    return float(sum(r.gather(0, _choose(d, r, mu)[None])[0].sum()
                     for d, r in zip(dd, dr, strict=True)))


def _multiplier(dd, dr, aim: float) -> float:
    """The least ``μ`` (bisected in log space) whose predicted rate change is at most
    ``aim``."""
    if _predicted_rate(dd, dr, 0.0) <= aim:
        return 0.0
    lo, hi = 0.0, 1.0
    while _predicted_rate(dd, dr, hi) > aim and hi < 1e12:
        lo, hi = hi, hi * 4
    if lo == 0.0:
        lo = hi
        while lo > 1e-12 and _predicted_rate(dd, dr, lo) <= aim:
            lo /= 4
    for _ in range(30):
        mid = math.sqrt(lo * hi) if lo > 0 else hi / 2
        if _predicted_rate(dd, dr, mid) <= aim:
            hi = mid
        else:
            lo = mid
    return hi


def _class_moves(torch, model, q, bits, g, h, cls: int, cut_bits: float):
    """Moves ``δ`` (per level, ``q``'s shape) of class ``cls``'s members that cut at least
    ``cut_bits`` (or all they can) at the least predicted error; and the multiplier ``μ``."""
    inf = float("inf")
    masks = [_members(torch, ql, cls) for ql in q]
    dd, dr = [], []
    for sign in (-1.0, 1.0):
        moved = [ql + sign * m.to(ql.dtype) for ql, m in zip(q, masks, strict=True)]
        after = _bits(torch, model, moved)
        for lev, (ql, m, b0, b1) in enumerate(zip(q, masks, bits, after, strict=True)):
            delta = _window_sum(torch, b1 - b0)
            ok = m & (delta < 0) & (ql + sign <= QMAX) & (ql + sign >= QMIN)
            cost = torch.where(ok, sign * g[lev] + h[lev] / 2, inf)
            if sign < 0:
                dd.append([cost.reshape(-1)])
                dr.append([torch.where(ok, delta, 0.0).reshape(-1)])
            else:
                dd[lev].append(cost.reshape(-1))
                dr[lev].append(torch.where(ok, delta, 0.0).reshape(-1))
    dd = [torch.stack([a, torch.zeros_like(a), b]) for a, b in dd]
    dr = [torch.stack([a, torch.zeros_like(a), b]) for a, b in dr]
    mu = _multiplier(dd, dr, -cut_bits)
    steps = [(_choose(d, r, mu) - 1).to(ql.dtype).reshape(ql.shape)
             for d, r, ql in zip(dd, dr, q, strict=True)]
    return steps, mu


def land(torch, model, sampler, q: list, aim_bits: float, gen) -> tuple[list, Landing]:
    """Move integer latents ``q`` (one tensor per level) by ±1 so that their code length
    under the float ARM falls to ``aim_bits`` at the least squared error (module docstring).

    Returns the new latents and a :class:`Landing` record (per sweep).
    """
    ev = _Evaluator(torch, model, sampler)
    q = [p.detach().clone() for p in q]
    sse, g = ev.sse(q, grad=True)
    h = _curvature(torch, ev, q, g, sse, gen)
    rec = Landing([round(v, 6) for v in h])
    bits = _bits(torch, model, q)
    rate = float(sum(b.sum() for b in bits))
    for _ in range(SWEEPS):
        if rate <= aim_bits:
            break
        start, moves, mus = rate, 0, []
        for cls in range(CLASSES):
            if rate <= aim_bits:
                break
            steps, mu = _class_moves(torch, model, q, bits, g, h, cls,
                                           (rate - aim_bits) / (CLASSES - cls))
            q = [ql + s for ql, s in zip(q, steps, strict=True)]
            moves += int(sum(int((s != 0).sum()) for s in steps))
            mus.append(mu)
            bits = _bits(torch, model, q)
            rate = float(sum(b.sum() for b in bits))
            new_sse, g = ev.sse(q, grad=True)  # the error moves with every class
        rec.rounds.append({"rate": round(start), "sse": round(sse, 3), "moves": moves,
                           "mu_max": float(f"{max(mus, default=0.0):.4g}"),
                           "new_rate": round(rate), "new_sse": round(new_sse, 3)})
        sse = new_sse
    return q, rec
