"""Tests of expectations under traffic: every firing evaluated, violations captured apart."""

from __future__ import annotations

import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from sensor.engine import Engine
from sensor.errors import ProbeSpecError
from sensor.hotpath import eval_burst
from sensor.probes import (
    DEFAULT_EVAL_RATE,
    DEFAULT_VIOLATION_RATE,
    Probe,
    ProbeLimits,
    ProbeState,
    ProbeStatus,
)
from sensor.redaction import get_redactor

CALLS = 10_000

TARGET = """
def price(i):
    # One call in a hundred (i % 100 == 0) returns a negative price.
    result = -1 if i % 100 == 0 else i
    return result

def guarded(i):
    if i < 0:
        raise ValueError("negative")
    return i
"""


def make(**fields: Any) -> Probe:
    return Probe(**fields)


@pytest.fixture
def target(load: Callable[..., ModuleType]) -> ModuleType:
    return load(TARGET)


def place(engine: Engine, probe: Probe) -> None:
    status = engine.install(probe)
    assert status.state is ProbeState.INSTALLED, status.reason


def run(module: ModuleType, calls: int = CALLS) -> float:
    start = time.monotonic()
    for i in range(calls):
        module.price(i)
    return time.monotonic() - start


def status(engine: Engine, probe: Probe) -> ProbeStatus:
    got = engine.status(probe.id)
    assert got is not None
    return got


def test_rare_violations_are_all_seen_while_passing_snapshots_stay_at_the_snapshot_rate(
    engine: Engine, target: ModuleType
) -> None:
    probe = make(
        kind="snapshot",
        location=f"{target.__name__}:price",
        capture=["i", "result"],
        expect="result >= 0",
        limits={"eval_rate": 1e6, "violation_rate": 1e6},  # snapshot rate: the default 1/s
    )
    place(engine, probe)
    elapsed = run(target)
    hits = engine.drain()
    violations = [h for h in hits if h.expect == {"ok": False, "error": None}]
    passing = [h for h in hits if h.expect == {"ok": True, "error": None}]
    assert len(violations) == CALLS // 100
    assert {h.captures["i"] for h in violations} == set(range(0, CALLS, 100))  # type: ignore[index]
    assert 1 <= len(passing) <= 1 + int(elapsed) + 1
    got = status(engine, probe)
    assert (got.evaluations, got.violations) == (CALLS, CALLS // 100)
    assert got.hits == len(hits)


def test_expect_kind_captures_only_violations(engine: Engine, target: ModuleType) -> None:
    probe = make(
        kind="expect",
        location=f"{target.__name__}:price",
        expect="result >= 0",
        limits={"eval_rate": 1e6, "violation_rate": 1e6},
    )
    place(engine, probe)
    run(target)
    hits = engine.drain()
    assert len(hits) == CALLS // 100
    assert all(h.expect == {"ok": False, "error": None} for h in hits)
    assert all(h.captures and h.captures["result"] == -1 for h in hits)
    got = status(engine, probe)
    assert (got.evaluations, got.violations, got.hits) == (CALLS, CALLS // 100, CALLS // 100)


def test_default_violation_rate_bounds_captures_but_counts_every_violation(
    engine: Engine, target: ModuleType
) -> None:
    probe = make(
        kind="expect",
        location=f"{target.__name__}:price",
        expect="result >= 0",
        limits={"eval_rate": 1e6},
    )
    place(engine, probe)
    elapsed = run(target)
    hits = engine.drain()
    most = DEFAULT_VIOLATION_RATE * (1 + elapsed) + 1
    assert 1 <= len(hits) <= most
    got = status(engine, probe)
    assert got.violations == CALLS // 100
    assert got.skipped_rate == CALLS // 100 - len(hits)


def test_eval_rate_bounds_evaluations_and_counts_the_skipped_firings(
    engine: Engine, target: ModuleType
) -> None:
    probe = make(
        kind="expect",
        location=f"{target.__name__}:price",
        expect="result >= 0",
        limits={"eval_rate": 50.0, "violation_rate": 1e6},
    )
    place(engine, probe)
    elapsed = run(target, 2000)
    got = status(engine, probe)
    # The bucket's burst (two CLOSE_TICKs' worth at this rate: see hotpath.eval_burst), then
    # the rate.
    burst = eval_burst(50.0)
    assert burst == 100.0
    assert burst <= got.evaluations <= burst + 50 * elapsed + 1
    assert got.skipped_rate == 2000 - got.evaluations


def test_default_eval_rate_evaluates_far_more_than_the_snapshot_rate(
    engine: Engine, target: ModuleType
) -> None:
    probe = make(kind="snapshot", location=f"{target.__name__}:price", expect="result >= 0")
    place(engine, probe)
    calls = int(DEFAULT_EVAL_RATE)  # inside the default burst of evaluations
    run(target, calls)
    got = status(engine, probe)
    assert got.evaluations == calls
    assert got.violations == calls // 100
    # at most a passing snapshot or two, and the violations
    assert got.hits <= 2 + calls // 100


def test_condition_false_is_not_an_evaluation(engine: Engine, target: ModuleType) -> None:
    probe = make(
        kind="expect",
        location=f"{target.__name__}:price",
        condition="i % 2 == 0",
        expect="result >= 0",
        limits={"eval_rate": 1e6, "violation_rate": 1e6},
    )
    place(engine, probe)
    run(target, 1000)
    got = status(engine, probe)
    assert (got.evaluations, got.skipped_condition, got.violations) == (500, 500, 10)


def test_an_expectation_that_fails_to_evaluate_is_a_captured_violation(
    engine: Engine, target: ModuleType
) -> None:
    probe = make(
        kind="expect",
        location=f"{target.__name__}:price",
        expect="result.missing > 0",
        limits={"eval_rate": 1e6, "violation_rate": 1e6},
    )
    place(engine, probe)
    run(target, 20)
    hits = engine.drain()
    assert len(hits) == 20
    assert all(h.expect and h.expect["ok"] is None and h.expect["error"] for h in hits)
    assert status(engine, probe).violations == 20


def test_max_hits_counts_captured_violations(engine: Engine, target: ModuleType) -> None:
    probe = make(
        kind="expect",
        location=f"{target.__name__}:price",
        expect="result >= 0",
        limits={"eval_rate": 1e6, "violation_rate": 1e6, "max_hits": 3},
    )
    place(engine, probe)
    run(target, 1000)
    assert len(engine.drain()) == 3
    got = status(engine, probe)
    assert got.state is ProbeState.DISABLED
    assert "max_hits" in (got.reason or "")


def test_probe_without_expect_is_still_sampled_before_any_work(
    engine: Engine, target: ModuleType
) -> None:
    probe = make(kind="snapshot", location=f"{target.__name__}:price")
    place(engine, probe)
    run(target, 1000)
    got = status(engine, probe)
    assert got.hits == 1
    assert got.skipped_rate == 999
    assert (got.evaluations, got.violations) == (0, 0)


# -- the probe model -----------------------------------------------------------------------------


def test_effective_rates_never_fall_below_the_probe_rate() -> None:
    probe = make(kind="snapshot", location="m:f", expect="result")
    assert (probe.eval_rate, probe.violation_rate) == (DEFAULT_EVAL_RATE, DEFAULT_VIOLATION_RATE)
    fast = probe.with_changes(limits=ProbeLimits(rate=1e9))
    assert (fast.eval_rate, fast.violation_rate) == (1e9, 1e9)
    own = probe.with_changes(limits=ProbeLimits(eval_rate=5.0, violation_rate=2.0))
    assert (own.eval_rate, own.violation_rate) == (5.0, 2.0)


@pytest.mark.parametrize("field", ["eval_rate", "violation_rate"])
@pytest.mark.parametrize("value", [0, -1.0, float("inf"), float("nan"), True, "10"])
def test_expect_rates_are_validated(field: str, value: object) -> None:
    with pytest.raises(ProbeSpecError, match=f"limits.{field}"):
        ProbeLimits.from_dict({field: value})


def test_expect_rates_round_trip_and_stay_out_of_the_signature() -> None:
    probe = make(kind="expect", location="m:f", expect="result > 0")
    limited = probe.with_changes(limits=ProbeLimits(eval_rate=100.0, violation_rate=3.0))
    again = Probe.from_dict(limited.to_dict())
    assert again.limits.eval_rate == 100.0
    assert again.limits.violation_rate == 3.0
    assert limited.signature == probe.signature


def test_status_counts_round_trip() -> None:
    status = ProbeStatus("p", ProbeState.INSTALLED, evaluations=10_000, violations=100)
    again = ProbeStatus.from_dict(status.to_dict())
    assert (again.evaluations, again.violations) == (10_000, 100)
    older = status.to_dict()
    del older["evaluations"], older["violations"]
    assert ProbeStatus.from_dict(older).evaluations == 0  # a status from an older sensor


def test_exception_info_runs_no_user_code() -> None:
    from sensor.engine import _exception_info
    from sensor.probes import CaptureLimits

    calls: list[str] = []

    class Meta(type):
        def __getattribute__(cls, name: str) -> object:
            calls.append(f"meta {name}")
            return super().__getattribute__(name)

    class LoudError(Exception, metaclass=Meta):
        @property  # type: ignore[override]
        def args(self) -> tuple[object, ...]:
            calls.append("args")
            return ("leaked",)

        def __str__(self) -> str:
            calls.append("str")
            return "leaked"

    calls.clear()
    info = _exception_info(LoudError("boom"), CaptureLimits())
    assert calls == []
    assert info["type"].endswith("LoudError")
    assert "leaked" not in repr(info)


RARE = """
def quote(i):
    # Three calls in 20,000 return None: it passes the expectation, a rare passing state.
    result = None if i in (4_001, 11_003, 17_005) else i + 1
    return result
"""


SECRET_CLASS = """
def login(i):
    token = "t\u00e9st-token" if i == 4_001 else "test-token"
    result = i + 1
    return result
"""


@pytest.mark.parametrize("condition", [None, "i >= 0"], ids=["fast-path", "with-condition"])
def test_the_class_of_a_secret_never_makes_a_passing_state_novel(
    engine: Engine, load: Callable[..., ModuleType], condition: str | None
) -> None:
    # A value class is a bit or two of the value (ASCII or not, whitespace at an end): keyed on
    # ``token``, the one non-ASCII token would be captured as novel, and whether a hit says
    # "novel" would carry that bit of a secret out of the process.
    module = load(SECRET_CLASS)
    probe = make(
        kind="snapshot",
        location=f"{module.__name__}:login",
        capture=["i"],
        expect="token is not None and result > 0",
        condition=condition,
        limits={"eval_rate": 1e6},
    )
    place(engine, probe)
    for i in range(20_000):
        module.login(i)
    hits = engine.drain()
    assert status(engine, probe).evaluations == 20_000
    assert [h for h in hits if (h.expect or {}).get("sampled") == "novel"] == []


REF_CLASS = """
def lookup(i):
    customer_ref = "r\u00e9f-7" if i == 4_001 else "ref-7"
    result = i + 1
    return result
"""


@pytest.mark.parametrize("condition", [None, "i >= 0"], ids=["fast-path", "with-condition"])
def test_a_secret_name_added_after_placement_leaves_the_novelty_key_too(
    engine: Engine, load: Callable[..., ModuleType], condition: str | None
) -> None:
    # The hub sends redaction rules with every poll: a name an administrator calls secret
    # while a probe stands (for weeks) must leave that probe's novelty key at once, not only
    # the keys of probes placed after it.
    module = load(REF_CLASS)
    probe = make(
        kind="snapshot",
        location=f"{module.__name__}:lookup",
        capture=["i"],
        expect="customer_ref is not None and result > 0",
        condition=condition,
        limits={"eval_rate": 1e6},
    )
    place(engine, probe)
    for i in range(2_000):  # the lane and the general hook settle on the rules of placement
        module.lookup(i)
    redactor = get_redactor()
    before = redactor.to_dict()
    redactor.update(names=[*before["names"], "customer_ref"])
    try:
        for i in range(2_000, 20_000):
            module.lookup(i)
    finally:
        redactor.update(names=before["names"])
    hits = engine.drain()
    assert status(engine, probe).evaluations == 20_000
    # (The first firing under the new rules has a new key, of fewer names: novel, and no bit
    # of anything; the one non-ASCII reference must not be.)
    novel = [h.captures["i"] for h in hits if (h.expect or {}).get("sampled") == "novel"]
    assert 4_001 not in novel, novel


@pytest.mark.parametrize("condition", [None, "i >= 0"], ids=["fast-path", "with-condition"])
def test_a_rare_passing_state_is_captured_as_novel(
    engine: Engine, load: Callable[..., ModuleType], condition: str | None
) -> None:
    module = load(RARE)
    probe = make(
        kind="snapshot",
        location=f"{module.__name__}:quote",
        capture=["i", "result"],
        expect="result is None or result > 0",
        condition=condition,
        limits={"eval_rate": 1e6},  # passing snapshots at the default 1 a second
    )
    place(engine, probe)
    for i in range(20_000):
        module.quote(i)
    hits = engine.drain()
    novel = [h for h in hits if h.expect == {"ok": True, "error": None, "sampled": "novel"}]
    # The first None is new; the two after it are of a class already captured.
    assert [(h.captures or {}).get("i") for h in novel] == [4_001]
    assert [(h.captures or {}).get("result", "absent") for h in novel] == [None]
    got = status(engine, probe)
    assert (got.evaluations, got.violations) == (20_000, 0)
    assert got.hits == len(hits)
