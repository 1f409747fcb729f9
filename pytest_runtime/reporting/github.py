"""GitHub Actions output: workflow-command annotations and a markdown job summary.

GitHub shows at most 10 annotations of each kind per step (50 per job) and refuses a job
summary above 1 MiB; both are bounded here, with the cut counted.
"""

# The contract names a function `annotations`; the __future__ feature is imported under an
# alias so that the function does not shadow it (mypy would see the feature object).
# ruff: noqa: I002
from __future__ import annotations as _annotations

from collections.abc import Sequence
from typing import Any

from pytest_runtime.compare import ProbeResult
from pytest_runtime.reporting._common import (
    VERDICT_ORDER,
    accepted_by_baseline,
    confidence_text,
    counts_by_verdict,
    coverage_text,
    divergence_line,
    escape_text,
    fails_run,
    nodeid_list,
    plumbing_run_text,
    plumbing_text,
    probe_ids,
    reason,
    run_coverage,
    run_coverage_lines,
    skewed,
    sorted_results,
)

__all__ = [
    "MAX_ANNOTATIONS",
    "MAX_SUMMARY_BYTES",
    "annotations",
    "escape_data",
    "escape_property",
    "job_summary",
]

MAX_ANNOTATIONS = 10
MAX_SUMMARY_BYTES = 1024 * 1024
_MAX_MESSAGE = 2000


def escape_data(text: str) -> str:
    """Escape a workflow command's message (``%``, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a workflow command's property value (also ``:`` and ``,``)."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _message(result: ProbeResult) -> str:
    v = result.verdict
    lines = [
        f"{result.location}: {v.verdict} against {v.counts.get('prod_hits', 0)} production "
        f"hit(s) ({coverage_text(v)})"
    ]
    for d in v.divergences[:3]:
        lines.append(divergence_line(d, skewed=skewed(v)))
        lines.extend("  " + x for x in d.deepdiff[:2])
    if len(v.divergences) > 3:
        lines.append(f"... {len(v.divergences) - 3} more divergence(s)")
    plumbing = plumbing_text(v)
    if plumbing:
        lines.append(plumbing)
    why = reason(result)
    if why and why != v.hint:
        lines.append(why)
    confidence = confidence_text(v)
    if confidence:
        lines.append("confidence: " + confidence)
    if v.hint:
        lines.append(v.hint)
    if accepted_by_baseline(result):
        lines.append("accepted by the baseline: does not fail the run")
    ids = probe_ids(result)
    if ids:
        lines.append(f"hub probe(s): {', '.join(ids[:3])}")
    # Each line escaped on its own: the line breaks are ours, control codes in hub data not.
    return _bounded("\n".join(escape_text(line) for line in lines))


def _bounded(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def annotations(results: Sequence[ProbeResult], *, limit: int = MAX_ANNOTATIONS) -> list[str]:
    """``::error``/``::warning`` lines at each marked test's file and line, at most ``limit``.

    Failing verdicts (violated, or diverged under strict) are errors, other divergences are
    warnings; ok and inconclusive results get none. Results that would give the same
    annotation (parametrized cases of one test with the same evidence) give one, which names
    how many tests share it. When some are cut, the last line is a notice that says how many.
    """
    wanted = [
        r
        for r in sorted_results(results)
        if r.verdict.verdict in ("violated", "diverged")
        or (r.verdict.verdict == "inconclusive" and reason(r))
    ]
    # One annotation per distinct (level, file, line, title, message), in first-seen order.
    grouped: dict[tuple[str, str, str], list[ProbeResult]] = {}
    for result in wanted:
        level = "error" if fails_run(result) else "warning"
        props = []
        if result.test_file:
            props.append(f"file={escape_property(result.test_file)}")
            if result.test_line:
                props.append(f"line={int(result.test_line)}")
        title = escape_text(f"runtime probe {result.verdict.verdict}: {result.location}")
        props.append(f"title={escape_property(title)}")
        grouped.setdefault((level, ",".join(props), _message(result)), []).append(result)
    room = limit if len(grouped) <= limit else max(0, limit - 1)
    lines: list[str] = []
    for (level, props_text, message), members in list(grouped.items())[:room]:
        if len(members) > 1:
            message = _bounded(
                f"{message}\nsame result for {len(members)} tests: {nodeid_list(members)}"
            )
        lines.append(f"::{level} {props_text}::{escape_data(message)}")
    if len(grouped) > room and limit > 0:
        cut = len(grouped) - room
        lines.append(
            f"::notice title=runtime probes::{cut} more runtime probe annotation(s) not shown "
            "(see the job summary)"
        )
    return lines


def _cell(text: object) -> str:
    return escape_text(str(text).replace("\n", " ").replace("\r", " ")).replace("|", "\\|")


def job_summary(
    results: Sequence[ProbeResult],
    *,
    max_bytes: int = MAX_SUMMARY_BYTES,
    notes: Sequence[str] = (),
    replays: Sequence[Any] = (),
) -> str:
    """A markdown job summary, under ``max_bytes`` (UTF-8) whatever the number of results.

    ``notes`` (what the run says as a whole: the hub was lost, ...) are listed first, at most
    ten of them.
    """
    counts = counts_by_verdict(results)
    head = [
        "## Runtime probes",
        "",
        " · ".join(f"**{counts[k]}** {k}" for k in VERDICT_ORDER),
        "",
    ]
    head += [f"{_cell(line)}" for line in run_coverage_lines(run_coverage(results))]
    # What the comparison set aside as server plumbing, for the whole run (an ok probe has no
    # block of its own here): never hidden.
    plumbing = plumbing_run_text(results)
    if plumbing:
        head.append(_cell(plumbing))
    if head[-1]:
        head.append("")
    if replays:
        head += ["### Replay of production states", ""]
        for report in sorted(replays, key=lambda r: (not r.fails, r.nodeid, r.location))[:20]:
            said = report.lines()
            mark = "**fails**: " if report.fails else ""
            head.append(f"- {mark}`{_cell(report.nodeid)}`: {_cell(said[0] if said else '')}")
            head.extend(f"  - {_cell(line.strip())}" for line in said[1:6])
        head.append("")
    shown = [f"- {_cell(note)[:500]}" for note in notes[:10]]
    if len(notes) > 10:
        shown.append(f"- ... {len(notes) - 10} more note(s) in the JSON report")
    if shown:
        head += [*shown, ""]
    head += [
        "| verdict | test | location | production hits | test hits | shapes covered by tests "
        "| top divergence |",
        "| --- | --- | --- | ---: | ---: | ---: | --- |",
    ]
    ordered = sorted_results(results)
    budget = max_bytes - 512  # room for the closing note
    out = "\n".join(head) + "\n"
    size = len(out.encode())
    rows = 0
    for result in ordered:
        v = result.verdict
        top = v.divergences[0] if v.divergences else None
        top_text = _cell(f"{top.severity} {top.kind}: {top.message}") if top else ""
        if not top_text and reason(result):
            top_text = _cell(reason(result))
        if accepted_by_baseline(result):
            top_text = (top_text + " (accepted by the baseline)").strip()
        row = (
            f"| {v.verdict} | `{_cell(result.nodeid)}` | `{_cell(result.location)}` | "
            f"{v.counts.get('prod_hits', 0)} | {v.counts.get('test_hits', 0)} | "
            f"{v.counts.get('covered_shapes', 0)} of {v.counts.get('prod_shapes', 0)} | "
            f"{top_text} |\n"
        )
        if size + len(row.encode()) > budget:
            break
        out += row
        size += len(row.encode())
        rows += 1
    details = ""
    detailed = 0
    for result in ordered[:rows]:
        v = result.verdict
        if not v.divergences:
            continue
        block = [
            f"\n<details><summary>{_cell(v.verdict)}: {_cell(result.nodeid)} "
            f"({_cell(result.location)})</summary>\n"
        ]
        for d in v.divergences:
            block.append(
                f"- **{d.severity} {d.kind}** `{_cell(d.path)}`: {_cell(d.message)} "
                f"({d.count} hit(s); {_cell(', '.join(d.hit_ids[:5]))})"
            )
            if d.deepdiff:
                block.append(
                    "\n  ```\n"
                    + "\n".join("  " + escape_text(x).replace("```", "'''") for x in d.deepdiff)
                    + "\n  ```"
                )
        if v.hint:
            block.append(f"\n{_cell(v.hint)}")
        block.append("\n</details>\n")
        text = "\n".join(block)
        if size + len(text.encode()) > budget:
            break
        details += text
        size += len(text.encode())
        detailed += 1
    out += details
    with_divergences = sum(1 for r in ordered[:rows] if r.verdict.divergences)
    cut_rows = len(ordered) - rows
    cut_details = with_divergences - detailed
    if cut_rows or cut_details:
        out += (
            f"\n_{cut_rows} result row(s) and {cut_details} detail block(s) cut to stay under "
            f"{max_bytes} bytes; see the JSON report._\n"
        )
    return out
