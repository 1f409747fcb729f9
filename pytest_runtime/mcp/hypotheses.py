"""A hypothesis check read back: counts from the sensors' own counters, a rate with its bound,
and a few example states per outcome.

The sensors count every evaluation of the expression (``evaluations``), every one that was
false or failed (``violations``) and, of those, every one that failed (``expect_errors``),
exactly and before any sampling. A sensor of an older version does not count the failures: then
which of the two a violation was is known for the captured ones only (:func:`split_not_true`
says whether the split is exact).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pytest_runtime.mcp.bounds import shrink
from pytest_runtime.mcp.stats import rate_with_bound
from pytest_runtime.mcp.summary import iso, outcome, source_label

__all__ = ["MAX_EXAMPLES", "evaluations", "hypothesis_counts", "reading", "split_not_true"]

MAX_EXAMPLES = 3  #: example states shown per outcome
_EXAMPLE_CHARS = 600  #: serialized size of one example's captures, at most


def evaluations(record: Mapping[str, Any]) -> int:
    """Evaluations of the probe's expression summed over its sources."""
    return sum(
        int(s.get("evaluations") or 0)
        for s in (record.get("statuses") or {}).values()
        if isinstance(s, Mapping)
    )


def split_not_true(not_true: int, captured_false: int, captured_error: int) -> tuple[int, int, str]:
    """(false, errors, how) from the sensors' count of false-or-failing evaluations.

    When every one was captured the split is exact; otherwise it is scaled from the captured
    ones, and ``how`` says so. More captured than counted means the counters (sent with the
    heartbeat) lag behind the hits (flushed within a second): the captured ones are used.
    """
    captured = captured_false + captured_error
    if captured > not_true:  # the counters lag behind the hits: see counters_behind
        return captured_false, captured_error, "from the captured hits (the counters lag)"
    if not_true == 0:
        return 0, 0, "exact: no evaluation was false or failed"
    if captured == not_true:
        how = "exact: every false or failing evaluation was captured"
        return captured_false, captured_error, how
    if captured:
        errors = round(not_true * captured_error / captured)
        return (
            not_true - errors,
            errors,
            f"estimated: the sensors counted {not_true} false-or-failing evaluations and "
            f"captured {captured} of them ({captured_false} false, {captured_error} errors); "
            "the split is scaled from those",
        )
    return (
        not_true,
        0,
        f"unknown: none of the {not_true} false-or-failing evaluations was captured yet; "
        "all are counted as false",
    )


def hypothesis_counts(
    record: Mapping[str, Any], hits: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """counts, rate_true, reading, examples and examples_captured of one hypothesis probe."""
    statuses = [s for s in (record.get("statuses") or {}).values() if isinstance(s, Mapping)]
    evaluated = sum(int(s.get("evaluations") or 0) for s in statuses)
    not_true = sum(int(s.get("violations") or 0) for s in statuses)
    true = max(0, evaluated - not_true)
    by_outcome: dict[str, list[Mapping[str, Any]]] = {"true": [], "false": [], "error": []}
    for hit in hits:
        result = outcome(hit)
        if result is not None:
            by_outcome[result].append(hit)
    if statuses and all("expect_errors" in s for s in statuses):
        # Counted by every sensor: the split is exact whatever was captured.
        errors = sum(int(s.get("expect_errors") or 0) for s in statuses)
        false = max(0, not_true - errors)
        split = "exact: counted by the sensors (expect_errors)"
    else:
        false, errors, split = split_not_true(
            not_true, len(by_outcome["false"]), len(by_outcome["error"])
        )
    counts: dict[str, Any] = {
        "evaluated": evaluated,
        "true": true,
        "false": false,
        "errors": errors,
        "false_errors_split": split,
        "not_evaluated": {
            "condition_false": sum(int(s.get("skipped_condition") or 0) for s in statuses),
            "over_the_evaluation_rate": sum(int(s.get("skipped_rate") or 0) for s in statuses),
        },
        "over": (
            f"every evaluation on {len(statuses)} source(s), as counted by each sensor at "
            "its last heartbeat"
        ),
    }
    captured = {name: len(group) for name, group in by_outcome.items()}
    if sum(captured.values()) > evaluated or captured["false"] + captured["error"] > not_true:
        # Hits are flushed within a second; counters ride on the heartbeat (every few seconds).
        counts["counters_behind"] = (
            f"{sum(captured.values())} hits were captured but the sensors last counted "
            f"{evaluated} evaluations: their counters arrive with the next heartbeat, so these "
            "counts are a lower bound until then; poll again with wait_seconds"
        )
    rate = rate_with_bound(true, evaluated) if evaluated else None
    return {
        "counts": counts,
        "rate_true": rate,
        "reading": reading(true, evaluated, rate),
        "examples": {
            name: [example(hit) for hit in group[:MAX_EXAMPLES]]
            for name, group in by_outcome.items()
            if group
        },
        "examples_captured": {k: len(v) for k, v in sorted(by_outcome.items())},
    }


def reading(true: int, evaluated: int, rate: Mapping[str, Any] | None) -> str:
    """The counts in one sentence, with the bound when one outcome was never seen."""
    if not evaluated or rate is None:
        return "no evaluation yet: nothing can be concluded"
    if true == evaluated:
        return (
            f"true on all {evaluated} evaluations: if it is ever false or failing, that "
            f"happens on fewer than {100 * (1 - rate['low']):.2g}% of evaluations (95%)"
        )
    if true == 0:
        return (
            f"never true in {evaluated} evaluations: if it is ever true, that happens on "
            f"fewer than {100 * rate['high']:.2g}% of evaluations (95%)"
        )
    return (
        f"true on {true} of {evaluated} evaluations ({100 * rate['rate']:.3g}%, 95% interval "
        f"{100 * rate['low']:.3g}% to {100 * rate['high']:.3g}%)"
    )


def example(hit: Mapping[str, Any]) -> dict[str, Any]:
    """One example state: its hit id, source, time, line, error, and bounded captures."""
    shown: dict[str, Any] = {
        "hit_id": hit.get("hit_id"),
        "source": source_label(hit.get("source")),
        "time": iso(hit.get("ts")),
    }
    if hit.get("line") is not None:
        shown["line"] = hit.get("line")
    expect = hit.get("expect")
    if isinstance(expect, Mapping) and expect.get("error"):
        shown["error"] = str(expect["error"])[:200]
    captures, cut = shrink(hit.get("captures"), _EXAMPLE_CHARS)
    shown["captures"] = captures
    if cut or hit.get("truncated"):
        shown["cut"] = True
    return shown
