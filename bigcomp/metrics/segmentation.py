"""Segmentation agreement: Gaussian smoothing + threshold, Dice and IoU.

The pipeline a user would run — smooth, threshold — is run on the original and on the decoded
array, and the two masks are compared. By default the threshold (Otsu, Li, triangle or a
number) is fixed on the original and applied to both, so the masks differ only where the data
do; ``per_image=True`` lets each array pick its own. Smoothing is a chunk-wise ``map_overlap``
(halo of 4σ, scipy's ``reflect`` boundary, so chunked and whole-array results agree);
automatic thresholds come from a chunk-wise histogram of the smoothed data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np

from ..errors import ParameterError
from ._blocks import as_dask

__all__ = ["THRESHOLDS", "auto_threshold", "dice", "iou", "li_from_hist", "mask_overlap",
           "otsu_from_hist", "segment", "segmentation_agreement", "smooth",
           "triangle_from_hist"]


def _sigmas(ndim: int, sigma: float | Sequence[float]) -> tuple[float, ...]:
    if np.ndim(sigma) == 0:  # a scalar smooths the last two (in-plane) axes only
        return (0.0,) * max(0, ndim - 2) + (float(sigma),) * min(ndim, 2)
    s = tuple(float(v) for v in sigma)  # type: ignore[union-attr]
    if len(s) != ndim:
        raise ParameterError(f"sigma needs one value per axis ({ndim}), got {s}")
    return s


def smooth(x: Any, sigma: float | Sequence[float] = 2.0) -> da.Array:
    """Gaussian-smoothed float32 copy (lazy, chunk-wise); a scalar ``sigma`` smooths y, x only."""
    from scipy import ndimage

    x = as_dask(x)
    s = _sigmas(x.ndim, sigma)
    depth = {i: int(4.0 * v + 0.5) for i, v in enumerate(s)}
    return x.map_overlap(lambda b: ndimage.gaussian_filter(b.astype(np.float32), s,
                                                           mode="reflect"),
                         depth=depth, boundary="reflect", dtype=np.float32,
                         meta=np.empty((0,) * x.ndim, np.float32))


THRESHOLDS = ("otsu", "li", "triangle")


def _histogram(sm: da.Array, lo: float, hi: float, bins: int) -> tuple[np.ndarray, np.ndarray]:
    counts, edges = da.histogram(sm, bins=bins, range=(lo, hi))
    return np.asarray(counts.compute(), np.float64), 0.5 * (edges[1:] + edges[:-1])


def otsu_from_hist(counts: np.ndarray, centres: np.ndarray) -> float:
    """Otsu's threshold (largest between-class variance) of a histogram."""
    from skimage.filters import threshold_otsu

    return float(threshold_otsu(hist=(np.asarray(counts), np.asarray(centres))))


def li_from_hist(counts: np.ndarray, centres: np.ndarray, iterations: int = 1000) -> float:
    """Li's minimum cross-entropy threshold of a histogram (Li & Tam 1998 iteration).

    As scikit-image's ``threshold_li``: values are shifted so the lowest bin is at 0, the
    iteration ``t ← (μ_b − μ_f) / (ln μ_b − ln μ_f)`` starts at the mean and stops when ``t``
    moves by less than half a bin.
    """
    c, h = np.asarray(centres, np.float64), np.asarray(counts, np.float64)
    if h.sum() == 0 or np.count_nonzero(h) < 2:
        return float(c[np.argmax(h)] if h.sum() else c[0])
    base = c[0] - 0.5 * (c[1] - c[0]) if len(c) > 1 else c[0]
    v = c - base  # > 0: bin centres above the lower histogram edge
    t, tol = float((v * h).sum() / h.sum()), 0.5 * float(c[1] - c[0])
    for _ in range(iterations):
        fg = v > t
        nf, nb = h[fg].sum(), h[~fg].sum()
        if nf == 0 or nb == 0:
            break
        mf, mb = (v[fg] * h[fg]).sum() / nf, (v[~fg] * h[~fg]).sum() / nb
        t_next = (mb - mf) / (math.log(mb) - math.log(mf))
        if abs(t_next - t) < tol:
            t = t_next
            break
        t = t_next
    return float(t + base)


def triangle_from_hist(counts: np.ndarray, centres: np.ndarray) -> float:
    """Triangle threshold (Zack et al. 1977) of a histogram, as scikit-image computes it.

    The line from the histogram's peak to its far end (on the longer side); the threshold is
    the bin farthest below that line.
    """
    h = np.asarray(counts, np.float64)
    c = np.asarray(centres, np.float64)
    nz = np.flatnonzero(h)
    if len(nz) < 2:
        return float(c[nz[0]] if len(nz) else c[0])
    peak, low, high = int(np.argmax(h)), int(nz[0]), int(nz[-1])
    flip = peak - low < high - peak
    if flip:
        h, c = h[::-1], c[::-1]
        low, peak = len(h) - high - 1, len(h) - peak - 1
    width = peak - low
    if width <= 0:
        return float(c[peak])
    x1 = np.arange(width)
    norm = math.hypot(h[peak], width)
    dist = (h[peak] / norm) * x1 - (width / norm) * h[x1 + low]
    return float(c[int(np.argmax(dist)) + low])


_FROM_HIST = {"otsu": otsu_from_hist, "li": li_from_hist, "triangle": triangle_from_hist}


def auto_threshold(sm: Any, method: str = "otsu", *,
                   value_range: tuple[float, float] | None = None, bins: int = 1024) -> float:
    """Automatic threshold of (smoothed) data from a chunk-wise histogram.

    Parameters
    ----------
    sm : array_like or dask.array.Array
        Usually ``smooth(x)``.
    method : {"otsu", "li", "triangle"}
        Otsu (between-class variance), Li (minimum cross entropy) or triangle.
    value_range : (float, float), optional
        Histogram range; default the data's min and max. Give the same range to compare
        thresholds of two arrays on the same bins.
    bins : int
        Number of histogram bins.

    Returns
    -------
    float
    """
    if method not in _FROM_HIST:
        raise ParameterError(f"threshold must be a number or one of {THRESHOLDS}, got {method!r}")
    sm = as_dask(sm)
    lo, hi = value_range if value_range is not None else (
        float(v) for v in dask.compute(sm.min(), sm.max()))
    if not hi > lo:
        return float(lo)
    return _FROM_HIST[method](*_histogram(sm, float(lo), float(hi), bins))


def segment(x: Any, *, sigma: float | Sequence[float] = 2.0, threshold: float | str = "otsu",
            value_range: tuple[float, float] | None = None) -> tuple[da.Array, float]:
    """Foreground mask ``smooth(x, sigma) > threshold`` (lazy) and the threshold used.

    ``threshold`` is a number or a method of :func:`auto_threshold` ("otsu", "li",
    "triangle"), computed on a 1024-bin histogram of the smoothed data over ``value_range``
    (default: the range of ``x``; smoothing stays within it).
    """
    x = as_dask(x)
    sm = smooth(x, sigma)
    if isinstance(threshold, str):
        if value_range is None:
            value_range = tuple(float(v) for v in dask.compute(x.min(), x.max()))
        thr = auto_threshold(sm, threshold, value_range=value_range)
    else:
        thr = float(threshold)
    return sm > thr, thr


def mask_overlap(mask_a: Any, mask_b: Any) -> dict[str, float]:
    """Dice and IoU (Jaccard) of two boolean masks; both are 1 when both masks are empty.

    Examples
    --------
    >>> a = np.zeros((4, 4), bool); a[:2] = True      # 8 pixels
    >>> b = np.zeros((4, 4), bool); b[1:3] = True     # 8 pixels, 4 shared
    >>> mask_overlap(a, b)
    {'dice': 0.5, 'iou': 0.3333333333333333, 'fraction_a': 0.5, 'fraction_b': 0.5}
    """
    a = as_dask(np.asarray(mask_a, bool) if not isinstance(mask_a, da.Array) else mask_a)
    b = as_dask(np.asarray(mask_b, bool) if not isinstance(mask_b, da.Array) else mask_b,
                like=a)
    na, nb, inter = dask.compute(a.sum(), b.sum(), (a & b).sum())
    na, nb, inter = int(na), int(nb), int(inter)
    union = na + nb - inter
    return {"dice": 2 * inter / (na + nb) if na + nb else 1.0,
            "iou": inter / union if union else 1.0,
            "fraction_a": na / math.prod(a.shape), "fraction_b": nb / math.prod(a.shape)}


def dice(mask_a: Any, mask_b: Any) -> float:
    """Dice coefficient ``2|A∩B| / (|A| + |B|)`` of two boolean masks."""
    return mask_overlap(mask_a, mask_b)["dice"]


def iou(mask_a: Any, mask_b: Any) -> float:
    """Intersection over union ``|A∩B| / |A∪B|`` of two boolean masks."""
    return mask_overlap(mask_a, mask_b)["iou"]


def segmentation_agreement(original: Any, decoded: Any, *,
                           sigma: float | Sequence[float] = 2.0,
                           threshold: float | str = "otsu",
                           per_image: bool = False) -> dict[str, float]:
    """Segment original and decoded the same way and compare the masks.

    Parameters
    ----------
    original, decoded : array_like or dask.array.Array
        Same shape.
    sigma : float or sequence of float
        Gaussian smoothing (a scalar smooths the last two axes only).
    threshold : {"otsu", "li", "triangle"} or float
        A number applies to both arrays. A method name computes the threshold on the
        original's smoothed data and applies it to both (default): one pipeline with fixed
        parameters, so the masks differ only where the data differ.
    per_image : bool
        With a method name, compute a threshold for each array separately instead (as an
        automatic pipeline run on each file would); both histograms share the same bins
        (the range of both arrays), so a different maximum does not shift the bin grid.

    Returns
    -------
    dict
        ``dice``, ``iou``, ``threshold_original``, ``threshold_decoded``, ``fraction`` (the
        original's foreground fraction).
    """
    a = as_dask(original)
    b = as_dask(decoded, like=a)
    if isinstance(threshold, str) and per_image:
        (la, ha, lb, hb) = (float(v) for v in dask.compute(a.min(), a.max(), b.min(), b.max()))
        rng = (min(la, lb), max(ha, hb))
        ma, ta = segment(a, sigma=sigma, threshold=threshold, value_range=rng)
        mb, tb = segment(b, sigma=sigma, threshold=threshold, value_range=rng)
    else:
        ma, ta = segment(a, sigma=sigma, threshold=threshold)
        mb, tb = segment(b, sigma=sigma, threshold=ta)
    r = mask_overlap(ma, mb)
    return {"dice": r["dice"], "iou": r["iou"], "threshold_original": ta,
            "threshold_decoded": tb, "fraction": r["fraction_a"]}
