"""The demo, end to end: hub + shop with the sensor + real traffic + ``pytest --runtime-probe``.

    make demo                      (or: python -m examples.shop.demo)

It starts a hub (SQLite in a temporary directory), starts the shop under gunicorn with the
sensor attached (``python -m sensor run -- gunicorn ...``), drives seeded traffic at it, runs the
shop's own test suite with ``--runtime-probe`` against the hub while the traffic flows, prints the
verdicts, and writes the JSON report and the evidence file to ``demo-output/``. Everything it
started is stopped on the way out, also on Ctrl-C. ``--check`` exits non-zero unless every seeded
bug was found and no noise field was flagged (the end-to-end test uses it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

#: what the demo must find: test name fragment -> (verdict, divergence kinds that must be present)
EXPECTED = {
    "test_apply_discount": ("violated", {"violation"}),
    "test_shipping_cost_by_zone": ("diverged", {"shape"}),
    "test_shipping_cost_east_coast": ("diverged", {"path"}),
    "test_place_order_issues_a_receipt": ("ok", set()),
    "test_subtotal_sums_the_lines": ("diverged", {"path"}),
}
NOISE_FIELDS = ("order_id", "created_at", "request_id")


def _say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get_json(url: str, token: str | None = None, timeout: float = 2.0) -> Any:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


def _wait_until(what: str, check: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except (OSError, ValueError, urllib.error.URLError) as exc:
            last_error = exc
        time.sleep(0.2)
    raise SystemExit(f"demo: gave up waiting for {what} after {timeout:.0f}s ({last_error})")


@contextlib.contextmanager
def _process(
    name: str, argv: list[str], log: Path, **kwargs: Any
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a process in its own process group; stop the whole group on the way out."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
            _say(f"stopped {name} (exit {proc.returncode}, log {log})")


def _start_hub(workdir: Path, tokens: dict[str, str], stack: contextlib.ExitStack) -> str:
    port = _free_port()
    log = workdir / "hub.log"
    argv = [
        sys.executable, "-m", "sensor", "hub",
        "--host", "127.0.0.1", "--port", str(port),
        "--db", str(workdir / "hub.sqlite3"),
        "--admin-token", tokens["admin"],
        "--sensor-token", tokens["sensor"],
        "--client-token", tokens["client"],
    ]  # fmt: skip
    proc = stack.enter_context(_process("hub", argv, log))
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise SystemExit(
                f"demo: the hub exited ({proc.returncode}); see {log}:\n{log.read_text()}"
            )
        return bool(_get_json(f"{url}/v1/health"))

    _wait_until("the hub", healthy, 30)
    _say(f"hub listening on {url} (SQLite at {workdir / 'hub.sqlite3'})")
    return url


def _start_shop(
    workdir: Path, hub: str, tokens: dict[str, str], stack: contextlib.ExitStack
) -> str:
    port = _free_port()
    log = workdir / "shop.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)]),
        "SENSOR_HUB_URL": hub,
        "SENSOR_TOKEN": tokens["sensor"],
        "SENSOR_SERVICE": "shop",
        "SENSOR_VERSION": "1.4.2",
        "SENSOR_LABELS": "env=demo,region=local",
    }
    gunicorn = [
        sys.executable, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}",
        "--log-level", "warning", "--graceful-timeout", "5",
        "--control-socket", str(workdir / "gunicorn.ctl"),
        "shop.app:app",
    ]  # fmt: skip
    argv = [sys.executable, "-m", "sensor", "run", "--", *gunicorn]
    proc = stack.enter_context(_process("shop", argv, log, env=env, cwd=str(HERE)))
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise SystemExit(
                f"demo: the shop exited ({proc.returncode}); see {log}:\n{log.read_text()}"
            )
        return bool(_get_json(f"{url}/health"))

    _wait_until("the shop", ready, 30)
    sources = _wait_until(
        "the shop's sensors to register",
        lambda: [
            s
            for s in _get_json(f"{hub}/v1/sources?service=shop", tokens["client"])["sources"]
            if s["state"] == "live"
        ],
        30,
    )
    _say(f"shop on {url}: gunicorn, 2 workers, {len(sources)} live sources on the hub")
    return url


def _run_pytest(hub: str, tokens: dict[str, str], out: Path, wait: float, min_hits: int) -> int:
    argv = [
        sys.executable, "-m", "pytest", "tests", "-p", "no:cacheprovider", "--color=yes",
        "--runtime-probe", "--runtime-hub", hub,
        "--runtime-wait", str(wait), "--runtime-min-hits", str(min_hits),
        "--runtime-report-json", str(out / "report.json"),
        "--runtime-record", str(out / "evidence.jsonl"),
    ]  # fmt: skip
    env = {**os.environ, "SENSOR_CLIENT_TOKEN": tokens["client"], "PYTHONPATH": str(ROOT)}
    _say("running: " + " ".join(argv[1:]))
    return subprocess.call(argv, cwd=str(HERE), env=env)


def check_report(report: dict[str, Any]) -> list[str]:
    """What the demo must show: an empty list when every seeded bug was found, noise left alone."""
    problems = []
    entries = report.get("results", [])
    for fragment, (verdict, kinds) in EXPECTED.items():
        matching = [e for e in entries if fragment in e.get("nodeid", "")]
        if not matching:
            problems.append(f"{fragment}: no entry in the report")
            continue
        verdicts = {e["verdict"] for e in matching}
        found = {d["kind"] for e in matching for d in e.get("divergences", [])}
        if verdict not in verdicts:
            problems.append(f"{fragment}: verdict {sorted(verdicts)}, expected {verdict!r}")
        if not kinds <= found:
            problems.append(f"{fragment}: divergences {sorted(found)}, expected {sorted(kinds)}")
    for entry in entries:
        for divergence in entry.get("divergences", []):
            path = str(divergence.get("path", ""))
            if any(name in path for name in NOISE_FIELDS):
                problems.append(f"{entry.get('nodeid')}: noise field flagged at {path}")
    return problems


def print_summary(report: dict[str, Any]) -> None:
    """One line per probe: verdict, what was found, state (or line) coverage, and the noise
    left alone."""
    print("\ndemo: summary (from the JSON report)")
    for entry in sorted(report.get("results", []), key=lambda e: str(e.get("nodeid"))):
        kinds = sorted({f"{d['severity']} {d['kind']}" for d in entry.get("divergences", [])})
        noise = entry.get("noise") or {}
        noise_text = ", ".join(f"{path} ({why})" for path, why in sorted(noise.items()))
        coverage = entry.get("state_coverage")
        coverage_text = "n/a" if coverage is None else f"{coverage:.0%}"
        # A lines probe's coverage is of lines: production-run lines the tests ran.
        measure = (
            "line coverage " if "prod_lines" in (entry.get("counts") or {}) else "state coverage"
        )
        print(
            f"  {entry.get('verdict', '?'):<12} {str(entry.get('nodeid')).split('::')[-1]:<34} "
            f"{measure} {coverage_text:>4}  "
            f"{'; '.join(kinds) or 'no divergence'}"
            + (f"  | noise left alone: {noise_text}" if noise_text else "")
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pytest-runtime demo")
    parser.add_argument("--out", type=Path, default=ROOT / "demo-output", help="report directory")
    parser.add_argument(
        "--traffic-seconds", type=float, default=45.0, help="upper bound on traffic"
    )
    parser.add_argument("--wait", type=float, default=20.0, help="--runtime-wait for pytest")
    parser.add_argument("--min-hits", type=int, default=20, help="--runtime-min-hits for pytest")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the verdicts are right")
    args = parser.parse_args(argv)
    args.out = args.out.resolve()  # pytest runs in the shop's directory: no relative path
    args.out.mkdir(parents=True, exist_ok=True)
    tokens = {name: f"demo-{name}-{secrets.token_hex(8)}" for name in ("admin", "sensor", "client")}
    started = time.monotonic()
    sys.path.insert(0, str(HERE))
    from traffic import run as run_traffic  # the generator next to this file

    with (
        tempfile.TemporaryDirectory(prefix="pytest-runtime-demo-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        workdir = Path(tmp)
        hub = _start_hub(workdir, tokens, stack)
        shop = _start_shop(workdir, hub, tokens, stack)
        stop_traffic = threading.Event()
        traffic_stats: list[Any] = []

        def traffic() -> None:
            traffic_stats.append(
                run_traffic(shop, seconds=args.traffic_seconds, progress=False, stop=stop_traffic)
            )

        thread = threading.Thread(target=traffic, daemon=True)
        thread.start()
        stack.callback(thread.join, 15)
        stack.callback(stop_traffic.set)
        _say(f"traffic: a seeded mix of quotes and orders for up to {args.traffic_seconds:.0f}s")
        status = _run_pytest(hub, tokens, args.out, args.wait, args.min_hits)
        _say(f"pytest exited with {status} (1 is expected: the seeded bugs fail the run)")
        for name in ("hub.log", "shop.log"):
            (args.out / name).write_bytes((workdir / name).read_bytes())
    report_path = args.out / "report.json"
    if not report_path.exists():
        _say(f"no report at {report_path}")
        return 2
    report = json.loads(report_path.read_text())
    print_summary(report)
    _say(f"JSON report: {report_path}; evidence: {args.out / 'evidence.jsonl'}")
    _say(f"finished in {time.monotonic() - started:.0f}s")
    if args.check:
        problems = check_report(report)
        for problem in problems:
            _say(f"CHECK FAILED: {problem}")
        if problems:
            return 1
        _say("check passed: every seeded bug found, no noise field flagged")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
