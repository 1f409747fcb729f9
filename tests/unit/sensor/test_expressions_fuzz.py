"""Fuzzing the sandbox: random expression trees over hostile objects never run a hook.

Hypothesis builds expressions from the whole grammar (operators, comparisons, attribute and
subscript reads, calls of the allowed builtins and methods, comprehensions, f-strings) over
names bound to objects whose every hook records a side effect. Whatever comes out, compiling
and evaluating must end with a value or an ExpressionError, with no hook run and within time.
"""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor.errors import ExpressionError
from sensor.expressions import compile, compile_template

_NAME = "sensor_hostile_objects"
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        _NAME, Path(__file__).parent / "corpus" / "hostile_objects.py"
    )
    assert _spec is not None
    assert _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _module
    _spec.loader.exec_module(_module)
hostile: Any = sys.modules[_NAME]

LOCALS, GLOBALS = hostile.build_namespace()
NAMES = sorted(n for n in LOCALS if n.isidentifier())
ATTRS = [
    "prop", "plain", "CONST", "CONST_PROP", "x", "a", "b", "token", "value", "name", "args",
    "detail", "f_back", "f_globals", "gi_frame", "tb_frame", "co_consts", "real", "other",
    "nondata", "data", "slow_prop", "total", "items", "password", "environ", "modules", "path",
    "method", "cmethod", "anything", "year", "hour",
]  # fmt: skip
FUNCS = [
    "len", "abs", "round", "min", "max", "sum", "sorted", "any", "all", "str", "repr", "int",
    "float", "bool", "list", "tuple", "set", "range", "enumerate", "zip", "reversed",
    "typename",
]  # fmt: skip
METHODS = ["lower", "upper", "get", "keys", "values", "items", "count", "index", "split",
           "startswith", "join", "replace", "strip", "center"]  # fmt: skip
BINOPS = ["+", "-", "*", "/", "//", "%", "**", "<<", ">>", "&", "|", "^"]
CMPOPS = ["==", "!=", "<", "<=", ">", ">=", "in", "not in", "is", "is not"]

literals = st.one_of(
    st.integers(-(10**6), 10**6).map(repr),
    st.sampled_from(["10**9", "2**64", "10**5", "-1", "0", "1.5", "float('nan')"]),
    st.text(alphabet="abc{}%!:x ", max_size=6).map(repr),
    st.sampled_from(["None", "True", "False", "b'ab'", "()", "[]", "{}", "[1, 2]"]),
)
leaves = st.one_of(st.sampled_from(NAMES), literals)


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    two = st.tuples(children, children)
    return st.one_of(
        st.tuples(children, st.sampled_from(BINOPS), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(children, st.sampled_from(CMPOPS), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(st.sampled_from(["-", "+", "~", "not "]), children).map(
            lambda t: f"({t[0]}{t[1]})"
        ),
        st.tuples(children, st.sampled_from(["and", "or"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
        two.map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(children, st.sampled_from(["1:", ":2", "::-1", "::0"])).map(
            lambda t: f"{t[0]}[{t[1]}]"
        ),
        st.tuples(children, st.sampled_from(ATTRS)).map(lambda t: f"{t[0]}.{t[1]}"),
        st.tuples(st.sampled_from(FUNCS), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(["min", "max", "isinstance", "zip", "sum"]), two).map(
            lambda t: f"{t[0]}({t[1][0]}, {t[1][1]})"
        ),
        st.tuples(children, st.sampled_from(METHODS), st.lists(children, max_size=2)).map(
            lambda t: f"{t[0]}.{t[1]}({', '.join(t[2])})"
        ),
        two.map(lambda t: f"[v for v in {t[0]} if {t[1]}]"),
        two.map(lambda t: f"{{v: {t[1]} for v in {t[0]}}}"),
        two.map(lambda t: f"any(v == {t[1]} for v in {t[0]})"),
        st.tuples(children, st.sampled_from(["", "!r", "!s", ":>4", ":.2f", "!a:<3"])).map(
            lambda t: f"f'{{{t[0]}{t[1]}}}'"
        ),
        st.lists(children, max_size=3).map(lambda xs: f"[{', '.join(xs)}]"),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: f"{{{', '.join(xs)}}}"),
        two.map(lambda t: f"{{{t[0]}: {t[1]}}}"),
        st.lists(children, max_size=3).map(lambda xs: f"({', '.join(xs)},)"),
    )


expressions_st = st.recursive(leaves, _extend, max_leaves=12)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(source=expressions_st)
def test_random_expression_over_hostile_objects_runs_no_hook_and_ends_in_time(source: str) -> None:
    del hostile.HITS[:]
    # CPU time of this thread (a busy CI machine stretches wall time; a runaway evaluation
    # burns CPU here, and a hook that sleeps instead is caught by the recorder).
    started = time.thread_time()
    try:
        expr = compile(source)
        expr.evaluate(LOCALS, GLOBALS)
    except ExpressionError:
        pass
    elapsed = time.thread_time() - started
    assert hostile.HITS == [], f"{source!r} ran hooks: {hostile.HITS}"
    assert elapsed < 1.0, f"{source!r} took {elapsed:.3f}s"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(parts=st.lists(expressions_st, min_size=1, max_size=3))
def test_random_log_template_over_hostile_objects_never_raises_or_leaks(parts: list[str]) -> None:
    del hostile.HITS[:]
    template = " | ".join("{" + p + "}" for p in parts)
    try:
        compiled = compile_template(template)
    except ExpressionError:
        return
    message = compiled.render(LOCALS, GLOBALS)
    assert hostile.HITS == [], f"{template!r} ran hooks: {hostile.HITS}"
    assert hostile.PWNED not in message
    assert "hunter2" not in message
    assert len(message) <= compiled.max_length + 40
