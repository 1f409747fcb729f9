"""One import hook that arms pending probes when their module is imported.

A meta path finder placed first on ``sys.meta_path`` answers only for the module names the
engine waits for: it asks the other finders for the spec and wraps the loader so that, once the
module has executed, the engine's callback runs. ``sys.modules`` is never replaced, and the
hook is removed when no probe is pending.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import logging
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

__all__ = ["ImportWatcher"]

log = logging.getLogger("sensor.inject")
_local = threading.local()


class _WatchingLoader(importlib.abc.Loader):
    """Delegates to the real loader and calls back after the module has executed."""

    def __init__(self, loader: Any, callback: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._callback = callback

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        # The module (and anyone after it) sees the real loader, never this wrapper.
        spec = vars(module).get("__spec__")
        if spec is not None:
            spec.loader = self._loader
        module.__loader__ = self._loader
        self._loader.exec_module(module)
        try:
            self._callback(module)
        except Exception:
            log.exception("sensor: arming probes after importing %s failed", module.__name__)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class ImportWatcher(importlib.abc.MetaPathFinder):
    """Calls ``callback(module)`` after a module for which ``wants(name)`` is true is imported."""

    def __init__(
        self, wants: Callable[[str], bool], callback: Callable[[ModuleType], None]
    ) -> None:
        self._wants = wants
        self._callback = callback

    @property
    def installed(self) -> bool:
        return self in sys.meta_path

    def install(self) -> None:
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def uninstall(self) -> None:
        while self in sys.meta_path:
            sys.meta_path.remove(self)

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> importlib.machinery.ModuleSpec | None:
        if getattr(_local, "busy", False):
            return None
        try:
            if not self._wants(fullname):
                return None
        except Exception:
            return None
        _local.busy = True
        try:
            spec: importlib.machinery.ModuleSpec | None = None
            for finder in list(sys.meta_path):
                if finder is self:
                    continue
                find = getattr(finder, "find_spec", None)
                if find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        finally:
            _local.busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _WatchingLoader(spec.loader, self._callback)
        return spec
