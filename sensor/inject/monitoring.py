"""The sys.monitoring backend (Python 3.12+): local events enabled on the target code only.

The sensor takes its own tool id (4, else 3; never coverage's id 1) when the first hook is
placed and gives it back when the last one is removed, so nothing global stays installed while
no probe is armed. ``entry``, ``return`` and ``line`` use local events (``PY_START``,
``PY_RETURN``, ``LINE``) on the target code object only. ``exception`` needs ``PY_UNWIND``,
which sys.monitoring only offers as a global event: it is switched on while at least one
exception hook is armed and filtered to the target code in the callback.

A line hook fires where ``sys.settrace`` reports a line event (see :mod:`sensor.inject.lines`).
``LINE`` gives all of them but one kind: a jump backwards that stays on the line (a loop
written on one line, a comprehension inlined in its function on 3.12+), which settrace adds
from ``JUMP`` events. For a line that has such jumps, ``JUMP`` is enabled on the code too and
the callback fires the line's hooks on exactly those jumps. On 3.13, ``LINE`` also misses the
first line of a code object whose first line is its ``def`` line (a lambda, a one-line
function, a class body) once ``RESUME`` is specialized; ``PY_START`` is enabled on such code
as well, which keeps ``RESUME`` instrumented and the event reported.

Lines (and jumps) of a target function that carry no hook return ``DISABLE`` so they cost
nothing after their first run; ``DISABLE`` is sticky, so placing a hook on such a line later
calls ``restart_events()`` once.
"""

from __future__ import annotations

import _thread
import contextlib
import sys
import threading
from types import CodeType
from typing import Any

from sensor.guards import SENSOR_WORK
from sensor.inject.core import Handle, Hook, PlacementFailed
from sensor.inject.lines import LineModel
from sensor.probes import Point

__all__ = ["CANDIDATE_TOOL_IDS", "MonitoringBackend", "free_tool_id"]

#: Tool ids the sensor may take, in order. 0 (debugger), 1 (coverage), 2 (profiler) and
#: 5 (optimizer) are conventionally reserved for those tools.
CANDIDATE_TOOL_IDS = (4, 3)
TOOL_NAME = "pytest-runtime-sensor"

_EMPTY: tuple[Any, ...] = ()
_PY313 = sys.version_info >= (3, 13)


def _mon() -> Any:
    # mypy targets 3.11, where sys.monitoring does not exist; this module only runs on 3.12+.
    return getattr(sys, "monitoring")  # noqa: B009


def free_tool_id() -> int | None:
    mon = _mon()
    for tool in CANDIDATE_TOOL_IDS:
        if mon.get_tool(tool) is None or mon.get_tool(tool) == TOOL_NAME:
            return tool
    return None


class MonitoringBackend:
    """Hooks dispatched from sys.monitoring callbacks: target -> callback -> hook."""

    name = "monitoring"
    frame_depth = 2
    reaches_running_frames = True
    dispatch_codes: frozenset[CodeType] = frozenset()

    @staticmethod
    def callback_codes() -> frozenset[CodeType]:
        """The code of the callbacks that call the hooks (the frame between hook and target)."""
        return frozenset(cb.__code__ for cb in MonitoringBackend()._make_callbacks().values())

    def change(self) -> contextlib.AbstractContextManager[None]:
        """A change (see :meth:`Backend.change`): each hook is in place when armed here."""
        return contextlib.nullcontext()

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._tool: int | None = None
        self._handles: list[Handle] = []
        # key -> (code, first hook, more hooks, next entry) chains, keyed by line (LINE) or by
        # the code's first line (the others). Entries are replaced, never mutated, so the
        # callbacks read them without a lock.
        self._lines: dict[int, Any] = {}
        self._starts: dict[int, Any] = {}
        self._returns: dict[int, Any] = {}
        self._unwinds: dict[int, Any] = {}
        # Same-line backward jumps that are line events, keyed by the jump's offset.
        self._jumps: dict[int, Any] = {}
        self._jump_offsets: dict[Handle, tuple[int, ...]] = {}
        # LINE handles on code whose first line needs PY_START enabled (3.13, see above).
        self._keep_resume: set[Handle] = set()
        # (id(code), line) pairs whose LINE event this tool switched off with DISABLE, and
        # (id(code), offset) pairs of jumps switched off the same way.
        self._disabled: set[tuple[int, int]] = set()
        self._disabled_jumps: set[tuple[int, int]] = set()

    # -- the callbacks (hot path) ---------------------------------------------------------------

    def _make_callbacks(self) -> dict[int, Any]:
        # Each table maps a key (line, or first line of the code) to a chain of entries
        # (code, first hook, more hooks, next entry): the common case (one code, one hook at
        # that key) costs one dict lookup, one identity test and the hook call.
        lines, starts, returns, unwinds = self._lines, self._starts, self._returns, self._unwinds
        jumps = self._jumps
        disable = _mon().DISABLE
        disabled = self._disabled
        disabled_jumps = self._disabled_jumps
        # A counter's hook is a C call that cannot look at the thread: the callbacks do, so
        # that no probe fires on a thread doing sensor work (see sensor.threads).
        working, get_ident = SENSOR_WORK, _thread.get_ident

        def on_line(code: CodeType, line: int) -> Any:
            entry = lines.get(line)
            while entry is not None:
                if entry[0] is code:
                    if working and get_ident() in working:
                        return None
                    entry[1]()
                    if entry[2]:
                        for hook in entry[2]:
                            hook()
                    return None
                entry = entry[3]
            disabled.add((id(code), line))
            return disable

        def on_jump(code: CodeType, offset: int, destination: int) -> Any:
            entry = jumps.get(offset)
            while entry is not None:
                if entry[0] is code:
                    if working and get_ident() in working:
                        return None
                    entry[1]()
                    if entry[2]:
                        for hook in entry[2]:
                            hook()
                    return None
                entry = entry[3]
            disabled_jumps.add((id(code), offset))
            return disable

        def on_start(code: CodeType, offset: int) -> Any:
            entry = starts.get(code.co_firstlineno)
            while entry is not None:
                if entry[0] is code:
                    if working and get_ident() in working:
                        return None
                    entry[1]()
                    for hook in entry[2]:
                        hook()
                    return None
                entry = entry[3]
            return None

        def on_return(code: CodeType, offset: int, value: object) -> Any:
            entry = returns.get(code.co_firstlineno)
            while entry is not None:
                if entry[0] is code:
                    if working and get_ident() in working:
                        return None
                    entry[1](value)
                    for hook in entry[2]:
                        hook(value)
                    return None
                entry = entry[3]
            return None

        def on_unwind(code: CodeType, offset: int, exc: BaseException) -> Any:
            entry = unwinds.get(code.co_firstlineno)
            while entry is not None:
                if entry[0] is code:
                    if working and get_ident() in working:
                        return None
                    entry[1](exc)
                    for hook in entry[2]:
                        hook(exc)
                    return None
                entry = entry[3]
            return None

        ev = _mon().events
        return {
            ev.LINE: on_line,
            ev.JUMP: on_jump,
            ev.PY_START: on_start,
            ev.PY_RETURN: on_return,
            ev.PY_UNWIND: on_unwind,
        }

    # -- placing and removing ---------------------------------------------------------------------

    def original_code(self, code: CodeType) -> CodeType:
        return code

    def armed_count(self) -> int:
        return len(self._handles)

    def _acquire(self) -> int:
        if self._tool is not None:
            return self._tool
        mon = _mon()
        tool = free_tool_id()
        if tool is None:
            raise PlacementFailed(
                "sys.monitoring: tool ids "
                + ", ".join(map(str, CANDIDATE_TOOL_IDS))
                + " are held by other tools ("
                + ", ".join(str(mon.get_tool(t)) for t in CANDIDATE_TOOL_IDS)
                + ")"
            )
        if mon.get_tool(tool) is None:
            mon.use_tool_id(tool, TOOL_NAME)
        for event, callback in self._make_callbacks().items():
            mon.register_callback(tool, event, callback)
        self._tool = tool
        return tool

    def _release(self) -> None:
        if self._tool is None:
            return
        mon = _mon()
        tool, self._tool = self._tool, None
        mon.set_events(tool, 0)
        for event in (mon.events.LINE, mon.events.JUMP, mon.events.PY_START, mon.events.PY_RETURN):
            mon.register_callback(tool, event, None)
        mon.register_callback(tool, mon.events.PY_UNWIND, None)
        mon.free_tool_id(tool)
        self._disabled.clear()
        self._disabled_jumps.clear()

    def _table(self, point: Point) -> dict[int, Any]:
        return {
            Point.LINE: self._lines,
            Point.ENTRY: self._starts,
            Point.RETURN: self._returns,
            Point.EXCEPTION: self._unwinds,
        }[point]

    @staticmethod
    def _key(handle: Handle) -> int:
        if handle.point is Point.LINE:
            assert handle.line is not None
            return handle.line
        return handle.code.co_firstlineno

    def _rebuild_key(self, point: Point, key: int) -> None:
        """Recompute one dispatch entry from the handles, in placement order."""
        table = self._table(point)
        per_code: dict[int, tuple[CodeType, list[Hook]]] = {}
        for h in self._handles:
            if h.point is point and self._key(h) == key:
                per_code.setdefault(id(h.code), (h.code, []))[1].append(h.hook)
        chain: Any = None
        for code, hooks in reversed(list(per_code.values())):
            chain = (code, hooks[0], tuple(hooks[1:]), chain)
        if chain is not None:
            table[key] = chain
        else:
            table.pop(key, None)

    def _rebuild_jump(self, offset: int) -> None:
        """Recompute the dispatch entry of the jumps at ``offset`` (one per code)."""
        per_code: dict[int, tuple[CodeType, list[Hook]]] = {}
        for h, offsets in self._jump_offsets.items():
            if offset in offsets:
                per_code.setdefault(id(h.code), (h.code, []))[1].append(h.hook)
        chain: Any = None
        for code, hooks in reversed(list(per_code.values())):
            chain = (code, hooks[0], tuple(hooks[1:]), chain)
        if chain is not None:
            self._jumps[offset] = chain
        else:
            self._jumps.pop(offset, None)

    def _local_events(self, code: CodeType) -> int:
        ev = _mon().events
        mask = 0
        for h in self._handles:
            if h.code is code:
                if h.point is Point.LINE:
                    mask |= ev.LINE
                    if self._jump_offsets.get(h):
                        mask |= ev.JUMP
                    if h in self._keep_resume:
                        mask |= ev.PY_START
                elif h.point is Point.ENTRY:
                    mask |= ev.PY_START
                elif h.point is Point.RETURN:
                    mask |= ev.PY_RETURN
        return mask

    def _global_events(self) -> int:
        ev = _mon().events
        return ev.PY_UNWIND if any(h.point is Point.EXCEPTION for h in self._handles) else 0

    def arm(self, code: CodeType, point: Point, line: int | None, hook: Hook) -> Handle:
        mon = _mon()
        back_jumps: tuple[int, ...] = ()
        keep_resume = False
        if point is Point.LINE:
            assert line is not None
            model = LineModel(code)
            refusal = model.refusal(line)
            if refusal is not None:
                raise PlacementFailed(refusal)
            back_jumps = tuple(model.back_jumps(line))
            resumed = model.first_line_resumes(line) if _PY313 else None
            if resumed:
                raise PlacementFailed(
                    f"line {line} of {code.co_qualname} cannot be probed exactly by "
                    "sys.monitoring: a line event right after a generator resumes on the same "
                    "line is not reported by LINE on this Python"
                )
            keep_resume = resumed == 0
        with self._lock:
            tool = self._acquire()
            handle = Handle(code, point, line, hook)
            self._handles.append(handle)
            if back_jumps:
                self._jump_offsets[handle] = back_jumps
            if keep_resume:
                self._keep_resume.add(handle)
            try:
                self._rebuild_key(point, self._key(handle))
                for offset in back_jumps:
                    self._rebuild_jump(offset)
                mon.set_local_events(tool, code, self._local_events(code))
                mon.set_events(tool, self._global_events())
                sticky = point is Point.LINE and (id(code), line) in self._disabled
                sticky |= any((id(code), o) in self._disabled_jumps for o in back_jumps)
                if sticky:
                    # DISABLE is sticky: this line (or jump) was switched off before it had
                    # a hook.
                    self._disabled.discard((id(code), line or 0))
                    self._disabled_jumps.difference_update((id(code), o) for o in back_jumps)
                    mon.restart_events()
            except Exception as exc:
                self._handles.remove(handle)
                self._jump_offsets.pop(handle, None)
                self._keep_resume.discard(handle)
                self._rebuild_key(point, self._key(handle))
                for offset in back_jumps:
                    self._rebuild_jump(offset)
                if not self._handles:
                    self._release()
                raise PlacementFailed(f"sys.monitoring refused the hook: {exc}") from exc
            return handle

    def disarm(self, handle: Handle) -> None:
        mon = _mon()
        with self._lock:
            if handle not in self._handles:
                return
            self._handles.remove(handle)
            self._rebuild_key(handle.point, self._key(handle))
            for offset in self._jump_offsets.pop(handle, ()):
                self._rebuild_jump(offset)
            self._keep_resume.discard(handle)
            if self._tool is not None:
                mon.set_local_events(self._tool, handle.code, self._local_events(handle.code))
                mon.set_events(self._tool, self._global_events())
            if not self._handles:
                self._release()

    def after_fork_in_child(self) -> None:
        # Another thread may have held the lock at the fork; it never releases it here.
        self._lock = threading.RLock()

    def close(self) -> None:
        with self._lock:
            for handle in list(self._handles):
                self.disarm(handle)
            self._release()
