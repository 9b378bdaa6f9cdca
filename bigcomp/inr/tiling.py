"""Tile grid, empty-tile test and saliency for the INR mode (numpy only).

The array is cut into fixed tiles (the last ones may be shorter). Every tile is either *empty*
(stored as its mean) or *modelled* (one small SIREN). The network's input coordinates are the
tile axes longer than 1, each mapped to ``[-1, 1]`` over the *full* tile length, so an edge tile
uses the same coordinates as a full tile and only its valid part is trained and decoded.

Empty tile: with the local mean ``m`` (a 3-tap box filter along every tile axis) and the pixel
noise ``σ`` (the camera model at ``m``, or without one a robust estimate from the tile's
neighbour differences), the *structure SNR* is ``|m − mean(tile)| / σ``. A tile whose 99.9th
percentile structure SNR is below ``EMPTY_SNR`` (3) holds nothing beyond its mean that stands
out of the noise, so it is stored as the mean alone. (The plain SNR ``(x − offset) / σ`` of a
single pixel would call a pure-noise tile non-empty — its 99.9th percentile is 3.09 — and a flat
bright tile non-empty although its mean says everything.)

Saliency (where training points are drawn from): structure SNR plus the gradient magnitude of
``m`` in noise units, plus a floor of 0.1 so that the background is still sampled.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ParameterError

__all__ = ["EMPTY_SNR", "TileGrid", "default_tile", "tile_features"]

EMPTY_SNR = 3.0
EMPTY_PERCENTILE = 99.9


def default_tile(shape: Sequence[int]) -> tuple[int, ...]:
    """Default tile: 256² for 2-D, ``32×128×128`` over the last three axes otherwise.

    Leading axes beyond three (channels, time of 5-D data) get tiles of 1; a ``(t, y, x)``
    series has ``t`` inside the tile. Clipped to the array's shape.

    Examples
    --------
    >>> default_tile((5, 256, 256)), default_tile((2, 3, 64, 512, 512)), default_tile((100, 90))
    ((5, 128, 128), (1, 1, 32, 128, 128), (100, 90))
    """
    nd = len(shape)
    if nd == 1:
        base: tuple[int, ...] = (65536,)
    elif nd == 2:
        base = (256, 256)
    else:
        base = (1,) * (nd - 3) + (32, 128, 128)
    return tuple(min(int(b), int(s)) for b, s in zip(base, shape, strict=True))


@dataclass(frozen=True)
class TileGrid:
    """Regular tiling of ``shape`` with tiles of ``tile`` (C order over the tile grid)."""

    shape: tuple[int, ...]
    tile: tuple[int, ...]

    @classmethod
    def create(cls, shape: Sequence[int], tile: Sequence[int] | None) -> TileGrid:
        shp = tuple(int(s) for s in shape)
        if tile is None:
            t = default_tile(shp)
        else:
            t = tuple(int(v) for v in tile)
            if len(t) != len(shp):
                raise ParameterError(
                    f"tile {tuple(tile)} has {len(t)} axes but the data has {len(shp)} "
                    f"(shape {shp}); give one tile length per axis or tile=None")
            if any(v < 1 for v in t):
                raise ParameterError(f"tile lengths must be >= 1, got {t}")
            if any(v > s for v, s in zip(t, shp, strict=True)):
                raise ParameterError(
                    f"tile {t} is larger than the data {shp} along some axis; use a tile no "
                    f"larger than the data (or tile=None for the default {default_tile(shp)})")
        if not any(v > 1 for v in t):
            raise ParameterError(f"tile {t} has no axis longer than 1; nothing to model")
        return cls(shp, t)

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(-(-s // t) for s, t in zip(self.shape, self.tile, strict=True))

    @property
    def ntiles(self) -> int:
        return math.prod(self.counts)

    @property
    def axes(self) -> tuple[int, ...]:
        """The tile axes longer than 1: the network's input coordinates."""
        return tuple(a for a, t in enumerate(self.tile) if t > 1)

    @property
    def model_shape(self) -> tuple[int, ...]:
        """The full tile restricted to :attr:`axes` (what one network covers)."""
        return tuple(self.tile[a] for a in self.axes)

    def slices(self, i: int) -> tuple[slice, ...]:
        idx = np.unravel_index(int(i), self.counts)
        return tuple(slice(k * t, min((k + 1) * t, s))
                     for k, t, s in zip(idx, self.tile, self.shape, strict=True))

    def valid(self, i: int) -> tuple[int, ...]:
        """Valid lengths of tile ``i`` along :attr:`axes`."""
        sl = self.slices(i)
        return tuple(sl[a].stop - sl[a].start for a in self.axes)

    def chunks(self) -> tuple[tuple[int, ...], ...]:
        """dask chunks: one chunk per tile."""
        return tuple(tuple(min(t, s - k * t) for k in range(-(-s // t)))
                     for s, t in zip(self.shape, self.tile, strict=True))


def coordinates(model_shape: Sequence[int]) -> list[np.ndarray]:
    """Per-axis float32 coordinates in ``[-1, 1]`` over the full tile length."""
    return [np.linspace(-1.0, 1.0, n, dtype=np.float64).astype(np.float32)
            for n in model_shape]


def _box3(x: np.ndarray) -> np.ndarray:
    """3-tap mean along every axis longer than 2 (edges replicated)."""
    out = x.astype(np.float64)
    for ax in range(out.ndim):
        if out.shape[ax] < 3:
            continue
        p = np.pad(out, [(1, 1) if a == ax else (0, 0) for a in range(out.ndim)], mode="edge")
        n = out.shape[ax]
        take = [slice(None)] * out.ndim
        acc = np.zeros_like(out)
        for k in range(3):
            take[ax] = slice(k, k + n)
            acc += p[tuple(take)]
        out = acc / 3.0
    return out


def _robust_sigma(x: np.ndarray) -> float:
    """Noise σ from the median absolute neighbour difference along the last long axis."""
    ax = max((a for a in range(x.ndim) if x.shape[a] > 1), default=None)
    if ax is None:
        return 0.0
    d = np.diff(x.astype(np.float64), axis=ax)
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / math.sqrt(2.0))


def tile_features(x: np.ndarray, camera, *, scale_floor: float) -> tuple[bool, float, float,
                                                                         np.ndarray]:
    """Empty flag, mean, scale (std) and saliency map of one tile (squeezed to model axes).

    ``camera`` is a :class:`bigcomp.noise.CameraModel` or ``None`` (robust estimate).
    """
    xf = x.astype(np.float64)
    mean = float(xf.mean())
    m = _box3(xf)
    if camera is not None:
        sigma = np.maximum(camera.sigma(m), 1e-3 * camera.gain)
    else:
        sigma = max(_robust_sigma(xf), scale_floor)
    snr = np.abs(m - mean) / sigma
    empty = bool(np.percentile(snr, EMPTY_PERCENTILE) < EMPTY_SNR)
    scale = max(float(xf.std()), scale_floor)
    grads = np.gradient(m) if m.ndim > 1 else [np.gradient(m)]
    gmag = np.sqrt(sum(g * g for g in grads)) / sigma
    sal = (snr + gmag + 0.1).astype(np.float64)
    return empty, mean, scale, sal
