"""Per-pixel noise model of a chunk (format version 6): noise classes with integer tables.

A :class:`~bigcomp.pixelcamera.PixelCamera` gives every pixel its own offset ``o_i``, gain
``g_i`` and read-noise variance ``v_i``; its transform has slope ``1/s_i(x)`` with
``s_i(x)² = g_i·max(x − o_i, 0) + K_i`` and ``K_i = 3/8·g_i² + v_i`` (ADU²). A table built for
a model with ``s_c ≤ s_i`` *everywhere* puts every pixel within ``q/2`` of its own transform:
``|y_i(a) − y_i(b)| = |∫ 1/s_i| ≤ |∫ 1/s_c| = |y_c(a) − y_c(b)| ≤ q/2``. That holds when
``g_c ≤ g_i``, ``K_c ≤ K_i`` and the model's offset is at or above the pixel's.

So each pixel gets:

* an integer offset ``round(o_i)`` (clipped to the dtype's range), subtracted before the table
  look-up; the tables put the offset at +0.5, at or above what is left of every pixel's;
* a *class*: ``K`` rounded down to a power of ``2^(1/4)`` and ``g`` to a power of ``2^(1/8)``
  (finer bins by at most 9 % and 4 % of σ: about 0.06 bits per pixel where the read noise
  dominates). Each class has its own integer-exact table over ``[−top, top]``; its bin indices
  are shifted (``align``) so that classes agree at the chunk's median level, which keeps
  neighbours of different classes predictable from each other.

The chunk carries the class parameters and its window of the two maps (class, integer offset)
as a nested lossless chunk: about 5-7 bits per pixel of the plane, once per chunk (0.3-0.4 bits
per pixel with 16 planes per chunk; fewer planes cost more).
"""

from __future__ import annotations

import functools
import hashlib
import math
import struct
from dataclasses import dataclass

import numpy as np

from .errors import ChunkMismatchError, CorruptChunkError, MissingNoiseMapsError, ParameterError
from .noise import CameraModel, greedy_bins
from .pixelcamera import PixelCamera

__all__ = ["ChunkPixelModel", "NoiseMaps", "build_model", "noise_maps", "parse_model"]

K_STEP = 2 ** 0.125  # class grid of the constant term K (ADU²)
GAIN_STEP = 2 ** 0.0625  # class grid of the gain
MAX_CLASSES = 128  # per sensor; more distinct classes coarsen the K grid
CLASS_OFFSET = 0.5  # the tables' offset, relative to each pixel's integer offset
_KIND = struct.Struct("<B")
_COUNT = struct.Struct("<H")
_CLASS = struct.Struct("<dd")  # gain, read noise
_REF = struct.Struct("<IIII")  # origin row, column; sensor rows, columns


@dataclass(frozen=True, eq=False)
class NoiseMaps:
    """Noise classes of a sensor and the maps of its pixels: what a chunk is coded with.

    Built once per store from a :class:`~bigcomp.pixelcamera.PixelCamera`
    (:func:`noise_maps`); chunks then refer to them by :attr:`digest` and their window's
    origin instead of carrying them.

    Attributes
    ----------
    cameras : tuple of CameraModel
        The model of each class (offset :data:`CLASS_OFFSET`, relative to the pixel's integer
        offset).
    cls : ndarray of uint16, (rows, cols)
        Class of each pixel.
    offsets : ndarray of uint16, (rows, cols)
        Integer offset of each pixel.
    """

    cameras: tuple[CameraModel, ...]
    cls: np.ndarray
    offsets: np.ndarray

    def __post_init__(self) -> None:
        for a in (self.cls, self.offsets):
            a.setflags(write=False)

    @functools.cached_property
    def blob(self) -> bytes:
        """Serialised form: class count, class parameters, then the maps as a nested
        lossless chunk (2, rows, cols) of uint16."""
        from .chunk import encode_chunk

        classes = b"".join(_CLASS.pack(c.gain, c.read_noise) for c in self.cameras)
        maps = np.stack([self.cls, self.offsets]).astype(np.uint16)
        return _COUNT.pack(len(self.cameras)) + classes + encode_chunk(maps, q=0, coder="max")

    @functools.cached_property
    def digest(self) -> bytes:
        """8-byte BLAKE2b of :attr:`blob`: how a chunk names the maps it needs."""
        return hashlib.blake2b(self.blob, digest_size=8).digest()

    @property
    def shape(self) -> tuple[int, int]:
        return self.cls.shape  # type: ignore[return-value]

    def window(self, origin: tuple[int, int], shape: tuple[int, int]
               ) -> tuple[np.ndarray, np.ndarray]:
        """Class and offset maps of the ``shape`` pixels from ``origin``; beyond the sensor
        (the padding of edge chunks) class 0 and offset 0."""
        (r0, c0), (rows, cols) = origin, shape
        cls = np.zeros(shape, np.uint16)
        offsets = np.zeros(shape, np.int64)
        r1, c1 = min(r0 + rows, self.shape[0]), min(c0 + cols, self.shape[1])
        if r1 > r0 and c1 > c0:
            cls[: r1 - r0, : c1 - c0] = self.cls[r0:r1, c0:c1]
            offsets[: r1 - r0, : c1 - c0] = self.offsets[r0:r1, c0:c1]
        return cls, offsets

    @classmethod
    def from_blob(cls, blob) -> NoiseMaps:
        """Parse :attr:`blob`.

        Raises
        ------
        CorruptChunkError
            Anything in it no encoder writes.
        """
        from .chunk import decode_chunk

        view = memoryview(blob)
        try:
            (n,) = _COUNT.unpack(view[: _COUNT.size])
            if not 1 <= n <= MAX_CLASSES:
                raise CorruptChunkError(f"corrupt bigcomp noise maps: {n} noise classes")
            end = _COUNT.size + n * _CLASS.size
            cameras = tuple(CameraModel(g, CLASS_OFFSET, r) for g, r in (
                _CLASS.unpack(view[_COUNT.size + i * _CLASS.size:][: _CLASS.size])
                for i in range(n)))
            maps = decode_chunk(view[end:])
        except (ParameterError, struct.error) as exc:
            raise CorruptChunkError(f"corrupt bigcomp noise maps: {exc}") from exc
        if maps.ndim != 3 or maps.shape[0] != 2 or maps.dtype != np.uint16:
            raise CorruptChunkError(f"corrupt bigcomp noise maps: shape {maps.shape}")
        if int(maps[0].max(initial=0)) >= n:
            raise CorruptChunkError("corrupt bigcomp noise maps: class index out of range")
        return cls(cameras, maps[0].copy(), maps[1].copy())


@dataclass(frozen=True)
class ChunkPixelModel:
    """Noise classes and maps of one chunk's planes, with its alignment of the classes."""

    maps: NoiseMaps
    origin: tuple[int, int]
    align: np.ndarray
    cls: np.ndarray
    offsets: np.ndarray
    inline: bool

    @property
    def cameras(self) -> tuple[CameraModel, ...]:
        return self.maps.cameras

    def tables(self, q: float, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """``bins`` (classes, 2·top+1) int32, ``rec`` (classes, most bins) int32, ``nbins``
        (int64) and ``base`` (= top, the table index of relative value 0)."""
        top = int(np.iinfo(dtype).max)
        return (*_stacked_tables(self.cameras, float(q), top), top)

    def index_range(self, q: float, dtype) -> tuple[int, int]:
        """Range ``[lo, hi]`` of the aligned bin indices."""
        top = int(np.iinfo(dtype).max)
        hi = max(int(a) + class_table(cam, float(q), top)[1].size - 1
                 for cam, a in zip(self.cameras, self.align, strict=True))
        return 0, max(hi, 0)

    def to_bytes(self) -> bytes:
        """The chunk's model section: kind (0 inline, 1 referenced), class count and
        alignments, then the maps' blob (inline) or their digest, the window's origin and the
        sensor's shape (referenced)."""
        n = len(self.cameras)
        head = _KIND.pack(0 if self.inline else 1) + _COUNT.pack(n) + self.align.astype(
            "<i4").tobytes()
        if self.inline:
            return head + self.maps.blob
        return head + self.maps.digest + _REF.pack(*self.origin, *self.maps.shape)


@functools.lru_cache(maxsize=128)
def class_table(camera: CameraModel, q: float, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Bins of the relative values ``−top..top`` (int32, index ``v + top``) and each bin's
    reconstruction (int32 relative values) for one class."""
    values = np.arange(-top, top + 1, dtype=np.float64)
    y = camera.forward(values)
    bins, rec_index = greedy_bins(y, q / 2.0)
    err = np.abs(y[rec_index[bins]] - y).max()
    if err > q / 2 * (1 + 1e-12):  # the construction guarantees it; a bug otherwise
        raise AssertionError(f"class table violates its bound: {err} > {q / 2}")
    bins, rec = bins.astype(np.int32), (rec_index - top).astype(np.int32)
    bins.setflags(write=False)
    rec.setflags(write=False)
    return bins, rec


@functools.lru_cache(maxsize=8)
def _stacked_tables(cameras: tuple[CameraModel, ...], q: float, top: int
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = [class_table(cam, q, top) for cam in cameras]
    bins = np.stack([b for b, _ in parts])
    rec = np.zeros((len(parts), max(r.size for _, r in parts)), np.int32)
    for i, (_, r) in enumerate(parts):
        rec[i, : r.size] = r
    nbins = np.array([r.size for _, r in parts], np.int64)
    for a in (bins, rec, nbins):
        a.setflags(write=False)
    return bins, rec, nbins


def _grid(values: np.ndarray, step: float) -> np.ndarray:
    """Index ``j`` of the largest ``step**j <= value`` (exactly, despite rounding in log)."""
    j = np.floor(np.log(values) / math.log(step)).astype(np.int64)
    j -= (step ** j.astype(np.float64)) > values  # log rounding up
    j += (step ** (j + 1).astype(np.float64)) <= values  # log rounding down
    return j


def noise_maps(camera: PixelCamera, dtype) -> NoiseMaps:
    """The noise classes and maps of a sensor, for data of integer ``dtype``.

    Raises
    ------
    ParameterError
        An offset lies above the dtype's range (the maps belong to other data).
    """
    top = int(np.iinfo(dtype).max)
    if camera.offset.max() > top + CLASS_OFFSET:
        raise ParameterError(
            f"camera offset map reaches {camera.offset.max():.6g} ADU, above the largest "
            f"{np.dtype(dtype)} value {top}: the maps do not belong to this data (check their "
            "units)")
    offsets = np.clip(np.rint(camera.offset), 0, top).astype(np.uint16)
    k_const = 0.375 * camera.gain**2 + camera.variance
    k_step, g_step = K_STEP, GAIN_STEP
    while True:  # coarser grids until the classes fit (8 squarings reach any real sensor's)
        jk, jg = _grid(k_const, k_step), _grid(camera.gain, g_step)
        keys, cls = np.unique(np.stack([jk.ravel(), jg.ravel()], 1), axis=0, return_inverse=True)
        if len(keys) <= MAX_CLASSES:
            break
        k_step, g_step = k_step * k_step, g_step * g_step  # powers of the finer grids still
    # each class's model: the smallest gain and constant term of its pixels (exactly
    # conservative for every one of them, and tighter than the grid's corner)
    n = len(keys)
    gain = np.full(n, np.inf)
    np.minimum.at(gain, cls, camera.gain.ravel())
    k_min = np.full(n, np.inf)
    np.minimum.at(k_min, cls, k_const.ravel())
    cameras = tuple(CameraModel(g, CLASS_OFFSET, math.sqrt(max(k / g**2 - 0.375, 0.0)))
                    for g, k in zip(gain, k_min, strict=True))
    return NoiseMaps(cameras, cls.reshape(camera.shape).astype(np.uint16), offsets)


def build_model(maps: NoiseMaps, data: np.ndarray, q: float, *,
                origin: tuple[int, int] = (0, 0), inline: bool = False) -> ChunkPixelModel:
    """The model a chunk of integer ``data`` (planes from ``origin`` of the sensor) is coded
    with: the window of the maps and the classes' alignment at the chunk's level."""
    rows, cols = data.shape[-2:]
    if not inline and (origin[0] >= maps.shape[0] or origin[1] >= maps.shape[1]):
        raise ParameterError(f"chunk origin {origin} lies outside the camera maps' {maps.shape}")
    cls, offsets = maps.window(origin, (rows, cols))
    align = _alignment(maps.cameras, cls, offsets, data, q, int(np.iinfo(data.dtype).max))
    return ChunkPixelModel(maps, tuple(map(int, origin)), align, cls, offsets, inline)


def _alignment(cameras, cls, offsets, data, q: float, top: int) -> np.ndarray:
    """Shifts making every class's bin index agree with the most common class's at the
    chunk's median level above the offsets, and the chunk's smallest index 0 (small indices
    keep the predictor fit exact)."""
    plane = data.reshape(-1, *cls.shape)
    sample = plane[:: max(1, plane.shape[0] // 4)]
    level = int(np.clip(np.median(sample.astype(np.int64) - offsets), -top, top))
    bins = [class_table(c, float(q), top)[0] for c in cameras]
    at = np.array([b[level + top] for b in bins], np.int64)
    ref = at[np.bincount(cls.ravel(), minlength=len(cameras)).argmax()]
    shift = ref - at
    # the smallest relative value of each class's pixels, and its index
    lowest = np.full(len(cameras), top, np.int64)
    np.minimum.at(lowest, cls.ravel(), (plane.min(axis=0).astype(np.int64) - offsets).ravel())
    present = np.bincount(cls.ravel(), minlength=len(cameras)) > 0
    first = min(int(b[v + top]) + int(s) for b, v, s, p in zip(bins, lowest, shift, present,
                                                                strict=True) if p)
    return shift - first


def parse_model(buf, shape: tuple[int, ...], dtype, q: float,
                maps: NoiseMaps | None = None) -> ChunkPixelModel:
    """Read and check a chunk's model section (``shape`` and ``dtype`` of the chunk); a
    referenced model needs the ``maps`` it names.

    Raises
    ------
    CorruptChunkError
        Anything in it no encoder writes.
    MissingNoiseMapsError
        The chunk refers to maps that were not given.
    ChunkMismatchError
        The chunk refers to other maps than the given ones.
    """
    view = memoryview(buf)
    try:
        (kind,) = _KIND.unpack(view[: _KIND.size])
        (n,) = _COUNT.unpack(view[_KIND.size : _KIND.size + _COUNT.size])
        pos = _KIND.size + _COUNT.size
        if kind not in (0, 1) or not 1 <= n <= MAX_CLASSES:
            raise CorruptChunkError(f"corrupt bigcomp chunk: noise model kind {kind}, {n} classes")
        align = np.frombuffer(view[pos : pos + 4 * n], "<i4").astype(np.int64)
        pos += 4 * n
        if align.size != n:
            raise struct.error("alignments cut short")
    except struct.error as exc:
        raise CorruptChunkError(f"corrupt bigcomp chunk: noise model: {exc}") from exc
    rows, cols = (tuple(shape[-2:]) if len(shape) >= 2 else (1, shape[0]) if shape else (1, 1))
    if kind == 0:
        maps = NoiseMaps.from_blob(view[pos:])
        origin = (0, 0)
        if maps.shape != (rows, cols):
            raise CorruptChunkError(f"corrupt bigcomp chunk: noise maps of {maps.shape} for "
                                    f"planes of {rows} x {cols}")
    else:
        if len(view) != pos + 8 + _REF.size:
            raise CorruptChunkError("corrupt bigcomp chunk: noise model reference")
        digest = bytes(view[pos : pos + 8])
        r0, c0, h, w = _REF.unpack(view[pos + 8 :])
        origin = (r0, c0)
        if maps is None:
            raise MissingNoiseMapsError(
                "this chunk was coded with per-pixel camera maps kept once per array (in its "
                "codec configuration, 'noise_maps'): read it through its array (zarr.open, "
                "bigcomp.open) or pass maps= (bigcomp.pixelmodel.NoiseMaps)")
        if digest != maps.digest or (h, w) != maps.shape:
            raise ChunkMismatchError(
                f"bigcomp chunk was coded with other camera maps (digest {digest.hex()}, "
                f"{h} x {w}) than this array's ({maps.digest.hex()}, {maps.shape[0]} x "
                f"{maps.shape[1]}): it was copied from another array; restore it from a backup")
        if r0 >= h or c0 >= w:
            raise CorruptChunkError(f"corrupt bigcomp chunk: window origin {origin} outside "
                                    f"the maps' {h} x {w}")
    if len(maps.cameras) != n:
        raise CorruptChunkError(f"corrupt bigcomp chunk: {n} alignments for "
                                f"{len(maps.cameras)} noise classes")
    top = int(np.iinfo(dtype).max)
    if (np.abs(align) > 1 << 30).any():
        raise CorruptChunkError("corrupt bigcomp chunk: noise class alignment out of range")
    cls, offsets = maps.window(origin, (rows, cols))
    if int(offsets.max(initial=0)) > top:
        raise CorruptChunkError("corrupt bigcomp chunk: noise map offsets out of range")
    model = ChunkPixelModel(maps, origin, align, cls, offsets, kind == 0)
    if model.index_range(q, dtype)[1] >= 1 << 31:
        raise CorruptChunkError("corrupt bigcomp chunk: noise class bins out of range")
    return model
