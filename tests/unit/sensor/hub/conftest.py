"""Fixtures for the hub's unit tests: an app on an in-memory store with known tokens."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hub_helpers import ADMIN, CLIENT, SENSOR
from starlette.applications import Starlette
from starlette.testclient import TestClient

from sensor.hub import HubSettings, create_app
from sensor.hub.core import Hub


@pytest.fixture
def settings() -> HubSettings:
    # sweep_interval is long: tests call hub.sweep() themselves, so nothing races them
    return HubSettings(
        db=":memory:",
        admin_token=ADMIN,
        sensor_token=SENSOR,
        client_token=CLIENT,
        sweep_interval=3600.0,
        max_body=64 * 1024,
    )


@pytest.fixture
def app(settings: HubSettings) -> Iterator[Starlette]:
    application = create_app(settings)
    yield application
    application.state.hub.close()


@pytest.fixture
def hub(app: Starlette) -> Hub:
    result: Hub = app.state.hub
    return result


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client
