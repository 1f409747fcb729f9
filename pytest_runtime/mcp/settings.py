"""The MCP server's settings: the plugin's hub URL and client token, plus the agents' limits."""

from __future__ import annotations

import dataclasses
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from pytest_runtime.errors import OptionError
from pytest_runtime.options import ENV_HUB, ENV_TOKEN, ENV_TOKEN_OLD

__all__ = ["ENV_HUB", "ENV_SERVICE", "ENV_TOKEN", "ServerSettings"]

#: The default service of the probes an agent places (the plugin's ``--runtime-service``).
ENV_SERVICE = "PYTEST_RUNTIME_SERVICE"


def _hub(env: Mapping[str, str]) -> str:
    """``$PYTEST_RUNTIME_HUB`` as the plugin reads it: blank or not a URL is an error naming it."""
    from sensor.config import check_hub_url
    from sensor.errors import ConfigError

    raw = env.get(ENV_HUB)
    if raw is None:
        return ""
    try:
        return check_hub_url(ENV_HUB, raw)
    except ConfigError:
        raise OptionError(ENV_HUB, raw, "an http:// or https:// URL of the hub") from None


def _service(env: Mapping[str, str]) -> str | None:
    """``$PYTEST_RUNTIME_SERVICE``; blank is an error (it would widen every call to every
    service without a word)."""
    raw = env.get(ENV_SERVICE)
    if raw is not None and not raw.strip():
        raise OptionError(ENV_SERVICE, raw, "a service name (unset it for every live source)")
    return raw


@dataclasses.dataclass(frozen=True)
class ServerSettings:
    """Everything the tools depend on; every limit an agent meets is one of these fields.

    The hub URL and token are the plugin's (``PYTEST_RUNTIME_HUB``, ``SENSOR_CLIENT_TOKEN``, or
    its former name ``PYTEST_RUNTIME_TOKEN``):
    one client token serves the plugin, the CLI and the agents.
    """

    hub: str
    token: str | None = None
    #: selector service when a tool call names none (None: every live source)
    service: str | None = None
    default_ttl: float = 600.0  #: seconds a probe lives when the agent gives no ttl_seconds
    max_ttl: float = 3600.0  #: the longest ttl_seconds accepted
    min_ttl: float = 5.0
    default_max_hits: int = 100  #: hit cap of a probe when the agent gives none
    hypothesis_max_hits: int = 500  #: hit cap of a hypothesis check (examples, captured slowly)
    max_max_hits: int = 10_000  #: the largest hit cap accepted
    max_probes: int = 10  #: active probes one session may hold at once
    max_rate: float = 50.0  #: captured hits per second per source, at most
    max_wait: float = 20.0  #: the longest wait_seconds of a polling tool
    budget_chars: int = 12_000  #: serialized size of one answer, at most (about 3,000 tokens)
    summary_hits: int = 2000  #: hits read to summarize evidence (the rest are counted)
    project_dir: Path = dataclasses.field(default_factory=Path.cwd)  #: where pytest runs
    python: str = sys.executable  #: the interpreter that runs pytest for compare_test
    compare_max_wait: float = 600.0  #: the longest --runtime-wait of compare_test
    timeout: float = 10.0  #: seconds per hub request

    def __post_init__(self) -> None:
        if not self.hub.startswith(("http://", "https://")):
            raise OptionError("--hub", self.hub, "an http:// or https:// URL of the hub")
        object.__setattr__(self, "hub", self.hub.rstrip("/"))
        for name in ("default_ttl", "max_ttl", "min_ttl", "max_wait", "max_rate", "timeout"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise OptionError(name, value, "a positive number of seconds")
        if not self.min_ttl <= self.default_ttl <= self.max_ttl:
            raise OptionError(
                "--default-ttl",
                self.default_ttl,
                f"seconds between {self.min_ttl:g} and --max-ttl ({self.max_ttl:g})",
            )
        for name in (
            "default_max_hits",
            "hypothesis_max_hits",
            "max_max_hits",
            "max_probes",
            "budget_chars",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise OptionError(name, value, "a positive integer")
        if self.budget_chars < 2000:
            raise OptionError("budget_chars", self.budget_chars, "at least 2000 characters")

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: object
    ) -> ServerSettings:
        """Settings from the plugin's environment variables, then ``overrides`` (not None)."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {
            # the variable is checked only when no --hub overrides it
            "hub": _hub(env) if overrides.get("hub") is None else "",
            "token": env.get(ENV_TOKEN) or env.get(ENV_TOKEN_OLD) or None,
            "service": _service(env),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values["hub"]:
            raise OptionError(
                "--hub", None, f"the hub URL: pass --hub URL or set {ENV_HUB} (as for the plugin)"
            )
        return cls(**values)  # type: ignore[arg-type]
