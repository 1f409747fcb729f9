"""The hub's storage interface: records and the :class:`Store` protocol every backend implements.

The API layer talks only to this protocol, so a PostgreSQL store can be added beside
``sqlite.py`` without touching the handlers. Methods are synchronous and short; the hub calls
them from a worker thread, never on the event loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from sensor.errors import SensorError

__all__ = [
    "DECLINE_REASONS",
    "PROBE_STATES",
    "SOURCE_STATES",
    "BatchOutcome",
    "CorruptRecordError",
    "DuplicateError",
    "HitRow",
    "ProbeRecord",
    "RedactionRecord",
    "SourceRecord",
    "Store",
    "StoreError",
    "TokenRecord",
    "VersionSummary",
    "selector_matches",
]

#: States of a probe record on the hub (a sensor's per-probe states are in ``statuses``).
PROBE_STATES = ("active", "expired", "completed", "removed")
#: States of a source, derived from its last heartbeat or poll.
SOURCE_STATES = ("live", "stale", "gone")
#: Why the hub did not store a posted hit (the keys of ``declined_by_probe``).
DECLINE_REASONS = (
    "max_hits",  # the probe reached limits.max_hits or the hub's --max-hits-per-probe
    "probe_removed",  # a client removed the probe
    "probe_expired",  # the probe's ttl ended
    "unknown_probe",  # no probe with this id on this hub
    "not_given",  # the probe exists but its selector does not pick this source
)


class StoreError(SensorError):
    """The hub's store failed (the message names the operation)."""


class DuplicateError(StoreError):
    """A record with this id exists already."""


class CorruptRecordError(StoreError):
    """A stored record cannot be read back (written by hand or by an older hub): quarantined."""

    def __init__(self, record_id: str, reason: str) -> None:
        super().__init__(f"stored record {record_id!r} cannot be served: {reason}")
        self.record_id = record_id
        self.reason = reason


@dataclasses.dataclass(slots=True)
class TokenRecord:
    """A bearer token; only the sha256 of the secret is kept."""

    id: str
    name: str
    scope: str
    token_hash: str
    created_at: float
    #: sensor tokens: the services it may register as (None: any service)
    services: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope,
            "created_at": self.created_at,
            "services": None if self.services is None else list(self.services),
        }

    def allows_service(self, service: str) -> bool:
        return self.services is None or service in self.services


@dataclasses.dataclass(slots=True)
class SourceRecord:
    """One sensor as the hub knows it (what ``GET /v1/sources`` lists)."""

    id: str
    service: str
    version: str | None
    host: str | None
    pid: int | None
    python: str | None
    labels: dict[str, str]
    runtime_id: str | None
    sensor_version: str | None
    backend: str | None
    token_id: str | None
    first_seen: float
    last_seen: float
    dropped: int = 0
    deregistered: bool = False

    def state(self, now: float, stale_after: float, gone_after: float) -> str:
        """live, stale or gone, from the age of the last heartbeat (gone once deregistered)."""
        if self.deregistered:
            return "gone"
        age = now - self.last_seen
        if age <= stale_after:
            return "live"
        if age <= gone_after:
            return "stale"
        return "gone"

    def brief(self) -> dict[str, Any]:
        """The part copied into every hit's ``source`` field."""
        return {
            "id": self.id,
            "service": self.service,
            "version": self.version,
            "host": self.host,
            "pid": self.pid,
        }

    def to_dict(self, now: float, stale_after: float, gone_after: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "version": self.version,
            "host": self.host,
            "pid": self.pid,
            "python": self.python,
            "labels": dict(self.labels),
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "state": self.state(now, stale_after, gone_after),
            "backend": self.backend,
            "sensor_version": self.sensor_version,
            "runtime_id": self.runtime_id,
            "dropped": self.dropped,
            "token_id": self.token_id,
        }


@dataclasses.dataclass(slots=True)
class ProbeRecord:
    """A probe placed through the hub, with its selector, life and per-source statuses."""

    id: str
    signature: str
    probe: dict[str, Any]
    selector: dict[str, Any]
    state: str
    created_at: float
    expires_at: float | None
    hit_count: int = 0
    dropped: int = 0
    ended_at: float | None = None
    statuses: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    #: why the probe left the active state, e.g. "max_hits: 100 hits stored (limit 100)"
    ended_reason: str | None = None
    #: published from a test suite's markers: no TTL, no max hits, a stratified sample of its
    #: hits per service version instead of every hit (docs/how-to/standing-probes.md)
    standing: bool = False

    @property
    def max_hits(self) -> int | None:
        limits = self.probe.get("limits") or {}
        value = limits.get("max_hits")
        return value if isinstance(value, int) else None

    def matches(self, source: SourceRecord) -> bool:
        """True when the selector picks this source (an empty selector picks every source)."""
        return selector_matches(self.selector, source)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "signature": self.signature,
            "probe": self.probe,
            "selector": self.selector,
            "state": self.state,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "ended_at": self.ended_at,
            "ended_reason": self.ended_reason,
            "standing": self.standing,
            "hit_count": self.hit_count,
            "dropped": self.dropped,
            "statuses": self.statuses,
        }


def selector_matches(selector: Mapping[str, Any], source: SourceRecord) -> bool:
    """True when ``selector`` picks ``source`` (an empty selector picks every source)."""
    service = selector.get("service")
    if service is not None and service != source.service:
        return False
    source_id = selector.get("source_id")
    if source_id is not None and source_id != source.id:
        return False
    labels: Mapping[str, str] = selector.get("labels") or {}
    return all(source.labels.get(key) == value for key, value in labels.items())


@dataclasses.dataclass(slots=True)
class BatchOutcome:
    """What became of one posted batch: hits stored, hits declined (by probe and reason)."""

    accepted: int = 0
    completed: list[str] = dataclasses.field(default_factory=list)
    declined: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    #: the hits this batch stored, as stored (with the hub's signature and source): what the
    #: hub exports. A batch that was partly stored already (a sensor's retry) lists all of
    #: its hits, so an export is at least once; a batch stored whole before lists none.
    stored: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def decline(self, probe_id: str, reason: str, count: int) -> None:
        if count > 0:
            reasons = self.declined.setdefault(probe_id, {})
            reasons[reason] = reasons.get(reason, 0) + count

    @property
    def declined_total(self) -> int:
        return sum(sum(reasons.values()) for reasons in self.declined.values())


class HitBatch(NamedTuple):
    """One posted batch as a store takes it (the hub writes several in one transaction)."""

    source: SourceRecord
    hits: Sequence[dict[str, Any]]
    dropped: Mapping[str, int]
    #: the sensor's number for this batch (one per batch, the same on a retry); ``None`` from
    #: a sensor that does not number its batches (a retry is then known by its hit ids only)
    number: int | None = None


@dataclasses.dataclass(slots=True)
class HitRow:
    """One stored hit: its cursor (``seq``) and its JSON text (with ``source``)."""

    seq: int
    body: str


@dataclasses.dataclass(slots=True)
class VersionSummary:
    """What the hub holds of one standing probe for one service version.

    ``seen`` counts the hits the sensors sent (captured hits, before the hub's sampling);
    ``kept`` is the sample stored; ``strata`` the distinct kinds of state among ``seen``.
    The calls, evaluations, violations and exceptions are the sensors' counters, in the
    probe's per-source statuses.
    """

    version: str | None
    seen: int
    kept: int
    strata: int
    first_seen: float
    last_seen: float
    #: the sensors' counters (calls evaluated, violations, exception exits, ...) summed over
    #: the sources of this version the hub still knows (retention forgets silent sources)
    counters: dict[str, int] = dataclasses.field(default_factory=dict)
    sources: int = 0  #: sources of this version whose counters are summed

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "seen": self.seen,
            "kept": self.kept,
            "strata": self.strata,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "counters": dict(self.counters),
            "sources": self.sources,
        }


@dataclasses.dataclass(slots=True)
class RedactionRecord:
    """The hub's redaction rules for every sensor, and who set them when.

    ``names`` and ``patterns`` are added to each sensor's defaults; ``allow`` un-redacts names.
    """

    names: list[str]
    patterns: list[str]
    allow: list[str]
    updated_at: float
    updated_by: str | None = None

    def rules(self) -> dict[str, list[str]]:
        """The part sensors receive (``sensor.redaction.Redactor.update`` keywords)."""
        return {
            "names": list(self.names),
            "patterns": list(self.patterns),
            "allow": list(self.allow),
        }

    def to_dict(self) -> dict[str, Any]:
        return {**self.rules(), "updated_at": self.updated_at, "updated_by": self.updated_by}


class Store(Protocol):
    """What the hub needs from a storage backend.

    Every method is one short transaction. ``add_hits`` must have made the hits durable when
    it returns (the hub acknowledges a batch only after it), and it counts as the source's sign
    of life (``last_seen``).
    """

    #: how many store calls the hub may run at once, each on its own thread
    concurrency: int

    # tokens
    def add_token(self, token: TokenRecord) -> None: ...
    def find_token(self, token_hash: str) -> TokenRecord | None: ...
    def list_tokens(self) -> list[TokenRecord]: ...
    def remove_token(self, token_id: str) -> bool: ...

    # sources
    def register_source(self, source: SourceRecord) -> SourceRecord: ...
    def get_source(self, source_id: str) -> SourceRecord | None: ...
    def list_sources(
        self, *, quarantined: list[tuple[str, str]] | None = None
    ) -> list[SourceRecord]:
        """Every readable source; unreadable rows go to ``quarantined`` as (id, reason)."""
        ...

    def touch_source(self, source_id: str, now: float, dropped: int | None = None) -> None: ...
    def touch_sources(self, last_seen: Mapping[str, float]) -> None:
        """Several sources seen (by id, when), in one transaction; a later time already stored
        (a batch of hits) is kept. Undoes a deregistration, as a poll does."""
        ...

    def deregister_source(self, source_id: str, now: float) -> None: ...

    # probes
    def add_probe(self, record: ProbeRecord) -> None: ...
    def get_probe(self, probe_id: str) -> ProbeRecord | None: ...
    def list_probes(
        self,
        *,
        signature: str | None = None,
        state: str | None = None,
        quarantined: list[tuple[str, str]] | None = None,
        standing: bool | None = None,
    ) -> list[ProbeRecord]: ...
    def active_probes(
        self, *, quarantined: list[tuple[str, str]] | None = None
    ) -> list[ProbeRecord]:
        """Active probes that a sensor can be sent (each checked with Probe.from_dict)."""
        ...

    def end_probe(
        self, probe_id: str, state: str, now: float, reason: str | None = None
    ) -> ProbeRecord | None: ...
    def store_heartbeat(
        self,
        source: SourceRecord,
        statuses: Sequence[Mapping[str, Any]],
        dropped: int | None,
        now: float,
    ) -> None:
        """Last seen, drop total and the statuses of the probes given to ``source``: one
        transaction (statuses of other probes are ignored)."""
        ...

    def expire_probes(self, now: float) -> list[str]: ...

    # hits
    def add_hits(
        self,
        source: SourceRecord,
        hits: Sequence[dict[str, Any]],
        dropped: Mapping[str, int],
        now: float,
        max_hits_per_probe: int | None = None,
        number: int | None = None,
    ) -> BatchOutcome: ...
    def add_hit_batches(
        self,
        batches: Sequence[HitBatch],
        now: float,
        max_hits_per_probe: int | None = None,
    ) -> list[BatchOutcome]:
        """``add_hits`` for several batches in one transaction (the hub's group commit)."""
        ...

    def read_hits(
        self,
        *,
        probe_id: str | None = None,
        signature: str | None = None,
        since: float | None = None,
        until: float | None = None,
        source_id: str | None = None,
        after: int | None = None,
        limit: int = 100,
        quarantined: list[tuple[str, str]] | None = None,
    ) -> list[HitRow]:
        """Hits in ``seq`` order; a stored body that is not a JSON object is skipped and
        reported in ``quarantined`` as (seq, reason)."""
        ...

    def find_hits(
        self,
        probe_id: str,
        hit_id: str,
        *,
        quarantined: list[tuple[str, str]] | None = None,
    ) -> list[HitRow]:
        """The stored hits of ``probe_id`` whose ``hit_id`` is this one, in ``seq`` order.

        One, normally: a hit id is unique per source (``(probe_id, source_id, hit_id)`` is the
        dedup key), so two sources can share one and each of them is returned. Unreadable
        bodies are skipped and reported in ``quarantined`` as ``read_hits`` does.
        """
        ...

    # standing probes (issue 13): their sample of hits per service version
    def standing_summary(self, probe_id: str) -> list[VersionSummary]:
        """Per service version (newest first): hits seen and kept, strata, first/last seen."""
        ...

    # redaction rules (one set per hub; None until an admin sets them)
    def get_redaction(self) -> RedactionRecord | None: ...
    def set_redaction(self, record: RedactionRecord) -> None:
        """Replace the rules durably (the hub answers the admin only after this returns)."""
        ...

    # housekeeping
    def apply_retention(self, now: float, max_age: float | None) -> int:
        """Delete hits, silent sources and ended probes older than ``max_age``; return hits gone."""
        ...

    # several hub processes on one database
    def watch(self, on_change: Callable[[str], None]) -> None:
        """Call ``on_change(event)`` from a background thread for every change another hub
        process committed: ``probes`` (the active set changed), ``redaction``, ``token:<id>``
        (removed), ``resync`` (events may have been lost: reload everything). A store that
        one process owns alone (SQLite) has nothing to report and does nothing."""
        ...

    def close(self) -> None: ...
