"""Trust at the chunk level (issue 17): the bound holds where the arithmetic is tight, an
untrusted chunk cannot exhaust the machine or slip into the wrong array, bad input gets a
bigcomp error that says what to do."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from crc32c import crc32c

import bigcomp
from bigcomp import CameraModel, decode_chunk, encode_chunk, error_bound
from bigcomp.codecs import WNL, Lossless
from bigcomp.errors import (
    BigcompError,
    ChunkMismatchError,
    ChunkTooLargeError,
    CorruptChunkError,
    FormatVersionError,
    ParameterError,
    UnsupportedDataError,
)
from bigcomp.format import EXACT_VERSION, FORMAT_VERSION, unpack_chunk
from bigcomp.limits import DEFAULT_MAX_CHUNK_BYTES, max_chunk_bytes, max_chunk_bytes_set
from bigcomp.testing import check_backwards_compatibility

FIXTURES = Path(__file__).parent / "fixture"
STEEP = CameraModel(gain=0.08, offset=1e6, read_noise=0.0)  # 20 σ per ADU below the offset


def _resign(chunk: bytes | bytearray) -> bytes:
    body = bytes(chunk[:-4])
    return body + struct.pack("<I", crc32c(body))


def _stabilised_error(camera, original, decoded) -> float:
    return float(np.abs(camera.forward(np.asarray(decoded, np.float64))
                        - camera.forward(np.asarray(original, np.float64))).max(initial=0))


def _steep_float() -> np.ndarray:
    """float32 values ~1e5 ADU, where float32's spacing (0.008 ADU) is 0.16 σ of this camera:
    about a third of the pixels have no float32 within q/2 = 0.125 σ of their step's centre."""
    rng = np.random.default_rng(5)
    return (1e5 + rng.normal(0, 50, (3, 24, 20))).astype(np.float32)


# ------------------------------------------------------------------------------ the bound
@pytest.mark.parametrize("coder", ["fast", "max", "rice"])
def test_float32_bound_holds_where_float32_is_coarser_than_the_step(coder):
    data = _steep_float()
    chunk = encode_chunk(data, q=0.25, camera=STEEP, coder=coder)
    header, _, exact = unpack_chunk(chunk)
    assert chunk[4] == EXACT_VERSION
    assert header.exact == exact.size > 0
    decoded = decode_chunk(chunk)
    assert decoded.dtype == np.float32
    assert decoded.shape == data.shape
    assert _stabilised_error(STEEP, data, decoded) <= error_bound(0.25, STEEP, "float32") == 0.125


def test_float32_issue_case_rice_q025():
    """The campaign's worst case: rice, q = 0.25, gain 0.0212, offset above the data, read
    noise 0 (was 1.26x the bound)."""
    cam = CameraModel(gain=0.0212, offset=5000.0, read_noise=0.0)
    rng = np.random.default_rng(0)
    data = (rng.random((4, 16, 16)) * 4000).astype(np.float32)
    decoded = decode_chunk(encode_chunk(data, q=0.25, camera=cam, coder="rice"))
    assert _stabilised_error(cam, data, decoded) <= 0.125


def test_float32_chunks_without_exact_pixels_keep_their_version():
    data = np.random.default_rng(1).gamma(4, 30, (2, 16, 16)).astype(np.float32) + 100
    cam = CameraModel(gain=2.0, offset=100.0, read_noise=1.6)
    assert encode_chunk(data, q=1.0, camera=cam, coder="fast")[4] == 1
    assert encode_chunk(data, q=1.0, camera=cam, coder="max")[4] == 3


@pytest.mark.parametrize("coder", ["fast", "max"])
def test_float32_exact_pixels_fixture(coder):
    """Version 5 chunks decode as they did when written (fast: plain residuals, flag 0; max:
    oriented residuals, flag 1)."""
    folder = FIXTURES / f"v{EXACT_VERSION}" / f"wnl_qp_float_{coder}"
    for path in folder.glob("*.bgc"):
        assert path.read_bytes()[4] == EXACT_VERSION
        assert path.read_bytes()[10] == (coder != "fast")
    codec = WNL.from_camera(STEEP, q=0.25, coder=coder)
    check_backwards_compatibility(folder, codec, {"steep": _steep_float()})


def test_damaged_exact_pixels_are_corrupt():
    chunk = bytearray(encode_chunk(_steep_float(), q=0.25, camera=STEEP, coder="fast"))
    _, _, exact = unpack_chunk(bytes(chunk))
    start = len(chunk) - 4 - 12 * exact.size
    chunk[start : start + 8] = struct.pack("<Q", 10**9)  # an index past the chunk
    with pytest.raises(CorruptChunkError, match="exact pixels"):
        decode_chunk(_resign(chunk))


@pytest.mark.parametrize(("dtype", "gain", "q"), [("uint16", 2.0, 1e-7), ("uint16", 0.01, 1e-6),
                                                  ("uint8", 2.0, 1e-8)])
def test_pq_refuses_q_below_its_arithmetic(dtype, gain, q):
    """These returned 357-21 000 σ errors on every pixel, silently."""
    data = np.random.default_rng(2).integers(0, 200, (8, 8)).astype(dtype)
    cam = CameraModel(gain=gain, offset=10.0, read_noise=1.0)
    with pytest.raises(ParameterError, match=r"too small for order='pq'.*q >= "):
        encode_chunk(data, q=q, camera=cam, order="pq")


def test_pq_small_q_that_is_served_is_exact():
    data = np.random.default_rng(2).integers(0, 2000, (8, 8)).astype(np.uint16)
    cam = CameraModel(gain=2.0, offset=100.0, read_noise=1.0)
    decoded = decode_chunk(encode_chunk(data, q=1e-4, camera=cam, order="pq"))
    np.testing.assert_array_equal(decoded, data)


def test_nearest_never_reads_past_its_table():
    """A prediction above the range when the table span is a multiple of the bucket size: the
    search started at table[n] (one past the end)."""
    from bigcomp.kernels._dpcm import _nearest, coarse_index

    table = np.array([0, 1 << 14, 2 << 14, (3 << 14) - 1], np.int64)  # span = 3 * 2**14
    coarse, shift = coarse_index(table)
    assert coarse[-2] == table.size  # the bucket past the last entry starts at n
    for target in (table[-1] + 1, table[-1] + (1 << 13), (3 << 14) + 5):
        assert _nearest(np.int64(target), table, coarse, shift) == table.size - 1


def test_pq_uint8_saturated_q_0915057():
    cam = CameraModel(gain=1.0, offset=0.0, read_noise=0.0)
    data = np.random.default_rng(3).integers(200, 256, (16, 16)).astype(np.uint8)
    data[::3, ::2] = 255
    decoded = decode_chunk(encode_chunk(data, q=0.915057, camera=cam, order="pq"))
    assert _stabilised_error(cam, data, decoded) <= 0.915057 / 2


# ------------------------------------------------------------------------------ bombs
def _claim_shape(chunk: bytes, shape: tuple[int, ...]) -> bytes:
    out = bytearray(chunk)
    assert out[9] == len(shape)
    out[12 : 12 + 4 * len(shape)] = struct.pack(f"<{len(shape)}I", *shape)
    return _resign(out)


def test_constant_chunk_cannot_claim_gigabytes():
    """A 105-byte constant max chunk claiming 2**31 x 8 x 8 pixels (256 GiB of uint16, 896 GiB
    to decode) is refused before anything is allocated."""
    chunk = encode_chunk(np.zeros((4, 8, 8), np.uint16), coder="max")
    assert len(chunk) < 140
    with pytest.raises(ChunkTooLargeError, match=r"896 GiB of memory.*set_max_chunk_bytes"):
        decode_chunk(_claim_shape(chunk, (1 << 31, 8, 8)))


def test_size_limit_is_configurable():
    chunk = encode_chunk(np.zeros((4, 64, 64), np.uint16), coder="max")
    big = _claim_shape(chunk, (64, 1024, 1024))  # 128 MiB of uint16, 448 MiB to decode
    assert max_chunk_bytes() == DEFAULT_MAX_CHUNK_BYTES
    with max_chunk_bytes_set(1 << 20):
        with pytest.raises(ChunkTooLargeError):
            decode_chunk(_claim_shape(chunk, (8, 512, 512)))
        with pytest.raises(ChunkTooLargeError, match="smaller chunks"):
            encode_chunk(np.zeros((5, 512, 512), np.uint8))
    assert unpack_chunk(big)[0].shape == (64, 1024, 1024)
    with pytest.raises(ChunkTooLargeError, match="3.5 GiB of memory"):
        unpack_chunk(_claim_shape(chunk, (512, 1024, 1024)))  # 1 GiB of uint16


def test_env_limit(monkeypatch):
    monkeypatch.setenv("BIGCOMP_MAX_CHUNK_BYTES", "1000")
    with pytest.raises(ChunkTooLargeError):
        encode_chunk(np.zeros((10, 10, 11), np.uint8))
    monkeypatch.setenv("BIGCOMP_MAX_CHUNK_BYTES", "lots")
    with pytest.raises(ParameterError, match="BIGCOMP_MAX_CHUNK_BYTES"):
        encode_chunk(np.zeros(3, np.uint8))


@pytest.mark.parametrize("coder", ["fast", "rice"])
def test_payload_too_short_for_its_pixels_is_corrupt(coder):
    """fast and rice spend a minimum per symbol: a header claiming more pixels than the payload
    can hold is refused without decoding (a 136-byte rice chunk asked for 8 GiB)."""
    chunk = encode_chunk(np.zeros((4, 8, 8), np.uint16), coder=coder)
    with pytest.raises(CorruptChunkError, match="more than a"):
        decode_chunk(_claim_shape(chunk, (1024, 256, 256)))


def test_scratch_does_not_keep_huge_buffers():
    from bigcomp.kernels import _scratch

    small = _scratch.scratch("probe", 10, np.uint32)
    huge = _scratch.scratch("probe", (_scratch.KEEP_BYTES // 4) + 1, np.uint32)
    assert huge.size == _scratch.KEEP_BYTES // 4 + 1
    assert _scratch._local.buffers["probe"].nbytes < _scratch.KEEP_BYTES
    del small, huge


# ------------------------------------------------------------------------------ misplaced chunks
@pytest.fixture(scope="module")
def lossless_array():
    import zarr

    z = zarr.create_array(zarr.storage.MemoryStore(), shape=(4, 8, 8), chunks=(2, 8, 8),
                          dtype="uint16", serializer=bigcomp.zarr3.Lossless(coder="fast"),
                          compressors=None)
    z[:] = np.arange(256, dtype=np.uint16).reshape(4, 8, 8)
    return z


def _put(z, key: str, blob: bytes) -> None:
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    sync(z.store.set(key, default_buffer_prototype().buffer.from_bytes(blob)))


@pytest.mark.parametrize(("block", "kwargs", "what"), [
    (np.zeros((2, 8, 8), np.uint16), {"q": 1.0, "camera": CameraModel(2, 100, 1)}, "mode"),
    (np.zeros((8, 2, 8), np.uint16), {}, "shape"),
    (np.zeros((2, 8, 8), np.uint8), {}, "dtype"),
    (np.zeros((2, 8, 8), np.float32), {"q": 1.0, "camera": CameraModel(2, 100, 1)}, "dtype"),
    (np.zeros((2, 8, 8), np.uint16), {"coder": "max"}, "coder"),
])
def test_zarr_refuses_a_chunk_of_another_array(lossless_array, block, kwargs, what):
    good = bytes(lossless_array.store._store_dict["c/1/0/0"].to_bytes())
    try:
        _put(lossless_array, "c/1/0/0", encode_chunk(block, **{"coder": "fast", **kwargs}))
        with pytest.raises(ChunkMismatchError, match=rf"{what} .*array"):
            lossless_array[:]
    finally:
        _put(lossless_array, "c/1/0/0", good)
    np.testing.assert_array_equal(lossless_array[:], np.arange(256).reshape(4, 8, 8))


def test_numcodecs_refuses_other_parameters():
    cam = CameraModel(2.0, 100.0, 1.6)
    data = np.random.default_rng(0).integers(100, 300, (8, 8)).astype(np.uint16)
    blob = WNL.from_camera(cam, q=1.0).encode(data)
    with pytest.raises(ChunkMismatchError, match=r"q 1\.0 .*array: 2\.0"):
        WNL.from_camera(cam, q=2.0).decode(blob)
    with pytest.raises(ChunkMismatchError, match="mode"):
        Lossless().decode(blob)
    np.testing.assert_array_equal(Lossless().decode(Lossless().encode(data)), data)


# ------------------------------------------------------------------------------ errors
def test_decode_none_and_non_bytes():
    for bad in (None, 3.5, "BGCP"):
        with pytest.raises(UnsupportedDataError, match="bytes-like"):
            decode_chunk(bad)


def test_version_flip_with_bad_checksum_is_corruption():
    chunk = bytearray(encode_chunk(np.arange(64, dtype=np.uint16).reshape(8, 8)))
    chunk[4] = FORMAT_VERSION + 1  # damaged version byte, checksum not recomputed
    with pytest.raises(CorruptChunkError, match="checksum"):
        decode_chunk(bytes(chunk))
    with pytest.raises(FormatVersionError, match="upgrade"):
        decode_chunk(_resign(chunk))


@pytest.mark.parametrize("mode", ["lossless", "pq"])
def test_float32_header_in_integer_only_mode_is_corrupt(mode):
    data = np.arange(64, dtype=np.uint16).reshape(8, 8)
    kwargs = {"q": 1.0, "camera": CameraModel(1, 0, 1), "order": "pq"} if mode == "pq" else {}
    chunk = bytearray(encode_chunk(data, **kwargs))
    chunk[8] = 3  # float32
    with pytest.raises(CorruptChunkError, match="float32 data in"):
        decode_chunk(_resign(chunk))


@pytest.mark.parametrize("shape", [(), (1,), (0,), (3, 0), (0, 5), (2, 0, 4)])
@pytest.mark.parametrize("coder", ["fast", "max", "rice"])
def test_degenerate_shapes_round_trip(shape, coder):
    data = np.full(shape, 7, np.uint16)
    decoded = decode_chunk(encode_chunk(data, coder=coder))
    assert decoded.shape == shape
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, data)


def test_big_endian_input_is_encoded_as_its_values():
    data = np.arange(100, dtype=">u2").reshape(10, 10)
    np.testing.assert_array_equal(decode_chunk(encode_chunk(data)), data)
    cam = CameraModel(2.0, 100.0, 1.6)
    fdata = (np.arange(100, dtype=">f4") + 200).reshape(10, 10)
    out = decode_chunk(encode_chunk(fdata, q=1.0, camera=cam))
    assert _stabilised_error(cam, fdata.astype(np.float32), out) <= 0.5


@pytest.mark.parametrize(("dtype", "hint"), [("float64", "astype('float32')"),
                                             ("int16", "astype('uint16') if no value"),
                                             ("int32", "if every value fits")])
def test_unsupported_dtype_hint(dtype, hint):
    with pytest.raises(UnsupportedDataError, match=hint.replace("(", r"\(").replace(")", r"\)")):
        encode_chunk(np.zeros(4, dtype))


@pytest.mark.parametrize("kwargs", [{"read_noise": 1e155}, {"gain": 1e-9}, {"gain": 1e9},
                                    {"offset": 1e30}])
def test_camera_out_of_any_range(kwargs):
    with pytest.raises(ParameterError, match="check its units"):
        CameraModel(**{"gain": 1.0, "offset": 0.0, "read_noise": 1.0, **kwargs})


def test_every_error_is_a_bigcomp_error():
    for cls in (ChunkMismatchError, ChunkTooLargeError, CorruptChunkError, FormatVersionError,
                ParameterError, UnsupportedDataError):
        assert issubclass(cls, BigcompError)
    assert issubclass(ChunkMismatchError, CorruptChunkError)
