"""Hostile objects for the expression sandbox tests: every hook they have records a side effect.

``HITS`` collects one entry per hook that ran; a test that evaluates an expression over these
objects asserts it stays empty. Hooks that would be slow (``Slow``) sleep *after* recording,
so a test also sees them through elapsed time.
"""

from __future__ import annotations

import abc
import collections
import dataclasses
import datetime
import enum
import os
import sys
import time
import types

HITS: list[str] = []
PWNED = "PWNED"


def side(what: str) -> None:
    HITS.append(what)


def _hook(name, result=None):
    def method(self, *args, **kwargs):
        side(f"{type(self).__name__}.{name}")
        return result

    method.__name__ = name
    return method


class EvilMeta(type):
    """A metaclass whose every hook on the class object records a side effect."""

    def __hash__(cls):
        side("EvilMeta.__hash__")
        return 1

    def __eq__(cls, other):
        side("EvilMeta.__eq__")
        return True

    def __ne__(cls, other):
        side("EvilMeta.__ne__")
        return False

    def __instancecheck__(cls, obj):
        side("EvilMeta.__instancecheck__")
        return True

    def __subclasscheck__(cls, sub):
        side("EvilMeta.__subclasscheck__")
        return True

    def __getattribute__(cls, name):
        side("EvilMeta.__getattribute__")
        return type.__getattribute__(cls, name)

    def __getattr__(cls, name):
        side("EvilMeta.__getattr__")
        return 1

    def __iter__(cls):
        side("EvilMeta.__iter__")
        return iter([1])

    def __len__(cls):
        side("EvilMeta.__len__")
        return 1

    def __bool__(cls):
        side("EvilMeta.__bool__")
        return True

    def __repr__(cls):
        side("EvilMeta.__repr__")
        return PWNED

    @property
    def CONST_PROP(cls):  # noqa: N802
        side("EvilMeta.CONST_PROP")
        return 1


_DUNDERS_TRUE = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__",
                 "__contains__")
_DUNDERS_ONE = ("__hash__", "__len__", "__index__", "__int__", "__abs__", "__round__",
                "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__",
                "__truediv__", "__rtruediv__", "__floordiv__", "__mod__", "__rmod__",
                "__pow__", "__rpow__", "__lshift__", "__rshift__", "__and__", "__or__",
                "__xor__", "__neg__", "__pos__", "__invert__", "__getitem__", "__call__",
                "__float__", "__complex__", "__length_hint__", "__trunc__", "__floor__",
                "__ceil__", "__matmul__", "__rmatmul__")
_DUNDERS_STR = ("__repr__", "__str__", "__format__", "__bytes__", "__fspath__")


class Evil(metaclass=EvilMeta):
    """Every operator, conversion and attribute hook records a side effect."""

    CONST = 7

    def __init__(self):
        object.__setattr__(self, "plain", 1)

    def __getattr__(self, name):
        side("Evil.__getattr__")
        return 1

    def __iter__(self):
        side("Evil.__iter__")
        return iter([1, 2])

    def __dir__(self):
        side("Evil.__dir__")
        return []

    def __reduce_ex__(self, proto):
        side("Evil.__reduce_ex__")
        return (Evil, ())

    def __copy__(self):
        side("Evil.__copy__")
        return self

    def __deepcopy__(self, memo):
        side("Evil.__deepcopy__")
        return self

    def __class_getitem__(cls, item):
        side("Evil.__class_getitem__")
        return cls

    def __setattr__(self, name, value):
        side("Evil.__setattr__")

    def __delattr__(self, name):
        side("Evil.__delattr__")

    def __sizeof__(self):
        side("Evil.__sizeof__")
        return 1

    @property
    def prop(self):
        side("Evil.prop")
        return 1

    @property
    def token(self):
        side("Evil.token")
        return "t"

    def method(self):
        side("Evil.method")
        return 1

    @classmethod
    def cmethod(cls):
        side("Evil.cmethod")
        return 1

    @staticmethod
    def smethod():
        side("Evil.smethod")
        return 1


for _n in _DUNDERS_TRUE:
    setattr(Evil, _n, _hook(_n, True))
for _n in _DUNDERS_ONE:
    setattr(Evil, _n, _hook(_n, 1))
for _n in _DUNDERS_STR:
    setattr(Evil, _n, _hook(_n, PWNED))


class GetAttribute:
    """Overrides __getattribute__ (and so would run on any normal attribute read)."""

    def __init__(self):
        self.__dict__["x"] = 1

    def __getattribute__(self, name):
        side("GetAttribute.__getattribute__")
        return object.__getattribute__(self, name)


class Slow:
    """Hooks that record and then sleep: a sandbox that ran them would be slow and dirty."""

    def __init__(self):
        self.value = 1

    def _sleep(self, what):
        side(what)
        time.sleep(0.3)

    def __eq__(self, other):
        self._sleep("Slow.__eq__")
        return True

    def __hash__(self):
        self._sleep("Slow.__hash__")
        return 1

    def __bool__(self):
        self._sleep("Slow.__bool__")
        return True

    def __len__(self):
        self._sleep("Slow.__len__")
        return 1

    def __iter__(self):
        self._sleep("Slow.__iter__")
        return iter(())

    def __repr__(self):
        self._sleep("Slow.__repr__")
        return PWNED

    def __format__(self, spec):
        self._sleep("Slow.__format__")
        return PWNED

    @property
    def slow_prop(self):
        self._sleep("Slow.slow_prop")
        return 1


class SideDescriptor:
    """A non-data descriptor stored on a class."""

    def __get__(self, obj, owner=None):
        side("SideDescriptor.__get__")
        return 1


class SideDataDescriptor(SideDescriptor):
    def __set__(self, obj, value):
        side("SideDataDescriptor.__set__")


class WithDescriptors:
    nondata = SideDescriptor()
    data = SideDataDescriptor()

    def __init__(self):
        self.other = 2


class DictProperty:
    """Replaces the instance __dict__ with a property."""

    @property
    def __dict__(self):  # noqa: PLE0302
        side("DictProperty.__dict__")
        return {"x": 1}


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self):
        self.a = 1
        self.b = 2


class SlotShadow:
    """A property named like a slot would be."""

    __slots__ = ("_a",)

    def __init__(self):
        self._a = 1

    @property
    def a(self):
        side("SlotShadow.a")
        return self._a


class HashOne:
    """A dict key that collides with 1 and with itself; __eq__ records."""

    def __hash__(self):
        side("HashOne.__hash__")
        return 1

    def __eq__(self, other):
        side("HashOne.__eq__")
        return False


class EvilStr(str):
    def __eq__(self, other):
        side("EvilStr.__eq__")
        return True

    def __hash__(self):
        side("EvilStr.__hash__")
        return 1

    def __format__(self, spec):
        side("EvilStr.__format__")
        return PWNED

    def __str__(self):
        side("EvilStr.__str__")
        return PWNED

    def __len__(self):
        side("EvilStr.__len__")
        return 1

    def lower(self):
        side("EvilStr.lower")
        return PWNED


class EvilInt(int):
    def __add__(self, other):
        side("EvilInt.__add__")
        return 1

    def __eq__(self, other):
        side("EvilInt.__eq__")
        return True

    def __hash__(self):
        side("EvilInt.__hash__")
        return 1

    def __index__(self):
        side("EvilInt.__index__")
        return 1

    def __bool__(self):
        side("EvilInt.__bool__")
        return True


class EvilList(list):
    def __iter__(self):
        side("EvilList.__iter__")
        return iter(())

    def __len__(self):
        side("EvilList.__len__")
        return 0

    def __getitem__(self, i):
        side("EvilList.__getitem__")
        return 1

    def __contains__(self, x):
        side("EvilList.__contains__")
        return True

    def __eq__(self, other):
        side("EvilList.__eq__")
        return True

    __hash__ = None


class EvilDict(dict):
    def __getitem__(self, k):
        side("EvilDict.__getitem__")
        return 1

    def __missing__(self, k):
        side("EvilDict.__missing__")
        return 1

    def __iter__(self):
        side("EvilDict.__iter__")
        return iter(())

    def __contains__(self, k):
        side("EvilDict.__contains__")
        return True

    def get(self, k, d=None):
        side("EvilDict.get")
        return 1

    def keys(self):
        side("EvilDict.keys")
        return []

    def items(self):
        side("EvilDict.items")
        return []


class EvilEnum(enum.Enum):
    A = 1
    B = 2

    def __eq__(self, other):
        side("EvilEnum.__eq__")
        return True

    def __hash__(self):
        side("EvilEnum.__hash__")
        return 1

    def __bool__(self):
        side("EvilEnum.__bool__")
        return True


class EvilTz(datetime.tzinfo):
    def utcoffset(self, dt):
        side("EvilTz.utcoffset")
        return datetime.timedelta(0)

    def dst(self, dt):
        side("EvilTz.dst")
        return datetime.timedelta(0)

    def tzname(self, dt):
        side("EvilTz.tzname")
        return PWNED


class EvilError(Exception):
    def __str__(self):
        side("EvilError.__str__")
        return PWNED

    def __repr__(self):
        side("EvilError.__repr__")
        return PWNED

    @property
    def detail(self):
        side("EvilError.detail")
        return 1


class EvilABC(abc.ABC):
    @classmethod
    def __subclasshook__(cls, sub):
        side("EvilABC.__subclasshook__")
        return True


@dataclasses.dataclass
class Order:
    total: float
    items: list
    password: str = "hunter2"


def _generator():
    side("generator body")
    yield 1


def user_function(x=1):
    side("user_function")
    return x


def _traceback():
    try:
        raise ValueError("x")
    except ValueError as exc:
        return exc.__traceback__


def _cyclic():
    a = []
    a.append(a)
    return a


def build_namespace():
    """Fresh hostile locals and globals; nothing in them has run a hook yet."""
    ddict = collections.defaultdict(lambda: side("defaultdict factory"))
    ddict["k"] = 1
    gen = _generator()
    locals_ = {
        "evil": Evil(),
        "Evil": Evil,
        "ga": GetAttribute(),
        "slow": Slow(),
        "wd": WithDescriptors(),
        "dp": DictProperty(),
        "sl": Slotted(),
        "ss": SlotShadow(),
        "h1": HashOne(),
        "estr": EvilStr("abc"),
        "eint": EvilInt(5),
        "elist": EvilList([1, 2, 3]),
        "edict": EvilDict(a=1),
        "eenum": EvilEnum.A,
        "EvilEnum": EvilEnum,
        "tzdt": datetime.datetime(2024, 1, 1, tzinfo=EvilTz()),
        "err": EvilError("boom"),
        "EvilABC": EvilABC,
        "order": Order(1.0, [1, 2]),
        "func": user_function,
        "gen": gen,
        "frame": sys._getframe(0),
        "tb": _traceback(),
        "code": user_function.__code__,
        "os": os,
        "sys": sys,
        "types": types,
        "builtins_mod": __import__("builtins"),
        "big_list": list(range(1_000_000)),
        "big_str": "x" * 1_000_000,
        "big_dict": {i: i for i in range(200_000)},
        "big_int": 1 << 200_000,
        "cyc": _cyclic(),
        "evil_list": [Evil()],
        "evil_tuple": (1, Evil()),
        "evil_dict": {"a": Evil()},
        "collide": {HashOne(): 1, 1: 2},
        "ddict": ddict,
        "nums": [1, 2, 3],
        "word": "hello",
        "d": {"a": 1, "password": "hunter2"},
        "rate": 0.5,
    }
    del HITS[:]  # building the namespace hashed HashOne keys: not part of any test
    return locals_, {"gvar": 1}
