"""Fault tests: the service answers every request and every hit is received or counted as dropped.

Each test drives a gunicorn service attached with ``python -m sensor run`` against a real hub
(``python -m sensor hub``), breaks the hub in one way, and checks the accounting:
hits received by the hub + hits dropped and counted = hits produced (one per request).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_support import (
    Cleanup,
    Gunicorn,
    HostileProxy,
    HubProcess,
    Traffic,
    all_hits,
    cleanup,
    free_port,
    hits_and_drops,
    installed_sources,
    median,
    percentile,
    place_probe,
    probe_states,
    sensor_env,
    service_name,
    wait_until,
)

from sensor.client import HubClient

pytestmark = pytest.mark.integration
__all__ = ["cleanup"]


def armed(client: HubClient, service: str, workers: int) -> str:
    """Place the probe and wait until every worker installed it; return its id."""
    probe = place_probe(client, service)
    assert wait_until(lambda: len(installed_sources(client, probe["id"])) >= workers, 10), (
        probe_states(client, probe["id"])
    )
    probe_id: str = probe["id"]
    return probe_id


def settle(client: HubClient, probe_id: str, produced: int, timeout: float = 10) -> tuple[int, int]:
    """Wait until received + dropped reaches what was produced; return (received, dropped)."""
    wait_until(lambda: sum(hits_and_drops(client, probe_id)) >= produced, timeout)
    received, dropped = hits_and_drops(client, probe_id)
    # hit_count counts distinct hits: a batch retried after a lost answer is not counted twice.
    assert len({h["hit_id"] for h in all_hits(client, probe_id)}) == received
    return received, dropped


def test_hub_not_started_yet(tmp_path: Path, cleanup: Cleanup) -> None:
    port = free_port()
    service = service_name()
    app = cleanup.add(Gunicorn(tmp_path, sensor_env(f"http://127.0.0.1:{port}", service)))
    traffic = Traffic(app)
    traffic.run(40)  # nobody listens at the hub's address yet
    assert traffic.answered == 40

    hub = cleanup.add(HubProcess(tmp_path, port=port).start())
    client = hub.client()
    assert wait_until(lambda: len(client.sources(service=service)) >= 3, 10)
    probe_id = armed(client, service, workers=2)
    traffic.run(200, start=40)
    assert traffic.answered == traffic.sent == 240
    assert settle(client, probe_id, 200) == (200, 0)


def test_hub_killed_under_load_and_restarted(tmp_path: Path, cleanup: Cleanup) -> None:
    hub = cleanup.add(HubProcess(tmp_path).start())
    client = hub.client()
    service = service_name()
    app = cleanup.add(Gunicorn(tmp_path, sensor_env(hub.url, service)))
    probe_id = armed(client, service, workers=2)

    traffic = Traffic(app)
    load = traffic.in_thread(400, pause=0.004)
    assert wait_until(lambda: traffic.sent >= 100, 10)
    hub.kill()  # SIGKILL: in-flight batches and long polls die with it
    assert wait_until(lambda: traffic.sent >= 200, 10)
    hub.start()  # same port, same database
    load.join(30)
    assert traffic.answered == traffic.sent == 400

    received, dropped = settle(client, probe_id, 400, timeout=15)
    assert (received, dropped) == (400, 0), [
        (s["state"], s["hits"], s["reason"]) for s in client.probe(probe_id)["statuses"].values()
    ]


@pytest.mark.parametrize("fault", ["500", "garbage", "shape"])
def test_hub_answering_errors_and_garbage(tmp_path: Path, cleanup: Cleanup, fault: str) -> None:
    hub = cleanup.add(HubProcess(tmp_path).start())
    proxy = cleanup.add(HostileProxy(hub.url))
    client = hub.client()
    service = service_name()
    app = cleanup.add(Gunicorn(tmp_path, sensor_env(proxy.url, service)))
    probe_id = armed(client, service, workers=2)

    traffic = Traffic(app)
    proxy.mode = fault
    traffic.run(150)
    assert wait_until(lambda: proxy.counts.get(fault, 0) >= 4, 5)  # the sensors kept trying
    assert hits_and_drops(client, probe_id)[0] < 150  # nothing got through the fault
    proxy.mode = "pass"
    traffic.run(50, start=150)
    assert traffic.answered == traffic.sent == 200
    assert settle(client, probe_id, 200) == (200, 0)


def test_slow_hub_does_not_slow_the_service(tmp_path: Path, cleanup: Cleanup) -> None:
    hub = cleanup.add(HubProcess(tmp_path).start())
    proxy = cleanup.add(HostileProxy(hub.url))
    client = hub.client()
    service = service_name()
    app = cleanup.add(Gunicorn(tmp_path, sensor_env(proxy.url, service)))
    probe_id = armed(client, service, workers=2)

    fast = Traffic(app)
    fast.run(150)
    proxy.delay, proxy.mode = 2.0, "slow"  # every hub answer now takes 2 s
    slow = Traffic(app)
    slow.run(150, start=150)
    proxy.mode = "pass"
    assert fast.answered == slow.answered == 150
    fast_p50, slow_p50 = median(fast.latencies), median(slow.latencies)
    fast_p95, slow_p95 = percentile(fast.latencies, 0.95), percentile(slow.latencies, 0.95)
    print(
        f"service latency, hub fast: p50 {fast_p50 * 1e3:.2f} ms p95 {fast_p95 * 1e3:.2f} ms; "
        f"hub slow (2 s): p50 {slow_p50 * 1e3:.2f} ms p95 {slow_p95 * 1e3:.2f} ms"
    )
    # Generous bounds (a shared 2-core machine), still far below the hub's 2 s per answer.
    assert slow_p50 <= 2 * fast_p50 + 0.005, (fast_p50, slow_p50)
    assert slow_p95 <= 3 * fast_p95 + 0.02, (fast_p95, slow_p95)
    assert settle(client, probe_id, 300, timeout=15) == (300, 0)


def test_queue_overflow_drops_are_counted(tmp_path: Path, cleanup: Cleanup) -> None:
    hub = cleanup.add(HubProcess(tmp_path).start())
    proxy = cleanup.add(HostileProxy(hub.url))
    client = hub.client()
    service = service_name()
    env = sensor_env(proxy.url, service, SENSOR_QUEUE_SIZE="20", SENSOR_BATCH_SIZE="10")
    app = cleanup.add(Gunicorn(tmp_path, env))
    probe_id = armed(client, service, workers=2)

    traffic = Traffic(app)
    proxy.mode = "500"  # nothing leaves: each worker's queue fills up
    traffic.run(200)
    proxy.mode = "pass"
    assert traffic.answered == traffic.sent == 200
    received, dropped = settle(client, probe_id, 200)
    assert received + dropped == 200
    # Two workers keep at most queue + one batch each: the rest was dropped, and counted.
    assert received <= 2 * (20 + 10)
    assert dropped >= 200 - 2 * (20 + 10)

    def status_drops() -> int:
        return sum(s["drops"] for s in client.probe(probe_id)["statuses"].values())

    # The next heartbeats report the same drops in the per-source probe statuses.
    assert wait_until(lambda: status_drops() == dropped, 5), (status_drops(), dropped)
