"""Fixtures for every test suite: inner pytest runs do not load schemathesis's pytest plugin."""

from __future__ import annotations

import os

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
