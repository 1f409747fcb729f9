"""The distribution's version, read by the build backend and by both packages."""

from __future__ import annotations

__version__ = "0.1.0.dev0"
