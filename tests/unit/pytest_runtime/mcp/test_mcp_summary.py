"""Evidence summaries: counts, outcomes, exceptions, shapes and value classes, bounded."""

from __future__ import annotations

from typing import Any

from pytest_runtime.mcp.bounds import dumps
from pytest_runtime.mcp.summary import hit_row, summarize, value_class


def hit(n: int, captures: dict[str, Any] | None, **extra: Any) -> dict[str, Any]:
    return {
        "hit_id": f"h-{n:04d}",
        "ts": 1_800_000_000 + n,
        "source": {"host": "web-1" if n % 2 else "web-2", "pid": 10},
        "line": 7,
        "captures": captures,
        **extra,
    }


def test_counts_sources_outcomes_and_exceptions() -> None:
    hits = [
        hit(1, {"x": 1}, expect={"ok": True, "error": None}),
        hit(2, {"x": -1}, expect={"ok": False, "error": None}),
        hit(3, {"x": 0}, expect={"ok": None, "error": "ZeroDivisionError"}),
        hit(4, None, exception={"type": "shop.pricing.UnknownProduct", "message": "sku"}),
    ]
    summary = summarize(hits, hits_on_hub=10)
    assert summary["hits_summarized"] == 4
    assert "6 later hit(s)" in summary["not_summarized"]
    assert summary["sources"] == {"web-1:10": 2, "web-2:10": 2}
    assert summary["expectation"]["true"] == 1
    assert summary["expectation"]["false"] == 1
    assert summary["expectation"]["error"] == 1
    assert summary["exceptions"] == {"shop.pricing.UnknownProduct": 1}
    assert summary["first_hit"] == "2027-01-15T08:00:01Z"


def test_shapes_group_states_and_show_how_rare_ones_differ() -> None:
    common = {"order": {"@t": "dict", "v": {"coupon": "SPRING10", "total": 5}}}
    rare = {"order": {"@t": "dict", "v": {"coupon": None, "total": 5}}}
    hits = [hit(n, common) for n in range(8)] + [hit(8, rare), hit(9, rare)]
    summary = summarize(hits, hits_on_hub=10)
    assert summary["distinct_shapes"] == 2
    first, second = summary["shapes"]
    assert (first["hits"], second["hits"]) == (8, 2)
    assert first["fields"]["order.coupon"] == "str"
    assert second["differs_from_first"] == ["~ order.coupon: str -> None"]
    assert second["example_hit_id"] == "h-0008"
    coupon = summary["values_by_path"]["order.coupon"]
    assert coupon["types"] == {"None": 2, "str": 8}
    assert coupon["values"] == {"'SPRING10'": 8}


def test_value_classes_and_ranges_per_path() -> None:
    prices = ["12.50", "-3.00", "0", "7"]
    hits = [hit(n, {"price": {"@t": "decimal.Decimal", "v": p}}) for n, p in enumerate(prices)]
    price = summarize(hits, hits_on_hub=4)["values_by_path"]["price"]
    assert price["classes"] == {"negative": 1, "positive": 2, "zero": 1}
    assert (price["min"], price["max"]) == (-3.0, 12.5)
    assert price["types"] == {"decimal.Decimal": 4}
    assert value_class("str", "") == "empty"
    assert value_class("float", "nan") == "nan"


def test_a_summary_of_two_thousand_varied_hits_stays_small() -> None:
    hits = [hit(n, {f"field_{n % 40}": "v" * 100, "n": n, "s": f"value-{n}"}) for n in range(2000)]
    summary = summarize(hits, hits_on_hub=5000)
    assert len(dumps(summary)) < 10_000
    assert summary["values_by_path"]["s"]["distinct"] == "over 64"
    assert "shapes_not_shown" in summary
    assert summary["paths_not_shown"] == 42 - 24


def test_a_hit_row_is_one_short_line_of_values() -> None:
    row = hit_row(hit(1, {"b": "x" * 400, "a": {"@t": "decimal.Decimal", "v": "1.5"}}))
    assert row["captures"].startswith("a=Decimal('1.5'), b='xxx")
    assert len(row["captures"]) <= 160
    assert row["source"] == "web-1:10"
