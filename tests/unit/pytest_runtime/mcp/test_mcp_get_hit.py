"""get_hit reads one hit with the hub's read-one-hit call, and says which argument is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from pytest_runtime.errors import HubRequestError
from pytest_runtime.mcp.errors import ArgumentError
from pytest_runtime.mcp.investigation import Investigation
from pytest_runtime.mcp.settings import ServerSettings


class RecordingHub:
    """A :class:`HubPort` that knows one probe with one hit, and records every call."""

    url = "http://hub.test"

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))

    def health(self) -> dict[str, Any]:
        return {"status": "ok"}

    def sources(self, **filters: Any) -> list[dict[str, Any]]:
        return []

    def place(
        self, probe: Mapping[str, Any], selector: Mapping[str, Any], ttl: float | None
    ) -> dict[str, Any]:
        raise AssertionError("not placed here")

    def probe(self, probe_id: str) -> dict[str, Any]:
        self._record("probe", probe_id)
        if probe_id != "p1":
            raise HubRequestError("no probe", status=404, code="unknown_probe")
        return {"id": "p1", "probe": {"id": "p1"}, "state": "active"}

    def remove(self, probe_id: str) -> None:
        self._record("remove", probe_id)

    def hits_page(self, probe_id: str, **query: Any) -> dict[str, Any]:
        self._record("hits_page", probe_id)
        return {"hits": [], "next": None}

    def hit(self, probe_id: str, hit_id: str, *, source_id: str | None = None) -> dict[str, Any]:
        self._record("hit", probe_id, hit_id)
        if probe_id != "p1":
            raise HubRequestError("no probe", status=404, code="unknown_probe")
        if hit_id != "abcd0001-7":
            raise HubRequestError("no hit", status=404, code="unknown_hit")
        return {
            "hit_id": hit_id,
            "ts": 1_700_000_000.0,
            "captures": {"price": 7},
            "source": {"id": "s1", "service": "shop", "host": "h", "pid": 1, "token": "x"},
        }

    def close(self) -> None:
        pass


@pytest.fixture
def investigation() -> tuple[Investigation, RecordingHub]:
    hub = RecordingHub()
    return Investigation(ServerSettings(hub="http://hub.test", token="t"), lambda: hub), hub


def test_get_hit_is_one_read_of_that_hit(investigation: tuple[Investigation, RecordingHub]) -> None:
    tools, hub = investigation
    answer = tools.get_hit("p1", "abcd0001-7")
    assert answer["hit"]["captures"] == {"price": 7}
    assert answer["hit"]["source"] == {"id": "s1", "service": "shop", "host": "h", "pid": 1}
    assert hub.calls == [("hit", ("p1", "abcd0001-7"))]  # no page of hits read


def test_an_unknown_hit_names_the_hit_id_and_an_unknown_probe_the_probe_id(
    investigation: tuple[Investigation, RecordingHub],
) -> None:
    tools, _ = investigation
    with pytest.raises(ArgumentError, match="hit_id") as caught:
        tools.get_hit("p1", "abcd0001-9")
    assert "a hit id of probe p1" in str(caught.value)
    with pytest.raises(ArgumentError, match="probe_id"):
        tools.get_hit("p2", "abcd0001-7")
