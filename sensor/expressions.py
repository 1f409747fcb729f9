"""The sandboxed expression language of probes: conditions, captures, expectations, log templates.

An expression is a subset of Python (see docs/reference/expressions.md). :func:`compile` parses
it with :mod:`ast`, refuses every construct outside a whitelist (naming the construct, its
column and why), and turns the tree into a tree of Python closures once. Evaluation runs those
closures; user text is never passed to :func:`eval`.

Read-only and inert by construction:

* no assignment, import, lambda, ``await``/``yield``, starred arguments, and no name or attribute
  that starts with ``_``;
* attribute reads come from the instance ``__dict__`` (through the real ``__dict__`` descriptor
  of the type, never the object's ``__getattribute__``), genuine ``__slots__``, or plain class
  data; properties, other descriptors and ``__getattr__`` are never run;
* comparisons, ``in``, hashing, arithmetic, truthiness, ``len`` and iteration apply to builtin
  values only, decided from the type's MRO (read through :class:`type`'s own descriptors, so a
  metaclass cannot intercept), so no user ``__eq__``/``__hash__``/``__bool__``/``__len__``/
  ``__iter__``/``__format__``/``__repr__`` runs; a user object is formatted as ``<TypeName>``;
* calls go to an allow-list of pure builtins implemented here, plus a few methods of ``str``,
  ``dict``, ``list`` and ``tuple``;
* bounded: a step budget and a wall-time budget checked while it runs, and size checks that
  refuse large intermediates (``'x' * 10**9``, ``2 ** 10**8``, ``range(10**12)``) before they
  are built;
* a name, attribute or dict key that the :mod:`sensor.redaction` rules call secret reads as a
  :class:`Redacted` marker instead of its value.

The module imports the standard library only: it runs inside production services.
"""

from __future__ import annotations

import ast
import collections
import datetime as _dt
import decimal
import enum
import itertools
import operator
import os
import re
import time
import types
import warnings
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Final

from sensor import redaction as _redaction
from sensor.errors import ExpressionError

__all__ = [
    "ALLOWED_FUNCTIONS",
    "DEFAULT_MAX_SECONDS",
    "DEFAULT_MAX_STEPS",
    "Expression",
    "Redacted",
    "Template",
    "compile",
    "compile_template",
    "safe_format",
]

# -- limits ---------------------------------------------------------------------------------

DEFAULT_MAX_STEPS: Final = 10_000  #: operations per evaluation (loop items, elements visited)
DEFAULT_MAX_SECONDS: Final = 0.010  #: wall time per evaluation, checked while it runs
MAX_SOURCE: Final = 2_000  #: characters in one expression
MAX_NODES: Final = 500  #: syntax tree nodes in one expression
MAX_DEPTH: Final = 40  #: nesting depth of the syntax tree
MAX_STR: Final = 100_000  #: characters (or bytes) of a string an expression may build
MAX_ITEMS: Final = 100_000  #: items of a list/tuple/range an expression may build
MAX_INT_BITS: Final = 65_536  #: bits of an int an expression may build or compute with
MAX_VALUE_DEPTH: Final = 16  #: nesting of a value compared, hashed or formatted element-wise
MAX_TEMPLATE: Final = 8_000  #: characters in one log template
MAX_MESSAGE: Final = 4_096  #: characters of one rendered log message
MAX_FIELD: Final = 1_024  #: characters one template field renders at most
MAX_FIELDS: Final = 32  #: fields in one log template

# Closures take (locals, globals, state) and return the value; values are untyped by nature.
Fn = Callable[[Any, Any, list[Any]], Any]

# The evaluation state is a small list, the cheapest mutable record to create per evaluation:
# [steps left, steps left at the next clock check, deadline (0.0 = clock not started),
#  comprehension variables (dict or None), wall-time budget]
_S_STEPS, _S_NEXT, _S_DEADLINE, _S_VARS, _S_SECONDS = range(5)
_CLOCK_EVERY = 128


def _budget_slow(s: list[Any]) -> None:
    if s[_S_STEPS] < 0:
        raise ExpressionError("step budget exhausted: the expression does too much work")
    now = time.perf_counter()
    if s[_S_DEADLINE] == 0.0:
        s[_S_DEADLINE] = now + s[_S_SECONDS]
    elif now > s[_S_DEADLINE]:
        raise ExpressionError(
            f"time budget of {s[_S_SECONDS] * 1000:g} ms exhausted while the expression ran"
        )
    s[_S_NEXT] = s[_S_STEPS] - _CLOCK_EVERY


def _charge(s: list[Any], n: int = 1) -> None:
    left = s[_S_STEPS] - n
    s[_S_STEPS] = left
    if left < s[_S_NEXT]:
        _budget_slow(s)


# -- safe introspection of types --------------------------------------------------------------
# Every question about a type goes through `type`'s own descriptors, so that a metaclass that
# defines __mro__, __dict__, __flags__ or __name__ as a property is never consulted. Sets of
# types are keyed by id(): `t in {int, str}` would hash t, and a metaclass may define __hash__.

_T_MRO = type.__dict__["__mro__"].__get__
_T_DICT = type.__dict__["__dict__"].__get__
_T_FLAGS = type.__dict__["__flags__"].__get__
_T_NAME = type.__dict__["__name__"].__get__
_T_QUALNAME = type.__dict__["__qualname__"].__get__
_T_MODULE = type.__dict__["__module__"].__get__
_HEAPTYPE = 1 << 9
_NoneType = type(None)
_MISSING: Any = object()


def _ids(*types_: type) -> frozenset[int]:
    return frozenset(id(t) for t in types_)


_SCALAR_IDS = _ids(int, float, complex, str, bytes, bool, _NoneType)
_NUMBER_IDS = _ids(int, float, complex, bool)
_INTLIKE_IDS = _ids(int, bool)

# Kinds of value, decided from the type. SCALAR: C-implemented, compares and hashes without
# calling back into Python. TZ: datetime/time, safe when tzinfo is a C timezone. SEQ/MAP/SET:
# builtin containers, safe when their elements are. IDENT: object's identity comparison/hash.
K_BAD, K_SCALAR, K_TZ, K_SEQ, K_MAP, K_SET, K_IDENT = range(7)

_STATIC_KIND: dict[int, tuple[int, Any]] = {}
_t: Any
for _t in (int, float, complex, str, bytes, bool, _NoneType, decimal.Decimal, _dt.date,
           _dt.timedelta, _dt.timezone, range, type):  # fmt: skip
    _STATIC_KIND[id(_t)] = (K_SCALAR, _t)
for _t in (_dt.datetime, _dt.time):
    _STATIC_KIND[id(_t)] = (K_TZ, _t)
for _t in (list, tuple, collections.deque):
    _STATIC_KIND[id(_t)] = (K_SEQ, _t)
for _t in (dict, collections.OrderedDict, collections.defaultdict):
    _STATIC_KIND[id(_t)] = (K_MAP, _t)
for _t in (set, frozenset):
    _STATIC_KIND[id(_t)] = (K_SET, _t)
for _t in (type({}.keys()), type({}.values()), type({}.items())):
    _STATIC_KIND[id(_t)] = (K_SET, _t)
_STATIC_KIND[id(object)] = (K_IDENT, object)

_CMP_DUNDERS = frozenset(("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__hash__"))
_TRUTH_DUNDERS = frozenset(("__bool__", "__len__"))
# Enum.__hash__ (trusted) reads self._name_: a subclass hooking attribute access voids the trust.
_ATTR_HOOKS = frozenset(("__getattribute__", "__getattr__", "_name_"))
_LEN_DUNDERS = frozenset(("__len__",))
_ITER_DUNDERS = frozenset(("__iter__",))
_GETITEM_DUNDERS = frozenset(("__getitem__",))
_CONTAINS_DUNDERS = frozenset(("__contains__", "__eq__", "__hash__"))
# Dunders defined in Python by the standard library that are known pure (Enum.__hash__ hashes
# the member name); keyed by id of the class that defines them.
_TRUSTED_DUNDERS: dict[int, frozenset[str]] = {
    id(enum.Enum): frozenset(("__hash__",)),
}
_SAFE_TZ_IDS = _ids(_dt.timezone, _NoneType)
try:  # zoneinfo's ZoneInfo is implemented in C; a user tzinfo subclass is Python code.
    import zoneinfo as _zoneinfo

    _SAFE_TZ_IDS = _SAFE_TZ_IDS | _ids(_zoneinfo.ZoneInfo)
except ImportError:  # pragma: no cover - zoneinfo is in every supported Python
    pass
_DATETIME_TZINFO = _dt.datetime.__dict__["tzinfo"].__get__
_TIME_TZINFO = _dt.time.__dict__["tzinfo"].__get__


def _is_heap(t: type) -> bool:
    return bool(_T_FLAGS(t) & _HEAPTYPE)


def _kind(t: type, dunders: frozenset[str] = _CMP_DUNDERS) -> tuple[int, Any]:
    """(kind, base) for values of type ``t``: which C implementation answers ``dunders``."""
    k = _STATIC_KIND.get(id(t))
    if k is not None:
        return k
    info = _info(t)
    hooked = False  # a class above defines attribute hooks that trusted Python code would hit
    for c, cd in zip(info.mro, info.dicts, strict=True):
        k = _STATIC_KIND.get(id(c))
        if k is not None:
            return k
        defined = cd.keys() & dunders
        if defined:
            trusted = _TRUSTED_DUNDERS.get(id(c))
            if trusted is None or not defined <= trusted or hooked:
                return (K_BAD, c)
        if not hooked and not cd.keys().isdisjoint(_ATTR_HOOKS):
            hooked = True
    return (K_BAD, t)  # pragma: no cover - every MRO ends with object


def typename(value: object) -> str:
    """``type(value).__name__``, read without running any code of the value or its metaclass."""
    name = _T_NAME(type(value))
    return name if type(name) is str else "?"


def _qualname(t: type) -> str:
    try:
        mod = _T_MODULE(t)
        qual = _T_QUALNAME(t)
    except Exception:
        return "?"
    if type(qual) is not str:
        return "?"
    if type(mod) is not str or mod == "builtins":
        return qual
    return f"{mod}.{qual}"


# -- the redacted marker ----------------------------------------------------------------------


class Redacted:
    """What a secret name, attribute or dict key reads as inside an expression.

    It compares by identity only (so ``password == "x"`` is False and ordering is refused), is
    truthy, renders as ``<redacted>`` and keeps the type name and length class of the value it
    hides, so that shapes still compare. :meth:`to_json` is the capture encoding.
    """

    __slots__ = ("length", "reason", "type_name")

    def __init__(self, value: Any, reason: str = "name") -> None:
        t = type(value)
        self.type_name = _qualname(t)
        n: int | None = None
        if id(t) in _SCALAR_IDS and t is not int and t is not float and t is not bool:
            n = len(value) if t is str or t is bytes else None
        elif _STATIC_KIND.get(id(t), (K_BAD,))[0] in (K_SEQ, K_MAP, K_SET):
            n = len(value)
        self.length = _redaction.length_class(n) if n is not None else None
        self.reason = reason

    def to_json(self) -> dict[str, object]:
        """The typed-JSON form (``{"@t": ..., "@redacted": ..., "@len": ...}``)."""
        out: dict[str, object] = {"@t": self.type_name, "@redacted": self.reason}
        if self.length is not None:
            out["@len"] = self.length
        return out

    def __repr__(self) -> str:
        return "<redacted>"


_STATIC_KIND[id(Redacted)] = (K_IDENT, Redacted)


def _redact(value: object, reason: str = "name") -> Any:
    # None is not a secret, and keeping it lets `token is None` work.
    return None if value is None else Redacted(value, reason)


class _Lazy:
    """A generator expression or enumerate/zip/reversed result: iterated only by our code."""

    __slots__ = ("gen",)

    def __init__(self, gen: Iterator[object]) -> None:
        self.gen = gen


# -- value checks -----------------------------------------------------------------------------


def _refuse_value(what: str, value: object, why: str) -> ExpressionError:
    return ExpressionError(f"{what} on a value of type {typename(value)!r} is refused: {why}")


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
        items = base.__iter__(v)
        n = base.__len__(v)
        _charge(s, n)
        for item in items:
            if id(type(item)) not in _SCALAR_IDS:
                _check_cmp(item, s, depth + 1)
        return
    if kind == K_MAP:
        _charge(s, dict.__len__(v))
        for key, item in dict.items(v):
            if id(type(key)) not in _SCALAR_IDS:
                _check_cmp(key, s, depth + 1)
            if id(type(item)) not in _SCALAR_IDS:
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
    """Iterate a builtin container (or one of our lazy sequences), charging one step per item."""
    t = type(v)
    if t is _Lazy:
        it: Iterator[object] = v.gen
    elif t is str or t is list or t is tuple or t is bytes or _is_view(t):
        it = iter(v)
    else:
        kind, base = _kind(t, _ITER_DUNDERS)
        if kind == K_MAP:
            it = iter(dict.keys(v))
        elif kind in (K_SEQ, K_SET) or base is str or base is bytes:
            it = base.__iter__(v)
            if base is tuple:
                hidden = _secret_fields(t)
                if hidden:
                    it = (_redact(x) if i in hidden else x for i, x in enumerate(it))
        else:
            raise _refuse_value("iteration", v, "only builtin strings and containers are iterated")
    for item in it:
        left = s[_S_STEPS] - 1
        s[_S_STEPS] = left
        if left < s[_S_NEXT]:
            _budget_slow(s)
        yield item


def _secret_fields(t: type) -> frozenset[int]:
    """Positions of a namedtuple's fields whose names the redactor calls secret."""
    fields = _info(t).dicts[0].get("_fields")
    if type(fields) is not tuple:
        return frozenset()
    red = _redaction._default or _redaction.get_redactor()
    return frozenset(i for i, f in enumerate(fields) if type(f) is str and red.is_secret_name(f))


def _materialize(v: Any, s: list[Any]) -> list[Any]:
    out: list[Any] = []
    for item in _iterate(v, s):
        out.append(item)
        if len(out) > MAX_ITEMS:
            raise ExpressionError(f"a sequence of more than {MAX_ITEMS} items is refused")
    return out


# -- attributes -------------------------------------------------------------------------------

_DATE_ATTRS = frozenset(("year", "month", "day"))
_TIME_ATTRS = frozenset(("hour", "minute", "second", "microsecond", "fold"))
_BUILTIN_ATTRS: dict[int, frozenset[str]] = {
    id(int): frozenset(("real", "imag", "numerator", "denominator")),
    id(bool): frozenset(("real", "imag", "numerator", "denominator")),
    id(float): frozenset(("real", "imag")),
    id(complex): frozenset(("real", "imag")),
    id(_dt.date): _DATE_ATTRS,
    id(_dt.datetime): _DATE_ATTRS | _TIME_ATTRS,
    id(_dt.time): _TIME_ATTRS,
    id(_dt.timedelta): frozenset(("days", "seconds", "microseconds")),
    id(range): frozenset(("start", "stop", "step")),
    id(slice): frozenset(("start", "stop", "step")),
}
_GETSET = types.GetSetDescriptorType
_MEMBER = types.MemberDescriptorType
_MODULE_DICT: Any = types.ModuleType.__dict__["__dict__"].__get__  # type: ignore[index]
_EXC_ARGS = BaseException.__dict__["args"].__get__
_ENUM_ID = id(enum.Enum)
_ENVIRON_TYPE = type(os.environ)
_NAMESPACE = types.SimpleNamespace  # a C type whose attributes are its instance __dict__
_TUPLEGETTER = type(collections.namedtuple("_P", "x").__dict__["x"])
_DESCRIPTOR_DUNDERS = frozenset(("__get__", "__set__", "__delete__"))
_DATA_DESCRIPTOR_DUNDERS = frozenset(("__set__", "__delete__"))
_GET_DUNDERS = frozenset(("__get__",))


def _has_in_mro(t: type, names: frozenset[str]) -> bool:
    for d in _info(t).dicts:  # noqa: SIM110 - a plain loop is faster than any() here
        if not d.keys().isdisjoint(names):
            return True
    return False


def _instance_dict(obj: Any, t: type, info: _TypeInfo | None = None) -> dict[str, Any] | None:
    """The instance __dict__ read through the type's genuine ``__dict__`` getset descriptor."""
    descr = (info or _info(t)).dict_descr
    if descr is None:
        return None
    if type(descr) is not _GETSET and type(descr) is not _MEMBER:
        raise _refuse_value("attribute read", obj, "its class replaces __dict__ with Python code")
    value = descr.__get__(obj, t)
    return value if type(value) is dict else None


class _TypeInfo:
    """Facts about a type that cannot change while its MRO stays the same object."""

    __slots__ = (
        "dict_descr",
        "dicts",
        "heap",
        "is_class",
        "is_enum",
        "is_exc",
        "mro",
        "plain",
        "ref",
    )

    def __init__(self, t: type) -> None:
        self.ref = weakref.ref(t)
        self.mro = _T_MRO(t)
        # Live read-only views of the class dicts: they see later changes to the classes.
        self.dicts = tuple(_T_DICT(c) for c in self.mro)
        self.heap = _is_heap(t)
        self.is_class = any(c is type for c in self.mro)
        self.is_exc = any(c is BaseException for c in self.mro)
        self.is_enum = any(id(c) == _ENUM_ID for c in self.mro)
        self.dict_descr: Any = None
        for d in self.dicts:
            if "__dict__" in d:
                self.dict_descr = d["__dict__"]
                break
        # An instance whose __dict__ is the genuine getset (it cannot be replaced later:
        # `type.__dict__` is read-only) and which is not itself a class.
        self.plain = self.heap and not self.is_class and type(self.dict_descr) is _GETSET


_TYPE_INFO: dict[int, _TypeInfo] = {}
_TYPE_INFO_MAX = 2048


def _info(t: type) -> _TypeInfo:
    """Cached by id(t), checked against a weak reference and the MRO tuple's identity
    (assigning ``__bases__`` makes a new MRO tuple). Bounded: cleared when full."""
    info = _TYPE_INFO.get(id(t))
    if info is not None and info.ref() is t and _T_MRO(t) is info.mro:
        return info
    info = _TypeInfo(t)
    if len(_TYPE_INFO) >= _TYPE_INFO_MAX:
        _TYPE_INFO.clear()
    _TYPE_INFO[id(t)] = info
    return info


def _site_entry(t: type, name: str) -> tuple[Any, tuple[Any, ...], Any] | None:
    """The fast-path entry for reading `name` on instances of `t`, or None if not plain."""
    info = _TYPE_INFO.get(id(t))
    if info is None or not info.plain or info.ref() is not t:
        return None
    heap_dicts = []
    for c, cd in zip(info.mro, info.dicts, strict=True):
        if _is_heap(c):
            heap_dicts.append(cd)
        elif name in cd:
            return None  # a builtin base defines it: always the careful path
    return (t, tuple(heap_dicts), info.dict_descr.__get__)


def _getattr(obj: Any, name: str, s: list[Any]) -> Any:
    t = type(obj)
    # Fast path: an instance of an application class whose attribute lives in its __dict__
    # and nowhere on the class (where a property or other descriptor would take precedence).
    info = _TYPE_INFO.get(id(t))
    if info is not None and info.plain and info.ref() is t and _T_MRO(t) is info.mro:
        for cd in info.dicts:
            if name in cd:
                break
        else:
            d = info.dict_descr.__get__(obj, t)
            if type(d) is dict:
                value = d.get(name, _MISSING)
                if value is not _MISSING:
                    return value
    return _getattr_slow(obj, name, s)


def _getattr_slow(obj: Any, name: str, s: list[Any]) -> Any:
    t = type(obj)
    allowed = _BUILTIN_ATTRS.get(id(t))
    if allowed is not None:
        if name in allowed:
            return getattr(obj, name)  # C getters of immutable builtin values
        raise _refuse_value(f"attribute {name!r}", obj, "not one of the readable attributes")
    if t is types.ModuleType:
        d = _MODULE_DICT(obj)
        value = d.get(name, _MISSING) if type(d) is dict else _MISSING
        if value is _MISSING:
            raise ExpressionError(f"module has no attribute {name!r}")
        if type(value) is _ENVIRON_TYPE:
            raise ExpressionError(
                f"module attribute {name!r} is refused: the process environment holds secrets"
            )
        return value
    info = _info(t)
    if not info.heap and id(t) not in _STATIC_KIND and not info.is_exc and t is not _NAMESPACE:
        # A C type (frame, code, generator, function, ...): its attributes are getset
        # descriptors that reach frames, globals and code: never read them.
        raise _refuse_value(
            f"attribute {name!r}", obj, "attributes of this builtin type are not readable"
        )
    # Values with a documented read-only view that is not plain data.
    if name == "args" and info.is_exc:
        return _EXC_ARGS(obj)
    if info.is_enum and (name == "name" or name == "value"):
        d = _instance_dict(obj, t, info)
        if d is not None:
            return d.get("_name_" if name == "name" else "_value_")
    # Class attributes first: a data descriptor there (property, slot) wins over the instance.
    cls_value: object = _MISSING
    for cd in info.dicts:
        if name in cd:
            cls_value = cd[name]
            break
    non_data = False
    if cls_value is not _MISSING:
        ct = type(cls_value)
        if ct is _MEMBER or ct is _TUPLEGETTER:
            # A genuine __slots__ slot or namedtuple field: C code reads a struct field.
            return cls_value.__get__(obj, t)  # type: ignore[attr-defined]
        if _has_in_mro(ct, _DATA_DESCRIPTOR_DUNDERS):
            raise _refuse_value(
                f"attribute {name!r}",
                obj,
                "it is a property or other data descriptor; reading it would run code",
            )
        non_data = _has_in_mro(ct, _GET_DUNDERS)
    if info.is_class:
        return _class_attr(obj, name)
    d = _instance_dict(obj, t, info)
    if d is not None:
        value = d.get(name, _MISSING)
        if value is not _MISSING:
            return value
    if cls_value is not _MISSING:
        if non_data:
            raise _refuse_value(
                f"attribute {name!r}",
                obj,
                "it is a method or descriptor; reading it would run code",
            )
        return cls_value
    raise ExpressionError(f"object of type {typename(obj)!r} has no attribute {name!r}")


def _is_type_type(t: type) -> bool:
    return _info(t).is_class


def _class_attr(cls: Any, name: str) -> Any:
    """Plain data stored on a class (constants, enum members), never a descriptor."""
    for c in _T_MRO(cls):
        d = _T_DICT(c)
        if name in d:
            value = d[name]
            if _has_in_mro(type(value), _DESCRIPTOR_DUNDERS):
                raise ExpressionError(
                    f"class attribute {name!r} is a method or descriptor; reading it would run code"
                )
            return value
    raise ExpressionError(f"class {_qualname(cls)!r} has no attribute {name!r}")


# -- subscripts and `in` ----------------------------------------------------------------------


def _getitem(obj: Any, key: Any, s: list[Any], red: _redaction.Redactor) -> Any:
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
            raise ExpressionError(f"key {_short(key)} is not in the dict")
        if tk is str and red.is_secret_name(key):
            return _redact(value)
        return value
    if kind == K_SEQ or base is str or base is bytes or base is range:
        if base is tuple and t is not tuple:
            hidden = _secret_fields(t)
            if hidden:
                # A namedtuple read by position still hides its secret fields.
                obj = tuple(
                    _redact(x) if i in hidden else x for i, x in enumerate(tuple.__iter__(obj))
                )
        if tk is int or tk is bool:
            return base.__getitem__(obj, key)
        if tk is slice:
            n = len(range(base.__len__(obj))[key])
            if n > MAX_ITEMS:
                raise ExpressionError(f"a slice of {n} items is refused (limit {MAX_ITEMS})")
            _charge(s, n >> 4)
            if base is collections.deque:
                raise _refuse_value("slicing", obj, "deques cannot be sliced")
            return base.__getitem__(obj, key)
        raise ExpressionError(
            f"index of type {typename(key)!r} is refused: expected an int or a slice"
        )
    raise _refuse_value(
        "subscript", obj, "only builtin strings, sequences and dicts can be indexed"
    )


def _contains(item: Any, container: Any, s: list[Any]) -> bool:
    t = type(container)
    ti = type(item)
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
_SEQ_ARITH_IDS = _ids(str, bytes, list, tuple)
_TEMPORAL_IDS = _ids(_dt.date, _dt.datetime, _dt.timedelta)


def _int_bits(v: Any) -> int:
    t = type(v)
    return v.bit_length() if t is int else 1


def _check_number(v: Any) -> None:
    if type(v) is int and v.bit_length() > MAX_INT_BITS:
        raise ExpressionError(f"an int of {v.bit_length()} bits is refused (limit {MAX_INT_BITS})")


def _arith(op: str, a: Any, b: Any) -> Any:
    ta, tb = type(a), type(b)
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
        return _OPS[op](a, b)  # elements are already hashed; no comparisons of new pairs
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
    if type(a) is Redacted or type(b) is Redacted:
        if op == "==" or op == "!=":
            return (a is b) == (op == "==")
        raise ExpressionError(f"'{op}' with a redacted value is refused")
    if id(type(a)) not in _SCALAR_IDS:
        _check_cmp(a, s)
    if id(type(b)) not in _SCALAR_IDS:
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
        return "<redacted>"
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
        parts = [safe_format(x, conversion=ord("r"), red=red, depth=depth + 1) for x in items[:20]]
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
                if type(k) is str and red.is_secret_name(k)
                else safe_format(v, conversion=ord("r"), red=red, depth=depth + 1)
            )
            parts.append(
                f"{safe_format(k, conversion=ord('r'), red=red, depth=depth + 1)}: {shown}"
            )
        return "{" + ", ".join(parts) + "}"
    return f"<{_qualname(t)}>"


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
    if type(args[0]) is Redacted:
        raise ExpressionError("len() of a redacted value is refused")
    return _len(args[0])


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
        return round(args[0])
    if type(ndigits) is not int or abs(ndigits) > 1000:
        raise ExpressionError(f"round() ndigits must be an int within ±1000, got {_short(ndigits)}")
    return round(args[0], ndigits)


def _items(fn: str, args: list[Any], s: list[Any]) -> list[Any]:
    items = _materialize(args[0], s) if len(args) == 1 else list(args)
    for item in items:
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
    return safe_format(args[0])


def _b_repr(args: list[Any], s: list[Any]) -> Any:
    return safe_format(args[0], conversion=ord("r"))


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
        return int(v, args[1])
    if t is int or t is bool or t is float or t is decimal.Decimal:
        return int(v)
    if t is str or t is bytes:
        if len(v) > 4300:
            raise ExpressionError("int() of a string above 4300 characters is refused")
        return int(v)
    raise ExpressionError(
        f"int() of a value of type {typename(v)!r} is refused: builtin values only"
    )


def _b_float(args: list[Any], s: list[Any]) -> Any:
    if not args:
        return 0.0
    v = args[0]
    t = type(v)
    if id(t) in _INTLIKE_IDS or t is float or t is decimal.Decimal:
        _check_number(v)
        return float(v)
    if t is str or t is bytes:
        if len(v) > 1000:
            raise ExpressionError("float() of a string above 1000 characters is refused")
        return float(v)
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

# Methods of builtin values: name -> (receiver types, min args, max args).
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


def _call_method(
    obj: Any, name: str, args: list[Any], s: list[Any], red: _redaction.Redactor
) -> Any:
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
            return obj.join(parts)
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
        return getattr(obj, name)(*args)
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
            if type(key) is str and red.is_secret_name(key):
                return _redact(value)
            return value
        if args:
            raise ExpressionError(f"{name}() takes no arguments")
        if name == "keys":
            return dict.keys(obj)
        # values and items go through the redactor: a secret key hides its value.
        _charge(s, dict.__len__(obj))
        pairs = [
            (k, _redact(v) if type(k) is str and red.is_secret_name(k) else v)
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
        return getattr(obj, name)(args[0])
    raise _refuse_value(
        f"method call {name!r}",
        obj,
        "methods are callable on builtin str, bytes, dict, list and tuple values only",
    )


def _short(v: object) -> str:
    text = safe_format(v, conversion=ord("r"))
    return text if len(text) <= 60 else text[:57] + "..."


# -- the compiler -----------------------------------------------------------------------------


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
            return _compare(">", a, k, s)

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
            return _compare("<", a, k, s)

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
        return _compare(op, a, k, s)

    return cmp


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
    def __init__(self, source: str, red: _redaction.Redactor) -> None:
        self.source = source
        self.red = red
        self.scopes: list[set[str]] = []
        self.names: set[str] = set()
        self.plain_names: dict[int, str] = {}
        self.nodes = 0

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

        def load(lv: Mapping[str, object], gv: Mapping[str, object] | None, s: Any) -> Any:
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
                return _redact(load(lv, gv, s))

            return load_secret
        # Parents that read a plain name inline the locals lookup (one call less per name).
        self.plain_names[id(load)] = name
        return load

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
                            return _redact(v) if secret else v
            elif t is Redacted:
                raise ExpressionError(f"attribute {name!r} of a redacted value is refused")
            v = _getattr(obj, name, s)
            if t is not entry[0]:
                fresh = _site_entry(t, name)
                if fresh is not None:
                    site = fresh
            return _redact(v) if secret else v

        return attr

    def c_Subscript(self, node: ast.Subscript, depth: int) -> Fn:
        if not isinstance(node.ctx, ast.Load):
            raise self.refuse(node, "assignment to an item", "expressions are read-only")
        value = self.c(node.value, depth)
        key = self.c(node.slice, depth)
        red = self.red

        def subscript(lv: Any, gv: Any, s: list[Any]) -> Any:
            obj = value(lv, gv, s)
            if type(obj) is Redacted:
                raise ExpressionError("subscript of a redacted value is refused")
            return _getitem(obj, key(lv, gv, s), s, red)

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
            return _arith(op, a, b)

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
                    return _cmp_name_const(op, nm, left, k)
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

            return cmp1
        pairs = list(zip(ops, rights, strict=True))

        def compare(lv: Any, gv: Any, s: list[Any]) -> Any:
            a = left(lv, gv, s)
            for op, fn in pairs:
                b = fn(lv, gv, s)
                if not _compare(op, a, b, s):
                    return False
                a = b
            return True

        return compare

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
            return "".join(out)

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
        gens: list[tuple[Callable[[dict[str, object], object], None], Fn, list[Fn]]] = []
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
                binder(vars_, item)
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

    def _binder(self, target: ast.expr) -> Callable[[dict[str, object], object], None]:
        if isinstance(target, ast.Name):
            name = target.id

            def bind(vars_: dict[str, object], item: object) -> None:
                vars_[name] = item

            return bind
        assert isinstance(target, ast.Tuple | ast.List)
        subs = [self._binder(e) for e in target.elts]
        n = len(subs)

        def bind_tuple(vars_: dict[str, object], item: Any) -> None:
            t = type(item)
            if t is not tuple and t is not list:
                raise ExpressionError(
                    f"cannot unpack a value of type {typename(item)!r}: "
                    "builtin tuples and lists only"
                )
            if len(item) != n:
                raise ExpressionError(f"cannot unpack {len(item)} items into {n} names")
            for b, v in zip(subs, item, strict=True):
                b(vars_, v)

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
                    if t is list or t is str or t is dict or t is tuple:
                        return len(v)
                    return _b_len([v], s)

                return call_len_name

            def call_len(lv: Any, gv: Any, s: list[Any]) -> Any:
                v = arg0(lv, gv, s)
                t = type(v)
                if t is list or t is str or t is dict or t is tuple:
                    return len(v)
                return _b_len([v], s)

            return call_len

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
        red = self.red

        def call_method(lv: Any, gv: Any, s: list[Any]) -> Any:
            obj = obj_fn(lv, gv, s)
            if type(obj) is Redacted:
                raise ExpressionError(f"method {name!r} of a redacted value is refused")
            return _call_method(obj, name, [a(lv, gv, s) for a in args], s, red)

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
    """A compiled, validated expression; :meth:`evaluate` runs it within budgets."""

    __slots__ = ("_fn", "_red", "_tree", "_version", "max_seconds", "max_steps", "names", "source")

    def __init__(
        self,
        source: str,
        *,
        max_steps: int = DEFAULT_MAX_STEPS,
        max_seconds: float = DEFAULT_MAX_SECONDS,
    ) -> None:
        self.source = source
        self.max_steps = max_steps
        self.max_seconds = max_seconds
        self._tree = _parse(source)
        red = _redaction.get_redactor()
        comp = _Compiler(source, red)
        self._fn = comp.c(self._tree.body)
        self._red = red
        self._version = red.version
        #: The free names the expression reads (not comprehension variables).
        self.names: frozenset[str] = frozenset(comp.names)

    def _rebuild(self, red: _redaction.Redactor) -> None:
        # Rules changed: secret names are decided when closures are built, so build again.
        comp = _Compiler(self.source, red)
        self._fn = comp.c(self._tree.body)
        self._red = red
        self._version = red.version

    def evaluate(
        self, locals: Mapping[str, object], globals: Mapping[str, object] | None = None
    ) -> Any:
        """The value, or ExpressionError when refused at run time or over budget."""
        red = _redaction._default
        if red is not self._red or red.version != self._version:
            red = red or _redaction.get_redactor()
            if red is not self._red or red.version != self._version:
                self._rebuild(red)
        steps = self.max_steps
        s = [steps, steps, 0.0, None, self.max_seconds]
        try:
            value = self._fn(locals, globals, s)
            if type(value) is _Lazy:
                value = _materialize(value, s)
        except ExpressionError as exc:
            raise ExpressionError(f"expression {self.source!r}: {exc}") from None
        except RecursionError:
            raise ExpressionError(f"expression {self.source!r}: nested too deeply") from None
        except Exception as exc:
            raise ExpressionError(
                f"expression {self.source!r} failed: {type(exc).__name__}: {_exc_text(exc)}"
            ) from None
        return value

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def _exc_text(exc: BaseException) -> str:
    # Only exceptions raised by builtin operations on builtin values reach here; their args
    # are our own strings or inert values, still formatted safely.
    args = BaseException.__dict__["args"].__get__(exc)
    if len(args) == 1 and type(args[0]) is str:
        return args[0][:200]
    return safe_format(args)[:200]


def compile(
    source: str, *, max_steps: int = DEFAULT_MAX_STEPS, max_seconds: float = DEFAULT_MAX_SECONDS
) -> Expression:
    """Parse and validate ``source``; raises ExpressionError naming the refused construct."""
    return Expression(source, max_steps=max_steps, max_seconds=max_seconds)


# -- templates ---------------------------------------------------------------------------------


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
