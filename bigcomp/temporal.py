"""Temporal statistics model (Holton): code each pixel against its own temporal median.

For series where most pixels fluctuate about a stable background (X-ray diffraction image
series, static-background timelapses, single-molecule movies), each pixel is coded as its
deviation from its temporal median ``m`` in units of its own noise ``s``; rare strong signals
(Bragg spots, cells, blinking molecules, cosmic rays) are kept exactly.

* ``m``: lower median over time (per block of ``window`` frames if given, for drifting
  backgrounds); ``s = max(1.4826·MAD, camera σ(m), floor)`` (``noise="max"``), or only the MAD
  (``"mad"``) or only the camera (``"camera"``) term with the floor. ``m`` is stored losslessly
  and ``s`` as a float32 rounded *up* to a 5-bit mantissa (``s`` below is the stored value).
* ``z = (x - m)/s``; ``|z| > threshold`` -> outlier, stored exactly (sparse list);
  otherwise ``k = round(z/q)`` is entropy coded and ``x' = round(m + k·q·s)`` (clipped).

**The bound**, per pixel: ``|x' - x| <= q/2·s + 0.5`` for integer data (``q/2·s`` plus one
float rounding for float data) and ``x' == x`` for outliers. The encoder checks it on the values
the decoder produces; any pixel that would miss it is stored as an outlier.

Layout (a zarr v3 group; details in :mod:`bigcomp.temporal_store`)::

    dest/zarr.json    attributes {"bigcomp": {"mode": "temporal", parameters, stats, ...}}
    dest/median/      variable-length bytes, one payload per (window block, spatial tile)
    dest/noise/       same grid as median
    dest/residuals/   one payload per (t-chunk, spatial tile)
    dest/outliers/    same grid as residuals

Examples
--------
>>> import tempfile, os
>>> from bigcomp import datasets
>>> s = datasets.diffraction_series((6, 64, 64), seed=1)
>>> path = compress_temporal(s.data, os.path.join(tempfile.mkdtemp(), "t.zarr"), q=2.0)
>>> x = open_temporal(path)
>>> x.shape, x.dtype
((6, 64, 64), dtype('uint16'))
>>> temporal_info(path)["ratio"] > 2
True
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import threading
import uuid
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FormatVersionError, IncompleteStoreError, ParameterError, UnsupportedDataError
from .noise import CameraModel
from .temporal_store import (
    SUPPORTED_DTYPES,
    TemporalParams,
    check_params,
    decode_block,
    decode_model,
    encode_block,
    encode_model,
    fit_model,
    lower_median,
    noise_value,
)

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["compress_temporal", "median_mad", "open_temporal", "temporal_info"]

LAYOUT_VERSION = 1
ARRAYS = ("median", "noise", "residuals", "outliers")
_STATS = ("n", "outliers", "forced", "variant0", "variant1", "variant2", "median_bytes",
          "noise_bytes", "residuals_bytes", "outliers_bytes", "max_err_ppm")
_MAX_BLOCK = 1 << 22  # pixels x frames per (window block, tile) task, for the default tile
BOUND = ("|x' - x| <= q/2*s + 0.5 for integer data (q/2*s + spacing(x) for float data) where "
         "|x - m| <= threshold*s; x' == x elsewhere (outliers); m = stored median, s = stored "
         "noise (float32, mantissa rounded up to 5 bits)")


# ------------------------------------------------------------------------------ the input
def _as_dask(data, time_axis) -> tuple[Any, int, list[str], dict]:
    """(dask array, time axis index, dims, attrs) of a numpy/dask/xarray input."""
    import dask.array as da

    dims, attrs = None, {}
    if hasattr(data, "dims") and hasattr(data, "variable"):  # xarray.DataArray
        dims, attrs = [str(d) for d in data.dims], dict(data.attrs)
        data = data.data
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        data = np.asarray(data)
    ndim = len(data.shape)
    if isinstance(time_axis, str):
        if dims is None:
            raise ParameterError(f"time_axis={time_axis!r} is a dimension name, which needs an "
                                 "xarray.DataArray input; for arrays pass its index, e.g. "
                                 "time_axis=0")
        if time_axis not in dims:
            raise ParameterError(f"time_axis={time_axis!r} is not a dimension of the input "
                                 f"(dims {tuple(dims)}): pass one of them or an index")
        t_ax = dims.index(time_axis)
    elif isinstance(time_axis, (int, np.integer)) and -ndim <= time_axis < ndim:
        t_ax = int(time_axis) % ndim
    else:
        raise ParameterError(f"time_axis must be an axis index in [-{ndim}, {ndim}) or a "
                             f"dimension name, got {time_axis!r} for a {ndim}-D input")
    dt = np.dtype(data.dtype)
    if dt not in SUPPORTED_DTYPES:
        raise UnsupportedDataError(
            f"the temporal model supports {', '.join(d.name for d in SUPPORTED_DTYPES)}, not "
            f"{dt}; convert first (e.g. data.astype('int32') for wider integer counts)")
    if data.shape[t_ax] < 3:
        raise ParameterError(f"the time axis ({t_ax}) has {data.shape[t_ax]} frames: the "
                             "temporal model needs >= 3 (use bigcomp.compress(mode='wnl') for "
                             "single images) or pass the right time_axis")
    if isinstance(data, np.ndarray) and dt.kind == "f" and not np.isfinite(data).all():
        raise UnsupportedDataError(_NAN_MESSAGE)
    if not isinstance(data, da.Array):
        data = da.from_array(data, chunks=data.shape if isinstance(data, np.ndarray) else "auto")
    if dims is None:
        dims = list("tczyx"[5 - ndim:]) if ndim <= 5 else [f"dim_{i}" for i in range(ndim)]
        if ndim <= 5 and t_ax != 0:
            dims = [f"dim_{i}" for i in range(ndim)]
            dims[t_ax] = "t"
    return data, t_ax, dims, attrs


_NAN_MESSAGE = ("data contains NaN or inf: replace them first (e.g. np.nan_to_num(data, "
                "nan=0.0), keeping a mask separately) or store the series losslessly")


def _layout(shape: tuple[int, ...], window, chunks) -> tuple[list, tuple, tuple]:
    """Model blocks along t, residual t-chunks (with their block), spatial tile.

    ``shape`` is time-first. Returns ``(blocks, tchunks, tile)`` with ``blocks`` a list of
    ``(start, stop)``, ``tchunks`` a tuple of ``(start, stop, block)``.
    """
    T, spatial = shape[0], shape[1:]
    if window is None:
        bounds = [(0, T)]
    else:
        if not isinstance(window, (int, np.integer)) or window < 3:
            raise ParameterError(f"window must be an integer >= 3 frames (a median per block "
                                 f"of that many frames) or None, got {window!r}")
        starts = list(range(0, T, int(window)))
        bounds = [(a, min(a + int(window), T)) for a in starts]
        if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < 3:  # short tail: merge
            bounds[-2:] = [(bounds[-2][0], T)]
    longest = max(b - a for a, b in bounds)
    # chunks: None, an int (y/x tile) or a tuple in the time-first order
    if chunks is None or isinstance(chunks, (int, np.integer)):
        if chunks is None:
            side = int(np.sqrt(_MAX_BLOCK / longest))
            side = max(32, min(256, 1 << max(0, side.bit_length() - 1)))
        else:
            side = int(chunks)
        tile = tuple(1 for _ in spatial[:-2]) + tuple(min(side, n) for n in spatial[-2:])
        tc = min(longest, 32)
    else:
        chunks = tuple(int(c) for c in chunks)
        if len(chunks) != len(shape) or min(chunks) < 1:
            raise ParameterError(f"chunks must give a positive size for each of the {len(shape)} "
                                 f"axes (time first), got {chunks!r}")
        tc, tile = chunks[0], tuple(min(c, n) for c, n in zip(chunks[1:], spatial, strict=True))
    tile = tuple(max(1, t) for t in tile)
    tchunks = tuple((s, min(s + tc, b), i) for i, (a, b) in enumerate(bounds)
                    for s in range(a, b, tc))
    return bounds, tchunks, tile


# ----------------------------------------------------------------------------- statistics
def median_mad(data, *, time_axis: int | str = 0, window: int | None = None,
               tile: int | None = None) -> tuple[da.Array, da.Array]:
    """Per-pixel temporal median and MAD as lazy dask arrays (out of core).

    The series is rechunked so that time is one chunk (one per window block) per spatial tile
    of ``tile x tile`` pixels; each task then holds ``frames x tile²`` pixels only.

    Parameters
    ----------
    data : array_like, dask or xarray.DataArray
        The series.
    time_axis : int or str
        Index (or, for xarray input, name) of the time axis.
    window : int, optional
        A median per block of ``window`` frames (a drifting background) instead of one.
    tile : int, optional
        Spatial tile size of the last two axes.

    Returns
    -------
    median, mad : dask.array.Array
        Shaped like the data with the time axis of length ``ceil(T / window)`` (1 without
        ``window``); ``median`` is the lower median (an element of the data), ``mad`` the lower
        median of ``|x - median|`` (float64). The noise estimate is ``1.4826·mad``.

    Examples
    --------
    >>> m, mad = median_mad(np.array([[1, 5], [2, 5], [9, 6], [3, 5]], np.uint16))
    >>> m.compute().tolist(), mad.compute().tolist()
    ([[2, 5]], [[1.0, 0.0]])
    """
    import dask.array as da

    x, t_ax, _, _ = _as_dask(data, time_axis)
    x = x if t_ax == 0 else da.moveaxis(x, t_ax, 0)
    bounds, _, tiles = _layout(x.shape, window, tile)
    xr = x.rechunk((tuple(b - a for a, b in bounds), *tiles))
    out_chunks = ((1,) * len(bounds), *xr.chunks[1:])
    kw = {"dtype": x.dtype, "chunks": out_chunks, "meta": np.empty((0,) * x.ndim, x.dtype)}
    med = xr.map_blocks(_median_block, **kw)
    kw.update(dtype=np.float64, meta=np.empty((0,) * x.ndim, np.float64))
    mad = xr.map_blocks(_mad_block, **kw)
    return (med, mad) if t_ax == 0 else (da.moveaxis(med, 0, t_ax), da.moveaxis(mad, 0, t_ax))


def _median_block(x: np.ndarray) -> np.ndarray:
    return lower_median(x, 0)[None]


def _mad_block(x: np.ndarray) -> np.ndarray:
    m = lower_median(x, 0).astype(np.float64)
    return lower_median(np.abs(x.astype(np.float64) - m), 0)[None]


# ------------------------------------------------------------------------------- writing
class _Writer:
    """Encode one (window block, tile) task: model + all its residual t-chunks (picklable)."""

    def __init__(self, path: str, params: TemporalParams, bounds, tchunks, numblocks):
        self.path, self.params, self.bounds, self.tchunks = path, params, bounds, tchunks
        self.ntiles = numblocks[1:]

    @functools.cached_property
    def _arrays(self) -> dict:
        import zarr

        g = zarr.open_group(self.path, mode="r+")
        return {name: g[name] for name in ARRAYS}

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_arrays"}

    def _put(self, name: str, index: tuple[int, ...], payload: bytes) -> None:
        v = np.empty((1,) * len(index), object)
        v.reshape(-1)[0] = payload
        self._arrays[name][tuple(slice(i, i + 1) for i in index)] = v

    def __call__(self, x: np.ndarray, block_info=None) -> np.ndarray:
        loc = tuple(block_info[0]["chunk-location"])
        b, tile = loc[0], loc[1:]
        if x.dtype.kind == "f" and not np.isfinite(x).all():
            raise UnsupportedDataError(_NAN_MESSAGE)
        params = self.params
        m, code = fit_model(x, params)
        med, noi = encode_model(m, code, params)
        self._put("median", (b, *tile), med)
        self._put("noise", (b, *tile), noi)
        s = noise_value(code)
        st = dict.fromkeys(_STATS, 0)
        st.update(median_bytes=len(med), noise_bytes=len(noi))
        t0 = self.bounds[b][0]
        for i, (a, e, blk) in enumerate(self.tchunks):
            if blk != b:
                continue
            res, out, bs = encode_block(x[a - t0 : e - t0], m, s, params)
            self._put("residuals", (i, *tile), res)
            self._put("outliers", (i, *tile), out)
            st["n"] += bs["n"]
            st["outliers"] += bs["outliers"]
            st["forced"] += bs["forced"]
            st[f"variant{bs['variant']}"] += 1
            st["residuals_bytes"] += len(res)
            st["outliers_bytes"] += len(out)
            st["max_err_ppm"] = max(st["max_err_ppm"], round(bs["max_err"] * 1e6))
        return np.array([st[k] for k in _STATS], np.int64).reshape((1,) * x.ndim + (-1,))


def _create(path: str, overwrite: bool, grids: dict[str, tuple[int, ...]], meta: dict) -> None:
    import zarr
    from zarr.errors import UnstableSpecificationWarning

    if os.path.exists(path):
        if not overwrite:
            raise ParameterError(f"{path} exists: pass overwrite=True to replace it, or choose "
                                 "another destination")
        if not os.path.isfile(os.path.join(path, "zarr.json")):
            raise ParameterError(f"{path} exists and is not a zarr store: refusing to delete "
                                 "it; remove it yourself or choose another destination")
        shutil.rmtree(path)
    g = zarr.open_group(path, mode="w-", attributes={"bigcomp": meta})
    with warnings.catch_warnings():
        # variable-length bytes has no zarr v3 *spec* yet (zarr-extensions); zarr-python 3.x
        # reads and writes it ("vlen-bytes" codec)
        warnings.simplefilter("ignore", UnstableSpecificationWarning)
        for name, grid in grids.items():
            g.create_array(name, shape=grid, chunks=(1,) * len(grid), dtype="bytes",
                           fill_value=b"", compressors=None,
                           attributes={"description": _DESCRIPTIONS[name]})


_DESCRIPTIONS = {
    "median": "per (window block, tile): lower temporal median, lossless",
    "noise": "per (window block, tile): noise s as float32 codes relative to the camera model",
    "residuals": "per (t-chunk, tile): k = round((x - m) / (q s)) of the non-outliers",
    "outliers": "per (t-chunk, tile): exact values of pixels with |x - m| > threshold s",
}


def compress_temporal(data, dest: str | os.PathLike, *, time_axis: int | str = 0,
                      q: float = 1.0, threshold: float = 4.0, noise: str = "max",
                      camera: CameraModel | None = None, window: int | None = None,
                      chunks=None, noise_floor: float | None = None, overwrite: bool = False,
                      scheduler=None) -> str:
    """Compress a series with the temporal model into a zarr v3 group.

    Parameters
    ----------
    data : numpy.ndarray, dask.array.Array or xarray.DataArray
        The series, any number of axes (e.g. ``(t, y, x)`` or ``(t, c, z, y, x)``); dtype
        uint8/16/32, int8/16/32 or float32/64. A dask array is processed chunk by chunk.
    dest : str or os.PathLike
        Local directory of the zarr group to write.
    time_axis : int or str
        Index of the time axis, or its name for xarray input (e.g. ``"t"``).
    q : float
        Quantisation step in units of each pixel's noise ``s`` (> 0).
    threshold : float
        Pixels with ``|x - m| > threshold·s`` are kept exactly.
    noise : {"max", "mad", "camera"}
        Noise per pixel: ``max(1.4826·MAD, camera σ(m), floor)``, ``max(1.4826·MAD, floor)`` or
        ``max(camera σ(m), floor)``.
    camera : CameraModel, optional
        Camera model (needed for ``noise="camera"``). Photon counting: ``CameraModel(1, 0, 0)``.
    window : int, optional
        One median per block of ``window`` frames (for a drifting background); default one
        median for the whole series.
    chunks : int or tuple of int, optional
        Residual chunk: an int sets the y/x tile; a tuple gives every axis in the data's axis
        order (the time entry is the residual t-chunk, which never spans window blocks).
        Default: tiles of <= 256 x 256 (smaller for long series) and t-chunks of 32 frames.
    noise_floor : float, optional
        Smallest noise in data units; default 1 for integer data, ``2**-20·|m|`` for floats.
    overwrite : bool
        Replace an existing store at ``dest``.
    scheduler : optional
        Passed to ``dask.compute`` (a name, or use a ``distributed.Client`` context).

    Returns
    -------
    str
        ``dest``.

    Raises
    ------
    ParameterError
        Bad parameters, a time axis of fewer than 3 frames, an unknown axis name, ``dest``
        exists.
    UnsupportedDataError
        Unsupported dtype, NaN or inf values.

    Notes
    -----
    Per pixel, ``|x' - x| <= q/2·s + 0.5`` (integer data) for non-outliers and ``x' == x`` for
    outliers, ``s`` being the stored noise (see :func:`open_temporal` with
    ``component="noise"``). Memory is bounded by one (window block x tile) per worker.
    """
    import dask
    import dask.array as da

    x, t_ax, dims, attrs = _as_dask(data, time_axis)
    floor = (0.0 if x.dtype.kind == "f" else 1.0) if noise_floor is None else noise_floor
    check_params(q, threshold, noise, camera, floor)
    params = TemporalParams(np.dtype(x.dtype), float(q), float(threshold), noise, camera,
                            float(floor))
    shape = tuple(int(n) for n in x.shape)
    x = x if t_ax == 0 else da.moveaxis(x, t_ax, 0)
    if chunks is not None and not isinstance(chunks, (int, np.integer)):
        chunks = tuple(chunks)
        if len(chunks) == len(shape):
            chunks = (chunks[t_ax], *(c for i, c in enumerate(chunks) if i != t_ax))
    bounds, tchunks, tile = _layout(x.shape, window, chunks)
    xr = x.rechunk((tuple(b - a for a, b in bounds), *tile))
    ntiles = xr.numblocks[1:]
    path = os.fspath(dest)
    from . import __version__

    meta = {"mode": "temporal", "layout_version": LAYOUT_VERSION, "version": __version__,
            "uuid": uuid.uuid4().hex,
            "shape": list(shape), "dims": dims, "time_axis": t_ax, **params.to_dict(),
            "window": None if window is None else int(window), "blocks": bounds,
            "tchunks": [list(c) for c in tchunks], "tile": list(tile), "bound": BOUND,
            "raw_nbytes": int(np.prod(shape)) * x.dtype.itemsize, "attrs": _jsonable(attrs),
            "complete": False}
    _create(path, overwrite, {"median": (len(bounds), *ntiles), "noise": (len(bounds), *ntiles),
                              "residuals": (len(tchunks), *ntiles),
                              "outliers": (len(tchunks), *ntiles)}, meta)
    writer = _Writer(path, params, bounds, tchunks, xr.numblocks)
    stats = xr.map_blocks(writer, dtype=np.int64, new_axis=xr.ndim,
                          chunks=(*((1,) * n for n in xr.numblocks), (len(_STATS),)),
                          meta=np.empty((0,) * (xr.ndim + 1), np.int64))
    summed = stats.sum(axis=tuple(range(xr.ndim)))
    peak = stats.max(axis=tuple(range(xr.ndim)))
    summed, peak = dask.compute(summed, peak, scheduler=scheduler)
    totals = {k: int(v) for k, v in zip(_STATS, summed, strict=True)}
    totals["max_err_ppm"] = int(peak[_STATS.index("max_err_ppm")])
    meta.update(complete=True, stats=totals)
    _write_attrs(path, meta)
    return path


def _jsonable(attrs: dict) -> dict:
    out = {}
    for k, v in attrs.items():
        try:
            json.dumps(v)
        except TypeError:
            continue
        out[str(k)] = v
    return out


def _write_attrs(path: str, meta: dict) -> None:
    import zarr

    zarr.open_group(path, mode="r+").attrs["bigcomp"] = meta


# ------------------------------------------------------------------------------- reading
def _read_meta(path: str) -> dict:
    fn = os.path.join(path, "zarr.json")
    try:
        with open(fn, encoding="utf-8") as f:
            meta = json.load(f).get("attributes", {}).get("bigcomp")
    except (OSError, ValueError) as exc:
        raise ParameterError(f"{path} is not a bigcomp store ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("mode") != "temporal":
        raise ParameterError(f"{path} is not a bigcomp temporal store (use bigcomp.open)")
    if meta.get("layout_version", 0) > LAYOUT_VERSION:
        raise FormatVersionError(f"{path} was written by a newer bigcomp: upgrade bigcomp")
    return meta


class _Reader:
    """Array-like that decodes one aligned chunk of a temporal store (for ``da.from_array``)."""

    def __init__(self, path: str, meta: dict, component: str):
        self.path, self.meta, self.component = path, meta, component
        self.params = TemporalParams.from_dict(meta)
        self.dtype = np.dtype(meta["dtype"]) if component != "noise" else np.dtype("float64")
        T, spatial = meta["shape"][meta["time_axis"]], list(meta["shape"])
        del spatial[meta["time_axis"]]
        self.spatial, self.tile = tuple(spatial), tuple(meta["tile"])
        self.tchunks = [tuple(c) for c in meta["tchunks"]]
        self.blocks = [tuple(b) for b in meta["blocks"]]
        nt = T if component == "data" else len(self.blocks)
        self.shape = (nt, *self.spatial)
        self.ndim = len(self.shape)

    @functools.cached_property
    def _arrays(self) -> dict:
        import zarr

        g = zarr.open_group(self.path, mode="r")
        return {name: g[name] for name in ARRAYS}

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "_arrays"}

    @property
    def chunks(self) -> tuple[tuple[int, ...], ...]:
        tch = (tuple(e - a for a, e, _ in self.tchunks) if self.component == "data"
               else (1,) * len(self.blocks))
        sp = tuple(tuple(min(t, n - s) for s in range(0, n, t))
                   for n, t in zip(self.spatial, self.tile, strict=True))
        return (tch, *sp)

    def _get(self, name: str, index: tuple[int, ...]) -> bytes:
        return self._arrays[name][tuple(slice(i, i + 1) for i in index)].reshape(-1)[0]

    def model(self, b: int, tile: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        return _cached_model(self, self.meta["uuid"], b, tile)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        t_sl, sp = key[0], key[1:]
        tile = tuple(s.start // t for s, t in zip(sp, self.tile, strict=True))
        if self.component == "data":
            i = [c[0] for c in self.tchunks].index(t_sl.start)
            a, e, b = self.tchunks[i]
            m, s = self.model(b, tile)
            shape = (e - a, *m.shape)
            where = f"{self.path} chunk {(i, *tile)}"
            return decode_block(self._get("residuals", (i, *tile)),
                                self._get("outliers", (i, *tile)), m, s, shape, self.params,
                                where)
        out = [self.model(b, tile)[0 if self.component == "median" else 1][None]
               for b in range(t_sl.start, t_sl.stop)]
        return np.concatenate(out)


_MODEL_CACHE: dict = {}
_MODEL_LOCK = threading.Lock()


def _cached_model(reader: _Reader, uid: str, b: int, tile: tuple[int, ...]):
    key = (uid, b, tile)
    with _MODEL_LOCK:
        hit = _MODEL_CACHE.get(key)
    if hit is not None:
        return hit
    shape = tuple(min(t, n - i * t) for i, t, n in zip(tile, reader.tile, reader.spatial,
                                                          strict=True))
    where = f"{reader.path} model {(b, *tile)}"
    m, s = decode_model(reader._get("median", (b, *tile)), reader._get("noise", (b, *tile)),
                        shape, reader.params, where)
    with _MODEL_LOCK:  # a small FIFO: the tiles of the chunks being decoded
        if len(_MODEL_CACHE) >= 64:
            _MODEL_CACHE.pop(next(iter(_MODEL_CACHE)))
        _MODEL_CACHE[key] = (m, s)
    return m, s


def open_temporal(path: str | os.PathLike, *, component: str = "data",
                  allow_incomplete: bool = False) -> da.Array:
    """Open a temporal store lazily: reading a region decodes only the chunks it touches.

    Parameters
    ----------
    path : str or os.PathLike
        A store written by :func:`compress_temporal`.
    component : {"data", "median", "noise"}
        The reconstructed series (default), or the stored median or noise ``s`` (float64),
        shaped like the data with a time axis of one entry per window block.
    allow_incomplete : bool
        Open a store whose compression did not finish (missing chunks raise when read).

    Returns
    -------
    dask.array.Array
        In the input's axis order.

    Raises
    ------
    ParameterError
        ``path`` is not a temporal store, or ``component`` is unknown.
    IncompleteStoreError
        The store is incomplete and ``allow_incomplete`` is false.
    """
    import dask.array as da
    from dask.base import tokenize

    if component not in ("data", "median", "noise"):
        raise ParameterError(f"component must be 'data', 'median' or 'noise', got {component!r}")
    path = os.fspath(path)
    meta = _read_meta(path)
    if not meta.get("complete") and not allow_incomplete:
        raise IncompleteStoreError(
            f"{path} is incomplete (the compression was interrupted): run compress_temporal "
            "again, or pass allow_incomplete=True")
    reader = _Reader(path, meta, component)
    name = f"bigcomp-temporal-{component}-" + tokenize(path, meta["uuid"])
    arr = da.from_array(reader, chunks=reader.chunks, name=name, asarray=False, fancy=False,
                        lock=False, meta=np.empty((0,) * reader.ndim, reader.dtype))
    t_ax = meta["time_axis"]
    return arr if t_ax == 0 else da.moveaxis(arr, 0, t_ax)


def temporal_info(path: str | os.PathLike) -> dict:
    """Summary of a temporal store: ratio, parameters, outlier fraction, bytes per part.

    Returns
    -------
    dict
        ``ratio`` (raw bytes / all stored bytes, metadata included), ``raw_nbytes``,
        ``stored_nbytes``, ``nbytes`` per array, ``outlier_fraction``, ``forced_outliers``,
        ``max_error_sigma`` (largest ``|x' - x|/s`` of the non-outliers), ``bound`` and the
        parameters (``q``, ``threshold``, ``noise``, ``camera``, ``window``, ...).
    """
    path = os.fspath(path)
    meta = _read_meta(path)
    parts = {}
    total = 0
    for root, _, files in os.walk(path):
        size = sum(os.path.getsize(os.path.join(root, f)) for f in files)
        total += size
        top = os.path.relpath(root, path).split(os.sep)[0]
        if top in ARRAYS:
            parts[top] = parts.get(top, 0) + size
    st = meta.get("stats", {})
    n = st.get("n", 0)
    info = {k: meta[k] for k in ("shape", "dtype", "dims", "time_axis", "q", "threshold",
                                 "noise", "noise_floor", "camera", "window", "tile", "bound",
                                 "complete")}
    info.update(raw_nbytes=meta["raw_nbytes"], stored_nbytes=total,
                ratio=meta["raw_nbytes"] / total if total else float("nan"), nbytes=parts,
                outlier_fraction=st.get("outliers", 0) / n if n else float("nan"),
                forced_outliers=st.get("forced", 0),
                max_error_sigma=st.get("max_err_ppm", 0) / 1e6,
                residual_coders={"k": st.get("variant0", 0), "previous_frame":
                                 st.get("variant1", 0), "foundation": st.get("variant2", 0)})
    return info
