"""``python -m sensor run -- <command ...>``: start a program with the sensor attached.

Like ``ddtrace-run``: the bootstrap directory (holding a ``sitecustomize`` module) goes first
on ``PYTHONPATH`` and the command is exec'ed, so every Python process it starts (gunicorn's
master and, through fork, its workers; uvicorn; a script) starts the sensor from ``SENSOR_*``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from sensor.config import load_config
from sensor.errors import ConfigError

__all__ = ["BOOTSTRAP_DIR", "build_environment", "run_main"]

BOOTSTRAP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bootstrap")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sensor run",
        description="Run a command with the sensor attached to every Python process it starts.",
        epilog="Options set the SENSOR_* variables of the same name; anything else is read "
        "from the environment.",
    )
    parser.add_argument("--hub", metavar="URL", help="hub URL (SENSOR_HUB_URL)")
    parser.add_argument("--token", help="sensor token (SENSOR_TOKEN)")
    parser.add_argument("--service", help="service name (SENSOR_SERVICE)")
    parser.add_argument("--service-version", metavar="VERSION", help="(SENSOR_VERSION)")
    parser.add_argument(
        "--ca-file",
        metavar="PEM",
        help="CA bundle that signs an https hub's certificate (SENSOR_CA_FILE)",
    )
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label, repeatable (added to SENSOR_LABELS)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    return parser


def build_environment(
    environ: dict[str, str],
    *,
    hub: str | None = None,
    token: str | None = None,
    service: str | None = None,
    version: str | None = None,
    labels: Sequence[str] = (),
    ca_file: str | None = None,
) -> dict[str, str]:
    """The child's environment: SENSOR_* from the options and the bootstrap on PYTHONPATH."""
    env = dict(environ)
    for name, value in (
        ("SENSOR_HUB_URL", hub),
        ("SENSOR_TOKEN", token),
        ("SENSOR_SERVICE", service),
        ("SENSOR_VERSION", version),
        ("SENSOR_CA_FILE", ca_file),
    ):
        if value is not None:
            env[name] = value
    if labels:
        existing = env.get("SENSOR_LABELS", "")
        env["SENSOR_LABELS"] = ",".join(part for part in (existing, *labels) if part)
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != BOOTSTRAP_DIR]
    env["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIR, *paths])
    return env


def run_main(argv: list[str]) -> int:
    """Exec ``argv``'s command with the sensor attached; return an exit status on failure.

    ``argv`` is what follows ``run``: options, then ``--``, then the command. On success this
    never returns (the process becomes the command).
    """
    args = _parser().parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print(
            "python -m sensor run: no command given (usage: run [options] -- COMMAND ...)",
            file=sys.stderr,
        )
        return 2
    env = build_environment(
        dict(os.environ),
        hub=args.hub,
        token=args.token,
        service=args.service,
        version=args.service_version,
        labels=args.label,
        ca_file=args.ca_file,
    )
    try:
        load_config(env)  # refuse a bad setting here, with its name, not in every child
    except ConfigError as exc:
        print(f"python -m sensor run: {exc}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        print(
            f"python -m sensor run: cannot run {command[0]!r}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 127
