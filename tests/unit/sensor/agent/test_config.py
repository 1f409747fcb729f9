"""Sensor settings: SENSOR_* variables, arguments over variables, errors naming the variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sensor.config import ENV_VARS, check_hub_url, load_config, parse_labels
from sensor.errors import ConfigError


def test_settings_come_from_the_environment() -> None:
    config = load_config(
        environ={
            "SENSOR_HUB_URL": "http://127.0.0.1:8700/",
            "SENSOR_TOKEN": "s3cret",
            "SENSOR_SERVICE": "shop",
            "SENSOR_VERSION": "1.4.0",
            "SENSOR_LABELS": "region=eu, tier=web",
            "SENSOR_QUEUE_SIZE": "50",
            "SENSOR_BATCH_SIZE": "7",
            "SENSOR_FLUSH_INTERVAL": "0.5",
            "SENSOR_LOG_LEVEL": "debug",
            "SENSOR_ENABLED": "yes",
        }
    )
    assert config.hub_url == "http://127.0.0.1:8700"
    assert config.token == "s3cret"
    assert (config.service, config.version) == ("shop", "1.4.0")
    assert config.labels == {"region": "eu", "tier": "web"}
    assert (config.queue_size, config.batch_size, config.flush_interval) == (50, 7, 0.5)
    assert config.log_level == "DEBUG"
    assert config.enabled is True


def test_arguments_win_over_the_environment() -> None:
    config = load_config(
        environ={"SENSOR_HUB_URL": "http://a:1", "SENSOR_SERVICE": "env"},
        hub="http://b:2",
        service="arg",
        labels={"k": "v"},
        queue_size=3,
    )
    assert (config.hub_url, config.service, config.labels, config.queue_size) == (
        "http://b:2",
        "arg",
        {"k": "v"},
        3,
    )


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SENSOR_QUEUE_SIZE", "lots", "positive integer"),
        ("SENSOR_BATCH_SIZE", "0", "positive integer"),
        ("SENSOR_FLUSH_INTERVAL", "-1", "positive number"),
        ("SENSOR_FLUSH_INTERVAL", "nan", "positive number"),
        ("SENSOR_ENABLED", "maybe", "true"),
        ("SENSOR_LOG_LEVEL", "loud", "WARNING"),
        ("SENSOR_LABELS", "region", "key=value"),
        ("SENSOR_HUB_URL", "ftp://hub", "http://"),
        ("SENSOR_HUB_URL", "http://hub:notaport", "port"),
    ],
)
def test_invalid_variable_is_named_with_its_value(name: str, value: str, expected: str) -> None:
    environ = {"SENSOR_HUB_URL": "http://127.0.0.1:1", name: value}
    with pytest.raises(ConfigError) as info:
        load_config(environ=environ)
    message = str(info.value)
    assert name in message
    assert repr(value) in message
    assert expected in message


def test_invalid_argument_is_named() -> None:
    with pytest.raises(ConfigError, match=r"argument batch_size: got -2"):
        load_config(environ={}, hub="http://h:1", batch_size=-2)
    with pytest.raises(ConfigError, match=r"argument 'colour': unknown setting"):
        load_config(environ={}, hub="http://h:1", colour="red")
    with pytest.raises(ConfigError, match=r"argument enabled"):
        load_config(environ={}, hub="http://h:1", enabled="perhaps")


def test_hub_url_is_required_unless_disabled() -> None:
    with pytest.raises(ConfigError, match="SENSOR_HUB_URL"):
        load_config(environ={})
    assert load_config(environ={"SENSOR_ENABLED": "0"}).enabled is False


def test_labels_parse_pairs_and_skip_empty_parts() -> None:
    assert parse_labels("a=1,,b = 2 ,c=") == {"a": "1", "b": "2", "c": ""}


def test_token_is_hidden_in_the_redacted_form() -> None:
    config = load_config(environ={}, hub="http://h:1", token="abc")
    assert config.redacted()["token"] == "***"


def test_every_variable_maps_to_a_field() -> None:
    fields = set(load_config(environ={"SENSOR_ENABLED": "0"}).redacted())
    assert {field for field, _ in ENV_VARS.values()} <= fields


def test_a_bad_redaction_pattern_is_refused_at_start() -> None:
    environ = {"SENSOR_HUB_URL": "http://h:1", "SENSOR_REDACT_PATTERNS": '["(unclosed"]'}
    with pytest.raises(ConfigError, match="SENSOR_REDACT_PATTERNS"):
        load_config(environ=environ)
    environ["SENSOR_ENABLED"] = "false"  # a disabled sensor checks nothing
    assert load_config(environ=environ).enabled is False


def test_valid_redaction_and_deny_settings_pass() -> None:
    environ = {
        "SENSOR_HUB_URL": "http://h:1",
        "SENSOR_REDACT_NAMES": "pin,cvv",
        "SENSOR_REDACT_PATTERNS": '["\\\\bACCT-\\\\d+\\\\b"]',
        "SENSOR_DENY": "shop.secrets,*/vendor/*",
    }
    assert load_config(environ=environ).hub_url == "http://h:1"


def test_ca_file_must_be_a_loadable_pem_bundle(tmp_path: Path) -> None:
    base = tmp_path
    env = {"SENSOR_HUB_URL": "https://hub.example:8765"}
    with pytest.raises(
        ConfigError, match=r"SENSOR_CA_FILE: got '.*missing.pem', expected .*no such"
    ):
        load_config({**env, "SENSOR_CA_FILE": str(base / "missing.pem")})
    junk = base / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(ConfigError, match=r"SENSOR_CA_FILE: got '.*junk.pem', expected a PEM file"):
        load_config({**env, "SENSOR_CA_FILE": str(junk)})
    with pytest.raises(ConfigError, match="argument ca_file"):
        load_config(env, ca_file=str(junk))


def test_run_passes_the_ca_file_to_the_service() -> None:
    from sensor.agent.run import build_environment

    env = build_environment({}, ca_file="/etc/hub-ca.pem")
    assert env["SENSOR_CA_FILE"] == "/etc/hub-ca.pem"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("SENSOR_SERVICE", "s" * 256, "1 to 255 characters"),
        ("SENSOR_SERVICE", "shop\x1b[2J", "without control characters"),
        ("SENSOR_VERSION", "v\n1", "without control characters"),
        ("SENSOR_LABELS", "zone=" + "z" * 1001, "values of at most 1000"),
        ("SENSOR_LABELS", ",".join(f"k{n}=v" for n in range(65)), "at most 64 labels"),
    ],
)
def test_what_the_hub_would_refuse_at_registration_is_refused_at_start(
    name: str, value: str, expected: str
) -> None:
    with pytest.raises(ConfigError, match=f"{name}: got .*expected .*{expected}"):
        load_config({"SENSOR_HUB_URL": "http://127.0.0.1:1", name: value})
    with pytest.raises(ConfigError, match="argument labels"):
        load_config({"SENSOR_HUB_URL": "http://127.0.0.1:1"}, labels={"k": "\x00"})


@pytest.mark.parametrize(
    "url", ["https://ops:Zq9hunter2@hub.example:8700", "http://:Zq9hunter2@127.0.0.1:8700"]
)
def test_a_hub_url_with_credentials_is_refused_without_quoting_them(url: str) -> None:
    # The sensor authenticates with SENSOR_TOKEN and never sent a URL's user info: a password
    # there was only ever written to logs and error messages.
    for call in (
        lambda: load_config(environ={"SENSOR_HUB_URL": url}),
        lambda: load_config(environ={}, hub=url),
        lambda: check_hub_url("PYTEST_RUNTIME_HUB", url),
    ):
        with pytest.raises(ConfigError, match="user name or password") as info:
            call()
        assert "Zq9" not in str(info.value)
        assert "hub.example" in str(info.value) or "127.0.0.1" in str(info.value)


def test_a_rejected_setting_does_not_quote_a_secret_it_holds() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"SENSOR_HUB_URL": "http://h:1", "SENSOR_LABELS": "api_key"})
    assert "SENSOR_LABELS" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config(
            environ={
                "SENSOR_HUB_URL": "http://h:1",
                "SENSOR_LABELS": "a=1, db=postgres://u:Zq9pw@h/x, c",
            }
        )
    assert "Zq9" not in str(info.value)


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("SENSOR_CPU_BUDGT", "SENSOR_CPU_BUDGET"),
        ("SENSOR_TIMEOUTS", "SENSOR_TIMEOUT"),
        ("SENSOR_REDACT_NAME", "SENSOR_REDACT_NAMES"),
        ("SENSOR_SERVCE", "SENSOR_SERVICE"),
        ("SENSOR_HUB_ULR", "SENSOR_HUB_URL"),
        ("SENSOR_BAKEND", "SENSOR_BACKEND"),
    ],
)
def test_a_misspelt_variable_is_refused_with_the_name_it_was_meant_to_be(
    name: str, meant: str
) -> None:
    environ = {"SENSOR_HUB_URL": "http://h:1", name: "0.05"}
    with pytest.raises(ConfigError, match=f"{name}: got '0.05'.*did you mean {meant}\\?"):
        load_config(environ=environ)


@pytest.mark.parametrize(
    "name", ["SENSOR_ID", "SENSOR_THRESHOLD_C", "SENSOR_TEST_POSTGRES", "SENSOR_HUB_PORT"]
)
def test_a_services_own_sensor_variables_and_the_hubs_are_left_alone(name: str) -> None:
    environ = {"SENSOR_HUB_URL": "http://h:1", name: "7"}
    assert load_config(environ=environ).hub_url == "http://h:1"


def test_every_sensor_variable_the_code_reads_is_known() -> None:
    # The near-miss check is only as good as its list: every "SENSOR_..." literal in the sensor
    # and the plugin is a variable the list holds, the hub's, or an internal constant.
    import re
    from pathlib import Path as P

    from sensor.config import SENSOR_VARIABLES
    from sensor.hub.settings import known_names

    root = P(__file__).resolve().parents[4]
    found: set[str] = set()
    for package in ("sensor", "pytest_runtime"):
        for path in (root / package).rglob("*.py"):
            found.update(re.findall(r"[\"'](SENSOR_[A-Z0-9_]*[A-Z0-9])[\"']", path.read_text()))
    internal = {"SENSOR_WORK", "SENSOR_WORKING"}
    assert found - SENSOR_VARIABLES - known_names() - internal == set()


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("foo.bar:", "a dotted module name"),
        ("my-module", "a dotted module name"),
        ("app/[ab.py", "a file glob with its `\\[` closed"),
        ("[", "a file glob with its `\\[` closed"),
    ],
)
def test_a_deny_entry_that_can_match_nothing_is_refused_at_start(entry: str, expected: str) -> None:
    environ = {"SENSOR_HUB_URL": "http://h:1", "SENSOR_DENY": f"shop.secrets,{entry}"}
    with pytest.raises(
        ConfigError, match=f"SENSOR_DENY: got entry '{re.escape(entry)}', expected {expected}"
    ):
        load_config(environ=environ)


def test_inside_the_host_a_bad_deny_entry_is_left_out_and_the_others_apply() -> None:
    from sensor.deny import DenyList

    deny = DenyList.from_env({"SENSOR_DENY": "foo.bar:,shop.secrets"}, strict=False)
    assert "shop.secrets" in deny.modules
    assert "foo.bar:" not in deny.modules


@pytest.mark.parametrize("name", ["SENSOR_TOKN", "SENSOR_CLIENT_TOKN"])
def test_a_misspelt_token_variable_is_refused_without_showing_its_value(name: str) -> None:
    environ = {"SENSOR_HUB_URL": "http://h:1", name: "Zq9-plain-token-value"}
    with pytest.raises(ConfigError, match=f"{name}: got a value, expected no such variable") as e:
        load_config(environ=environ)
    assert "Zq9" not in str(e.value)
