"""The CLI's face of the one hub client (:class:`pytest_runtime.hub.HubClient`), for scripts too.

``sensor.client.HubClient`` is :class:`pytest_runtime.hub.CliHubClient`, that client with the
CLI's defaults: the hub URL from ``PYTEST_RUNTIME_HUB`` (the variable the plugin and the MCP
server read; then the deprecated ``SENSOR_HUB_URL``; else ``http://127.0.0.1:8765``), the token
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
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sensor.config import check_hub_url

if TYPE_CHECKING:
    from pytest_runtime.hub import CliHubClient as HubClient

__all__ = [
    "CLI_RETRIES",
    "DEFAULT_HUB_URL",
    "ENV_HUB",
    "ENV_HUB_OLD",
    "ENV_TOKEN",
    "ENV_TOKEN_OLD",
    "HubClient",
    "hub_url_from_env",
    "token_from_env",
]

DEFAULT_HUB_URL = "http://127.0.0.1:8765"
#: The client token: one name for the CLI, the pytest plugin and the MCP server.
ENV_TOKEN = "SENSOR_CLIENT_TOKEN"
#: The CLI's former name for it, which services also use for their *sensor* token: still read
#: (after ENV_TOKEN), with a deprecation note.
ENV_TOKEN_OLD = "SENSOR_TOKEN"
#: The hub a client talks to: one name for the CLI, the pytest plugin and the MCP server.
ENV_HUB = "PYTEST_RUNTIME_HUB"
#: The CLI's former name for it, which services also use for their *sensor*'s hub: still read
#: (after ENV_HUB), with a deprecation note.
ENV_HUB_OLD = "SENSOR_HUB_URL"
#: Retries per request (backoff 0.5 then 1 s): a hub that is down is reported within ~2 s.
CLI_RETRIES = 2


def token_from_env() -> tuple[str | None, str | None]:
    """The client token from the environment and the variable it came from (or None, None)."""
    for name in (ENV_TOKEN, ENV_TOKEN_OLD):
        value = os.environ.get(name)
        if value:
            return value, name
    return None, None


def hub_url_from_env(
    environ: Mapping[str, str] | None = None,
) -> tuple[str | None, str | None]:
    """The client's hub URL from the environment and the variable it came from (or None, None).

    A variable that is set is used even when blank, so that a blank or malformed value is a
    :class:`~sensor.errors.ConfigError` naming it, never a silent fall-back to the default hub.
    """
    env = os.environ if environ is None else environ
    for name in (ENV_HUB, ENV_HUB_OLD):
        raw = env.get(name)
        if raw is not None:
            return check_hub_url(name, raw), name
    return None, None


def __getattr__(name: str) -> Any:
    if name == "HubClient":
        from pytest_runtime.hub import CliHubClient

        globals()["HubClient"] = CliHubClient
        return CliHubClient
    raise AttributeError(f"module 'sensor.client' has no attribute {name!r}")
