"""The default store: one SQLite file in WAL mode, no setup.

One connection, guarded by a lock, used from the hub's single store thread. Hits of one batch
go in with ``executemany`` inside one transaction, so a batch costs one commit (one fsync with
``synchronous=FULL``), and the batch is durable before :meth:`SQLiteStore.add_hits` returns.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sensor.hub.store.base import (
    DuplicateError,
    HitRow,
    ProbeRecord,
    RedactionRecord,
    SourceRecord,
    StoreError,
    TokenRecord,
)

__all__ = ["SQLiteStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, scope TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY, service TEXT NOT NULL, version TEXT, host TEXT, pid INTEGER,
    python TEXT, labels TEXT NOT NULL, runtime_id TEXT, sensor_version TEXT, backend TEXT,
    token_id TEXT, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    dropped INTEGER NOT NULL DEFAULT 0, deregistered INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS sources_runtime ON sources (runtime_id);
CREATE TABLE IF NOT EXISTS probes (
    id TEXT PRIMARY KEY, signature TEXT NOT NULL, probe TEXT NOT NULL, selector TEXT NOT NULL,
    state TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL, ended_at REAL,
    max_hits INTEGER, hit_count INTEGER NOT NULL DEFAULT 0, dropped INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS probes_signature ON probes (signature);
CREATE INDEX IF NOT EXISTS probes_state ON probes (state);
CREATE TABLE IF NOT EXISTS statuses (
    probe_id TEXT NOT NULL, source_id TEXT NOT NULL, body TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (probe_id, source_id)
);
CREATE TABLE IF NOT EXISTS hits (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, probe_id TEXT NOT NULL, signature TEXT NOT NULL,
    source_id TEXT NOT NULL, hit_id TEXT, ts REAL NOT NULL, received_at REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS hits_probe ON hits (probe_id, seq);
CREATE INDEX IF NOT EXISTS hits_signature ON hits (signature, seq);
CREATE INDEX IF NOT EXISTS hits_received ON hits (received_at);
-- a sensor retrying a batch after a lost answer must not store its hits twice
CREATE UNIQUE INDEX IF NOT EXISTS hits_unique ON hits (probe_id, source_id, hit_id);
"""

_SCHEMA_VERSION = "1"
_ENCODER = json.JSONEncoder(separators=(",", ":"))  # one encoder: json.dumps re-creates it
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


class SQLiteStore:
    """:class:`~sensor.hub.store.base.Store` on one SQLite file (``:memory:`` for tests)."""

    def __init__(self, path: str | Path, *, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in _SYNCHRONOUS:
            raise StoreError(
                f"sqlite synchronous mode {synchronous!r}: "
                f"expected one of {', '.join(_SYNCHRONOUS)}"
            )
        self.path = str(path)
        self._synchronous = synchronous.upper()
        self._relax_soft = self._synchronous in ("FULL", "EXTRA")
        self._lock = threading.Lock()
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE), so that a
            # batch is one transaction and readers never see half of it.
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={self._synchronous}")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(_SCHEMA)
            self._db.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ?)", (_SCHEMA_VERSION,)
            )
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the hub database {self.path!r}: {exc}") from exc

    # -- helpers -------------------------------------------------------------------------

    def _run(self, what: str, fn: Any, *args: Any) -> Any:
        with self._lock:
            try:
                return fn(*args)
            except sqlite3.IntegrityError as exc:
                raise DuplicateError(f"{what}: {exc}") from exc
            except sqlite3.Error as exc:
                raise StoreError(f"hub database {self.path!r}, {what}: {exc}") from exc

    def _transaction(self, what: str, fn: Any, *args: Any, soft: bool = False) -> Any:
        """Run ``fn`` in one transaction. ``soft``: state a sensor re-sends anyway.

        Soft state (last seen, statuses, registrations) commits with ``synchronous=NORMAL``:
        in WAL mode that survives a crash of the hub and skips the fsync, which matters when
        hundreds of sensors report at once. Hits, probes and tokens keep the configured mode.
        """
        relax = soft and self._relax_soft

        def body() -> Any:
            if relax:
                self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    result = fn(*args)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            finally:
                if relax:
                    self._db.execute(f"PRAGMA synchronous={self._synchronous}")
            return result

        return self._run(what, body)

    # -- tokens --------------------------------------------------------------------------

    def add_token(self, token: TokenRecord) -> None:
        self._run(
            "add token",
            self._db.execute,
            "INSERT INTO tokens (id, name, scope, token_hash, created_at) VALUES (?, ?, ?, ?, ?)",
            (token.id, token.name, token.scope, token.token_hash, token.created_at),
        )

    def find_token(self, token_hash: str) -> TokenRecord | None:
        row = self._run(
            "find token",
            lambda: self._db.execute(
                "SELECT id, name, scope, token_hash, created_at FROM tokens WHERE token_hash = ?",
                (token_hash,),
            ).fetchone(),
        )
        return TokenRecord(*row) if row else None

    def list_tokens(self) -> list[TokenRecord]:
        rows = self._run(
            "list tokens",
            lambda: self._db.execute(
                "SELECT id, name, scope, token_hash, created_at FROM tokens ORDER BY created_at, id"
            ).fetchall(),
        )
        return [TokenRecord(*row) for row in rows]

    def remove_token(self, token_id: str) -> bool:
        cursor = self._run(
            "remove token", self._db.execute, "DELETE FROM tokens WHERE id = ?", (token_id,)
        )
        return bool(cursor.rowcount)

    # -- sources -------------------------------------------------------------------------

    _SOURCE_COLUMNS = (
        "id, service, version, host, pid, python, labels, runtime_id, sensor_version, backend, "
        "token_id, first_seen, last_seen, dropped, deregistered"
    )

    @staticmethod
    def _source(row: Sequence[Any]) -> SourceRecord:
        values = list(row)
        values[6] = json.loads(values[6])
        values[14] = bool(values[14])
        return SourceRecord(*values)

    def register_source(self, source: SourceRecord) -> SourceRecord:
        """Insert a source; a known ``runtime_id`` (the same process again) keeps its id."""

        def body() -> SourceRecord:
            if source.runtime_id:
                row = self._db.execute(
                    f"SELECT {self._SOURCE_COLUMNS} FROM sources WHERE runtime_id = ? "
                    "AND token_id IS ? ORDER BY first_seen LIMIT 1",
                    (source.runtime_id, source.token_id),
                ).fetchone()
                if row is not None:
                    known = self._source(row)
                    source.id = known.id
                    source.first_seen = known.first_seen
                    source.dropped = known.dropped
            self._db.execute(
                f"INSERT OR REPLACE INTO sources ({self._SOURCE_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
                (
                    source.id,
                    source.service,
                    source.version,
                    source.host,
                    source.pid,
                    source.python,
                    json.dumps(source.labels, sort_keys=True),
                    source.runtime_id,
                    source.sensor_version,
                    source.backend,
                    source.token_id,
                    source.first_seen,
                    source.last_seen,
                    source.dropped,
                ),
            )
            source.deregistered = False
            return source

        result: SourceRecord = self._transaction("register source", body, soft=True)
        return result

    def get_source(self, source_id: str) -> SourceRecord | None:
        row = self._run(
            "get source",
            lambda: self._db.execute(
                f"SELECT {self._SOURCE_COLUMNS} FROM sources WHERE id = ?", (source_id,)
            ).fetchone(),
        )
        return self._source(row) if row else None

    def list_sources(self) -> list[SourceRecord]:
        rows = self._run(
            "list sources",
            lambda: self._db.execute(
                f"SELECT {self._SOURCE_COLUMNS} FROM sources ORDER BY service, first_seen, id"
            ).fetchall(),
        )
        return [self._source(row) for row in rows]

    def touch_source(self, source_id: str, now: float, dropped: int | None = None) -> None:
        if dropped is None:
            self._transaction(
                "touch source",
                self._db.execute,
                "UPDATE sources SET last_seen = ?, deregistered = 0 WHERE id = ?",
                (now, source_id),
                soft=True,
            )
        else:
            self._transaction(
                "touch source",
                self._db.execute,
                "UPDATE sources SET last_seen = ?, dropped = ?, deregistered = 0 WHERE id = ?",
                (now, dropped, source_id),
                soft=True,
            )

    def deregister_source(self, source_id: str, now: float) -> None:
        self._transaction(
            "deregister source",
            self._db.execute,
            "UPDATE sources SET last_seen = ?, deregistered = 1 WHERE id = ?",
            (now, source_id),
            soft=True,
        )

    # -- probes --------------------------------------------------------------------------

    _PROBE_COLUMNS = (
        "id, signature, probe, selector, state, created_at, expires_at, hit_count, dropped, "
        "ended_at"
    )

    @staticmethod
    def _probe(row: Sequence[Any]) -> ProbeRecord:
        values = list(row)
        values[2] = json.loads(values[2])
        values[3] = json.loads(values[3])
        return ProbeRecord(*values)

    def _with_statuses(self, records: list[ProbeRecord]) -> list[ProbeRecord]:
        if not records:
            return records
        by_id = {record.id: record for record in records}
        marks = ",".join("?" * len(by_id))
        rows = self._db.execute(
            f"SELECT probe_id, source_id, body FROM statuses WHERE probe_id IN ({marks}) "
            "ORDER BY source_id",
            list(by_id),
        ).fetchall()
        for probe_id, source_id, body in rows:
            by_id[probe_id].statuses[source_id] = json.loads(body)
        return records

    def add_probe(self, record: ProbeRecord) -> None:
        self._run(
            f"add probe {record.id!r}",
            self._db.execute,
            f"INSERT INTO probes ({self._PROBE_COLUMNS}, max_hits) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.id,
                record.signature,
                json.dumps(record.probe, sort_keys=True),
                json.dumps(record.selector, sort_keys=True),
                record.state,
                record.created_at,
                record.expires_at,
                record.hit_count,
                record.dropped,
                record.ended_at,
                record.max_hits,
            ),
        )

    def get_probe(self, probe_id: str) -> ProbeRecord | None:
        def body() -> ProbeRecord | None:
            row = self._db.execute(
                f"SELECT {self._PROBE_COLUMNS} FROM probes WHERE id = ?", (probe_id,)
            ).fetchone()
            return self._with_statuses([self._probe(row)])[0] if row else None

        result: ProbeRecord | None = self._run("get probe", body)
        return result

    def list_probes(
        self, *, signature: str | None = None, state: str | None = None
    ) -> list[ProbeRecord]:
        where, args = [], []
        if signature is not None:
            where.append("signature = ?")
            args.append(signature)
        if state is not None:
            where.append("state = ?")
            args.append(state)
        clause = (" WHERE " + " AND ".join(where)) if where else ""

        def body() -> list[ProbeRecord]:
            rows = self._db.execute(
                f"SELECT {self._PROBE_COLUMNS} FROM probes{clause} ORDER BY created_at, id", args
            ).fetchall()
            return self._with_statuses([self._probe(row) for row in rows])

        result: list[ProbeRecord] = self._run("list probes", body)
        return result

    def active_probes(self) -> list[ProbeRecord]:
        rows = self._run(
            "list active probes",
            lambda: self._db.execute(
                f"SELECT {self._PROBE_COLUMNS} FROM probes WHERE state = 'active' "
                "ORDER BY created_at, id"
            ).fetchall(),
        )
        return [self._probe(row) for row in rows]

    def end_probe(self, probe_id: str, state: str, now: float) -> ProbeRecord | None:
        def body() -> ProbeRecord | None:
            self._db.execute(
                "UPDATE probes SET state = ?, ended_at = ? WHERE id = ? AND state = 'active'",
                (state, now, probe_id),
            )
            row = self._db.execute(
                f"SELECT {self._PROBE_COLUMNS} FROM probes WHERE id = ?", (probe_id,)
            ).fetchone()
            return self._with_statuses([self._probe(row)])[0] if row else None

        result: ProbeRecord | None = self._transaction("end probe", body)
        return result

    def set_statuses(
        self, source_id: str, statuses: Sequence[Mapping[str, Any]], now: float
    ) -> None:
        def body() -> None:
            known = {
                row[0]
                for row in self._db.execute(
                    f"SELECT id FROM probes WHERE id IN ({','.join('?' * len(statuses))})",
                    [status["probe_id"] for status in statuses],
                )
            }
            self._db.executemany(
                "INSERT OR REPLACE INTO statuses (probe_id, source_id, body, updated_at) "
                "VALUES (?, ?, ?, ?)",
                [
                    (status["probe_id"], source_id, json.dumps(status, sort_keys=True), now)
                    for status in statuses
                    if status["probe_id"] in known
                ],
            )

        if statuses:
            self._transaction("store probe statuses", body, soft=True)

    def expire_probes(self, now: float) -> list[str]:
        def body() -> list[str]:
            ids = [
                row[0]
                for row in self._db.execute(
                    "SELECT id FROM probes WHERE state = 'active' AND expires_at IS NOT NULL "
                    "AND expires_at <= ?",
                    (now,),
                )
            ]
            self._db.executemany(
                "UPDATE probes SET state = 'expired', ended_at = ? WHERE id = ?",
                [(now, probe_id) for probe_id in ids],
            )
            return ids

        result: list[str] = self._transaction("expire probes", body)
        return result

    # -- hits ----------------------------------------------------------------------------

    def add_hits(
        self,
        source: SourceRecord,
        hits: Sequence[dict[str, Any]],
        dropped: Mapping[str, int],
        now: float,
        max_hits_per_probe: int | None = None,
    ) -> tuple[int, list[str]]:
        """Store a batch in one transaction; return (accepted, ids of probes now completed).

        A hit of an unknown probe, or beyond its probe's max hits, is not stored and not
        counted as accepted. A hit already stored (same probe, source and hit id: a retried
        batch) counts as accepted and is not stored twice. The batch is also the source's sign
        of life (``last_seen``), in the same transaction: one commit, one fsync per batch.
        """
        return self.add_hit_batches([(source, hits, dropped)], now, max_hits_per_probe)[0]

    def add_hit_batches(
        self,
        batches: Sequence[tuple[SourceRecord, Sequence[dict[str, Any]], Mapping[str, int]]],
        now: float,
        max_hits_per_probe: int | None = None,
    ) -> list[tuple[int, list[str]]]:
        """Store several batches (of several sources) in one transaction: a group commit."""

        def body() -> list[tuple[int, list[str]]]:
            return [
                self._store_batch(source, hits, dropped, now, max_hits_per_probe)
                for source, hits, dropped in batches
            ]

        result: list[tuple[int, list[str]]] = self._transaction("store hits", body)
        return result

    def _store_batch(
        self,
        source: SourceRecord,
        hits: Sequence[dict[str, Any]],
        dropped: Mapping[str, int],
        now: float,
        max_hits_per_probe: int | None,
    ) -> tuple[int, list[str]]:
        by_probe: dict[str, list[dict[str, Any]]] = {}
        for hit in hits:
            by_probe.setdefault(hit["probe_id"], []).append(hit)
        probe_ids = sorted(set(by_probe) | set(dropped))
        brief = source.brief()
        accepted = 0
        completed: list[str] = []
        self._db.execute(
            "UPDATE sources SET last_seen = ?, deregistered = 0 WHERE id = ?", (now, source.id)
        )
        if not probe_ids:
            return accepted, completed
        marks = ",".join("?" * len(probe_ids))
        rows = self._db.execute(
            f"SELECT id, signature, state, max_hits, hit_count FROM probes WHERE id IN ({marks})",
            probe_ids,
        ).fetchall()
        for probe_id, signature, state, max_hits, hit_count in rows:
            cap = max_hits
            if max_hits_per_probe is not None and (cap is None or cap > max_hits_per_probe):
                cap = max_hits_per_probe
            batch = by_probe.get(probe_id, [])
            if cap is not None:
                batch = batch[: max(0, cap - hit_count)]
            values = []
            for hit in batch:
                hit["signature"] = signature  # the hub's record is the truth
                hit["source"] = brief
                values.append(
                    (
                        probe_id,
                        signature,
                        source.id,
                        hit.get("hit_id") or None,
                        hit["ts"],
                        now,
                        _ENCODER.encode(hit),
                    )
                )
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO hits (probe_id, signature, source_id, hit_id, ts, "
                "received_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            inserted = self._db.total_changes - before
            accepted += len(values)
            new_count = hit_count + inserted
            finished = cap is not None and new_count >= cap and state == "active" and inserted > 0
            self._db.execute(
                "UPDATE probes SET hit_count = ?, dropped = dropped + ?, "
                "state = CASE WHEN ? THEN 'completed' ELSE state END, "
                "ended_at = CASE WHEN ? THEN ? ELSE ended_at END WHERE id = ?",
                (new_count, int(dropped.get(probe_id, 0)), finished, finished, now, probe_id),
            )
            if finished:
                completed.append(probe_id)
        return accepted, completed

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
    ) -> list[HitRow]:
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
        rows = self._run(
            "read hits",
            lambda: self._db.execute(
                f"SELECT seq, body FROM hits{clause} ORDER BY seq LIMIT ?", args
            ).fetchall(),
        )
        return [HitRow(seq, body) for seq, body in rows]

    # -- redaction rules -----------------------------------------------------------------

    def get_redaction(self) -> RedactionRecord | None:
        row = self._run(
            "read redaction rules",
            lambda: self._db.execute("SELECT value FROM meta WHERE key = 'redaction'").fetchone(),
        )
        if row is None:
            return None
        data = json.loads(row[0])
        return RedactionRecord(
            names=list(data["names"]),
            patterns=list(data["patterns"]),
            allow=list(data["allow"]),
            updated_at=float(data["updated_at"]),
            updated_by=data.get("updated_by"),
        )

    def set_redaction(self, record: RedactionRecord) -> None:
        # one row in meta: no schema change, so an existing hub file needs no migration
        self._transaction(
            "store redaction rules",
            self._db.execute,
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('redaction', ?)",
            (json.dumps(record.to_dict(), sort_keys=True),),
        )

    # -- housekeeping --------------------------------------------------------------------

    def apply_retention(self, now: float, max_age: float | None) -> int:
        """Delete what is older than ``max_age`` seconds; return how many hits went.

        Hits received before the cutoff go, and so do sources not heard from since then (with
        their statuses), so that a fleet of short-lived replicas does not grow the file forever.
        """
        if max_age is None:
            return 0
        cutoff = now - max_age

        def body() -> int:
            deleted = self._db.execute("DELETE FROM hits WHERE received_at < ?", (cutoff,))
            self._db.execute(
                "DELETE FROM statuses WHERE source_id IN "
                "(SELECT id FROM sources WHERE last_seen < ?)",
                (cutoff,),
            )
            self._db.execute("DELETE FROM sources WHERE last_seen < ?", (cutoff,))
            return int(deleted.rowcount)

        result: int = self._transaction("apply retention", body)
        return result

    def close(self) -> None:
        with self._lock:
            self._db.close()
