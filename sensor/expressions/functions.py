"""The builtin functions an expression may call, each implemented here on builtin values only,
and the reasons the others are refused."""

from __future__ import annotations

import decimal
from collections.abc import Callable
from typing import Any, Final

from sensor.errors import ExpressionError
from sensor.expressions.budget import _S_RED, MAX_INT_BITS, MAX_ITEMS, _charge
from sensor.expressions.formatting import safe_format
from sensor.expressions.introspect import (
    _INTLIKE_IDS,
    _MISSING,
    _NUMBER_IDS,
    _SCALAR_IDS,
    _T_MODULE,
    _T_MRO,
    _T_NAME,
    _is_type_type,
    _qualname,
    typename,
)
from sensor.expressions.redact import Redacted, guard_built
from sensor.expressions.values import (
    _DECIMAL_IDS,
    _check_cmp,
    _check_number,
    _iterate,
    _Lazy,
    _len,
    _materialize,
    _truth,
)

_NoneType = type(None)

# -- builtins ---------------------------------------------------------------------------------

_TYPE_NAMES: dict[str, type] = {
    "int": int,
    "float": float,
    "complex": complex,
    "str": str,
    "bytes": bytes,
    "bool": bool,
    "list": list,
    "tuple": tuple,
    "dict": dict,
    "set": set,
    "frozenset": frozenset,
    "NoneType": _NoneType,
}


def _b_len(args: list[Any], s: list[Any]) -> Any:
    v = args[0]
    if type(v) is Redacted:
        size = v.unscanned_length()
        if size is None:
            raise ExpressionError("len() of a redacted value is refused")
        return size  # a text too long to scan: its content is opaque, its length is not secret
    return _len(v)


def _number_arg(fn: str, v: Any) -> None:
    if id(type(v)) not in _NUMBER_IDS and id(type(v)) not in _DECIMAL_IDS:
        raise ExpressionError(f"{fn}() needs a builtin number, got {typename(v)!r}")
    _check_number(v)


def _b_abs(args: list[Any], s: list[Any]) -> Any:
    _number_arg("abs", args[0])
    return abs(args[0])


def _b_round(args: list[Any], s: list[Any], ndigits: object = None) -> Any:
    _number_arg("round", args[0])
    if len(args) > 1:
        ndigits = args[1]
    if ndigits is None:
        if type(args[0]) is decimal.Decimal:
            _check_decimal_to_int("round", args[0])
        return round(args[0])
    if type(ndigits) is not int or abs(ndigits) > 1000:
        raise ExpressionError(
            f"round() ndigits must be an int within ±1000, got a {typename(ndigits)!r}"
            + (" out of range" if type(ndigits) is int else "")
        )
    return round(args[0], ndigits)


def _items(fn: str, args: list[Any], s: list[Any]) -> list[Any]:
    items = _materialize(args[0], s) if len(args) == 1 else list(args)
    for item in items:
        if type(item) is Redacted:
            raise ExpressionError(f"{fn}() of a redacted value is refused: it would order it")
        if id(type(item)) not in _SCALAR_IDS:
            _check_cmp(item, s)
    return items


def _b_min(args: list[Any], s: list[Any], default: object = _MISSING) -> Any:
    items = _items("min", args, s)
    if not items and default is not _MISSING:
        return default
    return min(items)


def _b_max(args: list[Any], s: list[Any], default: object = _MISSING) -> Any:
    items = _items("max", args, s)
    if not items and default is not _MISSING:
        return default
    return max(items)


def _b_sorted(args: list[Any], s: list[Any], reverse: object = False) -> Any:
    items = _items("sorted", args, s)
    _charge(s, len(items))
    return sorted(items, reverse=_truth(reverse))


def _b_sum(args: list[Any], s: list[Any], start: object = 0) -> Any:
    if len(args) > 1:
        start = args[1]
    items = _materialize(args[0], s)
    for v in [*items, start]:
        _number_arg("sum", v)
    return sum(items, start)  # type: ignore[call-overload]


def _b_any(args: list[Any], s: list[Any]) -> Any:
    return any(_truth(v) for v in _iterate(args[0], s))


def _b_all(args: list[Any], s: list[Any]) -> Any:
    return all(_truth(v) for v in _iterate(args[0], s))


def _b_str(args: list[Any], s: list[Any]) -> Any:
    if not args:
        return ""
    return guard_built(safe_format(args[0], red=s[_S_RED]), s)


def _b_repr(args: list[Any], s: list[Any]) -> Any:
    return guard_built(safe_format(args[0], conversion=ord("r"), red=s[_S_RED]), s)


def _b_int(args: list[Any], s: list[Any]) -> Any:
    if not args:
        return 0
    v = args[0]
    t = type(v)
    if len(args) > 1:
        if t is not str or type(args[1]) is not int:
            raise ExpressionError("int(x, base) needs a str and an int base")
        if len(v) > 4300:
            raise ExpressionError("int() of a string above 4300 characters is refused")
        return _convert(int, v, args[1])
    if t is decimal.Decimal:
        _check_decimal_to_int("int", v)
    if t is int or t is bool or t is float or t is decimal.Decimal:
        return _convert(int, v)
    if t is str or t is bytes:
        if len(v) > 4300:
            raise ExpressionError("int() of a string above 4300 characters is refused")
        return _convert(int, v)
    if t is Redacted:
        raise ExpressionError("int() of a redacted value is refused: it would read it")
    raise ExpressionError(
        f"int() of a value of type {typename(v)!r} is refused: builtin values only"
    )


# The most decimal digits an int within MAX_INT_BITS has (65536 * log10(2) = 19728.3).
_MAX_INT_DIGITS: Final = MAX_INT_BITS * 30103 // 100000 + 1


def _check_decimal_to_int(fn: str, v: decimal.Decimal) -> None:
    """Refuse int()/round() of a Decimal whose integer part is above MAX_INT_BITS.

    A Decimal is exact: its exponent is not bounded by the context (``Decimal("1e999999999")``
    is 16 bytes), and converting it to an int costs time in that exponent (1e999999 took 29 s
    of the host's thread, beyond any step or time check). ``adjusted()`` is the exponent of its
    leading digit, read in C (the type is exactly Decimal here).
    """
    if decimal.Decimal.is_finite(v) and decimal.Decimal.adjusted(v) >= _MAX_INT_DIGITS:
        raise ExpressionError(
            f"{fn}() of a Decimal above {MAX_INT_BITS} bits is refused (its exponent is too large)"
        )


def _convert(fn: Callable[..., Any], *args: Any) -> Any:
    # Python's own messages quote the text ("invalid literal for int() with base 10: '4111'"):
    # say what failed, never what the value was.
    try:
        return fn(*args)
    except (ValueError, OverflowError, ArithmeticError) as exc:
        name = fn.__name__
        what = "a value that is not a number" if type(exc) is ValueError else "an unfit value"
        raise ExpressionError(
            f"{name}() got {what} (a {typename(args[0])!r}; the value is not shown)"
        ) from None


def _b_float(args: list[Any], s: list[Any]) -> Any:
    if not args:
        return 0.0
    v = args[0]
    t = type(v)
    if id(t) in _INTLIKE_IDS or t is float or t is decimal.Decimal:
        _check_number(v)
        return _convert(float, v)
    if t is str or t is bytes:
        if len(v) > 1000:
            raise ExpressionError("float() of a string above 1000 characters is refused")
        return _convert(float, v)
    if t is Redacted:
        raise ExpressionError("float() of a redacted value is refused: it would read it")
    raise ExpressionError(
        f"float() of a value of type {typename(v)!r} is refused: builtin values only"
    )


def _b_bool(args: list[Any], s: list[Any]) -> Any:
    return _truth(args[0]) if args else False


def _b_list(args: list[Any], s: list[Any]) -> Any:
    return _materialize(args[0], s) if args else []


def _b_tuple(args: list[Any], s: list[Any]) -> Any:
    return tuple(_materialize(args[0], s)) if args else ()


def _b_set(args: list[Any], s: list[Any]) -> Any:
    items = _materialize(args[0], s) if args else []
    for item in items:
        if id(type(item)) not in _SCALAR_IDS:
            _check_cmp(item, s)
    return set(items)


def _b_range(args: list[Any], s: list[Any]) -> Any:
    for a in args:
        if type(a) is not int and type(a) is not bool:
            raise ExpressionError(f"range() needs ints, got {typename(a)!r}")
    r = range(*args)
    n = r.__len__() if abs(r.stop - r.start) < 2**62 else MAX_ITEMS + 1
    if n > MAX_ITEMS:
        raise ExpressionError(f"range() of more than {MAX_ITEMS} items is refused")
    return r


def _b_enumerate(args: list[Any], s: list[Any], start: object = 0) -> Any:
    if len(args) > 1:
        start = args[1]
    if type(start) is not int:
        raise ExpressionError("enumerate() start must be an int")
    src = args[0]
    return _Lazy(((i, v) for i, v in enumerate(_iterate(src, s), start)))


def _b_zip(args: list[Any], s: list[Any]) -> Any:
    its = [_iterate(a, s) for a in args]
    return _Lazy(zip(*its, strict=False))


def _b_reversed(args: list[Any], s: list[Any]) -> Any:
    return _Lazy(iter(_materialize(args[0], s)[::-1]))


def _b_typename(args: list[Any], s: list[Any]) -> Any:
    v = args[0]
    if type(v) is Redacted:
        return v.type_name.rpartition(".")[2]
    return typename(v)


def _isinstance(v: Any, spec: Any) -> bool:
    t = type(v)
    if type(v) is Redacted:
        raise ExpressionError("isinstance() of a redacted value is refused")
    specs = spec if type(spec) is tuple else (spec,)
    mro = _T_MRO(t)
    for cls in specs:
        ct = type(cls)
        if not _is_type_type(ct):
            raise ExpressionError(f"isinstance() needs a class, got {typename(cls)!r}")
        for c in _T_MRO(ct):
            if _T_NAME(c) == "ABCMeta" and _T_MODULE(c) == "abc":
                raise ExpressionError(
                    f"isinstance() with abstract class {_qualname(cls)!r} is refused: "
                    "it would run __subclasshook__"
                )
        for c in mro:
            if c is cls:
                return True
    return False


def _b_isinstance(args: list[Any], s: list[Any]) -> Any:
    return _isinstance(args[0], args[1])


_FUNC_SIGNATURES: dict[str, tuple[int, int, frozenset[str]]] = {
    # name: (min positional, max positional, keywords)
    "len": (1, 1, frozenset()),
    "abs": (1, 1, frozenset()),
    "round": (1, 2, frozenset(("ndigits",))),
    "min": (1, 64, frozenset(("default",))),
    "max": (1, 64, frozenset(("default",))),
    "sum": (1, 2, frozenset(("start",))),
    "sorted": (1, 1, frozenset(("reverse",))),
    "any": (1, 1, frozenset()),
    "all": (1, 1, frozenset()),
    "str": (0, 1, frozenset()),
    "repr": (1, 1, frozenset()),
    "int": (0, 2, frozenset()),
    "float": (0, 1, frozenset()),
    "bool": (0, 1, frozenset()),
    "list": (0, 1, frozenset()),
    "tuple": (0, 1, frozenset()),
    "set": (0, 1, frozenset()),
    "range": (1, 3, frozenset()),
    "enumerate": (1, 2, frozenset(("start",))),
    "zip": (1, 8, frozenset()),
    "reversed": (1, 1, frozenset()),
    "isinstance": (2, 2, frozenset()),
    "typename": (1, 1, frozenset()),
    "hasattr": (2, 2, frozenset()),
}
_FUNCS: dict[str, Callable[..., object]] = {
    "len": _b_len,
    "abs": _b_abs,
    "round": _b_round,
    "min": _b_min,
    "max": _b_max,
    "sum": _b_sum,
    "sorted": _b_sorted,
    "any": _b_any,
    "all": _b_all,
    "str": _b_str,
    "repr": _b_repr,
    "int": _b_int,
    "float": _b_float,
    "bool": _b_bool,
    "list": _b_list,
    "tuple": _b_tuple,
    "set": _b_set,
    "range": _b_range,
    "enumerate": _b_enumerate,
    "zip": _b_zip,
    "reversed": _b_reversed,
    "isinstance": _b_isinstance,
    "typename": _b_typename,
}
#: The functions an expression may call.
ALLOWED_FUNCTIONS: Final = frozenset(_FUNC_SIGNATURES)

_REFUSED_CALL_REASONS: dict[str, str] = {
    "getattr": "attribute names must be written literally (obj.name), so that they can be checked",
    "setattr": "expressions are read-only",
    "delattr": "expressions are read-only",
    "eval": "expressions cannot run code",
    "exec": "expressions cannot run code",
    "compile": "expressions cannot run code",
    "__import__": "expressions cannot import",
    "open": "expressions cannot touch files",
    "vars": "it exposes the instance __dict__ wholesale; read attributes by name",
    "dir": "it may run __dir__",
    "type": "it returns a class whose methods could be reached; use typename(x)",
    "format": "format() runs __format__ of user objects; use an f-string",
    "hash": "hash() runs __hash__ of user objects",
    "iter": "iteration is only done by comprehensions and the allowed builtins",
    "next": "iteration is only done by comprehensions and the allowed builtins",
    "globals": "expressions cannot reach namespaces",
    "locals": "expressions cannot reach namespaces",
    "breakpoint": "expressions cannot run code",
    "input": "expressions cannot do I/O",
    "print": "expressions cannot do I/O",
    "super": "expressions cannot reach classes",
    "object": "expressions cannot create objects",
    "memoryview": "expressions cannot create objects",
    "bytearray": "expressions cannot create mutable objects",
}
