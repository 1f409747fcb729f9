"""A regression test written from a production hit: by the command and by the MCP tool.

Real processes: a hub, a service under ``python -m sensor run`` with a replay probe placed
through the hub, real HTTP traffic; the written test is run by pytest in a subprocess, on the
code that produced the hit (it fails) and on the fixed code (it passes).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hub_process import ADMIN_TOKEN, CLIENT_TOKEN, HubProcess, call
from mcp_support import APP, APP_MODULE, Service, installed, start_hub, tool, tool_error, wait_until

pytestmark = [pytest.mark.integration]


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    process = start_hub(tmp_path_factory.mktemp("hub"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def shop(hub: HubProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = Service(tmp_path_factory.mktemp("shop"), hub, f"shop-{uuid.uuid4().hex[:6]}")
    yield service
    service.stop()


@pytest.fixture(scope="module")
def violating_hit(hub: HubProcess, shop: Service) -> tuple[str, str]:
    """(probe id, hit id) of a replay hit that broke ``result >= 0`` in the live service."""
    probe = {
        "kind": "snapshot",
        "location": f"{APP_MODULE}:total",
        "expect": "result >= 0",
        "replay": True,
        "limits": {"rate": 100},
    }
    status, body = call(
        hub.url,
        "POST",
        "/v1/probes",
        CLIENT_TOKEN,
        {"probe": probe, "selector": {"service": shop.service}, "ttl": 300},
    )
    assert status == 201, body
    probe_id = body["probe"]["id"]
    assert wait_until(lambda: installed(hub, probe_id), 15)
    shop.get("/total?amount=4&qty=3")
    shop.get("/total?amount=5&qty=-2")  # production's negative quantity: a refund line

    def violating() -> str | None:
        _, page = call(hub.url, "GET", f"/v1/probes/{probe_id}/hits", CLIENT_TOKEN)
        for hit in page["hits"]:
            if (hit.get("expect") or {}).get("ok") is False:
                return str(hit["hit_id"])
        return None

    hit_id = wait_until(violating, 20)
    assert hit_id, "the service sent no violating replay hit"
    return probe_id, hit_id


def _run_written(test: Path, code_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(test), "-q", "-p", "no:cacheprovider"],
        cwd=code_dir,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PYTHONPATH": str(code_dir), "PATH": "/usr/bin:/bin"},
    )


def _fails_then_passes(source: str, tmp_path: Path) -> None:
    buggy, fixed = tmp_path / "buggy", tmp_path / "fixed"
    for where, code in ((buggy, APP), (fixed, APP.replace("return price", "return abs(price)"))):
        where.mkdir()
        (where / f"{APP_MODULE}.py").write_text(code)
        (where / "test_regression.py").write_text(source)
    failing = _run_written(buggy / "test_regression.py", buggy)
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "assert result >= 0" in failing.stdout
    passing = _run_written(fixed / "test_regression.py", fixed)
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "1 passed" in passing.stdout


def test_the_command_writes_a_test_that_fails_then_passes(
    hub: HubProcess, violating_hit: tuple[str, str], tmp_path: Path
) -> None:
    probe_id, hit_id = violating_hit
    out = tmp_path / "written" / "test_regression.py"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest_runtime",
            "regression-test",
            "--hub",
            hub.url,
            "--probe",
            probe_id,
            "--hit",
            hit_id,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"SENSOR_CLIENT_TOKEN": CLIENT_TOKEN, "PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    source = out.read_text()
    assert f"# production hit {hit_id} (probe {probe_id}" in source
    assert "    amount = 5\n    qty = -2\n" in source
    assert "    result = total(amount, qty)\n    assert result >= 0\n" in source
    assert "the expectation 'result >= 0' was False" in source
    _fails_then_passes(source, tmp_path)
    # a hit id that is not there, and a missing --probe: exit 2 with the reason
    bad = subprocess.run(
        [sys.executable, "-m", "pytest_runtime", "regression-test", "--hub", hub.url, "--hit", "x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert "--hub needs --probe PROBE_ID" in bad.stderr


def test_the_mcp_tool_writes_the_same_test(
    hub: HubProcess, violating_hit: tuple[str, str], tmp_path: Path
) -> None:
    mcp = pytest.importorskip("mcp")
    from pytest_runtime.mcp import build_server
    from pytest_runtime.mcp.settings import ServerSettings

    probe_id, hit_id = violating_hit
    settings = ServerSettings(hub=hub.url, token=CLIENT_TOKEN)

    async def main() -> tuple[dict[str, Any], str, str]:
        async with mcp.Client(build_server(settings)) as client:
            answer = await tool(
                client,
                "write_regression_test",
                settings.budget_chars,
                probe_id=probe_id,
                hit_id=hit_id,
            )
            unknown = await tool_error(
                client, "write_regression_test", probe_id=probe_id, hit_id="nope-1"
            )
            bad = await tool_error(client, "write_regression_test", probe_id=probe_id, hit_id="")
            return answer, unknown, bad

    answer, unknown, bad = anyio.run(main)
    assert answer["file"].startswith("tests/test_regression_")
    assert f"production hit {hit_id}" in answer["source"]
    assert "pytest" in answer["next"]
    assert "hit_id" in unknown
    assert "list_hits" in unknown
    assert "hit_id" in bad
    _fails_then_passes(answer["source"], tmp_path)
    assert ADMIN_TOKEN  # the tool needs no admin scope: the client token was enough
