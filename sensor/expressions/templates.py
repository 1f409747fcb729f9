"""Log templates: literal text with ``{expression}`` fields, rendered without raising and
redacted as a whole before the message leaves the process."""

from __future__ import annotations

import time
from collections.abc import Mapping

from sensor import redaction as _redaction
from sensor.errors import ExpressionError
from sensor.expressions.budget import (
    DEFAULT_MAX_SECONDS,
    DEFAULT_MAX_STEPS,
    MAX_FIELDS,
    MAX_MESSAGE,
    MAX_TEMPLATE,
)
from sensor.expressions.compiler import Expression, compile
from sensor.expressions.formatting import _SPEC_RE, safe_format
from sensor.expressions.introspect import typename


class Template:
    """A log template: literal text with ``{expression}`` fields (f-string syntax).

    :meth:`render` never raises: a field that fails renders as ``{!error: reason}``. The
    message is redacted by value pattern and cut to ``max_length`` characters.
    """

    __slots__ = ("_parts", "expressions", "max_length", "names", "source")

    def __init__(
        self,
        template: str,
        *,
        max_length: int = MAX_MESSAGE,
        max_steps: int = DEFAULT_MAX_STEPS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
    ) -> None:
        if type(template) is not str:
            raise ExpressionError(f"template must be a str, got {typename(template)!r}")
        if len(template) > MAX_TEMPLATE:
            raise ExpressionError(
                f"template of {len(template)} characters is refused (limit {MAX_TEMPLATE})"
            )
        self.source = template
        self.max_length = max_length
        self._parts: list[str | tuple[Expression, str, int]] = []
        for part in _split_template(template):
            if isinstance(part, str):
                self._parts.append(part)
            else:
                text, conv, spec = part
                if spec and not _SPEC_RE.match(spec):
                    raise ExpressionError(
                        f"template {template!r}: format spec {spec!r} is refused: "
                        "widths and precisions are limited to 3 digits"
                    )
                expr = compile(text, max_steps=max_steps, max_seconds=max_seconds)
                self._parts.append((expr, spec, conv))
        self.expressions = [p[0] for p in self._parts if not isinstance(p, str)]
        if len(self.expressions) > MAX_FIELDS:
            raise ExpressionError(
                f"template {template[:80]!r}: {len(self.expressions)} fields are refused "
                f"(limit {MAX_FIELDS})"
            )
        self.names = frozenset().union(*(e.names for e in self.expressions))

    def render(
        self, locals: Mapping[str, object], globals: Mapping[str, object] | None = None
    ) -> str:
        """The message; secret values redacted, at most ``max_length`` characters."""
        red = _redaction.get_redactor()
        out: list[str] = []
        # Each field has its own budget; the whole message gets twice one field's wall time.
        deadline = 0.0
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            expr, spec, conv = part
            now = time.perf_counter()
            if not deadline:
                deadline = now + 2 * expr.max_seconds
            elif now > deadline:
                out.append("{!error: template time budget exhausted}")
                continue
            try:
                text = safe_format(expr.evaluate(locals, globals), spec, conv, red=red)
            except ExpressionError as exc:
                text = "{!error: " + str(exc)[:200] + "}"
            except Exception as exc:  # format() of a bad spec for the value's type
                text = "{!error: " + type(exc).__name__ + "}"
            out.append(text)
        message = red.redact_text("".join(out))
        if len(message) > self.max_length:
            cut = len(message) - self.max_length
            message = message[: self.max_length] + f"...[{cut} more characters]"
        return message

    def __repr__(self) -> str:
        return f"Template({self.source!r})"


def _split_template(template: str) -> list[str | tuple[str, int, str]]:
    """Split ``a {x!r:>5} b`` into literals and (expression, conversion, spec)."""
    parts: list[str | tuple[str, int, str]] = []
    buf: list[str] = []
    i, n = 0, len(template)
    while i < n:
        ch = template[i]
        if ch == "{":
            if i + 1 < n and template[i + 1] == "{":
                buf.append("{")
                i += 2
                continue
            end, expr, conv, spec = _scan_field(template, i + 1)
            if buf:
                parts.append("".join(buf))
                buf = []
            parts.append((expr, conv, spec))
            i = end + 1
            continue
        if ch == "}":
            if i + 1 < n and template[i + 1] == "}":
                buf.append("}")
                i += 2
                continue
            raise ExpressionError(
                f"template {template!r}: single '}}' at column {i + 1}; write '}}}}'"
            )
        buf.append(ch)
        i += 1
    if buf:
        parts.append("".join(buf))
    return parts


def _scan_field(t: str, start: int) -> tuple[int, str, int, str]:
    depth = 0
    quote = ""
    i = start
    conv_at = spec_at = -1
    while i < len(t):
        ch = t[i]
        if quote:
            if ch == "\\":
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}" and depth:
            depth -= 1
        elif depth == 0 and ch == "!" and spec_at < 0 and i + 1 < len(t) and t[i + 1] != "=":
            conv_at = i
        elif depth == 0 and ch == ":" and spec_at < 0:
            spec_at = i
        elif depth == 0 and ch == "}":
            expr_end = min(x for x in (conv_at, spec_at, i) if x >= 0)
            expr = t[start:expr_end].strip()
            conv = -1
            if conv_at >= 0:
                code = t[conv_at + 1 : spec_at if spec_at >= 0 else i]
                if code not in ("r", "s", "a"):
                    raise ExpressionError(
                        f"template {t!r}: conversion {code!r} at column {conv_at + 1} is refused: "
                        "use !r, !s or !a"
                    )
                conv = ord(code)
            spec = t[spec_at + 1 : i] if spec_at >= 0 else ""
            if not expr:
                raise ExpressionError(f"template {t!r}: empty field at column {start}")
            return i, expr, conv, spec
        i += 1
    raise ExpressionError(f"template {t!r}: field opened at column {start} is not closed")


def compile_template(
    template: str,
    *,
    max_length: int = MAX_MESSAGE,
    max_steps: int = DEFAULT_MAX_STEPS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
) -> Template:
    """Parse a log template; raises ExpressionError naming the refused field.

    ``max_steps``/``max_seconds`` bound each field; the whole render gets twice
    ``max_seconds``, after which the remaining fields render as an error.
    """
    return Template(template, max_length=max_length, max_steps=max_steps, max_seconds=max_seconds)
