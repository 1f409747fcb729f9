"""A debugger that deletes a local the must-be-bound analysis proved bound never makes an
expectation's passed locals raise into the host (3.11 writes a trace function's ``f_locals``
changes back into the frame, so ``del frame.f_locals[name]`` unbinds it)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from types import FrameType, ModuleType
from typing import Any

import pytest

from sensor.engine import Engine
from sensor.probes import Probe, ProbeState

TARGET = """
def entry(x):
    return 1


def late(x):
    y = x + 1
    z = y * 2
    return z


def in_try(x):
    try:
        y = x + 1
        return y
    finally:
        y = 0
"""

#: function, point, expectation, the local deleted, the line (of the function) where it is
CASES = {
    "entry": ("entry", "entry", "x > 0", "x", None),  # deleted at the 'call' event
    "return": ("late", "return", "x > 0", "x", 2),  # deleted at `z = y * 2`
    "return-in-try": ("in_try", "return", "x > 0", "x", 3),  # deleted at `return y`
}


def _deleting(code: Any, name: str, line: int | None) -> Callable[..., Any]:
    """A pdb-like tracer that deletes ``name`` through ``frame.f_locals`` at ``line`` of
    ``code`` (at the call event when None)."""

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code is not code:
            return None
        offset = frame.f_lineno - code.co_firstlineno
        if (event == "call" and line is None) or (event == "line" and offset == line):
            try:
                del frame.f_locals[name]  # 3.11 unbinds it; 3.12 writes None back
            except TypeError:  # 3.13: "cannot remove variables from FrameLocalsProxy"
                pass
        return tracer

    return tracer


@pytest.fixture
def traced() -> Iterator[Callable[[Callable[..., Any]], None]]:
    previous = sys.gettrace()
    yield sys.settrace
    sys.settrace(previous)


@pytest.mark.filterwarnings("ignore:assigning None to unbound local:RuntimeWarning")
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_local_deleted_by_a_debugger_does_not_raise_into_the_host(
    engine: Engine,
    load: Callable[..., ModuleType],
    traced: Callable[[Callable[..., Any]], None],
    case: str,
) -> None:
    function, point, expect, name, line = CASES[case]
    module = load(TARGET)
    target = getattr(module, function)
    # The program without a probe, under the same debugger: what the host must still see.
    traced(_deleting(target.__code__, name, line))
    try:
        expected = target(5)
    finally:
        traced(None)  # type: ignore[arg-type]
    probe = Probe(
        kind="expect",
        location=f"{module.__name__}:{function}@{point}",
        expect=expect,
        limits={"eval_rate": 1e9, "violation_rate": 1e6},
    )
    status = engine.install(probe)
    assert status.state is ProbeState.INSTALLED, status.reason
    try:
        traced(_deleting(target.__code__, name, line))
        try:
            got = target(5)
        finally:
            traced(None)  # type: ignore[arg-type]
        assert got == expected
        assert target(5) == expected  # and without the debugger, as before
        counted = engine.status(probe.id)
        assert counted is not None
        assert counted.evaluations == 2
        # the debugger's call: the name is gone (3.11) or None (3.12), which the expectation
        # reports as its error; 3.13 refused the deletion
        assert counted.expect_errors == (1 if sys.version_info < (3, 13) else 0)
    finally:
        engine.remove(probe.id)
