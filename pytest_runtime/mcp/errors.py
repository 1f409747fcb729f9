"""Errors of the MCP server's tools: each one is what the agent reads, so it says what to do.

The tree (below :class:`pytest_runtime.errors.RuntimeProbeError`)::

    InvestigationError                 a tool call cannot be answered; the message says why
    ├── ArgumentError (ValueError)     a bad argument: names it, its value and what was expected
    ├── RefusedError                   the call is valid but refused: says what to do instead
    └── HubCallError                   the hub could not be reached or answered an error

The server turns each one into an MCP tool error (``isError: true``) with the message as its
text; nothing else of a failure (no traceback, no token) reaches the agent.
"""

from __future__ import annotations

from pytest_runtime.errors import RuntimeProbeError

__all__ = ["ArgumentError", "HubCallError", "InvestigationError", "RefusedError"]

_MAX_VALUE = 200  # characters of an offending value repeated in a message


class InvestigationError(RuntimeProbeError):
    """A tool call of the MCP server cannot be answered."""


class ArgumentError(InvestigationError, ValueError):
    """A tool argument is invalid."""

    def __init__(self, argument: str, value: object, expected: str) -> None:
        self.argument = argument
        self.value = value
        self.expected = expected
        shown = repr(value)
        if len(shown) > _MAX_VALUE:
            shown = shown[: _MAX_VALUE - 3] + "..."
        super().__init__(f"argument {argument!r}: got {shown}, expected {expected}")


class RefusedError(InvestigationError):
    """A valid call the server refuses (no live source, too many probes, ...), with the way out."""

    def __init__(self, reason: str, instead: str) -> None:
        self.reason = reason
        self.instead = instead
        super().__init__(f"refused: {reason}. Instead: {instead}")


class HubCallError(InvestigationError):
    """The hub could not be reached, refused the token, or answered an error."""
