"""A probe's own hook (the lane, :func:`sensor.hotpath._lane_code`) does what the general hook does.

The lane is generated per probe with the fused form of its expectation inline, and calls the
general hook for anything but a plain pass or violation. Each test holds it to the general hook
(``hotpath.SPECIALISE_LANE`` off, the fused form still on): the same counters, the same hits
(verdicts, error texts and the captures of the right frame), no user code run, every firing
metered, a rule arriving after placement honoured, nothing raised into the host.
"""

from __future__ import annotations

import decimal
import itertools
import json
import math
import random
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest
from waker_doubles import SteppingClock, StillClock

from sensor import _epoch, guards, hotpath, redaction
from sensor.engine import Engine
from sensor.expressions import compile
from sensor.guards import CpuBudget, tally_count
from sensor.hotpath import SETTLE_EVERY, FastExpectGate
from sensor.probes import Probe, ProbeState

CALLS: list[str] = []


def _record(name: str) -> Callable[..., Any]:
    def dunder(self: Any, *args: Any) -> Any:
        CALLS.append(name)
        return {"__len__": 1, "__hash__": 1, "__index__": 1, "__bool__": True}.get(name, True)

    return dunder


_HOOKS = {
    name: _record(name)
    for name in (
        "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__len__",
        "__bool__", "__abs__", "__add__", "__radd__", "__sub__", "__rsub__", "__index__",
        "__contains__", "__getitem__",
    )
}  # fmt: skip
_HOOKS["__iter__"] = lambda self: (CALLS.append("__iter__"), iter([1]))[1]


class Hostile:
    locals().update(_HOOKS)


HostileInt = type("HostileInt", (int,), dict(_HOOKS))
HostileFloat = type("HostileFloat", (float,), dict(_HOOKS))
HostileStr = type("HostileStr", (str,), dict(_HOOKS))
HostileList = type("HostileList", (list,), dict(_HOOKS))
HostileDict = type("HostileDict", (dict,), dict(_HOOKS))
HostileDecimal = type("HostileDecimal", (Decimal,), dict(_HOOKS))

CARD = "4111 1111 1111 1111"  # a secret by content (R2)

MODULE = """
def target(result, x, prices, discount, price, name, items, status, order, expected):
    return result
"""

#: The benchmark's ten typical expectations (bench/bench_expect_eval.py) and a few more.
CASES = [
    "result >= 0",
    "x >= 0",
    "result == sum(prices)",
    "0 <= discount <= price",
    "isinstance(name, str) and len(name) < 64",
    "isinstance(items, list) and len(items) > 0",
    "status in ('paid', 'shipped')",
    "order['total'] >= 0",
    "abs(result - expected) <= 1",
    "all(p >= 0 for p in prices)",
    "result",
    "order['password'] == 1",
    "result * x - expected < price",
    "status != name",
    "name is None or isinstance(name, str)",
]

_GOOD = (6, 1, [1, 2, 3], 1, 10, "item-7", [1], "paid", {"total": 1}, 5.5)


def _rows() -> list[tuple[Any, ...]]:
    plain: list[Any] = [
        -3, 0, 2, 10**30, 2**1100, -0.5, math.nan, math.inf, True, None, "", "paid", "shipped",
        "a" * 70, CARD, [], [1, -2], [0.5, 2], (1, 2), ["password", 3], list(range(40)),
        {"total": -1}, {"total": CARD}, {"password": 1, "total": 2}, {}, 1 + 2j,
        # Money: Decimals, the specials and the exponent's bound, mixed with ints and floats.
        Decimal("12.50"), Decimal("-0"), Decimal("NaN"), Decimal("sNaN"), Decimal("-Infinity"),
        Decimal("1e999999"), [Decimal(1), 2], [Decimal(1), 0.5], {"total": Decimal("-1.5")},
        {"total": Decimal("sNaN")},
    ]  # fmt: skip
    hostile: list[Any] = [
        Hostile(), HostileInt(3), HostileFloat(0.5), HostileStr("paid"), HostileList([1, 2]),
        HostileDict({"total": 1}), [HostileInt(1), 2], {"total": HostileInt(4)},
        HostileDecimal(3), [HostileDecimal(1), Decimal(2)], {"total": HostileDecimal(4)},
    ]  # fmt: skip
    rows = [_GOOD]
    for value in plain + hostile:
        # The value in every position in turn, the others good.
        for i in range(len(_GOOD)):
            rows.append((*_GOOD[:i], value, *_GOOD[i + 1 :]))
    return rows


def _run(
    engine: Engine,
    m: ModuleType,
    expect: str,
    between: Callable[[], None] | None = None,
    kind: str = "expect",
) -> tuple[tuple[int, int, int], list[Any]]:
    probe = Probe(
        kind=kind,
        location=f"{m.__name__}:target@return",
        expect=expect,
        limits={"eval_rate": 1e9, "violation_rate": 1e6, "rate": 1e6},
    )
    status = engine.install(probe)
    assert status.state is ProbeState.INSTALLED, status.reason
    rows = _rows()
    CALLS.clear()
    for row in rows:
        m.target(*row)
    if between is not None:
        between()
        for row in rows:
            m.target(*row)
    assert CALLS == [], f"the host's code ran: {CALLS}"
    got = engine.status(probe.id)
    assert got is not None
    engine.remove(probe.id)
    # The verdict and error of each hit, and its captures' names (the target's frame) and
    # scalar values: a capture of a long list or a huge int may run out of its time budget on
    # a loaded machine, in one run and not the other.
    hits = [
        json.loads(
            json.dumps(
                [
                    h.expect,
                    sorted(h.captures),
                    {k: c for k, c in h.captures.items() if type(c) in (int, float, str)},
                ],
                default=repr,
            ).replace(m.__name__, "target")
        )
        for h in engine.drain()
    ]
    assert CARD not in json.dumps(hits), hits
    return (got.evaluations, got.violations, got.expect_errors), hits


def _assert_same_hits(hits: list[Any], old_hits: list[Any]) -> None:
    """The same hits in the same order: the same verdict and error, the same names captured,
    and the same value wherever both captured a scalar. A capture runs under a wall-clock time
    budget: on a loaded machine (CI runs three suites on two cores) one run's capture may stop
    before a name the other captured, which then holds the budget's marker instead of a scalar
    (CI saw ``{'result': 6}`` against the full set); that is the capture's deadline, not the
    lane's answer. Without load both sides capture every scalar (the values compared in full).
    """
    assert len(hits) == len(old_hits), (hits, old_hits)
    for new, old in zip(hits, old_hits, strict=True):
        assert new[:2] == old[:2], (new, old)
        both = new[2].keys() & old[2].keys()
        assert {k: new[2][k] for k in both} == {k: old[2][k] for k in both}, (new, old)


@pytest.mark.parametrize("expect", CASES)
def test_the_lane_gives_the_general_hooks_counters_and_hits(
    engine: Engine,
    load: Callable[..., ModuleType],
    expect: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts, hits = _run(engine, load(MODULE), expect)
    with monkeypatch.context() as patch:
        patch.setattr(hotpath, "SPECIALISE_LANE", False)
        old_counts, old_hits = _run(engine, load(MODULE), expect)
    assert counts == old_counts
    _assert_same_hits(hits, old_hits)
    assert counts[0] == len(_rows())
    assert counts[1] > 0  # some rows violate: captures of the target's frame compared


_DECIMAL_CASES = [
    "result >= 0",
    "0 <= discount <= price",
    "abs(result - expected) <= 1",
    "result == sum(prices)",
    "all(p >= 0 for p in prices)",
    "result * x - expected < price",
]


def _contexts() -> list[decimal.Context]:
    # The default (NaN ordered, sNaN compared, overflow: trapped); strict (an inexact or
    # rounded result, a float compared: trapped); a tiny precision; nothing trapped.
    return [
        decimal.Context(traps=[decimal.Inexact, decimal.Rounded, decimal.FloatOperation]),
        decimal.Context(prec=2),
        decimal.Context(prec=1, traps=[]),
    ]


@pytest.mark.parametrize("expect", _DECIMAL_CASES)
def test_decimals_in_the_hosts_context_give_the_same_hits_and_flags_in_every_hook(
    engine: Engine,
    load: Callable[..., ModuleType],
    expect: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The thread's decimal context is the host's: the lane, the general hook and the closures
    # alone (fused forms off) evaluate under it, raise where it traps (the lane and the fused
    # form then leave it to the closures) and leave the same flags in it.
    for ctx in _contexts():

        def run(
            ctx: decimal.Context = ctx,
        ) -> tuple[tuple[int, int, int], list[Any], dict[str, bool]]:
            with decimal.localcontext(ctx) as local:
                counts, hits = _run(engine, load(MODULE), expect)
            return counts, hits, {sig.__name__: on for sig, on in local.flags.items()}

        counts, hits, flags = run()
        with monkeypatch.context() as patch:
            patch.setattr(hotpath, "SPECIALISE_LANE", False)
            general = run()
            patch.setattr(hotpath, "SPECIALISE_FUSED", False)
            closures = run()
        for old_counts, old_hits, old_flags in (general, closures):
            assert counts == old_counts, ctx
            _assert_same_hits(hits, old_hits)
            assert flags == old_flags, ctx
        assert counts[0] == len(_rows())


@pytest.mark.parametrize("expect", CASES[:10])
def test_the_lane_of_a_snapshot_probe_gives_the_same_passes_and_novel_states(
    engine: Engine,
    load: Callable[..., ModuleType],
    expect: str,
    monkeypatch: pytest.MonkeyPatch,
    still: StillClock,
) -> None:
    # A snapshot probe with an expectation: its passing firings go through the pass bucket
    # (1 in 1,000 s: the first is captured, the rest refused) and the novelty check of their
    # value classes, which captures each new one within its own bucket (NOVEL_RATE a second).
    # Both buckets read the still clock: on a loaded machine one run took longer than the
    # other, its novelty bucket refilled and it captured a value class the other refused
    # (seen once on 3.13 under load).
    limits = {"eval_rate": 1e9, "violation_rate": 1e6, "rate": 0.001}
    monkeypatch.setattr(Probe, "__init__", _with_limits(Probe.__init__, limits))
    counts, hits = _run(engine, load(MODULE), expect, kind="snapshot")
    with monkeypatch.context() as patch:
        patch.setattr(hotpath, "SPECIALISE_LANE", False)
        old_counts, old_hits = _run(engine, load(MODULE), expect, kind="snapshot")
    assert counts == old_counts
    _assert_same_hits(hits, old_hits)
    # The first pass captured within the rate, and any new value class after it.
    assert sum(1 for h in hits if h[0]["ok"] is True) >= 1, hits


def _with_limits(init: Callable[..., None], limits: dict[str, float]) -> Callable[..., None]:
    def patched(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["limits"] = limits
        init(self, *args, **kwargs)

    return patched


def test_a_rule_arriving_after_placement_is_honoured_by_the_lane(
    engine: Engine, load: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    def secret() -> None:
        redaction.set_redactor(redaction.Redactor(names=["status", "total"]))

    def run(expect: str) -> tuple[tuple[int, int, int], list[Any]]:
        try:
            return _run(engine, load(MODULE), expect, between=secret)
        finally:
            redaction.set_redactor(None)

    for expect in ("status in ('paid', 'shipped')", "order['total'] >= 0"):
        counts, hits = run(expect)
        with monkeypatch.context() as patch:
            patch.setattr(hotpath, "SPECIALISE_LANE", False)
            old_counts, old_hits = run(expect)
        assert counts == old_counts
        _assert_same_hits(hits, old_hits)
        assert counts[1] > len(_rows())  # the second pass violates: status and total redacted


def _gate(
    budget: CpuBudget,
    source: str = "result >= 0",
    *,
    slow: Callable[..., None] | None = None,
    failed: Callable[[Exception], object] | None = None,
    stops: list[str] | None = None,
    eval_rate: float = 1e9,
    pass_rate: float | None = None,
    max_hits: int | None = None,
    expires_at: float | None = None,
) -> FastExpectGate:
    return FastExpectGate(
        expr=compile(source, slots=("result",)),
        value_name="result",
        slow=slow or (lambda *a: None),
        failed=failed or (lambda exc: None),
        depth=1,
        dispatch=frozenset(),
        eval_rate=eval_rate,
        violation_rate=1e9,
        pass_rate=pass_rate,
        pass_burst=None,
        max_hits=max_hits,
        expires_at=expires_at,
        on_stop=(stops if stops is not None else []).append,
        budget=budget,
        account=budget.account("p"),
    )


def _is_lane(hook: Callable[..., Any]) -> bool:
    return hook.__code__.co_filename == "<expectation lane>"


def _cells(hook: Callable[..., Any]) -> dict[str, Any]:
    """The lane's own state (its metering batch and sample countdown), by name."""
    cells = hook.__closure__ or ()
    return {n: c.cell_contents for n, c in zip(hook.__code__.co_freevars, cells, strict=True)}


def test_a_typical_unlimited_expectation_gets_its_own_hook() -> None:
    budget = CpuBudget(0.5)
    for source in ("result >= 0", "result == 1 or result > 2"):
        assert _is_lane(_gate(budget, source).hook), source
    assert _is_lane(_gate(budget, max_hits=5).hook)
    assert _is_lane(_gate(budget, pass_rate=1.0).hook)  # a pass bucket and novelty
    # A limited evaluation rate (a standing probe's 1,000/s): the lane, with the bucket inline.
    assert _is_lane(_gate(budget, eval_rate=100.0).hook)
    # A shape the fused form does not take: the general one.
    assert not _is_lane(_gate(budget, "result.real >= 0").hook)
    assert not _is_lane(_gate(budget, "result.real >= 0", eval_rate=100.0).hook)


def _limited_run(lane: bool, steps: list[float], still: StillClock) -> tuple[tuple[Any, ...], int]:
    """Fire a gate of 50 evaluations a second at the still clock's times ``steps`` apart (no
    waker: a refused call is refused by the bucket's ``next_at``, on the hook's own path), the
    jitter's draws the same in both (a generator of their own: the lane's metering sample
    draws from the sensor's too): what it evaluated, refused and captured."""
    captured: list[tuple[int, int]] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hotpath, "SPECIALISE_LANE", lane)
        patch.setattr(guards, "_uniform", random.Random(7).random)
        budget = CpuBudget(0.5)
        # The cheap clock is the still one here: as the hooks' own (the lane tells the precise
        # mode from the cheap one by the budget's clock; it would hand every firing over).
        budget.clock = hotpath._perf
        g = _gate(
            budget,
            eval_rate=50.0,
            slow=lambda frame, value, outcome, error: captured.append((n, value)),
        )
        assert _is_lane(g.hook) == lane
        general = 0
        if lane:
            # Count the firings the lane hands to the general hook: most are its own.
            inner = g.hook.__globals__["_general"]

            def counted(*args: Any) -> Any:
                nonlocal general
                general += 1
                return inner(*args)

            patch.setitem(g.hook.__globals__, "_general", counted)
        evaluated: list[int] = []
        for n, step in enumerate(steps):
            still.advance(step)
            before = tally_count(g.evaluations)
            g.hook(-1 if n % 7 == 0 else n)
            if tally_count(g.evaluations) != before:
                evaluated.append(n)
    return (
        evaluated,
        tally_count(g.violations),
        g.counts(),
        g.closed_count(),
        captured,
    ), general


def test_a_limited_lane_stops_at_its_expiry(
    still: StillClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A probe with a TTL and a limited rate (a standing probe as the hub places it): its lane
    # tests the expiry on the admission it makes itself, every firing (the bucket reads the
    # clock anyway), and stops the probe at it; one without a TTL has no such test.
    budget = CpuBudget(0.5)
    budget.clock = hotpath._perf  # the still clock is the cheap one (see _limited_run)
    stops: list[str] = []
    # The gate turns the TTL into its clock's time with time.time(): a fixed one, so that a
    # test thread descheduled between the TTL and the gate does not move the expiry.
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)
    g = _gate(budget, eval_rate=50.0, stops=stops, expires_at=1_000_000.0 + 1.0)
    assert _is_lane(g.hook)
    for _ in range(19):  # 0.95 s at 20 calls a second: within the rate, before the expiry
        still.advance(0.05)
        g.hook(1)
    assert stops == []
    assert tally_count(g.evaluations) == 19
    still.advance(0.1)
    g.hook(1)
    assert stops == ["expired"]
    assert tally_count(g.evaluations) == 19


@pytest.mark.parametrize("traffic", ["dense", "sparse", "bursts"])
def test_a_limited_lane_admits_exactly_what_the_general_hook_admits(
    still: StillClock, traffic: str
) -> None:
    # The same firings at the same (still) times through the lane and through the general
    # hook: the same firings evaluated, in the same order, the same refusals and captures.
    # Dense traffic (1,000 calls a second against 50) runs the bucket dry again and again
    # (the jittered draws, the general hook's); sparse traffic (20 a second) keeps a plain
    # bucket (the lane's own admission); bursts alternate, through the pauses that turn a
    # bucket plain again.
    rng = random.Random(traffic)
    if traffic == "dense":
        steps = [0.001] * 3000
    elif traffic == "sparse":
        steps = [0.05] * 300
    else:
        steps = [
            0.0005 if (i // 200) % 2 == 0 else rng.choice([0.01, 0.2, 1.5]) for i in range(3000)
        ]
    got, handed = _limited_run(True, steps, still)
    want, _ = _limited_run(False, steps, still)
    assert got == want
    evaluated = got[0]
    # The lane admitted most evaluations itself (a plain bucket's) and refused the calls
    # before ``next_at``; the general hook had the bucket's dry runs (the jittered draws).
    if traffic == "sparse":
        assert handed == 0
    elif traffic == "bursts":
        assert handed < len(evaluated) / 10
    else:
        assert handed < len(steps) / 10
    seconds = sum(steps)
    # Within the rate: the bucket starts full (its burst, two CLOSE_TICKs' worth: see
    # hotpath.eval_burst) and refills at 50 a second.
    burst = hotpath.eval_burst(50.0)
    assert len(evaluated) <= burst + 50 * seconds + 2
    assert len(evaluated) > burst  # beyond the first full bucket: the refills admitted some
    if traffic != "sparse":
        assert len(evaluated) < len(steps)  # and the rate refused some
    assert got[4], "some violations captured (the target's value, compared)"


def test_every_firing_of_the_lane_is_metered_in_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hotpath, "SLOW_FIRING_NS", 10**15)
    monkeypatch.setattr(hotpath, "SETTLE_NS", 10**15)
    budget = CpuBudget(0.5)
    g = _gate(budget)
    assert _is_lane(g.hook)
    # Passes and violations (the lane's batch) and values the lane hands to the general hook
    # (the general hook's batch, which the lane's time before that is added to).
    values: list[object] = [1, -1, HostileInt(2), 2.5, "x", None]
    n = 6 * SETTLE_EVERY + 6
    for i in range(n):
        g.hook(values[i % len(values)])
    account = budget.account("p")
    in_lane = sum(1 for i in range(n) if i % len(values) in (0, 1, 3))
    in_general = n - in_lane
    # The lane's evaluations are counted by the stride of each timed one (see
    # METER_STRIDE_BITS): up to the last timed one, settled or in the batch; after it, in
    # the stride under way.
    lane = _cells(g.hook)
    since_timed = lane["lstride"] - lane["lskip"]
    assert account.fired + lane["lcount"] + since_timed == (
        in_lane + in_general // SETTLE_EVERY * SETTLE_EVERY
    )
    assert 0 <= since_timed < 2**hotpath.METER_STRIDE_BITS
    assert account.spent > 0
    assert tally_count(g.evaluations) == n
    assert CALLS == []


def test_max_hits_and_the_precise_clock_are_honoured_by_the_lane(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(hotpath, "PRECISE_STRIDE_BITS", 0)  # every precise firing timed
    budget = CpuBudget(0.5)
    stops: list[str] = []
    hits: list[object] = []
    g = _gate(budget, max_hits=3, stops=stops, slow=lambda *a: hits.append(a[2]))
    assert _is_lane(g.hook)
    for _ in range(10):
        g.hook(-1)
    assert len(hits) == 3
    assert stops == ["max_hits"]
    budget = CpuBudget(0.5)
    g = _gate(budget)
    budget._to_precise(time.monotonic_ns())
    for _ in range(5):
        g.hook(1)
    # The precise mode: the lane still serves, timing with the thread's CPU clock.
    lane = _cells(g.hook)
    assert lane["lprec"] is True
    assert lane["lclock"] is time.thread_time
    since_timed = lane["lstride"] - lane["lskip"]
    assert budget.account("p").fired + lane["lcount"] + since_timed == 5
    assert tally_count(g.evaluations) == 5


def test_a_failing_capture_in_the_lane_is_counted_not_raised() -> None:
    budget = CpuBudget(0.5)
    failures: list[Exception] = []

    def broken(*args: object) -> None:
        raise RuntimeError("capture failed")

    g = _gate(budget, slow=broken, failed=failures.append)
    assert _is_lane(g.hook)
    g.hook(-1)  # a violation: its capture fails inside the lane
    assert [str(e) for e in failures] == ["capture failed"]
    assert tally_count(g.violations) == 1


def test_the_lane_captures_the_frame_of_the_target(
    engine: Engine, load: Callable[..., ModuleType]
) -> None:
    m = load("def f(i):\n    local = i * 3\n    return i\n")
    probe = Probe(kind="expect", location=f"{m.__name__}:f@return", expect="result >= 0",
                  limits={"eval_rate": 1e9})  # fmt: skip
    assert engine.install(probe).state is ProbeState.INSTALLED
    CALLS.clear()
    m.f(-2)  # a violation in the lane
    m.f(HostileInt(-5))  # handed to the general hook, a violation there
    engine.remove(probe.id)
    hits = engine.drain()
    assert [h.captures.get("local") for h in hits] == [-6, -15]
    assert CALLS == []


def test_a_rule_change_generates_the_lane_again_for_the_new_rules() -> None:
    budget = CpuBudget(0.5)
    g = _gate(budget, "result in ('paid', 'shipped')")
    first = g.hook.__code__
    assert _is_lane(g.hook)
    g.hook("paid")
    try:
        redaction.set_redactor(redaction.Redactor(names=["password"]))
        g.hook("paid")  # handed to the general hook, which generates the lane again
        second = g.hook.__code__
        assert second is not first
        assert _is_lane(g.hook)
        assert g.hook.__globals__["_RED0_b1"] is redaction._default
        g.hook("paid")  # the new lane
        # A rule naming the value: no fused form (R1), the general hook answers (refused).
        redaction.set_redactor(redaction.Redactor(names=["result"]))
        g.hook("paid")
        g.hook("paid")
        assert g.hook.__code__ is second
        redaction.set_redactor(None)
        g.hook("paid")
        assert g.hook.__globals__["_RED0_b3"] is redaction._default
        g.hook("paid")
    finally:
        redaction.set_redactor(None)
    assert tally_count(g.evaluations) == 7
    assert tally_count(g.violations) == 2  # the two firings under the rule naming result


def _expiring_gate(
    budget: CpuBudget, stops: list[str], captured: list[object], expires_at: float
) -> FastExpectGate:
    return FastExpectGate(
        expr=compile("result >= 0", slots=("result",)),
        value_name="result",
        slow=lambda frame, value, outcome, error: captured.append((value, outcome)),
        failed=lambda exc: None,
        depth=1,
        dispatch=frozenset(),
        eval_rate=1e9,
        violation_rate=1e9,
        pass_rate=None,
        pass_burst=None,
        max_hits=None,
        expires_at=expires_at,
        on_stop=stops.append,
        budget=budget,
        account=budget.account("p"),
    )


def test_a_probe_that_expires_stops_in_the_lane_within_a_stride(
    clock: SteppingClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Expiry is tested on the timed evaluations (one in a stride of at most
    # 2 ** METER_STRIDE_BITS), not on every firing: the probe stops within a stride. The lane's
    # clock is the fake one: with the real one a test thread descheduled for the 50 ms between
    # making the gate and its first firing found the probe expired already.
    stride = 2**hotpath.METER_STRIDE_BITS
    # The TTL turned into the gate's clock with a fixed time.time() (see the limited lane's).
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)
    for _ in range(20):  # (strides are random: several probes)
        budget = Ledger(clock)  # metered with the lane's clock: the lane serves
        stops: list[str] = []
        captured: list[object] = []
        g = _expiring_gate(budget, stops, captured, 1_000_000.05)
        assert _is_lane(g.hook)
        g.hook(1)
        assert stops == []
        clock.now += 100_000_000  # 0.1 s (ns): past the expiry
        fired = 0
        while not stops and fired < stride + 1:
            g.hook(1)
            fired += 1
        assert stops == ["expired"]
        assert fired <= stride
        assert 1 <= tally_count(g.evaluations) <= fired  # (the last firing: not evaluated)
        g.hook(-1)
        assert captured == []


def test_an_expired_probe_captures_nothing_in_the_lane(
    clock: SteppingClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A violation after the expiry, however far from a timed evaluation: stopped, not captured.
    # The TTL turned into the gate's clock with a fixed time.time() (see the limited lane's).
    monkeypatch.setattr(time, "time", lambda: 1_000_000.0)
    for _ in range(20):
        budget = Ledger(clock)  # metered with the lane's clock: the lane serves
        stops: list[str] = []
        captured: list[object] = []
        g = _expiring_gate(budget, stops, captured, 1_000_000.05)
        g.hook(-1)
        assert captured == [(-1, "violation")]
        clock.now += 100_000_000  # 0.1 s (ns): past the expiry
        g.hook(-1)
        assert stops == ["expired"]
        assert captured == [(-1, "violation")]


@pytest.mark.parametrize("lane", [True, False])
def test_locals_not_passed_are_read_from_the_frame_by_the_lane(
    lane: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A backend that cannot pass the locals (3.11 at a line) calls the hook with none.
    monkeypatch.setattr(hotpath, "SPECIALISE_LANE", lane)
    budget = CpuBudget(0.5)
    captured: list[tuple[object, object]] = []
    g = FastExpectGate(
        expr=compile("0 <= x <= y"),
        value_name=None,
        slow=lambda frame, value, outcome, error: captured.append(
            (frame.f_locals.get("x"), outcome)
        ),
        failed=lambda exc: None,
        depth=1,
        dispatch=frozenset(),
        eval_rate=1e9,
        violation_rate=1e9,
        pass_rate=None,
        pass_burst=None,
        max_hits=None,
        expires_at=None,
        on_stop=[].append,
        budget=budget,
        account=budget.account("p"),
        local_names=("x", "y"),
    )
    assert _is_lane(g.hook) is lane
    hook = g.hook

    def target(x: object, y: object) -> None:
        hook()  # no locals passed

    CALLS.clear()
    for x, y in [(1, 2), (3, 2), (HostileInt(1), 2), (-1, 5), (1.5, 2.5), ("a", 1)]:
        target(x, y)
    assert CALLS == []  # (before the comparisons below, which run HostileInt.__eq__)
    assert tally_count(g.evaluations) == 6
    # 3 > 2, the subclass refused by the sandbox, -1 < 0, a str compared with an int.
    assert [c[0] for c in captured] == [3, 1, -1, "a"], captured
    assert tally_count(g.violations) == 4


class Ledger(CpuBudget):
    """A budget that records what it is handed, metered with ``clock`` (the lanes' clock):
    ``alone`` the firings handed over one by one (ns), ``batches`` the batches (ns, count).
    A firing over the one-hit cap switches it to the precise clock, as the budget does."""

    def __init__(self, clock: SteppingClock) -> None:
        super().__init__(0.5)
        self.clock = clock
        self.alone: list[int] = []
        self.batches: list[tuple[int, int]] = []

    def spend(self, account: Any, ns: int, clock: Any = None) -> str | None:
        self.alone.append(ns)
        if ns > self.hit_cap_ns:
            self.clock = time.thread_time_ns
            _epoch.bump()  # as CpuBudget._to_precise
        return None

    def spend_many(self, account: Any, ns: int, count: int) -> bool:
        self.batches.append((ns, count))
        return True

    def spend_sampled(
        self, account: Any, ns: int, count: int, extra: int = 0, whole: bool = True
    ) -> str | None:
        self.alone.append(ns * count + extra)
        return None

    def charged(self, hook: Callable[..., Any]) -> float:
        """Every ns handed over, and what the lane holds in its batch."""
        lane = _cells(hook)
        held = lane["lpend"] * 1e9 + lane["pending_ns"]
        return sum(self.alone) + sum(ns for ns, _ in self.batches) + held


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[SteppingClock]:
    fake = SteppingClock()
    monkeypatch.setattr(hotpath, "_perf", fake)
    monkeypatch.setattr(hotpath, "SETTLE_NS", 10**15)  # batches by count only
    # What a firing costs outside its timed stretch (measured at the first placement) is
    # charged on top of the fake clock's figures: none here, so that these are exact.
    monkeypatch.setattr(hotpath, "_call_ns", 0)
    state = guards._rng.getstate()  # (the sensor's own generator: given back after the test)
    guards._rng.seed(13)  # the strides: the same in every run
    yield fake
    guards._rng.setstate(state)


def test_the_lane_reads_the_clock_on_a_random_sample_of_its_evaluations(
    clock: SteppingClock,
) -> None:
    budget = Ledger(clock)
    g = _gate(budget)
    assert _is_lane(g.hook)
    timed: list[int] = []
    n = 8000
    for i in range(n):
        before = clock.reads
        g.hook(1)
        if clock.reads > before:
            timed.append(i)
    assert tally_count(g.evaluations) == n
    # Two reads per timed evaluation (a third when its batch is handed over), one timed
    # evaluation per stride of 1 to 16 (8.5 on average).
    assert 0.09 * n < len(timed) < 0.15 * n
    assert clock.reads < 0.3 * n
    gaps = [b - a for a, b in itertools.pairwise(timed)]
    assert set(gaps) == set(range(1, 2**hotpath.METER_STRIDE_BITS + 1))  # random, not periodic


@pytest.mark.parametrize("pattern", ["random", "period 8", "period 16"])
def test_the_lanes_sampled_charge_is_the_true_cost_within_6_percent(
    clock: SteppingClock, pattern: str
) -> None:
    # Each evaluation takes a known time (the fake clock's cost while it runs); what the
    # budget is charged over many is within 6% of their sum, also for a cost that comes back
    # with the period of the mean stride or its double (a fixed stride would alias with it:
    # charging only the dear ones, or never them: 8x or 0.04x the dear part). The estimate's
    # standard error here is about 2% for the sparsest pattern (1 in 16 dear; the strides are
    # seeded, so the figure is the same in every run).
    budget = Ledger(clock)
    g = _gate(budget)
    rng = random.Random(5)
    n = 200_000
    true = 0
    for i in range(n):
        if pattern == "random":
            cost = rng.randrange(100, 2000)
        else:
            cost = 6000 if i % int(pattern.split()[1]) == 0 else 200
        clock.cost = cost
        true += cost
        g.hook(1)
    assert tally_count(g.evaluations) == n
    charged = budget.charged(g.hook)
    # (a handed-over batch also charges the hand-over: one cost more per batch)
    assert abs(charged - true) < 0.06 * true, (charged, true)


@pytest.mark.parametrize("lane", [True, False])
def test_what_a_firing_costs_outside_its_timed_stretch_is_charged_in_the_cheap_mode(
    clock: SteppingClock, monkeypatch: pytest.MonkeyPatch, lane: bool
) -> None:
    # The evaluations take no time on the (fake) wall clock: all the budget is handed is the
    # figure measured for what a firing costs outside its timed stretch (firing_overhead_ns),
    # once for every evaluation the lane's samples stand for, or every one the general hook
    # metered.
    monkeypatch.setattr(hotpath, "_call_ns", 700, raising=False)
    monkeypatch.setattr(hotpath, "SPECIALISE_LANE", lane)
    budget = Ledger(clock)
    g = _gate(budget)
    assert _is_lane(g.hook) is lane
    n = 2000
    for _ in range(n):
        g.hook(1)
    assert tally_count(g.evaluations) == n
    if lane:
        cells = _cells(g.hook)
        charged_for = n - (cells["lstride"] - cells["lskip"])  # (the stride under way: not yet)
        held = cells["lpend"] * 1e9
    else:
        charged_for = n
        held = _cells(g.hook)["pending_ns"]
    handed = sum(budget.alone) + sum(ns for ns, _ in budget.batches)
    assert charged_for > n - 2**hotpath.METER_STRIDE_BITS
    assert handed + held == pytest.approx(700 * charged_for, abs=len(budget.batches) + 1)


def test_the_lane_charges_every_capture_exactly(clock: SteppingClock) -> None:
    # Every evaluation violates and is captured; a capture takes 50 us, an evaluation no
    # time: the budget is charged 50 us per capture, timed or not, never scaled by a stride.
    def capture(*args: object) -> None:
        clock.now += 50_000

    budget = Ledger(clock)
    g = _gate(budget, slow=capture)
    assert _is_lane(g.hook)
    for _ in range(1000):
        g.hook(-1)
    assert tally_count(g.violations) == 1000
    assert budget.charged(g.hook) == pytest.approx(1000 * 50_000, abs=1)
    # A passing snapshot firing captured (within its rate, or of a new value class) too.
    budget = Ledger(clock)
    g = _gate(budget, pass_rate=1e9, slow=capture)
    for _ in range(1000):
        g.hook(1)
    assert budget.charged(g.hook) == pytest.approx(1000 * 50_000, abs=1)


def test_a_dear_evaluation_reaches_the_budget_alone_within_one_stride(
    clock: SteppingClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An evaluation above the one-hit cap (the budget's 0.25 s at 0.5 of a CPU) is handed over
    # alone and unscaled, as every firing of the general hook is: the budget switches to the
    # precise clock (where CPU time disables a probe whose hits each exceed the cap) within the
    # first stride. The lane then times its sample with the thread's CPU clock: what the wall
    # clock (the fake) says a firing took is no longer charged.
    monkeypatch.setattr(hotpath, "PRECISE_STRIDE_BITS", 0)  # every precise firing timed
    budget = Ledger(clock)
    g = _gate(budget)
    clock.cost = 2 * budget.hit_cap_ns
    firings = 0
    while budget.clock is clock and firings < 100:
        g.hook(1)
        firings += 1
    assert firings <= 2**hotpath.METER_STRIDE_BITS
    assert budget.alone == [pytest.approx(2 * budget.hit_cap_ns, abs=2)]  # (float seconds)
    assert budget.clock is time.thread_time_ns
    for _ in range(40):
        g.hook(1)
    assert len(budget.alone) == 1  # (the thread's CPU clock: none of these is dear)
    assert _cells(g.hook)["lprec"] is True
    assert tally_count(g.evaluations) == firings + 40


def test_the_lane_serves_the_precise_mode_and_a_shedding_budget() -> None:
    # Before, the lane handed every firing to the general hook while the budget was in its
    # precise mode or shed load: evaluations of 2 to 3 us instead of a few hundred ns, so a
    # standing probe whose lane fitted its share stayed over it, and the budget kept shedding
    # (and stayed precise) for as long as the traffic lasted. Now the lane admits through the
    # share and times its sample with the CPU clock; the general hook is not called.
    budget = CpuBudget(0.5)
    g = _gate(budget)
    account = budget.account("p")
    general = g.hook.__globals__["_general"]
    before = _cells(general)["pskip"]
    budget._to_precise(time.monotonic_ns())
    budget._share(1.0, force=True)
    assert budget.precise
    assert account.rate is not None
    n = 200
    for i in range(n):
        g.hook(1 if i % 10 else -1)
    assert tally_count(g.evaluations) == n
    assert tally_count(g.violations) == n // 10
    # The general hook's precise sample never moved: no firing reached it.
    assert _cells(general)["pskip"] == before
    lane = _cells(g.hook)
    assert lane["lshed"] is True
    assert lane["lprec"] is True
    # Every evaluation was admitted by the share, and the lane's batch is CPU time.
    assert account.skipped_count() == 0
    assert account.tokens < account.rate * guards.SHARE_HOLD


def test_modes_changed_after_the_lane_fired_are_honoured_at_its_next_firing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The lane tests the budget's clock, its account's share and the rules only when the
    # epoch token changed (sensor._epoch): each change after it fired must reach it.
    monkeypatch.setattr(hotpath, "PRECISE_STRIDE_BITS", 0)  # every precise firing timed
    budget = CpuBudget(0.5)
    g = _gate(budget)
    account = budget.account("p")
    for _ in range(3):
        g.hook(1)
    budget._to_precise(time.monotonic_ns())  # the precise clock: the lane's is the CPU's
    for _ in range(4):
        g.hook(1)
    assert _cells(g.hook)["lclock"] is time.thread_time
    # Load shed (a share with nothing left in it): refused before any work, and counted.
    budget._share(1.0, force=True)
    assert account.rate is not None
    account.tokens = -1e12
    g.hook(1)
    g.hook(1)
    assert account.skipped_count() == 2
    assert tally_count(g.evaluations) == 7
    assert _cells(g.hook)["lshed"] is True
    # Shedding over, the cheap clock again: the lane evaluates, and meters in its batch.
    budget._stop_shedding()
    budget.clock = time.perf_counter_ns
    _epoch.bump()
    for _ in range(3):
        g.hook(1)
    assert tally_count(g.evaluations) == 10
    assert _cells(g.hook)["lepoch"] is _epoch.token
    # The rules of the process's redactor updated in place (its version): the value is
    # refused from the next firing on.
    try:
        redaction.get_redactor().update(names=["result"])
        g.hook(1)
    finally:
        redaction.set_redactor(None)
    assert tally_count(g.violations) == 1
