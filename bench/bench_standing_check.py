"""A PR check against standing probes, against the same suite replaying an evidence file.

A generated suite of 50 tests, each marking its own function with ``runtime_probe``, is
published to a real hub (``python -m pytest_runtime publish``); a source of version 1.0 sends
40 hits to each standing probe. Then, as paired, interleaved runs (A B A B ...) after a
warm-up, in fresh pytest processes:

- A: ``pytest --runtime-evidence ev.jsonl`` (the evidence recorded from the hub, no network);
- B: ``pytest --runtime-probe`` (the standing evidence read from the hub, nothing waited for).

The figure is the median of the per-pair wall-time ratios B/A with the min and max; the goal
(issue 13) is within 1.2x. Usage::

    python bench/bench_standing_check.py [--pairs 7] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from benchlib import CLIENT, SENSOR, start_hub

GOAL = 1.2
TESTS = 50
HITS = 40


def make_suite(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text("[pytest]\n")
    functions = "\n\n".join(
        f"def f{n}(price, rate):\n    total = price - price * rate\n    return total"
        for n in range(TESTS)
    )
    (root / "shop_bench.py").write_text(functions + "\n")
    tests = ["import pytest", "import shop_bench", ""]
    for n in range(TESTS):
        tests.append(
            f'@pytest.mark.runtime_probe("shop_bench:f{n}", capture=["price", "rate"], '
            f'service="shop")\n'
            f"def test_f{n}():\n    assert shop_bench.f{n}(10, 0.5) == 5\n"
        )
    (root / "test_bench.py").write_text("\n".join(tests))


def env_for(hub: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SENSOR_", "PYTEST_"))}
    env |= {"SENSOR_CLIENT_TOKEN": CLIENT, "PYTEST_RUNTIME_HUB": hub}
    return env


def pytest_run(root: Path, hub: str, *args: str) -> tuple[float, str]:
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=root, env=env_for(hub), capture_output=True, text=True, check=False,
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if run.returncode not in (0, 1):
        raise SystemExit(
            f"pytest {' '.join(args)} failed ({run.returncode}):\n{run.stdout[-3000:]}"
        )
    return elapsed, run.stdout


def feed(hub: str) -> str:
    """A source of version 1.0 sending HITS hits to each standing probe; returns its id."""
    sensor = {"Authorization": f"Bearer {SENSOR}"}
    client = {"Authorization": f"Bearer {CLIENT}"}
    source = requests.post(
        f"{hub}/v1/sensors/register",
        json={"service": "shop", "version": "1.0", "host": "bench", "pid": 1},
        headers=sensor,
        timeout=10,
    ).json()["source_id"]
    probes = requests.get(
        f"{hub}/v1/probes", params={"standing": "true"}, headers=client, timeout=10
    ).json()["probes"]
    now = time.time()
    for probe in probes:
        hits = [
            {
                "probe_id": probe["id"],
                "signature": probe["signature"],
                "kind": "snapshot",
                "location": probe["probe"]["location"] + "@return",
                "ts": now - 60 + n * 0.01,
                "hit_id": f"{probe['id'][-8:]}-{n}",
                "captures": {"price": 10 + n, "rate": 0.5},
            }
            for n in range(HITS)
        ]
        requests.post(
            f"{hub}/v1/sensors/{source}/hits", json={"hits": hits}, headers=sensor, timeout=10
        ).raise_for_status()
    return str(source)


def heartbeat(hub: str, source: str) -> None:
    """Keep the source live (the check compares with the version live now)."""
    requests.post(
        f"{hub}/v1/sensors/{source}/heartbeat",
        json={"statuses": [], "dropped": 0},
        headers={"Authorization": f"Bearer {SENSOR}"},
        timeout=10,
    ).raise_for_status()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-standing-") as tmp:
        root = Path(tmp) / "suite"
        make_suite(root)
        proc, hub = start_hub(Path(tmp) / "hub.db")
        try:
            subprocess.run(
                [sys.executable, "-m", "pytest_runtime", "publish", "-p", "no:cacheprovider"],
                cwd=root, env=env_for(hub), check=True, capture_output=True, text=True,
            )  # fmt: skip
            source = feed(hub)
            record = ["--runtime-evidence", "ev.jsonl", "--runtime-record-mode", "rewrite"]
            _, out = pytest_run(root, hub, *record)
            if "recorded" not in out:
                raise SystemExit(f"recording failed:\n{out[-3000:]}")
            replay = ("--runtime-evidence", "ev.jsonl")
            live = ("--runtime-probe",)
            heartbeat(hub, source)
            pytest_run(root, hub, *replay)  # warm-up
            _, check = pytest_run(root, hub, *live)
            if "50 probe(s) read at once (no wait)" not in check:
                raise SystemExit(f"the check did not read standing evidence:\n{check[-3000:]}")
            ratios, a_times, b_times = [], [], []
            for _ in range(args.pairs):
                heartbeat(hub, source)
                a, _ = pytest_run(root, hub, *replay)
                b, _ = pytest_run(root, hub, *live)
                a_times.append(a)
                b_times.append(b)
                ratios.append(b / a)
        finally:
            proc.terminate()
            proc.wait(10)
    result = {
        "name": "standing_check_50",
        "pairs": args.pairs,
        "replay_s": round(statistics.median(a_times), 3),
        "standing_s": round(statistics.median(b_times), 3),
        "ratio_median": round(statistics.median(ratios), 3),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
        "goal": GOAL,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"PR check of {TESTS} marked tests, all standing, vs --runtime-evidence from a file "
            f"({args.pairs} pairs):\n"
            f"  file {result['replay_s']:.2f}s, standing {result['standing_s']:.2f}s (medians); "
            f"ratio {result['ratio_median']:.3f} (min {result['ratio_min']:.3f}, max "
            f"{result['ratio_max']:.3f}); goal <= {GOAL}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
