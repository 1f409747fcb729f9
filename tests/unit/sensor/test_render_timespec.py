"""Text for people from hub data (escaped, decoded) and the one parser of times."""

from __future__ import annotations

import pytest

from sensor.render import escape_text, render_captures, render_value
from sensor.timespec import parse_time

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain café ✓", "plain café ✓"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("a\rb\nc\td", "a\\rb\\nc\\td"),
        ("bell\x07 del\x7f c1\x9b", "bell\\x07 del\\x7f c1\\x9b"),
        ("abc\u202eevil\u2066x\u200b", "abc\\u202eevil\\u2066x\\u200b"),
        ("lone \ud800", "lone \\ud800"),
    ],
)
def test_escape_text_shows_control_characters(text: str, shown: str) -> None:
    assert escape_text(text) == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ({"@t": "decimal.Decimal", "v": "12.50"}, "Decimal('12.50')"),
        (
            {"@t": "datetime.datetime", "v": "2026-11-24T13:05:00+00:00"},
            "datetime(2026-11-24T13:05:00+00:00)",
        ),
        ({"@t": "str", "@redacted": "email", "@len": "9-32"}, "<str redacted: email, 9-32>"),
        ({"@t": "list", "v": [1, None, "x"]}, "[1, None, 'x']"),
        ({"@t": "dict", "v": {"a": 1}}, "{'a': 1}"),
        ({"@t": "shop.Cart", "@attrs": {"items": {"@t": "list", "v": []}}}, "Cart(items=[])"),
        ({"@t": "int", "v": "1152921504606846976"}, "1152921504606846976"),
        ({"@t": "shop.Node", "@depth": True}, "<Node depth>"),
        ("\x1b]0;title\x07", "'\\x1b]0;title\\x07'"),
    ],
)
def test_render_value_decodes_the_typed_encoding(value: object, shown: str) -> None:
    assert render_value(value, 200) == shown


def test_render_captures_is_bounded() -> None:
    text = render_captures({"a": "x" * 500, "b": 2}, 60)
    assert len(text) == 60
    assert text.endswith("...")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", NOW - 90),
        ("30m", NOW - 1800),
        ("2h", NOW - 7200),
        ("1d", NOW - 86400),
        ("1w", NOW - 604800),
        ("45", NOW - 45),
        ("1700000000", 1700000000.0),
        ("2026-01-01", 1767225600.0),
        ("2026-01-01T00:00:00Z", 1767225600.0),
    ],
)
def test_parse_time_reads_durations_iso_times_and_epochs(text: str, expected: float) -> None:
    assert parse_time(text, now=NOW) == pytest.approx(expected)


def test_parse_time_names_what_it_accepts() -> None:
    with pytest.raises(ValueError, match=r"got 'yesterday', expected a duration \(90s, 30m"):
        parse_time("yesterday", now=NOW)
