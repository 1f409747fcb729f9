"""Vendor tokens and the carriers that hid secrets from the name rules are redacted.

Each case here leaked on the rules before it (a red-team pass left them open): a vendor token
with no content rule (``sk-proj-...``, ``glpat-...``, ``npm_...``), and secrets carried where
the name rules did not look (an argv list, an XML element, a Perl/PHP ``=>`` pair, a
percent-encoded key, a PEM key split across list items, a card grouped by dots). Every
credential below holds ``Zq9`` where its format allows it, so that one search finds a leak.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sensor import redaction
from sensor.capture.encode import capture_frame
from sensor.redaction import Redactor


@pytest.fixture(autouse=True)
def fresh_default() -> Any:
    redaction.set_redactor(Redactor())
    yield
    redaction.set_redactor(None)


B62 = "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xYzQ"  # 34 base62 characters
assert len(B62) == 34
HEX = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # 32 hex digits

# (token, reason): public formats (gitleaks / GitHub secret scanning), made-up values.
VENDOR_TOKENS = [
    ("sk-proj-Zq9" + B62 + B62 + "_-xY", "openai-key"),
    ("sk-svcacct-Zq9" + B62 + B62, "openai-key"),
    ("sk-admin-Zq9" + B62 + B62, "openai-key"),
    ("sk-Zq9" + B62[:25] + "T3BlbkFJ" + B62[:20], "openai-key"),  # the legacy 48
    ("sk-ant-api03-Zq9" + B62 + B62 + B62[:20] + "-_AA", "anthropic-key"),
    ("sk-ant-admin01-Zq9" + B62 + B62 + B62[:20] + "AA", "anthropic-key"),
    ("glpat-Zq9" + B62[:17], "gitlab-token"),
    ("glrt-Zq9" + B62[:17], "gitlab-token"),
    ("gldt-Zq9" + B62[:17], "gitlab-token"),
    ("npm_Zq9" + B62[:33], "npm-token"),
    ("pypi-AgEIcHlwaS5vcmcCJDZq9" + B62 + B62, "pypi-token"),
    ("SG.Zq9" + B62[:19] + "." + B62 + "Zq9" + B62[:6], "sendgrid-key"),
    ("ya29.a0AfZq9" + B62 + B62, "google-oauth"),
    ("GOCSPX-Zq9" + B62[:25], "google-oauth"),
    ("AIzaSyZq9" + B62[:30], "gcp-key"),
    ("sk_live_Zq9" + B62[:21], "stripe-key"),
    ("rk_live_Zq9" + B62[:21], "stripe-key"),
    ("whsec_Zq9" + B62, "stripe-key"),
    ("https://hooks.slack.com/services/T0ZQ9AB12/B0ZQ9CD34/Zq9" + B62[:21], "slack-webhook"),
    (
        "https://discord.com/api/webhooks/112233445566778890/Zq9" + B62 + B62,
        "discord-webhook",
    ),
    ("SK" + HEX, "twilio-key"),
    ("MTEyMjMzNDQ1NTY2Nzc4ODk5MA.GZq9aB.Zq9" + B62[:30], "discord-token"),
    ("123456789:AAHZq9" + B62[:29], "telegram-token"),
    ("hvs.CAESIZq9" + B62 + B62[:10], "vault-token"),
    ("hvb.AAAAAQZq9" + B62 + B62[:10], "vault-token"),
    ("dop_v1_" + HEX + HEX, "digitalocean-token"),
    ("shpat_" + HEX, "shopify-token"),
    ("HRKU-AAZq9" + B62 + B62[:21], "heroku-key"),
    ("hf_Zq" + "abcdefghijklmnopqrstuvwxyzABCDEF", "huggingface-token"),
    ("dapi" + HEX, "databricks-token"),
    ("PMAK-" + HEX[:24] + "-" + HEX + "ab", "postman-key"),
    ("glsa_Zq9" + B62[:29] + "_" + HEX[:8], "grafana-token"),
    ("lin_api_Zq9" + B62 + "abc", "linear-key"),
    ("NRAK-ZQ9" + "ABCDEFGHIJKLMNOPQRSTUVWX", "newrelic-key"),
    ("dp.pt.Zq9" + B62 + "abcdef", "doppler-token"),
    ("AGE-SECRET-KEY-1" + ("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L" * 2)[:58], "age-key"),
]


@pytest.mark.parametrize(("token", "reason"), VENDOR_TOKENS, ids=[t[1] for t in VENDOR_TOKENS])
def test_vendor_tokens_are_secret_by_content(token: str, reason: str) -> None:
    red = Redactor()
    assert red.match_secret_value(token) == reason
    for text in (f"key {token} used", f'{{"note": "{token}"}}', f"({token})", f"x={token};"):
        assert red.match_secret_value(text) is not None, text
        out = red.redact_text(text)
        assert token not in out, out
        assert f"<redacted:{reason}>" in out, out
    captures, _, _ = capture_frame({"note": f"deploy with {token} please"})
    assert token not in json.dumps(captures)


@pytest.mark.parametrize(
    "text",
    [
        # Product codes, slugs and ids that share a vendor's prefix but not its format.
        "sk-1234",
        "sku sk-12345-blue",
        "ask-me-anything-about-shipping",
        "mask-0123456789abcdef0123456789abcdef",  # "sk-" inside a word
        "task-d41d8cd98f00b204e9800998ecf8427e",
        "sk-winter-collection-2024-limited-edition",
        "npm_config_cache=/tmp/npm",
        "SG.Q1.2024 report",
        "ya29.5 kg",
        "hvs.short",
        "SKU-0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        "glpat-short",
        "shpat_xyz",
        "order 123456789:AB shipped",
        "https://hooks.slack.com/",
        "release v1.2.3 built at 2024-01-05T12:30:00Z by ci-runner-42 (sha 6f1ed002ab55)",
        "5.0 / 4.99 / 12.50 EUR",
        "version 2024.01.05.1234",
        "IP 192.168.100.200 port 8080",
    ],
)
def test_lookalikes_of_vendor_tokens_stay(text: str) -> None:
    red = Redactor()
    assert red.match_secret_value(text) is None, text
    assert red.redact_text(text) == text


# -- carriers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "run backup --password Zq9hunter2 --user bob",
            "run backup --password <redacted:field> --user bob",
        ),
        ("mysqldump --password='Zq9 pw' db", "mysqldump --password='<redacted:field>' db"),
        ('cli -token "Zq9tok" -v', 'cli -token "<redacted:field>" -v'),
        ("app --api-key Zq9key --port 80", "app --api-key <redacted:field> --port 80"),
        ("app --token=Zq9tok --port=80", "app --token=<redacted:field> --port=80"),
        (
            "<user><name>bob</name><password>Zq9hunter2</password></user>",
            "<user><name>bob</name><password><redacted:field></password></user>",
        ),
        (
            '<config type="basic"><api_key>Zq9k</api_key></config>',
            '<config type="basic"><api_key><redacted:field></api_key></config>',
        ),
        ('<ns:Password xml:lang="en">Zq9p</ns:Password>', None),
        ('<login user="bob" password="Zq9pw"/>', '<login user="bob" password="<redacted:field>"/>'),
        ("my %opts = ('password' => 'Zq9pw', 'user' => 'bob');", None),
        ('$cfg = ["api_key" => "Zq9k", "x" => 1];', None),
        ('{:password => "Zq9pw", :user => "bob"}', None),
        ("user=bob&pass%77ord=Zq9pw&x=1", "user=bob&pass%77ord=<redacted:field>&x=1"),
        ("api%5Fkey=Zq9k&page=2", "api%5Fkey=<redacted:field>&page=2"),
        ("api%5fkey=Zq9k", "api%5fkey=<redacted:field>"),
        ("%70assword=Zq9pw", "%70assword=<redacted:field>"),
        (
            "machine api.example.com login bob password Zq9pw",
            "machine api.example.com login bob password <redacted:netrc>",
        ),
        ("machine h\n  login bob\n  password Zq9pw\n", None),
        ("default login anonymous password Zq9pw", None),
    ],
)
def test_carried_secrets_lose_their_value_only(text: str, expected: str | None) -> None:
    red = Redactor()
    assert red.match_secret_value(text) is not None, text
    out = red.redact_text(text)
    assert "Zq9" not in out, out
    if expected is not None:
        assert out == expected
    captures, _, _ = capture_frame({"text": text})
    assert "Zq9" not in json.dumps(captures)
    assert red.redact_text(out) == out  # redacting twice changes nothing
    assert red.match_secret_value(out) is None, out


@pytest.mark.parametrize(
    "text",
    [
        "Server=tcp:db.example.net,1433;Initial Catalog=shop;User ID=app;Password=Zq9p@ss;",
        "Data Source=db;Uid=app;Pwd=Zq9pw;",
        "DefaultEndpointsProtocol=https;AccountName=shop;AccountKey=Zq9" + B62 + "==;"
        "EndpointSuffix=core.windows.net",
        "https://shop.blob.core.windows.net/c/b?sv=2022-11-02&se=2026-01-01&sr=b&sp=r"
        "&sig=Zq9" + B62 + "%2B%2Fabc%3D",
        "Endpoint=sb://x.servicebus.windows.net/;SharedAccessKeyName=root;"
        "SharedAccessKey=Zq9" + B62 + "=",
        "Cookie: sessionid=Zq9s; theme=dark",
        "Authorization: Basic WnE5dXNlcjpwYXNzd29yZA==",
        "PGPASSWORD=Zq9pw psql -h db",
        "password: Zq9pw",
        '{"password": "Zq9pw"}',
        "GET /cb?code=1&access_token=Zq9tok",
        "export DB_PASSWORD='Zq9pw'",
        "//registry.npmjs.org/:_authToken=Zq9" + B62,
    ],
)
def test_other_common_carriers_are_covered(text: str) -> None:
    red = Redactor()
    out = red.redact_text(text)
    assert "Zq9" not in out, out
    assert red.match_secret_value(text) is not None


@pytest.mark.parametrize(
    "text",
    [
        "see the <password> field in the form",
        "<note>reset your password</note>",
        "<p>Password</p>",
        "x => y",
        "'user' => 'bob'",
        "pass%20through=1",
        "run --verbose --user bob --port 80",
        "set --token or SENSOR_CLIENT_TOKEN to a token with the admin scope",
        "pass --password and --user to log in",
        "the machine is down; password reset at noon",
        "a - password - b",
        "price-token bundle",
    ],
)
def test_ordinary_carriers_stay(text: str) -> None:
    red = Redactor()
    assert red.match_secret_value(text) is None, text
    assert red.redact_text(text) == text


def test_an_argv_list_hides_the_value_after_a_secret_option() -> None:
    argv = ["backup", "--password", "Zq9pw", "--user", "bob", "--token=Zq9t", "-v"]
    captures, _, _ = capture_frame({"argv": argv, "args": tuple(argv)})
    dumped = json.dumps(captures)
    assert "Zq9" not in dumped, dumped
    shown = captures["argv"]["v"]
    assert shown[:2] == ["backup", "--password"]
    assert shown[2]["@redacted"] == "name"
    assert shown[3:5] == ["--user", "bob"]
    assert shown[6] == "-v"


def test_an_argv_list_keeps_ordinary_options() -> None:
    argv = ["serve", "--port", "8080", "--user", "bob", "-v", "--", "x"]
    captures, _, _ = capture_frame({"argv": argv})
    assert captures["argv"]["v"] == argv


def test_a_pem_key_split_across_list_items_is_hidden_whole() -> None:
    lines = [
        "config loaded",
        "-----BEGIN RSA PRIVATE KEY-----",
        "MIIEpAIBAAKCAQEAZq9" + B62,
        "Zq9" + B62 + B62,
        "-----END RSA PRIVATE KEY-----",
        "done",
    ]
    for value in (lines, tuple(lines), [x.encode() for x in lines]):
        captures, _, _ = capture_frame({"lines": value})
        dumped = json.dumps(captures)
        assert "Zq9" not in dumped, dumped
        shown = captures["lines"]["v"]
        assert shown[0] in ("config loaded", {"@t": "bytes", "v": "config loaded", "@len": 13})
        assert shown[-1] in ("done", {"@t": "bytes", "v": "done", "@len": 4})


@pytest.mark.parametrize(
    "card",
    ["4111.1111.1111.1111", "4111_1111_1111_1111", "3782.822463.10005", "5500_0000_0000_0004"],
)
def test_cards_grouped_by_dots_or_underscores_are_cards(card: str) -> None:
    red = Redactor()
    assert red.match_secret_value(card) == "card"
    assert red.match_secret_value(f"paid with {card}.") == "card"
    assert red.redact_text(f"paid with {card} ok") == "paid with <redacted:card> ok"


@pytest.mark.parametrize(
    "text",
    [
        "4111.1111.1111.1112",  # fails Luhn
        "1700000000.123456",  # a timestamp
        "3.141592653589793",
        "2024.01.05.1234",
        "0.0000000000000001",
    ],
)
def test_dotted_numbers_that_are_not_cards_stay(text: str) -> None:
    assert Redactor().match_secret_value(text) is None, text
