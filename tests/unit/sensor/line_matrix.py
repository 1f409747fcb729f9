"""The line placement matrix: a line probe fires exactly as often as settrace reports its line.

Run by tests/unit/sensor/test_line_placement.py, one fresh process per backend and mode
(``python line_matrix.py BACKEND MODE`` prints a JSON report): placing and removing hundreds of
probes leaves nothing behind by design, but a small heap keeps the bytecode backend's heap walks
(one per placement) short, and one process per backend is what BENCHMARKS.md asks of anything
that arms the sensor many times.

The corpus (corpus/line_placement.py) holds one function per control-flow construct. A probe is
placed on every line of every corpus function (and of the code nested in it), the function runs
on each of its inputs, and the probe's hits must equal the ``sys.settrace`` line events of the
same runs, line by line: for a ``for`` header that is one per iteration plus one (the event of
the last, exhausted ``next``), for a comprehension inlined in its function (3.12+) one per item
plus one, and so on: whatever settrace says.

- ``counter``: a counter on each line, one probe at a time;
- ``snapshot``: a snapshot probe with a condition on ``n`` on each line of the corpus functions
  themselves: its hits and condition skips must equal the events where the condition holds or not,
  and each hit must carry the line and an even ``n``;
- ``together``: counters on every line of a function at once (probes on neighbouring lines
  compose);
- ``lines``: a ``lines`` probe on each plain corpus function with every call sampled: each
  call's hit lists exactly the lines settrace reports for that call's frame (mode ``new calls``);
- mode ``new calls``: probes placed, then calls made; mode ``running frames`` (``monitoring`` and
  ``hybrid``): one frame per input started and held at its ``_gate()`` first, then the probes
  placed, then the frames let go;
- a placement that a backend cannot make exact must be refused (``error`` with the reason): the
  refusals must be exactly EXPECTED_REFUSALS (none today), never ``installed`` and wrong; a line
  that settrace never reports (a ``def`` or decorator line) is refused on every backend;
- every probed run must return what the plain run returned: a probe never changes the program.
"""

from __future__ import annotations

import dataclasses
import dis
import importlib.util
import inspect
import json
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from types import CodeType, ModuleType
from typing import Any

from sensor.engine import Engine
from sensor.probes import Probe, ProbeState

MODULE = "sensor_line_corpus"
CORPUS_PATH = Path(__file__).parent / "corpus" / "line_placement.py"


def _load() -> ModuleType:
    if MODULE not in sys.modules:
        spec = importlib.util.spec_from_file_location(MODULE, CORPUS_PATH)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[MODULE] = module
        spec.loader.exec_module(module)
    return sys.modules[MODULE]


corpus: Any = _load()
SOURCE = CORPUS_PATH.read_text().splitlines()
CASES: list[tuple[Callable[..., Any], tuple[Any, ...]]] = corpus.CASES

#: (backend, corpus function, qualname, stripped source line) of the placements a backend
#: refuses because it cannot be exact there. docs/explanation/backends.md lists the same.
EXPECTED_REFUSALS: set[tuple[str, str, str, str]] = set()

#: The condition of the snapshot probes, and the same test on a frame's locals for settrace.
CONDITION = "n % 2 == 0"


def _condition_holds(local_vars: dict[str, Any]) -> bool:
    n = local_vars.get("n")
    return isinstance(n, int) and n % 2 == 0


@dataclasses.dataclass(frozen=True)
class Target:
    case: str
    code: CodeType
    line: int

    @property
    def location(self) -> str:
        if "<" in self.code.co_qualname.replace("<locals>", ""):
            # A lambda, comprehension or generator expression has no name a location can
            # use: ``path:line`` reaches the lines that no enclosing code shares.
            return f"corpus/line_placement.py:{self.line}"
        return f"{MODULE}:{self.code.co_qualname}@{self.line}"

    @property
    def text(self) -> str:
        return SOURCE[self.line - 1].strip()

    def describe(self) -> str:
        return f"{self.code.co_qualname}@{self.line} `{self.text}`"


def _lines(code: CodeType) -> set[int]:
    return {line for _, _, line in code.co_lines() if line is not None}


def _codes(code: CodeType, outer: frozenset[int]) -> Iterator[tuple[CodeType, frozenset[int]]]:
    """Each code with the lines of the code enclosing it."""
    yield code, outer
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _codes(const, outer | _lines(code))


def targets(fn: Callable[..., Any]) -> list[Target]:
    """Every line of the function's own code and of the code nested in it (for anonymous
    code, the lines that a ``path:line`` location reaches: those no enclosing code has)."""
    codes = list(_codes(inspect.unwrap(fn).__code__, frozenset()))
    names = [code.co_qualname for code, _ in codes]
    assert len(set(names)) == len(names), f"{fn.__name__}: nested code names repeat: {names}"
    found = []
    for code, outer in codes:
        anonymous = "<" in code.co_qualname.replace("<locals>", "")
        for line in sorted(_lines(code)):
            if not (anonymous and line in outer):
                found.append(Target(fn.__name__, code, line))
    return found


# Taken before any probe: a backend that rewrites code gives functions other code objects.
TOP = {fn.__name__: inspect.unwrap(fn).__code__ for fn, _ in CASES}
TARGETS = {fn.__name__: targets(fn) for fn, _ in CASES}
# The line of each case's ``_gate()`` call (a one-line function has it on its ``def`` line).
GATE_LINE = {
    name: next(i.positions.lineno for i in dis.get_instructions(code) if i.argval == "_gate")
    for name, code in TOP.items()
}


def drive(fn: Callable[..., Any], arg: Any) -> tuple[str, Any]:
    """Run one corpus case to its end: the result, or the type of the exception it raised."""
    inner = inspect.unwrap(fn)
    try:
        if inspect.isgeneratorfunction(inner):
            return "ok", list(fn(arg))
        if inspect.iscoroutinefunction(inner):
            return "ok", corpus.run(fn(arg))
        return "ok", fn(arg)
    except Exception as exc:
        return "raised", type(exc).__name__


@dataclasses.dataclass
class Reference:
    """What settrace saw over every input of one case: events per (code, line), outcomes."""

    events: Counter[tuple[CodeType, int]]
    events_if: Counter[tuple[CodeType, int]]  # events where CONDITION held
    outcomes: list[tuple[str, Any]]


def reference(fn: Callable[..., Any], inputs: tuple[Any, ...]) -> Reference:
    events: Counter[tuple[CodeType, int]] = Counter()
    events_if: Counter[tuple[CodeType, int]] = Counter()
    filename = str(CORPUS_PATH)

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != filename:
            return None
        if event == "line":
            key = (frame.f_code, frame.f_lineno)
            events[key] += 1
            if _condition_holds(dict(frame.f_locals)):
                events_if[key] += 1
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        outcomes = [drive(fn, arg) for arg in inputs]
    finally:
        sys.settrace(previous)
    return Reference(events, events_if, outcomes)


def run_new(fn: Callable[..., Any], inputs: tuple[Any, ...], place: Callable[[], Any]) -> Any:
    """Place the probes, then make new calls."""
    placed = place()
    return placed, [drive(fn, arg) for arg in inputs]


def run_running(fn: Callable[..., Any], inputs: tuple[Any, ...], place: Callable[[], Any]) -> Any:
    """Start one frame per input, hold each at its ``_gate()``, place the probes, let them go."""
    gate = corpus.GATE
    outcomes: list[tuple[str, Any] | None] = [None] * len(inputs)

    def work(index: int, arg: Any) -> None:
        outcomes[index] = drive(fn, arg)

    gate.release.clear()
    gate.hold = True
    threads = [
        threading.Thread(target=work, args=(i, arg), daemon=True) for i, arg in enumerate(inputs)
    ]
    try:
        for thread in threads:
            thread.start()
        for _ in threads:
            assert gate.arrived.acquire(timeout=30), "a corpus frame never reached its gate"
        placed = place()
    finally:
        gate.hold = False
        gate.release.set()
        for thread in threads:
            thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    return placed, outcomes


RUNNERS = {"new calls": run_new, "running frames": run_running}


def expected_hits(target: Target, ref: Reference, mode: str, inputs: tuple[Any, ...]) -> int:
    count = ref.events[(target.code, target.line)]
    if (
        mode == "running frames"
        and target.code is TOP[target.case]
        and target.line == GATE_LINE[target.case]
    ):
        # Each held frame ran its gate line before the probe existed.
        count -= len(inputs)
    return count


#: Part of the reason a line that never starts running is refused with (on every backend).
NEVER_RUNS = "reports no line event there"


@dataclasses.dataclass
class Result:
    """What one matrix found: problems (empty when every line is exact) and counts."""

    problems: list[str] = dataclasses.field(default_factory=list)
    installed: int = 0  #: placements checked line by line
    never_runs: int = 0  #: lines refused because settrace never reports them
    refused: list[str] = dataclasses.field(default_factory=list)  #: documented refusals seen


def check_refusal(engine: Engine, target: Target, status: Any, events: int, result: Result) -> bool:
    """True when the probe is installed. A line that settrace never reports (a ``def`` or
    decorator line) is refused on every backend; any other refusal must be documented in
    EXPECTED_REFUSALS and say why; nothing else may fail to install."""
    key = (engine.backend_name, target.case, target.code.co_qualname, target.text)
    problems = result.problems
    if status.state is ProbeState.INSTALLED:
        if key in EXPECTED_REFUSALS:
            problems.append(f"{target.describe()}: installed, but documented as refused")
        result.installed += 1
        return True
    reason = status.reason or ""
    if NEVER_RUNS in reason:
        result.never_runs += 1
        if events:
            problems.append(f"{target.describe()}: refused, but settrace saw it {events} times")
    elif key not in EXPECTED_REFUSALS:
        problems.append(f"{target.describe()}: {status.state.value}: {reason}")
    elif "exact" not in reason:
        problems.append(f"{target.describe()}: refused without saying why: {reason}")
    else:
        result.refused.append(f"{target.describe()}: {reason}")
    return False


def counter_matrix(engine: Engine, mode: str, refs: dict[str, Reference]) -> Result:
    """A counter on each line, one at a time: its hits equal settrace's events."""
    result = Result()
    runner = RUNNERS[mode]
    for fn, inputs in CASES:
        ref = refs[fn.__name__]
        for target in TARGETS[fn.__name__]:
            probe = Probe(kind="counter", location=target.location)
            status, outcomes = runner(fn, inputs, lambda p=probe: engine.install(p))
            want = expected_hits(target, ref, mode, inputs)
            if check_refusal(engine, target, status, want, result):
                got = engine.status(probe.id)
                assert got is not None
                if got.hits != want:
                    result.problems.append(
                        f"{fn.__name__}: {target.describe()}: {got.hits} hits, settrace {want}"
                    )
            if outcomes != ref.outcomes:
                result.problems.append(f"{fn.__name__}: {target.describe()} changed the outcome")
            engine.remove(probe.id)
    return result


def snapshot_matrix(engine: Engine, mode: str, refs: dict[str, Reference]) -> Result:
    """A snapshot probe with a condition on each line of the corpus functions themselves."""
    result = Result()
    runner = RUNNERS[mode]
    for fn, inputs in CASES:
        ref = refs[fn.__name__]
        for target in TARGETS[fn.__name__]:
            if target.code is not TOP[fn.__name__]:
                continue  # ``n`` is a local of the corpus functions themselves
            probe = Probe(
                kind="snapshot",
                location=target.location,
                condition=CONDITION,
                capture=["n"],
                limits={"rate": 1e9, "burst": 1_000_000},
            )
            status, _ = runner(fn, inputs, lambda p=probe: engine.install(p))
            fired = expected_hits(target, ref, mode, inputs)
            if not check_refusal(engine, target, status, fired, result):
                continue
            got = engine.status(probe.id)
            assert got is not None
            hits = [h for h in engine.drain() if h.probe_id == probe.id]
            want = ref.events_if[(target.code, target.line)]
            if mode == "running frames" and target.line == GATE_LINE[fn.__name__]:
                want = -1  # which held frames had an even n: not worth modelling
            name = f"{fn.__name__}: {target.describe()}"
            if want >= 0 and (got.hits, got.skipped_condition) != (want, fired - want):
                result.problems.append(
                    f"{name}: {got.hits} hits and {got.skipped_condition} condition skips, "
                    f"settrace {want} and {fired - want}"
                )
            if got.errors or got.drops or got.skipped_rate:
                result.problems.append(f"{name}: {got}")
            if want >= 0 and len(hits) != want:
                result.problems.append(f"{name}: {len(hits)} hits drained, settrace {want}")
            for hit in hits:
                n = (hit.captures or {}).get("n")
                if hit.line != target.line or not isinstance(n, int) or n % 2:
                    result.problems.append(f"{name}: a hit reads {hit.to_dict()}")
                    break
            engine.remove(probe.id)
    return result


def together_matrix(engine: Engine, mode: str, refs: dict[str, Reference]) -> Result:
    """Counters on every line of a function at once: each counts its own line."""
    result = Result()
    runner = RUNNERS[mode]
    for fn, inputs in CASES:
        ref = refs[fn.__name__]
        lines = TARGETS[fn.__name__]
        probes = [Probe(kind="counter", location=t.location) for t in lines]
        statuses, outcomes = runner(fn, inputs, lambda ps=probes: [engine.install(p) for p in ps])
        for target, probe, status in zip(lines, probes, statuses, strict=True):
            want = expected_hits(target, ref, mode, inputs)
            if check_refusal(engine, target, status, want, result):
                got = engine.status(probe.id)
                assert got is not None
                if got.hits != want:
                    result.problems.append(
                        f"{fn.__name__}: {target.describe()}: {got.hits} hits, settrace {want}"
                    )
        if outcomes != ref.outcomes:
            result.problems.append(f"{fn.__name__}: probes on every line changed the outcome")
        engine.remove_all()
    return result


def _frame_lines(fn: Callable[..., Any], arg: Any) -> list[tuple[int, ...]]:
    """The lines settrace reports for each frame of the case's own code over one call."""
    code = TOP[fn.__name__]
    running: dict[int, set[int]] = {}  # id(frame) -> its lines, while the frame runs
    ended: list[set[int]] = []

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code is not code:
            return None
        if event == "call":
            running[id(frame)] = set()
        elif event == "line":
            running[id(frame)].add(frame.f_lineno)
        elif event == "return":
            # Also at an exception exit; the frame's id may be reused by the next call.
            ended.append(running.pop(id(frame)))
        return tracer

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        drive(fn, arg)
    finally:
        sys.settrace(previous)
    return sorted(tuple(sorted(lines)) for lines in [*ended, *running.values()])


def lines_matrix(engine: Engine, mode: str, refs: dict[str, Reference]) -> Result:
    """A lines probe on each plain corpus function, every call sampled: each hit's lines equal
    the settrace lines of that call's frame (new calls only: a frame already running was not
    sampled at its entry). Generators and coroutines are refused by the probe kind."""
    result = Result()
    if mode != "new calls":
        return result
    for fn, inputs in CASES:
        code = TOP[fn.__name__]
        suspends = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
        if code.co_flags & suspends:
            continue
        ref = refs[fn.__name__]
        wanted = [_frame_lines(fn, arg) for arg in inputs]  # before the probe rebuilds the code
        hits: list[Any] = []
        probe = Probe(
            kind="lines",
            location=f"{MODULE}:{code.co_qualname}",
            limits={"rate": 1e9, "burst": 10**9},
        )
        status = engine.install(probe, on_hit=hits.append)
        if status.state is not ProbeState.INSTALLED:
            result.problems.append(
                f"{fn.__name__}: lines probe {status.state.value}: {status.reason}"
            )
            continue
        result.installed += 1
        for index, arg in enumerate(inputs):
            want = wanted[index]
            del hits[:]
            if drive(fn, arg) != ref.outcomes[index]:
                result.problems.append(
                    f"{fn.__name__}({arg!r}): the lines probe changed the outcome"
                )
            got = sorted(tuple(h.lines["ran"]) for h in hits if h.lines is not None)
            if got != want:
                result.problems.append(f"{fn.__name__}({arg!r}): lines {got}, settrace {want}")
            errors = [e for h in hits for e in (h.errors or [])]
            if errors:
                result.problems.append(f"{fn.__name__}: lines not observed: {errors}")
        engine.remove(probe.id)
    return result


MATRICES = {
    "counter": counter_matrix,
    "snapshot": snapshot_matrix,
    "together": together_matrix,
    "lines": lines_matrix,
}


def run(backend: str, mode: str) -> dict[str, Any]:
    """Every matrix on one backend and mode: per matrix, the problems and the counts."""
    refs = {fn.__name__: reference(fn, inputs) for fn, inputs in CASES}
    engine = Engine(backend=backend, cpu_budget=1.0)
    try:
        if engine.backend_name != backend:
            return {"unavailable": engine.backend_reason}
        report: dict[str, Any] = {"python": sys.version.split()[0], "backend": backend}
        for name, matrix in MATRICES.items():
            result = matrix(engine, mode, refs)
            report[name] = dataclasses.asdict(result)
        return report
    finally:
        engine.close()


def main() -> None:
    backend, mode = sys.argv[1], sys.argv[2]
    print(json.dumps(run(backend, mode)))


if __name__ == "__main__":
    main()
