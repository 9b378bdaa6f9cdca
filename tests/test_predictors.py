"""Predictor choice: least-squares fits, their reweighted refit, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from bigcomp import predictors as P


def _heavy_tailed_stack(seed: int = 0, shape=(8, 96, 96)) -> np.ndarray:
    """Smooth planes plus Laplacian noise with rare large spikes (residuals far from Gaussian)."""
    rng = np.random.default_rng(seed)
    z, y, x = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    smooth = 200 + 60 * np.sin(x / 9.0) * np.cos(y / 13.0) + 3 * z
    noise = rng.laplace(0, 2.0, shape) + (rng.random(shape) < 0.01) * rng.normal(0, 80, shape)
    return np.clip(np.rint(smooth + noise), 0, 1000).astype(np.uint16)


def test_reweighted_fit_lowers_sample_entropy():
    k = _heavy_tailed_stack()
    where = P._positions(k.shape, k.shape[0], True, P.FIT_SAMPLE, margin=3)
    values = P._gather(k, where, P.LS_INTER)
    target = k[where].astype(np.float64)
    cols = list(range(len(P.LS_INTER)))
    ls = P._fit(None, target, P.LS_INTER, P._exact_products(values, target))
    refit = P._reweighted(values, target, cols, ls, 0, 1000)
    assert refit.offsets == ls.offsets
    assert refit.coefs != ls.coefs
    bits_ls = P._residual_bits(values, P.SAMPLE, cols, target, ls, 0, 1000)
    bits_refit = P._residual_bits(values, P.SAMPLE, cols, target, refit, 0, 1000)
    assert bits_refit < bits_ls  # spikes pull the squares, not the absolute values


def test_refit_only_from_the_size_threshold(monkeypatch):
    k = _heavy_tailed_stack(1)
    plain = P.choose_predictor(k, k.shape[0], 0, 1000)
    assert P.choose_predictor(k, k.shape[0], 0, 1000) == plain  # reproducible
    assert k.size < P.REWEIGHT_MIN_SIZE
    monkeypatch.setattr(P, "REWEIGHT_MIN_SIZE", 1)
    refit = P.choose_predictor(k, k.shape[0], 0, 1000)
    assert refit != plain
    assert P.choose_predictor(k, k.shape[0], 0, 1000) == refit
    assert [t.offsets for t in refit] == [t.offsets for t in plain]


def test_refit_by_the_pixels_each_predictor_serves(monkeypatch):
    """The threshold counts the pixels of the planes a predictor predicts: seven planes of eight
    are inter planes, and all eight are intra planes of single-plane stacks (nz = 1)."""
    k = _heavy_tailed_stack(1)
    plane = k.shape[1] * k.shape[2]
    stack = P.choose_predictor(k, k.shape[0], 0, 1000)
    planes = P.choose_predictor(k, 1, 0, 1000)
    monkeypatch.setattr(P, "REWEIGHT_MIN_SIZE", 7 * plane)
    inter = P.choose_predictor(k, k.shape[0], 0, 1000)[1]
    assert inter != stack[1]
    assert inter.offsets == stack[1].offsets
    intra = P.choose_predictor(k, 1, 0, 1000)[0]
    assert intra != planes[0]
    assert intra.offsets == planes[0].offsets
    monkeypatch.setattr(P, "REWEIGHT_MIN_SIZE", 7 * plane + 1)
    assert P.choose_predictor(k, k.shape[0], 0, 1000)[1] == stack[1]
    assert P.choose_predictor(k, 1, 0, 1000)[0] != planes[0]


def test_no_refit_without_exact_sums():
    # float32 data quantise to integers up to 2**29: sums are not exact, plain fit only
    rng = np.random.default_rng(2)
    k = (rng.integers(-(2**28), 2**28, (4, 40, 40))).astype(np.int32)
    where = P._positions(k.shape, 4, True, P.FIT_SAMPLE, margin=3)
    values = P._gather(k, where, P.LS_INTER)
    assert P._exact_products(values, k[where].astype(np.float64)) is None


@pytest.mark.parametrize("weight", [1, P.MAX_WEIGHT])
def test_weighted_sums_are_exact_at_the_bounds(weight):
    # the largest values, weights and row count the refit allows: integer sums below 2**53
    rows, big = 2**14, 2**17
    v = np.full((rows, 2), float(big))
    a = v * weight
    gram = a.T @ v
    assert gram[0, 0] == float(rows * weight * big * big) < 2.0**53


def test_gather_equals_direct_indexing():
    k = _heavy_tailed_stack(3, shape=(4, 40, 57))
    where = P._positions(k.shape, 4, True, 500, margin=3)
    values = P._gather(k, where, P.LS_INTER_WIDE)
    p, y, x = where
    expected = np.stack([k[p + dp, y + dy, x + dx] for dp, dy, dx in P.LS_INTER_WIDE], axis=1)
    np.testing.assert_array_equal(values, expected.astype(np.float64))


def test_residual_bits_equal_a_numpy_reference():
    k = _heavy_tailed_stack(4)
    where = P._positions(k.shape, k.shape[0], True, P.FIT_SAMPLE, margin=3)
    values = P._gather(k, where, P.LS_INTER)
    target = k[where].astype(np.float64)
    taps = P._fit(values, target, P.LS_INTER)
    lo, hi = 0, 1000
    n = min(P.SAMPLE, target.size)
    acc = values[:n].astype(np.int64) @ np.asarray(taps.coefs, np.int64) + (1 << (taps.shift - 1))
    r = target[:n].astype(np.int64) - np.clip(acc >> taps.shift, lo, hi)
    r = np.where((acc >> (taps.shift - 1)) & 1, -r, r)  # oriented, as the chunks code it
    zigzag = np.where(r >= 0, 2 * r, -2 * r - 1)
    cols = list(range(len(P.LS_INTER)))
    assert P._residual_bits(values, n, cols, target, taps, lo, hi) == P._entropy_bits(zigzag)


def test_sample_positions_are_cached_and_read_only():
    first = P._positions((5, 64, 64), 5, True, P.FIT_SAMPLE, margin=3)
    assert P._positions((5, 64, 64), 5, True, P.FIT_SAMPLE, margin=3) is first
    with pytest.raises(ValueError, match="read-only"):
        first[0][0] = 1
