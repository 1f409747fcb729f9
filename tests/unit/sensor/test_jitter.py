"""Rate-limited sampling is not phase-locked to periodic traffic, and keeps its rate and bounds.

A plain token bucket admits the first call after its token refills. With strictly periodic calls
(a load generator cycling US, US, FR, FR, JP at a fixed interval, a cron, a round-robin balancer)
that is the same phase of the cycle every time: a 1/s sampler caught 22 US, 8 FR, 4 JP for a
2:2:1 mix, or never JP at all. Every rate-limited decision of the sensor is driven here with a
fake clock and a fixed cycle of states, and the share of each state among the admitted calls is
held to its share of the calls, within five binomial standard deviations of ``n`` draws
(a bound the deterministic runs below also pass by a wide margin: each is seeded).

Why binomial: in these runs the calls are denser than the rate, so the k-th admission is the
first call after a uniform instant of the k-th interval of ``1 / rate`` (see
:func:`sensor.guards.jitter_seed`). When one cycle of the states spans exactly one interval each
admission's state is an independent draw with the states' shares; when it spans more, the
intervals tile the cycle and the counts vary less than binomial counts would. So the binomial
bound holds in both cases, and a phase-locked sampler (every admission the same state, or two
states out of three) misses it by hundreds of standard deviations.
"""

from __future__ import annotations

import collections
import math
import os
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sensor import guards, hotpath
from sensor.expressions import compile
from sensor.guards import (
    LONG_WAIT,
    Account,
    CpuBudget,
    ExpectGate,
    Gate,
    jitter_seed,
    switch_of,
    tick_after,
    tick_of,
)
from sensor.hotpath import CLOSE_TICK, FastExpectGate, eval_burst

#: The tutorial's cycle: two US, two FR, one JP.
CYCLE = ("US", "US", "FR", "FR", "JP")
#: Binomial standard deviations a share may be off by (one in 1.7 million per state).
SIGMAS = 5.0


@pytest.fixture(autouse=True)
def seeded() -> Iterator[None]:
    jitter_seed(20261206)
    yield
    jitter_seed(None)


class Clock:
    """A fake ``time.monotonic`` (seconds) and ``perf_counter_ns``, advanced by the test."""

    def __init__(self, start: float = 1000.0) -> None:
        self.ns = int(start * 1e9)

    def monotonic(self) -> float:
        return self.ns / 1e9

    def perf(self) -> int:
        return self.ns


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock()
    # The gates read their clocks through these names, bound when a gate is made.
    monkeypatch.setattr(time, "monotonic", fake.monotonic)
    monkeypatch.setattr(hotpath, "_perf", fake.perf)
    return fake


def assert_shares(admitted: list[object], states: tuple[object, ...]) -> None:
    """Each state's share of ``admitted`` within SIGMAS binomial deviations of its share of
    ``states`` (one cycle of the input)."""
    n = len(admitted)
    counts = collections.Counter(admitted)
    truth = collections.Counter(states)
    for state, k in truth.items():
        p = k / len(states)
        bound = SIGMAS * math.sqrt(n * p * (1 - p))
        got = counts.get(state, 0)
        assert abs(got - n * p) <= bound, (
            f"{state}: {got} of {n} admitted, expected {n * p:.0f} +- {bound:.0f} ({dict(counts)})"
        )


def drive(
    clock: Clock,
    hook: Callable[..., Any],
    *,
    period: float,
    calls: int,
    states: tuple[object, ...] = CYCLE,
    before: Callable[[], None] | None = None,
) -> None:
    """Call ``hook(state)`` ``calls`` times, one every ``period`` seconds, cycling ``states``."""
    start = clock.ns
    step = round(period * 1e9)
    for i in range(calls):
        clock.ns = start + i * step
        if before is not None:
            before()
        hook(states[i % len(states)])


def bounded_by_the_bucket(times: list[float], rate: float, burst: float) -> None:
    """Fewer than ``max(burst, 2) + 1 + rate * T`` admissions in any ``T`` seconds (admission to
    admission), and over the whole dense run ``rate * T`` to within that: the bucket holds
    between 0 and ``max(burst, 2) + 1`` tokens, so the rate is exact and the debt bounded."""
    n = len(times)
    full = max(burst, 2.0) + 1.0
    for i in range(n):
        for j in range(i + 1, min(n, i + 4 * int(full + 2))):
            assert j - i + 1 < full + rate * (times[j] - times[i]), (i, j)
    span = times[-1] - times[0]
    assert rate * span - full < n < full + rate * span, (n, span)


# -- Gate: a probe's rate (a snapshot at 1/s) -------------------------------------------------


def snapshot_gate(rate: float, burst: int | None = None) -> tuple[Gate, list[object], list[float]]:
    captured: list[object] = []
    times: list[float] = []

    def fire(value: object) -> bool:
        captured.append(value)
        times.append(time.monotonic())
        return True

    gate = Gate(fire, rate=rate, burst=burst, on_stop=lambda why: None)
    return gate, captured, times


@pytest.mark.parametrize(
    ("period", "states"),
    [
        # One cycle of five calls per interval: a plain bucket captures one state only.
        (0.2, CYCLE),
        # A cycle of four calls over two intervals: a plain bucket captures every second call,
        # the first US and the FR, never the second US nor JP.
        (0.5, ("US", "US", "FR", "JP")),
    ],
)
def test_a_snapshot_probe_captures_each_phase_of_a_periodic_input_in_proportion(
    clock: Clock, period: float, states: tuple[str, ...]
) -> None:
    gate, captured, times = snapshot_gate(rate=1.0)
    drive(clock, gate.hook, period=period, calls=int(4000 / period), states=states)
    assert_shares(captured, states)
    bounded_by_the_bucket(times, rate=1.0, burst=1.0)


def test_the_long_run_rate_is_the_configured_one_and_the_burst_is_kept(clock: Clock) -> None:
    gate, captured, times = snapshot_gate(rate=5.0, burst=3)
    # Dense calls (1,000 a second) for 600 s: 3,000 admissions, to within the bucket's bounds.
    drive(clock, gate.hook, period=0.001, calls=600_000, states=tuple(range(7)))
    assert 5.0 * 600 - 1 - 3 <= len(captured) <= 3 + 5.0 * 600 + 1, len(captured)
    bounded_by_the_bucket(times, rate=5.0, burst=3.0)
    assert_shares(captured, tuple(range(7)))
    # After a pause, a burst of calls at once: exactly the burst is captured, and the next
    # capture is not before the next token, as with a plain bucket.
    clock.ns += 60 * 10**9
    del captured[:], times[:]
    for _ in range(100):
        gate.hook("burst")
    assert captured == ["burst"] * 3
    start = clock.ns
    drive(clock, gate.hook, period=0.001, calls=1000, states=("after",))
    assert times[3] - start / 1e9 >= 1 / 5.0


@pytest.mark.parametrize("period", [0.3, 0.7])
def test_the_rate_is_kept_when_calls_come_late_for_their_token(clock: Clock, period: float) -> None:
    # Calls every 0.3 s (or 0.7 s) at 1/s: the call that takes a token comes up to a period after
    # it was due. A plain bucket of burst 1 dropped that fraction of a token every time and
    # captured 0.83 (0.71) a second; the jittered one keeps it and holds the rate.
    gate, captured, times = snapshot_gate(rate=1.0)
    drive(clock, gate.hook, period=period, calls=int(2000 / period))
    bounded_by_the_bucket(times, rate=1.0, burst=1.0)
    assert_shares(captured, CYCLE)


def test_calls_after_a_pause_are_captured_once_within_an_interval(clock: Clock) -> None:
    # The jitter may bring two captures closer than 1 / rate in dense traffic, but not right
    # after a pause: calls for 0.99 s after a pause's capture at 1/s are one capture (as the
    # plain bucket gave), whatever the draw. Without that rule, about one seed in two would
    # capture twice.
    for seed in range(200):
        jitter_seed(seed)
        clock.ns += 10 * 10**9
        gate, captured, _ = snapshot_gate(rate=1.0)
        drive(clock, gate.hook, period=0.01, calls=100)
        assert len(captured) == 1, seed
        assert gate.counts() == (1, 99)
        clock.ns += 10 * 10**9  # a pause: the bucket refills and overflows
        del captured[:]
        drive(clock, gate.hook, period=0.01, calls=100)
        assert len(captured) == 1, seed


def test_a_firing_that_produced_nothing_leaves_the_sampling_uniform_in_time(clock: Clock) -> None:
    # The token of a firing that produced nothing (condition false) is given back: the call
    # captured is the first one whose condition holds after a uniform instant. So each such call
    # is captured in proportion to the time since the previous one (the documented meaning of
    # "sampled in proportion to its share of time"): here the cycle US, US, FR, FR, JP with FR
    # never producing, US 1 + 1 periods of 5, JP 3 (it follows FR, FR). A plain bucket gives a
    # single state (the first producing one after the interval's end).
    captured: list[object] = []

    def fire(value: object) -> bool:
        if value == "FR":
            return False  # condition false: nothing produced
        captured.append(value)
        return True

    gate = Gate(fire, rate=1.0, on_stop=lambda why: None)
    drive(clock, gate.hook, period=0.2, calls=20_000)
    assert_shares(captured, ("US", "US", "JP", "JP", "JP"))


# -- ExpectGate: the evaluation bucket, the violation and pass buckets ---------------------------


def expect_gate(admitted: list[object], *, outcome: str, **limits: float) -> ExpectGate:
    """A gate whose every evaluation is recorded (``outcome="evaluated"``), or whose every firing
    is a violation (or a pass) recorded when captured."""

    def fire(value: object, admit: Callable[..., object]) -> bool:
        if outcome == "evaluated":
            admitted.append(value)
            return False
        if admit(outcome == "violation"):
            admitted.append(value)
            return True
        return False

    limits.setdefault("eval_rate", 1e9)
    limits.setdefault("violation_rate", 1e9)
    return ExpectGate(
        fire,
        eval_rate=limits["eval_rate"],
        violation_rate=limits["violation_rate"],
        pass_rate=limits.get("pass_rate"),
        on_stop=lambda why: None,
    )


@pytest.mark.parametrize(
    ("outcome", "limits"),
    [
        ("evaluated", {"eval_rate": 1.0}),
        ("violation", {"violation_rate": 1.0}),
        ("pass", {"pass_rate": 1.0}),
    ],
    ids=["eval_rate", "violation_rate", "pass_rate"],
)
def test_an_expectation_samples_each_phase_in_proportion(
    clock: Clock, outcome: str, limits: dict[str, float]
) -> None:
    admitted: list[object] = []
    gate = expect_gate(admitted, outcome=outcome, **limits)
    drive(clock, gate.hook, period=0.2, calls=20_000)
    assert_shares(admitted, CYCLE)
    assert 4000 - 1 <= len(admitted) <= 4000 + 2, len(admitted)


# -- the CPU budget's share, while load is shed -----------------------------------------------


def test_a_shed_probe_admits_each_phase_in_proportion() -> None:
    # While load is shed a probe's share refills at 1 ms of CPU a second and each firing costs
    # 1 ms: one firing a second, the first call once the share is above its threshold. With
    # a plain threshold (0) that is the same call of the cycle every time.
    account = Account("p")
    account.rate = 1e6
    account.avg_ns = 1e6
    account.last = 0.0
    admitted: list[str] = []
    for i in range(20_000):
        now = i * 0.2
        if account.admit(now):
            admitted.append(CYCLE[i % len(CYCLE)])
            account.tokens -= 1e6  # what CpuBudget.spend debits for the firing
    assert_shares(admitted, CYCLE)
    # One firing a second: the share's rate, to within its bounds (a second's worth, one more
    # firing's cost of jitter).
    assert 4000 - 3 <= len(admitted) <= 4000 + 2, len(admitted)


# -- FastExpectGate: the always-on expectation's own buckets, and the waker's ticks -------------


def fast_gate(
    admitted: list[object],
    *,
    eval_rate: float = 1e9,
    violation_rate: float = 1e9,
    waker: Any = None,
) -> FastExpectGate:
    """Every evaluation a violation (``result < 0`` of a positive state), captured and recorded
    within ``violation_rate``."""
    budget = CpuBudget(0.99)
    return FastExpectGate(
        expr=compile("result < 0", slots=("result",)),
        value_name="result",
        slow=lambda frame, value, outcome, error: admitted.append(value),
        failed=lambda exc: admitted.append(exc),
        depth=1,
        dispatch=frozenset(),
        eval_rate=eval_rate,
        violation_rate=violation_rate,
        pass_rate=None,
        pass_burst=None,
        max_hits=None,
        expires_at=None,
        on_stop=lambda why: None,
        budget=budget,
        account=budget.account("p"),
        waker=waker,
    )


@pytest.mark.parametrize("limit", ["eval_rate", "violation_rate"])
def test_an_always_on_expectation_samples_each_phase_in_proportion(
    clock: Clock, limit: str
) -> None:
    admitted: list[object] = []
    gate = fast_gate(admitted, **{limit: 1.0})  # type: ignore[arg-type]
    states = (1, 1, 2, 2, 3)
    drive(clock, gate.hook, period=0.2, calls=20_000, states=states)
    assert_shares(admitted, states)
    assert 4000 - 1 <= len(admitted) <= 4000 + 2, len(admitted)


class FakeWaker:
    """Reopens a closed gate when the fake clock reaches the time it was asked for."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.pending: list[tuple[float, Callable[[], None]]] = []
        self.asked: list[float] = []

    def schedule(self, at: float, reopen: Callable[[], None]) -> bool:
        self.pending.append((at, reopen))
        self.asked.append(at)
        return True

    def tick(self) -> None:
        now = self.clock.monotonic()
        due = [p for p in self.pending if p[0] <= now]
        if due:
            self.pending = [p for p in self.pending if p[0] > now]
            for _, reopen in due:
                reopen()


@pytest.mark.parametrize("eval_rate", [0.8, 40.0])
def test_a_closed_gate_reopens_at_a_random_phase_of_a_periodic_input(
    clock: Clock, eval_rate: float
) -> None:
    # Calls every 5 ms cycling four states: one cycle per LONG_WAIT (20 ms). A gate that closes
    # reopens on the waker's tick: on a multiple of LONG_WAIT (or of CLOSE_TICK) every reopening
    # would find the cycle at the same phase and evaluate the same state first, whatever the
    # bucket's jitter. At 0.8/s each reopening evaluates one call (waits above CLOSE_TICK round
    # to a LONG_WAIT tick); at 40/s waits round to a CLOSE_TICK tick, and each reopening starts
    # a run of evaluations, of which the first is counted here.
    assert eval_rate * CLOSE_TICK < 1.0 or eval_rate == 40.0
    waker = FakeWaker(clock)
    admitted: list[object] = []
    gate = fast_gate(admitted, eval_rate=eval_rate, waker=waker)
    pair = switch_of(gate.hook)
    assert pair is not None
    switch, closed = pair
    firsts: list[object] = []
    was_open = [True]

    def call(state: object) -> None:
        waker.tick()
        if switch:  # what the backend does inline (see guards.switch_of)
            if not was_open[0]:
                before = len(admitted)
                gate.hook(state)
                if len(admitted) > before:
                    firsts.append(state)
            else:
                gate.hook(state)
            was_open[0] = bool(switch)
        else:
            next(closed)
            was_open[0] = False

    states = (1, 2, 3, 4)
    # Over 4,000 reopenings either way (one a CLOSE_TICK tick, 1 to 2 s apart, at 40/s).
    seconds = 7500 if eval_rate < 1 else int(6000 * CLOSE_TICK)
    drive(clock, call, period=0.005, calls=seconds * 200, states=states, before=None)
    assert waker.asked, "the gate never closed"
    assert len(firsts) >= 4000, len(firsts)
    assert_shares(firsts, states)
    assert_shares(admitted, states)
    # The rate is kept: the burst, then eval_rate a second, less the closing pending at the end.
    assert eval_rate * seconds - 2 * eval_rate * CLOSE_TICK <= len(admitted), len(admitted)
    assert len(admitted) <= eval_burst(eval_rate) + eval_rate * seconds + 1, len(admitted)


def test_ticks_are_shared_bounded_and_at_every_phase() -> None:
    # Deadlines on a fixed period (every 7 ms, offset 1.3 ms; 50 ms for a CLOSE_TICK of 1 s):
    # their ticks must be at every phase of LONG_WAIT, not on one, as a lattice of multiples
    # would put them.
    bins = 8
    for every in (LONG_WAIT, CLOSE_TICK):
        seen: dict[int, float] = {}
        # 20,000 deadlines over 1,000 intervals of ``every`` or more.
        step = 0.007 * max(1.0, every / (7 * LONG_WAIT))
        for i in range(20_000):
            at = 5000.0013 + i * step
            t = tick_after(at, every)
            assert at < t < at + 2 * every, (at, t)
            # A LONG_WAIT tick (one wake-up serves both sequences).
            assert tick_of(math.floor(t / LONG_WAIT)) == t
            # One tick per interval of ``every``: every deadline of an interval shares it.
            assert seen.setdefault(math.floor(t / every), t) == t
        # The phases of the distinct ticks (a late tick serves more of the deadlines, which
        # is as it should be: the deadlines before it in its interval).
        phases = [int((t % LONG_WAIT) / LONG_WAIT * bins) for t in seen.values()]
        assert len(phases) >= 1000
        assert_shares(phases, tuple(range(bins)))


# -- the generator: private, and not shared with a forked child ----------------------------------


def test_jitter_leaves_the_hosts_random_sequence_alone(clock: Clock) -> None:
    random.seed(12345)
    expected = [random.random() for _ in range(5)]
    random.seed(12345)
    gate, captured, _ = snapshot_gate(rate=1.0)
    drive(clock, gate.hook, period=0.2, calls=10_000)
    jitter_seed(None)
    assert [random.random() for _ in range(5)] == expected
    assert_shares(captured, CYCLE)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_does_not_repeat_its_parents_jitter() -> None:
    # Workers forked from one master would otherwise sample in step (the same phases).
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.write(write, repr([guards._uniform() for _ in range(4)]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    os.waitpid(pid, 0)
    parent = repr([guards._uniform() for _ in range(4)])
    assert child
    assert child != parent


# -- traffic slower than the rate: every call admitted, by every bucket -----------------------
#
# The first jittered buckets needed a random 1 to 2 tokens after any admission that left them
# dry, so a call that came 1.05 intervals after the previous one (more than a token refilled,
# no call in between) was refused about half the time: violations spaced 2.1 s apart at
# violation_rate 0.5/s were dropped. A rate limiter must admit every call of traffic slower
# than its rate, as a plain token bucket does. Each bucket kind is driven below with calls
# every 1.05 intervals, and with random gaps all longer than an interval (down to 1.001 of
# one), and must admit them all.


def sparse_gaps(rate: float, kind: str, n: int) -> list[float]:
    """``n`` gaps (seconds) all longer than ``1 / rate``: fixed at 1.05 intervals, or random in
    (1.001, 1.5] intervals (seeded), most of them within a few per cent of the rate."""
    if kind == "fixed":
        return [1.05 / rate] * n
    draw = random.Random(7)
    return [(1.001 + 0.499 * draw.random() ** 3) / rate for _ in range(n)]


def drive_gaps(
    clock: Clock,
    hook: Callable[..., Any],
    gaps: list[float],
    states: tuple[object, ...] = CYCLE,
    before: Callable[[], None] | None = None,
) -> None:
    """One call now, then one after each of ``gaps`` (seconds), cycling ``states``."""
    t = clock.ns
    for i in range(len(gaps) + 1):
        if i:
            t += round(gaps[i - 1] * 1e9)
        clock.ns = t
        if before is not None:
            before()
        hook(states[i % len(states)])


class Switched:
    """Calls a gate's hook as the backend does: through its switch (closed: one inline count),
    the fake waker reopening closed gates on time first."""

    def __init__(self, hook: Callable[..., Any], waker: FakeWaker) -> None:
        pair = switch_of(hook)
        assert pair is not None
        self.switch, self.closed = pair
        self.hook = hook
        self.waker = waker

    def __call__(self, state: object) -> None:
        self.waker.tick()
        if self.switch:
            self.hook(state)
        else:
            next(self.closed)


def sparse_cases() -> list[Any]:
    return [
        pytest.param(rate, kind, id=f"{rate}/s-{kind}")
        for rate in (0.5, 1.0, 8.0, 40.0)
        for kind in ("fixed", "random")
    ]


@pytest.mark.parametrize("waked", [False, True], ids=["clock", "waker"])
@pytest.mark.parametrize(("rate", "kind"), sparse_cases())
def test_a_snapshot_probe_admits_every_call_slower_than_its_rate(
    clock: Clock, rate: float, kind: str, waked: bool
) -> None:
    captured: list[object] = []
    waker = FakeWaker(clock)
    gate = Gate(
        lambda value: captured.append(value) or True,
        rate=rate,
        on_stop=lambda why: None,
        waker=waker if waked else None,
    )
    call = Switched(gate.hook, waker) if waked else gate.hook
    gaps = sparse_gaps(rate, kind, 3000)
    drive_gaps(clock, call, gaps)
    assert len(captured) == len(gaps) + 1, f"{len(gaps) + 1 - len(captured)} calls refused"
    assert gate.counts() == (len(gaps) + 1, 0)


@pytest.mark.parametrize("limit", ["eval_rate", "violation_rate", "pass_rate"])
@pytest.mark.parametrize(("rate", "kind"), sparse_cases())
def test_an_expectation_admits_every_call_slower_than_its_rates(
    clock: Clock, rate: float, kind: str, limit: str
) -> None:
    admitted: list[object] = []
    outcome = {"eval_rate": "evaluated", "violation_rate": "violation", "pass_rate": "pass"}
    waker = FakeWaker(clock)
    gate = expect_gate(admitted, outcome=outcome[limit], **{limit: rate})
    gaps = sparse_gaps(rate, kind, 3000)
    drive_gaps(clock, gate.hook, gaps)
    assert len(admitted) == len(gaps) + 1, f"{len(gaps) + 1 - len(admitted)} calls refused"
    del waker


@pytest.mark.parametrize("limit", ["eval_rate", "violation_rate"])
@pytest.mark.parametrize(("rate", "kind"), sparse_cases())
def test_an_always_on_expectation_admits_every_call_slower_than_its_rates(
    clock: Clock, rate: float, kind: str, limit: str
) -> None:
    # With the waker: the hot-path gate closes after an admission that leaves its bucket dry
    # and reopens on one of the waker's shared ticks. A tick after the bucket's deadline (up
    # to two ticks late) refused the calls that came in between, however sparse.
    waker = FakeWaker(clock)
    admitted: list[object] = []
    gate = fast_gate(admitted, waker=waker, **{limit: rate})  # type: ignore[arg-type]
    gaps = sparse_gaps(rate, kind, 3000)
    drive_gaps(clock, Switched(gate.hook, waker), gaps, states=(1, 2, 3))
    assert len(admitted) == len(gaps) + 1, f"{len(gaps) + 1 - len(admitted)} calls refused"
    assert gate.counts() == (len(gaps) + 1, 0)


@pytest.mark.parametrize("kind", ["fixed", "random"])
def test_a_shed_probe_admits_every_firing_its_share_pays_for(kind: str) -> None:
    # The CPU budget's share while load is shed: 1 ms of CPU a second, each firing 1 ms.
    # Firings slower than that are all admitted (the jittered threshold is never above 0).
    account = Account("p")
    account.rate = 1e6
    account.avg_ns = 1e6
    account.last = 0.0
    account.tokens = 0.0
    now = 0.0
    admitted = 0
    gaps = sparse_gaps(1.0, kind, 3000)
    # First drive it dry with dense firings, so that the jitter is drawn, then sparse ones.
    for i in range(50):
        if account.admit(i * 0.1):
            account.tokens -= 1e6
    now = 5.0
    for gap in gaps:
        now += gap
        if account.admit(now):
            admitted += 1
            account.tokens -= 1e6
    assert admitted == len(gaps)


# -- the bounds, for every bucket: never above rate * T + burst -------------------------------


def mixed_gaps(rate: float, n: int) -> list[float]:
    """Gaps around the interval: dense stretches, sparse stretches, pauses (seeded)."""
    draw = random.Random(11)
    gaps = []
    for i in range(n):
        phase = (i // 500) % 3
        scale = (0.2, 1.3, 4.0)[phase]  # dense, a little slower than the rate, bursty
        gaps.append(draw.expovariate(1.0) * scale / rate)
    return gaps


def bounded_from_the_start(times: list[float], start: float, rate: float, burst: float) -> None:
    """Admissions by each admission's time: at most ``burst + rate * (t - start)``, the plain
    bucket's bound (the bucket starts full and never holds less than nothing)."""
    for k, t in enumerate(times, 1):
        assert k <= burst + rate * (t - start) + 1e-9, (k, t - start)


@pytest.mark.parametrize("rate", [1.0, 8.0])
def test_every_bucket_admits_at_most_rate_times_t_plus_burst(clock: Clock, rate: float) -> None:
    gaps = mixed_gaps(rate, 6000)
    start = clock.monotonic()
    kinds: dict[str, tuple[Callable[..., Any], list[float], float]] = {}

    def recorder(times: list[float]) -> Callable[..., bool]:
        def fire(value: object, admit: Callable[..., object] | None = None) -> bool:
            if admit is not None and not admit(True):
                return False
            times.append(time.monotonic())
            return True

        return fire

    times: dict[str, list[float]] = {k: [] for k in ("rate", "eval", "violation", "fast")}
    gate = Gate(recorder(times["rate"]), rate=rate, on_stop=lambda why: None)
    kinds["rate"] = (gate.hook, times["rate"], max(1.0, rate))
    e1 = ExpectGate(
        recorder(times["eval"]),
        eval_rate=rate,
        violation_rate=1e9,
        pass_rate=None,
        on_stop=lambda why: None,
    )
    kinds["eval"] = (e1.hook, times["eval"], max(1.0, rate))
    e2 = ExpectGate(
        recorder(times["violation"]),
        eval_rate=1e9,
        violation_rate=rate,
        pass_rate=None,
        on_stop=lambda why: None,
    )
    kinds["violation"] = (e2.hook, times["violation"], max(1.0, rate))
    fast: list[object] = []
    f = fast_gate(fast, eval_rate=rate)
    kinds["fast"] = (f.hook, times["fast"], eval_burst(rate))

    def every(state: object) -> None:
        for name, (hook, _, _) in kinds.items():
            before = len(fast)
            hook(state)
            if name == "fast" and len(fast) > before:
                times["fast"].append(time.monotonic())

    drive_gaps(clock, every, gaps, states=(1, 2, 3))
    span = clock.monotonic() - start
    for name, (_, got, burst) in kinds.items():
        assert got, name
        bounded_from_the_start(got, start, rate, burst)
        bounded_by_the_bucket_windows(got, rate, burst)
        # Not far below what a plain token bucket of the same rate and burst admits from the
        # same calls (the jitter moves admissions, it must not lose them).
        plain = plain_bucket_admits(gaps, rate, burst)
        assert len(got) >= 0.97 * plain, (name, len(got), plain, rate * span)


def plain_bucket_admits(gaps: list[float], rate: float, burst: float) -> int:
    """How many of the calls (one now, one after each gap) a plain token bucket admits."""
    tokens, admitted = burst, 0
    for gap in [0.0, *gaps]:
        tokens = min(burst, tokens + gap * rate)
        if tokens >= 1.0:
            tokens -= 1.0
            admitted += 1
    return admitted


def bounded_by_the_bucket_windows(times: list[float], rate: float, burst: float) -> None:
    """Fewer than ``max(burst, 2) + 1 + rate * T`` admissions in any ``T`` seconds."""
    n = len(times)
    full = max(burst, 2.0) + 1.0
    for i in range(n):
        for j in range(i + 1, min(n, i + 4 * int(full + 2))):
            assert j - i + 1 < full + rate * (times[j] - times[i]), (i, j)
