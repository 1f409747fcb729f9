"""What an agent places: the probe built from tool arguments, and the session's record of it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from pytest_runtime.mcp.errors import ArgumentError

__all__ = [
    "AGGREGATED",
    "AGGREGATE_DEFAULT_MAX_HITS",
    "AGGREGATE_MAX_MAX_HITS",
    "HYPOTHESIS_RATE",
    "KINDS",
    "Placed",
    "build_probe",
]

KINDS = ("snapshot", "log", "counter", "timer", "expect")
AGGREGATED = ("counter", "timer")
#: Aggregated kinds count firings, not captures: their hit cap counts firings.
AGGREGATE_DEFAULT_MAX_HITS = 1_000_000
AGGREGATE_MAX_MAX_HITS = 100_000_000
#: A hypothesis probe counts every evaluation, but captures example states slowly: true ones at
#: this rate and false or failing ones at the same rate (per second and source). A rare outcome
#: finds a token waiting and is captured; a common one is sampled, so the hit cap is not spent in
#: seconds by the outcome nobody needs a thousand examples of.
HYPOTHESIS_RATE = 0.5

# Probe model fields whose tool argument has another name.
_ARGUMENT_OF_FIELD = {
    "limits.rate": "rate",
    "limits.max_hits": "max_hits",
    "location.line": "location",
}


@dataclasses.dataclass
class Placed:
    """A probe this session placed, and what the session knows about it."""

    probe_id: str
    purpose: str  #: "probe" or "hypothesis"
    kind: str
    location: str
    hypothesis: str
    selector: dict[str, Any]
    ttl: float
    max_hits: int
    created_at: float
    expires_at: float
    expression: str | None = None
    removed: bool = False
    last_hits: int = -1  #: hit count at the last status poll (-1: never polled)
    empty_polls: int = 0  #: status polls in a row that saw no new hit

    def describe(self, now: float) -> dict[str, Any]:
        data: dict[str, Any] = {
            "probe_id": self.probe_id,
            "purpose": self.purpose,
            "kind": self.kind,
            "location": self.location,
            "hypothesis": self.hypothesis,
            "max_hits": self.max_hits,
            "ttl_seconds": self.ttl,
            "expires_in_seconds": max(0, round(self.expires_at - now)),
        }
        if self.expression is not None:
            data["expression"] = self.expression
        if self.removed:
            data["removed_by_this_session"] = True
        return data


def build_probe(fields: dict[str, Any], names: Mapping[str, str]) -> Any:
    """A validated :class:`sensor.probes.Probe`; errors name the tool's own arguments.

    ``names`` maps probe model fields to the tool's argument names where they differ
    (check_hypothesis calls the expectation ``expression``). Every expression is compiled by
    the sensor's sandbox now, so a refused one is an argument error, never a probe in error.
    """
    from sensor import expressions
    from sensor.errors import ExpressionError, ProbeSpecError
    from sensor.probes import Probe

    try:
        probe = Probe.from_dict(fields)
    except ProbeSpecError as exc:
        field = exc.field.split("[", 1)[0]
        argument = _ARGUMENT_OF_FIELD.get(exc.field, names.get(field, field))
        raise ArgumentError(argument, exc.value, exc.expected) from exc
    checks: list[tuple[str, str | None, Callable[[str], Any]]] = [
        (names.get("condition", "condition"), probe.condition, expressions.compile),
        (names.get("expect", "expect"), probe.expect, expressions.compile),
        ("template", probe.template, expressions.compile_template),
    ]
    checks += [("capture", spec.expr, expressions.compile) for spec in probe.capture]
    for argument, source, compile_one in checks:
        if source is None:
            continue
        try:
            compile_one(source)
        except ExpressionError as exc:
            raise ArgumentError(
                argument, source, f"an expression the sensor accepts ({exc})"
            ) from exc
    return probe
