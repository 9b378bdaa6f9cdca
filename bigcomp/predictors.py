"""Choice of the integer linear predictor for one chunk.

A predictor is a pair of :class:`Taps` (``intra`` for planes without a predecessor, ``inter`` for
planes with one, see ``kernels/_predict.py``). Candidates are fixed averages of causal neighbours
(B3D's ``(W+N)/2`` among them) and a least-squares predictor fitted to the chunk itself. Each
candidate is scored by the order-0 entropy of its residuals on a small sample of the chunk and
the cheapest wins; its coefficients travel in the chunk header.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .kernels._predict import predict_encode

__all__ = ["Taps", "choose_predictor", "FIXED_INTRA", "FIXED_INTER"]

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
LS_INTER = (W, WW, NW, N, NE, NN) + tuple((-1, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1))


def _entropy_bits(residuals: np.ndarray) -> float:
    """Order-0 entropy (bits) of zig-zagged residuals, large values costed by their length."""
    if residuals.size == 0:
        return 0.0
    clipped = np.minimum(residuals, 1023)
    counts = np.bincount(clipped)
    counts = counts[counts > 0]
    bits = -(counts * np.log2(counts / residuals.size)).sum()
    big = residuals[residuals >= 1023]
    return float(bits + 2 * np.log2(big.astype(np.float64) + 1).sum())


def _sample(k: np.ndarray, nz: int, max_pixels: int) -> tuple[np.ndarray, int]:
    """A few planes (with their predecessors) and a band of rows, as a smaller 3-D array."""
    n_planes, n_rows, n_cols = k.shape
    if k.size <= max_pixels:
        return k, nz
    rows = max(8, min(n_rows, max_pixels // (4 * n_cols)))
    y0 = (n_rows - rows) // 2
    with_prev = [p for p in range(n_planes) if p % nz]
    if not with_prev:
        picks = np.linspace(0, n_planes - 1, min(n_planes, 4)).astype(int)
        return np.ascontiguousarray(k[picks, y0 : y0 + rows]), 1
    picks = np.asarray(with_prev)[np.linspace(0, len(with_prev) - 1, 2).astype(int)]
    pairs = np.stack([k[picks - 1, y0 : y0 + rows], k[picks, y0 : y0 + rows]], axis=1)
    return np.ascontiguousarray(pairs.reshape(-1, rows, n_cols)), 2


def _fit(k: np.ndarray, nz: int, offsets: tuple, inter: bool, max_rows: int = 40000) -> Taps | None:
    """Least-squares coefficients for ``offsets`` over interior pixels of the sample."""
    n_planes, n_rows, n_cols = k.shape
    dymin = -min(o[1] for o in offsets)
    dymax = max(o[1] for o in offsets)
    dxmin = -min(o[2] for o in offsets)
    dxmax = max(o[2] for o in offsets)
    planes = [p for p in range(n_planes) if bool(p % nz) == inter]
    if not planes or n_rows <= dymin + dymax or n_cols <= dxmin + dxmax:
        return None
    cols, target = [], []
    for dp, dy, dx in offsets:
        cols.append(
            np.concatenate(
                [k[p + dp, dymin + dy : n_rows - dymax + dy, dxmin + dx : n_cols - dxmax + dx].ravel() for p in planes]
            )
        )
    target = np.concatenate(
        [k[p, dymin : n_rows - dymax, dxmin : n_cols - dxmax].ravel() for p in planes]
    )
    if target.size < 4 * len(offsets):
        return None
    step = max(1, target.size // max_rows)
    a = np.stack(cols, axis=1)[::step].astype(np.float64)
    b = target[::step].astype(np.float64)
    # normal equations with a tiny ridge: 1000x faster than an SVD here, and well posed
    gram = a.T @ a
    gram[np.diag_indices_from(gram)] += 1e-6 * max(float(np.trace(gram)) / len(offsets), 1.0)
    try:
        coefs = np.linalg.solve(gram, a.T @ b)
    except np.linalg.LinAlgError:
        return None
    if not np.all(np.isfinite(coefs)):
        return None
    ints = np.rint(coefs * (1 << SHIFT)).astype(np.int64)
    return Taps(tuple(offsets), tuple(int(c) for c in ints), SHIFT)


def choose_predictor(
    k: np.ndarray, nz: int, lo: int, hi: int, *, fit: bool = True, max_pixels: int = 1 << 17
) -> tuple[Taps, Taps]:
    """Pick the ``(intra, inter)`` predictor pair with the smallest residual entropy.

    Parameters
    ----------
    k : ndarray of int32, shape (planes, rows, cols)
        Values to predict (quantised bin indices or raw integers).
    nz : int
        Planes per stack; plane ``p`` has a predecessor when ``p % nz != 0``.
    lo, hi : int
        Range of ``k`` (predictions are clipped to it).
    fit : bool
        Also try least-squares predictors fitted on the sample.
    max_pixels : int
        Size of the sample the candidates are scored on.
    """
    sample, snz = _sample(k, nz, max_pixels)
    intra = dict(FIXED_INTRA)
    inter = dict(FIXED_INTER)
    if fit:
        fitted = _fit(sample, snz, LS_INTRA, inter=False)
        if fitted is not None:
            intra["fitted"] = fitted
        fitted = _fit(sample, snz, LS_INTER, inter=True)
        if fitted is not None:
            inter["fitted"] = fitted
    has_inter = any(p % snz for p in range(sample.shape[0]))
    scores = {}
    for name, taps in intra.items():
        res = predict_encode(
            sample, snz, taps.as_arrays(), taps.as_arrays(), lo, hi, parallel=False
        )
        per_plane = res.reshape(sample.shape[0], -1)
        mask = np.array([p % snz == 0 for p in range(sample.shape[0])])
        scores[name] = _entropy_bits(per_plane[mask].ravel())
    best_intra = intra[min(scores, key=scores.get)]
    if not has_inter:
        return best_intra, FIXED_INTER["avg3d"]
    inter["same_as_intra"] = best_intra
    scores = {}
    mask = np.array([p % snz != 0 for p in range(sample.shape[0])])
    for name, taps in inter.items():
        res = predict_encode(
            sample, snz, best_intra.as_arrays(), taps.as_arrays(), lo, hi, parallel=False
        )
        scores[name] = _entropy_bits(res.reshape(sample.shape[0], -1)[mask].ravel())
    return best_intra, inter[min(scores, key=scores.get)]
