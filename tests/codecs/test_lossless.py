from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numcodecs import get_codec

from bigcomp.codecs import Lossless
from bigcomp.datasets import light_sheet
from bigcomp.errors import ParameterError, UnsupportedDataError
from bigcomp.testing.strategies import integer_arrays

RNG = np.random.default_rng(42)
ARRAYS = [
    np.arange(1000, dtype="uint16"),
    RNG.integers(0, 65536, (7, 13), dtype="uint16"),
    RNG.integers(0, 256, (3, 5, 31), dtype="uint8"),
    np.zeros((2, 3, 4, 5, 6), dtype="uint16"),
    np.full((1, 1, 1), 65535, dtype="uint16"),
    np.asfortranarray(RNG.integers(0, 4000, (33, 17), dtype="uint16")),
    light_sheet((4, 64, 80)).data,
    np.empty((0, 5), dtype="uint16"),
]


@pytest.mark.parametrize("coder", ["max", "fast", "rice"])
@pytest.mark.parametrize("arr", ARRAYS, ids=lambda a: f"{a.dtype}{a.shape}")
def test_encode_decode(arr, coder):
    codec = Lossless(coder=coder)
    dec = codec.decode(codec.encode(arr))
    assert dec.dtype == arr.dtype
    np.testing.assert_array_equal(dec.reshape(arr.shape), arr)


@pytest.mark.parametrize("coder", ["max", "fast", "rice"])
@given(data=st.one_of(integer_arrays("uint16"), integer_arrays("uint8")))
def test_round_trip_property(data, coder):
    codec = Lossless(coder=coder)
    dec = codec.decode(codec.encode(data))
    assert dec.dtype == data.dtype
    np.testing.assert_array_equal(dec.reshape(data.shape), data)


def test_decode_into_out():
    arr = light_sheet((2, 32, 32)).data
    codec = Lossless()
    out = np.empty_like(arr)
    codec.decode(codec.encode(arr), out=out)
    np.testing.assert_array_equal(out, arr)


def test_compresses_camera_data():
    arr = light_sheet((8, 128, 128)).data
    assert arr.nbytes / len(Lossless().encode(arr)) > 2.0


def test_config_and_repr():
    codec = Lossless(coder="fast")
    assert get_codec(codec.get_config()) == codec
    assert codec.get_config() == {"id": "bigcomp_lossless", "coder": "fast"}
    assert repr(codec) == "Lossless(coder='fast')"


def test_errors():
    with pytest.raises(ParameterError, match="coder must be one of"):
        Lossless(coder="best")
    with pytest.raises(UnsupportedDataError, match="uint8, uint16 and float32"):
        Lossless().encode(np.zeros(4, "int64"))
    with pytest.raises(UnsupportedDataError, match="lossless mode"):
        Lossless().encode(np.zeros(4, "float32"))
