"""Helpers for the hub's unit tests: tokens, and the calls a sensor and a client make."""

from __future__ import annotations

from typing import Any

from starlette.testclient import TestClient

ADMIN, SENSOR, CLIENT = "admin-secret", "sensor-secret", "client-secret"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def register(client: TestClient, service: str = "shop", **fields: Any) -> str:
    body = {"service": service, "host": "h1", "pid": 42, "python": "3.12.1", **fields}
    answer = client.post("/v1/sensors/register", json=body, headers=auth(SENSOR))
    assert answer.status_code == 200, answer.text
    source_id: str = answer.json()["source_id"]
    return source_id


def place(
    client: TestClient,
    location: str = "shop.pricing:apply_discount",
    *,
    selector: dict[str, Any] | None = None,
    ttl: float | None = None,
    **probe: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"probe": {"kind": "snapshot", "location": location, **probe}}
    if selector is not None:
        body["selector"] = selector
    if ttl is not None:
        body["ttl"] = ttl
    answer = client.post("/v1/probes", json=body, headers=auth(CLIENT))
    assert answer.status_code == 201, answer.text
    record: dict[str, Any] = answer.json()["probe"]
    return record


def poll(client: TestClient, source_id: str, etag: str | None = None, wait: float = 0) -> Any:
    query: dict[str, Any] = {"wait": wait}
    if etag is not None:
        query["etag"] = etag
    answer = client.get(f"/v1/sensors/{source_id}/probes", params=query, headers=auth(SENSOR))
    assert answer.status_code == 200, answer.text
    return answer.json()


def hit(probe: dict[str, Any], n: int = 0, **fields: Any) -> dict[str, Any]:
    return {
        "probe_id": probe["id"],
        "signature": probe["signature"],
        "kind": "snapshot",
        "location": "shop.pricing:apply_discount@return",
        "ts": 1_700_000_000.0 + n,
        "hit_id": f"h-{n}",
        "captures": {"price": n},
        **fields,
    }


def post_hits(client: TestClient, source_id: str, hits: list[dict[str, Any]], **extra: Any) -> Any:
    answer = client.post(
        f"/v1/sensors/{source_id}/hits", json={"hits": hits, **extra}, headers=auth(SENSOR)
    )
    assert answer.status_code == 200, answer.text
    return answer.json()
