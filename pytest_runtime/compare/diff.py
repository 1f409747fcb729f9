"""deepdiff, used with care: one tree-view diff per unseen shape, formatted into stable lines.

Only representative states are diffed (one production state per shape against the nearest
test-time state), never all hits against each other. ``ignore_order`` is off: pairing list items
is quadratic in deepdiff (and objects it cannot hash may diff as equal under it); lists are
compared by position, and ``max_diffs`` bounds the work. deepdiff is imported here, lazily, so
that the plugin does not import it at start-up; no ``Delta`` is ever built or loaded.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from pytest_runtime.compare.decode import DecodedObject, Marked, TypeOnly
from pytest_runtime.compare.shapes import item_path, key_path

__all__ = [
    "STRUCTURAL",
    "decode_state",
    "diff_entries",
    "diff_lines",
    "select_lines",
    "short_repr",
    "type_label",
]

#: Report types that describe structure (shape divergences show only these).
STRUCTURAL = frozenset(
    {
        "type_changes",
        "dictionary_item_added",
        "dictionary_item_removed",
        "attribute_added",
        "attribute_removed",
        "iterable_item_added",
        "iterable_item_removed",
        "set_item_added",
        "set_item_removed",
    }
)
_VERBS = {
    "type_changes": "type changed",
    "values_changed": "value changed",
    "dictionary_item_added": "added",
    "dictionary_item_removed": "removed",
    "attribute_added": "attribute added",
    "attribute_removed": "attribute removed",
    "iterable_item_added": "item added",
    "iterable_item_removed": "item removed",
    "set_item_added": "set item added",
    "set_item_removed": "set item removed",
}
_MAX_DIFFS = 400


def type_label(value: Any) -> str:
    """The type name shown in a line: ``int``, ``None``, ``decimal.Decimal``, ``shop.Cart``."""
    if value is None:
        return "None"
    if isinstance(value, DecodedObject):
        return value._type_name
    if isinstance(value, Marked | TypeOnly):
        return value.type_name
    cls = type(value)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def short_repr(value: Any, limit: int = 80) -> str:
    """A bounded repr of a decoded value (our own classes and builtins only, no user code)."""
    if isinstance(value, decimal.Decimal | datetime.date | datetime.time | uuid.UUID):
        text = f"{type(value).__name__}({str(value)!r})"
    else:
        try:
            text = repr(value)
        except Exception:  # a decoded value is ours, but never let a repr break a report
            text = f"<{type_label(value)}>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _our_path(parts: list[Any]) -> str:
    path = ""
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            path = item_path(path)
        else:
            path = key_path(path, str(part))
    return path


def _related(path: str, focus: str) -> bool:
    if not focus or path == focus:
        return True
    return any(a.startswith((b + ".", b + "[", b + "{")) for a, b in ((path, focus), (focus, path)))


def _line(report_type: str, item: Any) -> str:
    verb = _VERBS.get(report_type, report_type)
    where = item.path()
    t1, t2 = item.t1, item.t2
    if report_type == "type_changes":
        return (
            f"{where}: {verb} {type_label(t1)} -> {type_label(t2)} "
            f"({short_repr(t1)} -> {short_repr(t2)})"
        )
    if report_type == "values_changed":
        return f"{where}: {verb} {short_repr(t1)} -> {short_repr(t2)}"
    if report_type.endswith("added"):
        return f"{where}: {verb} {short_repr(t2)}"
    if report_type.endswith("removed"):
        return f"{where}: {verb} (was {short_repr(t1)})"
    return f"{where}: {verb}"


Entry = tuple[str, str, str, bool]  #: (our path, deepdiff path, line, structural)
_CHANGES = frozenset({"type_changes", "values_changed"})


def _is_redacted(value: Any) -> bool:
    return isinstance(value, Marked) and any(k == "@redacted" for k, _ in value.markers)


def _redaction_only(t1: Any, t2: Any) -> bool:
    """True when a change is only redaction: a redacted value against a value of its type.

    The test process and production may redact by different rules (names, patterns, the
    hub's additions), so a redacted value is compared by its type name only.
    """
    if not (_is_redacted(t1) or _is_redacted(t2)):
        return False
    return type_label(t1) == type_label(t2)


def _aware(value: datetime.datetime | datetime.time) -> bool:
    return value.tzinfo is not None


def _clock_operator() -> Any:
    """A deepdiff operator that compares datetimes and times as they are.

    deepdiff reads a naive datetime as UTC (its ``default_timezone``) and reports the converted
    value: the production side of a naive-versus-aware bug showed a ``+00:00`` it never had,
    and a naive 10:00 against an aware 10:00 UTC was no difference at all. Decoded values
    carry only fixed-offset timezones, so the comparisons below run no user code.
    """
    from deepdiff.operator import BaseOperator

    class _Clock(BaseOperator):
        def give_up_diffing(self, level: Any, diff_instance: Any) -> bool:
            a, b = level.t1, level.t2
            if type(a) is not type(b):
                return False  # a type change: deepdiff reports it
            if _aware(a) != _aware(b) or (a != b or (_aware(a) and a.utcoffset() != b.utcoffset())):
                diff_instance.custom_report_result("values_changed", level)
            return True

    return _Clock(types=[datetime.datetime, datetime.time])


def diff_entries(test_state: Mapping[str, Any], prod_state: Mapping[str, Any]) -> list[Entry]:
    """Every deepdiff difference from a test-time state to a production state, unsorted."""
    try:
        from deepdiff import DeepDiff

        tree = DeepDiff(
            dict(test_state),
            dict(prod_state),
            view="tree",
            ignore_order=False,
            max_diffs=_MAX_DIFFS,
            verbose_level=2,
            custom_operators=[_clock_operator()],
        )
        entries: list[Entry] = []
        for report_type in sorted(tree):
            if report_type not in _VERBS:
                continue
            for item in tree[report_type]:
                if report_type in _CHANGES and _redaction_only(item.t1, item.t2):
                    continue
                ours = _our_path(item.path(output_format="list"))
                line = _line(report_type, item)
                entries.append((ours, item.path(), line, report_type in STRUCTURAL))
    except Exception as exc:  # deepdiff's failure must not lose the verdict
        return [("", "", f"deepdiff failed: {type(exc).__name__}: {str(exc)[:120]}", True)]
    return entries


def select_lines(
    entries: list[Entry], *, focus: str = "", structural_only: bool = False, max_lines: int = 20
) -> list[str]:
    """The lines of ``entries`` about ``focus`` (its parents and children; all when none is),
    sorted by path and bounded; the last line says how many were cut."""
    pool = [e for e in entries if e[3]] if structural_only else entries
    focused = [e for e in pool if _related(e[0], focus)]
    chosen = sorted(focused or pool, key=lambda e: (e[1], e[2]))
    lines = [e[2] for e in chosen[:max_lines]]
    if len(chosen) > max_lines:
        lines.append(f"... {len(chosen) - max_lines} more deepdiff lines")
    return lines


def diff_lines(
    test_state: Mapping[str, Any],
    prod_state: Mapping[str, Any],
    *,
    focus: str = "",
    structural_only: bool = False,
    max_lines: int = 20,
) -> list[str]:
    """deepdiff lines from a test-time state to a production state, sorted and bounded."""
    return select_lines(
        diff_entries(test_state, prod_state),
        focus=focus,
        structural_only=structural_only,
        max_lines=max_lines,
    )


def decode_state(
    captures: Mapping[str, Any] | None, normalize: Callable[[str], bool | str] | None
) -> dict[str, Any]:
    """Decode a hit's captures (name -> typed JSON) with noisy paths normalized to their type."""
    from pytest_runtime.compare.decode import decode

    if not captures:
        return {}
    return {
        str(name): decode(node, normalize=normalize, path=key_path("", str(name)))
        for name, node in captures.items()
    }
