"""Camera files: save and load a camera model (per-pixel maps or one global camera).

Three formats are read by :func:`load_camera`:

* **bigcomp camera file** ``camera.zarr``: a zarr v3 group with float64 arrays ``offset``
  (ADU), ``variance`` (read-noise variance, ADU²) and ``gain`` (ADU/e⁻), shape (rows, columns),
  and attributes ``bigcomp_camera`` (format version), ``kind`` (``"pixel"`` or ``"global"``),
  ``source`` (``"calibrated"``, ...), ``frames`` (dark and flat frames used), ``date``,
  ``bigcomp_version`` and ``units``. A global camera has no arrays, its ``gain``, ``offset``
  and ``read_noise`` are attributes. Written by :func:`save_camera`.
* **JSON** ``{"gain": 2.0, "offset": 100.0, "read_noise": 1.6}`` (ADU/e⁻, ADU, e⁻): a global
  camera.
* **storm-analysis** sCMOS calibration ``.npy`` (ZhuangLab/storm-analysis): offset, variance,
  gain planes. Files of its version 0 (3 planes, written before 2018) need two choices made
  explicitly, see :func:`load_camera`.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import uuid
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FormatVersionError, ParameterError, StoreExistsError, UnsupportedDataError
from .noise import CameraModel

if TYPE_CHECKING:
    from .calibration import CalibrationResult
    from .pixelcamera import PixelCamera

__all__ = ["load_camera", "save_camera"]

FORMAT_VERSION = 1
UNITS = {"offset": "ADU", "variance": "ADU^2", "gain": "ADU/e-", "read_noise": "e-"}
GAIN_UNITS = ("adu_per_e", "e_per_adu")
_MAPS = ("offset", "variance", "gain")
_JSON_KEYS = {"gain", "offset", "read_noise"}


# ---------------------------------------------------------------------------------- save
def save_camera(camera: PixelCamera | CameraModel | CalibrationResult,
                path: str | os.PathLike, *, overwrite: bool = False) -> None:
    """Write a camera file: ``.json`` for a global camera, otherwise a zarr v3 group.

    Parameters
    ----------
    camera : PixelCamera, CameraModel or CalibrationResult
        A calibration result also records the frames it used.
    path : str or os.PathLike
        ``camera.zarr`` (a directory) or ``camera.json`` (global cameras only).
    overwrite : bool
        Replace an existing file; otherwise it is refused.

    Raises
    ------
    StoreExistsError
        ``path`` exists and ``overwrite`` is false.
    ParameterError
        A per-pixel camera to a ``.json`` path, or not a camera.

    Examples
    --------
    >>> import tempfile, os
    >>> from bigcomp.datasets import scmos_camera
    >>> cam = scmos_camera((8, 8))
    >>> with tempfile.TemporaryDirectory() as d:
    ...     save_camera(cam, os.path.join(d, "camera.zarr"))
    ...     load_camera(os.path.join(d, "camera.zarr")) == cam
    True
    """
    from . import __version__
    from .io import _remove, _swap_in
    from .pixelcamera import PixelCamera

    frames = None
    if hasattr(camera, "camera") and hasattr(camera, "frames"):  # CalibrationResult
        frames, camera = camera.frames, camera.camera
    if not isinstance(camera, (PixelCamera, CameraModel)):
        raise ParameterError(f"save_camera takes a PixelCamera, CameraModel or "
                             f"CalibrationResult, not {type(camera).__name__}")
    path = os.fspath(path)
    if os.path.lexists(path) and not overwrite:
        raise StoreExistsError(f"{path} exists: pass overwrite=True (--overwrite) to replace it")
    if path.lower().endswith(".json"):
        if isinstance(camera, PixelCamera):
            raise ParameterError("a JSON camera file holds one global camera; save per-pixel "
                                 "maps to a .zarr path")
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:12]}"
        try:
            with open(tmp, "w") as f:
                json.dump(camera.to_dict(), f, indent=1)
            _swap_in(tmp, path)
        except BaseException:
            _remove(tmp)
            raise
        return
    import zarr

    attrs: dict[str, Any] = {
        "bigcomp_camera": FORMAT_VERSION,
        "kind": "pixel" if isinstance(camera, PixelCamera) else "global",
        "source": camera.source if isinstance(camera, PixelCamera) else "given",
        "frames": frames,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "bigcomp_version": __version__,
        "units": UNITS,
    }
    if isinstance(camera, CameraModel):
        attrs.update(camera.to_dict())
    tmp = os.path.join(os.path.dirname(os.path.abspath(path)),
                       f".{os.path.basename(path)}.tmp-{uuid.uuid4().hex[:12]}")
    try:
        group = zarr.open_group(tmp, mode="w", zarr_format=3, attributes=attrs)
        if isinstance(camera, PixelCamera):
            h, w = camera.shape
            for name in _MAPS:
                group.create_array(name, data=np.asarray(getattr(camera, name), np.float64),
                                   chunks=(min(h, 1024), min(w, 1024)),
                                   dimension_names=("y", "x"),
                                   attributes={"units": UNITS[name]})
        _swap_in(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


# ---------------------------------------------------------------------------------- load
def load_camera(path: str | os.PathLike, *, baseline: float | None = None,
                gain_units: str | None = None, transpose: bool | None = None,
                allow_pickle: bool = True) -> CameraModel | PixelCamera:
    """Read a camera file: bigcomp ``camera.zarr``, JSON, or a storm-analysis ``.npy``.

    Parameters
    ----------
    path : str or os.PathLike
        The camera file.
    baseline : float, optional
        storm-analysis files only: ADU added to the offset plane. Version 0 files (3 planes)
        hold the offset *after* the camera baseline was subtracted (storm-analysis' 2013
        ``dax_to_calib_format`` removed ``cam_offset = 100`` and its analysis removed
        ``baseline`` = 100 from every frame first): required for them, 100 for the
        Hamamatsu sample data. Default 0 for versions 1 and 2 (absolute ADU).
    gain_units : {"adu_per_e", "e_per_adu"}, optional
        storm-analysis files only: the unit of the gain plane. Version 0 files written before
        December 2016 hold e⁻/ADU (the fit was the inverse; storm-analysis commit da4e5ac5
        "Fix gain calculation"), later ones ADU/e⁻: required for version 0 files. Default
        ``"adu_per_e"`` for versions 1 and 2.
    transpose : bool, optional
        storm-analysis files only: swap rows and columns of the planes. Default: true for
        version 0 files (storm-analysis' own loader transposes them: they were made from
        transposed frames), false otherwise.
    allow_pickle : bool
        storm-analysis files of versions 1 and 2 are pickled lists: loading them runs
        pickle, only do it for files you trust.

    Returns
    -------
    PixelCamera or CameraModel

    Raises
    ------
    ParameterError
        A choice is needed (storm-analysis version 0) or a map is invalid (shape mismatch,
        NaN, variance <= 0, gain out of range).
    UnsupportedDataError
        Not a camera file.
    FormatVersionError
        A camera file of a newer bigcomp.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such camera file: {path!r}")
    low = path.lower().rstrip("/\\")
    if os.path.isdir(path):
        return _load_zarr(path)
    if low.endswith(".json"):
        return _load_json(path)
    if low.endswith(".npy"):
        return _load_storm(path, baseline, gain_units, transpose, allow_pickle)
    raise UnsupportedDataError(
        f"{path} is not a camera file: bigcomp reads a camera.zarr directory (bigcomp "
        "calibrate -o camera.zarr), a .json global camera ({\"gain\": .., \"offset\": .., "
        "\"read_noise\": ..}) or a storm-analysis .npy calibration")


def _load_zarr(path: str) -> CameraModel | PixelCamera:
    import zarr

    from .pixelcamera import PixelCamera

    try:
        group = zarr.open_group(path, mode="r")
    except Exception as exc:  # zarr raises several kinds for "not a group"
        raise UnsupportedDataError(f"{path} is not a zarr group ({exc}): not a bigcomp camera "
                                   "file") from None
    attrs = dict(group.attrs)
    version = attrs.get("bigcomp_camera")
    if version is None:
        raise UnsupportedDataError(f"{path} is a zarr group but not a bigcomp camera file (no "
                                   "'bigcomp_camera' attribute); write one with save_camera or "
                                   "bigcomp calibrate")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise FormatVersionError(f"{path} is camera file format {version!r}; this bigcomp reads "
                                 f"up to {FORMAT_VERSION}: upgrade bigcomp")
    units = attrs.get("units", UNITS)
    for name in ("offset", "variance", "gain"):
        if units.get(name, UNITS[name]) != UNITS[name]:
            raise ParameterError(f"{path}: {name} is in {units[name]!r}, bigcomp expects "
                                 f"{UNITS[name]!r}")
    kind = attrs.get("kind")
    if kind == "global":
        return CameraModel(attrs.get("gain"), attrs.get("offset"), attrs.get("read_noise"))
    if kind != "pixel":
        raise UnsupportedDataError(f"{path}: unknown camera kind {kind!r} (pixel or global)")
    missing = [n for n in _MAPS if n not in group]
    if missing:
        raise UnsupportedDataError(f"{path}: per-pixel camera file lacks the map(s) "
                                   f"{', '.join(missing)}")
    maps = {n: np.asarray(group[n][...], np.float64) for n in _MAPS}
    return PixelCamera(maps["offset"], maps["variance"], maps["gain"],
                       source=str(attrs.get("source", "file")))


def _load_json(path: str) -> CameraModel:
    try:
        with open(path) as f:
            spec = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UnsupportedDataError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise ParameterError(f"{path}: a JSON camera is an object like {{\"gain\": 2.0, "
                             "\"offset\": 100.0, \"read_noise\": 1.6}")
    spec = {k: v for k, v in spec.items() if k not in ("kind", "units")}
    unknown, missing = set(spec) - _JSON_KEYS, _JSON_KEYS - set(spec)
    if unknown or missing:
        raise ParameterError(
            f"{path}: a JSON camera has exactly gain (ADU/e-), offset (ADU) and read_noise "
            f"(e-)" + (f"; unknown: {sorted(unknown)}" if unknown else "")
            + (f"; missing: {sorted(missing)}" if missing else ""))
    return CameraModel(**spec)


def _load_storm(path: str, baseline, gain_units, transpose, allow_pickle) -> PixelCamera:
    from .pixelcamera import PixelCamera

    with warnings.catch_warnings():
        # numpy re-parses the header of .npy files written by Python 2 and says so
        warnings.simplefilter("ignore", UserWarning)
        try:
            data = np.load(path, allow_pickle=False)
        except ValueError:
            if not allow_pickle:
                raise ParameterError(f"{path} holds pickled data (a storm-analysis v1/v2 "
                                     "calibration); pass allow_pickle=True if you trust "
                                     "it") from None
            data = np.load(path, allow_pickle=True, encoding="latin1")
    if isinstance(data, np.ndarray) and data.dtype != object and data.ndim == 3:
        items = list(data)
    elif isinstance(data, (list, tuple, np.ndarray)):
        items = list(data)
    else:
        raise UnsupportedDataError(f"{path}: not a storm-analysis calibration (expected "
                                   "[offset, variance, gain, ...] planes)")
    if len(items) == 3:
        version = 0
    elif len(items) == 4 and np.ndim(items[3]) == 0 and items[3] == 1:
        version = 1
    elif len(items) == 5 and np.ndim(items[4]) == 0 and items[4] == 2:
        version = 2  # [offset, variance, gain, relative QE, 2]; the QE does not enter σ
    else:
        raise UnsupportedDataError(
            f"{path}: unknown storm-analysis calibration layout ({len(items)} entries): "
            "expected [offset, variance, gain] (v0), [..., 1] (v1) or [..., rqe, 2] (v2)")
    if version == 0:
        need = [k for k, v in (("baseline", baseline), ("gain_units", gain_units)) if v is None]
        if need:
            planes = [np.asarray(p, np.float64) for p in items]
            rn_e = math.sqrt(float(np.median(planes[1]))) * float(np.median(planes[2]))
            rn_a = math.sqrt(float(np.median(planes[1]))) / float(np.median(planes[2]))
            raise ParameterError(
                f"{path} is a storm-analysis version 0 calibration (3 planes, before 2018), "
                f"whose conventions the file does not record; pass {' and '.join(need)}: "
                f"baseline= the ADU the camera adds that were subtracted before calibrating "
                f"(the offset plane's median is {float(np.median(planes[0])):.3g} ADU; "
                f"storm-analysis used 100 for its Hamamatsu sample data, compare the dark "
                f"level of your frames), gain_units='e_per_adu' (files made before Dec 2016; "
                f"median read noise then {rn_e:.2f} e-) or 'adu_per_e' (later; "
                f"{rn_a:.2f} e-). For storm-analysis' sample calib.npy: "
                f"load_camera(path, baseline=100, gain_units='e_per_adu'); save it with "
                f"bigcomp.save_camera(camera, 'camera.zarr') to use it with --camera")
    baseline = 0.0 if baseline is None else float(baseline)
    gain_units = "adu_per_e" if gain_units is None else gain_units
    if gain_units not in GAIN_UNITS:
        raise ParameterError(f"gain_units must be one of {GAIN_UNITS}, got {gain_units!r}")
    if transpose is None:
        transpose = version == 0
    planes = []
    for name, p in zip(_MAPS, items[:3], strict=True):
        a = np.asarray(p, np.float64)
        if a.ndim != 2:
            raise ParameterError(f"{path}: the {name} plane has shape {a.shape}, expected 2-D")
        planes.append(a.T if transpose else a)
    offset, variance, gain = planes
    if gain_units == "e_per_adu":
        with np.errstate(divide="ignore"):
            gain = 1.0 / gain
    return PixelCamera(offset + baseline, variance, gain, source=f"storm-analysis v{version}")
