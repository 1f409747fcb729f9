"""``probe add``: when the sources' statuses mean "refused", and how they are told."""

from __future__ import annotations

from typing import Any

from sensor.__main__ import _refused_by_all, _status_lines

WAITING = {"state": "pending", "reason": "waiting for module 'shop' to be imported"}
MISSING = {"state": "error", "reason": "not found: module 'shop' has no attribute 'nope'"}


def record(**statuses: dict[str, Any]) -> dict[str, Any]:
    return {"id": "p1", "statuses": statuses}


def test_every_source_refusing_is_a_refusal() -> None:
    assert _refused_by_all(record(a=MISSING, b=MISSING), ["a", "b"]) == MISSING["reason"]


def test_a_pre_fork_master_waiting_for_the_module_does_not_hide_the_workers_refusal() -> None:
    assert (
        _refused_by_all(record(master=WAITING, worker=MISSING), ["master", "worker"])
        == (MISSING["reason"])
    )


def test_nobody_refuses_while_every_source_waits_or_one_installed() -> None:
    assert _refused_by_all(record(a=WAITING, b=WAITING), ["a", "b"]) is None
    assert _refused_by_all(record(a=MISSING, b={"state": "installed"}), ["a", "b"]) is None
    assert _refused_by_all(record(a=MISSING), ["a", "b"]) is None  # b has not answered


def test_silent_sources_are_pending_and_said_so() -> None:
    lines = _status_lines(record(a={"state": "installed"}), ["a", "b"], False, 10)
    assert lines == [
        "installed on 1 of 2 source(s)",
        "pending: 1 of 2 matching source(s) have not reported the probe yet (waited 10s); "
        "see `probe show p1`",
    ]
    assert _status_lines(record(), [], False, 10) == [
        "pending: no live source matches the selector yet; the probe waits for one until it expires"
    ]


def test_reasons_from_sources_are_escaped() -> None:
    evil = {"state": "error", "reason": "not found: \x1b[31mred"}
    [line] = _status_lines(record(a=evil), ["a"], True, 10)
    assert "\x1b" not in line
    assert line.endswith("\\x1b[31mred")
