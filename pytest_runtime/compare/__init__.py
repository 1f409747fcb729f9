"""Comparison of production evidence with test-time states: shapes, values, noise, verdicts."""

from __future__ import annotations

from pytest_runtime.compare.noise import NoiseRule
from pytest_runtime.compare.verdict import (
    CompareSettings,
    Divergence,
    ProbeResult,
    ProbeVerdict,
    compare,
)

__all__ = [
    "CompareSettings",
    "Divergence",
    "NoiseRule",
    "ProbeResult",
    "ProbeVerdict",
    "compare",
]
