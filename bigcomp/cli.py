"""The ``bigcomp`` command line. Heavy imports live inside the commands so ``--help`` is instant."""

from __future__ import annotations

import math
from typing import Annotated

import typer

app = typer.Typer(
    name="bigcomp",
    help="Noise-calibrated compression of microscopy and diffraction data.",
    no_args_is_help=True,
    add_completion=False,
)


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"bigcomp {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the bigcomp version and exit.")] = False,
) -> None:
    """Noise-calibrated compression of microscopy and diffraction data."""


@app.command()
def demo(
    shape: Annotated[
        str, typer.Option(help="Shape of the synthetic light-sheet stack, as Z,Y,X.")
    ] = "32,512,512",
    q: Annotated[float, typer.Option(help="Quantisation step in noise σ for the lossy run.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed of the synthetic data.")] = 0,
) -> None:
    """Compress a synthetic light-sheet stack (known camera) lossless and within noise level.

    Prints, for each mode and coder: compression ratio, encode/decode speed and the largest
    error in units of the noise σ, measured on the integers actually decoded.
    """
    import time

    import numpy as np
    from rich.console import Console
    from rich.table import Table

    from .chunk import decode_chunk, encode_chunk
    from .datasets import light_sheet
    from .noise import CameraModel

    console = Console()
    dims = tuple(int(s) for s in shape.split(","))
    with console.status("generating synthetic light-sheet stack"):
        syn = light_sheet(dims, seed=seed)
    camera = CameraModel(syn.gain, syn.offset, syn.read_noise)
    data = syn.data
    console.print(
        f"light-sheet stack {data.shape} {data.dtype} ({data.nbytes / 1e6:.1f} MB), camera: "
        f"gain {camera.gain} ADU/e-, offset {camera.offset} ADU, read noise {camera.read_noise} e-"
    )
    table = Table(title="bigcomp demo")
    for col in ("mode", "coder", "ratio", "encode MB/s", "decode MB/s", "max error (σ)"):
        table.add_column(col, justify="right")
    y_true = camera.forward(data)
    for label, qq in (("lossless", 0.0), (f"wnl q={q:g}σ", q)):
        for coder in ("max", "rice", "fast"):
            decode_chunk(encode_chunk(data, q=qq, camera=camera, coder=coder))  # compile kernels
            t0 = time.perf_counter()
            blob = encode_chunk(data, q=qq, camera=camera, coder=coder)
            t1 = time.perf_counter()
            back = decode_chunk(blob)
            t2 = time.perf_counter()
            err = float(np.abs(camera.forward(back) - y_true).max())
            table.add_row(
                label,
                coder,
                f"{data.nbytes / len(blob):.2f}x",
                f"{data.nbytes / (t1 - t0) / 1e6:.0f}",
                f"{data.nbytes / (t2 - t1) / 1e6:.0f}",
                f"{err:.3f}",
            )
    console.print(table)


@app.command()
def version() -> None:
    """Print the bigcomp version."""
    from . import __version__

    typer.echo(__version__)


@app.command()
def warmup(
    dtype: Annotated[
        list[str] | None,
        typer.Option(help="Data type to prepare for (repeat it; default uint8, uint16, float32)."),
    ] = None,
    coder: Annotated[
        list[str] | None,
        typer.Option(help="Coder to prepare for (repeat it; default fast, max, rice)."),
    ] = None,
) -> None:
    """Compile the kernels into the on-disk cache, once per machine or image.

    Every later process (CLI call, notebook, dask worker) then loads them in about a second
    instead of compiling them. The cache is per user (BIGCOMP_CACHE_DIR overrides it).
    """
    from ._warmup import warmup as run_warmup
    from .errors import ParameterError

    kwargs = {k: v for k, v in (("dtypes", dtype), ("coders", coder)) if v}
    try:
        report = run_warmup(**kwargs)
    except ParameterError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    typer.echo(str(report))
    if not report.writable:
        typer.echo("error: nothing was saved: the kernel cache is off (BIGCOMP_NUMBA_CACHE=0) "
                   "or not writable (set BIGCOMP_CACHE_DIR to a writable folder)", err=True)
        raise typer.Exit(1)


# --------------------------------------------------------------------------- whole experiments
def _warn_to_console(console, caught) -> None:
    from rich.markup import escape

    for w in caught:
        console.print(f"[yellow]warning:[/yellow] {escape(str(w.message))}", soft_wrap=True)


def _error(console, message) -> None:
    """Print an error unwrapped (paths stay copyable) and without markup interpretation."""
    from rich.markup import escape

    console.print(f"[red]error:[/red] {escape(str(message))}", soft_wrap=True)


def _client(scheduler: str, workers: int | None):
    """``(context manager, scheduler argument)`` for the --scheduler option."""
    import contextlib

    if scheduler != "local":
        return contextlib.nullcontext(), scheduler
    from distributed import Client, LocalCluster

    from .pipeline import local_cluster_kwargs

    stack = contextlib.ExitStack()
    cluster = stack.enter_context(LocalCluster(**local_cluster_kwargs(workers)))
    client = stack.enter_context(Client(cluster))
    return stack, client


def _camera_option(value: str):
    """The camera of a ``--camera`` value: a camera file (camera.zarr, .json, storm .npy)."""
    from .camera_file import load_camera

    return load_camera(value)


_SCHEDULER_HELP = (
    "'local': a dask.distributed LocalCluster sized to this machine (one process per worker); "
    "'tcp://host:port': an existing cluster; or a local dask scheduler: 'threads', "
    "'processes', 'synchronous'.")


@app.command()
def compress(
    source: Annotated[str, typer.Argument(
        help="Input: TIFF, HDF5 ('file.h5:/dataset'), zarr v2/v3 or OME-Zarr path.")],
    dest: Annotated[str, typer.Argument(help="Output zarr v3 / OME-Zarr store (directory).")],
    q: Annotated[float, typer.Option(help="Quantisation step in noise σ (error ≤ q/2 σ).")] = 1.0,
    lossless: Annotated[bool, typer.Option("--lossless", help="Compress exactly (no q).")] = False,
    temporal: Annotated[bool, typer.Option(
        "--temporal", help="Temporal model: deviations from each pixel's median over time "
        "(axis 't' or the first), strong signals kept exactly.")] = False,
    threshold: Annotated[float, typer.Option(
        help="--temporal: |deviation| above this many σ is kept exactly.")] = 4.0,
    noise: Annotated[str, typer.Option(
        help="--temporal: per-pixel noise from 'mad', 'camera' or 'max' of both.")] = "max",
    inr: Annotated[bool, typer.Option(
        "--inr", help="Neural mode (needs bigcomp\\[inr]): small networks fitted per tile for "
        "100-2000x; visually faithful, not noise-exact.")] = False,
    target_ratio: Annotated[float | None, typer.Option(
        help="--inr: compression ratio to reach (default 500 without --target-psnr).")] = None,
    target_psnr: Annotated[float | None, typer.Option(
        help="--inr: PSNR (dB) to reach instead of a ratio.")] = None,
    inr_model: Annotated[str, typer.Option(
        help="--inr: 'siren' (a network per tile) or 'grid' (learned latent grids, one "
        "decoder; better at 500x on 3-D stacks, see docs/inr.md).")] = "siren",
    steps: Annotated[int | None, typer.Option(help="--inr: training steps.")] = None,
    device: Annotated[str, typer.Option(help="--inr: 'cpu' or 'cuda'.")] = "cpu",
    gain: Annotated[float | None, typer.Option(help="Camera gain, ADU per electron.")] = None,
    offset: Annotated[float | None, typer.Option(help="Camera offset (dark level), ADU.")] = None,
    read_noise: Annotated[float | None, typer.Option(help="Camera read noise, electrons.")] = None,
    camera_file: Annotated[str | None, typer.Option(
        "--camera", help="Camera file instead of --gain/--offset/--read-noise: camera.zarr "
        "(bigcomp calibrate), a .json global camera or a storm-analysis .npy.")] = None,
    chunks: Annotated[str | None, typer.Option(
        help="Chunk shape of the store, e.g. 16,256,256 (leading axes get 1; -1 = whole axis)."
    )] = None,
    coder: Annotated[str, typer.Option(help="'max' (smallest), 'rice' (near max, faster) or 'fast' (fastest).")] = "max",
    order: Annotated[str, typer.Option(
        help="'qp' quantise then predict, or 'pq' predict then quantise (slower, larger).")] = "qp",
    dataset: Annotated[str | None, typer.Option(
        help="Dataset inside an HDF5 file / array inside a zarr group.")] = None,
    dims: Annotated[str | None, typer.Option(
        help="Axis names, e.g. tczyx or t,c,z,y,x (default: from the source).")] = None,
    scheduler: Annotated[str, typer.Option(help=_SCHEDULER_HELP)] = "local",
    workers: Annotated[int | None, typer.Option(
        help="Workers of the local cluster (default: sized to cores and memory).")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace DEST if it exists (otherwise the same job on the same "
        "data resumes).")
    ] = False,
    no_pyramid: Annotated[bool, typer.Option(
        "--no-pyramid", help="Write level 0 only (default: also 2x mean-downsampled levels "
        "1, 2, ... from the same read, each within q/2 of its own noise σ; not with "
        "--temporal/--inr, which write none).")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Compress a whole experiment, chunk by chunk, into a zarr v3 / OME-Zarr store.

    Without --gain/--offset/--read-noise the camera model comes from the source's bigcomp
    metadata or is estimated from a sample of chunks (missing ones are estimated, given ones
    kept). A run that was interrupted resumes where it stopped when started again with the same
    options on the same data; other data or options are refused without --overwrite.
    """
    import warnings

    from rich.console import Console

    from .errors import BigcompError, ParameterError
    from .pipeline import compress as run_compress
    from .pipeline import estimate_noise

    console = Console(stderr=True)
    if lossless + temporal + inr > 1:
        _error(console, "choose one of --lossless, --temporal and --inr")
        raise typer.Exit(2)
    if not inr and (target_ratio is not None or target_psnr is not None or steps is not None
                    or inr_model != "siren"):
        _error(console, "--target-ratio, --target-psnr, --steps and --inr-model are options "
                        "of --inr")
        raise typer.Exit(2)
    if inr_model not in ("siren", "grid"):
        _error(console, f"--inr-model must be 'siren' or 'grid', got {inr_model!r}")
        raise typer.Exit(2)
    if inr_model == "grid" and target_psnr is not None:
        _error(console, "--inr-model grid takes --target-ratio, not --target-psnr")
        raise typer.Exit(2)
    mode = "lossless" if lossless else "temporal" if temporal else "inr" if inr else "wnl"
    options: dict = {"threshold": threshold, "noise": noise} if temporal else {}
    if inr:
        if target_ratio is None and target_psnr is None:
            target_ratio = 500.0
        options = {"target_ratio": target_ratio, "device": device}
        if inr_model == "grid":
            options.update(model="grid",
                           grid_options={"steps": steps} if steps is not None else None)
        else:
            options["target_psnr"] = target_psnr
            options.update({"steps": steps} if steps is not None else {})
    fixed = {"gain": gain, "offset": offset, "read_noise": read_noise}
    caught: list = []
    try:
        ctx, sched = _client(scheduler, workers)
        with ctx, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            camera = None
            if camera_file is not None:
                if any(v is not None for v in fixed.values()):
                    raise ParameterError("give --camera or --gain/--offset/--read-noise, not "
                                         "both")
                camera = _camera_option(camera_file)
            elif not lossless and all(v is not None for v in fixed.values()):
                camera = fixed
            elif mode == "wnl" and any(v is not None for v in fixed.values()):
                camera = estimate_noise(source, dataset=dataset, scheduler=sched, **fixed)
            result = run_compress(source, dest, mode=mode, q=q, camera=camera, chunks=chunks,
                                  coder=coder, order=order, dims=dims, dataset=dataset,
                                  scheduler=sched, overwrite=overwrite, progress=progress,
                                  pyramid=False if no_pyramid else None, **options)
        _warn_to_console(console, caught)
    except (BigcompError, FileNotFoundError, ImportError) as exc:
        _warn_to_console(console, caught)
        _error(console, exc)
        raise typer.Exit(1) from None
    cam = result.camera
    maps = hasattr(cam, "median_model")  # a PixelCamera (--camera camera.zarr): its medians
    cam = cam.median_model() if maps else cam
    if inr:
        typer.echo(f"{dest}: {result.raw_bytes / 1e6:.1f} MB -> {result.stored_bytes / 1e6:.3f} MB "
                   f"({result.ratio:.1f}x) in {result.seconds:.1f} s (neural: not noise-exact; "
                   "see bigcomp info)")
        return
    typer.echo(
        f"{dest}: {result.chunks_written} chunks written, {result.chunks_skipped} already done; "
        f"{result.raw_bytes / 1e6:.1f} MB -> {result.stored_bytes / 1e6:.1f} MB "
        f"({result.ratio:.2f}x) in {result.seconds:.1f} s; max error {result.error_bound:.3f} σ"
        + (_camera_summary(result.camera_source, cam, result.camera_estimate, maps)
           if cam else "")
        + (f"; pyramid: {result.pyramid_levels} levels, {result.pyramid_bytes / 1e6:.1f} MB"
           if result.pyramid_levels else ""))


def _parse_region(region: str | None, shape: tuple[int, ...]) -> tuple[slice, ...]:
    if not region:
        return tuple(slice(None) for _ in shape)
    parts = [p.strip() for p in region.split(",")]
    if len(parts) > len(shape):
        raise typer.BadParameter(f"{len(parts)} ranges for {len(shape)} axes", param_hint="region")
    out = []
    for p in parts:
        try:
            bits = [int(b) if b.strip() else None for b in p.split(":")]
        except ValueError:
            raise typer.BadParameter(f"bad range {p!r}: use start:stop like 0:10 or :",
                                     param_hint="region") from None
        if len(bits) == 1 and bits[0] is not None:
            out.append(slice(bits[0], bits[0] + 1 if bits[0] != -1 else None))
        elif 1 <= len(bits) <= 3:
            out.append(slice(*bits))
        else:
            raise typer.BadParameter(f"bad range {p!r}", param_hint="region")
    return tuple(out) + tuple(slice(None) for _ in shape[len(out):])


@app.command()
def decompress(
    source: Annotated[str, typer.Argument(help="A bigcomp store.")],
    dest: Annotated[str, typer.Argument(
        help="Output: .tif/.tiff (OME-TIFF with pixel sizes; BigTIFF when large) or .zarr "
        "(plain OME-Zarr, zstd; see also 'bigcomp export').")],
    region: Annotated[str | None, typer.Option(
        help="Part to extract, numpy-style per axis, e.g. '0:10,:,100:200'.")] = None,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace DEST (only once the new output is complete).")] = False,
    scheduler: Annotated[str, typer.Option(help="A local dask scheduler or tcp:// address."
                                           )] = "threads",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Decode a bigcomp store (or a region of it) to TIFF or zarr; only the chunks the region
    overlaps are read. The output appears at DEST only when complete: a failed run leaves
    nothing there (or, with --overwrite, the old DEST)."""
    import os

    from rich.console import Console

    from .errors import BigcompError
    from .io import write_decoded
    from .metadata import select
    from .pipeline import open as open_store

    console = Console(stderr=True)
    if not dest.lower().endswith((".tif", ".tiff", ".zarr")):
        _error(console, f"unknown output format {dest!r}: use .tif/.tiff or .zarr")
        raise typer.Exit(1)
    if os.path.exists(dest) and not overwrite:
        _error(console, f"{dest} exists: pass --overwrite to replace it")
        raise typer.Exit(1)
    try:
        arr = open_store(source)
        arr = select(arr, _parse_region(region, arr.shape))  # keeps the region's origin
        write_decoded(arr, dest, scheduler=scheduler, progress=progress, overwrite=overwrite)
    except (BigcompError, FileNotFoundError) as exc:
        _error(console, exc)
        raise typer.Exit(1) from None
    typer.echo(f"{dest}: {dict(zip(arr.dims, arr.shape, strict=True))} {arr.dtype}")


@app.command("export")
def export_cmd(
    source: Annotated[str, typer.Argument(help="A bigcomp store (any mode).")],
    dest: Annotated[str, typer.Argument(help="Output: a plain OME-Zarr 0.5 store (.zarr).")],
    region: Annotated[str | None, typer.Option(
        help="Part to export, numpy-style per axis of level 0, e.g. '0:10,:,100:200'.")] = None,
    compressor: Annotated[str, typer.Option(
        help="zarr codec of the output: 'zstd' (level 3) or 'blosc' (zstd, byte shuffle).")
    ] = "zstd",
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace DEST (only once the new output is complete).")] = False,
    scheduler: Annotated[str, typer.Option(help="A local dask scheduler or tcp:// address."
                                           )] = "threads",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Write a plain OME-Zarr that readers without bigcomp open (tensorstore, ngff-zarr,
    ome-zarr-py, Fiji, other languages): every pyramid level, pixel sizes, units, channels,
    with zarr's zstd (or blosc) codec, chunk by chunk. The output appears at DEST only when
    complete."""
    import os

    from rich.console import Console

    from .errors import BigcompError
    from .export import COMPRESSORS
    from .export import export as run_export
    from .pipeline import open as open_store

    console = Console(stderr=True)
    if compressor not in COMPRESSORS:
        _error(console, f"--compressor must be one of {', '.join(COMPRESSORS)}, got "
                        f"{compressor!r}")
        raise typer.Exit(2)
    if os.path.exists(dest) and not overwrite:
        _error(console, f"{dest} exists: pass --overwrite to replace it")
        raise typer.Exit(1)
    try:
        shape = open_store(source).shape
        res = run_export(source, dest, region=_parse_region(region, shape),
                         compressor=compressor, scheduler=scheduler, progress=progress,
                         overwrite=overwrite)
    except (BigcompError, FileNotFoundError) as exc:
        _error(console, exc)
        raise typer.Exit(1) from None
    typer.echo(f"{dest}: OME-Zarr, {res['levels']} level(s), level 0 "
               f"{'x'.join(map(str, res['shape']))}; {res['raw_bytes'] / 1e6:.1f} MB decoded -> "
               f"{res['stored_bytes'] / 1e6:.1f} MB ({compressor}) in {res['seconds']:.1f} s "
               f"({res['raw_bytes'] / 1e6 / max(res['seconds'], 1e-9):.0f} MB/s)")


@app.command()
def info(path: Annotated[str, typer.Argument(help="A bigcomp store.")]) -> None:
    """Shape, chunks, parameters, error bound and compression ratio of a bigcomp store."""
    from rich.console import Console
    from rich.table import Table

    from .errors import BigcompError
    from .pipeline import open as open_store

    console = Console()
    try:
        arr = open_store(path, allow_incomplete=True)
    except (BigcompError, FileNotFoundError) as exc:
        _error(Console(stderr=True), exc)
        raise typer.Exit(1) from None
    meta = arr.attrs["bigcomp"]
    stored = arr.bigcomp.compressed_size()
    shape = " x ".join(f"{d}={n}" for d, n in zip(arr.dims, arr.shape, strict=True))
    if meta.get("mode") in ("temporal", "inr"):
        rows = _model_rows(path, meta, shape, str(arr.dtype))
    else:
        rows = _chunk_rows(meta, shape)
    rows += [
        ("raw / stored", f"{arr.nbytes / 1e6:.2f} MB / {stored / 1e6:.2f} MB"),
        ("ratio", f"{arr.nbytes / max(stored, 1):.2f}x"),
    ]
    if meta.get("mode") != "inr":
        rows.append(("complete", "yes" if meta.get("complete")
                     else "NO (interrupted: run compress again)"))
    if "version" in meta:
        rows.append(("bigcomp", str(meta["version"])))
    table = Table(title=path, show_header=False)
    for k, v in rows:
        table.add_row(k, v)
    console.print(table)


def _camera_summary(source: str, cam, estimate, maps: bool) -> str:
    """The compress summary's camera part: where the camera came from; for an estimated one
    the point estimate ± standard errors and the conservative model the data was coded with."""
    coded = f"gain {cam.gain:.4g}, offset {cam.offset:.4g}, read noise {cam.read_noise:.4g}"
    if estimate is not None:
        where = "" if source == "estimated" else f", recorded in the {source}"
        return (f"; camera (estimated{where}): {estimate.summary()}; coded with the "
                f"conservative {coded}")
    return f"; camera ({source}): {coded}" + (" (medians of per-pixel maps)" if maps else "")


def _camera_row(cam: dict | None, source: str | None = None,
                estimate: dict | None = None) -> tuple[str, str]:
    if not cam:
        return ("camera", "-")
    coded = (f"gain {cam['gain']:.4g} ADU/e-, offset {cam['offset']:.4g} ADU, read noise "
             f"{cam['read_noise']:.4g} e-")
    if estimate:
        from .estimate import CameraEstimate

        try:
            text = CameraEstimate.from_record(estimate).summary()
        except (KeyError, TypeError, ValueError, ArithmeticError):
            text = "unreadable record"
        return ("camera", f"estimated ({text}); coded with the conservative {coded}")
    return ("camera", coded + (f" ({source})" if source else ""))


def _chunk_rows(meta: dict, shape: str) -> list[tuple[str, str]]:
    """``bigcomp info`` rows of a chunked (lossless / wnl) store."""
    job = meta["job"]
    return [
        ("name", str(meta.get("name"))),
        ("shape", shape),
        ("dtype", job["dtype"]), ("chunks", ",".join(map(str, job["chunks"]))),
        ("mode", job["mode"] + (f" q={job['q']:g}σ" if job["mode"] == "wnl" else "")),
        ("order / coder", f"{job['order']} / {job['coder']}"),
        _camera_row(job.get("camera"), meta.get("camera_source"), meta.get("camera_estimate")),
        ("error bound", f"{meta['error_bound']:.4f} σ"),
    ]


def _grid_tiles(meta: dict) -> str:
    n = math.prod(-(-a // b) for a, b in zip(meta["shape"], meta["tile"], strict=True))
    return f"{n} of {','.join(map(str, meta['tile']))}"


def _model_rows(path: str, meta: dict, shape: str, dtype: str) -> list[tuple[str, str]]:
    """``bigcomp info`` rows of a temporal or neural (INR) store."""
    if meta["mode"] == "temporal":
        from .temporal import temporal_info

        tinfo = temporal_info(path)
        return [
            ("shape", shape), ("dtype", dtype),
            ("mode", (f"temporal q={meta['q']:g}σ, outliers above {meta['threshold']:g}σ kept "
                     f"exactly, noise from {meta['noise']}")),
            _camera_row(meta.get("camera")),
            ("error bound", meta["bound"]),
            ("outliers", f"{tinfo['outlier_fraction']:.2%} of pixels, kept exactly"),
        ]
    training = meta.get("training", {})
    target = training.get("target_ratio") or training.get("target_psnr")
    if meta.get("model") == "grid":
        levels = " ".join("x".join(map(str, s)) for s in meta["levels"])
        return [
            ("shape", shape), ("dtype", dtype),
            ("mode", f"inr grid (neural, not noise-exact): {meta['channels']} latent channels "
                     f"on levels {levels}, decoder {meta['layers']}x{meta['hidden']}"
                     + (f", target ratio {target:g}" if target else "")),
            ("tiles", _grid_tiles(meta)),
            _camera_row(meta.get("camera") or meta.get("domain")),
            ("training", (f"{training.get('steps')} steps on {training.get('device')}, "
                         f"{training.get('train_seconds', float('nan')):.1f} s")),
        ]
    return [
        ("shape", shape), ("dtype", dtype),
        ("mode", f"inr (neural, not noise-exact): width {meta['width']}, depth "
                 f"{meta['depth']}, {meta['bits']}-bit weights"
                 + (f", target {'ratio' if training.get('target_ratio') else 'PSNR'} {target:g}"
                    if target else "")),
        ("tiles", (f"{meta['n_tiles']} of {','.join(map(str, meta['tile']))} "
                  f"({meta['n_tiles'] - meta['n_model']} empty)")),
        _camera_row(meta.get("camera")),
        ("training", (f"{training.get('steps')} steps on {training.get('device')}, "
                     f"{training.get('train_seconds', float('nan')):.1f} s")),
    ]


@app.command("estimate-noise")
def estimate_noise_cmd(
    source: Annotated[str, typer.Argument(help="Input path (TIFF, HDF5, zarr, OME-Zarr).")],
    dataset: Annotated[str | None, typer.Option(help="Dataset/array inside the file.")] = None,
    sample_chunks: Annotated[int, typer.Option(help="Chunks sampled across the data.")] = 8,
) -> None:
    """Estimate the camera model (gain, offset, read noise) from the data by photon transfer."""
    import warnings

    from rich.console import Console

    from .errors import BigcompError
    from .pipeline import estimate_noise

    console = Console(stderr=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            cam = estimate_noise(source, dataset=dataset, sample_chunks=sample_chunks,
                                 scheduler="threads")
    except (BigcompError, FileNotFoundError) as exc:
        _error(console, exc)
        raise typer.Exit(1) from None
    _warn_to_console(console, caught)
    if hasattr(cam, "summary"):  # a CameraEstimate: with its uncertainties
        typer.echo(cam.summary())
    else:
        typer.echo(f"gain {cam.gain:.4g} ADU/e-, offset {cam.offset:.4g} ADU, read noise "
                   f"{cam.read_noise:.4g} e-")
    safe = getattr(cam, "conservative", cam)  # what compress codes with when it estimates
    typer.echo(f"use: --gain {safe.gain:.4g} --offset {safe.offset:.4g} "
               f"--read-noise {safe.read_noise:.4g}"
               + (" (the conservative model: at or below the noise within the uncertainty)"
                  if safe is not cam else ""))


@app.command("calibrate")
def calibrate_cmd(
    dark: Annotated[str, typer.Option(
        help="Dark stack (t, y, x; shutter closed): TIFF, .npy, zarr or 'file.h5:/data'.")],
    output: Annotated[str, typer.Option(
        "-o", "--output", help="Camera file to write (camera.zarr).")],
    flat: Annotated[list[str] | None, typer.Option(
        help="Flat-field stack at one light level; repeat for each level (>= 2).")] = None,
    per_pixel_gain: Annotated[bool, typer.Option(
        "--per-pixel-gain", help="Fit a gain for each pixel (needs ~1000 flat frames) "
        "instead of one for the sensor.")] = False,
    gain: Annotated[float | None, typer.Option(
        help="Known gain (ADU/e-) instead of --flat.")] = None,
    saturation: Annotated[float | None, typer.Option(
        help="Saturation level in ADU (default: the dtype maximum).")] = None,
    plot: Annotated[str | None, typer.Option(
        help="Write the photon-transfer curve to this PNG (needs matplotlib).")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUTPUT.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Measure the camera: per-pixel offset and read noise from dark frames, gain from flats
    (photon transfer). Writes a camera file for --camera and prints a summary."""
    import os
    import warnings

    from rich.console import Console

    from .calibration import calibrate
    from .errors import BigcompError

    console = Console(stderr=True)
    if os.path.lexists(output) and not overwrite:
        _error(console, f"{output} exists: pass --overwrite to replace it")
        raise typer.Exit(1)
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = calibrate(dark, flat or None, gain=gain, per_pixel_gain=per_pixel_gain,
                               saturation=saturation, progress=progress)
            result.save(output, overwrite=overwrite)
            if plot:
                result.plot_ptc(plot)
        _warn_to_console(console, caught)
    except (BigcompError, FileNotFoundError, ImportError) as exc:
        _warn_to_console(console, caught)
        _error(console, exc)
        raise typer.Exit(1) from None
    typer.echo(result.summary())
    typer.echo(f"camera written to {output}" + (f", photon-transfer curve to {plot}"
                                                 if plot else ""))


def _register_evaluate() -> None:
    from .evaluate import evaluate_command  # light module: heavy imports live in the command

    app.command("evaluate")(evaluate_command)


_register_evaluate()
