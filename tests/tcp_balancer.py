"""A tiny TCP load balancer for the replica tests: one loopback address in front of several hubs.

Each new connection goes to the next backend in turn (round robin); a backend that refuses the
connection (a replica that died) is skipped, as a load balancer's health check would. Bytes are
copied both ways unchanged; when either side closes, so does the other. Nothing here knows HTTP.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading

__all__ = ["TcpBalancer"]


class TcpBalancer:
    """Round-robin TCP forwarding from ``url`` to ``backends`` ("host:port" strings)."""

    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = list(backends)
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closed = False
        self.connections: dict[tuple[str, int], int] = dict.fromkeys(backends, 0)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(512)
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, name="balancer-accept", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _connect(self) -> socket.socket | None:
        for _ in range(len(self.backends)):
            with self._lock:
                backend = self.backends[next(self._turn) % len(self.backends)]
            try:
                upstream = socket.create_connection(backend, timeout=2)
            except OSError:
                continue  # that replica is down: the next one
            upstream.settimeout(None)
            upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self.connections[backend] += 1
            return upstream
        return None

    def _serve(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        upstream = self._connect()
        if upstream is None:
            client.close()
            return
        with self._lock:
            self._sockets.update((client, upstream))
        pump = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        pump.start()
        self._pump(client, upstream)
        pump.join()
        with self._lock:
            self._sockets.difference_update((client, upstream))
        for sock in (client, upstream):
            with contextlib.suppress(OSError):
                sock.close()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
        except OSError:
            pass
        # a reset on one side becomes a close on the other: the client sees the replica die
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def stop(self) -> None:  # for agent_support.Cleanup
        self.close()
