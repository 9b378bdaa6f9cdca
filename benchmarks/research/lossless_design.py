"""Research (issue 21): the design choices of a level-context ``max`` model, priced.

Builds on ``lossless_models.py`` (level of the prediction = best single context) and
``lossless_predictors.py`` (bias correction = best predictor change). Here, on bigcomp's own
predictor, the choices a decoder cares about:

- where the level comes from: the full prediction (``pred``; the decoder must then fuse the
  entropy decoding into the west-neighbour chain) or the taps *off* the current row, scaled
  by their coefficient sum (``offrow``; computed for a whole row before its symbols are
  decoded, so entropy decoding and prediction stay two loops per row);
- how many level bins, times how many bins of today's neighbour-token activity;
- bias: none, static per context (mean residual in 1/16, stored: 2 bytes a context),
  adaptive (JPEG-LS running mean);
- static tables merged greedily along the level axis (today's cost rule), or adaptive.

Prints bits per pixel (payload estimate incl. tables). Usage as the other scripts.
"""

from __future__ import annotations

import argparse
import os
import sys

import numba
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
sys.path.insert(0, HERE)

from lossless_models import LOADERS, _counts, adaptive_bits, ntokens, tokens  # noqa
from lossless_predictors import F, oriented, taps_predict  # noqa

from bigcomp.chunk import _as_3d, predictor_for  # noqa: E402
from bigcomp.kernels._coders import encode_max  # noqa: E402
from bigcomp.kernels._predict import predict_encode  # noqa: E402
from bigcomp.noise import quantisation_tables  # noqa: E402


@numba.njit(cache=True)
def offrow_level(k, nz, ti, ci, te, ce):
    """Sum of the taps not on the current row divided by their coefficient sum (the level
    the rows above / previous plane say); west neighbour where no such tap fits."""
    P, R, C = k.shape
    out = np.empty(k.shape, np.int64)
    for p in range(P):
        inter = p % nz != 0
        taps, coefs = (te, ce) if inter else (ti, ci)
        csum = np.int64(0)
        for t in range(taps.shape[0]):
            if not (taps[t, 0] == 0 and taps[t, 1] == 0):
                csum += coefs[t]
        for y in range(R):
            for x in range(C):
                s = np.int64(0)
                ok = csum > 0
                for t in range(taps.shape[0]):
                    if taps[t, 0] == 0 and taps[t, 1] == 0:
                        continue
                    yy = y + taps[t, 1]
                    xx = x + taps[t, 2]
                    if yy < 0 or yy >= R or xx < 0 or xx >= C:
                        ok = False
                        break
                    s += coefs[t] * np.int64(k[p + taps[t, 0], yy, xx])
                if ok:
                    out[p, y, x] = s // csum
                elif y > 0:
                    out[p, y, x] = k[p, y - 1, x]
                elif x > 0:
                    out[p, y, x] = k[p, y, x - 1]
                else:
                    out[p, y, x] = 0
    return out


def level_bins(level: np.ndarray, nbins: int) -> np.ndarray:
    v = level.reshape(-1)
    qs = np.unique(np.quantile(v, np.linspace(0, 1, nbins + 1)[1:-1]).astype(np.int64))
    return np.searchsorted(qs, v, side="right").astype(np.int64), qs


@numba.njit(cache=True)
def tok_activity(tok, shape, thresholds):
    """Today's neighbour-token sum (W, N, NW, NE), binned by ``thresholds``."""
    P, R, C = shape
    t = tok.reshape(shape)
    out = np.empty(shape, np.int64)
    for p in range(P):
        for y in range(R):
            for x in range(C):
                if y == 0:
                    s = 4 * t[p, y, x - 1] if x > 0 else 0
                else:
                    tn = t[p, y - 1, x]
                    tw = t[p, y, x - 1] if x > 0 else tn
                    tnw = t[p, y - 1, x - 1] if x > 0 else tn
                    tne = t[p, y - 1, x + 1] if x + 1 < C else tn
                    s = tw + tn + tnw + tne
                b = 0
                for j in range(thresholds.size):
                    b += s >= thresholds[j]
                out[p, y, x] = b
    return out


def merged_static_bits(lv, act, tok, nb, nlv, nact):
    """Static cost with level bins merged greedily within each activity bin (today's cost
    rule: 8 * (9 + 2 (m - 1)) bits a table), plus extra bits."""
    ntok = ntokens(tok)
    h = _counts(lv * nact + act, tok, nlv * nact, ntok).astype(np.float64)
    mask_bytes = -(-ntok // 8)

    def cost(c):
        nz = c[c > 0]
        if nz.size == 0:
            return 0.0
        return 8 * (mask_bytes + 2 * (nz.size - 1)) + float((nz * np.log2(c.sum() / nz)).sum())

    total = 0.0
    for a in range(nact):
        hs = [h[l * nact + a] for l in range(nlv)]
        hs = [x for x in hs if x.sum() > 0]
        costs = [cost(x) for x in hs]
        while len(hs) > 1:
            d = [cost(hs[j] + hs[j + 1]) - costs[j] - costs[j + 1] for j in range(len(hs) - 1)]
            j = int(np.argmin(d))
            if d[j] >= 0:
                break
            hs[j : j + 2] = [hs[j] + hs[j + 1]]
            costs[j : j + 2] = [cost(hs[j])]
        total += sum(costs)
    return total + float(nb.sum())


@numba.njit(cache=True)
def static_bias(k, predf, ctx, nctx):
    """Per-context mean residual (1/2**F units, clamped to +-8 values) added to ``predf``."""
    s = np.zeros(nctx, np.int64)
    n = np.zeros(nctx, np.int64)
    kf = k.reshape(-1)
    pf = predf.reshape(-1)
    for i in range(kf.size):
        s[ctx[i]] += (np.int64(kf[i]) << F) - pf[i]
        n[ctx[i]] += 1
    b = np.zeros(nctx, np.int64)
    for c in range(nctx):
        if n[c]:
            b[c] = min(max(s[c] // n[c], -(8 << F)), 8 << F)
    out = np.empty(kf.size, np.int64)
    for i in range(kf.size):
        out[i] = pf[i] + b[ctx[i]]
    return out.reshape(predf.shape)


@numba.njit(cache=True)
def static_bias_median(k, predf, ctx, nctx):
    """Per-context median-ish residual (1/2**F units) via a histogram of clamped residuals."""
    span = 16 << F
    hist = np.zeros((nctx, 2 * span + 1), np.int64)
    kf = k.reshape(-1)
    pf = predf.reshape(-1)
    for i in range(kf.size):
        r = (np.int64(kf[i]) << F) - pf[i]
        r = min(max(r, -span), span)
        hist[ctx[i], r + span] += 1
    b = np.zeros(nctx, np.int64)
    for c in range(nctx):
        tot = hist[c].sum()
        acc = 0
        for j in range(2 * span + 1):
            acc += hist[c, j]
            if 2 * acc >= tot:
                b[c] = j - span
                break
    out = np.empty(kf.size, np.int64)
    for i in range(kf.size):
        out[i] = pf[i] + b[ctx[i]]
    return out.reshape(predf.shape)


def price(k3, predf, lv, nlv, act_thr, extra_bytes=0):
    sym, _ = oriented(k3, predf)
    tok, nb = tokens(sym, 4, 1, 0)
    nact = act_thr.size + 1
    act = tok_activity(tok, k3.shape, act_thr).reshape(-1) if nact > 1 else np.zeros_like(lv)
    st = merged_static_bits(lv, act, tok, nb, nlv, nact) + 8 * extra_bytes
    ad = adaptive_bits(lv * nact + act, tok, nb, nlv * nact, ntokens(tok), 32, 1 << 16)
    return st / k3.size, ad / k3.size


def run(name, k3, nz, lo, hi, mode, nbins_list, acts):
    n = k3.size
    intra, inter = predictor_for(k3, nz, lo, hi, "max", "qp")
    ia, ea = intra.as_arrays(), inter.as_arrays()
    sym = predict_encode(k3, nz, ia, ea, lo, hi, orient=True, parallel=False)
    base = len(encode_max(sym, k3.shape[2], parallel=False))
    print(f"\n## {name} {mode} {k3.shape}: max payload today {8 * base / n:.4f} b/px")
    predf = taps_predict(k3, nz, *ia, *ea, lo, hi)
    src = {"pred": (predf + (1 << (F - 1))) >> F,
           "offrow": offrow_level(k3, nz, ia[0], ia[1], ea[0], ea[1])}
    for sname, level in src.items():
        for nbins in nbins_list:
            lv, qs = level_bins(level, nbins)
            nlv = int(lv.max()) + 1
            for an, thr in acts.items():
                cells = []
                for bias in ("none", "mean", "median"):
                    if bias == "none":
                        pf = predf
                        extra = 2 * qs.size
                    elif bias == "mean":
                        pf = static_bias(k3, predf, lv, nlv)
                        extra = 2 * qs.size + 2 * nlv
                    else:
                        pf = static_bias_median(k3, predf, lv, nlv)
                        extra = 2 * qs.size + 2 * nlv
                    cells += list(price(k3, pf, lv, nlv, thr, extra))
                print(f"  {sname:6s} L{nbins:<3d} {an:8s} " + "  ".join(
                    f"{b}: {s:.4f}/{a:.4f}" for b, s, a in
                    zip(("none", "mean", "median"), cells[0::2], cells[1::2])))


ACTS = {"act1": np.array([], np.int64), "act2": np.array([3], np.int64),
        "act3": np.array([2, 6], np.int64), "act4q": np.array([2, 5, 12], np.int64)}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--sets", default="synthetic,storm,ccd,membrane,brain")
    ap.add_argument("--modes", default="q1-2d,lossless")
    ap.add_argument("--planes", type=int, default=8)
    ap.add_argument("--bins", default="8,16,32")
    ap.add_argument("--acts", default="act1,act3")
    args = ap.parse_args(argv)
    bins = [int(b) for b in args.bins.split(",")]
    acts = {a: ACTS[a] for a in args.acts.split(",")}
    for s in args.sets.split(","):
        ds = LOADERS[s](os.path.normpath(args.data))
        a = ds.data
        shape3, nz = _as_3d(a.shape)
        a3 = a.reshape(shape3)[: args.planes]
        t = quantisation_tables(ds.camera, 1.0, a.dtype.name)
        for mode in args.modes.split(","):
            if mode == "q1-2d":
                run(ds.name, t.bin[a3[:1]].astype(np.uint16), 1, 0, t.nbins - 1, mode, bins, acts)
            elif mode == "q1":
                run(ds.name, t.bin[a3].astype(np.uint16), nz, 0, t.nbins - 1, mode, bins, acts)
            elif mode == "lossless-2d":
                run(ds.name, np.ascontiguousarray(a3[:1]), 1, 0, 65535, mode, bins, acts)
            else:
                run(ds.name, np.ascontiguousarray(a3), nz, 0, 65535, mode, bins, acts)


if __name__ == "__main__":
    main()


# ------------------------------------------------------------------ 2-D q=1 extras
@numba.njit(cache=True)
def grad_feature(k):
    """|N-NW| + |W-NW| + |NE-N| per pixel (JPEG-LS's local gradients; edges replicated)."""
    P, R, C = k.shape
    out = np.zeros(k.shape, np.int64)
    for p in range(P):
        for y in range(1, R):
            for x in range(1, C - 1):
                N = np.int64(k[p, y - 1, x])
                out[p, y, x] = (abs(N - k[p, y - 1, x - 1]) + abs(k[p, y, x - 1] - k[p, y - 1, x - 1])
                                + abs(k[p, y - 1, x + 1] - N))
    return out


def class_ls(k3, lo, hi, cls, ncls):
    """One 12-tap LS predictor per class (fitted on that class's pixels), F-bit prediction."""
    from bigcomp.predictors import LS_INTRA, _fit
    out = np.zeros(k3.shape, np.int64)
    flat_cls = cls.reshape(k3.shape)
    R, C = k3.shape[1:]
    ys, xs = np.mgrid[3:R - 3, 3:C - 3]
    total = 0
    for c in range(ncls):
        sel = flat_cls[0, 3:R - 3, 3:C - 3] == c
        yy, xx = ys[sel], xs[sel]
        if yy.size > 20000:
            pick = np.random.default_rng(0).choice(yy.size, 20000, replace=False)
            yy, xx = yy[pick], xx[pick]
        vals = np.stack([k3[0, yy + dy, xx + dx] for _, dy, dx in LS_INTRA], 1).astype(float)
        taps = _fit(vals, k3[0, yy, xx].astype(float), LS_INTRA)
        a = taps.as_arrays()
        pc = taps_predict(k3, 1, *a, *a, lo, hi)
        m = flat_cls == c
        out[m] = pc[m]
        total += 1
    return out


def extras(name, k3, lo, hi):
    n = k3.size
    intra, inter = predictor_for(k3, 1, lo, hi, "max", "qp")
    ia, ea = intra.as_arrays(), inter.as_arrays()
    predf = taps_predict(k3, 1, *ia, *ea, lo, hi)
    level = (predf + (1 << (F - 1))) >> F
    lv, qs = level_bins(level, 16)
    nlv = int(lv.max()) + 1
    g = grad_feature(k3).reshape(-1)
    print(f"\n## {name} q1-2d extras")
    for ng in (1, 2, 3, 4):
        gb = level_bins(g, ng)[0] if ng > 1 else np.zeros_like(lv)
        ngb = int(gb.max()) + 1
        ctx = lv * ngb + gb
        for bias_ctx, bname in ((lv, "bias/level"), (ctx, "bias/level x grad")):
            pf = static_bias(k3, predf, bias_ctx, int(bias_ctx.max()) + 1)
            sym, _ = oriented(k3, pf)
            tok, nb = tokens(sym, 4, 1, 0)
            st = merged_static_bits(lv, gb, tok, nb, nlv, ngb) + 8 * 2 * (qs.size + bias_ctx.max() + 1)
            ad = adaptive_bits(ctx, tok, nb, nlv * ngb, ntokens(tok), 32, 1 << 16)
            print(f"  level16 x grad{ng} {bname:18s} static {st / n:.4f} adaptive {ad / n:.4f}")
    # class-wise least squares (classes: level bins of the (W+N)/2 average)
    for ncls in (2, 4):
        b3 = np.zeros(k3.shape, np.int64)
        b3[:, 1:, 1:] = (k3[:, 1:, :-1].astype(np.int64) + k3[:, :-1, 1:]) // 2
        cls = level_bins(b3, ncls)[0]
        pf0 = class_ls(k3, lo, hi, cls, ncls)
        lvc, qsc = level_bins((pf0 + (1 << (F - 1))) >> F, 16)
        pf = static_bias(k3, pf0, lvc, int(lvc.max()) + 1)
        sym, _ = oriented(k3, pf)
        tok, nb = tokens(sym, 4, 1, 0)
        nl = int(lvc.max()) + 1
        st = merged_static_bits(lvc, np.zeros_like(lvc), tok, nb, nl, 1) + 8 * (
            2 * (qsc.size + nl) + 96 * (ncls - 1))
        ad = adaptive_bits(lvc, tok, nb, nl, ntokens(tok), 32, 1 << 16)
        print(f"  class LS x{ncls} + level16 + bias     static {st / n:.4f} adaptive {ad / n:.4f}")


def main_extras(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--sets", default="synthetic,membrane,storm")
    args = ap.parse_args(argv)
    for s in args.sets.split(","):
        ds = LOADERS[s](os.path.normpath(args.data))
        a = ds.data
        shape3, _ = _as_3d(a.shape)
        t = quantisation_tables(ds.camera, 1.0, a.dtype.name)
        extras(ds.name, t.bin[a.reshape(shape3)[:1]].astype(np.uint16), 0, t.nbins - 1)


# --------------------------------------------------- decoupled level sources (decode speed)
def decoupled(name, k3, nz, lo, hi, mode):
    """Levels known before a row is decoded (entropy decoding then needs no value chain):
    offrow sum, the value above, the prediction of the pixel above; bias by the full
    prediction's level (hybrid) or by the same decoupled level."""
    n = k3.size
    intra, inter = predictor_for(k3, nz, lo, hi, "max", "qp")
    ia, ea = intra.as_arrays(), inter.as_arrays()
    predf = taps_predict(k3, nz, *ia, *ea, lo, hi)
    pred = (predf + (1 << (F - 1))) >> F
    up_value = np.empty_like(pred)
    up_value[:, 1:] = k3[:, :-1]
    up_value[:, 0] = pred[:, 0]
    up_pred = np.empty_like(pred)
    up_pred[:, 1:] = pred[:, :-1]
    up_pred[:, 0] = pred[:, 0]
    sources = {"pred (fused)": pred, "offrow": offrow_level(k3, nz, ia[0], ia[1], ea[0], ea[1]),
               "value above": up_value, "pred above": up_pred}
    lvp, _ = level_bins(pred, 16)
    print(f"\n## {name} {mode} decoupled levels")
    for sname, level in sources.items():
        lv, qs = level_bins(level, 16)
        nlv = int(lv.max()) + 1
        for bname, bctx in (("bias same", lv), ("bias by pred", lvp)):
            pf = static_bias(k3, predf, bctx, int(bctx.max()) + 1)
            st, ad = price(k3, pf, lv, nlv, np.array([], np.int64), 4 * qs.size)
            print(f"  {sname:14s} {bname:13s} static {st:.4f} adaptive {ad:.4f}")


def main_decoupled(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--sets", default="synthetic,membrane,storm,ccd")
    ap.add_argument("--modes", default="lossless,q1-2d")
    args = ap.parse_args(argv)
    for s in args.sets.split(","):
        ds = LOADERS[s](os.path.normpath(args.data))
        a = ds.data
        shape3, nz = _as_3d(a.shape)
        a3 = a.reshape(shape3)[:8]
        t = quantisation_tables(ds.camera, 1.0, a.dtype.name)
        for mode in args.modes.split(","):
            if mode == "q1-2d":
                decoupled(ds.name, t.bin[a3[:1]].astype(np.uint16), 1, 0, t.nbins - 1, mode)
            else:
                decoupled(ds.name, np.ascontiguousarray(a3), nz, 0, 65535, mode)


def _w_to_ww(arrs):
    """The predictor with its west tap's weight moved onto the west-west pixel (a level known
    one pixel before the west neighbour is decoded)."""
    taps, coefs, shift = arrs
    taps = taps.copy()
    coefs = coefs.copy()
    has_ww = [i for i in range(len(taps)) if tuple(taps[i]) == (0, 0, -2)]
    for i in range(len(taps)):
        if tuple(taps[i]) == (0, 0, -1):
            if has_ww:
                coefs[has_ww[0]] += coefs[i]
                coefs[i] = 0
            else:
                taps[i] = (0, 0, -2)
    return taps, coefs, shift


def early(name, k3, nz, lo, hi, mode):
    n = k3.size
    intra, inter = predictor_for(k3, nz, lo, hi, "max", "qp")
    ia, ea = intra.as_arrays(), inter.as_arrays()
    predf = taps_predict(k3, nz, *ia, *ea, lo, hi)
    pred = (predf + (1 << (F - 1))) >> F
    alt = taps_predict(k3, nz, *_w_to_ww(ia), *_w_to_ww(ea), lo, hi)
    altp = (alt + (1 << (F - 1))) >> F
    print(f"\n## {name} {mode} early levels")
    for sname, level in (("pred (fused)", pred), ("pred, W := WW", altp)):
        lv, qs = level_bins(level, 16)
        nlv = int(lv.max()) + 1
        pf = static_bias(k3, predf, lv, nlv)
        st, ad = price(k3, pf, lv, nlv, np.array([], np.int64), 4 * qs.size)
        print(f"  {sname:16s} static {st:.4f} adaptive {ad:.4f}")


def main_early(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--sets", default="synthetic,membrane,storm,ccd,brain")
    ap.add_argument("--modes", default="lossless,q1-2d,q1")
    args = ap.parse_args(argv)
    for s in args.sets.split(","):
        ds = LOADERS[s](os.path.normpath(args.data))
        a = ds.data
        shape3, nz = _as_3d(a.shape)
        a3 = a.reshape(shape3)[:8]
        t = quantisation_tables(ds.camera, 1.0, a.dtype.name)
        for mode in args.modes.split(","):
            if mode == "q1-2d":
                early(ds.name, t.bin[a3[:1]].astype(np.uint16), 1, 0, t.nbins - 1, mode)
            elif mode == "q1":
                early(ds.name, t.bin[a3].astype(np.uint16), nz, 0, t.nbins - 1, mode)
            else:
                early(ds.name, np.ascontiguousarray(a3), nz, 0, 65535, mode)


# ------------------------------------------------ richer bias contexts (2-D q=1 gap)
@numba.njit(cache=True)
def sign_features(k, predf):
    """Per pixel: sign of the west residual, of the north residual (unbiased prediction), of
    N - NW and of W - NW (each -1, 0, 1 -> 0, 1, 2)."""
    P, R, C = k.shape
    out = np.ones((4, P, R, C), np.int64)
    for p in range(P):
        for y in range(R):
            for x in range(C):
                if x > 0:
                    rw = (np.int64(k[p, y, x - 1]) << F) - predf[p, y, x - 1]
                    out[0, p, y, x] = 1 + (rw > 8) - (rw < -8)
                if y > 0:
                    rn = (np.int64(k[p, y - 1, x]) << F) - predf[p, y - 1, x]
                    out[1, p, y, x] = 1 + (rn > 8) - (rn < -8)
                if x > 0 and y > 0:
                    d = np.int64(k[p, y - 1, x]) - k[p, y - 1, x - 1]
                    out[2, p, y, x] = 1 + (d > 0) - (d < 0)
                    d = np.int64(k[p, y, x - 1]) - k[p, y - 1, x - 1]
                    out[3, p, y, x] = 1 + (d > 0) - (d < 0)
    return out


def bias_contexts(name, k3, lo, hi):
    intra, inter = predictor_for(k3, 1, lo, hi, "max", "qp")
    ia, ea = intra.as_arrays(), inter.as_arrays()
    predf = taps_predict(k3, 1, *ia, *ea, lo, hi)
    pred = (predf + (1 << (F - 1))) >> F
    lv, qs = level_bins(pred, 16)
    nlv = int(lv.max()) + 1
    sf = sign_features(k3, predf).reshape(4, -1)
    print(f"\n## {name} q1-2d bias contexts (level ctx for coding)")
    for bname, bctx in (("level", lv), ("level x sgn rW", lv * 3 + sf[0]),
                        ("level x sgn rN", lv * 3 + sf[1]),
                        ("level x sgn rW x sgn rN", lv * 9 + sf[0] * 3 + sf[1]),
                        ("level x sgn(N-NW) x sgn(W-NW)", lv * 9 + sf[2] * 3 + sf[3])):
        nb = int(bctx.max()) + 1
        pf = static_bias(k3, predf, bctx, nb)
        st, ad = price(k3, pf, lv, nlv, np.array([], np.int64), 2 * qs.size + nb)
        print(f"  bias by {bname:32s} static {st:.4f} adaptive {ad:.4f}")


def main_bias(argv=None):
    for s in (argv or ["synthetic", "membrane", "storm"]):
        ds = LOADERS[s](os.path.normpath(os.path.join(ROOT, "..", "shared", "data")))
        a = ds.data
        shape3, _ = _as_3d(a.shape)
        t = quantisation_tables(ds.camera, 1.0, a.dtype.name)
        bias_contexts(ds.name, t.bin[a.reshape(shape3)[:1]].astype(np.uint16), 0, t.nbins - 1)
