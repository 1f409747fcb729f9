"""Fixtures of the report tests."""

from __future__ import annotations

import pytest
from report_results import make_results

from pytest_runtime.compare import ProbeResult


@pytest.fixture
def results() -> list[ProbeResult]:
    return make_results()
