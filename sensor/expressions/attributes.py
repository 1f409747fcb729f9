"""Attribute reads that run no code of the object: instance ``__dict__``, genuine slots, plain
class data and a few documented read-only views (``exc.args``, ``member.name``).

What is read here is raw: the compiler passes it through the redaction rules (a secret
attribute name, a secret by content) before the expression sees it.
"""

from __future__ import annotations

import collections
import datetime as _dt
import os
import types
from typing import Any

from sensor.errors import ExpressionError
from sensor.expressions.introspect import (
    _DATA_DESCRIPTOR_DUNDERS,
    _DESCRIPTOR_DUNDERS,
    _GET_DUNDERS,
    _MEMBER,
    _MISSING,
    _STATIC_KIND,
    _T_DICT,
    _T_MRO,
    _TYPE_INFO,
    _has_in_mro,
    _info,
    _instance_dict,
    _is_heap,
    _qualname,
    _refuse_value,
    typename,
)
from sensor.expressions.redact import Redacted

# -- attributes -------------------------------------------------------------------------------

_DATE_ATTRS = frozenset(("year", "month", "day"))
# ``tzinfo`` is a C getter; the tzinfo it returns is judged like any value (``is None`` runs
# nothing; comparing a Python tzinfo is refused), so ``due.tzinfo is not None`` can be expected.
_TIME_ATTRS = frozenset(("hour", "minute", "second", "microsecond", "fold", "tzinfo"))
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
_MODULE_DICT: Any = types.ModuleType.__dict__["__dict__"].__get__  # type: ignore[index]
_EXC_ARGS = BaseException.__dict__["args"].__get__
_ENVIRON_TYPE = type(os.environ)
_NAMESPACE = types.SimpleNamespace  # a C type whose attributes are its instance __dict__
_TUPLEGETTER = type(collections.namedtuple("_P", "x").__dict__["x"])


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
    if t is Redacted:
        raise ExpressionError(f"attribute {name!r} of a redacted value is refused")
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
            if _qualname(ct) in _DICT_BACKED_DESCRIPTORS and not info.is_class:
                return _dict_backed(obj, t, info, name, cls_value)
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
    if _has_in_mro(t, _GETATTR_HOOKS):
        # A proxy (werkzeug's LocalProxy, Django's SimpleLazyObject, LazySettings) answers
        # attribute reads from code: say so, rather than that the attribute does not exist.
        raise _refuse_value(
            f"attribute {name!r}",
            obj,
            "the object holds no such attribute and its class answers with __getattr__ "
            "(a proxy or lazy object); reading it would run code",
        )
    raise ExpressionError(f"object of type {typename(obj)!r} has no attribute {name!r}")


_GETATTR_HOOKS = frozenset(("__getattr__",))

#: Data descriptors whose ``__get__`` returns the instance ``__dict__`` entry of their key when
#: it is there, and runs code (a query) only when it is not: SQLAlchemy's mapped attributes
#: (columns and relationships). The capture encoder shows the same entries: it reads the
#: instance dict. Only the exact class is trusted; its ``key`` and ``impl`` are C slots.
_DICT_BACKED_DESCRIPTORS = frozenset(("sqlalchemy.orm.attributes.InstrumentedAttribute",))


def _slot_value(obj: object, name: str) -> Any:
    """The value of slot ``name`` of ``obj`` (a genuine member descriptor), or _MISSING."""
    for cd in _info(type(obj)).dicts:
        if name in cd:
            member = cd[name]
            if type(member) is not _MEMBER:
                return _MISSING
            try:
                return member.__get__(obj, type(obj))
            except AttributeError:  # an unset slot (a mapper not configured yet)
                return _MISSING
    return _MISSING


def _dict_backed(obj: Any, t: type, info: Any, name: str, descr: object) -> Any:
    """A loaded SQLAlchemy attribute, read from the instance dict as its descriptor would."""
    key = _slot_value(descr, "key")
    impl = _slot_value(descr, "impl")
    populated: object = _MISSING
    if impl is not _MISSING:
        for cd in _info(type(impl)).dicts:
            if "supports_population" in cd:
                populated = cd["supports_population"]
                break
    if type(key) is not str or populated is not True:
        # A write-only or dynamic relationship: its descriptor always builds a query.
        raise _refuse_value(
            f"attribute {name!r}",
            obj,
            "it is a mapped attribute that is never stored on the instance; reading it would "
            "run code",
        )
    d = _instance_dict(obj, t, info)
    value = d.get(key, _MISSING) if d is not None else _MISSING
    if value is _MISSING:
        raise _refuse_value(
            f"attribute {name!r}",
            obj,
            "it is a mapped attribute that is not loaded (a lazy relationship, a deferred or "
            "expired column); reading it would run a query",
        )
    return value


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
