"""Redaction during capture: secret names and secret values never reach the encoded output."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any, NamedTuple

import pytest

from sensor import redaction
from sensor.capture import DEFAULT_REDACTOR, capture_frame, encode
from sensor.probes import CaptureLimits

MOD = __name__
CARD = "4111 1111 1111 1111"
EMAIL = "alice.smith@example.com"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
PASSWORD = "hunter2-Zq9"
API_KEY = "k-7f3a9c1e5b"
SECRETS = (CARD, EMAIL, JWT, PASSWORD, API_KEY, "4111111111111111", "alice.smith")


@pytest.fixture
def red() -> Any:
    return redaction.Redactor()


def leaks(out: object) -> list[str]:
    text = json.dumps(out)
    return [s for s in SECRETS if s in text]


@dataclasses.dataclass
class Login:
    user: str
    password: str


class Session:
    __slots__ = ("token", "user")

    def __init__(self) -> None:
        self.user = "bob"
        self.token = API_KEY


class Creds(NamedTuple):
    user: str
    api_key: str


class Profile:
    def __init__(self) -> None:
        self.name = "Bob"
        self.contact = EMAIL
        self.notes = [f"card on file: {CARD}"]


def test_secret_capture_names_keep_only_type_and_length_class(red: Any) -> None:
    captures, _, _ = capture_frame({"password": PASSWORD, "user": "bob"}, None, red)
    assert captures == {
        "password": {"@t": "str", "@redacted": "name", "@len": "9-32"},
        "user": "bob",
    }


def test_secret_names_inside_capture_expressions(red: Any) -> None:
    values = {"user.password": PASSWORD, "headers['Authorization']": "Bearer abcdefghijkl"}
    captures, _, _ = capture_frame(values, None, red)
    assert captures["user.password"] == {"@t": "str", "@redacted": "name", "@len": "9-32"}
    assert captures["headers['Authorization']"]["@redacted"] == "name"


def test_secret_dict_keys_at_every_depth(red: Any) -> None:
    value = {"outer": [({"api_key": API_KEY, "ok": 1},)], "Password": PASSWORD}
    out = encode(value, CaptureLimits(max_depth=4), redactor=red)
    assert leaks(out) == []
    assert out == {
        "@t": "dict",
        "v": {
            "outer": {
                "@t": "list",
                "v": [
                    {
                        "@t": "tuple",
                        "v": [
                            {
                                "@t": "dict",
                                "v": {
                                    "api_key": {"@t": "str", "@redacted": "name", "@len": "9-32"},
                                    "ok": 1,
                                },
                            }
                        ],
                    }
                ],
            },
            "Password": {"@t": "str", "@redacted": "name", "@len": "9-32"},
        },
    }


def test_secret_names_on_objects_dataclasses_slots_and_namedtuples(red: Any) -> None:
    value = [Login("bob", PASSWORD), Session(), Creds("bob", API_KEY)]
    out = encode(value, None, redactor=red)
    assert leaks(out) == []
    login, session, creds = out["v"]
    assert login == {
        "@t": f"{MOD}.Login",
        "@attrs": {"user": "bob", "password": {"@t": "str", "@redacted": "name", "@len": "9-32"}},
    }
    assert session["@attrs"]["token"] == {"@t": "str", "@redacted": "name", "@len": "9-32"}
    assert session["@attrs"]["user"] == "bob"
    assert creds["@attrs"]["api_key"]["@redacted"] == "name"


def test_a_secret_name_hides_a_whole_container_keeping_its_type(red: Any) -> None:
    value = {"credentials": {"user": "bob", "pin": "1234"}, "secret": Login("a", "b")}
    out = encode(value, None, redactor=red)
    assert out["v"]["credentials"] == {"@t": "dict", "@redacted": "name", "@len": "1-8"}
    assert out["v"]["secret"] == {"@t": f"{MOD}.Login", "@redacted": "name"}


def test_secret_values_are_redacted_anywhere(red: Any) -> None:
    value = {"profile": Profile(), "items": [EMAIL, ("x", CARD)], "jwt_in_text": f"got {JWT}"}
    out = encode(value, None, redactor=red)
    assert leaks(out) == []
    assert out["v"]["items"]["v"][0] == {"@t": "str", "@redacted": "email", "@len": "9-32"}
    assert out["v"]["items"]["v"][1]["v"][1] == {"@t": "str", "@redacted": "card", "@len": "9-32"}
    assert out["v"]["jwt_in_text"]["@redacted"] == "jwt"
    assert out["v"]["profile"]["@attrs"]["contact"]["@redacted"] == "email"
    assert out["v"]["profile"]["@attrs"]["name"] == "Bob"


def test_secret_value_used_as_a_dict_key_switches_to_items(red: Any) -> None:
    out = encode({EMAIL: 3, "plain": 1}, None, redactor=red)
    assert leaks(out) == []
    assert out == {
        "@t": "dict",
        "items": [
            [{"@t": "str", "@redacted": "email", "@len": "9-32"}, 3],
            ["plain", 1],
        ],
    }


def test_secret_straddling_the_string_cut_is_caught(red: Any) -> None:
    text = "x" * 240 + " " + EMAIL + " tail"
    out = encode(text, CaptureLimits(max_string=255), redactor=red)
    assert out == {"@t": "str", "@redacted": "email", "@len": "129+"}


@pytest.mark.parametrize("wrap", [str, str.encode, lambda s: bytearray(s.encode())])
def test_secret_straddling_the_cut_in_str_bytes_and_bytearray(red: Any, wrap: Any) -> None:
    value = wrap("x" * 10 + " " + EMAIL)
    out = encode(value, CaptureLimits(max_string=15), redactor=red)
    assert out["@redacted"] == "email"
    assert leaks(out) == []


def test_secret_far_past_the_cut_is_not_scanned_and_not_kept(red: Any) -> None:
    text = "x" * 10_000 + EMAIL
    out = encode(text, None, redactor=red)
    assert leaks(out) == []
    assert out["@trunc"] is True


def test_secret_in_bytes_and_str_subclasses(red: Any) -> None:
    class Text(str):
        __slots__ = ()

    out = encode([f"Bearer {API_KEY}xyz".encode(), Text(EMAIL)], None, redactor=red)
    assert leaks(out) == []
    assert out["v"][0] == {"@t": "bytes", "@redacted": "bearer", "@len": "9-32"}
    text_type = f"{MOD}.test_secret_in_bytes_and_str_subclasses.<locals>.Text"
    assert out["v"][1] == {"@t": text_type, "@redacted": "email", "@len": "9-32"}


def test_str_subclass_key_with_a_secret_name(red: Any) -> None:
    class Key(str):
        __slots__ = ()

    out = encode({Key("password"): PASSWORD}, None, redactor=red)
    assert leaks(out) == []
    assert out["items"][0][1] == {"@t": "str", "@redacted": "name", "@len": "9-32"}


def test_nothing_secret_leaves_a_mixed_frame(red: Any) -> None:
    values = {
        "login": Login("bob", PASSWORD),
        "session": Session(),
        "creds": Creds("bob", API_KEY),
        "profile": Profile(),
        "payload": {"cards": [CARD], "meta": {"auth_token": JWT}},
        "api_key": API_KEY,
    }
    captures, _, errors = capture_frame(values, None, red)
    assert leaks(captures) == []
    assert errors == []
    assert set(captures) == set(values)


@pytest.fixture
def process_redactor() -> Iterator[Any]:
    custom = redaction.Redactor(names=["sku"])
    redaction.set_redactor(custom)
    try:
        yield custom
    finally:
        redaction.set_redactor(None)


def test_default_redactor_is_the_process_one(process_redactor: Any) -> None:
    captures, _, _ = capture_frame({"sku": "A-1", "password": PASSWORD, "n": 1})
    assert captures == {
        "sku": {"@t": "str", "@redacted": "name", "@len": "1-8"},
        "password": {"@t": "str", "@redacted": "name", "@len": "9-32"},
        "n": 1,
    }
    assert encode({"sku": 1}, redactor=DEFAULT_REDACTOR)["v"]["sku"]["@redacted"] == "name"


def test_redactor_update_applies_to_the_next_capture(process_redactor: Any) -> None:
    assert capture_frame({"order_ref": "R1"})[0] == {"order_ref": "R1"}
    process_redactor.update(names=["order_ref"])
    assert capture_frame({"order_ref": "R1"})[0]["order_ref"]["@redacted"] == "name"


def test_redaction_can_be_switched_off_for_tests() -> None:
    captures, _, _ = capture_frame({"password": "x"}, None, None)
    assert captures == {"password": "x"}


def test_cached_value_verdicts_follow_pattern_updates(process_redactor: Any) -> None:
    assert capture_frame({"ref": "ORD-12345"})[0] == {"ref": "ORD-12345"}
    process_redactor.update(patterns=[r"ORD-\d+"])
    assert capture_frame({"ref": "ORD-12345"})[0]["ref"] == {
        "@t": "str",
        "@redacted": "pattern",
        "@len": "9-32",
    }


def test_cached_value_verdicts_are_per_redactor() -> None:
    plain = redaction.Redactor()
    strict = redaction.Redactor(patterns=[r"ORD-\d+"])
    for _ in range(2):
        assert encode("ORD-12345", redactor=plain) == "ORD-12345"
        assert encode("ORD-12345", redactor=strict)["@redacted"] == "pattern"


def test_concurrent_captures_with_two_redactors_agree_with_serial_ones() -> None:
    import threading

    plain = redaction.Redactor()
    strict = redaction.Redactor(names=["sku"], patterns=[r"ORD-\d+"])
    values = {"sku": "A-1", "ref": "ORD-12345", "contact": EMAIL, "items": [Login("b", "p")]}
    expected = {id(r): capture_frame(values, None, r) for r in (plain, strict)}
    mismatches: list[object] = []

    def work(red: Any) -> None:
        for _ in range(200):
            got = capture_frame(values, None, red)
            if got != expected[id(red)]:
                mismatches.append(got)

    threads = [threading.Thread(target=work, args=(r,)) for r in (plain, strict) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert mismatches == []
    assert expected[id(plain)][0]["sku"] == "A-1"
    assert expected[id(strict)][0]["sku"]["@redacted"] == "name"


def test_expression_redacted_marker_encodes_as_its_redacted_form() -> None:
    from sensor import expressions
    from sensor.capture.encode import capture_frame

    class Account:
        def __init__(self) -> None:
            self.password = "hunter22"

    value = expressions.compile("account.password").evaluate({"account": Account()})
    assert isinstance(value, expressions.Redacted)
    captures, _truncated, errors = capture_frame({"pw": value})
    assert errors == []
    assert captures["pw"] == value.to_json()
    assert captures["pw"]["@redacted"] == "name"
    assert "hunter22" not in repr(captures)


def test_expression_marker_under_a_secret_capture_name_keeps_the_hidden_type() -> None:
    """``capture=["(session)"]`` on a module global named like a secret (Flask's ``session``),
    or ``(user.password)``: the sandbox hands a marker, and the secret capture name hides it
    again; the hit must name the hidden value's type, not the sandbox's marker class."""
    from sensor import expressions

    class LocalProxy:
        __slots__ = ("_wrapped",)

    class Account:
        def __init__(self) -> None:
            self.password = "hunter22"

    session = expressions.compile("(session)").evaluate({"session": LocalProxy()})
    password = expressions.compile("(account.password)").evaluate({"account": Account()})
    captures, _truncated, errors = capture_frame(
        {"(session)": session, "(account.password)": password}
    )
    assert errors == []
    assert captures["(session)"] == {"@t": session.type_name, "@redacted": "name"}
    assert session.type_name.endswith("LocalProxy")
    assert captures["(account.password)"] == {"@t": "str", "@redacted": "name", "@len": "1-8"}
    assert "hunter22" not in repr(captures)
    assert "Redacted" not in repr(captures)


def test_redacted_marker_under_a_secret_capture_name_keeps_the_hidden_type() -> None:
    from sensor import expressions
    from sensor.capture.encode import capture_frame

    note = expressions.compile("note").evaluate({"note": "paid with 4111 1111 1111 1111"})
    assert isinstance(note, expressions.Redacted)
    captures, _truncated, errors = capture_frame({"password": note})
    assert errors == []
    assert captures["password"] == {"@t": "str", "@redacted": "name", "@len": "9-32"}


def test_known_secrets_finds_secret_named_values_in_any_form() -> None:
    from sensor.capture.encode import known_secrets, scrub_known

    known = known_secrets(
        {"password": "it's-Zq9", "cfg": {"api_key": b"k3y\nbytes"}, "name": "bob", "pin": "12"}
    )
    assert known is not None
    texts = [
        'invalid literal for int() with base 10: "it\'s-Zq9"',
        "ValueError('it\\'s-Zq9')",
        "upper IT'S-ZQ9",
        "b'k3y\\nbytes' and k3y\nbytes",
        "bob 12",
    ]
    out = scrub_known({"m": texts, "it's-Zq9": 1}, known)
    assert out == {
        "m": [
            'invalid literal for int() with base 10: "<redacted:name>"',
            "ValueError('<redacted:name>')",
            "upper <redacted:name>",
            "b'<redacted:name>' and <redacted:name>",
            "bob 12",
        ],
        "<redacted:name>": 1,
    }
    assert known_secrets({"name": "bob", "password": None, "token": "abc"}) is None
