"""Ordering and wording shared by every report, so that they all agree and stay deterministic."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from pytest_runtime.compare import Divergence, ProbeResult

__all__ = [
    "VERDICT_ORDER",
    "counts_by_verdict",
    "divergence_line",
    "group_line",
    "grouped_results",
    "nodeid_list",
    "result_line",
    "same_evidence_key",
    "sorted_results",
]

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


def group_line(result: ProbeResult, size: int) -> str:
    """``VIOLATED shop.pricing:f  prod 120 hit(s), test 1, state coverage 50%, 5 tests:``."""
    v = result.verdict
    prod = v.counts.get("prod_hits", 0)
    test = v.counts.get("test_hits", 0)
    return (
        f"{v.verdict.upper()} {result.location}  prod {prod} hit(s), test {test}, "
        f"state coverage {v.state_coverage:.0%}, same result for {size} tests:"
    )


def divergence_line(d: Divergence) -> str:
    """``high shape order.discount: None in production; ... (20 hits, 10.0%)``."""
    return f"{d.severity} {d.kind}: {d.message} ({d.count} hit(s), {d.share:.1%})"


def same_evidence_key(result: ProbeResult) -> str:
    """What a report shows of a result besides its test: equal keys read the same.

    Parametrized cases of one test usually mark the same probe signature; when their
    verdicts, counts and divergences (with deepdiff lines, hit ids and hint) are identical,
    a report shows them once with the list of node ids.
    """
    v = result.verdict
    return json.dumps(
        [
            result.signature,
            result.location,
            v.verdict,
            v.strict,
            v.state_coverage,
            v.counts.get("prod_hits", 0),
            v.counts.get("test_hits", 0),
            v.counts.get("divergences_cut", 0),
            v.hint,
            [d.hit_ids for d in v.divergences],
            [
                [*(d.kind, d.severity, d.path, d.key, d.message, d.count, d.share), d.deepdiff]
                for d in v.divergences
            ],
        ],
        sort_keys=True,
        default=str,
    )


def grouped_results(results: Iterable[ProbeResult]) -> list[list[ProbeResult]]:
    """Results with the same evidence key, grouped; groups in :func:`sorted_results` order of
    their first member, members in node id order (deterministic whatever the input order)."""
    groups: dict[str, list[ProbeResult]] = {}
    for result in sorted_results(results):
        groups.setdefault(same_evidence_key(result), []).append(result)
    return list(groups.values())


def nodeid_list(results: Sequence[ProbeResult], *, limit: int = 3) -> str:
    """``a, b, c and 2 more``: the first ``limit`` node ids of a group and how many are left."""
    ids = [r.nodeid for r in results]
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")
