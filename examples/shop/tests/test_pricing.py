"""The shop's tests: they pass, and their marked assertions also run in production."""

from __future__ import annotations

import inspect
from decimal import Decimal

import pytest

from shop import pricing
from shop.orders import place_order
from shop.pricing import apply_discount, quote, shipping_cost, subtotal


def _line_of(function: object, text: str) -> int:
    """The line number of the first line of ``function`` that contains ``text``."""
    lines, start = inspect.getsourcelines(function)  # type: ignore[arg-type]
    return start + next(i for i, line in enumerate(lines) if text in line)


WEST_COAST_LINE = _line_of(pricing.shipping_cost, "zone += 1")

ADDRESS = {"country": "US", "postcode": "10001", "city": "New York", "street": "5th Avenue 1"}
ORDER = {"items": [{"sku": "tee", "qty": 2}], "currency": "USD", "address": ADDRESS}


# replay=True: production records each sampled call's arguments and outcome, so that
# --runtime-replay can call this code on them (apply_discount is pure: safe to replay).
@pytest.mark.runtime_probe(
    "shop.pricing:apply_discount",
    capture=["price", "coupon", "currency"],
    expect="0 <= result <= price",
    replay=True,
    rate=50,
)
@pytest.mark.parametrize(
    ("price", "coupon", "currency", "expected"),
    [
        (Decimal("48.00"), None, "USD", Decimal("48.00")),
        (Decimal("48.00"), "SPRING10", "USD", Decimal("43.20")),
        (Decimal("44.16"), "VIP25", "EUR", Decimal("33.12")),
        (Decimal("48.00"), "WELCOME5", "USD", Decimal("43.00")),
        (Decimal("37.92"), "WELCOME5", "GBP", Decimal("33.92")),
    ],
)
def test_apply_discount(
    price: Decimal, coupon: str | None, currency: str, expected: Decimal
) -> None:
    assert apply_discount(price, coupon, currency) == expected


# Addresses vary a lot: sample 5 states a second per source and wait for 60 before comparing.
@pytest.mark.runtime_probe(
    "shop.pricing:shipping_cost",
    capture=["address", "weight_grams"],
    expect="result >= 0",
    rate=5,
    min_hits=60,
)
def test_shipping_cost_by_zone() -> None:
    assert shipping_cost(ADDRESS, 500) == Decimal("5.50")
    assert shipping_cost({**ADDRESS, "country": "CA", "postcode": "H2X 1Y4"}, 250) == Decimal(
        "9.00"
    )
    assert shipping_cost({**ADDRESS, "country": "DE", "postcode": "10115"}, 1000) == Decimal(
        "18.00"
    )


@pytest.mark.runtime_probe(
    f"shop.pricing:shipping_cost@{WEST_COAST_LINE}",
    capture=["country", "postcode"],
)
def test_shipping_cost_east_coast() -> None:
    assert shipping_cost({**ADDRESS, "postcode": "02139"}, 0) == Decimal("4.00")


# Which lines of subtotal production runs, against the lines the whole test run ran.
@pytest.mark.runtime_probe("shop.pricing:subtotal", kind="lines")
def test_subtotal_sums_the_lines() -> None:
    assert subtotal([{"sku": "tee", "qty": 2}, {"sku": "mug"}], "USD") == Decimal("62.00")


def test_quote_adds_shipping() -> None:
    result = quote(ORDER)
    assert result["subtotal"] == Decimal("48.00")
    assert result["shipping"] == Decimal("5.50")
    assert result["total"] == Decimal("53.50")


@pytest.mark.runtime_probe(
    "shop.orders:place_order",
    capture=["order_id", "created_at", "status", "items_count"],
    expect="status == 'accepted' and items_count > 0",
)
def test_place_order_issues_a_receipt() -> None:
    receipt = place_order(ORDER)
    assert receipt["status"] == "accepted"
    assert receipt["items_count"] == 2
    assert receipt["total"] == "53.50"
    assert len(receipt["order_id"]) == 36
