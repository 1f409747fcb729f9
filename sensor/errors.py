"""Errors raised by the sensor's configuration, CLI and hub code (never by hot-path code).

The tree::

    SensorError                      root of everything the sensor raises
    ├── ProbeSpecError (ValueError)  a probe specification is invalid (names the field and value)
    ├── ExpressionError (ValueError) an expression is refused at compile time or stopped at runtime
    ├── ConfigError (ValueError)     a setting (argument or SENSOR_* variable) is invalid
    ├── PlacementError               a probe could not be placed (denied, not found, changed)
    └── HubError                     talking to the hub failed
        ├── HubUnavailableError      the hub could not be reached
        └── HubResponseError         the hub answered with an error status or garbage

Code that runs inside the host service never lets any of these escape: it records a probe
status or a drop counter instead.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "ExpressionError",
    "HubError",
    "HubResponseError",
    "HubUnavailableError",
    "PlacementError",
    "ProbeSpecError",
    "SensorError",
]


class SensorError(Exception):
    """Root of every error the sensor package raises."""


class ProbeSpecError(SensorError, ValueError):
    """A probe specification is invalid; the message names the field and the value."""

    def __init__(self, field: str, value: object, expected: str) -> None:
        self.field = field
        self.value = value
        self.expected = expected
        super().__init__(f"probe field {field!r}: got {value!r}, expected {expected}")


class ExpressionError(SensorError, ValueError):
    """An expression was refused at compile time, or stopped while it was evaluated."""


class ConfigError(SensorError, ValueError):
    """A configuration value (argument or ``SENSOR_*`` variable) is invalid."""


class PlacementError(SensorError):
    """A probe could not be placed: denied location, target not found, or source mismatch."""


class HubError(SensorError):
    """Talking to the hub failed."""


class HubUnavailableError(HubError):
    """The hub could not be reached (connection refused, DNS, timeout)."""


class HubResponseError(HubError):
    """The hub answered with an error status or with a body that is not the expected JSON."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        self.status = status
        super().__init__(message)
