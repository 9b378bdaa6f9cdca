"""On-disk cache of the compiled CPU kernels (on by default).

A fresh process would otherwise spend 15-60 s compiling kernels before its first chunk; with
the cache it loads them in about a second. Where the entries live:

1. ``$BIGCOMP_CACHE_DIR`` if set;
2. else ``$NUMBA_CACHE_DIR/bigcomp`` if numba's own cache directory is set (container images
   often point it at a writable place);
3. else the per-user cache directory (``platformdirs.user_cache_dir("bigcomp")``:
   ``~/.cache/bigcomp`` or ``$XDG_CACHE_HOME/bigcomp`` on Linux, ``~/Library/Caches/bigcomp``
   on macOS, ``%LOCALAPPDATA%\\bigcomp\\Cache`` on Windows),

then a folder per numba version, Python version and hash of the kernel sources
(``bigcomp/kernels/*.py``) and of numba's code-generation settings (``NUMBA_BOUNDSCHECK``,
``NUMBA_OPT``, ...): an upgrade, an edit or another setting never loads stale code, and
environments side by side keep their own entries. ``BIGCOMP_NUMBA_CACHE=0`` turns the cache off. Nothing is
ever written into the installed package.

Each entry is one file per kernel, compilation variant (parallel or serial), argument types
and CPU, holding the source stamp and the full key it was compiled for (checked on load), so
there is no shared index: any number of processes (dask workers starting at once) load and
save at the same time; a file is written under a unique temporary name and renamed into place,
so a reader sees a whole entry or none, and two processes compiling the same kernel write the
same entry. A read-only or missing-and-uncreatable directory still serves the entries it has
(a cache warmed when a container image was built) and saves are skipped: logged once at
DEBUG level on the ``bigcomp`` logger, never an error.

Entries are compiled code loaded with pickle, as numba's own: a cache folder must only be
writable by people trusted to run code in the processes that use it (the per-user default is).

numba's own ``cache=True`` is not used: it keys entries on the function's own file only (a
kernel calling another module's function would load stale code after an edit), gives the
parallel and the serial compilation of one function the same key, and keeps one index per
function that concurrent writers can lose entries of.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import pickle
import sys
import uuid
from pathlib import Path

__all__ = ["KernelCache", "cache_dir", "cache_enabled", "cache_root"]

_log = logging.getLogger("bigcomp")

ENV_DIR = "BIGCOMP_CACHE_DIR"
ENV_SWITCH = "BIGCOMP_NUMBA_CACHE"
_KERNELS = Path(__file__).resolve().parent
_LAYOUT = 1  # of the entries (this module is not in the sources hash): bump when it changes


def cache_enabled() -> bool:
    """Whether kernels are cached on disk (``BIGCOMP_NUMBA_CACHE=0`` turns it off)."""
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def cache_root() -> Path:
    """The bigcomp cache directory (see the module docstring for the order of precedence)."""
    path = os.environ.get(ENV_DIR)
    if path:
        return Path(path).expanduser()
    path = os.environ.get("NUMBA_CACHE_DIR")
    if path:
        return Path(path).expanduser() / "bigcomp"
    try:
        import platformdirs
    except ImportError:  # pragma: no cover - a declared dependency
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "bigcomp"
    return Path(platformdirs.user_cache_dir("bigcomp", appauthor=False))


# numba settings that change the code compiled (NUMBA_BOUNDSCHECK=1 runs must not load, or
# leave behind, kernels compiled without bounds checks)
_CODEGEN_SETTINGS = ("BOUNDSCHECK", "OPT", "DEBUGINFO_DEFAULT", "LOOP_VECTORIZE",
                     "SLP_VECTORIZE", "USING_SVML", "ENABLE_AVX", "FASTMATH")


@functools.cache
def _sources_hash() -> str:
    """Hash of the CPU kernel sources (a kernel's compiled code depends on every kernel it
    calls; the GPU kernels and this module do not change it) and of numba's code-generation
    settings."""
    from numba.core import config

    settings = tuple(str(getattr(config, name, None)) for name in _CODEGEN_SETTINGS)
    h = hashlib.sha256(f"{_LAYOUT} {settings}".encode())
    for path in sorted(_KERNELS.glob("*.py")):
        if not path.name.startswith("_cuda") and path.name != "_cache.py":
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


@functools.cache
def _cache_dir(root: str) -> Path:
    import numba

    tag = f"numba{numba.__version__}-py{sys.version_info[0]}{sys.version_info[1]}"
    return Path(root) / f"{tag}-{_sources_hash()}"


def cache_dir() -> Path:
    """The folder of this installation's entries: ``cache_root() / <versions>-<sources hash>``."""
    return _cache_dir(str(cache_root()))


@functools.cache
def _file_hash(path: str) -> str | None:
    """Hash of a source file; None where it cannot be read (then nothing is cached for it:
    stale entries could not be told apart)."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


_saves_failed = False  # set on the first failed save: the directory is read-only or full


def _save_failed(exc: OSError) -> None:
    global _saves_failed
    if not _saves_failed:
        _log.debug("bigcomp kernel cache %s is not writable (%s): compiled kernels are not "
                   "saved (set %s to a writable folder)", cache_dir(), exc, ENV_DIR)
    _saves_failed = True


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


class KernelCache:
    """numba dispatcher cache (the ``_cache`` a ``Dispatcher`` consults before compiling) that
    stores one file per key in :func:`cache_dir`; ``variant`` tells apart compilations of one
    function with other options (``"p"`` parallel, ``"s"`` serial)."""

    def __init__(self, py_func, variant: str = "") -> None:
        self._py_func = py_func
        self._variant = variant
        self._enabled = True
        code = py_func.__code__
        self._name = _safe(f"{py_func.__module__}.{py_func.__qualname__}-{code.co_firstlineno}"
                           f"{variant}.py{sys.version_info[0]}{sys.version_info[1]}")
        self._code_hash = hashlib.sha256(code.co_code).hexdigest()

    def __repr__(self) -> str:
        return f"<KernelCache {self._name}>"

    # --------------------------------------------------------------- numba's _Cache interface
    @property
    def cache_path(self) -> str:
        return str(cache_dir())

    def enable(self) -> None:
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def flush(self) -> None:
        """Nothing to do: entries are never shared, stale ones are simply not loaded."""

    def load_overload(self, sig, target_context):
        """The compiled result for ``sig`` from disk, or None (absent, stale or unreadable)."""
        if not self._enabled or self._stamp() is None:
            return None
        target_context.refresh()
        try:
            key = self._key(sig, target_context.codegen())
            with open(self._path(key), "rb") as f:
                data = f.read()
        except OSError:
            return None
        try:
            stamp, stored_key, payload = pickle.loads(data)
            if stamp != self._stamp() or stored_key != key:
                return None
            from numba.core.compiler import CompileResult

            return CompileResult._rebuild(target_context, *payload)
        except Exception as exc:  # noqa: BLE001 - a damaged entry: compile instead (and overwrite)
            _log.debug("bigcomp kernel cache: cannot load %s (%r)", self._name, exc)
            return None

    def save_overload(self, sig, cres) -> None:
        """Store ``cres`` for ``sig``: atomically, skipped where the directory is read-only."""
        if not self._enabled or _saves_failed or self._stamp() is None:
            return
        if any(not x.can_cache for x in cres.lifted) or cres.library.has_dynamic_globals:
            _log.debug("bigcomp kernel cache: %s cannot be cached", self._name)
            return
        from numba.core.serialize import dumps

        key = self._key(sig, cres.codegen)
        data = dumps((self._stamp(), key, cres._reduce()))
        path = self._path(key)
        tmp = f"{path}.tmp.{uuid.uuid4().hex[:16]}"
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except OSError as exc:
            _save_failed(exc)
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    # ------------------------------------------------------------------------------ helpers
    def _stamp(self) -> str | None:
        """The kernel sources (folder name) plus the function's own file (``predictors.py``)."""
        return _file_hash(self._py_func.__code__.co_filename)

    def _key(self, sig, codegen) -> tuple:
        closure = self._py_func.__closure__
        if closure is None:
            cvars = ""
        else:
            from numba.core.serialize import dumps

            cvars = hashlib.sha256(dumps(tuple(c.cell_contents for c in closure))).hexdigest()
        return (sig, codegen.magic_tuple(), (self._code_hash, cvars))

    def _path(self, key) -> str:
        digest = hashlib.sha256(repr(key).encode()).hexdigest()[:24]
        return os.path.join(cache_dir(), f"{self._name}.{digest}.nbc")
