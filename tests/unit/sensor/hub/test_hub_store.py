"""The SQLite store: durability, batches, max hits, paging, expiry and retention."""

from __future__ import annotations

import json
import sqlite3
import time
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
from sensor.hub.store.sqlite import SQLiteStore


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


@pytest.fixture
def store(tmp_path: Path) -> Any:
    opened = SQLiteStore(tmp_path / "hub.db")
    yield opened
    opened.close()


def test_store_uses_wal_journal(store: SQLiteStore) -> None:
    mode = store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_tokens_are_found_by_hash_and_removed(store: SQLiteStore) -> None:
    record = new_token_record("ci", "client", "secret-1")
    store.add_token(record)
    assert store.find_token(hash_token("secret-1")) == record
    assert store.find_token(hash_token("secret-2")) is None
    assert [t.id for t in store.list_tokens()] == [record.id]
    assert store.remove_token(record.id) is True
    assert store.remove_token(record.id) is False
    assert store.find_token(hash_token("secret-1")) is None


def test_token_secret_is_never_stored(store: SQLiteStore, tmp_path: Path) -> None:
    store.add_token(new_token_record("ci", "client", "very-secret-value"))
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"very-secret-value" not in raw
    assert hash_token("very-secret-value").encode() in raw


def test_register_with_known_runtime_id_keeps_the_source_id(store: SQLiteStore) -> None:
    first = store.register_source(source("a", runtime_id="rt-1"))
    again = store.register_source(source("b", runtime_id="rt-1", last_seen=200.0, pid=8))
    assert again.id == first.id == "a"
    assert again.first_seen == 100.0
    assert [s.id for s in store.list_sources()] == ["a"]
    assert store.get_source("a").pid == 8  # type: ignore[union-attr]


def test_source_state_follows_last_seen_and_deregistration(store: SQLiteStore) -> None:
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


def test_duplicate_probe_id_is_refused(store: SQLiteStore) -> None:
    store.add_probe(probe("p1"))
    with pytest.raises(DuplicateError):
        store.add_probe(probe("p1"))


def test_hits_are_durable_once_add_hits_returns(tmp_path: Path) -> None:
    path = tmp_path / "durable.db"
    store = SQLiteStore(path)
    store.add_probe(probe("p1"))
    outcome = store.add_hits(source(), [hit(n=i) for i in range(50)], {}, 2000.0)
    assert (outcome.accepted, outcome.completed, outcome.declined) == (50, [], {})
    # another connection (another process after a crash) sees every hit of the batch
    other = sqlite3.connect(path)
    assert other.execute("SELECT count(*) FROM hits").fetchone()[0] == 50
    other.close()
    store.close()


def test_hits_carry_the_source_and_the_probe_signature(store: SQLiteStore) -> None:
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


def test_retried_batch_is_not_stored_twice(store: SQLiteStore) -> None:
    store.add_probe(probe("p1"))
    batch = [hit(n=i) for i in range(5)]
    store.add_hits(source(), batch, {}, 2000.0)
    outcome = store.add_hits(source(), [hit(n=i) for i in range(5)], {}, 2001.0)
    assert (outcome.accepted, outcome.declined) == (5, {})
    assert len(store.read_hits(probe_id="p1")) == 5
    assert store.get_probe("p1").hit_count == 5  # type: ignore[union-attr]


def test_hits_of_unknown_probes_are_not_accepted(store: SQLiteStore) -> None:
    outcome = store.add_hits(source(), [hit("nope")], {}, 2000.0)
    assert (outcome.accepted, outcome.declined) == (0, {"nope": {"unknown_probe": 1}})
    assert store.read_hits() == []


def test_probe_completes_at_max_hits_and_extra_hits_are_discarded(store: SQLiteStore) -> None:
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


def test_hub_wide_cap_bounds_hits_per_probe(store: SQLiteStore) -> None:
    store.add_probe(probe("p1"))
    outcome = store.add_hits(
        source(), [hit(n=i) for i in range(10)], {}, 2000.0, max_hits_per_probe=4
    )
    assert (outcome.accepted, outcome.completed) == (4, ["p1"])
    assert outcome.declined == {"p1": {"max_hits": 6}}


def test_drop_counts_add_up_per_probe(store: SQLiteStore) -> None:
    store.add_probe(probe("p1"))
    store.add_hits(source(), [], {"p1": 4}, 2000.0)
    store.add_hits(source(), [hit()], {"p1": 2}, 2001.0)
    assert store.get_probe("p1").dropped == 6  # type: ignore[union-attr]


def test_read_hits_pages_and_filters(store: SQLiteStore) -> None:
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


def test_find_hits_reads_one_hit_id_of_one_probe(store: SQLiteStore) -> None:
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


def test_statuses_are_kept_per_source_for_known_probes(store: SQLiteStore) -> None:
    store.add_probe(probe("p1"))
    store.set_statuses("s1", [{"probe_id": "p1", "state": "installed"}], 10.0)
    store.set_statuses("s2", [{"probe_id": "p1", "state": "error", "reason": "x"}], 10.0)
    store.set_statuses("s1", [{"probe_id": "ghost", "state": "installed"}], 10.0)
    record = store.get_probe("p1")
    assert record is not None
    assert sorted(record.statuses) == ["s1", "s2"]
    assert record.statuses["s2"]["reason"] == "x"


def test_expire_probes_ends_only_due_active_probes(store: SQLiteStore) -> None:
    store.add_probe(probe("due", expires_at=150.0))
    store.add_probe(probe("later", expires_at=500.0))
    store.add_probe(probe("forever"))
    assert store.expire_probes(200.0) == ["due"]
    assert store.expire_probes(200.0) == []
    assert [p.id for p in store.active_probes()] == ["forever", "later"]
    assert store.get_probe("due").state == "expired"  # type: ignore[union-attr]


def test_end_probe_does_not_change_an_ended_probe(store: SQLiteStore) -> None:
    store.add_probe(probe("p1", expires_at=1.0))
    store.expire_probes(10.0)
    record = store.end_probe("p1", "removed", 20.0)
    assert record is not None
    assert record.state == "expired"
    assert store.end_probe("ghost", "removed", 20.0) is None


def test_retention_deletes_hits_older_than_max_age(store: SQLiteStore) -> None:
    store.add_probe(probe("p1"))
    store.add_hits(source(), [hit(n=0)], {}, now=1000.0)
    store.add_hits(source(), [hit(n=1)], {}, now=5000.0)
    assert store.apply_retention(now=6000.0, max_age=2000.0) == 1
    assert len(store.read_hits()) == 1
    assert store.apply_retention(now=6000.0, max_age=None) == 0


def test_retention_forgets_sources_silent_for_longer_than_max_age(store: SQLiteStore) -> None:
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
    with pytest.raises(ConfigError, match="PostgreSQL"):
        open_store("postgresql://localhost/hub")


def test_unopenable_database_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot open the hub database"):
        SQLiteStore(blocker / "hub.db")


def test_batch_of_thousands_is_one_quick_transaction(store: SQLiteStore) -> None:
    store.add_probe(probe("p1"))
    batch = [hit(n=i) for i in range(2000)]
    started = time.perf_counter()
    outcome = store.add_hits(source(), batch, {}, 2000.0)
    assert outcome.accepted == 2000
    assert time.perf_counter() - started < 2.0


def test_a_batch_of_hits_is_a_sign_of_life(store: SQLiteStore) -> None:
    store.register_source(source("s1", last_seen=100.0))
    store.add_hits(source("s1"), [], {}, now=900.0)
    assert store.get_source("s1").last_seen == 900.0  # type: ignore[union-attr]


def test_soft_state_relaxes_fsync_only_for_its_own_transaction(store: SQLiteStore) -> None:
    store.register_source(source("s1"))
    store.touch_source("s1", 200.0)
    # back to FULL (2) for hits, probes and tokens
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2
