"""A small client of the hub's HTTP API (docs/reference/http-api.md), for ``--runtime-probe``.

Imported only when ``--runtime-probe`` is given: it pulls in ``requests``. Every failure is
one of the :class:`~pytest_runtime.errors.HubClientError` classes, with a message that names
the hub, the request and what came back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from pytest_runtime.errors import (
    HubAuthError,
    HubRequestError,
    HubUnreachableError,
)
from pytest_runtime.evidence import Evidence, parse_lines

__all__ = ["HubClient"]


class HubClient:
    """The client-scope verbs the plugin needs: sources, probes, evidence."""

    def __init__(self, url: str, token: str | None, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "pytest-runtime"
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        self._session.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
    ) -> requests.Response:
        what = f"{method} {self.url}{path}"
        try:
            response = self._session.request(
                method, self.url + path, params=params, json=body, timeout=self.timeout
            )
        except requests.Timeout as exc:
            raise HubUnreachableError(
                f"hub {self.url} did not answer {method} {path} within {self.timeout:g}s"
            ) from exc
        except requests.RequestException as exc:
            raise HubUnreachableError(
                f"hub {self.url} cannot be reached ({type(exc).__name__}); "
                "check --runtime-hub and that the hub is running"
            ) from exc
        if response.status_code in (401, 403):
            raise HubAuthError(
                f"hub {self.url} refused {method} {path} with {response.status_code}: "
                f"{_error_message(response)}; set PYTEST_RUNTIME_TOKEN to a token with the "
                "client scope"
            )
        if response.status_code >= 400:
            raise HubRequestError(
                f"{what} failed with {response.status_code}: {_error_message(response)}",
                status=response.status_code,
                code=_error_code(response),
            )
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise HubRequestError(
                f"{method} {self.url}{path} answered {response.status_code} with a body that "
                f"is not JSON: {response.text[:80]!r}",
                status=response.status_code,
            ) from exc

    def health(self) -> dict[str, Any]:
        data = self._json("GET", "/v1/health")
        return data if isinstance(data, dict) else {}

    def check(self) -> None:
        """Fail early and clearly: the hub answers and accepts the token."""
        self.health()
        self.sources()

    def sources(
        self,
        *,
        service: str | None = None,
        labels: Mapping[str, str] | None = None,
        state: str | None = "live",
    ) -> list[dict[str, Any]]:
        params: list[tuple[str, str]] = []
        if service:
            params.append(("service", service))
        for key, value in sorted((labels or {}).items()):
            params.append(("label", f"{key}={value}"))
        if state:
            params.append(("state", state))
        data = self._json("GET", "/v1/sources", params=params)
        return list(_field(data, "sources", "GET /v1/sources"))

    def find_probes(self, signature: str, *, state: str = "active") -> list[dict[str, Any]]:
        data = self._json("GET", "/v1/probes", params={"signature": signature, "state": state})
        return list(_field(data, "probes", "GET /v1/probes"))

    def probe(self, probe_id: str) -> dict[str, Any]:
        data = self._json("GET", f"/v1/probes/{probe_id}")
        return dict(_field(data, "probe", "GET /v1/probes/{id}"))

    def place(
        self, probe: Mapping[str, Any], selector: Mapping[str, Any], ttl: float
    ) -> dict[str, Any]:
        body = {"probe": dict(probe), "selector": dict(selector), "ttl": ttl}
        data = self._json("POST", "/v1/probes", body=body)
        return dict(_field(data, "probe", "POST /v1/probes"))

    def remove(self, probe_id: str) -> None:
        try:
            self._send("DELETE", f"/v1/probes/{probe_id}")
        except HubRequestError as exc:
            if exc.status != 404:  # already gone (expired or removed by someone else): fine
                raise

    def hits(
        self, probe_id: str, *, since: float | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The first ``limit`` hits of one placed probe (enough to count progress cheaply)."""
        params: dict[str, Any] = {"limit": limit}
        if since is not None:
            params["since"] = since
        data = self._json("GET", f"/v1/probes/{probe_id}/hits", params=params)
        return list(_field(data, "hits", "GET /v1/probes/{id}/hits"))

    def evidence(self, signature: str, *, since: float | None = None) -> Evidence:
        params: dict[str, Any] = {"signature": signature}
        if since is not None:
            params["since"] = since
        response = self._send("GET", "/v1/evidence", params=params)
        name = f"hub {self.url} evidence for signature {signature}"
        return parse_lines(response.text.splitlines(), name)


def _field(data: Any, name: str, what: str) -> Any:
    if not isinstance(data, dict) or name not in data:
        raise HubRequestError(f"{what}: expected a JSON object with {name!r}, got {data!r:.80}")
    return data[name]


def _error_code(response: requests.Response) -> str | None:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return str(code)


def _error_message(response: requests.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return repr(response.text[:120]) if response.text else "(empty body)"
