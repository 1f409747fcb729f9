"""From evidence to tests: the lines probe's per-call cost, replay, and evidence strategies.

Run it with each Python (3.11, 3.12, 3.13)::

    python bench/bench_replay.py            # about a minute
    python bench/bench_replay.py --quick    # about 20 seconds
    python bench/bench_replay.py --json     # one JSON object per measurement
    python bench/bench_replay.py --quick --only lines --roots OLD .   # two sensors side by side

``--roots``: the lines measurements for each sensor checkout given (any directory holding a
``sensor`` package, e.g. ``git archive <commit> sensor | tar -x -C OLD``), the roots taking
turns figure by figure in the same run. ``--only lines`` skips replay and the strategies;
``--backends hybrid`` measures the lines figures on that backend only.

What it measures (see /docs/reference/benchmarks.md), each in a fresh process, in CPU time (the
thread's or the process's: the other load of a shared machine does not count in it):

* ``lines_between_samples`` / ``lines_sampled``: a ``lines`` probe on a small hot function
  (and, ``..._loop``, on one whose loop runs 10 iterations over 6 lines), per call,
  (probed - baseline) / calls in ns and as a multiple of one empty Python call of the same
  process; baseline and probed loops alternate, 5 pairs or more. Between samples (the
  probe's rate spent) the goal is the counter probe's: at most 1 empty call per call.
  Sampled (every call recorded) has no goal: it is what one hit costs. A ``counter`` probe
  on a line of the same function is measured beside it, as the reference.
* ``replay_1000``: 1,000 distinct production states of a small pure function (recorded by a
  real replay probe, written to an evidence file): reading the file, rebuilding the values,
  calling the function with the probe armed and comparing each outcome; CPU seconds of the
  process (the wall time beside it), median of the runs with min and max; goal < 2 s.
* ``strategy_draw_1000``: drawing 1,000 examples with ``@given`` from ``production_states``
  (exact states, and ``around=True``) against the hand-written strategy of the same variables,
  alternately; the median of the per-pair ratios, goal <= 2x.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

COUPONS = ("SAVE10", "HALF", "FLAT5", None)

# -- the workloads (module level, so that probes can name them) -----------------------------


def hot(x: int) -> int:
    y = x + 1
    if y > 10**9:
        y = 0  # a branch the loop never takes
    return y * 2  # HOT-LINE


def hot_loop(x: int) -> int:
    total = 0
    for i in range(10):
        if i & 1:
            total += i
        else:
            total -= x
        if total > 100:
            total = 0
    return total


def empty(x: int) -> None:
    pass


def price_after(price: Decimal, coupon: str | None, qty: int, day: datetime.date) -> Decimal:
    """A small pure function: a cart line's price after its coupon, on a day."""
    total = price * qty
    if coupon == "HALF":
        total = total / 2
    elif coupon == "SAVE10":
        total = total * Decimal("0.9")
    elif coupon == "FLAT5":
        total = max(Decimal(0), total - 5)
    if day.weekday() == 6:
        total -= Decimal("0.50")
    return total.quantize(Decimal("0.01"))


def _line(marker: str) -> int:
    for number, text in enumerate(Path(__file__).read_text().splitlines(), 1):
        if text.rstrip().endswith(f"# {marker}"):
            return number
    raise LookupError(marker)


def _timed(fn: Any, *args: Any) -> float:
    # CPU time of this thread: a shared machine's other load does not count in it.
    start = time.thread_time_ns()
    fn(*args)
    return float(time.thread_time_ns() - start)


def _bare(n: int) -> None:
    for _ in range(n):
        pass


def _loop10(fn: Any, n: int) -> None:
    # Ten calls per iteration: the loop's own cost (and its noise) is spread over ten calls.
    for i in range(n):
        fn(i)
        fn(i)
        fn(i)
        fn(i)
        fn(i)
        fn(i)
        fn(i)
        fn(i)
        fn(i)
        fn(i)


# -- children ---------------------------------------------------------------------------------


def child_lines(backend: str, mode: str, calls: int, pairs: int) -> dict[str, Any]:
    """Per-call ns of a lines probe on ``hot`` (mode: between, sampled) or of a counter.

    Modes ending in ``_loop`` probe ``hot_loop`` (10 iterations over 6 lines: 42 line events
    a call) instead: between samples a call must cost the same whatever lines it runs.
    """
    from sensor.engine import Engine
    from sensor.probes import Probe

    fn = hot_loop if mode.endswith("_loop") else hot
    mode = mode.removesuffix("_loop")

    engine = Engine(backend=backend, cpu_budget=1.0)
    if engine.backend_name != backend:
        raise SystemExit(f"backend {backend} unavailable: {engine.backend_reason}")
    hits: list[Any] = []
    if mode == "counter":
        probe = Probe(kind="counter", location=f"__main__:hot@{_line('HOT-LINE')}")  # type: ignore[arg-type]
    else:
        # between: one token, spent by the warm-up (a sample every 1000 s); sampled: every call.
        rate = 0.001 if mode == "between" else 1e9
        probe = Probe(
            kind="lines",  # type: ignore[arg-type]
            location=f"__main__:{fn.__name__}",  # type: ignore[arg-type]
            limits={"rate": rate, "burst": 1 if mode == "between" else 10**9},  # type: ignore[arg-type]
        )

    def arm() -> None:
        status = engine.install(probe, on_hit=hits.append)
        if status.state.value != "installed":
            raise SystemExit(f"probe not installed: {status.reason}")
        fn(0)  # between samples: this call takes the one token

    rounds = max(1, calls // 10)
    _loop10(fn, rounds // 10)  # warm-up
    empty_ns = (
        min(_timed(_loop10, empty, rounds) for _ in range(5))
        - min(_timed(_bare, rounds) for _ in range(5))
    ) / (rounds * 10)
    diffs = []
    sampled = []
    for _ in range(pairs):
        # Best of 3 on each side: the shared machine adds noise, never removes it.
        base = min(_timed(_loop10, fn, rounds) for _ in range(3))
        arm()
        before = len(hits)
        probed = min(_timed(_loop10, fn, rounds) for _ in range(3))
        sampled.append(len(hits) - before)
        engine.remove(probe.id)
        diffs.append((probed - base) / (rounds * 10))
    lines = sorted({n for h in hits if h.lines for n in h.lines.get("ran", ())})
    return {"per_call": diffs, "empty_call": empty_ns, "hits": sampled, "lines": lines}


def _record_states(n: int, evidence_path: Path) -> None:
    """n distinct calls of price_after under a real replay probe, written as evidence."""
    from pytest_runtime.evidence import Evidence, write
    from sensor.engine import Engine

    request = _request()
    probe = request.probe.with_changes(limits={"rate": 1e9, "burst": 10**9})
    engine = Engine(cpu_budget=1.0)
    hits: list[Any] = []
    if str(engine.install(probe, on_hit=hits.append).state) != "installed":
        raise SystemExit("the replay probe was not installed")
    day = datetime.date(2026, 1, 1)
    for i in range(n):
        price = Decimal(i % 97 * 3 + 1) + Decimal(i % 100) / 100
        price_after(price, COUPONS[i % 4], 1 + i % 7, day + datetime.timedelta(days=i % 365))
    engine.remove(probe.id)
    evidence = Evidence()
    evidence.add_probe(request.probe.to_dict())
    evidence.add_hits(hit.to_dict() for hit in hits)
    write(evidence_path, evidence)


def _request() -> Any:
    from pytest_runtime.markers import parse_probe_args

    return parse_probe_args(
        ("__main__:price_after",), {"replay": True, "expect": "result >= 0 or day is None"}
    )


def child_replay(n: int, runs: int) -> dict[str, Any]:
    """Seconds to read, rebuild and replay n production states (each run in this process)."""
    from pytest_runtime.evidence import read
    from pytest_runtime.replay import run_replay
    from sensor.engine import Engine

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "evidence.jsonl"
        _record_states(n, path)
        request = _request()
        engine = Engine(cpu_budget=1.0)
        seconds = []
        wall = []
        direct = []
        report: Any = None
        for _ in range(runs):
            # CPU time of this process: what replay costs, whatever else the machine runs.
            start, start_wall = time.process_time(), time.perf_counter()
            hits = read([path]).hits_for(request.signature)
            report = run_replay(request, hits, nodeid="bench", limit=n, engine=engine)
            seconds.append(time.process_time() - start)
            wall.append(time.perf_counter() - start_wall)
            # the same calls without the plugin: what replay adds on top of them
            start = time.perf_counter()
            day = datetime.date(2026, 1, 1)
            for i in range(n):
                price = Decimal(i % 97 * 3 + 1) + Decimal(i % 100) / 100
                price_after(
                    price, COUPONS[i % 4], 1 + i % 7, day + datetime.timedelta(days=i % 365)
                )
            direct.append(time.perf_counter() - start)
    assert report is not None
    if report.replayed != n or report.fails_now or report.changed or report.error:
        raise SystemExit(f"replay did not replay {n} states cleanly: {report}")
    return {"seconds": seconds, "wall": wall, "direct": direct, "replayed": report.replayed}


def child_strategy(n: int, pairs: int) -> dict[str, Any]:
    """Seconds per example drawn with @given: production_states vs a hand-written strategy."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    from pytest_runtime.strategies import production_states

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "evidence.jsonl"
        _record_states(1000, path)
        names = ["price", "coupon", "qty", "day"]
        exact = production_states("__main__:price_after", variables=names, evidence=path)
        around = production_states(
            "__main__:price_after", variables=names, evidence=path, around=True
        )
        load_start = time.perf_counter()
        exact.production.load()
        around.production.load()
        load = (time.perf_counter() - load_start) / 2
        # What a person writes for the same variables, by hand.
        hand = st.fixed_dictionaries(
            {
                "price": st.decimals(Decimal("1.00"), Decimal("300.00"), places=2),
                "coupon": st.sampled_from(COUPONS),
                "qty": st.integers(1, 7),
                "day": st.dates(datetime.date(2026, 1, 1), datetime.date(2026, 12, 31)),
            }
        )

        def draws(strategy: Any) -> tuple[float, int]:
            seen = [0]

            @settings(
                max_examples=n,
                phases=[Phase.generate],
                database=None,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(state=strategy)
            def test(state: dict[str, Any]) -> None:
                seen[0] += 1

            start = time.process_time()
            test()
            return time.process_time() - start, seen[0]

        draws(hand)  # warm-up (also the first draw of each loads nothing more: loaded above)
        draws(exact)
        draws(around)
        out: dict[str, list[float]] = {"exact": [], "around": [], "hand": [], "counts": []}
        for _ in range(pairs):
            for name, strategy in (("hand", hand), ("exact", exact), ("around", around)):
                took, count = draws(strategy)
                out[name].append(took / max(1, count))
                out["counts"].append(count)
    return {**out, "load": load}


# -- the parent --------------------------------------------------------------------------------


def _run_child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child {args} failed: {out.stderr.strip()[-800:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _backends() -> list[str]:
    found = []
    try:
        import bytecode  # noqa: F401

        found.append("bytecode")
    except ImportError:
        pass
    if sys.version_info >= (3, 12):
        found.append("monitoring")
        if found[0] == "bytecode":
            found.append("hybrid")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    parser.add_argument("--quick", action="store_true", help="shorter runs (about 20 s)")
    parser.add_argument("--pairs", type=int, default=5, help="paired runs per figure (>= 5)")
    parser.add_argument(
        "--roots", nargs="+", default=[str(ROOT)], help="sensor checkouts (lines figures)"
    )
    parser.add_argument(
        "--backends", nargs="+", help="the backends of the lines figures (default: all here)"
    )
    parser.add_argument(
        "--only", choices=("lines", "replay", "strategy"), help="run one group of figures"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        what, rest = args.child[0], args.child[1:]
        if what == "lines" and len(rest) > 4:
            sys.path.insert(0, rest[4])  # the sensor checkout to measure (--roots)
        if what == "lines":
            result = child_lines(rest[0], rest[1], int(rest[2]), int(rest[3]))
        elif what == "replay":
            result = child_replay(int(rest[0]), int(rest[1]))
        else:
            result = child_strategy(int(rest[0]), int(rest[1]))
        print(json.dumps(result))
        return

    from sensor.inject.core import default_backend_name

    python = sys.version.split()[0]
    pairs = max(5, args.pairs)
    calls = 200_000 if args.quick else 1_000_000
    default = default_backend_name()
    results: list[dict[str, Any]] = []

    def emit(record: dict[str, Any]) -> None:
        record["python"] = python
        results.append(record)
        if args.json:
            print(json.dumps(record), flush=True)

    roots = [str(Path(r).resolve()) for r in args.roots]
    backends = [b for b in _backends() if not args.backends or b in args.backends]
    for backend in backends if args.only in (None, "lines") else []:
        for mode in ("counter", "between", "between_loop", "sampled", "sampled_loop"):
            for root in roots:
                # A sampled call costs microseconds: fewer of them give the same precision.
                n = calls // 20 if mode.startswith("sampled") else calls
                data = _run_child(["lines", backend, mode, str(n), str(pairs), root])
                per_call = data["per_call"]
                median = statistics.median(per_call)
                ratio = median / data["empty_call"]
                record: dict[str, Any] = {
                    "measurement": {
                        "counter": "counter_on_a_line",
                        "between": "lines_between_samples",
                        "between_loop": "lines_between_samples_loop",
                        "sampled": "lines_sampled",
                        "sampled_loop": "lines_sampled_loop",
                    }[mode],
                    "mechanism": backend,
                    "default_backend": backend == default,
                    "value": round(median, 1),
                    "unit": "ns",
                    "min": round(min(per_call), 1),
                    "max": round(max(per_call), 1),
                    "pairs": pairs,
                    "empty_call_ns": round(data["empty_call"], 1),
                    "ratio_to_empty_call": round(ratio, 2),
                    "hits_per_run": data["hits"],
                }
                if len(roots) > 1:
                    record["root"] = root
                if not mode.startswith("sampled"):
                    record["goal"] = "<= 1 empty call per call"
                    record["ok"] = ratio <= 1.0
                else:
                    record["lines_seen"] = data["lines"]
                emit(record)

    runs = 5
    if args.only in (None, "replay"):
        replay = _run_child(["replay", "1000", str(runs)])
        seconds = replay["seconds"]
        emit(
            {
                "measurement": "replay_1000",
                "mechanism": "default",
                "value": round(statistics.median(seconds), 3),
                "unit": "s",
                "min": round(min(seconds), 3),
                "max": round(max(seconds), 3),
                "pairs": runs,
                "direct_calls_s": round(statistics.median(replay["direct"]), 4),
                "wall_s": round(statistics.median(replay["wall"]), 3),
                "replayed": replay["replayed"],
                "goal": "< 2 s (CPU) for 1,000 states, reading and decoding included",
                "ok": statistics.median(seconds) < 2.0,
            }
        )

    if args.only in (None, "strategy"):
        draws = 200 if args.quick else 1000
        strategy = _run_child(["strategy", str(draws), str(pairs)])
        for name in ("exact", "around"):
            ratios = [a / b for a, b in zip(strategy[name], strategy["hand"], strict=True)]
            median = statistics.median(ratios)
            emit(
                {
                    "measurement": f"strategy_draw_{draws}_{name}",
                    "mechanism": "hypothesis",
                    "value": round(median, 2),
                    "unit": "x",
                    "min": round(min(ratios), 2),
                    "max": round(max(ratios), 2),
                    "pairs": pairs,
                    "us_per_example": round(statistics.median(strategy[name]) * 1e6, 1),
                    "hand_us_per_example": round(statistics.median(strategy["hand"]) * 1e6, 1),
                    "examples": min(strategy["counts"]),
                    "load_s": round(strategy["load"], 3),
                    "goal": "<= 2x the hand-written strategy",
                    "ok": median <= 2.0,
                }
            )

    if not args.json:
        print(
            f"From evidence to tests on Python {python} ({pairs} pairs per figure; "
            f"* = the default backend here, {default})"
        )
        print(f"{'measurement':<32}{'mechanism':<12}{'median':>10}{'min..max':>20}  goal")
        for r in results:
            unit = r["unit"]
            value = f"{r['value']}{unit}"
            spread = f"{r['min']}..{r['max']}{unit}"
            extra = ""
            if "ratio_to_empty_call" in r:
                extra = f" ({r['ratio_to_empty_call']} empty calls of {r['empty_call_ns']} ns)"
            if "direct_calls_s" in r:
                extra = (
                    f" (wall {r['wall_s']} s; the same 1,000 calls without replay:"
                    f" {r['direct_calls_s']} s)"
                )
            if "us_per_example" in r:
                extra = (
                    f" ({r['us_per_example']} us vs {r['hand_us_per_example']} us per example,"
                    f" >= {r['examples']} examples per run; evidence loaded once in"
                    f" {r['load_s']} s)"
                )
            goal = f"{r['goal']}: {'ok' if r['ok'] else 'MISSED'}" if "goal" in r else ""
            mechanism = r["mechanism"] + ("*" if r.get("default_backend") else "")
            if "root" in r:
                extra += f"  [{r['root']}]"
            print(f"{r['measurement']:<32}{mechanism:<12}{value:>10}{spread:>20}  {goal}{extra}")


if __name__ == "__main__":
    main()
