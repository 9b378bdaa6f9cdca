"""numba kernels against plain-Python references, serial and parallel compilations alike."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bigcomp import CameraModel
from bigcomp.kernels import _fused
from bigcomp.kernels._coders import encode_fast
from bigcomp.kernels._dpcm import FRACTION_BITS, dpcm_decode, dpcm_encode
from bigcomp.kernels._lookup import lookup
from bigcomp.kernels._predict import accumulator_dtype, predict_decode, predict_encode
from bigcomp.predictors import FIXED_INTER, FIXED_INTRA, LS_INTER, LS_INTER_WIDE, LS_INTRA, Taps

RNG = np.random.default_rng(3)
FITTED_INTRA = Taps(LS_INTRA, tuple(int(c) for c in RNG.integers(-900, 1500, len(LS_INTRA))), 12)
FITTED_INTER = Taps(LS_INTER, tuple(int(c) for c in RNG.integers(-600, 900, len(LS_INTER))), 12)
PAIRS = [
    (FIXED_INTRA["west"], FIXED_INTER["previous"]),
    (FIXED_INTRA["b3d"], FIXED_INTER["avg3d"]),
    (FIXED_INTRA["avg4"], FIXED_INTER["avg6"]),
    (FITTED_INTRA, FITTED_INTER),
    (Taps(((0, 0, -5), (0, -1, 0)), (1, 1), 1), FIXED_INTER["avg3d"]),  # generic west tap
]


def reference_residuals(k, nz, intra, inter, lo, hi, orient=False):
    """Straightforward per-pixel implementation of the predictor definition (``orient``: the
    residual's sign flipped where the unrounded prediction lies above the rounded one)."""
    out = np.empty(k.size, np.uint32)
    n_planes, n_rows, n_cols = k.shape
    i = 0
    for p in range(n_planes):
        has_prev = p % nz != 0
        taps = inter if has_prev else intra
        for y in range(n_rows):
            for x in range(n_cols):
                flip = False
                inside = all(
                    0 <= y + dy < n_rows and 0 <= x + dx < n_cols for _, dy, dx in taps.offsets
                )
                if inside:
                    acc = sum(
                        c * int(k[p + dp, y + dy, x + dx])
                        for (dp, dy, dx), c in zip(taps.offsets, taps.coefs, strict=True)
                    )
                    acc += (1 << (taps.shift - 1)) if taps.shift else 0
                    pred = min(max(acc >> taps.shift, lo), hi)
                    flip = orient and taps.shift > 0 and (acc >> (taps.shift - 1)) & 1
                elif x > 0:
                    pred = int(k[p, y, x - 1])
                elif y > 0:
                    pred = int(k[p, y - 1, x])
                elif has_prev:
                    pred = int(k[p - 1, y, x])
                else:
                    pred = lo
                r = int(k[p, y, x]) - pred
                r = -r if flip else r
                out[i] = (r << 1) ^ (r >> 63) if r < 0 else r << 1
                i += 1
    return out


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize(("intra", "inter"), PAIRS)
@given(k=hnp.arrays(np.int32, hnp.array_shapes(min_dims=3, max_dims=3, max_side=7),
                    elements=st.integers(0, 4000)), nz=st.sampled_from([1, 2, 3]),
       orient=st.booleans())
def test_predict_matches_reference(k, nz, intra, inter, parallel, orient):
    if k.shape[0] % nz:
        nz = 1
    lo, hi = 0, 4000
    res = predict_encode(k, nz, intra.as_arrays(), inter.as_arrays(), lo, hi, orient=orient,
                         parallel=parallel)
    np.testing.assert_array_equal(res, reference_residuals(k, nz, intra, inter, lo, hi, orient))
    back = predict_decode(res, k.shape, nz, intra.as_arrays(), inter.as_arrays(), lo, hi,
                          orient=orient, parallel=parallel)
    np.testing.assert_array_equal(back, k)


@pytest.mark.parametrize("parallel", [True, False])
@given(k=hnp.arrays(np.int64, hnp.array_shapes(min_dims=3, max_dims=3, max_side=6),
                    elements=st.integers(0, 2**20)), nz=st.sampled_from([1, 2]))
def test_predict_int64_accumulation_matches_reference(k, nz, parallel):
    # sums of fitted taps over 20-bit values overflow int32: the kernels accumulate in int64
    if k.shape[0] % nz:
        nz = 1
    lo, hi = 0, 2**20
    intra, inter = FITTED_INTRA.as_arrays(), FITTED_INTER.as_arrays()
    assert accumulator_dtype(intra, inter, lo, hi) == np.int64
    res = predict_encode(k, nz, intra, inter, lo, hi, parallel=parallel)
    np.testing.assert_array_equal(
        res, reference_residuals(k, nz, FITTED_INTRA, FITTED_INTER, lo, hi)
    )
    back = predict_decode(res, k.shape, nz, intra, inter, lo, hi, dtype=np.int64,
                          parallel=parallel)
    np.testing.assert_array_equal(back, k)


@pytest.mark.parametrize("orient", [False, True])
@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize("nz", [2, 5, 6])
def test_decode_plane_pairs_match_reference(nz, parallel, orient):
    # planes 1..nz-1 of a stack decode in interleaved pairs: 37 taps reach 2 rows down in the
    # previous plane, so the pair's second plane lags 3 rows behind the first
    wide = Taps(LS_INTER_WIDE, tuple(int(c) for c in RNG.integers(-300, 600, 37)), 12)
    k = RNG.integers(0, 500, (2 * nz, 13, 17)).astype(np.uint16)
    res = predict_encode(k, nz, FITTED_INTRA.as_arrays(), wide.as_arrays(), 0, 499,
                         orient=orient, parallel=parallel)
    np.testing.assert_array_equal(
        res, reference_residuals(k, nz, FITTED_INTRA, wide, 0, 499, orient))
    back = predict_decode(res, k.shape, nz, FITTED_INTRA.as_arrays(), wide.as_arrays(), 0, 499,
                          orient=orient, dtype=np.uint16, parallel=parallel)
    np.testing.assert_array_equal(back, k)


def test_accumulator_dtype_bound():
    taps = Taps(((0, 0, -1), (0, -1, 0)), (3, -2), 2)  # sum |c| = 5, rounding 2**2
    pair = (taps.as_arrays(), taps.as_arrays())
    assert accumulator_dtype(*pair, 0, (2**31 - 4) // 5 - 1) == np.int32
    assert accumulator_dtype(*pair, 0, (2**31 - 4) // 5 + 1) == np.int64
    assert accumulator_dtype(*pair, -(2**29), 2**29) == np.int64


@pytest.mark.parametrize("parallel", [True, False])
@pytest.mark.parametrize(("intra", "inter"), PAIRS)
@given(k=hnp.arrays(np.uint16, hnp.array_shapes(min_dims=3, max_dims=3, max_side=40),
                    elements=st.integers(0, 300)), nz=st.sampled_from([1, 2]),
       group=st.sampled_from([1, 64, 1 << 15]), orient=st.booleans())
def test_fused_fast_equals_predict_then_pack(k, nz, intra, inter, parallel, group, orient):
    if k.shape[0] % nz:
        nz = 1
    args = (k, nz, intra.as_arrays(), inter.as_arrays(), 0, 300)
    expected = encode_fast(predict_encode(*args, orient=orient, parallel=parallel),
                           parallel=parallel)
    saved = _fused.GROUP_PIXELS
    _fused.GROUP_PIXELS = group  # many groups, group starts on odd rows
    try:
        got = _fused.encode_fast_fused(*args, orient=orient, parallel=parallel)
    finally:
        _fused.GROUP_PIXELS = saved
    assert got.tobytes() == expected
    _fused.GROUP_PIXELS = group
    try:
        back = _fused.decode_fast_fused(got, k.shape, nz, intra.as_arrays(), inter.as_arrays(),
                                        0, 300, dtype=np.uint16, orient=orient,
                                        parallel=parallel)
    finally:
        _fused.GROUP_PIXELS = saved
    np.testing.assert_array_equal(back, k)


def test_fused_fast_decode_detects_corruption():
    k = RNG.integers(0, 300, (2, 9, 7)).astype(np.uint16)  # 126 symbols: last block padded
    args = (2, FIXED_INTRA["b3d"].as_arrays(), FIXED_INTER["avg3d"].as_arrays(), 0, 300)
    payload = _fused.encode_fast_fused(k, *args, parallel=False)
    with pytest.raises(ValueError, match="expected"):
        _fused.decode_fast_fused(payload[:-4], k.shape, *args, dtype=np.uint16)
    padded = payload.copy()
    padded[-1] |= 0x80  # a padding bit of the last block (its 2 padding symbols are zero)
    with pytest.raises(ValueError, match="padding"):
        _fused.decode_fast_fused(padded, k.shape, *args, dtype=np.uint16)
    with pytest.raises(ValueError, match="out of range"):  # values above the announced hi
        _fused.decode_fast_fused(payload, k.shape, 2, *args[1:3], 0, 200, dtype=np.uint16)


@pytest.mark.parametrize("parallel", [True, False])
def test_dpcm_round_trip_and_bound(parallel):
    camera = CameraModel(2.0, 100.0, 1.6)
    table = np.rint(camera.forward(np.arange(65536.0)) * (1 << FRACTION_BITS)).astype(np.int64)
    a = np.clip(100 + 2 * RNG.poisson(RNG.uniform(0, 400, (4, 33, 47))), 0, 65535).astype(np.int32)
    intra, inter = FIXED_INTRA["b3d"].as_arrays(), FIXED_INTER["avg3d"].as_arrays()
    sym, escapes, rec = dpcm_encode(a, 2, table, intra, inter, parallel=parallel)
    back = dpcm_decode(sym, escapes, a.shape, 2, table, intra, inter, parallel=parallel)
    np.testing.assert_array_equal(back, rec)
    assert np.abs(table[back] - table[a]).max() <= 1 << (FRACTION_BITS - 1)
    np.testing.assert_array_equal(a.ravel()[sym == 0], escapes)  # escapes are exact


@pytest.mark.parametrize("parallel", [True, False])
def test_dpcm_escape_offsets(parallel):
    """Offsets (format version 4) decode to the same values as exact escapes, are small, and
    one leading outside the table is reported."""
    camera = CameraModel(2.0, 100.0, 1.6)
    table = np.rint(camera.forward(np.arange(65536.0)) * (1 << FRACTION_BITS)).astype(np.int64)
    a = np.clip(100 + 2 * RNG.poisson(RNG.uniform(0, 40, (4, 33, 47))), 0, 65535).astype(np.int32)
    intra, inter = FIXED_INTRA["b3d"].as_arrays(), FIXED_INTER["avg3d"].as_arrays()
    sym, values, rec = dpcm_encode(a, 2, table, intra, inter, parallel=parallel)
    sym2, offsets, rec2 = dpcm_encode(a, 2, table, intra, inter, offsets=True, parallel=parallel)
    np.testing.assert_array_equal(sym2, sym)
    np.testing.assert_array_equal(rec2, rec)
    assert offsets.size == values.size > 0
    assert np.abs(offsets).mean() < 0.5 * values.mean()
    back = dpcm_decode(sym, offsets, a.shape, 2, table, intra, inter, offsets=True,
                       parallel=parallel)
    np.testing.assert_array_equal(back, rec)
    offsets[0] = -(1 << 20)
    with pytest.raises(ValueError, match="outside the value range"):
        dpcm_decode(sym, offsets, a.shape, 2, table, intra, inter, offsets=True, parallel=parallel)


def test_dpcm_missing_escapes_detected():
    table = np.arange(0, 65536 << 10, 1 << 10, dtype=np.int64)
    with pytest.raises(ValueError, match="escapes"):
        dpcm_decode(np.zeros(8, np.uint32), np.zeros(3, np.int64), (1, 2, 4), 1, table,
                    FIXED_INTRA["west"].as_arrays(), FIXED_INTRA["west"].as_arrays())


@pytest.mark.parametrize("parallel", [True, False])
def test_lookup(parallel):
    table = RNG.integers(0, 1000, 65536).astype(np.int32)
    values = RNG.integers(0, 65536, (3, 70001)).astype(np.uint16)
    np.testing.assert_array_equal(lookup(values, table, np.int32, parallel=parallel), table[values])


def test_cores_free_follows_the_load(monkeypatch):
    from bigcomp.kernels import _numba

    monkeypatch.setattr(_numba.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(_numba.os, "getloadavg", lambda: (1.2, 0.0, 0.0))
    assert _numba.cores_free()  # this process alone on two cores
    monkeypatch.setattr(_numba.os, "getloadavg", lambda: (2.1, 0.0, 0.0))
    assert not _numba.cores_free()  # another busy process: one thread is faster

    def unknown():
        raise OSError("no load average here")

    monkeypatch.setattr(_numba.os, "getloadavg", unknown)
    assert _numba.cores_free()


def test_oriented_residuals_are_cheaper_on_noisy_smooth_data():
    """The sign flip puts the likelier of +1/-1 on the smaller code: fewer bits (order-0
    entropy of the residuals, as the coders see them), same data back."""
    from bigcomp.datasets import light_sheet
    from bigcomp.noise import CameraModel, quantisation_tables
    from bigcomp.predictors import _entropy_bits, choose_predictor

    s = light_sheet((4, 64, 64), seed=2)
    tables = quantisation_tables(CameraModel(s.gain, s.offset, s.read_noise), 2.0, "uint16")
    k = tables.bin[s.data].astype(np.int32)  # within-noise bins, q = 2 sigma
    intra, inter = choose_predictor(k, 4, 0, tables.nbins - 1)
    args = (k, 4, intra.as_arrays(), inter.as_arrays(), 0, tables.nbins - 1)
    plain = predict_encode(*args, orient=False)
    oriented = predict_encode(*args, orient=True)
    assert _entropy_bits(oriented) < 0.97 * _entropy_bits(plain)  # measured 0.959
    np.testing.assert_array_equal(
        predict_decode(oriented, k.shape, 4, *args[2:], orient=True, dtype=np.int32), k)
