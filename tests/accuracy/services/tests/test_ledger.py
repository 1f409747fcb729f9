"""The ledger's unit tests: each passes on tidy inputs, and each marker is a production probe."""

from __future__ import annotations

import functools
import inspect
import uuid
from decimal import Decimal

import pytest
from acc_ledger import ledger

SERVICE = "acc-ledger"
# Every probe but the expectation-rate one samples 5 states a second per source.
probe = functools.partial(pytest.mark.runtime_probe, service=SERVICE, rate=5)


def _line_of(function: object, text: str) -> int:
    lines, start = inspect.getsourcelines(function)  # type: ignore[arg-type]
    return start + next(i for i, line in enumerate(lines) if text in line)


CHARGEBACK_LINE = _line_of(ledger.refund, "fee = 1500")


# Default rates on purpose: violations are captured up to 10/s, passing hits 1/s, so the
# share of captured hits that violate is far above the true rate.
@pytest.mark.runtime_probe(
    "acc_ledger.ledger:reserve", capture=["stock", "qty"], expect="result >= 0", service=SERVICE
)
def test_reserve_leaves_stock() -> None:
    assert ledger.reserve(10, 3) == 7
    assert ledger.reserve(5, 5) == 0
    assert ledger.reserve(60, 12) == 48


@probe("acc_ledger.ledger:parse_quantity", capture=["text"], expect="result > 0")
def test_parse_quantity() -> None:
    assert ledger.parse_quantity("3") == 3
    assert ledger.parse_quantity("12") == 12


@probe("acc_ledger.ledger:line_total", capture=["quantity", "unit_cents"])
@pytest.mark.parametrize("quantity", [5, 9, 24, 50, 77, 100])
def test_line_total(quantity: int) -> None:
    assert ledger.line_total(quantity, 250) == quantity * 250


@probe("acc_ledger.ledger:bulk_total", capture=["quantity", "unit_cents"])
@pytest.mark.parametrize("quantity", [5, 12, 40, 64, 99])
def test_bulk_total(quantity: int) -> None:
    assert ledger.bulk_total(quantity, 120) == quantity * 120


@probe("acc_ledger.ledger:shipping_label", capture=["customer"])
def test_shipping_label() -> None:
    ada = {
        "name": "Ada Smith",
        "address": {"city": "Salem", "street": "Oak St"},
        "postcode": "10001",
    }
    ben = {
        "name": "Ben King",
        "address": {"city": "Bristol", "street": "Elm St"},
        "postcode": "20002",
    }
    assert ledger.shipping_label(ada) == "Ada Smith, Salem 10001"
    assert ledger.shipping_label(ben) == "Ben King, Bristol 20002"


@probe("acc_ledger.ledger:apply_tax", capture=["amount"])
def test_apply_tax() -> None:
    assert ledger.apply_tax(Decimal("10.00")) == Decimal("12.00")
    assert ledger.apply_tax(Decimal("2.50")) == Decimal("3.00")


@probe(f"acc_ledger.ledger:refund@{CHARGEBACK_LINE}", capture=["amount_cents", "reason"])
def test_refund_chargeback_branch() -> None:
    assert ledger.refund(1000, "damaged") == 1000
    assert ledger.refund(500, "late") == 500


@probe("acc_ledger.ledger:gift_wrap", capture=["style"])
def test_gift_wrap_styles() -> None:
    assert ledger.gift_wrap("paper") == "wrapped in paper"
    assert ledger.gift_wrap("box") == "wrapped in box"


# Noise-only controls: production values differ from the tests' only as ids, tokens and
# measurements do. Their verdicts must stay ok.


@probe("acc_ledger.ledger:load_order", capture=["order_id"])
def test_load_order_by_id() -> None:
    assert ledger.load_order(1042) == {"id": 1042, "status": "open"}
    assert ledger.load_order(1043)["id"] == 1043


@probe("acc_ledger.ledger:trace_request", capture=["request_id", "span"])
def test_trace_request_ids() -> None:
    span = uuid.UUID("5b1f0c2e-9d4a-4c8e-8f3b-2a6d7e9f1c04")
    header = ledger.trace_request("0e7c4a52-3b1d-4f6a-9c2e-8d5b7a1f3e90", span)
    assert header.endswith(span.hex)


@probe("acc_ledger.ledger:cache_entry", capture=["etag"])
def test_cache_entry_token() -> None:
    assert ledger.cache_entry("9f86d081884c7d659a2feaa0c55ad015") == (
        "etag:9f86d081884c7d659a2feaa0c55ad015"
    )


@probe("acc_ledger.ledger:next_invoice", capture=["seq"])
def test_next_invoice_counter() -> None:
    assert ledger.next_invoice(1) == "INV-00000001"
    assert ledger.next_invoice(2) == "INV-00000002"


@probe("acc_ledger.ledger:record_latency", capture=["latency_ms"])
def test_record_latency_jitter() -> None:
    assert ledger.record_latency(12.5) == "fast"
    assert ledger.record_latency(14.25) == "fast"


@probe("acc_ledger.ledger:label_item", capture=["title"])
def test_label_item_free_text() -> None:
    assert ledger.label_item("red gadget") == "Red Gadget"
    assert ledger.label_item("blue widget") == "Blue Widget"
