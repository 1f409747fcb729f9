"""Expensive results that a whole pytest run shares, also across its xdist workers.

Shared by the accuracy and end-to-end suites (``tests`` is on ``pythonpath``): the services and
demo runs they start cost a minute each, and two workers of one run must not start two copies.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def shared_once(root: Path, name: str, produce: Callable[[Path], Any]) -> Any:
    """``produce(workdir)`` once per pytest run, also when xdist spreads the tests that need it.

    ``root`` is the run's base temporary directory (``tmp_path_factory.getbasetemp()``) and the
    result must be JSON. Without xdist it simply runs. Under xdist, the first worker that needs
    it produces it under a lock in the run's shared temporary directory and the others read its
    JSON result (or its error), so one run never starts two copies of the services on a 2-core
    machine. Whoever uses the result only reads it (and what ``workdir`` holds): every test that
    shares it stays independent of the others.
    """
    uid = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not uid:
        return produce(root / name)
    shared = root.parent / f"{name}-{uid}"
    shared.mkdir(exist_ok=True)
    result, error = shared / "result.json", shared / "error.txt"
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if error.exists():
            raise AssertionError(f"{name} failed in another worker: {error.read_text()}")
        if result.exists():
            return json.loads(result.read_text())
        try:
            value = produce(shared / "work")
        except BaseException as exc:
            error.write_text(f"{type(exc).__name__}: {exc}")
            raise
        result.write_text(json.dumps(value))
        return value
