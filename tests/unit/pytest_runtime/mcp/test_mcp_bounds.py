"""Answers within the size budget: render cuts what must go and says so, shrink bounds a value."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from pytest_runtime.mcp.bounds import dumps, preview, render, shrink

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=300),
    lambda inner: st.lists(inner, max_size=30) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=400,
)


def test_a_small_answer_is_the_sorted_compact_json_of_the_payload() -> None:
    payload = {"b": [3, 1], "a": {"z": 1, "y": "é"}}
    assert render(payload, 1000) == '{"a":{"y":"é","z":1},"b":[3,1]}'
    assert render(payload, 1000) == dumps(payload)


def test_a_large_answer_keeps_the_first_items_and_says_how_many_were_cut() -> None:
    payload = {"probe_id": "p1", "hits": [{"n": n, "text": "x" * 200} for n in range(300)]}
    text = render(payload, 4000)
    assert len(text) <= 4000
    data = json.loads(text)
    assert data["probe_id"] == "p1"
    kept = len(data["hits"])
    assert 0 < kept < 300
    assert [h["n"] for h in data["hits"]] == list(range(kept))
    assert data["cut"] == [f"hits: kept {kept} of 300 items"]


def test_a_huge_string_is_cut_with_its_length_said() -> None:
    data = json.loads(render({"a": "x" * 50_000, "b": 1}, 3000))
    assert data["b"] == 1
    assert data["cut"][0].startswith("a: kept ")
    assert data["cut"][0].endswith(" of 50000 characters")


@settings(max_examples=60, deadline=None)
@given(
    payload=st.dictionaries(st.text(max_size=10), JSON, max_size=8),
    budget=st.integers(200, 6000),
)
def test_render_never_exceeds_the_budget_and_always_gives_json(
    payload: dict[str, Any], budget: int
) -> None:
    text = render(payload, budget)
    assert len(text) <= budget
    json.loads(text)


def test_shrink_keeps_types_and_marks_every_cut() -> None:
    value = {
        "@t": "shop.Cart",
        "@attrs": {
            "items": {"@t": "list", "v": [{"sku": f"s{n}", "note": "y" * 300} for n in range(80)]},
            "owner": "bob",
        },
    }
    small, cut = shrink(value, 800)
    assert cut
    assert len(dumps(small)) <= 800
    assert small["@t"] == "shop.Cart"  # the type names stay
    assert "more items" in dumps(small) or "<list of" in dumps(small)
    same, cut_again = shrink({"a": 1}, 800)
    assert same == {"a": 1}
    assert cut_again is False


def test_preview_reads_typed_values_in_one_line() -> None:
    assert preview({"@t": "decimal.Decimal", "v": "12.50"}) == "Decimal('12.50')"
    assert preview({"@t": "str", "@redacted": "name", "@len": "1-10"}) == "<str redacted: name>"
    assert preview("JPY") == "'JPY'"
    assert preview(None) == "null"
    assert preview("x" * 500, 20) == "'xxxxxxxxxxxxxxxx..."
