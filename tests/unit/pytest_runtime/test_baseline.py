"""Baselines: stable fingerprints, so that a PR check fails only on new divergences."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pytest_runtime import baseline
from pytest_runtime.compare import ProbeResult, compare


def _hit(i: int, caps: dict[str, Any]) -> dict[str, Any]:
    return {
        "probe_id": "p",
        "signature": "s",
        "kind": "snapshot",
        "location": "m:f",
        "ts": float(i),
        "hit_id": f"h-{i}",
        "captures": caps,
    }


def _result(prod: list[dict[str, Any]], nodeid: str = "t.py::test_a") -> ProbeResult:
    tests = [_hit(i, {"x": 1, "cur": ["EUR", "USD"][i % 2]}) for i in range(6)]
    return ProbeResult(nodeid, "t.py", 3, "m:f", "s", compare(tests, prod))


def _prod(n: int, odd: dict[str, Any], every: int, start: int = 0) -> list[dict[str, Any]]:
    return [_hit(start + i, odd if i % every == 0 else {"x": 2, "cur": "EUR"}) for i in range(n)]


def test_fingerprints_ignore_hit_ids_and_counts(tmp_path: Path) -> None:
    first = _result(_prod(100, {"x": None, "cur": "EUR"}, 5))
    second = _result(_prod(300, {"x": None, "cur": "EUR"}, 3, start=7000))
    assert first.verdict.divergences[0].hit_ids != second.verdict.divergences[0].hit_ids
    path = tmp_path / "baseline.json"
    assert baseline.write(path, [first]) == 1
    assert baseline.new_divergences([second], baseline.load(path)) == []


def test_only_new_divergences_are_returned(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    baseline.write(path, [_result(_prod(100, {"x": None, "cur": "EUR"}, 5))])
    later = _result(_prod(100, {"x": None, "cur": "JPY"}, 5))
    fresh = baseline.new_divergences([later], baseline.load(path))
    assert [(r.nodeid, d.path, d.key) for r, d in fresh] == [
        ("t.py::test_a", "cur", "one-of:'JPY'")
    ]


def test_the_same_divergence_in_another_test_is_new(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    prod = _prod(100, {"x": None, "cur": "EUR"}, 5)
    baseline.write(path, [_result(prod)])
    fresh = baseline.new_divergences([_result(prod, "t.py::test_b")], baseline.load(path))
    assert len(fresh) == 1


def test_writing_twice_gives_the_same_bytes(tmp_path: Path) -> None:
    results = [_result(_prod(100, {"x": None, "cur": "JPY"}, 5))]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    baseline.write(a, results)
    baseline.write(b, list(reversed(results)))
    assert a.read_bytes() == b.read_bytes()
    doc = json.loads(a.read_text())
    assert doc["schema"] == "pytest-runtime/baseline"
    assert {e["key"] for e in doc["divergences"]} == {"none", "one-of:'JPY'"}


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "not JSON"),
        (
            '{"schema": "other", "version": 1, "divergences": []}',
            "expected 'pytest-runtime/baseline'",
        ),
        ('{"schema": "pytest-runtime/baseline", "version": 9, "divergences": []}', "version 9"),
        ('{"schema": "pytest-runtime/baseline", "version": 1, "divergences": [{}]}', "fingerprint"),
    ],
)
def test_bad_baseline_files_name_the_file_and_the_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(baseline.BaselineError, match=problem) as info:
        baseline.load(path)
    assert str(path) in str(info.value)


def test_missing_baseline_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(baseline.BaselineError, match="cannot read"):
        baseline.load(tmp_path / "nope.json")
