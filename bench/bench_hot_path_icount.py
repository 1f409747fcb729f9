"""Hot-path cost in CPU instructions (callgrind): per hit, and as a multiple of one empty call.

Wall-clock figures on a shared 2-core machine move with the load; instruction counts do not.
This runs the same loop under ``valgrind --tool=callgrind`` twice (n and 2n iterations of ten
calls) so that start-up and arming cancel out, and reports ``(Ir(2n) - Ir(n)) / (10 n)`` per call,
minus the same for the unprobed function::

    python bench/bench_hot_path_icount.py                       # this checkout
    python bench/bench_hot_path_icount.py --roots OLD .         # two checkouts side by side
    python bench/bench_hot_path_icount.py --json
    python bench/bench_hot_path_icount.py --cases counter lines_between_samples

``OLD`` is any directory holding a ``sensor`` package (``git archive <commit> sensor | tar -x
-C OLD``). Cases, on the default backend of the running Python: a counter hit, a 1/s snapshot's
skipped hit, the Python skip path of an open gate (what an ``expect`` probe under its default
``eval_rate`` costs between evaluations, minus the call itself: measured on the gate's hook
directly, because under valgrind's slowdown the number of evaluations would depend on time),
a ``lines`` probe between two sampled calls and on sampled calls (on a function of two lines,
and on one whose loop runs 10 iterations over 6 lines), and (checkouts with
``sensor.threads``) a counter hit while a sensor thread waits outside sensor work (the agent
between turns) and while one works (the checked mode).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import os, sys
root, backend, kind, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, root)

def target(x):
    y = x + 1
    return y

def empty(x):
    pass

def looped(x):
    total = 0
    for i in range(10):
        if i & 1:
            total += i
        else:
            total -= x
        if total > 100:
            total = 0
    return total

def loop10(fn, n):
    for i in range(n):
        fn(i); fn(i); fn(i); fn(i); fn(i); fn(i); fn(i); fn(i); fn(i); fn(i)

def bare(n):
    for i in range(n):
        pass

fn = looped if kind.endswith("_loop") else target
if kind in ("counter", "snapshot_1s", "counter_agent_idle", "counter_sensor_busy"):
    from sensor.engine import Engine
    from sensor.probes import Probe
    if kind in ("counter_agent_idle", "counter_sensor_busy"):
        import threading, time
        from sensor.threads import BUSY, Event, SensorThread
        busy = kind == "counter_sensor_busy"
        event = threading.Event() if busy else Event()
        SensorThread(lambda: event.wait(3600), name="bench").start()
        while bool(BUSY) != busy:
            time.sleep(0.001)
    engine = Engine(backend=backend, cpu_budget=1.0)
    line = target.__code__.co_firstlineno + 1
    probe_kind = "snapshot" if kind == "snapshot_1s" else "counter"
    limits = {"rate": 1.0} if kind == "snapshot_1s" else {}
    probe = Probe(kind=probe_kind, location=f"__main__:target@{line}", limits=limits)
    status = engine.install(probe, on_hit=lambda hit: None)
    assert status.state.value == "installed", status.reason
    fn(0); fn(0)  # a snapshot's one hit; its gate is closed from then on
elif kind.startswith("lines_"):
    # A lines probe on the whole function. Between samples: its one token is spent (the next
    # sample 1000 s away), what every call pays between two sampled calls. Sampled: every
    # call is recorded (one hit each).
    from sensor.engine import Engine
    from sensor.probes import Probe
    engine = Engine(backend=backend, cpu_budget=1.0)
    sampled = kind.startswith("lines_sampled")
    limits = {"rate": 1e9, "burst": 10**9} if sampled else {"rate": 0.001, "burst": 1}
    probe = Probe(kind="lines", location=f"__main__:{fn.__name__}", limits=limits)
    status = engine.install(probe, on_hit=lambda hit: None)
    assert status.state.value == "installed", status.reason
    fn(0); fn(0)  # between samples: the one sampled call; the gate is closed from then on
elif kind == "open_gate_skip":
    # An expectation gate whose next evaluation is far away and that never closes (no waker):
    # every call takes the Python skip path (the clock read), what an 'expect' probe under
    # its default eval_rate costs between two evaluations. Called directly: compare to empty.
    from sensor.guards import ExpectGate
    gate = ExpectGate(lambda value, admit: False, eval_rate=1e-6, violation_rate=1.0,
                      pass_rate=None, on_stop=lambda why: None)
    gate.hook()
    fn = gate.hook
elif kind == "empty":
    fn = empty
if kind == "bare":
    bare(n)
else:
    loop10(fn, n)
os._exit(0)
"""

CASES = (
    "counter",
    "snapshot_1s",
    "open_gate_skip",
    "counter_agent_idle",
    "counter_sensor_busy",
    "lines_between_samples",
    "lines_between_samples_loop",
    "lines_sampled",
    "lines_sampled_loop",
)

#: What each case is called in the table, and its goal in empty calls per call (None: no goal,
#: the figure is reported). The counter probe's goal is the lines probe's between samples.
LABELS = {
    "counter": "counter hit",
    "snapshot_1s": "snapshot 1/s, skipped hit",
    "open_gate_skip": "expect gate, open skip path",
    "counter_agent_idle": "counter hit, agent idle",
    "counter_sensor_busy": "counter hit, sensor busy",
    "lines_between_samples": "lines probe between samples, 2-line function",
    "lines_between_samples_loop": "lines probe between samples, 10-iteration loop",
    "lines_sampled": "lines probe, sampled call, 2-line function",
    "lines_sampled_loop": "lines probe, sampled call, 10-iteration loop",
}
GOALS: dict[str, float | None] = {
    "counter": 1.0,
    "lines_between_samples": 1.0,
    "lines_between_samples_loop": 1.0,
}
#: A sampled call costs thousands of instructions: fewer calls measure it as well.
SCALE = {"lines_sampled": 20, "lines_sampled_loop": 20}


def _ir(script: Path, root: Path, backend: str, kind: str, n: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "cg.out"
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                str(script),
                str(root),
                backend,
                kind,
                str(n),
            ],
            check=True,
            capture_output=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        for line in out.read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError("callgrind wrote no summary")


def _per_call(script: Path, root: Path, backend: str, kind: str, n: int, calls: int) -> float:
    return (_ir(script, root, backend, kind, 2 * n) - _ir(script, root, backend, kind, n)) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roots", nargs="+", default=[str(ROOT)], help="sensor checkouts")
    parser.add_argument("--n", type=int, default=20_000, help="loop iterations (10 calls each)")
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    parser.add_argument(
        "--cases", nargs="+", choices=CASES, default=list(CASES), help="the cases to run"
    )
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("skipped: valgrind is not installed (apt-get install valgrind)")
        return  # `make bench` runs every benchmark: a missing tool is not a failure
    sys.path.insert(0, str(ROOT))
    from sensor.inject.core import default_backend_name

    backend = default_backend_name()
    python = sys.version.split()[0]
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "child.py"
        script.write_text(CHILD)
        n, calls = args.n, args.n * 10
        here = ROOT
        none = _per_call(script, here, backend, "none", n, calls)
        none_loop = _per_call(script, here, backend, "none_loop", n, calls)
        empty = _per_call(script, here, backend, "empty", n, calls)
        # ``bare`` runs n iterations: the loop's own share of one ten-call iteration.
        loop = _ir(script, here, backend, "bare", 2 * n) - _ir(script, here, backend, "bare", n)
        empty_call = empty - loop / calls
        records: list[dict[str, Any]] = []
        for root_text in args.roots:
            root = Path(root_text).resolve()
            has_threads = (root / "sensor" / "threads.py").exists()
            for kind in args.cases:
                if kind.startswith("counter_") and not has_threads:
                    continue
                if (
                    kind.startswith("lines_")
                    and "LINES" not in (root / "sensor" / "probes.py").read_text()
                ):
                    continue  # a checkout from before the lines probe kind
                # The gate's hook is called directly: its cost beyond an empty call.
                base = (
                    empty
                    if kind == "open_gate_skip"
                    else none_loop
                    if kind.endswith("_loop")
                    else none
                )
                k = n // SCALE.get(kind, 1)
                per_hit = _per_call(script, root, backend, kind, k, k * 10) - base
                ratio = per_hit / empty_call
                goal = GOALS.get(kind)
                records.append(
                    {
                        "python": python,
                        "root": str(root),
                        "backend": backend,
                        "measurement": f"per_hit_{kind}",
                        "label": LABELS[kind],
                        "value": round(per_hit, 1),
                        "unit": "Ir",
                        "calls": k * 10,
                        "empty_call_ir": round(empty_call, 1),
                        "ratio_to_empty_call": round(ratio, 2),
                        "goal_empty_calls": goal,
                        "verdict": None if goal is None else "ok" if ratio <= goal else "MISSED",
                    }
                )
    if args.json:
        for record in records:
            print(json.dumps(record))
        return
    print(
        f"Instructions per call beyond the unprobed call, Python {python}, backend {backend} "
        f"(callgrind, {calls} calls; sampled calls: {calls // SCALE['lines_sampled']})"
    )
    print(f"one empty call: {empty_call:.1f} Ir")
    for r in records:
        goal = r["goal_empty_calls"]
        verdict = "" if goal is None else f"  goal <= {goal:g}: {r['verdict']}"
        print(
            f"{r['label']:<50}{r['value']:>10} Ir {r['ratio_to_empty_call']:>8} empty calls"
            f"{verdict}  {r['root']}"
        )


if __name__ == "__main__":
    main()
