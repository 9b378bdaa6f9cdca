"""Fidelity metrics: how much does compression change what a scientist measures?

Every function accepts numpy or dask arrays and works chunk by chunk (reductions, or
``map_overlap`` with a halo), so memory is bounded by the chunk size. numpy input is wrapped as
dask with whole 2-D planes per chunk. scipy and scikit-image are imported where used (the
``eval`` extra).

- pixel: :func:`pixel_stats` (one pass), :func:`psnr`, :func:`sigma_error`,
  :func:`error_histogram`, :func:`correlation`, :func:`ssim`
- Fourier: :func:`fourier_correlation` (ring or shell)
- segmentation: :func:`smooth`, :func:`auto_threshold`, :func:`segment`,
  :func:`segmentation_agreement`, :func:`mask_overlap`, :func:`dice`, :func:`iou`
- spots: :func:`detect_spots`, :func:`fit_gaussians`, :func:`match_spots`,
  :func:`localisation_error`, :func:`paired_localisation_change`
- statistics: :func:`bootstrap_ci`
"""

from __future__ import annotations

from .fourier import fourier_correlation
from .pixel import HIST_EDGES, correlation, error_histogram, pixel_stats, psnr, sigma_error, ssim
from .segmentation import (
    auto_threshold,
    dice,
    iou,
    mask_overlap,
    segment,
    segmentation_agreement,
    smooth,
)
from .spots import (
    detect_spots,
    fit_gaussians,
    localisation_error,
    match_spots,
    paired_localisation_change,
)
from .stats import bootstrap_ci

__all__ = [
    "HIST_EDGES",
    "auto_threshold",
    "bootstrap_ci",
    "correlation",
    "detect_spots",
    "dice",
    "error_histogram",
    "fit_gaussians",
    "fourier_correlation",
    "iou",
    "localisation_error",
    "mask_overlap",
    "match_spots",
    "paired_localisation_change",
    "pixel_stats",
    "psnr",
    "segment",
    "segmentation_agreement",
    "sigma_error",
    "smooth",
    "ssim",
]
