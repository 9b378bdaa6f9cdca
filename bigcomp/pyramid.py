"""Multiscale pyramid: 2x mean-downsampled levels, built in the compress graph, each with the
camera model of its own noise.

Level ``k`` (stored at path ``"k"`` beside level ``"0"``) is the mean of the level-0 pixels in
its footprint, ``factors[i]`` pixels along axis ``i``, rounded to the nearest integer for
integer data (half to even) and kept in the source's dtype. ``y`` and ``x`` are halved at every
level; ``z`` too when the voxel is near isotropic, which needs the physical spacing of ``z``,
``y`` and ``x`` (evenly spaced coordinates; without them only ``y`` and ``x``). Levels are
added until one fits in a single chunk along ``y`` and ``x``. Edge pixels of an odd-sized axis
average the pixels there are (level shapes are ``ceil(shape / factor)``).

**Noise of a level.** A level-0 pixel holds ``x = g·e + o + g·r`` ADU, ``e`` Poisson
photo-electrons and ``r`` Gaussian read noise of ``σ_r`` electrons, so its variance is
``g·(μ − o) + g²σ_r²``. The mean of ``n`` independent pixels has variance::

    Var(x̄) = (1/n²) Σ [g·(μ_i − o) + g²σ_r²] = (g/n)·(μ̄ − o) + g²σ_r²/n

and rounding it to an integer adds ``1/12`` ADU² (a uniform error of one ADU's width). That is
the variance of a camera with gain ``g' = g/n``, offset ``o' = o`` and read noise ``σ_r'`` with
``g'²σ_r'² = g²σ_r²/n + 1/12``::

    g' = g / n,   o' = o,   σ_r' = sqrt(n·σ_r² + n² / (12·g²))   (electrons of that camera)

(``(x̄ − o)/g'`` is the *sum* of the ``n`` pixels' electrons, which is exactly Poisson; float32
data is not rounded and has no ``1/12`` term.) Each level is quantised with this camera, so its
pixels come back within ``q/2`` of the *level's own* noise σ — the σ of the stored (averaged and
rounded) value, not of a raw camera pixel. Edge pixels that average fewer pixels are noisier
than the model says, which only makes the bound conservative there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ParameterError
from .noise import MAX_READ_NOISE, CameraModel

if TYPE_CHECKING:
    import dask.array

    from .io import Source
    from .pixelcamera import PixelCamera
    from .store import ChunkWriter

__all__ = ["Level", "LevelJob", "LevelWriter", "block_sum", "downsample", "level_camera",
           "level_coords", "level_jobs", "level_sums", "open_level", "plan", "plan_source"]

_SPACE_UNITS = {"angstrom": 1e-10, "nanometer": 1e-9, "micrometer": 1e-6, "millimeter": 1e-3,
                "centimeter": 1e-2, "meter": 1.0}
_NEAR_ISOTROPIC = math.sqrt(2.0)  # z is halved when its voxel is below √2 × the lateral one


@dataclass(frozen=True)
class Level:
    """One downsampled level of a store.

    Attributes
    ----------
    path : str
        Array path in the store (``"1"``, ``"2"``, ...).
    factors : tuple of int
        Level-0 pixels per level pixel along each axis (cumulative).
    shape, chunks : tuple of int
        Array shape (``ceil(shape0 / factors)``, or an input level's own shape) and chunk shape
        (the store's chunks, clipped to the shape).
    """

    path: str
    factors: tuple[int, ...]
    shape: tuple[int, ...]
    chunks: tuple[int, ...]

    @property
    def count(self) -> int:
        """Level-0 pixels averaged into one (interior) level pixel."""
        return math.prod(self.factors)

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "factors": list(self.factors), "shape": list(self.shape),
                "chunks": list(self.chunks)}


def _ceil_shape(shape, factors) -> tuple[int, ...]:
    return tuple(-(-s // f) for s, f in zip(shape, factors, strict=True))


def _level(k: int, factors, shape, chunks) -> Level:
    return Level(str(k), tuple(int(f) for f in factors), tuple(int(s) for s in shape),
                 tuple(max(1, min(int(c), int(s))) for c, s in zip(chunks, shape, strict=True)))


# ------------------------------------------------------------------------------ planning
def spacing(dims, coords: dict) -> dict[str, float] | None:
    """Physical spacing of the ``z``, ``y`` and ``x`` axes from evenly spaced numeric
    coordinates (in metres when all three carry an NGFF space unit), or ``None`` when any is
    unknown or their units cannot be compared."""
    out, units = {}, []
    for d in dims:
        if d.lower() not in ("z", "y", "x"):
            continue
        c = coords.get(d)
        if c is None or getattr(c, "ndim", 0) != 1 or c.size < 2 or c.dtype.kind not in "iuf":
            return None
        v = np.asarray(c.values, np.float64)
        step = np.diff(v)
        if not (np.allclose(step, step[0]) and step[0] > 0):
            return None
        out[d.lower()] = float(step[0])
        units.append(c.attrs.get("units"))
    if set(out) != {"z", "y", "x"}:
        return None
    if all(u is None for u in units):
        return out  # same (unnamed) unit: comparable
    if not all(u in _SPACE_UNITS for u in units):
        return None
    return {d: s * _SPACE_UNITS[u] for (d, s), u in zip(out.items(), units, strict=True)}


def plan(shape, chunks, dims, coords: dict | None = None) -> list[Level]:
    """The levels of a new pyramid: ``y`` and ``x`` halved per level, ``z`` when near
    isotropic, until a level fits in one chunk along ``y`` and ``x``.

    ``z`` is halved at a level when its current voxel is smaller than √2 × the current lateral
    voxel (so halving it brings the voxel closer to a cube); that needs the spacing of ``z``,
    ``y`` and ``x`` from ``coords`` (:func:`spacing`). Axes of length 1 are never halved.

    Returns
    -------
    list of Level
        Empty when the array has no ``y`` and ``x`` axes or level 0 already fits in a chunk.

    Examples
    --------
    >>> [lv.shape for lv in plan((6, 70, 90), (4, 32, 32), ("z", "y", "x"))]
    [(6, 35, 45), (6, 18, 23)]
    """
    shape, chunks = tuple(shape), tuple(chunks)
    index = {d.lower(): i for i, d in enumerate(dims)}
    if "y" not in index or "x" not in index:
        return []
    lateral = (index["y"], index["x"])
    iz = index.get("z")
    sp = spacing(dims, coords or {}) if iz is not None else None
    factors = [1] * len(shape)
    cur = list(shape)
    levels: list[Level] = []
    while any(cur[i] > chunks[i] for i in lateral) and any(cur[i] > 1 for i in lateral):
        step = [1] * len(shape)
        for i in lateral:
            step[i] = 2 if cur[i] > 1 else 1
        if sp is not None and cur[iz] > 1:
            now = min(sp["y"] * factors[index["y"]], sp["x"] * factors[index["x"]])
            if sp["z"] * factors[iz] < _NEAR_ISOTROPIC * now:
                step[iz] = 2
        factors = [f * s for f, s in zip(factors, step, strict=True)]
        cur = list(_ceil_shape(shape, factors))
        levels.append(_level(len(levels) + 1, factors, cur, chunks))
    return levels


def plan_source(src: Source, chunks, dataset: str | None = None) -> list[Level]:
    """The levels to write for ``src``: an OME-Zarr input's own levels where they are integer
    mean-style reductions of level 0 (see :func:`input_levels`), else :func:`plan`."""
    kept = input_levels(src, chunks, dataset) if src.kind == "ome-zarr" else None
    return kept if kept is not None else plan(src.shape, chunks, src.dims, src.coords)


def input_levels(src: Source, chunks, dataset: str | None = None) -> list[Level] | None:
    """The levels of a multiscale OME-Zarr input, or ``None`` when it has one level or its
    levels are not integer reductions of level 0 that each divide the next.

    A level's factor along an axis is the ratio of its scale to level 0's (or, without scales,
    of the shapes); its shape must be ``floor`` or ``ceil`` of level 0's over the factor. The
    levels are recomputed from level 0 with these factors and shapes (see docs/pipeline.md).
    """
    import zarr

    try:
        group = zarr.open_group(src.path, path=dataset or "", mode="r")
        attrs = group.attrs.asdict()
        datasets = attrs.get("ome", attrs)["multiscales"][0]["datasets"]
        shapes = [tuple(group[d["path"]].shape) for d in datasets]
    except (KeyError, IndexError, TypeError, ValueError, OSError):
        return None
    shape0 = tuple(src.shape)
    if len(datasets) < 2 or shapes[0] != shape0:
        return None
    scale0 = _scale(datasets[0], len(shape0))
    levels: list[Level] = []
    prev = (1,) * len(shape0)
    for d, shp in zip(datasets[1:], shapes[1:], strict=True):
        if len(shp) != len(shape0):
            return None
        scale = _scale(d, len(shape0))
        factors = []
        for i, (s0, n0, n) in enumerate(zip(shape0, scale0, shp, strict=True)):
            by_scale = scale[i] / n0 if scale[i] and n0 else 0.0
            by_shape = s0 / n if n else 0.0
            f = next((round(r) for r in (by_scale, by_shape)
                      if r >= 0.999 and abs(r - round(r)) < 1e-3 * r
                      and n in (s0 // round(r), -(-s0 // round(r)))), None)
            if f is None or f % prev[i]:
                return None
            factors.append(f)
        levels.append(_level(len(levels) + 1, factors, shp, chunks))
        prev = tuple(factors)
    return levels


def _scale(dataset: dict, ndim: int) -> list[float]:
    for t in dataset.get("coordinateTransformations", []):
        if t.get("type") == "scale" and len(t.get("scale", [])) == ndim:
            return [float(s) for s in t["scale"]]
    return [0.0] * ndim


# ------------------------------------------------------------------------------ noise
def level_camera(camera: CameraModel, count: int, dtype) -> CameraModel:
    """The camera model of the mean of ``count`` pixels of ``camera`` (see the module notes).

    Integer data is rounded to the nearest integer, which adds 1/12 ADU² of variance.

    Examples
    --------
    >>> cam = level_camera(CameraModel(2.0, 100.0, 1.6), 4, "uint16")
    >>> cam.gain, cam.offset, round(cam.read_noise, 4)
    (0.5, 100.0, 3.2517)
    >>> round(float(cam.sigma(100.0) ** 2), 4)  # (2·1.6)²/4 + 1/12 ADU²
    2.6433
    """
    if count < 1:
        raise ParameterError(f"a level averages at least one pixel, got {count}")
    rounding = 1.0 / 12.0 if np.dtype(dtype).kind in "iu" else 0.0
    gain = camera.gain / count
    read_noise = math.sqrt(count * camera.read_noise**2 + rounding / gain**2)
    # beyond the range CameraModel accepts (deep levels of a low-gain camera) a smaller σ is
    # used: tighter bins, so the bound still holds in units of the true σ
    return CameraModel(gain, camera.offset, min(read_noise, MAX_READ_NOISE))


def level_pixel_camera(camera: PixelCamera, factors_yx: tuple[int, int], count: int,
                       dtype) -> PixelCamera:
    """The per-pixel camera (:class:`~bigcomp.pixelcamera.PixelCamera`) of a level whose
    pixels average ``count`` pixels, ``factors_yx`` of them along the sensor's rows and columns.

    Offset and read-noise variance maps are averaged over each footprint, the variance divided
    by ``count`` (plus 1/12 ADU² for integer data) and the gain taken as the footprint's mean
    over ``count``: exact for a uniform gain, the usual sCMOS case (gain varies by a few %).
    """
    from .pixelcamera import PixelCamera

    fy, fx = factors_yx

    def mean(a: np.ndarray) -> np.ndarray:
        s = block_sum(a, (fy, fx))
        n = block_sum(np.ones_like(a), (fy, fx))
        return s / n

    rounding = 1.0 / 12.0 if np.dtype(dtype).kind in "iu" else 0.0
    return PixelCamera(mean(camera.offset), mean(camera.variance) / count + rounding,
                       mean(camera.gain) / count, camera.source)


# ------------------------------------------------------------------------------ data
def block_sum(block, steps, dtype=np.float64) -> np.ndarray:
    """Sums of ``steps[i]`` consecutive elements along each axis ``i``, in ``dtype`` (a
    shorter last run sums what there is).

    Examples
    --------
    >>> block_sum(np.arange(5), (2,))
    array([1., 5., 4.])
    """
    a = np.asarray(block)
    for ax in reversed(range(a.ndim)):  # the contiguous axis first: the rest reads less
        r, n = steps[ax], a.shape[ax]
        if r == 1 or n == 0:
            continue
        if n % r:  # the last run is short: pad it with zeros
            a = np.pad(a, [(0, r - n % r) if i == ax else (0, 0) for i in range(a.ndim)])
        parts = [a[(slice(None),) * ax + (slice(j, None, r),)] for j in range(r)]
        out = np.add(parts[0], parts[1], dtype=dtype)
        for p in parts[2:]:
            np.add(out, p, out=out)
        a = out
    return a.astype(dtype, copy=False)


def sum_dtype(dtype, count: int) -> np.dtype:
    """The dtype that holds sums of ``count`` values of ``dtype`` exactly: uint32 while it
    can (half the memory traffic of float64), else float64 (exact for integers to 2⁵³)."""
    dt = np.dtype(dtype)
    if dt.kind in "iu" and count * np.iinfo(dt).max < 2**32:
        return np.dtype(np.uint32)
    return np.dtype(np.float64)


def _counts(start, shape, factors, full_shape) -> np.ndarray | int:
    """Level-0 pixels in each level pixel of a block (outer product over axes; one number
    when they are all equal, as inside the array)."""
    per_axis = []
    for s0, n, f, size in zip(start, shape, factors, full_shape, strict=True):
        j = np.arange(s0, s0 + n)
        per_axis.append(np.minimum((j + 1) * f, size) - j * f)
    if all(c.size == 0 or (c == c[0]).all() for c in per_axis):
        return math.prod(int(c[0]) if c.size else 1 for c in per_axis)
    total = np.ones((1,) * len(shape))
    for ax, c in enumerate(per_axis):
        total = total * c.reshape((1,) * ax + (c.size,) + (1,) * (len(shape) - ax - 1))
    return total


def to_level_dtype(sums: np.ndarray, counts: np.ndarray | int, dtype) -> np.ndarray:
    """Means ``sums / counts`` in ``dtype``: rounded half to even for integers."""
    dt = np.dtype(dtype)
    if (isinstance(counts, int) and counts & (counts - 1) == 0 and dt.kind in "iu"
            and sums.dtype == np.uint32 and counts * np.iinfo(dt).max < 2**24):
        # float32 is exact here (sums below 2²⁴, a power-of-2 divisor) and half the traffic
        mean32 = sums.astype(np.float32)
        mean32 *= np.float32(1.0 / counts)
        return np.rint(mean32, out=mean32).astype(dt)
    mean = np.divide(sums, counts, dtype=np.float64)
    if dt.kind in "iu":  # a mean lies within the dtype's range: no clipping needed
        return np.rint(mean, out=mean).astype(dt)
    return mean.astype(dt)


def downsample(data, factors, dtype=None) -> np.ndarray:
    """The exact level of an in-memory array: the mean of each ``factors`` footprint (edge
    footprints: the pixels there are), rounded half to even for integer data.

    Examples
    --------
    >>> downsample(np.array([[1, 2, 3], [3, 5, 7]], "uint16"), (2, 2))
    array([[3, 5]], dtype=uint16)
    """
    data = np.asarray(data)
    counts = _counts((0,) * data.ndim, _ceil_shape(data.shape, factors), factors, data.shape)
    return to_level_dtype(block_sum(data, factors), counts, dtype or data.dtype)


def level_sums(x: dask.array.Array, levels: list[Level]) -> list[dask.array.Array]:
    """Lazy sums of each level's footprints (uint32 or float64, :func:`sum_dtype`), built from
    the level-0 blocks of ``x``.

    Level ``k`` is reduced from level ``k − 1``'s sums block by block (:func:`block_sum`) and
    the pieces are concatenated into the level's chunks, so every level derives from the same
    source blocks: computed with the level-0 writes in one graph, the source is read once.
    Sums of integers are exact, so no rounding accumulates across levels.
    """
    import dask.array as da
    from dask.base import tokenize

    out = []
    prev, prev_f = x, (1,) * x.ndim
    for lv in levels:
        steps = tuple(f // p for f, p in zip(lv.factors, prev_f, strict=True))
        # each block must hold whole runs of `steps`: merge blocks where they do not
        merge = {ax: r * max(prev.chunks[ax]) for ax, r in enumerate(steps)
                 if r > 1 and any(c % r for c in prev.chunks[ax][:-1])}
        if merge:
            prev = prev.rechunk({**dict(enumerate(prev.chunksize)), **merge})
        chunks = tuple(tuple(-(-c // r) for c in cs) for cs, r in zip(prev.chunks, steps,
                                                                      strict=True))
        dt = sum_dtype(x.dtype, lv.count)
        pieces = da.map_blocks(block_sum, prev, steps, dt, chunks=chunks, dtype=dt,
                               meta=np.empty((0,) * x.ndim, dt),
                               name=f"bigcomp-level{lv.path}-" + tokenize(prev.name, steps, dt))
        full = _ceil_shape(x.shape, lv.factors)
        # the level's chunks; an axis the level holds in one chunk keeps its whole (ceil) length
        sums = pieces.rechunk(tuple(f if c >= n else c for c, n, f in
                                    zip(lv.chunks, lv.shape, full, strict=True)))
        out.append(sums)
        prev, prev_f = sums, lv.factors
    return out


@dataclass(frozen=True)
class LevelWriter:
    """Turn a block of level sums into the level's dtype and write it (picklable).

    Parameters
    ----------
    writer : ChunkWriter
        The level array's writer (its shape, chunks and camera are the level's).
    level : Level
    source_shape : tuple of int
        Level 0's shape (for the pixel counts at the edges).
    """

    writer: ChunkWriter
    level: Level
    source_shape: tuple[int, ...]

    def __call__(self, sums: np.ndarray, idx: tuple[int, ...]) -> int:
        start = tuple(i * c for i, c in zip(idx, self.level.chunks, strict=True))
        keep = tuple(slice(0, max(0, min(n, s - a))) for n, s, a in
                     zip(np.shape(sums), self.level.shape, start, strict=True))
        sums = np.asarray(sums)[keep]
        counts = _counts(start, sums.shape, self.level.factors, self.source_shape)
        return self.writer(to_level_dtype(sums, counts, self.writer.dtype), idx)

    def scan(self, threads: int | None = None) -> set[tuple[int, ...]]:
        return self.writer.scan(threads)

    def stored_bytes(self) -> int:
        return self.writer.stored_bytes()

    @property
    def numblocks(self) -> tuple[int, ...]:
        return tuple(-(-s // c) for s, c in zip(self.level.shape, self.level.chunks,
                                                strict=True))


def level_coords(coords: dict, dims, level: Level) -> dict:
    """Coordinates of a level: level 0's along axes it keeps, the means over each footprint
    of 1-D numeric ones along axes it reduces (the footprint centres; others dropped)."""
    import xarray as xr

    out = {}
    reduced = {d for d, f in zip(dims, level.factors, strict=True) if f > 1}
    for name, c in coords.items():
        var = getattr(c, "variable", c)
        if not set(var.dims) & reduced:
            out[name] = var
        elif var.ndim == 1 and var.dtype.kind in "iuf":
            ax = list(dims).index(var.dims[0])
            vals = downsample(np.asarray(var.values, np.float64), (level.factors[ax],),
                              np.float64)[: level.shape[ax]]
            out[name] = xr.Variable(var.dims, vals, var.attrs)
    return out


@dataclass(frozen=True)
class LevelJob:
    """What :func:`bigcomp.compress` needs to write one level: its camera, serializer,
    error bound and writer."""

    level: Level
    camera: CameraModel | None
    serializer: Any
    error_bound: float
    writer: LevelWriter

    def record(self) -> dict[str, Any]:
        """The level's entry in the store's ``bigcomp`` metadata (``levels``)."""
        return {**self.level.to_dict(),
                "camera": self.camera.to_dict() if self.camera else None,
                "error_bound": float(self.error_bound), "codec": self.serializer.to_dict()}

    def array(self) -> dict[str, Any]:
        """The level's array for :func:`bigcomp.store.create_store`."""
        return {"path": self.level.path, "shape": self.level.shape,
                "chunks": self.level.chunks, "serializer": self.serializer}


def level_jobs(levels: list[Level], dest: str, shape, dtype, q: float,
               camera: CameraModel | None, order: str, coder: str) -> list[LevelJob]:
    """One :class:`LevelJob` per level of a store at ``dest`` whose level 0 has ``shape`` and
    ``dtype``; ``q = 0`` (lossless) stores the levels exactly."""
    import os

    from . import zarr3
    from .chunk import error_bound
    from .store import ChunkWriter

    out = []
    for lv in levels:
        cam = level_camera(camera, lv.count, dtype) if q and camera is not None else None
        serializer = (zarr3.WNL(q=float(q), order=order, coder=coder, **cam.to_dict()) if cam
                      else zarr3.Lossless(coder=coder))
        bound = error_bound(float(q), cam, dtype, order) if cam else 0.0
        writer = ChunkWriter(os.path.join(os.path.abspath(dest), lv.path), lv.shape, lv.chunks,
                             np.dtype(dtype).name, float(q) if cam else 0.0,
                             cam.to_dict() if cam else None, order, coder)
        out.append(LevelJob(lv, cam, serializer, float(bound),
                            LevelWriter(writer, lv, tuple(shape))))
    return out


def open_level(store, base, meta: dict, level: int):
    """Level ``level`` of an open store as a DataArray like ``base`` (its level 0), and the
    ``bigcomp`` metadata of that level: shape, chunks, camera, error bound and codec of the
    level's array, ``"level"`` and ``"array"`` its number and path."""
    import xarray as xr

    rec = meta["levels"][level - 1]
    lv = Level(rec["path"], tuple(rec["factors"]), tuple(rec["shape"]), tuple(rec["chunks"]))
    reduced = {d for d, f in zip(base.dims, lv.factors, strict=True) if f > 1}
    drop = [meta.get("array", "0"), *(r["path"] for r in meta["levels"] if r is not rec),
            *(k for k, c in base.coords.items() if set(c.dims) & reduced)]
    ds = xr.open_zarr(store, consolidated=False, zarr_format=3, chunks={},
                      mask_and_scale=False, drop_variables=drop)
    arr = ds[lv.path].drop_vars(list(ds[lv.path].coords))
    arr = arr.assign_coords(level_coords(dict(base.coords), base.dims, lv))
    arr.attrs = dict(base.attrs)  # the source's attributes live on level 0's array
    job = {**meta["job"], "shape": list(lv.shape), "chunks": list(lv.chunks),
           "camera": rec["camera"]}
    return arr, {**meta, "job": job, "level": level, "array": lv.path,
                 "error_bound": rec["error_bound"], "codec": rec["codec"]}
