"""Parameters kept next to their template: a log record's ``msg`` and ``args``, a driver's query
and its parameters, SQLAlchemy's ``statement`` and ``params``.

The template names the secret and the parameter holds it: a capture hides the parameter where the
rendered text would have it redacted (sensor.capture.params), on an object's attributes and among
a frame's names, and shows every other parameter as before.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from sensor import redaction
from sensor.capture import capture_frame, encode
from sensor.capture import params as params_mod

SECRET = "Zq9Xk2Lm7PwTr4Hn8Vb1"
OTHER = "Bob-Shown-7731"


@pytest.fixture
def red() -> Any:
    return redaction.Redactor()


def dump(out: object) -> str:
    return json.dumps(out)


# (template, parameters): the secret is the parameter the template puts after a secret name; the
# other parameters hold OTHER or numbers, which must still be shown.
FRAMES = {
    "printf, UPDATE ... SET": (
        "query",
        "UPDATE users SET password = %s WHERE name = %s",
        "vars",
        (SECRET, OTHER),
    ),
    "printf, quoted": (
        "sql",
        "UPDATE t SET token = '%s' WHERE n = '%s'",
        "params",
        [SECRET, OTHER],
    ),
    "INSERT column list": (
        "sql",
        "INSERT INTO users (name, password_hash, age) VALUES (%s, %s, %s)",
        "params",
        (OTHER, SECRET, 41),
    ),
    "INSERT, the value a call": (
        "sql",
        "INSERT INTO users (name, password) VALUES (%s, crypt(%s, gen_salt('bf')))",
        "params",
        (OTHER, SECRET),
    ),
    "UPDATE, the value a call": (
        "statement",
        "UPDATE users SET password = crypt(%s, gen_salt('bf')) WHERE name = %s",
        "parameters",
        (SECRET, OTHER),
    ),
    "qmark (sqlite)": (
        "sql",
        "UPDATE u SET api_key = ? WHERE name = ?",
        "parameters",
        (SECRET, OTHER),
    ),
    "numeric (asyncpg)": ("query", "UPDATE u SET name = $2, secret = $1", "args", (SECRET, OTHER)),
    "named colon": (
        "statement",
        "UPDATE u SET client_secret = :cs WHERE name = :n",
        "params",
        {"cs": SECRET, "n": OTHER},
    ),
    "pyformat": (
        "query",
        "UPDATE u SET passwd = %(p)s WHERE name = %(n)s",
        "vars",
        {"p": SECRET, "n": OTHER},
    ),
    "str.format": ("fmt", "token={} user={}", "args", (SECRET, OTHER)),
    "str.format, named": (
        "template",
        "user={u} api_key={k}",
        "arguments",
        {"u": OTHER, "k": SECRET},
    ),
    "bytes template": (
        "query",
        b"UPDATE u SET password = %s WHERE n = %s",
        "vars",
        (SECRET, OTHER),
    ),
    "a probe's dotted captures": (
        "record.msg",
        "login password=%s by %s",
        "record.args",
        (SECRET, OTHER),
    ),
}


@pytest.mark.parametrize("case", FRAMES)
def test_a_parameter_after_a_secret_name_in_its_template_is_hidden(red: Any, case: str) -> None:
    tname, template, pname, values = FRAMES[case]
    captures, _, errors = capture_frame({tname: template, pname: values, "n": 3}, redactor=red)
    text = dump(captures)
    assert SECRET not in text, text
    assert OTHER in text, text  # the template's other parameters are shown
    assert '"@redacted": "name"' in dump(captures[pname])
    assert captures["n"] == 3
    assert errors == []


def test_executemany_hides_the_parameter_in_every_row(red: Any) -> None:
    rows = [(OTHER, SECRET), ("ann", SECRET + "2"), ("cy", SECRET + "3")]
    captures, _, _ = capture_frame(
        {"query": "INSERT INTO u (name, password) VALUES (%s, %s)", "seq_of_parameters": rows},
        redactor=red,
    )
    text = dump(captures)
    assert SECRET not in text
    for shown in (OTHER, '"ann"', '"cy"'):
        assert shown in text


def test_a_log_record_hides_its_secret_argument(red: Any) -> None:
    record = logging.LogRecord(
        "app", logging.INFO, "f.py", 1, "user %s api_key=%s", (OTHER, SECRET), None
    )
    out = encode(record, redactor=red)
    assert SECRET not in dump(out)
    assert out["@attrs"]["args"]["v"][0] == OTHER
    assert out["@attrs"]["args"]["v"][1]["@redacted"] == "name"
    # As a frame's local (a handler's emit), too.
    captures, _, _ = capture_frame({"record": record, "self": object()}, redactor=red)
    assert SECRET not in dump(captures)


def test_a_log_record_with_mapping_arguments(red: Any) -> None:
    # logging.info("... %(user)s ... %(password)s", {...}): the record's args is the dict.
    record = logging.LogRecord(
        "app",
        logging.INFO,
        "f.py",
        1,
        "%(user)s logged in, password=%(password)s",
        ({"user": OTHER, "pw": 1, "password": SECRET},),
        None,
    )
    assert type(record.args) is dict
    out = encode(record, redactor=red)
    assert SECRET not in dump(out)
    assert OTHER in dump(out)
    # One dict for one %s: the whole dict is the parameter.
    whole = logging.LogRecord(
        "app", logging.INFO, "f.py", 1, "payload secret=%s", ({"x": SECRET},), None
    )
    assert SECRET not in dump(encode(whole, redactor=red))


def test_an_exception_that_keeps_its_statement_and_parameters(red: Any) -> None:
    class StatementError(Exception):  # SQLAlchemy's shape: .statement, .params
        def __init__(self, statement: str, params: object) -> None:
            super().__init__("boom")
            self.statement = statement
            self.params = params

    exc = StatementError("UPDATE users SET password=? WHERE name=?", (SECRET, OTHER))
    captures, _, _ = capture_frame({"error": exc}, redactor=red)
    assert SECRET not in dump(captures)
    assert OTHER in dump(captures)


@pytest.mark.parametrize(
    ("template", "values"),
    [
        ("SELECT * FROM users WHERE name = %s AND age > %s", (SECRET, 3)),
        ("user=%s password_reset_sent=%s", (SECRET, True)),  # not a secret name's value
        ("no placeholders at all, password=x", (SECRET,)),
        ("%s", (SECRET,)),
    ],
)
def test_parameters_of_a_template_without_a_secret_name_are_shown(
    red: Any, template: str, values: tuple[object, ...]
) -> None:
    captures, _, _ = capture_frame({"query": template, "params": values}, redactor=red)
    assert captures["params"]["v"][0] == SECRET


def test_parameters_without_a_template_are_left_alone(red: Any) -> None:
    captures, _, _ = capture_frame({"params": (SECRET,), "other": "password=%s"}, redactor=red)
    assert captures["params"]["v"] == [SECRET]


def test_a_name_the_user_calls_secret_applies_to_templates(red: Any) -> None:
    template = "UPDATE u SET shoe_size = %s WHERE name = %s"
    captures, _, _ = capture_frame({"query": template, "params": (SECRET, OTHER)}, redactor=red)
    assert SECRET in dump(captures)  # shoe_size is not a secret name by default
    red.update(names=["shoe_size"])
    captures, _, _ = capture_frame({"query": template, "params": (SECRET, OTHER)}, redactor=red)
    assert SECRET not in dump(captures)
    assert OTHER in dump(captures)


def test_a_template_longer_than_the_redactor_scans_hides_every_parameter(red: Any) -> None:
    template = "SELECT 1 -- " + "x" * redaction.MAX_MATCH_CHARS + " password=%s"
    captures, _, _ = capture_frame({"query": template, "params": (SECRET, OTHER)}, redactor=red)
    assert captures["params"]["@redacted"] == "name"


def test_mapping_parameters_are_read_without_host_comparisons(red: Any) -> None:
    calls: list[str] = []

    class Key:
        """A key whose hash collides with the parameter's name: a lookup by name would run
        its __eq__."""

        def __hash__(self) -> int:
            return hash("p")

        def __eq__(self, other: object) -> bool:
            calls.append("eq")
            return False

    values = {Key(): 1, "p": SECRET, "n": OTHER}
    calls.clear()  # (building the dict compared them)
    captures, _, _ = capture_frame(
        {"query": "SET passwd = %(p)s, x = %(n)s", "vars": values}, redactor=red
    )
    assert calls == []
    assert SECRET not in dump(captures)


def test_the_verdict_cache_is_bounded(red: Any) -> None:
    for i in range(params_mod._CACHE_MAX * 2 + 5):
        params_mod.hidden_params(red, f"UPDATE t{i} SET password = %s")
    assert len(params_mod._CACHE) <= params_mod._CACHE_MAX


@pytest.mark.parametrize(
    ("template", "positions", "names"),
    [
        ("a=%s password=%s b=%(x)s", {1}, set()),
        ("x=%*d password=%s", {2}, set()),  # a * width takes an argument of its own
        ("100%% sure, token=%s", {0}, set()),
        ("SET a = $2, password = $1", {0}, set()),
        ("x::text = :v AND secret = :s AND t = '12:30'", set(), {"s"}),
        ("{{literal}} {} secret={}", {1}, set()),
        ("{0} api_key={1} {name}", {1}, set()),
    ],
)
def test_placeholders_are_numbered_as_the_driver_numbers_them(
    red: Any, template: str, positions: set[int], names: set[str]
) -> None:
    found = params_mod.hidden_params(red, template)
    assert set(found.positions) == positions
    assert set(found.names) == names
    assert not found.every


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "(sqlite3.IntegrityError) UNIQUE constraint failed: users.name\n"
            "[SQL: UPDATE users SET password=? WHERE name=?]\n"
            f"[parameters: ('{SECRET}, x', '{OTHER}')]\n"
            "(Background on this error at: https://sqlalche.me/e/20/gkpj)",
            ["UNIQUE constraint failed", OTHER, "sqlalche.me"],
        ),
        (
            "[SQL: INSERT INTO users (name, api_key) VALUES (%s, %s)]\n"
            f"[parameters: [('{OTHER}', '{SECRET}'), ('ann', '{SECRET}2')]]",
            [OTHER, "'ann'"],
        ),
    ],
    ids=["one row", "executemany"],
)
def test_an_error_text_that_lists_a_statements_parameters(
    red: Any, text: str, shown: list[str]
) -> None:
    # SQLAlchemy's str(error), kept by the program (error = str(exc)) or logged.
    assert red.match_secret_value(text) == "field"
    out = red.redact_text(text)
    assert SECRET not in out, out
    for kept in shown:
        assert kept in out, out
    captures, _, _ = capture_frame({"error": text}, redactor=red)
    assert SECRET not in dump(captures)


def test_an_error_text_without_a_secret_parameter_is_left_alone(red: Any) -> None:
    text = f"[SQL: SELECT * FROM users WHERE name = ?]\n[parameters: ('{OTHER}',)]"
    assert red.redact_text(text) == text


# A repr with both quotes: the first item's own quote is escaped (\\').
QUOTED = ('say "hi", it' + "'s", SECRET)


@pytest.mark.parametrize(
    "text",
    [
        "[SQL: UPDATE u SET name=?, password=? WHERE id=?]\n[parameters: " + repr(QUOTED) + "]",
        f"INSERT INTO u (name, password) VALUES ('it''s, x', '{SECRET}')",
        f"INSERT INTO u (tags, password) VALUES (ARRAY['a', 'b,c'], '{SECRET}')",
    ],
    ids=["escaped quote", "doubled quote", "brackets"],
)
def test_quotes_and_brackets_do_not_shift_the_items(red: Any, text: str) -> None:
    out = red.redact_text(text)
    assert SECRET not in out, out
    assert "<redacted:field>" in out


@pytest.mark.parametrize(
    ("template", "positions", "names"),
    [
        ("UPDATE u SET note = 'what?', password = ? WHERE id = ?", {0}, set()),
        ("UPDATE u SET note = 'it''s 12:30', secret = :s WHERE id = :id", set(), {"s"}),
        ("UPDATE u SET note = '$1', token = $1 WHERE id = $2", {0}, set()),
    ],
)
def test_a_drivers_placeholder_inside_a_string_literal_is_not_one(
    red: Any, template: str, positions: set[int], names: set[str]
) -> None:
    found = params_mod.hidden_params(red, template)
    assert set(found.positions) == positions
    assert set(found.names) == names


def test_a_template_longer_than_the_scan_is_not_read_and_hides_every_parameter(red: Any) -> None:
    import tracemalloc

    text = "x" * (8 << 20) + " password=%s"  # 8 MiB: never decoded, copied or scanned
    for template in (text, text.encode()):
        tracemalloc.start()
        try:
            found = params_mod.hidden_params(red, template)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert found.every
        assert peak < 1 << 20


def test_parameters_are_hidden_whole_when_hiding_them_fails(
    red: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fail closed: a failure while hiding (a list another thread shrinks between its length
    # and an index) must not leave the parameters as they were encoded.
    import importlib

    encode_mod = importlib.import_module("sensor.capture.encode")

    def broken(*args: object) -> object:
        raise IndexError("list index out of range")

    monkeypatch.setattr(encode_mod._Walker, "_hide_in", broken)
    captures, _, _ = capture_frame(
        {"query": "UPDATE u SET password = %s", "params": [SECRET]}, redactor=red
    )
    assert SECRET not in dump(captures)
    assert captures["params"]["@redacted"] == "name"
