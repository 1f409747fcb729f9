"""Auth on every endpoint: no token and an unknown token are 401, a wrong scope is 403."""

from __future__ import annotations

import pytest
from hub_helpers import ADMIN, CLIENT, SENSOR, auth, place, register
from starlette.testclient import TestClient

from sensor.hub.api import ENDPOINTS, Endpoint
from sensor.hub.auth import allows, hash_token
from sensor.hub.core import Hub

TOKENS = {"sensor": SENSOR, "client": CLIENT, "admin": ADMIN}
GUARDED = [e for e in ENDPOINTS if e.scope is not None]


def _call(client: TestClient, endpoint: Endpoint, headers: dict[str, str]) -> int:
    path = endpoint.path.format(
        source_id="s-unknown", probe_id="p-unknown", token_id="t-unknown", hit_id="h-unknown"
    )
    answer = client.request(endpoint.method, path, headers=headers, json={})
    body = answer.json()
    assert set(body) != {"error"} or set(body["error"]) == {"code", "message"}
    return answer.status_code


def _ids(endpoint: Endpoint) -> str:
    return f"{endpoint.method} {endpoint.path}"


@pytest.mark.parametrize("endpoint", GUARDED, ids=_ids)
def test_no_token_is_401(client: TestClient, endpoint: Endpoint) -> None:
    answer = client.request(endpoint.method, endpoint.path.replace("{", "x").replace("}", ""))
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "missing_token"
    assert answer.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("endpoint", GUARDED, ids=_ids)
def test_unknown_token_is_401(client: TestClient, endpoint: Endpoint) -> None:
    assert _call(client, endpoint, auth("not-a-token")) == 401
    assert _call(client, endpoint, {"Authorization": f"Basic {CLIENT}"}) == 401


@pytest.mark.parametrize("endpoint", GUARDED, ids=_ids)
def test_wrong_scope_is_403_and_names_both_scopes(client: TestClient, endpoint: Endpoint) -> None:
    wrong = [scope for scope in TOKENS if not allows(scope, endpoint.scope or "")]
    assert wrong, "every guarded endpoint refuses some scope"
    for scope in wrong:
        path = endpoint.path.format(source_id="s", probe_id="p", token_id="t", hit_id="h")
        answer = client.request(endpoint.method, path, headers=auth(TOKENS[scope]), json={})
        assert answer.status_code == 403, scope
        message = answer.json()["error"]["message"]
        assert repr(scope) in message
        assert repr(endpoint.scope) in message


@pytest.mark.parametrize("endpoint", GUARDED, ids=_ids)
def test_right_scope_passes_auth(client: TestClient, endpoint: Endpoint) -> None:
    status = _call(client, endpoint, auth(TOKENS[endpoint.scope or ""]))
    assert status not in (401, 403)


@pytest.mark.parametrize("endpoint", [e for e in ENDPOINTS if e.scope is None], ids=_ids)
def test_open_endpoints_need_no_token(client: TestClient, endpoint: Endpoint) -> None:
    assert client.request(endpoint.method, endpoint.path).status_code == 200


def test_admin_implies_client_but_not_sensor() -> None:
    assert allows("admin", "client")
    assert allows("admin", "admin")
    assert not allows("admin", "sensor")
    assert not allows("client", "admin")
    assert not allows("sensor", "client")


def test_sensor_token_cannot_place_probes_or_read_evidence(client: TestClient) -> None:
    probe = {"kind": "snapshot", "location": "m:f"}
    placed = client.post("/v1/probes", json={"probe": probe}, headers=auth(SENSOR))
    assert placed.status_code == 403
    evidence = client.get("/v1/evidence?signature=x", headers=auth(SENSOR))
    assert evidence.status_code == 403


def test_created_token_works_once_and_removal_revokes_it_at_once(client: TestClient) -> None:
    created = client.post(
        "/v1/tokens", json={"name": "ci", "scope": "client"}, headers=auth(ADMIN)
    ).json()
    assert created["scope"] == "client"
    assert created["token"].startswith("srt_")
    assert client.get("/v1/sources", headers=auth(created["token"])).status_code == 200
    listed = client.get("/v1/tokens", headers=auth(ADMIN)).json()["tokens"]
    assert all("token" not in t and "token_hash" not in t for t in listed)
    assert created["id"] in {t["id"] for t in listed}
    removed = client.delete(f"/v1/tokens/{created['id']}", headers=auth(ADMIN))
    assert removed.status_code == 200
    assert client.get("/v1/sources", headers=auth(created["token"])).status_code == 401


def test_token_scope_must_be_known(client: TestClient) -> None:
    answer = client.post("/v1/tokens", json={"name": "x", "scope": "root"}, headers=auth(ADMIN))
    assert answer.status_code == 422
    assert "'root'" in answer.json()["error"]["message"]


def test_tokens_given_at_start_are_stored_hashed_once(hub: Hub) -> None:
    records = hub.store.list_tokens()
    assert sorted(r.scope for r in records) == ["admin", "client", "sensor"]
    assert {r.token_hash for r in records} == {hash_token(t) for t in (ADMIN, SENSOR, CLIENT)}
    hub._bootstrap_tokens()  # a restart with the same flags adds nothing
    assert len(hub.store.list_tokens()) == 3


def test_any_sensor_token_may_use_a_known_source(client: TestClient) -> None:
    # source ids are random 128-bit values: knowing one is the capability to report for it
    source_id = register(client)
    record = place(client)
    answer = client.get(f"/v1/sensors/{source_id}/probes", headers=auth(SENSOR))
    assert [p["id"] for p in answer.json()["probes"]] == [record["id"]]
