"""Implicit neural compression (SINCS-style): small per-tile SIRENs for 100–2000× copies.

Lossy and not noise-exact: for archiving and sharing, not for quantitative analysis (use the
within-noise-level modes for that). Training needs the optional extra ``bigcomp[inr]``
(PyTorch); opening a store does not.

- :func:`compress_inr` — array -> zarr v3 group of weights (``target_ratio=`` or
  ``target_psnr=`` choose the network width)
- :func:`open_inr` — lazy dask array, one chunk per tile; a region decodes only its tiles
- :func:`inr_info` — true ratio (raw bytes / every stored byte) and parameters

See ``docs/inr.md`` for the design and measurements.
"""

from __future__ import annotations

from .compress import compress_inr
from .store import inr_info, open_inr

__all__ = ["compress_inr", "inr_info", "open_inr"]
