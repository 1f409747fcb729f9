"""The encoding's JSON Schema (docs/reference/encoding.schema.json) matches what encode emits."""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import enum
import json
import math
import uuid
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]

from sensor.capture import Budget, capture_frame, encode
from sensor.probes import CaptureLimits

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "docs" / "reference" / "encoding.schema.json"


class Color(enum.Enum):
    RED = 1


class Perm(enum.Flag):
    R = 4
    W = 2


@dataclasses.dataclass
class Cart:
    items: list[Any]
    owner: str


class Zone(datetime.tzinfo):
    def utcoffset(self, dt: datetime.datetime | None) -> datetime.timedelta:
        return datetime.timedelta(0)

    def dst(self, dt: datetime.datetime | None) -> datetime.timedelta:
        return datetime.timedelta(0)

    def tzname(self, dt: datetime.datetime | None) -> str:
        return "Z"


Point = collections.namedtuple("Point", "x y")


def corpus() -> list[tuple[object, CaptureLimits]]:
    cyclic: list[Any] = [1]
    cyclic.append(cyclic)
    default = CaptureLimits()
    small = CaptureLimits(max_depth=1, max_items=2, max_string=4, max_fields=1)
    values: list[object] = [
        None,
        True,
        7,
        2**70,
        10**300,
        1 << 20_000,
        1.5,
        math.nan,
        -math.inf,
        "short",
        "long text " * 40,
        b"\x00bytes\xff",
        bytearray(b"ba"),
        [1, [2, [3, [4, [5]]]]],
        (1, "a"),
        {1, 2},
        frozenset({"a"}),
        collections.deque([1]),
        {"k": {"nested": [1, 2, 3]}},
        {1: "a", (2, 3): [4]},
        collections.OrderedDict(a=1),
        collections.Counter("abc"),
        Point(1, 2),
        Cart([1, 2, 3], "bob"),
        Color.RED,
        Perm.R | Perm.W,
        Perm(0),  # no name: encoded by its value
        object.__new__(Color),  # an enum instance without _name_: an error marker
        decimal.Decimal("1.10"),
        datetime.datetime(2026, 1, 1, tzinfo=Zone()),
        datetime.date(2026, 1, 1),
        datetime.time(1, 2),
        datetime.timedelta(seconds=1.5),
        uuid.UUID(int=1),
        complex(1, 2),
        range(3),
        len,
        corpus,
        Cart,
        json,
        Cart([], "x").__repr__,
        ValueError("bad", 1),
        cyclic,
        list(range(1000)),
        {"password": "hunter2", "contact": "alice@example.com"},
    ]
    return [(v, lim) for v in values for lim in (default, small)]


def walk_keys(value: object, seen: set[str]) -> None:
    if isinstance(value, dict):
        if "@t" in value:
            seen.update(value)
        for v in value.values():
            walk_keys(v, seen)
    elif isinstance(value, list):
        for v in value:
            walk_keys(v, seen)


def redactor_or_none() -> Any:
    try:
        from sensor.redaction import Redactor
    except ImportError:
        return None
    return Redactor()


def test_schema_is_valid_json_schema() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)


def test_every_encoded_value_matches_the_schema_and_every_marker_occurs() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    red = redactor_or_none()
    seen: set[str] = set()
    for value, limits in corpus():
        for redactor in (None, red):
            out = encode(value, limits, redactor=redactor)
            errors = sorted(validator.iter_errors(out), key=str)
            assert errors == [], f"{value!r}: {out} -> {errors[0].message if errors else ''}"
            walk_keys(out, seen)
    budget = Budget(CaptureLimits(max_bytes=10))
    walk_keys(encode(["x" * 20, "y"], redactor=None, budget=budget), seen)
    late = Budget(deadline_ms=0)
    late.check_deadline()
    walk_keys(encode([1], redactor=None, budget=late), seen)
    documented = set(schema["$defs"]["typed"]["properties"])
    if red is None:
        documented.discard("@redacted")
    assert documented - seen == set()
    assert seen - documented == set()


def test_capture_frame_output_matches_the_captures_schema() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    captures_schema = {**schema, "$ref": "#/$defs/captures"}
    values = {f"v{i}": value for i, (value, _) in enumerate(corpus()[::2])}
    captures, _, _ = capture_frame(values, CaptureLimits(max_fields=100), None)
    jsonschema.validate(captures, captures_schema, cls=jsonschema.Draft202012Validator)


def test_reference_page_documents_every_schema_property() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    page = (SCHEMA_PATH.parent / "encoding.md").read_text()
    missing = [key for key in schema["$defs"]["typed"]["properties"] if f'"{key}"' not in page]
    assert missing == []
    for field, default in CaptureLimits().to_dict().items():
        assert f"| `{field}` | {default} |" in page, f"{field} default {default} not in the table"
