"""Misconfigured probes never pass silently: at test time the test fails naming the marker
argument, its value and what exists at the location; in production the verdict is not ``ok``."""

from __future__ import annotations

import json

import pytest
from plugin_support import evidence_lines, make_shop


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    make_shop(pytester)
    pytester.makepyfile(test_shop=source)
    # A subprocess: the engine's monitoring and import hooks must not leak into this run.
    return pytester.runpytest_subprocess(*args)


def marked(location: str, arguments: str, body: str = "apply_discount(10, 0.5)") -> str:
    return f"""
import pytest
from shop.pricing import apply_discount

@pytest.mark.runtime_probe({location!r}, {arguments})
def test_discount():
    {body}
"""


def test_a_module_the_test_process_cannot_import_fails_with_the_import_error(
    pytester: pytest.Pytester,
) -> None:
    result = run(pytester, marked("shopp.pricing:apply_discount", "capture=['price']"))
    result.stdout.fnmatch_lines(
        [
            "*runtime_probe argument 'location': got 'shopp.pricing:apply_discount@return', "
            "expected a module the test process can import; importing 'shopp.pricing' raised "
            "ModuleNotFoundError: No module named 'shopp'"
        ]
    )
    result.assert_outcomes(failed=1)


def test_a_module_that_fails_while_importing_names_its_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(broken="raise RuntimeError('no database in the test process')\n")
    result = run(pytester, marked("broken:anything", "capture=['x']", body="pass"))
    result.stdout.fnmatch_lines(
        [
            "*argument 'location': got 'broken:anything@return'*importing 'broken' raised "
            "RuntimeError: no database in the test process"
        ]
    )
    result.assert_outcomes(failed=1)


def test_an_unknown_function_lists_the_functions_of_the_module(pytester: pytest.Pytester) -> None:
    result = run(pytester, marked("shop.pricing:apply_discountt", "capture=['price']"))
    result.stdout.fnmatch_lines(
        [
            "*argument 'location': got 'shop.pricing:apply_discountt@return'*not found*"
            "apply_discountt*functions and classes of shop.pricing: apply_discount"
        ]
    )
    result.assert_outcomes(failed=1)


def test_a_line_outside_the_function_names_its_lines(pytester: pytest.Pytester) -> None:
    result = run(pytester, marked("shop.pricing:apply_discount@40", "capture=['price']"))
    result.stdout.fnmatch_lines(
        ["*argument 'location': got 'shop.pricing:apply_discount@40'*its lines: 2-4*"]
    )
    result.assert_outcomes(failed=1)


@pytest.mark.parametrize(
    ("arguments", "argument", "value"),
    [
        ("capture=['prize']", "capture", "prize"),
        ("capture=['prize * 2']", "capture", "prize * 2"),
        ("capture=['price'], condition='prize > 0'", "condition", "prize > 0"),
        ("capture=['price'], expect='prize >= 0'", "expect", "prize >= 0"),
        ("kind='log', template='price was {prize}'", "template", "price was {prize}"),
    ],
)
def test_a_name_that_exists_nowhere_at_the_location_fails_naming_what_exists(
    pytester: pytest.Pytester, arguments: str, argument: str, value: str
) -> None:
    result = run(pytester, marked("shop.pricing:apply_discount", arguments))
    result.stdout.fnmatch_lines(
        [
            f"*runtime_probe argument {argument!r}: got {value!r}, expected * at "
            "shop.pricing:apply_discount@return (no name 'prize' in apply_discount); "
            "names there: price, rate, result, total"
        ]
    )
    result.assert_outcomes(failed=1)


def test_a_local_read_at_entry_before_it_has_a_value_is_named(pytester: pytest.Pytester) -> None:
    result = run(pytester, marked("shop.pricing:apply_discount@entry", "capture=['total']"))
    result.stdout.fnmatch_lines(
        [
            "*argument 'capture': got 'total'*'total' is a local of apply_discount that has no "
            "value yet at @entry*names there: price, rate"
        ]
    )
    result.assert_outcomes(failed=1)


def test_result_at_entry_names_the_capture_not_the_expectation(pytester: pytest.Pytester) -> None:
    result = run(pytester, marked("shop.pricing:apply_discount@entry", "capture=['result']"))
    result.stdout.fnmatch_lines(
        ["*runtime_probe argument 'capture': got 'result', expected no 'result' at @entry*"]
    )


def test_a_capture_without_a_value_at_its_line_fails_with_the_sensor_error(
    pytester: pytest.Pytester,
) -> None:
    # Line 3 of shop/pricing.py (`total = ...`) runs before `total` has a value.
    result = run(pytester, marked("shop.pricing:apply_discount@3", "capture=['total']"))
    result.stdout.fnmatch_lines(
        [
            "*argument 'capture': got 'total', expected a value at "
            "shop.pricing:apply_discount@3 on every test-time hit; it failed on 1 of 1 hit(s): "
            "capture 'total': no name 'total' at this point; names there: price, rate, total"
        ]
    )
    result.assert_outcomes(failed=1)


@pytest.mark.parametrize(
    ("arguments", "argument", "value"),
    [
        ("capture=['len(price)']", "capture", "len(price)"),
        ("capture=['price'], condition='len(price) > 1'", "condition", "len(price) > 1"),
        ("kind='log', template='{len(price)} items'", "template", "{len(price)} items"),
    ],
)
def test_an_expression_that_fails_on_the_test_states_fails_the_test(
    pytester: pytest.Pytester, arguments: str, argument: str, value: str
) -> None:
    result = run(pytester, marked("shop.pricing:apply_discount", arguments))
    result.stdout.fnmatch_lines(
        [f"*runtime_probe argument {argument!r}: got {value!r}, expected *failed on 1 *len()*"]
    )
    result.assert_outcomes(failed=1)


def test_a_path_location_whose_module_never_loads_fails(pytester: pytest.Pytester) -> None:
    result = run(pytester, marked("shop/nothere.py:3", "capture=['x']"))
    result.stdout.fnmatch_lines(
        [
            "*argument 'location': got 'shop/nothere.py:3', expected a file of a module the "
            "test imports*"
        ]
    )
    result.assert_outcomes(failed=1)


def test_well_configured_probes_still_pass(pytester: pytest.Pytester) -> None:
    make_shop(pytester)
    pytester.path.joinpath("shop", "tax.py").write_text(
        "RATE = 0.2\n\ndef with_tax(price):\n    taxed = price * (1 + RATE)\n    return taxed\n"
    )
    pytester.makepyfile(
        test_shop="""
        import pytest
        from shop.pricing import apply_discount
        from shop.tax import with_tax

        @pytest.mark.runtime_probe(
            "shop.pricing:apply_discount@entry", capture=["price", "rate * 100"],
            condition="price > 0",
        )
        @pytest.mark.runtime_probe("shop.tax:with_tax", capture=["taxed", "RATE + 0"],
                                   expect="result >= price")
        @pytest.mark.runtime_probe("shop/pricing.py:3", capture=["price"])
        def test_both():
            assert apply_discount(10, 0.5) == 5
            assert with_tax(10) == 12
        """
    )
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(passed=1)


def test_a_capture_missing_in_production_evidence_is_not_ok(pytester: pytest.Pytester) -> None:
    """The issue's case: a capture with no value anywhere; the live verdict read ``ok``."""
    make_shop(pytester)
    pytester.makepyfile(
        test_shop=marked(
            "shop.pricing:apply_discount",
            "capture=['price', 'prize']",
            body="assert apply_discount(10, 0.5) == 5",
        )
    )
    lines = evidence_lines(
        "shop.pricing:apply_discount",
        [{"price": 10 + n % 3} for n in range(20)],
        capture=["price", "prize"],
    ).splitlines()
    records = [json.loads(line) for line in lines]
    for record in records:
        if record["record"] == "hit":
            record["hit"]["errors"] = ["capture 'prize': no name 'prize' at this point"]
    pytester.path.joinpath("prod.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    result = pytester.runpytest_subprocess(
        "--runtime-evidence", "prod.jsonl", "--runtime-report-json", "report.json"
    )
    result.assert_outcomes(failed=1)  # the test-time check
    [entry] = json.loads(pytester.path.joinpath("report.json").read_text())["results"]
    assert entry["verdict"] != "ok"
    assert entry["reason"].startswith("probe misconfigured in production: capture 'prize': ")
    assert "on 20 of 20 production hit(s)" in entry["reason"]
    result.stdout.fnmatch_lines(["    probe misconfigured in production: capture 'prize'*"])


def test_production_code_without_the_captured_name_says_misconfigured(
    pytester: pytest.Pytester,
) -> None:
    """Tests pass here, but the deployed code renamed ``rate``: every production hit says so."""
    make_shop(pytester)
    pytester.makepyfile(
        test_shop=marked(
            "shop.pricing:apply_discount",
            "capture=['price', 'rate']",
            body="assert apply_discount(10, 0.5) == 5",
        )
    )
    lines = evidence_lines(
        "shop.pricing:apply_discount",
        [{"price": 10, "rate": 0.5} for _ in range(10)],
        capture=["price", "rate"],
    ).splitlines()
    records = [json.loads(line) for line in lines]
    for record in records:
        if record["record"] == "hit":
            del record["hit"]["captures"]["rate"]
            record["hit"]["errors"] = ["capture 'rate': no name 'rate' at this point"]
    pytester.path.joinpath("prod.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    result = pytester.runpytest_subprocess(
        "--runtime-evidence", "prod.jsonl", "--runtime-report-json", "report.json"
    )
    result.assert_outcomes(passed=1)
    [entry] = json.loads(pytester.path.joinpath("report.json").read_text())["results"]
    assert entry["verdict"] != "ok"
    assert (
        "capture 'rate': no name 'rate' at this point (on 10 of 10 production hit(s))"
        in (entry["reason"])
    )


def test_control_characters_from_evidence_never_reach_the_terminal_raw(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_shop(pytester)
    pytester.makepyfile(
        test_shop=marked(
            "shop.pricing:apply_discount",
            "capture=['price', 'rate']",
            body="assert apply_discount(10, 0.5) == 5",
        )
    )
    evil = "\x1b[2J\x1b]0;pwned\x07\u202eevil\r"
    states = [{"price": evil if n % 2 else 10, "rate": 0.5} for n in range(20)]
    records = [
        json.loads(line)
        for line in evidence_lines(
            "shop.pricing:apply_discount", states, capture=["price", "rate"]
        ).splitlines()
    ]
    for record in records:
        if record["record"] == "hit":  # hit and source ids are hub data printed as they are
            record["hit"]["hit_id"] = f"\x1b[31m{record['hit']['hit_id']}\u202e"
    pytester.path.joinpath("prod.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "summary.md"))
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl")
    out = result.stdout.str()
    assert "DIVERGED test_shop.py::test_discount" in out
    for raw in ("\x1b", "\x07", "\u202e", "\r"):
        assert raw not in out
        assert raw not in pytester.path.joinpath("summary.md").read_text()
    assert "\\x1b[2J" in out


def test_an_evidence_path_after_a_space_that_moves_the_rootdir_is_named_with_the_fix(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest picks the rootdir before it knows plugin options: the value of
    ``--runtime-evidence ../x`` counts as a test path and moves the rootdir up to the common
    ancestor (node ids, the ini file); ``--runtime-evidence=../x`` does not."""
    project = pytester.mkdir("project")
    make_shop(pytester)
    pytester.path.joinpath("shop").rename(project / "shop")
    (project / "test_shop.py").write_text(
        marked("shop.pricing:apply_discount", 'capture=["price", "rate"]')
    )
    (project / "pytest.ini").write_text("[pytest]\n")  # the project's root is project/
    recorded = pytester.mkdir("recorded") / "prod.jsonl"
    recorded.write_text(evidence_lines("shop.pricing:apply_discount", [{"price": 10, "rate": 0.5}]))
    monkeypatch.chdir(project)
    spaced = pytester.runpytest_subprocess("--runtime-evidence", "../recorded/prod.jsonl")
    spaced.stdout.fnmatch_lines(
        [
            "*PytestConfigWarning: pytest-runtime: --runtime-evidence ../recorded/prod.jsonl "
            f"moved pytest's rootdir from {project} to {pytester.path}: *; write "
            "--runtime-evidence=../recorded/prod.jsonl (or pass --rootdir)",
        ]
    )
    joined = pytester.runpytest_subprocess("--runtime-evidence=../recorded/prod.jsonl")
    joined.stdout.fnmatch_lines([f"rootdir: {project}*"])
    assert "moved pytest's rootdir" not in joined.stdout.str()
    assert joined.ret == 0
