"""pytest-runtime: marked pytest assertions that also run as live production probes."""

from __future__ import annotations

from sensor._version import __version__

__all__ = ["__version__"]
