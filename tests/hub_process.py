"""Start a real ``python -m sensor hub`` process on a free loopback port.

Shared by the hub, agent and plugin test suites (``tests`` is on ``pythonpath``).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Any

ADMIN_TOKEN = "hub-admin-token"
SENSOR_TOKEN = "hub-sensor-token"
CLIENT_TOKEN = "hub-client-token"


class HubProcess:
    """One hub process; :meth:`start` waits for the URL it prints, :meth:`stop` ends it."""

    def __init__(self, db: Path, *extra: str, env: dict[str, str] | None = None) -> None:
        self.db = db
        self.extra = list(extra)
        self.env = dict(env or {})  # SENSOR_HUB_* settings that have no flag
        self.proc: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self, timeout: float = 20.0) -> HubProcess:
        command = [
            sys.executable,
            "-m",
            "sensor",
            "hub",
            "--port",
            "0",
            "--db",
            str(self.db),
            "--admin-token",
            ADMIN_TOKEN,
            "--sensor-token",
            SENSOR_TOKEN,
            "--client-token",
            CLIENT_TOKEN,
            *self.extra,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
        env.update(self.env)
        # stderr goes to a file: a pipe nobody reads could fill up and stall the hub
        self.stderr_path = self.db.with_suffix(".stderr")
        with open(self.stderr_path, "a", encoding="utf-8") as stderr:
            self.proc = subprocess.Popen(
                command, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env
            )
        line = _read_line(self.proc.stdout, timeout)
        if not line.startswith("sensor hub listening on "):
            self.stop()
            raise RuntimeError(f"the hub did not start: {line!r} {self.stderr()}")
        self.url = line.rsplit(" ", 1)[1].strip()
        return self

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8")

    def stop(self, kill: bool = False) -> int:
        proc = self.proc
        if proc is None:
            return 0
        if proc.poll() is None:
            if kill:
                proc.kill()
            else:
                proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
        self.proc = None
        return proc.returncode


def _read_line(stream: IO[str] | None, timeout: float) -> str:
    assert stream is not None
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True)
    reader.start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return ""


def call(
    url: str,
    method: str,
    path: str,
    token: str | None,
    body: Any = None,
    timeout: float = 15.0,
) -> tuple[int, Any]:
    """One plain HTTP call, as a sensor written in any language would make it."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url + path, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())
