"""A sensor token is only a sensor's: its services, its sources, the probes its sources got."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hub_helpers import ADMIN, CLIENT, SENSOR, auth, hit, place, poll, post_hits, register
from starlette.testclient import TestClient

from sensor.hub.core import Hub


def _error(answer: Any) -> tuple[int, str, str]:
    data = answer.json()
    return answer.status_code, data["error"]["code"], data["error"]["message"]


def _token(client: TestClient, name: str, scope: str = "sensor", **extra: Any) -> dict[str, Any]:
    answer = client.post(
        "/v1/tokens", json={"name": name, "scope": scope, **extra}, headers=auth(ADMIN)
    )
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _register_with(client: TestClient, token: str, service: str = "shop") -> Any:
    return client.post("/v1/sensors/register", json={"service": service}, headers=auth(token))


def test_a_sensor_token_limited_to_services_registers_only_as_those(client: TestClient) -> None:
    created = _token(client, "shop sensors", services=["shop", "shop-worker"])
    assert created["services"] == ["shop", "shop-worker"]
    listed = client.get("/v1/tokens", headers=auth(ADMIN)).json()["tokens"]
    assert {t["name"]: t["services"] for t in listed}["shop sensors"] == ["shop", "shop-worker"]
    assert _register_with(client, created["token"], "shop").status_code == 200
    assert _register_with(client, created["token"], "shop-worker").status_code == 200
    status, code, message = _error(_register_with(client, created["token"], "billing"))
    assert (status, code) == (403, "service_not_allowed")
    assert "'billing'" in message
    assert "'shop'" in message
    assert "shop sensors" in message
    # the same token without a list (the start-up one) registers as anything
    assert _register_with(client, SENSOR, "billing").status_code == 200


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"name": "c", "scope": "client", "services": ["shop"]}, "services"),
        ({"name": "s", "scope": "sensor", "services": []}, "services"),
        ({"name": "s", "scope": "sensor", "services": [""]}, "services[0]"),
        ({"name": "x" * 65, "scope": "sensor"}, "name"),
        ({"name": "evil\x1b[31m", "scope": "sensor"}, "name"),
        ({"name": "new\nline", "scope": "admin"}, "name"),
        ({"name": "", "scope": "admin"}, "name"),
    ],
)
def test_token_options_and_names_are_bounded(
    client: TestClient, body: dict[str, Any], named: str
) -> None:
    status, code, message = _error(client.post("/v1/tokens", json=body, headers=auth(ADMIN)))
    assert (status, code) == (422, "invalid_field")
    assert message.startswith(f"{named}: got "), message
    names = [t["name"] for t in client.get("/v1/tokens", headers=auth(ADMIN)).json()["tokens"]]
    assert body["name"] not in names


@pytest.fixture
def two_sensors(client: TestClient) -> tuple[str, str, str]:
    """A source registered by the start-up sensor token, another sensor token, a probe."""
    other = _token(client, "another team")["token"]
    source_id = register(client)
    return source_id, other, place(client)["id"]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/sensors/{sid}/probes", None),
        ("POST", "/v1/sensors/{sid}/heartbeat", {"statuses": [], "dropped": 5}),
        ("POST", "/v1/sensors/{sid}/hits", "hits"),
        ("POST", "/v1/sensors/{sid}/deregister", {}),
    ],
)
def test_a_sources_calls_are_refused_to_every_other_token(
    client: TestClient,
    hub: Hub,
    two_sensors: tuple[str, str, str],
    method: str,
    path: str,
    body: Any,
) -> None:
    source_id, other, probe_id = two_sensors
    record = client.get(f"/v1/probes/{probe_id}", headers=auth(CLIENT)).json()["probe"]
    if body == "hits":
        body = {"hits": [hit(record, 1)], "dropped": {probe_id: 3}}
    url = path.format(sid=source_id)
    for token, expected in (
        (other, "not_your_source"),
        (CLIENT, "forbidden"),
        (ADMIN, "forbidden"),
    ):
        answer = client.request(method, url, json=body, headers=auth(token))
        status, code, message = _error(answer)
        assert (status, code) == (403, expected), (token, answer.text)
        if expected == "not_your_source":
            assert source_id in message
            assert "another token" in message
    # nothing the others sent was taken
    state = client.get(f"/v1/probes/{probe_id}", headers=auth(CLIENT)).json()["probe"]
    assert (state["hit_count"], state["dropped"]) == (0, 0)
    (source,) = client.get("/v1/sources", headers=auth(CLIENT)).json()["sources"]
    assert (source["state"], source["dropped"]) == ("live", 0)
    # and the owner still may
    answer = client.request(method, url, json=body, headers=auth(SENSOR))
    assert answer.status_code == 200, answer.text


def test_hits_only_reach_the_probes_the_source_was_given(client: TestClient, hub: Hub) -> None:
    shop = register(client, "shop")
    mine = place(client, selector={"service": "shop"})
    theirs = place(client, selector={"service": "billing"})
    removed = place(client)
    expired = place(client, ttl=0.05)
    client.delete(f"/v1/probes/{removed['id']}", headers=auth(CLIENT))
    time.sleep(0.1)  # expired, though the sweeper has not run
    batch = [
        hit(mine, 0),
        hit(theirs, 1),
        hit(theirs, 2),
        hit(removed, 3),
        hit(expired, 4),
        hit({"id": "no-such-probe", "signature": "x"}, 5),
    ]
    answer = post_hits(client, shop, batch, dropped={theirs["id"]: 7, mine["id"]: 2})
    assert answer == {
        "accepted": 1,
        "declined": 5,
        "declined_by_probe": {
            theirs["id"]: {"not_given": 2},
            removed["id"]: {"probe_removed": 1},
            expired["id"]: {"probe_expired": 1},
            "no-such-probe": {"unknown_probe": 1},
        },
    }
    listed = {p["id"]: p for p in client.get("/v1/probes", headers=auth(CLIENT)).json()["probes"]}
    assert (listed[mine["id"]]["hit_count"], listed[mine["id"]]["dropped"]) == (1, 2)
    # another service's probe takes neither hits nor drop counts from this source
    assert (listed[theirs["id"]]["hit_count"], listed[theirs["id"]]["dropped"]) == (0, 0)
    assert [p["id"] for p in poll(client, shop)["probes"]] == [mine["id"]]


def test_statuses_only_reach_the_probes_the_source_was_given(client: TestClient) -> None:
    shop = register(client, "shop")
    theirs = place(client, selector={"service": "billing"})
    answer = client.post(
        f"/v1/sensors/{shop}/heartbeat",
        json={"statuses": [{"probe_id": theirs["id"], "state": "installed", "hits": 99}]},
        headers=auth(SENSOR),
    )
    assert answer.status_code == 200
    record = client.get(f"/v1/probes/{theirs['id']}", headers=auth(CLIENT)).json()["probe"]
    assert record["statuses"] == {}


def test_a_retried_batch_of_a_completed_probe_is_accepted_not_declined(client: TestClient) -> None:
    source_id = register(client)
    record = place(client, limits={"max_hits": 2})
    batch = [hit(record, n) for n in range(2)]
    assert post_hits(client, source_id, batch)["accepted"] == 2
    # the answer was lost; the sensor sends the same batch again: the hub holds these hits
    again = post_hits(client, source_id, [*batch, hit(record, 9)])
    assert again == {
        "accepted": 2,
        "declined": 1,
        "declined_by_probe": {record["id"]: {"max_hits": 1}},
    }
