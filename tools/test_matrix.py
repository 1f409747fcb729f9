"""Run the whole test suite on every supported Python that exists here, a few at a time.

`make test` (README's test command, and CI's) runs this with the project's `.venv` Python. The suite
runs on that Python directly and on every other supported interpreter found on PATH through tox;
each run uses pytest-xdist, and `--jobs` runs (3 by default: every supported Python) go on at once,
so that the CPU stays busy while tests wait on the real hub and service processes they start. Each
run's output goes to its own log under `.test-logs/`; what is printed at the end is every run's
summary (skips and failures included) and, for a run that failed, its whole failure section. Exit
status: 0 when every run passed, else the first failing run's status. pytest's 5 ("no tests
collected") is said, and is not a failure.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUPPORTED = ("3.11", "3.12", "3.13", "3.14")
NO_TESTS_COLLECTED = 5
#: How many of the slowest tests (setup, call and teardown apart) each run's log lists.
DURATIONS = 30
# pytest's last line: "=== 3 passed, 1 skipped in 4.2s ===" (or without the rules under -q).
SUMMARY_LINE = re.compile(
    r"^=* ?(\d+ (passed|failed|errors?|skipped|xfailed|xpassed|deselected)\b.* in [\d.]+s.*?"
    r"|no tests ran in [\d.]+s.*?) ?=*$"
)


@dataclass
class Run:
    """One interpreter's run of the suite."""

    name: str
    command: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    seconds: float = 0.0
    status: int | None = None
    notes: list[str] = field(default_factory=list)


def _runs(workers: str, pytest_args: list[str], logs: Path) -> list[Run]:
    # worksteal, not xdist's default "load": "load" hands the first worker the first quarter of
    # the collection in one chunk, and the collection starts with every accuracy, e2e,
    # integration and plugin test, so one worker ran all the slow tests in a row (over 800 of
    # the 1,030 test-seconds of a 3.11 run) while the other finished the unit tests and waited.
    # worksteal gives each worker half, and a worker that runs out takes half of another's
    # remaining tests, so the slow tests end up spread over both workers.
    xdist = ["-n", workers, "--dist", "worksteal"] if workers != "0" else []
    if not any(arg.startswith("--durations") for arg in pytest_args):
        # The slowest tests, in each run's log: what to look at when the suite grows slow.
        pytest_args = [*pytest_args, f"--durations={DURATIONS}"]
    runs = []
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    for version in SUPPORTED:
        env = "py" + version.replace(".", "")
        if version == here:
            command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *xdist]
        elif shutil.which(f"python{version}"):
            tox = str(Path(sys.executable).with_name("tox"))
            command = [tox, "run", "-e", env, "--", *xdist]
        else:
            print(f"{env}: skipped, no python{version} on PATH")
            continue
        runs.append(Run(env, [*command, *pytest_args], logs / f"{env}.log"))
    return runs


def _environment() -> dict[str, str]:
    """The runs' environment: the caller's, with bytecode caches written (as in any install).

    The suite starts a new Python process for every hub, service under the sensor, pytester
    subprocess run, tutorial command and traffic script it needs. With
    PYTHONDONTWRITEBYTECODE set (some shells and CI runners set it), nothing writes the
    checkout's ``__pycache__``, so every one of them compiled ``sensor``, ``pytest_runtime``
    and the test helpers from source again: about 1 CPU-second per pytest start on 3.12
    (1.6 s against 0.6 s with the caches), half the CPU of the live plugin tests. The caches
    are ignored by git and by the package build (``.gitignore``).
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _start(run: Run) -> None:
    run.log.parent.mkdir(parents=True, exist_ok=True)
    with run.log.open("wb") as out:
        run.process = subprocess.Popen(
            run.command,
            cwd=ROOT,
            env=_environment(),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    run.started = time.monotonic()
    print(f"{run.name}: started ({' '.join(run.command)}), output in {run.log}", flush=True)


def _summary(text: str) -> str:
    for line in reversed(text.splitlines()):
        match = SUMMARY_LINE.match(line.strip())
        if match:
            return match.group(1)
    return "no pytest summary line in the output"


def _section(text: str, title: str) -> str:
    """The lines of pytest's `=== title ===` section, up to the next section."""
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("=") and f" {title} " in line:
            end = index + 1
            while end < len(lines) and not lines[end].startswith("====="):
                end += 1
            return "\n".join(lines[index:end])
    return ""


def _finish(run: Run, status: int) -> None:
    run.seconds = time.monotonic() - run.started
    if status == NO_TESTS_COLLECTED:
        run.notes.append("pytest collected no tests (exit 5)")
        status = 0
    run.status = status
    text = run.log.read_text(errors="replace")
    verdict = "passed" if status == 0 else f"FAILED (exit {status})"
    print(f"{run.name}: {verdict} in {run.seconds:.0f} s: {_summary(text)}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--jobs",
        default=os.environ.get("TEST_JOBS", "3"),
        type=int,
        help="interpreters run at once (default 3, or $TEST_JOBS)",
    )
    parser.add_argument(
        "--workers",
        default=os.environ.get("TEST_WORKERS", "2"),
        help="pytest-xdist workers per interpreter: a number, 'auto' or 0 for none "
        "(default 2, or $TEST_WORKERS)",
    )
    parser.add_argument("pytest_args", nargs="*", help="passed to every pytest run")
    options = parser.parse_args(argv)
    if options.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {options.jobs}")

    runs = _runs(options.workers, options.pytest_args, ROOT / ".test-logs")
    if not runs:
        print(f"no supported Python to run the suite on (supported: {', '.join(SUPPORTED)})")
        return 2
    waiting = list(runs)
    active: list[Run] = []
    began = time.monotonic()
    try:
        while waiting or active:
            while waiting and len(active) < options.jobs:
                run = waiting.pop(0)
                _start(run)
                active.append(run)
            time.sleep(0.5)
            for run in list(active):
                assert run.process is not None
                status = run.process.poll()
                if status is not None:
                    active.remove(run)
                    _finish(run, status)
    except KeyboardInterrupt:
        for run in active:
            if run.process is not None:
                run.process.terminate()
        raise

    print()
    for run in runs:
        text = run.log.read_text(errors="replace")
        print(f"======== {run.name} ({run.seconds:.0f} s) ========")
        if run.status != 0:
            failures = _section(text, "FAILURES") or _section(text, "ERRORS")
            print(failures or "\n".join(text.splitlines()[-200:]))
        print(_section(text, "short test summary info"))
        for note in run.notes:
            print(note)
        print(_summary(text))
    print(f"\nall runs took {time.monotonic() - began:.0f} s")
    for run in runs:
        print(f"  {run.name}: {'passed' if run.status == 0 else f'FAILED (exit {run.status})'}")
    return next((run.status or 1 for run in runs if run.status != 0), 0)


if __name__ == "__main__":
    sys.exit(main())
