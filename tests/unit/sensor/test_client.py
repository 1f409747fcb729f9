"""The CLI's hub client (the one client with the CLI's defaults): URLs, tokens from the
environment, and how failures are reported in the sensor.errors tree."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sensor.client import DEFAULT_HUB_URL, HubClient
from sensor.errors import ConfigError, HubResponseError, HubUnavailableError


class _Peer(BaseHTTPRequestHandler):
    """A plain HTTP peer answering whatever the test sets (not our hub: a proxy, a stranger)."""

    status = 200
    body = b"{}"
    content_type = "application/json"
    seen: list[dict[str, Any]] = []

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self._answer(self.rfile.read(length))

    def do_DELETE(self) -> None:
        self._answer()

    def _answer(self, payload: bytes = b"") -> None:
        type(self).seen.append(
            {
                "method": self.command,
                "path": self.path,
                "auth": self.headers.get("Authorization"),
                "body": payload,
            }
        )
        self.send_response(self.status)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def peer() -> Iterator[tuple[str, type[_Peer]]]:
    handler = type("Peer", (_Peer,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_url_and_token_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTEST_RUNTIME_HUB", "http://hub.internal:9000/")
    monkeypatch.setenv("SENSOR_HUB_URL", "http://the-services-hub:1")
    monkeypatch.setenv("SENSOR_CLIENT_TOKEN", "t0k")
    monkeypatch.setenv("SENSOR_TOKEN", "a-sensor-token")
    client = HubClient()
    assert (client.url, client.token) == ("http://hub.internal:9000", "t0k")
    monkeypatch.delenv("PYTEST_RUNTIME_HUB")
    monkeypatch.delenv("SENSOR_HUB_URL")
    assert HubClient().url == DEFAULT_HUB_URL


def test_the_old_hub_variable_still_works_with_a_deprecation_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PYTEST_RUNTIME_HUB", raising=False)
    monkeypatch.setenv("SENSOR_HUB_URL", "http://hub.internal:9000/")
    with pytest.warns(DeprecationWarning, match="set PYTEST_RUNTIME_HUB"):
        client = HubClient()
    assert client.url == "http://hub.internal:9000"


@pytest.mark.parametrize("variable", ["PYTEST_RUNTIME_HUB", "SENSOR_HUB_URL"])
@pytest.mark.parametrize(
    "value", ["", "  ", "hub.internal:9000", "htp://hub:1", "http://hub:99999"]
)
def test_a_blank_or_malformed_hub_variable_is_an_error_naming_it(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.delenv("PYTEST_RUNTIME_HUB", raising=False)
    monkeypatch.delenv("SENSOR_HUB_URL", raising=False)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        HubClient()
    assert str(info.value).startswith(f"{variable}: got {value!r}, expected ")


def test_the_old_token_variable_still_works_with_a_deprecation_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SENSOR_CLIENT_TOKEN", raising=False)
    monkeypatch.setenv("SENSOR_TOKEN", "t0k")
    with pytest.warns(DeprecationWarning, match="set SENSOR_CLIENT_TOKEN"):
        client = HubClient()
    assert client.token == "t0k"


def test_bad_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'ftp://x'"):
        HubClient("ftp://x")


def test_requests_carry_the_bearer_token_and_query(peer: tuple[str, type[_Peer]]) -> None:
    url, handler = peer
    handler.body = b'{"sources": []}'
    HubClient(url, "secret").sources(service="shop", labels={"env": "prod", "zone": "a"})
    seen = handler.seen[-1]
    assert seen["auth"] == "Bearer secret"
    assert seen["path"] == "/v1/sources?service=shop&label=env%3Dprod&label=zone%3Da"


def test_probe_ids_are_quoted_in_paths(peer: tuple[str, type[_Peer]]) -> None:
    url, handler = peer
    handler.body = b'{"probe": {}}'
    HubClient(url, "t").remove_probe("a/b c")
    assert handler.seen[-1]["path"] == "/v1/probes/a%2Fb%20c"


def test_hub_error_message_and_status_are_kept(peer: tuple[str, type[_Peer]]) -> None:
    url, handler = peer
    handler.status = 422
    handler.body = json.dumps(
        {"error": {"code": "invalid_probe", "message": "probe field 'kind': got 'x'"}}
    ).encode()
    with pytest.raises(HubResponseError) as caught:
        HubClient(url, "t").place_probe({"kind": "x", "location": "m:f"})
    assert (caught.value.status, getattr(caught.value, "code", None)) == (422, "invalid_probe")
    assert str(caught.value).endswith("failed with 422: probe field 'kind': got 'x'")


def test_a_proxy_error_page_is_reported_with_its_text(peer: tuple[str, type[_Peer]]) -> None:
    url, handler = peer
    handler.status = 502
    handler.content_type = "text/html"
    handler.body = b"<html>Bad Gateway</html>"
    with pytest.raises(
        HubResponseError, match="failed with 502, after 3 attempts: '<html>Bad Gateway</html>'"
    ) as caught:
        HubClient(url, "t").probes()
    assert caught.value.status == 502


def test_garbage_with_status_200_is_a_response_error(peer: tuple[str, type[_Peer]]) -> None:
    url, handler = peer
    handler.body = b"not json at all"
    with pytest.raises(HubResponseError, match="expected JSON"):
        HubClient(url, "t").health()


def test_nothing_listening_is_hub_unavailable() -> None:
    with pytest.raises(HubUnavailableError, match=r"hub http://127\.0\.0\.1:9 cannot be reached"):
        HubClient("http://127.0.0.1:9", "t", timeout=2).health()


def test_evidence_needs_exactly_one_of_probe_or_signature() -> None:
    client = HubClient("http://127.0.0.1:9", "t")
    with pytest.raises(ConfigError, match="exactly one"):
        list(client.evidence_lines())
    with pytest.raises(ConfigError, match="exactly one"):
        list(client.evidence_lines(probe_id="p", signature="s"))
