"""A dask ``WorkerPlugin`` that warms up bigcomp's kernels on every worker before it takes
tasks (imports ``distributed``: reached through ``bigcomp.WarmupPlugin`` only)."""

from __future__ import annotations

import asyncio
import logging

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["WarmupPlugin"]

_log = logging.getLogger("bigcomp")


class WarmupPlugin(WorkerPlugin):
    """Load (or compile, on an empty cache) bigcomp's kernels on each worker of a cluster,
    present and future, with :func:`bigcomp.warmup`.

    Kernels are cached on disk, so a fresh worker process loads them in about a second instead
    of compiling them for 15-60 s; this plugin does that loading before the worker's first task
    instead of during it, and on a new machine of an adaptive cluster compiles them once.

    Parameters
    ----------
    dtypes, coders : iterable of str, optional
        Passed to :func:`bigcomp.warmup`: restrict to what the cluster will compress.

    Examples
    --------
    >>> client.register_plugin(bigcomp.WarmupPlugin(dtypes=["uint16"]))  # doctest: +SKIP
    """

    idempotent = True
    name = "bigcomp-warmup"

    def __init__(self, dtypes=None, coders=None) -> None:
        self.kwargs = {k: tuple(v) for k, v in (("dtypes", dtypes), ("coders", coders))
                       if v is not None}

    async def setup(self, worker) -> None:
        from ._warmup import warmup

        # on a thread: the worker's event loop keeps answering heartbeats meanwhile
        report = await asyncio.to_thread(warmup, **self.kwargs)
        _log.info("bigcomp warmup on %s: %s", getattr(worker, "address", "worker"), report)
