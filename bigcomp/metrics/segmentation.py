"""Segmentation agreement: Gaussian smoothing + threshold (Otsu or fixed), Dice and IoU.

The pipeline a user would run — smooth, threshold — is run on the original and on the decoded
array, and the two masks are compared. Smoothing is a chunk-wise ``map_overlap`` (halo of
4σ, scipy's ``reflect`` boundary, so chunked and whole-array results agree); Otsu's threshold
comes from a chunk-wise histogram of the smoothed data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np

from ._blocks import as_dask

__all__ = ["dice", "iou", "mask_overlap", "segment", "segmentation_agreement", "smooth"]


def _sigmas(ndim: int, sigma: float | Sequence[float]) -> tuple[float, ...]:
    if np.ndim(sigma) == 0:  # a scalar smooths the last two (in-plane) axes only
        return (0.0,) * max(0, ndim - 2) + (float(sigma),) * min(ndim, 2)
    s = tuple(float(v) for v in sigma)  # type: ignore[union-attr]
    if len(s) != ndim:
        raise ValueError(f"sigma needs one value per axis ({ndim}), got {s}")
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


def _otsu(sm: da.Array, lo: float, hi: float, bins: int = 1024) -> float:
    from skimage.filters import threshold_otsu

    if not hi > lo:
        return float(lo)
    counts, edges = da.histogram(sm, bins=bins, range=(lo, hi))
    centres = 0.5 * (edges[1:] + edges[:-1])
    return float(threshold_otsu(hist=(counts.compute(), centres)))


def segment(x: Any, *, sigma: float | Sequence[float] = 2.0,
            threshold: float | str = "otsu") -> tuple[da.Array, float]:
    """Foreground mask ``smooth(x, sigma) > threshold`` (lazy) and the threshold used.

    ``threshold="otsu"`` picks Otsu's threshold on a 1024-bin histogram of the smoothed data.
    """
    x = as_dask(x)
    sm = smooth(x, sigma)
    if threshold == "otsu":
        lo, hi = dask.compute(x.min(), x.max())  # smoothing stays within the data's range
        thr = _otsu(sm, float(lo), float(hi))
    elif isinstance(threshold, str):
        raise ValueError(f"threshold must be a number or 'otsu', got {threshold!r}")
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
                           threshold: float | str = "otsu") -> dict[str, float]:
    """Segment original and decoded the same way and compare the masks.

    With ``threshold="otsu"`` each array gets its own Otsu threshold, as a user's pipeline
    would; a number applies the same threshold to both.

    Returns
    -------
    dict
        ``dice``, ``iou``, ``threshold_original``, ``threshold_decoded``, ``fraction`` (the
        original's foreground fraction).
    """
    a = as_dask(original)
    b = as_dask(decoded, like=a)
    ma, ta = segment(a, sigma=sigma, threshold=threshold)
    mb, tb = segment(b, sigma=sigma, threshold=threshold)
    r = mask_overlap(ma, mb)
    return {"dice": r["dice"], "iou": r["iou"], "threshold_original": ta,
            "threshold_decoded": tb, "fraction": r["fraction_a"]}
