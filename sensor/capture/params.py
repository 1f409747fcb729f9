"""Parameters bound to a template: the value that a format string or a SQL statement puts after
a secret name.

``logging`` keeps a record's message and its arguments apart (``msg="login with password=%s"``,
``args=("hunter2",)``), as a database driver does a statement and its parameters
(``execute(query="UPDATE users SET password = %s WHERE id = %s", params=("hunter2", 7))``, or
SQLAlchemy's ``StatementError.statement`` and ``.params``). The template names the secret, the
parameter holds it, and nothing in the parameter alone says so: a captured ``args`` tuple showed
the password in the clear while the template next to it read ``password=<redacted:field>``.

The rule: a parameter is hidden (as a value under a secret name is: its type and length class)
where the rendered text would have it redacted. Each placeholder of the template is replaced by a
sentinel word, the redactor's own :meth:`~sensor.redaction.Redactor.redact_text` runs over the
result, and a sentinel it took away (or that lies in the arguments of a function call redacted as
a field's value, ``password = crypt(%s, ...)``, or in the value of a column the redactor calls
secret, ``INSERT INTO users (name, password) VALUES (%s, %s)``) marks its parameter. So the
field rules are the redactor's, one copy, and a user's own secret names apply.

Paired by name, on one object (its attributes) or in one frame (its locals): a template under one
of :data:`TEMPLATE_NAMES` and parameters under one of :data:`PARAM_NAMES`. Placeholder styles, one
per template as a driver takes one (the first found in this order): ``%s``/``%(name)s``
(``printf``, logging, psycopg, pymysql), ``$1`` (asyncpg), ``?`` (sqlite), ``:name``/``:1``
(SQLAlchemy ``text()``, oracle), ``{}``/``{name}`` (``str.format``, logging's ``{`` style).
Verdicts are cached per template for one redactor at one rule version; a template longer than the
redactor scans hides every parameter past what was scanned (its sentinels never come back).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Final, NamedTuple, cast

from sensor.redaction import MAX_MATCH_CHARS, close_paren

#: Names under which a template is paired with its parameters.
TEMPLATE_NAMES: Final = frozenset(
    ("msg", "sql", "query", "statement", "stmt", "operation", "fmt", "format", "template")
)
#: Names under which parameters are paired with a template.
PARAM_NAMES: Final = frozenset(
    ("args", "params", "parameters", "vars", "bind_params", "seq_of_parameters", "arguments")
)
#: Either, for a single membership test in the encoder's loops.
PAIRED_NAMES: Final = TEMPLATE_NAMES | PARAM_NAMES

# printf: %s, %-10.3f, %(name)s, %*d (a * takes an argument of its own); %% is a literal.
_PRINTF: Final = re.compile(
    r"%(?:\((?P<name>[^()]{1,64})\))?[#0 +\-]*(?P<w>\*|\d{1,4})?(?:\.(?P<p>\*|\d{1,4}))?"
    r"[hlL]?(?P<conv>[diouxXeEfFgGcrsab%])"
)
_DOLLAR: Final = re.compile(r"\$(?P<num>\d{1,4})\b")
_QMARK: Final = re.compile(r"\?")
# :name or :1, not a PostgreSQL cast (x::text), a time (12:30) or a URL's port.
_COLON: Final = re.compile(r"(?<![:\w]):(?:(?P<name>[A-Za-z_]\w{0,63})|(?P<num>\d{1,4}))\b")
_BRACE: Final = re.compile(
    r"\{\{|\}\}|\{(?:(?P<num>\d{1,4})|(?P<name>[A-Za-z_]\w{0,63}))?(?:![rsa])?(?::[^{}]{0,32})?\}"
)
_SENTINEL: Final = "pH{}x"
_CACHE_MAX: Final = 512
#: Templates longer than this are not cached (each capture judges them again).
_CACHE_CHARS: Final = 4096


class Hidden(NamedTuple):
    """What a template hides: positional parameters by index, named ones by name, or all
    (``every``: a template the redactor did not scan to its end)."""

    positions: frozenset[int]
    names: frozenset[str]
    every: bool


_NONE: Final = Hidden(frozenset(), frozenset(), False)
_EVERY: Final = Hidden(frozenset(), frozenset(), True)
#: The longest template judged (the redactor's scan window): a longer one hides every parameter.
_MAX_TEMPLATE: Final = MAX_MATCH_CHARS
_CACHE: dict[str, Hidden] = {}
_CACHE_KEY: list[object] = [None, None]  # the redactor and rule version the cache is for


def _placeholders(text: str) -> list[tuple[int, int, int | None, str | None]]:
    """``(start, end, position, name)`` of each placeholder of the template's one style."""
    out: list[tuple[int, int, int | None, str | None]] = []
    if "%" in text:
        pos = 0
        for m in _PRINTF.finditer(text):
            if m.group("conv") == "%":
                continue
            pos += (m.group("w") == "*") + (m.group("p") == "*")
            name = m.group("name")
            out.append((m.start(), m.end(), None if name else pos, name))
            if not name:
                pos += 1
        if out:
            return out
    # A driver's own placeholders are not read inside a SQL string literal ('what?', '12:30').
    literals = _literals(text) if "'" in text else ()
    if "$" in text:
        out = [
            (m.start(), m.end(), int(m.group("num")) - 1, None)
            for m in _DOLLAR.finditer(text)
            if not _inside(literals, m.start())
        ]
        if out:
            return out
    if "?" in text:
        marks = [m for m in _QMARK.finditer(text) if not _inside(literals, m.start())]
        return [(m.start(), m.end(), i, None) for i, m in enumerate(marks)]
    if ":" in text:
        for m in _COLON.finditer(text):
            if _inside(literals, m.start()):
                continue
            num = m.group("num")
            out.append((m.start(), m.end(), int(num) - 1 if num else None, m.group("name")))
        if out:
            return out
    if "{" in text:
        auto = 0
        for m in _BRACE.finditer(text):
            if m.end() - m.start() == 2 and m.group() in ("{{", "}}"):
                continue
            num, name = m.group("num"), m.group("name")
            if name:
                out.append((m.start(), m.end(), None, name))
            elif num:
                out.append((m.start(), m.end(), int(num), None))
            else:
                out.append((m.start(), m.end(), auto, None))
                auto += 1
    return out


def _literals(text: str) -> list[tuple[int, int]]:
    """The spans of ``text``'s single-quoted SQL string literals (``''`` inside one is a quote)."""
    spans = []
    i = text.find("'")
    while i >= 0:
        j = text.find("'", i + 1)
        while j >= 0 and text.startswith("'", j + 1):  # '' : a quote inside the literal
            j = text.find("'", j + 2)
        if j < 0:
            spans.append((i, len(text)))
            break
        spans.append((i, j + 1))
        i = text.find("'", j + 1)
    return spans


def _inside(spans: Iterable[tuple[int, int]], i: int) -> bool:
    return any(a < i < b for a, b in spans)


def _judge(red: Any, text: str) -> Hidden:
    marks = _placeholders(text)
    if not marks:
        return _NONE
    parts = []
    last = 0
    for k, (a, b, _, _) in enumerate(marks):
        parts.append(text[last:a])
        parts.append(_SENTINEL.format(k))
        last = b
    parts.append(text[last:])
    shown = red.redact_text("".join(parts))
    hidden = {k for k in range(len(marks)) if _SENTINEL.format(k) not in shown}
    # A field's value that is a call (``password = crypt(%s, gen_salt('bf'))``): the redactor
    # takes the function's name as the value; its arguments are the value too.
    at = shown.find("<redacted:field>(")
    while at >= 0:
        start = at + len("<redacted:field>")
        inside = shown[start : close_paren(shown, start)]
        hidden.update(k for k in range(len(marks)) if _SENTINEL.format(k) in inside)
        at = shown.find("<redacted:field>(", start)
    if not hidden:
        return _NONE
    every = "<redacted:unscanned" in shown
    positions = frozenset(
        p for k, (_, _, p, _) in enumerate(marks) if k in hidden and p is not None
    )
    names = frozenset(n for k, (_, _, _, n) in enumerate(marks) if k in hidden and n is not None)
    return Hidden(positions, names, every)


def hidden_params(red: Any, template: object) -> Hidden:
    """What the parameters of ``template`` (a str or bytes, else nothing is hidden) hide under
    ``red``'s rules. Never raises: a failure hides every parameter."""
    try:
        t = type(template)
        if t is not bytes and t is not str:
            return _NONE
        if len(cast(str, template)) > _MAX_TEMPLATE:
            # Longer than the redactor scans: not read (a host string is never read whole),
            # every parameter hidden.
            return _EVERY
        text = cast(bytes, template).decode("latin-1") if t is bytes else cast(str, template)
        if len(text) > _CACHE_CHARS:
            return _judge(red, text)
        version = getattr(red, "version", None)
        if _CACHE_KEY[0] is not red or _CACHE_KEY[1] != version:
            _CACHE.clear()
            _CACHE_KEY[:] = [red, version]
        got = _CACHE.get(text)
        if got is None:
            got = _judge(red, text)
            if len(_CACHE) >= _CACHE_MAX:
                _CACHE.clear()
            _CACHE[text] = got
        return got
    except Exception:
        return _EVERY
