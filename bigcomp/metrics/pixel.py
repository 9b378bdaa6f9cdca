"""Pixel-wise fidelity: PSNR, errors in noise σ, error histogram, intensity correlation, SSIM.

One pass over the data (:func:`pixel_stats`) gives every reduction at once; the single-metric
functions are thin views of it. Errors "in σ" are ``VST(decoded) − VST(original)`` with the
camera model's variance-stabilising transform, i.e. in units of the camera's noise σ at that
pixel (the unit in which bigcomp's bound ``q/2`` is stated).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import dask.array as da
import numpy as np

from ..errors import ParameterError
from ._blocks import as_dask, block_vectors

if TYPE_CHECKING:
    from ..noise import CameraModel

__all__ = [
    "HIST_EDGES",
    "correlation",
    "error_histogram",
    "pixel_stats",
    "psnr",
    "sigma_error",
    "ssim",
]

#: Default bin edges of the signed σ-error histogram; values outside go to the end bins.
HIST_EDGES = np.linspace(-3.0, 3.0, 121)

# layout of the per-block vector (before the histogram counts)
_N, _MA, _MB, _M2A, _M2B, _CAB, _SSE, _MAXD, _MINA, _MAXA = range(10)
_SABS, _SSQ, _MAXE, _TB, _TA, _TFB, _TFA = range(10, 17)
_BASE = 17


def _block(a: np.ndarray, b: np.ndarray, *t: np.ndarray, camera: CameraModel | None,
           edges: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64, copy=False)
    b = b.astype(np.float64, copy=False)
    out = np.zeros(_BASE + len(edges) - 1)
    n = a.size
    if n == 0:
        out[[_MAXD, _MAXE, _MAXA]] = -np.inf
        out[_MINA] = np.inf
        return out
    ma, mb = a.mean(), b.mean()
    ca, cb = a - ma, b - mb
    d = b - a
    out[:_BASE] = 0.0
    out[[_N, _MA, _MB]] = n, ma, mb
    out[_M2A], out[_M2B], out[_CAB] = (ca * ca).sum(), (cb * cb).sum(), (ca * cb).sum()
    out[_SSE], out[_MAXD] = (d * d).sum(), np.abs(d).max()
    out[_MINA], out[_MAXA] = a.min(), a.max()
    if camera is not None:
        fa = camera.forward(a)
        e = camera.forward(b) - fa
        out[_SABS], out[_SSQ], out[_MAXE] = np.abs(e).sum(), (e * e).sum(), np.abs(e).max()
        clipped = np.clip(e, edges[0], edges[-1])
        out[_BASE:] = np.histogram(clipped, bins=edges)[0]
        if t:
            tt = t[0].astype(np.float64, copy=False)
            ft = camera.forward(tt)
            out[_TB], out[_TA] = ((b - tt) ** 2).sum(), ((a - tt) ** 2).sum()
            out[_TFB] = ((camera.forward(b) - ft) ** 2).sum()
            out[_TFA] = ((fa - ft) ** 2).sum()
    return out


def _combine(v: np.ndarray) -> dict[str, Any]:
    """Merge the per-block vectors (Chan et al. for the centred moments)."""
    v = v.reshape(-1, v.shape[-1])
    n_i = v[:, _N]
    n = n_i.sum()
    ma = (n_i * v[:, _MA]).sum() / n
    mb = (n_i * v[:, _MB]).sum() / n
    da_, db_ = v[:, _MA] - ma, v[:, _MB] - mb
    m2a = (v[:, _M2A] + n_i * da_ * da_).sum()
    m2b = (v[:, _M2B] + n_i * db_ * db_).sum()
    cab = (v[:, _CAB] + n_i * da_ * db_).sum()
    s = v.sum(axis=0)
    return {"n": n, "mean_a": ma, "mean_b": mb, "m2a": m2a, "m2b": m2b, "cab": cab,
            "sse": s[_SSE], "max_abs": v[:, _MAXD].max(), "min_a": v[:, _MINA].min(),
            "max_a": v[:, _MAXA].max(), "sum_abs_sigma": s[_SABS], "ssq_sigma": s[_SSQ],
            "max_sigma": v[:, _MAXE].max(), "truth": s[_TB:_TFA + 1], "hist": s[_BASE:]}


def pixel_stats(original: Any, decoded: Any, *, camera: CameraModel | None = None,
                truth: Any = None, data_range: float | None = None,
                edges: np.ndarray = HIST_EDGES) -> dict[str, Any]:
    """All pixel-wise fidelity numbers in one chunk-wise pass.

    Parameters
    ----------
    original, decoded : array_like or dask.array.Array
        Same shape. numpy input is wrapped as dask (whole planes per chunk).
    camera : CameraModel, optional
        Needed for the σ-unit errors, the histogram and the comparison with ``truth``.
    truth : array_like, optional
        Noise-free image (synthetic data): adds the error against it.
    data_range : float, optional
        Peak of the PSNR; default: ``max(original) − min(original)``.
    edges : ndarray
        Bin edges (σ) of the signed error histogram; errors beyond them fall in the end bins.

    Returns
    -------
    dict
        ``mse``, ``psnr`` (dB, ``inf`` if identical), ``max_abs_error`` (ADU), ``correlation``
        (Pearson), ``data_range``, and with a camera ``max_sigma``, ``mean_sigma`` (mean
        ``|error|``), ``rms_sigma``, ``hist`` / ``edges``; with ``truth`` also
        ``truth_rms_ratio`` = RMS(decoded − truth) / RMS(original − truth) (ADU; 1 = no
        error beyond the noise), ``truth_rms_sigma`` / ``noise_rms_sigma`` = RMS of
        VST(decoded) − VST(truth) and VST(original) − VST(truth).

    Examples
    --------
    >>> a = np.full((4, 8, 8), 100.0); a[0, 0, 0] = 200.0
    >>> s = pixel_stats(a, a + 2.0)
    >>> float(s["mse"]), round(float(s["psnr"]), 2)
    (4.0, 33.98)
    """
    a = as_dask(original)
    b = as_dask(decoded, like=a)
    arrays = [a, b]
    if truth is not None:
        if camera is None:
            raise ParameterError("comparing with truth needs the camera model")
        arrays.append(as_dask(truth, like=a))
    size = _BASE + len(edges) - 1
    r = _combine(block_vectors(_block, arrays, size, camera=camera,
                               edges=np.asarray(edges, np.float64)).compute())
    n = r["n"]
    rng = float(r["max_a"] - r["min_a"]) if data_range is None else float(data_range)
    mse = float(r["sse"] / n)
    den = math.sqrt(r["m2a"] * r["m2b"])
    out: dict[str, Any] = {
        "n": int(n), "mse": mse, "data_range": rng, "max_abs_error": float(r["max_abs"]),
        "psnr": math.inf if mse == 0 else (10 * math.log10(rng * rng / mse) if rng > 0
                                            else -math.inf),
        "correlation": float(r["cab"] / den) if den > 0 else (1.0 if mse == 0 else math.nan),
    }
    if camera is not None:
        out.update(max_sigma=float(r["max_sigma"]), mean_sigma=float(r["sum_abs_sigma"] / n),
                   rms_sigma=math.sqrt(r["ssq_sigma"] / n), hist=r["hist"],
                   edges=np.asarray(edges, np.float64))
        if truth is not None:
            tb, ta, tfb, tfa = r["truth"]
            out.update(truth_rms_ratio=math.sqrt(tb / ta) if ta > 0 else math.nan,
                       truth_rms_sigma=math.sqrt(tfb / n), noise_rms_sigma=math.sqrt(tfa / n))
    return out


def psnr(original: Any, decoded: Any, *, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB, ``10·log10(R² / MSE)``.

    ``R`` = ``data_range`` or ``max(original) − min(original)`` (not the dtype's range: camera
    data rarely spans it). ``inf`` for identical arrays.

    Examples
    --------
    >>> a = np.zeros((8, 8)); a[0, 0] = 100.0
    >>> psnr(a, a + 1.0)  # MSE = 1, R = 100
    40.0
    """
    return pixel_stats(original, decoded, data_range=data_range)["psnr"]


def correlation(original: Any, decoded: Any) -> float:
    """Pearson correlation of the intensities (1 = perfectly linear relation)."""
    return pixel_stats(original, decoded)["correlation"]


def sigma_error(original: Any, decoded: Any, *, camera: CameraModel) -> dict[str, float]:
    """Largest, mean absolute and RMS error in units of the camera's noise σ.

    Returns
    -------
    dict
        ``max``, ``mean``, ``rms`` of ``VST(decoded) − VST(original)``.
    """
    s = pixel_stats(original, decoded, camera=camera)
    return {"max": s["max_sigma"], "mean": s["mean_sigma"], "rms": s["rms_sigma"]}


def error_histogram(original: Any, decoded: Any, *, camera: CameraModel,
                    edges: np.ndarray = HIST_EDGES) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the signed error ``VST(decoded) − VST(original)`` (σ) and the bin edges."""
    s = pixel_stats(original, decoded, camera=camera, edges=edges)
    return s["hist"], s["edges"]


# ------------------------------------------------------------------------------ SSIM
def _ssim_map(a: np.ndarray, b: np.ndarray, *, data_range: float, win_size: int) -> np.ndarray:
    from skimage.metrics import structural_similarity

    out = np.empty(a.shape, np.float64)
    pa = a.reshape(-1, *a.shape[-2:])
    pb = b.reshape(-1, *b.shape[-2:])
    po = out.reshape(-1, *a.shape[-2:])
    for i in range(pa.shape[0]):
        po[i] = structural_similarity(pa[i].astype(np.float64), pb[i].astype(np.float64),
                                      data_range=data_range, win_size=win_size, full=True)[1]
    return out


def ssim(original: Any, decoded: Any, *, data_range: float | None = None,
         win_size: int = 7) -> float:
    """Mean structural similarity of the 2-D planes (last two axes), as scikit-image computes it.

    Each plane is compared with :func:`skimage.metrics.structural_similarity` (uniform
    ``win_size`` window); the SSIM map is computed chunk-wise with a halo of ``win_size // 2``
    and averaged over every pixel at least that far from the plane's edges, which equals the
    mean of scikit-image's per-plane values. ``data_range`` defaults to
    ``max(original) − min(original)`` over the whole array.
    """
    a = as_dask(original)
    b = as_dask(decoded, like=a)
    if a.ndim < 2 or min(a.shape[-2:]) < win_size:
        raise ParameterError(f"SSIM needs planes of at least {win_size}x{win_size}, got {a.shape}")
    if data_range is None:
        lo, hi = da.compute(a.min(), a.max())
        data_range = float(hi) - float(lo)
    pad = win_size // 2
    depth = {a.ndim - 2: pad, a.ndim - 1: pad}
    smap = da.map_overlap(_ssim_map, a, b, depth=depth, boundary="none", dtype=np.float64,
                          data_range=float(data_range) or 1.0, win_size=win_size,
                          meta=np.empty((0,) * a.ndim, np.float64))
    return float(smap[..., pad:a.shape[-2] - pad, pad:a.shape[-1] - pad].mean().compute())
