"""Real hub, real services under the sensor: every hit produced is stored or a counted drop.

The check is the same in each case: for each source, its probe status's ``hits`` (hits the
engine produced) equals what the hub stored from it plus the drops it counted (queue full,
declined by the hub, lost on the way), and the hub's own drop count of the probe agrees.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from agent_support import (
    APP,
    APP_MODULE,
    Cleanup,
    Gunicorn,
    HostileProxy,
    HubProcess,
    Traffic,
    cleanup,
    installed_sources,
    place_probe,
    sensor_env,
    service_name,
    wait_until,
)

from sensor.client import HubClient

pytestmark = pytest.mark.integration
__all__ = ["cleanup"]


def _per_source(client: HubClient, probe_id: str) -> dict[str, tuple[int, int, int]]:
    """source id -> (hits produced, drops counted, hits the hub stored from it)."""
    record = client.probe(probe_id)
    stored: dict[str, int] = {}
    for hit in client.iter_hits(probe_id):
        stored[hit["source"]["id"]] = stored.get(hit["source"]["id"], 0) + 1
    return {
        sid: (int(status["hits"]), int(status["drops"]), stored.get(sid, 0))
        for sid, status in record["statuses"].items()
    }


def _accounted(client: HubClient, probe_id: str, produced: int | None = None) -> bool:
    """Every source's final figures add up, and the hub's probe record agrees with them."""
    record = client.probe(probe_id)
    figures = _per_source(client, probe_id)
    if not figures or any(st.get("state") not in ("removed", "disabled") for st in
                          record["statuses"].values()):  # fmt: skip
        return False
    if any(hits != drops + stored for hits, drops, stored in figures.values()):
        return False
    total_drops = sum(drops for _, drops, _ in figures.values())
    total_stored = sum(stored for _, _, stored in figures.values())
    if produced is not None and sum(hits for hits, _, _ in figures.values()) != produced:
        return False
    return bool(record["hit_count"] == total_stored and record["dropped"] == total_drops)


def _installed_on(client: HubClient, probe_id: str, workers: int) -> bool:
    """Installed in every worker (gunicorn's master is a source too, with the probe pending:
    it never imports the app)."""
    return len(installed_sources(client, probe_id)) >= workers


@pytest.mark.parametrize("answers", ["kept", "lost"])
def test_a_probe_reaching_max_hits_across_two_sources_counts_every_declined_hit(
    tmp_path: Path, cleanup: Cleanup, answers: str
) -> None:
    # "lost": every batch of hits reaches the hub and is committed, and its answer is lost (a
    # 502 from a load balancer): the sensors send each batch again, the batches of drop counts
    # only included, and nothing may count twice.
    hub = cleanup.add(HubProcess(tmp_path).start())
    proxy = cleanup.add(HostileProxy(hub.url))
    client = hub.client()
    service = service_name()
    app = cleanup.add(Gunicorn(tmp_path, sensor_env(proxy.url, service), workers=2))
    assert wait_until(lambda: len(client.sources(service=service)) >= 2, 15)
    probe = place_probe(client, service, limits={"rate": 1e6, "burst": 10**6, "max_hits": 40})
    assert wait_until(lambda: _installed_on(client, probe["id"], 2), 15)
    if answers == "lost":
        proxy.mode = "lose_hits_answers"
    threads = [Traffic(app).in_thread(120) for _ in range(3)]
    for thread in threads:
        thread.join(120)
    # the hub stored exactly max_hits, the rest of what both sources sent was declined
    assert wait_until(lambda: client.probe(probe["id"])["state"] == "completed", 15)
    assert wait_until(lambda: _accounted(client, probe["id"]), 20), (
        client.probe(probe["id"]),
        _per_source(client, probe["id"]),
    )
    record = client.probe(probe["id"])
    assert record["hit_count"] == 40
    assert record["ended_reason"] == "max_hits: 40 hits stored (limits.max_hits is 40)"
    figures = _per_source(client, probe["id"])
    assert len([hits for hits, _, _ in figures.values() if hits]) == 2  # both workers fired
    # they fired more than the hub kept from them: declines happened and were counted
    assert sum(hits for hits, _, _ in figures.values()) > 40
    assert record["dropped"] > 0
    if answers == "lost":
        assert proxy.counts["lose_hits_answers"] >= 2 * len(proxy.seen) > 0  # each sent twice


def test_a_hub_answering_fewer_accepted_than_sent_leaves_nothing_uncounted(
    tmp_path: Path, cleanup: Cleanup
) -> None:
    hub = cleanup.add(HubProcess(tmp_path).start())
    proxy = cleanup.add(HostileProxy(hub.url))
    client = hub.client()
    service = service_name()
    app = cleanup.add(
        Gunicorn(tmp_path, sensor_env(proxy.url, service, SENSOR_BATCH_SIZE="8"), workers=1)
    )
    assert wait_until(lambda: len(client.sources(service=service)) >= 1, 15)
    probe = place_probe(client, service)
    assert wait_until(lambda: _installed_on(client, probe["id"], 1), 15)
    proxy.mode = "halve_hits"
    traffic = Traffic(app)
    traffic.run(100)
    app.stop()  # the final flush and the final status go through the proxy too
    assert traffic.answered == 100
    assert wait_until(lambda: _accounted(client, probe["id"], produced=100), 20), (
        client.probe(probe["id"]),
        _per_source(client, probe["id"]),
    )
    ((hits, drops, stored),) = [f for f in _per_source(client, probe["id"]).values() if f[0]]
    assert (hits, drops + stored) == (100, 100)
    assert 30 <= stored <= 70  # about half of every batch was lost on the way, and counted


SCRIPT = textwrap.dedent(
    f"""
    import os, sys, time
    import {APP_MODULE}

    go = sys.argv[1]
    deadline = time.monotonic() + 20
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.02)
    for n in range(int(sys.argv[2])):
        {APP_MODULE}.total(n, 3)
    print("done", flush=True)
    """
)


def _run_script(
    tmp_path: Path, client: HubClient, service: str, env: dict[str, str], count: int
) -> tuple[dict[str, Any], subprocess.CompletedProcess[str]]:
    (tmp_path / f"{APP_MODULE}.py").write_text(APP)
    (tmp_path / "job.py").write_text(SCRIPT)
    go = tmp_path / "go"
    command = [sys.executable, "-m", "sensor", "run", "--", sys.executable, "job.py", str(go)]
    job = subprocess.Popen(
        [*command, str(count)],
        env={**env, "PYTHONPATH": str(tmp_path)},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: len(client.sources(service=service)) == 1, 10)
        probe = place_probe(client, service)
        assert wait_until(lambda: installed_sources(client, probe["id"]) != [], 10)
        go.touch()
        out, err = job.communicate(timeout=30)
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
    return probe, subprocess.CompletedProcess(job.args, job.returncode, out, err)


def test_the_last_status_reaches_the_hub_when_the_sensor_stops(
    tmp_path: Path, cleanup: Cleanup
) -> None:
    hub = cleanup.add(HubProcess(tmp_path).start())
    client = hub.client()
    service = service_name()
    # Long intervals: only the exit path can deliver the hits and report the final counts.
    env = sensor_env(hub.url, service, SENSOR_FLUSH_INTERVAL="60", SENSOR_HEARTBEAT_INTERVAL="60")
    probe, job = _run_script(tmp_path, client, service, env, 130)
    assert job.returncode == 0, job.stderr
    record = client.probe(probe["id"])
    ((source_id, status),) = record["statuses"].items()
    assert (status["hits"], status["drops"], record["hit_count"]) == (130, 0, 130)
    assert status["state"] == "removed"
    assert status["reason"] == "removed: the sensor stopped"
    (source,) = client.sources(service=service)
    assert (source["id"], source["state"]) == (source_id, "gone")


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_the_sensor_trusts_a_tls_hub_through_sensor_ca_file(
    tmp_path: Path, cleanup: Cleanup
) -> None:
    from hub_process import CLIENT_TOKEN as PLAIN_CLIENT
    from hub_process import SENSOR_TOKEN as PLAIN_SENSOR
    from hub_process import HubProcess as PlainHub

    cert, key = _self_signed(tmp_path)
    hub = PlainHub(tmp_path / "tls.db", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key))
    hub.start()
    cleanup.add(hub)
    assert hub.url.startswith("https://")
    client = HubClient(hub.url, PLAIN_CLIENT, cafile=str(cert), timeout=10)
    service = service_name()
    env = sensor_env(hub.url, service, SENSOR_TOKEN=PLAIN_SENSOR, SENSOR_CA_FILE=str(cert))
    probe, job = _run_script(tmp_path, client, service, env, 25)
    assert job.returncode == 0, job.stderr
    assert client.probe(probe["id"])["hit_count"] == 25

    # without the bundle the hub's certificate is not trusted: the sensor never registers
    untrusted = service_name()
    env = sensor_env(hub.url, untrusted, SENSOR_TOKEN=PLAIN_SENSOR, SENSOR_LOG_LEVEL="WARNING")
    (tmp_path / "idle.py").write_text("import time\ntime.sleep(1.5)\n")
    result = subprocess.run(
        [sys.executable, "-m", "sensor", "run", "--", sys.executable, "idle.py"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0
    assert "CERTIFICATE_VERIFY_FAILED" in result.stderr
    assert client.sources(service=untrusted) == []
