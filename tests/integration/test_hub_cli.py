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
    env = _clean_env()
    if url is not None:
        env["PYTEST_RUNTIME_HUB"] = url
    if token is not None:
        env["SENSOR_CLIENT_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "sensor", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        timeout=60,
    )


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SENSOR_", "PYTEST_RUNTIME_"))}


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
        "--wait",
        "1",
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
    assert "amount=2" in table.stdout
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
    # --wait 0: the module's hub has sources that earlier tests registered and that never report
    # a status, so the default wait for them (10 s) would be all this test's time
    added = cli("probe", "add", "--spec", "-", "--json", "--wait", "0", url=hub.url, stdin=spec)
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
    env = _clean_env()
    env |= {"PYTEST_RUNTIME_HUB": hub.url, "SENSOR_CLIENT_TOKEN": CLIENT_TOKEN}
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
    assert message.startswith("error: hub http://127.0.0.1:9 cannot be reached")
    assert "check --hub or PYTEST_RUNTIME_HUB and that the hub is running" in message


@pytest.mark.parametrize("how", ["--db", "SENSOR_HUB_DB", "SENSOR_HUB_DB_FILE"])
@pytest.mark.parametrize("url", ["mysql://x/y", "mysql:/x/y", "postgres:/hub"])
def test_hub_refuses_an_unsupported_database_url_and_creates_no_file(
    tmp_path: Path, how: str, url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
    args = [sys.executable, "-m", "sensor", "hub", "--port", "0"]
    if how == "--db":
        args += ["--db", url]
    elif how == "SENSOR_HUB_DB":
        env["SENSOR_HUB_DB"] = url
    else:
        (tmp_path / "secret").write_text(url + "\n", encoding="utf-8")
        env["SENSOR_HUB_DB_FILE"] = str(tmp_path / "secret")
    result = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    message = _one_line_error(result)
    scheme = url.split(":", 1)[0]
    assert f"scheme {scheme!r}" in message
    assert "postgresql://" in message
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == (["secret"] if how.endswith("FILE") else [])


def test_hub_refuses_to_start_on_a_database_a_newer_hub_migrated(tmp_path: Path) -> None:
    import sqlite3
    from contextlib import closing

    from sensor.hub.store import open_store

    open_store(tmp_path / "hub.db").close()
    with closing(sqlite3.connect(tmp_path / "hub.db")) as conn, conn:
        (known,) = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        conn.execute("INSERT INTO schema_version VALUES (?, 0, 'from the future')", (known + 1,))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
    result = subprocess.run(
        [sys.executable, "-m", "sensor", "hub", "--port", "0", "--db", str(tmp_path / "hub.db")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    message = _one_line_error(result)
    assert f"schema version {known + 1} is newer than this hub's {known}" in message
    with closing(sqlite3.connect(tmp_path / "hub.db")) as conn:  # and it changed nothing
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (known + 1,)


def test_wrong_token_is_one_line_401(hub: HubProcess) -> None:
    message = _one_line_error(cli("probe", "list", url=hub.url, token="not-a-token"))
    assert "refused GET /v1/probes with 401: bearer token: unknown or removed token" in message
    assert "set --token or SENSOR_CLIENT_TOKEN to a token with the client scope" in message


def test_wrong_scope_is_one_line_403(hub: HubProcess) -> None:
    message = _one_line_error(cli("token", "list", url=hub.url, token=CLIENT_TOKEN))
    assert "refused GET /v1/tokens with 403" in message
    assert "set --token or SENSOR_CLIENT_TOKEN to a token with the admin scope" in message


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


# -- one language with the plugin: tokens, ids, times; readable and escaped output ----------


def _place(hub: HubProcess, location: str, service: str, tags: dict[str, str] | None = None) -> Any:
    body = {
        "probe": {"kind": "snapshot", "location": location, "tags": tags or {}},
        "selector": {"service": service},
        "ttl": 300,
    }
    status, answer = call(hub.url, "POST", "/v1/probes", CLIENT_TOKEN, body)
    assert status == 201, answer
    return answer["probe"]


def _post(hub: HubProcess, source_id: str, record: Any, hits: list[dict[str, Any]]) -> None:
    for n, hit in enumerate(hits):
        hit.setdefault("hit_id", f"{n:08x}-{n + 1}")
        hit.setdefault("ts", time.time() - 10 + n * 0.01)
        hit |= {
            "probe_id": record["id"],
            "signature": record["signature"],
            "kind": "snapshot",
            "location": record["probe"]["location"],
        }
    status, answer = call(
        hub.url, "POST", f"/v1/sensors/{source_id}/hits", SENSOR_TOKEN, {"hits": hits}
    )
    assert status == 200, answer


@pytest.fixture(scope="module")
def stocked(hub: HubProcess) -> dict[str, Any]:
    """A probe placed the way pytest --runtime-probe places it, with typed hits."""
    source_id = _register(hub, service="stock", pid=77)
    record = _place(
        hub,
        "stock.levels:reorder@return",
        "stock",
        tags={
            "placed_by": "pytest-runtime",
            "tests": json.dumps(["tests/test_stock.py::test_reorder"]),
        },
    )
    _post(
        hub,
        source_id,
        record,
        [
            {
                "hit_id": "5eed0001-1",
                "captures": {"price": {"@t": "decimal.Decimal", "v": "12.50"}, "qty": 3},
            },
            {
                "hit_id": "5eed0001-2",
                "captures": {"price": {"@t": "decimal.Decimal", "v": "0"}, "qty": 0},
                "exception": {"type": "stock.errors.OutOfStock", "message": "sku 42 is gone"},
            },
            {"hit_id": "5eed0001-3", "captures": {"note": "\x1b[2J\x1b[31mred\u202eevil\r"}},
        ],
    )
    return record


@pytest.mark.parametrize(
    "how", ["probe id", "signature", "location", "short location", "test", "test case"]
)
def test_hits_takes_what_the_reports_print(hub: HubProcess, stocked: Any, how: str) -> None:
    target = {
        "probe id": stocked["id"],
        "signature": stocked["signature"],
        "location": "stock.levels:reorder@return",
        "short location": "stock.levels:reorder",
        "test": "tests/test_stock.py::test_reorder",
        "test case": "tests/test_stock.py::test_reorder[3-True]",
    }[how]
    result = cli("hits", target, url=hub.url)
    assert result.returncode == 0, result.stderr
    assert "5eed0001-1" in result.stdout
    assert "5eed0001-3" in result.stdout


def test_hits_prints_decoded_values_and_the_exception_type(hub: HubProcess, stocked: Any) -> None:
    table = cli("hits", stocked["id"], url=hub.url).stdout
    row1 = next(line for line in table.splitlines() if "5eed0001-1" in line)
    assert "price=Decimal('12.50'), qty=3" in row1
    assert '"@t"' not in table
    row2 = next(line for line in table.splitlines() if "5eed0001-2" in line)
    assert "raised stock.errors.OutOfStock: 'sku 42 is gone'" in row2


def test_a_hit_id_shows_that_hit_in_full(hub: HubProcess, stocked: Any) -> None:
    result = cli("hits", "5eed0001-2", url=hub.url)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"hit 5eed0001-2 of probe {stocked['id']}"
    assert "  raised    stock.errors.OutOfStock: 'sku 42 is gone'" in lines
    assert "  price = Decimal('0')" in lines
    assert "  source    stock@web-1:77" in lines


def test_hub_data_never_reaches_the_terminal_raw(hub: HubProcess, stocked: Any) -> None:
    for args in (["hits", stocked["id"]], ["hits", "5eed0001-3"]):
        out = cli(*args, url=hub.url).stdout
        assert "\x1b" not in out
        assert "\u202e" not in out
        assert "\r" not in out
        assert "\\x1b[2J\\x1b[31mred\\u202eevil\\r" in out


def test_a_hit_id_with_its_probe_is_one_read(hub: HubProcess, stocked: Any) -> None:
    result = cli("hits", "5eed0001-2", "--probe", stocked["id"], "--json", url=hub.url)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["probe"]["id"] == stocked["id"]
    assert shown["hit"]["exception"]["type"] == "stock.errors.OutOfStock"
    message = _one_line_error(cli("hits", "5eed0001-9", "--probe", stocked["id"], url=hub.url))
    assert f"probe '{stocked['id']}' has no hit '5eed0001-9'" in message


def test_a_hit_id_is_found_on_an_older_probe(tmp_path: Path) -> None:
    # The hit's probe is older than 60 others: reading a few hundred pages of hits was the
    # old way (it stopped at the 50 newest probes); one small read per probe reaches it.
    process = HubProcess(tmp_path / "hub.db").start()
    try:
        source_id = _register(process, service="old")
        record = _place(process, "old.mod:f", "old")
        _post(process, source_id, record, [{"hit_id": "01dc0de0-1", "captures": {"x": 1}}])
        for n in range(60):
            _place(process, f"old.mod:g{n}", "old")
        result = cli("hits", "01dc0de0-1", url=process.url)
    finally:
        process.stop()
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"hit 01dc0de0-1 of probe {record['id']}"


def test_an_unknown_hits_target_says_what_it_tried(hub: HubProcess) -> None:
    message = _one_line_error(cli("hits", "0badc0de-999999", url=hub.url))
    assert "no probe id, signature, location or test matches '0badc0de-999999'" in message
    assert "no hit with that id" in message


@pytest.mark.parametrize("since", ["1h", "90m", "2d", "2020-01-01T00:00:00Z", "1700000000"])
def test_hits_since_takes_the_plugins_times(hub: HubProcess, stocked: Any, since: str) -> None:
    result = cli("hits", stocked["id"], "--since", since, url=hub.url)
    assert result.returncode == 0, result.stderr
    assert "5eed0001-1" in result.stdout


def test_hits_since_refuses_garbage_naming_the_forms(hub: HubProcess, stocked: Any) -> None:
    result = cli("hits", stocked["id"], "--since", "yesterday", url=hub.url)
    assert result.returncode == 2
    assert "got 'yesterday', expected a duration (90s, 30m, 2h, 1d, 1w), an ISO time" in (
        result.stderr
    )
    future = cli("hits", stocked["id"], "--since", "2099-01-01", url=hub.url)
    assert "(none)" in future.stdout


def test_the_client_token_has_one_name_and_the_old_one_warns(hub: HubProcess) -> None:
    env = _clean_env()
    env["PYTEST_RUNTIME_HUB"] = hub.url
    command = [sys.executable, "-m", "sensor", "sources"]
    old = subprocess.run(
        command, env=env | {"SENSOR_TOKEN": CLIENT_TOKEN}, capture_output=True, text=True
    )
    assert old.returncode == 0, old.stderr
    assert old.stderr.startswith("warning: SENSOR_TOKEN is deprecated as the CLI's token: set ")
    new = subprocess.run(
        command,
        env=env | {"SENSOR_CLIENT_TOKEN": CLIENT_TOKEN, "SENSOR_TOKEN": SENSOR_TOKEN},
        capture_output=True,
        text=True,
    )
    assert new.returncode == 0, new.stderr  # the client token wins over a sensor token
    assert new.stderr == ""


def test_the_hub_variable_is_the_plugins_and_the_old_one_warns_once(hub: HubProcess) -> None:
    # PYTEST_RUNTIME_HUB is what the plugin, the MCP server and the how-to pages export: the CLI
    # must reach the same hub from it, not fall back to 127.0.0.1:8765 without a word.
    env = _clean_env() | {"SENSOR_CLIENT_TOKEN": CLIENT_TOKEN}
    command = [sys.executable, "-m", "sensor", "sources", "--json"]
    new = subprocess.run(
        command, env=env | {"PYTEST_RUNTIME_HUB": hub.url}, capture_output=True, text=True
    )
    assert new.returncode == 0, new.stderr
    assert new.stderr == ""
    assert "sources" in json.loads(new.stdout)
    old = subprocess.run(
        command, env=env | {"SENSOR_HUB_URL": hub.url}, capture_output=True, text=True
    )
    assert old.returncode == 0, old.stderr
    warnings = old.stderr.strip().splitlines()
    assert warnings == [
        "warning: SENSOR_HUB_URL is deprecated as the CLI's hub: set PYTEST_RUNTIME_HUB (the hub "
        "pytest --runtime-probe and the MCP server read too); SENSOR_HUB_URL stays the hub of "
        "services' sensors"
    ]
    both = subprocess.run(
        command,
        env=env | {"PYTEST_RUNTIME_HUB": hub.url, "SENSOR_HUB_URL": "http://127.0.0.1:9"},
        capture_output=True,
        text=True,
    )
    assert both.returncode == 0, both.stderr  # the clients' name wins over the services' one
    assert both.stderr == ""


@pytest.mark.parametrize("variable", ["PYTEST_RUNTIME_HUB", "SENSOR_HUB_URL"])
@pytest.mark.parametrize("value", ["", "hub.internal:8765", "htp://127.0.0.1:8765"])
def test_a_blank_or_misspelt_hub_variable_is_an_error_naming_it(variable: str, value: str) -> None:
    env = _clean_env() | {variable: value, "SENSOR_CLIENT_TOKEN": CLIENT_TOKEN}
    result = subprocess.run(
        [sys.executable, "-m", "sensor", "sources"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    message = _one_line_error(result)
    assert message.startswith(f"error: {variable}: got {value!r}, expected an http:// or https://")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SENSOR_HUB_RETENTON", "none", "did you mean SENSOR_HUB_RETENTION? "),
        ("SENSOR_HUB_RETENTION", "", "expected a number of seconds or 'none'"),
        ("SENSOR_HUB_HOST", "", "expected an address to bind"),
        ("SENSOR_HUB_SSL_CERTFILE", " ", "expected the path of a PEM certificate"),
        ("SENSOR_HUB_PORT", "87650", "expected a port number (0-65535)"),
    ],
)
def test_the_hub_refuses_a_misspelt_or_blank_variable_naming_it(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    env = _clean_env() | {variable: value, "SENSOR_HUB_PORT": "0"}
    env[variable] = value
    result = subprocess.run(
        [sys.executable, "-m", "sensor", "hub", "--db", str(tmp_path / "hub.db")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    message = _one_line_error(result)
    assert message.startswith(f"error: {variable}: got {value!r}, ")
    assert expected in message
    assert not (tmp_path / "hub.db").exists()


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("SENSOR_QUEUE_SIZE", "", "expected a positive integer (unset the variable"),
        ("SENSOR_ENABLED", "flase", "expected one of 1, true, yes, on, 0, false, no, off"),
        ("SENSOR_ENABLED", "", "expected one of 1, true, yes, on, 0, false, no, off"),
        ("SENSOR_BACKEND", "bytcode", "expected one of 'hybrid', 'monitoring', 'bytecode'"),
        ("SENSOR_FUNC_VERSION", "nope", "expected one of 1, true, yes, on, 0, false, no, off"),
        ("SENSOR_HUB_URL", "", "expected an http:// or https:// URL"),
    ],
)
def test_sensor_run_refuses_a_blank_or_misspelt_value_naming_it(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    env = _clean_env() | {"SENSOR_HUB_URL": "http://127.0.0.1:9", "SENSOR_TOKEN": "t"}
    env[variable] = value
    result = subprocess.run(
        [sys.executable, "-m", "sensor", "run", "--", sys.executable, "-c", "print('ran')"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result
    assert f"{variable}: got {value!r}, {expected}" in result.stderr
    assert "ran" not in result.stdout


SERVICE_CODE = """
import os, time

def price(amount, rate):
    total = amount * rate
    return total

deadline = time.monotonic() + 60
while not os.path.exists("stop") and time.monotonic() < deadline:
    price(10, 0.5)
    time.sleep(0.01)
"""


@pytest.fixture
def running(hub: HubProcess, tmp_path: Path) -> Iterator[str]:
    """A real process under ``python -m sensor run``, as service 'svc-<n>'; yields the name."""
    service = f"svc-{time.monotonic_ns()}"
    (tmp_path / "svcmod.py").write_text(SERVICE_CODE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
    env |= {
        "SENSOR_HUB_URL": hub.url,
        "SENSOR_TOKEN": SENSOR_TOKEN,
        "SENSOR_SERVICE": service,
        "SENSOR_POLL_WAIT": "1",
        "SENSOR_HEARTBEAT_INTERVAL": "0.5",
        "PYTHONPATH": str(tmp_path),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "sensor", "run", "--", sys.executable, "-c", "import svcmod"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            listed = json.loads(cli("sources", "--service", service, "--json", url=hub.url).stdout)
            if listed["sources"]:
                break
            time.sleep(0.2)
        yield service
    finally:
        (tmp_path / "stop").touch()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def test_probe_add_on_a_missing_function_exits_1_with_the_sensors_reason(
    hub: HubProcess, running: str
) -> None:
    result = cli("probe", "add", "svcmod:nope", "--service", running, url=hub.url)
    assert result.returncode == 1, result
    assert "error on 1 of 1 source(s): not found: " in result.stdout
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: probe ")
    assert "was refused by every matching source that imported its module: not found: " in error
    assert error.endswith("it was removed")


def test_probe_add_on_a_real_function_says_installed(hub: HubProcess, running: str) -> None:
    result = cli("probe", "add", "svcmod:price", "--service", running, url=hub.url)
    assert result.returncode == 0, result.stderr
    assert "installed on 1 of 1 source(s)" in result.stdout


def test_probe_add_with_no_matching_source_says_pending(hub: HubProcess) -> None:
    result = cli("probe", "add", "svcmod:price", "--service", "nobody-runs-this", url=hub.url)
    assert result.returncode == 0, result.stderr
    assert "pending: no live source matches the selector yet" in result.stdout
