"""Guards that keep a probe cheap and bounded: rate limit, max hits, expiry and a CPU budget.

Every guard is checked on the host thread *before* any capture work. None of them blocks or
raises: a guard either lets the hit through, skips it (counted), or disables the probe with a
reason that ends up in the probe's status. Over the CPU budget the sensor sheds load (fewer
evaluations and captures, each skipped firing counted) rather than switch probes off.
"""

from __future__ import annotations

import _thread
import collections
import contextlib
import functools
import heapq
import itertools
import logging
import math
import random
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from sensor import _atfork, _epoch
from sensor import redaction as _redaction

__all__ = [
    "GATE_FRAMES",
    "LONG_WAIT",
    "MAX_GROUPS",
    "NOTHING",
    "NOVEL_KEYS",
    "NOVEL_RATE",
    "PASSED_ARGS",
    "SENSOR_WORK",
    "SENSOR_WORKING",
    "SHARE_HOLD",
    "Account",
    "CpuBudget",
    "ExpectGate",
    "Gate",
    "Novelty",
    "Switch",
    "SwitchGroup",
    "Waker",
    "closed_count_of",
    "group_of",
    "jitter_seed",
    "locals_of",
    "new_tally",
    "sampler_of",
    "samples",
    "switch_of",
    "switched",
    "tally_count",
    "tick_after",
    "tick_before",
    "tick_of",
    "value_class",
]

log = logging.getLogger("sensor.guards")

#: The value a hook receives at points that carry none (entry, line).
NOTHING: object = object()

#: Frames between a gate's ``fire`` and the backend's call of ``gate.hook``: the hook (the skip
#: path) calls the admission step, which calls ``fire``.
GATE_FRAMES = 2

#: The attribute of a gate's hook holding its (switch, skips) pair; see :func:`switch_of`.
_SWITCH_ATTR = "sensor_switch"
#: The attribute of an entry gate's hook holding the switch its sampled calls open.
_SAMPLES_ATTR = "sensor_samples"
#: The attribute of a hook that takes the values of locals as arguments (see locals_of).
_LOCALS_ATTR = "sensor_locals"
#: How many such arguments it takes after its own (see locals_of): typical expectations read
#: one or two locals, and each more costs every evaluation a default (about 50 instructions).
PASSED_ARGS = 2

#: Threads doing sensor work now (ident -> nesting depth), kept by :mod:`sensor.threads`. Every
#: hook of the engine starts with ``if SENSOR_WORK and get_ident() in SENSOR_WORK: return``: no
#: probe fires on a thread doing the sensor's own work, and while none does (almost always) the
#: test costs one truth test of an empty dict.
SENSOR_WORK: dict[int, int] = {}
#: ``bool(SENSOR_WORK)``, kept by :mod:`sensor.threads` when the first thread starts sensor work
#: and the last one stops: the gates' Python skip path tests this exact bool (the cheapest
#: truth test there is) rather than the dict.
SENSOR_WORKING = False
_get_ident = _thread.get_ident


class Switch:
    """A gate's open/closed flag: ``on``, an exact bool, False while closed.

    A backend puts the switch into rebuilt bytecode as a constant and tests it inline with
    ``LOAD_CONST switch; LOAD_ATTR on; POP_JUMP_IF_...``. Every Python the sensor supports
    specialises that read (``LOAD_ATTR_SLOT``: a type version check and a load), and the jump
    tests an exact bool with no truth-test call. (A ``list`` subclass, empty while closed, was
    the switch before: 3.13 specialises ``TO_BOOL`` for an exact ``list`` only, so each inline
    test there paid ``PyObject_IsTrue`` and a back-off counter, about 30 instructions; an exact
    list cannot be a constant, since a code object hashes its constants.) Hashed and compared
    by identity (``object``'s own), so that a code object holding it hashes. Only exact bools
    are ever stored (3.13's jump reads its operand as one). Hot code tests ``switch.on``;
    ``bool(switch)`` is the same answer, for the rest.

    A switch made with ``grouped=True`` (a gate's) may be a member of groups (see
    :class:`SwitchGroup` and :func:`group_of`): it is then opened and closed only by
    :meth:`open` and :meth:`close`, which keep its groups right. Any other switch is opened
    and closed by one attribute store (``switch.on = True``), a single step under the GIL for
    readers on any thread, and is never grouped.
    """

    __slots__ = ("groups", "on")

    def __init__(self, on: bool = False, *, grouped: bool = False) -> None:
        self.on: bool = bool(on)
        #: The groups this switch is a member of (only ever added to, see group_of), or None
        #: for a switch that is never grouped.
        self.groups: tuple[SwitchGroup, ...] | None = () if grouped else None

    def open(self) -> None:
        """Open the switch, then each of its groups (in this order: see :class:`SwitchGroup`)."""
        self.on = True
        groups = self.groups
        if groups:
            for group in groups:
                group.on = True

    def close(self) -> None:
        """Close the switch, then each group of it whose members are all closed."""
        self.on = False
        groups = self.groups
        if groups:
            for group in groups:
                group.settle()

    def __bool__(self) -> bool:
        return self.on

    def __repr__(self) -> str:
        return f"<Switch {'open' if self.on else 'closed'}>"


class SwitchGroup(Switch):
    """One switch for several gates' switches (its ``members``): open iff any member is open.

    Where several gates stand on one point (the standing expectations of a return point), a
    backend tests the group first: while it is closed (every member closed: each of their
    firings would only count a skip) it counts one skip on the group's ``tally`` instead of
    testing and counting each member; while it is open it runs each member's own test. A
    member's closed count is its own tally plus its groups' (see :func:`closed_count_of`).

    Kept right by the members' :meth:`Switch.open` (the member first, then the group) and
    :meth:`Switch.close` (the member, then :meth:`settle`: the group closed if no member is
    open, and opened again if one is by then), with no lock: whatever the interleaving, once
    the stores are done a group is open if any of its members is. (A member opened after a
    settle read it closed stores its group open after that; a settle that stored the group
    closed after a member's opening reads that member open afterwards and opens it again.) A
    firing in the instants between may find the group closed while a member opens: counted for
    that member as closed, as a firing that tested the member's own switch just before it
    opened is. A group left open while its members are all closed is only slower.
    """

    __slots__ = ("members", "tally")

    def __init__(self, members: tuple[Switch, ...]) -> None:
        super().__init__(True)  # open until settled: harmless
        self.members = members
        self.tally = new_tally()

    def __repr__(self) -> str:
        return f"<SwitchGroup of {len(self.members)} {'open' if self.on else 'closed'}>"

    def settle(self) -> None:
        """Close the group if no member is open (see the class docstring)."""
        for member in self.members:
            if member.on:
                return
        self.on = False
        # Read again after the store: a member opened meanwhile may have stored the group
        # open before it (its store came first and is lost): open it again.
        for member in self.members:
            if member.on:
                self.on = True
                return


#: The most groups one switch joins (see group_of): a member's closings settle each of its
#: groups and its closed count reads each group's tally, and groups are never left (code that
#: tests one may still run in a frame), so a switch in this many is grouped no further.
MAX_GROUPS = 16
_groups_lock = threading.Lock()


def group_of(switches: list[Switch]) -> SwitchGroup | None:
    """The group of ``switches`` (made once per set of members), or None if they cannot form one.

    Called where a backend places the hooks of several gates at one point (never on a host's hot
    path). None for fewer than two, for a switch that is not ``grouped`` or appears twice, and
    when a switch has joined :data:`MAX_GROUPS` groups already (its point then tests each gate,
    as without groups). A new group starts open and is settled once its members know it.
    """
    if len(switches) < 2 or len({id(s) for s in switches}) != len(switches):
        return None
    with _groups_lock:
        memberships = [s.groups for s in switches]
        if any(groups is None for groups in memberships):
            return None
        for group in memberships[0] or ():
            if len(group.members) == len(switches) and all(
                any(m is s for m in group.members) for s in switches
            ):
                return group
        if any(len(groups or ()) >= MAX_GROUPS for groups in memberships):
            return None
        group = SwitchGroup(tuple(switches))
        for switch in switches:
            switch.groups = (*(switch.groups or ()), group)
    group.settle()
    return group


def closed_count_of(switch: Switch, closed: Any) -> int:
    """A gate's firings skipped while closed: its own ``closed`` tally and its groups' tallies.

    A firing its group skipped is one the gate would have skipped itself (the group is closed
    only while every member is); each group counts it once for each member.
    """
    n = sys.maxsize - int(closed.__length_hint__())
    groups = switch.groups
    if groups:
        for group in groups:
            n += sys.maxsize - int(group.tally.__length_hint__())
    return n


def switch_of(hook: Callable[..., Any]) -> tuple[Switch, Any] | None:
    """A gate hook's *switch* and *skip counter*, or None for any other hook.

    The switch's ``on`` is False while the gate is closed (every firing would only be skipped);
    ``next(skips)`` counts one skipped firing. A backend may test the switch inline before it
    calls the hook and count the skip itself, which saves the call. The hook tests the switch
    too, so a backend that ignores it stays right. ``skips`` may be None: nothing is counted
    while the switch is closed (the per-line hooks of a lines probe, see :func:`switched`).
    Several gates' switches may be tested together, through their group's (see
    :class:`SwitchGroup`): a gate's closed count is then :func:`closed_count_of`, not its
    ``skips`` alone.
    """
    pair = getattr(hook, _SWITCH_ATTR, None)
    return pair if isinstance(pair, tuple) else None


def switched(hook: Callable[..., Any], switch: Switch) -> Callable[..., Any]:
    """Mark ``hook`` as guarded by ``switch`` with no skip counter (see :func:`switch_of`).

    A backend that honours the mark runs the hook only while the switch is on, at the
    cost of one inline test otherwise; the hook must test the switch itself too.
    """
    setattr(hook, _SWITCH_ATTR, (switch, None))
    return hook


def samples(hook: Callable[..., Any], switch: Switch) -> Callable[..., Any]:
    """Mark an entry gate's ``hook`` as the one whose sampled calls open ``switch``.

    A call whose gate is closed (its switch off: the firing is only skipped) is not sampled,
    so a backend may run the original body right after counting the skip, without testing
    ``switch`` (see :func:`sensor.inject.bytecode_backend.instrument`).
    """
    setattr(hook, _SAMPLES_ATTR, switch)
    return hook


def locals_of(hook: Callable[..., Any]) -> tuple[str, ...] | None:
    """The locals whose values a hook takes as arguments after its own (maybe none), or None.

    An expectation's hook (:class:`sensor.hotpath.FastExpectGate`) takes its value (``NOTHING``
    at the entry or a line) and :data:`PASSED_ARGS` more: a backend that can read the locals
    named here without running user code where all of them are certainly bound (the bytecode
    backend: ``LOAD_FAST``, see :mod:`sensor.inject.bound`) passes their values in this order,
    ``NOTHING`` for the rest or leaving them to their defaults, so that the hook reads no
    frame; where it cannot, it passes none (or ``NOTHING`` for them all) and the hook reads
    the frame itself. A backend may call ``hook(value)`` or ``hook()`` as for any hook
    (sys.monitoring does): the same outcome. (3.13 specialises only a call with the
    function's own argument count, so the bytecode backend passes them all there.)
    """
    names = getattr(hook, _LOCALS_ATTR, None)
    return names if type(names) is tuple and len(names) <= PASSED_ARGS else None


def sampler_of(hook: Callable[..., Any]) -> Switch | None:
    """The switch an entry gate's hook opens on a sampled call (see :func:`samples`), or None."""
    switch = getattr(hook, _SAMPLES_ATTR, None)
    return switch if isinstance(switch, Switch) else None


def new_tally() -> Any:
    """A hot-path counter: ``itertools.repeat(None, sys.maxsize)``; ``next(tally)`` counts one.

    Its ``__next__`` counts down a C integer and returns ``None``: nothing is allocated per
    count (an ``itertools.count`` allocates the int it returns, and ``n += 1`` does above 256,
    either costing more than an empty Python call). ``sys.maxsize`` counts (about 9.2e18) will
    not be reached. ``__next__`` runs in C under the GIL, so counts from several threads all
    land. Used for counter probes' hits and for gates' skipped firings.
    """
    return itertools.repeat(None, sys.maxsize)


def tally_count(tally: Any) -> int:
    """How many times ``next(tally)`` ran (the length hint is what is left to count down)."""
    return sys.maxsize - int(tally.__length_hint__())


#: A gate whose next token is at least this many seconds away *closes*: its skipped firings
#: cost one flag test instead of a clock read, and the :class:`Waker` reopens it when the token
#: is due. Shorter waits keep the clock test, so a gate causes at most 1 / LONG_WAIT wake-ups
#: per second.
LONG_WAIT = 0.02

#: The sensor's own random numbers: never the host's ``random`` module (whose sequence a service
#: or its tests may depend on). Seeded from the OS, and again in a forked child, so that the
#: workers of one master do not sample in step. :func:`jitter_seed` seeds it for a reproduction.
_rng = random.Random()
#: ``_rng.random``: one C call per draw, made only when a rate-limited gate admits a firing.
_uniform = _rng.random
_M64 = (1 << 64) - 1
# Mixed into a group's number so that its choice of interval is not its first interval's tick.
_GROUP = 1 << 62
#: Mixed into the tick of every interval (see :func:`tick_after`); renewed with the generator.
_tick_salt = _rng.getrandbits(64)


def jitter_seed(seed: int | None = None) -> None:
    """Seed the sensor's private generator (``None``: from the OS, as at import and after fork).

    Every rate-limited admission of the sensor (a gate's token, an expectation's evaluation,
    violation and pass buckets, novelty admission) is *jittered*, so that traffic with a period
    (a cron, a round-robin load balancer, a load generator's fixed cycle) is not sampled at a
    fixed phase of its cycle. A plain token bucket admits the first call after the token
    refills; with strictly periodic calls that is the same phase of the cycle every time, and
    the evidence (which states are captured) and the sampled evaluations are biased.

    The rule, for every token bucket of the sensor: **after an admission that leaves the bucket
    dry (less than one token), the next call is admitted if it comes at least** ``1 / rate``
    **later with no call refused in between; otherwise only once the bucket holds** ``need``
    **tokens**, ``need`` drawn uniformly in (1, 2] at that admission. Every admission spends one
    token; an admission that leaves one token or more is followed by a plain bucket's answer.
    What it promises:

    (a) Traffic slower than the rate (every gap longer than ``1 / rate``) is admitted whole,
        exactly as by a plain token bucket: each call comes an interval or more after the
        previous admission, with nothing refused in between.
    (b) Traffic denser than the rate is not phase-locked: a call is refused in every interval,
        so the k-th admission is the first call after a uniform random instant of the k-th
        interval of ``1 / rate`` seconds (stratified sampling), and every phase of a periodic
        input is admitted in proportion to its share of time. (Admitting any call that finds one
        token when nothing was refused since the last admission is not enough: the call right
        after an admission that left 0.8 of a token finds a whole one. Capped at the burst as
        by a plain bucket, it loses the fraction: 2% of the rate on the tutorial's US, US, FR,
        FR, JP cycle, five calls an interval. Keeping the fraction, it is admitted at the start
        of its interval, a fixed phase: that cycle was admitted 57% / 29% / 15% instead of
        40% / 40% / 20% in a simulation.)
    (c) The bucket never holds less than nothing, and starts full: at most ``burst + rate * T``
        admissions in the first ``T`` seconds, as a plain bucket. It keeps the fraction of a
        token a late call finds above ``need`` (a plain bucket of burst 1 loses it: 0.83/s at
        1/s on calls every 0.3 s), so for dense traffic the long-run rate is the configured
        one; it is capped at ``burst`` as a plain bucket is only when the calls paused (a
        whole token beyond what it needed, or an interval without a call), so in any ``T``
        seconds fewer than ``max(burst, 2) + 1 + rate * T`` admissions (a plain bucket:
        ``burst + rate * T``): two admissions may be closer than ``1 / rate``.

    An admission may come up to one interval later than a plain bucket's, for dense traffic
    only. Draws happen only on admissions since the bucket ran dry, never on a skipped firing;
    whether a call was refused is read from the gate's skip counters at those admissions and
    at the rare call that comes once it may be admitted and finds less than ``need``, never
    on the skip path. A gate closed after a dry admission (its skipped firings cost one inline
    test) is open again by the time a call can be admitted by (a): the waker looks on the
    tick before that time (:func:`tick_before`) and keeps the gate closed until the need only
    if a call was refused meanwhile. The waker's ticks are jittered (see :func:`tick_after`).
    One exception, for the hot-path expectation gates (:mod:`sensor.hotpath`): a wait shorter
    than two ticks closes (until the waker's tick after the need, which keeps their closings
    few) only when the traffic is denser than the rate (a call refused since the bucket ran
    dry, or a bucket of more than one token drained), and stays open otherwise; when such
    traffic turns slower than the rate, its first calls may find that gate closed until that
    tick.
    """
    global _tick_salt
    _rng.seed(seed)
    _tick_salt = _rng.getrandbits(64)


def _after_fork_in_child() -> None:
    jitter_seed(None)  # a child must not repeat its parent's (or its siblings') draws


def _mix(n: int) -> int:
    """A 64-bit hash of ``n`` (SplitMix64's finalizer, salted per process)."""
    z = (n * 0x9E3779B97F4A7C15 + _tick_salt) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def tick_of(n: int) -> float:
    """The tick of the ``n``-th :data:`LONG_WAIT` interval (monotonic seconds): a point of
    ``[n * LONG_WAIT, (n + 1) * LONG_WAIT)`` that looks random, the same for every gate of the
    process (a hash of ``n``)."""
    return (n + (_mix(n) >> 11) * 2.0**-53) * LONG_WAIT


def tick_after(at: float, every: float = LONG_WAIT) -> float:
    """The tick a gate closed until ``at`` (monotonic seconds) reopens on: the tick of the next
    interval of ``every`` after the one holding ``at``; later than ``at``, by less than
    ``2 * every``.

    ``every`` is a whole multiple of :data:`LONG_WAIT` (a smaller one counts as it). Each
    interval ``[m * every, (m + 1) * every)`` has one tick, a :func:`tick_of` of one of its
    LONG_WAIT intervals, chosen by a hash of ``m``: however many gates close, and whatever
    their ``every``, the waker wakes at most once per LONG_WAIT interval for them all.

    Why not the multiples of ``every``: a gate reopened on one admits the first call after a
    fixed phase of ``every``, so traffic whose period divides it (a load generator at 50 calls
    a second, a cron) would be sampled at one phase only, however the gate's own deadline is
    jittered. Why the *next* interval's tick and not the first tick after ``at``: the first tick
    after a deadline is more often one that follows a long gap (one late in its interval), a
    bias towards late phases; the tick of a given interval is at a uniform phase of it.
    """
    return _tick_in(math.floor(at / (max(1, round(every / LONG_WAIT)) * LONG_WAIT)) + 1, every)


def tick_before(at: float, every: float = LONG_WAIT) -> float:
    """The tick of the interval of ``every`` before the one holding ``at`` (monotonic seconds):
    earlier than ``at``, by less than ``2 * every``; one of the same shared ticks as
    :func:`tick_after`'s.

    What a gate that must be open again by ``at`` wakes on: a call that comes at ``at`` with
    no call refused since the gate's last admission must find it open (see
    :func:`jitter_seed`), which a tick after ``at`` would not promise.
    """
    return _tick_in(math.floor(at / (max(1, round(every / LONG_WAIT)) * LONG_WAIT)) - 1, every)


def _tick_in(m: int, every: float) -> float:
    """The tick of the ``m``-th interval of ``every`` (see :func:`tick_after`)."""
    k = max(1, round(every / LONG_WAIT))
    if k == 1:
        return tick_of(m)
    return tick_of(m * k + _mix(m ^ _GROUP) % k)


#: After a wake-up that reopened gates and a LONG_WAIT tick lingered for nothing, the waker
#: lingers until the tick of the next interval of this (seconds): the tick that the expectation
#: gates' short closings round to (``sensor.hotpath.CLOSE_TICK``, the same value).
LINGER_EVERY = 1.0
#: The waker sleeps at most this long at a time (seconds).
_MAX_SLEEP = 60.0

#: At most this many reopenings are scheduled at once (one per closed gate); more are refused
#: and those gates keep the clock test.
MAX_SCHEDULED = 10_000


class Waker:
    """One daemon thread that reopens closed gates when their next token is due.

    A rate-limited probe on a hot line skips almost every firing: at 1 hit per second on a
    line run 100,000 times per second, 99,999 firings are skipped. Reading the clock to skip
    costs more than two empty Python calls, so after a hit whose next token is at least
    :data:`LONG_WAIT` away the gate closes (skips without reading the clock) and asks the
    waker to reopen it at that time. The first reopening starts the thread; it sleeps until
    the earliest deadline and only ever sets flags.

    Never blocks the host: :meth:`schedule` appends to a queue without any lock (the thread
    moves requests into its heap) and rings the thread's doorbell when the new deadline is the
    earliest; it returns False only when the request cannot be promised (stopped, too many
    scheduled, no thread can be started, or another thread is starting it at that instant), and
    the gate then simply keeps testing the clock. A reopening may come late by a thread switch
    (a few ms), which only delays the next hit; it is never early.

    Cheap while gates close on every tick (a standing expectation whose evaluation rate its
    calls exceed closes after each run of evaluations, once a :data:`LINGER_EVERY` tick, the
    expectation gates' ``CLOSE_TICK``): :meth:`schedule` runs
    no Python code of the ``threading`` module on the host's thread (it reads its own flag of the
    generation whose thread serves, never ``Thread.is_alive``), and after a wake-up that reopened
    gates the thread sleeps until the next tick rather than indefinitely, so the gates that close
    again during that tick find it already due to wake and ring no doorbell: one wake-up per
    tick, instead of a doorbell ring and a second wake-up (each a GIL hand-over from the host's
    thread). That first linger is to the next :data:`LONG_WAIT` tick; when it passed with
    nothing due three times in a row and the first gate to close again wanted a
    :data:`LINGER_EVERY` tick each time (as the expectation gates' short closings do), the
    thread lingers after each later reopening on the next LINGER_EVERY tick at once, until a
    gate wants another tick or a doorbell ring says that one wanted an earlier tick: a wake-up
    costs the host's process tens to hundreds of microseconds of CPU whatever it does (a
    timer, a GIL hand-over; in a VM the most), and a LONG_WAIT linger for nothing after every
    tick doubled them. So LINGER_EVERY is 1 s: the expectation gates' short closings, the
    commonest, wake the thread about once a second for all of them (it was 100 ms, and the
    standing shop's waker switched thousands of times a second, see
    ``sensor.hotpath.CLOSE_TICK``).

    The thread is a :class:`~sensor.threads.SensorThread` that waits on bare ``_thread`` locks
    and runs nothing but the sensor's own code and C calls between its bootstrap and its end,
    so it steps out of sensor work for its whole serving loop (no probe could fire there, and
    no host hook has to switch to the checked mode for it: see :mod:`sensor.threads`). Its
    logging, which runs the host's handlers, is sensor work again.
    """

    def __init__(self) -> None:
        # Bare C locks: threading.Condition.wait is Python code of the threading module.
        # _lock: the heap (the thread and stop/fork, never schedule) and starting the thread.
        self._lock = _thread.allocate_lock()
        # The doorbell: held while nobody rang; schedule() releases it to wake the thread early.
        self._bell = _thread.allocate_lock()
        self._bell.acquire()
        self._inbox: collections.deque[tuple[float, int, Callable[[], None]]] = collections.deque()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        # When the thread will wake next (-inf while it is awake and will read the inbox).
        self._earliest = -math.inf
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None
        # The generation whose thread serves now (None: none): what schedule() reads on a host
        # thread instead of Thread.is_alive, which is Python code of the threading module (a
        # probe a user placed there would fire from the sensor's own gate closing).
        self._serving: int | None = None
        self._stopped = False
        self._generation = 0
        #: Reopenings done, and requests refused (the gate then kept the clock test).
        self.wakes = 0
        self.refused = 0

    def schedule(self, at: float, reopen: Callable[[], None]) -> bool:
        """Call ``reopen()`` at ``time.monotonic()`` >= ``at``; False if that cannot be promised."""
        if (
            self._stopped
            or len(self._heap) + len(self._inbox) >= MAX_SCHEDULED
            or not self._running()
        ):
            self.refused += 1
            return False
        self._inbox.append((at, next(self._seq), reopen))  # atomic: no lock on the host
        if self._halted():  # stopped meanwhile: nobody will serve it, reopen now (idempotent)
            reopen()
            return True
        # Read after the append: either the thread reads the inbox before it sleeps, or it
        # published its wake-up time first and the bell wakes it (see _serve).
        if at < self._earliest:
            self._ring()
        return True

    def _halted(self) -> bool:
        return self._stopped

    def _ring(self) -> None:
        # Gates that close together (every probe of a tick) ring one after another before the
        # thread can run: only the first releases the bell. The others find it released and
        # return, rather than raise and suppress a RuntimeError on the host's thread each.
        bell = self._bell
        if bell.locked():
            with contextlib.suppress(RuntimeError):  # rung by another thread meanwhile
                bell.release()

    def pending(self) -> int:
        """Reopenings scheduled and not yet done."""
        return len(self._heap) + len(self._inbox)

    def start(self) -> bool:
        """Start the thread now if it is not running (True when it runs).

        The engine calls it when it places a rate-limited probe, on the installing thread (the
        agent's, in a service), so that ``threading.Thread.start`` does not run later inside a
        host thread's hit; a gate that closes starts it too, if it is gone (after a fork).
        """
        return not self._stopped and self._running()

    def _running(self) -> bool:
        if self._serving == self._generation:  # no Python code of threading on a host thread
            return True
        if not self._lock.acquire(False):  # someone else is starting it (or serving): refuse
            return False
        try:
            if self._serving == self._generation:
                return True
            from sensor.threads import SensorThread, sensor_work

            generation = self._generation
            # Rare on a host thread (the engine starts the thread when it places a probe; a
            # closing gate only after a fork), and sensor work: Thread.start is Python code.
            with sensor_work():
                thread = SensorThread(
                    functools.partial(self._run, generation), name="pytest-runtime-waker"
                )
                self._serving = generation  # before the thread can end and clear it
                try:
                    thread.start()
                except RuntimeError:  # interpreter shutting down, or no thread can be started
                    self._serving = None
                    return False
            self._thread = thread
            return True
        finally:
            self._lock.release()

    def _run(self, generation: int) -> None:
        from sensor.threads import sensor_idle, sensor_work

        try:
            with sensor_idle():
                self._serve(generation)
        except Exception:
            # Never leave a gate closed with nobody to reopen it: open them all (they test
            # the clock again), and the next closing gate starts a new thread.
            self._ended(generation)
            with sensor_work():
                log.exception("sensor: the rate-limit waker stopped; reopening every gate")
            with self._lock:
                self.reopen_all()
        finally:
            self._ended(generation)

    def _ended(self, generation: int) -> None:
        if self._serving == generation:
            self._serving = None

    def _serve(self, generation: int) -> None:
        # The locks of this thread's generation: after a fork the child renews them, and a
        # thread of an older generation (none survives a fork, but be safe) just ends.
        lock, bell, heap, inbox = self._lock, self._bell, self._heap, self._inbox
        # After a wake-up that reopened gates, the next tick: gates reopened now are likely to
        # close again within it, and will find the thread due to wake then (no doorbell).
        linger = -math.inf
        lingered = True
        # Whether lingering one LONG_WAIT tick after a reopening pays: not once such a linger
        # passed with nothing due, and the first gate to close after that reopening wanted a
        # LINGER_EVERY tick, three times in a row (a closing may cross into the next interval,
        # a host thread may be late), again when that first gate wanted another tick, or a
        # ring woke the thread. ``unused``: the last such linger passed with nothing due.
        wasted = 0
        unused = False
        # The newest request moved into the heap, and the newest at the last reopening.
        newest = mark = -1
        while True:
            with lock:
                if self._stopped or generation != self._generation:
                    return
                self._earliest = -math.inf
                while inbox:
                    entry = inbox.popleft()
                    heapq.heappush(heap, entry)
                    newest = entry[1]
                now = time.monotonic()
                due = []
                first = math.inf  # the earliest reopening asked for since the last one
                while heap and heap[0][0] <= now:
                    at, seq, reopen = heapq.heappop(heap)
                    due.append(reopen)
                    if seq > mark and at < first:
                        first = at
            if due:
                if unused:
                    unused = False
                    for at, seq, _ in heap:
                        if seq > mark and at < first:
                            first = at
                    if first < math.inf:
                        on_grid = first == tick_after(first - LINGER_EVERY, LINGER_EVERY)
                        wasted = wasted + 1 if on_grid else 0
                mark = newest
                self._call(due)
                if wasted < 3:
                    # The tick a gate closing now reopens on at the earliest (see tick_after).
                    linger = tick_after(now)
                    lingered = False
                else:
                    # Those lingers passed for nothing: the gates reopened now close on
                    # LINGER_EVERY ticks, so linger at once until the tick the two lingers
                    # would have ended on (the LINGER_EVERY tick after the LONG_WAIT one),
                    # not the LINGER_EVERY tick after now: that one may come before the gates
                    # close again (their run of evaluations takes tens of milliseconds), and
                    # their closings would then find the thread asleep until needed and ring.
                    linger = tick_after(tick_after(now), LINGER_EVERY)
                    lingered = True
                continue
            # Bounded: a far deadline (a rate of one per year) must not overflow the lock's
            # timeout, and the loop simply looks again.
            wake_at = heap[0][0] if heap else now + _MAX_SLEEP
            if linger <= now and not lingered:
                # Lingered one LONG_WAIT tick for nothing: the gates reopened then close on
                # LINGER_EVERY ticks (a standing expectation's short closings) or not at all.
                # Linger once more, until the tick of the next LINGER_EVERY interval: gates
                # closing meanwhile round to that tick or a later one and ring nothing, where
                # sleeping until needed had each of them ring the bell and wake the thread.
                unused = True
                linger = tick_after(now, LINGER_EVERY)
                lingered = True
            if linger > now:
                wake_at = min(wake_at, linger)
            else:
                linger = -math.inf  # lingered twice for nothing: sleep until needed
            self._earliest = wake_at
            if inbox:  # arrived after the drain: look again rather than sleep past it
                continue
            if bell.acquire(True, min(max(0.0, wake_at - time.monotonic()), _MAX_SLEEP)):
                wasted = 0  # rung: a gate closed until a tick earlier than this wait's end

    def _call(self, due: list[Callable[[], None]]) -> None:
        for reopen in due:
            try:
                reopen()
                self.wakes += 1
            except Exception:  # a reopen only sets a flag; never let the thread die
                from sensor.threads import sensor_work

                with sensor_work():
                    log.exception("sensor: reopening a rate-limited probe failed")

    def reopen_all(self) -> None:
        """Reopen every closed gate now (used when the thread is gone or stopping)."""
        due = [entry[2] for entry in self._heap]
        self._heap.clear()
        while self._inbox:
            due.append(self._inbox.popleft()[2])
        self._call(due)

    def stop(self) -> None:
        """Reopen every closed gate and end the thread (the engine is closing)."""
        self._stopped = True
        with self._lock:
            self.reopen_all()
        self._ring()

    def after_fork_in_child(self) -> None:
        """Only the forking thread survives a fork: renew the locks, reopen every gate now."""
        self._lock = _thread.allocate_lock()
        self._bell = _thread.allocate_lock()
        self._bell.acquire()
        self._earliest = -math.inf
        self._generation += 1
        self._thread = None
        self.reopen_all()


#: A probe whose firings cost more than this share of the budget's one-second limit is disabled
#: (sampling cannot bring such a firing under the budget): the whole second's budget.
_HIT_CAP_SHARE = 1.0
#: ... once that many of its firings in a row, measured in CPU time, went over the cap. One alone
#: may be the host's cost, not the probe's (a garbage collection or a page fault inside the
#: firing): a probe whose every hit is dear is disabled on its second. Not more: the first dear
#: firing starts load shedding, and every dear one after it leaves the probe's share in debt
#: for longer than a second, so a third would come seconds later, or never under a tiny budget.
HIT_CAP_STRIKES = 2
#: While load is shed, sharing stops when the estimated demand falls below this share of the
#: limit (hysteresis: a demand just under the limit would otherwise flip it every second).
_LIFT_SHARE = 0.8
#: Every probe is granted at least this share of an equal split while load is shed, so that a
#: probe that was idle in the last window can still fire when its calls start.
_FLOOR_SHARE = 0.5
#: A probe under its fair share is granted this many times its measured demand (headroom for
#: bursts: a cheap probe is never sampled because its traffic varied).
_HEADROOM = 2.0
#: Seconds' worth of its share a probe's :class:`Account` holds at most: what accrues while a
#: gate closed for an empty share waits for its reopening tick (up to ``SHUT_MAX`` plus two
#: 1 s ticks, see ``sensor.hotpath._shut_tick``), so that a closing never loses evaluations
#: the share paid for. Over any window of ``t`` seconds a probe spends at most
#: ``(t + SHARE_HOLD) * rate``: on average its share, in runs after each reopening.
SHARE_HOLD = 2.25


class Account:
    """One probe's share of the CPU budget: what its gates ask before a firing does any work.

    Unlimited (``rate`` None) until the sensor sheds load; then a token bucket of CPU time,
    ``rate`` ns per second and at most :data:`SHARE_HOLD` seconds' worth (what accrues while
    its gates wait closed for a reopening tick), that each metered firing debits by
    what it cost. A firing that finds the bucket empty is skipped before any work and counted in
    ``skipped`` (``skipped_budget`` in the status). No clock is read here: the gate passes the
    time it read for its own rate limit.
    """

    __slots__ = (
        "avg_ns",
        "dry",
        "fired",
        "last",
        "mark",
        "need",
        "probe_id",
        "rate",
        "retired",
        "shut",
        "skipped",
        "spent",
        "strikes",
        "tokens",
    )

    def __init__(self, probe_id: str) -> None:
        self.probe_id = probe_id
        self.rate: float | None = None
        self.tokens = 0.0
        self.last = time.monotonic()
        self.skipped = new_tally()
        # This window: CPU ns spent, firings metered, the skip count at its start.
        self.spent = 0
        self.fired = 0
        self.mark = 0
        #: The last measured cost of one firing (ns), kept across windows.
        self.avg_ns = 0.0
        #: CPU times (ns) of the last firings in a row that each went over the one-hit cap.
        self.strikes: list[int] = []
        # Gates that close their switch while this share is empty count the firings skipped
        # meanwhile themselves (without a call): their readers, one per armed gate, and what
        # the disarmed ones had counted.
        self.shut: list[Callable[[], int]] = []
        self.retired = 0
        # Admit while the share holds more than ``need`` ns (0, or after a refusal a random
        # part of one firing's cost below 0: see admit), and whether the last answer was no.
        self.need = 0.0
        self.dry = False

    def admit(self, now: float) -> bool:
        """True when this probe may do the work of one firing now; else count one skip.

        Jittered as the gates' buckets are (see :func:`jitter_seed`): once the share has
        refused a firing, the first one admitted again draws how far below zero the next
        admission after a refusal may find the share (a uniform part of one firing's cost,
        ``avg_ns``), so that while load is shed the firing admitted when the share refills is
        not always the first call after the same delay, a fixed phase of periodic traffic.
        """
        rate = self.rate
        if rate is None:
            return True
        tokens = self.tokens + (now - self.last) * rate
        if tokens > rate * SHARE_HOLD:
            tokens = rate * SHARE_HOLD
        self.last = now
        self.tokens = tokens
        if tokens > self.need:
            if self.dry:
                self.dry = False
                self.need = -_uniform() * self.avg_ns
            return True
        self.dry = True
        next(self.skipped)
        return False

    def refill_in(self) -> float:
        """Seconds until the share holds a token again (0 when it holds one or is unlimited).

        Exact while the rate stays as it is and nothing more is debited: a new share (at the
        end of a window) or a late debit moves it, so a gate that closes until then must ask
        again when it reopens.
        """
        rate = self.rate
        if rate is None or rate <= 0.0:
            return 0.0
        tokens = self.tokens + (time.monotonic() - self.last) * rate
        return 0.0 if tokens > self.need else (self.need + 1.0 - tokens) / rate

    def attach(self, shut: Callable[[], int]) -> None:
        """Count ``shut()`` (firings a gate skipped while closed by this share) in the skips."""
        self.shut.append(shut)

    def retire(self, shut: Callable[[], int]) -> None:
        """A disarmed gate's ``shut``: keep its count, stop calling it (bounded by the gates)."""
        with contextlib.suppress(ValueError):
            self.shut.remove(shut)
            self.retired += shut()

    def skipped_count(self) -> int:
        """Firings shed by this share: refused by :meth:`admit`, or skipped by a closed gate."""
        return tally_count(self.skipped) + self.retired + sum(shut() for shut in self.shut)

    def shut_count(self) -> int:
        """Of :meth:`skipped_count`, the firings skipped by a closed gate without a call."""
        return self.retired + sum(shut() for shut in self.shut)


class CpuBudget:
    """A global budget of sensor CPU time per one-second window, shared fairly by all probes.

    The engine meters every non-aggregated firing (condition, expectation, capture, encoding)
    and calls :meth:`spend`. While the sensor spends less than ``fraction`` of one CPU, nothing
    is limited. When a window goes over, the sensor **sheds load** instead of switching probes
    off: each probe's :class:`Account` gets a share of the limit (max-min fair: a probe that
    needs less than an equal split gets what it needs, with headroom, and the expensive ones
    split the rest), and its gates skip, before any work, the firings its share cannot pay for
    (counted: ``skipped_budget``). The shares are computed again from what each probe spent and
    skipped at the end of every window, and sharing stops when the demand falls back under the
    limit. The only probe ever disabled is one whose **single** firing costs more than the whole
    second's budget: no sampling can make it fit. Aggregated kinds (counter, timer) cost one
    call per hit and are not metered, so that their hot path stays one call. ``fraction >= 1``
    turns the budget off (it may be set at any time).

    Measuring CPU, not wall time: the thread's CPU clock (``time.thread_time_ns``) is a system
    call here (about 0.8 us a read, ten times ``perf_counter_ns``), too dear for every
    evaluation. So the budget runs in two modes. In the *cheap* mode a firing is metered with
    ``perf_counter_ns``: wall time is an upper bound of the thread's CPU time, so a window under
    the limit in wall time is under it in CPU time too. When a window (or one firing) goes over
    in wall time (possibly only because the host thread was preempted mid-firing on a busy
    machine), nothing is shed and nobody is disabled: the budget switches to the *precise* mode
    (:attr:`clock` becomes ``thread_time_ns``) and starts a new window; only CPU time sheds load
    or disables a probe. A precise window that ends at most at half the limit, with no load
    shed, goes back to the cheap mode. In the precise mode the expectation hook times one firing
    in a random stride and hands it over for the stride (:meth:`spend_sampled`; captures are
    handed over exactly): see :data:`sensor.hotpath.PRECISE_STRIDE_BITS`.
    """

    __slots__ = (
        "_accounts",
        "_fraction",
        "_lock",
        "_reshared",
        "_spent_ns",
        "_window_start",
        "clock",
        "limit_ns",
        "shares",
        "shedding",
        "switches",
    )

    def __init__(self, fraction: float = 0.01) -> None:
        self._accounts: dict[str, Account] = {}
        self.shedding = False
        self.fraction = fraction
        self._window_start = time.monotonic_ns()
        self._spent_ns = 0
        #: The clock the engine reads around a firing: the cheap one until a window overflows.
        self.clock: Callable[[], int] = time.perf_counter_ns
        #: Times the budget switched to the precise clock (a window overflowed in wall time).
        self.switches = 0
        #: True while load is shed (the accounts have shares); ``shares`` counts the sharings.
        self.shares = 0
        self._reshared = False  # shared again inside the current window already
        # Only the slow path (a capture or an evaluation of microseconds) takes this lock,
        # never a counter; it is never waited for on a host thread, and renewed after fork.
        self._lock = threading.Lock()

    @property
    def fraction(self) -> float:
        """Share of one CPU the sensor may use per second; ``>= 1`` turns the budget off."""
        return self._fraction

    @fraction.setter
    def fraction(self, value: float) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"cpu_budget: got {value!r}, expected a fraction > 0 (e.g. 0.01)")
        self._fraction = float(value)
        self.limit_ns = int(min(value, 1.0) * 1e9)
        if value >= 1.0:
            self._stop_shedding()

    @property
    def enabled(self) -> bool:
        return self._fraction < 1.0

    @property
    def precise(self) -> bool:
        """True while firings are metered with the thread's CPU clock."""
        return self.clock is not time.perf_counter_ns

    @property
    def hit_cap_ns(self) -> int:
        """The CPU time one firing may cost before its probe is disabled."""
        return int(self.limit_ns * _HIT_CAP_SHARE)

    def account(self, probe_id: str) -> Account:
        """The account of ``probe_id`` (made on first use; shared by all of its gates)."""
        with self._lock:
            found = self._accounts.get(probe_id)
            if found is None:
                found = Account(probe_id)
                if self.shedding:
                    # A probe placed while load is shed starts with the floor share.
                    found.rate = self._floor()
                    _epoch.bump()  # (the lanes test account.rate through it)
                self._accounts[probe_id] = found
            return found

    def forget(self, probe_id: str) -> None:
        """Drop a removed probe's account (its share goes to the others at the next window)."""
        with self._lock:
            self._accounts.pop(probe_id, None)

    def spend(
        self, account: Account, ns: int, clock: Callable[[], int] | None = None
    ) -> str | None:
        """Account ``ns`` of one firing to ``account``; a reason when its probe must be disabled.

        ``clock`` is the clock that measured ``ns`` (default: the cheap one); a cheap sample
        never sheds load or disables a probe by itself, it can only switch the budget to the
        precise clock. The reason is given only when :data:`HIT_CAP_STRIKES` firings of the
        account in a row each cost more than :attr:`hit_cap_ns` of CPU time.
        """
        return self._spend(account, ns, clock, 1, 0)

    def spend_sampled(
        self, account: Account, ns: int, count: int, extra: int = 0, whole: bool = True
    ) -> str | None:
        """Account one firing timed with the CPU clock (``ns``) for ``count`` firings.

        The expectation hook (:mod:`sensor.hotpath`) times, in the precise mode, one firing in
        a random stride of them and hands it over for the whole stride: ``ns * count`` (an
        unbiased estimate of their sum, as the choice is a random draw that never depends on
        the cost), plus ``extra`` charged once, unscaled (what handing the last sample over
        cost). It is :meth:`spend` of ``ns * count + extra`` CPU ns and ``count`` firings,
        except for the one-hit cap, which is of the timed firing alone: ``ns`` over
        :attr:`hit_cap_ns` is a strike, as in :meth:`spend`.
        """
        # ``whole``: ``ns`` is the whole firing. A firing whose capture was handed over apart
        # (exactly, see spend) was not cheap: its cheap part must not end a run of dear ones.
        return self._spend(account, ns, time.thread_time_ns, count, extra, whole)

    def _spend(
        self,
        account: Account,
        ns: int,
        clock: Callable[[], int] | None,
        count: int,
        extra: int,
        whole: bool = True,
    ) -> str | None:
        if self._fraction >= 1.0:
            return None
        cheap = clock is None or clock is time.perf_counter_ns
        # Wall time handed over in the precise mode (a lane's dear firing or capture, or a
        # firing begun just before the switch): an upper bound of its CPU time, charged as
        # such, but never a strike against the one-hit cap (it may be only preemption).
        bound = cheap and self.clock is not time.perf_counter_ns
        total = ns * count + extra if count != 1 or extra else ns
        if account.rate is not None:
            account.tokens -= total
        now = time.monotonic_ns()
        # Never wait on the host thread: a contended window just skips this sample.
        if not self._lock.acquire(False):
            return None
        try:
            if now - self._window_start >= 1_000_000_000:
                self._end_window(now)
            if ns > self.hit_cap_ns:
                if bound:
                    pass  # charged below, no strike
                elif cheap:
                    self._to_precise(now)
                    return None
                else:
                    account.strikes.append(ns)
                    if len(account.strikes) >= HIT_CAP_STRIKES:
                        return self.describe_hits(account.strikes)
            elif account.strikes and whole:
                account.strikes = []  # a firing under the cap: the dear ones were outliers
            account.spent += total
            account.fired += count
            self._spent_ns += total
            if self._spent_ns <= self.limit_ns:
                return None
            if cheap and not bound:
                # Over in wall time: maybe only preempted. Measure CPU time from now on.
                self._to_precise(now)
            elif not self._reshared:
                # Over in CPU time within the window: share now, not at the window's end.
                self._reshared = True
                self._share((now - self._window_start) / 1e9, force=True)
            return None
        finally:
            self._lock.release()

    def spend_closing(self, account: Account, ns: int) -> None:
        """Account ``ns`` of a firing that was refused and closed its gate (no evaluation).

        An expectation gate whose share refused a firing closes until the share refills: the
        refusal and the closing (a refill time, a tick, the waker's schedule) cost the host
        thread several times an evaluation, and they come once per closing, whatever the
        evaluations in between. Timed with the budget's clock in force (:attr:`clock`, read by
        the hook) and charged at once, unscaled and for no firing: it is not a strike against
        the one-hit cap and it does not end a run of them (it is no evaluation). Never waits
        for the lock (the window's total then misses it; the account is debited either way).
        """
        if ns > 0:
            self._spend(account, 0, self.clock, 0, ns, False)

    def spend_many(self, account: Account, ns: int, count: int) -> bool:
        """Account a batch of ``count`` firings that took ``ns`` in all.

        The hot path of an expectation (:mod:`sensor.hotpath`) meters every firing and hands
        the sums over in batches: the budget sees the same totals, a few dozen firings later.
        The batch was timed with the cheap clock, or, by a lane while the budget is in its
        precise mode, with the thread's CPU clock (a batch timed in wall time just before a
        switch is charged as an upper bound of its CPU time). Each firing of the batch was
        under the one-hit cap (longer ones are handed over alone, through :meth:`spend`), so a
        batch never disables a probe; it ends a run of dear firings, as one firing under the
        cap does in :meth:`spend`. Over the limit in the cheap mode it switches the budget to the
        precise clock; in the precise mode it shares the limit, as :meth:`spend` does. False
        when the budget's lock was busy (it never waits on a host thread): the caller keeps the
        batch and hands it over later, so no firing goes unmetered.
        """
        if self._fraction >= 1.0 or count <= 0:
            return True
        if account.strikes:
            account.strikes = []  # firings under the cap: the dear ones before were outliers
        precise = self.clock is not time.perf_counter_ns
        now = time.monotonic_ns()
        if not self._lock.acquire(False):
            return False
        try:
            if account.rate is not None:
                account.tokens -= ns
            if now - self._window_start >= 1_000_000_000:
                self._end_window(now)
            account.spent += ns
            account.fired += count
            self._spent_ns += ns
            if self._spent_ns > self.limit_ns:
                if not precise:
                    # Over in wall time: maybe only preempted. Measure CPU time from now on.
                    self._to_precise(now)
                elif not self._reshared:
                    # Over within a precise window: share now, as _spend does.
                    self._reshared = True
                    self._share((now - self._window_start) / 1e9, force=True)
            return True
        finally:
            self._lock.release()

    def _to_precise(self, now: int) -> None:
        self.clock = time.thread_time_ns
        _epoch.bump()
        self.switches += 1
        self._new_window(now)

    def _end_window(self, now: int) -> None:
        elapsed = (now - self._window_start) / 1e9
        if self.precise and not self.shedding and self._spent_ns <= self.limit_ns // 2:
            self.clock = time.perf_counter_ns
            _epoch.bump()
        elif self.precise and (self.shedding or self._spent_ns > self.limit_ns):
            self._share(elapsed, force=self._spent_ns > self.limit_ns)
        self._new_window(now)

    def _new_window(self, now: int) -> None:
        self._window_start = now
        self._spent_ns = 0
        self._reshared = False
        for acct in self._accounts.values():
            acct.spent = 0
            acct.fired = 0
            acct.mark = acct.skipped_count()

    def _floor(self) -> float:
        return self.limit_ns * _FLOOR_SHARE / max(1, len(self._accounts))

    def _share(self, elapsed: float, *, force: bool) -> None:
        """Give each account its max-min fair share of the limit (ns per second)."""
        elapsed = max(elapsed, 0.01)  # a window that overflowed at once: rates of its start
        demands: list[tuple[float, Account]] = []
        for acct in self._accounts.values():
            if acct.fired:
                acct.avg_ns = acct.spent / acct.fired
            skipped = acct.skipped_count() - acct.mark
            demand = (acct.spent + skipped * acct.avg_ns) / elapsed
            demands.append((demand, acct))
        total = sum(demand for demand, _ in demands)
        if not force and total <= self.limit_ns * _LIFT_SHARE:
            self._stop_shedding()
            return
        floor = self._floor()
        remaining = float(self.limit_ns)
        left = len(demands)
        # Water-filling, smallest need first: a probe needing less than an equal split of what
        # is left gets its need (with headroom), so a cheap probe is never starved by a dear one.
        for demand, acct in sorted(demands, key=lambda pair: pair[0]):
            fair = remaining / left
            share = min(fair, max(demand * _HEADROOM, floor))
            if acct.rate is None:
                # From now on work is paid for before it is done; a tenth of a second's worth
                # to start with, so that a cheap probe is not held up while shares settle.
                acct.tokens = share / 10
                acct.last = time.monotonic()
            acct.rate = share
            acct.tokens = min(acct.tokens, share * SHARE_HOLD)
            remaining -= share
            left -= 1
        _epoch.bump()
        self.shedding = True
        self.shares += 1

    def _stop_shedding(self) -> None:
        self.shedding = False
        for acct in self._accounts.values():
            acct.rate = None
        _epoch.bump()

    def after_fork_in_child(self) -> None:
        """Renew the lock (another thread may have held it at the fork) and the window."""
        self._lock = threading.Lock()
        self._new_window(time.monotonic_ns())

    def describe_hits(self, spent_ns: list[int]) -> str:
        """The reason given to a probe disabled because its last firings cost ``spent_ns``."""
        each = ", ".join(f"{ns / 1e6:.2f}" for ns in spent_ns)
        return (
            f"disabled by the CPU budget: {len(spent_ns)} hits in a row used {each} ms of CPU "
            f"time, each more than the sensor may spend in a whole second "
            f"({self.limit_ns / 1e6:.1f} ms, {self._fraction:.1%} of one CPU); sampling cannot "
            f"make such a hit fit"
        )


class _GuardedHook:
    """What both gates share: the hook the backend calls, its counters, and the off switch.

    Subclasses build the hook as one closure (the guards inline, for speed) in ``__init__``
    and hand it over with :meth:`_publish`.
    """

    __slots__ = ("_closed", "_disarm", "_read", "hook")

    def _publish(
        self,
        hook: Callable[..., Any],
        read: Callable[[], tuple[int, int]],
        disarm: Callable[[], None],
        closed: Callable[[], int],
    ) -> None:
        self.hook = hook
        self._read = read
        self._disarm = disarm
        self._closed = closed

    def closed_count(self) -> int:
        """Of the skipped firings, those skipped while the switch was closed: no hook call
        (counted inline by a backend that tests the switch, or first thing in the hook)."""
        return self._closed()

    def counts(self) -> tuple[int, int]:
        """(hits produced, firings skipped: by the rate limit, or for an ExpectGate by eval_rate
        plus violations not captured). With a shared ``hits`` list, the hits of every gate
        sharing it."""
        return self._read()

    def disarm(self) -> None:
        self._disarm()


class Gate(_GuardedHook):
    """The guarded hot-path hook of one probe: ``gate.hook`` is what the backend calls.

    The guards run inline because a method call per guard would cost more than the whole hit
    budget: ``hook`` is the skip path (switch, armed flag, the clock against the next token),
    and only a firing that gets past it calls the admission step (expiry, max hits, the token
    bucket, then the probe's CPU-budget ``account``). Only an admitted hit calls
    ``fire(value)``; ``fire`` returns True when it produced a hit. A firing that produced nothing
    (condition false, expectation held) gives its token back, so the rate limits hits, not
    evaluations (those are bounded by the CPU budget). ``on_stop(reason)`` is called once when
    expiry or max hits switch the probe off (at once when the hit that reaches ``max_hits`` is
    produced); it must not block. ``hits``, a one-item list, may be shared by several gates of
    one probe: ``max_hits`` then bounds their sum.

    After a hit whose next token is :data:`LONG_WAIT` or more away, the gate *closes*: its
    :class:`Switch` is turned off and ``waker`` (if given) reopens it when the token is due.
    While closed, a firing only counts a skip; the hook carries ``(switch, skips)`` (see
    :func:`switch_of`) so that a backend can do that inline, without calling the hook.
    """

    __slots__ = ()

    def __init__(
        self,
        fire: Callable[[object], object],
        *,
        rate: float | None,
        burst: int | None = None,
        max_hits: int | None = None,
        expires_at: float | None = None,
        on_stop: Callable[[str], None],
        waker: Waker | None = None,
        account: Account | None = None,
        hits: list[int] | None = None,
    ) -> None:
        monotonic = time.monotonic
        limited = rate is not None
        rate_f = float(rate) if rate is not None else 0.0
        burst_f = float(burst if burst is not None else max(1.0, rate_f))
        tokens = burst_f
        last = monotonic()
        expires = math.inf if expires_at is None else monotonic() + (expires_at - time.time())
        cap = math.inf if max_hits is None else float(max_hits)
        armed = True
        produced_hits = hits if hits is not None else [0]
        skips = new_tally()
        closed = new_tally()  # firings skipped while the switch is closed (the pair's counter)

        # The earliest time a token is available: a skipped firing costs one clock read and
        # one compare. The bucket itself is only refilled on admission.
        next_at = -math.inf
        # Since the bucket ran dry (until a pause): the tokens the next admission needs unless
        # it comes an interval after the last one with nothing refused since (drawn in (1, 2]),
        # when the last one was, and the gate's skip count then (see jitter_seed). 1.0: a plain
        # bucket.
        need = 1.0
        adm_at = 0.0
        mark = 0
        need_at = -math.inf  # when the bucket holds the need
        # Empty while closed (until the waker reopens it): a skipped firing costs one test.
        switch = Switch(True, grouped=True)
        schedule = None if waker is None or not limited else waker.schedule

        def hook(value: object = NOTHING) -> None:
            # The skip path. Few free variables on purpose: a call copies every one of them
            # into the new frame, and all of that is per-firing cost.
            if SENSOR_WORKING and _get_ident() in SENSOR_WORK:
                return  # the sensor's own work: invisible (see sensor.threads)
            if not switch.on:
                next(closed)
                return
            if not armed:
                return
            now = monotonic()
            if now < next_at:
                next(skips)
                return
            admit(value, now)

        def stop(why: str) -> None:
            nonlocal armed
            if armed:
                armed = False
                on_stop(why)

        def close(now: float) -> None:
            # Closed first: the reopening may run before schedule() returns.
            switch.close()
            if schedule is None or not schedule(min(next_at, expires), wake):
                reopen()

        def wake() -> None:
            # The waker, at next_at: if a call was refused since the last admission the next
            # one waits for the need (see jitter_seed), so the gate stays closed until then.
            if switch.on:
                return  # opened meanwhile (disarmed, or every gate reopened)
            if (
                need_at > next_at
                and tally_count(skips) + closed_count_of(switch, closed) != mark
                and schedule is not None
                and schedule(min(need_at, expires), reopen)
            ):
                return
            reopen()

        def admit(value: object, now: float) -> None:
            nonlocal tokens, last, next_at, need, adm_at, mark, need_at
            if now >= expires:
                stop("expired")
                return
            if produced_hits[0] >= cap:
                stop("max_hits")
                return
            was = (tokens, last, need, adm_at, mark)
            if limited:
                held = tokens
                tokens += (now - last) * rate_f
                last = now
                if need == 1.0:
                    if tokens > burst_f:
                        tokens = burst_f  # a plain bucket: it has not run dry since a pause
                elif tokens < need:
                    if (now - adm_at) * rate_f < 1.0 or tally_count(skips) + closed_count_of(
                        switch, closed
                    ) != mark:
                        # Denser than the rate: not before the need (see jitter_seed).
                        next(skips)
                        next_at = now + (need - tokens) / rate_f
                        if schedule is not None and next_at - now >= LONG_WAIT:
                            close(now)
                        return
                    # An interval since the last admission and no call: a plain bucket again.
                    if tokens > burst_f:
                        tokens = burst_f
                    need = 1.0
                elif tokens >= (need if need > held else held) + 1.0:
                    # A whole token more than it needed (or held) without a call: the calls
                    # paused. A plain bucket again.
                    if tokens > burst_f:
                        tokens = burst_f
                    need = 1.0
                # else: the need is met; the fraction of a token above it is kept (a plain bucket
                # loses a late call's).
                tokens -= 1.0
                if need == 1.0 and tokens >= 1.0:
                    next_at = now  # the burst is not spent: the next firing is admitted
                else:
                    # Dry (or jittered since it ran dry): the next admission at a random point
                    # of the next interval, or an interval later if nothing is refused till
                    # then (see jitter_seed).
                    need = 2.0 - _uniform()
                    adm_at = now
                    mark = tally_count(skips) + closed_count_of(switch, closed)
                    wait = need - tokens
                    need_at = now + wait / rate_f if wait > 0.0 else now
                    next_at = now + (wait if wait < 1.0 else 1.0) / rate_f if wait > 0.0 else now
            if account is not None and account.rate is not None and not account.admit(now):
                return  # the budget sheds this one (counted by the account); the token is spent
            try:
                produced = fire(value)
            except Exception:
                produced = False  # fire counts its own errors; this is the last line of defence
            if produced:
                produced_hits[0] += 1
                if produced_hits[0] >= cap:
                    stop("max_hits")  # say so now, not at a next firing that may never come
                    return
                if schedule is not None and next_at - now >= LONG_WAIT:
                    close(now)
            elif limited:
                # Nothing produced: as if the firing had not come (its token given back).
                tokens, last, need, adm_at, mark = was
                tokens += (now - last) * rate_f
                last = now
                next_at = now

        def reopen() -> None:
            switch.open()  # and its groups (see SwitchGroup)

        def read() -> tuple[int, int]:
            return produced_hits[0], tally_count(skips) + closed_count_of(switch, closed)

        def disarm() -> None:
            nonlocal armed
            armed = False
            reopen()

        setattr(hook, _SWITCH_ATTR, (switch, closed))
        self._publish(hook, read, disarm, lambda: closed_count_of(switch, closed))


class ExpectGate(_GuardedHook):
    """The guarded hook of a probe with an ``expect``: every firing is evaluated, within bounds.

    The expectation is the product's point: a violation on 1% of calls must be seen, so it is
    not sampled by the snapshot rate. Guards, still before any work: armed flag, expiry,
    max hits, then the *evaluation* token bucket (``eval_rate``), then the probe's CPU-budget
    ``account`` (a firing it sheds is not evaluated, and counted there). An admitted firing
    calls ``fire(value, admit)``; ``fire`` evaluates the condition and the expectation, then asks
    ``admit(violated)`` whether to capture: a violation takes a token of the *violation* bucket
    (``violation_rate``), a passing firing one of the *pass* bucket (the probe's own rate;
    ``pass_rate=None`` never captures a passing firing, as for kind ``expect``). A passing
    firing the pass bucket refuses is captured if ``novelty`` admits it: ``admit(False, ns)``
    (``ns`` the firing's names) keys the values of ``key_names`` (the names the expectation
    reads, see :class:`Novelty`) and answers ``"novel"``. ``fire``
    returns True (a hit was produced), False (evaluated, nothing produced) or None (not
    evaluated: condition false or failing, which gives the evaluation token back). ``hits``
    may be shared with other gates of the probe, as for :class:`Gate`.
    """

    __slots__ = ("novelty",)

    def __init__(
        self,
        fire: Callable[[object, Callable[..., bool | str]], object],
        *,
        eval_rate: float,
        violation_rate: float,
        pass_rate: float | None,
        pass_burst: int | None = None,
        max_hits: int | None = None,
        expires_at: float | None = None,
        on_stop: Callable[[str], None],
        waker: Waker | None = None,
        account: Account | None = None,
        hits: list[int] | None = None,
        novelty: Novelty | None = None,
        key_names: tuple[str, ...] = (),
    ) -> None:
        monotonic = time.monotonic
        if pass_rate is None:
            novelty = None
        self.novelty = novelty
        keys = KeyNames(key_names)  # (not the secret ones, under the rules in force)
        eval_rate_f = float(eval_rate)
        eval_burst = max(1.0, eval_rate_f)
        tokens = eval_burst
        last = monotonic()
        next_at = -math.inf
        # As in Gate (see jitter_seed): the need since the bucket ran dry (1.0: plain), the
        # last admission's time and the refusals counted then.
        need = 1.0
        adm_at = 0.0
        mark = 0
        need_at = -math.inf
        expires = math.inf if expires_at is None else monotonic() + (expires_at - time.time())
        cap = math.inf if max_hits is None else float(max_hits)
        violations = _Bucket(violation_rate, None, last)
        passes = None if pass_rate is None else _Bucket(pass_rate, pass_burst, last)
        armed = True
        produced_hits = hits if hits is not None else [0]
        skips = new_tally()  # firings the evaluation bucket refused
        closed = new_tally()  # firings skipped while the switch is closed (the pair's counter)
        # Violations evaluated and not captured (the violation bucket's refusals): apart from
        # the evaluation bucket's, whose refusals decide its jitter (see jitter_seed).
        uncaptured = new_tally()

        def admit(violated: bool, ns: Any = None) -> bool | str:
            if violated:
                if violations.take(monotonic()):
                    return True
                next(uncaptured)  # a violation not captured: counted, never silent
                return False
            if passes is None:
                return False
            if passes.take(monotonic()):
                if novelty is not None and ns is not None:
                    novelty.note(novelty.key(keys.get(), ns))
                return True
            if novelty is not None and ns is not None:
                # Refused by the pass bucket: captured anyway if its value class is new.
                key = novelty.key(keys.get(), ns)
                if key not in novelty.seen and novelty.admit(key, monotonic()):
                    return "novel"
            return False

        # As in Gate: off while closed, until the waker reopens it.
        switch = Switch(True, grouped=True)
        schedule = None if waker is None else waker.schedule

        def hook(value: object = NOTHING) -> None:
            if SENSOR_WORKING and _get_ident() in SENSOR_WORK:
                return  # the sensor's own work: invisible (see sensor.threads)
            if not switch.on:  # the skip path, with few free variables (see Gate)
                next(closed)
                return
            if not armed:
                return
            now = monotonic()
            if now < next_at:
                next(skips)
                return
            evaluate(value, now)

        def stop(why: str) -> None:
            nonlocal armed
            if armed:
                armed = False
                on_stop(why)

        def close() -> None:
            switch.close()  # before schedule(): the reopening may run before it returns
            if schedule is None or not schedule(min(next_at, expires), wake):
                reopen()

        def wake() -> None:
            # As in Gate: closed on until the need once a call was refused since the last one.
            if switch.on:
                return
            if (
                need_at > next_at
                and tally_count(skips) + closed_count_of(switch, closed) != mark
                and schedule is not None
                and schedule(min(need_at, expires), reopen)
            ):
                return
            reopen()

        def evaluate(value: object, now: float) -> None:
            nonlocal tokens, last, next_at, need, adm_at, mark, need_at
            if now >= expires:
                stop("expired")
                return
            if produced_hits[0] >= cap:
                stop("max_hits")
                return
            was = (tokens, last, need, adm_at, mark)
            held = tokens
            tokens += (now - last) * eval_rate_f
            last = now
            if need == 1.0:
                if tokens > eval_burst:
                    tokens = eval_burst
            elif tokens < need:  # jittered as in Gate (see jitter_seed)
                if (now - adm_at) * eval_rate_f < 1.0 or tally_count(skips) + closed_count_of(
                    switch, closed
                ) != mark:
                    next(skips)  # denser than the rate: not before the need
                    next_at = now + (need - tokens) / eval_rate_f
                    if schedule is not None and next_at - now >= LONG_WAIT:
                        close()
                    return
                if tokens > eval_burst:  # an interval without a call: a plain bucket again
                    tokens = eval_burst
                need = 1.0
            elif tokens >= (need if need > held else held) + 1.0:
                if tokens > eval_burst:  # the calls paused: a plain bucket again
                    tokens = eval_burst
                need = 1.0
            tokens -= 1.0
            if need == 1.0 and tokens >= 1.0:
                next_at = now
            else:  # jittered as in Gate (see jitter_seed)
                need = 2.0 - _uniform()
                adm_at = now
                mark = tally_count(skips) + closed_count_of(switch, closed)
                wait = need - tokens
                need_at = now + wait / eval_rate_f if wait > 0.0 else now
                next_at = now + (wait if wait < 1.0 else 1.0) / eval_rate_f if wait > 0.0 else now
            if account is not None and account.rate is not None and not account.admit(now):
                return  # shed by the CPU budget before any work (counted by the account)
            try:
                produced = fire(value, admit)
            except Exception:
                produced = False  # fire counts its own errors; this is the last line of defence
            if produced:
                produced_hits[0] += 1
                if produced_hits[0] >= cap:
                    stop("max_hits")  # say so now, not at a next firing that may never come
                    return
            elif produced is None:
                # Not evaluated (condition false): as if the firing had not come.
                tokens, last, need, adm_at, mark = was
                tokens += (now - last) * eval_rate_f
                last = now
                next_at = now
                return
            if schedule is not None and next_at - now >= LONG_WAIT:
                close()

        def reopen() -> None:
            switch.open()  # and its groups (see SwitchGroup)

        def read() -> tuple[int, int]:
            return produced_hits[0], (
                tally_count(skips) + closed_count_of(switch, closed) + tally_count(uncaptured)
            )

        def disarm() -> None:
            nonlocal armed
            armed = False
            reopen()

        setattr(hook, _SWITCH_ATTR, (switch, closed))
        self._publish(hook, read, disarm, lambda: closed_count_of(switch, closed))


class _Bucket:
    """A token bucket for the capture decisions of :class:`ExpectGate` (off the skip path).

    Jittered as the gates are (see :func:`jitter_seed`): after a :meth:`take` that leaves it
    dry, the next one is granted an interval later if none was refused in between, else once
    it holds ``need`` tokens, drawn in (1, 2]; each still spends one.
    """

    __slots__ = ("adm_at", "burst", "last", "need", "rate", "refused", "tokens")

    def __init__(self, rate: float, burst: int | None, now: float) -> None:
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(1.0, self.rate))
        self.tokens = self.burst
        self.last = now
        self.need = 1.0  # 1.0: a plain bucket (it has not run dry since a pause)
        self.adm_at = now  # the last grant while jittered
        self.refused = False  # a take refused since then

    def take(self, now: float) -> bool:
        rate = self.rate
        held = self.tokens
        tokens = held + (now - self.last) * rate
        self.last = now
        need = self.need
        if need == 1.0:
            if tokens > self.burst:
                tokens = self.burst
            if tokens < 1.0:
                self.tokens = tokens
                self.refused = True
                return False
        elif tokens < need:
            if (now - self.adm_at) * rate < 1.0 or self.refused:
                self.tokens = tokens  # denser than the rate: not before the need
                self.refused = True
                return False
            if tokens > self.burst:  # an interval without a take: a plain bucket again
                tokens = self.burst
            need = self.need = 1.0
        elif tokens >= (need if need > held else held) + 1.0:
            # A whole token more than it needed without a take (every call is one): the calls
            # paused. A plain bucket again.
            if tokens > self.burst:
                tokens = self.burst
            need = self.need = 1.0
        tokens -= 1.0
        if need != 1.0 or tokens < 1.0:  # dry, or jittered since it ran dry
            self.need = 2.0 - _uniform()
            self.adm_at = now
            self.refused = False
        self.tokens = tokens
        return True


#: Value-class keys a probe remembers for novelty admission (see :class:`Novelty`).
NOVEL_KEYS = 256
#: Passing evaluations a second a probe may capture because their value class is new.
NOVEL_RATE = 10.0

_NONE_T = type(None)
# Exact builtin types whose class is only "empty or not" (their truth runs no user code), by
# id: the first of their two class numbers.
_SIZED = {
    id(t): 20 + 2 * n for n, t in enumerate((list, tuple, dict, set, frozenset, bytes, bytearray))
}
# datetime.datetime, datetime.time and decimal.Decimal, imported at the first Novelty (placement
# time), not at the sensor's start.
_DATETIME: Any = None
_TIME: Any = None
_DECIMAL: Any = None


def value_class(v: Any) -> int:
    """The value class of ``v`` as one int, computed without running any user code.

    Exact builtin types get small numbers (no allocation on the hot path) from bits read at C
    level: the sign of an ``int``/``float``/``Decimal`` (and NaN), an empty ``str`` or one that
    is not ASCII or has whitespace at either end (its first and last characters, never the
    whole text), an empty container, a ``datetime``/``time`` with or without ``tzinfo``. Any
    other object (a user class, a subclass of a builtin) is keyed on ``id(type(v))`` alone (an
    address, never one of the small numbers): nothing is called on it, not even ``hash`` or
    ``==`` of its type (a metaclass may define them).
    """
    t = type(v)
    if t is int:
        return 1 if v > 0 else 2 if v < 0 else 0
    if t is str:
        if not v:
            return 4
        return 5 + (0 if v.isascii() else 1) + (2 if v[0].isspace() or v[-1].isspace() else 0)
    if t is float:
        return 13 if v > 0.0 else 14 if v < 0.0 else 12 if v == 0.0 else 15
    if t is _NONE_T:
        return 16
    if t is bool:
        return 18 if v else 17
    sized = _SIZED.get(id(t))
    if sized is not None:
        return sized + 1 if v else sized
    if t is _DATETIME:
        return 34 if v.tzinfo is None else 35
    if t is _TIME:
        return 36 if v.tzinfo is None else 37
    if t is _DECIMAL:
        return 41 if v.is_nan() else 38 if v.is_zero() else 40 if v.is_signed() else 39
    if t is object:  # a bare object(): also what stands for a name that is absent
        return 42
    return id(t)


class KeyNames:
    """The names whose value classes key a passing firing for novelty (see :class:`Novelty`):
    those of ``names`` that hold no secret under the process's redaction rules *in force*.

    A value class (ASCII or not, whitespace at an end) is a bit or two of a value, and whether
    a passing firing was captured as novel would carry them out of the process. The rules can
    change while a probe stands (the hub sends them with every poll, and a standing probe runs
    for weeks), so :meth:`get` tests the process redactor's identity and version, one compare
    each, and filters again when they changed. Never raises: when the rules cannot be read,
    no name keys (a coarser key, never a secret's class).
    """

    __slots__ = ("_kept", "_red", "_version", "names")

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = tuple(names)
        self._red: object = None
        self._version = -1
        self._kept: tuple[str, ...] = ()

    def get(self) -> tuple[str, ...]:
        red = _redaction._default
        if red is None or red is not self._red or red.version != self._version:
            self._refresh()
        return self._kept

    def _refresh(self) -> None:
        try:
            red = _redaction.get_redactor()
            version = red.version  # before filtering: a change meanwhile filters again
            secret = red.is_secret_name
            self._kept = tuple(n for n in self.names if not secret(n))
            self._red, self._version = red, version
        except Exception:
            self._kept = ()
            self._red, self._version = None, -1


class Novelty:
    """Admission of a passing evaluation the pass bucket refused, when its value class is new.

    A standing probe captures passing evaluations at its rate (about 1 a second), uniformly: a
    state seen on 3 calls in 10^6 would almost never be captured. A key of value classes
    (:func:`value_class` of the values the expectation reads) not seen before by this probe
    is admitted, within its own bucket (``rate`` a second) so that a flood of new keys cannot
    become a capture storm, and at most ``max_keys`` keys are remembered: beyond, no novelty
    admission. A key is remembered only once admitted (one refused by the bucket is tried
    again; the key of an evaluation captured within the pass rate is remembered too, by
    :meth:`note`). ``admitted``, ``refused`` and ``full`` are tallies, once per evaluation: a
    new key admitted, refused by the bucket (``rate``), or not remembered because ``max_keys``
    keys are (the bound is tested first); ``dropped()`` is the sum of the last two.
    """

    __slots__ = ("admitted", "bucket", "full", "max_keys", "refused", "seen")

    def __init__(
        self, rate: float = NOVEL_RATE, max_keys: int = NOVEL_KEYS, now: float | None = None
    ) -> None:
        global _DATETIME, _TIME, _DECIMAL
        if _DECIMAL is None:
            import datetime
            import decimal

            _DATETIME, _TIME, _DECIMAL = datetime.datetime, datetime.time, decimal.Decimal
        self.seen: set[object] = set()
        self.max_keys = max_keys
        # ``now``: the clock admit() is given (time.monotonic() by default).
        self.bucket = _Bucket(rate, None, time.monotonic() if now is None else now)
        self.admitted = new_tally()
        self.refused = new_tally()
        self.full = new_tally()

    def admit(self, key: object, now: float) -> bool:
        """True to capture this evaluation (``key`` is new, within the bound and the bucket)."""
        seen = self.seen
        if key in seen:
            return False
        if len(seen) >= self.max_keys:
            next(self.full)
            return False
        if not self.bucket.take(now):
            next(self.refused)
            return False
        seen.add(key)
        next(self.admitted)
        return True

    def dropped(self) -> int:
        """New keys not admitted: refused by the bucket or over the bound."""
        return tally_count(self.refused) + tally_count(self.full)

    def counts(self) -> dict[str, int]:
        """The counters of :class:`~sensor.probes.ProbeStatus`: value classes remembered,
        new ones admitted, refused by the rate, and left out because the table was full."""
        return {
            "novel_classes": len(self.seen),
            "novel_admitted": tally_count(self.admitted),
            "novel_refused": tally_count(self.refused),
            "novel_full": tally_count(self.full),
        }

    def note(self, key: object) -> None:
        """Remember ``key`` of an evaluation captured within the pass rate (if there is room)."""
        if len(self.seen) < self.max_keys:
            self.seen.add(key)

    def key(self, names: tuple[str, ...], ns: Any) -> tuple[int, ...]:
        """The key of the values ``names`` name in ``ns`` (a name not there counts as absent)."""
        return tuple(map(value_class, map(ns.get, names, (NOTHING,) * len(names))))


# The sensor's ordered fork handlers (see sensor._atfork): a child draws its own jitter.
_atfork.register(_atfork.ENGINE, after_in_child=_after_fork_in_child)
