"""``python -m pytest_runtime.mcp`` as editors start it: over stdio, configured like the plugin.

The session's probes are removed when the client disconnects or the server is stopped with
SIGTERM; a server killed with SIGKILL cannot clean up, and its probe ends by its TTL.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from hub_process import CLIENT_TOKEN, HubProcess
from mcp_support import Service, probe_record, start_hub, tool, wait_until

pytestmark = [pytest.mark.integration]

mcp = pytest.importorskip("mcp")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubProcess, Service]]:
    hub = start_hub(tmp_path_factory.mktemp("hub"))
    shop = Service(tmp_path_factory.mktemp("shop"), hub, f"shop-{uuid.uuid4().hex[:6]}")
    yield hub, shop
    shop.stop()
    hub.stop()


def server_env(hub: HubProcess) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_RUNTIME_", "SENSOR_"))}
    env.update(PYTEST_RUNTIME_HUB=hub.url, SENSOR_CLIENT_TOKEN=CLIENT_TOKEN)
    return env


class RawStdioClient:
    """A JSON-RPC client written by hand over the server's pipes (so the test owns the pid)."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pytest_runtime.mcp", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()
        self.next_id = 0
        answer = self.request(
            "initialize",
            {
                "protocolVersion": "2025-11-25",
                "capabilities": {},
                "clientInfo": {"name": "raw-test-client", "version": "0"},
            },
        )
        assert answer["serverInfo"]["name"] == "pytest-runtime"
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()

    def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        while True:
            message = json.loads(self.lines.get(timeout=60))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    def call_tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = self.request("tools/call", {"name": name, "arguments": arguments})
        assert not result.get("isError"), result
        data: dict[str, Any] = json.loads(result["content"][0]["text"])
        return data

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def test_a_stdio_session_removes_its_probes_when_the_client_disconnects(
    world: tuple[HubProcess, Service],
) -> None:
    hub, shop = world
    parameters = mcp.StdioServerParameters(
        command=sys.executable, args=["-m", "pytest_runtime.mcp"], env=server_env(hub)
    )

    async def main() -> str:
        async with mcp.Client(parameters) as client:
            assert "Hypotheses first" in (client.instructions or "")
            sources = await tool(client, "list_sources", 12_000, service=shop.service)
            assert sources["count"] == 1
            placed = await tool(
                client,
                "place_probe",
                12_000,
                location="mcp_shop_app:total",
                hypothesis="h",
                service=shop.service,
            )
            assert probe_record(hub, placed["probe_id"])["state"] == "active"
            return str(placed["probe_id"])

    probe_id = anyio.run(main)
    assert wait_until(lambda: probe_record(hub, probe_id)["state"] == "removed", 10)


@pytest.mark.parametrize(
    ("sig", "ends_as"),
    [(signal.SIGTERM, "removed"), (signal.SIGKILL, "expired")],
    ids=["sigterm-removes", "sigkill-leaves-it-to-the-ttl"],
)
def test_a_stopped_server_leaves_no_probe_behind(
    world: tuple[HubProcess, Service], sig: signal.Signals, ends_as: str
) -> None:
    hub, shop = world
    client = RawStdioClient(server_env(hub))
    try:
        placed = client.call_tool(
            "place_probe",
            {
                "location": "mcp_shop_app:total",
                "hypothesis": "h",
                "service": shop.service,
                "ttl_seconds": 6,
            },
        )
        probe_id = placed["probe_id"]
        assert probe_record(hub, probe_id)["state"] == "active"
        client.proc.send_signal(sig)
        assert client.proc.wait(20) is not None
        assert wait_until(lambda: probe_record(hub, probe_id)["state"] == ends_as, 10), (
            probe_record(hub, probe_id)
        )
    finally:
        client.stop()


def test_the_server_refuses_to_start_without_a_hub_or_on_a_public_address(
    world: tuple[HubProcess, Service], tmp_path: Path
) -> None:
    hub, _ = world
    env = {k: v for k, v in server_env(hub).items() if k != "PYTEST_RUNTIME_HUB"}
    no_hub = subprocess.run(
        [sys.executable, "-m", "pytest_runtime.mcp"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert no_hub.returncode == 2
    assert "--hub: got None, expected the hub URL" in no_hub.stderr
    assert "PYTEST_RUNTIME_HUB" in no_hub.stderr
    command = [sys.executable, "-m", "pytest_runtime.mcp", "--transport", "streamable-http"]
    public = subprocess.run(
        [*command, "--host", "0.0.0.0"],
        env=server_env(hub),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert public.returncode == 2
    assert "not a loopback address" in public.stderr
    assert "--allow-remote" in public.stderr
