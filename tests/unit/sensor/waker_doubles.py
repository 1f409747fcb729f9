"""Test doubles of the rate-limit waker and of the clocks the gates read (no real waiting)."""

from __future__ import annotations

from typing import Any

from sensor.guards import Waker


class HeldWaker(Waker):
    """A waker that keeps the reopenings it is asked for until :meth:`release`.

    A test that checks what a closed gate does (it skips, it counts) holds the reopening: with a
    real waker, a test thread descheduled past the reopening time (a loaded CI machine) found
    the gate open again and the check failed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[float, Any]] = []
        self.holding = True

    def schedule(self, at: float, reopen: Any) -> bool:
        if self.holding:
            self.held.append((at, reopen))
            return True
        return super().schedule(at, reopen)

    def release(self) -> None:
        self.holding = False
        for at, reopen in self.held:
            if not super().schedule(at, reopen):
                reopen()


class StillClock:
    """A ``time.monotonic`` that moves only when the test moves it (a gate binds the clock
    when it is made: patch it first). Counts of firings within a rate are then exact however
    slowly the machine runs them."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SteppingClock:
    """A nanosecond clock (``perf_counter_ns``, ``thread_time_ns``): each read returns the time
    and then moves it on by ``cost``, so a stretch timed by two reads took ``cost``; ``reads``
    counts the reads (how often the code under test looked at the clock)."""

    def __init__(self) -> None:
        self.now = 10**12
        self.cost = 0
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        t = self.now
        self.now += self.cost
        return t


class SimulatedBell:
    """A waker's doorbell on a simulated clock: :func:`serve_simulated` runs the waker's own
    loop on the test's thread, and its waits on this bell move the clock instead of sleeping.

    ``at(t, action)`` puts a host event on the timeline (a gate closing: ``action`` calls
    ``waker.schedule``). A wait runs the events due before its timeout in time order, the clock
    moved to each; one that rings (``schedule`` releases the bell) ends the wait there, as a
    ring wakes the real thread. ``wakeups`` counts the ends of waits (the thread's wake-ups),
    ``rings`` those a ring ended. The loop ends at the first wait that reaches ``until``.
    """

    def __init__(self, waker: Waker, clock: StillClock, until: float) -> None:
        self.waker = waker
        self.clock = clock
        self.until = until
        self.events: list[tuple[float, int, Any]] = []
        self.rung = False
        self.wakeups = 0
        self.rings = 0
        self._n = 0

    def at(self, t: float, action: Any) -> None:
        import heapq

        self._n += 1
        heapq.heappush(self.events, (t, self._n, action))

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        import heapq

        if self.rung:  # rung while the thread was awake: the wait returns at once
            self.rung = False
            self.wakeups += 1
            self.rings += 1
            return True
        end = self.clock.now + (timeout if timeout >= 0 else 3600.0)
        while self.events and self.events[0][0] <= min(end, self.until):
            t, _, action = heapq.heappop(self.events)
            self.clock.now = max(self.clock.now, t)
            action()
            if self.rung:
                self.rung = False
                self.wakeups += 1
                self.rings += 1
                return True
        if end >= self.until:
            self.waker._stopped = True  # the simulation is over: the loop returns
            return True
        self.clock.now = end + 1e-9  # past the deadline it waited for, float rounding aside
        self.wakeups += 1
        return False

    def release(self) -> None:
        self.rung = True

    def locked(self) -> bool:
        return not self.rung


def serve_simulated(waker: Waker, bell: SimulatedBell) -> None:
    """Run ``waker``'s serving loop on this thread with ``bell`` as its doorbell, until the
    bell's ``until`` (``time.monotonic`` must be the bell's clock: see ``still``)."""
    waker._bell = bell  # type: ignore[assignment]
    waker._serving = waker._generation  # schedule() then counts on this loop, starts no thread
    waker._serve(waker._generation)
