"""Plugin start-up: pytest with pytest-runtime installed but unused, against ``-p no:runtime``.

Two measurements, each as paired, interleaved runs (A B A B ...) after a warm-up, in fresh
pytest processes:

- ``startup``: pytest starting and running one trivial test;
- ``suite500``: a generated suite of 500 trivial tests in 50 files.

The figure is the median of the per-pair ratios of CPU time (plugin / disabled) with the min
and max, and the median wall-time ratio beside it;
the goal is a ratio within 2% (<= 1.02). Usage::

    python bench/bench_plugin_startup.py [--pairs 15] [--json]
    python bench/bench_plugin_startup.py --instructions [--json]   # callgrind counts, repeatable
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 1.02


def make_suite(root: Path, files: int, tests_per_file: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    for f in range(files):
        body = "\n\n".join(
            f"def test_{f}_{t}():\n    assert {t} + 1 == {t + 1}" for t in range(tests_per_file)
        )
        (root / f"test_gen_{f:03d}.py").write_text(body + "\n")


def run_once(root: Path, extra: list[str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one pytest process.

    CPU time (user + system of the child) is the figure compared: on a shared 2-core machine
    the wall time of a 2-second process moves by 20% with other people's load, its CPU time
    much less.
    """
    # Bytecode caches on, as in any installed environment: the warm-up run writes them, so
    # the figures measure running the plugin, not compiling it.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "SENSOR_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"pytest failed in {root}: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def instructions(root: Path, extra: list[str]) -> int:
    """Instructions executed by one pytest process, counted by callgrind (repeatable)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "SENSOR_")) and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONHASHSEED"] = "0"  # the same dict and set layouts in both runs
    command = [
        "valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    for line in result.stderr.splitlines():
        if "Collected :" in line:
            return int(line.rsplit(":", 1)[1].strip())
    raise SystemExit(f"callgrind gave no count: {result.stderr[-2000:]}")


def measure_instructions(name: str, root: Path) -> dict[str, object]:
    run_once(root, [])  # writes the bytecode caches
    run_once(root, ["-p", "no:runtime"])
    on = instructions(root, [])
    off = instructions(root, ["-p", "no:runtime"])
    return {
        "benchmark": "plugin_startup_instructions",
        "case": name,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "instructions_plugin": on,
        "instructions_disabled": off,
        "ratio": round(on / off, 4),
        "goal": f"ratio <= {GOAL}",
        "meets_goal": on / off <= GOAL,
    }


def measure(name: str, root: Path, pairs: int) -> dict[str, object]:
    enabled: list[str] = []
    disabled = ["-p", "no:runtime"]
    run_once(root, enabled)  # warm-up: file system caches, .pyc of the packages
    run_once(root, disabled)
    ratios, wall_ratios, times_on, times_off = [], [], [], []
    for n in range(pairs):
        # Alternate which one goes first, so that a drift in machine load hits both sides.
        if n % 2 == 0:
            on, off = run_once(root, enabled), run_once(root, disabled)
        else:
            off, on = run_once(root, disabled), run_once(root, enabled)
        times_on.append(on[0])
        times_off.append(off[0])
        ratios.append(on[0] / off[0])
        wall_ratios.append(on[1] / off[1])
    median = statistics.median(ratios)
    return {
        "benchmark": "plugin_startup",
        "case": name,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "pairs": pairs,
        "ratio_median": round(median, 4),
        "ratio_min": round(min(ratios), 4),
        "ratio_max": round(max(ratios), 4),
        "cpu_seconds_plugin_median": round(statistics.median(times_on), 4),
        "cpu_seconds_disabled_median": round(statistics.median(times_off), 4),
        "wall_ratio_median": round(statistics.median(wall_ratios), 4),
        # The least disturbed run of each side: robust when other people load the machine.
        "ratio_of_minimums": round(min(times_on) / min(times_off), 4),
        "goal": f"ratio <= {GOAL}",
        "meets_goal": median <= GOAL,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=15, help="paired runs per case (default 15)")
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions with valgrind's callgrind instead of timing (slow, repeatable)",
    )
    args = parser.parse_args(argv)
    if args.instructions:
        return main_instructions(args.json)
    with tempfile.TemporaryDirectory(prefix="bench-plugin-startup-") as tmp:
        one = Path(tmp, "one")
        make_suite(one, files=1, tests_per_file=1)
        suite = Path(tmp, "suite")
        make_suite(suite, files=50, tests_per_file=10)
        rows = [measure("startup", one, args.pairs), measure("suite500", suite, args.pairs)]
    if args.json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return 0
    print(f"pytest-runtime installed but unused vs -p no:runtime (Python {rows[0]['python']})")
    print(
        f"{'case':<10} {'plugin cpu s':>12} {'disabled cpu s':>14} {'ratio':>7} {'min':>7} "
        f"{'max':>7} {'min/min':>7} {'wall ratio':>10}  goal"
    )
    for row in rows:
        mark = "ok" if row["meets_goal"] else "MISSED"
        print(
            f"{row['case']:<10} {row['cpu_seconds_plugin_median']:>12.3f} "
            f"{row['cpu_seconds_disabled_median']:>14.3f} {row['ratio_median']:>7.3f} "
            f"{row['ratio_min']:>7.3f} {row['ratio_max']:>7.3f} {row['ratio_of_minimums']:>7.3f} "
            f"{row['wall_ratio_median']:>10.3f}"
            f"  <= {GOAL} {mark}"
        )
    return 0


def main_instructions(as_json: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-plugin-startup-") as tmp:
        one = Path(tmp, "one")
        make_suite(one, files=1, tests_per_file=1)
        suite = Path(tmp, "suite")
        make_suite(suite, files=50, tests_per_file=10)
        rows = [measure_instructions("startup", one), measure_instructions("suite500", suite)]
    if as_json:
        for row in rows:
            print(json.dumps(row, sort_keys=True))
        return 0
    python = rows[0]["python"]
    print(f"instructions (callgrind), installed but unused vs -p no:runtime (Python {python})")
    print(f"{'case':<10} {'plugin':>15} {'disabled':>15} {'ratio':>7}  goal")
    for row in rows:
        mark = "ok" if row["meets_goal"] else "MISSED"
        print(
            f"{row['case']:<10} {row['instructions_plugin']:>15,} "
            f"{row['instructions_disabled']:>15,} {row['ratio']:>7.4f}  <= {GOAL} {mark}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
