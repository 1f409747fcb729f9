"""Both stores, one suite: durability, batches, max hits, paging, expiry, retention, migrations.

Every test that takes ``store`` runs against SQLite and against a real PostgreSQL server (a
temporary cluster, see ``tests/pg_cluster.py``): the two must behave the same. ``raw`` reaches
under a store, the way another program (or an older hub) would write to its database.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from sensor.errors import ConfigError
from sensor.hub.auth import hash_token, new_token_record
from sensor.hub.store import (
    DuplicateError,
    ProbeRecord,
    SourceRecord,
    StoreError,
    open_store,
)
from sensor.hub.store.sqlite import MIGRATIONS, SQLiteStore


def source(source_id: str = "s1", **fields: Any) -> SourceRecord:
    values: dict[str, Any] = {
        "id": source_id,
        "service": "shop",
        "version": "1.0",
        "host": "h1",
        "pid": 7,
        "python": "3.12.1",
        "labels": {"env": "prod"},
        "runtime_id": None,
        "sensor_version": "0.1",
        "backend": "monitoring",
        "token_id": "t1",
        "first_seen": 100.0,
        "last_seen": 100.0,
    }
    values.update(fields)
    return SourceRecord(**values)


def probe(probe_id: str = "p1", max_hits: int | None = None, **fields: Any) -> ProbeRecord:
    values: dict[str, Any] = {
        "id": probe_id,
        "signature": "sig-" + probe_id,
        "probe": {"id": probe_id, "kind": "snapshot", "limits": {"max_hits": max_hits}},
        "selector": {},
        "state": "active",
        "created_at": 100.0,
        "expires_at": None,
    }
    values.update(fields)
    return ProbeRecord(**values)


def hit(probe_id: str = "p1", n: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "probe_id": probe_id,
        "signature": "wrong",
        "kind": "snapshot",
        "location": "m:f@return",
        "ts": 1000.0 + n,
        "hit_id": f"h-{n}",
        **fields,
    }


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    opened: Any
    if request.param == "sqlite":
        opened = SQLiteStore(tmp_path / "hub.db")
    else:
        from sensor.hub.store.postgres import PostgresStore

        opened = PostgresStore(request.getfixturevalue("postgres_url"))
    yield opened
    opened.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Any:
    opened = SQLiteStore(tmp_path / "hub.db")
    yield opened
    opened.close()


def raw(store: Any, sql: str, params: Sequence[Any] = ()) -> list[Any]:
    """Run SQL on the store's database from another connection (``?`` placeholders)."""
    if isinstance(store, SQLiteStore):
        other = sqlite3.connect(store.path)
        try:
            rows = other.execute(sql, params).fetchall()
            other.commit()
        finally:
            other.close()
        return rows
    import psycopg

    with psycopg.connect(store.url, autocommit=True) as conn:
        cursor = conn.execute(sql.replace("?", "%s"), params)  # type: ignore[call-overload]
        return cursor.fetchall() if cursor.description else []


def test_store_uses_wal_journal(sqlite_store: Any) -> None:
    mode = sqlite_store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_tokens_are_found_by_hash_and_removed(store: Any) -> None:
    record = new_token_record("ci", "client", "secret-1")
    store.add_token(record)
    assert store.find_token(hash_token("secret-1")) == record
    assert store.find_token(hash_token("secret-2")) is None
    assert [t.id for t in store.list_tokens()] == [record.id]
    assert store.remove_token(record.id) is True
    assert store.remove_token(record.id) is False
    assert store.find_token(hash_token("secret-1")) is None


def test_token_secret_is_never_stored(sqlite_store: Any, tmp_path: Path) -> None:
    sqlite_store.add_token(new_token_record("ci", "client", "very-secret-value"))
    sqlite_store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"very-secret-value" not in raw
    assert hash_token("very-secret-value").encode() in raw


def test_token_rows_hold_the_hash_only(store: Any) -> None:
    store.add_token(new_token_record("ci", "client", "very-secret-value"))
    (row,) = raw(store, "SELECT id, name, scope, token_hash, services FROM tokens")
    assert "very-secret-value" not in repr(row)
    assert row[3] == hash_token("very-secret-value")


def test_register_with_known_runtime_id_keeps_the_source_id(store: Any) -> None:
    first = store.register_source(source("a", runtime_id="rt-1"))
    again = store.register_source(source("b", runtime_id="rt-1", last_seen=200.0, pid=8))
    assert again.id == first.id == "a"
    assert again.first_seen == 100.0
    assert [s.id for s in store.list_sources()] == ["a"]
    assert store.get_source("a").pid == 8  # type: ignore[union-attr]


def test_source_state_follows_last_seen_and_deregistration(store: Any) -> None:
    store.register_source(source("a"))
    record = store.get_source("a")
    assert record is not None
    assert record.state(now=110.0, stale_after=30, gone_after=300) == "live"
    assert record.state(now=200.0, stale_after=30, gone_after=300) == "stale"
    assert record.state(now=500.0, stale_after=30, gone_after=300) == "gone"
    store.deregister_source("a", 110.0)
    assert store.get_source("a").state(110.0, 30, 300) == "gone"  # type: ignore[union-attr]
    store.touch_source("a", 120.0, dropped=3)
    touched = store.get_source("a")
    assert touched is not None
    assert (touched.state(120.0, 30, 300), touched.dropped) == ("live", 3)


def test_duplicate_probe_id_is_refused(store: Any) -> None:
    store.add_probe(probe("p1"))
    with pytest.raises(DuplicateError):
        store.add_probe(probe("p1"))


def test_hits_are_durable_once_add_hits_returns(store: Any) -> None:
    store.add_probe(probe("p1"))
    outcome = store.add_hits(source(), [hit(n=i) for i in range(50)], {}, 2000.0)
    assert (outcome.accepted, outcome.completed, outcome.declined) == (50, [], {})
    # another connection (another process after a crash) sees every hit of the batch
    assert raw(store, "SELECT count(*) FROM hits")[0][0] == 50


def test_hits_carry_the_source_and_the_probe_signature(store: Any) -> None:
    store.add_probe(probe("p1"))
    store.add_hits(source(), [hit()], {}, 2000.0)
    import json

    stored = json.loads(store.read_hits(probe_id="p1")[0].body)
    assert stored["signature"] == "sig-p1"
    assert stored["source"] == {
        "id": "s1",
        "service": "shop",
        "version": "1.0",
        "host": "h1",
        "pid": 7,
    }


def test_retried_batch_is_not_stored_twice(store: Any) -> None:
    store.add_probe(probe("p1"))
    batch = [hit(n=i) for i in range(5)]
    store.add_hits(source(), batch, {}, 2000.0)
    outcome = store.add_hits(source(), [hit(n=i) for i in range(5)], {}, 2001.0)
    assert (outcome.accepted, outcome.declined) == (5, {})
    assert len(store.read_hits(probe_id="p1")) == 5
    assert store.get_probe("p1").hit_count == 5  # type: ignore[union-attr]


def test_hits_of_unknown_probes_are_not_accepted(store: Any) -> None:
    outcome = store.add_hits(source(), [hit("nope")], {}, 2000.0)
    assert (outcome.accepted, outcome.declined) == (0, {"nope": {"unknown_probe": 1}})
    assert store.read_hits() == []


def test_probe_completes_at_max_hits_and_extra_hits_are_discarded(store: Any) -> None:
    store.add_probe(probe("p1", max_hits=3))
    outcome = store.add_hits(source(), [hit(n=i) for i in range(5)], {}, 2000.0)
    assert (outcome.accepted, outcome.completed) == (3, ["p1"])
    assert outcome.declined == {"p1": {"max_hits": 2}}
    record = store.get_probe("p1")
    assert record is not None
    assert (record.state, record.hit_count, record.ended_at) == ("completed", 3, 2000.0)
    assert record.ended_reason == "max_hits: 3 hits stored (limits.max_hits is 3)"
    outcome = store.add_hits(source(), [hit(n=9)], {}, 2001.0)
    assert (outcome.accepted, outcome.completed) == (0, [])
    assert outcome.declined == {"p1": {"max_hits": 1}}
    assert store.active_probes() == []


def test_hub_wide_cap_bounds_hits_per_probe(store: Any) -> None:
    store.add_probe(probe("p1"))
    outcome = store.add_hits(
        source(), [hit(n=i) for i in range(10)], {}, 2000.0, max_hits_per_probe=4
    )
    assert (outcome.accepted, outcome.completed) == (4, ["p1"])
    assert outcome.declined == {"p1": {"max_hits": 6}}


def test_drop_counts_add_up_per_probe(store: Any) -> None:
    store.add_probe(probe("p1"))
    store.add_hits(source(), [], {"p1": 4}, 2000.0)
    store.add_hits(source(), [hit()], {"p1": 2}, 2001.0)
    assert store.get_probe("p1").dropped == 6  # type: ignore[union-attr]


def test_a_numbered_batch_sent_again_counts_its_drops_once(store: Any) -> None:
    store.add_probe(probe("p1"))
    store.register_source(source())
    store.register_source(source("s2"))
    store.add_hits(source(), [], {"p1": 4}, 2000.0, number=1)
    store.add_hits(source(), [], {"p1": 4}, 2001.0, number=1)  # its answer was lost: again
    assert store.get_probe("p1").dropped == 4  # type: ignore[union-attr]
    store.add_hits(source(), [], {"p1": 6}, 2002.0, number=1)  # again, 2 more dropped since
    assert store.get_probe("p1").dropped == 6  # type: ignore[union-attr]
    store.add_hits(source(), [hit()], {"p1": 1}, 2003.0, number=2)
    store.add_hits(source(), [hit()], {"p1": 1}, 2004.0, number=2)
    store.add_hits(source(), [], {"p1": 4}, 2005.0, number=3)  # the next batch: counted
    store.add_hits(source("s2"), [], {"p1": 4}, 2005.0, number=3)  # another source's
    record = store.get_probe("p1")
    assert (record.hit_count, record.dropped) == (1, 15)  # type: ignore[union-attr]


def test_read_hits_pages_and_filters(store: Any) -> None:
    store.add_probe(probe("p1"))
    store.add_probe(probe("p2"))
    store.add_hits(source("s1"), [hit(n=i) for i in range(6)], {}, 2000.0)
    store.add_hits(source("s2"), [hit(n=i) for i in range(6, 10)], {}, 2000.0)
    store.add_hits(source("s1"), [hit("p2", n=i) for i in range(3)], {}, 2000.0)
    first = store.read_hits(probe_id="p1", limit=4)
    second = store.read_hits(probe_id="p1", limit=100, after=first[-1].seq)
    assert len(first) == 4
    assert len(second) == 6
    assert store.read_hits(probe_id="p1", after=second[-1].seq) == []
    assert len(store.read_hits(probe_id="p1", source_id="s2")) == 4
    assert len(store.read_hits(probe_id="p1", since=1002.0, until=1005.0)) == 3
    assert len(store.read_hits(signature="sig-p2")) == 3


def test_find_hits_reads_one_hit_id_of_one_probe(store: Any) -> None:
    store.add_probe(probe("p1"))
    store.add_probe(probe("p2"))
    store.add_hits(source("s1"), [hit(n=i) for i in range(50)], {}, 2000.0)
    store.add_hits(source("s1"), [hit("p2", n=7)], {}, 2000.0)
    store.add_hits(source("s2"), [hit(n=7)], {}, 2001.0)  # another source, the same hit id
    found = store.find_hits("p1", "h-7")
    assert [json.loads(row.body)["source"]["id"] for row in found] == ["s1", "s2"]
    assert found[0].seq < found[1].seq
    assert all(json.loads(row.body)["probe_id"] == "p1" for row in found)
    assert store.find_hits("p1", "h-99") == []
    assert store.find_hits("p3", "h-7") == []


def test_statuses_are_kept_per_source_for_known_probes(store: Any) -> None:
    store.add_probe(probe("p1"))
    store.set_statuses("s1", [{"probe_id": "p1", "state": "installed"}], 10.0)
    store.set_statuses("s2", [{"probe_id": "p1", "state": "error", "reason": "x"}], 10.0)
    store.set_statuses("s1", [{"probe_id": "ghost", "state": "installed"}], 10.0)
    record = store.get_probe("p1")
    assert record is not None
    assert sorted(record.statuses) == ["s1", "s2"]
    assert record.statuses["s2"]["reason"] == "x"


def test_expire_probes_ends_only_due_active_probes(store: Any) -> None:
    store.add_probe(probe("due", expires_at=150.0))
    store.add_probe(probe("later", expires_at=500.0))
    store.add_probe(probe("forever"))
    assert store.expire_probes(200.0) == ["due"]
    assert store.expire_probes(200.0) == []
    assert [p.id for p in store.active_probes()] == ["forever", "later"]
    assert store.get_probe("due").state == "expired"  # type: ignore[union-attr]


def test_end_probe_does_not_change_an_ended_probe(store: Any) -> None:
    store.add_probe(probe("p1", expires_at=1.0))
    store.expire_probes(10.0)
    record = store.end_probe("p1", "removed", 20.0)
    assert record is not None
    assert record.state == "expired"
    assert store.end_probe("ghost", "removed", 20.0) is None


def test_retention_deletes_hits_older_than_max_age(store: Any) -> None:
    store.add_probe(probe("p1"))
    store.add_hits(source(), [hit(n=0)], {}, now=1000.0)
    store.add_hits(source(), [hit(n=1)], {}, now=5000.0)
    assert store.apply_retention(now=6000.0, max_age=2000.0) == 1
    assert len(store.read_hits()) == 1
    assert store.apply_retention(now=6000.0, max_age=None) == 0


def test_retention_forgets_ended_probes_once_their_hits_are_gone(store: Any) -> None:
    store.register_source(source("s1", last_seen=5500.0))
    for probe_id in ("old", "old_with_hits", "recent", "active"):
        store.add_probe(probe(probe_id, created_at=500.0))
    store.add_hits(source(), [hit("old_with_hits", n=0)], {}, now=5000.0)
    store.set_statuses("s1", [{"probe_id": "old", "state": "installed"}], 900.0)
    store.end_probe("old", "removed", 1000.0)
    store.end_probe("old_with_hits", "removed", 1000.0)
    store.end_probe("recent", "removed", 5000.0)
    store.apply_retention(now=6000.0, max_age=2000.0)
    # ended before the cutoff with no hit left: gone (its statuses too); a probe whose hits are
    # still kept, one that ended after the cutoff, and an active one stay
    assert store.get_probe("old") is None
    assert sorted(p.id for p in store.list_probes()) == ["active", "old_with_hits", "recent"]
    assert store.apply_retention(now=8000.0, max_age=2000.0) == 1  # its hit ages out...
    assert store.get_probe("old_with_hits") is None  # ...and the probe goes with it
    assert store.get_probe("active") is not None


def test_retention_forgets_sources_silent_for_longer_than_max_age(store: Any) -> None:
    store.add_probe(probe("p1"))
    store.register_source(source("old", last_seen=1000.0))
    store.register_source(source("recent", last_seen=5000.0))
    store.set_statuses("old", [{"probe_id": "p1", "state": "installed"}], 1000.0)
    store.apply_retention(now=6000.0, max_age=2000.0)
    assert [s.id for s in store.list_sources()] == ["recent"]
    assert store.get_probe("p1").statuses == {}  # type: ignore[union-attr]


def test_open_store_accepts_paths_and_sqlite_urls(tmp_path: Path) -> None:
    url_store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    url_store.close()
    assert (tmp_path / "a.db").exists()
    with pytest.raises(ConfigError, match="scheme 'mysql'"):
        open_store("mysql://localhost/hub")


@pytest.mark.parametrize(
    "location",
    [
        "mysql://x/y",
        Path("mysql://x/y"),  # a Path folds "//" to "/": the scheme must still be seen
        "mysql:/x/y",
        "mysql:x",
        "postgres:/hub",
        "PostgreSQL:/hub",
        "sqlite://hub.db",
        Path("sqlite://hub.db"),
        "file:hub.db",
    ],
    ids=str,
)
def test_a_url_of_an_unsupported_form_is_refused_never_opened_as_a_file(
    location: str | Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    scheme = str(location).split(":", 1)[0]
    with pytest.raises(ConfigError, match=f"scheme {scheme!r}") as raised:
        open_store(location)
    assert "sqlite:///path" in str(raised.value)
    assert "postgresql://" in str(raised.value)
    assert list(tmp_path.iterdir()) == []  # no file was created from the URL


def test_a_file_whose_name_has_a_colon_opens_when_written_as_a_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for location in ("./odd:name.db", str(tmp_path / "odd:abs.db"), "sqlite:///odd:url.db"):
        open_store(location).close()
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".db") == [
        "odd:abs.db",
        "odd:name.db",
        "odd:url.db",
    ]


def test_open_store_opens_postgresql_urls(postgres_url: str) -> None:
    from sensor.hub.store.postgres import PostgresStore

    opened = open_store(postgres_url)
    try:
        assert isinstance(opened, PostgresStore)
        opened.add_probe(probe("p1"))
        assert [p.id for p in opened.active_probes()] == ["p1"]
    finally:
        opened.close()


def test_unreachable_postgresql_names_the_server_without_its_password() -> None:
    with pytest.raises(StoreError) as caught:
        open_store("postgresql://hub:s3cret@127.0.0.1:1/hub")
    message = str(caught.value)
    assert "cannot open the hub database postgresql://hub:***@127.0.0.1:1/hub" in message
    assert "s3cret" not in message


def test_unopenable_database_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open the hub database"):
        SQLiteStore(blocker / "hub.db")


def test_batch_of_thousands_is_one_transaction(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # One commit (one fsync) per batch, not per hit: counted, not timed (a loaded machine is
    # slow either way; the cost of a batch is bench/bench_hub_ingest.py's).
    store.add_probe(probe("p1"))
    batch = [hit(n=i) for i in range(2000)]
    # Each call of these is one transaction (SQLite's BEGIN IMMEDIATE .. COMMIT; PostgreSQL's
    # connection.transaction(), retried whole on a deadlock).
    name = "_transaction" if isinstance(store, SQLiteStore) else "_run"
    run = getattr(store, name)
    transactions: list[str] = []

    def counted(what: str, *args: Any, **kwargs: Any) -> Any:
        transactions.append(what)
        return run(what, *args, **kwargs)

    monkeypatch.setattr(store, name, counted)
    outcome = store.add_hits(source(), batch, {}, 2000.0)
    assert outcome.accepted == 2000
    assert transactions == ["store hits"]
    assert raw(store, "SELECT count(*) FROM hits")[0][0] == 2000


def test_a_batch_of_hits_is_a_sign_of_life(store: Any) -> None:
    store.register_source(source("s1", last_seen=100.0))
    store.add_hits(source("s1"), [], {}, now=900.0)
    assert store.get_source("s1").last_seen == 900.0  # type: ignore[union-attr]


def test_soft_state_relaxes_fsync_only_for_its_own_transaction(
    sqlite_store: Any,
) -> None:
    sqlite_store.register_source(source("s1"))
    sqlite_store.touch_source("s1", 200.0)
    # back to FULL (2) for hits, probes and tokens
    assert sqlite_store._db.execute("PRAGMA synchronous").fetchone()[0] == 2


# -- schema migrations (both stores) ----------------------------------------------------------


def _reopen(store: Any) -> Any:
    if isinstance(store, SQLiteStore):
        return SQLiteStore(store.path)
    from sensor.hub.store.postgres import PostgresStore

    return PostgresStore(store.url)


def test_a_new_database_is_at_the_latest_schema_version(store: Any) -> None:
    from sensor.hub.store import postgres, sqlite

    assert len(sqlite.MIGRATIONS) == len(postgres.MIGRATIONS)  # the same numbers on both
    assert store.schema_version == len(sqlite.MIGRATIONS)
    rows = raw(store, "SELECT version, description FROM schema_version ORDER BY version")
    assert [row[0] for row in rows] == list(range(1, len(sqlite.MIGRATIONS) + 1))
    assert all(row[1] for row in rows)


def test_reopening_applies_nothing_twice(store: Any) -> None:
    store.add_probe(probe("p1"))
    again = _reopen(store)
    try:
        assert again.schema_version == store.schema_version
        assert raw(store, "SELECT count(*) FROM schema_version")[0][0] == store.schema_version
        assert [p.id for p in again.active_probes()] == ["p1"]
    finally:
        again.close()


def test_a_newer_schema_is_refused_naming_both_versions(store: Any) -> None:
    from sensor.hub.store.migrations import SchemaTooNewError

    known = store.schema_version
    raw(
        store,
        "INSERT INTO schema_version (version, applied_at, description) VALUES (?, ?, ?)",
        (known + 5, 1.0, "from the future"),
    )
    with pytest.raises(SchemaTooNewError) as caught:
        _reopen(store)
    message = str(caught.value)
    assert f"schema version {known + 5} is newer than this hub's {known}" in message
    assert (caught.value.found, caught.value.known) == (known + 5, known)


def test_a_refused_open_leaves_no_connection_open(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    known = store.schema_version
    raw(
        store,
        "INSERT INTO schema_version (version, applied_at, description) VALUES (?, ?, ?)",
        (known + 1, 1.0, "from the future"),
    )
    if isinstance(store, SQLiteStore):
        opened: list[sqlite3.Connection] = []
        connect = sqlite3.connect

        def recording_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            opened.append(connect(*args, **kwargs))
            return opened[-1]

        monkeypatch.setattr(sqlite3, "connect", recording_connect)
        with pytest.raises(StoreError):
            _reopen(store)
        monkeypatch.undo()
        assert len(opened) == 1
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            opened[0].execute("SELECT 1")
        return
    count = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    before = raw(store, count)[0][0]
    refusals = []  # kept: their tracebacks hold the half-opened stores, as a caller's log would
    for _ in range(3):
        with pytest.raises(StoreError) as caught:
            _reopen(store)
        refusals.append(caught)
    # each raw() is a connection of its own, closed when it returns: only leaks would add up
    assert wait_for(lambda: raw(store, count)[0][0] <= before, 5.0), raw(store, count)


def wait_for(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def test_a_sqlite_file_of_the_first_release_is_migrated_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    # the first release's tables: no version table, no tokens.services, no probes.ended_reason
    old.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '1');
        CREATE TABLE tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL, scope TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL);
        CREATE TABLE probes (id TEXT PRIMARY KEY, signature TEXT NOT NULL, probe TEXT NOT NULL,
            selector TEXT NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL,
            expires_at REAL, ended_at REAL, max_hits INTEGER,
            hit_count INTEGER NOT NULL DEFAULT 0, dropped INTEGER NOT NULL DEFAULT 0);
        INSERT INTO tokens VALUES ('t1', 'old', 'client', 'abc', 1.0);
        INSERT INTO probes (id, signature, probe, selector, state, created_at)
            VALUES ('p1', 'sig', '{"id": "p1"}', '{}', 'active', 1.0);
        """
    )
    old.close()
    store = SQLiteStore(path)
    try:
        assert store.schema_version == len(MIGRATIONS)  # the latest
        assert [(t.id, t.services) for t in store.list_tokens()] == [("t1", None)]
        assert [p.standing for p in store.list_probes()] == [False]  # version 3's column
        record = store.end_probe("p1", "removed", 5.0, "gone")
        assert record is not None
        assert record.ended_reason == "gone"  # the column added by version 2
        assert store.standing_summary("p1") == []  # version 3's tables
    finally:
        store.close()


def test_a_sqlite_file_of_standing_probes_before_migrations_is_migrated(tmp_path: Path) -> None:
    # The hub of issue 13 (before the version table) added probes.standing, strata and
    # reservoir at open: step 3 must accept them as they are and keep their rows.
    path = tmp_path / "standing.db"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO meta VALUES ('schema', '2');
        CREATE TABLE tokens (id TEXT PRIMARY KEY, name TEXT NOT NULL, scope TEXT NOT NULL,
            token_hash TEXT NOT NULL UNIQUE, created_at REAL NOT NULL, services TEXT);
        CREATE TABLE probes (id TEXT PRIMARY KEY, signature TEXT NOT NULL, probe TEXT NOT NULL,
            selector TEXT NOT NULL, state TEXT NOT NULL, created_at REAL NOT NULL,
            expires_at REAL, ended_at REAL, max_hits INTEGER,
            hit_count INTEGER NOT NULL DEFAULT 0, dropped INTEGER NOT NULL DEFAULT 0,
            ended_reason TEXT, standing INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE hits (seq INTEGER PRIMARY KEY AUTOINCREMENT, probe_id TEXT NOT NULL,
            signature TEXT NOT NULL, source_id TEXT NOT NULL, hit_id TEXT, ts REAL NOT NULL,
            received_at REAL NOT NULL, body TEXT NOT NULL);
        CREATE TABLE strata (probe_id TEXT NOT NULL, version TEXT NOT NULL,
            stratum TEXT NOT NULL, seen INTEGER NOT NULL, kept INTEGER NOT NULL,
            first_seen REAL NOT NULL, last_seen REAL NOT NULL,
            PRIMARY KEY (probe_id, version, stratum));
        CREATE TABLE reservoir (seq INTEGER PRIMARY KEY, probe_id TEXT NOT NULL,
            version TEXT NOT NULL, stratum TEXT NOT NULL);
        INSERT INTO probes (id, signature, probe, selector, state, created_at, standing)
            VALUES ('sp', 'sig', '{"id": "sp"}', '{}', 'active', 1.0, 1);
        INSERT INTO hits (probe_id, signature, source_id, hit_id, ts, received_at, body)
            VALUES ('sp', 'sig', 's1', 'h-1', 1.0, 2.0, '{"probe_id": "sp"}');
        INSERT INTO strata VALUES ('sp', '1.0', 'ok', 7, 1, 2.0, 3.0);
        INSERT INTO reservoir VALUES (1, 'sp', '1.0', 'ok');
        """
    )
    old.close()
    store = SQLiteStore(path)
    try:
        assert store.schema_version == len(MIGRATIONS)  # the latest
        assert [(p.id, p.standing) for p in store.list_probes(standing=True)] == [("sp", True)]
        summary = store.standing_summary("sp")
        assert [(v.version, v.seen, v.kept, v.strata) for v in summary] == [("1.0", 7, 1, 1)]
        assert [row.seq for row in store.find_hits("sp", "h-1")] == [1]
    finally:
        store.close()


def test_a_postgresql_database_at_version_2_gains_standing_probes(postgres_url: str) -> None:
    import psycopg

    from sensor.hub.store import postgres

    # a database the hub of version 2 migrated (before standing probes), with one probe
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
            "applied_at DOUBLE PRECISION NOT NULL, description TEXT NOT NULL)"
        )
        for step in postgres.MIGRATIONS[:2]:
            step.apply(conn)
            conn.execute(
                "INSERT INTO schema_version VALUES (%s, 1.0, %s)", (step.version, step.description)
            )
        conn.execute(
            "INSERT INTO probes (id, signature, probe, selector, state, created_at) "
            "VALUES ('p1', 'sig', '{\"id\": \"p1\"}', '{}', 'active', 1.0)"
        )
    store = postgres.PostgresStore(postgres_url)
    try:
        assert store.schema_version == len(MIGRATIONS)  # the latest
        assert [(p.id, p.standing) for p in store.list_probes()] == [("p1", False)]
        assert store.list_probes(standing=True) == []
        assert store.standing_summary("p1") == []
    finally:
        store.close()


def test_replicas_starting_at_once_migrate_once(postgres_url: str) -> None:
    import threading

    from sensor.hub.store.postgres import PostgresStore

    opened: list[Any] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(PostgresStore(postgres_url))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert raw(opened[0], "SELECT count(*) FROM schema_version")[0][0] == len(MIGRATIONS)
    finally:
        for item in opened:
            item.close()


# -- records another program wrote (both stores) ---------------------------------------------


def test_unreadable_rows_are_quarantined_not_served(store: Any) -> None:
    store.add_probe(probe("good"))
    store.add_hits(source(), [hit("good")], {}, 2000.0)
    raw(
        store,
        "INSERT INTO probes (id, signature, probe, selector, state, created_at) "
        "VALUES ('bad', 'sig', '{not json', '{}', 'active', 1.0)",
    )
    raw(
        store,
        "INSERT INTO sources (id, service, labels, first_seen, last_seen) "
        "VALUES ('bad-source', 'shop', '[1]', 1.0, 1.0)",
    )
    raw(
        store,
        "INSERT INTO hits (probe_id, signature, source_id, hit_id, ts, received_at, body) "
        "VALUES ('good', 'sig', 'x', 'bad', 1, 1, '[1, 2]')",
    )
    quarantined: list[tuple[str, str]] = []
    assert [p.id for p in store.active_probes(quarantined=quarantined)] == ["good"]
    assert quarantined == [("bad", quarantined[0][1])]
    assert "not JSON" in quarantined[0][1]
    quarantined.clear()
    assert store.list_sources(quarantined=quarantined) == []
    assert [q[0] for q in quarantined] == ["bad-source"]
    quarantined.clear()
    assert len(store.read_hits(probe_id="good", quarantined=quarantined)) == 1
    assert [q[1] for q in quarantined] == ["its body is not a JSON object"]


# -- several hub replicas on one PostgreSQL database -----------------------------------------


def test_replicas_never_store_more_than_max_hits_together(postgres_url: str) -> None:
    import threading

    from sensor.hub.store.postgres import PostgresStore

    stores = [PostgresStore(postgres_url) for _ in range(3)]
    try:
        stores[0].add_probe(probe("p1", max_hits=250))
        outcomes: list[Any] = []

        def post(index: int) -> None:
            for batch in range(4):
                hits = [hit(n=index * 1000 + batch * 100 + i) for i in range(100)]
                outcomes.append(stores[index].add_hits(source(f"s{index}"), hits, {}, 2000.0))

        threads = [threading.Thread(target=post, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        record = stores[1].get_probe("p1")
        assert record is not None
        assert (record.state, record.hit_count) == ("completed", 250)
        assert raw(stores[0], "SELECT count(*) FROM hits")[0][0] == 250
        assert sum(o.accepted for o in outcomes) == 250
        assert sum(o.declined_total for o in outcomes) == 1200 - 250
        assert sum(len(o.completed) for o in outcomes) == 1  # exactly one batch completed it
    finally:
        for item in stores:
            item.close()


@pytest.mark.parametrize("change", ["removed", "filled"])
def test_hits_written_before_the_probe_lock_are_undone_when_the_probe_changed(
    postgres_url: str, change: str
) -> None:
    """A replica writes a far-from-full probe's hits before it takes the probe's row lock;
    another replica ends or fills the probe meanwhile: the early rows are rolled back and the
    batch is counted again under the lock (declined), so no hit is stored past the end."""
    import threading

    import psycopg

    from sensor.hub.store.postgres import PostgresStore

    store = PostgresStore(postgres_url)
    try:
        store.add_probe(probe("p1", max_hits=10))
        store.register_source(source())
        outcome: list[Any] = []
        with psycopg.connect(postgres_url) as other:  # another replica, inside a transaction
            other.execute("SELECT 1 FROM probes WHERE id = 'p1' FOR UPDATE")
            hits = [hit(n=i) for i in range(5)]
            thread = threading.Thread(
                target=lambda: outcome.append(store.add_hits(source(), hits, {}, 2000.0))
            )
            thread.start()
            deadline = time.monotonic() + 30
            with psycopg.connect(postgres_url, autocommit=True) as watcher:
                while time.monotonic() < deadline:  # the ingest waits for the row lock
                    (waiting,) = watcher.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND pid = ANY(%s)",
                        (sorted(store._pids),),  # the ingest's own connection, no other test's
                    ).fetchone()  # type: ignore[misc]
                    if waiting:
                        break
                    time.sleep(0.02)
                assert waiting, "the ingest never waited for the probe's lock"
            if change == "removed":
                other.execute("UPDATE probes SET state = 'removed' WHERE id = 'p1'")
            else:
                other.execute("UPDATE probes SET hit_count = 8 WHERE id = 'p1'")
            other.commit()
            thread.join(30)
        (result,) = outcome
        record = store.get_probe("p1")
        assert record is not None
        stored = [row.body for row in store.read_hits(probe_id="p1")]
        if change == "removed":
            assert (result.accepted, result.declined) == (0, {"p1": {"probe_removed": 5}})
            assert (stored, record.hit_count) == ([], 0)
        else:
            assert (result.accepted, result.declined) == (2, {"p1": {"max_hits": 3}})
            assert (len(stored), record.hit_count, record.state) == (2, 10, "completed")
    finally:
        store.close()


def listening(url: str, *stores: Any) -> bool:
    """True once each store's change listener has run its LISTEN."""
    import psycopg

    conns = [store._listen_conn for store in stores]
    if any(conn is None for conn in conns):
        return False
    pids = [conn.info.backend_pid for conn in conns]
    with psycopg.connect(url, autocommit=True) as watcher:
        (ready,) = watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s) AND state = 'idle' "
            "AND query ILIKE 'LISTEN %%'",
            (pids,),
        ).fetchone()  # type: ignore[misc]
    return bool(ready == len(pids))


def test_each_replica_hears_the_others_changes_not_its_own(postgres_url: str) -> None:
    import queue

    from sensor.hub.auth import new_token_record as token_record
    from sensor.hub.store import RedactionRecord
    from sensor.hub.store.postgres import PostgresStore

    first, second = PostgresStore(postgres_url), PostgresStore(postgres_url)
    heard: queue.Queue[tuple[str, str]] = queue.Queue()
    try:
        first.watch(lambda event: heard.put(("first", event)))
        second.watch(lambda event: heard.put(("second", event)))
        # Both listeners are connected and listening: waited for, not slept for (0.5 s was not
        # always enough for two connections on a loaded machine, and the first event was lost).
        assert wait_for(lambda: listening(postgres_url, first, second), 30.0)
        token = token_record("ci", "client", "secret")
        first.add_token(token)
        first.add_probe(probe("p1", max_hits=1))
        assert heard.get(timeout=5) == ("second", "probes")
        second.add_hits(source(), [hit("p1")], {}, 2000.0)  # completes p1
        assert heard.get(timeout=5) == ("first", "probes")
        second.set_redaction(RedactionRecord(["pin"], [], [], 1.0))
        assert heard.get(timeout=5) == ("first", "redaction")
        second.remove_token(token.id)
        assert heard.get(timeout=5) == ("first", f"token:{token.id}")
        first.add_probe(probe("p2", expires_at=10.0))
        assert heard.get(timeout=5) == ("second", "probes")
        assert second.expire_probes(20.0) == ["p2"]
        assert heard.get(timeout=5) == ("first", "probes")
        assert first.end_probe("p2", "removed", 30.0) is not None  # ended already: no event
        time.sleep(0.3)
        assert heard.empty()
    finally:
        first.close()
        second.close()


def test_retention_runs_on_one_replica_at_a_time(postgres_url: str) -> None:
    import psycopg

    from sensor.hub.store.postgres import _RETENTION_LOCK, PostgresStore

    store = PostgresStore(postgres_url)
    try:
        store.add_probe(probe("p1"))
        store.add_hits(source(), [hit(n=0)], {}, now=1000.0)
        with psycopg.connect(postgres_url) as other:
            other.execute("SELECT pg_advisory_xact_lock(%s)", (_RETENTION_LOCK,))
            assert store.apply_retention(now=6000.0, max_age=10.0) == 0  # another replica's turn
        assert store.apply_retention(now=6000.0, max_age=10.0) == 1
    finally:
        store.close()


def test_a_batch_lists_the_hits_it_stored_for_export(store: Any) -> None:
    store.add_probe(probe("p1", max_hits=3))
    outcome = store.add_hits(source(), [hit(n=i) for i in range(5)], {}, 2000.0)
    assert [h["hit_id"] for h in outcome.stored] == ["h-0", "h-1", "h-2"]  # not the declined
    assert all(h["signature"] == "sig-p1" and h["source"]["id"] == "s1" for h in outcome.stored)
    store.add_probe(probe("p2"))
    first = store.add_hits(source(), [hit("p2", n=i) for i in range(2)], {}, 2000.0)
    again = store.add_hits(source(), [hit("p2", n=i) for i in range(2)], {}, 2001.0)
    assert (len(first.stored), again.accepted, again.stored) == (2, 2, [])  # a retry: none


def test_hits_keep_the_order_of_their_batch(store: Any) -> None:
    store.add_probe(probe("p1"))
    order = [f"h-{n}" for n in (5, 1, 9, 3, 7, 0, 2, 8, 4, 6)]
    store.add_hits(source(), [{**hit(n=i), "hit_id": hit_id} for i, hit_id in enumerate(order)],
                   {}, 2000.0)  # fmt: skip
    import json

    assert [json.loads(row.body)["hit_id"] for row in store.read_hits(probe_id="p1")] == order


def test_touch_sources_writes_many_last_seen_times_never_backwards(store: Any) -> None:
    for source_id in ("a", "b", "c"):
        store.register_source(source(source_id, last_seen=100.0))
    store.deregister_source("b", 150.0)
    store.add_hits(source("c"), [], {}, now=900.0)  # a batch of hits: seen at 900
    store.touch_sources({"a": 500.0, "b": 500.0, "c": 400.0, "unknown": 1.0})
    seen = {s.id: (s.last_seen, s.deregistered) for s in store.list_sources()}
    assert seen == {"a": (500.0, False), "b": (500.0, False), "c": (900.0, False)}
