"""Fidelity metrics: hand-computed cases, and chunked (dask) == whole-array (numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("scipy")
pytest.importorskip("skimage")
da = pytest.importorskip("dask.array")

from bigcomp import metrics
from bigcomp.noise import CameraModel

RNG = np.random.default_rng(42)
STACK = (RNG.poisson(50, (4, 48, 40)) + 100).astype(np.uint16)


def test_psnr_constant_offset():
    a = np.zeros((3, 16, 16))
    a[0, 0, 0], a[1, 1, 1] = 10.0, 210.0  # range 210
    assert metrics.psnr(a, a + 3.0) == pytest.approx(10 * math.log10(210**2 / 9))
    assert metrics.psnr(a, a - 3.0, data_range=1000.0) == pytest.approx(
        10 * math.log10(1000**2 / 9))
    assert metrics.psnr(a, a) == math.inf


def test_sigma_error_known_camera():
    cam = CameraModel(gain=1.0, offset=0.0, read_noise=0.0)  # VST = 2·sqrt(x + 3/8)
    a = np.full((2, 8, 8), 100, np.uint16)
    b = np.full((2, 8, 8), 121, np.uint16)
    b[0, 0, 0] = 100  # one exact pixel
    e = 2 * (math.sqrt(121.375) - math.sqrt(100.375))
    r = metrics.sigma_error(a, b, camera=cam)
    assert r["max"] == pytest.approx(e)
    assert r["mean"] == pytest.approx(e * 127 / 128)
    assert r["rms"] == pytest.approx(e * math.sqrt(127 / 128))


def test_error_histogram_bins_and_clipping():
    cam = CameraModel(gain=1.0, offset=0.0, read_noise=0.0)
    a = np.full((4, 4), 100.0)
    b = a.copy()
    b[0, :2] = cam.inverse(cam.forward(100.0) + 0.76)  # +0.76 σ
    b[1, 0] = cam.inverse(cam.forward(100.0) - 10.0)  # far below the edges
    counts, edges = metrics.error_histogram(a, b, camera=cam,
                                            edges=np.array([-1.0, -0.5, 0.0, 0.5, 1.0]))
    assert counts.tolist() == [1, 0, 13, 2]  # 0 lands in [0, 0.5); -10 in the first bin
    assert edges.tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]


def test_correlation_linear_and_anti():
    a = STACK.astype(np.float64)
    assert metrics.correlation(a, 2 * a + 3) == pytest.approx(1.0)
    assert metrics.correlation(a, -a) == pytest.approx(-1.0)
    b = RNG.normal(size=a.shape)
    ref = np.corrcoef(a.ravel(), b.ravel())[0, 1]
    assert metrics.correlation(a, b) == pytest.approx(ref, abs=1e-12)


def test_ssim_matches_scikit_image_per_plane():
    from skimage.metrics import structural_similarity

    b = (STACK + RNG.integers(-5, 6, STACK.shape)).astype(np.float64)
    rng_ = float(STACK.max()) - float(STACK.min())
    ref = np.mean([structural_similarity(STACK[i].astype(float), b[i], data_range=rng_)
                   for i in range(STACK.shape[0])])
    assert metrics.ssim(STACK, b) == pytest.approx(ref, rel=1e-10)
    assert metrics.ssim(STACK, STACK) == pytest.approx(1.0)


def test_fourier_correlation_identical_and_scaled():
    a = RNG.normal(size=(3, 32, 32))
    _, frc = metrics.fourier_correlation(a, a, nbins=8)
    np.testing.assert_allclose(frc, 1.0)
    _, frc = metrics.fourier_correlation(a, 3 * a, nbins=8)
    np.testing.assert_allclose(frc, 1.0)
    _, frc = metrics.fourier_correlation(a, -a, nbins=8)
    np.testing.assert_allclose(frc, -1.0)
    vol = RNG.normal(size=(16, 16, 16))
    _, fsc = metrics.fourier_correlation(vol, vol + RNG.normal(size=vol.shape) * 1e3, ndim=3,
                                         nbins=4)
    assert np.all(np.abs(fsc[1:]) < 0.05)  # unrelated noise: no correlation


def test_dice_iou_known_masks():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:5], b[3:8] = True, True  # 50 + 50 pixels, 20 shared, union 80
    assert metrics.dice(a, b) == pytest.approx(0.4)
    assert metrics.iou(a, b) == pytest.approx(0.25)
    assert metrics.dice(np.zeros((3, 3), bool), np.zeros((3, 3), bool)) == 1.0


def test_segmentation_agreement():
    img = np.zeros((2, 40, 40))
    img[:, 10:30, 10:30] = 100.0
    r = metrics.segmentation_agreement(img, img)
    assert r["dice"] == 1.0
    assert r["iou"] == 1.0
    assert 0.2 < r["fraction"] < 0.35
    shifted = np.roll(img, 2, axis=-1)
    r = metrics.segmentation_agreement(img, shifted, threshold=50.0)
    assert r["threshold_original"] == 50.0
    assert r["dice"] == pytest.approx(18 / 20, abs=0.01)  # a 20-px square moved 2 px


def test_segmentation_threshold_shared_or_per_image():
    ramp = np.tile(np.arange(100.0), (1, 40, 1))  # columns 0..99: Otsu splits at 49.5
    brighter = 1.5 * ramp  # the same scene with 1.5x the contrast
    shared = metrics.segmentation_agreement(ramp, brighter, sigma=0.0)
    t = shared["threshold_original"]
    assert 48 < t < 50  # a half split (on 1024 bins; 49 may fall on either side)
    assert shared["threshold_decoded"] == t
    n_a, n_b = int((np.arange(100) > t).sum()), int((1.5 * np.arange(100) > t).sum())
    assert (n_a, n_b) in ((50, 66), (51, 67))  # nested column ranges
    assert shared["dice"] == pytest.approx(2 * n_a / (n_a + n_b))
    own = metrics.segmentation_agreement(ramp, brighter, sigma=0.0, per_image=True)
    assert own["threshold_decoded"] == pytest.approx(1.5 * 49.5, abs=1.0)
    assert own["dice"] == 1.0  # each threshold follows its own image
    # a threshold between two levels: the decoded mask grows by 40 pixels, by hand
    img = np.zeros((1, 40, 40))
    img[:, 10:30, 10:30] = 100.0
    dim = img.copy()
    dim[:, 10:30, 30:32] = 60.0
    r = metrics.segmentation_agreement(img, dim, sigma=0.0, threshold=50.0)
    assert r["dice"] == pytest.approx(2 * 400 / (400 + 440))


def test_auto_thresholds_on_two_level_histogram():
    from skimage import filters

    # 300 pixels at 10, 100 at 50 (+ tiny jitter so bins are not degenerate)
    img = np.concatenate([np.full(300, 10.0), np.full(100, 50.0)]).reshape(20, 20)
    for method in metrics.segmentation.THRESHOLDS:
        t = metrics.auto_threshold(img, method)
        assert 10 <= t < 50, method  # separates the two levels
        assert metrics.mask_overlap(img > t, img > 30)["dice"] == 1.0
    rng = np.random.default_rng(1)
    mix = np.concatenate([rng.normal(100, 5, 4000), rng.normal(160, 15, 1000)]).reshape(50, 100)
    ref = {"otsu": filters.threshold_otsu(mix), "li": filters.threshold_li(mix),
           "triangle": filters.threshold_triangle(mix)}
    width = (mix.max() - mix.min()) / 256
    for method, expected in ref.items():  # scikit-image on the image, ours on 256 bins
        assert metrics.auto_threshold(mix, method, bins=256) == pytest.approx(
            expected, abs=width), method
    with pytest.raises(ValueError, match="threshold"):
        metrics.auto_threshold(mix, "mean")


def _render(points: np.ndarray, shape=(2, 48, 48), sigma=1.3, photons=5000.0):
    yy, xx = np.mgrid[0:shape[1], 0:shape[2]]
    img = np.full(shape, 10.0)
    for t, y, x in points:
        img[int(t)] += photons / (2 * np.pi * sigma**2) * np.exp(
            -((yy - y) ** 2 + (xx - x) ** 2) / (2 * sigma**2))
    return img


PTS = np.array([[0, 12.3, 14.6], [0, 30.8, 33.1], [1, 20.5, 20.5], [1, 35.2, 10.9]])


def test_fit_gaussians_recovers_parameters():
    yy, xx = np.mgrid[0:7, 0:7]
    win = 50 * np.exp(-((yy - 3.3) ** 2 + (xx - 2.8) ** 2) / (2 * 1.2**2)) + 7
    y0, x0, amp, bg, s = metrics.fit_gaussians(win[None], psf_sigma=1.5)[0]
    assert (y0, x0, amp, bg, s) == pytest.approx((3.3, 2.8, 50, 7, 1.2), abs=1e-4)


def test_spot_localisation_of_known_shift():
    cam = CameraModel(gain=1.0, offset=0.0, read_noise=1.0)
    found = metrics.detect_spots(_render(PTS), camera=cam)
    r = metrics.localisation_error(PTS, found)
    assert r["matched"] == 4
    assert r["rmse"] < 0.02  # noise-free: sub-pixel exact
    shifted = metrics.detect_spots(_render(PTS + np.array([0, 0.3, -0.4])), camera=cam)
    r = metrics.localisation_error(found, shifted)
    assert r["rmse"] == pytest.approx(0.5, abs=0.02)
    assert r["jaccard"] == 1.0


def test_match_spots_is_one_to_one():
    ref = np.array([[0, 5.0, 5.0], [0, 5.0, 5.9]])
    test = np.array([[0, 5.0, 5.5]])
    i, j, _ = metrics.match_spots(ref, test, radius=1.0)
    assert len(i) == 1
    assert j.tolist() == [0]
    r = metrics.localisation_error(ref, test)
    assert r["recall"] == 0.5
    assert r["precision"] == 1.0
    # different planes never match
    assert len(metrics.match_spots(ref, test + np.array([1, 0, 0]))[0]) == 0


def test_paired_localisation_change_by_hand():
    truth = np.array([[0, 10.0, 10.0], [0, 20.0, 20.0], [1, 10.0, 10.0], [1, 30.0, 30.0]])
    ref = truth + np.array([0, 0.3, 0.0])  # every original fit 0.3 px off in y
    test = (truth + np.array([0, 0.0, 0.4]))[[0, 1, 2]]  # decoded: 0.4 px off in x; 4th lost
    test = np.vstack([test, [1, 5.0, 5.0]])  # and a false detection
    r = metrics.paired_localisation_change(truth, ref, test, n_boot=200)
    assert (r["pairs"], r["only_ref"], r["only_test"]) == (3, 1, 0)
    assert r["rmse_ref"] == pytest.approx(0.3)
    assert r["rmse_test"] == pytest.approx(0.4)
    assert r["change_pct"] == pytest.approx(100 / 3)
    assert r["shift_rms"] == pytest.approx(0.5)  # 0.3 in y and 0.4 in x: 3-4-5
    assert r["shift_change_pct"] == pytest.approx(100 * (math.sqrt(1 + 0.5**2 / 0.3**2) - 1))
    # every spot changes by the same factor: the bootstrap interval collapses onto it
    assert r["ci_low"] == pytest.approx(100 / 3)
    assert r["ci_high"] == pytest.approx(100 / 3)
    assert r["median_change_pct"] == pytest.approx(100 / 3)
    none = metrics.paired_localisation_change(truth, ref, test[:0])
    assert none["pairs"] == 0
    assert math.isnan(none["change_pct"])


def test_bootstrap_ci_covers_known_ratio():
    # 2-D errors sigma 1; decoded = original + independent error of variance 0.21:
    # RMS ratio sqrt(1.21) = 1.1, i.e. +10 %
    rng = np.random.default_rng(7)
    e = rng.normal(size=(3000, 2))
    d = e + rng.normal(scale=math.sqrt(0.21), size=e.shape)
    er, ed = np.hypot(*e.T), np.hypot(*d.T)

    def change(r, t):
        return 100 * (metrics.stats.rms(t) / metrics.stats.rms(r) - 1)

    lo, hi = metrics.bootstrap_ci(change, er, ed, n_boot=500)
    assert lo < 10.0 < hi
    assert hi - lo < 4.0  # ~±1.5 % from 3000 pairs
    assert metrics.bootstrap_ci(change, er, ed, n_boot=500) == (lo, hi)  # seeded
    lo_m, hi_m = metrics.bootstrap_ci(lambda v: v.mean(axis=-1), np.arange(1000.0), n_boot=500)
    assert lo_m < 499.5 < hi_m
    assert hi_m - lo_m == pytest.approx(2 * 1.96 * 288.7 / 31.6, rel=0.2)  # 2·1.96·σ/√n
    assert all(math.isnan(v) for v in metrics.bootstrap_ci(change, er[:1], ed[:1]))
    with pytest.raises(ValueError, match="same length"):
        metrics.bootstrap_ci(change, er, ed[:-1])


def test_dask_equals_numpy():
    cam = CameraModel(gain=2.0, offset=100.0, read_noise=1.6)
    a = STACK
    b = (a + RNG.integers(-3, 4, a.shape)).astype(np.uint16)
    t = a.astype(np.float32) + 0.5
    # chunks split y too (not x: ssim and FRC are per plane)
    ad, bd, td = (da.from_array(v, chunks=(1, 20, 40)) for v in (a, b, t))
    pn = metrics.pixel_stats(a, b, camera=cam, truth=t)
    pd_ = metrics.pixel_stats(ad, bd, camera=cam, truth=td)
    for k in ("mse", "psnr", "correlation", "max_sigma", "mean_sigma", "rms_sigma",
              "truth_rms_ratio", "truth_rms_sigma"):
        assert pd_[k] == pytest.approx(pn[k], rel=1e-12), k
    np.testing.assert_array_equal(pd_["hist"], pn["hist"])
    assert metrics.ssim(ad, bd) == pytest.approx(metrics.ssim(a, b), rel=1e-12)
    a_t, b_t = (da.from_array(v, chunks=(1, 48, 40)) for v in (a, b))
    np.testing.assert_allclose(metrics.fourier_correlation(a_t, b_t)[1],
                               metrics.fourier_correlation(a, b)[1], rtol=1e-12)
    assert metrics.segmentation_agreement(ad, bd) == metrics.segmentation_agreement(a, b)
    img = _render(PTS).astype(np.float32)
    whole = metrics.detect_spots(img, camera=cam)
    chunked = metrics.detect_spots(da.from_array(img, chunks=(1, 16, 24)), camera=cam)
    order = np.lexsort(chunked.T[::-1])
    np.testing.assert_allclose(chunked[order], whole[np.lexsort(whole.T[::-1])], rtol=1e-9)
