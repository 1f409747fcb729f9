"""``python -m pytest_runtime``: commands that run outside a test run.

    python -m pytest_runtime publish [--hub URL] [--service NAME] [--dry-run] [pytest args]
    python -m pytest_runtime regression-test --hit HIT_ID --evidence evidence.jsonl [--out F]
    python -m pytest_runtime regression-test --hit HIT_ID --hub URL --probe PROBE_ID

``publish`` makes the hub's standing probes of a service equal to a suite's markers;
``regression-test`` writes a pytest test reproducing one production hit.

The hub's client token is read from ``$SENSOR_CLIENT_TOKEN`` (never an option: a token on a
command line leaks into ``ps``). Exit status: 0 written, 2 bad input (the message says why).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_runtime",
        description="pytest-runtime commands that run outside a test run",
    )
    commands = parser.add_subparsers(dest="verb", required=True)
    publish = commands.add_parser(
        "publish",
        help="make the hub's standing probes of a service equal to a suite's markers",
        description="Collect the suite (no test runs) and make the hub's standing probes of "
        "the service equal to its runtime_probe markers: new ones are placed, unchanged ones "
        "kept with their evidence, the others retired. Arguments after the options go to "
        "pytest (paths, -p, -c ...). The client token is read from $SENSOR_CLIENT_TOKEN.",
    )
    publish.add_argument("--hub", metavar="URL", help="hub URL (default: $PYTEST_RUNTIME_HUB)")
    publish.add_argument("--service", metavar="NAME", help="service of markers that name none")
    publish.add_argument(
        "--dry-run", action="store_true", help="show what would change, change nothing"
    )
    regression = commands.add_parser(
        "regression-test",
        help="write a pytest test reproducing one production hit",
        description="Write a pytest test that calls the probed function with one hit's "
        "arguments and asserts the probe's expectation; it fails on the code that produced "
        "the hit and passes once the code is fixed.",
    )
    regression.add_argument("--hit", required=True, metavar="HIT_ID", help="the hit's id")
    source = regression.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--evidence",
        metavar="PATH",
        action="append",
        help="evidence file or directory to find the hit in (repeatable)",
    )
    source.add_argument("--hub", metavar="URL", help="hub to read the hit from (with --probe)")
    regression.add_argument("--probe", metavar="PROBE_ID", help="the hub probe of the hit")
    regression.add_argument("--out", metavar="FILE", help="write the test here (default: print it)")
    regression.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    return parser


def _constructors() -> dict[str, object]:
    """The constructors of ``conftest.py`` in the current directory, if it defines the hook."""
    path = Path("conftest.py")
    if not path.exists():
        return {}
    import importlib.util

    spec = importlib.util.spec_from_file_location("_runtime_conftest", path)
    if spec is None or spec.loader is None:
        return {}
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    hook = getattr(module, "pytest_runtime_constructors", None)
    return dict(hook(config=None) or {}) if callable(hook) else {}


def regression_test(args: argparse.Namespace) -> int:
    from pytest_runtime.errors import RuntimeProbeError
    from pytest_runtime.regression import RegressionError, find_hit, write_test

    try:
        if args.evidence:
            from pytest_runtime.evidence import read

            evidence = read(args.evidence)
        else:
            if not args.probe:
                raise RegressionError("--hub needs --probe PROBE_ID (the probe whose hit it is)")
            from pytest_runtime.hub import HubClient

            token = os.environ.get("SENSOR_CLIENT_TOKEN") or os.environ.get("PYTEST_RUNTIME_TOKEN")
            client = HubClient(args.hub, token)
            try:
                evidence = client.probe_evidence(args.probe)
            finally:
                client.close()
        hit, probe = find_hit(evidence, args.hit)
        sys.path.insert(0, os.getcwd())
        module = str(hit.get("location", "")).partition(":")[0]
        try:
            __import__(module)  # so that its enums and dataclasses can be rebuilt
        except ImportError as exc:
            print(
                f"pytest_runtime: note: cannot import {module} ({exc}): only builtin values "
                "can be checked now; run from the project's root",
                file=sys.stderr,
            )
        source = write_test(hit, probe, constructors=_constructors())  # type: ignore[arg-type]
    except RuntimeProbeError as exc:
        print(f"pytest_runtime: error: {exc}", file=sys.stderr)
        return 2
    if not args.out:
        sys.stdout.write(source)
        return 0
    out = Path(args.out)
    if out.exists() and not args.force:
        print(f"pytest_runtime: error: {out} exists (use --force to overwrite)", file=sys.stderr)
        return 2
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(source, encoding="utf-8")
    print(f"wrote {out}: run it with pytest {out}")
    return 0


def publish(args: argparse.Namespace, rest: list[str]) -> int:
    pytest_args = ["--runtime-publish", "-qq", *rest]
    if args.hub:
        pytest_args += ["--runtime-hub", args.hub]
    if args.service:
        pytest_args += ["--runtime-service", args.service]
    if args.dry_run:
        pytest_args.append("--runtime-dry-run")
    # A pytest process of its own: run in this one, pytest would find this package imported
    # already and warn that it cannot rewrite its asserts (an error under -W error).
    import subprocess

    return subprocess.call([sys.executable, "-m", "pytest", *pytest_args])


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, rest = parser.parse_known_args(argv)
    if args.verb == "publish":
        return publish(args, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.verb == "regression-test":
        return regression_test(args)
    return 2  # pragma: no cover - argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
