"""Builders of Hit dicts in the typed JSON encoding, for the comparison's tests."""

from __future__ import annotations

from typing import Any

LOCATION = "shop.pricing:apply_discount"


def dec(text: str) -> dict[str, Any]:
    return {"@t": "decimal.Decimal", "v": text}


def tdict(**values: Any) -> dict[str, Any]:
    return {"@t": "dict", "v": values}


def tlist(*items: Any) -> dict[str, Any]:
    return {"@t": "list", "v": list(items)}


def hit(
    i: int,
    captures: dict[str, Any] | None,
    *,
    ok: bool | None = True,
    source: str = "src-1",
    exception: str | None = None,
    prefix: str = "h",
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "probe_id": "p1",
        "signature": "sig",
        "kind": "snapshot",
        "location": LOCATION,
        "ts": 1_700_000_000.0 + i,
        "hit_id": f"{prefix}-{i:05d}",
        "captures": captures,
        "source": {"id": source, "service": "shop"},
    }
    if ok is not None:
        data["expect"] = {"ok": ok, "error": None}
    if exception is not None:
        data["exception"] = {"type": exception, "message": "boom"}
    return data


def order(
    i: int,
    *,
    currency: str = "EUR",
    discount: Any = "default",
    price: Any = 12,
    extra: dict[str, Any] | None = None,
    drop: str | None = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": 1000 + i,
        "uid": f"{i:08x}-1234-4abc-8def-{i:012x}",
        "created": f"2026-11-24T10:{i % 60:02d}:{i % 59:02d}Z",
        "currency": currency,
        "discount": tdict(rate=5, code="SPRING") if discount == "default" else discount,
        "items": tlist(tdict(sku="a", qty=1), tdict(sku="b", qty=2)),
    }
    if extra:
        fields.update(extra)
    if drop:
        del fields[drop]
    return {"order": tdict(**fields), "price": price}


def tt_side(n: int = 20, **kwargs: Any) -> list[dict[str, Any]]:
    currencies = ["EUR", "USD"]
    return [hit(i, order(i, currency=currencies[i % 2], **kwargs), prefix="t") for i in range(n)]


def prod_side(
    n: int = 200, odd: Any = None, every: int = 10, **kwargs: Any
) -> list[dict[str, Any]]:
    """Production hits like the tests' but with ``odd(i)`` captures on every ``every``-th hit."""
    currencies = ["EUR", "USD"]
    out = []
    for i in range(n):
        caps = order(i + 5000, currency=currencies[i % 2], **kwargs)
        if odd is not None and i % every == 0:
            caps = odd(i)
        out.append(hit(i, caps))
    return out
