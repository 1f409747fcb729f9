"""An evaluation leaves the host thread's decimal context as it found it, by every road.

Decimal operations record their signals in the thread's current context (``FloatOperation``
for a Decimal compared with a float, ``Inexact`` and ``Rounded`` for a rounded result,
``DivisionByZero``, ``InvalidOperation`` for a NaN ordered or an sNaN compared, ``Overflow``),
which belongs to the host: code that reads or clears ``decimal.getcontext().flags``, or checks
them after its own computation, must see its own state, not the sensor's. Each road is held to
that, in contexts the host may have set (signals trapped or not, a small precision, flags it
left set itself), and to its verdict: the value Python computes under the same context, or an
error where the context traps a signal.

The roads: the sandbox's closures (``Expression.evaluate``: conditions, captures, templates),
the fused form alone (``sensor.expressions.fuse``), and through a real placed probe the
probe's own hook (the lane), the general hook (its fused call, its inline ``<number> <op>
<constant>`` and its inline closures), the closures alone, a condition, computed captures and
a log template.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable, Iterator
from decimal import Decimal
from types import ModuleType
from typing import Any

import pytest

from sensor import hotpath
from sensor.engine import Engine
from sensor.errors import ExpressionError
from sensor.expressions import compile_template
from sensor.expressions.compiler import Expression
from sensor.expressions.fuse import FALLBACK, fuse
from sensor.guards import NOTHING
from sensor.probes import Probe, ProbeState

D = Decimal

#: expectation -> rows of (result, x, prices): each row makes a Decimal operation signal.
CASES: dict[str, list[tuple[Any, Any, Any]]] = {
    # FloatOperation: an order (trapped: raises) and an equality (never raises) with a float.
    "result > 0.5": [(D("12.50"), 0, []), (D("0.25"), 0, [])],
    "result == 12.5": [(D("12.50"), 0, []), (D("1"), 0, [])],
    "all(p >= 0.5 for p in prices)": [(D(0), 0, [D(1), D("0.25")])],
    # Inexact and Rounded: a rounded quotient, sum, difference.
    "result / 3 > 4": [(D("12.50"), 0, []), (D("3"), 0, [])],
    "abs(result - x) <= 1": [(D("1" * 40), D("0.1"), []), (D(2), D("0.1"), [])],
    "result == sum(prices)": [(D(1), 0, [D("0.1"), D("1" * 30)])],
    # DivisionByZero (a Decimal divisor; an int 0 is ZeroDivisionError before any Decimal).
    "result / x >= 0": [(D("12.50"), D(0), []), (D(0), D(0), []), (D(1), D(2), [])],
    # InvalidOperation: a NaN ordered, an sNaN compared.
    "result >= 0": [(D("NaN"), 0, []), (D("12.50"), 0, [])],
    "result == x": [(D("sNaN"), 1, []), (D(1), D("NaN"), [])],
    "0 <= x <= result": [(D(5), D("NaN"), []), (D(5), D(2), [])],
    # Overflow (and Inexact, Rounded).
    "result * x < 1": [(D("9e999999"), 10, []), (D(1), 2, [])],
}


def _contexts() -> Iterator[tuple[str, decimal.Context]]:
    """The contexts a host may have set for its thread, with its flags cleared and with flags
    it left set itself (they must be there afterwards, and only they)."""
    strict = [decimal.FloatOperation, decimal.Inexact, decimal.Rounded]
    for name, make in (
        ("default", lambda: decimal.Context()),
        ("untrapped", lambda: decimal.Context(traps=[])),
        ("strict", lambda: decimal.Context(traps=[*strict, decimal.InvalidOperation])),
        ("float-trapped", lambda: decimal.Context(traps=[decimal.FloatOperation])),
        ("prec3-down", lambda: decimal.Context(prec=3, rounding=decimal.ROUND_DOWN, traps=[])),
    ):
        yield name, make()
        ctx = make()
        ctx.flags[decimal.Clamped] = True
        ctx.flags[decimal.Subnormal] = True
        yield name + "+flags", ctx


def _state(ctx: decimal.Context) -> tuple[Any, ...]:
    return (
        {sig.__name__: on for sig, on in ctx.flags.copy().items()},
        {sig.__name__: on for sig, on in ctx.traps.copy().items()},
        ctx.prec,
        ctx.rounding,
        ctx.Emax,
        ctx.Emin,
        ctx.capitals,
        ctx.clamp,
    )


def _python(source: str, result: Any, x: Any, prices: Any, ctx: decimal.Context) -> Any:
    """What Python computes under a copy of ``ctx``: ("value", v) or ("error",)."""
    with decimal.localcontext(ctx):
        try:
            return ("value", eval(source, {}, {"result": result, "x": x, "prices": prices}))
        except (ArithmeticError, TypeError):
            return ("error",)


def _rows() -> Iterator[tuple[str, Any, Any, Any]]:
    for source, rows in CASES.items():
        for result, x, prices in rows:
            yield source, result, x, prices


def test_every_case_signals_in_python() -> None:
    # The cases are what they say: each source signals under the default context, on one row
    # at least (the oracle's own run, in a copy: the host's flags there are Python's).
    for source, rows in CASES.items():
        signalled = False
        for result, x, prices in rows:
            with decimal.localcontext(decimal.Context(traps=[])) as ctx:
                eval(source, {}, {"result": result, "x": x, "prices": prices})
                signalled = signalled or any(ctx.flags.copy().values())
        assert signalled, source


def test_the_closures_leave_the_hosts_context_as_they_found_it() -> None:
    errors = 0
    for source, result, x, prices in _rows():
        expr = Expression(source, slots=("result",))
        for label, ctx in _contexts():
            want = _python(source, result, x, prices, ctx)
            with decimal.localcontext(ctx) as host:
                before = _state(host)
                try:
                    value = expr.evaluate({"x": x, "prices": prices}, values=(result,))
                    got: Any = ("value", value)
                except ExpressionError:
                    got = ("error",)
                after = _state(host)
            assert after == before, (source, label, result, x)
            assert got == want, (source, label, result, x)
            errors += got == ("error",)
    assert errors >= 20, errors  # trapped signals raised, and were reported as errors


def test_the_fused_form_leaves_the_hosts_context_as_it_found_it() -> None:
    answered = fallen = 0
    for source, result, x, prices in _rows():
        expr = Expression(source, slots=("result",))
        names = tuple(n for n in ("x", "prices") if n in expr.names)
        _, red, _, table = expr._compiled
        fn = fuse(expr._tree, red, table, "result", names, expr.max_steps)
        assert fn is not None, source
        args = [{"x": x, "prices": prices}[n] for n in names]
        for label, ctx in _contexts():
            want = _python(source, result, x, prices, ctx)
            with decimal.localcontext(ctx) as host:
                before = _state(host)
                got = fn(result, *args, *[NOTHING] * (2 - len(args)))
                after = _state(host)
            assert after == before, (source, label, result, x, got)
            if got is FALLBACK:
                fallen += 1  # (the closures answer: checked above)
            else:
                answered += 1
                assert ("value", got) == want, (source, label, result, x)
    assert answered >= 60, (answered, fallen)
    assert fallen >= 20, (answered, fallen)  # trapped signals: the fused form raised inside


def test_a_template_leaves_the_hosts_context_as_it_found_it() -> None:
    template = compile_template("{result / 3:.2f} {result > 0.5} {result * x}")
    for label, ctx in _contexts():
        with decimal.localcontext(ctx) as host:
            before = _state(host)
            text = template.render({"result": D("12.50"), "x": D("1e999999")})
            after = _state(host)
        assert after == before, (label, text)


MODULE = """
def target(result, x, prices):
    return result
"""


def _verdicts(ctx: decimal.Context, source: str) -> tuple[int, int, int]:
    """(evaluations, violations, errors) the rows of ``source`` give under ``ctx``."""
    rows = CASES[source] * 2
    verdicts = [_python(source, r, x, p, ctx) for r, x, p in rows]
    return (
        len(rows),
        sum(1 for v in verdicts if v != ("value", True)),
        sum(1 for v in verdicts if v == ("error",)),
    )


@pytest.mark.parametrize("road", ["lane", "general", "closures"])
@pytest.mark.parametrize("source", sorted(CASES))
def test_a_placed_expectation_leaves_the_hosts_context_as_it_found_it(
    engine: Engine,
    load: Callable[..., ModuleType],
    monkeypatch: pytest.MonkeyPatch,
    source: str,
    road: str,
) -> None:
    # Every call evaluated (eval_rate 1e9): by the probe's own hook (the lane, the fused form
    # inline), by the general hook (the fused function, then its inline closures), or by the
    # general hook's inline closures alone.
    if road != "lane":
        monkeypatch.setattr(hotpath, "SPECIALISE_LANE", False)
    if road == "closures":
        monkeypatch.setattr(hotpath, "SPECIALISE_FUSED", False)
    m = load(MODULE)
    for label, ctx in _contexts():
        probe = Probe(
            kind="expect",
            location=f"{m.__name__}:target@return",
            expect=source,
            limits={"eval_rate": 1e9, "violation_rate": 1e6, "rate": 1e6},
        )
        status = engine.install(probe)
        assert status.state is ProbeState.INSTALLED, status.reason
        with decimal.localcontext(ctx) as host:
            before = _state(host)
            # Twice: a lane meets its first Decimal in the plain form and hands that firing to
            # the general hook; it then has its Decimal form, which evaluates every row.
            for row in CASES[source] * 2:
                m.target(*row)
                assert _state(host) == before, (source, label, row)
        got = engine.status(probe.id)
        assert got is not None
        engine.remove(probe.id)
        engine.drain()
        assert (got.evaluations, got.violations, got.expect_errors) == _verdicts(ctx, source), label


def test_a_condition_captures_and_a_template_leave_the_hosts_context_as_they_found_it(
    engine: Engine, load: Callable[..., ModuleType]
) -> None:
    m = load(MODULE)
    condition = "result / 3 > 1 and result > 0.5"
    rows = [(D("12.50"), D("1e999999"), [D("0.1"), D("1" * 30)]), (D("NaN"), D("sNaN"), [D(1)])]
    probes = [
        Probe(
            kind="snapshot",
            location=f"{m.__name__}:target@return",
            condition=condition,
            capture=["result * x", "result / 3", "sum(prices) == 0.5"],
            limits={"rate": 1e6},
        ),
        Probe(
            kind="log",
            location=f"{m.__name__}:target@return",
            template="{result / 3} {result > 0.5} {result * x}",
            limits={"rate": 1e6},
        ),
    ]
    for label, ctx in _contexts():
        for probe in probes:
            status = engine.install(probe)
            assert status.state is ProbeState.INSTALLED, status.reason
            with decimal.localcontext(ctx) as host:
                before = _state(host)
                for row in rows:
                    m.target(*row)
                assert _state(host) == before, (label, probe.kind)
            engine.remove(probe.id)
            hits = engine.drain()
            # The condition's verdict is Python's under the host's context (an error where it
            # traps a signal: no hit); a log probe fires on every call.
            want = len(rows)
            if probe.kind == "snapshot":
                want = sum(_python(condition, *row, ctx) == ("value", True) for row in rows)
                assert want >= 1 or label.split("+")[0] in ("strict", "float-trapped"), label
            assert len(hits) == want, (label, probe.kind)


@pytest.mark.parametrize("source", sorted(CASES))
def test_ints_and_floats_run_no_line_of_the_decimal_flags(source: str) -> None:
    # The plain fused form, all an int or a float runs, has none of the flags' names (nor
    # their `dz = None`): a Decimal operand leaves for the Decimal form, which has them. So
    # does the lane until its first Decimal.
    expr = Expression(source, slots=("result",))
    names = tuple(n for n in ("x", "prices") if n in expr.names)
    _, red, _, table = expr._compiled
    fn = fuse(expr._tree, red, table, "result", names, expr.max_steps)
    assert fn is not None
    flags = {"dz", "dc", "dk", "df"}
    assert not flags & set(fn.__code__.co_varnames), fn.source
    assert flags <= set(fn.__globals__["DFUSED"].__code__.co_varnames)
    for decimal_form in (False, True):
        lane = hotpath._lane_code(expr, "result", names, None, None, decimal=decimal_form)
        assert lane is not None
        hook = _inner(lane[0], "hook")
        assert bool(flags & set(hook.co_varnames)) is decimal_form


def _inner(code: Any, name: str) -> Any:
    return next(c for c in code.co_consts if getattr(c, "co_name", None) == name)
