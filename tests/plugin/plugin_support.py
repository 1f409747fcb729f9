"""Helpers for the plugin's pytester tests: a real hub process, a tiny shop, evidence lines."""

from __future__ import annotations

import dataclasses
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import hub_process
import pytest
from hub_process import CLIENT_TOKEN, SENSOR_TOKEN

from pytest_runtime.hub import HubClient
from pytest_runtime.markers import parse_probe_args as _parse_probe_args


@dataclasses.dataclass
class HubProcess:
    """A started hub (``tests/hub_process.py``) with the calls the plugin's tests make."""

    launcher: hub_process.HubProcess
    sensor_token: str = SENSOR_TOKEN
    client_token: str = CLIENT_TOKEN

    @property
    def url(self) -> str:
        return self.launcher.url

    @property
    def process(self) -> subprocess.Popen[str]:
        assert self.launcher.proc is not None
        return self.launcher.proc

    def request(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> Any:
        import requests

        headers = {"Authorization": f"Bearer {token or self.client_token}"}
        response = requests.request(method, self.url + path, headers=headers, timeout=10, **kwargs)
        response.raise_for_status()
        return response.json() if response.text else None

    def register(self, service: str = "shop") -> str:
        body = {
            "service": service,
            "version": "1.0",
            "host": "test-host",
            "pid": 1,
            "python": "3.11",
            "labels": {},
            "runtime_id": f"rt-{time.monotonic_ns()}",
            "sensor_version": "0",
            "backend": "monitoring",
        }
        data = self.request("POST", "/v1/sensors/register", token=self.sensor_token, json=body)
        return str(data["source_id"])

    def post_statuses(self, source_id: str, statuses: list[dict[str, Any]]) -> None:
        """A sensor's heartbeat: its per-probe statuses (state, reason, counters)."""
        self.request(
            "POST",
            f"/v1/sensors/{source_id}/heartbeat",
            token=self.sensor_token,
            json={"statuses": statuses, "dropped": 0},
        )

    def post_hits(self, source_id: str, hits: list[dict[str, Any]]) -> None:
        self.request(
            "POST",
            f"/v1/sensors/{source_id}/hits",
            token=self.sensor_token,
            json={"hits": hits, "dropped": {}},
        )


TEST_SOURCE = """
import pytest
from shop.pricing import apply_discount

@pytest.mark.runtime_probe("shop.pricing:apply_discount", capture=["price", "rate"])
def test_discount():
    assert apply_discount(10, 0.5) == 5
"""
REQUEST = _parse_probe_args(("shop.pricing:apply_discount",), {"capture": ["price", "rate"]})


def hits_for(probe_id: str, count: int) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            "probe_id": probe_id,
            "signature": REQUEST.signature,
            "kind": "snapshot",
            "location": REQUEST.location,
            "ts": now + n * 0.001,
            "hit_id": f"live-{probe_id[:6]}-{n}",
            "captures": {"price": None if n % 2 else 10 + n, "rate": 0.5},
        }
        for n in range(count)
    ]


def fake_traffic(hub: HubProcess, stop: threading.Event, count: int = 10) -> threading.Thread:
    """A sensor's side over real HTTP: wait for the placed probe, then post its hits."""

    def run() -> None:
        client = HubClient(hub.url, CLIENT_TOKEN)
        source = hub.register("shop")
        try:
            deadline = time.monotonic() + 30
            while not stop.is_set() and time.monotonic() < deadline:
                probes = client.find_probes(REQUEST.signature)
                if probes:
                    hub.post_hits(source, hits_for(str(probes[0]["id"]), count))
                    return
                stop.wait(0.1)
        finally:
            client.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def complete_traffic(hub: HubProcess, stop: threading.Event) -> threading.Thread:
    """fake_traffic's sensor with everything a run waits for: as many hits as the default bound
    wants, then the heartbeat whose counters cover them, so the run's wait ends at once.

    With fake_traffic's 10 hits a run waits out its whole ``--runtime-wait`` and then 10 s for
    the heartbeat that never comes: for a test that checks something else, only lost time.
    """
    from pytest_runtime.compare.counters import hits_needed
    from pytest_runtime.options import DEFAULT_RARER_THAN

    wanted = hits_needed(DEFAULT_RARER_THAN)

    def run() -> None:
        client = HubClient(hub.url, CLIENT_TOKEN)
        source = hub.register("shop")
        try:
            deadline = time.monotonic() + 30
            while not stop.is_set() and time.monotonic() < deadline:
                placed = client.find_probes(REQUEST.signature)
                if placed:
                    probe_id = str(placed[0]["id"])
                    hub.post_hits(source, hits_for(probe_id, wanted))
                    status = {"probe_id": probe_id, "state": "installed", "reason": None}
                    counters = {"hits": wanted, "evaluations": wanted, "violations": 0}
                    hub.post_statuses(source, [{**status, **counters}])
                    return
                stop.wait(0.1)
        finally:
            client.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def start_hub(tmp_path: Path) -> HubProcess:
    # generous: the machine is shared and often loaded
    launcher = hub_process.HubProcess(tmp_path / "hub.db").start(timeout=60)
    return HubProcess(launcher)


SHOP_PRICING = """
def apply_discount(price, rate):
    total = price - price * rate
    return total
"""


def make_shop(pytester: pytest.Pytester) -> None:
    """A tiny package under test: shop.pricing.apply_discount(price, rate)."""
    pytester.mkpydir("shop")
    pytester.path.joinpath("shop", "pricing.py").write_text(SHOP_PRICING)


def evidence_lines(
    location: str,
    states: list[dict[str, Any]],
    *,
    capture: list[str] | None = None,
    expect: str | None = None,
    expect_ok: list[bool | None] | None = None,
    ts: float | None = None,
) -> str:
    """An evidence file (docs/reference/evidence-schema.md) with one hit per production state."""
    import json

    from pytest_runtime.markers import parse_probe_args

    kwargs: dict[str, Any] = {"capture": capture or sorted(states[0]) if states else []}
    if expect:
        kwargs["expect"] = expect
    request = parse_probe_args((location,), kwargs)
    now = time.time() if ts is None else ts
    records: list[dict[str, Any]] = [
        {
            "record": "header",
            "schema": "pytest-runtime/evidence",
            "version": 1,
            "created_at": now,
            "generator": "tests",
        },
        {"record": "probe", "probe": request.probe.to_dict()},
    ]
    for n, state in enumerate(states):
        hit: dict[str, Any] = {
            "probe_id": request.probe.id,
            "signature": request.signature,
            "kind": "snapshot",
            "location": request.location,
            "ts": now - 60 + n * 0.01,
            "hit_id": f"prod-{n}",
            "captures": state,
            "source": {"id": f"src-{n % 2}", "service": "shop", "host": "web-1"},
        }
        if expect_ok is not None:
            hit["expect"] = {"ok": expect_ok[n], "error": None}
        records.append({"record": "hit", "hit": hit})
    return "\n".join(json.dumps(r) for r in records) + "\n"


class FlakyProxy:
    """An HTTP proxy in front of a real hub that fails some requests the way a load balancer
    in front of a restarting hub does, then forwards everything.

    ``rules`` are ``[method, path prefix, times, mode]``: the first ``times`` matching requests
    get ``503`` with ``Retry-After: 0`` without reaching the hub (mode ``"503"``), or reach the
    hub and lose its answer to a ``502`` (mode ``"lost"``). ``seen`` counts requests by
    ``(method, path)`` and by the answer's status.
    """

    def __init__(self, target: str, rules: list[list[Any]]) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.target = target
        self.rules = rules
        self.seen: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                with proxy.lock:
                    proxy.seen.append((self.command, self.path.split("?")[0], status))

            def _rule(self) -> str | None:
                with proxy.lock:
                    for rule in proxy.rules:
                        method, prefix, times, mode = rule
                        if times > 0 and self.command == method and self.path.startswith(prefix):
                            rule[2] = times - 1
                            return str(mode)
                return None

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                mode = self._rule()
                if mode == "503":
                    self._reply(503, b"upstream restarting", {"Retry-After": "0"})
                    return
                host, port = proxy.target.split("//", 1)[1].rsplit(":", 1)
                conn = http.client.HTTPConnection(host, int(port), timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                except OSError:
                    self._reply(502, b"bad gateway", {})
                    return
                finally:
                    conn.close()
                if mode == "lost":
                    self._reply(502, b"bad gateway", {})
                    return
                content_type = answer.getheader("Content-Type") or "application/json"
                self._reply(answer.status, data, {"Content-Type": content_type})

            do_GET = do_POST = do_DELETE = do_PUT = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def statuses(self, method: str, prefix: str) -> list[int]:
        with self.lock:
            return [s for m, p, s in self.seen if m == method and p.startswith(prefix)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
