"""sCMOS sensors: one global camera model against per-pixel maps (issue 18).

Usage::

    python benchmarks/scmos.py [--quick] [--data ../shared/data] > scmos.md

For synthetic sCMOS sensors (:func:`bigcomp.datasets.scmos_camera`: log-normal read noise with
hot pixels, gain and offset spread) at several backgrounds, and for the STORM movie with its
storm-analysis calibration (``calib.npy``, read with ``baseline=100, gain_units='e_per_adu'``,
see docs/camera.md), every chunk is coded at ``q = 1`` with

* **maps**: the per-pixel model (format version 6, maps kept once per array);
* **median**: the global camera of the maps' medians (what a datasheet gives);
* **estimated**: the conservative model of :func:`bigcomp.estimate_camera` on the data (what
  ``compress`` codes with unasked);
* **conservative**: :meth:`PixelCamera.conservative_model`, a global model at or below every
  pixel's noise (the only global model that keeps the bound for every pixel);

and decoded. Reported per case: the share of pixels beyond their own bound (0.5 σ of *their*
transform), the largest error in their own σ, and the ratio. Target: maps leave no pixel
beyond, at a ratio at least the global models'.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

import bigcomp
from bigcomp import decode_chunk, encode_chunk
from bigcomp.datasets import scmos_camera, scmos_frames
from bigcomp.pixelcamera import PixelCamera
from bigcomp.pixelmodel import noise_maps

Q = 1.0


def _code(x: np.ndarray, camera, maps=None) -> tuple[np.ndarray, int]:
    blob = encode_chunk(x, q=Q, camera=camera, noise_maps=maps)
    return decode_chunk(blob, noise_maps=maps), len(blob)


def _row(name: str, cam: PixelCamera, x: np.ndarray, out) -> dict:
    truth = cam.forward(x.astype(np.float64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimated = bigcomp.estimate_camera(x, time_axis=0 if x.shape[0] > 1 else None)
    models = {"maps": (cam.median_model(), noise_maps(cam, x.dtype)),
              "median": (cam.median_model(), None),
              "estimated": (estimated.conservative, None),  # what compress codes with
              "conservative": (cam.conservative_model(), None)}
    cells = []
    result = {}
    for key, (model, maps) in models.items():
        back, size = _code(x, model, maps)
        err = np.abs(cam.forward(back.astype(np.float64)) - truth)
        beyond = float((err > Q / 2 * (1 + 1e-9)).mean())
        ratio = x.nbytes / size
        result[key] = (beyond, float(err.max()), ratio)
        cells.append(f"{100 * beyond:.3f} % / {err.max():.2f} / {ratio:.3f}")
    out.write(f"| {name} | " + " | ".join(cells) + " |\n")
    out.flush()
    return result


def synthetic_cases(quick: bool):
    shape = (128, 128) if quick else (256, 256)
    planes = 16
    for seed, (median_rn, hot, spread) in enumerate([(1.5, 0.01, 2.0), (1.0, 0.02, 3.0),
                                                     (2.5, 0.005, 1.0)]):
        cam = scmos_camera(shape, seed=seed, median_read_noise=median_rn, hot_fraction=hot,
                           offset_spread=spread)
        rng = np.random.default_rng(100 + seed)
        for background in ((5, 50) if quick else (2, 10, 50, 500)):
            photons = background + rng.gamma(0.3, 40.0, shape)  # sparse bright structure
            x = scmos_frames(cam, photons, frames=planes, seed=seed * 10 + background)
            yield (f"synthetic σ_r {median_rn} e⁻, {100 * hot:g} % hot, background "
                   f"{background} e⁻", cam, x)


def storm_case(root: str):
    movie = os.path.join(root, "storm_scmos", "sample.dax")
    calib = os.path.join(root, "storm_scmos", "calib.npy")
    if not (os.path.exists(movie) and os.path.exists(calib)):
        return None
    x = np.fromfile(movie, ">u2").reshape(-1, 256, 256).astype(np.uint16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cam = bigcomp.load_camera(calib, baseline=100, gain_units="e_per_adu")
    return "STORM sample.dax (11 frames) with calib.npy", cam, x


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..",
                                                         "shared", "data"))
    args = parser.parse_args(argv)
    out = sys.stdout
    out.write("Cells: pixels beyond their own bound / largest error (own σ) / ratio, q = 1.\n\n")
    out.write("| data | maps | median | estimated | conservative |\n|---|---|---|---|---|\n")
    rows = []
    cases = list(synthetic_cases(args.quick))
    storm = storm_case(args.data)
    if storm is not None:
        cases.append(storm)
    for name, cam, x in cases:
        rows.append(_row(name, cam, x, out))
    clean = all(r["maps"][0] == 0 for r in rows)
    rel = [r["maps"][2] / max(r[k][2] for k in ("median", "estimated")) for r in rows]
    rel_c = [r["maps"][2] / r["conservative"][2] for r in rows]
    out.write(f"\nmaps: {'no pixel' if clean else 'PIXELS'} beyond their bound in any case; "
              f"ratio {min(rel):.3f}-{max(rel):.3f} of the better global model (which breaks "
              f"the bound), {min(rel_c):.3f}-{max(rel_c):.3f} of the conservative global one\n")
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
