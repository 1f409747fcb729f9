"""The compiler: an expression's syntax tree, checked against a whitelist, turned into a tree of
Python closures once; :class:`Expression` runs them within budgets.

Values enter an evaluation here (names, attributes, constants) and are built here
(concatenation, f-strings): each goes through the redaction rules of
:mod:`sensor.expressions.redact` on its way in.
"""

from __future__ import annotations

import ast
import datetime as _dt
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sensor import redaction as _redaction
from sensor.errors import ExpressionError
from sensor.expressions.attributes import _getattr, _site_entry
from sensor.expressions.budget import (
    _S_RED,
    _S_SLOTS,
    _S_TABLE,
    _S_VARS,
    DEFAULT_MAX_SECONDS,
    DEFAULT_MAX_STEPS,
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_NODES,
    MAX_SOURCE,
    MAX_STR,
    NO_VALUE,
    Fn,
    _budget_slow,
    _charge,
    new_state,
)
from sensor.expressions.decimal_context import SEEN as _DEC_SEEN
from sensor.expressions.decimal_context import current as _dec_current
from sensor.expressions.decimal_context import remember as _dec_remember
from sensor.expressions.decimal_context import restore as _dec_restore
from sensor.expressions.decimal_context import restore_new as _dec_restore_new
from sensor.expressions.formatting import _SPEC_RE, safe_format
from sensor.expressions.functions import (
    _FUNC_SIGNATURES,
    _FUNCS,
    _REFUSED_CALL_REASONS,
    _TYPE_NAMES,
    _b_len,
    _isinstance,
)
from sensor.expressions.introspect import _MISSING, _NUMBER_IDS, _SCALAR_IDS, _NoneType, typename
from sensor.expressions.methods import _DICT_METHODS, _SEQ_METHODS, _STR_METHODS, _call_method
from sensor.expressions.redact import (
    CACHE_CHARS,
    MIN_SECRET_CHARS,
    Redacted,
    failure,
    guard,
    hidden_positions,
    redact_name,
    verdict_table,
)
from sensor.expressions.values import (
    _BINOP_SYMBOL,
    _CMP_OPS,
    _CMPOP_SYMBOL,
    _DECIMAL_IDS,
    _OPS,
    _arith,
    _check_cmp,
    _check_number,
    _compare,
    _getitem,
    _iterate,
    _Lazy,
    _materialize,
    _truth,
)

# Strings shorter than this are never secret by content: a read of one skips the guard; so
# does a string up to _CACHED characters that the verdict table already knows to be clean.
_MIN = MIN_SECRET_CHARS
_CACHED = CACHE_CHARS
# sum() of a list or tuple up to this many exact numbers runs inline (see c_Call).
_SUM_INLINE = 64
# Order comparisons, which a chained comparison of numbers runs natively.
_ORDER_OPS = frozenset({"<", "<=", ">", ">="})
_ORDER_NATIVE = {op: _CMP_OPS[op] for op in _ORDER_OPS}
#: Build the inline forms of the typical expectation shapes (a plain name read in place,
#: ``isinstance``/``len``/``sum``/``abs`` of a plain name, ``in`` a literal of constants, a dict
#: item under a constant key). Each answers exactly as the general closures do, or hands the
#: value to them; tests build the general closures alone (False) to hold the two together.
SPECIALISE = True
# Types a name read (rule R2's guard) returns unchanged: a read of one may skip the load.
_AS_IS = (int, float, bool, list, dict, tuple, set, frozenset, type(None))
# Literal items `x in (...)` takes as constants: C comparison, no redaction rule can apply.
_LITERAL_IDS = frozenset(map(id, (str, int, float, bool, bytes, type(None))))


def _cmp_name_const(op: str, name: str, load: Fn, k: int | float) -> Fn:
    """``name <op> constant`` with the locals lookup and the number fast path inlined."""
    if op == ">":

        def gt(lv: Any, gv: Any, s: list[Any]) -> Any:
            try:
                a = lv[name]
            except KeyError:
                a = load(lv, gv, s)
            ta = type(a)
            if ta is float or ta is int:
                return a > k
            return _compare(">", guard(a, s), k, s)

        return gt
    if op == "<":

        def lt(lv: Any, gv: Any, s: list[Any]) -> Any:
            try:
                a = lv[name]
            except KeyError:
                a = load(lv, gv, s)
            ta = type(a)
            if ta is int or ta is float:
                return a < k
            return _compare("<", guard(a, s), k, s)

        return lt
    native = _CMP_OPS[op]

    def cmp(lv: Any, gv: Any, s: list[Any]) -> Any:
        try:
            a = lv[name]
        except KeyError:
            a = load(lv, gv, s)
        ta = type(a)
        if ta is int or ta is float:
            return native(a, k)
        return _compare(op, guard(a, s), k, s)

    return cmp


def _cmp_len_const(op: str, name: str, length: Fn, k: int | float) -> Fn:
    """``len(name) <op> constant``: the locals lookup and the length of a builtin container
    inline; anything else (a str, a user object, a missing name) through ``len``'s own form."""
    native = _CMP_OPS[op]

    def cmp_len(lv: Any, gv: Any, s: list[Any]) -> Any:
        try:
            v = lv[name]
        except KeyError:
            n = length(lv, gv, s)
        else:
            t = type(v)
            if t is list or t is dict or t is tuple:
                n = len(v)
            elif t is str and (
                len(v) < _MIN or (len(v) <= _CACHED and s[_S_TABLE].get(v, 0) is None)
            ):
                n = len(v)  # too short to be a secret, or known clean (the load's R2)
            else:
                n = length(lv, gv, s)
        if type(n) is int:
            return native(n, k)
        return _compare(op, n, k, s)

    return cmp_len


def _sum_name(name: str, load: Fn, general: Fn) -> Fn:
    """``sum(name)`` of a short list or tuple of exact numbers read in place (``sum(prices)``).

    The steps are charged inline, one per item as ``_iterate`` does; anything else (a long or
    mixed list, a user object, a missing name) goes to the general form.
    """

    def sum_name(lv: Any, gv: Any, s: list[Any]) -> Any:
        try:
            v = lv[name]
        except KeyError:
            return general(lv, gv, s)
        t = type(v)
        if (t is not list and t is not tuple) or len(v) > _SUM_INLINE:
            return general(lv, gv, s)
        for x in v:
            tx = type(x)
            if tx is not int and tx is not float:
                return general(lv, gv, s)
        # _charge(s, len(v)) inline, the steps exactly; the clock is left to the next charge
        # (this sum's time is bounded by construction), so the step limit holds here and the
        # time limit for everything after it.
        left = s[0] - len(v)
        s[0] = left
        if left < 0:
            _budget_slow(s)  # raises: the step budget is exhausted
        return sum(v)

    return sum_name


def _item_of_name(name: str, key: str, general: Fn) -> Fn:
    """``name['key']`` of an exact dict read in place, under a constant key that is not a
    secret name (R1 decided when the closures are built, as for attributes).

    The general form's key check (every key of a C-compared type, one step per four keys) is
    done in C here; a dict with any other key, a subclass, a user object or a missing name
    goes to the general form, which answers or refuses with its own message.
    """
    missing = _MISSING
    scalar_ids = _SCALAR_IDS
    absent = f"key of type {typename(key)!r} is not in the dict"

    def item(lv: Any, gv: Any, s: list[Any]) -> Any:
        try:
            obj = lv[name]
        except KeyError:
            return general(lv, gv, s)
        if type(obj) is not dict:
            return general(lv, gv, s)
        # _check_keys's steps, inline and first, as there: a dict too large for the budget is
        # refused before its keys are read.
        cost = 1 + (len(obj) >> 2)
        left = s[0] - cost
        s[0] = left
        if left < s[1]:
            _budget_slow(s)
        if cost == 1:  # up to 3 keys: a loop is cheaper than building a set
            for k in obj:
                if id(type(k)) not in scalar_ids:
                    s[0] += cost  # the general form checks (and charges) the keys itself
                    return general(lv, gv, s)
        elif not {*map(id, map(type, obj))} <= scalar_ids:
            s[0] += cost
            return general(lv, gv, s)
        v = obj.get(key, missing)
        if v is missing:
            raise ExpressionError(absent)
        tv = type(v)  # R2, the common values inline (guard() returns them as they are)
        if tv is int or tv is float or v is None or tv is list or tv is dict or tv is tuple:
            return v
        if tv is str and (len(v) < _MIN or (len(v) <= _CACHED and s[_S_TABLE].get(v, 0) is None)):
            return v  # too short to be a secret, or known clean
        return guard(v, s)

    return item


def _index_of_name(name: str, index: int, general: Fn) -> Fn:
    """``name[i]`` of an exact list or tuple read in place, other than a pair (R1: the second
    item of a pair under a secret name is hidden); anything else through the general form."""

    def index_of(lv: Any, gv: Any, s: list[Any]) -> Any:
        try:
            obj = lv[name]
        except KeyError:
            return general(lv, gv, s)
        t = type(obj)
        if (t is not list and t is not tuple) or len(obj) == 2:
            return general(lv, gv, s)
        v = obj[index]  # IndexError: the general form's error (R5), raised by the same C code
        tv = type(v)
        if tv is int or tv is float or v is None or tv is list or tv is dict or tv is tuple:
            return v
        if tv is str and (len(v) < _MIN or (len(v) <= _CACHED and s[_S_TABLE].get(v, 0) is None)):
            return v
        return guard(v, s)

    return index_of


def _binop_read(op: str, left: Fn, right: Fn, ma: int, ka: Any, mb: int, kb: Any) -> Fn:
    """``a <op> b`` (``+ - * / // %``) where an operand is a plain name (mode 2) or a slot
    (mode 3; a number constant is mode 1): exact ints and floats read inline, anything else
    read through its own closure and computed by the general form's ``_arith``."""
    fast = _OPS[op]

    def binop_read(lv: Any, gv: Any, s: list[Any]) -> Any:
        if ma == 0:
            a = left(lv, gv, s)
            ta = type(a)
        else:
            if ma == 1:
                a = ka
            elif ma == 3:
                a = s[ka]
            else:
                try:
                    a = lv[ka]
                except KeyError:
                    a = None
            ta = type(a)
            if ta is not int and ta is not float:
                a = left(lv, gv, s)  # the load's own rules (R1, R2) for anything else
                ta = type(a)
        if mb == 0:
            b = right(lv, gv, s)
            tb = type(b)
        else:
            if mb == 1:
                b = kb
            elif mb == 3:
                b = s[kb]
            else:
                try:
                    b = lv[kb]
                except KeyError:
                    b = None
            tb = type(b)
            if tb is not int and tb is not float:
                b = right(lv, gv, s)  # the load's own rules (R1, R2) for anything else
                tb = type(b)
        if (
            (ta is float or ta is int)
            and (tb is float or tb is int)
            and (ta is float or a.bit_length() < 1024)
            and (tb is float or b.bit_length() < 1024)
        ):
            return fast(a, b)
        v = _arith(op, a, b, s)
        tv = type(v)
        return guard(v, s) if tv is str or tv is bytes else v  # R2: a built string

    return binop_read


def _cmp_read_left(op: str, mode: int, key: Any, left: Fn, right: Fn) -> Fn:
    """``a <op> <expression>`` where ``a`` is a plain name (mode 2) or a slot (mode 3): an exact
    int or float read inline, anything else read again through its load (R1, R2)."""
    native = _CMP_OPS[op]

    def cmp_left(lv: Any, gv: Any, s: list[Any]) -> Any:
        if mode == 3:
            a = s[key]
        else:
            try:
                a = lv[key]
            except KeyError:
                a = None  # not int or float: read through the load below
        ta = type(a)
        if ta is not int and ta is not float:
            a = left(lv, gv, s)
            ta = type(a)
        b = right(lv, gv, s)
        tb = type(b)
        if (ta is int or ta is float or ta is str) and (tb is int or tb is float or tb is str):
            return native(a, b)
        return _compare(op, a, b, s)

    return cmp_left


def _cmp_slot_const(op: str, index: int, load: Fn, k: int | float) -> Fn:
    """``slot <op> constant``: the slot read inline when it holds an exact int or float.

    Anything else (a slot given no value, a string, an object) is read through the slot's own
    load, which applies the redaction rules, and compared by ``_compare``.
    """
    native = _CMP_OPS[op]
    if op == ">=":

        def ge(lv: Any, gv: Any, s: list[Any]) -> Any:
            a = s[index]
            ta = type(a)
            if ta is int or ta is float:
                return a >= k
            return _compare(">=", load(lv, gv, s), k, s)

        return ge
    if op == ">":

        def gt(lv: Any, gv: Any, s: list[Any]) -> Any:
            a = s[index]
            ta = type(a)
            if ta is int or ta is float:
                return a > k
            return _compare(">", load(lv, gv, s), k, s)

        return gt

    def cmp(lv: Any, gv: Any, s: list[Any]) -> Any:
        a = s[index]
        ta = type(a)
        if ta is int or ta is float:
            return native(a, k)
        return _compare(op, load(lv, gv, s), k, s)

    return cmp


def _isinstance_name(nm: str, load: Fn, exact: tuple[type, ...], spec: object) -> Fn:
    """``isinstance(name, <builtin classes>)``: the locals lookup and the exact class inline.

    A value of a class the name read returns as it is (``_AS_IS``; a str too short to be a
    secret or known clean) answers True at once; anything else is read again through the
    name's load (rules R1, R2) and answered as the general form does.
    """
    if len(exact) == 1 and exact[0] in _AS_IS:
        c0 = exact[0]

        def isinstance_one(lv: Any, gv: Any, s: list[Any]) -> Any:
            try:
                v = lv[nm]
            except KeyError:
                pass
            else:
                if type(v) is c0:
                    return True
            v = load(lv, gv, s)
            if type(v) is c0:
                return True
            return _isinstance(v, spec)

        return isinstance_one
    as_is = tuple(c for c in exact if c in _AS_IS)
    text = str in exact

    def isinstance_any(lv: Any, gv: Any, s: list[Any]) -> Any:
        try:
            v = lv[nm]
        except KeyError:
            pass
        else:
            t = type(v)
            for c in as_is:
                if t is c:
                    return True
            if (
                t is str
                and text
                and (len(v) < _MIN or (len(v) <= _CACHED and s[_S_TABLE].get(v, 0) is None))
            ):
                return True  # too short to be a secret, or known clean (the load's R2)
        v = load(lv, gv, s)
        t = type(v)
        for c in exact:
            if t is c:
                return True
        return _isinstance(v, spec)

    return isinstance_any


def _refuse(source: str, node: ast.AST, what: str, why: str) -> ExpressionError:
    col = getattr(node, "col_offset", -1) + 1
    return ExpressionError(f"expression {source!r}: {what} at column {col} is refused: {why}")


_NODE_NAMES: dict[str, str] = {
    "NamedExpr": "assignment expression (:=)",
    "Lambda": "lambda",
    "Await": "await",
    "Yield": "yield",
    "YieldFrom": "yield from",
    "Starred": "starred expression (*x)",
    "MatMult": "operator '@'",
}
_NODE_WHY: dict[str, str] = {
    "NamedExpr": "expressions are read-only and cannot assign",
    "Lambda": "expressions cannot define functions",
    "Await": "expressions cannot suspend",
    "Yield": "expressions cannot suspend",
    "YieldFrom": "expressions cannot suspend",
    "Starred": "unpacking can iterate user objects; write the items out",
}


class _Compiler:
    def __init__(self, source: str, red: _redaction.Redactor, slots: tuple[str, ...] = ()) -> None:
        self.source = source
        self.red = red
        self.slots = {name: _S_SLOTS + i for i, name in enumerate(slots)}
        self.scopes: list[set[str]] = []
        self.names: set[str] = set()
        self.plain_names: dict[int, str] = {}
        self.nodes = 0
        self.fast = SPECIALISE

    def refuse(self, node: ast.AST, what: str, why: str) -> ExpressionError:
        return _refuse(self.source, node, what, why)

    def c(self, node: ast.AST, depth: int = 0) -> Fn:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.refuse(node, "expression size", f"more than {MAX_NODES} syntax nodes")
        if depth > MAX_DEPTH:
            raise self.refuse(node, "nesting", f"deeper than {MAX_DEPTH} levels")
        kind = type(node).__name__
        method = getattr(self, "c_" + kind, None)
        if method is None:
            what = _NODE_NAMES.get(kind, f"construct {kind}")
            why = _NODE_WHY.get(kind, "it is not part of the expression language")
            raise self.refuse(node, what, why)
        fn: Fn = method(node, depth + 1)
        return fn

    # leaves

    def c_Constant(self, node: ast.Constant, depth: int) -> Fn:
        value = node.value
        if value is ... or (id(type(value)) not in _SCALAR_IDS):
            raise self.refuse(
                node, f"constant {value!r}", "only numbers, strings, bytes, booleans and None"
            )
        # R2: a secret written in the expression (a guessed card, a token) is a marker too, so
        # that it cannot be compared with the program's secrets.
        value = guard(value, new_state(DEFAULT_MAX_STEPS, DEFAULT_MAX_SECONDS, self.red))

        def const(lv: Any, gv: Any, s: Any) -> Any:
            return value

        const.const_value = value  # type: ignore[attr-defined]
        return const

    def c_Name(self, node: ast.Name, depth: int) -> Fn:
        name = node.id
        if name.startswith("_"):
            raise self.refuse(
                node, f"name {name!r}", "names starting with '_' are private or dunder"
            )
        if not isinstance(node.ctx, ast.Load):
            raise self.refuse(node, f"assignment to {name!r}", "expressions are read-only")
        if any(name in sc for sc in self.scopes):

            def comp_var(lv: Any, gv: Any, s: list[Any]) -> Any:
                return s[_S_VARS][name]

            return comp_var
        self.names.add(name)
        secret = self.red.is_secret_name(name)
        if name in self.slots:
            return self._slot_load(name, secret, self.slots[name])

        def raw(lv: Mapping[str, object], gv: Mapping[str, object] | None) -> Any:
            try:
                return lv[name]
            except KeyError:
                pass
            if gv is not None:
                try:
                    return gv[name]
                except KeyError:
                    pass
            raise ExpressionError(f"name {name!r} is not defined at this location")

        if secret:

            def load_secret(lv: Any, gv: Any, s: Any) -> Any:
                return redact_name(raw(lv, gv))  # R1

            return load_secret

        def load(lv: Mapping[str, object], gv: Mapping[str, object] | None, s: Any) -> Any:
            v = raw(lv, gv)
            tv = type(v)  # R2, with the common values inline (a hot path)
            if tv is int or tv is float or v is None or tv is list or tv is dict or tv is tuple:
                return v  # guard() returns these as they are
            if tv is str and (
                len(v) < _MIN or (len(v) <= _CACHED and s[_S_TABLE].get(v, 0) is None)
            ):
                return v  # too short to be a secret, or known clean
            return guard(v, s)

        # Parents that read a plain name inline the locals lookup (one call less per name).
        self.plain_names[id(load)] = name
        return load

    def _slot_load(self, name: str, secret: bool, index: int) -> Fn:
        """A name read from its slot of the evaluation state (see ``Expression``'s ``slots``).

        A slot given no value (``NO_VALUE``) reads the name from the locals and globals like
        any other. Either way the value passes the same rules as a local's: R1 for a secret
        name, R2 for a secret by content.
        """

        def raw(lv: Mapping[str, object], gv: Mapping[str, object] | None) -> Any:
            try:
                return lv[name]
            except KeyError:
                pass
            if gv is not None:
                try:
                    return gv[name]
                except KeyError:
                    pass
            raise ExpressionError(f"name {name!r} is not defined at this location")

        def load_slot(lv: Any, gv: Any, s: list[Any]) -> Any:
            v = s[index]
            if v is NO_VALUE:
                v = raw(lv, gv)
            if secret:
                return redact_name(v)  # R1
            tv = type(v)  # R2, the common values inline (a hot path)
            if tv is int or tv is float or v is None:
                return v
            if tv is str and (
                len(v) < _MIN or (len(v) <= _CACHED and s[_S_TABLE].get(v, 0) is None)
            ):
                return v  # too short to be a secret, or known clean
            return guard(v, s)

        if not secret:  # parents read a slot inline only where no rule can apply to a number
            load_slot.slot_index = index  # type: ignore[attr-defined]
        return load_slot

    # reads

    def c_Attribute(self, node: ast.Attribute, depth: int) -> Fn:
        name = node.attr
        if name.startswith("_"):
            raise self.refuse(
                node, f"attribute {name!r}", "attributes starting with '_' are private or dunder"
            )
        if not isinstance(node.ctx, ast.Load):
            raise self.refuse(
                node, f"assignment to attribute {name!r}", "expressions are read-only"
            )
        value = self.c(node.value, depth)
        secret = self.red.is_secret_name(name)
        # A one-entry cache per attribute site: (type, heap class dicts, __dict__ getter),
        # replaced as one tuple so that threads never see parts of two entries. Filled only
        # for plain application classes, and only when no builtin base class has `name`
        # (builtin class dicts cannot change; heap class dicts are checked on every read,
        # since a property may be added to a class at any time).
        site: tuple[Any, tuple[Any, ...], Any] = (None, (), None)
        missing = _MISSING
        base_name = self.plain_names.get(id(value))

        def attr(lv: Any, gv: Any, s: list[Any]) -> Any:
            nonlocal site
            if base_name is not None:
                try:
                    obj = lv[base_name]
                except KeyError:
                    obj = value(lv, gv, s)
            else:
                obj = value(lv, gv, s)
            t = type(obj)
            entry = site
            if t is entry[0]:
                for cd in entry[1]:
                    if name in cd:
                        break
                else:
                    d = entry[2](obj, t)
                    if type(d) is dict:
                        v = d.get(name, missing)
                        if v is not missing:
                            if secret:
                                return redact_name(v)  # R1
                            tv = type(v)  # R2, the common values inline
                            if tv is int or tv is float or v is None:
                                return v
                            if tv is str and (
                                len(v) < _MIN
                                or (len(v) <= _CACHED and s[_S_TABLE].get(v, 0) is None)
                            ):
                                return v  # too short to be a secret, or known clean
                            return guard(v, s)
            elif t is Redacted:
                raise ExpressionError(f"attribute {name!r} of a redacted value is refused")
            v = _getattr(obj, name, s)
            if t is not entry[0]:
                fresh = _site_entry(t, name)
                if fresh is not None:
                    site = fresh
            if secret:
                return redact_name(v)
            tv = type(v)  # R2, with the common values inline (a hot path)
            if tv is int or tv is float or v is None:
                return v
            if tv is str and (
                len(v) < _MIN or (len(v) <= _CACHED and s[_S_TABLE].get(v, 0) is None)
            ):
                return v  # too short to be a secret, or known clean
            return guard(v, s)

        return attr

    def c_Subscript(self, node: ast.Subscript, depth: int) -> Fn:
        if not isinstance(node.ctx, ast.Load):
            raise self.refuse(node, "assignment to an item", "expressions are read-only")
        value = self.c(node.value, depth)
        key = self.c(node.slice, depth)

        def subscript(lv: Any, gv: Any, s: list[Any]) -> Any:
            obj = value(lv, gv, s)
            if type(obj) is Redacted:
                raise ExpressionError("subscript of a redacted value is refused")
            return _getitem(obj, key(lv, gv, s), s)

        nm = self.plain_names.get(id(value)) if self.fast else None
        k = getattr(key, "const_value", _MISSING)
        if nm is not None and type(k) is str and not self.red.is_secret_name(k):
            return _item_of_name(nm, k, subscript)
        if nm is not None and type(k) is int:
            return _index_of_name(nm, k, subscript)
        return subscript

    def c_Slice(self, node: ast.Slice, depth: int) -> Fn:
        parts = [
            self.c(p, depth) if p is not None else None for p in (node.lower, node.upper, node.step)
        ]

        def make_slice(lv: Any, gv: Any, s: list[Any]) -> Any:
            vals = []
            for p in parts:
                v = p(lv, gv, s) if p is not None else None
                if v is not None and type(v) is not int and type(v) is not bool:
                    raise ExpressionError(f"slice bounds must be ints, got {typename(v)!r}")
                vals.append(v)
            return slice(*vals)

        return make_slice

    # operators

    def c_BinOp(self, node: ast.BinOp, depth: int) -> Fn:
        op = _BINOP_SYMBOL.get(type(node.op))
        if op is None:
            raise self.refuse(
                node, f"operator {type(node.op).__name__}", "it applies to no builtin value"
            )
        left = self.c(node.left, depth)
        right = self.c(node.right, depth)
        simple = op in ("+", "-", "*", "/", "//", "%")
        fast = _OPS[op]
        ma, ka = self._operand(left)
        mb, kb = self._operand(right)
        if self.fast and simple and (ma >= 2 or mb >= 2):
            return _binop_read(op, left, right, ma, ka, mb, kb)

        def binop(lv: Any, gv: Any, s: list[Any]) -> Any:
            a = left(lv, gv, s)
            b = right(lv, gv, s)
            ta = type(a)
            tb = type(b)
            # Fast path: small floats/ints cannot grow beyond limits through these operators.
            if (
                simple
                and (ta is float or ta is int)
                and (tb is float or tb is int)
                and (ta is float or a.bit_length() < 1024)
                and (tb is float or b.bit_length() < 1024)
            ):
                return fast(a, b)
            v = _arith(op, a, b, s)
            tv = type(v)
            return guard(v, s) if tv is str or tv is bytes else v  # R2: a built string

        return binop

    def c_UnaryOp(self, node: ast.UnaryOp, depth: int) -> Fn:
        operand = self.c(node.operand, depth)
        if isinstance(node.op, ast.Not):

            def not_(lv: Any, gv: Any, s: list[Any]) -> Any:
                return not _truth(operand(lv, gv, s))

            return not_
        sym = {ast.USub: "-", ast.UAdd: "+", ast.Invert: "~"}[type(node.op)]

        def unary(lv: Any, gv: Any, s: list[Any]) -> Any:
            v = operand(lv, gv, s)
            t = type(v)
            if id(t) in _NUMBER_IDS or id(t) in _DECIMAL_IDS or (sym == "-" and t is _dt.timedelta):
                _check_number(v)
                if sym == "~" and t is not int and t is not bool:
                    raise ExpressionError(f"'~' needs an int, got {typename(v)!r}")
                return -v if sym == "-" else (+v if sym == "+" else ~v)
            raise ExpressionError(
                f"unary '{sym}' of a value of type {typename(v)!r} is refused: builtin numbers only"
            )

        return unary

    def c_BoolOp(self, node: ast.BoolOp, depth: int) -> Fn:
        fns = [self.c(v, depth) for v in node.values]
        is_and = isinstance(node.op, ast.And)
        if len(fns) == 2:
            f1, f2 = fns
            if is_and:

                def and2(lv: Any, gv: Any, s: list[Any]) -> Any:
                    v = f1(lv, gv, s)
                    if v is False or (v is not True and not _truth(v)):
                        return v
                    return f2(lv, gv, s)

                return and2

            def or2(lv: Any, gv: Any, s: list[Any]) -> Any:
                v = f1(lv, gv, s)
                if v is True or (v is not False and _truth(v)):
                    return v
                return f2(lv, gv, s)

            return or2

        def boolop(lv: Any, gv: Any, s: list[Any]) -> Any:
            v: object = None
            for f in fns:
                v = f(lv, gv, s)
                if _truth(v) != is_and:
                    return v
            return v

        return boolop

    def c_Compare(self, node: ast.Compare, depth: int) -> Fn:
        left = self.c(node.left, depth)
        ops = [_CMPOP_SYMBOL[type(o)] for o in node.ops]
        rights = [self.c(c, depth) for c in node.comparators]
        if len(ops) == 1 and ops[0] in _CMP_OPS:
            op = ops[0]
            right = rights[0]
            native = _CMP_OPS[op]
            const = getattr(right, "const_value", _MISSING)
            if const is not _MISSING and type(const) is str:
                # `x == 'paid'`: the same type is compared natively, anything else checked.
                ks = const

                def cmp_str(lv: Any, gv: Any, s: list[Any]) -> Any:
                    a = left(lv, gv, s)
                    if type(a) is str:
                        return native(a, ks)
                    return _compare(op, a, ks, s)

                return cmp_str
            if const is not _MISSING and (type(const) is int or type(const) is float):
                # The common `x > 0.5` shape: inline the constant and the fast type test.
                k = const
                nm = self.plain_names.get(id(left))
                if nm is not None:
                    named = _cmp_name_const(op, nm, left, k)
                    if self.fast:
                        named.number_test = (op, nm, None, k)  # type: ignore[attr-defined]
                    return named
                len_of = getattr(left, "len_of_name", None)
                if len_of is not None:
                    return _cmp_len_const(op, len_of, left, k)
                slot = getattr(left, "slot_index", None)
                if slot is not None:
                    slotted = _cmp_slot_const(op, slot, left, k)
                    if self.fast:
                        slotted.number_test = (op, None, slot, k)  # type: ignore[attr-defined]
                    return slotted
                if op == ">":

                    def gt_const(lv: Any, gv: Any, s: list[Any]) -> Any:
                        a = left(lv, gv, s)
                        ta = type(a)
                        if ta is float or ta is int:
                            return a > k
                        return _compare(">", a, k, s)

                    return gt_const
                if op == "<":

                    def lt_const(lv: Any, gv: Any, s: list[Any]) -> Any:
                        a = left(lv, gv, s)
                        ta = type(a)
                        if ta is int or ta is float:
                            return a < k
                        return _compare("<", a, k, s)

                    return lt_const

                def cmp_const(lv: Any, gv: Any, s: list[Any]) -> Any:
                    a = left(lv, gv, s)
                    ta = type(a)
                    if ta is int or ta is float:
                        return native(a, k)
                    return _compare(op, a, k, s)

                return cmp_const

            def cmp1(lv: Any, gv: Any, s: list[Any]) -> Any:
                a = left(lv, gv, s)
                b = right(lv, gv, s)
                ta = type(a)
                tb = type(b)
                if (ta is int or ta is float or ta is str) and (
                    tb is int or tb is float or tb is str
                ):
                    return native(a, b)
                return _compare(op, a, b, s)

            ma, ka = self._operand(left)
            if self.fast and (ma == 2 or ma == 3):
                return _cmp_read_left(op, ma, ka, left, right)
            return cmp1
        pairs = list(zip(ops, rights, strict=True))
        if len(ops) == 2 and all(op in _ORDER_OPS for op in ops):
            return self._chained_order(left, ops, rights)

        def compare(lv: Any, gv: Any, s: list[Any]) -> Any:
            a = left(lv, gv, s)
            for op, fn in pairs:
                b = fn(lv, gv, s)
                if not _compare(op, a, b, s):
                    return False
                a = b
            return True

        if self.fast and len(ops) == 1 and ops[0] in ("in", "not in"):
            fast = self._in_literal(node.comparators[0], rights[0], left, ops[0] == "in", compare)
            if fast is not None:
                return fast
        return compare

    def _in_literal(
        self, node: ast.expr, right: Fn, left: Fn, positive: bool, general: Fn
    ) -> Fn | None:
        """``name in (constants)`` (a tuple, list or set display of literal scalars) with the
        name read inline: the display built once, at compile time.

        Only when the general form would accept the display (its container check, rule R3, is
        run here once) and the name holds an exact scalar the load returns as it is; anything
        else goes to the general form. The steps that check charges are charged all the same.
        """
        mode, key = self._operand(left)
        if mode != 2 and mode != 3:
            return None
        if not isinstance(node, ast.Tuple | ast.List | ast.Set) or not all(
            isinstance(e, ast.Constant) for e in node.elts
        ):
            return None
        try:
            built = right(None, None, new_state(DEFAULT_MAX_STEPS, DEFAULT_MAX_SECONDS, self.red))
        except ExpressionError:
            return None
        if any(id(type(x)) not in _LITERAL_IDS for x in built):
            return None  # a computed item, or a constant redacted as a secret (R2)
        if any((type(x) is str or type(x) is bytes) and len(x) > _CACHED for x in built):
            return None  # its scan would charge steps of its own at run time
        try:
            _check_cmp(built, new_state(DEFAULT_MAX_STEPS, DEFAULT_MAX_SECONDS, self.red))
        except ExpressionError:
            return None  # refused at run time by the general form, with its message
        items: tuple[object, ...] | frozenset[object] = (
            frozenset(built) if type(built) is set else tuple(built)
        )
        n = len(items)

        def in_literal(lv: Any, gv: Any, s: list[Any]) -> Any:
            if mode == 3:
                a = s[key]
            else:
                try:
                    a = lv[key]
                except KeyError:
                    return general(lv, gv, s)
            ta = type(a)
            if not (
                ta is int
                or ta is float
                or ta is bool
                or a is None
                or (
                    ta is str
                    and (len(a) < _MIN or (len(a) <= _CACHED and s[_S_TABLE].get(a, 0) is None))
                )
            ):
                return general(lv, gv, s)
            # _charge(s, n) inline (the container check's steps); the clock is left to the next
            # charge, as the display's size is bounded by the expression's.
            steps = s[0] - n
            s[0] = steps
            if steps < 0:
                _budget_slow(s)
            return (a in items) is positive

        return in_literal

    def _operand(self, fn: Fn) -> tuple[int, Any]:
        """How a chained comparison reads an operand inline: (mode, constant or name).

        Modes: 0 through its closure, 1 a number constant, 2 a plain name read from the
        locals, 3 a slot of the state (the index). Modes 2 and 3 take only exact ints and
        floats inline; anything else is read again through the closure (R2 applies).
        """
        const = getattr(fn, "const_value", _MISSING)
        if const is not _MISSING and (type(const) is int or type(const) is float):
            return 1, const
        index = getattr(fn, "slot_index", None)
        if index is not None:
            return 3, index
        name = self.plain_names.get(id(fn))
        if name is not None:
            return 2, name
        return 0, None

    def _chained_order(self, left: Fn, ops: list[str], rights: list[Fn]) -> Fn:
        """``a <op> b <op> c`` with order operators (``0 <= result <= price``, the typical
        expectation): constants, plain names and the probe's value read inline, numbers
        compared natively.

        The same semantics as the general chain: ``c`` is read only when the first comparison
        holds, and anything but an exact int or float goes through ``_compare``.
        """
        op1, op2 = ops
        middle, right = rights
        first, second = _ORDER_NATIVE[op1], _ORDER_NATIVE[op2]
        ma, ka = self._operand(left)
        mb, kb = self._operand(middle)
        mc, kc = self._operand(right)

        def chain(lv: Any, gv: Any, s: list[Any]) -> Any:
            if ma == 1:
                a = ka
            elif ma == 2:
                try:
                    a = lv[ka]
                except KeyError:
                    a = left(lv, gv, s)
                else:
                    if type(a) is not int and type(a) is not float:
                        a = left(lv, gv, s)  # the load's own checks (R2) for the rest
            elif ma == 3:
                a = s[ka]
                if type(a) is not int and type(a) is not float:
                    a = left(lv, gv, s)
            else:
                a = left(lv, gv, s)
            if mb == 1:
                b = kb
            elif mb == 2:
                try:
                    b = lv[kb]
                except KeyError:
                    b = middle(lv, gv, s)
                else:
                    if type(b) is not int and type(b) is not float:
                        b = middle(lv, gv, s)
            elif mb == 3:
                b = s[kb]
                if type(b) is not int and type(b) is not float:
                    b = middle(lv, gv, s)
            else:
                b = middle(lv, gv, s)
            ta, tb = type(a), type(b)
            if (ta is int or ta is float) and (tb is int or tb is float):
                if not first(a, b):
                    return False
            elif not _compare(op1, a, b, s):
                return False
            if mc == 1:
                c = kc
            elif mc == 2:
                try:
                    c = lv[kc]
                except KeyError:
                    c = right(lv, gv, s)
                else:
                    if type(c) is not int and type(c) is not float:
                        c = right(lv, gv, s)
            elif mc == 3:
                c = s[kc]
                if type(c) is not int and type(c) is not float:
                    c = right(lv, gv, s)
            else:
                c = right(lv, gv, s)
            tc = type(c)
            if (tb is int or tb is float) and (tc is int or tc is float):
                return second(b, c)
            return _compare(op2, b, c, s)

        return chain

    def c_IfExp(self, node: ast.IfExp, depth: int) -> Fn:
        test, body, orelse = (
            self.c(node.test, depth),
            self.c(node.body, depth),
            self.c(node.orelse, depth),
        )

        def ifexp(lv: Any, gv: Any, s: list[Any]) -> Any:
            return body(lv, gv, s) if _truth(test(lv, gv, s)) else orelse(lv, gv, s)

        return ifexp

    # displays

    def _elts(self, elts: list[ast.expr], depth: int) -> list[Fn]:
        for e in elts:
            if isinstance(e, ast.Starred):
                raise self.refuse(e, _NODE_NAMES["Starred"], _NODE_WHY["Starred"])
        return [self.c(e, depth) for e in elts]

    def c_List(self, node: ast.List, depth: int) -> Fn:
        fns = self._elts(node.elts, depth)

        def list_(lv: Any, gv: Any, s: list[Any]) -> Any:
            return [f(lv, gv, s) for f in fns]

        return list_

    def c_Tuple(self, node: ast.Tuple, depth: int) -> Fn:
        if not isinstance(node.ctx, ast.Load):
            raise self.refuse(node, "assignment to a tuple", "expressions are read-only")
        fns = self._elts(node.elts, depth)

        def tuple_(lv: Any, gv: Any, s: list[Any]) -> Any:
            return tuple([f(lv, gv, s) for f in fns])

        return tuple_

    def c_Set(self, node: ast.Set, depth: int) -> Fn:
        fns = self._elts(node.elts, depth)

        def set_(lv: Any, gv: Any, s: list[Any]) -> Any:
            items = [f(lv, gv, s) for f in fns]
            for item in items:
                if id(type(item)) not in _SCALAR_IDS:
                    _check_cmp(item, s)
            return set(items)

        return set_

    def c_Dict(self, node: ast.Dict, depth: int) -> Fn:
        for k in node.keys:
            if k is None:
                raise self.refuse(
                    node, "dict unpacking (**x)", "unpacking can run user code; write the items out"
                )
        keys = [self.c(k, depth) for k in node.keys if k is not None]
        values = [self.c(v, depth) for v in node.values]

        def dict_(lv: Any, gv: Any, s: list[Any]) -> Any:
            out = {}
            for kf, vf in zip(keys, values, strict=True):
                k = kf(lv, gv, s)
                if id(type(k)) not in _SCALAR_IDS:
                    _check_cmp(k, s)
                out[k] = vf(lv, gv, s)
            return out

        return dict_

    # f-strings

    def c_JoinedStr(self, node: ast.JoinedStr, depth: int) -> Fn:
        parts: list[Fn | str] = []
        for v in node.values:
            if isinstance(v, ast.Constant) and type(v.value) is str:
                parts.append(v.value)
            elif isinstance(v, ast.FormattedValue):
                parts.append(self._formatted(v, depth))
            else:
                raise self.refuse(v, f"f-string part {type(v).__name__}", "not supported")

        def joined(lv: Any, gv: Any, s: list[Any]) -> Any:
            out = []
            total = 0
            for p in parts:
                text = p if isinstance(p, str) else p(lv, gv, s)
                total += len(text)
                if total > MAX_STR:
                    raise ExpressionError(f"an f-string above {MAX_STR} characters is refused")
                out.append(text)
            return guard("".join(out), s)  # R2: the pieces may make a secret together

        return joined

    def _formatted(self, v: ast.FormattedValue, depth: int) -> Fn:
        spec = ""
        if v.format_spec is not None:
            fs = v.format_spec
            if not isinstance(fs, ast.JoinedStr) or not all(
                isinstance(x, ast.Constant) and type(x.value) is str for x in fs.values
            ):
                raise self.refuse(fs, "computed format spec", "format specs must be literal")
            spec = "".join(str(x.value) for x in fs.values if isinstance(x, ast.Constant))
            if not _SPEC_RE.match(spec):
                raise self.refuse(
                    fs,
                    f"format spec {spec!r}",
                    "widths and precisions are limited to 3 digits and plain fields",
                )
        conversion = v.conversion
        inner = self.c(v.value, depth)
        red = self.red

        def field(lv: Any, gv: Any, s: list[Any]) -> str:
            return safe_format(inner(lv, gv, s), spec, conversion, red=red)

        return field

    # comprehensions

    def _comp(
        self,
        node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp,
        depth: int,
        kind: str,
    ) -> Fn:
        gens: list[tuple[Callable[[dict[str, object], object, list[Any]], None], Fn, list[Fn]]] = []
        bound: list[str] = []
        pushed = 0
        try:
            for gen in node.generators:
                if gen.is_async:
                    raise self.refuse(node, "async comprehension", "expressions cannot suspend")
                it = self.c(gen.iter, depth)
                names = self._target_names(gen.target)
                self.scopes.append(set(names))
                pushed += 1
                bound.extend(names)
                binder = self._binder(gen.target)
                conds = [self.c(c, depth) for c in gen.ifs]
                gens.append((binder, it, conds))
            if kind == "dict":
                assert isinstance(node, ast.DictComp)
                key_fn, val_fn = self.c(node.key, depth), self.c(node.value, depth)
            else:
                assert not isinstance(node, ast.DictComp)
                elt = self.c(node.elt, depth)
        finally:
            del self.scopes[len(self.scopes) - pushed :]
        n = len(gens)
        names_t = tuple(dict.fromkeys(bound))

        def produce(lv: Any, gv: Any, s: list[Any]) -> Iterator[object]:
            vars_ = s[_S_VARS]
            if vars_ is None:
                vars_ = s[_S_VARS] = {}
            saved = {nm: vars_.get(nm, _MISSING) for nm in names_t}
            try:
                yield from walk(0, lv, gv, s, vars_)
            finally:
                for nm, old in saved.items():
                    if old is _MISSING:
                        vars_.pop(nm, None)
                    else:
                        vars_[nm] = old

        def walk(
            i: int, lv: Any, gv: Any, s: list[Any], vars_: dict[str, object]
        ) -> Iterator[object]:
            binder, it, conds = gens[i]
            for item in _iterate(it(lv, gv, s), s):
                binder(vars_, item, s)
                if conds and not all(_truth(c(lv, gv, s)) for c in conds):
                    continue
                if i + 1 < n:
                    yield from walk(i + 1, lv, gv, s, vars_)
                elif kind == "dict":
                    yield (key_fn(lv, gv, s), val_fn(lv, gv, s))
                else:
                    yield elt(lv, gv, s)

        if kind == "gen":

            def genexp(lv: Any, gv: Any, s: list[Any]) -> Any:
                return _Lazy(produce(lv, gv, s))

            return genexp

        def comp(lv: Any, gv: Any, s: list[Any]) -> Any:
            items: list[Any] = []
            for item in produce(lv, gv, s):
                items.append(item)
                if len(items) > MAX_ITEMS:
                    raise ExpressionError(
                        f"a comprehension of more than {MAX_ITEMS} items is refused"
                    )
            if kind == "list":
                return items
            for item in items:
                k = item[0] if kind == "dict" else item
                if id(type(k)) not in _SCALAR_IDS:
                    _check_cmp(k, s)
            return dict(items) if kind == "dict" else set(items)

        return comp

    def _target_names(self, target: ast.expr) -> list[str]:
        if isinstance(target, ast.Name):
            if target.id.startswith("_"):
                raise self.refuse(
                    target,
                    f"loop variable {target.id!r}",
                    "names starting with '_' are private or dunder",
                )
            return [target.id]
        if isinstance(target, ast.Tuple | ast.List):
            out: list[str] = []
            for e in target.elts:
                out.extend(self._target_names(e))
            return out
        raise self.refuse(
            target,
            f"loop target {type(target).__name__}",
            "loop targets must be names or tuples of names",
        )

    def _binder(self, target: ast.expr) -> Callable[[dict[str, object], object, list[Any]], None]:
        if isinstance(target, ast.Name):
            name = target.id

            def bind(vars_: dict[str, object], item: object, s: list[Any]) -> None:
                vars_[name] = item

            return bind
        assert isinstance(target, ast.Tuple | ast.List)
        subs = [self._binder(e) for e in target.elts]
        n = len(subs)

        def bind_tuple(vars_: dict[str, object], item: Any, s: list[Any]) -> None:
            t = type(item)
            if t is not tuple and t is not list:
                raise ExpressionError(
                    f"cannot unpack a value of type {typename(item)!r}: "
                    "builtin tuples and lists only"
                )
            if len(item) != n:
                raise ExpressionError(f"cannot unpack {len(item)} items into {n} names")
            # R1/R2: unpacking reads the items: `for k, v in headers` hides a secret pair's
            # value, and a secret by content reads as a marker.
            hidden = hidden_positions(item, t, s[_S_RED]) if n == 2 else frozenset()
            for i, (b, v) in enumerate(zip(subs, item, strict=True)):
                b(vars_, redact_name(v) if i in hidden else guard(v, s), s)

        return bind_tuple

    def c_ListComp(self, node: ast.ListComp, depth: int) -> Fn:
        return self._comp(node, depth, "list")

    def c_SetComp(self, node: ast.SetComp, depth: int) -> Fn:
        return self._comp(node, depth, "set")

    def c_DictComp(self, node: ast.DictComp, depth: int) -> Fn:
        return self._comp(node, depth, "dict")

    def c_GeneratorExp(self, node: ast.GeneratorExp, depth: int) -> Fn:
        return self._comp(node, depth, "gen")

    # calls

    def c_Call(self, node: ast.Call, depth: int) -> Fn:
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.refuse(
                    a,
                    "starred argument (*args)",
                    "unpacking can iterate user objects; pass arguments one by one",
                )
        for kw in node.keywords:
            if kw.arg is None:
                raise self.refuse(
                    node,
                    "keyword unpacking (**kwargs)",
                    "unpacking can run user code; pass keywords one by one",
                )
        func = node.func
        if isinstance(func, ast.Attribute):
            return self._method_call(node, func, depth)
        if not isinstance(func, ast.Name):
            raise self.refuse(
                node,
                "call of a computed function",
                "only the allowed builtins and methods of builtin values can be called",
            )
        name = func.id
        if any(name in sc for sc in self.scopes) or name not in _FUNC_SIGNATURES:
            why = _REFUSED_CALL_REASONS.get(name)
            if why is None:
                why = "only these functions may be called: " + ", ".join(sorted(_FUNC_SIGNATURES))
            raise self.refuse(node, f"call of {name!r}", why)
        lo, hi, kws = _FUNC_SIGNATURES[name]
        if not lo <= len(node.args) <= hi:
            raise self.refuse(
                node, f"call of {name!r} with {len(node.args)} arguments", f"it takes {lo} to {hi}"
            )
        for kw in node.keywords:
            if kw.arg not in kws:
                raise self.refuse(
                    kw,
                    f"keyword {kw.arg!r} of {name!r}",
                    f"allowed keywords: {', '.join(sorted(kws)) or 'none'}",
                )
        if name == "isinstance":
            return self._isinstance_call(node, depth)
        if name == "hasattr":
            return self._hasattr_call(node, depth)
        args = [self.c(a, depth) for a in node.args]
        kwfns = [(kw.arg, self.c(kw.value, depth)) for kw in node.keywords]
        impl = _FUNCS[name]
        if name == "len" and len(args) == 1 and not kwfns:
            arg0 = args[0]
            nm = self.plain_names.get(id(arg0))
            if nm is not None:

                def call_len_name(lv: Any, gv: Any, s: list[Any]) -> Any:
                    try:
                        v = lv[nm]
                    except KeyError:
                        v = arg0(lv, gv, s)
                    t = type(v)
                    if t is list or t is dict or t is tuple:
                        return len(v)
                    if t is str:
                        n = len(v)
                        if n < _MIN or (n <= _CACHED and s[_S_TABLE].get(v, 0) is None):
                            return n  # too short to be a secret, or known clean (the load's R2)
                    # A str read inline skipped the load's guard: the content rule first (R2),
                    # so that the length of a secret is refused.
                    return _b_len([guard(v, s)], s)

                if self.fast:
                    call_len_name.len_of_name = nm  # type: ignore[attr-defined]
                return call_len_name

            def call_len(lv: Any, gv: Any, s: list[Any]) -> Any:
                v = arg0(lv, gv, s)
                t = type(v)
                if t is list or t is str or t is dict or t is tuple:
                    return len(v)
                return _b_len([v], s)

            return call_len
        if name == "sum" and len(args) == 1 and not kwfns:
            arg0 = args[0]

            def call_sum(lv: Any, gv: Any, s: list[Any]) -> Any:
                v = arg0(lv, gv, s)
                t = type(v)
                if (t is list or t is tuple) and len(v) <= _SUM_INLINE:
                    # A short list of exact numbers (``sum(prices)``): what _b_sum does, without
                    # its generator. No item can be hidden (R1 hides the second item of a pair
                    # whose first is a secret name, a string) or be a secret by content (R2
                    # applies to strings); the steps are those _iterate charges, one per item.
                    for x in v:
                        tx = type(x)
                        if tx is not int and tx is not float:
                            break
                    else:
                        _charge(s, len(v))
                        return sum(v)
                return impl([v], s)

            nm = self.plain_names.get(id(arg0)) if self.fast else None
            if nm is not None:
                return _sum_name(nm, arg0, call_sum)
            return call_sum

        if name == "abs" and len(args) == 1 and not kwfns and self.fast:
            arg0 = args[0]

            def call_abs(lv: Any, gv: Any, s: list[Any]) -> Any:
                v = arg0(lv, gv, s)
                t = type(v)
                if t is int or t is float:
                    return abs(v)  # what _b_abs does for an exact number, one call less
                return impl([v], s)

            return call_abs

        def call(lv: Any, gv: Any, s: list[Any]) -> Any:
            vals = [a(lv, gv, s) for a in args]
            if kwfns:
                return impl(vals, s, **{str(k): f(lv, gv, s) for k, f in kwfns})
            return impl(vals, s)

        return call

    def _isinstance_call(self, node: ast.Call, depth: int) -> Fn:
        value = self.c(node.args[0], depth)
        spec_node = node.args[1]
        spec_fn: Fn
        static = self._static_types(spec_node)
        if static is not None:
            spec: object = static[0] if len(static) == 1 else tuple(static)
            exact = tuple(static)
            if all(type(c) is type for c in exact):
                # Builtin classes (their metaclass is type: no __instancecheck__, no ABC):
                # the value's exact class is compared by identity first, and everything else
                # (a subclass, a Redacted marker, a class not in the spec) goes through
                # _isinstance, which walks the MRO and refuses a redacted value.

                def isinstance_static(lv: Any, gv: Any, s: list[Any]) -> Any:
                    v = value(lv, gv, s)
                    t = type(v)
                    for c in exact:
                        if t is c:
                            return True
                    return _isinstance(v, spec)

                nm = self.plain_names.get(id(value)) if self.fast else None
                if nm is not None:
                    return _isinstance_name(nm, value, exact, spec)
                return isinstance_static

            def spec_fn(lv: Any, gv: Any, s: Any) -> Any:
                return spec

        else:
            spec_fn = self.c(spec_node, depth)

        def call_isinstance(lv: Any, gv: Any, s: list[Any]) -> Any:
            return _isinstance(value(lv, gv, s), spec_fn(lv, gv, s))

        return call_isinstance

    def _static_types(self, node: ast.expr) -> list[type] | None:
        if (
            isinstance(node, ast.Name)
            and node.id in _TYPE_NAMES
            and not any(node.id in sc for sc in self.scopes)
        ):
            return [_TYPE_NAMES[node.id]]
        if isinstance(node, ast.Constant) and node.value is None:
            return [_NoneType]
        if isinstance(node, ast.Tuple):
            out: list[type] = []
            for e in node.elts:
                one = self._static_types(e)
                if one is None:
                    return None
                out.extend(one)
            return out
        return None

    def _hasattr_call(self, node: ast.Call, depth: int) -> Fn:
        name_node = node.args[1]
        if not (isinstance(name_node, ast.Constant) and type(name_node.value) is str):
            raise self.refuse(
                name_node, "computed attribute name", "hasattr() needs a literal attribute name"
            )
        name = name_node.value
        if name.startswith("_"):
            raise self.refuse(
                name_node,
                f"attribute {name!r}",
                "attributes starting with '_' are private or dunder",
            )
        value = self.c(node.args[0], depth)

        def call_hasattr(lv: Any, gv: Any, s: list[Any]) -> Any:
            obj = value(lv, gv, s)
            try:
                _getattr(obj, name, s)
            except ExpressionError:
                return False
            return True

        return call_hasattr

    def _method_call(self, node: ast.Call, func: ast.Attribute, depth: int) -> Fn:
        name = func.attr
        if name.startswith("_"):
            raise self.refuse(
                func, f"attribute {name!r}", "attributes starting with '_' are private or dunder"
            )
        if name in ("format", "format_map"):
            raise self.refuse(
                func,
                f"method {name!r}",
                "format strings can read attributes and items of their arguments; use an f-string",
            )
        allowed = _STR_METHODS | _DICT_METHODS | _SEQ_METHODS
        if name not in allowed:
            raise self.refuse(
                func,
                f"method call {name!r}",
                "only these methods of builtin values may be called: " + ", ".join(sorted(allowed)),
            )
        if node.keywords:
            raise self.refuse(
                node, f"keywords in a call of {name!r}", "pass method arguments by position"
            )
        obj_fn = self.c(func.value, depth)
        args = [self.c(a, depth) for a in node.args]

        def call_method(lv: Any, gv: Any, s: list[Any]) -> Any:
            obj = obj_fn(lv, gv, s)
            if type(obj) is Redacted:
                raise ExpressionError(f"method {name!r} of a redacted value is refused")
            return _call_method(obj, name, [a(lv, gv, s) for a in args], s)

        return call_method


# -- public API -------------------------------------------------------------------------------


def _parse(source: str) -> ast.Expression:
    if type(source) is not str:
        raise ExpressionError(f"expression must be a str, got {typename(source)!r}")
    if len(source) > MAX_SOURCE:
        raise ExpressionError(
            f"expression of {len(source)} characters is refused (limit {MAX_SOURCE})"
        )
    if not source.strip():
        raise ExpressionError("expression is empty")
    try:
        # The parser warns about odd literals (SyntaxWarning/DeprecationWarning); under a host's
        # "error" warning filter that would escape as a non-ExpressionError. Placement time
        # only, so swapping the process filters for the duration is acceptable.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(
            f"expression {source!r} is not valid Python at column {exc.offset}: {exc.msg}"
        ) from None
    except (RecursionError, MemoryError, ValueError) as exc:
        raise ExpressionError(
            f"expression {source[:80]!r} could not be parsed: {type(exc).__name__}"
        ) from None
    return tree


class Expression:
    """A compiled, validated expression; :meth:`evaluate` runs it within budgets.

    ``slots`` name values given to :meth:`evaluate` with ``values=`` rather than found in the
    locals: the probe's value (``result`` at ``@return``, ``exception`` at ``@exception``) and
    arguments the sensor's injected code passes in. A slot given no value (``NO_VALUE``) reads
    its name from the locals. So the locals can be the frame's own mapping, read in place, or
    not needed at all (:mod:`sensor.hotpath` reads ``_fn``, ``_red``, ``_version`` and
    ``_table`` to run an evaluation inline, exactly as :meth:`evaluate` does).
    """

    __slots__ = (
        "_compiled",
        "_fn",
        "_red",
        "_table",
        "_tree",
        "_version",
        "max_seconds",
        "max_steps",
        "names",
        "slots",
        "source",
    )

    def __init__(
        self,
        source: str,
        *,
        max_steps: int = DEFAULT_MAX_STEPS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
        slots: tuple[str, ...] = (),
    ) -> None:
        self.source = source
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self.slots = tuple(slots)
        self._tree = _parse(source)
        red = _redaction.get_redactor()
        comp = _Compiler(source, red, self.slots)
        self._fn = comp.c(self._tree.body)
        self._red = red
        self._version = red.version
        # The redactor's verdicts on short strings at this rule version (rule R2's cache),
        # handed to every evaluation so that the first string read does not look it up.
        self._table = verdict_table(red)
        # The four together, replaced by one assignment: what a reader on another thread (the
        # hot path, sensor.hotpath) copies while a rebuild runs is one consistent build.
        self._compiled = (self._fn, red, self._version, self._table)
        #: The free names the expression reads (not comprehension variables).
        self.names: frozenset[str] = frozenset(comp.names)

    def _rebuild(self, red: _redaction.Redactor) -> None:
        # Rules changed: secret names are decided when closures are built, so build again.
        comp = _Compiler(self.source, red, self.slots)
        fn = comp.c(self._tree.body)
        version = red.version
        table = verdict_table(red)
        self._fn = fn
        self._red = red
        self._version = version
        self._table = table
        self._compiled = (fn, red, version, table)

    def evaluate(
        self,
        locals: Mapping[str, object],
        globals: Mapping[str, object] | None = None,
        *,
        values: tuple[object, ...] = (),
    ) -> Any:
        """The value, or ExpressionError when refused at run time or over budget.

        ``values`` fill the slots in order (``NO_VALUE`` or absent: read from the locals).
        """
        red = _redaction._default
        if red is not self._red or red.version != self._version:
            red = red or _redaction.get_redactor()
            if red is not self._red or red.version != self._version:
                self._rebuild(red)
        steps = self.max_steps
        s = [steps, steps, 0.0, None, self.max_seconds, red, None, self._table, *values]
        s += [NO_VALUE] * (len(self.slots) - len(values))
        # The host's decimal context as found (see sensor.expressions.decimal_context): its
        # flags put back after, whatever Decimal operation ran, raised or not.
        ctx = _dec_current(None)
        if ctx is not None:
            flags = ctx.flags
            seen = _DEC_SEEN[0]
            if flags != seen[0]:
                seen = _dec_remember(flags)
        try:
            result = self._fn(locals, globals, s)
            if type(result) is _Lazy:
                result = _materialize(result, s)
        except Exception as exc:
            raise self.failed(exc) from None
        finally:
            if ctx is None:
                if _dec_current(None) is not None:
                    _dec_restore_new()
            elif flags != seen[0]:
                _dec_restore(ctx, seen)
        return result

    def failed(self, exc: BaseException) -> ExpressionError:
        """The error :meth:`evaluate` raises for ``exc`` raised while evaluating."""
        if isinstance(exc, ExpressionError):
            return ExpressionError(f"expression {self.source!r}: {exc}")
        if isinstance(exc, RecursionError):
            return ExpressionError(f"expression {self.source!r}: nested too deeply")
        # R5: a builtin operation failed; its own message may quote the value.
        return ExpressionError(f"expression {self.source!r} failed: {failure(exc)}")

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def compile(
    source: str,
    *,
    max_steps: int = DEFAULT_MAX_STEPS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    slots: tuple[str, ...] = (),
) -> Expression:
    """Parse and validate ``source``; raises ExpressionError naming the refused construct."""
    return Expression(source, max_steps=max_steps, max_seconds=max_seconds, slots=slots)
