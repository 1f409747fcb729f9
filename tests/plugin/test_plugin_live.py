"""--runtime-probe end to end against a real hub process: place, wait, fetch, record, remove."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from plugin_support import (
    CLIENT_TOKEN,
    REQUEST,
    TEST_SOURCE,
    HubProcess,
    complete_traffic,
    fake_traffic,
    hits_for,
    make_shop,
)

from pytest_runtime.hub import HubClient


@pytest.fixture
def live(pytester: pytest.Pytester, hub: HubProcess, monkeypatch: pytest.MonkeyPatch) -> HubProcess:
    make_shop(pytester)
    pytester.makepyfile(test_shop=TEST_SOURCE)
    monkeypatch.setenv("SENSOR_CLIENT_TOKEN", CLIENT_TOKEN)
    monkeypatch.setenv("PYTEST_RUNTIME_HUB", hub.url)
    return hub


def active(hub: HubProcess) -> list[dict[str, Any]]:
    client = HubClient(hub.url, CLIENT_TOKEN)
    try:
        return client.find_probes(REQUEST.signature)
    finally:
        client.close()


def test_live_run_places_waits_compares_records_and_removes(
    pytester: pytest.Pytester, live: HubProcess
) -> None:
    stop = threading.Event()
    thread = fake_traffic(live, stop)
    try:
        result = pytester.runpytest_subprocess(
            "--runtime-probe",
            "--runtime-wait",
            "20",
            "--runtime-record",
            "rec.jsonl",
            "--runtime-min-hits",
            "5",
            "--runtime-rarer-than",
            "50%",  # 5 hits: enough for a verdict, and the bound's target
        )
    finally:
        stop.set()
        thread.join(10)
    result.stdout.fnmatch_lines(
        [
            # The first poll may already see the hits: only the last progress line is certain.
            "runtime: waiting for production hits: 1/1 probes complete, 1 source(s), hits 5/5*",
            "DIVERGED test_shop.py::test_discount*",
            "*price: None in production*",
            "*recorded 10 hit(s) to rec.jsonl*",
        ]
    )
    assert result.ret == pytest.ExitCode.OK
    assert active(live) == []  # the placed probe is gone
    records = [json.loads(line) for line in (pytester.path / "rec.jsonl").read_text().splitlines()]
    assert records[0]["record"] == "header"
    assert sum(1 for r in records if r["record"] == "hit") == 10
    # The recording replays to the same verdict with no hub at all.
    replay = pytester.runpytest_subprocess(
        "--runtime-evidence", "rec.jsonl", "--runtime-min-hits", "5"
    )
    replay.stdout.fnmatch_lines(["DIVERGED test_shop.py::test_discount*"])


def test_standing_probe_is_reused_and_left_in_place(
    pytester: pytest.Pytester, live: HubProcess
) -> None:
    client = HubClient(live.url, CLIENT_TOKEN)
    try:
        record = client.place(REQUEST.probe.to_dict(), {"service": "shop"}, ttl=300)
    finally:
        client.close()
    live.post_hits(live.register("shop"), hits_for(str(record["id"]), 8))
    result = pytester.runpytest_subprocess(
        "--runtime-probe", "--runtime-wait", "5", "--runtime-min-hits", "5"
    )
    result.stdout.fnmatch_lines(
        [f"*reused standing probe(s) {record['id']} for {REQUEST.location}*"]
    )
    result.stdout.fnmatch_lines(["DIVERGED test_shop.py::test_discount*"])
    assert [p["id"] for p in active(live)] == [record["id"]]


def test_no_hits_within_the_wait_is_inconclusive_and_cleans_up(
    pytester: pytest.Pytester, live: HubProcess
) -> None:
    started = time.monotonic()
    result = pytester.runpytest_subprocess("--runtime-probe", "--runtime-wait", "1")
    assert time.monotonic() - started < 30
    result.stdout.fnmatch_lines(["INCONCLUSIVE test_shop.py::test_discount*"])
    result.stdout.fnmatch_lines(
        ["no live source matches {} for shop.pricing:apply_discount@return: *inconclusive"]
    )
    assert result.ret == pytest.ExitCode.OK
    assert active(live) == []


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_while_waiting_removes_the_placed_probe(
    pytester: pytest.Pytester, live: HubProcess
) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pytest",
            "--runtime-probe",
            "--runtime-wait",
            "60",
            "-p",
            "no:cacheprovider",
        ],
        cwd=pytester.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ},
        # A shell without job control starts background jobs with SIGINT ignored, and Python
        # keeps an inherited SIG_IGN: give the run the terminal's default, as Ctrl-C would find.
        preexec_fn=_default_sigint,
    )
    try:
        deadline = time.monotonic() + 30
        while not active(live) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert active(live), "the plugin never placed its probe"
        process.send_signal(signal.SIGINT)
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate(timeout=10)
            pytest.fail(f"pytest did not stop within 60 s of Ctrl-C; its output:\n{output}")
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=10)
    assert "KeyboardInterrupt" in output
    assert process.returncode == pytest.ExitCode.INTERRUPTED
    assert active(live) == []


def test_under_xdist_the_controller_places_each_probe_once(
    pytester: pytest.Pytester, live: HubProcess
) -> None:
    pytester.makepyfile(
        test_more="""
        import pytest
        from shop.pricing import apply_discount

        @pytest.mark.parametrize("price", [20, 40])
        @pytest.mark.runtime_probe("shop.pricing:apply_discount", capture=["price", "rate"])
        def test_prices(price):
            assert apply_discount(price, 0.5) == price / 2
        """
    )
    stop = threading.Event()
    thread = complete_traffic(live, stop)
    try:
        result = pytester.runpytest_subprocess("-n", "2", "--runtime-probe", "--runtime-wait", "20")
    finally:
        stop.set()
        thread.join(10)
    result.stdout.fnmatch_lines(["*3 passed, 2 runtime diverged*"])
    client = HubClient(live.url, CLIENT_TOKEN)
    try:
        removed = client.find_probes(REQUEST.signature, state="removed")
    finally:
        client.close()
    assert len(removed) == 1
    assert active(live) == []


def test_service_option_is_the_default_selector(
    pytester: pytest.Pytester, live: HubProcess
) -> None:
    live.register("shop")
    result = pytester.runpytest_subprocess(
        "--runtime-probe", "--runtime-wait", "0", "--runtime-service", "billing"
    )
    result.stdout.fnmatch_lines(['no live source matches {"service": "billing"} for *'])
    client = HubClient(live.url, CLIENT_TOKEN)
    try:
        [record] = client.find_probes(REQUEST.signature, state="removed")
    finally:
        client.close()
    assert record["selector"]["service"] == "billing"


def test_standing_probe_without_recent_hits_is_not_reused_and_not_removed(
    pytester: pytest.Pytester, live: HubProcess
) -> None:
    client = HubClient(live.url, CLIENT_TOKEN)
    try:
        standing = client.place(REQUEST.probe.to_dict(), {"service": "shop"}, ttl=300)
        result = pytester.runpytest_subprocess("--runtime-probe", "--runtime-wait", "0")
        assert "reused standing probe" not in result.stdout.str()
        assert [p["id"] for p in client.find_probes(REQUEST.signature)] == [standing["id"]]
        assert len(client.find_probes(REQUEST.signature, state="removed")) == 1
    finally:
        client.close()


def test_with_q_the_progress_line_starts_a_line_of_its_own(
    pytester: pytest.Pytester, live: HubProcess
) -> None:
    result = pytester.runpytest_subprocess("-q", "--runtime-probe", "--runtime-wait", "0")
    lines = result.stdout.lines
    progress = [line for line in lines if "runtime: waiting for production hits" in line]
    assert progress, lines
    assert all(line.startswith("runtime: waiting") for line in progress), lines


def test_a_location_no_call_reaches_is_said_while_waiting_and_after(
    pytester: pytest.Pytester, live: HubProcess
) -> None:
    # A real sensor in a process that imports the function and never calls it.
    pytester.path.joinpath("idle.py").write_text(
        "import os, time\nimport shop.pricing\n"
        "while not os.path.exists('stop'):\n    time.sleep(0.05)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
    env |= {
        "SENSOR_HUB_URL": live.url,
        "SENSOR_TOKEN": live.sensor_token,
        "SENSOR_SERVICE": "shop",
        "SENSOR_POLL_WAIT": "1",
        "SENSOR_HEARTBEAT_INTERVAL": "0.5",
        "PYTHONPATH": str(pytester.path),
    }
    service = subprocess.Popen(
        [sys.executable, "-m", "sensor", "run", "--", sys.executable, "idle.py"],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = HubClient(live.url, CLIENT_TOKEN)
        deadline = time.monotonic() + 30
        while not client.sources(service="shop") and time.monotonic() < deadline:
            time.sleep(0.2)
        client.close()
        result = pytester.runpytest_subprocess("--runtime-probe", "--runtime-wait", "8")
    finally:
        pytester.path.joinpath("stop").touch()
        try:
            service.wait(20)
        except subprocess.TimeoutExpired:
            service.kill()
            service.wait(10)
    result.stdout.fnmatch_lines(
        [
            "runtime: waiting for production hits: 0/1 probes complete*; no call reached "
            "shop.pricing:apply_discount@return since placement (*s ago)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "INCONCLUSIVE test_shop.py::test_discount*",
            "shop.pricing:apply_discount@return: no call reached it while probe * was placed "
            "(installed on 1 source(s)); a probe sees only calls made after it is placed: keep "
            "traffic flowing while the check runs",
        ]
    )
