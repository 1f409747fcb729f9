"""Accuracy of the verdicts (issue 12): real services, real traffic, expected verdicts asserted.

Two services of different kinds run with the sensor attached the way users attach it: a WSGI
ledger under gunicorn (2 workers) and an ASGI profile service under uvicorn (2 workers), both
through ``python -m sensor run --`` with the sensor's default settings (CPU budget included),
against one real hub. Seeded traffic (``accuracy_traffic.py``) sends each class of production
state that the issue names to a minority of calls, next to noise-only controls. The services'
own tests (``services/tests``) pass on tidy inputs; they run three times in a subprocess
``pytest --runtime-probe`` while the traffic continues, and every case below asserts the
verdict a test author expects from the issue's text, read from the JSON report.
"""

from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
from accuracy_support import gunicorn, run_suite, uvicorn, wait_until
from accuracy_traffic import (
    LEDGER_VIOLATIONS_PER_10,
    PROFILE_STRING_CLASSES,
    PROFILE_VIOLATIONS_PER_10,
    Traffic,
    ledger_payload,
    profile_payload,
)
from hub_process import HubProcess
from shared_once import shared_once

pytestmark = [pytest.mark.accuracy, pytest.mark.integration]

RUNS = 3  #: the same suite, three times, against the same live services
MIN_HITS = 40  #: production hits wanted per probe (3/40: an unseen state rarer than 7.5%)
WAIT = 30  #: longest wait for them, in seconds (a bound, not a sleep: the run ends sooner)
TRAFFIC_RATE = 50.0  #: requests per second to each service
TRAFFIC_LIMIT = 12_000  #: and at most this many (4 minutes): bounded even if a run hangs
#: How far a printed violation rate may be from the traffic's true rate: any window of N
#: consecutive requests is within 2/N of it (N >= MIN_HITS here), the rest is the margin for
#: calls in flight when the counters are read.
RATE_TOLERANCE = 0.05

# ---------------------------------------------------------------------------- production


def _produce(workdir: Path) -> dict[str, Any]:
    """Hub, both services, traffic; the suite RUNS times; everything stopped on the way out."""
    workdir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        hub = HubProcess(
            workdir / "hub.db",
            "--heartbeat-interval", "1", "--poll-wait", "1", "--sqlite-synchronous", "NORMAL",
        ).start()  # fmt: skip
        stack.callback(hub.stop)
        ledger = gunicorn(hub.url, workdir)
        stack.callback(ledger.stop)
        profiles = uvicorn(hub.url, workdir)
        stack.callback(profiles.stop)
        # gunicorn: the master and two workers; uvicorn: the supervisor and two workers.
        ledger.wait_ready(hub.url, sources=3)
        profiles.wait_ready(hub.url, sources=3)
        traffic = {
            "ledger": Traffic(
                ledger.url, "/book", ledger_payload, rate=TRAFFIC_RATE, limit=TRAFFIC_LIMIT
            ),
            "profiles": Traffic(
                profiles.url, "/profile", profile_payload, rate=TRAFFIC_RATE, limit=TRAFFIC_LIMIT
            ),
        }
        for loop in traffic.values():
            loop.start()
            stack.callback(loop.stop)
        for name, loop in traffic.items():
            wait_until(f"{name} traffic answered ({loop.failures})", loop.warm, 20)
        runs = [
            run_suite(hub.url, workdir / f"run{n}", wait=WAIT, min_hits=MIN_HITS)
            for n in range(RUNS)
        ]
        unnamed = run_suite(hub.url, workdir / "unnamed", "tests_unnamed", wait=3, min_hits=5)
        capped = run_suite(hub.url, workdir / "capped", "tests_capped", wait=10, min_hits=MIN_HITS)
        return {
            "runs": runs,
            "unnamed": unnamed,
            "capped": capped,
            "traffic": {
                name: {
                    "sent": loop.sent,
                    "answered": loop.answered,
                    "errors": loop.errors,
                    "failures": loop.failures,
                }
                for name, loop in traffic.items()
            },
            "logs": {"ledger": ledger.log(), "profiles": profiles.log()},
        }


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result: dict[str, Any] = shared_once(tmp_path_factory.getbasetemp(), "accuracy", _produce)
    return result


@pytest.fixture(scope="module")
def first(production: dict[str, Any]) -> dict[str, Any]:
    """The first run: the one every case is asserted on (the others are for stability)."""
    run: dict[str, Any] = production["runs"][0]
    assert run["report"] is not None, f"no JSON report was written:\n{run['output'][-6000:]}"
    return run


# ---------------------------------------------------------------------------- helpers


def entry(run: dict[str, Any], test: str) -> dict[str, Any]:
    """The report entry of one marked test (one probe per test in these services)."""
    found = [r for r in run["report"]["results"] if r["nodeid"].rsplit("::", 1)[-1] == test]
    assert len(found) == 1, f"{test}: {len(found)} report entries\n{_tail(run)}"
    return found[0]


def _tail(run: dict[str, Any]) -> str:
    return str(run["output"])[-4000:]


def show(result: dict[str, Any]) -> str:
    """The entry for a failure message, bounded."""
    return json.dumps(result, indent=1, sort_keys=True, ensure_ascii=False)[:5000]


def divergences(
    result: dict[str, Any], kind: str | None = None, path: str | None = None
) -> list[dict[str, Any]]:
    return [
        d
        for d in result["divergences"]
        if (kind is None or d["kind"] == kind) and (path is None or d["path"] == path)
    ]


def kinds(result: dict[str, Any]) -> set[str]:
    return {d["kind"] for d in result["divergences"]}


def names(divergence: dict[str, Any], *words: str) -> bool:
    """True when the divergence's key or message names any of ``words`` (case-insensitive)."""
    text = f"{divergence['key']} {divergence['message']}".lower()
    return any(word.lower() in text for word in words)


def outcome(run: dict[str, Any], test: str, module: str) -> tuple[str, str]:
    """(outcome, message) of a test; a collection error of its module counts as its error."""
    for exact in (True, False):
        for case in run["testcases"]:
            if case["name"] == test or (not exact and case["name"].startswith(test + "[")):
                return case["outcome"], case["message"]
    for case in run["testcases"]:
        if case["name"] == f"tests.{module}" and case["outcome"] == "error":
            return "error", case["message"]
    raise AssertionError(f"{test}: not in the JUnit report\n{_tail(run)}")


def assert_ok_control(run: dict[str, Any], test: str) -> None:
    """A noise-only control: ok, no divergence, over enough production hits to mean it."""
    result = entry(run, test)
    assert result["verdict"] == "ok", show(result)
    assert result["divergences"] == [], show(result)
    assert result["hits"]["production"] >= MIN_HITS, show(result)


def assert_value_class(run: dict[str, Any], test: str, path: str) -> None:
    """A value class production has and the tests never had: a named low/medium divergence."""
    result = entry(run, test)
    assert result["verdict"] == "diverged", show(result)
    here = [d for d in result["divergences"] if d["path"] == path]
    assert here, f"no divergence at {path!r}: {show(result)}"
    assert all(d["severity"] in ("low", "medium") for d in here), show(result)


_RATE_RE = re.compile(r"([\d,]+) of ([\d,]+) evaluations \((\d+(?:\.\d+)?)%(?:: [^)]*)?\)")


def assert_rate_from_counters(run: dict[str, Any], test: str, true_rate: float) -> None:
    """violated; the printed rate is the sensors' counted rate, near the traffic's true rate.

    Not the share of captured hits: violations are captured up to 10/s and passing states at
    1/s, so that share is several times the true rate.
    """
    result = entry(run, test)
    assert result["verdict"] == "violated", show(result)
    [violation] = divergences(result, "violation")
    assert violation["severity"] == "high", show(violation)
    match = _RATE_RE.search(violation["message"])
    assert match, f"the violation does not say 'N of M evaluations (P%)': {show(violation)}"
    failed, evaluated = (int(group.replace(",", "")) for group in match.groups()[:2])
    printed = float(match.group(3)) / 100
    assert evaluated >= MIN_HITS, show(violation)
    assert abs(printed - failed / evaluated) <= 0.001, violation["message"]
    assert abs(failed / evaluated - true_rate) <= RATE_TOLERANCE, (failed, evaluated, true_rate)


# ---------------------------------------------------------------------------- numbers


def test_ledger_violation_rate_is_counted_not_sampled(first: dict[str, Any]) -> None:
    assert_rate_from_counters(first, "test_reserve_leaves_stock", LEDGER_VIOLATIONS_PER_10 / 10)


def test_profiles_violation_rate_is_counted_not_sampled(first: dict[str, Any]) -> None:
    assert_rate_from_counters(first, "test_reserve_seats", PROFILE_VIOLATIONS_PER_10 / 10)


def test_violations_are_violated_with_high_severity(first: dict[str, Any]) -> None:
    for test in ("test_reserve_leaves_stock", "test_reserve_seats"):
        result = entry(first, test)
        assert result["verdict"] == "violated", show(result)
        assert [d["severity"] for d in divergences(result, "violation")] == ["high"], show(result)


def test_violation_share_in_the_json_report_is_the_counted_rate(first: dict[str, Any]) -> None:
    for test, per_10 in (
        ("test_reserve_leaves_stock", LEDGER_VIOLATIONS_PER_10),
        ("test_reserve_seats", PROFILE_VIOLATIONS_PER_10),
    ):
        [violation] = divergences(entry(first, test), "violation")
        assert abs(violation["share"] - per_10 / 10) <= RATE_TOLERANCE, show(violation)


def test_ok_and_diverged_results_state_their_confidence_bound(first: dict[str, Any]) -> None:
    checked = 0
    for result in first["report"]["results"]:
        if result["verdict"] not in ("ok", "diverged"):
            continue
        bounds = list(_numbers_under({k: v for k, v in result.items() if k != "divergences"}))
        assert bounds, f"no confidence bound: {show(result)}"
        # About 3/n: over the captured hits for unseen states (there may be another over the
        # expectation's evaluations, which exclude exception exits), and never 0 or over 1.
        n = result["hits"]["production"]
        assert all(0 < b <= 1 for b in bounds), (bounds, show(result))
        assert min(bounds) <= 3.05 / n, (bounds, n, show(result))
        checked += 1
    assert checked >= 10


_BOUND_KEY = re.compile(r"bound|^below$|rarer")  # not counts.below_threshold


def _numbers_under(value: Any, inside: bool = False) -> Any:
    """Every number in ``value`` under a key that names a bound ("bound", "below", "rarer")."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers_under(item, inside or bool(_BOUND_KEY.search(str(key).lower())))
    elif isinstance(value, list):
        for item in value:
            yield from _numbers_under(item, inside)
    elif inside and isinstance(value, int | float) and not isinstance(value, bool):
        yield value


# ---------------------------------------------------------------------------- blind spots


def test_exception_no_test_raised_is_a_high_divergence(first: dict[str, Any]) -> None:
    result = entry(first, "test_parse_quantity")
    assert result["verdict"] == "diverged", show(result)
    found = divergences(result, "exception")
    assert any(d["severity"] == "high" and names(d, "ValueError") for d in found), show(result)
    assert not divergences(result, "violation"), show(result)


def test_exception_leaving_a_coroutine_is_a_high_divergence(first: dict[str, Any]) -> None:
    result = entry(first, "test_fetch_avatar")
    assert result["verdict"] == "diverged", show(result)
    found = divergences(result, "exception")
    assert any(d["severity"] == "high" and names(d, "LookupError") for d in found), show(result)


def test_declared_exception_is_not_flagged(first: dict[str, Any]) -> None:
    state, message = outcome(first, "test_coupon_percent_declares_key_error", "test_ledger_raises")
    assert state == "passed", message
    result = entry(first, "test_coupon_percent_declares_key_error")
    assert result["verdict"] == "ok", show(result)
    assert result["hits"]["production"] >= MIN_HITS, show(result)


def test_aware_datetime_where_tests_had_naive(first: dict[str, Any]) -> None:
    assert_value_class(first, "test_book_slot_naive", "start")


def test_other_utc_offset(first: dict[str, Any]) -> None:
    assert_value_class(first, "test_book_slot_utc", "start")


def test_naive_datetime_where_tests_had_aware(first: dict[str, Any]) -> None:
    assert_value_class(first, "test_local_day_aware", "moment")


@pytest.mark.parametrize("field", list(PROFILE_STRING_CLASSES))
def test_string_value_class_is_named(first: dict[str, Any], field: str) -> None:
    assert_value_class(first, "test_register_profile", f"profile.{field}")


def test_quantity_sign_change_is_named(first: dict[str, Any]) -> None:
    result = entry(first, "test_line_total")
    assert "quantity" not in result["noise"], show(result)
    assert result["verdict"] == "diverged", show(result)
    found = divergences(result, "range", "quantity")
    assert any(names(d, "negative") for d in found), show(result)


def test_quantity_magnitude_change_is_named(first: dict[str, Any]) -> None:
    result = entry(first, "test_bulk_total")
    assert "quantity" not in result["noise"], show(result)
    assert result["verdict"] == "diverged", show(result)
    found = divergences(result, "range", "quantity")
    assert any(names(d, "magnitude") for d in found), show(result)


def test_none_and_missing_key_are_high_shape_divergences(first: dict[str, Any]) -> None:
    result = entry(first, "test_shipping_label")
    assert result["verdict"] == "diverged", show(result)
    none = divergences(result, "shape", "customer.address")
    missing = divergences(result, "shape", "customer.postcode")
    assert any(d["key"] == "none" and d["severity"] == "high" for d in none), show(result)
    assert any(d["key"] == "missing" and d["severity"] == "high" for d in missing), show(result)


def test_decimal_to_float_is_a_high_type_divergence(first: dict[str, Any]) -> None:
    result = entry(first, "test_apply_tax")
    assert result["verdict"] == "diverged", show(result)
    found = divergences(result, "shape", "amount")
    assert any(d["severity"] == "high" and names(d, "float") for d in found), show(result)


def test_branch_no_test_reaches_is_a_path_divergence(first: dict[str, Any]) -> None:
    result = entry(first, "test_refund_chargeback_branch")
    assert result["verdict"] == "diverged", show(result)
    assert any(d["severity"] == "high" for d in divergences(result, "path")), show(result)


def test_new_empty_category_value_is_one_divergence(first: dict[str, Any]) -> None:
    result = entry(first, "test_gift_wrap_styles")
    assert result["verdict"] == "diverged", show(result)
    found = divergences(result, path="style")
    assert len(found) == 1, show(result)
    assert found[0]["severity"] in ("low", "medium"), show(result)


# ---------------------------------------------------------------------------- noise controls


@pytest.mark.parametrize(
    "test",
    [
        "test_load_order_by_id",
        "test_trace_request_ids",
        "test_cache_entry_token",
        "test_record_latency_jitter",
        "test_label_item_free_text",
        "test_stamp_event_timestamps",
        "test_pack_every_size",
        "test_greet_free_text",
    ],
)
def test_noise_only_control_stays_ok(first: dict[str, Any], test: str) -> None:
    assert_ok_control(first, test)


def test_per_worker_counter_stays_ok(first: dict[str, Any]) -> None:
    assert_ok_control(first, "test_next_invoice_counter")


def test_new_value_of_a_single_tested_category_is_not_flagged(first: dict[str, Any]) -> None:
    assert_ok_control(first, "test_pick_vessel_mug")


# ---------------------------------------------------------------------------- misconfiguration


def test_marker_on_unimportable_module_fails_the_test(first: dict[str, Any]) -> None:
    state, message = outcome(
        first, "test_marker_on_a_module_the_tests_cannot_import", "test_ledger_misconfig_import"
    )
    assert state in ("failed", "error"), message
    assert "acc_vendor_hooks" in message, message
    assert "location" in message, message


def test_capture_name_that_does_not_exist_fails_the_test(first: dict[str, Any]) -> None:
    state, message = outcome(
        first, "test_capture_name_that_does_not_exist", "test_ledger_misconfig_capture"
    )
    assert state in ("failed", "error"), message
    # It names the argument, the value and what exists there.
    assert "capture" in message, message
    assert "quantity" in message, message
    assert "qty" in message, message
    for result in first["report"]["results"]:
        if result["nodeid"].endswith("::test_capture_name_that_does_not_exist"):
            assert result["verdict"] != "ok", show(result)


def test_probe_without_a_service_names_the_services(production: dict[str, Any]) -> None:
    run = production["unnamed"]
    assert run["returncode"] != 0, _tail(run)
    assert "acc-ledger" in run["output"], _tail(run)
    assert "acc-profiles" in run["output"], _tail(run)


def test_probe_disabled_on_every_source_says_why(production: dict[str, Any]) -> None:
    run = production["capped"]
    assert run["report"] is not None, _tail(run)
    result = entry(run, "test_probe_that_stops_collecting")
    assert result["verdict"] == "inconclusive", show(result)
    # What the verdict says (not the test's own name, which says it too).
    said = {k: v for k, v in result.items() if k not in ("nodeid", "test_file", "location")}
    text = json.dumps(said).lower()
    assert "max hits" in text or "max_hits" in text, show(result)


# ---------------------------------------------------------------------------- stability


def _verdicts(run: dict[str, Any]) -> dict[str, tuple[str, tuple[str, ...]]]:
    assert run["report"] is not None, _tail(run)
    return {
        f"{r['nodeid']} {r['location']}": (r["verdict"], tuple(sorted(kinds(r))))
        for r in run["report"]["results"]
    }


def _outcomes(run: dict[str, Any]) -> dict[str, str]:
    return {f"{c['module']}::{c['name']}": c["outcome"] for c in run["testcases"]}


def test_verdicts_are_the_same_in_three_runs(production: dict[str, Any]) -> None:
    runs = production["runs"]
    assert len(runs) == RUNS
    first, *others = [_verdicts(run) for run in runs]
    assert len(first) >= 20, first
    for n, other in enumerate(others, start=2):
        changed = {
            key: (first.get(key), other.get(key))
            for key in sorted(set(first) | set(other))
            if first.get(key) != other.get(key)
        }
        assert not changed, f"run {n} differs from run 1: {changed}"
    outcomes = [_outcomes(run) for run in runs]
    assert outcomes[1:] == outcomes[:1] * (RUNS - 1)


def test_no_case_is_inconclusive_in_any_run(production: dict[str, Any]) -> None:
    """Each run collected MIN_HITS per probe of every tidy test within the wait."""
    for n, run in enumerate(production["runs"], start=1):
        assert run["report"] is not None, _tail(run)
        short = [
            (r["nodeid"], r["hits"], r["hint"])
            for r in run["report"]["results"]
            if r["verdict"] == "inconclusive" and "misconfig" not in r["nodeid"]
        ]
        assert not short, (n, short)
