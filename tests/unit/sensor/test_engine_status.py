"""What a probe's status says: max_hits at once, a removed probe's last words, the schema."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from types import ModuleType

import pytest

from sensor.engine import Engine
from sensor.hub.openapi import build_openapi
from sensor.probes import Probe, ProbeState, ProbeStatus

Loader = Callable[..., ModuleType]


@pytest.fixture
def target(load: Loader) -> ModuleType:
    return load("def add(a, b):\n    total = a + b\n    return total\n")


def test_the_hit_that_reaches_max_hits_disables_the_probe_with_the_reason(
    engine: Engine, target: ModuleType
) -> None:
    probe = Probe(
        kind="snapshot", location=f"{target.__name__}:add", limits={"rate": 1e6, "max_hits": 3}
    )
    assert engine.install(probe).state is ProbeState.INSTALLED
    for _ in range(3):  # exactly max_hits firings: no later firing is needed to notice
        target.add(1, 2)
    status = engine.status(probe.id)
    assert status is not None
    assert status.state is ProbeState.DISABLED
    assert status.reason == "disabled: reached max_hits (3)"
    assert status.hits == 3
    assert len(engine.drain()) == 3


def test_a_removed_probe_keeps_its_last_status_for_the_next_heartbeat(
    engine: Engine, target: ModuleType
) -> None:
    capped = Probe(
        kind="snapshot", location=f"{target.__name__}:add", limits={"rate": 1e6, "max_hits": 1}
    )
    plain = Probe(kind="counter", location=f"{target.__name__}:add@entry")
    for probe in (capped, plain):
        assert engine.install(probe).state is ProbeState.INSTALLED
    target.add(1, 2)
    target.add(3, 4)
    # What the agent does when the hub completes a probe, or at stop(): remove, then report.
    assert engine.remove(capped.id)
    assert engine.remove(plain.id)
    last = {status.probe_id: status for status in engine.statuses()}
    assert last[capped.id].state is ProbeState.DISABLED
    assert last[capped.id].reason == "disabled: reached max_hits (1)"
    assert last[capped.id].hits == 1
    assert last[plain.id].state is ProbeState.REMOVED
    assert last[plain.id].hits == 2
    assert engine.status(capped.id) is None, "gone from the live probes"
    # Placed again under the same id: only the live one is reported.
    assert engine.install(plain).state is ProbeState.INSTALLED
    assert [s.state for s in engine.statuses() if s.probe_id == plain.id] == [ProbeState.INSTALLED]


def test_every_status_field_is_in_the_hubs_schema_and_round_trips() -> None:
    schema = build_openapi()["components"]["schemas"]["ProbeStatus"]["properties"]
    fields = {field.name for field in dataclasses.fields(ProbeStatus)}
    assert fields <= set(schema), sorted(fields - set(schema))
    assert schema["exceptions"] == schema["skipped_budget"] == schema["hits"]
    status = ProbeStatus("p", ProbeState.INSTALLED, exceptions=4, skipped_budget=9)
    data = status.to_dict()
    assert (data["exceptions"], data["skipped_budget"]) == (4, 9)
    assert ProbeStatus.from_dict(data) == status
    assert ProbeStatus.from_dict({"probe_id": "old-sensor"}).exceptions == 0
