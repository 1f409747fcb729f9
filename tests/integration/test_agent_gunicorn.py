"""A gunicorn service with several workers, attached with ``python -m sensor run``, a real hub."""

from __future__ import annotations

from pathlib import Path

import pytest
from agent_support import (
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

pytestmark = pytest.mark.integration
__all__ = ["cleanup"]


@pytest.mark.parametrize("preload", [False, True], ids=["import-in-workers", "preload"])
def test_each_gunicorn_worker_is_a_source_and_its_hits_arrive(
    tmp_path: Path, cleanup: Cleanup, preload: bool
) -> None:
    hub = cleanup.add(HubProcess(tmp_path).start())
    client = hub.client()
    service = service_name()
    env = sensor_env(hub.url, service)
    app = cleanup.add(Gunicorn(tmp_path, env, workers=3, preload=preload))
    # The master and its three workers each register (a fork makes a new source).
    assert wait_until(lambda: len(client.sources(service=service, state="live")) >= 4, 10)
    probe = place_probe(client, service)
    assert wait_until(lambda: len(installed_sources(client, probe["id"])) >= 3, 10), probe_states(
        client, probe["id"]
    )

    traffic = Traffic(app)
    traffic.run(240)
    assert traffic.answered == traffic.sent == 240

    settled = wait_until(lambda: sum(hits_and_drops(client, probe["id"])) >= 240, 10)
    assert settled, client.probe(probe["id"])["statuses"]
    assert hits_and_drops(client, probe["id"]) == (240, 0)
    hits = all_hits(client, probe["id"])
    assert len({h["hit_id"] for h in hits}) == 240
    # Values: what the function saw and returned, as typed JSON.
    seen = sorted(
        (h["captures"]["amount"], h["captures"]["qty"], h["captures"]["result"]) for h in hits
    )
    assert seen == sorted(traffic.values)
    # Sources: every worker that answered is its own source, with exactly its share of hits.
    per_pid: dict[int, int] = {}
    sources = {h["source"]["id"] for h in hits}
    for hit in hits:
        per_pid[hit["source"]["pid"]] = per_pid.get(hit["source"]["pid"], 0) + 1
    assert per_pid == traffic.pids
    assert len(sources) == len(traffic.pids)

    app.stop()
    # Each worker deregistered at exit (atexit flush): its source is gone.
    assert wait_until(
        lambda: all(
            s["state"] == "gone" for s in client.sources(service=service) if s["id"] in sources
        ),
        10,
    )
