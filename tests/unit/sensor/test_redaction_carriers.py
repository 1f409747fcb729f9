"""Credentials carried by WSGI environs, ASGI scopes, URLs, bodies and free text are redacted.

A capture of a whole request (capture-all of the locals, or a capture of ``environ``,
``scope`` or ``request``) must hide every credential that HTTP carries, whatever its spelling,
and keep the rest of the evidence: the parameter name, the other parameters, the path.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensor import redaction
from sensor.capture.encode import capture_frame, encode, exception_info
from sensor.redaction import Redactor

# Every credential below carries "Zq9" so that one search finds any leak of any of them.
TOKEN = "9944b09199c62bcf9418Zq9d846dd0e4bbdfc6ee4b"
AWS_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfZq9EXAMPLEKEY"
assert len(AWS_SECRET) == 40

AUTHORIZATION_VALUES = [
    f"Token {TOKEN}",
    f"token {TOKEN}",
    f"Bearer {TOKEN}",
    f"BEARER {TOKEN}",
    f"bearer {TOKEN}",
    "Basic YWxhZGRpbjpvcGVuc2VzYW1lZq9=",
    "basic YWxhZGRpbjpvcGVuc2VzYW1lZq9=",
    'Digest username="Mufasa", realm="x@y", nonce="dcd98b", response="6629fae4Zq9f4bcdb0"',
    f"ApiKey {TOKEN}",
    f"Negotiate {TOKEN}",
    "Zq9-raw-value-without-a-scheme",
]


@pytest.fixture(autouse=True)
def fresh_default() -> Any:
    redaction.set_redactor(Redactor())
    yield
    redaction.set_redactor(None)


def dumped(captures: object) -> str:
    return json.dumps(captures)


def wsgi_environ(authorization: str) -> dict[str, object]:
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/login;jsessionid=Zq9S3ss10n",
        "QUERY_STRING": "page=2&api_key=Zq9xk2Lm7Pw&sort=asc",
        "RAW_URI": "/login?page=2&api_key=Zq9xk2Lm7Pw&sort=asc",
        "REQUEST_URI": "/login?token=Zq9tkW4&x=1",
        "HTTP_AUTHORIZATION": authorization,
        "HTTP_PROXY_AUTHORIZATION": authorization,
        "HTTP_COOKIE": "sessionid=Zq9s3ss10n; theme=dark",
        "HTTP_X_API_KEY": "xk_Zq9xW4Lm7Pw",
        "HTTP_X_AUTH_TOKEN": "Zq9authtoken",
        "HTTP_X_CSRFTOKEN": "Zq9csrf",
        "HTTP_HOST": "shop.example",
        "HTTP_REFERER": "https://shop.example/cb?access_token=Zq9At4Lm7&state=ok",
        "HTTP_USER_AGENT": "curl/8.5",
        "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "SERVER_NAME": "shop",
        "SERVER_PORT": "443",
        "wsgi.url_scheme": "https",
    }


def asgi_scope(authorization: bytes) -> dict[str, object]:
    return {
        "type": "http",
        "method": "GET",
        "path": "/cb",
        "raw_path": b"/cb?code=ok&client_secret=Zq9cs",
        "query_string": b"code=ok&access_token=Zq9At4Lm7&client_secret=Zq9cs&page=3",
        "headers": [
            (b"host", b"shop.example"),
            (b"authorization", authorization),
            (b"Proxy-Authorization", authorization),
            (b"cookie", b"sid=Zq9s1d; theme=dark"),
            (b"x-api-key", b"Zq9xk"),
            (b"user-agent", b"curl/8.5"),
        ],
        "server": ("127.0.0.1", 8000),
    }


@pytest.mark.parametrize("authorization", AUTHORIZATION_VALUES)
def test_a_captured_wsgi_environ_leaks_no_credential(authorization: str) -> None:
    environ = wsgi_environ(authorization)
    captures, _, _ = capture_frame({"environ": environ, "request": {"environ": environ}})
    text = dumped(captures)
    assert "Zq9" not in text, text
    # the evidence around the secrets stays
    v = captures["environ"]["v"]
    assert v["QUERY_STRING"].startswith("page=2&api_key=")
    assert v["QUERY_STRING"].endswith("&sort=asc")
    assert "api_key=<redacted" in v["RAW_URI"]
    assert v["REQUEST_URI"].startswith("/login?token=<redacted")
    assert v["PATH_INFO"].startswith("/login;jsessionid=<redacted")
    assert v["HTTP_REFERER"].startswith("https://shop.example/cb?access_token=<redacted")
    assert v["HTTP_REFERER"].endswith("&state=ok")
    assert v["HTTP_HOST"] == "shop.example"
    assert v["HTTP_USER_AGENT"] == "curl/8.5"


@pytest.mark.parametrize("authorization", AUTHORIZATION_VALUES)
def test_a_captured_asgi_scope_leaks_no_credential(authorization: str) -> None:
    scope = asgi_scope(authorization.encode())
    # headers as tuples (uvicorn), as lists (other servers) and decoded to str
    as_lists = dict(scope, headers=[list(h) for h in scope["headers"]])  # type: ignore[attr-defined]
    as_str = dict(
        scope,
        headers=[(k.decode(), v.decode()) for k, v in scope["headers"]],  # type: ignore[attr-defined]
    )
    captures, _, _ = capture_frame({"scope": scope, "lists": as_lists, "text": as_str})
    text = dumped(captures)
    assert "Zq9" not in text, text
    assert "shop.example" in text
    assert "curl/8.5" in text
    qs = captures["scope"]["v"]["query_string"]["v"]
    assert qs.startswith("code=ok&access_token=<redacted"), qs
    assert qs.endswith("&page=3"), qs


@pytest.mark.parametrize(
    "body",
    [
        "user=bob&password=Zq9hunter2&remember=1",
        b"user=bob&password=Zq9hunter2&remember=1",
        "grant_type=client_credentials&client_id=shop&client_secret=Zq9cs",
        '{"user": "bob", "password": "Zq9hunter2"}',
        b'{"user": "bob", "password": "Zq9hunter2", "remember": true}',
        '{"user":"bob","credentials":{"password":"Zq9hunter2"}}',
        '{"refresh_token": "Zq9rt", "scope": "read"}',
        "{'user': 'bob', 'api_key': 'Zq9k'}",
        '{"pin": 1234, "cvv": "Zq9"}',
        "aws_secret_access_key = " + AWS_SECRET,
        "AWS_SECRET_ACCESS_KEY=" + AWS_SECRET,
        '{"SecretAccessKey": "' + AWS_SECRET + '"}',
        f"{AWS_ID}:{AWS_SECRET}",
        f"keys: {AWS_ID} {AWS_SECRET}",
        "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = "
        + AWS_SECRET,
        "Authorization: Token " + TOKEN + "\r\nHost: shop",
        "proxy-authorization: basic YWxhZGRpbjpvcGVuc2VzYW1lZq9=",
        "Cookie: sid=Zq9s1d; theme=dark",
        "Set-Cookie: session=Zq9s1d; Path=/; HttpOnly",
        "X-Api-Key: Zq9xk",
        "User(name='bob', password='Zq9hunter2')",
        "login failed for password=Zq9hunter2 (3 tries)",
    ],
)
def test_bodies_and_free_text_lose_their_secret_fields(body: str | bytes) -> None:
    captures, _, _ = capture_frame({"body": body})
    assert "Zq9" not in dumped(captures), captures
    assert "1234" not in dumped(captures), captures
    text = body.decode() if isinstance(body, bytes) else body
    out = Redactor().redact_text(text)
    assert "Zq9" not in out, out
    assert "<redacted" in out


@pytest.mark.parametrize(
    "text",
    [
        "page=2&sort=asc",
        "https://shop.example/items?page=2&q=shoes",
        "ratio: 3, total: 12.50",
        "Error: token expired",
        "the password was reset at 12:30",
        "da39a3ee5e6b4b0d3255bfef95601890afd80709",  # a sha1 in hex: 40 characters, not a key
        "build 6f1ed002ab5595859014ebf0951522d9 done",
        "token count: 12",
        "Bearer of bad news",
        "basic plan",
        "Digest of the week",
        "Token ring",
    ],
)
def test_ordinary_text_is_not_redacted(text: str) -> None:
    red = Redactor()
    assert red.match_secret_value(text) is None, text
    assert red.redact_text(text) == text


def test_the_secret_part_only_is_redacted() -> None:
    red = Redactor()
    assert red.redact_text("GET /x?token=abc123&page=2") == "GET /x?token=<redacted:field>&page=2"
    assert red.redact_text('{"password": "x1y2", "user": "bob"}') == (
        '{"password": "<redacted:field>", "user": "bob"}'
    )
    assert red.match_secret_value("a=1&password=x") == "field"
    assert red.match_secret_value("Token " + TOKEN) == "auth-scheme"
    assert red.match_secret_value(f"aws_secret_access_key {AWS_SECRET}") == "aws-secret-key"


def test_redacting_twice_changes_nothing_and_finds_nothing_more() -> None:
    red = Redactor()
    for text in (
        "a=1&password=x&token=y",
        '{"password": "x", "api_key": "y"}',
        f"Authorization: Token {TOKEN}",
        f"{AWS_ID}:{AWS_SECRET}",
        "card 4111 1111 1111 1111 and ann@example.com",
    ):
        once = red.redact_text(text)
        assert "<redacted" in once, text
        assert red.redact_text(once) == once
        assert red.match_secret_value(once) is None, once


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    name=st.sampled_from(
        ["password", "api_key", "access_token", "client_secret", "X-Api-Key", "sessionid", "pwd"]
    ),
    before=st.text(alphabet="abc =&?;:,{}\"'\n/", max_size=20),
    after=st.text(alphabet="abc =&?;:,{}\"'\n/", max_size=20),
    shape=st.sampled_from(["{n}={v}", "{n}: {v}", '"{n}": "{v}"', "'{n}': '{v}'", "?{n}={v}&x"]),
)
def test_a_secret_named_field_never_survives_redact_text(
    name: str, before: str, after: str, shape: str
) -> None:
    text = before + shape.format(n=name, v="Zq9secretValue") + after
    out = Redactor().redact_text(text)
    assert "Zq9" not in out, (text, out)
    assert Redactor().match_secret_value(text) is not None


# -- exception messages -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("card 4111 1111 1111 1111 was declined"),
        ValueError("login failed: password=Zq9hunter2"),
        ValueError('bad payload {"user": "bob", "password": "Zq9hunter2"}'),
        KeyError("Zq9hunter2@example.com"),
        RuntimeError("Authorization: Token " + TOKEN),
        ValueError("bad", "password=Zq9hunter2"),
        ValueError(f"aws creds {AWS_ID} {AWS_SECRET}"),
        ValueError("User(name='bob', api_key='Zq9k')"),
    ],
)
def test_exception_messages_are_redacted_by_content_and_by_field(exc: BaseException) -> None:
    info = exception_info(exc)
    text = json.dumps(info)
    for piece in ("Zq9", "1111 1111", "AKIA"):
        assert piece not in text, text
    assert info["type"] == type(exc).__name__


def test_exception_message_keeps_the_words_around_the_secret() -> None:
    info = exception_info(ValueError("card 4111 1111 1111 1111 was declined"))
    assert info["message"] == "card <redacted:card> was declined"


def test_an_exception_captured_as_a_value_hides_its_notes_and_args() -> None:
    exc = ValueError("password=Zq9hunter2")
    exc.add_note("retry with token=Zq9tk")
    captures, _, _ = capture_frame({"exception": exc})
    assert "Zq9" not in dumped(captures), captures


# -- the one function every error text goes through ------------------------------------------------


def test_redact_error_hides_values_and_fields_and_is_bounded() -> None:
    text = redaction.redact_error(
        "capture 'x': ExpressionError: card 4111 1111 1111 1111, password=Zq9hunter2 " + "y" * 5000
    )
    assert "1111 1111" not in text
    assert "Zq9" not in text
    assert len(text) <= redaction.MAX_ERROR_CHARS + 40
    assert redaction.redact_error("plain text") == "plain text"


def test_redact_error_never_raises() -> None:
    class Weird(str):
        def __len__(self) -> int:
            raise RuntimeError("no")

    assert isinstance(redaction.redact_error(Weird("x")), str)
    assert isinstance(redaction.redact_error(None), str)  # type: ignore[arg-type]


# -- the scanner sees everything that is emitted ---------------------------------------------------


def test_match_scans_past_the_first_window() -> None:
    red = Redactor()
    text = "x" * (redaction.MAX_MATCH_CHARS + 10_000) + " card 4111 1111 1111 1111"
    assert red.match_secret_value(text) == "card"
    straddling = "x" * (redaction.MAX_MATCH_CHARS - 8) + " 4111 1111 1111 1111"
    assert red.match_secret_value(straddling) == "card"


def test_a_long_value_is_scanned_where_it_is_cut() -> None:
    # The largest max_string keeps 65,536 characters: a card whose start is kept, across the
    # old scanner's 64 KiB window, must still be recognised and not emitted in part.
    from sensor.probes import CaptureLimits

    limits = CaptureLimits(max_string=65_536, max_bytes=1 << 20)
    for data in (b"x" * 65_525 + b" 4111 1111 1111 1111", "x" * 65_525 + " 4111 1111 1111 1111"):
        out = json.dumps(encode(data, limits, redactor=Redactor()))
        assert "4111 1111" not in out, out[-200:]
