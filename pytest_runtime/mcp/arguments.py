"""Checks of the tools' arguments: a failure names the argument, the value and what was expected."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from pytest_runtime.mcp.errors import ArgumentError

__all__ = ["ID", "captures", "labels", "number", "probe_id", "text"]

#: Probe, source and hit ids: what the hub and the sensors accept (never a path or an option).
ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")


def text(argument: str, value: object, *, required: bool, limit: int = 2000) -> str | None:
    """A non-empty string of at most ``limit`` characters (None when optional and absent)."""
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ArgumentError(argument, value, "a non-empty string")
    if len(value) > limit:
        raise ArgumentError(argument, value, f"at most {limit} characters")
    return value.strip()


def probe_id(value: object, argument: str = "probe_id") -> str:
    if not isinstance(value, str) or not ID.match(value):
        raise ArgumentError(
            argument, value, "a probe id as returned by place_probe or check_hypothesis"
        )
    return value


def labels(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ArgumentError("labels", value, 'an object of strings, such as {"env": "prod"}')
    return dict(sorted(value.items()))


def captures(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ArgumentError("capture", value, 'a list of names or expressions, such as ["price"]')
    if not all(isinstance(item, str) for item in value):
        raise ArgumentError("capture", value, 'a list of names or expressions, such as ["price"]')
    return list(value)


def number(argument: str, value: object, *, low: float, high: float, whole: bool = False) -> float:
    """A finite number in ``[low, high]`` (a whole one if ``whole``)."""
    kind = "a whole number" if whole else "a number"
    expected = f"{kind} from {low:g} to {high:g}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ArgumentError(argument, value, expected)
    if whole and isinstance(value, float) and not value.is_integer():
        raise ArgumentError(argument, value, expected)
    if not math.isfinite(value) or not low <= value <= high:
        raise ArgumentError(argument, value, expected)
    return float(value)
