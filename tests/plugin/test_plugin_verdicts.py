"""Marked tests against recorded evidence: each verdict, its exit status and every report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from plugin_support import evidence_lines, make_shop

LOCATION = "shop.pricing:apply_discount"

MARKED_TEST = """
import pytest
from shop.pricing import apply_discount

@pytest.mark.runtime_probe("shop.pricing:apply_discount", capture=["price", "rate"]{extra})
def test_discount():
    assert apply_discount(10, 0.5) == 5
    assert apply_discount(20, 0.5) == 10
"""

# Production states like the tests' (ints around 10 to 20, rate 0.5): nothing new.
SAME = [{"price": 10 + n % 11, "rate": 0.5} for n in range(20)]
# Half of production passes price=None: a shape the tests never had.
NONE_PRICE = [{"price": None if n % 2 else 10 + n, "rate": 0.5} for n in range(20)]


def setup(pytester: pytest.Pytester, states: list[dict[str, object]], extra: str = "") -> None:
    make_shop(pytester)
    pytester.makepyfile(test_shop=MARKED_TEST.format(extra=extra))
    pytester.path.joinpath("prod.jsonl").write_text(
        evidence_lines(LOCATION, states, capture=["price", "rate"])
    )


def test_same_states_in_production_give_ok(pytester: pytest.Pytester) -> None:
    setup(pytester, SAME)
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl")
    result.stdout.fnmatch_lines(["runtime probes: 0 violated, 0 diverged, 0 inconclusive, 1 ok"])
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK


def test_unseen_none_diverges_as_a_warning_with_the_evidence(pytester: pytest.Pytester) -> None:
    setup(pytester, NONE_PRICE)
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl")
    result.stdout.fnmatch_lines(
        [
            "DIVERGED test_shop.py::test_discount  shop.pricing:apply_discount@return*",
            "*high shape: price: None in production; tests always had int*",
            "*1 passed, 1 runtime diverged*",
        ]
    )
    assert result.ret == pytest.ExitCode.OK


def test_strict_option_makes_divergence_fail_the_run(pytester: pytest.Pytester) -> None:
    setup(pytester, NONE_PRICE)
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl", "--runtime-strict")
    result.stdout.fnmatch_lines(["*runtime: 1 probe verdict(s) fail this run*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_strict_ini_and_marker_override(pytester: pytest.Pytester) -> None:
    setup(pytester, NONE_PRICE, extra=", strict=False")
    pytester.makeini("[pytest]\nruntime_strict = true\n")
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl")
    assert result.ret == pytest.ExitCode.OK  # the marker's strict=False wins over the ini


def test_marker_strict_fails_the_run(pytester: pytest.Pytester) -> None:
    setup(pytester, NONE_PRICE, extra=", strict=True")
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl")
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_too_few_hits_is_inconclusive_and_min_hits_lowers_the_bar(
    pytester: pytest.Pytester,
) -> None:
    setup(pytester, SAME[:2])
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl")
    result.stdout.fnmatch_lines(["INCONCLUSIVE test_shop.py::test_discount*"])
    assert result.ret == pytest.ExitCode.OK
    result = pytester.runpytest_subprocess(
        "--runtime-evidence", "prod.jsonl", "--runtime-min-hits", "2"
    )
    result.stdout.fnmatch_lines(["runtime probes: *, 1 ok"])


def test_marker_min_hits_wins_over_the_option(pytester: pytest.Pytester) -> None:
    setup(pytester, SAME[:2], extra=", min_hits=2")
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl")
    result.stdout.fnmatch_lines(["runtime probes: *, 1 ok"])


def test_since_drops_older_evidence(pytester: pytest.Pytester) -> None:
    setup(pytester, SAME)
    result = pytester.runpytest_subprocess(
        "--runtime-evidence", "prod.jsonl", "--runtime-since", "30s"
    )  # every hit is about 60 s old
    result.stdout.fnmatch_lines(["INCONCLUSIVE*", "*only 0 production hit(s)*"])


def test_ignore_declares_a_noise_path(pytester: pytest.Pytester) -> None:
    states = [{"price": 10 + n % 11, "rate": 0.5 if n < 10 else 900.5 + n} for n in range(20)]
    setup(pytester, states, extra=', ignore=["rate"]')
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl", "--runtime-strict")
    result.stdout.fnmatch_lines(["runtime probes: *, 1 ok"])
    assert result.ret == pytest.ExitCode.OK


def test_evidence_directory_is_read(pytester: pytest.Pytester) -> None:
    setup(pytester, NONE_PRICE)
    pytester.mkdir("evidence")
    Path(pytester.path, "prod.jsonl").rename(pytester.path / "evidence" / "a.jsonl")
    result = pytester.runpytest_subprocess("--runtime-evidence", "evidence")
    result.stdout.fnmatch_lines(
        ["runtime: evidence from 1 path(s): 1 probe signature(s), 20 hit(s)"]
    )
    result.stdout.fnmatch_lines(["DIVERGED*"])


def test_corrupt_evidence_is_a_usage_error_naming_file_and_line(pytester: pytest.Pytester) -> None:
    setup(pytester, SAME)
    path = pytester.path / "prod.jsonl"
    path.write_text(path.read_text() + "{oops\n")
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl")
    result.stderr.fnmatch_lines(
        ["ERROR: pytest-runtime: evidence file prod.jsonl, line 23: not JSON*"]
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "Traceback" not in result.stderr.str()


def test_missing_evidence_path_is_a_usage_error(pytester: pytest.Pytester) -> None:
    setup(pytester, SAME)
    result = pytester.runpytest_subprocess("--runtime-evidence", "nowhere.jsonl")
    result.stderr.fnmatch_lines(["*evidence path nowhere.jsonl: no such file or directory*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_deselected_marked_test_gets_no_verdict(pytester: pytest.Pytester) -> None:
    setup(pytester, NONE_PRICE)
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl", "-k", "nothing")
    assert "runtime probes" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_json_report_has_one_entry_per_probe_and_test(pytester: pytest.Pytester) -> None:
    setup(pytester, NONE_PRICE)
    result = pytester.runpytest_subprocess(
        "--runtime-evidence", "prod.jsonl", "--runtime-report-json", "out/report.json"
    )
    assert result.ret == pytest.ExitCode.OK
    report = json.loads((pytester.path / "out" / "report.json").read_text())
    [entry] = report["results"]
    assert entry["nodeid"] == "test_shop.py::test_discount"
    assert entry["location"] == "shop.pricing:apply_discount@return"
    assert entry["verdict"] == "diverged"
    assert entry["test_file"] == "test_shop.py"
    assert entry["test_line"] == 4  # the marker's line: the first line of the decorated test
    kinds = {d["kind"] for d in entry["divergences"]}
    assert "shape" in kinds


def test_baseline_accepts_known_divergences_and_fails_on_new_ones(
    pytester: pytest.Pytester,
) -> None:
    setup(pytester, NONE_PRICE)
    args = ["--runtime-evidence", "prod.jsonl", "--runtime-strict", "--runtime-baseline", "b.json"]
    result = pytester.runpytest_subprocess(*args, "--runtime-write-baseline")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*wrote the baseline b.json*"])
    assert (pytester.path / "b.json").exists()
    result = pytester.runpytest_subprocess(*args)
    result.stdout.fnmatch_lines(["*1 failing verdict(s) accepted by the baseline b.json*"])
    assert result.ret == pytest.ExitCode.OK
    states = [{"price": "12" if n % 2 else 10 + n, "rate": 0.5} for n in range(20)]
    (pytester.path / "prod.jsonl").write_text(
        evidence_lines(LOCATION, states, capture=["price", "rate"])
    )
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_missing_baseline_counts_every_divergence(pytester: pytest.Pytester) -> None:
    setup(pytester, NONE_PRICE)
    result = pytester.runpytest_subprocess(
        "--runtime-evidence", "prod.jsonl", "--runtime-strict", "--runtime-baseline", "none.json"
    )
    result.stdout.fnmatch_lines(["*no baseline at none.json: every divergence counts*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_github_actions_gets_annotations_and_a_job_summary(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup(pytester, NONE_PRICE)
    summary = pytester.path / "summary.md"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", os.fspath(summary))
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl")
    result.stdout.fnmatch_lines(
        ["::warning file=test_shop.py,line=4,title=runtime probe diverged*"]
    )
    assert "shop.pricing:apply_discount" in summary.read_text()


def test_junit_xml_carries_the_verdicts_as_suite_properties(pytester: pytest.Pytester) -> None:
    setup(pytester, NONE_PRICE)
    result = pytester.runpytest_subprocess(
        "--runtime-evidence", "prod.jsonl", "--junitxml", "junit.xml"
    )
    assert result.ret == pytest.ExitCode.OK
    xml = (pytester.path / "junit.xml").read_text()
    assert (
        'name="test_shop.py::test_discount::runtime[shop.pricing:apply_discount@return].verdict"'
        ' value="diverged"'
    ) in xml
    assert 'name="runtime_probe" value="shop.pricing:apply_discount@return"' in xml


def test_plugins_receive_verdicts_and_add_noise_rules(pytester: pytest.Pytester) -> None:
    states = [{"price": 10 + n % 11, "rate": 0.5 if n < 10 else 900.5 + n} for n in range(20)]
    setup(pytester, states)
    pytester.makeconftest(
        """
        def pytest_runtime_noise_rules(config):
            return ["rate"]

        def pytest_runtime_verdict(config, result):
            print("VERDICT", result.nodeid, result.location, result.verdict.verdict)
        """
    )
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl", "-s")
    result.stdout.fnmatch_lines(
        ["*VERDICT test_shop.py::test_discount shop.pricing:apply_discount@return ok"]
    )


def test_serializer_hook_turns_a_production_type_into_the_tests_type(
    pytester: pytest.Pytester,
) -> None:
    states = [
        {"price": 10 + n % 11, "rate": {"@t": "decimal.Decimal", "v": "0.5"}} for n in range(20)
    ]
    setup(pytester, states)
    args = ("--runtime-evidence", "prod.jsonl", "--runtime-strict")
    result = pytester.runpytest_subprocess(*args)
    result.stdout.fnmatch_lines(["*rate: type decimal.Decimal in production*"])
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    pytester.makeconftest(
        """
        def pytest_runtime_serializers(config):
            return {"decimal.Decimal": lambda value: float(value["v"])}
        """
    )
    result = pytester.runpytest_subprocess(*args)
    result.stdout.fnmatch_lines(["runtime probes: *, 1 ok"])
    assert result.ret == pytest.ExitCode.OK


def test_several_markers_on_one_test_each_get_a_verdict(pytester: pytest.Pytester) -> None:
    make_shop(pytester)
    pytester.makepyfile(
        test_shop="""
        import pytest
        from shop.pricing import apply_discount

        @pytest.mark.runtime_probe("shop.pricing:apply_discount", capture=["price", "rate"])
        @pytest.mark.runtime_probe("shop.pricing:apply_discount@entry", capture=["price"])
        def test_discount():
            assert apply_discount(10, 0.5) == 5
        """
    )
    pytester.path.joinpath("prod.jsonl").write_text(
        evidence_lines(LOCATION, NONE_PRICE, capture=["price", "rate"])
    )
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl")
    result.stdout.fnmatch_lines(
        [
            "DIVERGED test_shop.py::test_discount  shop.pricing:apply_discount@return*",
            "INCONCLUSIVE test_shop.py::test_discount  shop.pricing:apply_discount@entry*",
        ],
        consecutive=False,
    )


VIOLATED_TEST = """
import pytest
from shop.pricing import apply_discount

@pytest.mark.runtime_probe(
    "shop.pricing:apply_discount", capture=["price", "rate"], expect="0 <= result <= price"
)
def test_discount():
    assert apply_discount(10, 0.5) == 5

def test_unmarked():
    pass
"""


def test_production_violation_fails_the_run_though_every_test_passed(
    pytester: pytest.Pytester,
) -> None:
    make_shop(pytester)
    pytester.makepyfile(test_shop=VIOLATED_TEST)
    states = [{"price": 10 + n, "rate": 2.0 if n % 4 == 0 else 0.5} for n in range(20)]
    pytester.path.joinpath("prod.jsonl").write_text(
        evidence_lines(
            LOCATION,
            states,
            capture=["price", "rate"],
            expect="0 <= result <= price",
            expect_ok=[n % 4 != 0 for n in range(20)],
        )
    )
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl")
    result.stdout.fnmatch_lines(
        [
            "VIOLATED test_shop.py::test_discount  shop.pricing:apply_discount@return*",
            "*expectation '0 <= result <= price' failed on at least 5 production calls: 5 of 20 "
            "captured hits (25.0% of captured hits; the evidence has no sensor counters*",
            "*runtime: 1 probe verdict(s) fail this run*",
            "*2 passed, 1 runtime violated*",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_xdist_workers_capture_and_the_controller_compares_once(
    pytester: pytest.Pytester,
) -> None:
    make_shop(pytester)
    pytester.makepyfile(
        test_shop=MARKED_TEST.format(extra=""),
        test_more="""
        import pytest
        from shop.pricing import apply_discount

        @pytest.mark.parametrize("price", [10, 20, 30, 40])
        @pytest.mark.runtime_probe("shop.pricing:apply_discount", capture=["price", "rate"])
        def test_prices(price):
            assert apply_discount(price, 0.5) == price / 2
        """,
    )
    pytester.makeconftest(
        """
        def pytest_runtime_verdict(config, result):
            assert not hasattr(config, "workerinput"), "verdicts belong to the controller"
        """
    )
    pytester.path.joinpath("prod.jsonl").write_text(
        evidence_lines(LOCATION, NONE_PRICE, capture=["price", "rate"])
    )
    result = pytester.runpytest_subprocess(
        "-n", "2", "--runtime-evidence", "prod.jsonl", "--runtime-report-json", "r.json"
    )
    result.stdout.fnmatch_lines(["*5 passed, 2 runtime diverged*"])
    report = json.loads((pytester.path / "r.json").read_text())
    # The four parameter sets ran on both workers and are compared together, as one test.
    nodeids = [entry["nodeid"] for entry in report["results"]]
    assert nodeids == ["test_more.py::test_prices", "test_shop.py::test_discount"]
    assert [entry["hits"]["test"] for entry in report["results"]] == [4, 2]
    assert result.ret == pytest.ExitCode.OK


def test_xdist_strict_failure_sets_the_exit_status(pytester: pytest.Pytester) -> None:
    setup(pytester, NONE_PRICE)
    result = pytester.runpytest_subprocess(
        "-n", "2", "--runtime-evidence", "prod.jsonl", "--runtime-strict"
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_xdist_test_time_violation_fails_on_the_worker(pytester: pytest.Pytester) -> None:
    make_shop(pytester)
    pytester.makepyfile(
        test_shop="""
        import pytest
        from shop.pricing import apply_discount

        @pytest.mark.runtime_probe("shop.pricing:apply_discount", expect="result >= 0")
        def test_negative():
            apply_discount(10, 2)
        """
    )
    result = pytester.runpytest_subprocess("-n", "2")
    result.stdout.fnmatch_lines(["*expect 'result >= 0' was false on 1 of 1*"])
    result.assert_outcomes(failed=1)


def test_old_recorded_evidence_is_used_unless_a_window_is_asked_for(
    pytester: pytest.Pytester,
) -> None:
    make_shop(pytester)
    pytester.makepyfile(test_shop=MARKED_TEST.format(extra=""))
    pytester.path.joinpath("prod.jsonl").write_text(
        evidence_lines(LOCATION, NONE_PRICE, capture=["price", "rate"], ts=1_700_000_000.0)
    )
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl")
    result.stdout.fnmatch_lines(["DIVERGED test_shop.py::test_discount*"])
    result = pytester.runpytest_subprocess(
        "--runtime-evidence", "prod.jsonl", "--runtime-since", "1d"
    )
    result.stdout.fnmatch_lines(["INCONCLUSIVE test_shop.py::test_discount*"])


def test_the_confidence_bound_is_reported_and_asked_for_by_ini(pytester: pytest.Pytester) -> None:
    setup(pytester, SAME)
    args = ("--runtime-evidence", "prod.jsonl", "--runtime-report-json", "r.json", "-v")
    result = pytester.runpytest_subprocess(*args)
    result.stdout.fnmatch_lines(
        [
            "OK test_shop.py::test_discount*20 production hits, 2 test hits; tests cover 1 of 1 "
            "production shape",
            "    confidence: a state none of the 20 captured hits showed happens on fewer than "
            "14% of calls (95% confidence, rule of three)",
        ]
    )
    [entry] = json.loads((pytester.path / "r.json").read_text())["results"]
    assert entry["confidence"]["asked"] is None  # a replay cannot wait: asked only explicitly
    pytester.makeini("[pytest]\nruntime_rarer_than = 5%\n")
    result = pytester.runpytest_subprocess(*args)
    result.stdout.fnmatch_lines(["*; asked for 5%: 59 hits needed (wait or record longer*"])
    [entry] = json.loads((pytester.path / "r.json").read_text())["results"]
    assert (entry["confidence"]["asked"], entry["confidence"]["reached"]) == (0.05, False)
    bad = pytester.runpytest_subprocess(*args, "--runtime-rarer-than", "0")
    bad.stderr.fnmatch_lines(
        ["ERROR: pytest-runtime: --runtime-rarer-than: got '0', expected a rate between 0 and 1*"]
    )
