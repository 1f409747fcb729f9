"""The host thread's decimal context, left by every evaluation as the evaluation found it.

A Decimal operation of an expression records its signals in the thread's current context:
``FloatOperation`` for a Decimal compared with a float, ``Inexact`` and ``Rounded`` for a
rounded result, ``DivisionByZero``, ``InvalidOperation`` (a NaN ordered, an sNaN compared),
``Overflow``... That context is the host's: its code may read or clear
``decimal.getcontext().flags`` (a money computation that checks ``Inexact`` after its own
work), and the sandbox promises no side effect. The operations themselves must still run under
that context, whose precision, rounding and traps decide their results (and make a trapped
signal raise, which the evaluation reports as it always did): so they do, and the flags are put
back afterwards. Nothing else of a context can change: an operation only ever sets flags (a
trapped signal sets its flag too, then raises).

The cost is paid only where it can matter. A snapshot of the flags is a comparison of the
context's ``flags`` with those of a private context holding the state seen last (:data:`SEEN`,
replaced whole when a thread's state differs: a copy, rare in a steady host), so that an
evaluation that set nothing new costs two comparisons, and one that did costs a clear and the
flags set again (:func:`restore`). The fused forms (:mod:`sensor.expressions.fuse`) take the
snapshot before their first Decimal operation only, on a value they found to be a Decimal (an
int or a float row pays nothing); the closures, whose Decimal operations may happen anywhere
(inside a C comparison of two lists), take it around every evaluation, reading the thread's
context without creating one (:data:`current`): a thread that has none gets one only from a
Decimal operation, and the flags of such a new one are cleared again.

``SignalDict`` comparisons are exact (the flags as one word in ``_decimal``; dicts of the same
keys in ``_pydecimal``), and so is the restore (``clear_flags`` and the flags that were set,
with the values they had). A context shared by several threads is the host's own race: a flag
another thread sets in it during an evaluation that set one too is cleared with it.
"""

from __future__ import annotations

import contextlib
import contextvars
import decimal
from collections.abc import Callable
from typing import Any, Final

__all__ = ["SEEN", "current", "remember", "restore", "restore_new"]

_getcontext = decimal.getcontext
_Context = decimal.Context

#: A state of the flags: (the ``flags`` of a private context set to it, the (signal, value)
#: pairs of the flags that are set, that context).
State = tuple[Any, tuple[tuple[type, Any], ...], Any]


def _state(flags: Any) -> State:
    on = tuple((sig, value) for sig, value in flags.copy().items() if value)
    shadow = _Context()
    shadow.clear_flags()
    for sig, value in on:
        shadow.flags[sig] = value
    # The context is kept with its flags: ``_decimal``'s SignalDict points into its context's
    # memory without holding a reference to it.
    return shadow.flags, on, shadow


#: The state seen last (a one-item list, its item replaced whole: a reader on another thread
#: takes one consistent state). An evaluation compares the host's flags with it before and after.
SEEN: Final[list[State]] = [_state(_Context().flags)]


def remember(flags: Any) -> State:
    """The state of ``flags`` (a context's), now the one seen last."""
    state = _state(flags)
    SEEN[0] = state
    return state


def restore(ctx: Any, state: State) -> None:
    """Put ``ctx``'s flags back to ``state``: those set, with their values, and no other.
    Never raises (it runs in the host's thread, after an evaluation)."""
    # (A MemoryError: the host's flags as the evaluation left them.)
    with contextlib.suppress(Exception):
        ctx.clear_flags()
        flags = ctx.flags
        for sig, value in state[1]:
            flags[sig] = value


def restore_new() -> None:
    """A context the evaluation created (the thread had none: a Decimal operation made one, a
    copy of ``DefaultContext`` with its flags cleared): its flags cleared again. Never raises."""
    with contextlib.suppress(Exception):
        ctx = current(None)
        if ctx is not None:
            ctx.clear_flags()


def _find_current() -> Callable[[None], Any]:
    """``current(None)``: the thread's decimal context, or None where it has none yet, without
    creating one (``decimal.getcontext`` would, and set it in the host's ``contextvars``). The
    module keeps it in a ``ContextVar`` named ``decimal_context`` (``_decimal`` and
    ``_pydecimal`` alike), found by creating a context in a scratch ``contextvars.Context``.
    Without one (a build with thread-local contexts): ``getcontext``, which may create it."""

    def find() -> Any:
        ctx = _getcontext()
        for var in contextvars.copy_context():
            if getattr(var, "name", None) == "decimal_context" and var.get(None) is ctx:
                return var
        return None

    try:
        var = contextvars.Context().run(find)
    except Exception:
        var = None
    if var is None:
        return lambda default: _getcontext()
    get: Callable[[None], Any] = var.get
    return get


current: Final = _find_current()
