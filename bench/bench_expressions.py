"""Cost of evaluating a probe condition in the sandbox, against native Python, per Python version.

The condition is the typical ``rate > 0.5 and len(items) < 10``. Baselines measured in the same
process, interleaved with the sandbox (A B A B ..., after a warm-up):

* ``native``: a compiled lambda called with the values read from the locals dict
  (``fn(ns["rate"], ns["items"])``), the cheapest native evaluation there is;
* ``eval``: ``eval(code, None, ns)`` of a pre-compiled code object, what an unsandboxed
  debugger would do with a frame's locals;
* ``sandbox``: ``sensor.expressions.compile(...).evaluate(ns)``.

The figure that counts is the median of the per-pair ratios sandbox/native (with min and max).
Goal: no worse than 10x native and under 5 microseconds per evaluation.

Usage::

    python bench/bench_expressions.py                 # this interpreter
    python bench/bench_expressions.py --pythons 3.11 3.12 3.13 [--json]

With ``--pythons`` each version runs in its own fresh interpreter (``pythonX.Y`` on PATH; the
repository root is put on PYTHONPATH, the sensor needs only the standard library).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CONDITION = "rate > 0.5 and len(items) < 10"
GOAL_RATIO = 10.0
GOAL_NS = 5_000.0
ROOT = Path(__file__).resolve().parent.parent


def _loop_native(n: int, ns: dict[str, Any]) -> float:
    fn = eval(f"lambda rate, items: {CONDITION}")  # our constant text, not user input
    t = time.perf_counter_ns()
    for _ in range(n):
        fn(ns["rate"], ns["items"])
    return (time.perf_counter_ns() - t) / n


def _loop_eval(n: int, ns: dict[str, Any]) -> float:
    code = compile(CONDITION, "<condition>", "eval")
    t = time.perf_counter_ns()
    for _ in range(n):
        eval(code, None, ns)
    return (time.perf_counter_ns() - t) / n


def _loop_sandbox(n: int, ns: dict[str, Any]) -> float:
    from sensor import expressions

    evaluate = expressions.compile(CONDITION).evaluate
    t = time.perf_counter_ns()
    for _ in range(n):
        evaluate(ns)
    return (time.perf_counter_ns() - t) / n


def measure(pairs: int, n: int) -> dict[str, Any]:
    """Interleaved pairs in this interpreter; returns one measurement record."""
    ns: dict[str, Any] = {"rate": 0.7, "items": [1, 2, 3], "user": "ann", "total": 12.5}
    for fn in (_loop_native, _loop_eval, _loop_sandbox):  # warm-up
        fn(n // 10, ns)
    native: list[float] = []
    evals: list[float] = []
    sandbox: list[float] = []
    for _ in range(pairs):
        native.append(_loop_native(n, ns))
        sandbox.append(_loop_sandbox(n, ns))
        evals.append(_loop_eval(n, ns))
    ratios = [s / b for s, b in zip(sandbox, native, strict=True)]
    eval_ratios = [s / b for s, b in zip(sandbox, evals, strict=True)]
    return {
        "benchmark": "expressions",
        "condition": CONDITION,
        "python": ".".join(map(str, sys.version_info[:3])),
        "pairs": pairs,
        "evaluations_per_run": n,
        "native_ns": round(statistics.median(native), 1),
        "eval_ns": round(statistics.median(evals), 1),
        "sandbox_ns": round(statistics.median(sandbox), 1),
        "ratio_vs_native": round(statistics.median(ratios), 2),
        "ratio_vs_native_min": round(min(ratios), 2),
        "ratio_vs_native_max": round(max(ratios), 2),
        "ratio_vs_eval": round(statistics.median(eval_ratios), 2),
        "goal_ratio": GOAL_RATIO,
        "goal_ns": GOAL_NS,
        "meets_goal": statistics.median(ratios) <= GOAL_RATIO
        and statistics.median(sandbox) < GOAL_NS,
    }


def _run_other(version: str, pairs: int, n: int) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [f"python{version}", __file__, "--json", "--pairs", str(pairs), "--n", str(n)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def _print_table(rows: list[dict[str, Any]]) -> None:
    print(f"condition: {CONDITION!r}; goal: <= {GOAL_RATIO:g}x native and < {GOAL_NS:g} ns")
    print(
        "| Python | native ns | eval() ns | sandbox ns | sandbox/native (min-max) "
        "| sandbox/eval | goal |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(
            f"| {r['python']} | {r['native_ns']:.0f} | {r['eval_ns']:.0f} | {r['sandbox_ns']:.0f} "
            f"| {r['ratio_vs_native']:.2f}x ({r['ratio_vs_native_min']:.2f}-"
            f"{r['ratio_vs_native_max']:.2f}) | {r['ratio_vs_eval']:.2f}x "
            f"| {'met' if r['meets_goal'] else 'MISSED'} |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    parser.add_argument("--pairs", type=int, default=7, help="interleaved baseline/sandbox pairs")
    parser.add_argument("--n", type=int, default=50_000, help="evaluations per run")
    parser.add_argument("--pythons", nargs="*", help="versions to run, e.g. 3.11 3.12 3.13")
    args = parser.parse_args(argv)
    if args.pythons:
        rows = [_run_other(v, args.pairs, args.n) for v in args.pythons]
    else:
        rows = [measure(args.pairs, args.n)]
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        _print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
