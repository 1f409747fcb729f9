"""A line probe fires exactly where sys.settrace reports its line, on every backend and construct.

The matrix itself is line_matrix.py (its docstring says what it checks); each backend and mode
runs it in a fresh process. The tests here assert its report: no line whose hits differ from
settrace's events, no refusal that is not documented, no probed run that changed the program.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import line_matrix
import pytest

MODES = [
    pytest.param(backend, mode, id=f"{backend}-{mode.replace(' ', '-')}", marks=marks)
    for backend, mode, marks in (
        ("bytecode", "new calls", []),
        (
            "monitoring",
            "new calls",
            [pytest.mark.skipif(sys.version_info < (3, 12), reason="3.12+")],
        ),
        (
            "monitoring",
            "running frames",
            [pytest.mark.skipif(sys.version_info < (3, 12), reason="3.12+")],
        ),
        ("hybrid", "new calls", [pytest.mark.skipif(sys.version_info < (3, 12), reason="3.12+")]),
        (
            "hybrid",
            "running frames",
            [pytest.mark.skipif(sys.version_info < (3, 12), reason="3.12+")],
        ),
    )
]


def run_matrix(backend: str, mode: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(line_matrix.__file__)), backend, mode],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-5000:]
    report: dict[str, Any] = json.loads(out.stdout)
    assert "unavailable" not in report, report
    return report


@pytest.mark.parametrize(("backend", "mode"), MODES)
def test_line_probes_fire_exactly_where_settrace_reports_the_line(backend: str, mode: str) -> None:
    report = run_matrix(backend, mode)
    failures = []
    for name in line_matrix.MATRICES:
        result = report[name]
        if result["problems"]:
            failures.append(
                f"{name} on {backend} ({mode}), Python {report['python']}: "
                f"{len(result['problems'])} wrong of {result['installed']} placed:\n  "
                + "\n  ".join(result["problems"])
            )
    assert not failures, "\n".join(failures)
    # The matrix must have checked something: every line of the corpus, minus the lines that
    # settrace never reports (def and decorator lines), minus documented refusals (none).
    assert report["counter"]["installed"] >= 300
    assert report["snapshot"]["installed"] >= 200
    assert report["counter"]["refused"] == report["together"]["refused"] == []
    if mode == "new calls":
        # A lines probe on every plain corpus function (generators and coroutines refused).
        assert report["lines"]["installed"] >= 35


def test_the_corpus_covers_the_constructs() -> None:
    # The matrix proves nothing about a construct the corpus lost: list what it must hold.
    source = line_matrix.CORPUS_PATH.read_text()
    for construct in (
        "for ",
        "else:",
        "while ",
        "while True:",
        "break",
        "continue",
        "try:",
        "except*",
        "finally:",
        "with ",
        "match ",
        "yield from",
        "async for",
        "async with",
        "await ",
        "lambda",
        "return",
        "raise\n",
        "raise ValueError(n) from exc",
        "pass",
        "nonlocal",
    ):
        assert construct in source, construct
    kinds = {
        "generator": inspect.isgeneratorfunction,
        "coroutine": inspect.iscoroutinefunction,
        "decorated": lambda f: hasattr(f, "__wrapped__"),
    }
    for kind, test in kinds.items():
        assert any(test(fn) or test(inspect.unwrap(fn)) for fn, _ in line_matrix.CASES), kind
    assert all(len(inputs) >= 2 for _, inputs in line_matrix.CASES)


def test_the_line_model_predicts_every_line_event_settrace_reports() -> None:
    # Below the matrix: settrace with opcode events shows every instruction a frame runs, so
    # each arrival (the instruction before, the one after) and whether CPython reported a line
    # event on it can be checked against sensor.inject.lines, arrival by arrival.
    from sensor.inject.lines import LineModel

    filename = str(line_matrix.CORPUS_PATH)
    models: dict[Any, LineModel] = {}
    offsets: dict[Any, dict[int, int]] = {}
    previous: dict[Any, int | None] = {}
    reported: dict[Any, bool] = {}
    wrong: Counter[str] = Counter()
    checked = [0]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        code = frame.f_code
        if code.co_filename != filename:
            return None
        frame.f_trace_opcodes = True
        if code not in models:
            models[code] = LineModel(code)
            offsets[code] = {op.offset: op.index for op in models[code].ops}
        if event == "call":
            previous[frame] = None
        elif event == "line":
            reported[frame] = True
        elif event == "opcode":
            model = models[code]
            index = offsets[code].get(frame.f_lasti)
            source = previous.get(frame)
            fired = reported.pop(frame, False)
            if index is not None and source is not None:
                checked[0] += 1
                found = [a for a in model.arrivals.get(index, []) if a.source == source]
                predicted = any(a.fires for a in found)
                if not found or predicted != fired:
                    src, dst = model.ops[source], model.ops[index]
                    wrong[
                        f"{code.co_qualname}: {src.opname} (line {src.line}) -> {dst.opname} "
                        f"(line {dst.line}): settrace {'reported' if fired else 'did not'}, "
                        f"model {'has no such arrival' if not found else predicted}"
                    ] += 1
            previous[frame] = index
        return tracer

    before = sys.gettrace()
    try:
        # Twice, one settrace session per call: 3.12.1 starts the opcode events of a frame
        # only in a later session than the one that asked for them.
        for _ in range(2):
            for fn, inputs in line_matrix.CASES:
                for arg in inputs:
                    sys.settrace(tracer)
                    line_matrix.drive(fn, arg)
                    sys.settrace(before)
    finally:
        sys.settrace(before)
    assert not wrong, "\n".join(f"{n}x {w}" for w, n in wrong.items())
    assert checked[0] > 5000


def test_rebuilt_code_keeps_the_handler_depths_of_the_original() -> None:
    # A line hook moves jumps and handlers to new labels and may split an exception range by
    # line; the bytecode package's own estimate of the handler depths then went wrong (a `with`
    # handler at depth 1 instead of 3, an `async for` handler marked dead), which corrupted the
    # stack when an exception passed there. Every depth must be one the original table has.
    from sensor.inject.bytecode_backend import instrument
    from sensor.inject.lines import LineModel, exception_entries
    from sensor.probes import Point

    wrong = []
    for name, targets in line_matrix.TARGETS.items():
        for target in targets:
            model = LineModel(target.code)
            if model.refusal(target.line) is not None:
                continue
            rebuilt = instrument(target.code, [(Point.LINE, target.line, lambda: None)])
            before = {(e.depth, e.lasti) for e in exception_entries(target.code)}
            after = {(e.depth, e.lasti) for e in exception_entries(rebuilt)}
            if after - before:
                wrong.append(f"{name}: {target.describe()}: {sorted(after - before)}")
    assert not wrong, "\n".join(wrong)
