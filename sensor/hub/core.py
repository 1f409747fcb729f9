"""The hub's state shared by all handlers: store, token cache, change notifier, probe-set cache.

Store calls run on dedicated worker threads (one for SQLite, which has one writer anyway; a
few for PostgreSQL, one connection each), so the event loop only ever awaits: a thousand open
long polls cost a thousand suspended coroutines.

What lives here in memory is a cache of the store, never the only copy: with several replicas
on one PostgreSQL database, the store's change events (:meth:`Hub.start_watching`) invalidate
the active probe set, the redaction rules and removed tokens in every replica. Acknowledged
hits, probes, sources and which token registered each source are in the store before any
answer says so.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from sensor.hub.auth import TokenCache, hash_token, new_token_record
from sensor.hub.notify import ChangeNotifier
from sensor.hub.settings import HubSettings
from sensor.hub.store import (
    BatchOutcome,
    HitBatch,
    ProbeRecord,
    RedactionRecord,
    SourceRecord,
    Store,
    open_store,
)

if TYPE_CHECKING:
    from sensor.hub.otel import OtelExporter

__all__ = ["Hub", "probe_set_etag"]

_log = logging.getLogger("sensor.hub")
T = TypeVar("T")

#: Most sources kept in memory (least recently used go first).
SOURCE_CACHE_SIZE = 50_000
#: Most distinct poll answers kept rendered (see Hub.probe_set_answer).
ANSWER_CACHE_SIZE = 1024
#: Most hits written in one group commit (one transaction) before other store calls get a turn.
GROUP_COMMIT_HITS = 20_000


@dataclasses.dataclass(slots=True)
class _Ingest:
    """One POSTed batch waiting for the next group commit."""

    source: SourceRecord
    raw_hits: Any
    dropped: Mapping[str, int]
    number: int | None
    validate: Callable[[Any], list[dict[str, Any]]]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[BatchOutcome]


@dataclasses.dataclass(slots=True, frozen=True)
class _ProbeSet:
    """A source's probe set, and what it was computed from (see Hub.probe_set)."""

    active: list[ProbeRecord]
    source: SourceRecord
    redaction: str | None
    until: float  # the first expiry among its probes
    records: list[ProbeRecord]
    etag: str


def probe_set_etag(records: list[ProbeRecord], redaction: str | None = None) -> str:
    """A short tag of a source's probe set: probe ids are never reused, so ids suffice.

    ``redaction`` is the canonical JSON of the hub's redaction rules: it is part of what a
    sensor holds, so a rule change answers every open long poll at once.
    """
    text = "\n".join(sorted(record.id for record in records))
    if redaction is not None:
        text += "\nredaction " + redaction
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Hub:
    """One hub process: settings, store and the in-memory parts that make long polls cheap."""

    def __init__(self, settings: HubSettings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.db, synchronous=settings.sqlite_synchronous)
        self.tokens = TokenCache(self.store)
        self.notifier = ChangeNotifier()
        self._executor = ThreadPoolExecutor(
            max(1, self.store.concurrency), thread_name_prefix="sensor-hub-store"
        )
        self._active: list[ProbeRecord] = []
        self._active_version = -1
        self._loading: tuple[int, asyncio.Future[list[ProbeRecord]]] | None = None
        # bodies over settings.large_body are handled a few at a time (one per event loop)
        self._large: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._last_retention = 0.0
        self.closing = False
        self._background: set[asyncio.Future[None]] = set()
        self._touched: dict[str, float] = {}  # source id -> last poll, until flush_touches
        self._answers: dict[str, bytes] = {}  # etag -> poll answer (probe_set_answer)
        self._sets: dict[str, _ProbeSet] = {}  # source id -> its last probe set (probe_set)
        self._ingest_lock = threading.Lock()
        self._ingest_queue: list[_Ingest] = []
        self._ingest_scheduled = False
        # sources by id: what a source is (service, labels, host, pid) does not change while
        # its id lives, so sensor requests skip a trip to the store thread
        self._sources: collections.OrderedDict[str, SourceRecord] = collections.OrderedDict()
        self._bootstrap_tokens()
        # the rules every poll answer carries: read once here, replaced by set_redaction
        self._redaction: RedactionRecord | None = None
        self._redaction_key: str | None = None
        self._use_redaction(self.store.get_redaction())
        self.exporter: OtelExporter | None = None
        if settings.otel_endpoint:
            from sensor.hub.otel import OtelExporter

            self.exporter = OtelExporter(
                settings.otel_endpoint, metric_interval=settings.otel_metric_interval
            )

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

    def large_bodies(self) -> asyncio.Semaphore:
        """The slots for large request bodies: memory per request is bounded by the body
        limits, and this bounds how many such requests are held at once."""
        loop = asyncio.get_running_loop()
        if self._large is None or self._large[0] is not loop:
            self._large = (loop, asyncio.Semaphore(self.settings.max_large_bodies))
        return self._large[1]

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a store call on the store thread and await its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    # -- sources -------------------------------------------------------------------------

    async def get_source(self, source_id: str) -> SourceRecord | None:
        source = self._sources.get(source_id)
        if source is None:
            source = await self.call(self.store.get_source, source_id)
            if source is None:
                return None
            self._remember(source)
        else:
            self._sources.move_to_end(source_id)
        return source

    async def register_source(self, source: SourceRecord) -> SourceRecord:
        registered = await self.call(self.store.register_source, source)
        self._remember(registered)
        return registered

    def touch(self, source_id: str) -> None:
        """A source polled: its last-seen time is written with the others' within a second.

        A poll does not wait for a write: with a thousand sensors, a thousand one-row
        transactions per probe change would queue every poll answer behind the store thread.
        Lost on a crash: at most the last second of last-seen times, which the next poll sets.
        """
        self._touched[source_id] = time.time()

    async def flush_touches(self) -> None:
        """Write the last-seen times gathered since the last flush (one transaction)."""
        if not self._touched:
            return
        touched, self._touched = self._touched, {}
        await self.call(self.store.touch_sources, touched)

    def forget_touch(self, source_id: str) -> None:
        """The source deregistered: a poll before that must not make it live again."""
        self._touched.pop(source_id, None)

    async def toucher(self) -> None:
        """Run :meth:`flush_touches` every ``touch_interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.settings.touch_interval)
            try:
                await self.flush_touches()
            except Exception:
                _log.exception("writing last-seen times failed; retrying")

    def _remember(self, source: SourceRecord) -> None:
        self._sources[source.id] = source
        self._sources.move_to_end(source.id)
        while len(self._sources) > SOURCE_CACHE_SIZE:
            self._sources.popitem(last=False)

    # -- hits: group commit --------------------------------------------------------------

    async def ingest(
        self,
        source: SourceRecord,
        raw_hits: Any,
        dropped: Mapping[str, int],
        validate: Callable[[Any], list[dict[str, Any]]],
        number: int | None = None,
    ) -> BatchOutcome:
        """Validate and store one batch; answer when it is durable.

        Batches that arrive while the store thread is busy are written together in one
        transaction (one fsync for all of them): with many sensors posting at once, the cost
        of a commit is shared instead of paid per request. ``validate`` runs on the store
        thread; its exception goes to this batch only.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[BatchOutcome] = loop.create_future()
        with self._ingest_lock:
            item = _Ingest(source, raw_hits, dropped, number, validate, loop, future)
            self._ingest_queue.append(item)
            schedule = not self._ingest_scheduled
            self._ingest_scheduled = True
        if schedule:
            loop.run_in_executor(self._executor, self._commit_group)
        return await future

    def _commit_group(self) -> None:
        """On the store thread: write the queued batches in one transaction."""
        with self._ingest_lock:
            taken: list[_Ingest] = []
            count = 0
            while self._ingest_queue and (not taken or count < GROUP_COMMIT_HITS):
                item = self._ingest_queue.pop(0)
                taken.append(item)
                count += len(item.raw_hits) if isinstance(item.raw_hits, list) else 0
            more = bool(self._ingest_queue)
            self._ingest_scheduled = more
        if more and taken:
            # go to the back of the store queue: polls and reads get their turn in between
            loop = taken[0].loop
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(
                    lambda: loop.run_in_executor(self._executor, self._commit_group)
                )
        try:
            self._write_group(taken)
        except BaseException as exc:  # nobody awaits this call: never leave a request hanging
            for item in taken:
                _settle(item, exc=exc if isinstance(exc, Exception) else RuntimeError(str(exc)))
            raise

    def _write_group(self, taken: list[_Ingest]) -> None:
        valid: list[tuple[_Ingest, list[dict[str, Any]]]] = []
        for item in taken:
            try:
                valid.append((item, item.validate(item.raw_hits)))
            except Exception as exc:
                _settle(item, exc=exc)
        if not valid:
            return
        try:
            outcomes = self.store.add_hit_batches(
                [HitBatch(item.source, hits, item.dropped, item.number) for item, hits in valid],
                time.time(),
                self.settings.max_hits_per_probe,
            )
        except Exception as exc:
            for item, _ in valid:
                _settle(item, exc=exc)
            return
        for (item, _), outcome in zip(valid, outcomes, strict=True):
            _settle(item, result=outcome)
            if self.exporter is not None:  # after the commit: only what is stored leaves
                self.exporter.submit(outcome.stored)

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
        """The probes ``source`` must hold and their etag.

        Kept per source until the active set, the source record or the redaction rules
        change, or one of its probes expires: a poll computes its set when it arrives and
        again when a change wakes it, and the first of these is nearly always the set the
        previous answer was made of.
        """
        active = await self.active_probes()
        now = time.time()
        key = self._redaction_key
        known = self._sets.get(source.id)
        if (
            known is not None
            and known.active is active
            and known.source is source
            and known.redaction == key
            and now < known.until
        ):
            return known.records, known.etag
        records = [
            record
            for record in active
            if record.matches(source) and (record.expires_at is None or record.expires_at > now)
        ]
        etag = probe_set_etag(records, key)
        if len(self._sets) >= SOURCE_CACHE_SIZE:
            self._sets.clear()
        until = min((r.expires_at for r in records if r.expires_at is not None), default=math.inf)
        self._sets[source.id] = _ProbeSet(active, source, key, until, records, etag)
        return records, etag

    def probe_set_answer(self, records: list[ProbeRecord], etag: str) -> bytes:
        """The poll answer's JSON for a probe set, rendered once per set.

        Sensors that hold the same probes get the same bytes: when a change wakes a thousand
        polls, the answer is encoded once, not a thousand times. A probe record never changes
        once placed and the etag covers the ids and the redaction rules, so the etag is the
        key. Bounded: the cache is emptied when it holds many sets.
        """
        answer = self._answers.get(etag)
        if answer is None:
            if len(self._answers) >= ANSWER_CACHE_SIZE:
                self._answers.clear()
            answer = json.dumps(
                {
                    "etag": etag,
                    "probes": [record.probe for record in records],
                    "redaction": self.redaction_rules(),
                },
                ensure_ascii=False,
                allow_nan=False,
                separators=(",", ":"),
            ).encode("utf-8")
            self._answers[etag] = answer
        return answer

    @staticmethod
    def unchanged_answer(etag: str) -> bytes:
        """The poll answer that says the sensor's set (etag) is still current."""
        return json.dumps({"etag": etag, "unchanged": True}, separators=(",", ":")).encode()

    # -- redaction rules -----------------------------------------------------------------

    @property
    def redaction(self) -> RedactionRecord | None:
        """The rules an admin set (None: never set; sensors keep their own configuration)."""
        return self._redaction

    def redaction_rules(self) -> dict[str, list[str]] | None:
        """What a poll answer carries under ``"redaction"``."""
        record = self._redaction
        return None if record is None else record.rules()

    def _use_redaction(self, record: RedactionRecord | None) -> None:
        self._redaction = record
        self._redaction_key = None if record is None else json.dumps(record.rules(), sort_keys=True)

    async def set_redaction(self, record: RedactionRecord) -> None:
        """Store new rules, then wake every long poll: sensors get them with the next answer."""
        await self.call(self.store.set_redaction, record)
        before = self._redaction_key
        self._use_redaction(record)
        if self._redaction_key != before:  # the same rules again: no need to wake every poll
            self.changed()

    def changed(self) -> None:
        """Probes were placed, removed, expired or completed: wake every long poll."""
        self.notifier.changed()

    # -- other replicas' changes ---------------------------------------------------------

    def start_watching(self) -> None:
        """Hear what other hub processes on the same database change (call on the loop)."""
        loop = asyncio.get_running_loop()

        def on_change(event: str) -> None:  # on the store's listener thread
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self._other_replica_changed, event)

        self.store.watch(on_change)

    def _other_replica_changed(self, event: str) -> None:
        if event.startswith("token:"):
            self.tokens.forget(event.removeprefix("token:"))
            return
        if event in ("redaction", "resync"):
            if event == "resync":
                self.tokens.clear()
            task = asyncio.ensure_future(self._reload_redaction())
            self._background.add(task)
            task.add_done_callback(self._background.discard)
        self.changed()

    async def _reload_redaction(self) -> None:
        try:
            record = await self.call(self.store.get_redaction)
        except Exception:
            _log.exception("reading the redaction rules another replica set failed")
            return
        before = self._redaction_key
        self._use_redaction(record)
        if self._redaction_key != before:
            self.changed()

    def release_polls(self) -> None:
        """The server is stopping: answer every open long poll now instead of cutting it."""
        self.closing = True
        self.notifier.changed()

    # -- housekeeping --------------------------------------------------------------------

    async def sweep(self) -> None:
        """Expire probes past their TTL; apply retention by age (at most once a minute)."""
        await self.flush_touches()
        now = time.time()
        expired = await self.call(self.store.expire_probes, now)
        if expired:
            _log.info("probes expired: %s", ", ".join(expired))
            self.changed()
        if now - self._last_retention >= 60.0:
            self._last_retention = now
            deleted = await self.call(self.store.apply_retention, now, self.settings.retention)
            self._sources.clear()  # retention may have forgotten sources: read them again
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
        if self._touched:  # the server has stopped: write the last ones directly
            with contextlib.suppress(Exception):
                self.store.touch_sources(self._touched)
            self._touched = {}
        if self.exporter is not None:
            self.exporter.close()
        with contextlib.suppress(Exception):
            self.store.close()


def _settle(
    item: _Ingest, *, result: BatchOutcome | None = None, exc: Exception | None = None
) -> None:
    """Resolve a batch's future from the store thread (on its own loop's thread)."""

    def settle() -> None:
        if item.future.done():  # the request went away
            return
        if exc is not None:
            item.future.set_exception(exc)
        else:
            assert result is not None
            item.future.set_result(result)

    with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits any more
        item.loop.call_soon_threadsafe(settle)
