"""The fused hook of an always-on expectation: guards, frame read, evaluation and metering in one.

A probe with ``expect`` evaluates its expectation on every firing its ``eval_rate`` admits, so
that a violation on 1% of calls is seen: this is the code a standing probe runs on every call of
the function it watches. :class:`~sensor.guards.ExpectGate` and the engine's ``fire`` do the same
work in five Python calls, with a copy of every local of the frame, four clock reads and a
locked budget update per firing (about 1.2 to 2.3 us); here it is one closure:

1. the skip path of :class:`~sensor.guards.ExpectGate` (sensor work, the closed switch, armed);
2. one clock read (``perf_counter_ns``) that serves the evaluation token bucket, expiry and the
   start of the metering;
3. the frame read: only the names the expectation reads, looked up in the frame's locals (a
   mapping that is never written to; no copy), the probe's value (``result`` at ``@return``,
   ``exception`` at ``@exception``) passed in a slot of the evaluation state;
4. the sandboxed evaluation through :meth:`sensor.expressions.Expression.evaluator` (the same
   closures, limits and redaction rules as ``evaluate``);
5. the metering: a second clock read, added to a per-probe batch that is handed to the CPU
   budget every :data:`SETTLE_EVERY` firings or :data:`SETTLE_NS` (a firing above
   :data:`SLOW_FIRING_NS` is handed over at once, so that the one-hit cap still applies to it).

Everything else, which is rare by design, goes to the engine's slow path with the frame: the
capture of a violation (within ``violation_rate``) or of a passing firing (within the probe's
``rate``), and a failure of the sensor's own. Load shedding (the account) and the precise
(CPU-clock) metering mode are checked inline, as :class:`~sensor.guards.ExpectGate` does; in
the precise mode the CPU clock (a system call) times one firing in a random stride, charged for
the stride (see :data:`PRECISE_STRIDE_BITS`), not every firing.

A probe whose expectation has a fused form gets a hook of its own, generated at placement (the
lane, see :func:`_lane_code`): the same firing without a Python call per step. It differs in
its metering: it times a random sample of its evaluations, one per stride of 1 to
``2 ** METER_STRIDE_BITS``, and charges each timed one for its whole stride (an unbiased
estimate, see :data:`METER_STRIDE_BITS`); every capture is still timed and charged exactly. And
it tests the precise clock, the account's shedding and the redaction rules only when the epoch
token of :mod:`sensor._epoch` changed. It serves the precise mode (its sample timed with the
thread's CPU clock) and a shedding account (admission through the share, the same closing as
the general hook's) too: handing those firings to the general hook made a standing probe's
evaluations ten times dearer exactly when the budget was short.
"""

from __future__ import annotations

import builtins
import contextlib
import math
import re
import sys
import textwrap
import time
from collections.abc import Callable
from types import CodeType, FunctionType
from typing import Any

from sensor import _epoch, guards
from sensor import redaction as _redaction
from sensor.expressions.budget import _S_SLOTS, NO_VALUE
from sensor.expressions.compiler import Expression
from sensor.expressions.decimal_context import SEEN as _dec_seen
from sensor.expressions.decimal_context import current as _dec_current
from sensor.expressions.decimal_context import remember as _dec_remember
from sensor.expressions.decimal_context import restore as _dec_restore
from sensor.expressions.decimal_context import restore_new as _dec_restore_new
from sensor.expressions.fuse import (
    DECIMAL_HEAD,
    DECIMAL_LINE,
    DECIMAL_TAIL,
    FALLBACK,
    fuse,
    fuse_body,
)
from sensor.expressions.values import _CMP_OPS, _Lazy, _materialize
from sensor.guards import (
    LONG_WAIT,
    NOTHING,
    SENSOR_WORK,
    Account,
    CpuBudget,
    Novelty,
    Switch,
    Waker,
    closed_count_of,
    new_tally,
    tally_count,
)
from sensor.inject import funcversion

__all__ = [
    "CLOSE_TICK",
    "MAX_PASSED",
    "METER_STRIDE_BITS",
    "PRECISE_STRIDE_BITS",
    "SETTLE_EVERY",
    "SETTLE_NS",
    "SHUT_MAX",
    "SHUT_TICK",
    "SLOW_FIRING_NS",
    "FastExpectGate",
    "eval_burst",
]

#: The most locals an expectation's hook takes as arguments (see guards.locals_of): one that
#: reads more reads the frame.
MAX_PASSED = guards.PASSED_ARGS
#: Firings metered before their batch is handed to the CPU budget.
SETTLE_EVERY = 64
#: ... or nanoseconds after the batch started, whichever comes first.
SETTLE_NS = 50_000_000
#: A firing that took longer than this (or than the budget's one-hit cap, if lower) is handed to
#: the budget at once, alone, so that the one-hit cap applies to it as to any other firing.
SLOW_FIRING_NS = 1_000_000
#: The lane (a probe's own hook, see _lane_code) times one evaluation in a random stride of 1 to
#: 2 ** METER_STRIDE_BITS (uniform: 8.5 on average) and charges it for the whole stride: its
#: measured time x the evaluations since the last timed one. An unbiased estimate of their sum
#: (the choice depends on a random draw, never on the cost) for two clock reads per stride
#: instead of per evaluation; a random stride, so that no period of the traffic aliases with it.
#: Untimed evaluations are bounded (the fused bodies: MAX_LOOP items, MAX_COST steps); a
#: capture is timed and charged exactly on every firing.
METER_STRIDE_BITS = 4
#: In the budget's precise mode (the thread's CPU clock, a system call of about 0.6 us here, where
#: the cheap clock is 0.05 us), the general hook times one firing in a random stride of 1 to
#: 2 ** PRECISE_STRIDE_BITS (uniform: 8.5 on average) and charges it for the whole stride
#: (:meth:`~sensor.guards.CpuBudget.spend_sampled`), as the lane does in the cheap mode (see
#: METER_STRIDE_BITS): two clock reads and one hand-over per stride instead of three reads and
#: a locked hand-over per firing. The firings not timed are bounded: a fused form (MAX_LOOP
#: items, MAX_COST steps) or the sandbox's closures (its max_steps, 10,000 by default, and
#: max_seconds, 10 ms); a capture and a rebuild of the closures after a rule change are timed
#: on every firing and charged exactly, alone, out of the sample; the one-hit cap applies to a
#: timed firing (and to each exact part) alone.
PRECISE_STRIDE_BITS = 4
#: A gate closed because its CPU-budget share is empty is due to reopen after at most this many
#: seconds, even if the share would refill later: the shares are computed again every one-second
#: window (a probe may get more, or the shedding may stop), and the first firing after the
#: reopening asks the account again (and closes again if it is still empty). It reopens on the
#: waker's SHUT_TICK tick after that time (less than 2 * SHUT_TICK later), as every closing
#: for the budget does: see _shut_tick.
SHUT_MAX = 0.25
#: A gate that closes by its evaluation rate for less than this (a rate above 1 / CLOSE_TICK a
#: second that its calls exceed) reopens on a tick of it (see _tick; a closing for the CPU
#: budget on a SHUT_TICK one, see _shut_tick): at most about one closing a second per probe,
#: each a ``Waker.schedule`` on the host's thread, and the gates of every probe reopen together on
#: one shared tick, one wake-up of the waker a second for them all. A wake-up of a sensor
#: thread is what a standing probe costs the host most, not its evaluations: it wakes a timer,
#: then takes the GIL from the host's thread, and costs the host's process tens to hundreds of
#: microseconds of CPU (in a VM, the most) whatever it does, outside the CPU budget's meter.
#: In one process (bench/bench_standing_inprocess.py), the shop's 20 standing expectations
#: cost its requests 9 to 13% more CPU with 100 ms ticks, the waker's thread switching about
#: 6,000 times a second, and 5 to 7% with 1 s ones, 400 to 700 switches (2.5% is the closed
#: gates' inline tests). The evaluation bucket of a rate above
#: 1 / CLOSE_TICK holds two ticks' worth (see eval_burst), what accrues while its gate is
#: closed (less than 2 * CLOSE_TICK): the same evaluations a second, in runs of up to that
#: many.
CLOSE_TICK = 1.0
#: The tick grid a closing for the CPU budget reopens on (see _shut_tick): CLOSE_TICK's, so
#: that a shedding budget's closings and the rate's share one reopening tick a second. A share
#: holds what accrues meanwhile (``guards.SHARE_HOLD``, more than SHUT_MAX and two ticks), so
#: a probe closed for its share loses none of the evaluations the share pays for: on average
#: the same evaluations a second, in runs. (On 100 ms ticks the standing shop's waker woke 40
#: to 50 times a second, for a CPU cost outside the budget's meter; with a share of a second's
#: worth, 1 s ticks lost 17 to 22% of its evaluations.)
SHUT_TICK = CLOSE_TICK


def eval_burst(eval_rate: float) -> float:
    """The evaluation bucket's size of an expectation gate of ``eval_rate`` evaluations a second.

    A second's worth (at least one), as every bucket of the sensor; two CLOSE_TICKs' worth for
    a rate above ``1 / CLOSE_TICK``, whose closings are shorter than CLOSE_TICK and reopen on a
    CLOSE_TICK tick, less than ``2 * CLOSE_TICK`` later (see _tick): the bucket keeps what
    accrued while the gate was closed, so that the gate evaluates its rate a second on traffic
    denser than it, in runs. Over any window of ``t`` seconds it evaluates at most
    ``eval_burst + eval_rate * t``.
    """
    if eval_rate * CLOSE_TICK <= 1.0:
        return max(1.0, eval_rate)
    return 2.0 * CLOSE_TICK * eval_rate


_get_ident = guards._get_ident
_perf = time.perf_counter_ns
_bits = guards._rng.getrandbits
_SWITCH_ATTR = "sensor_switch"
_LOCALS_ATTR = "sensor_locals"
# The locals of an evaluation that reads no local: never written to, so one is shared.
_NO_LOCALS: dict[str, object] = {}
_BUILTIN_NAMES = frozenset(vars(builtins))
# Types whose truth value runs no user code (the engine's _truth uses the same list).
_PLAIN_TRUTH = frozenset(
    map(id, (type(None), int, float, str, bytes, list, tuple, dict, set, frozenset))
)


#: What one firing of an expectation hook costs the host outside the stretch its clock times
#: (ns), measured once per process by :func:`firing_overhead_ns` at the first placement; None
#: until then.
_call_ns: int | None = None
#: The most :func:`firing_overhead_ns` takes from its measurement (ns): about 20 times what it
#: measures on these machines (100 to 250 ns), a bound on a clock gone wrong, never the figure.
CALL_NS_MAX = 5_000


def firing_overhead_ns() -> int:
    """What one firing of an expectation hook costs the host outside the stretch it times (ns).

    Neither hook can time its own call: the call-site sequence that builds its arguments and
    calls it (``LOAD_CONST hook``, the value and up to :data:`MAX_PASSED` locals, ``CALL``),
    the frame made for it, its entry tests before its first clock read (the sensor's work, the
    switch, armed, the epoch token, the sample's countdown) and, after its last read, the
    return and the frame's freeing. Each hook adds this figure to every firing it charges the
    CPU budget for (the lane: to its timed sample, which stands for its stride; an evaluation
    refused by a shedding share: to what its closing cost).

    It is measured, not assumed: the best of 9 runs of 100 calls, from a loop, of a function of
    the hooks' shape (the same parameters, free variables of the same kinds, the same entry
    tests, returning where the hooks read their clock), less the best of 9 runs of the same
    loop without the call; with ``perf_counter_ns``, on the placing thread, once per process
    (at most :data:`CALL_NS_MAX`). The best run, so that preemption does not inflate it; wall
    time, which is the thread's CPU time in a run nothing preempted.
    """
    global _call_ns
    if _call_ns is None:
        try:
            _call_ns = _calibrate()
        except Exception:  # never into the host: nothing added rather than a guess
            _call_ns = 0
    return _call_ns


def _calibrate(runs: int = 9, calls: int = 100) -> int:
    switch = Switch(True)
    closed = new_tally()
    armed = True
    lepoch = _epoch.token
    lskip = 1 << 62
    sensor_work = SENSOR_WORK

    def shape(v: object = NOTHING, a0: object = NOTHING, a1: object = NOTHING) -> None:
        nonlocal lskip
        if guards.SENSOR_WORKING and _get_ident() in sensor_work:
            return
        if not switch.on:
            next(closed)
            return
        if not armed:
            return
        if _epoch.token is not lepoch:
            return
        lskip -= 1
        if lskip > 0:
            return

    perf = time.perf_counter_ns
    values = (1.0,) * calls
    p0 = p1 = 2
    best_call = best_loop = math.inf
    for _ in range(runs):
        t0 = perf()
        for v in values:
            shape(v, p0, p1)
        t1 = perf()
        for v in values:  # noqa: B007 (the loop alone)
            pass
        t2 = perf()
        best_call = min(best_call, t1 - t0)
        best_loop = min(best_loop, t2 - t1)
    each = (best_call - best_loop) / calls
    return int(min(max(each, 0.0), CALL_NS_MAX))


class FastExpectGate(guards._GuardedHook):
    """The hook of a probe with ``expect`` and no ``condition``: see the module docstring.

    ``expr`` is the expectation, compiled with ``slots=(value_name,)`` when the hook is given a
    value (``result`` at ``@return``, ``exception`` at ``@exception``); every other name is
    read from the frame's locals in place. ``slow(frame, value, outcome, error)`` is the
    engine's slow path: it builds and delivers the hit of this firing (``outcome``:
    ``"violation"``, ``"pass"`` or ``"novel"``: a passing firing the pass bucket refused and
    ``novelty`` admitted, see :class:`~sensor.guards.Novelty`; ``error`` the text of an
    evaluation error, redacted there);
    ``failed(exc)`` records a failure of the sensor's own (a hit that could not be built).
    ``depth`` and ``dispatch`` find the target frame (see :class:`~sensor.inject.core.Backend`). The
    counters are tallies: ``evaluations`` and ``violations`` count before any capture
    decision, exactly.
    """

    __slots__ = ("evaluations", "expect_errors", "novelty", "violations")

    def __init__(
        self,
        *,
        expr: Expression,
        value_name: str | None,
        slow: Callable[[Any, object, str, str | None], None],
        failed: Callable[[Exception], object],
        depth: int,
        dispatch: frozenset[int],
        eval_rate: float,
        violation_rate: float,
        pass_rate: float | None,
        pass_burst: int | None,
        max_hits: int | None,
        expires_at: float | None,
        on_stop: Callable[[str], None],
        budget: CpuBudget,
        account: Account,
        waker: Waker | None = None,
        hits: list[int] | None = None,
        novelty: Novelty | None = None,
        local_names: tuple[str, ...] = (),
    ) -> None:
        if value_name is not None and expr.slots != (value_name,):
            raise ValueError(f"expression {expr.source!r}: compile it with slots=({value_name!r},)")
        # The locals a backend may pass as arguments (see guards.locals_of), at most
        # MAX_PASSED: when it does, the expression reads them from a dict of just those (the
        # same names and values the frame's mapping holds there, so the same compiled code and
        # inline forms run) and no frame is read; when it does not, it reads the frame.
        if len(local_names) > MAX_PASSED or value_name in local_names:
            local_names = ()
        n_passed = len(local_names)
        n0, n1 = (*local_names, "", "")[:2]
        getframe = sys._getframe
        perf = _perf
        monotonic = time.monotonic
        # The evaluation bucket in nanoseconds. An unlimited rate (>= 1e9/s: one per ns) has
        # no bucket at all.
        limited = eval_rate < 1e9
        per_ns = eval_rate / 1e9
        burst = eval_burst(eval_rate)
        tokens = burst
        t_start = perf()
        last = t_start
        next_at = -1
        # Jittered as guards.Gate's (see guards.jitter_seed): the tokens the next evaluation
        # needs since the bucket ran dry (1.0: a plain bucket), when the last one was (ns), the
        # refusals counted then, and the earliest the next one may come at.
        need = 1.0
        adm_at = 0
        skip_mark = 0
        interval_ns = 1e9 / eval_rate if eval_rate > 0 else math.inf
        # When the bucket holds the need (ns), and whether a call was refused between two
        # evaluations since the bucket ran dry (the traffic is denser than the rate): see the
        # closing below.
        need_at = 0
        dense = False
        # When the last closing's reopening is due, on the waker's tick (ns): the gate may
        # have been closed that long past its deadline.
        opened = 0
        expires = math.inf if expires_at is None else t_start + (expires_at - time.time()) * 1e9
        cap = math.inf if max_hits is None else float(max_hits)
        produced_hits = hits if hits is not None else [0]
        violation_bucket = guards._Bucket(violation_rate, None, monotonic())
        pass_bucket = (
            None if pass_rate is None else guards._Bucket(pass_rate, pass_burst, monotonic())
        )
        has_value = value_name is not None
        # Novelty admission of a passing evaluation the pass bucket refused (see
        # guards.Novelty): its key is of the probe's value and the locals the expectation reads.
        if pass_bucket is None:
            novelty = None
        elif novelty is None:
            novelty = Novelty()
        novel = novelty
        seen: set[object] = set() if novelty is None else novelty.seen
        # Builtins (len, sum, isinstance) are not locals: left out of the key. So are names
        # that hold a secret under the rules in force (guards.KeyNames: taken again when the
        # rules change, below and in refit).
        keys = guards.KeyNames(
            tuple(sorted(n for n in expr.names if n != value_name and n not in _BUILTIN_NAMES))
        )
        key_names = keys.get()
        absent = (NOTHING,) * len(key_names)
        n_names = len(key_names)
        k0, k1 = (*key_names, "", "")[:2]
        value_class = guards.value_class
        # An expectation that reads only the probe's value (``result >= 0``) needs no frame:
        # it is read only for a capture (or when the hook was given no value).
        reads_frame = not has_value or not set(expr.names) <= {value_name}
        skips = new_tally()  # firings the evaluation bucket refused
        # Violations evaluated and not captured (the violation bucket's refusals): apart from
        # skips, whose count decides the evaluation bucket's jitter.
        uncaptured = new_tally()
        evaluations = new_tally()
        violations = new_tally()
        # Evaluations that gave no bool (refused by the sandbox, failed, another type): a
        # subset of violations, so that false and failed are told apart exactly.
        errors = new_tally()
        # Firings skipped while the switch was closed, counted without calling the hook: by
        # the backend inline (the pair's counter, see guards.switch_of) or by the hook; and on
        # the tallies of the switch's groups (guards.SwitchGroup): read with closed_count_of.
        closed = new_tally()
        # The closed firings owed to the CPU budget: (those of finished closings, the closed
        # count when the current budget closing began, or -1 when the switch is not closed by
        # the budget). One tuple, replaced whole, so that a reader never sees half an update.
        shut = (0, -1)
        switch = Switch(True, grouped=True)
        schedule = None if waker is None or not limited else waker.schedule
        # Closing for the budget does not depend on the evaluation rate being limited.
        shut_schedule = None if waker is None else waker.schedule
        armed = True
        # The metering batch (cheap clock): ns and firings not yet handed to the budget, and
        # when it is due (SETTLE_NS after the last hand-over, or the placement).
        pending_ns = 0
        pending_n = 0
        settle_at = t_start + SETTLE_NS
        # What the last precisely metered firing cost after it was handed over (see hook).
        carry_ns = 0
        # The precise mode's sample (see PRECISE_STRIDE_BITS): the firings to meter until the
        # next timed one (1: the next is timed), and the firings the next timed one stands for.
        pskip = pstride = 1 + _bits(PRECISE_STRIDE_BITS)
        spend = budget.spend
        spend_sampled = budget.spend_sampled
        spend_closing = budget.spend_closing
        settle = budget.spend_many
        precise_clock = time.thread_time_ns
        source = expr.source
        # The compiled expression as evaluate() runs it, refreshed when the rules change: one
        # consistent build (Expression._compiled is replaced whole by a rebuild on any thread).
        fn, red0, version0, table = expr._compiled
        steps = expr.max_steps
        seconds = expr.max_seconds
        # A firing above this is metered alone (SLOW_FIRING_NS, or the budget's one-hit cap if
        # lower: read again at each settlement, as the budget's fraction may change).
        slow_ns = min(SLOW_FIRING_NS, budget.limit_ns)
        # What a firing costs outside its timed stretch, added to each firing charged (see
        # firing_overhead_ns): measured, once per process.
        call_ns = firing_overhead_ns()
        redaction = _redaction

        def stop(why: str) -> None:
            nonlocal armed
            if armed:
                armed = False
                on_stop(why)

        # Checked on every firing only by a probe that has them: an evaluation rate below one
        # per ns, a max_hits (expiry is one comparison and is checked by every firing).
        gated = limited or max_hits is not None
        # The inline form of ``<number> <op> <constant>`` (see _number_test), or None.
        quick, from_value, qk = _number_test(fn, value_name, local_names)
        # The fused form of the other typical shapes (see sensor.expressions.fuse), or None.
        fused = _fused(expr, value_name, local_names)
        # The probe's own hook, generated with the fused form inline (see _lane_code), with the
        # evaluation bucket's common admission inline for a limited rate (_LANE_BUCKET); not
        # for a pass bucket whose key's locals are not passed. It calls ``hook`` below for
        # anything else, one frame deeper: ``hook`` and ``deliver`` then find the target one
        # further up.
        # A pass bucket: the novelty key's locals, as the lane's parameters (a0, a1), in the
        # general hook's order; None without a pass bucket, or where one is not passed.
        params = {n: f"a{i}" for i, n in enumerate(local_names)}
        pass_keys: tuple[str, ...] | None = None
        if pass_bucket is not None and all(k in params for k in key_names):
            pass_keys = tuple(params[k] for k in key_names)
        lane = (
            None
            if pass_bucket is not None and pass_keys is None
            else _lane_code(
                expr, value_name, local_names, max_hits, expires_at, pass_keys, limited=limited
            )
        )
        target_depth = depth
        if lane is not None:
            depth += 1

        def deliver(frame: Any, value: object, outcome: str, error: str | None) -> None:
            # A capture (rare by design: within violation_rate or the probe's rate).
            if frame is None:
                frame = getframe(depth + 1)  # + 1: this function's own frame
                if dispatch and id(frame.f_code) in dispatch:
                    frame = frame.f_back
            slow(frame, value, outcome, error)
            produced_hits[0] += 1
            if produced_hits[0] >= cap:
                stop("max_hits")

        def hook(
            value: object = NOTHING,
            p0: object = NOTHING,
            p1: object = NOTHING,
        ) -> None:
            nonlocal tokens, last, next_at, need, adm_at, skip_mark, need_at, dense, pending_ns
            nonlocal pending_n, settle_at, slow_ns, carry_ns, fn, red0, version0, table, shut
            nonlocal quick, from_value, qk, fused, pskip, pstride
            nonlocal key_names, absent, n_names, k0, k1
            if guards.SENSOR_WORKING and _get_ident() in SENSOR_WORK:
                return  # the sensor's own work: invisible (see sensor.threads)
            if not switch.on:  # closed until the waker reopens it (see Gate)
                next(closed)
                return
            if not armed:
                return
            # The metered stretch starts here and ends after the closing below: the budget
            # is handed what the whole call costs the host, admission, the budget's own
            # accounting and the waker's schedule included (what comes after the hand-over
            # is carried into the next one), so that its 1% bounds what the host pays.
            # In the precise mode (the CPU clock, a system call) one firing in a random stride
            # is timed, and charged for the stride (see PRECISE_STRIDE_BITS); a capture and a
            # rebuild of the closures are timed on every firing and charged exactly
            # (``exact``).
            precise = budget.clock is not perf
            if precise:
                timed = pskip <= 1
                if timed:
                    c0 = precise_clock()
                exact = 0
            t0 = perf()
            if gated:
                if t0 < next_at:
                    next(skips)
                    return
                if t0 >= expires:
                    stop("expired")
                    return
                if produced_hits[0] >= cap:
                    stop("max_hits")
                    return
                if limited:
                    held = tokens
                    tokens += (t0 - last) * per_ns
                    last = t0
                    if need == 1.0:
                        if tokens > burst:
                            tokens = burst
                    elif tokens < need:
                        if (
                            t0 - adm_at < interval_ns
                            or tally_count(skips) + closed_count_of(switch, closed) != skip_mark
                        ):
                            # Denser than the rate: not before the need (see guards.Gate).
                            next(skips)
                            dense = True
                            next_at = t0 + int((need - tokens) / per_ns) + 1
                            if schedule is not None:
                                # A call was refused since the last evaluation: the waker's
                                # next tick after the need will do (see close_late).
                                switch.close()  # before schedule(): the reopening may run first
                                close_late(next_at, t0 / 1e9 + wall_offset)
                            return
                        if tokens > burst:  # an interval without a call: a plain bucket again
                            tokens = burst
                        need = 1.0
                        dense = False
                    elif (
                        tokens >= (need if need > held else held) + 1.0
                        and t0 - opened >= interval_ns
                    ):
                        # A whole token more than it needed, and an interval since the gate
                        # was due to reopen (calls refused while it was closed past the need
                        # are no pause): the calls paused. A plain bucket again.
                        if tokens > burst:
                            tokens = burst
                        need = 1.0
                        dense = False
                    tokens -= 1.0
                    if need == 1.0 and tokens >= 1.0:
                        next_at = t0
                    else:
                        # The next evaluation at a random point of the next interval, or an
                        # interval later if nothing is refused till then (see guards.Gate).
                        refused = tally_count(skips) + closed_count_of(switch, closed)
                        if need == 1.0:
                            # Run dry from a plain bucket: from more than one token, only by
                            # more calls than the rate allows.
                            dense = burst > 1.0
                        elif refused != skip_mark:
                            # A call refused since the last evaluation: denser than the rate,
                            # until a plain bucket again.
                            dense = True
                        skip_mark = refused
                        need = 2.0 - guards._uniform()
                        adm_at = t0
                        wait = need - tokens
                        if wait > 0.0:
                            need_at = t0 + int(wait / per_ns) + 1
                            next_at = need_at if wait < 1.0 else t0 + int(interval_ns) + 1
                        else:
                            next_at = need_at = t0
            elif t0 >= expires:
                stop("expired")
                return
            if account.rate is not None:
                now_s = monotonic()
                if not account.admit(now_s):
                    # Shed by the CPU budget before any work (counted by the account). The
                    # closing costs the host too (a refill time, a tick, the waker's schedule):
                    # timed with the budget's clock and charged at once, unscaled, with the
                    # firing's call (a share's refusal is rare: one a closing), with what is
                    # owed from before (the last hand-overs' own cost: a probe its share keeps
                    # refusing may not evaluate for seconds); what charging it cost, next.
                    clk = precise_clock if precise else perf
                    c1 = clk()
                    shed_close(now_s)
                    c2 = clk()
                    if precise:
                        owed, carry_ns = carry_ns, 0
                    else:
                        owed, pending_ns = pending_ns, 0
                    spend_closing(account, c2 - c1 + call_ns + owed)
                    if precise:
                        carry_ns = clk() - c2
                    else:
                        pending_ns = clk() - c2
                    return
            error: str | None = None
            frame: Any = None
            fl: Any = None
            try:
                red = redaction._default
                if (
                    quick is not None
                    and red is red0
                    and red.version == version0
                    and ((ta := type(a := value if from_value else p0)) is int or ta is float)
                ):
                    # ``<number> <op> <constant>`` (``result >= 0``, ``x > 0.5``): what the
                    # compiled closure does for an exact int or float (it reads the same value:
                    # the probe's, or the one local it reads, passed), without building the
                    # evaluation state or calling it. Anything else runs the closure.
                    ok = quick(a, qk)
                elif (
                    fused is not None
                    # (a backend that could not pass the locals passes none: the frame is
                    # read below, and calling the fused form would only be a FALLBACK)
                    and (p0 is not NOTHING or not n_passed)
                    and red is red0
                    and red.version == version0
                    and (ok := fused(value, p0, p1)) is not FALLBACK
                ):
                    # The whole expression as one generated function of the values at hand,
                    # for exact builtin values (see sensor.expressions.fuse): what the closures
                    # answer, without the locals mapping, the state or a call per node. It
                    # answers FALLBACK for anything else, and the closures run.
                    pass
                else:
                    gl: Any = None
                    if not (reads_frame or value is NOTHING):
                        fl = _NO_LOCALS  # it reads only the probe's value: no frame
                    elif p0 is not NOTHING:
                        # Every local it reads, passed by the injected code (LOAD_FAST where
                        # all are bound, see sensor.inject.bound): no frame. No global is read.
                        fl = {n0: p0} if n_passed == 1 else {n0: p0, n1: p1}
                    else:
                        frame = getframe(depth)
                        if dispatch and id(frame.f_code) in dispatch:
                            frame = frame.f_back  # called through the hybrid's monitoring callback
                        # The frame's own mapping, read in place and never written to (writing
                        # would change the program's variables): the expression only looks
                        # names up.
                        fl = frame.f_locals
                        gl = frame.f_globals
                    if red is red0 and red.version == version0:
                        # Expression.evaluate, inline: the same closures, state and limits.
                        if has_value:
                            state = [steps, steps, 0.0, None, seconds, red, None, table,
                                     NO_VALUE if value is NOTHING else value]  # fmt: skip
                        else:
                            state = [steps, steps, 0.0, None, seconds, red, None, table]
                        # The host's decimal context as found, its flags put back after (see
                        # sensor.expressions.decimal_context), as Expression.evaluate does.
                        dctx = _dec_current(None)
                        if dctx is not None:
                            dflags = dctx.flags
                            dseen = _dec_seen[0]
                            if dflags != dseen[0]:
                                dseen = _dec_remember(dflags)
                        try:
                            ok = fn(fl, gl, state)
                            if ok is not True and type(ok) is _Lazy:
                                ok = _materialize(ok, state)
                        except Exception as exc:  # refused or failed: not evaluable, a violation
                            ok = None
                            failure = expr.failed(exc)
                            error = f"{type(failure).__name__}: {failure}"
                        finally:
                            if dctx is None:
                                if _dec_current(None) is not None:
                                    _dec_restore_new()
                            elif dflags != dseen[0]:
                                _dec_restore(dctx, dseen)
                    else:  # the rules changed: evaluate() rebuilds the closures first
                        if precise:  # (a rebuild: dear, rare, timed exactly)
                            x0 = precise_clock()
                        try:
                            ok = expr.evaluate(
                                fl,
                                gl,
                                values=(NO_VALUE if value is NOTHING else value,)
                                if has_value
                                else (),
                            )
                        except Exception as exc:
                            ok = None
                            error = f"{type(exc).__name__}: {exc}"
                        fn, red0, version0, table = expr._compiled
                        quick, from_value, qk = _number_test(fn, value_name, local_names)
                        fused = _fused(expr, value_name, local_names)
                        # The novelty key, without a name the new rules call secret.
                        key_names = keys.get()
                        absent = (NOTHING,) * len(key_names)
                        n_names = len(key_names)
                        k0, k1 = (*key_names, "", "")[:2]
                        if lane is not None:
                            refit()  # the lane too, for the rules in force (never raises)
                        if precise:
                            exact += precise_clock() - x0
                next(evaluations)
                if ok is True:
                    violated = False
                else:
                    if error is not None:
                        next(errors)
                    if ok is False or error is not None:
                        violated = True
                    elif id(type(ok)) in _PLAIN_TRUTH:
                        violated = not ok
                    else:
                        violated = True
                        error = f"{source!r} gave a {_type_name(type(ok))}, expected a bool"
                        next(errors)
                if violated:
                    next(violations)
                    if violation_bucket.take(monotonic()):
                        if precise:
                            x0 = precise_clock()
                            deliver(frame, value, "violation", error)
                            exact += precise_clock() - x0
                        else:
                            deliver(frame, value, "violation", error)
                    else:
                        next(uncaptured)  # a violation not captured: counted, never silent
                elif pass_bucket is not None:
                    outcome = "pass" if pass_bucket.take(monotonic()) else None
                    if novel is not None:
                        # Captured anyway if its value class is new (the pass bucket refused
                        # it), or its class noted (captured within the rate). Only values at
                        # hand, keyed without running user code.
                        # (an int result inline: the commonest, no call)
                        key: object = (
                            -1
                            if value is NOTHING
                            else (1 if value > 0 else 2 if value < 0 else 0)
                            if type(value) is int
                            else value_class(value)
                        )
                        if key_names:  # the locals it reads (absent: the NOTHING class)
                            if fl is None:
                                # The inline or fused form read the locals passed: no
                                # mapping yet.
                                fl = {n0: p0} if n_passed == 1 else {n0: p0, n1: p1}
                            get = fl.get
                            # Unrolled for one or two names: a Python call from map() (C) is
                            # dearer than one from here.
                            if n_names == 1:
                                key = (key, value_class(get(k0, NOTHING)))
                            elif n_names == 2:
                                key = (
                                    key,
                                    value_class(get(k0, NOTHING)),
                                    value_class(get(k1, NOTHING)),
                                )
                            else:
                                key = (key, *map(value_class, map(get, key_names, absent)))
                        if outcome is not None:
                            novel.note(key)
                        elif key not in seen and novel.admit(key, monotonic()):
                            outcome = "novel"
                    if outcome is not None:
                        if precise:
                            x0 = precise_clock()
                            deliver(frame, value, outcome, error)
                            exact += precise_clock() - x0
                        else:
                            deliver(frame, value, outcome, error)
            except Exception as exc:  # a failure of ours: counted, never raised into the host
                # No reference to the host's frame outlives the firing (a kept traceback
                # holds this frame, and so its variables).
                frame = fl = None
                with contextlib.suppress(Exception):
                    failed(exc)
            # metering
            if precise:
                if schedule is not None and next_at > t0:
                    close_rate(t0)  # inside the timed stretch: part of the sample
                if timed:
                    t1 = precise_clock()
                    n = pstride
                    pskip = pstride = 1 + _bits(PRECISE_STRIDE_BITS)
                    # (its exact part out of the sample, which it would inflate n times)
                    over = spend_sampled(account, t1 - c0 - exact + call_ns, n, carry_ns, not exact)
                    if over is not None:
                        stop(over)
                elif exact:
                    t1 = precise_clock()
                    pskip -= 1
                else:
                    pskip -= 1
                    return
                if exact:
                    # A capture, a closure evaluation: charged exactly, alone, so that the
                    # one-hit cap applies to it.
                    over = spend(account, exact, precise_clock)
                    if over is not None:
                        stop(over)
                # What handing over cost, charged with the next timed firing, unscaled.
                carry_ns = (carry_ns if not timed else 0) + precise_clock() - t1
                return
            # (the cheap mode)
            t1 = perf()
            took = t1 - t0 + call_ns  # (and what the firing cost outside it, measured)
            if took > slow_ns:
                # Handed over alone, so that the one-hit cap applies to it.
                over = spend(account, took, perf)
                if over is not None:
                    stop(over)
            else:
                pending_ns += took
                pending_n += 1
                if pending_n >= SETTLE_EVERY or t1 >= settle_at:
                    if settle(account, pending_ns, pending_n):
                        pending_ns = pending_n = 0
                        # The next batch is handed over within SETTLE_NS of this one.
                        settle_at = t1 + SETTLE_NS
                    slow_ns = min(SLOW_FIRING_NS, budget.limit_ns)
                elif schedule is None or next_at <= t0:
                    # The common firing: added to the batch, nothing handed over, no
                    # closing, so nothing after its measurement to meter.
                    return
            if schedule is not None and next_at > t0:
                close_rate(t0)
            # What came after the firing's own measurement (the budget's accounting, the
            # closing) is added to the batch (handed over with its next firing: a batch of no
            # firing is not).
            pending_ns += perf() - t1

        def close_rate(t0: int) -> None:
            # The evaluation bucket is empty: closed, so that the firings in between cost
            # an inline test and a C-level count each instead of a call that would only be
            # refused. Open again by ``next_at`` (a call then is evaluated if none was
            # refused since this one, see guards.jitter_seed): the waker looks on the tick
            # before it, and waits on until the need's tick only if a call was refused
            # meanwhile (see wake). A wait shorter than that is closed until the tick after
            # the need (see _tick) only while the traffic is denser than the rate (a call
            # refused since the bucket ran dry, or a bucket of more than one token
            # drained); else the gate stays open.
            now_s = t0 / 1e9 + wall_offset
            at = min(next_at, expires) / 1e9 + wall_offset
            check = guards.tick_before(at)
            if check > now_s:
                switch.close()  # before schedule(): the reopening may run before it returns
                if schedule is None or not schedule(check, wake):
                    reopen()
            elif dense:
                # Calls were refused since the last evaluation: one will be since this
                # one, by all likelihood, and the next evaluation needs the need.
                switch.close()
                close_late(need_at, now_s)

        def shed_close(now_s: float) -> None:
            # A firing refused by the probe's CPU-budget share (the general hook's or the
            # lane's). The share stays empty until it refills: close the switch until then, so
            # that the firings in between cost an inline test and a C-level count instead of a
            # call that would only be refused (see guards.Account.refill_in).
            nonlocal shut
            wait = account.refill_in()
            if shut_schedule is not None and wait > 0.0:
                shut = (shut[0], closed_count_of(switch, closed))
                switch.close()  # before schedule(): the reopening may run first
                if not shut_schedule(_shut_tick(now_s + min(wait, SHUT_MAX)), reopen):
                    reopen()

        def reopen() -> None:
            nonlocal shut
            switch.open()  # and its groups (see guards.SwitchGroup)
            done, mark = shut
            if mark >= 0:
                # A firing on another thread that saw the switch closed just before this may
                # be counted after it: it stays in the total, attributed to the rate limit.
                shut = (done + closed_count_of(switch, closed) - mark, -1)

        def wake() -> None:
            # On the waker's thread, before the evaluation bucket's next_at: a call refused since
            # the last evaluation means traffic denser than the rate, and the next evaluation
            # waits for the need: closed on until the tick after it (see _tick). Otherwise open
            # now, so that a call at next_at finds the gate open (the hook tests the clock).
            if switch.on:
                return  # opened meanwhile (disarmed, or every gate reopened)
            if tally_count(skips) + closed_count_of(switch, closed) != skip_mark:
                now_s = monotonic()
                if need_at / 1e9 + wall_offset > now_s:
                    close_late(need_at, now_s)
                    return
            reopen()

        def close_late(at_ns: float, now_s: float) -> None:
            # Closed (already) until the waker's tick after ``at_ns`` (see _tick): only once a
            # call was refused since the last evaluation, which allows the next one to come
            # later than the bucket's need (see guards.jitter_seed). Noted, so that the calls
            # refused while closed past the need are not taken for a pause.
            nonlocal opened
            tick = _tick(min(at_ns, expires) / 1e9 + wall_offset, now_s)
            opened = int((tick - wall_offset) * 1e9)
            if schedule is None or not schedule(tick, reopen):
                reopen()

        def shed() -> int:
            done, mark = shut
            return done if mark < 0 else done + closed_count_of(switch, closed) - mark

        def read() -> tuple[int, int]:
            return produced_hits[0], (
                tally_count(skips)
                + closed_count_of(switch, closed)
                + tally_count(uncaptured)
                - shed()
            )

        def disarm() -> None:
            nonlocal armed
            armed = False
            reopen()
            account.retire(shed)

        account.attach(shed)
        # The waker schedules in time.monotonic() seconds; the bucket counts perf_counter ns.
        wall_offset = monotonic() - perf() / 1e9
        published = hook
        refits = 0
        # The lane's fused form: the plain one until a Decimal operand asks for the Decimal
        # form (to_decimal), which then stays (a rule change builds it again as it is).
        lane_decimal = False

        def to_decimal() -> None:
            # On the lane's first Decimal operand (the firing is the general hook's): the lane
            # built again with the Decimal form, which puts the host's decimal flags back
            # after its operations. Once; never raises (refit does not).
            nonlocal lane_decimal
            if lane_decimal:
                return
            lane_decimal = True
            refit()

        def refit() -> None:
            # The rules changed: the lane's inline fused form is of the old ones, and it hands
            # every firing to ``hook``. Its code is generated again for the rules in force,
            # its new constants under new names (a thread still running the old code reads
            # the old ones), and swapped in. At most MAX_REFITS times (the namespace grows).
            nonlocal refits
            if published is hook or refits >= MAX_REFITS:
                return
            refits += 1
            try:
                # The novelty key of the rules in force: the names they call secret left out.
                # (A name they no longer call secret may not be a parameter of the lane: the
                # KeyError leaves the lane as it is, and the general hook serves its firings.)
                keyed = None if pass_keys is None else tuple(params[k] for k in keys.get())
                got = _lane_code(
                    expr,
                    value_name,
                    local_names,
                    max_hits,
                    expires_at,
                    keyed,
                    build=refits,
                    limited=limited,
                    decimal=lane_decimal,
                )
                if got is None:
                    return
                code, new_ns = got
                inner = next(c for c in code.co_consts if type(c) is CodeType)
                if inner.co_freevars != published.__code__.co_freevars:
                    return
                ns.update(new_ns)
                funcversion.set_code(published, inner, funcversion.code_version(inner))
                # Its first firing tests the rules again, against its own constants.
                lane_cells = zip(inner.co_freevars, published.__closure__ or (), strict=True)
                for name, cell in lane_cells:
                    if name == "lepoch":
                        cell.cell_contents = None
            except Exception:  # never into the host: the general hook serves meanwhile
                return

        if lane is not None:
            code, ns = lane
            ns["_general"] = hook
            ns["_TO_DECIMAL"] = to_decimal
            ns["_DEPTH"] = target_depth
            ns["_DISPATCH"] = dispatch
            cells = dict(zip(hook.__code__.co_freevars, hook.__closure__ or (), strict=True))
            ns.update((name, cells[name].cell_contents) for name in _LANE_FIXED)
            ns["_SLOW_S0"] = slow_ns / 1e9
            ns["_CALL_S"] = call_ns / 1e9
            ns["_EXPIRES_S"] = expires / 1e9
            # The lane shares the general hook's state (its closure cells and the objects they
            # hold): the switch, the tallies, the buckets; it keeps a metering batch of its own
            # (float seconds, see _float_clock), handed to the same account. Made by calling a
            # function of those cells, so that the hook itself comes from MAKE_FUNCTION (3.13
            # specialises calls to it only then).
            outer = FunctionType(code, ns, "lane", None, tuple(cells[n] for n in code.co_freevars))
            published = outer()
        setattr(published, _SWITCH_ATTR, (switch, closed))
        # Set even with no local to pass (``result >= 0``): the backend then calls the hook with
        # its full argument count, the interpreter's fast path (see guards.locals_of).
        setattr(published, _LOCALS_ATTR, local_names)
        self._publish(published, read, disarm, lambda: closed_count_of(switch, closed))
        self.evaluations = evaluations
        self.violations = violations
        self.expect_errors = errors
        self.novelty = novelty


def _number_test(
    fn: Callable[..., Any], value_name: str | None, local_names: tuple[str, ...]
) -> tuple[Callable[[Any, Any], Any] | None, bool, object]:
    """The inline form of a compiled ``<name> <op> <number>``: (the native comparison, whether
    the name is the probe's value rather than the one passed local, the constant), or
    (None, False, None) when ``fn`` is another shape.

    The compiler marks such a closure (``number_test``, see ``c_Compare``): for an exact int or
    float it compares natively, which the hook then does without calling it. Only where the
    hook has the value at hand: the probe's value in its slot, or a local the backend passes
    (the only one the expectation reads).
    """
    test = getattr(fn, "number_test", None)
    if test is None:
        return None, False, None
    op, name, slot, k = test
    native = _CMP_OPS[op]
    if slot is not None and value_name is not None and slot == _S_SLOTS:
        return native, True, k
    if name is not None and local_names == (name,):
        return native, False, k
    return None, False, None


def _fused(
    expr: Expression, value_name: str | None, local_names: tuple[str, ...]
) -> Callable[[object, object, object], Any] | None:
    """The fused form of ``expr`` at its current build (rules), or None: see
    :mod:`sensor.expressions.fuse`. Only the values the hook has at hand are read."""
    if not SPECIALISE_FUSED:
        return None
    _fn, red, _version, table = expr._compiled
    try:
        return fuse(expr._tree, red, table, value_name, local_names, expr.max_steps)
    except Exception:  # never into the host (this may run in the hook): the closures it is
        return None


#: Build the fused forms (tests turn it off to compare with the closures alone).
SPECIALISE_FUSED = True
#: Generate a probe's own hook with its fused form inline where it can (tests turn it off to
#: compare with the general hook).
SPECIALISE_LANE = True

# The general hook's state the lane changes or reads as it changes (its closure cells): declared
# here so that the generated text compiles with them as free variables, bound to the general
# hook's cells. What never changes after placement (the switch, the tallies, the buckets, the
# budget and its account...) is bound in the lane's namespace instead, under the same names
# (_LANE_FIXED): a free variable costs every call a copy into the frame and a release.
_LANE_CELLS = ("armed", "pending_ns")
#: And those of a probe with a limited evaluation rate: its evaluation bucket.
_LANE_BUCKET_CELLS = ("tokens", "last", "next_at", "need")
_LANE_FIXED = (
    "switch", "closed", "evaluations", "violations", "uncaptured", "violation_bucket", "deliver",
    "failed", "stop", "budget", "account", "spend", "settle", "expires", "produced_hits", "cap",
    "pass_bucket", "novel", "seen", "skips", "per_ns", "burst", "shed_close", "spend_sampled",
    "spend_closing",
)  # fmt: skip

# The evaluation bucket of a probe with a limited evaluation rate, in the lane: the general hook's
# admission where the bucket is a plain one (``need == 1.0``) and holds a token more than this
# firing takes (its ``next_at = t0`` case: most admissions under traffic denser than the rate,
# which reopens the gate to a run of them), the same arithmetic on the same cells. A call before
# ``next_at`` is refused and counted as the general hook refuses it; anything else (a bucket
# running dry: the jittered draw and the closing; expiry) is the general hook's, with the cells
# untouched. Inside the metered stretch, as the general hook's admission is; a firing that is
# not evaluated leaves the metering sample as it was.
_LANE_BUCKET = """
            _n = _perf()
            _tk = tokens + (_n - last) * per_ns
            if _tk > burst:
                _tk = burst
            if _n < next_at or need != 1.0 or _tk < 2.0{expired}:
                if _t0:
                    lskip = 1
                    lstride = _s
                else:
                    lskip += 1
                if _n < next_at:
                    _next(skips)
                    return
                return _general(v, a0, a1)
            tokens = _tk - 1.0
            last = _n
            next_at = _n"""

# A capture by the lane (``{outcome}``: the firing's outcome), at one indentation level of
# none: timed on its own, on every firing, and charged exactly (a dear one alone, at once); its
# time is taken out of a timed evaluation's, which is charged for its whole stride.
_LANE_CAPTURE = """\
_tc = _fperf(){expiry_capture}
if lprec:
    _tc = _cpu_ns()
_frame = _getframe(_DEPTH)
if _DISPATCH and _id(_frame.f_code) in _DISPATCH:
    _frame = _frame.f_back
deliver(_frame, v, {outcome}, None)
_frame = None
if lprec:
    # The precise mode: timed with the CPU clock, charged exactly, alone.
    _tc = _cpu_ns() - _tc
    if _t0:
        _t0 += _tc / 1e9
    _over = spend(account, _tc, _cpu_ns)
    if _over is not None:
        stop(_over)
    _tc = 0.0
    _x = True
else:
    _tc = _fperf() - _tc
    if _t0:
        _t0 += _tc
if _tc > lslow:
    _over = spend(account, _int(_tc * 1e9), _perf)
    if _over is not None:
        stop(_over)
elif _tc:
    lpend += _tc"""

# A passing firing of a probe with a pass bucket (and so novelty): what the general hook does,
# the novelty key built from the values at hand ({key}: the value's class, then the classes of
# the locals the expectation reads, in the general hook's order).
_LANE_PASS = """
                try:
                    _outcome = "pass" if pass_bucket.take(_monotonic()) else None
                    _key = (
                        -1
                        if v is _NOTHING
                        else (1 if v > 0 else 2 if v < 0 else 0)
                        if _type(v) is _int
                        else _value_class(v)
                    ){key}
                    if _outcome is not None:
                        novel.note(_key)
                    elif _key not in seen and novel.admit(_key, _monotonic()):
                        _outcome = "novel"
                    if _outcome is not None:
{capture}
                except Exception as _exc:
                    _frame = None
                    try:
                        failed(_exc)
                    except Exception:
                        pass"""

_LANE_HEAD = """\
def _maker():
    {cells} = None
    def lane():
        lpend = 0.0
        lcount = 0
        lsettle = _fperf() + _SETTLE_S
        lslow = _SLOW_S0
        lskip = lstride = 1 + _bits(_STRIDE_BITS)
        llast = 0.0
        lepoch = None
        lshed = lprec = False
        lclock = _fperf
        def hook(v=_NOTHING, a0=_NOTHING, a1=_NOTHING):
            nonlocal pending_ns, lpend, lcount, lsettle, lslow, lskip, lstride, llast
            nonlocal lepoch, lshed, lprec, lclock{bucket_cells}
            if _guards.SENSOR_WORKING and _get_ident() in _SENSOR_WORK:
                return
            if not switch.on:
                _next(closed)
                return
            if not armed:
                return
            if _epoch.token is not lepoch:
                _e = _epoch.token
                if _redaction._default is not _RED0 or _RED0.version != _VERSION0:
                    return _general(v, a0, a1)
                lshed = account.rate is not None
                if lprec is (budget.clock is _perf):
                    # The budget's clock changed: so does the lane's (the precise mode's is the
                    # thread's CPU clock, on the same timed firings); the batch so far is
                    # handed over with the next timed one.
                    lprec = not lprec
                    lclock = _fcpu if lprec else _fperf
                    lsettle = 0.0
                lepoch = _e{more}
            lskip -= 1
            if lskip > 0:
                _t0 = 0.0
            else:
                _t0 = lclock()
                _x = False
                _s = lstride
                lskip = lstride = 1 + _bits(_STRIDE_BITS){expiry}{bucket}
            if lshed:
                # Load is shed: the probe's CPU-budget share admits the firing, or refuses it
                # (counted by the account) and closes the gate until it refills, as the general
                # hook does; a refused firing is not metered.
                _m = _monotonic()
                if not account.admit(_m):
                    # Its closing costs the host too: timed (from the sample's start on a
                    # timed firing) and charged at once, unscaled, with what the firing costs
                    # outside the stretch (see firing_overhead_ns), and the batch so far (a
                    # probe its share keeps refusing may not evaluate, and so settle, for
                    # seconds; its evaluations are counted at the next settlement); what
                    # charging it cost, with the batch.
                    _c = _t0 if _t0 else lclock()
                    if _t0:
                        lskip = 1
                        lstride = _s
                    else:
                        lskip += 1
                    shed_close(_m)
                    _c2 = lclock()
                    spend_closing(account, _int((_c2 - _c + _CALL_S + lpend) * 1e9))
                    lpend = lclock() - _c2
                    return{frame_read}{dec_head}
            try:
"""
_LANE_TAIL = """\
                _ok = {var}
            except Exception:
                _ok = _FALLBACK{dec_tail}
            if _ok is True:
                _next(evaluations){passing}
            elif _ok is False:
                _next(evaluations)
                _next(violations)
                try:
                    if violation_bucket.take(_monotonic()):
{capture}
                    else:
                        _next(uncaptured)
                except Exception as _exc:
                    _frame = None
                    try:
                        failed(_exc)
                    except Exception:
                        pass
            else:
                # Not one of the sample's: metered with the general hook's firing (its batch),
                # the lane's part measured if timed, else as the last timed evaluation took.
                if _t0:
                    pending_ns += _int((lclock() - _t0) * 1e9)
                    lskip = 1
                    lstride = _s
                else:
                    pending_ns += _int(llast * 1e9)
                    lskip += 1
                return _general({fallback_args})
            if not _t0:
                return
            _t1 = lclock()
            # (with what the firing costs outside the stretch: see firing_overhead_ns)
            llast = _took = _t1 - _t0 + _CALL_S
            if _took <= lslow:
                lpend += _took * _s
                lcount += _s
                if lcount < _SETTLE_EVERY and _t1 < lsettle:
                    return
            else:
                # Handed over alone and unscaled, so that the one-hit cap applies to it; the
                # evaluations it stands for go to the batch (in the precise mode, with it: the
                # cap applies to the timed firing alone, as in the general hook).
                if lprec:
                    _over = spend_sampled(account, _int(_took * 1e9), _s)
                    _x = True
                else:
                    _over = spend(account, _int(_took * 1e9), _perf)
                    lpend += _took * (_s - 1)
                    lcount += _s - 1
                if _over is not None:
                    stop(_over)
            # (Not with a firing whose dear part was handed over alone in the precise mode, a
            # strike if over the one-hit cap: its cheap part must neither end a run of dear
            # ones nor, charged after a sharing that strike caused, refuse the next firing.)
            if (lcount >= _SETTLE_EVERY or _t1 >= lsettle) and not _x:
                if settle(account, _int(lpend * 1e9 + 0.5), lcount):
                    lpend = 0.0
                    lcount = 0
                    lsettle = _t1 + _SETTLE_S
                lslow = _min(_SLOW_FIRING_NS, budget.limit_ns) / 1e9
            lpend += lclock() - _t1
        return hook
    return lane
"""


def _float_clock() -> Callable[[], float]:
    """The lane's clock: ``_perf`` in float seconds. ``time.perf_counter`` reads the same clock
    as ``perf_counter_ns`` and its float costs no allocation of a two-digit int (about 500 of
    the lane's 4,300 instructions on 3.11 went to the ints of its two readings and their
    arithmetic); a clock put in ``_perf`` (tests) is read through it."""
    perf = _perf
    if perf is time.perf_counter_ns:
        return time.perf_counter
    return lambda: perf() / 1e9


_THREAD_TIME_NS = time.thread_time_ns


def _float_cpu_clock() -> Callable[[], float]:
    """The lane's clock in the budget's precise mode: the thread's CPU clock in float seconds
    (``time.thread_time``, the clock of ``thread_time_ns``); a clock put in
    ``time.thread_time_ns`` (tests) is read through it."""
    cpu = time.thread_time_ns
    if cpu is _THREAD_TIME_NS:
        return time.thread_time
    return lambda: cpu() / 1e9


# The names of a lane's namespace whose values depend on the redaction rules.
_BUILD_NAMES = re.compile(r"\b(K\d+|TABLE|_RED0|_VERSION0)\b")
#: The most times a probe's lane is generated again after rule changes (then the general hook
#: serves its firings, as fast as before the lanes).
MAX_REFITS = 16


class _NotFused(Exception):
    """Raised by a lane's inline fused form where it does not answer (its ``return
    FALLBACK``): the lane then calls the general hook."""


def _lane_code(
    expr: Expression,
    value_name: str | None,
    local_names: tuple[str, ...],
    max_hits: int | None,
    expires_at: float | None,
    pass_keys: tuple[str, ...] | None = None,
    build: int = 0,
    limited: bool = False,
    decimal: bool = False,
) -> tuple[CodeType, dict[str, Any]] | None:
    """The code of a probe's own hook, with its fused form inline, and the namespace it runs
    in; or None (no fused form, or lanes turned off): the general hook is the probe's.

    The hook is the general hook's common firing and nothing else: the same skip tests, for a
    ``limited`` evaluation rate the bucket's common admission and refusal (see _LANE_BUCKET), the
    fused form's lines in place of its call, the exact counts of a pass or a violation (and the
    violation's capture within ``violation_rate``), and the metering of a random sample of its
    evaluations (see :data:`METER_STRIDE_BITS`: an untimed one reads no clock, and a probe's
    expiry is tested on the timed ones and before a capture; a capture is always timed and
    charged exactly) in a batch of its own, handed to
    the same account. The precise clock, shedding and the rules are tested again only when the
    epoch token changed (:mod:`sensor._epoch`; ``lepoch`` is the token they last held under).
    Anything else (the
    precise clock, an account shedding load, redaction rules changed since placement, a
    ``max_hits`` reached, expiry, a value the fused form does not answer for, locals not
    passed) calls the general hook, which does everything as before; the time the lane took
    before that is added to the batch. The text is built from our own fixed fragments and the
    fused form's (see :mod:`sensor.expressions.fuse`): no name or value of the expression is in
    it. ``build``: the how-manieth generation for this probe (a rule change makes another, see
    ``refit``): from the second on, the names bound to what the rules decide (the fused
    form's constants and verdict table, the rules it was built against) get its number.
    """
    if not (SPECIALISE_FUSED and SPECIALISE_LANE):
        return None
    try:
        _fn, red, version, table = expr._compiled
        body = fuse_body(
            expr._tree, red, table, value_name, local_names, expr.max_steps, decimal=decimal
        )
        if body is None:
            return None
        lines, ns, var, dec = body
        # The host's decimal flags, where the Decimal form's body takes them (on a Decimal
        # value): put back on every way out of the body, before the verdict's work. The plain
        # form (``decimal`` False, until the probe meets a Decimal) has none of it: on a
        # Decimal operand it asks for the Decimal form (``_TO_DECIMAL``, see FastExpectGate)
        # and hands the firing to the general hook (whose fused function has a Decimal form).
        dec_head = dec_tail = ""
        if dec and decimal:
            dec_head = "\n            " + DECIMAL_HEAD
            dec_tail = "\n            finally:" + "".join(
                "\n                " + line for line in DECIMAL_TAIL
            )
        more = ""
        frame_read = ""
        fallback_args = "v, a0, a1"
        if local_names:
            # A backend that could not pass the locals passes none: the general hook reads
            # the frame.
            # A backend that could not pass the locals passes none (3.11 at a line): they are
            # read from the frame's own mapping (never written to: only looked up, by exact
            # str names), inside the metered stretch; a name not there is NOTHING, which the
            # fused form does not answer for. The general hook is then given what the lane was.
            frame_read = (
                "\n            _passed = True"
                "\n            if a0 is _NOTHING:"
                "\n                _passed = False"
                "\n                _f = _getframe(_DEPTH)"
                "\n                if _DISPATCH and _id(_f.f_code) in _DISPATCH:"
                "\n                    _f = _f.f_back"
                "\n                _fl = _f.f_locals"
                "\n                a0 = _fl.get(_N0, _NOTHING)"
                + ("\n                a1 = _fl.get(_N1, _NOTHING)" if len(local_names) > 1 else "")
                + "\n                _f = _fl = None"
            )
            fallback_args = "v, a0, a1) if _passed else _general(v"
        if max_hits is not None:
            more += (
                "\n            if produced_hits[0] >= cap:"
                "\n                return _general(v, a0, a1)"
            )
        # (a probe that never expires: no test). One that does is tested on the timed
        # evaluations and before every capture, not on the others: such a probe stops within
        # one stride (at most 2 ** METER_STRIDE_BITS firings) of its expiry, and captures
        # nothing after it; the evaluations between are counted (the clock read on every
        # firing cost about a tenth of an evaluation).
        expiry = expiry_capture = ""
        if expires_at is not None:
            expiry = (
                "\n                if (_fperf() if lprec else _t0) >= _EXPIRES_S:"
                "\n                    lskip = 1"
                "\n                    lstride = _s"
                "\n                    return _general(v, a0, a1)"
            )
            expiry_capture = '\nif _tc >= _EXPIRES_S:\n    stop("expired")\n    return'

        def capture(outcome: str) -> str:
            text = _LANE_CAPTURE.format(outcome=outcome, expiry_capture=expiry_capture)
            return textwrap.indent(text, " " * 24)

        passing = ""
        if pass_keys is not None:
            key = ""
            if pass_keys:
                key = (
                    "\n                    _key = (_key, "
                    + ", ".join(f"_value_class({p})" for p in pass_keys)
                    + ")"
                )
            passing = _LANE_PASS.format(key=key, capture=capture("_outcome"))
        inline = []
        for line in lines:
            if line.strip() == "return FALLBACK":
                line = line.replace("return FALLBACK", "raise _NotFused")
            elif line.strip() == DECIMAL_LINE:
                line = line.replace(DECIMAL_LINE, "_TO_DECIMAL(); raise _NotFused")
            inline.append("            " + line)
        cells = _LANE_CELLS + (_LANE_BUCKET_CELLS if limited else ())
        text = (
            _LANE_HEAD.format(
                cells=" = ".join(cells),
                bucket_cells=", tokens, last, next_at" if limited else "",
                more=more,
                expiry=expiry,
                # (a probe that never expires: no test)
                bucket=_LANE_BUCKET.format(
                    expired="" if expires_at is None else " or _n >= expires"
                )
                if limited
                else "",
                frame_read=frame_read,
                dec_head=dec_head,
            )
            + "\n".join(inline)
            + "\n"
            + _LANE_TAIL.format(
                var=var,
                passing=passing,
                fallback_args=fallback_args,
                capture=capture('"violation"'),
                dec_tail=dec_tail,
            )
        )
        ns.update(
            _NOTHING=NOTHING, _guards=guards, _get_ident=_get_ident, _SENSOR_WORK=SENSOR_WORK,
            _next=next, _perf=_perf, _monotonic=time.monotonic, _redaction=_redaction,
            _epoch=_epoch, _RED0=red, _VERSION0=version, _FALLBACK=FALLBACK, _NotFused=_NotFused,
            _getframe=sys._getframe, _id=id, _SETTLE_EVERY=SETTLE_EVERY, _SETTLE_NS=SETTLE_NS,
            _min=min, _SLOW_FIRING_NS=SLOW_FIRING_NS, Exception=Exception, _type=type, _int=int,
            _SETTLE_S=SETTLE_NS / 1e9, _fperf=_float_clock(), _N0=(*local_names, "")[0],
            _N1=(*local_names, "", "")[1],
            _value_class=guards.value_class, _bits=guards._rng.getrandbits,
            _STRIDE_BITS=METER_STRIDE_BITS, _cpu_ns=time.thread_time_ns,
            _fcpu=_float_cpu_clock(),
        )  # fmt: skip
        if build:
            # Our own names only (the generated text has no name or string of the expression).
            text = _BUILD_NAMES.sub(lambda m: f"{m.group(1)}_b{build}", text)
            ns = {
                (f"{k}_b{build}" if _BUILD_NAMES.fullmatch(k) else k): value
                for k, value in ns.items()
            }
        scope: dict[str, Any] = dict(ns)
        exec(builtins.compile(text, "<expectation lane>", "exec"), scope)
        maker = scope["_maker"]
        code: CodeType = maker().__code__
    except Exception:  # never into the host: the general hook serves
        return None
    return code, ns


def _tick(at: float, now: float) -> float:
    """The tick a gate closed until ``at`` (monotonic seconds) by its evaluation rate reopens
    on: that of the interval of :data:`~sensor.guards.LONG_WAIT` after the one holding ``at``,
    or of :data:`CLOSE_TICK` when ``at`` is less than that from ``now`` (see
    :func:`sensor.guards.tick_after`; a closing for the CPU budget: :func:`_shut_tick`).

    Every gate of this module that closes reopens on such a tick: however many gates close,
    however short their waits, the waker wakes at most once per LONG_WAIT interval for them
    all, one wake-up reopening every gate due, and a gate with short waits closes at most about
    1 / CLOSE_TICK times a second. A gate closes for at most two ticks longer than it had to,
    and its bucket fills meanwhile: the evaluations it is allowed per second are the same, in
    runs instead of one at a time. The ticks are at random points of their intervals, not on
    multiples of them: a run of evaluations starts at a random phase of any periodic traffic.
    """
    return guards.tick_after(at, CLOSE_TICK if at - now < CLOSE_TICK else LONG_WAIT)


def _shut_tick(at: float) -> float:
    """The tick a gate closed for the CPU budget until ``at`` (monotonic seconds) reopens on:
    that of the :data:`SHUT_TICK` interval after the one holding ``at``, however far ``at``
    is (:func:`_tick` rounds a wait of CLOSE_TICK or more to a LONG_WAIT tick).

    A shedding budget closes every gate of the probes over their shares, for 10 to 250 ms
    (:data:`SHUT_MAX`) each: on LONG_WAIT ticks those closings kept the waker waking on 30 to
    40 ticks a second in the standing shop, on 100 ms ticks 40 to 50 (with its other
    wake-ups), and a wake-up costs the host's process tens to hundreds of microseconds of CPU
    (a timer, a GIL hand-over) whatever it reopens. On SHUT_TICK ticks, the rate closings'
    ones, the budget adds no wake-up of its own. The share keeps filling while the gate is
    closed, up to :data:`sensor.guards.SHARE_HOLD` seconds' worth (more than the longest
    closing), and is spent in a run once it reopens: a closing loses none of what the share
    pays for.
    """
    return guards.tick_after(at, SHUT_TICK)


def _type_name(tp: type) -> str:
    name = type.__dict__["__qualname__"].__get__(tp)
    module = type.__dict__["__module__"].__get__(tp)
    return str(name) if module == "builtins" else f"{module}.{name}"
