"""``python -m sensor run``: environment, bootstrap sitecustomize (chained), exec of the command."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from agent_doubles import FakeHub

from sensor.agent.run import BOOTSTRAP_DIR, build_environment, run_main

RUN = "import sys; from sensor.agent import run_main; sys.exit(run_main(sys.argv[1:]))"

CHILD = textwrap.dedent(
    """
    import json, os, time, sensor
    deadline = time.monotonic() + 5
    while sensor.status()["source_id"] is None and time.monotonic() < deadline:
        time.sleep(0.02)
    status = sensor.status()
    print(json.dumps({"pid": os.getpid(), "state": status["state"],
                      "source_id": status["source_id"],
                      "chained": os.environ.get("CHAINED_MARK")}))
    """
)


def test_environment_puts_the_bootstrap_first_and_maps_options() -> None:
    env = build_environment(
        {"PYTHONPATH": "/app/lib", "SENSOR_LABELS": "a=1"},
        hub="http://h:1",
        service="shop",
        version="9",
        labels=["b=2"],
    )
    assert env["PYTHONPATH"].split(os.pathsep) == [BOOTSTRAP_DIR, "/app/lib"]
    assert (env["SENSOR_HUB_URL"], env["SENSOR_SERVICE"], env["SENSOR_VERSION"]) == (
        "http://h:1",
        "shop",
        "9",
    )
    assert env["SENSOR_LABELS"] == "a=1,b=2"
    assert (Path(BOOTSTRAP_DIR) / "sitecustomize.py").is_file()


def test_no_command_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(["--hub", "http://h:1", "--"]) == 2
    assert "no command" in capsys.readouterr().err


def test_invalid_setting_is_refused_before_exec(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENSOR_QUEUE_SIZE", "many")
    assert run_main(["--hub", "http://h:1", "--", "true"]) == 2
    assert "SENSOR_QUEUE_SIZE: got 'many'" in capsys.readouterr().err


def test_unknown_command_exits_127(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(["--hub", "http://h:1", "--", "no-such-command-xyz"]) == 127
    assert "no-such-command-xyz" in capsys.readouterr().err


def test_run_attaches_the_sensor_to_a_python_child(fake_hub: FakeHub, tmp_path: Path) -> None:
    other = tmp_path / "site"
    other.mkdir()
    # A sitecustomize the service already had: it must still run.
    (other / "sitecustomize.py").write_text("import os\nos.environ['CHAINED_MARK'] = 'yes'\n")
    env = {**os.environ, "PYTHONPATH": str(other), "SENSOR_EXIT_TIMEOUT": "1"}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            RUN,
            "--hub",
            fake_hub.url,
            "--service",
            "script",
            "--label",
            "role=batch",
            "--",
            sys.executable,
            "-c",
            CHILD,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    import json

    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["state"] == "connected"
    assert report["chained"] == "yes"
    assert fake_hub.registrations[0]["service"] == "script"
    assert fake_hub.registrations[0]["labels"] == {"role": "batch"}
    assert fake_hub.registrations[0]["pid"] == report["pid"]
    # The child deregistered at exit (atexit flush).
    assert fake_hub.wait_for(lambda: fake_hub.deregistered == [report["source_id"]])


def test_a_child_without_a_hub_url_still_runs(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
    env["PYTHONPATH"] = BOOTSTRAP_DIR
    result = subprocess.run(
        [sys.executable, "-c", "print('service ran')"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.strip() == "service ran"
    assert "sensor: not started: SENSOR_HUB_URL" in result.stderr


def test_multiprocessing_resource_tracker_is_not_a_source(fake_hub: FakeHub) -> None:
    # uvicorn --workers and multiprocessing start it with `-c "from multiprocessing.resource_tracker
    # import main;main(fd)"`; it runs no application code. The same -c start, made harmless:
    helper = (
        "from multiprocessing.resource_tracker import main; import sensor; "
        "print(sensor.status()['state'])"
    )
    worker = "import sensor, time; time.sleep(0.2); print(sensor.status()['state'])"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
    env |= {"PYTHONPATH": BOOTSTRAP_DIR, "SENSOR_HUB_URL": fake_hub.url, "SENSOR_EXIT_TIMEOUT": "1"}
    states = [
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=30
        ).stdout.strip()
        for code in (helper, worker)
    ]
    assert states[0] == "stopped"
    assert states[1] != "stopped"  # the same bootstrap does start the sensor elsewhere
    assert len(fake_hub.registrations) <= 1
