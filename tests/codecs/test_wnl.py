from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numcodecs import get_codec

from bigcomp import CameraModel, error_bound
from bigcomp.codecs import WNL
from bigcomp.datasets import light_sheet, smlm
from bigcomp.errors import ParameterError, UnsupportedDataError
from bigcomp.testing import check_within_bound
from bigcomp.testing.strategies import camera_arrays

CAMERA = CameraModel(gain=2.0, offset=100.0, read_noise=1.6)


@pytest.mark.parametrize("order", ["qp", "pq"])
@pytest.mark.parametrize("coder", ["max", "fast", "rice"])
@pytest.mark.parametrize("q", [0.5, 1.0, 3.0])
def test_light_sheet_within_bound(q, coder, order):
    syn = light_sheet((6, 96, 80))
    camera = CameraModel(syn.gain, syn.offset, syn.read_noise)
    codec = WNL.from_camera(camera, q=q, coder=coder, order=order)
    dec = codec.decode(codec.encode(syn.data))
    check_within_bound(syn.data, dec, camera, q / 2)
    check_within_bound(syn.data, dec, camera, codec.error_bound("uint16"))


@pytest.mark.parametrize("order", ["qp", "pq"])
@pytest.mark.parametrize("coder", ["max", "fast", "rice"])
@given(case=st.one_of(camera_arrays("uint16"), camera_arrays("uint8")), q=st.floats(0.1, 8.0))
def test_bound_property(case, q, coder, order):
    camera, data = case
    codec = WNL.from_camera(camera, q=q, coder=coder, order=order)
    dec = codec.decode(codec.encode(data))
    check_within_bound(data, dec, camera, q / 2)


@given(case=camera_arrays("uint16"), q=st.floats(0.1, 8.0))
def test_float32_within_bound(case, q):
    camera, data = case
    data = data.astype("float32") + np.float32(0.25)
    codec = WNL.from_camera(camera, q=q)
    dec = codec.decode(codec.encode(data))
    check_within_bound(data, dec, camera, error_bound(q, camera, "float32"))


def test_lossy_beats_lossless_and_grows_with_q():
    syn = smlm((4, 128, 128))
    camera = CameraModel(syn.gain, syn.offset, syn.read_noise)
    sizes = [len(WNL.from_camera(camera, q=q).encode(syn.data)) for q in (0.5, 1, 2, 4)]
    assert sizes == sorted(sizes, reverse=True)
    assert syn.data.nbytes / sizes[1] > 3.0


def test_bound_is_exact_over_every_integer():
    codec = WNL.from_camera(CAMERA, q=1.0)
    everything = np.arange(65536, dtype="uint16").reshape(256, 256)
    dec = codec.decode(codec.encode(everything))
    check_within_bound(everything, dec, CAMERA, codec.max_error)
    assert codec.max_error <= 0.5


def test_config_and_repr():
    codec = WNL(q=2.0, gain=1.5, offset=90.0, read_noise=2.0, order="pq", coder="fast")
    assert get_codec(codec.get_config()) == codec
    config = codec.get_config()
    assert config["id"] == "bigcomp_wnl"
    assert config["q"] == 2.0
    assert "WNL(" in repr(codec)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"q": -1.0}, "q > 0"),
        ({"q": 0.0}, "Lossless"),
        ({"gain": -2.0}, "gain must be > 0"),
        ({"gain": 0.0}, "gain must be > 0"),
        ({"read_noise": -1.0}, "read_noise must be >= 0"),
        ({"offset": float("nan")}, "finite"),
        ({"order": "xy"}, "order must be one of"),
        ({"coder": "zip"}, "coder must be one of"),
    ],
)
def test_parameter_errors(kwargs, match):
    with pytest.raises(ParameterError, match=match):
        WNL(**kwargs)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_rejected(bad):
    data = np.ones((4, 4), "float32")
    data[1, 2] = bad
    with pytest.raises(UnsupportedDataError, match="NaN or inf"):
        WNL(q=1.0).encode(data)


def test_unsupported_dtype():
    with pytest.raises(UnsupportedDataError, match="convert first"):
        WNL(q=1.0).encode(np.zeros((3, 3), "int32"))
    with pytest.raises(UnsupportedDataError, match="order='pq'"):
        WNL(q=1.0, order="pq").encode(np.zeros((3, 3), "float32"))
