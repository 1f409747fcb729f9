"""Marker arguments parsed into a probe and settings; every invalid argument named."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_runtime.errors import MarkerError
from pytest_runtime.markers import ProbeRequest, ProbeSettings, parse_probe_args


def test_the_common_case_gives_a_snapshot_probe_at_return() -> None:
    request = parse_probe_args(
        ("shop.pricing:apply_discount",),
        {"capture": ["price", "rate"], "expect": "0 <= result <= price"},
    )
    probe = request.probe
    assert str(probe.location) == "shop.pricing:apply_discount@return"
    assert probe.kind.value == "snapshot"
    assert [c.expr for c in probe.capture] == ["price", "rate"]
    assert probe.expect == "0 <= result <= price"
    assert request.settings == ProbeSettings()


def test_settings_and_selector_come_from_the_marker() -> None:
    request = parse_probe_args(
        (),
        {
            "location": "shop.cart:total@entry",
            "ignore": ["captures.cart.id"],
            "min_hits": 3,
            "strict": True,
            "wait": 2,
            "service": "shop",
            "labels": {"env": "prod"},
        },
    )
    assert request.settings.ignore == ("captures.cart.id",)
    assert request.settings.selector() == {"service": "shop", "labels": {"env": "prod"}}
    assert ProbeSettings().selector("default-svc") == {"service": "default-svc"}
    assert request.settings.wait == 2.0


def test_same_probe_from_two_markers_has_one_signature() -> None:
    a = parse_probe_args(("m:f",), {"capture": ["x"]})
    b = parse_probe_args(("m:f@return",), {"capture": ["x"], "min_hits": 9})
    assert a.signature == b.signature
    assert a.probe.id != b.probe.id


def test_request_round_trips_through_plain_data() -> None:
    request = parse_probe_args(("m:f",), {"capture": ["x"], "labels": {"a": "b"}, "wait": 1})
    copy = ProbeRequest.from_dict(request.to_dict())
    assert copy.signature == request.signature
    assert copy.settings == request.settings


def test_plumbing_false_compares_server_plumbing_for_this_probe_only() -> None:
    request = parse_probe_args(("m:f",), {"capture": ["environ"], "plumbing": False})
    assert request.settings.plumbing is False
    assert ProbeRequest.from_dict(request.to_dict()).settings.plumbing is False
    # Not given: the run's ini option decides.
    assert parse_probe_args(("m:f",), {"capture": ["x"]}).settings.plumbing is None


@pytest.mark.parametrize(
    ("args", "kwargs", "argument", "expected"),
    [
        ((), {}, "location", "a location"),
        (("m:f", "x"), {}, "args", "one positional argument"),
        ((42,), {}, "location", "a string"),
        (("not a location",), {}, "location", "'module:qualname'"),
        (("m:f",), {"capture": "price"}, "capture", "not one string"),
        (("m:f",), {"capture": [1]}, "capture", "non-empty strings"),
        (("m:f",), {"ignore": "a.b"}, "ignore", "not one string"),
        (("m:f",), {"expect": ""}, "expect", "non-empty string"),
        (("m:f",), {"min_hits": 0}, "min_hits", ">= 1"),
        (("m:f",), {"min_hits": 1.5}, "min_hits", "whole number"),
        (("m:f",), {"wait": -1}, "wait", ">= 0"),
        (("m:f",), {"strict": "yes"}, "strict", "True or False"),
        (("m:f",), {"plumbing": "off"}, "plumbing", "True or False"),
        (("m:f",), {"labels": {"a": 1}}, "labels", "mapping of strings"),
        (("m:f",), {"kind": "photo"}, "kind", "one of snapshot"),
        (("m:f",), {"captures": ["x"]}, "captures", "one of location"),
        (("m:f@entry",), {"expect": "result > 0"}, "expect", "no 'result' at @entry"),
        (("m:f",), {"location": "m:g"}, "location", "given once"),
        (("m:f",), {"raises": "not a name!"}, "raises", "a dotted name such as"),
        (("m:f",), {"raises": 42}, "raises", "an exception class"),
        (("m:f",), {"raises": (ValueError, int)}, "raises", "an exception class"),
        (("m:f",), {"raises": ()}, "raises", "(not empty)"),
        (("m:f@entry",), {"raises": ValueError}, "raises", "never sees an exception leave"),
    ],
)
def test_invalid_arguments_are_named_with_their_value(
    args: tuple[Any, ...], kwargs: dict[str, Any], argument: str, expected: str
) -> None:
    with pytest.raises(MarkerError) as info:
        parse_probe_args(args, kwargs)
    assert info.value.argument == argument
    assert expected in str(info.value)
    assert f"runtime_probe argument {argument!r}" in str(info.value)


def test_raises_accepts_classes_dotted_names_and_tuples_named_as_the_sensor_names_them() -> None:
    import decimal
    import json

    def raises(value: object) -> tuple[str, ...]:
        return parse_probe_args(("m:f",), {"raises": value}).settings.raises

    assert raises(ValueError) == ("ValueError",)
    assert raises("builtins.KeyError") == ("KeyError",)
    assert raises((decimal.InvalidOperation, "shop.errors.OutOfStock")) == (
        "decimal.InvalidOperation",
        "shop.errors.OutOfStock",
    )
    assert raises([json.JSONDecodeError]) == ("json.decoder.JSONDecodeError",)
    assert parse_probe_args(("m:f@exception",), {"raises": KeyError}).settings.raises
    request = parse_probe_args(("m:f",), {"raises": ValueError})
    assert ProbeRequest.from_dict(request.to_dict()).settings == request.settings
