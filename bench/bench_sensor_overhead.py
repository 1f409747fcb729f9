"""Sensor overhead: idle and hot-probe ratios, per-hit cost and capture cost, per backend.

Run it with each Python (3.11, 3.12, 3.13)::

    python bench/bench_sensor_overhead.py            # about a minute
    python bench/bench_sensor_overhead.py --quick    # about 20 seconds
    python bench/bench_sensor_overhead.py --json     # one JSON object per measurement

How it measures (see /docs/reference/benchmarks.md):

* ratios (idle, hot): the same CPU-bound workload in fresh processes, baseline (no sensor) and
  candidate alternately, 5 pairs or more; the median of the per-pair ratios with min and max.
* per hit: one fresh process per case; inside it, baseline loop and probed loop alternate (the
  probe is armed and removed between runs), 5 pairs; (probed - baseline) / calls in ns, and as a
  multiple of one empty Python call measured in the same process.
* alternatives in the same run: no instrumentation, and a ``sys.settrace`` tracer filtered to
  the target code (what pdb-style tools do).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GOALS: dict[str, tuple[str, Callable[[float], bool]]] = {
    "idle": ("idle ratio <= 1.01x", lambda v: v <= 1.01),
    "per_hit_counter": ("counter hit <= 1 empty call", lambda v: v <= 1.0),
    "per_hit_snapshot_1s": ("rate-limited snapshot hit <= 2 empty calls", lambda v: v <= 2.0),
    "capture_5_locals": ("snapshot of 5 locals < 20 us", lambda v: v < 20.0),
}

# -- the workloads (module level, so that probes can name them) ---------------------------------


class Item:
    def __init__(self, name: str, price: float, qty: int) -> None:
        self.name = name
        self.price = price
        self.qty = qty

    def total(self) -> float:
        return self.price * self.qty


def hot(items: list[Item]) -> float:
    acc = 0.0
    for item in items:
        acc += item.total()  # HOT-LINE
    return acc


def workload(rounds: int) -> float:
    result = 0.0
    for _ in range(rounds):
        items = [Item(f"item-{i}", i * 1.5, i % 7) for i in range(200)]
        index = {item.name: item for item in items}
        result += hot(items)
        names = sorted(index)[:10]
        text = "%s:%d" % (names[0], len(index)) + f"{result:.2f}"  # noqa: UP031 (a mix)
        result += len(text) + sum(len(n) for n in names)
    return result


def cold(x: int) -> int:
    return x * 3  # COLD-LINE


def target(x: int) -> int:
    y = x + 1  # TARGET-LINE
    return y  # noqa: RET504 (a line of its own)


SENTENCE = ("the quick brown fox jumps over the lazy dog " * 8)[:300]


def capture_target(x: int) -> int:
    # Five locals: an int, an 11-char and a 300-char string, a 10-item dict, a small object.
    name = "hello world"
    text = SENTENCE
    table = {f"k{i}": i for i in range(10)}
    item = Item("small", 1.5, 2)
    return x + len(name) + len(text) + len(table) + item.qty  # CAPTURE-LINE


def capture_worst(x: int) -> int:
    # The same with a 300-char run of word characters: the worst case for value redaction.
    name = "hello world"
    text = "x" * 300
    table = {f"k{i}": i for i in range(10)}
    item = Item("small", 1.5, 2)
    return x + len(name) + len(text) + len(table) + item.qty  # WORST-LINE


def empty(x: int) -> None:
    pass


def _line(marker: str) -> int:
    for number, text in enumerate(Path(__file__).read_text().splitlines(), 1):
        if text.rstrip().endswith(f"# {marker}") or f"# {marker} " in text:
            return number
    raise LookupError(marker)


# -- instrumentation per case ---------------------------------------------------------------------


class Settrace:
    """A sys.settrace tracer filtered to one code object and line (pdb-style)."""

    def __init__(self, code: Any, line: int, rate: float | None) -> None:
        self.code = code
        self.line = line
        self.count = 0
        self.rate = rate
        self.last = 0.0

    def _local(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line" and frame.f_lineno == self.line:
            if self.rate is None:
                self.count += 1
            else:
                now = time.monotonic()
                if now - self.last >= 1.0 / self.rate:
                    self.last = now
                    self.count += 1
        return self._local

    def _global(self, frame: Any, event: str, arg: Any) -> Any:
        return self._local if frame.f_code is self.code else None

    def arm(self) -> None:
        sys.settrace(self._global)

    def disarm(self) -> None:
        sys.settrace(None)


class SensorProbe:
    def __init__(self, backend: str, location: str, kind: str, rate: float | None) -> None:
        from sensor.engine import Engine
        from sensor.probes import Probe

        self.engine = Engine(backend=backend, cpu_budget=1.0)
        if self.engine.backend_name != backend:
            raise SystemExit(f"backend {backend} unavailable: {self.engine.backend_reason}")
        limits: dict[str, Any] = {} if rate is None else {"rate": rate}
        expect: str | None = None
        if kind.startswith("expect"):
            # An expectation that holds (the common case): evaluated, nothing captured.
            expect = "x >= 0"
            if kind == "expect_all":
                limits["eval_rate"] = 1e9  # every call evaluated: the cost of one evaluation
            kind = "expect"
        self.probe = Probe(kind=kind, location=location, limits=limits, expect=expect)  # type: ignore[arg-type]

    def arm(self) -> None:
        status = self.engine.install(self.probe, on_hit=lambda hit: None)
        if status.state.value != "installed":
            raise SystemExit(f"probe not installed: {status.reason}")

    def disarm(self) -> None:
        self.engine.remove(self.probe.id)


def _instrument(spec: str, location_marker: str, fn: Any, kind: str, rate: float | None) -> Any:
    line = _line(location_marker)
    if spec == "settrace":
        return Settrace(fn.__code__, line, rate)
    return SensorProbe(spec, f"__main__:{fn.__qualname__}@{line}", kind, rate)


# -- child processes ---------------------------------------------------------------------------


def _timed(fn: Any, *args: Any) -> float:
    start = time.perf_counter_ns()
    fn(*args)
    return float(time.perf_counter_ns() - start)


def child_ratio(case: str, rounds: int) -> dict[str, Any]:
    """One workload run: case is 'none', 'idle:<backend>' or 'hot:<backend>'."""
    workload(max(1, rounds // 20))  # warm-up
    inst = None
    if case != "none":
        what, spec = case.split(":")
        if what == "idle":
            inst = _instrument(spec, "COLD-LINE", cold, "counter", None)
        else:
            inst = _instrument(spec, "HOT-LINE", hot, "counter", None)
        inst.arm()
    took = _timed(workload, rounds)
    if inst is not None:
        inst.disarm()
    return {"ns": took}


def _loop(fn: Any, n: int) -> None:
    for i in range(n):
        fn(i)


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


def child_per_hit(
    spec: str, kind: str, rate: float | None, calls: int, pairs: int
) -> dict[str, Any]:
    """Per-hit ns of one probe (counter or rate-limited snapshot) on target's line."""
    fn, marker = {
        "capture": (capture_target, "CAPTURE-LINE"),
        "capture_unredacted": (capture_target, "CAPTURE-LINE"),
        "capture_worst": (capture_worst, "WORST-LINE"),
    }.get(kind, (target, "TARGET-LINE"))
    if kind == "capture_unredacted":
        # What the engine and encoder cost without the redactor (informational only: the
        # sensor always redacts). Shows which part of a capture is redaction.
        import sensor.engine

        sensor.engine._redactor = lambda: None
    if kind in ("counter_agent_idle", "counter_sensor_busy"):
        _sensor_thread(busy=kind == "counter_sensor_busy")
        kind = "counter"
    probe_kind = kind if kind in ("counter", "expect_all", "expect_default") else "snapshot"
    inst = _instrument(spec, marker, fn, probe_kind, rate)
    _loop(fn, calls // 10)  # warm-up
    # One empty call: best ten-call loop minus best bare loop, per call (noise only adds time).
    rounds = max(1, calls // 10)
    empty_ns = (
        min(_timed(_loop10, empty, rounds) for _ in range(5))
        - min(_timed(_bare, rounds) for _ in range(5))
    ) / (rounds * 10)
    diffs = []
    for _ in range(pairs):
        # Best of 3 on each side: the shared machine adds noise, never removes it.
        base = min(_timed(_loop10, fn, rounds) for _ in range(3))
        inst.arm()
        probed = min(_timed(_loop10, fn, rounds) for _ in range(3))
        inst.disarm()
        diffs.append((probed - base) / (rounds * 10))
    result: dict[str, Any] = {"per_hit": diffs, "empty_call": empty_ns}
    if kind.startswith("capture"):
        result.update(_encode_share(fn))
    return result


def _sensor_thread(*, busy: bool) -> None:
    """A sensor thread for the whole measurement: waiting as the agent does between turns and
    in a long poll (out of sensor work: the host's code stays fast), or stuck in sensor work
    (the checked mode, what the host pays while the agent sends a batch)."""
    import threading

    from sensor.threads import Event, SensorThread

    # threading.Event.wait is Python code: waiting on it stays in sensor work.
    event: Any = threading.Event() if busy else Event()
    SensorThread(lambda: event.wait(3600), name="bench-sensor-thread").start()
    deadline = time.monotonic() + 5
    from sensor.threads import BUSY

    while bool(BUSY) != busy and time.monotonic() < deadline:
        time.sleep(0.001)


def child_clocks() -> dict[str, Any]:
    """ns per read of the wall clock and of the thread's CPU clock (the budget's two modes)."""
    n = 200_000
    out: dict[str, Any] = {}
    for name in ("perf_counter_ns", "thread_time_ns"):
        clock = getattr(time, name)

        def reads(k: int, clock: Any = clock) -> None:
            for _ in range(k):
                clock()

        out[name] = (
            min(_timed(reads, n) for _ in range(5)) - min(_timed(_bare, n) for _ in range(5))
        ) / n
    return out


def _encode_share(fn: Any) -> dict[str, Any]:
    """How much of a capture is the encoder, and how much of that is value redaction."""
    from sensor.capture.encode import capture_frame
    from sensor.probes import CaptureLimits
    from sensor.redaction import get_redactor

    frames: list[dict[str, Any]] = []

    def grab(frame: Any, event: str, arg: Any) -> None:
        if event == "return" and frame.f_code is fn.__code__:
            frames.append(dict(frame.f_locals))

    sys.setprofile(grab)
    fn(1)
    sys.setprofile(None)
    values = frames[0]
    limits, redactor = CaptureLimits(), get_redactor()
    n = 500

    def encode_all(redact: Any) -> None:
        for _ in range(n):
            capture_frame(values, limits, redact)

    with_redaction = min(_timed(encode_all, redactor) for _ in range(3)) / n
    without = min(_timed(encode_all, None) for _ in range(3)) / n
    return {"encode_ns": with_redaction, "encode_no_redactor_ns": without}


# -- the parent ------------------------------------------------------------------------------------


def _run_child(args: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"child {args} failed: {out.stderr.strip()[-500:]}")
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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    parser.add_argument("--quick", action="store_true", help="shorter runs (about 20 s)")
    parser.add_argument("--pairs", type=int, default=5, help="paired runs per figure (>= 5)")
    parser.add_argument(
        "--only",
        help="comma-separated measurements to run (e.g. per_hit_expect_default,clocks)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        what = args.child[0]
        if what == "ratio":
            print(json.dumps(child_ratio(args.child[1], int(args.child[2]))))
        elif what == "clocks":
            print(json.dumps(child_clocks()))
        else:
            rate = None if args.child[3] == "none" else float(args.child[3])
            print(
                json.dumps(
                    child_per_hit(
                        args.child[1], args.child[2], rate, int(args.child[4]), int(args.child[5])
                    )
                )
            )
        return

    python = sys.version.split()[0]
    # About 0.7 s of workload per run (0.2 s with --quick) on this machine.
    rounds = 1_500 if args.quick else 5_000
    calls = 300_000 if args.quick else 600_000
    pairs = max(5, args.pairs)
    backends = _backends()
    results: list[dict[str, Any]] = []
    only = set(args.only.split(",")) if args.only else None

    def wanted(measurement: str) -> bool:
        return only is None or measurement in only

    from sensor.inject.core import default_backend_name

    default = default_backend_name()

    def emit(record: dict[str, Any]) -> None:
        record = {"python": python, **record}
        goal = GOALS.get(record["measurement"])
        if record["mechanism"] in backends:
            # The goals are for the default backend; the others are measured for comparison.
            record["default_backend"] = record["mechanism"] == default
        if goal is not None and record["mechanism"] in backends:
            record["goal"] = goal[0]
            value = record.get("ratio_to_empty_call", record["value"])
            record["ok"] = bool(goal[1](value))
        results.append(record)
        if args.json:
            print(json.dumps(record), flush=True)

    # Ratios: fresh process per run, baseline and candidate alternating.
    for what in [w for w in ("idle", "hot") if wanted(w)]:
        for mechanism in [*backends, "settrace"]:
            ratios = []
            for _ in range(pairs):
                base = _run_child(["ratio", "none", str(rounds)])["ns"]
                cand = _run_child(["ratio", f"{what}:{mechanism}", str(rounds)])["ns"]
                ratios.append(cand / base)
            emit(
                {
                    "measurement": what,
                    "mechanism": mechanism,
                    "value": round(statistics.median(ratios), 3),
                    "unit": "x",
                    "min": round(min(ratios), 3),
                    "max": round(max(ratios), 3),
                    "pairs": pairs,
                }
            )

    # Per hit: one fresh process per case, pairs inside it.
    cases = [
        ("per_hit_counter", "counter", None, calls),
        ("per_hit_counter_agent_idle", "counter_agent_idle", None, calls),
        ("per_hit_counter_sensor_busy", "counter_sensor_busy", None, calls),
        ("per_hit_snapshot_1s", "snapshot", 1.0, calls),
        ("per_hit_expect_default", "expect_default", None, calls),
        ("per_hit_expect_every_call", "expect_all", None, calls // 10),
        ("capture_5_locals", "capture", 1e9, 1_000 if args.quick else 2_000),
        ("capture_5_locals_worst_string", "capture_worst", 1e9, 500 if args.quick else 1_000),
        ("capture_5_locals_unredacted", "capture_unredacted", 1e9, 1_000 if args.quick else 2_000),
    ]
    for measurement, kind, rate, n in [case for case in cases if wanted(case[0])]:
        for mechanism in [*backends, "settrace"]:
            if kind.startswith(("capture", "expect", "counter_")) and mechanism == "settrace":
                continue
            data = _run_child(
                ["hit", mechanism, kind, "none" if rate is None else str(rate), str(n), str(pairs)]
            )
            per_hit = data["per_hit"]
            median = statistics.median(per_hit)
            record: dict[str, Any] = {
                "measurement": measurement,
                "mechanism": mechanism,
                "empty_call_ns": round(data["empty_call"], 1),
                "pairs": pairs,
                "calls": n,
            }
            if kind.startswith("capture"):
                record["encode_us"] = round(data["encode_ns"] / 1000, 2)
                record["encode_without_redactor_us"] = round(
                    data["encode_no_redactor_ns"] / 1000, 2
                )
                record.update(
                    value=round(median / 1000, 2),
                    unit="us",
                    min=round(min(per_hit) / 1000, 2),
                    max=round(max(per_hit) / 1000, 2),
                )
            else:
                record.update(
                    value=round(median, 1),
                    unit="ns",
                    min=round(min(per_hit), 1),
                    max=round(max(per_hit), 1),
                    ratio_to_empty_call=round(median / data["empty_call"], 2),
                )
            emit(record)

    # The clocks the CPU budget reads around a firing (informational).
    clocks = _run_child(["clocks"]) if wanted("clocks") else {}
    for name, ns in clocks.items():
        emit(
            {
                "measurement": f"clock_{name}",
                "mechanism": "time",
                "value": round(ns, 1),
                "unit": "ns",
                "min": round(ns, 1),
                "max": round(ns, 1),
                "pairs": 1,
            }
        )

    if not args.json:
        print(
            f"Sensor overhead on Python {python} ({pairs} pairs per figure; "
            f"* = the default backend here, {default}, which the goals are for)"
        )
        print(f"{'measurement':<30}{'mechanism':<12}{'median':>12}{'min..max':>22}  goal")
        for r in results:
            unit = r["unit"]
            value = f"{r['value']}{unit}"
            spread = f"{r['min']}..{r['max']}{unit}"
            extra = ""
            if "ratio_to_empty_call" in r:
                extra = f" ({r['ratio_to_empty_call']} empty calls of {r['empty_call_ns']} ns)"
            if "encode_us" in r and r["measurement"].endswith("unredacted"):
                bare = r["encode_without_redactor_us"]
                extra = f" (capture_frame without the redactor {bare} us)"
            elif "encode_us" in r:
                extra = (
                    f" (of which capture_frame {r['encode_us']} us,"
                    f" {r['encode_without_redactor_us']} us without the redactor)"
                )
            goal = ""
            if "goal" in r:
                goal = f"{r['goal']}: {'ok' if r['ok'] else 'MISSED'}"
            mechanism = r["mechanism"] + ("*" if r.get("default_backend") else "")
            print(f"{r['measurement']:<30}{mechanism:<12}{value:>12}{spread:>22}  {goal}{extra}")


if __name__ == "__main__":
    main()
