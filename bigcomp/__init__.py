"""bigcomp: noise-calibrated compression of microscopy and diffraction experiments.

``import bigcomp`` is light (no numba, zarr, dask or xarray yet): the public names load their
modules on first use. The codecs need no import at all: numcodecs (``bigcomp_lossless``,
``bigcomp_wnl``) and zarr v3 (``bigcomp.lossless``, ``bigcomp.wnl``) find them through their
entry points, and :mod:`bigcomp.codecs` / :mod:`bigcomp.zarr3` register them when imported. The
``DataArray.bigcomp`` accessor is registered as soon as xarray is imported, before or after
bigcomp. Compiled kernels are cached on disk (see :func:`bigcomp.warmup`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ._imports import register_accessor_with_xarray
from .errors import (
    BigcompError,
    ChunkMismatchError,
    ChunkTooLargeError,
    CorruptChunkError,
    FormatVersionError,
    IncompleteStoreError,
    MissingNoiseMapsError,
    ParameterError,
    SourceReadError,
    StoreExistsError,
    StoreWriteError,
    UnsupportedDataError,
)

if TYPE_CHECKING:  # the lazily loaded names, for type checkers and IDEs
    from . import codecs, zarr3
    from ._warmup import warmup
    from ._warmup_plugin import WarmupPlugin
    from .calibration import CalibrationResult, calibrate
    from .camera_file import load_camera, save_camera
    from .chunk import decode_chunk, encode_chunk, error_bound
    from .estimate import PoorFitWarning, estimate_camera, photon_transfer
    from .gpu import gpu_available
    from .limits import max_chunk_bytes, set_max_chunk_bytes
    from .noise import CameraModel, quantisation_tables
    from .pipeline import compress, estimate_noise, open
    from .pixelcamera import PixelCamera

# public name -> module that defines it, imported on first access (PEP 562)
_LAZY = {
    "CalibrationResult": "calibration",
    "CameraModel": "noise",
    "PixelCamera": "pixelcamera",
    "PoorFitWarning": "estimate",
    "WarmupPlugin": "_warmup_plugin",  # imports distributed
    "calibrate": "calibration",  # not bigcomp/calibrate.py: the module would shadow it
    "compress": "pipeline",
    "decode_chunk": "chunk",
    "encode_chunk": "chunk",
    "error_bound": "chunk",
    "estimate_camera": "estimate",
    "estimate_noise": "pipeline",
    "gpu_available": "gpu",
    "load_camera": "camera_file",
    "max_chunk_bytes": "limits",
    "open": "pipeline",
    "photon_transfer": "estimate",
    "quantisation_tables": "noise",
    "save_camera": "camera_file",
    "set_max_chunk_bytes": "limits",
    "warmup": "_warmup",
}
_SUBMODULES = ("codecs", "zarr3")

__all__ = [
    "BigcompError",
    "CalibrationResult",
    "CameraModel",
    "ChunkMismatchError",
    "ChunkTooLargeError",
    "CorruptChunkError",
    "FormatVersionError",
    "IncompleteStoreError",
    "MissingNoiseMapsError",
    "ParameterError",
    "PixelCamera",
    "PoorFitWarning",
    "SourceReadError",
    "StoreExistsError",
    "StoreWriteError",
    "UnsupportedDataError",
    "WarmupPlugin",
    "calibrate",
    "codecs",
    "compress",
    "decode_chunk",
    "encode_chunk",
    "error_bound",
    "estimate_camera",
    "estimate_noise",
    "gpu_available",
    "load_camera",
    "max_chunk_bytes",
    "open",
    "photon_transfer",
    "quantisation_tables",
    "save_camera",
    "set_max_chunk_bytes",
    "warmup",
    "zarr3",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    elif name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("bigcomp")
        except PackageNotFoundError:  # running from a source tree
            value = "0.0.0+unknown"
    else:
        raise AttributeError(f"module 'bigcomp' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | {"__version__"})


register_accessor_with_xarray()
