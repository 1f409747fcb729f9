"""Secrets inside expressions: whatever an expression does, nothing secret comes out of it.

The rule under test (docs/explanation/redaction.md, "Inside expressions"): a value the redactor
would redact, by its name *or by its content*, is an opaque ``Redacted`` marker inside an
expression; every operation that would read its content is refused; comparisons with it do not
depend on its content; and no error text quotes a value. Each test states its outcome on two
states that differ only in the secret (``A`` and ``B``, same class and same length): any
difference between the two outcomes is a leak of the secret.
"""

from __future__ import annotations

import collections
import json
from typing import Any

import pytest

from sensor import redaction
from sensor.capture.encode import capture_frame
from sensor.errors import ExpressionError
from sensor.expressions import Redacted, compile, compile_template

# Pairs of secrets of one class and one length: A and B must be indistinguishable.
CONTENT_SECRETS: dict[str, tuple[str, str]] = {
    "card": ("4111 1111 1111 1111", "5500 0000 0000 0004"),
    "card-plain": ("4012888888881881", "4222222222222220"),
    "jwt": (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THs",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI5ODc2NTQzMjEwIn0.QmF4jVy7p0c1Jk2lLmNoPqRsTuVwXyZaBcDeFgHi",
    ),
    "aws-key": ("AKIAIOSFODNN7EXAMPLE", "AKIAJ5Q7R2ZT9XWBV4MK"),
    "bearer": ("Bearer abcdefghijklmnop1234", "Bearer zyxwvutsrqponmlk9876"),
    "email": ("ann.lee@example.com", "bob.kim@example.org"),
    "url-credentials": ("postgres://app:Zq9xW7@db:5432/x", "postgres://app:Hn4kP2@db:5432/x"),
    "private-key": (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1\n-----END RSA PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA9\n-----END RSA PRIVATE KEY-----",
    ),
    "field": ("a=1&api_key=zq9Xk2Lm7Pw", "a=1&api_key=Tr4Hn8Vb1Sd"),
    "auth-scheme": (
        "Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
        "Token 1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
    ),
    "aws-secret-key": (
        "aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
    ),
    "pattern": ("order ORD-123456", "order ORD-654321"),
}
# The part of each A that must never come out; the words around a carried secret (the scheme,
# the parameter's name) are not secret and stay readable.
CORES: dict[str, str] = {
    "card": "4111 1111 1111 1111",
    "card-plain": "4012888888881881",
    "jwt": CONTENT_SECRETS["jwt"][0],
    "aws-key": "AKIAIOSFODNN7EXAMPLE",
    "bearer": "abcdefghijklmnop1234",
    "email": "ann.lee@example.com",
    "url-credentials": "app:Zq9xW7",
    "private-key": "MIIEpAIBAAKCAQEA1",
    "field": "zq9Xk2Lm7Pw",
    "auth-scheme": "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
    "aws-secret-key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "pattern": "ORD-123456",
}

# Operations that would take a content secret apart, compare it or format it.
PROBING = [
    "note",
    "note.split(' ')",
    "note.split('1')",
    "list(note)",
    "tuple(note)",
    "note[0:4]",
    "note[:-4]",
    "note[0]",
    "note[::2]",
    "note.replace('1', 'x')",
    "note.upper()",
    "note.lower()",
    "note.strip()",
    "note.partition(' ')",
    "note.startswith('4')",
    "note.endswith('4')",
    "note.find('1')",
    "note.count('1')",
    "note.isdigit()",
    "[c for c in note]",
    "[c for c in note if c == '1']",
    "{c for c in note}",
    "sorted(note)",
    "min(note)",
    "max(note)",
    "set(note)",
    "len(note)",
    "'4111' in note",
    "'a' in note",
    "'1' not in note",
    "note == 'x'",
    "note < 'm'",
    "note >= 'A'",
    "int(note)",
    "float(note)",
    "note + 'x'",
    "'x' + note",
    "note * 2",
    "' '.join([note])",
    "' '.join([note, 'x']).split(' ')",
    "str(note)",
    "repr(note)",
    "f'{note}'",
    "f'{note!r}'",
    "f'{note:>40}'",
    "f'{note}'.split(' ')",
    "str([note])",
    "str({'k': note})",
    "[note][0].split(' ')",
    "{'k': note}['k'][0:4]",
    "(note, 1)[0][0:4]",
    "any(c == '4' for c in note)",
    "all(c.isdigit() for c in note)",
    "enumerate(note)",
    "zip(note, note)",
    "reversed(note)",
    "isinstance(note, str)",
    "bool(note)",
    "note is None",
    "typename(note)",
    "note.encode()",
]


def outcome(source: str, ns: dict[str, object]) -> tuple[str, str]:
    """What leaves the process after evaluating ``source``: the capture, or the error text."""
    try:
        # A generous wall-time budget: a busy machine must not make the two runs differ.
        value = compile(source, max_seconds=5.0).evaluate(ns)
    except ExpressionError as exc:
        # The sandbox's own text, before the engine's second line of defence redacts it.
        return ("error", str(exc))
    captures, _truncated, errors = capture_frame({"v": value})
    return ("value", json.dumps([captures, errors], sort_keys=True))


def pieces(secret: str, source: str, n: int = 4) -> set[str]:
    """Substrings of the secret, of ``n`` characters, that the expression text does not hold."""
    out = set()
    for i in range(len(secret) - n + 1):
        piece = secret[i : i + n]
        if piece not in source and piece.strip() == piece and not piece.isspace():
            out.add(piece)
    return out


@pytest.fixture(autouse=True)
def redactor() -> Any:
    red = redaction.Redactor(patterns=[r"\bORD-[0-9]{6}\b"])
    redaction.set_redactor(red)
    yield red
    redaction.set_redactor(None)


# -- content secrets are as opaque as name secrets -----------------------------------------------


@pytest.mark.parametrize("kind", sorted(CONTENT_SECRETS))
def test_a_content_secret_reads_as_a_redacted_marker(kind: str) -> None:
    a, _ = CONTENT_SECRETS[kind]
    value = compile("note").evaluate({"note": a})
    assert isinstance(value, Redacted), kind
    assert value.reason != "name"
    assert a not in json.dumps(value.to_json())


@pytest.mark.parametrize("kind", sorted(CONTENT_SECRETS))
@pytest.mark.parametrize("source", PROBING)
def test_no_operation_on_a_content_secret_reveals_it(kind: str, source: str) -> None:
    a, b = CONTENT_SECRETS[kind]
    out_a = outcome(source, {"note": a})
    out_b = outcome(source, {"note": b})
    assert out_a == out_b, f"{kind}: {source!r} depends on the secret: {out_a} / {out_b}"
    for piece in pieces(CORES[kind], source):
        assert piece not in out_a[1], f"{kind}: {source!r} leaked {piece!r}: {out_a}"


@pytest.mark.parametrize("source", PROBING)
def test_every_probing_operation_is_refused_or_blind_on_a_name_secret_too(source: str) -> None:
    # The same list against a secret by name, so both kinds of secret obey one rule.
    src = source.replace("note", "password")
    out_a = outcome(src, {"password": "hunter2-Zq9x"})
    out_b = outcome(src, {"password": "letmein-Wk4y"})
    assert out_a == out_b, f"{src!r}: {out_a} / {out_b}"
    assert "hunter2" not in out_a[1]
    assert "Zq9x" not in out_a[1]


def test_a_condition_on_a_content_secret_never_fires_differently() -> None:
    card_a, card_b = CONTENT_SECRETS["card"]
    for cond in ("'4111' in note", "note.startswith('4111')", "note[0] == '4'", "len(note) > 3"):
        results = set()
        for card in (card_a, card_b):
            try:
                results.add(("value", compile(cond).evaluate({"note": card})))
            except ExpressionError:
                results.add(("error", None))
        assert len(results) == 1, f"{cond!r}: {results}"


def test_ordinary_strings_stay_readable() -> None:
    ns = {"word": "shipped by sea", "code": "ORD-12", "status": "paid"}
    assert compile("word.split(' ')").evaluate(ns) == ["shipped", "by", "sea"]
    assert compile("status == 'paid' and len(word) > 3").evaluate(ns) is True
    assert compile("code[0:3]").evaluate(ns) == "ORD"
    assert compile("f'{word}!'").evaluate(ns) == "shipped by sea!"


# -- secrets inside containers, constants and built strings --------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "'4111 1111 1111 1111' in items",
        "('4111 1111 ' + '1111 1111') in items",
        "' '.join(['4111', '1111', '1111', '1111']) in items",
        "items == ['ok', '4111 1111 1111 1111']",
        "items.count('4111 1111 1111 1111')",
        "items.index('4111 1111 1111 1111')",
        "items < ['ok', '4111 1111 1111 1112']",
        "items > ['ok', '5']",
        "sorted(items)",
        "max(items)",
        "min(pair)",
        "pair < ('ok', '5')",
        "pair == ('ok', '4111 1111 1111 1111')",
        "len({pair, ('ok', '4111 1111 1111 1111')})",
        "len(set(items) | {'4111 1111 1111 1111'})",
        "str(items)",
        "f'{items}'",
        "str(pair)",
        "[x for x in items]",
        "[x.split(' ') for x in items]",
        "[x[0:4] for x in items]",
        "[p for x in items for p in x]",
        "list(items)[1].split(' ')",
        "{x: 1 for x in items}",
        "emails.get('ann.lee@example.com')",
        "'ann.lee@example.com' in emails",
        "[k for k in emails]",
        "[k.split('@') for k in emails]",
        "list(emails.items())",
        "str(emails)",
        "len(tags & {'4111 1111 1111 1111'})",
        "len(tags - {'ok'})",
        "'4111 1111 1111 1111' in tags",
        "tags == {'ok', '4111 1111 1111 1111'}",
        "sorted(tags)",
        "[v for k, v in rows]",
        "[v.split(' ') for k, v in rows]",
        "[v[0:4] for k, v in rows]",
    ],
)
def test_content_secrets_inside_containers_constants_and_built_strings(source: str) -> None:
    card_a, card_b = "4111 1111 1111 1111", "5500 0000 0000 0004"
    email_a, email_b = "ann.lee@example.com", "bob.kim@example.org"

    def state(card: str, email: str) -> dict[str, object]:
        return {
            "items": ["ok", card],
            "pair": ("ok", card),
            "emails": {email: 1, "plain": 2},
            "rows": [("card", card), ("n", "ok")],
            "tags": {"ok", card},
        }

    out_a = outcome(source, state(card_a, email_a))
    out_b = outcome(source, state(card_b, email_b))
    assert out_a == out_b, f"{source!r} depends on the secret: {out_a} / {out_b}"
    for piece in pieces(card_a, source) | pieces(email_a, source):
        assert piece not in out_a[1], f"{source!r} leaked {piece!r}: {out_a}"


@pytest.mark.parametrize(
    "source",
    [
        "data == {'a': 1, 'password': 'hunter2-Zq9x'}",
        "data != {'a': 1, 'password': 'hunter2-Zq9x'}",
        "{'a': 1, 'password': 'hunter2-Zq9x'} == data",
        "[data] == [{'a': 1, 'password': 'hunter2-Zq9x'}]",
        "login == ('bob', 'hunter2-Zq9x')",
        "login < ('bob', 'm')",
        "('bob', 'hunter2-Zq9x') in [login]",
        "[login].count(('bob', 'hunter2-Zq9x'))",
        "str(login)",
        "sorted([login, ('bob', 'm')])",
        "{login} == {('bob', 'hunter2-Zq9x')}",
    ],
)
def test_containers_holding_name_secrets_cannot_be_compared_with_a_guess(source: str) -> None:
    Login = collections.namedtuple("Login", "user password")

    def state(pw: str) -> dict[str, object]:
        return {"data": {"a": 1, "password": pw}, "login": Login("bob", pw)}

    out_a = outcome(source, state("hunter2-Zq9x"))
    out_b = outcome(source, state("letmein-Wk4y"))
    assert out_a == out_b, f"{source!r} depends on the secret: {out_a} / {out_b}"


# -- aliases: what counts is what was read, not the name it is given ------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "password",
        "creds.password",
        "creds.api_key",
        "d['api_key']",
        "d.get('token')",
        "d.get('token', 'none')",
        "[v for k, v in d.items()][1]",
        "[v for k, v in d.items() if k == 'token'][0]",
        "list(d.values())[1]",
        "[d[k] for k in d][1]",
        "[d[k] for k in d.keys()][1]",
        "{k: v for k, v in d.items()}['token']",
        "[v for k, v in sorted(d.items())][2]",
        "[x for x in [password]][0]",
        "(password, 1)[0]",
        "[password][0]",
        "env['HTTP_AUTHORIZATION']",
        "env.get('HTTP_X_API_KEY')",
        "[v for k, v in env.items() if k.startswith('HTTP_')]",
        "headers[0][1]",
        "[v for k, v in headers][0]",
    ],
)
def test_a_secret_read_under_any_alias_is_redacted(source: str) -> None:
    class Creds:
        def __init__(self, pw: str) -> None:
            self.user = "bob"
            self.password = pw
            self.api_key = pw

    def state(pw: str) -> dict[str, object]:
        return {
            "password": pw,
            "creds": Creds(pw),
            "d": {"a": "x", "token": pw, "api_key": pw},
            "env": {"HTTP_AUTHORIZATION": pw, "HTTP_X_API_KEY": pw, "PATH_INFO": "/"},
            "headers": [(b"authorization", pw.encode()), (b"host", b"shop")],
        }

    out_a = outcome(source, state("Zq9xhunter2"))
    out_b = outcome(source, state("Wk4yletmein"))
    assert out_a == out_b, f"{source!r}: {out_a} / {out_b}"
    assert "Zq9x" not in out_a[1], out_a
    assert "hunter2" not in out_a[1], out_a


# -- error texts never quote a value --------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ("int(word)", "zebra-unique-7"),
        ("float(word)", "zebra-unique-7"),
        ("d[word]", "zebra-unique-7"),
        ("nums.index(word)", "zebra-unique-7"),
        ("word.index('Q')", "zebra-unique-7"),
        ("int(word, 7)", "zebra-unique-7"),
        ("round(1.5, word)", "zebra-unique-7"),
        ("word < 3", "zebra-unique-7"),
        ("word + 3", "zebra-unique-7"),
        ("-word", "zebra-unique-7"),
        ("word.foo", "zebra-unique-7"),
        ("word.split(3)", "zebra-unique-7"),
        ("range(word)", "zebra-unique-7"),
        ("d[nums]", "zebra-unique-7"),
        ("int(card)", "4111 1111 1111 1111"),
        ("int(card.replace(' ', ''))", "4111 1111 1111 1111"),
        ("float(jwt)", CONTENT_SECRETS["jwt"][0]),
        ("int(aws)", "AKIAIOSFODNN7EXAMPLE"),
        ("d[card]", "4111 1111 1111 1111"),
    ],
)
def test_expression_errors_never_quote_the_value(source: str, value: str) -> None:
    ns = {
        "word": value,
        "card": value,
        "jwt": value,
        "aws": value,
        "d": {"a": 1},
        "nums": [1, 2],
    }
    with pytest.raises(ExpressionError) as info:
        compile(source).evaluate(ns)
    text = str(info.value)
    for piece in pieces(value, source, 5):
        assert piece not in text, f"{source!r}: error quotes the value: {text}"


def test_a_template_field_error_does_not_quote_the_value() -> None:
    t = compile_template("n={int(word)} c={int(card)}")
    out = t.render({"word": "zebra-unique-7", "card": "4111 1111 1111 1111"})
    assert "zebra" not in out, out
    assert "1111" not in out, out
    assert out.count("{!error:") == 2


@pytest.mark.parametrize("kind", sorted(CONTENT_SECRETS))
def test_templates_render_content_secrets_redacted_whatever_the_field(kind: str) -> None:
    a, b = CONTENT_SECRETS[kind]
    t = compile_template(
        "{note} {note!r} {note.split(' ')} {list(note)} {note[0:8]} {[note]} {note.upper()}",
        max_seconds=5.0,
    )
    out_a, out_b = t.render({"note": a}), t.render({"note": b})
    assert out_a == out_b, f"{kind}: {out_a} / {out_b}"
    for piece in pieces(CORES[kind], t.source):
        assert piece not in out_a, f"{kind}: leaked {piece!r}: {out_a}"


# -- long strings: content beyond the scanner's window is not readable ---------------------------


def test_a_secret_far_into_a_long_string_is_still_found() -> None:
    long = "x " * 30_000 + "card 4111 1111 1111 1111 end"
    value = compile("note").evaluate({"note": long})
    assert isinstance(value, Redacted)
    assert value.reason == "card"
    out = outcome("note[60000:60030]", {"note": long})
    assert "1111" not in out[1], out


def test_a_string_longer_than_the_scanner_window_is_not_read_at_all() -> None:
    # Scanning more than one window per evaluation would cost milliseconds on the host's
    # thread: such a string is opaque inside expressions, whatever it holds.
    huge = "x " * 40_000 + "card 4111 1111 1111 1111 end"
    value = compile("note").evaluate({"note": huge})
    assert isinstance(value, Redacted)
    assert value.reason == "unscanned"
    with pytest.raises(ExpressionError, match="redacted"):
        compile("note[80000:80030]").evaluate({"note": huge})
    # Its length is not a secret (and conditions on a body's size are common).
    assert compile("len(note)").evaluate({"note": huge}) == len(huge)


def test_bytes_carrying_secrets_are_redacted_too() -> None:
    body = b'{"user": "bob", "password": "hunter2-Zq9x"}'
    assert isinstance(compile("body").evaluate({"body": body}), Redacted)
    out = outcome("body.split(b'\"')", {"body": body})
    assert "hunter2" not in out[1]


def test_scanning_is_cached_per_string_within_limits() -> None:
    # The cost rule: a string read by an expression is scanned for secrets (rule R2), once:
    # it is remembered, so reading it on every evaluation does not rescan it (the cache is
    # keyed by the rule version).
    red = redaction.get_redactor()
    calls = 0
    real = red.match_secret_value

    def counting(text: str) -> str | None:
        nonlocal calls
        calls += 1
        return real(text)

    red.match_secret_value = counting  # type: ignore[method-assign]
    try:
        expr = compile("status.startswith('ship')")
        for _ in range(50):
            assert expr.evaluate({"status": "shipped-express"}) is True
    finally:
        del red.match_secret_value
    assert 1 <= calls <= 2, f"the same string was scanned {calls} times"
