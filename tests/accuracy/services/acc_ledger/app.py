"""The ledger's HTTP API: one WSGI endpoint that books a request through every function.

``POST /book`` takes the JSON document :func:`accuracy_traffic.ledger_payload` builds and calls
each ledger function with its part; a function that raises is answered as an error of that
part, as a real handler would, so the other parts still run. ``GET /health`` answers ``ok``.
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import acc_vendor_hooks  # on the service's path only: the test process cannot import it

from acc_ledger import ledger

StartResponse = Callable[[str, list[tuple[str, str]]], Any]

#: This worker's running count of invoice lines (each gunicorn worker has its own).
_invoice_lines = itertools.count(1)


def _amount(value: Any) -> Any:
    # Most clients send the amount as a string (exact); some send a JSON number (a float).
    return Decimal(value) if isinstance(value, str) else float(value)


def _invoice(lines: int) -> str:
    seq = 0
    for _ in range(lines):
        seq = next(_invoice_lines)
    return ledger.next_invoice(seq)


#: part of the payload -> the call it makes (a request carries the parts it needs)
CALLS: dict[str, Callable[[Any], Any]] = {
    "reserve": lambda part: ledger.reserve(**part),
    "typed_qty": ledger.parse_quantity,
    "coupon": ledger.coupon_percent,
    "line": lambda part: ledger.line_total(**part),
    "bulk": lambda part: ledger.bulk_total(**part),
    "customer": ledger.shipping_label,
    "amount": lambda part: ledger.apply_tax(_amount(part)),
    "refund": lambda part: ledger.refund(**part),
    "order_id": ledger.load_order,
    "trace": lambda part: ledger.trace_request(part["request_id"], uuid.UUID(part["span"])),
    "etag": ledger.cache_entry,
    "lines": _invoice,
    "latency_ms": ledger.record_latency,
    "title": ledger.label_item,
    "sku": acc_vendor_hooks.normalize_sku,
    "wrap": ledger.gift_wrap,
}


def book(payload: dict[str, Any]) -> dict[str, Any]:
    """Call the ledger function of each part of the payload; collect results and errors."""
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, call in CALLS.items():
        if name not in payload:
            continue
        try:
            results[name] = call(payload[name])
        except Exception as exc:
            errors[name] = type(exc).__name__
    return {"pid": os.getpid(), "errors": errors, "results": results}


def _json(start_response: StartResponse, status: str, payload: Any) -> list[bytes]:
    data = json.dumps(payload, default=str).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Route one request."""
    path = environ.get("PATH_INFO", "/")
    if path == "/health":
        return _json(start_response, "200 OK", {"ok": True, "pid": os.getpid()})
    if path == "/book" and environ["REQUEST_METHOD"] == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        payload = json.loads(environ["wsgi.input"].read(length))
        return _json(start_response, "200 OK", book(payload))
    return _json(start_response, "404 Not Found", {"error": path})
