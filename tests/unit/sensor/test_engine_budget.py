"""Tests of the engine's CPU budget (CPU time, not wall time), its setting and the warm-up."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import sensor.engine
from sensor.config import DEFAULT_CPU_BUDGET, cpu_budget_from_env, load_config
from sensor.engine import Engine, get_engine
from sensor.errors import ConfigError
from sensor.probes import DEFAULT_EVAL_RATE, Hit, Probe, ProbeState


def make(**fields: Any) -> Probe:
    return Probe(**fields)


@pytest.fixture
def target(load: Callable[..., ModuleType]) -> ModuleType:
    return load("def add(a, b):\n    total = a + b\n    return total\n")


def _probe(module: ModuleType) -> Probe:
    return make(kind="snapshot", location=f"{module.__name__}:add", limits={"rate": 1e6})


def test_a_preempted_hit_does_not_disable_the_probe(target: ModuleType) -> None:
    # The callback runs inside the metered firing and sleeps: 30 ms of wall time, no CPU,
    # as when the host thread is preempted on a busy machine. The budget is 10 ms/s.
    engine = Engine(cpu_budget=0.01)
    try:
        probe = _probe(target)

        def on_hit(hit: Hit) -> None:
            time.sleep(0.03)

        assert engine.install(probe, on_hit).state is ProbeState.INSTALLED
        for _ in range(5):
            target.add(1, 2)
        status = engine.status(probe.id)
        assert status is not None
        assert status.state is ProbeState.INSTALLED, status.reason
        assert status.hits == 5
        assert engine._budget.precise  # the first slow hit switched it to CPU time
    finally:
        engine.close()


def test_a_hit_that_burns_cpu_disables_the_probe(target: ModuleType) -> None:
    engine = Engine(cpu_budget=0.01)
    try:
        probe = _probe(target)

        def on_hit(hit: Hit) -> None:
            end = time.thread_time() + 0.03  # 30 ms of this thread's CPU
            while time.thread_time() < end:
                pass

        assert engine.install(probe, on_hit).state is ProbeState.INSTALLED
        for _ in range(5):
            target.add(1, 2)
        status = engine.status(probe.id)
        assert status is not None
        assert status.state is ProbeState.DISABLED
        assert "CPU budget" in (status.reason or "")
        assert "CPU time" in (status.reason or "")
        assert status.hits == 2  # one to switch to CPU time, one measured over budget
    finally:
        engine.close()


def test_cpu_budget_is_public_and_validated() -> None:
    engine = Engine(cpu_budget=0.05)
    try:
        assert engine.cpu_budget == 0.05
        engine.cpu_budget = 1.0
        assert not engine._budget.enabled
        with pytest.raises(ValueError, match="cpu_budget: got 0"):
            engine.cpu_budget = 0
    finally:
        engine.close()
    with pytest.raises(ValueError, match="cpu_budget: got -1"):
        Engine(cpu_budget=-1)


def test_private_fraction_knob_of_the_agent_tests_still_turns_the_budget_off() -> None:
    engine = Engine()
    try:
        engine._budget.fraction = 1.0  # tests/integration/agent_support.py does this
        assert engine.cpu_budget == 1.0
        assert engine._budget.spend("p", 10**12, time.thread_time_ns) is None
    finally:
        engine.close()


@pytest.fixture
def fresh_process_engine(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(sensor.engine, "_engine", None)
    yield
    made = sensor.engine._engine
    if made is not None:
        made.close()


@pytest.mark.usefixtures("fresh_process_engine")
def test_get_engine_reads_sensor_cpu_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SENSOR_CPU_BUDGET", "0.25")
    assert get_engine().cpu_budget == 0.25


@pytest.mark.usefixtures("fresh_process_engine")
def test_get_engine_logs_a_bad_budget_and_uses_the_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("SENSOR_CPU_BUDGET", "lots")
    with caplog.at_level(logging.WARNING, logger="sensor.engine"):
        assert get_engine().cpu_budget == DEFAULT_CPU_BUDGET
    assert "SENSOR_CPU_BUDGET: got 'lots'" in caplog.text


@pytest.mark.parametrize("raw", ["0", "-0.5", "nan", "inf", "1%", "x"])
def test_bad_cpu_budget_is_a_config_error_naming_the_variable(raw: str) -> None:
    with pytest.raises(ConfigError, match=rf"SENSOR_CPU_BUDGET: got '{raw}', expected a fraction"):
        cpu_budget_from_env({"SENSOR_CPU_BUDGET": raw})
    with pytest.raises(ConfigError, match="SENSOR_CPU_BUDGET"):
        load_config(environ={"SENSOR_HUB_URL": "http://127.0.0.1:1", "SENSOR_CPU_BUDGET": raw})


def test_cpu_budget_setting_defaults_and_parses() -> None:
    assert cpu_budget_from_env({}) == DEFAULT_CPU_BUDGET == 0.01
    assert cpu_budget_from_env({"SENSOR_CPU_BUDGET": " 0.02 "}) == 0.02
    config = load_config(environ={"SENSOR_ENABLED": "0", "SENSOR_CPU_BUDGET": "1"})
    assert config.cpu_budget == 1.0
    with pytest.raises(ConfigError, match="argument cpu_budget"):
        load_config(environ={"SENSOR_ENABLED": "0"}, cpu_budget=0)


WARM = """
import sys, time
sys.path.insert(0, {path!r})
from sensor.engine import Engine
from sensor.probes import Probe
import target

engine = Engine(backend={backend!r}, cpu_budget=1.0)
status = engine.install(Probe(kind="snapshot", location="target:handle", limits={{"rate": 1e6}}))
assert status.state.value == "installed", status.reason
before = set(sys.modules)
t0 = time.perf_counter()
target.handle()
took = time.perf_counter() - t0
new = sorted(set(sys.modules) - before)
hits = engine.drain()
assert len(hits) == 1, hits
assert hits[0].captures["price"]["@t"] == "decimal.Decimal", hits[0].captures
print(repr(new), took)
"""

WARM_TARGET = """
import datetime, decimal

def handle():
    price = decimal.Decimal("12.50")
    when = datetime.datetime(2026, 1, 1)
    email = "someone@example.com"
    return price
"""


@pytest.mark.parametrize(
    "backend", ["bytecode"] + (["monitoring", "hybrid"] if sys.version_info >= (3, 12) else [])
)
def test_first_hit_imports_nothing_on_the_request_thread(tmp_path: Path, backend: str) -> None:
    (tmp_path / "target.py").write_text(textwrap.dedent(WARM_TARGET))
    script = WARM.format(path=str(tmp_path), backend=backend)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    new, took = done.stdout.split("] ")
    assert new + "]" == "[]", f"the first hit imported {new}]"
    assert float(took) < 0.005, f"the first hit took {float(took) * 1e3:.1f} ms"


def test_hot_expectation_under_default_limits_stays_within_the_default_budget(
    target: ModuleType,
) -> None:
    engine = Engine()  # the production defaults: 1% of a CPU, DEFAULT_EVAL_RATE evaluations/s
    try:
        probe = make(kind="expect", location=f"{target.__name__}:add", expect="result >= 0")
        assert engine.install(probe).state is ProbeState.INSTALLED
        for i in range(20_000):
            target.add(i, 1)
        status = engine.status(probe.id)
        assert status is not None
        assert status.state is ProbeState.INSTALLED, status.reason
        assert status.evaluations >= DEFAULT_EVAL_RATE  # the burst at least
        assert status.evaluations + status.skipped_rate == 20_000
        assert status.to_dict()["evaluations"] == status.evaluations  # what a heartbeat sends
    finally:
        engine.close()
