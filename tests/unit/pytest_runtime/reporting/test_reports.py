"""The reports: JSON (validated against its published schema), terminal, GitHub, JUnit."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from report_results import make_results

from pytest_runtime.compare import ProbeResult
from pytest_runtime.reporting import github, jsonreport, junit, terminal

SCHEMA = Path(__file__).parents[4] / "docs" / "reference" / "report.schema.json"


def test_verdicts_in_the_fixture_cover_every_kind(results: list[ProbeResult]) -> None:
    assert sorted({r.verdict.verdict for r in results}) == [
        "diverged",
        "inconclusive",
        "ok",
        "violated",
    ]


def test_json_report_validates_against_the_published_schema(
    results: list[ProbeResult], tmp_path: Path
) -> None:
    path = tmp_path / "sub" / "report.json"
    jsonreport.write(path, results)
    report = json.loads(path.read_text())
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(report)
    assert report["summary"] == {
        "results": 6,
        "ok": 2,
        "diverged": 1,
        "violated": 1,
        "inconclusive": 2,
        "fails": sum(1 for r in results if r.verdict.fails),
        "accepted_by_baseline": 0,
    }
    assert report["notes"] == []
    odd = [r for r in report["results"] if r["nodeid"].endswith("test_odd")]
    assert [r["verdict"] for r in odd] == ["violated", "diverged"]
    kinds = {(d["kind"], d["severity"], d["path"]) for d in odd[1]["divergences"]}
    assert ("shape", "high", "order.discount") in kinds
    assert ("range", "medium", "order.currency") in kinds
    assert all(d["deepdiff"] for d in odd[1]["divergences"])


def test_schema_rejects_a_report_with_a_wrong_verdict(results: list[ProbeResult]) -> None:
    report = jsonreport.build(results)
    report["results"][0]["verdict"] = "maybe"
    schema = json.loads(SCHEMA.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(report, schema)


def test_json_report_is_deterministic_whatever_the_order(results: list[ProbeResult]) -> None:
    assert jsonreport.dumps(results) == jsonreport.dumps(list(reversed(results)))


def _reporter(pytestconfig: pytest.Config) -> tuple[Any, io.StringIO]:
    from _pytest.terminal import TerminalReporter

    out = io.StringIO()
    return TerminalReporter(pytestconfig, file=out), out


def test_terminal_summary_lists_failing_first_and_counts(
    results: list[ProbeResult], pytestconfig: pytest.Config
) -> None:
    tr, out = _reporter(pytestconfig)
    terminal.write_summary(tr, results, verbose=False)
    text = out.getvalue()
    lines = text.splitlines()
    assert "runtime probes" in lines[0]
    assert lines[1].startswith("VIOLATED tests/test_shop.py::test_odd  shop.pricing:apply_discount")
    assert "DIVERGED tests/test_shop.py::test_odd  shop.pricing:total" in text
    assert "high shape: order.discount: None in production" in text
    assert "root['order']['discount']: type changed dict -> None" in text
    assert "OK " not in text  # ok results only when verbose
    assert lines[-1] == "runtime probes: 1 violated, 1 diverged, 2 inconclusive, 2 ok"


def _distinct_copies(results: list[ProbeResult], n: int) -> list[ProbeResult]:
    """``n`` copies of ``results`` on different probes (so that no two read the same)."""
    return [
        dataclasses.replace(
            r,
            nodeid=f"{r.nodeid}[{k}]",
            location=f"{r.location}_{k}",
            signature=f"{r.signature}-{k}",
            test_line=(r.test_line or 0) + k,
        )
        for k in range(n)
        for r in results
    ]


def test_terminal_summary_is_bounded_with_counts_of_the_cut() -> None:
    many = _distinct_copies(make_results(), 10)
    lines = terminal.summary_lines(many, max_results=3, max_divergences=1)
    texts = [t for _, t in lines]
    assert sum(1 for t in texts if not t.startswith(" ") and "::" in t) == 3
    assert "... 57 more result(s) not shown" in texts or any(
        t.startswith("... ") and "more result(s)" in t for t in texts
    )
    assert any("more divergence(s) in the JSON report" in t for t in texts)


def test_github_annotations_escape_and_point_at_the_test(results: list[ProbeResult]) -> None:
    lines = github.annotations(results)
    assert [line.split(" ", 1)[0] for line in lines] == ["::error", "::warning"]
    first = lines[0]
    assert first.startswith(
        "::error file=tests/test_shop.py,line=20,title=runtime probe violated%3A "
    )
    message = first.split("::", 2)[2]
    assert "\n" not in message
    assert "%0A" in message


def test_github_escaping_rules() -> None:
    assert github.escape_data("50% a\r\nb") == "50%25 a%0D%0Ab"
    assert github.escape_property("a:b,c%") == "a%3Ab%2Cc%25"


def test_github_annotations_respect_the_limit_and_say_how_many_were_cut() -> None:
    many = [r for r in _distinct_copies(make_results(strict=True), 12) if r.verdict.verdict != "ok"]
    lines = github.annotations(many)
    assert len(lines) == 10
    assert lines[-1].startswith("::notice ")
    failing = sum(1 for r in many if r.verdict.verdict in ("violated", "diverged"))
    assert f"{failing - 9} more runtime probe annotation(s)" in lines[-1]
    assert all(line.startswith("::error ") for line in lines[:-1])  # strict: diverged fails


def test_job_summary_is_markdown_with_details(results: list[ProbeResult]) -> None:
    md = github.job_summary(results)
    assert md.startswith("## Runtime probes\n")
    assert "**1** violated · **1** diverged · **2** inconclusive · **2** ok" in md
    assert "| violated | `tests/test_shop.py::test_odd` |" in md
    assert "<details>" in md
    assert "root['order']['discount']" in md


def test_job_summary_stays_under_its_byte_limit() -> None:
    many = make_results() * 400
    md = github.job_summary(many, max_bytes=20_000)
    assert len(md.encode()) <= 20_000
    assert "cut to stay under 20000 bytes" in md
    full = github.job_summary(many)
    assert len(full.encode()) <= github.MAX_SUMMARY_BYTES


def test_junit_properties_name_the_location(results: list[ProbeResult]) -> None:
    recorded: list[tuple[str, object]] = []
    n = junit.record(lambda k, v: recorded.append((k, v)), results[:2])
    assert n == len(recorded)
    names = [k for k, _ in recorded]
    assert "runtime[shop.pricing:apply_discount].verdict" in names
    assert all(isinstance(v, str) for _, v in recorded)


def test_terminal_summary_lists_ok_results_when_verbose(results: list[ProbeResult]) -> None:
    quiet = [t for _, t in terminal.summary_lines(results)]
    loud = [t for _, t in terminal.summary_lines(results, verbose=True)]
    assert not any(t.startswith("OK ") for t in quiet)
    assert sum(1 for t in loud if t.startswith("OK ")) == 2
    assert loud[-1] == quiet[-1]


def test_reports_import_no_deepdiff() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from pytest_runtime.reporting import github, jsonreport, junit, terminal\n"
        "from pytest_runtime import baseline\n"
        "print('deepdiff' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _parametrized(results: list[ProbeResult], n: int) -> list[ProbeResult]:
    """``n`` parametrized cases of the violated test, marking the same probe with the same
    evidence (what ``@pytest.mark.parametrize`` gives when the cases' states compare alike)."""
    violated = next(r for r in results if r.verdict.verdict == "violated")
    return [
        dataclasses.replace(violated, nodeid=f"tests/test_shop.py::test_odd[case{k}]")
        for k in range(n)
    ]


def test_cases_with_the_same_evidence_are_one_terminal_block(results: list[ProbeResult]) -> None:
    cases = _parametrized(results, 5)
    texts = [t for _, t in terminal.summary_lines(cases)]
    assert texts[0].startswith("VIOLATED shop.pricing:apply_discount  prod 50 hit(s)")
    assert texts[0].endswith("same result for 5 tests:")
    assert texts[1:5] == [
        "    tests/test_shop.py::test_odd[case0]",
        "    tests/test_shop.py::test_odd[case1]",
        "    tests/test_shop.py::test_odd[case2]",
        "    and 2 more",
    ]
    assert sum(1 for t in texts if "high violation:" in t) == 1
    assert sum(1 for t in texts if t.startswith("    reproduce:")) == 1
    assert texts[-1] == "runtime probes: 5 violated, 0 diverged, 0 inconclusive, 0 ok"
    # Deterministic whatever the order the results arrive in.
    assert [t for _, t in terminal.summary_lines(cases[::-1])] == texts


def test_cases_with_different_evidence_stay_separate_blocks(results: list[ProbeResult]) -> None:
    cases = _parametrized(results, 2)
    first = cases[0].verdict
    other = dataclasses.replace(first, divergences=first.divergences[:1])
    cases[1] = dataclasses.replace(cases[1], verdict=other)
    texts = [t for _, t in terminal.summary_lines(cases)]
    assert sum(1 for t in texts if t.startswith("VIOLATED tests/test_shop.py::test_odd[")) == 2
    assert not any("same result for" in t for t in texts)


def test_grouped_cases_keep_one_json_entry_each(results: list[ProbeResult], tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    jsonreport.write(path, _parametrized(results, 5))
    entries = json.loads(path.read_text(encoding="utf-8"))["results"]
    assert [e["nodeid"] for e in entries] == [
        f"tests/test_shop.py::test_odd[case{k}]" for k in range(5)
    ]


def test_github_annotations_do_not_repeat_identical_messages(
    results: list[ProbeResult],
) -> None:
    lines = github.annotations(_parametrized(results, 5))
    assert len(lines) == 1
    assert lines[0].startswith("::error file=tests/test_shop.py,line=20,")
    assert lines[0].endswith(
        "same result for 5 tests: tests/test_shop.py::test_odd[case0], "
        "tests/test_shop.py::test_odd[case1], tests/test_shop.py::test_odd[case2] and 2 more"
    )
