"""Unit-test doubles for the agent: a small in-thread hub speaking the sensor API, and an engine."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sensor.errors import ProbeSpecError
from sensor.probes import Hit, Probe, ProbeState, ProbeStatus, _reject_unknown


class FakeHub:
    """Speaks the sensor half of the hub API (docs/reference/http-api.md), with switchable faults.

    ``mode``: "ok", "500", "garbage" (200 with a non-JSON body), "shape" (200 with JSON of the
    wrong shape); ``delay`` seconds are slept before every answer; while ``hold`` is cleared
    no request is answered (a hub that hangs, for as long as the test says).
    """

    def __init__(self) -> None:
        self.mode = "ok"
        self.delay = 0.0
        self.hold = threading.Event()
        self.hold.set()
        # hits answers: store at most this many of a batch (None: all), and whether to say
        # which were declined (declined_by_probe) as the real hub does
        self.accept_at_most: int | None = None
        self.itemize_declined = True
        # answer batches that carry a number as a hub older than batch numbers does
        self.refuse_batch_numbers = False
        # refuse statuses with other fields, as a hub older than some of the counters does
        self.status_fields: set[str] | None = None
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.registrations: list[dict[str, Any]] = []
        self.deregistered: list[str] = []
        self.heartbeats: list[tuple[str, dict[str, Any]]] = []
        self.hits: list[tuple[str, dict[str, Any]]] = []
        self.posted: list[dict[str, Any]] = []  # every hits body, answered or not
        self.polls: list[dict[str, str]] = []  # the query of every poll answered
        self.dropped: dict[str, int] = {}
        self.requests: list[tuple[str, str]] = []
        self.probes: list[dict[str, Any]] = []
        self.redaction: dict[str, Any] | None = None
        self.etag = 0
        self.known_sources: set[str] = set()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.server.handle_error = self._handle_error  # type: ignore[method-assign]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def _handle_error(self, request: Any, client_address: Any) -> None:
        # An answer held (``hold``, ``delay``) past the client's own timeout finds the
        # connection closed: the client gave up, as the test meant it to.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        ThreadingHTTPServer.handle_error(self.server, request, client_address)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def set_probes(self, probes: list[Probe], redaction: dict[str, Any] | None = None) -> None:
        with self.changed:
            self.probes = [p.to_dict() for p in probes]
            self.redaction = redaction
            self.etag += 1
            self.changed.notify_all()

    def received_hits(self) -> list[dict[str, Any]]:
        with self.lock:
            return [hit for _, batch in self.hits for hit in batch["hits"]]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _fault(self) -> bool:
                hub.hold.wait(60)
                if hub.delay:
                    time.sleep(hub.delay)
                if hub.mode == "500":
                    self._answer(500, {"error": {"code": "boom", "message": "broken"}})
                    return True
                if hub.mode == "shape":  # JSON, but not what the API promises
                    self._answer(200, {"source_id": 7, "etag": [], "probes": "all of them"})
                    return True
                if hub.mode == "garbage":
                    data = b"<html>not json"
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return True
                return False

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                hub.requests.append(("GET", url.path))
                if self._fault():
                    return
                parts = url.path.strip("/").split("/")
                query = dict(urllib.parse.parse_qsl(url.query))
                if len(parts) == 4 and parts[3] == "probes":
                    if parts[2] not in hub.known_sources:
                        self._answer(404, {"error": {"code": "unknown", "message": "no source"}})
                        return
                    wait = float(query.get("wait", "0"))
                    with hub.changed:
                        if query.get("etag") == str(hub.etag):
                            hub.changed.wait(wait)
                        body = {
                            "etag": str(hub.etag),
                            "probes": list(hub.probes),
                            "redaction": hub.redaction,
                        }
                        hub.polls.append(dict(query))
                        if query.get("unchanged") == "short" and query.get("etag") == body["etag"]:
                            body = {"etag": body["etag"], "unchanged": True}
                    self._answer(200, body)
                    return
                self._answer(404, {"error": {"code": "not-found", "message": url.path}})

            def do_POST(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                hub.requests.append(("POST", url.path))
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if url.path.endswith("/hits"):
                    with hub.lock:
                        hub.posted.append(body)
                if self._fault():
                    return
                parts = url.path.strip("/").split("/")
                if url.path == "/v1/sensors/register":
                    with hub.lock:
                        hub.registrations.append(body)
                        source_id = f"src-{len(hub.registrations)}"
                        hub.known_sources.add(source_id)
                    self._answer(
                        200, {"source_id": source_id, "poll_wait": 1, "heartbeat_interval": 0.2}
                    )
                    return
                source_id = parts[2] if len(parts) >= 4 else ""
                if source_id not in hub.known_sources:
                    self._answer(404, {"error": {"code": "unknown", "message": "no source"}})
                    return
                if parts[3] == "hits" and hub.refuse_batch_numbers and "batch" in body:
                    # the first release's words (today's hub: test_hub_http)
                    message = "hits: unknown field(s) ['batch'], expected only ['dropped', 'hits']"
                    self._answer(422, {"error": {"code": "unknown_field", "message": message}})
                    return
                with hub.lock:
                    if parts[3] == "hits":
                        hits = body["hits"]
                        keep = len(hits) if hub.accept_at_most is None else hub.accept_at_most
                        stored, refused = hits[:keep], hits[keep:]
                        hub.hits.append((source_id, {**body, "hits": stored}))
                        for probe_id, n in body["dropped"].items():
                            hub.dropped[probe_id] = hub.dropped.get(probe_id, 0) + n
                        by_probe: dict[str, dict[str, int]] = {}
                        for item in refused:
                            reasons = by_probe.setdefault(item["probe_id"], {})
                            reasons["max_hits"] = reasons.get("max_hits", 0) + 1
                        answer: dict[str, Any] = {"accepted": len(stored)}
                        if hub.itemize_declined:
                            answer["declined"] = len(refused)
                            answer["declined_by_probe"] = by_probe
                    elif parts[3] == "heartbeat":
                        if hub.status_fields is not None:
                            refused = _refuse_unknown(body.get("statuses") or [], hub.status_fields)
                            if refused:
                                self._answer(422, refused)
                                return
                        hub.heartbeats.append((source_id, body))
                        answer = {}
                    elif parts[3] == "deregister":
                        hub.deregistered.append(source_id)
                        answer = {}
                    else:
                        self._answer(404, {"error": {"code": "not-found", "message": url.path}})
                        return
                self._answer(200, answer)

        return Handler


class FakeEngine:
    """The Engine API the agent uses, without injection: tests fire hits by hand."""

    backend_name = "fake"
    backend_reason = "unit tests"

    def __init__(self) -> None:
        self.installed: dict[str, tuple[Probe, Callable[[Hit], None] | None]] = {}
        self.removed: list[str] = []
        self.sink: list[Hit] = []
        self.aggregates: list[Hit] = []
        self.removed_all = 0
        self.seq = 0
        self.fired: dict[str, int] = {}  # hits produced per probe: what statuses report

    def install(self, probe: Probe, on_hit: Callable[[Hit], None] | None = None) -> ProbeStatus:
        self.installed[probe.id] = (probe, on_hit)
        return ProbeStatus(probe.id, ProbeState.INSTALLED, backend="fake")

    def remove(self, probe_id: str) -> bool:
        self.removed.append(probe_id)
        return self.installed.pop(probe_id, None) is not None

    def remove_all(self) -> None:
        self.removed_all += 1
        self.installed.clear()

    def status(self, probe_id: str) -> ProbeStatus | None:
        if probe_id not in self.installed:
            return None
        return ProbeStatus(
            probe_id, ProbeState.INSTALLED, backend="fake", hits=self.fired.get(probe_id, 0)
        )

    def statuses(self) -> list[ProbeStatus]:
        return [s for s in map(self.status, self.installed) if s is not None]

    def drain(self, max_items: int | None = None) -> list[Hit]:
        taken, self.sink = self.sink, []
        return taken

    def flush_aggregates(self) -> list[Hit]:
        taken, self.aggregates = self.aggregates, []
        return taken

    @property
    def dropped(self) -> int:
        return 0

    def close(self) -> None:
        self.installed.clear()

    def fire(self, probe_id: str, count: int = 1, **captures: Any) -> None:
        probe, on_hit = self.installed[probe_id]
        for _ in range(count):
            self.seq += 1
            self.fired[probe_id] = self.fired.get(probe_id, 0) + 1
            hit = make_hit(probe, self.seq, **captures)
            if on_hit is None:
                self.sink.append(hit)
            else:
                on_hit(hit)


def make_hit(probe: Probe, seq: int, **captures: Any) -> Hit:
    return Hit(
        probe_id=probe.id,
        signature=probe.signature,
        kind=probe.kind.value,
        location=str(probe.location),
        ts=time.time(),
        hit_id=f"test-{seq}",
        captures=dict(captures) or {"n": seq},
    )


def snapshot_probe(probe_id: str = "p1") -> Probe:
    return Probe.from_dict(
        {"kind": "snapshot", "location": "shop.pricing:total", "capture": ["n"], "id": probe_id}
    )


def _refuse_unknown(statuses: list[dict[str, Any]], known: set[str]) -> dict[str, Any] | None:
    """The hub's 422 for a status with a field it does not know (its own words: sensor.probes)."""
    for index, item in enumerate(statuses):
        try:
            _reject_unknown("status", item, known)
        except ProbeSpecError as exc:
            return {"error": {"code": "invalid_status", "message": f"statuses[{index}]: {exc}"}}
    return None
