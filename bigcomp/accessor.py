"""``DataArray.bigcomp``: a thin xarray accessor over :mod:`bigcomp.pipeline`.

Registered by ``import bigcomp`` as soon as xarray is imported, before or after bigcomp
(:mod:`bigcomp._imports`: bigcomp itself does not import xarray); ``import bigcomp.accessor``
registers it explicitly::

    da.bigcomp.compress("out.zarr", q=1.0)       # -> CompressResult
    da.bigcomp.estimate_noise()                  # -> CameraModel
    bigcomp.open("out.zarr").bigcomp.ratio()     # raw bytes / stored bytes
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import xarray as xr

from .errors import BigcompError

if TYPE_CHECKING:
    from .noise import CameraModel
    from .pipeline import CompressResult

__all__ = ["BigcompAccessor"]


@xr.register_dataarray_accessor("bigcomp")
class BigcompAccessor:
    """Compression methods on ``xarray.DataArray`` (``da.bigcomp.<method>``)."""

    def __init__(self, xarray_obj: xr.DataArray) -> None:
        self._obj = xarray_obj

    def compress(self, path: str | os.PathLike, **kwargs) -> CompressResult:
        """Compress the array (dims, coords and attrs kept) into a bigcomp store.

        Parameters
        ----------
        path : str or os.PathLike
            The store to write.
        **kwargs
            Keyword arguments of :func:`bigcomp.compress` (``mode``, ``q``, ``camera``, ...).

        Returns
        -------
        CompressResult
        """
        from .pipeline import compress

        return compress(self._obj, path, **kwargs)

    def estimate_noise(self, **kwargs) -> CameraModel:
        """Estimate the camera model from a sample of chunks (:func:`bigcomp.estimate_noise`)."""
        from .pipeline import estimate_noise

        return estimate_noise(self._obj, **kwargs)

    def _store(self) -> str:
        path = self._obj.encoding.get("bigcomp_store")
        meta = self._obj.attrs.get("bigcomp")
        if not path or not isinstance(meta, dict):
            raise BigcompError("compressed_size()/ratio() need an array opened with "
                               "bigcomp.open(path)")
        if list(self._obj.shape) != list(meta.get("job", meta)["shape"]):
            raise BigcompError("compressed_size()/ratio() describe the whole stored array: call "
                               "them on the array bigcomp.open returned, before selecting")
        return path

    def compressed_size(self) -> int:
        """Stored bytes of the store this array was opened from: its chunk files, or for
        temporal and neural (INR) stores everything they store."""
        from .store import DATA

        path = self._store()
        mode = self._obj.attrs["bigcomp"].get("mode")
        if mode == "temporal":
            from .temporal import temporal_info

            return int(temporal_info(path)["stored_nbytes"])
        if mode == "inr":
            from .inr import inr_info

            return int(inr_info(path)["stored_bytes"])
        total = 0
        array = self._obj.attrs["bigcomp"].get("array", DATA)  # a pyramid level: its own
        for dirpath, _, files in os.walk(os.path.join(path, array, "c")):
            total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files
                         if not f.endswith(".partial"))
        return total

    def ratio(self) -> float:
        """Compression ratio: raw bytes (``nbytes``) over :meth:`compressed_size`."""
        return self._obj.nbytes / max(self.compressed_size(), 1)
