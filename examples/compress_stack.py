"""Compress a light-sheet stack into a zarr v3 array, within the camera's noise.

Run: python examples/compress_stack.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import zarr

import bigcomp
from bigcomp.datasets import light_sheet

syn = light_sheet((32, 256, 256), seed=1)
camera = bigcomp.CameraModel(gain=syn.gain, offset=syn.offset, read_noise=syn.read_noise)

with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "stack.zarr"
    array = zarr.create_array(
        path,
        shape=syn.data.shape,
        chunks=(16, 128, 128),
        dtype=syn.data.dtype,
        serializer=bigcomp.zarr3.WNL(q=1.0, **camera.to_dict()),
        compressors=None,
    )
    array[:] = syn.data
    stored = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    back = zarr.open_array(path, mode="r")[:]

error = np.abs(camera.forward(back) - camera.forward(syn.data)).max()
print(f"ratio {syn.data.nbytes / stored:.2f}x, max error {error:.3f} sigma (bound 0.5)")
