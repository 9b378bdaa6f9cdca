"""Camera noise model, variance-stabilising transform and integer-exact quantisation tables.

A camera pixel (ADU) is ``x = g·e + o`` with ``e`` photo-electrons (Poisson) plus Gaussian read
noise of ``σ_r`` electrons; ``g`` is the gain (ADU/e⁻) and ``o`` the offset (ADU).

The generalised Anscombe transform maps ``x`` to a value ``y`` whose noise is ≈ N(0, 1)::

    u = (x - o) / g                          (electrons)
    y = 2·sqrt(u + 3/8 + σ_r²)               for u >= 0
    y = 2·sqrt(3/8 + σ_r²) + u / sqrt(3/8 + σ_r²)   for u < 0  (linear, same slope)

The linear continuation below the offset keeps the transform monotonic and invertible for the
read-noise-only pixels that fall under the offset (the textbook transform clips them all to 0).

Quantising ``y`` with step ``q`` keeps every pixel within ``q/2`` of the truth in units of the
noise σ ("within noise level"). For integer data the transform is monotonic, so each quantisation
bin is a run of consecutive integers: :func:`quantisation_tables` precomputes ``bin[x]`` and the
reconstruction ``rec[k]`` so that encoding and decoding are table look-ups with an exact bound.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError

__all__ = ["CameraModel", "QuantisationTables", "quantisation_tables"]

GAIN_RANGE = (1e-6, 1e6)  # ADU per electron
MAX_READ_NOISE = 1e6  # electrons
MAX_OFFSET = 1e12  # ADU


@dataclass(frozen=True)
class CameraModel:
    """Linear camera with Poisson shot noise and Gaussian read noise.

    Parameters
    ----------
    gain : float
        ADU per photo-electron (> 0). For photon-counting detectors use 1.
    offset : float
        Dark level in ADU (the value of a pixel that received no light).
    read_noise : float
        Read-noise standard deviation in electrons (>= 0).

    Examples
    --------
    >>> cam = CameraModel(gain=2.0, offset=100.0, read_noise=1.6)
    >>> round(float(cam.sigma(100.0)), 3)  # read noise only, in ADU
    3.2
    """

    gain: float = 1.0
    offset: float = 0.0
    read_noise: float = 0.0

    def __post_init__(self) -> None:
        for name in ("gain", "offset", "read_noise"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.floating, np.integer)) or not math.isfinite(
                value
            ):
                raise ParameterError(f"camera {name} must be a finite number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if self.gain <= 0:
            raise ParameterError(
                f"camera gain must be > 0 ADU/electron, got {self.gain}; "
                "use gain=1 for photon-counting detectors"
            )
        if self.read_noise < 0:
            raise ParameterError(
                f"camera read_noise must be >= 0 electrons, got {self.read_noise}"
            )
        # beyond these no camera exists, and the transform's float64 arithmetic loses the
        # precision the bound rests on (read noise 1e155 even overflows its square)
        if not GAIN_RANGE[0] <= self.gain <= GAIN_RANGE[1]:
            raise ParameterError(
                f"camera gain {self.gain} ADU/electron is outside [{GAIN_RANGE[0]:g}, "
                f"{GAIN_RANGE[1]:g}]: check its units (ADU per electron, typically 0.1-10)"
            )
        if self.read_noise > MAX_READ_NOISE:
            raise ParameterError(
                f"camera read_noise {self.read_noise} electrons is above {MAX_READ_NOISE:g}: "
                "check its units (electrons rms, typically 0.5-10)"
            )
        if abs(self.offset) > MAX_OFFSET:
            raise ParameterError(
                f"camera offset {self.offset} ADU is beyond ±{MAX_OFFSET:g}: check its units "
                "(the dark level in ADU, typically 0-1000)"
            )

    @property
    def _c(self) -> float:
        return 0.375 + self.read_noise**2

    def sigma(self, x: np.ndarray | float) -> np.ndarray:
        """Noise standard deviation in ADU at pixel value(s) ``x``."""
        u = np.maximum((np.asarray(x, dtype=np.float64) - self.offset) / self.gain, 0.0)
        return self.gain * np.sqrt(u + self.read_noise**2)

    def forward(self, x: np.ndarray | float) -> np.ndarray:
        """Variance-stabilising transform: ADU -> noise-σ units (float64)."""
        c = self._c
        u = (np.asarray(x, dtype=np.float64) - self.offset) / self.gain
        return np.where(
            u >= 0, 2.0 * np.sqrt(np.maximum(u, 0.0) + c), 2.0 * math.sqrt(c) + u / math.sqrt(c)
        )

    def inverse(self, y: np.ndarray | float) -> np.ndarray:
        """Inverse of :meth:`forward`: noise-σ units -> ADU (float64)."""
        c = self._c
        y = np.asarray(y, dtype=np.float64)
        y0 = 2.0 * math.sqrt(c)
        u = np.where(y >= y0, (y / 2.0) ** 2 - c, (y - y0) * math.sqrt(c))
        return u * self.gain + self.offset

    def to_dict(self) -> dict[str, float]:
        """JSON-serialisable parameters."""
        return {"gain": self.gain, "offset": self.offset, "read_noise": self.read_noise}


@dataclass(frozen=True)
class QuantisationTables:
    """Integer-exact quantisation of one integer dtype for one camera and step.

    Attributes
    ----------
    bin : ndarray of uint32
        ``bin[x]`` is the bin index of integer value ``x`` (dense: 0, 1, 2, ...).
    rec : ndarray
        ``rec[k]`` is the integer written back for bin ``k`` (same dtype as the data).
    max_error : float
        Largest ``|forward(rec[bin[x]]) - forward(x)|`` over *every* possible ``x``, in noise-σ
        units; never more than ``q / 2``.
    """

    bin: np.ndarray
    rec: np.ndarray
    max_error: float

    @property
    def nbins(self) -> int:
        return int(self.rec.size)


@functools.lru_cache(maxsize=32)
def quantisation_tables(camera: CameraModel, q: float, dtype: str) -> QuantisationTables:
    """Build (and cache) the bin and reconstruction tables of an integer dtype.

    Bins are grown greedily from 0: the reconstruction value ``r`` of a bin starting at ``a`` is
    the largest integer with ``y(r) - y(a) <= q/2`` and the bin ends at the largest ``b`` with
    ``y(b) - y(r) <= q/2``. So every integer lies within ``q/2`` of its reconstruction in the
    stabilised domain, bins are as wide as that allows, and bin indices are dense.

    Parameters
    ----------
    camera : CameraModel
    q : float
        Quantisation step in noise-σ units (> 0).
    dtype : str
        ``"uint8"`` or ``"uint16"``.

    Returns
    -------
    QuantisationTables

    Examples
    --------
    >>> t = quantisation_tables(CameraModel(2.0, 100.0, 1.6), 1.0, "uint16")
    >>> t.max_error <= 0.5
    True
    """
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.uint8), np.dtype(np.uint16)):
        raise ParameterError(f"quantisation tables exist for uint8/uint16, not {dt}")
    if not q > 0:
        raise ParameterError(f"q must be > 0 for tables, got {q}")
    values = np.arange(np.iinfo(dt).max + 1, dtype=np.float64)
    y = camera.forward(values)
    half = q / 2.0
    if np.diff(y).min() > half:  # every integer its own bin (what the loop below gives, fast)
        ident = np.arange(y.size)
        return _frozen(ident.astype(np.uint32), ident.astype(dt), 0.0)
    bins, rec_index = greedy_bins(y, half)
    rec = rec_index.astype(dt)
    err = np.abs(y[rec_index[bins]] - y)
    max_error = float(err.max())
    if max_error > half * (1 + 1e-12):  # the construction guarantees it; a bug otherwise
        raise AssertionError(f"quantisation table violates its bound: {max_error} > {half}")
    return _frozen(bins, rec, max_error)


def greedy_bins(y: np.ndarray, half: float) -> tuple[np.ndarray, np.ndarray]:
    """Widest bins of consecutive integers within ``half`` of their reconstruction.

    ``y`` is the (increasing) transform of consecutive integers. Bins grow greedily from the
    first: the reconstruction ``r`` of a bin starting at ``a`` is the last ``r`` with
    ``y[r] - y[a] <= half``, the bin ends at the last ``b`` with ``y[b] - y[r] <= half``.

    Returns
    -------
    bins : ndarray of uint32
        Bin of each integer (dense: 0, 1, 2, ...).
    rec : ndarray of int64
        Position (in ``y``) of each bin's reconstruction.
    """
    from .kernels._bins import greedy  # (numba: imported when a table is first built)

    return greedy(y, half)


def _frozen(bins: np.ndarray, rec: np.ndarray, max_error: float) -> QuantisationTables:
    bins.setflags(write=False)
    rec.setflags(write=False)
    return QuantisationTables(bin=bins, rec=rec, max_error=max_error)
