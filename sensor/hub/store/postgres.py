"""The PostgreSQL store, which several hub replicas share (the ``postgres`` extra).

Same tables, same answers as the SQLite store (one test suite runs against both). What differs is
that several hub processes write at once:

- a batch of hits locks the rows of its probes (``SELECT ... FOR UPDATE``, in id order, so two
  replicas never deadlock) before it counts them against ``max_hits``;
- every change to what sensors must hold (probes placed, removed, expired or completed, the
  redaction rules, a removed token) sends a ``NOTIFY`` in its own transaction, so it reaches the
  other replicas exactly when it is committed (:meth:`PostgresStore.watch`);
- the schema is migrated under an advisory lock, so replicas starting together migrate once.

Stored JSON stays ``TEXT``: hit bodies are spliced into answers as they were written, as SQLite
does, and ``jsonb`` would reorder their keys.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
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
    BatchLedger,
    encode_hit,
    picks,
    probe_values,
    source_values,
    token_values,
)
from sensor.hub.store.standing import store_standing

__all__ = ["MIGRATIONS", "PostgresStore"]

_log = logging.getLogger("sensor.hub")
_ENCODER = json.JSONEncoder(separators=(",", ":"))
#: Transactions retried after a deadlock or a serialization failure (nothing was committed).
_RETRIES = 5
#: The key of the advisory lock that serializes migrations (any fixed 64-bit number).
_MIGRATION_LOCK = 0x5E45_0001
#: The key of the advisory lock that lets one replica at a time apply retention.
_RETENTION_LOCK = 0x5E45_0002

_TABLES = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE tokens (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, scope TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE, created_at DOUBLE PRECISION NOT NULL
)""",
    """CREATE TABLE sources (
    id TEXT PRIMARY KEY, service TEXT NOT NULL, version TEXT, host TEXT, pid BIGINT,
    python TEXT, labels TEXT NOT NULL, runtime_id TEXT, sensor_version TEXT, backend TEXT,
    token_id TEXT, first_seen DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION NOT NULL,
    dropped BIGINT NOT NULL DEFAULT 0, deregistered BOOLEAN NOT NULL DEFAULT false
)""",
    "CREATE INDEX sources_runtime ON sources (runtime_id)",
    "CREATE INDEX sources_last_seen ON sources (last_seen)",
    """CREATE TABLE probes (
    id TEXT PRIMARY KEY, signature TEXT NOT NULL, probe TEXT NOT NULL, selector TEXT NOT NULL,
    state TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION,
    ended_at DOUBLE PRECISION, max_hits BIGINT, hit_count BIGINT NOT NULL DEFAULT 0,
    dropped BIGINT NOT NULL DEFAULT 0
)""",
    "CREATE INDEX probes_signature ON probes (signature)",
    "CREATE INDEX probes_state ON probes (state)",
    """CREATE TABLE statuses (
    probe_id TEXT NOT NULL, source_id TEXT NOT NULL, body TEXT NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (probe_id, source_id)
)""",
    "CREATE INDEX statuses_source ON statuses (source_id)",
    """CREATE TABLE hits (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, probe_id TEXT NOT NULL,
    signature TEXT NOT NULL, source_id TEXT NOT NULL, hit_id TEXT, ts DOUBLE PRECISION NOT NULL,
    received_at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL
)""",
    "CREATE INDEX hits_probe ON hits (probe_id, seq)",
    "CREATE INDEX hits_signature ON hits (signature, seq)",
    "CREATE INDEX hits_received ON hits (received_at)",
    # a sensor retrying a batch after a lost answer must not store its hits twice
    "CREATE UNIQUE INDEX hits_unique ON hits (probe_id, source_id, hit_id)",
)


def _create_tables(conn: Any) -> None:
    for statement in _TABLES:
        conn.execute(statement)


def _add_columns(conn: Any) -> None:
    conn.execute("ALTER TABLE tokens ADD COLUMN services TEXT")
    conn.execute("ALTER TABLE probes ADD COLUMN ended_reason TEXT")


# Version 3, standing probes: ``strata`` counts every hit sensors sent per (probe, service
# version, stratum); ``reservoir`` lists which stored hits form the bounded sample. No
# PostgreSQL database predates the version table, so these need no IF NOT EXISTS.
_STANDING_TABLES = (
    "ALTER TABLE probes ADD COLUMN standing BOOLEAN NOT NULL DEFAULT false",
    """CREATE TABLE strata (
    probe_id TEXT NOT NULL, version TEXT NOT NULL, stratum TEXT NOT NULL,
    seen BIGINT NOT NULL, kept BIGINT NOT NULL,
    first_seen DOUBLE PRECISION NOT NULL, last_seen DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (probe_id, version, stratum)
)""",
    """CREATE TABLE reservoir (
    seq BIGINT PRIMARY KEY, probe_id TEXT NOT NULL, version TEXT NOT NULL,
    stratum TEXT NOT NULL
)""",
    "CREATE INDEX reservoir_stratum ON reservoir (probe_id, version, stratum)",
)


def _add_standing(conn: Any) -> None:
    for statement in _STANDING_TABLES:
        conn.execute(statement)


def _add_last_batch(conn: Any) -> None:
    conn.execute("ALTER TABLE sources ADD COLUMN last_batch TEXT")


#: The PostgreSQL form of every schema version (the same numbers as SQLite's steps).
MIGRATIONS = (
    Migration(1, "tokens, sources, probes, statuses, hits, meta", _create_tables),
    Migration(2, "tokens.services (sensor tokens limited to services), probes.ended_reason",
              _add_columns),
    Migration(3, "probes.standing, strata and reservoir (standing probes' bounded samples)",
              _add_standing),
    Migration(4, "sources.last_batch (a retried hit batch counts nothing twice)",
              _add_last_batch),
)  # fmt: skip


def _redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "postgresql://..."
    if parts.password is not None:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
        parts = parts._replace(netloc=netloc)
    if parts.query:
        # libpq takes `?password=...` (and `sslpassword=`) in the query string too.
        from sensor.redaction import Redactor

        parts = parts._replace(query=Redactor().redact_text(parts.query))
    return urllib.parse.urlunsplit(parts)


class PostgresStore(common.SharedStore):
    """:class:`~sensor.hub.store.base.Store` on a PostgreSQL database (psycopg 3).

    One connection per hub store thread (``concurrency`` of them) and, once :meth:`watch` is
    called, one more that listens for the other replicas' changes. The reads both stores make
    alike come from :class:`~sensor.hub.store.common.SharedStore`.
    """

    #: store threads the hub may run at once (each with its own connection)
    concurrency = 4

    def __init__(self, url: str, *, connect_timeout: float = 10.0) -> None:
        try:
            import psycopg
        except ImportError:
            raise StoreError(
                f"hub database {_redact_url(url)}: the PostgreSQL store needs psycopg; "
                "install it with: pip install 'pytest-runtime[postgres]'"
            ) from None
        self._psycopg = psycopg
        self.url = url
        self.shown = _redact_url(url)
        self._connect_timeout = connect_timeout
        # one connection per store thread (the hub runs ``concurrency`` of them): a commit
        # waiting for its WAL flush does not hold up the polls' and readers' queries
        self._local = threading.local()
        self._lock = threading.Lock()  # guards the set of connections
        self._connections: set[Any] = set()
        self._pids: frozenset[int] = frozenset()
        self._closed = threading.Event()
        self._listener: threading.Thread | None = None
        self._listen_conn: Any = None
        try:
            conn = self._connection()
            schema = conn.execute("SELECT current_schema()").fetchone()[0]
        except psycopg.Error as exc:
            self.close()
            raise StoreError(f"cannot open the hub database {self.shown}: {exc}") from exc
        if schema is None:
            self.close()
            raise StoreError(
                f"cannot open the hub database {self.shown}: no schema on the search_path "
                "to create the hub's tables in"
            )
        self.schema: str = schema
        # replicas on the same database and schema hear each other; another schema is
        # another hub
        digest = hashlib.sha256(f"{schema}".encode()).hexdigest()[:16]
        self.channel = f"sensor_hub_{digest}"
        try:
            self._migrate()
        except psycopg.Error as exc:
            self.close()
            raise StoreError(f"hub database {self.shown}: migration failed: {exc}") from exc
        except StoreError:
            self.close()
            raise

    # -- connection and transactions ---------------------------------------------------------

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed or conn.broken:
            if conn is not None:
                self._forget(conn)
            # autocommit: each ``transaction()`` block below is exactly one BEGIN ... COMMIT
            conn = self._psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self._connect_timeout))
            )
            self._local.conn = conn
            with self._lock:
                self._connections.add(conn)
                self._pids = self._pids | {int(conn.info.backend_pid)}
        return conn

    def _forget(self, conn: Any) -> None:
        with contextlib.suppress(Exception):
            pid = int(conn.info.backend_pid)
            with self._lock:
                self._pids = self._pids - {pid}
        with self._lock:
            self._connections.discard(conn)
        with contextlib.suppress(Exception):
            conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None

    def _migrate(self) -> None:
        # one transaction on this thread's connection
        conn = self._connection()
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                "applied_at DOUBLE PRECISION NOT NULL, description TEXT NOT NULL)"
            )
            row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            for step in pending(MIGRATIONS, int(row[0] or 0), self.shown):
                step.apply(conn)
                conn.execute(
                    "INSERT INTO schema_version (version, applied_at, description) "
                    "VALUES (%s, %s, %s)",
                    (step.version, time.time(), step.description),
                )
                _log.info("hub database %s: migrated to schema version %d (%s)",
                          self.shown, step.version, step.description)  # fmt: skip

    @property
    def schema_version(self) -> int:
        """The schema version of the database."""
        row = self._run("read schema version", lambda c: c.execute(
            "SELECT max(version) FROM schema_version").fetchone())  # fmt: skip
        return int(row[0] or 0)

    def _run(
        self,
        what: str,
        fn: Callable[..., Any],
        *,
        notify: Sequence[str] = (),
        with_events: bool = False,
        soft: bool = False,
    ) -> Any:
        """Run ``fn(connection)`` in one transaction (retried on deadlock); NOTIFY on commit.

        With ``with_events``, ``fn(connection, events)`` may append events to ``notify``'s: they
        go out in the same transaction, so other replicas hear of a change exactly when it is
        committed, and never of one that was rolled back.
        """
        errors = self._psycopg.errors
        # this thread's own connection: no lock
        for attempt in range(_RETRIES):
            conn = None
            try:
                conn = self._connection()
                with conn.transaction():
                    if soft:
                        # state a sensor sends again anyway (last seen, statuses,
                        # registrations): committed without waiting for the WAL flush, as
                        # SQLite's soft commits skip the fsync. A crash of PostgreSQL may
                        # lose the last moments of it; never a hit, probe or token.
                        conn.execute("SET LOCAL synchronous_commit = off")
                    events = list(notify)
                    result = fn(conn, events) if with_events else fn(conn)
                    for event in dict.fromkeys(events):
                        conn.execute("SELECT pg_notify(%s, %s)", (self.channel, event))
                return result
            except (errors.DeadlockDetected, errors.SerializationFailure):
                if attempt == _RETRIES - 1:
                    raise StoreError(
                        f"hub database {self.shown}, {what}: gave up after {_RETRIES} "
                        "deadlocks with other replicas"
                    ) from None
                time.sleep(0.01 * (attempt + 1))
            except errors.UniqueViolation as exc:
                raise DuplicateError(f"{what}: {exc}") from exc
            except self._psycopg.Error as exc:
                if conn is not None and (conn.closed or conn.broken):
                    self._forget(conn)  # reconnect at the next call
                raise StoreError(f"hub database {self.shown}, {what}: {exc}") from exc
        raise AssertionError("unreachable")

    def _read(self, what: str, fn: Callable[[common.Dialect], common.R]) -> common.R:
        result: common.R = self._run(what, lambda conn: fn(_Dialect(conn)))
        return result

    # -- change events between replicas ----------------------------------------------------

    def watch(self, on_change: Callable[[str], None]) -> None:
        """Call ``on_change(event)`` (from a thread) for each change another replica commits.

        Events: ``probes``, ``redaction``, ``token:<id>``; and ``resync`` after the listening
        connection was lost and made again (events in between may be lost: reload everything).
        """
        if self._listener is not None:
            return
        self._listener = threading.Thread(
            target=self._listen, args=(on_change,), name="sensor-hub-listen", daemon=True
        )
        self._listener.start()

    def _listen(self, on_change: Callable[[str], None]) -> None:
        from psycopg import sql

        first = True
        while not self._closed.is_set():
            try:
                conn = self._psycopg.connect(self.url, autocommit=True, connect_timeout=5)
            except self._psycopg.Error as exc:
                _log.warning("hub database %s: cannot listen for changes: %s", self.shown, exc)
                self._closed.wait(1.0)
                continue
            self._listen_conn = conn
            try:
                conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                if not first:
                    on_change("resync")
                first = False
                while not self._closed.is_set():
                    for note in conn.notifies(timeout=0.5):
                        if note.pid not in self._pids:  # this replica acted on its own already
                            on_change(note.payload)
            except Exception as exc:
                if not self._closed.is_set():
                    _log.warning("hub database %s: change listener lost: %s", self.shown, exc)
                    self._closed.wait(0.5)
            finally:
                self._listen_conn = None
                with contextlib.suppress(Exception):
                    conn.close()

    # -- tokens --------------------------------------------------------------------------

    def add_token(self, token: TokenRecord) -> None:
        self._run(
            "add token",
            lambda c: c.execute(
                "INSERT INTO tokens (id, name, scope, token_hash, created_at, services) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                token_values(token),
            ),
        )

    def remove_token(self, token_id: str) -> bool:
        def body(conn: Any, events: list[str]) -> bool:
            removed = conn.execute("DELETE FROM tokens WHERE id = %s", (token_id,)).rowcount
            if removed:
                events.append(f"token:{token_id}")  # other replicas drop it from their cache
            return bool(removed)

        result: bool = self._run("remove token", body, with_events=True)
        return result

    # -- sources -------------------------------------------------------------------------

    def register_source(self, source: SourceRecord) -> SourceRecord:
        """Insert a source; a known ``runtime_id`` (the same process again) keeps its id."""

        def body(conn: Any) -> SourceRecord:
            if source.runtime_id:
                row = conn.execute(
                    f"SELECT {self._SOURCE_COLUMNS} FROM sources WHERE runtime_id = %s "
                    "AND token_id IS NOT DISTINCT FROM %s ORDER BY first_seen LIMIT 1",
                    (source.runtime_id, source.token_id),
                ).fetchone()
                if row is not None:
                    known = self._source(row)
                    source.id = known.id
                    source.first_seen = known.first_seen
                    source.dropped = known.dropped
            conn.execute(
                f"INSERT INTO sources ({self._SOURCE_COLUMNS}) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, false) "
                "ON CONFLICT (id) DO UPDATE SET service = excluded.service, "
                "version = excluded.version, host = excluded.host, pid = excluded.pid, "
                "python = excluded.python, labels = excluded.labels, "
                "runtime_id = excluded.runtime_id, sensor_version = excluded.sensor_version, "
                "backend = excluded.backend, token_id = excluded.token_id, "
                "first_seen = excluded.first_seen, last_seen = excluded.last_seen, "
                "dropped = excluded.dropped, deregistered = false",
                source_values(source),
            )
            source.deregistered = False
            return source

        result: SourceRecord = self._run("register source", body, soft=True)
        return result

    def touch_source(self, source_id: str, now: float, dropped: int | None = None) -> None:
        self._run("touch source", lambda c: self._touch(c, source_id, now, dropped), soft=True)

    def touch_sources(self, last_seen: Mapping[str, float]) -> None:
        if not last_seen:
            return
        rows = json.dumps(last_seen)
        self._run(
            "touch sources",
            lambda c: c.execute(
                # rows locked in id order, as every multi-source update here: no deadlock
                "WITH locked AS (SELECT id FROM sources WHERE id IN "
                "(SELECT key FROM json_each_text(%s::json)) ORDER BY id FOR UPDATE) "
                "UPDATE sources s SET last_seen = GREATEST(s.last_seen, t.value::float8), "
                "deregistered = false FROM json_each_text(%s::json) AS t, locked "
                "WHERE s.id = t.key AND locked.id = s.id",
                (rows, rows),
            ),
            soft=True,
        )

    @staticmethod
    def _touch(conn: Any, source_id: str, now: float, dropped: int | None) -> None:
        if dropped is None:
            conn.execute(
                "UPDATE sources SET last_seen = %s, deregistered = false WHERE id = %s",
                (now, source_id),
            )
        else:
            conn.execute(
                "UPDATE sources SET last_seen = %s, dropped = %s, deregistered = false "
                "WHERE id = %s",
                (now, dropped, source_id),
            )

    def deregister_source(self, source_id: str, now: float) -> None:
        self._run(
            "deregister source",
            lambda c: c.execute(
                "UPDATE sources SET last_seen = %s, deregistered = true WHERE id = %s",
                (now, source_id),
            ),
            soft=True,
        )

    # -- probes --------------------------------------------------------------------------

    def add_probe(self, record: ProbeRecord) -> None:
        self._run(
            f"add probe {record.id!r}",
            lambda c: c.execute(
                f"INSERT INTO probes ({self._PROBE_COLUMNS}, max_hits, standing) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                probe_values(record),
            ),
            notify=("probes",),
        )

    def end_probe(
        self, probe_id: str, state: str, now: float, reason: str | None = None
    ) -> ProbeRecord | None:
        def body(conn: Any, events: list[str]) -> ProbeRecord | CorruptRecordError | None:
            ended = conn.execute(
                "UPDATE probes SET state = %s, ended_at = %s, ended_reason = %s "
                "WHERE id = %s AND state = 'active'",
                (state, now, reason, probe_id),
            ).rowcount
            if ended:
                events.append("probes")
            row = conn.execute(
                f"SELECT {self._PROBE_SELECT} FROM probes WHERE id = %s", (probe_id,)
            ).fetchone()
            if row is None:
                return None
            try:
                return common.with_statuses(_Dialect(conn), [self._probe(row)])[0]
            except CorruptRecordError as exc:
                return exc  # the probe is ended all the same: commit, then say so

        result: ProbeRecord | CorruptRecordError | None = self._run(
            "end probe", body, with_events=True
        )
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
        def body(conn: Any) -> None:
            self._touch(conn, source.id, now, dropped)
            given = self._given(conn, source, [status["probe_id"] for status in statuses])
            self._upsert_statuses(
                conn, source.id, [s for s in statuses if s["probe_id"] in given], now
            )

        self._run("store heartbeat", body, soft=True)

    @staticmethod
    def _upsert_statuses(
        conn: Any, source_id: str, statuses: Sequence[Mapping[str, Any]], now: float
    ) -> None:
        if not statuses:
            return
        # one row per probe (the last status given wins, as INSERT OR REPLACE does in SQLite)
        rows = {status["probe_id"]: json.dumps(status, sort_keys=True) for status in statuses}
        conn.execute(
            "INSERT INTO statuses (probe_id, source_id, body, updated_at) "
            "SELECT key, %s, value, %s FROM json_each_text(%s::json) "
            "ON CONFLICT (probe_id, source_id) DO UPDATE SET body = excluded.body, "
            "updated_at = excluded.updated_at",
            (source_id, now, json.dumps(rows)),
        )

    @staticmethod
    def _given(conn: Any, source: SourceRecord, probe_ids: Sequence[str]) -> set[str]:
        """The ids among ``probe_ids`` of probes whose selector picks ``source``."""
        if not probe_ids:
            return set()
        rows = conn.execute(
            "SELECT id, selector FROM probes WHERE id = ANY(%s)", (sorted(set(probe_ids)),)
        ).fetchall()
        return {probe_id for probe_id, selector in rows if picks(selector, source)}

    def set_statuses(
        self, source_id: str, statuses: Sequence[Mapping[str, Any]], now: float
    ) -> None:
        def body(conn: Any) -> None:
            ids = [status["probe_id"] for status in statuses]
            known = {
                row[0] for row in conn.execute("SELECT id FROM probes WHERE id = ANY(%s)", (ids,))
            }
            self._upsert_statuses(
                conn, source_id, [s for s in statuses if s["probe_id"] in known], now
            )

        if statuses:
            self._run("store probe statuses", body, soft=True)

    def expire_probes(self, now: float) -> list[str]:
        def body(conn: Any, events: list[str]) -> list[str]:
            # one statement: replicas sweeping at once each expire a probe at most once
            rows = conn.execute(
                "UPDATE probes SET state = 'expired', ended_at = %s, ended_reason = %s "
                "WHERE state = 'active' AND expires_at IS NOT NULL AND expires_at <= %s "
                "RETURNING id",
                (now, "expired: its ttl ended", now),
            ).fetchall()
            if rows:
                events.append("probes")
            return sorted(row[0] for row in rows)

        result: list[str] = self._run("expire probes", body, with_events=True)
        return result

    # -- hits ----------------------------------------------------------------------------

    def add_hit_batches(
        self,
        batches: Sequence[HitBatch],
        now: float,
        max_hits_per_probe: int | None = None,
    ) -> list[BatchOutcome]:
        """Several batches in one transaction: a group commit.

        The probes' rows are locked (in id order, so two replicas never deadlock) before their
        hits are counted against ``max_hits``, then the sources' last-seen times are updated in
        id order. The hits of a probe that is plainly far from its cap are written *before*
        that lock (:meth:`_write_early`) and checked under it: writing them is most of the
        work, and a row lock is held until the commit, so replicas ingesting hits of one probe
        would otherwise take turns for all of it instead of only for the count update.
        """

        def body(conn: Any, events: list[str]) -> list[BatchOutcome]:
            probe_ids = sorted(
                {hit["probe_id"] for batch in batches for hit in batch.hits}
                | {probe_id for batch in batches for probe_id in batch.dropped}
            )
            try:
                with conn.transaction():  # a savepoint: an early write that fails the check
                    early = self._write_early(conn, batches, probe_ids, now, max_hits_per_probe)
                    probes = self._lock_probes(conn, probe_ids)
                    if not _early_holds(early, probes, now, max_hits_per_probe):
                        raise _Recount
                    outcomes = self._store_batches(
                        conn, probes, batches, early, now, max_hits_per_probe
                    )
            except _Recount:  # rolled back to the savepoint: count every hit under the lock
                probes = self._lock_probes(conn, probe_ids)
                outcomes = self._store_batches(conn, probes, batches, {}, now, max_hits_per_probe)
            if any(outcome.completed for outcome in outcomes):
                events.append("probes")
            return outcomes

        result: list[BatchOutcome] = self._run("store hits", body, with_events=True)
        return result

    @staticmethod
    def _lock_probes(conn: Any, probe_ids: list[str]) -> dict[str, list[Any]]:
        probes: dict[str, list[Any]] = {}
        if probe_ids:
            for row in conn.execute(
                "SELECT id, signature, state, max_hits, hit_count, selector, expires_at, "
                "standing FROM probes WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                (probe_ids,),
            ):
                probes[row[0]] = list(row)
        return probes

    def _write_early(
        self,
        conn: Any,
        batches: Sequence[HitBatch],
        probe_ids: list[str],
        now: float,
        max_hits_per_probe: int | None,
    ) -> dict[tuple[int, str], int]:
        """Write, without locking its probe, the hits of each probe that takes all of them.

        Read unlocked, a probe's committed ``hit_count`` can only grow before the lock is
        taken: the check under the lock (:func:`_early_holds`) says whether these writes
        stand. Returns (batch index, probe id) -> hits written.
        """
        if not probe_ids:
            return {}
        wanted: dict[str, int] = {}
        for hits in (batch.hits for batch in batches):
            for hit in hits:
                wanted[hit["probe_id"]] = wanted.get(hit["probe_id"], 0) + 1
        rows = conn.execute(
            "SELECT id, signature, state, max_hits, hit_count, selector, expires_at, standing "
            "FROM probes WHERE id = ANY(%s) AND state = 'active' AND NOT standing",
            (sorted(wanted),),
        ).fetchall()
        early: dict[tuple[int, str], int] = {}
        for probe_id, signature, _, max_hits, hit_count, selector, expires_at, _ in rows:
            cap = common.cap_of(max_hits, max_hits_per_probe)
            if expires_at is not None and expires_at <= now:
                continue
            if cap is not None and hit_count + wanted[probe_id] > cap:
                continue  # near its cap: counted hit by hit under the lock
            for index, (source, hits, _, _) in enumerate(batches):
                batch = [hit for hit in hits if hit["probe_id"] == probe_id]
                if batch and picks(selector, source):
                    early[(index, probe_id)] = self._insert_hits(
                        conn, probe_id, signature, source, batch, now
                    )
        return early

    def _store_batches(
        self,
        conn: Any,
        probes: dict[str, list[Any]],
        batches: Sequence[HitBatch],
        early: dict[tuple[int, str], int],
        now: float,
        max_hits_per_probe: int | None,
    ) -> list[BatchOutcome]:
        # the sources' rows in id order (two replicas' groups wait, never deadlock); each
        # batch is checked against its source's last one, in the order they came
        last = dict(
            conn.execute(
                "SELECT id, last_batch FROM sources WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                (sorted({batch.source.id for batch in batches}),),
            ).fetchall()
        )
        ledgers = []
        for source, hits, dropped, number in batches:
            ledger = BatchLedger(last.get(source.id), hits, dropped, number)
            last[source.id] = ledger.text
            ledgers.append(ledger)
        conn.execute(
            "UPDATE sources AS s SET last_seen = %s, deregistered = false, last_batch = u.b "
            "FROM json_each_text(%s::json) AS u(id, b) WHERE s.id = u.id",
            (now, _ENCODER.encode(last)),
        )
        return [
            self._store_batch(
                conn, probes, source, hits, ledger, now, max_hits_per_probe,
                {probe_id: n for (i, probe_id), n in early.items() if i == index},
            )
            for index, ((source, hits, *_), ledger) in enumerate(zip(batches, ledgers, strict=True))
        ]  # fmt: skip

    def _insert_hits(
        self,
        conn: Any,
        probe_id: str,
        signature: str,
        source: SourceRecord,
        batch: Sequence[dict[str, Any]],
        now: float,
    ) -> int:
        """Write one probe's hits of one batch; return how many rows are new.

        COPY first: the cheapest way into PostgreSQL (no SQL to plan, no JSON to parse per
        row). A hit stored already (a retried batch, or twice in one batch) breaks
        ``hits_unique`` and rolls the COPY back to its savepoint; then one INSERT ... ON
        CONFLICT DO NOTHING writes the new ones.
        """
        brief = source.brief()
        rows = []
        for hit in batch:
            hit["signature"] = signature  # the hub's record is the truth
            hit["source"] = brief
            rows.append(
                (probe_id, signature, source.id, hit.get("hit_id") or None, hit["ts"], now,
                 encode_hit(hit))
            )  # fmt: skip
        errors = self._psycopg.errors
        try:
            with conn.transaction(), conn.cursor() as cursor:
                with cursor.copy(
                    "COPY hits (probe_id, signature, source_id, hit_id, ts, received_at, body) "
                    "FROM STDIN"
                ) as copy:
                    for row in rows:
                        copy.write_row(row)
                return len(rows)
        except errors.UniqueViolation:
            pass
        # the rows as one JSON text parameter: psycopg adapts a Python list element by
        # element (about 70 us a hit), a single string in one go. The function scan yields the
        # array in order and an INSERT ... SELECT has no parallel plan: seq follows the batch.
        inserted: int = conn.execute(
            "INSERT INTO hits (probe_id, signature, source_id, hit_id, ts, received_at, body) "
            "SELECT %s, %s, %s, r->>0, (r->>1)::float8, %s, r->>2 "
            "FROM json_array_elements(%s::json) AS u(r) ON CONFLICT DO NOTHING",
            (probe_id, signature, source.id, now,
             _ENCODER.encode([(row[3], row[4], row[6]) for row in rows])),
        ).rowcount  # fmt: skip
        return inserted

    def _store_batch(
        self,
        conn: Any,
        probes: dict[str, list[Any]],
        source: SourceRecord,
        hits: Sequence[dict[str, Any]],
        ledger: BatchLedger,
        now: float,
        max_hits_per_probe: int | None,
        early: Mapping[str, int],
    ) -> BatchOutcome:
        dropped = ledger.dropped  # on a retried batch, only the drops that grew since
        by_probe: dict[str, list[dict[str, Any]]] = {}
        for hit in hits:
            by_probe.setdefault(hit["probe_id"], []).append(hit)
        outcome = BatchOutcome()
        for probe_id, batch in by_probe.items():
            if probe_id not in probes:
                outcome.decline(probe_id, "unknown_probe", len(batch))
        for probe_id in sorted(set(by_probe) | set(dropped)):
            row = probes.get(probe_id)
            if row is None:
                continue
            _, signature, state, max_hits, hit_count, selector, expires_at, standing = row
            batch = by_probe.get(probe_id, [])
            if probe_id not in early and not picks(selector, source):
                # not this source's probe: neither its hits nor its drop counts are taken
                outcome.decline(probe_id, "not_given", len(batch))
                continue
            if standing:
                # the probe's row is locked (FOR UPDATE above) until this transaction ends:
                # replicas sampling the same probe take turns, so its counts stay exact
                accepted = store_standing(
                    _Dialect(conn), source, probe_id, signature, state, batch, dropped, now,
                    outcome, retry=ledger.retry,
                )  # fmt: skip
                row[4] = hit_count + accepted
                continue
            cap = common.cap_of(max_hits, max_hits_per_probe)
            if probe_id in early:  # written before the lock; _early_holds checked it
                inserted = early[probe_id]
            else:
                if state == "active" and expires_at is not None and expires_at <= now:
                    state = "expired"  # the sweeper has not run yet: the probe is over anyway
                room = None if cap is None else max(0, cap - hit_count)
                # some hits may be declined: those already stored (a retried batch) are not
                batch = common.admit(_Dialect(conn), source, probe_id, state, room, batch, outcome)
                inserted = (
                    self._insert_hits(conn, probe_id, signature, source, batch, now) if batch else 0
                )
            outcome.accepted += len(batch)
            if inserted:
                outcome.stored.extend(batch)
            new_count = hit_count + inserted
            row[4] = new_count  # the next batch of this group counts from here
            finished = cap is not None and new_count >= cap and state == "active" and inserted > 0
            ended: str | None = None
            if finished:
                assert cap is not None
                ended = common.ended_reason(new_count, cap, max_hits)
                row[2] = "completed"
            extra_dropped = int(dropped.get(probe_id, 0))
            if inserted or extra_dropped or finished:
                conn.execute(
                    "UPDATE probes SET hit_count = %s, dropped = dropped + %s, "
                    "state = CASE WHEN %s THEN 'completed' ELSE state END, "
                    "ended_at = CASE WHEN %s THEN %s ELSE ended_at END, "
                    "ended_reason = CASE WHEN %s THEN %s ELSE ended_reason END WHERE id = %s",
                    (new_count, extra_dropped, finished, finished, now, finished, ended,
                     probe_id),
                )  # fmt: skip
            if finished:
                outcome.completed.append(probe_id)
        return outcome

    @staticmethod
    def _stored_hit_ids(
        conn: Any, probe_id: str, source_id: str, batch: Sequence[Mapping[str, Any]]
    ) -> set[str]:
        ids = sorted({hit["hit_id"] for hit in batch if hit.get("hit_id")})
        if not ids:
            return set()
        return {
            row[0]
            for row in conn.execute(
                "SELECT hit_id FROM hits WHERE probe_id = %s AND source_id = %s "
                "AND hit_id = ANY(%s)",
                (probe_id, source_id, ids),
            )
        }

    # -- redaction rules -----------------------------------------------------------------

    def set_redaction(self, record: RedactionRecord) -> None:
        self._run(
            "store redaction rules",
            lambda c: c.execute(
                "INSERT INTO meta (key, value) VALUES ('redaction', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (json.dumps(record.to_dict(), sort_keys=True),),
            ),
            notify=("redaction",),
        )

    # -- housekeeping --------------------------------------------------------------------

    def apply_retention(self, now: float, max_age: float | None) -> int:
        """Delete what is older than ``max_age`` seconds; return how many hits went.

        One replica at a time (an advisory lock taken without waiting): the others skip this
        round and return 0, instead of deleting the same rows behind the first one's locks.
        """
        if max_age is None:
            return 0
        cutoff = now - max_age

        def body(conn: Any) -> int:
            locked = conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s)", (_RETENTION_LOCK,)
            ).fetchone()[0]
            if not locked:
                return 0
            return common.delete_expired(_Dialect(conn), cutoff)

        result: int = self._run("apply retention", body)
        return result

    def close(self) -> None:
        self._closed.set()
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.join(timeout=5)
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for conn in connections:
            with contextlib.suppress(Exception):
                conn.close()


# -- helpers -----------------------------------------------------------------------------------


class _Dialect:
    """The shared statements (:mod:`.common`, :mod:`.standing`) on one transaction's connection."""

    __slots__ = ("_conn",)

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(_placeholders(sql), params)

    def insert_hit(self, row: Sequence[Any]) -> int:
        (seq,) = self._conn.execute(
            "INSERT INTO hits (probe_id, signature, source_id, hit_id, ts, received_at, body) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING seq",
            row,
        ).fetchone()
        return int(seq)

    def any_of(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"{column} = ANY(?)", [list(values)]

    def stored_hit_ids(
        self, probe_id: str, source_id: str, batch: Sequence[Mapping[str, Any]]
    ) -> set[str]:
        return PostgresStore._stored_hit_ids(self._conn, probe_id, source_id, batch)


@functools.lru_cache(maxsize=256)  # read_hits makes at most 64 statements, the rest a few dozen
def _placeholders(sql: str) -> str:
    """A shared statement (:mod:`.common`, :mod:`.standing`: ``?``) as psycopg takes it (``%s``)."""
    # none of those statements holds a ``?`` or a ``%`` of its own
    return sql.replace("?", "%s")


class _Recount(Exception):
    """Hits written before their probe's lock no longer fit it: roll them back, count again."""


def _early_holds(
    early: Mapping[tuple[int, str], int],
    probes: Mapping[str, list[Any]],
    now: float,
    max_hits_per_probe: int | None,
) -> bool:
    """Under the lock: is every probe written early still active and within its cap?"""
    written: dict[str, int] = {}
    for (_, probe_id), count in early.items():
        written[probe_id] = written.get(probe_id, 0) + count
    for probe_id, count in written.items():
        row = probes.get(probe_id)
        if row is None:
            return False
        _, _, state, max_hits, hit_count, _, expires_at, standing = row
        if state != "active" or standing or (expires_at is not None and expires_at <= now):
            return False
        cap = common.cap_of(max_hits, max_hits_per_probe)
        if cap is not None and hit_count + count > cap:
            return False
    return True
