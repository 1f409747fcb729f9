"""Tests of the hot-path gate (rate, max hits, expiry) and of the global CPU budget."""

from __future__ import annotations

import time

import pytest

from sensor.guards import NOTHING, CpuBudget, Gate


def _gate(produced: bool = True, **limits: object) -> tuple[Gate, list[object], list[str]]:
    fired: list[object] = []
    stops: list[str] = []

    def fire(value: object) -> bool:
        fired.append(value)
        return produced

    limits.setdefault("rate", None)
    gate = Gate(fire, on_stop=stops.append, **limits)  # type: ignore[arg-type]
    return gate, fired, stops


def test_unlimited_gate_fires_every_time_and_passes_the_value() -> None:
    gate, fired, _ = _gate()
    gate.hook()
    gate.hook(42)
    assert fired == [NOTHING, 42]
    assert gate.counts() == (2, 0)


def test_rate_limit_lets_the_burst_through_then_skips_and_counts() -> None:
    gate, fired, _ = _gate(rate=1.0)
    for _ in range(50):
        gate.hook()
    assert len(fired) == 1
    assert gate.counts() == (1, 49)


def test_rate_limit_refills_over_time() -> None:
    gate, fired, _ = _gate(rate=50.0, burst=1)
    gate.hook()
    gate.hook()
    assert len(fired) == 1
    time.sleep(0.05)
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


def test_cpu_budget_names_the_heaviest_probe_when_exceeded() -> None:
    budget = CpuBudget(0.01)  # 10 ms per second
    assert budget.spend("light", 1_000_000) is None
    assert budget.spend("heavy", 5_000_000) is None
    over = budget.spend("heavy", 6_000_000)
    assert over == ("heavy", 11_000_000)
    assert "CPU budget" in budget.describe(over[1])
    # The heavy probe's share is forgotten: the light one alone stays under budget.
    assert budget.spend("light", 1_000_000) is None


def test_cpu_budget_of_one_or_more_is_off() -> None:
    budget = CpuBudget(1.0)
    assert not budget.enabled
    assert budget.spend("p", 10**12) is None


def test_cpu_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="cpu_budget"):
        CpuBudget(0)
