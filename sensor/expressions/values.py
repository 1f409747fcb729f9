"""Safe operations on values: checks, truth, length, iteration, items, ``in``, arithmetic and
comparison, each answered by C code of builtin types or refused, never by user code.

Every value these functions take out of a container goes through the redaction rules of
:mod:`sensor.expressions.redact` (R1, R2) before the expression sees it, and every comparison
checks its containers element by element (R3).
"""

from __future__ import annotations

import ast
import collections
import datetime as _dt
import decimal
import operator
from collections.abc import Callable, Iterator
from typing import Any

from sensor.errors import ExpressionError
from sensor.expressions.budget import (
    _S_NEXT,
    _S_RED,
    _S_STEPS,
    MAX_INT_BITS,
    MAX_ITEMS,
    MAX_STR,
    MAX_VALUE_DEPTH,
    _budget_slow,
    _charge,
)
from sensor.expressions.introspect import (
    _CONTAINS_DUNDERS,
    _DATETIME_TZINFO,
    _GETITEM_DUNDERS,
    _INTLIKE_IDS,
    _ITER_DUNDERS,
    _LEN_DUNDERS,
    _MISSING,
    _NUMBER_IDS,
    _SAFE_TZ_IDS,
    _SCALAR_IDS,
    _T_NAME,
    _TIME_TZINFO,
    _TRUTH_DUNDERS,
    K_BAD,
    K_IDENT,
    K_MAP,
    K_SCALAR,
    K_SEQ,
    K_SET,
    K_TZ,
    _ids,
    _kind,
    _qualname,
    _refuse_value,
    typename,
)
from sensor.expressions.redact import (
    Redacted,
    check_container,
    check_element,
    check_map_key,
    guard,
    hidden_positions,
    redact_name,
    secret_key,
)


class _Lazy:
    """A generator expression or enumerate/zip/reversed result: iterated only by our code."""

    __slots__ = ("gen",)

    def __init__(self, gen: Iterator[object]) -> None:
        self.gen = gen


# -- value checks -----------------------------------------------------------------------------


def _check_cmp(v: Any, s: list[Any], depth: int = 0) -> None:
    """Raise unless comparing/hashing ``v`` (element-wise) runs C code only."""
    t = type(v)
    if id(t) in _SCALAR_IDS:
        return
    kind, base = _kind(t)
    if kind in (K_SCALAR, K_IDENT):
        return
    if depth >= MAX_VALUE_DEPTH:
        raise ExpressionError(f"value nested deeper than {MAX_VALUE_DEPTH} levels is refused")
    if kind == K_TZ:
        tz = _DATETIME_TZINFO(v) if base is _dt.datetime else _TIME_TZINFO(v)
        if id(type(tz)) not in _SAFE_TZ_IDS:
            raise _refuse_value("comparison", v, "its tzinfo is Python code")
        return
    if kind in (K_SEQ, K_SET):
        check_container(v, t, base, s)  # R3: a namedtuple's secret field, a secret pair
        items = base.__iter__(v)
        n = base.__len__(v)
        _charge(s, n)
        for item in items:
            ti = type(item)
            if ti is str or ti is bytes:
                check_element(item, s)  # R3: a secret by content inside the container
            elif id(ti) not in _SCALAR_IDS:
                _check_cmp(item, s, depth + 1)
        return
    if kind == K_MAP:
        _charge(s, dict.__len__(v))
        for key, item in dict.items(v):
            tk = type(key)
            if tk is str or tk is bytes:
                check_map_key(key, s)  # R3: a value under a secret key would be compared
            elif id(tk) not in _SCALAR_IDS:
                _check_cmp(key, s, depth + 1)
            ti = type(item)
            if ti is str or ti is bytes:
                check_element(item, s)
            elif id(ti) not in _SCALAR_IDS:
                _check_cmp(item, s, depth + 1)
        return
    raise _refuse_value(
        "comparison or hashing", v, f"{_qualname(base)} defines comparison or hashing in Python"
    )


def _check_keys(d: Any, s: list[Any]) -> None:
    """Raise unless a lookup in dict ``d`` can only compare keys in C (all keys inert)."""
    _charge(s, 1 + (dict.__len__(d) >> 2))
    for key in dict.keys(d):
        if id(type(key)) not in _SCALAR_IDS:
            _check_cmp(key, s, 1)


def _truth(v: Any) -> bool:
    t = type(v)
    if t is bool:
        return bool(v)
    if id(t) in _SCALAR_IDS:
        return bool(v)
    kind, base = _kind(t, _TRUTH_DUNDERS)
    if base is object:
        return True  # neither __bool__ nor __len__: Python says truthy
    if kind != K_BAD:
        return bool(v)  # the slot is the builtin base's C function
    raise _refuse_value("truth test", v, f"{_qualname(base)} defines __bool__ or __len__")


def _len(v: Any) -> int:
    t = type(v)
    if t is str or t is list or t is dict or t is tuple or t is bytes:
        return len(v)
    for vt in _VIEW_TYPES_LIST:
        if t is vt:
            return len(v)
    kind, base = _kind(t, _LEN_DUNDERS)
    if kind in (K_SEQ, K_MAP, K_SET) or base is str or base is bytes or base is range:
        return int(base.__len__(v))
    raise _refuse_value("len()", v, "only builtin strings and containers have a length here")


_VIEW_TYPES_LIST: tuple[type, ...] = (
    type({}.keys()),
    type({}.values()),
    type({}.items()),
    range,
    set,
    frozenset,
    collections.deque,
)


def _is_view(t: type) -> bool:
    return any(t is vt for vt in _VIEW_TYPES_LIST)


def _iterate(v: Any, s: list[Any]) -> Iterator[object]:
    """Iterate a builtin container (or one of our lazy sequences), charging one step per item.

    Each item is what the expression may see of it: a secret by content reads as a marker
    (R2), and the value of a namedtuple's secret field or of a secret pair as well (R1).
    """
    t = type(v)
    hidden: frozenset[int] = frozenset()
    plain = False  # items need no guard (characters, our own lazy items, byte values)
    if t is _Lazy:
        it: Iterator[object] = v.gen
        plain = True
    elif t is str or t is bytes:
        it = iter(v)
        plain = True
    elif t is list or t is tuple:
        it = iter(v)
        if len(v) == 2:
            hidden = hidden_positions(v, t, s[_S_RED])
    elif _is_view(t):
        it = iter(v)
    else:
        kind, base = _kind(t, _ITER_DUNDERS)
        if kind == K_MAP:
            it = iter(dict.keys(v))
        elif kind in (K_SEQ, K_SET) or base is str or base is bytes:
            it = base.__iter__(v)
            plain = base is str or base is bytes
            if base is tuple:
                hidden = hidden_positions(v, t, s[_S_RED])
        elif t is Redacted:
            raise ExpressionError("iterating a redacted value is refused: it would read it")
        else:
            raise _refuse_value("iteration", v, "only builtin strings and containers are iterated")
    i = -1
    for item in it:
        i += 1
        left = s[_S_STEPS] - 1
        s[_S_STEPS] = left
        if left < s[_S_NEXT]:
            _budget_slow(s)
        if plain:
            yield item
        elif hidden and i in hidden:
            yield redact_name(item)
        else:
            ti = type(item)
            yield item if ti is int or ti is float or item is None else guard(item, s)


def _materialize(v: Any, s: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in _iterate(v, s):
        out.append(item)
        if len(out) > MAX_ITEMS:
            raise ExpressionError(f"a sequence of more than {MAX_ITEMS} items is refused")
    return out


# -- subscripts and `in` ----------------------------------------------------------------------


def _getitem(obj: Any, key: Any, s: list[Any]) -> Any:
    """``obj[key]`` for builtin strings, sequences and dicts, redacted by the rules R1 and R2."""
    t = type(obj)
    tk = type(key)
    if t is dict:
        base: Any = dict
        kind = K_MAP
    elif t is list or t is tuple or t is str or t is bytes:
        base, kind = t, K_SEQ
    else:
        kind, base = _kind(t, _GETITEM_DUNDERS)
    if kind == K_MAP:
        if id(tk) not in _SCALAR_IDS:
            _check_cmp(key, s)
        _check_keys(obj, s)
        # dict.get on the base: never __missing__ (defaultdict would insert) nor a subclass's
        # __getitem__.
        value = dict.get(obj, key, _MISSING)
        if value is _MISSING:
            raise ExpressionError(f"key of type {typename(key)!r} is not in the dict")
        if (tk is str or tk is bytes) and secret_key(key, s[_S_RED]):
            return redact_name(value)
        return guard(value, s)
    if kind == K_SEQ or base is str or base is bytes or base is range:
        if base is tuple or base is list:
            hidden = hidden_positions(obj, t, s[_S_RED])
            if hidden:
                # A namedtuple or a (secret name, value) pair read by position still hides
                # its secret value.
                obj = tuple(
                    redact_name(x) if i in hidden else x for i, x in enumerate(base.__iter__(obj))
                )
                base = tuple
        if tk is int or tk is bool:
            item = base.__getitem__(obj, key)
            return item if base is str or base is bytes or base is range else guard(item, s)
        if tk is slice:
            n = len(range(base.__len__(obj))[key])
            if n > MAX_ITEMS:
                raise ExpressionError(f"a slice of {n} items is refused (limit {MAX_ITEMS})")
            _charge(s, n >> 4)
            if base is collections.deque:
                raise _refuse_value("slicing", obj, "deques cannot be sliced")
            part = base.__getitem__(obj, key)
            return guard(part, s) if base is str or base is bytes else part
        raise ExpressionError(
            f"index of type {typename(key)!r} is refused: expected an int or a slice"
        )
    raise _refuse_value(
        "subscript", obj, "only builtin strings, sequences and dicts can be indexed"
    )


def _contains(item: Any, container: Any, s: list[Any]) -> bool:
    t = type(container)
    ti = type(item)
    if t is Redacted:
        raise ExpressionError("'in' on a redacted value is refused: it would test its content")
    if t is str:
        if ti is not str:
            raise ExpressionError(f"'in <str>' needs a str on the left, got {typename(item)!r}")
        return item in container
    if t is bytes:
        if ti is not bytes and ti is not int:
            raise ExpressionError(f"'in <bytes>' needs bytes or an int, got {typename(item)!r}")
        return item in container
    if t is range:
        if ti is not int and ti is not bool:
            raise ExpressionError(f"'in <range>' needs an int, got {typename(item)!r}")
        return item in container
    if t is _Lazy:
        _check_cmp(item, s)
        for el in _iterate(container, s):
            _check_cmp(el, s)
            if el is item or el == item:
                return True
        return False
    if id(ti) not in _SCALAR_IDS:
        _check_cmp(item, s)
    for vt in _VIEW_TYPES_LIST[:3]:
        if t is vt:
            for el in _iterate(container, s):
                _check_cmp(el, s)
                if el is item or el == item:
                    return True
            return False
    kind, base = _kind(t, _CONTAINS_DUNDERS)
    if kind == K_MAP:
        _check_keys(container, s)
        return dict.__contains__(container, item)
    if kind in (K_SEQ, K_SET):
        _check_cmp(container, s)
        return bool(base.__contains__(container, item))
    raise _refuse_value("'in'", container, "only builtin strings and containers support 'in' here")


# -- arithmetic -------------------------------------------------------------------------------

_DECIMAL_IDS = _ids(decimal.Decimal)
_Decimal = decimal.Decimal
_SEQ_ARITH_IDS = _ids(str, bytes, list, tuple)
_TEMPORAL_IDS = _ids(_dt.date, _dt.datetime, _dt.timedelta)


def _int_bits(v: Any) -> int:
    t = type(v)
    return v.bit_length() if t is int else 1


def _check_number(v: Any) -> None:
    if type(v) is int and v.bit_length() > MAX_INT_BITS:
        raise ExpressionError(f"an int of {v.bit_length()} bits is refused (limit {MAX_INT_BITS})")


def _arith(op: str, a: Any, b: Any, s: list[Any]) -> Any:
    """``a <op> b`` for builtin numbers, strings and sequences, bounded in size (R4: never on a
    redacted value). A string result still goes through the content rule at the call site."""
    ta, tb = type(a), type(b)
    if ta is Redacted or tb is Redacted:
        raise ExpressionError(f"'{op}' with a redacted value is refused")
    ia, ib = id(ta), id(tb)
    num_a = ia in _NUMBER_IDS or ia in _DECIMAL_IDS
    num_b = ib in _NUMBER_IDS or ib in _DECIMAL_IDS
    if num_a and num_b:
        _check_number(a)
        _check_number(b)
        if (ia in _DECIMAL_IDS) != (ib in _DECIMAL_IDS) and not (
            ia in _INTLIKE_IDS or ib in _INTLIKE_IDS
        ):
            raise ExpressionError(
                f"'{op}' between {typename(a)!r} and {typename(b)!r} is refused: "
                "mix Decimal with int only"
            )
        if op == "**":
            if ia in _INTLIKE_IDS and ib in _INTLIKE_IDS and b > 0:
                bits = _int_bits(a) * b
                if bits > MAX_INT_BITS:
                    raise ExpressionError(
                        f"'**' would build an int of about {bits} bits (limit {MAX_INT_BITS})"
                    )
            if (ia in _DECIMAL_IDS or ib in _DECIMAL_IDS) and abs(b) > 10_000:
                raise ExpressionError("'**' with a Decimal exponent above 10000 is refused")
            return _OPS[op](a, b)
        if op == "<<":
            if ia not in _INTLIKE_IDS or ib not in _INTLIKE_IDS:
                raise ExpressionError("'<<' needs ints")
            if b > 0 and _int_bits(a) + b > MAX_INT_BITS:
                raise ExpressionError(f"'<<' would build an int above {MAX_INT_BITS} bits")
            return a << b
        if (
            op == "*"
            and ia in _INTLIKE_IDS
            and ib in _INTLIKE_IDS
            and _int_bits(a) + _int_bits(b) > MAX_INT_BITS
        ):
            raise ExpressionError(f"'*' would build an int above {MAX_INT_BITS} bits")
        return _OPS[op](a, b)
    if op == "%" and (ta is str or ta is bytes):
        raise ExpressionError(
            "printf-style '%' formatting is refused: it formats user objects; use an f-string"
        )
    if ia in _SEQ_ARITH_IDS or ib in _SEQ_ARITH_IDS:
        if op == "+" and ta is tb:
            n = len(a) + len(b)
            _check_size(ta, n)
            return a + b
        if op == "*":
            seq, count = (a, b) if ia in _SEQ_ARITH_IDS else (b, a)
            if type(count) is int or type(count) is bool:
                n = len(seq) * max(count, 0)
                _check_size(type(seq), n)
                return seq * count
        raise ExpressionError(f"'{op}' between {typename(a)!r} and {typename(b)!r} is refused")
    if ia in _TEMPORAL_IDS and ib in _TEMPORAL_IDS and op in ("+", "-"):
        for v in (a, b):
            if type(v) is _dt.datetime and id(type(_DATETIME_TZINFO(v))) not in _SAFE_TZ_IDS:
                raise _refuse_value(f"'{op}'", v, "its tzinfo is Python code")
        return _OPS[op](a, b)
    if ia in _TEMPORAL_IDS and ta is _dt.timedelta and op in ("*", "/", "//") and num_b:
        return _OPS[op](a, b)
    if (
        (ta is set or ta is frozenset)
        and (tb is set or tb is frozenset)
        and op in ("|", "&", "-", "^")
    ):
        # Set algebra compares elements of equal hashes: the same checks as `==` (inert
        # elements, R3: no secret element matched against a guess).
        _check_cmp(a, s)
        _check_cmp(b, s)
        return _OPS[op](a, b)
    raise ExpressionError(
        f"'{op}' between {typename(a)!r} and {typename(b)!r} is refused: "
        "arithmetic applies to builtin numbers and sequences only"
    )


def _check_size(t: type, n: int) -> None:
    chars = t is str or t is bytes
    limit = MAX_STR if chars else MAX_ITEMS
    if n > limit:
        raise ExpressionError(
            f"building a {_T_NAME(t)} of {n} {'characters' if chars else 'items'} "
            f"is refused (limit {limit})"
        )


# The operator module's C functions: cheaper to call than lambdas on the hot path.
_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "//": operator.floordiv,
    "%": operator.mod,
    "**": operator.pow,
    "<<": operator.lshift,
    ">>": operator.rshift,
    "|": operator.or_,
    "^": operator.xor,
    "&": operator.and_,
}
_BINOP_SYMBOL: dict[type, str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.BitAnd: "&",
}


def _compare(op: str, a: Any, b: Any, s: list[Any]) -> bool:
    if op == "is":
        return a is b
    if op == "is not":
        return a is not b
    if op == "in":
        return _contains(a, b, s)
    if op == "not in":
        return not _contains(a, b, s)
    ta, tb = type(a), type(b)
    if (ta is int or ta is float or ta is _Decimal) and (
        tb is int or tb is float or tb is _Decimal
    ):
        # Exact numbers (the values of most expectations: prices, counts): their comparison is
        # C code, which is what the checks below conclude for them, one call later.
        return bool(_CMP_OPS[op](a, b))
    if ta is Redacted or tb is Redacted:
        if op == "==" or op == "!=":
            return (a is b) == (op == "==")
        raise ExpressionError(f"'{op}' with a redacted value is refused")
    if id(ta) not in _SCALAR_IDS:
        _check_cmp(a, s)
    if id(tb) not in _SCALAR_IDS:
        _check_cmp(b, s)
    return bool(_CMP_OPS[op](a, b))


_CMP_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_CMPOP_SYMBOL: dict[type, str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
}
