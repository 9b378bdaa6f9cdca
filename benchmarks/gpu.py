"""GPU benchmark: bigcomp ``fast``/``rice``/``max`` on the device against nvCOMP, into docs/gpu.md.

One command on a machine with a CUDA GPU::

    python benchmarks/gpu.py                 # pytest -m gpu, then the measurements
    python benchmarks/gpu.py --no-tests --size 256 --repeats 5 --out docs/gpu.md

It runs the GPU tests (``pytest -m gpu tests/gpu``), then measures, on synthetic light-sheet
data (``bigcomp.datasets.light_sheet``, uint16, lossless and WNL q=1):

* *device*: GB/s of encode (device array in -> bytes) and decode (bytes -> device array), data
  already on the device;
* *with transfers*: the same from a host numpy array to host bytes and back;
* the ratio, and whether the GPU's bytes equal the CPU's (the ``max`` rows include the level
  model: the lossless stack, and one plane at q = 0 and q = 1);
* nvCOMP (``nvidia-nvcomp-cu12``/``-cu13``, module ``nvidia.nvcomp``): ANS, Bitcomp, LZ4, zstd on
  the same raw bytes, device-resident.

Missing pieces (CuPy, a device, nvCOMP) are reported, not crashed on.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MARK_BEGIN = "<!-- gpu-benchmark:begin -->"
MARK_END = "<!-- gpu-benchmark:end -->"


def _timed(fn, repeats: int, sync) -> float:
    """Best wall time of ``repeats`` runs (after one warm-up), synchronising the device."""
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t)
    return best


def _bigcomp_rows(x_host, cp, repeats, camera):
    from bigcomp import decode_chunk, encode_chunk
    from bigcomp.gpu import decode_chunk_gpu, encode_chunk_gpu
    from bigcomp.kernels._level import level_model_applies

    sync = cp.cuda.Device().synchronize
    cases = [(x_host, q, coder, rps) for q in (0.0, 1.0)
             for coder, rps in (("fast", None), ("rice", None), ("max", None), ("max", 8))]
    # the max coder's level model: the lossless stack above, and a single plane at q = 0 and 1
    plane = np.ascontiguousarray(x_host[x_host.shape[0] // 2])
    cases += [(plane, q, "max", None) for q in (0.0, 1.0)]
    rows = []
    for x, q, coder, rps in cases:
        x_dev = cp.asarray(x)
        nbytes = x.nbytes
        kw = {"q": q, "camera": camera if q else None, "coder": coder}
        if rps:
            kw["rows_per_segment"] = rps
        buf = encode_chunk_gpu(x_dev, **kw)
        cpu_kw = {k: v for k, v in kw.items() if k != "rows_per_segment"}
        same = buf == encode_chunk(x, **cpu_kw) if not rps else "n/a"
        ok = np.array_equal(decode_chunk_gpu(buf).get(), decode_chunk(buf))
        t_enc = _timed(lambda kw=kw, x_dev=x_dev: encode_chunk_gpu(x_dev, **kw), repeats, sync)
        t_dec = _timed(lambda buf=buf: decode_chunk_gpu(buf), repeats, sync)
        t_enc_h = _timed(lambda kw=kw, x=x: encode_chunk_gpu(x, **kw), repeats, sync)
        t_dec_h = _timed(lambda buf=buf: decode_chunk_gpu(buf).get(), repeats, sync)
        name = f"bigcomp {coder}" + (f" ({rps} rows/segment)" if rps else "")
        if x is plane:
            name += f" (one plane {plane.shape[0]}x{plane.shape[1]})"
        shape3 = (1, *x.shape) if x.ndim == 2 else x.shape  # (planes, rows, cols); uint16
        if coder == "max" and not rps and level_model_applies(shape3, 0, 65535, q):
            name += ", level model"
        rows.append(
            {
                "codec": name,
                "q": q,
                "ratio": nbytes / len(buf),
                "enc": nbytes / t_enc / 1e9,
                "dec": nbytes / t_dec / 1e9,
                "enc_h": nbytes / t_enc_h / 1e9,
                "dec_h": nbytes / t_dec_h / 1e9,
                "same": same,
                "ok": ok,
            }
        )
        print(rows[-1], flush=True)
    return rows


def _nvcomp_rows(x_host, cp, repeats):
    try:
        from nvidia import nvcomp
    except ImportError:
        return [], "nvCOMP python package not installed (pip install nvidia-nvcomp-cu12 or -cu13)"
    sync = cp.cuda.Device().synchronize
    raw = cp.asarray(x_host).view(cp.uint8).reshape(-1)
    nbytes = x_host.nbytes
    rows = []
    for algo in ("ANS", "Bitcomp", "LZ4", "Zstd"):
        try:
            codec = nvcomp.Codec(algorithm=algo)
            arr = nvcomp.as_array(raw)
            enc = codec.encode(arr)
            size = getattr(enc, "buffer_size", None) or cp.asarray(enc).nbytes
            dec = codec.decode(enc)
            ok = bool(cp.array_equal(cp.asarray(dec).view(cp.uint8).reshape(-1), raw))
            t_enc = _timed(lambda codec=codec, arr=arr: codec.encode(arr), repeats, sync)
            t_dec = _timed(lambda codec=codec, enc=enc: codec.decode(enc), repeats, sync)
            rows.append(
                {
                    "codec": f"nvCOMP {algo}",
                    "q": 0.0,
                    "ratio": nbytes / size,
                    "enc": nbytes / t_enc / 1e9,
                    "dec": nbytes / t_dec / 1e9,
                    "enc_h": float("nan"),
                    "dec_h": float("nan"),
                    "same": "n/a",
                    "ok": ok,
                }
            )
            print(rows[-1], flush=True)
        except Exception as exc:  # one algorithm failing must not lose the others  # noqa: BLE001
            rows.append({"codec": f"nvCOMP {algo}", "error": f"{type(exc).__name__}: {exc}"})
    return rows, None


def _table(rows) -> str:
    lines = [
        (
            "| codec | q | ratio | encode GB/s (device) | decode GB/s (device) | encode GB/s (host↔device) "
            "| decode GB/s (host↔device) | bytes = CPU's | round trip |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['codec']} | | failed: {r['error']} | | | | | | |")
            continue
        lines.append(
            f"| {r['codec']} | {r['q']:g} | {r['ratio']:.2f} | {r['enc']:.1f} | {r['dec']:.1f} "
            f"| {r['enc_h']:.1f} | {r['dec_h']:.1f} | {r['same']} | {r['ok']} |"
        )
    return "\n".join(lines)


def _write(out: Path, text: str) -> None:
    doc = out.read_text() if out.exists() else f"# GPU\n\n{MARK_BEGIN}\n{MARK_END}\n"
    if MARK_BEGIN not in doc:
        doc += f"\n{MARK_BEGIN}\n{MARK_END}\n"
    head, rest = doc.split(MARK_BEGIN, 1)
    _, tail = rest.split(MARK_END, 1)
    out.write_text(f"{head}{MARK_BEGIN}\n{text}\n{MARK_END}{tail}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512, help="y and x of the stack (default 512)")
    ap.add_argument("--planes", type=int, default=64, help="z of the stack (default 64)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--no-tests", action="store_true", help="skip pytest -m gpu")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "gpu.md")
    args = ap.parse_args(argv)

    status = 0
    if not args.no_tests:
        print("== pytest -m gpu tests/gpu", flush=True)
        status = subprocess.call(
            [sys.executable, "-m", "pytest", "-q", "-m", "gpu", str(ROOT / "tests" / "gpu")],
            cwd=ROOT,
        )
    try:
        import cupy as cp

        n_dev = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001
        print(f"no GPU benchmark: CuPy or a CUDA device is missing ({exc})")
        return status or 1
    if n_dev < 1:
        print("no GPU benchmark: no CUDA device")
        return status or 1

    from bigcomp import CameraModel
    from bigcomp.datasets import light_sheet

    camera = CameraModel(gain=2.0, offset=100.0, read_noise=1.6)
    shape = (args.planes, args.size, args.size)
    x = light_sheet(shape, seed=0).data
    rows = _bigcomp_rows(x, cp, args.repeats, camera)
    nv_rows, nv_note = _nvcomp_rows(x, cp, args.repeats)
    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    text = "\n".join(
        [
            (
                f"Measured {dt.date.today()} on {name} (CuPy {cp.__version__}, Python "
                f"{platform.python_version()}), light_sheet{shape} uint16 ({x.nbytes / 1e6:.0f} MB), "
                f"best of {args.repeats}."
            ),
            "",
            _table(rows + nv_rows),
            "",
            f"nvCOMP: {nv_note}" if nv_note else "",
            f"pytest -m gpu exit status: {status}" if not args.no_tests else "",
        ]
    )
    _write(args.out, text)
    print(f"results written to {args.out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
