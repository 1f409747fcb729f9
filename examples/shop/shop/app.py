"""The shop's HTTP API: a plain WSGI application, served by gunicorn in the demo."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

from shop.catalog import PRODUCTS, RATES
from shop.orders import place_order
from shop.pricing import UnknownProduct, convert, quote

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
MAX_BODY = 64 * 1024


def _json(start_response: StartResponse, status: str, payload: Any) -> list[bytes]:
    body = json.dumps(payload, default=lambda o: str(o) if isinstance(o, Decimal) else None)
    data = body.encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


def _read_json(environ: dict[str, Any]) -> Any:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length > MAX_BODY:
        raise ValueError(f"body of {length} bytes is over the {MAX_BODY} byte limit")
    return json.loads(environ["wsgi.input"].read(length) or b"null")


def _valid_order(order: Any) -> dict[str, Any]:
    if not isinstance(order, dict) or not isinstance(order.get("items"), list):
        raise ValueError("an order is an object with a list of items")
    if order.get("currency", "USD") not in RATES:
        raise ValueError(f"unknown currency {order.get('currency')!r}")
    if not isinstance(order.get("address"), dict) or "country" not in order["address"]:
        raise ValueError("an order needs an address with a country")
    return order


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Route one request."""
    method = environ["REQUEST_METHOD"]
    path = environ.get("PATH_INFO", "/")
    request_id = environ.get("HTTP_X_REQUEST_ID") or uuid.uuid4().hex
    try:
        if path == "/health":
            return _json(start_response, "200 OK", {"ok": True})
        if path == "/products" and method == "GET":
            query = dict(
                part.split("=", 1)
                for part in environ.get("QUERY_STRING", "").split("&")
                if "=" in part
            )
            currency = query.get("currency", "USD")
            if currency not in RATES:
                raise ValueError(f"unknown currency {currency!r}")
            products = [
                {"sku": sku, "name": name, "price": convert(price, currency), "currency": currency}
                for sku, (name, price) in sorted(PRODUCTS.items())
            ]
            return _json(start_response, "200 OK", {"products": products})
        if path == "/quote" and method == "POST":
            result = quote(_valid_order(_read_json(environ)))
            return _json(start_response, "200 OK", {**result, "request_id": request_id})
        if path == "/orders" and method == "POST":
            receipt = place_order(_valid_order(_read_json(environ)))
            return _json(start_response, "201 Created", {**receipt, "request_id": request_id})
        return _json(start_response, "404 Not Found", {"error": f"no route {method} {path}"})
    except (ValueError, UnknownProduct, KeyError) as exc:
        return _json(start_response, "400 Bad Request", {"error": str(exc)})
