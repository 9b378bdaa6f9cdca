"""Pyramid cost: extra bytes and extra compress time of the multiscale levels.

A light-sheet-like stack (``bigcomp.datasets.light_sheet``: nuclei, filaments and dim
background through a camera with gain 2, offset 100, read noise 1.6 e-) is compressed with
``bigcomp.compress`` with and without ``pyramid`` (same chunks, same scheduler, runs
alternated, best of ``--repeats``), for three voxel geometries that decide which axes the
levels halve:

* ``unknown``: no physical scale (a bare array): y and x only;
* ``isotropic``: z step = pixel size: z, y and x from level 1;
* ``lattice``: z step 3x the pixel (a deskewed lattice light-sheet stack): y and x first,
  z once the lateral pixel has caught up (level 2 on).

Extra bytes are the levels' chunk files over level 0's; extra time is the pyramid run's over
the run without, in wall-clock seconds and in CPU seconds of the process (all threads: steadier
than wall time on a shared machine). The real lattice crops in ``../shared/data/lattice_5d``
(11 x 13 pixels per plane) fit in one chunk, so they get no levels; they are reported as such.

    python benchmarks/pyramid.py                        # (64, 1024, 1024), 3 repeats
    python benchmarks/pyramid.py --shape 32,512,512 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

CAMERA = {"gain": 2.0, "offset": 100.0, "read_noise": 1.6}
LATTICE = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "lattice_5d"


def sources(shape):
    """(name, source) pairs: the same stack with no, isotropic and lattice-like spacing."""
    import xarray as xr

    from bigcomp.datasets import light_sheet

    data = light_sheet(shape, seed=0, **CAMERA).data

    def spaced(z_step: float):
        coords = {d: xr.Variable(d, s * np.arange(n), {"units": "micrometer"})
                  for d, s, n in zip("zyx", (z_step, 0.1, 0.1), shape, strict=True)}
        return xr.DataArray(data, dims=("z", "y", "x"), coords=coords)

    return [("unknown", data), ("isotropic", spaced(0.1)), ("lattice", spaced(0.3))]


def run(source, out: str, mode: str, pyramid: bool, scheduler: str):
    import bigcomp

    shutil.rmtree(out, ignore_errors=True)
    kw = {"camera": CAMERA, "q": 1.0} if mode == "wnl" else {"mode": "lossless"}
    t0, c0 = time.perf_counter(), time.process_time()
    res = bigcomp.compress(source, out, pyramid=None if pyramid else False, progress=False,
                           scheduler=scheduler, **kw)
    return time.perf_counter() - t0, time.process_time() - c0, res


def measure(name, source, mode: str, repeats: int, scheduler: str, tmp: str) -> dict:
    import bigcomp

    times: dict = {False: [], True: []}
    cpu: dict = {False: [], True: []}
    results = {}
    for _ in range(repeats):
        for pyramid in (False, True):
            seconds, cpu_seconds, res = run(source, os.path.join(tmp, f"{name}-{pyramid}.zarr"),
                                            mode, pyramid, scheduler)
            times[pyramid].append(seconds)
            cpu[pyramid].append(cpu_seconds)
            results[pyramid] = res
    with_levels = results[True]
    meta = bigcomp.open(with_levels.path).attrs["bigcomp"]
    level0 = results[False].stored_bytes
    return {
        "case": name, "mode": mode, "raw_bytes": with_levels.raw_bytes,
        "level0_bytes": level0, "levels": with_levels.pyramid_levels,
        "factors": [lv["factors"] for lv in meta.get("levels", [])],
        "pyramid_bytes": with_levels.pyramid_bytes,
        "extra_bytes": with_levels.pyramid_bytes / level0,
        "seconds_without": min(times[False]), "seconds_with": min(times[True]),
        "extra_time": min(times[True]) / min(times[False]) - 1,
        "cpu_without": min(cpu[False]), "cpu_with": min(cpu[True]),
        "extra_cpu": min(cpu[True]) / min(cpu[False]) - 1,
    }


def lattice_rows(tmp: str) -> list[dict]:
    """The real lattice light-sheet crops: how many levels they get (none: 11 x 13 planes)."""
    import bigcomp

    path = LATTICE / "multich_multi_time.tif"
    if not path.exists():
        return []
    out = os.path.join(tmp, "lattice.zarr")
    res = bigcomp.compress(str(path), out, mode="lossless", progress=False, scheduler="threads")
    return [{"case": "real lattice " + path.name, "shape": list(bigcomp.open(out).shape),
             "levels": res.pyramid_levels, "pyramid_bytes": res.pyramid_bytes}]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--shape", default="64,1024,1024", help="z,y,x of the stack")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scheduler", default="threads")
    ap.add_argument("--modes", default="wnl,lossless")
    ap.add_argument("--json", help="write the rows to this file")
    args = ap.parse_args()
    shape = tuple(int(s) for s in args.shape.split(","))
    rows = []
    with tempfile.TemporaryDirectory(prefix="bigcomp-pyramid-") as tmp:
        run(np.zeros((16, 256, 256), "uint16"), os.path.join(tmp, "warm.zarr"), "wnl", True,
            "synchronous")  # compile the kernels first
        for name, source in sources(shape):
            for mode in args.modes.split(","):
                row = measure(name, source, mode, args.repeats, args.scheduler, tmp)
                rows.append(row)
                print(f"{name:10s} {mode:8s} levels {row['levels']} {row['factors']}: "
                      f"level 0 {row['level0_bytes'] / 1e6:7.2f} MB, pyramid "
                      f"{row['pyramid_bytes'] / 1e6:6.2f} MB (+{100 * row['extra_bytes']:.1f} %)"
                      f"; time {row['seconds_without']:.2f} s -> {row['seconds_with']:.2f} s "
                      f"(+{100 * row['extra_time']:.1f} %), CPU {row['cpu_without']:.2f} s -> "
                      f"{row['cpu_with']:.2f} s (+{100 * row['extra_cpu']:.1f} %)", flush=True)
        for row in lattice_rows(tmp):
            rows.append(row)
            print(f"{row['case']}: shape {row['shape']}, {row['levels']} levels")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
