"""Capture cost of a typical frame, against copy.deepcopy and a naive bounded copy, per Python.

The frame holds the locals the sensor issue names: two ints, an 11-character and a 300-character
string, a 10-item dict and a small object. Each case is timed against ``copy.deepcopy`` of the
same values in paired, interleaved runs (A B A B ...), after a warm-up; the figure is the median
per-pair ratio with its min and max, next to the median microseconds per capture.

    python bench/bench_capture.py                 # this Python
    python bench/bench_capture.py --pythons 3.11 3.12 3.13   # one subprocess per Python
    python bench/bench_capture.py --json          # one JSON object per measurement
    python bench/bench_capture.py --instructions --pythons 3.11 3.12 3.13

``--instructions`` counts CPU instructions per capture under valgrind's callgrind instead of
timing: repeatable on a busy machine ((run with 1000 calls - run with 0 calls) / 1000).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sensor.capture import capture_frame  # noqa: E402
from sensor.probes import CaptureLimits  # noqa: E402

GOAL_US = 20.0


class Customer:
    def __init__(self) -> None:
        self.id = 42
        self.name = "Ada Lovelace"
        self.tier = "gold"


def frame_values(with_object: bool = True) -> dict[str, object]:
    values: dict[str, object] = {
        "count": 3,
        "total": 1299,
        "name": "hello world",
        "body": "lorem ipsum " * 25,
        "order": {f"k{i}": i for i in range(10)},
    }
    if with_object:
        values["customer"] = Customer()
    return values


def naive_copy(value: object, depth: int = 0) -> object:
    """A bounded recursive copy (depth 3, 100 items, 256 chars): what ANCHORS.md measured."""
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, str):
        return value[:256]
    if depth >= 3:
        return "..."
    if isinstance(value, dict):
        return {k: naive_copy(v, depth + 1) for k, v in list(value.items())[:100]}
    if isinstance(value, (list, tuple, set)):
        return [naive_copy(v, depth + 1) for v in list(value)[:100]]
    if hasattr(value, "__dict__"):
        return {k: naive_copy(v, depth + 1) for k, v in vars(value).items()}
    return repr(value)[:256]


def per_call_us(func: Callable[[], object], number: int) -> float:
    start = time.perf_counter()
    for _ in range(number):
        func()
    return (time.perf_counter() - start) / number * 1e6


def paired(
    candidate: Callable[[], object], baseline: Callable[[], object], pairs: int, number: int
) -> dict[str, float]:
    for _ in range(3):  # warm-up: caches, layouts, specialisation
        per_call_us(candidate, number // 10 or 1)
        per_call_us(baseline, number // 10 or 1)
    ratios, cand, base = [], [], []
    for _ in range(pairs):
        c = per_call_us(candidate, number)
        b = per_call_us(baseline, number)
        cand.append(c)
        base.append(b)
        ratios.append(c / b)
    return {
        "us": statistics.median(cand),
        "us_min": min(cand),
        "baseline_us": statistics.median(base),
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
        "ratio_max": max(ratios),
    }


def measure(pairs: int, number: int) -> list[dict[str, Any]]:
    limits = CaptureLimits()
    values = frame_values()
    anchor_values = frame_values(with_object=False)
    try:
        from sensor.redaction import get_redactor

        redactor: Any = get_redactor()
    except ImportError:
        redactor = None

    def deep() -> object:
        return copy.deepcopy(values)

    cases: list[tuple[str, Callable[[], object]]] = [
        ("capture_frame, no redaction", lambda: capture_frame(values, limits, None)),
    ]
    if redactor is not None:
        cases.append(("capture_frame, redacted", lambda: capture_frame(values, limits, redactor)))
        fresh = dict(values)
        counter = iter(range(10**12))

        def fresh_capture() -> object:
            # New short strings each call: no cached redaction verdict can help.
            n = next(counter)
            fresh["name"] = f"hello {n:05d}"
            fresh["count"] = n
            return capture_frame(fresh, limits, redactor)

        body = values["body"]
        cases += [
            ("capture_frame, redacted, fresh short strings", fresh_capture),
            (
                "redactor.match_secret_value(300-char string) alone",
                lambda: redactor.match_secret_value(body),
            ),
        ]
    cases += [
        (
            "capture_frame, redacted, 5 anchor locals (no object)",
            lambda: capture_frame(anchor_values, limits, redactor),
        ),
        ("naive bounded copy", lambda: naive_copy(values)),
        ("copy.deepcopy", deep),
    ]
    python = ".".join(map(str, sys.version_info[:3]))
    rows = []
    for name, func in cases:
        result = paired(func, deep, pairs, number)
        rows.append(
            {
                "bench": "capture",
                "python": python,
                "case": name,
                "us_per_capture": round(result["us"], 2),
                "us_per_capture_min": round(result["us_min"], 2),
                "deepcopy_us": round(result["baseline_us"], 2),
                "ratio_vs_deepcopy": round(result["ratio"], 3),
                "ratio_min": round(result["ratio_min"], 3),
                "ratio_max": round(result["ratio_max"], 3),
                "goal_us": GOAL_US if name.startswith("capture_frame") else None,
                # Judged on the least disturbed run (timeit's practice): other processes only
                # ever add time. The median and the ratios are printed next to it.
                "meets_goal": result["us_min"] < GOAL_US
                if name.startswith("capture_frame")
                else None,
                "redaction": redactor is not None and "redact" in name,
                "pairs": pairs,
                "calls_per_run": number,
                # A busy machine inflates microseconds (ratios hold better): record how busy.
                "loadavg_1min": round(os.getloadavg()[0], 2),
            }
        )
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| Python | case | us per capture (median, best) | x deepcopy (median, min-max) | goal |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        goal = (
            ""
            if r["goal_us"] is None
            else f"< {r['goal_us']:g} us (best run): " + ("met" if r["meets_goal"] else "MISSED")
        )
        lines.append(
            f"| {r['python']} | {r['case']} | {r['us_per_capture']:.2f}, "
            f"{r['us_per_capture_min']:.2f} | "
            f"{r['ratio_vs_deepcopy']:.2f}x ({r['ratio_min']:.2f}-{r['ratio_max']:.2f}) | {goal} |"
        )
    return "\n".join(lines)


def _case_funcs() -> dict[str, Callable[[], object]]:
    limits = CaptureLimits()
    values = frame_values()
    funcs: dict[str, Callable[[], object]] = {
        "capture_frame, no redaction": lambda: capture_frame(values, limits, None),
        "naive bounded copy": lambda: naive_copy(values),
        "copy.deepcopy": lambda: copy.deepcopy(values),
        "empty": lambda: None,
    }
    try:
        from sensor.redaction import get_redactor

        redactor = get_redactor()
        body = str(values["body"])
        funcs["capture_frame, redacted"] = lambda: capture_frame(values, limits, redactor)
        funcs["redactor.match_secret_value(300-char string) alone"] = lambda: (
            redactor.match_secret_value(body)
        )
    except ImportError:
        pass
    return funcs


def _worker(case: str, calls: int) -> None:
    func = _case_funcs()[case]
    for _ in range(50):  # the same warm-up in both runs: it cancels out
        func()
    for _ in range(calls):
        func()


def _instructions(exe: str, case: str, calls: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                exe,
                __file__,
                "--worker",
                case,
                str(calls),
            ],
            check=True,
            capture_output=True,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            timeout=600,
        )
        for line in out.read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"no instruction total in callgrind output for {case!r}")


def measure_instructions(exe: str, calls: int = 1000) -> list[dict[str, Any]]:
    # The real interpreter, not a pyenv shim (valgrind does not follow the shim's exec).
    exe, version = subprocess.run(
        [exe, "-c", "import sys; print(sys.executable, '.'.join(map(str, sys.version_info[:3])))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    cases = [c for c in _case_funcs() if c != "empty"]
    per_call = {}
    for case in cases:
        base = _instructions(exe, case, 0)
        full = _instructions(exe, case, calls)
        per_call[case] = (full - base) / calls
    deep = per_call["copy.deepcopy"]
    return [
        {
            "bench": "capture_instructions",
            "python": version,
            "case": case,
            "instructions_per_capture": round(per_call[case]),
            "ratio_vs_deepcopy": round(per_call[case] / deep, 3),
            "calls": calls,
        }
        for case in cases
    ]


def instructions_table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| Python | case | instructions per capture | x deepcopy |",
        "| --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['python']} | {r['case']} | {r['instructions_per_capture']:,} | "
            f"{r['ratio_vs_deepcopy']:.2f}x |"
        )
    return "\n".join(lines)


def run_other(version: str, pairs: int, number: int) -> list[dict[str, Any]]:
    exe = shutil.which(f"python{version}")
    if exe is None:
        raise SystemExit(f"python{version} not found on PATH (try PYENV_VERSION=...)")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [exe, __file__, "--json", "--pairs", str(pairs), "--number", str(number)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    parser.add_argument("--pairs", type=int, default=7, help="paired runs per case")
    parser.add_argument("--number", type=int, default=2000, help="captures per timed run")
    parser.add_argument("--pythons", nargs="*", help="versions to run, e.g. 3.11 3.12 3.13")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions with callgrind"
    )
    parser.add_argument("--worker", nargs=2, metavar=("CASE", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker[0], int(args.worker[1]))
        return 0
    if args.instructions:
        exes = [sys.executable]
        if args.pythons:
            found = [shutil.which(f"python{v}") for v in args.pythons]
            if None in found:
                raise SystemExit(f"not all of python{args.pythons} are on PATH")
            exes = [e for e in found if e is not None]
        rows = [row for exe in exes for row in measure_instructions(exe)]
        if args.json:
            for row in rows:
                print(json.dumps(row))
        else:
            print(instructions_table(rows))
        return 0
    if args.pythons:
        rows = [row for v in args.pythons for row in run_other(v, args.pairs, args.number)]
    else:
        rows = measure(args.pairs, args.number)
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        print(table(rows))
        print(f"\nload average (1 min) during the runs: {max(r['loadavg_1min'] for r in rows):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
