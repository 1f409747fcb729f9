"""The hub's settings: one frozen dataclass, from CLI flags and ``SENSOR_HUB_*`` variables."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from sensor.errors import ConfigError
from sensor.redaction import redact_error

__all__ = ["HubSettings"]

#: Settings that may come from a file (``SENSOR_HUB_<NAME>_FILE``): tokens, and the database URL
#: (it may hold a password).
_SECRETS = ("db", "admin_token", "sensor_token", "client_token")


@dataclasses.dataclass(frozen=True, slots=True)
class HubSettings:
    """Everything the hub's behaviour depends on (network options live in the CLI)."""

    db: str = "sensor-hub.db"  #: SQLite file (``:memory:`` for tests) or postgresql:// URL
    sqlite_synchronous: str = "FULL"  #: FULL: a batch survives power loss once acknowledged
    admin_token: str | None = None  #: created at start if given (scope admin)
    sensor_token: str | None = None  #: created at start if given (scope sensor)
    client_token: str | None = None  #: created at start if given (scope client)
    max_body: int = 8 * 1024 * 1024  #: bytes; larger request bodies get 413
    max_json_depth: int = 200  #: nesting of a JSON body; deeper gets 400
    max_json_containers: int = 100_000  #: JSON objects and arrays in one body; more gets 413
    max_json_items: int = 500_000  #: JSON values in one body; more gets 413
    large_body: int = 1024 * 1024  #: bytes; bodies this large (or of unknown length) queue...
    max_large_bodies: int = 2  #: ...so that at most this many are read and handled at once
    poll_wait: float = 25.0  #: long-poll wait suggested to sensors at register
    max_poll_wait: float = 60.0  #: upper bound of ``?wait=``
    heartbeat_interval: float = 10.0  #: suggested to sensors at register
    stale_after: float = 30.0  #: a source silent this long is stale
    gone_after: float = 300.0  #: a source silent this long is gone
    default_ttl: float = 3600.0  #: probe lifetime when the request gives none
    max_ttl: float = 7 * 24 * 3600.0  #: longest probe lifetime accepted
    max_hits_per_probe: int = 100_000  #: retention by probe: at most this many hits kept
    retention: float | None = 7 * 24 * 3600.0  #: retention by age (seconds); None keeps all
    sweep_interval: float = 1.0  #: how often expiry and retention run
    touch_interval: float = 1.0  #: how often the sources' last-seen times are written
    max_page: int = 1000  #: largest ``limit`` of a hits page
    otel_endpoint: str | None = None  #: OTLP/HTTP base URL: export hits, counters, timers
    otel_metric_interval: float = 10.0  #: seconds between two metric exports

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"hub setting {field.name}: got {value!r}, expected >= 0")
        if self.max_body < 1024:
            raise ConfigError(f"hub setting max_body: got {self.max_body!r}, expected >= 1024")
        for name in ("max_json_depth", "max_json_containers", "max_json_items", "max_large_bodies"):
            if getattr(self, name) < 1:
                raise ConfigError(f"hub setting {name}: got {getattr(self, name)!r}, expected >= 1")
        if self.gone_after < self.stale_after:
            raise ConfigError(
                f"hub setting gone_after: got {self.gone_after!r}, expected >= stale_after "
                f"({self.stale_after!r})"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> HubSettings:
        """Settings from ``SENSOR_HUB_<FIELD>`` variables, then ``overrides`` (not None) on top."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        for name in _SECRETS:
            # SENSOR_HUB_<NAME>_FILE: the value is in a file a secret store mounted (Docker and
            # Kubernetes secrets), so that it is in no environment listing
            variable = f"SENSOR_HUB_{name.upper()}_FILE"
            if variable in env:
                try:
                    text = Path(env[variable]).read_text(encoding="utf-8").strip()
                except (OSError, UnicodeDecodeError) as exc:
                    raise ConfigError(
                        f"{variable}: cannot read {env[variable]!r} ({exc}), expected a file "
                        f"holding the {name.replace('_', ' ')}"
                    ) from None
                if not text:
                    raise ConfigError(f"{variable}: {env[variable]!r} is empty, expected a value")
                values[name] = text
        _check_names(env)
        for field in dataclasses.fields(cls):
            name = "SENSOR_HUB_" + field.name.upper()
            if name not in env:
                continue
            if field.name in values:
                raise ConfigError(f"{name} and {name}_FILE: both set, expected one of them")
            text = env[name]
            default = field.default
            if not text.strip():
                # set to nothing: a slip (an empty template), not a request for the default
                raise ConfigError(
                    f"{name}: got {text!r}, expected "
                    + ("a number of seconds or 'none'" if field.name == "retention" else "a value")
                    + " (unset the variable for the default)"
                )
            try:
                if isinstance(default, bool):
                    values[field.name] = text.lower() in ("1", "true", "yes", "on")
                elif isinstance(default, int):
                    values[field.name] = int(text)
                elif isinstance(default, float) or field.name == "retention":
                    values[field.name] = None if text.strip().lower() == "none" else float(text)
                else:
                    values[field.name] = text
            except ValueError:
                raise ConfigError(
                    f"{name}: got {redact_error(repr(text))}, expected a number"
                ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]


#: ``SENSOR_HUB_*`` variables read elsewhere: the CLI's network settings, and the sensor's own
#: hub URL (a service and the hub may share an environment).
_OTHER_NAMES = frozenset(
    {
        "SENSOR_HUB_HOST",
        "SENSOR_HUB_PORT",
        "SENSOR_HUB_SSL_CERTFILE",
        "SENSOR_HUB_SSL_KEYFILE",
        "SENSOR_HUB_URL",
    }
)


def known_names() -> frozenset[str]:
    """Every ``SENSOR_HUB_*`` variable something reads."""
    fields = {"SENSOR_HUB_" + field.name.upper() for field in dataclasses.fields(HubSettings)}
    files = {f"SENSOR_HUB_{name.upper()}_FILE" for name in _SECRETS}
    return frozenset(fields | files | _OTHER_NAMES)


def _is_secret_setting(*names: str) -> bool:
    """Whether one of ``names`` (variable names) says it holds a credential, by the
    redactor's name rules (``SENSOR_HUB_ADMIN_TOKEN``)."""
    from sensor.redaction import get_redactor

    try:
        red = get_redactor()
        return any(red.is_secret_name(n) for n in names)
    except Exception:
        return True


def _check_names(env: Mapping[str, str]) -> None:
    """Refuse a ``SENSOR_HUB_*`` variable nothing reads: a misspelt name would otherwise leave
    its setting at the default without a word (``SENSOR_HUB_RETENTON=none`` keeping 7 days)."""
    import difflib

    known = known_names()
    for name in sorted(env):
        if name.startswith("SENSOR_HUB_") and name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            # A misspelt SENSOR_HUB_ADMIN_TOKN holds a token: its value is not shown at all.
            shown = "a value" if _is_secret_setting(name, *close) else redact_error(repr(env[name]))
            raise ConfigError(
                f"{name}: got {shown}, expected no such variable: no hub setting has that "
                f"name ({hint}the settings are in docs/how-to/run-hub.md)"
            )
