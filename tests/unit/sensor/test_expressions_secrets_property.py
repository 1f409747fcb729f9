"""Property: no expression of the allowed language reveals a secret, by any output.

Expressions are drawn from a grammar of the language (names, attributes, subscripts, slices,
calls of the allowed builtins and methods, comprehensions, comparisons, boolean operators,
f-strings, log templates) and evaluated on two states that differ only in their secrets: a
secret by name (``password``, ``creds.api_key``, ``d['token']``...) and secrets by content of
every class the redactor knows (a card, a JWT, an AWS key id, a bearer token, an e-mail, URL
credentials, a private key, a secret query parameter, an authorization scheme, an AWS secret key,
a configured pattern). For each expression:

* the outcome on state A and on state B is the same: the same capture encoding, or the same
  error text, or the same truth value as a condition (so no bit of a secret decides anything);
* no output holds a piece (4 characters or more) of a secret that is not in the expression
  text itself.

Bounded and deterministic: a fixed number of examples, derandomized, no example database.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensor import redaction
from sensor.capture.encode import capture_frame
from sensor.errors import ExpressionError
from sensor.expressions import compile, compile_template

PATTERN = r"\bORD-[0-9]{6}\b"

# (class, value in state A, value in state B, the part of A that must never come out): same
# class, same length. For a carried secret (a query parameter, an authorization scheme) the
# words around the credential are not secret and stay readable.
SECRETS: list[tuple[str, str, str, str]] = [
    ("card", "4111 1111 1111 1111", "5500 0000 0000 0004", "4111 1111 1111 1111"),
    (
        "jwt",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI5ODc2NTQzMjEwIn0.QmF4jVy7p0c1Jk2lLmNoPqRsTuVwXyZa",
        "eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P",
    ),
    ("aws-key", "AKIAIOSFODNN7EXAMPLE", "AKIAJ5Q7R2ZT9XWBV4MK", "AKIAIOSFODNN7EXAMPLE"),
    (
        "bearer",
        "Bearer abcdefghijklmnop1234",
        "Bearer zyxwvutsrqponmlk9876",
        "abcdefghijklmnop1234",
    ),
    ("email", "ann.lee@example.com", "bob.kim@example.org", "ann.lee@example.com"),
    ("url", "postgres://app:Zq9xW7@db:5432/x", "postgres://app:Hn4kP2@db:5432/x", "app:Zq9xW7"),
    (
        "private-key",
        "-----BEGIN PRIVATE KEY-----\nMIIEpAIBAAKCAQEA1\n-----END PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----\nMIIEowIBAAKCAQEA9\n-----END PRIVATE KEY-----",
        "MIIEpAIBAAKCAQEA1",
    ),
    ("field", "a=1&api_key=zq9Xk2Lm7Pw", "a=1&api_key=Tr4Hn8Vb1Sd", "zq9Xk2Lm7Pw"),
    (
        "auth-scheme",
        "Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
        "Token 1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
        "9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
    ),
    (
        "aws-secret-key",
        "aws_secret_access_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCY",
    ),
    ("pattern", "order ORD-123456", "order ORD-654321", "ORD-123456"),
]
assert all(len(a) == len(b) and core in a for _, a, b, core in SECRETS)
NAME_SECRET = ("hunter2-Zq9x", "letmein-Wk4y")


class Creds:
    def __init__(self, password: str, note: str) -> None:
        self.user = "bob"
        self.api_key = password
        self.note = note


def state(side: int, secret: tuple[str, str, str, str]) -> dict[str, object]:
    pw = NAME_SECRET[side]
    note = secret[1 + side]
    return {
        "password": pw,
        "note": note,
        "word": "hello world",
        "n": 3,
        "nums": [3, 1, 2],
        "items": ["ok", note, "plain"],
        "pair": ("ok", note),
        "d": {"a": 1, "token": pw, "text": note, "w": "hi"},
        "rows": [("user", "bob"), ("card", note), ("password", pw)],
        "creds": Creds(pw, note),
        "blob": note.encode(),
    }


# -- the grammar -------------------------------------------------------------------------------

NAMES = ["password", "note", "word", "n", "nums", "items", "pair", "d", "rows", "creds", "blob"]
ATTRS = ["user", "api_key", "note"]
STR_METHODS0 = ["upper", "lower", "strip", "title", "isdigit", "isalpha", "splitlines"]
STR_METHODS1 = ["split", "startswith", "endswith", "find", "count", "partition", "removeprefix"]
DICT_METHODS = ["keys()", "values()", "items()", "get('token')", "get('text')", "get('w')"]
FUNCS1 = ["len", "str", "repr", "list", "tuple", "sorted", "min", "max", "set", "int", "bool"]
FUNCS1 += ["any", "all", "reversed", "typename", "float", "enumerate"]
CMP = ["==", "!=", "<", ">=", "in", "not in", "is", "is not"]
# Constants include pieces and whole copies of the secrets: an author may guess them.
PIECES = ["'4111'", "'1111'", "'AKIA'", "'a'", "' '", "'@'", "'='", "'1'", "'eyJ'", "'ORD'"]
PIECES += ["'hunter2-Zq9x'", "'4111 1111 1111 1111'", "'ann.lee@example.com'", "'Token'"]
PIECES += ["'AKIAIOSFODNN7EXAMPLE'", "'zq9Xk2Lm7Pw'", "'a=1&api_key=zq9Xk2Lm7Pw'"]
INTS = ["0", "1", "2", "-1", "4", "10"]


def _atoms() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(NAMES), st.sampled_from(PIECES), st.sampled_from(INTS))


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    idx = st.sampled_from(INTS + PIECES[:3] + ["'token'", "'text'", "'w'"])
    bound = st.sampled_from(["", "0", "1", "4", "-4", "10"])
    return st.one_of(
        st.builds(lambda e, a: f"{e}.{a}", inner, st.sampled_from(ATTRS)),
        st.builds(lambda e, i: f"{e}[{i}]", inner, idx),
        st.builds(lambda e, a, b: f"{e}[{a}:{b}]", inner, bound, bound),
        st.builds(lambda e, m: f"{e}.{m}()", inner, st.sampled_from(STR_METHODS0)),
        st.builds(
            lambda e, m, a: f"{e}.{m}({a})",
            inner,
            st.sampled_from(STR_METHODS1),
            st.sampled_from(PIECES),
        ),
        st.builds(lambda e, m: f"{e}.{m}", inner, st.sampled_from(DICT_METHODS)),
        st.builds(lambda e, r: f"{e}.replace('1', {r})", inner, st.sampled_from(PIECES)),
        st.builds(lambda s, e: f"{s}.join({e})", st.sampled_from(["' '", "''", "','"]), inner),
        st.builds(lambda f, e: f"{f}({e})", st.sampled_from(FUNCS1), inner),
        st.builds(lambda a, o, b: f"({a} {o} {b})", inner, st.sampled_from(CMP), inner),
        st.builds(lambda a, o, b: f"({a} {o} {b})", inner, st.sampled_from(["and", "or"]), inner),
        st.builds(lambda a, b: f"({a} + {b})", inner, inner),
        st.builds(lambda e: f"(not {e})", inner),
        st.builds(lambda e: f"[x for x in {e}]", inner),
        st.builds(
            lambda e, c: f"[x for x in {e} if x {c}]",
            inner,
            st.sampled_from(CMP[:4]).flatmap(
                lambda o: st.sampled_from(PIECES).map(lambda p: f"{o} {p}")
            ),
        ),
        st.builds(lambda e: f"[v for k, v in {e}]", inner),
        st.builds(lambda e: f"{{x: 1 for x in {e}}}", inner),
        st.builds(lambda a, b: f"[{a}, {b}]", inner, inner),
        st.builds(lambda a, b: f"({a}, {b})", inner, inner),
        st.builds(lambda e, c: f'f"{{{e}{c}}}"', inner, st.sampled_from(["", "!r", ":>30"])),
        st.builds(lambda a, b, c: f"({a} if {b} else {c})", inner, inner, inner),
    )


EXPRESSIONS = st.recursive(_atoms(), _extend, max_leaves=6)


def outcome(source: str, ns: dict[str, object]) -> str:
    """Everything that leaves the process: capture, condition verdict, or error text."""
    try:
        # A generous wall-time budget: a busy machine must not make the two runs differ.
        expr = compile(source, max_seconds=5.0)
    except ExpressionError as exc:
        return "compile: " + str(exc)
    try:
        value = expr.evaluate(ns)
    except ExpressionError as exc:
        return "error: " + redaction.redact_error(str(exc))
    captures, truncated, errors = capture_frame({"v": value})
    plain = type(value) in (bool, int, float, str, type(None), list, tuple, dict)
    verdict = bool(value) if plain else None
    return json.dumps([captures, truncated, errors, verdict], sort_keys=True)


def leaked(secret: str, source: str, text: str) -> list[str]:
    """Pieces (4 characters) of ``secret`` in ``text`` that the expression text does not hold."""
    pieces = {secret[i : i + 4] for i in range(len(secret) - 3)}
    return sorted(p for p in pieces if p in text and p not in source and p.strip() == p)


@pytest.fixture(autouse=True, scope="module")
def redactor() -> Any:
    redaction.set_redactor(redaction.Redactor(patterns=[PATTERN]))
    yield
    redaction.set_redactor(None)


@settings(
    max_examples=400,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(source=EXPRESSIONS, secret=st.sampled_from(SECRETS))
def test_no_expression_reveals_a_secret(source: str, secret: tuple[str, str, str, str]) -> None:
    out_a = outcome(source, state(0, secret))
    out_b = outcome(source, state(1, secret))
    assert out_a == out_b, f"{secret[0]}: {source!r} depends on the secret:\n{out_a}\n{out_b}"
    for value in (secret[3], NAME_SECRET[0]):
        assert not leaked(value, source, out_a), f"{source!r} leaked: {out_a}"


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(fields=st.lists(EXPRESSIONS, min_size=1, max_size=3), secret=st.sampled_from(SECRETS))
def test_no_log_template_reveals_a_secret(
    fields: list[str], secret: tuple[str, str, str, str]
) -> None:
    source = " | ".join("{" + f + "}" for f in fields)
    try:
        template = compile_template(source, max_seconds=5.0)
    except ExpressionError:
        return
    out_a = template.render(state(0, secret))
    out_b = template.render(state(1, secret))
    assert out_a == out_b, f"{secret[0]}: {source!r}:\n{out_a}\n{out_b}"
    for value in (secret[3], NAME_SECRET[0]):
        assert not leaked(value, source, out_a), f"{source!r} leaked: {out_a}"
