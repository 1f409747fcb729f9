"""The agent: one daemon thread that registers, long-polls probes, and ships hits and heartbeats.

Request threads only ever touch :meth:`HitQueue.put` (through the engine's ``on_hit``); the
network, JSON and retries happen on the agent thread, and every failure there is logged once
and retried with backoff. Nothing here raises into the host except :func:`start` refusing an
invalid configuration.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
import json
import logging
import os
import platform
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from sensor._version import __version__
from sensor.agent import fork
from sensor.agent.buffer import HitQueue
from sensor.agent.transport import Backoff, Transport
from sensor.config import SensorConfig, load_config
from sensor.errors import HubError, HubResponseError
from sensor.probes import Hit, Probe, ProbeState, ProbeStatus
from sensor.threads import Event, SensorThread

__all__ = ["Agent", "Engine", "start", "status", "stop"]

log = logging.getLogger("sensor.agent")


def _redact_error(text: str) -> str:
    """A status reason made by the agent itself, redacted like the engine's (no value leaks)."""
    from sensor.redaction import redact_error as redact

    return redact(text)


#: Batches sent per loop turn at most, so a long backlog cannot starve polls and heartbeats.
_MAX_BATCHES_PER_TURN = 20
#: Final statuses of probes the hub took away, kept to report their last counts (newest kept).
_MAX_ENDED_STATUSES = 256
#: Longest status reason sent (the hub's schema allows 10,000 characters).
_MAX_REASON = 4000
_DEFAULT_POLL_WAIT = 30.0
_DEFAULT_HEARTBEAT = 10.0
# How long a fork waits for the agent's lock (held by the agent thread only for short, local work).
_FORK_WAIT = 1.0


class Engine(Protocol):
    """The part of :class:`sensor.engine.Engine` the agent uses (see docs/reference/probes.md)."""

    backend_name: str

    def install(self, probe: Probe, on_hit: Callable[[Hit], None] | None = None) -> ProbeStatus: ...

    def remove(self, probe_id: str) -> bool: ...

    def remove_all(self) -> None: ...

    def statuses(self) -> list[ProbeStatus]: ...

    def status(self, probe_id: str) -> ProbeStatus | None: ...

    def drain(self, max_items: int | None = None) -> list[Hit]: ...

    def flush_aggregates(self) -> list[Hit]: ...

    @property
    def dropped(self) -> int: ...


class _LogOnce:
    """Log the first failure of each kind at WARNING, repeats at DEBUG, and the recovery."""

    def __init__(self) -> None:
        self._failing: dict[str, str] = {}

    def failure(self, what: str, exc: BaseException | str) -> None:
        text = str(exc)
        if what not in self._failing:
            log.warning("sensor: %s failed: %s (retrying in the background)", what, text)
        else:
            log.debug("sensor: %s failed again: %s", what, text)
        self._failing[what] = text

    def success(self, what: str) -> None:
        if self._failing.pop(what, None) is not None:
            log.info("sensor: %s works again", what)


def _default_engine() -> Engine:
    # Imported lazily: a process without probes never loads the injection machinery.
    from sensor.engine import get_engine

    return get_engine()


# What a hub's refusal of an unknown status field says: "statuses[0]..." then, in the words of
# its schema check or (the first release) of sensor.probes, "expected only the fields a, b, c".
_KNOWN_FIELDS = re.compile(
    r"statuses\[\d+\][^\n]*?expected only the fields ([a-z_]+(?:, [a-z_]+)*)"
)


# A hub's refusal of the batch number: "(unknown: batch)" from its schema check, or (the first
# release) "unknown field(s) ['batch'], expected only [...]".
_UNKNOWN_BATCH = re.compile(r"unknown(?:: | field\(s\) \[)[^\]\n]*\bbatch\b")


def _known_status_fields(exc: HubResponseError) -> frozenset[str] | None:
    """The status fields a hub takes, when ``exc`` is its refusal of fields it does not know."""
    if exc.status != 422:
        return None
    found = _KNOWN_FIELDS.search(str(exc))
    if found is None:
        return None
    known = frozenset(found.group(1).split(", "))
    # never fewer than what every hub has taken: the answer must still identify the probe
    return known if {"probe_id", "state"} <= known else None


class Agent:
    """One sensor: its source identity on the hub, its probes in the engine, its hit queue."""

    def __init__(
        self,
        config: SensorConfig,
        *,
        engine_factory: Callable[[], Engine] | None = None,
    ) -> None:
        if not config.hub_url:
            raise ValueError("Agent needs config.hub_url")
        self.config = config
        self.queue = HitQueue(config.queue_size)
        self._engine_factory = engine_factory or _default_engine
        self._engine: Engine | None = None
        self._engine_error: str | None = None
        self._log = _LogOnce()
        self._lock = threading.RLock()  # probe set and lifecycle state
        self._send_lock = threading.Lock()  # at most one batch in flight
        # Per forking thread: (agent lock taken, queue lock taken) between before and after fork.
        self._held_for_fork: dict[int, tuple[bool, bool]] = {}
        self._stop_event = Event()
        self._thread: threading.Thread | None = None
        self._state = "stopped"
        self._transport = self._new_transport()
        # Probes the hub sent (id -> dict) and those that reached the engine.
        self._known: dict[str, dict[str, Any]] = {}
        self._in_engine: set[str] = set()
        self._local_errors: dict[str, ProbeStatus] = {}
        self._redaction: dict[str, Any] | None = None
        # The service's own SENSOR_REDACT_* rules, kept under whatever the hub sends.
        self._local_redaction: dict[str, list[str]] | None = None
        self._reset_identity()

    # -- identity, reset in a forked child -------------------------------------------------

    def _reset_identity(self) -> None:
        self.source_id: str | None = None
        self.runtime_id = uuid.uuid4().hex
        self.pid = os.getpid()
        self._etag: str | None = None
        self._hub_poll_wait = _DEFAULT_POLL_WAIT
        self._hub_heartbeat = _DEFAULT_HEARTBEAT
        self._pending: list[Hit] = []
        self._reported_drops: dict[str, int] = {}
        # The number of the batch being sent, the same on every retry of it, the next one once
        # the hub answered: the hub knows a retry (its answer lost) by it, drop counts included.
        self._batch_number = 1
        self._number_batches = True  # until a hub older than the field refuses it
        # The status fields the hub takes, once a hub older than some of ours named them in a
        # refusal (None: all of ours).
        self._status_fields: frozenset[str] | None = None
        self._batch_cap = self.config.batch_size
        # Last statuses of probes removed while running, sent with every heartbeat so that the
        # hub's record of each ends with the counts the engine had, not with a stale one. A
        # forked child starts without them: they are the parent's source's.
        self._ended: collections.OrderedDict[str, ProbeStatus] = collections.OrderedDict()
        self.sent = 0
        self.stored = 0  # hits the hub said it holds
        self.declined = 0  # hits the hub said it did not store (counted as drops)
        self.batches = 0
        self.send_failures = 0
        self.last_error: str | None = None
        self.last_contact: float | None = None
        self._backoffs = {
            name: Backoff(base=0.1, cap=self.config.max_backoff)
            for name in ("register", "poll", "send", "heartbeat", "loop")
        }
        self._due = {"register": 0.0, "poll": 0.0, "send": 0.0, "heartbeat": 0.0}

    def _new_transport(self) -> Transport:
        assert self.config.hub_url is not None
        return Transport(
            self.config.hub_url,
            self.config.token,
            self.config.timeout,
            ca_file=self.config.ca_file,
        )

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._state not in ("stopped", "stopping")

    def start(self) -> None:
        with self._lock:
            if self.running:
                return
            self._stop_event = Event()
            self._state = "starting"
            self._start_thread()

    def _start_thread(self) -> None:
        # A sensor thread: no probe fires on it, even one on the http.client, json or logging
        # code it runs; its waits (Event, the transport's) leave sensor work (sensor.threads).
        thread = SensorThread(self._run, name="sensor-agent")
        self._thread = thread
        thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Flush, report the probes' final counts, remove them, deregister; within ``timeout``.

        The order makes the hub's figures end equal to what it stored: queued hits go first,
        then the final statuses are read while the probes are still in the engine (removing a
        probe forgets its counts) and the last hits and aggregates are collected, then the
        probes are removed, the rest is flushed, and the last heartbeat carries those
        statuses (with every drop counted until then) before the source deregisters.
        """
        bound = self.config.exit_timeout if timeout is None else max(0.0, timeout)
        deadline = time.monotonic() + bound
        # Bounded: stop() runs at exit, where waiting for ever would keep the host from ending.
        if not self._lock.acquire(timeout=max(bound, 0.001)):
            log.warning("sensor: stop gave up: the agent lock stayed busy %gs; not flushed", bound)
            self._stop_event.set()
            return
        try:
            if not self.running:
                return
            self._state = "stopping"
            self._stop_event.set()
        finally:
            self._lock.release()
        finals: list[ProbeStatus] | None = None
        transport = self._new_transport()  # its own: the agent thread may sit in a long poll
        try:
            self._flush(transport, deadline)
            with self._lock:
                finals = [_stopped(status) for status in self._engine_statuses()]
                self._collect(final=True)
                self._remove_all()
            self._flush(transport, deadline)
        except Exception as exc:
            self._log.failure("final flush", exc)
        # What could not be sent in time is lost: counted before the final report, whose
        # statuses then carry these drops too.
        self._count_unsent()
        try:
            self._final_report(transport, deadline, finals)
        except Exception as exc:
            self._log.failure("final report", exc)
        finally:
            transport.close()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, deadline - time.monotonic()))
        self._state = "stopped"  # one assignment: no lock, so nothing here can wait at exit

    def _remove_all(self) -> None:
        engine = self._engine
        if engine is not None:
            try:
                engine.remove_all()
            except Exception as exc:
                self._log.failure("removing probes", exc)
            self._in_engine.clear()
        self._known.clear()

    def _flush(self, transport: Transport, deadline: float) -> None:
        """Send what is queued (and the drop counts) until done or the deadline."""
        remaining = deadline - time.monotonic()
        if self.source_id is None or remaining <= 0:
            return
        if not self._send_lock.acquire(timeout=remaining):
            return
        try:
            while self._pending or len(self.queue) or self._unreported_drops():
                left = deadline - time.monotonic()
                if left <= 0 or not self._send_batch(transport, timeout=left):
                    break
        finally:
            self._send_lock.release()

    def _final_report(
        self, transport: Transport, deadline: float, finals: list[ProbeStatus] | None
    ) -> None:
        try:
            left = deadline - time.monotonic()
            if self.source_id is not None and left > 0:
                self._heartbeat(transport, timeout=left, engine_statuses=finals)
            left = deadline - time.monotonic()
            if self.source_id is not None and left > 0:
                transport.request(
                    "POST", f"/v1/sensors/{self.source_id}/deregister", {}, timeout=left
                )
        except HubError as exc:
            self._log.failure("final report", exc)

    def _count_unsent(self) -> None:
        # Whatever could not be sent in time is lost: count it, per probe.
        lost = self._pending + self.queue.take(len(self.queue) + 1)
        self._pending = []
        for hit in lost:
            self.queue.drop(hit.probe_id)

    # -- fork ----------------------------------------------------------------------------

    def before_fork(self) -> None:
        # The agent thread calls the engine only under self._lock: holding it here means the
        # child never inherits an engine lock taken by a thread that does not exist there.
        # Not the send lock: the agent thread may hold it for a whole network timeout.
        # Bounded: the host's fork must never wait on us for long. Past the bound the fork goes
        # on and the child replaces the locks anyway (after_fork_child).
        # What was taken is kept per forking thread: two threads may fork at once.
        held = self._lock.acquire(timeout=_FORK_WAIT)
        queue_held = self.queue.lock_for_fork(_FORK_WAIT)
        self._held_for_fork[threading.get_ident()] = (held, queue_held)

    def after_fork_parent(self) -> None:
        held, queue_held = self._held_for_fork.pop(threading.get_ident(), (False, False))
        if queue_held:
            self.queue.unlock_after_fork()
        if held:
            self._lock.release()

    def after_fork_child(self) -> None:
        """Become a new source: fresh queue, identity and thread; the probe set is re-fetched."""
        # The locks taken in before_fork are replaced, not released: new locks cannot be stale.
        self._lock = threading.RLock()
        self._send_lock = threading.Lock()
        self._held_for_fork = {}
        self.queue.reset_after_fork()
        self._transport.forget()
        self._transport = self._new_transport()
        self._log = _LogOnce()
        self._reset_identity()
        if self.running:
            self._stop_event = Event()
            self._state = "starting"
            self._start_thread()
        else:
            self._thread = None

    # -- the loop --------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self._turn()
                self._backoffs["loop"].reset()
            except Exception as exc:
                # A bug of ours must not kill the thread (nor reach the host): log, wait, go on.
                self._log.failure("sensor agent loop", exc)
                self._stop_event.wait(self._backoffs["loop"].next_delay())
        self._transport.close()

    def _turn(self) -> None:
        now = time.monotonic()
        if self.source_id is None:
            if now < self._due["register"]:
                self._stop_event.wait(self._due["register"] - now)
                return
            self._register()
            return
        if now >= self._due["send"]:
            self._collect()
            with self._send_lock:
                ok = self._send_ready()
            self._due["send"] = time.monotonic() + (
                self.config.flush_interval if ok else self._backoffs["send"].next_delay()
            )
        if self._stop_event.is_set() or self.source_id is None:
            return
        if time.monotonic() >= self._due["heartbeat"]:
            ok = self._guarded("heartbeat", lambda: self._heartbeat(self._transport))
            interval = self.config.heartbeat_interval or self._hub_heartbeat
            self._due["heartbeat"] = time.monotonic() + (
                interval if ok else self._backoffs["heartbeat"].next_delay()
            )
        if self._stop_event.is_set() or self.source_id is None:
            return
        now = time.monotonic()
        if now >= self._due["poll"]:
            wait = self._poll_wait(now)
            ok = self._guarded("probe poll", lambda: self._poll(wait))
            if not ok:
                self._due["poll"] = time.monotonic() + self._backoffs["poll"].next_delay()
            return
        next_due = min(self._due["send"], self._due["heartbeat"], self._due["poll"])
        self._stop_event.wait(max(0.0, next_due - now))

    def _poll_wait(self, now: float) -> float:
        cap = self._hub_poll_wait
        if self.config.poll_wait is not None:
            cap = min(cap, self.config.poll_wait)
        # While hits can arrive, the poll must end in time for the next send and heartbeat.
        if self._in_engine or self._pending or len(self.queue):
            cap = min(cap, max(0.0, self._due["send"] - now))
        interval = self.config.heartbeat_interval or self._hub_heartbeat
        cap = min(cap, max(0.0, self._due["heartbeat"] - now), interval)
        return round(max(0.0, cap), 3)

    def _guarded(self, what: str, action: Callable[[], object]) -> bool:
        try:
            action()
        except HubError as exc:
            self._hub_failed(what, exc)
            return False
        self._log.success(what)
        self._backoffs[_backoff_name(what)].reset()
        self.last_contact = time.time()
        if self._state == "disconnected":
            self._state = "connected"
        return True

    def _hub_failed(self, what: str, exc: HubError) -> None:
        self.last_error = f"{what}: {exc}"
        self._log.failure(what, exc)
        if self._state == "connected":
            self._state = "disconnected"
        # The hub forgot this source (new database, expired): register again, keep the probes.
        if isinstance(exc, HubResponseError) and exc.status == 404:
            self.source_id = None
            self._etag = None

    # -- register, poll, apply -------------------------------------------------------------

    def _register(self) -> None:
        body = {
            "service": self.config.service,
            "version": self.config.version,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "python": platform.python_version(),
            "labels": dict(self.config.labels),
            "runtime_id": self.runtime_id,
            "sensor_version": __version__,
            "backend": self._backend_name(),
        }
        try:
            answer = self._transport.request("POST", "/v1/sensors/register", body)
            source_id = answer.get("source_id")
            if not isinstance(source_id, str) or not source_id:
                raise HubResponseError(
                    f"hub {self.config.hub_url}: register answered source_id={source_id!r}, "
                    "expected a non-empty string"
                )
        except HubError as exc:
            self._hub_failed("register", exc)
            self._state = "disconnected"
            self._due["register"] = time.monotonic() + self._backoffs["register"].next_delay()
            return
        self._log.success("register")
        self._backoffs["register"].reset()
        self._hub_poll_wait = _seconds(answer.get("poll_wait"), _DEFAULT_POLL_WAIT)
        self._hub_heartbeat = _seconds(answer.get("heartbeat_interval"), _DEFAULT_HEARTBEAT)
        self.source_id = source_id
        self._etag = None
        self.last_contact = time.time()
        self._state = "connected"
        now = time.monotonic()
        self._due.update(poll=now, send=now, heartbeat=now)
        log.info("sensor: registered with %s as source %s", self.config.hub_url, source_id)

    def _backend_name(self) -> str | None:
        # The engine is created here, on the agent thread, so that the source shows its backend;
        # creating it arms nothing (hooks exist only while a probe is installed).
        with self._lock:  # every engine call holds the agent lock: see before_fork
            engine = self._get_engine()
        name = None if engine is None else getattr(engine, "backend_name", None)
        return name if isinstance(name, str) else None

    def _poll(self, wait: float) -> None:
        source_id = self.source_id
        if source_id is None:
            return
        answer = self._transport.request(
            "GET",
            f"/v1/sensors/{source_id}/probes",
            # unchanged=short: a poll that ends with the set unchanged (at every send, while
            # hits flow) is answered in a few bytes; an older hub ignores it
            query={
                "etag": self._etag,
                "wait": _format_seconds(wait),
                "unchanged": "short" if self._etag is not None else None,
            },
            timeout=wait + self.config.timeout,
        )
        if answer.get("unchanged") is True:
            if self._etag is None or answer.get("etag") != self._etag:
                self._etag = None  # the next poll asks for the whole set
                raise HubResponseError(
                    f"hub {self.config.hub_url}: probe poll answered unchanged for etag "
                    f"{str(answer.get('etag'))[:40]!r}, expected the sensor's {self._etag!r}"
                )
            return
        etag, probes, redaction = answer.get("etag"), answer.get("probes"), answer.get("redaction")
        if not isinstance(probes, list) or not all(isinstance(p, dict) for p in probes):
            raise HubResponseError(
                f"hub {self.config.hub_url}: probe poll answered probes={str(probes)[:80]}, "
                "expected a list of probe objects"
            )
        if etag is not None and not isinstance(etag, str):
            raise HubResponseError(
                f"hub {self.config.hub_url}: probe poll answered etag={etag!r}, expected a string"
            )
        if redaction is not None and isinstance(redaction, dict):
            self._apply_redaction(redaction)
        if etag is not None and etag == self._etag:
            return
        if self._apply(probes):
            self._due["heartbeat"] = time.monotonic()  # report the new states soon
        self._etag = etag

    def _apply(self, probes: list[dict[str, Any]]) -> bool:
        """Make the engine's probe set equal to the hub's; True when something changed."""
        wanted: dict[str, dict[str, Any]] = {}
        for data in probes:
            probe_id = data.get("id")
            if isinstance(probe_id, str) and probe_id:
                wanted[probe_id] = data
        changed = False
        with self._lock:
            if not self.running or self._stop_event.is_set():
                return False
            for probe_id in [p for p in self._known if p not in wanted]:
                self._remove(probe_id)
                changed = True
            for probe_id, data in wanted.items():
                if self._known.get(probe_id) == data:
                    continue
                if probe_id in self._known:
                    self._remove(probe_id)
                self._install(probe_id, data)
                changed = True
        return changed

    def _remove(self, probe_id: str) -> None:
        self._known.pop(probe_id, None)
        self._local_errors.pop(probe_id, None)
        if probe_id in self._in_engine and self._engine is not None:
            self._in_engine.discard(probe_id)
            final = None
            try:
                final = self._engine.status(probe_id)  # removing it forgets its counts
                self._engine.remove(probe_id)
            except Exception as exc:
                self._log.failure(f"removing probe {probe_id}", exc)
            if final is not None:
                self._ended[probe_id] = dataclasses.replace(
                    final,
                    state=ProbeState.REMOVED,
                    reason="removed: the hub no longer sends this probe to this source "
                    "(removed, expired or completed there)",
                    updated_at=time.time(),
                )
                self._ended.move_to_end(probe_id)
                while len(self._ended) > _MAX_ENDED_STATUSES:
                    self._ended.popitem(last=False)

    def _install(self, probe_id: str, data: dict[str, Any]) -> None:
        self._known[probe_id] = data
        self._ended.pop(probe_id, None)
        try:
            probe = Probe.from_dict(data)
        except Exception as exc:
            self._local_errors[probe_id] = ProbeStatus(
                probe_id, ProbeState.ERROR, reason=_redact_error(f"invalid probe: {exc}")
            )
            return
        engine = self._get_engine()
        if engine is None:
            self._local_errors[probe_id] = ProbeStatus(
                probe_id,
                ProbeState.ERROR,
                reason=_redact_error(self._engine_error or "engine unavailable"),
            )
            return
        try:
            state = engine.install(probe, on_hit=self.queue.put)
        except Exception as exc:  # the engine promises not to raise; a bug must not stop us
            self._local_errors[probe_id] = ProbeStatus(
                probe_id, ProbeState.ERROR, reason=_redact_error(f"engine.install raised {exc!r}")
            )
            return
        self._in_engine.add(probe_id)
        log.info("sensor: probe %s at %s: %s", probe_id, data.get("location"), state.state)

    def _get_engine(self) -> Engine | None:
        if self._engine is None and self._engine_error is None:
            try:
                self._engine = self._engine_factory()
            except Exception as exc:
                self._engine_error = f"engine unavailable: {type(exc).__name__}: {exc}"
                self._log.failure("starting the engine", exc)
            else:
                budget = getattr(self.config, "cpu_budget", None)
                if budget is not None and hasattr(self._engine, "cpu_budget"):
                    # start(cpu_budget=...) or SENSOR_CPU_BUDGET, as validated by load_config.
                    self._engine.cpu_budget = budget
                _warm_up()
        return self._engine

    def _apply_redaction(self, redaction: dict[str, Any]) -> None:
        if redaction == self._redaction:
            return
        self._redaction = redaction
        try:
            from sensor.redaction import get_redactor

            redactor = get_redactor()
            if self._local_redaction is None:
                self._local_redaction = redactor.to_dict()
            redactor.update(**merge_redaction(self._local_redaction, redaction))
        except Exception as exc:
            self._log.failure("applying the hub's redaction rules", exc)

    # -- hits and heartbeats ---------------------------------------------------------------

    def _collect(self, *, final: bool = False) -> None:
        """Move hits the engine kept in its own sink, and aggregates, into the queue."""
        engine = self._engine
        if engine is None:
            return
        try:
            with self._lock:
                drained = engine.drain(self.queue.capacity)
                if self._in_engine or final:
                    drained += engine.flush_aggregates()
            for hit in drained:
                self.queue.put(hit)
        except Exception as exc:
            self._log.failure("draining the engine", exc)

    def _unreported_drops(self) -> dict[str, int]:
        reported = self._reported_drops
        return {
            k: v - reported.get(k, 0)
            for k, v in self.queue.drops().items()
            if v > reported.get(k, 0)
        }

    def _send_ready(self) -> bool:
        """Send queued hits in batches (caller holds the send lock); False on a hub failure."""
        for _ in range(_MAX_BATCHES_PER_TURN):
            if not (self._pending or len(self.queue) or self._unreported_drops()):
                return True
            if not self._send_batch(self._transport):
                return False
            if len(self.queue) < self._batch_cap and not self._pending:
                return True  # a partial batch waits for the next interval
        return True

    def _send_batch(self, transport: Transport, *, timeout: float | None = None) -> bool:
        source_id = self.source_id
        if source_id is None:
            return False
        if not self._pending:
            self._pending = self.queue.take(self._batch_cap)
        batch = self._pending[: self._batch_cap]
        drops = self._unreported_drops()
        number = self._batch_number if self._number_batches else None
        body = self._encode_batch(batch, drops, number)
        try:
            answer = transport.request(
                "POST", f"/v1/sensors/{source_id}/hits", body, timeout=timeout
            )
            accepted = answer.get("accepted")
            if isinstance(accepted, bool) or not isinstance(accepted, int) or accepted < 0:
                # Without the hub's count, a proxy's or a stranger's 200 could swallow the batch.
                raise HubResponseError(
                    f"hub {self.config.hub_url}: hits answered accepted={accepted!r}, "
                    "expected the number of hits stored"
                )
        except HubResponseError as exc:
            status = exc.status or 0
            if status == 413 and len(batch) > 1:
                self._batch_cap = max(1, len(batch) // 2)  # too big for the hub: halve, retry
                return True
            if status == 422 and number is not None and _UNKNOWN_BATCH.search(str(exc)):
                # A hub older than batch numbers: send without them (a retried batch of drop
                # counts only may then count twice there, as it always did).
                self._number_batches = False
                log.warning(
                    "sensor: the hub at %s does not know batch numbers (an older hub); "
                    "sending batches without them: upgrade the hub",
                    self.config.hub_url,
                )
                return True
            if 400 <= status < 500 and status not in (404, 408, 409, 429):
                # The hub refuses this batch for good: retrying would block every later hit.
                for hit in batch:
                    self.queue.drop(hit.probe_id)
                del self._pending[: len(batch)]
                self._batch_number += 1
                self._hub_failed("sending hits", exc)
                return True
            self.send_failures += 1
            self._hub_failed("sending hits", exc)
            return False
        except HubError as exc:
            self.send_failures += 1
            self._hub_failed("sending hits", exc)
            return False
        del self._pending[: len(batch)]
        self._batch_number += 1
        self.sent += len(batch)
        self.batches += 1
        self._count_declined(batch, accepted, answer.get("declined_by_probe"))
        for probe_id, count in drops.items():
            self._reported_drops[probe_id] = self._reported_drops.get(probe_id, 0) + count
        self._log.success("sending hits")
        self._backoffs["send"].reset()
        self.last_contact = time.time()
        if self._state == "disconnected":
            self._state = "connected"
        return True

    def _count_declined(self, batch: list[Hit], accepted: int, itemized: object) -> None:
        """Count the hits of a sent batch that the hub did not store as drops, per probe.

        ``sent = stored + counted drops`` must hold whatever the hub answers. The hub says per
        probe how many it declined and why; when that list does not account for every hit it
        did not store (an older hub, a proxy), the rest are counted from the end of the batch.
        """
        stored = min(accepted, len(batch))
        if accepted > len(batch):
            self._log.failure(
                "counting stored hits",
                f"hub answered accepted={accepted} for a batch of {len(batch)}",
            )
        self.stored += stored
        missing = len(batch) - stored
        if not missing:
            return
        self.declined += missing
        in_batch = collections.Counter(hit.probe_id for hit in batch)
        declined: dict[str, int] = {}
        if isinstance(itemized, dict):
            for probe_id, reasons in itemized.items():
                if not isinstance(reasons, dict):
                    continue
                count = sum(n for n in reasons.values() if type(n) is int and n > 0)
                count = min(count, in_batch.get(probe_id, 0))
                if count:
                    declined[probe_id] = count
        if sum(declined.values()) != missing:
            declined = {}
            for hit in batch[len(batch) - missing :]:
                declined[hit.probe_id] = declined.get(hit.probe_id, 0) + 1
        for probe_id, count in declined.items():
            self.queue.drop(probe_id, count)

    def _encode_batch(self, batch: list[Hit], drops: dict[str, int], number: int | None) -> bytes:
        hits = [hit.to_dict() for hit in batch]
        head: dict[str, Any] = {} if number is None else {"batch": number}
        try:
            return json.dumps(
                {**head, "hits": hits, "dropped": drops}, separators=(",", ":")
            ).encode()
        except (TypeError, ValueError):
            pass
        # A hit that is not JSON (an engine bug) must not block the queue: drop it, counted.
        good = []
        for hit, data in zip(batch, hits, strict=True):
            try:
                json.dumps(data)
                good.append(data)
            except (TypeError, ValueError):
                self.queue.drop(hit.probe_id)
                self._log.failure("encoding a hit", f"probe {hit.probe_id}: not JSON")
        return json.dumps({**head, "hits": good, "dropped": drops}, separators=(",", ":")).encode()

    def _engine_statuses(self) -> list[ProbeStatus]:
        engine = self._engine
        if engine is None:
            return []
        try:
            with self._lock:
                return list(engine.statuses())
        except Exception as exc:
            self._log.failure("reading probe statuses", exc)
            return []

    def _statuses(self, engine_statuses: list[ProbeStatus] | None = None) -> list[dict[str, Any]]:
        """Every probe's status: the engine's, local errors, and probes removed since; each
        with the hits the agent dropped (queue full, declined by the hub) added to drops."""
        drops = self.queue.drops()
        result: dict[str, ProbeStatus] = dict(self._ended)
        if engine_statuses is None:
            engine_statuses = self._engine_statuses()
        for status in engine_statuses:
            result[status.probe_id] = status
        result.update(self._local_errors)
        merged = []
        for probe_id, status in sorted(result.items()):
            extra = drops.get(probe_id, 0)
            if extra:
                status = dataclasses.replace(status, drops=status.drops + extra)
            if status.reason is not None and len(status.reason) > _MAX_REASON:
                # the hub refuses a longer one, and with it the whole heartbeat
                cut = status.reason[: _MAX_REASON - 40]
                status = dataclasses.replace(
                    status, reason=f"{cut}... ({len(status.reason)} characters)"
                )
            merged.append(status.to_dict())
        return merged

    def _engine_dropped(self) -> int:
        engine = self._engine
        if engine is None:
            return 0
        try:
            return int(engine.dropped)
        except Exception:
            return 0

    def _heartbeat(
        self,
        transport: Transport,
        *,
        timeout: float | None = None,
        engine_statuses: list[ProbeStatus] | None = None,
    ) -> None:
        source_id = self.source_id
        if source_id is None:
            return
        statuses = self._statuses(engine_statuses)
        dropped = self.queue.dropped + self._engine_dropped()
        path = f"/v1/sensors/{source_id}/heartbeat"
        try:
            body = {"statuses": self._hub_fields(statuses), "dropped": dropped}
            transport.request("POST", path, body, timeout=timeout)
            return
        except HubResponseError as exc:
            known = _known_status_fields(exc) if self._status_fields is None else None
            if known is None:
                raise
            # A hub older than some of the counters (it names the fields it takes): keep
            # reporting what it knows rather than have every heartbeat refused.
            self._status_fields = known
            log.warning(
                "sensor: the hub at %s does not take the status fields %s (an older hub); "
                "reporting without them: upgrade the hub",
                self.config.hub_url,
                ", ".join(sorted(set(statuses[0]) - known)) if statuses else "?",
            )
        body = {"statuses": self._hub_fields(statuses), "dropped": dropped}
        transport.request("POST", path, body, timeout=timeout)

    def _hub_fields(self, statuses: list[dict[str, Any]]) -> list[dict[str, Any]]:
        known = self._status_fields
        if known is None:
            return statuses
        return [{k: v for k, v in status.items() if k in known} for status in statuses]

    # -- status ----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        engine = self._engine
        return {
            "state": self._state,
            "hub": self.config.hub_url,
            "service": self.config.service,
            "source_id": self.source_id,
            "runtime_id": self.runtime_id,
            "pid": self.pid,
            "backend": None if engine is None else getattr(engine, "backend_name", None),
            "queued": len(self.queue) + len(self._pending),
            "sent": self.sent,
            "stored": self.stored,
            "declined": self.declined,
            "batches": self.batches,
            "send_failures": self.send_failures,
            "dropped": self.queue.dropped,
            "dropped_by_probe": self.queue.drops(),
            "engine_dropped": self._engine_dropped() if engine is not None else 0,
            "probes": self._statuses(),
            "last_error": self.last_error,
            "last_contact": self.last_contact,
        }


#: Modules the engine loads lazily on a probe's first hit. Importing them here, on the agent
#: thread, keeps that cost (about 10 ms, decimal included) off the request thread, where it
#: would also count against the engine's CPU budget and could disable the probe at once.
def merge_redaction(local: dict[str, list[str]], hub: dict[str, Any]) -> dict[str, list[str]]:
    """The rules to apply: the service's own rules plus the hub's, never fewer than its own.

    The hub adds names and patterns; its allow-list can un-redact a default name but never a
    name the operator of this service asked to redact (``SENSOR_REDACT_NAMES``).
    """

    def strings(value: object) -> list[str]:
        if not isinstance(value, list):
            return []
        return [item for item in value if isinstance(item, str)]

    local_names = local.get("names", [])
    names = list(dict.fromkeys([*local_names, *strings(hub.get("names"))]))
    patterns = list(dict.fromkeys([*local.get("patterns", []), *strings(hub.get("patterns"))]))
    kept = set(local_names)
    hub_allow = [name for name in strings(hub.get("allow")) if name not in kept]
    allow = list(dict.fromkeys([*local.get("allow", []), *hub_allow]))
    return {"names": names, "patterns": patterns, "allow": allow}


_WARM_MODULES = ("sensor.capture.encode", "sensor.redaction", "sensor.expressions", "sensor.deny")


def _warm_up() -> None:
    for name in _WARM_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:
            log.debug("sensor: warm-up import of %s failed: %s", name, exc)


def _stopped(status: ProbeStatus) -> ProbeStatus:
    """A probe's last status when the sensor stops: its counts, and no longer armed."""
    if status.state in (ProbeState.INSTALLED, ProbeState.PENDING):
        return dataclasses.replace(
            status, state=ProbeState.REMOVED, reason="removed: the sensor stopped"
        )
    return status


def _backoff_name(what: str) -> str:
    return {"probe poll": "poll", "heartbeat": "heartbeat"}.get(what, "loop")


def _seconds(value: object, default: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        return default
    return min(float(value), 300.0)


def _format_seconds(value: float) -> str:
    return str(int(value)) if value == int(value) else f"{value:.3f}".rstrip("0")


# -- the process-wide agent -----------------------------------------------------------------

_agent: Agent | None = None
_agent_lock = threading.Lock()


def _current() -> Agent | None:
    return _agent


def start(
    hub: str | None = None,
    token: str | None = None,
    service: str | None = None,
    labels: Mapping[str, str] | str | None = None,
    version: str | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Start the sensor: settings from the arguments, then ``SENSOR_*`` variables.

    Returns at once (registration happens in the background, and is retried while the hub is
    down). Raises :class:`sensor.ConfigError` for an invalid setting; calling it again while
    the sensor runs does nothing. Returns :func:`status`.
    """
    global _agent
    # http.client encodes host names with the idna codec, imported lazily on first use; that
    # import can fail on the agent thread while a pre-fork server forks ("unknown encoding:
    # idna"), so do it here, once, on the thread that starts the sensor.
    import encodings.idna  # noqa: F401

    config = load_config(
        hub=hub, token=token, service=service, labels=labels, version=version, **settings
    )
    _configure_logging(config.log_level)
    with _agent_lock:
        if _agent is not None and _agent.running:
            log.info("sensor: start() called while running; keeping the running sensor")
            return _agent.status()
        if not config.enabled:
            log.info("sensor: disabled by configuration (SENSOR_ENABLED)")
            return {"state": "disabled", "hub": config.hub_url, "service": config.service}
        agent = Agent(config)
        _agent = agent
        try:
            fork.install_hooks(_current)
            agent.start()
        except Exception as exc:  # e.g. no thread can be started: the host goes on without us
            log.warning("sensor: could not start: %s", exc)
            agent._state = "stopped"
            agent.last_error = f"start: {exc}"
    return agent.status()


def _configure_logging(level: str) -> None:
    logger = logging.getLogger("sensor")
    logger.setLevel(level)
    # Python's last-resort handler shows WARNING and above only: asking for INFO or DEBUG
    # with no logging set up would otherwise show nothing.
    if level in ("DEBUG", "INFO") and not logger.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("sensor[%(process)d] %(levelname)s %(message)s"))
        logger.addHandler(handler)


def stop(timeout: float | None = None) -> dict[str, Any]:
    """Remove every probe, flush queued hits (within ``timeout``, default SENSOR_EXIT_TIMEOUT
    seconds) and deregister. Never raises. Returns the final :func:`status`."""
    agent = _agent
    if agent is None:
        return status()
    try:
        agent.stop(timeout)
    except Exception as exc:
        log.warning("sensor: stop failed: %s", exc)
    return agent.status()


def status() -> dict[str, Any]:
    """What the sensor is doing: state, source id, queue, sent and dropped counts, probes."""
    agent = _agent
    if agent is None:
        return {"state": "stopped", "hub": None, "source_id": None, "probes": []}
    try:
        return agent.status()
    except Exception as exc:
        return {"state": "unknown", "error": str(exc)}
