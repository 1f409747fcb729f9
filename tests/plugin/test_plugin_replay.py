"""``--runtime-replay``: the PR's code called on production argument states, outcome by outcome.

Production is a real process running the sensor's engine on the production version of the
code (a replay probe, hits written to an evidence file); pytest then runs on another version.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

LOCATION = "prices:discount"
MARKER = {"capture": ["price", "coupon"], "expect": "0 <= result <= price", "replay": True}

PRODUCTION_CODE = """
from decimal import Decimal

class Cart:
    def __init__(self, total):
        self.total = total

def discount(price, coupon=None, currency="USD"):
    if coupon == "FIXED":
        return price - Decimal("5")  # the bug: below zero for small prices
    if coupon == "HALF":
        return (price / 2).quantize(Decimal("0.01"))
    return price

def cart_total(cart, token):
    return cart.total
"""

FIXED = PRODUCTION_CODE.replace(
    'return price - Decimal("5")  # the bug: below zero for small prices',
    'return max(Decimal(0), price - Decimal("5"))',
)
# A refactor that keeps the expectation but rounds halves to 10 cents: a behaviour change on
# the odd-cent prices production sees and no test has.
CHANGED = FIXED.replace('quantize(Decimal("0.01"))', 'quantize(Decimal("0.1"))')

PRODUCTION_RUN = """
import json, sys
from decimal import Decimal
sys.path.insert(0, sys.argv[1])
from sensor.engine import Engine
from pytest_runtime.evidence import Evidence, write
from pytest_runtime.markers import parse_probe_args

hits = []
engine = Engine(cpu_budget=1.0)
import prices
for location, kwargs in json.loads(sys.argv[3]):
    probe = parse_probe_args((location,), kwargs).probe
    probe = probe.with_changes(limits={"rate": 1e9, "burst": 10**9})
    status = engine.install(probe, on_hit=hits.append)
    assert str(status.state) == "installed", status.reason
calls = [
    (Decimal("3.50"), "FIXED"), (Decimal("4.99"), "FIXED"), (Decimal("48.00"), "FIXED"),
    (Decimal("19.99"), "HALF"), (Decimal("7.33"), "HALF"), (Decimal("10.00"), "HALF"),
    (Decimal("12.00"), None), (Decimal("0"), None), (Decimal("12.00"), None),
]
for price, coupon in calls:
    prices.discount(price, coupon)
prices.cart_total(prices.Cart(Decimal("9.50")), "tok-8f7e6d5c4b3a")
evidence = Evidence()
evidence.add_hits([hit.to_dict() for hit in hits])
write(sys.argv[2], evidence)
print(len(hits))
"""

TESTS = """
from decimal import Decimal
import pytest
from prices import Cart, cart_total, discount

@pytest.mark.runtime_probe("prices:discount", capture=["price", "coupon"],
                           expect="0 <= result <= price", replay=True)
def test_discount():
    assert discount(Decimal("20"), "FIXED") == Decimal("15")

@pytest.mark.runtime_probe("prices:cart_total", expect="result >= 0", replay=True)
def test_cart_total():
    assert cart_total(Cart(Decimal("1")), "t") == Decimal("1")
"""


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    """Hits of the replay probes, from a real process running the production code."""
    prod = tmp_path / "prod"
    prod.mkdir()
    (prod / "prices.py").write_text(PRODUCTION_CODE)
    out = tmp_path / "evidence.jsonl"
    probes = [
        [LOCATION, MARKER],
        ["prices:cart_total", {"expect": "result >= 0", "replay": True}],
    ]
    run = subprocess.run(
        [sys.executable, "-c", PRODUCTION_RUN, str(prod), str(out), json.dumps(probes)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "10"
    return out


def _project(pytester: pytest.Pytester, code: str, conftest: str = "") -> None:
    pytester.makepyfile(prices=code)
    pytester.makepyfile(test_prices=TESTS)
    if conftest:
        pytester.makeconftest(textwrap.dedent(conftest))
    pytester.syspathinsert()


def test_replay_verifies_a_fix_on_production_states(
    pytester: pytest.Pytester, evidence: Path
) -> None:
    _project(pytester, FIXED)
    result = pytester.runpytest_subprocess(
        "--runtime-evidence", str(evidence), "--runtime-replay", "50", "-rA"
    )
    result.assert_outcomes(passed=2)
    # 8 distinct states (one duplicate); 2 of the FIXED ones went below zero in production
    result.stdout.fnmatch_lines(
        [
            "*replay prices:discount@return: the fix holds on 8 production states; 2 of them "
            "violated the expectation in production*"
        ]
    )


def test_replay_fails_the_test_when_the_bug_is_still_there(
    pytester: pytest.Pytester, evidence: Path
) -> None:
    _project(pytester, PRODUCTION_CODE)
    result = pytester.runpytest_subprocess(
        "--runtime-evidence", str(evidence), "--runtime-replay", "50"
    )
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*replay prices:discount@return: the expectation fails on 2 of 8 production "
            "state(s) with this code; 2 of them failed in production too*",
            "*production hit *: price=Decimal('3.50'), coupon='FIXED', currency='USD'",
            "*expectation False on this code's outcome (returned Decimal('-1.50'))",
        ]
    )


def test_replay_catches_a_behaviour_change_on_states_no_test_had(
    pytester: pytest.Pytester, evidence: Path
) -> None:
    _project(pytester, CHANGED)
    result = pytester.runpytest_subprocess(
        "--runtime-evidence", str(evidence), "--runtime-replay", "50", "-rA"
    )
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*behaviour changed on 3 of 8 production states*",
            "*production hit *: price=Decimal('19.99'), coupon='HALF', currency='USD'",
            "*production returned Decimal('10.00'); this code returned Decimal('10.0')",
            "*production -> this code:*",
            "*root?'result'?: value changed Decimal('3.66') -> Decimal('3.7')*",
        ]
    )
    strict = pytester.runpytest_subprocess(
        "--runtime-evidence", str(evidence), "--runtime-replay", "50", "--runtime-strict"
    )
    strict.assert_outcomes(passed=1, failed=1)


def test_replay_counts_and_names_states_it_cannot_rebuild(
    pytester: pytest.Pytester, evidence: Path
) -> None:
    _project(pytester, FIXED)
    result = pytester.runpytest_subprocess(
        "--runtime-evidence", str(evidence), "--runtime-replay", "50", "-rA"
    )
    result.assert_outcomes(passed=2)
    # the cart has no registered constructor; (the token is redacted, but the cart fails first)
    result.stdout.fnmatch_lines(
        [
            "*replay prices:cart_total@return: no production state could be replayed*",
            "*1 state(s) not rebuildable: 1 no-constructor (cart: no registered constructor "
            "for prices.Cart*",
        ]
    )
    with_constructor = """
        from prices import Cart
        def pytest_runtime_constructors(config):
            return {"prices.Cart": lambda fields: Cart(fields["total"])}
    """
    _project(pytester, FIXED, with_constructor)
    result = pytester.runpytest_subprocess(
        "--runtime-evidence", str(evidence), "--runtime-replay", "50", "-rA"
    )
    result.assert_outcomes(passed=2)
    # the cart is rebuilt now; the token is redacted and is never replayed as its placeholder
    result.stdout.fnmatch_lines(
        ["*1 state(s) not rebuildable: 1 redacted (token: redacted (name): str)*"]
    )


def test_replay_needs_evidence(pytester: pytest.Pytester) -> None:
    _project(pytester, FIXED)
    result = pytester.runpytest_subprocess("--runtime-replay", "5")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--runtime-replay*production states to replay*"])


PARAMETRIZED = """
from decimal import Decimal
import pytest
from prices import discount

REPLAY = pytest.mark.runtime_probe("prices:discount", capture=["price", "coupon"],
                                   expect="0 <= result <= price", replay=True)

@pytest.mark.parametrize("price", [
    pytest.param(Decimal("20"), id="first"),
    pytest.param(Decimal("30"), id="second", marks=REPLAY),
])
def test_case_marker(price):
    assert discount(price, "FIXED") == price - 5

@REPLAY
@pytest.mark.parametrize("price", [Decimal("20"), Decimal("30")], ids=["twenty", "thirty"])
def test_function_marker(price):
    assert discount(price, "FIXED") == price - 5
"""


def test_replay_failure_names_the_case_whose_marker_failed(
    pytester: pytest.Pytester, evidence: Path
) -> None:
    pytester.makepyfile(prices=PRODUCTION_CODE)
    pytester.makepyfile(test_prices=PARAMETRIZED)
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess(
        f"--runtime-evidence={evidence}", "--runtime-replay", "50",
        "--runtime-report-json", "report.json", "-rA",
    )  # fmt: skip
    # the case that carries the replay marker fails, and the report names that case
    result.assert_outcomes(passed=2, failed=2)
    out = result.stdout.str()
    assert "PASSED test_prices.py::test_case_marker[first]" in out
    assert "FAILED test_prices.py::test_case_marker[second]" in out
    replays = json.loads((pytester.path / "report.json").read_text())["replay"]
    assert sorted(r["nodeid"] for r in replays) == [
        "test_prices.py::test_case_marker[second]",
        "test_prices.py::test_function_marker",
    ]
    result.stdout.fnmatch_lines(
        ["-* runtime replay -*", "test_prices.py::test_case_marker[second]"]
    )
    # a marker on the function is replayed once for all its cases; the case that ran it says so
    result.stdout.fnmatch_lines(
        [
            "*_ test_function_marker?twenty? _*",
            "replay of the marker of test_function_marker, shared by its parametrized cases "
            "(replayed once, with this case):",
            "replay prices:discount@return: the expectation fails on 2 of 8 production *",
        ]
    )
    assert "PASSED test_prices.py::test_function_marker[thirty]" in out
