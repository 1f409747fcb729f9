"""The one client of the hub's HTTP API (docs/reference/http-api.md): plugin, CLI and MCP server.

``pytest --runtime-probe``, the ``python -m sensor`` commands (through the thin
:mod:`sensor.client`) and ``python -m pytest_runtime.mcp`` all talk to the hub through
:class:`HubClient`, so that they share one auth header, one TLS setup (``SENSOR_CA_FILE``),
one retry policy, one timeout and one set of error messages. Only the agent inside a service
has its own transport (standard library, in :mod:`sensor.agent`): nothing on the in-process
sensor path imports this module, which pulls in ``requests``.

Every failure is one of the :class:`~pytest_runtime.errors.HubClientError` classes, with a
message that names the hub, the request, the status and what was expected; each is also the
matching :mod:`sensor.errors` class (``HubUnavailableError``, ``HubResponseError``,
``ConfigError``) for the CLI.

A hub hiccup must not cost a CI job its report, so requests are retried with exponential
backoff through urllib3's ``Retry`` (connection errors, read errors, 429, 502, 503 and 504,
honouring ``Retry-After``). Every request sent is safe to repeat: reads, removals (a second
``DELETE`` answers 404, which :meth:`HubClient.remove` takes as success) and placements,
because the client chooses the probe id: a retried ``POST /v1/probes`` that meets
``409 probe_exists`` finds the probe of the first attempt and checks that it is the same
probe (:meth:`HubClient.place`). Token and redaction changes (admin) are sent once.
"""

from __future__ import annotations

import os
import ssl
import urllib.parse
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pytest_runtime.errors import (
    HubAuthError,
    HubConfigError,
    HubRequestError,
    HubUnreachableError,
)
from sensor._version import __version__
from sensor.client import (
    CLI_RETRIES,
    DEFAULT_HUB_URL,
    ENV_HUB,
    ENV_HUB_OLD,
    ENV_TOKEN,
    ENV_TOKEN_OLD,
    hub_url_from_env,
    token_from_env,
)
from sensor.errors import ConfigError as SensorConfigError

if TYPE_CHECKING:
    from pytest_runtime.evidence import Evidence

__all__ = [
    "DEFAULT_RETRIES",
    "ENV_CA_FILE",
    "RETRY_STATUSES",
    "CliHubClient",
    "HubClient",
    "RetryPolicy",
]

#: Answers that mean "try again later": rate limited, or a proxy/hub that is restarting.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Retries per request after the first attempt (backoff 0.5, 1, 2, 4 s: about 7.5 s in all).
DEFAULT_RETRIES = 4
#: The PEM bundle of the CAs that may sign an https hub's certificate (the sensors read it too).
ENV_CA_FILE = "SENSOR_CA_FILE"
_BACKOFF_FACTOR = 0.5
_BACKOFF_MAX = 4.0
_RETRY_AFTER_MAX = 10.0  # a hub asking for minutes would stall the whole CI job
_STREAM_CHUNK = 64 * 1024  # bytes read at a time from an evidence export
_BODY_SHOWN = 120  # characters of an unexpected body quoted in an error message


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
        other=0,  # a TLS verification failure will not pass on a second try
        redirect=0,
        backoff_factor=_BACKOFF_FACTOR,
        status_forcelist=RETRY_STATUSES,
        # POST is listed because the only POST retried is a placement with a client-chosen id,
        # made idempotent by HubClient.place (see the module docstring); PUT and the admin
        # POST are sent with retries off (HubClient._send(retry=False)).
        allowed_methods=frozenset({"GET", "HEAD", "DELETE", "PUT", "POST"}),
        respect_retry_after_header=True,
        raise_on_status=False,  # the last answer comes back and is reported with its body
        raise_on_redirect=False,
    )


def _ca_file(cafile: str | None) -> str | None:
    """The CA bundle to verify an https hub with: ``cafile``, else ``SENSOR_CA_FILE``, else
    None (the bundle ``requests`` uses: certifi's, or ``REQUESTS_CA_BUNDLE``)."""
    name = "cafile"
    if cafile is None:
        # set but blank is checked below (and refused), not taken for "the default bundle"
        cafile, name = os.environ.get(ENV_CA_FILE), ENV_CA_FILE
    if cafile is None:
        return None
    if not cafile.strip():  # the ssl module takes '' for "no file": the default bundle
        raise HubConfigError(
            f"{name}: got {cafile!r}, expected a readable PEM file of the CA certificates that "
            "sign the hub's certificate (unset it for the default bundle)"
        )
    try:
        ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise HubConfigError(
            f"{name}: got {cafile!r}, expected a readable PEM file of the CA certificates that "
            f"sign the hub's certificate ({exc})"
        ) from None
    return cafile


def _q(part: str) -> str:
    return urllib.parse.quote(str(part), safe="")


class HubClient:
    """Every hub call of the plugin, the CLI and the MCP server (client and admin scopes).

    ``token_variable`` and ``hub_option`` name, in error messages, where the caller reads its
    token and hub URL from (the plugin: ``SENSOR_CLIENT_TOKEN`` and ``--runtime-hub``).
    """

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 10.0,
        retries: int = DEFAULT_RETRIES,
        token_variable: str = "SENSOR_CLIENT_TOKEN",
        cafile: str | None = None,
        hub_option: str = "--runtime-hub",
        user_agent: str = "pytest-runtime",
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise HubConfigError(f"hub URL {url!r}: expected http://host:port or https://host:port")
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.token_variable = token_variable
        self.hub_option = hub_option
        self.cafile = _ca_file(cafile) if parts.scheme == "https" else None
        self._session = requests.Session()
        self._session.headers["User-Agent"] = user_agent
        self._session.headers["Accept"] = "application/json"
        if token:
            self._session.headers["Authorization"] = f"Bearer {token}"
        # Given per request: a Session.verify would lose to REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE
        # (requests merges the environment's bundle over the session's setting).
        self._verify: str | bool = self.cafile if self.cafile is not None else True
        adapter = HTTPAdapter(max_retries=_retry(retries))
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        # One-shot requests (admin changes): a retried token creation would make two tokens.
        self._once = requests.Session()
        self._once.headers.update(self._session.headers)
        once = HTTPAdapter(max_retries=0)
        self._once.mount("http://", once)
        self._once.mount("https://", once)

    def close(self) -> None:
        self._session.close()
        self._once.close()

    def __enter__(self) -> HubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport -----------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        body: Any = None,
        stream: bool = False,
        scope: str = "client",
        retry: bool = True,
        timeout: float | None = None,
    ) -> requests.Response:
        what = f"{method} {self.url}{path}"
        session = self._session if retry else self._once
        tries = self._tries() if retry else ""
        limit = timeout or self.timeout
        try:
            response = session.request(
                method,
                self.url + path,
                params=params,
                json=body,
                timeout=limit,
                stream=stream,
                verify=self._verify,
            )
        except requests.Timeout as exc:
            raise HubUnreachableError(
                f"hub {self.url} did not answer {method} {path} within {limit:g}s{tries}; "
                f"check {self.hub_option} and that the hub is running"
            ) from exc
        except requests.exceptions.SSLError as exc:
            raise HubUnreachableError(
                f"hub {self.url} cannot be reached over TLS ({_reason(exc)}); give the CA "
                f"certificates that sign the hub's certificate in {ENV_CA_FILE} (a PEM file)"
            ) from exc
        except requests.RequestException as exc:
            raise HubUnreachableError(
                f"hub {self.url} cannot be reached ({type(exc).__name__}{tries}); "
                f"check {self.hub_option} and that the hub is running"
            ) from exc
        status = response.status_code
        if status in (401, 403):
            if self.token:
                hint = f"set {self.token_variable} to a token with the {scope} scope"
            else:
                hint = (
                    f"no token was sent: set {self.token_variable} to a token with the "
                    f"{scope} scope"
                )
            raise HubAuthError(
                f"hub {self.url} refused {method} {path} with {status}: "
                f"{_error_message(response)}; {hint}",
                status=status,
                code=_error_code(response),
            )
        if status >= 400:
            again = tries if status in RETRY_STATUSES else ""
            raise HubRequestError(
                f"{what} failed with {status}{again}: {_error_message(response)}",
                status=status,
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
                f"is not JSON: {response.text[:80]!r}; expected JSON from the hub (is the URL a "
                "proxy or another server?)",
                status=response.status_code,
            ) from exc

    def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        timeout: float | None = None,
        scope: str = "client",
    ) -> Any:
        """Send one request; return the decoded JSON answer (``None`` query values are left
        out; a list value repeats the parameter)."""
        return self._json(
            method,
            path,
            params=_params(query),
            body=None if body is None else dict(body),
            timeout=timeout,
            scope=scope,
            retry=method in ("GET", "HEAD", "DELETE"),
        )

    # -- open ----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        data = self._json("GET", "/v1/health")
        return data if isinstance(data, dict) else {}

    def check(self) -> None:
        """Fail early and clearly: the hub answers and accepts the token."""
        self.health()
        self.sources()

    # -- client scope --------------------------------------------------------------------

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

    def probes(
        self, *, signature: str | None = None, state: str | None = None
    ) -> list[dict[str, Any]]:
        """Every probe record on the hub (optionally of one signature, in one state)."""
        params = _params({"signature": signature, "state": state})
        data = self._json("GET", "/v1/probes", params=params)
        return list(_field(data, "probes", "GET /v1/probes"))

    def signatures_at(self, location: str) -> list[str]:
        """The signatures of the hub's probes at ``location`` (its string form), any state,
        sorted (the evidence strategies read every probe that observed the location)."""
        found = set()
        for record in self.probes():
            probe = record.get("probe") or {}
            if str(probe.get("location")) == location and probe.get("signature"):
                found.add(str(probe["signature"]))
        return sorted(found)

    def probe(self, probe_id: str) -> dict[str, Any]:
        data = self._json("GET", f"/v1/probes/{_q(probe_id)}")
        return dict(_field(data, "probe", "GET /v1/probes/{id}"))

    def list_probes(
        self, *, state: str | None = "active", standing: bool | None = None
    ) -> list[dict[str, Any]]:
        """Probe records of every signature (``standing``: only standing or on-demand ones)."""
        params: dict[str, Any] = {}
        if state:
            params["state"] = state
        if standing is not None:
            params["standing"] = "true" if standing else "false"
        data = self._json("GET", "/v1/probes", params=params)
        return list(_field(data, "probes", "GET /v1/probes"))

    def standing_summary(self, probe_id: str) -> list[dict[str, Any]]:
        """A standing probe's evidence per service version (seen, kept, strata, time span)."""
        data = self._json("GET", f"/v1/probes/{_q(probe_id)}/standing")
        return list(_field(data, "versions", "GET /v1/probes/{id}/standing"))

    def place(
        self,
        probe: Mapping[str, Any],
        selector: Mapping[str, Any],
        ttl: float | None,
        *,
        standing: bool = False,
    ) -> dict[str, Any]:
        """Place a probe; safe to retry, since the probe's id is ours.

        When a retried request meets ``409 probe_exists``, the first attempt reached the hub
        and only its answer was lost: the stored probe is returned if it is the one sent
        (same signature and selector); any other probe with that id is a real conflict.
        ``ttl`` None takes the hub's default. ``standing``: no TTL; the probe stays until it is
        removed (``python -m pytest_runtime publish``).
        """
        body: dict[str, Any] = {"probe": dict(probe), "selector": dict(selector)}
        if standing:
            body["standing"] = True
        elif ttl is not None:
            body["ttl"] = ttl
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

    def place_probe(
        self,
        probe: Mapping[str, Any],
        *,
        selector: Mapping[str, Any] | None = None,
        ttl: float | None = None,
    ) -> dict[str, Any]:
        """:meth:`place` with a fresh probe id when ``probe`` has none (so a retry is safe)."""
        if not probe.get("id"):
            probe = {**probe, "id": uuid.uuid4().hex}
        return self.place(probe, selector or {}, ttl)

    def remove(self, probe_id: str) -> None:
        try:
            self._send("DELETE", f"/v1/probes/{_q(probe_id)}")
        except HubRequestError as exc:
            if exc.status != 404:  # already gone (expired or removed by someone else): fine
                raise

    def remove_probe(self, probe_id: str) -> dict[str, Any]:
        """Remove a probe and return its final record (404 when there is no such probe)."""
        data = self._json("DELETE", f"/v1/probes/{_q(probe_id)}")
        return dict(_field(data, "probe", "DELETE /v1/probes/{id}"))

    def hits(
        self, probe_id: str, *, since: float | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        """The first ``limit`` hits of one placed probe (enough to count progress cheaply)."""
        return list(self.hits_page(probe_id, since=since, limit=limit)["hits"])

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
        """One page of a probe's hits: ``{"hits": [...], "next": cursor or None}``."""
        params = _params(
            {
                "since": since,
                "until": until,
                "source_id": source_id,
                "after": after,
                "limit": limit,
            }
        )
        what = "GET /v1/probes/{id}/hits"
        data = self._json("GET", f"/v1/probes/{_q(probe_id)}/hits", params=params)
        hits = _field(data, "hits", what)
        if not isinstance(hits, list):
            raise HubRequestError(f"{what}: expected a list of hits, got {hits!r:.80}")
        cursor = data.get("next")
        return {"hits": hits, "next": None if cursor is None else str(cursor)}

    def iter_hits(self, probe_id: str, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every hit of a probe, following the pages (``filters``: :meth:`hits_page`'s)."""
        after = None
        while True:
            page = self.hits_page(probe_id, after=after, **filters)
            yield from page["hits"]
            after = page["next"]
            if not after:
                return

    def hit(self, probe_id: str, hit_id: str, *, source_id: str | None = None) -> dict[str, Any]:
        """One hit of a probe by its hit id (404 when the probe or the hit is absent; 409 when
        two sources sent that id and ``source_id`` does not pick one)."""
        data = self._json(
            "GET",
            f"/v1/probes/{_q(probe_id)}/hits/{_q(hit_id)}",
            params=_params({"source_id": source_id}),
        )
        return dict(_field(data, "hit", "GET /v1/probes/{id}/hits/{hit_id}"))

    def evidence(self, signature: str, *, since: float | None = None) -> Evidence:
        """The hub's evidence export of a signature, read line by line as it streams in.

        An export holds every hit of the signature in the window (it can be far larger than
        memory should hold): each line is parsed and fed to :class:`Evidence` as it arrives,
        which keeps at most ``MAX_HITS_PER_SIGNATURE`` hits and counts the rest, so what this
        process holds is bounded by that cap and one chunk, whatever the export's size.
        """
        from pytest_runtime.evidence import parse_lines

        name = f"hub {self.url} evidence for signature {signature}"
        lines = self._export_lines("/v1/evidence", {"signature": signature, "since": since}, name)
        return parse_lines(lines, name)

    def probe_evidence(self, probe_id: str, *, since: float | None = None) -> Evidence:
        """One probe's evidence export (a standing probe's: its bounded sample), streamed."""
        from pytest_runtime.evidence import parse_lines

        name = f"hub {self.url} evidence of probe {probe_id}"
        path = f"/v1/probes/{_q(probe_id)}/evidence"
        return parse_lines(self._export_lines(path, {"since": since}, name), name)

    def evidence_lines(
        self,
        *,
        probe_id: str | None = None,
        signature: str | None = None,
        since: float | None = None,
        until: float | None = None,
    ) -> Iterator[str]:
        """The evidence JSON Lines of one probe or one signature, line by line (with newlines),
        as they stream in."""
        if (probe_id is None) == (signature is None):
            raise HubConfigError("evidence: expected exactly one of a probe id or a signature")
        query: dict[str, Any]
        if probe_id is not None:
            path, query = f"/v1/probes/{_q(probe_id)}/evidence", {"since": since, "until": until}
            name = f"hub {self.url} evidence of probe {probe_id}"
        else:
            path = "/v1/evidence"
            query = {"signature": signature, "since": since, "until": until}
            name = f"hub {self.url} evidence for signature {signature}"
        for line in self._export_lines(path, query, name):
            yield line + "\n"

    def _export_lines(self, path: str, query: Mapping[str, Any], name: str) -> Iterator[str]:
        response = self._send("GET", path, params=_params(query), stream=True)
        read = 0
        try:
            # The export is JSON Lines: a raw newline never occurs inside a JSON value.
            for raw in _lines(response.iter_content(_STREAM_CHUNK)):
                read += 1
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise HubRequestError(
                        f"{name}: line {read} is not UTF-8 text ({exc.reason})"
                    ) from exc
        except requests.RequestException as exc:
            raise HubUnreachableError(
                f"{name}: the stream broke after {read} line(s) ({type(exc).__name__}); "
                "check that the hub is running"
            ) from exc
        finally:
            response.close()

    def redaction(self) -> dict[str, Any]:
        """The hub's redaction rules: ``names``, ``patterns``, ``allow``, ``updated_at/_by``."""
        data = self._json("GET", "/v1/redaction")
        return dict(_field(data, "redaction", "GET /v1/redaction"))

    # -- admin scope ---------------------------------------------------------------------

    def add_token(self, name: str, scope: str, services: list[str] | None = None) -> dict[str, Any]:
        """Create a token; ``services`` limits a sensor token to those service names."""
        body: dict[str, Any] = {"name": name, "scope": scope}
        if services:
            body["services"] = list(services)
        data = self._json("POST", "/v1/tokens", body=body, scope="admin", retry=False)
        if not isinstance(data, dict):
            raise HubRequestError(f"POST /v1/tokens: expected a JSON object, got {data!r:.80}")
        return data

    def tokens(self) -> list[dict[str, Any]]:
        data = self._json("GET", "/v1/tokens", scope="admin")
        return list(_field(data, "tokens", "GET /v1/tokens"))

    def remove_token(self, token_id: str) -> dict[str, Any]:
        data = self._json("DELETE", f"/v1/tokens/{_q(token_id)}", scope="admin")
        return dict(_field(data, "token", "DELETE /v1/tokens/{id}"))

    def set_redaction(
        self,
        *,
        names: Sequence[str] = (),
        patterns: Sequence[str] = (),
        allow: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Replace the hub's redaction rules (admin); every sensor applies them at once."""
        body = {"names": list(names), "patterns": list(patterns), "allow": list(allow)}
        data = self._json("PUT", "/v1/redaction", body=body, scope="admin", retry=False)
        return dict(_field(data, "redaction", "PUT /v1/redaction"))


class CliHubClient(HubClient):
    """The one hub client with the CLI's defaults (``sensor.client.HubClient``).

    The URL from ``PYTEST_RUNTIME_HUB`` (then the deprecated ``SENSOR_HUB_URL``, with a
    DeprecationWarning), the token from ``SENSOR_CLIENT_TOKEN`` (then the deprecated
    ``SENSOR_TOKEN``, likewise), sources of every state, fewer retries."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        cafile: str | None = None,
        retries: int | None = None,
        hub_option: str | None = None,
    ) -> None:
        hub_option = hub_option or f"--hub or {ENV_HUB}"
        if url is None:
            try:
                url, hub_variable = hub_url_from_env()
            except SensorConfigError as exc:
                raise HubConfigError(str(exc)) from None
            if hub_variable == ENV_HUB_OLD:
                hub_option = f"--hub or {ENV_HUB_OLD}"
                warnings.warn(
                    f"{ENV_HUB_OLD} as the client's hub is deprecated: set {ENV_HUB} (the hub "
                    f"the pytest plugin reads too; {ENV_HUB_OLD} is the hub of services' sensors)",
                    DeprecationWarning,
                    stacklevel=2,
                )
            url = url or DEFAULT_HUB_URL
        variable = ENV_TOKEN
        if token is None:
            token, found = token_from_env()
            if found == ENV_TOKEN_OLD:
                variable = ENV_TOKEN_OLD
                warnings.warn(
                    f"{ENV_TOKEN_OLD} as the client token is deprecated: set {ENV_TOKEN} "
                    f"({ENV_TOKEN_OLD} is the sensor token of services)",
                    DeprecationWarning,
                    stacklevel=2,
                )
        super().__init__(
            url,
            token,
            timeout=timeout,
            retries=CLI_RETRIES if retries is None else retries,
            token_variable=f"--token or {variable}",
            cafile=cafile,
            hub_option=hub_option,
            user_agent=f"sensor-cli/{__version__}",
        )

    def sources(
        self,
        *,
        service: str | None = None,
        labels: Mapping[str, str] | None = None,
        state: str | None = None,
    ) -> list[dict[str, Any]]:
        """Sources of every state unless ``state`` is given (the plugin's default is live)."""
        return super().sources(service=service, labels=labels, state=state)


def _params(query: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """Query pairs: ``None`` values left out, a list or tuple value repeated."""
    pairs: list[tuple[str, str]] = []
    for key, value in (query or {}).items():
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        pairs += [(key, str(item)) for item in values]
    return pairs


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The lines of a byte stream without their newlines, as each completes (memory: one
    line and one chunk). ``requests``' ``iter_lines`` is not used: it yields an empty line
    wherever a chunk ends on the delimiter."""
    pending = bytearray()
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            pending += chunk[start:end]
            yield bytes(pending)
            pending.clear()
            start = end + 1
        pending += chunk[start:]
    if pending:
        yield bytes(pending)


def _reason(exc: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error (the TLS verification failure)."""
    while exc.args and isinstance(exc.args[0], BaseException):
        exc = exc.args[0]
    reason = getattr(exc, "reason", None)
    if isinstance(reason, BaseException):
        exc = reason
    return str(exc)[:200] or type(exc).__name__


def _same_probe(stored: Any, sent: Mapping[str, Any]) -> bool:
    """True when the hub's stored probe observes what ``sent`` asks (the hub adds an expiry)."""
    if not isinstance(stored, Mapping):
        return False
    from sensor.errors import SensorError
    from sensor.probes import Probe

    try:  # the hub stores the normalized spec: compare like with like
        sent = Probe.from_dict(dict(sent)).to_dict()
    except (SensorError, TypeError, ValueError):  # not a spec this version reads: as sent
        pass
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
    """The hub's own error message, or the start of whatever else answered (a proxy page)."""
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        text = response.text[:_BODY_SHOWN].strip()
        return repr(text) if text else "(empty body)"
