"""``--runtime-report-json``: one entry per probe and test, described by a JSON Schema."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_runtime.compare import ProbeResult
from pytest_runtime.reporting._common import (
    accepted_by_baseline,
    counts_by_verdict,
    fails_run,
    probe_ids,
    reason,
    run_coverage,
)

__all__ = ["SCHEMA_ID", "VERSION", "build", "dumps", "write"]

SCHEMA_ID = "pytest-runtime/report"
VERSION = 1


def _entry(result: ProbeResult) -> dict[str, Any]:
    v = result.verdict
    return {
        "nodeid": result.nodeid,
        "test_file": result.test_file,
        "test_line": result.test_line,
        "location": result.location,
        "signature": result.signature,
        "verdict": v.verdict,
        "fails": fails_run(result),
        "accepted_by_baseline": accepted_by_baseline(result),
        "probe_ids": list(probe_ids(result)),
        "reason": reason(result),
        "strict": v.strict,
        "hits": {"production": v.counts.get("prod_hits", 0), "test": v.counts.get("test_hits", 0)},
        "state_coverage": v.state_coverage,
        "counts": dict(sorted(v.counts.items())),
        "noise": dict(sorted(v.noise.items())),
        "plumbing": dict(sorted(v.plumbing.items())),
        "production": dict(sorted(v.production.items())),
        "confidence": dict(sorted(v.confidence.items())),
        "hint": v.hint,
        "divergences": [d.to_dict() for d in v.divergences],
    }


def build(
    results: Sequence[ProbeResult],
    *,
    notes: Sequence[str] = (),
    replays: Sequence[Any] = (),
    gate: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The report as a JSON-ready dict, entries sorted by node id and location.

    ``notes`` are what the run says as a whole (the hub was lost, a pre-fork master never
    imported the application, a baseline accepted some verdicts), in the terminal's order.
    """
    from sensor._version import __version__

    ordered = sorted(results, key=lambda r: (r.nodeid, r.location, r.signature))
    summary = {"results": len(ordered), **counts_by_verdict(ordered)}
    summary["fails"] = sum(1 for r in ordered if fails_run(r))
    summary["accepted_by_baseline"] = sum(1 for r in ordered if accepted_by_baseline(r))
    coverage = run_coverage(ordered)
    if gate is not None:
        coverage["fail_under"] = dict(gate)
    return {
        "schema": SCHEMA_ID,
        "version": VERSION,
        "generator": f"pytest-runtime {__version__}",
        "summary": summary,
        "coverage": coverage,
        "notes": [str(note) for note in notes],
        "results": [_entry(r) for r in ordered],
        "replay": [r.to_dict() for r in sorted(replays, key=lambda r: (r.nodeid, r.location))],
    }


def dumps(
    results: Sequence[ProbeResult],
    *,
    notes: Sequence[str] = (),
    replays: Sequence[Any] = (),
    gate: Mapping[str, Any] | None = None,
) -> str:
    """The report text: stable key order and indentation, so two runs diff cleanly."""
    # default=str: a serializer hook may hand back a value JSON cannot hold; say it, do not fail.
    text = json.dumps(
        build(results, notes=notes, replays=replays, gate=gate),
        indent=2,
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return text + "\n"


def write(
    path: str | os.PathLike[str],
    results: Sequence[ProbeResult],
    *,
    notes: Sequence[str] = (),
    replays: Sequence[Any] = (),
    gate: Mapping[str, Any] | None = None,
) -> None:
    """Write the report atomically (a reader never sees half a file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(results, notes=notes, replays=replays, gate=gate)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
