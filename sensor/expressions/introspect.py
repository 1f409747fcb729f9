"""Questions about types, answered without running code of the type or of its metaclass."""

from __future__ import annotations

import collections
import datetime as _dt
import decimal
import enum
import types
import weakref
from typing import Any

from sensor.errors import ExpressionError

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


_ENUM_ID = id(enum.Enum)


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


_GETSET = types.GetSetDescriptorType
_MEMBER = types.MemberDescriptorType
_DESCRIPTOR_DUNDERS = frozenset(("__get__", "__set__", "__delete__"))
_DATA_DESCRIPTOR_DUNDERS = frozenset(("__set__", "__delete__"))
_GET_DUNDERS = frozenset(("__get__",))


def _has_in_mro(t: type, names: frozenset[str]) -> bool:
    for d in _info(t).dicts:  # noqa: SIM110 - a plain loop is faster than any() here
        if not d.keys().isdisjoint(names):
            return True
    return False


def _refuse_value(what: str, value: object, why: str) -> ExpressionError:
    """A refusal that names the operation and the value's type, never the value."""
    return ExpressionError(f"{what} on a value of type {typename(value)!r} is refused: {why}")


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


def _is_type_type(t: type) -> bool:
    return _info(t).is_class
