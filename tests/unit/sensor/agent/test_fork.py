"""After os.fork the child is a new source with its own thread and an empty queue."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

import pytest
from agent_doubles import FakeHub

# What every fork script starts with: the sensor on the hub in argv[1], and a wait for a source id.
PREAMBLE = textwrap.dedent(
    """
    import json, os, sys, threading, time, warnings
    warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork of a threaded process
    import sensor
    from sensor.agent import lifecycle

    def wait_registered():
        deadline = time.monotonic() + 5
        while sensor.status()["source_id"] is None and time.monotonic() < deadline:
            time.sleep(0.02)
    """
)

SCRIPT = PREAMBLE + textwrap.dedent(
    """
    from sensor.probes import Hit

    sensor.start(hub=sys.argv[1], service="forky", flush_interval=0.05)
    wait_registered()
    lifecycle._agent.queue.put(Hit("p", "s", "snapshot", "m:f@return", 0.0))
    pid = os.fork()
    if pid == 0:
        wait_registered()
        status = sensor.status()
        print(json.dumps({"who": "child", "pid": os.getpid(), "source_id": status["source_id"],
                          "runtime_id": status["runtime_id"], "queued": status["queued"]}),
              flush=True)
        sensor.stop(1)
        os._exit(0)
    os.waitpid(pid, 0)
    status = sensor.status()
    print(json.dumps({"who": "parent", "pid": os.getpid(), "source_id": status["source_id"],
                      "runtime_id": status["runtime_id"]}), flush=True)
    """
)


def test_forked_child_registers_as_its_own_source(fake_hub: FakeHub) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, fake_hub.url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    reports = {r["who"]: r for r in map(json.loads, result.stdout.splitlines())}
    child, parent = reports["child"], reports["parent"]
    assert child["pid"] != parent["pid"]
    assert child["source_id"] != parent["source_id"]
    assert child["runtime_id"] != parent["runtime_id"]
    assert child["queued"] == 0  # the parent's hit stays the parent's
    pids = sorted(r["pid"] for r in fake_hub.registrations)
    assert pids == sorted([child["pid"], parent["pid"]])
    assert child["source_id"] in fake_hub.deregistered


SIGTERM_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, time
    import sensor

    if sys.argv[2] == "own-handler":
        signal.signal(signal.SIGTERM, lambda *a: (print("own handler", flush=True), sys.exit(3)))
    sensor.start(hub=sys.argv[1], service="term", flush_interval=30)
    deadline = time.monotonic() + 5
    while sensor.status()["source_id"] is None and time.monotonic() < deadline:
        time.sleep(0.02)
    print(sensor.status()["source_id"], flush=True)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
    """
)


def test_sigterm_flushes_and_still_ends_the_process(fake_hub: FakeHub) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SIGTERM_SCRIPT, fake_hub.url, "default"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == -15, result.stderr  # killed by SIGTERM, as without the sensor
    source_id = result.stdout.split()[0]
    assert fake_hub.deregistered == [source_id]


def test_a_programs_own_sigterm_handler_is_kept(fake_hub: FakeHub) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SIGTERM_SCRIPT, fake_hub.url, "own-handler"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert "own handler" in result.stdout
    # sys.exit ran atexit: the sensor flushed there instead.
    assert fake_hub.wait_for(lambda: len(fake_hub.deregistered) == 1)


# The agent thread takes the agent's lock, then the engine's. A fork while it sat between the
# two hung the host for ever when the engine's fork handler ran first (gunicorn's master stuck in
# spawn_worker); in the child, the restarted agent thread must find the engine's new locks.
CROSSED_LOCKS_SCRIPT = PREAMBLE + textwrap.dedent(
    """
    sensor.start(hub=sys.argv[1], service="crossed", flush_interval=0.05)
    wait_registered()
    agent = lifecycle._agent
    engine = agent._get_engine()  # imported after the agent's fork hooks, as in a real service
    holding = threading.Event()

    def agent_like():
        with agent._lock:  # what the agent thread does: its own lock, then the engine's
            holding.set()
            time.sleep(0.3)
            engine.statuses()

    thread = threading.Thread(target=agent_like)
    thread.start()
    holding.wait()
    pid = os.fork()
    if pid == 0:
        wait_registered()
        agent_status = sensor.status()
        print(json.dumps({"who": "child", "source_id": agent_status["source_id"],
                          "engine": engine.statuses() == []}), flush=True)
        sensor.stop(1)
        os._exit(0)
    thread.join()
    os.waitpid(pid, 0)
    print(json.dumps({"who": "parent", "source_id": sensor.status()["source_id"]}), flush=True)
    """
)


def test_fork_while_the_agent_thread_holds_its_lock_neither_hangs_nor_strands_the_child(
    fake_hub: FakeHub,
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", CROSSED_LOCKS_SCRIPT, fake_hub.url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    reports = {r["who"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert reports["child"]["engine"] is True
    assert reports["child"]["source_id"] not in (None, reports["parent"]["source_id"])


def test_two_threads_forking_at_once_each_release_only_what_they_took(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from sensor.agent import lifecycle
    from sensor.config import load_config

    monkeypatch.setattr(lifecycle, "_FORK_WAIT", 0.2)
    agent = lifecycle.Agent(load_config(environ={}, hub="http://127.0.0.1:9"))
    first_holds, second_done = threading.Event(), threading.Event()

    def first() -> None:
        agent.before_fork()  # takes the agent's lock
        first_holds.set()
        second_done.wait(10)
        agent.after_fork_parent()  # must release it, whatever the other thread did

    def second() -> None:
        first_holds.wait(10)
        agent.before_fork()  # the lock is busy: gives up after the bound, takes nothing
        agent.after_fork_parent()  # must release nothing
        second_done.set()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert agent._lock.acquire(timeout=1)  # nobody kept it
    agent._lock.release()
