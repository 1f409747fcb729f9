"""Injection backends: how the sensor makes target code call a probe's hook (see core.py)."""

from __future__ import annotations

from sensor.inject.core import Backend, Handle, PlacementFailed, select_backend

__all__ = ["Backend", "Handle", "PlacementFailed", "select_backend"]
