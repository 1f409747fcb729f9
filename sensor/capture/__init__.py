"""Capture: typed, bounded, redacted JSON encoding of live values without running user code."""

from __future__ import annotations

from sensor.capture.encode import (
    DEFAULT_REDACTOR,
    MAX_DEPTH_CAP,
    Budget,
    JSONValue,
    RedactorLike,
    capture_frame,
    encode,
    exception_info,
)
from sensor.capture.safety import safe_type_name

__all__ = [
    "DEFAULT_REDACTOR",
    "MAX_DEPTH_CAP",
    "Budget",
    "JSONValue",
    "RedactorLike",
    "capture_frame",
    "encode",
    "exception_info",
    "safe_type_name",
]
