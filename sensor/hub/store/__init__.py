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
    HitRow,
    ProbeRecord,
    RedactionRecord,
    SourceRecord,
    Store,
    StoreError,
    TokenRecord,
)

__all__ = [
    "DECLINE_REASONS",
    "PROBE_STATES",
    "SOURCE_STATES",
    "BatchOutcome",
    "CorruptRecordError",
    "DuplicateError",
    "HitRow",
    "ProbeRecord",
    "RedactionRecord",
    "SourceRecord",
    "Store",
    "StoreError",
    "TokenRecord",
    "open_store",
]


def open_store(location: str | Path, *, synchronous: str = "FULL") -> Store:
    """Open the store named by ``location``, migrating its schema to this hub's version.

    ``postgresql://...`` (or ``postgres://``) opens the PostgreSQL store (the ``postgres``
    extra); anything else is a SQLite file path or ``sqlite:///path`` (``:memory:`` too).
    """
    text = str(location)
    if text.startswith(("postgres://", "postgresql://")):
        from sensor.hub.store.postgres import PostgresStore

        return PostgresStore(text)
    scheme_match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme_match is not None and not text.startswith("sqlite:///"):
        scheme = scheme_match.group(1)
        raise ConfigError(
            f"hub database {scheme + '://...'!r}: unknown scheme {scheme!r}, expected a SQLite "
            "file path, sqlite:///path or postgresql://user@host/database"
        )
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    from sensor.hub.store.sqlite import SQLiteStore

    return SQLiteStore(text, synchronous=synchronous)
