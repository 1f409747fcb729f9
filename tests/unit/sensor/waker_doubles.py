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
