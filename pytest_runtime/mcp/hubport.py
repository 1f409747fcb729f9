"""The one narrow interface through which the MCP server talks to the hub.

:class:`HubPort` lists every hub call the tools make. The server's implementation is the one
hub client the plugin and the CLI use (:class:`pytest_runtime.hub.HubClient`, made by
:func:`hub_client`), so that all three share its auth header, TLS setup, retries and error
messages; tests may pass another implementation through ``build_server(hub_factory=...)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pytest_runtime.hub import HubClient

__all__ = ["HubPort", "hub_client"]


class HubPort(Protocol):
    """The hub calls of the MCP tools (client scope only)."""

    url: str

    def health(self) -> dict[str, Any]: ...

    def sources(
        self,
        *,
        service: str | None = None,
        labels: Mapping[str, str] | None = None,
        state: str | None = "live",
    ) -> list[dict[str, Any]]: ...

    def place(
        self, probe: Mapping[str, Any], selector: Mapping[str, Any], ttl: float | None
    ) -> dict[str, Any]: ...

    def probe(self, probe_id: str) -> dict[str, Any]: ...

    def remove(self, probe_id: str) -> None: ...

    def hits_page(
        self,
        probe_id: str,
        *,
        since: float | None = None,
        until: float | None = None,
        source_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """``{"hits": [...], "next": cursor or None}``"""
        ...

    def hit(
        self, probe_id: str, hit_id: str, *, source_id: str | None = None
    ) -> dict[str, Any]: ...

    def close(self) -> None: ...


def hub_client(url: str, token: str | None, *, timeout: float = 10.0) -> HubClient:
    """The hub client of the MCP server: the plugin's and the CLI's, with the server's names
    in its error messages (``--hub``/``PYTEST_RUNTIME_HUB``, ``SENSOR_CLIENT_TOKEN``)."""
    from pytest_runtime.hub import HubClient  # requests: imported at the first tool call
    from sensor._version import __version__

    return HubClient(
        url,
        token,
        timeout=timeout,
        hub_option="--hub or PYTEST_RUNTIME_HUB",
        user_agent=f"pytest-runtime-mcp/{__version__}",
    )
