"""Photon-transfer statistics for :mod:`bigcomp.estimate`: per-pixel noise points, level bins,
per-tile sums (for the bootstrap) and the fits of one set of bins.

Spatial points: the Immerkær residual of a 3x3 kernel on each plane, binned by the 5x5 ring
around it; temporal points: per-pixel mean, variance (successive differences) and third
cumulant over the frames, binned by the 8 neighbours' mean. Every statistic is a sum over the
pixels of a bin, kept per tile, so a bootstrap replicate is a weighted sum of tiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError, UnsupportedDataError

MAX_SAMPLES = 2_000_000
_TILE = 32  # bootstrap tile of a plane; the kernel residuals correlate over 5 pixels only
_TTILE = 16  # bootstrap tile of pixel time series
_TEXTURE = 34.53 / 13  # 99.9 % quantile of chi²(13) / 13: a ring that is noise only passes


@dataclass
class Points:
    """Per-pixel contributions, binned by ``level``; ``tile`` groups them for the bootstrap."""

    level: np.ndarray  # binning level, independent of xlev and of the noise
    xlev: np.ndarray  # level whose noise v measures (ADU)
    xlev3: np.ndarray  # level whose third cumulant k measures (ADU)
    v: np.ndarray  # variance contribution (squared residual, or temporal variance)
    k: np.ndarray  # third-cumulant contribution (cubed residual, or temporal k3)
    tile: np.ndarray
    kappa: float  # E[k] = kappa·g²·(mean − o)
    frames: int  # observations in one level (for the noise of a mean)
    method: str
    k_var: float  # variance of one k contribution / v³ (Gaussian approximation)
    rounding: float = 0.0  # variance of rounding to integers (Sheppard's correction, 1/12)
    trunc: float = 1.0  # share of a Gaussian's variance within the clipping
    texture: np.ndarray | None = None  # ring variance about a plane (spatial)


def check_input(data, time_axis: int | None) -> np.ndarray:
    a = np.asarray(data)
    if a.dtype.kind not in "uif":
        raise UnsupportedDataError(f"camera estimation needs integer or real pixels, not {a.dtype}")
    if a.size == 0:
        raise UnsupportedDataError("cannot estimate the camera model of an empty array")
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        raise UnsupportedDataError("data contains NaN or inf: estimate on a finite region or "
                                   "replace them first (e.g. np.nan_to_num)")
    if time_axis is not None:
        if not isinstance(time_axis, (int, np.integer)) or not -a.ndim <= time_axis < a.ndim:
            raise ParameterError(f"time_axis={time_axis!r} is not an axis of a {a.ndim}-D array")
        if a.shape[time_axis] < 2:
            raise ParameterError("the time axis needs at least 2 frames for temporal statistics")
    elif a.ndim < 2 or a.shape[-1] < 5 or a.shape[-2] < 5:
        raise UnsupportedDataError(
            f"spatial estimation needs planes of at least 5 x 5 pixels, got shape {a.shape}; "
            "pass time_axis= for a time series of small frames")
    return a


def saturation_mask(a: np.ndarray) -> np.ndarray:
    """Pixels at the saturation level: the dtype maximum, or a data maximum that is frequent."""
    top = a.max()
    sat = a >= top if (a == top).sum() > max(10, 1e-4 * a.size) else np.zeros(a.shape, bool)
    if a.dtype.kind in "ui":
        sat |= a >= np.iinfo(a.dtype).max
    return sat


def _box_sum(x: np.ndarray, r: int) -> np.ndarray:
    """Sums over the (2r+1) x (2r+1) windows lying inside each plane of ``x`` (planes, h, w)."""
    c, k = np.zeros((x.shape[0], x.shape[1] + 1, x.shape[2] + 1)), 2 * r + 1
    c[:, 1:, 1:] = x.cumsum(1, dtype=np.float64).cumsum(2)
    return c[:, k:, k:] - c[:, :-k, k:] - c[:, k:, :-k] + c[:, :-k, :-k]


def _tiles(shape: tuple[int, ...], size: int, offset: int) -> np.ndarray:
    """Bootstrap tile of every pixel of (planes, h, w) whose first row/column is ``offset``.

    A tile is a ``size`` x ``size`` column through all planes (structure such as a nucleus
    spans several planes, and its residuals with it), or through groups of planes where the
    planes hold fewer than 16 columns.
    """
    p, h, w = shape
    ny, nx = -(-(h + offset) // size), -(-(w + offset) // size)
    iy = (np.arange(h) + offset) // size
    ix = (np.arange(w) + offset) // size
    groups = max(1, min(p, -(-16 // (ny * nx))))
    pg = np.arange(p) * groups // p
    return (pg[:, None, None] * ny + iy[None, :, None]) * nx + ix[None, None, :]


def planes(a: np.ndarray, limit: int = MAX_SAMPLES) -> np.ndarray:
    planes = a.reshape(-1, a.shape[-2], a.shape[-1])
    keep = max(1, limit // planes[0].size)  # evenly spaced subset of planes
    return planes[np.unique(np.linspace(0, planes.shape[0] - 1, keep).round().astype(int))]


def spatial_points(a: np.ndarray) -> Points:
    """5x5 ring (binning), Immerkær kernel residual (noise) and the levels it measures.

    The residual ``r = Σ w_i x_i`` has variance ``Σ w_i² σ_i²`` and third cumulant
    ``Σ w_i³ κ3_i``, both linear in the pixels' means: so its variance is that of the
    ``w²``-weighted mean level and its skew that of the ``w³``-weighted one, exactly, whatever
    the structure (a 3x3 box mean sits above that level on the flanks of blobs, by ~10 %).
    """
    stack = planes(a)
    x = stack.astype(np.float64)
    c = x[:, 1:-1, 1:-1]  # centre, 4 edge neighbours, 4 corners
    cross = x[:, :-2, 1:-1] + x[:, 2:, 1:-1] + x[:, 1:-1, :-2] + x[:, 1:-1, 2:]
    corners = x[:, :-2, :-2] + x[:, :-2, 2:] + x[:, 2:, :-2] + x[:, 2:, 2:]
    resid = ((4.0 * c - 2.0 * cross + corners) / 6.0)[:, 1:-1, 1:-1]  # Σw² = 1, Σw³ = 1/6
    lev2 = ((16.0 * c + 4.0 * cross + corners) / 36.0)[:, 1:-1, 1:-1]  # weights w²
    lev3 = ((64.0 * c - 8.0 * cross + corners) / 36.0)[:, 1:-1, 1:-1]  # weights w³ / Σw³
    box3 = (c + cross + corners)[:, 1:-1, 1:-1]
    ring = (_box_sum(x, 2) - box3) / 16.0
    ok = _box_sum(saturation_mask(stack), 2) == 0
    tile = _tiles(ring.shape, _TILE, 2)
    return Points(ring[ok], lev2[ok], lev3[ok], resid[ok] ** 2, resid[ok] ** 3, tile[ok],
                   1.0 / 6.0, 9, "spatial", 6.0, trunc=0.99893,  # clipped at 4 σ
                   texture=_ring_texture(x, ring)[ok])


def _ring_texture(x: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Variance (ADU², 13 dof) of the 16 ring pixels about their best plane: structure the
    kernel cannot cancel shows here first. The ring is disjoint from the residual's 3x3, so
    selecting pixels by it leaves the residual's statistics alone."""
    h, w = ring.shape[1:]
    s2 = np.zeros(ring.shape)
    sx = np.zeros(ring.shape)
    sy = np.zeros(ring.shape)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            if max(abs(dy), abs(dx)) < 2:
                continue
            v = x[:, 2 + dy:2 + dy + h, 2 + dx:2 + dx + w]
            s2 += v * v
            sx += dx * v
            sy += dy * v
    return np.maximum(s2 - 16.0 * ring**2 - (sx * sx + sy * sy) / 44.0, 0.0) / 13.0


def temporal_points(a: np.ndarray, time_axis: int) -> Points:
    """Per-pixel temporal mean, variance and k3, binned by the 8 neighbours' mean."""
    a = np.moveaxis(a, time_axis, 0)
    t = a.shape[0]
    a = a.reshape(t, -1, *a.shape[-2:]) if a.ndim >= 3 else a.reshape(t, 1, 1, -1)
    per = max(1, MAX_SAMPLES // max(1, t * a.shape[-1] * a.shape[-2]))
    a = a[:, np.unique(np.linspace(0, a.shape[1] - 1, per).round().astype(int))]
    x = a.astype(np.float64)
    mean = x.mean(axis=0)
    d = x - mean
    # successive differences: slow changes of the scene (bleaching, drift) do not count
    var = (np.diff(x, axis=0) ** 2).sum(axis=0) / (2 * (t - 1))
    k3 = (d**3).sum(axis=0) * t / ((t - 1) * (t - 2)) if t >= 3 else np.zeros_like(mean)
    kappa, k_var = (1.0, 6.0 * t / ((t - 1) * (t - 2))) if t >= 3 else (0.0, 1.0)
    ok = ~saturation_mask(a).any(axis=0)
    if min(mean.shape[-2:]) >= 3:
        own = mean[:, 1:-1, 1:-1]
        level = (_box_sum(mean, 1) - own) / 8.0
        ok3 = _box_sum((~ok).astype(np.float64), 1) == 0
        tile = _tiles(own.shape, _TTILE, 1)
        return Points(level[ok3], own[ok3], own[ok3], var[:, 1:-1, 1:-1][ok3],
                       k3[:, 1:-1, 1:-1][ok3], tile[ok3], kappa, t, "temporal", k_var)
    tile = (np.arange(mean.size) // (_TTILE * _TTILE)).reshape(mean.shape)
    return Points(mean[ok], mean[ok], mean[ok], var[ok], k3[ok], tile[ok], kappa, t,
                   "temporal", k_var)


def _robust_sigma(r: np.ndarray) -> float:
    """Std of zero-mean residuals, ignoring outliers beyond 4 robust sigma."""
    s = 1.4826 * np.median(np.abs(r))
    for _ in range(2):
        rr = r[np.abs(r) < 4 * s] if s > 0 else r
        s = math.sqrt(np.mean(rr * rr) / 0.99893)  # truncated-Gaussian correction at 4 sigma
    return s


def bin_levels(level: np.ndarray, nbins: int, min_count: int) -> np.ndarray:
    """Bin label of each pixel (-1: none): quantile and linear bins, sparse ones merged up."""
    lo, hi = np.percentile(level, [0.05, 99.95])
    labels = np.full(level.size, -1, np.int64)
    if not hi > lo:
        return labels  # no brightness variation
    quantiles = np.percentile(level, np.linspace(0.05, 99.95, nbins // 2 + 1))
    edges = np.unique(np.concatenate([quantiles, np.linspace(lo, hi, nbins // 2 + 1)]))
    idx = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, len(edges) - 2)
    idx[(level < lo) | (level > hi)] = -1
    counts = np.bincount(idx[idx >= 0], minlength=len(edges) - 1)
    new, label, run = np.full(len(counts), -1), 0, 0
    for i, n in enumerate(counts):  # merge sparse bins with the next; a sparse tail is dropped
        new[i] = label
        run += n
        if run >= min_count:
            label, run = label + 1, 0
    new[new == label] = -1 if run else label
    labels[idx >= 0] = new[idx[idx >= 0]]
    return labels


def bin_sums(p: Points, labels: np.ndarray, line: tuple[float, float] | None = None
              ) -> np.ndarray:
    """Per-tile, per-bin sums (7, tiles, bins): n, Σlevel, n_v, Σv, n_k, Σk (clipped),
    Σlevel3.

    Spatial residuals are clipped at 4 robust σ of their bin, or, given a first ``line``
    (slope, intercept, floor), at 6 (variance) and 7 (skew) σ of the noise the line predicts
    at each pixel's binning level: a bin mixes pixels of different noise (a peak and a flat
    region can share a ring level), and a bin-wide σ clips the noisier ones short. The binning
    level is independent of the residual, so the clipping is symmetric (a level correlated
    with it, like the pixel's own, would skew what is kept).
    """
    nb = int(labels.max()) + 1
    sel = labels >= 0
    if p.method == "spatial" and line is not None:
        pred = np.maximum(line[0] * p.level + line[1], line[2]) + p.rounding
        sel &= p.texture < _TEXTURE * pred  # smooth neighbourhoods only
    lab, v, k = labels[sel], p.v[sel], p.k[sel]
    keep_v, keep_k = np.ones(lab.size, bool), np.ones(lab.size, bool)
    if p.method == "spatial" and line is not None:
        keep_v, keep_k = v < 36.0 * pred[sel], v < 49.0 * pred[sel]
    for b in range(nb) if p.method != "spatial" or line is None else ():
        i = np.flatnonzero(lab == b)
        if p.method == "spatial":  # residuals: variance within 4 σ, skew within 6 σ
            s = _robust_sigma(np.sqrt(v[i]))  # |residual|
            keep_v[i] = v[i] < (4 * s) ** 2
            keep_k[i] = v[i] < (6 * s) ** 2
        else:  # temporal variances above 3x the 99.9 % chi² quantile: a changing scene
            dof = p.frames - 1
            wh = 2 / (9 * dof)  # Wilson-Hilferty: chi2_k/k ~ (1 - wh + z·sqrt(wh))³
            lim = 3 * np.median(v[i]) * (1 - wh + 3.09 * math.sqrt(wh)) ** 3 / (1 - wh) ** 3
            keep_v[i] = keep_k[i] = v[i] <= lim
    _, tile = np.unique(p.tile[sel], return_inverse=True)
    nt = int(tile.max()) + 1
    key = tile * nb + lab

    def s(w=None, m=None):
        return np.bincount(key if m is None else key[m], weights=w, minlength=nt * nb
                           ).reshape(nt, nb)

    return np.stack([s(), s(p.xlev[sel]), s(m=keep_v), s(v[keep_v], keep_v), s(m=keep_k),
                     s(k[keep_k], keep_k), s(p.xlev3[sel])])


def _fit(m: np.ndarray, v: np.ndarray, n: np.ndarray, gain: float | None):
    """Weighted Tukey-IRLS line v = s·m + c; returns (s, c, r2)."""
    rel = np.sqrt(2.0 / n + 0.02**2)  # relative error of a bin: sampling + 2% model error
    pred, robust = v.copy(), np.ones_like(v)
    s = c = 0.0
    for _ in range(20):
        w = robust / (pred * rel) ** 2
        mw, vw = np.average(m, weights=w), np.average(v, weights=w)
        s = gain if gain is not None else (
            (w * (m - mw) * (v - vw)).sum() / max((w * (m - mw) ** 2).sum(), 1e-300))
        c = vw - s * mw
        pred = np.maximum(s * m + c, 1e-3 * np.abs(v).max())
        z = (v - pred) / (pred * rel)
        u = z / (4.685 * max(1.0, 1.4826 * np.median(np.abs(z))))
        robust = np.where(np.abs(u) < 1, (1 - u**2) ** 2, 0.0)
        if not robust.sum() > 0:
            robust = np.ones_like(v)
    w0 = 1.0 / (pred * rel) ** 2
    ss_tot = (w0 * (v - np.average(v, weights=w0)) ** 2).sum()
    r2 = 1.0 - (w0 * (v - s * m - c) ** 2).sum() / ss_tot if ss_tot > 0 else 0.0
    return float(s), float(c), float(r2)


def _skew_offset(m, v, k, nk, g: float, kappa: float, k_var: float) -> float:
    """Offset where the skew line ``k = kappa·g²·(m − o)`` vanishes (weighted, robust)."""
    if not (kappa > 0 and g > 0):
        return math.nan
    a = kappa * g * g
    o_i = m - k / a
    var_i = k_var * np.maximum(v, 1e-12) ** 3 / np.maximum(nk, 1) / a**2
    w = np.where(nk > 0, 1.0 / var_i, 0.0)
    if not w.sum() > 0:
        return math.nan
    o = float(np.average(o_i, weights=w))
    for _ in range(5):  # Tukey on the standardised deviations
        z = (o_i - o) * np.sqrt(w) / 4.685
        rw = w * np.where(np.abs(z) < 1, (1 - z**2) ** 2, 0.0)
        if not rw.sum() > 0:
            break
        o = float(np.average(o_i, weights=rw))
    return o


@dataclass
class Bins:
    m: np.ndarray
    v: np.ndarray
    n: np.ndarray
    n_eff: np.ndarray
    k: np.ndarray
    nk: np.ndarray
    m3: np.ndarray


def bins(sums: np.ndarray, p: Points) -> Bins:
    """Bin statistics from (summed) per-tile sums."""
    n, sl, nv, sv, nk, sk, sl3 = sums
    with np.errstate(invalid="ignore", divide="ignore"):
        m, m3 = sl / n, sl3 / n
        v = sv / nv / p.trunc - p.rounding
        k = np.where(nk > 0, sk / np.maximum(nk, 1), 0.0)
    n_eff = nv * (1.0 if p.method == "spatial" else (p.frames - 1) / 2.0)
    return Bins(m, v, n, n_eff, k, nk, m3)


def estimate_once(b: Bins, p: Points, gain, offset, read_noise):
    """(g, c, r2, o_skew, dark level) of one set of bins."""
    ok = (b.n >= 20) & np.isfinite(b.v) & (b.n_eff > 0)
    m, v = b.m[ok], b.v[ok]
    if m.size >= 3:
        s, c, r2 = _fit(m, v, b.n_eff[ok], gain)
    else:
        s, c, r2 = float(gain or 1.0), float(np.median(v - (gain or 1.0) * m)), 0.0
    o_skew = _skew_offset(b.m3[ok], v, b.k[ok], b.nk[ok], s, p.kappa, p.k_var)
    return s, c, r2, o_skew, float(m[0]) if m.size else math.nan


# ------------------------------------------------------------------ lower noise envelope
_CHI1_MEDIAN = 0.454936  # median of chi²(1): a squared Gaussian residual


def _median_lcl(v: np.ndarray, z: float, n_eff: float) -> float:
    """Lower confidence limit (one-sided, ``z``) of the median of ``v``: the order statistic
    ``n/2 − z·sqrt(n_eff)/2·n/n_eff`` (distribution-free; ``n_eff`` < n where the values
    correlate). A median ignores hot pixels and outliers up to half the bin."""
    n = v.size
    k = int(math.floor(n / 2.0 - z * math.sqrt(n_eff) / 2.0 * n / max(n_eff, 1.0)))
    return float(np.partition(v, max(k, 0))[max(k, 0)])


def _envelope_bins(level, xlev, v, scale: float, z: float, n_eff_per: float, nbins: int = 32,
                   min_count: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(levels, lower bounds of the noise variance): per quantile bin of ``level``, the mean
    of ``xlev`` and the lower confidence limit of the median of ``v`` divided by ``scale``
    (the median of one ``v`` of unit variance)."""
    if level.size < min_count:
        return np.zeros(0), np.zeros(0)
    nb = max(1, min(nbins, level.size // min_count))
    edges = np.unique(np.percentile(level, np.linspace(0, 100, nb + 1)))
    if edges.size < 2:
        edges = np.array([level.min(), level.max() + 1.0])
    idx = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, edges.size - 2)
    order = np.argsort(idx, kind="stable")
    starts = np.searchsorted(idx[order], np.arange(edges.size))
    ms, ls = [], []
    for b in range(edges.size - 1):
        sel = order[starts[b]:starts[b + 1]]
        if sel.size < 20:
            continue
        ms.append(float(np.mean(xlev[sel])))
        ls.append(_median_lcl(v[sel], z, sel.size * n_eff_per) / scale)
    return np.array(ms), np.array(ls)


def spatial_envelope(p: Points, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Lower envelope from kernel residuals: robust (median) variance per ring-level bin, at
    the ``w²``-weighted level. Structure adds to the residual, so this bounds the noise only
    where the scene is smooth; hot pixels cannot inflate a median."""
    # neighbouring residuals share pixels: ~1/9 of the pixels are independent
    return _envelope_bins(p.level, p.xlev, p.v, _CHI1_MEDIAN, z, 1.0 / 9.0)


def temporal_envelope(a: np.ndarray, time_axis: int, z: float
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Lower envelope from pixel time series, binned by each pixel's OWN level in one half of
    the frames and measured (mean, successive-difference variance) in the other half: the
    binning is independent of the measured noise (no selection bias), and it needs no spatial
    smoothness of the scene (a sparse, pixel-to-pixel varying scene bins fine). Robust: the
    median variance of a bin (hot / telegraph pixels cannot inflate it), at its lower
    confidence limit, over the median of the statistic's distribution."""
    a = np.moveaxis(a, time_axis, 0)
    t = a.shape[0]
    if t < 4:
        return np.zeros(0), np.zeros(0)
    a = a.reshape(t, -1)
    per = max(1, MAX_SAMPLES // max(1, t))
    if a.shape[1] > per:
        a = a[:, np.unique(np.linspace(0, a.shape[1] - 1, per).round().astype(int))]
    ok = ~saturation_mask(a).any(axis=0)
    x = a[:, ok].astype(np.float64)
    levels, xlevs, vs = [], [], []
    for bin_half, meas_half in ((x[0::2], x[1::2]), (x[1::2], x[0::2])):
        n = meas_half.shape[0]
        levels.append(bin_half.mean(axis=0))
        xlevs.append(meas_half.mean(axis=0))
        vs.append((np.diff(meas_half, axis=0) ** 2).sum(axis=0) / (2 * (n - 1)))
    n = x[1::2].shape[0]
    dof = 2.0 * (n - 1) ** 2 / (3 * n - 4)  # Satterthwaite dof of successive differences
    median = (1 - 2 / (9 * dof)) ** 3  # Wilson-Hilferty: median of chi²(dof)/dof
    # the two halves measure each pixel twice: count half of the pairs as independent
    return _envelope_bins(np.concatenate(levels), np.concatenate(xlevs), np.concatenate(vs),
                          median, z, 0.5)
