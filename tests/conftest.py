"""Fixtures for every test suite: inner pytest runs do not load schemathesis's pytest plugin."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _inner_runs_without_schemathesis(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # schemathesis (a dev dependency, for the hub's fuzz test) registers a pytest plugin whose
    # collection hook wraps every test function and chains its own frames into collection
    # errors; the plugin's pytester tests assert those errors line by line. Pytester clears
    # PYTEST_ADDOPTS when it is set up, so the option goes in after it.
    if "pytester" not in request.fixturenames:
        return
    request.getfixturevalue("pytester")
    current = os.environ.get("PYTEST_ADDOPTS", "")
    monkeypatch.setenv("PYTEST_ADDOPTS", f"{current} -p no:schemathesis".strip())


# -- PostgreSQL: a throwaway cluster per test session (per xdist worker) --------------------


def _postgres_missing(reason: str) -> None:
    # CI sets SENSOR_TEST_POSTGRES=require (.ci/run): there a missing server is a failure
    if os.environ.get("SENSOR_TEST_POSTGRES") == "require":
        pytest.fail(f"PostgreSQL is required here (SENSOR_TEST_POSTGRES=require): {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a running PostgreSQL server: SENSOR_TEST_POSTGRES_URL, or a temporary cluster."""
    from pg_cluster import HOW_TO_GET, PostgresCluster, find_binaries

    try:
        import psycopg  # noqa: F401
    except ImportError:
        _postgres_missing("psycopg is not installed: pip install 'pytest-runtime[postgres]'")
    given = os.environ.get("SENSOR_TEST_POSTGRES_URL")
    if given:
        yield given
        return
    binaries = find_binaries()
    if binaries is None:
        _postgres_missing(HOW_TO_GET)
        return
    cluster = PostgresCluster(binaries)
    try:
        cluster.start()
    except RuntimeError as exc:
        cluster.stop()
        _postgres_missing(f"could not start a test PostgreSQL cluster: {exc}")
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A URL into a fresh, empty schema of the test server (dropped after the test)."""
    from pg_cluster import fresh_schema

    with fresh_schema(postgres_server) as url:
        yield url
