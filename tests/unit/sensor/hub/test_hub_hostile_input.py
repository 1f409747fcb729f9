"""Hostile and careless bodies: each is refused with a 4xx naming the field, nothing is stored,
and records that are already bad in the database never break listings or polls."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hub_helpers import ADMIN, CLIENT, SENSOR, auth, hit, place, poll, post_hits, register
from starlette.testclient import TestClient

from sensor.hub.core import Hub

SURROGATE = "\ud800"


def _raw(obj: Any) -> bytes:
    """JSON text as a client in any language may send it (a lone surrogate as ``\\ud800``)."""
    return json.dumps(obj).encode()


def _post(client: TestClient, path: str, body: Any, token: str) -> Any:
    content = body if isinstance(body, bytes) else _raw(body)
    return client.post(
        path, content=content, headers={**auth(token), "Content-Type": "application/json"}
    )


def _error(answer: Any) -> tuple[int, str, str]:
    data = answer.json()
    return answer.status_code, data["error"]["code"], data["error"]["message"]


def _probes(client: TestClient) -> list[dict[str, Any]]:
    answer = client.get("/v1/probes", headers=auth(CLIENT))
    assert answer.status_code == 200, answer.text
    probes: list[dict[str, Any]] = answer.json()["probes"]
    return probes


# -- strings that cannot be stored ----------------------------------------------------------


@pytest.mark.parametrize(
    ("probe", "selector", "named"),
    [
        ({"tags": {"team": SURROGATE}}, None, "probe.tags.team"),
        ({"tags": {SURROGATE: "x"}}, None, "probe.tags"),
        ({"kind": "log", "template": "a" + SURROGATE}, None, "probe.template"),
        ({"capture": ["x", SURROGATE]}, None, "probe.capture[1]"),
        ({"condition": SURROGATE}, None, "probe.condition"),
        ({}, {"labels": {"zone": SURROGATE}}, "selector.labels.zone"),
        ({}, {"service": SURROGATE}, "selector.service"),
    ],
)
def test_a_lone_surrogate_anywhere_in_a_probe_is_refused_and_nothing_is_stored(
    client: TestClient, probe: dict[str, Any], selector: dict[str, Any] | None, named: str
) -> None:
    source_id = register(client)
    body: dict[str, Any] = {"probe": {"kind": "snapshot", "location": "m:f", **probe}}
    if selector is not None:
        body["selector"] = selector
    status, code, message = _error(_post(client, "/v1/probes", body, CLIENT))
    assert (status, code) == (422, "invalid_string")
    assert message.startswith(named), message
    assert "surrogate" in message
    assert _probes(client) == []
    assert poll(client, source_id)["probes"] == []
    # and the hub goes on: a good probe installs and is listed
    record = place(client)
    assert [p["id"] for p in _probes(client)] == [record["id"]]
    assert [p["id"] for p in poll(client, source_id)["probes"]] == [record["id"]]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"service": SURROGATE}, "service"),
        ({"service": "shop", "labels": {"zone": SURROGATE}}, "labels.zone"),
        ({"service": "shop", "host": "h" + SURROGATE}, "host"),
    ],
)
def test_a_lone_surrogate_in_a_registration_is_refused(
    client: TestClient, body: dict[str, Any], named: str
) -> None:
    status, code, message = _error(_post(client, "/v1/sensors/register", body, SENSOR))
    assert (status, code) == (422, "invalid_string")
    assert message.startswith(named), message
    sources = client.get("/v1/sources", headers=auth(CLIENT)).json()["sources"]
    assert sources == []


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"captures": {"note": SURROGATE}}, "hits[0].captures.note"),
        ({"captures": {"deep": [{"x": ["a", SURROGATE]}]}}, "hits[0].captures.deep[0].x[1]"),
        ({"message": SURROGATE}, "hits[0].message"),
        ({"hit_id": SURROGATE}, "hits[0].hit_id"),
        ({"errors": [SURROGATE]}, "hits[0].errors[0]"),
    ],
)
def test_a_lone_surrogate_in_a_hit_refuses_the_batch_whole(
    client: TestClient, change: dict[str, Any], named: str
) -> None:
    source_id = register(client)
    record = place(client)
    batch = {"hits": [{**hit(record, 0), **change}, hit(record, 1)]}
    status, code, message = _error(_post(client, f"/v1/sensors/{source_id}/hits", batch, SENSOR))
    assert (status, code) == (422, "invalid_string")
    assert message.startswith(named), message
    page = client.get(f"/v1/probes/{record['id']}/hits", headers=auth(CLIENT)).json()
    assert page["hits"] == []  # the good hit of the batch was not stored either


def test_raw_bytes_that_are_not_utf8_are_refused(client: TestClient) -> None:
    body = b'{"probe": {"kind": "snapshot", "location": "m:f", "tags": {"a": "\xed\xa0\x80"}}}'
    status, code, message = _error(_post(client, "/v1/probes", body, CLIENT))
    assert (status, code) == (400, "malformed_json")
    assert "UTF-8" in message
    assert _probes(client) == []


def test_a_heartbeat_is_stored_whole_or_not_at_all(client: TestClient) -> None:
    source_id = register(client)
    record = place(client)
    good = {"probe_id": record["id"], "state": "installed", "hits": 3}
    bad = {"probe_id": record["id"], "state": "installed", "reason": SURROGATE}
    answer = _post(
        client,
        f"/v1/sensors/{source_id}/heartbeat",
        {"statuses": [good, bad], "dropped": 9},
        SENSOR,
    )
    assert _error(answer)[:2] == (422, "invalid_string")
    assert "statuses[1].reason" in _error(answer)[2]
    stored = client.get(f"/v1/probes/{record['id']}", headers=auth(CLIENT)).json()["probe"]
    assert stored["statuses"] == {}
    (source,) = client.get("/v1/sources", headers=auth(CLIENT)).json()["sources"]
    assert source["dropped"] == 0


# -- numbers and types ----------------------------------------------------------------------


def test_json_nested_100000_deep_is_400_not_a_crash(client: TestClient, hub: Hub) -> None:
    source_id = register(client)
    deep = b'{"hits": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    hub.settings = hub.settings.__class__(**{**_fields(hub), "max_body": 1024 * 1024})
    answer = _post(client, f"/v1/sensors/{source_id}/hits", deep, SENSOR)
    status, code, message = _error(answer)
    assert (status, code) == (400, "too_deep")
    assert "100001 levels deep" in message
    assert "at most 200" in message


def _fields(hub: Hub) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(hub.settings, f.name) for f in dataclasses.fields(hub.settings)}


@pytest.mark.parametrize(
    ("path_kind", "body", "named"),
    [
        ("register", {"service": "shop", "pid": 2**63}, "pid"),
        ("heartbeat", {"dropped": 2**63}, "dropped"),
        ("heartbeat", {"statuses": [{"probe_id": "p", "hits": 2**64}]}, "statuses[0].hits"),
        ("hits", {"hits": [], "dropped": {"p": 2**63}}, "dropped.p"),
        ("hits", {"hits": [{"line": 2**70}]}, "hits[0].line"),
        ("hits", {"hits": [{"captures": {"n": -(2**63) - 1}}]}, "hits[0].captures.n"),
        ("probe", {"probe": {"limits": {"max_hits": 2**63}}}, "probe.limits.max_hits"),
        ("probe", {"probe": {"created_at": 10**30}}, "probe.created_at"),
    ],
)
def test_integers_beyond_64_bits_are_422_naming_the_field(
    client: TestClient, path_kind: str, body: dict[str, Any], named: str
) -> None:
    source_id = register(client)
    record = place(client)
    if path_kind == "probe":
        body = {"probe": {"kind": "snapshot", "location": "m:f", **body["probe"]}}
        path, token = "/v1/probes", CLIENT
    elif path_kind == "register":
        path, token = "/v1/sensors/register", SENSOR
    else:
        path, token = f"/v1/sensors/{source_id}/{path_kind}", SENSOR
        if path_kind == "hits":
            body = {**body, "hits": [{**hit(record), **h} for h in body["hits"]]}
    status, _, message = _error(_post(client, path, body, token))
    assert status == 422
    assert message.startswith(named), message
    assert "within 64 bits" in message


@pytest.mark.parametrize("text", [b"1e400", b"-1e999"])
def test_numbers_that_overflow_to_infinity_are_422(client: TestClient, text: bytes) -> None:
    source_id = register(client)
    record = place(client)
    body = _raw({"hits": [hit(record)]}).replace(b'"ts": 1700000000.0', b'"ts": ' + text)
    answer = _post(client, f"/v1/sensors/{source_id}/hits", body, SENSOR)
    status, _, message = _error(answer)
    assert status == 422
    assert message.startswith("hits[0].ts: got "), message
    assert "finite" in message


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_literals_are_400(client: TestClient, constant: bytes) -> None:
    source_id = register(client)
    body = b'{"dropped": ' + constant + b"}"
    answer = _post(client, f"/v1/sensors/{source_id}/heartbeat", body, SENSOR)
    assert _error(answer)[:2] == (400, "malformed_json")


def _status(**fields: Any) -> dict[str, Any]:
    return {"statuses": [{"probe_id": "p", **fields}]}


@pytest.mark.parametrize(
    ("path_kind", "body", "named", "shown"),
    [
        ("hits", {"hits": {}}, "hits", "{}"),
        ("hits", {"dropped": []}, "dropped", "[]"),
        ("hits", {"dropped": {"p": -1}}, "dropped.p", "-1"),
        ("hits", {"dropped": {"p": "3"}}, "dropped.p", "'3'"),
        ("heartbeat", {"dropped": []}, "dropped", "[]"),
        ("heartbeat", {"dropped": -5}, "dropped", "-5"),
        ("heartbeat", {"dropped": "12"}, "dropped", "'12'"),
        ("heartbeat", _status(hits="many"), "statuses[0].hits", "many"),
        ("heartbeat", _status(drops=-1), "statuses[0].drops", "-1"),
        ("heartbeat", _status(errors=1.5), "statuses[0].errors", "1.5"),
        ("heartbeat", _status(updated_at="now"), "statuses[0].updated_at", "now"),
        ("heartbeat", {"statuses": {}}, "statuses", "{}"),
        ("register", {"service": "shop", "pid": "42"}, "pid", "'42'"),
        ("register", {"service": "shop", "labels": []}, "labels", "[]"),
        ("register", {"service": ["shop"]}, "service", "['shop']"),
        ("probe", {"probe": {"kind": "snapshot", "location": "m:f"}, "ttl": "60"}, "ttl", "'60'"),
        ("probe", {"probe": {"kind": "snapshot", "location": "m:f", "tags": []}}, "probe.tags", "[]"),  # noqa: E501
        ("token", {"name": "t", "scope": "sensor", "services": "shop"}, "services", "'shop'"),
    ],
)  # fmt: skip
def test_wrong_types_and_negative_counts_are_422_naming_field_and_value(
    client: TestClient, path_kind: str, body: dict[str, Any], named: str, shown: str
) -> None:
    source_id = register(client)
    path, token = {
        "hits": (f"/v1/sensors/{source_id}/hits", SENSOR),
        "heartbeat": (f"/v1/sensors/{source_id}/heartbeat", SENSOR),
        "register": ("/v1/sensors/register", SENSOR),
        "probe": ("/v1/probes", CLIENT),
        "token": ("/v1/tokens", ADMIN),
    }[path_kind]
    status, _, message = _error(_post(client, path, body, token))
    assert status == 422
    assert message.startswith(f"{named}: got "), message
    assert shown in message, message


def test_the_after_cursor_is_bounded(client: TestClient) -> None:
    record = place(client)
    answer = client.get(
        f"/v1/probes/{record['id']}/hits", params={"after": "9" * 30}, headers=auth(CLIENT)
    )
    assert _error(answer)[:2] == (400, "invalid_query")


# -- memory ---------------------------------------------------------------------------------


def test_a_body_of_too_many_objects_is_413_before_it_is_parsed(
    client: TestClient, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    source_id = register(client)
    hub.settings = hub.settings.__class__(**{**_fields(hub), "max_json_containers": 10_000})
    import sensor.hub.body

    parsed: list[object] = []
    original = sensor.hub.body._decode_json

    def counting(text: str) -> Any:
        parsed.append(1)
        return original(text)

    monkeypatch.setattr(sensor.hub.body, "_decode_json", counting)
    many = b"[" + b"{}," * 20_000 + b"{}]"  # 60 KB: under the byte limit of this hub
    body = b'{"hits": ' + many + b"}"
    answer = _post(client, f"/v1/sensors/{source_id}/hits", body, SENSOR)
    assert parsed == []  # refused from the raw bytes: no Python object was built
    status, code, message = _error(answer)
    assert (status, code) == (413, "body_too_large")
    assert "20003 JSON objects and arrays: expected at most 10000" in message


def test_element_limits_are_hub_settings(client: TestClient, hub: Hub) -> None:
    source_id = register(client)
    record = place(client)
    hub.settings = hub.settings.__class__(**{**_fields(hub), "max_json_items": 50})
    answer = _post(
        client,
        f"/v1/sensors/{source_id}/hits",
        {"hits": [hit(record, n) for n in range(20)]},
        SENSOR,
    )
    assert _error(answer)[:2] == (413, "body_too_large")
    assert "expected at most 50" in _error(answer)[2]


# -- records already bad in the database ----------------------------------------------------


def _insert_bad_rows(hub: Hub, good_probe: dict[str, Any]) -> None:
    """Rows an older hub (or a hand) wrote: a lone surrogate, bytes that are not UTF-8, junk."""
    db = hub.store._db  # type: ignore[attr-defined]
    now = time.time()
    spec = {"id": "bad-tags", "kind": "snapshot", "location": "m:f", "tags": {"t": SURROGATE}}
    db.execute(
        "INSERT INTO probes (id, signature, probe, selector, state, created_at) "
        "VALUES ('bad-tags', 'sig', ?, '{}', 'active', ?)",
        (json.dumps(spec), now),
    )
    db.execute(
        "INSERT INTO probes (id, signature, probe, selector, state, created_at) "
        "VALUES ('bad-json', 'sig', '{not json', '{}', 'active', ?)",
        (now,),
    )
    db.execute(
        "INSERT INTO sources (id, service, labels, first_seen, last_seen) "
        "VALUES ('bad-source', CAST(X'73686F70ED' AS TEXT), '{}', ?, ?)",
        (now, now),
    )
    db.execute(
        "INSERT INTO hits (probe_id, signature, source_id, hit_id, ts, received_at, body) "
        "VALUES (?, 'sig', 'x', 'bad', 1, 1, CAST(X'7BFF7D' AS TEXT))",
        (good_probe["id"],),
    )
    db.execute(
        "INSERT INTO statuses (probe_id, source_id, body, updated_at) VALUES (?, 'x', ?, 1)",
        (good_probe["id"], json.dumps({"probe_id": good_probe["id"], "reason": SURROGATE})),
    )


def test_bad_records_already_stored_do_not_break_listings_or_polls(
    client: TestClient, hub: Hub
) -> None:
    source_id = register(client)
    good = place(client)
    post_hits(client, source_id, [hit(good, 0)])
    _insert_bad_rows(hub, good)
    # a new probe makes the hub reload its active set (with the bad rows in the table)
    second = place(client)

    answer = client.get("/v1/probes", headers=auth(CLIENT))
    assert answer.status_code == 200, answer.text
    listing = answer.json()
    assert [p["id"] for p in listing["probes"]] == [good["id"], second["id"]]
    assert {q["id"] for q in listing["quarantined"]} == {"bad-tags", "bad-json"}
    assert all(q["reason"] for q in listing["quarantined"])
    assert listing["probes"][0]["statuses"] == {}  # the bad status row is left out

    sources = client.get("/v1/sources", headers=auth(CLIENT)).json()
    assert [s["id"] for s in sources["sources"]] == [source_id]
    assert [q["id"] for q in sources["quarantined"]] == ["bad-source"]

    assert {p["id"] for p in poll(client, source_id)["probes"]} == {good["id"], second["id"]}

    page = client.get(f"/v1/probes/{good['id']}/hits", headers=auth(CLIENT))
    assert page.status_code == 200, page.text
    assert [h["hit_id"] for h in page.json()["hits"]] == ["h-0"]
    assert len(page.json()["quarantined"]) == 1
    evidence = client.get(f"/v1/probes/{good['id']}/evidence", headers=auth(CLIENT))
    assert evidence.status_code == 200
    assert len(evidence.text.splitlines()) == 3  # header, probe, the one readable hit

    # a quarantined probe can still be removed, and a removed probe leaves every poll
    client.delete(f"/v1/probes/{second['id']}", headers=auth(CLIENT))
    assert [p["id"] for p in poll(client, source_id)["probes"]] == [good["id"]]
    gone = client.delete("/v1/probes/bad-tags", headers=auth(CLIENT))
    assert _error(gone)[:2] == (409, "quarantined")
    states = dict(
        hub.store._db.execute("SELECT id, state FROM probes").fetchall()  # type: ignore[attr-defined]
    )
    assert states["bad-tags"] == "removed"


def test_a_hit_id_with_a_control_character_is_refused_naming_it(client: TestClient) -> None:
    source_id = register(client)
    record = place(client)
    answer = _post(
        client,
        f"/v1/sensors/{source_id}/hits",
        {"hits": [hit(record, 0, hit_id="h\x00-0")]},
        SENSOR,
    )
    status, code, message = _error(answer)
    assert (status, code) == (422, "invalid_hit")
    assert message.startswith("hits[0].hit_id: got "), message
