"""Properties of the comparison that hold for any evidence (Hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_runtime.compare import CompareSettings, ProbeVerdict, compare

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.sampled_from(["", "EUR", "USD", "a b", "2026-01-01T00:00:00Z"]),
    st.builds(lambda s: {"@t": "decimal.Decimal", "v": s}, st.sampled_from(["0", "-1.5", "12.50"])),
)
keys = st.sampled_from(["id", "name", "price", "items", "meta", "1234", "Content-Type"])
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.builds(lambda xs: {"@t": "list", "v": xs}, st.lists(children, max_size=4)),
        st.builds(lambda d: {"@t": "dict", "v": d}, st.dictionaries(keys, children, max_size=4)),
        st.builds(
            lambda d: {"@t": "shop.Cart", "@attrs": d}, st.dictionaries(keys, children, max_size=3)
        ),
    ),
    max_leaves=12,
)
hits = st.lists(
    st.builds(
        lambda i, caps, ok, exc: {
            "probe_id": "p",
            "signature": "s",
            "kind": "snapshot",
            "location": "m:f",
            "ts": float(i),
            "hit_id": f"h-{i}",
            "captures": caps,
            "expect": {"ok": ok},
            **({"exception": {"type": exc, "message": "x"}} if exc else {}),
        },
        st.integers(0, 10**6),
        st.dictionaries(st.sampled_from(["order", "price", "rate"]), values, max_size=3),
        st.sampled_from([True, None]),
        st.sampled_from([None, None, "KeyError"]),
    ),
    max_size=25,
    unique_by=lambda h: h["hit_id"],
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hits)
def test_comparing_hits_with_themselves_is_ok_or_inconclusive(sample: list[dict[str, Any]]) -> None:
    verdict = compare(sample, sample, settings=CompareSettings(min_count=1, min_share=0.0))
    assert verdict.verdict in ("ok", "inconclusive"), verdict.to_dict()
    assert verdict.divergences == ()
    if sample:
        assert verdict.state_coverage == 1.0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hits, hits, st.randoms(use_true_random=False))
def test_order_of_hits_never_changes_the_result(
    tests: list[dict[str, Any]], prod: list[dict[str, Any]], rnd: Any
) -> None:
    cfg = CompareSettings(min_count=1, min_share=0.0, min_hits=1)
    first = compare(tests, prod, settings=cfg).to_dict()
    tests2, prod2 = list(tests), list(prod)
    rnd.shuffle(tests2)
    rnd.shuffle(prod2)
    assert compare(tests2, prod2, settings=cfg).to_dict() == first


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hits, hits)
def test_coverage_and_counts_stay_in_range(
    tests: list[dict[str, Any]], prod: list[dict[str, Any]]
) -> None:
    verdict = compare(tests, prod)
    assert 0.0 <= verdict.state_coverage <= 1.0
    assert verdict.counts["covered_shapes"] <= verdict.counts["prod_shapes"]
    assert verdict.counts["prod_hits"] == len(prod)
    for d in verdict.divergences:
        assert 0 < d.count <= len(prod)
        assert d.severity in ("high", "medium", "low")


anything = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(
            st.sampled_from(["@t", "v", "@attrs", "items", "@len", "@trunc", "@depth", "x"]),
            children,
            max_size=4,
        ),
        st.fixed_dictionaries(
            {"@t": st.sampled_from(["dict", "list", "decimal.Decimal", "uuid.UUID", "int"])},
            optional={"v": children, "items": children, "@len": children, "@attrs": children},
        ),
    ),
    max_leaves=10,
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(anything, max_size=6), st.lists(anything, max_size=6))
def test_malformed_evidence_never_breaks_the_comparison(
    test_values: list[Any], prod_values: list[Any]
) -> None:
    def hits(values: list[Any]) -> list[dict[str, Any]]:
        return [
            {"hit_id": f"h{i}", "ts": float(i), "captures": {"x": v}} for i, v in enumerate(values)
        ]

    verdict = compare(hits(test_values), hits(prod_values), settings=CompareSettings(min_hits=1))
    assert verdict.verdict in ("ok", "diverged", "inconclusive")
    ProbeVerdict.from_dict(verdict.to_dict())
