"""What the shop's 20 standing expectations cost its request path, in one process, no network.

``bench_service.py`` measures the shop under gunicorn, where two identical processes differ by
3% (the size of the standing goal's margin). This runs the shop's WSGI application in a loop
in one process, with the standing probes placed by an in-process :class:`~sensor.engine.Engine`
(its waker thread running) on ``shop`` and none on ``shopx``, a copy of the same package under
another name, and alternates blocks of the same seeded request mix between the two (A:
``shopx``, B: ``shop``, each block about a second). So both sides share the process, its
memory layout, its sensor threads and the machine's load of the moment, and B / A is what the
probes cost the requests that reach them:

* ``main B/A``: the main thread's CPU time per request (``time.thread_time_ns``), B over A;
* ``proc B/A``: the process's (main thread plus the sensor's threads), B over A;
* ``thr sw/s``: context switches a second of the process's other threads during B blocks
  (the waker's wake-ups and GIL hand-overs: each costs the host's process CPU outside the
  CPU budget's meter, see ``sensor.hotpath.CLOSE_TICK``);
* ``evals/s``: evaluations a second of the 20 probes during B blocks.

Each figure is the median over blocks of a process, then over processes (``--rounds``), and
checkouts run in alternation (``--roots``: directories holding a ``sensor`` package, e.g.
``git worktree add --detach /tmp/root-old <commit>``)::

    python bench/bench_standing_inprocess.py                                   # this checkout
    python bench/bench_standing_inprocess.py --roots /tmp/root-old . --rounds 5
    python bench/bench_standing_inprocess.py --eval-rate 1e9 --cpu-budget 1.0   # every call
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import io, json, os, random, statistics, sys, threading, time
root, repo, copy_dir = sys.argv[1], sys.argv[2], sys.argv[3]
budget, rate = float(sys.argv[4]), float(sys.argv[5])
blocks, reqs_n = int(sys.argv[6]), int(sys.argv[7])
shop_dir, bench_dir = os.path.join(repo, "examples", "shop"), os.path.join(repo, "bench")
sys.path[:0] = [root, copy_dir, shop_dir, repo, bench_dir]
import sensor
assert os.path.realpath(sensor.__file__).startswith(os.path.realpath(root)), sensor.__file__
from examples.shop import traffic
import shop.app
import shopx.app
from bench_service import standing
from sensor.engine import Engine
from sensor.probes import Probe

rng = random.Random(7)
requests = []
for _ in range(3000):
    roll = rng.random()
    if roll < 0.6:
        method, path, body = "POST", "/quote", traffic.make_order(rng)
    elif roll < 0.9:
        method, path, body = "POST", "/orders", traffic.make_order(rng)
    else:
        method, path, body = "GET", "/products", None
    data = json.dumps(body).encode() if body is not None else b""
    query = "" if body is not None else "currency=" + traffic._pick(rng, traffic.CURRENCIES)
    requests.append((method, path, query, data))
reps = max(1, reqs_n // len(requests))
main_tid = threading.get_native_id()


def others():
    switches = 0
    for tid in os.listdir("/proc/self/task"):
        if int(tid) == main_tid:
            continue
        try:
            with open(f"/proc/self/task/{tid}/status") as f:
                for line in f:
                    if "ctxt_switches" in line:
                        switches += int(line.split()[1])
        except OSError:
            pass
    return switches


def start_response(status, headers):
    return None


def block(app):
    s0, p0, t0 = others(), time.process_time_ns(), time.thread_time_ns()
    w0 = time.monotonic()
    for method, path, query, data in requests * reps:
        environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
                   "CONTENT_LENGTH": str(len(data)), "wsgi.input": io.BytesIO(data),
                   "HTTP_X_REQUEST_ID": "bench"}
        for _ in app(environ, start_response):
            pass
    t1, p1, s1 = time.thread_time_ns(), time.process_time_ns(), others()
    n = len(requests) * reps
    return (t1 - t0) / n, (p1 - p0) / n, (s1 - s0) / (time.monotonic() - w0)


engine = Engine(cpu_budget=budget)
for spec in standing(rate):
    status = engine.install(Probe.from_dict(spec), on_hit=None)
    assert status.state.value == "installed", status.reason


def evaluations():
    return sum(int(s.evaluations or 0) for s in engine.statuses())


for _ in range(2):
    block(shop.app.app)
    block(shopx.app.app)
a_main, a_proc, b_main, b_proc, sw, evals = [], [], [], [], [], []
for i in range(blocks):
    for which in ("A", "B") if i % 2 == 0 else ("B", "A"):
        if which == "A":
            m, p, _ = block(shopx.app.app)
            a_main.append(m)
            a_proc.append(p)
        else:
            e0, w0 = evaluations(), time.monotonic()
            m, p, s = block(shop.app.app)
            evals.append((evaluations() - e0) / (time.monotonic() - w0))
            b_main.append(m)
            b_proc.append(p)
            sw.append(s)
print(json.dumps({
    "main_ratio": statistics.median(b / a for a, b in zip(a_main, b_main)),
    "proc_ratio": statistics.median(b / a for a, b in zip(a_proc, b_proc)),
    "a_main_ns": statistics.median(a_main),
    "b_main_ns": statistics.median(b_main),
    "switches": statistics.median(sw),
    "evals": statistics.median(evals),
}))
engine.close()
"""


def unprobed_copy(into: Path) -> Path:
    """``examples/shop/shop`` copied as package ``shopx`` (its imports renamed) under ``into``."""
    source = ROOT / "examples" / "shop" / "shop"
    target = into / "shopx"
    target.mkdir()
    for path in source.glob("*.py"):
        text = path.read_text()
        text = text.replace("from shop.", "from shopx.").replace("import shop.", "import shopx.")
        (target / path.name).write_text(text)
    return into


def run(root: Path, copy_dir: Path, args: argparse.Namespace) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
    env.pop("PYTHONPATH", None)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(root),
            str(ROOT),
            str(copy_dir),
            str(args.cpu_budget),
            str(args.eval_rate),
            str(args.blocks),
            str(args.requests),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=1800,
    )
    if out.returncode != 0:
        raise SystemExit(f"{root}: the child failed:\n{out.stderr[-3000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--roots", nargs="+", default=[str(ROOT)], help="sensor checkouts")
    parser.add_argument("--rounds", type=int, default=3, help="processes per checkout")
    parser.add_argument("--blocks", type=int, default=6, help="A/B block pairs per process")
    parser.add_argument("--requests", type=int, default=60_000, help="requests per block")
    parser.add_argument("--eval-rate", type=float, default=1000.0, help="each probe's eval_rate")
    parser.add_argument("--cpu-budget", type=float, default=0.01, help="the engine's budget")
    parser.add_argument("--json", action="store_true", help="one JSON object per process")
    args = parser.parse_args(argv)
    roots = [Path(r).resolve() for r in args.roots]
    results: dict[Path, list[dict[str, float]]] = {root: [] for root in roots}
    with tempfile.TemporaryDirectory() as tmp:
        copy_dir = unprobed_copy(Path(tmp))
        for _ in range(args.rounds):
            for root in roots:
                got = run(root, copy_dir, args)
                results[root].append(got)
                if args.json:
                    print(json.dumps({"root": str(root), **got}), flush=True)
    print(
        f"Standing expectations in-process on Python {sys.version.split()[0]}: 20 probes, "
        f"eval_rate {args.eval_rate:g}, CPU budget {args.cpu_budget:g}, {args.rounds} processes"
        f" x {args.blocks} block pairs of {args.requests} requests"
    )
    heads = ("main B/A", "proc B/A", "A ns/req", "thr sw/s", "evals/s")
    print(f"{'root':<28} " + " ".join(f"{h:>9}" for h in heads))
    for root, rows in results.items():

        def med(key: str, rows: list[dict[str, float]] = rows) -> float:
            return statistics.median(r[key] for r in rows)

        spread = ", ".join(f"{r['proc_ratio']:.3f}" for r in rows)
        print(
            f"{str(root)[-28:]:<28} {med('main_ratio'):>8.3f}x {med('proc_ratio'):>8.3f}x "
            f"{med('a_main_ns'):>9.0f} {med('switches'):>9.0f} {med('evals'):>9.0f}"
            f"   (proc B/A per process: {spread})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
