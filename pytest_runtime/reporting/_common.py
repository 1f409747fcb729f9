"""Ordering and wording shared by every report, so that they all agree and stay deterministic."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence

from pytest_runtime.compare import Divergence, ProbeResult

__all__ = [
    "VERDICT_ORDER",
    "RunResult",
    "accepted_by_baseline",
    "counts_by_verdict",
    "divergence_line",
    "escape_text",
    "fails_run",
    "group_line",
    "grouped_results",
    "nodeid_list",
    "probe_ids",
    "reason",
    "result_line",
    "same_evidence_key",
    "sorted_results",
]


@dataclasses.dataclass(frozen=True, slots=True)
class RunResult(ProbeResult):
    """A :class:`ProbeResult` with what the run knows beyond the comparison.

    The reports accept plain ``ProbeResult`` objects too (see :func:`fails_run` and friends),
    so that the comparison and the reports can be used on their own.
    """

    #: ids of the hub probes whose hits are this result's evidence (placed, reused or read)
    probe_ids: tuple[str, ...] = ()
    #: the verdict fails this run after the baseline (None: as the verdict says)
    fails: bool | None = None
    #: the verdict would fail, and the baseline accepts every divergence of it
    accepted: bool = False
    #: why the verdict is what it is when the comparison did not decide it alone (the hub was
    #: lost, the probe is misconfigured in production, no service was named)
    reason: str | None = None


def fails_run(result: ProbeResult) -> bool:
    """True when this result fails the run (after the baseline, when one is used)."""
    fails = getattr(result, "fails", None)
    return bool(result.verdict.fails if fails is None else fails)


def accepted_by_baseline(result: ProbeResult) -> bool:
    return bool(getattr(result, "accepted", False))


def probe_ids(result: ProbeResult) -> tuple[str, ...]:
    return tuple(getattr(result, "probe_ids", ()) or ())


def reason(result: ProbeResult) -> str | None:
    value = getattr(result, "reason", None)
    return str(value) if value else None


def escape_text(text: str) -> str:
    """``text`` with control characters shown as escapes (``\\x1b``, ``\\n``, ``\\u202e``).

    Hub data (sensor reasons, captured strings in messages, deepdiff lines) reaches terminals,
    CI logs and annotations: an ANSI escape or a direction override in it must not rewrite
    what a reader sees.
    """
    from sensor.render import escape_text as escape

    return escape(text)


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
