"""The cost of one evaluation of a typical always-on expectation, in ns, per checkout side by side.

An expectation standing in production is evaluated on every call its ``eval_rate`` admits. What
one evaluation costs the host (guards, frame read, sandboxed evaluation and CPU metering
together) decides how many can stand: 20 expectations on a function called 1,000 times a second
stay under 1% of one CPU at 500 ns each. Run it with each Python::

    python bench/bench_expect_eval.py                     # this checkout
    python bench/bench_expect_eval.py --roots OLD .       # before and after, side by side
    python bench/bench_expect_eval.py --json
    python bench/bench_expect_eval.py --roots OLD . --icount   # instructions (callgrind)
    python bench/bench_expect_eval.py --point line             # a @line probe instead

``OLD`` is any directory holding a ``sensor`` package (``git archive main sensor | tar -x -C
OLD``). How it measures: one fresh process per (checkout, expectation) measurement, on the
running Python's default backend, with the engine's CPU budget on (0.99 of a CPU, so that the
metering runs as in production but never sheds the loop). Inside it, the unprobed loop and the
probed loop alternate (best of 3 each, ``--pairs`` pairs): ``(probed - unprobed) / calls``, the
median of the pairs. The probe is kind ``expect`` at ``@return`` with ``eval_rate`` 1e9, so that
every call is evaluated by the probe's own hook (``--eval-rate 1e8``: by the general hook, with
its rate bucket, as a probe with a finite rate such as the shop's standing ones; ``--point
line``: at ``@<last line>``, the target's return line, before the return runs, where
``result`` is not defined; ``--kind snapshot``: a snapshot probe with the same expectation,
whose passing firings are captured at its rate of 1 a second, so that nearly every evaluation
is one the pass bucket refuses and the novelty check of a new value class runs); the child
checks from the probe's status that every call was evaluated and that none violated (a
measurement of skipped firings would be meaningless). The checkouts alternate process by
process, ``--rounds`` times; the figure is the median over rounds, with min..max, and ``new /
old`` is the median of the per-round ratios. Each figure is also given in empty Python calls,
measured in the same process beside each pair (a figure of a busy machine and the empty call
it is divided by move together).

``--icount`` counts CPU instructions instead (``valgrind --tool=callgrind``), which do not move
with the machine's load: the probed loop and the unprobed loop, each with n and 2n iterations of
ten calls, so that start-up and placement cancel out; ``(Ir(2n) - Ir(n)) / 10n`` per call,
probed minus unprobed, and an empty call measured the same way.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOAL_NS = 500.0

#: name -> (expectation, the target's source). Each target returns at its last line.
CASES: dict[str, tuple[str, str]] = {
    "result_ge_0": (
        "result >= 0",
        "def target(i):\n    price = i + 1\n    return price\n",
    ),
    "x_ge_0": (
        "x >= 0",
        "def target(x):\n    a = x + 1\n    b = a + 1\n    c = b + 1\n    d = c + 1\n"
        "    e = d + 1\n    f = e + 1\n    g = f + 1\n    h = g + 1\n    j = h + 1\n    return j\n",
    ),
    "total_eq_sum": (
        "result == sum(prices)",
        "def target(i):\n    prices = [i, 2, 3]\n    total = i + 5\n    return total\n",
    ),
    "chained_range": (
        "0 <= discount <= price",
        "def target(i):\n    price = i + 10\n    discount = i % 10\n    return price - discount\n",
    ),
    "isinstance_len": (
        "isinstance(name, str) and len(name) < 64",
        "def target(i):\n    name = 'item-7'\n    size = i\n    return size\n",
    ),
    "isinstance_list_len": (
        "isinstance(items, list) and len(items) > 0",
        "def target(i):\n    items = [i, 2]\n    count = len(items)\n    return count\n",
    ),
    "status_in": (
        "status in ('paid', 'shipped')",
        "def target(i):\n    status = 'paid' if i % 2 else 'shipped'\n    return i\n",
    ),
    "dict_item": (
        "order['total'] >= 0",
        "def target(i):\n    order = {'id': i, 'total': i + 1}\n    return order['id']\n",
    ),
    "abs_close": (
        "abs(result - expected) <= 1",
        "def target(i):\n    expected = i + 0.5\n    return i + 1\n",
    ),
    "all_items": (
        "all(p >= 0 for p in prices)",
        "def target(i):\n    prices = [i, 2, 3]\n    return i\n",
    ),
    # Money is Decimal (examples/shop: its prices, discounts and quotes).
    "money_ge_0": (
        "result >= 0",
        "from decimal import Decimal\nP = Decimal('12.50')\n"
        "def target(i):\n    price = P + i\n    return price\n",
    ),
    "money_range": (
        "0 <= result <= price",
        "from decimal import Decimal\nP = Decimal('52.00')\nOFF = Decimal('5.20')\n"
        "def target(i):\n    price = P + i\n    return price - OFF\n",
    ),
    "quote_total": (
        "result['total'] == result['subtotal'] - result['discount'] + result['shipping']",
        "from decimal import Decimal as D\n"
        "S, OFF, SHIP, T = D('52.00'), D('5.20'), D('6.44'), D('53.24')\n"
        "def target(i):\n    quote = {'currency': 'EUR', 'subtotal': S, 'discount': OFF, "
        "'shipping': SHIP, 'total': T}\n    return quote\n",
    ),
}
#: What one empty Python call costs on a quiet machine here (13.5 to 16.3 ns on 3.11, 3.12 and
#: 3.13: docs/reference/benchmarks.md), used to turn instructions into nanoseconds.
QUIET_EMPTY_NS = 15.0

CHILD = r"""
import json, os, statistics, sys, time
root, expect, source = sys.argv[1:4]
calls, pairs = int(sys.argv[4]), int(sys.argv[5])
kind = sys.argv[6] if len(sys.argv) > 6 else "expect"
point = sys.argv[7] if len(sys.argv) > 7 else "return"
# @line: the target's last line (each returns there), before the return runs.
at = "return" if point == "return" else str(len(source.splitlines()))
sys.path.insert(0, root)
ns = {"__name__": "__main__"}
exec(compile(source, "<bench>", "exec"), ns)
target = ns["target"]
sys.modules["__main__"].target = target
from sensor.engine import Engine
from sensor.probes import Probe

def loop(n):
    fn = target
    for i in range(n):
        fn(i); fn(i); fn(i); fn(i); fn(i); fn(i); fn(i); fn(i); fn(i); fn(i)

def empty(i):
    pass

def loop_empty(n):
    fn = empty
    for i in range(n):
        fn(i); fn(i); fn(i); fn(i); fn(i); fn(i); fn(i); fn(i); fn(i); fn(i)

def bare(n):
    for i in range(n):
        pass

def timed(n, run=loop):
    t = time.perf_counter_ns()
    run(n)
    return time.perf_counter_ns() - t

engine = Engine(cpu_budget=0.99)
limits = {"eval_rate": float(os.environ.get("BENCH_EVAL_RATE", "1e9"))}
if os.environ.get("BENCH_EXPIRES"):  # --expires: as the hub places probes, with a TTL
    limits["expires_at"] = time.time() + 3600
probe = Probe(kind=kind, location=f"__main__:target@{at}", expect=expect, limits=limits)
rounds = calls // 10
loop(rounds)
diffs = []
empties = []
evaluated = violations = 0
for _ in range(pairs):
    # One empty Python call, measured beside each pair (the machine's speed at that moment).
    empties.append((min(timed(rounds, loop_empty) for _ in range(3))
                    - min(timed(rounds, bare) for _ in range(3))) / (rounds * 10))
    base = min(timed(rounds) for _ in range(3))
    status = engine.install(probe, on_hit=lambda hit: None)
    assert status.state.value == "installed", status.reason
    probed = min(timed(rounds) for _ in range(3))
    status = engine.status(probe.id)
    evaluated += status.evaluations
    violations += status.violations
    engine.remove(probe.id)
    diffs.append((probed - base) / (rounds * 10))
expected = pairs * 3 * rounds * 10
if evaluated != expected or violations:
    raise SystemExit(f"{expect!r}: {evaluated} evaluations of {expected} calls, "
                     f"{violations} violations")
print(json.dumps({"ns": statistics.median(diffs), "empty": statistics.median(empties),
                  "backend": engine.backend_name, "switches": engine._budget.switches}))
"""


ICOUNT_CHILD = r"""
import os, sys
root, expect, source, mode, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
kind, point = sys.argv[6], sys.argv[7]
at = "return" if point == "return" else str(len(source.splitlines()))
sys.path.insert(0, root)
ns = {"__name__": "__main__"}
exec(compile(source, "<bench>", "exec"), ns)
target = ns["target"]
sys.modules["__main__"].target = target

def empty(i):
    pass

fn = empty if mode == "empty" else target
if mode == "probed":
    from sensor.engine import Engine
    from sensor.probes import Probe
    engine = Engine(cpu_budget=0.99)
    probe = Probe(kind=kind, location=f"__main__:target@{at}", expect=expect,
                  limits={"eval_rate": float(os.environ.get("BENCH_EVAL_RATE", "1e9"))})
    status = engine.install(probe, on_hit=lambda hit: None)
    assert status.state.value == "installed", status.reason
    fn(0)
def loop(fn, n):
    for i in range(n):
        fn(i); fn(i); fn(i); fn(i); fn(i); fn(i); fn(i); fn(i); fn(i); fn(i)

def bare(n):
    for i in range(n):
        pass

if mode == "bare":
    bare(n)
else:
    loop(fn, n)
if mode == "probed":
    got = engine.status(probe.id)
    if got.evaluations != 10 * n + 1 or got.violations:
        raise SystemExit(f"{got.evaluations} evaluations of {10 * n + 1} calls")
os._exit(0)
"""


def _ir(script: Path, root: Path, case: str, mode: str, n: int, kind: str, point: str) -> int:
    expect, source = CASES[case]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
             str(script), str(root), expect, source, mode, str(n), kind, point],
            check=True, capture_output=True, cwd=root,
            # One hash seed for every run: the start-up of two processes then costs the same
            # instructions, and the difference of the n and 2n runs is the loop's alone.
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )  # fmt: skip
        for line in out.read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no summary")


def _empty_call_ns() -> float:
    """One empty Python call on this machine now, in ns: the best of 15 short loops."""

    def empty(i: int) -> None:
        pass

    def timed(call: bool) -> int:
        t = time.perf_counter_ns()
        if call:
            for i in range(20_000):
                empty(i)
        else:
            for _ in range(20_000):
                pass
        return time.perf_counter_ns() - t

    return (min(timed(True) for _ in range(15)) - min(timed(False) for _ in range(15))) / 20_000


def icount(
    roots: list[Path],
    cases: list[str],
    n: int,
    as_json: bool,
    kind: str,
    empty_ns: float,
    empty_ir: float | None = None,
    point: str = "return",
) -> None:
    """Instructions per evaluation (probed minus unprobed call) and per empty call, and the
    nanoseconds they come to at ``empty_ns`` per empty call (a quiet machine's)."""
    if shutil.which("valgrind") is None:
        print("skipped: valgrind is not installed (apt-get install valgrind)")
        return
    python = sys.version.split()[0]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(ICOUNT_CHILD)

        def per_call(root: Path, case: str, mode: str, n: int = n) -> float:
            calls = 10 * n if mode != "bare" else n
            twice = _ir(script, root, case, mode, 2 * n, kind, point)
            return (twice - _ir(script, root, case, mode, n, kind, point)) / calls

        # The empty call, which every figure is divided by, over 10 times the loop: what is
        # left of start-up differences is then a tenth.
        first = next(iter(CASES))
        if empty_ir is None:
            loop = per_call(roots[-1], first, "bare", 10 * n) / 10  # the loop's share of a call
            empty = per_call(roots[-1], first, "empty", 10 * n) - loop
        else:
            empty = empty_ir
        if not as_json:
            load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
            names = " | ".join(f"{r.name}: Ir (empty calls) = ns" for r in roots)
            print(
                f"Python {python}, kind {kind} at @{point}, instructions per evaluation "
                f"(callgrind, n={n}); "
                f"one empty call: {empty:.0f} Ir. ns = Ir / {empty:.0f} x {empty_ns:g} ns, the "
                f"empty call of a quiet machine (--empty-ns; measured now: "
                f"{_empty_call_ns():.1f} ns at load average {load})\n"
            )
            print(
                f"| expectation | {names} |"
                + (" new / old |" if len(roots) == 2 else "")
                + f" goal <= {GOAL_NS:.0f} ns |"
            )
            print("| --- |" + " ---: |" * (len(roots) + (len(roots) == 2)) + " --- |")
        for case in cases:
            plain = per_call(roots[-1], case, "plain")
            figures = {r: per_call(r, case, "probed") - plain for r in roots}
            ns = {r: v / empty * empty_ns for r, v in figures.items()}
            record: dict[str, Any] = {
                "python": python,
                "case": case,
                "expect": CASES[case][0],
                "unit": "Ir",
                "ir": {str(r): round(v, 1) for r, v in figures.items()},
                "empty_call_ir": round(empty, 1),
                "empty_calls": {str(r): round(v / empty, 1) for r, v in figures.items()},
                "empty_call_ns": empty_ns,
                "ns": {str(r): round(v, 1) for r, v in ns.items()},
                "goal_ns": GOAL_NS,
                "met": ns[roots[-1]] <= GOAL_NS,
            }
            if len(roots) == 2:
                record["ratio"] = round(figures[roots[1]] / figures[roots[0]], 3)
            if as_json:
                print(json.dumps(record))
                continue
            cells = " | ".join(
                f"{figures[r]:,.0f} ({figures[r] / empty:.1f}) = {ns[r]:.0f}" for r in roots
            )
            ratio = f" {record['ratio']:.2f}x |" if len(roots) == 2 else ""
            verdict = "ok" if record["met"] else "MISSED"
            print(f"| `{CASES[case][0]}` | {cells} |{ratio} {verdict} |")


def _child(
    root: Path, case: str, calls: int, pairs: int, kind: str, point: str = "return"
) -> dict[str, Any]:
    expect, source = CASES[case]
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(root),
            expect,
            source,
            str(calls),
            str(pairs),
            kind,
            point,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        cwd=root,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{root} {case}: {out.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roots", nargs="+", default=[str(ROOT)], help="sensor checkouts")
    parser.add_argument("--calls", type=int, default=20_000, help="calls per timed loop")
    parser.add_argument("--pairs", type=int, default=5, help="unprobed/probed pairs per process")
    parser.add_argument("--rounds", type=int, default=3, help="processes per checkout and case")
    parser.add_argument("--only", help="comma-separated cases: " + ", ".join(CASES))
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    parser.add_argument("--icount", action="store_true", help="CPU instructions (callgrind)")
    parser.add_argument("--n", type=int, default=2000, help="--icount: loop iterations")
    parser.add_argument(
        "--empty-ns",
        type=float,
        default=QUIET_EMPTY_NS,
        help="--icount: ns of one empty call on a quiet machine, to turn instructions into ns",
    )
    parser.add_argument(
        "--empty-ir",
        type=float,
        help="--icount: instructions of one empty call, measured before (not measured again)",
    )
    parser.add_argument(
        "--kind",
        choices=["expect", "snapshot"],
        default="expect",
        help="the probe's kind: snapshot also captures passing firings at 1 a second, so that "
        "nearly every evaluation is one the pass bucket refuses (the novelty check's path)",
    )
    parser.add_argument(
        "--point",
        choices=["return", "line"],
        default="return",
        help="where the probe is: @return, or @line on the target's last line (before its "
        "return runs; the expectations that read result are left out there)",
    )
    parser.add_argument(
        "--expires",
        action="store_true",
        help="give the probe an expires_at an hour away, as the hub does (its TTL): the lane "
        "then reads the clock on every evaluation for the expiry (wall clock only)",
    )
    parser.add_argument(
        "--eval-rate",
        type=float,
        default=1e9,
        help="the probe's eval_rate: 1e9 (unlimited: the probe's own hook, the lane); below it "
        "the general hook with its rate bucket (1e8 still evaluates every call; the shop's "
        "standing probes have 1000)",
    )
    args = parser.parse_args()
    if args.expires:
        os.environ["BENCH_EXPIRES"] = "1"
    os.environ["BENCH_EVAL_RATE"] = repr(args.eval_rate)
    roots = [Path(r).resolve() for r in args.roots]
    cases = args.only.split(",") if args.only else list(CASES)
    for case in cases:
        if case not in CASES:
            raise SystemExit(f"--only: unknown case {case!r}; expected one of {', '.join(CASES)}")
    if args.point == "line":
        # ``result`` is the value of a return: at a line it is not defined (every evaluation
        # would be a violation, which the child refuses to measure).
        cases = [c for c in cases if "result" not in CASES[c][0]]
    if args.icount:
        icount(roots, cases, args.n, args.json, args.kind, args.empty_ns, args.empty_ir, args.point)
        return
    python = sys.version.split()[0]
    if not args.json:
        names = " | ".join(f"{r.name}: ns (min..max), in empty calls" for r in roots)
        ratio = " | new / old" if len(roots) == 2 else ""
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"Python {python}, probe kind {args.kind} at @{args.point}"
            f"{', with expires_at' if args.expires else ''}"
            f"{f', eval_rate {args.eval_rate:g}' if args.eval_rate < 1e9 else ''}"
            f", load average {load}\n\n"
            f"| expectation | backend | {names}{ratio} "
            f"| goal <= {GOAL_NS:.0f} ns |"
        )
        print(
            "| --- | --- |"
            + " ---: |" * len(roots)
            + (" ---: |" if len(roots) == 2 else "")
            + " --- |"
        )
    for case in cases:
        figures: dict[Path, list[float]] = {r: [] for r in roots}
        calls_of: dict[Path, list[float]] = {r: [] for r in roots}
        switches: dict[Path, int] = dict.fromkeys(roots, 0)
        backend = ""
        for _ in range(args.rounds):
            for root in roots:  # the checkouts alternate, process by process
                data = _child(root, case, args.calls, args.pairs, args.kind, args.point)
                figures[root].append(data["ns"])
                calls_of[root].append(data["ns"] / data["empty"])
                switches[root] += data["switches"]
                backend = data["backend"]
        medians = {r: statistics.median(v) for r, v in figures.items()}
        new = medians[roots[-1]]
        record: dict[str, Any] = {
            "python": python,
            "case": case,
            "expect": CASES[case][0],
            "backend": backend,
            "rounds": args.rounds,
            "pairs": args.pairs,
            "calls": args.calls,
            "ns": {str(r): round(m, 1) for r, m in medians.items()},
            "min_max": {str(r): [round(min(v), 1), round(max(v), 1)] for r, v in figures.items()},
            "empty_calls": {str(r): round(statistics.median(v), 1) for r, v in calls_of.items()},
            # Times the CPU budget switched to the thread's CPU clock (two system calls per
            # firing from then on): a busy machine's preemption can push a window over.
            "precise_switches": {str(r): n for r, n in switches.items()},
            "goal_ns": GOAL_NS,
            "met": new <= GOAL_NS,
        }
        if len(roots) == 2:
            old_r, new_r = roots
            record["ratio"] = round(
                statistics.median(
                    n / o for o, n in zip(figures[old_r], figures[new_r], strict=True)
                ),
                3,
            )
        if args.json:
            print(json.dumps(record))
            continue
        cells = " | ".join(
            f"{medians[r]:.0f} ({min(figures[r]):.0f}..{max(figures[r]):.0f}), "
            f"{statistics.median(calls_of[r]):.1f} calls"
            for r in roots
        )
        ratio_cell = f" | {record['ratio']:.2f}x" if len(roots) == 2 else ""
        verdict = "ok" if record["met"] else "MISSED"
        if any(switches.values()):
            verdict += (
                " (budget switched to the CPU clock: "
                + ", ".join(f"{r.name} {n}x" for r, n in switches.items())
                + ")"
            )
        print(f"| `{CASES[case][0]}` | {backend} | {cells}{ratio_cell} | {verdict} |")


if __name__ == "__main__":
    main()
