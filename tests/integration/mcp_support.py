"""Real processes for the MCP tests: a hub, a small shop service under the sensor, MCP calls.

Nothing imitates our hub or sensor: the hub is ``python -m sensor hub`` (tests/hub_process.py),
the service runs under ``python -m sensor run --``, and the MCP server is the real one, reached
through the SDK's in-memory client (or over stdio by ``python -m pytest_runtime.mcp``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hub_process import CLIENT_TOKEN, SENSOR_TOKEN, HubProcess, call

#: Waits are "until" conditions; the factor keeps a busy CI machine from failing them.
WAIT_SCALE = float(os.environ.get("PYTEST_RUNTIME_TEST_WAIT_SCALE", "6"))

APP_MODULE = "mcp_shop_app"
#: The service's code: the functions the probes target.
APP = textwrap.dedent(
    """
    def total(amount, qty):
        price = amount * qty
        return price


    def ratio(x):
        doubled = x * 2
        return doubled


    def discount(price, rate):
        cut = price * rate
        return price - cut


    def basket(items, note):
        count = len(items)
        return count
    """
)
#: A threaded HTTP server calling the app's functions, started under the sensor.
SERVER = textwrap.dedent(
    f"""
    import json
    import sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs, urlsplit

    import {APP_MODULE} as app


    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            url = urlsplit(self.path)
            q = {{k: v[0] for k, v in parse_qs(url.query).items()}}
            if url.path == "/health":
                body = {{"ok": True}}
            elif url.path == "/total":
                body = {{"total": app.total(int(q["amount"]), int(q["qty"]))}}
            elif url.path == "/ratio":
                body = {{"ratio": app.ratio(int(q["x"]))}}
            elif url.path == "/discount":
                body = {{"price": app.discount(float(q["price"]), float(q["rate"]))}}
            elif url.path == "/batch":
                n = int(q["n"])
                size = int(q.get("size", "1"))
                items = [{{"sku": "sku-%d" % i, "text": "x" * 200}} for i in range(size)]
                for i in range(n):
                    app.basket(items, "note %d " % i + "y" * 200)
                body = {{"calls": n}}
            else:
                self.send_response(404)
                self.end_headers()
                return
            data = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)


    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    print("serving", flush=True)
    server.serve_forever()
    """
)


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout * WAIT_SCALE
    while True:
        try:
            value = predicate()
        except Exception:
            value = None
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_hub(workdir: Path) -> HubProcess:
    """A hub whose sensors report every 0.3 s (counts arrive quickly) and poll for 2 s."""
    return HubProcess(
        workdir / "hub.sqlite3", "--heartbeat-interval", "0.3", "--poll-wait", "2"
    ).start()


class Service:
    """The shop service under ``python -m sensor run``, registered with the hub."""

    def __init__(self, workdir: Path, hub: HubProcess, service: str) -> None:
        self.workdir = workdir
        self.service = service
        (workdir / f"{APP_MODULE}.py").write_text(APP)
        (workdir / "mcp_service.py").write_text(SERVER)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
        env.update(
            SENSOR_HUB_URL=hub.url,
            SENSOR_TOKEN=SENSOR_TOKEN,
            SENSOR_SERVICE=service,
            SENSOR_VERSION="2.0.1",
            SENSOR_LABELS="env=test",
            SENSOR_FLUSH_INTERVAL="0.1",
            SENSOR_HEARTBEAT_INTERVAL="0.3",
            SENSOR_MAX_BACKOFF="0.5",
            # Counts must add up exactly: the CPU budget must not switch a probe off here.
            SENSOR_CPU_BUDGET="1",
            PYTHONPATH=str(workdir),
        )
        self.log = open(workdir / "service.log", "w")  # noqa: SIM115 - closed in stop()
        command = [sys.executable, "-m", "sensor", "run", "--"]
        command += [sys.executable, "mcp_service.py", str(self.port)]
        self.proc = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )
        if not wait_until(lambda: self.get("/health"), 20):
            self.stop()
            raise AssertionError(f"the service did not answer: {self.output()}")
        if not wait_until(lambda: self.sources(hub), 20):
            self.stop()
            raise AssertionError(f"the service did not register: {self.output()}")

    def sources(self, hub: HubProcess) -> list[dict[str, Any]]:
        status, data = call(hub.url, "GET", f"/v1/sources?service={self.service}", CLIENT_TOKEN)
        assert status == 200, data
        return [s for s in data["sources"] if s["state"] == "live"]

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def output(self) -> str:
        self.log.flush()
        return (self.workdir / "service.log").read_text()[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


def probe_record(hub: HubProcess, probe_id: str) -> dict[str, Any]:
    status, data = call(hub.url, "GET", f"/v1/probes/{probe_id}", CLIENT_TOKEN)
    assert status == 200, data
    record: dict[str, Any] = data["probe"]
    return record


def installed(hub: HubProcess, probe_id: str) -> bool:
    statuses = probe_record(hub, probe_id)["statuses"]
    return any(s.get("state") == "installed" for s in statuses.values())


async def tool(client: Any, name: str, budget: int, **arguments: Any) -> dict[str, Any]:
    """Call a tool that must succeed; every answer is checked against the size budget."""
    result = await client.call_tool(name, arguments)
    text = result.content[0].text
    assert len(result.content) == 1
    assert len(text) <= budget, f"{name} answered {len(text)} characters (budget {budget})"
    assert not result.is_error, text
    data: dict[str, Any] = json.loads(text)
    return data


async def tool_error(client: Any, name: str, **arguments: Any) -> str:
    """Call a tool that must fail; its error text."""
    result = await client.call_tool(name, arguments)
    assert result.is_error, result.content[0].text
    text: str = result.content[0].text
    return text
