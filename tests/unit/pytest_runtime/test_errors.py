"""The plugin's error tree: one root, argument errors are ValueErrors, messages name values."""

from __future__ import annotations

import pytest

from pytest_runtime import errors


def test_every_error_derives_from_the_root() -> None:
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.RuntimeProbeError), name


def test_argument_errors_are_value_errors_and_violation_is_an_assertion() -> None:
    assert issubclass(errors.MarkerError, ValueError)
    assert issubclass(errors.OptionError, ValueError)
    assert issubclass(errors.EvidenceFormatError, ValueError)
    assert issubclass(errors.ExpectationViolation, AssertionError)


def test_marker_error_names_argument_value_and_expectation() -> None:
    exc = errors.MarkerError("min_hits", 0, "a number >= 1")
    assert str(exc) == "runtime_probe argument 'min_hits': got 0, expected a number >= 1"
    assert (exc.argument, exc.value) == ("min_hits", 0)


def test_evidence_format_error_names_file_and_line() -> None:
    exc = errors.EvidenceFormatError("prod.jsonl", 7, "not JSON")
    assert str(exc) == "evidence file prod.jsonl, line 7: not JSON"


def test_docstring_draws_every_class_of_the_tree() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        assert name in doc, name


@pytest.mark.parametrize("cls", [errors.HubUnreachableError, errors.HubAuthError])
def test_hub_errors_are_hub_client_errors(cls: type[Exception]) -> None:
    assert issubclass(cls, errors.HubClientError)
