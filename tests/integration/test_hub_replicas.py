"""Several hub replicas on one PostgreSQL database: any replica answers, none holds state alone.

Real processes only: ``python -m sensor hub --db postgresql://...`` twice, a temporary PostgreSQL
cluster (``tests/pg_cluster.py``), a gunicorn service attached with ``python -m sensor run``, and a
round-robin TCP balancer (``tests/tcp_balancer.py``) as the one address sensors know.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from agent_support import (
    CLIENT_TOKEN,
    SENSOR_TOKEN,
    Cleanup,
    Gunicorn,
    HubProcess,
    Traffic,
    all_hits,
    cleanup,
    hits_and_drops,
    installed_sources,
    place_probe,
    probe_states,
    sensor_env,
    service_name,
    wait_until,
)
from hub_process import call
from tcp_balancer import TcpBalancer

from sensor.client import HubClient

pytestmark = pytest.mark.integration
__all__ = ["cleanup"]

ADMIN_TOKEN = "replica-admin-token-for-tests"


def replicas(tmp_path: Path, cleanup: Cleanup, url: str, count: int) -> list[HubProcess]:
    return [
        cleanup.add(
            HubProcess(
                tmp_path, 0, "--admin-token", ADMIN_TOKEN, db=url, name=f"replica-{i}"
            ).start()
        )
        for i in range(count)
    ]


def test_a_probe_placed_through_one_replica_reaches_a_sensor_polling_another(
    tmp_path: Path, cleanup: Cleanup, postgres_url: str
) -> None:
    first, second = replicas(tmp_path, cleanup, postgres_url, 2)
    status, registered = call(
        second.url, "POST", "/v1/sensors/register", SENSOR_TOKEN, {"service": "shop"}
    )
    assert status == 200, registered
    source_id = registered["source_id"]
    # the source registered through the second replica is known to the first one too
    status, sources = call(first.url, "GET", "/v1/sources", CLIENT_TOKEN)
    assert [s["id"] for s in sources["sources"]] == [source_id]
    _, answer = call(second.url, "GET", f"/v1/sensors/{source_id}/probes", SENSOR_TOKEN)
    etag = answer["etag"]

    polled: list[tuple[float, Any]] = []

    def hold() -> None:
        # a long poll on the second replica: without a change it would wait the whole 20 s
        path = f"/v1/sensors/{source_id}/probes?etag={etag}&wait=20"
        result = call(second.url, "GET", path, SENSOR_TOKEN, timeout=30)
        polled.append((time.monotonic(), result))

    poller = threading.Thread(target=hold)
    poller.start()
    time.sleep(0.5)  # the poll is parked on the second replica
    placed_at = time.monotonic()
    status, placed = call(
        first.url,
        "POST",
        "/v1/probes",
        CLIENT_TOKEN,
        {"probe": {"kind": "counter", "location": "shop.mod:f"}, "selector": {"service": "shop"}},
    )
    assert status == 201, placed
    poller.join(30)
    (answered_at, (status, answer)) = polled[0]
    assert status == 200
    assert [p["id"] for p in answer["probes"]] == [placed["probe"]["id"]]
    # woken by the first replica's NOTIFY, not by the end of the 20 s wait
    assert answered_at - placed_at < 5.0

    # removed through the second replica: the first one's next answer no longer holds it
    status, _ = call(second.url, "DELETE", f"/v1/probes/{placed['probe']['id']}", CLIENT_TOKEN)
    assert status == 200
    _, answer = call(first.url, "GET", f"/v1/sensors/{source_id}/probes", SENSOR_TOKEN)
    assert answer["probes"] == []


def test_redaction_rules_and_removed_tokens_reach_every_replica_at_once(
    tmp_path: Path, cleanup: Cleanup, postgres_url: str
) -> None:
    first, second = replicas(tmp_path, cleanup, postgres_url, 2)
    for hub in (first, second):  # start-up tokens of every replica: created once, shared
        assert call(hub.url, "GET", "/v1/sources", CLIENT_TOKEN)[0] == 200
    status, created = call(
        first.url, "POST", "/v1/tokens", ADMIN_TOKEN, {"name": "temporary", "scope": "client"}
    )
    assert status == 201, created
    temporary = created["token"]
    # the second replica caches a positive lookup of it...
    assert call(second.url, "GET", "/v1/sources", temporary)[0] == 200
    # ...and forgets it as soon as the first replica removes it (not after its cache's 5 s)
    assert call(first.url, "DELETE", f"/v1/tokens/{created['id']}", ADMIN_TOKEN)[0] == 200
    assert wait_until(lambda: call(second.url, "GET", "/v1/sources", temporary)[0] == 401, 4.0)

    status, registered = call(
        second.url, "POST", "/v1/sensors/register", SENSOR_TOKEN, {"service": "shop"}
    )
    source_id = registered["source_id"]
    _, answer = call(second.url, "GET", f"/v1/sensors/{source_id}/probes", SENSOR_TOKEN)
    status, _ = call(
        first.url,
        "PUT",
        "/v1/redaction",
        ADMIN_TOKEN,
        {"names": ["pin_code"], "patterns": [], "allow": []},
    )
    assert status == 200
    path = f"/v1/sensors/{source_id}/probes?etag={answer['etag']}&wait=60"
    started = time.monotonic()
    status, answer = call(second.url, "GET", path, SENSOR_TOKEN, timeout=90)
    assert status == 200
    assert answer["redaction"]["names"] == ["pin_code"]
    # Woken by the rule change, not by the 60 s wait (half of it: room for a loaded machine).
    assert time.monotonic() - started < 30


def test_a_replica_killed_loses_no_acknowledged_hit_and_its_sensors_move(
    tmp_path: Path, cleanup: Cleanup, postgres_url: str
) -> None:
    hubs = replicas(tmp_path, cleanup, postgres_url, 2)
    balancer = cleanup.add(TcpBalancer([("127.0.0.1", hub.port) for hub in hubs]))
    client = HubClient(balancer.url, CLIENT_TOKEN, timeout=10)
    service = service_name()
    app = cleanup.add(Gunicorn(tmp_path, sensor_env(balancer.url, service)))
    assert wait_until(lambda: len(client.sources(service=service)) >= 3, 15)
    first = place_probe(client, service)
    assert wait_until(lambda: len(installed_sources(client, first["id"])) >= 2, 15), probe_states(
        client, first["id"]
    )
    assert all(balancer.connections.values()), balancer.connections  # both replicas serve

    traffic = Traffic(app)
    load = traffic.in_thread(400, pause=0.004)
    assert wait_until(lambda: traffic.sent >= 120, 15)
    hubs[0].kill()  # SIGKILL: its open polls and in-flight batches die with it
    # a probe placed while the sensors are moving reaches every one of them
    second = place_probe(client, service, capture=["amount"])
    load.join(60)
    assert traffic.answered == traffic.sent == 400

    # every hit the service produced is stored exactly once: acknowledged hits survived the
    # kill, and batches the dead replica never answered were sent again to the live one
    assert wait_until(lambda: sum(hits_and_drops(client, first["id"])) >= 400, 20)
    received, dropped = hits_and_drops(client, first["id"])
    assert (received, dropped) == (400, 0), probe_states(client, first["id"])
    assert len({hit["hit_id"] for hit in all_hits(client, first["id"])}) == 400
    live = {s["id"] for s in client.sources(service=service) if s["state"] == "live"}
    workers = {sid for sid in live if sid in installed_sources(client, first["id"])}
    assert len(workers) >= 2
    assert wait_until(lambda: workers <= set(installed_sources(client, second["id"])), 15), (
        probe_states(client, second["id"])
    )


def test_a_standing_probe_samples_through_every_replica_into_one_summary(
    tmp_path: Path, cleanup: Cleanup, postgres_url: str
) -> None:
    from agent_support import APP_MODULE

    hubs = replicas(tmp_path, cleanup, postgres_url, 2)
    balancer = cleanup.add(TcpBalancer([("127.0.0.1", hub.port) for hub in hubs]))
    client = HubClient(balancer.url, CLIENT_TOKEN, timeout=10)
    service = service_name()
    app = cleanup.add(Gunicorn(tmp_path, sensor_env(balancer.url, service)))
    assert wait_until(lambda: len(client.sources(service=service)) >= 3, 15)
    status, placed = call(
        hubs[0].url,
        "POST",
        "/v1/probes",
        CLIENT_TOKEN,
        {
            "probe": {"kind": "snapshot", "location": f"{APP_MODULE}:total",
                      "capture": ["amount", "qty", "result"]},
            "selector": {"service": service},
            "standing": True,
        },
    )  # fmt: skip
    assert status == 201, placed
    probe_id = placed["probe"]["id"]
    assert wait_until(lambda: len(installed_sources(client, probe_id)) >= 2, 15), probe_states(
        client, probe_id
    )
    assert all(balancer.connections.values()), balancer.connections  # both replicas serve
    Traffic(app).run(300, pause=0.002)
    assert wait_until(lambda: hits_and_drops(client, probe_id)[0] > 0, 20)

    def summary() -> dict[str, Any]:
        status, body = call(hubs[1].url, "GET", f"/v1/probes/{probe_id}/standing", CLIENT_TOKEN)
        assert status == 200, body
        return dict(body)

    # hits the sensors sent through either replica are counted once, in one version's summary
    time.sleep(2.0)  # let the last batches land
    received = hits_and_drops(client, probe_id)[0]
    (version,) = summary()["versions"]
    assert version["seen"] == received
    assert 0 < version["kept"] <= 512
    hits = all_hits(client, probe_id)
    assert len(hits) == version["kept"]
    one = hits[-1]
    path = f"/v1/probes/{probe_id}/hits/{one['hit_id']}?source_id={one['source']['id']}"
    status, found = call(hubs[0].url, "GET", path, CLIENT_TOKEN)  # found by the store's find_hits
    assert status == 200, found
    assert found["hit"] == one
