"""Compress a whole (synthetic, lazily generated) light-sheet experiment and read parts back.

    python examples/pipeline_example.py [OUT.zarr]

The same from the shell: ``bigcomp compress stack.tif out.zarr --q 1``, ``bigcomp info
out.zarr``, ``bigcomp decompress out.zarr part.tif --region "0:8,:,100:300"``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import bigcomp
from bigcomp.datasets import lazy_light_sheet


def main(out: Path) -> None:
    # a lazy (z, y, x) volume: nothing is generated until a chunk is needed
    volume = lazy_light_sheet((64, 512, 512), (16, 256, 256), seed=0)
    camera = {"gain": 2.0, "offset": 100.0, "read_noise": 1.6}

    # compress chunk by chunk with dask's default scheduler (scheduler="local" for a cluster)
    result = bigcomp.compress(volume, out, q=1.0, camera=camera, chunks=(16, 256, 256),
                              dims=("z", "y", "x"), overwrite=True)
    print(f"{result.raw_bytes / 1e6:.0f} MB -> {result.stored_bytes / 1e6:.1f} MB "
          f"({result.ratio:.1f}x), every pixel within {result.error_bound:.3f} σ")

    # lazy xarray; a region decodes only the chunks it overlaps
    arr = bigcomp.open(out)
    region = arr.isel(z=slice(10, 20), y=slice(100, 300)).values
    print(arr.dims, arr.shape, "region", region.shape, "ratio", round(arr.bigcomp.ratio(), 2))

    # an existing store of the same job resumes (here: nothing left to do)
    again = bigcomp.compress(volume, out, q=1.0, camera=camera, chunks=(16, 256, 256),
                             dims=("z", "y", "x"))
    assert again.chunks_written == 0
    assert np.array_equal(arr.values[10:20, 100:300], region)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "stack.zarr")
