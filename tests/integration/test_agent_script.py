"""A plain script under ``python -m sensor run``: its last hits leave at exit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from agent_support import (
    APP,
    APP_MODULE,
    Cleanup,
    HubProcess,
    all_hits,
    cleanup,
    installed_sources,
    place_probe,
    sensor_env,
    service_name,
    wait_until,
)

pytestmark = pytest.mark.integration
__all__ = ["cleanup"]

SCRIPT = textwrap.dedent(
    f"""
    import os, sys, time
    import {APP_MODULE}

    go = sys.argv[1]
    deadline = time.monotonic() + 20
    while not os.path.exists(go) and time.monotonic() < deadline:
        time.sleep(0.02)
    for n in range(int(sys.argv[2])):
        {APP_MODULE}.total(n, 3)
    print("done", flush=True)
    """
)


def test_script_hits_are_flushed_at_exit(tmp_path: Path, cleanup: Cleanup) -> None:
    hub = cleanup.add(HubProcess(tmp_path).start())
    client = hub.client()
    service = service_name()
    (tmp_path / f"{APP_MODULE}.py").write_text(APP)
    (tmp_path / "job.py").write_text(SCRIPT)
    go = tmp_path / "go"
    # A long flush interval: only the exit flush can deliver the hits in time.
    env = sensor_env(hub.url, service, SENSOR_FLUSH_INTERVAL="60", PYTHONPATH=str(tmp_path))
    job = subprocess.Popen(
        [sys.executable, "-m", "sensor", "run", "--", sys.executable, "job.py", str(go), "150"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_until(lambda: len(client.sources(service=service)) == 1, 10)
        probe = place_probe(client, service)
        assert wait_until(lambda: installed_sources(client, probe["id"]) != [], 10)
        go.touch()
        out, err = job.communicate(timeout=20)
    finally:
        if job.poll() is None:
            job.kill()
            job.communicate()
    assert job.returncode == 0, err
    assert out.strip() == "done"
    hits = all_hits(client, probe["id"])
    assert sorted(h["captures"]["amount"] for h in hits) == list(range(150))
    assert {h["captures"]["result"] for h in hits} == {3 * n for n in range(150)}
    (source,) = client.sources(service=service)
    assert source["state"] == "gone"  # deregistered at exit
    assert source["pid"] == hits[0]["source"]["pid"]
