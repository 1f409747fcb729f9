"""Reports of the comparison's verdicts: terminal, JSON, GitHub, JUnit properties."""

from __future__ import annotations

__all__ = ["github", "jsonreport", "junit", "terminal"]
