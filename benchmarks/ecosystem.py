"""Sharing a store: the napari reader's time to layers, and export vs decompress throughput.

A lazily generated ``(c, z, y, x)`` uint16 light-sheet-like stack (``--size-gb``, default 1.07 GB:
``(2, 64, 2048, 2048)``), with pixel sizes and channel names, is compressed once (wnl q = 1σ,
default chunks, with the pyramid) into ``--dir``. Then, each in a fresh process with the kernel
cache warm (``bigcomp warmup`` ran before) and the page cache warm (the store was read once):

- ``read_bigcomp``: the napari reader returning its layer data tuples (imports excluded; the
  contrast limits decode a few chunks of the smallest level);
- ``bigcomp export`` to zstd and to blosc (every level), ``bigcomp decompress`` to ``.zarr``
  (level 0, the same writer) and to ``.tif`` (OME-TIFF), timed inside the process;
  MB/s = decoded bytes written / seconds.

    python benchmarks/ecosystem.py --size-gb 1 --dir /tmp/eco
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time


def _make(path: str, size_gb: float) -> None:
    import dask.array as da
    import numpy as np
    import xarray as xr

    import bigcomp

    ny = nx = 2048
    nz = max(16, int(round(size_gb * 1e9 / (2 * ny * nx * 2) / 16)) * 16)

    def block(block_info=None):
        loc = block_info[None]["array-location"]
        shape = tuple(b - a for a, b in loc)
        rng = np.random.default_rng(loc[1][0] * 7 + loc[2][0] * 3 + loc[3][0] + loc[0][0])
        yy, xx = np.mgrid[loc[2][0]:loc[2][1], loc[3][0]:loc[3][1]]
        signal = 50 + 400 * (np.sin(yy / 90.0) * np.cos(xx / 70.0)) ** 2
        return (100 + rng.poisson(np.broadcast_to(signal, shape))).astype("uint16")

    data = da.map_blocks(block, chunks=((1, 1), (16,) * (nz // 16), (256,) * 8, (256,) * 8),
                         dtype="uint16", meta=np.empty((0, 0, 0, 0), "uint16"))
    arr = xr.DataArray(data, dims=("c", "z", "y", "x"), name="stack", coords={
        "c": ["H2B", "actin"], "z": ("z", 2.0 * np.arange(nz), {"units": "µm"}),
        "y": ("y", 0.325 * np.arange(ny), {"units": "µm"}),
        "x": ("x", 0.325 * np.arange(nx), {"units": "µm"})})
    t0 = time.perf_counter()
    res = bigcomp.compress(arr, path, q=1.0, camera={"gain": 1.0, "offset": 100.0,
                                                      "read_noise": 1.5},
                           scheduler="threads", progress=False, overwrite=True)
    print(f"made {path}: {arr.nbytes / 1e9:.2f} GB, ratio {res.ratio:.2f}, "
          f"{res.pyramid_levels} pyramid levels, {time.perf_counter() - t0:.0f} s", flush=True)


def _run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=1.07)
    ap.add_argument("--dir", default="/tmp/bigcomp-ecosystem")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    store = os.path.join(args.dir, "stack.zarr")
    if not os.path.exists(os.path.join(store, "zarr.json")):
        _make(store, args.size_gb)
    subprocess.run([sys.executable, "-m", "bigcomp", "warmup"], check=True,
                   capture_output=True)
    results: dict = {}
    reader = f'''
        import json, time
        import dask, numpy, xarray, zarr, bigcomp.napari, bigcomp.pipeline
        t0 = time.perf_counter()
        layers = bigcomp.napari.read_bigcomp({store!r})
        t = time.perf_counter() - t0
        data, kw, _ = layers[0]
        print(json.dumps({{"seconds": t, "levels": len(data) if kw["multiscale"] else 1,
                          "contrast_limits": kw["contrast_limits"]}}))
    '''
    runs = [_run(reader) for _ in range(args.repeat)]
    results["read_bigcomp"] = {"best_s": min(r["seconds"] for r in runs),
                               "runs_s": [round(r["seconds"], 3) for r in runs],
                               "levels": runs[0]["levels"],
                               "contrast_limits": runs[0]["contrast_limits"]}
    print("read_bigcomp", results["read_bigcomp"], flush=True)
    jobs = {"export zstd": ("export", "plain.zarr", "zstd"),
            "export blosc": ("export", "blosc.zarr", "blosc"),
            "decompress .zarr": ("decompress", "level0.zarr", None),
            "decompress .tif": ("decompress", "level0.tif", None)}
    for label, (kind, name, comp) in jobs.items():
        dest = os.path.join(args.dir, name)
        if os.path.isdir(dest):
            shutil.rmtree(dest)
        elif os.path.exists(dest):
            os.unlink(dest)
        if kind == "export":
            call = (f"r = export({store!r}, {dest!r}, compressor={comp!r}, progress=False); "
                    "raw = r['raw_bytes']")
        else:
            call = (f"a = bigcomp.open({store!r}); write_decoded(a, {dest!r}, progress=False); "
                    "raw = a.nbytes")
        r = _run(f'''
            import json, os, time
            import bigcomp
            from bigcomp.export import export
            from bigcomp.io import write_decoded
            t0 = time.perf_counter()
            {call}
            t = time.perf_counter() - t0
            size = (sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk({dest!r})
                        for f in fs) if os.path.isdir({dest!r}) else os.path.getsize({dest!r}))
            print(json.dumps({{"seconds": t, "raw": raw, "out": size}}))
        ''')
        r["MB_per_s"] = r["raw"] / 1e6 / r["seconds"]
        results[label] = r
        print(label, {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()},
              flush=True)
    with open(os.path.join(args.dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
