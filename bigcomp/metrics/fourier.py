"""Fourier ring / shell correlation between an original and a decoded array.

``FRC(r) = Σ Re(F₁·F₂*) / sqrt(Σ|F₁|² · Σ|F₂|²)`` over the frequencies of ring (2-D) or shell
(3-D) ``r``. Computed per chunk (FFT over the last ``ndim`` axes of each block, frequencies
normalised to cycles/pixel so blocks of any size share the bins) and summed over blocks: keep
those axes whole in a chunk, or at least large (≥ 64 px), for a meaningful curve.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ParameterError
from ._blocks import as_dask, block_vectors

__all__ = ["fourier_correlation"]


def _radius(shape: tuple[int, ...]) -> np.ndarray:
    grids = np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing="ij", sparse=True)
    return np.sqrt(sum(g * g for g in grids))


def _block(a: np.ndarray, b: np.ndarray, *, ndim: int, nbins: int) -> np.ndarray:
    axes = tuple(range(a.ndim - ndim, a.ndim))
    fa = np.fft.fftn(a.astype(np.float64), axes=axes)
    fb = np.fft.fftn(b.astype(np.float64), axes=axes)
    r = _radius(a.shape[-ndim:])
    idx = np.minimum((r / 0.5 * nbins).astype(np.int64), nbins)  # bin nbins = beyond Nyquist
    idx = np.broadcast_to(idx, fa.shape).ravel()
    out = np.empty(3 * nbins)
    for k, v in enumerate(((fa * fb.conj()).real, np.abs(fa) ** 2, np.abs(fb) ** 2)):
        out[k * nbins:(k + 1) * nbins] = np.bincount(idx, v.ravel(), minlength=nbins + 1)[:nbins]
    return out


def fourier_correlation(original: Any, decoded: Any, *, ndim: int = 2,
                        nbins: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Fourier ring (``ndim=2``) or shell (``ndim=3``) correlation, chunk-wise.

    Parameters
    ----------
    original, decoded : array_like or dask.array.Array
        Same shape, at least ``ndim`` dimensions.
    ndim : {2, 3}
        Transform the last 2 axes (rings, averaged over all planes) or the last 3 (shells).
    nbins : int
        Number of equal-width frequency bins from 0 to 0.5 cycles/pixel.

    Returns
    -------
    freq : ndarray
        Bin centres in cycles/pixel.
    frc : ndarray
        Correlation per bin (1 = identical; NaN where a bin has no power).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> a = rng.normal(size=(64, 64))
    >>> freq, frc = fourier_correlation(a, a, nbins=8)
    >>> bool(np.allclose(frc, 1.0))
    True
    """
    if ndim not in (2, 3):
        raise ParameterError(f"ndim must be 2 or 3, got {ndim!r}")
    a = as_dask(original)
    b = as_dask(decoded, like=a)
    if a.ndim < ndim:
        raise ParameterError(f"need at least {ndim} dimensions, got {a.ndim}")
    v = block_vectors(_block, [a, b], 3 * nbins, ndim=ndim, nbins=nbins).compute()
    num, pa, pb = v.reshape(-1, 3, nbins).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        frc = num / np.sqrt(pa * pb)
    freq = (np.arange(nbins) + 0.5) * 0.5 / nbins
    return freq, frc
