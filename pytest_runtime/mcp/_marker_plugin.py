"""A pytest plugin that compare_test loads into its pytest run: a runtime_probe marker from JSON.

``PYTEST_RUNTIME_MCP_MARKER`` holds the marker's arguments as a JSON object (``location`` plus
the marker's keyword arguments); every collected test gets that marker, exactly as if it were
written above the test, so the plugin arms, places and compares it like any other.
"""

from __future__ import annotations

import json
import os

import pytest

ENV_MARKER = "PYTEST_RUNTIME_MCP_MARKER"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    text = os.environ.get(ENV_MARKER)
    if not text:
        return
    spec = dict(json.loads(text))
    location = spec.pop("location")
    for item in items:
        item.add_marker(pytest.mark.runtime_probe(location, **spec))
