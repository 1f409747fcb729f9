"""Tests of the sensor engine: locations, code shapes, kinds, guards, removal, on every backend."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import itertools
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from waker_doubles import HeldWaker

from sensor.engine import Engine, get_engine
from sensor.probes import Hit, Probe, ProbeState

Loader = Callable[..., ModuleType]


def line(module: ModuleType, marker: str) -> int:
    """The line of ``module``'s file that carries the comment ``# <marker>``."""
    path = sys.modules[module.__name__].__file__ if module.__name__ in sys.modules else None
    assert path is not None
    for number, text in enumerate(Path(path).read_text().splitlines(), 1):
        if text.rstrip().endswith(f"# {marker}"):
            return number
    raise AssertionError(f"marker {marker!r} not found")


def make(**fields: Any) -> Probe:
    return Probe(**fields)


def snapshot(location: str, **fields: Any) -> Probe:
    fields.setdefault("limits", {"rate": 1e6})
    return make(kind="snapshot", location=location, **fields)


def installed(engine: Engine, probe: Probe) -> None:
    status = engine.install(probe)
    assert status.state is ProbeState.INSTALLED, status.reason


SHAPES = """
import functools

def deco(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return fn(*args, **kwargs)
    return wrapper

def add(a, b):
    total = a + b  # add-body
    return total

class Cart:
    rate = 2

    def __init__(self, items):
        self.items = items

    def total(self, tax):
        subtotal = sum(self.items)
        return subtotal * (1 + tax)

    @staticmethod
    def double(x):
        return x * 2

    @classmethod
    def triple(cls, x):
        return x * 3 * cls.rate // 2

    @property
    def size(self):
        return len(self.items)

    class Inner:
        def deep(self, y):
            return y - 1

@deco
def decorated(x):
    y = x + 1  # decorated-body
    return y

def outer(n):
    def inner(k):
        return k + n  # inner-body
    return inner

def boom(x):
    if x > 1:
        raise ValueError(f"bad {x}")  # boom-raise
    return x

def gen(n):
    for i in range(n):
        yield i * 2  # gen-yield
    return n

async def coro(x):
    await asyncio.sleep(0)
    return x + 1  # coro-return

async def agen(n):
    for i in range(n):
        await asyncio.sleep(0)
        yield i  # agen-yield

def fact(n):
    if n <= 1:
        return 1
    return n * fact(n - 1)  # fact-rec

def loop(n):
    acc = 0
    for i in range(n):  # loop-header
        acc += i  # loop-body
    return acc

def caught(x):
    try:
        return 10 // x  # caught-div
    except ZeroDivisionError:
        return -1
"""


@pytest.fixture
def shapes(load: Loader) -> ModuleType:
    return load("import asyncio\n" + SHAPES)


# -- locations and code shapes -----------------------------------------------------------------


def test_return_probe_captures_locals_and_result(engine: Engine, shapes: ModuleType) -> None:
    installed(engine, snapshot(f"{shapes.__name__}:add"))
    assert shapes.add(2, 3) == 5
    (hit,) = engine.drain()
    assert hit.captures == {"a": 2, "b": 3, "total": 5, "result": 5}
    assert hit.kind == "snapshot"
    assert hit.thread == threading.current_thread().name


def test_entry_probe_sees_only_the_arguments(engine: Engine, shapes: ModuleType) -> None:
    installed(engine, snapshot(f"{shapes.__name__}:add@entry"))
    shapes.add(1, 1)
    (hit,) = engine.drain()
    assert hit.captures == {"a": 1, "b": 1}


def test_line_probe_fires_before_the_line_runs(engine: Engine, shapes: ModuleType) -> None:
    body = line(shapes, "add-body")
    installed(engine, snapshot(f"{shapes.__name__}:add@{body}"))
    shapes.add(4, 5)
    (hit,) = engine.drain()
    assert hit.line == body
    assert hit.captures == {"a": 4, "b": 5}


@pytest.mark.parametrize(
    ("qualname", "call", "expected"),
    [
        ("Cart.total", lambda m: m.Cart([1, 2]).total(0.5), {"tax": 0.5, "subtotal": 3}),
        ("Cart.double", lambda m: m.Cart.double(4), {"x": 4, "result": 8}),
        ("Cart.triple", lambda m: m.Cart.triple(2), {"x": 2, "result": 6}),
        ("Cart.size", lambda m: m.Cart([1, 2, 3]).size, {"result": 3}),
        ("Cart.Inner.deep", lambda m: m.Cart.Inner().deep(5), {"y": 5, "result": 4}),
        ("decorated", lambda m: m.decorated(1), {"x": 1, "y": 2, "result": 2}),
        ("outer.<locals>.inner", lambda m: m.outer(10)(1), {"k": 1, "n": 10, "result": 11}),
    ],
)
def test_code_shapes_are_reached(
    engine: Engine,
    shapes: ModuleType,
    qualname: str,
    call: Callable[[ModuleType], object],
    expected: dict[str, object],
) -> None:
    if qualname.startswith("outer.") and engine.backend_name == "bytecode":
        existing = shapes.outer(10)  # the bytecode backend reaches closures that exist
        installed(engine, snapshot(f"{shapes.__name__}:{qualname}"))
        existing(1)
    else:
        installed(engine, snapshot(f"{shapes.__name__}:{qualname}"))
        call(shapes)
    (hit,) = engine.drain()
    assert hit.captures is not None
    for key, value in expected.items():
        assert hit.captures[key] == value


def test_closure_made_after_the_probe_is_reached(engine: Engine, shapes: ModuleType) -> None:
    outer_code = shapes.outer.__code__
    probe = snapshot(f"{shapes.__name__}:outer.<locals>.inner")
    installed(engine, probe)
    assert shapes.outer(3)(4) == 7
    assert [h.captures["result"] for h in engine.drain() if h.captures] == [7]
    engine.remove(probe.id)
    assert shapes.outer.__code__ is outer_code  # the parent's constants are back too
    assert shapes.outer(3)(4) == 7
    assert engine.drain() == []


def test_deeply_nested_function_made_later_is_reached(engine: Engine, load: Loader) -> None:
    module = load(
        """
        def top(a):
            def middle(b):
                def leaf(c):
                    return a + b + c
                return leaf
            return middle
        """
    )
    top_code = module.top.__code__
    probe = snapshot(f"{module.__name__}:top.<locals>.middle.<locals>.leaf")
    installed(engine, probe)
    installed(engine, snapshot(f"{module.__name__}:top@entry"))
    assert module.top(1)(2)(3) == 6
    assert sorted(h.location.split(":")[1] for h in engine.drain()) == [
        "top.<locals>.middle.<locals>.leaf@return",
        "top@entry",
    ]
    engine.remove_all()
    assert module.top.__code__ is top_code


def test_path_location_matches_by_suffix(engine: Engine, shapes: ModuleType) -> None:
    body = line(shapes, "inner-body")
    fn = shapes.outer(1)
    installed(engine, snapshot(f"{shapes.__name__}.py:{body}"))
    fn(2)
    (hit,) = engine.drain()
    assert hit.line == body
    assert hit.captures == {"k": 2, "n": 1}


def test_path_location_on_module_level_code_is_an_error(engine: Engine, shapes: ModuleType) -> None:
    status = engine.install(snapshot(f"{shapes.__name__}.py:2"))
    assert status.state is ProbeState.ERROR
    assert "not inside any function" in (status.reason or "")


def test_unknown_function_is_an_error_naming_it(engine: Engine, shapes: ModuleType) -> None:
    status = engine.install(snapshot(f"{shapes.__name__}:Cart.missing"))
    assert status.state is ProbeState.ERROR
    assert "'missing'" in (status.reason or "")


def test_line_outside_the_function_is_an_error(engine: Engine, shapes: ModuleType) -> None:
    status = engine.install(snapshot(f"{shapes.__name__}:add@{line(shapes, 'inner-body')}"))
    assert status.state is ProbeState.ERROR
    assert "is not a line of add" in (status.reason or "")


def test_comment_line_inside_the_function_names_the_nearest_code_lines(
    engine: Engine, load: Loader
) -> None:
    module = load(
        """
        def days_left(due, start):
            # production sends naive datetimes

            return (due - start).days
        """
    )
    first = module.days_left.__code__.co_firstlineno
    status = engine.install(snapshot(f"{module.__name__}:days_left@{first + 1}"))
    assert status.state is ProbeState.ERROR
    reason = status.reason or ""
    assert f"line {first + 1} of days_left" in reason
    assert "has no code of its own" in reason
    assert f"next line with code: {first + 3}" in reason
    assert "is not a line of" not in reason  # it is inside the function's span


def test_path_location_on_a_blank_line_inside_a_function_names_the_function(
    engine: Engine, load: Loader
) -> None:
    module = load(
        """
        def days_left(due, start):
            # production sends naive datetimes

            return (due - start).days
        """
    )
    first = module.days_left.__code__.co_firstlineno
    status = engine.install(snapshot(f"{module.__name__}.py:{first + 2}"))
    assert status.state is ProbeState.ERROR
    reason = status.reason or ""
    assert "not inside any function" not in reason
    assert f"line {first + 2} of " in reason
    assert "is inside days_left" in reason
    assert f"next line with code: {first + 3}" in reason


def test_denied_module_is_refused(engine: Engine) -> None:
    status = engine.install(snapshot("sensor.probes:Location.parse"))
    assert status.state is ProbeState.ERROR
    assert "denied" in (status.reason or "")


# -- pending probes and the import hook --------------------------------------------------------


def test_probe_on_a_module_not_imported_yet_waits_then_arms(engine: Engine, load: Loader) -> None:
    name = f"engtarget_late_{uuid.uuid4().hex[:8]}"
    load("def late(x):\n    return x * 2\n", name, import_it=False)
    before = list(sys.meta_path)
    status = engine.install(snapshot(f"{name}:late"))
    assert status.state is ProbeState.PENDING
    assert name in (status.reason or "")
    assert len(sys.meta_path) == len(before) + 1
    modules = sys.modules
    module = importlib.import_module(name)
    assert sys.modules is modules
    assert engine.status(status.probe_id).state is ProbeState.INSTALLED  # type: ignore[union-attr]
    assert module.__loader__.__class__.__name__ != "_WatchingLoader"
    assert sys.meta_path == before  # the hook is gone once nothing is pending
    assert module.late(4) == 8
    assert [h.captures for h in engine.drain()] == [{"x": 4, "result": 8}]


def test_path_probe_waits_for_its_file(engine: Engine, load: Loader) -> None:
    name = f"engtarget_path_{uuid.uuid4().hex[:8]}"
    load("def f(x):\n    y = x + 1\n    return y\n", name, import_it=False)
    status = engine.install(snapshot(f"{name}.py:2"))
    assert status.state is ProbeState.PENDING
    module = importlib.import_module(name)
    assert engine.status(status.probe_id).state is ProbeState.INSTALLED  # type: ignore[union-attr]
    module.f(1)
    assert [h.line for h in engine.drain()] == [2]


def test_removing_the_last_pending_probe_removes_the_import_hook(engine: Engine) -> None:
    before = list(sys.meta_path)
    status = engine.install(snapshot("engtarget_never_imported:f"))
    assert status.state is ProbeState.PENDING
    assert engine.remove(status.probe_id)
    assert sys.meta_path == before


# -- removal, composition, failures ------------------------------------------------------------


def test_removal_restores_the_original_code_and_stops_hits(
    engine: Engine, shapes: ModuleType
) -> None:
    original = shapes.add.__code__
    probe = snapshot(f"{shapes.__name__}:add@{line(shapes, 'add-body')}")
    installed(engine, probe)
    assert engine.remove(probe.id)
    assert not engine.remove(probe.id)
    assert shapes.add.__code__ is original
    shapes.add(1, 2)
    assert engine.drain() == []
    assert engine.status(probe.id) is None


def test_probes_on_one_function_compose_and_remove_independently(
    engine: Engine, shapes: ModuleType
) -> None:
    original = shapes.add.__code__
    body = line(shapes, "add-body")
    probes = [
        snapshot(f"{shapes.__name__}:add@entry"),
        snapshot(f"{shapes.__name__}:add@{body}"),
        snapshot(f"{shapes.__name__}:add@return"),
        make(kind="counter", location=f"{shapes.__name__}:add@{body}"),
    ]
    for probe in probes:
        installed(engine, probe)
    assert shapes.add(1, 2) == 3
    assert sorted(h.location.rsplit("@", 1)[1] for h in engine.drain()) == sorted(
        ["entry", str(body), "return"]
    )
    engine.remove(probes[1].id)
    shapes.add(1, 2)
    assert sorted(h.location.rsplit("@", 1)[1] for h in engine.drain()) == ["entry", "return"]
    assert engine.status(probes[3].id).hits == 2  # type: ignore[union-attr]
    engine.remove_all()
    assert shapes.add.__code__ is original


def test_a_probe_that_cannot_be_placed_leaves_the_others_armed(
    engine: Engine, shapes: ModuleType
) -> None:
    good = snapshot(f"{shapes.__name__}:add")
    installed(engine, good)
    bad = snapshot(f"{shapes.__name__}:add@99999")
    assert engine.install(bad).state is ProbeState.ERROR
    shapes.add(1, 1)
    assert [h.probe_id for h in engine.drain()] == [good.id]
    assert {s.probe_id: s.state for s in engine.statuses()} == {
        good.id: ProbeState.INSTALLED,
        bad.id: ProbeState.ERROR,
    }


def test_installing_the_same_id_again_replaces_the_probe(
    engine: Engine, shapes: ModuleType
) -> None:
    probe = snapshot(f"{shapes.__name__}:add")
    installed(engine, probe)
    installed(engine, probe.with_changes(location=f"{shapes.__name__}:add@entry"))
    shapes.add(1, 1)
    assert [h.location for h in engine.drain()] == [f"{shapes.__name__}:add@entry"]


# -- source check ------------------------------------------------------------------------------


def test_source_line_mismatch_is_an_error_naming_both(engine: Engine, shapes: ModuleType) -> None:
    body = line(shapes, "add-body")
    status = engine.install(snapshot(f"{shapes.__name__}:add@{body}", source_line="total = a - b"))
    assert status.state is ProbeState.ERROR
    assert "'total = a - b'" in (status.reason or "")
    assert "'total = a + b  # add-body'" in (status.reason or "")


def test_matching_source_hash_installs(engine: Engine, shapes: ModuleType) -> None:
    body = line(shapes, "add-body")
    digest = hashlib.sha256(b"total = a + b  # add-body").hexdigest()
    installed(engine, snapshot(f"{shapes.__name__}:add@{body}", source_hash=digest))
    wrong = hashlib.sha256(b"something else").hexdigest()
    status = engine.install(snapshot(f"{shapes.__name__}:add@{body}", source_hash=wrong))
    assert status.state is ProbeState.ERROR
    assert "source mismatch" in (status.reason or "")


def test_function_source_check_uses_the_def_line(engine: Engine, shapes: ModuleType) -> None:
    installed(engine, snapshot(f"{shapes.__name__}:decorated", source_line="def decorated(x):"))


# -- program behaviour is unchanged ------------------------------------------------------------


def test_exception_probe_reports_and_the_program_still_raises_the_same(
    engine: Engine, shapes: ModuleType
) -> None:
    def trace() -> list[tuple[str, int | None]]:
        try:
            shapes.boom(5)
        except ValueError as exc:
            return [(f.name, f.lineno) for f in traceback.extract_tb(exc.__traceback__)]
        raise AssertionError("no exception")

    plain = trace()
    installed(engine, snapshot(f"{shapes.__name__}:boom@exception"))
    installed(engine, snapshot(f"{shapes.__name__}:boom@{line(shapes, 'boom-raise')}"))
    assert trace() == plain
    assert shapes.boom(1) == 1
    hits = engine.drain()
    exc_hit = next(h for h in hits if h.location.endswith("@exception"))
    assert exc_hit.exception == {"type": "ValueError", "message": "bad 5"}
    assert exc_hit.line == line(shapes, "boom-raise")


def test_exception_caught_inside_the_function_is_not_an_exception_hit(
    engine: Engine, shapes: ModuleType
) -> None:
    installed(engine, snapshot(f"{shapes.__name__}:caught@exception"))
    installed(engine, snapshot(f"{shapes.__name__}:caught@{line(shapes, 'caught-div')}"))
    assert shapes.caught(0) == -1
    assert shapes.caught(5) == 2
    assert [h.location.rsplit("@", 1)[1] for h in engine.drain()] == [
        str(line(shapes, "caught-div"))
    ] * 2


def test_generators_keep_their_values(engine: Engine, shapes: ModuleType) -> None:
    installed(engine, snapshot(f"{shapes.__name__}:gen@{line(shapes, 'gen-yield')}"))
    installed(engine, snapshot(f"{shapes.__name__}:gen@return"))
    assert list(shapes.gen(3)) == [0, 2, 4]
    hits = engine.drain()
    assert len(hits) == 4
    assert hits[-1].captures is not None
    assert hits[-1].captures["result"] == 3


def test_coroutines_and_async_generators_keep_their_values(
    engine: Engine, shapes: ModuleType
) -> None:
    installed(engine, snapshot(f"{shapes.__name__}:coro@return"))
    installed(engine, snapshot(f"{shapes.__name__}:agen@{line(shapes, 'agen-yield')}"))

    async def main() -> tuple[int, list[int]]:
        return await shapes.coro(1), [i async for i in shapes.agen(3)]

    assert asyncio.run(main()) == (2, [0, 1, 2])
    hits = engine.drain()
    assert [h.captures["result"] for h in hits if h.location.endswith("@return")] == [2]  # type: ignore[index]
    assert sum(1 for h in hits if not h.location.endswith("@return")) == 3


def test_recursion_fires_once_per_frame(engine: Engine, shapes: ModuleType) -> None:
    installed(engine, snapshot(f"{shapes.__name__}:fact@return"))
    assert shapes.fact(5) == 120
    assert [h.captures["result"] for h in engine.drain()] == [1, 2, 6, 24, 120]  # type: ignore[index]


def test_threads_count_every_hit(engine: Engine, shapes: ModuleType) -> None:
    counter = make(kind="counter", location=f"{shapes.__name__}:add@entry")
    installed(engine, counter)
    threads = [
        threading.Thread(target=lambda: [shapes.add(i, i) for i in range(500)]) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    (agg,) = engine.flush_aggregates()
    assert agg.aggregate == {"count": 2000, "total": 2000}
    assert engine.flush_aggregates() == []


def test_capture_runs_no_user_code(engine: Engine, load: Loader) -> None:
    module = load(
        """
        calls = []

        class Hostile:
            def __repr__(self):
                calls.append("repr")
                return "hostile"

            def __eq__(self, other):
                calls.append("eq")
                return False

            __hash__ = object.__hash__

            def __getattr__(self, name):
                calls.append("getattr")
                raise AttributeError(name)

            @property
            def prop(self):
                calls.append("prop")
                raise RuntimeError("property ran")

        def f():
            h = Hostile()
            return h
        """
    )
    installed(engine, snapshot(f"{module.__name__}:f"))
    module.f()
    (hit,) = engine.drain()
    assert module.calls == []
    assert hit.captures is not None
    assert hit.captures["h"]["@t"] == f"{module.__name__}.Hostile"


# -- kinds ---------------------------------------------------------------------------------------


def test_counter_counts_line_executions(engine: Engine, shapes: ModuleType) -> None:
    probe = make(kind="counter", location=f"{shapes.__name__}:loop@{line(shapes, 'loop-body')}")
    installed(engine, probe)
    assert shapes.loop(10) == 45
    (agg,) = engine.flush_aggregates()
    assert agg.aggregate == {"count": 10, "total": 10}
    assert agg.probe_id == probe.id
    assert engine.drain() == []


def test_counter_at_return_counts_calls(engine: Engine, shapes: ModuleType) -> None:
    installed(engine, make(kind="counter", location=f"{shapes.__name__}:add"))
    for _ in range(3):
        shapes.add(1, 2)
    assert engine.flush_aggregates()[0].aggregate == {"count": 3, "total": 3}


def test_timer_measures_function_calls(engine: Engine, load: Loader) -> None:
    module = load("import time\ndef slow():\n    time.sleep(0.002)\n    return 1\n")
    installed(engine, make(kind="timer", location=f"{module.__name__}:slow"))
    module.slow()
    module.slow()
    (agg,) = engine.flush_aggregates()
    assert agg.aggregate is not None
    assert agg.aggregate["count"] == 2
    assert agg.aggregate["min_ns"] >= 1_500_000
    assert agg.aggregate["sum_ns"] >= agg.aggregate["max_ns"] >= agg.aggregate["min_ns"]


def test_timer_between_two_lines(engine: Engine, load: Loader) -> None:
    module = load(
        "import time\ndef f():\n    a = 1\n    time.sleep(0.002)\n    b = 2\n    return a + b\n"
    )
    installed(engine, make(kind="timer", location=f"{module.__name__}:f@3", until_line=5))
    module.f()
    (agg,) = engine.flush_aggregates()
    assert agg.aggregate is not None
    assert agg.aggregate["count"] == 1
    assert agg.aggregate["min_ns"] >= 1_500_000


def test_snapshot_rate_limit_defaults_to_one_per_second(engine: Engine, shapes: ModuleType) -> None:
    probe = make(kind="snapshot", location=f"{shapes.__name__}:add")
    installed(engine, probe)
    for _ in range(100):
        shapes.add(1, 1)
    assert len(engine.drain()) == 1
    status = engine.status(probe.id)
    assert status is not None
    assert (status.hits, status.skipped_rate) == (1, 99)


def test_a_rate_limited_probe_skips_cheaply_then_captures_again_when_due(
    engine: Engine, shapes: ModuleType
) -> None:
    # 2 per second, burst 1: the next token is 500 ms away, so the gate closes after a hit
    # (skips cost a flag test, inline on the bytecode backend) and the waker reopens it. (At 10
    # a second, 500 calls on a loaded machine could outlast the 100 ms and meet a new token.)
    probe = snapshot(f"{shapes.__name__}:add", limits={"rate": 2, "burst": 1})
    # The reopening is held until the 500 calls are checked: a test thread descheduled for the
    # 500 ms on a loaded machine would otherwise meet the next token among them.
    waker = engine._waker = HeldWaker()
    installed(engine, probe)
    for i in range(500):
        assert shapes.add(i, 1) == i + 1
    status = engine.status(probe.id)
    assert status is not None
    assert (status.hits, status.skipped_rate) == (1, 499)
    assert len(waker.held) == 1, "the gate closed and asked for its reopening"
    waker.release()
    deadline = time.monotonic() + 30
    while status.hits < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
        shapes.add(-1, 1)
        status = engine.status(probe.id)
        assert status is not None
    first, second = engine.drain()
    assert second.captures["a"] == -1, "captured again once the next token was due"
    assert second.ts - first.ts >= 0.45, "and not before"


def test_a_snapshot_in_a_frame_already_running_captures_that_frame(
    engine: Engine, load: Loader
) -> None:
    module = load(
        """
        def numbers(limit):
            total = 0
            for i in range(limit):
                total += i
                yield total  # gen-yield
        """
    )
    running = module.numbers(4)
    assert next(running) == 0  # suspended before the probe exists
    installed(engine, snapshot(f"{module.__name__}:numbers@{line(module, 'gen-yield')}"))
    assert list(running) == [1, 3, 6]
    seen = [(hit.captures["i"], hit.captures["total"]) for hit in engine.drain()]
    if engine.backend_name == "bytecode":
        assert seen == []  # documented: bytecode reaches only calls made after the probe
    else:
        # sys.monitoring reaches the suspended frame (hybrid: through its monitoring half),
        # and the hit holds that frame's locals, not a backend frame's.
        assert seen == [(1, 1), (2, 3), (3, 6)]
    assert list(module.numbers(2)) == [0, 1]
    assert [hit.captures["i"] for hit in engine.drain()] == [0, 1]


def test_max_hits_disables_the_probe_with_a_reason(engine: Engine, shapes: ModuleType) -> None:
    original = shapes.add.__code__
    probe = snapshot(f"{shapes.__name__}:add", limits={"rate": 1e6, "max_hits": 2})
    installed(engine, probe)
    for _ in range(5):
        shapes.add(1, 1)
    assert len(engine.drain()) == 2
    status = engine.status(probe.id)
    assert status is not None
    assert status.state is ProbeState.DISABLED
    assert "max_hits (2)" in (status.reason or "")
    assert shapes.add.__code__ is original  # disabling also takes the hook out


def test_expired_probe_is_disabled(engine: Engine, shapes: ModuleType) -> None:
    probe = snapshot(f"{shapes.__name__}:add", limits={"rate": 1e6, "expires_at": time.time() - 1})
    installed(engine, probe)
    shapes.add(1, 1)
    assert engine.drain() == []
    status = engine.status(probe.id)
    assert status is not None
    assert status.state is ProbeState.DISABLED
    assert "expired" in (status.reason or "")


def test_expired_counter_is_disabled_off_the_hot_path(engine: Engine, shapes: ModuleType) -> None:
    probe = make(
        kind="counter", location=f"{shapes.__name__}:add@entry", limits={"expires_at": 1.0}
    )
    installed(engine, probe)
    assert engine.status(probe.id).state is ProbeState.DISABLED  # type: ignore[union-attr]


def test_cpu_budget_disables_an_expensive_probe(shapes: ModuleType) -> None:
    engine = Engine(cpu_budget=1e-9)  # 1 ns per second: every capture is over budget
    try:
        probe = snapshot(f"{shapes.__name__}:add")
        installed(engine, probe)
        for _ in range(3):
            shapes.add(1, 1)
        status = engine.status(probe.id)
        assert status is not None
        assert status.state is ProbeState.DISABLED
        assert "CPU budget" in (status.reason or "")
        # The first hit only switches the budget to CPU time; the second, measured, is over the
        # cap (one may be the host's outlier), and the third, over it again, disables.
        assert len(engine.drain()) == 3
    finally:
        engine.close()


def test_full_sink_drops_and_counts(shapes: ModuleType) -> None:
    engine = Engine(sink_size=3, cpu_budget=1.0)
    try:
        probe = snapshot(f"{shapes.__name__}:add")
        installed(engine, probe)
        for _ in range(5):
            shapes.add(1, 1)
        assert engine.dropped == 2
        assert engine.status(probe.id).drops == 2  # type: ignore[union-attr]
        assert len(engine.drain(max_items=2)) == 2
        assert len(engine.drain()) == 1
    finally:
        engine.close()


def test_on_hit_receives_hits_and_its_errors_are_counted(
    engine: Engine, shapes: ModuleType
) -> None:
    got: list[Hit] = []
    probe = snapshot(f"{shapes.__name__}:add")
    engine.install(probe, on_hit=got.append)
    shapes.add(1, 2)
    assert [h.captures for h in got] == [{"a": 1, "b": 2, "total": 3, "result": 3}]
    assert engine.drain() == []

    def broken(hit: Hit) -> None:
        raise RuntimeError("consumer bug")

    engine.install(probe, on_hit=broken)
    assert shapes.add(1, 2) == 3
    assert engine.status(probe.id).errors == 1  # type: ignore[union-attr]


def test_hit_ids_are_prefix_and_sequence(engine: Engine, shapes: ModuleType) -> None:
    installed(engine, snapshot(f"{shapes.__name__}:add"))
    shapes.add(1, 1)
    shapes.add(1, 1)
    first, second = (h.hit_id.rsplit("-", 1) for h in engine.drain())
    assert first[0] == second[0]
    assert int(second[1]) == int(first[1]) + 1


def test_missing_plain_name_capture_is_reported_not_raised(
    engine: Engine, shapes: ModuleType
) -> None:
    installed(engine, snapshot(f"{shapes.__name__}:add@entry", capture=["a", "total"]))
    shapes.add(1, 2)
    (hit,) = engine.drain()
    assert hit.captures == {"a": 1}
    assert hit.errors is not None
    assert "'total'" in hit.errors[0]


def test_get_engine_is_one_per_process() -> None:
    assert get_engine() is get_engine()


# -- expressions (sensor.expressions) --------------------------------------------------------------


@pytest.fixture
def expressions() -> ModuleType:
    # The sandbox (sensor.expressions) must be present: these tests are not optional.
    return importlib.import_module("sensor.expressions")


def test_condition_filters_hits(
    engine: Engine, shapes: ModuleType, expressions: ModuleType
) -> None:
    probe = snapshot(f"{shapes.__name__}:add", condition="a > 1")
    installed(engine, probe)
    shapes.add(1, 1)
    shapes.add(2, 1)
    assert [h.captures["a"] for h in engine.drain()] == [2]  # type: ignore[index]
    assert engine.status(probe.id).skipped_condition == 1  # type: ignore[union-attr]


def test_expect_probe_captures_only_violations(
    engine: Engine, shapes: ModuleType, expressions: ModuleType
) -> None:
    probe = make(kind="expect", location=f"{shapes.__name__}:add", expect="result < 10")
    installed(engine, probe)
    shapes.add(1, 1)
    shapes.add(10, 1)
    (hit,) = engine.drain()
    assert hit.expect == {"ok": False, "error": None}
    assert hit.captures is not None
    assert hit.captures["result"] == 11


def test_snapshot_with_expect_records_the_verdict_on_every_hit(
    engine: Engine, shapes: ModuleType, expressions: ModuleType
) -> None:
    installed(engine, snapshot(f"{shapes.__name__}:add", expect="result < 10"))
    shapes.add(1, 1)
    shapes.add(10, 1)
    assert [h.expect for h in engine.drain()] == [
        {"ok": True, "error": None},
        {"ok": False, "error": None},
    ]


def test_log_probe_formats_its_template(
    engine: Engine, shapes: ModuleType, expressions: ModuleType
) -> None:
    probe = make(kind="log", location=f"{shapes.__name__}:add", template="sum={result} of {a}")
    installed(engine, probe)
    # The whole message has a wall-time budget: a thread descheduled between two fields on a
    # loaded machine renders the rest as the budget error (by design). Three tries; any message
    # that is not that error must be the formatted one.
    budget_error = "{!error: template time budget exhausted}"
    messages = []
    for _ in range(3):
        shapes.add(2, 3)
        (hit,) = engine.drain()
        messages.append(hit.message)
        if budget_error not in (hit.message or ""):
            break
    assert messages[-1] == "sum=5 of 2", messages


def test_capture_expressions_are_evaluated(
    engine: Engine, shapes: ModuleType, expressions: ModuleType
) -> None:
    installed(engine, snapshot(f"{shapes.__name__}:add", capture={"twice": "result * 2"}))
    shapes.add(2, 3)
    assert [h.captures for h in engine.drain()] == [{"twice": 10}]


def test_exception_is_a_name_for_expressions(
    engine: Engine, shapes: ModuleType, expressions: ModuleType
) -> None:
    installed(
        engine,
        snapshot(f"{shapes.__name__}:boom@exception", condition="exception is not None"),
    )
    with pytest.raises(ValueError, match="bad 3"):
        shapes.boom(3)
    assert len(engine.drain()) == 1


def test_invalid_expression_is_an_error_status(
    engine: Engine, shapes: ModuleType, expressions: ModuleType
) -> None:
    status = engine.install(snapshot(f"{shapes.__name__}:add", condition="__import__('os')"))
    assert status.state is ProbeState.ERROR
    assert "invalid expression" in (status.reason or "")


def test_a_closure_made_between_two_placements_is_picked_up(
    engine: Engine, shapes: ModuleType
) -> None:
    first = shapes.outer(1)
    installed(engine, snapshot(f"{shapes.__name__}:outer.<locals>.inner@entry"))
    second = shapes.outer(2)
    installed(engine, snapshot(f"{shapes.__name__}:outer.<locals>.inner@return"))
    first(0)
    second(0)
    assert len(engine.drain()) == 4


def test_validate_compiles_every_expression(expressions: ModuleType) -> None:
    from sensor.engine import validate
    from sensor.errors import ExpressionError

    validate(snapshot("m:f", condition="a > 1", capture=["x", "len(y)"], expect="result == 1"))
    with pytest.raises(ExpressionError):
        validate(snapshot("m:f", capture=["__import__('os')"]))


def test_a_forked_child_gets_a_new_hit_id_prefix(engine: Engine, shapes: ModuleType) -> None:
    from sensor import engine as engine_module

    installed(engine, snapshot(f"{shapes.__name__}:add"))
    shapes.add(1, 1)
    before = engine.drain()[0].hit_id.rsplit("-", 1)[0]
    engine_module._after_fork_in_child()
    shapes.add(1, 1)
    after = engine.drain()[0].hit_id.rsplit("-", 1)[0]
    assert before != after


def test_a_file_glob_on_the_deny_list_refuses_path_and_function_probes(
    engine: Engine, shapes: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sensor import deny

    monkeypatch.setenv("SENSOR_DENY", f"*/{shapes.__name__}.py")
    deny.set_deny_list(None)
    try:
        for location in (
            f"{shapes.__name__}:add",
            f"{shapes.__name__}.py:{line(shapes, 'add-body')}",
        ):
            status = engine.install(snapshot(location))
            assert status.state is ProbeState.ERROR, location
            assert "deny list" in (status.reason or "") or "glob" in (status.reason or "")
    finally:
        monkeypatch.delenv("SENSOR_DENY")
        deny.set_deny_list(None)


TORTURE = """
import contextlib

def torture(n):
    total = 0
    for i in range(n):
        if i % 2:
            continue
        total += i
    else:
        total += 100
    while n > 0:
        n -= 3
        if n == 1:
            break
    squares = [k * k for k in range(4) if k]
    try:
        total += 1 // (n - n)
    except ZeroDivisionError as exc:
        total += len(type(exc).__name__)
    finally:
        total += 1
    with contextlib.suppress(KeyError):
        {}["missing"]
    match total % 3:
        case 0:
            total += 7
        case _:
            total -= 7
    gen = (x for x in squares)
    return total + sum(gen) + (lambda q: q * 2)(3)

async def atorture(n):
    out = []
    async def agen():
        for i in range(n):
            yield i
    async for value in agen():
        out.append(value)
    try:
        raise KeyError(n)
    except KeyError:
        out.append(-1)
    return out
"""


def test_counters_on_every_line_leave_the_results_unchanged(engine: Engine, load: Loader) -> None:
    from sensor.inject.locate import code_lines

    module = load(TORTURE)
    expected = (module.torture(10), asyncio.run(module.atorture(3)))
    for fn in (module.torture, module.atorture):
        for number in sorted(code_lines(fn.__code__) - {fn.__code__.co_firstlineno}):
            probe = make(kind="counter", location=f"{module.__name__}:{fn.__name__}@{number}")
            installed(engine, probe)
        installed(engine, snapshot(f"{module.__name__}:{fn.__name__}@exception"))
        installed(engine, snapshot(f"{module.__name__}:{fn.__name__}@return"))
    assert (module.torture(10), asyncio.run(module.atorture(3))) == expected
    counts = {hit.location: hit.aggregate for hit in engine.flush_aggregates()}
    assert len(counts) > 20
    assert all(agg and agg["count"] >= 1 for agg in counts.values())
    assert len([h for h in engine.drain() if h.location.endswith("@return")]) == 2
    engine.remove_all()
    assert (module.torture(10), asyncio.run(module.atorture(3))) == expected


def test_exceptions_leaving_coroutines_are_reported(engine: Engine, load: Loader) -> None:
    module = load(
        """
        import asyncio

        async def fails(x):
            await asyncio.sleep(0)
            raise LookupError(x)
        """
    )
    installed(engine, snapshot(f"{module.__name__}:fails@exception"))
    with pytest.raises(LookupError):
        asyncio.run(module.fails(7))
    (hit,) = engine.drain()
    assert hit.exception is not None
    assert hit.exception["type"] == "LookupError"


def test_placing_and_removing_while_threads_run_the_code(
    engine: Engine, shapes: ModuleType
) -> None:
    stop = threading.Event()
    wrong: list[object] = []
    calls = itertools.count()

    def worker() -> None:
        deadline = time.monotonic() + 10
        while not stop.is_set() and time.monotonic() < deadline:
            next(calls)
            if shapes.add(2, 3) != 5 or shapes.fact(4) != 24:
                wrong.append("result")

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for round_number in range(30):
            probes = [
                snapshot(f"{shapes.__name__}:add@{line(shapes, 'add-body')}"),
                make(kind="counter", location=f"{shapes.__name__}:fact@entry"),
                snapshot(f"{shapes.__name__}:fact@return", limits={"rate": 1000}),
            ]
            for probe in probes:
                installed(engine, probe)
            time.sleep(0.002)
            if round_number % 2:
                engine.remove_all()
            else:
                for probe in probes:
                    engine.remove(probe.id)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=10)
    assert wrong == []
    assert next(calls) > 30
    assert all(s.errors == 0 for s in engine.statuses())
