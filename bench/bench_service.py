"""What the sensor costs a real service: the demo shop under gunicorn, with and without it.

Three copies of ``examples/shop`` run side by side under gunicorn (1 sync worker each):

* ``plain``: no sensor;
* ``plain2`` (only with ``--configs``): a second copy of ``plain``, a null control: its ratio
  to ``plain`` is what two identical shops differ by in the same rounds (each configuration
  is one process for the whole run, so a bias of one process, its memory layout or the
  core it ran on, is not averaged out by the rounds);
* ``idle``: started with ``python -m sensor run`` and registered with a real hub, no probe armed;
* ``armed``: the same with the demo's production probes placed through the hub on the hot business
  functions: two ``expect`` probes (evaluated on every call within their evaluation rate), a 1/s
  snapshot and a counter;
* ``standing``: the same with 20 standing expectations (:data:`STANDING`, kind ``expect``) on
  the six business functions, five of them called once or more per request (issue 13: goal
  >= 0.97x of ``plain``). ``--standing-eval-rate`` (default 1000) is each probe's evaluation
  rate: every call is evaluated up to 1,000 calls a second, the design point of an always-on
  expectation; ``--standing-eval-rate 1e9`` evaluates every call whatever the traffic;
* with ``--compare-root DIR``: ``standing@DIR``, the same 20 probes on a shop whose sensor is
  imported from ``DIR`` (a checkout of another commit: ``git archive main sensor | tar -x -C
  DIR``), side by side in the same rounds.

With ``--processes N`` each configuration runs as N shops (N gunicorn masters, one service name
for the hub), and round n is served by shop n mod N: a bias of one process then averages out
over the rounds, as the machine's load does. Two identical processes have differed by 3% over
21 rounds (docs/reference/benchmarks.md), the size of the standing goal's margin.

Rounds interleave the configurations, in turning order (rotated by one every ``--processes`` rounds,
so that no configuration, nor any of its shops, always holds the same place); each round sends the
same seeded request mix (``examples/shop/traffic.py``'s orders: quotes, orders, product lists) from
2 client threads. Per round: requests/s and the p50 and p99 latency; reported as the median over
rounds of the per-round ratio to ``plain`` (min..max), as BENCHMARKS.md asks; the CPU time the
shop's process tree spent per request (its ratio to ``plain``'s, the same way), and of it, in ``thr
us/req``, what the threads other than each process's main one used (the sensor's agent and waker
threads: off the request path and not metered by the CPU budget) and, in ``thr wk/s``, how often
they woke a second (each wake-up, not the work after it, is most of their cost); and, for the
standing probes, the share of that process tree's CPU time (its CPU seconds per second of a round)
that the sensor's CPU budget, 1% of one CPU, is: the evaluations use the whole budget whenever the
traffic exceeds what it pays for, as here, so that share is a cost the goal has to leave room for
whatever the gates cost. The client runs on the same 2-core machine, so the absolute requests/s are
the machine's, the ratios are the sensor's.

    python bench/bench_service.py [--json] [--rounds 7] [--requests 6000]
    python bench/bench_service.py --configs plain,standing --compare-root /tmp/main-sensor
    python bench/bench_service.py --configs plain,plain2,idle,standing --rounds 21 --processes 3
    python bench/bench_service.py --configs plain,plain2,standing --rounds 21 --processes 3 --pin

``--pin`` runs every shop on the last CPU and the client and the hub on the others, so that a
shop is never moved between cores or set beside the client: with it, the CPU a shop gets is a
core's, and its throughput and CPU per request say the same thing.
"""

from __future__ import annotations

import argparse
import functools
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchlib import CLIENT, SENSOR, start_hub  # noqa: E402

from examples.shop import traffic  # noqa: E402
from sensor.client import HubClient  # noqa: E402
from sensor.config import DEFAULT_CPU_BUDGET  # noqa: E402

GOALS = {
    "plain2": "null control: a second plain shop, what two identical processes differ by",
    "idle": "no probe armed: within noise of plain (production safety: idle costs nothing)",
    "armed": "informational: four demo probes armed",
    "standing": "20 standing expectations: >= 0.97x",
}
STANDING_GOAL = 0.97
#: 20 standing expectations on the shop's business functions, the kind a suite's markers publish.
STANDING: list[dict[str, Any]] = [
    {"kind": "expect", "location": f"shop.pricing:{function}@return", "expect": expect}
    for function, expect in (
        ("convert", "result >= 0"),
        ("convert", "currency in ('USD', 'EUR', 'GBP', 'JPY')"),
        ("convert", "isinstance(currency, str) and len(currency) == 3"),
        ("subtotal", "result >= 0"),
        ("subtotal", "len(items) > 0"),
        ("subtotal", "isinstance(currency, str) and len(currency) < 64"),
        ("apply_discount", "0 <= result <= price"),
        ("apply_discount", "result <= price"),
        ("apply_discount", "coupon is None or isinstance(coupon, str)"),
        ("shipping_cost", "result >= 0"),
        ("shipping_cost", "weight_grams >= 0"),
        ("shipping_cost", "result < 1000"),
        (
            "quote",
            "result['total'] == result['subtotal'] - result['discount'] + result['shipping']",
        ),
        ("quote", "result['shipping'] >= 0"),
        ("quote", "result['currency'] == currency"),
        ("quote", "len(items) > 0 and weight >= 0"),
    )
] + [
    {"kind": "expect", "location": "shop.orders:place_order@return", "expect": expect}
    for expect in (
        "result['status'] == 'accepted'",
        "isinstance(result, dict) and len(result) == 6",
        "items_count > 0",
        "result['currency'] == priced['currency']",
    )
]


def standing(eval_rate: float) -> list[dict[str, Any]]:
    """The 20 probes with an evaluation rate (1e9: every call evaluated, nothing sampled)."""
    return [probe | {"limits": {"eval_rate": eval_rate}} for probe in STANDING]


PROBES: list[dict[str, Any]] = [
    {
        "kind": "snapshot",
        "location": "shop.pricing:apply_discount@return",
        "capture": ["price", "coupon", "currency"],
        "expect": "0 <= result <= price",
    },
    {
        "kind": "snapshot",
        "location": "shop.pricing:shipping_cost@return",
        "capture": ["address", "weight_grams"],
        "expect": "result >= 0",
    },
    {
        "kind": "snapshot",
        "location": "shop.orders:place_order@return",
        "capture": ["order_id", "created_at", "status", "items_count"],
    },
    {"kind": "counter", "location": "shop.pricing:quote@entry"},
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                response.read()
                return True
        except OSError:
            time.sleep(0.1)
    return False


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SENSOR_", "PYTEST_RUNTIME_"))}


def start_shop(
    workdir: Path,
    name: str,
    hub: str | None,
    sensor_root: Path | None = None,
    service: str | None = None,
    cpus: set[int] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    gunicorn = [
        sys.executable, "-m", "gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{port}",
        "--chdir", str(ROOT / "examples" / "shop"),
        "--control-socket", str(workdir / f"{name}.ctl"), "shop.app:app",
    ]  # fmt: skip
    env = clean_env() | {"PYTHONWARNINGS": "ignore::DeprecationWarning"}
    argv = gunicorn
    if hub is not None:
        argv = [sys.executable, "-m", "sensor", "run", "--", *gunicorn]
        env |= {
            "SENSOR_HUB_URL": hub,
            "SENSOR_TOKEN": SENSOR,
            "SENSOR_SERVICE": service or f"bench-{name}",
            "SENSOR_POLL_WAIT": "2",
        }
        # The sensor package of this checkout, or of another one (--compare-root), ahead of
        # whatever sensor the interpreter has installed (an editable install of another
        # worktree would otherwise serve every configuration but the compared one).
        env["PYTHONPATH"] = str(sensor_root if sensor_root is not None else ROOT)
    log = open(workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
    # --pin: the shop (its master, its worker, their threads) on its own core(s), set before
    # exec so that every process and thread of the tree inherits it.
    pin = None if cpus is None else functools.partial(os.sched_setaffinity, 0, cpus)
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin)
    url = f"http://127.0.0.1:{port}"
    if not wait_http(f"{url}/products", 30):
        proc.kill()
        raise SystemExit(f"bench_service: the {name} shop did not start; see {workdir}/{name}.log")
    return proc, url


def arm(
    client: HubClient, service: str, probes: list[dict[str, Any]] = PROBES, workers: int = 1
) -> list[str]:
    """Place the probes on a service and wait until its ``workers`` have them installed."""
    ids = [
        client.place_probe(probe, selector={"service": service}, ttl=3600)["id"] for probe in probes
    ]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        installed = 0
        for probe_id in ids:
            statuses = client.probe(probe_id).get("statuses") or {}
            if sum(s.get("state") == "installed" for s in statuses.values()) >= workers:
                installed += 1
        if installed == len(ids):
            return ids
        time.sleep(0.2)
    raise SystemExit("bench_service: the probes were not installed within 60 s")


def _client(url: str, requests: int, seed: int, latencies: list[float], errors: list[str]) -> None:
    # The traffic generator's request mix (quotes, orders, product lists), one keep-alive
    # connection per thread as a load balancer would hold.
    rng = random.Random(seed)
    target = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=10)
    try:
        for _ in range(requests):
            roll = rng.random()
            if roll < 0.6:
                method, path, body = "POST", "/quote", traffic.make_order(rng)
            elif roll < 0.9:
                method, path, body = "POST", "/orders", traffic.make_order(rng)
            else:
                method, path, body = "GET", "/products?currency=EUR", None
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data else {}
            started = time.perf_counter()
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            response.read()
            latencies.append(time.perf_counter() - started)
            if response.status >= 500:
                errors.append(f"{method} {path}: {response.status}")
            if response.getheader("Connection", "").lower() == "close":
                conn.close()  # gunicorn's sync worker closes after each response
    except (OSError, http.client.HTTPException) as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()


def _tree_cpu(pid: int) -> tuple[float, float, int]:
    """CPU seconds used so far by ``pid`` and its descendants (Linux /proc): (all, other threads,
    the other threads' wake-ups).

    A shared machine's load preempts the service and moves its throughput by 10% or more from
    round to round; the CPU time it spends per request moves much less, since time spent
    waiting for a core is not counted. Read per thread from ``schedstat`` (nanoseconds; the
    ``stat`` ticks are 10 ms, too coarse for a round): *other threads* are every thread but
    each process's main one, that is the sensor's (agent, waker) in the gunicorn master and
    worker, whose work is not on the request path and not metered by the CPU budget. Exited
    processes are not counted (none exit here). Their wake-ups are the context switches
    (``voluntary_ctxt_switches`` and ``nonvoluntary_ctxt_switches`` of ``status``): each costs
    the process tens of microseconds of CPU on these machines whatever the thread then does (a
    timer or a socket, and a GIL hand-over from the request thread), so how often the sensor's
    threads wake is most of what they cost.
    """
    total = others = 0.0
    wakeups = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for task in Path(f"/proc/{p}").joinpath("task").iterdir():
                try:
                    ns = int((task / "schedstat").read_text().split()[0])
                    children = (task / "children").read_text().split()
                except (OSError, IndexError, ValueError):
                    continue
                total += ns / 1e9
                if task.name != str(p):
                    others += ns / 1e9
                    wakeups += _switches(task)
                todo.extend(int(c) for c in children)
        except OSError:
            continue
    return total, others, wakeups


def _switches(task: Path) -> int:
    try:
        lines = (task / "status").read_text().splitlines()
    except OSError:
        return 0
    names = ("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")
    return sum(int(line.split()[1]) for line in lines if line.startswith(names))


def one_round(url: str, requests: int, seed: int, pid: int | None = None) -> dict[str, float]:
    latencies: list[float] = []
    errors: list[str] = []
    threads = [
        threading.Thread(
            target=_client, args=(url, requests // 2, seed * 10 + i, latencies, errors)
        )
        for i in range(2)
    ]
    cpu0, other0, wake0 = _tree_cpu(pid) if pid is not None else (0.0, 0.0, 0)
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - started
    cpu1, other1, wake1 = _tree_cpu(pid) if pid is not None else (0.0, 0.0, 0)
    cpu, other = cpu1 - cpu0, other1 - other0
    if errors:
        raise SystemExit(f"bench_service: errors against {url}: {errors[:3]}")
    lat = sorted(latencies)
    return {
        "rps": len(lat) / took,
        "cpu_ms_per_request": cpu * 1e3 / len(lat),
        "thread_us_per_request": other * 1e6 / len(lat),
        # How often those threads woke (context switches a second): most of what they cost.
        "thread_wakeups_per_second": (wake1 - wake0) / took,
        # CPU seconds the process tree used per second of the round: what the sensor's CPU
        # budget (a share of one CPU) is a share of.
        "cpu_per_second": cpu / took,
        "p50_ms": lat[len(lat) // 2] * 1e3,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (>= 5)")
    parser.add_argument("--requests", type=int, default=6000, help="requests per round")
    parser.add_argument(
        "--configs",
        default="plain,idle,armed,standing",
        help="comma-separated configurations: plain (always run: the baseline), plain2 (a second "
        "plain shop, the null control), idle, armed, standing",
    )
    parser.add_argument(
        "--compare-root",
        type=Path,
        help="also run the standing probes on a shop with the sensor package of this directory",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="shops per configuration, taking the rounds in turn (a process's own bias, its "
        "memory layout or its core, then averages out over the rounds)",
    )
    parser.add_argument(
        "--standing-eval-rate",
        type=float,
        default=1000.0,
        help="evaluations per second of each standing probe (1e9: every call)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run the shops on the last CPU and the client and hub on the others (Linux): the "
        "scheduler then neither moves a shop between cores nor sets it beside the client, two "
        "sources of the null control's drift",
    )
    args = parser.parse_args(argv)
    shop_cpus: set[int] | None = None
    if args.pin:
        allowed = sorted(os.sched_getaffinity(0))
        if len(allowed) < 2:
            raise SystemExit(f"--pin: needs two CPUs or more, this process may use {allowed}")
        shop_cpus = {allowed[-1]}
        os.sched_setaffinity(0, set(allowed[:-1]))  # the client's threads and the hub inherit it
    configs = ["plain"] + [c for c in args.configs.split(",") if c and c != "plain"]
    if args.processes < 1:
        raise SystemExit("--processes: at least 1")
    for name in configs:
        if name not in ("plain", "plain2", "idle", "armed", "standing"):
            raise SystemExit(f"--configs: unknown configuration {name!r}")
    if args.compare_root is not None and not (args.compare_root / "sensor").is_dir():
        raise SystemExit(f"--compare-root: {args.compare_root} holds no sensor package")
    workdir = Path(tempfile.mkdtemp(prefix="bench-service-"))
    procs: list[subprocess.Popen[Any]] = []
    try:
        hub_proc, hub = start_hub(workdir / "hub.db")
        procs.append(hub_proc)
        # Each configuration's shops (``--processes``): round n is served by shop n mod that.
        shops: dict[str, list[str]] = {}
        pids: dict[str, list[int]] = {}
        roots: dict[str, Path | None] = dict.fromkeys(configs)
        if args.compare_root is not None:
            roots[f"standing@{args.compare_root.name}"] = args.compare_root.resolve()
        for name, root in roots.items():
            plain = name in ("plain", "plain2")
            for i in range(args.processes):
                label = name if args.processes == 1 else f"{name}.{i}"
                proc, url = start_shop(
                    workdir, label, None if plain else hub, root, f"bench-{name}", shop_cpus
                )
                procs.append(proc)
                shops.setdefault(name, []).append(url)
                pids.setdefault(name, []).append(proc.pid)
        client = HubClient(hub, CLIENT)
        for name in shops:
            if name == "armed":
                arm(client, "bench-armed", workers=args.processes)
            elif name.startswith("standing"):
                arm(client, f"bench-{name}", standing(args.standing_eval_rate), args.processes)
        for urls in shops.values():  # warm-up: imports, caches, first captures
            for url in urls:
                one_round(url, max(100, args.requests // 10), seed=1)
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in shops}
        names = list(shops)
        for n in range(max(5, args.rounds)):
            # Rounds in turning order (rotated by one every --processes rounds, so that each
            # shop of a configuration takes every place): a configuration always served first,
            # or always right after another, would carry whatever that place costs or gains
            # (the hub still storing the last round's hits, a core's state) into its ratio.
            k = (n // args.processes) % len(names)
            for name in names[k:] + names[:k]:
                urls = shops[name]
                i = n % len(urls)
                rounds[name].append(one_round(urls[i], args.requests, 100 + n, pids[name][i]))
        report(rounds, args.json)
        for name in shops:
            if name.startswith("standing"):
                evaluated(client, f"bench-{name}", args.json)
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


def evaluated(client: HubClient, service: str, as_json: bool) -> None:
    """What the standing probes did, as the sensor last reported it: evaluations, violations and
    skipped firings summed over the 20, and their states per source (the gunicorn master, where
    the shop is never imported, is ``pending``)."""
    total = violations = skipped = closed = errors = 0
    states: dict[str, int] = {}
    for probe in client.probes():
        if (probe.get("selector") or {}).get("service") != service:
            continue
        for status in (probe.get("statuses") or {}).values():  # one per source (master, worker)
            total += int(status.get("evaluations") or 0)
            violations += int(status.get("violations") or 0)
            skipped += int(status.get("skipped_rate") or 0) + int(status.get("skipped_budget") or 0)
            closed += int(status.get("skipped_closed") or 0)  # of skipped: no call at all
            errors += int(status.get("expect_errors") or 0)
            state = str(status.get("state"))
            if state not in ("installed", "pending"):
                state = f"{state}: {status.get('reason')}"
            states[state] = states.get(state, 0) + 1
    record = {"service": service, "states": states, "evaluations": total,
              "violations": violations, "expect_errors": errors, "skipped": skipped,
              "skipped_closed": closed}  # fmt: skip
    print(json.dumps(record) if as_json else f"{service}: {record}")


def report(rounds: dict[str, list[dict[str, float]]], as_json: bool) -> None:
    base = rounds["plain"]
    python = ".".join(map(str, sys.version_info[:3]))
    if not as_json:
        print(f"Service overhead on Python {python} ({len(base)} interleaved rounds)")
        print(
            f"{'config':8} {'req/s':>8} {'ratio':>8} {'min..max':>15} {'p50 ms':>8} {'p99 ms':>8}"
            f" {'CPU ms/req':>10} {'thr us/req':>10} {'thr wk/s':>8} {'CPU ratio':>9}"
            f" {'min..max':>15}"
        )
    for name, runs in rounds.items():
        ratios = [run["rps"] / b["rps"] for run, b in zip(runs, base, strict=True)]
        # The throughput the CPU time per request allows, against plain's in the same round.
        cpu_ratios = [
            b["cpu_ms_per_request"] / run["cpu_ms_per_request"]
            for run, b in zip(runs, base, strict=True)
            if run["cpu_ms_per_request"] > 0
        ] or [0.0]
        record = {
            "benchmark": "service",
            "python": python,
            "config": name,
            "rps": round(statistics.median(r["rps"] for r in runs), 1),
            "throughput_ratio": round(statistics.median(ratios), 3),
            "ratio_min": round(min(ratios), 3),
            "ratio_max": round(max(ratios), 3),
            "p50_ms": round(statistics.median(r["p50_ms"] for r in runs), 2),
            "p99_ms": round(statistics.median(r["p99_ms"] for r in runs), 2),
            "cpu_ms_per_request": round(
                statistics.median(r["cpu_ms_per_request"] for r in runs), 4
            ),
            # Of that CPU time, what the processes' other threads used (the sensor's agent and
            # waker threads; none in plain): off the request path and off the CPU budget.
            "thread_us_per_request": round(
                statistics.median(r["thread_us_per_request"] for r in runs), 2
            ),
            "thread_wakeups_per_second": round(
                statistics.median(r["thread_wakeups_per_second"] for r in runs), 1
            ),
            "cpu_per_second": round(statistics.median(r["cpu_per_second"] for r in runs), 3),
            "cpu_ratio": round(statistics.median(cpu_ratios), 3),
            "cpu_ratio_min": round(min(cpu_ratios), 3),
            "cpu_ratio_max": round(max(cpu_ratios), 3),
            "goal": GOALS.get(name.split("@")[0], "baseline"),
        }
        if name.startswith("standing"):
            # The evaluations alone may use the whole CPU budget (1% of one CPU) whenever the
            # traffic exceeds what it pays for (here it does): as a share of the CPU this shop
            # used, that is a cost the goal must leave room for, whatever the gates cost.
            cpu_s = float(record["cpu_per_second"])  # type: ignore[arg-type]
            record["budget_share"] = round(DEFAULT_CPU_BUDGET / cpu_s, 4) if cpu_s > 0 else None
            met = record["throughput_ratio"] >= STANDING_GOAL  # type: ignore[operator]
            met_cpu = record["cpu_ratio"] >= STANDING_GOAL  # type: ignore[operator]
            share = record["budget_share"]
            record["goal"] = (
                f"{record['goal']}: throughput {'ok' if met else 'MISSED'}, "
                f"CPU per request {'ok' if met_cpu else 'MISSED'}"
                + ("" if share is None else f"; the CPU budget is {share:.1%} of its CPU")
            )
        if as_json:
            print(json.dumps(record))
        else:
            print(
                f"{name:8} {record['rps']:8.0f} {record['throughput_ratio']:7.3f}x "
                f"{record['ratio_min']:6.3f}..{record['ratio_max']:.3f}x "
                f"{record['p50_ms']:8.2f} {record['p99_ms']:8.2f} "
                f"{record['cpu_ms_per_request']:10.3f} {record['thread_us_per_request']:10.2f} "
                f"{record['thread_wakeups_per_second']:8.1f} "
                f"{record['cpu_ratio']:8.3f}x "
                f"{record['cpu_ratio_min']:6.3f}..{record['cpu_ratio_max']:.3f}x   {record['goal']}"
            )


if __name__ == "__main__":
    raise SystemExit(main())
