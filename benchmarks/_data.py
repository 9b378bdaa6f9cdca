"""Loaders for the benchmark datasets: synthetic light-sheet and the real sets in ../shared/data.

Each loader returns a :class:`Dataset` (or ``None`` where its files are missing) holding the raw
array and the camera model used for the lossy rows, with a note on where the camera came from.
The real data is read in place and never copied into the project; see ``shared/data/README.md``
for sources and licences.
"""

from __future__ import annotations

import glob
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bigcomp import datasets
from bigcomp.estimate import PoorFitWarning, estimate_camera, photon_transfer
from bigcomp.noise import CameraModel

__all__ = ["Dataset", "load_all"]


@dataclass
class Dataset:
    name: str
    data: np.ndarray
    camera: CameraModel
    camera_note: str
    source: str


def _estimated(data: np.ndarray, **kw) -> tuple[CameraModel, str]:
    """estimate_camera, with a note saying whether the fit was poor."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", PoorFitWarning)
        cam = estimate_camera(data, **kw)
    r2 = photon_transfer(data, **kw).r2
    poor = any(issubclass(w.category, PoorFitWarning) for w in caught)
    return cam, f"estimate_camera (R² {r2:.3f}{', POOR FIT' if poor else ''})"


def synthetic(quick: bool) -> Dataset:
    shape = (16, 256, 256) if quick else (32, 512, 512)
    s = datasets.light_sheet(shape, seed=0)
    cam = CameraModel(s.gain, s.offset, s.read_noise)
    return Dataset("synthetic light-sheet", s.data, cam, "known (simulated)",
                   "bigcomp.datasets.light_sheet")


def storm(root: str) -> Dataset | None:
    path = os.path.join(root, "storm_scmos", "sample.dax")
    if not os.path.exists(path):
        return None
    data = np.fromfile(path, ">u2").reshape(-1, 256, 256).astype(np.uint16)
    note = ""
    calib_path = os.path.join(root, "storm_scmos", "calib.npy")
    if os.path.exists(calib_path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            calib = np.asarray(np.load(calib_path, allow_pickle=True), dtype=np.float64)
        off, var, cgain = (float(np.median(p)) for p in calib[:3])
        # calib's "gain" plane (median 0.474) is e⁻/ADU (Hamamatsu's conversion factor): the
        # free photon-transfer fit gives ~2.4 ADU/e⁻, close to 1/0.474 = 2.11, not to 0.474.
        gain = 1.0 / cgain
        rn = float(np.sqrt(var)) / gain
        # the calib offset plane (median ~0.38) is not this movie's dark level (median 108):
        # keep calib gain and read noise, take the offset from the data's photon transfer line
        cam, _ = _estimated(data, gain=gain, read_noise=rn)
        free, free_note = _estimated(data)
        note = (f"calib.npy medians: gain plane {cgain:.3f} read as e⁻/ADU -> gain {gain:.3f} "
                f"ADU/e⁻, σ_r {rn:.2f} e⁻ (var {var:.2f} ADU²); its offset plane ({off:.2f}) "
                f"does not match the data (median {np.median(data):.0f}), so the offset is "
                f"fitted with gain and σ_r fixed. Free {free_note}: gain {free.gain:.3f}, "
                f"offset {free.offset:.1f}, σ_r {free.read_noise:.2f}")
    else:
        cam, note = _estimated(data)
    return Dataset("STORM sCMOS (sample.dax)", data, cam, note,
                   "ZhuangLab/storm-analysis sCMOS sample data")


def ccd_spe(root: str) -> Dataset | None:
    path = os.path.join(root, "ccd_spe", "CeO2_PI_CCD_Mo.SPE")
    if not os.path.exists(path):
        return None
    import fabio

    data = np.ascontiguousarray(fabio.open(path).data).astype(np.uint16)
    cam, note = _estimated(data)
    return Dataset("X-ray CCD (SPE)", data, cam, note, "Dioptas test data (GPL-3.0)")


def timelapse(root: str) -> Dataset | None:
    path = os.path.join(root, "timelapse_membrane", "membrane_2d_timelapse.tif")
    if not os.path.exists(path):
        return None
    import tifffile

    data = tifffile.imread(path).astype(np.uint16)
    cam, note = _estimated(data)
    return Dataset("membrane timelapse", data, cam, note,
                   "haesleinhuepf/BioImageAnalysisNotebooks (CC BY)")


def lattice(root: str) -> Dataset | None:
    path = os.path.join(root, "lattice_5d", "multich_multi_time.tif")
    if not os.path.exists(path):
        return None
    import tifffile

    # stored (T, Z, C, Y, X); bigcomp predicts from the previous plane along axis -3: make it Z
    data = np.ascontiguousarray(np.moveaxis(tifffile.imread(path), 2, 1)).astype(np.uint16)
    cam, note = _estimated(data)
    return Dataset("lattice 5D (T,C,Z,11,13)", data, cam, note, "PyPI lls-core sample (GPL-3.0)")


def brain(root: str) -> Dataset | None:
    files = sorted(glob.glob(os.path.join(root, "brain3d", "ch0", "*.tif*")))
    if not files:
        return None
    import tifffile

    data = np.stack([tifffile.imread(f) for f in files]).astype(np.uint16)
    cam, note = _estimated(data)
    return Dataset("brain 3D ch0", data, cam, note, "brainglobe/cellfinder test data (BSD-3)")


def load_all(root: str, quick: bool, log: Callable[[str], None] = print) -> list[Dataset]:
    """The synthetic stack plus whichever real datasets exist under ``root``."""
    loaders = [storm, timelapse, lattice] if quick else [storm, ccd_spe, timelapse, lattice, brain]
    out = [synthetic(quick)]
    for load in loaders:
        try:
            ds = load(root)
        except Exception as exc:  # noqa: BLE001 - a broken or unreadable file: skip it, say so
            log(f"skipping {load.__name__}: {type(exc).__name__}: {exc}")
            continue
        if ds is None:
            log(f"skipping {load.__name__}: files not found under {root}")
        else:
            out.append(ds)
    return out
