"""Fixtures for the plugin's pytester tests: a real hub process on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from plugin_support import HubProcess, start_hub


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    hub = start_hub(tmp_path)
    try:
        yield hub
    finally:
        hub.launcher.stop()
