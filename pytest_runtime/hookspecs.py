"""The plugin's own hooks, added to pytest through ``pytest_addhooks``.

Implement them in a ``conftest.py`` or a plugin like any pytest hook.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_runtime.compare import ProbeResult

__all__ = [
    "pytest_runtime_constructors",
    "pytest_runtime_noise_rules",
    "pytest_runtime_serializers",
    "pytest_runtime_verdict",
]


@pytest.hookspec
def pytest_runtime_serializers(
    config: pytest.Config,
) -> Mapping[str, Callable[[dict[str, Any]], Any]] | None:
    """Return serializers for your types, keyed by the encoded type name (``"@t"``).

    The sensor never runs user code while it captures, so a user object arrives as typed JSON
    such as ``{"@t": "money.Money", "@attrs": {"amount": ..., "currency": ...}}``. A serializer
    receives that encoded value (from test-time and production hits alike) and returns the
    JSON value to compare instead, e.g. ``{"@t": "money.Money", "v": "12.50 EUR"}``. It runs in
    the pytest process on plain data, never inside the service. Every implementation's mapping
    is merged; for the same type name the first plugin wins (``tryfirst`` goes first).
    """


@pytest.hookspec
def pytest_runtime_constructors(
    config: pytest.Config | None,
) -> Mapping[str, Callable[[dict[str, Any]], Any]] | None:
    """Return constructors for your types, keyed by the encoded type name (``"@t"``).

    Replay, the evidence strategies and written regression tests rebuild production values
    in the test process. Builtins, ``Decimal``, dates and times, ``UUID``, enums, dataclasses
    and named tuples are rebuilt from their classes; any other class needs a constructor. It
    receives the rebuilt fields (``{"amount": Decimal("12.50"), "currency": "EUR"}``), or
    ``{"value": v}`` for a value encoded as ``"v"``, and returns the object::

        def pytest_runtime_constructors(config):
            return {"money.Money": lambda fields: Money(fields["amount"], fields["currency"])}

    A state holding a type with no constructor is counted as not rebuildable, never replayed
    as something else. Every implementation's mapping is merged; the first plugin wins.
    ``config`` is None when called outside a pytest run (``python -m pytest_runtime``).
    """


@pytest.hookspec
def pytest_runtime_noise_rules(config: pytest.Config) -> Sequence[Any] | None:
    """Return noise rules to add to every probe's comparison.

    Each rule is passed to the comparison as is: a state path glob such as
    ``"captures.order.request_id"`` (compared by type only), or a rule object of
    ``pytest_runtime.compare`` (see the comparison reference). The lists of all
    implementations are concatenated, in hook call order.
    """


@pytest.hookspec
def pytest_runtime_verdict(config: pytest.Config, result: ProbeResult) -> None:
    """Called once per probe and test with its verdict, after the comparison.

    ``result.verdict.verdict`` is ``ok``, ``diverged``, ``violated`` or ``inconclusive``; use
    it to send verdicts elsewhere (a dashboard, a chat, a ticket). Called on the xdist
    controller only, in a deterministic order (test node id, then location).
    """
