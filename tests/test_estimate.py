"""Tests for bigcomp.estimate: camera estimation, its uncertainty and the conservative model."""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest

from bigcomp import datasets as ds
from bigcomp.errors import ParameterError, UnsupportedDataError
from bigcomp.estimate import CameraEstimate, PoorFitWarning, estimate_camera, photon_transfer
from bigcomp.noise import CameraModel, quantisation_tables


def _sigma_ratio(est: CameraModel, s: ds.Synthetic, x: np.ndarray) -> np.ndarray:
    """Ratio of the noise std of the photon-transfer lines (identifiable part of the model)."""
    def var(c: CameraModel) -> np.ndarray:
        return c.gain * (x - c.offset) + (c.gain * c.read_noise) ** 2

    return np.sqrt(var(est) / var(CameraModel(s.gain, s.offset, s.read_noise)))


def _estimate_quietly(data, **kw) -> CameraEstimate:
    with warnings.catch_warnings():
        warnings.simplefilter("error", PoorFitWarning)  # a good fit must not warn
        return estimate_camera(data, **kw)


def _estimate(data, **kw) -> CameraEstimate:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PoorFitWarning)
        return estimate_camera(data, **kw)


def _scene(shape, bg: float, dark: bool, seed: int) -> np.ndarray:
    """Light-sheet photons scaled to a background of ``bg`` e⁻, optionally with a dark band."""
    p = ds.light_sheet(shape, seed=seed).photons.astype(np.float64)
    p *= bg / np.median(p)
    if dark:
        p[..., : shape[-1] // 8] = 0.0
    return p


def _steeper_everywhere(cons: CameraModel, true: CameraModel, lo: float, hi: float) -> bool:
    """Every integer step in [lo, hi] spans at least as many σ in ``cons`` as in ``true``: so
    bins of width q/2 in ``cons`` are at most q/2 wide in ``true`` (the bound holds)."""
    x = np.arange(math.floor(lo), math.ceil(hi) + 1, dtype=np.float64)
    return bool(np.all(np.diff(cons.forward(x)) >= np.diff(true.forward(x)) * (1 - 1e-9)))


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
    cam = _estimate(s.data)  # no dark region: may warn that the offset is poorly determined
    assert isinstance(cam, CameraModel)
    assert cam.gain == pytest.approx(gain, rel=0.1)
    lo, hi = np.percentile(s.data, [1, 99.9])
    ratio = _sigma_ratio(cam, s, np.linspace(lo, hi, 50))
    assert np.all(np.abs(ratio - 1) < 0.1), ratio
    # the stated uncertainty covers the truth, and the conservative model is below it
    assert abs(cam.offset - offset) <= 3 * cam.offset_se + 1.0
    assert abs(cam.read_noise - read_noise) <= 3 * cam.read_noise_se + 0.2
    assert _steeper_everywhere(cam.conservative, CameraModel(gain, offset, read_noise),
                               *np.percentile(s.data, [0.01, 100]))


def test_offset_and_read_noise_with_dark_pixels():
    photons = np.zeros((4, 128, 256))
    photons[..., 128:] = np.linspace(0, 800, 128)
    s = ds.simulate_camera(photons, gain=2.0, offset=100.0, read_noise=1.6, seed=1)
    cam = _estimate_quietly(s.data)
    assert cam.offset_from == "dark level"
    assert cam.gain == pytest.approx(2.0, rel=0.05)
    assert cam.offset == pytest.approx(100.0, abs=0.5)  # no longer biased high (issue 18)
    assert cam.read_noise == pytest.approx(1.6, rel=0.1)
    assert 0 < cam.offset_se < 1.0
    assert 0 < cam.read_noise_se < 0.2


def test_offset_from_skew_without_dark_pixels():
    """Photon noise is skewed and read noise is not: the offset is where the skew vanishes."""
    s = ds.simulate_camera(_scene((8, 192, 192), 1.5, False, 3), gain=1.5, offset=300.0,
                           read_noise=2.0, seed=2)
    cam = _estimate(s.data)
    assert cam.offset_from in ("skew", "dark level")
    assert cam.offset == pytest.approx(300.0, abs=max(3 * cam.offset_se, 0.5))
    assert cam.read_noise == pytest.approx(2.0, abs=3 * cam.read_noise_se + 0.1)
    # the old estimator took the dark level, 1.5 e⁻ too high: read noise +40 %
    assert cam.read_noise < 2.4


def test_temporal_static_scene():
    base = ds.light_sheet((3, 128, 128), seed=6).photons[1].astype(np.float64)
    photons = np.repeat(base[:, None], 12, axis=1)  # (y, t, x): time is axis 1
    s = ds.simulate_camera(photons, gain=2.5, offset=90.0, read_noise=2.0, seed=3)
    pt = photon_transfer(s.data, time_axis=1)
    assert pt.method == "temporal"
    assert not pt.problems
    assert pt.camera.gain == pytest.approx(2.5, rel=0.05)
    assert pt.r2 > 0.9
    assert pt.means.shape == pt.variances.shape == pt.counts.shape == pt.skews.shape


@pytest.mark.parametrize(("bleach", "method"), [(0.1, "temporal"), (0.3, "spatial")])
def test_temporal_with_bleaching(bleach, method):
    """Successive differences: slow bleaching is not noise. Bleaching fast enough to change a
    bright pixel by its noise between frames inflates the temporal variance: the frames'
    spatial statistics are used instead."""
    base = _scene((3, 128, 128), 30.0, True, 7)[1]
    photons = base[None] * np.linspace(1.0, 1.0 - bleach, 16)[:, None, None]
    s = ds.simulate_camera(photons, gain=2.0, offset=100.0, read_noise=1.5, seed=4)
    cam = _estimate(s.data, time_axis=0)
    assert cam.method == method
    assert cam.gain == pytest.approx(2.0, rel=0.05)
    assert cam.offset == pytest.approx(100.0, abs=2 * cam.offset_se)


def test_known_parameters_are_kept():
    s = ds.light_sheet((4, 128, 128), seed=7)
    cam = _estimate(s.data, gain=2.0, offset=100.0)
    assert (cam.gain, cam.offset) == (2.0, 100.0)
    assert (cam.gain_se, cam.offset_se) == (0.0, 0.0)
    assert cam.offset_from == "given"
    assert cam.read_noise == pytest.approx(1.6, rel=0.3)
    assert cam.conservative.offset == 100.0
    cam = _estimate(s.data, read_noise=1.6)
    assert cam.read_noise == 1.6
    assert cam.read_noise_se == 0.0
    assert cam.offset == pytest.approx(100.0, abs=4.0)
    assert cam.gain == pytest.approx(2.0, abs=2 * cam.gain_se)  # a small stack: ±10 %


def test_poor_fit_warns_with_instructions():
    # noise independent of the level (and no photon noise): the line has no slope
    rng = np.random.default_rng(0)
    ramp = np.linspace(100, 3000, 256)[None, None, :] + np.zeros((4, 256, 1))
    data = np.round(ramp + rng.normal(0, 5.0, ramp.shape)).astype(np.uint16)
    with pytest.warns(PoorFitWarning, match=r"CameraModel\(gain="):
        cam = estimate_camera(data)
    assert isinstance(cam, CameraModel)
    assert photon_transfer(data).problems


def test_blinking_movie_uses_the_frames():
    """Blinking inflates the temporal variance: the frames' spatial statistics are used."""
    s = ds.smlm((10, 96, 96), seed=8)
    temporal = photon_transfer(s.data, time_axis=0)
    assert temporal.problems  # the temporal fit alone is poor, and its gain far too high
    cam = _estimate(s.data, time_axis=0)
    assert cam.method == "spatial"
    assert abs(cam.gain - 2.0) <= 2 * cam.gain_se
    assert 2 * cam.gain_se < temporal.camera.gain - 2.0


# ------------------------------------------------------------------ uncertainty, conservative
def _random_cameras(n: int, seed: int = 0):
    """Random cameras and scenes, as in benchmarks/camera.py (light-sheet, static over time)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        g = float(np.exp(rng.uniform(math.log(0.3), math.log(5.0))))
        o, rn = float(rng.uniform(50, 1000)), float(rng.uniform(0.8, 3.0))
        bg = float(np.exp(rng.uniform(math.log(0.5), math.log(30.0))))
        temporal, dark = i % 3 == 2, i % 2 == 1
        p = _scene((8, 128, 128) if not temporal else (3, 128, 128), bg, dark, 100 + i)
        if temporal:
            p = np.repeat(p[1][None], 12, axis=0)
        s = ds.simulate_camera(p, gain=g, offset=o, read_noise=rn, seed=200 + i)
        yield s, (0 if temporal else None)


@functools.cache
def _cases() -> list[tuple[ds.Synthetic, CameraEstimate]]:
    return [(s, _estimate(s.data, time_axis=t)) for s, t in _random_cameras(12)]


def test_uncertainties_cover_the_truth():
    """±2 standard errors hold the true gain, offset and read noise in >= 80 % of 12 random
    cameras each (the benchmark's 24 larger cases: 100 %), ±3 in >= 95 % of all."""
    z2, z3 = [], []
    for s, cam in _cases():
        for true, est, se in ((s.gain, cam.gain, cam.gain_se),
                              (s.offset, cam.offset, cam.offset_se),
                              (s.read_noise, cam.read_noise, cam.read_noise_se)):
            z2.append(abs(est - true) <= 2 * se + 1e-9)
            z3.append(abs(est - true) <= 3 * se + 1e-9)
    per_param = np.array(z2).reshape(-1, 3).mean(axis=0)
    assert np.all(per_param >= 0.8), per_param
    assert np.mean(z3) >= 0.95


def test_conservative_sigma_is_below_the_truth():
    """Over the data's range the conservative model's σ is nowhere above the camera's, so
    coding with it keeps every pixel within q/2 of the TRUE noise."""
    for s, cam in _cases():
        true = CameraModel(s.gain, s.offset, s.read_noise)
        lo, hi = np.percentile(s.data, [0.01, 100])
        assert _steeper_everywhere(cam.conservative, true, lo, hi), (true, cam)
        assert cam.conservative.read_noise <= cam.read_noise + 1e-9


def test_conservative_keeps_the_bound_against_the_truth():
    s = ds.simulate_camera(_scene((6, 128, 128), 1.0, False, 11), gain=2.4, offset=120.0,
                           read_noise=1.3, seed=5)
    cam = _estimate(s.data)
    true = CameraModel(s.gain, s.offset, s.read_noise)
    tables = quantisation_tables(cam.conservative, 1.0, "uint16")  # what encode/decode do
    back = tables.rec[tables.bin[s.data]]
    assert np.abs(true.forward(back) - true.forward(s.data)).max() <= 0.5 + 1e-9


def test_warns_without_a_dark_region_only():
    photons = _scene((6, 128, 128), 20.0, False, 12)
    s = ds.simulate_camera(photons, gain=2.0, offset=100.0, read_noise=1.6, seed=6)
    with pytest.warns(PoorFitWarning, match=r"poorly determined.*bigcomp calibrate"):
        estimate_camera(s.data)
    photons[..., :16] = 0.0  # the same scene with a dark band: offset and read noise are known
    s = ds.simulate_camera(photons, gain=2.0, offset=100.0, read_noise=1.6, seed=6)
    cam = _estimate_quietly(s.data)
    assert cam.offset == pytest.approx(100.0, abs=2 * cam.offset_se)


def test_estimate_record_and_summary():
    est = CameraEstimate(2.0134, 100.21, 1.523, gain_se=0.031, offset_se=0.83,
                         read_noise_se=0.2, conservative=CameraModel(1.95, 99.0, 1.2),
                         method="spatial", offset_from="dark level")
    assert est.summary() == "gain 2.01 ± 0.03, offset 100.2 ± 0.8, read noise 1.52 ± 0.20"
    assert CameraEstimate.from_record(est.to_record()) == est
    assert est.point == CameraModel(2.0134, 100.21, 1.523)
    assert type(est.point) is CameraModel
    assert CameraEstimate(2.0, 100.0, 1.6).conservative == CameraModel(2.0, 100.0, 1.6)
    assert isinstance(est, CameraModel)


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
        (np.zeros((4, 16, 16), np.uint16), {"confidence": 1.5}, ParameterError, "confidence"),
    ],
)
def test_bad_input(data, kw, error, match):
    with pytest.raises(error, match=match):
        estimate_camera(data, **kw)


def test_float_and_big_input():
    s = ds.light_sheet((24, 512, 512), seed=9)  # above the 2 M pixel sample: planes subsampled
    cam = _estimate(s.data.astype(np.float32))
    assert cam.gain == pytest.approx(2.0, rel=0.1)


# ------------------------------------------------------------------ compress and the CLI
def _dark_stack() -> ds.Synthetic:
    return ds.simulate_camera(_scene((8, 128, 128), 8.0, True, 13), gain=2.0, offset=100.0,
                              read_noise=1.6, seed=7)


KW = {"chunks": (4, 128, 128), "progress": False, "scheduler": "synchronous"}


def test_compress_codes_with_the_conservative_model(tmp_path):
    import bigcomp

    s = _dark_stack()
    res = bigcomp.compress(s.data, tmp_path / "a.zarr", q=1.0, **KW)
    assert res.camera_source == "estimated"
    est = res.camera_estimate
    assert isinstance(est, CameraEstimate)
    assert type(res.camera) is CameraModel
    assert res.camera == est.conservative
    meta = bigcomp.open(tmp_path / "a.zarr").attrs["bigcomp"]
    assert meta["job"]["camera"] == est.conservative.to_dict()
    assert CameraEstimate.from_record(meta["camera_estimate"]) == est
    # resumed: the store's camera, with its recorded estimate
    again = bigcomp.compress(s.data, tmp_path / "a.zarr", q=1.0, **KW)
    assert (again.camera_source, again.camera_estimate) == ("store", est)
    # an estimate passed in is coded conservatively too; its point estimate is "given"
    res = bigcomp.compress(s.data, tmp_path / "b.zarr", q=1.0, camera=est, **KW)
    assert (res.camera_source, res.camera) == ("estimated", est.conservative)
    res = bigcomp.compress(s.data, tmp_path / "c.zarr", q=1.0, camera=est.point, **KW)
    assert (res.camera_source, res.camera) == ("given", est.point)


def test_cli_reports_the_estimate(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    from typer.testing import CliRunner

    from bigcomp.cli import app

    path = tmp_path / "in.tif"
    tifffile.imwrite(path, _dark_stack().data, metadata={"axes": "ZYX"},
                     photometric="minisblack")
    out = tmp_path / "out.zarr"
    res = CliRunner().invoke(app, ["compress", str(path), str(out), "--scheduler",
                                   "synchronous", "--no-progress", "--chunks", "4,128,128"])
    assert res.exit_code == 0, res.output
    assert "camera (estimated): gain 2.0" in res.output
    assert "± " in res.output
    assert "coded with the conservative gain" in res.output
    info = CliRunner().invoke(app, ["info", str(out)], env={"COLUMNS": "300"})
    assert info.exit_code == 0, info.output
    assert "estimated (gain 2.0" in info.output
    assert "coded with the conservative" in info.output


# ------------------------------------------------ sparse sCMOS scenes: poor fits stay safe
@pytest.mark.parametrize(("background", "hot", "time_axis"), [
    (10.0, 0.01, 0), (10.0, 0.01, None), (2.0, 0.01, 0), (50.0, 0.02, 0), (10.0, 0.02, 0)])
def test_conservative_is_safe_on_a_sparse_scmos_scene(background, hot, time_axis):
    """A pixel-to-pixel random (sparse) scene from a per-pixel sensor with hot pixels: the
    photon-transfer line is meaningless (R² ~0.5, gain 75 ± 30) and its lower band was far
    ABOVE the noise (offset 350, 30 σ errors). The conservative model must stay at or below
    the median camera's σ over the whole data range whatever the fit: here it is the floor
    under the robust per-pixel temporal noise (or lossless without a time axis)."""
    cam = ds.scmos_camera((128, 128), seed=0, hot_fraction=hot)
    rng = np.random.default_rng(100)
    x = ds.scmos_frames(cam, background + rng.gamma(0.3, 40.0, (128, 128)), frames=16, seed=10)
    est = _estimate(x, time_axis=time_axis)
    median = CameraModel(2.0, 100.0, 1.5)
    assert _steeper_everywhere(est.conservative, median, *np.percentile(x, [0.01, 100]))
