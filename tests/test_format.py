"""The chunk bitstream: damage is detected, old versions keep decoding."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from crc32c import crc32c

from bigcomp import CameraModel, decode_chunk, encode_chunk
from bigcomp.codecs import WNL, Lossless
from bigcomp.datasets import light_sheet
from bigcomp.errors import CorruptChunkError, FormatVersionError
from bigcomp.format import FORMAT_VERSION
from bigcomp.testing import check_backwards_compatibility

FIXTURES = Path(__file__).parent / "fixture"
CAMERA = CameraModel(gain=2.0, offset=100.0, read_noise=1.6)


@pytest.fixture(scope="module")
def chunk() -> bytes:
    return encode_chunk(light_sheet((3, 40, 50)).data, q=1.0, camera=CAMERA)


def test_truncated(chunk):
    for cut in (1, 11, 40, len(chunk) // 2, len(chunk) - 1):
        with pytest.raises(CorruptChunkError, match="truncated"):
            decode_chunk(chunk[:cut])


def test_empty_buffer():
    with pytest.raises(CorruptChunkError, match="truncated"):
        decode_chunk(b"")


@pytest.mark.parametrize("position", [0.3, 0.6, 0.9, 0.999])
def test_flipped_bit(chunk, position):
    damaged = bytearray(chunk)
    i = int(position * (len(chunk) - 5))
    damaged[i] ^= 0x10
    with pytest.raises(CorruptChunkError):
        decode_chunk(bytes(damaged))


def test_every_single_bit_flip_in_header_detected(chunk):
    for i in range(60):
        damaged = bytearray(chunk)
        damaged[i] ^= 0x01
        with pytest.raises((CorruptChunkError, FormatVersionError)):
            decode_chunk(bytes(damaged))


def test_future_version(chunk):
    future = bytearray(chunk[:-4])
    future[4] = FORMAT_VERSION + 1
    future += struct.pack("<I", crc32c(bytes(future)))
    with pytest.raises(FormatVersionError, match="upgrade bigcomp"):
        decode_chunk(bytes(future))


def test_not_a_bigcomp_chunk():
    with pytest.raises(CorruptChunkError, match="not a bigcomp chunk"):
        decode_chunk(b"\x28\xb5\x2f\xfd" + bytes(100))


def test_trailing_garbage(chunk):
    with pytest.raises(CorruptChunkError, match="announces"):
        decode_chunk(chunk + b"\0")


def test_deterministic():
    data = light_sheet((2, 64, 64)).data
    assert encode_chunk(data, q=1.0, camera=CAMERA) == encode_chunk(data, q=1.0, camera=CAMERA)


def _fixture_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    stack = light_sheet((3, 48, 40), seed=7).data
    return {
        "stack": stack,
        "plane_u8": rng.integers(0, 256, (37, 29), dtype="uint8"),
        "line": stack[1, 5].copy(),
    }


@pytest.mark.parametrize(
    ("version", "name", "codec"),
    [
        (1, "lossless_max", Lossless(coder="max")),
        (1, "lossless_fast", Lossless(coder="fast")),
        (1, "wnl_qp_max", WNL.from_camera(CAMERA, q=1.0)),
        (1, "wnl_qp_fast", WNL.from_camera(CAMERA, q=2.0, coder="fast")),
        (1, "wnl_pq_max", WNL.from_camera(CAMERA, q=1.0, order="pq")),
        (2, "lossless_rice", Lossless(coder="rice")),
        (2, "wnl_qp_rice", WNL.from_camera(CAMERA, q=1.0, coder="rice")),
        (2, "wnl_pq_rice", WNL.from_camera(CAMERA, q=1.0, order="pq", coder="rice")),
        (3, "lossless_max", Lossless(coder="max")),
        (3, "lossless_rice", Lossless(coder="rice")),
        (3, "wnl_qp_max", WNL.from_camera(CAMERA, q=1.0)),
        (3, "wnl_qp_rice", WNL.from_camera(CAMERA, q=1.0, coder="rice")),
        (4, "wnl_pq_max", WNL.from_camera(CAMERA, q=1.0, order="pq")),
        (4, "wnl_pq_rice", WNL.from_camera(CAMERA, q=1.0, order="pq", coder="rice")),
        (4, "wnl_pq_fast", WNL.from_camera(CAMERA, q=1.0, order="pq", coder="fast")),
    ],
)
def test_backwards_compatibility(version, name, codec):
    """A chunk stored per format version and mode decodes as it did when written."""
    folder = FIXTURES / f"v{version}" / name
    for path in folder.glob("*.bgc"):
        assert path.read_bytes()[4] == version
    check_backwards_compatibility(folder, codec, _fixture_arrays())


@pytest.mark.parametrize(
    ("order", "coder", "version"),
    [("qp", "fast", 1), ("qp", "max", 3), ("qp", "rice", 3),
     ("pq", "fast", 4), ("pq", "max", 4), ("pq", "rice", 4)],
)
def test_chunks_carry_the_oldest_version_that_reads_them(order, coder, version):
    """max and rice chunks of the quantise-then-predict order (and lossless) have oriented
    residuals (version 3); fast chunks keep version 1 (older bigcomp reads them);
    predict-then-quantise chunks with escapes code them as offsets (version 4)."""
    data = light_sheet((2, 16, 16)).data
    assert encode_chunk(data, q=1.0, camera=CAMERA, order=order, coder=coder)[4] == version
    lossless = encode_chunk(data, q=0.0, order=order, coder=coder)[4]  # lossless is always qp
    assert lossless == (1 if coder == "fast" else 3)
    assert version <= FORMAT_VERSION


@pytest.mark.parametrize(("coder", "version"), [("fast", 1), ("max", 1), ("rice", 2)])
def test_pq_chunks_without_escapes_keep_their_older_version(coder, version):
    flat = np.full((2, 16, 16), 400, np.uint16)
    chunk = encode_chunk(flat, q=1.0, camera=CAMERA, order="pq", coder=coder)
    assert chunk[4] == version
    decoded = decode_chunk(chunk).astype(np.float64)
    assert np.abs(CAMERA.forward(decoded) - CAMERA.forward(flat.astype(np.float64))).max() <= 0.5


def test_pq_escape_offsets_are_smaller_than_values():
    """Dim pixels escape (a few %); their offsets from the value nearest the prediction take a
    few bits where the values took 16 (version 4): the chunk is >= 5 % smaller."""
    from bigcomp.format import ChunkHeader, pack_chunk, unpack_chunk
    from bigcomp.kernels import _coders

    data = light_sheet((4, 64, 64), seed=3).data
    chunk = encode_chunk(data, q=1.0, camera=CAMERA, order="pq")
    header, payload, values = unpack_chunk(chunk)
    assert header.escape_offsets > 0.005 * data.size
    assert values.size == 0
    decoded = decode_chunk(chunk)
    err = np.abs(CAMERA.forward(decoded.astype(np.float64)) - CAMERA.forward(data.astype(np.float64)))
    assert err.max() <= 0.5
    # the same chunk written the version 1 way: escapes as raw values after the payload
    n = data.size
    symbols = _coders.decode_max(payload, n + header.escape_offsets, data.shape[-1])
    raw = decoded.reshape(-1)[symbols[:n] == 0]
    old = pack_chunk(
        ChunkHeader(**{**header.__dict__, "escape_offsets": 0}),
        _coders.encode_max(symbols[:n], data.shape[-1]), raw,
    )
    assert old[4] == 1
    np.testing.assert_array_equal(decode_chunk(old), decoded)
    assert len(chunk) < 0.95 * len(old)


def test_more_escapes_than_pixels_is_corrupt():
    from bigcomp.format import ChunkHeader, pack_chunk, unpack_chunk

    data = light_sheet((2, 16, 16)).data
    header, payload, _ = unpack_chunk(encode_chunk(data, q=1.0, camera=CAMERA, order="pq"))
    bad = pack_chunk(ChunkHeader(**{**header.__dict__, "escape_offsets": data.size + 1}),
                     bytes(payload), np.empty(0, data.dtype))
    with pytest.raises(CorruptChunkError, match="escapes"):
        decode_chunk(bad)


def test_lossless_with_pq_order_round_trips():
    """Lossless has nothing to quantise: order="pq" codes as "qp" (it once wrote chunks that
    did not decode)."""
    data = light_sheet((3, 20, 24)).data
    for coder in ("fast", "max", "rice"):
        chunk = encode_chunk(data, q=0.0, order="pq", coder=coder)
        np.testing.assert_array_equal(decode_chunk(chunk), data)


def test_rice_chunk_labelled_version_1_is_corrupt():
    data = light_sheet((2, 16, 16)).data
    chunk = bytearray(encode_chunk(data, q=1.0, camera=CAMERA, coder="rice")[:-4])
    chunk[4] = 1
    chunk += struct.pack("<I", crc32c(bytes(chunk)))
    with pytest.raises(CorruptChunkError, match="coder rice in format version 1"):
        decode_chunk(bytes(chunk))


def test_intra_tap_reading_previous_plane_rejected(chunk):
    """An intra tap with dp = -1 would read a plane of another (parallel) run: corrupt."""
    ndim = 3
    first_tap = 12 + 4 * ndim + 4 + 32 + 4
    damaged = bytearray(chunk[:-4])
    damaged[first_tap] = 0xFF  # dp = -1
    damaged += struct.pack("<I", crc32c(bytes(damaged)))
    with pytest.raises(CorruptChunkError, match="predictor tap"):
        decode_chunk(bytes(damaged))
