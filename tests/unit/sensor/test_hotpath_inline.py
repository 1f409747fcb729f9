"""The hot path's shortcuts give the outcomes of the general evaluation, case by case.

Two shortcuts of :mod:`sensor.hotpath` are held against the way they replace:

- ``<number> <op> <constant>`` (``result >= 0``, ``x > 0.5``) compared in the hook itself for an
  exact int or float, against the compiled closure run on every firing (``_number_test`` turned
  off);
- builtins an expectation calls (``len``, ``sum``, ``isinstance``, ``str``) with the locals it
  reads passed by the injected code, against the frame read (``_passed_locals`` turned off), in a
  module that shadows those builtins, from the start or only after the probe was placed: the
  sandbox calls its own allowed functions and never looks the names up, so neither way may call
  the module's.

Each case runs the same calls twice on a fresh module and compares the counters and every hit
(its ``expect`` verdict and error text, its captures).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from sensor import hotpath, redaction
from sensor.engine import Engine
from sensor.inject import bytecode_backend
from sensor.probes import Probe, ProbeState

NUMBERS = '''
CALLS = []


class Hostile:
    """Every dunder a comparison could run records the call."""

    def __ge__(self, other):
        CALLS.append("ge")
        return True

    def __gt__(self, other):
        CALLS.append("gt")
        return True

    def __lt__(self, other):
        CALLS.append("lt")
        return True

    def __le__(self, other):
        CALLS.append("le")
        return True

    def __eq__(self, other):
        CALLS.append("eq")
        return True

    def __ne__(self, other):
        CALLS.append("ne")
        return True

    def __index__(self):
        CALLS.append("index")
        return 1

    __hash__ = object.__hash__


class MyInt(int):
    def __ge__(self, other):
        CALLS.append("myint")
        return True


def identity(x):
    return x


def local(x):
    y = x
    return 0


def maybe(x, flag):
    if flag:
        y = x
    return 0


def token(x):
    password = x
    return 0
'''


def _values(m: ModuleType) -> list[Any]:
    return [
        -3, -1, 0, 1, 2, 10**30, -(10**30), 0.0, -0.5, 0.5, 2.5, math.inf, -math.inf, math.nan,
        True, False, None, "1", "a" * 40, b"1", [1], (1,), {"a": 1}, 1 + 2j,
        m.Hostile(), m.MyInt(5),
    ]  # fmt: skip


#: case -> (function, point, expectation, how it is called with each value)
NUMBER_CASES: dict[str, tuple[str, str, str]] = {
    "result_ge": ("identity", "return", "result >= 0"),
    "result_gt_float": ("identity", "return", "result > 0.5"),
    "result_lt": ("identity", "return", "result < 2"),
    "result_le": ("identity", "return", "result <= 2"),
    "result_eq": ("identity", "return", "result == 1"),
    "result_ne": ("identity", "return", "result != 1"),
    "local_ge": ("local", "return", "y >= 0"),
    "local_gt": ("local", "return", "y > 0.5"),
    "entry_ge": ("identity", "entry", "x >= 1"),
    # Unbound on some calls: never passed, the frame read and its "not defined" error.
    "maybe_bound": ("maybe", "return", "y >= 0"),
    # A secret name: redacted by the load (R1), refused by the comparison, either way.
    "secret_name": ("token", "return", "password >= 0"),
}


def _number_calls(m: ModuleType, case: str) -> list[Callable[[], Any]]:
    function = NUMBER_CASES[case][0]
    if function == "maybe":
        return [lambda v=v, f=f: m.maybe(v, f) for v in _values(m) for f in (True, False)]
    fn = getattr(m, function)
    return [lambda v=v: fn(v) for v in _values(m)]


def _run(
    engine: Engine,
    module: ModuleType,
    location: str,
    expect: str,
    calls: list[Callable[[], Any]],
    *,
    kind: str = "expect",
    between: Callable[[], None] | None = None,
) -> tuple[tuple[int, int, int], list[Any]]:
    probe = Probe(
        kind=kind,
        location=f"{module.__name__}:{location}",
        expect=expect,
        limits={"eval_rate": 1e9, "violation_rate": 1e6, "rate": 1e6},
    )
    status = engine.install(probe)
    assert status.state is ProbeState.INSTALLED, status.reason
    half = len(calls) // 2
    for call in calls[:half]:
        call()
    if between is not None:
        between()
    for call in calls[half:]:
        call()
    got = engine.status(probe.id)
    assert got is not None
    engine.remove(probe.id)
    hits = [
        json.loads(
            json.dumps([h.expect, h.captures], default=repr).replace(module.__name__, "target")
        )
        for h in engine.drain()
    ]
    assert module.CALLS == [], f"the host's code ran: {module.CALLS}"
    return (got.evaluations, got.violations, got.expect_errors), hits


def _no_inline(*_: object) -> tuple[None, bool, None]:
    return None, False, None


@pytest.mark.parametrize("kind", ["expect", "snapshot"])
@pytest.mark.parametrize("case", sorted(NUMBER_CASES))
def test_inline_number_test_gives_the_closures_outcome(
    engine: Engine,
    load: Callable[..., ModuleType],
    case: str,
    kind: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    function, point, expect = NUMBER_CASES[case]
    location = f"{function}@{point}"
    m = load(NUMBERS)
    counts, hits = _run(engine, m, location, expect, _number_calls(m, case), kind=kind)
    with monkeypatch.context() as patch:
        patch.setattr(hotpath, "_number_test", _no_inline)
        m = load(NUMBERS)
        old_counts, old_hits = _run(engine, m, location, expect, _number_calls(m, case), kind=kind)
    assert counts == old_counts
    assert hits == old_hits
    assert counts[0] == len(_number_calls(m, case))  # every call evaluated, both ways


def test_inline_number_test_is_taken_for_the_typical_shapes() -> None:
    from sensor.expressions.compiler import compile as compile_expression

    def form(expect: str, value: str | None, names: tuple[str, ...]) -> tuple[bool, bool]:
        slots = () if value is None else (value,)
        fn = compile_expression(expect, slots=slots)._compiled[0]
        quick, from_value, _ = hotpath._number_test(fn, value, names)
        return quick is not None, from_value

    assert form("result >= 0", "result", ()) == (True, True)
    assert form("x > 0.5", "result", ("x",)) == (True, False)
    assert form("x > 0.5", None, ("x",)) == (True, False)
    # Not the one passed local, not a number constant, not a plain read: the closure runs.
    assert form("x > 0.5", "result", ()) == (False, False)
    assert form("x > y", "result", ("x", "y")) == (False, False)
    assert form("result >= 'a'", "result", ()) == (False, False)
    assert form("len(x) > 0", "result", ("x",)) == (False, False)
    assert form("password >= 0", "result", ("password",)) == (False, False)


def test_a_rule_change_after_placement_reaches_the_inline_test(
    engine: Engine, load: Callable[..., ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    # ``y`` becomes a secret name halfway: from then on its value is redacted (R1) and the
    # comparison refused, whether the hook compares inline or runs the closure.
    def secret_y() -> None:
        redaction.set_redactor(redaction.Redactor(names=["y"]))

    def run() -> tuple[tuple[int, int, int], list[Any]]:
        m = load(NUMBERS)
        calls = [lambda v=v: m.local(v) for v in (1, 2, 3, 1, 2, 3)]
        try:
            return _run(engine, m, "local@return", "y >= 0", calls, between=secret_y)
        finally:
            redaction.set_redactor(None)

    counts, hits = run()
    with monkeypatch.context() as patch:
        patch.setattr(hotpath, "_number_test", _no_inline)
        old_counts, old_hits = run()
    assert counts == old_counts == (6, 3, 3)
    assert hits == old_hits
    assert all("y" in h[0]["error"] for h in hits), hits


SHADOWING = """
CALLS = []


def len(x):
    CALLS.append("len")
    return 0


def sum(x):
    CALLS.append("sum")
    return -1


def isinstance(x, t):
    CALLS.append("isinstance")
    return False


def abs(x):
    CALLS.append("abs")
    return 0


class str:
    pass


def order(i):
    prices = [i, 2, 3]
    name = "item-" + "x" * i
    total = i + 5
    return total
"""

PLAIN = """
CALLS = []


def order(i):
    prices = [i, 2, 3]
    name = "item-" + "x" * i
    total = i + 5
    return total
"""


def _shadow_later(m: ModuleType) -> Callable[[], None]:
    def shadow() -> None:
        def fake(*args: object) -> object:
            m.CALLS.append("late")
            return 0

        for name in ("len", "sum", "isinstance", "abs"):
            setattr(m, name, fake)
        m.str = type("str", (), {})  # type: ignore[attr-defined]

    return shadow


BUILTIN_EXPECTS = [
    "result == sum(prices)",
    "isinstance(name, str) and len(name) < 64",
    "len(prices) == 3 and abs(result - 5) < 60",
    "isinstance(prices, list) and len(prices) > 0",
]


@pytest.mark.parametrize("expect", BUILTIN_EXPECTS)
@pytest.mark.parametrize("module", ["shadowing", "shadowing_later", "plain"])
def test_passed_locals_with_builtins_give_the_frame_reads_outcome(
    engine: Engine,
    load: Callable[..., ModuleType],
    module: str,
    expect: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def run() -> tuple[tuple[int, int, int], list[Any]]:
        m = load(SHADOWING if module == "shadowing" else PLAIN)
        calls = [lambda i=i: m.order(i) for i in range(-2, 70, 7)]
        later = _shadow_later(m) if module == "shadowing_later" else None
        return _run(engine, m, "order@return", expect, calls, between=later)

    counts, hits = run()
    with monkeypatch.context() as patch:
        patch.setattr(bytecode_backend, "_passed_locals", lambda *a: None)
        old_counts, old_hits = run()
    assert counts == old_counts
    assert hits == old_hits
    # The sandbox's own functions answered (none of the module's ran: _run checks CALLS):
    # ``sum(prices)`` is ``i + 5`` only for i = 0, ... so some calls pass and some fail.
    assert counts[0] == len(range(-2, 70, 7))
    assert counts[2] == 0, hits


def test_an_expectation_calling_builtins_gets_its_locals_passed(
    load: Callable[..., ModuleType],
) -> None:
    import dis

    from sensor.guards import switch_of

    engine = Engine(backend="bytecode", cpu_budget=1.0)
    try:
        m = load(SHADOWING)
        probe = Probe(
            kind="expect",
            location=f"{m.__name__}:order@return",
            expect="isinstance(name, str) and len(name) < 64",
            limits={"eval_rate": 1e9},
        )
        assert engine.install(probe).state is ProbeState.INSTALLED
        loads: list[str] = []
        pending = False
        for ins in dis.get_instructions(m.order):
            if ins.opname == "LOAD_CONST" and callable(ins.argval) and switch_of(ins.argval):
                pending = True
            elif pending and ins.opname == "LOAD_FAST":
                loads.append(ins.argval)
            elif pending and ins.opname == "CALL":
                pending = False
        assert loads == ["name"]  # only the local it reads; ``isinstance``, ``str``, ``len``
        # are the sandbox's own, never the module's
    finally:
        engine.close()
