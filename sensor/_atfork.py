"""One set of fork handlers for the whole sensor, run in a fixed order whatever was imported first.

``os.register_at_fork`` runs the *before* handlers in reverse registration order and the *after*
handlers in registration order, so two modules that register separately get an order that depends
on which was imported first. For the sensor that order matters:

- The agent thread takes the agent's lock and then, inside it, the engine's lock. If the engine's
  *before* handler ran first, the forking thread would hold the engine's lock and wait for the
  agent's, while the agent thread held the agent's and waited for the engine's: the host's fork
  would hang for ever (seen as a gunicorn master stuck in ``spawn_worker``).
- In the child, the agent starts a new agent thread, which calls the engine at once. The engine
  must have its new locks by then, or that thread waits for ever on a lock the forking thread
  took before the fork and the child only replaced.

So each part registers here with a *layer*: outer layers (lower numbers) prepare first and are
restored last. *Before* handlers run outer to inner, *after* handlers (parent and child) inner to
outer: the same nesting as the locks. A handler that raises is logged and skipped, never raised
into the host's ``fork()``.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["AGENT", "ENGINE", "THREADS", "register"]

log = logging.getLogger("sensor")

#: The in-service agent: its lock is taken first, and its thread restarts last in the child.
AGENT = 0
#: The sensor threads' mode (sensor.threads): set again in the child after the engine and its
#: backends have new locks, before the agent's thread starts again.
THREADS = 5
#: The engine: its locks are taken inside the agent's, and renewed first in the child.
ENGINE = 10

Handler = Callable[[], None]


@dataclass(frozen=True)
class _Entry:
    layer: int
    seq: int
    before: Handler | None
    after_in_parent: Handler | None
    after_in_child: Handler | None


_entries: list[_Entry] = []
_lock = threading.Lock()


def register(
    layer: int,
    *,
    before: Handler | None = None,
    after_in_parent: Handler | None = None,
    after_in_child: Handler | None = None,
) -> None:
    """Add fork handlers for ``layer``; several handlers of one layer keep their order."""
    with _lock:
        _entries.append(_Entry(layer, len(_entries), before, after_in_parent, after_in_child))


def _ordered(*, outer_first: bool) -> list[_Entry]:
    # No lock here: sorted() copies the list first, and that copy runs no Python code.
    entries = sorted(_entries, key=lambda e: (e.layer, e.seq))
    return entries if outer_first else entries[::-1]


def _call(handler: Handler | None, when: str) -> None:
    if handler is None:
        return
    try:
        handler()
    except Exception:
        log.warning("sensor: %s fork handler failed (pid %d)", when, os.getpid(), exc_info=True)


def _before() -> None:
    for entry in _ordered(outer_first=True):
        _call(entry.before, "before")


def _after_in_parent() -> None:
    for entry in _ordered(outer_first=False):
        _call(entry.after_in_parent, "parent")


def _after_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have been registering at the fork
    for entry in _ordered(outer_first=False):
        _call(entry.after_in_child, "child")


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before, after_in_parent=_after_in_parent, after_in_child=_after_in_child
    )
