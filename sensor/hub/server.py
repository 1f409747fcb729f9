"""Serve the hub with uvicorn on a socket we bind ourselves, so ``--port 0`` can print its URL."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

from sensor.errors import ConfigError
from sensor.hub.app import create_app
from sensor.hub.settings import HubSettings

__all__ = ["is_loopback", "serve"]

_log = logging.getLogger("sensor.hub")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP,
    # and without it every response waits ~40 ms (Nagle against the client's delayed ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"hub address {host}:{port}: cannot bind ({exc.strerror})") from exc
    sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    sock.set_inheritable(True)
    return sock


def serve(
    settings: HubSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    ssl_certfile: str | None = None,
    ssl_keyfile: str | None = None,
    access_log: bool = False,
    log_level: str = "warning",
    out: TextIO | None = None,
) -> int:
    """Open the store, bind, print ``sensor hub listening on <url>`` and serve until stopped."""
    import uvicorn

    out = out or sys.stdout
    if bool(ssl_certfile) != bool(ssl_keyfile):
        raise ConfigError("TLS: expected both --ssl-certfile and --ssl-keyfile, got only one")
    app = create_app(settings)  # opens the store: a bad --db fails before we bind
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    scheme = "https" if ssl_certfile else "http"
    shown = f"[{host}]" if ":" in host else host
    if not is_loopback(host) and not ssl_certfile:
        print(
            f"warning: the hub listens on {host} without TLS; tokens travel in clear text "
            "(use --ssl-certfile/--ssl-keyfile or a TLS proxy)",
            file=sys.stderr,
            flush=True,
        )
    config = uvicorn.Config(
        app,
        ssl_certfile=ssl_certfile,
        ssl_keyfile=ssl_keyfile,
        access_log=access_log,
        log_level=log_level,
        lifespan="on",
        timeout_keep_alive=75,  # longer than a poll wait: sensors keep their connection
        timeout_graceful_shutdown=2,
    )
    hub = app.state.hub

    class HubServer(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            # SIGINT and SIGTERM stop the hub gracefully and it exits with status 0 (uvicorn
            # would raise the signal again after its shutdown, skipping our cleanup)
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            signals = (signal.SIGINT, signal.SIGTERM)
            originals = {sig: signal.signal(sig, self.handle_exit) for sig in signals}
            try:
                yield
            finally:
                for sig, handler in originals.items():
                    signal.signal(sig, handler)

        async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
            # uvicorn waits for open requests before the app's lifespan ends: answer the long
            # polls first, or each would be cancelled with a 500 after the graceful timeout
            hub.release_polls()
            await super().shutdown(sockets)

    server = HubServer(config)
    print(f"sensor hub listening on {scheme}://{shown}:{bound}", file=out, flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        hub.close()
    return 0
