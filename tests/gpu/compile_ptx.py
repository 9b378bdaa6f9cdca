"""Compile every bigcomp CUDA kernel to PTX with the real NVVM compiler (no GPU needed).

The simulator runs kernels as Python, so it cannot catch what only the CUDA compiler sees
(numba typing on the CUDA target, unsupported functions, float64 sneaking into integer code).
This script compiles each kernel for sm_90 (H100/H200) with the signatures bigcomp launches it
with, and checks that the integer kernels contain no double-precision arithmetic.

Needs numba-cuda and libnvvm + libnvrtc (e.g. ``pip download nvidia-nvvm nvidia-cuda-nvrtc``,
unpack, and point ``CUDA_HOME``/``LD_LIBRARY_PATH`` at ``nvidia/cu13``). Exit status 0 when all
compile; prints one line per kernel. Run: ``python tests/gpu/compile_ptx.py``.
"""

from __future__ import annotations

import re
import sys


def _kernels():
    from numba import cuda, types

    from bigcomp.kernels import _cuda_common as C
    from bigcomp.kernels import _cuda_fast as F
    from bigcomp.kernels import _cuda_level as LV
    from bigcomp.kernels import _cuda_lookup as L
    from bigcomp.kernels import _cuda_max as M
    from bigcomp.kernels import _cuda_predict as P
    from bigcomp.kernels import _cuda_rice as R

    i64, u8, u16, u32, i32, f32, f64 = (
        types.int64,
        types.uint8,
        types.uint16,
        types.uint32,
        types.int32,
        types.float32,
        types.float64,
    )

    def a1(t):
        return types.Array(t, 1, "C")

    def a2(t):
        return types.Array(t, 2, "C")

    def a3(t):
        return types.Array(t, 3, "C")

    V = types.void
    KERNELS = {
        "fill_u32": (C._fill, V(a1(u32), u32)),
        "scan_tiles": (C._scan_tiles, V(a1(i64), a1(i64), a1(i64), i64)),
        "scan_tiles_u8": (C._scan_tiles, V(a1(u8), a1(i64), a1(i64), i64)),
        "add_tile_offsets": (C._add_tile_offsets, V(a1(i64), a1(i64), i64)),
        "lookup_u16": (L._lookup, V(a1(u16), a1(u32), a1(u16))),
        "lookup_rec_u16": (L._lookup, V(a1(u16), a1(u16), a1(u16))),
        "lookup_u8": (L._lookup, V(a1(u8), a1(u32), a1(u8))),
        "gather_i32": (L._lookup, V(a1(i64), a1(i32), a1(i32))),
        "vst_forward": (
            L._forward,
            V(a1(f32), f64, f64, f64, f64, f64, f64, f64, a1(i32), a1(i64)),
        ),
        "vst_inverse": (L._inverse, V(a1(i32), f64, f64, f64, f64, f64, f64, a1(f32))),
        "predict_encode_u16": (
            P._encode,
            V(a3(u16), i64, a2(i64), a1(i64), a1(i64), i64, i64, a1(u32)),
        ),
        "predict_encode_i32": (
            P._encode,
            V(a3(i32), i64, a2(i64), a1(i64), a1(i64), i64, i64, a1(u32)),
        ),
        "predict_decode_u16": (
            P._decode,
            V(a1(u32), i64, a2(i64), a1(i64), a1(i64), i64, i64, i64, a3(u16), a1(i64)),
        ),
        "predict_decode_i32": (
            P._decode,
            V(a1(u32), i64, a2(i64), a1(i64), a1(i64), i64, i64, i64, a3(i32), a1(i64)),
        ),
        "fast_widths": (F._widths, V(a1(u32), a1(u8), a1(i64))),
        "fast_pack": (F._pack, V(a1(u32), a1(i64), a1(i64), a1(u32))),
        "fast_widths_in": (F._widths_in, V(a1(u8), a1(i64), a1(i64))),
        "fast_unpack": (F._unpack, V(a1(u32), a1(i64), a1(i64), a1(u32), a1(i64))),
        "rice_encode_groups": (R._encode_groups, V(a1(u32), i64, i64, a1(u32), a1(i64))),
        "rice_compact": (R._compact, V(a1(u32), i64, a1(i64), a1(u32))),
        "rice_decode_groups": (
            R._decode_groups,
            V(a1(u32), a1(i64), a1(i64), i64, a1(u32), a1(i64)),
        ),
        "max_any_diff": (M._any_diff, V(a1(u32), a1(i64))),
        "max_tokens": (M._tokens, V(a1(u32), i64, i64, a1(i64), a1(u16), a1(i64), a1(i64))),
        "max_seg_counts": (M._seg_counts, V(a1(i64), i64, i64, i64, i64, a1(i64))),
        "max_scatter_extra": (
            M._scatter_extra,
            V(a1(u32), a1(i64), a1(i64), i64, a1(i64), a1(u32)),
        ),
        "max_rans_lanes": (
            M._rans_lanes,
            V(a1(u16), i64, *(a1(types.uint64),) * 5, a1(i64), a1(u16), a1(i64)),
        ),
        "max_place_words": (M._place_words, V(a1(i64), a1(u16), a1(i64), i64, a1(i64), a1(u16))),
        "max_place_states": (M._place_states, V(a1(i64), a1(i64), a1(u16))),
        "max_decode_segments": (
            M._decode_segments,
            V(
                a1(u16),
                a1(i64),
                a1(i64),
                a1(u32),
                a1(i64),
                a1(i64),
                a1(u8),
                a1(i64),
                a1(i64),
                a1(i64),
                i64,
                i64,
                a1(u8),
                a1(u32),
                a1(i64),
            ),
        ),
        "level_gather_rows_u16": (LV._gather_rows, V(a1(u16), a1(i64), i64, a1(u16))),
        "level_gather_rows_u8": (LV._gather_rows, V(a1(u8), a1(i64), i64, a1(u8))),
        **{
            f"level_keys_{name}": (
                LV._level_keys,
                V(a1(t), *(i64,) * 6, a1(i64), a2(i64), a1(i64), a2(i64), a1(u16), a1(u32),
                  a1(u16), a1(u8), a1(i64)),
            )
            for name, t in (("u16", u16), ("u8", u8))
        },
        "level_stream_counts": (LV._stream_counts, V(a1(i64), a1(i64), i64, i64, a1(i64))),
        "level_scatter_extra": (
            LV._scatter_extra,
            V(a1(u32), a1(u8), a1(i64), i64, a1(i64), a1(i64), a1(i64), a1(u32)),
        ),
        "level_rans_streams": (
            LV._rans_streams,
            V(a1(u16), a1(i64), *(a1(types.uint64),) * 5, a1(i32), a1(u16), a1(i64), a1(i32)),
        ),
        "level_place_words": (
            LV._place_words,
            V(a1(i32), a1(u16), i64, a1(i64), a1(i32), a1(i64), a1(u16)),
        ),
        "level_place_states": (LV._place_states, V(a1(i64), a1(i64), a1(u16))),
    }
    return cuda, C, KERNELS


FLOAT_OK = {"vst_forward", "vst_inverse"}
_F64 = re.compile(r"\b(add|sub|mul|div|fma|cvt)[.\w]*\.f64\b")


def main() -> int:
    cuda, C, KERNELS = _kernels()
    if cuda is None or C.SIM:
        print("needs numba-cuda without NUMBA_ENABLE_CUDASIM")
        return 2
    # device functions are compiled for "the current device": pretend it is an sm_90 one
    from numba.cuda import dispatcher

    class _FakeDevice:
        compute_capability = (9, 0)

    dispatcher.get_current_device = lambda: _FakeDevice()
    failed = 0
    for name, (kernel, sig) in KERNELS.items():
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
        except Exception as exc:  # noqa: BLE001 - report every kernel, not just the first failure
            print(f"FAIL {name}: {type(exc).__name__}: {str(exc)[:2000]}")
            failed += 1
            continue
        f64 = len(_F64.findall(ptx))
        if f64 and name not in FLOAT_OK:
            print(f"FAIL {name}: {f64} double-precision instructions in an integer kernel")
            failed += 1
            continue
        print(f"ok   {name}: {ptx.count(chr(10))} PTX lines, {f64} f64 ops")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
