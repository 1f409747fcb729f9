"""Hub storage: the :class:`Store` protocol, its records, and :func:`open_store`."""

from __future__ import annotations

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
    VersionSummary,
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
    "VersionSummary",
    "open_store",
]


def open_store(location: str | Path, *, synchronous: str = "FULL") -> Store:
    """Open the store named by ``location``: a file path or ``sqlite:///path`` (``:memory:`` too).

    ``postgresql://`` is reserved for the PostgreSQL store a later issue adds.
    """
    text = str(location)
    if text.startswith(("postgres://", "postgresql://")):
        raise ConfigError(
            f"hub database {text!r}: the PostgreSQL store is not available yet; "
            "expected a SQLite file path"
        )
    if text.startswith("sqlite:///"):
        text = text[len("sqlite:///") :]
    from sensor.hub.store.sqlite import SQLiteStore

    return SQLiteStore(text, synchronous=synchronous)
