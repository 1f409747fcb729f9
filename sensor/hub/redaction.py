"""Validation of the redaction rules an admin sets on the hub, before any sensor receives them.

The rules run inside production services on every captured string, so the hub refuses what
would break or slow a sensor: a pattern that does not compile, one that matches the empty
string (it would redact every value), one with nested repetition (``(a+)+``: matching can take
exponential time), names that normalize to nothing, and counts or lengths past fixed bounds.
The final check compiles the rules with the sensor's own :class:`sensor.redaction.Redactor`,
so what the hub accepts the sensors accept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sensor.errors import ConfigError
from sensor.redaction import Redactor, normalize_name

__all__ = [
    "MAX_NAME_CHARS",
    "MAX_PATTERN_CHARS",
    "MAX_RULES",
    "RULE_FIELDS",
    "RuleError",
    "validate_rules",
]

#: Most entries in each of ``names``, ``patterns`` and ``allow``.
MAX_RULES = 256
#: Longest name (``names`` and ``allow``), in characters.
MAX_NAME_CHARS = 128
#: Longest pattern, in characters.
MAX_PATTERN_CHARS = 512
RULE_FIELDS = ("names", "patterns", "allow")


class RuleError(ValueError):
    """One refused rule: ``field`` is e.g. ``"patterns[2]"``; the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def _strings(field: str, value: Any, limit: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RuleError(field, f"got {value!r}, expected a list of strings")
    if len(value) > MAX_RULES:
        raise RuleError(field, f"got {len(value)} entries, expected at most {MAX_RULES}")
    out: list[str] = []
    for index, item in enumerate(value):
        where = f"{field}[{index}]"
        if not isinstance(item, str):
            raise RuleError(where, f"got {item!r}, expected a string")
        text = item.strip() if field != "patterns" else item
        if not text:
            raise RuleError(where, f"got {item!r}, expected a non-empty string")
        if len(text) > limit:
            raise RuleError(where, f"got {len(text)} characters, expected at most {limit}")
        if text not in out:  # a repeated entry changes nothing: keep the first
            out.append(text)
    return out


def _repeats(tree: Any) -> list[tuple[int, int, Any]]:
    """The repetitions (min, max, body) directly or indirectly inside a parsed pattern."""
    from re import _parser  # type: ignore[attr-defined]

    found: list[tuple[int, int, Any]] = []
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, _parser.SubPattern):
            for op, av in node:
                if str(op) in ("MAX_REPEAT", "MIN_REPEAT"):
                    found.append((av[0], av[1], av[2]))
                stack.append(av)  # repeats inside repeats count too
        elif isinstance(node, tuple | list):
            stack.extend(node)
    return found


def _nested_repetition(pattern: str) -> bool:
    """True for ``(a+)+``, ``(a*b?)*``, ``(a{1,9})+``: a variable repetition inside another.

    Possessive repeats (``a++``) never backtrack and are not counted. On an interpreter whose
    private ``re._parser`` differs, the check is skipped (the sensor still bounds the text).
    """
    try:
        from re import _constants, _parser  # type: ignore[attr-defined]

        unbounded = _constants.MAXREPEAT
        for _low, high, body in _repeats(_parser.parse(pattern)):
            if high <= 1:
                continue
            for inner_low, inner_high, _ in _repeats(body):
                variable = inner_high > 1 and inner_low != inner_high
                if variable and (high == unbounded or inner_high == unbounded):
                    return True
        return False
    except Exception:  # the check is a guard, never a reason to refuse a valid rule
        return False


def _check_pattern(where: str, pattern: str) -> None:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise RuleError(
            where, f"{pattern!r} is not a valid Python regular expression: {exc}"
        ) from None
    if compiled.search("") is not None:
        raise RuleError(
            where, f"{pattern!r} matches the empty string, so it would redact every value"
        )
    if _nested_repetition(pattern):
        raise RuleError(
            where,
            f"{pattern!r} nests an unbounded repetition inside another (like '(a+)+'), which "
            "can take exponential time on a hostile value; bound both (like "
            "'(?:[a-z]{1,63}\\.){0,8}') or remove the nesting",
        )


def validate_rules(data: Mapping[str, Any]) -> dict[str, list[str]]:
    """The rules of a ``PUT /v1/redaction`` body, checked; raises :class:`RuleError`.

    A missing field is an empty list: the body replaces the whole rule set.
    """
    unknown = sorted(set(data) - set(RULE_FIELDS))
    if unknown:
        raise RuleError("redaction", f"unknown field(s) {unknown!r}, expected only {RULE_FIELDS}")
    names = _strings("names", data.get("names"), MAX_NAME_CHARS)
    patterns = _strings("patterns", data.get("patterns"), MAX_PATTERN_CHARS)
    allow = _strings("allow", data.get("allow"), MAX_NAME_CHARS)
    for field, values in (("names", names), ("allow", allow)):
        for index, name in enumerate(values):
            if not normalize_name(name):
                raise RuleError(
                    f"{field}[{index}]",
                    f"got {name!r}, expected a name with a letter or digit "
                    "('-', '_', '.' and spaces are ignored when names are compared)",
                )
    redacted = {normalize_name(name): name for name in names}
    for index, name in enumerate(allow):
        if normalize_name(name) in redacted:
            raise RuleError(
                f"allow[{index}]",
                f"{name!r} is also in names as {redacted[normalize_name(name)]!r}; "
                "a name is either redacted or allowed",
            )
    for index, pattern in enumerate(patterns):
        _check_pattern(f"patterns[{index}]", pattern)
    try:  # what the sensors will run: if their Redactor refuses it, so do we
        Redactor(names=names, patterns=patterns, allow=allow)
    except ConfigError as exc:
        raise RuleError("redaction", str(exc)) from None
    return {"names": names, "patterns": patterns, "allow": allow}
