"""The hub client's error mapping, against a plain HTTP peer that answers what each test needs."""

from __future__ import annotations

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
