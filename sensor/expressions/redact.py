"""Every redaction rule that applies inside expressions, in one module a reader can audit.

The rules (docs/explanation/redaction.md, "Inside expressions", says the same for users):

R1. Names. A name, an attribute, a dict key (``str`` or ``bytes``), a namedtuple field, or the
    first item of a ``(name, value)`` pair (ASGI headers, ``dict.items()`` lists) that the
    redactor calls secret hides the value it holds: the value reads as a :class:`Redacted`
    marker with reason ``"name"`` (:func:`redact_name`, :func:`secret_key`,
    :func:`hidden_positions`).
R2. Contents. A ``str`` or ``bytes`` (or a subclass of either) that the redactor would redact by
    its content (a card, a JWT, a key id, an e-mail, a secret query parameter, ...) is a
    :class:`Redacted` marker wherever it appears in an evaluation (:func:`guard`): when it is read
    from the program (a name, an attribute, an item, an element met while iterating, an unpacked
    tuple item, a value a dict method returns), when it is a constant of the expression, and
    when the expression builds it (concatenation, repetition, join, slices, string methods,
    f-strings, ``str()``/``repr()``; :func:`guard_built`). So a secret made of pieces is as opaque
    as one read whole, and a guessed secret written in the expression cannot be compared.
R3. Containers. A container taken whole from the program is checked element by element before
    an operation compares, hashes, orders, counts or looks for its elements (:func:`check_element`
    from ``values._check_cmp``): one secret element (R1 or R2) refuses the operation. Formatting
    renders such an element redacted (:func:`render_str`).
R4. The marker. A :class:`Redacted` marker is the same for every secret of one class and length
    class: ``==``/``!=``/``is`` compare identity (so ``secret == guess`` is always False), it is
    truthy, ``typename()`` gives the hidden type's name, it hashes to one constant; everything
    else is refused: attributes, items, slices, iteration, ``len``, methods, arithmetic, ordering,
    ``in`` on it, ``int``/``float``/``isinstance``; ``len()`` only of a text too long to scan
    (reason ``"unscanned"``, R2), whose content is opaque but whose length is not a secret.
    Formatted, it shows ``<redacted>``, or for a content secret the redactor's own redacted text
    (``paid with <redacted:card>``).
R5. Errors. An error text names operations and types, never a value (:func:`failure` for the
    exceptions of builtin operations); the engine passes every error text through
    :func:`sensor.redaction.redact_error` as a second line of defence.

Cost: strings shorter than the redactor's shortest secret (6 characters) are never scanned; a
string up to :data:`CACHE_CHARS` characters is scanned once per rule version and remembered by
value; a longer one is scanned once per evaluation (remembered by id, with the string held so the
id cannot be reused) and charged to the step budget; one longer than the redactor's window
(65,536 characters) is not scanned and reads as a marker (reason ``"unscanned"``).
"""

from __future__ import annotations

from typing import Any, Final

from sensor import redaction as _redaction
from sensor.errors import ExpressionError
from sensor.expressions.budget import _S_RED, _S_SEEN, _S_TABLE, _charge
from sensor.expressions.introspect import (
    _SCALAR_IDS,
    _STATIC_KIND,
    K_IDENT,
    K_MAP,
    K_SEQ,
    K_SET,
    _info,
    _qualname,
)

__all__ = [
    "CACHE_CHARS",
    "MIN_SECRET_CHARS",
    "Redacted",
    "check_element",
    "content_reason",
    "failure",
    "guard",
    "guard_built",
    "hidden_positions",
    "redact_name",
    "render_str",
    "secret_fields",
    "secret_key",
    "verdict_table",
]

#: The redactor never calls a shorter string a secret by content (Redactor.match_secret_value).
MIN_SECRET_CHARS: Final = 6
#: Strings up to this length have their verdict remembered by value across evaluations.
CACHE_CHARS: Final = 256
_CACHE_MAX = 4096
# The verdicts on short strings, for one redactor at one rule version: (redactor, version,
# {str: reason or None}). Replaced whole when the rules change; the dict is cleared when full,
# so it is bounded. An evaluation fetches it once, on the first string it scans.
_TABLE: tuple[object, int, dict[str, str | None]] = (None, -1, {})
_UNSEEN: Any = object()
#: Reasons whose redaction keeps the words around the secret (a query string keeps its other
#: parameters): formatting and captures show the redactor's text instead of a bare marker.
CARRIED: Final = _redaction.CARRIED_REASONS
# Characters scanned beyond what formatting renders, so that a secret starting before the cut is
# seen whole (the redactor's window overlap).
_FORMAT_MARGIN = _redaction.WINDOW_OVERLAP


class Redacted:
    """What a secret reads as inside an expression (rules R1, R2 and R4 above).

    It compares by identity only (so ``password == "x"`` is False and ordering is refused), is
    truthy, hashes to one constant (so sets of markers keep insertion order whatever the
    secret), renders as ``<redacted>`` (a content secret as the redactor's redacted text), and
    keeps the type name and length class of the value it hides, so that shapes still compare.
    :meth:`to_json` is the capture encoding.
    """

    __slots__ = ("_red", "_shown", "_text", "length", "reason", "type_name")

    def __init__(self, value: Any, reason: str = "name") -> None:
        t = type(value)
        self.type_name = _qualname(t)
        n: int | None = None
        kind = _STATIC_KIND.get(id(t), (None,))[0]
        if t is str or t is bytes or kind in (K_SEQ, K_MAP, K_SET):
            n = len(value)
        elif id(t) not in _SCALAR_IDS and kind is None:
            base: Any = _text_base(t)
            if base is not None:
                n = base.__len__(value)
        self.length = _redaction.length_class(n) if n is not None else None
        self.reason = reason
        # A content secret keeps its text to render the redactor's view of it on demand; the
        # sandbox refuses every attribute of a marker, so the text is never reachable.
        self._text: str | None = None
        self._red: Any = None
        self._shown: str | None = None

    def to_json(self) -> Any:
        """The typed-JSON form (``{"@t": ..., "@redacted": ..., "@len": ...}``).

        A carried secret (a secret query parameter, an authorization scheme) is given as the
        redactor's text instead, exactly as the capture encoder gives such a string.
        """
        if self.reason in CARRIED and self._text is not None:
            shown = self.shown()
            if shown != "<redacted>":
                return shown
        out: dict[str, object] = {"@t": self.type_name, "@redacted": self.reason}
        if self.length is not None:
            out["@len"] = self.length
        return out

    def shown(self) -> str:
        """How the marker renders in a message, an f-string or ``str()``."""
        if self._shown is None:
            text, red = self._text, self._red
            shown = "<redacted>"
            if text is not None and red is not None:
                try:
                    candidate = red.redact_text(text)
                    # The redacted text must itself be clean (it always is for the built-in
                    # rules; an operator's pattern could match its own marker).
                    if red.match_secret_value(candidate) is None:
                        shown = candidate
                except Exception:  # never let formatting fail on a rule problem
                    shown = "<redacted>"
            self._shown = shown
        return self._shown

    def unscanned_length(self) -> int | None:
        """The length of a text too long to scan (reason ``"unscanned"``), else None: such a
        text is opaque for not having been read, not for holding a known secret, and ``len()``
        of it stays allowed (``len(body) > 10**6``)."""
        if self.reason == "unscanned" and self._text is not None:
            return len(self._text)
        return None

    def __repr__(self) -> str:
        return "<redacted>"

    def __hash__(self) -> int:
        return 0x5EC2E7


# Identity comparison and hashing: C code only, and trusted (see values._check_cmp).
_STATIC_KIND[id(Redacted)] = (K_IDENT, Redacted)


def _text_base(t: type) -> type | None:
    """``str`` or ``bytes`` when ``t`` subclasses one of them (StrEnum, user str types)."""
    for c in _info(t).mro:
        if c is str or c is bytes:
            return c
    return None


def redact_name(value: object) -> Any:
    """R1: the marker for a value held under a secret name (None stays None: ``token is None``)."""
    return None if value is None else Redacted(value, "name")


def _content(text: str, value: object, reason: str, red: Any) -> Redacted:
    marker = Redacted(value, reason)
    marker._text = text
    marker._red = red
    return marker


def verdict_table(red: Any) -> dict[str, str | None]:
    """The verdict table of ``red`` at its current rule version (R2's cache)."""
    global _TABLE
    table = _TABLE
    if table[1] == red.version and table[0] is red:
        return table[2]
    fresh: dict[str, str | None] = {}
    _TABLE = (red, red.version, fresh)
    return fresh


def content_reason(text: str, s: list[Any]) -> str | None:
    """R2: why the redactor would redact ``text`` (an exact str), or None; cached (see above)."""
    n = len(text)
    if n < MIN_SECRET_CHARS:
        return None
    red: Any = s[_S_RED]
    if n <= CACHE_CHARS:
        table = s[_S_TABLE]
        if table is None:
            table = s[_S_TABLE] = verdict_table(red)
        reason: str | None = table.get(text, _UNSEEN)
        if reason is _UNSEEN:
            reason = red.match_secret_value(text)
            if len(table) >= _CACHE_MAX:
                table.clear()
            table[text] = reason
        return reason
    if n > _redaction.MAX_MATCH_CHARS:
        # Scanning more than one window (about 4 ms each) on the host's thread, on every
        # evaluation, costs too much: such a text is not read inside an expression at all.
        return "unscanned"
    seen = s[_S_SEEN]
    if seen is None:
        seen = s[_S_SEEN] = {}
    else:
        hit = seen.get(id(text))
        if hit is not None and hit[0] is text:
            return hit[1]  # type: ignore[no-any-return]
    _charge(s, n >> 8)  # scanning is work: a long string costs steps like a long loop
    reason = red.match_secret_value(text)
    seen[id(text)] = (text, reason)
    return reason


def _as_text(value: Any, t: type) -> str | None:
    """The characters of a str or bytes (or subclass) value, read with the builtin methods."""
    if t is str:
        return value  # type: ignore[no-any-return]
    if t is bytes:
        return value.decode("latin-1")  # type: ignore[no-any-return]
    base = _text_base(t)
    if base is str:
        return str.__str__(value)
    if base is bytes:
        return bytes.__bytes__(value).decode("latin-1")
    return None


def guard(v: Any, s: list[Any]) -> Any:
    """R2: ``v``, or a :class:`Redacted` marker when it is a str/bytes secret by content."""
    t = type(v)
    if t is str:
        n = len(v)
        if n < MIN_SECRET_CHARS:
            return v
        table = s[_S_TABLE] if n <= CACHE_CHARS else None
        reason = _UNSEEN if table is None else table.get(v, _UNSEEN)
        if reason is _UNSEEN:
            reason = content_reason(v, s)
        return v if reason is None else _content(v, v, reason, s[_S_RED])
    if t is bytes:
        if len(v) < MIN_SECRET_CHARS:
            return v
        text = v.decode("latin-1")
    else:
        if id(t) in _STATIC_KIND or t is Redacted:
            return v  # builtin containers and scalars (str and bytes are handled above)
        found = _as_text(v, t)
        if found is None or len(found) < MIN_SECRET_CHARS:
            return v
        text = found
    reason = content_reason(text, s)
    return v if reason is None else _content(text, v, reason, s[_S_RED])


def guard_built(v: Any, s: list[Any]) -> Any:
    """R2 for what an operation built: a string, or a list/tuple of strings (``split``)."""
    t = type(v)
    if t is str or t is bytes:
        return guard(v, s)
    if t is list or t is tuple:
        out = [guard(x, s) for x in v]
        return out if t is list else tuple(out)
    return v


def secret_key(key: object, red: Any) -> bool:
    """R1: whether a dict key or pair name (a str or bytes) is a secret name."""
    t = type(key)
    if t is str:
        return bool(red.is_secret_name(key))
    if t is bytes:
        raw: bytes = key  # type: ignore[assignment]
        return len(raw) <= 256 and bool(red.is_secret_name(raw.decode("latin-1")))
    return False


def secret_fields(t: type, red: Any = None) -> frozenset[int]:
    """R1: positions of a namedtuple's fields whose names the redactor calls secret."""
    fields = _info(t).dicts[0].get("_fields")
    if type(fields) is not tuple:
        return frozenset()
    red = red or _redaction._default or _redaction.get_redactor()
    return frozenset(i for i, f in enumerate(fields) if type(f) is str and red.is_secret_name(f))


_SECOND = frozenset((1,))
_NONE: frozenset[int] = frozenset()


def hidden_positions(seq: Any, t: type, red: Any) -> frozenset[int]:
    """R1: the positions of ``seq`` (a tuple or list) that hold values under a secret name.

    A namedtuple hides its secret fields; a pair whose first item is a secret name
    (``(b"authorization", b"Token ...")``, ``("password", "x")``) hides its second item.
    """
    if t is tuple or t is list:
        if len(seq) == 2:
            first = seq[0]
            tf = type(first)
            if tf is bytes and len(first) <= 64:
                first = first.decode("latin-1")
            elif tf is not str:
                return _NONE
            if _redaction.looks_like_name(first) and red.is_secret_name(first):
                return _SECOND
        return _NONE
    if _STATIC_KIND.get(id(t)) is None:  # a tuple subclass: namedtuple fields
        return secret_fields(t, red)
    return _NONE


def check_element(x: Any, s: list[Any]) -> None:
    """R3: refuse an operation on a container one of whose elements ``x`` is a secret."""
    t = type(x)
    if len(x) < MIN_SECRET_CHARS:
        return
    if (t is str and content_reason(x, s) is not None) or (
        t is bytes and content_reason(x.decode("latin-1"), s) is not None
    ):
        raise _refused_container()


def check_container(v: Any, t: type, base: Any, s: list[Any]) -> None:
    """R3: refuse a container whose layout hides values (secret fields or a secret pair)."""
    if (base is tuple or base is list) and hidden_positions(v, t, s[_S_RED]):
        raise _refused_container()


def check_map_key(k: Any, s: list[Any]) -> None:
    """R3: a dict compared or hashed as a whole must not hold a value under a secret key."""
    if secret_key(k, s[_S_RED]):
        raise _refused_container()
    check_element(k, s)


def _refused_container() -> ExpressionError:
    return ExpressionError(
        "this operation on a container that holds a redacted value is refused: it would "
        "compare or reveal the secret"
    )


def render_str(value: str, red: Any) -> str:  # red: a sensor.redaction.Redactor
    """R3/R4 for formatting: a str as a message may show it (the redactor's view if secret)."""
    n = len(value)
    if n < MIN_SECRET_CHARS:
        return value
    scan = value if n <= 1024 + _FORMAT_MARGIN else value[: 1024 + _FORMAT_MARGIN]
    if len(scan) <= CACHE_CHARS:
        table = verdict_table(red)
        reason = table.get(scan, _UNSEEN)
        if reason is _UNSEEN:
            reason = red.match_secret_value(scan)
            if len(table) >= _CACHE_MAX:
                table.clear()
            table[scan] = reason
    else:
        reason = red.match_secret_value(scan)
    if reason is None:
        return value
    shown = red.redact_text(scan)
    return shown if red.match_secret_value(shown) is None else "<redacted>"


# -- R5: error texts ------------------------------------------------------------------------------

# A fixed phrase per exception type of a builtin operation: the exception's own message may quote
# the value (``invalid literal for int() with base 10: '4111...'``, ``'x' is not in list``).
_FAILURES: dict[type, str] = {
    ZeroDivisionError: "division or modulo by zero",
    OverflowError: "a number is too large for this operation",
    TypeError: "an operation got a value of an unsupported type",
    ValueError: "an operation got a value it cannot handle",
    KeyError: "a key is missing",
    IndexError: "an index is out of range",
    UnicodeError: "text could not be encoded or decoded",
    ArithmeticError: "an arithmetic operation failed",
    MemoryError: "out of memory",
}


def failure(exc: BaseException) -> str:
    """A value-free description of an exception raised by a builtin operation."""
    for t, text in _FAILURES.items():
        if isinstance(exc, t):
            return f"{_qualname(type(exc))} ({text})"
    return _qualname(type(exc))
