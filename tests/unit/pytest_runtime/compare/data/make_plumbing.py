"""Regenerate ``plumbing.json``: real captures of server plumbing, test client against server.

Each scenario runs one view twice: under the framework's test client (the test-time states)
and under what a production server hands it (gunicorn's own ``wsgi.create`` on a parsed
request from a real socket, a uvicorn server on loopback, a file-backed SQLAlchemy engine).
The view captures its locals with the sensor's ``capture_frame``, as a probe does. Four
requests a side (production's differ from the tests' only in the plumbing and the client's
headers); the tests repeat production's hits to reach the hits a verdict needs.

Needs flask, django, sqlalchemy, gunicorn, uvicorn, starlette and httpx (not test
dependencies: the JSON is committed). Run from the repository root:
``python tests/unit/pytest_runtime/compare/data/make_plumbing.py``.
"""

from __future__ import annotations

import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sensor.capture import capture_frame

QUERIES = ["name=ann", "name=bob&page=2", "name=cy", "name=dee&page=3"]
TENANTS = ["acme", "beta"]
OUT = Path(__file__).with_name("plumbing.json")


def _start_response(status: str, headers: list[Any], exc_info: Any = None) -> Any:
    return lambda data: None


def gunicorn_environ(query: str, tenant: str, port: int) -> tuple[dict[str, Any], Any]:
    """The environ a gunicorn worker builds for one request read from a real socket."""
    from gunicorn.config import Config
    from gunicorn.http import wsgi
    from gunicorn.http.parser import RequestParser

    a, b = socket.socketpair()
    b.sendall(
        f"GET /hello?{query} HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: Mozilla/5.0\r\n"
        f"Accept: */*\r\nX-Forwarded-For: 203.0.113.{port % 200}\r\nX-Tenant: {tenant}\r\n"
        "\r\n".encode()
    )
    cfg = Config()
    client = ("10.0.0.7", str(port))
    req = next(RequestParser(cfg, a, client))
    _, environ = wsgi.create(req, a, client, ("0.0.0.0", "8000"), cfg)
    return environ, (a, b)


def flask_scenario() -> dict[str, list[dict[str, Any]]]:
    from flask import Flask, request

    app = Flask("shop")
    seen: list[dict[str, Any]] = []

    @app.get("/hello")
    def hello() -> str:
        env = request.environ
        tenant = env.get("HTTP_X_TENANT")
        seen.append(capture_frame({"env": env, "tenant": tenant})[0])
        return "ok"

    client = app.test_client()
    for i, query in enumerate(QUERIES):
        client.get(f"/hello?{query}", headers={"X-Tenant": TENANTS[i % 2]})
    test = list(seen)
    seen.clear()
    keep = []
    for i in range(4):
        environ, pair = gunicorn_environ(QUERIES[i % 4], TENANTS[i % 2], 40000 + i * 7)
        keep.append(pair)
        list(app(environ, _start_response))
    prod = list(seen)
    return {"flask_test": test, "flask_prod": prod}


def django_scenario() -> dict[str, list[dict[str, Any]]]:
    import django
    from django.conf import settings

    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        SECRET_KEY="x" * 50,
        MIDDLEWARE=[],
        INSTALLED_APPS=[],
    )
    django.setup()
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import HttpResponse
    from django.test import Client
    from django.urls import path

    seen: list[dict[str, Any]] = []

    def hello(request: Any) -> Any:
        meta = request.META
        tenant = meta.get("HTTP_X_TENANT")
        seen.append(capture_frame({"meta": meta, "tenant": tenant})[0])
        return HttpResponse("ok")

    global urlpatterns
    urlpatterns = [path("hello", hello)]
    client = Client()
    for i, query in enumerate(QUERIES):
        client.get(f"/hello?{query}", headers={"X-Tenant": TENANTS[i % 2]})
    test = list(seen)
    seen.clear()
    handler = WSGIHandler()
    keep = []
    for i in range(4):
        environ, pair = gunicorn_environ(QUERIES[i % 4], TENANTS[i % 2], 41000 + i * 7)
        keep.append(pair)
        handler(environ, _start_response)
    prod = list(seen)
    return {"django_test": test, "django_prod": prod}


def asgi_scenario() -> dict[str, list[dict[str, Any]]]:
    import httpx
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    seen: list[dict[str, Any]] = []

    async def hello(request: Any) -> Any:
        scope = request.scope
        tenant = request.headers.get("x-tenant")
        seen.append(capture_frame({"scope": scope, "tenant": tenant})[0])
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/hello", hello)])
    with TestClient(app) as client:
        for i, query in enumerate(QUERIES):
            client.get(f"/hello?{query}", headers={"X-Tenant": TENANTS[i % 2]})
    test = list(seen)
    seen.clear()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
        for i in range(4):
            client.get(f"/hello?{QUERIES[i % 4]}", headers={"X-Tenant": TENANTS[i % 2]})
    server.should_exit = True
    thread.join(5)
    prod = list(seen)
    return {"asgi_test": test, "asgi_prod": prod}


def sqlalchemy_scenario() -> dict[str, list[dict[str, Any]]]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    def total(db: Any, engine: Any, amount: int) -> dict[str, Any]:
        db.execute(text("select 1"))
        return capture_frame({"db": db, "engine": engine, "amount": amount})[0]

    test_engine = create_engine("sqlite://")  # SingletonThreadPool, as test suites use
    with Session(test_engine) as db:
        test = [total(db, test_engine, 10 + i) for i in range(4)]
    with tempfile.TemporaryDirectory() as tmp:
        prod_engine = create_engine(f"sqlite:///{tmp}/shop.db")  # QueuePool
        with Session(prod_engine) as db:
            prod = [total(db, prod_engine, 10 + i) for i in range(4)]
        prod_engine.dispose()
    return {"sqlalchemy_test": test, "sqlalchemy_prod": prod}


def main() -> None:
    """Write every scenario's captures (name -> list of captures) to ``plumbing.json``."""
    data: dict[str, Any] = {}
    for scenario in (flask_scenario, django_scenario, asgi_scenario, sqlalchemy_scenario):
        data.update(scenario())
    for name, hits in data.items():
        if not hits:
            sys.exit(f"{name}: no hits captured")
    OUT.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")
    print(OUT, {k: len(v) for k, v in data.items()})


urlpatterns: list[Any] = []

if __name__ == "__main__":
    main()
