"""Tests for bigcomp.estimate: photon-transfer camera estimation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from bigcomp import datasets as ds
from bigcomp.errors import ParameterError, UnsupportedDataError
from bigcomp.estimate import PoorFitWarning, estimate_camera, photon_transfer
from bigcomp.noise import CameraModel


def _sigma_ratio(est: CameraModel, s: ds.Synthetic, x: np.ndarray) -> np.ndarray:
    """Ratio of the noise std of the photon-transfer lines (identifiable part of the model)."""
    def var(c: CameraModel) -> np.ndarray:
        return c.gain * (x - c.offset) + (c.gain * c.read_noise) ** 2

    return np.sqrt(var(est) / var(CameraModel(s.gain, s.offset, s.read_noise)))


def _estimate_quietly(data, **kw) -> CameraModel:
    with warnings.catch_warnings():
        warnings.simplefilter("error", PoorFitWarning)  # a good fit must not warn
        return estimate_camera(data, **kw)


@pytest.mark.parametrize(
    ("make", "gain", "offset", "read_noise"),
    [
        (lambda **k: ds.light_sheet((8, 192, 192), seed=1, **k), 2.0, 100.0, 1.6),
        (lambda **k: ds.light_sheet((8, 192, 192), seed=2, **k), 0.5, 400.0, 3.0),
        (lambda **k: ds.light_sheet((6, 192, 192), seed=3, **k), 5.0, 100.0, 1.0),
        (lambda **k: ds.smlm((10, 160, 160), seed=4, **k), 3.0, 200.0, 2.0),
        (lambda **k: ds.timelapse_5d((2, 2, 6, 96, 96), seed=5, **k), 2.0, 100.0, 1.6),
    ],
)
def test_spatial_estimate_on_synthetic(make, gain, offset, read_noise):
    s = make(gain=gain, offset=offset, read_noise=read_noise)
    cam = _estimate_quietly(s.data)
    assert cam.gain == pytest.approx(gain, rel=0.1)
    # only o - g·σ_r² is identifiable without dark pixels: it fixes σ(x) above the offset
    assert cam.offset - cam.gain * cam.read_noise**2 == pytest.approx(
        offset - gain * read_noise**2, abs=0.6 * gain * max(read_noise, 1.0) ** 2 + 1.0)
    lo, hi = np.percentile(s.data, [1, 99.9])
    ratio = _sigma_ratio(cam, s, np.linspace(lo, hi, 50))
    assert np.all(np.abs(ratio - 1) < 0.1), ratio
    # no part of these fields is dark, so the dark level (offset) may come out high, never low
    assert offset - 3 <= cam.offset <= offset + 0.2 * (np.median(s.data) - offset) + 30


def test_offset_and_read_noise_with_dark_pixels():
    photons = np.zeros((4, 128, 256))
    photons[..., 128:] = np.linspace(0, 800, 128)
    s = ds.simulate_camera(photons, gain=2.0, offset=100.0, read_noise=1.6, seed=1)
    cam = _estimate_quietly(s.data)
    assert cam.gain == pytest.approx(2.0, rel=0.1)
    assert cam.offset == pytest.approx(100.0, abs=1.5)
    assert cam.read_noise == pytest.approx(1.6, rel=0.2)


def test_temporal_static_scene():
    base = ds.light_sheet((3, 128, 128), seed=6).photons[1].astype(np.float64)
    photons = np.repeat(base[:, None], 12, axis=1)  # (y, t, x): time is axis 1
    s = ds.simulate_camera(photons, gain=2.5, offset=90.0, read_noise=2.0, seed=3)
    pt = photon_transfer(s.data, time_axis=1)
    assert pt.method == "temporal"
    assert not pt.problems
    assert pt.camera.gain == pytest.approx(2.5, rel=0.12)
    assert pt.r2 > 0.9
    assert pt.means.shape == pt.variances.shape == pt.counts.shape


def test_known_parameters_are_kept():
    s = ds.light_sheet((4, 128, 128), seed=7)
    cam = _estimate_quietly(s.data, gain=2.0, offset=100.0)
    assert (cam.gain, cam.offset) == (2.0, 100.0)
    assert cam.read_noise == pytest.approx(1.6, rel=0.3)
    cam = _estimate_quietly(s.data, read_noise=1.6)
    assert cam.read_noise == 1.6
    assert cam.offset == pytest.approx(100.0, abs=4.0)
    assert cam.gain == pytest.approx(2.0, rel=0.1)


def test_poor_fit_warns_with_instructions():
    # noise independent of the level (and no photon noise): the line has no slope
    rng = np.random.default_rng(0)
    ramp = np.linspace(100, 3000, 256)[None, None, :] + np.zeros((4, 256, 1))
    data = np.round(ramp + rng.normal(0, 5.0, ramp.shape)).astype(np.uint16)
    with pytest.warns(PoorFitWarning, match=r"CameraModel\(gain="):
        cam = estimate_camera(data)
    assert isinstance(cam, CameraModel)
    assert photon_transfer(data).problems


def test_blinking_movie_warns_in_temporal_mode():
    s = ds.smlm((10, 96, 96), seed=8)
    with pytest.warns(PoorFitWarning, match="offset="):
        estimate_camera(s.data, time_axis=0)


@pytest.mark.parametrize(
    ("data", "kw", "error", "match"),
    [
        (np.array([[1.0, np.nan] * 5] * 10), {}, UnsupportedDataError, "NaN"),
        (np.full((8, 8), np.inf, np.float32), {}, UnsupportedDataError, "NaN or inf"),
        (np.zeros((0, 16, 16), np.uint16), {}, UnsupportedDataError, "empty"),
        (np.zeros((16, 16), complex), {}, UnsupportedDataError, "complex"),
        (np.zeros((16, 16), bool), {}, UnsupportedDataError, "bool"),
        (np.array([["a"] * 8] * 8), {}, UnsupportedDataError, "integer or real"),
        (np.zeros((16, 3), np.uint16), {}, UnsupportedDataError, "5 x 5"),
        (np.zeros(64, np.uint16), {}, UnsupportedDataError, "5 x 5"),
        (np.full((16, 16), 7, np.uint16), {}, UnsupportedDataError, "usable"),
        (np.pad(np.full((15, 15), 7, np.uint16), (0, 1), constant_values=9), {},
         UnsupportedDataError, "no brightness"),
        (np.zeros((4, 16, 16), np.uint16), {"time_axis": 3}, ParameterError, "time_axis"),
        (np.zeros((1, 16, 16), np.uint16), {"time_axis": 0}, ParameterError, "2 frames"),
        (np.zeros((4, 16, 16), np.uint16), {"gain": -1.0}, ParameterError, "gain"),
        (np.zeros((4, 16, 16), np.uint16), {"read_noise": -1.0}, ParameterError, "read_noise"),
    ],
)
def test_bad_input(data, kw, error, match):
    with pytest.raises(error, match=match):
        estimate_camera(data, **kw)


def test_float_and_big_input():
    s = ds.light_sheet((24, 512, 512), seed=9)  # above the 2 M pixel sample: planes subsampled
    cam = _estimate_quietly(s.data.astype(np.float32))
    assert cam.gain == pytest.approx(2.0, rel=0.1)
