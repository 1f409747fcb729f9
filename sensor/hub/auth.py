"""Bearer tokens with scopes: sensor, client and admin (admin implies client); stored hashed.

A token's secret is shown once, when it is created; the store keeps only its sha256. Lookups
are cached for a few seconds so that the hits and poll paths do not hit the database for every
request; removing a token drops it from the cache at once, in every replica that shares the
database (the store's ``token:<id>`` event).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import uuid
from collections.abc import Sequence

from sensor.hub.store import Store, TokenRecord

__all__ = [
    "MAX_TOKEN_NAME",
    "SCOPES",
    "TOKEN_NAME",
    "TokenCache",
    "allows",
    "hash_token",
    "new_token",
    "new_token_record",
]

#: The scopes, each with what it may do.
SCOPES = {
    "sensor": (
        "register (as the services the token allows), then poll, report and post hits for "
        "the sources it registered"
    ),
    "client": "list sources, place and remove probes, read hits and evidence",
    "admin": "everything a client may do, plus manage tokens",
}

_TOKEN_PREFIX = "srt_"  # recognisable in logs and by secret scanners


def hash_token(token: str) -> str:
    """The sha256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh random token (256 bits)."""
    return _TOKEN_PREFIX + secrets.token_urlsafe(32)


#: Longest token name; and the characters a name may hold (it is shown in logs and errors).
MAX_TOKEN_NAME = 64
TOKEN_NAME = re.compile(r"[A-Za-z0-9 _.:@()/+-]{1,64}")


def new_token_record(
    name: str, scope: str, token: str, *, services: Sequence[str] | None = None
) -> TokenRecord:
    """A token record; ``services`` limits a sensor token to those service names."""
    if scope not in SCOPES:
        raise ValueError(f"token scope {scope!r}: expected one of {', '.join(SCOPES)}")
    if not isinstance(name, str) or not TOKEN_NAME.fullmatch(name):
        raise ValueError(
            f"token name {name!r}: expected 1 to {MAX_TOKEN_NAME} letters, digits, spaces or "
            "'_.:@()/+-'"
        )
    if services is not None:
        if scope != "sensor":
            raise ValueError(f"token services: only a sensor token is limited, not {scope!r}")
        if not services or not all(isinstance(item, str) and item for item in services):
            raise ValueError(f"token services {services!r}: expected a list of service names")
    return TokenRecord(
        id=uuid.uuid4().hex[:12],
        name=name,
        scope=scope,
        token_hash=hash_token(token),
        created_at=time.time(),
        services=None if services is None else list(dict.fromkeys(services)),
    )


def allows(granted: str, needed: str) -> bool:
    """True when a token of scope ``granted`` may call an endpoint that needs ``needed``."""
    return granted == needed or (granted == "admin" and needed == "client")


class TokenCache:
    """Token lookups by hash, cached for ``ttl`` seconds (positive answers only)."""

    def __init__(self, store: Store, ttl: float = 5.0) -> None:
        self._store = store
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[TokenRecord, float]] = {}

    def lookup(self, token: str) -> TokenRecord | None:
        """The record of ``token``, or None if it is unknown (runs a query on a cache miss)."""
        digest = hash_token(token)
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and now - cached[1] < self._ttl:
            return cached[0]
        record = self._store.find_token(digest)
        with self._lock:
            if record is None:
                self._cache.pop(digest, None)
            else:
                self._cache[digest] = (record, now)
        return record

    def peek(self, token: str) -> TokenRecord | None:
        """The cached record if fresh, without touching the store (None otherwise)."""
        digest = hash_token(token)
        with self._lock:
            cached = self._cache.get(digest)
        if cached is not None and time.monotonic() - cached[1] < self._ttl:
            return cached[0]
        return None

    def clear(self) -> None:
        """Forget every cached lookup (removals may have been missed)."""
        with self._lock:
            self._cache.clear()

    def forget(self, token_id: str) -> None:
        with self._lock:
            for digest, (record, _) in list(self._cache.items()):
                if record.id == token_id:
                    del self._cache[digest]
