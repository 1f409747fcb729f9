"""Cost of evaluating a probe condition in the sandbox, against native Python, per Python version.

The condition is the typical ``rate > 0.5 and len(items) < 10`` (the figure the goal is about);
a second case reads attributes of a plain object (``order.total > 100 and order.status ==
'paid'``), which takes the sandbox's attribute path; a third reads strings long enough to be
checked for secrets by content (``order.state == 'shipped' and
order.note.startswith('gift')``). Baselines measured in the same process, interleaved with the
sandbox (A B A B ..., after a warm-up):

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
    python bench/bench_expressions.py --instructions --n 5000 --pythons 3.11 3.12 3.13

``--instructions`` counts instructions per evaluation under callgrind instead of timing: slow,
but repeatable whatever else the machine is doing.

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
# (case, condition, the names the native lambda takes)
CASES = [
    ("typical", CONDITION, ("rate", "items")),
    ("attributes", "order.total > 100 and order.status == 'paid'", ("order",)),
    # Strings long enough to be checked for secrets by content (the redaction rule R2 of
    # sensor/expressions/redact.py): the cost of that check on a condition that reads text.
    ("strings", "order.state == 'shipped' and order.note.startswith('gift')", ("order",)),
]
GOAL_RATIO = 10.0
GOAL_NS = 5_000.0
ROOT = Path(__file__).resolve().parent.parent


class Order:
    """A plain application object, as conditions read them."""

    def __init__(self) -> None:
        self.total = 120.0
        self.status = "paid"
        self.state = "shipped"
        self.note = "gift wrap, leave it at the door"
        self.items = [1, 2, 3]


def _loop_native(n: int, ns: dict[str, Any], cond: str, args: tuple[str, ...]) -> float:
    fn = eval(f"lambda {', '.join(args)}: {cond}")  # our constant text, not user input
    if len(args) == 2:
        a, b = args
        t = time.perf_counter_ns()
        for _ in range(n):
            fn(ns[a], ns[b])
    else:
        (a,) = args
        t = time.perf_counter_ns()
        for _ in range(n):
            fn(ns[a])
    return (time.perf_counter_ns() - t) / n


def _loop_eval(n: int, ns: dict[str, Any], cond: str, args: tuple[str, ...]) -> float:
    code = compile(cond, "<condition>", "eval")
    t = time.perf_counter_ns()
    for _ in range(n):
        eval(code, None, ns)
    return (time.perf_counter_ns() - t) / n


def _loop_sandbox(n: int, ns: dict[str, Any], cond: str, args: tuple[str, ...]) -> float:
    from sensor import expressions

    evaluate = expressions.compile(cond).evaluate
    t = time.perf_counter_ns()
    for _ in range(n):
        evaluate(ns)
    return (time.perf_counter_ns() - t) / n


def measure(pairs: int, n: int, case: str = "typical") -> dict[str, Any]:
    """Interleaved pairs in this interpreter; returns one measurement record."""
    _, cond, args = next(c for c in CASES if c[0] == case)
    ns: dict[str, Any] = {
        "rate": 0.7,
        "items": [1, 2, 3],
        "user": "ann",
        "total": 12.5,
        "order": Order(),
    }
    for fn in (_loop_native, _loop_eval, _loop_sandbox):  # warm-up
        fn(n // 10, ns, cond, args)
    native: list[float] = []
    evals: list[float] = []
    sandbox: list[float] = []
    for _ in range(pairs):
        native.append(_loop_native(n, ns, cond, args))
        sandbox.append(_loop_sandbox(n, ns, cond, args))
        evals.append(_loop_eval(n, ns, cond, args))
    ratios = [s / b for s, b in zip(sandbox, native, strict=True)]
    eval_ratios = [s / b for s, b in zip(sandbox, evals, strict=True)]
    return {
        "benchmark": "expressions",
        "case": case,
        "condition": cond,
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


_CALLGRIND_SNIPPET = """
import sys
sys.path.insert(0, {bench_dir!r})
import bench_expressions as b
ns = {{"rate": 0.7, "items": [1, 2, 3], "user": "ann", "total": 12.5, "order": b.Order()}}
_, cond, args = next(c for c in b.CASES if c[0] == {case!r})
b._loop_{impl}(2, ns, cond, args)
b._loop_{impl}({n}, ns, cond, args)
"""


def _instructions(python: str, case: str, impl: str, n: int) -> int:
    """Instructions executed by `python` running `n` evaluations (callgrind)."""
    code = _CALLGRIND_SNIPPET.format(bench_dir=str(ROOT / "bench"), case=case, impl=impl, n=n)
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONHASHSEED"] = "0"  # same dict layouts in every run
    # Compile the .pyc files outside callgrind, so that no run pays for it.
    subprocess.run([python, "-c", code.replace(f"({n}, ns", "(1, ns")], check=True, env=env)
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", python, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    for line in out.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1].strip())
    raise RuntimeError(f"no callgrind total in: {out.stderr[-500:]}")


def measure_instructions(python: str, n: int) -> list[dict[str, Any]]:
    """Instructions per evaluation (repeatable on a busy machine): (I(n+1) - I(1)) / n."""
    # A launcher (pyenv shim) would be what callgrind measures: resolve the interpreter.
    version, python = (
        subprocess.run(
            [
                python,
                "-c",
                "import sys; print('.'.join(map(str, sys.version_info[:3])), sys.executable)",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        .stdout.strip()
        .split(" ", 1)
    )
    rows = []
    for case, cond, _ in CASES:
        per: dict[str, float] = {}
        for impl in ("native", "eval", "sandbox"):
            base = _instructions(python, case, impl, 1)
            per[impl] = (_instructions(python, case, impl, n + 1) - base) / n
        rows.append(
            {
                "benchmark": "expressions-instructions",
                "case": case,
                "condition": cond,
                "python": version,
                "evaluations": n,
                "native_instructions": round(per["native"]),
                "eval_instructions": round(per["eval"]),
                "sandbox_instructions": round(per["sandbox"]),
                "ratio_vs_native": round(per["sandbox"] / per["native"], 2),
                "ratio_vs_eval": round(per["sandbox"] / per["eval"], 2),
                "goal_ratio": GOAL_RATIO,
            }
        )
    return rows


def _run_other(version: str, pairs: int, n: int) -> list[dict[str, Any]]:
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
    return [json.loads(line) for line in out.stdout.strip().splitlines()]


def _print_table(rows: list[dict[str, Any]]) -> None:
    print(f"goal: <= {GOAL_RATIO:g}x native and < {GOAL_NS:g} ns per evaluation")
    for case, cond, _ in CASES:
        print(f"{case}: {cond}")
    print(
        "| Python | case | native ns | eval() ns | sandbox ns | sandbox/native (min-max) "
        "| sandbox/eval | goal |"
    )
    print("| --- | --- | ---: | ---: | ---: | --- | ---: | --- |")
    for r in rows:
        print(
            f"| {r['python']} | {r['case']} | {r['native_ns']:.0f} | {r['eval_ns']:.0f} "
            f"| {r['sandbox_ns']:.0f} "
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
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per evaluation with callgrind instead of timing",
    )
    args = parser.parse_args(argv)
    if args.instructions:
        pythons = [f"python{v}" for v in args.pythons] if args.pythons else [sys.executable]
        rows = [row for py in pythons for row in measure_instructions(py, args.n)]
        if args.json:
            for row in rows:
                print(json.dumps(row))
        else:
            print(f"goal: <= {GOAL_RATIO:g}x native (instructions per evaluation, callgrind)")
            print("| Python | case | native | eval() | sandbox | sandbox/native | sandbox/eval |")
            print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
            for r in rows:
                print(
                    f"| {r['python']} | {r['case']} | {r['native_instructions']} "
                    f"| {r['eval_instructions']} | {r['sandbox_instructions']} "
                    f"| {r['ratio_vs_native']:.2f}x | {r['ratio_vs_eval']:.2f}x |"
                )
        return 0
    if args.pythons:
        rows = [row for v in args.pythons for row in _run_other(v, args.pairs, args.n)]
    else:
        rows = [measure(args.pairs, args.n, case) for case, _, _ in CASES]
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        _print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
