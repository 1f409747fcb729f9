"""The methods of builtin values an expression may call (a few of ``str``, ``bytes``, ``dict``,
``list`` and ``tuple``), with their results redacted by the rules of
:mod:`sensor.expressions.redact`: a string built by a method goes through the content rule,
a dict hides the values of its secret keys."""

from __future__ import annotations

import collections
from typing import Any

from sensor.errors import ExpressionError
from sensor.expressions.budget import _S_RED, _charge
from sensor.expressions.introspect import (
    _MISSING,
    _SCALAR_IDS,
    _T_NAME,
    _refuse_value,
    typename,
)
from sensor.expressions.redact import guard, guard_built, redact_name, secret_key
from sensor.expressions.values import _check_cmp, _check_keys, _check_size, _materialize

_NoneType = type(None)

_STR_METHODS = frozenset(
    (  # noqa: SIM905 - a word list reads better than a literal of 38 strings
        "lower upper casefold strip lstrip rstrip startswith endswith count find rfind index "
        "rindex isdigit isalpha isalnum isspace isupper islower isnumeric isdecimal istitle "
        "split rsplit replace join title capitalize removeprefix removesuffix partition "
        "rpartition splitlines zfill center ljust rjust"
    ).split()
)
_GROWING_STR_METHODS = frozenset(("zfill", "center", "ljust", "rjust"))
_DICT_METHODS = frozenset(("get", "keys", "values", "items"))
_SEQ_METHODS = frozenset(("count", "index"))


def _call_method(obj: Any, name: str, args: list[Any], s: list[Any]) -> Any:
    """``obj.name(*args)`` for the allowed methods; the caller refused a redacted ``obj``."""
    t = type(obj)
    if t is str or t is bytes:
        if name == "format" or name == "format_map":
            raise ExpressionError(
                "str.format is refused: format strings can read attributes and items of their "
                "arguments; use an f-string"
            )
        if name not in _STR_METHODS or (
            t is bytes and name in ("casefold", "isdecimal", "isnumeric")
        ):
            raise _refuse_value(f"method {name!r}", obj, "not one of the allowed string methods")
        for a in args if name != "join" else ():
            ta = type(a)
            if not (
                ta is t
                or ta is int
                or ta is _NoneType
                or (ta is tuple and all(type(x) is t for x in a))
            ):
                raise ExpressionError(
                    f"{_T_NAME(t)}.{name}() argument of type {typename(a)!r} is refused"
                )
        n = len(obj)
        if name == "join":
            if len(args) != 1:
                raise ExpressionError("join() takes one iterable")
            parts = _materialize(args[0], s)
            total = n * max(len(parts) - 1, 0)
            for p in parts:
                if type(p) is not t:
                    raise ExpressionError(f"join() items must be {_T_NAME(t)}, got {typename(p)!r}")
                total += len(p)
            _check_size(t, total)
            return guard_built(obj.join(parts), s)
        if name == "replace" and len(args) >= 2:
            old, new = args[0], args[1]
            if type(old) is not t or type(new) is not t:
                raise ExpressionError("replace() needs strings")
            count = obj.count(old) if old else n + 1
            _check_size(t, n + count * max(len(new) - len(old), 0))
        if name in _GROWING_STR_METHODS and args and type(args[0]) is int:
            _check_size(t, args[0])
        if name in ("lower", "upper", "casefold", "title", "capitalize"):
            _check_size(t, 3 * n)
        _charge(s, n >> 6)
        try:
            result = getattr(obj, name)(*args)
        except ValueError:  # index/rindex: "substring not found", said without the strings
            raise ExpressionError(f"{name}() did not find the substring") from None
        tr = type(result)
        if tr is bool or tr is int:  # startswith, find, count, isdigit, ...
            return result
        return guard_built(result, s)
    if t is dict or t is collections.OrderedDict or t is collections.defaultdict:
        if name not in _DICT_METHODS:
            raise _refuse_value(f"method {name!r}", obj, "dicts allow get, keys, values and items")
        if name == "get":
            if not 1 <= len(args) <= 2:
                raise ExpressionError("get() takes a key and an optional default")
            key = args[0]
            if id(type(key)) not in _SCALAR_IDS:
                _check_cmp(key, s)
            _check_keys(obj, s)
            value = dict.get(obj, key, _MISSING)
            if value is _MISSING:
                return args[1] if len(args) > 1 else None
            if secret_key(key, s[_S_RED]):
                return redact_name(value)
            return guard(value, s)
        if args:
            raise ExpressionError(f"{name}() takes no arguments")
        if name == "keys":
            return dict.keys(obj)
        # values and items go through the redactor: a secret key hides its value, and keys
        # and values that are secrets by content read as markers.
        _charge(s, dict.__len__(obj))
        red = s[_S_RED]
        pairs = [
            (guard(k, s), redact_name(v) if secret_key(k, red) else guard(v, s))
            for k, v in dict.items(obj)
        ]
        if name == "values":
            return [v for _, v in pairs]
        return pairs
    if t is list or t is tuple:
        if name not in _SEQ_METHODS or len(args) != 1:
            raise _refuse_value(
                f"method {name!r}", obj, "lists and tuples allow count(x) and index(x)"
            )
        _check_cmp(obj, s)
        _check_cmp(args[0], s)
        try:
            return getattr(obj, name)(args[0])
        except ValueError:  # list.index: "'x' is not in list" would quote the value
            raise ExpressionError("index() did not find the value") from None
    raise _refuse_value(
        f"method call {name!r}",
        obj,
        "methods are callable on builtin str, bytes, dict, list and tuple values only",
    )
