"""``bigcomp.video``: x264/x265 through ffmpeg as peers (skipped where ffmpeg is missing)."""

from __future__ import annotations

import numpy as np
import pytest

from bigcomp import video
from bigcomp.datasets import light_sheet

needs_x265 = pytest.mark.skipif(not video.available("libx265"), reason="no ffmpeg with libx265")


@needs_x265
def test_roundtrip_keeps_shape_dtype_and_tracks_crf():
    data = light_sheet((6, 50, 70), seed=1).data  # odd sizes: padded to the codec's blocks
    n_fine, fine = video.roundtrip(data, crf=12)
    n_coarse, coarse = video.roundtrip(data, crf=40)
    assert fine.shape == data.shape
    assert fine.dtype == data.dtype
    assert n_coarse < n_fine < data.nbytes
    err = [np.abs(x.astype(float) - data).mean() for x in (fine, coarse)]
    assert err[0] < err[1]


@pytest.mark.skipif(not video.available("libx264"), reason="no ffmpeg with libx264")
def test_x264_and_float_data():
    data = light_sheet((4, 32, 48), seed=2).data.astype("float32") / 7
    n, back = video.roundtrip(data, codec="libx264", bits=8, crf=18)
    assert back.dtype == np.float32
    assert 0 < n < data.nbytes
    assert np.abs(back - data).mean() < 0.02 * (data.max() - data.min())


def test_bad_parameters():
    data = np.zeros((2, 16, 16), "uint16")
    with pytest.raises(ValueError, match="libx264 with 8 or 10"):
        video.roundtrip(data, codec="libx264", bits=12)
    with pytest.raises(ValueError, match="not supported"):
        video.roundtrip(data, codec="libvpx")
    with pytest.raises(ValueError, match="planes"):
        video.roundtrip(np.zeros(5, "uint16"))


def test_missing_ffmpeg_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(video, "available", lambda codec="libx265": False)
    with pytest.raises(RuntimeError, match="apt install ffmpeg"):
        video.roundtrip(np.zeros((2, 16, 16), "uint16"))
