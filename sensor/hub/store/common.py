"""Store logic SQLite and PostgreSQL run alike, over a :class:`Dialect` for what differs.

The statements here are written with ``?`` placeholders; a store's dialect runs them on the
connection of the transaction in progress (PostgreSQL's turns ``?`` into ``%s``) and answers
the questions whose SQL differs between the two databases.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from sensor.hub.store.base import (
    BatchOutcome,
    HitBatch,
    HitRow,
    ProbeRecord,
    RedactionRecord,
    SourceRecord,
    TokenRecord,
    VersionSummary,
)
from sensor.hub.store.rows import (
    PROBE_COLUMNS,
    PROBE_SELECT,
    SOURCE_COLUMNS,
    TOKEN_COLUMNS,
    attach_statuses,
    bad_hit_body,
    probe_from_row,
    readable,
    source_from_row,
    token_from_row,
    usable_tokens,
    version_summaries,
)

__all__ = [
    "Dialect",
    "SharedStore",
    "admit",
    "cap_of",
    "declined_because",
    "delete_expired",
    "ended_reason",
    "hits_query",
    "read_summary",
    "redaction_from_text",
    "served_hits",
    "with_statuses",
]

R = TypeVar("R")


class Dialect(Protocol):
    """One store's way of running the shared statements, inside its current transaction."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement written with ``?`` placeholders; return its cursor."""
        ...

    def insert_hit(self, row: Sequence[Any]) -> int:
        """Insert one ``hits`` row (probe_id, signature, source_id, hit_id, ts, received_at,
        body); return its ``seq``."""
        ...

    def stored_hit_ids(
        self, probe_id: str, source_id: str, batch: Sequence[Mapping[str, Any]]
    ) -> set[str]:
        """The hit ids of ``batch`` stored already for this probe and source."""
        ...

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """A condition that ``column`` is one of ``values`` (not empty), and its parameters."""
        ...


def with_statuses(db: Dialect, records: list[ProbeRecord]) -> list[ProbeRecord]:
    """``records`` with their sources' statuses attached (in source id order)."""
    if not records:
        return records
    condition, params = db.any_of("probe_id", list(dict.fromkeys(r.id for r in records)))
    rows = db.execute(
        f"SELECT probe_id, source_id, body FROM statuses WHERE {condition} ORDER BY source_id",
        params,
    ).fetchall()
    attach_statuses(records, rows)
    return records


def cap_of(max_hits: int | None, max_hits_per_probe: int | None) -> int | None:
    """The lower of the probe's own max hits and the hub's limit (None: no limit)."""
    if max_hits_per_probe is not None and (max_hits is None or max_hits > max_hits_per_probe):
        return max_hits_per_probe
    return max_hits


def declined_because(state: str) -> str:
    """The decline reason for hits of a probe that is no longer active."""
    return {"removed": "probe_removed", "expired": "probe_expired"}.get(state, "max_hits")


def admit(
    db: Dialect,
    source: SourceRecord,
    probe_id: str,
    state: str,
    room: int | None,
    batch: list[dict[str, Any]],
    outcome: BatchOutcome,
) -> list[dict[str, Any]]:
    """The hits of ``batch`` to write for a probe in ``state`` with ``room`` left (None: no cap).

    The others are declined in ``outcome``, except those stored already (a retried batch):
    those are accepted, never declined.
    """
    if not batch or (state == "active" and (room is None or room >= len(batch))):
        return batch
    stored_ids = db.stored_hit_ids(probe_id, source.id, batch)
    fresh = [hit for hit in batch if hit.get("hit_id") not in stored_ids]
    outcome.accepted += len(batch) - len(fresh)
    if state != "active":
        outcome.decline(probe_id, declined_because(state), len(fresh))
        return []
    assert room is not None
    outcome.decline(probe_id, "max_hits", len(fresh) - room)
    return fresh[:room]


def ended_reason(count: int, cap: int, max_hits: int | None) -> str:
    """Why a probe completed when its stored hits reached ``cap``."""
    which = "limits.max_hits" if cap == max_hits else "the hub's --max-hits-per-probe"
    return f"max_hits: {count} hits stored ({which} is {cap})"


def hits_query(
    *,
    probe_id: str | None,
    signature: str | None,
    since: float | None,
    until: float | None,
    source_id: str | None,
    after: int | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """The ``read_hits`` statement (``?`` placeholders) and its parameters."""
    where: list[str] = []
    args: list[Any] = []
    for column, op, value in (
        ("probe_id", "=", probe_id),
        ("signature", "=", signature),
        ("ts", ">=", since),
        ("ts", "<", until),
        ("source_id", "=", source_id),
        ("seq", ">", after),
    ):
        if value is not None:
            where.append(f"{column} {op} ?")
            args.append(value)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    args.append(limit)
    return f"SELECT seq, body FROM hits{clause} ORDER BY seq LIMIT ?", args


def served_hits(
    rows: Sequence[Sequence[Any]], quarantined: list[tuple[str, str]] | None
) -> list[HitRow]:
    """The (seq, body) rows whose body can be served; the others go to ``quarantined``."""
    hits = []
    for seq, body in rows:
        # the bodies are spliced into answers as they are: each must be a JSON object
        # (the hub writes them ASCII-only; anything else was not written by the hub)
        reason = bad_hit_body(body)
        if reason is None:
            hits.append(HitRow(seq, body))
        elif quarantined is not None:
            quarantined.append((str(seq), reason))
    return hits


def redaction_from_text(text: str) -> RedactionRecord:
    """The redaction rules stored in ``meta`` (key ``redaction``)."""
    data = json.loads(text)
    return RedactionRecord(
        names=list(data["names"]),
        patterns=list(data["patterns"]),
        allow=list(data["allow"]),
        updated_at=float(data["updated_at"]),
        updated_by=data.get("updated_by"),
    )


def delete_expired(db: Dialect, cutoff: float) -> int:
    """Delete what retention removes at ``cutoff``; return how many hits went.

    Hits received before the cutoff go, and so do sources not heard from since then (with
    their statuses), so that a fleet of short-lived replicas does not grow the database
    forever, and probes that ended before it and hold no hit any more (with their statuses).
    """
    # A standing probe's sample of a version still reporting stays whatever its age:
    # it is bounded, and its rare states are the point of keeping it.
    deleted = db.execute(
        "DELETE FROM hits WHERE received_at < ? AND seq NOT IN (SELECT r.seq FROM "
        "reservoir r JOIN (SELECT probe_id, version FROM strata GROUP BY probe_id, "
        "version HAVING MAX(last_seen) >= ?) live ON r.probe_id = live.probe_id AND "
        "r.version = live.version)",
        (cutoff, cutoff),
    ).rowcount
    db.execute(
        "DELETE FROM reservoir WHERE NOT EXISTS (SELECT 1 FROM hits WHERE hits.seq = reservoir.seq)"
    )
    db.execute(
        "DELETE FROM strata WHERE (probe_id, version) IN (SELECT probe_id, version FROM "
        "strata GROUP BY probe_id, version HAVING MAX(last_seen) < ?)",
        (cutoff,),
    )
    db.execute(
        "DELETE FROM statuses WHERE source_id IN (SELECT id FROM sources WHERE last_seen < ?)",
        (cutoff,),
    )
    db.execute("DELETE FROM sources WHERE last_seen < ?", (cutoff,))
    # probes that ended before the cutoff and hold no hit any more: without this, every
    # test run's placements would stay in the table forever
    db.execute(
        "DELETE FROM statuses WHERE probe_id IN (SELECT id FROM probes AS p WHERE "
        "p.state <> 'active' AND p.ended_at < ? AND NOT EXISTS "
        "(SELECT 1 FROM hits h WHERE h.probe_id = p.id))",
        (cutoff,),
    )
    db.execute(
        "DELETE FROM probes AS p WHERE p.state <> 'active' AND p.ended_at < ? AND "
        "NOT EXISTS (SELECT 1 FROM hits h WHERE h.probe_id = p.id)",
        (cutoff,),
    )
    return int(deleted)


def read_summary(db: Dialect, probe_id: str) -> list[VersionSummary]:
    """Per service version, newest first (then by name): hits seen and kept, strata, counters.

    Run it in one transaction: the totals and the counters are then of the same moment.
    """
    rows = db.execute(
        "SELECT version, SUM(seen), SUM(kept), COUNT(*), MIN(first_seen), MAX(last_seen) "
        "FROM strata WHERE probe_id = ? GROUP BY version ORDER BY MAX(last_seen) DESC, version",
        (probe_id,),
    ).fetchall()
    statuses = db.execute(
        "SELECT COALESCE(so.version, ''), st.body FROM statuses st JOIN sources so "
        "ON so.id = st.source_id WHERE st.probe_id = ?",
        (probe_id,),
    ).fetchall()
    return version_summaries(rows, statuses)


class SharedStore:
    """What both stores do alike: the reads they answer with the same statements, each in one
    ``_read`` call, and ``add_hits`` as a group of one batch.

    A store gives ``_read(what, fn)``: run ``fn`` with its :class:`Dialect` as it runs any
    read (SQLite under its lock; PostgreSQL in a transaction of this thread's connection,
    retried on a deadlock), its errors named with ``what``.
    """

    __slots__ = ()

    _SOURCE_COLUMNS = SOURCE_COLUMNS
    _PROBE_COLUMNS = PROBE_COLUMNS
    _PROBE_SELECT = PROBE_SELECT
    _source = staticmethod(source_from_row)
    _probe = staticmethod(probe_from_row)

    def _read(self, what: str, fn: Callable[[Dialect], R]) -> R:
        """Each store's own: how it runs a read."""
        raise NotImplementedError

    #: each store's own ingest (PostgreSQL's writes before the lock, COPY, group commit)
    add_hit_batches: Callable[..., list[BatchOutcome]]

    def add_hits(
        self,
        source: SourceRecord,
        hits: Sequence[dict[str, Any]],
        dropped: Mapping[str, int],
        now: float,
        max_hits_per_probe: int | None = None,
        number: int | None = None,
    ) -> BatchOutcome:
        """Store a batch in one transaction; say what was stored and what was declined.

        Only hits of a probe given to this source (its selector picks the source) and still
        active are stored, up to the probe's max hits; every other hit is declined with its
        reason (:data:`~sensor.hub.store.base.DECLINE_REASONS`). A hit already stored (same
        probe, source and hit id: a retried batch) counts as accepted and is not stored twice.
        Drop counts of probes not given to the source are ignored. The batch is also the
        source's sign of life (``last_seen``), in the same transaction: one commit per batch.
        """
        batch = HitBatch(source, hits, dropped, number)
        return self.add_hit_batches([batch], now, max_hits_per_probe)[0]

    def find_token(self, token_hash: str) -> TokenRecord | None:
        row = self._read(
            "find token",
            lambda db: db.execute(
                f"SELECT {TOKEN_COLUMNS} FROM tokens WHERE token_hash = ?", (token_hash,)
            ).fetchone(),
        )
        return token_from_row(row) if row else None

    def list_tokens(self) -> list[TokenRecord]:
        rows = self._read(
            "list tokens",
            lambda db: db.execute(
                f"SELECT {TOKEN_COLUMNS} FROM tokens ORDER BY created_at, id"
            ).fetchall(),
        )
        return usable_tokens(rows)

    def get_source(self, source_id: str) -> SourceRecord | None:
        row = self._read(
            "get source",
            lambda db: db.execute(
                f"SELECT {SOURCE_COLUMNS} FROM sources WHERE id = ?", (source_id,)
            ).fetchone(),
        )
        return source_from_row(row) if row else None

    def list_sources(
        self, *, quarantined: list[tuple[str, str]] | None = None
    ) -> list[SourceRecord]:
        rows = self._read(
            "list sources",
            lambda db: db.execute(
                f"SELECT {SOURCE_COLUMNS} FROM sources ORDER BY service, first_seen, id"
            ).fetchall(),
        )
        return readable(rows, source_from_row, quarantined)

    def active_probes(
        self, *, quarantined: list[tuple[str, str]] | None = None
    ) -> list[ProbeRecord]:
        rows = self._read(
            "list active probes",
            lambda db: db.execute(
                f"SELECT {PROBE_SELECT} FROM probes WHERE state = 'active' ORDER BY created_at, id"
            ).fetchall(),
        )
        return readable(rows, probe_from_row, quarantined)

    def get_probe(self, probe_id: str) -> ProbeRecord | None:
        def body(db: Dialect) -> ProbeRecord | None:
            row = db.execute(f"SELECT {PROBE_SELECT} FROM probes WHERE id = ?", (probe_id,))
            found = row.fetchone()
            return with_statuses(db, [probe_from_row(found)])[0] if found else None

        return self._read("get probe", body)

    def list_probes(
        self,
        *,
        signature: str | None = None,
        state: str | None = None,
        quarantined: list[tuple[str, str]] | None = None,
        standing: bool | None = None,
    ) -> list[ProbeRecord]:
        where: list[str] = []
        args: list[Any] = []
        for column, value in (("signature", signature), ("state", state), ("standing", standing)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        clause = (" WHERE " + " AND ".join(where)) if where else ""

        def body(db: Dialect) -> list[ProbeRecord]:
            rows = db.execute(
                f"SELECT {PROBE_SELECT} FROM probes{clause} ORDER BY created_at, id", args
            ).fetchall()
            return with_statuses(db, readable(rows, probe_from_row, quarantined))

        return self._read("list probes", body)

    def standing_summary(self, probe_id: str) -> list[VersionSummary]:
        # one transaction: the totals and the counters are of the same moment
        return self._read("read standing summary", lambda db: read_summary(db, probe_id))

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
        sql, args = hits_query(
            probe_id=probe_id, signature=signature, since=since, until=until,
            source_id=source_id, after=after, limit=limit,
        )  # fmt: skip
        rows = self._read("read hits", lambda db: db.execute(sql, args).fetchall())
        return served_hits(rows, quarantined)

    def find_hits(
        self,
        probe_id: str,
        hit_id: str,
        *,
        quarantined: list[tuple[str, str]] | None = None,
    ) -> list[HitRow]:
        # No ORDER BY: it would make SQLite walk hits_probe and read every row of the probe;
        # without it the (probe_id, source_id, hit_id) index finds the few rows (sorted here).
        rows = self._read(
            "find a hit",
            lambda db: db.execute(
                "SELECT seq, body FROM hits WHERE probe_id = ? AND hit_id = ?", (probe_id, hit_id)
            ).fetchall(),
        )
        return served_hits(sorted(rows), quarantined)

    def get_redaction(self) -> RedactionRecord | None:
        row = self._read(
            "read redaction rules",
            lambda db: db.execute("SELECT value FROM meta WHERE key = 'redaction'").fetchone(),
        )
        return None if row is None else redaction_from_text(row[0])
