"""The sensor's fork handlers run nested (outer prepares first, restores last), whatever the
order in which the parts registered, and a failing handler never reaches the host's fork."""

from __future__ import annotations

import os

import pytest

from sensor import _atfork


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(_atfork, "_entries", [])
    seen: list[str] = []
    # Registered inner first, the order a lazily imported engine produces.
    for layer, name in ((_atfork.ENGINE, "engine"), (_atfork.AGENT, "agent")):
        _atfork.register(
            layer,
            before=lambda name=name: seen.append(f"before {name}"),
            after_in_parent=lambda name=name: seen.append(f"parent {name}"),
            after_in_child=lambda name=name: seen.append(f"child {name}"),
        )
    return seen


def test_before_runs_outer_to_inner(calls: list[str]) -> None:
    _atfork._before()
    assert calls == ["before agent", "before engine"]


def test_after_runs_inner_to_outer_in_parent_and_child(calls: list[str]) -> None:
    _atfork._after_in_parent()
    _atfork._after_in_child()
    assert calls == ["parent engine", "parent agent", "child engine", "child agent"]


def test_a_failing_handler_is_logged_and_the_others_still_run(
    calls: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> None:
        raise RuntimeError("boom")

    _atfork.register(_atfork.AGENT, before=broken)
    _atfork._before()
    assert calls == ["before agent", "before engine"]
    assert f"before fork handler failed (pid {os.getpid()})" in caplog.text
