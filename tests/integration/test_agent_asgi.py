"""An asyncio service (uvicorn) and a threaded one (gunicorn gthread) with the sensor attached."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from agent_support import (
    Cleanup,
    Gunicorn,
    HubProcess,
    Traffic,
    all_hits,
    cleanup,
    free_port,
    hits_and_drops,
    installed_sources,
    place_probe,
    sensor_env,
    service_name,
    wait_until,
)

pytestmark = pytest.mark.integration
__all__ = ["cleanup"]

ASGI_APP = textwrap.dedent(
    """
    import json
    import os
    from urllib.parse import parse_qs

    if os.environ.get("AGENT_TEST_NO_CPU_BUDGET"):  # see agent_support.APP
        from sensor.engine import get_engine

        get_engine()._budget.fraction = 1.0


    def total(amount, qty):
        price = amount * qty
        return price


    async def app(scope, receive, send):
        assert scope["type"] == "http"
        query = parse_qs(scope["query_string"].decode())
        amount = int(query.get("amount", ["1"])[0])
        qty = int(query.get("qty", ["1"])[0])
        body = json.dumps({"total": total(amount, qty), "pid": os.getpid()}).encode()
        length = str(len(body)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", length)]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    """
)


class Uvicorn(Gunicorn):
    """The ASGI app under uvicorn, started through ``python -m sensor run --``."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        (workdir / "agent_asgi_app.py").write_text(ASGI_APP)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "uvicorn.log"
        command = [
            sys.executable, "-m", "sensor", "run", "--",
            sys.executable, "-m", "uvicorn", "agent_asgi_app:app",
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


def test_uvicorn_service_sends_hits_without_blocking_the_loop(
    tmp_path: Path, cleanup: Cleanup
) -> None:
    hub = cleanup.add(HubProcess(tmp_path).start())
    client = hub.client()
    service = service_name()
    app = cleanup.add(Uvicorn(tmp_path, sensor_env(hub.url, service, PYTHONPATH=str(tmp_path))))
    assert wait_until(lambda: len(client.sources(service=service)) == 1, 10)
    probe = place_probe(client, service, location="agent_asgi_app:total")
    assert wait_until(lambda: installed_sources(client, probe["id"]) != [], 10)

    traffic = Traffic(app)
    traffic.run(150)
    assert traffic.answered == traffic.sent == 150
    assert wait_until(lambda: sum(hits_and_drops(client, probe["id"])) >= 150, 10)
    assert hits_and_drops(client, probe["id"]) == (150, 0)
    hits = all_hits(client, probe["id"])
    assert sorted(
        (h["captures"]["amount"], h["captures"]["qty"], h["captures"]["result"]) for h in hits
    ) == sorted(traffic.values)
    assert {h["source"]["pid"] for h in hits} == set(traffic.pids)

    app.stop()
    assert wait_until(lambda: client.sources(service=service)[0]["state"] == "gone", 10)


def test_threaded_workers_count_every_hit(tmp_path: Path, cleanup: Cleanup) -> None:
    hub = cleanup.add(HubProcess(tmp_path).start())
    client = hub.client()
    service = service_name()
    app = cleanup.add(Gunicorn(tmp_path, sensor_env(hub.url, service), workers=2, threads=4))
    probe = place_probe(client, service)
    assert wait_until(lambda: len(installed_sources(client, probe["id"])) >= 2, 10), (
        client.probe(probe["id"])["statuses"],
        client.sources(service=service),
        app.log(),
    )

    traffic = [Traffic(app) for _ in range(4)]
    threads = [t.in_thread(50) for t in traffic]  # concurrent requests: hits from many threads
    for thread in threads:
        thread.join(30)
    assert sum(t.answered for t in traffic) == 200
    assert wait_until(lambda: sum(hits_and_drops(client, probe["id"])) >= 200, 10)
    assert hits_and_drops(client, probe["id"]) == (200, 0)
    assert len({h["hit_id"] for h in all_hits(client, probe["id"])}) == 200
