"""Bounded, deterministic answers: every tool answer is JSON measured against a size budget.

Tools bound their own lists first (and say ``"+N more"``); :func:`render` is the last guard: it
serializes with sorted keys and, while the text is over budget, halves the longest list (or
cuts the longest string) and records each cut with its count under ``"cut"``, so nothing
disappears silently. :func:`shrink` bounds one captured value the same way for display.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["dumps", "preview", "render", "shrink"]

_CUT_KEY = "cut"
_MAX_NOTES = 8  # cut notes listed (more are counted)


def dumps(payload: Any) -> str:
    """The one serialization of every answer: sorted keys, compact, UTF-8 text."""
    return json.dumps(
        payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str
    )


def render(payload: dict[str, Any], budget: int) -> str:
    """``payload`` as JSON of at most ``budget`` characters; cuts are listed under ``"cut"``."""
    text = dumps(payload)
    if len(text) <= budget:
        return text
    data = json.loads(text)  # a private copy, already plain JSON
    earlier: list[str] = list(data.pop(_CUT_KEY, []) or [])
    cuts: dict[str, tuple[int, int, str]] = {}  # path -> (kept, original size, unit)

    def notes() -> list[str]:
        lines = earlier + [
            f"{path}: kept {kept} of {total} {unit}"
            for path, (kept, total, unit) in sorted(cuts.items())
        ]
        if len(lines) > _MAX_NOTES:
            lines = [*lines[: _MAX_NOTES - 1], f"... and {len(lines) - _MAX_NOTES + 1} more cuts"]
        return lines

    def note(path: str, kept: int, total: int, unit: str) -> None:
        total = cuts[path][1] if path in cuts else total
        cuts[path] = (kept, total, unit)

    for _ in range(400):  # each round at least halves one list, mapping or string
        text = dumps({**data, _CUT_KEY: notes()})
        if len(text) <= budget:
            return text
        path, node, key = _largest(data)
        if node is None:
            break
        value = node[key]
        if isinstance(value, list) and len(value) > 1:
            node[key] = value[: len(value) // 2]
            note(path, len(value) // 2, len(value), "items")
        elif isinstance(value, str) and len(value) > 40:
            keep = len(value) // 2
            node[key] = value[:keep]
            note(path, keep, len(value), "characters")
        elif isinstance(value, dict) and len(value) > 1:
            names = sorted(value)
            node[key] = {k: value[k] for k in names[: len(names) // 2]}
            note(path, len(names) // 2, len(names), "keys")
        else:
            node[key] = f"<cut: {len(dumps(value))} characters>"
            earlier.append(f"{path}: replaced by its size")
    # Not reached in practice (every round shrinks something); still, never exceed the budget.
    size = len(dumps(payload))
    for fallback in (
        {"error": f"the answer ({size} characters) did not fit the size budget", _CUT_KEY: notes()},
        {"error": f"the answer ({size} characters) did not fit the size budget"},
    ):
        text = dumps(fallback)
        if len(text) <= budget:
            return text
    return dumps({"error": "too large"})


def _largest(data: Any) -> tuple[str, Any, Any]:
    """(path, container, key) of the value to cut next, below the top level.

    Lists are cut first (dropping items of a collection loses less than mangling a record):
    the largest list whose size is at least a quarter of the largest candidate, else the
    largest candidate (a long string, a mapping, or a one-item container over 200 characters).
    """
    found: dict[str, tuple[int, str, Any, Any]] = {}

    def consider(kind: str, size: int, path: str, node: Any, key: Any) -> None:
        if size > found.get(kind, (0,))[0]:
            found[kind] = (size, path, node, key)

    def visit(node: Any, path: str, depth: int) -> None:
        if depth > 16:
            return
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if depth == 0 and key == _CUT_KEY:
                continue
            sub = (f"{path}.{key}" if isinstance(node, dict) else f"{path}[{key}]").lstrip(".")
            if isinstance(value, list):
                size = len(dumps(value))
                if len(value) > 1:
                    consider("list", size, sub, node, key)
                elif size > 200:
                    consider("other", size, sub, node, key)
                visit(value, sub, depth + 1)
            elif isinstance(value, dict):
                size = len(dumps(value))
                if len(value) > 1:
                    consider("dict", size, sub, node, key)
                elif size > 200:
                    consider("other", size, sub, node, key)
                visit(value, sub, depth + 1)
            elif isinstance(value, str) and len(value) > 40:
                consider("str", len(value), sub, node, key)

    visit(data, "", 0)
    top = max((entry[0] for entry in found.values()), default=0)
    if not found:
        return "", None, None
    if "list" in found and found["list"][0] * 4 >= top:
        choice = found["list"]
    else:
        choice = max(found.values(), key=lambda entry: entry[0])
    return choice[1], choice[2], choice[3]


_LEVELS = (
    (50, 200, 8),
    (20, 120, 6),
    (10, 80, 5),
    (5, 60, 4),
    (3, 40, 3),
    (2, 24, 2),
    (1, 16, 1),
    (0, 8, 0),
)


def shrink(value: Any, max_chars: int) -> tuple[Any, bool]:
    """``value`` (typed JSON) bounded to about ``max_chars`` serialized; True if anything was cut.

    Lists keep their first items and end with ``"...N more items"``; mappings keep their first
    keys (sorted) and gain ``"...": "N more keys"``; strings end with ``...(+N chars)``; below
    the depth limit a container becomes ``"<list of N>"`` / ``"<mapping of N>"``.
    """
    if len(dumps(value)) <= max_chars:
        return value, False
    for items, chars, depth in _LEVELS:
        cut = _limit(value, items, chars, depth)
        if len(dumps(cut)) <= max_chars:
            return cut, True
    return f"<cut: {len(dumps(value))} characters>", True


def _limit(value: Any, items: int, chars: int, depth: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= chars else value[:chars] + f"...(+{len(value) - chars} chars)"
    if isinstance(value, list):
        if depth <= 0:
            return f"<list of {len(value)}>"
        kept = [_limit(v, items, chars, depth - 1) for v in value[:items]]
        if len(value) > items:
            kept.append(f"...{len(value) - items} more items")
        return kept
    if isinstance(value, dict):
        if depth <= 0:
            return f"<mapping of {len(value)}>"
        # Typed-JSON markers (@t, @redacted, ...) stay first: they say what the value is.
        names = sorted(value, key=lambda k: (not str(k).startswith("@"), str(k)))
        kept_map = {k: _limit(value[k], items, chars, depth - 1) for k in names[: max(items, 1)]}
        if len(names) > max(items, 1):
            kept_map["..."] = f"{len(names) - max(items, 1)} more keys"
        return kept_map
    return value


def preview(value: Any, limit: int = 120) -> str:
    """A one-line reading of a typed-JSON value (docs/reference/encoding.md) for listings."""
    if isinstance(value, dict) and "@t" in value:
        type_name = str(value["@t"]).rsplit(".", 1)[-1]
        if "@redacted" in value:
            text = f"<{type_name} redacted: {value['@redacted']}>"
        elif "v" in value and not isinstance(value["v"], list | dict):
            text = f"{type_name}({value['v']!r})"
        elif "v" in value:
            text = f"{type_name}({dumps(value['v'])})"
        elif "@attrs" in value:
            text = f"{type_name}({dumps(value['@attrs'])})"
        else:
            text = dumps(value)
    elif isinstance(value, str):
        text = repr(value)
    else:
        text = dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
