"""Estimate the camera model (gain, offset, read noise) from the data, with its uncertainty.

**Photon transfer.** The noise variance of a linear camera is ``var = g·(mean − o) + g²·σ_r²
= g·mean + c``: a line through (mean, variance) points has the gain as slope. Without a time
axis the noise is the residual of the kernel ``[1,−2,1] ⊗ [1,−2,1]`` on each plane (Immerkær
1996; it cancels structure up to quadratic in x and y), binned by the 5×5 ring around it
(disjoint from the kernel: no selection on the noise), smooth neighbourhoods only; with a time
axis the per-pixel temporal mean and variance (of successive differences), binned by the 8
neighbours' mean (:mod:`bigcomp._photon`). The line is fitted by weighted Tukey-IRLS.

**The offset.** The line only identifies ``x0 = o − g·σ_r²``, the level of zero variance. The
offset comes from the *third* cumulant: photon (Poisson) noise is skewed, read noise is not, so
``κ3 = g²·(mean − o)`` vanishes at the offset. The kernel residual has ``κ3/6`` (the sum of
its cubed weights), a temporal series ``κ3`` itself. Where the lowest level of the data is
consistent with no skew (a dark region: no photons), the offset is that level (precise);
otherwise the zero of the skew line (:attr:`CameraEstimate.offset_from` says which).

**Uncertainty.** A bootstrap over tiles (32×32-pixel columns through the planes; 16×16 pixel
time series): the per-bin sums of every tile are kept, tiles are redrawn with replacement and
the whole estimate (robust line, skew offset, dark level, offset rule) is repeated. It captures
what an analytic covariance of the line would miss: residuals correlate between neighbours and
planes, the fit is robust (non-linear), and offset and read noise are non-linear functions of
several fitted numbers.

**The conservative model.** Compressing with a model whose noise σ is *smaller* than the
camera's keeps the bound against the truth (finer steps). :attr:`CameraEstimate.conservative`
lies below the lower confidence band of the noise variance over the data's range (the chord of
that concave band), with the lowest plausible offset (so the lowest read noise); see
docs/camera-estimation.md.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import _photon as ph
from .errors import ParameterError, UnsupportedDataError
from .noise import CameraModel

__all__ = ["CameraEstimate", "PhotonTransfer", "PoorFitWarning", "estimate_camera",
           "photon_transfer"]

_N_BOOT = 100
_REL_READ_NOISE = 0.25  # relative uncertainty of the read noise above which we warn
_REL_GAIN = 0.05
_DIM = 2.0  # e⁻: a "dark" level the skew cannot tell from one this bright is not confirmed
_HOWTO = ("pass the camera parameters explicitly, e.g. CameraModel(gain=2.0, offset=100.0, "
          "read_noise=1.6) from the datasheet or a dark/flat calibration, or fix some of them: "
          "estimate_camera(data, gain=..., offset=...)")
_CALIBRATE = ("record dark frames (shutter closed) and calibrate the camera (`bigcomp "
              "calibrate`), or pass it: --gain G --offset O --read-noise R / camera=dict(...)")


class PoorFitWarning(UserWarning):
    """The camera estimate is unreliable or poorly determined; the model may be wrong."""


@dataclass(frozen=True)
class CameraEstimate(CameraModel):
    """A camera model estimated from data: the point estimate, its uncertainty and the
    conservative model to compress with.

    It *is* a :class:`~bigcomp.noise.CameraModel` (the point estimate), so it goes wherever
    one goes; :func:`bigcomp.compress` given one compresses with :attr:`conservative`.

    Attributes
    ----------
    gain, offset, read_noise : float
        Point estimate (ADU/e⁻, ADU, e⁻).
    gain_se, offset_se, read_noise_se : float
        Standard errors (bootstrap over tiles; 0 for a parameter that was given).
    conservative : CameraModel
        The model within the uncertainty whose noise σ is nowhere above the camera's over the
        data's range (at the stated confidence): compressing with it keeps every pixel within
        ``q/2`` of the *true* noise.
    method : str
        ``"spatial"``, ``"temporal"`` or ``"temporal+spatial"``.
    offset_from : str
        ``"dark level"`` (part of the data got no light), ``"skew"`` (zero of the third
        cumulant), ``"given"``, ``"read noise"`` (from a given read noise) or ``"upper bound"``
        (the lowest level; no skew information).
    confidence : float
        One-sided confidence of the conservative model's bounds.
    problems : tuple of str
        Why the fit is poor or parameters are poorly determined (empty: all well determined).

    Examples
    --------
    >>> est = CameraEstimate(2.0, 100.0, 1.6, gain_se=0.02, offset_se=0.5, read_noise_se=0.1)
    >>> est.summary()
    'gain 2.000 ± 0.020, offset 100.0 ± 0.5, read noise 1.60 ± 0.10'
    """

    gain_se: float = 0.0
    offset_se: float = 0.0
    read_noise_se: float = 0.0
    conservative: CameraModel | None = None
    method: str = "spatial"
    offset_from: str = "dark level"
    confidence: float = 0.975
    problems: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.conservative is None:
            object.__setattr__(self, "conservative", self.point)

    @property
    def point(self) -> CameraModel:
        """The point estimate as a plain :class:`CameraModel`."""
        return CameraModel(self.gain, self.offset, self.read_noise)

    def summary(self) -> str:
        """``"gain 2.01 ± 0.03, offset 100.2 ± 0.8, read noise 1.52 ± 0.20"``."""
        return ", ".join(f"{name} {_pm(v, se)}" for name, v, se in (
            ("gain", self.gain, self.gain_se), ("offset", self.offset, self.offset_se),
            ("read noise", self.read_noise, self.read_noise_se)))

    def to_record(self) -> dict:
        """JSON record for store metadata (:meth:`from_record` reads it back)."""
        return {**self.to_dict(), "gain_se": self.gain_se, "offset_se": self.offset_se,
                "read_noise_se": self.read_noise_se,
                "conservative": self.conservative.to_dict(), "method": self.method,
                "offset_from": self.offset_from, "confidence": self.confidence,
                "problems": list(self.problems)}

    @classmethod
    def from_record(cls, record: dict) -> CameraEstimate:
        """Inverse of :meth:`to_record`."""
        r = dict(record)
        r["conservative"] = CameraModel(**r["conservative"])
        r["problems"] = tuple(r.get("problems", ()))
        return cls(**r)


def _pm(value: float, se: float) -> str:
    """``value ± se``: se to 1 significant digit (2 where it starts with 1 or 2), the value
    to the same decimals."""
    if not se > 0 or not math.isfinite(se):
        return f"{value:.4g}"
    digits = 2 if f"{se:.1e}"[0] in "12" else 1
    decimals = max(0, digits - 1 - math.floor(math.log10(float(f"{se:.1e}"))))
    return f"{value:.{decimals}f} ± {se:.{decimals}f}"


@dataclass(frozen=True)
class PhotonTransfer:
    """Result of :func:`photon_transfer`.

    Attributes
    ----------
    camera : CameraEstimate
        The point estimate with its uncertainty and conservative model.
    slope, intercept : float
        The fitted line ``variance = slope · mean + intercept`` (ADU², ADU).
    means, variances, counts : ndarray
        The binned points (ADU, ADU²) and the pixels (or pixel time series) in each bin.
    r2, dark_level : float
        Weighted coefficient of determination of the line over all pixels (1 = perfect); mean
        level of the lowest bin (the offset where part of the data got no light, above it otherwise).
    method : {"spatial", "temporal"}
    problems : tuple of str
        Why the fit is poor; empty for a good fit.
    skews : ndarray
        Third cumulant of the noise in each bin (ADU³; ``g²·(mean − offset)``).
    uncertain : tuple of str
        Parameters that are poorly determined although the fit is good.
    data_range : tuple of float
        Pixel values the conservative model is valid over (ADU).
    envelope : (ndarray, ndarray)
        Lower envelope of the noise: levels (ADU) and lower confidence limits of the robust
        (median) noise variance there (ADU²); the conservative model stays below it.
    low : float
        The data's 1st percentile: the conservative model's offset is never above it.
    """

    camera: CameraEstimate
    slope: float
    intercept: float
    means: np.ndarray
    variances: np.ndarray
    counts: np.ndarray
    r2: float
    dark_level: float
    method: str
    problems: tuple[str, ...] = ()
    skews: np.ndarray = field(default_factory=lambda: np.zeros(0))
    uncertain: tuple[str, ...] = ()
    data_range: tuple[float, float] = (0.0, 0.0)
    envelope: tuple[np.ndarray, np.ndarray] = field(
        default_factory=lambda: (np.zeros(0), np.zeros(0)))
    low: float = 0.0


# ------------------------------------------------------------------------------ public API
def photon_transfer(data, *, time_axis: int | None = None, gain: float | None = None,
                    offset: float | None = None, read_noise: float | None = None,
                    nbins: int = 48, min_r2: float = 0.9, confidence: float = 0.975,
                    n_boot: int = _N_BOOT, seed: int = 0) -> PhotonTransfer:
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
    confidence : float
        One-sided confidence of each bound of the conservative model (``camera.conservative``).
    n_boot, seed : int
        Bootstrap replicates (over tiles) and their random seed.

    Returns
    -------
    PhotonTransfer
        Its ``problems`` say why a fit is poor and ``uncertain`` what is poorly determined
        (:func:`estimate_camera` warns with both).

    Examples
    --------
    >>> from bigcomp.datasets import light_sheet
    >>> pt = photon_transfer(light_sheet((4, 128, 128), seed=1).data)
    >>> bool(1.6 < pt.camera.gain < 2.4), pt.method
    (True, 'spatial')
    """
    a = ph.check_input(data, time_axis)
    for name, val in (("gain", gain), ("offset", offset), ("read_noise", read_noise)):
        if val is not None:
            CameraModel(**{name: val})  # raises ParameterError for a bad value
    if not 0.5 < confidence < 1:
        raise ParameterError(f"confidence must be in (0.5, 1), got {confidence!r}")
    p = ph.spatial_points(a) if time_axis is None else ph.temporal_points(a, int(time_axis))
    p.rounding = 1.0 / 12.0 if a.dtype.kind in "ui" else 0.0  # the model's noise is analogue
    labels = ph.bin_levels(p.level, nbins, max(20, min(200, p.level.size // (4 * nbins)))) if (
        p.level.size >= 50) else np.full(p.level.size, -1)
    if labels.size == 0 or labels.max() < 0:
        raise UnsupportedDataError(f"only {p.level.size} usable (unsaturated) pixels" if
                                   p.level.size < 50 else
                                   f"the data has no brightness variation: {_HOWTO}")
    sums = ph.bin_sums(p, labels)
    full = ph.bins(sums.sum(axis=1), p)
    g, c, r2, o_skew, dark = ph.estimate_once(full, p, gain, offset, read_noise)
    if p.method == "spatial" and g > 0 and full.m.size >= 3:
        # second pass: smooth neighbourhoods only, residuals clipped at the line's σ. The
        # linearity test (R²) stays the first pass's: all pixels, more levels, less scatter
        p.trunc = 1.0
        sums = ph.bin_sums(p, labels, (g, c, float(np.nanmin(full.v))))
        full = ph.bins(sums.sum(axis=1), p)
        g, c, _, o_skew, dark = ph.estimate_once(full, p, gain, offset, read_noise)
    problems: list[str] = []
    used = (full.n >= 20) & np.isfinite(full.v)  # the bins the fits use
    nlev = int(used.sum())
    if nlev < 3:
        problems.append(f"only {nlev} brightness levels with enough pixels")
    elif r2 < min_r2:
        problems.append(f"noise variance does not follow the mean linearly (R² = {r2:.2f})")
    if not g > 0:
        problems.append(f"fitted gain {g:.3g} <= 0; using gain = 1")
        g, c = 1.0, float(np.nanmedian(full.v - full.m))
    # bootstrap: redraw tiles with replacement and repeat the whole estimate
    rng = np.random.default_rng(seed)
    ntiles = sums.shape[1]
    reps = []
    if ntiles >= 8 and n_boot > 0:
        counts = rng.multinomial(ntiles, np.full(ntiles, 1.0 / ntiles), size=n_boot)
        reps = [ph.estimate_once(ph.bins(np.einsum("t,stb->sb", w, sums), p), p, gain, offset,
                                 read_noise) for w in counts]
    reps_a = np.array([r[:2] + r[3:] for r in reps]) if reps else np.zeros((0, 4))
    z = statistics.NormalDist().inv_cdf(confidence)
    lo, hi, low = _data_range(a, time_axis)
    env_m, env_l = (ph.spatial_envelope(p, z) if time_axis is None else
                    ph.temporal_envelope(a, int(time_axis), z))
    env = (env_m, env_l - p.rounding)  # rounding adds to the measured variance, not the noise
    est, uncertain = _assemble(g, c, o_skew, dark, reps_a, p, gain, offset, read_noise, z,
                               (lo, hi), confidence, problems, env, low)
    return PhotonTransfer(est, float(g), float(c), full.m[used], full.v[used],
                          full.n[used].astype(np.int64), float(r2), dark, p.method,
                          tuple(problems), full.k[used] / (p.kappa or 1.0), tuple(uncertain),
                          (lo, hi), env, low)


def _data_range(a: np.ndarray, time_axis) -> tuple[float, float, float]:
    """(0.01 %, max, 1 %) of the unsaturated pixel values of a sample."""
    flat = ph.planes(a, 4 * ph.MAX_SAMPLES).ravel() if a.ndim >= 2 else a.ravel()
    flat = flat[~ph.saturation_mask(flat)] if flat.size else flat
    if flat.size == 0:
        return 0.0, 0.0, 0.0
    lo, low = np.percentile(flat, [0.01, 1.0])
    return float(lo), float(flat.max()), float(low)


def _offset_rule(o_skew, dark, x0, se_skew, se_dark, offset, read_noise, g):
    """(offset, where from): given > from read noise > dark level if the skew agrees > skew."""
    if offset is not None:
        return float(offset), "given"
    if read_noise is not None:
        return x0 + g * float(read_noise) ** 2, "read noise"
    if not math.isfinite(o_skew):
        return dark, "upper bound"
    if o_skew >= dark - math.hypot(se_skew, se_dark):
        return dark, "dark level"  # no skew at the lowest level: it got no light
    return o_skew, "skew"


def _spread(values: np.ndarray) -> float:
    """Standard error from bootstrap replicates: half the 16-84 % range (a replicate with an
    almost flat line can put x0 anywhere; a standard deviation would follow it)."""
    v = values[np.isfinite(values)]
    if v.size < 3:
        return math.nan
    lo, hi = np.percentile(v, [15.87, 84.13])
    return float(hi - lo) / 2.0


def _assemble(g, c, o_skew, dark, reps, p, gain, offset, read_noise, z, rng_xy, confidence,
              problems, env=(np.zeros(0), np.zeros(0)), low=-math.inf):
    """Point estimate, standard errors, conservative model and uncertainty notes."""

    def sd(col: int) -> float:  # nan without replicates (fewer than 8 tiles): unknown
        return _spread(reps[:, col]) if len(reps) else math.nan

    x0 = -c / g
    se_g = 0.0 if gain is not None else sd(0)
    se_skew, se_dark = sd(2), sd(3)
    o, src = _offset_rule(o_skew, dark, x0, se_skew if math.isfinite(se_skew) else math.inf,
                          se_dark if math.isfinite(se_dark) else 0.0, offset, read_noise, g)
    rn = float(read_noise) if read_noise is not None else math.sqrt(max((o - x0) / g, 0.0))
    # the same rule on every replicate gives the offset's and the read noise's spread
    o_b, rn_b = [], []
    for gb, cb, osk, dk in reps:
        if not gb > 0:
            continue
        x0b = -cb / gb
        ob = {"given": o, "read noise": x0b + gb * rn**2, "skew": osk}.get(src, dk)
        if not math.isfinite(ob):
            continue
        o_b.append(ob)
        rn_b.append(math.sqrt(max((ob - x0b) / gb, 0.0)))
    se_o = 0.0 if offset is not None else _spread(np.array(o_b))
    se_rn = 0.0 if read_noise is not None else _spread(np.array(rn_b))
    if src in ("dark level", "skew") and o < x0:  # read noise 0: the line's zero is the offset
        if not o >= x0 - 2.0 * se_o:
            problems.append(f"offset {o:.4g} is below the zero-variance level {x0:.4g}")
        o = x0
    if src == "dark level" and math.isfinite(se_skew):
        # the skew tells a dark region from a dim one only to within its own precision
        se_o = math.hypot(se_o, se_skew)
        se_rn = math.hypot(se_rn, se_skew / (2 * g * max(rn, 0.1)))
    if src == "upper bound":
        se_o = max(se_o, abs(dark - x0))  # only o <= dark level is known
        se_rn = max(se_rn, rn)
    # conservative model: chord of the lower band of the variance line over the data range
    xa, xb = rng_xy
    if xb <= xa:
        xb = xa + 1.0
    band = [_spread(reps[:, 0] * x + reps[:, 1]) if len(reps) > 2 else 0.0 for x in (xa, xb)]
    band = [b if math.isfinite(b) else 0.0 for b in band]
    la, lb = (g * x + c - z * s for x, s in zip((xa, xb), band, strict=True))
    g_lo = g - z * se_g if math.isfinite(se_g) else g
    lows = [o - z * se_o] if math.isfinite(se_o) else [x0]
    if src in ("dark level", "skew") and math.isfinite(o_skew) and math.isfinite(se_skew):
        lows.append(o_skew - z * se_skew)  # a dim region can pass for a dark one
    if problems:  # the fit (and its band) means nothing: the floor under the measured noise
        # kernel residuals of a poor fit hold structure: they bound nothing from below
        cons = _floor_model(*(env if p.method == "temporal" else _NO_ENVELOPE), xa, xb)
    else:
        cons = _chord_model(xa, xb, la, lb, g_lo,
                            min(lows) if offset is None else float(offset), read_noise)
        if offset is None and read_noise is None:
            cons = _cap_offset(cons, low)
        if p.method == "temporal":  # the robust per-pixel noise is a hard ceiling
            cons = _cap_model(cons, *env)
    est = CameraEstimate(g, o, rn, gain_se=se_g, offset_se=se_o, read_noise_se=se_rn,
                         conservative=cons, method=p.method, offset_from=src,
                         confidence=confidence, problems=tuple(problems))
    uncertain = []
    dim = 2.0 * se_skew / g if math.isfinite(se_skew) else math.inf  # e⁻ that pass for dark
    if read_noise is None and offset is None and (
            not se_rn <= _REL_READ_NOISE * max(rn, 0.3) or src == "upper bound"
            or (src == "dark level" and not dim <= _DIM)):
        why = (f"the lowest level could be {dim:.2g} e⁻ above the offset: no dark region, or "
               "too little of one" if src == "dark level" else
               "no dark region and too little photon-noise skew to place the offset")
        uncertain.append(
            f"the offset and read noise are poorly determined (read noise {_pm(rn, se_rn)} e⁻, "
            f"offset {_pm(o, se_o)} ADU from the {src}; {why})")
    if gain is None and not (se_g <= _REL_GAIN * g):
        uncertain.append(f"the gain is poorly determined ({_pm(g, se_g)} ADU/e⁻)")
    return est, uncertain


def _chord_model(xa, xb, la, lb, g_lo, o_lo, read_noise) -> CameraModel:
    """Camera model whose noise variance is <= the line through (xa, la), (xb, lb) on [xa, xb]
    and whose transform's ``3/8·g²`` term is <= the true one (gain >= ``g_lo``)."""
    gc = (lb - la) / (xb - xa)
    if not gc > 0:  # no usable slope: the flattest admissible line
        gc = max(1e-6, 1e-3 * abs(g_lo))
    cc = min(la - gc * xa, lb - gc * xb)
    cc -= 0.375 * max(0.0, gc * gc - max(g_lo, 0.0) ** 2)
    x0c = -cc / gc
    if read_noise is not None:
        oc = x0c + gc * float(read_noise) ** 2
    else:
        oc = max(o_lo, x0c) if math.isfinite(o_lo) else x0c
    return CameraModel(gc, oc, math.sqrt(max((oc - x0c) / gc, 0.0)))


_NO_ENVELOPE = (np.zeros(0), np.zeros(0))
_FLOOR_VAR = 0.25  # ADU²: σ 0.5 ADU, every integer its own bin at q <= 1 (lossless)


def _model_var(m: CameraModel, x) -> np.ndarray:
    """Noise variance the model's transform assumes at ``x``: ``1/forward'(x)²`` (ADU²)."""
    x = np.asarray(x, np.float64)
    c = 0.375 + m.read_noise**2
    return m.gain * np.maximum(x - m.offset, 0.0) + m.gain**2 * c


def _cap_model(m: CameraModel, env_m: np.ndarray, env_l: np.ndarray) -> CameraModel:
    """``m`` with its gain divided by ``r >= 1`` so that its variance is at or below the lower
    envelope at every measured level: ``(g/r)·(x − o) + (g/r)²·c <= (g·(x − o) + g²·c)/r``,
    so dividing the gain by r lowers the variance by at least r everywhere."""
    if env_m.size == 0:
        return m
    r = float(np.max(_model_var(m, env_m) / np.maximum(env_l, 1e-12)))
    if not r > 1.0:
        return m
    return CameraModel(max(m.gain / r, 1e-6), m.offset, m.read_noise)


def _cap_offset(m: CameraModel, low: float) -> CameraModel:
    """The offset no higher than the data's 1st percentile (a smaller read noise with it; the
    line above ``x0`` is kept, so the variance only drops)."""
    if not (math.isfinite(low) and m.offset > low):
        return m
    x0 = m.offset - m.gain * m.read_noise**2
    if low >= x0:
        return CameraModel(m.gain, low, math.sqrt((low - x0) / m.gain))
    return m  # below the line's zero: the envelope cap bounds it


def _floor_model(env_m: np.ndarray, env_l: np.ndarray, lo: float, hi: float) -> CameraModel:
    """The model for a fit that determines nothing: offset at the data's 0.01 % value, no read
    noise, and the largest gain whose variance ``g·(x − lo) + 3/8·g²`` stays at or below the
    lower envelope at every measured level and below the top level's bound up to the data's
    maximum (the noise grows with the level); without an envelope, σ <= 0.5 ADU (lossless)."""
    if env_m.size == 0:
        pts_x, pts_l = np.array([hi]), np.array([_FLOOR_VAR])
    else:
        top = int(np.argmax(env_m))
        pts_x = np.append(env_m, max(hi, env_m[top]))
        pts_l = np.append(env_l, env_l[top])
    o = lo
    if env_m.size >= 3:
        # below the lowest measured level the noise falls at most at the gain: with a generous
        # upper bound of it (1.5x the envelope's slope) the knee goes where the steepest
        # plausible line through the lowest point reaches zero, not above
        b = float(np.polyfit(env_m, env_l, 1)[0])
        first = int(np.argmin(env_m))
        if b > 0:
            o = max(lo, float(env_m[first] - env_l[first] / (1.5 * b)))
    d = np.maximum(pts_x - o, 0.0)
    lim = np.maximum(pts_l, 1e-12)
    g = (-d + np.sqrt(d * d + 1.5 * lim)) / 0.75  # g·d + 3/8·g² = lim
    return CameraModel(float(np.clip(g.min(), 1e-6, 1e6)), o, 0.0)


def _prefer_spatial(temporal: PhotonTransfer, spatial: PhotonTransfer, a: np.ndarray) -> bool:
    """Whether the frames' spatial statistics should replace the temporal ones: the temporal
    fit is poor, or it puts more noise at the median level than the spatial one (blinking,
    motion or drift between frames add variance that is not noise). Both biases push the
    variance up, so the lower line is the better and the safer one."""
    x = float(np.median(a))
    var_t = temporal.slope * x + temporal.intercept
    var_s = spatial.slope * x + spatial.intercept
    return bool(temporal.problems) or var_t > 1.1 * var_s


def estimate_camera(data, *, time_axis: int | None = None, gain: float | None = None,
                    offset: float | None = None, read_noise: float | None = None,
                    min_r2: float = 0.9, confidence: float = 0.975) -> CameraEstimate:
    """Estimate the camera model of raw data, with its uncertainty and a conservative model.

    Parameters
    ----------
    data : array_like
        Raw camera counts; see :func:`photon_transfer`.
    time_axis : int, optional
        Axis of repeated frames of a static scene: per-pixel temporal statistics (a direct
        photon-transfer curve). Where the frames are images their spatial statistics are
        fitted too, and used instead where the temporal fit is poor or puts clearly more
        noise at the median level (the scene changes: blinking, motion).
    gain, offset, read_noise, min_r2, confidence
        See :func:`photon_transfer`.

    Returns
    -------
    CameraEstimate
        A :class:`~bigcomp.noise.CameraModel` (the point estimate) with standard errors and
        the :attr:`~CameraEstimate.conservative` model that :func:`bigcomp.compress` uses.

    Warns
    -----
    PoorFitWarning
        The fit is unreliable, or the offset/read noise (gain) are poorly determined; the
        message says what to do (dark frames and ``bigcomp calibrate``, or pass the camera).

    Examples
    --------
    >>> from bigcomp.datasets import light_sheet, simulate_camera
    >>> photons = light_sheet((4, 128, 128), seed=2).photons
    >>> photons[..., :16] = 0  # part of the field got no light
    >>> cam = estimate_camera(simulate_camera(photons, gain=3.0, offset=100, seed=2).data)
    >>> bool(2.7 < cam.gain < 3.3), cam.offset_from, bool(abs(cam.offset - 100) < 1)
    (True, 'dark level', True)
    >>> bool(cam.conservative.sigma(200) <= cam.sigma(200))
    True
    """
    kw = {"gain": gain, "offset": offset, "read_noise": read_noise, "min_r2": min_r2,
          "confidence": confidence}
    pt = photon_transfer(data, time_axis=time_axis, **kw)
    a = np.asarray(data)
    if time_axis is not None and a.ndim >= 3 and min(a.shape[-2:]) >= 5 and (
            time_axis % a.ndim) < a.ndim - 2:
        try:  # the spatial statistics of the frames, in case the scene changes
            sp = photon_transfer(np.moveaxis(a, time_axis, 0), **kw)
        except UnsupportedDataError:
            sp = None
        if sp is not None and _prefer_spatial(pt, sp, a):
            temporal, pt = pt, sp
            # the pixel time series bound the noise from below whatever the frames' fit:
            # a poor fit of both gets the floor under them, a good one is capped by them
            env = temporal.envelope
            cons = pt.camera.conservative
            if pt.problems and env[0].size:
                cons = _cap_model(_floor_model(*env, *pt.data_range), *env)
            pt = dataclasses.replace(pt, camera=dataclasses.replace(pt.camera,
                                                                    conservative=cons))
    est, problems, uncertain = pt.camera, pt.problems, pt.uncertain
    if problems:
        warnings.warn(
            f"camera estimate is unreliable ({'; '.join(problems)}): got gain="
            f"{est.gain:.4g}, offset={est.offset:.4g}, read_noise="
            f"{est.read_noise:.4g}. To avoid it, {_HOWTO}", PoorFitWarning, stacklevel=2)
    elif uncertain:
        warnings.warn(
            f"camera estimate: {'; '.join(uncertain)}. Compression stays within the bound by "
            f"using the low end (smaller noise: finer steps, a few % larger files). To pin "
            f"them down, {_CALIBRATE}", PoorFitWarning, stacklevel=2)
    return est
