"""Fidelity evaluation: does compression change what a scientist measures?

``evaluate(data, camera=...)`` compresses ``data`` with each bigcomp mode and each peer
(chunk by chunk, as a zarr store would), decodes it and compares the result with the original
using :mod:`bigcomp.metrics`: ratio, PSNR, SSIM, errors in camera-noise σ, intensity
correlation, Fourier ring correlation, segmentation Dice/IoU, spot localisation and, for
synthetic data with a known noise-free image, how far each error is from the noise itself.
It returns a pandas DataFrame (one row per mode/peer) and optionally writes a report folder
(``report.md``, ``report.html``, PNG plots).

Method specs are strings: a name, then ``:key=value`` options. bigcomp modes: ``lossless``,
``wnl:q=1`` (``:order=pq``, ``:coder=fast``), ``temporal:q=1`` (``:threshold=4``,
``:noise=camera``; over the first axis, or ``t``), ``inr:ratio=500`` (or ``:psnr=40``,
``:steps=...``, ``:device=cuda``, ``:model=grid`` for the latent-grid model; needs the ``inr``
extra). The chunked modes go chunk by
chunk, as a zarr store would; temporal and inr compress the whole (region of the) array into
a temporary store and count every byte it stores. Peers: ``zstd`` (``:level=19``), ``blosc``,
``jpegxl`` (lossless; ``:distance=1`` for lossy), ``sz3`` (at each ``q`` of the wnl modes, or
``sz3:q=1``), ``x265`` (``:crf=28``, ``:bits=12``) and ``x264`` (``:crf=23``, ``:bits=8``):
the planes of the whole (region of the) array as one grey video through ffmpeg
(:mod:`bigcomp.video`; reported as not installed without it).

Needs the ``eval`` extra (scikit-image, scipy, pandas, matplotlib); peers need their own
packages (the ``bench`` extra) and are reported as not installed otherwise.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer

from .noise import CameraModel

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_MODES", "DEFAULT_PEERS", "Evaluation", "evaluate", "evaluate_command",
           "parse_region", "run_evaluation"]

DEFAULT_MODES = ("lossless", "wnl:q=1", "wnl:q=2", "wnl:q=4")
DEFAULT_PEERS = ("zstd", "blosc", "jpegxl", "sz3")


@dataclass
class Method:
    """One way to compress: per-block ``encode(block) -> bytes`` and ``decode(bytes, block)``."""

    name: str
    kind: str  # "bigcomp" or "peer"
    q: float  # 0 = lossless
    encode: Callable[[np.ndarray], bytes] | None = None
    decode: Callable[[bytes, np.ndarray], np.ndarray] | None = None
    note: str = ""
    # whole-array methods (temporal, inr): ``whole(array) -> (decoded, stored bytes)``
    whole: Callable[[np.ndarray], tuple[np.ndarray, int]] | None = None


@dataclass
class Evaluation:
    """Result of :func:`run_evaluation`: the table and per-method curves for the plots."""

    table: pd.DataFrame
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------ method specs
def _parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    name, *opts = spec.strip().split(":")
    kv = {}
    for o in opts:
        if "=" not in o:
            raise ValueError(f"bad option {o!r} in {spec!r}: expected key=value")
        k, v = o.split("=", 1)
        kv[k.strip()] = v.strip()
    return name.strip().lower(), kv


def _bigcomp(spec: str, camera: CameraModel) -> Method:
    from .chunk import decode_chunk, encode_chunk

    name, o = _parse_spec(spec)
    if name in ("temporal", "inr"):
        return _store_method(name, o, camera)
    if name not in ("lossless", "wnl"):
        raise ValueError(f"unknown bigcomp mode {spec!r}: use lossless, wnl:q=<σ>, "
                         "temporal or inr")
    q = 0.0 if name == "lossless" else float(o.get("q", 1.0))
    kw = {"q": q, "camera": camera if q else None, "order": o.get("order", "qp"),
          "coder": o.get("coder", "max")}
    label = "bigcomp lossless" if q == 0 else f"bigcomp wnl q={q:g}"
    label += "".join(f" {k}={v}" for k, v in o.items() if k != "q")
    return Method(label, "bigcomp", q, lambda a: encode_chunk(a, **kw),
                  lambda b, like: decode_chunk(b))


def _option_value(text: str) -> int | float | str:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _store_method(name: str, o: dict[str, str], camera: CameraModel) -> Method:
    """``temporal`` or ``inr``: compressed as a whole into a temporary store."""
    options = {k: _option_value(v) for k, v in o.items()}
    if name == "temporal":
        q = float(options.pop("q", 1.0))
        label = f"bigcomp temporal q={q:g}"
    else:
        q = math.nan  # not noise-exact
        for short, key in (("ratio", "target_ratio"), ("psnr", "target_psnr")):
            if short in options:
                options[key] = float(options.pop(short))
        if "target_ratio" not in options and "target_psnr" not in options:
            options["target_ratio"] = 500.0
        if options.get("model") == "grid":  # its own parameters (steps, hidden, ...)
            common = {"model", "target_ratio", "target_psnr", "device", "seed", "tile"}
            options["grid_options"] = {k: options.pop(k) for k in list(options)
                                       if k not in common}
        label = "bigcomp inr"
    label += "".join(f" {k}={v}" for k, v in o.items() if k != "q")

    def whole(a: np.ndarray) -> tuple[np.ndarray, int]:
        import tempfile

        from .pipeline import compress
        from .pipeline import open as open_store

        with tempfile.TemporaryDirectory() as tmp:
            res = compress(a, os.path.join(tmp, "store.zarr"), mode=name, q=q if q > 0 else 1.0,
                           camera=camera, progress=False, scheduler="synchronous", **options)
            return np.asarray(open_store(res.path).values), res.stored_bytes

    return Method(label, "bigcomp", q, whole=whole)


def _peer(spec: str, camera: CameraModel, qs: Sequence[float]) -> list[Method]:
    name, o = _parse_spec(spec)
    if name in ("x264", "x265"):
        return [_video(name, **o)]
    makers = {"zstd": _zstd, "blosc": _blosc, "jpegxl": _jpegxl, "sz3": _sz3}
    if name not in makers:
        raise ValueError(f"unknown peer {spec!r}: use one of {sorted([*makers, 'x264', 'x265'])}")
    try:
        if name == "sz3":
            return [_sz3(camera, float(q)) for q in ([o["q"]] if "q" in o else qs)]
        return [makers[name](**o)]
    except ImportError as exc:
        return [Method(name, "peer", math.nan, note=f"not installed ({exc.name}); "
                       "pip install 'bigcomp[bench]'")]


def _frombuf(buf: bytes, like: np.ndarray) -> np.ndarray:
    return np.frombuffer(buf, like.dtype).reshape(like.shape)


def _zstd(level: str = "3") -> Method:
    import zstandard

    # one (de)compressor per call: their objects must not be shared between dask threads
    return Method(f"zstd -{level}", "peer", 0.0,
                  lambda a: zstandard.ZstdCompressor(level=int(level)).compress(a.tobytes()),
                  lambda b, like: _frombuf(zstandard.ZstdDecompressor().decompress(b), like))


def _blosc(clevel: str = "5") -> Method:
    import blosc2

    def enc(a: np.ndarray) -> bytes:
        return blosc2.compress2(np.ascontiguousarray(a), typesize=a.dtype.itemsize,
                                clevel=int(clevel), filters=[blosc2.Filter.BITSHUFFLE],
                                codec=blosc2.Codec.ZSTD)

    return Method("blosc2 bitshuffle+zstd", "peer", 0.0, enc,
                  lambda b, like: _frombuf(blosc2.decompress2(b), like))


def _jpegxl(effort: str = "3", distance: str | None = None) -> Method:
    import imagecodecs

    kw: dict[str, Any] = {"effort": int(effort)}
    kw.update(lossless=True) if distance is None else kw.update(distance=float(distance))

    def enc(a: np.ndarray) -> bytes:
        planes = a.reshape(-1, *a.shape[-2:])
        blobs = [imagecodecs.jpegxl_encode(p, **kw) for p in planes]
        head = np.asarray([len(b) for b in blobs], "<u8").tobytes()
        return len(blobs).to_bytes(8, "little") + head + b"".join(blobs)

    def dec(buf: bytes, like: np.ndarray) -> np.ndarray:
        n = int.from_bytes(buf[:8], "little")
        sizes = np.frombuffer(buf[8:8 + 8 * n], "<u8")
        starts = [8 + 8 * n + int(s) for s in np.concatenate([[0], np.cumsum(sizes)])]
        planes = [imagecodecs.jpegxl_decode(buf[s:e]) for s, e in itertools.pairwise(starts)]
        return np.stack(planes).reshape(like.shape).astype(like.dtype)

    lossy = distance is not None
    return Method(f"JPEG-XL {'distance ' + distance if lossy else 'lossless'}", "peer",
                  math.nan if lossy else 0.0, enc, dec, "per 2-D plane")


def _video(name: str, crf: str | None = None, bits: str | None = None) -> Method:
    """x264/x265 through ffmpeg: the planes of the whole (region of the) array as one grey
    video (:mod:`bigcomp.video`)."""
    from . import video

    codec = "lib" + name
    crf = crf or ("23" if name == "x264" else "28")
    bits = bits or ("8" if name == "x264" else "12")
    label = f"{name} crf {crf}, {bits}-bit"
    if not video.available(codec):
        return Method(label, "peer", math.nan, note=f"not installed (ffmpeg with {codec})")

    def whole(a: np.ndarray) -> tuple[np.ndarray, int]:
        nbytes, back = video.roundtrip(a, codec=codec, crf=int(crf), bits=int(bits))
        return back, nbytes

    return Method(label, "peer", math.nan, note="planes as frames", whole=whole)


def _sz3(camera: CameraModel, q: float) -> Method:
    from pysz import sz, szConfig, szErrorBoundMode

    def enc(a: np.ndarray) -> bytes:
        y = camera.forward(a).astype(np.float32)
        y = y.reshape(-1, *y.shape[-3:]) if y.ndim > 4 else y
        conf = szConfig()
        conf.errorBoundMode = szErrorBoundMode.ABS
        conf.absErrorBound = q / 2
        return bytes(sz.compress(y, conf)[0])

    def dec(buf: bytes, like: np.ndarray) -> np.ndarray:
        shp = like.shape if like.ndim <= 4 else (math.prod(like.shape[:-3]), *like.shape[-3:])
        y = np.asarray(sz.decompress(np.frombuffer(buf, np.uint8), np.float32, shp)[0])
        x = camera.inverse(y.reshape(like.shape))
        if like.dtype.kind in "ui":
            info = np.iinfo(like.dtype)
            return np.clip(np.rint(x), info.min, info.max).astype(like.dtype)
        return x.astype(like.dtype)

    return Method(f"SZ3 q={q:g}", "peer", q, enc, dec, "abs bound q/2 on the float32 VST")


# ------------------------------------------------------------------------------ running
def parse_region(region: str | Sequence[slice] | None, ndim: int) -> tuple[slice, ...]:
    """``"0:8,:,100:300"`` (numpy slice syntax per axis) -> a tuple of slices.

    Examples
    --------
    >>> parse_region("2:4,:,::2", 3)
    (slice(2, 4, None), slice(None, None, None), slice(None, None, 2))
    """
    if region is None:
        return (slice(None),) * ndim
    if not isinstance(region, str):
        return tuple(region) + (slice(None),) * (ndim - len(tuple(region)))
    parts = [p.strip() for p in region.split(",")]
    if len(parts) > ndim:
        raise ValueError(f"region {region!r} has more axes than the data ({ndim})")
    out = []
    for p in parts:
        nums = [int(v) if v.strip() else None for v in p.split(":")]
        out.append(slice(nums[0], nums[0] + 1) if len(nums) == 1 else slice(*nums))
    return tuple(out) + (slice(None),) * (ndim - len(out))


def _roundtrip(x: Any, m: Method) -> tuple[Any, int]:
    """Encode and decode every chunk of ``x``; the decoded array (held in memory) and bytes."""
    import dask
    import dask.array as da

    if m.whole is not None:
        back, nbytes = m.whole(np.asarray(x))
        return da.from_array(back, chunks=x.chunks), nbytes

    def one(block: np.ndarray) -> tuple[np.ndarray, int]:
        blob = m.encode(np.ascontiguousarray(block))
        back = np.asarray(m.decode(blob, block))
        if back.shape != block.shape or back.dtype != block.dtype:
            raise RuntimeError(f"{m.name}: decoded {back.shape} {back.dtype}, "
                               f"expected {block.shape} {block.dtype}")
        return back, len(blob)

    bounds = [np.concatenate([[0], np.cumsum(c)]) for c in x.chunks]
    keys = list(np.ndindex(*x.numblocks))
    blocks = x.to_delayed()
    results = dask.compute(*[dask.delayed(one)(blocks[k]) for k in keys])
    out = np.empty(x.shape, x.dtype)
    for k, (back, _) in zip(keys, results, strict=True):
        out[tuple(slice(b[i], b[i + 1]) for b, i in zip(bounds, k, strict=True))] = back
    return da.from_array(out, chunks=x.chunks), sum(n for _, n in results)


def _spot_table(spots: np.ndarray, region: tuple[slice, ...], shape: tuple[int, ...]):
    """Ground-truth ``(t, y, x, ...)`` rows inside a region of a 3-D array, shifted to it."""
    s = np.asarray(spots, np.float64)
    keep = np.ones(len(s), bool)
    shift = []
    for ax, sl in enumerate(region[:3]):
        start, stop, step = sl.indices(shape[ax])
        if step != 1:
            raise ValueError("regions with steps cannot be combined with ground-truth spots")
        keep &= (s[:, ax] >= start - 0.5) & (s[:, ax] < stop - 0.5)
        shift.append(start)
    s = s[keep].copy()
    s[:, :3] -= shift
    return s


def _truth_localisation(truth: np.ndarray, det_orig: np.ndarray, det: np.ndarray,
                        err_orig: dict[str, float], *, radius: float, nlead: int,
                        n_boot: int) -> dict[str, float]:
    """Table columns comparing decoded and original localisation against ground truth."""
    from . import metrics

    lt = metrics.localisation_error(truth, det, radius=radius, nlead=nlead)
    pc = metrics.paired_localisation_change(truth, det_orig, det, radius=radius, nlead=nlead,
                                            n_boot=n_boot)
    return {"loc_rmse_px": lt["rmse"], "recall": lt["recall"], "loc_pairs": pc["pairs"],
            "loc_change_pct": pc["change_pct"], "loc_change_ci_low": pc["ci_low"],
            "loc_change_ci_high": pc["ci_high"],
            "loc_median_change_pct": pc["median_change_pct"],
            "loc_median_ci_low": pc["median_ci_low"],
            "loc_median_ci_high": pc["median_ci_high"],
            "loc_shift_change_pct": pc["shift_change_pct"],
            "loc_change_unpaired_pct": 100 * (lt["rmse"] / err_orig["rmse"] - 1)}


def run_evaluation(data: Any, *, camera: CameraModel | None = None,
                   modes: Sequence[str] = DEFAULT_MODES, peers: Sequence[str] = DEFAULT_PEERS,
                   truth: Any = None, spots: Any = None, region: Any = None,
                   chunks: Sequence[int] | None = None, psf_sigma: float = 1.3,
                   segment_sigma: float = 2.0, threshold: float | str = "otsu",
                   per_image_threshold: bool = False, match_radius: float = 1.0,
                   n_boot: int = 2000) -> Evaluation:
    """Like :func:`evaluate`, but returns the table plus the curves used by the plots."""
    import pandas as pd

    from . import metrics
    from .metrics._blocks import as_dask

    if hasattr(data, "truth") and hasattr(data, "gain"):  # a bigcomp.datasets.Synthetic
        syn = data
        camera = camera or CameraModel(syn.gain, syn.offset, syn.read_noise)
        truth = syn.truth if truth is None else truth
        spots = syn.spots if spots is None else spots
        data = syn.data
    if camera is None:
        raise ValueError("evaluate needs camera=CameraModel(...) "
                         "(bigcomp.estimate_camera(data) estimates it)")
    x = as_dask(data, chunks=chunks)
    reg = parse_region(region, x.ndim)
    x = x[reg]
    t = None if truth is None else as_dask(truth)[reg].rechunk(x.chunks)
    truth_spots = None
    if spots is not None and not isinstance(spots, bool):
        truth_spots = _spot_table(spots, reg, as_dask(data).shape) if region else np.asarray(
            spots, np.float64)
    do_spots = spots is not None and spots is not False
    nlead = x.ndim - 2
    qs = sorted({m.q for m in (_bigcomp(s, camera) for s in modes) if m.q > 0}) or [1.0]
    methods = [_bigcomp(s, camera) for s in modes]
    methods += [m for s in peers for m in _peer(s, camera, qs)]

    det_orig = err_orig = None
    if do_spots:
        det_orig = metrics.detect_spots(x, camera=camera, psf_sigma=psf_sigma)
        if truth_spots is not None:
            err_orig = metrics.localisation_error(truth_spots, det_orig, radius=match_radius,
                                                  nlead=nlead)
    mid = tuple(s // 2 for s in x.shape[:-2])
    view = mid + tuple(slice(max(0, n // 2 - 128), n // 2 + 128) for n in x.shape[-2:])
    rows, details, noise_rms = [], {}, None
    for m in methods:
        row: dict[str, Any] = {"method": m.name, "kind": m.kind, "q": m.q, "note": m.note}
        rows.append(row)
        if m.encode is None and m.whole is None:
            continue
        try:
            dec, nbytes = _roundtrip(x, m)
        except Exception as exc:  # noqa: BLE001 - a peer that cannot take this data: say so, go on
            row["note"] = f"failed: {type(exc).__name__}: {exc}"[:160]
            continue
        ps = metrics.pixel_stats(x, dec, camera=camera, truth=t)
        freq, frc = metrics.fourier_correlation(x, dec)
        row.update(ratio=x.nbytes / nbytes, psnr_db=ps["psnr"], ssim=metrics.ssim(x, dec),
                   max_err_sigma=ps["max_sigma"], mean_err_sigma=ps["mean_sigma"],
                   rms_err_sigma=ps["rms_sigma"], correlation=ps["correlation"],
                   frc_min=float(np.nanmin(frc)))
        if segment_sigma:
            seg = metrics.segmentation_agreement(x, dec, sigma=segment_sigma,
                                                 threshold=threshold,
                                                 per_image=per_image_threshold)
            row.update(dice=seg["dice"], iou=seg["iou"])
        if do_spots:
            det = metrics.detect_spots(dec, camera=camera, psf_sigma=psf_sigma)
            le = metrics.localisation_error(det_orig, det, radius=match_radius, nlead=nlead)
            row.update(spots=len(det), loc_shift_px=le["rmse"], spot_jaccard=le["jaccard"])
            if err_orig is not None:
                row.update(_truth_localisation(truth_spots, det_orig, det, err_orig,
                                               radius=match_radius, nlead=nlead,
                                               n_boot=n_boot))
        if t is not None:
            row.update(noise_excess=ps["truth_rms_ratio"], truth_rms_sigma=ps["truth_rms_sigma"])
            noise_rms = ps["noise_rms_sigma"]
        details[m.name] = {"max_sigma": ps["max_sigma"], "hist": ps["hist"],
                           "edges": ps["edges"], "frc": (freq, frc),
                           "error_slice": camera.forward(np.asarray(dec[view])) -
                           camera.forward(np.asarray(x[view]))}
    table = pd.DataFrame(rows).set_index("method")
    info = {"shape": x.shape, "dtype": str(x.dtype), "camera": camera, "region": region,
            "chunks": x.chunksize, "mb": x.nbytes / 1e6, "slice": mid,
            "loc_rmse_original": None if err_orig is None else err_orig["rmse"],
            "spots_original": None if det_orig is None else len(det_orig),
            "noise_rms_sigma": noise_rms}
    return Evaluation(table, details, info)


def evaluate(data: Any, *, camera: CameraModel | None = None,
             modes: Sequence[str] = DEFAULT_MODES, peers: Sequence[str] = DEFAULT_PEERS,
             truth: Any = None, region: Any = None, out: str | os.PathLike | None = None,
             spots: Any = None, title: str | None = None, **options: Any) -> pd.DataFrame:
    """Compress with each mode and peer, decode, and measure what changed.

    Parameters
    ----------
    data : array_like, dask.array.Array or bigcomp.datasets.Synthetic
        Raw camera counts (≥ 2-D; planes are the last two axes). A ``Synthetic`` brings its
        camera, ``truth`` and ground-truth ``spots``.
    camera : CameraModel
        Camera noise model (σ units, VST-domain peers). ``bigcomp.estimate_camera`` gives one.
    modes, peers : sequence of str
        Method specs (see the module notes).
    truth : array_like, optional
        Noise-free image: adds ``noise_excess`` = RMS(decoded − truth) / RMS(original − truth)
        and ``truth_rms_sigma`` (RMS of VST(decoded) − VST(truth); the noise alone gives ≈ 1).
    region : str or tuple of slice, optional
        Evaluate a sub-array only, e.g. ``"0:8,:,:"``.
    out : path, optional
        Write ``report.md``, ``report.html`` and PNG plots into this folder.
    spots : ndarray or bool, optional
        Ground-truth spot table ``(t, y, x, ...)`` (localisation error vs truth and its change
        in %), or ``True`` to detect spots and compare decoded with original detections only.
    title : str, optional
        Report title.
    **options
        ``chunks``, ``psf_sigma`` (1.3), ``segment_sigma`` (2.0; 0 skips segmentation),
        ``threshold`` ("otsu", "li", "triangle" or a number; an automatic threshold is
        computed on the original and applied to both), ``per_image_threshold`` (False; True
        computes it on each array, see :func:`bigcomp.metrics.segmentation_agreement`),
        ``match_radius`` (1.0 px), ``n_boot`` (2000 bootstrap resamples for the
        localisation CI); see :func:`run_evaluation`.

    Returns
    -------
    pandas.DataFrame
        One row per method: ``kind``, ``q``, ``ratio``, ``psnr_db``, ``ssim``,
        ``max_err_sigma``, ``mean_err_sigma``, ``rms_err_sigma``, ``correlation``,
        ``frc_min``, ``dice``, ``iou``, spot columns (``spots``, ``loc_shift_px`` — RMS shift
        of decoded vs original detections, ``spot_jaccard``, and with ground truth
        ``loc_rmse_px``, ``recall``, ``loc_pairs`` — true spots found in both,
        ``loc_change_pct`` — paired change of their RMS error with ``loc_change_ci_low`` /
        ``_high`` (bootstrap 95 % CI), ``loc_median_change_pct`` with ``loc_median_ci_low`` /
        ``_high``, ``loc_shift_change_pct`` and ``loc_change_unpaired_pct`` — the ratio of
        RMS errors over all matched spots of each; see
        :func:`bigcomp.metrics.paired_localisation_change`), truth columns and ``note``.
    """
    ev = run_evaluation(data, camera=camera, modes=modes, peers=peers, truth=truth,
                        spots=spots, region=region, **options)
    if out is not None:
        from .metrics.report import write_report

        write_report(ev, out, title=title or "bigcomp fidelity report")
    return ev.table


# ------------------------------------------------------------------------------ CLI
def _load(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, mmap_mode="r")
    if suffix in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(path)
    raise typer.BadParameter(f"{path}: expected a .tif/.tiff or .npy file")


def _threshold(text: str) -> float | str:
    from .metrics.segmentation import THRESHOLDS

    if text.strip().lower() in THRESHOLDS:
        return text.strip().lower()
    try:
        return float(text)
    except ValueError:
        raise typer.BadParameter(f"--threshold: expected one of {THRESHOLDS} or a number, "
                                 f"got {text!r}") from None


def evaluate_command(
    input: Annotated[Path, typer.Argument(help="Raw data: .tif/.tiff or .npy.", exists=True,
                                          dir_okay=False)],
    modes: Annotated[str, typer.Option(help="bigcomp modes, comma-separated: lossless, "
                                            "wnl:q=1, temporal:q=1, inr:ratio=500, ...")] =
    ",".join(DEFAULT_MODES),
    peers: Annotated[str, typer.Option(help="Peers, comma-separated (zstd, blosc, jpegxl, "
                                            "sz3, x264, x265); '' for none.")] =
    ",".join(DEFAULT_PEERS),
    out: Annotated[Path | None, typer.Option(help="Report folder (report.md, .html, PNGs).")]
    = None,
    gain: Annotated[float | None, typer.Option(help="Camera gain, ADU/e-.")] = None,
    offset: Annotated[float | None, typer.Option(help="Camera offset, ADU.")] = None,
    read_noise: Annotated[float | None, typer.Option(help="Read noise, e-.")] = None,
    camera_file: Annotated[str | None, typer.Option(
        "--camera", help="Camera file instead of --gain/--offset/--read-noise (camera.zarr from "
        "'bigcomp calibrate', .json, storm-analysis .npy); per-pixel maps are evaluated with "
        "their median camera.")] = None,
    region: Annotated[str | None, typer.Option(help="Sub-array, e.g. '0:8,:,100:300'.")]
    = None,
    spots: Annotated[bool, typer.Option(help="Detect and localise spots (SMLM, "
                                             "diffraction).")] = False,
    psf_sigma: Annotated[float, typer.Option(help="PSF σ in pixels for spots.")] = 1.3,
    threshold: Annotated[str, typer.Option(help="Segmentation threshold: otsu, li, triangle "
                                                "or a number.")] = "otsu",
    per_image_threshold: Annotated[bool, typer.Option(
        "--per-image-threshold/--shared-threshold",
        help="Compute the automatic threshold on each array, or once on the original and "
             "apply it to both (default).")] = False,
) -> None:
    """Compress INPUT with each mode and peer and report what changed (PSNR, SSIM, σ error,
    Dice, localisation). Missing camera parameters are estimated from the data."""
    from .estimate import estimate_camera

    data = np.asarray(_load(input))
    sub = data[parse_region(region, data.ndim)]
    if camera_file is not None:
        from .camera_file import load_camera

        if any(v is not None for v in (gain, offset, read_noise)):
            raise typer.BadParameter("give --camera or --gain/--offset/--read-noise, not both")
        camera = load_camera(camera_file)
        if hasattr(camera, "median_model"):  # per-pixel maps: σ units of their median camera
            typer.echo("per-pixel camera maps: evaluated with their median camera (compress "
                       "--camera keeps each pixel within its own bound)")
            camera = camera.median_model()
    elif None in (gain, offset, read_noise):
        camera = estimate_camera(sub, gain=gain, offset=offset, read_noise=read_noise)
    else:
        camera = CameraModel(gain, offset, read_noise)  # type: ignore[arg-type]
    typer.echo(f"{input.name} {data.shape} {data.dtype}; camera gain {camera.gain:.4g} ADU/e-, "
               f"offset {camera.offset:.4g} ADU, read noise {camera.read_noise:.4g} e-")
    table = evaluate(data, camera=camera, modes=[m for m in modes.split(",") if m.strip()],
                     peers=[p for p in peers.split(",") if p.strip()], region=region, out=out,
                     spots=True if spots else None, psf_sigma=psf_sigma,
                     threshold=_threshold(threshold), per_image_threshold=per_image_threshold,
                     title=f"bigcomp fidelity report: {input.name}")
    from .metrics.report import markdown_table

    typer.echo(markdown_table(table))
    if out is not None:
        typer.echo(f"report written to {out}")
