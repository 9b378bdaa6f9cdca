"""Choice of the integer linear predictor for one chunk.

A predictor is a pair of :class:`Taps` (``intra`` for planes without a predecessor, ``inter`` for
planes with one, see ``kernels/_predict.py``). Candidates are fixed averages of causal neighbours
(B3D's ``(W+N)/2`` among them) and a least-squares predictor fitted to the chunk itself. Each
candidate is scored by the order-0 entropy of its residuals on a small sample of the chunk and
the cheapest wins; its coefficients travel in the chunk header.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from threadpoolctl import ThreadpoolController

from .kernels._numba import jit

__all__ = ["FIXED_INTER", "FIXED_INTRA", "Taps", "choose_predictor"]

SHIFT = 12  # fixed-point precision of fitted coefficients


@dataclass(frozen=True)
class Taps:
    """Causal neighbour offsets ``(dp, dy, dx)``, integer coefficients and a right shift."""

    offsets: tuple[tuple[int, int, int], ...]
    coefs: tuple[int, ...]
    shift: int

    def as_arrays(self) -> tuple[np.ndarray, np.ndarray, int]:
        taps = np.asarray(self.offsets, dtype=np.int32).reshape(-1, 3)
        return taps, np.asarray(self.coefs, dtype=np.int64), self.shift


W, WW, WWW = (0, 0, -1), (0, 0, -2), (0, 0, -3)
N, NN, NNN = (0, -1, 0), (0, -2, 0), (0, -3, 0)
NW, NE, NWW, NEE = (0, -1, -1), (0, -1, 1), (0, -1, -2), (0, -1, 2)
NNW, NNE = (0, -2, -1), (0, -2, 1)
P = (-1, 0, 0)

FIXED_INTRA = {
    "west": Taps((W,), (1,), 0),
    "b3d": Taps((W, N), (1, 1), 1),
    "avg4": Taps((W, N, NW, NE), (1, 1, 1, 1), 2),
}
FIXED_INTER = {
    "previous": Taps((P,), (1,), 0),
    "avg3d": Taps((W, N, P, P), (1, 1, 1, 1), 2),
    "avg6": Taps((W, N, NW, NE, P, P, P, P), (1, 1, 1, 1, 1, 1, 1, 1), 3),
}
LS_INTRA = (W, WW, WWW, NWW, NW, N, NE, NEE, NNW, NN, NNE, NNN)
LS_INTER = (W, WW, NW, N, NE, NN, *tuple((-1, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)))
LS_INTER_WIDE = LS_INTRA + tuple((-1, dy, dx) for dy in range(-2, 3) for dx in range(-2, 3))
WIDE_GAIN = 0.015  # the 37-tap inter predictor must save this fraction of bits to be chosen
SAMPLE = 1 << 13  # pixels scored per candidate
FIT_SAMPLE = 1 << 13  # pixels the least-squares fits use
REWEIGHT = 3  # reweighted refits of the chosen least-squares predictor
REWEIGHT_MIN_SIZE = 1 << 21  # pixels a predictor serves from which its refits pay for their time
MAX_WEIGHT = 16


@jit
def _entropy_kernel(residuals):
    counts = np.zeros(1024, np.int64)
    extra = 0.0
    for r in residuals:
        if r >= 1023:
            counts[1023] += 1
            extra += 2.0 * math.log2(r + 1.0)
        else:
            counts[r] += 1
    n = residuals.size
    bits = 0.0
    for c in counts:
        if c:
            bits -= c * math.log2(c / n)
    return bits + extra


def _entropy_bits(residuals: np.ndarray) -> float:
    """Order-0 entropy (bits) of zig-zagged residuals, large values costed by their length.

    Scalar loops with libm's log2, not numpy's SIMD (whose last bits depend on alignment):
    candidates that tie to the last bit must be ranked the same in every run.
    """
    if residuals.size == 0:
        return 0.0
    return float(_entropy_kernel(np.ascontiguousarray(residuals, dtype=np.uint64)))


@functools.lru_cache(maxsize=64)
def _positions(shape: tuple[int, int, int], nz: int, inter: bool, n: int, margin: int):
    """About ``n`` interior pixels of planes with/without a predecessor, deterministic.

    Pixels come in runs of up to 64 along a row from random rows, so gathering their
    neighbours stays cache-friendly. Cached (chunks of a store share their shape); the arrays
    are read-only.
    """
    n_planes, n_rows, n_cols = shape
    planes = np.array([p for p in range(n_planes) if bool(p % nz) == inter], dtype=np.int64)
    rows, cols = n_rows - 2 * margin, n_cols - 2 * margin
    if planes.size == 0 or rows <= 0 or cols <= 0:
        return None
    run = min(64, cols)
    n_rows_total = planes.size * rows
    n_runs = max(1, n // run)
    rng = np.random.default_rng(12345)
    if n_rows_total * cols <= n:  # small: every interior pixel
        row_ids, starts, run = np.arange(n_rows_total), np.zeros(n_rows_total, np.int64), cols
    else:
        row_ids = np.sort(rng.integers(0, n_rows_total, n_runs))
        starts = rng.integers(0, cols - run + 1, n_runs)
    p, y = np.divmod(row_ids, rows)
    x = (starts[:, None] + np.arange(run)[None, :]).ravel()
    p = np.repeat(planes[p], run)
    y = np.repeat(y, run)
    where = (p, y + margin, x + margin)
    for a in where:
        a.flags.writeable = False
    return where


@jit
def _gather_kernel(k, p, y, x, offsets, out):
    """``out[j, i] = k[p[i] + dp_j, y[i] + dy_j, x[i] + dx_j]``: per offset a gather from
    the flat array, vectorised (the sampled pixels come in runs along rows)."""
    _, n_rows, n_cols = k.shape
    flat = k.reshape(-1)
    n = p.size
    base = np.empty(n, np.int64)
    for i in range(n):
        base[i] = (p[i] * n_rows + y[i]) * n_cols + x[i]
    for j in range(offsets.shape[0]):
        d = (offsets[j, 0] * n_rows + offsets[j, 1]) * n_cols + offsets[j, 2]
        row = out[j]
        for i in range(n):
            row[i] = flat[base[i] + d]


def _gather(k: np.ndarray, where, offsets) -> np.ndarray:
    """float64 matrix (pixels × offsets, a column-major view) of neighbour values (exact:
    integers far below 2**53)."""
    out = np.empty((len(offsets), where[0].size), np.float64)
    _gather_kernel(np.ascontiguousarray(k), *where, np.asarray(offsets, np.int64).reshape(-1, 3),
                   out)
    return out.T


@jit
def _residuals_kernel(values, n, cols, coefs, shift, lo, hi, orient, target, out):
    """Zig-zagged residuals (``orient``: oriented, as kernels/_predict.py) of the first ``n`` pixels;
    column by column over a column-major ``values`` (exact integer sums: the order does not
    matter), vectorised."""
    rnd = (np.int64(1) << shift) >> 1
    acc = np.full(n, rnd, np.int64)
    for j in range(cols.size):
        col = values[:, cols[j]]
        c = coefs[j]
        for i in range(n):
            acc[i] += np.int64(col[i]) * c
    om = np.int64(1) if orient and shift > 0 else np.int64(0)
    ob = max(shift - 1, 0)
    for i in range(n):
        pred = min(max(acc[i] >> shift, lo), hi)
        f = (acc[i] >> ob) & om
        r = ((np.int64(target[i]) - pred) ^ -f) + f
        out[i] = np.uint64((r << 1) ^ (r >> 63))


def _residual_bits(values: np.ndarray, n: int, cols: list[int], target: np.ndarray, taps: Taps,
                   lo: int, hi: int, orient: bool = True) -> float:
    """Entropy of the residuals of ``taps`` (columns ``cols`` of ``values``) on the first ``n``
    sampled pixels, in exact integer arithmetic (sums far below 2**63)."""
    n = min(n, target.size)
    out = np.empty(n, np.uint64)
    _residuals_kernel(values, n, np.asarray(cols, np.int64), np.asarray(taps.coefs, np.int64),
                      taps.shift, lo, hi, orient, target, out)
    return _entropy_bits(out)


@jit
def _normal_equations(a, b, gram, rhs):
    """``gram = aᵀa``, ``rhs = aᵀb`` in a fixed summation order (bitwise reproducible)."""
    n, m = a.shape
    for i in range(m):
        for j in range(i, m):
            acc = 0.0
            for r in range(n):
                acc += a[r, i] * a[r, j]
            gram[i, j] = acc
            gram[j, i] = acc
        acc = 0.0
        for r in range(n):
            acc += a[r, i] * b[r]
        rhs[i] = acc


@jit
def _solve(gram, rhs):
    """Gaussian elimination with partial pivoting, in place; False if singular."""
    m = rhs.size
    for c in range(m):
        p = c
        for r in range(c + 1, m):
            if abs(gram[r, c]) > abs(gram[p, c]):
                p = r
        if gram[p, c] == 0.0:
            return False
        if p != c:
            for j in range(m):
                gram[c, j], gram[p, j] = gram[p, j], gram[c, j]
            rhs[c], rhs[p] = rhs[p], rhs[c]
        for r in range(c + 1, m):
            f = gram[r, c] / gram[c, c]
            for j in range(c, m):
                gram[r, j] -= f * gram[c, j]
            rhs[r] -= f * rhs[c]
    for c in range(m - 1, -1, -1):
        acc = rhs[c]
        for j in range(c + 1, m):
            acc -= gram[c, j] * rhs[j]
        rhs[c] = acc / gram[c, c]
    return True


def _exact_products(values: np.ndarray, target: np.ndarray, bound: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray] | None:
    """``(valuesᵀvalues, valuesᵀtarget)`` from BLAS when every partial sum is an exactly
    representable integer (then any summation order, thread count or kernel gives the same
    result), else None. ``bound``: a known bound on ``|values|`` and ``|target|`` (saves a scan)."""
    if bound is not None and bound <= 2**17:
        big = float(bound)
    else:
        big = max(float(np.abs(values).max(initial=0)), float(np.abs(target).max(initial=0)))
    if big <= 2.0**17 and values.shape[0] <= 2**18:  # products < 2**34, sums < 2**52: exact
        return values.T @ values, values.T @ target
    return None


def _fit(values: np.ndarray | None, target: np.ndarray, offsets: tuple, products=None
         ) -> Taps | None:
    """Least-squares coefficients (fixed point) predicting ``target`` from ``values``.

    The CPU and GPU encoders (and any two runs) must choose the same coefficients to write the
    same bytes, so nothing here may depend on BLAS threads or memory alignment: the normal
    equations are exact integer sums (``products``: the rows and columns of ``offsets`` of
    :func:`_exact_products` of all candidate offsets) or come from a fixed-order loop; the
    solve is always a fixed-order elimination.
    """
    m = len(offsets)
    if target.size < 4 * m:
        return None
    if products is not None:
        gram, coefs = products
    else:
        a = np.ascontiguousarray(values)
        b = np.ascontiguousarray(target)
        gram = np.empty((m, m), np.float64)
        coefs = np.empty(m, np.float64)
        _normal_equations(a, b, gram, coefs)
    # a tiny ridge keeps flat or constant data well posed
    gram[np.diag_indices_from(gram)] += 1e-6 * max(float(np.trace(gram)) / m, 1.0)
    if not _solve(gram, coefs) or not np.all(np.isfinite(coefs)) or np.abs(coefs).max() > 64:
        return None
    ints = np.rint(coefs * (1 << SHIFT)).astype(np.int64)
    return Taps(tuple(offsets), tuple(int(c) for c in ints), SHIFT)


def _reweighted(values: np.ndarray, target: np.ndarray, cols: list[int], taps: Taps, lo: int,
                hi: int) -> Taps:
    """``taps`` refitted ``REWEIGHT`` times by weighted least squares, weights falling as
    1/|residual| (iteratively reweighted least squares towards the least absolute residuals,
    whose rate is closer to the entropy coder's than the squares'). Weights are integers in
    ``[1, MAX_WEIGHT]`` from the exact integer residuals, so the weighted sums stay exact
    integers (|values| <= 2**17, <= 2**14 rows) and the result is reproducible."""
    v = np.ascontiguousarray(values[:, cols])
    n = target.size
    z = np.empty(n, np.uint64)
    for _ in range(REWEIGHT):
        _residuals_kernel(values, n, np.asarray(cols, np.int64),
                          np.asarray(taps.coefs, np.int64), taps.shift, lo, hi, False, target, z)
        r = ((z + np.uint64(1)) >> np.uint64(1)).astype(np.int64)  # |residual|
        scale = max(1, int(r.sum()) // n)
        w = np.clip((MAX_WEIGHT * scale) // np.maximum(r, 1), 1, MAX_WEIGHT).astype(np.float64)
        a = v * w[:, None]
        refit = _fit(None, target, taps.offsets, (a.T @ v, a.T @ target))
        if refit is None:
            break
        taps = refit
    return taps


def _inner_share(taps: Taps, n_rows: int, n_cols: int) -> float:
    """Share of a plane's pixels where every tap of ``taps`` falls inside the plane."""
    dy = [o[1] for o in taps.offsets] + [0]
    dx = [o[2] for o in taps.offsets] + [0]
    rows = max(0, n_rows - (max(dy) - min(dy)))
    cols = max(0, n_cols - (max(dx) - min(dx)))
    return rows * cols / max(1, n_rows * n_cols)


def _best(k, nz, inter, candidates, fits, lo, hi, reweight=True, orient=True) -> Taps | None:
    """Cheapest of ``candidates`` plus least-squares fits of ``fits`` on sampled pixels."""
    where = _positions(k.shape, nz, inter, FIT_SAMPLE, margin=3)
    if where is None:
        return None
    offsets = sorted({o for t in candidates.values() for o in t.offsets} | {o for f in fits for o in f})
    column = {o: i for i, o in enumerate(offsets)}
    values = _gather(k, where, offsets)
    target = k[where].astype(np.float64)
    scored = {}
    # pixels where a predictor's taps do not fit (plane borders) use the fallback (mostly the
    # west neighbour); the sample holds interior pixels only, so each candidate's bits are
    # blended with the west predictor's by the share of pixels its taps fit
    west_bits = _residual_bits(values, SAMPLE, [column[W]], target, FIXED_INTRA["west"], lo, hi)

    def blended(bits: float, taps: Taps) -> float:
        inner = _inner_share(taps, k.shape[1], k.shape[2])
        return inner * bits + (1.0 - inner) * west_bits

    for name, taps in candidates.items():
        cols = [column[o] for o in taps.offsets]
        scored[name] = (
            blended(_residual_bits(values, SAMPLE, cols, target, taps, lo, hi, orient), taps),
            taps)
    # one exact Gram matrix of all offsets serves every fit (its sub-matrices)
    full = _exact_products(values, target, max(abs(lo), abs(hi))) if fits else None
    for f in fits:
        cols = [column[o] for o in f]
        sub = None if full is None else (full[0][np.ix_(cols, cols)], full[1][cols])
        taps = _fit(values[:, cols] if sub is None else None, target, f, sub)
        if taps is not None:
            scored[f] = (
                blended(_residual_bits(values, SAMPLE, cols, target, taps, lo, hi, orient), taps),
                taps)
    wide = scored.pop(LS_INTER_WIDE, None)
    bits, best = min(scored.values(), key=lambda item: item[0])
    if wide is not None and wide[0] < (1 - WIDE_GAIN) * bits:
        bits, best = wide
    # the chosen least-squares predictor, refitted towards least absolute residuals
    # (1.5-2.5 ms: only where that is a few % of the encode time of the planes it predicts)
    n_planes = sum(1 for p in range(k.shape[0]) if bool(p % nz) == inter)
    if (reweight and best.offsets in fits and full is not None and values.shape[0] <= 2**14
            and n_planes * k.shape[1] * k.shape[2] >= REWEIGHT_MIN_SIZE):
        cols = [column[o] for o in best.offsets]
        refit = _reweighted(values, target, cols, best, lo, hi)
        if blended(_residual_bits(values, SAMPLE, cols, target, refit, lo, hi, orient),
                   refit) < bits:
            best = refit
    return best


def choose_predictor(
    k: np.ndarray, nz: int, lo: int, hi: int, *, fit: bool = True, reweight: bool = True,
    orient: bool = True, wide: bool = True,
) -> tuple[Taps, Taps]:
    """Pick the ``(intra, inter)`` predictor pair with the smallest residual entropy.

    Candidates are scored by the order-0 entropy of their residuals on a deterministic random
    sample of interior pixels; least-squares predictors are fitted on a larger sample.

    Parameters
    ----------
    k : ndarray of int32, shape (planes, rows, cols)
        Values to predict (quantised bin indices or raw integers).
    nz : int
        Planes per stack; plane ``p`` has a predecessor when ``p % nz != 0``.
    lo, hi : int
        Range of ``k`` (predictions are clipped to it); every value of ``k`` must lie in it.
    fit : bool
        Also try least-squares predictors.
    reweight : bool
        Refit each chosen least-squares predictor by reweighted least squares where it predicts
        at least ``REWEIGHT_MIN_SIZE`` pixels (+1-2 % ratio, 1.5-2.5 ms each).
    orient : bool
        Score the residuals as oriented ones (``kernels/_predict.py``), as the chunk codes them.
    wide : bool
        Also try the 37-tap inter-plane fit (with ``fit``): up to ~3 % smaller residuals on
        large stacks, at about twice the prediction time of the 15-tap one.
    """
    with _blas().limit(limits=1, user_api="blas"):  # tiny products: threads only contend
        intra = _best(k, nz, False, FIXED_INTRA, [LS_INTRA] if fit else [], lo, hi, reweight,
                      orient)
        intra = intra or FIXED_INTRA["b3d"]
        inter_candidates = dict(FIXED_INTER, same_as_intra=intra)
        fits = ([LS_INTER, LS_INTER_WIDE] if wide else [LS_INTER]) if fit else []
        inter = _best(k, nz, True, inter_candidates, fits, lo, hi, reweight, orient)
    return intra, inter or FIXED_INTER["avg3d"]


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()
