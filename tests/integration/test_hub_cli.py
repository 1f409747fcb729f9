"""The ``python -m sensor`` client verbs as subprocesses against a real hub process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hub_process import ADMIN_TOKEN, CLIENT_TOKEN, SENSOR_TOKEN, HubProcess, call

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    process = HubProcess(tmp_path_factory.mktemp("cli") / "hub.db").start()
    yield process
    process.stop()


def cli(
    *args: str, url: str | None = None, token: str | None = CLIENT_TOKEN, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
    if url is not None:
        env["SENSOR_HUB_URL"] = url
    if token is not None:
        env["SENSOR_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "sensor", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=60,
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


def _register(hub: HubProcess, **fields: Any) -> str:
    body = {"service": "shop", "host": "web-1", "pid": 7, "python": "3.12.1", **fields}
    status, answer = call(hub.url, "POST", "/v1/sensors/register", SENSOR_TOKEN, body)
    assert status == 200
    source_id: str = answer["source_id"]
    return source_id


def test_sources_prints_a_table_and_json(hub: HubProcess) -> None:
    source_id = _register(hub, labels={"env": "prod"}, version="9.9")
    table = cli("sources", "--service", "shop", url=hub.url)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    assert header.split() == [
        "ID",
        "SERVICE",
        "VERSION",
        "HOST",
        "PID",
        "PYTHON",
        "STATE",
        "LAST",
        "SEEN",
        "LABELS",
    ]
    assert any(row.startswith(source_id[:12]) and "env=prod" in row for row in rows)
    as_json = cli("sources", "--json", "--label", "env=prod", "--hub", hub.url)
    listed = json.loads(as_json.stdout)["sources"]
    assert [s["id"] for s in listed] == [source_id]


def test_probe_add_list_hits_evidence_rm(hub: HubProcess, tmp_path: Path) -> None:
    source_id = _register(hub, service="cart")
    added = cli(
        "probe",
        "add",
        "cart.pricing:total@return",
        "--capture",
        "amount",
        "--capture",
        "len(items)",
        "--service",
        "cart",
        "--max-hits",
        "50",
        "--ttl",
        "300",
        "--json",
        url=hub.url,
    )
    assert added.returncode == 0, added.stderr
    record = json.loads(added.stdout)["probe"]
    assert record["selector"] == {"service": "cart"}
    assert record["probe"]["capture"] == ["amount", "len(items)"]
    assert record["probe"]["limits"]["max_hits"] == 50

    listed = cli("probe", "list", "--state", "active", url=hub.url)
    assert record["id"] in listed.stdout
    assert "cart.pricing:total@return" in listed.stdout

    hits = [
        {
            "probe_id": record["id"],
            "signature": record["signature"],
            "kind": "snapshot",
            "location": "cart.pricing:total@return",
            "ts": time.time(),
            "hit_id": f"c-{n}",
            "captures": {"amount": n},
        }
        for n in range(3)
    ]
    status, _ = call(hub.url, "POST", f"/v1/sensors/{source_id}/hits", SENSOR_TOKEN, {"hits": hits})
    assert status == 200
    table = cli("hits", record["id"], url=hub.url)
    assert table.returncode == 0, table.stderr
    assert "cart@web-1:7" in table.stdout
    assert '{"amount": 2}' in table.stdout
    as_json = json.loads(cli("hits", record["id"], "--all", "--json", url=hub.url).stdout)
    assert [h["hit_id"] for h in as_json["hits"]] == ["c-0", "c-1", "c-2"]

    out = tmp_path / "evidence.jsonl"
    exported = cli("evidence", "export", "--probe", record["id"], "-o", str(out), url=hub.url)
    assert exported.returncode == 0, exported.stderr
    assert "wrote 5 lines" in exported.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["record"] for line in lines] == ["header", "probe", "hit", "hit", "hit"]
    by_signature = cli("evidence", "export", "--signature", record["signature"], url=hub.url)
    assert len(by_signature.stdout.splitlines()) == 5

    removed = cli("probe", "rm", record["id"], url=hub.url)
    assert removed.returncode == 0
    assert f"removed probe {record['id']}" in removed.stdout
    shown = json.loads(cli("probe", "show", record["id"], url=hub.url).stdout)
    assert shown["probe"]["state"] == "removed"


def test_probe_add_reads_a_json_spec_from_stdin(hub: HubProcess) -> None:
    spec = json.dumps({"kind": "log", "location": "shop:f", "template": "x={x}"})
    added = cli("probe", "add", "--spec", "-", "--json", url=hub.url, stdin=spec)
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["probe"]["probe"]["template"] == "x={x}"


def test_token_add_list_rm_with_the_admin_token(hub: HubProcess) -> None:
    added = cli(
        "token", "add", "ci-bot", "--scope", "client", "--json", url=hub.url, token=ADMIN_TOKEN
    )
    assert added.returncode == 0, added.stderr
    created = json.loads(added.stdout)
    assert cli("sources", url=hub.url, token=created["token"]).returncode == 0
    listed = cli("token", "list", url=hub.url, token=ADMIN_TOKEN)
    assert "ci-bot" in listed.stdout
    assert created["token"] not in listed.stdout
    removed = cli("token", "rm", created["id"], url=hub.url, token=ADMIN_TOKEN)
    assert removed.returncode == 0
    message = _one_line_error(cli("sources", url=hub.url, token=created["token"]))
    assert "401" in message


def test_a_reader_that_goes_away_ends_the_command_quietly(hub: HubProcess) -> None:
    # What `python -m sensor sources | head -1` does once head has its line: the pipe closes.
    for n in range(5):
        _register(hub, pid=1000 + n)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
    env |= {"SENSOR_HUB_URL": hub.url, "SENSOR_TOKEN": CLIENT_TOKEN}
    proc = subprocess.Popen(
        [sys.executable, "-m", "sensor", "sources"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # nobody reads: the first write meets a broken pipe
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 141, stderr
    assert stderr == ""


def test_unreachable_hub_is_one_line_and_exit_1() -> None:
    message = _one_line_error(cli("sources", url="http://127.0.0.1:9"))
    assert message.startswith("error: hub http://127.0.0.1:9 is unreachable")


def test_wrong_token_is_one_line_401(hub: HubProcess) -> None:
    message = _one_line_error(cli("probe", "list", url=hub.url, token="not-a-token"))
    assert "unknown or removed token (401 invalid_token)" in message


def test_wrong_scope_is_one_line_403(hub: HubProcess) -> None:
    message = _one_line_error(cli("token", "list", url=hub.url, token=CLIENT_TOKEN))
    assert "403 forbidden" in message


def test_bad_probe_spec_is_one_line(hub: HubProcess) -> None:
    message = _one_line_error(cli("probe", "add", "not a location", url=hub.url))
    assert message.startswith("error: invalid probe: probe field 'location'")
    message = _one_line_error(cli("probe", "add", "m:f", "--kind", "log", url=hub.url))
    assert "template" in message


def test_bad_label_argument_is_one_line(hub: HubProcess) -> None:
    message = _one_line_error(cli("sources", "--label", "novalue", url=hub.url))
    assert "KEY=VALUE" in message


def test_run_hands_over_to_the_agent() -> None:
    result = cli("run")
    assert result.returncode == 2
    assert "no command given" in result.stderr
