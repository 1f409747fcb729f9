"""The hub client's error mapping, against a plain HTTP peer that answers what each test needs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pytest_runtime.errors import HubAuthError, HubRequestError
from pytest_runtime.hub import HubClient

ANSWERS: dict[str, tuple[int, str]] = {}


class Peer(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status, body = ANSWERS.get(self.path.split("?")[0], (404, ""))
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_DELETE = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def peer() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Peer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
        ANSWERS.clear()


def test_garbage_body_is_a_request_error_quoting_the_start_of_it(peer: str) -> None:
    ANSWERS["/v1/health"] = (200, "<html>proxy login</html>")
    client = HubClient(peer, "t")
    with pytest.raises(HubRequestError, match=r"body that is not JSON: '<html>proxy login"):
        client.health()
    client.close()


def test_error_body_of_the_contract_is_quoted(peer: str) -> None:
    body = '{"error": {"code": "invalid_probe", "message": "probe field kind: got x"}}'
    ANSWERS["/v1/probes"] = (422, body)
    client = HubClient(peer, "t")
    with pytest.raises(HubRequestError) as info:
        client.find_probes("abc")
    assert info.value.status == 422
    assert info.value.code == "invalid_probe"
    assert str(info.value).endswith("failed with 422: probe field kind: got x")
    client.close()


def test_401_names_the_token_variable(peer: str) -> None:
    ANSWERS["/v1/sources"] = (401, '{"error": {"code": "unauthorized", "message": "bad token"}}')
    client = HubClient(peer, "t")
    with pytest.raises(HubAuthError, match="401: bad token; set SENSOR_CLIENT_TOKEN"):
        client.sources()
    client.close()


def test_unexpected_json_shape_is_a_request_error(peer: str) -> None:
    ANSWERS["/v1/sources"] = (200, '{"items": []}')
    client = HubClient(peer, "t")
    with pytest.raises(HubRequestError, match="expected a JSON object with 'sources'"):
        client.sources()
    client.close()


def test_removing_a_probe_that_is_already_gone_is_fine(peer: str) -> None:
    ANSWERS["/v1/probes/p1"] = (404, '{"error": {"code": "not_found", "message": "no probe"}}')
    client = HubClient(peer, "t")
    client.remove("p1")
    ANSWERS["/v1/probes/p1"] = (500, "")
    with pytest.raises(HubRequestError, match=r"failed with 500: \(empty body\)"):
        client.remove("p1")
    client.close()


class Scripted(BaseHTTPRequestHandler):
    """Answers each request with the next scripted (status, body, headers) for its path."""

    script: dict[str, list[tuple[int, str, dict[str, str]]]] = {}
    seen: list[tuple[str, str, float]] = []

    def _answer(self) -> None:
        import time

        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        path = self.path.split("?")[0]
        type(self).seen.append((self.command, path, time.monotonic()))
        queue = type(self).script.get(f"{self.command} {path}", [])
        status, body, headers = queue.pop(0) if len(queue) > 1 else queue[0]
        data = body.encode()
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def scripted() -> Iterator[tuple[str, type[Scripted]]]:
    handler = type("Peer", (Scripted,), {"script": {}, "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


OK_HEALTH = (200, '{"status": "ok"}', {})


def test_503_and_502_are_retried_until_the_hub_answers(
    scripted: tuple[str, type[Scripted]],
) -> None:
    url, peer = scripted
    peer.script["GET /v1/health"] = [(503, "", {}), (502, "", {}), OK_HEALTH]
    client = HubClient(url, "t")
    assert client.health() == {"status": "ok"}
    assert [m for m, p, _ in peer.seen] == ["GET"] * 3
    client.close()


def test_429_waits_for_retry_after(scripted: tuple[str, type[Scripted]]) -> None:
    url, peer = scripted
    peer.script["GET /v1/health"] = [(429, "", {"Retry-After": "1"}), OK_HEALTH]
    client = HubClient(url, "t")
    client.health()
    (_, _, first), (_, _, second) = peer.seen
    assert second - first >= 0.9
    client.close()


def test_retries_are_bounded_and_the_error_says_so(scripted: tuple[str, type[Scripted]]) -> None:
    url, peer = scripted
    peer.script["GET /v1/sources"] = [(503, '{"error": {"code": "x", "message": "busy"}}', {})]
    client = HubClient(url, "t", retries=2)
    with pytest.raises(HubRequestError, match=r"failed with 503, after 3 attempts: busy"):
        client.sources()
    assert len(peer.seen) == 3
    client.close()


def test_a_placement_whose_answer_was_lost_is_found_not_placed_twice(
    scripted: tuple[str, type[Scripted]],
) -> None:
    url, peer = scripted
    probe = {"id": "p1", "kind": "snapshot", "location": "m:f@return", "capture": ["x"]}
    stored = {"id": "p1", "selector": {"service": "s"}, "probe": {**probe, "limits": {}}}
    conflict = '{"error": {"code": "probe_exists", "message": "exists"}}'
    peer.script["POST /v1/probes"] = [(502, "", {}), (409, conflict, {})]
    peer.script["GET /v1/probes/p1"] = [(200, json.dumps({"probe": stored}), {})]
    client = HubClient(url, "t")
    assert client.place(probe, {"service": "s"}, ttl=60) == stored
    assert [(m, p) for m, p, _ in peer.seen] == [
        ("POST", "/v1/probes"),
        ("POST", "/v1/probes"),
        ("GET", "/v1/probes/p1"),
    ]
    # Another probe under that id is a real conflict.
    peer.seen.clear()
    peer.script["POST /v1/probes"] = [(409, conflict, {})]
    with pytest.raises(HubRequestError, match="409"):
        client.place({**probe, "location": "m:g@return"}, {"service": "s"}, ttl=60)
    client.close()
