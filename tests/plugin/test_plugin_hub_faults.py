"""A hub that hiccups or goes away during a run: retries, and reports that are never lost.

Real hub processes (``python -m sensor hub``); the hiccups come from a proxy in front of the
real hub (a load balancer in front of a restarting hub) or from killing the hub process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from plugin_support import (
    CLIENT_TOKEN,
    REQUEST,
    TEST_SOURCE,
    FlakyProxy,
    HubProcess,
    complete_traffic,
    make_shop,
)

from pytest_runtime.hub import HubClient


@pytest.fixture
def shop(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    make_shop(pytester)
    pytester.makepyfile(test_shop=TEST_SOURCE)
    monkeypatch.setenv("SENSOR_CLIENT_TOKEN", CLIENT_TOKEN)
    monkeypatch.delenv("PYTEST_RUNTIME_HUB", raising=False)
    return pytester


@pytest.fixture
def flaky(hub: HubProcess) -> Iterator[FlakyProxy]:
    proxy = FlakyProxy(
        hub.url,
        [
            ["GET", "/v1/health", 2, "503"],
            ["GET", "/v1/sources", 1, "503"],
            # The hub stores the probe, the answer is lost: the retry meets 409 probe_exists.
            ["POST", "/v1/probes", 1, "lost"],
            ["POST", "/v1/probes", 1, "503"],
            ["GET", "/v1/evidence", 2, "503"],
            ["DELETE", "/v1/probes/", 1, "lost"],
        ],
    )
    try:
        yield proxy
    finally:
        proxy.close()


def probes(hub: HubProcess, state: str) -> list[dict[str, Any]]:
    client = HubClient(hub.url, CLIENT_TOKEN)
    try:
        return client.find_probes(REQUEST.signature, state=state)
    finally:
        client.close()


def test_a_hub_answering_503_a_few_times_costs_nothing(
    shop: pytest.Pytester, hub: HubProcess, flaky: FlakyProxy
) -> None:
    stop = threading.Event()
    thread = complete_traffic(hub, stop)  # the sensor's side talks to the hub directly
    try:
        result = shop.runpytest_subprocess(
            "--runtime-probe",
            "--runtime-hub",
            flaky.url,
            "--runtime-wait",
            "20",
            "--runtime-report-json",
            "report.json",
        )
    finally:
        stop.set()
        thread.join(10)
    result.stdout.fnmatch_lines(["DIVERGED test_shop.py::test_discount*"])
    assert result.ret == pytest.ExitCode.OK
    # Every fault was met, and answered by a retry.
    assert flaky.statuses("GET", "/v1/health")[:3] == [503, 503, 200]
    assert flaky.statuses("POST", "/v1/probes")[:3] == [502, 503, 409]
    assert flaky.statuses("GET", "/v1/evidence")[:3] == [503, 503, 200]
    assert flaky.statuses("DELETE", "/v1/probes/")[0] == 502
    assert flaky.statuses("DELETE", "/v1/probes/")[1] in (200, 404)
    # One probe was placed, whatever the retries, and it is gone.
    assert len(probes(hub, "removed")) == 1
    assert probes(hub, "active") == []
    [entry] = json.loads(shop.path.joinpath("report.json").read_text())["results"]
    assert entry["verdict"] == "diverged"
    assert entry["probe_ids"] == [probes(hub, "removed")[0]["id"]]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_a_hub_killed_while_waiting_still_gives_every_report(
    shop: pytest.Pytester, hub: HubProcess, tmp_path: Path
) -> None:
    summary = tmp_path / "step-summary.md"
    env = {
        **os.environ,
        "PYTEST_RUNTIME_HUB": hub.url,
        "GITHUB_ACTIONS": "true",
        "GITHUB_STEP_SUMMARY": str(summary),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--runtime-probe",
            "--runtime-wait",
            "120",
            "--runtime-report-json",
            "report.json",
            "--runtime-record",
            "rec.jsonl",
            "--junitxml",
            "junit.xml",
        ],
        cwd=shop.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 60
        placed: list[dict[str, Any]] = []
        while not placed and time.monotonic() < deadline:
            placed = probes(hub, "active")
            time.sleep(0.2)
        assert placed, "the plugin never placed its probe"
        hub.launcher.stop(kill=True)  # mid-wait, 120 s before the wait would end
        killed = time.monotonic()
        output, _ = process.communicate(timeout=90)
        elapsed = time.monotonic() - killed
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert "Traceback" not in output, output
    assert elapsed < 60, output  # the retries are bounded: the run did not wait out its 120 s
    assert process.returncode == pytest.ExitCode.OK, output
    assert "INCONCLUSIVE test_shop.py::test_discount" in output
    assert f"runtime: the hub {hub.url} failed during the run" in output
    assert (
        f"could not remove 1 placed probe(s) from the hub ({placed[0]['id']}): the hub is "
        "unreachable; it removes them when their TTL ends" in output
    )
    path = shop.path
    report = json.loads((path / "report.json").read_text())
    [entry] = report["results"]
    assert entry["verdict"] == "inconclusive"
    assert entry["reason"].startswith(f"the hub {hub.url} failed during the run: ")
    assert "cannot be reached" in entry["reason"]
    assert entry["probe_ids"] == [placed[0]["id"]]
    assert any("failed during the run" in note for note in report["notes"])
    records = [json.loads(line) for line in (path / "rec.jsonl").read_text().splitlines()]
    assert records[0]["record"] == "header"
    suite = ET.parse(path / "junit.xml").getroot()
    assert any("failed during the run" in (p.get("value") or "") for p in suite.iter("property"))
    assert "failed during the run" in summary.read_text()
    assert "::warning" in output
    assert "runtime probe inconclusive" in output


def test_a_hub_gone_before_placing_gives_inconclusive_verdicts(
    shop: pytest.Pytester, hub: HubProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop.makepyfile(
        test_kill="""
        import os, signal

        def test_the_hub_goes_away():
            os.kill(int(os.environ["HUB_PID"]), signal.SIGKILL)
        """
    )
    monkeypatch.setenv("HUB_PID", str(hub.process.pid))
    result = shop.runpytest_subprocess(
        "--runtime-probe",
        "--runtime-hub",
        hub.url,
        "--runtime-wait",
        "5",
        "--runtime-report-json",
        "report.json",
    )
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    result.stdout.fnmatch_lines(
        ["INCONCLUSIVE test_shop.py::test_discount*", "    the hub * failed during the run: *"]
    )
    assert result.ret == pytest.ExitCode.OK
    [entry] = json.loads(shop.path.joinpath("report.json").read_text())["results"]
    assert entry["verdict"] == "inconclusive"
    assert "cannot be reached" in entry["reason"]
