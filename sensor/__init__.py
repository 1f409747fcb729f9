"""pytest-runtime's sensor: live probes inside a running Python service.

The in-process part imports the standard library only. Start it with :func:`start`
(or ``python -m sensor run -- <command>``); read :func:`status`; stop it with :func:`stop`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sensor._version import __version__
from sensor.errors import (
    ConfigError,
    ExpressionError,
    HubError,
    PlacementError,
    ProbeSpecError,
    SensorError,
)
from sensor.probes import Hit, Location, Probe, ProbeKind, ProbeLimits, ProbeState, ProbeStatus

if TYPE_CHECKING:
    from sensor.agent import start, status, stop

__all__ = [
    "ConfigError",
    "ExpressionError",
    "Hit",
    "HubError",
    "Location",
    "PlacementError",
    "Probe",
    "ProbeKind",
    "ProbeLimits",
    "ProbeSpecError",
    "ProbeState",
    "ProbeStatus",
    "SensorError",
    "__version__",
    "start",
    "status",
    "stop",
]


_AGENT_NAMES = frozenset({"start", "status", "stop"})


def __getattr__(name: str) -> Any:
    # The agent (its HTTP transport and lifecycle) loads on first use, so `import sensor`
    # stays cheap for the pytest plugin and for code that only reads the probe model.
    if name in _AGENT_NAMES:
        from sensor import agent

        value = getattr(agent, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'sensor' has no attribute {name!r}")
