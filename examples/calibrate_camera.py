"""Calibrate an sCMOS camera from dark frames and flat fields, save and reload the camera file.

With a real camera, record ~100-1000 dark frames (shutter closed, the exposure you image with)
and 50+ frames at each of two or more uniform light levels, then run
``bigcomp calibrate --dark dark.tif --flat flat1.tif --flat flat2.tif -o camera.zarr``.
Here a synthetic sensor with known maps stands in for the camera.

Run: python examples/calibrate_camera.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import bigcomp
from bigcomp.datasets import scmos_camera, scmos_dark, scmos_flats, scmos_frames

truth = scmos_camera((256, 256), seed=0)  # per-pixel offset, read noise (hot tail), gain
dark = scmos_dark(truth, 100, seed=1)
flats = scmos_flats(truth, levels=(200.0, 2000.0), frames=50, seed=2)

result = bigcomp.calibrate(dark, flats, progress=False)
print(result.summary())

# an SMLM-like movie from the same sensor: dim background, compressed with the camera file
movie = scmos_frames(truth, 10.0, frames=16, seed=3)
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "camera.zarr"
    result.save(path)
    camera = bigcomp.load_camera(path)  # what --camera camera.zarr reads
    store = bigcomp.compress(movie, Path(tmp) / "movie.zarr", camera=path, q=1.0,
                             progress=False, scheduler="synchronous")
    back = bigcomp.open(Path(tmp) / "movie.zarr").values
assert camera == result.camera
error = np.abs(camera.forward(back) - camera.forward(movie)).max()  # each pixel's own σ
print(f"movie {movie.shape}: ratio {store.ratio:.2f}x, max error {error:.3f} of each pixel's "
      "own sigma (bound 0.5)")

offset_err = np.median(np.abs(camera.offset - truth.offset))
var_ratio = np.median(camera.variance / truth.variance)
gain_ratio = result.gain / truth.gain.mean()
print(f"recovered: offset median |error| {offset_err:.2f} ADU, read-noise variance ratio "
      f"{var_ratio:.3f} (median), gain ratio {gain_ratio:.4f} (estimated / true)")
