"""The server's settings: the plugin's hub URL and token, and limits that are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_runtime.errors import OptionError
from pytest_runtime.mcp.comparejob import check_marker, check_nodeid
from pytest_runtime.mcp.errors import ArgumentError
from pytest_runtime.mcp.settings import ServerSettings


def test_the_hub_url_and_token_are_the_plugins() -> None:
    env = {
        "PYTEST_RUNTIME_HUB": "http://hub:8765/",
        "SENSOR_CLIENT_TOKEN": "secret",
        "PYTEST_RUNTIME_SERVICE": "shop",
    }
    settings = ServerSettings.from_env(env)
    assert (settings.hub, settings.token, settings.service) == ("http://hub:8765", "secret", "shop")
    # The plugin's former name still works, and the new one wins when both are set.
    old = {"PYTEST_RUNTIME_HUB": "http://hub:8765", "PYTEST_RUNTIME_TOKEN": "old"}
    assert ServerSettings.from_env(old).token == "old"
    assert ServerSettings.from_env({**old, "SENSOR_CLIENT_TOKEN": "new"}).token == "new"
    assert ServerSettings.from_env(env, hub="https://other").hub == "https://other"


def test_a_missing_or_wrong_hub_url_is_an_error_naming_it() -> None:
    with pytest.raises(
        OptionError, match=r"--hub: got None, expected the hub URL.*PYTEST_RUNTIME_HUB"
    ):
        ServerSettings.from_env({})
    with pytest.raises(OptionError, match="--hub: got 'hub:8765', expected an http"):
        ServerSettings(hub="hub:8765")


def test_limits_are_checked() -> None:
    with pytest.raises(OptionError, match="--default-ttl: got 7200"):
        ServerSettings(hub="http://h", default_ttl=7200)
    with pytest.raises(OptionError, match="max_probes: got 0"):
        ServerSettings(hub="http://h", max_probes=0)
    with pytest.raises(OptionError, match="budget_chars: got 100"):
        ServerSettings(hub="http://h", budget_chars=100)


def test_a_node_id_must_be_a_test_inside_the_project_and_never_an_option(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("def test_a(): pass\n")
    assert check_nodeid("tests/test_a.py::test_a", tmp_path) == "tests/test_a.py::test_a"
    for bad, why in [
        ("--co", "not an option"),
        ("tests/test_b.py::test_b", "does not exist"),
        ("", "a pytest node id"),
        ("tests/test_a.py::test_a\n-x", "not an option"),
    ]:
        with pytest.raises(ArgumentError, match=why):
            check_nodeid(bad, tmp_path)
    outside = tmp_path.parent / "outside_test.py"
    outside.write_text("def test_o(): pass\n")
    with pytest.raises(ArgumentError, match="inside the project"):
        check_nodeid(f"../{outside.name}::test_o", tmp_path)


def test_a_marker_is_checked_by_the_plugins_own_parser() -> None:
    marker = {"location": "shop.pricing:apply_discount", "expect": "result >= 0"}
    assert check_marker(marker) == marker
    with pytest.raises(ArgumentError, match=r"argument 'marker\.kind': got 'trace'"):
        check_marker({**marker, "kind": "trace"})
    with pytest.raises(ArgumentError, match="argument 'marker': got 'shop:f'"):
        check_marker("shop:f")
