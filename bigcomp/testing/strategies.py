"""hypothesis strategies for bigcomp's property tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..noise import CameraModel

__all__ = ["camera_arrays", "cameras", "integer_arrays", "shapes"]

shapes = hnp.array_shapes(min_dims=1, max_dims=5, min_side=1, max_side=9)


def integer_arrays(dtype: str = "uint16", shape=shapes) -> st.SearchStrategy[np.ndarray]:
    """Arrays mixing smooth structure, noise and extremes of the dtype."""
    dt = np.dtype(dtype)
    return hnp.arrays(dt, shape, elements=st.integers(0, int(np.iinfo(dt).max)))


cameras = st.builds(
    CameraModel,
    gain=st.floats(0.05, 20.0),
    offset=st.floats(0.0, 500.0),
    read_noise=st.floats(0.0, 5.0),
)


@st.composite
def camera_arrays(draw, dtype: str = "uint16"):
    """(camera, data) with data drawn around the camera's offset, as real counts are."""
    camera = draw(cameras)
    shape = draw(shapes)
    dt = np.dtype(dtype)
    top = int(np.iinfo(dt).max)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    photons = rng.exponential(draw(st.floats(0.1, 5000.0)), shape)
    values = camera.offset + camera.gain * (
        rng.poisson(photons) + rng.normal(0, camera.read_noise + 1e-9, shape)
    )
    data = np.clip(np.rint(values), 0, top).astype(dt)
    if draw(st.booleans()) and data.size:  # sprinkle extremes
        flat = data.reshape(-1)
        flat[rng.integers(0, flat.size, max(1, flat.size // 10))] = rng.choice([0, top])
    return camera, data
