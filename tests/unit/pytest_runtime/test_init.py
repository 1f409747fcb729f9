"""The public surface of pytest_runtime: exactly these names, sorted, resolved lazily."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pytest_runtime

EXPECTED = [
    "Evidence",
    "EvidenceError",
    "EvidenceFormatError",
    "ExpectationViolation",
    "HubAuthError",
    "HubClientError",
    "HubRequestError",
    "HubUnreachableError",
    "MarkerError",
    "OptionError",
    "ProbeHandle",
    "ProbeRequest",
    "ProbeResult",
    "ProbeSettings",
    "RuntimeFixture",
    "RuntimeOptions",
    "RuntimeProbeError",
    "__version__",
]


def test_all_lists_exactly_the_public_names_sorted() -> None:
    assert pytest_runtime.__all__ == EXPECTED
    assert sorted(pytest_runtime.__all__) == pytest_runtime.__all__


def test_every_exported_name_resolves_to_its_module_object() -> None:
    from pytest_runtime import errors, markers

    assert pytest_runtime.MarkerError is errors.MarkerError
    assert pytest_runtime.ProbeRequest is markers.ProbeRequest
    for name in EXPECTED:
        assert getattr(pytest_runtime, name) is not None


def test_unknown_attribute_raises_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchThing"):
        pytest_runtime.NoSuchThing  # noqa: B018


def test_importing_the_plugin_imports_no_heavy_dependency() -> None:
    code = (
        "import sys, pytest_runtime.plugin\n"
        "heavy = ['deepdiff', 'requests', 'coverage', 'hypothesis', 'sensor.engine',"
        " 'pytest_runtime.session', 'pytest_runtime.compare']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
