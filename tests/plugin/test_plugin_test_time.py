"""Test-time capture: probes armed around each marked test, expectations checked on every hit."""

from __future__ import annotations

import pytest
from plugin_support import make_shop


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    make_shop(pytester)
    pytester.makepyfile(test_shop=source)
    # A subprocess: the engine's monitoring and import hooks must not leak into this run.
    return pytester.runpytest_subprocess(*args)


def test_a_test_time_violation_fails_the_test_with_the_violating_values(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        import pytest
        from shop.pricing import apply_discount

        @pytest.mark.runtime_probe(
            "shop.pricing:apply_discount", capture=["price", "rate"], expect="0 <= result <= price"
        )
        def test_discount():
            assert apply_discount(10, 0.5) == 5
            assert apply_discount(10, 2) == -10
        """,
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_discount _*",
            "runtime_probe shop.pricing:apply_discount@return: expect '0 <= result <= price' "
            "was false on 1 of 2 test-time hit(s)",
            "  hit line 4: price=10, rate=2, result=-10",
        ]
    )
    result.assert_outcomes(failed=1)


def test_kept_expectations_pass_and_unmarked_tests_are_untouched(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        import pytest
        from shop.pricing import apply_discount

        @pytest.mark.runtime_probe("shop.pricing:apply_discount", expect="result >= 0")
        def test_discount():
            assert apply_discount(10, 0.5) == 5

        def test_unmarked_may_do_anything():
            assert apply_discount(10, 2) == -10
        """,
    )
    result.assert_outcomes(passed=2)


def test_an_expectation_that_cannot_be_evaluated_fails_with_the_error(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        import pytest
        from shop.pricing import apply_discount

        @pytest.mark.runtime_probe("shop.pricing:apply_discount", expect="result.real.x > 1")
        def test_discount():
            apply_discount(10, 0.5)
        """,
    )
    result.stdout.fnmatch_lines(
        ["*expect 'result.real.x > 1' was not evaluable on 1 of 1*", "    error: *"]
    )
    result.assert_outcomes(failed=1)


def test_a_probe_that_cannot_be_armed_fails_the_test_with_the_reason(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.runtime_probe("sensor.probes:Location.parse")
        def test_denied():
            pass
        """,
    )
    result.stdout.fnmatch_lines(
        [
            "*runtime_probe argument 'location': got 'sensor.probes:Location.parse@return', "
            "expected a location the sensor can arm; the probe could not be armed: denied *"
        ]
    )
    result.assert_outcomes(failed=1)


def test_refused_expression_fails_at_collection(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.runtime_probe("shop.pricing:apply_discount", expect="__import__('os')")
        def test_discount():
            pass
        """,
    )
    result.stdout.fnmatch_lines(
        ["*test_discount: runtime_probe argument 'expect': got *__import__*expected an expr*"]
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_the_body_failure_is_kept_and_the_violation_is_a_report_section(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
        import pytest
        from shop.pricing import apply_discount

        @pytest.mark.runtime_probe("shop.pricing:apply_discount", expect="result >= 0")
        def test_discount():
            apply_discount(10, 2)
            assert False, "the body's own failure"
        """,
    )
    result.stdout.fnmatch_lines(
        ["*AssertionError: the body's own failure*", "*Captured runtime call*", "*was false on 1*"]
    )
    result.assert_outcomes(failed=1)


def test_fixture_probe_checks_when_the_with_block_ends(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest
        from pytest_runtime import ExpectationViolation
        from shop.pricing import apply_discount

        def test_with_block(runtime):
            with runtime.probe("shop.pricing:apply_discount", capture=["total"]) as probe:
                apply_discount(4, 0.25)
            assert probe.captures == [{"total": 3.0}]
            assert probe.hits[0]["location"] == "shop.pricing:apply_discount@return"

        def test_violation_is_catchable(runtime):
            with pytest.raises(ExpectationViolation, match="total=-4"):
                with runtime.probe(
                    "shop.pricing:apply_discount", capture=["total"], expect="total > 0"
                ):
                    apply_discount(4, 2)

        def test_without_with_is_checked_at_the_end_of_the_test(runtime):
            runtime.probe("shop.pricing:apply_discount", expect="result > 0")
            apply_discount(4, 2)

        def test_bad_arguments_raise_marker_error(runtime):
            from pytest_runtime import MarkerError
            with pytest.raises(MarkerError, match="argument 'min_hits'"):
                runtime.probe("shop.pricing:apply_discount", min_hits=-1)
        """,
    )
    result.stdout.fnmatch_lines(
        ["*_ test_without_with_is_checked_at_the_end_of_the_test _*", "*was false on 1*"]
    )
    result.assert_outcomes(passed=3, failed=1)


def test_probe_on_a_module_imported_during_the_test(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest

        @pytest.mark.runtime_probe("shop.pricing:apply_discount", expect="result >= 0")
        def test_late_import():
            from shop.pricing import apply_discount
            apply_discount(10, 2)
        """,
    )
    result.stdout.fnmatch_lines(["*was false on 1 of 1*"])
    result.assert_outcomes(failed=1)


def test_probes_are_removed_after_each_test(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest
        from shop.pricing import apply_discount

        @pytest.mark.runtime_probe("shop.pricing:apply_discount", expect="result >= 0")
        def test_marked():
            apply_discount(10, 0.5)

        def test_after():
            from pytest_runtime.session import testtime_engine
            apply_discount(10, 2)
            assert [s for s in testtime_engine().statuses() if s.state.value != "removed"] == []
        """,
    )
    result.assert_outcomes(passed=2)


def test_rerun_of_a_marked_test_in_the_same_session(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest
        from shop.pricing import apply_discount

        @pytest.mark.parametrize("rate", [0.1, 0.5, 2])
        @pytest.mark.runtime_probe("shop.pricing:apply_discount", expect="result >= 0")
        def test_rates(rate):
            apply_discount(10, rate)
        """,
        "-x",
    )
    result.assert_outcomes(passed=2, failed=1)


def test_markers_on_parameter_sets_and_the_location_keyword(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
        import pytest
        from shop.pricing import apply_discount

        probe = pytest.mark.runtime_probe(
            location="shop.pricing:apply_discount", expect="result >= 0"
        )
        bad = pytest.mark.runtime_probe("shop.pricing:apply_discount", min_hits=0)

        @pytest.mark.parametrize(
            "rate",
            [
                pytest.param(0.5, marks=probe),
                pytest.param(2, marks=probe),
                pytest.param(1, marks=bad),
            ],
        )
        def test_rates(rate):
            apply_discount(10, rate)
        """,
    )
    result.stdout.fnmatch_lines(
        [
            "*_ test_rates?2? _*",
            "*expect 'result >= 0' was false on 1 of 1*",
            "*_ test_rates?1? _*",
            "*test_rates?1?: runtime_probe argument 'min_hits': got 0, expected a number >= 1",
        ]
    )
    result.assert_outcomes(passed=1, failed=2)
