"""Typed, bounded, redacted JSON encoding of captured values, without running user code.

The schema is documented in ``docs/reference/encoding.md``. In short: exact ``None``,
``bool``, ``str``, safe ``int`` and finite ``float`` are plain JSON; everything else is an
object whose ``"@t"`` names the type, with ``"v"`` (value), ``"@attrs"`` (object fields) or
``"items"`` (dict with non-string keys), plus markers for every cut (``@trunc``, ``@depth``,
``@cycle``, ``@budget``, ``@deadline``, ``@redacted``, ``@error``).

This runs on the host's request thread: the common scalar types take the first branches,
containers are read with ``itertools.islice`` so a 10**6-item list costs no more than its
first ``max_items`` items, and the byte budget and deadline are checked while encoding.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import re
import sys
import time
import types
import uuid
from collections.abc import Iterable, Iterator, Mapping
from itertools import islice
from typing import Any, Final, Protocol, cast

from sensor.capture.params import PAIRED_NAMES, PARAM_NAMES, TEMPLATE_NAMES, Hidden, hidden_params
from sensor.capture.safety import _LAYOUTS, Kind, Layout, hidden_instance_dict, layout_of
from sensor.probes import CAPTURE_LIMIT_MAXIMA, CaptureLimits

__all__ = [
    "DEFAULT_REDACTOR",
    "MAX_DEPTH_CAP",
    "Budget",
    "JSONValue",
    "RedactorLike",
    "capture_frame",
    "encode",
    "exception_info",
]

#: What :func:`encode` returns: None, bool, int, float, str, or lists/dicts of those.
JSONValue = Any


class RedactorLike(Protocol):
    """The part of ``sensor.redaction.Redactor`` that capture uses."""

    def is_secret_name(self, name: str) -> bool: ...

    def match_secret_value(self, text: str) -> str | None: ...

    def length_class(self, n: int) -> str: ...

    def redact_text(self, text: str) -> str: ...


class _ProcessRedactor:
    """Sentinel type: use ``sensor.redaction.get_redactor()`` at capture time."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "DEFAULT_REDACTOR"


#: Pass as ``redactor`` to use the process-wide redactor (the default of :func:`capture_frame`).
DEFAULT_REDACTOR = _ProcessRedactor()

#: ``limits.max_depth`` is clamped to this, so a capture never nears the recursion limit.
MAX_DEPTH_CAP = int(CAPTURE_LIMIT_MAXIMA["max_depth"])
# The other maxima, read once (each capture clamps its limits to them).
_MAX_ITEMS = int(CAPTURE_LIMIT_MAXIMA["max_items"])
_MAX_STRING = int(CAPTURE_LIMIT_MAXIMA["max_string"])
_MAX_FIELDS = int(CAPTURE_LIMIT_MAXIMA["max_fields"])
_MAX_BYTES = int(CAPTURE_LIMIT_MAXIMA["max_bytes"])
_MAX_DEADLINE_MS = float(CAPTURE_LIMIT_MAXIMA["deadline_ms"])
_MAX_SAFE_INT = 2**53
_DEADLINE_EVERY = 32  # values encoded between two perf_counter() calls
# Characters scanned for secrets beyond a string's kept prefix, so that a secret across the cut
# is recognised and the kept part of it is not emitted (a card, an e-mail, a JWT's header and
# payload up to this size).
_SECRET_WINDOW = 1024
# Reasons whose redaction keeps the text around the secret (sensor.redaction.CARRIED_REASONS;
# repeated here so the encoder loads without the redaction module).
_CARRIED = frozenset(("auth-scheme", "aws-secret-key", "field", "netrc"))
_NAME_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}\Z")


# Attributes hidden as under a secret name whatever they are called, by the qualified name of
# the type that holds them: a cookie's value is a credential as often as not (`sid`,
# `connect.sid`, `_gh_sess`), as every value of a `Cookie` header line is.
_HIDDEN_ATTRS: dict[str, frozenset[str]] = {
    "http.cookies.Morsel": frozenset(("_value", "_coded_value")),
}


# The parameter sets of a list of them (``executemany``): see _Walker._hide_in.
_PARAM_SETS: frozenset[type] = frozenset((tuple, list, dict))


# A command-line option alone in an argv item (`--password`, `-token`; `--token=x` is a field).
_OPTION_ITEM = re.compile(r"--?([A-Za-z][A-Za-z0-9_.-]{1,63})\Z")


def _ends_key(x: str | bytes) -> bool:
    """Whether an item of a PEM key split across items holds the key's END line."""
    if type(x) is bytes:
        return b"-----END" in x and b"PRIVATE KEY" in x
    return "-----END" in x and "PRIVATE KEY" in x


def _looks_like_name(text: str) -> bool:
    """The first item of a pair is a name (``authorization``), not text that mentions one."""
    return _NAME_LIKE.match(text) is not None


_MAX_ERRORS = 20
_MAX_INT_DIGITS = 4000  # below the interpreter's default int-to-str limit (4300)
_MATCH_CACHE_CHARS = 64  # strings up to this length have their redaction verdict cached
_MATCH_CACHE_MAX = 4096
# str -> (redactor, rule version, reason or None); cleared when full, so bounded.
_MATCH_CACHE: dict[str, tuple[object, int, str | None]] = {}
# key or name -> (redactor, rule version, secret name?, secret value reason)
_KEY_CACHE: dict[str, tuple[object, int | None, bool, str | None]] = {}
# capture name (maybe an expression) -> (redactor, rule version, secret?)
_NAME_CACHE: dict[str, tuple[object, int | None, bool | int]] = {}
# A capture name's verdict (_secret_capture_name) when it is shown and names a template or its
# parameters (False: shown; True: secret), one truth test for the common name.
_PAIRED: Final = 2
_IDENT_TOKENS = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_DEFAULT_LIMITS = CaptureLimits()

_perf_counter = time.perf_counter
_str_copy = str.__str__  # on a str subclass: an exact str copy of the storage, no override
_int_copy = int.__int__
_float_copy = float.__float__
_exc_args = BaseException.__dict__["args"].__get__
_func_qualname = types.FunctionType.__dict__["__qualname__"].__get__
_func_module = types.FunctionType.__dict__["__module__"].__get__
_builtin_name = types.BuiltinFunctionType.__dict__["__name__"].__get__
_builtin_self = types.BuiltinFunctionType.__dict__["__self__"].__get__
_builtin_module = types.BuiltinFunctionType.__dict__["__module__"].__get__
_method_func = types.MethodType.__dict__["__func__"].__get__
_method_self = types.MethodType.__dict__["__self__"].__get__
_module_dict: Any = vars(types.ModuleType)["__dict__"].__get__
_OrderedDict = collections.OrderedDict
_deque = collections.deque
_Decimal = decimal.Decimal
_datetime = datetime.datetime
_date = datetime.date
_time = datetime.time
_timedelta = datetime.timedelta
_timezone = datetime.timezone
_UUID = uuid.UUID
_FunctionType = types.FunctionType
_ModuleType = types.ModuleType


class Budget:
    """The deadline and byte budget of one capture, shared by all its values.

    Checked while capturing (every value for bytes, every few values for time), never after:
    once spent, the remaining values become ``"@budget"`` or ``"@deadline"`` markers and
    containers stop iterating. ``truncated`` and ``errors`` collect what was cut and why.
    """

    __slots__ = (
        "deadline",
        "deadline_ms",
        "errors",
        "left",
        "max_bytes",
        "stop",
        "ticks",
        "truncated",
    )

    def __init__(
        self,
        limits: CaptureLimits | None = None,
        *,
        deadline_ms: float | None = None,
        max_bytes: int | None = None,
    ) -> None:
        lim = limits if limits is not None else _DEFAULT_LIMITS
        # Clamped again here: a limits object may have skipped validation (hand-made, or read
        # from an older hub's record); nothing may make one capture longer or larger.
        ms = float(lim.deadline_ms if deadline_ms is None else deadline_ms)
        self.deadline_ms = ms if ms <= _MAX_DEADLINE_MS else _MAX_DEADLINE_MS
        size = int(lim.max_bytes if max_bytes is None else max_bytes)
        self.max_bytes = size if size <= _MAX_BYTES else _MAX_BYTES
        self.deadline = _perf_counter() + self.deadline_ms / 1000.0
        self.left = self.max_bytes  #: approximate encoded bytes still allowed
        self.ticks = _DEADLINE_EVERY
        self.stop: str | None = None  #: "@budget" or "@deadline" once spent
        self.truncated = False
        self.errors: list[str] = []
        if self.left <= 0:
            self._exhaust()

    @property
    def expired(self) -> bool:
        """True once the deadline passed during this capture."""
        return self.stop == "@deadline"

    @property
    def exhausted(self) -> bool:
        """True once the byte budget (``max_bytes``) was used up."""
        return self.stop == "@budget"

    @property
    def used(self) -> int:
        """Approximate encoded bytes produced so far."""
        return self.max_bytes - max(self.left, 0)

    def check_deadline(self) -> bool:
        """Read the clock; mark the budget spent if the deadline passed. True if spent."""
        self.ticks = _DEADLINE_EVERY
        if self.stop is None and _perf_counter() > self.deadline:
            self.stop = "@deadline"
            self.left = 0  # one compare in the hot path then covers both limits
            self.truncated = True
            self.note(f"deadline: capture took longer than deadline_ms={self.deadline_ms:g}")
        return self.stop is not None

    def reason(self) -> str:
        """The marker of what stopped the capture (``"@budget"`` or ``"@deadline"``)."""
        if self.stop is None:
            self._exhaust()
        return self.stop or "@budget"

    def _exhaust(self) -> None:
        if self.stop is None:
            self.stop = "@budget"
            self.truncated = True
            self.note(f"budget: encoded size reached max_bytes={self.max_bytes}")

    def note(self, message: str) -> None:
        """Record one problem (bounded; repeats are kept once)."""
        if len(self.errors) < _MAX_ERRORS and message not in self.errors:
            self.errors.append(message)


def _describe(exc: BaseException) -> str:
    """``TypeName: message`` of an exception, reading only exact-str args (no user code); the
    message is redacted, since a builtin's message may quote the value it failed on."""
    name = layout_of(type(exc)).name
    try:
        args = _exc_args(exc)
    except Exception:
        args = ()
    if type(args) is tuple and args and type(args[0]) is str:
        from sensor.redaction import redact_error

        return f"{name}: {redact_error(args[0][:200])}"
    return name


class _Walker:
    """One capture's encoder: limits, redactor and budget, plus the cycle stack."""

    __slots__ = (
        "active",
        "budget",
        "max_depth",
        "max_fields",
        "max_items",
        "max_string",
        "red",
        "ver",
    )

    def __init__(self, limits: CaptureLimits, red: RedactorLike | None, budget: Budget) -> None:
        # Clamped to the documented maxima whatever the limits object says (see Budget).
        depth, items = limits.max_depth, limits.max_items
        string, fields = limits.max_string, limits.max_fields
        self.max_depth = depth if depth <= MAX_DEPTH_CAP else MAX_DEPTH_CAP
        self.max_items = items if items <= _MAX_ITEMS else _MAX_ITEMS
        self.max_string = string if string <= _MAX_STRING else _MAX_STRING
        self.max_fields = fields if fields <= _MAX_FIELDS else _MAX_FIELDS
        self.red = red
        self.budget = budget
        self.active: set[int] = set()  # ids of the containers on the current path
        # The redactor's rule version keys the match cache; without one, nothing is cached.
        ver = getattr(red, "version", None) if red is not None else None
        self.ver: int | None = ver if type(ver) is int else None

    # -- the hot path ---------------------------------------------------------------------

    def enc(self, v: Any, depth: int) -> JSONValue:
        b = self.budget
        if b.left <= 0:
            return self._spent(v)
        t = type(v)
        if t is str:
            n = len(v)
            if n <= self.max_string:
                if self.red is not None:
                    reason = self._match(v)
                    if reason is not None:
                        return self._secret_str(v, n, "str", reason)
                b.left -= n + 3
                return v
            return self._long_str(v, n, "str")
        if t is int:
            if -_MAX_SAFE_INT < v < _MAX_SAFE_INT:
                b.left -= 8
                return v
            return self._big_int(v, "int")
        if v is None or t is bool:
            b.left -= 5
            return v
        if t is float:
            b.left -= 12
            if v - v == 0.0:  # finite: inf - inf and nan are nan
                return v
            return {"@t": "float", "v": _float_tag(v)}
        # Scalars are bounded work; the clock is read only on the way into containers and
        # objects (every _DEADLINE_EVERY of them, or after as many items).
        b.ticks -= 1
        if b.ticks <= 0 and b.check_deadline():
            return self._spent(v)
        if t is dict:
            return self._dict(v, depth, "dict", v.items(), len(v), None)
        if t is list:
            return self._seq(v, depth, "list", iter(v), len(v))
        if t is tuple:
            return self._seq(v, depth, "tuple", iter(v), len(v))
        return self._other(v, t, depth)

    def _match(self, s: str) -> str | None:
        """The redactor's verdict on a string value, cached for short strings.

        Short strings (status codes, names, keys) repeat from hit to hit, while matching
        costs microseconds; an entry is valid only for the same redactor and rule version.
        """
        red = self.red
        assert red is not None
        ver = self.ver
        if ver is None or len(s) > _MATCH_CACHE_CHARS:
            return red.match_secret_value(s)
        entry = _MATCH_CACHE.get(s)
        if entry is not None and entry[0] is red and entry[1] == ver:
            return entry[2]
        reason = red.match_secret_value(s)
        if len(_MATCH_CACHE) >= _MATCH_CACHE_MAX:
            _MATCH_CACHE.clear()
        _MATCH_CACHE[s] = (red, ver, reason)
        return reason

    def _key(self, k: str) -> tuple[object, int | None, bool, str | None]:
        """``(redactor, version, secret name?, secret value reason)`` of a dict key or name."""
        red = self.red
        assert red is not None
        ver = self.ver
        if len(k) > self.max_string + _SECRET_WINDOW:
            # Scanned as a value is: its head and the look-ahead window, not all of it.
            head = k[: self.max_string + _SECRET_WINDOW]
            return (red, ver, bool(red.is_secret_name(k)), red.match_secret_value(head))
        verdict = (red, ver, bool(red.is_secret_name(k)), red.match_secret_value(k))
        if ver is not None and len(k) <= _MATCH_CACHE_CHARS:
            if len(_KEY_CACHE) >= _MATCH_CACHE_MAX:
                _KEY_CACHE.clear()
            _KEY_CACHE[k] = verdict
        return verdict

    def _secret_name(self, k: str) -> bool:
        """Whether an attribute or capture name is secret (cached like dict keys)."""
        verdict = _KEY_CACHE.get(k)
        if verdict is None or verdict[0] is not self.red or verdict[1] != self.ver:
            verdict = self._key(k)
        return verdict[2]

    def _spent(self, v: Any) -> JSONValue:
        return {"@t": layout_of(type(v)).name, self.budget.reason(): True}

    # -- strings, bytes and numbers ----------------------------------------------------------

    def _redacted(self, name: str, reason: str, n: int | None) -> JSONValue:
        self.budget.left -= 48
        out: dict[str, Any] = {"@t": name, "@redacted": reason}
        if n is not None and self.red is not None:
            out["@len"] = self.red.length_class(n)
        return out

    def _secret_str(self, text: str, n: int, name: str, reason: str) -> JSONValue:
        """A str that holds a secret: the whole value hidden, or for a carried secret (a query
        string, a form body, a header line) the text with only the credential replaced.

        ``text`` is the value, or the part of it that was scanned; ``n`` the value's length.
        """
        red = self.red
        if reason in _CARRIED and red is not None:
            shown = _redact_text(red, text)
            if shown is not None:
                limit = self.max_string
                if n <= limit and len(shown) <= limit:
                    self.budget.left -= len(shown) + 3
                    return shown if name == "str" else {"@t": name, "v": shown}
                self.budget.left -= min(len(shown), limit) + 40
                self.budget.truncated = True
                return {"@t": name, "v": shown[:limit], "@len": n, "@trunc": True}
        return self._redacted(name, reason, n)

    def _long_str(self, v: str, n: int, name: str) -> JSONValue:
        """A str (exact, or a subclass's storage copy) that needs the object form."""
        limit = self.max_string
        red = self.red
        if red is not None:
            # Scan past the cut so a secret straddling it is still caught.
            window = v if n <= limit + _SECRET_WINDOW else v[: limit + _SECRET_WINDOW]
            reason = self._match(window)
            if reason is not None:
                return self._secret_str(window, n, name, reason)
        if n <= limit:
            self.budget.left -= n + 16
            return {"@t": name, "v": v}
        self.budget.left -= limit + 40
        self.budget.truncated = True
        return {"@t": name, "v": v[:limit], "@len": n, "@trunc": True}

    def _bytes(self, v: bytes, n: int, name: str) -> JSONValue:
        """``v`` is the bytes value or its head (at least max_string + the scan window)."""
        limit = self.max_string
        # repr() of exact bytes escapes backslashes, quotes and non-ASCII unambiguously.
        text = repr(v[:limit])[2:-1]
        if self.red is not None:
            # As for str: scan past the cut so a secret straddling it is caught.
            scan = text if n <= limit else repr(v[: limit + _SECRET_WINDOW])[2:-1]
            reason = self._match(scan)
            if reason is not None:
                if reason in _CARRIED:
                    shown = _redact_text(self.red, scan)
                    if shown is not None:
                        kept = shown[:limit]
                        self.budget.left -= len(kept) + 32
                        parts: dict[str, Any] = {"@t": name, "v": kept, "@len": n}
                        if n > limit or len(shown) > limit:
                            parts["@trunc"] = True
                            self.budget.truncated = True
                        return parts
                return self._redacted(name, reason, n)
        self.budget.left -= len(text) + 32
        out: dict[str, Any] = {"@t": name, "v": text, "@len": n}
        if n > limit:
            out["@trunc"] = True
            self.budget.truncated = True
        return out

    def _big_int(self, v: int, name: str) -> JSONValue:
        digits = int(v.bit_length() * 0.30103) + 1
        self.budget.left -= 40
        if digits <= _MAX_INT_DIGITS:
            try:
                text = str(v)  # exact int: C code
            except ValueError:  # the host lowered sys.set_int_max_str_digits
                text = None
            if text is not None:
                limit = max(self.max_string, 1)
                if len(text) <= limit:
                    self.budget.left -= len(text)
                    return {"@t": name, "v": text}
                self.budget.truncated = True
                self.budget.left -= limit
                return {"@t": name, "v": text[:limit], "@len": len(text), "@trunc": True}
        self.budget.truncated = True
        return {"@t": name, "@len": digits, "@trunc": True}

    # -- containers ------------------------------------------------------------------------------

    def _seq(self, v: Any, depth: int, name: str, it: Iterator[Any], n: int) -> JSONValue:
        b = self.budget
        if depth >= self.max_depth:
            b.truncated = True
            b.left -= 32
            return {"@t": name, "@depth": True, "@len": n}
        ident = id(v)
        active = self.active
        if ident in active:
            b.left -= 24
            return {"@t": name, "@cycle": True}
        active.add(ident)
        try:
            b.left -= 16
            enc = self.enc
            red = self.red
            max_string = self.max_string
            d1 = depth + 1
            limit = self.max_items
            out: list[JSONValue] = []
            append = out.append
            tv = type(v)
            if n == 2 and red is not None and (tv is tuple or tv is list):
                pair = self._secret_pair(v, d1)
                if pair is not None:
                    b.ticks -= 2
                    return {"@t": name, "v": pair}
            # The item after a secret command-line option (`["--password", "x"]`), and the
            # items of a PEM private key split across items after its BEGIN line.
            hide_next = False
            in_key = False
            # islice even when n <= limit: another thread may append while we iterate.
            for x in islice(it, limit):
                if b.left <= 0:
                    break
                # The common leaves inline: a method call per item would double the cost.
                tx = type(x)
                if hide_next or in_key:
                    hide_next = False
                    if not in_key:
                        append(self._redact_name(x))
                        continue
                    if tx is str or tx is bytes:
                        in_key = not _ends_key(x)
                        append(self._redacted(tx.__name__, "private-key", len(x)))
                        continue
                    in_key = False
                if tx is int and -_MAX_SAFE_INT < x < _MAX_SAFE_INT:
                    b.left -= 8
                    append(x)
                elif tx is str and len(x) <= max_string and (red is None or self._match(x) is None):
                    b.left -= len(x) + 3
                    append(x)
                    if red is not None and x and x[0] == "-":
                        hide_next = self._secret_option(x)
                else:
                    item = enc(x, d1)
                    append(item)
                    if (
                        (tx is str or tx is bytes)
                        and type(item) is dict
                        and item.get("@redacted") == "private-key"
                    ):
                        in_key = not _ends_key(x)
            res: dict[str, Any] = {"@t": name, "v": out}
            kept = len(out)
            b.ticks -= kept
            if kept < n:
                res["@len"] = n
                res["@trunc"] = True
                b.truncated = True
                if b.left <= 0:
                    res[b.reason()] = True
            return res
        except Exception as exc:
            return self._error(name, exc)
        finally:
            active.discard(ident)

    def _secret_option(self, x: str) -> bool:
        """Whether ``x`` is a command-line option with a secret name (``--password``), whose
        value is the next item of an argv list."""
        m = _OPTION_ITEM.match(x)
        return m is not None and self._secret_name(m.group(1))

    def _secret_pair(self, v: Any, depth: int) -> list[JSONValue] | None:
        """``(name, value)`` whose name is secret (an ASGI header ``(b"authorization", ...)``,
        an ``items()`` pair): the name, and the value hidden as under a secret key."""
        first, second = v[0], v[1]
        tf = type(first)
        if tf is str:
            key = first
        elif tf is bytes and len(first) <= 64:
            key = first.decode("latin-1")
        else:
            return None
        if not _looks_like_name(key) or not self._secret_name(key):
            return None
        return [self.enc(first, depth), self._redact_name(second)]

    def _set(self, v: Any, depth: int, name: str, it: Iterator[Any], n: int) -> JSONValue:
        res = self._seq(v, depth, name, it, n)
        # Set order follows hashes (random for str per process); sort plain scalars so that
        # the same set encodes the same way in tests and in production.
        if type(res) is dict:
            items = res.get("v")
            if items is not None and len(items) == n and n > 1:
                first = type(items[0])
                if (first is str or first is int) and all(type(x) is first for x in items):
                    items.sort()
        return res

    def _dict(
        self,
        v: Any,
        depth: int,
        name: str,
        pairs: Iterable[tuple[Any, Any]],
        n: int,
        extra: Layout | None,
    ) -> JSONValue:
        b = self.budget
        if depth >= self.max_depth:
            b.truncated = True
            b.left -= 32
            return {"@t": name, "@depth": True, "@len": n}
        ident = id(v)
        active = self.active
        if ident in active:
            b.left -= 24
            return {"@t": name, "@cycle": True}
        active.add(ident)
        try:
            b.left -= 16
            enc = self.enc
            red = self.red
            d1 = depth + 1
            limit = self.max_items
            out: dict[str, JSONValue] = {}
            items: list[list[JSONValue]] | None = None  # the "items" form, once needed
            max_string = self.max_string
            tiny = max_string < _MATCH_CACHE_CHARS
            ver = self.ver
            kept = 0
            reason: str | None = None
            for k, x in pairs if n <= limit else islice(pairs, limit):
                if b.left <= 0:
                    break
                kept += 1
                # A str key's verdict: one cached lookup answers both questions about it. A
                # key longer than max_string has none (it takes the items form, cut as a value
                # is). Only a miss can be one, since the cache holds keys of at most 64
                # characters, unless max_string is shorter than that (``tiny``).
                verdict: tuple[object, int | None, bool, str | None] | None = None
                if type(k) is str:
                    if red is None:
                        verdict = _NO_REDACTOR if len(k) <= max_string else None
                    else:
                        verdict = _KEY_CACHE.get(k)
                        if verdict is None or verdict[0] is not red or verdict[1] != ver:
                            verdict = self._key(k) if len(k) <= max_string else None
                        elif tiny and len(k) > max_string:
                            verdict = None
                if verdict is not None:
                    b.left -= len(k) + 4
                    reason = verdict[3]
                    if verdict[2]:
                        out_v = self._redact_name(x)
                    else:
                        tx = type(x)
                        if tx is int and -_MAX_SAFE_INT < x < _MAX_SAFE_INT:
                            b.left -= 8
                            out_v = x
                        elif (
                            tx is str
                            and len(x) <= max_string
                            and (red is None or self._match(x) is None)
                        ):
                            b.left -= len(x) + 3
                            out_v = x
                        else:
                            out_v = enc(x, d1)
                    if reason is None:
                        if items is None:
                            out[k] = out_v
                        else:
                            items.append([k, out_v])
                        continue
                    # A key that is itself a secret (an e-mail address, a token) cannot be
                    # a JSON key: switch to the items form with the key redacted.
                    if items is None:
                        items = [[kk, vv] for kk, vv in out.items()]
                    items.append([self._redacted("str", reason, len(k)), out_v])
                    continue
                if items is None:
                    items = [[kk, vv] for kk, vv in out.items()]
                tk = type(k)
                if tk is bytes:  # ASGI-style headers dicts: b"authorization"
                    key_name = k.decode("latin-1") if len(k) <= 256 else None
                elif tk is str:  # a key longer than max_string: encoded (cut) as a value
                    key_name = k
                else:
                    key_name = _name_of_str(k) if _is_str_subclass(tk) else None
                out_k = enc(k, d1)
                if key_name is not None and red is not None and red.is_secret_name(key_name):
                    out_v = self._redact_name(x)
                else:
                    out_v = enc(x, d1)
                items.append([out_k, out_v])
            b.ticks -= kept
            res: dict[str, Any] = {"@t": name}
            if items is None:
                res["v"] = out
            else:
                res["items"] = items
            if kept < n:
                res["@len"] = n
                res["@trunc"] = True
                b.truncated = True
                if b.left <= 0:
                    res[b.reason()] = True
            if extra is not None:
                self._extra_attrs(v, extra, res, d1)
            return res
        except Exception as exc:
            return self._error(name, exc)
        finally:
            active.discard(ident)

    # -- everything else -----------------------------------------------------------------------

    def _other(self, v: Any, t: type, depth: int) -> JSONValue:
        # A value an expression read under a secret name arrives as the sandbox's marker: keep
        # its redacted form (type name and length class), not the marker object's own fields.
        expressions = sys.modules.get("sensor.expressions")
        if expressions is not None and t is getattr(expressions, "Redacted", None):
            shown = v.to_json()
            if type(shown) is str:  # a carried secret: the redactor's text, encoded as a str
                return self.enc(shown, depth)
            self.budget.left -= 48
            return cast("JSONValue", shown)
        try:
            layout = _LAYOUTS.get(id(t))
            if layout is None or layout.type is not t:
                layout = layout_of(t)
            if layout.kind == Kind.OBJECT:  # the common case: a user object
                return self._object(v, layout, depth)
            return self._not_object(v, t, layout, depth)
        except Exception as exc:
            return self._error(_name_or_unknown(t), exc)

    def _not_object(self, v: Any, t: type, layout: Layout, depth: int) -> JSONValue:
        # Exact stdlib value types first (identity checks: never isinstance on user objects,
        # which may read a user-defined __class__).
        if t is _datetime or t is _time:
            text, tz = _iso(v)
            self.budget.left -= 64
            out: dict[str, Any] = {"@t": layout_of(t).name, "v": text}
            if tz is not None:
                out["@tz"] = tz
            return out
        if t is _date:
            self.budget.left -= 48
            return {"@t": "datetime.date", "v": v.isoformat()}
        if t is _Decimal:
            return self._decimal(v)
        if t is _timedelta:
            self.budget.left -= 48
            return {"@t": "datetime.timedelta", "v": v.total_seconds()}
        if t is _UUID:
            self.budget.left -= 64
            return {"@t": "uuid.UUID", "v": _UUID.__str__(v)}
        if t is set or t is frozenset:
            name = "set" if t is set else "frozenset"
            return self._set(v, depth, name, iter(v), len(v))
        if t is _deque:
            return self._seq(v, depth, "collections.deque", iter(v), len(v))
        if t is bytes:
            return self._bytes(v, len(v), "bytes")
        if t is bytearray:
            head = bytes(v[: self.max_string + _SECRET_WINDOW])
            return self._bytes(head, len(v), "bytearray")
        if t is _OrderedDict:
            return self._dict(v, depth, "collections.OrderedDict", v.items(), len(v), None)
        if t is complex:
            self.budget.left -= 48
            return {"@t": "complex", "v": [_float_json(v.real), _float_json(v.imag)]}
        if t is range:
            self.budget.left -= 48
            return {
                "@t": "range",
                "v": [self.enc(v.start, depth), self.enc(v.stop, depth), self.enc(v.step, depth)],
            }
        return self._by_layout(v, t, layout, depth)

    def _decimal(self, v: decimal.Decimal) -> JSONValue:
        text = _Decimal.__str__(v)
        self.budget.left -= len(text) + 32
        limit = max(self.max_string, 1)
        if len(text) <= limit:
            return {"@t": "decimal.Decimal", "v": text}
        self.budget.truncated = True
        return {"@t": "decimal.Decimal", "v": text[:limit], "@len": len(text), "@trunc": True}

    def _by_layout(self, v: Any, t: type, layout: Layout, depth: int) -> JSONValue:
        kind = layout.kind
        name = layout.name
        if kind == Kind.OBJECT or kind == Kind.EXCEPTION:
            return self._object(v, layout, depth)
        if kind == Kind.ENUM:
            return self._enum(v, layout, depth)
        if kind == Kind.DICT:
            return self._dict(v, depth, name, dict.items(v), dict.__len__(v), layout)
        if kind == Kind.NAMEDTUPLE:
            return self._namedtuple(v, layout, depth)
        res = self._builtin_subclass(v, kind, name, depth)
        if res is not None:
            # Instance attributes of a builtin subclass (``class Tags(list)`` with ``.source``).
            if type(res) is dict and "v" in res:
                self._extra_attrs(v, layout, res, depth + 1)
            return res
        self.budget.left -= 48
        if kind == Kind.CLASS:
            return {"@t": "type", "v": layout_of(v).name}
        if kind == Kind.FUNCTION:
            return {"@t": "function", "v": _function_name(v)}
        if kind == Kind.BUILTIN_FUNCTION:
            return {"@t": "builtin_function_or_method", "v": _builtin_function_name(v)}
        if kind == Kind.METHOD:
            return {"@t": "method", "v": _method_name(v)}
        if kind == Kind.MODULE:
            return {"@t": "module", "v": _module_name(v)}
        return self._object(v, layout, depth)  # pragma: no cover - every kind is handled above

    def _builtin_subclass(self, v: Any, kind: int, name: str, depth: int) -> JSONValue:
        """A subclass of a builtin container or scalar, read with the builtin's own methods."""
        if kind == Kind.LIST:
            return self._seq(v, depth, name, list.__iter__(v), list.__len__(v))
        if kind == Kind.TUPLE:
            return self._seq(v, depth, name, tuple.__iter__(v), tuple.__len__(v))
        if kind == Kind.SET:
            return self._set(v, depth, name, set.__iter__(v), set.__len__(v))
        if kind == Kind.FROZENSET:
            return self._set(v, depth, name, frozenset.__iter__(v), frozenset.__len__(v))
        if kind == Kind.DEQUE:
            return self._seq(v, depth, name, _deque.__iter__(v), _deque.__len__(v))
        if kind == Kind.STR:
            # The head of the storage (an exact str, no override), not a copy of all of it.
            n = str.__len__(v)
            return self._long_str(_str_head(v, self.max_string + _SECRET_WINDOW), n, name)
        if kind == Kind.BYTES:
            return self._bytes(
                bytes.__getitem__(v, slice(0, self.max_string + _SECRET_WINDOW)),
                bytes.__len__(v),
                name,
            )
        if kind == Kind.BYTEARRAY:
            head = bytes(bytearray.__getitem__(v, slice(0, self.max_string + _SECRET_WINDOW)))
            return self._bytes(head, bytearray.__len__(v), name)
        if kind == Kind.INT:
            i = _int_copy(v)
            if -_MAX_SAFE_INT < i < _MAX_SAFE_INT:
                self.budget.left -= 24
                return {"@t": name, "v": i}
            return self._big_int(i, name)
        if kind == Kind.FLOAT:
            self.budget.left -= 24
            return {"@t": name, "v": _float_json(_float_copy(v))}
        return None

    def _instance_dict(self, v: Any, layout: Layout) -> dict[Any, Any] | None:
        if layout.dict_get is not None:
            d = layout.dict_get(v)
        elif layout.dict_hidden:
            d = hidden_instance_dict(v)
        else:
            return None
        return d if type(d) is dict else None

    def _object(self, v: Any, layout: Layout, depth: int) -> JSONValue:
        b = self.budget
        name = layout.name
        if depth >= self.max_depth:
            b.truncated = True
            b.left -= 32
            return {"@t": name, "@depth": True}
        if layout.bookkeeping and depth > 0:
            # An ORM's per-instance state inside an instance: its type only (not a cut of the
            # application's data, so the hit is not marked truncated for it).
            b.left -= 32
            return {"@t": name, "@depth": True}
        ident = id(v)
        active = self.active
        if ident in active:
            b.left -= 24
            return {"@t": name, "@cycle": True}
        active.add(ident)
        try:
            b.left -= 24 + len(name)
            attrs: dict[str, JSONValue] = {}
            total = self._fill_attrs(v, layout, attrs, depth + 1)
            if layout.kind == Kind.EXCEPTION and "args" not in attrs:
                args = _exc_args(v)
                if type(args) is tuple:
                    total += 1
                    if len(attrs) < self.max_fields:
                        attrs["args"] = self._field("args", args, depth + 1)
            res: dict[str, Any] = {"@t": name, "@attrs": attrs}
            if total > len(attrs):
                res["@len"] = total
                res["@trunc"] = True
                b.truncated = True
                if b.left <= 0:
                    res[b.reason()] = True
            return res
        except Exception as exc:
            return self._error(name, exc)
        finally:
            active.discard(ident)

    def _fill_attrs(self, v: Any, layout: Layout, attrs: dict[str, JSONValue], d1: int) -> int:
        """Fill ``attrs`` from the instance dict and slots; return the number of fields seen."""
        b = self.budget
        limit = self.max_fields
        total = 0
        d = self._instance_dict(v, layout)
        if d:
            total = len(d)
            red = self.red
            max_string = self.max_string
            hidden = _HIDDEN_ATTRS.get(layout.name) if red is not None else None
            # A template and its parameters (a log record's msg and args): see _hide_params.
            paired: dict[str, Any] | None = None
            for k, x in d.items() if total <= limit else islice(d.items(), limit):
                if b.left <= 0:
                    break
                if type(k) is not str or (lk := len(k)) > max_string:
                    # Non-str names (set through __dict__) and names longer than a kept
                    # string: counted in @len, not kept.
                    continue
                b.left -= lk + 4
                if k in PAIRED_NAMES:
                    if paired is None:
                        paired = {}
                    paired[k] = x
                if hidden is not None and k in hidden:
                    attrs[k] = self._redact_name(x)
                    continue
                tx = type(x)
                if red is None or not self._secret_name(k):
                    if tx is int and -_MAX_SAFE_INT < x < _MAX_SAFE_INT:
                        b.left -= 8
                        attrs[k] = x
                        continue
                    if (
                        tx is str
                        and len(x) <= max_string
                        and (red is None or self._match(x) is None)
                    ):
                        b.left -= len(x) + 3
                        attrs[k] = x
                        continue
                attrs[k] = self._field(k, x, d1)
            if paired is not None and len(paired) > 1 and red is not None:
                self._hide_params(paired, attrs)
        for slot_name, getter in layout.slots:
            try:
                x = getter(v)
            except AttributeError:  # an unset slot: not a field of this instance
                continue
            total += 1
            if len(attrs) < limit and b.left > 0:
                b.left -= len(slot_name) + 4
                attrs[slot_name] = self._field(slot_name, x, d1)
        return total

    def _field(self, name: str, x: Any, depth: int) -> JSONValue:
        if self.red is not None and self._secret_name(name):
            return self._redact_name(x)
        tx = type(x)
        if tx is int and -_MAX_SAFE_INT < x < _MAX_SAFE_INT:
            self.budget.left -= 8
            return x
        return self.enc(x, depth)

    def _extra_attrs(self, v: Any, layout: Layout, res: dict[str, Any], d1: int) -> None:
        """Instance fields of a builtin-container subclass, next to its items."""
        if layout.dict_get is None and not layout.slots:
            return
        attrs: dict[str, JSONValue] = {}
        total = self._fill_attrs(v, layout, attrs, d1)
        if attrs:
            res["@attrs"] = attrs
        if total > len(attrs):
            res["@trunc"] = True
            self.budget.truncated = True

    def _namedtuple(self, v: Any, layout: Layout, depth: int) -> JSONValue:
        b = self.budget
        name = layout.name
        if depth >= self.max_depth:
            b.truncated = True
            b.left -= 32
            return {"@t": name, "@depth": True}
        ident = id(v)
        if ident in self.active:
            return {"@t": name, "@cycle": True}
        self.active.add(ident)
        try:
            fields = layout.fields or ()
            n = tuple.__len__(v)
            limit = self.max_fields
            attrs: dict[str, JSONValue] = {}
            for field, x in islice(zip(fields, tuple.__iter__(v), strict=False), limit):
                if b.left <= 0:
                    break
                b.left -= len(field) + 4
                attrs[field] = self._field(field, x, depth + 1)
            res: dict[str, Any] = {"@t": name, "@attrs": attrs}
            if len(attrs) < n:
                res["@len"] = n
                res["@trunc"] = True
                b.truncated = True
                if b.left <= 0:
                    res[b.reason()] = True
            return res
        except Exception as exc:
            return self._error(name, exc)
        finally:
            self.active.discard(ident)

    def _enum(self, v: Any, layout: Layout, depth: int) -> JSONValue:
        self.budget.left -= 32 + len(layout.name)
        d = self._instance_dict(v, layout)
        if d is not None:
            member = d.get("_name_")
            if type(member) is str:
                return {"@t": layout.name, "v": member}
            if "_value_" in d:  # a flag combination without a name: give its value
                return {"@t": layout.name, "value": self.enc(d["_value_"], depth + 1)}
        return {"@t": layout.name, "@error": "enum member without _name_"}

    # -- redaction and errors --------------------------------------------------------------------

    def _redact_name(self, x: Any) -> JSONValue:
        """A value whose name (key, attribute, capture name) is a secret: type and size only."""
        t = type(x)
        expressions = sys.modules.get("sensor.expressions")
        if expressions is not None and t is getattr(expressions, "Redacted", None):
            # The sandbox's marker under a secret capture name: the hidden value's type and
            # length class, which the marker keeps (not the marker class's own name).
            out: dict[str, JSONValue] = {"@t": str(x.type_name), "@redacted": "name"}
            if x.length is not None:
                out["@len"] = str(x.length)
            self.budget.left -= 48
            return out
        try:
            name = layout_of(t).name
            n = _length(x, t)
        except Exception:
            name, n = _name_or_unknown(t), None
        return self._redacted(name, "name", n)

    def _hide_params(self, paired: dict[str, Any], out: dict[str, JSONValue]) -> None:
        """Parameters kept next to their template (``paired``: the raw values under
        :data:`~sensor.capture.params.PAIRED_NAMES`; ``out``: their encodings, by the same
        names): those the template puts after a secret name are hidden as under a secret name
        (:mod:`sensor.capture.params`)."""
        red = self.red
        positions: set[int] = set()
        names: set[str] = set()
        every = False
        for k, x in paired.items():
            if k.rpartition(".")[2] in TEMPLATE_NAMES:
                found = hidden_params(red, x)
                positions |= found.positions
                names |= found.names
                every = every or found.every
        if not (positions or names or every):
            return
        hidden = Hidden(frozenset(positions), frozenset(names), every)
        for k, x in paired.items():
            if k.rpartition(".")[2] in PARAM_NAMES and k in out:
                try:
                    out[k] = self._hide_in(x, out[k], hidden, True)
                except Exception:  # (a list another thread shrank): hidden whole, not shown
                    out[k] = self._redacted(_name_or_unknown(type(x)), "name", None)

    def _hide_in(self, x: Any, enc: JSONValue, hidden: Hidden, nested: bool) -> JSONValue:
        """``enc`` (the encoding of ``x``) with the parameters ``hidden`` names hidden: items of
        an exact tuple or list by position (and, ``nested``, those of the parameter sets it
        holds: ``executemany``'s), values of an exact dict by key, a single parameter whole."""
        if hidden.every:
            return self._redact_name(x)
        if type(enc) is not dict or "@redacted" in enc:
            return enc
        tx = type(x)
        if tx is tuple or tx is list:
            items = enc.get("v")
            if type(items) is not list:
                return enc
            n = min(len(items), len(x))
            if nested and n and all(type(y) in _PARAM_SETS for y in islice(x, n)):
                # Parameter sets (``executemany``'s rows): each one's own parameters.
                for i in range(n):
                    items[i] = self._hide_in(x[i], items[i], hidden, False)
                return enc
            for i in hidden.positions:
                if i < n:
                    items[i] = self._redact_name(x[i])
            return enc
        if tx is dict:
            if not hidden.names:
                # logging's one dict argument (``log("%s", {...})``) is the record's args.
                return self._redact_name(x) if 0 in hidden.positions else enc
            # In the dict's own order (C iteration: no host __eq__ on a lookup), as far as the
            # encoding went: by key (``v``) or, with keys of other types, by position (``items``).
            by_key = enc.get("v")
            pairs = enc.get("items")
            if type(by_key) is dict:
                for k, y in islice(dict.items(x), self.max_items):
                    if type(k) is str and k in hidden.names and k in by_key:
                        by_key[k] = self._redact_name(y)
            elif type(pairs) is list:
                for i, (k, y) in enumerate(islice(dict.items(x), len(pairs))):
                    pair = pairs[i]
                    if type(k) is str and k in hidden.names and type(pair) is list:
                        pair[1] = self._redact_name(y)
            return enc
        return self._redact_name(x) if 0 in hidden.positions else enc

    def _error(self, name: str, exc: BaseException) -> JSONValue:
        reason = _describe(exc)
        self.budget.note(f"error: {name}: {reason}")
        self.budget.left -= 48
        return {"@t": name, "@error": reason}


# -- helpers without state -------------------------------------------------------------------------


def _float_tag(v: float) -> str:
    if v != v:
        return "nan"
    return "inf" if v > 0 else "-inf"


def _float_json(v: float) -> JSONValue:
    return v if v - v == 0.0 else _float_tag(v)


def _iso(v: datetime.datetime | datetime.time) -> tuple[str, str | None]:
    """isoformat() of an exact datetime/time, calling tzinfo code only when it is stdlib's."""
    tz = v.tzinfo
    if tz is None or type(tz) is _timezone or _is_zoneinfo(type(tz)):
        return v.isoformat(), None
    # A third-party tzinfo's utcoffset() is user code: give the naive time and the zone's type.
    return v.replace(tzinfo=None).isoformat(), layout_of(type(tz)).name


def _is_zoneinfo(t: type) -> bool:
    zoneinfo = sys.modules.get("zoneinfo")
    return zoneinfo is not None and t is getattr(zoneinfo, "ZoneInfo", None)


#: The verdict on every str key when nothing is redacted: not secret, no reason.
_NO_REDACTOR: tuple[object, int | None, bool, str | None] = (None, None, False, None)


def _str_head(v: str, n: int) -> str:
    """The first ``n`` characters of a str or a str subclass's storage, as an exact str (no
    override runs, and no copy of the rest is made)."""
    return str.__getitem__(v, slice(0, n)) if str.__len__(v) > n else _str_copy(v)


#: A name longer than this is judged by its ends (see Redactor.is_secret_name).
_LONG_NAME = 256


def _name_of_str(v: str) -> str:
    """An exact str to judge a str subclass's storage as a name by: a copy of a short one, the
    two ends of a long one (what the redactor judges a long name by)."""
    if str.__len__(v) <= _LONG_NAME:
        return _str_copy(v)
    return str.__getitem__(v, slice(0, 128)) + " " + str.__getitem__(v, slice(-128, None))


def _is_str_subclass(t: type) -> bool:
    return layout_of(t).kind == Kind.STR


# Builtin __len__ of the storage, per layout kind: never a subclass's override.
_LENGTHS: dict[int, Any] = {
    Kind.STR: str.__len__,
    Kind.BYTES: bytes.__len__,
    Kind.BYTEARRAY: bytearray.__len__,
    Kind.DICT: dict.__len__,
    Kind.LIST: list.__len__,
    Kind.TUPLE: tuple.__len__,
    Kind.NAMEDTUPLE: tuple.__len__,
    Kind.SET: set.__len__,
    Kind.FROZENSET: frozenset.__len__,
    Kind.DEQUE: _deque.__len__,
}


def _length(x: Any, t: type) -> int | None:
    """A size for the length class of a redacted value: characters, bytes, items or digits."""
    if t is str or t is bytes or t is list or t is tuple or t is dict:
        return len(x)
    if t is int:
        return len(str(abs(x))) if x.bit_length() < 4000 else None
    if t is bool or t is float or x is None:
        return None
    func = _LENGTHS.get(layout_of(t).kind)
    return func(x) if func is not None else None


def _name_or_unknown(t: type) -> str:
    try:
        return layout_of(t).name
    except Exception:
        return "?"


def _function_name(f: Any) -> str:
    qual = _func_qualname(f)
    module = _func_module(f)
    qual = qual if type(qual) is str else "?"
    return f"{module}.{qual}" if type(module) is str else qual


def _builtin_function_name(f: Any) -> str:
    name = _builtin_name(f)
    name = name if type(name) is str else "?"
    owner = _builtin_self(f)
    if owner is None or type(owner) is _ModuleType:
        module = _builtin_module(f)
        if type(module) is str and module != "builtins":
            return f"{module}.{name}"
        return name
    return f"{layout_of(type(owner)).name}.{name}"


def _method_name(m: Any) -> str:
    func = _method_func(m)
    if type(func) is _FunctionType:
        return _function_name(func)
    owner = _method_self(m)
    return f"{layout_of(type(owner)).name}.?"


def _module_name(m: Any) -> str:
    d = _module_dict(m)
    if type(d) is dict:
        name = d.get("__name__")
        if type(name) is str:
            return name
    return "?"


def _secret_capture_name(walker: _Walker, name: str) -> bool | int:
    """A capture name's verdict: True if it, or any identifier in it (``user.password``), is
    secret; else :data:`_PAIRED` if it (or its last part, ``record.args``) names a template or
    its parameters (see _Walker._hide_params); else False."""
    verdict: bool | int = walker._secret_name(name) or (
        not name.isidentifier()
        and any(walker._secret_name(token) for token in _IDENT_TOKENS.findall(name))
    )
    if not verdict and name.rpartition(".")[2] in PAIRED_NAMES:
        verdict = _PAIRED
    if walker.ver is not None and len(name) <= _MATCH_CACHE_CHARS:
        if len(_NAME_CACHE) >= _MATCH_CACHE_MAX:
            _NAME_CACHE.clear()
        _NAME_CACHE[name] = (walker.red, walker.ver, verdict)
    return verdict


def _resolve(redactor: RedactorLike | _ProcessRedactor | None) -> RedactorLike | None:
    if not isinstance(redactor, _ProcessRedactor):  # our own sentinel: no user code
        return redactor
    # Imported lazily: the redaction module belongs to another part of the sensor and loads
    # its configuration (SENSOR_REDACT_*) on first use.
    from sensor.redaction import get_redactor

    return get_redactor()


# -- public API ----------------------------------------------------------------------------------


def encode(
    value: object,
    limits: CaptureLimits | None = None,
    *,
    redactor: RedactorLike | _ProcessRedactor | None,
    budget: Budget | None = None,
) -> JSONValue:
    """Encode one value as typed JSON without running user code; never raises.

    ``budget`` is shared between the values of one capture (a new one is made if omitted);
    after the call, ``budget.truncated`` and ``budget.errors`` say what was cut.
    ``redactor=None`` disables redaction (tests only); :data:`DEFAULT_REDACTOR` uses the
    process-wide one.
    """
    try:
        lim = limits if limits is not None else _DEFAULT_LIMITS
        spent = budget if budget is not None else Budget(lim)
        return _Walker(lim, _resolve(redactor), spent).enc(value, 0)
    except Exception as exc:  # RecursionError near the host's limit, MemoryError, ...
        try:
            return _failed(value, exc, budget)
        except Exception:  # not even one more frame: a constant answer
            return {"@t": "?", "@error": "RecursionError"}


def _failed(value: object, exc: BaseException, budget: Budget | None) -> JSONValue:
    """The encoding of a value whose capture failed; safe even at the recursion limit."""
    try:
        name = _name_or_unknown(type(value))
        reason = _describe(exc)
        if budget is not None:
            budget.truncated = True
            budget.note(f"error: {name}: {reason}")
    except Exception:  # no stack left to describe it: a constant answer
        name, reason = "?", "RecursionError"
    return {"@t": name, "@error": reason}


def capture_frame(
    names_to_values: Mapping[str, object],
    limits: CaptureLimits | None = None,
    redactor: RedactorLike | _ProcessRedactor | None = DEFAULT_REDACTOR,
) -> tuple[dict[str, JSONValue], bool, list[str]]:
    """Encode named values (a frame's locals, or evaluated captures).

    Returns ``(captures, truncated, errors)``.

    At most ``limits.max_fields`` names are kept (the rest are counted in ``errors``); a name
    the redactor calls secret keeps only its value's type and length class. One budget
    (``max_bytes``, ``deadline_ms``) covers all values. Never raises.
    """
    lim = limits if limits is not None else _DEFAULT_LIMITS
    budget = Budget(lim)
    captures: dict[str, JSONValue] = {}
    try:
        red = _resolve(redactor)
        walker = _Walker(lim, red, budget)
        n = len(names_to_values)
        limit = walker.max_fields
        pairs: Iterable[tuple[object, object]] = names_to_values.items()
        ver = walker.ver
        kept = 0
        # A template and its parameters among the names (a driver's query and params, a
        # probe's ``record.msg`` and ``record.args``): see _Walker._hide_params.
        paired: dict[str, object] | None = None
        for name, value in islice(pairs, limit) if n > limit else pairs:
            kept += 1
            if type(name) is not str:
                budget.note("error: a capture name that is not a str was skipped")
                continue
            try:
                verdict: bool | int = False
                if red is not None:
                    # The same few names every hit: one cached lookup, then the full check.
                    cached = _NAME_CACHE.get(name)
                    if cached is not None and cached[0] is red and cached[1] == ver:
                        verdict = cached[2]
                    else:
                        verdict = _secret_capture_name(walker, name)
                if not verdict:
                    captures[name] = walker.enc(value, 0)
                elif verdict is True:
                    captures[name] = walker._redact_name(value)
                else:
                    captures[name] = walker.enc(value, 0)
                    if paired is None:
                        paired = {}
                    paired[name] = value
            except Exception as exc:
                try:
                    captures[name] = _failed(value, exc, budget)
                except Exception:
                    captures[name] = {"@t": "?", "@error": "RecursionError"}
        if paired is not None and len(paired) > 1:
            walker._hide_params(paired, captures)
        if kept < n:
            budget.truncated = True
            budget.note(f"fields: kept {kept} of {n} names (max_fields={limit})")
    except Exception as exc:  # a broken mapping, or the redactor failed to load
        budget.truncated = True
        budget.note(f"error: capture failed: {_describe(exc)}")
    return captures, budget.truncated, budget.errors


def exception_info(
    exc: BaseException,
    limits: CaptureLimits | None = None,
    redactor: RedactorLike | _ProcessRedactor | None = DEFAULT_REDACTOR,
) -> dict[str, JSONValue]:
    """``{"type": "module.QualName", "message": <encoded str>}`` for a hit's ``exception``.

    The message is ``args[0]`` when it is a str (what ``str(exc)`` shows for one argument),
    read without calling the exception's ``__str__``, with every secret in it replaced in place
    (``card <redacted:card> declined``, ``password=<redacted:field>``); otherwise the encoded
    ``args``, whose strings are redacted like any captured value. This is the one path for the
    exception text of a hit.
    """
    lim = limits if limits is not None else _DEFAULT_LIMITS
    try:
        name = layout_of(type(exc)).name
        args = _exc_args(exc)
    except Exception:
        return {"type": _name_or_unknown(type(exc)), "message": None}
    if type(args) is tuple and len(args) == 1 and type(args[0]) is str:
        message: object = args[0]
        red = _resolve(redactor)
        if red is not None:
            # A message is prose around the secret: keep the prose (the encoder would hide the
            # whole message for a card in it). Scanned beyond the cut, like any long string.
            limit = lim.max_string if lim.max_string <= _MAX_STRING else _MAX_STRING
            text = args[0]
            shown = _redact_text(red, text[: limit + _SECRET_WINDOW])
            if shown is None:
                return {"type": name, "message": _redacted_message(text)}
            if len(text) > limit + _SECRET_WINDOW:
                shown += "<redacted:unscanned>"
            message = shown
    elif type(args) is tuple and not args:
        message = ""
    else:
        message = args
    return {"type": name, "message": encode(message, lim, redactor=redactor)}


def _redacted_message(text: str) -> JSONValue:
    return {"@t": "str", "@redacted": "unscanned", "@len": _length_class_of(len(text))}


def _length_class_of(n: int) -> str:
    from sensor.redaction import length_class

    return length_class(n)


def _redact_text(red: RedactorLike, text: str) -> str | None:
    """``red.redact_text(text)`` when the redactor has it and its output is clean, else None
    (the caller then hides the whole value)."""
    redact = getattr(red, "redact_text", None)
    if redact is None:
        return None
    try:
        shown = redact(text)
        if type(shown) is not str or red.match_secret_value(shown) is not None:
            return None
        return shown
    except Exception:
        return None


# -- values the frame hides by name, found again in the hit's other texts -----------------------

#: A secret-named local shorter than this is not looked for elsewhere (too many false hits).
_KNOWN_MIN_CHARS = 4
#: At most this many values (the longest) are looked for, each up to this many characters.
_KNOWN_MAX_VALUES = 16
_KNOWN_MAX_CHARS = 4096
_KNOWN_MARK = "<redacted:name>"


def known_secrets(
    names_to_values: Mapping[str, object],
    redactor: RedactorLike | _ProcessRedactor | None = DEFAULT_REDACTOR,
    within: object = None,
) -> re.Pattern[str] | None:
    """A pattern of the text values that ``names_to_values`` holds under secret names, or None.

    The host quotes the values it fails on, whatever their name: ``int(password)`` raises
    ``invalid literal for int() with base 10: 'hunter2'``, ``d[token]`` a ``KeyError`` of the
    token, and an application builds ``ConnectionError("refused", password)``. Nothing in such a
    text looks like a secret by content; the hit knows the value only as the frame's
    ``password``. The pattern finds those values (str, and bytes read as Latin-1, with their
    ``repr`` escapes), in any case (``password.upper()``), directly under a secret name or under
    a secret key of a dict held by any name. Never raises (None when there is nothing to find).

    ``within`` (encoded JSON values, the texts a hit carries): None as well when no value
    occurs in them, found with C searches on their JSON text (:func:`_may_mention`), so a hit
    that holds no copy pays neither the regex's compilation nor :func:`scrub_known`'s walk.
    """
    try:
        red = _resolve(redactor)
        if red is None:
            return None
        found: set[str] = set()

        def add(value: object) -> None:
            # Exact types only: a str or bytes subclass's methods are user code.
            forms: tuple[str, ...]
            if (type(value) is bytes or type(value) is str) and len(value) > _KNOWN_MAX_CHARS:
                return  # neither form could be looked for: not copied to find out
            if type(value) is bytes:
                forms = (bytes.decode(value, "latin-1"), bytes.__repr__(value)[2:-1])
            elif type(value) is str:
                forms = (value, str.__repr__(value)[1:-1])
            else:
                return
            if "'" in forms[0]:  # inside a repr that holds both quotes: `'it\'s'`
                forms += (forms[1].replace("'", "\\'"),)
            for form in forms:
                if _KNOWN_MIN_CHARS <= len(form) <= _KNOWN_MAX_CHARS:
                    found.add(form)

        for name, value in islice(names_to_values.items(), _MAX_FIELDS):
            if type(name) is not str:
                continue
            if red.is_secret_name(name):
                add(value)
            elif type(value) is dict:
                for key, item in islice(dict.items(value), _MAX_FIELDS):
                    if type(key) is bytes:
                        key = bytes.decode(key, "latin-1")
                    if type(key) is str and red.is_secret_name(key):
                        add(item)
        if not found:
            return None
        longest = sorted(found, key=len, reverse=True)[:_KNOWN_MAX_VALUES]
        if within is not None and not _may_mention(within, longest):
            return None
        return re.compile("|".join(re.escape(v) for v in longest), re.IGNORECASE)
    except Exception:
        return None


# The characters a case-insensitive regex takes for an ASCII letter besides its two cases (as
# sensor.redaction.fold_case, repeated here so the encoder loads without that module).
_FOLD_EXTRA = {0x130: "i", 0x131: "i", 0x17F: "s", 0x212A: "k"}


def _may_mention(within: object, values: list[str]) -> bool:
    """False only when no value of ``values`` occurs, in any case, in a string or key of
    ``within`` (encoded JSON values); True when one may, or when that cannot be told cheaply
    (a value that is not ASCII, whose case folding Python's ``lower`` may not share with the
    regex engine). A walk with C searches that builds nothing. Never raises."""
    try:
        for v in values:
            if not v.isascii():
                return True
        lowered = [v.lower() for v in values]
        return _mentions(within, lowered, min(len(v) for v in values), 0)
    except Exception:
        return True


def _mentions(value: Any, lowered: list[str], shortest: int, depth: int) -> bool:
    t = type(value)
    if t is str:
        if len(value) < shortest:
            return False
        low = value.lower() if value.isascii() else value.translate(_FOLD_EXTRA).lower()
        for v in lowered:  # noqa: SIM110 - a loop: any() of a generator costs more
            if v in low:
                return True
        return False
    if depth > 2 * MAX_DEPTH_CAP + 8:
        return True
    if t is dict:
        for k, x in value.items():
            if _mentions(k, lowered, shortest, depth + 1) or _mentions(
                x, lowered, shortest, depth + 1
            ):
                return True
        return False
    if t is list or t is tuple:
        for x in value:  # noqa: SIM110 - a loop: any() of a generator costs more
            if _mentions(x, lowered, shortest, depth + 1):
                return True
        return False
    return False


def scrub_known(value: Any, known: re.Pattern[str], depth: int = 0) -> Any:
    """``value`` (encoded JSON, or a text) with every match of ``known`` in its strings and keys
    replaced by ``<redacted:name>``. Never raises: a part it cannot walk is replaced whole."""
    try:
        t = type(value)
        if t is str:
            return known.sub(_KNOWN_MARK, value) if known.search(value) else value
        if depth > 2 * MAX_DEPTH_CAP + 8:
            return _KNOWN_MARK
        if t is dict:
            return {
                scrub_known(k, known, depth + 1): scrub_known(v, known, depth + 1)
                for k, v in value.items()
            }
        if t is list:
            return [scrub_known(x, known, depth + 1) for x in value]
        return value
    except Exception:
        return _KNOWN_MARK
