"""Redaction of secrets and personal data, by identifier name and by value pattern.

The sensor applies these rules before anything leaves the process: to captured values (the
encoder asks :meth:`Redactor.is_secret_name` for every local, dict key and attribute name, and
:meth:`Redactor.match_secret_value` for every string), to log messages and exception messages
(:meth:`Redactor.redact_text`), to every error text (:func:`redact_error`) and inside
expressions (a secret reads as a :class:`~sensor.expressions.Redacted` marker; the rules used
there are listed in ``sensor/expressions/redact.py``).

Three classes of rules: *names* (an identifier, key or header name that holds a secret),
*contents* (a value that is a credential whatever it is called: a card, a JWT, a key id) and
*carriers* (a credential inside a larger text under a secret name: ``?api_key=...``,
``password=...`` in a form body, ``"token": "..."`` in JSON, ``Authorization: Token ...``).
A value secret hides its whole string; a carried secret hides the value only, keeping the names
and the rest of the text as evidence.

Rules come from three places, in order: the defaults below, the environment
(``SENSOR_REDACT_NAMES``, ``SENSOR_REDACT_PATTERNS``, ``SENSOR_REDACT_ALLOW``) and the hub, which
may send new rules at any time (:meth:`Redactor.update`). A rule change swaps one immutable
state object, so readers on other threads never see half an update, and bumps
:attr:`Redactor.version` so that compiled expressions re-check the names they read.

The module imports the standard library only: it runs inside production services.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from sensor import _epoch
from sensor.errors import ConfigError

__all__ = [
    "CARRIED_REASONS",
    "DEFAULT_NAMES",
    "DEFAULT_SUBSTRINGS",
    "MAX_ERROR_CHARS",
    "MAX_MATCH_CHARS",
    "MAX_SCAN_CHARS",
    "WINDOW_OVERLAP",
    "Redactor",
    "fold_case",
    "get_redactor",
    "length_class",
    "looks_like_name",
    "luhn_ok",
    "normalize_name",
    "redact_error",
    "set_redactor",
]

_log = logging.getLogger(__name__)

#: Identifier names redacted by default, normalized (lower case, no ``-``, ``_``, ``.`` or
#: spaces). A superset of the 85 names dd-trace-py redacts, plus common cloud, banking and
#: identity-document names.
DEFAULT_NAMES: frozenset[str] = frozenset(
    (  # noqa: SIM905 - a word list reads better than 119 literals
        "2fa accesskey accesskeyid accesstoken aiohttpsession apikey apisecret apisignature "
        "apitoken appkey appsecret applicationkey auth authkey authorization authtoken "
        "awsaccesskeyid awssecretaccesskey awssessiontoken bankaccount bankaccountnumber bearer "
        "bearertoken ccnumber cardcvc cardnumber cardverificationvalue certificatepin cipher "
        "clientid clientsecret connectionstring connectsid cookie cookies credential credentials "
        "creditcard creditcardnumber csrf csrftoken cvc cvv cvv2 databaseurl dateofbirth "
        "dbpassword dburl dob encryptionkey encryptionkeyid geolocation gpgkey iban idtoken "
        "ipaddress jti jwt licensekey masterkey mysqlpwd nonce oauth oauthtoken otp passcode "
        "passhash passphrase passport passportnumber passwd password passwordb pemfile pgpkey "
        "phpsessid pin pincode pkcs8 privatekey publickey pwd recaptchakey refreshtoken "
        "routingnumber salt secret secretkey secrettoken securityanswer securitycode "
        "securityquestion serviceaccountcredentials session sessionid sessionkey sessiontoken "
        "setcookie signature signaturekey signingkey sshkey ssn socialsecuritynumber symfony "
        "taxid token transactionid twiliotoken usersession voterid webhooksecret xapikey "
        "xauthtoken xcsrftoken xforwardedfor xrealip xsrf xsrftoken "
        # Short spellings, other names for credentials, key material, one-time and recovery
        # codes, API gateway keys: names real services use that the lists above missed.
        "authheader backupcode backupcodes connstr creds dsn hmackey hotp mfacode mnemonic "
        "ocpapimsubscriptionkey otpcode pass privkey pw pwds recoverycode recoverycodes "
        "seedphrase subscriptionkey totp xfunctionskey "
        # Azure storage connection strings (`AccountKey=...`).
        "accountkey "
    ).split()
)

#: A normalized name that contains one of these is redacted too (``db_password``,
#: ``github_token``, ``stripe_secret_key``): over-redacting a name is cheaper than a leak.
DEFAULT_SUBSTRINGS: tuple[str, ...] = (
    "password",
    "passwd",
    "passphrase",
    "secret",
    "apikey",
    "privatekey",
    "accesskey",
    "accesstoken",
    "refreshtoken",
    "authtoken",
    "sessionid",
    "creditcard",
    "cardnumber",
    "bearer",
    "privkey",
    "mnemonic",
    "seedphrase",
    "authheader",
    # HTTP_AUTHORIZATION, HTTP_PROXY_AUTHORIZATION, x-goog-authorization: every carrier of
    # the Authorization header, whatever prefix the server or gateway gives it.
    "authorization",
)

#: A normalized name that ends with one of these is redacted (``csrf_token``, ``admin_pwd``).
DEFAULT_SUFFIXES: tuple[str, ...] = (
    "token",
    "tokens",
    "pwd",
    "cookie",
    "credentials",
    "signature",
    # `db_pass`, `admin_pw`, `aws_creds`: a short spelling at the end of a longer name.
    "pass",
    "pw",
    "creds",
    "dsn",
)

# Value patterns: (reason, regex, gate). A pattern's regex runs only when its gate (below,
# _Gate) says the text can hold a match, with C substring searches, so ordinary prose costs a few
# `in` checks instead of a regex pass per pattern. The regexes are linear (no nested quantifiers,
# bounded repetitions), so a hostile string cannot make matching slow. A pattern with a group
# named ``s`` redacts that group only (the scheme word or the key's name stays as evidence).
_DIGITS = "0123456789"


class _Gate(NamedTuple):
    """What a text must contain for a pattern to match anywhere in it (a necessary condition).

    Each field is a test of the whole text, with C substring searches; an empty field tests
    nothing. ``chars``: one of these characters occurs. ``lits``: one of these strings occurs.
    ``folded``: one of these lower-case ASCII words occurs in the text case-folded as the
    regex engine folds it (:func:`fold_case`), for the words a pattern matches in any case.
    ``run``: the text holds _TOKEN_RUN consecutive token characters (:func:`_has_run`).
    The comment above each pattern says why its gate holds; tests check every gate against its
    regex on generated texts (a gate that said no where the regex matches would be a leak).
    """

    chars: str = ""
    lits: tuple[str, ...] = ()
    folded: tuple[str, ...] = ()
    run: bool = False


#: The least number of consecutive token characters (ASCII letters, digits and ``_-.:/+=~``)
#: that every vendor format holds (a Slack token, ``xoxb-`` and 10 more, is the shortest).
_TOKEN_RUN = 15
_TOKEN_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.:/+=~")
# Token characters stay, everything else (spaces, punctuation, every byte of a non-ASCII
# character in UTF-8) becomes a space: a run of token characters in the text is a run of the
# same length in the translated bytes.
_RUN_NEEDLE = b"x" * _TOKEN_RUN
_RUN_MAP = bytes(120 if b in _TOKEN_CHARS else 32 for b in range(256))


def _has_run(text: str) -> bool:
    """True when ``text`` holds _TOKEN_RUN consecutive token characters (C work only)."""
    return _RUN_NEEDLE in text.encode("utf-8", "surrogatepass").translate(_RUN_MAP)


def _w(prefix: str) -> str:
    """``prefix`` (a literal) where a word starts: its first character, then a look-behind for
    the word boundary before it, then the rest. Written so, every branch of the vendor
    alternation starts with a literal character, and the regex engine looks for those few
    characters in C instead of trying every branch at every position (with a leading `\b`
    it did: 70 us on 100 characters of ids and URLs)."""
    c = re.escape(prefix[0])
    return rf"{c}(?<=\b{c}){re.escape(prefix[1:])}"


# (reason, regex). Every regex starts with a literal character (see _w) and uses ASCII
# classes only (no `\d`, `\w`, no case folding), so that a match is a run of token characters
# as _has_run sees it; the word boundary keeps `mask-...` and `task-...` out. Each format needs
# its real length and alphabet: `sk-1234` or `sk-winter-sale-2024` is a product code, not a
# key. A reason may have several branches.
_VENDOR_TOKENS: tuple[tuple[str, str], ...] = (
    # An AWS access key id, and the secret access key printed right after it (40 base64-ish
    # characters after at most 8 separators: `AKIA...:wJalr...`, `AKIA... wJalr...`).
    (
        "aws-key",
        _w("A") + r"(?:KIA|SIA|GPA|IDA|ROA|NPA|NVA|IPA)[0-9A-Z]{16}\b"
        r"(?:[\s:,;=|\"']{1,8}[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=]))?",
    ),
    ("gcp-key", _w("AIza") + r"[0-9A-Za-z_-]{35}"),
    ("github-token", _w("g") + r"(?:h[pousr]_[A-Za-z0-9]{36,}|ithub_pat_[A-Za-z0-9_]{22,})"),
    ("slack-token", _w("xox") + r"[abposr]-[A-Za-z0-9-]{10,}"),
    (
        "slack-webhook",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/+-]{20,}",
    ),
    ("stripe-key", _w("sk_") + r"(?:live|test)_[A-Za-z0-9]{16,}"),
    ("stripe-key", _w("rk_") + r"(?:live|test)_[A-Za-z0-9]{16,}"),
    ("stripe-key", _w("pk_") + r"(?:live|test)_[A-Za-z0-9]{16,}"),
    ("stripe-key", _w("whsec_") + r"[A-Za-z0-9+/]{32,}"),
    # Anthropic: sk-ant-api03-..., sk-ant-admin01-...
    ("anthropic-key", _w("sk-ant-") + r"[a-z]{2,8}[0-9]{2}-[A-Za-z0-9_-]{20,}"),
    # OpenAI: project, service-account and admin keys, and the legacy 48 characters (at least
    # a digit and a letter in 32+ letters and digits, no dash).
    (
        "openai-key",
        _w("sk-") + r"(?:(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}|"
        r"(?=[A-Za-z0-9]{0,64}[0-9])(?=[A-Za-z0-9]{0,64}[A-Za-z])[A-Za-z0-9]{32,}"
        r"(?![A-Za-z0-9_-]))",
    ),
    (
        "gitlab-token",
        _w("gl") + r"(?:pat|dt|rt|ptt|ft|imt|soat|cbt|agent|oas|ffct)-[A-Za-z0-9_.-]{20,}",
    ),
    ("gitlab-token", _w("GR1348941") + r"[A-Za-z0-9_-]{20,}"),
    ("npm-token", _w("npm_") + r"[A-Za-z0-9]{36}(?![A-Za-z0-9])"),
    ("pypi-token", _w("pypi-AgE") + r"[A-Za-z0-9_-]{50,}"),
    ("sendgrid-key", _w("SG.") + r"[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])"),
    # Google OAuth access tokens, refresh tokens and client secrets.
    ("google-oauth", _w("ya29.") + r"[A-Za-z0-9_-]{20,}"),
    ("google-oauth", _w("1//0") + r"[A-Za-z0-9_-]{40,}"),
    ("google-oauth", _w("GOCSPX-") + r"[A-Za-z0-9_-]{28}"),
    (
        "discord-webhook",
        r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/[0-9]{5,30}/"
        r"[A-Za-z0-9_-]{20,}",
    ),
    # A Twilio API key SID (the key's own id, next to which its secret is printed).
    ("twilio-key", _w("SK") + r"[0-9a-f]{32}\b"),
    ("vault-token", _w("hv") + r"[sbr]\.[A-Za-z0-9_-]{24,}"),
    ("digitalocean-token", _w("do") + r"[opr]_v1_[a-f0-9]{64}\b"),
    ("shopify-token", _w("shp") + r"(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b"),
    ("heroku-key", _w("HRKU-AA") + r"[A-Za-z0-9_-]{58}"),
    ("huggingface-token", _w("hf_") + r"[A-Za-z]{34}\b"),
    ("databricks-token", _w("dapi") + r"[a-f0-9]{32}(?:-[0-9])?\b"),
    ("postman-key", _w("PMAK-") + r"[a-f0-9]{24}-[a-f0-9]{34}\b"),
    (
        "grafana-token",
        _w("gl") + r"(?:sa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}|c_[A-Za-z0-9+/]{32,}={0,2})",
    ),
    ("linear-key", _w("lin_api_") + r"[A-Za-z0-9]{40}\b"),
    ("newrelic-key", _w("NR") + r"(?:AK|II|JS)-[A-Z0-9]{27}\b"),
    ("doppler-token", _w("dp.") + r"(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,44}\b"),
    ("age-key", _w("AGE-SECRET-KEY-1") + r"[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}\b"),
)
# Formats that start with a class of characters, not a literal: each its own pattern, behind
# its own gate (see _VALUE_PATTERNS), so that the alternation keeps its literal starts.
# (The word boundary comes after the first character, so that the regex engine scans for M, N
# or O in C: with a leading `\b` it tried every position, 60 us on 1000 characters.)
_DISCORD_TOKEN = (
    r"[MNO](?<=\b[MNO])[A-Za-z0-9_-]{23,25}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,38}"
    r"(?![A-Za-z0-9_-])"
)
_TELEGRAM_TOKEN = r"\b[0-9]{8,10}:AA[A-Za-z0-9_-]{33}(?![A-Za-z0-9_-])"


def _vendor_alternation(tokens: tuple[tuple[str, str], ...]) -> str:
    """One regex for all the formats: the branches grouped by their first character, each
    group checking the word boundary once (``c(?<=\\bc)(?:rest1|rest2...)``), each branch
    ended by an empty group named after its index, so that the match's last group says which
    format it was. Grouped, a candidate character costs one test per group instead of one per
    format."""
    groups: dict[str, list[tuple[bool, str]]] = {}
    for i, (_reason, rx) in enumerate(tokens):
        c = rx[0]
        head = f"{c}(?<=\\b{c})"
        bounded = rx.startswith(head)
        rest = rx[len(head) :] if bounded else rx[1:]
        groups.setdefault(c, []).append((bounded, f"{rest}(?P<v{i}>)"))
    parts = []
    for c, branches in groups.items():
        inner = [b for bounded, b in branches if bounded]
        outer = [b for bounded, b in branches if not bounded]
        alts = ([f"(?<=\\b{c})(?:{'|'.join(inner)})"] if inner else []) + outer
        parts.append(f"{c}(?:{'|'.join(alts)})")
    return "|".join(parts)


#: The vendor alternation (see _vendor_alternation).
_VENDOR_RX = _vendor_alternation(_VENDOR_TOKENS)
_VENDOR_REASONS: dict[str, str] = {f"v{i}": r for i, (r, _rx) in enumerate(_VENDOR_TOKENS)}


def _reason_of(m: re.Match[str]) -> str:
    """The reason of a vendor alternation's match (the branch that matched)."""
    return _VENDOR_REASONS.get(m.lastgroup or "", "token")


def _vendor_sub(m: re.Match[str]) -> str:
    return f"<redacted:{_reason_of(m)}>"


_VALUE_PATTERNS: tuple[tuple[str, str, _Gate], ...] = (
    # The whole PEM block (OpenPGP's armor says `PRIVATE KEY BLOCK`), up to its END line or
    # the end of the text: the body is the secret.
    # Gate: the `-----` and the case-sensitive `PRIVATE KEY` of the BEGIN line.
    (
        "private-key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
        r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\Z)",
        _Gate("-", ("PRIVATE KEY",)),
    ),
    # A PuTTY key file (.ppk), from its first line to its MAC or the end of the text.
    # Gate: the literal first-line prefix (which holds `-`).
    (
        "private-key",
        r"PuTTY-User-Key-File-[0-9]{1,2}:[\s\S]*?(?:Private-MAC:[ \t]*[0-9A-Fa-f]+|\Z)",
        _Gate("-", ("PuTTY-User-Key-File-",)),
    ),
    # A signed JWT (header.payload.signature, both JSON parts `eyJ`) or an encrypted one (JWE:
    # header.key.iv.ciphertext.tag, the key part empty for alg "dir"; only the header is JSON).
    # Gate: the dots between the parts and the literal `eyJ`; 18+ token characters in a row.
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_-]{5,}\.(?:eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*|"
        r"[A-Za-z0-9_-]*\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,})",
        _Gate(".", ("eyJ",), run=True),
    ),
    # Authorization schemes in any case (`BEARER`, `basic`): header values are case-blind.
    # Gate: the scheme word, in any case.
    ("bearer", r"\b(?i:bearer)\s+[A-Za-z0-9._~+/-]{8,}=*", _Gate(folded=("bearer",))),
    # A basic credential is base64: it has a digit, '+', '/' or a lower-to-upper change, which
    # keeps prose ("basic understanding") out.
    (
        "basic-auth",
        r"\b(?i:basic)\s+(?=[A-Za-z0-9+/]*(?:[0-9+/]|[a-z][A-Z]))[A-Za-z0-9+/]{12,}=*",
        _Gate(folded=("basic",)),
    ),
    # Vendor API keys and tokens, recognised by their published formats (gitleaks, GitHub
    # secret scanning): one alternation, a named group per reason (see _VENDOR_TOKENS).
    # Gate: each format holds a run of at least _TOKEN_RUN token characters (`run`, found on
    # the text's bytes in C, see _has_run), so prose, dates and amounts never reach the regex.
    ("", _VENDOR_RX, _Gate(run=True)),
    # Gate: the two dots, and the run.
    ("discord-token", _DISCORD_TOKEN, _Gate(".", run=True)),
    # Gate: the literal `:AA` that starts the secret part, and the run.
    ("telegram-token", _TELEGRAM_TOKEN, _Gate(lits=(":AA",), run=True)),
    # `scheme://user:password@`: the user may be empty (`redis://:password@host`), and an
    # unescaped `@` in the password is followed by more password, up to the last `@` before
    # the host (a part with `/`, `?` or `#` is the host's path, not password). Or a URL's
    # authority alone (``urlsplit(url).netloc``, a driver's ``user:password@db:5432``): the
    # whole text is ``user:password@host`` with an optional port (the host a name, an IPv4
    # address or a bracketed IPv6 one; an unescaped `@` in the password, as above), so that
    # prose with a colon and an `@` in it is not read as one (one entry: one gate test).
    # Gate: the `@` before the host, and the `:` (of `://`, or before the password).
    (
        "url-credentials",
        r"\b[a-z][a-z0-9+.-]{0,30}://[^\s:/@]{0,256}:[^\s@/]{1,256}@"
        r"(?:[^\s@/?#]{1,256}@){0,3}"
        r"|\A[^\s:/@]{0,256}:(?:[^\s@/]{0,256}@){0,3}[^\s@/]{1,256}@"
        r"(?=(?:[A-Za-z0-9_.\-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?\Z)",
        _Gate("@", (":",)),
    ),
    (
        "email",
        r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}\b",
        _Gate("@"),
    ),
)
# Carried secrets: a credential inside a larger text. Only the credential is redacted, so these
# come after the value patterns (a card in `password=4111 ...` is redacted whole first).
_CARRIED_PATTERNS: tuple[tuple[str, str, _Gate], ...] = (
    # Credentials of the other HTTP authorization schemes (RFC 9110 and common APIs), in any
    # case: 16+ token characters holding a digit (prose like "token ring" has none).
    # Gate: 16+ token characters in a row, an ASCII digit (the look-ahead), then the scheme
    # word in any case (`aws4-hmac-sha256` holds `hmac`).
    (
        "auth-scheme",
        r"\b(?i:token|apikey|api-key|negotiate|ntlm|hoba|mutual|vapid|hmac|"
        r"aws4-hmac-sha256|sharedaccesssignature|sso-key|splunk)[ \t]+"
        r"(?P<s>(?=[A-Za-z0-9._~+/=:-]*[0-9])[A-Za-z0-9._~+/=:-]{16,})",
        _Gate(
            _DIGITS,
            run=True,
            folded=tuple(
                (  # noqa: SIM905 - a word list reads better than 12 literals
                    "token apikey api-key negotiate ntlm hoba mutual vapid hmac "
                    "sharedaccesssignature sso-key splunk"
                ).split()
            ),
        ),
    ),
    # Digest credentials: the whole parameter list after the scheme (response=, cnonce=, ...).
    # Gate: the parameter's `=`, and the scheme word in any case.
    (
        "auth-scheme",
        r"\b(?i:digest)[ \t]+(?P<s>(?i:username|realm|nonce|uri|response|cnonce|opaque|qop|"
        r"algorithm|userhash)[ \t]*=[^\r\n]{0,4096})",
        _Gate("=", folded=("digest",)),
    ),
    # An AWS secret access key after its name in any spelling (aws_secret_access_key,
    # SecretAccessKey, secret-key), with or without `=`/`:` and quotes: 40 base64 characters.
    # A bare 40-character value without that context is not redacted (see the docs).
    # Gate: 40 token characters in a row, and `secret` in any case.
    (
        "aws-secret-key",
        r"(?i:secret[_-]?(?:access[_-]?)?key)(?:[_-]?id)?[\"']?[ \t]*[:=]?[ \t]*[\"']?"
        r"(?P<s>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        _Gate(folded=("secret",), run=True),
    ),
    # A .netrc entry: `machine HOST [login U] [account A] [port P] password SECRET` (or a
    # `default` entry with a login), on one line or several; the password only is redacted.
    # Gate: the literal keyword `password`.
    (
        "netrc",
        r"\b(?:machine[ \t\r\n]+[^\s]{1,256}(?:[ \t\r\n]+(?:login|account|port)[ \t\r\n]+"
        r"[^\s]{1,256}){0,4}|default(?:[ \t\r\n]+(?:login|account)[ \t\r\n]+[^\s]{1,256}){1,4})"
        r"[ \t\r\n]+password[ \t\r\n]+(?P<s>(?!<redacted)[^\s]{1,1024})",
        _Gate(lits=("password",)),
    ),
)
# The characters that Python's case-insensitive matching takes for an ASCII letter besides its
# two cases (U+0130 and U+0131 for `i`, the long s U+017F, the Kelvin sign U+212A): fold_case
# maps them to the letter, so that a gate on a folded word sees what a `(?i:...)` group matches.
_FOLD_EXTRA = {0x130: "i", 0x131: "i", 0x17F: "s", 0x212A: "k"}


def fold_case(text: str) -> str:
    """``text`` in lower case, with every character that a case-insensitive regex takes for an
    ASCII letter turned into that letter (the text the ``folded`` gates are checked on)."""
    if text.isascii():
        return text.lower()
    return text.translate(_FOLD_EXTRA).lower()


#: Reasons whose redaction keeps the text around the credential (see the module docstring):
#: captures and formatted expressions show such a string with the credential replaced.
CARRIED_REASONS: frozenset[str] = frozenset(("auth-scheme", "aws-secret-key", "field", "netrc"))

# `name=value`, `name: value`, `"name": value`, `'name': b'value'`: a field in a query string,
# form or JSON body, header line, repr or log line. The separators are found first
# (_separators); the name is read backwards from each (_name_before), and the value's extent
# (_value_end) is worked out only when the name is secret. Scanning every position for a name
# with one regex cost four to five times more on prose with a few colons.
_QUOTED_NAME = re.compile(r"[\w.\-\[\]% ]{1,128}\Z")
_NAME_RUN = re.compile(r"[\w.\-\[\]%]{1,129}")
# Header-like names whose unquoted value runs to the end of the line (`Authorization: Digest
# a="b", c="d"`, `Cookie: a=b; c=d`).
_LINE_NAMES = frozenset(("authorization", "proxyauthorization", "cookie", "setcookie"))
_UNQUOTED_VALUE = re.compile(r"[^\s&;,\"'<>{}\[\]()]{1,4096}")
_LINE_VALUE = re.compile(r"[^\r\n]{1,8192}")
# The body of a quoted value (escapes kept together; an unclosed quote runs to the line's end).
_DQ_BODY = re.compile(r'(?:[^"\\\r\n]|\\.){0,4096}')
_SQ_BODY = re.compile(r"(?:[^'\\\r\n]|\\.){0,4096}")
_MAX_FIELD_VALUE = 4096
# What ends the name of a parameter inside a decoded query string or path.
_QUERY_WORD = re.compile(r"[?&;/#=]")
_FIELD_MARK = "<redacted:field>"
# A name longer than this is judged by its first and last 128 characters (Redactor.is_secret_name).
_LONG_NAME = 256
# Names that are secret only as a query parameter (after `?`, `&` or `;`, or first):
# the signature of an Azure shared access signature URL.
_QUERY_NAMES = frozenset(("sig",))
# The name after `</` in a closing tag (a namespace prefix allowed).
_ELEMENT_NAME = re.compile(r"([A-Za-z_][A-Za-z0-9_.:-]{0,63})[ \t\r\n]*>")
# A command-line option (`--password`, `-token`) where a word starts (after a space, a tab, a
# newline, a quote or at the start), followed by spaces or by the end of a repr'd list item
# (`'--password', 'x'`). It starts with the dash, so the regex engine scans for `-` in C.
_OPTION = re.compile(
    r"-(?<![^ \t\n\"']-)-?([A-Za-z][A-Za-z0-9_.-]{1,63})"
    r"(?:[ \t]+|(['\"])[ \t]*,[ \t]*(?=['\"]))"
)
_OPTION_VALUE = re.compile(r"[^\s]{1,4096}")
# Words after an option that make it prose about the option (help and error texts), not a value.
_OPTION_PROSE = frozenset(
    (  # noqa: SIM905 - a word list reads better than 26 literals
        "or and to is in for with of the a an if as not nor must should instead flag option "
        "argument value was were are be"
    ).split()
)


def _may_hold_option(text: str) -> bool:
    """The gate of _OPTION: a `-` at the start or after a space, tab, newline or quote."""
    return "-" in text and (
        text[0] == "-"
        or " -" in text
        or "'-" in text
        or '"-' in text
        or "\t-" in text
        or "\n-" in text
    )


# A multipart/form-data part's headers, up to the blank line before its value; the name is the
# field's (``Content-Disposition: form-data; name="password"``). The header's name in any ASCII
# case, ``form-data`` as clients write it (lower case; also ``Form-Data`` and ``FORM-DATA``), so
# that the gate (_may_hold_multipart: three C searches) is necessary for a match. The headers
# are bounded. A line break is also read escaped, as a captured bytes value's repr holds it
# (``\\r\\n``); a header line holds no backslash.
_NL = r"(?:\r?\n|(?:\\r)?\\n)"
_MULTIPART_PART = re.compile(
    r"(?i:content-disposition):[ \t]*(?:form-data|Form-Data|FORM-DATA);[^\r\n]{0,512}?"
    r"\bname=\\?\"([^\"\\\r\n]{1,128})\\?\""
    rf"[^\r\n\\]{{0,512}}{_NL}(?:[^\r\n\\]{{1,1024}}{_NL}){{0,8}}{_NL}",
    re.ASCII,
)
# SQLAlchemy's error text: ``[SQL: <statement>]`` then ``[parameters: <their repr>]`` (a
# tuple, or a list of them for executemany; mappings are dict reprs, which the field rule
# reads). The gate: ``[parameters: `` in the text.
_SQL_PARAMETERS = re.compile(r"\[SQL: ([^\]]{1,65536})\]\s{0,16}\[parameters: (?=[(\[])")
# The line break before a multipart boundary line (``--boundary``), raw or escaped.
_MULTIPART_END = re.compile(r"\r?\n--|(?:\\r)?\\n--")
# The column list of an INSERT and the start of its VALUES: ``VALUES`` in upper, lower or
# capitalized case (SQL as it is written), so that the gate (_may_hold_insert) is necessary.
_INSERT_COLUMNS = re.compile(r"\(([^()]{1,4000})\)\s{0,64}(?:VALUES|values|Values)\s{0,64}\(")


def _may_hold_multipart(text: str) -> bool:
    """The gate of _MULTIPART_PART: the part's ``name=`` (one search, which most texts fail),
    and its ``form-data`` in one of the three cases it reads."""
    return "name=" in text and ("orm-data" in text or "orm-Data" in text or "ORM-DATA" in text)


def _may_hold_insert(text: str) -> bool:
    """The gate of insert_value_spans (_INSERT_COLUMNS): a ``(`` (first: one character), and
    ``VALUES`` in one of its three cases (``Values`` and ``values`` share ``alues``)."""
    return "(" in text and ("alues" in text or "ALUES" in text)


# What close_paren and _split_items stop at (everything between is skipped in C).
_PUNCT = re.compile(r"[()\[\],'\"\\]")
_CLOSING = {"(": ")", "[": "]"}


def _unquoted(text: str, start: int, end: int) -> Iterator[tuple[int, str]]:
    """``(index, character)`` of each ``( ) [ ] ,`` of ``text[start:end]`` outside quotes
    (``'...'`` and ``"..."``, a backslash escaping the character after it, SQL's doubled
    quote read as the quote closed and opened again)."""
    quote = ""
    skip = -1
    for m in _PUNCT.finditer(text, start, end):
        i = m.start()
        if i == skip:
            continue
        c = m.group()
        if c == "\\":
            skip = i + 1
        elif quote:
            if c == quote:
                quote = ""
        elif c == "'" or c == '"':
            quote = c
        else:
            yield i, c


def close_paren(text: str, i: int) -> int:
    """The index just after the ``)`` (or ``]``) that closes the ``(`` (or ``[``) at
    ``text[i]``, quotes skipped, or the text's length."""
    opening = text[i]
    closing = _CLOSING[opening]
    depth = 0
    for j, c in _unquoted(text, i, len(text)):
        if c == opening:
            depth += 1
        elif c == closing:
            depth -= 1
            if not depth:
                return j + 1
    return len(text)


def _split_items(text: str, start: int, end: int) -> list[tuple[int, int]]:
    """The spans of ``text[start:end]``'s comma-separated items (commas inside parentheses,
    brackets or quotes not counted), blanks around each item left out."""
    cuts = [start - 1]
    depth = 0
    for j, c in _unquoted(text, start, end):
        if c == "(" or c == "[":
            depth += 1
        elif c == ")" or c == "]":
            depth -= 1
        elif c == "," and depth <= 0:
            cuts.append(j)
    cuts.append(end)
    spans = []
    for k in range(len(cuts) - 1):
        a, b = cuts[k] + 1, cuts[k + 1]
        while a < b and text[a].isspace():
            a += 1
        while b > a and text[b - 1].isspace():
            b -= 1
        spans.append((a, b))
    return spans


def insert_value_spans(text: str, is_secret: Callable[[str], bool]) -> list[tuple[int, int]]:
    """Spans of the values an ``INSERT`` puts in a column ``is_secret`` calls secret, in every
    row of its ``VALUES``: ``INSERT INTO users (name, password) VALUES ('bob', 'x'), ('ann',
    'y')`` gives the spans of ``'x'`` and ``'y'``. A quoted value's span is inside its quotes."""
    spans: list[tuple[int, int]] = []
    done = 0  # where the last statement's rows ended: no character is read twice
    for m in _INSERT_COLUMNS.finditer(text):
        if m.start() < done:
            continue
        columns = [c.strip().strip("`\"[]'").strip() for c in m.group(1).split(",")]
        secret = [i for i, c in enumerate(columns) if c and is_secret(c)]
        if not secret:
            continue
        row = m.end() - 1
        while True:  # rows: (...), (...), ... (each past the last: the loop ends)
            close = close_paren(text, row)
            values = _split_items(text, row + 1, close - 1)
            if len(values) == len(columns):
                for i in secret:
                    a, b = values[i]
                    if b - a >= 2 and text[a] in "'\"" and text[b - 1] == text[a]:
                        a, b = a + 1, b - 1
                    if b > a:
                        spans.append((a, b))
            done = nxt = close
            while nxt < len(text) and text[nxt].isspace():
                nxt += 1
            if nxt >= len(text) or text[nxt] != ",":
                break
            nxt += 1
            while nxt < len(text) and text[nxt].isspace():
                nxt += 1
            if nxt >= len(text) or text[nxt] != "(":
                break
            row = nxt
    return spans


# A run of at least 13 digits, optionally grouped by single spaces, dashes, dots or underscores
# (see _CARD_SEP_RE for the last two); _is_card then
# looks for a Luhn-valid 13-19 digit card in it, so a card next to other digits is found. It
# starts with a character class, so the regex engine scans for a digit in C (a leading
# look-behind made it six times slower on prose).
_CARD_RE = re.compile(r"[0-9](?:[ ._-]?[0-9]){12,}")
# The same within a part of such a run without `.` or `_` (the grouping by spaces or dashes).
_CARD_PLAIN_RE = re.compile(r"[0-9](?:[ -]?[0-9]){12,}")
_DOT_OR_UNDERSCORE = re.compile(r"[._]")
# The runs of digits, spaces and dashes, from a digit, long enough to hold a _CARD_RE match
# (which holds nothing else and starts with a digit).
_CARD_RUN = re.compile(r"[0-9][0-9 ._-]{12,}")
# A card printed in groups joined by `.` or `_` (4-4-4-4, 4-6-5, ...): only the printed group
# sizes, one separator throughout, so that timestamps, decimals and versions stay numbers.
# The look-behind after the first group keeps a digit from coming before it (it comes after
# a first `[0-9]`, so that the regex engine scans for a digit in C).
_CARD_SEP_RE = re.compile(
    r"[0-9][0-9]{3}(?<![0-9][0-9]{4})([._])[0-9]{4,6}\1[0-9]{4,5}(?:\1[0-9]{1,7})?(?![0-9])"
)

#: Text is scanned in windows of this many characters (each pass of the patterns is bounded).
MAX_MATCH_CHARS = 65_536
#: Consecutive windows overlap by this much, so a secret across a window's edge is seen whole
#: (no built-in pattern needs more characters than this to be recognised).
WINDOW_OVERLAP = 4_096
#: :meth:`Redactor.match_secret_value` scans at most this much of one text; a longer text is
#: called ``"unscanned"`` (a secret, for what inside an expression may read of it).
MAX_SCAN_CHARS = 1 << 20
#: Error texts (:func:`redact_error`) are cut to this many characters after redaction.
MAX_ERROR_CHARS = 1_000

_NORMALIZE = str.maketrans("", "", "-_. ")


def _is_card(m: re.Match[str]) -> bool:
    text = m.group()
    if "." in text or "_" in text:
        # Dots or underscores: a card printed in groups joined by one of them, or a card
        # grouped by spaces or dashes in a part between them (a decimal, a version, an
        # address of dotted numbers is neither).
        for sep in _CARD_SEP_RE.finditer(text):
            if _is_sep_card(sep):
                return True
        for part in _DOT_OR_UNDERSCORE.split(text):
            if len(part) >= 13:
                for plain in _CARD_PLAIN_RE.finditer(part):
                    if _is_card(plain):
                        return True
        return False
    digits = text.replace(" ", "").replace("-", "")
    if len(digits) == len(text):
        # One unbroken digit run: a card only if the whole run is (an id of 25 digits is not
        # a card, whatever 16 of its digits say).
        return len(digits) <= 19 and luhn_ok(digits)
    if len(digits) <= 19 and luhn_ok(digits):
        return True
    # Grouped digits ("4111 1111 1111 1111 2 items"): the regex took the whole run, so try
    # every window of consecutive groups of 3+ digits (as cards are printed: 4-4-4-4, 4-6-5,
    # ...) holding 13 to 19 digits. Bounded: past _MAX_CARD_WINDOWS candidates the run is
    # called a card, since redacting a strange run of numbers is cheaper than a leak.
    groups = text.replace("-", " ").split(" ")
    n = len(groups)
    tried = 0
    for i in range(n):
        window = ""
        for j in range(i, min(i + 7, n)):
            g = groups[j]
            if len(g) < 3:
                break
            window += g
            if len(window) > 19:
                break
            if len(window) >= 13:
                tried += 1
                if tried > _MAX_CARD_WINDOWS or luhn_ok(window):
                    return True
    return False


_MAX_CARD_WINDOWS = 256


def _card_sub(m: re.Match[str]) -> str:
    return "<redacted:card>" if _is_card(m) else m.group()


def _is_sep_card(m: re.Match[str]) -> bool:
    digits = m.group().replace(m.group(1), "")
    return 13 <= len(digits) <= 19 and luhn_ok(digits)


_NAME_LIKE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}\Z")


def looks_like_name(text: str) -> bool:
    """True for an identifier or header name (``authorization``, ``X-Api-Key``): the first
    item of a ``(name, value)`` pair is a name only then, not any text that mentions one."""
    return _NAME_LIKE.match(text) is not None


def normalize_name(name: str) -> str:
    """``"X-Api_Key"`` -> ``"xapikey"``: the form names are compared in."""
    return name.translate(_NORMALIZE).lower()


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` (only 0-9) passes the Luhn check that card numbers carry."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def length_class(n: int) -> str:
    """The coarse length class a redacted value keeps.

    ``"0"``, ``"1-8"``, ``"9-32"``, ``"33-128"`` or ``"129+"``.
    """
    if n <= 0:
        return "0"
    if n <= 8:
        return "1-8"
    if n <= 32:
        return "9-32"
    if n <= 128:
        return "33-128"
    return "129+"


#: (reason, compiled regex, gate chars, gate literals, gate folded words, gate run): see _Gate.
#: An empty reason: the vendor alternation, whose reason is its matching group (_reason_of).
_Check = tuple[str, "re.Pattern[str]", str, tuple[str, ...], tuple[str, ...], bool]


@dataclass(frozen=True)
class _Rules:
    """One immutable set of rules; :class:`Redactor` swaps the whole object on update."""

    names: frozenset[str]
    substrings: tuple[str, ...]
    suffixes: tuple[str, ...]
    allow: frozenset[str]
    extra_names: tuple[str, ...]
    extra_patterns: tuple[str, ...]
    #: value secrets, in order (configured patterns last, with an empty gate: always run)
    checks: tuple[_Check, ...]
    #: carried secrets, the same way (a group named ``s`` is the part redacted)
    carried: tuple[_Check, ...]


def _compile_rules(
    names: Iterable[str], patterns: Iterable[str], allow: Iterable[str], *, origin: str
) -> _Rules:
    extra_names = tuple(n.strip() for n in names if n.strip())
    extra_patterns = tuple(p for p in patterns if p)
    allowed = frozenset(normalize_name(a.strip()) for a in allow if a.strip())
    checks: list[_Check] = [(reason, re.compile(rx), *gate) for reason, rx, gate in _VALUE_PATTERNS]
    for rx in extra_patterns:
        try:
            compiled = re.compile(rx)
        except re.error as exc:
            raise ConfigError(
                f"redaction pattern {rx!r} from {origin} is not a valid regular expression: {exc}"
            ) from exc
        checks.append(("pattern", compiled, "", (), (), False))
    return _Rules(
        names=DEFAULT_NAMES | frozenset(normalize_name(n) for n in extra_names),
        substrings=DEFAULT_SUBSTRINGS,
        suffixes=DEFAULT_SUFFIXES,
        allow=allowed,
        extra_names=extra_names,
        extra_patterns=extra_patterns,
        checks=tuple(checks),
        carried=tuple((r, re.compile(rx), *gate) for r, rx, gate in _CARRIED_PATTERNS),
    )


def _gate_open(
    text: str, chars: str, lits: tuple[str, ...], words: tuple[str, ...], run: bool = False
) -> bool:
    """False when ``text`` cannot hold a match of the pattern behind this gate (see _Gate)."""
    if run and not _has_run(text):
        return False
    if chars:
        for c in chars:
            if c in text:
                break
        else:
            return False
    if lits:
        for lit in lits:
            if lit in text:
                break
        else:
            return False
    if words:
        low = fold_case(text)
        for word in words:
            if word in low:
                break
        else:
            return False
    return True


def _windows(text: str) -> Iterable[str]:
    """``text`` cut in overlapping windows of MAX_MATCH_CHARS (up to MAX_SCAN_CHARS)."""
    n = len(text)
    if n <= MAX_MATCH_CHARS:
        yield text
        return
    step = MAX_MATCH_CHARS - WINDOW_OVERLAP
    for start in range(0, min(n, MAX_SCAN_CHARS), step):
        yield text[start : start + MAX_MATCH_CHARS]
        if start + MAX_MATCH_CHARS >= n:
            return


def _separators(text: str) -> list[int]:
    """Positions of ``=`` and ``:`` in order, found with str.find (C; a regex scan of every
    position cost about 150 instructions per character), and of ``=`` percent-encoded once or
    twice (``%3D``, ``%253D``: the separator of a query string carried inside a parameter,
    ``next=%2Fcb%3Ftoken%3Dabc``)."""
    out: list[int] = []
    find = text.find
    for sep in "=:%":
        i = find(sep)
        while i >= 0:
            if (
                sep != "%"
                or text[i + 1 : i + 3] in _ENCODED_EQ
                or text[i + 1 : i + 5] in _ENCODED_EQ
            ):
                out.append(i)
            i = find(sep, i + 1)
    out.sort()
    return out


#: What follows the `%` of ``=`` percent-encoded once (``%3D``) or twice (``%253D``). (One
#: search for `%` and a look at what follows: a search for `"%3D"` cost twenty times more.)
_ENCODED_EQ = frozenset(("3D", "3d", "253D", "253d"))
#: The end of a value carried under an encoded separator: ``&`` encoded the same number of times.
_ENCODED_AMP = {3: "%26", 5: "%2526"}


def _may_hold_field(text: str) -> bool:
    """The gate of _field_spans: a separator, plain or percent-encoded (one-character
    searches: memchr in C; `"%3D" in text` cost twenty times more on prose)."""
    return "=" in text or ":" in text or "%" in text


def _encoded_sep_len(text: str, i: int) -> int:
    """The length of the separator at ``i``: 1, or 3 for ``%3D``, 5 for ``%253D``."""
    if text[i] != "%":
        return 1
    return 3 if text[i + 1] == "3" else 5


def _name_before(text: str, i: int, floor: int = 0) -> str | None:
    """The field name that ends just before the separator at ``i`` (``"name"``, ``'name'`` or
    the word of name characters before it, not reaching back before ``floor``), or None."""
    j = i
    c = text[j - 1] if j else ""
    while c == " " or c == "\t":
        j -= 1
        c = text[j - 1] if j else ""
    if not c:
        return None
    if c == '"' or c == "'":
        k = text.rfind(c, max(0, j - 130), j - 1)
        if k < 0:
            return None
        name = text[k + 1 : j - 1]
        if name.endswith("\\"):
            # `\"password\": \"x\"`: JSON serialized into a string (escaped once or more).
            name = name.rstrip("\\")
        return name if _QUOTED_NAME.match(name) is not None else None
    # The word before the separator, read backwards in C: a short reversed slice and one
    # anchored match (a Python loop per character cost five times more); a long word is read
    # again in a longer slice.
    # The word stops at ``floor``: the end of the previous separator, which a name cannot
    # cross (see _field_spans).
    lo = j - 33 if j - 33 > floor else floor
    m = _NAME_RUN.match(text[j - 1 : (lo - 1 if lo else None) : -1])
    if m is None:
        return None
    if m.end() == 33:
        lo = j - 129 if j - 129 > floor else floor
        m = _NAME_RUN.match(text[j - 1 : (lo - 1 if lo else None) : -1])
        if m is None:  # pragma: no cover - the shorter slice matched
            return None
        if m.end() > 128:
            # A longer word (`..._database_password=`): its last 128 characters decide, so
            # that a long name cannot hide a secret one (substrings and suffixes still match).
            return text[j - 128 : j]
    return text[j - m.end() : j]


def _value_end(text: str, i: int, line: bool) -> tuple[int, int]:
    """The span of a field's value starting at ``i``: a quoted string (without its quotes), a
    bracketed block, the rest of the line (header-like names) or a run of value characters."""
    n = len(text)
    if i >= n:
        return i, i
    c = text[i]
    if c in "bB" and i + 1 < n and text[i + 1] in "\"'":
        i += 1  # b'...': a bytes repr
        c = text[i]
    if c == '"' or c == "'":
        m = (_DQ_BODY if c == '"' else _SQ_BODY).match(text, i + 1)
        return i + 1, m.end() if m is not None else i + 1
    if c == "\\":
        # An escaped quote (`\"x\"`, `\\\"x\\\"`): JSON serialized into a string. The value
        # runs to the same run of backslashes and quote, not preceded by another backslash.
        k = i
        while k < n and text[k] == "\\" and k - i < 16:
            k += 1
        if k < n and (text[k] == '"' or text[k] == "'"):
            close = text[i : k + 1]
            limit = min(n, k + 1 + _MAX_FIELD_VALUE)
            e = text.find(close, k + 1, limit)
            while e > 0 and text[e - 1] == "\\":
                e = text.find(close, e + 1, limit)
            return k + 1, e if e >= 0 else limit
    if c == "{" or c == "[":
        limit = min(n, i + _MAX_FIELD_VALUE)
        depth = 0
        quote = ""
        j = i
        while j < limit:
            ch = text[j]
            if quote:
                if ch == "\\":
                    j += 1
                elif ch == quote:
                    quote = ""
            elif ch == '"' or ch == "'":
                quote = ch
            elif ch == "{" or ch == "[":
                depth += 1
            elif ch == "}" or ch == "]":
                depth -= 1
                if depth == 0:
                    return i, j + 1
            j += 1
        return i, j
    m = (_LINE_VALUE if line else _UNQUOTED_VALUE).match(text, i)
    return (i, m.end()) if m is not None else (i, i)


def _replace_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with each span replaced by the field marker (overlapping spans merged)."""
    spans.sort()
    parts = []
    last = 0
    for start, end in spans:
        if start < last:  # inside a span already replaced (an element holding a field)
            last = max(last, end)
            continue
        parts.append(text[last:start])
        parts.append(_FIELD_MARK)
        last = end
    parts.append(text[last:])
    return "".join(parts)


def _secret_norm(rules: _Rules, norm: str) -> bool:
    if norm in rules.allow:
        return False
    return (
        norm in rules.names
        or any(sub in norm for sub in rules.substrings)
        or norm.endswith(rules.suffixes)
    )


def _group_sub(marker: str) -> Callable[[re.Match[str]], str]:
    """A replacement that redacts the group named ``s`` only (the whole match without one)."""

    def sub(m: re.Match[str]) -> str:
        if "s" not in m.re.groupindex or m.start("s") < 0:
            return marker
        text = m.group()
        base = m.start()
        return text[: m.start("s") - base] + marker + text[m.end("s") - base :]

    return sub


class Redactor:
    """Decides which names and values are secrets.

    Thread-safe: readers use one immutable rules object; :meth:`update` replaces it.
    ``is_secret_name`` answers from a bounded cache because the encoder asks for the same few
    names on every hit.
    """

    _CACHE_MAX = 4096

    def __init__(
        self,
        names: Iterable[str] = (),
        patterns: Iterable[str] = (),
        allow: Iterable[str] = (),
    ) -> None:
        self._lock = threading.Lock()
        self._rules = _compile_rules(names, patterns, allow, origin="Redactor()")
        self._name_cache: dict[str, bool] = {}
        #: Bumped on every rule change; compiled expressions re-check their names when it moves.
        self.version = 0

    # -- configuration -------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Redactor:
        """Build from ``SENSOR_REDACT_NAMES`` / ``_PATTERNS`` / ``_ALLOW``; raises ConfigError."""
        env = os.environ if environ is None else environ
        names = _split_list(env.get("SENSOR_REDACT_NAMES", ""))
        allow = _split_list(env.get("SENSOR_REDACT_ALLOW", ""))
        patterns = _split_patterns(env.get("SENSOR_REDACT_PATTERNS", ""))
        self = cls.__new__(cls)
        self._lock = threading.Lock()
        self._rules = _compile_rules(names, patterns, allow, origin="SENSOR_REDACT_PATTERNS")
        self._name_cache = {}
        self.version = 0
        return self

    def update(
        self,
        *,
        names: Iterable[str] | None = None,
        patterns: Iterable[str] | None = None,
        allow: Iterable[str] | None = None,
    ) -> None:
        """Replace the extra names, extra patterns and/or allow-list (defaults always stay).

        An argument left as ``None`` keeps its current value. Raises ConfigError (and changes
        nothing) when a pattern does not compile.
        """
        with self._lock:
            cur = self._rules
            rules = _compile_rules(
                cur.extra_names if names is None else _as_list(names, "names"),
                cur.extra_patterns if patterns is None else _as_list(patterns, "patterns"),
                cur.allow if allow is None else _as_list(allow, "allow"),
                origin="Redactor.update()",
            )
            self._rules = rules
            self._name_cache = {}
            self.version += 1
        _epoch.bump()  # (the lanes test the version through it)

    def to_dict(self) -> dict[str, list[str]]:
        """The configurable part of the rules, in the shape :meth:`update` accepts."""
        r = self._rules
        return {
            "names": list(r.extra_names),
            "patterns": list(r.extra_patterns),
            "allow": sorted(r.allow),
        }

    # -- queries -------------------------------------------------------------------------

    def is_secret_name(self, name: str) -> bool:
        """True when an identifier, dict key, attribute or header name holds a secret.

        A name longer than 256 characters is judged by its first and last 128 (as a field's
        name in a text is by its last 128) and not cached: the work stays bounded however
        large a string the host uses as a key, and the cache holds none of it.
        """
        if type(name) is str and len(name) > _LONG_NAME:
            return self.is_secret_name(name[:128]) or self.is_secret_name(name[-128:])
        cache = self._name_cache
        hit = cache.get(name)
        if hit is not None:
            return hit
        if type(name) is not str:
            return False
        rules = self._rules
        norm = normalize_name(name)
        secret = _secret_norm(rules, norm)
        if not secret and norm.startswith("http") and len(norm) > 4:
            # A WSGI header key (HTTP_X_API_KEY, HTTP_SESSION): the header's own name decides,
            # with or without its "X-" prefix.
            rest = norm[4:]
            secret = _secret_norm(rules, rest) or (
                rest.startswith("x") and len(rest) > 1 and _secret_norm(rules, rest[1:])
            )
            if rest in rules.allow or norm in rules.allow:
                secret = False
        if len(cache) < self._CACHE_MAX:
            cache[name] = secret
        return secret

    def match_secret_value(self, text: str) -> str | None:
        """The reason (``"card"``, ``"email"``, ``"field"``, ...) if ``text`` holds a secret.

        The whole text is scanned, in overlapping windows, up to :data:`MAX_SCAN_CHARS`
        characters; a longer text is ``"unscanned"``.
        """
        if type(text) is not str or len(text) < 6:
            return None
        rules = self._rules
        if len(text) <= MAX_MATCH_CHARS:  # the common case, without the windows' generator
            return self._match_sample(rules, text)
        for sample in _windows(text):
            reason = self._match_sample(rules, sample)
            if reason is not None:
                return reason
        return "unscanned" if len(text) > MAX_SCAN_CHARS else None

    def _match_sample(self, rules: _Rules, sample: str) -> str | None:
        # Every regex runs behind its gate (_Gate): C substring searches that are necessary
        # for a match, written inline here because a call per pattern cost as much as the
        # checks themselves. Same order as redact_text, so the first reason is the same.
        digit = False
        for d in "0123456789":  # ten C searches: cheaper than a regex
            if d in sample:
                digit = True
                break
        if digit and len(sample) >= 13:
            # A card lies inside a run of 13+ digits, spaces and dashes: such runs are found
            # by a one-character-class repeat (a C loop), three times cheaper than trying the
            # card regex at every digit of a text full of dates and ids.
            for run in _CARD_RUN.finditer(sample):
                for m in _CARD_RE.finditer(sample, run.start(), run.end()):
                    if _is_card(m):
                        return "card"
        low: str | None = None  # the case-folded text, made once if a gate needs it
        has_run: bool | None = None  # the same for the token-run gate
        for group in (rules.checks, rules.carried):
            for reason, rx, chars, lits, words, needs_run in group:
                if needs_run:
                    if has_run is None:
                        has_run = len(sample) >= _TOKEN_RUN and _has_run(sample)
                    if not has_run:
                        continue
                if chars:
                    if chars == _DIGITS:  # the digit search above answers it
                        if not digit:
                            continue
                    else:
                        for c in chars:
                            if c in sample:
                                break
                        else:
                            continue
                if lits:
                    for lit in lits:
                        if lit in sample:
                            break
                    else:
                        continue
                if words:
                    if low is None:
                        low = fold_case(sample)
                    for word in words:
                        if word in low:
                            break
                    else:
                        continue
                found = rx.search(sample)
                if found is not None:
                    return reason or _reason_of(found)
        if _may_hold_field(sample):
            if self._field_spans(sample, first=True):
                return "field"
            # (Both need a separator: a part's `name=`, the statement's `[SQL: `.)
            if (
                "name=" in sample
                and _may_hold_multipart(sample)
                and self._multipart_spans(sample, first=True)
            ):
                return "field"
            if "[parameters: " in sample and self._sql_parameter_spans(sample):
                return "field"
        if "</" in sample and self._element_spans(sample, first=True):
            return "field"
        if _may_hold_option(sample) and self._option_spans(sample, first=True):
            return "field"
        # (_may_hold_insert, inline: a call per text cost more than its test)
        if (
            "(" in sample
            and ("alues" in sample or "ALUES" in sample)
            and insert_value_spans(sample, self.is_secret_name)
        ):
            return "field"
        return None

    def _field_spans(self, text: str, *, first: bool = False) -> list[tuple[int, int]]:
        """Spans of the values held under secret names in ``text`` (``password=...``)."""
        spans: list[tuple[int, int]] = []
        n = len(text)
        skip_to = 0  # a separator inside a value already taken is not a field's separator
        # A name ends at the previous separator: `=` and `:` are not name characters, and an
        # encoded `=` (`%3D`) ends the name before it as `=` would once decoded. Without this
        # floor every `%3D` of `%`-dense text read back 128 characters and decoded them: a
        # 64 KiB text of `a%3D` cost half a second. With it, the names read are disjoint: a
        # text costs one pass, however its separators fall.
        floor = 0
        for i in _separators(text):
            sep = text[i]
            width = _encoded_sep_len(text, i)
            name_floor = floor
            floor = i + width
            if i < skip_to:
                continue
            if width == 1 and (
                (i + 1 < n and text[i + 1] == sep) or (i > 0 and text[i - 1] in "=:!<>")
            ):
                continue  # `==`, `::`, `!=`, `<=`: an operator, not a field
            name = _name_before(text, i, name_floor)
            if name is None:
                continue
            norm = self._field_name(name, text, i)
            if norm is None:
                continue
            v = i + width
            if sep == "=" and v < n and text[v] == ">":
                v += 1  # `'password' => 'x'`: a Perl, PHP or Ruby pair
            while v < n and (text[v] == " " or text[v] == "\t"):
                v += 1
            start, end = _value_end(text, v, norm in _LINE_NAMES)
            if width > 1:
                # A nested query string's value ends at its own (encoded) `&`.
                amp = fold_case(text[start:end]).find(_ENCODED_AMP[width].lower())
                if amp >= 0:
                    end = start + amp
            if end > start and not text.startswith("<redacted", start):
                spans.append((start, end))
                if first:
                    break
            skip_to = max(end, v)
        return spans

    def _field_name(self, name: str, text: str, i: int) -> str | None:
        """The normalized secret name of a field whose name is ``name`` (its separator at
        ``i``), or None when the name is not secret."""
        if "%" in name:
            # A query string carried encoded inside another (`next=%2Fcb%3Fauth%3D...`) reads
            # back to `next=` as one run of name characters: decoded (once or twice), only the
            # word after its last `?`, `&`, `;`, `/` or `=` is the name.
            decoded = urllib.parse.unquote(urllib.parse.unquote(name))
            words = _QUERY_WORD.split(decoded)
            if len(words) > 1:
                last = words[-1]
                return normalize_name(last) if last and self.is_secret_name(last) else None
        if self.is_secret_name(name):
            return normalize_name(name)
        if "%" in name:
            # A percent-encoded name (`pass%77ord=`, `api%5Fkey=`) is read decoded, and as
            # the word after its last `%` (what a name without `%` in it was read as).
            if decoded != name and self.is_secret_name(decoded):
                return normalize_name(decoded)
            tail = name[name.rfind("%") + 1 :]
            if tail and self.is_secret_name(tail):
                return normalize_name(tail)
            return None
        if name in _QUERY_NAMES:
            k = i - len(name)
            if k == 0 or text[k - 1] in "?&;":
                return name  # a query parameter (`&sig=` of an Azure SAS URL)
        return None

    def _element_spans(self, text: str, *, first: bool = False) -> list[tuple[int, int]]:
        """Spans of the contents of XML/HTML elements with secret names
        (``<password>...</password>``, ``<ns:ApiKey a="b">...</ns:ApiKey>``)."""
        spans: list[tuple[int, int]] = []
        find = text.find
        rfind = text.rfind
        # The opening tag is looked for back to the previous secret closing tag at most, so
        # that the searches never cover a character twice (a text of many closing tags costs
        # one pass, not one pass per tag).
        floor = 0
        close = find("</")
        while close >= 0:
            m = _ELEMENT_NAME.match(text, close + 2)
            if m is not None:
                tag = m.group(1)
                local = tag[tag.rfind(":") + 1 :]
                if local and self.is_secret_name(local):
                    opening = "<" + tag
                    lo = max(floor, close - _MAX_FIELD_VALUE - 1024)
                    floor = close
                    o = rfind(opening, lo, close)
                    while o >= 0:
                        after = o + len(opening)
                        c = text[after] if after < close else ""
                        if c == ">" or c.isspace():
                            break
                        o = rfind(opening, lo, o)
                    if o >= 0:
                        gt = find(">", o, close)
                        if (
                            gt >= 0
                            and text[gt - 1] != "/"
                            and gt + 1 < close
                            and not text.startswith("<redacted", gt + 1)
                        ):
                            spans.append((gt + 1, close))
                            if first:
                                return spans
            close = find("</", close + 2)
        return spans

    def _sql_parameter_spans(self, text: str) -> list[tuple[int, int]]:
        """Spans of the parameters an error's ``[SQL: ...]`` statement puts after a secret name,
        in its ``[parameters: (...)]`` (SQLAlchemy's message: ``(sqlite3.IntegrityError) ...
        [SQL: UPDATE users SET password=? WHERE id=?] [parameters: ('...', 7)]``), by the
        template rule of :mod:`sensor.capture.params`, each row of a list of them."""
        from sensor.capture.params import hidden_params  # (it imports this module)

        spans: list[tuple[int, int]] = []
        done = 0
        for m in _SQL_PARAMETERS.finditer(text):
            if m.start() < done:
                continue
            hidden = hidden_params(self, m.group(1))
            start = m.end()
            end = close_paren(text, start)
            done = end
            if not (hidden.positions or hidden.every):
                continue
            if hidden.every:
                spans.append((start, end))
                continue
            if text[start] == "(":
                rows = [(start, end)]
            else:
                rows = [
                    (a, b)
                    for a, b in _split_items(text, start + 1, end - 1)
                    if text[a : a + 1] == "("
                ]
            for a, b in rows:
                for i, (x, y) in enumerate(_split_items(text, a + 1, b - 1)):
                    if i in hidden.positions and y > x:
                        spans.append((x, y))
        return spans

    def _multipart_spans(self, text: str, *, first: bool = False) -> list[tuple[int, int]]:
        """Spans of the values of multipart/form-data parts with secret names (a browser's
        ``FormData`` login): from after the part's headers to the boundary line after it."""
        spans: list[tuple[int, int]] = []
        done = 0  # where the last value ended: no boundary search covers a character twice
        for m in _MULTIPART_PART.finditer(text):
            if m.start() < done or not self.is_secret_name(m.group(1)):
                continue
            start = m.end()
            # The boundary line after the value, its line break raw or escaped: the nearest
            # of either (one search, which stops there).
            b = _MULTIPART_END.search(text, start)
            if b is None:  # the value runs to the end: no part after it
                if len(text) > start:
                    spans.append((start, len(text)))
                return spans
            end = done = b.start()
            if end > start:
                spans.append((start, end))
                if first:
                    return spans
        return spans

    def _option_spans(self, text: str, *, first: bool = False) -> list[tuple[int, int]]:
        """Spans of the values after secret command-line options: ``--password x``,
        ``-token "x"``, and in an argv list's repr ``'--password', 'x'``."""
        spans: list[tuple[int, int]] = []
        n = len(text)
        for m in _OPTION.finditer(text):
            if not self.is_secret_name(m.group(1)):
                continue
            v = m.end()
            if v >= n or text.startswith("--", v):
                continue  # a flag: the next word is another long option
            # A word with one leading dash after a secret option is its value (`--password
            # -x9`): short flags after a secret option are rare, and hiding one costs little.
            c = text[v]
            if c == '"' or c == "'":
                body = (_DQ_BODY if c == '"' else _SQ_BODY).match(text, v + 1)
                start, end = v + 1, body.end() if body is not None else v + 1
            elif m.group(2):
                continue  # a repr's next item that is not a string
            else:
                word = _OPTION_VALUE.match(text, v)
                start, end = v, word.end() if word is not None else v
                if text[start:end].lower() in _OPTION_PROSE:
                    continue  # help text: "set --token or SENSOR_CLIENT_TOKEN"
            if end > start and not text.startswith("<redacted", start):
                spans.append((start, end))
                if first:
                    break
        return spans

    def redact_text(self, text: str) -> str:
        """``text`` with every secret replaced by ``<redacted:reason>``.

        A value secret is replaced whole; a carried one keeps the words around it (the scheme,
        the parameter's name). Beyond the first window nothing is known to be safe: the rest
        is dropped rather than shipped.
        """
        if len(text) < 6:
            return text
        head = text[:MAX_MATCH_CHARS]
        rest = len(text) - len(head)  # counted, not copied
        head = _CARD_RE.sub(_card_sub, head)
        rules = self._rules
        # Each gate is checked on the text as the previous substitutions left it; the run of
        # token characters (the dearest check) is looked for again only after a change.
        has_run: bool | None = None
        for reason, rx, chars, lits, words, run in rules.checks:
            if run:
                if has_run is None:
                    has_run = len(head) >= _TOKEN_RUN and _has_run(head)
                if not has_run:
                    continue
            if _gate_open(head, chars, lits, words):
                head, count = rx.subn(f"<redacted:{reason}>" if reason else _vendor_sub, head)
                if count:
                    has_run = None
        for reason, rx, chars, lits, words, run in rules.carried:
            if run:
                if has_run is None:
                    has_run = len(head) >= _TOKEN_RUN and _has_run(head)
                if not has_run:
                    continue
            if _gate_open(head, chars, lits, words):
                head, count = rx.subn(_group_sub(f"<redacted:{reason}>"), head)
                if count:
                    has_run = None
        spans: list[tuple[int, int]] = []
        if _may_hold_field(head):
            spans = self._field_spans(head)
            # (Both need a separator: a part's `name=`, the statement's `[SQL: `.)
            if "name=" in head and _may_hold_multipart(head):
                spans += self._multipart_spans(head)
            if "[parameters: " in head:
                spans += self._sql_parameter_spans(head)
        if "</" in head:
            spans += self._element_spans(head)
        if _may_hold_option(head):
            spans += self._option_spans(head)
        if "(" in head and ("alues" in head or "ALUES" in head):  # (_may_hold_insert)
            spans += insert_value_spans(head, self.is_secret_name)
        if spans:
            head = _replace_spans(head, spans)
        return head + (f"<redacted:unscanned {rest} chars>" if rest else "")

    @staticmethod
    def length_class(n: int) -> str:
        """See :func:`length_class`."""
        return length_class(n)


def _as_list(values: Iterable[str], what: str) -> list[str]:
    if isinstance(values, str):
        return _split_list(values) if what != "patterns" else _split_patterns(values)
    out = list(values)
    for v in out:
        if not isinstance(v, str):
            raise ConfigError(f"redaction {what}: got {v!r}, expected a string")
    return out


def _split_list(raw: str) -> list[str]:
    return [p.strip() for p in raw.split(",") if p.strip()]


def _split_patterns(raw: str) -> list[str]:
    """A JSON list of regexes, or one regex per line (a regex may contain commas)."""
    raw = raw.strip()
    if not raw:
        return []
    if raw.startswith("["):
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(
                f"SENSOR_REDACT_PATTERNS: got {raw[:80]!r}, expected a JSON list of strings"
            ) from exc
        if not isinstance(data, list) or not all(isinstance(p, str) for p in data):
            raise ConfigError(
                f"SENSOR_REDACT_PATTERNS: got {raw[:80]!r}, expected a JSON list of strings"
            )
        return list(data)
    return [line.strip() for line in raw.splitlines() if line.strip()]


_default: Redactor | None = None
_default_lock = threading.Lock()


def get_redactor() -> Redactor:
    """The process-wide redactor, built from the environment on first use.

    Never raises: a bad ``SENSOR_REDACT_*`` value is logged and the defaults are used, because
    this runs inside the host service (the agent's configuration check reports the error).
    """
    global _default
    r = _default
    if r is not None:
        return r
    with _default_lock:
        if _default is None:
            try:
                _default = Redactor.from_env()
            except ConfigError as exc:
                _log.warning("sensor redaction: %s; using the default rules", exc)
                try:
                    _default = Redactor(
                        names=_split_list(os.environ.get("SENSOR_REDACT_NAMES", ""))
                    )
                except ConfigError:
                    _default = Redactor()
            _epoch.bump()
        return _default


def set_redactor(redactor: Redactor | None) -> None:
    """Replace the process-wide redactor (``None``: rebuild from the environment on next use)."""
    global _default
    with _default_lock:
        _default = redactor
    _epoch.bump()


def redact_error(text: str) -> str:
    """An error text as it may leave the process: secrets redacted, at most MAX_ERROR_CHARS.

    The one function every error text goes through before it leaves the engine (hit
    ``errors``, ``expect.error``, status reasons), as a second line of defence behind error
    messages that are built value-free. Never raises.
    """
    try:
        raw: object = text
        if type(raw) is not str:
            if not isinstance(raw, str):
                return f"<error text of type {type(raw).__name__}>"
            text = str.__str__(raw)  # the storage of a subclass, no override runs
        head = text[: MAX_ERROR_CHARS + WINDOW_OVERLAP]
        out = get_redactor().redact_text(head)
        if len(out) > MAX_ERROR_CHARS or len(text) > len(head):
            out = out[:MAX_ERROR_CHARS] + f"...[{len(text)} characters in all]"
        return out
    except Exception:  # a broken rule must not break the caller, nor let the text through
        return "<error text withheld: redaction failed>"
