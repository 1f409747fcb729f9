"""Standing probes against a real hub process: publish a suite, check a PR without waiting."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import pytest
from plugin_support import CLIENT_TOKEN, REQUEST, TEST_SOURCE, HubProcess, make_shop

from pytest_runtime.hub import HubClient
from pytest_runtime.markers import parse_probe_args

SECOND_SOURCE = """
import pytest
from shop.pricing import apply_discount

@pytest.mark.runtime_probe("shop.pricing:apply_discount@entry", capture=["rate"])
def test_rate():
    assert apply_discount(10, 0.5) == 5
"""
SECOND = parse_probe_args(("shop.pricing:apply_discount@entry",), {"capture": ["rate"]})


@pytest.fixture
def suite(pytester: pytest.Pytester, hub: HubProcess, monkeypatch: pytest.MonkeyPatch) -> Any:
    make_shop(pytester)
    pytester.makepyfile(test_shop=TEST_SOURCE)
    monkeypatch.setenv("SENSOR_CLIENT_TOKEN", CLIENT_TOKEN)
    monkeypatch.setenv("PYTEST_RUNTIME_HUB", hub.url)
    return hub


def standing(hub: HubProcess) -> list[dict[str, Any]]:
    client = HubClient(hub.url, CLIENT_TOKEN)
    try:
        return client.list_probes(state="active", standing=True)
    finally:
        client.close()


def publish(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.run(
        sys.executable, "-m", "pytest_runtime", "publish", "--service", "shop", *args
    )


def standing_hits(probe_id: str, signature: str, location: str, count: int) -> list[Any]:
    now = time.time()
    return [
        {
            "probe_id": probe_id,
            "signature": signature,
            "kind": "snapshot",
            "location": location,
            "ts": now - 100 + n * 0.01,
            "hit_id": f"st-{probe_id[-6:]}-{n}",
            "captures": {"price": None if n % 4 == 3 else 10 + n, "rate": 0.5},
        }
        for n in range(count)
    ]


def test_publish_places_keeps_and_retires(pytester: pytest.Pytester, suite: HubProcess) -> None:
    dry = publish(pytester, "--dry-run")
    dry.stdout.fnmatch_lines(
        [
            "runtime publish (dry run): service(s) shop on hub *: 1 would place, 0 would keep, "
            "0 would retire",
            "  would place  shop.pricing:apply_discount@return *",
        ]
    )
    assert dry.ret == 0
    assert standing(suite) == []

    first = publish(pytester)
    first.stdout.fnmatch_lines(["*: 1 placed, 0 kept, 0 retired", "  placed  *as standing-*"])
    assert "Warning" not in first.stdout.str() + first.stderr.str()  # a clean pytest run
    (record,) = standing(suite)
    assert record["signature"] == REQUEST.signature
    assert record["expires_at"] is None
    limits = record["probe"]["limits"]
    assert limits["rate"] == 1.0
    assert limits.get("max_hits") is None
    assert record["probe"]["tags"]["standing"] == "shop"
    # traffic reaches it; publishing again keeps it and its evidence
    source = suite.register("shop")
    suite.post_hits(source, standing_hits(record["id"], REQUEST.signature, REQUEST.location, 6))
    again = publish(pytester)
    again.stdout.fnmatch_lines(
        ["*: 0 placed, 1 kept, 0 retired", f"  kept  * probe {record['id']} (6 hit(s) received)"]
    )
    assert [r["id"] for r in standing(suite)] == [record["id"]]

    # a second marker is added and the first one changes: one placed per new signature,
    # the old one retired; the second one's probe is kept on the next publish
    pytester.makepyfile(test_rate=SECOND_SOURCE)
    pytester.makepyfile(test_shop=TEST_SOURCE.replace('["price", "rate"]', '["price"]'))
    changed = publish(pytester)
    changed.stdout.fnmatch_lines(
        [
            "*: 2 placed, 0 kept, 1 retired",
            f"  retired  shop.pricing:apply_discount@return * probe {record['id']} *",
        ]
    )
    now = {r["signature"] for r in standing(suite)}
    assert SECOND.signature in now
    assert REQUEST.signature not in now
    assert len(now) == 2


def test_publish_refuses_a_suite_that_does_not_collect(
    pytester: pytest.Pytester, suite: HubProcess
) -> None:
    publish(pytester)
    pytester.makepyfile(test_broken="import no_such_module_here\n")
    result = publish(pytester)
    result.stdout.fnmatch_lines(["*collection had 1 error(s): nothing published*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert len(standing(suite)) == 1  # nothing retired


def test_publish_refuses_a_marker_without_service(
    pytester: pytest.Pytester, suite: HubProcess
) -> None:
    result = pytester.run(sys.executable, "-m", "pytest_runtime", "publish")
    result.stdout.fnmatch_lines(["*names no service: publishing needs one*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR


def test_pr_check_reads_standing_evidence_without_waiting(
    pytester: pytest.Pytester, suite: HubProcess
) -> None:
    publish(pytester)
    (record,) = standing(suite)
    source = suite.register("shop")
    suite.post_hits(source, standing_hits(record["id"], REQUEST.signature, REQUEST.location, 12))
    result = pytester.runpytest_subprocess(
        "--runtime-probe", "--runtime-service", "shop", "--runtime-wait", "60"
    )
    result.stdout.fnmatch_lines(
        [
            "runtime: standing evidence of service shop, version 1.0 (live now): 1 probe(s) "
            "read at once (no wait), 12 sampled hit(s), hits from * to *; 0 probe(s) placed "
            "on demand",
        ]
    )
    result.stdout.fnmatch_lines(["DIVERGED test_shop.py::test_discount*", "*price: None*"])
    assert "waiting for production hits" not in result.stdout.str()
    # nothing was placed or removed: the standing probe is the only probe
    client = HubClient(suite.url, CLIENT_TOKEN)
    try:
        assert [p["id"] for p in client.list_probes(state=None)] == [record["id"]]
    finally:
        client.close()


def test_pr_check_waits_only_for_the_new_marker(
    pytester: pytest.Pytester, suite: HubProcess
) -> None:
    publish(pytester)
    (record,) = standing(suite)
    source = suite.register("shop")
    suite.post_hits(source, standing_hits(record["id"], REQUEST.signature, REQUEST.location, 12))
    pytester.makepyfile(test_rate=SECOND_SOURCE)  # the PR adds a marker
    stop = threading.Event()

    def sensor() -> None:
        client = HubClient(suite.url, CLIENT_TOKEN)
        try:
            while not stop.is_set():
                placed = [p for p in client.find_probes(SECOND.signature) if not p["standing"]]
                if placed:
                    hits = [
                        {
                            "probe_id": placed[0]["id"],
                            "signature": SECOND.signature,
                            "kind": "snapshot",
                            "location": SECOND.location,
                            "ts": time.time() + n * 0.001,
                            "hit_id": f"new-{n}",
                            "captures": {"rate": 0.5},
                        }
                        for n in range(12)
                    ]
                    suite.post_hits(source, hits)
                    return
                stop.wait(0.1)
        finally:
            client.close()

    thread = threading.Thread(target=sensor, daemon=True)
    thread.start()
    try:
        result = pytester.runpytest_subprocess(
            "--runtime-probe",
            "--runtime-service",
            "shop",
            "--runtime-wait",
            "30",
            "--runtime-min-hits",
            "10",
        )
    finally:
        stop.set()
        thread.join(10)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        ["*1 probe(s) read at once (no wait), 12 sampled hit(s), *; 1 probe(s) placed on demand"]
    )
    # the wait counts only the new marker's probe
    result.stdout.fnmatch_lines(
        ["runtime: waiting for production hits: 1/1 probes complete, 1 source(s), hits 10/10*"]
    )
    assert "/2 probes" not in out
    result.stdout.fnmatch_lines(["DIVERGED test_shop.py::test_discount*"])
    result.stdout.fnmatch_lines(["runtime probes: 0 violated, 1 diverged, 0 inconclusive, 1 ok"])


def test_pr_check_compares_with_the_version_asked(
    pytester: pytest.Pytester, suite: HubProcess
) -> None:
    publish(pytester)
    (record,) = standing(suite)
    old = suite.register("shop")  # version 1.0
    body = {"service": "shop", "version": "2.0", "host": "h2", "pid": 2}
    new = suite.request("POST", "/v1/sensors/register", token=suite.sensor_token, json=body)
    suite.post_hits(old, standing_hits(record["id"], REQUEST.signature, REQUEST.location, 12))
    fresh = standing_hits(record["id"], REQUEST.signature, REQUEST.location, 26)[20:]
    for hit in fresh:
        hit["captures"]["price"] = 7  # version 2.0 never sees a None
    suite.post_hits(str(new["source_id"]), fresh)

    chosen = pytester.runpytest_subprocess(
        "--runtime-probe", "--runtime-service", "shop", "--runtime-version", "2.0",
        "--runtime-min-hits", "5",
    )  # fmt: skip
    chosen.stdout.fnmatch_lines(
        ["runtime: standing evidence of service shop, version 2.0 (--runtime-version): 1 probe(s) "
         "read at once (no wait), 6 sampled hit(s), *"]
    )  # fmt: skip
    chosen.stdout.fnmatch_lines(["runtime probes: 0 violated, 0 diverged, 0 inconclusive, 1 ok"])
    few = pytester.runpytest_subprocess(
        "--runtime-probe", "--runtime-service", "shop", "--runtime-version", "2.0"
    )
    few.stdout.fnmatch_lines(
        ["shop.pricing:apply_discount@return: its standing probe (standing-*) has 6 hit(s) of "
         "version 2.0 (--runtime-version), fewer than min hits 10: *"]
    )  # fmt: skip
    few.stdout.fnmatch_lines(["runtime probes: 0 violated, 0 diverged, 1 inconclusive, 0 ok"])

    every = pytester.runpytest_subprocess(
        "--runtime-probe", "--runtime-service", "shop", "--runtime-version", "any"
    )
    every.stdout.fnmatch_lines(
        ["*every version (--runtime-version any): 1 probe(s) read at once (no wait), 18 sampled*"]
    )
    every.stdout.fnmatch_lines(["DIVERGED test_shop.py::test_discount*18 production hits*"])


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (("-k", "discount"), "-k"),
        (("--deselect", "test_shop.py::test_discount"), "--deselect"),
    ],
)
def test_publish_refuses_a_partial_collection(
    pytester: pytest.Pytester, suite: HubProcess, args: tuple[str, ...], named: str
) -> None:
    publish(pytester)
    result = publish(pytester, *args)
    result.stdout.fnmatch_lines([f"*--runtime-publish with {named}*"])
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert len(standing(suite)) == 1  # nothing retired


def test_publish_with_xdist_options_reads_every_marker(
    pytester: pytest.Pytester, suite: HubProcess
) -> None:
    """-n in a project's addopts must not make publishing read no marker (retiring all)."""
    publish(pytester)
    result = publish(pytester, "-n", "2")
    result.stdout.fnmatch_lines(["*: 0 placed, 1 kept, 0 retired"])
    assert len(standing(suite)) == 1


def test_publish_ignores_a_runtime_probe_in_addopts(
    pytester: pytest.Pytester, suite: HubProcess
) -> None:
    pytester.makeini("[pytest]\naddopts = --runtime-probe --runtime-wait 60\n")
    result = publish(pytester)
    result.stdout.fnmatch_lines(["*: 1 placed, 0 kept, 0 retired"])
    assert result.ret == 0
    assert "waiting" not in result.stdout.str()


EXPECTING_SOURCE = """
import pytest
from shop.pricing import apply_discount

@pytest.mark.runtime_probe("shop.pricing:apply_discount", capture=["price", "rate"],
                           expect="0 <= result <= price")
def test_discount():
    assert apply_discount(10, 0.5) == 5
"""
EXPECTING = parse_probe_args(
    ("shop.pricing:apply_discount",),
    {"capture": ["price", "rate"], "expect": "0 <= result <= price"},
)


def expect_hits(probe_id: str, signature: str, location: str, start: int, count: int) -> Any:
    return [
        {
            "probe_id": probe_id,
            "signature": signature,
            "kind": "snapshot",
            "location": location,
            "ts": time.time() + n * 0.001,
            "hit_id": f"ex-{probe_id[-6:]}-{start + n}",
            "captures": {"price": 10, "rate": 2.0},
            "expect": {"ok": False, "error": None},
        }
        for n in range(count)
    ]


def test_pr_check_reads_the_standing_counters_after_waiting_for_a_new_marker(
    pytester: pytest.Pytester, suite: HubProcess
) -> None:
    """The standing probes' counters are read after the wait, with their hits: counters read
    when the run began would leave the hits of the wait uncounted (a false lower bound)."""
    pytester.makepyfile(test_shop=EXPECTING_SOURCE)
    publish(pytester)
    (record,) = standing(suite)
    source = suite.register("shop")
    sid = str(record["id"])
    loc = EXPECTING.location
    suite.post_hits(source, expect_hits(sid, EXPECTING.signature, loc, 0, 10))
    counters = {"probe_id": sid, "state": "installed", "reason": None}
    suite.post_statuses(source, [{**counters, "hits": 10, "evaluations": 100, "violations": 10}])
    pytester.makepyfile(test_rate=SECOND_SOURCE)  # the PR adds a marker
    stop = threading.Event()

    def sensor() -> None:
        client = HubClient(suite.url, CLIENT_TOKEN)
        try:
            while not stop.is_set():
                placed = [p for p in client.find_probes(SECOND.signature) if not p["standing"]]
                if placed:
                    new = str(placed[0]["id"])
                    # production goes on while the run waits: the standing probe gets 20 more
                    # violating hits, and the heartbeat that counts them
                    suite.post_hits(source, expect_hits(sid, EXPECTING.signature, loc, 10, 20))
                    hits = standing_hits(new, SECOND.signature, SECOND.location, 12)
                    for hit in hits:
                        hit["ts"] = time.time()
                    suite.post_hits(source, hits)
                    suite.post_statuses(
                        source,
                        [
                            {**counters, "hits": 30, "evaluations": 300, "violations": 30},
                            {"probe_id": new, "state": "installed", "reason": None, "hits": 12},
                        ],
                    )
                    return
                stop.wait(0.1)
        finally:
            client.close()

    thread = threading.Thread(target=sensor, daemon=True)
    thread.start()
    try:
        result = pytester.runpytest_subprocess(
            "--runtime-probe", "--runtime-service", "shop", "--runtime-wait", "30",
            "--runtime-min-hits", "10",
        )  # fmt: skip
    finally:
        stop.set()
        thread.join(10)
    result.stdout.fnmatch_lines(["*read at once (no wait)*; 1 probe(s) placed on demand"])
    result.stdout.fnmatch_lines(
        [
            "VIOLATED test_shop.py::test_discount*30 production hits*",
            "    high violation: expectation '0 <= result <= price' failed on 30 of 300 "
            "evaluations (10.0%) on 1 source *; 30 violating hits captured",
        ]
    )
    assert "not counted" not in result.stdout.str()
