"""The plugin in a pytest run: options, ini keys, markers, disabling, and staying out of the way."""

from __future__ import annotations

import pytest


def test_help_lists_the_runtime_group_and_ini_keys(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(
        [
            "runtime probes (pytest-runtime):",
            "*--runtime-probe*",
            "*--runtime-hub=URL*",
            "*--runtime-evidence=PATH*",
            "*--runtime-report-json=PATH*",
            "*--runtime-write-baseline*",
        ]
    )
    for key in (
        "runtime_hub",
        "runtime_wait",
        "runtime_min_hits",
        "runtime_since",
        "runtime_strict",
        "runtime_baseline",
        "runtime_service",
    ):
        result.stdout.fnmatch_lines([f"*{key} *"])


def test_marker_is_registered_for_strict_markers(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--markers")
    result.stdout.fnmatch_lines(["@pytest.mark.runtime_probe(location, capture=*"])


def test_unused_plugin_registers_no_session_object(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        def pytest_sessionfinish(session):
            pm = session.config.pluginmanager
            print("SESSION-PLUGIN", pm.get_plugin("runtime-session") is not None)
        """
    )
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest("-s")
    result.stdout.fnmatch_lines(["*SESSION-PLUGIN False*"])
    result.assert_outcomes(passed=1)


def test_disabled_plugin_leaves_marker_unknown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.runtime_probe("m:f")
        def test_marked(): pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:runtime", "--strict-markers")
    result.stdout.fnmatch_lines(["*'runtime_probe' not found in `markers`*"])
    assert result.ret == pytest.ExitCode.INTERRUPTED


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--runtime-wait", "soon"], "--runtime-wait: got 'soon', expected seconds*"),
        (["--runtime-min-hits", "0"], "--runtime-min-hits: got '0', expected a whole number*"),
        (["--runtime-since", "yesterday"], "--runtime-since: got 'yesterday'*"),
        (["--runtime-probe"], "--runtime-hub: got None, expected a hub URL*"),
        (["--runtime-record", "r.jsonl"], "--runtime-record: got 'r.jsonl'*--runtime-probe*"),
        (["--runtime-write-baseline"], "--runtime-write-baseline: *--runtime-baseline PATH*"),
        (
            ["--runtime-probe", "--runtime-hub", "http://127.0.0.1:9", "--runtime-evidence", "x"],
            "*one source of production evidence*",
        ),
    ],
)
def test_invalid_options_are_usage_errors(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest(*args)
    result.stderr.fnmatch_lines([f"ERROR: pytest-runtime: {message}"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_invalid_ini_value_is_a_usage_error_naming_the_option(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nruntime_min_hits = many\n")
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(["ERROR: pytest-runtime: --runtime-min-hits: got 'many'*"])


def test_hub_url_from_the_environment_is_validated(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_RUNTIME_HUB", "not-a-url")
    pytester.makepyfile("def test_plain(): pass")
    result = pytester.runpytest()
    result.stderr.fnmatch_lines(["*PYTEST_RUNTIME_HUB: got 'not-a-url', expected an http*"])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ('"shop:f", capture="price"', "*argument 'capture': got 'price', expected a list*"),
        ('"shop f"', "*argument 'location': got 'shop f', expected 'module:qualname'*"),
        ('"shop:f", min_hits=0', "*argument 'min_hits': got 0, expected a number >= 1*"),
        ('"shop:f", colour="red"', "*argument 'colour': got 'red', expected one of location*"),
        ('"shop:f@entry", expect="result > 0"', "*argument 'expect'*no 'result' at @entry*"),
    ],
)
def test_invalid_marker_fails_at_collection_naming_argument_and_value(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.runtime_probe({marker})
        def test_marked(): pass

        def test_other(): pass
        """
    )
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(
        ["*ERROR collecting test_invalid_marker*", "test_invalid_marker*::test_marked: " + message]
    )
    assert "Traceback" not in result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_invalid_marker_on_a_class_fails_its_tests_at_collection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.runtime_probe("shop:f", wait="long")
        class TestCart:
            def test_one(self): pass
        """
    )
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*TestCart::test_one: runtime_probe argument 'wait'*"])
