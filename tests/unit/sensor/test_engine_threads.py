"""No probe fires on a thread doing sensor work, on every backend, and the host's path is as fast.

The real agent against a real hub is in tests/integration/test_sensor_threads.py; here threads
that do sensor work are driven directly, so each mode and each kind of hook is exercised.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest

from sensor import guards, threads
from sensor.engine import Engine
from sensor.probes import Probe, ProbeState, ProbeStatus

Loader = Callable[..., ModuleType]

TARGET = """
def work(x):
    y = x + 1  # work-body
    if x < 0:
        raise ValueError(x)
    return y

def outer(n):
    def inner(k):
        return k + n  # inner-body
    return inner

def looping(n):
    total = 0
    for i in range(n):
        total += i  # looping-body
    return total

def ticks(n):
    for i in range(n):
        yield i  # ticks-yield
"""


@pytest.fixture
def target(load: Loader) -> ModuleType:
    return load(TARGET)


def line_of(module: ModuleType, marker: str) -> int:
    import sys
    from pathlib import Path

    path = sys.modules[module.__name__].__file__
    assert path is not None
    for number, text in enumerate(Path(path).read_text().splitlines(), 1):
        if text.rstrip().endswith(f"# {marker}"):
            return number
    raise AssertionError(marker)


def place(engine: Engine, **fields: Any) -> Probe:
    probe = Probe(**fields)
    status = engine.install(probe)
    assert status.state is ProbeState.INSTALLED, status.reason
    return probe


def status_of(engine: Engine, probe: Probe) -> ProbeStatus:
    status = engine.status(probe.id)
    assert status is not None
    return status


def every_kind(engine: Engine, target: ModuleType) -> dict[str, Probe]:
    name = target.__name__
    body = line_of(target, "work-body")
    return {
        "counter_entry": place(engine, kind="counter", location=f"{name}:work@entry"),
        "counter_line": place(engine, kind="counter", location=f"{name}:work@{body}"),
        "counter_return": place(engine, kind="counter", location=f"{name}:work@return"),
        "timer": place(engine, kind="timer", location=f"{name}:work"),
        "snapshot": place(
            engine, kind="snapshot", location=f"{name}:work@{body}", limits={"rate": 1e6}
        ),
        "expect": place(
            engine,
            kind="expect",
            location=f"{name}:work@return",
            expect="result < 0",  # violated on every call: every evaluation is a hit
            limits={"rate": 1e6},
        ),
        "exception": place(
            engine, kind="snapshot", location=f"{name}:work@exception", limits={"rate": 1e6}
        ),
        # A 1/s snapshot closes after its hit: skips are counted inline, by next(skips).
        "closed": place(
            engine, kind="snapshot", location=f"{name}:work@{body}", limits={"rate": 1}
        ),
    }


def calls(target: ModuleType, n: int) -> None:
    for i in range(n):
        target.work(i)
        try:
            target.work(-1)
        except ValueError:
            pass


def run_as_sensor_thread(fn: Callable[[], object]) -> None:
    done: list[BaseException | None] = []

    def body() -> None:
        try:
            fn()
            done.append(None)
        except BaseException as exc:
            done.append(exc)

    thread = threads.SensorThread(body, name="test-sensor-thread")
    thread.start()
    thread.join(30)
    assert done == [None]


def counts(engine: Engine, probes: dict[str, Probe]) -> dict[str, tuple[int, int, int]]:
    out = {}
    for name, probe in probes.items():
        status = status_of(engine, probe)
        out[name] = (status.hits, status.skipped_rate, status.evaluations + status.exceptions)
    return out


@pytest.mark.usefixtures("still")  # the 1/s probe's counts: not the machine's speed
def test_no_probe_fires_on_a_sensor_thread(engine: Engine, target: ModuleType) -> None:
    probes = every_kind(engine, target)
    run_as_sensor_thread(lambda: calls(target, 50))
    assert engine.drain() == []
    assert engine.flush_aggregates() == []
    assert set(counts(engine, probes).values()) == {(0, 0, 0)}, counts(engine, probes)
    calls(target, 3)  # the host's own calls still fire
    aggregates = {hit.probe_id: hit.aggregate for hit in engine.flush_aggregates()}
    assert aggregates[probes["counter_entry"].id] == {"count": 6, "total": 6}
    assert aggregates[probes["counter_line"].id] == {"count": 6, "total": 6}
    assert aggregates[probes["counter_return"].id] == {"count": 3, "total": 3}
    assert aggregates[probes["timer"].id]["count"] == 3  # type: ignore[index]
    got = counts(engine, probes)
    assert got["snapshot"] == (6, 0, 0)
    assert got["expect"][0] == 6  # 3 violations at return, 3 exception exits
    assert got["exception"] == (3, 0, 3)
    assert got["closed"] == (1, 5, 0)


@pytest.mark.usefixtures("still")  # the 1/s probe's counts: not the machine's speed
def test_host_calls_made_while_a_sensor_thread_works_are_counted_exactly(
    engine: Engine, target: ModuleType
) -> None:
    # The checked mode: the host's hits go through checked_next and the hooks' own test.
    probes = every_kind(engine, target)
    working, release = threading.Event(), threading.Event()

    def sensor() -> None:
        working.set()
        calls(target, 20)
        release.wait(30)  # threading.Event: Python code, so this is sensor work throughout
        calls(target, 20)

    thread = threads.SensorThread(sensor, name="test-sensor-thread")
    thread.start()
    assert working.wait(10)
    assert threads.BUSY, "a thread does sensor work: the checked mode"
    calls(target, 7)
    release.set()
    thread.join(30)
    aggregates = {hit.probe_id: hit.aggregate for hit in engine.flush_aggregates()}
    assert aggregates[probes["counter_entry"].id] == {"count": 14, "total": 14}
    assert aggregates[probes["counter_line"].id] == {"count": 14, "total": 14}
    assert aggregates[probes["counter_return"].id] == {"count": 7, "total": 7}
    got = counts(engine, probes)
    assert got["snapshot"] == (14, 0, 0)
    assert got["exception"] == (7, 0, 7)
    assert got["closed"] == (1, 13, 0)


def test_a_nested_function_and_a_frame_already_running_are_covered_too(
    engine: Engine, target: ModuleType
) -> None:
    inner = target.outer(1)
    running = target.ticks(10)
    assert next(running) == 0  # suspended before the probes exist (sys.monitoring reaches it)
    name = target.__name__
    nested = place(
        engine,
        kind="counter",
        location=f"{name}:outer.<locals>.inner@{line_of(target, 'inner-body')}",
    )
    loop = place(
        engine, kind="counter", location=f"{name}:looping@{line_of(target, 'looping-body')}"
    )
    tick = place(engine, kind="counter", location=f"{name}:ticks@{line_of(target, 'ticks-yield')}")
    run_as_sensor_thread(
        lambda: [inner(2), target.outer(2)(3), target.looping(10), next(running), next(running)]
    )
    assert engine.flush_aggregates() == []
    inner(2)
    target.looping(4)
    assert [next(running) for _ in range(3)] == [3, 4, 5]
    aggregates = {hit.probe_id: hit.aggregate for hit in engine.flush_aggregates()}
    expected = {nested.id: {"count": 1, "total": 1}, loop.id: {"count": 4, "total": 4}}
    if engine.backend_name != "bytecode":  # bytecode does not reach a frame already running
        expected[tick.id] = {"count": 3, "total": 3}
    assert aggregates == expected


def test_the_host_runs_the_fast_code_whenever_no_thread_does_sensor_work(
    target: ModuleType,
) -> None:
    # White box: the counter's rebuilt code calls the builtin next() unless a thread does
    # sensor work, and the checked copy then (same instructions, one constant swapped).
    engine = Engine(backend="bytecode", cpu_budget=1.0)
    try:
        place(engine, kind="counter", location=f"{target.__name__}:work@entry")
        # BUSY is the process's: a thread another test left (an agent finishing its last
        # push) may still do sensor work for a moment (CI36, py311). Wait for it, bounded.
        deadline = time.monotonic() + 10
        while threads.BUSY and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not threads.BUSY, [t.name for t in threading.enumerate()]
        fast = target.work.__code__
        assert next in fast.co_consts
        assert threads.checked_next not in fast.co_consts
        inside: list[Any] = []
        stepped_out: list[Any] = []
        gate = threading.Event()

        def sensor() -> None:
            inside.append(target.work.__code__)
            with threads.sensor_idle():
                stepped_out.append(target.work.__code__)
            gate.set()

        run_as_sensor_thread(sensor)
        assert gate.is_set()
        (checked,) = inside
        assert threads.checked_next in checked.co_consts
        assert next not in checked.co_consts
        assert checked.co_code == fast.co_code
        assert stepped_out == [fast], "idle: back to the fast code"
        assert target.work.__code__ is fast, "and after the thread ended"
    finally:
        engine.close()


def test_every_thread_the_engine_starts_is_a_sensor_thread(
    engine: Engine, target: ModuleType
) -> None:
    # A 10/s snapshot closes its gate after a hit: the waker thread starts.
    place(
        engine,
        kind="snapshot",
        location=f"{target.__name__}:work@entry",
        limits={"rate": 10, "burst": 1},
    )
    target.work(1)
    waker = engine._waker._thread
    assert isinstance(waker, threads.SensorThread)
    assert waker.covers_bootstrap, "threading's own bootstrap code is sensor work too"
    before = {t.ident for t in threading.enumerate() if isinstance(t, threads.SensorThread)}
    assert waker.ident in before


def test_sensor_work_nests_and_steps_out_only_where_asked() -> None:
    assert not threads.is_sensor_work()
    with threads.sensor_work():
        assert threads.is_sensor_work()
        with threads.sensor_work():
            assert threads.is_sensor_work()
            with threads.sensor_idle():
                assert not threads.is_sensor_work()
                assert not threads.BUSY
            assert threads.is_sensor_work()
        assert threads.is_sensor_work()
        assert threads.BUSY
        assert guards.SENSOR_WORKING is True
    assert not threads.is_sensor_work()
    assert not threads.BUSY
    assert guards.SENSOR_WORKING is False
    with threads.sensor_idle():  # outside sensor work: nothing to step out of
        assert not threads.is_sensor_work()


def test_the_sensor_event_waits_out_of_sensor_work_and_wakes_on_set() -> None:
    event = threads.Event()
    seen: list[bool] = []

    def waiter() -> None:
        seen.append(event.wait(10))

    thread = threads.SensorThread(waiter, name="test-waiter")
    thread.start()
    deadline = time.monotonic() + 5
    while threads.BUSY and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not threads.BUSY, "blocked in the wait: no thread does sensor work"
    event.set()
    thread.join(10)
    assert seen == [True]
    assert event.wait(0)
    assert event.is_set()
    assert threads.Event().wait(0.01) is False


def test_wait_readable_waits_out_of_sensor_work_and_times_out() -> None:
    left, right = socket.socketpair()
    with left, right:
        results: list[bool] = []

        def reader() -> None:
            results.append(threads.wait_readable(left, 10))
            results.append(threads.wait_readable(left, 0.01))  # already readable

        thread = threads.SensorThread(reader, name="test-reader")
        thread.start()
        deadline = time.monotonic() + 5
        while threads.BUSY and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not threads.BUSY
        right.sendall(b"x")
        thread.join(10)
        assert results == [True, True]
        left.recv(1)
        assert threads.wait_readable(left, 0.01) is False


@pytest.fixture(autouse=True)
def _no_sensor_work_left() -> Iterator[None]:
    yield
    # A thread that just ended may still be in its bootstrap's last lines (sensor work).
    deadline = time.monotonic() + 5
    while threads.BUSY and time.monotonic() < deadline:
        time.sleep(0.005)
    assert not threads.BUSY, "a test left a thread in sensor work"


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_while_a_sensor_thread_worked_runs_the_fast_code(
    target: ModuleType,
) -> None:
    # The sensor thread does not exist in the child: nobody does sensor work there, so the
    # host's functions must be back on the fast code and count every call.
    import os

    engine = Engine(backend="bytecode", cpu_budget=1.0)
    release = threading.Event()
    try:
        probe = place(engine, kind="counter", location=f"{target.__name__}:work@entry")
        fast = target.work.__code__
        thread = threads.SensorThread(lambda: release.wait(30), name="test-sensor-thread")
        thread.start()
        deadline = time.monotonic() + 5
        while target.work.__code__ is fast and time.monotonic() < deadline:
            time.sleep(0.005)
        assert target.work.__code__ is not fast, "the parent runs the checked code"
        pid = os.fork()
        if pid == 0:  # the child: never return into pytest
            code = 1
            try:
                target.work(1)
                target.work(2)
                (agg,) = engine.flush_aggregates()
                ok = not threads.BUSY and target.work.__code__ is fast
                code = 0 if ok and agg.aggregate == {"count": 2, "total": 2} else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert engine.status(probe.id) is not None
    finally:
        release.set()
        engine.close()


def test_a_gate_closing_on_a_host_thread_runs_no_python_code_of_threading(
    engine: Engine, target: ModuleType
) -> None:
    # A rate-limited gate that closes asks the waker to reopen it, on the host's thread, outside
    # sensor work: the waker must not call Python code a user may have put a probe on (here
    # threading.Thread.is_alive, which it used to ask whether its thread still ran).
    alive = place(engine, kind="counter", location="threading:Thread.is_alive")
    body = line_of(target, "work-body")
    closing = place(engine, kind="snapshot", location=f"{target.__name__}:work@{body}",
                    limits={"rate": 20, "burst": 1})  # fmt: skip
    # At least five rounds, and more until the gate has reopened twice: a waker thread late by
    # a round (a loaded machine) costs a round, not the test.
    rounds = 0
    deadline = time.monotonic() + 30
    while (rounds < 5 or status_of(engine, closing).hits < 3) and time.monotonic() < deadline:
        for i in range(20):
            target.work(i)
        time.sleep(0.06)  # the waker reopens the gate: it closes again at the next hit
        rounds += 1
    assert status_of(engine, closing).hits >= 3, "the gate closed and reopened"
    counted = {hit.probe_id: hit.aggregate for hit in engine.flush_aggregates()}
    assert counted.get(alive.id) is None, counted.get(alive.id)
