"""Latent-grid INR model (Cool-Chic style): integer latent pyramids per tile, one decoder.

- :func:`compress_grid` — array -> zarr v3 group (``target_ratio=`` steers the rate)
- stores open with :func:`bigcomp.inr.open_inr` / :func:`bigcomp.open` like the SIREN ones;
  :func:`bigcomp.inr.inr_info` counts every stored byte

Decoding is torch-free: integer entropy decoding (:mod:`.entropy`, bit-exact on every machine)
and a float32 numpy decoder (:mod:`.net`).
"""

from __future__ import annotations

from .compress import compress_grid, default_grid_tile

__all__ = ["compress_grid", "default_grid_tile"]
