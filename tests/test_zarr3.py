from __future__ import annotations

import numpy as np
import pytest
import zarr

import bigcomp
from bigcomp import CameraModel
from bigcomp.datasets import light_sheet
from bigcomp.testing import check_within_bound


@pytest.mark.parametrize(
    "serializer",
    [bigcomp.zarr3.Lossless(), bigcomp.zarr3.WNL(q=1.0, gain=2.0, offset=100.0, read_noise=1.6),
     bigcomp.zarr3.WNL(q=1.0, gain=2.0, offset=100.0, read_noise=1.6, coder="rice")],
    ids=["lossless", "wnl", "wnl-rice"],
)
def test_zarr_round_trip(tmp_path, serializer):
    data = light_sheet((5, 70, 90)).data
    arr = zarr.create_array(
        tmp_path / "a.zarr", shape=data.shape, chunks=(2, 32, 64), dtype=data.dtype,
        serializer=serializer, compressors=None,
    )
    arr[:] = data
    back = zarr.open_array(tmp_path / "a.zarr", mode="r")
    assert back.metadata.codecs[0].to_dict()["name"] == serializer.codec_name
    out = back[:]
    if isinstance(serializer, bigcomp.zarr3.Lossless):
        np.testing.assert_array_equal(out, data)
    else:
        check_within_bound(data, out, CameraModel(2.0, 100.0, 1.6), 0.5)
    np.testing.assert_array_equal(back[1:3, 10:20, 60:70], out[1:3, 10:20, 60:70])


def test_to_from_dict():
    codec = bigcomp.zarr3.WNL(q=2.0, gain=1.0, offset=5.0, read_noise=0.5, coder="fast")
    assert bigcomp.zarr3.WNL.from_dict(codec.to_dict()) == codec
    assert codec.to_dict()["configuration"]["q"] == 2.0


def test_bad_parameters():
    with pytest.raises(bigcomp.ParameterError, match="gain"):
        bigcomp.zarr3.WNL(q=1.0, gain=-1.0)


def test_f_order_chunks(tmp_path):
    data = np.asfortranarray(light_sheet((2, 40, 40)).data)
    arr = zarr.create_array(
        tmp_path / "f.zarr", shape=data.shape, chunks=data.shape, dtype=data.dtype,
        serializer=bigcomp.zarr3.Lossless(), compressors=None, config={"order": "F"},
    )
    arr[:] = data
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "f.zarr", mode="r")[:], data)


def test_variable_size_protocol_and_shards(tmp_path):
    # compressors cannot state their output size; zarr's shards record each chunk's size instead
    codec = bigcomp.zarr3.Lossless()
    with pytest.raises(NotImplementedError, match="data-dependent size"):
        codec.compute_encoded_size(1024, None)
    a = (np.random.default_rng(0).poisson(50, (8, 64, 64)) + 100).astype(np.uint16)
    z = zarr.create_array(tmp_path / "s.zarr", shape=a.shape, chunks=(4, 32, 32),
                          shards=(8, 64, 64), dtype=a.dtype, serializer=codec)
    z[...] = a
    np.testing.assert_array_equal(zarr.open_array(tmp_path / "s.zarr")[...], a)
