"""A real hub process against hostile requests: memory per request, file modes, bad strings,
and a sensor token bound to its services and sources."""

from __future__ import annotations

import http.client
import json
import os
import stat
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hub_process import ADMIN_TOKEN, CLIENT_TOKEN, SENSOR_TOKEN, HubProcess, call

pytestmark = pytest.mark.integration


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(tmp_path / "hub.db").start()
    yield process
    process.stop()


def _memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (the peak so far) of a process, in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def _post_raw(url: str, path: str, body: bytes, token: str) -> int:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
    try:
        conn.request(
            "POST",
            path,
            body=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads /proc")
@pytest.mark.parametrize(
    ("kind", "element"),
    [("empty objects", b"{}"), ("empty strings", b'""'), ("zeros", b"0")],
)
def test_four_concurrent_bodies_of_tiny_values_do_not_blow_up_the_hub(
    hub: HubProcess, capsys: pytest.CaptureFixture[str], kind: str, element: bytes
) -> None:
    assert hub.proc is not None
    status, registered = call(
        hub.url, "POST", "/v1/sensors/register", SENSOR_TOKEN, {"service": "s"}
    )
    assert status == 200
    path = f"/v1/sensors/{registered['source_id']}/hits"
    limit = 8 * 1024 * 1024
    count = (limit - 64) // (len(element) + 1)
    body = b'{"hits": [' + (element + b",") * (count - 1) + element + b"]}"
    assert len(body) < limit
    before = _memory_kib(hub.proc.pid)
    statuses: list[int] = []
    threads = [
        threading.Thread(
            target=lambda: statuses.append(_post_raw(hub.url, path, body, SENSOR_TOKEN))
        )
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    after = _memory_kib(hub.proc.pid)
    growth_mb = (after["VmHWM"] - before["VmRSS"]) / 1024
    with capsys.disabled():
        print(
            f"\nhub memory, 4 concurrent bodies of {len(body)} bytes of {kind}: "
            f"RSS before {before['VmRSS'] / 1024:.0f} MB, peak {after['VmHWM'] / 1024:.0f} MB, "
            f"after {after['VmRSS'] / 1024:.0f} MB (peak growth {growth_mb:.0f} MB)"
        )
    assert statuses == [413] * 4
    # the first release grew by about 612 MB here; what is left is a few copies of the bytes
    assert growth_mb < 150, (before, after)
    status, _ = call(hub.url, "GET", "/v1/sources", CLIENT_TOKEN)
    assert status == 200


def test_database_wal_and_shm_are_private_whatever_the_umask(tmp_path: Path) -> None:
    db = tmp_path / "private" / "hub.db"
    db.parent.mkdir()
    old = os.umask(0)
    try:
        process = HubProcess(db).start()
    finally:
        os.umask(old)
    try:
        status, _ = call(
            process.url,
            "POST",
            "/v1/probes",
            CLIENT_TOKEN,
            {"probe": {"kind": "snapshot", "location": "m:f"}},
        )
        assert status == 201
        modes = {
            suffix: stat.S_IMODE(os.stat(f"{db}{suffix}").st_mode)
            for suffix in ("", "-wal", "-shm")
        }
        assert modes == {"": 0o600, "-wal": 0o600, "-shm": 0o600}, {
            k: oct(v) for k, v in modes.items()
        }
    finally:
        process.stop()


def test_a_file_left_readable_by_an_older_hub_is_made_private(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").touch()
        os.chmod(f"{db}{suffix}", 0o644)
    Path(f"{db}-wal").unlink()
    Path(f"{db}-shm").unlink()
    process = HubProcess(db).start()
    try:
        assert stat.S_IMODE(os.stat(db).st_mode) == 0o600
    finally:
        process.stop()


def _raw_post(url: str, path: str, token: str, obj: Any) -> tuple[int, Any]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        conn.request(
            "POST",
            path,
            body=json.dumps(obj).encode(),  # ensure_ascii: a lone surrogate goes as \ud800
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_a_poisoned_probe_is_refused_and_the_hub_keeps_serving(hub: HubProcess) -> None:
    _, registered = call(hub.url, "POST", "/v1/sensors/register", SENSOR_TOKEN, {"service": "s"})
    source_id = registered["source_id"]
    for probe in (
        {"kind": "snapshot", "location": "m:f", "tags": {"t": "\ud800"}},
        {"kind": "log", "location": "m:f", "template": "x\udfff"},
    ):
        status, answer = _raw_post(hub.url, "/v1/probes", CLIENT_TOKEN, {"probe": probe})
        assert status == 422, answer
        assert answer["error"]["code"] == "invalid_string"
    status, answer = _raw_post(
        hub.url,
        "/v1/probes",
        CLIENT_TOKEN,
        {"probe": {"kind": "snapshot", "location": "m:f"}, "selector": {"labels": {"a": "\ud800"}}},
    )
    assert status == 422
    status, placed = call(
        hub.url,
        "POST",
        "/v1/probes",
        CLIENT_TOKEN,
        {"probe": {"kind": "snapshot", "location": "m:f"}},
    )
    assert status == 201
    status, listing = call(hub.url, "GET", "/v1/probes", CLIENT_TOKEN)
    assert (status, [p["id"] for p in listing["probes"]]) == (200, [placed["probe"]["id"]])
    status, polled = call(hub.url, "GET", f"/v1/sensors/{source_id}/probes", SENSOR_TOKEN)
    assert (status, [p["id"] for p in polled["probes"]]) == (200, [placed["probe"]["id"]])
    # a removed probe leaves the poll answer at once
    call(hub.url, "DELETE", f"/v1/probes/{placed['probe']['id']}", CLIENT_TOKEN)
    status, polled = call(hub.url, "GET", f"/v1/sensors/{source_id}/probes", SENSOR_TOKEN)
    assert (status, polled["probes"]) == (200, [])


def test_a_sensor_token_is_bound_to_its_services_and_sources(hub: HubProcess) -> None:
    status, created = call(
        hub.url,
        "POST",
        "/v1/tokens",
        ADMIN_TOKEN,
        {"name": "shop sensors", "scope": "sensor", "services": ["shop"]},
    )
    assert status == 201, created
    limited = created["token"]
    status, answer = call(hub.url, "POST", "/v1/sensors/register", limited, {"service": "billing"})
    assert (status, answer["error"]["code"]) == (403, "service_not_allowed")
    status, mine = call(hub.url, "POST", "/v1/sensors/register", limited, {"service": "shop"})
    assert status == 200
    _, theirs = call(hub.url, "POST", "/v1/sensors/register", SENSOR_TOKEN, {"service": "shop"})
    for method, suffix, body in (
        ("GET", "probes", None),
        ("POST", "heartbeat", {"statuses": []}),
        ("POST", "hits", {"hits": []}),
        ("POST", "deregister", {}),
    ):
        path = f"/v1/sensors/{theirs['source_id']}/{suffix}"
        status, answer = call(hub.url, method, path, limited, body)
        assert (status, answer["error"]["code"]) == (403, "not_your_source"), (method, suffix)
        status, _ = call(
            hub.url, method, f"/v1/sensors/{mine['source_id']}/{suffix}", limited, body
        )
        assert status == 200, (method, suffix)
    # the other source is untouched: still live (its deregister was refused)
    _, sources = call(hub.url, "GET", "/v1/sources?state=live", CLIENT_TOKEN)
    assert [s["id"] for s in sources["sources"]] == [theirs["source_id"]]


def test_the_cli_creates_a_sensor_token_limited_to_services(hub: HubProcess) -> None:
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
    env.update(PYTEST_RUNTIME_HUB=hub.url, SENSOR_CLIENT_TOKEN=ADMIN_TOKEN)
    command = [sys.executable, "-m", "sensor", "token", "add", "shop bot", "--scope", "sensor"]
    result = subprocess.run(
        [*command, "--service", "shop", "--service", "shop-worker", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["services"] == ["shop", "shop-worker"]
    status, _ = call(hub.url, "POST", "/v1/sensors/register", created["token"], {"service": "shop"})
    assert status == 200
    status, answer = call(
        hub.url, "POST", "/v1/sensors/register", created["token"], {"service": "x"}
    )
    assert (status, answer["error"]["code"]) == (403, "service_not_allowed")
    # a name the hub refuses is an error naming it, from the CLI too
    bad = subprocess.run(
        [*command[:5], "x" * 65, "--scope", "sensor"], capture_output=True, text=True, env=env
    )
    assert bad.returncode != 0
    assert "name: got 'xxxx" in bad.stderr
