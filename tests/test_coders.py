"""Tests of the ``fast`` and ``max`` entropy coders (bigcomp.kernels._coders)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from bigcomp.kernels import _coders as C
from bigcomp.kernels import _rans as R
from bigcomp.kernels._coders import decode_fast, decode_max, encode_fast, encode_max

U32MAX = 2**32 - 1


def _zigzag(r: np.ndarray) -> np.ndarray:
    return np.where(r >= 0, 2 * r, -2 * r - 1).astype(np.uint32)


def _gen(kind: str, n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "zeros":
        return np.zeros(n, np.uint32)
    if kind == "const7":
        return np.full(n, 7, np.uint32)
    if kind == "constmax":
        return np.full(n, U32MAX, np.uint32)
    if kind == "geom":
        return (rng.geometric(0.35, n) - 1).astype(np.uint32)
    if kind.startswith("gauss"):
        return _zigzag(np.rint(rng.normal(size=n) * float(kind[5:])).astype(np.int64))
    if kind == "u32":
        return rng.integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)
    if kind == "u16lossless":
        return rng.integers(0, 131072, n).astype(np.uint32)
    if kind == "spikes":
        s = (rng.random(n) < 0.01).astype(np.uint32) * U32MAX
        s[rng.random(n) < 0.01] = 1 << 31
        return s
    if kind == "widths":  # every block width 0..32 in turn, block maxima hit exactly
        w = np.arange(n) // 32 % 33
        s = rng.integers(0, 2**32, n, dtype=np.uint64) & ((np.uint64(1) << w.astype(np.uint64)) - 1)
        s[::32] |= np.where(w[::32] > 0, np.uint64(1) << (w[::32].astype(np.uint64) - 1), 0)
        return s.astype(np.uint32)
    if kind == "ramp":
        return np.arange(n, dtype=np.uint32) * np.uint32(2654435761)
    raise ValueError(kind)


KINDS = ["zeros", "const7", "constmax", "geom", "gauss0.5", "gauss3", "gauss40", "u32",
         "u16lossless", "spikes", "widths", "ramp"]
SIZES = [0, 1, 2, 31, 32, 33, 63, 65, 1000, 4099]


# -------------------------------------------------------------- reference decoders (the spec)
def _u32(b: bytes, pos: int) -> int:
    return int.from_bytes(b[pos : pos + 4], "little")


def ref_decode_fast(payload: bytes, n: int) -> list[int]:
    """Decoder written from the module docstring alone."""
    nblk = -(-n // 32)
    widths = payload[:nblk]
    pos = -(-nblk // 4) * 4
    out = []
    for k in range(nblk):
        w = widths[k]
        blk = int.from_bytes(payload[pos : pos + 4 * w], "little")
        pos += 4 * w
        out += [(blk >> (j * w)) & ((1 << w) - 1) for j in range(32)]
    assert pos == len(payload)
    return out[:n]


def ref_decode_max(payload: bytes, n: int, rl: int) -> list[int]:
    """Decoder written from the module docstring alone (slow; small n only)."""
    if n == 0:
        assert payload == b""
        return []
    if payload[0] == 0:
        return [_u32(payload, 1)] * n
    rows, ntab, table = _u32(payload, 1), payload[5], list(payload[6:14])
    pos, tabs = 14, []
    for _ in range(ntab):
        mask = int.from_bytes(payload[pos : pos + 9], "little")
        toks = [t for t in range(72) if mask >> t & 1]
        pos += 9
        fr = [int.from_bytes(payload[pos + 2 * j : pos + 2 * j + 2], "little") for j in range(len(toks) - 1)]
        pos += 2 * (len(toks) - 1)
        tabs.append(list(zip(toks, [*fr, 4096 - sum(fr)], strict=True)))
    pos += -pos % 4
    seg_len = rows * rl
    nseg = -(-n // seg_len)
    rcnt = [_u32(payload, pos + 4 * s) for s in range(nseg)]
    ecnt = [_u32(payload, pos + 4 * (nseg + s)) for s in range(nseg)]
    rpos = pos + 8 * nseg
    epos = rpos + 2 * sum(rcnt) + 2 * (sum(rcnt) % 2)
    out = []
    for s in range(nseg):
        a, b = s * seg_len, min(n, (s + 1) * seg_len)
        words = [int.from_bytes(payload[rpos + 2 * j : rpos + 2 * j + 2], "little") for j in range(rcnt[s])]
        rpos += 2 * rcnt[s]
        bits = int.from_bytes(payload[epos : epos + 4 * ecnt[s]], "little")
        epos += 4 * ecnt[s]
        x = [words[2 * k] | words[2 * k + 1] << 16 for k in range(4)]
        wp, bp, tok = 8, 0, {}
        for i in range(a, b):
            r, c = divmod(i - a, rl)
            if r == 0:
                ssum = 4 * tok[i - 1] if c > 0 else 0
            else:
                tn = tok[i - rl]
                tw = tok[i - 1] if c > 0 else tn
                tnw = tok[i - rl - 1] if c > 0 else tn
                tne = tok[i - rl + 1] if c < rl - 1 else tn
                ssum = tw + tn + tnw + tne
            ctx = sum(th <= ssum for th in (3, 6, 9, 12, 16, 21, 28))
            lane = (i - a) % 4
            slot, start = x[lane] & 4095, 0
            for tk, fk in tabs[table[ctx]]:  # the token whose slot range holds slot
                if start <= slot < start + fk:
                    t, f = tk, fk
                    break
                start += fk
            x[lane] = f * (x[lane] >> 12) + slot - start
            if x[lane] < 2**16:
                x[lane] = x[lane] << 16 | words[wp]
                wp += 1
            tok[i] = t
            if t < 16:
                out.append(t)
            else:
                nb = (t - 16) // 2 + 3
                out.append(((2 | (t - 16) % 2) << nb) | (bits >> bp) & ((1 << nb) - 1))
                bp += nb
        assert x == [2**16] * 4
        assert wp == len(words)
        assert bits >> bp == 0
    return out


# ------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", SIZES)
def test_fast_roundtrip(kind, n):
    s = _gen(kind, n)
    p = encode_fast(s)
    assert isinstance(p, bytes)
    d = decode_fast(p, n)
    assert d.dtype == np.uint32
    assert d.shape == (n,)
    np.testing.assert_array_equal(d, s)
    if n <= 1000:
        assert ref_decode_fast(p, n) == s.tolist()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("rl", [1, 2, 7, 64, 5000])
def test_max_roundtrip(kind, n, rl):
    s = _gen(kind, n)
    p = encode_max(s, rl)
    assert isinstance(p, bytes)
    d = decode_max(p, n, rl)
    assert d.dtype == np.uint32
    assert d.shape == (n,)
    np.testing.assert_array_equal(d, s)
    if n <= 1000 and rl in (1, 7, 64):
        assert ref_decode_max(p, n, rl) == s.tolist()


@pytest.mark.parametrize(("n", "rl"), [(3 * R.SEG_TARGET + 17, 1), (3 * R.SEG_TARGET + 5, 1000),
                                   (450_001, 200_000), (R.SEG_TARGET, R.SEG_TARGET)])
def test_multi_segment(n, rl):
    s = _gen("gauss3", n, seed=3)
    s[::9973] = U32MAX
    p = encode_max(s, rl)
    np.testing.assert_array_equal(decode_max(p, n, rl), s)
    np.testing.assert_array_equal(decode_fast(encode_fast(s), n), s)


def test_serial_kernels(monkeypatch):
    monkeypatch.setattr(C, "use_parallel", lambda: False)
    s = _gen("gauss3", 300_001, seed=4)
    np.testing.assert_array_equal(decode_fast(encode_fast(s), s.size), s)
    np.testing.assert_array_equal(decode_max(encode_max(s, 1000), s.size, 1000), s)


def test_deterministic_and_payload_types():
    s = _gen("gauss3", 20_000, seed=5)
    for enc, dec in [(encode_fast, decode_fast), (lambda x: encode_max(x, 100), lambda p, n: decode_max(p, n, 100))]:
        p = enc(s)
        assert enc(s.copy()) == p
        big = bytearray(len(p) + 3)
        big[1 : 1 + len(p)] = p  # unaligned view
        for q in (p, memoryview(p), bytearray(p), np.frombuffer(p, np.uint8), memoryview(big)[1 : 1 + len(p)]):
            np.testing.assert_array_equal(dec(q, s.size), s)


def test_bad_input_types():
    with pytest.raises(TypeError):
        encode_fast(np.zeros(5, np.int32))
    with pytest.raises(TypeError):
        encode_max(np.zeros((2, 2), np.uint32), 2)
    with pytest.raises(ValueError, match="row_length must be >= 1"):
        encode_max(np.zeros(5, np.uint32), 0)


def test_reciprocal_division_is_exact():
    f = np.arange(1, 4097, dtype=np.int64)
    freqs = np.zeros((57, R.NTOK), np.int64)
    freqs.ravel()[: f.size] = f
    tabs = [np.zeros(freqs.size, np.uint64) for _ in range(5)]
    R.enc_tables(freqs, *tabs)
    xmax, rcp, shift = (t[: f.size] for t in tabs[:3])
    rng = np.random.default_rng(10)
    for x in [xmax - 1, xmax // 2, np.full(f.size, np.uint64(R.RANS_L)), xmax - f.astype(np.uint64)]:
        x = x.astype(np.uint64)
        np.testing.assert_array_equal((x + ((x * rcp) >> np.uint64(32))) >> shift, x // f.astype(np.uint64))
    for _ in range(20):
        x = (rng.random(f.size) * xmax.astype(np.float64)).astype(np.uint64)
        np.testing.assert_array_equal((x + ((x * rcp) >> np.uint64(32))) >> shift, x // f.astype(np.uint64))


# ------------------------------------------------------------------------------ compression
def _order0_bits(s: np.ndarray) -> float:
    """Order-0 entropy of the tokens plus the extra bits, in bits/symbol."""
    v = s.astype(np.int64)
    L = np.floor(np.log2(np.maximum(v, 1))).astype(np.int64) + 1
    tok = np.where(v < 16, v, 16 + 2 * (L - 5) + ((v >> np.maximum(L - 2, 0)) & 1))
    c = np.bincount(tok, minlength=72)
    p = c[c > 0] / s.size
    return float(-(p * np.log2(p)).sum() + np.where(v < 16, 0, L - 2).mean())


@pytest.mark.parametrize("kind", ["geom", "gauss0.5", "gauss3", "gauss40", "u16lossless"])
def test_max_close_to_entropy(kind):
    s = _gen(kind, 1 << 20, seed=6)
    bits = 8 * len(encode_max(s, 1024)) / s.size
    assert bits <= _order0_bits(s) * 1.003 + 0.01
    assert len(encode_fast(s)) * 8 / s.size >= bits


def test_contexts_help_on_nonstationary_field():
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:512, 0:512]
    sigma = 0.5 * 16 ** ((xx + yy) / 1024)  # 0.5 .. 8, varying smoothly
    s = _zigzag(np.rint(rng.normal(size=sigma.shape) * sigma).astype(np.int64).ravel())
    bits = 8 * len(encode_max(s, 512)) / s.size
    assert bits < 0.97 * _order0_bits(s)


def test_constant_payloads_are_tiny():
    assert len(encode_max(np.zeros(1 << 20, np.uint32), 1024)) == 5
    assert len(encode_fast(np.zeros(1 << 20, np.uint32))) == (1 << 20) // 32
    s = np.random.default_rng(0).integers(16, 24, 1 << 20).astype(np.uint32)  # one token
    assert len(encode_max(s, 1024)) <= (1 << 20) * 3 // 8 + 300  # just the 3 extra bits


# ---------------------------------------------------------------------------------- errors
def _payloads():
    s = _gen("gauss3", 3000, seed=8)
    s[::97] = 123456789
    return s, encode_fast(s), encode_max(s, 50)


def test_truncated_or_extended_payloads_raise():
    s, pf, pm = _payloads()
    n = s.size
    for cut in list(range(40)) + list(range(40, len(pf), 37)) + [len(pf) - 1]:
        with pytest.raises(ValueError, match="corrupt bigcomp payload"):
            decode_fast(pf[:cut], n)
    for cut in list(range(40)) + list(range(40, len(pm), 37)) + [len(pm) - 1]:
        with pytest.raises(ValueError, match="corrupt bigcomp payload"):
            decode_max(pm[:cut], n, 50)
    for extra in (b"\0", b"\0" * 4):
        with pytest.raises(ValueError, match=r"corrupt bigcomp payload: fast payload has \d+ bytes"):
            decode_fast(pf + extra, n)
        with pytest.raises(ValueError, match="corrupt bigcomp payload: size mismatch"):
            decode_max(pm + extra, n, 50)
    with pytest.raises(ValueError, match="fast payload has 1 bytes, expected 0 for n=0"):
        decode_fast(b"\0", 0)
    with pytest.raises(ValueError, match="corrupt bigcomp payload: bad constant payload length"):
        decode_max(b"\0\0\0\0\0\0", 3, 1)


def test_wrong_n_raises():
    s, pf, pm = _payloads()
    for m in (s.size - 64, s.size + 200, 1, 10 * s.size):  # (+64 here fits fast's zero padding)
        with pytest.raises(ValueError, match="corrupt bigcomp payload"):
            decode_fast(pf, m)
        with pytest.raises(ValueError, match="corrupt bigcomp payload"):
            decode_max(pm, m, 50)


def test_bad_headers_raise():
    s, pf, pm = _payloads()
    bad = bytearray(pf)
    bad[0] = 33  # width > 32
    with pytest.raises(ValueError, match="corrupt bigcomp payload: fast block width > 32"):
        decode_fast(bytes(bad), s.size)
    # mode 2; rows_per_segment 0; ntab 0 or 9; context -> table index >= ntab; freq sum > 4096
    for pos, val, why in [
        (0, b"\2", "bad max header"),
        (1, b"\0\0\0\0", "rows_per_segment == 0"),
        (5, b"\0", "bad context map"),
        (5, b"\x09", "bad context map"),
        (6, b"\x08", "bad context map"),
        (23, b"\xff\x0f", "bad frequencies"),
    ]:
        bad = bytearray(pm)
        bad[pos : pos + len(val)] = val
        with pytest.raises(ValueError, match=f"corrupt bigcomp payload: {why}"):
            decode_max(bytes(bad), s.size, 50)


def test_bit_flips_never_crash():
    s, pf, pm = _payloads()
    rng = np.random.default_rng(9)
    detected = 0
    for trial in range(300):
        for p, dec in ((pf, lambda q: decode_fast(q, s.size)), (pm, lambda q: decode_max(q, s.size, 50))):
            q = bytearray(p)
            for pos in rng.integers(0, len(q), 1 + trial % 3):
                q[pos] ^= 1 << int(rng.integers(8))
            try:
                d = dec(bytes(q))
            except ValueError as e:
                if "corrupt bigcomp payload" not in str(e):
                    raise  # a decoder error other than a clean corruption report
                detected += p is pm
            else:
                assert d.shape == (s.size,)
                assert d.dtype == np.uint32
    assert detected > 200  # rANS state / size checks catch most damage to a max payload


# -------------------------------------------------------------------------------- property
_ELEMS = [st.integers(0, 3), st.integers(0, 40), st.integers(0, 2**17), st.integers(0, U32MAX)]


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_property_roundtrip(data):
    elems = data.draw(st.sampled_from(_ELEMS))
    s = data.draw(hnp.arrays(np.uint32, st.integers(0, 300), elements=elems))
    rl = data.draw(st.integers(1, 40))
    np.testing.assert_array_equal(decode_fast(encode_fast(s), s.size), s)
    np.testing.assert_array_equal(decode_max(encode_max(s, rl), s.size, rl), s)


@settings(max_examples=60, deadline=None)
@given(s=hnp.arrays(np.uint32, st.integers(1, 120), elements=st.integers(0, 300)), rl=st.integers(1, 20))
def test_property_matches_reference_decoder(s, rl):
    assert ref_decode_max(encode_max(s, rl), s.size, rl) == s.tolist()
    assert ref_decode_fast(encode_fast(s), s.size) == s.tolist()
