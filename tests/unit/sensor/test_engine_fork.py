"""Tests that the engine keeps working in a forked child while other threads used it at the fork."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

import sensor.engine
from sensor.engine import Engine
from sensor.probes import Probe, ProbeState

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
    # Forking with threads alive is what pre-fork servers do, and what is tested here.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


def make(**fields: Any) -> Probe:
    return Probe(**fields)


@pytest.fixture
def target(load: Callable[..., ModuleType]) -> ModuleType:
    return load("def add(a, b):\n    total = a + b\n    return total\n")


def fork_and_check(check: Callable[[], bool], timeout: float = 10.0) -> int:
    """Run ``check`` in a forked child; its exit status (2: hung, killed)."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            code = 0 if check() else 1
        finally:
            os._exit(code)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return 2


def child_uses(engine: Engine, module: ModuleType) -> Callable[[], bool]:
    def check() -> bool:
        probe = make(kind="snapshot", location=f"{module.__name__}:add", limits={"rate": 1e6})
        if engine.install(probe).state is not ProbeState.INSTALLED:
            return False
        module.add(2, 3)
        hits = [hit for hit in engine.drain() if hit.probe_id == probe.id]
        ok = len(hits) == 1 and engine.status(probe.id) is not None
        return ok and engine.remove(probe.id)

    return check


def test_child_works_when_another_thread_held_the_engine_lock_at_fork(
    target: ModuleType,
) -> None:
    engine = Engine(cpu_budget=0.5)
    holding = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with engine._lock, engine._budget._lock:  # as in the middle of an install and a hit
            holding.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert holding.wait(5)
        # The fork waits a bounded time for the lock, then goes on; the child gets new locks.
        assert fork_and_check(child_uses(engine, target)) == 0
    finally:
        release.set()
        holder.join(10)
        engine.close()


def test_fork_while_another_thread_fires_and_installs(target: ModuleType) -> None:
    engine = Engine(cpu_budget=0.5)
    stop = threading.Event()
    probe = make(kind="snapshot", location=f"{target.__name__}:add", limits={"rate": 1e6})

    def busy() -> None:
        for i in range(100_000):  # bounded
            if stop.is_set():
                return
            target.add(i, 1)
            if i % 50 == 0:
                engine.install(probe.with_changes(id=f"busy-{i % 3}"))
            engine.drain()

    worker = threading.Thread(target=busy)
    worker.start()
    try:
        results = [fork_and_check(child_uses(engine, target)) for _ in range(5)]
        assert results == [0] * 5
    finally:
        stop.set()
        worker.join(10)
        engine.close()
    # The parent still works after the forks (the locks taken for the fork were released).
    assert not engine._lock._is_owned()  # type: ignore[attr-defined]


def test_parent_releases_the_locks_taken_for_the_fork(target: ModuleType) -> None:
    engine = Engine(cpu_budget=1.0)
    try:
        assert fork_and_check(lambda: True) == 0
        acquired = engine._lock.acquire(blocking=False)
        assert acquired
        engine._lock.release()
        # Another thread can take them too (nothing is left owned by this thread).
        got: list[bool] = []

        def take_and_give_back() -> None:
            got.append(engine._lock.acquire(timeout=1))
            if got[-1]:
                engine._lock.release()

        thread = threading.Thread(target=take_and_give_back)
        thread.start()
        thread.join(5)
        assert got == [True]
        assert sensor.engine._engine_lock.acquire(timeout=1)
        sensor.engine._engine_lock.release()
    finally:
        engine.close()


def test_child_hit_ids_differ_from_the_parent(target: ModuleType) -> None:
    engine = Engine(cpu_budget=1.0)
    try:
        prefix = engine._prefix
        read, write = os.pipe()

        def check() -> bool:
            os.write(write, engine._prefix.encode())
            return True

        assert fork_and_check(check) == 0
        os.close(write)
        child_prefix = os.read(read, 64).decode()
        os.close(read)
        assert child_prefix
        assert child_prefix != prefix
    finally:
        engine.close()


def test_a_gate_closed_at_the_fork_is_reopened_in_the_child(target: ModuleType) -> None:
    # The parent's waker thread does not exist in the child: a gate it was to reopen must not
    # stay closed there for ever (the child reopens every closed gate at once).
    engine = Engine(cpu_budget=1.0)
    probe = make(kind="snapshot", location=f"{target.__name__}:add", limits={"rate": 0.001})
    assert engine.install(probe).state is ProbeState.INSTALLED
    target.add(1, 1)  # the one token: captured, and the next is 1000 s away, so the gate closes
    assert len(engine.drain()) == 1
    assert engine._waker.pending() == 1

    def check() -> bool:
        if engine._waker.pending() != 0:
            return False
        target.add(2, 2)  # reopened: tests the clock (still no token), counts a skip
        status = engine.status(probe.id)
        return status is not None and (status.hits, status.skipped_rate) == (1, 1)

    try:
        assert fork_and_check(check) == 0
        target.add(3, 3)  # the parent's gate is still closed: a skip, no clock read
        status = engine.status(probe.id)
        assert status is not None
        assert (status.hits, status.skipped_rate) == (1, 1)
    finally:
        engine.close()
