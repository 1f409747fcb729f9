"""Placing a probe walks the heap once per change, and still reaches every function object.

``gc.get_referrers`` and ``gc.get_objects`` walk every object the collector tracks with the GIL
held: in a service with a large heap each walk stops every thread of the host. These tests count
the walks the bytecode backend makes (through its module's ``gc``) for one placement and one
removal, and check that the function objects the walks exist to find still get the rebuilt code.
"""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from sensor.engine import Engine
from sensor.inject import bytecode_backend
from sensor.probes import Probe, ProbeState

Loader = Callable[..., ModuleType]

BYTECODE_BACKENDS = ["bytecode"] + (["hybrid"] if sys.version_info >= (3, 12) else [])
# conftest's engine, on the backends that inject bytecode only.
pytestmark = pytest.mark.parametrize("engine", BYTECODE_BACKENDS, indirect=True)

SOURCE = """
def plain(x):
    a = x + 1
    b = a * 2
    c = b - 3
    if c > 0:
        c = -c
    return c

def outer(k):
    def inner(n):
        m = n + k
        m = m * 2
        return m
    return inner
"""


class CountingGc:
    """The ``gc`` module with its two heap walks counted."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def get_referrers(self, *objs: Any) -> list[Any]:
        self.calls.append("get_referrers")
        return gc.get_referrers(*objs)

    def get_objects(self, *args: Any) -> list[Any]:
        self.calls.append("get_objects")
        return gc.get_objects(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(gc, name)


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> CountingGc:
    counting = CountingGc()
    monkeypatch.setattr(bytecode_backend, "gc", counting)
    return counting


def install(engine: Engine, probe: Probe) -> None:
    status = engine.install(probe)
    assert status.state is ProbeState.INSTALLED, status.reason


def test_a_lines_probe_on_a_module_level_function_walks_the_heap_once(
    engine: Engine, load: Loader, walks: CountingGc
) -> None:
    module = load(SOURCE)
    original = module.plain.__code__
    expected = module.plain(5)
    probe = Probe(kind="lines", location=f"{module.__name__}:plain")
    install(engine, probe)
    # One walk for the whole probe: it used to be one per line and per exit hook.
    assert walks.calls == ["get_referrers"]
    assert module.plain.__code__ is not original
    assert module.plain(5) == expected
    walks.calls.clear()
    engine.remove(probe.id)
    assert walks.calls == []  # no function object of module-level code appears unseen
    assert module.plain.__code__ is original


def test_a_lines_probe_on_a_closure_walks_the_heap_at_most_twice(
    engine: Engine, load: Loader, walks: CountingGc
) -> None:
    module = load(SOURCE)
    before = module.outer(1)  # made before the probe: only a walk of the heap finds it
    inner_code, outer_code = before.__code__, module.outer.__code__
    probe = Probe(kind="lines", location=f"{module.__name__}:outer.<locals>.inner")
    install(engine, probe)
    # One scan of the functions of the file (parents and function objects), and one
    # look-up of the closures made since, right before the swap.
    assert walks.calls.count("get_objects") <= 1
    assert walks.calls.count("get_referrers") <= 1
    assert before.__code__ is not inner_code
    after = module.outer(2)  # made from the parent's patched constants
    assert after.__code__ is before.__code__
    assert (before(1), after(1)) == (4, 6)
    walks.calls.clear()
    engine.remove(probe.id)
    assert walks.calls.count("get_referrers") <= 1
    assert "get_objects" not in walks.calls
    assert before.__code__ is inner_code
    assert after.__code__ is inner_code
    assert module.outer.__code__ is outer_code


def test_a_copy_of_a_module_level_function_gets_the_rebuilt_code(
    engine: Engine, load: Loader
) -> None:
    module = load(SOURCE)
    original = module.plain.__code__
    # A function object made from the same code, reachable from nowhere the location names.
    hidden = [types.FunctionType(original, module.__dict__, "plain_copy")]
    probe = Probe(kind="counter", location=f"{module.__name__}:plain@entry")
    install(engine, probe)
    assert hidden[0].__code__ is module.plain.__code__ is not original
    hidden[0](1)
    module.plain(1)
    (agg,) = [hit.aggregate for hit in engine.flush_aggregates()]
    assert agg is not None
    assert agg["count"] == 2
    engine.remove(probe.id)
    assert hidden[0].__code__ is original


def test_two_probes_on_one_closure_each_reach_closures_made_before_them(
    engine: Engine, load: Loader, walks: CountingGc
) -> None:
    module = load(SOURCE)
    first = module.outer(1)
    inner_code = first.__code__
    install(engine, Probe(kind="counter", location=f"{module.__name__}:outer.<locals>.inner@entry"))
    second = module.outer(2)  # runs the first rebuild
    walks.calls.clear()
    install(engine, Probe(kind="lines", location=f"{module.__name__}:outer.<locals>.inner"))
    assert walks.calls.count("get_referrers") <= 1
    assert first.__code__ is second.__code__ is module.outer(3).__code__
    engine.remove_all()
    assert first.__code__ is second.__code__ is module.outer(3).__code__ is inner_code


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The qualnames of the code objects the bytecode backend instruments, in order."""
    built: list[str] = []
    instrument = bytecode_backend.instrument

    def counting(code: types.CodeType, *args: Any, **kwargs: Any) -> types.CodeType:
        built.append(code.co_qualname)
        return instrument(code, *args, **kwargs)

    monkeypatch.setattr(bytecode_backend, "instrument", counting)
    return built


@pytest.mark.parametrize("qualname", ["plain", "outer.<locals>.inner"])
def test_placing_a_one_hook_probe_instruments_the_code_once(
    engine: Engine, load: Loader, builds: list[str], qualname: str
) -> None:
    # arm() builds the code to say at once whether the hook can be placed; the swap at the end
    # of the change must reuse that build, not make it again (it did: twice the placement's
    # CPU, 3.13's line placement matrix took 40% longer).
    module = load(SOURCE)
    made = module.outer(1)
    line = (module.plain if qualname == "plain" else made).__code__.co_firstlineno + 2
    probe = Probe(kind="counter", location=f"{module.__name__}:{qualname}@{line}")
    install(engine, probe)
    assert builds == [qualname]
    assert (module.plain(5), made(1), module.outer(2)(1)) == (-9, 4, 6)
    (agg,) = [hit.aggregate for hit in engine.flush_aggregates()]
    assert agg is not None
    assert agg["count"] == (1 if qualname == "plain" else 2)
    builds.clear()
    engine.remove(probe.id)
    assert builds == []  # the original code goes back: nothing to build
