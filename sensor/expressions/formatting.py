"""Rendering values for f-strings, ``str()``/``repr()`` and log templates, running no user code.

Secrets render redacted (rules R1, R3 and R4 of :mod:`sensor.expressions.redact`): a marker as
``<redacted>`` (a content secret as the redactor's redacted text), a string secret by content
inside a container as the redactor's redacted text, the value of a secret key or pair as
``<redacted>``.
"""

from __future__ import annotations

import decimal
import itertools
import re
from typing import Any

from sensor import redaction as _redaction
from sensor.expressions.budget import MAX_FIELD
from sensor.expressions.introspect import (
    _SAFE_TZ_IDS,
    _SCALAR_IDS,
    _STATIC_KIND,
    _T_NAME,
    K_BAD,
    K_MAP,
    K_SCALAR,
    K_SEQ,
    K_SET,
    K_TZ,
    _info,
    _instance_dict,
    _qualname,
    typename,
)
from sensor.expressions.redact import Redacted, hidden_positions, render_str, secret_key

_Decimal = decimal.Decimal
# Format types that write every digit of a number (fixed point and percent).
_FIXED_POINT = frozenset("fF%")


def _huge_fixed_point(value: decimal.Decimal) -> bool:
    """Whether fixed-point text of ``value`` (an exact Decimal) would exceed a field."""
    return _Decimal.is_finite(value) and abs(_Decimal.adjusted(value)) > MAX_FIELD


# -- safe formatting --------------------------------------------------------------------------

_SPEC_RE = re.compile(
    r"(?:.?[<>=^])?[+\- ]?z?#?0?(?:\d{1,3})?[,_]?(?:\.\d{1,3})?[bcdeEfFgGnosxX%]?\Z", re.S
)


def safe_format(
    value: Any,
    spec: str = "",
    conversion: int = -1,
    *,
    red: _redaction.Redactor | None = None,
    depth: int = 0,
) -> str:
    """Render ``value`` for a log message without running any of its code.

    Builtin values render as Python would (bounded); containers element-wise (bounded, secret
    keys redacted); any other object as ``<module.QualName>``.
    """
    red = red or _redaction.get_redactor()
    t = type(value)
    if t is Redacted:
        shown: str = value.shown()
        if shown != "<redacted>" and (conversion == ord("r") or conversion == ord("a")):
            shown = repr(shown) if conversion == ord("r") else ascii(shown)
        return shown if len(shown) <= MAX_FIELD else shown[:MAX_FIELD] + "..."
    if t is str:
        value = render_str(value, red)  # a secret by content shows the redactor's text
    elif t is bytes and len(value) >= 6:
        text = value[: MAX_FIELD + _redaction.WINDOW_OVERLAP].decode("latin-1")
        shown = render_str(text, red)
        if shown is not text:
            value = shown.encode("latin-1", "replace")
    kind, _base = (K_SCALAR, t) if id(t) in _SCALAR_IDS else _STATIC_KIND.get(id(t), (K_BAD, t))
    if kind in (K_SCALAR, K_TZ):
        if t is int and value.bit_length() > 4 * MAX_FIELD:
            return f"<int of {value.bit_length()} bits>"
        if kind == K_TZ and id(type(getattr(value, "tzinfo", None))) not in _SAFE_TZ_IDS:
            return f"<{_qualname(t)}>"
        cut = t is str and len(value) > MAX_FIELD
        if cut:
            value = value[:MAX_FIELD]
        if conversion == ord("r") or conversion == ord("a"):
            text = repr(value) if conversion == ord("r") else ascii(value)
        elif spec:
            if t is _Decimal and spec[-1:] in _FIXED_POINT and _huge_fixed_point(value):
                # Fixed-point text of an exact Decimal has as many digits as its exponent
                # (1e999999999 would build a 1 GB string before the field is cut): show it in
                # scientific notation instead, which is what it is.
                text = _Decimal.__str__(value)
            else:
                text = format(value, spec)
        else:
            text = str(value)
        return text if len(text) <= MAX_FIELD and not cut else text[:MAX_FIELD] + "..."
    if kind == K_BAD and id(t) not in _STATIC_KIND:
        info = _info(t)
        if info.is_enum:
            # Enum members render as Color.RED, from the instance dict (no __str__/__format__).
            d = _instance_dict(value, t, info)
            name = d.get("_name_") if d is not None else None
            if type(name) is str:
                return f"{typename(value)}.{name}"
    if depth >= 3:
        return f"<{_qualname(t)}>"
    if kind in (K_SEQ, K_SET):
        items = list(itertools.islice(t.__iter__(value), 21))
        hidden = hidden_positions(value, t, red) if t is tuple or t is list else frozenset()
        parts = [
            "<redacted>"
            if i in hidden
            else safe_format(x, conversion=ord("r"), red=red, depth=depth + 1)
            for i, x in enumerate(items[:20])
        ]
        if len(items) > 20:
            parts.append("...")
        if t is tuple:
            return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"
        if t is list:
            return "[" + ", ".join(parts) + "]"
        return f"{_T_NAME(t)}([" + ", ".join(parts) + "])" if parts else f"{_T_NAME(t)}()"
    if kind == K_MAP:
        parts = []
        for i, (k, v) in enumerate(dict.items(value)):
            if i >= 20:
                parts.append("...")
                break
            shown = (
                "<redacted>"
                if secret_key(k, red)
                else safe_format(v, conversion=ord("r"), red=red, depth=depth + 1)
            )
            parts.append(
                f"{safe_format(k, conversion=ord('r'), red=red, depth=depth + 1)}: {shown}"
            )
        return "{" + ", ".join(parts) + "}"
    return f"<{_qualname(t)}>"
