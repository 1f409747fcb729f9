"""Evidence files (docs/reference/evidence-schema.md): JSON Lines of probes and hits.

Line 1 is a header record; then ``probe`` and ``hit`` records in any order. Hits are grouped
by their probe signature. Unknown record types are skipped (and reported, not raised); a
malformed line is an :class:`EvidenceFormatError` naming the file and the line number.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pytest_runtime.errors import EvidenceError, EvidenceFormatError

__all__ = ["SCHEMA", "VERSION", "Evidence", "read", "read_file", "write"]

SCHEMA = "pytest-runtime/evidence"
VERSION = 1


@dataclasses.dataclass
class Evidence:
    """Probes and hits grouped by probe signature, plus what was skipped while reading."""

    probes: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    hits: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    notes: list[str] = dataclasses.field(default_factory=list)  #: skipped records, per file

    def add_probe(self, probe: Mapping[str, Any]) -> None:
        signature = probe.get("signature")
        if isinstance(signature, str):
            self.probes.setdefault(signature, dict(probe))

    def add_hits(self, hits: Iterable[Mapping[str, Any]]) -> None:
        """Add hits, skipping any hit id already present for the signature (files may overlap)."""
        for hit in hits:
            bucket = self.hits.setdefault(str(hit["signature"]), [])
            hit_id = hit.get("hit_id")
            if hit_id and any(old.get("hit_id") == hit_id for old in bucket[-64:]):
                continue  # cheap check: overlapping exports repeat hits in the same order
            bucket.append(dict(hit))

    def merge(self, other: Evidence) -> None:
        for probe in other.probes.values():
            self.add_probe(probe)
        for hits in other.hits.values():
            self.add_hits(hits)
        self.notes.extend(other.notes)

    def hits_for(self, signature: str, *, since: float | None = None) -> list[dict[str, Any]]:
        hits = self.hits.get(signature, [])
        if since is None:
            return list(hits)
        return [hit for hit in hits if float(hit.get("ts", 0)) >= since]

    @property
    def hit_count(self) -> int:
        return sum(len(hits) for hits in self.hits.values())


def _expand(paths: Iterable[str | os.PathLike[str]]) -> Iterator[Path]:
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in (".jsonl", ".ndjson"))
            if not files:
                raise EvidenceError(f"evidence directory {path}: no *.jsonl file in it")
            yield from files
        elif path.exists():
            yield path
        else:
            raise EvidenceError(f"evidence path {path}: no such file or directory")


def read(paths: Iterable[str | os.PathLike[str]]) -> Evidence:
    """Read evidence files and directories (their ``*.jsonl`` files, sorted) into one."""
    evidence = Evidence()
    for path in _expand(paths):
        evidence.merge(read_file(path))
    return evidence


def read_file(path: str | os.PathLike[str]) -> Evidence:
    """Read one evidence file; raise EvidenceFormatError at the first malformed line."""
    name = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as stream:
            return parse_lines(stream, name)
    except UnicodeDecodeError as exc:
        raise EvidenceError(f"evidence file {name}: not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise EvidenceError(f"evidence file {name}: cannot be read ({exc.strerror})") from exc


def parse_lines(lines: Iterable[str], name: str = "<evidence>") -> Evidence:
    """Parse JSON Lines evidence; ``name`` is used in error messages."""
    from sensor.errors import ProbeSpecError
    from sensor.probes import Hit, Probe

    evidence = Evidence()
    header_seen = False
    skipped: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise EvidenceFormatError(name, number, f"not JSON ({exc.msg})") from exc
        if not isinstance(record, dict) or not isinstance(record.get("record"), str):
            raise EvidenceFormatError(name, number, 'expected an object with a "record" field')
        kind = record["record"]
        if not header_seen:
            if kind != "header":
                raise EvidenceFormatError(name, number, f"expected the header record, got {kind!r}")
            if record.get("schema") != SCHEMA:
                raise EvidenceFormatError(
                    name, number, f"schema {record.get('schema')!r}, expected {SCHEMA!r}"
                )
            if record.get("version") != VERSION:
                raise EvidenceFormatError(
                    name, number, f"version {record.get('version')!r}, expected {VERSION}"
                )
            header_seen = True
            continue
        try:
            if kind == "probe":
                data = record.get("probe")
                Probe.from_dict(data)  # type: ignore[arg-type]
                evidence.add_probe(data)  # type: ignore[arg-type]
            elif kind == "hit":
                data = record.get("hit")
                Hit.from_dict(data)  # type: ignore[arg-type]
                evidence.add_hits([data])  # type: ignore[list-item]
            else:
                skipped[kind] = skipped.get(kind, 0) + 1
        except (ProbeSpecError, TypeError) as exc:
            raise EvidenceFormatError(name, number, f"invalid {kind} record: {exc}") from exc
    if not header_seen:
        raise EvidenceFormatError(name, 1, "empty file, expected the header record")
    for kind, count in sorted(skipped.items()):
        evidence.notes.append(f"{name}: skipped {count} record(s) of unknown type {kind!r}")
    return evidence


def header(generator: str, created_at: float | None = None) -> dict[str, Any]:
    return {
        "record": "header",
        "schema": SCHEMA,
        "version": VERSION,
        "created_at": time.time() if created_at is None else created_at,
        "generator": generator,
    }


def write(
    path: str | os.PathLike[str], evidence: Evidence, *, generator: str = "pytest-runtime"
) -> int:
    """Write evidence (probes sorted by signature, then hits in time order); return hits written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    tmp = target.with_name(target.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as stream:
            stream.write(json.dumps(header(generator), sort_keys=True) + "\n")
            for signature in sorted(evidence.probes):
                record = {"record": "probe", "probe": evidence.probes[signature]}
                stream.write(json.dumps(record, sort_keys=True) + "\n")
            for signature in sorted(evidence.hits):
                hits = sorted(
                    evidence.hits[signature],
                    key=lambda h: (float(h.get("ts", 0)), str(h.get("hit_id", ""))),
                )
                for hit in hits:
                    stream.write(json.dumps({"record": "hit", "hit": hit}, sort_keys=True) + "\n")
                    written += 1
        os.replace(tmp, target)  # readers never see half a file
    except OSError as exc:
        raise EvidenceError(f"evidence file {target}: cannot be written ({exc.strerror})") from exc
    return written
