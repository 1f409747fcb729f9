"""Fixtures for the agent's unit tests (the doubles live in agent_doubles.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agent_doubles import FakeEngine, FakeHub


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    hub = FakeHub()
    yield hub
    hub.mode = "ok"
    hub.delay = 0.0
    hub.hold.set()
    with hub.changed:
        hub.changed.notify_all()
    hub.close()


@pytest.fixture
def fake_engine() -> FakeEngine:
    return FakeEngine()
