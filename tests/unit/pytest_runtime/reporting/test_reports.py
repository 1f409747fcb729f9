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
from pytest_runtime.reporting._common import RunResult

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
    assert texts[0].startswith(
        "VIOLATED shop.pricing:apply_discount  50 production hits, 10 test hits; "
        "tests cover 1 of 2 production shapes; "
    )
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


def _differ_in_plumbing(r: ProbeResult) -> ProbeResult:
    v = r.verdict
    counts = {**v.counts, "plumbing_differed": 2}
    plumbing = {"environ['wsgi.input']": "stream", "environ['SERVER_SOFTWARE']": "server"}
    return dataclasses.replace(r, verdict=dataclasses.replace(v, counts=counts, plumbing=plumbing))


def _differ_in_reason(r: ProbeResult) -> ProbeResult:
    return RunResult(**_fields(r), reason="the hub was lost after 3 of 5 reads")


def _differ_in_hub_probes(r: ProbeResult) -> ProbeResult:
    return RunResult(**_fields(r), probe_ids=("p-other-1",))


def _differ_in_baseline(r: ProbeResult) -> ProbeResult:
    return RunResult(**_fields(r), accepted=True, fails=False)


def _differ_in_counted(r: ProbeResult) -> ProbeResult:
    v = r.verdict
    # A shape divergence's counts from the sensors' counters, not from the captured hits.
    shape = dataclasses.replace(
        v.divergences[1],
        counted={"count": 7, "of": 1000, "over": "sampled calls", "lower_bound": False},
    )
    divergences = (v.divergences[0], shape, *v.divergences[2:])
    return dataclasses.replace(r, verdict=dataclasses.replace(v, divergences=divergences))


def _fields(r: ProbeResult) -> dict[str, Any]:
    return {f.name: getattr(r, f.name) for f in dataclasses.fields(ProbeResult)}


@pytest.mark.parametrize(
    "differ",
    [
        _differ_in_plumbing,
        _differ_in_reason,
        _differ_in_hub_probes,
        _differ_in_baseline,
        _differ_in_counted,
    ],
)
def test_cases_are_one_block_only_when_everything_the_block_shows_is_the_same(
    results: list[ProbeResult], differ: Any
) -> None:
    """A block shows its first case's plumbing, reasons, hub probes, baseline and counts for
    every case listed under it: cases that differ in any of them are separate blocks, each
    showing its own."""
    cases = _parametrized(results, 2)
    cases = [RunResult(**_fields(cases[0])), differ(cases[1])]
    lone = [t for _, t in terminal.summary_lines(cases[1:])]
    texts = [t for _, t in terminal.summary_lines(cases)]
    assert not any("same result for" in t for t in texts)
    # The second case's own block reads as it does alone.
    start = texts.index(lone[0])
    assert texts[start : start + len(lone) - 1] == lone[:-1]


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


def _counted_results() -> list[ProbeResult]:
    """A violated, a diverged and an ok result of an expect probe, with sensor counters."""
    from pytest_runtime.compare import CompareSettings, compare
    from pytest_runtime.compare.counters import status_record
    from sensor.probes import Probe

    probe = Probe.from_dict(
        {"kind": "snapshot", "location": "shop.pricing:apply_discount", "expect": "p >= 0"}
    )

    def hit(i: int, p: object, ok: bool = True, source: str = "web-1") -> dict[str, object]:
        return {
            "probe_id": "p1",
            "signature": "sig",
            "kind": "snapshot",
            "location": str(probe.location),
            "ts": 1.0e9 + i,
            "hit_id": f"h-{i:04d}",
            "captures": {"p": p},
            "expect": {"ok": ok, "error": None},
            "source": {"id": source, "service": "shop"},
        }

    def status(source: str, **counters: int) -> dict[str, object]:
        return status_record(
            signature="sig",
            probe_id="p1",
            source_id=source,
            status={"state": "installed", **counters},
            placed_at=1.0e9,
            reported_at=1.0e9 + 35,
        )

    tests = [hit(i, 5 + i) for i in range(3)]
    broken = [hit(i, -1, ok=False, source=f"web-{i % 2}") for i in range(40)]
    broken += [hit(100 + i, 5, source=f"web-{i % 2}") for i in range(21)]
    counters = [
        status("web-0", hits=31, evaluations=2700, violations=551),
        status("web-1", hits=30, evaluations=2619, violations=535),
    ]
    fine = [hit(i, 5 + i % 3, source="web-0") for i in range(45)]
    odd = [hit(i, "5" if i % 3 == 0 else 5, source="web-0") for i in range(45)]
    quiet = [status("web-0", hits=45, evaluations=5319)]
    settings = CompareSettings(rarer_than=0.05)
    out = []
    for name, prod, statuses in (
        ("test_broken", broken, counters),
        ("test_odd", odd, quiet),
        ("test_fine", fine, quiet),
    ):
        verdict = compare(tests, prod, probe=probe, settings=settings, statuses=statuses)
        out.append(
            ProbeResult(
                nodeid=f"tests/test_shop.py::{name}",
                test_file="tests/test_shop.py",
                test_line=10,
                location=str(probe.location),
                signature="sig",
                verdict=verdict,
            )
        )
    return out


def test_the_terminal_block_of_a_violation_gives_counted_rates_not_captured_shares() -> None:
    violated = _counted_results()[0]
    texts = [t for _, t in terminal.summary_lines([violated])]
    assert texts[0] == (
        "VIOLATED tests/test_shop.py::test_broken  shop.pricing:apply_discount@return  "
        "61 production hits, 3 test hits; tests cover 1 of 1 production shape "
        "(types and keys; the values broke the expectation)"
    )
    assert texts[1] == (
        "    high violation: expectation 'p >= 0' failed on 1,086 of 5,319 evaluations (20.4%) "
        "on 2 sources in the 35s since placement; 40 violating hits captured"
    )
    assert not any("65.6%" in t for t in texts)  # the share of captured hits never shows
    # the block ends with the confidence, the hint, the run's coverage and the totals
    assert texts[-4].startswith(
        "    confidence: beyond these divergences, a state none of the 61 captured hits "
        "showed happens on fewer than 4.8% of calls (95% confidence, rule of three)"
    )
    assert texts[-2] == (
        "runtime coverage: state coverage 100% (1 of 1 production shapes, 1 probe(s))"
    )


def test_ok_and_diverged_blocks_say_how_rare_anything_unseen_must_be() -> None:
    _, diverged, ok = _counted_results()
    texts = [t for _, t in terminal.summary_lines([diverged, ok], verbose=True)]
    assert texts[0].startswith("DIVERGED tests/test_shop.py::test_odd")
    [d_conf, ok_conf] = [t for t in texts if t.startswith("    confidence: ")]
    assert d_conf == (
        "    confidence: no violation in 5,319 evaluations: a violation happens on fewer than "
        "0.056% of calls; beyond these divergences, a state none of the 45 captured hits "
        "showed happens on fewer than 6.4% of calls (95% confidence, rule of three); "
        "asked for 5%: 59 hits needed (wait or record longer, or raise the probe's rate=)"
    )
    assert ok_conf.startswith(
        "    confidence: no violation in 5,319 evaluations: a violation happens on fewer than "
        "0.056% of calls; a state none of the 45 captured hits showed happens on fewer than "
        "6.4% of calls"
    )
    report = jsonreport.build([ok])["results"][0]
    assert report["confidence"]["states"] == {"below": 0.064404, "n": 45, "over": "captured hits"}
    assert report["confidence"]["violations"]["n"] == 5319
    assert report["production"]["origin"] == "counters"
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator(schema).validate(jsonreport.build(_counted_results()))


def _with_plumbing(results: list[ProbeResult], index: int) -> list[ProbeResult]:
    """The results with server plumbing set aside in the one at ``index`` (two paths)."""
    r = results[index]
    verdict = dataclasses.replace(
        r.verdict,
        plumbing={"environ.REMOTE_PORT": "server only", 'environ["wsgi.input"]': "a stream"},
        counts={**r.verdict.counts, "plumbing_paths": 5, "plumbing_differed": 2},
    )
    return [*results[:index], dataclasses.replace(r, verdict=verdict), *results[index + 1 :]]


def test_github_reports_say_what_plumbing_was_set_aside(results: list[ProbeResult]) -> None:
    # A PR check's reader sees the annotations and the job summary, not the terminal: what the
    # comparison set aside must be said there too, an ok probe's included.
    failing = next(i for i, r in enumerate(results) if r.verdict.verdict == "violated")
    ok = next(i for i, r in enumerate(results) if r.verdict.verdict == "ok")
    lines = github.annotations(_with_plumbing(results, failing))
    assert "server plumbing set aside: 2 paths" in lines[0].replace("%0A", "\n")
    md = github.job_summary(_with_plumbing(results, ok))
    assert "server plumbing set aside in 1 probe(s): 2 path(s)" in md
    assert "server plumbing set aside" not in github.job_summary(results)
