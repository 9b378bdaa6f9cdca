"""Research (issue 21): bigcomp's ratios and speeds next to the cached peers.

For every data set: ``max`` and ``rice`` lossless and at q = 1 on whole stacks (one chunk,
as ``benchmarks/peers.py``), and ``max`` at q = 1 with each 2-D plane its own chunk (the peers
code the same planes' quantisation bins, ``lossless_peers.py``). One numba thread, CPU time
(``time.process_time``: other processes on a shared machine distort wall-clock times less);
every decode checked. ``--no-level`` switches the level model off (the coder as before issue
21), so both can be timed in one session. ``--label`` tags the run in ``lossless_baseline.json``.

Usage: ``python benchmarks/research/lossless_baseline.py [--label today] [--sets ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
sys.path.insert(0, HERE)

import numba  # noqa: E402
from lossless_models import LOADERS  # noqa: E402

import bigcomp  # noqa: E402

OUT = os.path.join(HERE, "lossless_baseline.json")
PEERS = os.path.join(HERE, "lossless_peers.json")


def best(fn, repeats=3):
    t = float("inf")
    for _ in range(repeats):
        s = time.process_time()
        fn()
        t = min(t, time.process_time() - s)
    return t


def measure(a, kw, per_plane=False, repeats=3):
    if per_plane:
        planes = a.reshape(-1, a.shape[-2], a.shape[-1])
        enc = lambda: [bigcomp.encode_chunk(p, **kw) for p in planes]  # noqa: E731
        dec = lambda bufs: [bigcomp.decode_chunk(b) for b in bufs]  # noqa: E731
    else:
        enc = lambda: bigcomp.encode_chunk(a, **kw)  # noqa: E731
        dec = bigcomp.decode_chunk
    bufs = enc()
    out = dec(bufs)
    if per_plane:
        out = np.stack(out).reshape(a.shape)
    ref = a
    if kw.get("q"):
        from bigcomp.noise import quantisation_tables
        t = quantisation_tables(kw["camera"], kw["q"], a.dtype.name)
        ref = t.rec[t.bin[a]]
    assert np.array_equal(out, ref), "decode mismatch"
    size = sum(map(len, bufs)) if per_plane else len(bufs)
    te = best(enc, repeats)
    td = best(lambda: dec(bufs), repeats)
    mb = a.nbytes / 1e6
    return {"ratio": a.nbytes / size, "bytes": size, "enc": mb / te, "dec": mb / td}


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--sets", default=",".join(LOADERS))
    ap.add_argument("--label", default="today")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", default="max0,rice0,max1,rice1,max1-2d")
    ap.add_argument("--no-level", action="store_true", help="level model off (as before)")
    args = ap.parse_args(argv)
    if args.no_level:
        from bigcomp.kernels import _level
        _level.MIN_PIXELS = 1 << 62
    numba.set_num_threads(1)
    peers = json.load(open(PEERS)) if os.path.exists(PEERS) else {}
    saved = json.load(open(OUT)) if os.path.exists(OUT) else {}
    run = saved.setdefault(args.label, {})
    rows = args.rows.split(",")
    for s in args.sets.split(","):
        ds = LOADERS[s](os.path.normpath(args.data))
        a, cam = ds.data, ds.camera
        res = run.setdefault(ds.name, {})
        spec = {"max0": ({"q": 0, "coder": "max"}, False),
                "rice0": ({"q": 0, "coder": "rice"}, False),
                "max1": ({"q": 1.0, "camera": cam, "coder": "max"}, False),
                "rice1": ({"q": 1.0, "camera": cam, "coder": "rice"}, False),
                "max1-2d": ({"q": 1.0, "camera": cam, "coder": "max"}, True),
                "max0-2d": ({"q": 0, "coder": "max"}, True)}
        for row in rows:
            kw, pp = spec[row]
            res[row] = measure(a, kw, pp, args.repeats)
        json.dump(saved, open(OUT, "w"), indent=1)
        p = peers.get(ds.name, {})
        nb = a.nbytes

        def pr(key):
            return nb / p[key]["bytes"] if key in p else float("nan")

        print(f"\n## {ds.name} {a.shape}")
        for row in rows:
            r = res[row]
            print(f"  {row:8s} ratio {r['ratio']:6.3f} enc {r['enc']:7.1f} dec {r['dec']:7.1f}")
        print(f"  peers lossless: e9 {pr('lossless/jxl_e9'):.3f} e7 {pr('lossless/jxl_e7'):.3f} "
              f"jls {pr('lossless/jpegls'):.3f}; q1 planes: e9 {pr('q1/jxl_e9'):.3f} "
              f"e7 {pr('q1/jxl_e7'):.3f} jls {pr('q1/jpegls'):.3f}")


if __name__ == "__main__":
    main()
