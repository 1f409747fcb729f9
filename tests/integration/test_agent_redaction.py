"""Whole requests captured in real services leak no credential: a WSGI environ under gunicorn and
an ASGI scope under uvicorn, both under ``python -m sensor run --``, hits read from a real hub.

Every credential sent carries ``Zq9``: a single search of every hit's JSON finds any leak. The
evidence around the credentials (the path, the other query parameters, the host) must stay.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from agent_support import (
    Cleanup,
    Gunicorn,
    HubProcess,
    all_hits,
    cleanup,
    free_port,
    installed_sources,
    place_probe,
    sensor_env,
    service_name,
    wait_until,
)

pytestmark = pytest.mark.integration
__all__ = ["cleanup"]

TOKEN = "9944b09199c62bcf9418Zq9d846dd0e4bbdfc6ee4b"
HEADERS = [
    {"Authorization": f"Token {TOKEN}", "X-Api-Key": "Zq9apikey", "Cookie": "sid=Zq9sid; a=b"},
    {"Authorization": f"BEARER {TOKEN}", "Proxy-Authorization": "basic Zq9YWxhZGRpbjpvcGVu"},
    {"authorization": "Zq9-raw-credential", "X-Auth-Token": "Zq9authtoken"},
]
QUERY = "amount=3&qty=2&api_key=Zq9key&access_token=Zq9at&page=4"
FORM = b"user=bob&password=Zq9hunter2&remember=1"
JSON_BODY = b'{"user": "bob", "client_secret": "Zq9cs", "n": 1}'

WSGI_APP = textwrap.dedent(
    """
    import json
    import os
    from urllib.parse import parse_qs

    if os.environ.get("AGENT_TEST_NO_CPU_BUDGET"):  # see agent_support.APP
        from sensor.engine import get_engine

        get_engine()._budget.fraction = 1.0


    def handle(environ, body):
        agent = environ.get("HTTP_USER_AGENT", "")
        return len(body)


    def app(environ, start_response):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        handle(environ, body)
        amount = int(query.get("amount", ["1"])[0])
        qty = int(query.get("qty", ["1"])[0])
        out = json.dumps({"total": amount * qty, "pid": os.getpid()}).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(out)))]
        )
        return [out]
    """
)

ASGI_APP = textwrap.dedent(
    """
    import json
    import os
    from urllib.parse import parse_qs

    if os.environ.get("AGENT_TEST_NO_CPU_BUDGET"):  # see agent_support.APP
        from sensor.engine import get_engine

        get_engine()._budget.fraction = 1.0


    def handle(scope, body):
        kind = scope["type"]
        return len(body)


    async def app(scope, receive, send):
        assert scope["type"] == "http"
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        handle(scope, body)
        query = parse_qs(scope["query_string"].decode())
        amount = int(query.get("amount", ["1"])[0])
        qty = int(query.get("qty", ["1"])[0])
        out = json.dumps({"total": amount * qty, "pid": os.getpid()}).encode()
        length = str(len(out)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": out})
    """
)


class Uvicorn(Gunicorn):
    """The ASGI app under uvicorn, through ``python -m sensor run --``."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        (workdir / "carrier_asgi_app.py").write_text(ASGI_APP)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "uvicorn.log"
        command = [
            sys.executable, "-m", "sensor", "run", "--",
            sys.executable, "-m", "uvicorn", "carrier_asgi_app:app",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--lifespan", "off", "--log-level", "warning",
        ]  # fmt: skip
        log = open(self.log_path, "w")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir
        )
        log.close()
        if not wait_until(lambda: self.get(1, 1) is not None, 20):
            self.stop()
            raise AssertionError(f"uvicorn did not answer: {self.log()}")


def send_secrets(url: str) -> None:
    for headers in HEADERS:
        for body, ctype in ((FORM, "application/x-www-form-urlencoded"), (JSON_BODY, "json")):
            request = urllib.request.Request(
                f"{url}/login?{QUERY}",
                data=body,
                headers={**headers, "Content-Type": ctype},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert json.loads(response.read())["total"] == 6


def probes(client: Any, service: str, module: str, name: str) -> list[dict[str, Any]]:
    location = f"{module}:handle"
    return [
        place_probe(client, service, location=location, capture=[]),  # capture-all
        place_probe(
            client,
            service,
            location=location,
            capture=[
                {"name": "h", "expr": f"str({name})"},
                {"name": "b", "expr": "body"},
                {"name": "pieces", "expr": "body.split(b'&')"},
                {"name": "alias", "expr": name},
            ],
        ),
        place_probe(
            client,
            service,
            location=location,
            kind="log",
            capture=[],
            template="{" + name + "} body={body} parts={body.split(b'=')}",
        ),
    ]


def check_hits(client: Any, placed: list[dict[str, Any]]) -> list[dict[str, Any]]:
    expected = len(HEADERS) * 2
    for probe in placed:
        assert wait_until(lambda p=probe: len(all_hits(client, p["id"])) >= expected, 30), (
            client.probe(probe["id"])
        )
    hits = [h for p in placed for h in all_hits(client, p["id"])]
    text = json.dumps(hits)
    assert "Zq9" not in text, [h for h in hits if "Zq9" in json.dumps(h)][:1]
    assert "<redacted" in text
    return hits


def test_a_wsgi_environ_captured_under_gunicorn_leaks_no_credential(
    tmp_path: Path, cleanup: Cleanup
) -> None:
    hub = cleanup.add(HubProcess(tmp_path).start())
    client = hub.client()
    service = service_name()
    app = cleanup.add(Gunicorn(tmp_path, sensor_env(hub.url, service), app=WSGI_APP))
    placed = probes(client, service, "agent_shop_app", "environ")
    for probe in placed:
        # Both workers: a request served by a worker that has not polled yet is not captured
        # (CI on a loaded machine sent the requests while one worker still lagged).
        assert wait_until(lambda p=probe: len(installed_sources(client, p["id"])) >= 2, 30)
    send_secrets(app.url)
    hits = check_hits(client, placed)
    environ = next(
        h["captures"]["environ"]["v"] for h in hits if h.get("captures", {}).get("environ")
    )
    assert environ["QUERY_STRING"].startswith("amount=3&qty=2&api_key=<redacted")
    assert environ["QUERY_STRING"].endswith("&page=4")
    assert environ["PATH_INFO"] == "/login"


def test_an_asgi_scope_captured_under_uvicorn_leaks_no_credential(
    tmp_path: Path, cleanup: Cleanup
) -> None:
    hub = cleanup.add(HubProcess(tmp_path).start())
    client = hub.client()
    service = service_name()
    path = os.pathsep.join(p for p in (str(tmp_path), os.environ.get("PYTHONPATH")) if p)
    env = sensor_env(hub.url, service, PYTHONPATH=path)
    app = cleanup.add(Uvicorn(tmp_path, env))
    placed = probes(client, service, "carrier_asgi_app", "scope")
    for probe in placed:
        assert wait_until(lambda p=probe: installed_sources(client, p["id"]) != [], 30)
    send_secrets(app.url)
    hits = check_hits(client, placed)
    scope = next(h["captures"]["scope"]["v"] for h in hits if h.get("captures", {}).get("scope"))
    query = scope["query_string"]["v"]
    assert query.startswith("amount=3&qty=2&api_key=<redacted")
    assert query.endswith("&page=4")
    assert scope["path"] == "/login"
