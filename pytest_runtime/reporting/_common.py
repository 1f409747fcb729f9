"""Ordering and wording shared by every report, so that they all agree and stay deterministic."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pytest_runtime.compare import Divergence, ProbeResult

__all__ = ["VERDICT_ORDER", "counts_by_verdict", "divergence_line", "result_line", "sorted_results"]

#: The most urgent first.
VERDICT_ORDER = ("violated", "diverged", "inconclusive", "ok")
_RANK = {v: i for i, v in enumerate(VERDICT_ORDER)}


def sorted_results(results: Iterable[ProbeResult]) -> list[ProbeResult]:
    """Most urgent verdict first, then test node id, then location."""
    return sorted(
        results, key=lambda r: (_RANK.get(r.verdict.verdict, 9), r.nodeid, r.location, r.signature)
    )


def counts_by_verdict(results: Sequence[ProbeResult]) -> dict[str, int]:
    counts = dict.fromkeys(VERDICT_ORDER, 0)
    for result in results:
        counts[result.verdict.verdict] = counts.get(result.verdict.verdict, 0) + 1
    return counts


def result_line(result: ProbeResult) -> str:
    """``VIOLATED tests/x.py::test_a  shop.pricing:f  prod 120, test 4, coverage 50%``."""
    v = result.verdict
    prod = v.counts.get("prod_hits", 0)
    test = v.counts.get("test_hits", 0)
    return (
        f"{v.verdict.upper()} {result.nodeid}  {result.location}  "
        f"prod {prod} hit(s), test {test}, state coverage {v.state_coverage:.0%}"
    )


def divergence_line(d: Divergence) -> str:
    """``high shape order.discount: None in production; ... (20 hits, 10.0%)``."""
    return f"{d.severity} {d.kind}: {d.message} ({d.count} hit(s), {d.share:.1%})"
