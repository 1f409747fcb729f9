"""Schema migrations for both stores: numbered steps, a version table, applied at open.

Each store lists its own steps (SQL differs between SQLite and PostgreSQL) under the same
numbers, so that version ``n`` means the same tables and columns on either. The table
``schema_version`` holds one row per step applied (version, when, what). At open, a store takes
its write lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL an advisory lock: replicas starting at
once migrate one at a time), reads the highest version, refuses a database newer than itself,
and applies the missing steps in order, in that one transaction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from sensor.hub.store.base import StoreError

__all__ = ["Migration", "SchemaTooNewError", "check_steps", "pending"]


class SchemaTooNewError(StoreError):
    """The database was migrated by a newer hub: this one does not know its tables."""

    def __init__(self, where: str, found: int, known: int) -> None:
        super().__init__(
            f"hub database {where}: schema version {found} is newer than this hub's "
            f"{known}; a newer pytest-runtime hub migrated it. Run that version (or newer), "
            "or point --db at another database"
        )
        self.found = found
        self.known = known


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    """One step: its version, a line saying what it does, and how it is applied.

    ``apply`` gets the store's connection inside the migration transaction.
    """

    version: int
    description: str
    apply: Callable[[Any], None]


def check_steps(steps: Sequence[Migration]) -> int:
    """The latest version of ``steps``; raise if they are not numbered 1, 2, 3, ..."""
    for index, step in enumerate(steps, start=1):
        if step.version != index:
            raise AssertionError(f"migration {step.description!r}: version {step.version}, "
                                 f"expected {index}")  # fmt: skip
    return len(steps)


def pending(steps: Sequence[Migration], current: int, where: str) -> list[Migration]:
    """The steps past ``current``; :class:`SchemaTooNewError` if ``current`` is past them all."""
    latest = check_steps(steps)
    if current > latest:
        raise SchemaTooNewError(where, current, latest)
    return [step for step in steps if step.version > current]
