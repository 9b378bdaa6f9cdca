from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given

from bigcomp import CameraModel, ParameterError, quantisation_tables
from bigcomp.testing.strategies import cameras


@given(camera=cameras)
def test_inverse_is_inverse(camera):
    x = np.linspace(0, 70000, 1001)
    np.testing.assert_allclose(camera.inverse(camera.forward(x)), x, rtol=1e-9, atol=1e-6)


@given(camera=cameras)
def test_forward_is_increasing(camera):
    y = camera.forward(np.arange(65536.0))
    assert np.all(np.diff(y) > 0)


def test_stabilises_poisson_noise():
    camera = CameraModel(gain=2.0, offset=100.0, read_noise=1.6)
    rng = np.random.default_rng(0)
    for photons in (5, 50, 500, 5000):
        x = camera.offset + camera.gain * (
            rng.poisson(photons, 200_000) + rng.normal(0, camera.read_noise, 200_000)
        )
        assert abs(camera.forward(x).std() - 1.0) < 0.06


@given(camera=cameras)
def test_tables_exact_bound(camera):
    for dtype in ("uint8", "uint16"):
        t = quantisation_tables(camera, 1.0, dtype)
        values = np.arange(np.iinfo(dtype).max + 1)
        err = np.abs(camera.forward(t.rec[t.bin[values]]) - camera.forward(values))
        assert err.max() <= 0.5
        assert t.max_error == pytest.approx(err.max())
        assert np.all(np.diff(t.bin.astype(np.int64)) >= 0)  # monotonic, dense bins
        assert t.bin[-1] == t.nbins - 1


def test_tables_coarser_with_q():
    camera = CameraModel(2.0, 100.0, 1.6)
    sizes = [quantisation_tables(camera, q, "uint16").nbins for q in (0.5, 1, 2, 4)]
    assert sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gain": 0}, "gain must be > 0"),
        ({"gain": -1}, "gain must be > 0"),
        ({"read_noise": -0.1}, "read_noise"),
        ({"offset": float("inf")}, "finite"),
        ({"gain": "2"}, "finite number"),
    ],
)
def test_camera_errors(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        CameraModel(**kwargs)
