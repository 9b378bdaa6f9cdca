"""Landing on the byte budget: rate-distortion re-quantisation of the frozen integer latents.

Training steers the rate weight λ towards the budget but ends near it, not on it (519–680×
for a 500× target; one run 5 % over). Once the latents are rounded and frozen, :func:`land`
cuts an excess: it moves single latents by ±1 where that costs the least squared error per
bit saved, until the code length meets an aim:

- distortion, a Taylor model of the total squared error over all voxels: ``ΔD_i(δ) = g_i·δ +
  ½·h_l·δ²`` with ``g`` its exact gradient and ``h_l`` the level's mean diagonal curvature,
  measured with a sparse Rademacher probe (unbiased: cross terms have zero mean);
- rate, the change of the latent's own code length under the float ARM (the contexts of the
  neighbours it feeds are left out, hence the rounds below);
- for a multiplier ``μ`` every latent takes its best ``δ ∈ {−1, 0, 1}`` of ``ΔD + μ·ΔR``; ``μ``
  is bisected until the predicted rate meets the round's aim. Only moves that shorten the
  latent's own code are candidates: a move that spends bits for a predicted fall of the
  error is where the Taylor model fails (on a tiny model such moves raised the true rate and
  doubled the error).

Moved together, neighbours break both models (their errors add up coherently, and each
one's context moves with the others: a first version moving 18 000 latents at once saw the
error rise 15 % where it predicted a fall). So a round moves latents of one (z, y, x) parity
class only, no two of them neighbours, and cuts ``1/CLASSES`` of the excess; the true rate
and error are then measured and the gradient renewed. A round that does not cut the true
rate is dropped. Up to ``ROUNDS`` rounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["Landing", "land"]

CHUNK = 1 << 18  # voxels per evaluation chunk
PROBE = 8  # the curvature probe moves one latent in PROBE of a level
CLASSES = 8  # one round moves latents of one (z, y, x) parity class: no two neighbours
ROUNDS = 16  # at most, two passes over the voxels each
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


def _rates(torch, model, q):
    """Per level ``(bits(q−1), bits(q), bits(q+1))`` of every latent (flat), its neighbours'
    contexts held fixed."""
    from .train import laplace_bits

    out = []
    with torch.no_grad():
        for lev, ql in enumerate(q):
            mu, logb = model.laplace_params(ql, lev)
            flat = ql.reshape(-1)
            out.append(torch.stack([laplace_bits(torch, flat + s, mu, logb)
                                    for s in (-1.0, 0.0, 1.0)]))
    return out


def _choose(dd, dr, mu: float):
    """Per latent the column of ``dd + μ·dr`` (rows δ = −1, 0, +1) that is least."""
    return (dd + mu * dr).argmin(0)


def _predicted_rate(dd, dr, mu: float) -> float:
    return float(sum(r.gather(0, _choose(d, r, mu)[None])[0].sum()
                     for d, r in zip(dd, dr, strict=True)))


def _multiplier(dd, dr, rate0: float, aim: float) -> float:
    """The least ``μ`` (bisected in log space) whose predicted rate is at most ``aim``."""
    if rate0 + _predicted_rate(dd, dr, 0.0) <= aim:
        return 0.0
    lo, hi = 0.0, 1.0
    while rate0 + _predicted_rate(dd, dr, hi) > aim and hi < 1e12:
        lo, hi = hi, hi * 4
    if lo == 0.0:
        lo = hi
        while lo > 1e-12 and rate0 + _predicted_rate(dd, dr, lo) <= aim:
            lo /= 4
    for _ in range(30):
        mid = math.sqrt(lo * hi) if lo > 0 else hi / 2
        if rate0 + _predicted_rate(dd, dr, mid) <= aim:
            hi = mid
        else:
            lo = mid
    return hi


def _parity(torch, ql, cls: int):
    """Mask of the latents of ``ql (T, C, d, h, w)`` whose (z, y, x) parities are the bits
    of ``cls``: no two of them are neighbours."""
    d, h, w = ql.shape[2:]
    z = torch.arange(d, device=ql.device).view(-1, 1, 1) % 2 == (cls >> 2) & 1
    y = torch.arange(h, device=ql.device).view(1, -1, 1) % 2 == (cls >> 1) & 1
    x = torch.arange(w, device=ql.device).view(1, 1, -1) % 2 == cls & 1
    return (z & y & x).expand(ql.shape)


def land(torch, model, sampler, q: list, aim_bits: float, gen) -> tuple[list, Landing]:
    """Move integer latents ``q`` (one tensor per level) by ±1 so that their code length
    under the float ARM falls to ``aim_bits`` at the least squared error (module docstring).

    Returns the new latents and a :class:`Landing` record.
    """
    with torch.no_grad():
        rate = float(model.rate(q))
    ev = _Evaluator(torch, model, sampler)
    q = [p.detach().clone() for p in q]
    sse, g = ev.sse(q, grad=True)
    h = _curvature(torch, ev, q, g, sse, gen)
    rec = Landing([round(v, 6) for v in h])
    inf = float("inf")
    for r in range(ROUNDS):
        if rate <= aim_bits:
            break
        cls = r % CLASSES
        aim = rate - (rate - aim_bits) / max(CLASSES - r, 1)  # the cut spread over classes
        bits = _rates(torch, model, q)
        dd, dr = [], []
        for lev, (ql, gl, b) in enumerate(zip(q, g, bits, strict=True)):
            flat, gf = ql.reshape(-1), gl.reshape(-1)
            free = _parity(torch, ql, cls).reshape(-1)
            cut = b - b[1]  # only moves that shorten the latent's own code
            down = torch.where(free & (flat > QMIN) & (cut[0] < 0), -gf + h[lev] / 2, inf)
            up = torch.where(free & (flat < QMAX) & (cut[2] < 0), gf + h[lev] / 2, inf)
            dd.append(torch.stack([down, torch.zeros_like(gf), up]))
            dr.append(cut)
        mu = _multiplier(dd, dr, rate, aim)
        moved = [(_choose(d, r_, mu) - 1).to(ql.dtype).reshape(ql.shape)
                 for d, r_, ql in zip(dd, dr, q, strict=True)]
        new = [ql + m for ql, m in zip(q, moved, strict=True)]
        new_sse, new_g = ev.sse(new, grad=True)
        with torch.no_grad():
            new_rate = float(model.rate(new))
        rec.rounds.append({"rate": round(rate), "sse": round(sse, 3), "mu": float(f"{mu:.4g}"),
                           "moves": int(sum(int((m != 0).sum()) for m in moved)),
                           "new_rate": round(new_rate), "new_sse": round(new_sse, 3)})
        if new_rate < rate:
            q, g, sse, rate = new, new_g, new_sse, new_rate
    return q, rec
