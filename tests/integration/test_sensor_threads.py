"""The sensor's own threads never fire probes: a real agent thread, a real hub, real HTTP.

A service process starts the sensor against a real hub (``python -m sensor hub``). Probes are
placed through the hub on standard-library functions that the agent's thread runs all the time
(``http.client``, ``json.encoder``, ``socket``, ``logging``, ``threading``); the service then
makes a known number of its own calls to each. Every count and every hit must be the
service's: none from the agent's thread or the waker's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hub_process import CLIENT_TOKEN, SENSOR_TOKEN, HubProcess

from sensor.client import HubClient

SERVICE = textwrap.dedent(
    """
    import http.client, json, logging, socket, sys, threading, time, urllib.parse
    import sensor

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    sensor.start()
    print("started", flush=True)
    assert sys.stdin.readline().strip() == "go"

    hub = urllib.parse.urlsplit(sys.argv[1])
    host_log = logging.getLogger("host")
    # The service's own calls, counted here: the probes must see exactly these.
    for i in range(7):
        json.dumps({"n": i})
    for _ in range(3):
        conn = http.client.HTTPConnection(hub.hostname, hub.port, timeout=10)
        conn.request("GET", "/v1/health")
        conn.getresponse().read()
        conn.close()
    for i in range(4):
        host_log.info("host message %d", i)
    workers = [threading.Thread(target=lambda: None) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    # Let the agent work with every probe armed: sends, heartbeats, polls, logging.
    time.sleep(float(sys.argv[2]))
    statuses = {p["probe_id"]: p for p in sensor.status()["probes"]}
    print(json.dumps({"statuses": statuses, "thread": threading.current_thread().name}),
          flush=True)
    assert sys.stdin.readline().strip() == "stop"
    sensor.stop()
    """
)

#: (location, kind, the service's own calls that must be counted).
COUNTERS = {
    "json.encoder:JSONEncoder.encode@entry": 7,
    "http.client:HTTPConnection.request@entry": 3,
    "socket:create_connection@entry": 3,
    "logging:Logger.info@entry": 4,
    "threading:Thread.run@entry": 2,
}


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(tmp_path / "hub.db", "--poll-wait", "1").start()
    try:
        yield process
    finally:
        process.stop()


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except Exception:  # the hub is busy or the source not there yet: look again
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_probes_on_what_the_agent_runs_count_only_the_services_own_calls(
    hub: HubProcess, tmp_path: Path
) -> None:
    service = f"threads-{uuid.uuid4().hex[:8]}"
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
    env.update(
        SENSOR_HUB_URL=hub.url,
        SENSOR_TOKEN=SENSOR_TOKEN,
        SENSOR_SERVICE=service,
        SENSOR_FLUSH_INTERVAL="0.1",
        SENSOR_HEARTBEAT_INTERVAL="0.3",
        SENSOR_POLL_WAIT="1",
        SENSOR_LOG_LEVEL="INFO",  # the agent logs through logging, on its thread
        SENSOR_CPU_BUDGET="1",
    )
    proc = subprocess.Popen(
        [sys.executable, str(script), hub.url, "3"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline().strip() == "started"
        client = HubClient(hub.url, CLIENT_TOKEN, timeout=10)
        source = _wait(lambda: client.sources(service=service), 30, "the source")[0]
        placed = {
            location: client.place_probe(
                {"kind": "counter", "location": location},
                selector={"service": service},
                ttl=300,
            )["id"]
            for location in COUNTERS
        }
        # Every response the agent reads (polls, sends, heartbeats) would be a hit of this.
        begin = client.place_probe(
            {
                "kind": "log",
                "location": "http.client:HTTPResponse.begin@entry",
                "template": "begin",
                "limits": {"rate": 1_000_000.0, "burst": 1_000_000},
            },
            selector={"service": service},
            ttl=300,
        )["id"]
        # max_hits in the status: the service's 3 calls reach it, the agent's never count.
        capped = client.place_probe(
            {
                "kind": "snapshot",
                "location": "http.client:HTTPConnection.getresponse@entry",
                "capture": ["self"],
                "limits": {"rate": 1_000_000.0, "max_hits": 2},
            },
            selector={"service": service},
            ttl=300,
        )["id"]
        every = [*placed.values(), begin, capped]

        def all_installed() -> bool:
            records = [client.probe(probe_id) for probe_id in every]
            return all(
                r["statuses"].get(source["id"], {}).get("state") == "installed" for r in records
            )

        _wait(all_installed, 30, "every probe installed on the source")
        proc.stdin.write("go\n")
        proc.stdin.flush()
        report = json.loads(proc.stdout.readline())
        statuses = report["statuses"]
        got = {location: statuses[probe_id]["hits"] for location, probe_id in placed.items()}
        assert got == COUNTERS, "only the service's own calls are counted"
        assert statuses[begin]["hits"] == 3

        def begin_hits() -> list[dict[str, Any]] | None:
            hits = list(client.iter_hits(begin))
            return hits if len(hits) >= 3 else None

        hits = _wait(begin_hits, 30, "the service's hits at the hub")
        assert len(hits) == 3
        assert {hit["thread"] for hit in hits} == {report["thread"]}
        # The hub has the disabled state and its reason from the sensor's heartbeat.
        _wait(
            lambda: client.probe(capped)["statuses"][source["id"]]["state"] == "disabled",
            30,
            "the disabled status at the hub",
        )
        status = client.probe(capped)["statuses"][source["id"]]
        assert "reached max_hits (2)" in status["reason"]
        assert status["hits"] == 2
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        assert proc.wait(30) == 0
        # stop() removes every probe, then sends its last heartbeat: it still carries each
        # probe's final counts (the engine keeps a removed probe's last status).
        final = client.probe(begin)["statuses"][source["id"]]
        assert (final["state"], final["hits"]) == ("removed", 3)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdin.close()
        proc.stdout.close()
