"""The default store: one SQLite file in WAL mode, no setup.

One connection, guarded by a lock, used from the hub's single store thread. Hits of one batch
go in with ``executemany`` inside one transaction, so a batch costs one commit (one fsync with
``synchronous=FULL``), and the batch is durable before :meth:`SQLiteStore.add_hits` returns.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sensor.hub.store import common
from sensor.hub.store.base import (
    BatchOutcome,
    CorruptRecordError,
    DuplicateError,
    HitBatch,
    ProbeRecord,
    RedactionRecord,
    SourceRecord,
    StoreError,
    TokenRecord,
)
from sensor.hub.store.migrations import Migration, pending
from sensor.hub.store.rows import (
    STATUS_COUNTERS,
    BatchLedger,
    encode_hit,
    picks,
    probe_values,
    source_values,
    token_values,
)
from sensor.hub.store.standing import store_standing

__all__ = ["FILE_MODE", "MIGRATIONS", "STATUS_COUNTERS", "SQLiteStore"]

_log = logging.getLogger("sensor.hub")

# Version 1: the tables of the first release. Every statement is IF NOT EXISTS: a file made
# before the version table existed runs this step without change and gets its version row.
_TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, scope TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS sources (
    id TEXT PRIMARY KEY, service TEXT NOT NULL, version TEXT, host TEXT, pid INTEGER,
    python TEXT, labels TEXT NOT NULL, runtime_id TEXT, sensor_version TEXT, backend TEXT,
    token_id TEXT, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    dropped INTEGER NOT NULL DEFAULT 0, deregistered INTEGER NOT NULL DEFAULT 0
)""",
    "CREATE INDEX IF NOT EXISTS sources_runtime ON sources (runtime_id)",
    """CREATE TABLE IF NOT EXISTS probes (
    id TEXT PRIMARY KEY, signature TEXT NOT NULL, probe TEXT NOT NULL, selector TEXT NOT NULL,
    state TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL, ended_at REAL,
    max_hits INTEGER, hit_count INTEGER NOT NULL DEFAULT 0, dropped INTEGER NOT NULL DEFAULT 0
)""",
    "CREATE INDEX IF NOT EXISTS probes_signature ON probes (signature)",
    "CREATE INDEX IF NOT EXISTS probes_state ON probes (state)",
    """CREATE TABLE IF NOT EXISTS statuses (
    probe_id TEXT NOT NULL, source_id TEXT NOT NULL, body TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (probe_id, source_id)
)""",
    """CREATE TABLE IF NOT EXISTS hits (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, probe_id TEXT NOT NULL, signature TEXT NOT NULL,
    source_id TEXT NOT NULL, hit_id TEXT, ts REAL NOT NULL, received_at REAL NOT NULL,
    body TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS hits_probe ON hits (probe_id, seq)",
    "CREATE INDEX IF NOT EXISTS hits_signature ON hits (signature, seq)",
    "CREATE INDEX IF NOT EXISTS hits_received ON hits (received_at)",
    # a sensor retrying a batch after a lost answer must not store its hits twice
    "CREATE UNIQUE INDEX IF NOT EXISTS hits_unique ON hits (probe_id, source_id, hit_id)",
)

# Version 3, standing probes (issue 13): probes.standing plus two tables. ``strata`` counts every
# hit a sensor sent per (probe, service version, stratum); ``reservoir`` lists which stored hits
# form the bounded sample. ``first_seen``/``last_seen`` are the hub's clock at receipt
# (retention reads them).
_STANDING_TABLES = (
    """CREATE TABLE IF NOT EXISTS strata (
    probe_id TEXT NOT NULL, version TEXT NOT NULL, stratum TEXT NOT NULL,
    seen INTEGER NOT NULL, kept INTEGER NOT NULL,
    first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    PRIMARY KEY (probe_id, version, stratum)
)""",
    """CREATE TABLE IF NOT EXISTS reservoir (
    seq INTEGER PRIMARY KEY, probe_id TEXT NOT NULL, version TEXT NOT NULL,
    stratum TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS reservoir_stratum ON reservoir (probe_id, version, stratum)",
)


def _create_tables(db: sqlite3.Connection) -> None:
    for statement in _TABLES:
        db.execute(statement)


def _add_missing_column(db: sqlite3.Connection, table: str, column: str, declaration: str) -> None:
    # a file made before the version table may have gained the column already (columns were
    # added at open when missing): add it only when it is missing
    known = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
    if column not in known:
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _add_columns(db: sqlite3.Connection) -> None:
    _add_missing_column(db, "tokens", "services", "TEXT")
    _add_missing_column(db, "probes", "ended_reason", "TEXT")


def _add_standing(db: sqlite3.Connection) -> None:
    # a file made by the hub of issue 13 before the version table may have all of this already
    _add_missing_column(db, "probes", "standing", "INTEGER NOT NULL DEFAULT 0")
    for statement in _STANDING_TABLES:
        db.execute(statement)


def _add_last_batch(db: sqlite3.Connection) -> None:
    _add_missing_column(db, "sources", "last_batch", "TEXT")


#: The SQLite form of every schema version (PostgreSQL's steps carry the same numbers).
MIGRATIONS = (
    Migration(1, "tokens, sources, probes, statuses, hits, meta", _create_tables),
    Migration(2, "tokens.services (sensor tokens limited to services), probes.ended_reason",
              _add_columns),
    Migration(3, "probes.standing, strata and reservoir (standing probes' bounded samples)",
              _add_standing),
    Migration(4, "sources.last_batch (a retried hit batch counts nothing twice)",
              _add_last_batch),
)  # fmt: skip
#: The database, its WAL and its shared-memory file hold token hashes and captured values.
FILE_MODE = 0o600
_ENCODER = json.JSONEncoder(separators=(",", ":"))  # one encoder: json.dumps re-creates it
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


class SQLiteStore(common.SharedStore):
    """:class:`~sensor.hub.store.base.Store` on one SQLite file (``:memory:`` for tests).

    The reads both stores make alike come from :class:`~sensor.hub.store.common.SharedStore`.
    """

    #: one connection, one writer: the hub runs every store call on one thread
    concurrency = 1

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
            on_disk = self.path != ":memory:" and not self.path.startswith("file:")
            if on_disk:
                _private_file(Path(self.path))
            # isolation_level=None: we open transactions ourselves (BEGIN IMMEDIATE), so that a
            # batch is one transaction and readers never see half of it.
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            # A row written by hand or by another program may hold bytes that are not UTF-8:
            # read them as lone surrogates, which the record checks then quarantine, instead of
            # failing the whole query (and every listing with it).
            self._db.text_factory = _decode_text
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={self._synchronous}")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._sql = _Dialect(self._db)
            self._migrate()
            if on_disk:
                # SQLite creates -wal and -shm with the database's mode; files left by an
                # older hub (0644) are tightened here
                for suffix in ("", "-wal", "-shm"):
                    _tighten(Path(self.path + suffix))
        except BaseException as exc:
            # a store that does not open leaves no connection behind (a refused schema, a
            # failed migration), whatever the caller does next
            opened: sqlite3.Connection | None = getattr(self, "_db", None)
            if opened is not None:
                opened.close()
            if isinstance(exc, sqlite3.Error | OSError):
                raise StoreError(f"cannot open the hub database {self.path!r}: {exc}") from exc
            raise

    def _migrate(self) -> None:
        """Bring the file to the latest schema version, in one write transaction."""
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # another hub opening the file at once waits here
        try:
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                "applied_at REAL NOT NULL, description TEXT NOT NULL)"
            )
            current = db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0
            for step in pending(MIGRATIONS, current, repr(self.path)):
                step.apply(db)
                db.execute(
                    "INSERT INTO schema_version (version, applied_at, description) "
                    "VALUES (?, ?, ?)",
                    (step.version, time.time(), step.description),
                )
                _log.info("hub database %s: migrated to schema version %d (%s)",
                          self.path, step.version, step.description)  # fmt: skip
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        """The schema version of the open database."""
        row = self._run(
            "read schema version",
            lambda: self._db.execute("SELECT max(version) FROM schema_version").fetchone(),
        )
        return int(row[0] or 0)

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

    def _read(self, what: str, fn: Callable[[common.Dialect], common.R]) -> common.R:
        result: common.R = self._run(what, fn, self._sql)
        return result

    # -- tokens --------------------------------------------------------------------------

    def add_token(self, token: TokenRecord) -> None:
        self._run(
            "add token",
            self._db.execute,
            "INSERT INTO tokens (id, name, scope, token_hash, created_at, services) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            token_values(token),
        )

    def remove_token(self, token_id: str) -> bool:
        cursor = self._run(
            "remove token", self._db.execute, "DELETE FROM tokens WHERE id = ?", (token_id,)
        )
        return bool(cursor.rowcount)

    # -- sources -------------------------------------------------------------------------

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
                source_values(source),
            )
            source.deregistered = False
            return source

        result: SourceRecord = self._transaction("register source", body, soft=True)
        return result

    def touch_source(self, source_id: str, now: float, dropped: int | None = None) -> None:
        self._transaction("touch source", self._touch, source_id, now, dropped, soft=True)

    def touch_sources(self, last_seen: Mapping[str, float]) -> None:
        if not last_seen:
            return
        self._transaction(
            "touch sources",
            self._db.executemany,
            "UPDATE sources SET last_seen = max(last_seen, ?), deregistered = 0 WHERE id = ?",
            [(when, source_id) for source_id, when in sorted(last_seen.items())],
            soft=True,
        )

    def _touch(self, source_id: str, now: float, dropped: int | None) -> None:
        if dropped is None:
            self._db.execute(
                "UPDATE sources SET last_seen = ?, deregistered = 0 WHERE id = ?",
                (now, source_id),
            )
        else:
            self._db.execute(
                "UPDATE sources SET last_seen = ?, dropped = ?, deregistered = 0 WHERE id = ?",
                (now, dropped, source_id),
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

    def add_probe(self, record: ProbeRecord) -> None:
        self._run(
            f"add probe {record.id!r}",
            self._db.execute,
            f"INSERT INTO probes ({self._PROBE_COLUMNS}, max_hits, standing) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            probe_values(record),
        )

    def end_probe(
        self, probe_id: str, state: str, now: float, reason: str | None = None
    ) -> ProbeRecord | None:
        def body() -> ProbeRecord | CorruptRecordError | None:
            self._db.execute(
                "UPDATE probes SET state = ?, ended_at = ?, ended_reason = ? "
                "WHERE id = ? AND state = 'active'",
                (state, now, reason, probe_id),
            )
            row = self._db.execute(
                f"SELECT {self._PROBE_SELECT} FROM probes WHERE id = ?", (probe_id,)
            ).fetchone()
            if row is None:
                return None
            try:
                return common.with_statuses(self._sql, [self._probe(row)])[0]
            except CorruptRecordError as exc:
                return exc  # the probe is ended all the same: commit, then say so

        result: ProbeRecord | CorruptRecordError | None = self._transaction("end probe", body)
        if isinstance(result, CorruptRecordError):
            raise result
        return result

    def store_heartbeat(
        self,
        source: SourceRecord,
        statuses: Sequence[Mapping[str, Any]],
        dropped: int | None,
        now: float,
    ) -> None:
        def body() -> None:
            self._touch(source.id, now, dropped)
            given = self._given(source, [status["probe_id"] for status in statuses])
            self._db.executemany(
                "INSERT OR REPLACE INTO statuses (probe_id, source_id, body, updated_at) "
                "VALUES (?, ?, ?, ?)",
                [
                    (status["probe_id"], source.id, json.dumps(status, sort_keys=True), now)
                    for status in statuses
                    if status["probe_id"] in given
                ],
            )

        self._transaction("store heartbeat", body, soft=True)

    def _given(self, source: SourceRecord, probe_ids: Sequence[str]) -> set[str]:
        """The ids among ``probe_ids`` of probes whose selector picks ``source``."""
        if not probe_ids:
            return set()
        ids = sorted(set(probe_ids))
        rows = self._db.execute(
            f"SELECT id, selector FROM probes WHERE id IN ({','.join('?' * len(ids))})", ids
        ).fetchall()
        return {probe_id for probe_id, selector in rows if picks(selector, source)}

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
                "UPDATE probes SET state = 'expired', ended_at = ?, ended_reason = ? WHERE id = ?",
                [(now, "expired: its ttl ended", probe_id) for probe_id in ids],
            )
            return ids

        result: list[str] = self._transaction("expire probes", body)
        return result

    # -- hits ----------------------------------------------------------------------------

    def add_hit_batches(
        self,
        batches: Sequence[HitBatch],
        now: float,
        max_hits_per_probe: int | None = None,
    ) -> list[BatchOutcome]:
        """Store several batches (of several sources) in one transaction: a group commit."""

        def body() -> list[BatchOutcome]:
            return [
                self._store_batch(source, hits, dropped, number, now, max_hits_per_probe)
                for source, hits, dropped, number in batches
            ]

        result: list[BatchOutcome] = self._transaction("store hits", body)
        return result

    def _store_batch(
        self,
        source: SourceRecord,
        hits: Sequence[dict[str, Any]],
        dropped: Mapping[str, int],
        number: int | None,
        now: float,
        max_hits_per_probe: int | None,
    ) -> BatchOutcome:
        by_probe: dict[str, list[dict[str, Any]]] = {}
        for hit in hits:
            by_probe.setdefault(hit["probe_id"], []).append(hit)
        probe_ids = sorted(set(by_probe) | set(dropped))
        brief = source.brief()
        outcome = BatchOutcome()
        row = self._db.execute("SELECT last_batch FROM sources WHERE id = ?", (source.id,))
        previous = row.fetchone()
        ledger = BatchLedger(previous[0] if previous else None, hits, dropped, number)
        dropped = ledger.dropped
        self._db.execute(
            "UPDATE sources SET last_seen = ?, deregistered = 0, last_batch = ? WHERE id = ?",
            (now, ledger.text, source.id),
        )
        if not probe_ids:
            return outcome
        marks = ",".join("?" * len(probe_ids))
        rows = self._db.execute(
            "SELECT id, signature, state, max_hits, hit_count, selector, expires_at, standing "
            f"FROM probes WHERE id IN ({marks})",
            probe_ids,
        ).fetchall()
        found = {row[0] for row in rows}
        for probe_id, batch in by_probe.items():
            if probe_id not in found:
                outcome.decline(probe_id, "unknown_probe", len(batch))
        for probe_id, signature, state, max_hits, hit_count, selector, expires_at, standing in rows:
            batch = by_probe.get(probe_id, [])
            if not picks(selector, source):
                # not this source's probe: neither its hits nor its drop counts are taken
                outcome.decline(probe_id, "not_given", len(batch))
                continue
            if standing:
                store_standing(
                    self._sql, source, probe_id, signature, state, batch, dropped, now,
                    outcome, retry=ledger.retry,
                )  # fmt: skip
                continue
            cap = common.cap_of(max_hits, max_hits_per_probe)
            if state == "active" and expires_at is not None and expires_at <= now:
                state = "expired"  # the sweeper has not run yet: the probe is over all the same
            room = None if cap is None else max(0, cap - hit_count)
            # some hits may be declined: those already stored (a retried batch) are not
            batch = common.admit(self._sql, source, probe_id, state, room, batch, outcome)
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
                        encode_hit(hit),
                    )
                )
            before = self._db.total_changes
            self._db.executemany(
                "INSERT OR IGNORE INTO hits (probe_id, signature, source_id, hit_id, ts, "
                "received_at, body) VALUES (?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            inserted = self._db.total_changes - before
            outcome.accepted += len(values)
            if inserted:
                outcome.stored.extend(batch)
            new_count = hit_count + inserted
            finished = cap is not None and new_count >= cap and state == "active" and inserted > 0
            ended: str | None = None
            if finished:
                assert cap is not None
                ended = common.ended_reason(new_count, cap, max_hits)
            self._db.execute(
                "UPDATE probes SET hit_count = ?, dropped = dropped + ?, "
                "state = CASE WHEN ? THEN 'completed' ELSE state END, "
                "ended_at = CASE WHEN ? THEN ? ELSE ended_at END, "
                "ended_reason = CASE WHEN ? THEN ? ELSE ended_reason END WHERE id = ?",
                (
                    new_count,
                    int(dropped.get(probe_id, 0)),
                    finished,
                    finished,
                    now,
                    finished,
                    ended,
                    probe_id,
                ),
            )
            if finished:
                outcome.completed.append(probe_id)
        return outcome

    # -- redaction rules -----------------------------------------------------------------

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

        What goes: :func:`~sensor.hub.store.common.delete_expired`.
        """
        if max_age is None:
            return 0
        cutoff = now - max_age

        def body() -> int:
            return common.delete_expired(self._sql, cutoff)

        result: int = self._transaction("apply retention", body)
        return result

    def watch(self, on_change: Callable[[str], None]) -> None:
        """Nothing to watch: one hub process owns a SQLite file, so every change is its own."""

    def close(self) -> None:
        with self._lock:
            self._db.close()


# -- helpers -----------------------------------------------------------------------------------


class _Dialect:
    """The shared statements (:mod:`.common`, :mod:`.standing`) on this store's connection."""

    __slots__ = ("_db",)

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._db.execute(sql, params)

    def insert_hit(self, row: Sequence[Any]) -> int:
        cursor = self._db.execute(
            "INSERT INTO hits (probe_id, signature, source_id, hit_id, ts, received_at, body) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            row,
        )
        assert cursor.lastrowid is not None  # an INSERT into a rowid table
        return cursor.lastrowid

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} IN ({','.join('?' * len(values))})", list(values)

    def stored_hit_ids(
        self, probe_id: str, source_id: str, batch: Sequence[Mapping[str, Any]]
    ) -> set[str]:
        ids = sorted({hit["hit_id"] for hit in batch if hit.get("hit_id")})
        found: set[str] = set()
        for start in range(0, len(ids), 500):  # SQLite bounds the parameters of one query
            chunk = ids[start : start + 500]
            found.update(
                row[0]
                for row in self._db.execute(
                    "SELECT hit_id FROM hits WHERE probe_id = ? AND source_id = ? AND hit_id IN "
                    f"({','.join('?' * len(chunk))})",
                    [probe_id, source_id, *chunk],
                )
            )
        return found


def _decode_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _private_file(path: Path) -> None:
    """Create the database file 0600 (whatever the umask) before SQLite opens it."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    os.close(fd)
    _tighten(path)


def _tighten(path: Path) -> None:
    """Take group and other permissions off an existing file of ours."""
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return
    if mode & 0o077:
        os.chmod(path, mode & 0o700)
