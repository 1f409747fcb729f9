"""Fixtures shared by the engine's tests: an engine per backend, and throwaway target modules."""

from __future__ import annotations

import importlib
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
from waker_doubles import StillClock

from sensor import hotpath
from sensor.engine import Engine

BACKENDS = ["bytecode"] + (["monitoring", "hybrid"] if sys.version_info >= (3, 12) else [])


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """An engine on each backend this Python has (``monitoring`` needs 3.12+)."""
    eng = Engine(backend=request.param, cpu_budget=1.0)
    if eng.backend_name != request.param:
        eng.close()
        pytest.skip(f"backend {request.param} unavailable: {eng.backend_reason}")
    yield eng
    eng.close()


@pytest.fixture
def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., ModuleType]]:
    """``load(source, name=None, *, import_it=True)``: write a module with a fresh name and
    import it (or only write it); every module it made is forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made: list[str] = []

    def load(source: str, name: str | None = None, *, import_it: bool = True) -> ModuleType:
        name = name or f"engtarget_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        made.append(name)
        importlib.invalidate_caches()
        if not import_it:
            return ModuleType(name)
        return importlib.import_module(name)

    yield load
    for name in made:
        sys.modules.pop(name, None)


@pytest.fixture
def still(monkeypatch: pytest.MonkeyPatch) -> StillClock:
    """The rate limits' clocks, moved by the test only (a probe's gates read them when they are
    made: place it after this). What a rate admits then no longer depends on how fast the
    machine runs the calls; a closed gate stays closed (the waker reads the same clock)."""
    clock = StillClock()
    monkeypatch.setattr(time, "monotonic", clock)
    monkeypatch.setattr(hotpath, "_perf", lambda: int(clock.now * 1e9))
    return clock
