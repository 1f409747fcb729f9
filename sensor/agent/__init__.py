"""The in-service sensor agent: lifecycle, transport to the hub, fork and exit handling."""

from __future__ import annotations

from sensor.agent.lifecycle import Agent, start, status, stop
from sensor.agent.run import run_main

__all__ = ["Agent", "run_main", "start", "status", "stop"]
