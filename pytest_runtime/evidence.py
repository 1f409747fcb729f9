"""Evidence files (docs/reference/evidence-schema.md): JSON Lines of probes, statuses and hits.

Line 1 is a header record; then ``probe``, ``status`` and ``hit`` records in any order. Hits
are grouped by their probe signature and de-duplicated by hit id across every file read and
the hub (overlapping exports, the tox layout, a recording read next to its sources). A
``status`` record (version 2) holds one probe's counters on one source, so that a replay
reports rates from the sensors' counters like a live run. Unknown record types are skipped
(and reported, not raised); a malformed line is an :class:`EvidenceFormatError` naming the
file and the line number.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pytest_runtime.errors import EvidenceError, EvidenceFormatError

__all__ = [
    "MAX_HITS_PER_SIGNATURE",
    "READABLE_VERSIONS",
    "SCHEMA",
    "VERSION",
    "Evidence",
    "read",
    "read_file",
    "write",
]

SCHEMA = "pytest-runtime/evidence"
#: Written by this version: 2 adds ``status`` records (the sensors' counters).
VERSION = 2
#: Read by this version: files of version 1 (no counters) still load.
READABLE_VERSIONS = (1, 2)
#: Hits kept per probe signature: a sample beyond it (violations and exceptions first, then
#: by a hash of the hit id, so the same hits are kept whatever the order of the files), and
#: every hit left out is counted. Rates come from the sensors' counters, not from this sample.
MAX_HITS_PER_SIGNATURE = 50_000
#: Digests of left-out hits remembered per signature, so that a hit read again is not counted
#: twice (8 bytes of hash each); past it, the count of left-out hits is an upper bound.
_DROPPED_KEYS_MAX = 500_000
_STATUS_FIELDS = frozenset(
    {
        "signature",
        "probe_id",
        "source_id",
        "state",
        "reason",
        "counters",
        "placed_at",
        "reported_at",
    }
)


def _hit_key(hit: Mapping[str, Any]) -> str:
    """What identifies a hit: its id, or (no id: a hand-written file) a digest of its content."""
    hit_id = hit.get("hit_id")
    if isinstance(hit_id, str) and hit_id:
        return hit_id
    text = json.dumps(hit, sort_keys=True, separators=(",", ":"), default=str)
    return "sha1:" + hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


def _rank(hit: Mapping[str, Any], key: str) -> tuple[int, int]:
    """The order in which hits are kept under the cap: rare evidence first, then pseudo-random."""
    result = hit.get("expect")
    violating = isinstance(result, Mapping) and result.get("ok") is not True
    rare = violating or bool(hit.get("exception"))
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return (0 if rare else 1, int.from_bytes(digest, "big"))


def _status_key(record: Mapping[str, Any]) -> tuple[str, str]:
    return str(record["probe_id"]), str(record["source_id"])


def _newer(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """True when status record ``a`` was read after ``b`` (the later report has more counts)."""
    from pytest_runtime.compare.counters import firings

    def order(r: Mapping[str, Any]) -> tuple[float, int]:
        reported = r.get("reported_at")
        counters = r.get("counters")
        counted = firings(counters) if isinstance(counters, Mapping) else 0
        return (float(reported) if isinstance(reported, int | float) else 0.0, counted)

    return order(a) > order(b)


@dataclasses.dataclass
class Evidence:
    """Probes, statuses and hits grouped by probe signature, plus what was skipped reading."""

    probes: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    hits: dict[str, list[dict[str, Any]]] = dataclasses.field(default_factory=dict)
    #: signature -> (probe id, source id) -> status record (the latest read)
    statuses: dict[str, dict[tuple[str, str], dict[str, Any]]] = dataclasses.field(
        default_factory=dict
    )
    notes: list[str] = dataclasses.field(default_factory=list)  #: skipped records, per file
    #: signature -> hits left out by the cap (MAX_HITS_PER_SIGNATURE)
    capped: dict[str, int] = dataclasses.field(default_factory=dict)
    duplicates: int = 0  #: hits read twice (overlapping files), kept once
    version: int = VERSION  #: the schema version of the file read (1: no status records)
    max_hits: int = MAX_HITS_PER_SIGNATURE
    #: signatures whose ``capped`` count may include hits read twice (too many to remember)
    capped_upper_bound: set[str] = dataclasses.field(default_factory=set)
    _keys: dict[str, set[str]] = dataclasses.field(default_factory=dict, repr=False)
    _dropped: dict[str, set[int]] = dataclasses.field(default_factory=dict, repr=False)
    _floor: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict, repr=False)

    def add_probe(self, probe: Mapping[str, Any]) -> None:
        signature = probe.get("signature")
        if isinstance(signature, str):
            self.probes.setdefault(signature, dict(probe))

    def add_status(self, record: Mapping[str, Any]) -> None:
        """Keep the latest status of each (probe, source) of a signature."""
        bucket = self.statuses.setdefault(str(record["signature"]), {})
        key = _status_key(record)
        old = bucket.get(key)
        if old is None or _newer(record, old):
            bucket[key] = dict(record)

    def add_hits(self, hits: Iterable[Mapping[str, Any]]) -> None:
        """Add hits, skipping any hit already read for its signature (files may overlap).

        Memory stays bounded: past ``max_hits`` per signature, the hits with the lowest rank
        (:func:`_rank`) are kept, the rest counted in ``capped``.
        """
        for hit in hits:
            signature = str(hit["signature"])
            keys = self._keys.setdefault(signature, set())
            key = _hit_key(hit)
            if key in keys:
                self.duplicates += 1
                continue
            floor = self._floor.get(signature)
            if floor is not None and (rank := _rank(hit, key)) >= floor:
                self._left_out(signature, rank[1])
                continue
            keys.add(key)
            bucket = self.hits.setdefault(signature, [])
            bucket.append(dict(hit))
            if len(bucket) >= self.max_hits + max(1, self.max_hits // 4):
                self._trim(signature)

    def _trim(self, signature: str) -> None:
        """Keep the ``max_hits`` best-ranked hits of a signature (amortized: a sort per quarter)."""
        bucket = self.hits.get(signature, [])
        if len(bucket) <= self.max_hits:
            return
        ranked = sorted(((_rank(h, k := _hit_key(h)), k, h) for h in bucket), key=lambda r: r[:2])
        keep, drop = ranked[: self.max_hits], ranked[self.max_hits :]
        self.hits[signature] = [h for _, _, h in keep]
        keys = self._keys[signature]
        for rank, key, _ in drop:
            keys.discard(key)
            self._left_out(signature, rank[1])
        self._floor[signature] = keep[-1][0] if keep else (0, 0)

    def _left_out(self, signature: str, digest: int) -> None:
        dropped = self._dropped.setdefault(signature, set())
        if digest in dropped:
            self.duplicates += 1
            return
        if len(dropped) < _DROPPED_KEYS_MAX:
            dropped.add(digest)
        else:
            self.capped_upper_bound.add(signature)
        self.capped[signature] = self.capped.get(signature, 0) + 1

    def merge(self, other: Evidence) -> None:
        for probe in other.probes.values():
            self.add_probe(probe)
        for records in other.statuses.values():
            for record in records.values():
                self.add_status(record)
        for signature in list(other.hits):
            other._trim(signature)
            self.add_hits(other.hits[signature])
        for signature, dropped in other._dropped.items():
            for digest in sorted(dropped):
                self._left_out(signature, digest)
        self.capped_upper_bound |= other.capped_upper_bound
        self.duplicates += other.duplicates
        self.notes.extend(other.notes)

    def hits_for(self, signature: str, *, since: float | None = None) -> list[dict[str, Any]]:
        self._trim(signature)
        hits = self.hits.get(signature, [])
        if since is None:
            return list(hits)
        return [hit for hit in hits if float(hit.get("ts", 0)) >= since]

    def keep_hits(
        self, signature: str, keep: Callable[[Mapping[str, Any]], bool]
    ) -> list[dict[str, Any]]:
        """Keep only the hits of ``signature`` that ``keep`` accepts (one service version);
        return them. The others are forgotten, as if never read."""
        self._trim(signature)
        kept = [hit for hit in self.hits.get(signature, []) if keep(hit)]
        if signature in self.hits:
            self.hits[signature] = kept
            self._keys[signature] = {_hit_key(hit) for hit in kept}
        return list(kept)

    def statuses_for(self, signature: str) -> list[dict[str, Any]]:
        """The status records of a signature, sorted by probe id and source id."""
        return [r for _, r in sorted(self.statuses.get(signature, {}).items())]

    @property
    def hit_count(self) -> int:
        for signature in list(self.hits):
            self._trim(signature)
        return sum(len(hits) for hits in self.hits.values())

    def cap_notes(self) -> list[str]:
        """One note per signature whose hits were capped (empty when none were)."""
        return [
            f"evidence for signature {signature}: kept {self.max_hits:,} hits, left out "
            f"{'at most ' if signature in self.capped_upper_bound else ''}{count:,} more "
            "(memory bound; violations and exceptions kept first; rates come from the "
            "sensors' counters)"
            for signature, count in sorted(self.capped.items())
            if count
        ]


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
            evidence = parse_lines(stream, name)
        if evidence.version < 2 and evidence.hits:
            evidence.notes.append(
                f"{name}: evidence version {evidence.version} has no sensor counters: its "
                "rates are over captured hits, and its counts are lower bounds"
            )
        return evidence
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
    version = VERSION
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
            found = record.get("version")
            if found not in READABLE_VERSIONS or isinstance(found, bool):
                raise EvidenceFormatError(
                    name,
                    number,
                    f"version {found!r}, expected one of "
                    f"{', '.join(str(v) for v in READABLE_VERSIONS)}",
                )
            version = int(found)
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
            elif kind == "status" and version >= 2:
                evidence.add_status(_status(record.get("status")))
            else:
                skipped[kind] = skipped.get(kind, 0) + 1
        except (ProbeSpecError, TypeError) as exc:
            raise EvidenceFormatError(name, number, f"invalid {kind} record: {exc}") from exc
    if not header_seen:
        raise EvidenceFormatError(name, 1, "empty file, expected the header record")
    evidence.version = version
    for kind, count in sorted(skipped.items()):
        evidence.notes.append(f"{name}: skipped {count} record(s) of unknown type {kind!r}")
    return evidence


def _status(data: object) -> dict[str, Any]:
    """A ``status`` record's body, checked (TypeError names the field and what was expected)."""
    if not isinstance(data, Mapping):
        raise TypeError(f"status: got {data!r:.60}, expected a JSON object")
    unknown = sorted(set(data) - _STATUS_FIELDS)
    if unknown:
        raise TypeError(f"status: unknown field(s) {unknown}, expected {sorted(_STATUS_FIELDS)}")
    for name in ("signature", "probe_id", "source_id", "state"):
        if not isinstance(data.get(name), str) or not data[name]:
            raise TypeError(f"status.{name}: got {data.get(name)!r}, expected a non-empty string")
    if data.get("reason") is not None and not isinstance(data["reason"], str):
        raise TypeError(f"status.reason: got {data['reason']!r}, expected a string or null")
    counters = data.get("counters")
    if not isinstance(counters, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and v >= 0
        for k, v in counters.items()
    ):
        raise TypeError(f"status.counters: got {counters!r:.80}, expected names -> counts >= 0")
    for name in ("placed_at", "reported_at"):
        value = data.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise TypeError(f"status.{name}: got {value!r}, expected epoch seconds or null")
    return dict(data)


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
    """Write evidence (probes and statuses sorted, then hits in time order); return hits written."""
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
            for signature in sorted(evidence.statuses):
                for status in evidence.statuses_for(signature):
                    line = {"record": "status", "status": status}
                    stream.write(json.dumps(line, sort_keys=True) + "\n")
            for signature in sorted(evidence.hits):
                hits = sorted(
                    evidence.hits_for(signature),
                    key=lambda h: (float(h.get("ts", 0)), str(h.get("hit_id", ""))),
                )
                for hit in hits:
                    stream.write(json.dumps({"record": "hit", "hit": hit}, sort_keys=True) + "\n")
                    written += 1
        os.replace(tmp, target)  # readers never see half a file
    except OSError as exc:
        raise EvidenceError(f"evidence file {target}: cannot be written ({exc.strerror})") from exc
    return written
