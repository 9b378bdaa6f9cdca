"""Tests of the INR latent entropy coder (bigcomp.inr.grid.entropy)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bigcomp.errors import CorruptChunkError, ParameterError
from bigcomp.inr.grid import entropy as E
from bigcomp.inr.grid.entropy import (
    CONTEXT,
    IntARM,
    arm_params,
    code_length_bits,
    decode_latents,
    encode_latents,
    quantise_arm,
)

# sha256 of E._tail_table() as little-endian int64: changes to it break every stored tile
GOLDEN_TABLE_SHA256 = "028bb389a479f4e48a3ce785aaeb7a0caaa1e2d49237332a697652e573796c20"


def _float_layers(rng, dims, scale=0.3):
    return [(rng.normal(size=(dims[i + 1], dims[i])) * scale, rng.normal(size=dims[i + 1]) * scale)
            for i in range(len(dims) - 1)]


def _float_arm(layers, ctx):
    h = ctx.astype(np.float64)
    for i, (w, b) in enumerate(layers):
        h = h @ w.T + b
        if i < len(layers) - 1:
            h = np.maximum(h, 0)
    return h[:, 0], h[:, 1]


def _arm(seed=0, dims=(13, 12, 12, 2), nlevels=4, scale=0.3):
    rng = np.random.default_rng(seed)
    return quantise_arm(_float_layers(rng, dims, scale), rng.uniform(-1, 2, nlevels))


def _contexts(q):
    """numpy reference of the causal context gather: (C*D*H*W, 13)."""
    _, d, h, w = q.shape
    qp = np.pad(q.astype(np.int64), ((0, 0), (1, 1), (1, 1), (1, 1)))
    return np.stack([qp[:, 1 + dz : 1 + dz + d, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w].ravel()
                     for dz, dy, dx in CONTEXT], 1)


def _laplace_levels(rng, shapes, scale=1.0, lim=20):
    levels = [np.clip(np.rint(rng.laplace(0, scale, s)), -lim, lim).astype(np.int64)
              for s in shapes]
    return levels, np.array([[-lim, lim]] * len(shapes))


def _roundtrip(levels, arm, bounds):
    buf = encode_latents(levels, arm, bounds)
    out = decode_latents(buf, [q.shape for q in levels], arm, bounds)
    assert len(out) == len(levels)
    for q, r in zip(levels, out, strict=True):
        assert r.dtype == np.int16
        np.testing.assert_array_equal(r, q)
    return buf


# ---------------------------------------------------------------------------- model
def test_context():
    assert len(CONTEXT) == 13
    assert list(CONTEXT) == sorted(CONTEXT)
    assert all(o < (0, 0, 0) and max(map(abs, o)) == 1 for o in CONTEXT)


@pytest.mark.parametrize("x", [-9.3, -1.0, -1e-4, 0.0, 1e-3, 0.5, 6.0])
def test_exp_is_accurate(x):
    assert E._exp(x) == pytest.approx(math.exp(x), rel=1e-12)


def test_table_golden():
    t = E._tail_table()
    assert t.shape == (E.J_MAX - E.J_MIN + 1, 16 * E.MAX_ALPHABET + 17)
    assert (t[:, 0] == 2**29).all()
    assert (np.diff(t, axis=1) <= 0).all()
    assert (t >= 0).all()
    assert hashlib.sha256(t.astype("<i8").tobytes()).hexdigest() == GOLDEN_TABLE_SHA256


@pytest.mark.parametrize(
    ("lo", "hi"), [(-128, 127), (0, 1), (-5, 5), (3, 3), (-128, -127), (126, 127)]
)
@pytest.mark.parametrize("mu16", [-2048, -100, -8, 0, 7, 8, 500, 2032])
@pytest.mark.parametrize("j", [E.J_MIN, -17, 0, E.J_MAX])
def test_cum_corners(lo, hi, mu16, j):
    cum = E._cum_freqs(lo, hi, mu16, j)
    freq = np.diff(cum)
    assert cum[0] == 0
    assert cum[-1] == 2**E.PROB_BITS
    assert (freq >= 1).all()
    mk = 2**E.PROB_BITS - (hi - lo + 1)
    kernel = [E._cum(E._tail_table32(), j - E.J_MIN, mu16, lo, hi, mk, k)
              for k in range(lo, hi + 2)]
    np.testing.assert_array_equal(kernel, cum)


def test_cum_follows_mu_and_b():
    narrow, wide = np.diff(E._cum_freqs(-10, 10, 16 * 3, E.J_MIN)), np.diff(E._cum_freqs(
        -10, 10, 16 * 3, E.J_MAX))
    assert narrow.argmax() == 13
    assert narrow.max() > 65000
    inner = wide[1:-1]  # b = 400: nearly flat, the tails fold into the end symbols
    assert inner.max() - inner.min() < 5
    assert min(wide[0], wide[-1]) > 30000


@given(seed=st.integers(0, 2**32 - 1), hidden=st.lists(st.integers(1, 64), max_size=3),
       scale=st.sampled_from([0.01, 0.3, 3.0]))
def test_arm_numba_matches_numpy(seed, hidden, scale):
    rng = np.random.default_rng(seed)
    arm = _arm(seed, (13, *hidden, 2), nlevels=3, scale=scale)
    ctx = rng.integers(-128, 128, (50, 13))
    ctx[:10] = rng.integers(-2, 3, (10, 13))
    for level in range(3):
        mu, j = np.empty(50, np.int64), np.empty(50, np.int64)
        E._arm_batch(ctx, *arm._flat, arm.level_logb[level], mu, j)
        ref_mu, ref_j = arm_params(arm, ctx, level)
        np.testing.assert_array_equal(mu, ref_mu)
        np.testing.assert_array_equal(j, ref_j)


def test_kernel_model_matches_reference():
    rng = np.random.default_rng(3)
    arm = _arm(3)
    levels, bounds = _laplace_levels(rng, [(2, 3, 7, 9), (3, 1, 5, 4), (1, 2, 3, 3)], 2.0, 9)
    cum, freq = E._model(levels, arm, bounds)
    ref_cum, ref_freq = [], []
    for lv, q in enumerate(levels):
        mu, j = arm_params(arm, _contexts(q), lv)
        lo, hi = bounds[lv]
        for v, m, jj in zip(q.ravel(), mu, j, strict=True):
            c = E._cum_freqs(lo, hi, m, jj)
            ref_cum.append(c[v - lo])
            ref_freq.append(c[v - lo + 1] - c[v - lo])
    np.testing.assert_array_equal(cum, ref_cum)
    np.testing.assert_array_equal(freq, ref_freq)


def test_quantise_fidelity():
    rng = np.random.default_rng(7)
    for _ in range(20):
        layers = _float_layers(rng, (13, 12, 12, 2))
        arm = quantise_arm(layers, [0.25])
        assert arm.level_logb[0] == 64
        ctx = rng.integers(-4, 5, (1000, 13))
        mu16, j = arm_params(arm, ctx, 0)
        ok = (mu16 > -2048) & (mu16 < 2032)
        # the integer arithmetic against the dequantised weights: rounding to 1/16 + activations
        deq = [(w / 2.0**s, b / 2.0 ** (s + E.ACT_FRAC))
               for w, b, s in zip(arm.weights, arm.biases, arm.shifts, strict=True)]
        mu_d, lb_d = _float_arm(deq, ctx)
        assert np.abs(mu16 / 16 - mu_d)[ok].max() <= 1 / 32 + 1 / 64
        okj = (j > E.J_MIN) & (j < E.J_MAX)
        assert np.abs(j / 8 - (lb_d + 0.25))[okj].max() <= 1 / 16 + 1 / 64
        # against the float ARM: + 8-bit weight quantisation
        mu_f, _ = _float_arm(layers, ctx)
        err = np.abs(mu16 / 16 - mu_f)[ok]
        assert err.mean() < 0.1
        assert err.max() < 0.5


def test_quantise_shift_and_bias():
    w = np.full((2, 13), 0.5)
    arm = quantise_arm([(w, np.array([1.0, -1.0]))], [0.0])
    assert arm.shifts == (7,)  # 0.5 * 2**7 = 64 <= 127 < 128
    np.testing.assert_array_equal(arm.weights[0], 64)
    np.testing.assert_array_equal(arm.biases[0], [2**15, -(2**15)])
    tiny = quantise_arm([(np.full((2, 13), 1e-6), np.array([100.0, 0.0]))], [0.0])
    assert tiny.biases[0][0] == 100 * 2 ** (tiny.shifts[0] + 8) < 2**31
    with pytest.raises(ParameterError, match="does not fit"):
        quantise_arm([(np.full((2, 13), 200.0), np.zeros(2))], [0.0])
    with pytest.raises(ParameterError, match="13 inputs to 2 outputs"):
        quantise_arm([(np.zeros((3, 13)), np.zeros(3))], [0.0])


# ----------------------------------------------------------------------------- ARM i/o
def test_intarm_bytes_roundtrip():
    arm = _arm(5)
    buf = arm.to_bytes()
    assert len(buf) == 3 + (13 * 12 + 12 * 12 + 12 * 2) + 4 * 26 + 2 * 4 == 439
    back = IntARM.from_bytes(buf, (13, 12, 12, 2), 4)
    assert back.to_bytes() == buf
    assert back.shifts == arm.shifts
    for a, b in zip(back.weights + back.biases, arm.weights + arm.biases, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.level_logb, arm.level_logb)
    with pytest.raises(CorruptChunkError, match="expected 439"):
        IntARM.from_bytes(buf[:-1], (13, 12, 12, 2), 4)
    with pytest.raises(CorruptChunkError):
        IntARM.from_bytes(buf, (13, 12, 12, 2), 5)
    with pytest.raises(CorruptChunkError, match="shift"):
        IntARM.from_bytes(b"\x40" + buf[1:], (13, 12, 12, 2), 4)


# ----------------------------------------------------------------------------- coding
@st.composite
def pyramids(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    nlev = draw(st.integers(1, 4))
    hidden = draw(st.lists(st.integers(1, 16), max_size=2))
    arm = quantise_arm(_float_layers(rng, (13, *hidden, 2), draw(st.sampled_from([0.1, 0.5, 2]))),
                       rng.uniform(-6, 6, nlev + draw(st.integers(0, 1))))
    levels, bounds = [], []
    for _ in range(nlev):
        shape = (draw(st.integers(1, 3)), draw(st.integers(1, 5)), draw(st.integers(1, 12)),
                 draw(st.integers(1, 12)))
        kind = draw(st.sampled_from(["uniform", "skewed", "single"]))
        lo = draw(st.integers(-128, 127))
        hi = lo if kind == "single" else draw(st.integers(lo, 127))
        if kind == "skewed":
            q = np.clip(np.rint(rng.laplace(0, 0.7, shape)), lo, hi)
        else:
            q = rng.integers(lo, hi + 1, shape)
        levels.append(q.astype(draw(st.sampled_from([np.int8, np.int16, np.int64]))))
        bounds.append((lo, hi))
    return levels, arm, np.array(bounds)


@given(pyramids())
def test_roundtrip(case):
    _roundtrip(*case)


def test_roundtrip_2d_and_wide_arm():
    rng = np.random.default_rng(11)
    arm = _arm(11, (13, 64, 40, 16, 2), nlevels=2)
    levels, bounds = _laplace_levels(rng, [(4, 1, 40, 33), (2, 1, 20, 17)], 3.0, 127)
    bounds[1] = (-128, 127)
    _roundtrip(levels, arm, bounds)


def test_single_symbol_and_empty():
    arm = _arm(0)
    levels = [np.full((3, 2, 5, 5), 7), np.full((1, 1, 4, 4), -128)]
    buf = _roundtrip(levels, arm, [[7, 7], [-128, -128]])
    assert len(buf) == 4
    assert code_length_bits(levels, arm, [[7, 7], [-128, -128]]) == 0
    assert encode_latents([], arm, np.zeros((0, 2), np.int64)) == b"\x00\x00\x01\x00"
    assert decode_latents(b"\x00\x00\x01\x00", [], arm, np.zeros((0, 2), np.int64)) == []
    empty = [np.zeros((2, 0, 3, 3), np.int64)]
    assert len(_roundtrip(empty, arm, [[0, 5]])) == 4


@pytest.mark.parametrize("scale", [0.3, 2.0, 20.0])
def test_length_matches_code_length(scale):
    rng = np.random.default_rng(2)
    arm = _arm(2)
    levels, bounds = _laplace_levels(rng, [(4, 2, 32, 32), (4, 1, 16, 16), (4, 1, 8, 8)],
                                     scale, 100)
    buf = encode_latents(levels, arm, bounds)
    ideal = code_length_bits(levels, arm, bounds) / 8
    assert abs(len(buf) - ideal) <= 4 + 1e-3 * ideal


def test_skewed_codes_smaller():
    rng = np.random.default_rng(4)
    arm = quantise_arm(_float_layers(rng, (13, 12, 2), 0.01), [-1.0])  # mu ~ 0, b ~ 0.4
    shape = (4, 1, 32, 32)
    skewed = np.where(rng.random(shape) < 0.95, 0, rng.integers(-20, 21, shape))
    uniform = rng.integers(-20, 21, shape)
    a = len(_roundtrip([skewed], arm, [[-20, 20]]))
    b = len(_roundtrip([uniform], arm, [[-20, 20]]))
    assert a < b / 5


# ----------------------------------------------------------------------------- errors
def _sample_stream():
    rng = np.random.default_rng(9)
    arm = _arm(9)
    levels, bounds = _laplace_levels(rng, [(3, 2, 16, 16), (3, 1, 8, 8)], 2.0, 30)
    return encode_latents(levels, arm, bounds), [q.shape for q in levels], arm, bounds


@pytest.mark.parametrize("cut", [1, 2, 3, 100])
def test_truncated(cut):
    buf, shapes, arm, bounds = _sample_stream()
    with pytest.raises(CorruptChunkError, match="INR latent stream"):
        decode_latents(buf[:-cut], shapes, arm, bounds)
    with pytest.raises(CorruptChunkError, match="INR latent stream"):
        decode_latents(buf[:cut], shapes, arm, bounds)


def test_too_long():
    buf, shapes, arm, bounds = _sample_stream()
    with pytest.raises(CorruptChunkError, match="left over"):
        decode_latents(buf + b"\x00\x00", shapes, arm, bounds)


@pytest.mark.parametrize("pos", [0, 3, 4, 5, 101, 600, -3, -1])
def test_flipped_byte(pos):
    buf, shapes, arm, bounds = _sample_stream()
    bad = bytearray(buf)
    bad[pos] ^= 0x10
    with pytest.raises(CorruptChunkError, match="INR latent stream"):  # verified for this case
        decode_latents(bytes(bad), shapes, arm, bounds)


def test_encode_errors():
    arm = _arm(0, nlevels=2)
    q = np.zeros((1, 1, 4, 4), np.int64)
    q[0, 0, 1, 2] = 9
    with pytest.raises(ParameterError, match=r"level 0 has values in \[0, 9\] outside"):
        encode_latents([q], arm, [[-8, 8]])
    with pytest.raises(ParameterError, match="lo <= hi"):
        encode_latents([q], arm, [[5, 4]])
    with pytest.raises(ParameterError, match="lo <= hi"):
        encode_latents([q], arm, [[-129, 10]])
    with pytest.raises(ParameterError, match="lo <= hi"):
        encode_latents([q], arm, [[0, 128]])
    with pytest.raises(ParameterError, match=r"\(L, 2\)"):
        encode_latents([q], arm, [0, 9])
    with pytest.raises(ParameterError, match="offsets for 2"):
        encode_latents([q] * 3, arm, [[0, 9]] * 3)
    with pytest.raises(ParameterError, match="2 levels but 1 bounds"):
        encode_latents([q] * 2, arm, [[0, 9]])
    with pytest.raises(ParameterError, match=r"\(C, d, h, w\)"):
        encode_latents([q[0]], arm, [[0, 9]])
    with pytest.raises(TypeError, match="integers"):
        encode_latents([q.astype(float)], arm, [[0, 9]])
    with pytest.raises(ParameterError, match="shapes"):
        decode_latents(b"\x00\x00\x01\x00", [(1, 1, 4)], arm, [[0, 9]])
