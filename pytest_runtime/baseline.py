"""Baselines: accepted divergences, so that a PR check fails only on new ones.

A divergence is identified by a fingerprint of what it is (test, probe location, kind, path
and what changed), never by hit ids, counts or shares, which change with every run of the
same traffic. Writing the same results twice gives the same file byte for byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pytest_runtime.compare import Divergence, ProbeResult
from pytest_runtime.compare.verdict import NO_TEST_STATES
from pytest_runtime.errors import RuntimeProbeError

__all__ = [
    "SCHEMA_ID",
    "Baseline",
    "BaselineError",
    "fingerprint",
    "load",
    "new_divergences",
    "write",
]

SCHEMA_ID = "pytest-runtime/baseline"
VERSION = 1


class BaselineError(RuntimeProbeError, ValueError):
    """A baseline file cannot be read: names the file and what is wrong."""


@dataclasses.dataclass(frozen=True, slots=True)
class Baseline:
    """The accepted divergences: fingerprint -> a readable description."""

    entries: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)

    def __contains__(self, item: object) -> bool:
        return item in self.entries

    def __len__(self) -> int:
        return len(self.entries)


def fingerprint(result: ProbeResult, divergence: Divergence) -> str:
    """A stable id of one divergence of one test's probe (independent of hits and counts)."""
    parts = [result.nodeid, result.location, divergence.kind, divergence.path, divergence.key]
    text = json.dumps(parts, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _pairs(results: Iterable[ProbeResult]) -> list[tuple[ProbeResult, Divergence]]:
    pairs = [(r, d) for r in results for d in r.verdict.divergences]
    return sorted(pairs, key=lambda p: (p[0].nodeid, p[0].location, p[1].kind, p[1].path, p[1].key))


def write(path: str | os.PathLike[str], results: Sequence[ProbeResult]) -> int:
    """Accept every current divergence: write them to ``path`` (atomically); return how many."""
    entries = []
    seen: set[str] = set()
    for result, d in _pairs(results):
        fp = fingerprint(result, d)
        if fp in seen:
            continue
        seen.add(fp)
        entries.append(
            {
                "fingerprint": fp,
                "nodeid": result.nodeid,
                "location": result.location,
                "kind": d.kind,
                "severity": d.severity,
                "path": d.path,
                "key": d.key,
                "message": d.message,
            }
        )
    doc = {"schema": SCHEMA_ID, "version": VERSION, "divergences": entries}
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return len(entries)


def load(path: str | os.PathLike[str]) -> Baseline:
    """Read a baseline file; a missing or malformed file is a :class:`BaselineError`."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BaselineError(f"baseline file {os.fspath(path)!r}: cannot read it ({exc})") from exc
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise BaselineError(f"baseline file {os.fspath(path)!r}: not JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA_ID:
        raise BaselineError(
            f"baseline file {os.fspath(path)!r}: got schema "
            f"{doc.get('schema') if isinstance(doc, dict) else type(doc).__name__!r}, "
            f"expected {SCHEMA_ID!r}"
        )
    if doc.get("version") != VERSION:
        raise BaselineError(
            f"baseline file {os.fspath(path)!r}: got version {doc.get('version')!r}, "
            f"expected {VERSION}"
        )
    items = doc.get("divergences")
    if not isinstance(items, list):
        raise BaselineError(f"baseline file {os.fspath(path)!r}: 'divergences' is not a list")
    entries: dict[str, Mapping[str, Any]] = {}
    for n, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("fingerprint"), str):
            raise BaselineError(
                f"baseline file {os.fspath(path)!r}: divergence {n} has no 'fingerprint' string"
            )
        entries[item["fingerprint"]] = item
    return Baseline(entries)


def new_divergences(
    results: Sequence[ProbeResult], baseline: Baseline
) -> list[tuple[ProbeResult, Divergence]]:
    """The divergences not accepted by ``baseline``, as (result, divergence), sorted."""
    return [(r, d) for r, d in _pairs(results) if not _accepted(r, d, baseline)]


def _accepted(result: ProbeResult, divergence: Divergence, baseline: Baseline) -> bool:
    if fingerprint(result, divergence) in baseline:
        return True
    legacy = _legacy_fingerprint(result, divergence)
    return legacy is not None and legacy in baseline


def _legacy_fingerprint(result: ProbeResult, divergence: Divergence) -> str | None:
    """The fingerprint an older release gave this divergence, when it differs.

    Up to 0.1.0.dev0 "the tests never reached this location" was reported with kind ``shape``;
    it is kind ``path`` now. A baseline written before still accepts it.
    """
    if divergence.kind == "path" and divergence.key == NO_TEST_STATES:
        return fingerprint(result, dataclasses.replace(divergence, kind="shape"))
    return None
