"""What one firing refused by the CPU budget costs the host, which the budget does not meter.

A firing the budget refuses returns before the metering (it reads no clock of its own), so its
cost is outside the budget's figures; it is counted in ``skipped_budget``. This measures that
cost, to say whether metering it would be worth it::

    python bench/bench_budget_refusal.py            # run it with each Python
    python bench/bench_budget_refusal.py --json

One fresh process per Python: a snapshot probe at ``@entry`` of a one-line function (``rate``
1e9, so its own rate limit admits every call) whose budget share is emptied by hand, so that
every firing reaches the budget and is refused. The unprobed loop and the refused loop
alternate (best of 3 each, 7 pairs): ``(refused - unprobed) / calls`` in ns, the median of the
pairs with min..max, and in empty Python calls measured beside each pair. It prints, measured
the same way, what metering would add to each refusal (two ``perf_counter_ns`` reads and the
subtraction, the least the metering of a firing does). The child checks from the probe's
status that every call was refused (``skipped_budget`` = calls, no hit). Goal: metering a
refusal would cost at least half of the refusal itself (then documenting beats metering).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, statistics, sys, tempfile, time, pathlib
sys.path.insert(0, sys.argv[1])
calls, kind = int(sys.argv[2]), sys.argv[3]
d = tempfile.mkdtemp(); sys.path.insert(0, d)
source = "def f(x):\n    return x\n\ndef g(x):\n    return x\n"
pathlib.Path(d, "refusal_target.py").write_text(source)
import refusal_target as t
from sensor.engine import Engine
from sensor.probes import Probe, ProbeState

engine = Engine(cpu_budget=0.5)
if kind == "snapshot":
    probe = Probe(
        kind="snapshot", location="refusal_target:f@entry", limits={"rate": 1e9, "burst": 1000}
    )
else:
    probe = Probe(
        kind="expect", location="refusal_target:f@return", expect="result >= 0",
        limits={"eval_rate": 1e9},
    )
assert engine.install(probe).state is ProbeState.INSTALLED
account = engine._budget.account(probe.id)
account.rate = 1e-12          # shedding, and a share that never refills within the run
account.tokens = -1e18
f, g = t.f, t.g               # g: the same function, unprobed

def loop(fn):
    t0 = time.thread_time_ns()
    for i in range(calls):
        fn(i)
    return time.thread_time_ns() - t0

def empty(): pass
def empty_loop():
    t0 = time.thread_time_ns()
    for i in range(calls):
        empty()
    return time.thread_time_ns() - t0

def bare_loop():
    t0 = time.thread_time_ns()
    for i in range(calls):
        pass
    return time.thread_time_ns() - t0

def meter_loop():
    clock = time.perf_counter_ns
    spent = 0
    t0 = time.thread_time_ns()
    for i in range(calls):
        a = clock()
        spent += clock() - a
    return time.thread_time_ns() - t0

best = lambda fn, *a: min(fn(*a) for _ in range(3))
loop(f); loop(g)
refusal, empties, meter = [], [], []
for _ in range(7):
    base = best(loop, g)
    refused = best(loop, f)
    bare = best(bare_loop)
    refusal.append((refused - base) / calls)
    empties.append((best(empty_loop) - bare) / calls)
    meter.append((best(meter_loop) - bare) / calls)
status = engine.status(probe.id)
n = (1 + 7 * 3) * calls  # the warm-up loop, then 7 pairs of best of 3
assert status.hits == 0 and status.evaluations == 0, status
assert status.skipped_budget == n, (status.skipped_budget, n)
print(json.dumps({"refusal": refusal, "empty": empties, "meter": meter,
                  "skipped_budget": status.skipped_budget, "backend": engine.backend_name}))
engine.close()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000, help="calls per timed loop")
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    args = parser.parse_args()
    version = ".".join(map(str, sys.version_info[:3]))
    rows = []
    for kind in ("snapshot", "expect"):
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(CHILD), str(ROOT), str(args.calls), kind],
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            sys.stderr.write(out.stderr)
            return 1
        data = json.loads(out.stdout.strip().splitlines()[-1])

        def med(key: str, data: dict[str, object] = data) -> tuple[float, float, float]:
            values = sorted(data[key])  # type: ignore[call-overload]
            return values[len(values) // 2], values[0], values[-1]

        refusal, empty, meter = med("refusal"), med("empty"), med("meter")
        rows.append((kind, data, refusal, empty, meter))
        if args.json:
            for key, (value, low, high) in (
                ("refusal", refusal), ("meter", meter), ("empty", empty)
            ):  # fmt: skip
                record = {"python": version, "kind": kind, "measure": key, "ns": value}
                print(json.dumps(record | {"min": low, "max": high, "backend": data["backend"]}))
    if args.json:
        return 0
    print(f"Python {version}, backend {rows[0][1]['backend']}, CPU time (thread_time_ns)")
    print("| per refused firing | refusal ns (min..max) | empty calls | metering it: ns | "
          "metering / refusal | goal >= 0.5 |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for kind, data, refusal, empty, meter in rows:
        ratio = meter[0] / refusal[0] if refusal[0] > 0 else float("inf")
        print(
            f"| {kind} ({data['skipped_budget']} refusals counted) | {refusal[0]:.1f} "
            f"({refusal[1]:.1f}..{refusal[2]:.1f}) | {refusal[0] / empty[0]:.2f} | "
            f"{meter[0]:.1f} | {ratio:.2f} | {'ok' if ratio >= 0.5 else 'MISSED'} |"
        )
    print(f"one empty call: {rows[0][3][0]:.1f} ns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
