"""The hybrid backend (Python 3.12+): bytecode for new calls, sys.monitoring for running frames.

Each hook is placed twice, on two different code objects, so a frame sees it exactly once:

* the bytecode backend rebuilds the target code with the hook call in it and gives the rebuilt
  code to every function object (see :mod:`sensor.inject.bytecode_backend`). Every call made
  from now on runs the rebuilt code: a counter hit costs less than an empty Python call, and a
  skipped rate-limited hit about one;
* the monitoring backend enables local events on the *original* code object (see
  :mod:`sensor.inject.monitoring`). After the swap only frames that were already running it
  still do: a worker's main loop, a suspended generator or coroutine, a closure made later by
  a parent frame that was already running. Those fire through sys.monitoring, which reaches
  them, at sys.monitoring's price (about 100 ns per hit).

So the hybrid reaches what sys.monitoring reaches and costs what bytecode injection costs on
the calls that matter (the new ones, which are almost all of them in a service). If one half
cannot place a hook, the other still does and the reason is logged: bytecode alone misses the
frames already running; monitoring alone costs more per hit.

A hook runs either directly in the target frame (bytecode) or one frame deeper, under the
monitoring callback: ``frame_depth`` is the direct depth, and a frame whose code is one of
:attr:`dispatch_codes` is the callback, to be stepped over (the engine does, where a hook
looks for its target frame: ``Engine._make_fire`` and ``_make_timer``).
"""

from __future__ import annotations

import contextlib
import logging
from types import CodeType

from sensor.inject.bytecode_backend import BytecodeBackend
from sensor.inject.core import Handle, Hook, PlacementFailed
from sensor.inject.monitoring import MonitoringBackend
from sensor.probes import Point

__all__ = ["HybridBackend"]

log = logging.getLogger("sensor.inject")


class _Pair(Handle):
    """One hook placed by either half, or both."""

    __slots__ = ("by_bytecode", "by_monitoring")

    def __init__(
        self,
        code: CodeType,
        point: Point,
        line: int | None,
        hook: Hook,
        by_bytecode: Handle | None,
        by_monitoring: Handle | None,
    ) -> None:
        super().__init__(code, point, line, hook)
        self.by_bytecode = by_bytecode
        self.by_monitoring = by_monitoring


class HybridBackend:
    """Bytecode injection for calls made from now on, sys.monitoring for frames already running."""

    name = "hybrid"
    frame_depth = 1
    reaches_running_frames = True

    def __init__(self) -> None:
        self._bytecode = BytecodeBackend()
        self._monitoring = MonitoringBackend()
        self.dispatch_codes = MonitoringBackend.callback_codes()

    def change(self) -> contextlib.AbstractContextManager[None]:
        """A change of the bytecode half (see :meth:`BytecodeBackend.change`)."""
        return self._bytecode.change()

    def original_code(self, code: CodeType) -> CodeType:
        return self._bytecode.original_code(code)

    def armed_count(self) -> int:
        return max(self._bytecode.armed_count(), self._monitoring.armed_count())

    def arm(self, code: CodeType, point: Point, line: int | None, hook: Hook) -> Handle:
        original = self.original_code(code)
        refusals: list[str] = []
        by_bytecode: Handle | None = None
        by_monitoring: Handle | None = None
        try:
            by_bytecode = self._bytecode.arm(original, point, line, hook)
        except PlacementFailed as exc:
            refusals.append(f"bytecode: {exc}")
        try:
            by_monitoring = self._monitoring.arm(original, point, line, hook)
        except PlacementFailed as exc:
            refusals.append(f"sys.monitoring: {exc}")
        if by_bytecode is None and by_monitoring is None:
            raise PlacementFailed("; ".join(refusals))
        if refusals:
            reach = (
                "frames already running will not see it"
                if by_monitoring is None
                else "it costs sys.monitoring's price per hit"
            )
            log.warning(
                "sensor: hook on %s placed by one half only (%s): %s",
                original.co_qualname,
                reach,
                "; ".join(refusals),
            )
        return _Pair(original, point, line, hook, by_bytecode, by_monitoring)

    def disarm(self, handle: Handle) -> None:
        if not isinstance(handle, _Pair):
            return
        if handle.by_bytecode is not None:
            self._bytecode.disarm(handle.by_bytecode)
        if handle.by_monitoring is not None:
            self._monitoring.disarm(handle.by_monitoring)

    def close(self) -> None:
        self._bytecode.close()
        self._monitoring.close()

    def after_fork_in_child(self) -> None:
        self._bytecode.after_fork_in_child()
        self._monitoring.after_fork_in_child()
