"""``python -m pytest_runtime``: commands that turn production evidence into tests.

    python -m pytest_runtime regression-test --hit HIT_ID --evidence evidence.jsonl [--out F]
    python -m pytest_runtime regression-test --hit HIT_ID --hub URL --probe PROBE_ID

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
        description="Turn production evidence into tests.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "regression-test":
        return regression_test(args)
    return 2  # pragma: no cover - argparse requires a command


if __name__ == "__main__":
    sys.exit(main())
