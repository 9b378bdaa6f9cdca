"""Synthetic camera data with a known noise model, for tests, examples and benchmarks.

Each generator builds a noise-free scene in photons and passes it through one camera
model (:func:`simulate_camera`): ``e ~ Poisson(photons)``, read noise
``n ~ N(0, read_noise**2)`` (electrons), ``x = gain * (e + n) + offset`` ADU, rounded
and clipped to the dtype range.  ``truth`` is the noise-free expected ADU, so losses can
be compared with the noise variance ``gain**2 * (photons + read_noise**2)``.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ParameterError

if TYPE_CHECKING:
    import dask.array

    from .pixelcamera import PixelCamera

__all__ = [
    "Synthetic",
    "diffraction_series",
    "lazy_light_sheet",
    "light_sheet",
    "light_sheet_chunk",
    "scmos_camera",
    "scmos_dark",
    "scmos_flats",
    "scmos_frames",
    "simulate_camera",
    "smlm",
    "timelapse_5d",
]

_CAMERA_DTYPES = ("uint8", "uint16")
_COUNTING_DTYPES = ("uint16", "uint32", "int32")
_BLOB_DENSITY = 4e-5  # blobs per voxel in light-sheet volumes
_CUT = 3.5  # patches extend to 3.5 sigma


@dataclass(frozen=True, eq=False)
class Synthetic:
    """A synthetic acquisition with its ground truth and camera model.

    Attributes
    ----------
    data : numpy.ndarray
        Noisy camera counts (ADU).
    truth : numpy.ndarray
        Noise-free expected ADU ``gain * photons + offset`` (float32, clipped to the
        range of ``data.dtype``).
    gain, offset, read_noise : float
        ADU per electron, offset in ADU, read noise in electrons.
    dims : tuple of str
        Axis names, e.g. ``("z", "y", "x")``.
    spots : numpy.ndarray or None
        Point sources, rows ``(t, y, x, photons)`` (integrated photons).
    """

    data: np.ndarray
    truth: np.ndarray
    gain: float
    offset: float
    read_noise: float
    dims: tuple[str, ...]
    spots: np.ndarray | None = None

    @property
    def photons(self) -> np.ndarray:
        """Expected photo-electrons per pixel, ``(truth - offset) / gain``."""
        return (self.truth - np.float32(self.offset)) / np.float32(self.gain)

    @property
    def variance(self) -> np.ndarray:
        """Expected noise variance in ADU**2, ``gain**2 * (photons + read_noise**2)``."""
        return np.float32(self.gain) * (self.truth - np.float32(self.offset)) + np.float32(
            (self.gain * self.read_noise) ** 2)


# --------------------------------------------------------------------------- checks
def _check_shape(shape: Sequence[int], dims: Sequence[str], name: str) -> tuple[int, ...]:
    try:
        shp = tuple(operator.index(s) for s in shape)
    except TypeError:
        raise ParameterError(f"{name}: shape must be a sequence of integers, got {shape!r}") from None
    if len(shp) != len(dims):
        raise ParameterError(f"{name}: shape must have {len(dims)} dimensions {tuple(dims)}, "
                         f"got {len(shp)}: {shape!r}")
    if min(shp) < 1:
        raise ParameterError(f"{name}: all shape entries must be >= 1, got {shape!r}")
    return shp


def _check_camera(gain: float, offset: float, read_noise: float) -> None:
    if not (math.isfinite(gain) and gain > 0):
        raise ParameterError(f"gain must be a finite number > 0 (ADU per electron), got {gain!r}")
    if not math.isfinite(offset):
        raise ParameterError(f"offset must be finite, got {offset!r}")
    if not (math.isfinite(read_noise) and read_noise >= 0):
        raise ParameterError(f"read_noise must be finite and >= 0 (electrons), got {read_noise!r}")


def _check_dtype(dtype: Any, allowed: tuple[str, ...]) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt.name not in allowed:
        raise ParameterError(f"dtype must be one of {allowed}, got {dtype!r}")
    return dt


# ---------------------------------------------------------------------- primitives
def _erf(x: np.ndarray) -> np.ndarray:
    """Vectorised erf (Abramowitz & Stegun 7.1.26, |error| < 1.5e-7)."""
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t
            + 0.254829592) * t
    return np.sign(x) * (1.0 - poly * np.exp(-a * a))


def _splat(out: np.ndarray, centers: np.ndarray, sigmas: np.ndarray, weights: np.ndarray,
           *, integrate: bool = False) -> None:
    """Add separable Gaussians to ``out`` in place (one ``bincount``); sigma 0 = delta.

    ``integrate``: pixel-integrated unit-sum profiles (weights = integrals), else
    point-sampled profiles with peak 1 (weights = peaks).
    """
    n = len(centers)
    if n == 0:
        return
    flat = np.zeros((n,) + (1,) * out.ndim, np.int64)
    val = np.asarray(weights, np.float64).reshape(flat.shape)
    valid = np.ones(flat.shape, bool)
    for i, size in enumerate(out.shape):
        smax = float(sigmas[:, i].max())
        r = math.ceil(_CUT * smax) if smax > 0 else 0
        c = np.rint(centers[:, i]).astype(np.int64)[:, None] + np.arange(-r, r + 1)
        shp = [n] + [1] * out.ndim
        shp[i + 1] = 2 * r + 1
        if r:
            mu, s = centers[:, i, None], sigmas[:, i, None]
            if integrate:
                k = 1.0 / (math.sqrt(2.0) * s)
                p = 0.5 * (_erf((c + 0.5 - mu) * k) - _erf((c - 0.5 - mu) * k))
            else:
                p = np.exp(-0.5 * ((c - mu) / s) ** 2)
            val = val * p.reshape(shp)
        flat = flat * size + c.reshape(shp)
        valid = valid & ((c >= 0) & (c < size)).reshape(shp)
    flat, val, valid = np.broadcast_arrays(flat, val, valid)
    out.reshape(-1)[...] += np.bincount(flat[valid], val[valid], minlength=out.size).astype(
        out.dtype)


def _random_blobs(rng: np.random.Generator, n: int, lo: Sequence[float],
                  hi: Sequence[float]) -> tuple[np.ndarray, ...]:
    """Nucleus-like blobs: centres, sigmas (z, y, x), peak photons, shape exponent."""
    centers = rng.uniform(lo, hi, (n, 3))
    s = rng.uniform(2.5, 7.0, n)
    sig = np.stack([np.maximum(1.5, s * rng.uniform(0.45, 0.8, n)),  # z: spans planes
                    s * rng.uniform(0.75, 1.25, n), s * rng.uniform(0.75, 1.25, n)], axis=1)
    amp = np.exp(rng.uniform(math.log(300.0), math.log(1e4), n))
    power = rng.choice([1.0, 2.0], n)  # 1: Gaussian, 2: flat-topped smooth ellipsoid
    return centers, sig, amp, power


def _add_blobs(out: np.ndarray, centers: np.ndarray, sigmas: np.ndarray, amps: np.ndarray,
               powers: np.ndarray, origin: Sequence[int] = (0, 0, 0)) -> None:
    """Add ``amp * exp(-q**p / 2)``, ``q = sum(((x - c) / s)**2)``, on local patches."""
    for c, s, a, p in zip(centers, sigmas, amps, powers, strict=True):
        q: Any = 0.0
        sl = []
        for i, size in enumerate(out.shape):
            lo = max(math.floor(c[i] - _CUT * s[i]) - origin[i], 0)
            hi = min(math.ceil(c[i] + _CUT * s[i]) + 1 - origin[i], size)
            if lo >= hi:
                break
            x = (np.arange(lo, hi) + origin[i] - c[i]) / s[i]
            q = q + (x * x).reshape([-1 if j == i else 1 for j in range(out.ndim)])
            sl.append(slice(lo, hi))
        else:
            out[tuple(sl)] += (a * np.exp(-0.5 * q ** p)).astype(out.dtype)


def _smooth(rng: np.random.Generator, coords: Sequence[np.ndarray],
            periods: Sequence[tuple[float, float]], terms: int = 3) -> np.ndarray:
    """Smooth field in [0, 1]: mean of products of raised cosines (global coordinates)."""
    nd = len(coords)
    total: Any = 0.0
    for _ in range(terms):
        term: Any = 1.0
        for i, x in enumerate(coords):
            per, ph = rng.uniform(*periods[i]), rng.uniform(0, 2 * np.pi)
            v = 0.5 + 0.5 * np.cos(2 * np.pi * np.asarray(x, np.float64) / per + ph)
            term = term * v.astype(np.float32).reshape([-1 if j == i else 1 for j in range(nd)])
        total = total + term
    return np.ascontiguousarray(np.broadcast_to(total / terms, [len(x) for x in coords]),
                                np.float32)


# ---------------------------------------------------------------------- public API
def simulate_camera(photons: np.ndarray, *, gain: float = 2.0, offset: float = 100.0,
                    read_noise: float = 1.6, seed: int | np.random.Generator = 0,
                    dtype: Any = "uint16", dims: Sequence[str] | None = None,
                    spots: np.ndarray | None = None) -> Synthetic:
    """Pass an expected-photon image through the camera model.

    Parameters
    ----------
    photons : array_like
        Expected photo-electrons per pixel (>= 0).
    gain, offset, read_noise : float
        ADU per electron (> 0), offset in ADU, read noise in electrons (>= 0).
    seed : int or numpy.random.Generator
        Random seed or generator.
    dtype : {"uint16", "uint8", "uint32", "int32"}
        Output dtype; values are rounded and clipped to its range.
    dims, spots
        Stored on the result; ``dims`` defaults to the last letters of ``"tczyx"``.

    Returns
    -------
    Synthetic

    Examples
    --------
    >>> s = simulate_camera(np.full((64, 64), 10.0), gain=2.0, offset=100.0, seed=1)
    >>> s.data.dtype, float(s.truth[0, 0])
    (dtype('uint16'), 120.0)
    """
    _check_camera(gain, offset, read_noise)
    dt = _check_dtype(dtype, tuple(sorted(set(_CAMERA_DTYPES + _COUNTING_DTYPES))))
    lam = np.asarray(photons, np.float64)
    if not np.all(np.isfinite(lam)) or (lam.size and lam.min() < 0):
        raise ParameterError("photons must be finite and >= 0")
    if dims is None:
        dims = tuple("tczyx"[-lam.ndim:]) if lam.ndim <= 5 else tuple(
            f"dim_{i}" for i in range(lam.ndim))
    rng = np.random.default_rng(seed)
    work = np.float64 if dt.itemsize >= 4 else np.float32
    x = rng.poisson(lam).astype(work) * work(gain)
    if read_noise > 0:
        x += rng.standard_normal(lam.shape, dtype=work) * work(gain * read_noise)
    x += work(offset)
    info = np.iinfo(dt)
    data = np.clip(np.rint(x), info.min, info.max).astype(dt)
    truth = np.clip(lam * gain + offset, info.min, info.max).astype(np.float32)
    return Synthetic(data, truth, float(gain), float(offset), float(read_noise), tuple(dims),
                     spots)


def light_sheet(shape: Sequence[int] = (32, 256, 256), *, gain: float = 2.0,
                offset: float = 100.0, read_noise: float = 1.6, seed: int = 0,
                dtype: Any = "uint16") -> Synthetic:
    """Light-sheet-like ``(z, y, x)`` stack: nuclei and filaments on dim background.

    Nuclei are anisotropic Gaussians or flat-topped smooth ellipsoids (xy sigma
    2.5-7 px; z sigma >= 1.5 planes, so each spans several planes) of 300-10^4 photons
    peak; a few curved filaments (50-400 photons) and a smooth 5-20 photon
    autofluorescence background, which is most of the volume.

    Parameters
    ----------
    shape : tuple of int
        ``(z, y, x)``.
    gain, offset, read_noise : float
        Camera model, see :func:`simulate_camera`.
    seed : int
        Random seed (deterministic output).
    dtype : {"uint16", "uint8"}
        Output dtype.

    Returns
    -------
    Synthetic

    Examples
    --------
    >>> s = light_sheet((8, 64, 64), seed=1)
    >>> s.data.shape, s.data.dtype, s.dims
    ((8, 64, 64), dtype('uint16'), ('z', 'y', 'x'))
    """
    shp = _check_shape(shape, "zyx", "light_sheet")
    _check_camera(gain, offset, read_noise)
    dt = _check_dtype(dtype, _CAMERA_DTYPES)
    rng = np.random.default_rng(seed)
    z, y, x = shp
    photons = 5.0 + 15.0 * _smooth(rng, [np.arange(n) for n in shp],
                                   [(z, 4 * z), (y / 2, 3 * y), (x / 2, 3 * x)])
    n = max(1, int(rng.poisson(_BLOB_DENSITY * z * y * x)))
    _add_blobs(photons, *_random_blobs(rng, n, (0, 0, 0), shp))
    # filaments: smooth random walks, mostly in-plane, rendered as chains of Gaussians
    pts, wts, step = [], [], 0.7
    for _ in range(max(1, round(y * x / 13000))):
        m = int(rng.uniform(0.3, 0.8) * max(y, x) / step) + 1
        theta = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.03, m))
        p = rng.uniform((0, 0, 0), shp) + step * np.cumsum(
            np.stack([np.full(m, rng.normal(0, 0.03)), np.sin(theta), np.cos(theta)], 1), 0)
        pts.append(p)
        wts.append(np.full(m, rng.uniform(50, 400) * step / math.sqrt(2 * np.pi)))
    pts_a = np.concatenate(pts)
    _splat(photons, pts_a, np.tile([1.6, 1.0, 1.0], (len(pts_a), 1)), np.concatenate(wts))
    return simulate_camera(photons, gain=gain, offset=offset, read_noise=read_noise, seed=rng,
                           dtype=dt, dims=("z", "y", "x"))


def smlm(shape: Sequence[int] = (20, 256, 256), *, gain: float = 2.0, offset: float = 100.0,
         read_noise: float = 1.6, density: float = 1e-3, psf_sigma: float = 1.3,
         background: float = 10.0, seed: int = 0, dtype: Any = "uint16") -> Synthetic:
    """Single-molecule localisation (blinking) movie ``(t, y, x)``.

    Emitters at fixed sub-pixel positions are on for a geometric number of consecutive
    frames (mean 2.5), giving 500-3000 photons per frame in a pixel-integrated Gaussian
    PSF, on a low, slightly uneven background.

    Parameters
    ----------
    shape : tuple of int
        ``(t, y, x)``.
    gain, offset, read_noise, seed, dtype
        As in :func:`light_sheet`.
    density : float
        Mean number of active emitters per pixel per frame.
    psf_sigma : float
        PSF standard deviation in pixels.
    background : float
        Mean background in photons per pixel.

    Returns
    -------
    Synthetic
        ``spots`` holds one row ``(t, y, x, photons)`` per emitter and frame it is on.

    Examples
    --------
    >>> s = smlm((5, 64, 64), seed=2)
    >>> s.spots.shape[1], s.dims
    (4, ('t', 'y', 'x'))
    """
    t, y, x = _check_shape(shape, "tyx", "smlm")
    _check_camera(gain, offset, read_noise)
    dt = _check_dtype(dtype, _CAMERA_DTYPES)
    if not (density >= 0 and psf_sigma > 0 and background >= 0):
        raise ParameterError("density and background must be >= 0 and psf_sigma > 0")
    rng = np.random.default_rng(seed)
    p_off, lead = 0.4, 4
    n = int(rng.poisson(density * y * x * (t + lead) * p_off))
    start = rng.integers(-lead, t, n)
    dur = rng.geometric(p_off, n)
    pos = rng.uniform((-0.5, -0.5), (y - 0.5, x - 0.5), (n, 2))
    bright = np.exp(rng.uniform(math.log(500.0), math.log(3000.0), n))
    em = np.repeat(np.arange(n), dur)
    frame = start[em] + np.arange(len(em)) - np.repeat(np.cumsum(dur) - dur, dur)
    keep = (frame >= 0) & (frame < t)
    em, frame = em[keep], frame[keep]
    spots = np.column_stack([frame, pos[em], bright[em]]).astype(np.float64)
    spots = spots[np.lexsort((spots[:, 2], spots[:, 1], spots[:, 0]))]
    bg = background * (0.8 + 0.4 * _smooth(rng, [np.arange(y), np.arange(x)],
                                           [(y, 4 * y), (x, 4 * x)]))
    photons = np.repeat(bg[None], t, axis=0)
    sig = np.tile([0.0, psf_sigma, psf_sigma], (len(spots), 1))
    _splat(photons, spots[:, :3], sig, spots[:, 3], integrate=True)
    return simulate_camera(photons, gain=gain, offset=offset, read_noise=read_noise, seed=rng,
                           dtype=dt, dims=("t", "y", "x"), spots=spots)


def timelapse_5d(shape: Sequence[int] = (4, 2, 8, 128, 128), *, gain: float = 2.0,
                 offset: float = 100.0, read_noise: float = 1.6, drift: float = 0.5,
                 bleach: float = 0.02, seed: int = 0, dtype: Any = "uint16") -> Synthetic:
    """Multi-channel time-lapse ``(t, c, z, y, x)`` of slowly drifting cells.

    Cells are blobs as in :func:`light_sheet`, each with a constant velocity (about
    ``drift`` px/frame in y, x; 5x less in z).  Channel ``c`` shows the same cells
    ``1.4**c`` larger and ``4**c`` dimmer (nucleus, then cytoplasm-like) over a static
    smooth background, with photobleaching ``exp(-bleach * t)``.

    Parameters
    ----------
    shape : tuple of int
        ``(t, c, z, y, x)``.
    gain, offset, read_noise, seed, dtype
        As in :func:`light_sheet`.
    drift : float
        Typical cell speed in pixels per frame.
    bleach : float
        Photobleaching rate per frame.

    Returns
    -------
    Synthetic

    Examples
    --------
    >>> s = timelapse_5d((2, 2, 4, 32, 32), seed=3)
    >>> s.data.shape, s.dims
    ((2, 2, 4, 32, 32), ('t', 'c', 'z', 'y', 'x'))
    """
    t, c, z, y, x = _check_shape(shape, "tczyx", "timelapse_5d")
    _check_camera(gain, offset, read_noise)
    dt = _check_dtype(dtype, _CAMERA_DTYPES)
    rng = np.random.default_rng(seed)
    n = max(3, int(rng.poisson(y * x / 1500)))
    centers, sig, amp, power = _random_blobs(rng, n, (0, 0, 0), (z, y, x))
    vel = (rng.normal(0, drift, (n, 3)) + rng.normal(0, drift / 2, 3)) * (0.2, 1.0, 1.0)
    photons = np.empty((t, c, z, y, x), np.float32)
    grid = [np.arange(k) for k in (z, y, x)]
    bgs = [10.0 / (1 + ci) * (0.5 + _smooth(rng, grid, [(z, 4 * z), (y / 2, 3 * y),
                                                          (x / 2, 3 * x)])) for ci in range(c)]
    for ti in range(t):
        for ci in range(c):
            photons[ti, ci] = bgs[ci]
            _add_blobs(photons[ti, ci], centers + vel * ti, sig * 1.4 ** ci,
                       amp * 0.25 ** ci * math.exp(-bleach * ti), power)
    return simulate_camera(photons, gain=gain, offset=offset, read_noise=read_noise, seed=rng,
                           dtype=dt, dims=("t", "c", "z", "y", "x"))


def diffraction_series(shape: Sequence[int] = (16, 512, 512), *, n_spots: int | None = None,
                       beam_center: tuple[float, float] | None = None, seed: int = 0,
                       dtype: Any = "uint16") -> Synthetic:
    """X-ray diffraction-like frames ``(t, y, x)`` from a photon-counting detector.

    Textured powder rings about the beam centre, a background falling off with radius
    (about 1 count far out), a zero-count beam-stop shadow, 3 % flux jitter per frame,
    and Bragg spots (sigma 0.7-1.3 px, 10^3-10^5 photons) rocking in and out over a few
    frames.  ``gain=1``, ``offset=0``, ``read_noise=0``; counts clipped to the dtype.

    Parameters
    ----------
    shape : tuple of int
        ``(t, y, x)``.
    n_spots : int, optional
        Number of Bragg reflections in the series (default ``12 * t``).
    beam_center : (float, float), optional
        ``(y, x)`` of the direct beam (default: near the image centre).
    seed : int
        Random seed.
    dtype : {"uint16", "uint32", "int32"}
        Output dtype.

    Returns
    -------
    Synthetic
        ``spots``: a row ``(t, y, x, photons)`` per frame a reflection has >= 1 photon.

    Examples
    --------
    >>> s = diffraction_series((4, 128, 128), seed=4)
    >>> s.gain, s.offset, s.read_noise, s.data.dtype
    (1.0, 0.0, 0.0, dtype('uint16'))
    """
    t, y, x = _check_shape(shape, "tyx", "diffraction_series")
    dt = _check_dtype(dtype, _COUNTING_DTYPES)
    if n_spots is not None and n_spots < 0:
        raise ParameterError(f"n_spots must be >= 0, got {n_spots!r}")
    rng = np.random.default_rng(seed)
    cy, cx = beam_center if beam_center is not None else (
        y / 2 + rng.uniform(-0.05, 0.05) * y, x / 2 + rng.uniform(-0.05, 0.05) * x)
    yy, xx = np.arange(y, dtype=np.float32)[:, None] - cy, np.arange(x, dtype=np.float32) - cx
    r, phi = np.hypot(yy, xx), np.arctan2(yy, xx)
    rmax = math.hypot(max(cy, y - cy), max(cx, x - cx))
    frame = 1.0 + 30.0 * np.exp(-r / (0.15 * rmax))
    for _ in range(6):
        rad, w = rng.uniform(0.08, 0.95) * rmax, rng.uniform(1.0, 3.0)
        a = rng.uniform(5.0, 60.0) * math.exp(-rad / (0.5 * rmax))
        tex = 1 + rng.uniform(0, 0.4) * np.cos(rng.integers(1, 5) * phi + rng.uniform(0, 6.3))
        frame += a * np.exp(-0.5 * ((r - rad) / w) ** 2) * tex
    stop = (r < 0.04 * min(y, x) + 1) | ((np.abs(yy) < 0.01 * y + 1) & (xx > 0))
    frame[stop] = 0.0
    flux = np.maximum(0.0, 1.0 + 0.03 * rng.standard_normal(t))
    photons = (flux[:, None, None] * frame).astype(np.float32)
    m = 12 * t if n_spots is None else int(n_spots)
    pos = rng.uniform((-0.5, -0.5), (y - 0.5, x - 0.5), (m, 2))
    pi, pj = np.clip(np.rint(pos).astype(int), 0, (y - 1, x - 1)).T
    pos = pos[~stop[pi, pj]]
    k = len(pos)
    t0, width = rng.uniform(-1.0, t, k), rng.uniform(0.4, 1.5, k)
    peak = np.exp(rng.uniform(math.log(1e3), math.log(1e5), k))
    sig = rng.uniform(0.7, 1.3, k)
    inten = peak[:, None] * np.exp(-0.5 * ((np.arange(t) - t0[:, None]) / width[:, None]) ** 2)
    si, ti = np.nonzero(inten >= 1.0)
    spots = np.column_stack([ti, pos[si], inten[si, ti]]).astype(np.float64)
    order = np.lexsort((spots[:, 2], spots[:, 1], spots[:, 0]))
    spots, si = spots[order], si[order]
    _splat(photons, spots[:, :3], np.column_stack([np.zeros(len(si)), sig[si], sig[si]]),
           spots[:, 3], integrate=True)
    photons[:, stop] = 0.0
    return simulate_camera(photons, gain=1.0, offset=0.0, read_noise=0.0, seed=rng, dtype=dt,
                           dims=("t", "y", "x"), spots=spots)


def light_sheet_chunk(block_id: Sequence[int], chunk_shape: Sequence[int], *, seed: int = 0,
                      shape: Sequence[int] | None = None, gain: float = 2.0,
                      offset: float = 100.0, read_noise: float = 1.6,
                      dtype: Any = "uint16") -> np.ndarray:
    """Generate one chunk of an arbitrarily large light-sheet-like ``(z, y, x)`` volume.

    Depends only on ``block_id``, ``chunk_shape``, ``shape`` and ``seed``.  The
    background is smooth in global coordinates; each block owns its nuclei (as in
    :func:`light_sheet`, no filaments) and also renders neighbours' nuclei that reach
    into it, so the volume is seamless.  Noise is drawn per chunk.

    Parameters
    ----------
    block_id : tuple of int
        Chunk index ``(iz, iy, ix)`` (>= 0).
    chunk_shape : tuple of int
        Regular (nominal) chunk shape; chunk ``b`` starts at ``b * chunk_shape``.
    seed : int
        Random seed of the whole volume.
    shape : tuple of int, optional
        Total volume shape; edge chunks are trimmed to it.  ``None``: unbounded.
    gain, offset, read_noise, dtype
        As in :func:`light_sheet`.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> a = light_sheet_chunk((0, 1, 2), (16, 64, 64), seed=5)
    >>> a.shape, a.dtype
    ((16, 64, 64), dtype('uint16'))
    """
    chunk = _check_shape(chunk_shape, "zyx", "light_sheet_chunk")
    try:
        bid = tuple(operator.index(b) for b in block_id)
    except TypeError:
        bid = ()
    if len(bid) != 3 or min(bid) < 0:
        raise ParameterError(f"block_id must be 3 integers >= 0, got {block_id!r}")
    _check_camera(gain, offset, read_noise)
    dt = _check_dtype(dtype, _CAMERA_DTYPES)
    total = _check_shape(shape, "zyx", "light_sheet_chunk") if shape is not None else None
    origin = [b * c for b, c in zip(bid, chunk, strict=True)]
    extent = list(chunk)
    if total is not None:
        if any(o >= s for o, s in zip(origin, total, strict=True)):
            raise ParameterError(f"block_id {tuple(bid)} lies outside shape {total}")
        extent = [min(c, s - o) for c, s, o in zip(chunk, total, origin, strict=True)]
    photons = 5.0 + 15.0 * _smooth(np.random.default_rng([seed, 0]),
                                   [np.arange(e) + o for e, o in zip(extent, origin, strict=True)],
                                   [(20, 80), (100, 500), (100, 500)])
    # neighbouring blocks whose blobs (max sigma 5.6, 8.75, 8.75 px) can reach this chunk
    reach = [min(8, math.ceil(_CUT * m / c))
             for m, c in zip((5.6, 8.75, 8.75), chunk, strict=True)]
    ranges = []
    for i in range(3):
        hi = bid[i] + reach[i]
        if total is not None:
            hi = min(hi, (total[i] - 1) // chunk[i])
        ranges.append(range(max(0, bid[i] - reach[i]), hi + 1))
    for nb in itertools.product(*ranges):
        rng = np.random.default_rng([seed, 1, *nb])
        lo = [b * c for b, c in zip(nb, chunk, strict=True)]
        hi = [o + c if total is None else min(o + c, s) for o, c, s in
              zip(lo, chunk, total or chunk, strict=True)]
        n = int(rng.poisson(_BLOB_DENSITY * math.prod(h - o for h, o in zip(hi, lo, strict=True))))
        _add_blobs(photons, *_random_blobs(rng, n, lo, hi), origin=origin)
    return simulate_camera(photons, gain=gain, offset=offset, read_noise=read_noise,
                           seed=np.random.default_rng([seed, 2, *bid]), dtype=dt).data


def lazy_light_sheet(shape: Sequence[int], chunks: int | Sequence[int], *, seed: int = 0,
                     **camera: Any) -> dask.array.Array:
    """Lazy dask array of a (possibly terabyte-sized) light-sheet-like volume.

    ``arr.blocks[b]`` is ``light_sheet_chunk(b, chunks, seed=seed, shape=shape, **camera)``,
    generated on demand.

    Parameters
    ----------
    shape : tuple of int
        ``(z, y, x)``.
    chunks : int or tuple of int
        Regular chunk shape (an int applies to every axis; clipped to ``shape``).
    seed : int
        Random seed.
    **camera
        ``gain``, ``offset``, ``read_noise``, ``dtype`` as in :func:`light_sheet`.

    Returns
    -------
    dask.array.Array

    Examples
    --------
    >>> arr = lazy_light_sheet((1024, 8192, 8192), (64, 512, 512), seed=0)
    >>> arr.nbytes // 2**30, arr.numblocks
    (128, (16, 16, 16))
    """
    import dask.array as da
    from dask.base import tokenize

    shp = _check_shape(shape, "zyx", "lazy_light_sheet")
    ch = (chunks,) * 3 if isinstance(chunks, int) else tuple(chunks)
    ch = tuple(min(c, s) for c, s in zip(_check_shape(ch, "zyx", "lazy_light_sheet chunks"),
                                         shp, strict=True))
    unknown = set(camera) - {"gain", "offset", "read_noise", "dtype"}
    if unknown:
        raise ParameterError(f"unknown camera arguments {sorted(unknown)}")
    _check_camera(camera.get("gain", 2.0), camera.get("offset", 100.0),
                  camera.get("read_noise", 1.6))
    dt = _check_dtype(camera.get("dtype", "uint16"), _CAMERA_DTYPES)

    def block(block_id: tuple[int, ...] | None = None) -> np.ndarray:
        return light_sheet_chunk(block_id, ch, seed=seed, shape=shp, **camera)

    return da.map_blocks(block, chunks=da.core.normalize_chunks(ch, shp), dtype=dt,
                         meta=np.empty((0, 0, 0), dt),
                         name="light_sheet-" + tokenize(shp, ch, seed, sorted(camera.items())))


# ------------------------------------------------------------------- sCMOS, per pixel
def scmos_camera(shape: Sequence[int] = (256, 256), *, seed: int = 0,
                 median_read_noise: float = 1.5, hot_fraction: float = 0.01, gain: float = 2.0,
                 gain_spread: float = 0.02, offset: float = 100.0,
                 offset_spread: float = 2.0) -> PixelCamera:
    """A synthetic sCMOS sensor: per-pixel offset, read-noise variance and gain maps.

    Read noise is log-normal about ``median_read_noise`` (σ of the log 0.25, as measured
    sCMOS maps look), and a ``hot_fraction`` of the pixels (random telegraph noise) get
    4-10x the median; gains scatter by ``gain_spread`` (relative, Gaussian), offsets by
    ``offset_spread`` ADU (Gaussian).

    Parameters
    ----------
    shape : (int, int)
        Rows, columns of the sensor.
    seed : int
        Random seed.
    median_read_noise : float
        Median read noise in electrons (> 0).
    hot_fraction : float
        Fraction of hot (noisy) pixels, in [0, 1].
    gain, gain_spread : float
        Mean gain in ADU per electron (> 0) and its relative pixel-to-pixel spread (>= 0).
    offset, offset_spread : float
        Mean offset in ADU and its pixel-to-pixel standard deviation in ADU (>= 0).

    Returns
    -------
    PixelCamera
        ``variance`` is the read-noise variance in ADU², ``(read_noise · gain)²``.

    Examples
    --------
    >>> cam = scmos_camera((64, 64), seed=1)
    >>> cam.shape, round(float(np.median(cam.read_noise)), 1)
    ((64, 64), 1.5)
    """
    from .pixelcamera import PixelCamera

    shp = _check_shape(shape, "yx", "scmos_camera")
    _check_camera(gain, offset, median_read_noise)
    if not median_read_noise > 0:
        raise ParameterError(f"median_read_noise must be > 0 electrons, got {median_read_noise!r}")
    if not 0 <= hot_fraction <= 1:
        raise ParameterError(f"hot_fraction must be in [0, 1], got {hot_fraction!r}")
    if not (0 <= gain_spread < 0.3 and offset_spread >= 0):
        raise ParameterError("gain_spread must be in [0, 0.3) and offset_spread >= 0, got "
                             f"{gain_spread!r}, {offset_spread!r}")
    rng = np.random.default_rng(seed)
    rn = median_read_noise * np.exp(0.25 * rng.standard_normal(shp))
    hot = rng.random(shp) < hot_fraction
    rn[hot] = median_read_noise * rng.uniform(4.0, 10.0, int(hot.sum()))
    g = gain * (1.0 + gain_spread * np.clip(rng.standard_normal(shp), -4, 4))
    o = offset + offset_spread * rng.standard_normal(shp)
    return PixelCamera(o, (rn * g) ** 2, g, source="synthetic")


def scmos_frames(camera: PixelCamera, photons: Any = 0.0, *, frames: int = 100,
                 seed: int | np.random.Generator = 0, dtype: Any = "uint16") -> np.ndarray:
    """Frames ``(t, y, x)`` drawn from a per-pixel camera (see :func:`scmos_camera`).

    Each pixel ``i`` reads ``x = g_i·e + n + o_i`` ADU, ``e ~ Poisson(photons)`` electrons,
    ``n ~ N(0, v_i)`` (its read-noise variance in ADU²), rounded and clipped to ``dtype``.

    Parameters
    ----------
    camera : PixelCamera
        Offset, variance and gain maps.
    photons : float or array_like (y, x)
        Expected photo-electrons per pixel and frame (>= 0); 0 gives dark frames.
    frames : int
        Number of frames (>= 1).
    seed : int or numpy.random.Generator
        Random seed or generator.
    dtype : {"uint16", "uint8"}
        Output dtype.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> cam = scmos_camera((32, 32), seed=0)
    >>> scmos_frames(cam, 100.0, frames=4).shape
    (4, 32, 32)
    """
    dt = _check_dtype(dtype, _CAMERA_DTYPES)
    if not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ParameterError(f"frames must be an integer >= 1, got {frames!r}")
    lam = np.asarray(photons, np.float64)
    if lam.ndim not in (0, 2) or (lam.ndim == 2 and lam.shape != camera.shape):
        raise ParameterError(f"photons must be a number or a {camera.shape} map, got shape "
                             f"{lam.shape}")
    if not np.all(np.isfinite(lam)) or lam.min() < 0:
        raise ParameterError("photons must be finite and >= 0")
    rng = np.random.default_rng(seed)
    shp = (int(frames), *camera.shape)
    x = rng.standard_normal(shp, dtype=np.float32)
    x *= np.sqrt(camera.variance).astype(np.float32)
    x += camera.offset.astype(np.float32)
    if lam.max() > 0:
        e = rng.poisson(np.broadcast_to(lam, camera.shape), shp).astype(np.float32)
        e *= camera.gain.astype(np.float32)
        x += e
    info = np.iinfo(dt)
    np.rint(x, out=x)
    return np.clip(x, info.min, info.max).astype(dt)


def scmos_dark(camera: PixelCamera, frames: int = 100, *, seed: int = 0,
               dtype: Any = "uint16") -> np.ndarray:
    """Dark frames (no light) of a per-pixel camera: ``scmos_frames(camera, 0, ...)``.

    Examples
    --------
    >>> scmos_dark(scmos_camera((16, 16)), 3).shape
    (3, 16, 16)
    """
    return scmos_frames(camera, 0.0, frames=frames, seed=seed, dtype=dtype)


def scmos_flats(camera: PixelCamera, levels: Sequence[float] = (200.0, 2000.0), *,
                frames: int = 50, seed: int = 0, dtype: Any = "uint16") -> list[np.ndarray]:
    """A flat-field series: ``frames`` uniform frames at each light level (electrons).

    Parameters
    ----------
    camera : PixelCamera
    levels : sequence of float
        Expected photo-electrons per pixel of each illumination.
    frames, seed, dtype
        As in :func:`scmos_frames` (each level gets its own stream from ``seed``).

    Returns
    -------
    list of numpy.ndarray
        One ``(frames, y, x)`` stack per level.

    Examples
    --------
    >>> [f.shape for f in scmos_flats(scmos_camera((16, 16)), (10, 100), frames=2)]
    [(2, 16, 16), (2, 16, 16)]
    """
    return [scmos_frames(camera, float(lv), frames=frames, seed=np.random.default_rng([seed, i]),
                         dtype=dtype) for i, lv in enumerate(levels)]
