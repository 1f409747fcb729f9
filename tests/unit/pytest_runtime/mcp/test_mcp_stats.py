"""Rates with their 95% bounds, and the false/error split of a hypothesis check."""

from __future__ import annotations

import pytest

from pytest_runtime.mcp.hypotheses import split_not_true
from pytest_runtime.mcp.stats import rate_with_bound


def test_none_seen_gives_the_rule_of_three_upper_bound() -> None:
    answer = rate_with_bound(0, 300)
    assert answer["rate"] == 0.0
    assert answer["high"] == pytest.approx(1 - 0.05 ** (1 / 300))
    assert answer["high"] == pytest.approx(3 / 300, rel=0.01)
    assert "rule of three" in answer["method"]
    assert answer["over"] == 300


def test_all_seen_gives_the_matching_lower_bound() -> None:
    answer = rate_with_bound(50, 50)
    assert answer["rate"] == 1.0
    assert answer["low"] == pytest.approx(0.05 ** (1 / 50))
    assert answer["high"] == 1.0


def test_a_mix_gives_the_wilson_interval() -> None:
    answer = rate_with_bound(12, 20)
    assert answer["rate"] == 0.6
    # Wilson 95% for 12/20, computed by hand: 0.3866 to 0.7812.
    assert answer["low"] == pytest.approx(0.3866, abs=1e-4)
    assert answer["high"] == pytest.approx(0.7812, abs=1e-4)
    assert answer["method"] == "Wilson score interval, 95%"


def test_no_evaluation_has_no_rate() -> None:
    assert rate_with_bound(0, 0)["rate"] is None


@pytest.mark.parametrize(("count", "n"), [(-1, 5), (6, 5), (True, 5)])
def test_impossible_counts_are_refused(count: int, n: int) -> None:
    with pytest.raises(ValueError, match="expected 0 <= count <= n"):
        rate_with_bound(count, n)


def test_the_split_is_exact_when_every_violation_was_captured() -> None:
    assert split_not_true(7, 5, 2)[:2] == (5, 2)
    assert split_not_true(7, 5, 2)[2].startswith("exact")
    assert split_not_true(0, 0, 0) == (0, 0, "exact: no evaluation was false or failed")


def test_the_split_is_scaled_and_said_to_be_when_some_violations_were_not_captured() -> None:
    false, errors, how = split_not_true(100, 15, 5)
    assert (false, errors) == (75, 25)
    assert how.startswith("estimated")
    assert "captured 20 of them" in how
    false, errors, how = split_not_true(10, 0, 0)
    assert (false, errors) == (10, 0)
    assert how.startswith("unknown")


def test_more_captured_than_counted_means_the_counters_lag_behind_the_hits() -> None:
    assert split_not_true(3, 5, 1) == (5, 1, "from the captured hits (the counters lag)")
    assert split_not_true(0, 2, 0) == (2, 0, "from the captured hits (the counters lag)")


def test_the_bounds_are_the_comparisons_own_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    # One rule, one number: the MCP's bounds come from the comparison's rule of three (the
    # one every verdict prints), not from a copy of it. Change the rule, and both change.
    from pytest_runtime.compare import counters

    calls: list[tuple[int, float]] = []

    def rule(n: int, confidence: float = counters.CONFIDENCE) -> float:
        calls.append((n, confidence))
        return 0.25

    monkeypatch.setattr(counters, "unseen_bound", rule)
    assert rate_with_bound(0, 300)["high"] == 0.25
    assert rate_with_bound(50, 50)["low"] == 0.75
    assert calls == [(300, 0.95), (50, 0.95)]


def test_the_confidence_level_is_the_comparisons() -> None:
    from pytest_runtime.compare import counters
    from pytest_runtime.mcp import stats

    assert stats.CONFIDENCE == counters.CONFIDENCE
