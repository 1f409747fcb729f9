"""The hub client's error mapping, against a plain HTTP peer that answers what each test needs."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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


class Export(BaseHTTPRequestHandler):
    """An evidence export streamed as the hub streams it: one hit line sent ``REPEAT`` times,
    chunk by chunk (the response is never whole in this process either)."""

    LINES: list[bytes] = []
    REPEAT = 0

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()  # HTTP/1.0 without a length: the body ends when the peer closes
        head, line = b"".join(self.LINES[:-1]), self.LINES[-1]
        self.wfile.write(head)
        chunk = line * 256
        for _ in range(self.REPEAT // 256):
            self.wfile.write(chunk)

    def log_message(self, format: str, *args: object) -> None:
        pass


def export_lines() -> tuple[str, list[bytes]]:
    """(signature, lines) of an export: header, probe, and one hit of about 2 KB."""
    from sensor.probes import Probe

    probe = Probe(kind="snapshot", location="shop.pricing:apply_discount", capture=("note",))
    hit = {
        "probe_id": probe.id,
        "signature": probe.signature,
        "kind": "snapshot",
        "location": "shop.pricing:apply_discount@return",
        "ts": 1000.0,
        "hit_id": "h-1",
        "captures": {"note": "x" * 2000},
        "source": {"id": "src-1", "service": "shop"},
    }
    header = {"record": "header", "schema": "pytest-runtime/evidence", "version": 2}
    records = (
        {**header, "created_at": 1.0, "generator": "test"},
        {"record": "probe", "probe": probe.to_dict()},
        {"record": "hit", "hit": hit},
    )
    return probe.signature, [(json.dumps(record) + "\n").encode() for record in records]


def test_an_evidence_export_is_read_as_a_stream_not_held_whole() -> None:
    import tracemalloc

    signature, Export.LINES = export_lines()
    Export.REPEAT = 256 * 60  # about 32 MB of hit lines (the same hit: kept once)
    size = len(Export.LINES[-1]) * Export.REPEAT
    server = ThreadingHTTPServer(("127.0.0.1", 0), Export)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = HubClient(f"http://127.0.0.1:{server.server_address[1]}", "t")
    try:
        tracemalloc.start()
        try:
            evidence = client.evidence(signature)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert len(evidence.hits[signature]) == 1
    assert evidence.duplicates == Export.REPEAT - 1
    # Read line by line: the peak is a few chunks, not the 32 MB export (or twice it).
    assert peak < size / 8, (peak, size)


class Broken(BaseHTTPRequestHandler):
    """An export whose connection drops mid-stream (the hub died while sending)."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        lines = export_lines()[1]
        body = b"".join(lines[:2]) + lines[2] * 100  # several chunks of 64 KB
        self.send_response(200)
        self.send_header("Content-Length", str(len(body) * 10))  # promises more than it sends
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_an_export_that_breaks_mid_stream_says_how_far_it_got() -> None:
    from pytest_runtime.errors import HubUnreachableError

    server = ThreadingHTTPServer(("127.0.0.1", 0), Broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = HubClient(f"http://127.0.0.1:{server.server_address[1]}", "t", retries=0)
    try:
        with pytest.raises(HubUnreachableError, match=r"the stream broke after \d+ line") as info:
            client.evidence("sig")
        read = int(str(info.value).split("after ")[1].split(" ")[0])
        assert 60 < read < 102  # the lines of the chunks that arrived whole, not 0
    finally:
        client.close()
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- one client for the plugin, the CLI and the MCP server -------------------------------------


def test_the_cli_client_is_this_client_and_retries_like_it(
    scripted: tuple[str, type[Scripted]],
) -> None:
    from sensor.client import HubClient as CliClient
    from sensor.errors import HubResponseError

    url, peer = scripted
    assert issubclass(CliClient, HubClient)
    peer.script["GET /v1/health"] = [(503, "", {}), OK_HEALTH]
    cli = CliClient(url, "t")
    assert cli.health() == {"status": "ok"}  # the standard-library client gave up at the 503
    assert len(peer.seen) == 2
    peer.script["GET /v1/probes/p9"] = [
        (404, '{"error": {"code": "unknown_probe", "message": "no"}}', {})
    ]
    with pytest.raises(HubResponseError) as caught:  # the CLI's error tree catches it
        cli.probe("p9")
    assert caught.value.status == 404
    cli.close()


def test_401_without_a_token_says_that_none_was_sent(scripted: tuple[str, type[Scripted]]) -> None:
    url, peer = scripted
    peer.script["GET /v1/sources"] = [
        (401, '{"error": {"code": "missing_token", "message": "no"}}', {})
    ]
    client = HubClient(url, None)
    with pytest.raises(
        HubAuthError, match="no token was sent: set SENSOR_CLIENT_TOKEN to a token with the client"
    ) as caught:
        client.sources()
    assert (caught.value.status, caught.value.code) == (401, "missing_token")
    client.close()


def test_403_names_the_scope_the_call_needs(scripted: tuple[str, type[Scripted]]) -> None:
    url, peer = scripted
    peer.script["GET /v1/tokens"] = [(403, '{"error": {"code": "forbidden", "message": "no"}}', {})]
    client = HubClient(url, "client-token")
    with pytest.raises(
        HubAuthError, match=r"with 403: no; set SENSOR_CLIENT_TOKEN to a token with the admin scope"
    ):
        client.tokens()
    client.close()


def test_admin_changes_are_sent_once_not_retried(scripted: tuple[str, type[Scripted]]) -> None:
    url, peer = scripted
    peer.script["POST /v1/tokens"] = [(503, '{"error": {"code": "x", "message": "busy"}}', {})]
    client = HubClient(url, "admin")
    # a retried creation whose first answer was lost would make a second token
    with pytest.raises(HubRequestError, match=r"POST .*/v1/tokens failed with 503: busy"):
        client.add_token("ci", "client")
    assert len(peer.seen) == 1
    client.close()


def test_one_hit_is_read_by_id_with_its_parts_quoted(scripted: tuple[str, type[Scripted]]) -> None:
    url, peer = scripted
    hit = {"hit_id": "a/b", "captures": {"x": 1}}
    peer.script["GET /v1/probes/p%201/hits/a%2Fb"] = [(200, json.dumps({"hit": hit}), {})]
    client = HubClient(url, "t")
    assert client.hit("p 1", "a/b") == hit
    client.close()


def test_a_ca_file_that_cannot_be_read_is_a_config_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    from sensor.errors import ConfigError

    missing = str(tmp_path / "nope.pem")
    monkeypatch.setenv("SENSOR_CA_FILE", missing)
    with pytest.raises(ConfigError, match=rf"SENSOR_CA_FILE: got '{missing}', expected a readable"):
        HubClient("https://hub.internal:8765", "t")
    with pytest.raises(ConfigError, match=rf"cafile: got '{missing}'"):
        HubClient("https://hub.internal:8765", "t", cafile=missing)
    HubClient("http://hub.internal:8765", "t").close()  # plain http needs no CA
