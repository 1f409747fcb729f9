"""A vendored helper installed in the service's image only (not importable by its tests)."""

from __future__ import annotations


def normalize_sku(sku: str) -> str:
    """An upper-case stock keeping unit."""
    return sku.strip().upper()
