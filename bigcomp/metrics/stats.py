"""Uncertainty of summary statistics: paired bootstrap confidence intervals.

A change such as "localisation error +4 %" is a ratio of two statistics over a finite set of
spots; it moves between noise realisations. :func:`bootstrap_ci` resamples the items (spots,
with their paired values kept together) to give a percentile confidence interval.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import ParameterError

__all__ = ["bootstrap_ci", "rms"]


def rms(v: np.ndarray, axis: int = -1) -> np.ndarray:
    """Root mean square along ``axis``.

    Examples
    --------
    >>> float(rms(np.array([3.0, 4.0, 0.0, 0.0])))
    2.5
    """
    v = np.asarray(v, np.float64)
    return np.sqrt(np.mean(v * v, axis=axis))


def bootstrap_ci(statistic: Callable[..., np.ndarray], *samples: np.ndarray,
                 n_boot: int = 2000, level: float = 0.95, seed: int = 0,
                 batch: int = 250) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of a statistic of paired samples.

    The ``n`` items are resampled with replacement, the same indices for every sample (so
    paired values stay paired), ``n_boot`` times.

    Parameters
    ----------
    statistic : callable
        ``statistic(*resampled) -> ndarray``: each argument has shape ``(b, n)`` (``b``
        resamples at once); returns ``b`` values, one per resample (reduce along axis -1).
    *samples : ndarray, shape (n,)
        Paired samples of equal length.
    n_boot : int
        Number of resamples.
    level : float
        Confidence level (0.95: the 2.5 % and 97.5 % percentiles).
    seed : int
        Random seed (the interval is deterministic for a given seed).
    batch : int
        Resamples evaluated per call (bounds memory to ``batch · n`` values per sample).

    Returns
    -------
    (low, high) : tuple of float
        NaN, NaN when there are fewer than 2 items.

    Examples
    --------
    >>> x = np.arange(100.0)
    >>> lo, hi = bootstrap_ci(lambda v: v.mean(axis=-1), x)
    >>> lo < 49.5 < hi
    True
    """
    arrays = [np.asarray(s, np.float64) for s in samples]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ParameterError("paired samples must have the same length")
    if n < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for start in range(0, n_boot, batch):
        idx = rng.integers(0, n, (min(batch, n_boot - start), n))
        values.append(np.asarray(statistic(*(a[idx] for a in arrays)), np.float64))
    v = np.concatenate(values)
    alpha = (1.0 - level) / 2
    lo, hi = np.nanpercentile(v, [100 * alpha, 100 * (1 - alpha)])
    return float(lo), float(hi)
