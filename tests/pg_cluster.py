"""A throwaway PostgreSQL cluster for the tests: ``initdb`` and ``pg_ctl`` under a temp directory.

Shared by the store, replica and benchmark code (``tests`` is on ``pythonpath``). Nothing outside
its own directory is touched: the cluster listens on a free loopback port, without a Unix
socket, and is stopped and deleted at the end. ``initdb`` refuses to run as root, so as root the
cluster belongs to the ``postgres`` user (which Debian's package creates).

``SENSOR_TEST_POSTGRES_URL`` names a server that is already running instead (its database is
used as it is; each test works in its own schema).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "HOW_TO_GET",
    "PostgresCluster",
    "find_binaries",
    "schema_url",
]

#: What the skip message tells a developer without the binaries.
HOW_TO_GET = (
    "PostgreSQL binaries (initdb, pg_ctl) not found: install them with "
    "'sudo apt-get install -y postgresql' (Debian/Ubuntu) or set SENSOR_TEST_POSTGRES_URL "
    "to a running server; .ci/run installs them and never skips these tests"
)


def find_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``: PATH first, then Debian's layout."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    # Debian installs them under /usr/lib/postgresql/<version>/bin, off PATH: newest first
    found = glob.glob("/usr/lib/postgresql/*/bin")
    found.sort(key=lambda p: int(p.split("/")[-2]) if p.split("/")[-2].isdigit() else 0)
    candidates += [Path(p) for p in reversed(found)]
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresCluster:
    """One cluster: :meth:`start` runs initdb and pg_ctl start; :meth:`stop` removes it all."""

    def __init__(self, binaries: Path, *, fsync: bool = False) -> None:
        self.binaries = binaries
        self.fsync = fsync
        self.directory: Path | None = None
        self.port = 0
        self.user = "postgres"
        self._owner: pwd.struct_passwd | None = None

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str) -> None:
        owner = self._owner
        command = list(argv)
        if owner is not None:
            # initdb and postgres refuse root: run them as the unprivileged owner
            command = ["runuser", "-u", owner.pw_name, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv[:2])} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )

    def start(self) -> PostgresCluster:
        if os.geteuid() == 0:
            try:
                self._owner = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "running as root and there is no 'postgres' user to own the test cluster "
                    "(install Debian's postgresql package, which creates it)"
                ) from None
        # its own directory under /tmp (not pytest's tmp_path: that is 0700 root's, and the
        # cluster's owner must reach its data directory)
        self.directory = Path(tempfile.mkdtemp(prefix="sensor-test-pg-"))
        data = self.directory / "data"
        if self._owner is not None:
            os.chown(self.directory, self._owner.pw_uid, self._owner.pw_gid)
        self._run(
            str(self.binaries / "initdb"),
            "-D",
            str(data),
            "-U",
            self.user,
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        )
        self.port = _free_port()
        options = (
            f"-c port={self.port} -c listen_addresses=127.0.0.1 "
            "-c unix_socket_directories='' -c max_connections=200 "
            f"-c fsync={'on' if self.fsync else 'off'} "
            f"-c synchronous_commit={'on' if self.fsync else 'off'} "
            "-c full_page_writes=off -c shared_buffers=64MB"
        )
        self._run(
            str(self.binaries / "pg_ctl"),
            "start",
            "-D",
            str(data),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            "-l",
            str(self.directory / "server.log"),
        )
        return self

    def stop(self) -> None:
        if self.directory is None:
            return
        with contextlib.suppress(Exception):
            self._run(
                str(self.binaries / "pg_ctl"),
                "stop",
                "-D",
                str(self.directory / "data"),
                "-m",
                "immediate",
                "-w",
            )
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory = None


def schema_url(base: str, schema: str) -> str:
    """``base`` with every connection's ``search_path`` set to ``schema`` (libpq ``options``)."""
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


@contextlib.contextmanager
def fresh_schema(base: str) -> Iterator[str]:
    """A new empty schema on the server at ``base``; yields a URL that works inside it."""
    import psycopg

    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield schema_url(base, name)
    finally:
        _drop_schema(base, name)


def _drop_schema(base: str, name: str, *, attempts: int = 20) -> None:
    """Drop the test's schema, again if PostgreSQL picked the drop as a deadlock's victim.

    A hub replica that a test stopped (or killed) may still have a transaction of its last
    moment open in the server: its insert and the drop's exclusive locks then wait for each
    other, and the server aborts one of them (CI saw the drop aborted). The replica's
    transaction ends soon after; the drop is tried again. Never another test's backends: they
    share the server under xdist.
    """
    import psycopg
    from psycopg import errors

    for attempt in range(attempts):
        try:
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA {name} CASCADE")
            return
        except (errors.DeadlockDetected, errors.LockNotAvailable):
            if attempt == attempts - 1:
                raise
            time.sleep(0.25 * (attempt + 1))
