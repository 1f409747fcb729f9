"""``python -m pytest_runtime.mcp``: run the MCP server (stdio by default, or streamable HTTP)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from pytest_runtime.errors import OptionError

_LOOPBACK_NAMES = ("localhost",)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_runtime.mcp",
        description="The pytest-runtime MCP server: live probes, hypothesis checks and test "
        "comparisons for AI coding agents. The client token is read from SENSOR_CLIENT_TOKEN "
        "(never from the command line).",
    )
    parser.add_argument(
        "--hub", metavar="URL", help="hub URL (default: $PYTEST_RUNTIME_HUB, as for the plugin)"
    )
    parser.add_argument(
        "--service",
        metavar="NAME",
        help="service probed when a tool call names none (default: $PYTEST_RUNTIME_SERVICE)",
    )
    parser.add_argument(
        "--transport",
        choices=("stdio", "streamable-http"),
        default="stdio",
        help="stdio (default: what editors and agents start) or streamable-http",
    )
    parser.add_argument("--host", default="127.0.0.1", help="streamable-http: address to bind")
    parser.add_argument("--port", type=int, default=8766, help="streamable-http: port")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="streamable-http: allow an address other than loopback (the server has no auth "
        "of its own and holds a hub token: put it behind one)",
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=None,
        help="where compare_test runs pytest (default: the current directory)",
    )
    parser.add_argument("--default-ttl", type=float, default=None, help="seconds (default 600)")
    parser.add_argument("--max-ttl", type=float, default=None, help="seconds (default 3600)")
    parser.add_argument(
        "--max-probes", type=int, default=None, help="active probes per session (default 10)"
    )
    parser.add_argument(
        "--log-level", default="WARNING", help="logging level on stderr (default WARNING)"
    )
    return parser


def _is_loopback(host: str) -> bool:
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # stdout is the protocol on stdio: every log line goes to stderr.
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr)
    from pytest_runtime.mcp.settings import ServerSettings

    overrides: dict[str, Any] = {
        "hub": args.hub,
        "service": args.service,
        "project_dir": args.project_dir.resolve() if args.project_dir else None,
        "default_ttl": args.default_ttl,
        "max_ttl": args.max_ttl,
        "max_probes": args.max_probes,
    }
    try:
        settings = ServerSettings.from_env(**overrides)
    except OptionError as exc:
        print(f"pytest_runtime.mcp: {exc}", file=sys.stderr)
        return 2
    remote = not _is_loopback(args.host)
    if args.transport == "streamable-http" and remote and not args.allow_remote:
        print(
            f"pytest_runtime.mcp: --host {args.host!r} is not a loopback address; the server has "
            "no authentication of its own and acts with the hub token: pass --allow-remote "
            "only behind an authenticating proxy",
            file=sys.stderr,
        )
        return 2
    try:
        from pytest_runtime.mcp.server import build_server, close_open_sessions
    except ImportError as exc:
        print(
            f"pytest_runtime.mcp: the MCP SDK is missing ({exc}); "
            "install it with: pip install 'pytest-runtime[mcp]'",
            file=sys.stderr,
        )
        return 2

    log = logging.getLogger("pytest_runtime.mcp")

    def stop(signum: int, frame: Any) -> None:
        # The stdio transport reads stdin on a worker thread that a signal cannot interrupt, so
        # an orderly unwind could wait for ever: remove the sessions' probes here, then leave.
        for note in close_open_sessions():
            log.info("on signal %d: %s", signum, note)
        os._exit(128 + signum)

    server = build_server(settings)
    if args.transport == "stdio":
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        server.run("stdio")
    else:
        # uvicorn handles SIGINT and SIGTERM itself: it stops serving and the lifespan (with the
        # probes of its sessions) ends in order.
        server.run("streamable-http", host=args.host, port=args.port)
    for note in close_open_sessions():
        log.info("at exit: %s", note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
