"""hypothesis strategies for bigcomp's property tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ..noise import CameraModel

__all__ = [
    "bound_cases",
    "camera_arrays",
    "cameras",
    "integer_arrays",
    "log_uniform",
    "shapes",
    "small_shapes",
    "steps",
    "value_ranges",
    "wide_cameras",
]

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


# ------------------------------------------------------------------------------------------------
# adversarial strategies for the error bound (tests/test_bound.py): cameras far from typical,
# offsets outside the data, steps from 1e-12 to 1e6 sigma, saturated, constant and extreme data


def log_uniform(lo: float, hi: float) -> st.SearchStrategy[float]:
    """Floats spread evenly in ``log10`` between ``lo`` and ``hi`` (> 0)."""
    return st.floats(np.log10(lo), np.log10(hi)).map(lambda e: float(10.0**e))


steps = st.integers(0, 9).flatmap(
    lambda i: log_uniform(1e-12, 1e-3) if i == 0  # below what pq's fixed point resolves
    else log_uniform(100.0, 1e6) if i == 1
    else st.sampled_from([0.25, 0.5, 1.0, 0.915057, 2.0**-10]) if i == 2
    else log_uniform(1e-3, 100.0)
)
"""Quantisation steps q (> 0) in noise-sigma units: log-uniform over 1e-3..100 seven times in
ten, else tiny (1e-12..1e-3), huge (100..1e6) or an awkward exact value."""

small_shapes = st.one_of(
    hnp.array_shapes(min_dims=1, max_dims=1, min_side=1, max_side=64),
    hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=4).flatmap(
        lambda lead: st.tuples(st.integers(1, 16), st.integers(1, 16)).map(
            lambda rc: (*lead[:-2], *rc) if len(lead) > 2 else rc
        )
    ),
)
"""1-D to 4-D shapes of at most 4 x 4 x 16 x 16 pixels (rows and columns up to 16)."""


@st.composite
def value_ranges(draw, dtype: str) -> tuple[float, float]:
    """The ``[lo, hi]`` data of ``dtype`` lie in: the whole integer range, or for float32 camera
    counts, signed values, tiny (subnormal) or huge magnitudes, or a narrow band far from 0."""
    dt = np.dtype(dtype)
    if dt.kind == "u":
        return 0.0, float(np.iinfo(dt).max)
    kind = draw(st.sampled_from(["counts", "signed", "tiny", "huge", "unit", "far"]))
    if kind == "far":  # a narrow band far from 0: float32 is coarse there against the noise
        centre = draw(log_uniform(1e2, 1e8)) * draw(st.sampled_from([1, -1]))
        half = abs(centre) * draw(log_uniform(1e-6, 1e-1))
        return float(np.float32(centre - half)), float(np.float32(centre + half))
    if kind == "counts":
        return 0.0, draw(st.sampled_from([255.0, 4095.0, 65535.0]))
    if kind == "unit":
        return 0.0, 1.0
    a = draw({"signed": log_uniform(1.0, 1e5), "tiny": log_uniform(1e-38, 1e-3),
              "huge": log_uniform(1e5, 1e9)}[kind])
    a = float(np.float32(a))  # float32 data: the ends are float32 values themselves
    return (-a, a) if kind == "signed" or draw(st.booleans()) else (0.0, a)


@st.composite
def wide_cameras(draw, lo: float = 0.0, hi: float = 65535.0) -> CameraModel:
    """Cameras from 1e-3 to 1e3 ADU/electron, read noise 0 or up to 1e3 electrons, the offset
    below, inside, on the edge of or above the data range ``[lo, hi]``."""
    gain = draw(log_uniform(1e-3, 1e3))
    read_noise = draw(st.one_of(st.just(0.0), log_uniform(1e-3, 1e3)))
    width = hi - lo if hi > lo else 1.0
    where = draw(st.sampled_from(["below", "inside", "edge", "above"]))
    if where == "below":
        offset = lo - width * draw(log_uniform(1e-4, 10.0))
    elif where == "above":
        offset = hi + width * draw(log_uniform(1e-4, 10.0))
    elif where == "edge":
        offset = draw(st.sampled_from([lo, hi]))
    else:
        offset = draw(st.floats(lo, hi))
    return CameraModel(gain=gain, offset=offset, read_noise=read_noise)


def _representable(dtype: np.dtype, lo: float, hi: float):
    """Map a float to the nearest value of ``dtype`` inside ``[lo, hi]`` (as a Python number)."""
    if dtype.kind == "u":
        return lambda v: int(np.clip(np.rint(v), lo, hi))
    return lambda v: float(np.float32(np.clip(v, lo, hi)))


@st.composite
def bound_cases(draw, dtype: str) -> tuple[CameraModel, float, np.ndarray]:
    """``(camera, q, data)`` for the error-bound property: a :func:`wide_cameras` camera, a
    :data:`steps` step and :data:`small_shapes` data that is uniform over the range, clustered
    a few electrons around the offset (where the transform is steepest), constant, or a mix,
    with saturated pixels (the range's ends: 0 and the dtype's maximum for integers)."""
    dt = np.dtype(dtype)
    lo, hi = draw(value_ranges(dtype))
    camera = draw(wide_cameras(lo, hi))
    q = draw(steps)
    shape = draw(small_shapes)
    fix = _representable(dt, lo, hi)
    if dt.kind == "u":
        anywhere = st.integers(int(lo), int(hi))
    else:
        anywhere = st.floats(lo, hi, width=32, allow_nan=False, allow_infinity=False)
    near_offset = st.floats(-50.0, 50.0).map(lambda e: fix(camera.offset + camera.gain * e))
    ends = st.sampled_from([fix(lo), fix(hi)])
    kind = draw(st.sampled_from(["mixed", "near_offset", "constant", "uniform", "random"]))
    if kind == "constant":
        value = draw(st.one_of(ends, anywhere, st.just(fix(camera.offset))))
        return camera, q, np.full(shape, value, dt)
    if kind == "random":  # many pixels at once (rare failures need many tries): numpy draws
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        shape = draw(st.tuples(st.integers(1, 4), st.integers(8, 16), st.integers(8, 16)))
        spread = draw(log_uniform(0.1, 1e4))  # electrons around the offset
        x = np.where(rng.random(shape) < 0.5, rng.uniform(lo, hi, shape),
                     camera.offset + camera.gain * rng.normal(0.0, spread, shape))
        x[rng.random(shape) < 0.1] = hi
        x[rng.random(shape) < 0.05] = lo
        if dt.kind == "u":
            return camera, q, np.clip(np.rint(x), lo, hi).astype(dt)
        return camera, q, np.clip(x, lo, hi).astype(dt)
    elements = {"mixed": st.one_of(anywhere, near_offset, ends), "near_offset": near_offset,
                "uniform": anywhere}[kind]
    data = draw(hnp.arrays(dt, shape, elements=elements))
    return camera, q, data
