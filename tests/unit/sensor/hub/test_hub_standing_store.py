"""Standing probes in both stores: no max hits, a bounded stratified sample per version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sensor.hub import strata
from sensor.hub.store import ProbeRecord, SourceRecord
from sensor.hub.store.sqlite import SQLiteStore


def source(source_id: str = "s1", version: str = "1.0") -> SourceRecord:
    return SourceRecord(
        id=source_id,
        service="shop",
        version=version,
        host="h1",
        pid=7,
        python="3.12.1",
        labels={},
        runtime_id=None,
        sensor_version="0.1",
        backend="monitoring",
        token_id="t1",
        first_seen=100.0,
        last_seen=100.0,
    )


def standing_probe(probe_id: str = "sp1") -> ProbeRecord:
    return ProbeRecord(
        id=probe_id,
        signature="sig-" + probe_id,
        probe={"id": probe_id, "kind": "snapshot", "limits": {}},
        selector={"service": "shop"},
        state="active",
        created_at=100.0,
        expires_at=None,
        standing=True,
    )


def shaped_hit(n: int, value: Any, probe_id: str = "sp1") -> dict[str, Any]:
    return {
        "probe_id": probe_id,
        "signature": "x",
        "kind": "snapshot",
        "location": "m:f@return",
        "ts": 1000.0 + n,
        "hit_id": f"h-{n}",
        "captures": {"price": value},
    }


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    # both stores sample the same way (the PostgreSQL one under the probe's row lock)
    opened: Any
    if request.param == "sqlite":
        opened = SQLiteStore(tmp_path / "hub.db")
    else:
        from sensor.hub.store.postgres import PostgresStore

        opened = PostgresStore(request.getfixturevalue("postgres_url"))
    yield opened
    opened.close()


def test_standing_flag_round_trips_and_filters(store: Any) -> None:
    store.add_probe(standing_probe("sp1"))
    store.add_probe(ProbeRecord("p2", "sig-p2", {"id": "p2"}, {}, "active", 1.0, 5.0))
    assert store.get_probe("sp1").standing is True  # type: ignore[union-attr]
    assert store.get_probe("p2").standing is False  # type: ignore[union-attr]
    assert [r.id for r in store.list_probes(standing=True)] == ["sp1"]
    assert [r.id for r in store.list_probes(standing=False)] == ["p2"]
    assert store.get_probe("sp1").to_dict()["standing"] is True  # type: ignore[union-attr]


def test_standing_probe_is_not_completed_by_the_hub_max_hits(store: Any) -> None:
    store.add_probe(standing_probe())
    src = source()
    store.register_source(src)
    hits = [shaped_hit(n, n) for n in range(50)]
    outcome = store.add_hits(src, hits, {}, 2000.0, max_hits_per_probe=10)
    assert outcome.accepted == 50
    assert not outcome.declined
    assert not outcome.completed
    record = store.get_probe("sp1")
    assert record is not None
    assert record.state == "active"
    assert record.hit_count == 50


def test_reservoir_keeps_a_rare_state_over_a_long_run(store: Any) -> None:
    """200,000 hits where one state shows 3 times: the bounded sample keeps all 3."""
    store.add_probe(standing_probe())
    src = source()
    store.register_source(src)
    total = 200_000
    rare_at = {total // 5, total // 2, total - 10}
    n = 0
    batch: list[dict[str, Any]] = []
    for n in range(total):
        value = None if n in rare_at else (n % 7) + 1  # None: the rare state
        batch.append(shaped_hit(n, value))
        if len(batch) == 5000:
            store.add_hits(src, batch, {}, 2000.0 + n)
            batch = []
    if batch:
        store.add_hits(src, batch, {}, 2000.0 + n)
    (summary,) = store.standing_summary("sp1")
    assert summary.seen == total
    assert summary.kept <= strata.RESERVOIR_CAP
    assert summary.strata == 2
    bodies = [row.body for row in store.read_hits(probe_id="sp1", limit=10_000)]
    assert len(bodies) == summary.kept
    rare = [body for body in bodies if '"price":null' in body]
    assert len(rare) == 3
    # the common state fills the rest of the bounded sample
    assert summary.kept == strata.RESERVOIR_CAP


def test_reservoir_bounds_the_number_of_versions(store: Any) -> None:
    store.add_probe(standing_probe())
    for number in range(strata.MAX_VERSIONS + 2):
        src = source(f"s{number}", version=f"1.{number}")
        store.register_source(src)
        hits = [shaped_hit(number * 100 + k, k) for k in range(20)]
        store.add_hits(src, hits, {}, 2000.0 + number)
    summaries = store.standing_summary("sp1")
    assert [s.version for s in summaries] == [
        f"1.{n}" for n in range(strata.MAX_VERSIONS + 1, 1, -1)
    ]
    kept = sum(s.kept for s in summaries)
    assert len(store.read_hits(probe_id="sp1", limit=10_000)) == kept


def test_retried_batch_is_not_counted_twice(store: Any) -> None:
    store.add_probe(standing_probe())
    src = source()
    store.register_source(src)
    hits = [shaped_hit(n, n) for n in range(5)]
    store.add_hits(src, [dict(h) for h in hits], {}, 2000.0)
    store.add_hits(src, [dict(h) for h in hits], {}, 2001.0)
    (summary,) = store.standing_summary("sp1")
    assert summary.seen == 5
    assert summary.kept == 5
    assert store.get_probe("sp1").hit_count == 5  # type: ignore[union-attr]


def test_retried_batch_counts_nothing_twice_after_the_sample_dropped_hits(store: Any) -> None:
    """The hub committed a batch but its answer was lost: the sensor sends the same batch again.

    Hits the full sample did not keep are not in ``hits`` any more, yet they were counted:
    the retry must not count them (``seen``, ``hit_count``) nor the drops again.
    """
    store.add_probe(standing_probe())
    src = source()
    store.register_source(src)
    hits = [shaped_hit(n, 1) for n in range(3 * strata.RESERVOIR_CAP)]
    store.add_hits(src, [dict(h) for h in hits], {"sp1": 4}, 2000.0)
    retried = store.add_hits(src, [dict(h) for h in hits], {"sp1": 4}, 2001.0)
    assert retried.accepted == len(hits)  # the sensor must not send them a third time
    assert retried.stored == []
    (summary,) = store.standing_summary("sp1")
    assert summary.seen == len(hits)
    assert summary.kept == strata.RESERVOIR_CAP
    record = store.get_probe("sp1")
    assert record is not None
    assert (record.hit_count, record.dropped) == (len(hits), 4)
    # the retry of a batch whose drop count grew meanwhile adds only the new drops
    store.add_hits(src, [dict(h) for h in hits], {"sp1": 6}, 2002.0)
    record = store.get_probe("sp1")
    assert record is not None
    assert (record.hit_count, record.dropped) == (len(hits), 6)
    # the next batch is new: counted
    more = [shaped_hit(n, 1) for n in range(len(hits), len(hits) + 10)]
    store.add_hits(src, more, {"sp1": 1}, 2003.0)
    (summary,) = store.standing_summary("sp1")
    assert summary.seen == len(hits) + 10
    record = store.get_probe("sp1")
    assert record is not None
    assert (record.hit_count, record.dropped) == (len(hits) + 10, 7)


def test_retried_batch_counts_drops_once_for_any_probe(store: Any) -> None:
    store.add_probe(ProbeRecord("p2", "sig-p2", {"id": "p2"}, {}, "active", 1.0, None))
    src = source()
    store.register_source(src)
    hits = [shaped_hit(n, n, probe_id="p2") for n in range(5)]
    for attempt in range(3):  # two answers lost
        outcome = store.add_hits(src, [dict(h) for h in hits], {"p2": 3}, 2000.0 + attempt)
        assert outcome.accepted == 5
    record = store.get_probe("p2")
    assert record is not None
    assert (record.hit_count, record.dropped) == (5, 3)


def test_retention_keeps_the_sample_of_a_version_still_reporting(store: Any) -> None:
    store.add_probe(standing_probe())
    old, live = source("s-old", version="0.9"), source("s-live", version="1.0")
    store.register_source(old)
    store.register_source(live)
    store.add_hits(old, [shaped_hit(1, 1)], {}, 1000.0)
    store.add_hits(live, [shaped_hit(2, 2)], {}, 1000.0)  # received long ago...
    store.add_hits(live, [shaped_hit(3, -2)], {}, 9000.0)  # ...but the version still reports
    store.apply_retention(10_000.0, max_age=5000.0)
    summaries = store.standing_summary("sp1")
    assert [s.version for s in summaries] == ["1.0"]
    assert summaries[0].kept == 2
    assert len(store.read_hits(probe_id="sp1", limit=100)) == 2


def test_stratum_tells_value_classes_and_outcomes_apart() -> None:
    base = {"captures": {"price": 3}}
    assert strata.stratum_of(base) == strata.stratum_of({"captures": {"price": 99}})
    assert strata.stratum_of(base) != strata.stratum_of({"captures": {"price": -1}})
    assert strata.stratum_of(base) != strata.stratum_of({"captures": {"price": None}})
    assert strata.stratum_of(base) != strata.stratum_of(
        {"captures": {"price": 3}, "expect": {"ok": False}}
    )
    dec = {"captures": {"price": {"@t": "decimal.Decimal", "v": "1.5"}}}
    assert strata.stratum_of(dec) != strata.stratum_of(base)
    assert strata.stratum_of(dec) != strata.stratum_of(
        {"captures": {"price": {"@t": "decimal.Decimal", "v": "-1.5"}}}
    )


# -- the HTTP side: placing a standing probe, listing, its summary --------------------------


def _place_standing(client: Any, **body: Any) -> Any:
    from hub_helpers import CLIENT, auth

    payload = {
        "probe": {"kind": "snapshot", "location": "shop.pricing:apply_discount"},
        "selector": {"service": "shop"},
        "standing": True,
        **body,
    }
    return client.post("/v1/probes", json=payload, headers=auth(CLIENT))


def test_standing_probe_has_no_ttl_and_reaches_sensors(client: Any) -> None:
    from hub_helpers import CLIENT, SENSOR, auth, poll, register

    answer = _place_standing(client)
    assert answer.status_code == 201, answer.text
    record = answer.json()["probe"]
    assert record["standing"] is True
    assert record["expires_at"] is None
    assert record["probe"]["limits"].get("expires_at") is None
    source_id = register(client, "shop", version="2.0")
    assert [p["id"] for p in poll(client, source_id)["probes"]] == [record["id"]]
    listed = client.get("/v1/probes", params={"standing": "true"}, headers=auth(CLIENT))
    assert [p["id"] for p in listed.json()["probes"]] == [record["id"]]
    hits = [
        {
            "probe_id": record["id"],
            "signature": record["signature"],
            "kind": "snapshot",
            "location": "shop.pricing:apply_discount@return",
            "ts": 1_700_000_000.0 + n,
            "hit_id": f"h-{n}",
            "captures": {"price": n},
        }
        for n in range(3)
    ]
    posted = client.post(f"/v1/sensors/{source_id}/hits", json={"hits": hits}, headers=auth(SENSOR))
    assert posted.status_code == 200, posted.text
    summary = client.get(f"/v1/probes/{record['id']}/standing", headers=auth(CLIENT)).json()
    (version,) = summary["versions"]
    assert version["version"] == "2.0"
    assert version["seen"] == 3
    assert version["kept"] == 3
    assert version["strata"] == 2  # price 0 (zero) and price 1, 2 (positive)


@pytest.mark.parametrize(
    ("body", "code", "named"),
    [
        ({"ttl": 60}, "invalid_field", "ttl"),
        ({"selector": {}}, "invalid_selector", "selector.service"),
        (
            {"probe": {"kind": "snapshot", "location": "m:f", "limits": {"max_hits": 5}}},
            "invalid_probe",
            "limits.max_hits",
        ),
    ],
)
def test_standing_probe_refuses_what_would_end_it(
    client: Any, body: dict[str, Any], code: str, named: str
) -> None:
    answer = _place_standing(client, **body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == code
    assert named in error["message"]


def test_summary_sums_the_sensors_counters_per_version(store: Any) -> None:
    store.add_probe(standing_probe())
    sources = [source("a", "1.0"), source("b", "1.0"), source("c", "2.0")]
    for n, src in enumerate(sources):
        store.register_source(src)
        store.add_hits(src, [shaped_hit(n, n + 1)], {}, 2000.0 + n)
        status = {
            "probe_id": "sp1",
            "state": "installed",
            "hits": 1,
            "evaluations": 1000 * (n + 1),
            "violations": 3,
            "exceptions": n,
        }
        store.store_heartbeat(src, [status], 0, 2100.0 + n)
    by_version = {s.version: s for s in store.standing_summary("sp1")}
    assert by_version["1.0"].sources == 2
    assert by_version["1.0"].counters["evaluations"] == 3000
    assert by_version["1.0"].counters["violations"] == 6
    assert by_version["1.0"].counters["exceptions"] == 1
    assert by_version["2.0"].counters["evaluations"] == 3000
    assert by_version["2.0"].sources == 1


def test_replicas_sampling_one_probe_together_keep_exact_counts(postgres_url: str) -> None:
    """Three PostgreSQL replicas store hits of one standing probe at once: every hit is counted
    once, the sample stays within its bound, and the reservoir lists exactly the stored hits."""
    import threading

    from sensor.hub.store.postgres import PostgresStore

    stores = [PostgresStore(postgres_url) for _ in range(3)]
    try:
        stores[0].add_probe(standing_probe())
        errors: list[BaseException] = []

        def post(index: int) -> None:
            src = source(f"s{index}")
            try:
                stores[index].register_source(src)
                for batch in range(4):
                    first = index * 10_000 + batch * 300
                    hits = [shaped_hit(n, (n % 3) or None) for n in range(first, first + 300)]
                    stores[index].add_hits(src, hits, {}, 2000.0 + batch)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        (summary,) = stores[1].standing_summary("sp1")
        assert (summary.seen, summary.strata) == (3600, 2)  # int and None
        assert summary.kept == strata.RESERVOIR_CAP
        assert stores[2].get_probe("sp1").hit_count == 3600  # type: ignore[union-attr]
        assert len(stores[0].read_hits(probe_id="sp1", limit=10_000)) == summary.kept
        import psycopg

        with psycopg.connect(postgres_url, autocommit=True) as conn:
            listed = conn.execute("SELECT count(*) FROM reservoir").fetchone()
            joined = conn.execute(
                "SELECT count(*) FROM reservoir r JOIN hits h ON h.seq = r.seq"
            ).fetchone()
        assert listed == joined == (summary.kept,)
    finally:
        for item in stores:
            item.close()


def test_hits_the_sample_keeps_are_reported_stored(store: Any) -> None:
    # ``outcome.stored`` is what the hub exports (OpenTelemetry): the sampled hits, not the rest
    store.add_probe(standing_probe())
    src = source()
    store.register_source(src)
    first = [shaped_hit(n, n) for n in range(5)]
    outcome = store.add_hits(src, [dict(h) for h in first], {}, 2000.0)
    assert [hit["hit_id"] for hit in outcome.stored] == [f"h-{n}" for n in range(5)]
    assert store.add_hits(src, [dict(h) for h in first], {}, 2001.0).stored == []  # a retry
    many = [shaped_hit(n, 1) for n in range(5, 5 + 3 * strata.RESERVOIR_CAP)]
    stored = store.add_hits(src, many, {}, 2002.0).stored
    sample = {row.body for row in store.read_hits(probe_id="sp1", limit=10_000)}
    exported = {hit["hit_id"] for hit in stored} | {f"h-{n}" for n in range(5)}
    assert {json.loads(body)["hit_id"] for body in sample} <= exported
    assert strata.RESERVOIR_CAP - 5 <= len(stored) < len(many)


def test_standing_summary_sums_the_newer_status_counters_per_version(client: Any) -> None:
    from hub_helpers import CLIENT, SENSOR, auth, register

    from sensor.probes import ProbeStatus

    record = _place_standing(client).json()["probe"]
    counts = {"evaluations": 50, "violations": 6, "expect_errors": 2, "skipped_rate": 900,
              "skipped_closed": 880, "novel_classes": 3, "novel_admitted": 2,
              "novel_refused": 1, "novel_full": 0}  # fmt: skip
    for _ in range(2):  # two sources of version 2.0: summed
        source_id = register(client, "shop", version="2.0")
        status = {"probe_id": record["id"], "state": "installed", **counts}
        answer = client.post(
            f"/v1/sensors/{source_id}/heartbeat",
            json={"statuses": [status], "dropped": 0},
            headers=auth(SENSOR),
        )
        assert answer.status_code == 200, answer.text
        hit = {"probe_id": record["id"], "signature": record["signature"], "kind": "snapshot",
               "location": "shop.pricing:apply_discount@return", "ts": 1_700_000_000.0,
               "hit_id": f"h-{source_id}", "captures": {"price": 1}}  # fmt: skip
        posted = client.post(
            f"/v1/sensors/{source_id}/hits", json={"hits": [hit]}, headers=auth(SENSOR)
        )
        assert posted.status_code == 200, posted.text
    summary = client.get(f"/v1/probes/{record['id']}/standing", headers=auth(CLIENT)).json()
    (version,) = summary["versions"]
    assert version["sources"] == 2
    for name, value in counts.items():
        assert version["counters"][name] == 2 * value, name
    assert set(ProbeStatus.LATER_COUNTERS) <= set(counts)  # every newer counter was tried


def test_a_hit_twice_in_one_batch_is_counted_once_though_the_sample_dropped_it(store: Any) -> None:
    """A batch that holds one hit id twice: the second copy is the same hit, counted once.

    With a full sample, the first copy is kept with probability kept/seen (about a third
    here); when it is not kept, it is in no table to find the second copy by, yet it was
    counted. Twenty such pairs: every one must count once (the old SQLite store counted the
    second copy of each dropped one again, in ``seen`` and ``hit_count``).
    """
    store.add_probe(standing_probe())
    src = source()
    store.register_source(src)
    full = [shaped_hit(n, 1) for n in range(3 * strata.RESERVOIR_CAP)]
    store.add_hits(src, full, {}, 2000.0)
    pairs = [shaped_hit(n, 1) for n in range(len(full), len(full) + 20)]
    outcome = store.add_hits(src, [dict(hit) for hit in pairs for _ in range(2)], {}, 2001.0)
    assert outcome.accepted == 40  # both copies taken: the sensor must not send either again
    (summary,) = store.standing_summary("sp1")
    assert summary.seen == len(full) + 20
    assert summary.kept == strata.RESERVOIR_CAP
    assert store.get_probe("sp1").hit_count == len(full) + 20


def test_between_largest_strata_of_one_size_the_first_by_name_gives_up_a_hit(store: Any) -> None:
    """A full sample split evenly between two strata; a hit of a third stratum comes.

    It takes the place of a hit of a largest stratum: of the first of them by name, on both
    stores (PostgreSQL ordered ``kept DESC, stratum``; SQLite only ``kept DESC`` and took
    whichever row its plan returned first).
    """
    store.add_probe(standing_probe())
    src = source()
    store.register_source(src)
    half = strata.RESERVOIR_CAP // 2
    even = [shaped_hit(n, 1) for n in range(half)] + [
        shaped_hit(n, -1) for n in range(half, 2 * half)
    ]
    store.add_hits(src, even, {}, 2000.0)
    store.add_hits(src, [shaped_hit(2 * half, None)], {}, 2001.0)
    kept: dict[str, int] = {}
    for row in store.read_hits(probe_id="sp1", limit=10_000):
        stratum = strata.stratum_of(json.loads(row.body))
        kept[stratum] = kept.get(stratum, 0) + 1
    first, second = sorted(strata.stratum_of(shaped_hit(0, value)) for value in (1, -1))
    assert kept == {first: half - 1, second: half, strata.stratum_of(shaped_hit(0, None)): 1}


def test_versions_last_seen_at_one_moment_are_listed_by_name(store: Any) -> None:
    """Newest first; versions whose last hit came at the same moment, by name (both stores)."""
    store.add_probe(standing_probe())
    for number, version in enumerate(["2.0", "1.0", "3.0"]):
        src = source(f"s{number}", version=version)
        store.register_source(src)
        store.add_hits(src, [shaped_hit(number, 1)], {}, 2000.0)
    assert [s.version for s in store.standing_summary("sp1")] == ["1.0", "2.0", "3.0"]


def test_a_standing_batch_takes_a_few_statements_plus_one_per_kept_hit(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Sampling hit by hit took about five statements per hit (5.24 on PostgreSQL), kept or
    # not: a batch is read once and written once, plus the insert of each hit it keeps.
    from sensor.hub.store import postgres, sqlite

    counted: list[str] = []
    for module in (sqlite, postgres):
        dialect = module._Dialect  # type: ignore[attr-defined]
        for name in ("execute", "insert_hit"):
            original = getattr(dialect, name)

            def counting(
                self: Any, *args: Any, _original: Any = original, _name: str = name
            ) -> Any:
                counted.append(_name if _name == "insert_hit" else str(args[0]).split()[0])
                return _original(self, *args)

            monkeypatch.setattr(dialect, name, counting)
    store.add_probe(standing_probe())
    src = source()
    store.register_source(src)
    for number in range(3):  # an empty reservoir, filled, then full
        counted.clear()
        batch = [shaped_hit(1000 * number + n, n % 7) for n in range(1000)]
        outcome = store.add_hits(src, batch, {}, 2000.0 + number)
        # (a hit kept and evicted again within the batch is reported stored, never written)
        inserted = counted.count("insert_hit")
        assert 0 < inserted <= len(outcome.stored)
        assert len(counted) <= inserted + 12, (number, inserted, len(counted), set(counted))
    (summary,) = store.standing_summary("sp1")
    assert summary.seen == 3000
    assert summary.kept == strata.RESERVOIR_CAP
