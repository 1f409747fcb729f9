"""The bounded hit queue between the request threads and the agent thread; every drop is counted."""

from __future__ import annotations

import collections
import threading

from sensor.probes import Hit

__all__ = ["HitQueue"]


class HitQueue:
    """A bounded FIFO of hits. :meth:`put` is the only code on the request thread.

    ``put`` does a length check and a ``deque.append`` (atomic under the GIL) and never blocks
    or allocates beyond the hit itself; when the queue is full the hit is dropped and counted
    per probe. Concurrent puts can overshoot the capacity by at most the number of threads
    racing on the last slot, which keeps the bound without a lock on the hot path.
    """

    __slots__ = ("_drop_lock", "_drops", "_items", "capacity")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"queue capacity {capacity!r}: expected a positive integer")
        self.capacity = capacity
        self._items: collections.deque[Hit] = collections.deque()
        self._drops: dict[str, int] = {}
        self._drop_lock = threading.RLock()

    def put(self, hit: Hit) -> None:
        """Queue one hit, or count it as dropped when full. Never raises into the host."""
        items = self._items
        if len(items) < self.capacity:
            items.append(hit)
        else:
            self.drop(hit.probe_id)

    def drop(self, probe_id: str, count: int = 1) -> None:
        """Count hits of one probe that will never be sent."""
        # A lock here (the rare path): `d[k] = d.get(k, 0) + 1` loses updates between threads.
        # Reentrant, because the SIGTERM flush may run on a thread interrupted inside this block.
        with self._drop_lock:
            self._drops[probe_id] = self._drops.get(probe_id, 0) + count

    def take(self, max_items: int) -> list[Hit]:
        """Remove and return up to ``max_items`` hits, oldest first (agent thread)."""
        items = self._items
        taken: list[Hit] = []
        while len(taken) < max_items:
            try:
                taken.append(items.popleft())
            except IndexError:
                break
        return taken

    def __len__(self) -> int:
        return len(self._items)

    def drops(self) -> dict[str, int]:
        """Cumulative drops per probe id since the process (or its fork) started."""
        # No lock: copying a dict of str -> int runs no Python code, so it is atomic under the GIL.
        return dict(self._drops)

    @property
    def dropped(self) -> int:
        return sum(self.drops().values())

    def lock_for_fork(self, timeout: float) -> bool:
        """Hold the drop counts still across a fork; False when not had within ``timeout``."""
        return self._drop_lock.acquire(timeout=timeout)

    def unlock_after_fork(self) -> None:
        self._drop_lock.release()

    def reset_after_fork(self) -> None:
        """In a forked child: the parent's hits and counts belong to the parent's source."""
        self._items.clear()
        self._drops = {}
        self._drop_lock = threading.RLock()
