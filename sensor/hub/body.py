"""Request bodies read within bounds: bytes, then nesting and element counts, then every scalar.

A JSON body is measured on its raw bytes before any Python object is built: strings are blanked
with one regular expression, then brackets and commas are counted (C loops over bytes). A body
nested deeper than the limit (``json`` would raise ``RecursionError``) or with more containers or
values than the limit (8 MiB of ``{}`` is 2.8 million dicts, about 180 MB of objects) is refused
here, at the cost of a few copies of the raw bytes. What is parsed is then walked once: every
string must be encodable as UTF-8 (no lone surrogate), every integer must fit 64 bits (SQLite's
INTEGER), every float must be finite. The first value that breaks a rule is named by its path.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import operator
import re
from typing import Any

__all__ = [
    "INT_MAX",
    "INT_MIN",
    "BodyError",
    "BodyLimits",
    "bad_value",
    "check_values",
    "parse_body",
    "scan_body",
]

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

# Only quotes, brackets and commas matter to the counts: everything else is deleted first, so
# the string-blanking expression runs over a small buffer.
_NOT_STRUCTURAL = bytes(b for b in range(256) if b not in b'"[]{},')
_WINDOW = 64 * 1024  # bytes of structure split at once: bounds the list of pieces
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# opening bracket -> 2, closing -> 0: the depth after n brackets is (sum of the first n) - n
_DEPTH = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_SURROGATE = re.compile("[\ud800-\udfff]")
# What a value that cannot be stored needs in the raw text: a surrogate escape, an integer of
# 19 digits or more (2**63 has 19), an exponent of three digits (1e309 is infinite). A body
# without any of these is not walked; with one (maybe inside a string), it is walked exactly.
# Found with C loops: digits become "0", "e"/"E" "e", signs "s", everything else a space.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_NUMBER_SHAPE = bytes(
    ord("0") if 48 <= b <= 57 else ord("e") if b in b"eE" else ord("s") if b in b"+-" else 32
    for b in range(256)
)
_LONG_DIGITS = b"0" * 19


def _suspect(body: bytes | bytearray) -> bool:
    """True when the body may hold a value that cannot be stored (then it is walked)."""
    if b"\\u" in body and _SURROGATE_ESCAPE.search(body) is not None:
        return True
    shape = body.translate(_NUMBER_SHAPE)
    return _LONG_DIGITS in shape or b"e000" in shape or b"es000" in shape


class BodyError(ValueError):
    """A refused body: HTTP status, a short code, and a message naming the place and value."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclasses.dataclass(frozen=True, slots=True)
class BodyLimits:
    """How much one JSON body may hold (see :class:`sensor.hub.settings.HubSettings`)."""

    max_depth: int = 200
    max_containers: int = 100_000
    max_items: int = 500_000


def scan_body(body: bytes | bytearray, limits: BodyLimits) -> None:
    """Refuse a body nested too deep or holding too many values, before parsing it.

    The counts are upper bounds taken on the raw bytes (every ``{``/``[`` outside strings is a
    container, every ``,`` one more value), so a body within them parses into at most that
    many Python objects. Strings are found without a parser: escaped backslashes, then escaped
    quotes, are removed, after which every remaining quote opens or closes a string.
    """
    text = body
    if b"\\" in text:
        text = text.replace(b"\\\\", b"").replace(b'\\"', b"")
    kept = text.translate(None, _NOT_STRUCTURAL)
    stripped = _outside_strings(bytes(kept)) if b'"' in kept else kept
    # The depth of a prefix is a lower bound of the whole. A structure longer than this prefix
    # breaks a count limit anyway, so measuring the prefix only keeps this step bounded and
    # still names a deep body as deep.
    prefix = stripped[: 2 * (limits.max_containers + limits.max_items) + 2]
    deltas = prefix.translate(_DEPTH, _NOT_BRACKETS)
    depth = max(
        map(operator.sub, itertools.accumulate(deltas), range(1, len(deltas) + 1)), default=0
    )
    if depth > limits.max_depth:
        raise BodyError(
            400,
            "too_deep",
            f"request body nests JSON {depth} levels deep: expected at most {limits.max_depth}",
        )
    containers = stripped.count(b"{") + stripped.count(b"[")
    if containers > limits.max_containers:
        raise BodyError(
            413,
            "body_too_large",
            f"request body holds {containers} JSON objects and arrays: expected at most "
            f"{limits.max_containers} (send smaller batches)",
        )
    items = containers + stripped.count(b",") + 1
    if items > limits.max_items:
        raise BodyError(
            413,
            "body_too_large",
            f"request body holds about {items} JSON values: expected at most "
            f"{limits.max_items} (send smaller batches)",
        )


def _outside_strings(kept: bytes | bytearray) -> bytes:
    """The structure outside strings, given only quotes, brackets and commas with no escapes.

    Quotes then alternate (open, close), so every other piece between quotes lies outside
    strings. The split runs over windows that end outside a string, so that a body of millions
    of tiny strings never becomes one list of millions of pieces (``re.sub`` would build that
    list too: 500 MB for 8 MiB of ``"",``).
    """
    parts: list[bytes | bytearray] = []
    start, size = 0, len(kept)
    while start < size:
        end = min(size, start + _WINDOW)
        window = kept[start:end]
        if window.count(b'"') % 2:  # the window ends inside a string: take it whole
            close = kept.find(b'"', end)
            end = size if close < 0 else close + 1
            window = kept[start:end]
        parts.append(b"".join(window.split(b'"')[::2]))
        start = end
    return b"".join(parts)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _decode_json(text: str) -> Any:
    return json.loads(text, parse_constant=_reject_constant)


def parse_body(body: bytes | bytearray, limits: BodyLimits) -> Any:
    """Scan, parse and check a JSON body; raise :class:`BodyError` (400, 413 or 422)."""
    scan_body(body, limits)
    try:
        text = body.decode("utf-8")  # strict: json.loads(bytes) would let surrogates in
        data = _decode_json(text)
        suspect = _suspect(body)
    except UnicodeDecodeError as exc:
        raise BodyError(
            400, "malformed_json", f"request body is not UTF-8: byte {exc.start}: {exc.reason}"
        ) from None
    except (ValueError, RecursionError) as exc:
        raise BodyError(400, "malformed_json", f"request body is not valid JSON: {exc}") from None
    if suspect:
        check_values(data)
    return data


def bad_value(value: Any) -> str | None:
    """Why one scalar cannot be stored (None when it can)."""
    kind = type(value)
    if kind is str:
        if not value.isascii():
            found = _SURROGATE.search(value)
            if found is not None:
                return (
                    f"valid Unicode text (a lone surrogate, U+{ord(found.group()):04X}, "
                    "cannot be encoded)"
                )
        return None
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            return "an integer within 64 bits (-2**63 to 2**63-1)"
        return None
    if kind is float and value - value != 0.0:  # inf - inf and nan are nan
        return "a finite number"
    return None


def check_values(data: Any, root: str = "") -> None:
    """Raise :class:`BodyError` (422) naming the first value that cannot be stored.

    The walk is iterative (the depth was bounded by :func:`scan_body`, but this must hold for
    any value) and builds no paths unless something is wrong.
    """
    stack = [data]
    while stack:
        value = stack.pop()
        kind = type(value)
        if kind is dict:
            for key, item in value.items():
                if not key.isascii() and _SURROGATE.search(key) is not None:
                    _raise_at(data, root)
                stack.append(item)
        elif kind is list:
            stack.extend(value)
        elif bad_value(value) is not None:
            _raise_at(data, root)


def _raise_at(data: Any, root: str) -> None:
    """Find the first bad key or value again, this time with its path, and raise for it."""
    stack: list[tuple[Any, str]] = [(data, root)]
    while stack:
        value, path = stack.pop()
        kind = type(value)
        if kind is dict:
            for key, item in value.items():
                where = _join(path, key)
                if not key.isascii() and _SURROGATE.search(key) is not None:
                    raise BodyError(
                        422,
                        "invalid_string",
                        f"{where}: the key {key!a} holds a lone surrogate, which cannot "
                        "be encoded; expected valid Unicode text",
                    )
                stack.append((item, where))
        elif kind is list:
            stack.extend((item, f"{path}[{index}]") for index, item in enumerate(value))
        else:
            reason = bad_value(value)
            if reason is not None:
                code = "invalid_string" if kind is str else "invalid_number"
                shown = ascii(value) if kind is str else repr(value)
                raise BodyError(
                    422, code, f"{path or 'body'}: got {shown[:200]}, expected {reason}"
                )
    raise AssertionError("check_values found a bad value that _raise_at did not")


def _join(path: str, key: str) -> str:
    if key.isidentifier():
        return f"{path}.{key}" if path else key
    return f"{path}[{ascii(key)[:80]}]"
