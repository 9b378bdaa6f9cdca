"""Per-pixel camera model (sCMOS): offset, read-noise variance and gain maps.

An sCMOS sensor has its own offset ``o_i`` (ADU), read-noise variance ``v_i`` (ADU²) and gain
``g_i`` (ADU per electron) at every pixel; a few hot pixels have many times the median read
noise. :class:`PixelCamera` holds those maps (the layout of storm-analysis' calibration files:
offset, variance, gain) for the last two axes (rows, columns) of the data; the noise of pixel
``i`` at value ``x`` is ``σ_i² = g_i·(x − o_i) + v_i``.

The codec turns the maps into a few noise *classes* per chunk (:mod:`bigcomp.pixelmodel`), each
with an integer-exact table that is conservative for every pixel in it, so every pixel comes
back within ``q/2`` of its *own* noise σ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import ParameterError
from .noise import GAIN_RANGE, MAX_OFFSET, MAX_READ_NOISE, CameraModel

__all__ = ["PixelCamera"]


def _plane(name: str, value, shape: tuple[int, int] | None) -> np.ndarray:
    a = np.asarray(value, dtype=np.float64)
    if a.ndim == 0 and shape is not None:
        a = np.full(shape, float(a))
    if a.ndim != 2:
        raise ParameterError(
            f"camera map {name!r} must be 2-D (rows, columns of the sensor), got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ParameterError(
            f"camera maps disagree in shape: {name!r} is {a.shape}, the offset map {shape}")
    if not np.isfinite(a).all():
        bad = int((~np.isfinite(a)).sum())
        raise ParameterError(
            f"camera map {name!r} has {bad} NaN or infinite value(s): recalibrate, or replace "
            "them (e.g. with the map's median) before compressing")
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class PixelCamera:
    """Per-pixel linear camera: offset, read-noise variance and gain maps.

    Parameters
    ----------
    offset : array_like, (rows, cols)
        Dark level of each pixel in ADU.
    variance : array_like, (rows, cols)
        Read-noise variance of each pixel in ADU² (> 0).
    gain : float or array_like, (rows, cols)
        ADU per photo-electron, one for the sensor or one per pixel (> 0).
    source : str
        Where the maps come from (``"calibrated"``, ``"given"``), for summaries.

    Examples
    --------
    >>> import numpy as np
    >>> cam = PixelCamera(np.full((4, 4), 100.0), np.full((4, 4), 4.0), 2.0)
    >>> cam.shape, round(cam.median_model().read_noise, 3)
    ((4, 4), 1.0)
    """

    offset: np.ndarray
    variance: np.ndarray
    gain: np.ndarray
    source: str = field(default="given", compare=False)

    def __post_init__(self) -> None:
        offset = _plane("offset", self.offset, None)
        shape = offset.shape
        variance = _plane("variance", self.variance, shape)
        gain = _plane("gain", self.gain, shape)
        if (variance <= 0).any():
            raise ParameterError(
                f"camera map 'variance' has {int((variance <= 0).sum())} value(s) <= 0: read-noise "
                "variance is in ADU² and positive; recalibrate from more dark frames")
        if not ((gain >= GAIN_RANGE[0]) & (gain <= GAIN_RANGE[1])).all():
            raise ParameterError(
                f"camera map 'gain' has values outside [{GAIN_RANGE[0]:g}, {GAIN_RANGE[1]:g}] "
                "ADU/electron: check its units (ADU per electron; storm-analysis and most "
                "datasheets' e⁻/ADU is the inverse)")
        if np.abs(offset).max() > MAX_OFFSET:
            raise ParameterError(f"camera map 'offset' has values beyond ±{MAX_OFFSET:g} ADU")
        if (np.sqrt(variance) / gain).max() > MAX_READ_NOISE:
            raise ParameterError(
                f"camera map 'variance' implies read noise above {MAX_READ_NOISE:g} electrons: "
                "check its units (ADU²)")
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "variance", variance)
        object.__setattr__(self, "gain", gain)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the maps."""
        return self.offset.shape  # type: ignore[return-value]

    @property
    def read_noise(self) -> np.ndarray:
        """Read noise of each pixel in electrons."""
        return np.sqrt(self.variance) / self.gain

    def sigma(self, x) -> np.ndarray:
        """Noise σ in ADU of value(s) ``x`` (broadcast against the maps)."""
        x = np.asarray(x, dtype=np.float64)
        return np.sqrt(self.gain * np.maximum(x - self.offset, 0.0) + self.variance)

    def forward(self, x) -> np.ndarray:
        """Each pixel's own variance-stabilising transform (see :class:`CameraModel`)."""
        c = 0.375 + self.variance / self.gain**2
        u = (np.asarray(x, dtype=np.float64) - self.offset) / self.gain
        return np.where(u >= 0, 2.0 * np.sqrt(np.maximum(u, 0.0) + c),
                        2.0 * np.sqrt(c) + u / np.sqrt(c))

    def window(self, rows: slice, cols: slice) -> PixelCamera:
        """The maps of a region of the sensor (a chunk's rows and columns)."""
        return PixelCamera(self.offset[rows, cols], self.variance[rows, cols],
                           self.gain[rows, cols], self.source)

    def check_frame(self, frame_shape: tuple[int, ...]) -> None:
        """Raise :class:`ParameterError` unless the maps cover frames of ``frame_shape``."""
        if tuple(frame_shape[-2:]) != self.shape:
            raise ParameterError(
                f"camera maps are {self.shape[0]} x {self.shape[1]} pixels but the data's frames "
                f"are {' x '.join(map(str, frame_shape[-2:]))}: use the calibration of this "
                "camera and region of interest (PixelCamera.window(rows, cols) crops the maps)")

    def median_model(self) -> CameraModel:
        """The global camera closest to the maps (medians): for summaries and headers."""
        g = float(np.median(self.gain))
        return CameraModel(g, float(np.median(self.offset)),
                           math.sqrt(float(np.median(self.variance))) / g)

    def conservative_model(self) -> CameraModel:
        """A global camera whose noise is at or below every pixel's at every value (smallest
        gain and ``3/8·g² + v``, largest offset): quantising with it keeps every pixel within
        ``q/2`` of its own noise, at a cost in ratio."""
        g = float(self.gain.min())
        k = float((0.375 * self.gain**2 + self.variance).min())
        return CameraModel(g, float(self.offset.max()), math.sqrt(max(k / g**2 - 0.375, 0.0)))

    def __eq__(self, other) -> bool:
        if not isinstance(other, PixelCamera):
            return NotImplemented
        return all(np.array_equal(getattr(self, k), getattr(other, k))
                   for k in ("offset", "variance", "gain"))

    __hash__ = None  # type: ignore[assignment]
