"""numba.cuda plumbing shared by the GPU kernels: device arrays, launch sizes, scans, fills.

The GPU kernels are written with ``numba.cuda`` so that the same source runs on a real GPU and,
with ``NUMBA_ENABLE_CUDASIM=1`` set before numba is imported, on the CPU simulator (CI has no
GPU). Device arrays are CuPy arrays when CuPy is usable (its memory pool makes the many small
temporaries cheap) and numba device arrays otherwise (the simulator, or a GPU without CuPy);
kernels accept both through ``__cuda_array_interface__``.

Importing this module never fails: without numba-cuda, :data:`cuda` is ``None`` and
:func:`require_cuda` raises a helpful ``ImportError`` at use.
"""

from __future__ import annotations

import functools
import math
import sys
import threading

import numpy as np

try:  # numba-cuda (or numba's built-in CUDA target on older numba)
    from numba import cuda
except ImportError:  # pragma: no cover - depends on the environment
    cuda = None

__all__ = [
    "SIM",
    "cuda",
    "device_function",
    "device_kernel",
    "empty",
    "exclusive_scan",
    "is_device_array",
    "launch",
    "require_cuda",
    "to_device",
    "to_host",
    "zeros",
]


def _simulator_enabled() -> bool:
    if cuda is None:
        return False
    try:
        from numba.cuda.core import config
    except ImportError:  # numba's built-in CUDA target
        from numba.core import config
    return bool(getattr(config, "ENABLE_CUDASIM", False))


SIM = _simulator_enabled()  # fixed when numba.cuda is first imported

# Byte the simulator fills fresh device temporaries and shared arrays with (a real GPU leaves
# them uninitialised): a kernel reading memory nobody wrote then fails the same way every run
# instead of depending on what the allocator happened to hand out.
SIM_POISON = 0xA5


def _patch_simulator() -> None:
    """Make the simulator's ``cuda.shared.array`` thread-safe (and poisoned); idempotent.

    numba-cuda's simulator (0.30) runs every CUDA thread of a block as a Python thread, and its
    ``FakeCUDAShared.array`` looks the block's array up by call site with an unlocked
    check-then-insert: two threads arriving together can both miss and allocate, so one of them
    works on a private copy (its writes and atomics are lost to the others, and it reads
    uninitialised memory). Rare on an idle machine, frequent enough under load to corrupt the
    ``max`` histogram or a scan tile. This replacement does the lookup under a lock (the key is
    the caller's file and line, as upstream, taken from the frame instead of a full
    ``traceback.extract_stack``, which is also much faster) and fills new arrays with
    :data:`SIM_POISON`. Nothing changes on a real GPU.
    """
    from numba.cuda.simulator import kernelapi

    cls = kernelapi.FakeCUDAShared
    if getattr(cls.array, "_bigcomp_thread_safe", False):
        return
    upstream = cls.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if alignment is not None or shape == 0:  # errors, dynamic shared memory: upstream's
            return upstream(self, shape, dtype, alignment)
        if isinstance(dtype, kernelapi.types.Type):  # numba type (e.g. numba.int32)
            dtype = kernelapi.numpy_support.as_dtype(dtype)
        frame = sys._getframe(1)
        caller = (frame.f_code.co_filename, frame.f_lineno)
        with lock:
            res = self._allocations.get(caller)
            if res is None:
                res = np.empty(shape, dtype)
                res.view(np.uint8).fill(SIM_POISON)
                self._allocations[caller] = res
        return res

    array._bigcomp_thread_safe = True
    array.__doc__ = upstream.__doc__
    cls.array = array


if SIM:
    _patch_simulator()

# Launch geometry. The simulator runs every thread as a Python thread: keep blocks tiny there.
TPB = 8 if SIM else 256  # threads per block of element-wise kernels
MAX_BLOCKS = 4 if SIM else 65535  # grid cap: element-wise kernels use grid-stride loops
SCAN_TPB = 8 if SIM else 256  # threads per block of the scan
SCAN_ITEMS = 64 if SIM else 8  # consecutive items per scan thread
SCAN_TILE = SCAN_TPB * SCAN_ITEMS


class _Missing:
    """Stand-in for a kernel when numba-cuda is not installed."""

    def __init__(self, func):
        self.__wrapped__ = func
        self.__doc__ = func.__doc__

    def __getitem__(self, config):
        require_cuda()

    def __call__(self, *args, **kwargs):
        require_cuda()


def device_kernel(func):
    """``@cuda.jit`` when numba-cuda is importable; a stub raising ImportError otherwise."""
    return cuda.jit(func) if cuda is not None else _Missing(func)


def device_function(func):
    """``@cuda.jit(device=True)`` when numba-cuda is importable; the plain function otherwise."""
    return cuda.jit(device=True)(func) if cuda is not None else func


def require_cuda() -> None:
    """Raise a helpful error when the GPU kernels cannot run here."""
    if cuda is None:
        raise ImportError(
            "bigcomp's GPU path needs numba-cuda: pip install numba-cuda "
            "(and cupy-cuda12x or cupy-cuda13x for CuPy arrays); "
            "or compress on the CPU with bigcomp.encode_chunk"
        )
    if not SIM and not cuda.is_available():
        raise RuntimeError(
            "no CUDA device is available: compress on the CPU with bigcomp.encode_chunk "
            "(the bitstream is identical), or set NUMBA_ENABLE_CUDASIM=1 before importing "
            "numba to run the GPU kernels on the CPU simulator (slow; for tests)"
        )


# ----------------------------------------------------------------------------- device arrays
@functools.cache
def _cupy():
    """The cupy module when it is usable for device arrays here, else None."""
    if SIM:
        return None
    try:
        import cupy
    except ImportError:
        return None
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception:  # no driver  # noqa: BLE001
        return None
    return cupy


def is_device_array(x) -> bool:
    """Whether ``x`` lives on the device (CuPy, numba device array, anything with the CAI)."""
    if hasattr(x, "__cuda_array_interface__"):
        return True
    # simulator device arrays have no CAI
    return SIM and hasattr(x, "copy_to_host") and not isinstance(x, np.ndarray)


def empty(shape, dtype):
    """Uninitialised device array (poisoned with :data:`SIM_POISON` on the simulator)."""
    cp = _cupy()
    if cp is not None:
        return cp.empty(shape, dtype)
    if SIM:
        host = np.empty(shape, dtype)
        host.view(np.uint8).fill(SIM_POISON)
        return cuda.to_device(host)
    return cuda.device_array(shape, dtype)


def zeros(shape, dtype):
    cp = _cupy()
    if cp is not None:
        return cp.zeros(shape, dtype)
    if SIM:
        return cuda.to_device(np.zeros(shape, dtype))
    out = cuda.device_array(shape, dtype)
    flat = out.reshape(-1) if out.ndim != 1 else out
    if flat.size:
        launch(_fill, flat.size)(flat, 0)
    return out


def to_device(host: np.ndarray):
    cp = _cupy()
    host = np.ascontiguousarray(host)
    if cp is not None:
        return cp.asarray(host)
    return cuda.to_device(host)


def to_host(dev) -> np.ndarray:
    """Copy a device array to a numpy array (any device array type)."""
    if isinstance(dev, np.ndarray):
        return dev
    if hasattr(dev, "copy_to_host"):
        return dev.copy_to_host()
    if hasattr(dev, "get"):  # cupy
        return dev.get()
    return cuda.as_cuda_array(dev).copy_to_host()


def as_kernel_array(x):
    """A view kernels accept: numba device arrays and CuPy arrays are passed as they are."""
    return x


def launch(kernel, n: int, tpb: int = TPB):
    """``kernel[blocks, tpb]`` for a grid-stride loop over ``n`` items."""
    blocks = max(1, min(MAX_BLOCKS, -(-int(n) // tpb)))
    return kernel[blocks, tpb]


# ------------------------------------------------------------------------------ small kernels
@device_kernel
def _fill(out, value):
    start = cuda.grid(1)
    step = cuda.gridsize(1)
    for i in range(start, out.size, step):
        out[i] = value


def fill(out, value) -> None:
    """Set every element of a 1-D device array."""
    if out.size:
        launch(_fill, out.size)(out, value)


@device_kernel
def _scan_tiles(src, dst, sums, n):
    """Exclusive scan of each tile of SCAN_TILE items; tile totals into ``sums``."""
    sh = cuda.shared.array(SCAN_TPB, np.int64)
    tid = cuda.threadIdx.x
    base = cuda.blockIdx.x * SCAN_TILE + tid * SCAN_ITEMS
    local = np.int64(0)
    for j in range(SCAN_ITEMS):
        if base + j < n:
            local += np.int64(src[base + j])
    sh[tid] = local
    cuda.syncthreads()
    off = 1
    while off < SCAN_TPB:  # Hillis-Steele inclusive scan of the thread totals
        t = sh[tid - off] if tid >= off else np.int64(0)
        cuda.syncthreads()
        sh[tid] += t
        cuda.syncthreads()
        off *= 2
    run = sh[tid] - local
    for j in range(SCAN_ITEMS):
        if base + j < n:
            v = np.int64(src[base + j])
            dst[base + j] = run
            run += v
    if tid == SCAN_TPB - 1:
        sums[cuda.blockIdx.x] = sh[tid]


@device_kernel
def _add_tile_offsets(dst, offs, n):
    i = cuda.blockIdx.x * SCAN_TILE + cuda.threadIdx.x
    add = offs[cuda.blockIdx.x]
    for _j in range(SCAN_ITEMS):
        if i < n:
            dst[i] += add
        i += SCAN_TPB


def exclusive_scan(src, dst=None):
    """Exclusive prefix sum (int64) of a 1-D device array; returns ``dst``.

    ``dst[i] = src[0] + ... + src[i-1]``. Callers that need the total scan an array with one
    extra trailing zero and read ``dst[-1]``.
    """
    n = int(src.size)
    if dst is None:
        dst = empty(n, np.int64)
    if n == 0:
        return dst
    tiles = -(-n // SCAN_TILE)
    sums = empty(tiles, np.int64)
    _scan_tiles[tiles, SCAN_TPB](src, dst, sums, n)
    if tiles > 1:
        offs = exclusive_scan(sums)
        _add_tile_offsets[tiles, SCAN_TPB](dst, offs, n)
    return dst


def scalar(dev, index: int) -> int:
    """One element of a device array, on the host (a synchronising copy)."""
    return int(to_host(dev[index : index + 1])[0])


def grid_blocks(n: int, tpb: int = TPB) -> int:
    return max(1, min(MAX_BLOCKS, math.ceil(n / tpb)))
