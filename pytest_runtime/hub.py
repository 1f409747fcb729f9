"""A small client of the hub's HTTP API (docs/reference/http-api.md), for ``--runtime-probe``.

Imported only when ``--runtime-probe`` is given: it pulls in ``requests``. Every failure is
one of the :class:`~pytest_runtime.errors.HubClientError` classes, with a message that names
the hub, the request and what came back.

A hub hiccup must not cost a CI job its report, so requests are retried with exponential
backoff through urllib3's ``Retry`` (connection errors, read errors, 429, 502, 503 and 504,
honouring ``Retry-After``). Every request the plugin sends is safe to repeat: reads, removals
(a second ``DELETE`` answers 404, which is success here) and placements, because the plugin
chooses the probe id: a retried ``POST /v1/probes`` that meets ``409 probe_exists`` finds the
probe of the first attempt and checks that it is the same probe (:meth:`HubClient.place`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pytest_runtime.errors import (
    HubAuthError,
    HubRequestError,
    HubUnreachableError,
)
from pytest_runtime.evidence import Evidence, parse_lines

__all__ = ["DEFAULT_RETRIES", "RETRY_STATUSES", "HubClient", "RetryPolicy"]

#: Answers that mean "try again later": rate limited, or a proxy/hub that is restarting.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Retries per request after the first attempt (backoff 0.5, 1, 2, 4 s: about 7.5 s in all).
DEFAULT_RETRIES = 4
_BACKOFF_FACTOR = 0.5
_BACKOFF_MAX = 4.0
_RETRY_AFTER_MAX = 10.0  # a hub asking for minutes would stall the whole CI job
_STREAM_CHUNK = 64 * 1024  # bytes read at a time from an evidence export


class RetryPolicy(Retry):
    """urllib3's ``Retry`` with the backoff and ``Retry-After`` capped.

    The caps are applied by overriding the two computations rather than through keyword
    arguments, which older urllib3 releases (still allowed by ``requests``) do not accept.
    """

    def get_backoff_time(self) -> float:
        return min(float(super().get_backoff_time()), _BACKOFF_MAX)

    def parse_retry_after(self, retry_after: str) -> float:
        return min(float(super().parse_retry_after(retry_after)), _RETRY_AFTER_MAX)


def _retry(retries: int) -> RetryPolicy:
    return RetryPolicy(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        other=0,
        redirect=0,
        backoff_factor=_BACKOFF_FACTOR,
        status_forcelist=RETRY_STATUSES,
        # POST is listed because the only POST sent is a placement with a client-chosen id,
        # made idempotent by HubClient.place (see the module docstring).
        allowed_methods=frozenset({"GET", "HEAD", "DELETE", "PUT", "POST"}),
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer comes back and is reported with its body
        raise_on_redirect=False,
    )


class HubClient:
    """The client-scope verbs the plugin needs: sources, probes, evidence."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 10.0,
        retries: int = DEFAULT_RETRIES,
        token_variable: str = "SENSOR_CLIENT_TOKEN",
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.token_variable = token_variable
        self._session = requests.Session()
        self._session.headers["User-Agent"] = "pytest-runtime"
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"
        adapter = HTTPAdapter(max_retries=_retry(retries))
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def close(self) -> None:
        self._session.close()

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        stream: bool = False,
    ) -> requests.Response:
        what = f"{method} {self.url}{path}"
        try:
            response = self._session.request(
                method,
                self.url + path,
                params=params,
                json=body,
                timeout=self.timeout,
                stream=stream,
            )
        except requests.Timeout as exc:
            raise HubUnreachableError(
                f"hub {self.url} did not answer {method} {path} within {self.timeout:g}s"
                f"{self._tries()}"
            ) from exc
        except requests.RequestException as exc:
            raise HubUnreachableError(
                f"hub {self.url} cannot be reached ({type(exc).__name__}{self._tries()}); "
                "check --runtime-hub and that the hub is running"
            ) from exc
        if response.status_code in (401, 403):
            raise HubAuthError(
                f"hub {self.url} refused {method} {path} with {response.status_code}: "
                f"{_error_message(response)}; set {self.token_variable} to a token with the "
                "client scope"
            )
        if response.status_code >= 400:
            again = self._tries() if response.status_code in RETRY_STATUSES else ""
            raise HubRequestError(
                f"{what} failed with {response.status_code}{again}: {_error_message(response)}",
                status=response.status_code,
                code=_error_code(response),
            )
        return response

    def _tries(self) -> str:
        return f", after {self.retries + 1} attempts" if self.retries else ""

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
        """Place a probe; safe to retry, since the probe's id is ours.

        When a retried request meets ``409 probe_exists``, the first attempt reached the hub
        and only its answer was lost: the stored probe is returned if it is the one sent
        (same signature and selector); any other probe with that id is a real conflict.
        """
        body = {"probe": dict(probe), "selector": dict(selector), "ttl": ttl}
        try:
            data = self._json("POST", "/v1/probes", body=body)
        except HubRequestError as exc:
            probe_id = probe.get("id")
            if exc.status != 409 or exc.code != "probe_exists" or not probe_id:
                raise
            record = self.probe(str(probe_id))
            if (
                record.get("probe", {}).get("id") != probe_id
                or dict(record.get("selector") or {}) != dict(selector)
                or not _same_probe(record.get("probe"), probe)
            ):
                raise
            return record
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
        """The hub's evidence export of a signature, read line by line as it streams in.

        An export holds every hit of the signature in the window (it can be far larger than
        memory should hold): each line is parsed and fed to :class:`Evidence` as it arrives,
        which keeps at most ``MAX_HITS_PER_SIGNATURE`` hits and counts the rest, so what this
        process holds is bounded by that cap and one chunk, whatever the export's size.
        """
        params: dict[str, Any] = {"signature": signature}
        if since is not None:
            params["since"] = since
        name = f"hub {self.url} evidence for signature {signature}"
        response = self._send("GET", "/v1/evidence", params=params, stream=True)
        read = 0

        def lines() -> Iterator[str]:
            nonlocal read
            # The export is JSON Lines: a raw newline never occurs inside a JSON value.
            for raw in response.iter_lines(chunk_size=_STREAM_CHUNK, delimiter=b"\n"):
                read += 1
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise HubRequestError(
                        f"{name}: line {read} is not UTF-8 text ({exc.reason})"
                    ) from exc

        try:
            return parse_lines(lines(), name)
        except requests.RequestException as exc:
            raise HubUnreachableError(
                f"{name}: the stream broke after {read} line(s) ({type(exc).__name__}); "
                "check that the hub is running"
            ) from exc
        finally:
            response.close()


def _same_probe(stored: Any, sent: Mapping[str, Any]) -> bool:
    """True when the hub's stored probe observes what ``sent`` asks (the hub adds an expiry)."""
    if not isinstance(stored, Mapping):
        return False
    keys = ("kind", "location", "capture", "condition", "expect", "template")
    return all(stored.get(key) == sent.get(key) for key in keys)


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
