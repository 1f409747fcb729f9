"""Hypothesis strategies drawn from production evidence (files and a real hub)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from plugin_support import HubProcess

CODE = """
from decimal import Decimal

def discount(price, coupon=None):
    if coupon == "FIXED":
        return price - Decimal("5")  # the seeded bug: below zero under 5
    return price
"""

# Production saw FIXED only on prices of 5 and more: the bug is one step away from its states.
PRODUCTION_RUN = """
import json, sys
from decimal import Decimal
sys.path.insert(0, sys.argv[1])
from sensor.engine import Engine
from pytest_runtime.evidence import Evidence, write
from pytest_runtime.markers import parse_probe_args
import pricing
hits = []
engine = Engine(cpu_budget=1.0)
probe = parse_probe_args(("pricing:discount",), {"replay": True, "expect": "result >= 0"}).probe
probe = probe.with_changes(limits={"rate": 1e9, "burst": 10**9})
assert str(engine.install(probe, on_hit=hits.append).state) == "installed"
for price, coupon in [("48.00", "FIXED"), ("12.50", "FIXED"), ("7.00", None), ("0", None),
                      ("19.99", "HALF"), ("12.50", "FIXED")]:
    pricing.discount(Decimal(price), coupon)
evidence = Evidence()
evidence.add_probe(probe.to_dict())
evidence.add_hits([hit.to_dict() for hit in hits])
write(sys.argv[2], evidence)
print(json.dumps([hit.to_dict() for hit in hits]))
"""

TESTS = """
from hypothesis import given, settings, HealthCheck
from pytest_runtime.strategies import production_examples, production_states
from pricing import discount

EXACT = production_states("pricing:discount", variables=["price", "coupon"], evidence={ev!r})
AROUND = production_states(
    "pricing:discount", variables=["price", "coupon"], evidence={ev!r}, around=True
)
SEEN = []

@production_examples(EXACT, "state")
@settings(max_examples=30, database=None)
@given(state=EXACT)
def test_exact_states_are_production_states(state):
    SEEN.append(state)
    assert discount(**state) >= 0

def test_every_run_started_from_the_production_states():
    from decimal import Decimal
    firsts = [tuple(s.items()) for s in SEEN[:5]]
    assert (("price", Decimal("0")), ("coupon", None)) in firsts
    assert len({{tuple(s.items()) for s in SEEN}}) == 5  # 5 distinct states, no invention

@settings(max_examples=300, database=None, suppress_health_check=list(HealthCheck))
@given(state=AROUND)
def test_neighbours_find_the_seeded_bug(state):
    assert discount(**state) >= 0
"""


@pytest.fixture
def evidence(tmp_path: Path) -> tuple[Path, list[dict[str, object]]]:
    prod = tmp_path / "prod"
    prod.mkdir()
    (prod / "pricing.py").write_text(CODE)
    out = tmp_path / "evidence.jsonl"
    run = subprocess.run(
        [sys.executable, "-c", PRODUCTION_RUN, str(prod), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    return out, json.loads(run.stdout)


def test_strategy_draws_production_states_and_its_neighbours_find_the_bug(
    pytester: pytest.Pytester, evidence: tuple[Path, list[dict[str, object]]]
) -> None:
    path, _ = evidence
    pytester.makepyfile(pricing=CODE, test_pricing=TESTS.format(ev=str(path)))
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_neighbours_find_the_seeded_bug*",
            "*AssertionError: assert Decimal('-*') >= 0",
            "*Failing test case: test_neighbours_find_the_seeded_bug(",
            "*state={'price': Decimal('*'), 'coupon': 'FIXED'},",
        ]
    )


def test_strategy_reads_the_hub_and_names_what_it_cannot_draw(
    pytester: pytest.Pytester,
    hub: HubProcess,
    evidence: tuple[Path, list[dict[str, object]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, hits = evidence
    source = hub.register("pricing")
    probe = json.loads(Path(str(evidence[0])).read_text().splitlines()[1])["probe"]
    hub.request("POST", "/v1/probes", json={"probe": probe, "selector": {}, "ttl": 600})
    redacted = dict(hits[0])
    redacted["hit_id"] = "redacted-1"
    redacted["arguments"] = {
        **hits[0]["arguments"],  # type: ignore[dict-item]
        "values": {"price": {"@t": "decimal.Decimal", "@redacted": "pattern"}, "coupon": "X"},
    }
    hub.post_hits(source, [*hits, redacted])
    pytester.makepyfile(
        pricing=CODE,
        test_hub=f"""
        from pytest_runtime.strategies import production_states

        def test_reads_the_hub():
            states = production_states("pricing:discount", hub={hub.url!r}).production.load()
            assert len(states.states) == 5
            assert states.skipped == {{"redacted": 1}}

        def test_no_state_is_a_clear_error():
            import pytest
            from pytest_runtime.errors import EvidenceError
            strategy = production_states("pricing:nowhere", hub={hub.url!r})
            with pytest.raises(EvidenceError, match="no production state to draw"):
                strategy.production.load()
        """,
    )
    pytester.syspathinsert()
    monkeypatch.setenv("SENSOR_CLIENT_TOKEN", hub.client_token)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def test_production_examples_gives_every_state_with_no_limit(
    pytester: pytest.Pytester, evidence: tuple[Path, list[dict[str, object]]]
) -> None:
    path, _ = evidence
    pytester.makepyfile(
        pricing=CODE,
        test_examples=f"""
        import pytest
        from hypothesis import Phase, given, settings
        from pytest_runtime.strategies import production_examples, production_states

        EXACT = production_states("pricing:discount", evidence={str(path)!r})
        SEEN = []

        @production_examples(EXACT, "state", limit=None)
        @settings(phases=[Phase.explicit], database=None)
        @given(state=EXACT)
        def test_collect(state):
            SEEN.append(state)

        def test_every_state_ran_once():
            # 6 production calls, 5 distinct states: all of them, and only them
            assert len(SEEN) == 5
            assert len({{tuple(sorted(s.items(), key=str)) for s in SEEN}}) == 5

        @pytest.mark.parametrize("limit", [0, -1, 2.5, "3"])
        def test_a_bad_limit_is_a_clear_error(limit):
            with pytest.raises(ValueError, match="limit="):
                production_examples(EXACT, "state", limit=limit)
        """,
    )
    pytester.syspathinsert()
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=6)
