"""What placing and removing a probe costs the host: placement time and the longest stall.

A host with a heap of N small objects (dicts, lists, tuples) runs a request-like thread: a tight
loop doing a little work, which records the longest gap between two of its iterations. The
main thread then places and removes probes through the sensor's public path
(``Engine.install`` / ``Engine.remove``): a snapshot probe on a module-level function, a
``lines`` probe on a module-level function of 20 lines, and a snapshot probe on a closure that
exists before placement. A gap longer than the loop's usual iteration is time during which
the host's thread could not run: the GIL was held by the placement (the bytecode backend's
walk of the heap to find every function object running the target code).

Each (N, backend) is measured in a fresh interpreter (code objects replaced in one case must
not leak into the next). The stall of the loop with no placement at all (``idle``) is measured
in the same process, over the same wall time, as the baseline.

    python bench/bench_placement_stall.py                  # N = 1M and 5M, default backend
    python bench/bench_placement_stall.py --sizes 1000000 --backend bytecode --json

Goal (docs/explanation/backends.md): one heap walk per change, whatever the probe; the longest
stall a change causes is at most one walk of the heap (it used to be one walk per hook placed,
per parent code of a nested function).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r'''
import gc, json, sys, threading, time, types
sys.path.insert(0, ROOT)
N, BACKEND = int(sys.argv[1]), sys.argv[2] or None

body = "\n".join(f"    x = x + {i}" for i in range(20))
src = f"""
def target(x):
    return x + 1

def many(x):
{body}
    return x

def outer(k):
    def inner(n):
        return n + k
    return inner
"""
mod = types.ModuleType("stall_mod")
mod.__file__ = "<stall_mod>"
exec(compile(src, "stall_mod.py", "exec"), mod.__dict__)
sys.modules["stall_mod"] = mod
closure = mod.outer(1)

# the heap: N small objects, a third each dicts, lists and tuples (all gc-tracked: each dict
# and tuple holds the list)
heap = []
for i in range(N // 3):
    item = [i]
    heap += [{"i": item}, item, (i, item)]
gc.collect()
tracked = len(gc.get_objects())

from sensor.engine import Engine
from sensor.probes import Probe

engine = Engine(backend=BACKEND)

stop = False
gaps = []           # (start, end) of every iteration gap over 2 ms
def request_loop():
    last = time.perf_counter()
    acc = 0
    while not stop:
        acc += len(str(acc))  # a tiny amount of work
        now = time.perf_counter()
        if now - last > 0.002:
            gaps.append((last, now))
        last = now

def longest(t0, t1):
    inside = [b - a for a, b in gaps if b >= t0 and a <= t1]
    return max(inside, default=0.0)

th = threading.Thread(target=request_loop, daemon=True)
th.start()
time.sleep(0.2)
out = {"tracked": tracked, "backend": engine.backend_name}
# baseline: the loop's longest gap over half a quiet second
t0 = time.perf_counter()
time.sleep(0.5)
out["idle_stall_ms"] = longest(t0, time.perf_counter()) * 1e3
cases = {
    "function": Probe(kind="snapshot", location="stall_mod:target"),
    "lines": Probe(kind="lines", location="stall_mod:many"),
    "closure": Probe(kind="snapshot", location="stall_mod:outer.<locals>.inner"),
}
for name, probe in cases.items():
    t0 = time.perf_counter()
    status = engine.install(probe)
    t1 = time.perf_counter()
    assert status.state.value == "installed", status.reason
    time.sleep(0.05)
    t2 = time.perf_counter()
    engine.remove(probe.id)
    t3 = time.perf_counter()
    time.sleep(0.05)
    out[name] = {
        "place_ms": (t1 - t0) * 1e3, "place_stall_ms": longest(t0, t1) * 1e3,
        "remove_ms": (t3 - t2) * 1e3, "remove_stall_ms": longest(t2, t3) * 1e3,
    }
assert closure(1) == 2
stop = True
th.join()
print(json.dumps(out))
'''


def run(size: int, backend: str) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, "-c", CHILD.replace("ROOT", repr(str(ROOT)), 1), str(size), backend],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000000,5000000", help="heap sizes, comma-separated")
    parser.add_argument("--backend", default="", help="force a backend (default: this Python's)")
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    args = parser.parse_args()
    py = ".".join(map(str, sys.version_info[:2]))
    if not args.json:
        print(f"Python {py}; goal: a change's longest stall is at most one heap walk")
        print(
            f"{'N':>9} {'tracked':>9} {'backend':>9} {'probe':>9} {'place ms':>9} "
            f"{'stall ms':>9} {'remove ms':>9} {'stall ms':>9} {'idle stall':>10}"
        )
    for size in (int(s) for s in args.sizes.split(",")):
        res = run(size, args.backend)
        for case in ("function", "lines", "closure"):
            row = res[case]
            assert isinstance(row, dict)
            if args.json:
                print(
                    json.dumps(
                        {
                            "python": py,
                            "n": size,
                            "tracked": res["tracked"],
                            "backend": res["backend"],
                            "probe": case,
                            "idle_stall_ms": res["idle_stall_ms"],
                            **row,
                        }
                    )
                )
            else:
                print(
                    f"{size:>9} {res['tracked']:>9} {res['backend']:>9} {case:>9} "
                    f"{row['place_ms']:>9.1f} {row['place_stall_ms']:>9.1f} "
                    f"{row['remove_ms']:>9.1f} {row['remove_stall_ms']:>9.1f} "
                    f"{res['idle_stall_ms']:>10.1f}"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
