"""Guards that keep a probe cheap and bounded: rate limit, max hits, expiry and a CPU budget.

Every guard is checked on the host thread *before* any capture work. None of them blocks or
raises: a guard either lets the hit through, skips it (counted), or disables the probe with a
reason that ends up in the probe's status.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["NOTHING", "CpuBudget", "ExpectGate", "Gate"]

#: The value a hook receives at points that carry none (entry, line).
NOTHING: object = object()


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

    The guards run inline in one closure (armed flag, expiry, max hits, token bucket) because
    a method call per guard would cost more than the whole hit budget. Only an admitted hit
    calls ``fire(value)``; ``fire`` returns True when it produced a hit. A firing that produced
    nothing (condition false, expectation held) gives its token back, so the rate limits hits,
    not evaluations (those are bounded by the CPU budget). ``on_stop(reason)`` is called once
    when expiry or max hits switch the probe off; it must not block.
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
        skipped = 0

        # The earliest time a token is available: a skipped firing costs one clock read and
        # one compare. The bucket itself is only refilled on admission.
        next_at = -math.inf

        def hook(value: object = NOTHING) -> None:
            nonlocal tokens, last, next_at, hits, skipped, armed
            if not armed:
                return
            now = monotonic()
            if now < next_at:
                skipped += 1
                return
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
            elif limited:
                tokens += 1.0  # nothing produced: give the token back
                next_at = now

        def read() -> tuple[int, int]:
            return hits, skipped

        def disarm() -> None:
            nonlocal armed
            armed = False

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
        skipped = 0

        def admit(violated: bool) -> bool:
            nonlocal skipped
            if violated:
                if violations.take(monotonic()):
                    return True
                skipped += 1  # a violation not captured: counted, never silent
                return False
            return passes is not None and passes.take(monotonic())

        def hook(value: object = NOTHING) -> None:
            nonlocal tokens, last, next_at, hits, skipped, armed
            if not armed:
                return
            now = monotonic()
            if now < next_at:
                skipped += 1
                return
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

        def read() -> tuple[int, int]:
            return hits, skipped

        def disarm() -> None:
            nonlocal armed
            armed = False

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
