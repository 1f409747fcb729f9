"""The plugin against production: a real hub, a real gunicorn service with the sensor, real traffic.

The service's tests pass. Real traffic then reaches states the tests never had: a discount rate
above 1 (the expectation ``0 <= result <= price`` breaks: violated) and an order whose coupon is
``None`` (a shape the tests never produced: diverged, with deepdiff lines). A third function
differs between tests and production only in request ids and timestamps: ok.
Nothing here imitates our hub or sensor: ``python -m sensor hub`` and ``python -m sensor run``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.integration]

SENSOR_TOKEN = "plugin-it-sensor-token"
CLIENT_TOKEN = "plugin-it-client-token"

SHOP = textwrap.dedent(
    """
    import json
    import uuid
    from datetime import datetime, timezone
    from urllib.parse import parse_qs


    def apply_discount(price, rate):
        total = price - price * rate
        return total


    def order_total(order):
        coupon = order["coupon"]
        cut = coupon["percent"] if coupon is not None else 0
        return order["amount"] * (100 - cut) // 100


    def make_receipt(request_id, created_at, total):
        receipt = {"request_id": request_id, "created_at": created_at, "total": total}
        return receipt


    def app(environ, start_response):
        q = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        price, rate = int(q.get("price", "100")), float(q.get("rate", "0.1"))
        coupon = None if q.get("coupon") == "none" else {"percent": int(q.get("coupon", "10"))}
        body = {
            "discounted": apply_discount(price, rate),
            "order": order_total({"amount": price, "coupon": coupon}),
            "receipt": make_receipt(
                str(uuid.uuid4()), datetime.now(timezone.utc).isoformat(), price
            ),
        }
        data = json.dumps(body).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [data]
    """
)

TESTS = textwrap.dedent(
    """
    import pytest

    from shop_app import apply_discount, make_receipt, order_total


    @pytest.mark.runtime_probe(
        "shop_app:apply_discount", capture=["price", "rate"], expect="0 <= result <= price",
        rate=200, service="shop",
    )
    def test_apply_discount():
        assert apply_discount(100, 0.1) == 90
        assert apply_discount(80, 0.25) == 60


    @pytest.mark.runtime_probe(
        "shop_app:order_total@entry", capture=["order"], rate=200, service="shop"
    )
    def test_order_total():
        assert order_total({"amount": 100, "coupon": {"percent": 10}}) == 90
        assert order_total({"amount": 50, "coupon": {"percent": 20}}) == 40


    @pytest.mark.runtime_probe(
        "shop_app:make_receipt", capture=["receipt"], rate=200, service="shop"
    )
    def test_make_receipt():
        for n in range(3):
            receipt = make_receipt(
                f"0000000{n}-test-4000-8000-00000000000{n}", f"2026-01-0{n + 1}T00:00:00+00:00", 90
            )
            assert receipt["total"] == 90
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def clean_env() -> dict[str, str]:
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SENSOR_", "PYTEST_RUNTIME_", "PYTEST_ADDOPTS", "PYTEST_XDIST"))
    }


class Processes:
    """The hub and the service, stopped in reverse order whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[str]] = []
        self.logs: list[Path] = []

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
        log_path = self.workdir / f"{name}.log"
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                command, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT, text=True
            )
        self.procs.append(proc)
        self.logs.append(log_path)
        return proc

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text()[-4000:]

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


@pytest.fixture
def production(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A hub, the shop under gunicorn with the sensor, and a traffic thread; yields their URLs."""
    (tmp_path / "shop_app.py").write_text(SHOP)
    procs = Processes(tmp_path)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    try:
        hub_port = free_port()
        procs.start(
            "hub",
            [
                sys.executable, "-m", "sensor", "hub", "--port", str(hub_port),
                "--db", str(tmp_path / "hub.db"), "--sensor-token", SENSOR_TOKEN,
                "--client-token", CLIENT_TOKEN,
            ],
            clean_env(),
        )  # fmt: skip
        hub = f"http://127.0.0.1:{hub_port}"
        assert wait_until(lambda: _get(f"{hub}/v1/health") is not None, 20), procs.log("hub")
        service_port = free_port()
        env = clean_env() | {
            "SENSOR_HUB_URL": hub,
            "SENSOR_TOKEN": SENSOR_TOKEN,
            "SENSOR_SERVICE": "shop",
            "SENSOR_POLL_WAIT": "1",
            "SENSOR_FLUSH_INTERVAL": "0.1",
            "SENSOR_HEARTBEAT_INTERVAL": "0.5",
            "PYTHONWARNINGS": "ignore::DeprecationWarning",
        }
        procs.start(
            "service",
            [
                sys.executable, "-m", "sensor", "run", "--", sys.executable, "-m", "gunicorn",
                "--workers", "1", "--bind", f"127.0.0.1:{service_port}",
                "--chdir", str(tmp_path), "--control-socket", str(tmp_path / "gunicorn.ctl"),
                "shop_app:app",
            ],
            env,
        )  # fmt: skip
        service = f"http://127.0.0.1:{service_port}"
        assert wait_until(lambda: _get(f"{service}/?price=1") is not None, 30), procs.log("service")

        def traffic() -> None:
            # A realistic, seeded mix: most requests are like the tests, some are not.
            for n in range(20_000):  # bounded: about 100 s at most
                if stop.is_set():
                    return
                rate = 1.5 if n % 5 == 0 else 0.1 + (n % 4) * 0.1
                coupon = "none" if n % 3 == 0 else str(5 + n % 20)
                _get(f"{service}/?price={50 + n % 200}&rate={rate}&coupon={coupon}")
                stop.wait(0.005)

        thread = threading.Thread(target=traffic, daemon=True)
        thread.start()
        threads.append(thread)
        yield {"hub": hub, "service": service, "workdir": tmp_path, "procs": procs}
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
        procs.stop()


def _get(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def test_production_states_the_tests_never_had_are_reported_with_deepdiff_evidence(
    production: dict[str, Any],
) -> None:
    workdir: Path = production["workdir"]
    (workdir / "test_shop.py").write_text(TESTS)
    env = clean_env() | {"SENSOR_CLIENT_TOKEN": CLIENT_TOKEN, "PYTHONPATH": str(workdir)}
    run = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly",
            "--rootdir", str(workdir), "test_shop.py",
            "--runtime-probe", "--runtime-hub", production["hub"], "--runtime-wait", "30",
            "--runtime-min-hits", "20", "--runtime-report-json", "report.json",
            "--runtime-record", "evidence.jsonl",
        ],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert "3 passed" in output, output[-5000:]
    # Every test passed, yet production broke the expectation: the run fails.
    assert run.returncode == 1, output[-5000:]
    report = json.loads((workdir / "report.json").read_text())
    by_test = {entry["nodeid"].split("::")[-1]: entry for entry in report["results"]}

    discount = by_test["test_apply_discount"]
    assert discount["verdict"] == "violated", json.dumps(discount, indent=1)[:3000]
    [violation] = [d for d in discount["divergences"] if d["kind"] == "violation"]
    assert violation["severity"] == "high"
    assert violation["count"] >= 1
    assert violation["hit_ids"]
    assert violation["representative"]["rate"] == 1.5

    order = by_test["test_order_total"]
    assert order["verdict"] == "diverged", json.dumps(order, indent=1)[:3000]
    shapes = [d for d in order["divergences"] if d["kind"] == "shape"]
    assert any("coupon" in d["path"] for d in shapes), shapes
    lines = [line for d in shapes for line in d["deepdiff"]]
    assert any("coupon" in line and "None" in line for line in lines), lines

    receipt = by_test["test_make_receipt"]
    assert receipt["verdict"] == "ok", json.dumps(receipt, indent=1)[:3000]

    assert "VIOLATED test_shop.py::test_apply_discount" in output
    # gunicorn's master never imports the application: said once for the run, not per probe.
    assert output.count("pre-fork server's master") == 1, output[-5000:]
    assert "source(s) never imported the probed module(s) while other sources did" in output
    assert report["notes"], report
    assert all(entry["probe_ids"] for entry in report["results"])
    # The probes the run placed are gone from the hub.
    request = urllib.request.Request(
        f"{production['hub']}/v1/probes?state=active",
        headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read())["probes"] == []
    # And the recording replays to the same verdicts with no hub at all.
    replay = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--rootdir", str(workdir),
            "test_shop.py", "--runtime-evidence", "evidence.jsonl", "--runtime-min-hits", "20",
        ],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert replay.returncode == 1, replay.stdout[-3000:]
    assert "VIOLATED test_shop.py::test_apply_discount" in replay.stdout
