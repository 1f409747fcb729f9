"""Where ``sys.settrace`` reports a line event: the static model line probes are placed by.

A line probe fires where ``sys.settrace`` would report a ``line`` event for its line, and as
often (docs/explanation/backends.md). CPython reports one when the frame is about to run an
instruction of the line and the instruction that ran just before it in that frame (its
*arrival*: the previous instruction in order, a jump, or an instruction that raised into an
exception handler) makes it a new line:

- 3.11: the arrival's line differs (an instruction with no line counts as another line), or
  the arrival is the function's first ``RESUME``, or it jumps backwards (except back to a
  ``SEND``, the ``yield from`` / ``await`` loop). ``RESUME`` itself never reports a line.
- 3.12+ (settrace runs on ``sys.monitoring``): the instruction is a *line start* (its line
  differs from the instruction before it in order, not counting ``END_FOR``, ``END_SEND``,
  ``END_ASYNC_FOR`` and ``RESUME``, which never start a line; or it is a jump or exception
  target) and the arrival's line differs or the arrival is a ``RESUME``; and a
  ``JUMP_BACKWARD`` within one line is a line event too (settrace adds it to ``LINE``).

So a ``for`` header reports one event when the loop starts and one per jump back from the
body (iterations plus one), a loop on one line one per iteration, and a line that only a jump
reaches one per jump. Everything here is computed from the code object with :mod:`dis`, once
per placement; the hot path never sees it.
"""

from __future__ import annotations

import dataclasses
import dis
import sys
from types import CodeType
from typing import Any

__all__ = ["NEVER_RUNS", "Arrival", "LineModel", "Op", "exception_entries", "item_layout"]

#: Said of a line no line event ever happens on (part of the refusal's reason on every backend).
NEVER_RUNS = "reports no line event there"

_PY312 = sys.version_info >= (3, 12)
# Instructions after which the next one in order does not run.
_NO_NEXT = frozenset(
    {
        "JUMP_FORWARD",
        "JUMP_BACKWARD",
        "JUMP_BACKWARD_NO_INTERRUPT",
        "RETURN_VALUE",
        "RETURN_CONST",
        "RAISE_VARARGS",
        "RERAISE",
    }
)
_JUMP_OPCODES = frozenset(dis.hasjrel) | frozenset(dis.hasjabs)
# 3.12+: instructions that never start a line (sys.monitoring puts no LINE event on them).
_NEVER_LINE_START = frozenset({"END_FOR", "END_SEND", "END_ASYNC_FOR", "RESUME"})
# An exhausted FOR_ITER jumps past its target: END_FOR on 3.12, END_FOR and POP_TOP on 3.13.
_FOR_ITER_SKIP = ("END_FOR", "POP_TOP")[: max(0, sys.version_info[1] - 11)]


@dataclasses.dataclass(slots=True)
class Op:
    """One instruction of the code (``EXTENDED_ARG`` and caches folded in)."""

    index: int
    offset: int  #: of the instruction itself (a ``sys.monitoring`` event's offset)
    opname: str
    arg: int | None
    line: int | None


@dataclasses.dataclass(slots=True, frozen=True)
class Arrival:
    """The frame reaches ``Op`` number ``target`` right after running number ``source``."""

    source: int
    target: int
    #: ``next``: by position (the previous instruction, or an exhausted ``FOR_ITER`` landing
    #: past ``END_FOR``); ``jump``: by a jump; ``raise``: by an exception to a handler.
    kind: str
    fires: bool  #: sys.settrace reports a line event on this arrival
    #: the event comes from settrace's backward-jump rule, not from sys.monitoring's LINE
    jump_only: bool = False


def item_layout(items: list[Any]) -> tuple[list[Any], dict[int, int], list[Any]]:
    """The ``bytecode`` package's reading of a code (labels, try ranges, instructions), laid out.

    Returns the instructions in order; the index of the instruction each label leads to
    (``id(Label)`` -> index; a label after the last instruction: their count); and per
    instruction, the ``TryBegin`` of the exception range it lies in, or None.
    """
    from bytecode import Instr, Label
    from bytecode.instr import TryBegin, TryEnd

    ops: list[Any] = []
    label_at: dict[int, int] = {}
    try_of: list[Any] = []
    pending: list[Any] = []
    current: Any = None
    for item in items:
        if isinstance(item, Label):
            pending.append(item)
        elif isinstance(item, TryBegin):
            current = item
        elif isinstance(item, TryEnd):
            if item.entry is current:  # the ranges are flat: it ends the current one
                current = None
        elif isinstance(item, Instr):
            for label in pending:
                label_at[id(label)] = len(ops)
            pending.clear()
            ops.append(item)
            try_of.append(current)
    for label in pending:  # a label after the last instruction: nothing runs there
        label_at[id(label)] = len(ops)
    return ops, label_at, try_of


def exception_entries(code: CodeType) -> list[Any]:
    """The code's exception table as ``dis`` reads it (start, end, target, depth, lasti)."""
    entries: list[Any] = dis.Bytecode(code).exception_entries  # type: ignore[attr-defined]
    return entries


class LineModel:
    """The arrivals at each instruction of one code object and which are line events."""

    def __init__(self, code: CodeType) -> None:
        self.code = code
        line_at: dict[int, int | None] = {}
        for start, end, line in code.co_lines():
            for offset in range(start, end, 2):
                line_at[offset] = line
        ops: list[Op] = []
        by_offset: dict[int, int] = {}
        prefix: int | None = None
        raw = list(dis.get_instructions(code))
        jumps: dict[int, int] = {}  # op index -> target offset
        for ins in raw:
            if ins.opname == "CACHE":
                continue
            if ins.opname == "EXTENDED_ARG":
                prefix = ins.offset if prefix is None else prefix
                continue
            index = len(ops)
            by_offset[ins.offset] = index
            if prefix is not None:
                by_offset[prefix] = index
                prefix = None
            ops.append(Op(index, ins.offset, ins.opname, ins.arg, line_at.get(ins.offset)))
            if ins.opcode in _JUMP_OPCODES and isinstance(ins.argval, int):
                jumps[index] = ins.argval
        self.ops = ops
        self.jump_targets = {i: by_offset[t] for i, t in jumps.items() if t in by_offset}
        first = next((op.index for op in ops if op.opname == "RESUME"), len(ops))
        self.first_traceable = first

        handlers: list[tuple[int, int, int]] = []  # (start offset, end offset, target index)
        for entry in exception_entries(code):
            if entry.target in by_offset:
                handlers.append((entry.start, entry.end, by_offset[entry.target]))

        self.line_starts = self._line_starts(handlers) if _PY312 else set()
        arrivals: dict[int, list[Arrival]] = {}

        def arrive(source: int, target: int, kind: str) -> None:
            if target < len(ops):
                arrivals.setdefault(target, []).append(self._arrival(source, target, kind))

        for op in ops[first:]:
            i = op.index
            if op.opname not in _NO_NEXT:
                arrive(i, i + 1, "next")
            target = self.jump_targets.get(i)
            if target is not None:
                if op.opname == "FOR_ITER" and _FOR_ITER_SKIP:
                    # The exhausted loop lands past END_FOR (a generator's return reaches
                    # END_FOR itself, which then runs on into the same place).
                    arrive(i, target, "jump")
                    arrive(i, target + len(_FOR_ITER_SKIP), "next")
                else:
                    arrive(i, target, "jump")
            for start, end, handler in handlers:
                if start <= op.offset < end:
                    arrive(i, handler, "raise")
        self.arrivals = arrivals

    def _line_starts(self, handlers: list[tuple[int, int, int]]) -> set[int]:
        """3.12+: the instructions sys.monitoring can put a LINE event on."""
        starts: set[int] = set()
        current: int | None = -1
        for op in self.ops[self.first_traceable :]:
            if op.opname in _NEVER_LINE_START:
                continue
            if op.line is not None and op.line != current:
                starts.add(op.index)
            current = op.line
        for i, target in self.jump_targets.items():
            if self.ops[i].opname in ("FOR_ITER", "SEND"):
                target += 1
            starts.add(target)
        starts.update(handler for _, _, handler in handlers)
        return {
            i
            for i in starts
            if i < len(self.ops)
            and self.ops[i].line is not None
            and self.ops[i].opname not in _NEVER_LINE_START
        }

    def _arrival(self, source: int, target: int, kind: str) -> Arrival:
        src, dst = self.ops[source], self.ops[target]
        if dst.line is None or dst.opname == "RESUME":
            return Arrival(source, target, kind, False)
        if not _PY312:
            fires = (
                (src.opname == "RESUME" and src.arg == 0)
                or src.line != dst.line
                or (dst.offset < src.offset and dst.opname != "SEND")
            )
            return Arrival(source, target, kind, fires)
        if target in self.line_starts and (src.line != dst.line or src.opname == "RESUME"):
            return Arrival(source, target, kind, True)
        if kind == "jump" and src.opname == "JUMP_BACKWARD" and src.line == dst.line:
            return Arrival(source, target, kind, True, jump_only=True)
        return Arrival(source, target, kind, False)

    def lines(self) -> set[int]:
        return {op.line for op in self.ops if op.line is not None}

    def refusal(self, line: int) -> str | None:
        """Why a probe on ``line`` can never fire, or None (every backend refuses it)."""
        if self.starts_of(line):
            return None
        name = self.code.co_qualname
        if line not in self.lines():
            return f"line {line} has no code in {name}"
        return (
            f"line {line} of {name} never starts running as a line: sys.settrace "
            f"{NEVER_RUNS} (a def or decorator line, or code that only continues a line "
            "started before); place the probe on another line or @entry"
        )

    def starts_of(self, line: int) -> dict[int, list[Arrival]]:
        """Instructions of ``line`` that some arrival reports as a line event, with every
        arrival at each (the ones that are not events too: a probe must skip those)."""
        return {
            target: found
            for target, found in self.arrivals.items()
            if self.ops[target].line == line and any(a.fires for a in found)
        }

    def first_line_resumes(self, line: int) -> int | None:
        """The ``RESUME`` oparg of a line event on ``line`` that follows a ``RESUME`` of the
        same line (a lambda, a one-line function, a class body), or None if there is none.

        3.13's ``LINE`` misses this event once ``RESUME`` is specialized; the ``RESUME``
        instruction keeps it while ``sys.monitoring`` instruments it for ``PY_START``.
        """
        for found in self.starts_of(line).values():
            for a in found:
                src = self.ops[a.source]
                if a.fires and src.opname == "RESUME" and src.line == line:
                    return src.arg or 0
        return None

    def back_jumps(self, line: int) -> list[int]:
        """Offsets of the ``JUMP_BACKWARD`` within ``line`` that settrace reports as a line
        event and sys.monitoring's ``LINE`` does not (3.12+)."""
        return sorted(
            {
                self.ops[a.source].offset
                for found in self.starts_of(line).values()
                for a in found
                if a.jump_only
            }
        )
