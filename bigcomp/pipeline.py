"""Whole experiments out of core: source -> dask -> bigcomp zarr v3 / OME-Zarr store -> xarray.

:func:`compress` reads any source lazily (:mod:`bigcomp.io`), rechunks it to the store's chunks
and runs one task per chunk that encodes it and writes it atomically (:mod:`bigcomp.store`);
memory is bounded by chunk size x workers. :func:`open` gives back a lazy ``xarray.DataArray``
whose dask chunks are the store's chunks, so reading a region decodes only the chunks it
overlaps.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .errors import BigcompError, ParameterError, UnsupportedDataError
from .noise import CameraModel
from .store import DATA, IncompleteStoreError

if TYPE_CHECKING:
    import xarray

    from .estimate import CameraEstimate
    from .pixelcamera import PixelCamera

__all__ = ["CompressResult", "compress", "default_chunks", "estimate_noise", "open"]

_HOW_TO_PASS = ("pass the camera model instead: compress(..., camera=dict(gain=..., offset=..., "
                "read_noise=...)) or, on the command line, --gain G --offset O --read-noise R")


@dataclass(frozen=True)
class CompressResult:
    """What :func:`compress` did.

    Attributes
    ----------
    path : str
        The store.
    chunks_written, chunks_skipped : int
        Chunks encoded in this run, and chunks found already written and valid (resume).
    raw_bytes, stored_bytes : int
        Size of the array in memory and of its chunk files on disk.
    camera : CameraModel or None
        The model the data was coded with (for an estimated camera: its conservative model,
        :attr:`bigcomp.estimate.CameraEstimate.conservative`).
    camera_source : str
        ``"given"``, ``"calibrated"`` (a calibrated camera file), ``"store"`` (an earlier run
        of this job), ``"source"`` (the source's bigcomp metadata), ``"estimated"`` or
        ``"none"`` (lossless).
    error_bound : float
        Largest error of any pixel in noise σ (0 when lossless).
    seconds : float
    pyramid_levels, pyramid_chunks_written, pyramid_bytes : int
        Downsampled levels of the store (:mod:`bigcomp.pyramid`), their chunks encoded in this
        run and their chunk files' size. The other counts and :attr:`ratio` are level 0's.
    camera_estimate : CameraEstimate or None
        Where the camera was estimated (now or by the run that wrote the store or source):
        the point estimate with its standard errors (``.summary()``).
    """

    path: str
    chunks_written: int
    chunks_skipped: int
    raw_bytes: int
    stored_bytes: int
    camera: CameraModel | None
    camera_source: str
    error_bound: float
    seconds: float
    pyramid_levels: int = 0
    pyramid_chunks_written: int = 0
    pyramid_bytes: int = 0
    camera_estimate: CameraEstimate | None = None

    @property
    def ratio(self) -> float:
        """Compression ratio (raw / stored)."""
        return self.raw_bytes / max(self.stored_bytes, 1)


def default_chunks(shape: tuple[int, ...], chunks=None) -> tuple[int, ...]:
    """Regular chunk shape: ``chunks`` (missing leading axes get 1, -1 = whole axis) or
    ``(..., 1, 16, 256, 256)`` clipped to ``shape``.

    Examples
    --------
    >>> default_chunks((3, 2, 100, 1000, 1000))
    (1, 1, 16, 256, 256)
    >>> default_chunks((3, 2, 100, 1000, 1000), "32,512,-1")
    (1, 1, 32, 512, 1000)
    """
    ndim = len(shape)
    if chunks is None:
        chunks = (1,) * max(ndim - 3, 0) + (16, 256, 256)[-ndim:] if ndim else ()
    elif isinstance(chunks, str):
        try:
            chunks = tuple(int(c) for c in chunks.split(","))
        except ValueError:
            raise ParameterError(f"chunks must be integers like '16,256,256', got {chunks!r}"
                                 ) from None
    elif isinstance(chunks, int):
        chunks = (chunks,) * ndim
    chunks = tuple(int(c) for c in chunks)
    if len(chunks) > ndim or any(c == 0 or c < -1 for c in chunks):
        raise ParameterError(f"chunks {chunks} do not fit an array of shape {shape}: give at "
                             f"most {ndim} positive sizes (-1 = the whole axis)")
    chunks = (1,) * (ndim - len(chunks)) + chunks
    return tuple(s if c == -1 else max(1, min(c, s)) for c, s in zip(chunks, shape, strict=True))


# ------------------------------------------------------------------------------ scheduling
def local_cluster_kwargs(n_workers: int | None = None) -> dict:
    """``distributed.LocalCluster`` arguments sized to this machine (1 thread per process)."""
    import psutil

    cores = os.cpu_count() or 1
    mem = psutil.virtual_memory().total
    n = n_workers or max(1, min(cores, int(mem // 2**30 // 2)))  # >= 2 GiB per worker
    return {"n_workers": n, "threads_per_worker": 1, "processes": True,
            "memory_limit": int(mem * 0.8 // n), "dashboard_address": ":0"}


@contextlib.contextmanager
def _scheduler(scheduler):
    """Yield ``(client or None, dask.compute kwargs)`` for the requested scheduler."""
    if scheduler is None:
        from dask.base import get_scheduler

        client = getattr(get_scheduler(), "__self__", None)
        yield (client if hasattr(client, "submit") else None), {}
    elif isinstance(scheduler, str) and "://" in scheduler:
        from distributed import Client

        with Client(scheduler) as client:
            yield client, {}
    elif scheduler in ("local", "cluster"):
        from distributed import Client, LocalCluster

        with LocalCluster(**local_cluster_kwargs()) as cluster, Client(cluster) as client:
            yield client, {}
    elif isinstance(scheduler, str):
        if scheduler not in ("threads", "threading", "processes", "multiprocessing",
                             "synchronous", "sync", "single-threaded"):
            raise ParameterError(
                f"unknown scheduler {scheduler!r}: use None (dask's default), 'threads', "
                "'processes', 'synchronous', 'local' (a LocalCluster), 'tcp://host:port' or a "
                "distributed.Client")
        yield None, {"scheduler": scheduler}
    elif hasattr(scheduler, "submit") and hasattr(scheduler, "gather"):
        yield scheduler, {}
    else:
        raise ParameterError(f"scheduler must be None, a name, an address or a "
                             f"distributed.Client, got {type(scheduler).__name__}")


def _compute(tasks: list, client, kwargs: dict, progress, label: str) -> list:
    """Compute delayed ``tasks``, advancing a rich progress bar as each finishes."""
    import dask

    bar = _progress_bar(progress, label, len(tasks))
    with bar or contextlib.nullcontext():
        advance = (lambda: bar.advance(bar.task_ids[0])) if bar else (lambda: None)
        if client is not None:
            from distributed import as_completed

            futures = client.compute(tasks)
            try:
                for fut in as_completed(futures):
                    fut.result()  # raises the task's error
                    advance()
                return client.gather(futures)
            finally:
                client.cancel(futures)
        from dask.callbacks import Callback

        names = {t.key for t in tasks}

        class _Progress(Callback):
            def _posttask(self, key, result, dsk, state, worker_id):
                if key in names:
                    advance()

        if kwargs.get("scheduler") in ("threads", "threading") and "pool" not in kwargs:
            # a pool of our own: when a task fails, dask raises while other threads still
            # write; they must finish (or be cancelled) before the caller cleans up, else they
            # recreate what it removed
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
                try:
                    with _Progress():
                        return list(dask.compute(*tasks, **kwargs, pool=pool))
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        with _Progress():
            return list(dask.compute(*tasks, **kwargs))


def _progress_bar(progress, label: str, total: int):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress or total == 0:
        return None
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress("[progress.description]{task.description}", BarColumn(),
                   MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True))
    bar.add_task(label, total=total)
    return bar


def _gather(tasks: list, client, kwargs: dict) -> list:
    """Compute a few dask objects on ``client`` or with the ``dask.compute`` ``kwargs``."""
    import dask

    return client.compute(tasks, sync=True) if client is not None else list(
        dask.compute(*tasks, **kwargs))


# ------------------------------------------------------------------------------ camera
def _sample_blocks(x, n: int) -> list:
    from .store import sample_blocks

    return [x.blocks[i] for i in sample_blocks(x.numblocks, n)]


def estimate_noise(source, *, sample_chunks: int = 8, chunks=None, gain: float | None = None,
                   offset: float | None = None, read_noise: float | None = None,
                   dataset: str | None = None, scheduler=None) -> CameraEstimate:
    """Estimate the camera model of a (large) source from a sample of its chunks.

    What :func:`compress` does without a camera (it codes with the estimate's
    ``conservative`` model). A source with a ``t`` axis whose chunks hold 3 or more frames
    gets the per-pixel temporal statistics (a direct photon-transfer curve) where the scene is
    static enough (:func:`bigcomp.estimate.estimate_camera`).

    Parameters
    ----------
    source : array or path
        Anything :func:`compress` reads.
    sample_chunks : int
        Number of chunks, spread evenly over the array, computed with dask and pooled.
    chunks
        Chunk shape of the sample (default: :func:`default_chunks`).
    gain, offset, read_noise : float, optional
        Known parameters, kept fixed.
    dataset, scheduler
        As in :func:`compress`.

    Returns
    -------
    CameraEstimate
        A :class:`CameraModel` (the point estimate) with standard errors and the
        ``conservative`` model; passed to :func:`compress` as ``camera=`` it is coded with the
        conservative model and recorded as estimated (pass ``est.point`` to code with the
        point estimate instead).

    Warns
    -----
    PoorFitWarning
        The photon-transfer fit is poor, or the offset and read noise are poorly determined;
        the message says how to pass the parameters.
    """
    from .io import open_source

    src = open_source(source, dataset=dataset)
    if len(src.shape) < 2:
        raise UnsupportedDataError("noise estimation needs images (at least 2 axes)")
    with _scheduler(scheduler) as (client, kwargs):
        return _estimate(src.to_dask(default_chunks(src.shape, chunks)), sample_chunks,
                         client, kwargs, {"gain": gain, "offset": offset,
                                          "read_noise": read_noise}, src.dims)


def _estimate(x, sample_chunks: int, client, kwargs: dict, fixed: dict,
              dims=()) -> CameraEstimate:
    """Estimate from ``sample_chunks`` blocks: frames along ``t`` (when a block holds >= 3 of
    them) give temporal statistics, otherwise the blocks are pooled as planes."""
    from .estimate import PoorFitWarning, estimate_camera

    arrays = [np.asarray(a) for a in _gather(_sample_blocks(x, sample_chunks), client, kwargs)]
    ny = min(a.shape[-2] for a in arrays)
    nx = min(a.shape[-1] for a in arrays)
    t = list(dims).index("t") if "t" in dims else None
    nt = min(a.shape[t] for a in arrays) if t is not None and t < x.ndim - 2 else 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PoorFitWarning)
        if nt >= 3:  # (frames, planes, y, x)
            stack = np.concatenate([np.moveaxis(a[..., :ny, :nx], t, 0)[:nt].reshape(
                nt, -1, ny, nx) for a in arrays], axis=1)
            camera = estimate_camera(stack, time_axis=0, **fixed)
        else:
            stack = np.concatenate([a[..., :ny, :nx].reshape(-1, ny, nx) for a in arrays])
            camera = estimate_camera(stack, **fixed)
    for w in caught:
        if issubclass(w.category, PoorFitWarning):
            how = "" if "--gain G" in str(w.message) else f". For a whole experiment, {_HOW_TO_PASS}."
            warnings.warn(f"{w.message}{how}", PoorFitWarning, stacklevel=3)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return camera


def _as_camera(camera) -> CameraModel | PixelCamera:
    """The camera argument of :func:`compress` as a model (a ``CameraEstimate`` stays one:
    :func:`_choose_camera` codes with its conservative model)."""
    from .pixelcamera import PixelCamera

    if isinstance(camera, (CameraModel, PixelCamera)):
        return camera
    if isinstance(camera, (str, os.PathLike)):  # a camera file: camera.zarr, .json, .npy
        from .camera_file import load_camera

        return load_camera(camera)
    if isinstance(camera, dict):
        unknown = set(camera) - {"gain", "offset", "read_noise"}
        if unknown:
            raise ParameterError(f"unknown camera parameters {sorted(unknown)}: use gain, "
                                 "offset and read_noise")
        return CameraModel(**camera)
    raise ParameterError(f"camera must be a CameraModel, PixelCamera, dict or camera file "
                         f"path, got {type(camera).__name__}")


# ------------------------------------------------------------------------------ compress
def compress(source, dest: str | os.PathLike, *, mode: str = "wnl", q: float = 1.0,
             camera: CameraModel | dict | None = None, chunks=None, coder: str = "max",
             order: str = "qp", dims=None, dataset: str | None = None, scheduler=None,
             overwrite: bool = False, progress: bool | None = None,
             pyramid: bool | None = None, **mode_options) -> CompressResult:
    """Compress a whole array (in memory, dask, xarray or a file) into a bigcomp store.

    Parameters
    ----------
    source : array_like, dask.array.Array, xarray.DataArray, str or os.PathLike
        The data, or a TIFF, HDF5 (``"file.h5:/dataset"``), zarr v2/v3 or OME-Zarr path
        (the first multiscale level); read lazily, chunk by chunk.
    dest : str or os.PathLike
        Directory of the zarr v3 store to write.
    mode : {"wnl", "lossless", "temporal", "inr"}
        Within noise level (step ``q`` in noise σ), lossless, or the temporal model
        (deviations from each pixel's median over time, outliers exact; see
        :func:`bigcomp.temporal.compress_temporal`, whose options ``time_axis``, ``threshold``,
        ``noise``, ``window`` and ``noise_floor`` are accepted as keywords), or implicit
        neural compression for extreme ratios (not noise-exact; needs ``bigcomp[inr]``; the
        options of :func:`bigcomp.inr.compress_inr` such as ``target_ratio`` are accepted).
    q : float
        Quantisation step in noise σ (``mode="wnl"``); every pixel comes back within q/2 σ.
    camera : CameraModel or dict, optional
        Gain (ADU/e⁻), offset (ADU), read noise (e⁻). Default: from an earlier run of this job
        in ``dest``, from the source's bigcomp metadata, or estimated from a sample of chunks.
    chunks : tuple of int or str, optional
        Chunk shape of the store (see :func:`default_chunks`).
    coder : {"max", "fast", "rice"}
    order : {"qp", "pq"}
    dims : sequence of str, optional
        Axis names (default: the source's, or :func:`bigcomp.io.default_dims`).
    dataset : str, optional
        Dataset in an HDF5 file or array in a zarr group.
    scheduler : None, str or distributed.Client
        None: dask's current scheduler; ``"threads"``, ``"processes"``, ``"synchronous"``;
        ``"local"``: a ``distributed.LocalCluster`` sized to the machine;
        ``"tcp://host:port"`` or a ``Client``: an existing cluster.
    overwrite : bool
        Replace ``dest`` if it exists. Without it, an existing store of the *same* job on the
        *same* data is resumed (chunks already written and valid are kept), anything else is
        an error. "Same data" is decided by a content fingerprint of a few sampled chunks
        (see Notes).
    progress : bool, optional
        Show a progress bar (default: when stderr is a terminal).
    pyramid : bool, optional
        Write 2x mean-downsampled levels ``"1"``, ``"2"``, ... beside ``"0"`` (an OME-Zarr
        multiscale), computed from the same source read, each quantised with its own noise
        model (:mod:`bigcomp.pyramid`). Default (None): in ``"wnl"`` and ``"lossless"`` modes;
        the temporal and INR modes write no pyramid (``pyramid=True`` there is an error).

    Returns
    -------
    CompressResult

    Raises
    ------
    StoreExistsError
        ``dest`` exists and holds something else: other parameters, other data, a store
        written before bigcomp recorded source fingerprints, or not a bigcomp store (pass
        ``overwrite=True``).
    StoreWriteError
        The file system refused a write (disk full, no permission); once fixed, the same call
        resumes.
    SourceReadError
        A region of the source file cannot be read (truncated or damaged file).
    ParameterError, UnsupportedDataError, FileNotFoundError

    Notes
    -----
    Before anything is written, :data:`bigcomp.store.FINGERPRINT_BLOCKS` chunks spread over
    the source are read and hashed (blake2b): the store records this fingerprint with the
    source's path, size and modification time. A later run resumes (or finds done) a store
    only if the fingerprint matches: a file that was touched or moved but holds the same data
    resumes, other data is refused. The sample also catches an unreadable (truncated) file
    and, for float data, NaN/inf in those chunks before the store is created.

    Until every chunk is written the store's data array is hidden from zarr and xarray (its
    ``zarr.json`` is kept as ``0/zarr.json.incomplete``), so a failed or interrupted run never
    reads as an array with zeros where chunks are missing.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> data = np.random.default_rng(0).poisson(20, (4, 64, 64)).astype("uint16")
    >>> out = os.path.join(tempfile.mkdtemp(), "a.zarr")
    >>> res = compress(data, out, q=1.0, camera=dict(gain=1.0, offset=0.0, read_noise=0.0),
    ...                chunks=(2, 64, 64), progress=False, scheduler="synchronous")
    >>> res.chunks_written, open(out).shape
    (2, (4, 64, 64))
    """
    from . import __version__, zarr3
    from .chunk import SUPPORTED_DTYPES, error_bound, validate_parameters
    from .io import open_source
    from .pyramid import level_jobs, level_sums, plan_source
    from .store import (
        LAYOUT_VERSION,
        ChunkWriter,
        create_store,
        finalize,
        ome_metadata,
        prepare,
        read_metadata,
    )

    t0 = time.perf_counter()
    dest = os.fspath(dest)
    if pyramid and mode in ("inr", "temporal"):
        raise ParameterError(f"mode={mode!r} writes no pyramid (its store is a model, not "
                             "image levels): leave pyramid unset, or use mode='wnl'")
    if mode == "inr":
        return _compress_inr(source, dest, camera=camera, chunks=chunks, dims=dims,
                             dataset=dataset, overwrite=overwrite, t0=t0, progress=progress,
                             **mode_options)
    if mode == "temporal":
        return _compress_temporal(source, dest, q=q, camera=camera, chunks=chunks, dims=dims,
                                  dataset=dataset, scheduler=scheduler, overwrite=overwrite,
                                  t0=t0, **mode_options)
    if mode_options:
        raise ParameterError(f"unknown options for mode={mode!r}: {sorted(mode_options)}")
    if mode not in ("wnl", "lossless", "temporal"):
        raise ParameterError(f"mode must be 'wnl', 'lossless' or 'temporal', got {mode!r}")
    src = open_source(source, dataset=dataset, dims=dims)
    if src.dtype not in SUPPORTED_DTYPES or (mode == "lossless" and src.dtype.kind == "f"):
        raise UnsupportedDataError(
            f"bigcomp stores uint8/uint16 (lossless or wnl) and float32 (wnl) data, not "
            f"{src.dtype} in {mode} mode: convert first, e.g. x.astype('uint16')")
    if mode == "lossless":
        q = 0.0
    elif not (isinstance(q, (int, float)) and q > 0):
        raise ParameterError(f"mode='wnl' needs q > 0 (step in noise σ), got {q!r}; "
                             "use mode='lossless' for exact compression")
    chunk_shape = default_chunks(src.shape, chunks)
    old = None if overwrite else read_metadata(dest)
    given = _as_camera(camera) if camera is not None else None
    # levels of a per-pixel camera need its maps per level (pyramid.level_pixel_camera): not yet
    levels = (plan_source(src, chunk_shape, dataset) if pyramid is not False and (
        given is None or isinstance(given, CameraModel) or not q) else [])
    validate_parameters(float(q), given or (CameraModel() if q else None), order, coder)
    maps = _noise_maps(given, src, order) if q else None

    with _scheduler(scheduler) as (client, kwargs):
        x = src.to_dask(chunk_shape)
        record = _source_record(src, x, chunk_shape, client, kwargs)
        job = {"shape": list(src.shape), "dtype": src.dtype.name, "chunks": list(chunk_shape),
               "dims": list(src.dims), "mode": mode, "q": float(q), "order": order,
               "coder": coder, "pyramid": [list(lv.factors) for lv in levels]}
        if not overwrite:  # refuse another job, other data or a foreign path before estimating
            known = ({"camera": None} if not q else {"camera": _camera_record(given, maps)}
                     if given else {})  # an estimated camera is not known yet
            prepare(dest, {**job, **known}, source=record, overwrite=False)
        cam, cam_source, estimate = _choose_camera(q, given, old, src, x, client, kwargs)
        job["camera"] = _camera_record(cam, maps) if cam else None
        state = prepare(dest, job, source=record, overwrite=overwrite)
        serializer = (zarr3.WNL(q=float(q), order=order, coder=coder, **_header_camera(cam),
                                noise_maps=_maps_text(maps)) if q
                      else zarr3.Lossless(coder=coder))
        bound = error_bound(float(q), cam, src.dtype, order) if q else 0.0
        meta = {"layout": LAYOUT_VERSION, "version": __version__, "array": DATA,
                "name": src.name, "job": job, "camera_source": cam_source,
                "error_bound": float(bound), "codec": serializer.to_dict(), "source": record,
                "complete": False}
        if estimate is not None:  # the point estimate and its uncertainty, for bigcomp info
            meta["camera_estimate"] = estimate.to_record()
        # levels average pixels of different cameras: coded with a global model at or below
        # every pixel's noise (PixelCamera.conservative_model)
        ljobs = level_jobs(levels, dest, src.shape, src.dtype, float(q),
                           cam.conservative_model() if maps is not None else cam, order, coder)
        if ljobs:
            meta["levels"] = [lj.record() for lj in ljobs]
        if state == "new":
            create_store(dest, shape=src.shape, dtype=src.dtype, chunks=chunk_shape,
                         dims=src.dims, serializer=serializer, coords=src.coords,
                         attrs=src.attrs, meta=meta, ome=ome_metadata(
                             src.dims, src.coords, src.name, dtype=src.dtype,
                             levels=[(DATA, ()), *((lv.path, lv.factors) for lv in levels)]),
                         levels=[lj.array() for lj in ljobs])
            if maps is not None:  # the calibration, stored with the data it describes
                from .camera_file import save_camera

                save_camera(cam, os.path.join(dest, CAMERA))
        writer = ChunkWriter(os.path.join(os.path.abspath(dest), DATA), tuple(src.shape),
                             chunk_shape, src.dtype.name, float(q),
                             _header_camera(cam) if cam else None, order, coder, maps)
        done = (writer.scan() if state == "resume" else  # "done": trust the complete flag
                set(np.ndindex(*x.numblocks)) if state == "done" else set())
        todo = [i for i in np.ndindex(*x.numblocks) if i not in done]
        # the levels: from the same source blocks, in the same graph (bigcomp.pyramid)
        lwriters = [lj.writer for lj in ljobs]
        ltodo = [[] if state == "done" else sorted(set(np.ndindex(*w.numblocks)) - (
            w.scan() if state == "resume" else set())) for w in lwriters]
        if todo or any(ltodo):
            _write(x, todo, writer, client, kwargs, progress, dest,
                   levels=list(zip(level_sums(x, levels), ltodo, lwriters, strict=True)))
        if state != "done":
            finalize(dest, read_metadata(dest) or meta)
    raw = int(np.prod(src.shape)) * src.dtype.itemsize
    return CompressResult(dest, len(todo), len(done), raw, writer.stored_bytes(), cam,
                          cam_source, float(bound), time.perf_counter() - t0, len(levels),
                          sum(map(len, ltodo)), sum(w.stored_bytes() for w in lwriters),
                          estimate)


def _global_camera(camera, mode: str) -> CameraModel:
    """``camera`` as a global model; per-pixel maps are refused (only wnl codes them)."""
    from .pixelcamera import PixelCamera

    cam = _as_camera(camera)
    if isinstance(cam, PixelCamera):
        raise ParameterError(
            f"{mode} takes a global camera model; per-pixel camera maps are coded by "
            "mode='wnl' (or pass camera=camera.conservative_model(), at or below every "
            "pixel's noise)")
    return cam


CAMERA = "camera"  # the store's copy of per-pixel camera maps (a camera file)


def _noise_maps(camera, src, order: str):
    """The noise classes of per-pixel maps for this source (None for a global camera).

    Raises
    ------
    ParameterError, UnsupportedDataError
        The maps do not fit the data's frames, dtype or order.
    """
    from .pixelcamera import PixelCamera
    from .pixelmodel import noise_maps

    if not isinstance(camera, PixelCamera):
        return None
    if src.dtype.kind != "u":
        raise UnsupportedDataError(
            f"per-pixel camera maps code uint8/uint16 camera counts, not {src.dtype}: pass "
            "camera=camera.median_model() for float data")
    if order != "qp":
        raise ParameterError("per-pixel camera maps need order='qp'")
    camera.check_frame(src.shape)
    return noise_maps(camera, src.dtype)


def _header_camera(camera) -> dict:
    """The global parameters chunk headers and the codec record (medians of maps)."""
    from .estimate import CameraEstimate
    from .pixelcamera import PixelCamera

    if isinstance(camera, CameraEstimate):  # an estimate is coded with its conservative model
        camera = camera.conservative
    return (camera.median_model() if isinstance(camera, PixelCamera) else camera).to_dict()


def _camera_record(camera, maps) -> dict:
    """What the job records of the camera: its parameters, and the digest of per-pixel
    maps (a rerun with other maps is another job)."""
    record = _header_camera(camera)
    if maps is not None:
        record["noise_maps"] = maps.digest.hex()
    return record


def _maps_text(maps) -> str | None:
    import base64

    return None if maps is None else base64.b64encode(maps.blob).decode("ascii")


def _source_record(src, x, chunk_shape: tuple[int, ...], client, kwargs: dict) -> dict:
    """What the store is made from (:func:`bigcomp.store.source_record`), computed on a few
    sampled chunks, which is also a first check that the source reads and is finite.

    Raises
    ------
    SourceReadError
        A sampled region of the file cannot be read (truncated, damaged).
    UnsupportedDataError
        A sampled chunk of float data holds NaN or inf.
    """
    from dask import delayed

    from .store import FINGERPRINT_BLOCKS, block_digest, sample_blocks, source_record

    idx = sample_blocks(x.numblocks, FINGERPRINT_BLOCKS)
    found = _gather([delayed(block_digest, pure=True)(x.blocks[i]) for i in idx], client,
                    kwargs)
    for i, (_, finite) in zip(idx, found, strict=True):
        if not finite:
            raise UnsupportedDataError(
                f"chunk {i} of the source holds NaN or inf values, which bigcomp cannot "
                "encode: replace them first (e.g. np.nan_to_num(data, nan=0.0)) and keep a "
                "mask separately if they mean something")
    return source_record(src, chunk_shape, idx, [d for d, _ in found])


def _choose_camera(q: float, given: CameraModel | None, old: dict | None, src, x, client,
                   kwargs: dict) -> tuple[CameraModel | None, str, CameraEstimate | None]:
    """The camera model to code with, where it came from (see :class:`CompressResult`) and,
    for an estimated camera, the estimate (point, uncertainty).

    ``old`` (the destination's metadata) is only passed in once the destination is known to
    hold this job on this source, so its camera is reused only for the same data. An
    estimated camera is coded with its conservative model (noise σ nowhere above the
    camera's within the estimate's uncertainty), so the bound holds against the truth.
    """
    from .estimate import CameraEstimate

    if q == 0:
        return None, "none", None
    if isinstance(given, CameraEstimate):
        return given.conservative, "estimated", given
    if given is not None:
        return given, ("calibrated" if getattr(given, "source", None) == "calibrated"
                       else "given"), None
    if old and old.get("job", {}).get("camera"):
        if "noise_maps" in old["job"]["camera"]:
            raise ParameterError(
                "this store was written with per-pixel camera maps: pass the same camera "
                "(camera='camera.zarr', or the store's own: camera='<store>/camera') to resume")
        return CameraModel(**old["job"]["camera"]), "store", _recorded_estimate(old)
    meta = src.attrs["bigcomp"] if isinstance(src.attrs.get("bigcomp"), dict) else {}
    job = meta.get("job", {})
    if job.get("camera"):
        return CameraModel(**job["camera"]), "source", _recorded_estimate(meta)
    estimate = _estimate(x, 8, client, kwargs, {}, src.dims)
    return estimate.conservative, "estimated", estimate


def _recorded_estimate(meta: dict) -> CameraEstimate | None:
    """The camera estimate a store's metadata records (None if the camera was not estimated
    or the record is unreadable)."""
    from .estimate import CameraEstimate

    try:
        return CameraEstimate.from_record(meta["camera_estimate"])
    except (KeyError, TypeError, ValueError, BigcompError):
        return None


def _write(x, todo: list, writer, client, kwargs: dict, progress, dest: str,
           levels: list = ()) -> None:
    """Encode and write the ``todo`` blocks of ``x`` and of each ``(array, todo, writer)`` of
    ``levels`` in one graph (blocks shared between them are read once); errors from the data
    say the store is incomplete."""
    from dask import delayed
    from dask.base import tokenize

    from .store import SourceReadError

    tasks = []
    for arr, ids, w in [(x, todo, writer), *levels]:
        # not optimised: every array keeps the source's own block keys, so the graphs merge
        blocks = arr.to_delayed(optimize_graph=False)
        token = tokenize(arr.name, w)
        tasks += [delayed(w, pure=True)(blocks[i], i, dask_key_name=f"bigcomp-write-{token}-"
                                        + "-".join(map(str, i))) for i in ids]
    try:
        _compute(tasks, client, kwargs, progress, f"compressing {len(tasks)} chunks")
    except (UnsupportedDataError, SourceReadError) as exc:
        raise type(exc)(
            f"{exc} ({dest} is left incomplete: zarr and xarray do not see its data and "
            "bigcomp.open refuses it; once the source is fixed, compress it again with "
            "overwrite=True / --overwrite)") from exc


# ------------------------------------------------------------------------------ open
def _compress_inr(source, dest: str, *, camera, chunks, dims, dataset, overwrite, t0, progress,
                  **options) -> CompressResult:
    """``compress(..., mode="inr")``: read the source, then fit the per-tile networks."""
    from .inr import compress_inr, inr_info
    from .io import open_source

    src = open_source(source, dataset=dataset, dims=dims)
    data = src.to_dask(chunks=chunks)
    cam = _global_camera(camera, "mode='inr'") if camera is not None else None
    bar = _progress_bar(progress, "training tile networks", 1)
    with bar or contextlib.nullcontext():
        def advance(done: int, total: int) -> None:
            bar.update(bar.task_ids[0], completed=done, total=total)

        path = compress_inr(data, dest, camera=cam, overwrite=overwrite,
                            progress=advance if bar else None, dims=src.dims, **options)
    _keep_physical(path, src)
    info = inr_info(path)
    return CompressResult(path, 0, 0, int(info["raw_bytes"]), int(info["stored_bytes"]), cam,
                          "given" if cam else "none", float("nan"), time.perf_counter() - t0)


def _keep_physical(path: str, src) -> None:
    """Record the source's pixel sizes, units and channels in a temporal or INR store (which
    keep no coordinate arrays): ``bigcomp.open`` rebuilds the coordinates from it."""
    from .metadata import annotate_store, physical_record

    record = physical_record(src.dims, src.coords)
    if record:
        annotate_store(path, {"physical": record})


def _compress_temporal(source, dest: str, *, q, camera, chunks, dims, dataset, scheduler,
                       overwrite, t0, **options) -> CompressResult:
    """``compress(..., mode="temporal")``: read the source lazily, then the temporal model."""
    from .io import open_source
    from .temporal import compress_temporal, temporal_info

    src = open_source(source, dataset=dataset, dims=dims)
    data = src.to_xarray(chunks=chunks)
    if "time_axis" not in options:
        options["time_axis"] = "t" if "t" in src.dims else 0
    cam = _global_camera(camera, "mode='temporal'") if camera is not None else None
    with _scheduler(scheduler) as (client, kwargs):
        path = compress_temporal(data, dest, q=q, camera=cam, overwrite=overwrite,
                                 scheduler=client or kwargs.get("scheduler"), **options)
    _keep_physical(path, src)
    info = temporal_info(path)
    return CompressResult(path, 0, 0, int(info["raw_nbytes"]), int(info["stored_nbytes"]), cam,
                          "given" if cam else "none", float(info["max_error_sigma"]),
                          time.perf_counter() - t0)


def open(path: str | os.PathLike, *, chunks=None, allow_incomplete: bool = False,
         level: int = 0) -> xarray.DataArray:
    """Open a bigcomp store as a lazy, dask-backed ``xarray.DataArray``.

    Parameters
    ----------
    path : str or os.PathLike
        A store written by :func:`compress`.
    chunks : int or tuple of int, optional
        Dask chunks as multiples of the store's chunks (default 1: one dask chunk per zarr
        chunk, so a region read decodes only the chunks it overlaps).
    allow_incomplete : bool
        Open a store an interrupted or failed run left incomplete (missing chunks read as 0).
        Other readers (``zarr.open_group(path)["0"]``, ``xarray.open_zarr(path)``) do not see
        the data of an incomplete store at all.
    level : int
        Pyramid level (0: full resolution; ``k``: the array at path ``"k"``, see
        :mod:`bigcomp.pyramid`), with coordinates at the centres of its pixels' footprints and
        ``attrs["bigcomp"]`` describing that level (its shape, camera and error bound).

    Returns
    -------
    xarray.DataArray
        With the source's dims, coords and attrs; ``attrs["bigcomp"]`` is the store's metadata.

    Raises
    ------
    FileNotFoundError, BigcompError
        Not a bigcomp store; IncompleteStoreError when incomplete.
    """
    import xarray as xr

    from .store import incomplete_store, read_metadata

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such bigcomp store: {path!r}")
    meta = read_metadata(path)
    if meta is None:
        raise BigcompError(f"{path} is not a bigcomp store (no 'bigcomp' block in zarr.json); "
                           "read other zarr stores with zarr.open or xarray.open_zarr")
    if meta.get("mode") == "temporal":
        return _open_temporal(path, meta, allow_incomplete)
    if meta.get("mode") == "inr":
        return _open_inr(path, meta)
    if not meta.get("complete") and not allow_incomplete:
        raise IncompleteStoreError(
            f"{path} is incomplete: a compress run was interrupted. Run the same compress "
            "again to resume it, or pass allow_incomplete=True to read what is there")
    job = meta["job"]
    ndim = len(job["dims"])
    mult = (1,) * ndim if chunks is None else (chunks,) * ndim if isinstance(chunks, int) else (
        (1,) * (ndim - len(chunks)) + tuple(chunks))
    if len(mult) != ndim or min(mult, default=1) < 1:
        raise ParameterError(f"chunks must be positive multiples of the store's chunks "
                             f"{tuple(job['chunks'])}, got {chunks!r}")
    complete = bool(meta.get("complete"))
    # an incomplete store keeps its array's zarr.json aside (bigcomp.store): read through a view.
    # Native chunks (one dask chunk per zarr chunk, coordinates whole), not consolidated
    # (bigcomp.store.finalize says why)
    levels = meta.get("levels") or []
    if not (isinstance(level, int) and 0 <= level <= len(levels)):
        raise ParameterError(f"{path} has pyramid levels 0 to {len(levels)}, not {level!r}")
    store = path if complete else incomplete_store(path)
    ds = xr.open_zarr(store, consolidated=False, zarr_format=3, chunks={},
                      mask_and_scale=False,  # the levels' shapes differ from level 0's
                      drop_variables=[lv["path"] for lv in levels])
    arr = ds[meta.get("array", DATA)]
    if level:
        from .pyramid import open_level

        arr, meta = open_level(store, arr, meta, level)
        job = meta["job"]
    if any(m > 1 for m in mult):
        arr = arr.chunk({d: c * m for d, c, m in zip(job["dims"], job["chunks"], mult,
                                                    strict=True)})
    arr = _restore_coords(arr)
    arr = arr.rename(meta.get("name") or None)
    arr.attrs["bigcomp"] = meta
    arr.encoding["bigcomp_store"] = os.path.abspath(path)
    return arr


def _restore_coords(arr: xarray.DataArray) -> xarray.DataArray:
    """Datetime coordinates back in their own unit (xarray decodes them as nanoseconds)."""
    from .store import DTYPE_ATTR

    for k, c in list(arr.coords.items()):
        if DTYPE_ATTR in c.attrs:
            attrs = {a: v for a, v in c.attrs.items() if a != DTYPE_ATTR}
            arr = arr.assign_coords({k: (c.dims, c.values.astype(c.attrs[DTYPE_ATTR]), attrs)})
    return arr


def _with_physical(arr: xarray.DataArray, meta: dict) -> xarray.DataArray:
    """Coordinates of a temporal or INR store from its ``physical`` record."""
    from .metadata import coords_from_record

    coords = coords_from_record(meta.get("physical"), arr.dims, arr.shape)
    return arr.assign_coords(coords) if coords else arr


def _open_temporal(path: str, meta: dict, allow_incomplete: bool) -> xarray.DataArray:
    import xarray as xr

    from .temporal import open_temporal

    data = open_temporal(path, allow_incomplete=allow_incomplete)
    dims = meta.get("dims") or [f"dim_{i}" for i in range(data.ndim)]
    arr = _with_physical(xr.DataArray(data, dims=list(dims), attrs={"bigcomp": meta}), meta)
    arr.encoding["bigcomp_store"] = os.path.abspath(path)
    return arr


def _open_inr(path: str, meta: dict) -> xarray.DataArray:
    import xarray as xr

    from .inr import open_inr

    data = open_inr(path)
    dims = meta.get("dims") or [f"dim_{i}" for i in range(data.ndim)]
    arr = _with_physical(xr.DataArray(data, dims=list(dims), attrs={"bigcomp": meta}), meta)
    arr.encoding["bigcomp_store"] = os.path.abspath(path)
    return arr
