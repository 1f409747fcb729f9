"""Which locals are certainly bound at an instruction, so that injected code may LOAD_FAST them.

An expectation's hook can be handed the values of the locals it reads as call arguments
(``LOAD_FAST name`` in the injected sequence) instead of reading ``frame.f_locals``, which on
3.11 and 3.12 copies every local of the frame into a dict. ``LOAD_FAST`` runs no user code, but
it must only read a local that is bound on every path to it: on 3.12+ it does not check (that is
what ``LOAD_FAST_CHECK`` is for) and on 3.11 an unbound one raises ``UnboundLocalError`` into
the host. :func:`bound_at` proves it the way CPython's compiler does, conservatively: a forward
"must be bound" analysis over the instructions, with every instruction inside an exception
range an edge to its handler. A name it cannot prove is not passed and the hook reads the
frame, as before, so the outcome (an unbound name's error included) is the same either way.

Only plain fast locals qualify: not cell or free variables (their slot holds the cell), and not
a name a comprehension inlined by 3.12+ saves and restores (``LOAD_FAST_AND_CLEAR``: the value
it restores may be "unbound").
"""

from __future__ import annotations

from collections.abc import Sequence
from types import CodeType
from typing import Any

from sensor.inject.lines import item_layout

__all__ = ["bound_at"]

_STORES = frozenset({"STORE_FAST", "STORE_FAST_MAYBE_NULL"})
_VARARGS = 0x04
_VARKEYWORDS = 0x08


def bound_at(code: CodeType, items: Sequence[Any], names: tuple[str, ...]) -> list[bool] | None:
    """Per instruction of ``items`` (the ``Instr`` items, in order): are all ``names`` bound there?

    ``items`` is the ``bytecode`` package's reading of ``code`` (labels, try ranges and
    instructions). "Bound there" is the state right before the instruction runs. None when some
    name is not a plain fast local of ``code`` (nothing can be passed anywhere).
    """
    from bytecode import Label

    cells = set(code.co_cellvars) | set(code.co_freevars)
    bit: dict[str, int] = {}
    for j, name in enumerate(names):
        if name not in code.co_varnames or name in cells:
            return None
        bit[name] = 1 << j
    want = (1 << len(names)) - 1
    nargs = code.co_argcount + code.co_kwonlyargcount
    nargs += bool(code.co_flags & _VARARGS) + bool(code.co_flags & _VARKEYWORDS)
    start = 0
    for name in code.co_varnames[:nargs]:
        start |= bit.get(name, 0)

    ops, label_at, try_of = item_layout(list(items))
    # per instruction: the label of its exception handler, or None
    handler_of = [None if entry is None else entry.target for entry in try_of]

    def effect(ins: Any, state: int) -> int:
        op = ins.name
        if op in _STORES:
            return state | bit.get(ins.arg, 0)
        if op == "DELETE_FAST" or op == "LOAD_FAST_AND_CLEAR":
            return state & ~bit.get(ins.arg, 0)
        if op == "STORE_FAST_STORE_FAST":
            return state | bit.get(ins.arg[0], 0) | bit.get(ins.arg[1], 0)
        if op == "STORE_FAST_LOAD_FAST":
            return state | bit.get(ins.arg[0], 0)
        return state

    # A name a 3.12+ inlined comprehension saves and restores may be restored "unbound".
    for ins in ops:
        if ins.name == "LOAD_FAST_AND_CLEAR" and ins.arg in bit:
            return None

    n = len(ops)
    state_in: list[int | None] = [None] * n  # None: not reached yet (the top of the lattice)
    if n == 0:
        return []
    state_in[0] = start
    work = [0]
    while work:
        i = work.pop()
        here = state_in[i]
        assert here is not None
        ins = ops[i]
        out = effect(ins, here)
        succ: list[int] = []
        if not (ins.is_final() or ins.is_uncond_jump()) and i + 1 < n:
            succ.append(i + 1)
        if ins.has_jump() and isinstance(ins.arg, Label):
            succ.append(label_at[id(ins.arg)])
        for s, value in [(s, out) for s in succ] + (
            # An exception raised by this instruction: before or after its effect (what both
            # have bound).
            [(label_at[id(handler_of[i])], here & out)] if handler_of[i] is not None else []
        ):
            if s >= n:
                continue
            old = state_in[s]
            new = value if old is None else old & value
            if new != old:
                state_in[s] = new
                work.append(s)
    return [s is not None and s & want == want for s in state_in]
