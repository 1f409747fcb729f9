"""A real hub process over HTTP: a simulated sensor and a client, durability, TLS, binding."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hub_process import ADMIN_TOKEN, CLIENT_TOKEN, SENSOR_TOKEN, HubProcess, call

from sensor.client import HubClient
from sensor.errors import HubResponseError, HubUnavailableError
from sensor.probes import ProbeStatus

pytestmark = pytest.mark.integration


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(tmp_path / "hub.db").start()
    yield process
    process.stop()


def _hit(probe: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "probe_id": probe["id"],
        "signature": probe["signature"],
        "kind": probe["kind"],
        "location": probe["location"],
        "ts": time.time(),
        "hit_id": f"sim-{n}",
        "captures": {"amount": n, "qty": {"@t": "decimal.Decimal", "v": f"{n}.50"}},
    }


def test_simulated_sensor_and_client_round_trip(hub: HubProcess) -> None:
    url = hub.url
    assert url.startswith("http://127.0.0.1:")  # loopback by default
    status, registered = call(
        url,
        "POST",
        "/v1/sensors/register",
        SENSOR_TOKEN,
        {
            "service": "shop",
            "version": "1.4.2",
            "host": "web-1",
            "pid": 4242,
            "python": "3.12.1",
            "labels": {"env": "prod"},
            "runtime_id": "rt-1",
            "sensor_version": "0.1.0",
            "backend": "monitoring",
        },
    )
    assert status == 200
    source_id = registered["source_id"]
    probes_path = f"/v1/sensors/{source_id}/probes"
    status, first = call(url, "GET", probes_path, SENSOR_TOKEN)
    assert status == 200
    assert first["probes"] == []

    # the sensor holds a long poll; the client places a probe meanwhile
    received: dict[str, Any] = {}

    def long_poll() -> None:
        started = time.monotonic()
        received["answer"] = call(
            url, "GET", f"{probes_path}?etag={first['etag']}&wait=60", SENSOR_TOKEN, timeout=90
        )
        received["elapsed"] = time.monotonic() - started

    poller = threading.Thread(target=long_poll)
    poller.start()
    time.sleep(0.3)
    client = HubClient(url, CLIENT_TOKEN, timeout=10)
    record = client.place_probe(
        {"kind": "snapshot", "location": "shop.pricing:total@return", "capture": ["amount"]},
        selector={"service": "shop", "labels": {"env": "prod"}},
        ttl=600,
    )
    poller.join(90)
    status, answer = received["answer"]
    assert status == 200
    assert [p["id"] for p in answer["probes"]] == [record["id"]]
    # Woken by the placement, not by the 60 s wait (half of it leaves room for a loaded machine).
    assert received["elapsed"] < 30
    probe = answer["probes"][0]

    # status and hits, as the sensor reports them
    status, _ = call(
        url,
        "POST",
        f"/v1/sensors/{source_id}/heartbeat",
        SENSOR_TOKEN,
        {"statuses": [{"probe_id": probe["id"], "state": "installed", "hits": 30}], "dropped": 0},
    )
    assert status == 200
    for start in (0, 10, 20):
        status, accepted = call(
            url,
            "POST",
            f"/v1/sensors/{source_id}/hits",
            SENSOR_TOKEN,
            {"hits": [_hit(probe, n) for n in range(start, start + 10)], "dropped": {}},
        )
        assert (status, accepted) == (200, {"accepted": 10, "declined": 0, "declined_by_probe": {}})

    sources = client.sources(service="shop")
    assert [(s["id"], s["state"], s["version"]) for s in sources] == [(source_id, "live", "1.4.2")]
    state = client.probe(record["id"])
    assert state["hit_count"] == 30
    assert state["statuses"][source_id]["state"] == "installed"
    hits = list(client.iter_hits(record["id"], limit=7))
    assert [h["captures"]["amount"] for h in hits] == list(range(30))
    one = client.hit(record["id"], hits[17]["hit_id"])
    assert (one["captures"]["amount"], one["source"]["id"]) == (17, source_id)
    with pytest.raises(HubResponseError, match="has no hit 'nope-1'") as missing:
        client.hit(record["id"], "nope-1")
    assert missing.value.status == 404
    assert hits[3]["captures"]["qty"] == {"@t": "decimal.Decimal", "v": "3.50"}
    assert hits[0]["source"] == {
        "id": source_id,
        "service": "shop",
        "version": "1.4.2",
        "host": "web-1",
        "pid": 4242,
    }
    lines = list(client.evidence_lines(signature=record["signature"]))
    assert len(lines) == 1 + 1 + 30
    assert '"record": "header"' in lines[0]

    # removal reaches the sensor's next poll
    client.remove_probe(record["id"])
    status, after = call(url, "GET", f"{probes_path}?etag={answer['etag']}&wait=5", SENSOR_TOKEN)
    assert after["probes"] == []
    status, _ = call(url, "POST", f"/v1/sensors/{source_id}/deregister", SENSOR_TOKEN, {})
    assert client.sources()[0]["state"] == "gone"


def test_acknowledged_hits_survive_sigkill_of_the_hub(tmp_path: Path) -> None:
    process = HubProcess(tmp_path / "hub.db").start()
    try:
        status, registered = call(
            process.url, "POST", "/v1/sensors/register", SENSOR_TOKEN, {"service": "shop"}
        )
        source_id = registered["source_id"]
        client = HubClient(process.url, CLIENT_TOKEN)
        record = client.place_probe({"kind": "snapshot", "location": "shop:f"})
        probe = client.probe(record["id"])["probe"]
        status, accepted = call(
            process.url,
            "POST",
            f"/v1/sensors/{source_id}/hits",
            SENSOR_TOKEN,
            {"hits": [_hit(probe, n) for n in range(100)]},
        )
        assert (accepted["accepted"], accepted["declined"]) == (100, 0)
        process.stop(kill=True)  # SIGKILL right after the acknowledgement
        process.start()
        client = HubClient(process.url, CLIENT_TOKEN)
        assert len(list(client.iter_hits(record["id"], limit=1000))) == 100
        assert client.probe(record["id"])["hit_count"] == 100
        # the source and its id survive too: the sensor keeps polling without registering again
        status, _ = call(process.url, "GET", f"/v1/sensors/{source_id}/probes", SENSOR_TOKEN)
        assert status == 200
    finally:
        process.stop()


def test_a_batch_sent_again_after_its_answer_was_lost_counts_once(hub: HubProcess) -> None:
    # The hub committed a batch and its answer was lost (a load balancer's timeout): the sensor
    # sends the same batch, with the same number, again. A batch of drop counts only has no hit
    # id to know it by: its number is what makes the retry count nothing twice.
    _, registered = call(hub.url, "POST", "/v1/sensors/register", SENSOR_TOKEN, {"service": "s"})
    path = f"/v1/sensors/{registered['source_id']}/hits"
    client = HubClient(hub.url, CLIENT_TOKEN)
    record = client.place_probe({"kind": "snapshot", "location": "s:f"})
    probe = client.probe(record["id"])["probe"]
    pid = record["id"]

    def post(body: dict[str, Any]) -> int:
        status, answer = call(hub.url, "POST", path, SENSOR_TOKEN, body)
        assert status == 200, answer
        return int(answer["accepted"])

    def counted() -> tuple[int, int]:
        state = client.probe(pid)
        return state["hit_count"], state["dropped"]

    post({"batch": 1, "hits": [], "dropped": {pid: 5}})
    post({"batch": 1, "hits": [], "dropped": {pid: 5}})  # the same batch: a retry
    assert counted() == (0, 5)
    post({"batch": 1, "hits": [], "dropped": {pid: 7}})  # a retry whose drops grew meanwhile
    assert counted() == (0, 7)
    assert post({"batch": 2, "hits": [_hit(probe, 1)], "dropped": {pid: 1}}) == 1
    assert post({"batch": 2, "hits": [_hit(probe, 1)], "dropped": {pid: 1}}) == 1  # a retry
    assert counted() == (1, 8)
    post({"batch": 3, "hits": [], "dropped": {pid: 5}})  # the next batch: the same counts
    assert counted() == (1, 13)
    for bad in (0, -1, "3", 1.5, True):
        status, answer = call(hub.url, "POST", path, SENSOR_TOKEN, {"batch": bad, "hits": []})
        assert status == 422, (bad, answer)
        assert "batch" in answer["error"]["message"], answer
    assert counted() == (1, 13)


def test_the_sensor_reads_the_status_fields_a_hub_takes_from_its_refusal(hub: HubProcess) -> None:
    # A sensor newer than its hub sends status fields the hub does not know; the hub's 422
    # names the fields it takes, and the sensor reads them from the real answer.
    from sensor.agent.lifecycle import _known_status_fields
    from sensor.agent.transport import Transport

    _, registered = call(hub.url, "POST", "/v1/sensors/register", SENSOR_TOKEN, {"service": "s"})
    transport = Transport(hub.url, SENSOR_TOKEN)
    status = {"probe_id": "p1", "state": "installed", "hits": 1, "from_a_later_sensor": 2}
    with pytest.raises(HubResponseError) as refused:
        transport.request(
            "POST", f"/v1/sensors/{registered['source_id']}/heartbeat", {"statuses": [status]}
        )
    transport.close()
    assert _known_status_fields(refused.value) == {
        field.name for field in dataclasses.fields(ProbeStatus)
    }


def test_the_sensor_knows_a_refusal_of_its_batch_number_from_the_hub(hub: HubProcess) -> None:
    # The words a hub uses to refuse a field it does not know, read by the sensor from the real
    # answer (a field from a later sensor stands for "batch" on a hub that knows batch).
    from sensor.agent.lifecycle import _UNKNOWN_BATCH
    from sensor.agent.transport import Transport

    _, registered = call(hub.url, "POST", "/v1/sensors/register", SENSOR_TOKEN, {"service": "s"})
    transport = Transport(hub.url, SENSOR_TOKEN)
    with pytest.raises(HubResponseError) as refused:
        transport.request(
            "POST", f"/v1/sensors/{registered['source_id']}/hits", {"hits": [], "later": 1}
        )
    transport.close()
    message = str(refused.value)
    assert refused.value.status == 422
    assert _UNKNOWN_BATCH.search(message.replace("later", "batch")), message
    assert not _UNKNOWN_BATCH.search(message), message


def test_probe_expiry_reaches_a_waiting_sensor(hub: HubProcess) -> None:
    status, registered = call(
        hub.url, "POST", "/v1/sensors/register", SENSOR_TOKEN, {"service": "s"}
    )
    assert status == 200
    path = f"/v1/sensors/{registered['source_id']}/probes"
    client = HubClient(hub.url, CLIENT_TOKEN)
    record = client.place_probe({"kind": "counter", "location": "s:f"}, ttl=1.0)
    _, held = call(hub.url, "GET", path, SENSOR_TOKEN)
    assert len(held["probes"]) == 1
    started = time.monotonic()
    status, answer = call(
        hub.url, "GET", f"{path}?etag={held['etag']}&wait=60", SENSOR_TOKEN, timeout=90
    )
    assert status == 200
    assert answer["probes"] == []
    # Expired after its 1 s, well before the poll's 60 s wait would end (the bound leaves room
    # for a loaded machine).
    assert time.monotonic() - started < 30
    assert client.probe(record["id"])["state"] == "expired"


def test_auth_errors_over_http(hub: HubProcess) -> None:
    assert call(hub.url, "GET", "/v1/sources", None)[0] == 401
    assert call(hub.url, "GET", "/v1/sources", "nope")[0] == 401
    status, body = call(hub.url, "GET", "/v1/sources", SENSOR_TOKEN)
    assert status == 403
    assert body["error"]["code"] == "forbidden"
    assert call(hub.url, "GET", "/v1/tokens", ADMIN_TOKEN)[0] == 200
    with pytest.raises(HubResponseError, match="401"):
        HubClient(hub.url, "wrong").sources()


def test_unreachable_hub_is_hub_unavailable(tmp_path: Path) -> None:
    with pytest.raises(HubUnavailableError, match="cannot be reached"):
        HubClient("http://127.0.0.1:9", CLIENT_TOKEN, timeout=3).sources()


def test_bad_database_path_fails_with_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = subprocess.run(
        [sys.executable, "-m", "sensor", "hub", "--port", "0", "--db", str(blocker / "x.db")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot open the hub database")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
def test_hub_serves_tls_with_the_given_certificate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    process = HubProcess(
        tmp_path / "hub.db", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)
    ).start()
    try:
        assert process.url.startswith("https://127.0.0.1:")
        client = HubClient(process.url, CLIENT_TOKEN, cafile=str(cert))
        assert client.sources() == []
        with pytest.raises(HubUnavailableError):  # not trusted without the CA
            HubClient(process.url, CLIENT_TOKEN, timeout=5).sources()
        # The plugin and the MCP server share the client: SENSOR_CA_FILE (the sensors' own
        # variable) trusts the hub for them too, and its absence is named in the error.
        from pytest_runtime.hub import HubClient as PluginClient

        monkeypatch.setenv("SENSOR_CA_FILE", str(cert))
        with PluginClient(process.url, CLIENT_TOKEN) as plugin_client:
            assert plugin_client.sources() == []
        monkeypatch.delenv("SENSOR_CA_FILE")
        with pytest.raises(HubUnavailableError, match="in SENSOR_CA_FILE"):
            PluginClient(process.url, CLIENT_TOKEN, retries=0).sources()
    finally:
        process.stop()


def test_small_requests_do_not_wait_for_delayed_acks(hub: HubProcess) -> None:
    # Without TCP_NODELAY on the accepted sockets each answer waits ~40 ms (Nagle against the
    # client's delayed ACK): every one of 20 calls would take 40 ms or more. They take well
    # under a millisecond each; the quickest of 20 is judged, so that a loaded machine that
    # delays some calls (CI runs three suites on two cores) cannot fail the test, while Nagle,
    # which delays every call, still does.
    import http.client
    import urllib.parse

    parts = urllib.parse.urlsplit(hub.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    conn.request("GET", "/v1/health")
    conn.getresponse().read()
    took = []
    for _ in range(20):
        started = time.perf_counter()
        conn.request("GET", "/v1/health")
        assert conn.getresponse().read()
        took.append(time.perf_counter() - started)
    conn.close()
    assert min(took) < 0.02, f"every call took 20 ms or more: {sorted(took)}"


def test_stopping_the_hub_answers_open_long_polls(tmp_path: Path) -> None:
    process = HubProcess(tmp_path / "hub.db").start()
    try:
        _, registered = call(
            process.url, "POST", "/v1/sensors/register", SENSOR_TOKEN, {"service": "s"}
        )
        path = f"/v1/sensors/{registered['source_id']}/probes"
        _, held = call(process.url, "GET", path, SENSOR_TOKEN)
        answers: list[tuple[int, Any]] = []
        polls = [
            threading.Thread(
                target=lambda: answers.append(
                    call(process.url, "GET", f"{path}?etag={held['etag']}&wait=50", SENSOR_TOKEN)
                )
            )
            for _ in range(5)
        ]
        for poll in polls:
            poll.start()
        time.sleep(0.5)
        started = time.monotonic()
        assert process.proc is not None
        process.proc.terminate()
        for poll in polls:
            poll.join(40)
        # Answered at the stop, not after the polls' 50 s wait (room for a loaded machine).
        assert time.monotonic() - started < 25
        assert [status for status, _ in answers] == [200] * 5
        assert all(body["etag"] == held["etag"] for _, body in answers)
        assert process.proc.wait(10) == 0  # a graceful stop, not death by signal
        assert "Traceback" not in process.stderr()
    finally:
        process.stop()
