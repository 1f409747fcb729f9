"""Ordering and wording shared by every report, so that they all agree and stay deterministic."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pytest_runtime.compare import Divergence, ProbeResult, ProbeVerdict

__all__ = [
    "VERDICT_ORDER",
    "RunResult",
    "accepted_by_baseline",
    "confidence_text",
    "counts_by_verdict",
    "coverage_text",
    "divergence_line",
    "escape_text",
    "fails_run",
    "group_line",
    "grouped_results",
    "nodeid_list",
    "percent",
    "plumbing_run_text",
    "plumbing_text",
    "probe_ids",
    "reason",
    "result_line",
    "run_coverage",
    "run_coverage_lines",
    "same_evidence_key",
    "skewed",
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


def percent(rate: float) -> str:
    """``6.4%``, ``0.056%``, ``45%``: two significant digits, however small."""
    return f"{rate * 100:.2g}%"


def coverage_text(v: ProbeVerdict) -> str:
    """``tests cover 1 of 2 production shapes``: state coverage, defined where it is shown.

    Next to a violation with every shape covered, it says what a shape is, so that "all
    shapes covered" and "violated" do not read as a contradiction.
    """
    if "prod_lines" in v.counts:  # a lines probe: statements, not shapes
        lines = v.counts.get("prod_lines", 0)
        covered = v.counts.get("covered_lines", 0)
        return f"tests ran {covered} of {lines} production-run line{'s' if lines != 1 else ''}"
    shapes = v.counts.get("prod_shapes", 0)
    covered = v.counts.get("covered_shapes", 0)
    text = f"tests cover {covered} of {shapes} production shape{'s' if shapes != 1 else ''}"
    if v.verdict == "violated" and shapes and covered == shapes:
        text += " (types and keys; the values broke the expectation)"
    return text


def _hits_text(v: ProbeVerdict) -> str:
    prod = v.counts.get("prod_hits", 0)
    test = v.counts.get("test_hits", 0)
    return (
        f"{prod:,} production hit{'s' if prod != 1 else ''}, "
        f"{test:,} test hit{'s' if test != 1 else ''}"
    )


def result_line(result: ProbeResult) -> str:
    """``VIOLATED tests/x.py::test_a  shop.pricing:f  120 production hits, 4 test hits; ...``."""
    v = result.verdict
    return (
        f"{v.verdict.upper()} {result.nodeid}  {result.location}  {_hits_text(v)}; "
        f"{coverage_text(v)}"
    )


def group_line(result: ProbeResult, size: int) -> str:
    """``VIOLATED shop.pricing:f  120 production hits, ...; same result for 5 tests:``."""
    v = result.verdict
    return (
        f"{v.verdict.upper()} {result.location}  {_hits_text(v)}; {coverage_text(v)}; "
        f"same result for {size} tests:"
    )


def divergence_line(d: Divergence, *, skewed: bool = False) -> str:
    """``high shape order.discount: None in production; ... (20 captured hits, 10.0%)``.

    A violation's or an exception's message already gives its counts (from the sensors'
    counters when there are some). ``skewed``: the captured hits over-represent violations
    (they are captured more often than passing calls), so a share of them would overstate
    how often production shows the divergence, and only the count is given.
    """
    if d.kind in ("violation", "exception"):
        return f"{d.severity} {d.kind}: {d.message}"
    if d.counted is not None and d.counted.get("over") == "sampled calls":
        return f"{d.severity} {d.kind}: {d.message}"  # the message gives the counts already
    hits = f"{d.count:,} captured hit{'s' if d.count != 1 else ''}"
    return f"{d.severity} {d.kind}: {d.message} ({hits}{'' if skewed else f', {d.share:.1%}'})"


def skewed(v: ProbeVerdict) -> bool:
    """True when the captured hits over-represent violations (an expect probe that saw some)."""
    return bool(v.production.get("captured_violations")) and bool(v.counts.get("prod_hits"))


def plumbing_text(v: ProbeVerdict, *, limit: int = 3) -> str | None:
    """What the comparison set aside as server plumbing, or None when nothing there differed."""
    total = int(v.counts.get("plumbing_differed", len(v.plumbing)))
    if not total:
        return None
    names = sorted(v.plumbing)[:limit]
    more = f" and {total - len(names)} more" if total > len(names) else ""
    return (
        f"server plumbing set aside: {total} path{'s' if total != 1 else ''} where the test "
        f"client and the server differ ({', '.join(names)}{more}), not compared as data; "
        "plumbing=False on the marker or runtime_plumbing = false compares them"
    )


def plumbing_run_text(results: Sequence[ProbeResult]) -> str | None:
    """What the comparison set aside as server plumbing over the whole run, or None: said once
    for the run, since an ok probe's own lines are not always shown."""
    aside = [r for r in results if r.verdict.counts.get("plumbing_differed")]
    if not aside:
        return None
    paths = sum(int(r.verdict.counts["plumbing_differed"]) for r in aside)
    return (
        f"server plumbing set aside in {len(aside)} probe(s): {paths} path(s) where the test "
        'client and the server differ ("plumbing" in the JSON report); '
        "runtime_plumbing = false compares them"
    )


def confidence_text(v: ProbeVerdict) -> str | None:
    """How rare what the evidence did not show must be (the rule of three, 95%), or None."""
    c = v.confidence
    states = c.get("states") if isinstance(c, Mapping) else None
    if not isinstance(states, Mapping) or not states.get("n"):
        return None
    parts = []
    violations = c.get("violations")
    if isinstance(violations, Mapping) and violations.get("n"):
        over = str(violations["over"])
        if violations["n"] == 1:
            over = over.replace("evaluations", "evaluation").replace("hits", "hit")
        parts.append(
            f"no violation in {violations['n']:,} {over}: a violation happens on "
            f"fewer than {percent(violations['below'])} of calls"
        )
    lead = "beyond these divergences, " if v.divergences else ""
    none = "the captured hit" if states["n"] == 1 else f"none of the {states['n']:,} captured hits"
    shown = "did not show" if states["n"] == 1 else "showed"
    parts.append(
        f"{lead}a state {none} {shown} happens on fewer than {percent(states['below'])} of calls"
    )
    text = "; ".join(parts) + " (95% confidence, rule of three)"
    asked = c.get("asked")
    if asked is not None and c.get("reached") is False:
        text += (
            f"; asked for {percent(asked)}: {c.get('needed') or 0:,} hits needed (wait or "
            "record longer, or raise the probe's rate=)"
        )
    return text


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


def grouped_results(
    results: Iterable[ProbeResult], *, key: Callable[[ProbeResult], str] | None = None
) -> list[list[ProbeResult]]:
    """Results with the same ``key`` (default: :func:`same_evidence_key`), grouped; groups in
    :func:`sorted_results` order of their first member, members in node id order
    (deterministic whatever the input order). A report that shows a group as one block keys
    it by what the block shows, so that no member's own detail is shown as another's."""
    keyed = same_evidence_key if key is None else key
    groups: dict[str, list[ProbeResult]] = {}
    for result in sorted_results(results):
        groups.setdefault(keyed(result), []).append(result)
    return list(groups.values())


def nodeid_list(results: Sequence[ProbeResult], *, limit: int = 3) -> str:
    """``a, b, c and 2 more``: the first ``limit`` node ids of a group and how many are left."""
    ids = [r.nodeid for r in results]
    shown = ", ".join(ids[:limit])
    return shown + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


def run_coverage(results: Iterable[ProbeResult]) -> dict[str, Any]:
    """The run's state coverage and production-line coverage (what ``--runtime-fail-under``
    gates).

    ``state``: production shapes the tests had, over every production shape, summed over the
    probe signatures (for a signature several tests mark, the test that covers most counts);
    ``lines``: production-run statements the test run executed, over those production ran,
    summed over the lines probes. Each says what it is over, with ``percent`` None when there
    is nothing to measure.
    """
    best: dict[tuple[str, str], tuple[int, int]] = {}
    for result in results:
        counts = result.verdict.counts
        if "prod_lines" in counts:
            key, pair = (
                ("lines", result.signature),
                (
                    counts.get("covered_lines", 0),
                    counts.get("prod_lines", 0),
                ),
            )
        else:
            key, pair = (
                ("state", result.signature),
                (
                    counts.get("covered_shapes", 0),
                    counts.get("prod_shapes", 0),
                ),
            )
        if key not in best or pair[0] > best[key][0]:
            best[key] = pair
    out: dict[str, Any] = {}
    for kind, over in (("state", "production shapes"), ("lines", "production-run lines")):
        covered = sum(pair[0] for (k, _), pair in best.items() if k == kind)
        total = sum(pair[1] for (k, _), pair in best.items() if k == kind)
        probes = sum(1 for k, _ in best if k == kind)
        out[kind] = {
            "covered": covered,
            "of": total,
            "over": over,
            "probes": probes,
            "percent": round(100.0 * covered / total, 2) if total else None,
        }
    out["lines"]["production_only"] = out["lines"]["of"] - out["lines"]["covered"]
    return out


def run_coverage_lines(coverage: Mapping[str, Any]) -> list[str]:
    """``runtime coverage: ...`` lines for the terminal and the markdown summary."""
    state, lines = coverage["state"], coverage["lines"]
    parts = []
    if state["of"]:
        parts.append(
            f"state coverage {state['percent']:g}% ({state['covered']} of {state['of']} "
            f"production shapes, {state['probes']} probe(s))"
        )
    if lines["of"]:
        parts.append(
            f"production-run lines the tests ran {lines['percent']:g}% ({lines['covered']} of "
            f"{lines['of']}; {lines['production_only']} production-only, {lines['probes']} "
            "lines probe(s))"
        )
    return ["runtime coverage: " + "; ".join(parts)] if parts else []
