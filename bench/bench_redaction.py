"""Cost of the redactor per string, one version of the sensor against another, side by side.

Measures ``Redactor.match_secret_value`` (what the capture encoder asks of every string it
emits) and ``Redactor.redact_text`` (log messages, exception messages, carried secrets) in ns
per call, on ordinary strings of 10, 100 and 1000 characters (prose; a log line with dates,
amounts and names; ids and URLs, which hold long runs of token characters) and on strings that
hold a secret (a vendor token, a card, a secret field, a command-line option).

Two roots are compared: ``--base`` (a copy of another version's ``sensor`` package, e.g.
``git archive main sensor | tar -x -C /tmp/root-vendor-base``) and ``--new`` (this checkout).
Each pair runs base then new (A B A B ..., ``--pairs`` of them), each in a fresh interpreter
that imports the sensor from its root only; a worker times every case (best of 5 rounds after
a warm-up). Reported per case: the median of the per-pair ratios new/base, with min and max,
and the median ns of each.

Goal: ordinary strings no dearer than before (ratio <= 1.05); strings with secrets may cost
more where the new rules find what the old ones missed.

Usage::

    python bench/bench_redaction.py --base /tmp/root-vendor-base [--pairs 7] [--json]
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

_LOG = (
    "2024-01-05 12:30:07 INFO order 1234 for Bob Smith shipped to 12 High Street, London; "
    "total 19.99 USD, 3 items (retry: 0). "
)
_PROSE = (
    "The customer asked whether the parcel could be left with a neighbour, and the courier "
    "agreed to try again tomorrow morning before noon. "
)
_IDS = (
    "GET /api/v1/orders/7f9c2ba4-e88f-4a7b-9c1d-3e5f6a7b8c9d/items?page=2&sort=created_at "
    "request_id=0f1e2d3c4b5a69788796a5b4c3d2e1f0 trace=00-4bf92f3577b34da6a3ce929d0e0e4736-01 "
)


def _cut(text: str, n: int) -> str:
    return (text * (n // len(text) + 1))[:n]


def _form(n: int) -> str:
    """A URL-encoded form body of ``n`` characters: redirect URLs with query strings of their
    own, base64 values with `=` padding, `key=value;` lists, each percent-encoded as a value
    (`next=https%3A%2F%2Fx.example%2Fcb%3Fpage%3D2%26lang%3Den`): many `%3D` separators."""
    keys = ("next", "redirect_uri", "state", "data", "q")
    values = (
        "https%3A%2F%2Fx.example%2Fcb%3Fpage%3D2%26lang%3Den",
        "eyJhIjoxfQ%3D%3D",
        "a%20b%20c",
        "id%3D5%3Bk%3Dv",
        "https%3A%2F%2Fshop.example%2Fo%3Fid%3D17%26next%3D%252Fcart%253Fstep%253D2",
    )
    parts = [f"{keys[k % 5]}={values[k % 7 % 5]}" for k in range(n // 20 + 1)]
    return "&".join(parts)[:n]


# (case, kind, text): kind "ordinary" is the figure the goal is about.
CASES: list[tuple[str, str, str]] = [
    ("word-10", "ordinary", "pending_rv"),
    ("prose-100", "ordinary", _cut(_PROSE, 100)),
    ("log-100", "ordinary", _cut(_LOG, 100)),
    ("ids-100", "ordinary", _cut(_IDS, 100)),
    ("prose-1000", "ordinary", _cut(_PROSE, 1000)),
    ("log-1000", "ordinary", _cut(_LOG, 1000)),
    ("ids-1000", "ordinary", _cut(_IDS, 1000)),
    ("openai-key-100", "secret", "calling the API with sk-proj-" + "aB3dE5fG7hJ9kL1" * 4 + " now"),
    ("card-100", "secret", _cut(_LOG, 60) + " paid with 4111 1111 1111 1111 ok"),
    ("field-100", "secret", "POST /login user=bob&password=hunter2&remember=1 " + _cut(_LOG, 50)),
    ("argv-100", "secret", "backup.sh --host db --password hunter2 --user bob " + _cut(_LOG, 50)),
    ("gitlab-1000", "secret", _cut(_LOG, 950) + " glpat-aB3dE5fG7hJ9kL1mN2pQ4"),
    # Long texts dense in separators: what one field costs, not what one string costs. A
    # `%3D` is a separator (a query string carried encoded in a parameter), so `%`-dense
    # text must cost about what `=`-dense text of the same length costs (`eq-dense-8k`).
    ("form-8k", "ordinary", _form(8192)),
    ("eq-dense-8k", "dense", "a=" * 4096),
    ("pct-dense-8k", "dense", "a%3D" * 2048),
    ("pct2-dense-8k", "dense", "a%253D" * 1365),
]

_WORKER = r"""
import json, sys, time
from sensor.redaction import Redactor
cases = json.loads(sys.argv[1])
n_scale = int(sys.argv[2])
red = Redactor()
out = {}
for name, text in cases:
    n = max(50 if len(text) <= 1000 else 5, n_scale // max(1, len(text) // 10))
    for func in ("match", "redact"):
        f = red.match_secret_value if func == "match" else red.redact_text
        for _ in range(n // 5 + 1):  # warm-up
            f(text)
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter_ns()
            for _ in range(n):
                f(text)
            best = min(best, (time.perf_counter_ns() - t0) / n)
        out[f"{name}/{func}"] = best
print(json.dumps(out))
"""


def _run(root: Path, n: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
    env["PYTHONPATH"] = str(root)
    cases = json.dumps([(name, text) for name, _kind, text in CASES])
    with tempfile.TemporaryDirectory() as cwd:  # nothing importable from the cwd
        done = subprocess.run(
            [sys.executable, "-c", _WORKER, cases, str(n)],
            env=env,
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="root holding the old sensor/")
    parser.add_argument("--new", type=Path, default=ROOT, help="root holding the new sensor/")
    parser.add_argument("--pairs", type=int, default=7, help="base/new pairs (at least 5)")
    parser.add_argument("--n", type=int, default=20000, help="calls per round on 10 characters")
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    args = parser.parse_args()
    for root in (args.base, args.new):
        if not (root / "sensor" / "redaction.py").is_file():
            raise SystemExit(f"{root}: no sensor/redaction.py there")
    _run(args.base, 2000)  # warm the disk caches of both trees
    _run(args.new, 2000)
    runs: list[tuple[dict[str, float], dict[str, float]]] = []
    for _ in range(args.pairs):
        runs.append((_run(args.base, args.n), _run(args.new, args.n)))
    print(
        f"redactor cost, ns per call; base {args.base} vs new {args.new}; {args.pairs} pairs; "
        f"Python {sys.version.split()[0]}"
    )
    print(f"{'case':<16} {'func':<6} {'base ns':>9} {'new ns':>9} {'ratio':>6} {'min':>6} "
          f"{'max':>6}  goal")  # fmt: skip
    for name, kind, text in CASES:
        for func in ("match", "redact"):
            key = f"{name}/{func}"
            base = [b[key] for b, _ in runs]
            new = [n[key] for _, n in runs]
            ratios = [n / b for b, n in zip(base, new, strict=True)]
            med = statistics.median(ratios)
            goal = {
                "ordinary": "<= 1.05 (ordinary: no dearer)",
                "secret": "(finds more)",
                "dense": "(per char: like eq-dense)",
            }[kind]
            met = "" if kind != "ordinary" else (" met" if med <= 1.05 else " NOT met")
            if args.json:
                print(
                    json.dumps(
                        {
                            "case": name,
                            "kind": kind,
                            "chars": len(text),
                            "func": func,
                            "base_ns": statistics.median(base),
                            "new_ns": statistics.median(new),
                            "ratio_median": med,
                            "ratio_min": min(ratios),
                            "ratio_max": max(ratios),
                            "pairs": args.pairs,
                            "python": sys.version.split()[0],
                        }
                    )
                )
            else:
                print(
                    f"{name:<16} {func:<6} {statistics.median(base):>9.0f} "
                    f"{statistics.median(new):>9.0f} {med:>6.3f} {min(ratios):>6.3f} "
                    f"{max(ratios):>6.3f}  {goal}{met}"
                )


if __name__ == "__main__":
    main()
