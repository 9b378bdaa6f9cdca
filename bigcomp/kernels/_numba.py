"""numba compile plumbing shared by the CPU kernels.

``parallel=True`` kernels are unsafe inside a thread pool that uses numba's default ``workqueue``
threading layer (dask's threaded scheduler!): they would run serially at best or abort. Callers
use :func:`use_parallel` to pick the parallel or the serial compilation of a kernel, the way
numbagg does.

Every kernel is cached on disk (:mod:`bigcomp.kernels._cache`), so only the first process on a
machine compiles it. numba cannot cache a kernel that takes a compiled function as an argument
or that closes over one: such variants are explicit specialisations (:func:`specialise`).
"""

from __future__ import annotations

import os
import threading
import types

import numba

from ._cache import KernelCache, cache_enabled

__all__ = ["cores_free", "dispatchers", "jit", "parallel_twins", "pjit", "readonly", "specialise",
           "use_parallel"]

_DISPATCHERS: list = []  # every kernel compiled through jit/pjit (warmup, cache checks)
_TWINS: list = []  # (parallel, serial) pairs of pjit


def _compile(func, variant: str, **options):
    disp = numba.njit(nogil=True, **options)(func)
    if cache_enabled():
        disp._cache = KernelCache(func, variant)  # what Dispatcher.enable_caching does
    _DISPATCHERS.append(disp)
    return disp


def jit(func):
    """Serial nopython kernel that releases the GIL (cached on disk)."""
    return _compile(func, "")


def pjit(func):
    """Return ``(parallel, serial)`` compilations of a kernel using ``numba.prange``."""
    pair = (_compile(func, "p", parallel=True), _compile(func, "s", parallel=False))
    _TWINS.append(pair)
    return pair


def specialise(func, name: str, **constants):
    """A copy of the plain function ``func`` named ``name`` whose globals ``constants`` take the
    given values. numba freezes globals at compile time, so each copy compiles to its own
    kernel, cacheable where passing the same values as arguments (compiled functions) is not.
    Call it after everything ``func`` refers to is defined (the globals are a snapshot).
    """
    namespace = dict(func.__globals__, **constants)
    copy = types.FunctionType(func.__code__, namespace, name, func.__defaults__, func.__closure__)
    copy.__qualname__ = name
    copy.__module__ = func.__module__
    copy.__doc__ = func.__doc__
    return copy


def readonly(a):
    """``a`` or a read-only view of it. numba compiles a kernel once per argument type, and a
    read-only array (a chunk from ``bytes``, a read-only memmap) is another type than a
    writable one: the kernels' wrappers pass arrays they only read as read-only views, so one
    compilation serves both (half the compile time and cache entries)."""
    if not a.flags.writeable:
        return a
    view = a.view()
    view.flags.writeable = False
    return view


def dispatchers() -> list:
    """Every CPU kernel dispatcher of bigcomp (defined by the modules imported so far)."""
    return list(_DISPATCHERS)


def parallel_twins() -> list:
    """The ``(parallel, serial)`` dispatcher pairs of :func:`pjit`."""
    return list(_TWINS)


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
