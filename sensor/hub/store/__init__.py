"""Hub storage: the :class:`Store` protocol, its records, and :func:`open_store`."""

from __future__ import annotations

import re
from pathlib import Path

from sensor.errors import ConfigError
from sensor.hub.store.base import (
    DECLINE_REASONS,
    PROBE_STATES,
    SOURCE_STATES,
    BatchOutcome,
    CorruptRecordError,
    DuplicateError,
    HitBatch,
    HitRow,
    ProbeRecord,
    RedactionRecord,
    SourceRecord,
    Store,
    StoreError,
    TokenRecord,
    VersionSummary,
)

__all__ = [
    "DECLINE_REASONS",
    "PROBE_STATES",
    "SOURCE_STATES",
    "BatchOutcome",
    "CorruptRecordError",
    "DuplicateError",
    "HitBatch",
    "HitRow",
    "ProbeRecord",
    "RedactionRecord",
    "SourceRecord",
    "Store",
    "StoreError",
    "TokenRecord",
    "VersionSummary",
    "open_store",
]


#: A URL scheme (RFC 3986) followed by ":", whatever the slashes after it: ``mysql:/x`` (what
#: ``Path("mysql://x")`` becomes) is a URL written wrong, never a file to create. Two characters
#: at least, so that a Windows drive letter (``C:/hub.db``) stays a path; ``./a:b.db`` is a path.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+):")
_POSTGRES_SCHEMES = ("postgresql", "postgres")


def open_store(location: str | Path, *, synchronous: str = "FULL") -> Store:
    """Open the store named by ``location``, migrating its schema to this hub's version.

    ``postgresql://...`` (or ``postgres://``) opens the PostgreSQL store (the ``postgres``
    extra); a file path or ``sqlite:///path`` (``:memory:`` too) opens a SQLite file. Any other
    ``scheme:`` prefix is refused with :class:`ConfigError`: it is a URL, and opening it as a
    path would create a stray SQLite file named after it.
    """
    text = str(location)
    scheme_match = _SCHEME.match(text)
    if scheme_match is not None:
        scheme = scheme_match.group(1)
        rest = text[scheme_match.end() :]
        if isinstance(location, str) and scheme.lower() in _POSTGRES_SCHEMES and rest[:2] == "//":
            from sensor.hub.store.postgres import PostgresStore

            return PostgresStore(scheme.lower() + ":" + rest)
        if isinstance(location, str) and scheme.lower() == "sqlite" and rest[:3] == "///":
            text = rest[3:]
        else:
            # the URL itself is not echoed: a database URL may hold a password
            raise ConfigError(
                f"hub database: unsupported URL {scheme + ':...'!r} (scheme {scheme!r}), expected "
                "a SQLite file path, sqlite:///path or postgresql://user@host/database (a file "
                "whose name has a colon: write it as ./name)"
            )
    from sensor.hub.store.sqlite import SQLiteStore

    return SQLiteStore(text, synchronous=synchronous)
