"""Publishing: the plan that makes a service's standing set equal to the suite's markers."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_runtime import publish
from pytest_runtime.errors import RuntimeProbeError
from pytest_runtime.markers import parse_probe_args

A = parse_probe_args(("shop.pricing:apply_discount",), {"capture": ["price"]})
B = parse_probe_args(("shop.pricing:order_total",), {"capture": ["order"]})


class Listing:
    """What plan() reads: the hub's active standing probes (the answer of GET /v1/probes)."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    def list_probes(self, *, state: str | None, standing: bool | None) -> list[dict[str, Any]]:
        assert (state, standing) == ("active", True)
        return self.records


def record(probe_id: str, signature: str, service: str, created: float) -> dict[str, Any]:
    return {
        "id": probe_id,
        "signature": signature,
        "selector": {"service": service},
        "created_at": created,
        "probe": {"location": "m:f@return"},
        "hit_count": 0,
    }


def test_plan_keeps_places_and_retires_by_signature_and_selector() -> None:
    wanted = publish.wanted_from([("t.py::test_a", A), ("t.py::test_b", B)], "shop")
    hub = Listing(
        [
            record("old-a", A.signature, "shop", 1.0),
            record("twin-a", A.signature, "shop", 2.0),  # two publishes at once
            record("gone", "sig-removed", "shop", 1.0),
            record("other", "sig-x", "billing", 1.0),  # another service: not touched
        ]
    )
    plan = publish.plan(hub, wanted, ["shop"])
    assert [entry.request.signature for entry in plan.place] == [B.signature]
    assert [(entry.request.signature, r["id"]) for entry, r in plan.keep] == [
        (A.signature, "old-a")
    ]
    assert sorted(r["id"] for r in plan.retire) == ["gone", "twin-a"]


def test_standing_probe_gets_always_on_budgets_and_no_end() -> None:
    heavy = parse_probe_args(
        ("shop.pricing:apply_discount",), {"capture": ["price"], "rate": 200, "max_hits": 50}
    )
    probe = publish.standing_probe(heavy, service="shop", tests='["t.py::test_a"]')
    assert probe.signature == heavy.signature  # the PR check finds it by the marker's signature
    assert probe.limits.rate == publish.STANDING_RATE
    assert probe.limits.max_hits is None
    assert probe.limits.expires_at is None
    assert probe.limits.violation_rate == publish.STANDING_VIOLATION_RATE
    assert probe.limits.capture.max_bytes <= publish.STANDING_MAX_BYTES
    assert probe.tags["standing"] == "shop"


def test_a_marker_without_service_is_refused_with_its_test() -> None:
    with pytest.raises(RuntimeProbeError, match=r"t.py::test_a: runtime_probe .* names no service"):
        publish.wanted_from([("t.py::test_a", A)], None)
