"""pytest-runtime's sensor: live probes inside a running Python service.

The in-process part imports the standard library only. Start it with :func:`start`
(or ``python -m sensor run -- <command>``); read :func:`status`; stop it with :func:`stop`.
"""

from __future__ import annotations

from sensor._version import __version__
from sensor.agent import start, status, stop
from sensor.errors import (
    ConfigError,
    ExpressionError,
    HubError,
    PlacementError,
    ProbeSpecError,
    SensorError,
)
from sensor.probes import Hit, Location, Probe, ProbeKind, ProbeLimits, ProbeState, ProbeStatus

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
