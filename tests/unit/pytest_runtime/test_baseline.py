"""Baselines: stable fingerprints, so that a PR check fails only on new divergences."""

from __future__ import annotations

import dataclasses
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


def _unreached(n: int, start: int = 0) -> ProbeResult:
    prod = [_hit(start + i, {"x": 2, "cur": "EUR"}) for i in range(n)]
    return ProbeResult("t.py::test_b", "t.py", 9, "m:g", "s2", compare([], prod))


def test_an_unreached_location_has_one_fingerprint_whatever_the_hit_count(tmp_path: Path) -> None:
    few, many = _unreached(20), _unreached(400, start=900)
    (d_few,) = few.verdict.divergences
    (d_many,) = many.verdict.divergences
    assert (d_few.kind, d_few.key) == ("path", "no-test-states")
    assert d_few.message != d_many.message  # the count is in the message, not in the id
    assert baseline.fingerprint(few, d_few) == baseline.fingerprint(many, d_many)
    path = tmp_path / "baseline.json"
    baseline.write(path, [few])
    assert baseline.new_divergences([many], baseline.load(path)) == []


def test_a_baseline_that_recorded_an_unreached_location_as_shape_still_accepts_it(
    tmp_path: Path,
) -> None:
    # Written by 0.1.0.dev0, when "the tests never reached it" had kind "shape".
    result = _unreached(30)
    (d,) = result.verdict.divergences
    old = dataclasses.replace(d, kind="shape")
    doc = {
        "schema": baseline.SCHEMA_ID,
        "version": 1,
        "divergences": [{"fingerprint": baseline.fingerprint(result, old), "kind": "shape"}],
    }
    path = tmp_path / "old.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert baseline.new_divergences([result], baseline.load(path)) == []
    # Any other divergence is still new against it.
    other = _result(_prod(100, {"x": None, "cur": "EUR"}, 5))
    assert baseline.new_divergences([other], baseline.load(path)) != []
