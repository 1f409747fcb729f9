"""The MCP server of pytest-runtime: the hub's verbs as tools for AI coding agents.

``python -m pytest_runtime.mcp`` runs it (stdio by default). Importing this package is cheap:
the SDK is imported only when the server is built (``pip install 'pytest-runtime[mcp]'``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_runtime.mcp.errors import (
        ArgumentError,
        HubCallError,
        InvestigationError,
        RefusedError,
    )
    from pytest_runtime.mcp.investigation import Investigation
    from pytest_runtime.mcp.server import TOOL_NAMES, build_server
    from pytest_runtime.mcp.settings import ServerSettings

__all__ = [
    "TOOL_NAMES",
    "ArgumentError",
    "HubCallError",
    "Investigation",
    "InvestigationError",
    "RefusedError",
    "ServerSettings",
    "build_server",
]

_WHERE = {
    "ArgumentError": "pytest_runtime.mcp.errors",
    "HubCallError": "pytest_runtime.mcp.errors",
    "InvestigationError": "pytest_runtime.mcp.errors",
    "RefusedError": "pytest_runtime.mcp.errors",
    "Investigation": "pytest_runtime.mcp.investigation",
    "ServerSettings": "pytest_runtime.mcp.settings",
    "TOOL_NAMES": "pytest_runtime.mcp.server",
    "build_server": "pytest_runtime.mcp.server",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'pytest_runtime.mcp' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
