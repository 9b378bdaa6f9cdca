"""numba compile plumbing shared by the CPU kernels.

``parallel=True`` kernels are unsafe inside a thread pool that uses numba's default ``workqueue``
threading layer (dask's threaded scheduler!): they would run serially at best or abort. Callers
use :func:`use_parallel` to pick the parallel or the serial compilation of a kernel, the way
numbagg does.
"""

from __future__ import annotations

import os
import threading
import warnings

import numba

__all__ = ["cores_free", "jit", "pjit", "use_parallel"]

_CACHE = os.environ.get("BIGCOMP_NUMBA_CACHE", "0") == "1"
if _CACHE:
    warnings.warn(
        "BIGCOMP_NUMBA_CACHE=1: compiled kernels are cached on disk", RuntimeWarning, stacklevel=1
    )


def jit(func):
    """Serial nopython kernel that releases the GIL."""
    return numba.njit(nogil=True, cache=_CACHE)(func)


def pjit(func):
    """Return ``(parallel, serial)`` compilations of a kernel using ``numba.prange``."""
    return (
        numba.njit(nogil=True, parallel=True, cache=_CACHE)(func),
        numba.njit(nogil=True, parallel=False, cache=_CACHE)(func),
    )


def use_parallel() -> bool:
    """Whether a ``parallel=True`` kernel may run on the current thread."""
    if threading.current_thread() is threading.main_thread():
        return True
    return numba.config.THREADING_LAYER != "workqueue" and _threading_layer() != "workqueue"


def _threading_layer() -> str:
    try:
        return numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet: layer not chosen
        return "unknown"


def cores_free() -> bool:
    """Whether another core is idle enough for a parallel kernel to pay (load average below
    the usable cores minus one half).

    numba's parallel regions split the work statically: when another process keeps a core busy,
    a region waits for its share to get a time slice, and on two cores a chunk then encodes up
    to 10x slower than on one thread (measured). The 1-minute load average lags, but sustained
    load is the case that matters. Unknown load counts as free.
    """
    try:
        load = os.getloadavg()[0]
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return True
    return load <= usable - 0.5
