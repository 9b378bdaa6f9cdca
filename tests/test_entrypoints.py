"""Codecs resolve by name in a fresh interpreter that never imported bigcomp."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_numcodecs_entry_point():
    out = _run(
        """
        import sys
        import numcodecs
        codec = numcodecs.get_codec({"id": "bigcomp_wnl", "q": 1.0, "gain": 2.0})
        print(type(codec).__module__, "bigcomp" in sys.modules)
        """
    )
    assert out == "bigcomp.codecs.wnl True"


def test_zarr_entry_point(tmp_path):
    import numpy as np
    import zarr

    import bigcomp

    data = np.arange(600, dtype="uint16").reshape(20, 30)
    arr = zarr.create_array(
        tmp_path / "e.zarr", shape=data.shape, chunks=(10, 30), dtype=data.dtype,
        serializer=bigcomp.zarr3.Lossless(), compressors=None,
    )
    arr[:] = data
    out = _run(
        f"""
        import sys
        import zarr
        a = zarr.open_array({str(tmp_path / "e.zarr")!r}, mode="r")
        print(int(a[:].sum()), "bigcomp" in sys.modules)
        """
    )
    assert out == f"{int(data.sum())} True"
