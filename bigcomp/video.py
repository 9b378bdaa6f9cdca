"""Video codecs (x264, x265 through ffmpeg) as peers: planes of an array coded as grey frames.

Used by ``bigcomp evaluate`` (peers ``x264``/``x265``) and the INR benchmark. The array is
scaled linearly from its own range onto the codec's bit depth (8, 10 or 12 bits), coded with
``-crf`` (lower is better quality), decoded and scaled back to the input dtype; the size is the
raw elementary stream (no container) plus 16 bytes for the two scale parameters.

Needs an ``ffmpeg`` executable with the encoder on ``PATH`` (Debian: ``apt install ffmpeg``);
:func:`available` says whether it is there.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

import numpy as np

__all__ = ["CODECS", "available", "roundtrip"]

CODECS = {"libx264": "h264", "libx265": "hevc"}  # encoder -> raw stream format
PIXEL_FORMATS = {8: "gray", 10: "gray10le", 12: "gray12le"}


@functools.cache
def available(codec: str = "libx265") -> bool:
    """Whether ``ffmpeg`` is on ``PATH`` and has the encoder ``codec``."""
    if codec not in CODECS or shutil.which("ffmpeg") is None:
        return False
    out = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True,
                         check=False)
    return codec in out.stdout


def roundtrip(a: np.ndarray, *, codec: str = "libx265", crf: int = 28, bits: int = 12,
              preset: str = "medium") -> tuple[int, np.ndarray]:
    """Code the planes of ``a`` (last two axes) as one grey video; ``(bytes, decoded array)``.

    Parameters
    ----------
    a : ndarray of integers or floats, at least 2-D
    codec : {"libx264", "libx265"}
    crf : int
        Constant rate factor (0-51; lower: larger and closer).
    bits : {8, 10, 12}
        Bit depth of the frames (x264 takes 8 or 10).
    preset : str
        The encoder's speed/size preset.

    Raises
    ------
    ValueError
        Unknown codec or bit depth.
    RuntimeError
        ffmpeg or the encoder is missing, or ffmpeg failed (its message is included).
    """
    if codec not in CODECS or bits not in PIXEL_FORMATS or (codec == "libx264" and bits > 10):
        raise ValueError(f"{codec} at {bits} bits is not supported: use libx264 with 8 or 10 "
                         "bits, or libx265 with 8, 10 or 12")
    a = np.asarray(a)
    if a.ndim < 2 or a.size == 0:  # checked first: bad input is bad with or without ffmpeg
        raise ValueError(f"need planes to code as frames, got shape {a.shape}")
    if not available(codec):
        raise RuntimeError(f"ffmpeg with {codec} not found on PATH (e.g. apt install ffmpeg)")
    planes = a.reshape(-1, *a.shape[-2:]).astype(np.float64)
    lo, hi = float(planes.min()), float(planes.max())
    top = 2**bits - 1
    frames = np.rint((planes - lo) / max(hi - lo, 1e-12) * top)
    h, w = frames.shape[1:]
    frames = np.pad(frames, ((0, 0), (0, -h % 8), (0, -w % 8)), mode="edge")  # codec blocks
    fmt = PIXEL_FORMATS[bits]
    dtype = np.dtype("u1" if bits == 8 else "<u2")
    quiet = ["-x265-params", "log-level=error"] if codec == "libx265" else []
    size = f"{frames.shape[2]}x{frames.shape[1]}"
    stream = _ffmpeg(["-f", "rawvideo", "-pix_fmt", fmt, "-s", size, "-r", "25", "-i", "-",
                      "-c:v", codec, "-preset", preset, "-crf", str(crf), *quiet,
                      "-pix_fmt", fmt, "-f", CODECS[codec], "-"], frames.astype(dtype).tobytes())
    raw = _ffmpeg(["-f", CODECS[codec], "-i", "-", "-f", "rawvideo", "-pix_fmt", fmt, "-"],
                  stream)
    back = np.frombuffer(raw, dtype).reshape(frames.shape)[:, :h, :w].astype(np.float64)
    values = back / top * (hi - lo) + lo
    if a.dtype.kind in "iu":
        limits = np.iinfo(a.dtype)
        values = np.clip(np.rint(values), limits.min, limits.max)
    return len(stream) + 16, values.astype(a.dtype).reshape(a.shape)


def _ffmpeg(args: list[str], data: bytes) -> bytes:
    run = subprocess.run(["ffmpeg", "-v", "error", "-y", *args], input=data,
                         capture_output=True, check=False)
    if run.returncode:
        raise RuntimeError(f"ffmpeg failed: {run.stderr.decode(errors='replace').strip()[-300:]}")
    return run.stdout
