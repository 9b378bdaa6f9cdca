"""Research (issue 21): predictors for the context-modelled ``max`` coder, 2-D and 3-D.

Each predictor gives a fixed-point prediction (``F`` fraction bits); the residual is oriented
as bigcomp's (sign flipped where rounding went up) and priced with the model that
``lossless_models.py`` found best: contexts = 16 quantile bins of the predicted value's level,
static tables (+ their bits) and adaptive. Candidates:

- ``bigcomp``: the chunk's own least-squares predictor (today);
- ``+bias``: bigcomp plus a JPEG-LS bias correction (running mean residual per context of
  level bin x west-residual bin, halved every 64);
- ``wp``: JPEG XL's self-correcting weighted predictor (4 sub-predictors, libjxl defaults);
- ``mix``: bigcomp and wp averaged, weighted by their recent errors (W, N, NW, NE);
- ``ls-wide``: a 2-D least-squares fit with 24 causal taps (two rows more reach).

Usage: ``python benchmarks/research/lossless_predictors.py --sets membrane --modes q1-2d``
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
sys.path.insert(0, HERE)

from lossless_models import LOADERS, adaptive_bits, ntokens, qbin, static_bits, tokens  # noqa

from bigcomp.chunk import _as_3d, predictor_for  # noqa: E402
from bigcomp.kernels._coders import encode_max  # noqa: E402
from bigcomp.kernels._predict import predict_encode  # noqa: E402
from bigcomp.noise import quantisation_tables  # noqa: E402
from bigcomp.predictors import Taps, _fit, _gather, _positions  # noqa: E402

F = 4  # fraction bits of every prediction here


@numba.njit(cache=True)
def taps_predict(k, nz, ti, ci, si, te, ce, se, lo, hi):
    """bigcomp's prediction (fixed point, F fraction bits), fallback at borders as _predict."""
    P, R, C = k.shape
    out = np.empty(k.shape, np.int64)
    for p in range(P):
        inter = p % nz != 0
        taps, coefs, shift = (te, ce, se) if inter else (ti, ci, si)
        for y in range(R):
            for x in range(C):
                ok = True
                s = np.int64(0)
                for t in range(taps.shape[0]):
                    yy = y + taps[t, 1]
                    xx = x + taps[t, 2]
                    if yy < 0 or yy >= R or xx < 0 or xx >= C:
                        ok = False
                        break
                    s += coefs[t] * np.int64(k[p + taps[t, 0], yy, xx])
                if ok:
                    v = s << F >> shift if shift <= F else (s + (1 << (shift - F - 1))) >> (shift - F)
                    out[p, y, x] = min(max(v, np.int64(lo) << F), np.int64(hi) << F)
                elif x > 0:
                    out[p, y, x] = np.int64(k[p, y, x - 1]) << F
                elif y > 0:
                    out[p, y, x] = np.int64(k[p, y - 1, x]) << F
                elif inter:
                    out[p, y, x] = np.int64(k[p - 1, y, x]) << F
                else:
                    out[p, y, x] = np.int64(lo) << F
    return out


@numba.njit(cache=True)
def oriented(k, predf):
    """Zig-zagged oriented residuals and the rounded predictions."""
    n = k.size
    kf = k.reshape(-1)
    pf = predf.reshape(-1)
    sym = np.empty(n, np.uint32)
    pr = np.empty(n, np.int64)
    half = np.int64(1) << (F - 1)
    for i in range(n):
        rp = (pf[i] + half) >> F
        r = np.int64(kf[i]) - rp
        if (rp << F) > pf[i]:  # rounded up: flip
            r = -r
        sym[i] = np.uint32((r << 1) ^ (r >> 63))
        pr[i] = rp
    return sym, pr


@numba.njit(cache=True)
def bias_correct(k, predf, lvlbin, nlvl):
    """JPEG-LS-style bias cancellation: per context (level bin x |west residual| bin) a running
    mean of the residual (in 1/2**F units), added to the prediction."""
    P, R, C = k.shape
    nctx = nlvl * 4
    B = np.zeros(nctx, np.int64)
    N = np.ones(nctx, np.int64)
    out = np.empty(k.shape, np.int64)
    lv = lvlbin.reshape(k.shape)
    for p in range(P):
        for y in range(R):
            rw = np.int64(0)
            for x in range(C):
                aw = abs(rw)
                wb = 0 if aw < (1 << F) else 1 if aw < (4 << F) else 2 if aw < (16 << F) else 3
                c = lv[p, y, x] * 4 + wb
                corr = B[c] // N[c]
                pv = predf[p, y, x] + corr
                out[p, y, x] = pv
                err = (np.int64(k[p, y, x]) << F) - pv
                B[c] += err
                N[c] += 1
                if N[c] >= 64:
                    B[c] = B[c] // 2
                    N[c] = N[c] // 2
                rw = (np.int64(k[p, y, x]) << F) - predf[p, y, x]
    return out


_DIV = np.array([(1 << 24) // (i + 1) for i in range(64)], np.int64)


@numba.njit(cache=True)
def _err_weight(x, maxw, div):
    shift = 0
    v = x + 1
    while (v >> (shift + 1)) != 0:
        shift += 1
    shift -= 5
    if shift < 0:
        shift = 0
    return 4 + ((maxw * div[x >> shift]) >> shift)


@numba.njit(cache=True)
def wp_predict(k, div):
    """libjxl's weighted predictor (defaults), per plane; returns F-bit fixed point."""
    P, R, C = k.shape
    out = np.empty(k.shape, np.int64)
    EB = 3
    rnd = ((1 << EB) >> 1) - 1
    maxw = np.array([0xD, 0xC, 0xC, 0xC], np.int64)
    for p in range(P):
        perr = np.zeros((4, 2, C + 2), np.int64)
        terr = np.zeros((2, C + 2), np.int64)
        preds = np.zeros(4, np.int64)
        for y in range(R):
            cur = y & 1
            prv = 1 - cur
            for x in range(C):
                # neighbours, JPEG XL edge rules
                if y == 0:
                    W = np.int64(k[p, y, x - 1]) if x > 0 else 0
                    N = W
                    NW = W
                    NE = W
                    NN = W
                else:
                    N = np.int64(k[p, y - 1, x])
                    W = np.int64(k[p, y, x - 1]) if x > 0 else N
                    NW = np.int64(k[p, y - 1, x - 1]) if x > 0 else N
                    NE = np.int64(k[p, y - 1, x + 1]) if x + 1 < C else N
                    NN = np.int64(k[p, y - 2, x]) if y > 1 else N
                posN = x
                posNE = x + 1 if x < C - 1 else x
                posNW = x - 1 if x > 0 else x
                w = np.empty(4, np.int64)
                for i in range(4):
                    e = perr[i, prv, posN] + perr[i, prv, posNE] + perr[i, prv, posNW]
                    w[i] = _err_weight(e, maxw[i], div)
                N8, W8, NE8, NW8, NN8 = N << EB, W << EB, NE << EB, NW << EB, NN << EB
                teW = terr[cur, x - 1] if x > 0 else 0
                teN = terr[prv, posN]
                teNW = terr[prv, posNW]
                teNE = terr[prv, posNE]
                sumWN = teN + teW
                preds[0] = W8 + NE8 - N8
                preds[1] = N8 - (((sumWN + teNE) * 16) >> 5)
                preds[2] = W8 - (((sumWN + teNW) * 10) >> 5)
                preds[3] = N8 - ((teNW * 7 + teN * 7 + teNE * 7) >> 5)
                ws = w.sum()
                lw = 0
                while (ws >> (lw + 1)) != 0:
                    lw += 1
                ws = 0
                for i in range(4):
                    w[i] >>= lw - 4
                    ws += w[i]
                s = (ws >> 1) - 1
                for i in range(4):
                    s += preds[i] * w[i]
                pred = (s * div[ws - 1]) >> 24
                if not (((teN ^ teW) | (teN ^ teNW)) > 0):
                    mx = max(W8, max(NE8, N8))
                    mn = min(W8, min(NE8, N8))
                    pred = max(mn, min(mx, pred))
                out[p, y, x] = pred << (F - EB) if F >= EB else pred >> (EB - F)
                # update
                val = np.int64(k[p, y, x]) << EB
                terr[cur, x] = pred - val
                for i in range(4):
                    err = (abs(preds[i] - val) + rnd) >> EB
                    perr[i, cur, x] = err
                    perr[i, prv, x + 1] += err
    return out


@numba.njit(cache=True)
def mix(k, pa, pb):
    """Two predictions averaged with weights 1/(1 + recent |error|) (W, N, NW, NE errors)."""
    P, R, C = k.shape
    out = np.empty(k.shape, np.int64)
    ea = np.zeros(k.shape, np.int64)
    eb = np.zeros(k.shape, np.int64)
    for p in range(P):
        for y in range(R):
            for x in range(C):
                sa = np.int64(0)
                sb = np.int64(0)
                if x > 0:
                    sa += 2 * ea[p, y, x - 1]
                    sb += 2 * eb[p, y, x - 1]
                if y > 0:
                    sa += 2 * ea[p, y - 1, x]
                    sb += 2 * eb[p, y - 1, x]
                    if x > 0:
                        sa += ea[p, y - 1, x - 1]
                        sb += eb[p, y - 1, x - 1]
                    if x + 1 < C:
                        sa += ea[p, y - 1, x + 1]
                        sb += eb[p, y - 1, x + 1]
                wa = (np.int64(1) << 20) // (sa + 8)
                wb = (np.int64(1) << 20) // (sb + 8)
                out[p, y, x] = (pa[p, y, x] * wa + pb[p, y, x] * wb) // (wa + wb)
                v = np.int64(k[p, y, x]) << F
                ea[p, y, x] = abs(v - pa[p, y, x])
                eb[p, y, x] = abs(v - pb[p, y, x])
    return out


WIDE2D = tuple((0, dy, dx) for dy in (-3, -2, -1) for dx in (-3, -2, -1, 0, 1, 2, 3)
               if not (dy == -3 and abs(dx) == 3)) + ((0, 0, -1), (0, 0, -2), (0, 0, -3))


def ls_wide(k3, lo, hi):
    where = _positions(k3.shape, 1, False, 1 << 14, margin=3)
    vals = _gather(k3, where, WIDE2D)
    taps = _fit(vals, k3[where].astype(np.float64), WIDE2D)
    return taps


def price(k3, predf, label, n, extra=0):
    sym, pr = oriented(k3, predf)
    lv = qbin(pr.astype(np.float64), 16)
    t, nb = tokens(sym, 4, 1, 0)
    st = (static_bits(lv, t, nb, int(lv.max()) + 1) + 8 * extra) / n
    ad = (adaptive_bits(lv, t, nb, int(lv.max()) + 1, ntokens(t), 32, 1 << 16) + 8 * extra) / n
    t0 = np.zeros_like(lv)
    st0 = static_bits(t0, t, nb, 1) / n
    print(f"  {label:22s} order-0 {st0:7.4f}  level16 static {st:7.4f}  adaptive {ad:7.4f}")
    return lv


def run(name, k3, nz, lo, hi, mode):
    n = k3.size
    intra, inter = predictor_for(k3, nz, lo, hi, "max", "qp")
    ia, ea = intra.as_arrays(), inter.as_arrays()
    sym = predict_encode(k3, nz, ia, ea, lo, hi, orient=True, parallel=False)
    base = len(encode_max(sym, k3.shape[2], parallel=False))
    print(f"\n## {name} {mode} {k3.shape}: max payload today {8 * base / n:.4f} b/px")
    pb = taps_predict(k3, nz, *ia, *ea, lo, hi)
    lv = price(k3, pb, "bigcomp", n)
    price(k3, bias_correct(k3, pb, lv, int(lv.max()) + 1), "bigcomp +bias", n)
    if nz == 1 or k3.shape[0] == 1:
        wp = wp_predict(k3, _DIV)
        price(k3, wp, "wp (JPEG XL)", n)
        price(k3, mix(k3, pb, wp), "mix bigcomp+wp", n)
        mx = mix(k3, pb, wp)
        price(k3, bias_correct(k3, mx, lv, int(lv.max()) + 1), "mix +bias", n)
        wide = ls_wide(k3, lo, hi)
        if wide is not None:
            a = wide.as_arrays()
            pw = taps_predict(k3, 1, *a, *a, lo, hi)
            price(k3, pw, "ls-wide 2-D (24 taps)", n, extra=8 * (24 - len(intra.coefs)))


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--sets", default="synthetic,storm,ccd,membrane,brain")
    ap.add_argument("--modes", default="q1-2d,lossless-2d,lossless")
    ap.add_argument("--planes", type=int, default=8)
    args = ap.parse_args(argv)
    for s in args.sets.split(","):
        ds = LOADERS[s](os.path.normpath(args.data))
        a = ds.data
        shape3, nz = _as_3d(a.shape)
        a3 = a.reshape(shape3)[: args.planes]
        t = quantisation_tables(ds.camera, 1.0, a.dtype.name)
        for mode in args.modes.split(","):
            if mode == "q1-2d":
                run(ds.name, t.bin[a3[:1]].astype(np.uint16), 1, 0, t.nbins - 1, mode)
            elif mode == "lossless-2d":
                run(ds.name, np.ascontiguousarray(a3[:1]), 1, 0, 65535, mode)
            elif mode == "q1":
                run(ds.name, t.bin[a3].astype(np.uint16), nz, 0, t.nbins - 1, mode)
            else:
                run(ds.name, np.ascontiguousarray(a3), nz, 0, 65535, mode)


if __name__ == "__main__":
    main()
