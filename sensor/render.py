"""Readable, safe text of hub data for people: escaped control characters and decoded values.

Everything a hub returns was written by sensors inside services, and strings in it come from
the services' own data: an ANSI escape sequence, a carriage return or a bidirectional override
in a captured value must not rewrite a terminal or a CI log. :func:`escape_text` shows such
characters as escapes. :func:`render_value` turns one value of the typed JSON encoding
(docs/reference/encoding.md) into a short Python-like text (``Decimal('12.50')``,
``datetime(2026-11-24T13:05:00+00:00)``, ``<str redacted: email, 9-32>``) instead of the raw
encoding. Standard library only: the CLI and the pytest plugin both use it.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["escape_text", "render_captures", "render_value"]

#: Format characters that reorder or hide text (bidirectional controls, zero-width marks).
_INVISIBLE = frozenset(
    "\u061c\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
    "\u2066\u2067\u2068\u2069\u2060\ufeff"
)
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    if code < 0x20 or code == 0x7F or 0x80 <= code < 0xA0:
        return f"\\x{code:02x}"
    if char in _INVISIBLE or 0xD800 <= code < 0xE000:
        return f"\\u{code:04x}"
    return char


def escape_text(text: str) -> str:
    """``text`` with C0/C1 control characters, DEL, bidirectional and zero-width marks and
    lone surrogates written as escapes (``\\x1b``, ``\\n``, ``\\u202e``); backslashes are
    kept as they are (the text is for reading, not for parsing back)."""
    if text.isprintable() and not any(char in _INVISIBLE for char in text):
        return text
    return "".join(_escape_char(char) for char in text)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 3)] + "..."


def render_value(value: Any, limit: int = 80) -> str:
    """A short readable text of one encoded value, escaped, at most ``limit`` characters."""
    return escape_text(_short(_render(value, 0), limit))


def render_captures(captures: Any, limit: int = 160) -> str:
    """``price=Decimal('12.50'), rate=0.1`` for a hit's ``captures``, escaped and bounded."""
    if not isinstance(captures, dict):
        return render_value(captures, limit)
    parts = [f"{name}={_render(value, 0)}" for name, value in captures.items()]
    return escape_text(_short(", ".join(parts), limit))


def _render(value: Any, depth: int) -> str:
    if depth > 8:
        return "..."
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_render(v, depth + 1) for v in value[:20]) + "]"
    if not isinstance(value, dict):
        return repr(value)
    if "@t" not in value:
        return "{" + ", ".join(f"{k!r}: {_render(v, depth + 1)}" for k, v in value.items()) + "}"
    type_name = str(value["@t"])
    short = type_name.rsplit(".", 1)[-1]
    if "@redacted" in value:
        size = f", {value['@len']}" if "@len" in value else ""
        return f"<{short} redacted: {value['@redacted']}{size}>"
    for marker in ("@error", "@depth", "@cycle", "@budget", "@deadline"):
        if marker in value and "v" not in value and "@attrs" not in value:
            detail = value[marker]
            return f"<{short} {marker[1:]}{'' if detail is True else ': ' + str(detail)}>"
    cut = "..." if value.get("@trunc") else ""
    inner = value.get("v")
    if "v" in value:
        if type_name in ("list", "tuple", "set", "frozenset") or isinstance(inner, list):
            items = ", ".join(_render(v, depth + 1) for v in (inner or [])[:20])
            if type_name == "list":
                return f"[{items}{cut}]"
            if type_name == "tuple":
                return f"({items}{cut})"
            return f"{short}({{{items}{cut}}})"
        if isinstance(inner, dict):
            items = ", ".join(f"{k!r}: {_render(v, depth + 1)}" for k, v in inner.items())
            body = f"{{{items}{cut}}}"
            return body if type_name == "dict" else f"{short}({body})"
        if type_name == "str":
            return repr(str(inner)) + (f"...({value.get('@len')} chars)" if cut else "")
        if type_name in ("decimal.Decimal", "uuid.UUID", "int", "float"):
            return f"{short}({str(inner)!r})" if type_name != "int" else str(inner)
        return f"{short}({inner}{cut})"
    if "items" in value and isinstance(value["items"], list):
        pairs = ", ".join(
            f"{_render(pair[0], depth + 1)}: {_render(pair[1], depth + 1)}"
            for pair in value["items"][:20]
            if isinstance(pair, list) and len(pair) == 2
        )
        return f"{{{pairs}{cut}}}"
    if "@attrs" in value and isinstance(value["@attrs"], dict):
        attrs = ", ".join(f"{k}={_render(v, depth + 1)}" for k, v in value["@attrs"].items())
        return f"{short}({attrs}{cut})"
    return json.dumps(value, sort_keys=True, default=str)
