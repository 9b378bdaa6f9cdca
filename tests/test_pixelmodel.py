"""Per-pixel camera maps in the codec (format version 6): every pixel within q/2 of its own
noise, whatever the maps; maps inline or kept once per array; damage and misuse refused."""

from __future__ import annotations

import base64
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bigcomp
from bigcomp import (
    ChunkMismatchError,
    CorruptChunkError,
    MissingNoiseMapsError,
    ParameterError,
    UnsupportedDataError,
)
from bigcomp.chunk import decode_chunk, encode_chunk
from bigcomp.codecs import WNL
from bigcomp.format import FLAG_PIXEL_MODEL, unpack_chunk
from bigcomp.pixelcamera import PixelCamera
from bigcomp.pixelmodel import MAX_CLASSES, NoiseMaps, noise_maps

FIXTURES = Path(__file__).parent / "fixture" / "v6"


def _camera(rng: np.random.Generator, shape, *, gain=2.0, gain_spread=0.02, offset=100.0,
            offset_spread=2.0, read_noise=1.5, hot=0.02) -> PixelCamera:
    rn = np.exp(rng.normal(np.log(read_noise), 0.3, shape))
    hot_px = rng.random(shape) < hot
    rn[hot_px] *= rng.uniform(3, 20, int(hot_px.sum()))
    g = gain * (1 + rng.normal(0, gain_spread, shape)).clip(0.5, 2)
    o = offset + rng.normal(0, offset_spread, shape)
    return PixelCamera(o, (rn * g) ** 2, g)


def _frames(rng, cam: PixelCamera, planes: int, photons: float, dtype="uint16") -> np.ndarray:
    shape = (planes, *cam.shape)
    lam = rng.uniform(0, photons, cam.shape) * np.ones((planes, 1, 1))
    e = rng.poisson(lam) + rng.normal(0, 1, shape) * cam.read_noise
    top = np.iinfo(dtype).max
    return np.clip(np.rint(e * cam.gain + cam.offset), 0, top).astype(dtype)


def _own_error(cam: PixelCamera, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.abs(cam.forward(y.astype(np.float64)) - cam.forward(x.astype(np.float64)))


@st.composite
def pixel_cases(draw):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    rows, cols = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    dtype = draw(st.sampled_from(["uint8", "uint16"]))
    top = np.iinfo(dtype).max
    cam = _camera(rng, (rows, cols), gain=draw(st.floats(0.05, 20)),
                  gain_spread=draw(st.floats(0, 0.3)),
                  offset=draw(st.floats(-20, 0.9 * top)),
                  offset_spread=draw(st.floats(0, 30)),
                  read_noise=draw(st.floats(0.05, 10)), hot=draw(st.floats(0, 0.3)))
    # offsets up to the dtype's top (above it the maps are refused: another test)
    cam = PixelCamera(np.minimum(cam.offset, top), cam.variance, cam.gain)
    planes = draw(st.integers(1, 5))
    kind = draw(st.sampled_from(["camera", "extremes", "uniform"]))
    if kind == "camera":
        x = _frames(rng, cam, planes, draw(st.floats(0, 5000)), dtype)
    elif kind == "extremes":
        x = rng.choice(np.array([0, 1, top - 1, top]), (planes, rows, cols)).astype(dtype)
    else:
        x = rng.integers(0, top + 1, (planes, rows, cols)).astype(dtype)
    q = draw(st.sampled_from([0.05, 0.3, 1.0, 2.0, 7.5]))
    coder = draw(st.sampled_from(["max", "fast", "rice"]))
    return cam, x, q, coder


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pixel_cases())
def test_every_pixel_within_its_own_bound(case):
    """Random sensors (gain spread, offsets below 0 and high, hot pixels up to 20x), random
    data (camera-like, extremes, uniform), both ways of carrying the maps."""
    cam, x, q, coder = case
    inline = encode_chunk(x, q=q, camera=cam, coder=coder)
    back = decode_chunk(inline)
    assert back.dtype == x.dtype and back.shape == x.shape
    assert _own_error(cam, x, back).max() <= q / 2 * (1 + 1e-9)
    maps = noise_maps(cam, x.dtype)
    referenced = encode_chunk(x, q=q, camera=cam.median_model(), coder=coder, noise_maps=maps)
    np.testing.assert_array_equal(decode_chunk(referenced, noise_maps=maps), back)


def test_maps_beat_the_bound_the_global_model_breaks():
    """A sensor with hot and quiet pixels: its median camera puts pixels beyond their own
    bound; the maps put none there, for about the same size."""
    rng = np.random.default_rng(3)
    cam = _camera(rng, (128, 128))
    x = _frames(rng, cam, 16, 40)
    maps = noise_maps(cam, x.dtype)
    per_pixel = encode_chunk(x, q=1.0, camera=cam.median_model(), noise_maps=maps)
    glob = encode_chunk(x, q=1.0, camera=cam.median_model())
    assert _own_error(cam, x, decode_chunk(per_pixel, noise_maps=maps)).max() <= 0.5
    assert (_own_error(cam, x, decode_chunk(glob)) > 0.5).mean() > 0.001
    assert len(per_pixel) < 1.05 * len(glob)


def test_uniform_maps_cost_nothing_against_the_same_global_camera():
    rng = np.random.default_rng(4)
    g, k = 2.0, 16.0
    rn = np.sqrt(k / g**2 - 0.375)
    cam = PixelCamera(np.full((64, 64), 100.0), np.full((64, 64), (rn * g) ** 2), g)
    x = _frames(rng, cam, 8, 30)
    maps = noise_maps(cam, x.dtype)
    assert len(maps.cameras) == 1
    glob = bigcomp.CameraModel(g, 100.5, rn)  # the tables put the offset half an ADU up
    per_pixel = encode_chunk(x, q=1.0, camera=glob, noise_maps=maps)
    # the same symbols: only the model section's reference (39 bytes) more
    assert len(per_pixel) <= len(encode_chunk(x, q=1.0, camera=glob)) + 40


def test_windows_of_the_sensor_decode_with_the_arrays_maps():
    rng = np.random.default_rng(5)
    cam = _camera(rng, (40, 50))
    x = _frames(rng, cam, 3, 100)
    maps = noise_maps(cam, x.dtype)
    for r0, c0, h, w in [(0, 0, 16, 16), (16, 32, 16, 16), (32, 48, 16, 16)]:  # last: padded
        block = np.zeros((3, h, w), x.dtype)
        part = x[:, r0:r0 + h, c0:c0 + w]
        block[:, : part.shape[1], : part.shape[2]] = part
        back = decode_chunk(encode_chunk(block, q=1.0, camera=cam.median_model(),
                                         noise_maps=maps, origin=(r0, c0)), noise_maps=maps)
        window = cam.window(slice(r0, r0 + h), slice(c0, c0 + w))
        err = _own_error(window, part, back[:, : part.shape[1], : part.shape[2]])
        assert err.max() <= 0.5


def test_referenced_chunk_needs_its_own_maps():
    rng = np.random.default_rng(6)
    cam = _camera(rng, (16, 16))
    x = _frames(rng, cam, 2, 50)
    maps = noise_maps(cam, x.dtype)
    blob = encode_chunk(x, q=1.0, camera=cam.median_model(), noise_maps=maps)
    with pytest.raises(MissingNoiseMapsError, match="bigcomp.open"):
        decode_chunk(blob)
    other = noise_maps(_camera(np.random.default_rng(7), (16, 16)), x.dtype)
    with pytest.raises(ChunkMismatchError, match="other camera maps"):
        decode_chunk(blob, noise_maps=other)
    # the array's codec refuses a chunk coded with a global camera (or the other way round)
    codec = WNL(q=1.0, **cam.median_model().to_dict(),
                noise_maps=base64.b64encode(maps.blob).decode())
    np.testing.assert_array_equal(codec.decode(blob), decode_chunk(blob, noise_maps=maps))
    with pytest.raises(ChunkMismatchError, match="per_pixel"):
        codec.decode(encode_chunk(x, q=1.0, camera=cam.median_model()))


def _recrc(body: bytes) -> bytes:
    return body + struct.pack("<I", crc32c(body))


def test_damaged_model_with_a_valid_checksum_is_corrupt():
    """Mutations of the model section (class count, alignments, maps) that keep the CRC
    valid: refused as corrupt, never decoded to wrong pixels."""
    rng = np.random.default_rng(8)
    variance = np.where(rng.random((12, 10)) < 0.2, 100.0, 4.0)  # two classes: quick tables
    cam = PixelCamera(100 + rng.normal(0, 2, (12, 10)), variance, 2.0)
    x = _frames(rng, cam, 2, 50)
    good = encode_chunk(x, q=1.0, camera=cam)
    header, _, _ = unpack_chunk(good)
    model = header.pixel_model
    start = len(good) - 4 - len(model)
    expected = decode_chunk(good)
    caught = 0
    # the fixed fields, the class parameters, the nested chunk's header, and a sample of the
    # rest (each accepted mutation builds new class tables: keep the count modest)
    positions = sorted(set(range(min(len(model), 120))) | set(range(120, len(model), 5)))
    for pos in positions:
        for value in (0, 0xFF):
            if model[pos] == value:
                continue
            bad = bytearray(good[:-4])
            bad[start + pos] = value
            try:
                out = decode_chunk(_recrc(bytes(bad)))
            except (CorruptChunkError, ChunkMismatchError):
                caught += 1
                continue
            # an accepted mutation must still decode within every pixel's own bound of
            # *some* valid model: at least it must not be garbage for this data
            assert out.shape == expected.shape
    assert caught > 0


def test_flag_outside_integer_qp_wnl_is_corrupt():
    data = np.arange(64, dtype=np.uint16).reshape(8, 8)
    blob = bytearray(encode_chunk(data, q=0.0)[:-4])  # lossless: the flag is not allowed
    flags = struct.unpack_from("<H", blob, 10)[0] | FLAG_PIXEL_MODEL
    struct.pack_into("<H", blob, 10, flags)
    blob[4] = 6
    with pytest.raises(CorruptChunkError, match="flags"):
        decode_chunk(_recrc(bytes(blob)))


@pytest.mark.parametrize(
    ("maps", "match"),
    [
        (dict(offset=np.zeros((4, 4)), variance=np.ones((4, 5)), gain=1.0), "disagree in shape"),
        (dict(offset=np.zeros((4, 4)), variance=-np.ones((4, 4)), gain=1.0), "<= 0"),
        (dict(offset=np.full((4, 4), np.nan), variance=np.ones((4, 4)), gain=1.0), "NaN"),
        (dict(offset=np.zeros((4, 4)), variance=np.ones((4, 4)), gain=np.inf), "NaN or infinite"),
        (dict(offset=np.zeros((4, 4)), variance=np.ones((4, 4)), gain=0.0), "outside"),
        (dict(offset=np.zeros(4), variance=np.ones(4), gain=1.0), "2-D"),
    ],
)
def test_bad_maps_are_refused(maps, match):
    with pytest.raises(ParameterError, match=match):
        PixelCamera(**maps)


def test_misfit_maps_and_unsupported_data_are_refused():
    cam = PixelCamera(np.full((8, 8), 100.0), np.full((8, 8), 4.0), 2.0)
    with pytest.raises(ParameterError, match="8 x 8 pixels but the data's frames are 8 x 9"):
        encode_chunk(np.zeros((2, 8, 9), np.uint16), q=1.0, camera=cam)
    with pytest.raises(UnsupportedDataError, match="float"):
        encode_chunk(np.zeros((2, 8, 8), np.float32), q=1.0, camera=cam)
    with pytest.raises(ParameterError, match="order='qp'"):
        encode_chunk(np.zeros((2, 8, 8), np.uint16), q=1.0, camera=cam, order="pq")
    high = PixelCamera(np.full((8, 8), 300.0), np.full((8, 8), 4.0), 2.0)
    with pytest.raises(ParameterError, match="above the largest uint8"):
        encode_chunk(np.zeros((2, 8, 8), np.uint8), q=1.0, camera=high)
    codec = WNL(q=1.0, gain=2, offset=100, read_noise=1,
                noise_maps=base64.b64encode(noise_maps(cam, np.uint16).blob).decode())
    with pytest.raises(ParameterError, match="bigcomp.compress"):
        codec.encode(np.zeros((2, 4, 4), np.uint16))
    with pytest.raises(ParameterError, match="base64"):
        WNL(q=1.0, noise_maps="not base64!")


def test_many_distinct_pixels_stay_within_the_class_limit():
    rng = np.random.default_rng(9)
    shape = (64, 64)
    cam = PixelCamera(rng.uniform(0, 1000, shape), 10 ** rng.uniform(-1, 6, shape),
                      10 ** rng.uniform(-1, 1, shape))
    maps = noise_maps(cam, np.uint16)
    assert len(maps.cameras) <= MAX_CLASSES
    x = rng.integers(0, 65536, (2, *shape)).astype(np.uint16)
    assert _own_error(cam, x, decode_chunk(encode_chunk(x, q=1.0, camera=cam))).max() <= 0.5


def test_maps_blob_round_trips():
    cam = _camera(np.random.default_rng(10), (20, 30))
    maps = noise_maps(cam, np.uint16)
    again = NoiseMaps.from_blob(maps.blob)
    assert again.digest == maps.digest and again.cameras == maps.cameras
    np.testing.assert_array_equal(again.offsets, maps.offsets)


def test_compress_with_maps_reads_within_each_pixels_bound(tmp_path):
    """compress(camera=PixelCamera): zarr, bigcomp.open and the store's camera copy."""
    import zarr

    from bigcomp.datasets import scmos_camera, scmos_frames

    cam = scmos_camera((40, 60), seed=1)
    x = scmos_frames(cam, np.random.default_rng(0).uniform(5, 60, (40, 60)), frames=12, seed=2)
    dest = tmp_path / "s.zarr"
    res = bigcomp.compress(x, dest, q=1.0, camera=cam, chunks=(6, 32, 32), progress=False)
    assert res.error_bound == 0.5
    back = bigcomp.open(dest).values
    assert _own_error(cam, x, back).max() <= 0.5
    np.testing.assert_array_equal(zarr.open_array(dest / "0", mode="r")[:], back)
    assert bigcomp.load_camera(dest / "camera") == cam
    # a rerun with the same maps resumes; with other maps it is another job
    again = bigcomp.compress(x, dest, q=1.0, camera=cam, chunks=(6, 32, 32), progress=False)
    assert again.chunks_written == 0
    other = scmos_camera((40, 60), seed=2)
    with pytest.raises(bigcomp.StoreExistsError):
        bigcomp.compress(x, dest, q=1.0, camera=other, chunks=(6, 32, 32), progress=False)


def _fixture_case():
    rng = np.random.default_rng(11)
    cam = _camera(rng, (24, 20))
    return cam, _frames(rng, cam, 3, 80)


@pytest.mark.parametrize("kind", ["inline", "referenced"])
def test_version_6_fixtures_decode_as_written(kind):
    """Chunks of format version 6 stay decodable, identically, forever."""
    folder = FIXTURES / f"wnl_pixel_{kind}"
    folder.mkdir(parents=True, exist_ok=True)
    # a referenced chunk decodes only with its maps: ".bgcref", so that the fixture sweeps of
    # the fuzz and GPU tests (every "*.bgc", decoded alone) leave it to this test
    suffix = ".bgc" if kind == "inline" else ".bgcref"
    enc, out = folder / f"stack{suffix}", folder / "stack.out.npy"
    maps_file = folder / "maps.txt"
    if not enc.exists():
        cam, x = _fixture_case()
        if kind == "inline":
            blob = encode_chunk(x, q=1.0, camera=cam)
        else:
            maps = noise_maps(cam, x.dtype)
            maps_file.write_text(base64.b64encode(maps.blob).decode())
            blob = encode_chunk(x, q=1.0, camera=cam.median_model(), noise_maps=maps)
        enc.write_bytes(blob)
        np.save(out, decode_chunk(blob, noise_maps=None if kind == "inline" else maps))
    blob = enc.read_bytes()
    assert blob[4] == 6
    maps = (NoiseMaps.from_blob(base64.b64decode(maps_file.read_text()))
            if kind == "referenced" else None)
    np.testing.assert_array_equal(decode_chunk(blob, noise_maps=maps), np.load(out))
    assert os.path.getsize(enc) > 0
