"""The hub's state shared by all handlers: store, token cache, change notifier, probe-set cache.

Store calls run on one dedicated worker thread (SQLite has one writer anyway), so the event
loop only ever awaits: a thousand open long polls cost a thousand suspended coroutines.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sensor.hub.auth import TokenCache, hash_token, new_token_record
from sensor.hub.notify import ChangeNotifier
from sensor.hub.settings import HubSettings
from sensor.hub.store import ProbeRecord, SourceRecord, Store, open_store

__all__ = ["Hub", "probe_set_etag"]

_log = logging.getLogger("sensor.hub")
T = TypeVar("T")


def probe_set_etag(records: list[ProbeRecord]) -> str:
    """A short tag of a source's probe set: probe ids are never reused, so ids suffice."""
    text = "\n".join(sorted(record.id for record in records))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Hub:
    """One hub process: settings, store and the in-memory parts that make long polls cheap."""

    def __init__(self, settings: HubSettings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.db, synchronous=settings.sqlite_synchronous)
        self.tokens = TokenCache(self.store)
        self.notifier = ChangeNotifier()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="sensor-hub-store")
        self._active: list[ProbeRecord] = []
        self._active_version = -1
        self._loading: tuple[int, asyncio.Future[list[ProbeRecord]]] | None = None
        self._last_retention = 0.0
        self.closing = False
        self._bootstrap_tokens()

    def _bootstrap_tokens(self) -> None:
        """Create the tokens given at start (flags or environment) unless they exist already."""
        for scope, token in (
            ("admin", self.settings.admin_token),
            ("sensor", self.settings.sensor_token),
            ("client", self.settings.client_token),
        ):
            if not token:
                continue
            known = self.store.find_token(hash_token(token))
            if known is None:
                self.store.add_token(new_token_record(f"{scope} (from start-up)", scope, token))
            elif known.scope != scope:
                _log.warning(
                    "the %s token given at start exists with scope %r; kept as it is",
                    scope,
                    known.scope,
                )

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a store call on the store thread and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    # -- probe sets ----------------------------------------------------------------------

    async def active_probes(self) -> list[ProbeRecord]:
        """Active probe records, loaded once per change however many polls wake at once."""
        version = self.notifier.version
        if self._active_version == version:
            return self._active
        if self._loading is not None and self._loading[0] == version:
            return await asyncio.shield(self._loading[1])
        future: asyncio.Future[list[ProbeRecord]] = asyncio.get_running_loop().create_future()
        self._loading = (version, future)
        try:
            records = await self.call(self.store.active_probes)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning if nobody else waits
            self._loading = None
            raise
        future.set_result(records)
        self._active, self._active_version = records, version
        return records

    async def probe_set(self, source: SourceRecord) -> tuple[list[ProbeRecord], str]:
        now = time.time()
        records = [
            record
            for record in await self.active_probes()
            if record.matches(source) and (record.expires_at is None or record.expires_at > now)
        ]
        return records, probe_set_etag(records)

    def changed(self) -> None:
        """Probes were placed, removed, expired or completed: wake every long poll."""
        self.notifier.changed()

    def release_polls(self) -> None:
        """The server is stopping: answer every open long poll now instead of cutting it."""
        self.closing = True
        self.notifier.changed()

    # -- housekeeping --------------------------------------------------------------------

    async def sweep(self) -> None:
        """Expire probes past their TTL; apply retention by age (at most once a minute)."""
        now = time.time()
        expired = await self.call(self.store.expire_probes, now)
        if expired:
            _log.info("probes expired: %s", ", ".join(expired))
            self.changed()
        if now - self._last_retention >= 60.0:
            self._last_retention = now
            deleted = await self.call(self.store.apply_retention, now, self.settings.retention)
            if deleted:
                _log.info(
                    "retention: deleted %d hits older than %ss", deleted, self.settings.retention
                )

    async def sweeper(self) -> None:
        """Run :meth:`sweep` every ``sweep_interval`` seconds until cancelled."""
        while True:
            try:
                await self.sweep()
            except Exception:
                _log.exception("hub sweep failed; retrying")
            await asyncio.sleep(self.settings.sweep_interval)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with contextlib.suppress(Exception):
            self.store.close()
