"""Camera calibration (dark + flats -> PixelCamera), camera files, the sCMOS simulator."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import bigcomp
from bigcomp.calibration import calibrate
from bigcomp.camera_file import load_camera, save_camera
from bigcomp.cli import app
from bigcomp.datasets import scmos_camera, scmos_dark, scmos_flats, scmos_frames
from bigcomp.errors import ParameterError, StoreExistsError, UnsupportedDataError
from bigcomp.noise import CameraModel
from bigcomp.pixelcamera import PixelCamera

STORM = Path(__file__).resolve().parents[2] / "shared" / "data" / "storm_scmos"

CAM = scmos_camera((256, 256), seed=3)
DARK = scmos_dark(CAM, 100, seed=1)
FLATS = scmos_flats(CAM, (200.0, 2000.0), frames=50, seed=2)


@pytest.fixture(scope="module")
def result():
    return calibrate(DARK, FLATS, progress=False)


# ------------------------------------------------------------------------- simulator
def test_scmos_camera_maps():
    cam = scmos_camera((128, 128), seed=1, hot_fraction=0.02)
    rn = cam.read_noise
    assert abs(np.median(rn) / 1.5 - 1) < 0.03
    assert abs((rn > 3 * np.median(rn)).mean() - 0.02) < 0.004  # the hot tail, 4-10x median
    assert abs(cam.gain.mean() / 2.0 - 1) < 0.002 and 0.015 < cam.gain.std() / 2.0 < 0.025
    assert abs(cam.offset.mean() - 100) < 0.05 and abs(cam.offset.std() - 2.0) < 0.05
    assert cam.source == "synthetic"


def test_scmos_frames_follow_the_per_pixel_model():
    cam = scmos_camera((64, 64), seed=4)
    frames = scmos_frames(cam, 50.0, frames=400, seed=4).astype(np.float64)
    mean, var = frames.mean(0), frames.var(0, ddof=1)
    expected = cam.gain**2 * 50.0 + cam.variance + 1 / 12  # shot + read + rounding
    assert abs(np.median((mean - cam.offset) / (cam.gain * 50.0)) - 1) < 0.01
    assert abs(np.median(var / expected) - 1) < 0.02
    ph = np.zeros(CAM.shape)
    ph[:10] = 1e6  # clipped to the dtype
    assert scmos_frames(CAM, ph, frames=1, dtype="uint8").max() == 255


def test_scmos_frames_fast():
    t0 = time.perf_counter()
    scmos_frames(CAM, 100.0, frames=100, seed=0)
    assert time.perf_counter() - t0 < 3.0  # ~0.5 s on one core


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"photons": -1.0}, "photons"),
    ({"photons": np.ones((3, 3))}, "map"),
    ({"frames": 0}, "frames"),
])
def test_scmos_frames_validation(kwargs, match):
    kwargs = {"photons": 1.0, "frames": 2, **kwargs}
    with pytest.raises(ParameterError, match=match):
        scmos_frames(CAM, **kwargs)


# ----------------------------------------------------------------------- calibration
def test_recovers_synthetic_maps(result):
    """100 dark frames and 2 x 50 flats (200 and 2000 e-) of a 256 x 256 sCMOS.

    Per pixel the offset's standard error is sqrt(v/100) (0.3 ADU at the median read noise,
    up to 3 ADU on hot pixels) and the variance's is sqrt(2/99) = 14 %, so a bound on *every*
    pixel would only test luck. We assert:

    * offset: median |error| < 0.5 ADU (measured 0.20) and every pixel within 5.5 of its own
      stated standard error (max |z| of 65 536 Gaussians is ~4.5);
    * read-noise variance: median ratio measured/true within 10 % (measured 1.01: the 1/12 ADU²
      of rounding is part of the measured noise), median |relative error| < 12 % (theory
      0.6745·14 % = 9.6 %), 99th percentile < 45 % (theory ~37 %);
    * global gain: within 3 % of the mean of the true gain map (measured 0.03 %), and the
      stated standard error covers the error (|error| < 5 stderr);
    * hot pixels: the count of pixels above 3x the median read noise matches the truth.
    """
    cam = result.camera
    assert isinstance(cam, PixelCamera) and cam.source == "calibrated"
    err = cam.offset - CAM.offset
    assert np.median(np.abs(err)) < 0.5
    assert np.abs(err / result.offset_stderr).max() < 5.5
    ratio = cam.variance / CAM.variance
    assert abs(np.median(ratio) - 1) < 0.10
    assert np.median(np.abs(ratio - 1)) < 0.12
    assert np.percentile(np.abs(ratio - 1), 99) < 0.45
    true_gain = float(CAM.gain.mean())
    assert abs(result.gain / true_gain - 1) < 0.03
    assert abs(result.gain - true_gain) < 5 * result.gain_stderr + 0.002 * true_gain
    assert np.all(cam.gain == result.gain)  # global gain: one value for the sensor
    true_hot = int((CAM.read_noise > 3 * np.median(CAM.read_noise)).sum())
    assert abs(result.hot_pixels - true_hot) <= 0.05 * true_hot
    assert result.dark_frames == 100 and result.flat_frames == (50, 50)
    np.testing.assert_allclose(result.level_gains, result.gain, rtol=0.01)


def test_per_pixel_gain():
    """Per-pixel gain from 2 x 1000 flats (500 and 5000 e-), 64 x 64 pixels.

    Each pixel's shot-noise variance is measured to sqrt(2/999) = 4.5 % per flat, so its gain
    to ~3.2 %: we assert median |relative error| < 3 % (theory ~2.2 %), 99th percentile
    < 12 %, and that the stated per-pixel standard errors are right (|z| < 3 for >= 98 % of
    the pixels). The 2 % gain spread of the sensor is resolved: the fitted map correlates
    with the true one.
    """
    cam = scmos_camera((64, 64), seed=7, gain_spread=0.05)
    res = calibrate(scmos_dark(cam, 200, seed=8),
                    scmos_flats(cam, (500.0, 5000.0), frames=1000, seed=9),
                    per_pixel_gain=True, progress=False)
    rel = res.camera.gain / cam.gain - 1
    assert np.median(np.abs(rel)) < 0.03
    assert np.percentile(np.abs(rel), 99) < 0.12
    z = (res.camera.gain - cam.gain) / res.gain_map_stderr
    assert (np.abs(z) < 3).mean() > 0.98
    assert np.corrcoef(res.camera.gain.ravel(), cam.gain.ravel())[0, 1] > 0.7
    assert res.gain_replaced == 0
    assert "gain map" in res.summary()


def test_known_gain_without_flats():
    res = calibrate(DARK, gain=2.0, progress=False)
    assert np.all(res.camera.gain == 2.0) and res.gain_given
    assert "(given)" in res.summary()
    with pytest.raises(ParameterError, match="photon-transfer"):
        res.plot_ptc("never.png")
    res = calibrate(DARK, gain=CAM.gain, progress=False)
    np.testing.assert_array_equal(res.camera.gain, CAM.gain)


def test_streaming_blocks_equal_whole(result):
    """Tiny blocks (2 frames of float64) give the maps of one whole-stack reduction."""
    small = calibrate(DARK, FLATS, block_bytes=2 * 8 * 256 * 256, progress=False)
    np.testing.assert_allclose(small.camera.offset, DARK.mean(0, dtype=np.float64), rtol=1e-12)
    np.testing.assert_allclose(small.camera.variance,
                               DARK.astype(np.float64).var(0, ddof=1), rtol=1e-9)
    np.testing.assert_allclose(small.camera.offset, result.camera.offset, rtol=1e-12)
    assert small.gain == pytest.approx(result.gain, rel=1e-9)


def test_inputs_dask_and_files(tmp_path, result):
    da = pytest.importorskip("dask.array")
    tifffile = pytest.importorskip("tifffile")
    zarr = pytest.importorskip("zarr")
    np.save(tmp_path / "dark.npy", DARK)
    tifffile.imwrite(tmp_path / "flat0.tif", FLATS[0], photometric="minisblack")
    zarr.save_array(str(tmp_path / "flat1.zarr"), FLATS[1], zarr_format=3)
    res = calibrate(str(tmp_path / "dark.npy"),
                    [tmp_path / "flat0.tif", str(tmp_path / "flat1.zarr")], progress=False)
    np.testing.assert_allclose(res.camera.offset, result.camera.offset, rtol=1e-12)
    assert res.gain == pytest.approx(result.gain, rel=1e-9)
    lazy = calibrate(da.from_array(DARK, chunks=(7, 128, 128)),
                     da.from_array(np.stack(FLATS), chunks=(1, 10, 256, 256)), progress=False)
    np.testing.assert_allclose(lazy.camera.variance, result.camera.variance, rtol=1e-9)


def test_summary_and_ptc(result, tmp_path):
    text = result.summary()
    for part in ("100 dark frames", "offset", "read noise", "hot pixels", "ADU/e-", "±"):
        assert part in text
    pytest.importorskip("matplotlib")
    result.plot_ptc(tmp_path / "ptc.png")
    assert (tmp_path / "ptc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_errors():
    with pytest.raises(ParameterError, match="at least 2"):
        calibrate(DARK[:1], FLATS)
    with pytest.raises(ParameterError, match="one frame"):
        calibrate(DARK[0], FLATS)
    with pytest.raises(ParameterError, match="same sensor region"):
        calibrate(DARK, [FLATS[0], FLATS[1][:, :128]])
    with pytest.raises(ParameterError, match=">= 2 different light levels"):
        calibrate(DARK, [FLATS[0]])
    with pytest.raises(ParameterError, match=">= 2 different light levels"):
        calibrate(DARK, FLATS[0])  # one stack, not a list of stacks
    with pytest.raises(ParameterError, match="clearly above the dark level"):
        calibrate(DARK, [FLATS[0], scmos_dark(CAM, 20, seed=5)])
    with pytest.raises(ParameterError, match="not both"):
        calibrate(DARK, FLATS, gain=2.0)
    with pytest.raises(ParameterError, match="flat-field series"):
        calibrate(DARK)
    with pytest.raises(UnsupportedDataError, match="integers or reals"):
        calibrate(DARK.astype(complex), gain=2.0)
    bright = scmos_flats(CAM, (200.0, 40000.0), frames=5, seed=6)
    with pytest.raises(UnsupportedDataError, match="flat 1 is saturated"):
        calibrate(DARK, bright)
    nan = DARK.astype(np.float32)
    nan[37, 5, 6] = np.nan
    with pytest.raises(UnsupportedDataError, match="frame 37 at pixel \\(5, 6\\)"):
        calibrate(nan, FLATS)
    with pytest.raises(FileNotFoundError):
        calibrate("no/such/dark.tif", gain=2.0)


def test_saturation_level_given():
    """A 12-bit camera in uint16: the clipping at 4095 is found with saturation=4095."""
    flats = [np.minimum(f, 4095) for f in scmos_flats(CAM, (200.0, 3000.0), frames=10, seed=6)]
    with pytest.raises(UnsupportedDataError, match="saturated"):
        calibrate(DARK, flats, saturation=4095)


# ----------------------------------------------------------------------- camera files
def test_zarr_round_trip(tmp_path, result):
    path = tmp_path / "camera.zarr"
    result.save(path)
    back = load_camera(path)
    assert back == result.camera and back.source == "calibrated"
    zarr = pytest.importorskip("zarr")
    attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    assert attrs["kind"] == "pixel" and attrs["source"] == "calibrated"
    assert attrs["frames"] == {"dark": 100, "flats": [50, 50]}
    assert attrs["units"]["variance"] == "ADU^2" and attrs["bigcomp_version"]
    assert attrs["date"][:2] == "20"
    with pytest.raises(StoreExistsError, match="overwrite"):
        save_camera(result.camera, path)
    save_camera(CAM, path, overwrite=True)
    assert load_camera(path) == CAM
    save_camera(CameraModel(2.0, 100.0, 1.6), tmp_path / "global.zarr")
    assert load_camera(tmp_path / "global.zarr") == CameraModel(2.0, 100.0, 1.6)


def test_json_round_trip(tmp_path):
    cam = CameraModel(2.5, 99.0, 1.2)
    save_camera(cam, tmp_path / "cam.json")
    assert load_camera(tmp_path / "cam.json") == cam
    (tmp_path / "hand.json").write_text(json.dumps({"gain": 2, "offset": 100, "read_noise": 1}))
    assert load_camera(tmp_path / "hand.json") == CameraModel(2, 100, 1)
    (tmp_path / "bad.json").write_text(json.dumps({"gain": 2, "offset": 100, "rn": 1}))
    with pytest.raises(ParameterError, match="unknown: \\['rn'\\]; missing: \\['read_noise'\\]"):
        load_camera(tmp_path / "bad.json")
    with pytest.raises(ParameterError, match="per-pixel"):
        save_camera(CAM, tmp_path / "maps.json")


def test_storm_npy_round_trip(tmp_path):
    """storm-analysis layouts: v1 [o, v, g, 1], v2 [o, v, g, rqe, 2] (ADU, ADU², ADU/e-) and
    v0 [o, v, g] (transposed; baseline and gain units given explicitly)."""
    o, v, g = CAM.offset, CAM.variance, CAM.gain
    np.save(tmp_path / "v1.npy", np.array([o, v, g, 1], dtype=object), allow_pickle=True)
    assert load_camera(tmp_path / "v1.npy") == CAM
    with pytest.raises(ParameterError, match="allow_pickle"):
        load_camera(tmp_path / "v1.npy", allow_pickle=False)
    np.save(tmp_path / "v2.npy", np.array([o, v, g, np.ones_like(o), 2], dtype=object),
            allow_pickle=True)
    assert load_camera(tmp_path / "v2.npy") == CAM
    np.save(tmp_path / "v0.npy", np.stack([o.T - 100, v.T, 1 / g.T]))
    with pytest.raises(ParameterError, match="baseline and gain_units"):
        load_camera(tmp_path / "v0.npy")
    back = load_camera(tmp_path / "v0.npy", baseline=100, gain_units="e_per_adu")
    np.testing.assert_allclose(back.offset, o, atol=1e-12)
    np.testing.assert_allclose(back.gain, g, rtol=1e-12)
    np.testing.assert_array_equal(back.variance, v)
    with pytest.raises(ParameterError, match="gain_units"):
        load_camera(tmp_path / "v0.npy", baseline=0, gain_units="adu")


def test_bad_maps_raise(tmp_path):
    zarr = pytest.importorskip("zarr")
    ok = np.ones((8, 8))
    with pytest.raises(ParameterError, match="disagree in shape"):
        PixelCamera(ok * 100, np.ones((8, 9)), 2.0)
    with pytest.raises(ParameterError, match="<= 0"):
        PixelCamera(ok * 100, -ok, 2.0)
    with pytest.raises(ParameterError, match="NaN"):
        PixelCamera(ok * 100, ok, np.where(np.eye(8) > 0, np.nan, 2.0))
    # the same faults in files
    save_camera(PixelCamera(ok * 100, ok, ok * 2), tmp_path / "c.zarr")
    group = zarr.open_group(str(tmp_path / "c.zarr"), mode="r+")
    group["variance"][0, 0] = -1.0
    with pytest.raises(ParameterError, match="'variance' has 1 value"):
        load_camera(tmp_path / "c.zarr")
    group["variance"][0, 0] = np.nan
    with pytest.raises(ParameterError, match="NaN"):
        load_camera(tmp_path / "c.zarr")
    np.save(tmp_path / "bad.npy", np.array([ok, ok[:, :4], ok, 1], dtype=object),
            allow_pickle=True)
    with pytest.raises(ParameterError, match="disagree in shape"):
        load_camera(tmp_path / "bad.npy")
    (tmp_path / "x.tif").write_bytes(b"II*\x00")
    with pytest.raises(UnsupportedDataError, match="not a camera file"):
        load_camera(tmp_path / "x.tif")
    zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    with pytest.raises(UnsupportedDataError, match="not a bigcomp camera file"):
        load_camera(tmp_path / "plain.zarr")


def test_pipeline_accepts_camera_files(tmp_path):
    from bigcomp.pipeline import _as_camera

    save_camera(CameraModel(2.0, 100.0, 1.6), tmp_path / "cam.json")
    assert _as_camera(str(tmp_path / "cam.json")) == CameraModel(2.0, 100.0, 1.6)
    assert _as_camera(tmp_path / "cam.json") == CameraModel(2.0, 100.0, 1.6)
    assert _as_camera(CAM) is CAM
    assert bigcomp.load_camera is load_camera and bigcomp.PixelCamera is PixelCamera
    assert bigcomp.calibrate is calibrate


# -------------------------------------------------------------------------------- CLI
def test_cli_calibrate(tmp_path):
    np.save(tmp_path / "dark.npy", DARK)
    for k, f in enumerate(FLATS):
        np.save(tmp_path / f"flat{k}.npy", f)
    out = tmp_path / "camera.zarr"
    args = ["calibrate", "--dark", str(tmp_path / "dark.npy"), "--flat",
            str(tmp_path / "flat0.npy"), "--flat", str(tmp_path / "flat1.npy"), "-o", str(out),
            "--no-progress"]
    plot = []
    try:
        import matplotlib  # noqa: F401

        plot = ["--plot", str(tmp_path / "ptc.png")]
    except ImportError:
        pass
    res = CliRunner().invoke(app, args + plot)
    assert res.exit_code == 0, res.output
    assert "gain" in res.output and "hot pixels" in res.output and "camera written" in res.output
    cam = load_camera(out)
    assert abs(float(cam.gain[0, 0]) / CAM.gain.mean() - 1) < 0.03
    if plot:
        assert (tmp_path / "ptc.png").exists()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 1 and "--overwrite" in again.output
    one = CliRunner().invoke(app, args[:5] + ["-o", str(tmp_path / "c2.zarr"), "--no-progress"])
    assert one.exit_code == 1 and "light levels" in one.output


def test_cli_compress_takes_a_camera_file(tmp_path):
    from bigcomp.datasets import light_sheet

    syn = light_sheet((4, 64, 64), seed=1)
    np.save(tmp_path / "data.npy", syn.data)
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "data.tif", syn.data, photometric="minisblack")
    save_camera(CameraModel(syn.gain, syn.offset, syn.read_noise), tmp_path / "cam.json")
    fast = ["--scheduler", "synchronous", "--no-progress"]
    res = CliRunner().invoke(app, ["compress", str(tmp_path / "data.tif"),
                                   str(tmp_path / "out.zarr"), "--camera",
                                   str(tmp_path / "cam.json"), *fast])
    assert res.exit_code == 0, res.output
    assert "camera (given)" in res.output
    both = CliRunner().invoke(app, ["compress", str(tmp_path / "data.tif"),
                                    str(tmp_path / "o2.zarr"), "--camera",
                                    str(tmp_path / "cam.json"), "--gain", "2", *fast])
    assert both.exit_code == 1 and "not both" in both.output


def test_cli_calibrate_then_compress_with_the_maps(tmp_path):
    """bigcomp calibrate -o camera.zarr, then compress --camera camera.zarr: every pixel of
    the decoded movie is within q/2 of its own noise σ (hot pixels included)."""
    tifffile = pytest.importorskip("tifffile")
    truth = scmos_camera((64, 64), seed=11)
    np.save(tmp_path / "dark.npy", scmos_dark(truth, 100, seed=1))
    flats = []
    for k, f in enumerate(scmos_flats(truth, (200.0, 2000.0), frames=50, seed=2)):
        flats += ["--flat", str(tmp_path / f"flat{k}.npy")]
        np.save(tmp_path / f"flat{k}.npy", f)
    cal = CliRunner().invoke(app, ["calibrate", "--dark", str(tmp_path / "dark.npy"), *flats,
                                   "-o", str(tmp_path / "camera.zarr"), "--no-progress"])
    assert cal.exit_code == 0, cal.output
    movie = scmos_frames(truth, 10.0, frames=8, seed=3)
    tifffile.imwrite(tmp_path / "movie.tif", movie, photometric="minisblack")
    res = CliRunner().invoke(app, ["compress", str(tmp_path / "movie.tif"),
                                   str(tmp_path / "out.zarr"), "--camera",
                                   str(tmp_path / "camera.zarr"), "--scheduler", "synchronous",
                                   "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "per-pixel" in res.output
    camera = load_camera(tmp_path / "camera.zarr")
    back = bigcomp.open(tmp_path / "out.zarr").values
    assert np.abs(camera.forward(back) - camera.forward(movie)).max() <= 0.5 + 1e-9


# --------------------------------------------------------------------- real STORM data
@pytest.mark.skipif(not (STORM / "calib.npy").exists(), reason="../shared/data not present")
def test_storm_calibration_file():
    """storm-analysis' sample calib.npy (2013, version 0) against its movie sample.dax.

    Its conventions, from storm-analysis' history and checked here on the data: planes are
    transposed (its own loader transposes v0 files; only transposed do the variance map's hot
    pixels fall on the movie's noisy pixels), the offset excludes a 100 ADU baseline (the
    analysis subtracted ``baseline`` = 100 first), and the gain is in e-/ADU (fixed to ADU/e-
    in December 2016: the shot-noise slope of the movie is ~2.1 ADU/e-, not 0.47).
    """
    with pytest.raises(ParameterError, match="baseline=100, gain_units='e_per_adu'"):
        load_camera(STORM / "calib.npy")
    cam = load_camera(STORM / "calib.npy", baseline=100, gain_units="e_per_adu")
    assert cam.shape == (256, 256) and cam.source == "storm-analysis v0"
    assert np.median(cam.offset) == pytest.approx(100.384, abs=0.01)
    assert np.median(cam.gain) == pytest.approx(2.110, abs=0.01)
    assert np.median(cam.read_noise) == pytest.approx(1.134, abs=0.01)
    movie = np.fromfile(STORM / "sample.dax", ">u2").reshape(-1, 256, 256).astype(np.float64)
    mean, var = movie.mean(0), movie.var(0, ddof=1)
    hot = cam.variance > np.percentile(cam.variance, 99.5)
    assert np.median(var[hot]) > 5 * np.median(var[~hot])  # hot pixels line up (not if .T)
    assert (mean >= cam.offset).mean() > 0.99  # offset at the dark level, below the data
    # shot-noise slope on pixels without blinking molecules: ~2.1 ADU/e-
    sig = np.sqrt(cam.variance + 2.1 * np.maximum(np.median(movie, 0) - cam.offset, 0))
    calm = (movie.max(0) - np.median(movie, 0) < 3 * sig) & ~hot
    slope = np.sum((var - cam.variance)[calm]) / np.sum((mean - cam.offset)[calm])
    assert 1.7 < slope < 2.6
