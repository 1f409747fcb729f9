"""The hub's HTTP API through Starlette's TestClient: sensors, probes, hits, evidence, errors."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jsonschema  # type: ignore[import-untyped]
import pytest
from hub_helpers import ADMIN, CLIENT, SENSOR, auth, hit, place, poll, post_hits, register
from starlette.applications import Starlette
from starlette.testclient import TestClient

from sensor.hub.core import Hub

DOCS = Path(__file__).resolve().parents[4] / "docs" / "reference"


# -- sensors and probe sets ------------------------------------------------------------------


def test_register_answers_source_id_and_intervals(client: TestClient) -> None:
    answer = client.post(
        "/v1/sensors/register",
        json={"service": "shop", "labels": {"env": "prod"}, "runtime_id": "r1"},
        headers=auth(SENSOR),
    )
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"source_id", "poll_wait", "heartbeat_interval"}
    assert body["poll_wait"] == 25.0
    assert body["heartbeat_interval"] == 10.0


def test_sources_list_what_sensors_registered(client: TestClient) -> None:
    source_id = register(client, version="2.1", labels={"env": "prod"}, backend="monitoring")
    sources = client.get("/v1/sources", headers=auth(CLIENT)).json()["sources"]
    assert len(sources) == 1
    listed = sources[0]
    assert listed["id"] == source_id
    assert {k: listed[k] for k in ("service", "version", "host", "pid", "python", "state")} == {
        "service": "shop",
        "version": "2.1",
        "host": "h1",
        "pid": 42,
        "python": "3.12.1",
        "state": "live",
    }
    assert listed["labels"] == {"env": "prod"}
    assert listed["backend"] == "monitoring"
    assert listed["first_seen"] <= listed["last_seen"]


def test_sources_filter_by_service_label_and_state(client: TestClient, hub: Hub) -> None:
    register(client, "shop", labels={"env": "prod", "zone": "a"})
    register(client, "shop", labels={"env": "staging"})
    old = register(client, "billing")
    hub.store.touch_source(old, time.time() - 100)  # silent for 100 s: stale
    query = client.get
    assert len(query("/v1/sources?service=shop", headers=auth(CLIENT)).json()["sources"]) == 2
    prod = query("/v1/sources?label=env=prod&label=zone=a", headers=auth(CLIENT)).json()
    assert [s["labels"]["env"] for s in prod["sources"]] == ["prod"]
    stale = query("/v1/sources?state=stale", headers=auth(CLIENT)).json()["sources"]
    assert [s["service"] for s in stale] == ["billing"]
    bad = query("/v1/sources?state=sleepy", headers=auth(CLIENT))
    assert bad.status_code == 400
    assert "'sleepy'" in bad.json()["error"]["message"]


def test_deregistered_source_is_gone(client: TestClient) -> None:
    source_id = register(client)
    answer = client.post(f"/v1/sensors/{source_id}/deregister", headers=auth(SENSOR))
    assert answer.status_code == 200
    assert answer.json() == {}
    sources = client.get("/v1/sources", headers=auth(CLIENT)).json()["sources"]
    assert sources[0]["state"] == "gone"


def test_poll_without_etag_answers_at_once_with_the_set(client: TestClient) -> None:
    source_id = register(client)
    record = place(client, capture=["price"])
    started = time.monotonic()
    answer = poll(client, source_id, wait=60)
    # At once, not at the end of the 60 s wait: the bound is half the wait, not a guess at how
    # fast the machine answers (it was 2 s of a 5 s wait).
    assert time.monotonic() - started < 30
    assert [p["id"] for p in answer["probes"]] == [record["id"]]
    assert answer["redaction"] is None
    assert answer["probes"][0]["limits"]["expires_at"] == record["expires_at"]


def test_poll_with_current_etag_waits_then_answers_the_same_etag(client: TestClient) -> None:
    source_id = register(client)
    etag = poll(client, source_id)["etag"]
    started = time.monotonic()
    answer = poll(client, source_id, etag=etag, wait=0.3)
    assert time.monotonic() - started >= 0.25
    assert answer["etag"] == etag
    assert answer["probes"] == []


def test_poll_asking_for_a_short_unchanged_answer_gets_one_only_when_unchanged(
    client: TestClient,
) -> None:
    source_id = register(client)
    record = place(client, capture=["price"])
    path = f"/v1/sensors/{source_id}/probes"

    def ask(**query: Any) -> Any:
        answer = client.get(path, params=query, headers=auth(SENSOR))
        assert answer.status_code == 200, answer.text
        return answer.json()

    etag = ask(unchanged="short")["etag"]  # no etag yet: the whole set
    assert ask(etag=etag, wait=0, unchanged="short") == {"etag": etag, "unchanged": True}
    full = ask(etag=etag, wait=0)  # not asked for: the whole set, as an older sensor expects
    assert [p["id"] for p in full["probes"]] == [record["id"]]
    assert [p["id"] for p in ask(etag="stale", unchanged="short")["probes"]] == [record["id"]]
    other = place(client, capture=["qty"])
    changed = ask(etag=etag, wait=5, unchanged="short")  # a change: the whole new set
    assert changed["etag"] != etag
    assert {p["id"] for p in changed["probes"]} == {record["id"], other["id"]}
    bad = client.get(path, params={"etag": etag, "unchanged": "yes"}, headers=auth(SENSOR))
    assert bad.status_code == 400
    assert "'unchanged'" in bad.json()["error"]["message"]
    assert "'yes'" in bad.json()["error"]["message"]


def test_poll_wakes_when_a_probe_is_placed(app: Starlette) -> None:
    async def scenario() -> float:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            answer = await http.post(
                "/v1/sensors/register", json={"service": "shop"}, headers=auth(SENSOR)
            )
            source_id = answer.json()["source_id"]
            path = f"/v1/sensors/{source_id}/probes"
            etag = (await http.get(path, headers=auth(SENSOR))).json()["etag"]
            waiting = asyncio.create_task(
                http.get(path, params={"etag": etag, "wait": 60}, headers=auth(SENSOR))
            )
            await asyncio.sleep(0.2)
            assert not waiting.done()
            started = time.monotonic()
            probe = {"kind": "snapshot", "location": "shop.pricing:apply_discount"}
            placed = await http.post("/v1/probes", json={"probe": probe}, headers=auth(CLIENT))
            assert placed.status_code == 201
            answer = await waiting
            assert answer.json()["etag"] != etag
            assert len(answer.json()["probes"]) == 1
            return time.monotonic() - started

    # Woken by the placement, not at the end of the 60 s wait (the bound was 1 s of a 10 s
    # wait: a guess at how fast the machine answers).
    assert asyncio.run(scenario()) < 30


def test_hundreds_of_long_polls_wake_without_a_thread_each(app: Starlette) -> None:
    import threading

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            sources = []
            for _ in range(300):
                answer = await http.post(
                    "/v1/sensors/register", json={"service": "shop"}, headers=auth(SENSOR)
                )
                sources.append(answer.json()["source_id"])
            first = await http.get(f"/v1/sensors/{sources[0]}/probes", headers=auth(SENSOR))
            etag = first.json()["etag"]
            threads_before = threading.active_count()
            polls = [
                asyncio.create_task(
                    http.get(
                        f"/v1/sensors/{s}/probes",
                        params={"etag": etag, "wait": 20},
                        headers=auth(SENSOR),
                    )
                )
                for s in sources
            ]
            await asyncio.sleep(0.5)
            assert not any(p.done() for p in polls)
            assert threading.active_count() <= threads_before + 2
            probe = {"kind": "counter", "location": "shop.pricing:apply_discount"}
            await http.post("/v1/probes", json={"probe": probe}, headers=auth(CLIENT))
            answers = await asyncio.wait_for(asyncio.gather(*polls), timeout=10)
            assert all(len(a.json()["probes"]) == 1 for a in answers)

    asyncio.run(scenario())


def test_selector_fans_out_to_matching_sources_only(client: TestClient) -> None:
    prod = register(client, "shop", labels={"env": "prod"})
    staging = register(client, "shop", labels={"env": "staging"})
    billing = register(client, "billing", labels={"env": "prod"})
    by_label = place(client, selector={"service": "shop", "labels": {"env": "prod"}})
    by_id = place(client, "shop.cart:total", selector={"source_id": staging})
    everywhere = place(client, "shop.cart:add")

    def ids(source_id: str) -> set[str]:
        return {p["id"] for p in poll(client, source_id)["probes"]}

    assert ids(prod) == {by_label["id"], everywhere["id"]}
    assert ids(staging) == {by_id["id"], everywhere["id"]}
    assert ids(billing) == {everywhere["id"]}


def test_source_registering_later_gets_the_standing_probes(client: TestClient) -> None:
    record = place(client, selector={"service": "shop"})
    later = register(client, "shop")
    assert [p["id"] for p in poll(client, later)["probes"]] == [record["id"]]


def test_removed_probe_leaves_every_probe_set(client: TestClient) -> None:
    source_id = register(client)
    record = place(client)
    etag = poll(client, source_id)["etag"]
    removed = client.delete(f"/v1/probes/{record['id']}", headers=auth(CLIENT))
    assert removed.status_code == 200
    assert removed.json()["probe"]["state"] == "removed"
    answer = poll(client, source_id, etag=etag, wait=2)
    assert answer["probes"] == []
    assert answer["etag"] != etag


class HubWallClock:
    """The hub's ``time`` module with a wall clock that moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_probe_ttl_expiry_removes_it_from_sensors(
    client: TestClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The hub's wall clock is the test's: with the real one the first poll had to come within
    # the 0.2 s TTL of the placement, which a loaded machine can miss.
    import sensor.hub.api
    import sensor.hub.core

    clock = HubWallClock()
    monkeypatch.setattr(sensor.hub.api, "time", clock)
    monkeypatch.setattr(sensor.hub.core, "time", clock)
    source_id = register(client)
    record = place(client, ttl=0.2)
    assert len(poll(client, source_id)["probes"]) == 1
    clock.now += 0.19
    assert len(poll(client, source_id)["probes"]) == 1, "not before its TTL"
    clock.now += 0.02
    assert poll(client, source_id)["probes"] == []  # filtered at once, before the sweep
    client.portal.call(hub.sweep)  # type: ignore[union-attr]
    state = client.get(f"/v1/probes/{record['id']}", headers=auth(CLIENT)).json()["probe"]
    assert state["state"] == "expired"
    assert state["ended_at"] is not None


def test_probe_at_max_hits_is_completed_and_disabled_everywhere(client: TestClient) -> None:
    first, second = register(client), register(client)
    record = place(client, limits={"max_hits": 3})
    answer = post_hits(client, first, [hit(record, i) for i in range(2)])
    assert answer == {"accepted": 2, "declined": 0, "declined_by_probe": {}}
    answer = post_hits(client, second, [hit(record, i) for i in range(2, 5)])
    # the two hits over the limit are declined, and the answer says why
    assert answer == {
        "accepted": 1,
        "declined": 2,
        "declined_by_probe": {record["id"]: {"max_hits": 2}},
    }
    state = client.get(f"/v1/probes/{record['id']}", headers=auth(CLIENT)).json()["probe"]
    assert (state["state"], state["hit_count"]) == ("completed", 3)
    assert state["ended_reason"] == "max_hits: 3 hits stored (limits.max_hits is 3)"
    assert poll(client, first)["probes"] == []
    assert poll(client, second)["probes"] == []


def test_heartbeat_statuses_appear_in_the_probe_record(client: TestClient) -> None:
    source_id = register(client)
    record = place(client)
    status = {"probe_id": record["id"], "state": "error", "reason": "target not found", "hits": 0}
    answer = client.post(
        f"/v1/sensors/{source_id}/heartbeat",
        json={"statuses": [status], "dropped": 4},
        headers=auth(SENSOR),
    )
    assert answer.status_code == 200
    assert answer.json() == {}
    state = client.get(f"/v1/probes/{record['id']}", headers=auth(CLIENT)).json()["probe"]
    assert state["statuses"][source_id]["state"] == "error"
    assert state["statuses"][source_id]["reason"] == "target not found"
    sources = client.get("/v1/sources", headers=auth(CLIENT)).json()["sources"]
    assert sources[0]["dropped"] == 4


def test_list_probes_filters_by_signature_and_state(client: TestClient) -> None:
    one = place(client)
    two = place(client, "shop.cart:total")
    client.delete(f"/v1/probes/{two['id']}", headers=auth(CLIENT))
    listed = client.get(f"/v1/probes?signature={one['signature']}", headers=auth(CLIENT))
    assert [p["id"] for p in listed.json()["probes"]] == [one["id"]]
    active = client.get("/v1/probes?state=active", headers=auth(CLIENT)).json()["probes"]
    assert [p["id"] for p in active] == [one["id"]]


# -- hits and evidence -----------------------------------------------------------------------


def test_hits_are_paged_with_a_cursor_and_carry_their_source(client: TestClient) -> None:
    source_id = register(client, version="3.0")
    record = place(client)
    post_hits(client, source_id, [hit(record, i) for i in range(25)])
    seen: list[dict[str, Any]] = []
    after = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 10}
        if after:
            params["after"] = after
        page = client.get(f"/v1/probes/{record['id']}/hits", params=params, headers=auth(CLIENT))
        seen += page.json()["hits"]
        after = page.json()["next"]
        if after is None:
            break
    assert [h["hit_id"] for h in seen] == [f"h-{i}" for i in range(25)]
    assert seen[0]["source"] == {
        "id": source_id,
        "service": "shop",
        "version": "3.0",
        "host": "h1",
        "pid": 42,
    }


def test_hits_filter_by_time_and_source(client: TestClient) -> None:
    one, two = register(client), register(client)
    record = place(client)
    post_hits(client, one, [hit(record, i) for i in range(5)])
    post_hits(client, two, [hit(record, i) for i in range(5, 8)])
    path = f"/v1/probes/{record['id']}/hits"
    by_source = client.get(path, params={"source_id": two}, headers=auth(CLIENT)).json()
    assert len(by_source["hits"]) == 3
    window = {"since": 1_700_000_002, "until": 1_700_000_006}
    by_time = client.get(path, params=window, headers=auth(CLIENT)).json()
    assert [h["hit_id"] for h in by_time["hits"]] == ["h-2", "h-3", "h-4", "h-5"]


def test_one_hit_is_read_by_its_id(client: TestClient) -> None:
    source_id = register(client, version="3.0")
    record = place(client)
    post_hits(client, source_id, [hit(record, i) for i in range(5)])
    answer = client.get(f"/v1/probes/{record['id']}/hits/h-3", headers=auth(CLIENT))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert set(body) == {"hit"}
    assert body["hit"]["hit_id"] == "h-3"
    assert body["hit"]["captures"] == {"price": 3}
    assert body["hit"]["source"]["id"] == source_id


def test_an_absent_hit_is_404_naming_the_probe_and_the_hit(client: TestClient) -> None:
    source_id = register(client)
    record = place(client)
    post_hits(client, source_id, [hit(record, 0)])
    other = place(client, location="shop.pricing:total")
    answer = client.get(f"/v1/probes/{record['id']}/hits/h-9", headers=auth(CLIENT))
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert error["code"] == "unknown_hit"
    assert f"probe {record['id']!r} has no hit 'h-9'" in error["message"]
    # a hit id is looked up within its probe only
    elsewhere = client.get(f"/v1/probes/{other['id']}/hits/h-0", headers=auth(CLIENT))
    assert elsewhere.status_code == 404
    assert elsewhere.json()["error"]["code"] == "unknown_hit"
    no_probe = client.get("/v1/probes/nope/hits/h-0", headers=auth(CLIENT))
    assert no_probe.status_code == 404
    assert no_probe.json()["error"]["code"] == "unknown_probe"


def test_a_hit_id_two_sources_sent_is_409_until_a_source_is_named(client: TestClient) -> None:
    one, two = register(client), register(client)
    record = place(client)
    post_hits(client, one, [hit(record, 0, captures={"price": 1})])
    post_hits(client, two, [hit(record, 0, captures={"price": 2})])
    path = f"/v1/probes/{record['id']}/hits/h-0"
    both = client.get(path, headers=auth(CLIENT))
    assert both.status_code == 409
    assert both.json()["error"]["code"] == "ambiguous_hit"
    assert one in both.json()["error"]["message"]
    assert two in both.json()["error"]["message"]
    picked = client.get(path, params={"source_id": two}, headers=auth(CLIENT))
    assert picked.status_code == 200
    assert picked.json()["hit"]["captures"] == {"price": 2}


def test_reading_one_hit_needs_the_client_scope(client: TestClient) -> None:
    source_id = register(client)
    record = place(client)
    post_hits(client, source_id, [hit(record, 0)])
    path = f"/v1/probes/{record['id']}/hits/h-0"
    assert client.get(path).status_code == 401
    assert client.get(path, headers=auth(SENSOR)).status_code == 403
    assert client.get(path, headers=auth(ADMIN)).status_code == 200


def test_posted_hit_dropped_counts_reach_the_probe_record(client: TestClient) -> None:
    source_id = register(client)
    record = place(client)
    post_hits(client, source_id, [hit(record)], dropped={record["id"]: 7})
    state = client.get(f"/v1/probes/{record['id']}", headers=auth(CLIENT)).json()["probe"]
    assert (state["hit_count"], state["dropped"]) == (1, 7)


def _lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def test_evidence_export_is_json_lines_with_header_probe_and_hits(client: TestClient) -> None:
    source_id = register(client)
    record = place(client, capture=["price"])
    post_hits(client, source_id, [hit(record, i) for i in range(3)])
    answer = client.get(f"/v1/probes/{record['id']}/evidence", headers=auth(CLIENT))
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-ndjson")
    lines = _lines(answer.text)
    header = lines[0]
    assert {k: header[k] for k in ("record", "schema", "version")} == {
        "record": "header",
        "schema": "pytest-runtime/evidence",
        "version": 1,
    }
    assert lines[1] == {"record": "probe", "probe": record["probe"]}
    hits = [line["hit"] for line in lines[2:]]
    assert [line["record"] for line in lines[2:]] == ["hit"] * 3
    assert all(h["signature"] == record["signature"] for h in hits)
    assert all(h["source"]["id"] == source_id for h in hits)


def test_evidence_by_signature_gathers_every_probe_of_that_signature(client: TestClient) -> None:
    source_id = register(client)
    one = place(client, capture=["price"], id="first")
    two = place(client, capture=["price"], id="second")
    other = place(client, "shop.cart:total")
    assert one["signature"] == two["signature"] != other["signature"]
    post_hits(client, source_id, [hit(one, 0), hit(two, 1), hit(other, 2)])
    answer = client.get(
        "/v1/evidence", params={"signature": one["signature"]}, headers=auth(CLIENT)
    )
    lines = _lines(answer.text)
    assert [line["probe"]["id"] for line in lines if line["record"] == "probe"] == [
        "first",
        "second",
    ]
    assert sorted(line["hit"]["hit_id"] for line in lines if line["record"] == "hit") == [
        "h-0",
        "h-1",
    ]
    missing = client.get("/v1/evidence", headers=auth(CLIENT))
    assert missing.status_code == 400
    assert "signature" in missing.json()["error"]["message"]


def test_evidence_lines_match_the_published_json_schema(client: TestClient) -> None:
    schema = json.loads((DOCS / "evidence.schema.json").read_text())
    source_id = register(client)
    record = place(client, capture=["price"])
    post_hits(client, source_id, [hit(record, i) for i in range(3)])
    answer = client.get(f"/v1/probes/{record['id']}/evidence", headers=auth(CLIENT))
    for line in _lines(answer.text):
        jsonschema.validate(line, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"record": "hit", "hit": {"probe_id": "x"}}, schema)


def test_replay_and_lines_evidence_match_the_published_json_schema(client: TestClient) -> None:
    schema = json.loads((DOCS / "evidence.schema.json").read_text())
    source_id = register(client)
    replay = place(client, replay=True)
    lines = place(client, "shop.pricing:subtotal", kind="lines")
    arguments = {
        "values": {"price": {"@t": "decimal.Decimal", "v": "3.50"}, "coupon": "WELCOME5"},
        "names": ["price", "coupon"],
        "positional": 2,
        "posonly": 0,
        "varargs": None,
        "varkw": None,
    }
    post_hits(
        client,
        source_id,
        [
            hit(replay, 0, arguments=arguments, outcome={"returned": 1}),
            hit(replay, 1, arguments=arguments, outcome={"raised": "KeyError"}),
            hit(lines, 2, kind="lines", captures=None, lines={
                "ran": [30, 31, 34], "first": 28, "last": 40, "source": "0123456789abcdef"
            }),
        ],
    )  # fmt: skip
    seen = set()
    for record in (replay, lines):
        answer = client.get(f"/v1/probes/{record['id']}/evidence", headers=auth(CLIENT))
        for line in _lines(answer.text):
            jsonschema.validate(line, schema)
            seen.update(k for k in ("arguments", "outcome", "lines") if k in line.get("hit", {}))
            seen.update(("replay",) if line.get("probe", {}).get("replay") else ())
    assert seen == {"arguments", "outcome", "lines", "replay"}
    wrong = {"ran": "30", "first": 28, "last": 40, "source": "0123456789abcdef"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {
                "record": "hit",
                "hit": {**hit(lines, 3), "source": {"id": "s", "service": "shop"}, "lines": wrong},
            },
            schema,
        )


# -- bad input ---------------------------------------------------------------------------------


def _error(answer: Any) -> tuple[int, str, str]:
    body = answer.json()
    return answer.status_code, body["error"]["code"], body["error"]["message"]


def test_malformed_json_is_400(client: TestClient) -> None:
    answer = client.post(
        "/v1/probes",
        content=b"{not json",
        headers={**auth(CLIENT), "Content-Type": "application/json"},
    )
    status, code, message = _error(answer)
    assert (status, code) == (400, "malformed_json")
    assert "not valid JSON" in message
    array = client.post("/v1/probes", content=b"[1]", headers=auth(CLIENT))
    assert _error(array)[:2] == (400, "malformed_json")
    nan = client.post("/v1/probes", content=b'{"ttl": NaN}', headers=auth(CLIENT))
    assert _error(nan)[:2] == (400, "malformed_json")


def test_unknown_fields_are_422_naming_them(client: TestClient) -> None:
    answer = client.post(
        "/v1/sensors/register", json={"service": "shop", "colour": "red"}, headers=auth(SENSOR)
    )
    status, code, message = _error(answer)
    assert (status, code) == (422, "unknown_field")
    assert "colour" in message
    answer = client.post(
        "/v1/probes",
        json={"probe": {"kind": "snapshot", "location": "m:f"}, "selector": {"zone": "a"}},
        headers=auth(CLIENT),
    )
    assert _error(answer)[0] == 422
    assert "zone" in _error(answer)[2]


def test_oversized_body_is_413(client: TestClient) -> None:
    source_id = register(client)
    big = {"hits": [], "padding": "x" * 100_000}
    answer = client.post(f"/v1/sensors/{source_id}/hits", json=big, headers=auth(SENSOR))
    status, code, message = _error(answer)
    assert (status, code) == (413, "body_too_large")
    assert "65536" in message


def test_invalid_probe_spec_is_422_with_the_sensor_message(client: TestClient) -> None:
    answer = client.post(
        "/v1/probes",
        json={"probe": {"kind": "snapshot", "location": "not a location"}},
        headers=auth(CLIENT),
    )
    status, code, message = _error(answer)
    assert (status, code) == (422, "invalid_probe")
    assert message.startswith("probe field 'location': got 'not a location'")
    answer = client.post(
        "/v1/probes",
        json={"probe": {"kind": "snapshot", "location": "m:f", "colour": 1}},
        headers=auth(CLIENT),
    )
    assert _error(answer)[:2] == (422, "invalid_probe")
    assert "colour" in _error(answer)[2]


def test_ttl_must_be_positive_and_bounded(client: TestClient) -> None:
    for ttl in (0, -1, "soon", 10**9):
        answer = client.post(
            "/v1/probes",
            json={"probe": {"kind": "snapshot", "location": "m:f"}, "ttl": ttl},
            headers=auth(CLIENT),
        )
        assert _error(answer)[0] == 422, ttl


def test_duplicate_probe_id_is_409(client: TestClient) -> None:
    place(client, id="same")
    answer = client.post(
        "/v1/probes",
        json={"probe": {"kind": "snapshot", "location": "m:f", "id": "same"}},
        headers=auth(CLIENT),
    )
    assert _error(answer)[:2] == (409, "probe_exists")


def test_invalid_hit_is_422_naming_its_index(client: TestClient) -> None:
    source_id = register(client)
    record = place(client)
    bad = {"probe_id": record["id"], "kind": "snapshot", "location": "m:f", "ts": 1.0}
    answer = client.post(
        f"/v1/sensors/{source_id}/hits",
        json={"hits": [hit(record), bad]},
        headers=auth(SENSOR),
    )
    status, code, message = _error(answer)
    assert (status, code) == (422, "invalid_hit")
    assert message.startswith("hits[1]")
    assert "signature" in message


def test_invalid_status_is_422(client: TestClient) -> None:
    source_id = register(client)
    answer = client.post(
        f"/v1/sensors/{source_id}/heartbeat",
        json={"statuses": [{"probe_id": "p", "state": "sleeping"}]},
        headers=auth(SENSOR),
    )
    assert _error(answer)[:2] == (422, "invalid_status")
    assert "sleeping" in _error(answer)[2]


def test_unknown_source_probe_and_route_are_404(client: TestClient) -> None:
    answer = client.get("/v1/sensors/nope/probes", headers=auth(SENSOR))
    assert _error(answer)[:2] == (404, "unknown_source")
    assert _error(client.get("/v1/probes/nope", headers=auth(CLIENT)))[:2] == (404, "unknown_probe")
    assert _error(client.get("/v1/nothing-here"))[:2] == (404, "not_found")
    assert _error(client.delete("/v1/tokens/nope", headers=auth(ADMIN)))[:2] == (
        404,
        "unknown_token",
    )


def test_bad_query_parameters_are_400(client: TestClient) -> None:
    record = place(client)
    path = f"/v1/probes/{record['id']}/hits"
    for params in ({"limit": 0}, {"limit": "x"}, {"since": "yesterday"}, {"after": "-3"}):
        answer = client.get(path, params=params, headers=auth(CLIENT))
        assert _error(answer)[:2] == (400, "invalid_query"), params


# -- open endpoints ----------------------------------------------------------------------------


def test_health_needs_no_token(client: TestClient) -> None:
    answer = client.get("/v1/health")
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"


def test_served_openapi_matches_the_docs_copy(client: TestClient) -> None:
    served = client.get("/v1/openapi.json").json()
    kept = json.loads((DOCS / "openapi.json").read_text())
    assert served == kept, "regenerate: python -m sensor.hub.openapi > docs/reference/openapi.json"


def test_openapi_lists_every_route_with_its_scope(client: TestClient) -> None:
    from sensor.hub.api import ENDPOINTS

    document = client.get("/v1/openapi.json").json()
    for endpoint in ENDPOINTS:
        operation = document["paths"][endpoint.path][endpoint.method.lower()]
        if endpoint.scope is None:
            assert "security" not in operation
        else:
            assert operation["security"] == [{"bearer": [endpoint.scope]}]


def test_refused_expression_is_422_with_the_sandbox_reason(client: TestClient) -> None:
    answer = client.post(
        "/v1/probes",
        json={"probe": {"kind": "snapshot", "location": "m:f", "expect": "__import__('os')"}},
        headers=auth(CLIENT),
    )
    status, code, message = _error(answer)
    assert (status, code) == (422, "invalid_probe")
    assert "__import__" in message
    assert "import" in message.split(":", 1)[1]


_HIT_FIELDS = {"ts", "probe_id", "captures", "line"}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"colour": "red"}, "colour"),
        ({"ts": "yesterday"}, "'ts'"),
        ({"ts": True}, "'ts'"),
        ({"probe_id": 7}, "'probe_id'"),
        ({"captures": [1, 2]}, "'captures'"),
        ({"line": "12"}, "'line'"),
    ],
)
def test_each_bad_hit_field_is_422_naming_it(
    client: TestClient, change: dict[str, Any], named: str
) -> None:
    source_id = register(client)
    record = place(client)
    answer = client.post(
        f"/v1/sensors/{source_id}/hits",
        json={"hits": [{**hit(record), **change}]},
        headers=auth(SENSOR),
    )
    status, code, message = _error(answer)
    assert (status, code) == (422, "invalid_hit")
    field = named.strip("'")
    if field in _HIT_FIELDS:  # a wrong value: the field and the value it got are named
        assert message.startswith(f"hits[0].{field}: got {change[field]!r}"), message
    else:  # an unknown field: named as such
        assert message.startswith("hits[0]: got ['colour'], expected only the fields"), message


def test_hit_source_sent_by_a_sensor_is_replaced_by_the_hubs(client: TestClient) -> None:
    source_id = register(client)
    record = place(client)
    post_hits(client, source_id, [hit(record, source={"id": "forged", "service": "x"})])
    page = client.get(f"/v1/probes/{record['id']}/hits", headers=auth(CLIENT)).json()
    assert page["hits"][0]["source"]["id"] == source_id


def test_concurrent_batches_share_one_group_commit(app: Starlette, hub: Hub) -> None:
    import threading

    groups: list[int] = []
    original = hub.store.add_hit_batches

    def recording(batches: Any, *args: Any) -> Any:
        groups.append(len(batches))
        return original(batches, *args)

    hub.store.add_hit_batches = recording  # type: ignore[method-assign,assignment]

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            answer = await http.post(
                "/v1/sensors/register", json={"service": "shop"}, headers=auth(SENSOR)
            )
            source_id = answer.json()["source_id"]
            probe = {"kind": "snapshot", "location": "shop.pricing:apply_discount"}
            placed = await http.post("/v1/probes", json={"probe": probe}, headers=auth(CLIENT))
            record = placed.json()["probe"]
            # hold the store thread so that ten batches queue up behind it
            gate = threading.Event()
            blocked = asyncio.get_running_loop().run_in_executor(hub._executor, gate.wait, 60)
            posts = [
                asyncio.create_task(
                    http.post(
                        f"/v1/sensors/{source_id}/hits",
                        json={"hits": [hit(record, n * 10 + i) for i in range(10)]},
                        headers=auth(SENSOR),
                    )
                )
                for n in range(10)
            ]
            for _ in range(3000):  # up to 30 s (waited for, not timed)
                await asyncio.sleep(0.01)
                if len(hub._ingest_queue) == 10:
                    break
            gate.set()
            await blocked
            answers = await asyncio.gather(*posts)
            assert [a.json()["accepted"] for a in answers] == [10] * 10
            stored = await http.get(f"/v1/probes/{record['id']}", headers=auth(CLIENT))
            assert stored.json()["probe"]["hit_count"] == 100

    asyncio.run(scenario())
    assert groups == [10]


def test_a_bad_batch_does_not_fail_the_others_in_its_group(app: Starlette, hub: Hub) -> None:
    import threading

    async def scenario() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            answer = await http.post(
                "/v1/sensors/register", json={"service": "shop"}, headers=auth(SENSOR)
            )
            source_id = answer.json()["source_id"]
            probe = {"kind": "snapshot", "location": "shop.pricing:apply_discount"}
            placed = await http.post("/v1/probes", json={"probe": probe}, headers=auth(CLIENT))
            record = placed.json()["probe"]
            gate = threading.Event()
            blocked = asyncio.get_running_loop().run_in_executor(hub._executor, gate.wait, 60)
            bodies = [
                {"hits": [hit(record, 1)]},
                {"hits": [{"probe_id": record["id"]}]},
                {"hits": [hit(record, 2)]},
            ]
            posts = [
                asyncio.create_task(
                    http.post(f"/v1/sensors/{source_id}/hits", json=body, headers=auth(SENSOR))
                )
                for body in bodies
            ]
            # The two good batches queue behind the held store thread (the bad one is refused
            # before the queue: waiting for 3 waited out the whole bound every run).
            for _ in range(3000):  # up to 30 s (waited for, not timed)
                await asyncio.sleep(0.01)
                if len(hub._ingest_queue) >= 2:
                    break
            gate.set()
            await blocked
            return [a.status_code for a in await asyncio.gather(*posts)]

    assert asyncio.run(scenario()) == [200, 422, 200]


def test_group_commit_is_bounded_and_the_rest_follows(
    app: Starlette, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import sensor.hub.core

    monkeypatch.setattr(sensor.hub.core, "GROUP_COMMIT_HITS", 15)
    groups: list[int] = []
    original = hub.store.add_hit_batches

    def recording(batches: Any, *args: Any) -> Any:
        groups.append(len(batches))
        return original(batches, *args)

    hub.store.add_hit_batches = recording  # type: ignore[method-assign,assignment]

    async def scenario() -> list[Any]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            answer = await http.post(
                "/v1/sensors/register", json={"service": "shop"}, headers=auth(SENSOR)
            )
            source_id = answer.json()["source_id"]
            probe = {"kind": "snapshot", "location": "shop.pricing:apply_discount"}
            placed = await http.post("/v1/probes", json={"probe": probe}, headers=auth(CLIENT))
            record = placed.json()["probe"]
            gate = threading.Event()
            blocked = asyncio.get_running_loop().run_in_executor(hub._executor, gate.wait, 60)
            posts = [
                asyncio.create_task(
                    http.post(
                        f"/v1/sensors/{source_id}/hits",
                        json={"hits": [hit(record, n * 10 + i) for i in range(10)]},
                        headers=auth(SENSOR),
                    )
                )
                for n in range(3)
            ]
            for _ in range(3000):  # up to 30 s (waited for, not timed)
                await asyncio.sleep(0.01)
                if len(hub._ingest_queue) == 3:
                    break
            gate.set()
            await blocked
            return [a.json() for a in await asyncio.gather(*posts)]

    assert [a["accepted"] for a in asyncio.run(scenario())] == [10] * 3
    assert groups == [2, 1]


def test_a_poll_counts_as_a_sign_of_life_without_waiting_for_a_write(
    client: TestClient, hub: Hub
) -> None:
    source_id = register(client)
    hub.store.touch_source(source_id, time.time() - 100)  # silent for 100 s: stale
    poll(client, source_id)
    assert hub.store.get_source(source_id).last_seen < time.time() - 50  # type: ignore[union-attr]
    listed = client.get("/v1/sources", headers=auth(CLIENT)).json()["sources"]
    assert [s["state"] for s in listed] == ["live"]  # the listing writes what is pending
