"""An always-on expectation whose firings would only be refused closes its gate meanwhile.

A standing probe on a hot function is often refused: its evaluation bucket is empty until its next
token, or its CPU-budget share is empty while the sensor sheds load. Each such firing used to call
the hook, read the clock and be refused. The gate now closes its switch until the known time, so
that a backend tests it inline and only counts the skip (``next(closed)``, no call), and the
waker reopens it: these tests hold the gate to that, and to counting every skipped firing under
the reason it was skipped for (``skipped_rate`` or ``skipped_budget``) and in ``skipped_closed``.
"""

from __future__ import annotations

import math
import time
from typing import Any

from waker_doubles import HeldWaker

from sensor.expressions import compile
from sensor.guards import (
    LONG_WAIT,
    CpuBudget,
    Waker,
    jitter_seed,
    switch_of,
    tally_count,
    tick_after,
    tick_of,
)
from sensor.hotpath import CLOSE_TICK, SHUT_MAX, SHUT_TICK, FastExpectGate, eval_burst


def make_gate(
    budget: CpuBudget, waker: Waker | None, *, eval_rate: float = 1e9, source: str = "result >= 0"
) -> FastExpectGate:
    return FastExpectGate(
        expr=compile(source, slots=("result",)),
        value_name="result",
        slow=lambda *a: None,
        failed=lambda exc: None,
        depth=1,
        dispatch=frozenset(),
        eval_rate=eval_rate,
        violation_rate=1e9,
        pass_rate=None,
        pass_burst=None,
        max_hits=None,
        expires_at=None,
        on_stop=lambda why: None,
        budget=budget,
        account=budget.account("p"),
        waker=waker,
    )


def backend_call(g: FastExpectGate, value: object) -> None:
    """What the bytecode backend puts at the probe's point: ``if switch: hook(v) else next(n)``."""
    pair = switch_of(g.hook)
    assert pair is not None
    assert pair[1] is not None
    switch, closed = pair
    if switch:
        g.hook(value)
    else:
        next(closed)


def wait_open(switch: Any, seconds: float = 5.0) -> float:
    deadline = time.monotonic() + seconds
    while not switch and time.monotonic() < deadline:
        time.sleep(0.001)
    assert switch, "the waker never reopened the gate"
    return time.monotonic()


def test_a_firing_the_budget_sheds_closes_the_gate_until_the_share_refills() -> None:
    budget = CpuBudget(0.5)
    # The reopening is held until the closed stretch is checked: with the real waker a test
    # thread descheduled for the 60 ms found the gate open again among its 500 firings.
    waker = HeldWaker()
    try:
        g = make_gate(budget, waker)
        pair = switch_of(g.hook)
        assert pair is not None
        switch = pair[0]
        account = budget.account("p")
        # Load is shed and this probe's share is 60 us in debt at 1 ms of CPU a second: it
        # refills in 60 ms.
        account.rate = 1e6
        account.tokens = -60_000.0
        account.last = time.monotonic()
        closed_at = time.monotonic()
        backend_call(g, 1)
        assert not switch  # closed: the firings until the share refills cost no call
        for _ in range(500):
            backend_call(g, 1)
        assert tally_count(g.evaluations) == 0
        # Every firing is counted, under the budget (the account's demand sees them too).
        assert account.skipped_count() == 501
        assert g.closed_count() == 500
        assert g.counts() == (0, 0)  # none of them under the rate limit
        assert len(waker.held) == 1, "the closing asked the waker for its reopening"
        assert waker.held[0][0] - closed_at >= 0.06 - 0.002  # never before the share refilled
        waker.release()
        reopened_at = wait_open(switch)
        assert reopened_at - closed_at >= 0.06 - 0.002
        backend_call(g, 1)
        assert tally_count(g.evaluations) == 1
        assert account.skipped_count() == 501  # the count of the closed stretch is kept
    finally:
        waker.stop()


def test_a_budget_closing_of_any_length_reopens_on_a_close_tick() -> None:
    # A shedding budget closes its probes' gates for up to SHUT_MAX. Those of CLOSE_TICK or
    # more used to reopen on LONG_WAIT ticks: with the standing shop's 20 probes the waker woke
    # on 30 to 40 ticks a second instead of at most 10, each wake-up a timer and a GIL hand-over
    # of the host's CPU. Every budget closing now reopens on a CLOSE_TICK tick, never before
    # the share refills (nor later than SHUT_MAX and two ticks).
    jitter_seed(7)
    try:
        for debt_ms in (100, 120, 150, 180, 200, 240):
            budget = CpuBudget(0.5)
            waker = HeldWaker()
            try:
                g = make_gate(budget, waker)
                account = budget.account("p")
                # Shed, this probe's share in debt for ``debt_ms`` at 1 ms of CPU a second.
                account.rate = 1e6
                account.tokens = -debt_ms * 1000.0
                account.last = time.monotonic()
                closed_at = time.monotonic()
                backend_call(g, 1)
                assert len(waker.held) == 1, "the closing asked the waker for its reopening"
                at = waker.held[0][0]
                assert at - closed_at >= debt_ms / 1000 - 0.002  # not before the share refills
                assert at - closed_at < SHUT_MAX + 2 * SHUT_TICK + 0.01
                # The tick of its CLOSE_TICK interval (see guards.tick_after).
                assert at == tick_after(at - SHUT_TICK, SHUT_TICK), (debt_ms, at)
            finally:
                waker.stop()
    finally:
        jitter_seed(None)


def test_a_gate_closed_by_the_budget_keeps_its_count_after_it_is_disarmed() -> None:
    budget = CpuBudget(0.5)
    waker = HeldWaker()  # (the real one could reopen it mid-way on a slow machine)
    try:
        g = make_gate(budget, waker)
        account = budget.account("p")
        account.rate = 1e6
        account.tokens = -500_000.0  # half a second: closed for SHUT_MAX at most
        account.last = time.monotonic()
        for _ in range(10):
            backend_call(g, 1)
        g.disarm()
        assert account.skipped_count() == 10
        assert account.shut == []  # the disarmed gate is no longer read
        assert account.shut_count() == 9
    finally:
        waker.stop()


def test_no_gate_closes_while_the_budget_sheds_nothing() -> None:
    budget = CpuBudget(0.5)
    waker = Waker()
    try:
        g = make_gate(budget, waker)
        pair = switch_of(g.hook)
        assert pair is not None
        for _ in range(200):
            backend_call(g, 1)
        assert pair[0]
        assert tally_count(g.evaluations) == 200
        assert g.closed_count() == 0
    finally:
        waker.stop()


def test_an_empty_evaluation_bucket_closes_the_gate_even_for_a_short_wait() -> None:
    # 100 evaluations a second: once the burst is spent the next token is 10 ms away, shorter
    # than LONG_WAIT; the firings in between are skipped without a call all the same.
    assert LONG_WAIT > 1 / 100
    budget = CpuBudget(0.5)
    # The reopening is held until the test has looked: on a loaded machine (CI on 3.11) the
    # thread was descheduled past the 100 ms tick between the last firing and the check.
    waker = HeldWaker()
    try:
        g = make_gate(budget, waker, eval_rate=100.0)
        pair = switch_of(g.hook)
        assert pair is not None
        switch = pair[0]
        # The burst is 100 evaluations. The bucket refills as the firings run (one token each
        # 10 ms): on a loaded machine (CI on 3.11) the 100 took longer than that and the gate
        # was still open after them. So fire until it closes, and bound how many that takes.
        fired = 0
        while switch and fired < 10_000:
            backend_call(g, 1)
            fired += 1
        assert not switch, f"still open after {fired} firings at 100 evaluations a second"
        evaluated = tally_count(g.evaluations)
        assert evaluated >= 100  # the whole burst first
        skipped_before = g.counts()[1]
        for _ in range(300):
            backend_call(g, 1)
        assert tally_count(g.evaluations) == evaluated  # no call while closed
        assert g.closed_count() == 300
        # Skipped by the evaluation rate: skipped_rate (none under the budget).
        assert g.counts() == (0, skipped_before + 300)
        assert budget.account("p").skipped_count() == 0
        assert waker.held, "the closing asked the waker for its reopening"
        waker.release()
        wait_open(switch)
        backend_call(g, 1)
        assert tally_count(g.evaluations) == evaluated + 1
    finally:
        waker.stop()


class RecordingWaker(Waker):
    def __init__(self) -> None:
        super().__init__()
        self.asked: list[float] = []

    def schedule(self, at: float, reopen: Any) -> bool:
        self.asked.append(at)
        return super().schedule(at, reopen)


def test_the_gates_of_many_probes_reopen_on_shared_ticks() -> None:
    # Twenty probes closing at different instants cost the waker one wake-up per tick, not one
    # per probe: each reopening is due on a tick of the waker's shared ticks.
    budget = CpuBudget(0.5)
    waker = RecordingWaker()
    try:
        for _ in range(20):
            g = make_gate(budget, waker, eval_rate=1000.0)
            pair = switch_of(g.hook)
            assert pair is not None
            for _ in range(100_000):
                backend_call(g, 1)
                if not pair[0]:
                    break
            assert not pair[0], "the gate never closed"
        assert len(waker.asked) >= 20
        for at in waker.asked:
            # A tick of the shared sequence (one per LONG_WAIT interval, at a jittered point
            # of it, see guards.tick_after).
            assert at == tick_of(math.floor(at / LONG_WAIT)), at
        assert len(set(waker.asked)) < len(waker.asked)
    finally:
        waker.stop()


def test_a_gate_whose_calls_exceed_its_rate_closes_a_few_times_a_second_at_the_same_rate() -> None:
    # A standing expectation at eval_rate 1000 on a function called far more often closes
    # after every run of evaluations. Each closing is a Waker.schedule on the host's thread
    # and a reopening on the waker's (neither metered by the budget): with waits shorter than
    # CLOSE_TICK rounded up to it, a gate closes at most 1 / CLOSE_TICK times a second, not
    # 1 / LONG_WAIT, and evaluates as many expectations a second (the bucket fills meanwhile).
    budget = CpuBudget(0.5)
    waker = RecordingWaker()
    try:
        g = make_gate(budget, waker, eval_rate=1000.0)
        pair = switch_of(g.hook)
        assert pair is not None
        switch = pair[0]
        start = time.monotonic()
        backend_call(g, 1)
        first = time.monotonic()  # the bucket's first admission was at or before this
        seconds = 0.6
        while time.monotonic() - start < seconds:
            backend_call(g, 1)
        ran = time.monotonic() - start
        closings = len(waker.asked)
        # What the bucket filled with and was not evaluated yet: the reopening still pending
        # at the end (later still if the waker thread is descheduled on a loaded machine), or
        # a test thread descheduled after its last firing. Take it out: fire until the gate
        # closes again (the bucket then holds less than a jittered need, at most 2 tokens).
        wait_open(switch, 30)
        fired = 0
        last = time.monotonic()
        while switch and fired < 1_000_000:
            last = time.monotonic()  # the bucket read its clock at or after this
            backend_call(g, 1)
            fired += 1
        assert not switch, f"still open after {fired} firings at 1000 evaluations a second"
        elapsed = time.monotonic() - start
        evaluations = tally_count(g.evaluations)
    finally:
        waker.stop()
    assert CLOSE_TICK > LONG_WAIT
    assert 1 <= closings <= ran / CLOSE_TICK + 2, closings
    # The burst (2,000: two CLOSE_TICKs' worth, see eval_burst) and then the rate: every token
    # the bucket filled with between the first admission and the last was evaluated (less the
    # at most 2 it still holds, and the at most 2 of a need that a closing of two ticks past
    # it left over the burst), and never more than the bucket allows.
    burst = eval_burst(1000.0)
    assert burst == 2000.0
    assert burst + 1000 * (last - first) - 5 <= evaluations <= burst + 1000 * elapsed + 1, (
        evaluations,
        last - first,
    )


def test_evaluation_errors_are_counted_apart_from_false() -> None:
    budget = CpuBudget(0.5)
    g = make_gate(budget, None)
    for value in (1, -1, -2, "text", object()):  # true, false, false, error, error
        g.hook(value)
    assert tally_count(g.evaluations) == 5
    assert tally_count(g.violations) == 4
    assert tally_count(g.expect_errors) == 2
    # A value that is not a bool nor of a plain truth type is an error too.
    h = make_gate(budget, None, source="result")
    h.hook(object())
    h.hook(0)
    assert (tally_count(h.violations), tally_count(h.expect_errors)) == (2, 1)
