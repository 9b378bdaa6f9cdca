"""Cold start: how long before a fresh process, CLI call or dask worker compresses.

Every figure is wall time of the same work in three situations:

- **fresh process, empty cache**: a new Python process whose kernel cache (``BIGCOMP_CACHE_DIR``)
  is an empty folder, so every kernel it needs compiles;
- **fresh process, warm cache**: a new process whose cache was filled once by
  ``bigcomp warmup`` (timed too: what an empty cache costs in all);
- **warm process**: the same work once more in a process that has done it already.

The work: the first chunk (uint16 light sheet, 16 x 512 x 512, 8.4 MB) encoded and decoded,
lossless and at q = 1, with each coder (time of that call, imports excluded; the process's
whole wall time in brackets); ``bigcomp info``, ``bigcomp decompress --region`` and ``bigcomp
compress`` of a 42 MB TIFF (whole command wall time; the warm process runs the command through
typer's CliRunner a second time); a ``LocalCluster(processes=True)`` of 2 fresh workers
compressing a lazily generated 64 MB array and reading it back (``.mean()``), next to zarr's
default codec on the same cluster; ``import bigcomp`` and ``bigcomp --help``.

Empty-cache runs run once (each compiles for 15-60 s); the others are the best of
``--repeat`` runs (default 3), the machine being shared.

    python benchmarks/coldstart.py                  # all (~40 min on 2 busy cores)
    python benchmarks/coldstart.py --skip-cluster   # without the LocalCluster runs
    python benchmarks/coldstart.py --warm-cache DIR # reuse a cache warmed by an earlier run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

GAIN, OFFSET, READ_NOISE = 2.0, 100.0, 1.6
CHUNK = (16, 512, 512)
TIFF_SHAPE = (80, 512, 512)
CLUSTER_SHAPE, CLUSTER_CHUNKS = (128, 512, 512), (16, 256, 256)  # 64 MiB uint16
CAMERA = ["--gain", str(GAIN), "--offset", str(OFFSET), "--read-noise", str(READ_NOISE)]


def _env(cache: str) -> dict:
    env = dict(os.environ, BIGCOMP_CACHE_DIR=cache, PYTHONWARNINGS="ignore")
    env.pop("BIGCOMP_NUMBA_CACHE", None)
    return env


def _python(code: str, cache: str) -> tuple[dict, float]:
    """Run ``code`` in a fresh interpreter; its last stdout line is JSON. Returns (that, wall)."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=_env(cache),
                         capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1]), wall


def _command(args: list[str], cache: str) -> float:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "bigcomp", *args], env=_env(cache),
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return time.perf_counter() - t


def _empty(work: str) -> str:
    return tempfile.mkdtemp(prefix="cache-", dir=work)


# ----------------------------------------------------------------------------- first chunk
_CHUNK_CODE = """
import json, time
t0 = time.perf_counter()
import numpy as np
import bigcomp
a = np.load({path!r})
cam = bigcomp.CameraModel({gain}, {offset}, {read_noise}) if {q} else None
t1 = time.perf_counter()
bigcomp.decode_chunk(bigcomp.encode_chunk(a, q={q}, camera=cam, coder={coder!r}))
t2 = time.perf_counter()
bigcomp.decode_chunk(bigcomp.encode_chunk(a, q={q}, camera=cam, coder={coder!r}))
t3 = time.perf_counter()
print(json.dumps({{"import": t1 - t0, "first": t2 - t1, "again": t3 - t2}}))
"""


def first_chunk(work: str, warm_cache: str, rows: list, repeat: int) -> None:
    path = os.path.join(work, "chunk.npy")
    for q in (0.0, 1.0):
        for coder in ("fast", "max", "rice"):
            code = _CHUNK_CODE.format(path=path, q=q, coder=coder, gain=GAIN, offset=OFFSET,
                                      read_noise=READ_NOISE)
            cold, cold_wall = _python(code, _empty(work))
            warm = [_python(code, warm_cache) for _ in range(repeat)]
            first = min(r["first"] for r, _ in warm)
            wall = min(w for _, w in warm)
            again = min(r["again"] for r, _ in warm)
            label = f"first chunk {'lossless' if q == 0 else 'q=1'} {coder}"
            rows.append((label, f"{cold['first']:.2f} ({cold_wall:.1f})",
                         f"{first:.2f} ({wall:.1f})", f"{again:.2f}"))
            print(rows[-1], flush=True)


# ------------------------------------------------------------------------------------- CLI
_CLI_WARM = """
import json, sys, time
from typer.testing import CliRunner
from bigcomp.cli import app
runner = CliRunner()
times = []
for _ in range(2):
    t = time.perf_counter()
    r = runner.invoke(app, {args!r})
    assert r.exit_code == 0, r.output
    times.append(time.perf_counter() - t)
print(json.dumps({{"first": times[0], "again": times[1]}}))
"""


def cli(work: str, warm_cache: str, rows: list, repeat: int) -> None:
    tif = os.path.join(work, "stack.tif")
    store = os.path.join(work, "stack.zarr")
    jobs = [
        ("bigcomp info STORE", ["info", store]),
        ("bigcomp decompress STORE --region 0:16,0:256,0:256",
         ["decompress", store, os.path.join(work, "region.tif"), "--region",
          "0:16,0:256,0:256", "--overwrite", "--no-progress"]),
        ("bigcomp compress 42 MB TIFF (--scheduler threads)",
         ["compress", tif, os.path.join(work, "t.zarr"), *CAMERA, "--scheduler", "threads",
          "--overwrite", "--no-progress"]),
        ("bigcomp compress 42 MB TIFF (default: local cluster)",
         ["compress", tif, os.path.join(work, "c.zarr"), *CAMERA, "--overwrite",
          "--no-progress"]),
    ]
    for label, args in jobs:
        cold = _command(args, _empty(work))
        warm = min(_command(args, warm_cache) for _ in range(repeat))
        again = min(_python(_CLI_WARM.format(args=args), warm_cache)[0]["again"]
                    for _ in range(repeat))
        rows.append((label, f"{cold:.1f}", f"{warm:.1f}", f"{again:.2f}"))
        print(rows[-1], flush=True)


# --------------------------------------------------------------------------------- cluster
_CLUSTER_CODE = """
import json, shutil, time
import dask.array as da
import numpy as np
from distributed import Client, LocalCluster
from bigcomp.datasets import light_sheet_chunk

def block(block_id=None):
    return light_sheet_chunk(block_id, {chunks!r}, shape={shape!r}, gain={gain},
                             offset={offset}, read_noise={read_noise})

source = da.map_blocks(block, chunks=tuple((c,) * (s // c) for s, c in zip({shape!r},
                       {chunks!r})), dtype=np.uint16, meta=np.empty((0, 0, 0), np.uint16))
out = {{}}

def run_bigcomp(tag):
    import bigcomp
    path = {work!r} + "/cl-" + tag + ".zarr"
    t = time.perf_counter()
    bigcomp.compress(source, path, q=1.0, camera=dict(gain={gain}, offset={offset},
                     read_noise={read_noise}), chunks={chunks!r}, overwrite=True,
                     progress=False)
    t1 = time.perf_counter()
    float(bigcomp.open(path).mean().compute())
    out[tag] = (t1 - t, time.perf_counter() - t1)

def run_zarr(tag):
    import zarr
    path = {work!r} + "/cl-" + tag + ".zarr"
    shutil.rmtree(path, ignore_errors=True)
    t = time.perf_counter()
    da.to_zarr(source, path, overwrite=True)
    t1 = time.perf_counter()
    float(da.from_zarr(path).mean().compute())
    out[tag] = (t1 - t, time.perf_counter() - t1)

with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                  dashboard_address=":0") as cluster, Client(cluster):
    for tag in {order!r}:
        (run_zarr if tag.startswith("zarr") else run_bigcomp)(tag)
print(json.dumps(out))
"""


def cluster(work: str, warm_cache: str, rows: list, repeat: int) -> None:
    def run(order, cache):
        code = _CLUSTER_CODE.format(chunks=CLUSTER_CHUNKS, shape=CLUSTER_SHAPE, gain=GAIN,
                                    offset=OFFSET, read_noise=READ_NOISE, work=work, order=order)
        return _python(code, cache)[0]

    def fmt(runs, tag):
        """Best compress time and best read time over the runs."""
        return f"{min(r[tag][0] for r in runs):.1f} + {min(r[tag][1] for r in runs):.1f}"

    empty = run(["fresh", "again"], _empty(work))
    warm = [run(["fresh", "again", "zarr-warm"], warm_cache) for _ in range(repeat)]
    zarr = [run(["zarr-fresh"], warm_cache) for _ in range(repeat)]
    rows.append(("LocalCluster 2 workers: bigcomp 64 MB compress + read",
                 fmt([empty], "fresh"), fmt(warm, "fresh"), fmt(warm, "again")))
    rows.append(("same, zarr default codec (zstd)", "-", fmt(zarr, "zarr-fresh"),
                 fmt(warm, "zarr-warm")))
    print(rows[-2], rows[-1], flush=True)


# ------------------------------------------------------------------------------- imports
def imports(work: str, rows: list) -> None:
    def best(argv, n=5):
        times = []
        for _ in range(n):
            t = time.perf_counter()
            subprocess.run(argv, env=_env(_empty(work)), capture_output=True, check=True)
            times.append(time.perf_counter() - t)
        return min(times)

    base = best([sys.executable, "-c", "pass"])
    imp = best([sys.executable, "-c", "import bigcomp"])
    hlp = best([sys.executable, "-m", "bigcomp", "--help"])
    probe = ("import sys, bigcomp; print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'numpy', 'numba', 'zarr', 'xarray', 'pandas', 'scipy', 'dask', 'distributed', "
             "'torch', 'skimage', 'matplotlib'}))")
    heavy = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True).stdout.strip()
    label = f"import bigcomp (process wall; bare python {base:.2f} s; heavy modules: {heavy})"
    rows.append((label, f"{imp:.2f}", f"{imp:.2f}", "-"))
    rows.append(("bigcomp --help (process wall)", f"{hlp:.2f}", f"{hlp:.2f}", "-"))
    print(rows[-2], rows[-1], flush=True)


def _prepare(work: str) -> None:
    import numpy as np
    import tifffile

    import bigcomp
    from bigcomp.datasets import light_sheet

    np.save(os.path.join(work, "chunk.npy"), light_sheet(CHUNK, seed=1).data)
    tif = os.path.join(work, "stack.tif")
    tifffile.imwrite(tif, light_sheet(TIFF_SHAPE, seed=2).data)
    bigcomp.compress(tif, os.path.join(work, "stack.zarr"), q=1.0, progress=False,
                     camera={"gain": GAIN, "offset": OFFSET, "read_noise": READ_NOISE},
                     scheduler="threads")


def _machine() -> str:
    import numba

    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, load average {load:.1f} at the start; "
            f"Python {platform.python_version()}, numba {numba.__version__}, {platform.system()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-cluster", action="store_true")
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--skip-chunks", action="store_true")
    parser.add_argument("--work", help="Working folder (default: a temporary one, removed).")
    parser.add_argument("--warm-cache", help="A kernel cache to use as the warm one (warmed "
                        "again first: quick when it is); default: a new one in the work folder")
    parser.add_argument("--repeat", type=int, default=3, help="Runs of the warm measurements.")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="bigcomp-coldstart-")
    os.makedirs(work, exist_ok=True)
    print(_machine(), flush=True)
    rows: list = []
    try:
        _prepare(work)
        warm_cache = args.warm_cache or os.path.join(work, "warm-cache")
        t = time.perf_counter()
        report = subprocess.run([sys.executable, "-m", "bigcomp", "warmup"], env=_env(warm_cache),
                                capture_output=True, text=True, check=True).stdout.strip()
        rows.append(("bigcomp warmup (every dtype, mode, coder)", f"{time.perf_counter() - t:.0f}",
                     "-", "-"))
        print(report, rows[-1], flush=True)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bigcomp", "warmup"], env=_env(warm_cache),
                       capture_output=True, check=True)
        rows[-1] = (rows[-1][0], rows[-1][1], f"{time.perf_counter() - t:.1f}", "-")
        imports(work, rows)
        if not args.skip_chunks:
            first_chunk(work, warm_cache, rows, args.repeat)
        if not args.skip_cli:
            cli(work, warm_cache, rows, args.repeat)
        if not args.skip_cluster:
            cluster(work, warm_cache, rows, args.repeat)
        check = subprocess.run([sys.executable, "-m", "bigcomp", "warmup"], env=_env(warm_cache),
                               capture_output=True, text=True, check=True).stdout
        if not check.startswith("0 kernels compiled"):
            print("WARNING: the warm cache went cold during the run (bigcomp/kernels edited?): "
                  f"the warm-cache figures are not valid ({check.strip()})", flush=True)
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print("| seconds (wall) | fresh process, empty cache | fresh process, warm cache | "
          "warm process |")
    print("|---|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
