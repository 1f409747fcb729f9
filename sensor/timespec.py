"""Durations and points in time as people write them, for the CLI and the pytest plugin alike.

``python -m sensor hits --since 1h`` and ``pytest --runtime-since 1h`` read the same words
through :func:`parse_time`: a duration before now (``90s``, ``30m``, ``2h``, ``1d``, ``1w``), an
ISO 8601 time (``2026-11-24``, ``2026-11-24T10:00:00Z``; no zone means UTC) or epoch seconds
(a bare number above ten years of seconds). Standard library only.
"""

from __future__ import annotations

import datetime
import math
import re
import time

__all__ = ["TIME_EXPECTED", "parse_duration", "parse_time"]

#: What :func:`parse_time` accepts, for error messages.
TIME_EXPECTED = "a duration (90s, 30m, 2h, 1d, 1w), an ISO time or epoch seconds"

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_TEN_YEARS = 10 * 365 * 86400


def parse_duration(text: str) -> float | None:
    """Seconds from ``30``, ``2.5``, ``90s``, ``30m``, ``2h``, ``1d`` or ``1w``; None otherwise."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        return None
    value = float(match.group(1)) * _UNITS[match.group(2)]
    return value if math.isfinite(value) else None


def parse_time(text: str, *, now: float | None = None) -> float:
    """Epoch seconds of ``text``: a duration before ``now``, an ISO time or epoch seconds.

    Raises :class:`ValueError` naming the text and what is accepted.
    """
    now = time.time() if now is None else now
    raw = str(text).strip()
    # A bare number above ten years of seconds is an epoch timestamp, not a duration.
    if re.fullmatch(r"\d+(?:\.\d+)?", raw) and float(raw) > _TEN_YEARS:
        return float(raw)
    duration = parse_duration(raw)
    if duration is not None:
        return now - duration
    try:
        moment = datetime.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"got {text!r}, expected {TIME_EXPECTED}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()
