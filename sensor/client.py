"""The CLI's face of the one hub client (:class:`pytest_runtime.hub.HubClient`), for scripts too.

``sensor.client.HubClient`` is :class:`pytest_runtime.hub.CliHubClient`, that client with the
CLI's defaults: the hub URL from ``SENSOR_HUB_URL`` (else ``http://127.0.0.1:8765``), the token
from ``SENSOR_CLIENT_TOKEN`` (then the deprecated ``SENSOR_TOKEN``), every source whatever its
state, and fewer retries than a CI run (a person is waiting). Every hub call, its TLS setup
(``--cafile`` or ``SENSOR_CA_FILE``), retries and error messages live in
:mod:`pytest_runtime.hub`; failures are
:class:`~sensor.errors.HubUnavailableError` (the hub could not be reached),
:class:`~sensor.errors.HubResponseError` (it answered an error; ``.status``) or
:class:`~sensor.errors.ConfigError` (a bad URL or CA file).

The sensor inside a service talks to the hub through its own standard-library transport
(:mod:`sensor.agent`), and importing this module stays standard library too: the client (and
``requests``) load when ``HubClient`` is first used.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pytest_runtime.hub import CliHubClient as HubClient

__all__ = [
    "CLI_RETRIES",
    "DEFAULT_HUB_URL",
    "ENV_TOKEN",
    "ENV_TOKEN_OLD",
    "HubClient",
    "token_from_env",
]

DEFAULT_HUB_URL = "http://127.0.0.1:8765"
#: The client token: one name for the CLI, the pytest plugin and the MCP server.
ENV_TOKEN = "SENSOR_CLIENT_TOKEN"
#: The CLI's former name for it, which services also use for their *sensor* token: still read
#: (after ENV_TOKEN), with a deprecation note.
ENV_TOKEN_OLD = "SENSOR_TOKEN"
#: Retries per request (backoff 0.5 then 1 s): a hub that is down is reported within ~2 s.
CLI_RETRIES = 2


def token_from_env() -> tuple[str | None, str | None]:
    """The client token from the environment and the variable it came from (or None, None)."""
    for name in (ENV_TOKEN, ENV_TOKEN_OLD):
        value = os.environ.get(name)
        if value:
            return value, name
    return None, None


def __getattr__(name: str) -> Any:
    if name == "HubClient":
        from pytest_runtime.hub import CliHubClient

        globals()["HubClient"] = CliHubClient
        return CliHubClient
    raise AttributeError(f"module 'sensor.client' has no attribute {name!r}")
