"""Tests of the ``rice`` coder (bigcomp.kernels._rice) and its fusion with prediction."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bigcomp.kernels import _rice as R
from bigcomp.kernels._fused_rice import decode_rice_fused, encode_rice_fused
from bigcomp.kernels._predict import predict_encode
from bigcomp.kernels._rice import decode_rice, encode_rice
from bigcomp.predictors import choose_predictor

U32MAX = 2**32 - 1


def _gen(kind: str, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "zeros":
        return np.zeros(n, np.uint32)
    if kind == "constmax":
        return np.full(n, U32MAX, np.uint32)
    if kind == "geom":
        return (rng.geometric(0.35, n) - 1).astype(np.uint32)
    if kind.startswith("gauss"):
        r = np.rint(rng.normal(size=n) * float(kind[5:])).astype(np.int64)
        return np.where(r >= 0, 2 * r, -2 * r - 1).astype(np.uint32)
    if kind == "u32":
        return rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    if kind == "spikes":  # escapes of every size inside Rice blocks
        s = (rng.geometric(0.4, n) - 1).astype(np.uint64)
        hit = rng.random(n) < 0.03
        s[hit] = rng.integers(16, 2**32, int(hit.sum()), dtype=np.uint64)
        return s.astype(np.uint32)
    if kind == "steps":  # the Rice parameter changing by one and by more between blocks
        scale = np.repeat(rng.integers(0, 15, -(-n // 64)), 64)[:n]
        return (rng.integers(0, 4, n) << scale).astype(np.uint32)
    raise ValueError(kind)


KINDS = ["zeros", "constmax", "geom", "gauss0.5", "gauss3", "gauss40", "u32", "spikes", "steps"]
SIZES = [0, 1, 2, 63, 64, 65, 1000, 4097, 9000]


# --------------------------------------------------------------- reference decoder (the spec)
def ref_decode_rice(payload: bytes, n: int) -> list[int]:
    """Decoder written from the module docstring alone (slow; small n only)."""
    if n == 0:
        assert payload == b""
        return []
    u32 = [int.from_bytes(payload[i : i + 4], "little") for i in range(0, len(payload), 4)]
    s = u32[0]
    groups = -(-n // s)
    counts = u32[1 : 1 + groups]
    pos = 1 + groups
    out: list[int] = []
    for g in range(groups):
        words = u32[pos : pos + counts[g]]
        pos += counts[g]
        bits = "".join(format(w, "032b")[::-1] for w in words)  # LSB-first
        at = 0

        def take(width: int, bits=bits) -> int:
            nonlocal at
            v = int(bits[at : at + width][::-1] or "0", 2)
            at += width
            return v

        prev = 0
        m_group = min(n, (g + 1) * s) - g * s
        for b0 in range(0, m_group, 64):
            m = min(64, m_group - b0)
            if take(1) == 0:
                h = prev
            elif take(1) == 0:
                h = prev - 1 if take(1) else prev + 1
            else:
                h = take(4)
            prev = h
            if h == 15:
                width = take(6)
                out += [take(width) for _ in range(m)]
                continue
            low = [take(h) for _ in range(m)]
            high = []
            for _ in range(m):
                u = 0
                while take(1) == 0:
                    u += 1
                high.append(u)
            for j in range(m):
                if high[j] == 16:
                    high[j] += take(take(6))
            out += [(hi << h) | lo for hi, lo in zip(high, low, strict=True)]
        assert bits[at:] == "0" * (len(bits) - at)
        assert len(bits) - at < 32
    assert pos == len(u32)
    return out


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", SIZES)
def test_roundtrip(kind, n):
    s = _gen(kind, n)
    for rl in (1, 13, 512, 70000):
        p = encode_rice(s, rl)
        assert isinstance(p, bytes)
        d = decode_rice(p, n)
        assert d.dtype == np.uint32
        np.testing.assert_array_equal(d, s)
    if n <= 1000:
        assert ref_decode_rice(encode_rice(s, 13), n) == s.tolist()


def test_serial_and_parallel_agree():
    s = _gen("gauss3", 50_000, seed=2)
    p = encode_rice(s, 100, parallel=True)
    assert encode_rice(s, 100, parallel=False) == p
    np.testing.assert_array_equal(decode_rice(p, s.size, parallel=False), s)


def test_group_size():
    assert R.group_symbols(512) == 4096
    assert R.group_symbols(13) == 13 * 315
    assert R.group_symbols(5000) == 5000
    assert R.group_symbols(70000) == 4096  # rows too long for a group: fixed size, not fused


def test_close_to_entropy_on_noise():
    """On Gaussian residuals (σ = 1.5 steps) Rice coding stays within 7 % of the entropy."""
    s = _gen("gauss1.5", 1 << 18, seed=3)
    p = np.bincount(s) / s.size
    entropy = -(p[p > 0] * np.log2(p[p > 0])).sum()
    bits = 8 * len(encode_rice(s, 512)) / s.size
    assert entropy < bits < 1.07 * entropy


@pytest.mark.parametrize(("shape", "seed"), [((8, 128, 128), 1), ((4, 256, 256), 2)])
def test_within_ten_percent_of_max(shape, seed):
    """The coder's promise: at q = 1σ its chunks are within 10 % of ``max``'s (0.92-0.93 here)
    although it skips ``max``'s 37-tap predictor and estimates its Rice parameters."""
    from bigcomp import CameraModel, encode_chunk
    from bigcomp.datasets import light_sheet

    stack = light_sheet(shape, seed=seed)
    camera = CameraModel(stack.gain, stack.offset, stack.read_noise)
    size = {c: len(encode_chunk(stack.data, q=1.0, camera=camera, coder=c)) for c in ("max", "rice")}
    assert 0.9 < size["max"] / size["rice"] < 1


def test_worst_case_size():
    """Incompressible symbols fall back to fixed width: at most 32 bits + headers each."""
    s = _gen("u32", 1 << 16, seed=4)
    words = len(encode_rice(s, 512)) // 4
    groups = -(-s.size // 4096)
    assert words <= 1 + groups + groups * R.max_group_words(4096)
    assert 8 * len(encode_rice(s, 512)) / s.size < 32.3


# ---------------------------------------------------------------------------------- errors
def _payload():
    s = _gen("spikes", 9000, seed=8)
    return s, encode_rice(s, 50)


def test_truncated_or_extended_payloads_raise():
    s, p = _payload()
    for cut in [*range(0, 40, 4), *range(40, len(p), 44), len(p) - 4, 1, 6]:
        with pytest.raises(ValueError, match="corrupt bigcomp payload"):
            decode_rice(p[:cut], s.size)
    for extra in (b"\0", b"\0" * 4):
        with pytest.raises(ValueError, match="corrupt bigcomp payload"):
            decode_rice(p + extra, s.size)
    with pytest.raises(ValueError, match="rice payload of zero symbols is not empty"):
        decode_rice(b"\0\0\0\0", 0)


def test_wrong_n_raises():
    s, p = _payload()
    for m in (s.size - 64, s.size - 1, s.size + 1, 10 * s.size, 1):
        with pytest.raises(ValueError, match="corrupt bigcomp payload"):
            decode_rice(p, m)


def test_bad_headers_raise():
    s, p = _payload()
    bad = bytearray(p)
    bad[0:4] = (0).to_bytes(4, "little")
    with pytest.raises(ValueError, match="corrupt bigcomp payload: rice group size 0"):
        decode_rice(bytes(bad), s.size)
    bad = bytearray(p)
    bad[4:8] = (10**6).to_bytes(4, "little")
    with pytest.raises(ValueError, match="rice group longer than any group can be"):
        decode_rice(bytes(bad), s.size)


def test_bit_flips_never_crash():
    s, p = _payload()
    rng = np.random.default_rng(9)
    detected = 0
    for trial in range(300):
        q = bytearray(p)
        for pos in rng.integers(0, len(q), 1 + trial % 3):
            q[pos] ^= 1 << int(rng.integers(8))
        try:
            d = decode_rice(bytes(q), s.size)
        except ValueError as e:
            if "corrupt bigcomp payload" not in str(e):
                raise  # a decoder error other than a clean corruption report
            detected += 1
        else:
            assert d.shape == (s.size,)
    # a prefix code turns most flips into other valid values (the chunk's CRC32C catches those);
    # invalid codes, lengths and leftover bits still catch a good part here
    assert detected > 50


# -------------------------------------------------------------------------------- property
_ELEMS = [st.integers(0, 3), st.integers(0, 40), st.integers(0, 2**17), st.integers(0, U32MAX)]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_property_roundtrip(data):
    elems = data.draw(st.sampled_from(_ELEMS))
    s = data.draw(hnp.arrays(np.uint32, st.integers(0, 600), elements=elems))
    rl = data.draw(st.integers(1, 300))
    np.testing.assert_array_equal(decode_rice(encode_rice(s, rl), s.size), s)


@settings(max_examples=60, deadline=None)
@given(s=hnp.arrays(np.uint32, st.integers(1, 300), elements=st.integers(0, 3000)),
       rl=st.integers(1, 40))
def test_property_matches_reference_decoder(s, rl):
    assert ref_decode_rice(encode_rice(s, rl), s.size) == s.tolist()


# ------------------------------------------------------------------ fused with prediction
@pytest.mark.parametrize(
    ("shape", "nz"),
    [((1, 1, 1), 1), ((3, 5, 7), 3), ((4, 11, 13), 2), ((6, 64, 100), 3), ((5, 300, 13), 5),
     ((7, 33, 129), 1), ((2, 3, 70000), 1), ((1, 1, 100_000), 1)],
)
@pytest.mark.parametrize("parallel", [False, True])
def test_fused_equals_separate_passes(shape, nz, parallel):
    rng = np.random.default_rng(1)
    k = (rng.poisson(50, shape) + np.arange(shape[2]) % 7).astype(np.uint16)
    intra, inter = choose_predictor(k, nz, 0, 65535)
    ia, ea = intra.as_arrays(), inter.as_arrays()
    expected = encode_rice(predict_encode(k, nz, ia, ea, 0, 65535, parallel=False), shape[2])
    p = encode_rice_fused(k, nz, ia, ea, 0, 65535, parallel=parallel)
    assert p.tobytes() == expected
    d = decode_rice_fused(p, shape, nz, ia, ea, 0, 65535, dtype=np.uint16, parallel=parallel)
    np.testing.assert_array_equal(d, k)


def test_fused_decode_reports_corruption():
    k = np.random.default_rng(2).poisson(50, (4, 40, 64)).astype(np.uint16)
    intra, inter = choose_predictor(k, 4, 0, 65535)
    ia, ea = intra.as_arrays(), inter.as_arrays()
    p = encode_rice_fused(k, 4, ia, ea, 0, 65535).copy()
    _, start, counts, _ = R.rice_layout(p, k.size)
    words = p.view(np.uint32)[1 + counts.size :]
    words[start[1] : start[1] + counts[1]] = 0  # group 1 all zeros: no valid unary code
    with pytest.raises(ValueError, match="corrupt bigcomp payload"):
        decode_rice_fused(p, k.shape, 4, ia, ea, 0, 65535, dtype=np.uint16)
