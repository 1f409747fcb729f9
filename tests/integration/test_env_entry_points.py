"""Each entry point that reads a hub URL from the environment refuses a blank or malformed one,
naming the variable, as real subprocesses: the plugin (pytest), the MCP server, the sensor CLI
(tests/integration/test_hub_cli.py covers ``python -m sensor``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BAD_VALUES = ["", "  ", "hub.internal:8765", "htp://hub.internal:8765"]


def _env(**variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENSOR_", "PYTEST_RUNTIME_"))}
    return env | variables


@pytest.mark.parametrize("value", BAD_VALUES)
def test_pytest_refuses_a_blank_or_malformed_hub_variable_naming_it(
    tmp_path: Path, value: str
) -> None:
    (tmp_path / "test_plain.py").write_text("def test_plain():\n    pass\n")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_plain.py"],
        env=_env(PYTEST_RUNTIME_HUB=value),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result
    assert (
        f"ERROR: pytest-runtime: PYTEST_RUNTIME_HUB: got {value!r}, expected an http:// or "
        "https:// URL"
    ) in result.stderr


@pytest.mark.parametrize("value", BAD_VALUES)
def test_the_mcp_server_refuses_a_blank_or_malformed_hub_variable_naming_it(value: str) -> None:
    pytest.importorskip("mcp")
    result = subprocess.run(
        [sys.executable, "-m", "pytest_runtime.mcp"],
        env=_env(PYTEST_RUNTIME_HUB=value, SENSOR_CLIENT_TOKEN="t"),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result
    assert f"PYTEST_RUNTIME_HUB: got {value!r}, expected an http:// or https:// URL" in (
        result.stderr
    )


def test_an_mcp_hub_option_overrides_a_blank_variable() -> None:
    # --hub wins, so the variable is not read (nor refused); the server then starts and waits
    # for a client on stdin, which is closed at once: it ends without an error about the hub.
    pytest.importorskip("mcp")
    result = subprocess.run(
        [sys.executable, "-m", "pytest_runtime.mcp", "--hub", "http://127.0.0.1:9"],
        env=_env(PYTEST_RUNTIME_HUB="", SENSOR_CLIENT_TOKEN="t"),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert "PYTEST_RUNTIME_HUB" not in result.stderr, result


def test_the_mcp_server_refuses_a_blank_service_variable() -> None:
    # blank would mean "no service": every tool call would reach every live source
    pytest.importorskip("mcp")
    result = subprocess.run(
        [sys.executable, "-m", "pytest_runtime.mcp"],
        env=_env(
            PYTEST_RUNTIME_HUB="http://127.0.0.1:9",
            PYTEST_RUNTIME_SERVICE="",
            SENSOR_CLIENT_TOKEN="t",
        ),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 2, result
    assert "PYTEST_RUNTIME_SERVICE: got '', expected a service name" in result.stderr


def test_the_cli_refuses_a_blank_ca_file_variable_for_an_https_hub() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sensor", "sources"],
        env=_env(
            PYTEST_RUNTIME_HUB="https://127.0.0.1:9", SENSOR_CA_FILE="", SENSOR_CLIENT_TOKEN="t"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1, result
    assert result.stderr.startswith(
        "error: SENSOR_CA_FILE: got '', expected a readable PEM file of the CA certificates"
    ), result.stderr
