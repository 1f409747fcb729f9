"""Real processes for the accuracy suite: the two services with the sensor, and the suite runs.

The hub is ``tests/hub_process.py``'s; each service runs the way a user starts it, under
``python -m sensor run --`` (gunicorn with 2 workers, uvicorn with 2 workers), and the
services' own tests run in a subprocess ``pytest --runtime-probe`` against that hub. Nothing of
ours is imitated.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hub_process import CLIENT_TOKEN, SENSOR_TOKEN, call

SERVICES = Path(__file__).resolve().parent / "services"
VENDOR = SERVICES / "vendor"

#: Waits are "until" conditions that return as soon as they hold; the scale only matters on a
#: slow machine (the same knob as tests/integration/agent_support.py).
WAIT_SCALE = float(os.environ.get("PYTEST_RUNTIME_TEST_WAIT_SCALE", "3"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(what: str, predicate: Callable[[], Any], timeout: float) -> Any:
    """Poll ``predicate`` until it returns something true; AssertionError naming ``what``."""
    deadline = time.monotonic() + timeout * WAIT_SCALE
    last: object = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # not up yet: keep the reason for the message
            last = exc
        else:
            if value:
                return value
            last = value
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what} (last: {last!r})")


def clean_env(**extra: str) -> dict[str, str]:
    """The parent's environment without any sensor, plugin or xdist setting leaking in."""
    prefixes = ("SENSOR_", "PYTEST_RUNTIME_", "PYTEST_ADDOPTS", "PYTEST_XDIST", "PYTEST_PLUGINS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.pop("COV_CORE_SOURCE", None)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the services run from the source tree
    inherited = os.environ.get("PYTHONPATH")
    env.update(extra)
    if "PYTHONPATH" in extra and inherited:
        # Kept after the services' own paths: running the suite with PYTHONPATH set to
        # another checkout of the code (the old code, to see a case fail) reaches every process.
        env["PYTHONPATH"] = os.pathsep.join([extra["PYTHONPATH"], inherited])
    return env


def sensor_env(hub: str, service: str) -> dict[str, str]:
    """A deployment's settings: the sensor's defaults (CPU budget included), quick intervals."""
    return clean_env(
        SENSOR_HUB_URL=hub,
        SENSOR_TOKEN=SENSOR_TOKEN,
        SENSOR_SERVICE=service,
        SENSOR_FLUSH_INTERVAL="0.2",
        SENSOR_HEARTBEAT_INTERVAL="1",
        SENSOR_POLL_WAIT="1",
        PYTHONPATH=os.pathsep.join([str(SERVICES), str(VENDOR)]),
        PYTHONWARNINGS="ignore::DeprecationWarning",  # 3.12+: a fork of a threaded master
    )


class Service:
    """One service under ``python -m sensor run --``, in its own process group."""

    def __init__(self, name: str, command: list[str], hub: str, workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        argv = [sys.executable, "-m", "sensor", "run", "--", sys.executable, "-m", *command]
        argv = [part.replace("{port}", str(self.port)) for part in argv]
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                argv,
                cwd=workdir,
                env=sensor_env(hub, name),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, hub: str, sources: int) -> None:
        """Until it answers and ``sources`` sensors of it are live on the hub."""
        wait_until(f"{self.name} to answer ({self.log()})", self._healthy, 20)
        wait_until(
            f"{sources} live sources of {self.name}",
            lambda: len(live_sources(hub, self.name)) >= sources,
            20,
        )

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited {self.proc.returncode}: {self.log()}")
        with urllib.request.urlopen(self.url + "/health", timeout=5) as response:
            return bool(json.loads(response.read())["ok"])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


def gunicorn(hub: str, workdir: Path) -> Service:
    """The ledger (WSGI) under gunicorn, 2 sync workers."""
    return Service(
        "acc-ledger",
        [
            "gunicorn", "--workers", "2", "--bind", "127.0.0.1:{port}",
            "--graceful-timeout", "3", "--log-level", "warning",
            "--control-socket", str(workdir / "gunicorn.ctl"),
            "acc_ledger.app:app",
        ],
        hub,
        workdir,
    )  # fmt: skip


def uvicorn(hub: str, workdir: Path) -> Service:
    """The profile service (ASGI) under uvicorn, 2 worker processes."""
    return Service(
        "acc-profiles",
        [
            "uvicorn", "acc_profiles.app:app", "--workers", "2",
            "--host", "127.0.0.1", "--port", "{port}",
            "--lifespan", "off", "--log-level", "warning",
        ],
        hub,
        workdir,
    )  # fmt: skip


def live_sources(hub: str, service: str) -> list[dict[str, Any]]:
    status, body = call(hub, "GET", f"/v1/sources?service={service}&state=live", CLIENT_TOKEN)
    assert status == 200, body
    sources: list[dict[str, Any]] = body["sources"]
    return sources


def run_suite(
    hub: str, out: Path, *args: str, wait: float, min_hits: int, timeout: float = 150
) -> dict[str, Any]:
    """The services' own tests, as CI runs them: ``pytest --runtime-probe`` against the hub.

    ``--continue-on-collection-errors``: a marker the plugin rejects is a collection error of
    its module, and one such case must not hide the verdicts of every other case.
    ``--runtime-since 0s``: each run judges the evidence its own probes collected, so the runs
    are independent measurements of the same traffic (and their verdicts must agree).
    """
    out.mkdir(parents=True, exist_ok=True)
    report, junit = out / "report.json", out / "junit.xml"
    argv = [
        sys.executable, "-m", "pytest", "--continue-on-collection-errors", "-rA",
        "--runtime-probe", "--runtime-hub", hub,
        "--runtime-wait", str(wait), "--runtime-min-hits", str(min_hits), "--runtime-since", "0s",
        "--runtime-report-json", str(report), "--junitxml", str(junit),
        *args,
    ]  # fmt: skip
    # The client token under its name for the plugin and the CLI, and under the plugin's
    # former name for code that predates it.
    env = clean_env(
        SENSOR_CLIENT_TOKEN=CLIENT_TOKEN,
        PYTEST_RUNTIME_TOKEN=CLIENT_TOKEN,
        PYTHONPATH=str(SERVICES),
    )
    began = time.monotonic()
    proc = subprocess.run(
        argv, cwd=SERVICES, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    return {
        "returncode": proc.returncode,
        "output": proc.stdout + proc.stderr,
        "seconds": round(time.monotonic() - began, 1),
        "report": json.loads(report.read_text()) if report.exists() else None,
        "testcases": read_junit(junit) if junit.exists() else [],
    }


def read_junit(path: Path) -> list[dict[str, str]]:
    """Each test case: module, name, outcome (passed, failed, error, skipped) and message."""
    cases = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            child = case.find(tag)
            if child is not None:
                outcome = "failed" if tag == "failure" else tag
                message = (child.get("message") or "") + "\n" + (child.text or "")
                break
        cases.append(
            {
                "module": case.get("classname") or "",
                "name": case.get("name") or "",
                "outcome": outcome,
                "message": message,
            }
        )
    return cases


@contextlib.contextmanager
def stopping(*things: Any) -> Iterator[None]:
    """Stop every thing (last started first) on the way out, whatever happened."""
    try:
        yield
    finally:
        for thing in reversed(things):
            try:
                thing.stop()
            except Exception as exc:  # keep stopping the others
                print(f"stopping {thing!r} failed: {exc}", file=sys.stderr)
