"""Decoding, shapes, noise detection and deepdiff lines, one part at a time."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

import pytest

from pytest_runtime.compare.decode import DecodedObject, Marked, TypeOnly, decode
from pytest_runtime.compare.diff import decode_state, diff_lines
from pytest_runtime.compare.noise import detect_noise, passes_threshold
from pytest_runtime.compare.shapes import (
    ShapeWalker,
    key_path,
    length_bucket,
    normalize_pattern,
    parent_of,
)


def test_decode_gives_real_scalar_types() -> None:
    assert decode({"@t": "decimal.Decimal", "v": "12.50"}) == decimal.Decimal("12.50")
    assert decode({"@t": "datetime.datetime", "v": "2026-11-24T10:00:00+00:00"}) == (
        datetime.datetime(2026, 11, 24, 10, tzinfo=datetime.UTC)
    )
    u = "12345678-1234-4abc-8def-123456789abc"
    assert decode({"@t": "uuid.UUID", "v": u}) == uuid.UUID(u)
    assert decode({"@t": "int", "v": "9" * 30}) == int("9" * 30)
    assert decode({"@t": "tuple", "v": [1, 2]}) == (1, 2)
    assert decode({"@t": "dict", "items": [[1, "a"]]}) == {1: "a"}


def test_decode_objects_keep_their_type_name() -> None:
    cart = decode({"@t": "shop.models.Cart", "@attrs": {"total": 3}})
    assert isinstance(cart, DecodedObject)
    assert type(cart).__module__ == "shop.models"
    assert type(cart).__qualname__ == "Cart"
    assert cart.__dict__ == {"total": 3}
    assert repr(cart) == "shop.models.Cart(total=3)"


def test_decode_keeps_markers_visible() -> None:
    red = decode({"@t": "str", "@redacted": "email", "@len": "9-32"})
    assert isinstance(red, Marked)
    assert red.type_name == "str"
    assert ("@redacted", "email") in red.markers
    trunc = decode({"@t": "str", "v": "abc", "@len": 900, "@trunc": True})
    assert isinstance(trunc, Marked)
    assert trunc.value == "abc"
    assert "trunc" in repr(trunc)


def test_decode_normalizes_paths_to_their_type() -> None:
    state = decode_state({"order": {"@t": "dict", "v": {"id": 7}}}, lambda p: p == "order.id")
    assert state == {"order": {"id": TypeOnly("int")}}


def test_paths_read_like_python() -> None:
    assert key_path("", "order") == "order"
    assert key_path("order", "id") == "order.id"
    assert key_path("headers", "Content-Type") == 'headers["Content-Type"]'
    assert key_path("by_user", "12345") == "by_user{}"
    assert parent_of("order.items[].sku") == "order.items[]"
    assert parent_of("order") is None
    assert normalize_pattern("root['order']['items'][0]['sku']") == "order.items[].sku"
    assert normalize_pattern("captures.order.request_id") == "order.request_id"


@pytest.mark.parametrize(
    ("n", "bucket"),
    [(0, "0"), (1, "1"), (7, "2-10"), (11, "11-100"), (999, "101-1000"), (10**6, "1001+")],
)
def test_length_buckets(n: int, bucket: str) -> None:
    assert length_bucket(n) == bucket


def test_shape_holds_types_nullness_and_list_lengths_not_values() -> None:
    walker = ShapeWalker()
    a, leaves = walker.walk({"x": {"@t": "list", "v": [1, None]}, "y": "EUR"})
    b, _ = walker.walk({"x": {"@t": "list", "v": [5, None]}, "y": "USD"})
    assert a == b
    assert ("x[]", "t", "None") in a
    assert ("x", "n", "2-10") in a
    assert ("y", "str", "EUR") in leaves


def test_truncated_list_uses_its_real_length() -> None:
    shape, _ = ShapeWalker().walk({"x": {"@t": "list", "v": [1], "@len": 5000, "@trunc": True}})
    assert ("x", "n", "1001+") in shape


def test_ignored_path_keeps_only_its_type() -> None:
    walker = ShapeWalker(("meta",))
    shape, leaves = walker.walk({"meta": {"@t": "dict", "v": {"a": 1}}})
    assert shape == frozenset({("meta", "t", "dict")})
    assert leaves == []


def test_noise_detection_finds_timestamps_uuids_and_unique_values() -> None:
    prod: dict[str, list[tuple[int, str, Any]]] = {
        "ts": [(i, "str", f"2026-11-24T10:00:{i:02d}Z") for i in range(20)],
        "uid": [(i, "str", str(uuid.UUID(int=i))) for i in range(20)],
        "order_id": [(i, "int", 100 + i) for i in range(20)],
        "cur": [(i, "str", "EUR") for i in range(20)],
    }
    assert detect_noise(prod, {}, unique_share=0.9) == {
        "order_id": "unique",
        "ts": "timestamp",
        "uid": "uuid",
    }


def test_threshold_needs_both_count_and_share() -> None:
    assert not passes_threshold(1, 10_000, min_count=2, min_share=0.0003)
    assert not passes_threshold(2, 10_000, min_count=2, min_share=0.0003)
    assert passes_threshold(3, 10_000, min_count=2, min_share=0.0003)
    assert passes_threshold(2, 100, min_count=2, min_share=0.0003)
    assert not passes_threshold(0, 0, min_count=0, min_share=0.0)


def test_diff_lines_are_sorted_focused_and_bounded() -> None:
    test = {"a": {"x": 1, "y": [1, 2]}, "b": 1}
    prod = {"a": {"x": None, "y": list(range(40))}, "b": 2}
    lines = diff_lines(test, prod, max_lines=5)
    assert len(lines) == 6
    assert lines[-1].startswith("... ")
    assert lines[-1].endswith(" more deepdiff lines")
    assert lines[0].startswith("root['a']['x']: type changed int -> None")
    assert diff_lines(test, prod, focus="b") == ["root['b']: value changed 1 -> 2"]
    assert diff_lines(test, prod, focus="b", structural_only=True)[0].startswith("root['a']")


def test_diff_lines_keep_naive_and_aware_datetimes_apart() -> None:
    """deepdiff reads a naive datetime as UTC: the production value of a naive-versus-aware bug
    showed as '+00:00', and a naive 10:00 against an aware 10:00 UTC gave no line at all."""
    utc = datetime.UTC
    test = decode({"@t": "datetime.datetime", "v": "2026-12-20T00:00:00+00:00"})
    prod = decode({"@t": "datetime.datetime", "v": "2026-12-24T10:00:00"})
    assert diff_lines({"due": test}, {"due": prod}) == [
        "root['due']: value changed datetime('2026-12-20 00:00:00+00:00') -> "
        "datetime('2026-12-24 10:00:00')"
    ]
    same_wall = {"due": datetime.datetime(2026, 1, 1, 10)}
    aware = {"due": datetime.datetime(2026, 1, 1, 10, tzinfo=utc)}
    assert diff_lines(same_wall, aware) == [
        "root['due']: value changed datetime('2026-01-01 10:00:00') -> "
        "datetime('2026-01-01 10:00:00+00:00')"
    ]
    paris = datetime.timezone(datetime.timedelta(hours=1))
    same_instant = {"due": datetime.datetime(2026, 1, 1, 11, tzinfo=paris)}
    assert len(diff_lines(aware, same_instant)) == 1  # another UTC offset is a change
    assert diff_lines(aware, dict(aware)) == []
    assert diff_lines({"t": datetime.time(10)}, {"t": datetime.time(10, tzinfo=utc)})


def test_diff_of_unhashable_objects_is_not_empty() -> None:
    # deepdiff may report nothing for objects it cannot hash under ignore_order; we do not use it.
    a = decode(
        {"@t": "shop.Cart", "@attrs": {"items": {"@t": "list", "v": [{"@t": "dict", "v": {}}]}}}
    )
    b = decode({"@t": "shop.Cart", "@attrs": {"items": {"@t": "list", "v": [None]}}})
    assert diff_lines({"c": a}, {"c": b})


def test_public_names_are_exported_sorted() -> None:
    import pytest_runtime.compare as compare_pkg
    import pytest_runtime.reporting as reporting_pkg

    assert compare_pkg.__all__ == [
        "CompareSettings",
        "Divergence",
        "NoiseRule",
        "ProbeResult",
        "ProbeVerdict",
        "compare",
    ]
    assert all(hasattr(compare_pkg, name) for name in compare_pkg.__all__)
    assert reporting_pkg.__all__ == sorted(reporting_pkg.__all__)
