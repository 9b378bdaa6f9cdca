"""Research: a JPEG XL-style meta-adaptive (MA) context tree for the ``max`` coder's 2-D q=1 planes.

Question: how much would a decision tree over causal properties (choosing the rANS context and
optionally a per-leaf bias and/or a per-leaf predictor), learned by the encoder on the plane it
codes and stored with it, take off the payload of today's level model (16 quantile levels of the
LS prediction at 1/4-value resolution + a static bias per level)?

Everything here is an *estimate*: ideal static code lengths per table (sum c log2(n/c)) + raw
extra bits + table bytes (9 + 2 (m - 1) a table, as bigcomp stores them) + the tree's own bytes
(4 bytes an internal node, 1 byte a leaf for its table index, +1 for a bias, +1 for a predictor
id). Leaves' histograms are clustered greedily (any pair) after learning. Numbers are divided by
JPEG XL lossless effort 9's bytes on the same symbols (imagecodecs, numthreads=1).

Learner: greedy recursive splits on per-plane quantile bins (<= 64) of each property; a split is
kept if it lowers (ideal bits + alpha * table bits of each side) by more than a split's 32 bits;
several alphas are tried and the encoder keeps the cheapest final result (legitimate encoder
search; every candidate's cost includes its tree). With per-leaf predictors a side's cost is the
minimum over the candidate predictors. With per-leaf bias the tree is re-learned on tokens
computed with the previous tree's leaf biases (2 rounds).

Usage: python benchmarks/research/lossless_tree.py membrane synthetic [storm ccd brain]
       (NP=3 planes each by default)
"""

from __future__ import annotations

import math
import os
import sys
import time

import numba
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from lossless_design import level_bins, merged_static_bits, static_bias
from lossless_models import LOADERS, tokens
from lossless_predictors import _DIV, F, ls_wide, oriented, taps_predict, wp_predict

from bigcomp.chunk import predictor_for
from bigcomp.noise import quantisation_tables

DATA = os.path.normpath(os.path.join(HERE, "..", "..", "..", "shared", "data"))

PROPS = ["lvl", "W", "N", "NW", "NE", "N-NW", "W-NW", "N-NE", "W-WW", "N-NN", "W+N-NW",
         "grad", "act", "eW", "eN", "x", "y", "lvl-W", "eNW+eNE", "maxe"]
PREDS = ["LS", "W", "N", "(W+N)/2", "grad", "LS22", "WP"]


# ------------------------------------------------------------------------------ properties
@numba.njit(cache=True)
def properties(k, predf):
    """Causal properties per pixel of plane ``k`` (2-D), JPEG XL edge rules (missing -> W or N)."""
    R, C = k.shape
    NPR = 20
    e = np.empty((R, C), np.int64)
    for y in range(R):
        for x in range(C):
            e[y, x] = (np.int64(k[y, x]) << F) - predf[y, x]
    out = np.zeros((NPR, R * C), np.int64)
    for y in range(R):
        for x in range(C):
            i = y * C + x
            if y == 0:
                W = np.int64(k[y, x - 1]) if x > 0 else 0
                N = W
                NW = W
                NE = W
                NN = W
            else:
                N = np.int64(k[y - 1, x])
                W = np.int64(k[y, x - 1]) if x > 0 else N
                NW = np.int64(k[y - 1, x - 1]) if x > 0 else N
                NE = np.int64(k[y - 1, x + 1]) if x + 1 < C else N
                NN = np.int64(k[y - 2, x]) if y > 1 else N
            WW = np.int64(k[y, x - 2]) if x > 1 else W
            eW = e[y, x - 1] if x > 0 else 0
            eN = e[y - 1, x] if y > 0 else 0
            eNW = e[y - 1, x - 1] if (y > 0 and x > 0) else 0
            eNE = e[y - 1, x + 1] if (y > 0 and x + 1 < C) else 0
            lv = predf[y, x] >> 2
            out[0, i] = lv
            out[1, i] = W
            out[2, i] = N
            out[3, i] = NW
            out[4, i] = NE
            out[5, i] = N - NW
            out[6, i] = W - NW
            out[7, i] = N - NE
            out[8, i] = W - WW
            out[9, i] = N - NN
            out[10, i] = W + N - NW
            out[11, i] = abs(N - NW) + abs(W - NW) + abs(NE - N)
            out[12, i] = 2 * abs(eW) + 2 * abs(eN) + abs(eNW) + abs(eNE)
            out[13, i] = eW
            out[14, i] = eN
            out[15, i] = x
            out[16, i] = y
            out[17, i] = lv - (W << 2)
            out[18, i] = eNW + eNE
            out[19, i] = max(max(abs(eW), abs(eN)), max(abs(eNW), abs(eNE)))
    return out


def bin_props(props, nb=64):
    """Per-property quantile bins (<= nb) and their thresholds (value <= thr[b] -> bin <= b)."""
    out = np.empty(props.shape, np.int64)
    for p in range(props.shape[0]):
        v = props[p]
        u = np.unique(v)
        if u.size <= nb:
            qs = u[:-1]
        else:
            qs = np.unique(np.quantile(v, np.linspace(0, 1, nb + 1)[1:-1], method="lower").astype(np.int64))
        out[p] = np.searchsorted(qs, v, side="left")  # bin b <=> qs[b-1] < v <= qs[b]
    return out


@numba.njit(cache=True)
def simple_preds(k):
    """W, N, (W+N)/2, clamped gradient; 1/16 units, JPEG XL edge rules."""
    R, C = k.shape
    out = np.empty((4, R, C), np.int64)
    for y in range(R):
        for x in range(C):
            if y == 0:
                W = np.int64(k[y, x - 1]) if x > 0 else 0
                N = W
                NW = W
            else:
                N = np.int64(k[y - 1, x])
                W = np.int64(k[y, x - 1]) if x > 0 else N
                NW = np.int64(k[y - 1, x - 1]) if x > 0 else N
            g = W + N - NW
            g = min(max(g, min(W, N)), max(W, N))
            out[0, y, x] = W << F
            out[1, y, x] = N << F
            out[2, y, x] = (W + N) << (F - 1)
            out[3, y, x] = g << F
    return out


# ------------------------------------------------------------------------------ learner
@numba.njit(cache=True)
def _side_cost(h, K, T, n, xl, tabw):
    """min over predictors of (ideal bits + tabw * table bits); returns (bits, predictor)."""
    best = 1e300
    bj = 0
    for j in range(K):
        s = 0.0
        m = 0
        for t in range(T):
            c = h[j, t]
            if c:
                s += xl[c]
                m += 1
        c = xl[n] - s + tabw * 8.0 * (9 + 2 * (m - 1))
        if c < best:
            best = c
            bj = j
    return best, bj


@numba.njit(cache=True)
def learn(pbin, NB, toks, T, alpha, split_bits, max_depth, min_leaf, allowed):
    """Greedy MA tree. Returns node arrays (prop, bin threshold, left, right, leaf id, depth),
    per-pixel leaf, per-leaf predictor, per-property gain (bits)."""
    NP, N = pbin.shape
    K = toks.shape[0]
    xl = np.zeros(N + 1)
    for c in range(1, N + 1):
        xl[c] = c * math.log2(c)
    MAXN = 1 << 15
    prop = np.full(MAXN, -1, np.int64)
    thr = np.zeros(MAXN, np.int64)
    lft = np.zeros(MAXN, np.int64)
    rgt = np.zeros(MAXN, np.int64)
    lid = np.full(MAXN, -1, np.int64)
    dep = np.zeros(MAXN, np.int64)
    perm = np.arange(N)
    leaf = np.zeros(N, np.int64)
    lpred = np.zeros(MAXN, np.int64)
    pgain = np.zeros(NP)
    st_node = np.zeros(MAXN, np.int64)
    st_a = np.zeros(MAXN, np.int64)
    st_b = np.zeros(MAXN, np.int64)
    sp = 1
    st_node[0] = 0
    st_a[0] = 0
    st_b[0] = N
    nn = 1
    nleaf = 0
    cnt = np.zeros((NB, K, T), np.int64)
    tot = np.zeros((K, T), np.int64)
    lh = np.zeros((K, T), np.int64)
    rh = np.zeros((K, T), np.int64)
    while sp > 0:
        sp -= 1
        node = st_node[sp]
        a = st_a[sp]
        b = st_b[sp]
        n = b - a
        tot[:] = 0
        for i in range(a, b):
            q = perm[i]
            for j in range(K):
                tot[j, toks[j, q]] += 1
        c0, j0 = _side_cost(tot, K, T, n, xl, alpha)
        best = 0.0
        bp = -1
        bt = -1
        if dep[node] < max_depth and n >= 2 * min_leaf and nn + 2 < MAXN:
            for p in range(NP):
                if not allowed[p]:
                    continue
                cnt[:] = 0
                for i in range(a, b):
                    q = perm[i]
                    bb = pbin[p, q]
                    for j in range(K):
                        cnt[bb, j, toks[j, q]] += 1
                lh[:] = 0
                nl = 0
                for t in range(NB - 1):
                    for j in range(K):
                        for s in range(T):
                            lh[j, s] += cnt[t, j, s]
                    for s in range(T):
                        nl += cnt[t, 0, s]
                    if nl < min_leaf:
                        continue
                    if n - nl < min_leaf:
                        break
                    for j in range(K):
                        for s in range(T):
                            rh[j, s] = tot[j, s] - lh[j, s]
                    cl, _ = _side_cost(lh, K, T, nl, xl, alpha)
                    cr, _ = _side_cost(rh, K, T, n - nl, xl, alpha)
                    g = c0 - cl - cr - split_bits
                    if g > best:
                        best = g
                        bp = p
                        bt = t
        if bp < 0:
            lid[node] = nleaf
            lpred[nleaf] = j0
            for i in range(a, b):
                leaf[perm[i]] = nleaf
            nleaf += 1
            continue
        pgain[bp] += best
        # partition perm[a:b]: bin <= bt first
        i = a
        jj = b - 1
        while i <= jj:
            if pbin[bp, perm[i]] <= bt:
                i += 1
            else:
                tmp = perm[i]
                perm[i] = perm[jj]
                perm[jj] = tmp
                jj -= 1
        prop[node] = bp
        thr[node] = bt
        lft[node] = nn
        rgt[node] = nn + 1
        dep[nn] = dep[node] + 1
        dep[nn + 1] = dep[node] + 1
        st_node[sp] = nn
        st_a[sp] = a
        st_b[sp] = i
        sp += 1
        st_node[sp] = nn + 1
        st_a[sp] = i
        st_b[sp] = b
        sp += 1
        nn += 2
    return prop[:nn], thr[:nn], lft[:nn], rgt[:nn], lid[:nn], dep[:nn], leaf, lpred[:nleaf], pgain


@numba.njit(cache=True)
def cluster_bits(h):
    """Greedy pairwise merging of histograms (any pair) under ideal bits + 8 (9 + 2 (m - 1))
    bits a table; returns (total bits, number of tables)."""
    L, T = h.shape
    hs = h.astype(np.float64).copy()
    alive = np.ones(L, np.bool_)

    def cost(v):
        s = 0.0
        n = 0.0
        m = 0
        for t in range(v.size):
            if v[t] > 0:
                s += v[t] * math.log2(v[t])
                n += v[t]
                m += 1
        if m == 0:
            return 0.0
        return n * math.log2(n) - s + 8.0 * (9 + 2 * (m - 1))

    c = np.zeros(L)
    for i in range(L):
        c[i] = cost(hs[i])
    d = np.full((L, L), 1e300)
    for i in range(L):
        for j in range(i + 1, L):
            d[i, j] = cost(hs[i] + hs[j]) - c[i] - c[j]
    nt = L
    while nt > 1:
        bi = -1
        bj = -1
        bd = 0.0
        for i in range(L):
            if not alive[i]:
                continue
            for j in range(i + 1, L):
                if alive[j] and d[i, j] < bd:
                    bd = d[i, j]
                    bi = i
                    bj = j
        if bi < 0:
            break
        hs[bi] += hs[bj]
        alive[bj] = False
        c[bi] = cost(hs[bi])
        nt -= 1
        for j in range(L):
            if alive[j] and j != bi:
                a, b2 = (bi, j) if bi < j else (j, bi)
                d[a, b2] = cost(hs[bi] + hs[j]) - c[bi] - c[j]
    tot = 0.0
    for i in range(L):
        if alive[i]:
            tot += c[i]
    return tot, nt


@numba.njit(cache=True)
def leaf_bias(k, preds, leaf, nleaf):
    """Per (predictor, leaf) mean residual in 1/16 units, clamped to int8."""
    K = preds.shape[0]
    kf = k.reshape(-1)
    s = np.zeros((K, nleaf), np.int64)
    n = np.zeros(nleaf, np.int64)
    for i in range(kf.size):
        n[leaf[i]] += 1
        for j in range(K):
            s[j, leaf[i]] += (np.int64(kf[i]) << F) - preds[j, i]
    b = np.zeros((K, nleaf), np.int64)
    for j in range(K):
        for c in range(nleaf):
            if n[c]:
                b[j, c] = min(max(s[j, c] // n[c], -127), 127)
    return b


def toks_of(k2, predf):
    sym, _ = oriented(k2[None], predf.reshape(1, *k2.shape))
    return tokens(sym, 4, 1, 0)


# ------------------------------------------------------------------------------ pricing
def price_tree(k2, preds, leaf, lpred, nleaf, nnodes, use_bias, K):
    """Final bytes of a tree model: leaves' residuals (chosen predictor, optional leaf bias),
    clustered tables, extra bits, tree bytes."""
    kf = k2.reshape(-1)
    pf = preds.reshape(preds.shape[0], -1)[lpred[leaf], np.arange(kf.size)]
    if use_bias:
        b = leaf_bias(k2, pf[None], leaf, nleaf)[0]
        pf = pf + b[leaf]
    tok, nb = toks_of(k2, pf)
    T = int(tok.max()) + 1
    h = np.zeros((nleaf, T), np.int64)
    np.add.at(h, (leaf, tok), 1)
    bits, ntab = cluster_bits(h)
    ninternal = (nnodes - nleaf)
    tree = 4 * ninternal + nleaf * (1 + (1 if use_bias else 0) + (1 if K > 1 else 0))
    return (bits + nb.sum()) / 8 + tree, ntab


def run_tree(k2, preds, pbin, toks0, use_bias, alphas=(0.5, 0.25, 0.1, 0.03), allowed=None,
             rounds=2, max_depth=16, min_leaf=64, price_preds=None):
    """Learn trees for each alpha (and bias rounds), return the best (bytes, info)."""
    K = preds.shape[0]
    NP = pbin.shape[0]
    allowed = np.ones(NP, np.bool_) if allowed is None else allowed
    best = None
    for alpha in alphas:
        toks = toks0
        for r in range(rounds if use_bias else 1):
            T = int(toks.max()) + 1
            prop, thr, lft, rgt, lid, dep, leaf, lpred, pgain = learn(
                pbin, 64, toks, T, alpha, 32.0, max_depth, min_leaf, allowed)
            nleaf = lpred.size
            nbytes, ntab = price_tree(k2, preds if price_preds is None else price_preds, leaf,
                                      lpred, nleaf, prop.size, use_bias, K)
            isl = lid >= 0
            cnt = np.bincount(leaf, minlength=nleaf)
            avgdepth = float((dep[isl][np.argsort(lid[isl])] * cnt).sum() / leaf.size)
            info = dict(alpha=alpha, round=r, nodes=int(prop.size), leaves=nleaf, tables=ntab,
                        depth=avgdepth, maxdepth=int(dep.max()), pgain=pgain,
                        predfrac=np.bincount(lpred[leaf], minlength=K) / leaf.size)
            if best is None or nbytes < best[0]:
                best = (nbytes, info)
            if use_bias and r + 1 < rounds:
                b = leaf_bias(k2, preds.reshape(K, -1), leaf, nleaf)
                toks = np.stack([toks_of(k2, preds[j].reshape(-1) + b[j][leaf])[0]
                                 for j in range(K)])
    return best


# ------------------------------------------------------------------------------ driver
def plane_results(p, cam, variants):
    t = quantisation_tables(cam, 1.0, "uint16")
    k3 = t.bin[p].astype(np.uint16)[None]
    k2 = k3[0]
    lo, hi = 0, int(t.rec.size - 1)
    import imagecodecs
    jx = len(imagecodecs.jpegxl_encode(k2, lossless=True, effort=9, numthreads=1))
    intra, inter = predictor_for(k3, 1, lo, hi, "max", "qp")
    ia, ea = intra.as_arrays(), inter.as_arrays()
    predf = taps_predict(k3, 1, *ia, *ea, lo, hi)
    res = {"jxl9": jx}
    # baseline: 16 quantile levels of the prediction at 1/4 resolution, static bias per level
    lvl = (predf + 8) >> 4
    lv, _ = level_bins(predf >> 2, 16)
    nlv = int(lv.max()) + 1
    pfb = static_bias(k3, predf, lv, nlv)
    sym, _ = oriented(k3, pfb)
    tok, nb = tokens(sym, 4, 1, 0)
    res["base"] = (merged_static_bits(lv, np.zeros_like(lv), tok, nb, nlv, 1) / 8 + 2 * nlv + nlv,
                   {})
    del lvl
    props = properties(k2, predf[0])
    pbin = bin_props(props)
    w = ls_wide(k3, lo, hi).as_arrays()
    p22 = taps_predict(k3, 1, *w, *w, lo, hi)[0]
    pwp = wp_predict(k3, _DIV)[0]
    allp = np.concatenate([predf, simple_preds(k2), p22[None], pwp[None]])  # PREDS order
    # level-bias tokens (round 0) for every predictor: bias per LS level bin
    tok_lb = np.stack([toks_of(k2, static_bias(k3, allp[j][None], lv, nlv).reshape(-1))[0]
                       for j in range(allp.shape[0])])
    for name, (psel, use_bias, allowed) in variants.items():
        psel = list(psel)
        preds = allp[psel]
        t0 = time.time()
        if not use_bias:  # context only: tokens of today's level-bias prediction (+ its bytes)
            pfl = np.stack([static_bias(k3, allp[j][None], lv, nlv).reshape(-1) for j in psel])
            nbytes, info = run_tree(k2, preds, pbin, tok_lb[psel], False, allowed=allowed,
                                    price_preds=pfl)
            res[name] = (nbytes + 3 * nlv, info)
        else:
            res[name] = run_tree(k2, preds, pbin, tok_lb[psel], True, allowed=allowed)
        res[name][1]["secs"] = time.time() - t0
    return res


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    npl = int(os.environ.get("NP", 3))
    allp = np.ones(len(PROPS), np.bool_)
    only = os.environ.get("VARIANTS")
    variants = {
        "tree ctx (level bias)": ([0], False, None),
        "tree ctx+bias": ([0], True, None),
        "tree ctx+bias+pred{LS,LS22}": ([0, 5], True, None),
        "tree ctx+bias, LS22 only": ([5], True, None),
        "tree ctx+bias+pred{LS,WP}": ([0, 6], True, None),
        "tree ctx+bias+pred{6}": ([0, 1, 2, 3, 4, 5], True, None),
        "tree ctx+bias+pred{7}": ([0, 1, 2, 3, 4, 5, 6], True, None),
    }
    # ablations on ctx+bias: property groups removed
    groups = {"-lvl": [0, 17], "-resid(act,eW,eN,eNW+eNE,maxe)": [12, 13, 14, 18, 19],
              "-values(W,N,NW,NE,W+N-NW)": [1, 2, 3, 4, 10],
              "-diffs(N-NW,W-NW,N-NE,W-WW,N-NN,grad)": [5, 6, 7, 8, 9, 11], "-xy": [15, 16]}
    if os.environ.get("ABL"):
        for g, idx in groups.items():
            a = allp.copy()
            a[idx] = False
            variants["ctx+bias " + g] = ([0], True, a)
        a = np.zeros(len(PROPS), np.bool_)
        a[[0, 12]] = True
        variants["ctx+bias only{lvl,act}"] = ([0], True, a)
    if only:
        keep = only.split(",")
        variants = {k: v for k, v in variants.items() if any(s in k for s in keep)}
    for s in argv:
        ds = LOADERS[s](DATA)
        planes = ds.data.reshape(-1, ds.data.shape[-2], ds.data.shape[-1])[:npl]
        tot = {}
        infos = {}
        for p in planes:
            res = plane_results(p, ds.camera, variants)
            for k, v in res.items():
                if k == "jxl9":
                    tot[k] = tot.get(k, 0) + v
                else:
                    tot[k] = tot.get(k, 0) + v[0]
                    infos.setdefault(k, []).append(v[1])
        print(f"== {s} {planes.shape} jxl9 bytes {tot['jxl9']}  (ratio = est bytes / jxl9)")
        for k in tot:
            if k == "jxl9":
                continue
            line = f"{k:42s} {tot[k] / tot['jxl9']:.4f}  ({tot[k]:.0f} B)"
            if infos[k] and infos[k][0]:
                I = infos[k]
                line += (f"  nodes {np.mean([i['nodes'] for i in I]):.0f} leaves "
                         f"{np.mean([i['leaves'] for i in I]):.0f} tables "
                         f"{np.mean([i['tables'] for i in I]):.0f} avgdepth "
                         f"{np.mean([i['depth'] for i in I]):.1f} maxdepth "
                         f"{max(i['maxdepth'] for i in I)} alpha {[i['alpha'] for i in I]}"
                         f" round {[i['round'] for i in I]} {np.mean([i['secs'] for i in I]):.1f}s")
                g = np.sum([i["pgain"] for i in I], 0)
                top = np.argsort(-g)[:6]
                line += "\n      split gain (bytes, 3 planes): " + ", ".join(
                    f"{PROPS[t]} {g[t] / 8:.0f}" for t in top if g[t] > 0)
                pf = np.mean([i["predfrac"] for i in I], 0)
                if pf.size > 1:
                    line += "\n      pixels per predictor: " + ", ".join(
                        f"{f:.2f}" for f in pf)
            print(line, flush=True)


if __name__ == "__main__":
    main()
