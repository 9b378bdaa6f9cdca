"""bigcomp: noise-calibrated compression of microscopy and diffraction experiments.

Importing bigcomp registers its codecs with numcodecs (``bigcomp_lossless``, ``bigcomp_wnl``)
and zarr v3 (``bigcomp.lossless``, ``bigcomp.wnl``).
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import (
    accessor,  # noqa: F401 - imported for its side effect: registers DataArray.bigcomp
    codecs,
    zarr3,
)
from .chunk import decode_chunk, encode_chunk, error_bound
from .errors import (
    BigcompError,
    ChunkMismatchError,
    ChunkTooLargeError,
    CorruptChunkError,
    FormatVersionError,
    IncompleteStoreError,
    ParameterError,
    SourceReadError,
    StoreExistsError,
    StoreWriteError,
    UnsupportedDataError,
)
from .estimate import PoorFitWarning, estimate_camera, photon_transfer
from .gpu import gpu_available
from .limits import max_chunk_bytes, set_max_chunk_bytes
from .noise import CameraModel, quantisation_tables
from .pipeline import compress, estimate_noise, open

try:
    __version__ = version("bigcomp")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "BigcompError",
    "CameraModel",
    "ChunkMismatchError",
    "ChunkTooLargeError",
    "CorruptChunkError",
    "FormatVersionError",
    "IncompleteStoreError",
    "ParameterError",
    "PoorFitWarning",
    "SourceReadError",
    "StoreExistsError",
    "StoreWriteError",
    "UnsupportedDataError",
    "codecs",
    "compress",
    "decode_chunk",
    "encode_chunk",
    "error_bound",
    "estimate_camera",
    "estimate_noise",
    "gpu_available",
    "max_chunk_bytes",
    "open",
    "photon_transfer",
    "quantisation_tables",
    "set_max_chunk_bytes",
    "zarr3",
]
