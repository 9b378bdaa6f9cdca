"""Research (issue 21): what context modelling would shrink the ``max`` coder's residuals.

For each data set (lossless values, and q = 1 bins coded as whole stacks or one plane per
chunk) this takes bigcomp's own predictor and residuals and prices the residual tokens under
candidate context models, in bits per pixel:

- ``static``: two-pass, one frequency table per context (ideal code lengths of the chunk's own
  counts) plus the table bits as the ``max`` payload stores them (9-byte token mask, u16 per
  present token);
- ``adaptive``: one-pass adaptive frequencies per context (+32 per symbol, halved above 2**16),
  no tables.

Contexts are built from causal features: tokens/magnitudes of neighbouring residuals,
gradients of neighbouring values (JPEG-LS), and the predicted value's level (the photon-noise
idea: σ² = g (x − o) + g² σ_r²), quantised by the chunk's own quantiles (the thresholds would
travel in the payload). The baseline row ``tok4/8 (max today)`` is the current rule.

Usage: ``python benchmarks/research/lossless_models.py [--sets storm,ccd] [--planes 8]``
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numba
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import _data  # noqa: E402

from bigcomp.chunk import _as_3d, predictor_for  # noqa: E402
from bigcomp.kernels._coders import encode_max  # noqa: E402
from bigcomp.kernels._predict import predict_encode  # noqa: E402
from bigcomp.noise import quantisation_tables  # noqa: E402

# ---------------------------------------------------------------------------------- data
LOADERS = {"synthetic": lambda root: _data.synthetic(False), "storm": _data.storm,
           "ccd": _data.ccd_spe, "membrane": _data.timelapse, "lattice": _data.lattice,
           "brain": _data.brain}


def residual_data(k3: np.ndarray, nz: int, lo: int, hi: int):
    """(pred, plain signed residual, oriented zig-zag symbols) under bigcomp's `max` predictor."""
    intra, inter = predictor_for(k3, nz, lo, hi, "max", "qp")
    ia, ea = intra.as_arrays(), inter.as_arrays()
    plain = predict_encode(k3, nz, ia, ea, lo, hi, orient=False, parallel=False)
    sym = predict_encode(k3, nz, ia, ea, lo, hi, orient=True, parallel=False)
    z = plain.astype(np.int64)
    r = (z >> 1) ^ -(z & 1)
    pred = k3.reshape(-1).astype(np.int64) - r
    return pred.reshape(k3.shape), r.reshape(k3.shape), sym.reshape(k3.shape)


# ---------------------------------------------------------------------------- tokenising
@numba.njit(cache=True)
def tokens(sym, split_exp, msb, lsb):
    """JPEG XL HybridUint(split_exp, msb, lsb) tokens and extra-bit counts."""
    n = sym.size
    tok = np.empty(n, np.int64)
    nb = np.empty(n, np.int64)
    split = 1 << split_exp
    for i in range(n):
        v = np.int64(sym[i])
        if v < split:
            tok[i] = v
            nb[i] = 0
        else:
            e = 0
            while (v >> (e + 1)) != 0:
                e += 1
            m = v - (np.int64(1) << e)
            tok[i] = (split + ((e - split_exp) << (msb + lsb)) + ((m >> (e - msb)) << lsb)
                      + (m & ((1 << lsb) - 1)))
            nb[i] = e - msb - lsb
    return tok, nb


def ntokens(tok):
    return int(tok.max()) + 1


# --------------------------------------------------------------------------------- costs
@numba.njit(cache=True)
def _counts(ctx, tok, nctx, ntok):
    h = np.zeros((nctx, ntok), np.int64)
    for i in range(ctx.size):
        h[ctx[i], tok[i]] += 1
    return h


def static_bits(ctx, tok, nb, nctx):
    ntok = ntokens(tok)
    h = _counts(ctx, tok, nctx, ntok).astype(np.float64)
    tot = h.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = np.where(h > 0, h * np.log2(np.where(h > 0, tot / np.maximum(h, 1), 1)), 0).sum()
    present = (h > 0).sum(1)
    table = sum(8 * (math.ceil(ntok / 8) + 2 * max(m - 1, 0)) for m in present if m)
    return ent + float(nb.sum()) + table


@numba.njit(cache=True)
def adaptive_bits(ctx, tok, nb, nctx, ntok, inc, limit):
    f = np.ones((nctx, ntok), np.int64)
    tot = np.full(nctx, ntok, np.int64)
    bits = 0.0
    for i in range(ctx.size):
        c, t = ctx[i], tok[i]
        bits += math.log2(tot[c] / f[c, t]) + nb[i]
        f[c, t] += inc
        tot[c] += inc
        if tot[c] > limit:
            s = 0
            for j in range(ntok):
                f[c, j] = (f[c, j] + 1) >> 1
                s += f[c, j]
            tot[c] = s
    return bits


# ------------------------------------------------------------------------------ features
@numba.njit(cache=True)
def features(k, pred, r, tok, nz):
    """Per-pixel raw features (planes, rows, cols), causal. Rows: 0 tok4 (today's sum),
    1 mag4 = |rW|+|rN|+|rNW|+|rNE|, 2 mag6 = 2|rW|+2|rN|+|rNW|+|rNE|+|rWW|+|rNN|,
    3 grad = |N-NW|+|W-NW|+|NE-N|+|W-WW|+|N-NN|, 4 level = pred, 5 previous-plane
    activity |k[p-1]-pred[p-1]| around (x, y) (3x3 sum; -1 without a previous plane),
    6 magN = |rN|+|rNW|+|rNE|+|rNN| (row above only), 7 gradN (rows above only)."""
    P, R, C = k.shape
    f = np.zeros((8, P, R, C), np.float64)
    for p in range(P):
        for y in range(R):
            for x in range(C):
                xw = max(x - 1, 0)
                xww = max(x - 2, 0)
                xe = min(x + 1, C - 1)
                yn = max(y - 1, 0)
                ynn = max(y - 2, 0)
                has_w = x > 0
                has_n = y > 0
                # neighbours' tokens, |residual|, values (missing ones replicated as today)
                if has_n:
                    tN, tNW, tNE = tok[p, yn, x], tok[p, yn, xw], tok[p, yn, xe]
                    aN, aNW, aNE = abs(r[p, yn, x]), abs(r[p, yn, xw]), abs(r[p, yn, xe])
                    aNN = abs(r[p, ynn, x])
                    vN, vNW, vNE, vNN = k[p, yn, x], k[p, yn, xw], k[p, yn, xe], k[p, ynn, x]
                if has_w:
                    tW, aW, vW = tok[p, y, xw], abs(r[p, y, xw]), k[p, y, xw]
                    aWW, vWW = abs(r[p, y, xww]), k[p, y, xww]
                if not has_n:
                    if has_w:
                        tN = tNW = tNE = tW
                        aN = aNW = aNE = aNN = aW
                        vN = vNW = vNE = vNN = vW
                    else:
                        tN = tNW = tNE = 0
                        aN = aNW = aNE = aNN = 0
                        vN = vNW = vNE = vNN = pred[p, y, x]
                if not has_w:
                    tW, aW, aWW = tN, aN, aN
                    vW = vN
                    vWW = vN
                f[0, p, y, x] = tW + tN + tNW + tNE
                f[1, p, y, x] = aW + aN + aNW + aNE
                f[2, p, y, x] = 2 * aW + 2 * aN + aNW + aNE + aWW + aNN
                f[3, p, y, x] = (abs(vN - vNW) + abs(vW - vNW) + abs(vNE - vN) + abs(vW - vWW)
                                 + abs(vN - vNN))
                f[4, p, y, x] = pred[p, y, x]
                if p % nz:
                    s = 0
                    for dy in range(-1, 2):
                        for dx in range(-1, 2):
                            yy = min(max(y + dy, 0), R - 1)
                            xx = min(max(x + dx, 0), C - 1)
                            s += abs(r[p - 1, yy, xx])
                    f[5, p, y, x] = s
                else:
                    f[5, p, y, x] = -1
                f[6, p, y, x] = aN + aNW + aNE + aNN
                f[7, p, y, x] = abs(vN - vNW) + abs(vNE - vN) + abs(vN - vNN) + abs(vNW - vW)
    return f


def qbin(v: np.ndarray, nbins: int) -> np.ndarray:
    """Bins of equal population (thresholds = quantiles, the chunk's own)."""
    v = v.reshape(-1)
    qs = np.unique(np.quantile(v, np.linspace(0, 1, nbins + 1)[1:-1]))
    return np.searchsorted(qs, v, side="right").astype(np.int64)


def today_bins(tok4):
    return np.searchsorted(np.array((3, 6, 9, 12, 16, 21, 28)), tok4.reshape(-1),
                           side="right").astype(np.int64)


def scale_estimate(f, r):
    """Least-squares fit of |r| on the activity/level features: one scalar context."""
    a = np.abs(r.reshape(-1)).astype(np.float64)
    lvl = np.sqrt(np.maximum(f[4].reshape(-1) - np.quantile(f[4], 0.01), 0))
    cols = [np.ones_like(a), f[2].reshape(-1), f[3].reshape(-1), lvl]
    prev = f[5].reshape(-1)
    if (prev >= 0).any():
        cols.append(np.maximum(prev, 0))
    x = np.stack(cols, 1)
    sample = slice(None, None, max(1, a.size // 200000))
    coef, *_ = np.linalg.lstsq(x[sample], a[sample], rcond=None)
    return x @ coef


def models(f, r):
    """Named context arrays (ctx ids, nctx)."""
    out = {"tok4/8 (max today)": today_bins(f[0])}
    for nb in (8, 16):
        out[f"tok4/{nb}q"] = qbin(f[0], nb)
        out[f"mag4/{nb}q"] = qbin(f[1], nb)
        out[f"mag6/{nb}q"] = qbin(f[2], nb)
        out[f"grad5/{nb}q"] = qbin(f[3], nb)
        out[f"level/{nb}q"] = qbin(f[4], nb)
    out["mag6x level 8x4"] = qbin(f[2], 8) * 4 + qbin(f[4], 4)
    out["mag6x level 8x8"] = qbin(f[2], 8) * 8 + qbin(f[4], 8)
    out["mag6 x grad5 8x4"] = qbin(f[2], 8) * 4 + qbin(f[3], 4)
    out["grad5 x level 8x4"] = qbin(f[3], 8) * 4 + qbin(f[4], 4)
    out["magN+gradN (rows above) 16q"] = qbin(f[6] + 0.5 * f[7], 16)
    s = scale_estimate(f, r)
    for nb in (8, 16, 32):
        out[f"scale fit/{nb}q"] = qbin(s, nb)
    return {k: (v, int(v.max()) + 1) for k, v in out.items()}


def run(name, k3, nz, lo, hi, label, configs=((4, 1, 0),)):
    pred, r, sym = residual_data(k3, nz, lo, hi)
    n = sym.size
    base = len(encode_max(sym.reshape(-1), k3.shape[2], parallel=False))
    t410, nb410 = tokens(sym.reshape(-1), 4, 1, 0)
    f = features(k3.astype(np.int64), pred, r, t410.reshape(k3.shape), nz)
    ms = models(f, r)
    print(f"\n## {name} {label} {k3.shape}: max payload {8 * base / n:.4f} b/px "
          f"(ratio vs 16 bit {16 * n / (8 * base):.3f})")
    print(f"{'model':32s} {'nctx':>5s} " + " ".join(
        f"{'static ' + '-'.join(map(str, c)):>12s} {'adapt ' + '-'.join(map(str, c)):>12s}"
        for c in configs))
    for mname, (ctx, nctx) in ms.items():
        cells = []
        for c in configs:
            t, nb = tokens(sym.reshape(-1), *c)
            cells.append(static_bits(ctx, t, nb, nctx) / n)
            cells.append(adaptive_bits(ctx, t, nb, nctx, ntokens(t), 32, 1 << 16) / n)
        print(f"{mname:32s} {nctx:5d} " + " ".join(f"{c:12.4f}" for c in cells))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--sets", default=",".join(LOADERS))
    ap.add_argument("--planes", type=int, default=8, help="planes per set (0: all)")
    ap.add_argument("--modes", default="lossless,q1,q1-2d")
    ap.add_argument("--tokens", default="4-1-0,4-2-0,5-2-0")
    args = ap.parse_args(argv)
    configs = tuple(tuple(int(v) for v in c.split("-")) for c in args.tokens.split(","))
    for s in args.sets.split(","):
        ds = LOADERS[s](os.path.normpath(args.data))
        a = ds.data
        shape3, nz = _as_3d(a.shape)
        a3 = a.reshape(shape3)
        if args.planes:
            a3 = a3[: max(args.planes, 1)]
        for mode in args.modes.split(","):
            if mode == "lossless":
                run(ds.name, a3, nz, 0, 65535, mode, configs)
            else:
                t = quantisation_tables(ds.camera, 1.0, a.dtype.name)
                k3 = t.bin[a3].astype(np.uint16)
                if mode == "q1":
                    run(ds.name, k3, nz, 0, t.nbins - 1, mode, configs)
                else:  # one plane per chunk: first plane only (representative)
                    run(ds.name, k3[:1], 1, 0, t.nbins - 1, mode, configs)


if __name__ == "__main__":
    main()
