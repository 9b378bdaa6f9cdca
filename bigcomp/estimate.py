"""Estimate the camera model (gain, offset, read noise) from the data by photon transfer.

The noise variance of a linear camera is ``var = g·(mean − o) + g²·σ_r² = g·mean + c``: a line
through (mean, variance) points has the gain as slope. Without a time axis the noise is the
residual of the kernel ``[1,−2,1] ⊗ [1,−2,1]`` on each plane (Immerkær 1996; it cancels
structure linear in x or y), the level the 3×3 box mean, and pixels are binned by the 5×5 ring
around it (independent of both: no regression dilution). With a time axis the points are the
per-pixel temporal mean and variance, binned by the 8 neighbours' mean. The line is fitted to
robust per-bin variances by weighted Tukey-IRLS.

Only ``c = g²·σ_r² − g·o`` is identifiable, not ``o``. Without ``offset=`` or ``read_noise=`` the
offset is the **dark level** (1st percentile of the local means, noise-corrected), assuming part
of the field got no light; otherwise ``o`` and ``σ_r²`` come out too high by ``Δo`` and ``Δo/g``,
which leaves the variance-stabilising transform above the offset (it depends on ``o − g·σ_r²``)
unchanged.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError, UnsupportedDataError
from .noise import CameraModel

__all__ = ["PhotonTransfer", "PoorFitWarning", "estimate_camera", "photon_transfer"]

_MAX_SAMPLES = 2_000_000
_HOWTO = ("pass the camera parameters explicitly, e.g. CameraModel(gain=2.0, offset=100.0, "
          "read_noise=1.6) from the datasheet or a dark/flat calibration, or fix some of them: "
          "estimate_camera(data, gain=..., offset=...)")


class PoorFitWarning(UserWarning):
    """The photon-transfer fit is unreliable; the estimated camera model may be wrong."""


@dataclass(frozen=True)
class PhotonTransfer:
    """Result of :func:`photon_transfer`.

    Attributes
    ----------
    camera : CameraModel
        The estimated (or fixed) camera model.
    slope, intercept : float
        The fitted line ``variance = slope · mean + intercept`` (ADU², ADU).
    means, variances, counts : ndarray
        The binned points (ADU, ADU²) and the pixels (or pixel time series) in each bin.
    r2, dark_level : float
        Weighted coefficient of determination of the line (1 = perfect); level of unlit pixels.
    method : {"spatial", "temporal"}
    problems : tuple of str
        Why the fit is poor; empty for a good fit.
    """

    camera: CameraModel
    slope: float
    intercept: float
    means: np.ndarray
    variances: np.ndarray
    counts: np.ndarray
    r2: float
    dark_level: float
    method: str
    problems: tuple[str, ...] = ()


def _check_input(data, time_axis: int | None) -> np.ndarray:
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


def _saturation_mask(a: np.ndarray) -> np.ndarray:
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


def _spatial_points(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(bin level, level, noise, pixels in level): 5x5 ring, 3x3 box mean, kernel residual."""
    planes = a.reshape(-1, a.shape[-2], a.shape[-1])
    keep = max(1, _MAX_SAMPLES // planes[0].size)  # evenly spaced subset of planes
    planes = planes[np.unique(np.linspace(0, planes.shape[0] - 1, keep).round().astype(int))]
    x = planes.astype(np.float64)
    c = x[:, 1:-1, 1:-1]  # centre, 4 edge neighbours, 4 corners
    cross = x[:, :-2, 1:-1] + x[:, 2:, 1:-1] + x[:, 1:-1, :-2] + x[:, 1:-1, 2:]
    corners = x[:, :-2, :-2] + x[:, :-2, 2:] + x[:, 2:, :-2] + x[:, 2:, 2:]
    resid = ((4.0 * c - 2.0 * cross + corners) / 6.0)[:, 1:-1, 1:-1]  # sum of w² = 36
    box3 = (c + cross + corners)[:, 1:-1, 1:-1]
    ring = (_box_sum(x, 2) - box3) / 16.0
    ok = _box_sum(_saturation_mask(planes), 2) == 0
    return ring[ok], box3[ok] / 9.0, resid[ok], 9


def _temporal_points(a: np.ndarray, time_axis: int) -> tuple[np.ndarray, ...]:
    """(bin level, temporal mean, temporal variance, frames); binned by the 8 neighbours' mean."""
    a = np.moveaxis(a, time_axis, 0)
    x, t = a.astype(np.float64), a.shape[0]
    mean, var = x.mean(axis=0), x.var(axis=0, ddof=1)
    ok = ~_saturation_mask(a).any(axis=0)
    if x.ndim >= 3 and min(x.shape[-2:]) >= 3:
        shp = (-1, *x.shape[-2:])
        m3, v3, ok3 = mean.reshape(shp), var.reshape(shp), ok.reshape(shp)
        own = m3[:, 1:-1, 1:-1]
        level = (_box_sum(m3, 1) - own) / 8.0
        ok3 = _box_sum(~ok3, 1) == 0
        return level[ok3], own[ok3], v3[:, 1:-1, 1:-1][ok3], t
    return mean[ok], mean[ok], var[ok], t


def _robust_var(r: np.ndarray) -> float:
    """Variance of zero-mean residuals, ignoring outliers beyond 4 robust sigma."""
    s = 1.4826 * np.median(np.abs(r))
    for _ in range(2):
        r = r[np.abs(r) < 4 * s] if s > 0 else r
        s = math.sqrt(np.mean(r * r) / 0.99893)  # truncated-Gaussian correction at 4 sigma
    return s * s


def _trimmed_var(tv: np.ndarray, k: int) -> float:
    """Mean of sample variances (k dof) below 3x the 99.9% chi2_k quantile (at the median)."""
    wh = 2 / (9 * k)  # Wilson-Hilferty: chi2_k/k ~ (1 - wh + z·sqrt(wh))³
    lim = 3 * np.median(tv) * (1 - wh + 3.09 * math.sqrt(wh)) ** 3 / (1 - wh) ** 3
    return float(tv[tv <= lim].mean())


def _bin(level: np.ndarray, nbins: int, min_count: int) -> list[np.ndarray]:
    """Index groups of pixels by level: quantile and linear bins, sparse ones merged upwards."""
    lo, hi = np.percentile(level, [0.05, 99.95])
    if not hi > lo:
        return []  # no brightness variation
    quantiles = np.percentile(level, np.linspace(0.05, 99.95, nbins // 2 + 1))
    edges = np.unique(np.concatenate([quantiles, np.linspace(lo, hi, nbins // 2 + 1)]))
    idx = np.clip(np.searchsorted(edges, level, side="right") - 1, 0, len(edges) - 2)
    idx[(level < lo) | (level > hi)] = -1
    order = np.argsort(idx, kind="stable")
    bounds = np.searchsorted(idx[order], np.arange(-1, len(edges)))
    groups, start = [], bounds[1]
    for end in bounds[2:]:
        if end - start >= min_count:
            groups.append(order[start:end])
            start = end
    return groups


def _fit(m: np.ndarray, v: np.ndarray, n: np.ndarray, gain: float | None):
    """Weighted Tukey-IRLS line v = s·m + c; returns (s, c, r2)."""
    rel = np.sqrt(2.0 / n + 0.02**2)  # relative error of a bin: sampling + 2% model error
    pred, robust = v.copy(), np.ones_like(v)
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
    w0 = 1.0 / (pred * rel) ** 2
    ss_tot = (w0 * (v - np.average(v, weights=w0)) ** 2).sum()
    r2 = 1.0 - (w0 * (v - s * m - c) ** 2).sum() / ss_tot if ss_tot > 0 else 0.0
    return float(s), float(c), float(r2)


def photon_transfer(data, *, time_axis: int | None = None, gain: float | None = None,
                    offset: float | None = None, read_noise: float | None = None,
                    nbins: int = 48, min_r2: float = 0.9) -> PhotonTransfer:
    """Fit the photon-transfer line (noise variance vs mean) and derive a camera model.

    Parameters
    ----------
    data : array_like
        Raw camera counts (integer or real); the last two axes are the image plane.
    time_axis : int, optional
        Axis along which frames repeat a static scene: use per-pixel temporal statistics.
    gain, offset, read_noise : float, optional
        Known parameters, kept fixed (ADU/e⁻, ADU, e⁻).
    nbins : int
        Number of level bins (before sparse ones are merged).
    min_r2 : float
        Fits with a lower weighted R² are poor.

    Returns
    -------
    PhotonTransfer
        Its ``problems`` say why a fit is poor (:func:`estimate_camera` warns with them).

    Examples
    --------
    >>> from bigcomp.datasets import light_sheet
    >>> pt = photon_transfer(light_sheet((4, 128, 128), seed=1).data)
    >>> bool(1.6 < pt.camera.gain < 2.4), pt.method
    (True, 'spatial')
    """
    a = _check_input(data, time_axis)
    for name, val in (("gain", gain), ("offset", offset), ("read_noise", read_noise)):
        if val is not None:
            CameraModel(**{name: val})  # raises ParameterError for a bad value
    method = "spatial" if time_axis is None else "temporal"
    level, xlev, noise, nt = _spatial_points(a) if time_axis is None else _temporal_points(
        a, int(time_axis))
    groups = _bin(level, nbins, max(20, min(200, level.size // (4 * nbins)))) if (
        level.size >= 50) else []
    if not groups:
        raise UnsupportedDataError(f"only {level.size} usable (unsaturated) pixels" if level.size
                                   < 50 else f"the data has no brightness variation: {_HOWTO}")
    m = np.array([xlev[g].mean() for g in groups])
    v = np.array([_robust_var(noise[g]) if method == "spatial" else
                  _trimmed_var(noise[g], nt - 1) for g in groups])
    n = np.array([g.size for g in groups], dtype=np.float64)
    n_eff = n * (1.0 if method == "spatial" else nt - 1) / 2.0  # neighbours/frames correlate
    problems: list[str] = []
    s, c, r2 = _fit(m, v, n_eff, gain) if m.size >= 3 else (0.0, 0.0, 0.0)
    if m.size < 3:
        problems.append(f"only {m.size} brightness levels with enough pixels")
    elif r2 < min_r2:
        problems.append(f"noise variance does not follow the mean linearly (R² = {r2:.2f})")
    if (gain is None and not s > 0) or m.size < 3:  # fall back to gain 1 (or the given one)
        problems += [f"fitted gain {s:.3g} <= 0; using gain = 1"] if m.size >= 3 else []
        s, c = gain or 1.0, float(np.median(v - (gain or 1.0) * m))
    g = float(gain if gain is not None else s)
    x0 = -c / g  # level of zero variance: o - g·σ_r²
    dark = float(np.percentile(xlev, 1.0))  # ~2.33 noise sigma below the mean dark level
    dark += 2.326 * math.sqrt(max(g * dark + c, 0.0) / nt)
    o = float(offset) if offset is not None else (
        x0 + g * float(read_noise) ** 2 if read_noise is not None else max(dark, x0))
    rn2 = (c + g * o) / g**2
    if read_noise is None and rn2 < 0:
        problems.append(f"offset {o:.4g} is below the zero-variance level {x0:.4g}")
    rn = float(read_noise) if read_noise is not None else math.sqrt(max(rn2, 0.0))
    return PhotonTransfer(CameraModel(g, o, rn), float(s), float(c), m, v, n.astype(np.int64),
                          float(r2), dark, method, tuple(problems))


def estimate_camera(data, *, time_axis: int | None = None, gain: float | None = None,
                    offset: float | None = None, read_noise: float | None = None,
                    min_r2: float = 0.9) -> CameraModel:
    """Estimate the camera model of raw data by photon transfer.

    Parameters
    ----------
    data : array_like
        Raw camera counts; see :func:`photon_transfer`.
    time_axis, gain, offset, read_noise, min_r2
        See :func:`photon_transfer`. Without ``offset`` or ``read_noise`` the offset is the
        data's dark level (see the module notes).

    Returns
    -------
    CameraModel

    Warns
    -----
    PoorFitWarning
        The fit is unreliable; the message says how to pass the parameters instead.

    Examples
    --------
    >>> from bigcomp.datasets import light_sheet
    >>> cam = estimate_camera(light_sheet((4, 128, 128), gain=3.0, seed=2).data)
    >>> bool(2.5 < cam.gain < 3.5)
    True
    """
    pt = photon_transfer(data, time_axis=time_axis, gain=gain, offset=offset,
                         read_noise=read_noise, min_r2=min_r2)
    if pt.problems:
        warnings.warn(
            f"camera estimate is unreliable ({'; '.join(pt.problems)}): got gain="
            f"{pt.camera.gain:.4g}, offset={pt.camera.offset:.4g}, read_noise="
            f"{pt.camera.read_noise:.4g}. To avoid it, {_HOWTO}", PoorFitWarning, stacklevel=2)
    return pt.camera
