"""Guards that keep a probe cheap and bounded: rate limit, max hits, expiry and a CPU budget.

Every guard is checked on the host thread *before* any capture work. None of them blocks or
raises: a guard either lets the hit through, skips it (counted), or disables the probe with a
reason that ends up in the probe's status.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "GATE_FRAMES",
    "LONG_WAIT",
    "NOTHING",
    "CpuBudget",
    "ExpectGate",
    "Gate",
    "Switch",
    "Waker",
    "new_tally",
    "switch_of",
    "tally_count",
]

log = logging.getLogger("sensor.guards")

#: The value a hook receives at points that carry none (entry, line).
NOTHING: object = object()

#: Frames between a gate's ``fire`` and the backend's call of ``gate.hook``: the hook (the skip
#: path) calls the admission step, which calls ``fire``.
GATE_FRAMES = 2

#: The attribute of a gate's hook holding its (switch, skips) pair; see :func:`switch_of`.
_SWITCH_ATTR = "sensor_switch"


class Switch(list):  # type: ignore[type-arg]
    """A gate's open/closed flag: a list, empty while closed, compared and hashed by identity.

    A list, because testing its truth is C code the interpreter runs inline (a backend puts
    the switch into rebuilt bytecode as a constant). Hashed by identity, because a code
    object hashes its constants: a plain list there would make the rebuilt code unhashable
    and break any tool that keys a dict by code objects.
    """

    __slots__ = ()
    __hash__ = object.__hash__  # type: ignore[assignment]
    __eq__ = object.__eq__
    __ne__ = object.__ne__


def switch_of(hook: Callable[..., Any]) -> tuple[Switch, Any] | None:
    """A gate hook's *switch* and *skip counter*, or None for any other hook.

    The switch is a list, empty while the gate is closed (every firing would only be skipped);
    ``next(skips)`` counts one skipped firing. A backend may test the switch inline before it
    calls the hook and count the skip itself, which saves the call. The hook tests the switch
    too, so a backend that ignores it stays right.
    """
    pair = getattr(hook, _SWITCH_ATTR, None)
    return pair if isinstance(pair, tuple) else None


def new_tally() -> Any:
    """A hot-path counter: ``itertools.repeat(None, sys.maxsize)``; ``next(tally)`` counts one.

    Its ``__next__`` counts down a C integer and returns ``None``: nothing is allocated per
    count (an ``itertools.count`` allocates the int it returns, and ``n += 1`` does above 256,
    either costing more than an empty Python call). ``sys.maxsize`` counts (about 9.2e18) will
    not be reached. ``__next__`` runs in C under the GIL, so counts from several threads all
    land. Used for counter probes' hits and for gates' skipped firings.
    """
    return itertools.repeat(None, sys.maxsize)


def tally_count(tally: Any) -> int:
    """How many times ``next(tally)`` ran (the length hint is what is left to count down)."""
    return sys.maxsize - int(tally.__length_hint__())


#: A gate whose next token is at least this many seconds away *closes*: its skipped firings
#: cost one flag test instead of a clock read, and the :class:`Waker` reopens it when the token
#: is due. Shorter waits keep the clock test, so a gate causes at most 1 / LONG_WAIT wake-ups
#: per second.
LONG_WAIT = 0.02

#: The waker sleeps at most this long at a time (seconds).
_MAX_SLEEP = 60.0

#: At most this many reopenings are scheduled at once (one per closed gate); more are refused
#: and those gates keep the clock test.
MAX_SCHEDULED = 10_000


class Waker:
    """One daemon thread that reopens closed gates when their next token is due.

    A rate-limited probe on a hot line skips almost every firing: at 1 hit per second on a
    line run 100,000 times per second, 99,999 firings are skipped. Reading the clock to skip
    costs more than two empty Python calls, so after a hit whose next token is at least
    :data:`LONG_WAIT` away the gate closes (skips without reading the clock) and asks the
    waker to reopen it at that time. The first reopening starts the thread; it sleeps until
    the earliest deadline and only ever sets flags.

    Never blocks the host: :meth:`schedule` takes the lock without waiting, and when it cannot
    (contended, too many scheduled, no thread can be started) it returns False and the gate
    simply keeps testing the clock. A reopening may come late by a thread switch (a few ms),
    which only delays the next hit; it is never early.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False
        #: Reopenings done, and requests refused (the gate then kept the clock test).
        self.wakes = 0
        self.refused = 0

    def schedule(self, at: float, reopen: Callable[[], None]) -> bool:
        """Call ``reopen()`` at ``time.monotonic()`` >= ``at``; False if that cannot be promised."""
        if not self._lock.acquire(blocking=False):
            self.refused += 1
            return False
        try:
            if self._stopped or len(self._heap) >= MAX_SCHEDULED or not self._running():
                self.refused += 1
                return False
            heapq.heappush(self._heap, (at, next(self._seq), reopen))
            if self._heap[0][2] is reopen:
                self._wake.notify()
            return True
        finally:
            self._lock.release()

    def pending(self) -> int:
        """Reopenings scheduled and not yet done."""
        return len(self._heap)

    def _running(self) -> bool:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return True
        thread = threading.Thread(target=self._run, name="pytest-runtime-waker", daemon=True)
        try:
            thread.start()
        except RuntimeError:  # interpreter shutting down, or no thread can be started
            return False
        self._thread = thread
        return True

    def _run(self) -> None:
        try:
            self._serve()
        except Exception:
            # Never leave a gate closed with nobody to reopen it: open them all (they test
            # the clock again), and the next closing gate starts a new thread.
            log.exception("sensor: the rate-limit waker stopped; reopening every gate")
            with self._lock:
                self.reopen_all()

    def _serve(self) -> None:
        # The lock and condition of this thread's generation: after a fork the child renews
        # both, and a thread must never wait on a condition whose lock it does not hold.
        lock, wake, heap = self._lock, self._wake, self._heap
        with lock:
            while not self._stopped and wake is self._wake:
                now = time.monotonic()
                due = []
                while heap and heap[0][0] <= now:
                    due.append(heapq.heappop(heap)[2])
                if not due:
                    # Bounded: a far deadline (a rate of one per year) must not overflow the
                    # lock's timeout, and the loop simply looks again.
                    wake.wait(min(heap[0][0] - now, _MAX_SLEEP) if heap else None)
                    continue
                lock.release()
                try:
                    self._call(due)
                finally:
                    lock.acquire()

    def _call(self, due: list[Callable[[], None]]) -> None:
        for reopen in due:
            try:
                reopen()
                self.wakes += 1
            except Exception:  # a reopen only sets a flag; never let the thread die
                log.exception("sensor: reopening a rate-limited probe failed")

    def reopen_all(self) -> None:
        """Reopen every closed gate now (used when the thread is gone or stopping)."""
        due = [entry[2] for entry in self._heap]
        self._heap.clear()
        self._call(due)

    def stop(self) -> None:
        """Reopen every closed gate and end the thread (the engine is closing)."""
        with self._lock:
            self._stopped = True
            self._wake.notify()
            self.reopen_all()

    def after_fork_in_child(self) -> None:
        """Only the forking thread survives a fork: renew the lock, reopen every gate now."""
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._thread = None
        self.reopen_all()


class CpuBudget:
    """A global budget of sensor CPU time per one-second window, shared by all probes.

    The engine meters every non-aggregated firing (condition, expectation, capture, encoding)
    and calls :meth:`spend`. When the sensor has spent more than ``fraction`` of one CPU in
    the current one-second window, :meth:`spend` returns the id of the probe that spent the
    most in this window: the engine disables it and says why. Aggregated kinds (counter, timer)
    cost one call per hit and are not metered, so that their hot path stays one call.
    ``fraction >= 1`` turns the budget off (it may be set at any time).

    Measuring CPU, not wall time: the thread's CPU clock (``time.thread_time_ns``) is a system
    call here (about 0.8 us a read, ten times ``perf_counter_ns``), too dear for every
    evaluation. So the budget runs in two modes. In the *cheap* mode a firing is metered with
    ``perf_counter_ns``: wall time is an upper bound of the thread's CPU time, so a window under
    the limit in wall time is under it in CPU time too. When a window goes over in wall time
    (possibly only because the host thread was preempted mid-firing on a busy machine), nobody is
    disabled: the budget switches to the *precise* mode (:attr:`clock` becomes
    ``thread_time_ns``) and starts a new window; only a precise window over the limit disables
    a probe. A precise window that ends at most at half the limit goes back to the cheap mode.
    A genuinely expensive probe thus runs at most about one more second before it is disabled.
    """

    __slots__ = (
        "_fraction",
        "_lock",
        "_per_probe",
        "_spent_ns",
        "_window_start",
        "clock",
        "limit_ns",
        "switches",
    )

    def __init__(self, fraction: float = 0.01) -> None:
        self.fraction = fraction
        self._window_start = time.monotonic_ns()
        self._spent_ns = 0
        self._per_probe: dict[str, int] = {}
        #: The clock the engine reads around a firing: the cheap one until a window overflows.
        self.clock: Callable[[], int] = time.perf_counter_ns
        #: Times the budget switched to the precise clock (a window overflowed in wall time).
        self.switches = 0
        # Only the slow path (a capture or an evaluation of microseconds) takes this lock,
        # never a counter; it is never waited for (see spend), and renewed after fork.
        self._lock = threading.Lock()

    @property
    def fraction(self) -> float:
        """Share of one CPU the sensor may use per second; ``>= 1`` turns the budget off."""
        return self._fraction

    @fraction.setter
    def fraction(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"cpu_budget: got {value!r}, expected a fraction > 0 (e.g. 0.01)")
        self._fraction = float(value)
        self.limit_ns = int(min(value, 1.0) * 1e9)

    @property
    def enabled(self) -> bool:
        return self._fraction < 1.0

    @property
    def precise(self) -> bool:
        """True while firings are metered with the thread's CPU clock."""
        return self.clock is not time.perf_counter_ns

    def spend(
        self, probe_id: str, ns: int, clock: Callable[[], int] | None = None
    ) -> tuple[str, int] | None:
        """Account ``ns`` to ``probe_id``; return (probe id to disable, its spent ns) or None.

        ``clock`` is the clock that measured ``ns`` (default: the cheap one); a cheap sample
        never disables a probe by itself, it can only switch the budget to the precise clock.
        """
        if self._fraction >= 1.0:
            return None
        cheap = clock is None or clock is time.perf_counter_ns
        if cheap and self.clock is not time.perf_counter_ns:
            return None  # measured with the cheap clock just before a switch: not CPU time
        now = time.monotonic_ns()
        # Never wait on the host thread: a contended window just skips this sample.
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if now - self._window_start >= 1_000_000_000:
                if self.clock is not time.perf_counter_ns and self._spent_ns <= self.limit_ns // 2:
                    self.clock = time.perf_counter_ns
                self._window_start = now
                self._spent_ns = 0
                self._per_probe.clear()
            self._spent_ns += ns
            self._per_probe[probe_id] = self._per_probe.get(probe_id, 0) + ns
            if self._spent_ns <= self.limit_ns:
                return None
            if cheap:
                # Over in wall time: maybe only preempted. Measure CPU time from now on.
                self.clock = time.thread_time_ns
                self.switches += 1
                self._window_start = now
                self._spent_ns = 0
                self._per_probe.clear()
                return None
            worst = max(self._per_probe, key=self._per_probe.__getitem__)
            # Forget the disabled probe's share so the next one is judged on its own spending.
            spent = self._per_probe.pop(worst)
            self._spent_ns -= spent
            return worst, spent
        finally:
            self._lock.release()

    def after_fork_in_child(self) -> None:
        """Renew the lock (another thread may have held it at the fork) and the window."""
        self._lock = threading.Lock()
        self._window_start = time.monotonic_ns()
        self._spent_ns = 0
        self._per_probe.clear()

    def describe(self, spent_ns: int) -> str:
        return (
            f"disabled by the CPU budget: the sensor spent more than {self.limit_ns / 1e6:.1f} ms "
            f"of CPU time in the last second ({self._fraction:.1%} of one CPU); this probe used "
            f"{spent_ns / 1e6:.2f} ms"
        )


class _GuardedHook:
    """What both gates share: the hook the backend calls, its counters, and the off switch.

    Subclasses build the hook as one closure (the guards inline, for speed) in ``__init__``
    and hand it over with :meth:`_publish`.
    """

    __slots__ = ("_disarm", "_read", "hook")

    def _publish(
        self,
        hook: Callable[..., Any],
        read: Callable[[], tuple[int, int]],
        disarm: Callable[[], None],
    ) -> None:
        self.hook = hook
        self._read = read
        self._disarm = disarm

    def counts(self) -> tuple[int, int]:
        """(hits produced, firings skipped: by the rate limit, or for an ExpectGate by eval_rate
        plus violations not captured)."""
        return self._read()

    def disarm(self) -> None:
        self._disarm()


class Gate(_GuardedHook):
    """The guarded hot-path hook of one probe: ``gate.hook`` is what the backend calls.

    The guards run inline because a method call per guard would cost more than the whole hit
    budget: ``hook`` is the skip path (switch, armed flag, the clock against the next token),
    and only a firing that gets past it calls the admission step (expiry, max hits, the token
    bucket). Only an admitted hit calls ``fire(value)``; ``fire`` returns True when it produced
    a hit. A firing that produced nothing (condition false, expectation held) gives its token
    back, so the rate limits hits, not evaluations (those are bounded by the CPU budget).
    ``on_stop(reason)`` is called once when expiry or max hits switch the probe off; it must
    not block.

    After a hit whose next token is :data:`LONG_WAIT` or more away, the gate *closes*: its
    :class:`Switch` is emptied and ``waker`` (if given) reopens it when the token is due.
    While closed, a firing only counts a skip; the hook carries ``(switch, skips)`` (see
    :func:`switch_of`) so that a backend can do that inline, without calling the hook.
    """

    __slots__ = ()

    def __init__(
        self,
        fire: Callable[[object], object],
        *,
        rate: float | None,
        burst: int | None = None,
        max_hits: int | None = None,
        expires_at: float | None = None,
        on_stop: Callable[[str], None],
        waker: Waker | None = None,
    ) -> None:
        monotonic = time.monotonic
        limited = rate is not None
        rate_f = float(rate) if rate is not None else 0.0
        burst_f = float(burst if burst is not None else max(1.0, rate_f))
        tokens = burst_f
        last = monotonic()
        expires = math.inf if expires_at is None else monotonic() + (expires_at - time.time())
        cap = math.inf if max_hits is None else float(max_hits)
        armed = True
        hits = 0
        skips = new_tally()

        # The earliest time a token is available: a skipped firing costs one clock read and
        # one compare. The bucket itself is only refilled on admission.
        next_at = -math.inf
        # Empty while closed (until the waker reopens it): a skipped firing costs one test.
        switch = Switch((True,))
        schedule = None if waker is None or not limited else waker.schedule

        def hook(value: object = NOTHING) -> None:
            # The skip path. Few free variables on purpose: a call copies every one of them
            # into the new frame, and all of that is per-firing cost.
            if not switch:
                next(skips)
                return
            if not armed:
                return
            now = monotonic()
            if now < next_at:
                next(skips)
                return
            admit(value, now)

        def admit(value: object, now: float) -> None:
            nonlocal tokens, last, next_at, hits, armed
            if now >= expires or hits >= cap:
                armed = False
                on_stop("expired" if now >= expires else "max_hits")
                return
            if limited:
                tokens += (now - last) * rate_f
                if tokens > burst_f:
                    tokens = burst_f
                last = now
                tokens -= 1.0
                next_at = now if tokens >= 1.0 else now + (1.0 - tokens) / rate_f
            try:
                produced = fire(value)
            except Exception:
                produced = False  # fire counts its own errors; this is the last line of defence
            if produced:
                hits += 1
                if schedule is not None and next_at - now >= LONG_WAIT:
                    # Closed first: the reopening may run before schedule() returns.
                    switch.clear()
                    if not schedule(min(next_at, expires), reopen):
                        reopen()
            elif limited:
                tokens += 1.0  # nothing produced: give the token back
                next_at = now

        def reopen() -> None:
            switch[:] = (True,)  # one C operation: never two entries

        def read() -> tuple[int, int]:
            return hits, tally_count(skips)

        def disarm() -> None:
            nonlocal armed
            armed = False
            reopen()

        setattr(hook, _SWITCH_ATTR, (switch, skips))
        self._publish(hook, read, disarm)


class ExpectGate(_GuardedHook):
    """The guarded hook of a probe with an ``expect``: every firing is evaluated, within bounds.

    The expectation is the product's point: a violation on 1% of calls must be seen, so it is
    not sampled by the snapshot rate. Guards, still before any work: armed flag, expiry,
    max hits, then the *evaluation* token bucket (``eval_rate``). An admitted firing calls
    ``fire(value, admit)``; ``fire`` evaluates the condition and the expectation, then asks
    ``admit(violated)`` whether to capture: a violation takes a token of the *violation* bucket
    (``violation_rate``), a passing firing one of the *pass* bucket (the probe's own rate;
    ``pass_rate=None`` never captures a passing firing, as for kind ``expect``). ``fire``
    returns True (a hit was produced), False (evaluated, nothing produced) or None (not
    evaluated: condition false or failing, which gives the evaluation token back).
    """

    __slots__ = ()

    def __init__(
        self,
        fire: Callable[[object, Callable[[bool], bool]], object],
        *,
        eval_rate: float,
        violation_rate: float,
        pass_rate: float | None,
        pass_burst: int | None = None,
        max_hits: int | None = None,
        expires_at: float | None = None,
        on_stop: Callable[[str], None],
        waker: Waker | None = None,
    ) -> None:
        monotonic = time.monotonic
        eval_rate_f = float(eval_rate)
        eval_burst = max(1.0, eval_rate_f)
        tokens = eval_burst
        last = monotonic()
        next_at = -math.inf
        expires = math.inf if expires_at is None else monotonic() + (expires_at - time.time())
        cap = math.inf if max_hits is None else float(max_hits)
        violations = _Bucket(violation_rate, None, last)
        passes = None if pass_rate is None else _Bucket(pass_rate, pass_burst, last)
        armed = True
        hits = 0
        skips = new_tally()

        def admit(violated: bool) -> bool:
            if violated:
                if violations.take(monotonic()):
                    return True
                next(skips)  # a violation not captured: counted, never silent
                return False
            return passes is not None and passes.take(monotonic())

        switch = Switch((True,))  # as in Gate: empty while closed, until the waker reopens it
        schedule = None if waker is None else waker.schedule

        def hook(value: object = NOTHING) -> None:
            if not switch:  # the skip path, with few free variables (see Gate)
                next(skips)
                return
            if not armed:
                return
            now = monotonic()
            if now < next_at:
                next(skips)
                return
            evaluate(value, now)

        def evaluate(value: object, now: float) -> None:
            nonlocal tokens, last, next_at, hits, armed
            if now >= expires or hits >= cap:
                armed = False
                on_stop("expired" if now >= expires else "max_hits")
                return
            tokens += (now - last) * eval_rate_f
            if tokens > eval_burst:
                tokens = eval_burst
            last = now
            tokens -= 1.0
            next_at = now if tokens >= 1.0 else now + (1.0 - tokens) / eval_rate_f
            try:
                produced = fire(value, admit)
            except Exception:
                produced = False  # fire counts its own errors; this is the last line of defence
            if produced:
                hits += 1
            elif produced is None:
                tokens += 1.0  # not evaluated (condition false): give the token back
                next_at = now
                return
            if schedule is not None and next_at - now >= LONG_WAIT:
                switch.clear()  # before schedule(): the reopening may run before it returns
                if not schedule(min(next_at, expires), reopen):
                    reopen()

        def reopen() -> None:
            switch[:] = (True,)  # one C operation: never two entries

        def read() -> tuple[int, int]:
            return hits, tally_count(skips)

        def disarm() -> None:
            nonlocal armed
            armed = False
            reopen()

        setattr(hook, _SWITCH_ATTR, (switch, skips))
        self._publish(hook, read, disarm)


class _Bucket:
    """A token bucket for the capture decisions of :class:`ExpectGate` (off the skip path)."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: int | None, now: float) -> None:
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, self.rate))
        self.tokens = self.burst
        self.last = now

    def take(self, now: float) -> bool:
        tokens = self.tokens + (now - self.last) * self.rate
        self.last = now
        if tokens >= 1.0:
            self.tokens = min(tokens, self.burst) - 1.0
            return True
        self.tokens = tokens
        return False
