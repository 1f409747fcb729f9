"""The ledger's functions. Each is correct on the inputs its tests use; production sends others."""

from __future__ import annotations

import uuid
from typing import Any

COUPONS = {"SPRING10": 10, "VIP25": 25, "WELCOME5": 5}


def reserve(stock: int, qty: int) -> int:
    """Stock left after reserving ``qty`` items (production over-reserves on some calls)."""
    return stock - qty


def parse_quantity(text: str) -> int:
    """A quantity typed by a person (production also sends words: ValueError)."""
    return int(text)


def coupon_percent(code: str) -> int:
    """The discount of a coupon code; an unknown code raises KeyError, by design."""
    return COUPONS[code]


def line_total(quantity: int, unit_cents: int) -> int:
    """Price of one order line (production sends negative quantities: returns)."""
    return quantity * unit_cents


def bulk_total(quantity: int, unit_cents: int) -> int:
    """Price of one wholesale line (production sends quantities in the tens of thousands)."""
    return quantity * unit_cents


def shipping_label(customer: dict[str, Any]) -> str:
    """The label printed on a parcel."""
    address = customer.get("address") or {}
    label = f"{customer['name']}, {address.get('city', '?')} {customer.get('postcode', '')}"
    return label.strip()


def apply_tax(amount: Any) -> Any:
    """Amount with 20% tax (tests pass Decimal; some clients send a float)."""
    return amount * 12 / 10


def refund(amount_cents: int, reason: str) -> int:
    """Amount refunded; chargebacks cost a fee (no test reaches that branch)."""
    fee = 0
    if reason == "chargeback":
        fee = 1500  # the line probe of test_refund_chargeback_branch
    return amount_cents - fee


def gift_wrap(style: str) -> str:
    """The wrapping of a parcel (production also sends an empty style)."""
    return f"wrapped in {style or 'nothing'}"


# Noise-only controls: the values differ on every call by nature, never in class.


def load_order(order_id: int) -> dict[str, Any]:
    """An order record by id."""
    return {"id": order_id, "status": "open"}


def trace_request(request_id: str, span: uuid.UUID) -> str:
    """A trace header from a request id and a span id."""
    return f"{request_id}/{span.hex}"


def cache_entry(etag: str) -> str:
    """A cache key from an entity tag (random hex)."""
    return "etag:" + etag


def next_invoice(seq: int) -> str:
    """An invoice number from the worker's running counter."""
    return f"INV-{seq:08d}"


def record_latency(latency_ms: float) -> str:
    """A latency sample, bucketed."""
    return "slow" if latency_ms > 20 else "fast"


def label_item(title: str) -> str:
    """A shelf label from a product title (free text)."""
    return title.title()
