"""Out-of-core benchmark: a lazily generated 5D uint16 experiment compressed to disk.

The source is a ``(t, c, z, y, x)`` dask array made chunk by chunk (never whole): each chunk
is one of a few noise-free light-sheet photon fields (bigcomp.datasets.light_sheet, cached per
worker), flipped per chunk, passed through a camera (gain 2, offset 100, read noise 1.6 e-)
with fresh noise (normal approximation of shot + read noise, so generation is not the
bottleneck). It is compressed with ``bigcomp.compress`` (q = 1σ) and, through the same dask
graph and cluster, with ``dask.array.to_zarr`` into a zarr v3 array with zarr's default codec
(zstd). Peak RSS is sampled over this process and all its children (the cluster's workers).
Then the time to read a ~1% region of the bigcomp store vs the whole of it.

    python benchmarks/out_of_core.py --size-gb 1            # quick
    python benchmarks/out_of_core.py --size-gb 32           # the real thing (disk: ~10 GB)
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import shutil
import tempfile
import threading
import time

import numpy as np

GAIN, OFFSET, READ_NOISE = 2.0, 100.0, 1.6
CHUNK = (1, 1, 16, 256, 256)


@functools.cache
def _templates(n: int = 6) -> list[np.ndarray]:
    from bigcomp.datasets import light_sheet

    return [light_sheet(CHUNK[2:], seed=k).photons.astype(np.float32) for k in range(n)]


def _chunk(block_id=None) -> np.ndarray:
    """One (1, 1, 16, 256, 256) chunk, a function of its block id only."""
    rng = np.random.default_rng(list(block_id))
    temps = _templates()
    p = temps[int(rng.integers(len(temps)))]
    p = p[:, :: 1 - 2 * int(rng.integers(2)), :: 1 - 2 * int(rng.integers(2))]
    noise = rng.standard_normal(p.shape, dtype=np.float32)
    x = (p + np.sqrt(p + np.float32(READ_NOISE**2)) * noise) * np.float32(GAIN) + np.float32(
        OFFSET)
    return np.clip(np.rint(x), 0, 65535).astype(np.uint16)[None, None]


def _warm() -> None:
    import bigcomp

    cam = bigcomp.CameraModel(GAIN, OFFSET, READ_NOISE)
    bigcomp.decode_chunk(bigcomp.encode_chunk(_chunk((0, 0, 0, 0, 0)), q=1.0, camera=cam))


def source(size_gb: float):
    """Lazy 5D array of about ``size_gb`` GB (t grows; c=2, z=64, y=x=1024)."""
    import dask.array as da

    per_t = 2 * 64 * 1024 * 1024 * 2
    t = max(1, math.ceil(size_gb * 1e9 / per_t))
    shape = (t, 2, 64, 1024, 1024)
    chunks = da.core.normalize_chunks(CHUNK, shape)
    return da.map_blocks(_chunk, chunks=chunks, dtype=np.uint16,
                         meta=np.empty((0,) * 5, np.uint16), name=f"ooc-source-{t}")


class PeakRSS:
    """Sample the summed RSS of this process and its descendants in a thread."""

    def __init__(self, every: float = 0.1):
        import psutil

        self.proc, self.every, self.peak = psutil.Process(), every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        import psutil

        while not self._stop.is_set():
            total = 0
            for p in [self.proc, *self.proc.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a process may just have exited
                    total += p.memory_info().rss
            self.peak = max(self.peak, total)
            time.sleep(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _region(shape, frac: float = 0.01) -> tuple[slice, ...]:
    """Leading slices covering about ``frac`` of the array."""
    out, f = [], frac
    for n in shape:
        keep = n if f >= 1 else max(1, min(n, math.ceil(n * f)))
        f /= keep / n
        out.append(slice(0, keep))
    return tuple(out)


def _du(path: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-gb", type=float, default=32.0, help="array size in GB (1e9 bytes)")
    ap.add_argument("--workers", type=int, default=os.cpu_count(), help="worker processes")
    ap.add_argument("--q", type=float, default=1.0, help="bigcomp step in noise sigma")
    ap.add_argument("--out", default=None, help="scratch directory (default: a temp dir)")
    ap.add_argument("--skip-zarr", action="store_true", help="skip the zarr default-codec run")
    ap.add_argument("--keep", action="store_true", help="keep the written stores")
    args = ap.parse_args()

    import sys

    import dask.array as da
    import zarr
    from distributed import Client, LocalCluster

    import bigcomp

    # use the functions of the importable module, so workers unpickle them by reference (and
    # keep one template cache per process) instead of by value from __main__
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from out_of_core import _warm, source

    out = args.out or tempfile.mkdtemp(prefix="bigcomp-ooc-")
    os.makedirs(out, exist_ok=True)
    x = source(args.size_gb)
    raw = x.nbytes
    print(f"source {x.shape} uint16, {raw / 1e9:.2f} GB, {x.npartitions} chunks of "
          f"{np.prod(CHUNK) * 2 / 2**20:.0f} MiB; {args.workers} worker processes; out {out}")
    rows = []
    with PeakRSS() as rss, LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                        processes=True, dashboard_address=":0",
                                        memory_limit="1.5GiB") as cluster, Client(cluster) as c:
        c.run(_warm)  # template cache and numba kernels (encode and decode) on every worker
        path = os.path.join(out, "bigcomp.zarr")
        t0 = time.perf_counter()
        res = bigcomp.compress(x, path, q=args.q, chunks=CHUNK, scheduler=c, overwrite=True,
                               camera={"gain": GAIN, "offset": OFFSET, "read_noise": READ_NOISE})
        t_bc = time.perf_counter() - t0
        rows.append((f"bigcomp wnl q={args.q:g}", t_bc, res.stored_bytes, rss.peak))
        print(f"bigcomp: {raw / t_bc / 1e6:.0f} MB/s, ratio {res.ratio:.2f}, "
              f"peak RSS {rss.peak / 2**30:.2f} GiB")
        if not args.skip_zarr:
            zpath = os.path.join(out, "zstd.zarr")
            shutil.rmtree(zpath, ignore_errors=True)
            rss.peak = 0
            t0 = time.perf_counter()
            z = zarr.create_array(zpath, shape=x.shape, chunks=CHUNK, dtype="uint16")
            da.store(x, z, lock=False, compute=False).compute(scheduler=c)
            t_z = time.perf_counter() - t0
            rows.append(("zarr default (zstd)", t_z, _du(os.path.join(zpath)), rss.peak))
            print(f"zarr default: {raw / t_z / 1e6:.0f} MB/s, ratio {raw / rows[-1][2]:.2f}")
        arr = bigcomp.open(path)
        region = _region(arr.shape)
        sub = arr[region]
        t0 = time.perf_counter()
        sub.data.sum().compute(scheduler=c)
        t_region = time.perf_counter() - t0
        t0 = time.perf_counter()
        arr.data.sum().compute(scheduler=c)
        t_all = time.perf_counter() - t0
        peak_all = rss.peak
    print()
    print("| pipeline | throughput (MB/s) | time (s) | ratio | peak RSS (GiB) |")
    print("|---|---|---|---|---|")
    for name, t, stored, peak in rows:
        print(f"| {name} | {raw / t / 1e6:.0f} | {t:.1f} | {raw / stored:.2f} | "
              f"{peak / 2**30:.2f} |")
    if len(rows) == 2:
        print(f"\nbigcomp / zarr-default throughput: {rows[1][1] / rows[0][1]:.2f}; "
              f"stored size zarr-default / bigcomp: {rows[1][2] / rows[0][2]:.2f}")
    frac = sub.size / arr.size
    print(f"\nread {frac:.1%} region {sub.shape}: {t_region:.2f} s; whole array: {t_all:.1f} s "
          f"({raw / t_all / 1e6:.0f} MB/s); peak RSS while reading {peak_all / 2**30:.2f} GiB")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
