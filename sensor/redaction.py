"""Redaction of secrets and personal data, by identifier name and by value pattern.

The sensor applies these rules before anything leaves the process: to captured values (the
encoder asks :meth:`Redactor.is_secret_name` for every local, dict key and attribute name, and
:meth:`Redactor.match_secret_value` for every string), to log messages
(:meth:`Redactor.redact_text`) and to expression results (a secret name reads as a
:class:`~sensor.expressions.Redacted` marker).

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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sensor.errors import ConfigError

__all__ = [
    "DEFAULT_NAMES",
    "DEFAULT_SUBSTRINGS",
    "Redactor",
    "get_redactor",
    "length_class",
    "luhn_ok",
    "normalize_name",
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
)

#: A normalized name that ends with one of these is redacted (``csrf_token``, ``admin_pwd``).
DEFAULT_SUFFIXES: tuple[str, ...] = ("token", "pwd", "cookie", "credentials", "signature")

# Value patterns: (reason, regex). Kept linear (no nested quantifiers) so that a hostile
# string cannot make matching slow.
# Value patterns: (reason, regex, literals). A pattern runs only when the text contains one
# of its literals (a C substring search), so ordinary prose costs a few `in` checks instead of
# a regex pass per pattern. The regexes are linear (no nested quantifiers, bounded
# repetitions), so a hostile string cannot make matching slow.
_VALUE_PATTERNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # The whole PEM block, up to its END line or the end of the text: the body is the secret.
    (
        "private-key",
        r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----[\s\S]*?"
        r"(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|\Z)",
        ("PRIVATE KEY",),
    ),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*", ("eyJ",)),
    ("bearer", r"\b[Bb]earer\s+[A-Za-z0-9._~+/-]{8,}=*", ("earer",)),
    ("basic-auth", r"\bBasic\s+[A-Za-z0-9+/]{12,}=*", ("Basic",)),
    (
        "aws-key",
        r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}\b",
        ("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ANPA", "ANVA", "AIPA"),
    ),
    ("gcp-key", r"\bAIza[0-9A-Za-z_-]{35}", ("AIza",)),
    (
        "github-token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    ("slack-token", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", ("xox",)),
    ("stripe-key", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}", ("_live_", "_test_")),
    (
        "url-credentials",
        r"\b[a-z][a-z0-9+.-]{0,30}://[^\s:/@]{1,256}:[^\s@/]{1,256}@",
        ("://",),
    ),
    (
        "email",
        r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}\b",
        ("@",),
    ),
)
# A run of at least 13 digits, optionally grouped by single spaces or dashes; _is_card then
# looks for a Luhn-valid 13-19 digit card in it, so a card next to other digits is found. It
# starts with a character class, so the regex engine scans for a digit in C (a leading
# look-behind made it six times slower on prose).
_CARD_RE = re.compile(r"[0-9](?:[ -]?[0-9]){12,}")

#: Strings longer than this are matched on their first part only: capture keeps at most a few
#: hundred characters anyway, and matching must stay bounded in time.
MAX_MATCH_CHARS = 65_536

_NORMALIZE = str.maketrans("", "", "-_. ")


def _is_card(m: re.Match[str]) -> bool:
    text = m.group()
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


@dataclass(frozen=True)
class _Rules:
    """One immutable set of rules; :class:`Redactor` swaps the whole object on update."""

    names: frozenset[str]
    substrings: tuple[str, ...]
    suffixes: tuple[str, ...]
    allow: frozenset[str]
    extra_names: tuple[str, ...]
    extra_patterns: tuple[str, ...]
    #: (reason, compiled regex, literals of which one must occur; empty: always run)
    checks: tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...]


def _compile_rules(
    names: Iterable[str], patterns: Iterable[str], allow: Iterable[str], *, origin: str
) -> _Rules:
    extra_names = tuple(n.strip() for n in names if n.strip())
    extra_patterns = tuple(p for p in patterns if p)
    allowed = frozenset(normalize_name(a.strip()) for a in allow if a.strip())
    checks: list[tuple[str, re.Pattern[str], tuple[str, ...]]] = [
        (reason, re.compile(rx), literals) for reason, rx, literals in _VALUE_PATTERNS
    ]
    for rx in extra_patterns:
        try:
            compiled = re.compile(rx)
        except re.error as exc:
            raise ConfigError(
                f"redaction pattern {rx!r} from {origin} is not a valid regular expression: {exc}"
            ) from exc
        checks.append(("pattern", compiled, ()))
    return _Rules(
        names=DEFAULT_NAMES | frozenset(normalize_name(n) for n in extra_names),
        substrings=DEFAULT_SUBSTRINGS,
        suffixes=DEFAULT_SUFFIXES,
        allow=allowed,
        extra_names=extra_names,
        extra_patterns=extra_patterns,
        checks=tuple(checks),
    )


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
        """True when an identifier, dict key or attribute called ``name`` holds a secret."""
        cache = self._name_cache
        hit = cache.get(name)
        if hit is not None:
            return hit
        if type(name) is not str:
            return False
        rules = self._rules
        norm = normalize_name(name)
        if norm in rules.allow:
            secret = False
        else:
            secret = (
                norm in rules.names
                or any(s in norm for s in rules.substrings)
                or norm.endswith(rules.suffixes)
            )
        if len(cache) < self._CACHE_MAX:
            cache[name] = secret
        return secret

    def match_secret_value(self, text: str) -> str | None:
        """The reason (``"card"``, ``"email"``, ``"jwt"``, ...) if ``text`` holds a secret."""
        if type(text) is not str or len(text) < 6:
            return None
        sample = text[:MAX_MATCH_CHARS]
        for m in _CARD_RE.finditer(sample):
            if _is_card(m):
                return "card"
        for reason, rx, literals in self._rules.checks:
            if literals:
                for lit in literals:
                    if lit in sample:
                        break
                else:
                    continue  # none of its literals: the pattern cannot match
            if rx.search(sample) is not None:
                return reason
        return None

    def redact_text(self, text: str) -> str:
        """``text`` with every secret value replaced by ``<redacted:reason>``."""
        if len(text) < 6:
            return text
        head, tail = text[:MAX_MATCH_CHARS], text[MAX_MATCH_CHARS:]
        head = _CARD_RE.sub(_card_sub, head)
        for reason, rx, literals in self._rules.checks:
            if literals:
                for lit in literals:
                    if lit in head:
                        break
                else:
                    continue
            head = rx.sub(f"<redacted:{reason}>", head)
        # Beyond the matched window nothing is known to be safe: drop it rather than ship it.
        return head + (f"<redacted:unscanned {len(tail)} chars>" if tail else "")

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
        return _default


def set_redactor(redactor: Redactor | None) -> None:
    """Replace the process-wide redactor (``None``: rebuild from the environment on next use)."""
    global _default
    with _default_lock:
        _default = redactor
