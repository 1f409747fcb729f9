"""Benchmark: what setting server plumbing aside costs a comparison, side by side.

Each mix of ``bench_compare.py`` (no plumbing in it: the rule only looks) and one of WSGI
environs (10,000 production hits built from the environ gunicorn made, against 100 test-time
environs from werkzeug's test client: real captures from
``tests/unit/pytest_runtime/compare/data/plumbing.json``) is compared with the rule on and
off, alternately (A B A B ...), after a warm-up. Printed: the median CPU time of each, and
the median of the per-pair ratios on/off with its min and max.

Goals: on/off at most 1.05 on every mix (finding nothing costs nothing measurable, and
finding plumbing costs no more than comparing it); on the environ mix, also under 1 s CPU with
the rule on (bench_compare.py's goal).

    python bench/bench_compare_plumbing.py            # table
    python bench/bench_compare_plumbing.py --json     # one JSON object per measurement
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from functools import partial
from pathlib import Path
from typing import Any

from bench_compare import MIXES, _clock, _hits

from pytest_runtime.compare import CompareSettings, compare

DATA = Path(__file__).parents[1] / "tests/unit/pytest_runtime/compare/data/plumbing.json"
RATIO_GOAL = 1.05
ENVIRON_GOAL_S = 1.0


def _environ_hits(n: int, side: str) -> list[dict[str, Any]]:
    states = json.loads(DATA.read_text())[f"flask_{side}"]
    out = []
    for i in range(n):
        captures = copy.deepcopy(states[i % len(states)])
        env = captures["env"]["v"]
        env["QUERY_STRING"] = f"name=u{i % 97}&page={i % 13}"
        if "REMOTE_PORT" in env:
            env["REMOTE_PORT"] = str(30000 + i % 30000)
        out.append(
            {
                "probe_id": "p",
                "signature": "sig",
                "kind": "snapshot",
                "location": "shop.views:hello@return",
                "ts": 1_700_000_000 + i * 0.01,
                "hit_id": f"{side}-{i}",
                "captures": captures,
                "source": {"id": f"web-{i % 4}", "service": "shop"},
            }
        )
    return out


def _mixes(prod_n: int, test_n: int) -> dict[str, tuple[list[Any], list[Any]]]:
    out: dict[str, tuple[list[Any], list[Any]]] = {}
    for name, mix in MIXES.items():
        test_mix = dict(mix, odd=False, violate=0.0)
        out[name] = (
            _hits(test_n, seed=1, prefix="t", **test_mix),
            _hits(prod_n, seed=2, prefix="p", **mix),
        )
    out["WSGI environs (gunicorn against werkzeug's test client)"] = (
        _environ_hits(test_n, "test"),
        _environ_hits(prod_n, "prod"),
    )
    return out


def _verdict(test: list[Any], prod: list[Any], settings: CompareSettings, out: set[str]) -> None:
    out.add(compare(test, prod, settings=settings).verdict)


def run(prod_n: int, test_n: int, pairs: int, as_json: bool) -> int:
    on, off = CompareSettings(), CompareSettings(plumbing=False)
    missed = 0
    if not as_json:
        print(
            f"server plumbing rule, on against off: {prod_n} production hits, {test_n} "
            f"test-time states (Python {sys.version.split()[0]}, {pairs} pairs, CPU s)"
        )
        print(f"{'mix':58} {'off s':>6} {'on s':>6} {'on/off':>7} {'min..max':>11}  goal")
    for name, (test, prod) in _mixes(prod_n, test_n).items():
        compare(test, prod, settings=on)  # warm-up
        compare(test, prod, settings=off)
        t_on: list[float] = []
        t_off: list[float] = []
        ratios: list[float] = []
        verdicts: set[str] = set()
        for _ in range(pairs):
            a = _clock(partial(_verdict, test, prod, off, verdicts))[1]
            b = _clock(partial(_verdict, test, prod, on, verdicts))[1]
            t_off.append(a)
            t_on.append(b)
            ratios.append(b / a if a else float("inf"))
        ratio = statistics.median(ratios)
        environ = name.startswith("WSGI")
        on_s = statistics.median(t_on)
        met = ratio <= RATIO_GOAL
        goal = f"on/off <= {RATIO_GOAL}: {'met' if met else 'NOT met'}"
        if environ:
            whole = on_s < ENVIRON_GOAL_S
            goal += f"; on < {ENVIRON_GOAL_S:g} s: {'met' if whole else 'NOT met'}"
            met = met and whole
        missed += not met
        row = {
            "mix": name,
            "off_s": round(statistics.median(t_off), 4),
            "on_s": round(on_s, 4),
            "ratio": round(ratio, 3),
            "ratio_min": round(min(ratios), 3),
            "ratio_max": round(max(ratios), 3),
            "verdicts": sorted(verdicts),
            "goal": goal,
        }
        if as_json:
            print(json.dumps(row))
        else:
            print(
                f"{name:58} {row['off_s']:6.3f} {row['on_s']:6.3f} {ratio:7.3f} "
                f"{row['ratio_min']:5.3f}..{row['ratio_max']:<5.3f}  {goal}"
            )
    return 1 if missed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    parser.add_argument("--prod", type=int, default=10_000, help="production hits")
    parser.add_argument("--tests", type=int, default=100, help="test-time states")
    parser.add_argument("--pairs", type=int, default=5)
    args = parser.parse_args()
    return run(args.prod, args.tests, args.pairs, args.json)


if __name__ == "__main__":
    sys.exit(main())
