"""The first-probe tutorial followed to the letter: its files and commands, read from the page.

Every file and every ``$`` command of ``docs/tutorial/first-probe.md`` is taken from the page in
page order and run with real processes: the hub, gunicorn under the sensor and the traffic
script as background terminals, every other command in one shell whose ``export`` lines carry
over. The verdict, publish and summary lines the page shows must be in the real output, so the
page cannot drift from what the product prints. Three things differ from a reader's run, each
for a reason: the install block is skipped (this interpreter has the checkout installed), the
two ports are free ones (three Pythons run this at once), and "give it a minute" is a wait until
every standing probe has 40 hits (about 40 s: see _standing_ready).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_runtime.hub import HubClient

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "tutorial" / "first-probe.md"

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

BLOCK = re.compile(r'^( *)```(\w+)(?: title="([^"]*)")?\n(.*?)^\1```', re.M | re.S)
HIT_ID = re.compile(r"\b[0-9a-f]{8}-\d+\b")
#: lines of a command's output that must match the page: what the reader is told to look at
KEY_LINES = (
    re.compile(r"^(VIOLATED|DIVERGED|INCONCLUSIVE|OK) (\S+)  (\S+)"),
    re.compile(r"^runtime probes: .*"),
    re.compile(r"^runtime publish.*: (\d+ (would )?placed?.*)$"),
    re.compile(r"^  (placed|kept|retired|would place|would keep)  (\S+)"),
    re.compile(r"(\d+ probe\(s\) read at once \(no wait\)).*(; \d+ probe\(s\) placed on demand)"),
    re.compile(r"^runtime: waiting for production hits: \d+(/\d+ probes) complete"),
    re.compile(r"^recorded \d+ hit\(s\) to (\S+ \(record mode \w+\))"),
    re.compile(r"^runtime: evidence from (\d+ path\(s\): \d+ probe signature\(s\))"),
    re.compile(r"(\d+ passed)"),
    re.compile(r"^standing-\S+ +(\w+) +(\w+) +(\S+)"),  # python -m sensor probe list
    re.compile(r"^test (\S+): probe\(s\) (standing)-"),  # python -m sensor hits TEST
    re.compile(r"^ +(location|expect) +(\S+)$"),  # python -m sensor hits HIT
)


def blocks(text: str) -> Iterator[tuple[str, str, str]]:
    """(language, title, body) of every fenced block, in page order, dedented."""
    for match in BLOCK.finditer(text):
        indent = len(match.group(1))
        body = "".join(line[indent:] for line in match.group(4).splitlines(keepends=True))
        yield match.group(2), match.group(3) or "", body


def commands(body: str) -> list[tuple[str, str]]:
    """(command, the output the page shows for it) of a console block."""
    found: list[tuple[str, list[str]]] = []
    continued = False
    for line in body.splitlines():
        if continued:
            found[-1] = (found[-1][0] + "\n" + line, found[-1][1])
        elif line.startswith("$ "):
            found.append((line[2:], []))
        elif found:
            found[-1][1].append(line)
        continued = line.endswith("\\")
    return [(command, "\n".join(output)) for command, output in found]


def key_lines(output: str) -> set[str]:
    keys = set()
    for line in output.splitlines():
        for pattern in KEY_LINES:
            match = pattern.search(line)
            if match:
                parts = match.groups() or (match.group(0),)  # no group: the whole line
                keys.add(pattern.pattern + "|" + "|".join(g or "" for g in parts))
    return keys


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Any, timeout: float, what: str, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    tails = "\n".join(f"--- {log}\n{log.read_text()[-3000:]}" for log in logs if log.exists())
    raise AssertionError(f"timed out waiting for {what}\n{tails}")


def test_the_tutorial_runs_as_written(tmp_path: Path) -> None:
    hub_port, app_port = free_port(), free_port()

    def local(text: str) -> str:
        return text.replace("8765", str(hub_port)).replace("8000", str(app_port))

    page = local(PAGE.read_text(encoding="utf-8"))
    work = tmp_path / "shop"
    work.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTEST_", "SENSOR_", "COV_CORE_")) and k != "PYTHONPATH"
    }
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTEST_ADDOPTS"] = "-p no:cacheprovider"  # no .pytest_cache in the tutorial's dir
    background: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    last_output = ""
    ran = 0
    try:
        for language, title, body in blocks(page):
            if language == "python" and title:
                (work / title).write_text(body, encoding="utf-8")
                continue
            if language != "console" or title == "install":
                continue  # the install block: this interpreter has the checkout installed
            for command, shown in commands(body):
                if title.startswith("terminal "):
                    log = tmp_path / f"{title.split(':')[0].replace(' ', '-')}.log"
                    logs.append(log)
                    with log.open("wb") as sink:
                        background.append(
                            subprocess.Popen(
                                command, shell=True, cwd=work, env=env, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True,
                            )
                        )  # fmt: skip
                    if "sensor hub" in command:
                        wait_for(
                            lambda log=log: "listening on" in log.read_text(), 30, "the hub", logs
                        )
                    elif "sensor run" in command:
                        wait_for(lambda: _sources(hub_port), 60, "the service's sensor", logs)
                    elif "traffic.py" in command:
                        # "give the standing probes a minute": until each has hits, and a
                        # heartbeat of the sensor (every 10 s) has counted the calls
                        wait_for(lambda: _standing_ready(hub_port), 120, "standing hits", logs)
                    continue
                if command.startswith("export "):
                    for pair in command.split()[1:]:
                        name, _, value = pair.partition("=")
                        env[name] = value
                    continue
                hit = HIT_ID.search(last_output.partition("production hit ")[2])
                if HIT_ID.search(command) and hit:
                    command = HIT_ID.sub(hit.group(0), command)  # the reader's own hit id
                result = subprocess.run(
                    command, shell=True, cwd=work, env=env, capture_output=True, text=True,
                    timeout=120, check=False,
                )  # fmt: skip
                output = result.stdout + result.stderr
                last_output = output if "production hit " in output else last_output
                ran += 1
                assert result.returncode in (0, 1), f"$ {command}\n{output[-4000:]}"
                missing = key_lines(shown) - key_lines(output)
                assert not missing, (
                    f"$ {command}\nthe page shows lines the real output does not have:\n"
                    + "\n".join(sorted(missing))
                    + f"\n--- real output\n{output[-6000:]}"
                )
    finally:
        for process in reversed(background):
            if process.poll() is None:
                os.killpg(process.pid, 15)
        for process in background:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
    assert ran >= 10  # every step's commands ran, not an empty extraction


def _client(hub_port: int) -> HubClient:
    return HubClient(f"http://127.0.0.1:{hub_port}", "cl1ent")


def _sources(hub_port: int) -> bool:
    client = _client(hub_port)
    try:
        return bool(client.sources(service="shop"))
    except Exception:  # the hub refuses until it is ready: keep polling
        return False
    finally:
        client.close()


def _standing_ready(hub_port: int) -> bool:
    """Every standing probe has 40 hits and counted calls.

    "A minute" on the page; 40 hits is 40 s of a probe that captures one passing hit a second.
    A sample that small must still hold the page's rare state: `JP` on 1 request in 5 is missing
    from 40 captured hits with a chance of 0.8 ** 40 (1 in 7,500); from 12, 1 in 15.
    """
    client = _client(hub_port)
    try:
        probes = client.list_probes(state="active", standing=True)
    finally:
        client.close()

    def counted(probe: dict[str, Any]) -> bool:
        statuses = probe.get("statuses") or {}
        return any(int(st.get("hits") or 0) > 0 for st in statuses.values())

    return bool(probes) and all(int(p.get("hit_count") or 0) >= 40 and counted(p) for p in probes)
