"""Capture of hostile objects: no user code runs, whatever the object does to attribute access."""

# The hostile classes break typing on purpose (properties over __dict__, __class__, slots).
# mypy: disable-error-code="misc, override, assignment"

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import json
import sys
import types
import uuid
import weakref
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest

from sensor.capture import capture_frame, encode, exception_info
from sensor.probes import CaptureLimits

MOD = __name__
EVENTS: list[str] = []


@pytest.fixture(autouse=True)
def _clear_events() -> Iterator[None]:
    EVENTS.clear()
    yield
    EVENTS.clear()


def _record(name: str) -> Any:
    EVENTS.append(name)
    return NotImplemented


def no_user_code(func: Callable[[], Any]) -> Any:
    """Run ``func`` and fail if any function defined in this test module ran meanwhile.

    A profile hook sees every Python-level call: a stronger check than the side-effect
    counters, catching dunders nobody thought to count.
    """
    ran: list[str] = []
    here = __file__

    def hook(frame: Any, event: str, arg: Any) -> None:
        if event == "call" and frame.f_code.co_filename == here and frame.f_code is not code:
            ran.append(frame.f_code.co_qualname)

    code = func.__code__
    previous = sys.getprofile()
    sys.setprofile(hook)
    try:
        result = func()
    finally:
        sys.setprofile(previous)
    assert ran == [], f"user code ran during capture: {ran}"
    assert EVENTS == [], f"side effects during capture: {EVENTS}"
    json.dumps(result, allow_nan=False)
    return result


def enc(value: object, **limits: Any) -> Any:
    return no_user_code(lambda: encode(value, CaptureLimits(**limits), redactor=None))


class Loud:
    """Every hook that capture could be tempted to call records itself."""

    def __init__(self) -> None:
        object.__setattr__(self, "a", 1)
        object.__setattr__(self, "b", [1, 2])

    def __repr__(self) -> str:
        EVENTS.append("__repr__")
        return "Loud()"

    def __str__(self) -> str:
        EVENTS.append("__str__")
        return "Loud"

    def __format__(self, spec: str) -> str:
        EVENTS.append("__format__")
        return "Loud"

    def __eq__(self, other: object) -> bool:
        EVENTS.append("__eq__")
        return True

    def __hash__(self) -> int:
        EVENTS.append("__hash__")
        return 1

    def __len__(self) -> int:
        EVENTS.append("__len__")
        return 1

    def __iter__(self) -> Iterator[int]:
        EVENTS.append("__iter__")
        return iter([1])

    def __bool__(self) -> bool:
        EVENTS.append("__bool__")
        return True

    def __getattr__(self, name: str) -> Any:
        EVENTS.append(f"__getattr__({name})")
        raise AttributeError(name)

    def __getattribute__(self, name: str) -> Any:
        EVENTS.append(f"__getattribute__({name})")
        return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value: object) -> None:
        EVENTS.append("__setattr__")

    def __dir__(self) -> list[str]:
        EVENTS.append("__dir__")
        return []

    def __sizeof__(self) -> int:
        EVENTS.append("__sizeof__")
        return 0

    def __reduce_ex__(self, protocol: Any) -> Any:
        EVENTS.append("__reduce_ex__")
        return (Loud, ())

    def __getstate__(self) -> Any:
        EVENTS.append("__getstate__")
        return {}

    def __copy__(self) -> Loud:
        EVENTS.append("__copy__")
        return self

    def __deepcopy__(self, memo: Any) -> Loud:
        EVENTS.append("__deepcopy__")
        return self

    @property
    def __class__(self) -> type:
        EVENTS.append("__class__")
        return int

    @property
    def boom(self) -> int:
        EVENTS.append("boom")
        raise RuntimeError("property ran")


def test_loud_object_is_read_from_its_instance_dict_only() -> None:
    assert enc(Loud()) == {
        "@t": f"{MOD}.Loud",
        "@attrs": {"a": 1, "b": {"@t": "list", "v": [1, 2]}},
    }


def test_loud_objects_inside_containers_and_as_dict_keys() -> None:
    loud = Loud()
    value = {"x": [loud, (loud,)], "s": {1}}
    out = enc(value)
    assert out["v"]["x"]["v"][0]["@t"] == f"{MOD}.Loud"
    keyed = {loud: 1}
    EVENTS.clear()  # building the dict hashed the key (that was the test, not the capture)
    out = enc(keyed)
    assert out == {"@t": "dict", "items": [[enc(loud), 1]]}


class DictIsAProperty:
    """A class that hides its instance dict behind a ``__dict__`` property."""

    @property
    def __dict__(self) -> dict[str, Any]:
        EVENTS.append("__dict__ property")
        return {"fake": True}


def test_dict_property_is_bypassed_to_read_the_real_instance_dict() -> None:
    obj = DictIsAProperty()
    object.__setattr__(obj, "real", 42)
    out = enc(obj)
    assert out == {"@t": f"{MOD}.DictIsAProperty", "@attrs": {"real": 42}}


def test_dict_property_on_a_subclass_falls_back_to_the_base_getset() -> None:
    class Base:
        pass

    class Sneaky(Base):
        @property
        def __dict__(self) -> dict[str, Any]:
            EVENTS.append("__dict__ property")
            return {}

    obj = Sneaky()
    object.__setattr__(obj, "real", 1)
    assert enc(obj)["@attrs"] == {"real": 1}


class Meta(type):
    """A metaclass that lies about every name and compares and hashes with side effects."""

    @property
    def __name__(cls) -> str:
        EVENTS.append("meta __name__")
        return "Lie"

    @property
    def __module__(cls) -> str:
        EVENTS.append("meta __module__")
        return "lie"

    def __eq__(cls, other: object) -> bool:
        EVENTS.append("meta __eq__")
        return True

    def __hash__(cls) -> int:
        EVENTS.append("meta __hash__")
        return 0

    def __getattribute__(cls, name: str) -> Any:
        # (A metaclass cannot hold a __qualname__ property: type() insists on a str there,
        # so the lie about the qualified name lives here.)
        EVENTS.append(f"meta __getattribute__({name})")
        if name == "__qualname__":
            return "Lie"
        return type.__getattribute__(cls, name)

    def __instancecheck__(cls, obj: object) -> bool:
        EVENTS.append("meta __instancecheck__")
        return True

    def __subclasscheck__(cls, sub: type) -> bool:
        EVENTS.append("meta __subclasscheck__")
        return True


class WithMeta(metaclass=Meta):
    def __init__(self) -> None:
        self.x = 1


EVENTS.clear()  # creating the class above already touched the metaclass


def test_metaclass_properties_and_dunders_never_run() -> None:
    EVENTS.clear()
    assert enc(WithMeta()) == {"@t": f"{MOD}.WithMeta", "@attrs": {"x": 1}}
    assert enc(WithMeta) == {"@t": "type", "v": f"{MOD}.WithMeta"}
    assert enc([WithMeta, WithMeta()])["v"][0] == {"@t": "type", "v": f"{MOD}.WithMeta"}


class Slotty:
    __slots__ = ("_hidden", "shown", "unset")

    def __init__(self) -> None:
        self._hidden = "h"
        self.shown = "s"

    @property
    def computed(self) -> str:
        EVENTS.append("computed")
        return "c"

    def __getattribute__(self, name: str) -> Any:
        EVENTS.append(f"__getattribute__({name})")
        return object.__getattribute__(self, name)


class SlotShadowed(Slotty):
    __slots__ = ()

    def __init__(self) -> None:
        Slotty.__dict__["_hidden"].__set__(self, "h")
        Slotty.__dict__["shown"].__set__(self, "s")

    @property
    def shown(self) -> str:
        EVENTS.append("shown property")
        return "shadow"


def test_slots_are_read_through_member_descriptors_only() -> None:
    assert enc(Slotty()) == {"@t": f"{MOD}.Slotty", "@attrs": {"_hidden": "h", "shown": "s"}}
    assert enc(SlotShadowed()) == {
        "@t": f"{MOD}.SlotShadowed",
        "@attrs": {"_hidden": "h", "shown": "s"},
    }


class ForeignMember:
    """A class that plants another class's slot descriptor: reading it must fail safely."""

    stolen = Slotty.__dict__["shown"]

    def __init__(self) -> None:
        self.ok = 1


def test_planted_member_descriptor_of_another_class_is_ignored() -> None:
    assert enc(ForeignMember()) == {"@t": f"{MOD}.ForeignMember", "@attrs": {"ok": 1}}


class PlantedDictGetset:
    """A class whose ``__dict__`` is another class's genuine getset (it would raise)."""

    __dict__ = Loud.__dict__["__dict__"]


def test_planted_dict_getset_of_another_class_falls_back_to_the_c_api() -> None:
    obj = PlantedDictGetset()
    object.__setattr__(obj, "real", 1)
    assert enc(obj) == {"@t": f"{MOD}.PlantedDictGetset", "@attrs": {"real": 1}}


class EvilDict(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        EVENTS.append("items")
        return [("fake", 1)]

    def keys(self) -> Any:
        EVENTS.append("keys")
        return ["fake"]

    def __iter__(self) -> Any:
        EVENTS.append("__iter__")
        return iter(["fake"])

    def __len__(self) -> int:
        EVENTS.append("__len__")
        return 0

    def __getitem__(self, key: object) -> Any:
        EVENTS.append("__getitem__")
        return None

    def __repr__(self) -> str:
        EVENTS.append("__repr__")
        return "{}"


class EvilList(list):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        EVENTS.append("__iter__")
        return iter([])

    def __len__(self) -> int:
        EVENTS.append("__len__")
        return 0

    def __getitem__(self, i: Any) -> Any:
        EVENTS.append("__getitem__")
        return None


class EvilStr(str):
    __slots__ = ()

    def __str__(self) -> str:
        EVENTS.append("__str__")
        return "fake"

    def __len__(self) -> int:
        EVENTS.append("__len__")
        return 0

    def __getitem__(self, i: Any) -> Any:
        EVENTS.append("__getitem__")
        return "f"

    def __hash__(self) -> int:
        EVENTS.append("__hash__")
        return 0

    def __eq__(self, other: object) -> bool:
        EVENTS.append("__eq__")
        return True


class EvilInt(int):
    def __int__(self) -> int:
        EVENTS.append("__int__")
        return 0

    def __index__(self) -> int:
        EVENTS.append("__index__")
        return 0


class EvilFloat(float):
    def __float__(self) -> float:
        EVENTS.append("__float__")
        return 0.0


class EvilBytes(bytes):
    def __getitem__(self, i: Any) -> Any:
        EVENTS.append("__getitem__")
        return b""

    def __len__(self) -> int:
        EVENTS.append("__len__")
        return 0


class EvilTuple(tuple):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        EVENTS.append("__iter__")
        return iter(())


class EvilSet(set):  # type: ignore[type-arg]
    def __iter__(self) -> Any:
        EVENTS.append("__iter__")
        return iter(())


def test_builtin_subclasses_are_read_from_their_storage_with_their_own_names() -> None:
    d = EvilDict(real=1)
    assert enc(d) == {"@t": f"{MOD}.EvilDict", "v": {"real": 1}}
    assert enc(EvilList([1, 2])) == {"@t": f"{MOD}.EvilList", "v": [1, 2]}
    assert enc(EvilStr("real")) == {"@t": f"{MOD}.EvilStr", "v": "real"}
    assert enc(EvilInt(7)) == {"@t": f"{MOD}.EvilInt", "v": 7}
    assert enc(EvilFloat(1.5)) == {"@t": f"{MOD}.EvilFloat", "v": 1.5}
    assert enc(EvilBytes(b"ab")) == {"@t": f"{MOD}.EvilBytes", "v": "ab", "@len": 2}
    assert enc(EvilTuple((1,))) == {"@t": f"{MOD}.EvilTuple", "v": [1]}
    assert enc(EvilSet({2, 1})) == {"@t": f"{MOD}.EvilSet", "v": [1, 2]}


def test_builtin_subclass_limits_use_the_storage_length() -> None:
    assert enc(EvilList(range(10)), max_items=2) == {
        "@t": f"{MOD}.EvilList",
        "v": [0, 1],
        "@len": 10,
        "@trunc": True,
    }
    assert enc(EvilStr("abcdef"), max_string=2) == {
        "@t": f"{MOD}.EvilStr",
        "v": "ab",
        "@len": 6,
        "@trunc": True,
    }


def test_list_subclass_with_instance_attributes() -> None:
    class Tags(list):  # type: ignore[type-arg]
        pass

    tags = Tags(["a"])
    tags.source = "db"  # type: ignore[attr-defined]
    assert enc(tags) == {
        "@t": f"{MOD}.test_list_subclass_with_instance_attributes.<locals>.Tags",
        "v": ["a"],
        "@attrs": {"source": "db"},
    }


def test_str_subclass_dict_keys_are_not_hashed_or_compared() -> None:
    d = {EvilStr("k"): 1}
    EVENTS.clear()
    out = enc(d)
    assert out == {"@t": "dict", "items": [[{"@t": f"{MOD}.EvilStr", "v": "k"}, 1]]}


def test_dict_subclass_with_instance_attributes() -> None:
    class Config(dict):  # type: ignore[type-arg]
        def __getattribute__(self, name: str) -> Any:
            EVENTS.append(name)
            return dict.__getattribute__(self, name)

    cfg = Config(a=1)
    object.__setattr__(cfg, "source", "env")
    EVENTS.clear()
    out = enc(cfg)
    assert out["v"] == {"a": 1}
    assert out["@attrs"] == {"source": "env"}


class HostileEnum(enum.Enum):
    A = 1

    def __str__(self) -> str:
        EVENTS.append("__str__")
        return "x"

    def __repr__(self) -> str:
        EVENTS.append("__repr__")
        return "x"

    def __getattribute__(self, name: str) -> Any:
        EVENTS.append(f"__getattribute__({name})")
        return object.__getattribute__(self, name)


def test_enum_member_name_is_read_from_its_dict() -> None:
    assert enc(HostileEnum.A) == {"@t": f"{MOD}.HostileEnum", "v": "A"}


class LyingDecimal(decimal.Decimal):
    def __str__(self) -> str:
        EVENTS.append("__str__")
        return "0"


class LyingDatetime(datetime.datetime):
    def isoformat(self, *args: Any, **kwargs: Any) -> str:
        EVENTS.append("isoformat")
        return "never"


class LyingUUID(uuid.UUID):
    def __str__(self) -> str:
        EVENTS.append("__str__")
        return "never"


def test_stdlib_value_subclasses_are_objects_not_values() -> None:
    assert enc(LyingDecimal("1.5"))["@t"] == f"{MOD}.LyingDecimal"
    assert "v" not in enc(LyingDecimal("1.5"))
    assert enc(LyingDatetime(2026, 1, 1))["@t"] == f"{MOD}.LyingDatetime"
    out = enc(LyingUUID(int=1))
    assert out["@t"] == f"{MOD}.LyingUUID"
    assert "never" not in json.dumps(out)


class LoudError(Exception):
    @property
    def args(self) -> Any:
        EVENTS.append("args property")
        return ("fake",)

    def __str__(self) -> str:
        EVENTS.append("__str__")
        return "fake"


def test_exception_args_come_from_the_builtin_getset() -> None:
    err = LoudError("real")
    out = enc(err)
    assert out == {"@t": f"{MOD}.LoudError", "@attrs": {"args": {"@t": "tuple", "v": ["real"]}}}
    info = no_user_code(lambda: exception_info(err, redactor=None))
    assert info == {"type": f"{MOD}.LoudError", "message": "real"}


def test_mock_objects_are_not_called_or_grown() -> None:
    m = mock.MagicMock()
    before = dict(vars(m))
    out = encode(m, None, redactor=None)
    json.dumps(out)
    assert m.mock_calls == []
    assert dict(vars(m)) == before
    assert out["@t"] == "unittest.mock.MagicMock"


def test_weak_proxy_is_not_dereferenced() -> None:
    target = Loud()
    proxy = weakref.proxy(target)
    out = enc(proxy)
    assert out["@t"] in ("weakref.ProxyType", "weakproxy", "weakref")


def test_lazy_module_with_getattr_is_named_without_getattr() -> None:
    class LazyModule(types.ModuleType):
        def __getattr__(self, name: str) -> Any:
            EVENTS.append(f"module __getattr__({name})")
            raise AttributeError(name)

        def __getattribute__(self, name: str) -> Any:
            EVENTS.append(f"module __getattribute__({name})")
            return types.ModuleType.__getattribute__(self, name)

    module = LazyModule("lazy.mod")
    EVENTS.clear()
    assert enc(module) == {"@t": "module", "v": "lazy.mod"}


def test_dataclass_with_hostile_field_values() -> None:
    @dataclasses.dataclass
    class Holder:
        loud: Loud
        evil: EvilDict

    holder = Holder(Loud(), EvilDict(k=1))
    out = enc(holder)
    assert out["@attrs"]["loud"]["@t"] == f"{MOD}.Loud"
    assert out["@attrs"]["evil"] == {"@t": f"{MOD}.EvilDict", "v": {"k": 1}}


def test_object_with_non_string_instance_dict_keys() -> None:
    obj = Loud()
    vars_ = object.__getattribute__(obj, "__dict__")
    vars_[EvilStr("odd")] = 1
    EVENTS.clear()
    out = enc(obj)
    assert out["@attrs"] == {"a": 1, "b": {"@t": "list", "v": [1, 2]}}
    assert out["@trunc"] is True
    assert out["@len"] == 3


def test_class_with_non_string_module_attribute() -> None:
    Odd = type("Odd", (), {"__module__": property(lambda self: EVENTS.append("module"))})
    assert enc(Odd())["@t"] == "Odd"


def test_capture_frame_of_hostile_locals_runs_no_user_code() -> None:
    values = {
        "loud": Loud(),
        "meta": WithMeta(),
        "evil": EvilDict(a=1),
        "hidden": DictIsAProperty(),
        "slots": Slotty(),
        "enum": HostileEnum.A,
        "err": LoudError("x"),
        "deque": collections.deque([Loud()]),
    }
    EVENTS.clear()
    captures, _, errors = no_user_code(lambda: capture_frame(values, None, None))
    assert set(captures) == set(values)
    assert errors == []


def test_the_user_code_detector_can_fail() -> None:
    with pytest.raises(AssertionError, match="user code ran"):
        no_user_code(lambda: repr(Loud()) and None)
    EVENTS.clear()

    def read_property() -> None:
        with pytest.raises(RuntimeError):
            Loud().boom  # noqa: B018

    with pytest.raises(AssertionError, match="user code ran"):
        no_user_code(read_property)
