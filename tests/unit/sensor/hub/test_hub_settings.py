"""Hub settings from SENSOR_HUB_* variables and flags, and start-up tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from sensor.errors import ConfigError
from sensor.hub import HubSettings
from sensor.hub.auth import hash_token
from sensor.hub.core import Hub
from sensor.hub.server import is_loopback


def test_environment_fills_settings_and_flags_win() -> None:
    env = {
        "SENSOR_HUB_ADMIN_TOKEN": "a",
        "SENSOR_HUB_SENSOR_TOKEN": "s",
        "SENSOR_HUB_CLIENT_TOKEN": "c",
        "SENSOR_HUB_MAX_BODY": "2048",
        "SENSOR_HUB_RETENTION": "none",
        "SENSOR_HUB_DEFAULT_TTL": "60",
        "SENSOR_HUB_DB": "/tmp/x.db",
    }
    settings = HubSettings.from_env(env, default_ttl=120.0, db=None)
    assert (settings.admin_token, settings.sensor_token, settings.client_token) == ("a", "s", "c")
    assert settings.max_body == 2048
    assert settings.retention is None
    assert settings.default_ttl == 120.0  # the flag
    assert settings.db == "/tmp/x.db"  # no flag given: the variable


def test_bad_setting_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="SENSOR_HUB_MAX_BODY: got 'lots'"):
        HubSettings.from_env({"SENSOR_HUB_MAX_BODY": "lots"})
    with pytest.raises(ConfigError, match="max_body"):
        HubSettings(max_body=10)
    with pytest.raises(ConfigError, match="gone_after"):
        HubSettings(stale_after=60, gone_after=30)


def test_start_up_tokens_from_the_environment_work() -> None:
    settings = HubSettings.from_env(
        {"SENSOR_HUB_SENSOR_TOKEN": "from-env"}, db=":memory:", sweep_interval=3600.0
    )
    hub = Hub(settings)
    try:
        record = hub.store.find_token(hash_token("from-env"))
        assert record is not None
        assert record.scope == "sensor"
    finally:
        hub.close()


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("10.1.2.3", False),
    ],
)
def test_loopback_detection_for_the_clear_text_warning(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_secrets_may_come_from_files_a_secret_store_mounted(tmp_path: Path) -> None:
    (tmp_path / "admin").write_text("admin-from-file\n")
    (tmp_path / "db").write_text("postgresql://hub:pw@db/hub\n")
    settings = HubSettings.from_env(
        {
            "SENSOR_HUB_ADMIN_TOKEN_FILE": str(tmp_path / "admin"),
            "SENSOR_HUB_DB_FILE": str(tmp_path / "db"),
        }
    )
    assert (settings.admin_token, settings.db) == ("admin-from-file", "postgresql://hub:pw@db/hub")
    with pytest.raises(ConfigError, match="SENSOR_HUB_SENSOR_TOKEN_FILE: cannot read"):
        HubSettings.from_env({"SENSOR_HUB_SENSOR_TOKEN_FILE": str(tmp_path / "missing")})
    with pytest.raises(ConfigError, match="both set, expected one of them"):
        HubSettings.from_env(
            {
                "SENSOR_HUB_ADMIN_TOKEN_FILE": str(tmp_path / "admin"),
                "SENSOR_HUB_ADMIN_TOKEN": "other",
            }
        )


def test_the_hub_listens_on_a_socket_whose_accepted_connections_asyncio_sets_nodelay() -> None:
    # uvicorn runs on uvloop here, which sets TCP_NODELAY itself, so the integration test of
    # small requests cannot tell; on plain asyncio (no uvloop: Windows, PyPy) the accepted
    # connections get TCP_NODELAY only when the listening socket says IPPROTO_TCP, and without
    # it every answer waits ~40 ms (Nagle against the client's delayed ACK).
    import asyncio
    import socket

    from sensor.hub.server import _bind

    listener = _bind("127.0.0.1", 0)
    port = listener.getsockname()[1]
    seen: list[int] = []

    async def main() -> None:
        def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(3000):  # up to 30 s (waited for, not timed)
                if seen:
                    break
                await asyncio.sleep(0.01)
            writer.close()

    loop = asyncio.SelectorEventLoop()  # the standard library's loop, not uvloop
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert seen, "the connection was not accepted"
    assert seen[0] != 0, f"accepted connection's TCP_NODELAY: {seen[0]}"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://hub:Zq9pw@db.internal:5432/hub",
        "postgresql://hub@db.internal/hub?password=Zq9pw&sslmode=require",
        "postgres://hub@db.internal/hub?sslmode=require&sslpassword=Zq9pw",
    ],
)
def test_postgres_urls_are_shown_without_their_passwords(url: str) -> None:
    from sensor.hub.store.postgres import _redact_url

    shown = _redact_url(url)
    assert "Zq9" not in shown
    assert "db.internal" in shown


@pytest.mark.parametrize("name", ["SENSOR_HUB_ADMIN_TOKN", "SENSOR_HUB_SENSOR_TOKN"])
def test_a_misspelt_token_variable_is_refused_without_showing_its_value(name: str) -> None:
    with pytest.raises(ConfigError, match=f"{name}: got a value, expected no such variable") as e:
        HubSettings.from_env({name: "Zq9-admin-token-value"})
    assert "Zq9" not in str(e.value)


def test_a_misspelt_ordinary_variable_still_shows_its_value() -> None:
    with pytest.raises(ConfigError, match="SENSOR_HUB_RETENTON: got 'none'"):
        HubSettings.from_env({"SENSOR_HUB_RETENTON": "none"})
