"""Calibrate a per-pixel camera model from dark frames and flat-field series.

The noise of pixel ``i`` is ``σ_i² = g_i·(x − o_i) + v_i`` (ADU²). Its three maps are measured:

* offset ``o_i`` and read-noise variance ``v_i``: the temporal mean and unbiased variance of a
  dark stack (shutter closed);
* gain ``g_i`` by photon transfer: at each illumination ``k`` a flat stack gives the signal
  ``s_ik = mean_ik − o_i`` and the shot-noise variance ``e_ik = var_ik − v_i``; the gain is the
  slope of ``e`` against ``s`` through the dark point, for the whole sensor (a robust fit over
  every good pixel, the default) or for each pixel.

Stacks are read in blocks of frames and reduced with float64 streaming sums (Chan et al.'s
pairwise update of mean and squared deviations), so a 2048 x 2048 x 1000 dark stack never sits
in memory whole; memory is a few float64 maps plus one block.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ParameterError, UnsupportedDataError
from .noise import GAIN_RANGE

if TYPE_CHECKING:
    from .pixelcamera import PixelCamera

__all__ = ["CalibrationResult", "calibrate"]

HOT_FACTOR = 3.0  # a pixel whose read noise exceeds 3x the median is "hot"
MAX_SATURATED = 0.01  # a flat with more saturated pixels is refused
MAX_GAIN_SPREAD = 0.05  # illuminations disagreeing more on the gain: warn (nonlinearity)
_BLOCK_BYTES = 128 * 2**20  # float64 working block of frames
_PTC_SAMPLES = 4000  # pixels kept per illumination for the photon-transfer plot


# ------------------------------------------------------------------------ reading stacks
def _open_stack(obj: Any, name: str):
    """Something sliceable along frames (numpy, memmap, zarr, dask) of shape (t, y, x)."""
    if isinstance(obj, (str, os.PathLike)):
        path = os.fspath(obj)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{name}: no such file or directory: {path!r}")
        if path.lower().endswith(".npy"):
            arr = np.load(path, mmap_mode="r")
        else:
            from .io import open_source  # TIFF, HDF5 ('file.h5:/data'), zarr

            arr = open_source(path).to_dask()
    elif hasattr(obj, "shape") and hasattr(obj, "dtype") and hasattr(obj, "__getitem__"):
        arr = obj  # numpy, dask, zarr, h5py, xarray: read block by block
    else:
        arr = np.asarray(obj)
    dt = np.dtype(arr.dtype)
    if dt.kind not in "uif":
        raise UnsupportedDataError(f"{name}: camera frames are integers or reals, not {dt}")
    if len(arr.shape) == 2:
        raise ParameterError(f"{name}: one frame of shape {tuple(arr.shape)}; a stack of "
                             "frames (t, y, x) is needed for temporal statistics")
    if len(arr.shape) != 3:
        raise ParameterError(f"{name}: expected a stack of frames (t, y, x), got shape "
                             f"{tuple(arr.shape)}")
    if arr.shape[0] < 2:
        raise ParameterError(f"{name}: {arr.shape[0]} frame(s); at least 2 are needed for a "
                             "temporal variance (100 or more for a good calibration)")
    return arr


def _blocks(arr, name: str, block_bytes: int) -> Iterator[np.ndarray]:
    n, h, w = (int(s) for s in arr.shape)
    step = max(1, block_bytes // (8 * h * w))
    for i in range(0, n, step):
        blk = arr[i:i + step]
        if hasattr(blk, "compute"):
            blk = blk.compute()
        blk = np.asarray(blk)
        if blk.dtype.kind == "f" and not np.isfinite(blk).all():
            bad = np.argwhere(~np.isfinite(blk))[0]
            raise UnsupportedDataError(
                f"{name}: NaN or infinite value in frame {i + int(bad[0])} at pixel "
                f"({int(bad[1])}, {int(bad[2])}): remove that frame or fix the source")
        yield blk


@dataclass
class _Moments:
    """Per-pixel temporal count, mean, sum of squared deviations and maximum of a stack."""

    n: int
    mean: np.ndarray
    m2: np.ndarray
    top: np.ndarray
    dtype: np.dtype

    @property
    def var(self) -> np.ndarray:
        return self.m2 / (self.n - 1)


def _moments(arr, name: str, block_bytes: int, advance) -> _Moments:
    n, mean, m2, top = 0, None, None, None
    for blk in _blocks(arr, name, block_bytes):
        x = blk.astype(np.float64)
        nb = x.shape[0]
        mb = x.mean(axis=0)
        x -= mb
        m2b = np.einsum("tij,tij->ij", x, x)
        if mean is None:
            n, mean, m2, top = nb, mb, m2b, blk.max(axis=0)
        else:  # Chan, Golub & LeVeque: combine two partial (count, mean, M2)
            delta = mb - mean
            tot = n + nb
            mean += delta * (nb / tot)
            m2 += m2b + delta * delta * (n * nb / tot)
            np.maximum(top, blk.max(axis=0), out=top)
            n = tot
        advance(nb)
    return _Moments(n, mean, m2, top, np.dtype(arr.dtype))


def _saturated(mom: _Moments, saturation: float | None) -> np.ndarray:
    """Pixels that reached the saturation level in any frame (the dtype maximum, the given
    level, or a maximum shared by many pixels: a clipped sensor or ADC)."""
    top = mom.top
    if saturation is not None:
        return top >= saturation
    sat = np.zeros(top.shape, bool)
    if mom.dtype.kind in "ui":
        sat |= top >= np.iinfo(mom.dtype).max
    peak = top.max()
    if (top == peak).sum() > max(10, 1e-3 * top.size):
        sat |= top >= peak
    return sat


# ------------------------------------------------------------------------------ result
@dataclass(frozen=True, eq=False)
class CalibrationResult:
    """What :func:`calibrate` measured.

    Attributes
    ----------
    camera : PixelCamera
        Offset (ADU), read-noise variance (ADU²) and gain (ADU/e⁻) maps.
    offset_stderr, variance_stderr : ndarray
        Standard errors of the offset and variance maps (``sqrt(v/n)``, ``v·sqrt(2/(n−1))``).
    gain, gain_stderr : float
        Global gain (ADU/e⁻) and its standard error (statistical, scaled up by the misfit
        between illuminations).
    gain_map_stderr : ndarray or None
        Per-pixel gain standard errors (``per_pixel_gain=True``).
    dark_frames : int
    flat_frames : tuple of int
        Frames of each flat stack.
    hot_pixels, stuck_pixels, gain_replaced : int
        Pixels with read noise above ``HOT_FACTOR`` x the median; pixels that never changed
        in the dark (variance floored at 1/12 ADU², the rounding noise); per-pixel gains
        that could not be measured (all flats saturated there, or out of range) and were
        replaced by the global gain.
    saturated_pixels : tuple of int
        Pixels that saturated in each flat (left out of the fits).
    levels, level_variances, level_gains : ndarray
        Per illumination: mean signal above the offset (ADU), mean shot-noise variance
        (ADU²) over good pixels, and their ratio (the gain that illumination alone gives).
    """

    camera: PixelCamera
    offset_stderr: np.ndarray
    variance_stderr: np.ndarray
    gain: float
    gain_stderr: float
    dark_frames: int
    flat_frames: tuple[int, ...] = ()
    gain_map_stderr: np.ndarray | None = None
    hot_pixels: int = 0
    stuck_pixels: int = 0
    gain_replaced: int = 0
    saturated_pixels: tuple[int, ...] = ()
    levels: np.ndarray = field(default_factory=lambda: np.zeros(0))
    level_variances: np.ndarray = field(default_factory=lambda: np.zeros(0))
    level_gains: np.ndarray = field(default_factory=lambda: np.zeros(0))
    per_pixel_gain: bool = False
    gain_given: bool = False
    _ptc: tuple[np.ndarray, ...] | None = field(default=None, repr=False)

    @property
    def median_offset(self) -> float:
        """Median offset in ADU."""
        return float(np.median(self.camera.offset))

    @property
    def median_read_noise(self) -> float:
        """Median read noise in electrons."""
        return float(np.median(self.camera.read_noise))

    @property
    def frames(self) -> dict[str, Any]:
        """Frames used: ``{"dark": n, "flats": [n1, n2, ...]}`` (recorded in camera files)."""
        return {"dark": self.dark_frames, "flats": list(self.flat_frames)}

    def summary(self) -> str:
        """A few lines: frames, offset, read noise, hot pixels, gain ± stderr."""
        cam = self.camera
        h, w = cam.shape
        rn = cam.read_noise
        lines = [
            f"camera {h} x {w} pixels from {self.dark_frames} dark frames"
            + (f" and {len(self.flat_frames)} flat series ({', '.join(map(str, self.flat_frames))}"
               " frames)" if self.flat_frames else ""),
            f"offset     median {self.median_offset:.2f} ADU (5-95%: "
            f"{np.percentile(cam.offset, 5):.2f}-{np.percentile(cam.offset, 95):.2f}), "
            f"stderr {float(np.median(self.offset_stderr)):.3f} ADU",
            f"read noise median {self.median_read_noise:.3f} e- "
            f"({math.sqrt(float(np.median(cam.variance))):.3f} ADU), rms "
            f"{float(np.sqrt(np.mean(rn**2))):.3f} e-, 99%: "
            f"{np.percentile(rn, 99):.3f} e-",
            f"hot pixels {self.hot_pixels} ({self.hot_pixels / cam.offset.size:.2%}; read noise "
            f"> {HOT_FACTOR:g}x median)" + (f", stuck {self.stuck_pixels}" if self.stuck_pixels
                                              else ""),
        ]
        if self.gain_given:
            lines.append(f"gain       {self.gain:.4f} ADU/e- (given)")
        else:
            lines.append(f"gain       {self.gain:.4f} ± {self.gain_stderr:.4f} ADU/e- "
                         f"({1 / self.gain:.4f} e-/ADU), per illumination: "
                         + ", ".join(f"{g:.4f} at {s:.0f} ADU" for g, s in
                                     zip(self.level_gains, self.levels, strict=True)))
        if self.per_pixel_gain:
            g = cam.gain
            lines.append(
                f"gain map   median {float(np.median(g)):.4f}, spread (std) "
                f"{float(np.std(g)):.4f} ADU/e-, median stderr "
                f"{float(np.median(self.gain_map_stderr)):.4f}"
                + (f", {self.gain_replaced} replaced by the global gain"
                   if self.gain_replaced else ""))
        if any(self.saturated_pixels):
            lines.append("saturated  " + ", ".join(map(str, self.saturated_pixels))
                         + " pixels per flat (left out)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def save(self, path: str | os.PathLike, *, overwrite: bool = False) -> None:
        """Write the camera file (see :func:`bigcomp.camera_file.save_camera`)."""
        from .camera_file import save_camera

        save_camera(self, path, overwrite=overwrite)

    def plot_ptc(self, path: str | os.PathLike) -> None:
        """Write the photon-transfer curve (variance vs signal, log-log) as a PNG.

        Needs matplotlib (``pip install bigcomp[eval]``).
        """
        if self._ptc is None:
            raise ParameterError("no flat fields were calibrated (gain was given): there is no "
                                 "photon-transfer curve to plot")
        try:  # a bare Figure: no pyplot state, the user's backend untouched
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError("plot_ptc needs matplotlib: pip install 'bigcomp[eval]' (or "
                              "matplotlib)") from None
        signal, variance, read_var = self._ptc
        fig = Figure(figsize=(6.0, 4.5), dpi=120)
        ax = fig.subplots()
        for k in range(signal.shape[0]):
            ok = signal[k] > 0
            ax.scatter(signal[k][ok], variance[k][ok], s=2, alpha=0.3,
                       label="pixels" if k == 0 else None, color="0.5")
        v0 = float(np.median(read_var))
        ax.scatter(self.levels, self.level_variances + v0, s=40, color="C3", zorder=3,
                   label="illuminations (mean over good pixels)")
        lo = 0.1 * v0 / self.gain  # below the knee where shot noise reaches read noise
        xs = np.geomspace(lo, max(float(signal.max()), 10 * lo) * 1.2, 200)
        ax.plot(xs, self.gain * xs + v0, color="C0",
                label=f"gain {self.gain:.3f} ± {self.gain_stderr:.3f} ADU/e-")
        ax.axhline(v0, color="C2", ls="--", label=f"read noise {math.sqrt(v0):.2f} ADU")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("signal above offset (ADU)")
        ax.set_ylabel("temporal variance (ADU²)")
        ax.set_title("photon transfer curve")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.fspath(path))


# ----------------------------------------------------------------------------- calibrate
def calibrate(dark, flats: Sequence | None = None, *, gain=None, per_pixel_gain: bool = False,
              saturation: float | None = None, progress: bool | None = None,
              block_bytes: int = _BLOCK_BYTES) -> CalibrationResult:
    """Measure a per-pixel camera model from a dark stack and flat-field series.

    Parameters
    ----------
    dark : array_like, dask.array.Array or path
        Dark frames ``(t, y, x)``, ``t >= 2`` (100 or more recommended): a numpy, dask or
        zarr array, or a TIFF, ``.npy``, zarr or HDF5 (``"file.h5:/data"``) path. Read in
        blocks of frames.
    flats : sequence of stacks, optional
        One stack ``(t, y, x)`` per illumination (at least 2 different light levels, none
        saturated), same kinds as ``dark``. A 4-D array is taken as (illumination, t, y, x).
    gain : float or array_like (y, x), optional
        Known gain in ADU/e⁻ instead of flats.
    per_pixel_gain : bool
        Fit a gain for each pixel (needs many flat frames: its relative error is about
        ``sqrt(2/Σ(t_k − 1))``) instead of one for the sensor (default).
    saturation : float, optional
        Saturation level in ADU (e.g. 4095 for 12-bit data in uint16). Default: the dtype
        maximum, or a maximum many pixels share.
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    block_bytes : int
        Size of the float64 block of frames reduced at a time.

    Returns
    -------
    CalibrationResult
        ``.camera`` is the :class:`~bigcomp.pixelcamera.PixelCamera`; ``.summary()``,
        ``.plot_ptc(path)``, ``.save(path)``.

    Raises
    ------
    ParameterError
        Fewer than 2 frames, frames of different shapes, one illumination only, neither or
        both of ``flats`` and ``gain``.
    UnsupportedDataError
        NaN/inf values, non-numeric data, saturated flats, no photon noise in the flats.

    Examples
    --------
    >>> from bigcomp.datasets import scmos_camera, scmos_dark, scmos_flats
    >>> cam = scmos_camera((64, 64), seed=0)
    >>> res = calibrate(scmos_dark(cam, 100), scmos_flats(cam, (200, 2000), frames=50))
    >>> abs(res.gain / float(np.mean(cam.gain)) - 1) < 0.03
    True
    """
    d = _open_stack(dark, "dark")
    frame = tuple(int(s) for s in d.shape[1:])
    if flats is None and gain is None:
        raise ParameterError("give flat-field series (flats=[stack1, stack2, ...] at >= 2 light "
                             "levels) to measure the gain, or the known gain= (ADU/e-)")
    if flats is not None and gain is not None:
        raise ParameterError("give flats or gain=, not both (the flats measure the gain)")
    fl: list = []
    if flats is not None:
        if isinstance(flats, (str, os.PathLike)) or (
                hasattr(flats, "shape") and len(flats.shape) != 4):
            flats = [flats]
        fl = [_open_stack(f, f"flat {k}") for k, f in enumerate(flats)]
        if len(fl) < 2:
            raise ParameterError(
                f"{len(fl)} illumination: the gain is the slope of variance against signal, "
                "give flat series at >= 2 different light levels")
        for k, f in enumerate(fl):
            if tuple(f.shape[1:]) != frame:
                raise ParameterError(f"flat {k} has frames of {tuple(f.shape[1:])} pixels, the "
                                     f"dark {frame}: use stacks of the same sensor region")
    bar = None
    if sys.stderr.isatty() if progress is None else progress:
        from .pipeline import _progress_bar  # rich, only when shown

        bar = _progress_bar(True, "calibrating", sum(int(a.shape[0]) for a in [d, *fl]))
    with bar if bar is not None else contextlib.nullcontext():
        def advance(n: int) -> None:
            if bar is not None:
                bar.advance(bar.task_ids[0], n)

        dm = _moments(d, "dark", block_bytes, advance)
        offset, read_var = dm.mean, dm.var
        stuck = read_var <= 0
        floor = 1.0 / 12.0 if dm.dtype.kind in "ui" else max(1e-12, 1e-6 * float(
            np.median(read_var)))
        read_var = np.where(stuck, floor, read_var)
        moms = [_moments(f, f"flat {k}", block_bytes, advance) for k, f in enumerate(fl)]
    noise = np.sqrt(read_var)
    hot = noise > HOT_FACTOR * np.median(noise)
    common: dict[str, Any] = {
        "offset_stderr": np.sqrt(read_var / dm.n),
        "variance_stderr": read_var * math.sqrt(2.0 / (dm.n - 1)),
        "dark_frames": dm.n, "hot_pixels": int(hot.sum()), "stuck_pixels": int(stuck.sum())}
    from .pixelcamera import PixelCamera

    if gain is not None:
        g = np.asarray(gain, np.float64)
        camera = PixelCamera(offset, read_var, g if g.ndim else float(g), source="calibrated")
        return CalibrationResult(camera, gain=float(np.median(camera.gain)), gain_stderr=0.0,
                                 gain_given=True, **common)
    return _with_flats(offset, read_var, dm.n, hot, moms, saturation, per_pixel_gain, common)


def _with_flats(offset, read_var, n_dark, hot, moms, saturation, per_pixel, common):
    from .pixelcamera import PixelCamera

    read_noise = np.sqrt(np.median(read_var))
    sats = []
    for k, m in enumerate(moms):
        sat = _saturated(m, saturation)
        if sat.mean() > MAX_SATURATED:
            raise UnsupportedDataError(
                f"flat {k} is saturated: {sat.mean():.1%} of the pixels reach "
                f"{float(m.top.max()):g} ADU; lower the light (or exposure) so every flat stays "
                "well below full well, or pass saturation= if that is not the clipping level")
        sats.append(sat)
    signals = [m.mean - offset for m in moms]
    lit = [float(np.median(s)) > 3.0 * read_noise for s in signals]
    if sum(lit) < 2:
        raise ParameterError(
            f"only {sum(lit)} flat series lie clearly above the dark level (median signal "
            f"{', '.join(f'{np.median(s):.2f}' for s in signals)} ADU, read noise "
            f"{read_noise:.2f} ADU): give flats at >= 2 different light levels")
    dark_var2 = 2.0 * read_var**2 / (n_dark - 1)  # variance of the dark variance estimate
    levels, level_vars, level_var_err = [], [], []
    num = np.zeros_like(offset)
    den = np.zeros_like(offset)
    err = np.zeros_like(offset)
    rng = np.random.default_rng(0)
    sample = rng.choice(offset.size, min(_PTC_SAMPLES, offset.size), replace=False)
    ptc_s, ptc_v = [], []
    for m, s, sat, ok_k in zip(moms, signals, sats, lit, strict=True):
        var = m.var
        shot = var - read_var
        ptc_s.append(s.ravel()[sample])
        ptc_v.append(var.ravel()[sample])
        if not ok_k:
            continue
        var_err = 2.0 * var**2 / (m.n - 1) + dark_var2  # variance of the shot-noise estimate
        good = ~(hot | sat) & (s > 0)
        ratio = shot[good] / s[good]
        med = np.median(ratio)
        mad = 1.4826 * np.median(np.abs(ratio - med))
        inlier = np.abs(ratio - med) <= 6.0 * mad if mad > 0 else np.ones(ratio.shape, bool)
        sg, eg = s[good][inlier], shot[good][inlier]
        levels.append(float(sg.mean()))
        level_vars.append(float(eg.mean()))
        level_var_err.append(float(var_err[good][inlier].mean()) / sg.size)
        # per pixel: weighted slope through the dark point; weights from the illumination's
        # typical variance (a pixel's own noisy variance would bias its slope low)
        w = (m.n - 1) / (2.0 * float(np.median(var)) ** 2)
        use = ~sat & (s > 0)
        num += np.where(use, w * s * shot, 0.0)
        den += np.where(use, w * s * s, 0.0)
        err += np.where(use, (w * s) ** 2 * var_err, 0.0)
    S, V, E = np.array(levels), np.array(level_vars), np.array(level_var_err)
    W = 1.0 / E
    g = float((W * S * V).sum() / (W * S * S).sum())
    if not g > 0:
        raise UnsupportedDataError(
            f"the flats show no photon noise (fitted gain {g:.3g}): their temporal variance "
            "does not grow with the signal; check they are lit, unprocessed camera frames")
    chi2 = float((W * (V - g * S) ** 2).sum())
    stderr = math.sqrt(1.0 / (W * S * S).sum()) * max(1.0, math.sqrt(chi2 / max(len(S) - 1, 1)))
    level_gains = V / S
    if np.abs(level_gains / g - 1).max() > MAX_GAIN_SPREAD:
        from .estimate import PoorFitWarning

        warnings.warn(
            "the illuminations disagree on the gain ("
            + ", ".join(f"{x:.3f} at {s:.0f} ADU" for x, s in zip(level_gains, S, strict=True))
            + "): the camera is nonlinear there, a flat is near saturation, or the light "
            "flickered; drop the outlying flat or use lower light levels", PoorFitWarning,
            stacklevel=3)
    gain_map_err, replaced = None, 0
    if per_pixel:
        with np.errstate(divide="ignore", invalid="ignore"):
            gmap = num / den
            gmap_err = np.sqrt(err) / den
        bad = ~np.isfinite(gmap) | (gmap < GAIN_RANGE[0]) | (gmap > GAIN_RANGE[1])
        replaced = int(bad.sum())
        gain_map = np.where(bad, g, gmap)
        gain_map_err = np.where(bad, stderr, gmap_err)
    else:
        gain_map = np.full(offset.shape, g)
    camera = PixelCamera(offset, read_var, gain_map, source="calibrated")
    return CalibrationResult(
        camera, gain=g, gain_stderr=stderr, flat_frames=tuple(m.n for m in moms),
        gain_map_stderr=gain_map_err, gain_replaced=replaced,
        saturated_pixels=tuple(int(s.sum()) for s in sats), levels=S, level_variances=V,
        level_gains=level_gains, per_pixel_gain=per_pixel,
        _ptc=(np.array(ptc_s), np.array(ptc_v), read_var.ravel()[sample]), **common)
