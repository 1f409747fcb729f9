"""The bytecode backend: rebuild the target code with hook calls and swap ``__code__``.

Every function object whose ``__code__`` is the target code (found by one walk of the heap per
change, see :meth:`BytecodeBackend.change`: plain functions, methods, closures, functions behind
``functools.wraps`` decorators) gets the rebuilt code. The rebuild always starts from the
*original* code with every active hook, so probes compose, and removing the last hook puts the
original code object back (the very same object). Injected instructions carry the target
line's number, so tracebacks keep their lines. A line hook is called on exactly the arrivals at
its line that ``sys.settrace`` reports as line events (:mod:`sensor.inject.lines` computes
them; :class:`_LinePlan` places the calls).

What it cannot reach: a frame that is already running (a worker's main loop) or a generator
suspended before the probe was placed keeps executing the old code; closures created later
from the parent's constants get the original code too. sys.monitoring reaches all of these.

Hook call sequences per version (stack-neutral, the result is popped):
3.11 ``PUSH_NULL, LOAD_CONST hook, [arg], PRECALL n, CALL n, POP_TOP``;
3.12 ``PUSH_NULL, LOAD_CONST hook, [arg], CALL n, POP_TOP``;
3.13 ``LOAD_CONST hook, PUSH_NULL, [arg], CALL n, POP_TOP``.
"""

from __future__ import annotations

import contextlib
import dis
import functools
import gc
import logging
import sys
import threading
from collections.abc import Iterator
from itertools import compress, repeat
from operator import is_
from types import CodeType, FunctionType
from typing import Any

from sensor.guards import (
    NOTHING,
    PASSED_ARGS,
    Switch,
    SwitchGroup,
    group_of,
    locals_of,
    sampler_of,
    switch_of,
)
from sensor.inject.bound import bound_at
from sensor.inject.core import Handle, Hook, PlacementFailed
from sensor.inject.funcversion import code_version, set_code
from sensor.inject.lines import LineModel, exception_entries, item_layout
from sensor.probes import Point
from sensor.threads import BUSY, add_mode_listener, checked_next

__all__ = ["BytecodeBackend", "instrument"]

log = logging.getLogger("sensor.inject")

_PY311 = sys.version_info < (3, 12)
_PY313 = sys.version_info >= (3, 13)
_METHOD_WRAPPER = type((0).__add__)
_POP_JUMP_IF_FALSE = "POP_JUMP_FORWARD_IF_FALSE" if _PY311 else "POP_JUMP_IF_FALSE"
_POP_JUMP_IF_TRUE = "POP_JUMP_FORWARD_IF_TRUE" if _PY311 else "POP_JUMP_IF_TRUE"


def _bound_next(hook: Hook) -> object | None:
    """The iterator of a bound ``__next__`` method-wrapper (``it.__next__``), else None."""
    if type(hook) is _METHOD_WRAPPER and getattr(hook, "__name__", None) == "__next__":
        return getattr(hook, "__self__", None)
    return None


def _test(switch: Switch, loc: Any) -> list[Any]:
    """Push ``switch.on`` (an exact bool) for a ``POP_JUMP_IF_...`` to test.

    ``LOAD_CONST switch; LOAD_ATTR on``: the read specialises to ``LOAD_ATTR_SLOT`` on every
    Python, and the jump needs no truth test (3.13's ``TO_BOOL`` is left out: its operand is
    always an exact bool, see :class:`~sensor.guards.Switch`).
    """
    from bytecode import Instr

    return [
        Instr("LOAD_CONST", switch, location=loc),
        Instr("LOAD_ATTR", "on" if _PY311 else (False, "on"), location=loc),
    ]


def _call(hook: Hook, loc: Any, arg: list[Any] | None = None, *, nested: bool = False) -> list[Any]:
    """Instructions calling ``hook`` with no argument or with the instructions in ``arg``.

    A bound ``it.__next__`` with no argument (a counter probe's hook) is called as
    ``next(it)``: the same C call, but the interpreter specializes a builtin call with one
    argument and not a method-wrapper call, so a counter hit costs about one empty call.

    ``next(...)`` is the one call that cannot tell a thread doing sensor work from the host's:
    in the code of a top-level function the backend swaps ``next`` for ``checked_next`` while
    some thread does sensor work (see :mod:`sensor.threads`); ``nested`` code cannot be swapped
    reliably, so it chooses inline (``checked_next(x) if BUSY else next(x)``).
    """
    from bytecode import Instr, Label

    switched = switch_of(hook)
    if switched is not None:
        # A gate's hook: test its switch inline and, while it is closed, count the skip
        # without calling the hook (``if switch: hook() else: next(skips)``).
        switch, skips = switched
        skip, done = Label(), Label()
        seq: list[Any] = _test(switch, loc)
        if skips is None:
            # No skip counter (a lines probe's per-line hooks): a closed switch costs the
            # test and the jump, no call at all.
            seq.append(Instr(_POP_JUMP_IF_FALSE, done, location=loc))
            seq += _plain_call(hook, loc, arg)
            seq.append(done)
            return seq
        seq.append(Instr(_POP_JUMP_IF_FALSE, skip, location=loc))
        seq += _plain_call(hook, loc, arg)
        # (the fallback of guarded locals sits behind the jump the open branch takes anyway)
        seq += [Instr("JUMP_FORWARD", done, location=loc), *_fallback(arg, loc, done), skip]
        seq += _count(skips, loc, nested)
        seq.append(done)
        return seq
    if arg is None:
        iterator = _bound_next(hook)
        if iterator is not None:
            return _next_call(iterator, loc, nested)
    fallback = _fallback(arg, loc, Label())
    if not fallback:
        return _plain_call(hook, loc, arg)
    done = fallback[-1].arg
    return [
        *_plain_call(hook, loc, arg),
        Instr("JUMP_FORWARD", done, location=loc),
        *fallback,
        done,
    ]


def _fallback(arg: list[Any] | None, loc: Any, done: Any) -> list[Any]:
    """The handler of locals passed under guard (3.11, see :func:`_passed_locals`), or [].

    Reached only when a ``LOAD_FAST`` of the guarded range raised (a debugger unbound the
    local): it drops the exception and makes the call with the arguments pushed before the
    range, so that the hook reads the frame, then jumps to ``done``.
    """
    from bytecode import Instr
    from bytecode.instr import TryBegin

    begin = next((item for item in arg or () if isinstance(item, TryBegin)), None)
    if arg is None or begin is None:
        return []
    before = 0
    for item in arg:
        if item is begin:
            break
        before += isinstance(item, Instr)
    return [
        begin.target,
        Instr("POP_TOP", location=loc),
        Instr("PRECALL", before, location=loc),
        Instr("CALL", before, location=loc),
        Instr("POP_TOP", location=loc),
        Instr("JUMP_FORWARD", done, location=loc),
    ]


def _next_call(iterator: object, loc: Any, nested: bool) -> list[Any]:
    """``next(iterator)``; in nested code ``checked_next(iterator) if BUSY else next(iterator)``."""
    from bytecode import Instr, Label

    if not nested:
        return _plain_call(next, loc, [Instr("LOAD_CONST", iterator, location=loc)])
    fast, done = Label(), Label()
    seq: list[Any] = _test(BUSY, loc)
    seq.append(Instr(_POP_JUMP_IF_FALSE, fast, location=loc))
    seq += _plain_call(checked_next, loc, [Instr("LOAD_CONST", iterator, location=loc)])
    seq += [Instr("JUMP_FORWARD", done, location=loc), fast]
    seq += _plain_call(next, loc, [Instr("LOAD_CONST", iterator, location=loc)])
    seq.append(done)
    return seq


def _count(tally: object, loc: Any, nested: bool) -> list[Any]:
    """Count one skipped firing on a gate's ``tally`` with no call: ``for _ in tally: break``.

    ``FOR_ITER`` calls the iterator's C ``__next__`` directly, where ``next(tally)`` pays a
    builtin call (the function and its argument loaded, the argument vector, the references
    dropped): about 90 instructions less per count on 3.13. The count is the same C counter
    either way (:func:`sensor.guards.tally_count` reads it). A tally that ran out (after
    ``sys.maxsize`` counts) ends the loop and the code runs on. In the checked variant of
    top-level code the constant is swapped for :func:`_checked_tally` (see
    :func:`_checked_copy`); nested code chooses between the two inline, as :func:`_call` does.
    """
    from bytecode import Instr, Label

    if nested:
        fast, done = Label(), Label()
        seq: list[Any] = _test(BUSY, loc)
        seq.append(Instr(_POP_JUMP_IF_FALSE, fast, location=loc))
        seq += _count(_checked_tally(tally), loc, False)
        seq += [Instr("JUMP_FORWARD", done, location=loc), fast]
        seq += _count(tally, loc, False)
        seq.append(done)
        return seq
    ended, done = Label(), Label()
    # [tally] -> [tally, None] -> []; ended: FOR_ITER dropped the tally and jumps past the
    # END_FOR (and, 3.13, the POP_TOP) that a loop's exit has at its target.
    seq = [
        Instr("LOAD_CONST", tally, location=loc),
        Instr("FOR_ITER", done if _PY311 else ended, location=loc),
        Instr("POP_TOP", location=loc),
        Instr("POP_TOP", location=loc),
    ]
    if not _PY311:
        seq += [Instr("JUMP_FORWARD", done, location=loc), ended, Instr("END_FOR", location=loc)]
        if _PY313:
            seq.append(Instr("POP_TOP", location=loc))
    seq.append(done)
    return seq


def _gate_runs(hooks: list[Hook]) -> list[tuple[int, int, SwitchGroup]]:
    """The runs of two or more consecutive gates in ``hooks`` whose switches form a group.

    (start, end, group) for ``hooks[start:end]``: gates that count their closed skips (a
    switch and a tally, see :func:`~sensor.guards.switch_of`) and whose switches
    :func:`~sensor.guards.group_of` groups. Other hooks, and a run that cannot be grouped, are
    called one by one as before, in the same order.
    """
    runs: list[tuple[int, int, SwitchGroup]] = []
    switches: list[Switch] = []
    for i, hook in enumerate([*hooks, None]):
        pair = None if hook is None else switch_of(hook)
        if pair is not None and pair[1] is not None:
            switches.append(pair[0])
            continue
        group = group_of(switches)  # (None for fewer than two)
        if group is not None:
            runs.append((i - len(switches), i, group))
        switches = []
    return runs


def _grouped(
    calls: list[list[Any]], runs: list[tuple[int, int, SwitchGroup]], loc: Any, nested: bool
) -> list[Any]:
    """The hooks' calls at one point, each run of grouped gates behind its group's one test.

    ``if group.on: <each gate's own test and call, as alone> else: <one skip on the group's
    tally>``: while every gate of the run is closed (a standing point's usual state) a firing
    costs one test and one count instead of one of each per gate; each gate's closed count
    includes the group's (:func:`~sensor.guards.closed_count_of`).
    """
    from bytecode import Instr, Label

    out: list[Any] = []
    done_upto = 0
    for start, end, group in runs:
        for seq in calls[done_upto:start]:
            out += seq
        skip, done = Label(), Label()
        out += _test(group, loc)
        out.append(Instr(_POP_JUMP_IF_FALSE, skip, location=loc))
        for seq in calls[start:end]:
            out += seq
        out += [Instr("JUMP_FORWARD", done, location=loc), skip]
        out += _count(group.tally, loc, nested)
        out.append(done)
        done_upto = end
    for seq in calls[done_upto:]:
        out += seq
    return out


#: What a checked tally's iterator returns: never (its loop never ends).
_NEVER = object()


def _checked_tally(tally: object) -> object:
    """An iterator whose every step is ``checked_next(tally)`` (see :func:`_count`).

    It ends when ``tally`` runs out (the ``StopIteration`` of ``checked_next`` ends a
    callable's iterator): the loop then ends as the tally's own would.
    """
    return iter(functools.partial(checked_next, tally), _NEVER)


def _counted_consts(code: CodeType) -> set[int]:
    """Indexes of the constants that :func:`_count` loops over (``LOAD_CONST; FOR_ITER``).

    The compiler puts ``GET_ITER`` before every loop of its own: only our counts load the
    iterator as a constant.
    """
    found: set[int] = set()
    previous: Any = None
    for ins in dis.get_instructions(code):
        if ins.opname == "EXTENDED_ARG":
            continue
        if ins.opname == "FOR_ITER" and previous is not None and previous.opname == "LOAD_CONST":
            found.add(previous.arg)
        previous = ins
    return found


def _checked_copy(code: CodeType) -> CodeType:
    """``code`` with ``next`` replaced by ``checked_next`` and counted tallies checked too.

    The same instructions: only constants change (no rebuild needed).
    """
    consts = code.co_consts
    counted = _counted_consts(code)
    if not counted and not any(const is next for const in consts):
        return code
    return code.replace(
        co_consts=tuple(
            checked_next if c is next else _checked_tally(c) if i in counted else c
            for i, c in enumerate(consts)
        )
    )


def _plain_call(hook: Hook, loc: Any, arg: list[Any] | None) -> list[Any]:
    from bytecode import Instr

    # Each instruction of ``arg`` pushes one argument (the probe's value, the passed locals);
    # the other items are the guard of passed locals on 3.11 (see _passed_locals).
    nargs = 0 if arg is None else sum(isinstance(item, Instr) for item in arg)
    if _PY313:
        seq = [Instr("LOAD_CONST", hook, location=loc), Instr("PUSH_NULL", location=loc)]
    else:
        seq = [Instr("PUSH_NULL", location=loc), Instr("LOAD_CONST", hook, location=loc)]
    seq += arg or []
    if _PY311:
        seq.append(Instr("PRECALL", nargs, location=loc))
    seq += [Instr("CALL", nargs, location=loc), Instr("POP_TOP", location=loc)]
    return seq


class _LinePlan:
    """Edits that put line hooks on exactly the arrivals sys.settrace reports (see lines.py).

    At an instruction where every arrival is a line event, the hooks go right before it
    (after its labels, so jumps run them too). Where only some are, the hooks sit between two
    new labels, ``fire: hooks; skip: instruction``: each jump (and each exception handler
    entry) that is a line event is sent to ``fire``, the others to ``skip``; if running on
    from the previous instruction is not a line event, a ``JUMP_FORWARD skip`` goes after it.
    An exception range whose instructions reach a handler as a line event from some lines
    and not from others is split by line, each part sent to its own label.
    """

    def __init__(self) -> None:
        self.before: dict[int, list[Any]] = {}  # op index -> items right before it
        self.after: dict[int, list[Any]] = {}  # op index -> items right after it
        self.retarget: dict[int, Any] = {}  # op index of a jump -> its new label
        self.handler: dict[int, Any] = {}  # id(TryBegin) -> its new target label
        self.split: dict[int, dict[int, Any]] = {}  # id(TryBegin) -> op index -> label


def _unsafe_at(model: LineModel, index: int) -> str | None:
    """Why nothing may be inserted right before instruction ``index``, if so."""
    ops = model.ops
    op = ops[index]
    if op.opname in ("END_FOR", "END_SEND", "END_ASYNC_FOR", "RESUME"):
        return f"{op.opname} must directly follow the instruction before it"
    previous = [o.opname for o in ops[max(0, index - 2) : index]]
    if _PY313 and previous[-1:] == ["END_FOR"]:
        return "an exhausted loop lands right after END_FOR and POP_TOP"
    if previous[-1:] == ["KW_NAMES"] or previous == ["KW_NAMES", "PRECALL"]:
        return "a call cannot be made between KW_NAMES and the CALL it names arguments for"
    return None


def _plan_lines(
    code: CodeType,
    model: LineModel,
    items: list[Any],
    ops_at: list[int],
    hooks: dict[int, list[Hook]],
    nested: bool = False,
) -> _LinePlan:
    from bytecode import Instr, Label
    from bytecode.instr import TryBegin

    names = [items[k].name for k in ops_at]
    if names != [op.opname for op in model.ops]:
        raise PlacementFailed(
            f"the bytecode package and dis read {code.co_qualname} differently "
            f"({len(names)} and {len(model.ops)} instructions): its lines cannot be placed exactly"
        )
    # The op each label (so each jump and handler) leads to; the exception range of each op.
    _, label_op, try_of = item_layout(items)
    range_of = {i: id(entry) for i, entry in enumerate(try_of) if entry is not None}
    try_begins = [item for item in items if isinstance(item, TryBegin)]

    plan = _LinePlan()
    # An expectation's hook is handed the locals it reads, as at the entry and the returns
    # (see _passed_locals): where all are bound right before the line's first instruction.
    # Calls that reach it through a retargeted jump or handler come from paths that reach
    # that instruction, so the same proof holds for them.
    proofs: dict[int, list[bool] | None] = {}

    def line_args(hook: Hook, op: int, loc: Any) -> list[Any] | None:
        wanted = locals_of(hook)
        if wanted is None:
            return None
        if id(hook) not in proofs:
            proofs[id(hook)] = bound_at(code, items, wanted)
        passed = _passed_locals(wanted, proofs[id(hook)], op, loc)
        return None if passed is None else [Instr("LOAD_CONST", NOTHING, location=loc), *passed]

    for line, line_hooks in hooks.items():
        refusal = model.refusal(line)
        if refusal is not None:
            raise PlacementFailed(refusal)
        for target, arrivals in model.starts_of(line).items():
            unsafe = _unsafe_at(model, target)
            if unsafe is not None:
                raise PlacementFailed(
                    f"line {line} of {code.co_qualname} cannot be probed exactly by bytecode "
                    f"injection: {unsafe}"
                )
            instr = items[ops_at[target]]
            calls = [
                ins
                for hook in line_hooks
                for ins in _call(
                    hook,
                    instr.location,
                    line_args(hook, target, instr.location),
                    nested=nested,
                )
            ]
            if all(a.fires for a in arrivals):
                plan.before.setdefault(target, []).extend(calls)
                continue
            by_next = {a.fires for a in arrivals if a.kind == "next"}
            if len(by_next) > 1:
                raise PlacementFailed(
                    f"line {line} of {code.co_qualname} cannot be probed exactly by bytecode "
                    "injection: it is reached by position both as a new line and not"
                )
            fire, skip = Label(), Label()
            plan.before.setdefault(target, []).extend([fire, *calls, skip])
            if by_next == {False}:
                previous = items[ops_at[target - 1]]
                plan.after.setdefault(target - 1, []).append(
                    Instr("JUMP_FORWARD", skip, location=previous.location)
                )
            for a in arrivals:
                if a.kind == "jump":
                    jump = items[ops_at[a.source]]
                    if label_op.get(id(jump.arg)) == target:
                        plan.retarget[a.source] = fire if a.fires else skip
            raising = {a.source: a.fires for a in arrivals if a.kind == "raise"}
            if raising:
                for begin in try_begins:
                    if label_op.get(id(begin.target)) != target:
                        continue
                    covered = {
                        i: raising.get(i, False) for i, e in range_of.items() if e == id(begin)
                    }
                    verdicts = set(covered.values())
                    if len(verdicts) == 1:
                        plan.handler[id(begin)] = fire if verdicts == {True} else skip
                    else:
                        # Which line raised decides: one range per run of equal verdicts.
                        plan.split[id(begin)] = {
                            i: fire if fires else skip for i, fires in covered.items()
                        }
    return plan


#: Instructions after which execution never runs on into the next one.
_TERMINATORS = frozenset(
    {
        "RETURN_VALUE",
        "RETURN_CONST",
        "RERAISE",
        "RAISE_VARARGS",
        "JUMP_FORWARD",
        "JUMP_BACKWARD",
        "JUMP_BACKWARD_NO_INTERRUPT",
        "JUMP",
        "JUMP_NO_INTERRUPT",
    }
)


def _sampled_only(point: Point, hook: Hook) -> Switch | None:
    """The switch of a hook that does nothing while its switch is closed, else None.

    Such hooks (``switched`` with no skip counter: a lines probe's per-line and exit hooks, a
    replay probe's exit hooks) only act on a sampled call, whose entry opens the switch.
    """
    if point is Point.ENTRY:
        return None
    pair = switch_of(hook)
    if pair is None or pair[1] is not None:
        return None
    switch: Switch = pair[0]
    return switch


def instrument(
    code: CodeType, hooks: list[tuple[Point, int | None, Hook]], *, nested: bool = False
) -> CodeType:
    """A copy of ``code`` calling each hook at its point; raise PlacementFailed if impossible.

    ``nested``: the code of a function nested in another one (see :func:`_call`).

    With line hooks that only act on sampled calls (a lines probe's), the copy holds two
    bodies: the original body (with every other hook) and the instrumented one (with all of
    them), and right after the entry hooks one inline test per such switch chooses: a call
    that is not sampled runs the original body and pays that test once, however many lines it
    runs. Both bodies keep the original locals, cells, line numbers and exception table
    entries (each copy its own), so tracebacks and ``f_lineno`` read the same in either.
    """
    from bytecode import Bytecode, Instr, Label

    switches: list[Switch] = []
    sampled_lines = False
    for point, _, hook in hooks:
        switch = _sampled_only(point, hook)
        if switch is not None:
            if all(s is not switch for s in switches):
                switches.append(switch)
            sampled_lines = sampled_lines or point is Point.LINE
    bc, full, cut, unwind, first_loc, line_hooks, _ = _body(code, hooks, nested)
    out: list[Any] | None = None
    if sampled_lines:
        plain_hooks = [h for h in hooks if _sampled_only(h[0], h[2]) is None]
        sampled = Label()
        # The entry gate that opens the one switch, if it tests its own switch inline: its
        # skip path (a call that is not sampled) runs on into the original body, so between
        # samples a call pays the closed gate and nothing more.
        sampler = next(
            (
                hook
                for point, _, hook in plain_hooks
                if point is Point.ENTRY
                and len(switches) == 1
                and sampler_of(hook) is switches[0]
                and (switch_of(hook) or (None, None))[1] is not None
            ),
            None,
        )
        choose = None if sampler is None else (sampler, switches[0], sampled)
        _, plain, plain_cut, plain_unwind, _, _, gate_after = _body(
            code, plain_hooks, nested, True, choose
        )
        if _can_split(plain, plain_cut) and _can_split(full, cut):
            test: list[Any] = []
            if choose is None:
                for switch in switches:
                    test += _test(switch, first_loc)
                    test.append(Instr(_POP_JUMP_IF_TRUE, sampled, location=first_loc))
            # (the gate's open path after the original body, which ends in a terminator)
            head = plain[:plain_cut] + test + plain[plain_cut:] + gate_after
            if plain_unwind:
                head = _cover_with_handler(head, plain_unwind, first_loc, code, nested)
            tail = [sampled, *full[cut:]]
            if unwind:
                tail = _cover_with_handler(tail, unwind, first_loc, code, nested, at_start=True)
            out = head + tail
    if out is None:
        out = full
        if unwind:
            out = _cover_with_handler(out, unwind, first_loc, code, nested)

    bc2 = Bytecode(out)
    for attr in (
        "name",
        "qualname",
        "filename",
        "first_lineno",
        "argcount",
        "posonlyargcount",
        "kwonlyargcount",
        "flags",
        "argnames",
        "cellvars",
        "freevars",
        "docstring",
    ):
        if hasattr(bc, attr):
            setattr(bc2, attr, getattr(bc, attr))
    try:
        # Line hooks move jumps and handlers between new labels and may split exception
        # ranges: the handlers keep the depths of the original table (set in _body) rather
        # than the package's estimate from the least depth inside each range. Without line
        # hooks the package recomputes them, as it always did.
        new = bc2.to_code(compute_exception_stack_depths=not line_hooks)
    except Exception as exc:
        raise PlacementFailed(f"rebuilding {code.co_qualname} failed: {exc}") from exc
    return new


def _choosing_gate(
    hook: Hook, switch: Switch, sampled: Any, loc: Any, nested: bool
) -> tuple[list[Any], list[Any]]:
    """An entry gate that also chooses the body: the original one unless the call was sampled.

    ``if gate_switch: hook(); if switch: goto sampled / else: next(skips)``, then the original
    body. Returns the part placed at entry and the part placed after the original body.

    A closed gate (between samples: every call but a few a second) tests its switch, counts
    its skip and runs straight on into the original body: no jump taken, no further test.
    The open path (the hook, which opens ``switch`` if it sampled the call) and the end of a
    tally that ran out are placed after the original body and jump back to its start; they
    run a few times a second. (Placed inline, the open path had to be jumped over: one more
    instruction on every call between samples.)
    """
    from bytecode import Instr, Label

    pair = switch_of(hook)
    assert pair is not None
    assert pair[1] is not None
    gate_switch, skips = pair
    opened, plain = Label(), Label()
    entry: list[Any] = _test(gate_switch, loc)
    entry.append(Instr(_POP_JUMP_IF_TRUE, opened, location=loc))
    after: list[Any] = [opened, *_plain_call(hook, loc, None)]
    after += _test(switch, loc)
    after += [
        Instr(_POP_JUMP_IF_TRUE, sampled, location=loc),
        Instr("JUMP_BACKWARD", plain, location=loc),
    ]
    if nested or _PY311:
        # Nested code chooses between two tallies inline (see _count); on 3.11 a tally that
        # ran out jumps straight to the body.
        entry += _count(skips, loc, nested)
    else:
        # [tally] -> [tally, None] -> []; a tally that ran out: FOR_ITER drops it and jumps
        # past the END_FOR (and, 3.13, the POP_TOP) at its target, then back to the body.
        ended = Label()
        entry += [
            Instr("LOAD_CONST", skips, location=loc),
            Instr("FOR_ITER", ended, location=loc),
            Instr("POP_TOP", location=loc),
            Instr("POP_TOP", location=loc),
        ]
        after += [ended, Instr("END_FOR", location=loc)]
        if _PY313:
            after.append(Instr("POP_TOP", location=loc))
        after.append(Instr("JUMP_BACKWARD", plain, location=loc))
    entry.append(plain)
    return entry, after


def _passed_locals(
    wanted: tuple[str, ...] | None,
    bound: list[bool] | None,
    op: int,
    loc: Any,
    depth: int | None = None,
) -> list[Any] | None:
    """The arguments after its own of a hook that takes locals (see guards.locals_of), or None.

    An expectation's hook is handed the values of the locals it reads, so that it reads no
    ``frame.f_locals`` (a copy of every local on 3.11 and 3.12): ``LOAD_FAST`` of each where
    :func:`~sensor.inject.bound.bound_at` proves them all bound at ``op``; anywhere else none
    (the hook reads the frame then: the same outcome, an unbound name's error included).
    ``LOAD_FAST`` runs no user code. On 3.13 every call gets the hook's own argument count
    (``NOTHING`` for the rest): 3.13 specialises only such a call of a Python function, where
    3.11 and 3.12 also specialise one that leaves defaults, which is cheaper than pushing them.

    On 3.11 a debugger can still unbind a proven local: a trace function's changes to
    ``frame.f_locals`` are written back into the frame (``PyFrame_LocalsToFast``), a deleted
    name included, and 3.11's ``LOAD_FAST`` raises on it. There the loads are given an
    exception range of their own (``depth``: the stack depth under them) whose handler calls
    the hook without them (see :func:`_fallback`): the hook reads the frame and reports the
    missing name, as it would without passing. The range costs nothing while no exception is
    raised (3.11's exception table); the handler sits behind a jump the call site has anyway.
    A call site inside one of the code's own exception ranges (the ranges cannot nest) or
    with no ``depth`` given is not passed anything on 3.11. 3.12 writes None into a deleted
    local and 3.13 refuses the deletion, so neither can unbind one.
    """
    from bytecode import Instr, Label
    from bytecode.instr import TryBegin, TryEnd

    if wanted is None:
        return None
    seq: list[Any] = []
    if bound is not None and bound[op] and not (_PY311 and depth is None):
        seq = [Instr("LOAD_FAST", name, location=loc) for name in wanted]
        if _PY311 and depth is not None:
            begin = TryBegin(Label(), push_lasti=False, stack_depth=depth)
            seq = [begin, *seq, TryEnd(begin)]
    if _PY313:
        seq += [Instr("LOAD_CONST", NOTHING, location=loc)] * (PASSED_ARGS - len(seq))
    return seq or None


def _can_split(items: list[Any], cut: int) -> bool:
    """True when a body can be entered by a jump to ``items[cut]`` and never runs past its end.

    No exception range may be open at the cut (a jump would enter it from outside), and the
    last instruction must not run on into whatever follows the body.
    """
    from bytecode import Instr
    from bytecode.instr import TryBegin, TryEnd

    open_ranges = 0
    for item in items[:cut]:
        if isinstance(item, TryBegin):
            open_ranges += 1
        elif isinstance(item, TryEnd):
            open_ranges -= 1
    last = next((item for item in reversed(items) if isinstance(item, Instr)), None)
    return open_ranges == 0 and last is not None and last.name in _TERMINATORS


def _body(
    code: CodeType,
    hooks: list[tuple[Point, int | None, Hook]],
    nested: bool,
    keep_depths: bool = False,
    choose: tuple[Hook, Switch, Any] | None = None,
) -> tuple[Any, list[Any], int, list[Hook], Any, bool, list[Any]]:
    """The items of ``code`` with ``hooks`` placed, except the exception hooks' handler.

    Returns the package's reading of the code, the items, the index of the first item after
    the entry hooks (where the body proper starts), the exception (unwind) hooks, the
    location of the ``def`` line, whether line hooks were placed, and the part of the
    choosing gate that goes after the body (empty without ``choose``). ``keep_depths`` keeps
    the original exception table depths even without line hooks (see _keep_handler_depths).
    ``choose`` (gate hook, switch, label): the gate goes last among the entry hooks, and a
    call it admits jumps to ``label`` when it opened ``switch`` (see :func:`_choosing_gate`).
    """
    from bytecode import Bytecode, Instr
    from bytecode.instr import InstrLocation, TryBegin, TryEnd

    try:
        bc = Bytecode.from_code(code)
    except Exception as exc:
        raise PlacementFailed(
            f"the bytecode package cannot read {code.co_qualname}: {exc}"
        ) from exc
    items: list[Any] = list(bc)
    ops_at = [k for k, item in enumerate(items) if isinstance(item, Instr)]
    resume = next((i for i, k in enumerate(ops_at) if items[k].name == "RESUME"), None)
    if resume is None:
        raise PlacementFailed(f"{code.co_qualname} has no RESUME instruction to anchor on")
    first_loc = InstrLocation(code.co_firstlineno, code.co_firstlineno, None, None)

    after_resume: list[Any] = []
    returns: dict[int, list[Any]] = {}  # op index -> return hooks right before it
    line_hooks: dict[int, list[Hook]] = {}
    unwind_hooks: list[Hook] = []
    return_hooks: list[tuple[Hook, tuple[str, ...] | None, list[bool] | None]] = []
    # 3.11: the sites inside one of the code's own exception ranges (see _passed_locals).
    in_range = [entry is not None for entry in item_layout(items)[2]] if _PY311 else None
    for point, line, hook in hooks:
        # The locals an expectation's hook takes as arguments (see _passed_locals).
        wanted = locals_of(hook)
        bound = None if wanted is None else bound_at(code, items, wanted)
        if bound is not None and in_range is not None:
            bound = [ok and not inside for ok, inside in zip(bound, in_range, strict=True)]
        if point is Point.ENTRY:
            if choose is None or hook is not choose[0]:
                # (under the loads: NULL, the hook, NOTHING; the stack is empty at RESUME)
                passed = _passed_locals(wanted, bound, resume, first_loc, 3)
                arg = None if passed is None else [
                    Instr("LOAD_CONST", NOTHING, location=first_loc), *passed
                ]  # fmt: skip
                after_resume += _call(hook, first_loc, arg, nested=nested)
        elif point is Point.LINE:
            assert line is not None
            line_hooks.setdefault(line, []).append(hook)
        elif point is Point.RETURN:
            return_hooks.append((hook, wanted, bound))
        else:
            unwind_hooks.append(hook)
    if return_hooks:
        # Runs of gates whose switches form a group: one test while all of them are closed.
        runs = _gate_runs([hook for hook, _, _ in return_hooks])
        found = False
        for i in range(resume + 1, len(ops_at)):
            ins = items[ops_at[i]]
            if ins.name not in ("RETURN_VALUE", "RETURN_CONST"):
                continue
            calls: list[list[Any]] = []
            for hook, wanted, bound in return_hooks:
                if ins.name == "RETURN_VALUE":
                    # [value] -> [value, (NULL, hook | hook, NULL), value] -> call -> [value]
                    arg = [Instr("COPY", 3, location=ins.location)]
                else:
                    arg = [Instr("LOAD_CONST", ins.arg, location=ins.location)]
                # (under the loads: the value, NULL, the hook, its copy: a return leaves
                # only its value on the stack)
                arg += _passed_locals(wanted, bound, i, ins.location, 4) or ()
                calls.append(_call(hook, ins.location, arg, nested=nested))
            returns[i] = _grouped(calls, runs, ins.location, nested)
            found = True
        if not found:
            raise PlacementFailed(f"{code.co_qualname} has no return instruction")
    gate_after: list[Any] = []
    if choose is not None:
        gate_entry, gate_after = _choosing_gate(*choose, first_loc, nested)
        after_resume += gate_entry
    plan = _LinePlan()
    if line_hooks:
        model = LineModel(code)
        plan = _plan_lines(code, model, items, ops_at, line_hooks, nested)
        _keep_handler_depths(code, model, items)
    elif keep_depths:
        _keep_handler_depths(code, LineModel(code), items)

    out: list[Any] = []
    cut = 0
    op_index = 0
    # A split exception range: (the original TryBegin, op index -> label), and its open part.
    split: tuple[Any, dict[int, Any]] | None = None
    part: Any = None
    for item in items:
        if isinstance(item, TryBegin):
            if id(item) in plan.split:
                split, part = (item, plan.split[id(item)]), None
                continue
            if id(item) in plan.handler:
                item.target = plan.handler[id(item)]
        elif isinstance(item, TryEnd) and split is not None and item.entry is split[0]:
            if part is not None:
                out.append(TryEnd(part))
            split = part = None
            continue
        elif isinstance(item, Instr):
            if split is not None:
                begin, labels = split
                want = labels[op_index]
                if part is None or part.target is not want:
                    if part is not None:
                        out.append(TryEnd(part))
                    part = TryBegin(want, begin.push_lasti, begin.stack_depth)
                    out.append(part)
            out.extend(plan.before.get(op_index, ()))
            out.extend(returns.get(op_index, ()))
            if op_index in plan.retarget:
                item.arg = plan.retarget[op_index]
            out.append(item)
            if op_index == resume:
                out.extend(after_resume)
                cut = len(out)
            out.extend(plan.after.get(op_index, ()))
            op_index += 1
            continue
        out.append(item)
    return bc, out, cut, unwind_hooks, first_loc, bool(line_hooks), gate_after


def _keep_handler_depths(code: CodeType, model: LineModel, items: list[Any]) -> None:
    """Give each exception range the stack depth of the code's own exception table.

    The bytecode package reads every range with depth 0 and, when it writes the code,
    estimates each depth from the least stack depth inside the range: a range split by line
    (see :class:`_LinePlan`) can start deeper than its handler expects, and a handler moved to
    a new label is analysed through new paths. So with line hooks the depths are taken from
    the original table and kept (our own ``@exception`` handler's range keeps the 0 it is
    given).
    """
    from bytecode import Instr
    from bytecode.instr import TryBegin

    entries = exception_entries(code)
    pending: list[Any] = []
    op_index = 0
    for item in items:
        if isinstance(item, TryBegin):
            pending.append(item)
        elif isinstance(item, Instr):
            offset = model.ops[op_index].offset
            for begin in pending:
                entry = next((e for e in entries if e.start <= offset < e.end), None)
                if entry is None or entry.lasti != begin.push_lasti:
                    raise PlacementFailed(
                        f"the exception table of {code.co_qualname} does not match the "
                        f"bytecode package's reading at offset {offset}"
                    )
                begin.stack_depth = entry.depth
            pending.clear()
            op_index += 1


def _cover_with_handler(
    out: list[Any],
    hooks: list[Hook],
    loc: Any,
    code: CodeType,
    nested: bool = False,
    *,
    at_start: bool = False,
) -> list[Any]:
    """Cover every instruction outside the code's own try ranges with a handler calling hooks.

    An exception reaching the handler is leaving the function (nothing else would catch it):
    the handler calls each hook with the exception and re-raises it with the original
    ``lasti`` (``RERAISE 1``), so the traceback and ``f_lineno`` are untouched.
    Coverage starts after RESUME, or at the first instruction with ``at_start`` (the
    instrumented body of a two-body code, which has no RESUME of its own).
    """
    from bytecode import Instr, Label
    from bytecode.instr import TryBegin, TryEnd

    handler = Label()
    result: list[Any] = []
    depth = 0  # inside one of the code's own try ranges
    ours: TryBegin | None = None
    started = at_start
    for ins in out:
        if isinstance(ins, TryBegin):
            if ours is not None:
                result.append(TryEnd(ours))
                ours = None
            depth += 1
            result.append(ins)
            continue
        if isinstance(ins, TryEnd):
            depth -= 1
            result.append(ins)
            continue
        if isinstance(ins, Instr) and not started:
            result.append(ins)
            if ins.name == "RESUME":
                started = True
            continue
        if depth == 0 and ours is None and isinstance(ins, Instr):
            ours = TryBegin(handler, push_lasti=True, stack_depth=0)
            result.append(ours)
        result.append(ins)
    if ours is not None:
        result.append(TryEnd(ours))
    result.append(handler)
    # Stack at the handler: [lasti, exc].
    for hook in hooks:
        result += _call(hook, loc, [Instr("COPY", 3, location=loc)], nested=nested)
    result.append(Instr("RERAISE", 1, location=loc))
    return result


class _Target:
    __slots__ = (
        "checked",
        "fast",
        "functions",
        "handles",
        "numbers",
        "original",
        "parents",
        "versions",
    )

    def __init__(self, original: CodeType) -> None:
        self.original = original
        self.functions: list[FunctionType] = []
        # The rebuilt code installed now: closures made from a patched parent run it.
        self.versions: list[CodeType] = []
        # The two variants of the rebuilt code (the same object for nested code, and for code
        # with no ``next`` call): see BytecodeBackend.set_checked.
        self.fast: CodeType = original
        self.checked: CodeType = original
        self.handles: list[Handle] = []
        # Original code objects whose constants hold this one (nested functions only).
        self.parents: list[CodeType] = []
        # The function version (3.13) of ``fast`` and of ``checked``: see sensor.inject.funcversion.
        self.numbers: tuple[int, int] = (0, 0)


class _Change:
    """The state of one change (see :meth:`BytecodeBackend.change`)."""

    __slots__ = ("built", "dirty", "links", "walked")

    def __init__(self) -> None:
        # Targets whose hooks changed, in order: rebuilt and swapped once, when the change ends.
        self.dirty: list[_Target] = []
        # id(original code) -> (the hooks, nested, the instrumented code): the build that arm()
        # made to validate a hook, reused at the swap when the target's hooks are still those.
        self.built: dict[int, tuple[tuple[Handle, ...], bool, CodeType]] = {}
        # filename -> (parent links, the function objects of that file), from one heap scan.
        self.links: dict[str, tuple[dict[int, list[CodeType]], list[FunctionType]]] = {}
        # id(original code) of the targets whose function objects this change has looked up.
        self.walked: set[int] = set()


#: Objects looked at in one C call of a heap scan (a few milliseconds): the interpreter can
#: hand the GIL to another thread between two of them.
_SCAN_CHUNK = 50_000


def _functions_in(filename: str) -> list[FunctionType]:
    """Every function object whose code comes from ``filename``, in one heap scan.

    ``gc.get_objects()`` is one C call over the heap (as long as one ``gc.get_referrers``);
    picking the function objects out of it is done a slice at a time at C speed, and between
    two slices the interpreter may switch threads (every ``sys.getswitchinterval()``), so the
    host's threads run meanwhile. The references to the heap's objects are dropped a slice at
    a time too (dropping them all is another pass over the heap).
    """
    objects = gc.get_objects()
    found: list[FunctionType] = []
    try:
        for start in range(0, len(objects), _SCAN_CHUNK):
            chunk = objects[start : start + _SCAN_CHUNK]
            found += compress(chunk, map(is_, map(type, chunk), repeat(FunctionType)))
            del chunk
    finally:
        while objects:
            del objects[-_SCAN_CHUNK:]
    return [fn for fn in found if fn.__code__.co_filename == filename]


def _nested_paths(code: CodeType, want: CodeType, path: list[CodeType]) -> list[list[CodeType]]:
    """Every chain of constants from ``code`` down to ``want`` (excluding ``want``)."""
    found: list[list[CodeType]] = []
    for const in code.co_consts:
        if const is want:
            found.append([*path, code])
        elif isinstance(const, CodeType):
            found += _nested_paths(const, want, [*path, code])
    return found


class BytecodeBackend:
    """Hooks injected as calls into a rebuilt copy of the target code.

    A nested function's code is also a constant of its parent: closures made *later* come from
    there. So when a nested code is rebuilt, its parent (and the parent's parent, up to code that
    function objects run) is rebuilt with the new constant, and put back when the last hook goes.
    """

    name = "bytecode"
    frame_depth = 1
    reaches_running_frames = False
    dispatch_codes: frozenset[CodeType] = frozenset()

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._targets: dict[int, _Target] = {}  # id(original code) -> target
        self._rebuilt: dict[int, CodeType] = {}  # id(rebuilt code) -> original code
        self._subst: dict[int, CodeType] = {}  # id(original nested code) -> its rebuilt code
        # True while some thread does sensor work: functions run their checked variant.
        self._checked = add_mode_listener(self)
        # Thread ident -> the change that thread is making (see change()).
        self._changes: dict[int, _Change] = {}

    def set_checked(self, checked: bool, *, force: bool = False) -> None:
        """Give every instrumented function the variant of its code for this mode.

        Called by :mod:`sensor.threads` when the first thread starts sensor work (True) and
        when the last one stops (False), before that thread goes on; ``force`` (after fork)
        assigns every function's code again even if the mode did not change.
        """
        with self._lock:
            if checked == self._checked and not force:
                return
            self._checked = checked
            for target in list(self._targets.values()):
                if target.fast is target.checked and not force:
                    continue
                code = target.checked if checked else target.fast
                number = target.numbers[1] if checked else target.numbers[0]
                for fn in target.functions:
                    set_code(fn, code, number)

    def original_code(self, code: CodeType) -> CodeType:
        return self._rebuilt.get(id(code), code)

    def armed_count(self) -> int:
        return sum(len(t.handles) for t in self._targets.values())

    @contextlib.contextmanager
    def change(self) -> Iterator[None]:
        """One change: the hooks armed and disarmed inside it are installed together at its end.

        The engine places (or removes) all the hooks of one probe inside one change: a ``lines``
        probe is a hook per line. Each code object is then rebuilt and swapped into its function
        objects once, and the heap is walked once per change to find those function objects,
        instead of once per hook and once more per parent code (``gc.get_referrers`` walks every
        object the collector tracks with the GIL held: no thread of the host runs meanwhile).
        Changes nest; a hook armed outside one is a change of its own. Each thread makes its
        own; the backend's lock is not held in between (the engine builds hooks meanwhile, and
        a thread that starts sensor work takes that lock in :meth:`set_checked`).
        """
        ident = threading.get_ident()
        if ident in self._changes:
            yield
            return
        change = self._changes[ident] = _Change()
        try:
            yield
        finally:
            with self._lock:
                self._changes.pop(ident, None)
                self._flush(change)

    def _current(self) -> _Change:
        return self._changes[threading.get_ident()]

    def _parent_links(self, child: CodeType, change: _Change) -> dict[int, list[CodeType]]:
        """id(original code) -> its parents' original codes, for every path down to ``child``.

        Code objects are not tracked by the garbage collector, so the parents are found from the
        function objects of the same file: one heap scan per file and change (see
        :func:`_functions_in`), whose function objects also serve :meth:`_find_functions`.
        """
        cached = change.links.get(child.co_filename)
        if cached is None:
            cached = ({}, _functions_in(child.co_filename))
            change.links[child.co_filename] = cached
        links, functions = cached
        seen: set[int] = set()
        for fn in functions:
            top = self.original_code(fn.__code__)
            if id(top) in seen or top is child:
                continue
            seen.add(id(top))
            for path in _nested_paths(top, child, []):
                for parent, kid in zip(path, [*path[1:], child], strict=True):
                    kids_parents = links.setdefault(id(kid), [])
                    if all(p is not parent for p in kids_parents):
                        kids_parents.append(parent)
        return links

    def _target(self, original: CodeType, links: dict[int, list[CodeType]]) -> _Target:
        """The target of ``original`` and of its parents, their function objects looked up."""
        chain: list[_Target] = []
        pending = [original]
        while pending:
            code = pending.pop()
            target = self._targets.get(id(code))
            if target is None:
                target = _Target(code)
                self._targets[id(code)] = target
            if all(t is not target for t in chain):
                chain.append(target)
            for parent in links.get(id(code), ()):
                if all(p is not parent for p in target.parents):
                    target.parents.append(parent)
                if all(t.original is not parent for t in chain):
                    pending.append(parent)
        change = self._current()
        self._find_functions([t for t in chain if id(t.original) not in change.walked], change)
        return chain[0]

    def _find_functions(self, targets: list[_Target], change: _Change) -> None:
        """Add the function objects made since the last change that run these targets' code.

        One heap walk for all of them (and all their versions): the functions of the file from
        this change's scan if there was one (nested code), else one ``gc.get_referrers``.
        """
        if not targets:
            return
        codes = {id(c) for t in targets for c in (t.original, *t.versions)}
        scanned = change.links.get(targets[0].original.co_filename)
        if scanned is not None:
            candidates: list[Any] = scanned[1]
        else:
            candidates = gc.get_referrers(*(c for t in targets for c in (t.original, *t.versions)))
        change.walked.update(id(t.original) for t in targets)
        by_code: dict[int, _Target] = {}
        for target in targets:
            for code in (target.original, *target.versions):
                by_code[id(code)] = target
        known = {id(fn) for t in targets for fn in t.functions}
        for ref in candidates:
            if isinstance(ref, FunctionType) and id(ref.__code__) in codes and id(ref) not in known:
                known.add(id(ref))
                by_code[id(ref.__code__)].functions.append(ref)

    def _instrumented(self, target: _Target, change: _Change) -> CodeType:
        """The target's original code with its hooks, built once per change and set of hooks.

        arm() builds it to say at once whether a hook can be placed; the swap at the end of the
        change reuses that build when the hooks are the same (rebuilding is most of the cost of
        a placement: a change of one hook built the same code twice).
        """
        if not target.handles:
            return target.original
        nested = bool(target.parents)
        handles = tuple(target.handles)
        cached = change.built.get(id(target.original))
        if (
            cached is not None
            and cached[1] == nested
            and len(cached[0]) == len(handles)
            and all(map(is_, cached[0], handles))
        ):
            return cached[2]
        hooks = [(h.point, h.line, h.hook) for h in handles]
        code = instrument(target.original, hooks, nested=nested)
        change.built[id(target.original)] = (handles, nested, code)
        return code

    def _build(self, target: _Target, change: _Change) -> tuple[CodeType, CodeType]:
        """The fast and the checked variant of the target's rebuilt code."""
        nested = bool(target.parents)
        code = self._instrumented(target, change)
        if any(id(c) in self._subst for c in code.co_consts if isinstance(c, CodeType)):
            code = code.replace(
                co_consts=tuple(
                    self._subst.get(id(c), c) if isinstance(c, CodeType) else c
                    for c in code.co_consts
                )
            )
        # Nested code chooses inline (see _call): one variant serves both modes.
        return code, code if nested else _checked_copy(code)

    def _flush(self, change: _Change) -> None:
        """Rebuild and swap every target the change touched, children before their parents."""
        todo: list[_Target] = []
        pending = list(change.dirty)
        while pending:
            target = pending.pop()
            if (
                any(t is target for t in todo)
                or self._targets.get(id(target.original)) is not target
            ):
                continue
            todo.append(target)
            pending += filter(None, (self._targets.get(id(p)) for p in target.parents))
        # Closures made since the functions were looked up (from a parent's constants): one walk
        # for all the nested targets, right before the swap. Other code has no function objects
        # we did not assign ourselves.
        nested = [t for t in todo if t.parents]
        if nested:
            change.walked.clear()
            change.links.clear()
            self._find_functions(nested, change)
        # A parent is rebuilt after every child of it in the change (it takes their new code
        # as constants): each round applies the targets that are no remaining target's parent.
        while todo:
            parents = {id(p) for t in todo for p in t.parents}
            ready = [t for t in todo if id(t.original) not in parents] or todo[:1]
            for target in ready:
                todo.remove(target)
                try:
                    self._apply(target, change)
                except Exception:  # nothing may raise into the engine's caller
                    log.exception("sensor: rebuilding %s failed", target.original.co_qualname)

    def _apply(self, target: _Target, change: _Change) -> None:
        """Rebuild from the original with every hook, install it, and tell the parents.

        The parents themselves are rebuilt by :meth:`_flush`, after all their children.
        """
        fast, checked = self._build(target, change)
        new = checked if self._checked else fast
        # On 3.13 an assigned __code__ leaves the function with no version, so that no call
        # of it specialises: each gets the version a function made of its code would have.
        fast_number = code_version(fast)
        numbers = (fast_number, fast_number if checked is fast else code_version(checked))
        for fn in target.functions:
            set_code(fn, new, numbers[1] if self._checked else numbers[0])
        # Every function now runs ``new`` (the parent's constants too): older rebuilds are done.
        for old in target.versions:
            self._rebuilt.pop(id(old), None)
        target.fast, target.checked = fast, checked
        target.numbers = numbers
        target.versions = [fast] if checked is fast else [fast, checked]
        target.versions = [v for v in target.versions if v is not target.original]
        for version in target.versions:
            self._rebuilt[id(version)] = target.original
        if target.parents:
            if new is target.original:
                self._subst.pop(id(target.original), None)
            else:
                self._subst[id(target.original)] = new
        if new is target.original and not target.handles:
            self._targets.pop(id(target.original), None)

    def arm(self, code: CodeType, point: Point, line: int | None, hook: Hook) -> Handle:
        original = self.original_code(code)
        with self._lock, self.change():
            change = self._current()
            links = (
                self._parent_links(original, change) if "<locals>" in original.co_qualname else {}
            )
            target = self._target(original, links)
            if not target.functions and not target.parents:
                if not target.handles:
                    self._targets.pop(id(original), None)
                raise PlacementFailed(
                    f"no function object runs {original.co_qualname} and no function's code "
                    "holds it as a constant"
                )
            handle = Handle(original, point, line, hook)
            target.handles.append(handle)
            if all(t is not target for t in change.dirty):
                change.dirty.append(target)
            try:
                # The code is rebuilt (and swapped) when the change ends; building it now says
                # whether this hook can be placed, while the probe can still be told.
                self._build(target, change)
            except Exception as exc:
                target.handles.remove(handle)
                if isinstance(exc, PlacementFailed):
                    raise
                raise PlacementFailed(f"bytecode injection failed: {exc}") from exc
            return handle

    def disarm(self, handle: Handle) -> None:
        with self._lock, self.change():
            change = self._current()
            target = self._targets.get(id(handle.code))
            if target is None or handle not in target.handles:
                return
            target.handles.remove(handle)
            if all(t is not target for t in change.dirty):
                change.dirty.append(target)

    def after_fork_in_child(self) -> None:
        # Another thread may have held the lock at the fork; it never releases it here. Only
        # the forking thread survives: the changes of the others will never end.
        self._lock = threading.RLock()
        ident = threading.get_ident()
        self._changes = {k: v for k, v in self._changes.items() if k == ident}

    def close(self) -> None:
        with self._lock:
            with self.change():
                change = self._current()
                for target in list(self._targets.values()):
                    target.handles.clear()
                    change.dirty.append(target)
            self._targets.clear()
            self._rebuilt.clear()
            self._subst.clear()
