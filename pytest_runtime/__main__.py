"""``python -m pytest_runtime publish``: publish a suite's markers as standing probes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_runtime",
        description="pytest-runtime commands that run outside a test run",
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    publish = verbs.add_parser(
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
    args, rest = parser.parse_known_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
