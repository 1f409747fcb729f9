"""A standing probe at 1,000 calls/s for 24 simulated hours: the hub's sample and disk stay bounded.

Time is compressed: the calls are simulated, and the sensor's admission of each call as a
captured hit is modelled with its token buckets at the standing budgets (1 passing hit/s and
5 violation hits/s per source, ``pytest_runtime.publish``), in simulated time. The hits
admitted go, in 10 s batches, into the hub's real SQLite store (a file, ``synchronous=FULL``
as the hub opens it), which counts them per stratum and keeps its bounded stratified sample.
A new service version is deployed at hour 12.

States of the 86.4 million calls: positive prices (most), zero prices (1 in 100), negative
prices that violate the expectation (3 in 10^6), and ``None`` prices that pass it (3 in 10^6).
The second run sends 10^6 calls with every call captured (a probe whose rate is above the
call rate) and a state seen on exactly 3 of them.

Figures: hits seen and kept per version, strata, whether each rare state is in the sample,
and the database's size on disk against the documented bound
(docs/how-to/standing-probes.md). Usage::

    python bench/bench_standing_reservoir.py [--hours 24] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sensor.hub import strata
from sensor.hub.store import ProbeRecord, SourceRecord
from sensor.hub.store.sqlite import SQLiteStore

CALLS_PER_S = 1000
PASS_RATE, VIOLATION_RATE = 1.0, 5.0
#: the documented bound: versions x sample x the largest hit the standing capture limit allows
BOUND_BYTES = strata.MAX_VERSIONS * strata.RESERVOIR_CAP * (8 * 1024 + 1024) + 4 * 1024 * 1024


def source(version: str) -> SourceRecord:
    return SourceRecord(
        id=f"src-{version}", service="shop", version=version, host="h", pid=1, python="3.12",
        labels={}, runtime_id=None, sensor_version="0", backend="monitoring", token_id=None,
        first_seen=0.0, last_seen=0.0,
    )  # fmt: skip


def hit(n: int, ts: float, price: Any, ok: bool) -> dict[str, Any]:
    return {
        "probe_id": "standing-bench",
        "signature": "sig",
        "kind": "expect",
        "location": "shop.pricing:apply_discount@return",
        "ts": ts,
        "hit_id": f"h{n}",
        "captures": {"price": price, "rate": 0.1},
        "expect": {"ok": ok, "error": None},
    }


def disk(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def day(tmp: Path, hours: float, seed: int) -> dict[str, Any]:
    """``hours`` simulated at CALLS_PER_S, the sensor's buckets modelled per second."""
    db = tmp / "day.db"
    store = SQLiteStore(db)
    store.add_probe(
        ProbeRecord("standing-bench", "sig", {"id": "standing-bench"}, {"service": "shop"},
                    "active", 0.0, None, standing=True)
    )  # fmt: skip
    rng = random.Random(seed)
    seconds = int(hours * 3600)
    rare_violations = rare_passing = 0
    captured_violations = captured_passing_rare = 0
    batch: list[dict[str, Any]] = []
    n = 0
    started = time.perf_counter()
    version = "1.0"
    for second in range(seconds):
        if second == seconds // 2:
            if batch:
                store.add_hits(source(version), batch, {}, float(second))
                batch = []
            version = "1.1"  # a deploy at half time
        # the calls of this second that are not the common state, drawn per call class
        violations = _binomial(rng, CALLS_PER_S, 3e-6)
        nones = _binomial(rng, CALLS_PER_S, 3e-6)
        zeros = _binomial(rng, CALLS_PER_S, 1e-2)
        rare_violations += violations
        rare_passing += nones
        # violation bucket: up to VIOLATION_RATE violating hits a second
        for _ in range(min(violations, int(VIOLATION_RATE))):
            n += 1
            captured_violations += 1
            batch.append(hit(n, float(second), -rng.randint(1, 100), False))
        # passing bucket: PASS_RATE hits a second, taken uniformly among the passing calls
        passing = CALLS_PER_S - violations
        for _ in range(int(PASS_RATE)):
            pick = rng.randrange(passing)
            n += 1
            if pick < nones:
                captured_passing_rare += 1
                batch.append(hit(n, float(second), None, True))
            elif pick < nones + zeros:
                batch.append(hit(n, float(second), 0, True))
            else:
                batch.append(hit(n, float(second), rng.randint(1, 500), True))
        if second % 10 == 9:
            store.add_hits(source(version), batch, {}, float(second))
            batch = []
    if batch:
        store.add_hits(source(version), batch, {}, float(seconds))
    elapsed = time.perf_counter() - started
    summaries = store.standing_summary("standing-bench")
    bodies = [row.body for row in store.read_hits(probe_id="standing-bench", limit=100_000)]
    store.close()
    kept_violations = sum(1 for body in bodies if '"ok":false' in body)
    kept_nones = sum(1 for body in bodies if '"price":null' in body)
    return {
        "name": "standing_day",
        "hours": hours,
        "calls": seconds * CALLS_PER_S,
        "hits_sent": n,
        "versions": [s.to_dict() for s in summaries],
        "kept_total": len(bodies),
        "kept_bound": strata.MAX_VERSIONS * strata.RESERVOIR_CAP,
        "rare_violation_calls": rare_violations,
        "rare_violation_captured": captured_violations,
        "rare_violation_kept": kept_violations,
        "rare_passing_calls": rare_passing,
        "rare_passing_captured": captured_passing_rare,
        "rare_passing_kept": kept_nones,
        "disk_bytes": disk(db),
        "disk_bound_bytes": BOUND_BYTES,
        "seconds": round(elapsed, 1),
    }


def million(tmp: Path) -> dict[str, Any]:
    """10^6 calls, every one captured (the hub's worst case), a state on exactly 3 of them."""
    db = tmp / "million.db"
    store = SQLiteStore(db)
    store.add_probe(
        ProbeRecord("standing-bench", "sig", {"id": "standing-bench"}, {"service": "shop"},
                    "active", 0.0, None, standing=True)
    )  # fmt: skip
    calls = 1_000_000
    rare_at = {123_457, 500_001, 987_653}
    batch: list[dict[str, Any]] = []
    started = time.perf_counter()
    src = source("1.0")
    for n in range(calls):
        price = None if n in rare_at else (n % 500) + 1
        batch.append(hit(n, n / CALLS_PER_S, price, True))
        if len(batch) == 10_000:
            store.add_hits(src, batch, {}, n / CALLS_PER_S)
            batch = []
    elapsed = time.perf_counter() - started
    (summary,) = store.standing_summary("standing-bench")
    bodies = [row.body for row in store.read_hits(probe_id="standing-bench", limit=100_000)]
    store.close()
    return {
        "name": "standing_million",
        "calls": calls,
        "seen": summary.seen,
        "kept": summary.kept,
        "strata": summary.strata,
        "rare_calls": len(rare_at),
        "rare_kept": sum(1 for body in bodies if '"price":null' in body),
        "disk_bytes": disk(db),
        "disk_bound_bytes": BOUND_BYTES // strata.MAX_VERSIONS,
        "hits_per_s": round(calls / elapsed),
    }


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """Poisson draw for a small p: the number of rare calls in ``n``."""
    lam = n * p
    threshold, k, product = pow(2.718281828459045, -lam), 0, rng.random()
    while product > threshold:
        k += 1
        product *= rng.random()
    return k


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-reservoir-") as tmp:
        results = [day(Path(tmp), args.hours, args.seed), million(Path(tmp))]
    if args.json:
        for result in results:
            print(json.dumps(result))
        return 0
    d, m = results
    mib = 1024 * 1024
    print(
        f"{d['hours']:g} simulated hours at {CALLS_PER_S} calls/s ({d['calls']:,} calls), "
        f"a deploy at half time; {d['hits_sent']:,} hits admitted by the sensor model"
    )
    for v in d["versions"]:
        print(
            f"  version {v['version']}: seen {v['seen']:,}, kept {v['kept']} "
            f"(bound {strata.RESERVOIR_CAP}), strata {v['strata']}"
        )
    print(
        f"  sample {d['kept_total']} hits (bound {d['kept_bound']}); disk "
        f"{d['disk_bytes'] / mib:.2f} MiB (bound {d['disk_bound_bytes'] / mib:.1f} MiB); "
        f"{d['seconds']}s"
    )
    print(
        f"  rare violating state: {d['rare_violation_calls']} calls, "
        f"{d['rare_violation_captured']} captured, {d['rare_violation_kept']} kept"
    )
    print(
        f"  rare passing state: {d['rare_passing_calls']} calls, "
        f"{d['rare_passing_captured']} captured by the 1 hit/s sampling, "
        f"{d['rare_passing_kept']} kept"
    )
    print(
        f"10^6 calls, every call captured: seen {m['seen']:,}, kept {m['kept']} (bound "
        f"{strata.RESERVOIR_CAP}), strata {m['strata']}; state on {m['rare_calls']} calls: "
        f"{m['rare_kept']} kept (goal {m['rare_calls']}); disk {m['disk_bytes'] / mib:.2f} MiB "
        f"(bound {m['disk_bound_bytes'] / mib:.1f} MiB); {m['hits_per_s']:,} hits/s stored"
    )
    return 0  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
