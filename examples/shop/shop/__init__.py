"""A small shop service: catalog, prices in several currencies, coupons and shipping."""

from __future__ import annotations

__all__: list[str] = []
