"""The hub transport: JSON in and out, every failure mapped to HubUnavailable or HubResponse."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sensor.agent.transport import MAX_RESPONSE_BYTES, Backoff, Transport
from sensor.errors import HubResponseError, HubUnavailableError


class Peer:
    """A tiny HTTP server whose answer each test sets: (status, body bytes)."""

    def __init__(self) -> None:
        self.answer: tuple[int, bytes] = (200, b"{}")
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                peer.seen.append((self.command, self.path, dict(self.headers), body))
                status, data = peer.answer
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()


def ask(url: str, path: str = "/v1/x", timeout: float = 2.0) -> dict[str, Any]:
    transport = Transport(url, None, timeout=timeout)
    try:
        return transport.request("GET", path)
    finally:
        transport.close()


@pytest.fixture
def peer() -> Iterator[Peer]:
    server = Peer()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_request_sends_json_with_the_token_and_returns_the_object(peer: Peer) -> None:
    peer.answer = (200, b'{"source_id": "s1"}')
    transport = Transport(peer.url, "tok", timeout=2)
    answer = transport.request("POST", "/v1/sensors/register", {"service": "shop"})
    assert answer == {"source_id": "s1"}
    method, path, headers, body = peer.seen[0]
    assert (method, path, body) == ("POST", "/v1/sensors/register", b'{"service":"shop"}')
    assert headers["Authorization"] == "Bearer tok"
    transport.request("GET", "/v1/x", query={"etag": None, "wait": "1"})
    assert peer.seen[1][1] == "/v1/x?wait=1"
    transport.close()


def test_error_status_carries_the_hubs_message(peer: Peer) -> None:
    peer.answer = (403, b'{"error": {"code": "scope", "message": "a sensor token cannot"}}')
    with pytest.raises(HubResponseError, match="403: a sensor token cannot") as info:
        ask(peer.url)
    assert info.value.status == 403


@pytest.mark.parametrize("body", [b"<html>", b"[1, 2]", b"", b'"text"'])
def test_a_body_that_is_not_a_json_object_is_refused(peer: Peer, body: bytes) -> None:
    peer.answer = (200, body)
    with pytest.raises(HubResponseError, match="expected a JSON object"):
        ask(peer.url)


def test_an_oversized_answer_is_refused(peer: Peer) -> None:
    peer.answer = (200, b"[" + b"1," * (MAX_RESPONSE_BYTES // 2) + b"1]")
    with pytest.raises(HubResponseError, match="more than"):
        ask(peer.url)


def test_nothing_listening_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HubUnavailableError, match="failed"):
        ask(f"http://127.0.0.1:{port}", timeout=1)


def test_a_silent_peer_times_out() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(HubUnavailableError, match="timed out"):
            ask(f"http://127.0.0.1:{port}", timeout=0.3)


def test_backoff_grows_to_the_cap_with_jitter() -> None:
    backoff = Backoff(base=0.1, cap=1.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    assert 0.05 <= delays[0] <= 0.1
    assert 0.4 <= delays[3] <= 0.8
    assert all(0.5 <= d <= 1.0 for d in delays[5:])
    backoff.reset()
    assert backoff.next_delay() <= 0.1


def test_an_unexpected_error_is_unavailable_and_the_connection_is_not_reused(
    peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What happened with "unknown encoding: idna" while a pre-fork server forked: a half-sent
    # request must not leave the kept-alive connection in the "Request-sent" state.
    import http.client

    original = http.client.HTTPConnection.request
    calls = {"n": 0}

    def flaky(self: http.client.HTTPConnection, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            original(self, *args, **kwargs)
            raise LookupError("unknown encoding: idna")
        original(self, *args, **kwargs)

    monkeypatch.setattr(http.client.HTTPConnection, "request", flaky)
    transport = Transport(peer.url, None, timeout=2)
    try:
        with pytest.raises(HubUnavailableError, match="LookupError"):
            transport.request("GET", "/v1/x")
        assert transport.request("GET", "/v1/x") == {}
    finally:
        transport.close()


@pytest.mark.parametrize(
    "url",
    [
        "ftp://bob:Zq9pw@hub.example",
        "hub.example/?token=Zq9tok",
        "https://bob:Zq9pw@:8700",
        "http://bob:Zq9pw@hub.example:port",
        "sk-proj-Zq9aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xYz",
    ],
)
def test_a_refused_hub_url_is_not_quoted_with_its_secret(url: str) -> None:
    with pytest.raises(ValueError, match="hub URL") as info:
        Transport(url, None)
    assert "Zq9" not in str(info.value)


def test_errors_of_a_transport_built_with_credentials_do_not_quote_them(peer: Peer) -> None:
    # The configuration refuses such a URL; a Transport built directly takes it, and every
    # error it raises names the hub without the password.
    host = peer.url.removeprefix("http://")
    peer.answer = (500, b'{"error": {"code": "x", "message": "boom"}}')
    with pytest.raises(HubResponseError, match="answered 500") as info:
        ask(f"http://bob:Zq9pw@{host}/prefix")
    assert "Zq9" not in str(info.value)
    assert f"http://***@{host}/prefix" in str(info.value)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HubUnavailableError, match="failed") as unavailable:
        ask(f"http://bob:Zq9pw@127.0.0.1:{port}", timeout=1)
    assert "Zq9" not in str(unavailable.value)
