"""A probe placed on a worker's main loop that is already running, in a real service.

The issue's pitfall: bytecode injection reaches only calls made after the probe is set, so a
loop that never returns (a queue consumer, a worker's main loop) never sees it. On 3.12+ the
default backend (``hybrid``) reaches it through sys.monitoring on the original code while new
calls run the rebuilt code. Real processes only: the hub, gunicorn under ``python -m sensor
run``, HTTP traffic.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from agent_support import (
    APP_MODULE,
    Cleanup,
    Gunicorn,
    HubProcess,
    Traffic,
    all_hits,
    cleanup,
    hits_and_drops,
    installed_sources,
    place_probe,
    probe_states,
    sensor_env,
    service_name,
    wait_until,
)

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        sys.version_info < (3, 12),
        reason="3.11 has only bytecode injection, which does not reach a frame already running "
        "(documented in docs/explanation/backends.md)",
    ),
]
__all__ = ["cleanup"]

#: Requests are priced by one consumer thread that the worker starts at import: its loop is
#: running long before any probe exists, and never returns.
LOOP_APP = textwrap.dedent(
    """
    import json
    import os
    import queue
    import threading
    from urllib.parse import parse_qs

    from sensor.engine import get_engine

    get_engine()._budget.fraction = 1.0  # counts must add up (see agent_support.APP)

    jobs = queue.Queue()


    def consume():
        while True:
            amount, qty, reply = jobs.get()
            price = amount * qty  # loop-body
            reply.put(price)


    threading.Thread(target=consume, name="consumer", daemon=True).start()


    def app(environ, start_response):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        amount = int(query.get("amount", ["1"])[0])
        qty = int(query.get("qty", ["1"])[0])
        reply = queue.Queue(maxsize=1)
        jobs.put((amount, qty, reply))
        body = json.dumps({"total": reply.get(timeout=10), "pid": os.getpid()}).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]
    """
)
LOOP_LINE = next(
    number
    for number, text in enumerate(LOOP_APP.splitlines(), 1)
    if text.rstrip().endswith("# loop-body")
)


def test_a_probe_on_a_running_worker_loop_sees_every_request(
    tmp_path: Path, cleanup: Cleanup
) -> None:
    hub = cleanup.add(HubProcess(tmp_path).start())
    client = hub.client()
    service = service_name()
    app = cleanup.add(Gunicorn(tmp_path, sensor_env(hub.url, service), workers=1, app=LOOP_APP))
    assert wait_until(lambda: len(client.sources(service=service, state="live")) >= 2, 10)
    probe = place_probe(
        client,
        service,
        location=f"{APP_MODULE}:consume@{LOOP_LINE}",
        capture=["amount", "qty", "price"],
    )
    # The worker is a source that installs it; the master never imports the app (pending).
    assert wait_until(lambda: len(installed_sources(client, probe["id"])) == 1, 10), probe_states(
        client, probe["id"]
    )
    (status,) = [
        s for s in client.probe(probe["id"])["statuses"].values() if s["state"] == "installed"
    ]
    assert status["backend"] == "hybrid"

    traffic = Traffic(app)
    traffic.run(60)
    assert traffic.answered == traffic.sent == 60
    assert wait_until(lambda: sum(hits_and_drops(client, probe["id"])) >= 60, 10), client.probe(
        probe["id"]
    )["statuses"]
    assert hits_and_drops(client, probe["id"]) == (60, 0)
    # Before the line runs: `price` is still the previous job's (absent on the first firing).
    seen = sorted(
        (h["captures"]["amount"], h["captures"]["qty"]) for h in all_hits(client, probe["id"])
    )
    assert seen == sorted((amount, qty) for amount, qty, _ in traffic.values)
