"""Real-GPU tests (CuPy + a CUDA device): run with ``pytest -m gpu``; they skip elsewhere."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu
cupy = pytest.importorskip("cupy")
try:
    _N_DEVICES = cupy.cuda.runtime.getDeviceCount()
except Exception:  # no driver  # noqa: BLE001
    _N_DEVICES = 0
if _N_DEVICES < 1:
    pytest.skip("no CUDA device", allow_module_level=True)
pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")

from bigcomp import CameraModel, decode_chunk, encode_chunk
from bigcomp.datasets import light_sheet
from bigcomp.gpu import (
    decode_chunk_gpu,
    dispatch_decode,
    dispatch_encode,
    encode_chunk_gpu,
    gpu_available,
)

CAMERA = CameraModel(gain=2.0, offset=100.0, read_noise=1.6)
CASES = [
    ((256, 256), "uint16", 0.0),  # max: the level model (format version 6/7), as the next three
    ((256, 256), "uint16", 1.0),
    ((1, 128, 160), "uint8", 0.0),
    ((4, 64, 48), "uint8", 0.0),
    ((8, 128, 128), "uint16", 1.0),
    ((2, 4, 64, 96), "uint16", 2.0),
    ((8, 64, 64), "uint8", 1.0),
    ((4, 64, 64), "float32", 1.0),
]


def _data(shape, dtype):
    x = light_sheet(shape if len(shape) >= 3 else (1, *shape), seed=3).data.reshape(shape)
    if dtype == "uint8":
        return np.minimum(x // 16, 255).astype(np.uint8)
    return x.astype(dtype)


def _kw(q, coder):
    return {"q": q, "camera": CAMERA if q else None, "coder": coder}


def test_gpu_available():
    assert gpu_available()


@pytest.mark.parametrize("coder", ["fast", "rice", "max"])
@pytest.mark.parametrize(("shape", "dtype", "q"), CASES)
def test_cross_decoding(shape, dtype, q, coder):
    """GPU-encoded chunks are the CPU's bytes; each side decodes the other's."""
    x = _data(shape, dtype)
    cpu = encode_chunk(x, **_kw(q, coder))
    gpu = encode_chunk_gpu(cupy.asarray(x), **_kw(q, coder))
    assert gpu == cpu
    got = decode_chunk_gpu(cpu)
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_array_equal(got.get(), decode_chunk(gpu))


def test_smaller_segments_decode_on_cpu():
    x = _data((8, 128, 128), "uint16")
    buf = encode_chunk_gpu(cupy.asarray(x), coder="max", rows_per_segment=4)
    np.testing.assert_array_equal(decode_chunk(buf), x)
    np.testing.assert_array_equal(decode_chunk_gpu(buf).get(), x)


def test_cupy_in_cupy_out():
    x = cupy.asarray(_data((8, 128, 128), "uint16"))
    buf = dispatch_encode(x, q=1.0, camera=CAMERA)
    out = cupy.empty_like(x)
    res = dispatch_decode(buf, out=out)
    assert res is out
    np.testing.assert_array_equal(out.get(), decode_chunk(buf))
    assert isinstance(dispatch_decode(buf, device="gpu"), cupy.ndarray)


def test_zarr_gpu_buffers(tmp_path):
    zarr = pytest.importorskip("zarr")
    import bigcomp.zarr3 as z3

    x = _data((8, 128, 128), "uint16")
    with zarr.config.enable_gpu():
        arr = zarr.create_array(
            tmp_path / "a.zarr",
            shape=x.shape,
            chunks=(4, 64, 64),
            dtype=x.dtype,
            serializer=z3.Lossless(),
        )
        arr[...] = cupy.asarray(x)
        back = arr[...]
    assert isinstance(back, cupy.ndarray)
    np.testing.assert_array_equal(back.get(), x)


def test_dask_cupy_blocks():
    da = pytest.importorskip("dask.array")
    x = _data((8, 128, 128), "uint16")
    d = da.from_array(cupy.asarray(x), chunks=(4, 64, 64))
    assert isinstance(d._meta, cupy.ndarray)
    enc = d.map_blocks(
        lambda b: np.frombuffer(dispatch_encode(b, coder="fast"), np.uint8)[None, None, None],
        dtype=np.uint8,
        meta=np.empty((0, 0, 0), np.uint8),
    ).compute()
    assert enc.size > 0
    blocks = [dispatch_encode(cupy.asarray(b), coder="fast") for b in (x[:4, :64, :64],)]
    assert blocks[0] == encode_chunk(x[:4, :64, :64], coder="fast")
    rt = d.map_blocks(
        lambda b: decode_chunk_gpu(encode_chunk_gpu(b)).reshape(b.shape),
        dtype=x.dtype,
        meta=cupy.empty((0, 0, 0), x.dtype),
    )
    assert isinstance(rt._meta, cupy.ndarray)
    res = rt.compute()
    assert isinstance(res, cupy.ndarray)
    np.testing.assert_array_equal(res.get(), x)
