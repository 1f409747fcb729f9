"""Exceptions leaving a function at a ``@return`` probe: production, test time and raises=."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from pytest_runtime.markers import parse_probe_args

LOCATION = "shop.pricing:apply_discount"
PRICING = """
def apply_discount(price, rate):
    if rate > 1:
        raise ValueError("rate above 1")
    total = price - price * rate
    return total
"""
TESTS = """
import pytest
from shop.pricing import apply_discount

@pytest.mark.runtime_probe("shop.pricing:apply_discount", capture=["price", "rate"]{extra})
def test_discount():
    assert apply_discount(10, 0.5) == 5
    assert apply_discount(20, 0.5) == 10
{more}
"""
RAISING = """
    with pytest.raises(ValueError):
        apply_discount(10, 2)
"""


def evidence(n_ok: int = 30, n_exits: int = 10) -> str:
    """Production: calls that returned, and calls that left with ValueError (no result)."""
    request = parse_probe_args((LOCATION,), {"capture": ["price", "rate"]})
    now = time.time()
    records: list[dict[str, Any]] = [
        {
            "record": "header",
            "schema": "pytest-runtime/evidence",
            "version": 1,
            "created_at": now,
            "generator": "tests",
        },
        {"record": "probe", "probe": request.probe.to_dict()},
    ]
    for n in range(n_ok + n_exits):
        hit: dict[str, Any] = {
            "probe_id": request.probe.id,
            "signature": request.signature,
            "kind": "snapshot",
            "location": request.location,
            "ts": now - 60 + n * 0.01,
            "hit_id": f"prod-{n:03d}",
            "source": {"id": "web-1", "service": "shop"},
        }
        if n < n_ok:
            hit["captures"] = {"price": 10 + n % 11, "rate": 0.5}
        else:
            hit["captures"] = {"price": 10, "rate": 3.0}
            hit["exception"] = {"type": "ValueError", "message": "rate above 1"}
            hit["line"] = 4
        records.append({"record": "hit", "hit": hit})
    return "\n".join(json.dumps(r) for r in records) + "\n"


def setup(pytester: pytest.Pytester, extra: str = "", more: str = "") -> None:
    pytester.mkpydir("shop")
    pytester.path.joinpath("shop", "pricing.py").write_text(PRICING)
    pytester.makepyfile(test_shop=TESTS.format(extra=extra, more=more))
    pytester.path.joinpath("prod.jsonl").write_text(evidence())


def test_an_exception_no_test_raised_is_a_high_divergence_with_a_hint(
    pytester: pytest.Pytester,
) -> None:
    setup(pytester)
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl")
    result.stdout.fnmatch_lines(
        [
            "DIVERGED test_shop.py::test_discount  shop.pricing:apply_discount@return  40 "
            "production hits, 2 test hits; tests cover 1 of 1 production shape",
            "    high exception: ValueError raised in production at "
            "shop.pricing:apply_discount@return on at least 10 calls (captured hits; no "
            "exception counters in the evidence); no test raised it",
            "        exception ValueError: rate above 1",
            "        hits: prod-030, prod-031, prod-032 (+7 more)",
            "    reproduce: call shop.pricing:apply_discount@return with the state price=10, "
            "rate=3.0 (production hit prod-030); production raised ValueError: 'rate above 1'. "
            "If the tests expect it, raise it in a test (pytest.raises) or declare "
            "raises=['ValueError'] on the marker",
        ]
    )
    # The exits' missing result is no shape divergence of its own.
    assert "missing in production" not in result.stdout.str()


@pytest.mark.parametrize(
    ("raises", "verdict"),
    [("ValueError", "ok"), ("(KeyError, ValueError)", "ok"), ("'builtins.ValueError'", "ok"),
     ("KeyError", "diverged")],
)  # fmt: skip
def test_exceptions_the_marker_declares_are_not_divergences(
    pytester: pytest.Pytester, raises: str, verdict: str
) -> None:
    setup(pytester, extra=f", raises={raises}")
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl")
    counts = {"ok": "0 diverged, 0 inconclusive, 1 ok", "diverged": "1 diverged, 0 inconclusive"}
    result.stdout.fnmatch_lines([f"runtime probes: 0 violated, {counts[verdict]}*"])


def test_an_invalid_raises_argument_fails_collection_naming_it(pytester: pytest.Pytester) -> None:
    setup(pytester, extra=", raises='not a name'")
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl")
    result.stdout.fnmatch_lines(
        [
            "*test_shop.py::test_discount: runtime_probe argument 'raises': got 'not a name', "
            "expected an exception class, a dotted name such as 'decimal.InvalidOperation', or "
            "a tuple or list of them*"
        ]
    )
    assert result.ret == pytest.ExitCode.INTERRUPTED


def test_a_test_that_raises_on_purpose_makes_the_exception_a_test_time_state(
    pytester: pytest.Pytester,
) -> None:
    setup(pytester, more=RAISING)
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl")
    result.stdout.fnmatch_lines(["runtime probes: 0 violated, 0 diverged, 0 inconclusive, 1 ok"])
