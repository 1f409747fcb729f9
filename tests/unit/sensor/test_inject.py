"""Tests of the injection backends: what each reaches, exact removal, global state, selection."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sensor.guards import Switch
from sensor.inject.core import Backend, PlacementFailed, select_backend
from sensor.probes import Point

BACKENDS = ["bytecode"] + (["monitoring", "hybrid"] if sys.version_info >= (3, 12) else [])
needs_monitoring = pytest.mark.skipif(sys.version_info < (3, 12), reason="sys.monitoring is 3.12+")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    chosen, reason = select_backend(request.param)
    if chosen is None or chosen.name != request.param:
        pytest.skip(f"backend {request.param} unavailable: {reason}")
    yield chosen
    chosen.close()


def first_line_of(fn: Any, text: str) -> int:
    import inspect

    lines, start = inspect.getsourcelines(fn)
    for offset, source in enumerate(lines):
        if text in source:
            return start + offset
    raise AssertionError(text)


def looping(n: int) -> int:
    acc = 0
    for i in range(n):  # header
        acc += i  # body
    return acc


def plain(x: int) -> int:
    y = x * 2  # plain-body
    return y  # noqa: RET504 (a line of its own to probe)


def test_hooks_fire_at_each_point_with_values(backend: Backend) -> None:
    seen: list[tuple[str, object]] = []
    code = plain.__code__
    body = first_line_of(plain, "plain-body")
    handles = [
        backend.arm(code, Point.ENTRY, None, lambda: seen.append(("entry", None))),
        backend.arm(code, Point.LINE, body, lambda: seen.append(("line", None))),
        backend.arm(code, Point.RETURN, None, lambda v: seen.append(("return", v))),
    ]
    assert plain(4) == 8
    assert seen == [("entry", None), ("line", None), ("return", 8)]
    assert backend.armed_count() == 3
    for handle in handles:
        backend.disarm(handle)
    assert backend.armed_count() == 0
    assert plain.__code__ is code
    plain(1)
    assert len(seen) == 3


def test_hook_frame_depth_points_at_the_target_frame(backend: Backend) -> None:
    frames: list[str] = []
    depth = backend.frame_depth

    def hook() -> None:
        frames.append(sys._getframe(depth).f_code.co_name)

    backend.arm(plain.__code__, Point.ENTRY, None, hook)
    plain(1)
    assert frames == ["plain"]


def test_line_in_loop_body_fires_once_per_iteration(backend: Backend) -> None:
    counter = itertools.count()
    backend.arm(looping.__code__, Point.LINE, first_line_of(looping, "# body"), counter.__next__)
    looping(10)
    assert next(counter) == 10


def test_a_for_header_fires_once_per_iteration_plus_one_on_every_backend(
    backend: Backend,
) -> None:
    # sys.settrace reports the header when the loop starts and on every jump back to it,
    # the last one being the exhausted next(): 11 for 10 iterations (backends.md).
    counter = itertools.count()
    header = first_line_of(looping, "# header")
    backend.arm(looping.__code__, Point.LINE, header, counter.__next__)
    looping(10)
    assert next(counter) == 11
    looping(0)
    assert next(counter) == 11 + 1 + 1  # 1 for the empty loop, 1 for this next()


def after_loops(n: int) -> int:
    i = 0
    while i < n:
        i += 1  # while-body
    done = i  # after-while
    for _ in range(n):
        pass
    return done  # after-for


def test_lines_reached_only_by_a_jump_fire_every_time(backend: Backend) -> None:
    # The defect this guards: a hook put before the jump label instead of after it missed the
    # line after a loop and all but the first run of a while body.
    counts = {}
    for marker in ("while-body", "after-while", "after-for"):
        counts[marker] = itertools.count()
        line = first_line_of(after_loops, marker)
        backend.arm(after_loops.__code__, Point.LINE, line, counts[marker].__next__)
    for n in (0, 1, 5):
        assert after_loops(n) == n
    assert {k: next(c) for k, c in counts.items()} == {
        "while-body": 6,
        "after-while": 3,
        "after-for": 3,
    }


def one_line_loop(n: int) -> int:
    total = 0
    for i in range(n): total += i  # noqa: E701  # fmt: skip
    return total


def test_a_loop_on_one_line_fires_once_per_iteration_plus_one(backend: Backend) -> None:
    # sys.monitoring's LINE gives one event here; settrace adds one per jump back.
    counter = itertools.count()
    line = first_line_of(one_line_loop, "for i in range(n)")
    backend.arm(one_line_loop.__code__, Point.LINE, line, counter.__next__)
    assert one_line_loop(4) == 6
    assert next(counter) == 5


def test_a_def_line_is_refused_on_every_backend(backend: Backend) -> None:
    # No line event ever happens on it: a probe there would say "installed" and never fire.
    with pytest.raises(PlacementFailed, match="reports no line event there"):
        backend.arm(looping.__code__, Point.LINE, looping.__code__.co_firstlineno, lambda: None)
    assert backend.armed_count() == 0


def test_a_bound_next_hook_counts_every_hit_at_every_point(backend: Backend) -> None:
    # The bytecode backend calls ``it.__next__`` as ``next(it)``; both must count each hit.
    counter = itertools.repeat(None, 1_000)
    backend.arm(plain.__code__, Point.LINE, first_line_of(plain, "plain-body"), counter.__next__)
    backend.arm(plain.__code__, Point.ENTRY, None, counter.__next__)
    assert [plain(i) for i in range(10)] == [i * 2 for i in range(10)]
    assert counter.__length_hint__() == 1_000 - 20


def test_a_closed_switch_counts_the_skip_and_never_calls_the_hook(backend: Backend) -> None:
    # A gate's hook carries (switch, skips): bytecode (and hybrid) test the switch inline;
    # the monitoring backend calls the hook, which tests it itself (as a gate's hook does).
    calls: list[object] = []
    called_while_closed: list[object] = []
    switch = Switch(True)
    skips = itertools.repeat(None, 1_000)

    def hook(value: object = None) -> None:
        if not switch.on:
            called_while_closed.append(value)
            next(skips)
            return
        calls.append(value)

    hook.sensor_switch = (switch, skips)  # type: ignore[attr-defined]
    backend.arm(plain.__code__, Point.LINE, first_line_of(plain, "plain-body"), hook)
    backend.arm(plain.__code__, Point.RETURN, None, hook)
    assert plain(1) == 2
    assert calls == [None, 2]
    assert hash(plain.__code__), "rebuilt code stays hashable: tools key dicts by code"
    switch.on = False
    assert [plain(i) for i in range(5)] == [0, 2, 4, 6, 8]
    assert calls == [None, 2]
    assert skips.__length_hint__() == 1_000 - 10
    assert len(called_while_closed) == (10 if backend.name == "monitoring" else 0)
    switch.on = True
    assert plain(3) == 6
    assert calls == [None, 2, None, 6]


def test_bytecode_arming_a_line_that_has_no_code_fails_cleanly() -> None:
    backend, _ = select_backend("bytecode")
    assert backend is not None
    assert backend.name == "bytecode"
    with pytest.raises(PlacementFailed, match="line 1 has no code"):
        backend.arm(plain.__code__, Point.LINE, 1, lambda: None)
    assert plain.__code__.co_name == "plain"
    assert backend.armed_count() == 0


def test_running_frame_is_reached_only_by_monitoring(backend: Backend) -> None:
    started = threading.Event()
    stop = threading.Event()
    hits = itertools.count()
    rounds = [0]  # the worker's loops, counted by the worker itself

    def worker() -> None:
        started.set()
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            time.sleep(0.001)  # worker-line
            rounds[0] += 1

    thread = threading.Thread(target=worker)
    thread.start()
    assert started.wait(30)
    backend.arm(worker.__code__, Point.LINE, first_line_of(worker, "worker-line"), hits.__next__)
    # The running frame must pass the line a few times after the arming: counted, not slept
    # for (the worker thread may not run at all for 50 ms on a loaded machine).
    armed_at = rounds[0]
    deadline = time.monotonic() + 30
    while rounds[0] < armed_at + 20 and time.monotonic() < deadline:
        time.sleep(0.001)
    stop.set()
    thread.join(30)
    assert rounds[0] >= armed_at + 20, "the worker never ran past the armed line"
    fired = next(hits)
    if backend.reaches_running_frames:
        assert fired > 0
    else:
        assert fired == 0


def test_suspended_generator_keeps_working(backend: Backend) -> None:
    def gen() -> Iterator[int]:
        for i in range(3):  # noqa: UP028 (a yield line to probe)
            yield i  # gen-line

    it = gen()
    assert next(it) == 0
    hits = itertools.count()
    backend.arm(gen.__code__, Point.LINE, first_line_of(gen, "gen-line"), hits.__next__)
    assert list(it) == [1, 2]
    assert next(hits) == (2 if backend.reaches_running_frames else 0)
    assert list(gen()) == [0, 1, 2]


@needs_monitoring
def test_hybrid_fires_once_per_line_for_old_and_new_frames() -> None:
    # New calls run the rebuilt code (bytecode), a generator suspended before the probe runs
    # the original code (sys.monitoring): each frame must see the hook once, never twice.
    chosen, _ = select_backend("hybrid")
    assert chosen is not None
    assert chosen.name == "hybrid"

    def gen() -> Iterator[int]:
        for i in range(3):  # noqa: UP028 (a yield line to probe)
            yield i  # hybrid-line

    try:
        old = gen()
        assert next(old) == 0
        hits = itertools.repeat(None, 1_000)
        chosen.arm(gen.__code__, Point.LINE, first_line_of(gen, "hybrid-line"), hits.__next__)
        assert list(old) == [1, 2]  # 2 more hits, through sys.monitoring
        assert list(gen()) == [0, 1, 2]  # 3 hits, through the rebuilt code
        assert hits.__length_hint__() == 1_000 - 5
    finally:
        chosen.close()
    assert gen.__code__.co_name == "gen"


@needs_monitoring
def test_hybrid_places_with_monitoring_alone_when_no_function_runs_the_code() -> None:
    def gen() -> Iterator[int]:
        for i in range(3):  # noqa: UP028 (a yield line to probe)
            yield i  # orphan-line

    line = first_line_of(gen, "orphan-line")
    it = gen()
    assert next(it) == 0
    code = gen.__code__
    del gen  # only the suspended generator runs this code now: bytecode cannot place
    chosen, _ = select_backend("hybrid")
    assert chosen is not None
    try:
        hits = itertools.repeat(None, 1_000)
        chosen.arm(code, Point.LINE, line, hits.__next__)
        assert list(it) == [1, 2]
        assert hits.__length_hint__() == 1_000 - 2
    finally:
        chosen.close()


def test_exception_hook_sees_the_exception_and_it_still_propagates(backend: Backend) -> None:
    def fails(x: int) -> int:
        if x:
            raise KeyError(x)  # fails-raise
        return x

    seen: list[BaseException] = []
    backend.arm(fails.__code__, Point.EXCEPTION, None, seen.append)
    with pytest.raises(KeyError) as info:
        fails(3)
    assert [type(e) for e in seen] == [KeyError]
    assert info.traceback[-1].lineno + 1 == first_line_of(fails, "fails-raise")
    assert fails(0) == 0
    assert len(seen) == 1


def test_functions_sharing_one_code_object_are_all_reached(backend: Backend) -> None:
    def factory(n: int) -> Any:
        def add(k: int) -> int:
            return k + n

        return add

    first, second = factory(1), factory(2)
    seen: list[object] = []
    backend.arm(first.__code__, Point.RETURN, None, seen.append)
    assert (first(1), second(1)) == (2, 3)
    assert seen == [2, 3]


@needs_monitoring
def test_sticky_disable_is_undone_when_a_new_line_is_probed() -> None:
    chosen, _ = select_backend("monitoring")
    assert chosen is not None
    try:
        body = first_line_of(plain, "plain-body")
        ret = body + 1
        first = itertools.count()
        chosen.arm(plain.__code__, Point.LINE, body, first.__next__)
        plain(1)  # the return line has no hook yet: it answers DISABLE
        second = itertools.count()
        chosen.arm(plain.__code__, Point.LINE, ret, second.__next__)
        plain(1)
        assert (next(first), next(second)) == (2, 1)
    finally:
        chosen.close()


def run_python(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@needs_monitoring
def test_monitoring_falls_back_to_bytecode_when_tool_ids_are_taken() -> None:
    out = run_python(
        """
        import sys
        sys.monitoring.use_tool_id(4, "other")
        sys.monitoring.use_tool_id(3, "another")
        from sensor.inject.core import select_backend
        backend, reason = select_backend("monitoring")
        print(backend.name, "|", reason)
        """
    )
    name, reason = out.split(" | ")
    assert name == "bytecode"
    assert "tool id" in reason
    assert "fell back" in reason


@needs_monitoring
def test_no_global_state_remains_after_close_with_monitoring() -> None:
    out = run_python(
        """
        import sys
        from sensor.inject.core import select_backend
        from sensor.probes import Point
        def f(): return 1
        def g(): raise ValueError
        backend, _ = select_backend("monitoring")
        backend.arm(f.__code__, Point.ENTRY, None, lambda: None)
        backend.arm(g.__code__, Point.EXCEPTION, None, lambda e: None)
        during = (sys.monitoring.get_tool(4), sys.monitoring.get_events(4))
        backend.close()
        print(during[0], during[1] != 0, sys.monitoring.get_tool(4),
              sys.monitoring.get_local_events(4, f.__code__) if False else 0, sys.gettrace())
        """
    )
    assert out == "pytest-runtime-sensor True None 0 None"


def test_engine_leaves_nothing_global_when_idle() -> None:
    out = run_python(
        """
        import sys, importlib
        before_meta = list(sys.meta_path)
        from sensor.engine import Engine
        from sensor.probes import Probe
        e = Engine()
        def f(x): return x
        import __main__
        __main__.f = f
        s = e.install(Probe(kind="snapshot", location="__main__:f"))
        p = e.install(Probe(kind="snapshot", location="not_imported_mod:f"))
        e.remove_all()
        mon = getattr(sys, "monitoring", None)
        tools = [mon.get_tool(i) for i in range(6)] if mon else []
        print(s.state.value, p.state.value, sys.meta_path == before_meta,
              all(t is None for t in tools), sys.gettrace(), f.__code__.co_name)
        """
    )
    assert out == "installed pending True True None f"


def test_bytecode_injection_keeps_traceback_lines_in_a_fresh_process() -> None:
    out = run_python(
        """
        import traceback
        from sensor.engine import Engine
        from sensor.probes import Probe
        import __main__
        def f(x):
            y = x + 1
            if y > 2:
                raise ValueError(y)
            return y
        __main__.f = f
        def lines():
            try:
                f(5)
            except ValueError as exc:
                return [fr.lineno for fr in traceback.extract_tb(exc.__traceback__)]
        plain = lines()
        e = Engine(backend="bytecode")
        for loc in ("__main__:f@entry", "__main__:f@exception", "__main__:f@8", "__main__:f@7"):
            e.install(Probe(kind="counter", location=loc))
        probed = lines()
        e.close()
        print(plain == probed, plain == lines())
        """
    )
    assert out == "True True"


def test_unknown_backend_name_falls_back_to_the_default(caplog: pytest.LogCaptureFixture) -> None:
    chosen, reason = select_backend("nonsense")
    try:
        assert chosen is not None
        assert "unknown" in caplog.text
        assert reason
    finally:
        if chosen is not None:
            chosen.close()


@pytest.mark.parametrize("core", ["ctrace", "sysmon"])
def test_coverage_and_the_sensor_both_keep_working(core: str, tmp_path: Any) -> None:
    if core == "sysmon" and sys.version_info < (3, 12):
        pytest.skip("coverage's sysmon core needs 3.12+")
    target = tmp_path / "covtarget.py"
    target.write_text("def f(x):\n    y = x + 1\n    return y\n")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, coverage
                sys.path.insert(0, {str(tmp_path)!r})
                cov = coverage.Coverage(
                    data_file=None, config_file=False, branch=False, include=[{str(target)!r}]
                )
                cov.start()
                import covtarget
                from sensor.engine import Engine
                from sensor.probes import Probe
                engine = Engine()
                status = engine.install(Probe(kind="counter", location="covtarget:f@2"))
                for i in range(5):
                    covtarget.f(i)
                agg = engine.flush_aggregates()[0].aggregate
                engine.close()
                covtarget.f(1)
                cov.stop()
                lines = sorted(cov.get_data().lines({str(target)!r}))
                core = cov._collector.tracer_name() if hasattr(cov, "_collector") else "?"
                print(status.state.value, engine.backend_name, agg["count"], core, lines)
                """
            ),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env={**os.environ, "COVERAGE_CORE": core},
    )
    assert out.returncode == 0, out.stderr
    state, backend, count, tracer, lines = out.stdout.strip().split(" ", 4)
    assert (state, count, lines) == ("installed", "5", "[1, 2, 3]")
    assert ("SysMonitor" in tracer) == (core == "sysmon"), tracer
    assert backend == ("hybrid" if sys.version_info >= (3, 12) else "bytecode")
