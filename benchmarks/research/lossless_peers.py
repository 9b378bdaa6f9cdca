"""Research (issue 21): peer sizes for lossless and per-plane q=1 coding, cached as JSON.

For every data set of ``benchmarks/_data.py``: JPEG-XL lossless effort 7 and 9 and JPEG-LS
(CharLS), each 2-D plane its own image, single thread; on the raw values (lossless) and on
bigcomp's quantisation bins at q = 1 (``tables.bin[x]``, the symbols bigcomp's ``qp`` order
predicts). Every decode is checked. Bytes and encode seconds go to ``lossless_peers.json``
beside this file (the model prototypes read them); rerun with ``--force`` to refresh.

Usage: ``python benchmarks/research/lossless_peers.py [--data ../shared/data] [--force]``
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

import imagecodecs  # noqa: E402
from _data import load_all  # noqa: E402

from bigcomp.noise import quantisation_tables  # noqa: E402

CACHE = os.path.join(HERE, "lossless_peers.json")


def planes(a: np.ndarray) -> np.ndarray:
    return a.reshape(-1, a.shape[-2], a.shape[-1]) if a.ndim >= 2 else a.reshape(1, 1, -1)


def jxl(effort: int):
    def enc(p):
        return imagecodecs.jpegxl_encode(p, lossless=True, effort=effort, numthreads=1)
    return enc, lambda b: imagecodecs.jpegxl_decode(b, numthreads=1)


def jls():
    return (lambda p: imagecodecs.jpegls_encode(p)), imagecodecs.jpegls_decode


PEERS = {"jxl_e7": jxl(7), "jxl_e9": jxl(9), "jpegls": jls()}


def measure(stack: np.ndarray, enc, dec) -> tuple[int, float]:
    total, seconds = 0, 0.0
    for p in planes(stack):
        p = np.ascontiguousarray(p)
        t = time.perf_counter()
        b = enc(p)
        seconds += time.perf_counter() - t
        if not np.array_equal(dec(b), p):
            raise AssertionError("peer decode mismatch")
        total += len(b)
    return total, seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--force", action="store_true")
    args = ap.parse_args(argv)
    cache = {} if args.force or not os.path.exists(CACHE) else json.load(open(CACHE))
    for ds in load_all(os.path.normpath(args.data), False, log=lambda s: print(s, file=sys.stderr)):
        a = ds.data
        tables = quantisation_tables(ds.camera, 1.0, a.dtype.name)
        k = tables.bin[a].astype(np.uint16)
        entry = cache.setdefault(ds.name, {"nbytes": int(a.nbytes)})
        for label, stack in (("lossless", a), ("q1", k)):
            for name, (enc, dec) in PEERS.items():
                key = f"{label}/{name}"
                if key in entry:
                    continue
                size, secs = measure(stack, enc, dec)
                entry[key] = {"bytes": size, "enc_s": secs}
                print(f"{ds.name:28s} {key:18s} ratio {a.nbytes / size:6.3f} "
                      f"enc {a.nbytes / 1e6 / secs:8.2f} MB/s", file=sys.stderr)
                json.dump(cache, open(CACHE, "w"), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
