"""The sensor's own threads: no probe ever fires on them, and the host's hot path pays nothing.

The agent's thread sends hits with ``http.client``, ``json``, ``socket`` and ``logging``; the waker
thread reopens rate-limited gates. A probe a user places on one of those standard-library
functions must count the host's calls, never the sensor's own. This module says, for any firing,
whether it is *sensor work*, and lets the injection backends skip it without making a host's
firing any dearer.

**Sensor work.** A thread does sensor work between :func:`sensor_work` entry and exit. Every
thread the sensor starts is a :class:`SensorThread`, inside sensor work for its whole life, from
the first line of ``threading``'s own bootstrap code to the last; any other thread can mark a
stretch of sensor work with ``with sensor_work():`` (the final flush at exit runs on the host's
main thread). While blocked in a C call that runs no Python code (a lock, a socket), a sensor
thread steps out with :func:`sensor_idle`: :class:`Event` and :func:`wait_readable` do that for
the agent's waits, so the agent's thread does sensor work only while it actually works.

**Every hook checks, except one C call.** Each hook of the engine (gates, timers, exception
exits) starts with ``if SENSOR_WORKING and get_ident() in SENSOR_WORK: return`` (the gates; the
others test the dict itself): one truth test while nobody does sensor work. The exception is
the C-level count a counter hit or a closed gate's skip is, ``next(tally)``, which the bytecode
backend puts inline in the rebuilt code: nothing cheaper can run, and nothing in it can look at
the thread. So the backends work in two modes, switched when the first thread starts sensor
work and when the last one stops:

* *fast* (nobody does sensor work): the rebuilt code calls ``next(tally)``, as before;
* *checked* (some thread does): for every function it instrumented, the bytecode backend swaps
  in a copy of the rebuilt code whose ``next`` constant is :func:`checked_next` (made with
  ``code.replace(co_consts=...)``, no rebuild), before the thread that starts sensor work runs
  anything but the sensor's own code. The sys.monitoring callbacks test the thread themselves.

So a firing is skipped exactly when it happens on a thread doing sensor work, on every backend,
and a host's counter hit costs what it cost before whenever no thread does sensor work (almost
always: the agent's thread is blocked in a long poll or between turns). A frame keeps the code
it started with: a host frame started in the checked mode stays checked until it returns (right,
one Python call dearer per count). Functions nested in other functions cannot be swapped
reliably (a closure made earlier keeps its code), so their rebuilt code tests :data:`BUSY`
inline instead (one truth test per count, then the same choice).

The sensor's own code never carries a probe (the deny list refuses ``sensor.*``), so a sensor
thread may run it in either mode. Not covered: host code that the garbage collector runs on a
sensor thread (a finalizer, a weakref callback) while that thread runs only the sensor's own
code outside sensor work (the waker between two reopenings); it counts as the host's, as it
would on any other thread.
"""

from __future__ import annotations

import _thread
import contextlib
import select
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from sensor import _atfork, guards
from sensor.guards import SENSOR_WORK, Switch

__all__ = [
    "BUSY",
    "Event",
    "SensorThread",
    "add_mode_listener",
    "checked_next",
    "is_sensor_work",
    "sensor_idle",
    "sensor_work",
    "wait_readable",
]

_get_ident = _thread.get_ident

#: Thread ident -> nesting depth of :func:`sensor_work` (only threads doing sensor work now).
_working = SENSOR_WORK

#: On while some thread does sensor work: a gate's :class:`~sensor.guards.Switch`, which the
#: bytecode backend tests inline in nested functions' rebuilt code (hashed by identity, so a
#: code object holding it hashes; its ``on`` is read by a specialised ``LOAD_ATTR``).
BUSY = Switch()

# Mode changes (fast <-> checked) are serialised by this lock, and the listeners (the bytecode
# backends) are called under it: a thread that starts sensor work returns from the entry only
# once every instrumented function runs its checked copy.
_lock = threading.Lock()
_listeners: weakref.WeakSet[Any] = weakref.WeakSet()


def add_mode_listener(listener: Any) -> bool:
    """Register ``listener.set_checked(flag)`` (called on each mode change); return the mode now.

    Held weakly. The registration and the mode it returns are one step under the mode lock, so
    a listener never misses a change.
    """
    with _lock:
        _listeners.add(listener)
        return bool(_working)


def _notify(checked_mode: bool) -> None:
    for listener in list(_listeners):
        try:
            listener.set_checked(checked_mode)
        except Exception:  # a listener must not stop sensor work; it logs its own failures
            continue


def _set_busy(busy: bool) -> None:
    guards.SENSOR_WORKING = busy
    BUSY.on = busy


def _enter(ident: int, depth: int) -> None:
    with _lock:
        first = not _working
        _working[ident] = _working.get(ident, 0) + depth
        if first:
            _set_busy(True)
            _notify(True)


def _leave(ident: int, depth: int | None = None) -> int:
    """End ``depth`` levels of sensor work on ``ident`` (None: all); return the levels ended."""
    with _lock:
        had = _working.get(ident, 0)
        ended = had if depth is None else min(depth, had)
        if had - ended > 0:
            _working[ident] = had - ended
        elif had:
            del _working[ident]
            if not _working:
                _set_busy(False)
                _notify(False)
        return ended


def is_sensor_work() -> bool:
    """True when the calling thread is doing sensor work (a probe must not fire here)."""
    return bool(_working) and _get_ident() in _working


@contextlib.contextmanager
def sensor_work() -> Iterator[None]:
    """Mark the calling thread as doing sensor work: no probe fires on it until the exit."""
    ident = _get_ident()
    _enter(ident, 1)
    try:
        yield
    finally:
        _leave(ident, 1)


@contextlib.contextmanager
def sensor_idle() -> Iterator[None]:
    """Step out of sensor work around a C call that blocks and runs no Python code.

    A no-op on a thread not doing sensor work. While the agent's thread waits in a long poll,
    nobody does sensor work and the host's hooks run in the fast mode.
    """
    ident = _get_ident()
    depth = _leave(ident) if ident in _working else 0
    try:
        yield
    finally:
        if depth:
            _enter(ident, depth)


# -- what the backends call in the checked mode -------------------------------------------------


def checked_next(tally: Any) -> None:
    """``next(tally)`` unless the calling thread does sensor work (a counter hit, a skip)."""
    if _working and _get_ident() in _working:
        return
    next(tally)


# -- threads and waits ---------------------------------------------------------------------------


class SensorThread(threading.Thread):
    """A daemon thread inside sensor work for its whole life, ``threading``'s bootstrap included.

    ``threading.Thread.start`` runs ``self._bootstrap`` on the new thread (3.11 to 3.13), and
    that bootstrap runs Python code of the ``threading`` module (``Event.set``,
    ``Condition.notify_all``...) before ``run``: overriding ``run`` would let a probe on those
    fire on the sensor's thread. If a Python version drops ``_bootstrap``, ``run`` is covered
    instead (and a test says so).
    """

    def __init__(self, target: Callable[[], object], name: str) -> None:
        super().__init__(target=target, name=name, daemon=True)
        self.covers_bootstrap = callable(getattr(threading.Thread, "_bootstrap", None))

    def _bootstrap(self) -> None:
        with sensor_work():
            super()._bootstrap()  # type: ignore[misc]

    def run(self) -> None:
        if self.covers_bootstrap:
            super().run()
            return
        with sensor_work():  # pragma: no cover - only on a Python without Thread._bootstrap
            super().run()


class Event:
    """``threading.Event`` for the sensor's threads: ``wait`` blocks in C, out of sensor work.

    ``threading.Event.wait`` is Python code of the ``threading`` module (where a probe may be):
    this one waits on a bare ``_thread`` lock, held while the event is clear, so the waiting
    thread steps out of sensor work for exactly the C call.
    """

    __slots__ = ("_flag", "_gate")

    def __init__(self) -> None:
        self._flag = False
        self._gate = _thread.allocate_lock()
        self._gate.acquire()

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        with contextlib.suppress(RuntimeError):  # already released: set twice
            self._gate.release()

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        wait = -1.0 if timeout is None else max(0.0, float(timeout))
        with sensor_idle():
            got = self._gate.acquire(True, wait)
        if got:
            self._gate.release()  # let every other waiter through too
        return self._flag


def wait_readable(sock: Any, timeout: float | None) -> bool:
    """Wait until ``sock`` has data to read (or is closed), out of sensor work; False on timeout.

    The agent calls this between sending a request and reading the answer, so that the long
    poll (up to the hub's poll wait) is spent blocked in ``poll(2)`` rather than inside
    ``http.client`` and ``socket`` Python code: nobody does sensor work meanwhile. Where it
    cannot tell (no ``select.poll``, no file descriptor), it returns True at once and the read
    blocks as before, inside sensor work (right, only dearer for the host while it lasts).
    """
    pending = getattr(sock, "pending", None)  # TLS: bytes already decrypted are readable now
    if pending is not None and pending():
        return True
    try:
        fd = sock.fileno()
    except (OSError, ValueError):
        return True
    poll = getattr(select, "poll", None)
    if fd < 0 or poll is None:
        return True
    poller = poll()
    poller.register(fd, select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP)
    wait_ms = -1 if timeout is None else max(0, int(timeout * 1000))
    with sensor_idle():
        ready = poller.poll(wait_ms)
    return bool(ready)


# -- fork ------------------------------------------------------------------------------------------


def _after_fork_in_child() -> None:
    # Only the forking thread survives: the sensor threads of the parent do not exist here, and
    # the mode lock may have been held by one of them. Keep the forking thread's own sensor work
    # (a fork inside ``sensor_work``) and put every listener in the mode that follows.
    global _lock
    _lock = threading.Lock()
    ident = _get_ident()
    depth = _working.get(ident, 0)
    _working.clear()
    if depth:
        _working[ident] = depth
    _set_busy(bool(depth))
    for listener in list(_listeners):
        try:
            listener.set_checked(bool(depth), force=True)
        except Exception:
            continue


#: Between the agent (outer) and the engine (inner): in the child the engine's and backends'
#: locks are new by then, and the agent's thread starts again only after the mode is right.
_atfork.register(_atfork.THREADS, after_in_child=_after_fork_in_child)
