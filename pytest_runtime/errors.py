"""Errors raised by the pytest plugin (markers, evidence files, the hub client, expectations).

The tree::

    RuntimeProbeError                        root of everything the plugin raises
    ├── MarkerError (ValueError)             a runtime_probe marker or fixture call is invalid
    ├── OptionError (ValueError)             a --runtime-* option or runtime_* ini value is invalid
    ├── EvidenceError                        an evidence file cannot be read or written
    │   └── EvidenceFormatError (ValueError) a line of an evidence file is malformed (file, line)
    ├── HubClientError                       talking to the hub failed
    │   ├── HubConfigError (ValueError)      a hub URL, CA file or call argument is invalid
    │   ├── HubUnreachableError              the hub could not be reached
    │   ├── HubAuthError                     the hub refused the token (401/403)
    │   └── HubRequestError                  the hub answered 4xx/5xx or a body that is not JSON
    └── ExpectationViolation (AssertionError) a test-time hit broke the probe's expectation

The hub errors come from the one hub client (:mod:`pytest_runtime.hub`), which the CLI
(``python -m sensor``) uses too: each is also the matching :mod:`sensor.errors` class
(``HubConfigError`` a ``ConfigError``, ``HubUnreachableError`` a ``HubUnavailableError``,
``HubAuthError`` and ``HubRequestError`` a ``HubResponseError``), so either tree catches them.

The plugin turns every error except :class:`ExpectationViolation` into a ``pytest.UsageError``
(or a collection error for a marker) so that users see one clear line, not a traceback.
"""

from __future__ import annotations

from sensor.errors import ConfigError, HubResponseError, HubUnavailableError

__all__ = [
    "EvidenceError",
    "EvidenceFormatError",
    "ExpectationViolation",
    "HubAuthError",
    "HubClientError",
    "HubConfigError",
    "HubRequestError",
    "HubUnreachableError",
    "MarkerError",
    "OptionError",
    "RuntimeProbeError",
]


class RuntimeProbeError(Exception):
    """Root of every error the pytest plugin raises."""


class MarkerError(RuntimeProbeError, ValueError):
    """A ``runtime_probe`` marker (or ``runtime.probe()`` call) has an invalid argument."""

    def __init__(self, argument: str, value: object, expected: str) -> None:
        self.argument = argument
        self.value = value
        self.expected = expected
        super().__init__(f"runtime_probe argument {argument!r}: got {value!r}, expected {expected}")


class OptionError(RuntimeProbeError, ValueError):
    """A ``--runtime-*`` option, ``runtime_*`` ini key or environment variable is invalid."""

    def __init__(self, option: str, value: object, expected: str) -> None:
        self.option = option
        self.value = value
        self.expected = expected
        super().__init__(f"{option}: got {value!r}, expected {expected}")


class EvidenceError(RuntimeProbeError):
    """An evidence file cannot be read or written."""


class EvidenceFormatError(EvidenceError, ValueError):
    """A line of an evidence file is malformed; names the file and the line number."""

    def __init__(self, path: str, line: int, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        super().__init__(f"evidence file {path}, line {line}: {problem}")


class HubClientError(RuntimeProbeError):
    """Talking to the hub failed."""


class HubConfigError(HubClientError, ConfigError):
    """A hub client setting or argument is invalid (URL, CA file); names it and the value."""


class HubUnreachableError(HubClientError, HubUnavailableError):
    """The hub could not be reached (connection refused, DNS, TLS, timeout)."""


class HubAuthError(HubClientError, HubResponseError):
    """The hub refused the token (401: missing or unknown; 403: without the scope needed)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class HubRequestError(HubClientError, HubResponseError):
    """The hub answered with an error status (other than 401/403) or a body that is not JSON."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        # set after super().__init__: HubResponseError's own __init__ would reset them
        self.status = status
        self.code = code


class ExpectationViolation(RuntimeProbeError, AssertionError):
    """A test-time hit broke the probe's ``expect`` expression (fails the test like an assert)."""
