"""Redaction rules set on a real hub reach a running service's sensor without a restart.

Real processes only: ``python -m sensor hub``, a WSGI service under ``python -m sensor run --``,
and the admin's ``python -m sensor redaction set``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from agent_support import (
    Cleanup,
    all_hits,
    cleanup,
    installed_sources,
    sensor_env,
    service_name,
    wait_until,
)
from hub_process import ADMIN_TOKEN, CLIENT_TOKEN, SENSOR_TOKEN, HubProcess

from sensor.client import HubClient

pytestmark = pytest.mark.integration
__all__ = ["cleanup"]

APP_MODULE = "redaction_push_app"
APP = textwrap.dedent(
    """
    import json
    import os
    from urllib.parse import parse_qs

    if os.environ.get("AGENT_TEST_NO_CPU_BUDGET"):  # see agent_support.APP
        from sensor.engine import get_engine

        get_engine()._budget.fraction = 1.0


    def greet(user_id, nickname, order):
        message = "hello " + nickname
        return message


    def app(environ, start_response):
        query = parse_qs(environ.get("QUERY_STRING", ""))
        user_id = int(query.get("user", ["1"])[0])
        text = greet(user_id, query.get("nickname", ["Zed"])[0], query.get("order", ["-"])[0])
        body = json.dumps({"message": text, "pid": os.getpid()}).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]
    """
)
# The entry script imports the app, so that the probe's module is a real module (not __main__).
SERVE = textwrap.dedent(
    f"""
    import os
    import sys
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from {APP_MODULE} import app


    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass


    if __name__ == "__main__":
        server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
        with open(sys.argv[1] + ".part", "w") as handle:
            handle.write(str(server.server_port))
        os.replace(sys.argv[1] + ".part", sys.argv[1])
        server.timeout = 0.2
        while not os.path.exists(sys.argv[2]):  # the test creates it to stop the service
            server.handle_request()
    """
)


class Service:
    """The app under ``python -m sensor run --``; :meth:`stop` asks it to end and waits."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        (workdir / f"{APP_MODULE}.py").write_text(APP)
        (workdir / "serve.py").write_text(SERVE)
        port_file, self.stop_file = workdir / "port", workdir / "stop"
        self.log_path = workdir / "service.log"
        command = [
            sys.executable, "-m", "sensor", "run", "--",
            sys.executable, "serve.py", str(port_file), str(self.stop_file),
        ]  # fmt: skip
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(
                command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT
            )
        if not wait_until(port_file.exists, 20):
            self.stop()
            raise AssertionError(f"the service did not start: {self.log()}")
        self.url = f"http://127.0.0.1:{port_file.read_text()}"

    def log(self) -> str:
        return self.log_path.read_text()[-3000:]

    def get(self, user: int, nickname: str, order: str = "-") -> dict[str, Any]:
        query = urllib.parse.urlencode({"user": user, "nickname": nickname, "order": order})
        with urllib.request.urlopen(f"{self.url}/?{query}", timeout=10) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data

    def stop(self) -> None:
        self.stop_file.touch()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def admin_cli(hub: HubProcess, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
    env.update(PYTEST_RUNTIME_HUB=hub.url, SENSOR_CLIENT_TOKEN=ADMIN_TOKEN)
    return subprocess.run(
        [sys.executable, "-m", "sensor", "redaction", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def captures_of(client: HubClient, probe_id: str, user: int) -> dict[str, Any]:
    """The captures of the hit for request ``user`` (each request has its own user id)."""
    (hit,) = [h for h in all_hits(client, probe_id) if h["captures"]["user_id"] == user]
    captures: dict[str, Any] = hit["captures"]
    return captures


def test_rules_set_through_the_hub_redact_new_hits_without_a_restart(
    tmp_path: Path, cleanup: Cleanup
) -> None:
    hub = cleanup.add(HubProcess(tmp_path / "hub.db", "--poll-wait", "20").start())
    client = HubClient(hub.url, CLIENT_TOKEN, timeout=10)
    service = service_name()
    env = sensor_env(hub.url, service, SENSOR_TOKEN=SENSOR_TOKEN)
    app = cleanup.add(Service(tmp_path, env))
    assert wait_until(lambda: len(client.sources(service=service)) == 1, 15), app.log()
    probe = client.place_probe(
        {
            "kind": "snapshot",
            "location": f"{APP_MODULE}:greet",
            "capture": ["user_id", "nickname", "order"],
            "limits": {"rate": 1000.0, "burst": 1000},
        },
        selector={"service": service},
        ttl=120,
    )
    assert wait_until(lambda: installed_sources(client, probe["id"]) != [], 15), app.log()

    # before: the nickname and the order number leave the service as they are
    pid = app.get(1, "Zed", "ORD-123456")["pid"]
    assert wait_until(lambda: len(all_hits(client, probe["id"])) == 1, 10)
    assert captures_of(client, probe["id"], 1) == {
        "user_id": 1,
        "nickname": "Zed",
        "order": "ORD-123456",
    }

    # an admin sets rules through the hub; the sensor's held long poll answers at once
    result = admin_cli(hub, "set", "--name", "nickname", "--pattern", r"\bORD-[0-9]{6}\b")
    assert result.returncode == 0, result.stderr
    assert "'nickname'" in result.stdout

    # after: new hits carry redacted markers that keep the type and length class
    users = iter(range(2, 1000))
    sent: list[int] = []

    def a_new_hit_is_redacted() -> bool:
        user = next(users)
        sent.append(user)
        assert app.get(user, "Zed", "ORD-654321")["pid"] == pid
        arrived = wait_until(
            lambda: user in {h["captures"]["user_id"] for h in all_hits(client, probe["id"])}, 5
        )
        return arrived and isinstance(captures_of(client, probe["id"], user)["nickname"], dict)

    assert wait_until(a_new_hit_is_redacted, 10, interval=0.1), app.log()
    user = sent[-1]
    captures = captures_of(client, probe["id"], user)
    assert captures["user_id"] == user
    assert captures["nickname"] == {"@t": "str", "@redacted": "name", "@len": "1-8"}
    assert captures["order"]["@t"] == "str"
    assert captures["order"]["@redacted"] == "pattern"
    assert len(sent) <= 3, f"the rules took {len(sent)} requests to arrive"
    assert "Zed" not in json.dumps(captures)
    assert "ORD-654321" not in json.dumps(all_hits(client, probe["id"]))

    # the same process served every request: no restart
    assert app.get(99, "Zed")["pid"] == pid
    assert app.proc.poll() is None
    shown = admin_cli(hub, "show", "--json")
    assert shown.returncode == 0, shown.stderr
    rules = json.loads(shown.stdout)["redaction"]
    assert rules["names"] == ["nickname"]
    assert rules["updated_by"] == "admin (from start-up)"


def test_redaction_cli_refuses_bad_rules_and_wrong_tokens_in_one_line(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "hub.db").start()
    try:
        nothing = admin_cli(hub, "set")
        assert nothing.returncode == 1
        assert nothing.stderr.startswith("error: redaction set: expected --name")
        bad = admin_cli(hub, "set", "--pattern", "(a+)+")
        assert bad.returncode == 1
        (line,) = bad.stderr.strip().splitlines()
        assert "patterns[0]" in line
        assert "/v1/redaction failed with 422: redaction rule patterns[0]" in line
        env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
        as_client = subprocess.run(
            [sys.executable, "-m", "sensor", "redaction", "set", "--name", "nickname"],
            capture_output=True,
            text=True,
            env={**env, "PYTEST_RUNTIME_HUB": hub.url, "SENSOR_CLIENT_TOKEN": CLIENT_TOKEN},
            timeout=60,
        )
        assert as_client.returncode == 1
        assert "refused PUT /v1/redaction with 403" in as_client.stderr
        assert "a token with the admin scope" in as_client.stderr
        shown = admin_cli(hub, "show")
        assert shown.returncode == 0, shown.stderr
        assert "names: (none)" in shown.stdout
        assert "never set on this hub" in shown.stdout
        assert admin_cli(hub, "set", "--allow", "session").returncode == 0
        cleared = admin_cli(hub, "set", "--clear", "--json")
        assert cleared.returncode == 0, cleared.stderr
        rules = json.loads(cleared.stdout)["redaction"]
        assert (rules["names"], rules["patterns"], rules["allow"]) == ([], [], [])
        assert rules["updated_at"] is not None
    finally:
        hub.stop()
