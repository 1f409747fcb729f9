"""Exception exits at a ``@return`` probe, on every backend: what fires, what counts, what not."""

from __future__ import annotations

import asyncio
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sensor.engine import Engine
from sensor.probes import Hit, Probe, ProbeState, ProbeStatus

Loader = Callable[..., ModuleType]

EXITS = """
import asyncio

def boom(x, note="n"):
    local = x * 2
    if x > 1:
        raise ValueError(f"bad {x}")  # boom-raise
    return x

def caught(x):
    try:
        return 10 // x
    except ZeroDivisionError:
        return -1

def reraised(x):
    try:
        return 10 // x  # reraised-div
    except ZeroDivisionError as exc:
        raise LookupError("wrapped") from exc  # reraised-raise

def chained(x):
    try:
        raise KeyError(x)
    except KeyError:
        raise TypeError("during")  # chained-raise

def first(items):
    return next(iter(items))  # first-next

def numbers(n):
    for i in range(n):
        yield i
    raise RuntimeError(f"ran out at {n}")  # numbers-raise

def stopper():
    yield 1
    raise StopIteration("inside")  # stopper-raise

def endless():
    i = 0
    while True:
        yield i
        i += 1

async def fails(x):
    await asyncio.sleep(0)
    raise LookupError(x)  # fails-raise

async def sleeper():
    await asyncio.sleep(10)
    return 1

def exits(code):
    raise SystemExit(code)

def outer(n):
    def inner(k):
        if k < 0:
            raise ValueError("negative")  # inner-raise
        return k + n
    return inner
"""


@pytest.fixture
def exits(load: Loader) -> ModuleType:
    return load(EXITS)


def line(module: ModuleType, marker: str) -> int:
    path = sys.modules[module.__name__].__file__
    assert path is not None
    for number, text in enumerate(Path(path).read_text().splitlines(), 1):
        if text.rstrip().endswith(f"# {marker}"):
            return number
    raise AssertionError(marker)


def at_return(module: ModuleType, function: str, **fields: Any) -> Probe:
    fields.setdefault("kind", "snapshot")
    fields.setdefault("limits", {"rate": 1e6})
    return Probe(location=f"{module.__name__}:{function}@return", **fields)


def installed(engine: Engine, probe: Probe) -> Probe:
    status = engine.install(probe)
    assert status.state is ProbeState.INSTALLED, status.reason
    return probe


def status_of(engine: Engine, probe: Probe) -> ProbeStatus:
    status = engine.status(probe.id)
    assert status is not None
    return status


def raised(fn: Callable[[], object]) -> BaseException:
    try:
        fn()
    except BaseException as exc:
        return exc
    raise AssertionError("nothing was raised")


def frames(exc: BaseException) -> list[tuple[str, int | None, str | None]]:
    """The traceback's entries below this test's own frames."""
    entries = traceback.extract_tb(exc.__traceback__)
    return [(f.name, f.lineno, f.line) for f in entries if f.filename != __file__]


# -- the hit -------------------------------------------------------------------------------------


def test_an_exception_leaving_the_function_is_a_hit_of_the_return_probe(
    engine: Engine, exits: ModuleType
) -> None:
    probe = installed(engine, at_return(exits, "boom", capture=["x", "local", "result"]))
    assert exits.boom(1) == 1
    with pytest.raises(ValueError, match="bad 5"):
        exits.boom(5)
    returned, failed = engine.drain()
    assert returned.captures == {"x": 1, "local": 2, "result": 1}
    assert returned.exception is None
    assert failed.exception == {"type": "ValueError", "message": "bad 5"}
    assert failed.line == line(exits, "boom-raise")
    assert failed.captures == {"x": 5, "local": 10}, "arguments and locals; no result"
    assert failed.errors is None, "a capture of result is absent, not an error"
    assert failed.expect is None
    assert failed.location == f"{exits.__name__}:boom@return"
    status = status_of(engine, probe)
    assert (status.hits, status.exceptions) == (2, 1)


def test_the_expectation_is_not_evaluated_on_an_exception_exit(
    engine: Engine, exits: ModuleType
) -> None:
    probe = installed(engine, at_return(exits, "boom", kind="expect", expect="result >= 0"))
    assert exits.boom(1) == 1
    with pytest.raises(ValueError):
        exits.boom(7)
    (hit,) = engine.drain()  # the passing return is not captured by an 'expect' probe
    assert hit.exception == {"type": "ValueError", "message": "bad 7"}
    assert hit.expect is None
    assert hit.captures is not None
    assert "result" not in hit.captures
    status = status_of(engine, probe)
    assert (status.evaluations, status.violations, status.exceptions) == (1, 0, 1)


def test_what_reads_result_is_left_out_and_the_rest_is_kept(
    engine: Engine, exits: ModuleType
) -> None:
    probe = at_return(
        exits,
        "boom",
        kind="log",
        capture=[{"name": "twice", "expr": "result * 2"}, {"name": "double", "expr": "x * 2"}],
        condition="x > 0 and result != 99",
        template="x={x}",
    )
    installed(engine, probe)
    with pytest.raises(ValueError):
        exits.boom(3)
    (hit,) = engine.drain()
    assert hit.captures == {"double": 6}
    assert hit.message == "x=3"
    assert hit.errors is None
    assert hit.exception is not None


def test_a_condition_not_about_result_still_filters_exception_exits(
    engine: Engine, exits: ModuleType
) -> None:
    probe = installed(engine, at_return(exits, "boom", condition="x > 6"))
    for x in (2, 9):
        with pytest.raises(ValueError):
            exits.boom(x)
    (hit,) = engine.drain()
    assert hit.exception == {"type": "ValueError", "message": "bad 9"}
    status = status_of(engine, probe)
    assert (status.exceptions, status.skipped_condition) == (2, 1)


# -- the program is unchanged ----------------------------------------------------------------------


@pytest.mark.parametrize("function", ["boom", "reraised", "chained"])
def test_the_same_exception_with_the_same_traceback_and_chain_reaches_the_caller(
    engine: Engine, exits: ModuleType, function: str
) -> None:
    fn = getattr(exits, function)
    arg = 5 if function == "boom" else 0
    plain = raised(lambda: fn(arg))
    installed(engine, at_return(exits, function))
    probed = raised(lambda: fn(arg))
    assert type(probed) is type(plain)
    assert probed.args == plain.args
    assert frames(probed) == frames(plain), "traceback lines unchanged"
    assert type(probed.__cause__) is type(plain.__cause__)
    assert type(probed.__context__) is type(plain.__context__)
    assert probed.__suppress_context__ == plain.__suppress_context__
    (hit,) = engine.drain()
    assert hit.line == frames(plain)[-1][1]


def test_an_exception_caught_inside_is_not_an_exit(engine: Engine, exits: ModuleType) -> None:
    probe = installed(engine, at_return(exits, "caught"))
    assert exits.caught(0) == -1
    (hit,) = engine.drain()
    assert hit.exception is None
    assert hit.captures is not None
    assert hit.captures["result"] == -1
    assert status_of(engine, probe).exceptions == 0


def test_a_nested_function_reports_its_exception_exits(engine: Engine, exits: ModuleType) -> None:
    inner = exits.outer(1)
    probe = installed(engine, at_return(exits, "outer.<locals>.inner"))
    for fn in (inner, exits.outer(2)):  # made before and after the placement
        with pytest.raises(ValueError):
            fn(-1)
        assert fn(1) >= 2
    hits = engine.drain()
    assert [h.exception["type"] if h.exception else None for h in hits] == [
        "ValueError",
        None,
        "ValueError",
        None,
    ]
    assert status_of(engine, probe).exceptions == 2


# -- generators, coroutines and what is not a failure -------------------------------------------


def test_a_generator_whose_body_raises_is_an_exception_exit(
    engine: Engine, exits: ModuleType
) -> None:
    probe = installed(engine, at_return(exits, "numbers", capture=["n", "i"]))
    got: list[int] = []
    with pytest.raises(RuntimeError, match="ran out at 2"):
        got.extend(exits.numbers(2))
    assert got == [0, 1]
    (hit,) = engine.drain()
    assert hit.exception == {"type": "RuntimeError", "message": "ran out at 2"}
    assert hit.captures == {"n": 2, "i": 1}
    assert hit.line == line(exits, "numbers-raise")
    assert status_of(engine, probe).exceptions == 1


def test_stop_iteration_inside_a_generator_is_the_runtime_error_the_caller_gets(
    engine: Engine, exits: ModuleType
) -> None:
    probe = installed(engine, at_return(exits, "stopper"))
    with pytest.raises(RuntimeError, match="generator raised StopIteration"):
        list(exits.stopper())
    (hit,) = engine.drain()
    assert hit.exception == {"type": "RuntimeError", "message": "generator raised StopIteration"}
    assert hit.line == line(exits, "stopper-raise")
    assert status_of(engine, probe).exceptions == 1


def test_closing_a_generator_is_not_an_exception_exit(engine: Engine, exits: ModuleType) -> None:
    probe = installed(engine, at_return(exits, "endless"))
    gen = exits.endless()
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    gen.close()  # GeneratorExit leaves the frame
    assert engine.drain() == []
    status = status_of(engine, probe)
    assert (status.hits, status.exceptions) == (0, 0)


def test_stop_iteration_leaving_a_plain_function_is_the_iterator_protocol_not_a_failure(
    engine: Engine, exits: ModuleType
) -> None:
    probe = installed(engine, at_return(exits, "first"))
    with pytest.raises(StopIteration):
        exits.first([])
    assert exits.first([4]) == 4
    (hit,) = engine.drain()
    assert hit.exception is None
    assert status_of(engine, probe).exceptions == 0


def test_system_exit_and_cancellation_are_not_exception_exits(
    engine: Engine, exits: ModuleType
) -> None:
    ended = installed(engine, at_return(exits, "exits"))
    cancelled = installed(engine, at_return(exits, "sleeper"))
    with pytest.raises(SystemExit):
        exits.exits(3)

    async def main() -> None:
        task = asyncio.ensure_future(exits.sleeper())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert engine.drain() == []
    assert status_of(engine, ended).exceptions == 0
    assert status_of(engine, cancelled).exceptions == 0


def test_a_coroutine_that_raises_is_an_exception_exit(engine: Engine, exits: ModuleType) -> None:
    probe = installed(engine, at_return(exits, "fails", capture=["x"]))
    with pytest.raises(LookupError):
        asyncio.run(exits.fails(4))
    (hit,) = engine.drain()
    assert hit.exception is not None
    assert hit.exception["type"] == "LookupError"
    assert hit.captures == {"x": 4}
    assert hit.line == line(exits, "fails-raise")
    assert status_of(engine, probe).exceptions == 1


# -- counting and rates ----------------------------------------------------------------------------


@pytest.mark.usefixtures("still")  # at 5 a second, the 100 calls had to take under 200 ms
def test_exception_exits_are_counted_exactly_and_captured_at_their_own_rate(
    engine: Engine, exits: ModuleType
) -> None:
    # Returns at 1/s, exception exits at the violation rate (5/s, a burst of 5): a flood of
    # exceptions is counted, not captured, and does not take the returns' token.
    probe = installed(engine, at_return(exits, "boom", limits={"rate": 1, "violation_rate": 5}))
    for _ in range(100):
        with pytest.raises(ValueError):
            exits.boom(3)
    assert exits.boom(0) == 0
    hits = engine.drain()
    assert sum(1 for h in hits if h.exception is not None) == 5
    assert sum(1 for h in hits if h.exception is None) == 1
    status = status_of(engine, probe)
    assert status.exceptions == 100
    assert status.hits == 6
    assert status.skipped_rate == 95


def test_max_hits_bounds_returns_and_exception_exits_together(
    engine: Engine, exits: ModuleType
) -> None:
    probe = installed(engine, at_return(exits, "boom", limits={"rate": 1e6, "max_hits": 3}))
    exits.boom(0)
    for _ in range(5):
        with pytest.raises(ValueError):
            exits.boom(2)
    assert len(engine.drain()) == 3
    status = status_of(engine, probe)
    assert status.state is ProbeState.DISABLED
    assert status.reason is not None
    assert "reached max_hits (3)" in status.reason


@pytest.mark.usefixtures("still")
def test_an_exception_probe_counts_every_exception_exit(engine: Engine, exits: ModuleType) -> None:
    probe = installed(
        engine,
        Probe(
            kind="snapshot",
            location=f"{exits.__name__}:boom@exception",
            limits={"rate": 1, "burst": 1},
        ),
    )
    for _ in range(20):
        with pytest.raises(ValueError):
            exits.boom(2)
    status = status_of(engine, probe)
    assert (status.hits, status.exceptions, status.skipped_rate) == (1, 20, 19)


def test_return_counters_and_timers_count_completed_returns_only(
    engine: Engine, exits: ModuleType
) -> None:
    counter = installed(engine, at_return(exits, "boom", kind="counter", limits={}))
    timer = installed(engine, at_return(exits, "boom", kind="timer", limits={}))
    for x in (0, 1, 5, 6, 1):
        try:
            exits.boom(x)
        except ValueError:
            pass
    aggregates = {hit.probe_id: hit.aggregate for hit in engine.flush_aggregates()}
    assert aggregates[counter.id] == {"count": 3, "total": 3}
    assert aggregates[timer.id] is not None
    assert aggregates[timer.id]["count"] == 3
    assert status_of(engine, counter).exceptions == 0


def test_an_exit_hit_serialises_with_the_hit_contract(engine: Engine, exits: ModuleType) -> None:
    installed(engine, at_return(exits, "boom", capture=["x"]))
    with pytest.raises(ValueError):
        exits.boom(4)
    (hit,) = engine.drain()
    data = hit.to_dict()
    assert "expect" not in data
    assert data["exception"] == {"type": "ValueError", "message": "bad 4"}
    assert Hit.from_dict(data) == hit
