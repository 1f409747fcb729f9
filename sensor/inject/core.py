"""Choose an injection backend (sys.monitoring or bytecode rewriting) and say why.

A backend places *hooks* on code objects. A hook is a plain callable owned by the engine:
``hook()`` at ``entry`` and ``line`` points, ``hook(value)`` at ``return`` (the return value) and
``hook(exc)`` at ``exception``. The backend calls it directly from the target frame's event, so
``sys._getframe(backend.frame_depth)`` inside the hook is the target frame. A backend never lets
a hook's exception escape into the host: hooks catch everything themselves, and the backend adds
nothing that can raise.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from types import CodeType
from typing import Protocol

from sensor.probes import Point

__all__ = ["Backend", "Handle", "PlacementFailed", "select_backend"]

log = logging.getLogger("sensor.inject")

#: The environment variable that forces a backend ("hybrid", "monitoring" or "bytecode").
BACKEND_ENV = "SENSOR_BACKEND"

Hook = Callable[..., object]


class PlacementFailed(Exception):
    """A backend could not place a hook; the message is the reason shown in the probe status."""


class Handle:
    """One placed hook; given back to :meth:`Backend.disarm`."""

    __slots__ = ("code", "hook", "line", "point")

    def __init__(self, code: CodeType, point: Point, line: int | None, hook: Hook) -> None:
        self.code = code
        self.point = point
        self.line = line
        self.hook = hook


class Backend(Protocol):
    """What the engine needs from an injection backend."""

    name: str
    #: frames between a hook and the target frame: ``sys._getframe(frame_depth)`` in the hook.
    frame_depth: int
    #: True when already-running frames and suspended generators see new hooks.
    reaches_running_frames: bool
    #: Code of backend frames that may also sit between a hook and the target frame (one more
    #: frame to step over): the hybrid backend's monitoring callbacks. Empty for the others.
    dispatch_codes: frozenset[CodeType]

    def original_code(self, code: CodeType) -> CodeType:
        """The original code of ``code`` (``code`` itself unless the backend rewrote it)."""

    def change(self) -> AbstractContextManager[None]:
        """Group the arms and disarms of one probe: what they change is installed at its end.

        The bytecode backend swaps each code object once per change and walks the heap once per
        change (not once per hook); a hook armed outside a change is a change of its own.
        """

    def arm(self, code: CodeType, point: Point, line: int | None, hook: Hook) -> Handle:
        """Place ``hook``; raise :class:`PlacementFailed` with a reason if it cannot."""

    def disarm(self, handle: Handle) -> None:
        """Remove one hook; restores the original code when it was the last one on it."""

    def armed_count(self) -> int:
        """The number of hooks in place."""

    def close(self) -> None:
        """Remove every hook and release global resources (tool ids)."""

    def after_fork_in_child(self) -> None:
        """Renew the backend's locks in a forked child (only the forking thread survives)."""


def _monitoring_available() -> tuple[bool, str]:
    if not hasattr(sys, "monitoring"):
        return False, f"sys.monitoring needs Python 3.12+ (this is {sys.version.split()[0]})"
    from sensor.inject.monitoring import free_tool_id

    tool = free_tool_id()
    if tool is None:
        return (
            False,
            "every sys.monitoring tool id the sensor may use (4, 3) is held by another tool",
        )
    return True, f"sys.monitoring local events with tool id {tool}"


def _bytecode_available() -> tuple[bool, str]:
    try:
        import bytecode
    except ImportError:
        return False, "the 'bytecode' package is not installed"
    return True, f"bytecode injection with the 'bytecode' package {bytecode.__version__}"


def _hybrid_available() -> tuple[bool, str]:
    ok, why = _monitoring_available()
    if not ok:
        return False, why
    ok, why_bytecode = _bytecode_available()
    if not ok:
        return False, why_bytecode
    return True, f"{why_bytecode} for new calls, {why} for frames already running"


#: The backends, in the order tried when the wanted one is unavailable.
BACKENDS = ("hybrid", "monitoring", "bytecode")


def default_backend_name() -> str:
    """The measured default for this Python (see docs/explanation/backends.md).

    3.12+: ``hybrid`` (bytecode's per-hit cost on new calls, sys.monitoring's reach for
    frames already running); 3.11: ``bytecode`` (sys.monitoring does not exist).
    """
    return "hybrid" if sys.version_info >= (3, 12) else "bytecode"


def select_backend(requested: str | None = None) -> tuple[Backend | None, str]:
    """Build the backend to use and return it with the reason (also logged).

    ``requested`` (or ``SENSOR_BACKEND``) picks one; an unavailable choice falls back to the other
    with a warning saying why. ``None`` is returned only when no backend works at all.
    """
    wanted = requested or os.environ.get(BACKEND_ENV) or default_backend_name()
    if wanted not in BACKENDS:
        log.warning(
            "sensor backend %r is unknown (expected one of %s); using the default",
            wanted,
            ", ".join(repr(name) for name in BACKENDS),
        )
        wanted = default_backend_name()
    checks: dict[str, Callable[[], tuple[bool, str]]] = {
        "hybrid": _hybrid_available,
        "monitoring": _monitoring_available,
        "bytecode": _bytecode_available,
    }
    order = [wanted] + [name for name in checks if name != wanted]
    refusals: list[str] = []
    for name in order:
        ok, why = checks[name]()
        if not ok:
            refusals.append(f"{name}: {why}")
            continue
        backend = _build(name)
        if name == wanted:
            reason = f"{why} ({'requested' if requested else 'default for this Python'})"
            log.info("sensor injection backend: %s", reason)
        else:
            reason = f"{why}; fell back because " + "; ".join(refusals)
            log.warning("sensor injection backend: %s", reason)
        return backend, reason
    reason = "no injection backend works here: " + "; ".join(refusals)
    log.warning("sensor: %s; probes will report an error", reason)
    return None, reason


def _build(name: str) -> Backend:
    if name == "hybrid":
        from sensor.inject.hybrid import HybridBackend

        return HybridBackend()
    if name == "monitoring":
        from sensor.inject.monitoring import MonitoringBackend

        return MonitoringBackend()
    from sensor.inject.bytecode_backend import BytecodeBackend

    return BytecodeBackend()
