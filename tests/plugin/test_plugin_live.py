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
from plugin_support import CLIENT_TOKEN, HubProcess, make_shop

from pytest_runtime.hub import HubClient
from pytest_runtime.markers import parse_probe_args

TEST_SOURCE = """
import pytest
from shop.pricing import apply_discount

@pytest.mark.runtime_probe("shop.pricing:apply_discount", capture=["price", "rate"])
def test_discount():
    assert apply_discount(10, 0.5) == 5
"""
REQUEST = parse_probe_args(("shop.pricing:apply_discount",), {"capture": ["price", "rate"]})


def hits_for(probe_id: str, count: int) -> list[dict[str, Any]]:
    now = time.time()
    return [
        {
            "probe_id": probe_id,
            "signature": REQUEST.signature,
            "kind": "snapshot",
            "location": REQUEST.location,
            "ts": now + n * 0.001,
            "hit_id": f"live-{probe_id[:6]}-{n}",
            "captures": {"price": None if n % 2 else 10 + n, "rate": 0.5},
        }
        for n in range(count)
    ]


def fake_traffic(hub: HubProcess, stop: threading.Event, count: int = 10) -> threading.Thread:
    """A sensor's side over real HTTP: wait for the placed probe, then post its hits."""

    def run() -> None:
        client = HubClient(hub.url, CLIENT_TOKEN)
        source = hub.register("shop")
        try:
            deadline = time.monotonic() + 30
            while not stop.is_set() and time.monotonic() < deadline:
                probes = client.find_probes(REQUEST.signature)
                if probes:
                    hub.post_hits(source, hits_for(str(probes[0]["id"]), count))
                    return
                stop.wait(0.1)
        finally:
            client.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def live(pytester: pytest.Pytester, hub: HubProcess, monkeypatch: pytest.MonkeyPatch) -> HubProcess:
    make_shop(pytester)
    pytester.makepyfile(test_shop=TEST_SOURCE)
    monkeypatch.setenv("PYTEST_RUNTIME_TOKEN", CLIENT_TOKEN)
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
    thread = fake_traffic(live, stop)
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


def test_hub_lost_during_the_run_is_a_usage_error_not_a_traceback(
    pytester: pytest.Pytester, live: HubProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_kill="""
        import os, signal

        def test_the_hub_goes_away():
            os.kill(int(os.environ["HUB_PID"]), signal.SIGKILL)
        """
    )
    monkeypatch.setenv("HUB_PID", str(live.process.pid))
    result = pytester.runpytest_subprocess("--runtime-probe", "--runtime-wait", "5")
    result.stderr.fnmatch_lines([f"ERROR: pytest-runtime: hub {live.url} cannot be reached*"])
    assert "Traceback" not in result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR


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
