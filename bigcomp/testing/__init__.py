"""Checkers shared by bigcomp's tests (and usable by downstream codecs' tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..noise import CameraModel

__all__ = ["check_backwards_compatibility", "check_within_bound", "stabilised_error"]


def stabilised_error(original, decoded, camera: CameraModel) -> float:
    """Largest ``|VST(decoded) - VST(original)|`` in noise-σ units."""
    a = camera.forward(np.asarray(original))
    b = camera.forward(np.asarray(decoded))
    return float(np.abs(a - b).max(initial=0.0))


def check_within_bound(original, decoded, camera: CameraModel, bound: float) -> None:
    """Assert same shape/dtype and every pixel within ``bound`` σ."""
    original, decoded = np.asarray(original), np.asarray(decoded)
    assert decoded.shape == original.shape, (decoded.shape, original.shape)
    assert decoded.dtype == original.dtype, (decoded.dtype, original.dtype)
    err = stabilised_error(original, decoded, camera)
    assert err <= bound, f"max error {err} σ exceeds the bound {bound} σ"


def check_backwards_compatibility(folder: Path, codec, arrays: dict[str, np.ndarray]) -> None:
    """Decode checked-in chunks and compare with their checked-in decoded arrays.

    ``folder`` holds, per name, ``<name>.bgc`` (an encoded chunk) and ``<name>.out.npy`` (what it
    decoded to when it was written). Missing pairs are created from ``arrays`` with ``codec``;
    existing ones must decode identically forever, so the on-disk format never changes silently.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        enc, out = folder / f"{name}.bgc", folder / f"{name}.out.npy"
        if not enc.exists():
            encoded = codec.encode(arr)
            enc.write_bytes(encoded)
            np.save(out, codec.decode(encoded))
        expected = np.load(out)
        decoded = codec.decode(enc.read_bytes())
        assert decoded.dtype == expected.dtype
        np.testing.assert_array_equal(decoded.reshape(expected.shape), expected)
