"""Credentials carried twice or copied, in a real service under gunicorn with a real hub: a
query string carried percent-encoded inside `next=`, JSON serialized into a string, a cookie
jar loaded from the request, a copy of a secret-named local under another name, and a
statement's and a log record's parameter that its template names.

Every credential sent carries ``Zq9``: a single search of every hit's JSON finds any leak.
"""

from __future__ import annotations

import json
import textwrap
import urllib.request
from pathlib import Path

import pytest
from agent_support import (
    Cleanup,
    Gunicorn,
    HubProcess,
    all_hits,
    cleanup,
    installed_sources,
    place_probe,
    sensor_env,
    service_name,
    wait_until,
)

pytestmark = pytest.mark.integration
__all__ = ["cleanup"]

APP = textwrap.dedent(
    """
    import http.cookies
    import json
    import logging
    import os
    import sqlite3
    from urllib.parse import parse_qs

    if os.environ.get("AGENT_TEST_NO_CPU_BUDGET"):  # see agent_support.APP
        from sensor.engine import get_engine

        get_engine()._budget.fraction = 1.0


    DB = sqlite3.connect(":memory:", check_same_thread=False)
    DB.execute("CREATE TABLE users (name TEXT, password TEXT)")


    def store(query, params):
        DB.execute(query, params)
        record = logging.LogRecord("db", 20, __file__, 1, "reset password=%s for %s", params, None)
        return record.levelno


    def handle(environ, body):
        jar = http.cookies.SimpleCookie()
        jar.load(environ.get("HTTP_COOKIE", ""))
        password = json.loads(json.loads(body))["password"] if body else ""
        raw = password.encode()
        form = json.loads(json.loads(body)) if body else {}
        store("UPDATE users SET password = ? WHERE name = ?", (form.get("new_password"), "bob"))
        return len(raw)


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
QUERY = "amount=3&qty=2&next=%2Fcb%3Fpage%3D2%26token%3DZq9nextAAAA%26lang%3Den&page=4"
BODY = json.dumps(
    json.dumps({"user": "bob", "password": "Zq9hunter2A", "new_password": "Zq9renewedB"})
).encode()
COOKIE = "sid=Zq9sessionA; lang=en"


def test_twice_carried_and_copied_credentials_leak_nothing_from_a_real_service(
    tmp_path: Path, cleanup: Cleanup
) -> None:
    hub = cleanup.add(HubProcess(tmp_path).start())
    client = hub.client()
    service = service_name()
    app = cleanup.add(Gunicorn(tmp_path, sensor_env(hub.url, service), app=APP))
    location = "agent_shop_app:handle@return"
    placed = [
        place_probe(client, service, location=location, capture=[]),  # capture-all
        place_probe(
            client,
            service,
            location=location,
            capture=[
                {"name": "q", "expr": "environ['QUERY_STRING']"},
                {"name": "b", "expr": "body"},
                {"name": "r", "expr": "raw"},
                {"name": "j", "expr": "jar"},
            ],
        ),
        place_probe(
            client,
            service,
            location=location,
            kind="log",
            capture=[],
            template="q={environ['QUERY_STRING']} body={body} raw={raw}",
        ),
        # A statement and its parameters, and a log record's msg and args: the template names
        # the secret, the parameter holds it (a copy out of a dict: no secret-named local).
        place_probe(client, service, location="agent_shop_app:store@return", capture=[]),
    ]
    for probe in placed:
        assert wait_until(lambda p=probe: len(installed_sources(client, p["id"])) >= 2, 30)
    for _ in range(4):
        request = urllib.request.Request(
            f"{app.url}/login?{QUERY}", data=BODY, headers={"Cookie": COOKIE}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert json.loads(response.read())["total"] == 6
    for probe in placed:
        assert wait_until(lambda p=probe: len(all_hits(client, p["id"])) >= 4, 30), client.probe(
            probe["id"]
        )
    hits = [h for p in placed for h in all_hits(client, p["id"])]
    text = json.dumps(hits)
    assert "Zq9" not in text, [h for h in hits if "Zq9" in json.dumps(h)][:1]
    # The evidence around the credentials stays.
    assert "%26lang%3Den&page=4" in text
    assert '"UPDATE users SET password = <redacted:field> WHERE name = ?"' in text
    assert '"reset password=<redacted:field> for %s"' in text
    assert '"bob"]' in text  # the parameter the template does not name is shown
    assert '\\"user\\": \\"bob\\"' in text or '\\\\\\"user\\\\\\": \\\\\\"bob\\\\\\"' in text
