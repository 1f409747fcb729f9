"""The one narrow interface through which the MCP server talks to the hub.

:class:`HubPort` lists every hub call the tools make. :class:`PluginHub` implements it over the
plugin's client (:class:`pytest_runtime.hub.HubClient`) so that the plugin and the agents share
one client, its errors and its retries. The calls that client does not have yet are written
here as thin functions over the same session (:func:`hits_page`); when the CLI's and the
plugin's clients become one, only this module changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pytest_runtime.hub import HubClient

__all__ = ["HubPort", "PluginHub", "hits_page"]


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
        self, probe: Mapping[str, Any], selector: Mapping[str, Any], ttl: float
    ) -> dict[str, Any]: ...

    def probe(self, probe_id: str) -> dict[str, Any]: ...

    def remove(self, probe_id: str) -> None: ...

    def hits_page(
        self, probe_id: str, *, after: str | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], str | None]: ...

    def close(self) -> None: ...


def hits_page(
    client: HubClient, probe_id: str, *, after: str | None = None, limit: int = 100
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of a probe's hits and the cursor of the next (``GET /v1/probes/{id}/hits``).

    ``HubClient.hits`` drops the ``next`` cursor; paging needs it. Same session, same errors.
    """
    params: dict[str, Any] = {"limit": limit}
    if after is not None:
        params["after"] = after
    data = client._json("GET", f"/v1/probes/{probe_id}/hits", params=params)
    if not isinstance(data, dict) or not isinstance(data.get("hits"), list):
        from pytest_runtime.errors import HubRequestError

        raise HubRequestError(
            f"GET /v1/probes/{probe_id}/hits: expected a JSON object with 'hits', got {data!r:.80}"
        )
    cursor = data.get("next")
    return list(data["hits"]), (str(cursor) if cursor is not None else None)


class PluginHub:
    """:class:`HubPort` over the plugin's :class:`~pytest_runtime.hub.HubClient`."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 10.0) -> None:
        from pytest_runtime.hub import HubClient  # requests: imported at the first tool call

        self.client = HubClient(url, token, timeout=timeout)
        self.url = self.client.url

    def health(self) -> dict[str, Any]:
        return self.client.health()

    def sources(
        self,
        *,
        service: str | None = None,
        labels: Mapping[str, str] | None = None,
        state: str | None = "live",
    ) -> list[dict[str, Any]]:
        return self.client.sources(service=service, labels=labels, state=state)

    def place(
        self, probe: Mapping[str, Any], selector: Mapping[str, Any], ttl: float
    ) -> dict[str, Any]:
        return self.client.place(probe, selector, ttl)

    def probe(self, probe_id: str) -> dict[str, Any]:
        return self.client.probe(probe_id)

    def remove(self, probe_id: str) -> None:
        self.client.remove(probe_id)

    def hits_page(
        self, probe_id: str, *, after: str | None = None, limit: int = 100
    ) -> tuple[list[dict[str, Any]], str | None]:
        return hits_page(self.client, probe_id, after=after, limit=limit)

    def close(self) -> None:
        self.client.close()
