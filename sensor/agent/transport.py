"""HTTP to the hub with the standard library only: timeouts, bounded bodies, backoff with jitter."""

from __future__ import annotations

import http.client
import json
import random
import ssl
import urllib.parse
from collections.abc import Mapping
from typing import Any

from sensor._version import __version__
from sensor.errors import HubResponseError, HubUnavailableError
from sensor.threads import wait_readable

__all__ = ["MAX_RESPONSE_BYTES", "Backoff", "Transport"]

#: A hub answer larger than this is garbage: reading it would grow the host's memory.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024


class Backoff:
    """Exponential backoff with "equal jitter": delay in [d/2, d], d = min(cap, base * 2**n).

    The jitter spreads the retries of many replicas after a hub restart; the lower half keeps
    a failing hub from being hammered by delays that happen to be drawn near zero.
    """

    def __init__(self, base: float = 0.1, cap: float = 30.0, rng: random.Random | None = None):
        self.base = base
        self.cap = cap
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * (2 ** min(self.attempts, 32)))
        self.attempts += 1
        return float(ceiling / 2 + self._rng.uniform(0, ceiling / 2))

    def reset(self) -> None:
        self.attempts = 0


class Transport:
    """One keep-alive connection to the hub, used by one thread at a time.

    Every failure becomes :class:`HubUnavailableError` (could not talk) or
    :class:`HubResponseError` (talked, but the answer was an error status or not a JSON object).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None,
        timeout: float = 5.0,
        *,
        ca_file: str | None = None,
    ) -> None:
        shown = shown_url(base_url)
        try:
            parts = urllib.parse.urlsplit(base_url)
            port = parts.port
        except ValueError:
            raise ValueError(f"hub URL {shown!r}: not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"hub URL {shown!r}: expected http:// or https://")
        self.base_url = base_url.rstrip("/")
        #: The URL as messages quote it: no user name or password, secret parameters redacted
        #: (the configuration refuses such URLs; a Transport built directly may hold one).
        self.shown_url = shown.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = port
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        # Built once, here: loading a CA bundle reads files, which a request must not wait on.
        # None for http; otherwise the system's CAs, or only those of ``ca_file``.
        self._ssl: ssl.SSLContext | None = (
            ssl.create_default_context(cafile=ca_file) if self._https else None
        )
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"pytest-runtime-sensor/{__version__}",
        }
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        conn = self._conn
        if conn is None:
            if self._https:
                conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout, context=self._ssl
                )
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
            self._conn = conn
        else:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        return conn

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:
                # Closing a broken socket can fail; there is nothing left to release.
                del exc

    def forget(self) -> None:
        """Drop the connection without closing it (after fork: the socket is the parent's)."""
        self._conn = None

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | bytes | None = None,
        *,
        query: Mapping[str, object] | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one request and return the JSON object the hub answered."""
        url = self._prefix + path
        if query:
            url += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        if body is None or isinstance(body, bytes):
            payload = body
        else:
            payload = json.dumps(body, separators=(",", ":")).encode()
        effective = self._timeout if timeout is None else timeout
        try:
            # One retry on a kept-alive connection the server closed while idle.
            for attempt in (0, 1):
                conn = self._connection(effective)
                try:
                    conn.request(method, url, body=payload, headers=self._headers)
                    # The wait for the answer (a long poll: up to the hub's poll wait) in
                    # poll(2), out of sensor work: meanwhile the host's hooks run their fast
                    # code (see sensor.threads). Then http.client reads what is there.
                    if not wait_readable(conn.sock, effective):
                        raise TimeoutError("timed out")
                    response = conn.getresponse()
                    data = response.read(MAX_RESPONSE_BYTES + 1)
                    status = response.status
                    break
                except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                    self.close()
                    if attempt:
                        raise
            if response.will_close:
                self.close()
        except Exception as exc:  # OSError (timeouts too), HTTPException, and codec or other bugs
            # The connection may be half-used (a request sent, no answer read): never reuse it.
            self.close()
            raise HubUnavailableError(
                f"hub {self.shown_url}: {method} {path} failed: {type(exc).__name__}: {exc}"
            ) from exc
        if len(data) > MAX_RESPONSE_BYTES:
            self.close()
            raise HubResponseError(
                f"hub {self.shown_url}: {method} {path} answered more than "
                f"{MAX_RESPONSE_BYTES} bytes, expected a small JSON object",
                status=status,
            )
        decoded: object
        try:
            decoded = json.loads(data) if data else None
        except ValueError:
            decoded = None
        if not 200 <= status < 300:
            message = _error_message(decoded) or data[:200].decode("utf-8", "replace")
            raise HubResponseError(
                f"hub {self.shown_url}: {method} {path} answered {status}: {message}",
                status=status,
            )
        if not isinstance(decoded, dict):
            raise HubResponseError(
                f"hub {self.shown_url}: {method} {path} answered {data[:80]!r}, "
                "expected a JSON object",
                status=status,
            )
        return decoded


def shown_url(url: str) -> str:
    """``url`` as an error message or a log may quote it: the user name and password replaced
    by ``***``, and every secret left in it (a ``?token=`` parameter, a key by its content)
    redacted. Never raises."""
    try:
        text = url if type(url) is str else repr(url)
        scheme, sep, rest = text.partition("://")
        if sep:
            end = len(rest)
            for c in "/?#":
                k = rest.find(c)
                if 0 <= k < end:
                    end = k
            at = rest.rfind("@", 0, end)
            if at >= 0:
                rest = "***@" + rest[at + 1 :]
            text = scheme + sep + rest
        from sensor.redaction import redact_error

        return redact_error(text)
    except Exception:
        return "<URL not shown>"


def _error_message(decoded: object) -> str | None:
    if isinstance(decoded, dict):
        error = decoded.get("error")
        if isinstance(error, dict) and isinstance(error.get("message"), str):
            return str(error["message"])
    return None
