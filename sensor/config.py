"""Sensor settings from keyword arguments and ``SENSOR_*`` environment variables."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import sys
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from sensor.errors import ConfigError

__all__ = [
    "DEFAULT_CPU_BUDGET",
    "ENV_VARS",
    "SensorConfig",
    "check_hub_url",
    "cpu_budget_from_env",
    "load_config",
    "parse_labels",
]

_T = TypeVar("_T")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: Share of one CPU the engine may spend per second on probes (``SENSOR_CPU_BUDGET``).
DEFAULT_CPU_BUDGET = 0.01


@dataclasses.dataclass(frozen=True, slots=True)
class SensorConfig:
    """Everything the in-process agent needs; build it with :func:`load_config`."""

    hub_url: str | None = None  #: base URL of the hub, e.g. http://127.0.0.1:8700
    token: str | None = None  #: bearer token with the ``sensor`` scope
    service: str = "python"  #: service name this source belongs to
    version: str | None = None  #: the service's version (deploy id, git sha ...)
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    enabled: bool = True  #: False: start() does nothing (kill switch)
    queue_size: int = 10_000  #: hits buffered in the process before new ones are dropped
    batch_size: int = 500  #: hits per POST
    flush_interval: float = 1.0  #: seconds between sends while probes are armed
    log_level: str = "WARNING"  #: level of the ``sensor`` logger
    timeout: float = 5.0  #: seconds per HTTP request (a long poll adds its wait)
    max_backoff: float = 30.0  #: ceiling of the retry delay, seconds
    exit_timeout: float = 2.0  #: bound on the final flush at stop() and at exit, seconds
    heartbeat_interval: float | None = None  #: None: what the hub asks for
    poll_wait: float | None = None  #: long-poll wait cap in seconds; None: what the hub asks for
    sigterm_flush: bool = True  #: flush on SIGTERM when the program has no SIGTERM handler
    #: share of one CPU the engine may spend per second (read by sensor.engine.get_engine)
    cpu_budget: float = DEFAULT_CPU_BUDGET
    #: PEM bundle of the CAs that may sign an https hub's certificate (None: the system's)
    ca_file: str | None = None

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with the token hidden (for logs and status)."""
        data = dataclasses.asdict(self)
        data["labels"] = dict(self.labels)
        if self.token:
            data["token"] = "***"
        return data


# name -> (field, parser); the parsers raise ValueError with the expectation as the message.
def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("one of 1, true, yes, on, 0, false, no, off")


def _positive_int(text: str) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError("a positive integer") from None
    if value < 1:
        raise ValueError("a positive integer")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError("a positive number of seconds") from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError("a positive number of seconds")
    return value


def _cpu_fraction(text: str) -> float:
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(
            "a fraction of one CPU > 0, e.g. 0.01 for 1% (1 or more: no budget)"
        ) from None
    if not (value > 0 and math.isfinite(value)):
        raise ValueError("a fraction of one CPU > 0, e.g. 0.01 for 1% (1 or more: no budget)")
    return value


def cpu_budget_from_env(environ: Mapping[str, str] | None = None) -> float:
    """``SENSOR_CPU_BUDGET`` as a fraction (default 0.01); ConfigError naming it if invalid."""
    env = os.environ if environ is None else environ
    raw = env.get("SENSOR_CPU_BUDGET")
    if raw is None:
        return DEFAULT_CPU_BUDGET
    try:
        return _cpu_fraction(raw)
    except ValueError as exc:
        raise ConfigError(f"SENSOR_CPU_BUDGET: got {_shown(raw)}, expected {exc}") from None


def _text(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError("a non-empty string")
    return value


# The hub's bounds on what a source registers (docs/reference/http-api.md): checked here so that
# a service that can never register fails at start, naming the setting, not in the background.
_MAX_NAME = 255
_MAX_LABEL_VALUE = 1000
_MAX_LABELS = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _name(text: str) -> str:
    value = _text(text)
    if len(value) > _MAX_NAME or _CONTROL.search(value):
        raise ValueError(f"1 to {_MAX_NAME} characters without control characters")
    return value


def _log_level(text: str) -> str:
    value = text.strip().upper()
    if value not in _LOG_LEVELS:
        raise ValueError("one of " + ", ".join(_LOG_LEVELS))
    return value


def _hub_url(text: str) -> str:
    value = text.strip().rstrip("/")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("an http:// or https:// URL such as http://127.0.0.1:8700")
    try:
        parts.port  # noqa: B018 - a bad port raises here, at configuration time
    except ValueError:
        raise ValueError("a URL with a valid port") from None
    if parts.query or parts.fragment:
        raise ValueError("a URL without query or fragment")
    if parts.username is not None or parts.password is not None:
        # Never sent (the sensor authenticates with its token): a password there only ever
        # reached logs and error messages.
        raise ValueError("a URL without a user name or password (the token authenticates)")
    return value


def _shown(value: object) -> str:
    """``repr(value)`` for an error message, with every secret in it redacted (a setting may be
    wrong *and* hold a credential: a hub URL with a password, a label holding a DSN)."""
    from sensor.redaction import redact_error

    try:
        return redact_error(repr(value))
    except Exception:
        return "<not shown>"


def check_hub_url(variable: str, raw: str) -> str:
    """``raw`` as a hub base URL (no trailing slash); ConfigError naming ``variable`` if not one.

    One check for every entry point that reads a hub URL (the sensor, ``python -m sensor``, the
    plugin, the MCP server), so that a blank or misspelt value fails the same way everywhere.
    """
    try:
        return _hub_url(raw)
    except ValueError as exc:
        raise ConfigError(f"{variable}: got {_shown(raw)}, expected {exc}") from None


def _ca_file(text: str) -> str:
    """A readable PEM bundle that the ssl module loads (checked now, not at the first call)."""
    import ssl

    path = text.strip()
    if not path:
        raise ValueError("the path of a PEM file of CA certificates")
    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        raise ValueError("the path of a PEM file of CA certificates (no such file)") from None
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"a PEM file of CA certificates that can be loaded ({type(exc).__name__}: {exc})"
        ) from None
    return os.path.abspath(path)


def parse_labels(text: str) -> dict[str, str]:
    """Parse ``k=v,k2=v2``; raise ValueError describing the expected form."""
    labels: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ValueError("comma-separated key=value pairs such as 'region=eu,tier=web'")
        labels[key] = value
    return _check_labels(labels)


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        if not key or len(key) > _MAX_NAME or len(value) > _MAX_LABEL_VALUE:
            raise ValueError(
                f"labels with keys of 1 to {_MAX_NAME} and values of at most {_MAX_LABEL_VALUE} "
                "characters, without control characters"
            )
        if _CONTROL.search(key + value):
            raise ValueError("labels without control characters")
    if len(labels) > _MAX_LABELS:
        raise ValueError(f"at most {_MAX_LABELS} labels")
    return labels


ENV_VARS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "SENSOR_HUB_URL": ("hub_url", _hub_url),
    "SENSOR_TOKEN": ("token", _text),
    "SENSOR_SERVICE": ("service", _name),
    "SENSOR_VERSION": ("version", _name),
    "SENSOR_LABELS": ("labels", parse_labels),
    "SENSOR_ENABLED": ("enabled", _parse_bool),
    "SENSOR_QUEUE_SIZE": ("queue_size", _positive_int),
    "SENSOR_BATCH_SIZE": ("batch_size", _positive_int),
    "SENSOR_FLUSH_INTERVAL": ("flush_interval", _positive_float),
    "SENSOR_LOG_LEVEL": ("log_level", _log_level),
    "SENSOR_TIMEOUT": ("timeout", _positive_float),
    "SENSOR_MAX_BACKOFF": ("max_backoff", _positive_float),
    "SENSOR_EXIT_TIMEOUT": ("exit_timeout", _positive_float),
    "SENSOR_HEARTBEAT_INTERVAL": ("heartbeat_interval", _positive_float),
    "SENSOR_POLL_WAIT": ("poll_wait", _positive_float),
    "SENSOR_SIGTERM_FLUSH": ("sigterm_flush", _parse_bool),
    "SENSOR_CPU_BUDGET": ("cpu_budget", _cpu_fraction),
    "SENSOR_CA_FILE": ("ca_file", _ca_file),
}

_FIELD_TO_ENV = {field: name for name, (field, _) in ENV_VARS.items()}


def _from_argument(field: str, value: object) -> object:
    """Check a keyword argument; strings go through the same parser as the variable."""
    env = _FIELD_TO_ENV[field]
    parser = ENV_VARS[env][1]
    if field == "labels" and isinstance(value, Mapping):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
            raise ConfigError(
                f"argument labels: got {_shown(value)}, expected a mapping of str to str"
            )
        try:
            return _check_labels(dict(value))
        except ValueError as exc:
            raise ConfigError(f"argument labels: got {_shown(value)}, expected {exc}") from None
    if isinstance(value, str):
        try:
            return parser(value)
        except ValueError as exc:
            raise ConfigError(f"argument {field}: got {_shown(value)}, expected {exc}") from None
    expected = {
        "enabled": bool,
        "sigterm_flush": bool,
        "queue_size": int,
        "batch_size": int,
    }.get(field)
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"argument {field}: got {_shown(value)}, expected True or False")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"argument {field}: got {_shown(value)}, expected a positive integer")
        return value
    if field in ("flush_interval", "timeout", "max_backoff", "exit_timeout") or field in (
        "heartbeat_interval",
        "poll_wait",
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (value > 0 and math.isfinite(value))
        ):
            raise ConfigError(
                f"argument {field}: got {_shown(value)}, expected a positive number of seconds"
            )
        return float(value)
    if field == "cpu_budget":
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (value > 0 and math.isfinite(value))
        ):
            raise ConfigError(
                f"argument cpu_budget: got {_shown(value)}, expected a fraction of one CPU > 0"
            )
        return float(value)
    raise ConfigError(f"argument {field}: got {_shown(value)}, expected a string")


def _default_service() -> str:
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    name = os.path.basename(argv0)
    if name.endswith(".py"):
        name = name[:-3]
    return name if name and name not in ("-c", "-m") else "python"


def load_config(environ: Mapping[str, str] | None = None, **arguments: Any) -> SensorConfig:
    """Build the settings: defaults, then ``SENSOR_*`` variables, then non-None arguments.

    Arguments use the field names of :class:`SensorConfig`; ``hub`` is accepted for ``hub_url``.
    Raises :class:`ConfigError` naming the variable (or argument) and the value.
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {"service": _default_service()}
    for name, (field, parser) in ENV_VARS.items():
        raw = env.get(name)
        if raw is None:
            continue
        # A variable set to nothing is a mistake (a template that left it empty), not a request
        # for the default: say so, as for any other bad value.
        if not raw.strip():
            try:
                parser(raw)  # the parser's expectation, for the message
            except ValueError as exc:
                expected = str(exc)
            else:  # labels: an empty list parses, but a blank variable still means a slip
                expected = "KEY=VALUE pairs such as region=eu,tier=web"
            raise ConfigError(
                f"{name}: got {_shown(raw)}, expected {expected} "
                "(unset the variable for the default)"
            )
        try:
            values[field] = parser(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}: got {_shown(raw)}, expected {exc}") from None
    if "hub" in arguments:
        hub = arguments.pop("hub")
        if arguments.get("hub_url") is None:
            arguments["hub_url"] = hub
    for field, value in arguments.items():
        if field not in _FIELD_TO_ENV:
            known = ", ".join(sorted([*_FIELD_TO_ENV, "hub"]))
            raise ConfigError(f"argument {field!r}: unknown setting, expected one of {known}")
        if value is None:
            continue
        values[field] = _from_argument(field, value)
    if values.get("enabled", True) and not values.get("hub_url"):
        raise ConfigError(
            "SENSOR_HUB_URL: got nothing, expected the hub URL (argument hub= or the variable)"
        )
    if values.get("enabled", True):
        _check_names(env)
        _check_redaction_and_deny(env)
        _check_injection(env)
    return SensorConfig(**values)


def _is_secret_setting(*names: str) -> bool:
    """Whether one of ``names`` (variable names) says it holds a credential (``SENSOR_TOKEN``,
    ``SENSOR_HUB_ADMIN_TOKEN_FILE``'s content...), by the redactor's name rules."""
    from sensor.redaction import get_redactor

    try:
        red = get_redactor()
        return any(red.is_secret_name(n) for n in names)
    except Exception:
        return True


#: Every ``SENSOR_*`` variable the sensor, its command line and the plugin read.
SENSOR_VARIABLES: frozenset[str] = frozenset(
    {
        *ENV_VARS,
        "SENSOR_BACKEND",
        "SENSOR_CA_FILE",
        "SENSOR_CLIENT_TOKEN",
        "SENSOR_CPU_BUDGET",
        "SENSOR_DENY",
        "SENSOR_FUNC_VERSION",
        "SENSOR_REDACT_ALLOW",
        "SENSOR_REDACT_NAMES",
        "SENSOR_REDACT_PATTERNS",
    }
)


def _check_names(env: Mapping[str, str]) -> None:
    """Refuse a ``SENSOR_*`` variable that is a near miss of one the sensor reads
    (``SENSOR_CPU_BUDGT``): it would leave its setting at the default without a word. Names far
    from every setting are left alone, since a service may have ``SENSOR_*`` variables of its
    own; the hub's ``SENSOR_HUB_*`` settings are the hub's to check."""
    import difflib

    from sensor.hub.settings import known_names

    hub = known_names()
    known = sorted(SENSOR_VARIABLES)
    for name in sorted(env):
        if not name.startswith("SENSOR_") or name in SENSOR_VARIABLES or name in hub:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.88)
        if close:
            # A misspelt SENSOR_TOKN holds a token: its value is not shown at all.
            shown = "a value" if _is_secret_setting(name, close[0]) else _shown(env[name])
            raise ConfigError(
                f"{name}: got {shown}, expected no such variable: no sensor setting "
                f"has that name (did you mean {close[0]}? the settings are in "
                "docs/reference/sensor-config.md)"
            )


def _check_redaction_and_deny(env: Mapping[str, str]) -> None:
    """Refuse bad ``SENSOR_REDACT_*`` / ``SENSOR_DENY`` values here, with their names.

    The redactor and the deny list read these variables themselves, lazily, inside the host,
    where they must not raise (they log and fall back to their defaults); this is the place
    where a mistake stops ``start()`` and ``python -m sensor run`` instead.
    """
    if any(env.get(name) for name in _REDACT_VARS):
        from sensor.redaction import Redactor

        Redactor.from_env(env)  # raises ConfigError naming the variable and value
    if env.get("SENSOR_DENY"):
        from sensor.deny import DenyList

        DenyList.from_env(env)


def _check_injection(env: Mapping[str, str]) -> None:
    """Refuse an unknown ``SENSOR_BACKEND`` or a non-boolean ``SENSOR_FUNC_VERSION`` here.

    The injection code reads them itself when probes arrive, inside the host, where it only
    logs and falls back; a misspelt value must stop ``start()`` instead, naming the variable.
    """
    raw = env.get("SENSOR_FUNC_VERSION")
    if raw is not None:
        try:
            _parse_bool(raw)
        except ValueError as exc:
            raise ConfigError(f"SENSOR_FUNC_VERSION: got {_shown(raw)}, expected {exc}") from None
    raw = env.get("SENSOR_BACKEND")
    if raw is None:
        return
    from sensor.inject.core import BACKENDS

    if raw not in BACKENDS:
        raise ConfigError(
            f"SENSOR_BACKEND: got {_shown(raw)}, expected one of "
            + ", ".join(repr(name) for name in BACKENDS)
            + " (unset the variable for the default)"
        )


_REDACT_VARS = ("SENSOR_REDACT_NAMES", "SENSOR_REDACT_PATTERNS", "SENSOR_REDACT_ALLOW")
