"""A closed gate's entry sequence: every skipped call counted exactly, with no call, and cheap.

The bytecode and hybrid backends count a closed gate's skip with ``FOR_ITER`` over its tally
(no ``next()`` call), in top-level code, in nested code and in the checked variant that runs
while a thread does sensor work; and on 3.13 a function whose code was swapped keeps a version,
so that its callers' call sites still specialise.
"""

from __future__ import annotations

import dis
import itertools
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from sensor import threads
from sensor.engine import Engine
from sensor.guards import Switch, tally_count
from sensor.inject import funcversion
from sensor.inject.bytecode_backend import BytecodeBackend
from sensor.probes import Hit, Point, Probe, ProbeState

Loader = Callable[..., ModuleType]

TARGET = """
def hot(x):
    y = x + 1
    return y * 2

def looped(x):
    total = 0
    for i in range(10):
        if i & 1:
            total += i
        else:
            total -= x
    return total

def outer(n):
    def inner(k):
        return k + n
    return inner

def caller(fn, n):
    for i in range(n):
        fn(i)
"""


def _lines(engine: Engine, location: str, **limits: object) -> tuple[Probe, list[Hit]]:
    hits: list[Hit] = []
    probe = Probe(kind="lines", location=location, limits=limits)
    status = engine.install(probe, on_hit=hits.append)
    assert status.state is ProbeState.INSTALLED, status.reason
    return probe, hits


def _skipped(engine: Engine, probe: Probe) -> int:
    status = engine.status(probe.id)
    assert status is not None
    return status.skipped_rate


@pytest.mark.parametrize("name", ["hot", "looped"])
def test_between_samples_every_call_is_counted_once_and_samples_still_come(
    engine: Engine, load: Loader, name: str
) -> None:
    mod = load(TARGET)
    fn = getattr(mod, name)
    expected = [fn(i) for i in range(300)]
    probe, hits = _lines(engine, f"{mod.__name__}:{name}", rate=1e-3, burst=1)
    assert [fn(i) for i in range(300)] == expected
    # One token: the first call is sampled (with the lines it ran), the other 299 skipped.
    assert len(hits) == 1
    assert hits[0].lines is not None
    assert hits[0].lines["ran"]
    assert _skipped(engine, probe) == 299
    engine.remove(probe.id)
    # Every call sampled: no skip, one hit each.
    probe, hits = _lines(engine, f"{mod.__name__}:{name}", rate=1e9, burst=10**9)
    assert [fn(i) for i in range(50)] == expected[:50]
    assert len(hits) == 50
    assert _skipped(engine, probe) == 0


def test_calls_on_a_thread_doing_sensor_work_are_not_counted(engine: Engine, load: Loader) -> None:
    # The checked variant (top-level code) counts through checked_next: the sensor's own
    # calls are invisible, the host's counted exactly, while the sensor thread works.
    mod = load(TARGET)
    probe, hits = _lines(engine, f"{mod.__name__}:hot", rate=1e-3, burst=1)
    mod.hot(0)  # the one sampled call
    working, release = threading.Event(), threading.Event()

    def sensor() -> None:
        working.set()
        for i in range(40):
            mod.hot(i)
        release.wait(30)
        for i in range(40):
            mod.hot(i)

    thread = threads.SensorThread(sensor, name="test-gate-entry")
    thread.start()
    assert working.wait(10)
    assert threads.BUSY, "a thread does sensor work: the checked variant runs"
    for i in range(7):
        mod.hot(i)
    release.set()
    thread.join(30)
    for i in range(5):
        mod.hot(i)
    assert len(hits) == 1
    assert _skipped(engine, probe) == 12


def test_a_nested_function_counts_its_skips_too(engine: Engine, load: Loader) -> None:
    mod = load(TARGET)
    inner = mod.outer(1)
    probe, hits = _lines(engine, f"{mod.__name__}:outer.<locals>.inner", rate=1e-3, burst=1)
    assert [inner(i) for i in range(30)] == [i + 1 for i in range(30)]
    assert [mod.outer(2)(i) for i in range(20)] == [i + 2 for i in range(20)]
    assert len(hits) == 1
    assert _skipped(engine, probe) == 49


def _gate_hook(switch: Switch, skips: Any, calls: list[int]) -> Any:
    def hook() -> None:
        calls.append(1)

    hook.sensor_switch = (switch, skips)  # type: ignore[attr-defined]
    return hook


@pytest.mark.parametrize("where", ["top-level", "checked", "nested", "nested-busy"])
def test_a_tally_that_ran_out_lets_the_function_run_on(load: Loader, where: str) -> None:
    # After sys.maxsize counts the tally's loop ends: the code must run on unchanged. A tally
    # of 3 makes that path reachable, in each variant of the code.
    mod = load(TARGET)
    nested = where.startswith("nested")
    fn = mod.outer(5) if nested else mod.hot
    want = [fn(i) for i in range(6)]
    switch, skips, calls = Switch(), itertools.repeat(None, 3), []
    backend = BytecodeBackend()
    release = threading.Event()
    # Another thread in sensor work: nested code takes its checked branch inline.
    busy = threads.SensorThread(lambda: release.wait(30), name="test-gate-busy")
    try:
        backend.arm(fn.__code__, Point.ENTRY, None, _gate_hook(switch, skips, calls))
        if where == "checked":
            backend.set_checked(True)
        if where == "nested-busy":
            busy.start()
            while not threads.BUSY:
                release.wait(0.001)
        assert [fn(i) for i in range(6)] == want
        assert skips.__length_hint__() == 0, "three counted, then ran out"
        switch.on = True
        assert [fn(i) for i in range(6)] == want
        assert len(calls) == 6
    finally:
        release.set()
        if busy.is_alive():
            busy.join(30)
        backend.close()


def test_a_closed_gate_counts_without_a_call(load: Loader) -> None:
    # White box: the skip path is LOAD_CONST tally; FOR_ITER, no next(); the checked variant
    # has the same instructions with the tally swapped for one that checks sensor work.
    mod = load(TARGET)
    switch, skips, calls = Switch(), itertools.repeat(None, sys.maxsize), []
    backend = BytecodeBackend()
    try:
        backend.arm(mod.hot.__code__, Point.ENTRY, None, _gate_hook(switch, skips, calls))
        fast = mod.hot.__code__
        assert next not in fast.co_consts
        assert skips in fast.co_consts
        ops = [ins.opname for ins in dis.get_instructions(fast)]
        assert "FOR_ITER" in ops
        for i in range(10):
            mod.hot(i)
        assert tally_count(skips) == 10
        assert calls == []
        backend.set_checked(True)
        checked = mod.hot.__code__
        assert checked is not fast
        assert checked.co_code == fast.co_code
        assert skips not in checked.co_consts
        for i in range(4):
            mod.hot(i)
        assert tally_count(skips) == 14  # the host's calls, through checked_next
    finally:
        backend.close()


def _call_specialised(caller: Any) -> bool:
    names = [ins.opname for ins in dis.get_instructions(caller, adaptive=True)]
    return "CALL_PY_EXACT_ARGS" in names


@pytest.mark.skipif(
    funcversion.OFFSET is None, reason="only CPython 3.13 drops the version of a swapped function"
)
@pytest.mark.parametrize("kind", ["lines", "counter"])
def test_calls_of_a_probed_function_still_specialise_on_313(
    engine: Engine, load: Loader, kind: str
) -> None:
    if engine.backend_name == "monitoring":
        pytest.skip("sys.monitoring does not swap the code")
    mod = load(TARGET)
    mod.caller(mod.hot, 100)
    assert _call_specialised(mod.caller)
    if kind == "lines":
        probe, _hits = _lines(engine, f"{mod.__name__}:hot", rate=1e-3, burst=1)
    else:
        probe = Probe(kind="counter", location=f"{mod.__name__}:hot@entry")
        assert engine.install(probe).state is ProbeState.INSTALLED
    code = mod.hot.__code__
    caller = load(TARGET).caller  # a fresh call site, never specialised
    caller(mod.hot, 100)
    assert mod.hot.__code__ is code, "the rebuilt code runs"
    assert _call_specialised(caller), "the call site specialised on the rebuilt code"
    engine.remove(probe.id)
    fresh = load(TARGET).caller
    fresh(mod.hot, 100)
    assert _call_specialised(fresh), "and on the original code again"


@pytest.mark.skipif(
    funcversion.OFFSET is None, reason="only CPython 3.13 drops the version of a swapped function"
)
@pytest.mark.parametrize("switch", [None, "false"])
def test_the_func_version_switch_leaves_a_probed_function_at_version_0_on_313(
    engine: Engine, load: Loader, monkeypatch: pytest.MonkeyPatch, switch: str | None
) -> None:
    if engine.backend_name == "monitoring":
        pytest.skip("sys.monitoring does not swap the code")
    if switch is None:
        monkeypatch.delenv(funcversion.ENV, raising=False)
    else:
        monkeypatch.setenv(funcversion.ENV, switch)
    mod = load(TARGET)
    before = [mod.hot(i) for i in range(5)]
    probe = Probe(kind="counter", location=f"{mod.__name__}:hot@entry")
    assert engine.install(probe).state is ProbeState.INSTALLED
    caller = load(TARGET).caller  # a fresh call site, never specialised
    caller(mod.hot, 100)
    version = funcversion._read(mod.hot, funcversion.OFFSET)
    if switch is None:  # as before the switch existed: the version of the rebuilt code
        assert version == funcversion.code_version(mod.hot.__code__) != 0
        assert _call_specialised(caller)
    else:
        assert version == 0, "the switch is off: nothing written into the function object"
        assert not _call_specialised(caller)
    assert [mod.hot(i) for i in range(5)] == before, "the function behaves the same"
    engine.remove(probe.id)
    restored = funcversion._read(mod.hot, funcversion.OFFSET)
    assert (restored == 0) is (switch is not None)
    assert [mod.hot(i) for i in range(5)] == before


def test_a_bad_func_version_switch_is_logged_once_and_counts_as_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(funcversion.ENV, "flase")
    with caplog.at_level("WARNING", logger="sensor"):
        assert funcversion.enabled() is False
        assert funcversion.enabled() is False
    messages = [r.getMessage() for r in caplog.records if funcversion.ENV in r.getMessage()]
    assert messages == [
        "sensor: SENSOR_FUNC_VERSION: got 'flase', expected one of 1, true, yes, on, 0, false, "
        "no, off; not writing function versions"
    ]
    monkeypatch.setenv(funcversion.ENV, "on")
    assert funcversion.enabled() is True


def test_the_version_written_is_the_one_make_function_gives() -> None:
    if funcversion.OFFSET is None:
        assert funcversion.code_version((lambda: 1).__code__) == 0
        return

    def base() -> int:
        return 1

    def other() -> int:
        return 2

    made = [(lambda: lambda: 2)() for _ in range(2)]  # two functions by MAKE_FUNCTION
    number = funcversion.code_version(made[0].__code__)
    assert number != 0
    assert number == funcversion.code_version(made[1].__code__)
    assert number != funcversion.code_version(base.__code__)
    funcversion.set_code(base, other.__code__, funcversion.code_version(other.__code__))
    assert base() == 2
