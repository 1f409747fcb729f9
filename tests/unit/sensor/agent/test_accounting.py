"""Every hit is accounted: sent = stored + counted drops, and the last status reaches the hub."""

from __future__ import annotations

from typing import Any

import pytest
from agent_doubles import FakeEngine, FakeHub, snapshot_probe

from sensor.agent.lifecycle import Agent
from sensor.config import load_config
from sensor.probes import ProbeState, ProbeStatus


def make_agent(hub: FakeHub, engine: FakeEngine, **settings: Any) -> Agent:
    values: dict[str, Any] = {
        "hub": hub.url,
        "service": "shop",
        "flush_interval": 0.05,
        "max_backoff": 0.2,
        "heartbeat_interval": 0.1,
        "exit_timeout": 3.0,
        "timeout": 2.0,
        "batch_size": 10,
    }
    values.update(settings)
    return Agent(load_config(environ={}, **values), engine_factory=lambda: engine)


def _last_statuses(hub: FakeHub) -> dict[str, dict[str, Any]]:
    with hub.lock:
        _, body = hub.heartbeats[-1]
    return {status["probe_id"]: status for status in body["statuses"]}


@pytest.mark.parametrize("itemized", [True, False], ids=["itemized", "bare-count"])
def test_hits_the_hub_declines_are_counted_as_drops(
    fake_hub: FakeHub, fake_engine: FakeEngine, itemized: bool
) -> None:
    fake_hub.accept_at_most = 4  # of every batch of 10
    fake_hub.itemize_declined = itemized
    agent = make_agent(fake_hub, fake_engine)
    agent.start()
    try:
        fake_hub.set_probes([snapshot_probe("p1"), snapshot_probe("p2")])
        assert fake_hub.wait_for(lambda: {"p1", "p2"} <= set(fake_engine.installed))
        fake_engine.fire("p1", 15)
        fake_engine.fire("p2", 15)
        assert fake_hub.wait_for(lambda: agent.status()["queued"] == 0 and agent.sent == 30)
    finally:
        agent.stop(3.0)
    stored = len(fake_hub.received_hits())
    drops = agent.queue.drops()
    assert stored == agent.stored < 30
    assert agent.sent == 30 == stored + sum(drops.values())
    assert agent.declined == sum(drops.values())
    for probe_id in ("p1", "p2"):  # per probe too: produced = stored + dropped
        kept = sum(1 for hit in fake_hub.received_hits() if hit["probe_id"] == probe_id)
        assert kept + drops.get(probe_id, 0) == 15
    # the drops reached the hub: in the batches' counts and in the final statuses
    assert fake_hub.dropped == drops
    final = _last_statuses(fake_hub)
    assert {pid: (s["hits"], s["drops"]) for pid, s in final.items()} == {
        pid: (15, drops.get(pid, 0)) for pid in ("p1", "p2")
    }


def test_stop_reports_final_counts_before_removing_probes(
    fake_hub: FakeHub, fake_engine: FakeEngine
) -> None:
    agent = make_agent(fake_hub, fake_engine, flush_interval=30.0, heartbeat_interval=30.0)
    agent.start()
    fake_hub.set_probes([snapshot_probe("p1")])
    assert fake_hub.wait_for(lambda: "p1" in fake_engine.installed)
    assert fake_hub.wait_for(lambda: bool(fake_hub.heartbeats))
    fake_engine.fire("p1", 13)  # after the last heartbeat: only stop() can report them
    agent.stop(3.0)
    assert fake_engine.removed_all == 1
    assert len(fake_hub.received_hits()) == 13
    final = _last_statuses(fake_hub)
    assert final["p1"]["hits"] == 13
    assert final["p1"]["state"] == "removed"
    assert final["p1"]["reason"] == "removed: the sensor stopped"
    # the last heartbeat came before the source said goodbye
    posts = [path for method, path in fake_hub.requests if method == "POST"]
    assert posts[-2:] == [
        f"/v1/sensors/{agent.source_id}/heartbeat",
        f"/v1/sensors/{agent.source_id}/deregister",
    ]


def test_a_probe_the_hub_takes_away_reports_its_last_counts(
    fake_hub: FakeHub, fake_engine: FakeEngine
) -> None:
    agent = make_agent(fake_hub, fake_engine)
    agent.start()
    try:
        fake_hub.set_probes([snapshot_probe("p1")])
        assert fake_hub.wait_for(lambda: "p1" in fake_engine.installed)
        fake_engine.fire("p1", 6)
        assert fake_hub.wait_for(lambda: len(fake_hub.received_hits()) == 6)
        fake_hub.set_probes([])  # completed, removed or expired on the hub
        assert fake_hub.wait_for(lambda: "p1" not in fake_engine.installed)
        count = len(fake_hub.heartbeats)
        assert fake_hub.wait_for(lambda: len(fake_hub.heartbeats) > count)
        final = _last_statuses(fake_hub)["p1"]
        assert (final["state"], final["hits"]) == ("removed", 6)
        assert "no longer sends this probe" in final["reason"]
    finally:
        agent.stop(3.0)


def test_an_overlong_status_reason_is_cut_so_the_heartbeat_still_passes(
    fake_hub: FakeHub, fake_engine: FakeEngine
) -> None:
    agent = make_agent(fake_hub, fake_engine)
    agent._local_errors["p9"] = ProbeStatus("p9", ProbeState.ERROR, reason="x" * 50_000)
    (status,) = agent._statuses()
    assert len(status["reason"]) <= 4000
    assert status["reason"].endswith("... (50000 characters)")
