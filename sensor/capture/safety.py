"""Read types and objects without running user code: names, instance dicts, slots, layouts.

Everything here goes through descriptors taken from ``type.__dict__`` and from the type's
own class dicts (C getset and member descriptors), never through an object's or a
metaclass's attribute protocol, so properties, ``__getattr__``, ``__getattribute__``,
metaclass properties and ``__class__`` tricks never run. Caches are keyed by ``id(type)``
because hashing a class can run a metaclass ``__hash__``.
"""

from __future__ import annotations

import collections
import datetime
import decimal
import enum
import types
import uuid
from collections.abc import Callable
from typing import Any

__all__ = [
    "BOOKKEEPING_TYPES",
    "Kind",
    "Layout",
    "layout_of",
    "safe_type_name",
]

# The real descriptors of ``type``: calling them reads the C fields of a class directly,
# bypassing any metaclass override of __qualname__, __module__, __mro__ or __dict__.
_QUALNAME: Callable[[type], Any] = type.__dict__["__qualname__"].__get__
_MODULE: Callable[[type], Any] = type.__dict__["__module__"].__get__
_MRO: Callable[[type], Any] = type.__dict__["__mro__"].__get__
_CLASSDICT: Callable[[type], Any] = type.__dict__["__dict__"].__get__
_DICTOFFSET: Callable[[type], Any] = type.__dict__["__dictoffset__"].__get__

_GETSET = types.GetSetDescriptorType
_MEMBER = types.MemberDescriptorType
_MEMBER_OWNER: Callable[[object], Any] = vars(_MEMBER)["__objclass__"].__get__
_GETSET_OWNER: Callable[[object], Any] = vars(_GETSET)["__objclass__"].__get__
_FLAGS: Callable[[type], Any] = type.__dict__["__flags__"].__get__
_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE: the class was created at run time (class statement)

#: Objects a framework attaches to each instance to track it, not the application's state:
#: SQLAlchemy's ``InstanceState`` (``_sa_instance_state``) and Django's ``ModelState``
#: (``_state``). Their fields say whether the instance came from a database (identity key,
#: session, load path, ``adding``, ``db``), so an object a test builds differs there from
#: every object production loads, and SQLAlchemy's costs about 1.5 kB per instance. As a
#: field of another object they are encoded as their type only (``"@depth": true``); captured
#: by themselves they are expanded as usual.
BOOKKEEPING_TYPES = frozenset(
    {
        "sqlalchemy.orm.state.InstanceState",
        "django.db.models.base.ModelState",
    }
)

# The cache holds strong references to classes (a bounded number): dropping it when full
# keeps memory bounded even for services that create classes per request.
_CACHE_MAX = 2048


class Kind:
    """How values of one type are encoded (small ints: compared with ``is``/``==`` cheaply)."""

    OBJECT = 0  #: generic object: instance dict and slots
    ENUM = 1
    DICT = 2  #: subclass of dict (storage read with dict's own methods)
    LIST = 3
    TUPLE = 4
    NAMEDTUPLE = 5
    SET = 6
    FROZENSET = 7
    DEQUE = 8
    STR = 9
    BYTES = 10
    INT = 11
    FLOAT = 12
    CLASS = 13  #: the value is a class
    FUNCTION = 14
    BUILTIN_FUNCTION = 15
    METHOD = 16
    MODULE = 17
    EXCEPTION = 18
    BYTEARRAY = 19
    VALUE = 20  #: an exact stdlib value type (Decimal, datetime, UUID, complex, range, ...)


class Layout:
    """What capture needs to know about one type, computed once and cached."""

    __slots__ = (
        "bookkeeping",
        "dict_get",
        "dict_hidden",
        "fields",
        "kind",
        "name",
        "slots",
        "type",
    )

    def __init__(self, tp: type) -> None:
        self.type = tp
        self.name = _compute_name(tp)
        mro = _mro(tp)
        self.kind = _compute_kind(tp, mro)
        self.dict_get: Callable[[object], Any] | None = None
        # True when instances have a dict but no genuine getset exposes it (a class that
        # defines ``__dict__`` as a property directly): read through the C API instead.
        self.dict_hidden = False
        per_class: list[list[tuple[str, Callable[[object], Any]]]] = []
        seen: set[str] = set()
        for klass in mro:
            slots: list[tuple[str, Callable[[object], Any]]] = []
            per_class.append(slots)
            cdict = _CLASSDICT(klass)
            for key, value in cdict.items():
                if type(key) is not str:
                    continue
                if key == "__dict__":
                    # A getset (classes written in Python) or a member (SimpleNamespace) made
                    # by the interpreter; a property or any other object here is skipped.
                    kind = type(value)
                    if self.dict_get is None and (
                        (
                            kind is _GETSET
                            and _owner_in(_GETSET_OWNER(value), mro)
                            and _trusted_dict_getset(value)
                        )
                        or (kind is _MEMBER and _owner_in(_MEMBER_OWNER(value), mro))
                    ):
                        self.dict_get = value.__get__
                elif (
                    type(value) is _MEMBER
                    and key not in seen
                    and _is_user_slot(key)
                    and _owner_in(_MEMBER_OWNER(value), mro)
                ):
                    seen.add(key)
                    slots.append((key, value.__get__))
            if len(slots) > 1:
                # The interpreter sorts slot names; __slots__ as written gives the order.
                order = _declared_slots(klass, cdict)
                slots.sort(key=lambda slot: order.get(slot[0], len(order)))
        # Base class slots first, each class in declaration order: how a reader expects them.
        self.slots = tuple(slot for slots in reversed(per_class) for slot in slots)
        if self.dict_get is None and _has_instance_dict(tp):
            self.dict_hidden = True
        #: A framework's per-instance bookkeeping (see BOOKKEEPING_TYPES): kept as its type
        #: when it is a field of another object.
        self.bookkeeping = self.kind == Kind.OBJECT and self.name in BOOKKEEPING_TYPES
        self.fields: tuple[str, ...] | None = None
        if self.kind == Kind.NAMEDTUPLE:
            self.fields = _namedtuple_fields(mro)
            if self.fields is None:
                self.kind = Kind.TUPLE


def _declared_slots(klass: type, cdict: Any) -> dict[str, int]:
    """Position of each (mangled) slot name in ``__slots__`` as the class statement wrote it."""
    declared = cdict.get("__slots__")
    if type(declared) is str:
        declared = (declared,)
    if (type(declared) is not tuple and type(declared) is not list) or not all(
        type(name) is str for name in declared
    ):
        return {}
    qual = _QUALNAME(klass)
    prefix = "_" + (qual.rsplit(".", 1)[-1].lstrip("_") if type(qual) is str else "")
    order: dict[str, int] = {}
    for i, name in enumerate(declared):
        if name.startswith("__") and not name.endswith("__"):
            name = prefix + name  # private names are mangled with the class name
        order.setdefault(name, i)
    return order


def _mro(tp: type) -> tuple[type, ...]:
    mro = _MRO(tp)
    if type(mro) is not tuple:  # pragma: no cover - tp_mro is always a tuple once ready
        return (tp, object)
    return mro


def _trusted_dict_getset(descr: object) -> bool:
    """A ``__dict__`` getset made by CPython: on a class written in Python or a core type.

    A C extension's own ``__dict__`` getset (a proxy forwarding to its target, say) could call
    back into Python; such instances are read through ``PyObject_GenericGetDict`` instead.
    """
    owner = _GETSET_OWNER(descr)
    try:
        return bool(_FLAGS(owner) & _HEAPTYPE) or _MODULE(owner) == "builtins"
    except Exception:
        return False


def _owner_in(owner: object, mro: tuple[type, ...]) -> bool:
    # A member descriptor planted from another class would raise on every read.
    return any(owner is klass for klass in mro)


def _is_user_slot(key: str) -> bool:
    # Dunder members of builtin classes (``__suppress_context__``, ``__weakref__``) are
    # interpreter internals, not the instance state a reader expects.
    return not (key.startswith("__") and key.endswith("__"))


def _has_instance_dict(tp: type) -> bool:
    try:
        return bool(_DICTOFFSET(tp))
    except Exception:
        return False


def _compute_name(tp: type) -> str:
    try:
        qual = _QUALNAME(tp)
    except Exception:
        qual = None
    if type(qual) is not str:
        qual = "?"
    try:
        module = _MODULE(tp)
    except Exception:
        module = None
    if type(module) is not str or module == "builtins":
        return qual
    return f"{module}.{qual}"


# Builtin classes whose storage a subclass shares; the first one found on the MRO decides how
# a subclass instance is read (with the builtin's own methods, never the subclass's).
_BUILTIN_KINDS: tuple[tuple[type, int], ...] = (
    (dict, Kind.DICT),
    (list, Kind.LIST),
    (tuple, Kind.NAMEDTUPLE),  # demoted to TUPLE when the class has no _fields tuple
    (set, Kind.SET),
    (frozenset, Kind.FROZENSET),
    (collections.deque, Kind.DEQUE),
    (str, Kind.STR),
    (bytes, Kind.BYTES),
    (bytearray, Kind.BYTEARRAY),
    (int, Kind.INT),
    (float, Kind.FLOAT),
    (type, Kind.CLASS),
    (types.FunctionType, Kind.FUNCTION),
    (types.BuiltinFunctionType, Kind.BUILTIN_FUNCTION),
    (types.MethodType, Kind.METHOD),
    (types.ModuleType, Kind.MODULE),
    (BaseException, Kind.EXCEPTION),
)


def _compute_kind(tp: type, mro: tuple[type, ...]) -> int:
    # Identity comparisons only: ``in`` or ``==`` on classes could run a metaclass __eq__.
    for exact in STDLIB_VALUE_TYPES:
        if tp is exact:
            return Kind.VALUE
    for klass in mro:
        if klass is enum.Enum:
            return Kind.ENUM
    for klass in mro:
        for builtin, kind in _BUILTIN_KINDS:
            if klass is builtin:
                return kind
    return Kind.OBJECT


def _namedtuple_fields(mro: tuple[type, ...]) -> tuple[str, ...] | None:
    for klass in mro:
        value = _CLASSDICT(klass).get("_fields")
        if value is None:
            continue
        if type(value) is tuple and all(type(f) is str for f in value):
            return value
        return None
    return None


_LAYOUTS: dict[int, Layout] = {}


def layout_of(tp: type) -> Layout:
    """The cached :class:`Layout` of a class (keyed by id; the entry keeps the class alive)."""
    layout = _LAYOUTS.get(id(tp))
    if layout is not None and layout.type is tp:
        return layout
    layout = Layout(tp)
    if len(_LAYOUTS) >= _CACHE_MAX:
        _LAYOUTS.clear()
    _LAYOUTS[id(tp)] = layout
    return layout


def safe_type_name(tp: type) -> str:
    """``module.QualName`` of a class (just ``QualName`` for builtins), without user code."""
    return layout_of(tp).name


_generic_get_dict: Callable[[object], Any] | None = None
_generic_get_dict_loaded = False


def hidden_instance_dict(obj: object) -> dict[str, Any] | None:
    """The instance dict of an object whose class hides it behind a ``__dict__`` property.

    No genuine getset exists for such a class, so the dict is read with the C API's
    ``PyObject_GenericGetDict`` (through ctypes, loaded lazily; None where ctypes or the
    C API is unavailable, e.g. on PyPy).
    """
    global _generic_get_dict, _generic_get_dict_loaded
    if not _generic_get_dict_loaded:
        _generic_get_dict_loaded = True
        try:
            import ctypes

            func = ctypes.pythonapi.PyObject_GenericGetDict
            func.restype = ctypes.py_object
            py_object = ctypes.py_object

            # py_object(...) wraps without any attribute lookup on obj (argtypes conversion
            # would look up ``_as_parameter_`` on it, which runs __getattribute__).
            def _get(target: object) -> Any:
                return func(py_object(target), None)

            _generic_get_dict = _get
        except Exception:
            _generic_get_dict = None
    if _generic_get_dict is None:
        return None
    result = _generic_get_dict(obj)
    return result if type(result) is dict else None


#: Exact stdlib value types encoded as {"@t": ..., "v": ...} (only these exact classes).
STDLIB_VALUE_TYPES: tuple[type, ...] = (
    complex,
    range,
    decimal.Decimal,
    datetime.datetime,
    datetime.date,
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
)
