"""The MCP package: its public names, and an import that stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import pytest_runtime.mcp

EXPECTED = [
    "TOOL_NAMES",
    "ArgumentError",
    "HubCallError",
    "Investigation",
    "InvestigationError",
    "RefusedError",
    "ServerSettings",
    "build_server",
]


def test_all_lists_exactly_the_public_names() -> None:
    assert pytest_runtime.mcp.__all__ == EXPECTED
    for name in EXPECTED:
        assert getattr(pytest_runtime.mcp, name) is not None
    with pytest.raises(AttributeError, match="NoSuchThing"):
        pytest_runtime.mcp.NoSuchThing  # noqa: B018


def test_errors_sit_under_the_plugins_root_and_argument_errors_are_value_errors() -> None:
    from pytest_runtime.errors import RuntimeProbeError
    from pytest_runtime.mcp import ArgumentError, HubCallError, InvestigationError, RefusedError

    for error in (ArgumentError, HubCallError, RefusedError):
        assert issubclass(error, InvestigationError)
    assert issubclass(InvestigationError, RuntimeProbeError)
    assert issubclass(ArgumentError, ValueError)
    assert str(ArgumentError("ttl_seconds", 9e9, "at most 3600")) == (
        "argument 'ttl_seconds': got 9000000000.0, expected at most 3600"
    )
    assert str(RefusedError("no live source", "call list_sources")) == (
        "refused: no live source. Instead: call list_sources"
    )
    long = str(ArgumentError("x", "y" * 1000, "short"))
    assert len(long) < 300


def _imported_after(code: str) -> list[str]:
    probe = (
        f"import sys\n{code}\n"
        "heavy = ['deepdiff', 'coverage', 'hypothesis', 'requests', 'mcp', 'sensor.engine',"
        " 'pytest_runtime.compare', 'pytest_runtime.session']\n"
        "print(','.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return [m for m in out.stdout.strip().split(",") if m]


def test_importing_the_package_imports_neither_the_sdk_nor_heavy_dependencies() -> None:
    assert _imported_after("import pytest_runtime.mcp") == []


def test_building_the_server_imports_the_sdk_but_no_comparison_or_http_client() -> None:
    code = (
        "from pytest_runtime.mcp import ServerSettings, build_server\n"
        "build_server(ServerSettings(hub='http://127.0.0.1:1'))"
    )
    assert _imported_after(code) == ["mcp"]
