"""The terminal summary section: bounded, sorted, deterministic."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pytest_runtime.compare import ProbeResult
from pytest_runtime.reporting._common import (
    VERDICT_ORDER,
    accepted_by_baseline,
    confidence_text,
    counts_by_verdict,
    divergence_line,
    escape_text,
    group_line,
    grouped_results,
    plumbing_run_text,
    plumbing_text,
    probe_ids,
    reason,
    result_line,
    run_coverage,
    run_coverage_lines,
    skewed,
)

__all__ = ["replay_lines", "summary_lines", "write_summary"]

_MARKUP = {"violated": {"red": True, "bold": True}, "diverged": {"yellow": True}}


def summary_lines(
    results: Sequence[ProbeResult],
    *,
    max_results: int = 20,
    max_divergences: int = 3,
    max_diff_lines: int = 4,
    max_nodeids: int = 3,
    verbose: bool = False,
) -> list[tuple[str, str]]:
    """The section's lines as ``(verdict, text)``; ``ok`` results are listed only when verbose.

    Results whose evidence reads the same (parametrized cases marking one probe, with the
    same verdict and divergences) are one block that lists their node ids, at most
    ``max_nodeids`` of them and how many more. ``max_results`` bounds the blocks. Every cut
    is said with its count, so nothing disappears silently.
    """

    def body(result: ProbeResult) -> list[tuple[str, str]]:
        return _body_lines(result, max_divergences=max_divergences, max_diff_lines=max_diff_lines)

    # Cases are one block only when everything the block shows reads the same for each: the
    # key is the block itself (its heading without the node id, and its lines).
    bodies = {id(r): body(r) for r in results}

    def shown(result: ProbeResult) -> str:
        return json.dumps([group_line(result, 0), bodies[id(result)]])

    lines: list[tuple[str, str]] = []
    groups = [
        g for g in grouped_results(results, key=shown) if verbose or g[0].verdict.verdict != "ok"
    ]
    for group in groups[:max_results]:
        result = group[0]
        v = result.verdict
        if len(group) == 1:
            lines.append((v.verdict, result_line(result)))
        else:
            lines.append((v.verdict, group_line(result, len(group))))
            for member in group[:max_nodeids]:
                lines.append((v.verdict, "    " + member.nodeid))
            if len(group) > max_nodeids:
                lines.append((v.verdict, f"    and {len(group) - max_nodeids} more"))
        lines.extend(bodies[id(result)])
    if len(groups) > max_results:
        cut = sum(len(g) for g in groups[max_results:])
        lines.append(("", f"... {cut} more result(s) not shown"))
    counts = counts_by_verdict(results)
    total = ", ".join(f"{counts[k]} {k}" for k in VERDICT_ORDER)
    # The run's coverage, then the totals: the totals stay the section's last line.
    lines.extend(("", line) for line in run_coverage_lines(run_coverage(results)))
    # Said for the whole run too: an ok probe's block is shown only with -v, and what was set
    # aside must never be hidden.
    plumbing = plumbing_run_text(results)
    if plumbing:
        lines.append(("", plumbing))
    lines.append(("", f"runtime probes: {total}"))
    return lines


def _body_lines(
    result: ProbeResult, *, max_divergences: int, max_diff_lines: int
) -> list[tuple[str, str]]:
    """The lines of a result's block under its heading (divergences, what was set aside, the
    confidence, why, the baseline, the hub probes)."""
    v = result.verdict
    lines: list[tuple[str, str]] = []
    for d in v.divergences[:max_divergences]:
        lines.append((v.verdict, "    " + divergence_line(d, skewed=skewed(v))))
        for diff in d.deepdiff[:max_diff_lines]:
            lines.append((v.verdict, "        " + diff))
        if len(d.deepdiff) > max_diff_lines:
            lines.append((v.verdict, f"        ... {len(d.deepdiff) - max_diff_lines} more"))
        if d.hit_ids:
            first = d.hit_ids[:3]
            rest = d.count - len(first)
            ids = ", ".join(first) + (f" (+{rest} more)" if rest > 0 else "")
            lines.append((v.verdict, f"        hits: {ids}"))
    hidden = len(v.divergences) - max_divergences + v.counts.get("divergences_cut", 0)
    if hidden > 0:
        lines.append((v.verdict, f"    ... {hidden} more divergence(s) in the JSON report"))
    plumbing = plumbing_text(v)
    if plumbing:
        lines.append((v.verdict, "    " + plumbing))
    confidence = confidence_text(v)
    if confidence:
        lines.append((v.verdict, "    confidence: " + confidence))
    if v.hint and v.verdict != "ok":
        lines.append((v.verdict, "    " + v.hint))
    why = reason(result)
    if why and why != v.hint:
        lines.append((v.verdict, "    " + why))
    if accepted_by_baseline(result):
        lines.append((v.verdict, "    accepted by the baseline: does not fail the run"))
    hub_ids = probe_ids(result)
    if hub_ids and v.verdict != "ok":
        more = f" (+{len(hub_ids) - 2} more)" if len(hub_ids) > 2 else ""
        lines.append(
            (
                v.verdict,
                f"    hub probe(s): {', '.join(hub_ids[:2])}{more}; "
                f"read its hits: python -m sensor hits {hub_ids[0]}",
            )
        )
    return lines


def replay_lines(replays: Sequence[Any], *, max_reports: int = 20) -> list[tuple[str, str]]:
    """The ``runtime replay`` section: one block per replayed probe, failing ones first."""
    ordered = sorted(replays, key=lambda r: (not r.fails, r.nodeid, r.location))
    lines: list[tuple[str, str]] = []
    for report in ordered[:max_reports]:
        markup = "violated" if report.fails else "diverged" if report.changed else ""
        lines.append((markup, report.nodeid))
        lines.extend((markup, "  " + line) for line in report.lines())
    if len(ordered) > max_reports:
        lines.append(("", f"... {len(ordered) - max_reports} more replay report(s) in the JSON"))
    return lines


def write_summary(
    tr: Any,
    results: Sequence[ProbeResult],
    *,
    verbose: bool | None = None,
    header: Sequence[str] = (),
    replays: Sequence[Any] = (),
) -> None:
    """Write the ``runtime probes`` section to a pytest ``TerminalReporter``.

    ``header`` lines (said once for the run, such as a pre-fork master's pending probes)
    come first. Every line is escaped: hub data must not reach the terminal as control codes.
    """
    if verbose is None:
        verbose = getattr(getattr(tr, "config", None), "option", None) is not None and (
            getattr(tr.config.option, "verbose", 0) > 0
        )
    tr.write_sep("=", "runtime probes")
    for line in header:
        tr.write_line(escape_text(line), bold=True)
    if results:
        for verdict, text in summary_lines(results, verbose=bool(verbose)):
            tr.write_line(escape_text(text), **_MARKUP.get(verdict, {}))
    if replays:
        tr.write_sep("-", "runtime replay")
        for verdict, text in replay_lines(replays):
            tr.write_line(escape_text(text), **_MARKUP.get(verdict, {}))
