"""A small hub client on the standard library (urllib), used by the CLI and by scripts.

Every failure is a :class:`~sensor.errors.HubUnavailableError` (the hub could not be reached)
or a :class:`~sensor.errors.HubResponseError` (it answered an error; the message is the hub's).
"""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from sensor._version import __version__
from sensor.errors import ConfigError, HubResponseError, HubUnavailableError

__all__ = ["DEFAULT_HUB_URL", "ENV_TOKEN", "ENV_TOKEN_OLD", "HubClient", "token_from_env"]

DEFAULT_HUB_URL = "http://127.0.0.1:8765"
#: The client token: one name for the CLI and the pytest plugin.
ENV_TOKEN = "SENSOR_CLIENT_TOKEN"
#: The CLI's former name for it, which services also use for their *sensor* token: still read
#: (after ENV_TOKEN), with a deprecation note.
ENV_TOKEN_OLD = "SENSOR_TOKEN"


def token_from_env() -> tuple[str | None, str | None]:
    """The client token from the environment and the variable it came from (or None, None)."""
    for name in (ENV_TOKEN, ENV_TOKEN_OLD):
        value = os.environ.get(name)
        if value:
            return value, name
    return None, None


def _error_text(status: int, data: bytes) -> str:
    try:
        decoded = json.loads(data)
        error = decoded["error"]
        return f"{error['message']} ({status} {error['code']})"
    except (ValueError, KeyError, TypeError):
        text = data[:200].decode("utf-8", "replace").strip()
        return f"{status} {text or 'with an empty body'}"


class HubClient:
    """Talk to one hub with one token (defaults: SENSOR_HUB_URL, and SENSOR_CLIENT_TOKEN, then
    the deprecated SENSOR_TOKEN with a DeprecationWarning)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        cafile: str | None = None,
    ) -> None:
        url = url or os.environ.get("SENSOR_HUB_URL") or DEFAULT_HUB_URL
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"hub URL {url!r}: expected http://host:port or https://host:port")
        self.url = url.rstrip("/")
        if token is None:
            token, variable = token_from_env()
            if variable == ENV_TOKEN_OLD:
                warnings.warn(
                    f"{ENV_TOKEN_OLD} as the client token is deprecated: set {ENV_TOKEN} "
                    f"({ENV_TOKEN_OLD} is the sensor token of services)",
                    DeprecationWarning,
                    stacklevel=2,
                )
        self.token = token
        self.timeout = timeout
        self._context = (
            ssl.create_default_context(cafile=cafile) if parts.scheme == "https" else None
        )

    # -- transport -----------------------------------------------------------------------

    def _open(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        url = self.url + path
        if query:
            pairs = []
            for key, value in query.items():
                if value is None:
                    continue
                values = value if isinstance(value, list | tuple) else [value]
                pairs += [(key, str(item)) for item in values]
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        headers = {"Accept": "application/json", "User-Agent": f"sensor-cli/{__version__}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            return urllib.request.urlopen(
                request, timeout=timeout or self.timeout, context=self._context
            )
        except urllib.error.HTTPError as exc:
            with exc:
                text = _error_text(exc.code, exc.read(64 * 1024))
            raise HubResponseError(
                f"hub {self.url}: {method} {path}: {text}", status=exc.code
            ) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise HubUnavailableError(f"hub {self.url} is unreachable: {reason}") from exc

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send one request; return the decoded JSON answer."""
        with self._open(method, path, query=query, body=body, timeout=timeout) as response:
            data = response.read()
        try:
            return json.loads(data)
        except ValueError:
            raise HubResponseError(
                f"hub {self.url}: {method} {path} answered {data[:80]!r}, expected JSON",
                status=200,
            ) from None

    # -- open ----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/v1/health")
        return result

    # -- client scope --------------------------------------------------------------------

    def sources(
        self,
        *,
        service: str | None = None,
        labels: Mapping[str, str] | None = None,
        state: str | None = None,
    ) -> list[dict[str, Any]]:
        label_args = [f"{k}={v}" for k, v in (labels or {}).items()]
        query = {"service": service, "label": label_args, "state": state}
        result: list[dict[str, Any]] = self.request("GET", "/v1/sources", query=query)["sources"]
        return result

    def place_probe(
        self,
        probe: Mapping[str, Any],
        *,
        selector: Mapping[str, Any] | None = None,
        ttl: float | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"probe": dict(probe), "selector": dict(selector or {})}
        if ttl is not None:
            body["ttl"] = ttl
        result: dict[str, Any] = self.request("POST", "/v1/probes", body=body)["probe"]
        return result

    def probes(
        self, *, signature: str | None = None, state: str | None = None
    ) -> list[dict[str, Any]]:
        query = {"signature": signature, "state": state}
        result: list[dict[str, Any]] = self.request("GET", "/v1/probes", query=query)["probes"]
        return result

    def probe(self, probe_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/v1/probes/{_q(probe_id)}")["probe"]
        return result

    def remove_probe(self, probe_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("DELETE", f"/v1/probes/{_q(probe_id)}")["probe"]
        return result

    def hits(
        self,
        probe_id: str,
        *,
        since: float | None = None,
        until: float | None = None,
        source_id: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """One page: ``{"hits": [...], "next": cursor or None}``."""
        query = {
            "since": since,
            "until": until,
            "source_id": source_id,
            "after": after,
            "limit": limit,
        }
        result: dict[str, Any] = self.request("GET", f"/v1/probes/{_q(probe_id)}/hits", query=query)
        return result

    def iter_hits(self, probe_id: str, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every hit of a probe, following the pages."""
        after = None
        while True:
            page = self.hits(probe_id, after=after, **filters)
            yield from page["hits"]
            after = page.get("next")
            if not after:
                return

    def evidence_lines(
        self,
        *,
        probe_id: str | None = None,
        signature: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> Iterator[str]:
        """The evidence JSON Lines of one probe or one signature, line by line (with newlines)."""
        if (probe_id is None) == (signature is None):
            raise ConfigError("evidence: expected exactly one of a probe id or a signature")
        query: dict[str, Any]
        if probe_id is not None:
            path, query = f"/v1/probes/{_q(probe_id)}/evidence", {"since": since, "until": until}
        else:
            path = "/v1/evidence"
            query = {"signature": signature, "since": since, "until": until}
        with self._open("GET", path, query=query) as response:
            for raw in response:
                yield raw.decode("utf-8")

    # -- admin scope ---------------------------------------------------------------------

    def add_token(self, name: str, scope: str, services: list[str] | None = None) -> dict[str, Any]:
        """Create a token; ``services`` limits a sensor token to those service names."""
        body: dict[str, Any] = {"name": name, "scope": scope}
        if services:
            body["services"] = list(services)
        result: dict[str, Any] = self.request("POST", "/v1/tokens", body=body)
        return result

    def tokens(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/v1/tokens")["tokens"]
        return result

    def remove_token(self, token_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("DELETE", f"/v1/tokens/{_q(token_id)}")["token"]
        return result

    def redaction(self) -> dict[str, Any]:
        """The hub's redaction rules: ``names``, ``patterns``, ``allow``, ``updated_at/_by``."""
        result: dict[str, Any] = self.request("GET", "/v1/redaction")["redaction"]
        return result

    def set_redaction(
        self,
        *,
        names: Sequence[str] = (),
        patterns: Sequence[str] = (),
        allow: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Replace the hub's redaction rules (admin); every sensor applies them at once."""
        body = {"names": list(names), "patterns": list(patterns), "allow": list(allow)}
        result: dict[str, Any] = self.request("PUT", "/v1/redaction", body=body)["redaction"]
        return result


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")
