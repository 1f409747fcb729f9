"""The probe model: parsing, validation messages, signatures and the JSON round trip."""

from __future__ import annotations

import json

import pytest

from sensor.errors import ProbeSpecError
from sensor.probes import (
    CaptureLimits,
    Hit,
    Location,
    Point,
    Probe,
    ProbeKind,
    ProbeLimits,
    ProbeState,
    ProbeStatus,
)


@pytest.mark.parametrize(
    ("text", "module", "qualname", "point", "line"),
    [
        ("shop.pricing:apply_discount", "shop.pricing", "apply_discount", Point.RETURN, None),
        ("shop.pricing:apply_discount@entry", "shop.pricing", "apply_discount", Point.ENTRY, None),
        ("shop:Cart.total@return", "shop", "Cart.total", Point.RETURN, None),
        ("shop:f@exception", "shop", "f", Point.EXCEPTION, None),
        ("shop:Cart.total@42", "shop", "Cart.total", Point.LINE, 42),
        ("a.b:outer.<locals>.inner@7", "a.b", "outer.<locals>.inner", Point.LINE, 7),
    ],
)
def test_location_parses_function_forms(
    text: str, module: str, qualname: str, point: Point, line: int | None
) -> None:
    location = Location.parse(text)
    assert (location.module, location.qualname, location.point, location.line) == (
        module,
        qualname,
        point,
        line,
    )
    assert Location.parse(str(location)) == location


def test_location_parses_path_and_line() -> None:
    location = Location.parse("shop/pricing.py:42")
    assert location.path == "shop/pricing.py"
    assert location.line == 42
    assert location.point is Point.LINE
    assert str(location) == "shop/pricing.py:42"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "shop",
        "shop:",
        ":f",
        "shop:f@",
        "shop:f@nowhere",
        "shop:f@-1",
        "shop.py:12x",
        "shop/a.py:0x",
        "1a:f",
    ],
)
def test_location_rejects_malformed_text_and_names_it(text: str) -> None:
    with pytest.raises(ProbeSpecError) as info:
        Location.parse(text)
    assert repr(text) in str(info.value)
    assert "module:qualname" in str(info.value)


def test_location_line_zero_is_refused() -> None:
    with pytest.raises(ProbeSpecError, match="positive line number"):
        Location.parse("shop:f@0")


def test_probe_accepts_strings_and_lists() -> None:
    probe = Probe(
        kind="snapshot",
        location="shop.pricing:apply_discount",
        capture=["price", "rate"],
        expect="0 <= result <= price",
    )
    assert probe.kind is ProbeKind.SNAPSHOT
    assert probe.location.point is Point.RETURN
    assert [c.name for c in probe.capture] == ["price", "rate"]
    assert probe.rate == 1.0


def test_capture_mapping_names_expressions() -> None:
    probe = Probe(kind="snapshot", location="m:f", capture={"n": "len(items)"})
    assert probe.capture[0].name == "n"
    assert probe.capture[0].expr == "len(items)"
    assert not probe.capture[0].is_plain_name


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "trace", "location": "m:f"}, "field 'kind': got 'trace'"),
        ({"kind": "expect", "location": "m:f"}, "field 'expect': got None"),
        ({"kind": "log", "location": "m:f"}, "field 'template': got None"),
        ({"kind": "counter", "location": "m:f", "expect": "x"}, "no expectation on a counter"),
        ({"kind": "snapshot", "location": "m:f", "capture": "price"}, "not one string"),
        ({"kind": "snapshot", "location": "m:f", "capture": ["a", "a"]}, "each captured name"),
        ({"kind": "counter", "location": "m:f", "capture": ["a"]}, "none on a counter"),
        ({"kind": "snapshot", "location": "m:f@entry", "expect": "result > 0"}, "no 'result'"),
        ({"kind": "timer", "location": "m:f@10", "until_line": 5}, "after the timer's start"),
        ({"kind": "snapshot", "location": "m:f", "until_line": 5}, "only on a 'timer'"),
        ({"kind": "snapshot", "location": "m:f", "source_hash": "abc"}, "sha256"),
        ({"kind": "snapshot", "location": "m:f", "id": "bad id!"}, "field 'id'"),
        ({"kind": "snapshot", "location": "m:f", "condition": ""}, "field 'condition'"),
    ],
)
def test_invalid_probe_names_field_and_value(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ProbeSpecError, match=message.replace("(", r"\(")):
        Probe(**fields)  # type: ignore[arg-type]


def test_probe_spec_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Probe(kind="snapshot", location="nowhere")


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"rate": 0}, "limits.rate"),
        ({"rate": float("inf")}, "limits.rate"),
        ({"max_hits": 0}, "limits.max_hits"),
        ({"max_hits": True}, "limits.max_hits"),
        ({"burst": 1.5}, "limits.burst"),
        ({"expires_at": "tomorrow"}, "limits.expires_at"),
        ({"capture": {"max_depth": -1}}, "limits.capture.max_depth"),
        ({"capture": {"max_items": 2.5}}, "limits.capture.max_items"),
        ({"capture": {"colour": 1}}, "limits.capture"),
        ({"speed": 1}, "limits"),
    ],
)
def test_invalid_limits_name_the_field(limits: dict[str, object], field: str) -> None:
    with pytest.raises(ProbeSpecError, match=f"field '{field}'"):
        Probe.from_dict({"kind": "snapshot", "location": "m:f", "limits": limits})


def test_signature_ignores_identity_and_limits_but_not_expressions() -> None:
    a = Probe(kind="snapshot", location="m:f", capture=["x"], expect="x > 0")
    b = Probe(
        kind="snapshot",
        location="m:f@return",
        capture=["x"],
        expect="x > 0",
        limits=ProbeLimits(rate=5, max_hits=3),
        tags={"test": "t::x"},
    )
    c = Probe(kind="snapshot", location="m:f", capture=["x"], expect="x >= 0")
    assert a.id != b.id
    assert a.signature == b.signature
    assert a.signature != c.signature
    assert len(a.signature) == 16


def test_json_round_trip_keeps_every_field() -> None:
    probe = Probe(
        kind="timer",
        location="shop/cart.py:10",
        until_line=20,
        limits=ProbeLimits(
            rate=2.5, burst=3, max_hits=10, expires_at=2e9, capture=CaptureLimits(max_depth=1)
        ),
        tags={"who": "test"},
    )
    again = Probe.from_json(probe.to_json())
    assert again == probe
    assert again.signature == probe.signature
    assert json.loads(probe.to_json())["signature"] == probe.signature


def test_from_dict_rejects_unknown_fields_and_forged_signatures() -> None:
    data = Probe(kind="snapshot", location="m:f").to_dict()
    with pytest.raises(ProbeSpecError, match="only the fields"):
        Probe.from_dict({**data, "colour": "red"})
    with pytest.raises(ProbeSpecError, match="field 'signature'"):
        Probe.from_dict({**data, "signature": "0" * 16})
    with pytest.raises(ProbeSpecError, match="field 'kind'"):
        Probe.from_dict({"location": "m:f"})
    with pytest.raises(ProbeSpecError, match="a JSON object"):
        Probe.from_dict(["not", "a", "dict"])  # type: ignore[arg-type]
    with pytest.raises(ProbeSpecError, match="JSON"):
        Probe.from_json("{not json")


def test_status_and_hit_round_trip() -> None:
    status = ProbeStatus("p1", ProbeState.DISABLED, reason="rate", hits=3, drops=1)
    assert ProbeStatus.from_dict(status.to_dict()) == status
    with pytest.raises(ProbeSpecError, match=r"status\.state"):
        ProbeStatus.from_dict({"probe_id": "p1", "state": "asleep"})
    hit = Hit("p1", "sig", "snapshot", "m:f@return", 1.5, hit_id="a-1", captures={"x": 1})
    assert Hit.from_dict(hit.to_dict()) == hit
    assert "message" not in hit.to_dict()
    with pytest.raises(ProbeSpecError, match=r"hit\.ts"):
        Hit.from_dict({"probe_id": "p1", "signature": "s", "kind": "snapshot", "location": "m:f"})
