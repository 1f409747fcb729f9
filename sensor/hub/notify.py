"""Wake long polls when the set of active probes changes: one asyncio.Event per change.

Every open poll awaits the current event (a coroutine, not a thread), so hundreds of polls cost
hundreds of small futures. :meth:`ChangeNotifier.changed` sets the event and replaces it: all
waiters wake once and recompute their probe set from the in-memory cache.
"""

from __future__ import annotations

import asyncio

__all__ = ["ChangeNotifier"]


class ChangeNotifier:
    """A version counter with an awaitable "it changed" event. Use from the event loop only."""

    def __init__(self) -> None:
        self.version = 0
        self._event = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def _current(self) -> asyncio.Event:
        # An Event binds to the loop that first awaits it; a new loop (tests run one app under
        # several) gets a fresh one.
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._event = asyncio.Event()
        return self._event

    def changed(self) -> None:
        self.version += 1
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, version: int, timeout: float) -> bool:
        """Wait until the version moves past ``version`` or ``timeout`` seconds pass.

        Return True if it changed.
        """
        if self.version != version:
            return True
        if timeout <= 0:
            return False
        event = self._current()
        try:
            async with asyncio.timeout(timeout):
                await event.wait()
        except TimeoutError:
            return self.version != version
        return True
