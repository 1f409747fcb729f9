"""Real processes for the agent integration tests: hub, hostile proxy, sensor-attached services.

Nothing here imitates our own hub or sensor: the hub is ``python -m sensor hub``, services run
under ``python -m sensor run --``, and :class:`HostileProxy` is a plain HTTP peer that forwards
to the real hub or misbehaves (500s, garbage, slowness) on demand.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from sensor.client import HubClient

SENSOR_TOKEN = "sensor-token-for-tests"
CLIENT_TOKEN = "client-token-for-tests"

#: The service under test: a WSGI app whose `total` function carries the probe.
APP = textwrap.dedent(
    """
    import json
    import os
    from urllib.parse import parse_qs

    if os.environ.get("AGENT_TEST_NO_CPU_BUDGET"):
        # The engine meters each capture's wall time against 1% of a CPU per second; on a busy
        # 2-core machine one preempted capture exceeds it and disables the probe. These tests
        # are about the agent's accounting, so the budget is off (a test-only knob).
        from sensor.engine import get_engine

        get_engine()._budget.fraction = 1.0


    def total(amount, qty):
        price = amount * qty
        return price


    def app(environ, start_response):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        amount = int(query.get("amount", ["1"])[0])
        qty = int(query.get("qty", ["1"])[0])
        body = json.dumps({"total": total(amount, qty), "pid": os.getpid()}).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]
    """
)
APP_MODULE = "agent_shop_app"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


#: Waits are "until" conditions that return as soon as they hold, so a generous factor costs
#: nothing when things are fast and keeps a first run on a cold, busy CI machine from failing.
WAIT_SCALE = float(os.environ.get("PYTEST_RUNTIME_TEST_WAIT_SCALE", "6"))


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout * WAIT_SCALE
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except Exception:
            pass
        time.sleep(interval)
    return predicate()


class HubProcess:
    """``python -m sensor hub`` on a loopback port, with a SQLite file that survives restarts."""

    def __init__(
        self,
        workdir: Path,
        port: int = 0,
        *extra: str,
        db: str | None = None,
        name: str = "hub",
    ) -> None:
        # ``db``: a database URL shared with other replicas (default: a SQLite file of its own)
        self.workdir = workdir
        self.db: Path | str = db or workdir / "hub.db"
        self.name = name
        self.extra = list(extra)  # more hub options
        self.port = port
        self.url = ""
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> HubProcess:
        command = [
            sys.executable, "-m", "sensor", "hub",
            "--port", str(self.port),
            "--db", str(self.db),
            "--sensor-token", SENSOR_TOKEN,
            "--client-token", CLIENT_TOKEN,
            "--heartbeat-interval", "0.3",
            "--poll-wait", "2",
            "--sqlite-synchronous", "NORMAL",
            *self.extra,
        ]  # fmt: skip
        log = open(self.workdir / f"{self.name}.log", "a")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
        log.close()
        assert self.proc.stdout is not None
        line = _readline(self.proc.stdout, 20.0)
        if "listening on" not in line:
            self.kill()
            raise AssertionError(f"hub did not start: {line!r}; log: {self.log()}")
        self.url = line.strip().rsplit(" ", 1)[-1]
        self.port = int(self.url.rsplit(":", 1)[-1])
        return self

    def log(self) -> str:
        path = self.workdir / f"{self.name}.log"
        return path.read_text()[-2000:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no flush, no goodbye (what a crash or an OOM kill looks like)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def client(self) -> HubClient:
        return HubClient(self.url, CLIENT_TOKEN, timeout=10)


def _readline(stream: Any, timeout: float) -> str:
    result: list[str] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return result[0] if result else ""


class HostileProxy:
    """An HTTP peer in front of the hub: ``pass`` forwards; ``500``, ``garbage`` (not JSON),
    ``shape`` (JSON of the wrong shape) and ``slow`` misbehave the way a broken load balancer,
    a captive portal or an overloaded hub would; ``halve_hits`` forwards only the first half
    of each batch of hits (the hub then answers ``accepted`` < sent); ``lose_hits_answers``
    forwards each batch of hits and, the first time it sees that very body, loses the hub's
    answer (a 502 after the hub committed: a load balancer's timeout), so every batch is sent
    again."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.mode = "pass"
        self.delay = 0.0
        self.counts: dict[str, int] = {}
        self.seen: set[bytes] = set()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                mode = proxy.mode
                proxy.counts[mode] = proxy.counts.get(mode, 0) + 1
                if mode == "500":
                    self._reply(500, b"Internal Server Error", "text/plain")
                    return
                if mode == "shape":  # valid JSON, not what the API answers
                    self._reply(200, b'{"ok": true, "probes": "later"}', "application/json")
                    return
                if mode == "garbage":
                    self._reply(200, b"\x00\xff<html>{not json", "application/json")
                    return
                if mode == "slow":
                    time.sleep(proxy.delay)
                if mode == "halve_hits" and body and self.path.endswith("/hits"):
                    # a middlebox that loses part of each batch: the hub stores (and answers
                    # for) only the first half of the hits
                    batch = json.loads(body)
                    batch["hits"] = batch["hits"][: len(batch["hits"]) // 2]
                    body = json.dumps(batch).encode()
                    self.headers.replace_header("Content-Length", str(len(body)))
                host, port = proxy.target.split("//", 1)[1].rsplit(":", 1)
                conn = http.client.HTTPConnection(host, int(port), timeout=90)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                    lose = mode == "lose_hits_answers" and self.path.endswith("/hits")
                    if lose and body and body not in proxy.seen:
                        proxy.seen.add(body)
                        self._reply(502, b"bad gateway (answer lost)", "text/plain")
                        return
                    self._reply(
                        answer.status, data, answer.getheader("Content-Type") or "text/plain"
                    )
                except OSError:
                    self._reply(502, b"bad gateway", "text/plain")
                finally:
                    conn.close()

            do_GET = do_POST = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def sensor_env(hub_url: str, service: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
    env.update(
        SENSOR_HUB_URL=hub_url,
        SENSOR_TOKEN=SENSOR_TOKEN,
        SENSOR_SERVICE=service,
        SENSOR_FLUSH_INTERVAL="0.1",
        SENSOR_HEARTBEAT_INTERVAL="0.3",
        SENSOR_MAX_BACKOFF="0.5",
        SENSOR_TIMEOUT="3",
        SENSOR_EXIT_TIMEOUT="3",
        SENSOR_LOG_LEVEL=os.environ.get("AGENT_TEST_LOG_LEVEL", "WARNING"),
        PYTHONWARNINGS="ignore::DeprecationWarning",  # 3.12+: fork of a threaded master
        AGENT_TEST_NO_CPU_BUDGET="1",
        # Counts must add up exactly: no probe may be switched off by the CPU budget here.
        SENSOR_CPU_BUDGET="1",
    )
    env.update(extra)
    return env


class Gunicorn:
    """The app under gunicorn, started through ``python -m sensor run --``."""

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        *,
        workers: int = 2,
        threads: int = 1,
        preload: bool = False,
        app: str = APP,
    ) -> None:
        # ``app``: the module's source; it must answer /price?amount=&qty= as APP does.
        (workdir / f"{APP_MODULE}.py").write_text(app)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "gunicorn.log"
        command = [
            sys.executable, "-m", "sensor", "run", "--",
            sys.executable, "-m", "gunicorn",
            "--workers", str(workers), "--threads", str(threads),
            "--bind", f"127.0.0.1:{self.port}",
            "--chdir", str(workdir),
            "--graceful-timeout", "3",
            # Every gunicorn defaults to one control socket under ~/.gunicorn: give each its own.
            "--control-socket", str(workdir / "gunicorn.ctl"),
            *(["--preload"] if preload else []),
            f"{APP_MODULE}:app",
        ]  # fmt: skip
        log = open(self.log_path, "w")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir
        )
        log.close()
        if not wait_until(lambda: self.get(1, 1) is not None, 20):
            self.stop()
            raise AssertionError(f"gunicorn did not answer: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()[-3000:]

    def get(self, amount: int, qty: int, timeout: float = 10) -> dict[str, Any] | None:
        url = f"{self.url}/price?amount={amount}&qty={qty}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data: dict[str, Any] = json.loads(response.read())
                return data
        except OSError:
            return None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


class Traffic:
    """A bounded loop of requests; records every answer, its latency and the serving pid."""

    def __init__(self, service: Gunicorn) -> None:
        self.service = service
        self.sent = 0
        self.answered = 0
        self.latencies: list[float] = []
        self.pids: dict[int, int] = {}
        self.values: list[tuple[int, int, int]] = []

    def run(self, count: int, *, pause: float = 0.0, start: int = 0) -> None:
        for n in range(start, start + count):
            amount, qty = n % 97 + 1, n % 5 + 1
            began = time.perf_counter()
            answer = self.service.get(amount, qty)
            self.latencies.append(time.perf_counter() - began)
            self.sent += 1
            if answer is not None and answer["total"] == amount * qty:
                self.answered += 1
                self.pids[answer["pid"]] = self.pids.get(answer["pid"], 0) + 1
                self.values.append((amount, qty, answer["total"]))
            if pause:
                time.sleep(pause)

    def in_thread(self, count: int, *, pause: float = 0.0) -> threading.Thread:
        thread = threading.Thread(target=self.run, args=(count,), kwargs={"pause": pause})
        thread.start()
        return thread


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def service_name() -> str:
    return f"shop-{uuid.uuid4().hex[:8]}"


def place_probe(client: HubClient, service: str, **fields: Any) -> dict[str, Any]:
    probe = {
        "kind": "snapshot",
        "location": f"{APP_MODULE}:total",
        "capture": ["amount", "qty", "result"],
        # Unlimited for the test: every firing must be accounted as a hit or a counted drop.
        "limits": {"rate": 1_000_000.0, "burst": 1_000_000},
    }
    probe.update(fields)
    return client.place_probe(probe, selector={"service": service}, ttl=120)


def probe_states(client: HubClient, probe_id: str) -> dict[str, tuple[object, object]]:
    """{source id: (state, reason)}: what a failed wait for installation should show."""
    statuses = client.probe(probe_id)["statuses"]
    return {sid: (st.get("state"), st.get("reason")) for sid, st in sorted(statuses.items())}


def installed_sources(client: HubClient, probe_id: str) -> list[str]:
    statuses = client.probe(probe_id)["statuses"]
    return sorted(sid for sid, status in statuses.items() if status.get("state") == "installed")


def hits_and_drops(client: HubClient, probe_id: str) -> tuple[int, int]:
    record = client.probe(probe_id)
    return int(record["hit_count"]), int(record["dropped"])


def all_hits(client: HubClient, probe_id: str) -> list[dict[str, Any]]:
    return list(client.iter_hits(probe_id))


class Cleanup:
    """Stops every process and server a test started, last started first."""

    def __init__(self) -> None:
        self.things: list[Any] = []

    def add(self, thing: Any) -> Any:
        self.things.append(thing)
        return thing

    def run(self) -> None:
        for thing in reversed(self.things):
            try:
                if isinstance(thing, HostileProxy):
                    thing.close()
                else:
                    thing.stop()
            except Exception as exc:  # keep stopping the others
                print(f"cleanup of {thing!r} failed: {exc}", file=sys.stderr)


@pytest.fixture
def cleanup() -> Iterator[Cleanup]:
    box = Cleanup()
    yield box
    box.run()
