"""Limits of the expression language and the per-evaluation state that enforces them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from sensor.errors import ExpressionError

# -- limits ---------------------------------------------------------------------------------

DEFAULT_MAX_STEPS: Final = 10_000  #: operations per evaluation (loop items, elements visited)
DEFAULT_MAX_SECONDS: Final = 0.010  #: wall time per evaluation, checked while it runs
MAX_SOURCE: Final = 2_000  #: characters in one expression
MAX_NODES: Final = 500  #: syntax tree nodes in one expression
MAX_DEPTH: Final = 40  #: nesting depth of the syntax tree
MAX_STR: Final = 100_000  #: characters (or bytes) of a string an expression may build
MAX_ITEMS: Final = 100_000  #: items of a list/tuple/range an expression may build
MAX_INT_BITS: Final = 65_536  #: bits of an int an expression may build or compute with
MAX_VALUE_DEPTH: Final = 16  #: nesting of a value compared, hashed or formatted element-wise
MAX_TEMPLATE: Final = 8_000  #: characters in one log template
MAX_MESSAGE: Final = 4_096  #: characters of one rendered log message
MAX_FIELD: Final = 1_024  #: characters one template field renders at most
MAX_FIELDS: Final = 32  #: fields in one log template

# Closures take (locals, globals, state) and return the value; values are untyped by nature.
Fn = Callable[[Any, Any, list[Any]], Any]

# The evaluation state is a small list, the cheapest mutable record to create per evaluation:
# [steps left, steps left at the next clock check, deadline (0.0 = clock not started),
#  comprehension variables (dict or None), wall-time budget, the redactor of this evaluation,
#  the scan verdicts of long strings met in this evaluation (by id; None until the first),
#  the redactor's table of verdicts on short strings (fetched on the first string scanned),
#  then one slot per name of an expression compiled with ``slots`` (the probe's value, such as
#  ``result`` at @return, and arguments the sensor's injected code passes in), NO_VALUE when
#  not given]
_S_STEPS, _S_NEXT, _S_DEADLINE, _S_VARS, _S_SECONDS, _S_RED, _S_SEEN, _S_TABLE = range(8)
#: The index of the first slot.
_S_SLOTS = 8
_CLOCK_EVERY = 128
#: A slot given no value: its name is then read from the locals like any other.
NO_VALUE: Final[Any] = type("NoValue", (), {"__slots__": (), "__repr__": lambda self: "NO_VALUE"})()


def new_state(steps: int, seconds: float, red: object) -> list[Any]:
    """A fresh evaluation state (see the layout above; Expression.evaluate builds it inline)."""
    return [steps, steps, 0.0, None, seconds, red, None, None]


def _budget_slow(s: list[Any]) -> None:
    if s[_S_STEPS] < 0:
        raise ExpressionError("step budget exhausted: the expression does too much work")
    now = time.perf_counter()
    if s[_S_DEADLINE] == 0.0:
        s[_S_DEADLINE] = now + s[_S_SECONDS]
    elif now > s[_S_DEADLINE]:
        raise ExpressionError(
            f"time budget of {s[_S_SECONDS] * 1000:g} ms exhausted while the expression ran"
        )
    s[_S_NEXT] = s[_S_STEPS] - _CLOCK_EVERY


def _charge(s: list[Any], n: int = 1) -> None:
    left = s[_S_STEPS] - n
    s[_S_STEPS] = left
    if left < s[_S_NEXT]:
        _budget_slow(s)
