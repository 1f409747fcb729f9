"""``--runtime-report-json``: one entry per probe and test, described by a JSON Schema."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pytest_runtime.compare import ProbeResult
from pytest_runtime.reporting._common import counts_by_verdict

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
        "fails": v.fails,
        "strict": v.strict,
        "hits": {"production": v.counts.get("prod_hits", 0), "test": v.counts.get("test_hits", 0)},
        "state_coverage": v.state_coverage,
        "counts": dict(sorted(v.counts.items())),
        "noise": dict(sorted(v.noise.items())),
        "production": dict(sorted(v.production.items())),
        "confidence": dict(sorted(v.confidence.items())),
        "hint": v.hint,
        "divergences": [d.to_dict() for d in v.divergences],
    }


def build(results: Sequence[ProbeResult]) -> dict[str, Any]:
    """The report as a JSON-ready dict, entries sorted by node id and location."""
    from sensor._version import __version__

    ordered = sorted(results, key=lambda r: (r.nodeid, r.location, r.signature))
    return {
        "schema": SCHEMA_ID,
        "version": VERSION,
        "generator": f"pytest-runtime {__version__}",
        "summary": {"results": len(ordered), **counts_by_verdict(ordered)},
        "results": [_entry(r) for r in ordered],
    }


def dumps(results: Sequence[ProbeResult]) -> str:
    """The report text: stable key order and indentation, so two runs diff cleanly."""
    # default=str: a serializer hook may hand back a value JSON cannot hold; say it, do not fail.
    text = json.dumps(build(results), indent=2, sort_keys=True, ensure_ascii=False, default=str)
    return text + "\n"


def write(path: str | os.PathLike[str], results: Sequence[ProbeResult]) -> None:
    """Write the report atomically (a reader never sees half a file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(results)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
