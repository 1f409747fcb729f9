"""The inline forms of typical expectations answer exactly as the general closures do.

The compiler builds cheaper closures for the shapes an always-on expectation usually has
(``isinstance``/``len``/``sum``/``abs`` of a plain name, ``in`` a literal of constants, a dict
item under a constant key, a comparison or arithmetic reading a plain name in place). Each test
here compiles an expression twice, with the inline forms and without them
(``compiler.SPECIALISE = False``: the general closures alone), and holds the two to the same
value or error, the same steps charged and no user code run, over values chosen to reach every
refusal: user classes overriding the dunders, subclasses of builtins with overridden methods,
secrets by name and by content, and containers too large for the budget.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import pytest

from sensor import redaction
from sensor.errors import ExpressionError
from sensor.expressions import Redacted, compiler
from sensor.expressions.budget import DEFAULT_MAX_SECONDS

SECRET = "AKIAIOSFODNN7EXAMPLE"  # a secret by content (R2)
CALLS: list[str] = []


class Hostile:
    """Records every dunder Python could call on it (none may be)."""

    def __eq__(self, other: object) -> bool:
        CALLS.append("__eq__")
        return True

    def __hash__(self) -> int:
        CALLS.append("__hash__")
        return hash("total")

    def __lt__(self, other: object) -> bool:
        CALLS.append("__lt__")
        return True

    def __gt__(self, other: object) -> bool:
        CALLS.append("__gt__")
        return True

    def __ge__(self, other: object) -> bool:
        CALLS.append("__ge__")
        return True

    def __le__(self, other: object) -> bool:
        CALLS.append("__le__")
        return True

    def __bool__(self) -> bool:
        CALLS.append("__bool__")
        return True

    def __len__(self) -> int:
        CALLS.append("__len__")
        return 1

    def __iter__(self) -> Iterator[int]:
        CALLS.append("__iter__")
        return iter([1])

    def __abs__(self) -> int:
        CALLS.append("__abs__")
        return 1

    def __sub__(self, other: object) -> int:
        CALLS.append("__sub__")
        return 0

    def __rsub__(self, other: object) -> int:
        CALLS.append("__rsub__")
        return 0

    def __getitem__(self, key: object) -> int:
        CALLS.append("__getitem__")
        return 1

    def __repr__(self) -> str:
        CALLS.append("__repr__")
        return "Hostile()"


class Num(int):
    def __ge__(self, other: object) -> bool:
        CALLS.append("Num.__ge__")
        return True

    def __abs__(self) -> int:
        CALLS.append("Num.__abs__")
        return 0

    def __eq__(self, other: object) -> bool:
        CALLS.append("Num.__eq__")
        return True

    __hash__ = int.__hash__


class Items(list[Any]):
    def __len__(self) -> int:
        CALLS.append("Items.__len__")
        return 0

    def __getitem__(self, key: Any) -> Any:
        CALLS.append("Items.__getitem__")
        return 0

    def __iter__(self) -> Iterator[Any]:
        CALLS.append("Items.__iter__")
        return iter([])


class Mapping(dict[Any, Any]):
    def __getitem__(self, key: Any) -> Any:
        CALLS.append("Mapping.__getitem__")
        return 0

    def get(self, key: Any, default: Any = None) -> Any:
        CALLS.append("Mapping.get")
        return 0


class Word(str):
    def __eq__(self, other: object) -> bool:
        CALLS.append("Word.__eq__")
        return True

    def __hash__(self) -> int:
        CALLS.append("Word.__hash__")
        return hash("paid")

    def __len__(self) -> int:
        CALLS.append("Word.__len__")
        return 0


class Disguised:
    """Claims to be a list through ``__class__`` (what ``isinstance()`` itself would ask)."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        CALLS.append("Disguised.__class__")
        return list


# Values each name of the sources below takes in turn (``x`` and ``result`` from all of them).
VALUES: list[object] = [
    0,
    -3,
    7.5,
    math.nan,
    True,
    None,
    2**2000,
    "paid",
    "shipped",
    "a longer clean text",
    SECRET,
    b"bytes",
    Word("paid"),
    Num(5),
    [1, 2, 3],
    [1, 2.5],
    [1, "a"],
    ["password", "hunter22"],
    ["password", "hunter22", "x"],
    (1.5, 2),
    list(range(100)),
    Items([1, 2]),
    {"total": 3, "id": 1},
    {"total": SECRET},
    {"total": "short"},
    {"id": 1},
    {Hostile(): 1, "total": 2},
    {(1, 2): 5, "total": 4},
    Mapping({"total": 1}),
    {1, 2},
    Hostile(),
    Disguised(),
]

SOURCES = [
    "isinstance(x, list)",
    "isinstance(x, str)",
    "isinstance(x, int)",
    "isinstance(x, (int, float))",
    "isinstance(x, (str, list))",
    "isinstance(x, list) and len(x) > 0",
    "isinstance(x, str) and len(x) < 64",
    "len(x) > 0",
    "len(x) <= 2",
    "result == sum(x)",
    "result >= sum(x)",
    "x == result",
    "x < result",
    "x in ('paid', 'shipped')",
    "x not in ('paid', 'shipped')",
    "x in {'paid', 1, 2.5, None}",
    "x in ['paid', b'bytes', True]",
    "result in (1, 2, 3)",
    "x['total'] >= 0",
    "x['total'] == 'short'",
    "x['total']",
    "x[0]",
    "x[1]",
    "x[-1] == 3",
    "abs(x) <= 5",
    "abs(result - x) <= 1",
    "abs(x - 2) < result",
    "x - result",
    "x + 1 > result",
    "x * 2",
]


def build(source: str, *, fast: bool, max_steps: int = 10_000) -> compiler.Expression:
    saved = compiler.SPECIALISE
    compiler.SPECIALISE = fast
    try:
        return compiler.compile(source, max_steps=max_steps, slots=("result",))
    finally:
        compiler.SPECIALISE = saved


def run(
    expr: compiler.Expression,
    lv: dict[str, object],
    result: object,
    seconds: float = DEFAULT_MAX_SECONDS,
) -> tuple[object, int]:
    """(outcome, steps left): the evaluation as the hot path runs it, with its own state."""
    fn, red, _version, table = expr._compiled
    steps = expr.max_steps
    s: list[Any] = [steps, steps, 0.0, None, seconds, red, None, table, result]
    try:
        v = fn(lv, None, s)
    except Exception as exc:
        got: object = (
            "error",
            re.sub(r"^expression ('[^']*'|\"[^\"]*\")", "", str(expr.failed(exc))),
        )
    else:
        if isinstance(v, Redacted):
            got = ("redacted", v.reason)
        elif isinstance(v, float) and math.isnan(v):
            got = ("value", "nan")
        else:
            got = ("value", type(v), v)
    steps_left: int = s[0]
    return got, steps_left


def test_the_inline_forms_are_built() -> None:
    # Otherwise the comparison below would hold two general forms together and prove nothing.
    for source, name in [
        ("isinstance(x, list) and len(x) > 0", "isinstance_one"),
        ("isinstance(x, (str, list))", "isinstance_any"),
        ("len(x) > 0", "cmp_len"),
        ("result == sum(x)", "cmp_left"),
        ("x in ('paid', 'shipped')", "in_literal"),
        ("x['total'] >= 0", "item"),
        ("abs(result - x) <= 1", "call_abs"),
        ("x - result", "binop_read"),
    ]:
        fast, general = build(source, fast=True), build(source, fast=False)
        names = _closure_names(fast._fn)
        assert name in names, (source, names)
        assert name not in _closure_names(general._fn), source
    assert "item" in _closure_names(build("x['total']", fast=True)._fn)
    assert "index_of" in _closure_names(build("x[0]", fast=True)._fn)
    assert "sum_name" in _closure_names(build("sum(x)", fast=True)._fn)
    assert "call_abs" in _closure_names(build("abs(x)", fast=True)._fn)


def _closure_names(fn: Any, depth: int = 0) -> set[str]:
    names = {fn.__name__}
    if depth < 4:
        for cell in fn.__closure__ or ():
            inner = cell.cell_contents
            if callable(inner) and hasattr(inner, "__closure__"):
                names |= _closure_names(inner, depth + 1)
    return names


@pytest.mark.parametrize("source", SOURCES)
def test_an_inline_form_answers_as_the_general_form(source: str) -> None:
    fast, general = build(source, fast=True), build(source, fast=False)
    for x in VALUES:
        for result in (5, 2.5, SECRET, None, Hostile(), Num(1)):
            CALLS.clear()
            want = run(general, {"x": x}, result)
            CALLS.clear()
            got = run(fast, {"x": x}, result)
            assert got == want, (source, x, result)
            assert CALLS == [], (source, x, result, CALLS)
    # A name that is not there: the same error.
    assert run(fast, {}, 5) == run(general, {}, 5)


@pytest.mark.parametrize(
    ("source", "lv"),
    [
        ("sum(x) > 0", {"x": [1] * 200_000}),
        ("result == sum(x)", {"x": [1.5] * 20_000}),
        ("x['total'] >= 0", {"x": {i: i for i in range(200_000)} | {"total": 1}}),
        ("len(x) > 0", {"x": list(range(200_000))}),
        ("x in ('paid', 'shipped')", {"x": "p" * 200_000}),
    ],
)
def test_a_huge_container_is_refused_or_charged_as_by_the_general_form(
    source: str, lv: dict[str, object]
) -> None:
    fast, general = build(source, fast=True), build(source, fast=False)
    # No time limit to speak of: the steps decide, whatever the machine's load.
    want, got = run(general, lv, 5, seconds=600), run(fast, lv, 5, seconds=600)
    assert got == want, source
    if "sum" in source or "[" in source:  # more items than the budget's steps: refused
        assert got[0] == ("error", ": step budget exhausted: the expression does too much work")


def test_the_step_budget_holds_for_an_inline_sum_in_and_item() -> None:
    with pytest.raises(ExpressionError, match="step budget"):
        build("sum(x) > 0", fast=True, max_steps=3).evaluate({"x": [1, 2, 3, 4]})
    assert build("sum(x) > 0", fast=True, max_steps=3).evaluate({"x": [1, 2, 3]}) is True
    with pytest.raises(ExpressionError, match="step budget"):
        build("x in (1, 2, 3, 4)", fast=True, max_steps=3).evaluate({"x": 1})
    many = {str(i): i for i in range(20)}  # 1 + 20 // 4 steps to check its keys
    with pytest.raises(ExpressionError, match="step budget"):
        build("x['total'] > 0", fast=True, max_steps=3).evaluate({"x": many})


@pytest.mark.parametrize("first", ["sum(x) >= 0", "x[0] in (1, 2, 3)", "d['total'] > 0"])
def test_the_time_budget_still_holds_for_work_after_an_inline_form(first: str) -> None:
    # An inline sum or `in` leaves the clock to the next charge: a long loop after it (steps
    # without end here, so that only the clock can stop it) is still timed.
    expr = build(f"{first} and any(y < 0 for y in big for z in big)", fast=True, max_steps=10**12)
    with pytest.raises(ExpressionError, match="time budget"):
        expr.evaluate({"x": [1, 2, 3], "d": {"total": 1}, "big": list(range(2_000))})


def test_secret_keys_and_pairs_stay_hidden_in_the_inline_reads() -> None:
    red = redaction.get_redactor()
    assert red.is_secret_name("password")
    # R1 by key: decided when the closures are built (not the inline item form).
    got = build("x['password']", fast=True).evaluate({"x": {"password": "hunter22"}})
    assert isinstance(got, Redacted)
    # R1 by pair: the second item of a (secret name, value) pair.
    got = build("x[1]", fast=True).evaluate({"x": ["password", "hunter22"]})
    assert isinstance(got, Redacted)
    # R2 by content, read through the inline item and index forms.
    assert isinstance(build("x['total']", fast=True).evaluate({"x": {"total": SECRET}}), Redacted)
    assert isinstance(build("x[0]", fast=True).evaluate({"x": [SECRET, 1, 2]}), Redacted)
    # A secret by content is not compared with a literal.
    assert build("x in ('AKIAIOSFODNN7EXAMPLE', 'b')", fast=True).evaluate({"x": SECRET}) is False
