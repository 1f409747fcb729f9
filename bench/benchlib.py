"""What several benchmarks share: a real hub process, started the way an operator starts it.

The benchmarks are run as scripts (``python bench/bench_x.py``), so this directory is first on
``sys.path`` and they import this module by its name.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SENSOR, CLIENT = "bench-sensor", "bench-client"


def start_hub(db: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """``python -m sensor hub`` on a free loopback port with the bench tokens; (process, URL).

    The hub prints its URL on its first line of output; ``extra`` are more hub options.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENSOR_")}
    argv = [
        sys.executable, "-m", "sensor", "hub", "--port", "0", "--db", str(db),
        "--sensor-token", SENSOR, "--client-token", CLIENT, *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("sensor hub listening on "):
        proc.kill()
        raise SystemExit(f"the hub did not start: {line!r}")
    return proc, line.rsplit(" ", 1)[1].strip()
