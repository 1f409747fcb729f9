"""Rates from the sensors' counters, confidence bounds, and exception exits at a return."""

from __future__ import annotations

import math
from typing import Any

import pytest
from compare_hits import LOCATION, hit

from pytest_runtime.compare import CompareSettings, Divergence, ProbeVerdict, compare
from pytest_runtime.compare.counters import hits_needed, status_record, summarize, unseen_bound
from sensor.probes import Probe

EXPECT = Probe.from_dict(
    {"kind": "snapshot", "location": LOCATION, "capture": ["price"], "expect": "price >= 0"}
)
RETURN = Probe.from_dict({"kind": "snapshot", "location": LOCATION, "capture": ["price"]})
T0 = 1_700_000_000.0


def status(
    source: str,
    *,
    probe_id: str = "p1",
    placed: float = T0,
    reported: float = T0 + 35,
    state: str = "installed",
    reason: str | None = None,
    **counters: int,
) -> dict[str, Any]:
    data: dict[str, Any] = {"state": state, "reason": reason, **counters}
    return status_record(
        signature="sig",
        probe_id=probe_id,
        source_id=source,
        status=data,
        placed_at=placed,
        reported_at=reported,
    )


def sampled_evidence(violating: int = 40, passing: int = 21) -> list[dict[str, Any]]:
    """What the sensors capture of a function broken on 20% of calls: violations at 10/s,
    passing calls at 1/s, so most captured hits violate."""
    return [hit(i, {"price": -1}, ok=False, source=f"src-{i % 2}") for i in range(violating)] + [
        hit(100 + i, {"price": 5}, ok=True, source=f"src-{i % 2}") for i in range(passing)
    ]


def from_tests() -> list[dict[str, Any]]:
    return [hit(i, {"price": 5 + i}, prefix="t") for i in range(3)]


def violation(verdict: ProbeVerdict) -> Divergence:
    [d] = [d for d in verdict.divergences if d.kind == "violation"]
    return d


def test_the_violation_rate_comes_from_the_counters_not_from_captured_hits() -> None:
    statuses = [
        status("src-0", hits=31, evaluations=2700, violations=551),
        status("src-1", hits=30, evaluations=2619, violations=535),
    ]
    verdict = compare(from_tests(), sampled_evidence(), probe=EXPECT, statuses=statuses)
    assert verdict.verdict == "violated"
    d = violation(verdict)
    assert d.message == (
        "expectation 'price >= 0' failed on 1,086 of 5,319 evaluations (20.4%) on 2 sources "
        "in the 35s since placement; 40 violating hits captured"
    )
    assert d.counted == {"count": 1086, "of": 5319, "over": "evaluations", "lower_bound": False}
    assert d.count == 40  # the captured hits, whose ids are listed
    assert d.share == round(1086 / 5319, 6)  # not 40 / 61: violations are over-sampled
    assert verdict.production["origin"] == "counters"
    assert verdict.production["violation_share"] == pytest.approx(1086 / 5319, abs=1e-6)


def test_without_counters_the_count_is_a_lower_bound_and_no_rate_is_claimed() -> None:
    verdict = compare(from_tests(), sampled_evidence(), probe=EXPECT)
    d = violation(verdict)
    assert d.message.startswith(
        "expectation 'price >= 0' failed on at least 40 production calls: 40 of 61 captured "
        "hits (65.6% of captured hits; the evidence has no sensor counters"
    )
    assert d.counted is None
    assert verdict.production["origin"] == "captured"
    assert verdict.production["violation_share"] is None
    assert verdict.production["lower_bound"]


def test_violating_hits_after_a_sources_last_counters_make_the_counts_a_lower_bound() -> None:
    # src-1's last status was sent before most of its hits, violating ones among them.
    statuses = [
        status("src-0", hits=31, evaluations=2700, violations=551),
        status("src-1", hits=3, evaluations=10, violations=2),
    ]
    d = violation(compare(from_tests(), sampled_evidence(), probe=EXPECT, statuses=statuses))
    # The rate is the counters' own; what the counters leave out is said, with its count.
    assert d.message == (
        "expectation 'price >= 0' failed on 553 of 2,710 evaluations (20.4%) on 2 sources in "
        "the 35s since placement; 40 violating hits captured (a lower bound: 17 violating "
        "hits captured after the last counters of 1 source (src-1) are not counted)"
    )
    assert d.counted == {"count": 553, "of": 2710, "over": "evaluations", "lower_bound": True}


def test_passing_hits_after_the_last_counters_are_no_lower_bound() -> None:
    # src-1 (20 violating hits, then 10 passing ones) sent its last counters after its 20th
    # hit: the calls its counters leave out did not violate, so nothing printed is low.
    statuses = [
        status("src-0", hits=31, evaluations=2700, violations=551),
        status("src-1", hits=20, evaluations=2600, violations=530),
    ]
    verdict = compare(from_tests(), sampled_evidence(), probe=EXPECT, statuses=statuses)
    d = violation(verdict)
    assert d.message == (
        "expectation 'price >= 0' failed on 1,081 of 5,300 evaluations (20.4%) on 2 sources "
        "in the 35s since placement; 40 violating hits captured"
    )
    assert d.counted == {"count": 1081, "of": 5300, "over": "evaluations", "lower_bound": False}
    assert verdict.production["lower_bound"] == []
    assert verdict.production["notes"] == [
        "10 captured hit(s) came after the last counters of 1 source (src-1), none violating "
        "or raising: the counts cover the calls up to those counters"
    ]


def test_uncounted_hits_are_a_lower_bound_drops_and_sampling_are_not() -> None:
    statuses = [status("src-0", hits=31, evaluations=2700, violations=551, drops=4)]
    statuses.append(
        status("src-9", hits=0, evaluations=100, violations=0, skipped_rate=50, skipped_budget=7)
    )
    verdict = compare(from_tests(), sampled_evidence(), probe=EXPECT, statuses=statuses)
    # src-1 sent 30 hits (20 violating) and no counters: the counted violations miss them.
    assert verdict.production["lower_bound"] == [
        "20 violating hits captured from placements or sources with no counters are not counted"
    ]
    # Drops lose captured states, not counts; sampling is what "of evaluations" says.
    notes = verdict.production["notes"]
    assert any("dropped 4 hit(s)" in n and "the counters count every firing" in n for n in notes)
    assert any("not evaluated" in n for n in notes)
    assert verdict.production["sampled"] is True
    assert violation(verdict).message.endswith(
        "; evaluations are a sample of the calls (the evaluation rate limit and the CPU budget "
        "(7 calls shed)) (a lower bound: 20 violating hits captured from placements or sources "
        "with no counters are not counted)"
    )
    assert verdict.production["sampled_by"] == ["cpu_budget", "eval_rate"]


def test_drops_alone_leave_the_counts_exact() -> None:
    statuses = [
        status("src-0", hits=31, evaluations=2700, violations=551, drops=4),
        status("src-1", hits=30, evaluations=2619, violations=535),
    ]
    verdict = compare(from_tests(), sampled_evidence(), probe=EXPECT, statuses=statuses)
    assert verdict.production["lower_bound"] == []
    assert "lower bound" not in violation(verdict).message


def test_overlapping_placements_on_one_source_are_not_summed_twice() -> None:
    statuses = [
        status("src-0", probe_id="p1", hits=31, evaluations=2700, violations=551),
        status("src-0", probe_id="p2", placed=T0 + 5, hits=31, evaluations=2600, violations=540),
        status("src-1", probe_id="p1", hits=30, evaluations=2619, violations=535),
    ]
    production = summarize(statuses, sampled_evidence(), has_expect=True)
    assert (production.evaluations, production.violations) == (5319, 1086)
    # Consecutive placements (yesterday's and today's) are summed, over their whole span.
    later = status("src-0", probe_id="p3", placed=T0 + 3600, reported=T0 + 3635, evaluations=5)
    production = summarize([*statuses, later], [], has_expect=True)
    assert production.evaluations == 5324
    assert production.span_text() == " across 2 placements over 1h"


def test_violations_counted_but_never_captured_still_violate() -> None:
    statuses = [status("src-0", hits=20, evaluations=900, violations=3)]
    prod = [hit(i, {"price": 5}, ok=True, source="src-0") for i in range(20)]
    verdict = compare(from_tests(), prod, probe=EXPECT, statuses=statuses)
    assert verdict.verdict == "violated"
    assert violation(verdict).hit_ids == ()
    assert "raise the probe's rate" in verdict.hint


# --------------------------------------------------------------------------- confidence


def test_the_bound_is_the_exact_rule_of_three() -> None:
    assert unseen_bound(0) == 1.0
    assert unseen_bound(1) == pytest.approx(0.95)
    assert unseen_bound(100) == pytest.approx(1 - 0.05 ** (1 / 100))
    assert unseen_bound(3000) == pytest.approx(3 / 3000, rel=0.01)  # about 3/n
    assert hits_needed(0.1) == 29
    assert unseen_bound(29) <= 0.1 < unseen_bound(28)
    for bound in (0.5, 0.2, 0.05, 0.01, 0.001):
        n = hits_needed(bound)
        assert unseen_bound(n) <= bound < unseen_bound(n - 1) or n == 1
    with pytest.raises(ValueError, match="bound: got 0"):
        hits_needed(0)


def test_an_ok_verdict_says_how_rare_an_unseen_state_and_violation_must_be() -> None:
    prod = [hit(i, {"price": 5 + i % 3}, ok=True, source="src-0") for i in range(40)]
    statuses = [status("src-0", hits=40, evaluations=5319, violations=0)]
    verdict = compare(
        from_tests(),
        prod,
        probe=EXPECT,
        statuses=statuses,
        settings=CompareSettings(rarer_than=0.05),
    )
    assert verdict.verdict == "ok"
    conf = verdict.confidence
    assert conf["level"] == 0.95
    assert conf["states"] == {
        "n": 40,
        "over": "captured hits",
        "below": round(1 - 0.05 ** (1 / 40), 6),
    }
    assert conf["violations"]["n"] == 5319
    assert conf["violations"]["over"] == "evaluations"
    assert math.isclose(conf["violations"]["below"], 1 - 0.05 ** (1 / 5319), abs_tol=1e-6)
    assert (conf["asked"], conf["reached"], conf["needed"]) == (0.05, False, 59)


# --------------------------------------------------------------------------- exception exits


def exits(n: int, etype: str = "ValueError", start: int = 500) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        data = hit(start + i, {"price": -1}, ok=None, exception=etype, source="src-0")
        data["exception"]["message"] = "price must be positive"
        out.append(data)
    return out


def test_an_exception_exit_no_test_raised_is_high_with_counts_message_and_hint() -> None:
    prod = [hit(i, {"price": 5 + i % 3, "result": 4}, ok=None, source="src-0") for i in range(40)]
    prod += exits(10)
    tests = [hit(i, {"price": 5, "result": 4}, ok=None, prefix="t") for i in range(3)]
    statuses = [status("src-0", hits=50, exceptions=27)]
    verdict = compare(tests, prod, probe=RETURN, statuses=statuses)
    [d] = verdict.divergences  # the exits' missing "result" is not a shape divergence
    assert (d.kind, d.severity, d.key) == ("exception", "high", "exception:ValueError")
    assert d.message == (
        f"ValueError raised in production at {LOCATION}@return on 27 calls counted by the "
        "sensors on 1 source in the 35s since placement (10 captured); no test raised it"
    )
    assert d.counted == {"count": 27, "of": None, "over": "exception exits", "lower_bound": False}
    assert d.deepdiff == ("exception ValueError: price must be positive",)
    assert d.hit_ids[0] == "h-00500"
    assert "production raised ValueError: 'price must be positive'" in verdict.hint
    assert "raises=['ValueError']" in verdict.hint
    assert verdict.state_coverage == 1.0
    assert verdict.counts["prod_exception_exits"] == 10


def test_exceptions_the_marker_declares_or_a_test_raised_are_not_divergences() -> None:
    prod = [hit(i, {"price": 5}, ok=None) for i in range(40)] + exits(10, "json.JSONDecodeError")
    tests = [hit(i, {"price": 5}, ok=None, prefix="t") for i in range(3)]
    for raises in (("json.JSONDecodeError",), ("ValueError",), ("builtins.ValueError",)):
        __import__("json")  # the subclass test reads classes already imported
        settings = CompareSettings(raises=raises)
        assert compare(tests, prod, probe=RETURN, settings=settings).verdict == "ok", raises
    assert compare(
        tests, prod, probe=RETURN, settings=CompareSettings(raises=("KeyError",))
    ).divergences
    # A test that raised it on purpose (pytest.raises) made it a test-time state.
    raised = tests + exits(1, "json.JSONDecodeError", start=900)
    assert compare(raised, prod, probe=RETURN).verdict == "ok"


@pytest.mark.parametrize("late", [0, 3])
def test_exception_exits_after_the_last_counters_make_the_count_at_least(late: int) -> None:
    # 40 returns and 10 exits counted; then the source sent 2 more returns and ``late`` more
    # exits before its next counters.
    returns = [hit(i, {"price": 5, "result": 4}, ok=None, source="src-0") for i in range(40)]
    after = [hit(200 + i, {"price": 5, "result": 4}, ok=None, source="src-0") for i in range(2)]
    prod = returns + exits(10, start=50) + after + exits(late, start=300)
    tests = [hit(i, {"price": 5, "result": 4}, ok=None, prefix="t") for i in range(3)]
    statuses = [status("src-0", hits=50, exceptions=27)]
    verdict = compare(tests, prod, probe=RETURN, statuses=statuses)
    [d] = verdict.divergences
    assert (d.counted or {})["lower_bound"] is bool(late)
    assert ("on at least" in d.message) is bool(late)
    assert bool(verdict.production["lower_bound"]) is bool(late)


def test_tests_that_only_raised_leave_the_returned_states_unfrom_tests() -> None:
    prod = [hit(i, {"price": 5, "result": 4}, ok=None) for i in range(40)]
    tests = exits(2, start=0)
    [d] = compare(tests, prod, probe=RETURN).divergences
    assert (d.kind, d.key) == ("path", "no-test-states")
    assert d.message.startswith("every test call left")


# --------------------------------------------------------------------------- collecting


def test_inconclusive_when_every_source_disabled_the_probe_quotes_their_reasons() -> None:
    statuses = [
        status("src-0", state="disabled", reason="disabled: reached max_hits (1)", hits=1),
        status("src-1", state="disabled", reason="disabled: reached max_hits (1)", hits=1),
        status("master", state="pending", reason="waiting for module 'shop' to be imported"),
    ]
    prod = [hit(i, {"price": 5}, source=f"src-{i}") for i in range(2)]
    verdict = compare(from_tests(), prod, probe=RETURN, statuses=statuses)
    assert verdict.verdict == "inconclusive"
    assert verdict.hint == (
        "only 2 production hit(s), 10 needed; the probe cannot collect more: disabled on 2 of "
        "3 source(s): disabled: reached max_hits (1); pending on 1 of 3 source(s): waiting for "
        "module 'shop' to be imported (a process that never imports it, such as a pre-fork "
        "server's master)"
    )
    assert verdict.production["collecting"] is False


def test_inconclusive_when_no_call_reached_the_location_says_so() -> None:
    statuses = [status("src-0"), status("src-1")]
    verdict = compare(from_tests(), [], probe=RETURN, statuses=statuses)
    assert verdict.hint == (
        f"only 0 production hit(s), 10 needed; no call reached {LOCATION}@return in the 35s "
        "since placement on the 2 source(s) that report counters: send traffic that reaches "
        "it, or wait longer (--runtime-wait)"
    )


def test_inconclusive_with_hits_newer_than_zero_counters_does_not_say_no_call_reached() -> None:
    # The sensors' last counters (a heartbeat before the traffic began) say 0 calls, but 3 hits
    # arrived since: calls did reach the location; its counters have not caught up yet.
    statuses = [status("src-0"), status("src-1")]
    prod = [hit(i, {"price": 5}, source="src-0") for i in range(3)]
    verdict = compare(from_tests(), prod, probe=RETURN, statuses=statuses)
    assert verdict.verdict == "inconclusive"
    assert "no call reached" not in verdict.hint
    assert verdict.hint == (
        "only 3 production hit(s), 10 needed; calls reach "
        f"{LOCATION}@return, but the 3 hit(s) came after the last counters of the 2 source(s) "
        "that report them (sent with each heartbeat): run the check again once more hits "
        "have come, or wait longer (--runtime-wait)"
    )


def test_the_violation_says_how_many_were_false_and_how_many_failed_when_counted() -> None:
    counted = [
        status("src-0", hits=31, evaluations=2700, violations=551, expect_errors=51),
        status("src-1", hits=30, evaluations=2619, violations=535, expect_errors=0),
    ]
    verdict = compare(from_tests(), sampled_evidence(), probe=EXPECT, statuses=counted)
    assert violation(verdict).message == (
        "expectation 'price >= 0' failed on 1,086 of 5,319 evaluations (20.4%: 1,035 false, "
        "51 evaluation errors) on 2 sources in the 35s since placement; 40 violating hits "
        "captured"
    )
    assert verdict.production["expect_errors"] == 51
    # One source's sensor does not count them: the split is unknown, and not printed.
    mixed = [counted[0], status("src-1", hits=30, evaluations=2619, violations=535)]
    verdict = compare(from_tests(), sampled_evidence(), probe=EXPECT, statuses=mixed)
    assert "false," not in violation(verdict).message
    assert verdict.production["expect_errors"] is None
    # Counted and none failed: every violation was false; the message stays as before, and
    # the report's production says 0.
    none_failed = [status("src-0", hits=31, evaluations=2700, violations=551, expect_errors=0)]
    verdict = compare(from_tests(), sampled_evidence(), probe=EXPECT, statuses=none_failed)
    assert "(20.4%) on 1 source" in violation(verdict).message
    assert verdict.production["expect_errors"] == 0
    # Parts of other counters: the calls counted are the same with or without them.
    more = [status("src-0", evaluations=100, violations=7, expect_errors=3, skipped_rate=50,
                   skipped_closed=45, novel_classes=2, novel_admitted=1)]  # fmt: skip
    less = [status("src-0", evaluations=100, violations=7, skipped_rate=50)]
    assert summarize(more, [], has_expect=True).calls == 150
    assert summarize(less, [], has_expect=True).calls == 150
    assert summarize(more, [], has_expect=True).skipped_closed == 45
