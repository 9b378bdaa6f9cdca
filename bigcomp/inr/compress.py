"""compress_inr: tiles -> empty test -> domain -> origin network -> batched fits -> packs -> store.

Modelled tiles are fitted in the variance-stabilised domain of a camera model (given, or
estimated from integer data) unless ``domain="linear"``. The stored differences start from an
origin network: Reptile-pretrained and stored as float16 when there are enough modelled tiles
to share its cost (``REPTILE_SHARE``), else a SIREN initialisation regenerated from the seed.

Choosing the network width:

- ``width=`` fixes it.
- ``target_ratio=R``: the byte budget ``raw / R`` minus the fixed costs (metadata files ≈
  ``META_BYTES``, tile table, pack offsets, a stored float16 origin) is shared by the modelled
  tiles; each costs its step codes plus ``P(width) · bpw(bits) / 8`` bytes (bpw: the measured
  coded size of QAT residuals, ≈ 1.15·bits − 1.6; the default 6 bits gave the best PSNR per
  byte at 500× against 3, 4, 5 and 7, see docs/inr.md). The widest network that fits is used;
  after coding, rate control coarsens the steps of all tensors (step codes + d, bisected)
  until the store fits, then retrains ``RETRAIN`` of the steps quantisation-aware on that
  coarser grid (:func:`_finetune`; shifting again, without retraining, only if it still
  misses). The achieved ratio is what :func:`bigcomp.inr.inr_info`
  measures.
- per-tile widths (``allocate=True`` with ``target_ratio``, ≥ 2 modelled tiles): a pilot fit
  (``ALLOC_PILOT`` of the steps) measures each tile's error and, coding its quantised
  residuals, how far the bpw estimate is off (``ALLOC_MEASURED``); the whole budget, in those
  measured bytes, is shared ∝ error^``ALLOC_GAMMA`` (:func:`_allocate`); store format 3.
  Tiles of different widths train as one batch, zero-padded (:func:`_padded_groups`).
- ``target_psnr=T`` (dB, against the input, range = max − min): a pilot fit on up to
  ``PILOT_TILES`` modelled tiles, bisecting the width ladder ``WIDTHS``, picks the narrowest
  width whose quantised pilot PSNR reaches ``T`` (the widest if none does).
- neither: width 32.

Depth (sine layers), unless ``depth=`` fixes it: 4 when the network is at least 16 wide, else
2; with ``target_ratio`` the deepest of 4, 3, 2 whose affordable width is still ≥ 16. At equal
bytes, deeper and narrower networks fit these tiles better (+0.3–2.7 dB at 500×, docs/inr.md).
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ParameterError, UnsupportedDataError
from ..noise import CameraModel
from . import bitstream as B
from .model import evaluate_tile, require_torch, seeded_init
from .store import SIREN_VERSION, inr_info, write_store
from .tiling import TileGrid, coordinates, tile_features

__all__ = ["compress_inr"]

WIDTHS = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
META_BYTES = 1100  # group zarr.json (compact metadata) + payload/zarr.json
PACK_SYMBOLS = 16384
POOL = 16384
PILOT_TILES = 8
REPTILE_OUTER = 8
QAT = 0.2  # fraction of the steps that are quantisation-aware
REPTILE_SHARE = 0.1  # Reptile origin only if its float16 copy costs <= this share of residuals
CAMERA_SAMPLE = 1 << 24  # at most this many values go into the camera estimate
DEEP = 4  # sine layers of the default network when it is at least MIN_DEEP_WIDTH wide
MIN_DEEP_WIDTH = 16  # narrower networks keep 2 sine layers (depth 4 at width 8 lost 2.5 dB)
ALLOC_GAMMA = 0.45  # per-tile bytes ∝ pilot error ** ALLOC_GAMMA (target_ratio, allocate=True)
ALLOC_PILOT = 0.25  # pilot fit: this share of the steps, at the uniform width
ALLOC_RANGE = (1 / 3, 2.0)  # per-tile widths within these multiples of the uniform width
ALLOC_STORED_MAX = 1.25  # ... at most this multiple with a stored (Reptile) origin
SMALL_TILE = 64  # y/x tile length tried by _auto_tile (None: always the default tile)
SMALL_MIN_WIDTH = 14  # ... if its networks can be this wide at depth DEEP − 1, all modelled
ALLOC_MEASURED = True  # allocate the whole budget with the pilot's measured bytes per weight
#                       (False: the uniform width's estimated bytes, rows 7–8 of docs/inr.md)
RETRAIN = 0.1  # after rate control coarsened the steps: QAT on the new grid, this share of steps
#                (0.25 was not better, docs/inr.md row 8)


def _check(data, camera, target_ratio, target_psnr, width, steps, bits, device, batch, domain,
           init, depth=None):
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        data = np.asarray(data)
    dt = np.dtype(data.dtype)
    if dt.kind not in "uif":
        raise UnsupportedDataError(f"INR mode needs integer or float data, got {dt}")
    if len(data.shape) < 1 or math.prod(data.shape) == 0:
        raise UnsupportedDataError(f"cannot compress an empty array of shape {data.shape}")
    if target_ratio is not None and target_psnr is not None:
        raise ParameterError("give target_ratio or target_psnr, not both (the other one follows "
                             "from it)")
    if width is not None and (target_ratio is not None or target_psnr is not None):
        raise ParameterError("width fixes the network size; drop target_ratio/target_psnr or "
                             "drop width")
    for name, v, lo in (("target_ratio", target_ratio, 1.0), ("target_psnr", target_psnr, 0.0)):
        if v is not None and not (isinstance(v, (int, float)) and math.isfinite(v) and v > lo):
            raise ParameterError(f"{name} must be a finite number > {lo:g}, got {v!r}")
    for name, v, lo, hi in (("steps", steps, 1, 10**7), ("bits", bits, 2, 16),
                            ("batch", batch, 2, 10**7), ("width", width, 2, 4096),
                            ("depth", depth, 1, 16)):
        if name in ("width", "depth") and v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
            raise ParameterError(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")
    if init not in ("auto", "reptile", "seeded"):
        raise ParameterError(f"init must be 'auto', 'reptile' or 'seeded', got {init!r}")
    return data, check_common(camera, domain, device)


def check_common(camera, domain: str, device: str):
    """Checks shared by the INR models (camera, fitting domain, device); returns torch."""
    if camera is not None and not isinstance(camera, CameraModel):
        raise ParameterError("camera must be a bigcomp.CameraModel or None")
    if domain not in ("auto", "gat", "linear"):
        raise ParameterError(f"domain must be 'auto', 'gat' or 'linear', got {domain!r}")
    torch = require_torch()
    dev = str(device)
    if dev.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ParameterError(f"device={dev!r} but torch sees no CUDA device; use "
                                 "device='cpu'")
    elif dev != "cpu":
        raise ParameterError(f"device must be 'cpu' or 'cuda[:n]', got {device!r}")
    return torch


def _read(data, grid: TileGrid, i: int) -> np.ndarray:
    x = np.asarray(data[grid.slices(i)])
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise UnsupportedDataError(
            f"tile {i} ({grid.slices(i)}) contains NaN or inf; replace them first (e.g. "
            "np.nan_to_num) — the INR mode models finite values only")
    return x.reshape(grid.valid(i))


def _tileset(data, grid, idxs, feats, device, rng):
    """TileSet of the modelled tiles ``idxs`` on ``device`` (values normalised)."""
    from .train import TileSet

    torch = require_torch()
    means, scales, sals, camera, fwd, _ = feats
    mshape = grid.model_shape
    n = math.prod(mshape)
    vals = np.zeros((len(idxs), n), np.float32)
    pool = np.empty((len(idxs), min(POOL, n)), np.int64)
    valid = np.empty((len(idxs), len(mshape)), np.int64)
    for r, i in enumerate(idxs):
        x = _read(data, grid, i)
        v = grid.valid(i)
        full = np.zeros(mshape, np.float32)
        xv = x if fwd is None else fwd(x)
        full[tuple(slice(0, k) for k in v)] = (xv - means[i]) / scales[i]
        vals[r] = full.ravel()
        sal = sals[i] if i in sals else tile_features(
            x, camera, scale_floor=1e-6 * max(1.0, abs(float(x.mean()))))[3]
        p = sal.ravel() / sal.sum()
        pick = rng.choice(p.size, size=pool.shape[1], p=p)
        pool[r] = np.ravel_multi_index(np.unravel_index(pick, v), mshape)
        valid[r] = v
    strides = tuple(int(s) for s in np.cumprod((1, *mshape[::-1]))[:-1][::-1])
    return TileSet(torch.from_numpy(vals).to(device), torch.from_numpy(valid).to(device),
                   torch.from_numpy(pool).to(device),
                   [torch.from_numpy(c).to(device) for c in coordinates(mshape)], strides)


def _domain_camera(data, grid: TileGrid, camera: CameraModel | None,
                   domain: str) -> CameraModel | None:
    """Camera model of the fitting domain (``None``: linear), see ``compress_inr(domain=)``.

    Without ``camera``, integer data get a photon-transfer estimate
    (:func:`bigcomp.estimate.photon_transfer`) from the whole array if it has at most
    ``CAMERA_SAMPLE`` values, else from evenly spaced full tiles; a failed or poor fit means
    linear (``"auto"``) or an error (``"gat"``).
    """
    if domain == "linear":
        return None
    if camera is not None:
        return camera
    if domain == "auto" and np.dtype(data.dtype).kind not in "iu":
        return None
    import warnings

    from ..estimate import photon_transfer

    if math.prod(data.shape) <= CAMERA_SAMPLE:
        sample = np.asarray(data)
    else:
        full = [i for i in range(grid.ntiles)
                if all(sl.stop - sl.start == t for sl, t in zip(grid.slices(i), grid.tile,
                                                                 strict=True))]
        k = max(1, min(len(full), CAMERA_SAMPLE // math.prod(grid.tile)))
        pick = [full[j] for j in np.linspace(0, len(full) - 1, k).round().astype(int)]
        sample = np.stack([_read(data, grid, i).reshape(grid.tile) for i in pick])
    why = ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pt = photon_transfer(sample)
        if not pt.problems:
            return pt.camera
        why = "; ".join(pt.problems)
    except (UnsupportedDataError, ParameterError, ValueError) as exc:
        why = str(exc)
    if domain == "gat":
        raise ParameterError(f"domain='gat' needs a camera model and estimating one failed "
                             f"({why}); pass camera=CameraModel(...) or domain='linear'")
    return None


def _flat(params) -> np.ndarray:
    return np.concatenate([p.detach().float().cpu().numpy().reshape(p.shape[0], -1)
                           for p in params], axis=1)


def _origin(shared_flat: np.ndarray, dims: int, width: int, w: int, depth: int, init: str,
            seed: int) -> np.ndarray:
    """Origin of a width-``w`` tile (same rule as the decoder, ``store._Decoder.origin``)."""
    if w == width:
        return shared_flat
    if init == "reptile":
        return B.narrow(shared_flat, dims, width, w, depth)
    return seeded_init(dims, w, depth, seed)


def _padded_groups(shared_flat, resid, wts, dims, width, depth, init, seed, group, device):
    """Training groups of up to ``group`` tiles (widest first), each padded to its widest.

    Yields ``(rows, start, origin, masks, wide)``: torch tensors ``(G, ...)`` of the tiles'
    start weights (origin, plus ``resid`` when given) and origins as width-``wide`` networks
    (:func:`bitstream.widen`: the extra units have zero weights, so the function is the
    tile's own), and 0/1 gradient masks that keep the padding at zero (``None`` when all
    widths are equal). One batched fit instead of one per width.
    """
    torch = require_torch()
    order = np.argsort(-np.asarray(wts), kind="stable")
    for g0 in range(0, len(order), group):
        rr = order[g0:g0 + group]
        wide = int(wts[rr].max())
        org, cur, msk = [], [], []
        for r in rr:
            w = int(wts[r])
            o = _origin(shared_flat, dims, width, w, depth, init, seed)
            org.append(B.widen(o, dims, w, wide, depth))
            cur.append(org[-1] if resid is None else
                       B.widen(o + np.asarray(resid[r], np.float32), dims, w, wide, depth))
            msk.append(B.widen(np.ones(o.size, np.float32), dims, w, wide, depth))
        shapes = B.layer_shapes(dims, wide, depth)
        bounds = np.cumsum([0] + [math.prod(t) for t in shapes])

        def stacked(a, shapes=shapes, bounds=bounds):
            a = np.stack(a).astype(np.float32)
            return [torch.from_numpy(np.ascontiguousarray(a[:, b0:b1].reshape(len(a), *t)))
                    .to(device) for b0, b1, t in zip(bounds[:-1], bounds[1:], shapes,
                                                    strict=True)]

        same = bool((wts[rr] == wide).all())
        yield rr, stacked(cur), stacked(org), None if same else stacked(msk), wide


def _train(data, grid, model_idx, feats, *, width, depth, w0, steps, batch, lr, bits, qat,
           device, seed, group, init, progress=None, widths=None):
    """Origin network + all tiles; returns (origin flat, residuals, codes (n, L)).

    ``init="reptile"``: the origin is pretrained with Reptile (and stored as float16);
    ``"seeded"``: it is :func:`seeded_init` of ``seed`` (not stored). ``widths`` (one per
    modelled tile, ≤ ``width``): each tile gets a network of its own width, trained from its
    origin (:func:`_origin`) in zero-padded mixed-width groups (:func:`_padded_groups`);
    residuals are then a list of 1-D arrays, else a float array ``(n, P)``.
    """
    from .train import fit_tiles, pretrain_shared

    torch = require_torch()
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    dims = len(grid.axes)
    bf16 = str(device).startswith("cuda")
    if init == "reptile":
        meta_idx = [model_idx[k] for k in rng.permutation(len(model_idx))[:16]]
        meta_set = _tileset(data, grid, meta_idx, feats, device, rng)
        shared = pretrain_shared(meta_set, dims=dims, width=width, depth=depth,
                                 outer=REPTILE_OUTER, inner=max(5, steps // 10), meta_tiles=16,
                                 batch=batch, lr=lr, w0=w0, gen=gen, bf16=bf16)
        del meta_set
        # stored as float16: every tile starts from (and differs from) that
        shared_flat = _flat([s.half().float() for s in shared])[0]
    else:
        shared_flat = seeded_init(dims, width, depth, seed)
    n = len(model_idx)
    wts = np.full(n, width, np.int64) if widths is None else np.asarray(widths, np.int64)
    resid: list = [None] * n
    codes = np.zeros((n, 2 * depth + 2), np.uint8)
    done = 0
    for rr, start, sh, masks, wide in _padded_groups(shared_flat, None, wts, dims, width,
                                                    depth, init, seed, group, device):
        ts = _tileset(data, grid, [model_idx[r] for r in rr], feats, device, rng)
        params, c = fit_tiles(ts, start, sh, steps=steps, batch=batch, lr=lr, w0=w0,
                              bits=bits, qat=qat, gen=gen, bf16=bf16, masks=masks)
        flat = _flat(params)
        for j, r in enumerate(rr):
            w = int(wts[r])
            resid[r] = (B.narrow(flat[j], dims, wide, w, depth)
                        - _origin(shared_flat, dims, width, w, depth, init, seed))
        codes[rr] = c
        done += len(rr)
        if progress:
            progress(done, n)
    if widths is None:
        resid = np.stack(resid) if n else np.zeros((0, shared_flat.size), np.float32)
    return shared_flat, resid, codes


def _finetune(data, grid, model_idx, feats, shared_flat, resid, codes, *, width, depth, w0,
              steps, batch, lr, bits, device, seed, group, init, widths=None):
    """Short quantisation-aware retraining on fixed (coarsened) step ``codes``.

    Rate control raises the step codes after training; rounding weights that QAT fitted to the
    old grid onto the new one cost 0.9–2.4 dB per code (docs/inr.md). Starting from the
    trained weights, ``steps`` more steps (all quantisation-aware, the cosine schedule's tail)
    fit them to the grid the decoder will use. Returns the new residuals (same layout).
    """
    from .train import fit_tiles

    torch = require_torch()
    rng = np.random.default_rng(seed + 2)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed + 2)
    dims = len(grid.axes)
    bf16 = str(device).startswith("cuda")
    n = len(model_idx)
    wts = np.full(n, width, np.int64) if widths is None else np.asarray(widths, np.int64)
    out = [None] * n
    for rr, start, sh, masks, wide in _padded_groups(shared_flat, resid, wts, dims, width,
                                                    depth, init, seed, group, device):
        ts = _tileset(data, grid, [model_idx[r] for r in rr], feats, device, rng)
        params, _ = fit_tiles(ts, start, sh, steps=steps, batch=batch, lr=lr, w0=w0,
                              bits=bits, qat=1.0, gen=gen, bf16=bf16, codes=codes[rr],
                              t0=1.0 - QAT, masks=masks)
        flat = _flat(params)
        for j, r in enumerate(rr):
            w = int(wts[r])
            out[r] = (B.narrow(flat[j], dims, wide, w, depth)
                      - _origin(shared_flat, dims, width, w, depth, init, seed))
    return np.stack(out) if widths is None else out


def _pilot_errors(data, grid, model_idx, feats, *, width, depth, w0, steps, batch, lr,
                  device, seed, group, points: int = 8192):
    """Per-tile MSE (in the data's units) of a short unquantised fit at ``width``, and the
    fit's residuals ``(n, P)`` from the seeded origin.

    The MSE is measured on ``points`` uniformly drawn voxels of each tile's valid box: the
    difficulty estimate behind the per-tile widths (:func:`_allocate`); the residuals give
    the measured bytes per weight (:func:`_coded_bytes`).
    """
    from .model import forward, split
    from .train import fit_tiles

    torch = require_torch()
    rng = np.random.default_rng(seed + 1)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed + 1)
    dims = len(grid.axes)
    means, scales, inv = feats[0], feats[1], feats[5]
    origin = seeded_init(dims, width, depth, seed)
    sh = [torch.from_numpy(np.ascontiguousarray(t)).unsqueeze(0).to(device)
          for t in split(origin, B.layer_shapes(dims, width, depth))]
    out = np.zeros(len(model_idx))
    resid = np.zeros((len(model_idx), origin.size), np.float32)
    coords = coordinates(grid.model_shape)
    for g0 in range(0, len(model_idx), group):
        idxs = model_idx[g0:g0 + group]
        ts = _tileset(data, grid, idxs, feats, device, rng)
        start = [t.expand(len(idxs), *t.shape[1:]).contiguous() for t in sh]
        params, _ = fit_tiles(ts, start, sh, steps=steps, batch=batch, lr=lr, w0=w0, bits=8,
                              qat=0.0, gen=gen, final_codes=False)
        resid[g0:g0 + len(idxs)] = _flat(params) - origin[None]
        flat = np.zeros((len(idxs), points), np.int64)
        xs = np.zeros((len(idxs), points, dims), np.float32)
        for r, i in enumerate(idxs):
            pos = [rng.integers(0, v, points) for v in grid.valid(i)]
            flat[r] = np.ravel_multi_index(pos, grid.model_shape)
            xs[r] = np.stack([c[p] for c, p in zip(coords, pos, strict=True)], axis=-1)
        with torch.no_grad():
            pred = forward(params, torch.from_numpy(xs).to(device), w0).cpu().numpy()
            tgt = ts.values.gather(1, torch.from_numpy(flat).to(device)).cpu().numpy()
        for r, i in enumerate(idxs):
            a = tgt[r].astype(np.float64) * scales[i] + means[i]
            b = pred[r].astype(np.float64) * scales[i] + means[i]
            if inv is not None:
                a, b = inv(a), inv(b)
            out[g0 + r] = float(np.mean((a - b) ** 2))
    return out, resid


def _coded_bytes(resid: np.ndarray, dims: int, width: int, depth: int, bits: int,
                 pack_tiles: int) -> int:
    """Pack bytes of residuals ``(n, P)`` quantised with their own range-based step codes."""
    shapes = B.layer_shapes(dims, width, depth)
    b = np.cumsum([0] + [math.prod(t) for t in shapes])
    codes = B.step_codes(np.stack([np.abs(resid[:, a:c]).max(axis=1)
                                   for a, c in itertools.pairwise(b)], axis=1), bits)
    q = B.quantise(resid, codes, shapes, bits)
    return sum(len(B.encode_pack(q[k:k + pack_tiles], codes[k:k + pack_tiles]))
               for k in range(0, len(resid), pack_tiles))


def _tile_bytes(dims: int, w: int, depth: int, bits: int) -> float:
    """Budgeted bytes of one modelled tile of width ``w`` (step codes + coded levels)."""
    first = (dims + 1) * w * B.FIRST_EXTRA_BITS
    return 2 * depth + 2 + (B.nparams(dims, w, depth) * _bpw(bits) + first) / 8


def _allocate(err: np.ndarray, avail: float, dims: int, depth: int, bits: int, lo: int,
              hi: int) -> np.ndarray:
    """Per-tile widths in ``[lo, hi]`` whose bytes sum to at most ``avail``.

    Tile ``i`` gets bytes ∝ ``err_i ** ALLOC_GAMMA`` (the optimum when every tile's error falls
    as bytes^−α, γ = 1/(1 + α); measured α ≈ 1.2 on the benchmark tiles), rounded down to a
    width, then the leftover bytes widen the tiles with the largest error per byte.
    """
    cost = {w: _tile_bytes(dims, w, depth, bits) for w in range(lo, hi + 1)}
    wt = np.maximum(np.asarray(err, np.float64), 1e-12) ** ALLOC_GAMMA
    wt = wt / wt.max()

    def widths_for(kappa: float) -> np.ndarray:
        out = np.full(len(wt), lo, np.int64)
        for j, b in enumerate(kappa * wt):
            while out[j] < hi and cost[int(out[j]) + 1] <= b:
                out[j] += 1
        return out

    def total(ws) -> float:
        return sum(cost[int(w)] for w in ws)

    k_lo, k_hi = 0.0, cost[hi] * len(wt) / max(wt.min(), 1e-9)
    for _ in range(50):
        mid = 0.5 * (k_lo + k_hi)
        if total(widths_for(mid)) <= avail:
            k_lo = mid
        else:
            k_hi = mid
    ws = widths_for(k_lo)
    left = avail - total(ws)
    while True:  # greedy fill: the largest weight per byte first
        best, gain = -1, 0.0
        for j, w in enumerate(ws):
            if w < hi and cost[int(w) + 1] - cost[int(w)] <= left:
                g = wt[j] / cost[int(w)]
                if g > gain:
                    best, gain = j, g
        if best < 0:
            return ws
        left -= cost[int(ws[best]) + 1] - cost[int(ws[best])]
        ws[best] += 1


def _fixed_bytes(ntiles: int, n_model: int, p: int, pack_tiles: int, stored: bool) -> float:
    """Bytes besides the residual levels: metadata, table, offsets, origin, coder tables."""
    npacks = -(-n_model // pack_tiles) if n_model else 0
    return META_BYTES + 8 * ntiles + 8 * (npacks + 1) + 2 * p * stored + 120 * npacks


def _choose_init(init: str, n_model: int, bits: int) -> str:
    """``"reptile"`` when its float16 origin (2 B/weight) is cheap next to the residuals.

    The origin costs ``2·P`` bytes, the residuals ``n_model·P·bpw/8``: the share does not
    depend on the width, only on the number of modelled tiles (≥ 31 at 6 bits).
    """
    if init != "auto":
        return init
    return "reptile" if 16.0 / max(1, n_model) / _bpw(bits) <= REPTILE_SHARE else "seeded"


def _bpw(bits: int) -> float:
    """Coded bits per weight of QAT residuals (measured ≈ 3.0–3.5 at 4 bits; 1.15·bits − 1.6).

    Slightly optimistic on purpose: rate control after training coarsens the steps if the
    store misses the target ratio.
    """
    return 1.15 * bits - 1.6


def _auto_depth(width: int) -> int:
    """Sine layers for a given width when ``depth`` is not fixed (``DEEP`` or 2)."""
    return DEEP if width >= MIN_DEEP_WIDTH else 2


def _shape_for_ratio(raw: int, ratio: float, grid: TileGrid, n_model: int, depth: int | None,
                     bits: int, stored: bool) -> tuple[int, int]:
    """``(width, depth)`` for ``target_ratio``: the deepest of ``DEEP … 2`` sine layers whose
    widest affordable network is still ``MIN_DEEP_WIDTH`` wide, unless ``depth`` is given.

    At equal bytes, 4 sine layers of width 28 beat 2 of width 48 by 0.3–3 dB at 500×
    (docs/inr.md); at 2000× (width 8 at depth 4) the shallow network is better.
    """
    if depth is not None:
        return _width_for_ratio(raw, ratio, grid, n_model, depth, bits, stored), depth
    for d in range(DEEP, 2, -1):
        try:
            w = _width_for_ratio(raw, ratio, grid, n_model, d, bits, stored)
        except ParameterError:
            continue
        if w >= MIN_DEEP_WIDTH:
            return w, d
    return _width_for_ratio(raw, ratio, grid, n_model, 2, bits, stored), 2


def _auto_tile(shape, itemsize: int, ratio: float, depth: int | None,
               bits: int) -> tuple[int, ...] | None:
    """Tile for ``target_ratio`` without ``tile=``: ``SMALL_TILE`` when it pays, else default.

    The default tile with its last two axes cut to ``SMALL_TILE`` (3-D or more, both ≥ 2×
    that long) is taken when, counting every tile as modelled, its networks can still be
    ``SMALL_MIN_WIDTH`` wide at ``DEEP − 1`` sine layers (or ``depth``): measured at 500×
    (mean of 3 seeds), 32×64² tiles with per-tile widths and the retraining after rate
    control (``RETRAIN``) gave +1.5 dB (2D+t), +0.5 dB (brain3d) and −0.3 dB (light-sheet,
    within seed noise) over 32×128² (docs/inr.md, log). ``None`` (the default tile)
    otherwise, e.g. at ≥ 700× on
    4–6 MB arrays, where 64² tiles leave too few bytes per network.
    """
    from .tiling import default_tile

    base = default_tile(shape)
    if SMALL_TILE is None or len(shape) < 3 or min(base[-2:]) < 2 * SMALL_TILE:
        return None
    small = (*base[:-2], SMALL_TILE, SMALL_TILE)
    grid = TileGrid.create(shape, small)
    raw = math.prod(shape) * itemsize
    try:
        w = _width_for_ratio(raw, ratio, grid, grid.ntiles, depth or DEEP - 1, bits, False)
    except ParameterError:
        return None
    return small if w >= SMALL_MIN_WIDTH else None


def _width_for_ratio(raw: int, ratio: float, grid: TileGrid, n_model: int, depth: int,
                     bits: int, stored: bool) -> int:
    budget = raw / ratio
    dims = len(grid.axes)
    best = None
    for w in range(4, 513):
        p = B.nparams(dims, w, depth)
        k = max(1, -(-PACK_SYMBOLS // p))
        first = (dims + 1) * w * B.FIRST_EXTRA_BITS  # the finer first layer (extra bits)
        need = (_fixed_bytes(grid.ntiles, n_model, p, k, stored)
                + n_model * (2 * depth + 2 + (p * _bpw(bits) + first) / 8))
        if need > budget:
            break
        best = w
    if best is None:
        p = B.nparams(dims, 4, depth)
        need = _fixed_bytes(grid.ntiles, n_model, p, 1, stored) + n_model * (p * _bpw(bits) / 8)
        raise ParameterError(
            f"target_ratio={ratio:g} is out of reach: the budget is {budget:.0f} bytes but even "
            f"width-4 networks for the {n_model} non-empty tiles of {grid.tile} need ~"
            f"{need:.0f}; use larger tiles (tile=...) or a smaller target_ratio")
    return best


def _psnr(x: np.ndarray, y: np.ndarray, rng_: float) -> float:
    mse = float(np.mean((x.astype(np.float64) - y.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(max(rng_, 1e-12) ** 2 / mse)


def _decode_rows(shared, resid, codes, grid, idxs, feats, *, width, depth, w0, bits, dtype):
    """Decode modelled tiles from float residuals via the exact quantise/dequantise path."""
    shapes = B.layer_shapes(len(grid.axes), width, depth)
    q = B.quantise(resid, codes, shapes, bits)
    wts = B.dequantise(shared, q, codes, shapes)
    means, scales = feats[:2]
    inv = feats[5]
    from .store import to_dtype

    out = []
    for r, i in enumerate(idxs):
        y = evaluate_tile(wts[r], grid.model_shape, grid.valid(i), width=width, depth=depth,
                          w0=w0)
        v = y * np.float32(scales[i]) + np.float32(means[i])
        out.append(to_dtype(inv(v) if inv else v, dtype))
    return out


def compress_inr(data: Any, dest: str | os.PathLike, *, camera: CameraModel | None = None,
                 target_ratio: float | None = None, target_psnr: float | None = None,
                 tile: tuple[int, ...] | None = None, steps: int = 1000,
                 width: int | None = None, depth: int | None = None, bits: int = 6,
                 batch: int = 2048, lr: float = 1e-2,
                 w0: float = 30.0, domain: str = "auto", init: str = "auto",
                 device: str = "cpu", seed: int = 0, overwrite: bool = False,
                 allocate: bool = True, progress=None, dims: Sequence[str] | None = None,
                 model: str = "siren", grid_options: dict | None = None) -> str:
    """Compress an array with per-tile implicit neural representations (lossy, extreme ratios).

    Not noise-exact: for archiving and sharing visually faithful copies at 100–2000×. Each
    tile is either empty (stored as its mean) or fitted by a small SIREN (in the
    variance-stabilised domain where a camera model is known); networks store 6-bit quantised,
    entropy-coded differences from an origin network (Reptile-pretrained or seeded).

    Parameters
    ----------
    data : array_like
        numpy, dask or zarr array (read tile by tile), integer or float, finite.
    dest : str or os.PathLike
        Directory of the zarr v3 group to write.
    camera : CameraModel, optional
        Used for the empty-tile test and saliency; without it the noise is estimated per tile.
    target_ratio, target_psnr : float, optional
        At most one: the network width follows from it (module docstring).
    tile : tuple of int, optional
        Tile shape (default :func:`bigcomp.inr.tiling.default_tile`; with ``target_ratio``
        on ≥ 3-D data, 64² in y/x instead where those networks can still be 14 wide at
        depth 3, see :func:`_auto_tile`).
    steps : int
        Training steps per tile group (the last 20 % quantisation-aware).
    width : int, optional
        Fixed network width (instead of a target).
    depth : int, optional
        Sine layers per network. Default: 4 when the network is at least 16 wide (with a
        target ratio: the deepest of 4, 3, 2 whose affordable width is ≥ 16), else 2.
    bits : int
        Residual quantisation bits (6): levels in ``±(2**(bits−1) − 1)``.
    batch, lr, w0 : int, float, float
        Points per tile and step, Adam learning rate (cosine decay), SIREN frequency.
    domain : {"auto", "gat", "linear"}
        Where the networks fit: ``"gat"`` in the variance-stabilised domain of the camera
        model (generalised Anscombe transform; ``camera`` or, without one, a photon-transfer
        estimate from the data), ``"linear"`` on the values themselves. ``"auto"``: ``"gat"``
        for integer data or a given camera when a camera model is available, else linear.
        Measured: +4–7 dB on light-sheet-like data at 500× (see docs/inr.md).
    init : {"auto", "reptile", "seeded"}
        Origin of the stored weight differences: a Reptile-pretrained shared network (stored
        as float16, 2 B/weight) or a SIREN initialisation regenerated from ``seed`` (free).
        ``"auto"``: Reptile when its copy costs ≤ 10 % of the residuals (≳ 40 modelled tiles).
    allocate : bool
        With ``target_ratio`` and ≥ 2 modelled tiles: give every tile its own width, busy
        tiles more (a pilot fit of ``ALLOC_PILOT`` of the steps measures each tile's error;
        bytes ∝ error^0.45, widths within ⅓…2× the uniform width, same total budget; format
        3). ``False``: one width for all (format 2).
    device : {"cpu", "cuda"}
        Training device. Decoding always runs on the CPU.
    seed : int
        Seed of all random choices (training is reproducible on one device and torch build).
    overwrite : bool
        Replace ``dest`` if it exists.
    progress : callable, optional
        Called as ``progress(tiles_done, tiles)`` after each group of tiles is trained.
    dims : sequence of str, optional
        Axis names, stored for :func:`bigcomp.open` (default ``dim_0``, ``dim_1``, ...).
    model : {"siren", "grid"}
        ``"siren"``: the per-tile networks described here. ``"grid"``: learned latent grids
        and one shared decoder (:func:`bigcomp.inr.grid.compress_grid`; +1.3 dB over the
        SIREN at 500× on the brain stack, docs/inr.md); it takes ``camera``, ``target_ratio``,
        ``tile``, ``domain``, ``device``, ``seed``, ``overwrite``, ``progress``, ``dims`` from
        here and its own parameters from ``grid_options``.
    grid_options : dict, optional
        Keyword arguments of :func:`bigcomp.inr.grid.compress_grid` (``model="grid"`` only).

    Returns
    -------
    str
        ``dest``.

    Raises
    ------
    ParameterError
        Conflicting or out-of-range parameters, ``dest`` exists, unreachable target ratio.
    UnsupportedDataError
        Non-numeric data or NaN/inf values.

    Examples
    --------
    >>> from bigcomp.datasets import light_sheet
    >>> compress_inr(light_sheet((8, 64, 64)).data, "s.zarr", target_ratio=200)  # doctest: +SKIP
    """
    if model == "grid":
        siren_only = {"target_psnr": (target_psnr, None), "steps": (steps, 1000),
                      "width": (width, None), "depth": (depth, None), "bits": (bits, 6),
                      "batch": (batch, 2048), "lr": (lr, 1e-2), "w0": (w0, 30.0),
                      "init": (init, "auto"), "allocate": (allocate, True)}
        given = [k for k, (v, d) in siren_only.items() if v != d]
        if given:
            raise ParameterError(
                f"{', '.join(given)}: not parameters of model='grid'; pass its own "
                "(steps, batch, hidden, levels, ...) in grid_options, see "
                "bigcomp.inr.grid.compress_grid")
        from .grid import compress_grid

        return compress_grid(data, dest, camera=camera, target_ratio=target_ratio, tile=tile,
                             domain=domain, device=device, seed=seed, overwrite=overwrite,
                             progress=progress, dims=dims, **(grid_options or {}))
    if model != "siren":
        raise ParameterError(f"model must be 'siren' or 'grid', got {model!r}")
    if grid_options:
        raise ParameterError("grid_options apply to model='grid' only")
    t0 = time.perf_counter()
    data, torch = _check(data, camera, target_ratio, target_psnr, width, steps, bits, device,
                         batch, domain, init, depth)
    if os.path.exists(os.fspath(dest)) and not overwrite:
        raise ParameterError(f"{os.fspath(dest)} exists; pass overwrite=True to replace it")
    axis_names = None if dims is None else [str(d) for d in dims]  # (`dims` is reused below)
    if axis_names is not None and len(axis_names) != data.ndim:
        raise ParameterError(f"dims {axis_names} do not name the {data.ndim} axes of the data")
    if tile is None and target_ratio is not None:
        tile = _auto_tile(data.shape, np.dtype(data.dtype).itemsize, float(target_ratio),
                          depth, bits)
    grid = TileGrid.create(data.shape, tile)
    dtype = np.dtype(data.dtype)
    dom_cam = _domain_camera(data, grid, camera, domain)
    fwd = None if dom_cam is None else (lambda x: dom_cam.forward(x))
    inv = None if dom_cam is None else (lambda y: dom_cam.inverse(y))
    # pass 1: empty test, normalisation (in the fitting domain), saliency
    ntiles = grid.ntiles
    means = np.zeros(ntiles)
    scales = np.zeros(ntiles)
    sals: dict[int, np.ndarray] = {}
    lo, hi = math.inf, -math.inf
    model_idx = []
    for i in range(ntiles):
        x = _read(data, grid, i)
        floor = 1e-6 * max(1.0, abs(float(x.mean())))
        empty, m, s, sal = tile_features(x, camera, scale_floor=floor)
        means[i] = m
        lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
        if not empty:
            if fwd is not None:
                xv = fwd(x)
                means[i] = float(xv.mean())
                s = max(float(xv.std()), 1e-6 * max(1.0, abs(means[i])))
            scales[i] = s
            model_idx.append(i)
            if len(sals) < 4096:  # keep a bounded number of maps; others are recomputed
                sals[i] = sal.astype(np.float32)
    feats = (means, scales, sals, camera, fwd, inv)
    n_model = len(model_idx)
    raw = math.prod(data.shape) * dtype.itemsize
    dims = len(grid.axes)
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    per_tile = math.prod(grid.model_shape) * 4 * 3 + POOL * 8
    group = max(1, (2**30 if dev.type == "cuda" else 2**28) // per_tile)
    init_used = _choose_init(init, n_model, bits)
    kw = {"depth": 2, "w0": w0, "steps": steps, "batch": batch, "lr": lr, "bits": bits,
          "qat": QAT, "device": dev, "seed": seed, "init": init_used}
    # network width (and depth, unless given)
    if width is None and target_ratio is not None:
        if n_model:
            width, depth = _shape_for_ratio(raw, float(target_ratio), grid, n_model, depth,
                                            bits, init_used == "reptile")
        else:
            width, depth = 8, depth or 2
    elif width is None and target_psnr is not None and n_model:
        pilot = model_idx[:: max(1, n_model // PILOT_TILES)][:PILOT_TILES]
        truth = [_read(data, grid, i) for i in pilot]
        ladder, best = list(WIDTHS), None
        lo_i, hi_i = 0, len(ladder) - 1
        while lo_i <= hi_i:
            mid = (lo_i + hi_i) // 2
            w, dp = ladder[mid], depth or _auto_depth(ladder[mid])
            sh, rs, cd = _train(data, grid, pilot, feats, width=w, group=group,
                                **{**kw, "depth": dp})
            dec = _decode_rows(sh, rs, cd, grid, pilot, feats, width=w, depth=dp, w0=w0,
                               bits=bits, dtype=dtype)
            p = _psnr(np.concatenate([t.ravel() for t in truth]),
                      np.concatenate([d.ravel() for d in dec]), hi - lo)
            if p >= target_psnr:
                best, hi_i = ladder[mid], mid - 1
            else:
                lo_i = mid + 1
        width = best if best is not None else ladder[-1]
    elif width is None:
        width = 32
    depth = depth or _auto_depth(width)
    kw["depth"] = depth
    p_count = B.nparams(dims, width, depth)
    pack_tiles = max(1, -(-PACK_SYMBOLS // p_count))
    t1 = time.perf_counter()
    widths = None
    if allocate and target_ratio is not None and n_model >= 2:
        # per-tile widths: a short pilot fit at the uniform width measures each tile's
        # error; the same byte budget is then shared ∝ error ** ALLOC_GAMMA (docs/inr.md)
        lo_w = max(4, math.floor(width * ALLOC_RANGE[0]))
        # a stored (float16) origin has the largest width: widen less (its bytes grow)
        hi_w = max(lo_w, math.ceil(width * (ALLOC_RANGE[1] if init_used != "reptile"
                                            else ALLOC_STORED_MAX)))
        err, presid = _pilot_errors(data, grid, model_idx, feats, width=width, depth=depth,
                                    w0=w0, steps=max(1, round(steps * ALLOC_PILOT)),
                                    batch=batch, lr=lr, device=dev, seed=seed, group=group)
        # the whole budget less the widths part, in the estimate's bytes scaled by the
        # measured / estimated bytes of the pilot's residuals, quantised and coded (the
        # estimate, _bpw, is optimistic by ≈ 8 % at depth 3, width 16: docs/inr.md row 9)
        npk = -(-n_model // pack_tiles)
        tables = 120 * npk  # coder tables, part of _fixed_bytes and of the measured packs
        scale = 1.0
        if ALLOC_MEASURED:
            scale = _coded_bytes(presid, dims, width, depth, bits, pack_tiles) / (
                n_model * _tile_bytes(dims, width, depth, bits) + tables)
        top = hi_w
        for _ in range(1 + 3 * (init_used == "reptile")):
            rest = raw / float(target_ratio) - _fixed_bytes(
                ntiles, n_model, B.nparams(dims, top, depth), pack_tiles,
                init_used == "reptile")
            if ALLOC_MEASURED:  # the whole budget, in estimated bytes
                avail = (rest - 2 * n_model + tables) / scale - tables
            else:  # the uniform width's bytes (rows 7–8)
                avail = min(n_model * _tile_bytes(dims, width, depth, bits), rest) - 2 * n_model
            # with a stored origin (its size follows the largest width) iterate on that width
            widths = _allocate(err, avail, dims, depth, bits, min(lo_w, top), top)
            top = int(widths.max())
        if (widths == width).all():
            widths = None
        else:
            width = int(widths.max())
    shapes = B.layer_shapes(dims, width, depth)
    if n_model:
        shared, resid, codes = _train(data, grid, model_idx, feats, width=width, group=group,
                                      progress=progress, widths=widths, **kw)
    else:
        shared = np.zeros(p_count, np.float32)
        resid = np.zeros((0, p_count), np.float32)
        codes = np.zeros((0, len(shapes)), np.uint8)
    t_train = time.perf_counter() - t1
    table = np.stack([means, scales], axis=1)
    from .. import __version__

    meta = {"mode": "inr", "format_version": 2 if widths is None else SIREN_VERSION,
            "version": __version__,
            "shape": list(data.shape),
            "dtype": dtype.str, "tile": list(grid.tile), "width": int(width), "depth": depth,
            "w0": float(w0), "bits": int(bits), "pack_tiles": int(pack_tiles),
            "n_tiles": int(ntiles), "n_model": int(n_model),
            "camera": camera.to_dict() if camera is not None else None,
            "domain": None if dom_cam is None else {"kind": "gat", **dom_cam.to_dict()},
            "shared": "stored" if init_used == "reptile" and n_model else "seeded",
            "init_seed": int(seed),
            "training": {"steps": int(steps), "batch": int(batch), "lr": float(lr),
                         "seed": int(seed), "init": init_used, "target_ratio": target_ratio,
                         "target_psnr": target_psnr, "device": str(dev),
                         "train_seconds": round(t_train, 3),
                         "seconds": round(time.perf_counter() - t0, 3)}}
    if widths is not None:
        meta["widths"] = "per_tile"
    if axis_names is not None:
        meta["dims"] = axis_names
    stored_shared = shared if meta["shared"] == "stored" else None

    def encode(cd: np.ndarray) -> list[bytes]:
        if widths is None:
            q = B.quantise(resid, cd, shapes, bits)
            return [B.encode_pack(q[k:k + pack_tiles], cd[k:k + pack_tiles])
                    for k in range(0, n_model, pack_tiles)]
        qs = [B.quantise(resid[r][None], cd[r:r + 1],
                         B.layer_shapes(dims, int(widths[r]), depth), bits)[0]
              for r in range(n_model)]
        return [B.encode_pack_var(qs[k:k + pack_tiles], cd[k:k + pack_tiles], shared.size)
                for k in range(0, n_model, pack_tiles)]

    packs = encode(codes)
    write_store(dest, meta, table, stored_shared, packs, overwrite=True, widths=widths)
    if target_ratio is not None and n_model:
        # rate control: coarser steps (one code = ×2^(1/8)) for all tensors until it fits
        budget = raw / float(target_ratio)
        # + the metadata fields written below (step_shift, retrain_steps)
        fixed = (inr_info(dest)["stored_bytes"] - sum(len(p) for p in packs)
                 + len(', "step_shift": 255, "retrain_steps": 1000000'))
        def shift(cd: np.ndarray) -> tuple[int, np.ndarray, list[bytes]]:
            """Smallest code shift d (bisected) whose packs fit; (d, codes + d, packs)."""
            lo_d, hi_d, best = 0, 256, None
            while hi_d - lo_d > 1:
                mid = (lo_d + hi_d) // 2
                c2 = np.minimum(cd.astype(np.int64) + mid, 255).astype(np.uint8)
                trial = encode(c2)
                if fixed + sum(len(p) for p in trial) <= budget:
                    hi_d, best = mid, (c2, trial)
                else:
                    lo_d = mid
            if best is None:
                c2 = np.minimum(cd.astype(np.int64) + hi_d, 255).astype(np.uint8)
                best = (c2, encode(c2))
            return hi_d, best[0], best[1]

        if fixed + sum(len(p) for p in packs) > budget:
            d, codes2, packs = shift(codes)
            ft = round(steps * RETRAIN)
            if ft >= 1:
                # QAT on the coarser grid (rounding onto it untrained cost 0.9–2.4 dB/code)
                resid = _finetune(data, grid, model_idx, feats, shared, resid, codes2,
                                  width=width, depth=depth, w0=w0, steps=ft, batch=batch,
                                  lr=lr, bits=bits, device=dev, seed=seed, group=group,
                                  init=init_used, widths=widths)
                codes = codes2
                packs = encode(codes)
                if fixed + sum(len(p) for p in packs) > budget:
                    d2, codes, packs = shift(codes)
                    d += d2
                meta["training"]["retrain_steps"] = int(ft)
            meta["training"]["step_shift"] = int(d)
            write_store(dest, meta, table, stored_shared, packs, overwrite=True, widths=widths)
    return os.fspath(dest)
