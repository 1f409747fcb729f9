"""Tests of the hot-path gate (rate, max hits, expiry) and of the global CPU budget's sharing."""

from __future__ import annotations

import functools
import math
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from waker_doubles import HeldWaker, SimulatedBell, StillClock, serve_simulated

from sensor import guards
from sensor.guards import (
    HIT_CAP_STRIKES,
    LINGER_EVERY,
    LONG_WAIT,
    NOTHING,
    SHARE_HOLD,
    CpuBudget,
    ExpectGate,
    Gate,
    Switch,
    Waker,
    jitter_seed,
    switch_of,
    tick_after,
)


def _gate(produced: bool = True, **limits: object) -> tuple[Gate, list[object], list[str]]:
    fired: list[object] = []
    stops: list[str] = []

    def fire(value: object) -> bool:
        fired.append(value)
        return produced

    limits.setdefault("rate", None)
    gate = Gate(fire, on_stop=stops.append, **limits)  # type: ignore[arg-type]
    return gate, fired, stops


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> StillClock:
    """The gates' clock, moved by the test only: a gate made after this reads it. What a
    rate admits then no longer depends on how fast the machine runs the firings."""
    still = StillClock()
    monkeypatch.setattr(time, "monotonic", still)
    return still


@pytest.fixture
def window_clock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The CPU budget's window clock (``time.monotonic_ns``), moved by the test only: a slow
    machine cannot end a one-second window between two of a test's firings."""
    now = [10_000_000_000]
    monkeypatch.setattr(time, "monotonic_ns", lambda: now[0])
    return now


def test_unlimited_gate_fires_every_time_and_passes_the_value() -> None:
    gate, fired, _ = _gate()
    gate.hook()
    gate.hook(42)
    assert fired == [NOTHING, 42]
    assert gate.counts() == (2, 0)


def test_rate_limit_lets_the_burst_through_then_skips_and_counts(clock: StillClock) -> None:
    gate, fired, _ = _gate(rate=1.0)
    for _ in range(50):
        gate.hook()
    assert len(fired) == 1
    assert gate.counts() == (1, 49)


def test_rate_limit_refills_over_time(clock: StillClock) -> None:
    # (With the real clock the second firing had to come within 20 ms of the first.)
    gate, fired, _ = _gate(rate=50.0, burst=1)
    gate.hook()
    gate.hook()
    assert len(fired) == 1
    clock.advance(0.019)
    gate.hook()
    assert len(fired) == 1, "not before the next token"
    clock.advance(0.031)
    gate.hook()
    assert len(fired) == 2


def test_a_firing_that_produces_no_hit_gives_its_token_back() -> None:
    gate, fired, _ = _gate(produced=False, rate=1.0)
    for _ in range(5):
        gate.hook()
    assert len(fired) == 5
    assert gate.counts() == (0, 0)


def test_max_hits_stops_the_gate_and_reports_once() -> None:
    gate, fired, stops = _gate(max_hits=3)
    for _ in range(10):
        gate.hook()
    assert len(fired) == 3
    assert stops == ["max_hits"]


def test_expired_gate_never_fires() -> None:
    gate, fired, stops = _gate(expires_at=time.time() - 1)
    gate.hook()
    gate.hook()
    assert fired == []
    assert stops == ["expired"]


def test_disarmed_gate_does_nothing() -> None:
    gate, fired, stops = _gate()
    gate.disarm()
    gate.hook()
    assert fired == []
    assert stops == []


def test_a_raising_fire_never_escapes_the_hook() -> None:
    def fire(value: object) -> bool:
        raise RuntimeError("boom")

    gate = Gate(fire, rate=None, on_stop=lambda why: None)
    gate.hook()
    assert gate.counts() == (0, 0)


MS = 1_000_000  # ns


def test_over_the_budget_in_cpu_time_sheds_load_and_disables_nobody(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [10_000_000_000]
    monkeypatch.setattr(time, "monotonic_ns", lambda: now[0])
    budget = CpuBudget(0.01)  # 10 ms per second
    budget.clock = time.thread_time_ns  # as after a first window over in wall time
    light, heavy = budget.account("light"), budget.account("heavy")
    cpu = time.thread_time_ns
    assert budget.spend(light, MS // 10, cpu) is None
    assert budget.spend(heavy, 5 * MS, cpu) is None
    assert not budget.shedding
    assert (light.rate, heavy.rate) == (None, None), "under the limit: nobody is limited"
    now[0] += 100 * MS
    assert budget.spend(heavy, 6 * MS, cpu) is None, "11.1 ms > 10 ms: shed, never disable"
    assert budget.shedding
    assert light.rate is not None
    assert heavy.rate is not None
    # Max-min fair: the light probe needs 1 ms per second (0.1 ms in 0.1 s) and gets that
    # with headroom, never sampled for the heavy one's sake; the heavy one (110 ms per second)
    # gets the rest; together they fit the limit.
    assert 2 * MS <= light.rate <= 5 * MS
    assert heavy.rate == pytest.approx(budget.limit_ns - light.rate)


def test_a_shed_account_skips_before_any_work_and_counts_until_its_share_refills() -> None:
    budget = CpuBudget(0.01)
    account = budget.account("p")
    assert account.admit(0.0), "not shedding: every firing is admitted"
    account.rate = 1 * MS  # 1 ms of CPU per second
    account.tokens = -0.5 * MS  # the last firing cost more than what was left
    account.last = 100.0
    assert not account.admit(100.0)
    assert not account.admit(100.4)
    assert account.skipped_count() == 2
    assert account.admit(100.6), "0.6 s later the deficit is paid back"
    assert account.skipped_count() == 2


def test_a_share_keeps_what_accrues_while_its_gate_waits_for_a_reopening_tick() -> None:
    # A gate closed for an empty share reopens on a 1 s tick, up to SHUT_MAX and two ticks
    # after it closed (sensor.hotpath._shut_tick). A share that held only a second's worth lost
    # the rest of that wait: 17 to 22% of the standing shop's evaluations. It holds SHARE_HOLD
    # seconds' worth, and no more.
    from sensor.hotpath import SHUT_MAX, SHUT_TICK

    assert SHARE_HOLD >= SHUT_MAX + 2 * SHUT_TICK
    budget = CpuBudget(0.01)
    account = budget.account("p")
    account.rate = 1 * MS
    account.tokens = 0.0
    account.last = 100.0
    longest = SHUT_MAX + 2 * SHUT_TICK
    assert account.admit(100.0 + longest)
    assert account.tokens == pytest.approx(longest * MS)
    # Idle for a minute: still at most SHARE_HOLD seconds' worth (a run, then the rate).
    assert account.admit(160.0)
    assert account.tokens == pytest.approx(SHARE_HOLD * MS)
    runs = 0
    while account.admit(160.0):
        account.tokens -= 0.1 * MS  # firings of 0.1 ms each, all at once
        runs += 1
    assert runs == math.ceil(SHARE_HOLD * 10)


@pytest.mark.usefixtures("window_clock")
def test_three_hits_in_a_row_each_over_the_whole_budget_of_a_second_disable_their_probe() -> None:
    budget = CpuBudget(0.01)
    account = budget.account("p")
    # In wall time it may only be a preempted thread: switch to CPU time, disable nobody.
    assert budget.spend(account, 30 * MS) is None
    assert budget.precise
    assert budget.switches == 1
    # A wall-time sample taken across the switch is not CPU time: ignored.
    assert budget.spend(account, 30 * MS, time.perf_counter_ns) is None
    # In CPU time: one dear firing may be the host's (a collection, a page fault); it is
    # metered like any firing. The second in a row disables the probe.
    assert budget.spend(account, 30 * MS, budget.clock) is None
    reason = budget.spend(account, 40 * MS, budget.clock)
    assert reason is not None
    assert "2 hits in a row used 30.00, 40.00 ms of CPU time" in reason
    assert "each more than the sensor may spend in a whole second (10.0 ms, 1.0% of one CPU)" in (
        reason
    )
    assert budget.hit_cap_ns == 10 * MS
    assert HIT_CAP_STRIKES == 2


@pytest.mark.usefixtures("window_clock")
def test_a_closings_charge_is_metered_but_neither_a_firing_nor_the_end_of_a_dear_run() -> None:
    # What a refused firing's closing cost (CpuBudget.spend_closing) is charged to the probe
    # and the window, for no firing: a probe whose every evaluation is dear, with closings in
    # between (its share empty after each), is still disabled on its second dear one.
    budget = CpuBudget(0.01)
    account = budget.account("p")
    budget.spend(account, 30 * MS)  # to the precise clock
    assert budget.spend(account, 30 * MS, budget.clock) is None
    spent, fired = account.spent, account.fired
    budget.spend_closing(account, 40_000)
    assert account.spent == spent + 40_000
    assert account.fired == fired
    assert budget.spend(account, 30 * MS, budget.clock) is not None


@pytest.mark.usefixtures("window_clock")
def test_a_firing_under_the_cap_ends_a_run_of_dear_ones() -> None:
    budget = CpuBudget(0.01)
    account = budget.account("p")
    budget.spend(account, 30 * MS)  # to the precise clock
    for _ in range(5):
        # A dear firing, then a cheap one: outliers, never two in a row.
        assert budget.spend(account, 30 * MS, budget.clock) is None
        assert budget.spend(account, MS // 10, budget.clock) is None
    assert budget.spend(account, 30 * MS, budget.clock) is None
    # A batch of firings (each under the cap) ends the run too, whatever the clock.
    assert budget.spend_many(account, 50_000, 64)
    assert budget.spend(account, 30 * MS, budget.clock) is None
    assert budget.spend(account, 30 * MS, budget.clock) is not None


@pytest.mark.usefixtures("window_clock")
def test_the_dear_firing_before_the_last_is_metered() -> None:
    budget = CpuBudget(0.01)
    account = budget.account("p")
    budget.spend(account, 30 * MS)  # to the precise clock
    assert budget.spend(account, 30 * MS, budget.clock) is None
    # Over the whole second's limit: load is shed at once, and the probe's share starts.
    assert budget.shedding
    assert account.rate is not None
    assert account.admit(account.last)
    # A cheap firing ends the run; a dear one while the load is shed is owed: the next waits.
    assert budget.spend(account, MS // 10, budget.clock) is None
    assert budget.spend(account, 30 * MS, budget.clock) is None
    assert account.tokens < 0
    assert not account.admit(account.last), "its share is in debt"


def test_shedding_stops_when_the_demand_falls_back_under_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [10_000_000_000]
    monkeypatch.setattr(time, "monotonic_ns", lambda: now[0])
    budget = CpuBudget(0.01)
    budget.clock = time.thread_time_ns
    account = budget.account("p")
    for _ in range(3):
        budget.spend(account, 4 * MS, time.thread_time_ns)
    assert budget.shedding
    assert account.rate is not None
    now[0] += 1_100 * MS  # a window ends: its demand (12 ms) is still over, keep sharing
    budget.spend(account, 1 * MS, time.thread_time_ns)
    assert budget.shedding
    now[0] += 1_100 * MS  # a calm window: 1 ms spent, nothing skipped
    budget.spend(account, 1 * MS, time.thread_time_ns)
    assert not budget.shedding
    assert account.rate is None


def test_an_account_placed_while_load_is_shed_starts_with_a_floor_share(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [10_000_000_000]
    monkeypatch.setattr(time, "monotonic_ns", lambda: now[0])
    budget = CpuBudget(0.01)
    budget.clock = time.thread_time_ns
    busy = budget.account("busy")
    for _ in range(3):
        budget.spend(busy, 4 * MS, time.thread_time_ns)
    assert budget.shedding
    late = budget.account("late")
    assert late.rate is not None
    assert late.rate > 0, "never starved: it can fire as soon as its calls start"
    budget.forget("late")
    assert "late" not in budget._accounts


def _precise(budget: CpuBudget) -> bool:
    return budget.precise  # read anew each time (mypy would keep an earlier narrowing)


def test_cpu_budget_returns_to_the_cheap_clock_after_a_calm_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [10_000_000_000]
    monkeypatch.setattr(time, "monotonic_ns", lambda: now[0])
    budget = CpuBudget(0.01)
    account = budget.account("p")
    budget.spend(account, 50 * MS)
    assert _precise(budget)
    now[0] += 1_100 * MS  # a new window after a precise one spending 0
    assert budget.spend(account, 1_000, time.thread_time_ns) is None
    assert not _precise(budget)
    # A busy precise window keeps the precise clock for the next one.
    budget.spend(account, 50 * MS)
    assert _precise(budget)
    assert budget.spend(account, 6 * MS, time.thread_time_ns) is None  # over half the limit
    now[0] += 1_100 * MS
    assert budget.spend(account, 1_000, time.thread_time_ns) is None
    assert _precise(budget)


def test_cpu_budget_fraction_can_be_changed_at_run_time() -> None:
    budget = CpuBudget(0.01)
    budget.fraction = 1.0  # what the agent's integration tests do to turn it off
    assert not budget.enabled
    assert budget.spend(budget.account("p"), 10**12, time.thread_time_ns) is None
    with pytest.raises(ValueError, match="cpu_budget"):
        budget.fraction = -1


def test_cpu_budget_of_one_or_more_is_off() -> None:
    budget = CpuBudget(1.0)
    assert not budget.enabled
    assert budget.spend(budget.account("p"), 10**12) is None


def test_cpu_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="cpu_budget"):
        CpuBudget(0)


def _expect_gate(
    outcomes: list[bool | None], **limits: object
) -> tuple[ExpectGate, list[str], list[str]]:
    """A gate whose fire evaluates to the next outcome (True pass, False violation, None skip)."""
    captured: list[str] = []
    stops: list[str] = []
    feed = iter(outcomes)

    def fire(value: object, admit: object) -> bool | None:
        outcome = next(feed)
        if outcome is None:
            return None
        violated = outcome is False
        if admit(not outcome):  # type: ignore[operator]
            captured.append("violation" if violated else "pass")
            return True
        return False

    limits.setdefault("eval_rate", 1e9)
    limits.setdefault("violation_rate", 1e9)
    limits.setdefault("pass_rate", None)
    gate = ExpectGate(fire, on_stop=stops.append, **limits)  # type: ignore[arg-type]
    return gate, captured, stops


def test_expect_gate_captures_every_violation_but_passes_at_their_own_rate() -> None:
    outcomes: list[bool | None] = [i % 10 != 0 for i in range(1000)]
    gate, captured, _ = _expect_gate(outcomes, pass_rate=1e-6, pass_burst=2)
    for _ in range(1000):
        gate.hook()
    assert captured.count("violation") == 100
    assert captured.count("pass") == 2  # the burst, then nothing at one per 11 days
    assert gate.counts() == (102, 0)


def test_expect_gate_without_pass_rate_never_captures_a_passing_firing() -> None:
    gate, captured, _ = _expect_gate([True, True, False, True])
    for _ in range(4):
        gate.hook()
    assert captured == ["violation"]


def test_expect_gate_bounds_violations_and_counts_the_lost_ones() -> None:
    gate, captured, _ = _expect_gate([False] * 50, violation_rate=1e-6)
    for _ in range(50):
        gate.hook()
    assert captured == ["violation"]  # burst of max(1, rate) = 1
    assert gate.counts() == (1, 49)


def test_expect_gate_bounds_evaluations_before_any_work() -> None:
    calls: list[object] = []

    def fire(value: object, admit: object) -> bool:
        calls.append(value)
        return False

    gate = ExpectGate(
        fire, eval_rate=1e-6, violation_rate=1e9, pass_rate=None, on_stop=lambda why: None
    )
    for _ in range(100):
        gate.hook()
    # One evaluation (the burst); the other 99 firings were skipped before fire ran.
    assert len(calls) == 1
    assert gate.counts() == (0, 99)


def test_expect_gate_gives_the_evaluation_back_when_nothing_was_evaluated() -> None:
    outcomes: list[bool | None] = [None] * 20 + [False]
    gate, captured, _ = _expect_gate(outcomes, eval_rate=1e-6)
    for _ in range(21):
        gate.hook()
    assert captured == ["violation"]


def test_expect_gate_stops_at_max_hits() -> None:
    gate, captured, stops = _expect_gate([False] * 10, max_hits=3)
    for _ in range(10):
        gate.hook()
    assert captured == ["violation"] * 3
    assert stops == ["max_hits"]


# -- closing gates and the waker ------------------------------------------------------------------


def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def _schedule(waker: Waker, when: float, reopen: Callable[[], object]) -> bool:
    """``waker.schedule``, retried while it refuses because its lock is busy (bounded)."""
    deadline = time.monotonic() + 5.0
    while not waker.schedule(when, reopen):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def test_waker_calls_each_reopen_at_or_after_its_time_in_order() -> None:
    waker = Waker()
    called: list[tuple[str, float]] = []
    # The thread is kept busy in a first reopening until both are scheduled: on a loaded
    # machine the test thread could be descheduled past the late one's time between the two
    # requests, and the late one was then called before the early one was even asked for.
    busy, scheduled = threading.Event(), threading.Event()

    def hold() -> None:
        busy.set()
        scheduled.wait(30)

    assert _schedule(waker, time.monotonic(), hold)
    assert busy.wait(30), "the waker never called the first reopening"
    start = time.monotonic()
    # schedule() never waits for the lock: while the waker thread holds it (starting up, say)
    # it refuses, by design, and the caller keeps its gate open. Retry as a gate would.
    assert _schedule(waker, start + 0.08, lambda: called.append(("late", time.monotonic())))
    assert _schedule(waker, start + 0.03, lambda: called.append(("early", time.monotonic())))
    scheduled.set()
    assert _wait_for(lambda: len(called) == 2, timeout=30)
    assert [name for name, _ in called] == ["early", "late"]
    assert called[0][1] >= start + 0.03
    assert called[1][1] >= start + 0.08
    assert waker.wakes == 3
    assert waker.pending() == 0
    waker.stop()


def test_waker_never_waits_for_its_lock_and_refuses_when_stopped() -> None:
    waker = Waker()
    with waker._lock:  # the waker thread (or another host thread) holds it
        assert waker.schedule(time.monotonic() + 10, lambda: None) is False
    assert waker.refused == 1
    called: list[int] = []
    assert waker.schedule(time.monotonic() + 60, lambda: called.append(1))
    waker.stop()  # closing the engine reopens every gate at once
    assert called == [1]
    assert waker.schedule(time.monotonic(), lambda: None) is False
    assert waker.refused == 2


def test_waker_schedule_runs_no_threading_code_on_the_host_thread() -> None:
    # A standing expectation closes its gate after each run of evaluations, about 50 times a
    # second per probe: schedule() runs on the host's request thread each time, so it must not
    # run the threading module's Python code (Thread.is_alive and what it calls) there.
    waker = Waker()
    assert _schedule(waker, time.monotonic() + 0.01, lambda: None)  # starts the thread
    assert _wait_for(lambda: waker.pending() == 0)
    called: list[str] = []

    def profile(frame: Any, event: str, arg: object) -> None:
        if event == "call":
            called.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")

    reopened: list[int] = []
    sys.setprofile(profile)
    try:
        for n in range(20):
            assert waker.schedule(time.monotonic() + 0.02, functools.partial(reopened.append, n))
    finally:
        sys.setprofile(None)
    assert [c for c in called if c.startswith(threading.__file__)] == []
    assert _wait_for(lambda: len(reopened) == 20), "every reopening still done"
    waker.stop()


def _ringing_waker(monkeypatch: pytest.MonkeyPatch) -> tuple[Waker, list[float]]:
    """A waker whose doorbell rings are timed into the returned list (and still ring)."""
    waker = Waker()
    rings: list[float] = []
    ring = waker._ring

    def counted() -> None:
        rings.append(time.monotonic())
        ring()

    monkeypatch.setattr(waker, "_ring", counted)
    return waker, rings


def test_gates_closing_on_every_tick_ring_the_waker_once_not_every_tick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Gates that reopen on a tick and close again within it (an evaluation rate their calls
    # exceed) find the waker already due to wake on the next tick: it is woken early (a
    # doorbell ring, a GIL hand-over from the host) only when it had nothing to do.
    waker, rings = _ringing_waker(monkeypatch)
    switches = [Switch(True) for _ in range(5)]
    # A round closes every gate again after the waker reopened them on tick ``due``. The waker
    # woke at or after ``due``, and lingers until the tick of the LONG_WAIT interval after the
    # one it woke in: a round whose closings all come in the interval of ``due`` round to that
    # very tick, so it is on time and must ring nothing. A round the host thread
    # was descheduled through (CI under load) may find the waker asleep again: it may ring.
    on_time = late = rang_on_time = 0
    due = -math.inf
    deadline = time.monotonic() + 20
    while on_time < 10 and time.monotonic() < deadline:
        before = len(rings)
        in_time = True
        next_due = due
        for switch in switches:
            switch.on = False
            now = time.monotonic()
            # The tick the gates' closings round to (a jittered tick, not a multiple).
            next_due = tick_after(now + 0.001)
            in_time = (
                in_time
                and due > 0
                and math.floor((now + 0.001) / LONG_WAIT) == math.floor(due / LONG_WAIT)
            )
            assert _schedule(waker, next_due, functools.partial(setattr, switch, "on", True))
        if in_time:
            on_time += 1
            rang_on_time += len(rings) - before
        else:
            late += 1
        due = next_due
        assert _wait_for(lambda: all(switches)), "reopened on the tick"
    waker.stop()
    assert on_time >= 5, f"only {on_time} rounds of {on_time + late} closed within their tick"
    assert rang_on_time == 0, (
        f"{rang_on_time} doorbell rings in {on_time} rounds that closed within the tick "
        f"({len(rings)} in all, {late} late rounds)"
    )


class _CountedBell:
    """A waker's doorbell that counts its releases (the real lock underneath)."""

    def __init__(self, lock: Any) -> None:
        self.lock = lock
        self.releases = 0

    def acquire(self, *args: Any) -> bool:
        return bool(self.lock.acquire(*args))

    def release(self) -> None:
        self.releases += 1
        self.lock.release()

    def locked(self) -> bool:
        return bool(self.lock.locked())


def test_gates_closing_together_release_the_waker_bell_once() -> None:
    # Twenty gates closing in one round before the waker's thread can run (it needs the GIL
    # the host holds) ring one after another: the first releases the bell, the others find it
    # released and return. Each used to release it again, raising and suppressing a
    # RuntimeError on the host's thread (19 of them a round).
    waker = Waker()
    bell = _CountedBell(waker._bell)
    waker._bell = bell  # type: ignore[assignment]
    for _ in range(20):
        waker._ring()
    assert bell.releases == 1
    assert not bell.locked()  # rung: the thread's next wait returns at once
    assert bell.acquire(False)  # the thread takes the ring: the next round rings again
    waker._ring()
    assert bell.releases == 2


def test_gates_closing_on_close_ticks_after_a_reopening_ring_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A standing expectation's gates reopen on a tick, evaluate their burst, and close again
    # tens of milliseconds later, on the tick of a later LINGER_EVERY (hotpath.CLOSE_TICK)
    # interval. The waker, having lingered one LONG_WAIT tick for nothing, lingers on to the
    # next LINGER_EVERY tick: those closings find it due and ring nothing. It used to sleep
    # until needed after the first linger, so that every gate of the next round rang the bell
    # and woke it (about three wake-ups a round instead of two).
    # In real time, on 100 ms ticks (LINGER_EVERY is 1 s: rounds of up to 2 s each); the
    # simulated tests below run the same loop on the real LINGER_EVERY.
    every = 0.1
    monkeypatch.setattr(guards, "LINGER_EVERY", every)
    waker, rings = _ringing_waker(monkeypatch)
    switches = [Switch(True) for _ in range(5)]
    on_time = late = rang_on_time = 0
    deadline = time.monotonic() + 20
    while on_time < 5 and time.monotonic() < deadline:
        for switch in switches:  # a round reopened on a CLOSE_TICK tick
            switch.on = False
            assert _schedule(
                waker,
                tick_after(time.monotonic(), every),
                functools.partial(setattr, switch, "on", True),
            )
        assert _wait_for(lambda: all(switches)), "reopened on the tick"
        reopened = time.monotonic()
        # The gates close again after the waker's LONG_WAIT linger and before the tick it
        # lingers on next (the tick of the LINGER_EVERY interval after the one it woke in).
        time.sleep(2.5 * LONG_WAIT)
        before = len(rings)
        now = time.monotonic()
        # The waker woke at or before ``reopened`` and lingered until the LONG_WAIT tick after
        # it (passed now): it waits now for the tick after that one's LINGER_EVERY interval,
        # which is no earlier than the one after ``reopened``'s; closings of this round round
        # to it or to a later tick. A round the host was descheduled through may ring.
        in_time = now - reopened > 2 * LONG_WAIT and now < tick_after(reopened, every)
        for switch in switches:
            switch.on = False
            assert _schedule(
                waker,
                tick_after(time.monotonic(), every),
                functools.partial(setattr, switch, "on", True),
            )
        if in_time:
            on_time += 1
            rang_on_time += len(rings) - before
        else:
            late += 1
        assert _wait_for(lambda: all(switches)), "reopened on the tick"
    waker.stop()
    assert on_time >= 3, f"only {on_time} rounds of {on_time + late} closed in time"
    assert rang_on_time == 0, f"{rang_on_time} rings in {on_time} rounds ({late} late rounds)"


def _simulate_gates(
    still: StillClock, gates: list[tuple[float, float, float]], seconds: float, seed: int
) -> tuple[SimulatedBell, set[float], list[float]]:
    """Gates that close again ``drain`` seconds after each reopening (a run of evaluations)
    until the waker's tick on the grid of ``every`` after their need 1 ms on, as the
    expectation gates do; ``gates`` is ``(first closing, drain, every)`` each. The waker's own
    loop serves them on the simulated clock for ``seconds``, its ticks drawn from ``seed``:
    (its bell, the ticks it reopened gates on, how late each reopening was)."""
    jitter_seed(seed)
    try:
        waker = Waker()
        bell = SimulatedBell(waker, still, until=still.now + seconds)
        ticks: set[float] = set()
        late: list[float] = []

        def close(drain: float, every: float) -> None:
            at = tick_after(still.now + 0.001, every)
            assert waker.schedule(at, functools.partial(reopen, at, drain, every))

        def reopen(at: float, drain: float, every: float) -> None:
            late.append(still.now - at)
            ticks.add(at)
            bell.at(still.now + drain, functools.partial(close, drain, every))

        for first, drain, every in gates:
            bell.at(still.now + first, functools.partial(close, drain, every))
        serve_simulated(waker, bell)
    finally:
        jitter_seed(None)
    return bell, ticks, late


def test_gates_closing_on_close_ticks_wake_the_waker_about_once_a_tick(still: StillClock) -> None:
    # A standing expectation whose calls exceed its evaluation rate reopens on a tick, spends
    # its burst in about 30 ms and closes again until a later CLOSE_TICK (LINGER_EVERY) tick.
    # The waker used to linger one LONG_WAIT tick after every reopening, for nothing: 2.1
    # wake-ups a tick (each tens of microseconds of the host's CPU, a timer and a GIL
    # hand-over, whatever it does). Once such lingers passed for nothing it lingers on the next
    # LINGER_EVERY tick at once: 1.4 (a gate that closes in the next interval still finds that
    # tick early), no reopening late.
    from sensor import hotpath

    assert hotpath.CLOSE_TICK == LINGER_EVERY
    gates = [(0.005 * i, 0.03, LINGER_EVERY) for i in range(20)]
    wakeups = reopening_ticks = 0
    for seed in range(4):
        bell, ticks, late = _simulate_gates(still, gates, 100 * LINGER_EVERY, seed)
        assert len(ticks) >= 70  # about one a LINGER_EVERY interval
        assert max(late) < 1e-6, "a reopening came late"
        assert bell.rings <= 10
        wakeups += bell.wakeups
        reopening_ticks += len(ticks)
    assert wakeups <= 1.6 * reopening_ticks, (wakeups, reopening_ticks)


@pytest.mark.parametrize("drain", [0.05, 0.06])
def test_gates_closing_late_in_a_close_tick_interval_find_the_waker_lingering(
    still: StillClock, monkeypatch: pytest.MonkeyPatch, drain: float
) -> None:
    # Gates whose run of evaluations lasts half a LINGER_EVERY interval close again 50 to 60
    # ms after their reopening, on 100 ms ticks (the waker's rule is of any LINGER_EVERY; at
    # 1 s, the sensor's, a run that long is rarer). The waker that learnt to linger on
    # LINGER_EVERY ticks must linger on the tick they close on: the one after the LONG_WAIT
    # tick after the reopening. The LINGER_EVERY tick after the reopening itself may come
    # before they close (a reopening late in its interval, the next interval's tick early in
    # it): the waker then slept until needed, and every gate's closing rang the bell (seen as
    # 5 rings in 5 rounds of a real-time test, 1 run in 30).
    every = 0.1
    monkeypatch.setattr(guards, "LINGER_EVERY", every)
    gates = [(0.005 * i, drain, every) for i in range(20)]
    for seed in range(6):
        bell, ticks, late = _simulate_gates(still, gates, 10.0, seed)
        assert len(ticks) >= 40
        assert max(late) < 1e-6, "a reopening came late"
        assert bell.rings <= 10, (seed, bell.rings, len(ticks))


def test_gates_closing_on_long_wait_ticks_keep_the_waker_lingering_one_tick(
    still: StillClock,
) -> None:
    # Gates that close again at once until the next LONG_WAIT tick (an evaluation rate of
    # about 40 a second their calls exceed): the LONG_WAIT linger after each reopening is what
    # they close on, so it stays, and they ring (almost) nothing.
    gates = [(0.001 * i, 0.002, LONG_WAIT) for i in range(5)]
    for seed in range(4):
        bell, ticks, late = _simulate_gates(still, gates, 5.0, seed)
        assert len(ticks) >= 200
        assert max(late) < 1e-6, "a reopening came late"
        assert bell.rings <= 10
        assert bell.wakeups <= 1.25 * len(ticks), (bell.wakeups, len(ticks))


def test_a_gate_wanting_an_earlier_tick_than_the_waker_lingers_on_is_never_late(
    still: StillClock,
) -> None:
    # Once the waker lingers on LINGER_EVERY ticks, a gate that closes until an earlier
    # LONG_WAIT tick rings the bell (it is never reopened late), and the waker goes back to
    # lingering one LONG_WAIT tick after a reopening: that gate's later closings ring little.
    gates = [(0.005 * i, 0.03, LINGER_EVERY) for i in range(10)]
    gates.append((2.0, 0.002, LONG_WAIT))  # it starts once the others taught the waker
    for seed in range(4):
        bell, ticks, late = _simulate_gates(still, gates, 6.0, seed)
        assert len(ticks) >= 150
        assert max(late) < 1e-6, "a reopening came late"
        assert 1 <= bell.rings <= 12, bell.rings


def test_waker_after_fork_reopens_everything_and_starts_again_on_demand() -> None:
    waker = Waker()
    called: list[str] = []
    assert waker.schedule(time.monotonic() + 60, lambda: called.append("parent's"))
    waker.after_fork_in_child()  # what the child runs: the parent's thread is gone
    assert called == ["parent's"]
    assert waker.pending() == 0
    assert waker.schedule(time.monotonic() + 0.01, lambda: called.append("child's"))
    assert _wait_for(lambda: len(called) == 2)
    waker.stop()


def test_a_gate_whose_next_token_is_far_closes_counts_skips_and_is_reopened() -> None:
    # The reopening is held until the closed stretch is checked: with the real waker a test
    # thread descheduled for 60 ms found the gate open again among its 100 firings.
    waker = HeldWaker()
    gate, fired, _ = _gate(rate=1 / LONG_WAIT / 3, burst=1, waker=waker)  # next token in 60 ms
    switch, _skips = switch_of(gate.hook) or pytest.fail("a gate hook carries its switch")
    asked = time.monotonic()
    gate.hook()
    assert len(fired) == 1
    assert not switch, "closed: skipped firings no longer read the clock"
    assert len(waker.held) == 1, "the closing asked the waker for its reopening"
    assert waker.held[0][0] >= asked + 3 * LONG_WAIT - 0.001, "not before the token is due"
    for _ in range(100):
        gate.hook(7)
    assert len(fired) == 1
    assert gate.counts() == (1, 100)
    waker.release()
    assert _wait_for(lambda: bool(switch), timeout=30), "the waker reopens the gate"
    gate.hook(8)
    assert fired == [NOTHING, 8]
    waker.stop()


def test_a_gate_with_a_short_wait_stays_open_and_tests_the_clock(clock: StillClock) -> None:
    # (With the real clock the second firing had to come within the 5 ms.)
    waker = Waker()
    gate, _fired, _ = _gate(rate=4 / LONG_WAIT, burst=1, waker=waker)  # next token in 5 ms
    switch, _ = switch_of(gate.hook) or pytest.fail("a gate hook carries its switch")
    gate.hook()
    gate.hook()
    assert switch
    assert waker.pending() == 0
    assert gate.counts() == (1, 1)
    waker.stop()


def test_a_gate_stays_open_when_the_waker_refuses(clock: StillClock) -> None:
    waker = Waker()
    waker.stop()
    gate, _fired, _ = _gate(rate=1.0, burst=1, waker=waker)
    switch, _ = switch_of(gate.hook) or pytest.fail("a gate hook carries its switch")
    gate.hook()
    assert switch, "nobody would reopen it: it keeps testing the clock"
    gate.hook()
    assert gate.counts() == (1, 1)


def test_a_gate_that_produced_nothing_does_not_close() -> None:
    waker = Waker()
    gate, fired, _ = _gate(produced=False, rate=1.0, burst=1, waker=waker)
    for _ in range(3):
        gate.hook()
    assert len(fired) == 3
    assert waker.pending() == 0
    waker.stop()


def test_disarming_a_closed_gate_opens_it_so_nothing_is_counted_as_skipped() -> None:
    waker = Waker()
    gate, _fired, _ = _gate(rate=1.0, burst=1, waker=waker)
    gate.hook()
    gate.disarm()
    gate.hook()
    assert gate.counts() == (1, 0)
    waker.stop()


def test_an_expect_gate_with_a_slow_evaluation_rate_closes_too() -> None:
    waker = HeldWaker()  # (the real one would reopen it if the ten firings took a second)
    gate, captured, _ = _expect_gate([False] * 10, eval_rate=1.0, waker=waker)
    switch, _ = switch_of(gate.hook) or pytest.fail("an expect gate hook carries its switch")
    for _ in range(10):
        gate.hook()
    assert captured == ["violation"]
    assert not switch
    assert gate.counts() == (1, 9)
    assert len(waker.held) == 1
    waker.stop()


def test_skips_are_counted_exactly_from_many_threads() -> None:
    gate, _fired, _ = _gate(rate=1e-6, burst=1, waker=Waker())
    gate.hook()

    def work() -> None:
        for _ in range(20_000):
            gate.hook()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gate.counts() == (1, 80_000)


def test_a_gate_closed_for_longer_than_any_lock_timeout_keeps_the_waker_alive() -> None:
    # One hit per ~30,000 years: the reopening is further away than threading's TIMEOUT_MAX,
    # which must not kill the waker thread that other gates rely on.
    waker = Waker()
    far, _, _ = _gate(rate=1e-12, burst=1, waker=waker)
    far.hook()
    assert waker.pending() == 1
    thread = waker._thread
    assert thread is not None
    time.sleep(0.1)  # the thread went to sleep on the far deadline (or died computing it)
    assert thread.is_alive()
    reopened: list[str] = []
    assert waker.schedule(time.monotonic() + 0.02, lambda: reopened.append("near"))
    assert _wait_for(lambda: reopened == ["near"])
    assert waker._thread is thread, "the same thread served both"
    waker.stop()


def test_if_the_waker_thread_fails_every_closed_gate_is_reopened(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    waker = Waker()

    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(waker, "_serve", broken)
    reopened: list[str] = []
    assert waker.schedule(time.monotonic() + 3600, lambda: reopened.append("gate"))
    assert _wait_for(lambda: reopened == ["gate"]), "not left closed with nobody to reopen it"
    assert waker.pending() == 0
    assert "reopening every gate" in caplog.text
