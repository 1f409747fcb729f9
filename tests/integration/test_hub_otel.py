"""OpenTelemetry export from a real hub process to a real OTLP/HTTP receiver.

The receiver (``tests/otlp_receiver.py``) decodes the protobuf the SDK's exporters send with
opentelemetry-proto, as a collector would. The hub is ``python -m sensor hub --otel-endpoint``.
"""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_support import (
    APP,
    APP_MODULE,
    Cleanup,
    Gunicorn,
    Traffic,
    cleanup,
    installed_sources,
    place_probe,
    sensor_env,
    service_name,
    wait_until,
)
from agent_support import HubProcess as ServiceHub
from hub_process import CLIENT_TOKEN, SENSOR_TOKEN, HubProcess, call
from otlp_receiver import OtlpReceiver

from sensor.client import HubClient

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
pytest.importorskip("opentelemetry.proto", reason="opentelemetry-proto is not installed")

pytestmark = pytest.mark.integration
__all__ = ["cleanup"]


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    yield server
    server.close()


@pytest.fixture
def hub(tmp_path: Path, receiver: OtlpReceiver) -> Iterator[HubProcess]:
    process = HubProcess(
        tmp_path / "hub.db",
        "--otel-endpoint",
        receiver.url,
        env={"SENSOR_HUB_OTEL_METRIC_INTERVAL": "0.3"},
    ).start()
    yield process
    process.stop()


def _place(hub: HubProcess, kind: str, **probe: Any) -> dict[str, Any]:
    status, answer = call(
        hub.url,
        "POST",
        "/v1/probes",
        CLIENT_TOKEN,
        {"probe": {"kind": kind, "location": "shop.pricing:total", **probe}},
    )
    assert status == 201, answer
    record: dict[str, Any] = answer["probe"]
    return record


def _hit(probe: dict[str, Any], n: int, **fields: Any) -> dict[str, Any]:
    return {
        "probe_id": probe["id"],
        "signature": probe["signature"],
        "kind": probe["probe"]["kind"],
        "location": "shop.pricing:total@return",
        "ts": 1_700_000_000.5 + n,
        "hit_id": f"h-{n}",
        **fields,
    }


def test_hits_become_log_records_and_aggregates_become_metrics(
    hub: HubProcess, receiver: OtlpReceiver
) -> None:
    snapshot = _place(hub, "snapshot", capture=["price"])
    log = _place(hub, "log", template="price={price}")
    expect = _place(hub, "expect", expect="price > 0")
    counter = _place(hub, "counter")
    timer = _place(hub, "timer")
    _, registered = call(
        hub.url,
        "POST",
        "/v1/sensors/register",
        SENSOR_TOKEN,
        {"service": "shop", "version": "2.1", "host": "web-1", "pid": 4242},
    )
    source_id = registered["source_id"]
    captures = {"price": {"type": "int", "value": 7}, "note": "<redacted>"}
    hits = [
        _hit(snapshot, 0, captures=captures, line=12, thread="MainThread", truncated=True),
        _hit(log, 1, message="price=7"),
        _hit(expect, 2, captures={"price": -1}, expect={"ok": False, "error": None}),
        _hit(snapshot, 3, exception={"type": "builtins.ValueError", "message": "bad"}),
        _hit(counter, 4, aggregate={"count": 5, "total": 5}),
        _hit(counter, 5, aggregate={"count": 3, "total": 8}),
        _hit(timer, 6, aggregate={"count": 4, "sum_ns": 4000, "min_ns": 200, "max_ns": 2500}),
    ]
    status, answer = call(
        hub.url, "POST", f"/v1/sensors/{source_id}/hits", SENSOR_TOKEN, {"hits": hits}
    )
    assert (status, answer["accepted"]) == (200, 7)
    attrs = {"pytest_runtime.probe.id": counter["id"]}
    assert wait_until(lambda: len(receiver.logs) >= 4, 15), receiver.logs
    assert wait_until(lambda: receiver.latest("pytest_runtime.probe.calls", **attrs) == 8, 15)
    time.sleep(0.5)  # anything more that would arrive (it must not)

    by_hit = {record["attributes"]["pytest_runtime.hit.id"]: record for record in receiver.logs}
    assert sorted(by_hit) == ["h-0", "h-1", "h-2", "h-3"]  # counters and timers are metrics
    first = by_hit["h-0"]
    assert first["event_name"] == "pytest_runtime.hit"
    assert first["time_unix_nano"] == 1_700_000_000_500_000_000
    assert (first["severity_text"], first["severity_number"]) == ("INFO", 9)
    assert first["resource"]["service.name"] == "pytest-runtime-hub"
    assert first["attributes"] == {
        "pytest_runtime.probe.id": snapshot["id"],
        "pytest_runtime.probe.signature": snapshot["signature"],
        "pytest_runtime.probe.location": "shop.pricing:total@return",
        "pytest_runtime.probe.kind": "snapshot",
        "pytest_runtime.hit.id": "h-0",
        "pytest_runtime.source.id": source_id,
        "pytest_runtime.captures": json.dumps(captures, separators=(",", ":"), sort_keys=True),
        "pytest_runtime.truncated": True,
        "service.name": "shop",
        "service.version": "2.1",
        "host.name": "web-1",
        "process.pid": 4242,
        "code.lineno": 12,
        "thread.name": "MainThread",
    }
    assert json.loads(first["body"]) == captures  # what the sensor sent, "<redacted>" included
    assert by_hit["h-1"]["body"] == "price=7"
    assert (by_hit["h-2"]["severity_text"], by_hit["h-2"]["severity_number"]) == ("WARN", 13)
    assert json.loads(by_hit["h-2"]["attributes"]["pytest_runtime.expect"]) == {
        "ok": False,
        "error": None,
    }
    assert by_hit["h-3"]["severity_text"] == "ERROR"

    timer_attrs = {"pytest_runtime.probe.id": timer["id"], "service.name": "shop"}
    assert wait_until(
        lambda: receiver.latest("pytest_runtime.probe.duration", **timer_attrs) == 4000, 15
    )
    assert receiver.latest("pytest_runtime.probe.timed_calls", **timer_attrs) == 4
    assert receiver.latest("pytest_runtime.probe.duration.min", **timer_attrs) == 200
    assert receiver.latest("pytest_runtime.probe.duration.max", **timer_attrs) == 2500
    units = {p["name"]: (p["unit"], p["kind"]) for p in receiver.points}
    assert units["pytest_runtime.probe.duration"] == ("ns", "sum")
    assert units["pytest_runtime.probe.duration.max"] == ("ns", "gauge")
    assert units["pytest_runtime.probe.calls"] == ("{call}", "sum")


def test_only_stored_hits_are_exported(hub: HubProcess, receiver: OtlpReceiver) -> None:
    probe = _place(hub, "snapshot", limits={"max_hits": 2})
    _, registered = call(hub.url, "POST", "/v1/sensors/register", SENSOR_TOKEN, {"service": "s"})
    path = f"/v1/sensors/{registered['source_id']}/hits"
    batch = {"hits": [_hit(probe, n, captures={"n": n}) for n in range(5)]}
    _, answer = call(hub.url, "POST", path, SENSOR_TOKEN, batch)
    assert (answer["accepted"], answer["declined"]) == (2, 3)
    _, again = call(hub.url, "POST", path, SENSOR_TOKEN, batch)  # a retry stores nothing new
    assert again["accepted"] == 2
    assert wait_until(lambda: len(receiver.logs) >= 2, 15)
    time.sleep(1.5)  # the log processor's schedule: a third record would have arrived by now
    assert sorted(r["attributes"]["pytest_runtime.hit.id"] for r in receiver.logs) == [
        "h-0",
        "h-1",
    ]


SECRET_APP = APP.replace(
    "    price = amount * qty\n",
    textwrap.indent(
        textwrap.dedent(
            """\
            api_token = f"tok-{amount}-do-not-export"
            customer_email = f"buyer{qty}@example.com"
            price = amount * qty
            """
        ),
        "    ",
    ),
)


def test_what_the_sensor_redacted_stays_redacted_in_the_export(
    tmp_path: Path, cleanup: Cleanup, receiver: OtlpReceiver
) -> None:
    assert SECRET_APP != APP
    hub = cleanup.add(ServiceHub(tmp_path, 0, "--otel-endpoint", receiver.url).start())
    client = HubClient(hub.url, "client-token-for-tests", timeout=10)
    service = service_name()
    app = cleanup.add(Gunicorn(tmp_path, sensor_env(hub.url, service), app=SECRET_APP))
    probe = place_probe(
        client,
        service,
        location=f"{APP_MODULE}:total@return",
        capture=["amount", "api_token", "customer_email", "price"],
    )
    assert wait_until(lambda: len(installed_sources(client, probe["id"])) >= 2, 15)
    Traffic(app).run(20)
    assert wait_until(lambda: client.probe(probe["id"])["hit_count"] >= 20, 15)
    assert wait_until(lambda: len(receiver.logs) >= 20, 15)
    stored = {hit["hit_id"]: hit for hit in client.iter_hits(probe["id"])}
    exported = {r["attributes"]["pytest_runtime.hit.id"]: r for r in receiver.logs}
    assert sorted(exported) == sorted(stored)
    for hit_id, record in exported.items():
        # exactly the captures the hub stored: the hub adds no value and removes no marker
        assert (
            json.loads(record["attributes"]["pytest_runtime.captures"])
            == (stored[hit_id]["captures"])
        )
    assert all(b"do-not-export" not in body for body in receiver.raw)
    assert all(b"@example.com" not in body for body in receiver.raw)
    assert any(b"api_token" in body for body in receiver.raw)  # the name is there, redacted
