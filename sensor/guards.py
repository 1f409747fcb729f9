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

__all__ = ["NOTHING", "CpuBudget", "Gate"]

#: The value a hook receives at points that carry none (entry, line).
NOTHING: object = object()


class CpuBudget:
    """A global budget of sensor CPU time per one-second window, shared by all probes.

    The engine measures the time of every non-aggregated hit (condition, capture, expectation,
    encoding) with ``perf_counter_ns`` and calls :meth:`spend`. When the sensor has spent more than
    ``fraction`` of the current one-second window, :meth:`spend` returns the id of the probe that
    spent the most in this window: the engine disables it and says why. Aggregated kinds (counter,
    timer) cost one call per hit and are not metered, so that their hot path stays one call.
    ``fraction >= 1`` turns the budget off.
    """

    __slots__ = ("_lock", "_per_probe", "_spent_ns", "_window_start", "fraction", "limit_ns")

    def __init__(self, fraction: float = 0.01) -> None:
        if not fraction > 0:
            raise ValueError(f"cpu_budget: got {fraction!r}, expected a fraction > 0 (e.g. 0.01)")
        self.fraction = float(fraction)
        self.limit_ns = int(fraction * 1e9)
        self._window_start = time.monotonic_ns()
        self._spent_ns = 0
        self._per_probe: dict[str, int] = {}
        # Only the slow path (a capture of several microseconds) takes this lock, never a counter.
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.fraction < 1.0

    def spend(self, probe_id: str, ns: int) -> tuple[str, int] | None:
        """Account ``ns`` to ``probe_id``; return (probe id to disable, its spent ns) or None."""
        if self.fraction >= 1.0:
            return None
        now = time.monotonic_ns()
        # Never wait on the host thread: a contended window just skips this sample.
        if not self._lock.acquire(blocking=False):
            return None
        try:
            if now - self._window_start >= 1_000_000_000:
                self._window_start = now
                self._spent_ns = 0
                self._per_probe.clear()
            self._spent_ns += ns
            self._per_probe[probe_id] = self._per_probe.get(probe_id, 0) + ns
            if self._spent_ns <= self.limit_ns:
                return None
            worst = max(self._per_probe, key=self._per_probe.__getitem__)
            # Forget the disabled probe's share so the next one is judged on its own spending.
            spent = self._per_probe.pop(worst)
            self._spent_ns -= spent
            return worst, spent
        finally:
            self._lock.release()

    def describe(self, spent_ns: int) -> str:
        return (
            f"disabled by the CPU budget: the sensor spent more than {self.limit_ns / 1e6:.1f} ms "
            f"of the last second ({self.fraction:.1%} of one CPU); this probe used "
            f"{spent_ns / 1e6:.2f} ms"
        )


class Gate:
    """The guarded hot-path hook of one probe: ``gate.hook`` is what the backend calls.

    The guards run inline in one closure (armed flag, expiry, max hits, token bucket) because
    a method call per guard would cost more than the whole hit budget. Only an admitted hit
    calls ``fire(value)``; ``fire`` returns True when it produced a hit. A firing that produced
    nothing (condition false, expectation held) gives its token back, so the rate limits hits,
    not evaluations (those are bounded by the CPU budget). ``on_stop(reason)`` is called once
    when expiry or max hits switch the probe off; it must not block.
    """

    __slots__ = ("_disarm", "_read", "hook")

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

        self.hook = hook
        self._read = read
        self._disarm = disarm

    def counts(self) -> tuple[int, int]:
        """(hits produced, firings skipped by the rate limit)."""
        return self._read()

    def disarm(self) -> None:
        self._disarm()
