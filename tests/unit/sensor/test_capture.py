"""Typed JSON encoding: every type of the contract, every limit and marker, exact outputs."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import json
import math
import time
import types
import uuid
import zoneinfo
from typing import Any, NamedTuple

import pytest

import sensor.capture
from sensor.capture import Budget, capture_frame, encode, exception_info, safe_type_name
from sensor.probes import CaptureLimits

MOD = __name__


def enc(value: object, **limits: Any) -> Any:
    """Encode without redaction, checking that the result is plain JSON."""
    out = encode(value, CaptureLimits(**limits), redactor=None)
    json.dumps(out, allow_nan=False)
    return out


class Color(enum.Enum):
    RED = 1
    GREEN = 2


class Perm(enum.Flag):
    R = 4
    W = 2


class Level(enum.IntEnum):
    LOW = 1


@dataclasses.dataclass
class Item:
    sku: str
    qty: int


@dataclasses.dataclass(frozen=True, slots=True)
class FrozenPoint:
    x: int
    y: int


class Pair(NamedTuple):
    left: int
    right: str


class Plain:
    def __init__(self) -> None:
        self.a = 1
        self.b = "two"


class Slotted:
    __slots__ = ("x", "y", "z")

    def __init__(self) -> None:
        self.x = 1
        self.y = [1, 2]


def test_public_names_are_exported() -> None:
    assert set(sensor.capture.__all__) == {
        "Budget",
        "DEFAULT_REDACTOR",
        "JSONValue",
        "MAX_DEPTH_CAP",
        "RedactorLike",
        "capture_frame",
        "encode",
        "exception_info",
        "safe_type_name",
    }


# -- scalars -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [None, True, False, 0, -5, 2**53 - 1, -(2**53) + 1, 1.5, "", "hé"]
)
def test_plain_scalars_encode_as_themselves(value: object) -> None:
    out = enc(value)
    assert out == value
    assert type(out) is type(value)


def test_big_int_encodes_as_decimal_text() -> None:
    assert enc(2**53) == {"@t": "int", "v": str(2**53)}
    assert enc(-(2**64)) == {"@t": "int", "v": str(-(2**64))}


def test_big_int_longer_than_max_string_is_cut() -> None:
    value = 10**40
    assert enc(value, max_string=10) == {
        "@t": "int",
        "v": "1000000000",
        "@len": 41,
        "@trunc": True,
    }


def test_huge_int_is_not_converted_to_text() -> None:
    start = time.process_time()
    out = enc(1 << 100_000)
    # Converting 100,000 bits to decimal text takes seconds; a generous bound keeps this
    # test about the algorithm, not about how busy the machine is.
    assert time.process_time() - start < 0.5
    assert out["@t"] == "int"
    assert out["@trunc"] is True
    assert "v" not in out
    assert 30_000 < out["@len"] < 30_200


@pytest.mark.parametrize(
    ("value", "tag"), [(math.nan, "nan"), (math.inf, "inf"), (-math.inf, "-inf")]
)
def test_non_finite_floats_are_tagged(value: float, tag: str) -> None:
    assert enc(value) == {"@t": "float", "v": tag}


def test_long_string_keeps_a_prefix_and_its_length() -> None:
    assert enc("abcdefghij", max_string=4) == {
        "@t": "str",
        "v": "abcd",
        "@len": 10,
        "@trunc": True,
    }
    assert enc("abcd", max_string=4) == "abcd"


def test_bytes_are_escaped_ascii_with_their_length() -> None:
    assert enc(b"ab\x00\\'\xff") == {"@t": "bytes", "v": "ab\\x00\\\\'\\xff", "@len": 6}
    assert enc(b"abcdef", max_string=3) == {"@t": "bytes", "v": "abc", "@len": 6, "@trunc": True}
    assert enc(bytearray(b"xy")) == {"@t": "bytearray", "v": "xy", "@len": 2}


def test_complex_and_range() -> None:
    assert enc(complex(1, -2)) == {"@t": "complex", "v": [1.0, -2.0]}
    assert enc(range(0, 10, 2)) == {"@t": "range", "v": [0, 10, 2]}


# -- stdlib value types ------------------------------------------------------------------------


def test_stdlib_value_types() -> None:
    assert enc(decimal.Decimal("12.50")) == {"@t": "decimal.Decimal", "v": "12.50"}
    assert enc(datetime.date(2026, 11, 24)) == {"@t": "datetime.date", "v": "2026-11-24"}
    assert enc(datetime.datetime(2026, 11, 24, 13, 5, 1)) == {
        "@t": "datetime.datetime",
        "v": "2026-11-24T13:05:01",
    }
    utc = datetime.datetime(2026, 1, 2, tzinfo=datetime.UTC)
    assert enc(utc) == {"@t": "datetime.datetime", "v": "2026-01-02T00:00:00+00:00"}
    assert enc(datetime.time(1, 2, 3)) == {"@t": "datetime.time", "v": "01:02:03"}
    assert enc(datetime.timedelta(minutes=1, microseconds=5)) == {
        "@t": "datetime.timedelta",
        "v": 60.000005,
    }
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert enc(u) == {"@t": "uuid.UUID", "v": "12345678-1234-5678-1234-567812345678"}


def test_zoneinfo_offsets_are_kept() -> None:
    try:
        berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time zone database on this machine")
    value = datetime.datetime(2026, 7, 1, 12, 0, tzinfo=berlin)
    assert enc(value) == {"@t": "datetime.datetime", "v": "2026-07-01T12:00:00+02:00"}


def test_third_party_tzinfo_is_not_called() -> None:
    calls: list[str] = []

    class Zone(datetime.tzinfo):
        def utcoffset(self, dt: datetime.datetime | None) -> datetime.timedelta:
            calls.append("utcoffset")
            return datetime.timedelta(hours=1)

        def dst(self, dt: datetime.datetime | None) -> datetime.timedelta:
            calls.append("dst")
            return datetime.timedelta(0)

        def tzname(self, dt: datetime.datetime | None) -> str:
            calls.append("tzname")
            return "Z"

    value = datetime.datetime(2026, 1, 1, 8, 30, tzinfo=Zone())
    assert enc(value) == {
        "@t": "datetime.datetime",
        "v": "2026-01-01T08:30:00",
        "@tz": f"{MOD}.test_third_party_tzinfo_is_not_called.<locals>.Zone",
    }
    assert calls == []


def test_enum_members_by_name() -> None:
    assert enc(Color.RED) == {"@t": f"{MOD}.Color", "v": "RED"}
    assert enc(Level.LOW) == {"@t": f"{MOD}.Level", "v": "LOW"}
    assert enc(Perm.R) == {"@t": f"{MOD}.Perm", "v": "R"}
    assert enc(Perm.R | Perm.W) == {"@t": f"{MOD}.Perm", "v": "R|W"}
    assert enc(Perm(0)) == {"@t": f"{MOD}.Perm", "value": 0}


def test_functions_classes_modules_and_methods() -> None:
    assert enc(enc) == {"@t": "function", "v": f"{MOD}.enc"}
    assert enc(len) == {"@t": "builtin_function_or_method", "v": "len"}
    assert enc(math.sqrt) == {"@t": "builtin_function_or_method", "v": "math.sqrt"}
    assert enc({}.get) == {"@t": "builtin_function_or_method", "v": "dict.get"}
    assert enc(Item) == {"@t": "type", "v": f"{MOD}.Item"}
    assert enc(int) == {"@t": "type", "v": "int"}
    assert enc(json) == {"@t": "module", "v": "json"}
    assert enc(Plain().__init__) == {"@t": "method", "v": f"{MOD}.Plain.__init__"}  # type: ignore[misc]


# -- containers --------------------------------------------------------------------------------


def test_builtin_containers_keep_their_type_names() -> None:
    assert enc([1, "a"]) == {"@t": "list", "v": [1, "a"]}
    assert enc((1,)) == {"@t": "tuple", "v": [1]}
    assert enc({3, 1, 2}) == {"@t": "set", "v": [1, 2, 3]}
    assert enc(frozenset({"b", "a"})) == {"@t": "frozenset", "v": ["a", "b"]}
    assert enc(collections.deque([1, 2])) == {"@t": "collections.deque", "v": [1, 2]}
    assert enc({"a": 1, "b": [2]}) == {"@t": "dict", "v": {"a": 1, "b": {"@t": "list", "v": [2]}}}


def test_dict_with_non_string_keys_uses_items() -> None:
    assert enc({1: "a", "b": 2, (1, 2): None}) == {
        "@t": "dict",
        "items": [[1, "a"], ["b", 2], [{"@t": "tuple", "v": [1, 2]}, None]],
    }


def test_ordered_dict_keeps_its_own_order() -> None:
    od = collections.OrderedDict(a=1, b=2)
    od.move_to_end("a")
    assert enc(od) == {"@t": "collections.OrderedDict", "v": {"b": 2, "a": 1}}


def test_stdlib_dict_subclasses_keep_their_names() -> None:
    dd: collections.defaultdict[str, int] = collections.defaultdict(int, a=1)
    assert enc(dd) == {
        "@t": "collections.defaultdict",
        "v": {"a": 1},
        "@attrs": {"default_factory": {"@t": "type", "v": "int"}},
    }
    assert enc(collections.Counter("aab")) == {"@t": "collections.Counter", "v": {"a": 2, "b": 1}}


def test_list_over_max_items_is_cut() -> None:
    assert enc(list(range(10)), max_items=3) == {
        "@t": "list",
        "v": [0, 1, 2],
        "@len": 10,
        "@trunc": True,
    }
    assert enc({str(i): i for i in range(5)}, max_items=2) == {
        "@t": "dict",
        "v": {"0": 0, "1": 1},
        "@len": 5,
        "@trunc": True,
    }


@pytest.mark.parametrize(
    "make",
    [
        lambda n: list(range(n)),
        lambda n: tuple(range(n)),
        lambda n: set(range(n)),
        lambda n: frozenset(range(n)),
        lambda n: dict.fromkeys(range(n)),
        lambda n: dict(zip(map(str, range(n)), range(n), strict=True)),
        lambda n: collections.deque(range(n)),
        lambda n: "x" * n,
        lambda n: b"x" * n,
        lambda n: bytearray(n),
    ],
    ids=["list", "tuple", "set", "frozenset", "dict", "strdict", "deque", "str", "bytes", "ba"],
)
def test_million_item_values_cost_only_their_kept_part(make: Any) -> None:
    value = make(1_000_000)
    start = time.process_time()
    out = enc(value)
    elapsed = time.process_time() - start
    # CPU time, not wall time (the machine is shared): the kept 100 items cost well under
    # a millisecond, encoding all 10**6 would take seconds; the bound is far from both.
    assert elapsed < 0.3, f"{elapsed * 1000:.1f} ms for a 10**6-item {type(value).__name__}"
    assert out["@len"] == 1_000_000
    assert out["@trunc"] is True


def test_million_item_nested_in_objects_is_fast() -> None:
    holder = Plain()
    holder.a = [list(range(1_000_000)) for _ in range(3)]  # type: ignore[assignment]
    start = time.process_time()
    capture_frame({"h": holder, "big": holder.a}, None, None)
    assert time.process_time() - start < 0.3


def test_depth_limit_marks_unexpanded_containers() -> None:
    value = [[[[1]]]]
    assert enc(value, max_depth=2) == {
        "@t": "list",
        "v": [{"@t": "list", "v": [{"@t": "list", "@depth": True, "@len": 1}]}],
    }
    assert enc({"a": Item("s", 1)}, max_depth=1) == {
        "@t": "dict",
        "v": {"a": {"@t": f"{MOD}.Item", "@depth": True}},
    }
    assert enc([1], max_depth=0) == {"@t": "list", "@depth": True, "@len": 1}


def test_deep_nesting_is_bounded_and_fast() -> None:
    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    start = time.process_time()
    # The longest deadline allowed: a busy machine must not turn the depth marker into a
    # deadline marker. The deepest depth allowed is the encoder's own cap.
    out = enc(value, max_depth=sensor.capture.MAX_DEPTH_CAP, deadline_ms=500)
    assert time.process_time() - start < 0.5
    depth = 0
    while "v" in out:
        out = out["v"][0]
        depth += 1
    assert depth == sensor.capture.MAX_DEPTH_CAP
    assert out["@depth"] is True


def test_capture_near_the_recursion_limit_never_raises() -> None:
    results: list[Any] = []
    leaked: list[str] = []

    def dive() -> None:
        try:
            results.append(encode([[[[1]]]], None, redactor=None))
        except RecursionError as exc:
            # Raised at the call site (no frame left to enter encode) is the host's own
            # recursion; raised from inside the sensor's modules is a leak.
            tb = exc.__traceback__
            while tb is not None and tb.tb_next is not None:
                tb = tb.tb_next
            if tb is not None and "sensor/capture/" in tb.tb_frame.f_code.co_filename:
                leaked.append(f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}")
            raise
        dive()

    with pytest.raises(RecursionError):
        dive()
    assert leaked == []
    assert results[0] == enc([[[[1]]]])
    assert any("@error" in r for r in results)  # the deepest ones were cut, and said so
    assert all(r["@t"] in ("list", "?") for r in results)


def test_cycles_are_marked() -> None:
    a: list[Any] = [1]
    a.append(a)
    assert enc(a) == {"@t": "list", "v": [1, {"@t": "list", "@cycle": True}]}
    d: dict[str, Any] = {}
    d["self"] = d
    assert enc(d) == {"@t": "dict", "v": {"self": {"@t": "dict", "@cycle": True}}}
    p = Plain()
    p.a = p  # type: ignore[assignment]
    assert enc(p) == {
        "@t": f"{MOD}.Plain",
        "@attrs": {"a": {"@t": f"{MOD}.Plain", "@cycle": True}, "b": "two"},
    }


def test_shared_values_that_are_not_cycles_are_encoded_twice() -> None:
    shared = [1]
    assert enc([shared, shared]) == {
        "@t": "list",
        "v": [{"@t": "list", "v": [1]}, {"@t": "list", "v": [1]}],
    }


# -- objects -----------------------------------------------------------------------------------


def test_plain_object_dataclass_slots_and_namedtuple() -> None:
    assert enc(Plain()) == {"@t": f"{MOD}.Plain", "@attrs": {"a": 1, "b": "two"}}
    assert enc(Item("A-1", 2)) == {"@t": f"{MOD}.Item", "@attrs": {"sku": "A-1", "qty": 2}}
    assert enc(FrozenPoint(1, 2)) == {"@t": f"{MOD}.FrozenPoint", "@attrs": {"x": 1, "y": 2}}
    assert enc(Slotted()) == {
        "@t": f"{MOD}.Slotted",
        "@attrs": {"x": 1, "y": {"@t": "list", "v": [1, 2]}},
    }
    assert enc(Pair(1, "r")) == {"@t": f"{MOD}.Pair", "@attrs": {"left": 1, "right": "r"}}
    point = collections.namedtuple("point", "x y")
    assert enc(point(3, 4))["@attrs"] == {"x": 3, "y": 4}


def test_simple_namespace_and_object_without_state() -> None:
    assert enc(types.SimpleNamespace(a=1)) == {"@t": "types.SimpleNamespace", "@attrs": {"a": 1}}
    assert enc(object()) == {"@t": "object", "@attrs": {}}


def test_object_fields_over_max_fields_are_cut() -> None:
    obj = Plain()
    for i in range(10):
        setattr(obj, f"f{i}", i)
    out = enc(obj, max_fields=3)
    assert out == {
        "@t": f"{MOD}.Plain",
        "@attrs": {"a": 1, "b": "two", "f0": 0},
        "@len": 12,
        "@trunc": True,
    }


def test_slots_and_dict_together_inherit_in_base_order() -> None:
    class Base:
        __slots__ = ("base",)
        base: int

    class Child(Base):
        __slots__ = ("__dict__", "child")
        child: int

    obj = Child()
    obj.base = 1
    obj.child = 2
    obj.extra = 3  # type: ignore[attr-defined]
    assert list(enc(obj)["@attrs"].items()) == [("extra", 3), ("base", 1), ("child", 2)]


def test_slots_keep_declaration_order() -> None:
    class Three:
        __slots__ = ("zeta", "alpha", "mid")  # noqa: RUF023 (the order is the test)

        def __init__(self) -> None:
            self.zeta, self.alpha, self.mid = 1, 2, 3

    assert list(enc(Three())["@attrs"]) == ["zeta", "alpha", "mid"]

    class Private:
        __slots__ = ("b", "__secret_sauce", "a")  # noqa: RUF023

        def __init__(self) -> None:
            self.b, self.__secret_sauce, self.a = 1, 2, 3

    assert list(enc(Private())["@attrs"]) == ["b", "_Private__secret_sauce", "a"]

    @dataclasses.dataclass(slots=True)
    class Row:
        z: int
        a: int

    assert list(enc(Row(1, 2))["@attrs"]) == ["z", "a"]
    assert enc(Three(), max_fields=2) == {
        "@t": f"{MOD}.test_slots_keep_declaration_order.<locals>.Three",
        "@attrs": {"zeta": 1, "alpha": 2},
        "@len": 3,
        "@trunc": True,
    }


def test_exceptions_show_their_args_and_fields() -> None:
    err = ValueError("bad price", 3)
    err.note = "x"  # type: ignore[attr-defined]
    assert enc(err) == {
        "@t": "ValueError",
        "@attrs": {"note": "x", "args": {"@t": "tuple", "v": ["bad price", 3]}},
    }
    os_err = enc(FileNotFoundError(2, "gone"))
    assert os_err["@attrs"]["errno"] == 2
    assert os_err["@attrs"]["strerror"] == "gone"


def test_exception_info_reads_message_without_str() -> None:
    class Loud(Exception):
        def __str__(self) -> str:
            raise AssertionError("__str__ ran")

    assert exception_info(Loud("boom"), redactor=None) == {
        "type": f"{MOD}.test_exception_info_reads_message_without_str.<locals>.Loud",
        "message": "boom",
    }
    assert exception_info(KeyError(), redactor=None) == {"type": "KeyError", "message": ""}
    assert exception_info(KeyError(1, 2), redactor=None)["message"] == {"@t": "tuple", "v": [1, 2]}


def test_type_names_of_nested_and_builtin_classes() -> None:
    class Inner:
        pass

    qual = "test_type_names_of_nested_and_builtin_classes.<locals>.Inner"
    assert safe_type_name(Inner) == f"{MOD}.{qual}"
    assert safe_type_name(int) == "int"
    assert safe_type_name(decimal.Decimal) == "decimal.Decimal"
    assert safe_type_name(type(None)) == "NoneType"


# -- budget and deadline -----------------------------------------------------------------------


def test_byte_budget_stops_a_capture_while_it_runs() -> None:
    values = {f"s{i}": "x" * 200 for i in range(50)}
    captures, truncated, errors = capture_frame(
        values, CaptureLimits(max_bytes=1000, max_fields=100), None
    )
    assert truncated is True
    # 1000 bytes of values, then one short marker per remaining name (at most max_fields).
    assert len(json.dumps(captures)) < 1000 + 50 * 45
    spent = [k for k, v in captures.items() if v == {"@t": "str", "@budget": True}]
    assert spent  # later names keep their type, marked
    assert captures["s0"] == "x" * 200
    assert errors == ["budget: encoded size reached max_bytes=1000"]


def test_byte_budget_marks_the_container_it_stopped() -> None:
    out = encode(["y" * 100] * 50, CaptureLimits(max_bytes=500), redactor=None, budget=None)
    assert out["@t"] == "list"
    assert out["@budget"] is True
    assert out["@trunc"] is True
    assert out["@len"] == 50
    assert 1 <= len(out["v"]) < 10


def test_budget_is_shared_between_encode_calls() -> None:
    budget = Budget(CaptureLimits(max_bytes=100))
    assert encode("a" * 90, redactor=None, budget=budget) == "a" * 90
    assert encode("b" * 90, redactor=None, budget=budget) == "b" * 90
    assert encode("c", redactor=None, budget=budget) == {"@t": "str", "@budget": True}
    assert budget.exhausted
    assert budget.truncated
    assert not budget.expired


def test_zero_byte_budget_encodes_only_markers() -> None:
    out = encode([1, 2], CaptureLimits(max_bytes=0), redactor=None)
    assert out == {"@t": "list", "@budget": True}


def test_deadline_is_checked_while_capturing() -> None:
    budget = Budget(CaptureLimits(deadline_ms=0.0))
    time.sleep(0.001)
    out = encode([list(range(100)) for _ in range(100)], redactor=None, budget=budget)
    assert budget.expired
    assert budget.errors == ["deadline: capture took longer than deadline_ms=0"]
    assert out["@t"] == "list"
    assert out["@deadline"] is True
    assert len(json.dumps(out)) < 2000


def test_deadline_marks_values_after_it_passed() -> None:
    budget = Budget(deadline_ms=0.0)
    budget.check_deadline()
    assert encode(Item("a", 1), redactor=None, budget=budget) == {
        "@t": f"{MOD}.Item",
        "@deadline": True,
    }


def test_slow_capture_is_stopped_by_its_deadline() -> None:
    big = [[list(range(100)) for _ in range(100)] for _ in range(100)]
    limits = CaptureLimits(deadline_ms=1.0, max_bytes=1 << 20, max_items=100)
    # Stopped early: it encoded a small part of what the capture without the deadline encodes
    # (measured by what each produced, not by a clock: a loaded machine only makes the 1 ms
    # deadline stop it sooner). A wall-clock bound (0.25 s) was a guess at how long a busy
    # machine holds a thread off, and more than the whole capture costs; a bound in CPU time
    # failed under load too (a cold first capture on a loaded machine).
    stopped, truncated, errors = capture_frame({"big": big}, limits, None)
    whole, _, _ = capture_frame({"big": big}, dataclasses.replace(limits, deadline_ms=500.0), None)
    assert len(json.dumps(stopped)) < len(json.dumps(whole)) / 4
    assert truncated
    assert any(e.startswith("deadline") for e in errors)


# -- capture_frame -----------------------------------------------------------------------------


def test_capture_frame_of_typical_locals() -> None:
    values = {"count": 3, "total": 12, "name": "hello world", "note": "n" * 300}
    values["cart"] = Item("a", 1)
    captures, truncated, errors = capture_frame(values, CaptureLimits(), None)
    assert captures == {
        "count": 3,
        "total": 12,
        "name": "hello world",
        "note": {"@t": "str", "v": "n" * 255, "@len": 300, "@trunc": True},
        "cart": {"@t": f"{MOD}.Item", "@attrs": {"sku": "a", "qty": 1}},
    }
    assert truncated is True
    assert errors == []


def test_capture_frame_keeps_at_most_max_fields_names() -> None:
    values = {f"v{i}": i for i in range(30)}
    captures, truncated, errors = capture_frame(values, CaptureLimits(max_fields=5), None)
    assert list(captures) == ["v0", "v1", "v2", "v3", "v4"]
    assert truncated is True
    assert errors == ["fields: kept 5 of 30 names (max_fields=5)"]


def test_capture_frame_never_raises_on_a_broken_mapping() -> None:
    class Broken(dict):  # type: ignore[type-arg]
        def items(self) -> Any:
            raise RuntimeError("mapping broke")

    captures, truncated, errors = capture_frame(Broken(a=1), None, None)
    assert captures == {}
    assert truncated is True
    assert errors == ["error: capture failed: RuntimeError: mapping broke"]


def test_capture_frame_reads_frame_locals() -> None:
    import sys

    def target() -> Any:
        price = decimal.Decimal("9.99")  # noqa: F841
        items = [1, 2]  # noqa: F841
        frame = sys._getframe()
        return capture_frame(frame.f_locals, None, None)

    captures, _, errors = target()
    assert captures["price"] == {"@t": "decimal.Decimal", "v": "9.99"}
    assert captures["items"] == {"@t": "list", "v": [1, 2]}
    assert captures["frame"]["@t"] == "frame"
    assert errors == []


def test_encoding_does_not_mutate_the_values() -> None:
    value = {"a": [1, 2, {"b": Item("x", 1)}], "c": {1, 2}}
    before = repr(value)
    enc(value)
    assert repr(value) == before
