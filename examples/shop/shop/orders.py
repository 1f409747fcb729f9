"""Orders: turn a priced quote into a receipt with an id and a timestamp."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

from shop.pricing import quote


def place_order(order: dict[str, Any]) -> dict[str, Any]:
    """Price the order and issue a receipt (ids and times differ on every call: pure noise)."""
    priced = quote(order)
    order_id = str(uuid.uuid4())
    created_at = datetime.datetime.now(datetime.UTC).isoformat()
    items_count = sum(int(item.get("qty", 1)) for item in order["items"])
    status = "accepted"
    return {
        "order_id": order_id,
        "created_at": created_at,
        "status": status,
        "items_count": items_count,
        "total": str(priced["total"]),
        "currency": priced["currency"],
    }
