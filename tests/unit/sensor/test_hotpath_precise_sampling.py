"""The expectation hook's metering in the CPU budget's precise mode is a random sample.

In the precise mode (the budget sheds load, or a window went over in wall time) firings are
metered with the thread's CPU clock, a system call. The general hook
(:class:`sensor.hotpath.FastExpectGate`) times one firing in a random stride of 1 to
``2 ** PRECISE_STRIDE_BITS`` and charges it for the stride
(:meth:`sensor.guards.CpuBudget.spend_sampled`); a probe's lane times the same random sample of
its firings with the CPU clock instead of the wall clock and hands it over in its batches
(:meth:`~sensor.guards.CpuBudget.spend_many`). Captures are timed on every firing and charged
exactly. Every test runs on both (``hook``). Fake clocks throughout: nothing here depends on
how fast the machine is.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from waker_doubles import SteppingClock

from sensor import _epoch, guards, hotpath
from sensor.expressions import compile
from sensor.guards import CpuBudget, tally_count
from sensor.hotpath import FastExpectGate


class Ledger(CpuBudget):
    """A budget in its precise mode that records what it is handed: ``alone`` (ns, one firing
    each), ``sampled`` (ns of the timed firing, firings it stands for, extra)."""

    def __init__(self, fraction: float = 0.5) -> None:
        super().__init__(fraction)
        self.clock = time.thread_time_ns  # the precise mode (the fake, see the fixture)
        self.alone: list[int] = []
        self.sampled: list[tuple[int, int, int]] = []
        self.counts: list[int] = []
        self.closings: list[int] = []

    def spend(self, account: Any, ns: int, clock: Any = None) -> str | None:
        self.alone.append(ns)
        return None

    def spend_sampled(
        self, account: Any, ns: int, count: int, extra: int = 0, whole: bool = True
    ) -> str | None:
        self.sampled.append((ns, count, extra))
        return None

    def spend_closing(self, account: Any, ns: int) -> None:
        self.closings.append(ns)

    def spend_many(self, account: Any, ns: int, count: int) -> bool:
        self.sampled.append((ns, 1, 0))  # (a lane's batch: scaled by its strides already)
        self.counts.append(count)
        return True

    def estimate(self, hook: Any = None) -> int:
        """The firings' cost as charged: the samples scaled, without the hand-overs' extra,
        and what a lane holds in its batch."""
        held = 0
        if hook is not None and _is_lane(hook):
            held = int(_cells(hook)["lpend"] * 1e9)
        return sum(ns * count for ns, count, _ in self.sampled) + sum(self.alone) + held

    def firings(self, hook: Any) -> int:
        """The firings the charges stand for (a lane's: its batches and what it holds)."""
        if _is_lane(hook):
            return sum(self.counts) + _cells(hook)["lcount"]
        return sum(count for _, count, _ in self.sampled)


def _is_lane(hook: Any) -> bool:
    return bool(hook.__code__.co_filename == "<expectation lane>")


def _cells(hook: Any) -> dict[str, Any]:
    cells = hook.__closure__ or ()
    return {n: c.cell_contents for n, c in zip(hook.__code__.co_freevars, cells, strict=True)}


@pytest.fixture(params=["general", "lane"])
def hook(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Which hook serves the probe: the general one, or its lane (the fused form inline)."""
    monkeypatch.setattr(hotpath, "SPECIALISE_LANE", request.param == "lane")
    return str(request.param)


@pytest.fixture
def cpu(monkeypatch: pytest.MonkeyPatch, hook: str) -> Iterator[SteppingClock]:
    fake = SteppingClock()
    monkeypatch.setattr(time, "thread_time_ns", fake)
    wall = itertools.count(10**12, 10**6)  # 1 ms a read: the evaluation bucket is always full
    monkeypatch.setattr(hotpath, "_perf", lambda: next(wall))
    # What a firing costs outside its timed stretch (measured at the first placement) is
    # charged on top of the fake clock's figures: none here, so that these are exact.
    monkeypatch.setattr(hotpath, "_call_ns", 0)
    state = guards._rng.getstate()  # (the sensor's own generator: given back after the test)
    guards._rng.seed(13)  # the strides: the same in every run
    yield fake
    guards._rng.setstate(state)


def _gate(
    budget: CpuBudget,
    *,
    slow: Callable[..., None] | None = None,
    stops: list[str] | None = None,
    waker: Any = None,
) -> FastExpectGate:
    # A limited evaluation rate, as the standing probes have.
    return FastExpectGate(
        expr=compile("result >= 0", slots=("result",)),
        value_name="result",
        slow=slow or (lambda *a: None),
        failed=lambda exc: None,
        depth=1,
        dispatch=frozenset(),
        eval_rate=1e6,
        violation_rate=1e9,
        pass_rate=None,
        pass_burst=None,
        max_hits=None,
        expires_at=None,
        on_stop=(stops if stops is not None else []).append,
        budget=budget,
        account=budget.account("p"),
        waker=waker,
    )


def test_the_precise_mode_reads_the_cpu_clock_on_a_random_sample_of_firings(
    cpu: SteppingClock,
) -> None:
    # Before: three reads of the CPU clock (a system call of 0.6 us here) per firing, and a
    # locked hand-over. Now: three per stride of 1 to 16 firings (8.5 on average).
    budget = Ledger()
    g = _gate(budget)
    timed: list[int] = []
    n = 8000
    for i in range(n):
        before = cpu.reads
        g.hook(1)
        if cpu.reads > before:
            timed.append(i)
    assert tally_count(g.evaluations) == n
    assert 0.09 * n < len(timed) < 0.15 * n
    assert cpu.reads < 0.4 * n
    gaps = [b - a for a, b in itertools.pairwise(timed)]
    assert set(gaps) == set(range(1, 2**hotpath.PRECISE_STRIDE_BITS + 1))  # random, not periodic
    # Each timed firing stands for the firings since the last one, itself included: every
    # firing is in the charge but those of the stride under way.
    assert budget.firings(g.hook) == timed[-1] + 1
    assert budget.alone == []


@pytest.mark.parametrize("pattern", ["random", "period 8", "period 16"])
def test_the_precise_sampled_charge_is_the_true_cost_within_6_percent(
    cpu: SteppingClock, pattern: str
) -> None:
    # Each firing takes a known CPU time; what the budget is charged over many is within 6%
    # of their sum, also for a cost that comes back with the period of the mean stride or its
    # double (a fixed stride would alias with it). Seeded strides: the same figure every run.
    budget = Ledger()
    g = _gate(budget)
    rng = random.Random(5)
    n = 200_000
    true = 0
    for i in range(n):
        if pattern == "random":
            cost = rng.randrange(100, 2000)
        else:
            cost = 6000 if i % int(pattern.split()[1]) == 0 else 200
        cpu.cost = cost
        true += cost
        g.hook(1)
    assert tally_count(g.evaluations) == n
    charged = budget.estimate(g.hook)
    assert abs(charged - true) < 0.06 * true, (charged, true)


def test_a_stride_never_makes_a_cheap_firing_count_against_the_one_hit_cap(
    cpu: SteppingClock,
) -> None:
    # A firing at 40% of the one-hit cap, charged for a stride of up to 16, is up to 6.4 caps:
    # the cap is of the timed firing alone, so the probe is never disabled for it.
    budget = CpuBudget(0.001)
    budget.clock = time.thread_time_ns  # (the fake) the precise mode
    stops: list[str] = []
    g = _gate(budget, stops=stops)
    cpu.cost = int(0.4 * budget.hit_cap_ns)
    for _ in range(500):
        g.hook(1)
    assert stops == []
    assert budget.account("p").strikes == []


def test_a_dear_firing_in_the_precise_mode_still_disables_its_probe(cpu: SteppingClock) -> None:
    # Each firing costs twice the one-hit cap: HIT_CAP_STRIKES timed ones in a row disable the
    # probe, within that many strides.
    budget = CpuBudget(0.001)
    budget.clock = time.thread_time_ns
    stops: list[str] = []
    g = _gate(budget, stops=stops)
    cpu.cost = 2 * budget.hit_cap_ns
    firings = 0
    while not stops and firings < 1000:
        g.hook(1)
        firings += 1
    assert len(stops) == 1, stops
    assert stops[0].startswith("disabled by the CPU budget"), stops
    assert firings <= guards.HIT_CAP_STRIKES * 2**hotpath.PRECISE_STRIDE_BITS


def test_every_capture_in_the_precise_mode_is_charged_exactly(cpu: SteppingClock) -> None:
    # Every firing violates and is captured; a capture takes 50 us of CPU, the rest of the
    # firing none: the budget is charged 50 us per capture, timed or not, never scaled.
    def capture(*args: object) -> None:
        cpu.now += 50_000

    budget = Ledger()
    g = _gate(budget, slow=capture)
    for _ in range(1000):
        g.hook(-1)
    assert tally_count(g.violations) == 1000
    assert budget.alone == [50_000] * 1000
    assert all(ns == 0 for ns, _, _ in budget.sampled)


def test_load_is_still_shed_by_the_sampled_precise_charges(cpu: SteppingClock) -> None:
    # Firings of 1 ms of CPU under a budget of 10 ms a second: the sampled charges take the
    # window over, the budget gives the probe a share, and the firings it cannot pay for are
    # refused before any work, and counted.
    budget = CpuBudget(0.01)
    budget.clock = time.thread_time_ns
    g = _gate(budget)
    account = budget.account("p")
    cpu.cost = 1_000_000
    n = 300
    for _ in range(n):
        g.hook(1)
    assert budget.shedding
    assert account.rate is not None
    evaluated = tally_count(g.evaluations)
    assert evaluated < n
    assert account.skipped_count() >= n - evaluated - 2**hotpath.PRECISE_STRIDE_BITS


def test_what_a_firing_costs_outside_its_timed_stretch_is_charged_for_each_firing(
    cpu: SteppingClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The call into the hook, its entry tests and its return are outside what its clock can
    # time (bench_shop_icount: the budget saw 48-76% of what the evaluations cost the shop).
    # The figure measured at the first placement (firing_overhead_ns) is added to every
    # firing charged: here the evaluations take no time on the CPU clock, so all that is
    # charged is that figure, once per firing the samples stand for.
    monkeypatch.setattr(hotpath, "_call_ns", 700, raising=False)
    budget = Ledger()
    g = _gate(budget)
    n = 2000
    for _ in range(n):
        g.hook(1)
    assert tally_count(g.evaluations) == n
    firings = budget.firings(g.hook)
    assert n - 2**hotpath.PRECISE_STRIDE_BITS < firings <= n
    assert budget.estimate(g.hook) == pytest.approx(700 * firings, abs=len(budget.sampled) + 1)


class _DearShutWaker:
    """A waker whose ``schedule`` takes ``burn_ns`` of the (fake) CPU clock, then refuses (the
    gate reopens at once): what closing a gate for an empty share costs the host thread."""

    def __init__(self, cpu: SteppingClock, burn_ns: int) -> None:
        self.cpu = cpu
        self.burn_ns = burn_ns
        self.calls = 0

    def schedule(self, at: float, reopen: Callable[[], None]) -> bool:
        self.calls += 1
        self.cpu.now += self.burn_ns
        return False


def test_a_firing_refused_by_an_empty_share_is_charged_what_its_closing_cost(
    cpu: SteppingClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # While load is shed, a firing the probe's share refuses closes the gate until the share
    # refills (a refill time, the tick, the waker's schedule): in the standing shop under
    # callgrind, more of the host's instructions than the evaluations the budget metered.
    # It was not metered at all; now it is timed with the budget's clock and charged at once
    # (unscaled, with the firing's call), for no firing.
    monkeypatch.setattr(hotpath, "_call_ns", 0, raising=False)
    budget = Ledger()
    waker = _DearShutWaker(cpu, burn_ns=300_000)
    g = _gate(budget, waker=waker)
    account = budget.account("p")
    account.rate = 1.0  # a share of 1 ns a second, deep in debt: every firing is refused
    account.tokens = -1e12
    _epoch.bump()  # (as CpuBudget does when it sets a share: the lanes test it then)
    n = 20
    for _ in range(n):
        g.hook(1)
    assert tally_count(g.evaluations) == 0
    assert account.skipped_count() == n
    assert waker.calls == n
    assert budget.closings == [pytest.approx(waker.burn_ns, abs=1)] * n
    assert budget.alone == []
    assert budget.firings(g.hook) == 0
