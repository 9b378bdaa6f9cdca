"""The ``max`` coder's level model (format version 6, chunk flag bit 2; issue 21).

Each residual's context is the level of its own prediction (the photon-noise spread grows
with the signal), plus a bias per level; prediction and entropy decoding are fused, two rows at
a time. These tests check: round trips over shapes that exercise every path of the decoder
(row pairs, lone rows, borders, narrow and tiny planes, runs, west taps beyond -3), that the
encoder uses the model where it should, stored chunks of version 6, and that damaged payloads
raise instead of returning wrong data.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from crc32c import crc32c

from bigcomp import CameraModel, decode_chunk, encode_chunk
from bigcomp.codecs import WNL, Lossless
from bigcomp.datasets import light_sheet
from bigcomp.errors import CorruptChunkError
from bigcomp.format import FLAG_LEVEL_MODEL, pack_chunk, unpack_chunk
from bigcomp.kernels import _level
from bigcomp.kernels._level_dec import decode_level
from bigcomp.predictors import Taps
from bigcomp.testing import check_backwards_compatibility

CAMERA = CameraModel(gain=2.0, offset=100.0, read_noise=1.6)
FIXTURES = Path(__file__).parent / "fixture" / "v6"


def _noisy(shape, seed=0, dtype="uint16"):
    """Smooth signal with shot noise (levels from ~10 to ~2000 photons)."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape).sum(axis=0)
    photons = 10 + 2000 * np.sin(grid / 17.0) ** 4
    x = rng.poisson(photons) * CAMERA.gain + CAMERA.offset
    return np.clip(x, 0, np.iinfo(dtype).max).astype(dtype)


def _flags(chunk: bytes) -> int:
    return int.from_bytes(chunk[10:12], "little")


# shapes: (planes, rows, cols) as arrays of 2 to 4 dims; odd rows (a lone last row of a
# segment), one row, rows just wide enough to pair, planes of 4-D chunks in several runs
SHAPES = [(64, 80), (65, 67), (1, 4096), (2, 33, 70), (3, 47, 37), (2, 3, 20, 40),
          (200, 1, 32), (3, 2, 17, 45)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_lossless_round_trip(shape):
    x = _noisy(shape)
    chunk = encode_chunk(x, coder="max")
    assert chunk[4] == 6 and _flags(chunk) & FLAG_LEVEL_MODEL
    np.testing.assert_array_equal(decode_chunk(chunk), x)


# shapes the encoder codes with the neighbour contexts (rows narrower than 32: one column,
# tiny planes in long stacks), which every decoder must still read in the level model
NARROW = [(4096, 1, 1), (500, 3, 5), (200, 1, 24), (1, 300, 31), (40, 11, 13)]


@pytest.mark.parametrize("shape", NARROW, ids=str)
def test_narrow_rows(shape):
    x = _noisy(shape, seed=3)
    assert not _flags(encode_chunk(x)) & FLAG_LEVEL_MODEL
    intra = Taps(((0, 0, -1), (0, -1, 0), (0, -1, 1), (0, -2, 0)), (5, 4, 2, -3), 3)
    inter = Taps(((-1, 0, 0), (0, 0, -1), (-1, 1, 1), (0, -1, 0)), (6, 5, 2, 3), 4)
    for nz in (1, shape[0]):
        pay = _level.encode_level(x, nz, intra.as_arrays(), inter.as_arrays(), 0, 65535,
                                  parallel=False)
        out = decode_level(pay, x.shape, nz, intra.as_arrays(), inter.as_arrays(), 0, 65535,
                           dtype=x.dtype, parallel=False)
        np.testing.assert_array_equal(out, x)


@pytest.mark.parametrize("shape", [(64, 80), (1, 65, 67), (1, 1, 5000)], ids=str)
def test_single_plane_wnl_round_trip(shape):
    """Single planes at q > 0 get the level model too (whole stacks keep today's model)."""
    x = _noisy(shape, seed=1)
    chunk = encode_chunk(x, q=1.0, camera=CAMERA)
    assert _flags(chunk) & FLAG_LEVEL_MODEL
    reference = encode_chunk(x.reshape(1, 1, *x.shape[-2:]).repeat(2, axis=0), q=1.0,
                             camera=CAMERA)
    assert not _flags(reference) & FLAG_LEVEL_MODEL
    np.testing.assert_array_equal(decode_chunk(chunk), decode_chunk(reference)[0].reshape(x.shape))


def test_with_a_per_pixel_camera():
    """Flag bits 1 and 2 together: per-pixel noise classes, coded with the level model."""
    from bigcomp.datasets import scmos_camera

    cam = scmos_camera((96, 128), seed=2)
    x = _noisy((96, 128), seed=7)
    chunk = encode_chunk(x, q=1.0, camera=cam)
    header, _, _ = unpack_chunk(chunk)
    assert header.pixel_model and header.level_model
    got = decode_chunk(chunk)
    old = _level.MIN_PIXELS
    _level.MIN_PIXELS = 1 << 62
    try:
        np.testing.assert_array_equal(got, decode_chunk(encode_chunk(x, q=1.0, camera=cam)))
    finally:
        _level.MIN_PIXELS = old


def test_uint8():
    x = _noisy((70, 90), seed=2) // 16
    x = x.astype(np.uint8)
    chunk = encode_chunk(x)
    assert _flags(chunk) & FLAG_LEVEL_MODEL
    np.testing.assert_array_equal(decode_chunk(chunk), x)


def test_small_and_constant_chunks_keep_the_neighbour_contexts():
    small = _noisy((40, 50))
    assert not _flags(encode_chunk(small)) & FLAG_LEVEL_MODEL
    flat = np.zeros((80, 80), np.uint16)  # every residual 0
    chunk = encode_chunk(flat)
    assert not _flags(chunk) & FLAG_LEVEL_MODEL and len(unpack_chunk(chunk)[1]) == 5
    np.testing.assert_array_equal(decode_chunk(chunk), flat)


def test_other_coders_and_orders_unchanged():
    x = _noisy((64, 80))
    for kw in ({"coder": "fast"}, {"coder": "rice"}, {"q": 1.0, "camera": CAMERA, "order": "pq"}):
        assert not _flags(encode_chunk(x, **kw)) & FLAG_LEVEL_MODEL


def test_smaller_than_the_neighbour_contexts():
    x = light_sheet((4, 96, 96), seed=3).data
    with_levels = len(encode_chunk(x))
    header, _, _ = unpack_chunk(encode_chunk(x))
    assert header.level_model
    assert with_levels < 0.98 * len(_neighbour_chunk(x))


def _neighbour_chunk(x):
    old = _level.MIN_PIXELS
    _level.MIN_PIXELS = x.size + 1
    try:
        return encode_chunk(x)
    finally:
        _level.MIN_PIXELS = old


@pytest.mark.parametrize(
    "taps",
    [
        Taps(((0, 0, -1), (0, 0, -4), (0, -1, 0)), (2, 1, 1), 2),  # west tap beyond -3
        Taps(((0, 0, -1),), (1,), 0),  # west only: no row pairs
        Taps(((0, -1, 0), (0, -1, 3), (0, -1, -3), (0, 0, -2)), (2, 1, 1, 0), 2),  # reach +-3
        Taps(((0, -1, 4), (0, 0, -1)), (1, 1), 1),  # a tap into the row above beyond +3
        Taps(((0, -2, 0), (0, -1, -1), (0, 0, -3)), (4000, 3000, 1192), 13),  # shift > 4
    ],
)
def test_any_predictor(taps):
    """The kernels serve every causal predictor a chunk may carry, not just the chooser's."""
    k = _noisy((3, 37, 45), seed=4)
    inter = Taps(((-1, 0, 0), (0, 0, -1), (-1, 1, 1)), (2, 1, 1), 2)
    for nz in (1, 3):
        pay = _level.encode_level(k, nz, taps.as_arrays(), inter.as_arrays(), 0, 65535,
                                  parallel=False)
        out = decode_level(pay, k.shape, nz, taps.as_arrays(), inter.as_arrays(), 0, 65535,
                           dtype=k.dtype, parallel=False)
        np.testing.assert_array_equal(out, k)


def test_parallel_and_serial_agree():
    x = _noisy((4, 64, 300), seed=5)
    k = x.reshape(4, 64, 300)
    taps = Taps(((0, 0, -1), (0, -1, 0)), (1, 1), 1)
    inter = Taps(((-1, 0, 0),), (1,), 0)
    args = (k, 2, taps.as_arrays(), inter.as_arrays(), 0, 65535)
    pay = _level.encode_level(*args, parallel=True)
    assert pay == _level.encode_level(*args, parallel=False)
    for par in (True, False):
        np.testing.assert_array_equal(
            decode_level(pay, k.shape, 2, taps.as_arrays(), inter.as_arrays(), 0, 65535,
                         dtype=k.dtype, parallel=par), k)


def _with_payload(chunk: bytes, payload: bytes) -> bytes:
    header, _, escapes = unpack_chunk(chunk)
    return pack_chunk(header, payload, escapes)


def test_damaged_payloads_raise():
    """Payload bits flipped (checksum recomputed, as a crafted chunk would be): every decode
    raises CorruptChunkError or returns an array of the chunk's shape; none crashes. (A flip
    in a threshold or bias decodes consistently to other values: a crafted chunk is a valid
    chunk of other data. Damage on disk or in transfer is caught by the checksum.)"""
    x = _noisy((2, 40, 60), seed=6)
    chunk = encode_chunk(x)
    header, payload, _ = unpack_chunk(chunk)
    assert header.level_model
    payload = bytes(payload)
    rng = np.random.default_rng(0)
    raised = 0
    for i in range(300):
        b = bytearray(payload)
        pos = int(rng.integers(0, len(b))) if i % 3 else int(rng.integers(0, 64))
        b[pos] ^= 1 << int(rng.integers(0, 8))
        try:
            out = decode_chunk(_with_payload(chunk, bytes(b)))
        except CorruptChunkError:
            raised += 1
            continue
        assert out.shape == x.shape
    assert raised > 150  # the streams' end checks catch most flips
    for cut in (0, 5, 40, len(payload) - 1):
        with pytest.raises(CorruptChunkError):
            decode_chunk(_with_payload(chunk, payload[:cut]))


def test_flag_only_where_allowed():
    """Bit 2 in a chunk that cannot carry the level model is corrupt."""
    x = _noisy((64, 80))
    chunk = bytearray(encode_chunk(x, coder="rice"))
    chunk[10] |= FLAG_LEVEL_MODEL
    chunk[-4:] = crc32c(bytes(chunk[:-4])).to_bytes(4, "little")
    with pytest.raises(CorruptChunkError, match="flags"):
        decode_chunk(bytes(chunk))
    header, payload, escapes = unpack_chunk(encode_chunk(x))
    with pytest.raises(ValueError, match="level model"):
        pack_chunk(dataclasses.replace(header, coder="fast"), bytes(payload), escapes)


def _fixture_arrays() -> dict[str, np.ndarray]:
    stack = light_sheet((3, 48, 40), seed=7).data
    return {"stack": stack, "plane": light_sheet((1, 72, 64), seed=8).data[0],
            "plane_u8": (_noisy((66, 70), seed=9) // 16).astype(np.uint8)}


@pytest.mark.parametrize(
    ("name", "codec", "arrays"),
    [("lossless_ctx_max", Lossless(coder="max"), ("stack", "plane", "plane_u8")),
     ("lossless_ctx_wnl_plane", WNL.from_camera(CAMERA, q=1.0), ("plane",))],
)
def test_version_6_fixtures_decode_as_written(name, codec, arrays):
    """Chunks of the level model stay decodable, identically, forever."""
    folder = FIXTURES / name
    fixtures = {k: v for k, v in _fixture_arrays().items() if k in arrays}
    check_backwards_compatibility(folder, codec, fixtures)
    for path in folder.glob("*.bgc"):
        blob = path.read_bytes()
        assert blob[4] == 6 and _flags(blob) & FLAG_LEVEL_MODEL


def test_segments_lie_inside_planes_where_rows_allow():
    """The encoder cuts a stack's segments inside planes (even heights), so that a decoder may
    reconstruct successive planes on several threads; odd heights and single planes keep the
    plain cut, and so do planes too small for it to pay (their streams' directory and states
    would cost 0.8 % of a 64 x 64 plane)."""
    for shape in [(4, 512, 512), (11, 256, 256), (30, 510, 667), (3, 1042, 1042), (5, 128, 256)]:
        rps = _level.rows_per_segment(*shape)
        assert rps % 2 == 0, shape
        assert shape[1] % rps == 0, shape
        assert rps * shape[2] <= max(2 * _level.SEG_TARGET, shape[1] * shape[2]), shape
    assert _level.rows_per_segment(1, 64, 64) == _level.SEG_TARGET // 64
    assert _level.rows_per_segment(500, 64, 64) == _level.SEG_TARGET // 64
    assert _level.rows_per_segment(3, 65, 67) == (_level.SEG_TARGET // 67) // 2 * 2


# predictors reading rows below the pixel in the plane before (up to the format's reach)
WAVE_INTER = [Taps(((-1, 0, 0), (0, 0, -1), (-1, 2, 1), (0, -1, 0)), (6, 5, 2, 3), 4),
              Taps(((-1, 8, -2), (-1, -2, 2), (0, 0, -1)), (1, 1, 2), 2)]


@pytest.mark.parametrize("inter", WAVE_INTER, ids=["below", "far_below"])
@pytest.mark.parametrize(("shape", "nz"), [((7, 48, 40), 7), ((6, 40, 36), 3),
                                            ((5, 64, 70), 5)], ids=str)
def test_wavefront_decode(monkeypatch, inter, shape, nz):
    """Planes decoded on several threads, each a few rows behind the one before (blocks of a
    few rows: many waits), give the serial decoder's values."""
    from bigcomp.kernels import _level_dec

    monkeypatch.setattr(_level_dec, "BLOCK_PIXELS", 64)
    monkeypatch.setattr(_level_dec, "WAVE_MIN_PLANE", 64)  # small planes: quick tests
    monkeypatch.setattr(_level, "WAVE_MIN_PLANE", 64)
    calls = []
    wave = _level_dec._decode_wave
    monkeypatch.setattr(_level_dec, "_decode_wave", lambda *a: calls.append(a[1]) or wave(*a))
    k = _noisy(shape, seed=11)
    intra = Taps(((0, 0, -1), (0, -1, 0), (0, -1, 1)), (2, 1, 1), 2)
    t = (intra.as_arrays(), inter.as_arrays())
    pay = _level.encode_level(k, nz, *t, 0, 65535, parallel=False)
    for workers in (2, 3):
        out = decode_level(pay, k.shape, nz, *t, 0, 65535, dtype=k.dtype, workers=workers)
        np.testing.assert_array_equal(out, k)
    assert calls == [2, 3]
    # planes this small decode one run per thread (a chunk of many tiny planes would cost a
    # Python-level wait per plane in the wavefront)
    monkeypatch.setattr(_level_dec, "WAVE_MIN_PLANE", shape[1] * shape[2] + 1)
    out = decode_level(pay, k.shape, nz, *t, 0, 65535, dtype=k.dtype, workers=2)
    np.testing.assert_array_equal(out, k)
    assert calls == [2, 3]


def test_wavefront_stops_on_damage(monkeypatch):
    """A damaged stream in one plane stops every thread of the wavefront (no thread waits
    for a plane that will never come) and raises; it never hangs or returns wrong data
    silently."""
    from bigcomp.kernels import _level_dec

    monkeypatch.setattr(_level_dec, "BLOCK_PIXELS", 256)
    monkeypatch.setattr(_level_dec, "WAVE_MIN_PLANE", 64)
    monkeypatch.setattr(_level, "WAVE_MIN_PLANE", 64)
    x = _noisy((6, 40, 64), seed=12)
    chunk = encode_chunk(x)
    header, payload, _ = unpack_chunk(chunk)
    assert header.level_model
    intra, inter = header.intra.as_arrays(), header.inter.as_arrays()
    payload = bytes(payload)
    rng = np.random.default_rng(1)
    raised = 0
    for _ in range(60):
        b = bytearray(payload)
        b[int(rng.integers(len(b) // 4, len(b)))] ^= 1 << int(rng.integers(0, 8))
        try:
            out = decode_level(bytes(b), x.shape, header.run, intra, inter, 0, 65535,
                               dtype=x.dtype, workers=3)
        except ValueError:
            raised += 1
            continue
        assert out.shape == x.shape
    assert raised > 30


def test_version_7_fractional_levels_fixtures():
    """Single planes at q >= 1 read their levels at a quarter of a value (format version 7,
    flag bit 3); the stored chunks decode identically forever."""
    from bigcomp.format import FLAG_LEVEL_FRACTION

    folder = Path(__file__).parent / "fixture" / "v7" / "level_fraction_wnl_plane"
    arrays = _fixture_arrays()
    check_backwards_compatibility(folder, WNL.from_camera(CAMERA, q=1.0),
                                  {"plane": arrays["plane"], "plane_u8": arrays["plane_u8"]})
    for path in folder.glob("*.bgc"):
        blob = path.read_bytes()
        assert blob[4] == 7
        assert _flags(blob) & FLAG_LEVEL_FRACTION
        assert _flags(blob) & FLAG_LEVEL_MODEL
        assert unpack_chunk(blob)[1][3] == 2  # the payload's fraction bits


def test_fraction_flag_and_payload_must_agree():
    """Flag bit 3 without the level model, or a payload whose fraction bits disagree with the
    flag, is corrupt (with a valid checksum: a crafted chunk), never decoded otherwise."""
    from bigcomp.format import FLAG_LEVEL_FRACTION

    x = light_sheet((1, 72, 64), seed=8).data[0]
    chunk = encode_chunk(x, q=1.0, camera=CAMERA)
    header, payload, escapes = unpack_chunk(chunk)
    assert header.level_fraction
    np.testing.assert_array_equal(decode_chunk(chunk), decode_chunk(encode_chunk(
        x, q=1.0, camera=CAMERA, coder="rice")))
    for frac in (0, 1, 5):  # the flag says fractional: 0 and > 4 are corrupt, 1 decodes
        b = bytearray(payload)
        b[3] = frac
        damaged = pack_chunk(header, bytes(b), escapes)
        if frac == 1:  # other levels: decodes to other values or fails a stream check
            with contextlib.suppress(CorruptChunkError):
                assert decode_chunk(damaged).shape == x.shape
        else:
            with pytest.raises(CorruptChunkError, match="fraction"):
                decode_chunk(damaged)
    whole = pack_chunk(dataclasses.replace(header, level_fraction=False), bytes(payload),
                       escapes)
    with pytest.raises(CorruptChunkError, match="fraction"):
        decode_chunk(whole)
    lossless = bytearray(encode_chunk(x))
    assert lossless[4] == 6  # lossless 16-bit chunks keep whole levels: version 6
    lossless[10] = (lossless[10] | FLAG_LEVEL_FRACTION) & ~FLAG_LEVEL_MODEL
    lossless[-4:] = crc32c(bytes(lossless[:-4])).to_bytes(4, "little")
    with pytest.raises(CorruptChunkError, match="flags"):
        decode_chunk(bytes(lossless))


def test_version_7_single_planes_carry_no_inter_taps():
    """A single plane of format version 7 has no use for inter-plane taps: its header carries
    none (32 bytes); version-6 single planes (lossless 16-bit) keep them for older decoders."""
    x = light_sheet((1, 96, 80), seed=13).data[0]
    v7 = encode_chunk(x, q=1.0, camera=CAMERA)
    header = unpack_chunk(v7)[0]
    assert v7[4] == 7
    assert header.inter.coefs == ()
    np.testing.assert_array_equal(decode_chunk(v7), decode_chunk(
        encode_chunk(x, q=1.0, camera=CAMERA, coder="rice")))
    v6 = encode_chunk(x)
    assert v6[4] == 6
    assert unpack_chunk(v6)[0].inter.coefs != ()
    np.testing.assert_array_equal(decode_chunk(v6), x)
