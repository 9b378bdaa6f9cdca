"""Spot detection (LoG), sub-pixel localisation (Gaussian fit) and matched localisation error.

For single-molecule (SMLM) movies and diffraction frames: each 2-D plane (last two axes) is
filtered with a Laplacian of Gaussian, local maxima above a threshold are spots, and each spot
is refined by a least-squares fit of ``A·exp(−r²/2s²) + B`` (Levenberg–Marquardt, all spots of
a chunk at once) in a ``(2w+1)²`` window. With a camera model the detection runs on the
variance-stabilised image, so the threshold is in units of the filtered noise (≈ a false-alarm
rate independent of brightness). Chunks are processed with a halo; a spot belongs to the chunk
holding its peak pixel, so chunked and whole-array results agree.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ParameterError
from ._blocks import as_dask, block_tables
from .stats import bootstrap_ci, rms

if TYPE_CHECKING:
    from ..noise import CameraModel

__all__ = ["detect_spots", "fit_gaussians", "localisation_error", "match_spots",
           "paired_localisation_change"]


def _log_noise(psf_sigma: float) -> float:
    """Standard deviation of the LoG response to unit white noise."""
    from scipy import ndimage

    n = 2 * int(4 * psf_sigma + 0.5) + 1
    delta = np.zeros((n, n))
    delta[n // 2, n // 2] = 1.0
    return float(np.sqrt((ndimage.gaussian_laplace(delta, psf_sigma) ** 2).sum()))


def fit_gaussians(windows: np.ndarray, psf_sigma: float, iterations: int = 20) -> np.ndarray:
    """Fit ``A·exp(−((y−y0)² + (x−x0)²) / 2s²) + B`` to each square window (batched LM).

    Parameters
    ----------
    windows : ndarray, shape (n, m, m)
        Background included; coordinates are pixel indices inside the window.
    psf_sigma : float
        Starting PSF width.

    Returns
    -------
    ndarray, shape (n, 5)
        ``y0, x0, A, B, s`` per window.
    """
    n, m = windows.shape[0], windows.shape[-1]
    w = windows.reshape(n, -1).astype(np.float64)
    yy, xx = (g.ravel().astype(np.float64) for g in np.mgrid[0:m, 0:m])
    bg = np.minimum(w.min(axis=1), np.median(w, axis=1))
    sig = np.clip(w - bg[:, None], 0, None)
    tot = sig.sum(axis=1) + 1e-12
    p = np.column_stack([(sig * yy).sum(1) / tot, (sig * xx).sum(1) / tot,
                         w.max(axis=1) - bg, bg, np.full(n, float(psf_sigma))])

    def model(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        dy, dx = yy - p[:, :1], xx - p[:, 1:2]
        s2 = p[:, 4:5] ** 2
        g = np.exp(-(dy * dy + dx * dx) / (2 * s2))
        return p[:, 2:3] * g + p[:, 3:4], g

    def cost(p: np.ndarray) -> np.ndarray:
        return ((model(p)[0] - w) ** 2).sum(axis=1)

    lam = np.full(n, 1e-2)
    c = cost(p)
    for _ in range(iterations):
        f, g = model(p)
        dy, dx = yy - p[:, :1], xx - p[:, 1:2]
        s = p[:, 4:5]
        ag = p[:, 2:3] * g
        jac = np.stack([ag * dy / s**2, ag * dx / s**2, g, np.ones_like(g),
                        ag * (dy * dy + dx * dx) / s**3], axis=2)
        jtj = np.einsum("nki,nkj->nij", jac, jac)
        jtr = np.einsum("nki,nk->ni", jac, w - f)
        damp = jtj + lam[:, None, None] * (np.eye(5) * jtj.diagonal(axis1=1, axis2=2)[:, None]
                                           + 1e-9 * np.eye(5))
        step = np.linalg.solve(damp, jtr[..., None])[..., 0]
        trial = p + step
        trial[:, :2] = np.clip(trial[:, :2], -0.5, m - 0.5)
        trial[:, 4] = np.clip(trial[:, 4], 0.3, 3 * psf_sigma)
        ct = cost(trial)
        better = ct < c
        p[better], c[better] = trial[better], ct[better]
        lam = np.where(better, lam * 0.3, lam * 10.0)
    return p


def _detect_block(x: np.ndarray, *, origin: tuple[int, ...],
                  interior: tuple[tuple[int, int], ...], camera: CameraModel | None,
                  psf_sigma: float, threshold: float, window: int) -> np.ndarray:
    from scipy import ndimage

    nd = x.ndim
    ncols = nd + 3
    xf = x.astype(np.float64)
    if camera is not None:
        det = camera.forward(xf)
        noise = _log_noise(psf_sigma)
    else:
        det = xf
    sig = (0.0,) * (nd - 2) + (psf_sigma, psf_sigma)
    # LoG over y, x only (scipy's gaussian_laplace would add the raw data for sigma-0 axes)
    resp = -sum(ndimage.gaussian_filter(det, sig, order=(0,) * (nd - 2) + o, mode="reflect")
                for o in ((2, 0), (0, 2)))
    if camera is None:  # robust noise of the response
        noise = 1.4826 * float(np.median(np.abs(resp - np.median(resp)))) or 1.0
    peak = (resp == ndimage.maximum_filter(resp, size=(1,) * (nd - 2) + (3, 3),
                                           mode="nearest")) & (resp > threshold * noise)
    idx = np.argwhere(peak)
    if idx.size == 0:
        return np.empty((0, ncols))
    glob = idx + np.asarray(origin)
    lo = np.asarray([s for s, _ in interior])
    hi = np.asarray([e for _, e in interior])
    keep = np.all((glob >= lo) & (glob < hi), axis=1)
    # the fit window must lie inside the block (only fails at the array's edges)
    keep &= np.all((idx[:, -2:] >= window) & (idx[:, -2:] < np.asarray(x.shape[-2:]) - window),
                   axis=1)
    idx, glob = idx[keep], glob[keep]
    if idx.size == 0:
        return np.empty((0, ncols))
    if camera is not None:  # fit photo-electrons above offset
        xf = (xf - camera.offset) / camera.gain
    off = np.arange(-window, window + 1)
    lead = tuple(idx[:, k][:, None, None] for k in range(nd - 2))
    rows = idx[:, -2][:, None, None] + off[None, :, None]
    cols = idx[:, -1][:, None, None] + off[None, None, :]
    p = fit_gaussians(xf[(*lead, rows, cols)], psf_sigma)
    yx = glob[:, -2:] - window + p[:, :2]
    return np.column_stack([glob[:, :-2], yx, p[:, 2], p[:, 3], p[:, 4]])


def detect_spots(x: Any, *, camera: CameraModel | None = None, psf_sigma: float = 1.3,
                 threshold: float = 5.0, window: int = 3) -> np.ndarray:
    """Detect and localise spots in every 2-D plane (last two axes), chunk-wise.

    Parameters
    ----------
    x : array_like or dask.array.Array
        At least 2-D; leading axes index the planes (e.g. ``(t, y, x)``).
    camera : CameraModel, optional
        Detect on the variance-stabilised image (threshold in filtered-noise σ) and fit in
        photo-electrons; without it, detection on raw values with a robust (MAD) noise level.
    psf_sigma : float
        PSF standard deviation (pixels): scale of the LoG and start of the fit.
    threshold : float
        Detection threshold in units of the LoG response's noise.
    window : int
        Fit half-width: windows are ``(2·window + 1)²`` pixels.

    Returns
    -------
    ndarray, shape (n, ndim + 3)
        Per spot: plane indices (leading axes), sub-pixel ``y, x``, amplitude, background
        (photo-electrons with a camera, else data units) and fitted width.
    """
    xd = as_dask(x)
    if xd.ndim < 2:
        raise ParameterError("spot detection needs at least 2-D data")
    depth = (0,) * (xd.ndim - 2) + (int(4 * psf_sigma + 0.5) + window + 2,) * 2
    table = block_tables(_detect_block, [xd], depth, xd.ndim + 3, camera=camera,
                         psf_sigma=float(psf_sigma), threshold=float(threshold),
                         window=int(window))
    return _dedupe(table, xd.ndim - 2)


def _dedupe(table: np.ndarray, nlead: int, radius: float = 0.5) -> np.ndarray:
    """Sort rows; drop fits closer than ``radius`` to an earlier one in the same plane.

    Plateaus (a spot centred between pixels) give several equal maxima that fit to the same
    spot, possibly in neighbouring chunks.
    """
    from scipy.spatial import cKDTree

    table = table[np.lexsort(table[:, :nlead + 2].T[::-1])]
    if len(table) < 2:
        return table
    drop = np.zeros(len(table), bool)
    inv = (np.unique(table[:, :nlead], axis=0, return_inverse=True)[1].ravel() if nlead
           else np.zeros(len(table), np.int64))
    for g in np.unique(inv):
        rows = np.flatnonzero(inv == g)
        for i, j in cKDTree(table[rows, nlead:nlead + 2]).query_pairs(radius):
            drop[rows[max(i, j)]] = True
    return table[~drop]


def match_spots(ref: np.ndarray, test: np.ndarray, *, radius: float = 1.0,
                nlead: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one matching within ``radius`` pixels, plane by plane (Hungarian algorithm).

    Parameters
    ----------
    ref, test : ndarray
        Spot tables whose first ``nlead`` columns are plane indices, then ``y, x``.
    radius : float
        Largest distance of a match (pixels).
    nlead : int
        Number of plane-index columns.

    Returns
    -------
    i_ref, i_test : ndarray of int
        Indices of the matched rows.
    dist : ndarray
        Their distances.

    Examples
    --------
    >>> ref = np.array([[0, 10.0, 10.0], [0, 20.0, 20.0], [1, 5.0, 5.0]])
    >>> test = ref + [0, 0.3, 0.4]
    >>> i, j, d = match_spots(ref, test)
    >>> i.tolist(), j.tolist(), d.round(6).tolist()
    ([0, 1, 2], [0, 1, 2], [0.5, 0.5, 0.5])
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial import cKDTree

    ref, test = np.asarray(ref, np.float64), np.asarray(test, np.float64)
    out_i, out_j = [], []
    keys_r = [tuple(r) for r in ref[:, :nlead]]
    keys_t = [tuple(r) for r in test[:, :nlead]]
    groups_t: dict[tuple, list[int]] = {}
    for j, k in enumerate(keys_t):
        groups_t.setdefault(k, []).append(j)
    groups_r: dict[tuple, list[int]] = {}
    for i, k in enumerate(keys_r):
        groups_r.setdefault(k, []).append(i)
    for key, ir in groups_r.items():
        jt = groups_t.get(key)
        if not jt:
            continue
        ir_a, jt_a = np.asarray(ir), np.asarray(jt)
        pr, pt = ref[ir_a, nlead:nlead + 2], test[jt_a, nlead:nlead + 2]
        pairs = cKDTree(pr).sparse_distance_matrix(cKDTree(pt), radius, output_type="ndarray")
        if len(pairs) == 0:
            continue
        # Hungarian on the candidate sub-problem; non-candidates cost more than any match
        ui, ri = np.unique(pairs["i"], return_inverse=True)
        uj, rj = np.unique(pairs["j"], return_inverse=True)
        cost = np.full((len(ui), len(uj)), 1e6 + radius)
        cost[ri, rj] = pairs["v"]
        a, b = linear_sum_assignment(cost)
        ok = cost[a, b] <= radius
        out_i.append(ir_a[ui[a[ok]]])
        out_j.append(jt_a[uj[b[ok]]])
    if not out_i:
        e = np.empty(0, np.int64)
        return e, e, np.empty(0)
    i, j = np.concatenate(out_i), np.concatenate(out_j)
    order = np.argsort(i, kind="stable")
    i, j = i[order], j[order]
    d = np.hypot(*(ref[i, nlead:nlead + 2] - test[j, nlead:nlead + 2]).T)
    return i, j, d


def localisation_error(ref: np.ndarray, test: np.ndarray, *, radius: float = 1.0,
                       nlead: int = 1) -> dict[str, float]:
    """Match ``test`` spots to ``ref`` spots and summarise the distances.

    Returns
    -------
    dict
        ``rmse`` (RMS distance of matched pairs, px), ``mean``, ``n_ref``, ``n_test``,
        ``matched``, ``recall`` (matched / n_ref), ``precision`` (matched / n_test),
        ``jaccard`` (matched / (n_ref + n_test − matched)).

    Examples
    --------
    >>> ref = np.array([[0, 10.0, 10.0], [0, 30.0, 30.0]])
    >>> r = localisation_error(ref, ref + [0, 0.0, 0.25])
    >>> r["rmse"], r["recall"]
    (0.25, 1.0)
    """
    i, _, d = match_spots(ref, test, radius=radius, nlead=nlead)
    n_ref, n_test, m = len(ref), len(test), len(i)
    return {"rmse": math.sqrt(float((d * d).mean())) if m else math.nan,
            "mean": float(d.mean()) if m else math.nan, "n_ref": n_ref, "n_test": n_test,
            "matched": m, "recall": m / n_ref if n_ref else math.nan,
            "precision": m / n_test if n_test else math.nan,
            "jaccard": m / (n_ref + n_test - m) if n_ref + n_test - m else math.nan}


def _pct(ratio: np.ndarray | float) -> np.ndarray | float:
    return 100.0 * (ratio - 1.0)


def paired_localisation_change(truth: np.ndarray, ref: np.ndarray, test: np.ndarray, *,
                               radius: float = 1.0, nlead: int = 1, n_boot: int = 2000,
                               level: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Change of the localisation error against ground truth, on the same spots (paired).

    Both detection tables are matched to ``truth`` (:func:`match_spots`); only true spots
    found in both count, so the statistic compares the precision of the same spots and is
    not moved by spots that are detected in one table only. Its uncertainty is a paired
    bootstrap over spots (:func:`~bigcomp.metrics.stats.bootstrap_ci`).

    Parameters
    ----------
    truth : ndarray
        Ground-truth table: ``nlead`` plane-index columns, then ``y, x``.
    ref, test : ndarray
        Detections in the original (reference) and decoded (test) data, same layout.
    radius : float
        Largest distance of a match (pixels).
    nlead : int
        Number of plane-index columns.
    n_boot, level, seed
        Bootstrap resamples, confidence level and seed.

    Returns
    -------
    dict
        ``pairs`` (true spots matched in both), ``only_ref``, ``only_test`` (matched in one
        table only), ``rmse_ref``, ``rmse_test`` (px, over the pairs), ``change_pct``
        (``100·(rmse_test / rmse_ref − 1)``), ``ci_low``, ``ci_high`` (its bootstrap
        interval), ``median_ref``, ``median_test``, ``median_change_pct`` and
        ``median_ci_low``, ``median_ci_high`` (the same for the median error), ``shift_rms``
        (RMS distance between the ``ref`` and ``test`` fits of the same true spot) and
        ``shift_change_pct`` = ``100·(sqrt(1 + shift_rms² / rmse_ref²) − 1)``, the change
        expected if the shift were independent of the original error (the exact identity
        is ``|e_test|² = |e_ref|² + |s|² + 2·e_ref·s``).

    Examples
    --------
    >>> truth = np.array([[0, 10.0, 10.0], [0, 20.0, 20.0], [0, 30.0, 30.0]])
    >>> ref = truth + [0, 0.3, 0.0]                   # errors 0.3, 0.3, 0.3
    >>> test = (truth + [0, 0.0, 0.4])[:2]            # errors 0.4, 0.4; third spot lost
    >>> r = paired_localisation_change(truth, ref, test)
    >>> r["pairs"], r["only_ref"], round(r["change_pct"], 6), round(r["shift_rms"], 6)
    (2, 1, 33.333333, 0.5)
    """
    truth, ref, test = (np.asarray(a, np.float64) for a in (truth, ref, test))
    ir, jr, _ = match_spots(truth, ref, radius=radius, nlead=nlead)
    it, jt, _ = match_spots(truth, test, radius=radius, nlead=nlead)
    _, a, b = np.intersect1d(ir, it, assume_unique=True, return_indices=True)
    yx = slice(nlead, nlead + 2)
    p_true, p_ref, p_test = truth[ir[a], yx], ref[jr[a], yx], test[jt[b], yx]
    er = np.hypot(*(p_ref - p_true).T)
    et = np.hypot(*(p_test - p_true).T)
    shift = np.hypot(*(p_test - p_ref).T)
    n = len(er)
    out: dict[str, float] = {"pairs": n, "only_ref": len(ir) - n, "only_test": len(it) - n}
    if n == 0:
        nan = math.nan
        out.update(rmse_ref=nan, rmse_test=nan, change_pct=nan, ci_low=nan, ci_high=nan,
                   median_ref=nan, median_test=nan, median_change_pct=nan,
                   median_ci_low=nan, median_ci_high=nan, shift_rms=nan,
                   shift_change_pct=nan)
        return out
    rmse_r, rmse_t, s_rms = float(rms(er)), float(rms(et)), float(rms(shift))
    med_r, med_t = float(np.median(er)), float(np.median(et))
    boot = {"n_boot": n_boot, "level": level, "seed": seed}
    lo, hi = bootstrap_ci(lambda r, t: _pct(rms(t) / rms(r)), er, et, **boot)
    mlo, mhi = bootstrap_ci(lambda r, t: _pct(np.median(t, axis=-1) / np.median(r, axis=-1)),
                            er, et, **boot)
    out.update(rmse_ref=rmse_r, rmse_test=rmse_t, change_pct=float(_pct(rmse_t / rmse_r)),
               ci_low=lo, ci_high=hi, median_ref=med_r, median_test=med_t,
               median_change_pct=float(_pct(med_t / med_r)) if med_r > 0 else math.nan,
               median_ci_low=mlo, median_ci_high=mhi, shift_rms=s_rms,
               shift_change_pct=float(_pct(math.sqrt(1 + (s_rms / rmse_r) ** 2)))
               if rmse_r > 0 else math.nan)
    return out
