"""The fused form of an expectation (sensor.expressions.fuse) answers as the closures do, or not at
all, and never runs the host's code.

Two levels:

- the fused function alone, against ``Expression.evaluate`` (the closures the hook runs
  otherwise) on many values per shape, hostile ones included (subclasses of the builtins and
  objects whose every dunder records its call): where it answers, the same value of the same
  type; for a hostile value it must not answer, and no dunder may have run;
- through the engine, every call evaluated, with the fused forms on and off
  (``hotpath.SPECIALISE_FUSED``): the same counters and the same hits (verdicts, error texts,
  captures), secrets by name, by key and by content, and a rule arriving after placement.
"""

from __future__ import annotations

import decimal
import json
import math
import re
from collections.abc import Callable
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest

from sensor import hotpath, redaction
from sensor.engine import Engine
from sensor.errors import ExpressionError
from sensor.expressions.compiler import Expression
from sensor.expressions.fuse import FALLBACK, fuse
from sensor.guards import NOTHING
from sensor.probes import Probe, ProbeState

CALLS: list[str] = []


def _record(name: str) -> Callable[..., Any]:
    def dunder(self: Any, *args: Any) -> Any:
        CALLS.append(name)
        return {"__len__": 1, "__hash__": 1, "__index__": 1, "__bool__": True}.get(name, True)

    return dunder


_DUNDERS = [
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__", "__len__",
    "__bool__", "__abs__", "__add__", "__radd__", "__sub__", "__rsub__", "__index__",
    "__contains__", "__getitem__", "__getattr__",
]  # fmt: skip
_HOOKS = {name: _record(name) for name in _DUNDERS}
_HOOKS["__iter__"] = lambda self: (CALLS.append("__iter__"), iter([1]))[1]


class Hostile:
    locals().update(_HOOKS)


HostileInt = type("HostileInt", (int,), dict(_HOOKS))
HostileFloat = type("HostileFloat", (float,), dict(_HOOKS))
HostileStr = type("HostileStr", (str,), dict(_HOOKS))
HostileList = type("HostileList", (list,), dict(_HOOKS))
HostileTuple = type("HostileTuple", (tuple,), dict(_HOOKS))
HostileDict = type("HostileDict", (dict,), dict(_HOOKS))
HostileDecimal = type("HostileDecimal", (Decimal,), dict(_HOOKS))


class Colliding:
    """A dict key whose hash is that of ``"total"``: a lookup of ``"total"`` compares with it
    (its ``__eq__``) unless the lookup is refused first."""

    def __hash__(self) -> int:
        return hash("total")

    def __eq__(self, other: object) -> bool:
        CALLS.append("Colliding.__eq__")
        return False


class HashingMeta(type):
    """A metaclass whose ``__hash__`` is user code: a set of the types of values would run it
    (the fused form's checks of every item compare ids of types, never types)."""

    def __hash__(cls) -> int:
        CALLS.append("HashingMeta.__hash__")
        return 1

    def __eq__(cls, other: object) -> bool:
        CALLS.append("HashingMeta.__eq__")
        return cls is other


class OfHashingMeta(metaclass=HashingMeta):
    pass


class ListSub(list):  # type: ignore[type-arg]
    """A plain list subclass (no hooks of its own): not exact, so never answered for."""


# A card number: a secret by content (R2).
CARD = "4111 1111 1111 1111"


def _hostiles() -> list[Any]:
    return [
        Hostile(), HostileInt(3), HostileFloat(0.5), HostileStr("paid"), HostileList([1, 2]),
        HostileTuple((1, 2)), HostileDict({"total": 1, "id": 2}),
        [HostileInt(1), 2], [1, Hostile()], (2, HostileFloat(1.0), 3), {"total": HostileInt(4)},
        {Hostile(): 1, "total": 2}, {HostileStr("total"): 1}, [HostileStr("a"), "b", "c"],
        {Colliding(): 1, "id": 2}, {Colliding(): 1, "total": 2},
        OfHashingMeta(), [OfHashingMeta(), 1], [1, 2, OfHashingMeta()], {OfHashingMeta(): 1},
        {"total": 1, "id": 2, "x": OfHashingMeta()}, {OfHashingMeta(): 1, "total": 2},
        HostileDecimal(3), [HostileDecimal(1), Decimal(2)], {"total": HostileDecimal(4)},
        [Decimal(1), HostileDecimal("NaN")],
    ]  # fmt: skip


def _plain() -> list[Any]:
    return [
        -3, -1, 0, 1, 2, 5, 63, 64, 10**30, -(10**30), 2**1100, 0.0, -0.5, 0.5, 2.5, math.inf,
        -math.inf, math.nan, True, False, None, "", "1", "paid", "shipped", "item-7", "a" * 63,
        "a" * 64, "a" * 300, CARD, b"paid", [], [1], [1, 2, 3], [1, -2, 3], [0.5, 2], (1, 2),
        ("password", 3), ["a", "b", "c"], list(range(40)), (3,), [1, "x"], {"total": 1},
        {"total": -1.5}, {"total": "x"}, {"total": CARD}, {"id": 1}, {1: 2, "total": 3},
        {(1, 2): 3, "total": 4}, {"password": 1, "total": 2}, dict.fromkeys(range(40), 1),
        {"total": None}, 1 + 2j, {1, 2}, frozenset({"paid"}),
        # The big-int bounds (bit_length 1024 exactly at +-2**1023), floats beyond them, bools
        # and mixed items, a list subclass.
        2**1023, 2**1023 - 1, -(2**1023), -(2**1023) + 1, 2**1024, 1.7e308, -1.7e308,
        [True, 1], [1, 2.5, True], [2**1023 - 1, 1], [math.inf, 1], [math.nan], [None, 1],
        ListSub([1, 2]), {"total": 2**1023}, {"total": math.nan}, {True: 1, "total": 0},
        {"total": 1, "id": 2, "a": 3, "b": 4, "c": 5, "d": 6, "e": 7, "f": 8, "g": 9},
        # Decimals (money): plain, signed zero, the specials, the exponent's bounds, a long
        # coefficient, mixed with ints and floats in lists and dicts.
        *_decimals(), [Decimal("1.5"), 2], [Decimal(1), 0.5], [Decimal("NaN")],
        {"total": Decimal("12.50")}, {"total": Decimal("-0")}, {"total": Decimal("sNaN")},
    ]  # fmt: skip


def _decimals() -> list[Decimal]:
    return [Decimal(text) for text in (
        "0", "-0", "0.00", "1", "-3", "2.5", "12.50", "999.99", "1000", "-1000.000", "NaN",
        "-NaN", "sNaN", "Infinity", "-Infinity", "1e999999", "-1e999999", "1e-999999",
        "9.999999999999999999999999999e999999", "1" * 120, "0." + "3" * 80, "1E+1023",
    )]  # fmt: skip


#: expectation -> the locals it reads (passed as p0, p1 after the probe's value ``result``)
SHAPES: dict[str, tuple[str, ...]] = {
    "result == sum(prices)": ("prices",),
    "0 <= discount <= price": ("discount", "price"),
    "isinstance(name, str) and len(name) < 64": ("name",),
    "isinstance(items, list) and len(items) > 0": ("items",),
    "status in ('paid', 'shipped')": ("status",),
    "status not in {'paid', 1, None}": ("status",),
    "order['total'] >= 0": ("order",),
    "abs(result - expected) <= 1": ("expected",),
    "all(p >= 0 for p in prices)": ("prices",),
    "any(p == 'b' for p in prices) or not items": ("prices", "items"),
    "result / x > 1 and result % x != 0": ("x",),
    "x[0] * 2 + x[-1] < 10": ("x",),
    "isinstance(x, (int, float, NoneType, bool))": ("x",),
    "isinstance(x, (dict, tuple)) or isinstance(x, str)": ("x",),
    # The shop's money (bench/bench_service.py's standing expectations): Decimals.
    "result['total'] == result['subtotal'] - result['discount'] + result['shipping']": (),
    "result < 1000": (),
    "abs(result) - x >= 0 or result // x == 0": ("x",),
    # Two values at hand compared for (in)equality (strings and numbers), and ``is None``.
    "result['currency'] == currency": ("currency",),
    "name != status": ("name", "status"),
    "coupon is None or isinstance(coupon, str)": ("coupon",),
    "x is not None and x > 0": ("x",),
    "None is not result": (),
}
# Not fused: a secret name (R1), a secret key (R1), an attribute, a long literal.
NOT_FUSED = {
    "password >= 0": ("password",),
    "order['token'] >= 0": ("order",),
    "order.total >= 0": ("order",),
    "status == 'a'": (),  # status is not passed: the hook reads the frame
    "result in ('" + "x" * 300 + "',)": (),
    "sum(x) + sum(y) + sum(prices) > 0": ("x", "y"),  # more locals than are passed
    "x is y": ("x", "y"),  # identity of two values: only ``is None`` is fused
    "x is 1": ("x",),
}


def _safe(expr: Expression, result: object, names: tuple[str, ...], args: list[Any]) -> Any:
    try:
        return ("value", expr.evaluate(dict(zip(names, args, strict=False)), values=(result,)))
    except ExpressionError as exc:
        return ("error", str(exc))


def _fused(expr: Expression, names: tuple[str, ...]) -> Callable[..., Any] | None:
    _, red, _, table = expr._compiled
    return fuse(expr._tree, red, table, "result", names, expr.max_steps)


def _args(names: tuple[str, ...], values: list[Any]) -> list[list[Any]]:
    if not names:
        return [[]]
    if len(names) == 1:
        return [[v] for v in values]
    return [[a, b] for a in values for b in values[::7]]


@pytest.mark.parametrize("source", sorted(SHAPES))
def test_the_fused_form_answers_as_the_closures_or_falls_back(source: str) -> None:
    names = SHAPES[source]
    expr = Expression(source, slots=("result",))
    fn = _fused(expr, names)
    assert fn is not None, f"{source!r} is not fused"
    answered = 0
    plain = _plain()
    results = [5, 0.5, -2, "paid", None, Decimal("12.50"), Decimal("-0"), *_quotes()]
    if not names:  # the probe's value alone: every value in its place
        results += plain + [{**_quotes()[0], "total": v} for v in plain]
    for result in results:
        for args in _args(names, plain):
            got = fn(result, *args, *[NOTHING] * (2 - len(args)))
            if got is FALLBACK:
                continue
            answered += 1
            want = _safe(expr, result, names, args)
            assert want[0] == "value", (source, result, args, want)
            same = want[1] == got or (want[1] != want[1] and got != got)
            assert same, (source, result, args, want, got)
            assert type(want[1]) is type(got), (source, result, args, want, got)
    assert answered >= 10, f"{source!r}: the fused form answered only {answered} times"


def _quotes() -> list[dict[str, Any]]:
    """The shop's quotes (examples/shop/shop/pricing.py: quote), right and wrong."""
    d = Decimal
    return [
        {"currency": "EUR", "subtotal": d("52.00"), "discount": d("5.20"), "shipping": d("6.44"),
         "total": d("53.24")},
        {"currency": "JPY", "subtotal": d("3624"), "discount": d("2500"), "shipping": d("604"),
         "total": d("1729")},
        {"currency": "USD", "subtotal": d("14.00"), "discount": d("0"), "shipping": d("4.00"),
         "total": d("18.01")},
        {"currency": "USD", "subtotal": 14, "discount": 0, "shipping": d("4.00"), "total": 18},
        {"currency": "USD", "subtotal": d(14), "discount": 0.5, "shipping": d(4), "total": 17},
        {"currency": "USD", "subtotal": d("NaN"), "discount": d(0), "shipping": d(4), "total": 1},
    ]  # fmt: skip


#: The shop's standing expectations on its money (bench/bench_service.py), with the values one
#: request gives them: (expectation, the locals it reads, the probe's value, the locals).
SHOP: list[tuple[str, tuple[str, ...], Any, list[Any]]] = [
    ("result >= 0", (), Decimal("12.88"), []),
    ("0 <= result <= price", ("price",), Decimal("46.80"), [Decimal("52.00")]),
    ("result <= price", ("price",), Decimal("46.80"), [Decimal("52.00")]),
    ("result < 1000", (), Decimal("6.44"), []),
    ("result['shipping'] >= 0", (), _quotes()[0], []),
    (SOURCE_TOTAL := "result['total'] == result['subtotal'] - result['discount'] + "
     "result['shipping']", (), _quotes()[0], []),
    (SOURCE_TOTAL, (), _quotes()[1], []),
    ("result == sum(prices)", ("prices",), Decimal("52.00"), [[Decimal("28.00"), Decimal(24)]]),
    ("all(p >= 0 for p in prices)", ("prices",), 1, [[Decimal("28.00"), Decimal("3.50")]]),
    ("abs(result - expected) <= 1", ("expected",), Decimal("53.24"), [Decimal("53")]),
    ("result['currency'] == currency", ("currency",), _quotes()[0], ["EUR"]),
    ("result['currency'] == priced['currency']", ("priced",), {"currency": "USD"},
     [_quotes()[2]]),
    ("coupon is None or isinstance(coupon, str)", ("coupon",), 1, [None]),
    ("coupon is None or isinstance(coupon, str)", ("coupon",), 1, ["WELCOME10"]),
]  # fmt: skip


@pytest.mark.parametrize(("source", "names", "result", "args"), SHOP)
def test_the_shops_money_is_answered_by_the_fused_form(
    source: str, names: tuple[str, ...], result: Any, args: list[Any]
) -> None:
    # Exact Decimals compare and add in C (the _decimal module) as the closures compare and add
    # them: the fused form answers for them, the closures' answer.
    expr = Expression(source, slots=("result",))
    fn = _fused(expr, names)
    assert fn is not None
    # The closures first, as on a value's first sight in production: a string of 6 characters
    # or more (a coupon code) is used once their content check has cached it as clean (R2).
    want = _safe(expr, result, names, args)
    got = fn(result, *args, *[NOTHING] * (2 - len(args)))
    assert got is not FALLBACK, f"{source!r} fell back on the shop's values"
    assert want == ("value", got)


def _contexts() -> list[decimal.Context]:
    """The thread's decimal context the host may have set: the default (InvalidOperation,
    DivisionByZero and Overflow trapped), strict ones, a tiny precision, nothing trapped."""
    return [
        decimal.Context(),
        decimal.Context(traps=[decimal.Inexact, decimal.Rounded, decimal.FloatOperation]),
        decimal.Context(prec=2),
        decimal.Context(prec=1, traps=[]),
        decimal.Context(Emax=3, Emin=-3, traps=[decimal.Overflow, decimal.Subnormal]),
    ]


DECIMAL_SHAPES: dict[str, tuple[str, ...]] = {
    "result >= 0": (),
    "result < 1000": (),
    "result == expected": ("expected",),
    "result != expected": ("expected",),
    "0 <= discount <= price": ("discount", "price"),
    "abs(result - expected) <= 1": ("expected",),
    "result / x > 1 and result % x != 0": ("x",),
    "abs(result) - x >= 0 or result // x == 0": ("x",),
    "result * x + x > 0": ("x",),
    "result == sum(prices)": ("prices",),
    "all(p >= 0 for p in prices)": ("prices",),
    "x[0] * 2 + x[-1] < 10": ("x",),
    "result == x + 1 or result <= x": ("x",),
    SOURCE_TOTAL: (),
}


def _decimal_operands() -> list[Any]:
    d = Decimal
    return [*_decimals(), 0, 7, -2, 2**1023 - 1, 2**1024, 0.5, -0.0, math.nan, math.inf, True,
            [d(1), d(2)], [d(1), 2], [d("0.1"), 0.5], [d("NaN"), 1], [d("sNaN")], [],
            [d("1e999999"), d("1e999999")], [d("9" * 40), d("-0.5")], [2, d(3)]]  # fmt: skip


def _flags(ctx: decimal.Context) -> list[str]:
    return sorted(sig.__name__ for sig, on in ctx.flags.items() if on)


@pytest.mark.parametrize("source", sorted(DECIMAL_SHAPES))
def test_decimals_in_every_context_answer_as_the_closures_with_the_same_flags(
    source: str,
) -> None:
    # In each context the host may have set for its thread: where the fused form answers, the
    # closures' value; where the context traps a signal (a NaN ordered, sNaN compared, an
    # overflow, an inexact sum), a float mixed into arithmetic: FALLBACK, and the closures'
    # own answer or error. And the context's flags as the closures leave them: the fused
    # form's operations are the closures' own, in their order (the flags are the host's state).
    names = DECIMAL_SHAPES[source]
    expr = Expression(source, slots=("result",))
    fn = _fused(expr, names)
    assert fn is not None
    operands = _decimal_operands()
    if names:
        results = [*_decimals(), 3, 0.5]
        combos = [(r, [a, b][: len(names)]) for r in results for a in operands
                  for b in operands[::5]]  # fmt: skip
    else:
        results = _decimals() + _quotes() + [{**_quotes()[0], "total": v} for v in operands]
        combos = [(r, []) for r in results]
    answered = fallen = 0
    for ctx in _contexts():
        for result, args in combos:
            with decimal.localcontext(ctx) as alone:
                want = _safe(expr, result, names, args)
            with decimal.localcontext(ctx) as local:
                got = fn(result, *args, *[NOTHING] * (2 - len(args)))
                if got is FALLBACK:
                    fallen += 1
                    again = _safe(expr, result, names, args)
                    assert again == want, (source, result, args, want, again)
                else:
                    answered += 1
                    assert want == ("value", got), (source, ctx, result, args, want, got)
                    assert type(want[1]) is type(got)
            assert _flags(local) == _flags(alone), (source, ctx, result, args, got)
    assert answered >= 40, (answered, fallen)
    assert fallen >= 10, (answered, fallen)


#: expectation -> (its locals, whether a compared Decimal's NaN test waits for the comparison).
NAN_TESTS: dict[str, tuple[tuple[str, ...], bool]] = {
    "result >= 0": ((), False),
    "0 <= discount <= price": (("discount", "price"), False),
    "result == expected": (("expected",), False),
    SOURCE_TOTAL: ((), True),
    "abs(result - expected) <= 1": (("expected",), True),
    "result == sum(prices)": (("prices",), True),
}


@pytest.mark.parametrize("source", sorted(NAN_TESTS))
def test_a_compared_decimal_is_tested_for_nan_at_its_check_unless_arithmetic_comes_first(
    source: str,
) -> None:
    # The Decimal form tests a compared Decimal for NaN (the one Decimal whose comparison with
    # an int or a Decimal signals) where its type was just tested, right after the check, in
    # a comparison of plain operands; where an operand holds arithmetic, which takes the flags
    # on a Decimal before the comparison, it tests it at the comparison, only while the flags
    # are not taken (the quote identity then calls no is_nan()).
    names, deferred = NAN_TESTS[source]
    expr = Expression(source, slots=("result",))
    fn = _fused(expr, names)
    assert fn is not None
    lines = [line.strip() for line in fn.__globals__["DFUSED"].source.splitlines()]
    tests = [i for i, line in enumerate(lines) if ".is_nan()" in line]
    assert tests, lines
    at_check = [i for i in tests if re.fullmatch(r"if [a-z]\w*\.is_nan\(\):", lines[i])]
    at_comparison = [i for i in tests if lines[i].startswith("if dz is None and (")]
    if deferred:
        assert at_comparison == tests, lines
    else:
        assert at_check == tests, lines
        for i in at_check:  # right after the check that found a Decimal
            assert re.fullmatch(r"if y\d+ is not DEC:", lines[i - 2]), lines[i - 2 : i + 1]
            assert lines[i - 1] == "return FALLBACK", lines[i - 2 : i + 1]
        assert not any(line.startswith("if dz is None and") for line in lines), lines


#: expectation -> (its locals, how many operations test their operands' types before taking the
#: decimal flags: those with an operand whose check did not take them).
OPERATION_TESTS: dict[str, tuple[tuple[str, ...], int]] = {
    SOURCE_TOTAL: ((), 0),
    "abs(result - expected) <= 1": (("expected",), 0),
    "result * x + x > 0": (("x",), 0),
    "result >= 0 and result - 1 > 0": ((), 1),  # result checked for a comparison first
}


@pytest.mark.parametrize("source", sorted(OPERATION_TESTS))
def test_an_operation_tests_only_operands_whose_check_did_not_take_the_flags(source: str) -> None:
    # An operand checked inside arithmetic takes the flags at its check if it is a Decimal, and
    # so did the operation that made a Decimal result: the operation on them takes the flags
    # without testing their types again. An operand checked for a comparison (tested for NaN
    # only) is tested again before the operation.
    names, tests = OPERATION_TESTS[source]
    expr = Expression(source, slots=("result",))
    fn = _fused(expr, names)
    assert fn is not None
    lines = [line.strip() for line in fn.__globals__["DFUSED"].source.splitlines()]
    found = [line for line in lines if re.fullmatch(r"if \S+ is DEC( or \S+ is DEC)*:", line)]
    assert len(found) == tests, lines


@pytest.mark.parametrize("source", ["abs(result - expected) <= 1", "result - x * 2 > 0"])
def test_arithmetic_at_the_big_int_bounds_answers_as_the_closures_or_falls_back(
    source: str,
) -> None:
    # The bound 2**1023 (an int of 1024 bits) on either operand and on the result, with ints
    # and floats on both sides (inf and nan included), as the closures answer.
    names = ("expected",) if "expected" in source else ("x",)
    expr = Expression(source, slots=("result",))
    fn = _fused(expr, names)
    assert fn is not None
    edge = [2**1023, 2**1023 - 1, -(2**1023), -(2**1023) + 1, 2**1022, -(2**1022), 2**1024,
            0, 1, -1, 0.5, 1.7e308, -1.7e308, math.inf, -math.inf, math.nan, True]  # fmt: skip
    answered = fallen = 0
    for result in edge:
        for arg in edge:
            got = fn(result, arg, NOTHING)
            if got is FALLBACK:
                fallen += 1
                continue
            answered += 1
            want = _safe(expr, result, names, [arg])
            assert want == ("value", got), (source, result, arg, want, got)
            assert type(want[1]) is type(got)
    assert answered >= 50, (answered, fallen)
    assert fallen >= 10, (answered, fallen)


@pytest.mark.parametrize("source", sorted(SHAPES))
def test_the_fused_form_runs_no_dunder_of_a_hostile_value(source: str) -> None:
    names = SHAPES[source]
    fn = _fused(Expression(source, slots=("result",)), names)
    assert fn is not None
    for hostile in _hostiles():
        for result in [5, hostile]:
            for args in ([hostile] * len(names), [hostile, 1][: len(names)]):
                CALLS.clear()
                got = fn(result, *args, *[NOTHING] * (2 - len(args)))
                assert CALLS == [], (source, type(hostile).__name__, CALLS)
                if type(hostile).__name__.startswith("Hostile"):
                    # A hostile value the expression reads is never answered for.
                    reads = ("result" in source and result is hostile) or (
                        bool(args) and args[0] is hostile
                    )
                    if reads and got is not FALLBACK:
                        pytest.fail(f"{source!r} answered {got!r} for {type(hostile).__name__}")


@pytest.mark.parametrize("source", sorted(NOT_FUSED))
def test_secret_names_keys_and_other_shapes_are_not_fused(source: str) -> None:
    assert _fused(Expression(source, slots=("result",)), NOT_FUSED[source]) is None


def test_a_string_secret_by_content_is_left_to_the_closures() -> None:
    for source, args in [
        ("status in ('paid', 'shipped')", [CARD]),
        ("isinstance(name, str) and len(name) < 64", [CARD]),
        ("order['total'] >= 0", [{"total": CARD}]),
        ("all(p != 'x' for p in prices)", [[CARD, "a", "b"]]),
        ("any(p == 'x' for p in prices)", [["password", "hunter2hunter2"]]),
    ]:
        expr = Expression(source, slots=("result",))
        fn = _fused(expr, ("status", "name", "order", "prices")[:1] if False else _names(source))
        assert fn is not None
        assert fn(1, *args, NOTHING) is FALLBACK, source


def _names(source: str) -> tuple[str, ...]:
    for name in ("status", "name", "order", "prices"):
        if name in source:
            return (name,)
    raise AssertionError(source)


# -- through the engine: fused on and off give the same counters and hits ----------------------

MODULE = """
def target(result, status, order, prices, name, password):
    return result
"""


ENGINE_CASES = [
    "status in ('paid', 'shipped')",
    "order['total'] >= 0",
    "result == sum(prices)",
    "isinstance(name, str) and len(name) < 64",
    "all(p >= 0 for p in prices)",
    "order['password'] == 1",
    "password == 'x' or result > 0",
]


def _engine_calls(m: ModuleType) -> list[Callable[[], Any]]:
    rows = [
        (6, "paid", {"total": 1}, [1, 2, 3], "item", "x"),
        (-1, "shipped", {"total": -1, "password": 1}, [1, -2], "item", "pw-secret-value"),
        (0, CARD, {"total": CARD}, [CARD, 1], CARD, CARD),
        (2, HostileStr("paid"), HostileDict({"total": 1}), HostileList([1]), HostileStr("n"), 1),
        (3, "lost", {"total": 2.5, "password": "hunter2hunter2"}, (0.5, 0.5), "a" * 70, "x"),
        (1, None, {}, [], "", None),
    ]
    return [lambda r=r: m.target(*r) for r in rows * 2]


def _run(
    engine: Engine, m: ModuleType, expect: str, between: Callable[[], None] | None = None
) -> tuple[tuple[int, int, int], list[Any]]:
    probe = Probe(
        kind="expect",
        location=f"{m.__name__}:target@return",
        expect=expect,
        limits={"eval_rate": 1e9, "violation_rate": 1e6, "rate": 1e6},
    )
    status = engine.install(probe)
    assert status.state is ProbeState.INSTALLED, status.reason
    calls = _engine_calls(m)
    half = len(calls) // 2
    CALLS.clear()
    for call in calls[:half]:
        call()
    if between is not None:
        between()
    for call in calls[half:]:
        call()
    assert CALLS == [], f"the host's code ran: {CALLS}"
    got = engine.status(probe.id)
    assert got is not None
    engine.remove(probe.id)
    hits = [
        json.loads(json.dumps([h.expect, h.captures], default=repr).replace(m.__name__, "target"))
        for h in engine.drain()
    ]
    assert CARD not in json.dumps(hits), hits
    return (got.evaluations, got.violations, got.expect_errors), hits


@pytest.mark.parametrize("expect", ENGINE_CASES)
def test_through_the_engine_fused_and_closures_give_the_same_hits(
    engine: Engine,
    load: Callable[..., ModuleType],
    expect: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counts, hits = _run(engine, load(MODULE), expect)
    with monkeypatch.context() as patch:
        patch.setattr(hotpath, "SPECIALISE_FUSED", False)
        old_counts, old_hits = _run(engine, load(MODULE), expect)
    assert counts == old_counts
    assert hits == old_hits
    assert counts[0] == len(_engine_calls(load(MODULE)))


def test_a_rule_arriving_after_placement_reaches_the_fused_form(
    engine: Engine, load: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``status`` and the key ``total`` become secret names halfway: from then on their values
    # are redacted (R1), the comparison refused, whether fused or not.
    def secret() -> None:
        redaction.set_redactor(redaction.Redactor(names=["status", "total"]))

    def run(expect: str) -> tuple[tuple[int, int, int], list[Any]]:
        try:
            return _run(engine, load(MODULE), expect, between=secret)
        finally:
            redaction.set_redactor(None)

    for expect in ("status in ('paid', 'shipped')", "order['total'] >= 0"):
        counts, hits = run(expect)
        with monkeypatch.context() as patch:
            patch.setattr(hotpath, "SPECIALISE_FUSED", False)
            old_counts, old_hits = run(expect)
        assert counts == old_counts
        assert hits == old_hits
        # Every call after the rule is a violation (redacted: refused or unequal), none shows it.
        assert counts[1] >= 6, (expect, counts)
        assert "paid" not in json.dumps(hits[-6:]), hits
