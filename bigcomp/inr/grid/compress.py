"""compress_grid: array -> fitting domain -> latent grids + decoder + entropy model -> store.

One decoder MLP and one entropy model (ARM) serve the whole array; every tile has its own
pyramid of integer latent grids, coded as an independent stream, so a region decodes only the
tiles that cover it. All of it trains at once (:func:`bigcomp.inr.grid.train.fit`) with a
rate term, steered towards the byte budget of ``target_ratio`` (every stored byte counted:
metadata, decoder, entropy model, tile offsets, streams).
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import ParameterError, UnsupportedDataError
from ...noise import CameraModel
from ..tiling import TileGrid
from . import entropy
from .net import level_shapes, mlp_shapes
from .store import encode_mlp, model_shape, write_grid_store

if TYPE_CHECKING:
    from .train import FitResult

__all__ = ["compress_grid", "default_grid_tile"]

TILE_3D = (32, 256, 256)  # default tile over the last three axes (y/x cut by 32 -> 8 latents)
TILE_2D = (256, 256)
WHOLE_AXIS = 1.5  # an axis at most this many default tiles long is not cut
MAX_VOXELS = 1 << 31  # the whole array trains at once, as float32 (8 GiB)
RC_MARGIN = 0.97  # the controller aims at this share of the latents' budget (the integer
#                   entropy model codes ~1 % above the float one it trains with)
LAMBDA0 = 0.3  # rate weight without a target; with one it starts at LAMBDA0·target/500
#               (where 500x runs ended: 0.26-0.31 on brain3d, ~0.2 on light-sheet)
UNUSED = 1.25  # a store this many times above its target ratio warns (budget unused; brain3d
#              at 100x: 179x, λ down to 0.002, the default model full at 35 of 57 KB)
MLP_BITS = 8
UPSAMPLE = (1, 3, 3)  # learned upsampling kernel radii (z, y, x); research round 3: brain3d
#                       +0.25 dB at 500x for +50 % training time


def default_grid_tile(shape: Sequence[int]) -> tuple[int, ...]:
    """``32×256×256`` over the last three axes (1 on leading axes), ``256²`` for 2-D data;
    an axis up to ``WHOLE_AXIS`` times that long is one tile (no short edge tile, whose
    latents and context borders cost bytes).

    Examples
    --------
    >>> default_grid_tile((30, 256, 384)), default_grid_tile((2, 4, 16, 512, 512))
    ((30, 256, 384), (1, 1, 16, 256, 256))
    """
    nd = len(shape)
    base = TILE_2D if nd == 2 else (1,) * (nd - 3) + TILE_3D
    return tuple(int(s) if s <= WHOLE_AXIS * b else int(b)
                 for b, s in zip(base, shape, strict=True))


def _check(data, camera, target_ratio, lam, tile, levels, channels, hidden, layers,
           arm_hidden, steps, batch, domain, device):
    from ..compress import check_common

    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        data = np.asarray(data)
    dt = np.dtype(data.dtype)
    if dt.kind not in "uif":
        raise UnsupportedDataError(f"INR mode needs integer or float data, got {dt}")
    if len(data.shape) < 2 or math.prod(data.shape) == 0:
        raise UnsupportedDataError(f"the grid model needs a non-empty array of >= 2 axes, got "
                                   f"shape {data.shape}")
    if math.prod(data.shape) > MAX_VOXELS:
        raise ParameterError(f"{math.prod(data.shape)} voxels: the grid model trains the whole "
                             f"array at once (at most {MAX_VOXELS}); use model='siren', which "
                             "trains groups of tiles, or compress parts separately")
    if target_ratio is not None and not (isinstance(target_ratio, (int, float))
                                         and math.isfinite(target_ratio) and target_ratio > 1):
        raise ParameterError(f"target_ratio must be a finite number > 1, got {target_ratio!r}")
    if target_ratio is None and not (isinstance(lam, (int, float)) and lam > 0):
        raise ParameterError(f"without target_ratio give a rate weight lam > 0, got {lam!r}")
    for name, v, lo, hi in (("levels", levels, 1, 8), ("channels", channels, 1, 8),
                            ("hidden", hidden, 2, 256), ("layers", layers, 0, 8),
                            ("arm_hidden", arm_hidden, 2, 64), ("steps", steps, 1, 10**7),
                            ("batch", batch, 16, 10**8)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
            raise ParameterError(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")
    check_common(camera, domain, device)
    grid = TileGrid.create(data.shape, tile if tile is not None else default_grid_tile(
        data.shape))
    if len(data.shape) > 3 and any(t != 1 for t in grid.tile[:-3]):
        raise ParameterError(f"tile {grid.tile}: the grid model tiles only the last three "
                             "axes; give 1 on the leading ones")
    return data, grid


def _quantise(tensors) -> tuple[list[np.ndarray], list[float]]:
    """Per tensor: step = max|t| / 127 rounded to float16; the integers and the steps."""
    ints, steps = [], []
    for t in tensors:
        step = float(np.float16(max(float(np.abs(t).max(initial=0.0)), 1e-8)
                                / (2 ** (MLP_BITS - 1) - 1)))
        if step == 0.0:  # below float16's range: the tensor is ~0
            step = float(np.float16(2 ** -24))
        ints.append(np.rint(np.asarray(t, np.float64) / step).astype(np.int64))
        steps.append(step)
    return ints, steps


def _short(v: float) -> float:
    """``v`` to 7 significant digits (a short JSON number)."""
    return float(f"{v:.7g}")


def _arm_bytes(dims: Sequence[int], levels: int) -> int:
    """Serialised size of an :class:`entropy.IntARM` (shift u8, int8 weights, int32 biases
    per layer; int16 log-scale offset per level)."""
    pairs = list(itertools.pairwise(dims))
    return sum(1 + a * b + 4 * b for a, b in pairs) + 2 * levels


def _metadata_bytes(meta: dict, payload: int) -> int:
    """Bytes of the zarr metadata files of a store with ``meta`` (written to a scratch dir)."""
    tmp = tempfile.mkdtemp(prefix="bigcomp-grid-")
    try:
        p = write_grid_store(os.path.join(tmp, "s"), meta,
                             {"mlp": b"\0" * payload, "arm": b"", "offsets": b"",
                              "latents": b""}, overwrite=True)
        total = 0
        for d, _, files in os.walk(p):
            total += sum(os.path.getsize(os.path.join(d, f)) for f in files
                         if f == "zarr.json")
        return total
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def compress_grid(data: Any, dest: str | os.PathLike, *, camera: CameraModel | None = None,
                  target_ratio: float | None = None, lam: float = LAMBDA0,
                  tile: Sequence[int] | None = None, levels: int = 4, channels: int = 2,
                  hidden: int = 24, layers: int = 2, arm_hidden: int = 12,
                  upsample: Sequence[int] | None = UPSAMPLE, steps: int = 3000,
                  batch: int = 32768, domain: str = "auto", device: str = "cpu", seed: int = 0,
                  overwrite: bool = False, progress: Callable[[int, int], None] | None = None,
                  dims: Sequence[str] | None = None) -> str:
    """Compress an array with learned latent grids and one small decoder (lossy, 100–2000×).

    Not noise-exact: for archiving and sharing visually faithful copies. Per tile a pyramid
    of integer latent grids, one decoder MLP and one autoregressive entropy model for the
    whole array (Cool-Chic style), trained together against a byte budget; region reads
    decode only their tiles. See docs/inr.md.

    Parameters
    ----------
    data : array_like
        numpy, dask or zarr array, ≥ 2 axes, integer or float, finite (read whole).
    dest : str or os.PathLike
        Directory of the zarr v3 group to write.
    camera : CameraModel, optional
        Fitting domain (variance-stabilised); integer data without one get a photon-transfer
        estimate (as :func:`bigcomp.inr.compress_inr`).
    target_ratio : float, optional
        Raw bytes / every stored byte to reach: the rate weight follows it during training,
        and latents over the budget are then moved (:mod:`bigcomp.inr.grid.landing`) until
        the store fits; it may end under the budget (a higher ratio). A model too large for
        the budget (brain crop at 2000×: 1612×) or too small for it (100×: 179×) warns.
        :func:`bigcomp.inr.inr_info` gives the achieved ratio.
    lam : float
        Rate weight without ``target_ratio`` (larger: smaller store, lower fidelity); with a
        target the controller starts from ``LAMBDA0 · target_ratio / 500``.
    tile : sequence of int, optional
        Default :func:`default_grid_tile` (``32×256×256`` over the last three axes).
    levels, channels : int
        Latent pyramid levels (4: y/x cut by 32…4) and channels per level (2).
    hidden, layers, arm_hidden : int
        Decoder width and hidden layers (24, 2); entropy model width (12).
    upsample : (int, int, int) or None
        Radii (z, y, x) of the learned upsampling kernels (``UPSAMPLE``): every level is
        resampled to the finest latent grid and filtered there by learned separable
        kernels before the decoder reads it; ``None``: plain trilinear interpolation.
    steps, batch : int
        Training steps (3000) and voxels per step (32768).
    domain : {"auto", "gat", "linear"}
        As in :func:`bigcomp.inr.compress_inr`.
    device : {"cpu", "cuda"}
        Training device; decoding runs on the CPU with integer entropy decoding (any machine
        decodes what any other wrote).
    seed : int
        Seed of initialisation and sampling.
    overwrite : bool
        Replace ``dest`` if it exists.
    progress : callable, optional
        ``progress(step, steps)`` after every training step.
    dims : sequence of str, optional
        Axis names, stored for :func:`bigcomp.open`.

    Returns
    -------
    str
        ``dest``.

    Raises
    ------
    ParameterError
        Out-of-range parameters, ``dest`` exists, an array too large to train at once.
    UnsupportedDataError
        Non-numeric data, fewer than two axes, NaN/inf values.
    """
    from ..compress import _domain_camera
    from .train import fit

    data, grid = _check(data, camera, target_ratio, lam, tile, levels, channels, hidden,
                        layers, arm_hidden, steps, batch, domain, device)
    if upsample is not None:
        radii = tuple(upsample)
        if len(radii) != 3 or any(isinstance(r, bool) or not isinstance(r, (int, np.integer))
                                  or not 0 <= r <= 8 for r in radii):
            raise ParameterError(f"upsample must be three kernel radii (z, y, x) in [0, 8] or "
                                 f"None, got {upsample!r}")
        upsample = [int(r) for r in radii]
    path = os.fspath(dest)
    if os.path.exists(path) and not overwrite:
        raise ParameterError(f"{path} exists; pass overwrite=True to replace it")
    names = None if dims is None else [str(d) for d in dims]
    if names is not None and len(names) != data.ndim:
        raise ParameterError(f"dims {names} do not name the {data.ndim} axes of the data")
    x = np.asarray(data)
    dtype = np.dtype(x.dtype)
    if dtype.kind == "f" and not np.isfinite(x).all():
        raise UnsupportedDataError("the data contain NaN or inf; replace them first (e.g. "
                                   "np.nan_to_num): the INR mode models finite values only")
    dom = _domain_camera(x, grid, camera, domain)
    if dom is not None and dom is not camera:  # an estimate: 7 digits are plenty, and shorter
        dom = CameraModel(*(_short(v) for v in (dom.gain, dom.offset, dom.read_noise)))
    y = dom.forward(x) if dom is not None else x.astype(np.float64)
    mean, std = _short(float(y.mean())), _short(float(y.std()))
    std = std if std > 0 else 1.0
    values = ((y - mean) / std).astype(np.float32)
    del y
    mshape = model_shape(grid.tile)
    shapes = level_shapes(mshape, levels)
    adims = [len(entropy.CONTEXT), arm_hidden, arm_hidden, 2]
    from ... import __version__

    meta: dict[str, Any] = {
        "mode": "inr", "model": "grid", "version": __version__, "shape": list(x.shape),
        "dtype": dtype.str, "tile": list(grid.tile), "levels": [list(s) for s in shapes],
        "channels": int(channels), "hidden": int(hidden), "layers": int(layers),
        "arm_hidden": int(arm_hidden), "upsample": upsample, "norm": [mean, std],
        "camera": camera.to_dict() if camera is not None and dom is not camera else None,
        "domain": None if dom is None else {"kind": "gat", **dom.to_dict()},
        "bounds": [[-128, 127]] * levels,
        "training": {"steps": int(steps), "batch": int(batch), "seed": int(seed),
                     "target_ratio": target_ratio, "lam": None, "device": str(device),
                     "train_seconds": 1e6}}
    if names is not None:
        meta["dims"] = names
    raw = x.nbytes
    budget_bits = None
    if target_ratio is not None:
        nmlp = sum(o * i + o for o, i in mlp_shapes(levels * channels, hidden, layers))
        if upsample is not None:
            nmlp += levels * 3 * (max(upsample) + 1) + 2
        fixed = (_metadata_bytes(meta, 1) + nmlp  # the coded MLP: ~1 byte per 8-bit weight
                 + 4 * (layers + 1)  # its float16 steps
                 + _arm_bytes(adims, levels)
                 + 8 * (grid.ntiles + 1) + 4 * grid.ntiles)
        latent_bytes = raw / float(target_ratio) - fixed
        if latent_bytes < 16 * grid.ntiles:
            raise ParameterError(
                f"target_ratio={target_ratio}: the budget ({raw / target_ratio:.0f} bytes) "
                f"leaves {latent_bytes:.0f} bytes for the latents of {grid.ntiles} tiles after "
                f"{fixed} fixed bytes (metadata, decoder, entropy model); use a lower ratio "
                "or a larger array")
        budget_bits = 8 * RC_MARGIN * latent_bytes
        lam = LAMBDA0 * float(target_ratio) / 500.0

    def stored_bytes(res: FitResult) -> int:  # what ``res`` would write, every byte
        return _store_bytes(meta, _parts(res, meta, grid.ntiles, hidden))

    t1 = time.perf_counter()
    res = fit(values, grid.tile, mshape, shapes, channels=channels, hidden=hidden,
              layers=layers, arm_hidden=arm_hidden, steps=steps, batch=batch,
              budget_bits=budget_bits, lam=lam, seed=seed, device=device, progress=progress,
              upsample=upsample, stored_bytes=stored_bytes if budget_bits else None,
              budget_bytes=raw / float(target_ratio) if budget_bits else None,
              restart_scale=float(target_ratio) / 500.0 if budget_bits else 1.0)
    meta["training"]["train_seconds"] = round(time.perf_counter() - t1, 1)
    parts = _parts(res, meta, grid.ntiles, hidden)
    if target_ratio is not None:
        ratio = raw / _store_bytes(meta, parts)
        if ratio < target_ratio:  # the landing could not cut enough: say so, keep the store
            warnings.warn(f"the grid model reached {ratio:.1f}x, not target_ratio="
                          f"{target_ratio}: its latents could not be cut further; train "
                          "with fewer levels or channels for higher ratios",
                          RuntimeWarning, stacklevel=2)
        elif ratio > UNUSED * target_ratio:  # bytes left unused: fidelity left unused
            warnings.warn(f"the grid model reached {ratio:.1f}x for target_ratio="
                          f"{target_ratio}: it left {1 - target_ratio / ratio:.0%} of its "
                          "budget unused (at low ratios the default model is full: give "
                          "channels=4 or more steps for a closer fit)", RuntimeWarning,
                          stacklevel=2)
    return write_grid_store(path, meta, parts, overwrite=overwrite)


def _store_bytes(meta: dict, parts: dict[str, bytes]) -> int:
    """Every byte of the store ``meta`` and ``parts`` make: payload and zarr metadata."""
    payload = sum(len(v) for v in parts.values())
    return payload + _metadata_bytes(meta, payload)


def _parts(res: FitResult, meta: dict, ntiles: int, hidden: int) -> dict[str, bytes]:
    """The payload parts of a trained model; sets ``meta``'s bounds and λ."""
    decoder = [t for layer in res.mlp for t in layer]
    mlp_ints, mlp_steps = _quantise(decoder + ([res.taps] if res.taps is not None else []))
    arm = entropy.quantise_arm(res.arm, res.level_logb)
    ints = res.ints
    bounds = np.array([[int(q.min()), int(q.max())] for q in ints], np.int64)
    streams = [entropy.encode_latents([q[t] for q in ints], arm, bounds)
               for t in range(ntiles)]
    offsets = np.cumsum([0] + [len(s) for s in streams]).astype("<u8")
    meta["bounds"] = bounds.tolist()
    meta["training"]["lam"] = float(f"{res.lam:.4g}")
    return {"mlp": encode_mlp(mlp_ints, mlp_steps, hidden), "arm": arm.to_bytes(),
            "offsets": offsets.tobytes(), "latents": b"".join(streams)}
