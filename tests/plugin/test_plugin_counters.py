"""Live runs against a real hub: rates from the sensors' counters, and a wait that knows why.

The sensors' side is played over real HTTP (register, heartbeat with statuses, hits), as a
sensor does, so that each test controls exactly what the counters say. The last test runs a
real service under ``python -m sensor run``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from plugin_support import CLIENT_TOKEN, HubProcess, make_shop

from pytest_runtime.hub import HubClient
from pytest_runtime.markers import parse_probe_args

LOCATION = "shop.pricing:apply_discount"
EXPECT = "0 <= result <= price"
EXPECT_TEST = f"""
import pytest
from shop.pricing import apply_discount

@pytest.mark.runtime_probe("{LOCATION}", capture=["price", "rate"], expect="{EXPECT}"{{extra}})
def test_discount():
    assert apply_discount(10, 0.5) == 5
"""
REQUEST = parse_probe_args((LOCATION,), {"capture": ["price", "rate"], "expect": EXPECT})


def hit(probe_id: str, n: int, ok: bool) -> dict[str, Any]:
    return {
        "probe_id": probe_id,
        "signature": REQUEST.signature,
        "kind": "snapshot",
        "location": REQUEST.location,
        "ts": time.time(),
        "hit_id": f"c-{probe_id[:6]}-{n}",
        "captures": {"price": 10, "rate": 2.0 if not ok else 0.5},
        "expect": {"ok": ok, "error": None},
    }


def status(probe_id: str, state: str = "installed", reason: str | None = None, **n: int) -> Any:
    return {"probe_id": probe_id, "state": state, "reason": reason, **n}


def sensor_side(hub: HubProcess, act: Callable[[str], None]) -> Iterator[None]:
    """Wait (in a thread) for the run to place its probe, then call ``act(probe_id)``."""
    stop = threading.Event()

    def run() -> None:
        client = HubClient(hub.url, CLIENT_TOKEN)
        try:
            deadline = time.monotonic() + 60
            while not stop.is_set() and time.monotonic() < deadline:
                probes = client.find_probes(REQUEST.signature)
                if probes:
                    act(str(probes[0]["id"]))
                    return
                stop.wait(0.1)
        finally:
            client.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


@pytest.fixture
def shop(pytester: pytest.Pytester, hub: HubProcess, monkeypatch: pytest.MonkeyPatch) -> HubProcess:
    make_shop(pytester)
    monkeypatch.setenv("PYTEST_RUNTIME_TOKEN", CLIENT_TOKEN)
    monkeypatch.setenv("PYTEST_RUNTIME_HUB", hub.url)
    return hub


def seconds_left(output: str) -> list[int]:
    return [int(m) for m in re.findall(r"waiting for production hits: .*?, (\d+)s left", output)]


def test_violation_rates_come_from_the_counters_live_and_in_the_recording(
    pytester: pytest.Pytester, shop: HubProcess
) -> None:
    pytester.makepyfile(test_shop=EXPECT_TEST.format(extra=""))
    web = [shop.register("shop"), shop.register("shop")]

    def act(probe_id: str) -> None:
        # A function broken on 20.4% of calls: the sensors count every evaluation, and
        # capture violations at up to 10/s but passing calls at 1/s.
        shop.post_statuses(web[0], [status(probe_id, hits=31, evaluations=2700, violations=551)])
        shop.post_statuses(web[1], [status(probe_id, hits=30, evaluations=2619, violations=535)])
        hits = [hit(probe_id, n, ok=n >= 40) for n in range(61)]
        shop.post_hits(web[0], hits[0::2])
        shop.post_hits(web[1], hits[1::2])

    with sensor_side_ctx(shop, act):
        result = pytester.runpytest_subprocess(
            "--runtime-probe", "--runtime-wait", "30", "--runtime-record", "rec.jsonl"
        )
    counted = (
        f"*high violation: expectation '{EXPECT}' failed on 1,086 of 5,319 evaluations (20.4%) "
        "on 2 sources in the *s since placement; 40 violating hits captured"
    )
    result.stdout.fnmatch_lines(["VIOLATED test_shop.py::test_discount*", counted])
    assert "65.6%" not in result.stdout.str()  # 40 of 61 captured hits: not the rate
    records = [json.loads(line) for line in (pytester.path / "rec.jsonl").read_text().splitlines()]
    assert records[0]["version"] == 2
    statuses = [r["status"] for r in records if r["record"] == "status"]
    assert sorted(s["counters"]["evaluations"] for s in statuses) == [2619, 2700]
    replay = pytester.runpytest_subprocess("--runtime-evidence", "rec.jsonl")
    replay.stdout.fnmatch_lines(["VIOLATED test_shop.py::test_discount*", counted])


def test_a_probe_disabled_on_every_source_ends_the_wait_at_once_and_says_why(
    pytester: pytest.Pytester, shop: HubProcess
) -> None:
    pytester.makepyfile(test_shop=EXPECT_TEST.format(extra=""))
    workers = [shop.register("shop"), shop.register("shop")]
    master = shop.register("shop")
    disabled = "disabled: reached max_hits (1)"
    pending = "waiting for module 'shop.pricing' to be imported"

    def act(probe_id: str) -> None:
        shop.post_hits(workers[0], [hit(probe_id, 0, ok=True)])
        for source in workers:
            one = 1 if source == workers[0] else 0
            statuses = [status(probe_id, "disabled", disabled, hits=one, evaluations=one)]
            shop.post_statuses(source, statuses)
        shop.post_statuses(master, [status(probe_id, "pending", pending)])

    with sensor_side_ctx(shop, act):
        result = pytester.runpytest_subprocess("--runtime-probe", "--runtime-wait", "120")
    out = result.stdout.str()
    why = (
        f"disabled on 2 of 3 source(s): {disabled}; pending on 1 of 3 source(s): {pending} "
        "(a process that never imports it, such as a pre-fork server's master)"
    )
    result.stdout.fnmatch_lines(
        [
            f"*; cannot collect more: {REQUEST.location}",
            # The master that never imports the module is said once, in the header.
            "runtime: 1 source(s) never imported the probed module(s) while other sources did;*",
            "INCONCLUSIVE test_shop.py::test_discount*",
            f"    only 1 production hit(s), 10 needed; the probe cannot collect more: {why}",
            f"{REQUEST.location}: stopped waiting after 1 hit(s): the probe cannot collect "
            f"more: {why}",
        ]
    )
    assert "no source has imported it yet" not in out
    # The wait ended with most of its 120 s left, not when the time was up.
    assert min(seconds_left(out)) > 60, out


def test_the_progress_line_says_when_no_call_reached_the_location(
    pytester: pytest.Pytester, shop: HubProcess
) -> None:
    pytester.makepyfile(test_shop=EXPECT_TEST.format(extra=""))
    source = shop.register("shop")

    def act(probe_id: str) -> None:
        shop.post_statuses(source, [status(probe_id)])  # installed, every counter at 0

    with sensor_side_ctx(shop, act):
        result = pytester.runpytest_subprocess("--runtime-probe", "--runtime-wait", "9")
    result.stdout.fnmatch_lines(
        [
            f"runtime: waiting for production hits: 0/1 probes complete, 0 source(s), hits 0/29, "
            f"*s left; no call reached {REQUEST.location} since placement (*s ago)",
            "INCONCLUSIVE test_shop.py::test_discount*",
            f"    only 0 production hit(s), 10 needed; no call reached {REQUEST.location} in the "
            "*s since placement on the 1 source(s) that report counters: send traffic that "
            "reaches it, or wait longer (--runtime-wait)",
        ]
    )


def test_rarer_than_sets_the_hits_waited_for(pytester: pytest.Pytester, shop: HubProcess) -> None:
    pytester.makepyfile(test_shop=EXPECT_TEST.format(extra=""))
    source = shop.register("shop")

    def act(probe_id: str) -> None:
        shop.post_statuses(source, [status(probe_id, hits=70, evaluations=70)])
        shop.post_hits(source, [hit(probe_id, n, ok=True) for n in range(70)])

    with sensor_side_ctx(shop, act):
        result = pytester.runpytest_subprocess(
            "--runtime-probe", "--runtime-wait", "30", "--runtime-rarer-than", "5%",
            "--runtime-report-json", "r.json", "-v",
        )  # fmt: skip
    result.stdout.fnmatch_lines(
        ["runtime: waiting for production hits: 1/1 probes complete*59/59*"]
    )
    result.stdout.fnmatch_lines(
        [
            "OK test_shop.py::test_discount*",
            "    confidence: no violation in 70 evaluations: a violation happens on fewer than "
            "4.2% of calls; a state none of the 70 captured hits showed happens on fewer than "
            "4.2% of calls (95% confidence, rule of three)",
        ]
    )
    [entry] = json.loads((pytester.path / "r.json").read_text())["results"]
    assert entry["confidence"]["asked"] == 0.05
    assert entry["confidence"]["reached"] is True


def sensor_side_ctx(hub: HubProcess, act: Callable[[str], None]) -> Any:
    import contextlib

    return contextlib.contextmanager(sensor_side)(hub, act)


LOOP = """
import time
from sensor.engine import get_engine
from shop.pricing import apply_discount

# A test-only knob, as in tests/integration/agent_support.py: on a loaded 2-core machine one
# preempted capture can exceed the 1% CPU budget; this test is about max_hits.
get_engine()._budget.fraction = 1.0
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    apply_discount(10, 0.5)
    time.sleep(0.02)
"""


def test_a_real_sensor_that_disables_the_probe_ends_the_wait(
    pytester: pytest.Pytester, shop: HubProcess
) -> None:
    pytester.makepyfile(test_shop=EXPECT_TEST.format(extra=", max_hits=1"), loop=LOOP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENSOR_", "PYTEST_"))}
    env |= {
        "SENSOR_HUB_URL": shop.url,
        "SENSOR_TOKEN": shop.sensor_token,
        "SENSOR_SERVICE": "shop",
        "SENSOR_POLL_WAIT": "1",
        "SENSOR_FLUSH_INTERVAL": "0.1",
        "SENSOR_HEARTBEAT_INTERVAL": "0.5",
        "PYTHONPATH": str(pytester.path),
    }
    service = subprocess.Popen(
        [sys.executable, "-m", "sensor", "run", "--", sys.executable, "loop.py"],
        cwd=pytester.path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = HubClient(shop.url, CLIENT_TOKEN)
        try:
            deadline = time.monotonic() + 60
            while not client.sources(service="shop") and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            client.close()
        result = pytester.runpytest_subprocess(
            "--runtime-probe", "--runtime-wait", "120", "--runtime-service", "shop"
        )
    finally:
        service.terminate()
        service.wait(20)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "INCONCLUSIVE test_shop.py::test_discount*",
            # The hub ends a probe at its max_hits, often before the sensor's status says so.
            "*the probe cannot collect more: * on 1 of 1 source(s): *reached max_hits (1)",
        ]
    )
    assert min(seconds_left(out)) > 60, out


def test_the_run_waits_for_the_counters_that_cover_its_hits(
    pytester: pytest.Pytester, shop: HubProcess
) -> None:
    pytester.makepyfile(test_shop=EXPECT_TEST.format(extra=""))
    source = shop.register("shop")

    def act(probe_id: str) -> None:
        # The last heartbeat counted 10 hits; 30 more (violating ones among them) are sent
        # before the next heartbeat, which comes 4 s later, as heartbeats lag hits.
        shop.post_statuses(source, [status(probe_id, hits=10, evaluations=400, violations=2)])
        shop.post_hits(source, [hit(probe_id, n, ok=n % 5 != 4) for n in range(40)])
        time.sleep(4)
        shop.post_statuses(source, [status(probe_id, hits=40, evaluations=1000, violations=80)])

    with sensor_side_ctx(shop, act):
        result = pytester.runpytest_subprocess(
            "--runtime-probe", "--runtime-wait", "30", "--runtime-report-json", "r.json"
        )
    result.stdout.fnmatch_lines(
        [
            "runtime: waiting up to *s for the next counters of 1 source(s) (their heartbeat), "
            "so that they cover the hits read",
            "VIOLATED test_shop.py::test_discount*",
            f"*high violation: expectation '{EXPECT}' failed on 80 of 1,000 evaluations (8.0%) "
            "on 1 source in the *s since placement; 8 violating hits captured",
        ]
    )
    assert "lower bound" not in result.stdout.str()
    [entry] = json.loads((pytester.path / "r.json").read_text())["results"]
    assert entry["production"]["lower_bound"] == []
    assert entry["production"]["notes"] == []


def test_counters_that_never_catch_up_are_said_as_a_lower_bound(
    pytester: pytest.Pytester, shop: HubProcess
) -> None:
    pytester.makepyfile(test_shop=EXPECT_TEST.format(extra=""))
    source = shop.register("shop")

    def act(probe_id: str) -> None:
        # The source goes silent after these hits: no heartbeat will cover them.
        shop.post_statuses(source, [status(probe_id, hits=10, evaluations=400, violations=2)])
        shop.post_hits(source, [hit(probe_id, n, ok=n % 5 != 4) for n in range(40)])

    with sensor_side_ctx(shop, act):
        result = pytester.runpytest_subprocess("--runtime-probe", "--runtime-wait", "3")
    result.stdout.fnmatch_lines(
        [
            "runtime: waiting up to 3s for the next counters of 1 source(s)*",
            f"*high violation: expectation '{EXPECT}' failed on 2 of 400 evaluations (0.5%) on "
            "1 source in the *s since placement; 8 violating hits captured (a lower bound: "
            "6 violating hits captured after the last counters of 1 source (*) are not counted)",
        ]
    )


@pytest.mark.parametrize("how", ["option", "ini", "marker"])
def test_an_explicit_min_hits_is_the_wait_and_the_bound_reached_is_said(
    pytester: pytest.Pytester, shop: HubProcess, how: str
) -> None:
    extra = ", min_hits=5" if how == "marker" else ""
    pytester.makepyfile(test_shop=EXPECT_TEST.format(extra=extra))
    if how == "ini":
        pytester.makeini("[pytest]\nruntime_min_hits = 5\n")
    source = shop.register("shop")

    def act(probe_id: str) -> None:
        shop.post_statuses(source, [status(probe_id, hits=6, evaluations=6)])
        shop.post_hits(source, [hit(probe_id, n, ok=True) for n in range(6)])

    args = ["--runtime-min-hits", "5"] if how == "option" else []
    with sensor_side_ctx(shop, act):
        result = pytester.runpytest_subprocess(
            "--runtime-probe", "--runtime-wait", "30", "--runtime-report-json", "r.json", "-v",
            *args,
        )  # fmt: skip
    result.stdout.fnmatch_lines(
        [
            "runtime: waiting for 5 production hits per probe (min hits, set explicitly; no "
            "--runtime-rarer-than): each verdict says the confidence bound its hits reached",
            "runtime: waiting for production hits: 1/1 probes complete, 1 source(s), hits 5/5, *",
            "OK test_shop.py::test_discount*",
            "    confidence: no violation in 6 evaluations: a violation happens on fewer than "
            "39% of calls; a state none of the 6 captured hits showed happens on fewer than 39% "
            "of calls (95% confidence, rule of three)",
        ]
    )
    assert "asked for" not in result.stdout.str()
    [entry] = json.loads((pytester.path / "r.json").read_text())["results"]
    assert entry["confidence"]["asked"] is None
    assert entry["confidence"]["states"]["below"] == pytest.approx(0.393, abs=0.001)


def test_explicit_min_hits_and_rarer_than_wait_for_the_larger_and_say_so(
    pytester: pytest.Pytester, shop: HubProcess
) -> None:
    pytester.makepyfile(test_shop=EXPECT_TEST.format(extra=""))
    source = shop.register("shop")

    def act(probe_id: str) -> None:
        shop.post_statuses(source, [status(probe_id, hits=60, evaluations=60)])
        shop.post_hits(source, [hit(probe_id, n, ok=True) for n in range(60)])

    with sensor_side_ctx(shop, act):
        result = pytester.runpytest_subprocess(
            "--runtime-probe", "--runtime-wait", "30", "--runtime-min-hits", "5",
            "--runtime-rarer-than", "5%", "-v",
        )  # fmt: skip
    result.stdout.fnmatch_lines(
        [
            "runtime: waiting for 59 production hits per probe: --runtime-rarer-than 5% needs "
            "59, more than min hits 5",
            "runtime: waiting for production hits: 1/1 probes complete, 1 source(s), hits 59/59,*",
            "OK test_shop.py::test_discount*",
        ]
    )


def test_an_earlier_runs_placement_in_the_window_is_counted_with_its_own_counters(
    pytester: pytest.Pytester, shop: HubProcess
) -> None:
    # A run an hour ago (within --runtime-since 1h) placed the same probe, collected hits and
    # removed it: its hits are in this run's evidence, and so are its counters.
    pytester.makepyfile(test_shop=EXPECT_TEST.format(extra=""))
    source = shop.register("shop")
    client = HubClient(shop.url, CLIENT_TOKEN)
    try:
        earlier = str(client.place(REQUEST.probe.to_dict(), {"service": "shop"}, ttl=300)["id"])
        shop.post_hits(source, [hit(earlier, n, ok=n % 10 != 0) for n in range(20)])
        shop.post_statuses(source, [status(earlier, hits=20, evaluations=200, violations=20)])
        client.remove(earlier)
    finally:
        client.close()

    def act(probe_id: str) -> None:
        shop.post_statuses(source, [status(probe_id, hits=30, evaluations=300, violations=30)])
        shop.post_hits(source, [hit(probe_id, n, ok=n % 10 != 0) for n in range(30)])

    with sensor_side_ctx(shop, act):
        result = pytester.runpytest_subprocess(
            "--runtime-probe", "--runtime-wait", "30", "--runtime-report-json", "r.json"
        )
    result.stdout.fnmatch_lines(
        [
            f"*high violation: expectation '{EXPECT}' failed on 50 of 500 evaluations (10.0%) "
            "on 1 source across 2 placements over *; 5 violating hits captured",
        ]
    )
    assert "lower bound" not in result.stdout.str()


def test_a_wait_rule_names_the_probes_it_applies_to(
    pytester: pytest.Pytester, shop: HubProcess
) -> None:
    pytester.makepyfile(
        test_shop=f"""
import pytest
from shop.pricing import apply_discount

@pytest.mark.runtime_probe("{LOCATION}@entry", capture=["price"], min_hits=5)
def test_entry():
    assert apply_discount(10, 0.5) == 5

@pytest.mark.runtime_probe("{LOCATION}", capture=["price"])
def test_return():
    assert apply_discount(10, 0.5) == 5
"""
    )
    shop.register("shop")
    result = pytester.runpytest_subprocess("--runtime-probe", "--runtime-wait", "1")
    result.stdout.fnmatch_lines(
        [
            "runtime: waiting for 5 production hits for 1 of 2 probes (min hits, set explicitly; "
            "no --runtime-rarer-than): each verdict says the confidence bound its hits reached",
            "runtime: waiting for production hits: 0/2 probes complete, 0 source(s), hits 0/34,*",
        ]
    )
