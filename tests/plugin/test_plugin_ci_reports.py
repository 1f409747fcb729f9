"""What a CI job reads: a corrupt baseline stops the run at once; JUnit shows a red test for a
failing verdict (xunit1 and xunit2); the JSON report names the hub probes and the baseline."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from plugin_support import evidence_lines, make_shop

LOCATION = "shop.pricing:apply_discount"
MARKED = """
import pytest
from shop.pricing import apply_discount

@pytest.mark.runtime_probe(
    "shop.pricing:apply_discount", capture=["price", "rate"], expect="0 <= result <= price"
)
def test_discount():
    print("BODY RAN")
    assert apply_discount(10, 0.5) == 5

def test_plain():
    pass
"""
# One production state in ten has a rate above 1: the expectation breaks (violated).
STATES = [{"price": 10 + n, "rate": 1.5 if n % 10 == 0 else 0.5} for n in range(30)]


@pytest.fixture
def violated(pytester: pytest.Pytester) -> pytest.Pytester:
    make_shop(pytester)
    pytester.makepyfile(test_shop=MARKED)
    pytester.path.joinpath("prod.jsonl").write_text(
        evidence_lines(
            LOCATION,
            STATES,
            capture=["price", "rate"],
            expect="0 <= result <= price",
            expect_ok=[s["rate"] <= 1 for s in STATES],
        )
    )
    return pytester


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not JSON"),
        ('{"schema": "something-else", "version": 1, "divergences": []}', "got schema"),
        (
            '{"schema": "pytest-runtime/baseline", "version": 1, "divergences": [{}]}',
            "divergence 0",
        ),
    ],
)
def test_a_corrupt_baseline_stops_the_run_before_any_test(
    violated: pytest.Pytester, content: str, problem: str
) -> None:
    violated.path.joinpath("baseline.json").write_text(content)
    result = violated.runpytest_subprocess(
        "--runtime-evidence", "prod.jsonl", "--runtime-baseline", "baseline.json", "-s"
    )
    result.stderr.fnmatch_lines(
        [f"ERROR: pytest-runtime: baseline file 'baseline.json': *{problem}*"]
    )
    assert "BODY RAN" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR


@pytest.mark.parametrize("family", ["xunit1", "xunit2"])
def test_a_failing_verdict_is_a_failing_junit_test_case(
    violated: pytest.Pytester, family: str
) -> None:
    result = violated.runpytest_subprocess(
        "--runtime-evidence",
        "prod.jsonl",
        "--junitxml",
        "junit.xml",
        "-o",
        f"junit_family={family}",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    root = ET.parse(violated.path / "junit.xml").getroot()
    [suite] = root.iter("testsuite")
    cases = list(suite.iter("testcase"))
    failed = [c for c in cases if c.find("failure") is not None]
    [case] = failed
    assert case.get("classname") == "test_shop"
    assert case.get("name") == "test_discount[runtime shop.pricing:apply_discount@return]"
    failure = case.find("failure")
    assert failure is not None
    assert failure.get("message", "").startswith(
        "runtime probe violated: shop.pricing:apply_discount@return against 30 production hit(s)"
    )
    assert "expectation '0 <= result <= price' failed" in (failure.text or "")
    # The suite's counts agree with its test cases: 2 tests and the verdict's case.
    assert suite.get("tests") == str(len(cases)) == "3"
    assert suite.get("failures") == "1"
    # The verdicts stay suite properties, as before.
    names = [p.get("name") for p in suite.iter("property")]
    assert (
        "test_shop.py::test_discount::runtime[shop.pricing:apply_discount@return].verdict" in names
    )
    # State coverage says what it is over, and why "all shapes" sits next to a violation.
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    coverage = props["test_shop.py::test_discount::runtime[shop.pricing:apply_discount@return]"
                     ".state_coverage"]  # fmt: skip
    assert coverage == (
        "tests cover 1 of 1 production shape (types and keys; the values broke the expectation)"
    )
    if family == "xunit2":
        _assert_xunit2(root)


def _assert_xunit2(root: ET.Element) -> None:
    """The structure the xunit2 (JUnit 10) schema allows, as pytest checks it for its own."""
    allowed_suite = {
        "name",
        "errors",
        "failures",
        "skipped",
        "tests",
        "time",
        "timestamp",
        "hostname",
    }
    for suite in root.iter("testsuite"):
        assert set(suite.attrib) <= allowed_suite
        children = [child.tag for child in suite]
        assert set(children) <= {"properties", "testcase", "system-out", "system-err"}
        assert children.count("properties") <= 1
        for case in suite.iter("testcase"):
            assert set(case.attrib) <= {"classname", "name", "time"}, case.attrib
            assert {child.tag for child in case} <= {
                "skipped",
                "error",
                "failure",
                "system-out",
                "system-err",
            }
            for failure in case.iter("failure"):
                assert set(failure.attrib) <= {"message", "type"}


def test_the_json_report_names_probe_ids_and_the_baseline(violated: pytest.Pytester) -> None:
    first = violated.runpytest_subprocess(
        "--runtime-evidence",
        "prod.jsonl",
        "--runtime-baseline",
        "baseline.json",
        "--runtime-write-baseline",
    )
    assert first.ret == pytest.ExitCode.OK
    result = violated.runpytest_subprocess(
        "--runtime-evidence",
        "prod.jsonl",
        "--runtime-baseline",
        "baseline.json",
        "--runtime-report-json",
        "report.json",
        "--junitxml",
        "junit.xml",
    )
    assert result.ret == pytest.ExitCode.OK  # the baseline accepts the violation
    report = json.loads(violated.path.joinpath("report.json").read_text())
    [entry] = report["results"]
    assert entry["verdict"] == "violated"
    assert entry["fails"] is False
    assert entry["accepted_by_baseline"] is True
    assert report["summary"]["fails"] == 0
    assert report["summary"]["accepted_by_baseline"] == 1
    # The evidence file's probe: the id the hits name (what `python -m sensor hits` takes).
    probe_id = next(
        json.loads(line)["probe"]["id"]
        for line in violated.path.joinpath("prod.jsonl").read_text().splitlines()
        if json.loads(line)["record"] == "probe"
    )
    assert entry["probe_ids"] == [probe_id]
    assert entry["reason"] is None
    result.stdout.fnmatch_lines(
        [
            "VIOLATED test_shop.py::test_discount*",
            "    accepted by the baseline: does not fail the run",
            f"    hub probe(s): {probe_id}; read its hits: python -m sensor hits {probe_id}",
        ]
    )
    # An accepted verdict is no failing JUnit test case.
    root = ET.parse(violated.path / "junit.xml").getroot()
    assert [c for c in root.iter("testcase") if c.find("failure") is not None] == []
