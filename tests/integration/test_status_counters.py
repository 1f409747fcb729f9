"""The counters a sensor reports for a probe reach the hub exact: a real hub, a real service.

The service runs under ``python -m sensor run``; its probes are placed through the hub's HTTP
API and driven with real HTTP requests; the counters are read back from the hub, which stores
each source's ``ProbeStatus``. Each test knows what the traffic was and checks every counter
against it: evaluation errors apart from false evaluations, firings skipped by a closed gate,
and the rare-state sampling's value classes.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hub_process import CLIENT_TOKEN, SENSOR_TOKEN, HubProcess, call
from mcp_support import WAIT_SCALE, Service, probe_record, start_hub, wait_until

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    process = start_hub(tmp_path_factory.mktemp("hub"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def shop(hub: HubProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = Service(tmp_path_factory.mktemp("shop"), hub, f"shop-{uuid.uuid4().hex[:6]}")
    yield service
    service.stop()


def place(hub: HubProcess, shop: Service, probe: dict[str, Any]) -> str:
    body = {"probe": probe, "selector": {"service": shop.service}, "ttl": 300}
    status, answer = call(hub.url, "POST", "/v1/probes", CLIENT_TOKEN, body)
    assert status == 201, answer
    probe_id = str(answer["probe"]["id"])

    def installed() -> bool:
        statuses = probe_record(hub, probe_id)["statuses"].values()
        return any(s.get("state") == "installed" for s in statuses)

    assert wait_until(installed, 10 * WAIT_SCALE), probe_record(hub, probe_id)
    return probe_id


def status_when(hub: HubProcess, probe_id: str, done: Any) -> dict[str, Any]:
    """The probe's status on its one source, once ``done(status)`` holds (heartbeats lag)."""

    def read() -> dict[str, Any] | None:
        statuses = list(probe_record(hub, probe_id)["statuses"].values())
        if len(statuses) == 1 and done(statuses[0]):
            return dict(statuses[0])
        return None

    found = wait_until(read, 10 * WAIT_SCALE)
    assert found, probe_record(hub, probe_id)
    return dict(found)


def test_evaluation_errors_are_counted_apart_from_false_evaluations(
    hub: HubProcess, shop: Service
) -> None:
    # 100 / x > 10: true for x in 1..9, false for x >= 10, an evaluation error at x = 0. Fired
    # back to back: most violations are not captured, and the split is exact all the same.
    probe_id = place(
        hub, shop, {"kind": "expect", "location": "mcp_shop_app:ratio@return",
                    "expect": "100 / x > 10"},
    )  # fmt: skip
    xs = [1, 4, 7, 0, 20, 0, 30, 2, 0, 11, 0, 50, 9]
    for x in xs:
        shop.get(f"/ratio?x={x}")
    status = status_when(hub, probe_id, lambda s: s.get("evaluations") == len(xs))
    assert status["violations"] == sum(1 for x in xs if x == 0 or x >= 10)
    assert status["expect_errors"] == xs.count(0)


def test_firings_skipped_by_a_closed_gate_are_counted_under_their_reason(
    hub: HubProcess, shop: Service
) -> None:
    # 2 evaluations a second on a function called 3,000 times in one request: once the burst
    # is spent the gate closes until its next token, and the firings meanwhile cost no call.
    probe_id = place(
        hub, shop, {"kind": "expect", "location": "mcp_shop_app:basket@return",
                    "expect": "count >= 0", "limits": {"eval_rate": 2}},
    )  # fmt: skip
    calls = 3000
    assert shop.get(f"/batch?n={calls}") == {"calls": calls}

    def counted(s: dict[str, Any]) -> bool:
        return int(s.get("evaluations", 0)) + int(s.get("skipped_rate", 0)) >= calls

    status = status_when(hub, probe_id, counted)
    # Every call counted once: evaluated, or skipped by the evaluation rate (CPU budget off).
    assert status["evaluations"] + status["skipped_rate"] == calls
    assert status["skipped_budget"] == 0
    assert 1 <= status["evaluations"] < 100
    # Of the skipped ones, nearly all were skipped while the gate was closed.
    assert 0 < status["skipped_closed"] <= status["skipped_rate"]
    assert status["skipped_closed"] >= status["skipped_rate"] - status["evaluations"] - 1


def test_rare_state_sampling_counts_the_value_classes_it_saw(
    hub: HubProcess, shop: Service
) -> None:
    # A snapshot with an expectation captures passing calls at 1 a second; a call whose value
    # classes (the signs of price and of the result) are new is captured anyway, and counted.
    probe_id = place(
        hub, shop, {"kind": "snapshot", "location": "mcp_shop_app:discount@return",
                    "expect": "result <= price or price < 0"},
    )  # fmt: skip
    prices = [5, 6, 7, 8, -5, -6, 0, 9, -7, 0]
    for price in prices:
        shop.get(f"/discount?price={price}&rate=0.1")
    status = status_when(hub, probe_id, lambda s: s.get("evaluations") == len(prices))
    assert status["novel_classes"] == 3  # (+, +), (-, -), (0, 0)
    # The first call is captured within the rate (its class noted); the two new classes are
    # captured as new unless the rate had a token again by then.
    assert 1 <= status["novel_admitted"] <= 2
    assert status["novel_refused"] == status["novel_full"] == 0
    # Each admitted one is a hit, beside the first (and any a new token of the rate allowed).
    assert status["hits"] >= 1 + status["novel_admitted"]


def test_the_hub_keeps_the_counters_in_the_status_it_stores(hub: HubProcess) -> None:
    # Stored and read back as the sensor sent them, by the hub's own store.
    status, registered = call(
        hub.url, "POST", "/v1/sensors/register", SENSOR_TOKEN,
        {"service": "shop-store", "version": "1.0", "host": "h", "pid": 1, "python": "3.11",
         "labels": {}, "runtime_id": f"rt-{uuid.uuid4().hex}", "sensor_version": "0",
         "backend": "bytecode"},
    )  # fmt: skip
    assert status in (200, 201), registered
    source = registered["source_id"]
    counters = {"evaluations": 10, "violations": 4, "expect_errors": 3, "skipped_rate": 7,
                "skipped_closed": 6, "novel_classes": 2, "novel_admitted": 1,
                "novel_refused": 5, "novel_full": 0}  # fmt: skip
    status, answer = call(
        hub.url, "POST", "/v1/probes", CLIENT_TOKEN,
        {"probe": {"kind": "expect", "location": "m:f@return", "expect": "result"},
         "selector": {"service": "shop-store"}, "ttl": 300},
    )  # fmt: skip
    assert status == 201, answer
    probe_id = answer["probe"]["id"]
    status, answer = call(
        hub.url, "POST", f"/v1/sensors/{source}/heartbeat", SENSOR_TOKEN,
        {"statuses": [{"probe_id": probe_id, "state": "installed", **counters}], "dropped": 0},
    )  # fmt: skip
    assert status == 200, answer
    stored = probe_record(hub, probe_id)["statuses"]
    [one] = stored.values()
    assert {name: one[name] for name in counters} == counters


def test_a_counter_an_older_sensor_does_not_send_stays_unknown(hub: HubProcess) -> None:
    # Stored as 0 it would read "0 evaluation errors" for a sensor that counts none.
    status, registered = call(
        hub.url, "POST", "/v1/sensors/register", SENSOR_TOKEN,
        {"service": "shop-old", "version": "1.0", "host": "h", "pid": 1, "python": "3.11",
         "labels": {}, "runtime_id": f"rt-{uuid.uuid4().hex}", "sensor_version": "0",
         "backend": "bytecode"},
    )  # fmt: skip
    assert status in (200, 201), registered
    status, answer = call(
        hub.url, "POST", "/v1/probes", CLIENT_TOKEN,
        {"probe": {"kind": "expect", "location": "m:g@return", "expect": "result"},
         "selector": {"service": "shop-old"}, "ttl": 300},
    )  # fmt: skip
    assert status == 201, answer
    probe_id = answer["probe"]["id"]
    old = {"probe_id": probe_id, "state": "installed", "evaluations": 10, "violations": 4}
    status, answer = call(
        hub.url, "POST", f"/v1/sensors/{registered['source_id']}/heartbeat", SENSOR_TOKEN,
        {"statuses": [old], "dropped": 0},
    )  # fmt: skip
    assert status == 200, answer
    [one] = probe_record(hub, probe_id)["statuses"].values()
    assert (one["evaluations"], one["violations"]) == (10, 4)
    assert not set(one) & {"expect_errors", "skipped_closed", "novel_classes", "novel_admitted",
                           "novel_refused", "novel_full"}  # fmt: skip
