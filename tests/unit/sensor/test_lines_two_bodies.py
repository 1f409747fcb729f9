"""A lines probe's rebuilt code holds two bodies: a call that is not sampled runs the original.

Between samples a call pays one inline test at entry, however many lines it runs; a sampled
call runs the instrumented body and reports exactly the lines sys.settrace reports.
"""

from __future__ import annotations

import dis
import sys
import traceback
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from sensor.engine import Engine
from sensor.guards import Switch, samples, switched
from sensor.inject.bytecode_backend import BytecodeBackend
from sensor.probes import Hit, Point, Probe, ProbeState

Loader = Callable[..., ModuleType]

CORPUS = """
import contextlib

def loops(n):
    total = 0
    for i in range(n):
        if i % 3 == 0:
            continue
        total += i
        while total > 10:
            total -= 7
    else:
        total += 1
    return total

def handlers(n):
    out = []
    try:
        out.append(10 // n)
        if n > 5:
            raise KeyError(n)
    except ZeroDivisionError:
        out.append("zero")
    except KeyError as exc:
        out.append(exc.args[0])
        try:
            int("x")
        except ValueError:
            out.append("nested")
    else:
        out.append("else")
    finally:
        out.append("finally")
    return out

def withs(n):
    with contextlib.suppress(ZeroDivisionError):
        x = 1 // n
        return x
    with contextlib.nullcontext(n) as value:
        y = value + 1
    return y

def early(n):
    if n < 0:
        return "negative"
    if n == 0:
        return "zero"
    for i in range(n):
        if i == 3:
            return "three"
    return "small"

def nesting(n):
    def inner(k):
        return k * 2
    total = inner(n)
    adder = lambda v: v + total
    return adder(1)

def comprehensions(n):
    squares = [i * i for i in range(n)]
    evens = {i for i in squares
             if i % 2 == 0}
    table = {i: j for i, j in zip(squares, range(n))}
    gen = sum(x for x in squares)
    return len(evens) + len(table) + gen

def outer(n):
    def closure(k):
        acc = 0
        for i in range(k):
            acc += i + n
        return acc
    return closure

def raises(n):
    a = n + 1
    b = a * 2
    raise ValueError(b)
"""

ARGS: dict[str, list[Any]] = {
    "loops": [0, 1, 4, 12],
    "handlers": [0, 2, 9],
    "withs": [0, 2],
    "early": [-1, 0, 2, 7],
    "nesting": [3],
    "comprehensions": [0, 5],
}


def _settrace_lines(function: Callable[..., object], *args: object) -> set[int]:
    seen: set[int] = set()
    code = function.__code__  # type: ignore[attr-defined]

    def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
        if frame.f_code is code and event == "line":
            seen.add(frame.f_lineno)
        return tracer

    sys.settrace(tracer)
    try:
        function(*args)
    finally:
        sys.settrace(None)
    return seen


def _install(engine: Engine, location: str, **limits: object) -> list[Hit]:
    hits: list[Hit] = []
    probe = Probe(kind="lines", location=location, limits=limits)
    status = engine.install(probe, on_hit=hits.append)
    assert status.state is ProbeState.INSTALLED, status.reason
    return hits


@pytest.mark.parametrize("name", sorted(ARGS))
def test_sampled_calls_report_exactly_the_settrace_lines(
    engine: Engine, load: Loader, name: str
) -> None:
    mod = load(CORPUS)
    function = getattr(mod, name)
    expected = [_settrace_lines(function, arg) for arg in ARGS[name]]
    results = [function(arg) for arg in ARGS[name]]
    hits = _install(engine, f"{mod.__name__}:{name}", rate=1e9, burst=10**9)
    probed = getattr(mod, name)
    assert [probed(arg) for arg in ARGS[name]] == results
    assert [set(h.lines["ran"]) for h in hits] == expected  # type: ignore[index]
    assert all(expected)  # settrace saw lines: the check compared something
    if name in ("loops", "handlers", "withs", "early"):
        # Each argument takes its own path through the branches.
        assert len({frozenset(e) for e in expected}) == len(expected)


def test_a_closure_made_after_placement_reports_its_lines(engine: Engine, load: Loader) -> None:
    mod = load(CORPUS)
    expected = _settrace_lines(mod.outer(2), 3)
    hits = _install(engine, f"{mod.__name__}:outer.<locals>.closure", rate=1e9, burst=10**9)
    assert mod.outer(2)(3) == 9
    assert [set(h.lines["ran"]) for h in hits] == [expected]  # type: ignore[index]


@pytest.mark.parametrize("sampled", [True, False], ids=["sampled", "not-sampled"])
def test_tracebacks_keep_their_line_numbers(engine: Engine, load: Loader, sampled: bool) -> None:
    mod = load(CORPUS)

    def lines_of_raise() -> list[tuple[str, int | None]]:
        try:
            mod.raises(1)
        except ValueError as exc:
            return [(f.name, f.lineno) for f in traceback.extract_tb(exc.__traceback__)]
        raise AssertionError("raises() did not raise")

    before = lines_of_raise()
    hits = _install(engine, f"{mod.__name__}:raises", rate=1e-3, burst=1)
    if not sampled:
        lines_of_raise()  # spends the one sample: the next call is between samples
    assert lines_of_raise() == before
    assert len(hits) == 1
    assert hits[0].exception is not None


def _opcodes_run(function: Callable[..., object], *args: object) -> int:
    """How many instructions of ``function``'s frame ran on one call.

    3.12+: sys.monitoring INSTRUCTION events on its code (settrace's opcode events there only
    start at the frame's next line event); 3.11: sys.settrace opcode events.
    """
    if sys.version_info >= (3, 12):
        return len(_opnames_run(function, *args))
    count = 0
    code = function.__code__  # type: ignore[attr-defined]

    def tracer(frame, event, arg):  # type: ignore[no-untyped-def]
        nonlocal count
        if frame.f_code is not code:
            return None
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        if event == "opcode":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        function(*args)
    finally:
        sys.settrace(None)
    return count


def test_a_call_between_samples_pays_the_same_however_many_lines_run(
    engine: Engine, load: Loader
) -> None:
    if engine.backend_name == "monitoring":
        pytest.skip("sys.monitoring alone does not rebuild the code (its cost is not opcodes)")
    mod = load(CORPUS)
    original = {n: _opcodes_run(mod.loops, n) for n in (1, 12)}
    assert original[12] > original[1] + 50  # the long call runs many more lines
    hits = _install(engine, f"{mod.__name__}:loops", rate=1e-3, burst=1)
    mod.loops(1)  # the one sampled call; every later call is between samples
    assert len(hits) == 1
    probed = {n: _opcodes_run(mod.loops, n) for n in (1, 12)}
    extra = {n: probed[n] - original[n] for n in (1, 12)}
    # The entry gate and one switch test, the same on a call of 1 and of 12 iterations.
    assert extra[12] == extra[1], (original, probed)
    assert 0 < extra[1] < 20, extra


def _opnames_run(function: Callable[..., object], *args: object) -> list[str]:
    """The names of the instructions of ``function``'s frame that ran on one call (3.12+)."""
    import dis

    code = function.__code__  # type: ignore[attr-defined]
    names = {ins.offset: ins.opname for ins in dis.get_instructions(code)}
    ran: list[str] = []
    monitoring = sys.monitoring
    tool = next(t for t in range(6) if monitoring.get_tool(t) is None)

    def on_instruction(code_: object, offset: int) -> None:
        ran.append(names.get(offset, "?"))

    monitoring.use_tool_id(tool, "test-opnames")
    try:
        monitoring.register_callback(tool, monitoring.events.INSTRUCTION, on_instruction)
        monitoring.set_local_events(tool, code, monitoring.events.INSTRUCTION)
        function(*args)
    finally:
        monitoring.set_local_events(tool, code, 0)
        monitoring.register_callback(tool, monitoring.events.INSTRUCTION, None)
        monitoring.free_tool_id(tool)
    return ran


@pytest.mark.skipif(sys.version_info < (3, 12), reason="INSTRUCTION events need sys.monitoring")
def test_a_call_between_samples_runs_straight_into_the_original_body(
    engine: Engine, load: Loader
) -> None:
    # The closed gate is the whole cost of a call between samples (issue 15: at most one empty
    # call): its test, its skip count, and nothing else; no jump taken on the way into the
    # original body (a jump over the open path cost one more dispatch per call).
    if engine.backend_name == "monitoring":
        pytest.skip("sys.monitoring alone does not rebuild the code")
    mod = load(CORPUS)
    original = _opnames_run(mod.loops, 4)
    hits = _install(engine, f"{mod.__name__}:loops", rate=1e-3, burst=1)
    mod.loops(4)  # the one sampled call; every later call is between samples
    assert len(hits) == 1
    # The switch's test reads its flag (an exact bool) and jumps on it: no truth test.
    gate = ["LOAD_CONST", "LOAD_ATTR", "POP_JUMP_IF_TRUE", "LOAD_CONST", "FOR_ITER"]
    gate += ["POP_TOP", "POP_TOP"]
    # After warm-up the interpreter has specialised what it can: the read of the flag is a
    # LOAD_ATTR_SLOT on 3.12 and 3.13 (a list subclass's TO_BOOL stayed generic on 3.13, about
    # 30 instructions a call); only FOR_ITER over the skip tally (itertools.repeat) has no
    # specialised form. Read before the INSTRUCTION events below, which put back base forms.
    for n in range(200):
        mod.loops(n % 5)
    ops = list(dis.get_instructions(mod.loops.__code__, adaptive=True))
    start = next(k for k, i in enumerate(ops) if i.opname.startswith("RESUME")) + 1
    specialised = [i.opname for i in ops[start : start + len(gate)]]
    assert specialised == [
        "LOAD_CONST",
        "LOAD_ATTR_SLOT",
        "POP_JUMP_IF_TRUE",
        "LOAD_CONST",
        "FOR_ITER",
        "POP_TOP",
        "POP_TOP",
    ], specialised
    probed = _opnames_run(mod.loops, 4)
    # (RESUME runs before any INSTRUCTION event) the gate, then exactly what the original runs.
    assert probed == [*gate, *original], probed
    assert len(hits) == 1  # every call above was between samples


NESTED = """
def outer(m):
    def loops(n):
        total = m
        for i in range(n):
            total += i
        return total
    return loops
"""


@pytest.mark.parametrize("where", ["top-level", "nested"])
def test_the_choosing_gate_paths_all_run_on_into_their_body(load: Loader, where: str) -> None:
    # The choosing gate's rare paths sit after the original body and jump back to it: an open
    # gate that does not sample, one that samples (the instrumented body), and a skip tally
    # that ran out (3 counts here): each call must return what the original returns.
    import itertools

    mod = load(CORPUS if where == "top-level" else NESTED)
    loops = mod.loops if where == "top-level" else mod.outer(5)
    code = loops.__code__
    want = [loops(n) for n in range(8)]
    gate_switch, lines_switch = Switch(), Switch()
    skips = itertools.repeat(None, 3)
    entries: list[int] = []
    ran: list[int] = []

    def gate() -> None:
        entries.append(1)
        if sample:
            lines_switch.on = True

    gate.sensor_switch = (gate_switch, skips)  # type: ignore[attr-defined]
    samples(gate, lines_switch)
    backend = BytecodeBackend()
    try:
        backend.arm(code, Point.ENTRY, None, gate)
        line = code.co_firstlineno + 1  # the first line of the body: once a call

        def on_line() -> None:
            if lines_switch.on:
                ran.append(line)

        backend.arm(code, Point.LINE, line, switched(on_line, lines_switch))
        assert loops.__code__ is not code
        sample = False
        assert [loops(n) for n in range(8)] == want  # 3 skips counted, then ran out
        assert skips.__length_hint__() == 0
        assert entries == []
        assert ran == []
        gate_switch.on = True
        assert [loops(n) for n in range(8)] == want  # open, not sampled
        assert len(entries) == 8
        assert ran == []
        sample = True
        assert [loops(n) for n in range(8)] == want  # open and sampled
        assert len(entries) == 16
        assert ran == [line] * 8
    finally:
        backend.close()
    assert loops.__code__ is code


BODY = """
def target(flip):
    a = 1
    flip()
    b = 2
    c = 3
    return a + b + c
"""


def _backends() -> list[Any]:
    backends: list[Any] = [BytecodeBackend]
    if sys.version_info >= (3, 12):
        from sensor.inject.hybrid import HybridBackend

        backends.append(HybridBackend)
    return backends


@pytest.mark.parametrize("backend_type", _backends(), ids=lambda b: b.name)
def test_the_body_is_chosen_at_entry(load: Loader, backend_type: Any) -> None:
    mod = load(BODY)
    code = mod.target.__code__
    switch = Switch()
    ran: list[int] = []
    backend = backend_type()
    first = code.co_firstlineno
    try:
        for line in range(first + 1, first + 6):

            def hook(line: int = line) -> None:
                if switch.on:
                    ran.append(line)

            backend.arm(code, Point.LINE, line, switched(hook, switch))
        assert mod.target.__code__ is not code

        # Closed at entry, opened mid-call (another thread's sampled call starting): this call
        # was not sampled and runs the original body, so no line hook is reached.
        assert mod.target(lambda: setattr(switch, "on", True)) == 6
        assert ran == []

        # Open at entry: the instrumented body, every line.
        assert mod.target(lambda: None) == 6
        assert ran == list(range(first + 1, first + 6))

        # Closed at entry again: nothing, even though the switch opens mid-call.
        ran.clear()
        switch.on = False
        assert mod.target(lambda: setattr(switch, "on", True)) == 6
        assert ran == []
    finally:
        backend.close()
    assert mod.target.__code__ is code


def test_a_lines_probe_composes_with_a_counter_on_the_same_function(
    engine: Engine, load: Loader
) -> None:
    # The original body keeps the other probes' hooks: the counter counts every call.
    mod = load(CORPUS)
    line = mod.early.__code__.co_firstlineno + 1
    expected = _settrace_lines(mod.early, 2)
    hits = _install(engine, f"{mod.__name__}:early", rate=1e-3, burst=1)
    counter = Probe(kind="counter", location=f"{mod.__name__}:early@{line}")
    assert engine.install(counter).state is ProbeState.INSTALLED
    for n in (2, 2, 5, -1):
        mod.early(n)
    status = engine.status(counter.id)
    assert status is not None
    assert status.hits == 4
    assert [set(h.lines["ran"]) for h in hits] == [expected]  # type: ignore[index]


def test_the_original_body_keeps_other_probes_exception_hooks(engine: Engine, load: Loader) -> None:
    # A snapshot at @exception sees every exception exit, of sampled calls and the others.
    mod = load(CORPUS)
    hits = _install(engine, f"{mod.__name__}:raises", rate=1e-3, burst=1)
    exits: list[Hit] = []
    probe = Probe(kind="snapshot", location=f"{mod.__name__}:raises@exception")
    assert engine.install(probe, on_hit=exits.append).state is ProbeState.INSTALLED
    for _ in range(3):
        with pytest.raises(ValueError, match="4"):
            mod.raises(1)
    assert len(hits) == 1  # the one sampled call
    status = engine.status(probe.id)
    assert status is not None
    assert status.exceptions == 3, status
