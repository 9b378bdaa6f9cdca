"""Register the ``DataArray.bigcomp`` accessor without importing xarray (and pandas) at
``import bigcomp``.

xarray costs about a second to import, so ``import bigcomp`` does not import it. Instead:

- xarray already imported: the accessor is registered at once;
- otherwise a one-shot import hook (a ``sys.meta_path`` finder) wraps xarray's loader and
  registers the accessor right after xarray has been executed, whoever imports it (the user,
  :func:`bigcomp.open`, napari). xarray keeps its own loader: the wrapper hands it back before
  xarray runs.

So ``da.bigcomp`` works whichever of ``import bigcomp`` and ``import xarray`` comes first.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading
import warnings

__all__ = ["register_accessor_with_xarray"]

_lock = threading.Lock()


def _register() -> None:
    try:
        importlib.import_module("bigcomp.accessor")
    except Exception as exc:  # noqa: BLE001 - never break the import of xarray
        warnings.warn(f"bigcomp: could not register the xarray accessor: {exc!r}",
                      RuntimeWarning, stacklevel=2)


class _RegisteringLoader(importlib.abc.Loader):
    """Runs xarray's own loader, then registers the accessor."""

    def __init__(self, loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _register()

    def __getattr__(self, name):  # is_package, get_resource_reader, ... of the real loader
        return getattr(self._loader, name)


class _XarrayFinder(importlib.abc.MetaPathFinder):
    """Finds nothing itself: wraps the loader of the spec the other finders give ``xarray``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "xarray":
            return None
        with _lock:
            if self not in sys.meta_path:
                return None
            sys.meta_path.remove(self)  # one shot (and no recursion below)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _RegisteringLoader(spec.loader)
        return spec


def register_accessor_with_xarray() -> None:
    """Register the accessor now if xarray is imported, else when it is."""
    xr = sys.modules.get("xarray")
    if xr is not None and hasattr(xr, "register_dataarray_accessor"):
        _register()
        return
    with _lock:
        if not any(isinstance(f, _XarrayFinder) for f in sys.meta_path):
            sys.meta_path.insert(0, _XarrayFinder())
