"""One run of the demo (``python -m examples.shop.demo --check``) for the whole pytest run.

test_demo.py asserts what the run shows; test_replay_demo.py turns the evidence it recorded into
replays, strategies and regression tests. Both only read the run's output and its directory, so
they share one run (about a minute of hub, shop, traffic and pytest) instead of making two, also
when xdist puts them on different workers.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from shared_once import shared_once

ROOT = Path(__file__).resolve().parents[2]


def _run_demo(workdir: Path) -> dict[str, Any]:
    out = workdir / "out"
    out.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "examples.shop.demo", "--check", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return {
        "returncode": result.returncode,
        "output": result.stdout + result.stderr,
        "out": str(out),
    }


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo's exit status, its output and the directory with its report and evidence."""
    run: dict[str, Any] = shared_once(tmp_path_factory.getbasetemp(), "demo", _run_demo)
    return run
