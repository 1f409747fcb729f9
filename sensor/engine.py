"""The sensor engine: places probes in running code, runs their guarded hooks, collects hits.

The engine is what the agent (production) and the plugin (test time) use in-process::

    engine = get_engine()
    status = engine.install(probe)          # never raises: ERROR/PENDING carry a reason
    ...
    hits = engine.drain()                   # snapshot, log and expect hits from the bounded sink
    aggregates = engine.flush_aggregates()  # counter and timer totals since the last flush
    engine.remove(probe.id)                 # restores the original code

Hot path (on the host's thread): the backend calls the probe's hook; for a counter the hook is
a C-level ``count.__next__``; for other kinds a :class:`~sensor.guards.Gate` checks the guards
before any work. Nothing here raises into the host, blocks, or grows without bound.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib
import itertools
import linecache
import logging
import math
import os
import re
import sys
import threading
import time
import weakref
from _thread import get_ident
from collections.abc import Callable, Mapping
from types import CodeType, FrameType, ModuleType
from typing import TYPE_CHECKING, Any, overload

from sensor import _atfork, _epoch
from sensor.errors import ExpressionError, ProbeSpecError
from sensor.guards import (
    GATE_FRAMES,
    NOTHING,
    SENSOR_WORK,
    Account,
    CpuBudget,
    ExpectGate,
    Gate,
    Novelty,
    Switch,
    Waker,
    new_tally,
    samples,
    switched,
    tally_count,
)
from sensor.inject.core import Backend, Handle, Hook, PlacementFailed, select_backend
from sensor.inject.imports import ImportWatcher
from sensor.inject.locate import (
    NotFound,
    code_lines,
    codeless_line_reason,
    find_code_for_line,
    find_module_for_path,
    module_file,
    path_matches,
    resolve_qualname,
)
from sensor.probes import CaptureLimits, Hit, Point, Probe, ProbeKind, ProbeState, ProbeStatus

if TYPE_CHECKING:
    from sensor.hotpath import FastExpectGate

__all__ = ["Engine", "get_engine", "validate"]

log = logging.getLogger("sensor.engine")

# Builtin types whose truth value runs no user code.
_PLAIN_TRUTH = (type(None), int, float, str, bytes, list, tuple, dict, set, frozenset)
# Pending timer starts kept per probe (calls that raised never stop their timer).
_MAX_TIMER_STARTS = 10_000
# Calls of one replay or lines probe sampled and not yet ended (recursion, threads): more are
# dropped and counted. An entry whose end was never seen is evicted after _PENDING_MAX_AGE.
_MAX_PENDING = 64
_PENDING_MAX_AGE = 60.0
# How long, and for how many probes at most, a removed probe's last status is still reported.
_GONE_SECONDS = 60.0
_MAX_GONE = 1_000


# -- optional sibling modules (written by other streams; imported lazily) ---------------------


def _expressions() -> Any:
    try:
        return importlib.import_module("sensor.expressions")
    except ImportError:
        return None


_capture_frame: Callable[..., tuple[dict[str, Any], bool, list[str]]] | None = None


def _capture(values: Mapping[str, object], limits: Any) -> tuple[dict[str, Any], bool, list[str]]:
    """The single place where the engine asks ``sensor.capture`` to encode values."""
    global _capture_frame
    if _capture_frame is None:
        try:
            from sensor.capture.encode import capture_frame
        except ImportError:
            names = {
                name: {"@t": _type_name(type(value)), "@error": "encoder unavailable"}
                for name, value in values.items()
            }
            return names, False, ["sensor.capture.encode is not available"]
        _capture_frame = capture_frame
    return _capture_frame(values, limits, _redactor())


_get_redactor: Callable[[], Any] | None = None


def _redactor() -> Any:
    # The process redactor can be replaced at run time (set_redactor): ask for it on every hit,
    # but import only once.
    global _get_redactor
    if _get_redactor is None:
        try:
            from sensor.redaction import get_redactor
        except ImportError:
            return None
        _get_redactor = get_redactor
    return _get_redactor()


def _warm_up() -> None:
    """Import and exercise what a first hit would load lazily, on the installing thread.

    Measured in the demo: the first hit on a request thread spent about 11 ms importing the
    encoder, the redactor (and its SENSOR_REDACT_* rules) and decimal, and tripped the CPU
    budget. A throwaway capture of typical values loads all of it here instead.
    """
    try:
        import datetime
        import decimal
        import uuid

        sample: dict[str, object] = {
            "n": 1,
            "s": "someone@example.com",
            "d": {"price": decimal.Decimal("1.50"), "at": datetime.datetime(2026, 1, 1)},
            "u": uuid.UUID(int=0),
            "o": _WarmUp(),
        }
        _capture(sample, CaptureLimits())
        _exception_info(ValueError("warm-up"), CaptureLimits())
    except Exception:
        log.debug("sensor: warming up the capture path failed", exc_info=True)


class _WarmUp:
    """A small user-like object for :func:`_warm_up` (its __dict__ is read, as in a hit)."""

    def __init__(self) -> None:
        self.name = "x"
        self.items = [1, 2]


def _denied(module: str | None, filename: str | None) -> str | None:
    try:
        get_deny_list = importlib.import_module("sensor.deny").get_deny_list
    except ImportError:
        for prefix in ("sensor", "pytest_runtime"):
            if module is not None and (module == prefix or module.startswith(prefix + ".")):
                return f"module {module!r} belongs to the sensor itself"
        return None
    reason = get_deny_list().check(module, filename)
    return None if reason is None else str(reason)


def _type_name(tp: type) -> str:
    name = type.__dict__["__qualname__"].__get__(tp)
    module = type.__dict__["__module__"].__get__(tp)
    return str(name) if module == "builtins" else f"{module}.{name}"


# -- compiled probe ----------------------------------------------------------------------------


class _Compiled:
    """A probe's expressions, compiled once at placement."""

    __slots__ = ("captures", "condition", "expect", "template")

    def __init__(self, probe: Probe) -> None:
        exprs: Any = None
        needs = [probe.condition, probe.expect, probe.template] + [
            c.expr for c in probe.capture if not (c.is_plain_name and c.name == c.expr)
        ]
        if any(text is not None for text in needs):
            exprs = _expressions()
            if exprs is None:
                raise ExpressionError(
                    "probe expressions need sensor.expressions, which is not available here"
                )
        self.condition = exprs.compile(probe.condition) if probe.condition else None
        self.expect = exprs.compile(probe.expect) if probe.expect else None
        self.template = exprs.compile_template(probe.template) if probe.template else None
        self.captures: list[tuple[str, str, Any]] = []
        for spec in probe.capture:
            # A plain name read under its own name is redacted by the encoder (which sees the
            # name); under an alias ({"name": "e", "expr": "password"}) only the sandbox knows
            # what was read, so it evaluates it.
            if spec.is_plain_name and spec.name == spec.expr:
                self.captures.append((spec.name, spec.expr, None))
            else:
                self.captures.append((spec.name, spec.expr, exprs.compile(spec.expr)))


def validate(probe: Probe) -> None:
    """Compile every expression of ``probe``; raise ExpressionError or ProbeSpecError."""
    if not isinstance(probe, Probe):
        raise ProbeSpecError("probe", probe, "a sensor.probes.Probe")
    _Compiled(probe)


# -- one probe inside the engine ---------------------------------------------------------------


class _Armed:
    __slots__ = (
        "account",
        "capture_all",
        "code",
        "compiled",
        "counter",
        "counter_reported",
        "drops",
        "errors",
        "evaluations",
        "exceptions",
        "expect_errors",
        "filename",
        "gates",
        "handles",
        "hit_count",
        "kind",
        "location",
        "logged",
        "on_hit",
        "pending",
        "probe",
        "reason",
        "secret_locals",
        "signature",
        "skipped_condition",
        "state",
        "timer_read",
        "unobserved",
        "updated_at",
        "violations",
    )

    def __init__(self, probe: Probe, on_hit: Callable[[Hit], None] | None) -> None:
        self.probe = probe
        self.on_hit = on_hit
        # Computed once: the signature hashes JSON, far too slow for every hit.
        self.signature = probe.signature
        self.location = str(probe.location)
        self.kind = probe.kind.value
        self.capture_all = probe.kind in (ProbeKind.SNAPSHOT, ProbeKind.EXPECT)
        # (code, epoch token, whether the code has a variable under a secret name): decided
        # once per code object and rule change, see _has_secret_locals.
        self.secret_locals: tuple[object, object, bool] | None = None
        self.state = ProbeState.PENDING
        self.reason: str | None = None
        self.compiled: _Compiled | None = None
        self.handles: list[Handle] = []
        # The gates of the probe: one per point, plus the exception-exit gate at @return. They
        # share ``hit_count`` (so that max_hits bounds their sum) and the CPU-budget account.
        self.gates: list[Gate | ExpectGate | FastExpectGate] = []
        self.hit_count: list[int] = [0]
        self.account: Account | None = None
        # Exception exits seen (a tally: counted before any sampling, from any thread).
        self.exceptions: Any = None
        self.counter: Any = None  # a counter probe's tally (guards.new_tally)
        self.counter_reported = 0
        self.timer_read: Callable[[], list[float]] | None = None
        self.code: CodeType | None = None
        self.filename: str | None = None
        # Replay and lines probes: sampled calls not ended yet, by id(frame) (see _MAX_PENDING).
        self.pending: dict[int, Any] = {}
        # Lines probes: lines no backend could observe exactly (named in every hit).
        self.unobserved: list[str] = []
        self.drops = 0
        self.errors = 0
        self.skipped_condition = 0
        self.evaluations = 0
        self.violations = 0
        self.expect_errors = 0
        self.logged = False
        self.updated_at = time.time()

    def set_state(self, state: ProbeState, reason: str | None = None) -> None:
        self.state = state
        self.reason = reason
        self.updated_at = time.time()

    def hits(self) -> int:
        if self.counter is not None:
            return tally_count(self.counter)
        if self.gates:
            return self.hit_count[0]
        if self.timer_read is not None:
            return int(self.timer_read()[4])
        return 0

    def error(self, what: str, exc: BaseException) -> str:
        self.errors += 1
        text = _clean(f"{what}: {type(exc).__name__}: {exc}")
        if not self.logged:
            self.logged = True
            log.warning("sensor probe %s at %s: %s", self.probe.id, self.probe.location, text)
        return text


# -- the engine --------------------------------------------------------------------------------


class Engine:
    """Places probes and collects their hits in one process (see the module docstring)."""

    def __init__(
        self,
        *,
        sink_size: int = 10_000,
        backend: str | None = None,
        cpu_budget: float = 0.01,
    ) -> None:
        self._lock = threading.RLock()
        self._backend: Backend | None
        self._backend, self.backend_reason = select_backend(backend)
        self.backend_name: str = self._backend.name if self._backend is not None else "none"
        self._sink_size = max(0, int(sink_size))
        self._sink: collections.deque[Hit] = collections.deque()
        self._dropped = 0
        self._budget = CpuBudget(cpu_budget)
        # Reopens rate-limited gates that closed until their next token (see guards.Waker).
        self._waker = Waker()
        self._probes: dict[str, _Armed] = {}
        # Removed probes' last statuses (see remove): probe id -> (when, status).
        self._gone: dict[str, tuple[float, ProbeStatus]] = {}
        # Disable requests from hook threads: (probe id, reason). Appending never blocks.
        self._requests: collections.deque[tuple[str, str]] = collections.deque()
        self._watcher: ImportWatcher | None = None
        self._seq = itertools.count(1)
        self._prefix = os.urandom(4).hex()
        self._closed = False
        self._warmed = False
        _ENGINES.add(self)

    # -- public API ------------------------------------------------------------------------

    @property
    def cpu_budget(self) -> float:
        """Share of one CPU the probes may use per second (``>= 1``: no budget); settable."""
        return self._budget.fraction

    @cpu_budget.setter
    def cpu_budget(self, fraction: float) -> None:
        self._budget.fraction = fraction  # ValueError naming cpu_budget if not > 0

    @property
    def dropped(self) -> int:
        """Hits dropped because the sink was full."""
        return self._dropped

    def install(self, probe: Probe, on_hit: Callable[[Hit], None] | None = None) -> ProbeStatus:
        """Place ``probe``; never raises (problems are an ERROR status with a reason)."""
        try:
            with self._lock:
                self._process_requests()
                if not self._warmed and probe.kind not in (ProbeKind.COUNTER, ProbeKind.TIMER):
                    self._warmed = True
                    _warm_up()
                return self._install(probe, on_hit)
        except Exception as exc:
            log.exception("sensor: installing probe %r failed", getattr(probe, "id", probe))
            return ProbeStatus(
                getattr(probe, "id", "?"),
                ProbeState.ERROR,
                reason=_clean(f"internal error while installing: {type(exc).__name__}: {exc}"),
                backend=self.backend_name,
            )

    def remove(self, probe_id: str) -> bool:
        """Remove a probe and restore the code; False if the id is unknown.

        Its last status stays in :meth:`statuses` for :data:`_GONE_SECONDS`: the hub stops
        sending a probe that reached ``max_hits`` (and :func:`sensor.stop` removes every
        probe) before the next heartbeat, which must still carry the final counts and why
        the probe stopped. A probe disabled or refused keeps that state and reason; any
        other is ``removed``.
        """
        with self._lock:
            self._process_requests()
            armed = self._probes.pop(probe_id, None)
            if armed is None:
                return False
            self._disarm(armed)
            self._budget.forget(probe_id)
            if armed.state not in (ProbeState.DISABLED, ProbeState.ERROR):
                armed.set_state(ProbeState.REMOVED)
            self._gone[probe_id] = (time.monotonic(), self._status(armed))
            while len(self._gone) > _MAX_GONE:
                self._gone.pop(next(iter(self._gone)))
            self._update_watcher()
            return True

    def remove_all(self) -> None:
        with self._lock:
            for probe_id in list(self._probes):
                self.remove(probe_id)

    def status(self, probe_id: str) -> ProbeStatus | None:
        with self._lock:
            self._process_requests()
            armed = self._probes.get(probe_id)
            return None if armed is None else self._status(armed)

    def statuses(self) -> list[ProbeStatus]:
        """Every probe's status, and the last status of those removed in the last minute."""
        with self._lock:
            self._process_requests()
            live = [self._status(armed) for armed in self._probes.values()]
            horizon = time.monotonic() - _GONE_SECONDS
            for probe_id, (when, _) in list(self._gone.items()):
                if when < horizon or probe_id in self._probes:
                    del self._gone[probe_id]
            return live + [status for _, status in self._gone.values()]

    def drain(self, max_items: int | None = None) -> list[Hit]:
        """Take hits out of the shared sink (oldest first)."""
        self._process_requests_nowait()
        out: list[Hit] = []
        sink = self._sink
        limit = len(sink) if max_items is None else max(0, max_items)
        while len(out) < limit:
            try:
                out.append(sink.popleft())
            except IndexError:
                break
        return out

    def flush_aggregates(self) -> list[Hit]:
        """One hit per counter or timer probe that fired since the last flush."""
        out: list[Hit] = []
        with self._lock:
            self._process_requests()
            for armed in self._probes.values():
                probe = armed.probe
                aggregate: dict[str, Any] | None = None
                if armed.counter is not None:
                    total = tally_count(armed.counter)
                    delta = total - armed.counter_reported
                    if delta:
                        armed.counter_reported = total
                        aggregate = {"count": delta, "total": total}
                elif armed.timer_read is not None:
                    count, total_ns, low, high, _ = armed.timer_read(reset=True)  # type: ignore[call-arg]
                    if count:
                        aggregate = {
                            "count": int(count),
                            "sum_ns": int(total_ns),
                            "min_ns": int(low),
                            "max_ns": int(high),
                            "mean_ns": int(total_ns // count),
                        }
                if aggregate is not None:
                    out.append(
                        Hit(
                            probe_id=probe.id,
                            signature=armed.signature,
                            kind=probe.kind.value,
                            location=armed.location,
                            ts=time.time(),
                            hit_id=self._next_hit_id(),
                            aggregate=aggregate,
                        )
                    )
        return out

    def close(self) -> None:
        """Remove every probe, restore all code, unhook imports, free the monitoring tool id."""
        with self._lock:
            self.remove_all()
            if self._watcher is not None:
                self._watcher.uninstall()
                self._watcher = None
            if self._backend is not None:
                self._backend.close()
            self._waker.stop()
            self._closed = True

    # -- placement -------------------------------------------------------------------------

    def _install(self, probe: Probe, on_hit: Callable[[Hit], None] | None) -> ProbeStatus:
        if probe.id in self._probes:
            self.remove(probe.id)
        armed = _Armed(probe, on_hit)
        self._probes[probe.id] = armed
        try:
            armed.compiled = _Compiled(probe)
        except (ExpressionError, ProbeSpecError) as exc:
            armed.set_state(ProbeState.ERROR, f"invalid expression: {exc}")
            return self._status(armed)
        if self._backend is None:
            armed.set_state(ProbeState.ERROR, self.backend_reason)
            return self._status(armed)
        loc = probe.location
        module: ModuleType | None
        if loc.path is None:
            reason = _denied(loc.module, None)
            if reason is not None:
                armed.set_state(ProbeState.ERROR, f"denied location {loc}: {reason}")
                return self._status(armed)
            module = sys.modules.get(loc.module or "")
            waiting_for = f"module {loc.module!r}"
        else:
            module = find_module_for_path(loc.path)
            waiting_for = f"a module whose file ends with {loc.path!r}"
        if module is None:
            armed.set_state(ProbeState.PENDING, f"waiting for {waiting_for} to be imported")
            self._update_watcher()
            return self._status(armed)
        self._arm(armed, module)
        return self._status(armed)

    def _arm(self, armed: _Armed, module: ModuleType) -> None:
        backend = self._backend
        assert backend is not None
        probe = armed.probe
        loc = probe.location
        filename = module_file(module)
        reason = _denied(module.__name__, filename)
        if reason is not None:
            armed.set_state(ProbeState.ERROR, f"denied location {loc}: {reason}")
            return
        try:
            if loc.path is not None:
                assert loc.line is not None
                assert filename is not None
                code = find_code_for_line(module, filename, loc.line)
            else:
                code = resolve_qualname(module, loc.qualname or "")
        except NotFound as exc:
            armed.set_state(ProbeState.ERROR, f"not found: {exc}")
            return
        code = backend.original_code(code)
        filename = code.co_filename
        reason = _denied(module.__name__, filename)
        if reason is not None:
            armed.set_state(ProbeState.ERROR, f"denied location {loc}: {reason}")
            return
        lines = code_lines(code)
        for wanted in (loc.line, probe.until_line):
            if wanted is not None and wanted not in lines:
                why = codeless_line_reason(lines, wanted)
                if why is not None:
                    armed.set_state(
                        ProbeState.ERROR, f"line {wanted} of {code.co_qualname} in {filename} {why}"
                    )
                    return
                span = f"{min(lines)}-{max(lines)}" if lines else "none"
                armed.set_state(
                    ProbeState.ERROR,
                    f"line {wanted} is not a line of {code.co_qualname} in {filename} "
                    f"(its lines: {span})",
                )
                return
        mismatch = _source_mismatch(probe, code)
        if mismatch is not None:
            armed.set_state(ProbeState.ERROR, mismatch)
            return
        whole_calls = _whole_calls_refusal(probe, code)
        if whole_calls is not None:
            armed.set_state(ProbeState.ERROR, whole_calls)
            return
        armed.code = code
        armed.filename = filename
        placed: list[Handle] = []
        try:
            # Compared by id: hashing a code object hashes its constants, on every firing.
            dispatch = frozenset(map(id, backend.dispatch_codes))
            unobserved: list[str] = []
            # One change for all the probe's hooks: one code swap and one heap walk, not one
            # per hook (see Backend.change).
            with backend.change():
                try:
                    for point, line, hook in self._hooks_for(armed, backend.frame_depth, dispatch):
                        if probe.kind is ProbeKind.LINES and point is Point.LINE:
                            # A line no backend can place exactly is left out and named in every
                            # hit (the plugin never reads its absence as "did not run").
                            try:
                                placed.append(backend.arm(code, point, line, hook))
                            except PlacementFailed as exc:
                                unobserved.append(f"{line}: {exc}")
                            continue
                        placed.append(backend.arm(code, point, line, hook))
                except PlacementFailed:
                    for handle in placed:
                        backend.disarm(handle)
                    raise
            if unobserved:
                _note_unobserved(armed, unobserved)
        except PlacementFailed as exc:
            armed.set_state(ProbeState.ERROR, f"placement failed: {exc}")
            return
        armed.handles = placed
        armed.set_state(ProbeState.INSTALLED)

    def _hooks_for(
        self, armed: _Armed, depth: int, dispatch: frozenset[int] = frozenset()
    ) -> list[tuple[Point, int | None, Hook]]:
        """The hooks of one probe; ``sys._getframe(depth)`` in a hook is the target frame, or a
        backend frame whose code's id is in ``dispatch`` right below it (see Backend)."""
        probe = armed.probe
        loc = probe.location
        line = loc.line if loc.point is Point.LINE else None
        if probe.kind is ProbeKind.LINES:
            return self._lines_hooks(armed, depth, dispatch)
        if probe.replay:
            return self._replay_hooks(armed, depth, dispatch)
        if probe.kind is ProbeKind.COUNTER:
            counter = new_tally()
            armed.counter = counter
            if loc.point in (Point.ENTRY, Point.LINE):
                # One C-level call per hit: nothing cheaper can run from a hook. It cannot look
                # at the thread: the backends keep it off sensor work (see sensor.threads).
                return [(loc.point, line, counter.__next__)]
            bump = counter.__next__

            def count_value(value: object) -> None:
                if SENSOR_WORK and get_ident() in SENSOR_WORK:
                    return
                bump()

            return [(loc.point, line, count_value)]
        if probe.kind is ProbeKind.TIMER:
            start, stop, read = _make_timer(depth, dispatch)
            armed.timer_read = read
            if loc.point is Point.LINE:
                if probe.until_line is not None:
                    return [(Point.LINE, loc.line, start), (Point.LINE, probe.until_line, stop)]
                return [(Point.LINE, loc.line, start), (Point.RETURN, None, stop)]
            return [(Point.ENTRY, None, start), (Point.RETURN, None, stop)]
        armed.account = self._budget.account(probe.id)
        on_stop = functools.partial(self._request, probe.id)
        self._waker.start()  # here, not from the host thread whose hit first closes a gate
        # At @exception the gate's hook is called by a counting hook: one frame more.
        fire_depth = depth + GATE_FRAMES + (1 if loc.point is Point.EXCEPTION else 0)
        gate: Gate | ExpectGate | FastExpectGate
        if probe.expect is not None and probe.condition is None:
            # The fused hot path: every firing is evaluated (bounded by eval_rate) in one
            # closure, and only what is captured goes through fire (see sensor.hotpath).
            gate = self._fast_gate(
                armed, depth + (1 if loc.point is Point.EXCEPTION else 0), dispatch, on_stop
            )
        elif probe.expect is not None:
            # Every firing is evaluated (bounded by eval_rate); the capture is rate-limited.
            gate = ExpectGate(
                self._make_fire(armed, fire_depth, dispatch),
                **self._expect_limits(armed, on_stop),
                novelty=Novelty(),
                key_names=_key_names(armed),
            )
        else:
            gate = Gate(
                self._make_fire(armed, fire_depth, dispatch),
                rate=probe.rate,
                burst=probe.limits.burst,
                max_hits=probe.limits.max_hits,
                expires_at=probe.limits.expires_at,
                on_stop=on_stop,
                waker=self._waker,
                account=armed.account,
                hits=armed.hit_count,
            )
        armed.gates = [gate]
        armed.exceptions = new_tally()
        if loc.point is Point.EXCEPTION:
            # Every firing is an exception exit: counted exactly, so no inline skip path.
            return [(loc.point, None, _counting(gate.hook, armed.exceptions))]
        hooks: list[tuple[Point, int | None, Hook]] = [(loc.point, line, gate.hook)]
        if loc.point is Point.RETURN and armed.code is not None and not _returns(armed.code):
            hooks = []  # it can only end by an exception (or never): only exits can fire
        if loc.point is Point.RETURN:
            # An exception leaving the function is an exit too (a test that asserts on the
            # return value asserts that the function returns): its own gate, at the violation
            # rate, so that a flood of exceptions cannot flood the hub or starve the returns.
            exits = Gate(
                self._make_fire(armed, depth + GATE_FRAMES + 1, dispatch, exit=True),
                rate=probe.violation_rate,
                max_hits=probe.limits.max_hits,
                expires_at=probe.limits.expires_at,
                on_stop=on_stop,
                waker=self._waker,
                account=armed.account,
                hits=armed.hit_count,
            )
            armed.gates.append(exits)
            hooks.append(
                (Point.EXCEPTION, None, _exit_filter(exits.hook, armed.exceptions, armed.code))
            )
        return hooks

    # -- replay and lines probes: one hit per sampled call, from its entry to its end ---------

    def _sampled_calls(
        self,
        armed: _Armed,
        depth: int,
        dispatch: frozenset[int],
        start: Callable[[Any], Any],
        finish: Callable[[Any, Any, object, BaseException | None], None],
    ) -> tuple[Gate, Switch, Hook, Hook]:
        """The entry gate and the exit hooks shared by replay and lines probes.

        The entry gate samples calls (rate, max_hits, expiry, CPU budget, before any work);
        ``start(frame)`` reads what the call needs at entry and returns it (None: dropped).
        The exit hooks run only while some sampled call is pending: ``switch`` is on
        exactly then, and a backend that honours :func:`sensor.guards.switched` tests it inline,
        so between samples a call pays no exit hook at all. ``finish(frame, entry, value,
        exc)`` produces the hit of an ended call (``exc`` None at a return).
        """
        probe = armed.probe
        pending = armed.pending
        switch = Switch()
        armed.account = self._budget.account(probe.id)
        account = armed.account
        budget = self._budget
        on_stop = functools.partial(self._request, probe.id)
        self._waker.start()
        getframe = sys._getframe

        def enter(armed: _Armed, frame: Any, value: object, admit: Any = None) -> bool | None:
            if len(pending) >= _MAX_PENDING and not _evict_stale(pending):
                armed.drops += 1  # too many calls sampled and running at once: counted
                return False
            entry = start(frame)
            if entry is None:
                return False
            pending[id(frame)] = (time.monotonic(), entry)
            switch.on = True
            return True

        gate = Gate(
            self._make_fire(armed, depth + GATE_FRAMES, dispatch, fire_frame=enter),
            rate=probe.rate,
            burst=probe.limits.burst,
            max_hits=probe.limits.max_hits,
            expires_at=probe.limits.expires_at,
            on_stop=on_stop,
            waker=self._waker,
            account=account,
            hits=armed.hit_count,
        )
        armed.gates = [gate]
        armed.exceptions = new_tally()

        def end(value: object, exc: BaseException | None) -> None:
            frame: Any = getframe(depth + 1)
            if dispatch and id(frame.f_code) in dispatch:
                frame = frame.f_back
            found = pending.pop(id(frame), None)
            if not pending:
                switch.on = False
                if pending:  # another thread sampled a call meanwhile: keep its exit hooks
                    switch.on = True
            if found is None:
                return
            if exc is not None and not issubclass(type(exc), Exception):
                armed.drops += 1  # KeyboardInterrupt, SystemExit: not the function's outcome
                return
            clock = budget.clock
            t0 = clock()
            try:
                if exc is not None:
                    next(armed.exceptions)
                finish(frame, found[1], value, exc)
            except Exception as error:
                armed.error("hit failed", error)
            finally:
                over = budget.spend(account, clock() - t0, clock)
                if over is not None:
                    self._request(probe.id, over)

        def on_return(value: object = NOTHING) -> None:
            if not switch.on or (SENSOR_WORK and get_ident() in SENSOR_WORK):
                return
            try:
                end(value, None)
            except Exception as error:
                armed.error("hit failed", error)

        def on_raise(exc: object = NOTHING) -> None:
            if not switch.on or (SENSOR_WORK and get_ident() in SENSOR_WORK):
                return
            try:
                end(NOTHING, exc if isinstance(exc, BaseException) else RuntimeError(str(exc)))
            except Exception as error:
                armed.error("hit failed", error)

        samples(gate.hook, switch)
        return gate, switch, switched(on_return, switch), switched(on_raise, switch)

    def _replay_hooks(
        self, armed: _Armed, depth: int, dispatch: frozenset[int]
    ) -> list[tuple[Point, int | None, Hook]]:
        """A replay probe: the arguments at entry and the outcome at the end, in one hit."""
        limits = armed.probe.limits.capture

        def start(frame: Any) -> Any:
            return _arguments(frame, limits)

        def finish(frame: Any, entry: Any, value: object, exc: BaseException | None) -> None:
            arguments, truncated, errors = entry
            extra: dict[str, Any] = {"arguments": arguments, "truncated": truncated}
            if exc is None:
                encoded, cut, problems = _capture({"result": value}, limits)
                extra["outcome"] = {"returned": encoded.get("result")}
                extra["truncated"] = truncated or cut
                extra["errors"] = errors + problems
                self._fire(armed, frame, value, None, extra=extra)
            else:
                extra["outcome"] = {"raised": _type_name(type(exc))}
                extra["errors"] = list(errors)
                self._fire_exit(armed, frame, exc, None, extra=extra)

        gate, _, on_return, on_raise = self._sampled_calls(armed, depth, dispatch, start, finish)
        return [
            (Point.ENTRY, None, gate.hook),
            *_exit_hooks(armed.code, on_return, on_raise),
        ]

    def _lines_hooks(
        self, armed: _Armed, depth: int, dispatch: frozenset[int]
    ) -> list[tuple[Point, int | None, Hook]]:
        """A lines probe: which lines of the function each sampled call ran.

        A hook on every line that reports a line event (sensor.inject.lines, as sys.settrace
        would), each behind the probe's switch: between samples a line costs an inline test
        and no call on the bytecode and hybrid backends.
        """
        from sensor.inject.lines import LineModel

        code = armed.code
        assert code is not None
        model = LineModel(code)
        lines = sorted(line for line in model.lines() if model.refusal(line) is None)
        described = _describe_lines(code, model)
        getframe = sys._getframe

        def start(frame: Any) -> Any:
            return set()

        def finish(frame: Any, ran: Any, value: object, exc: BaseException | None) -> None:
            probe = armed.probe
            info = dict(described)
            info["ran"] = sorted(ran)
            unobserved = armed.unobserved
            exception = None if exc is None else _exception_info(exc, probe.limits.capture)
            if exception is not None:
                known = _known_secrets(frame, None, exc)
                if known is not None:
                    exception = _scrub_known(exception, known)
            hit = Hit(
                probe_id=probe.id,
                signature=armed.signature,
                kind=armed.kind,
                location=armed.location,
                ts=time.time(),
                hit_id=self._next_hit_id(),
                thread=_thread_name(),
                lines=info,
                exception=exception,
                errors=list(unobserved) if unobserved else None,
            )
            self._deliver(armed, hit)

        gate, switch, on_return, on_raise = self._sampled_calls(
            armed, depth, dispatch, start, finish
        )
        pending = armed.pending
        hooks: list[tuple[Point, int | None, Hook]] = [(Point.ENTRY, None, gate.hook)]
        for line in lines:

            def on_line(line: int = line) -> None:
                if not switch.on or (SENSOR_WORK and get_ident() in SENSOR_WORK):
                    return
                try:
                    frame: Any = getframe(depth)
                    if dispatch and id(frame.f_code) in dispatch:
                        frame = frame.f_back
                    found = pending.get(id(frame))
                    if found is not None:
                        found[1].add(line)
                except Exception as error:
                    armed.error("line hook failed", error)

            hooks.append((Point.LINE, line, switched(on_line, switch)))
        hooks += _exit_hooks(code, on_return, on_raise)
        return hooks

    def _disarm(self, armed: _Armed) -> None:
        armed.pending.clear()
        for gate in armed.gates:
            gate.disarm()
        if self._backend is not None:
            with self._backend.change():  # one code swap for all the probe's hooks
                for handle in armed.handles:
                    try:
                        self._backend.disarm(handle)
                    except Exception:
                        log.exception("sensor: removing a hook of probe %s failed", armed.probe.id)
        armed.handles = []

    def _status(self, armed: _Armed) -> ProbeStatus:
        skipped_rate = sum(gate.counts()[1] for gate in armed.gates)
        return ProbeStatus(
            probe_id=armed.probe.id,
            state=armed.state,
            reason=_clean(armed.reason),
            hits=armed.hits(),
            drops=armed.drops,
            skipped_rate=skipped_rate,
            skipped_condition=armed.skipped_condition,
            errors=armed.errors,
            backend=self.backend_name,
            updated_at=armed.updated_at,
            evaluations=armed.evaluations + _fast_count(armed, "evaluations"),
            violations=armed.violations + _fast_count(armed, "violations"),
            exceptions=0 if armed.exceptions is None else tally_count(armed.exceptions),
            skipped_budget=0 if armed.account is None else armed.account.skipped_count(),
            expect_errors=armed.expect_errors + _fast_count(armed, "expect_errors"),
            skipped_closed=sum(gate.closed_count() for gate in armed.gates),
            **_novel_counts(armed),
        )

    # -- pending probes and the import hook ------------------------------------------------

    def _pending(self) -> list[_Armed]:
        return [a for a in self._probes.values() if a.state is ProbeState.PENDING]

    def _wants(self, fullname: str) -> bool:
        for armed in list(self._probes.values()):
            if armed.state is not ProbeState.PENDING:
                continue
            loc = armed.probe.location
            if loc.module == fullname:
                return True
            if loc.path is not None:
                stem = os.path.basename(loc.path)[:-3]
                last = fullname.rpartition(".")[2]
                if stem == last or (
                    stem == "__init__" and loc.path.endswith(last + "/__init__.py")
                ):
                    return True
        return False

    def _on_import(self, module: ModuleType) -> None:
        with self._lock:
            filename = module_file(module)
            for armed in self._pending():
                loc = armed.probe.location
                if loc.module == module.__name__ or (
                    loc.path is not None and path_matches(filename, loc.path)
                ):
                    self._arm(armed, module)
            self._update_watcher()

    def _update_watcher(self) -> None:
        if self._pending():
            if self._watcher is None:
                self._watcher = ImportWatcher(self._wants, self._on_import)
            self._watcher.install()
        elif self._watcher is not None:
            self._watcher.uninstall()
            self._watcher = None

    # -- requests from hook threads --------------------------------------------------------

    def _request(self, probe_id: str, why: str) -> None:
        # Stop the hook at once (a flag, no lock); the hooks come out at the next API call.
        armed = self._probes.get(probe_id)
        if armed is not None:
            for gate in armed.gates:
                gate.disarm()
        self._requests.append((probe_id, why))

    def _process_requests_nowait(self) -> None:
        if self._requests and self._lock.acquire(blocking=False):
            try:
                self._process_requests()
            finally:
                self._lock.release()

    def _process_requests(self) -> None:
        while self._requests:
            probe_id, why = self._requests.popleft()
            armed = self._probes.get(probe_id)
            if armed is None or armed.state is not ProbeState.INSTALLED:
                continue
            reason = {
                "expired": "disabled: the probe expired (limits.expires_at passed)",
                "max_hits": f"disabled: reached max_hits ({armed.probe.limits.max_hits})",
            }.get(why, why)
            self._disarm(armed)
            armed.set_state(ProbeState.DISABLED, reason)
        # Aggregated kinds check expiry and max hits here, off their one-call hot path.
        now = time.time()
        for armed in self._probes.values():
            if armed.state is not ProbeState.INSTALLED or armed.gates:
                continue
            limits = armed.probe.limits
            if limits.expires_at is not None and now >= limits.expires_at:
                self._disarm(armed)
                armed.set_state(
                    ProbeState.DISABLED, "disabled: the probe expired (limits.expires_at passed)"
                )
            elif limits.max_hits is not None and armed.hits() >= limits.max_hits:
                self._disarm(armed)
                armed.set_state(
                    ProbeState.DISABLED, f"disabled: reached max_hits ({limits.max_hits})"
                )

    # -- the fused hot path of an expectation (sensor.hotpath) ------------------------------

    def _fast_gate(
        self,
        armed: _Armed,
        depth: int,
        dispatch: frozenset[int],
        on_stop: Callable[[str], None],
    ) -> FastExpectGate:
        from sensor.hotpath import FastExpectGate  # with sensor.expressions: at placement only

        probe = armed.probe
        compiled = armed.compiled
        assert compiled is not None
        assert compiled.expect is not None
        assert armed.account is not None
        point = probe.location.point
        value_name = {Point.RETURN: "result", Point.EXCEPTION: "exception"}.get(point)
        # Compiled again with the probe's value in the evaluation state, so that the frame's
        # locals are read in place (the copy the slow path makes is for captures only). A
        # backend that can passes the values of the locals it reads to the hook (LOAD_FAST
        # where they are certainly bound, see sensor.inject.bound): then no frame is read.
        local_names = tuple(sorted(compiled.expect.names - {value_name}))
        expect = _expressions().compile(
            probe.expect,
            max_steps=compiled.expect.max_steps,
            max_seconds=compiled.expect.max_seconds,
            slots=() if value_name is None else (value_name,),
        )
        return FastExpectGate(
            expr=expect,
            value_name=value_name,
            local_names=local_names,
            slow=functools.partial(self._fast_slow, armed),
            failed=functools.partial(armed.error, "hit failed"),
            depth=depth,
            dispatch=dispatch,
            budget=self._budget,
            **self._expect_limits(armed, on_stop),
        )

    def _expect_limits(self, armed: _Armed, on_stop: Callable[[str], None]) -> dict[str, Any]:
        """What both expectation gates (ExpectGate, FastExpectGate) take from the probe."""
        probe = armed.probe
        return {
            "eval_rate": probe.eval_rate,
            "violation_rate": probe.violation_rate,
            "pass_rate": probe.rate if probe.kind is ProbeKind.SNAPSHOT else None,
            "pass_burst": probe.limits.burst,
            "max_hits": probe.limits.max_hits,
            "expires_at": probe.limits.expires_at,
            "on_stop": on_stop,
            "waker": self._waker,
            "account": armed.account,
            "hits": armed.hit_count,
        }

    def _fast_slow(
        self, armed: _Armed, frame: Any, value: object, outcome: str, error: str | None
    ) -> None:
        """The hit of a firing the hot path decided to capture (as ``_fire`` builds it)."""
        probe = armed.probe
        point = probe.location.point
        # A copy: writing to frame.f_locals would change the program's variables.
        ns: dict[str, object] = dict(frame.f_locals)
        if point is Point.RETURN and value is not NOTHING:
            ns["result"] = value
        elif point is Point.EXCEPTION and value is not NOTHING:
            ns["exception"] = value
        if outcome == "violation":
            expect = {"ok": None if error else False, "error": _clean(error)}
        elif outcome == "novel":  # refused by the pass bucket, admitted as a new value class
            expect = {"ok": True, "error": None, "sampled": "novel"}
        else:
            expect = {"ok": True, "error": None}
        exception: dict[str, Any] | None = None
        if point is Point.EXCEPTION and isinstance(value, BaseException):
            exception = _exception_info(value, probe.limits.capture)
        line = _hit_line(frame, value) if point is Point.EXCEPTION else frame.f_lineno
        raised = value if exception is not None else None
        self._emit(
            armed, frame, ns, [], expect=expect, exception=exception, line=line, raised=raised
        )

    # -- the slow path of one hit (admitted by the gate) -----------------------------------

    def _make_fire(
        self,
        armed: _Armed,
        depth: int,
        dispatch: frozenset[int],
        *,
        exit: bool = False,
        fire_frame: Callable[..., bool | None] | None = None,
    ) -> Callable[..., bool | None]:
        getframe = sys._getframe
        budget = self._budget
        if fire_frame is None:
            fire_frame = self._fire_exit if exit else self._fire
        probe_id = armed.probe.id
        account = armed.account
        assert account is not None

        def fire(value: object, admit: Callable[..., bool | str] | None = None) -> bool | None:
            # The budget's clock: wall time (cheap) unless a window overflowed (see CpuBudget).
            clock = budget.clock
            t0 = clock()
            try:
                frame: Any = getframe(depth)
                if dispatch and id(frame.f_code) in dispatch:
                    frame = frame.f_back  # called through the hybrid's monitoring callback
                return fire_frame(armed, frame, value, admit)
            except Exception as exc:
                armed.error("hit failed", exc)
                return False
            finally:
                over = budget.spend(account, clock() - t0, clock)
                if over is not None:
                    self._request(probe_id, over)

        return fire

    def _fire(
        self,
        armed: _Armed,
        frame: Any,
        value: object,
        admit: Callable[..., bool | str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> bool | None:
        """Produce the hit of one admitted firing: True, False (nothing), None (not evaluated).

        ``admit(violated)`` (probes with ``expect``) decides after the evaluation whether this
        firing is captured; nothing before it depends on the capture.
        """
        probe = armed.probe
        compiled = armed.compiled
        assert compiled is not None
        point = probe.location.point
        # A copy: writing to frame.f_locals would change the program's variables.
        ns: dict[str, object] = dict(frame.f_locals)
        if point is Point.RETURN and value is not NOTHING:
            ns["result"] = value
        elif point is Point.EXCEPTION and value is not NOTHING:
            ns["exception"] = value
        f_globals = frame.f_globals
        errors: list[str] = []
        if compiled.condition is not None:
            ok, err = _truth(compiled.condition, ns, f_globals)
            if err is not None:
                errors.append(armed.error("condition", RuntimeError(err)))
                return None
            if not ok:
                armed.skipped_condition += 1
                return None
        expect: dict[str, Any] | None = None
        if compiled.expect is not None:
            ok, err = _truth(compiled.expect, ns, f_globals)
            armed.evaluations += 1
            violated = ok is not True
            if violated:
                armed.violations += 1
                if err is not None:
                    armed.expect_errors += 1
            admitted: bool | str = True
            if admit is not None:
                admitted = admit(violated, ns)
                if not admitted:
                    return False
            elif probe.kind is ProbeKind.EXPECT and not violated:
                return False
            expect = {"ok": ok, "error": _clean(err)}
            if admitted == "novel":  # refused by the pass bucket, admitted as a new value class
                expect["sampled"] = "novel"
        exception: dict[str, Any] | None = None
        if point is Point.EXCEPTION and isinstance(value, BaseException):
            exception = _exception_info(value, probe.limits.capture)
        line = _hit_line(frame, value) if point is Point.EXCEPTION else frame.f_lineno
        self._emit(
            armed,
            frame,
            ns,
            errors,
            expect=expect,
            exception=exception,
            line=line,
            extra=extra,
            raised=value if exception is not None else None,
        )
        return True

    def _fire_exit(
        self,
        armed: _Armed,
        frame: Any,
        exc: object,
        admit: Callable[..., bool | str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> bool | None:
        """The hit of an exception leaving a function at a ``@return`` probe.

        No ``result`` exists: what reads it (a capture, a condition, the template, ``expect``)
        is left out rather than failed, and the expectation, which is about the returned value,
        is not evaluated. The rest is as at a return: the captures, the condition and the
        message, with the exception and the line it left from.
        """
        compiled = armed.compiled
        assert compiled is not None
        ns: dict[str, object] = dict(frame.f_locals)
        ns.pop("result", None)  # a local of that name is not the return value
        f_globals = frame.f_globals
        errors: list[str] = []
        if compiled.condition is not None and not _reads_result(compiled.condition):
            ok, err = _truth(compiled.condition, ns, f_globals)
            if err is not None:
                errors.append(armed.error("condition", RuntimeError(err)))
                return None
            if not ok:
                armed.skipped_condition += 1
                return None
        exception = None
        if isinstance(exc, BaseException):
            exception = _exception_info(exc, armed.probe.limits.capture)
        self._emit(
            armed,
            frame,
            ns,
            errors,
            exception=exception,
            line=_hit_line(frame, exc),
            exit=True,
            extra=extra,
            raised=exc if exception is not None else None,
        )
        return True

    def _emit(
        self,
        armed: _Armed,
        frame: Any,
        ns: dict[str, object],
        errors: list[str],
        *,
        expect: dict[str, Any] | None = None,
        exception: dict[str, Any] | None = None,
        line: int | None,
        exit: bool = False,
        extra: Mapping[str, Any] | None = None,
        raised: object = None,
    ) -> None:
        """Render, capture, encode and deliver one hit (``exit``: at an exception exit;
        ``raised``: the exception the hit describes, whose deeper frames' secrets are hidden too).

        ``extra`` (replay probes): ``arguments``, ``outcome``, ``truncated`` and ``errors`` of
        the call, read at its entry and at its end.
        """
        probe = armed.probe
        compiled = armed.compiled
        assert compiled is not None
        f_globals = frame.f_globals
        message: str | None = None
        if compiled.template is not None and not (exit and _reads_result(compiled.template)):
            try:
                message = str(compiled.template.render(ns, f_globals))
            except Exception as exc:
                errors.append(armed.error("template", exc))
        values: dict[str, object] = {}
        if compiled.captures:
            for name, text, expr in compiled.captures:
                if expr is None:
                    if text in ns:
                        values[name] = ns[text]
                    elif not (exit and text == "result"):
                        errors.append(f"capture {name!r}: no name {text!r} at this point")
                elif exit and _reads_result(expr):
                    continue  # about the returned value: absent at an exception exit
                else:
                    try:
                        values[name] = expr.evaluate(ns, f_globals)
                    except Exception as exc:
                        errors.append(f"capture {name!r}: {type(exc).__name__}: {exc}")
        elif armed.capture_all:
            values = ns
        captures: dict[str, Any] | None = None
        truncated = False
        if values:
            captures, truncated, capture_errors = _capture(values, probe.limits.capture)
            errors.extend(capture_errors)
        if exception is not None or _has_secret_locals(armed, frame):
            # The exception may quote a value the frame holds under a secret name (int() of a
            # password), and the program may have copied it under another name (`raw =
            # password.encode()`, `{password: user}`, `MyStr(password)`): look for those
            # values in everything this hit carries.
            known = _known_secrets(ns, (captures, message, exception, errors), raised)
            if known is not None:
                captures, message, exception, errors = _scrub_known(
                    (captures, message, exception, errors), known
                )
        hit = Hit(
            probe_id=probe.id,
            signature=armed.signature,
            kind=armed.kind,
            location=armed.location,
            ts=time.time(),
            hit_id=self._next_hit_id(),
            line=line,
            thread=_thread_name(),
            captures=captures,
            expect=expect,
            exception=exception,
            message=message,
            truncated=truncated,
            errors=[_clean(e) for e in errors] or None,
        )
        if extra is not None:
            hit.arguments = extra.get("arguments")
            hit.outcome = extra.get("outcome")
            hit.truncated = bool(truncated or extra.get("truncated"))
            more = [_clean(str(e)) for e in extra.get("errors") or ()]
            if more:
                hit.errors = (hit.errors or []) + more
        self._deliver(armed, hit)

    def _deliver(self, armed: _Armed, hit: Hit) -> None:
        if armed.on_hit is not None:
            try:
                armed.on_hit(hit)
            except Exception as exc:
                armed.error("on_hit callback", exc)
            return
        if len(self._sink) >= self._sink_size:
            self._dropped += 1
            armed.drops += 1
            return
        self._sink.append(hit)

    def _next_hit_id(self) -> str:
        return f"{self._prefix}-{next(self._seq)}"

    def _renew_prefix(self) -> None:
        self._prefix = os.urandom(4).hex()

    def _after_fork_in_child(self) -> None:
        # Only the forking thread survives: a lock another thread held at the fork would stay
        # held for ever in the child. Renew every lock of the engine and its backend.
        self._lock = threading.RLock()
        self._budget.after_fork_in_child()
        self._waker.after_fork_in_child()
        if self._backend is not None:
            self._backend.after_fork_in_child()
        self._renew_prefix()


# -- helpers -----------------------------------------------------------------------------------


def _key_names(armed: _Armed) -> tuple[str, ...]:
    """The names whose value classes may key a passing firing for novelty (see guards.Novelty):
    those the expectation reads. ExpectGate leaves out the ones that hold a secret under the
    redaction rules in force (guards.KeyNames), whenever the rules change.
    """
    compiled = armed.compiled
    if compiled is None or compiled.expect is None:
        return ()
    return tuple(sorted(compiled.expect.names))


def _fast_count(armed: _Armed, name: str) -> int:
    """A counter the hot path keeps as a tally (sensor.hotpath.FastExpectGate), summed."""
    return sum(tally_count(getattr(g, name)) for g in armed.gates if hasattr(g, name))


def _novel_counts(armed: _Armed) -> dict[str, int]:
    """The rare-state sampling counters of a probe's gates (see guards.Novelty), summed."""
    totals = dict.fromkeys(("novel_classes", "novel_admitted", "novel_refused", "novel_full"), 0)
    for gate in armed.gates:
        novelty = getattr(gate, "novelty", None)
        if novelty is not None:
            for name, value in novelty.counts().items():
                totals[name] += value
    return totals


def _truth(
    expr: Any, ns: Mapping[str, object], f_globals: Mapping[str, object]
) -> tuple[bool | None, str | None]:
    """Evaluate to a truth value without running user code (a user ``__bool__`` is refused)."""
    try:
        value = expr.evaluate(ns, f_globals)
    except Exception as exc:
        return None, f"{type(exc).__name__}: {exc}"
    if type(value) is bool:
        return value, None
    if type(value) in _PLAIN_TRUTH:
        return bool(value), None
    return None, f"{expr.source!r} gave a {_type_name(type(value))}, expected a bool"


# co_flags of code whose frames are generators or coroutines (inspect.CO_GENERATOR,
# CO_COROUTINE, CO_ITERABLE_COROUTINE, CO_ASYNC_GENERATOR; inspect is too dear to import here).
_GENERATOR_FLAGS = 0x20 | 0x80 | 0x100 | 0x200
_ASYNC_GENERATOR_FLAG = 0x200


def _exit_filter(hook: Hook, tally: Any, code: CodeType | None) -> Hook:
    """The exception hook of a ``@return`` probe: which exits count, counted before sampling.

    An exit is an exception exit when the exception is an ``Exception``: ``GeneratorExit``
    (a generator closed), ``asyncio.CancelledError`` (a task cancelled), ``KeyboardInterrupt``
    and ``SystemExit`` are not the function failing. ``StopIteration`` and
    ``StopAsyncIteration`` leaving a plain function are the iterator protocol's normal end, not
    a failure; leaving a generator or coroutine frame they are one (PEP 479 turns them into the
    ``RuntimeError`` the caller gets: Python 3.12+ does it inside the frame, 3.11 after it, so
    the same ``RuntimeError`` is reported on every version).
    """
    flags = 0 if code is None else code.co_flags
    generator = bool(flags & _GENERATOR_FLAGS)
    kind = (
        "async generator"
        if flags & _ASYNC_GENERATOR_FLAG
        else "generator"
        if flags & 0x20
        else "coroutine"
    )

    def on_exit(exc: object) -> None:
        if SENSOR_WORK and get_ident() in SENSOR_WORK:
            return
        tp = type(exc)
        if not issubclass(tp, Exception):
            return
        if issubclass(tp, (StopIteration, StopAsyncIteration)):
            if not generator:
                return
            exc = _pep479(exc, kind)
        next(tally)
        hook(exc)

    return on_exit


_CO_VARARGS = 0x04
_CO_VARKEYWORDS = 0x08


def _arguments(frame: Any, limits: Any) -> tuple[dict[str, Any], bool, list[str]]:
    """The call's arguments read at entry, encoded at once: ``(arguments, truncated, errors)``.

    Encoded here, on the host thread, and nothing of the frame is kept: the hit never holds a
    reference past the call, and a mutation of an argument later in the call is not seen.
    """
    code = frame.f_code
    flags = code.co_flags
    count = code.co_argcount + code.co_kwonlyargcount
    varargs = code.co_varnames[count] if flags & _CO_VARARGS else None
    count += 1 if varargs is not None else 0
    varkw = code.co_varnames[count] if flags & _CO_VARKEYWORDS else None
    count += 1 if varkw is not None else 0
    names = code.co_varnames[:count]
    local = frame.f_locals  # at entry: the arguments (a copy on 3.11, a proxy on 3.13)
    values = {name: local[name] for name in names if name in local}
    encoded, truncated, errors = _capture(values, limits)
    arguments = {
        "values": encoded,
        "names": list(names),
        "positional": code.co_argcount,
        "posonly": code.co_posonlyargcount,
        "varargs": varargs,
        "varkw": varkw,
    }
    return arguments, truncated, list(errors)


def _evict_stale(pending: dict[int, Any]) -> bool:
    """Forget sampled calls whose end was not seen for _PENDING_MAX_AGE; True if room was made."""
    horizon = time.monotonic() - _PENDING_MAX_AGE
    for key, (started, _) in list(pending.items()):
        if started < horizon:
            pending.pop(key, None)
    return len(pending) < _MAX_PENDING


def _whole_calls_refusal(probe: Probe, code: CodeType) -> str | None:
    """Why a replay or lines probe cannot observe whole calls of ``code``, or None."""
    if not (probe.replay or probe.kind is ProbeKind.LINES):
        return None
    flags = code.co_flags
    if not flags & _GENERATOR_FLAGS:
        return None
    kind = (
        "an async generator"
        if flags & _ASYNC_GENERATOR_FLAG
        else "a generator"
        if flags & 0x20
        else "a coroutine"
    )
    if probe.replay:
        return (
            f"replay needs a plain function: {code.co_qualname} is {kind}, whose call returns "
            "before its body runs (replaying it would mean driving its iteration or event "
            "loop); mark a plain function it calls, or drop replay=True"
        )
    return (
        f"a lines probe needs a plain function: {code.co_qualname} is {kind}, whose body runs "
        "across many resumptions; probe a plain function it calls"
    )


def _describe_lines(code: CodeType, model: Any) -> dict[str, Any]:
    """What every lines hit says about the code it observed: its span and a digest of its text.

    Computed once at placement: the plugin compares line numbers only when the digest matches
    the source the tests run (other code means other line numbers).
    """
    lines = model.lines()
    first = min(lines) if lines else code.co_firstlineno
    last = max(lines) if lines else code.co_firstlineno
    linecache.checkcache(code.co_filename)
    text = "\n".join(
        linecache.getline(code.co_filename, n).rstrip() for n in range(first, last + 1)
    )
    return {
        "first": first,
        "last": last,
        "source": hashlib.sha256(text.encode()).hexdigest()[:16],
    }


def _note_unobserved(armed: _Armed, unobserved: list[str]) -> None:
    # Said in every hit of the probe (errors), and once in the log.
    notes = [f"line {text}" for text in unobserved[:20]]
    if len(unobserved) > 20:
        notes.append(f"... and {len(unobserved) - 20} more lines not observed")
    armed.unobserved = notes
    log.info("sensor probe %s: lines not observed: %s", armed.probe.id, "; ".join(notes))


def _pep479(exc: Any, kind: str) -> RuntimeError:
    """The RuntimeError a generator's StopIteration becomes for its caller (PEP 479)."""
    stop = "StopAsyncIteration" if issubclass(type(exc), StopAsyncIteration) else "StopIteration"
    error = RuntimeError(f"{kind} raised {stop}")
    error.__cause__ = exc
    return error.with_traceback(_TRACEBACK(exc))


def _counting(hook: Hook, tally: Any) -> Hook:
    """The hook of an ``@exception`` probe: every firing counted before any sampling."""

    def on_exception(exc: object) -> None:
        if SENSOR_WORK and get_ident() in SENSOR_WORK:
            return
        next(tally)
        hook(exc)

    return on_exception


def _exit_hooks(
    code: CodeType | None, on_return: Hook, on_raise: Hook
) -> list[tuple[Point, int | None, Hook]]:
    """The exit hooks of a sampled call: a function that always raises has no return to hook."""
    hooks: list[tuple[Point, int | None, Hook]] = []
    if code is None or _returns(code):
        hooks.append((Point.RETURN, None, on_return))
    hooks.append((Point.EXCEPTION, None, on_raise))
    return hooks


def _returns(code: CodeType) -> bool:
    """True when ``code`` has a return instruction (a function that always raises has none)."""
    import dis  # placement only, never on the hot path

    return any(ins.opname in _RETURN_OPS for ins in dis.get_instructions(code))


_RETURN_OPS = frozenset({"RETURN_VALUE", "RETURN_CONST"})


def _reads_result(expr: Any) -> bool:
    """True when a compiled expression or template reads the name ``result``."""
    names = getattr(expr, "names", None)
    if names is not None:
        return "result" in names
    return bool(_RESULT_RE.search(str(getattr(expr, "source", ""))))


_RESULT_RE = re.compile(r"(?<![\w.])result\b")

# threading._active: ident -> Thread. Read (never changed) to name the thread of a hit without
# calling threading.current_thread() and the Thread.name property, Python code of the
# threading module where a probe may be (it would fire inside this probe's own work).
_ACTIVE_THREADS: Mapping[int, Any] = getattr(threading, "_active", {})


def _thread_name() -> str | None:
    thread = _ACTIVE_THREADS.get(get_ident())
    if thread is None:
        return None
    try:
        name = object.__getattribute__(thread, "__dict__").get("_name")
    except Exception:
        return None
    return name if type(name) is str else None


@overload
def _clean(text: str) -> str: ...
@overload
def _clean(text: None) -> None: ...
def _clean(text: str | None) -> str | None:
    """The one redaction every error text passes before it leaves the engine (hit ``errors``,
    ``expect.error``, status reasons): ``sensor.redaction.redact_error``. None stays None."""
    if text is None:
        return None
    from sensor.redaction import redact_error

    return redact_error(text)


def _hit_line(frame: Any, exc: object) -> int | None:
    """The line where the exception left ``frame`` (the handler's own line would mislead).

    For the ``RuntimeError`` a generator's ``StopIteration`` becomes (PEP 479; Python 3.12+
    raises it at the function's first line), the line of the ``StopIteration``.
    """
    if not isinstance(exc, BaseException):
        return int(frame.f_lineno)
    chain = [exc]
    # Through the C descriptors: a user exception class may shadow these with a property.
    cause = _CAUSE(exc)
    if type(exc) is RuntimeError and issubclass(type(cause), (StopIteration, StopAsyncIteration)):
        chain.insert(0, cause)
    for candidate in chain:
        tb = _TRACEBACK(candidate)
        line: int | None = None
        while tb is not None:
            if tb.tb_frame is frame:
                line = tb.tb_lineno
            tb = tb.tb_next
        if line is not None:
            return line
    return int(frame.f_lineno)


_CAUSE = BaseException.__dict__["__cause__"].__get__
_TRACEBACK = BaseException.__dict__["__traceback__"].__get__


def _exception_info(exc: BaseException, limits: Any) -> dict[str, Any]:
    """``{"type", "message"}`` read without running user code (no ``__str__``, no ``args``
    property, no metaclass attribute hooks): the encoder's safe reader does the work."""
    from sensor.capture.encode import exception_info

    return dict(exception_info(exc, limits))


def _has_secret_locals(armed: _Armed, frame: Any) -> bool:
    """Whether the frame's code has a variable with a secret name (its values are then looked
    for in the hit's other texts). Decided once per code object and rule change (the epoch
    token, which every change of the redactor or its rules replaces): a hit in code without
    one pays two identity tests. Never raises."""
    try:
        code = frame.f_code
        cached = armed.secret_locals
        token = _epoch.token
        if cached is not None and cached[0] is code and cached[1] is token:
            return cached[2]
        red = _redactor()
        if red is None:
            return False
        names = code.co_varnames + code.co_cellvars + code.co_freevars
        found = any(red.is_secret_name(name) for name in names)
        armed.secret_locals = (code, token, found)
        return found
    except Exception:
        return False


def _known_secrets(
    ns: Mapping[str, object] | FrameType, within: object = None, raised: object = None
) -> Any:
    """The pattern of the values ``ns`` (or a frame's locals) holds under secret names, or
    None; None too when ``within`` (the hit's parts) holds none of them. With ``raised`` (the
    hit's exception), the secret-named values of the frames it passed through below this one
    count too: `int(password)` two calls down quotes a value this frame may hold under an
    innocent name, or not at all. Never raises."""
    try:
        from sensor.capture.encode import known_secrets

        if type(ns) is FrameType:
            ns = dict(ns.f_locals)
        if isinstance(raised, BaseException):
            ns = _with_deeper_secrets(ns, raised)
        return known_secrets(ns, within=within)
    except Exception:
        return None


#: Frames below the probed one (and exceptions in a chain) whose locals are read for secrets.
_DEEPER_FRAMES = 16
_CHAINED = 3


def _with_deeper_secrets(ns: Mapping[str, object], raised: BaseException) -> dict[str, object]:
    """``ns`` and the secret-named locals (and the dicts) of the frames ``raised`` and the
    exceptions it chains passed through: each frame's secret-named values in a dict of their
    own (``known_secrets`` reads the secret keys of the dicts it is given), so that no frame's
    value hides another's. Reads frame locals only: no user code runs."""
    red = _redactor()
    out = dict(ns)
    if red is None:
        return out
    seen = 0
    exc: BaseException | None = raised
    for _ in range(_CHAINED):
        if exc is None:
            break
        tb = exc.__traceback__
        while tb is not None and seen < _DEEPER_FRAMES:
            seen += 1
            secrets: dict[str, object] = {}
            for name, value in dict(tb.tb_frame.f_locals).items():
                if type(name) is not str:
                    continue
                if type(value) is dict:
                    out[f"#{seen}.{name}"] = value
                elif red.is_secret_name(name):
                    secrets[name] = value
            if secrets:
                out[f"#{seen}"] = secrets
            tb = tb.tb_next
        exc = exc.__cause__ or exc.__context__
    return out


def _scrub_known(value: Any, known: Any) -> Any:
    """``value`` with every value of ``known`` replaced (see ``scrub_known``); a tuple of parts
    is scrubbed part by part."""
    try:
        from sensor.capture.encode import scrub_known
    except Exception:  # the encoder is what made `known`: this cannot happen, but never raise
        return value
    if type(value) is tuple:
        return tuple(scrub_known(part, known) for part in value)
    return scrub_known(value, known)


def _source_mismatch(probe: Probe, code: CodeType) -> str | None:
    if probe.source_hash is None and probe.source_line is None:
        return None
    filename = code.co_filename
    linecache.checkcache(filename)
    if probe.location.point is Point.LINE and probe.location.line is not None:
        lineno = probe.location.line
    else:
        # A function's target line is its ``def`` line (co_firstlineno may be a decorator).
        lineno = code.co_firstlineno
        for candidate in range(code.co_firstlineno, code.co_firstlineno + 50):
            text = linecache.getline(filename, candidate).strip()
            if text.startswith(("def ", "async def ")):
                lineno = candidate
                break
    running = linecache.getline(filename, lineno).strip()
    if not running:
        return f"source check failed: cannot read line {lineno} of {filename}"
    if probe.source_line is not None and running != probe.source_line.strip():
        return (
            f"source mismatch at {filename}:{lineno}: the probe expects "
            f"{probe.source_line.strip()!r}, the running code has {running!r}"
        )
    if probe.source_hash is not None:
        digest = hashlib.sha256(running.encode()).hexdigest()
        if digest != probe.source_hash:
            return (
                f"source mismatch at {filename}:{lineno}: the probe expects a line hashing to "
                f"{probe.source_hash[:16]}..., the running code has {running!r} "
                f"(sha256 {digest[:16]}...)"
            )
    return None


def _make_timer(
    depth: int, dispatch: frozenset[int] = frozenset()
) -> tuple[Hook, Hook, Callable[..., list[float]]]:
    """Start and stop hooks keyed by the target frame, and a reader of the aggregate."""
    getframe = sys._getframe
    perf = time.perf_counter_ns
    starts: dict[int, int] = {}
    # count, sum_ns, min_ns, max_ns, total count (never reset)
    agg: list[float] = [0, 0, math.inf, 0, 0]

    def start(value: object = NOTHING) -> None:
        if SENSOR_WORK and get_ident() in SENSOR_WORK:
            return
        try:
            if len(starts) >= _MAX_TIMER_STARTS:
                starts.clear()  # calls that raised never stopped; forget them
            frame: Any = getframe(depth)
            if dispatch and id(frame.f_code) in dispatch:
                frame = frame.f_back
            starts[id(frame)] = perf()
        except Exception:
            return

    def stop(value: object = NOTHING) -> None:
        end = perf()
        if SENSOR_WORK and get_ident() in SENSOR_WORK:
            return
        try:
            frame: Any = getframe(depth)
            if dispatch and id(frame.f_code) in dispatch:
                frame = frame.f_back
            begun = starts.pop(id(frame), None)
            if begun is None:
                return
            took = end - begun
            agg[0] += 1
            agg[1] += took
            if took < agg[2]:
                agg[2] = took
            if took > agg[3]:
                agg[3] = took
            agg[4] += 1
        except Exception:
            return

    def read(reset: bool = False) -> list[float]:
        values = list(agg)
        if reset:
            agg[0], agg[1], agg[2], agg[3] = 0, 0, math.inf, 0
        return values

    return start, stop, read


# -- the process-wide engine -------------------------------------------------------------------

_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()
_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine() -> Engine:
    """The process-wide engine, created on first use.

    Its CPU budget comes from ``SENSOR_CPU_BUDGET`` (a fraction of one CPU, default 0.01).
    A bad value is logged and the default is used: this runs inside the host, where
    :func:`sensor.config.load_config` (at ``start()``) is the place that refuses it.
    """
    global _engine
    with _engine_lock:
        if _engine is None or _engine._closed:
            _engine = Engine(cpu_budget=_cpu_budget_from_env())
        return _engine


def _cpu_budget_from_env() -> float:
    from sensor.config import DEFAULT_CPU_BUDGET, cpu_budget_from_env
    from sensor.errors import ConfigError

    try:
        return cpu_budget_from_env(os.environ)
    except ConfigError as exc:
        log.warning("sensor: %s; using the default CPU budget %s", exc, DEFAULT_CPU_BUDGET)
        return DEFAULT_CPU_BUDGET


# Locks taken before a fork (bounded wait) so that the child sees no half-made change, and
# released in the parent; the child always gets new ones.
_FORK_WAIT = 0.1
_held_at_fork: list[Any] = []


def _before_fork() -> None:
    locks: list[Any] = [_engine_lock] + [engine._lock for engine in list(_ENGINES)]
    for lock in locks:
        try:
            if lock.acquire(timeout=_FORK_WAIT):
                _held_at_fork.append(lock)
        except Exception:  # never stop the host's fork
            continue


def _after_fork_in_parent() -> None:
    while _held_at_fork:
        try:
            _held_at_fork.pop().release()
        except Exception:
            continue


def _after_fork_in_child() -> None:
    global _engine_lock
    _held_at_fork.clear()  # the child's copies are replaced, not released
    _engine_lock = threading.Lock()
    # Hit ids must not collide between a pre-fork parent and its workers.
    for engine in list(_ENGINES):
        try:
            engine._after_fork_in_child()
        except Exception:
            log.exception("sensor: renewing the engine after fork failed")


# Through the sensor's ordered registry: inside the agent's lock before the fork, and renewed
# before the agent's thread restarts in the child (see sensor._atfork).
_atfork.register(
    _atfork.ENGINE,
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)
