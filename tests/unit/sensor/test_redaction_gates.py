"""The redactor's gates (the substring checks that let a text skip a regex) never skip a match.

A gate is a necessary condition for its pattern: if the regex finds a secret, the gate must be
open. These tests hold every gate to that against its own regex, on texts Hypothesis generates
*from the regex* (so the texts do not share the gates' assumptions), with letters of the
case-blind words swapped for the characters Python's regex engine takes for them; and they
hold the fast scan (:meth:`Redactor.match_secret_value`, :meth:`Redactor.redact_text`) to a
reference that runs every regex on every text, in the same order.

Bounded and deterministic: a fixed number of examples, derandomized, no example database.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sensor import redaction
from sensor.redaction import Redactor, fold_case

SETTINGS = settings(
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)

RED = Redactor(patterns=[r"\bORD-[0-9]{6}\b"])
CHECKS = [*RED._rules.checks, *RED._rules.carried]
IDS = [f"{i}-{c[0] or 'vendor'}" for i, c in enumerate(CHECKS)]
#: The checks generated from as a whole. Not the vendor alternation (reason ""): Hypothesis
#: took 258 s to generate from its 40 branches (CI), and each branch is generated alone with
#: the same assertions (the gate's run, the scan against the full scan) in
#: test_every_vendor_format_holds_a_token_run.
WHOLE = [i for i, c in enumerate(CHECKS) if c[0]]
VENDOR = redaction._VENDOR_TOKENS

# What `(?i:...)` matches for an ASCII letter besides its two cases (checked below against
# the regex engine itself, over every code point).
LOOKALIKES = {"i": "\u0130\u0131", "I": "\u0130\u0131", "s": "\u017f", "S": "\u017f", "k": "\u212a"}
LOOKALIKES["K"] = "\u212a"


def _full_scan(red: Redactor, text: str) -> str | None:
    """match_secret_value without any gate: every regex on the whole text, in the same order."""
    if type(text) is not str or len(text) < 6:
        return None
    rules = red._rules
    for m in redaction._CARD_RE.finditer(text):
        if redaction._is_card(m):
            return "card"
    for reason, rx, *_gate in (*rules.checks, *rules.carried):
        found = rx.search(text)
        if found is not None:
            return reason or redaction._reason_of(found)
    if red._field_spans(text, first=True) or red._element_spans(text, first=True):
        return "field"
    if red._option_spans(text, first=True):
        return "field"
    if red._multipart_spans(text, first=True) or redaction.insert_value_spans(
        text, red.is_secret_name
    ):
        return "field"
    if red._sql_parameter_spans(text):
        return "field"
    return None


def _full_redact(red: Redactor, text: str) -> str:
    """redact_text without any gate (texts here are shorter than one window)."""
    if len(text) < 6:
        return text
    rules = red._rules
    text = redaction._CARD_RE.sub(redaction._card_sub, text)
    for reason, rx, *_gate in rules.checks:
        text = rx.sub(f"<redacted:{reason}>" if reason else redaction._vendor_sub, text)
    for reason, rx, *_gate in rules.carried:
        text = rx.sub(redaction._group_sub(f"<redacted:{reason}>"), text)
    spans = [*red._field_spans(text), *red._element_spans(text), *red._option_spans(text)]
    spans += red._multipart_spans(text)
    spans += redaction.insert_value_spans(text, red.is_secret_name)
    spans += red._sql_parameter_spans(text)
    return redaction._replace_spans(text, spans) if spans else text


@st.composite
def _lookalike(draw: st.DrawFn, text: str) -> str:
    """``text`` with some letters replaced by what a case-insensitive regex takes for them."""
    out = []
    for ch in text:
        alts = LOOKALIKES.get(ch)
        if alts and draw(st.integers(0, 3)) == 0:
            ch = draw(st.sampled_from(alts))
        out.append(ch)
    return "".join(out)


@st.composite
def _card(draw: st.DrawFn) -> str:
    """A Luhn-valid card number of 13 to 19 digits, maybe grouped, in some text."""
    n = draw(st.integers(13, 19))
    body = [draw(st.integers(0, 9)) for _ in range(n - 1)]
    for check in range(10):
        digits = "".join(map(str, [*body, check]))
        if redaction.luhn_ok(digits):
            break
    sep = draw(st.sampled_from(["", " ", "-"]))
    if sep:
        digits = sep.join(digits[i : i + 4] for i in range(0, n, 4))
    before = draw(st.text(alphabet="ab 1:=-_.@A", max_size=12))
    return before + digits + draw(st.text(alphabet="ab ,.", max_size=8))


def _in_text(secret: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """The secret with prose (and the gates' characters) around it."""
    filler = st.text(alphabet="abcXYZ 019:=@-_.\u017f\u212a", max_size=20)
    return st.tuples(filler, secret, filler).map("".join)


def test_fold_case_turns_what_the_regex_engine_folds_into_the_ascii_letter() -> None:
    # Every code point that `(?i:[a-z])` matches, on this Python's Unicode tables.
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    letters = "abcdefghijklmnopqrstuvwxyz"
    found = 0
    for m in re.finditer(r"(?i:[a-z])", every):
        ch = m.group()
        letter = next(x for x in letters if re.fullmatch(f"(?i:{x})", ch))
        assert fold_case(ch) == letter, (hex(ord(ch)), letter)
        assert fold_case(f"ab{ch}cd") == f"ab{letter}cd", hex(ord(ch))
        found += 1
    assert found > 52  # the 52 ASCII letters and the non-ASCII characters that fold to them


@pytest.mark.parametrize("index", WHOLE, ids=IDS.__getitem__)
@SETTINGS
@given(data=st.data())
def test_gate_is_open_wherever_its_regex_matches(index: int, data: st.DataObject) -> None:
    reason, rx, chars, lits, words, run = CHECKS[index]
    text = data.draw(_lookalike(data.draw(st.from_regex(rx))))
    assume(rx.search(text) is not None)
    assert redaction._gate_open(text, chars, lits, words, run), (reason, text)


@pytest.mark.parametrize("index", range(len(VENDOR)), ids=[r for r, _ in VENDOR])
@SETTINGS
@given(data=st.data())
def test_every_vendor_format_holds_a_token_run(index: int, data: st.DataObject) -> None:
    # The vendor alternation's gate (a run of _TOKEN_RUN token characters) against each of
    # its branches alone, so that every format is generated, not the few the whole
    # alternation's examples happen to pick; and the scan against the full scan on it.
    reason, branch = VENDOR[index]
    rx = re.compile(branch)
    # Hypothesis writes a look-behind's text out again: generate from the branch with its
    # word-boundary look-behind (see redaction._w) turned back into a leading `\b`.
    plain = re.sub(r"\(\?<=\\b(?:\\.|[^)])\)", "", branch)
    text = data.draw(_in_text(st.from_regex(r"\b" + plain if plain != branch else plain)))
    assume(rx.search(text) is not None)
    assert redaction._has_run(text), (reason, text)
    assert RED.match_secret_value(text) == _full_scan(RED, text), text
    assert RED.redact_text(text) == _full_redact(RED, text), text


@pytest.mark.parametrize("index", WHOLE, ids=IDS.__getitem__)
@SETTINGS
@given(data=st.data())
def test_scan_finds_what_the_full_scan_finds(index: int, data: st.DataObject) -> None:
    rx = CHECKS[index][1]
    text = data.draw(_lookalike(data.draw(_in_text(st.from_regex(rx)))))
    expected = _full_scan(RED, text)
    assert RED.match_secret_value(text) == expected, text
    assert RED.redact_text(text) == _full_redact(RED, text), text


@SETTINGS
@given(text=_card())
def test_scan_finds_every_card_the_full_scan_finds(text: str) -> None:
    assert RED.match_secret_value(text) == _full_scan(RED, text) == "card", text
    assert RED.redact_text(text) == _full_redact(RED, text), text


@SETTINGS
@given(
    text=st.text(alphabet="aAbBeErRsSiIcCkKtTyY \t=:_-.@0123456789\u017f\u212a\u0131", max_size=80)
)
def test_scan_agrees_with_the_full_scan_on_mixed_text(text: str) -> None:
    assert RED.match_secret_value(text) == _full_scan(RED, text), text
    assert RED.redact_text(text) == _full_redact(RED, text), text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # Scheme words in mixed case, or with a character the regex engine folds to a letter:
        # `(?i:...)` matches these, and a gate on a few fixed spellings did not.
        ("header BeArEr abcdefgh12345678", "bearer"),
        ("Authorization: BaSiC dXNlcjpwYXNzd29yZA==", "basic-auth"),
        ("Authorization: ba\u017fic dXNlcjpwYXNzd29yZA==", "basic-auth"),
        ("SHAREDACCESSSIGNATURE sr=abc123def456ghi789", "auth-scheme"),
        ("sharedaccesssignature sr=abc123def456ghi789", "auth-scheme"),
        ("\u212aey: \u017fecret_key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws-secret-key"),
        ("DiGeSt username=alice, response=6629fae49393a05397450978507c4ef1", "auth-scheme"),
        ("to\u212aen 0123456789abcdefghij", "auth-scheme"),
    ],
)
def test_case_blind_words_are_found_in_any_case(text: str, reason: str) -> None:
    assert RED.match_secret_value(text) == reason
    assert f"<redacted:{reason}>" in RED.redact_text(text)


@pytest.mark.parametrize(
    "text",
    [
        "the quick brown fox jumps over the lazy dog " * 7,
        "x" * 300,
        "Order 1234 for Bob, shipped to 12 High St. (2 items) on 2024-01-05; total 19.99",
        "status: ok, page=2",
    ],
)
def test_plain_text_stays_as_it_is(text: str) -> None:
    assert RED.match_secret_value(text) is None
    assert RED.redact_text(text) == text


def _repeated_chars(pattern: str) -> set[str]:
    """The characters a regex's repeated parts (``x{2,}``, ``[...]+``) may match: its runs."""
    from re import _constants as c  # type: ignore[attr-defined]
    from re import _parser as p  # type: ignore[attr-defined]

    found: set[str] = set()

    def chars(items: list[tuple[object, object]]) -> None:
        for op, arg in items:
            if op is c.LITERAL:
                found.add(chr(arg))  # type: ignore[arg-type]
            elif op is c.RANGE:
                span: Any = arg
                found.update(map(chr, range(span[0], span[1] + 1)))
            elif op is c.IN:
                chars(arg)  # type: ignore[arg-type]

    def walk(items: object) -> None:
        for op, arg in items:  # type: ignore[attr-defined]
            if op in (c.MAX_REPEAT, c.MIN_REPEAT):
                low, _high, sub = arg
                if low >= 2:
                    chars([(o, a) for o, a in sub if o in (c.IN, c.LITERAL)])
                walk(sub)
            elif op is c.SUBPATTERN:
                walk(arg[-1])
            elif op is c.BRANCH:
                for branch in arg[1]:
                    walk(branch)
            elif op in (c.ASSERT, c.ASSERT_NOT):
                walk(arg[1])

    walk(p.parse(pattern))
    return found


@pytest.mark.parametrize("index", [i for i, ch in enumerate(CHECKS) if ch[5]], ids=IDS.__getitem__)
def test_a_run_gate_counts_every_character_its_regex_repeats(index: int) -> None:
    # A gate that asks for a run of token characters is closed on a text whose run holds a
    # character the regex repeats and the run does not count: `ntlm 00000000000000~00` (an
    # auth-scheme credential, `~` allowed by its regex) was left in the clear so.
    reason, rx = CHECKS[index][0], CHECKS[index][1]
    token = {chr(b) for b in redaction._TOKEN_CHARS}
    assert _repeated_chars(rx.pattern) <= token, (reason, _repeated_chars(rx.pattern) - token)


def test_an_auth_scheme_credential_with_a_tilde_is_redacted() -> None:
    for ch in "._~+/=:-":
        text = f"sent ntlm abcdefgh12345{ch}xyz9 upstream"
        assert "12345" not in RED.redact_text(text), text


# The span finders behind plain substring gates: a multipart part, an INSERT's values, an error
# text's [SQL: ...] [parameters: ...]. Their words in every case a gate must let through, and
# in cases their patterns do not read (the two must agree: no gate may say no to a match).
_CASES = st.sampled_from
_MULTIPART_TEXT = st.builds(
    lambda h, fd, name, value, nl: f'--b{nl}{h}: {fd}; name="{name}"{nl}{nl}{value}{nl}--b--',
    _CASES(
        ["Content-Disposition", "content-disposition", "CONTENT-DISPOSITION", "Content-\u212aey"]
    ),
    _CASES(["form-data", "Form-Data", "FORM-DATA", "Form-data", "fOrm-data", "form-dat\u0430"]),
    _CASES(["password", "user", "api_key", "Secret"]),
    st.text(alphabet="abZ9 =-", min_size=1, max_size=12),
    _CASES(["\r\n", "\n", "\\r\\n"]),
)
_INSERT_TEXT = st.builds(
    lambda cols, kw, vals: f"INSERT INTO t ({cols}) {kw} ({vals})",
    _CASES(["a, password", "password, b", "a, b", "`token`, x"]),
    _CASES(["VALUES", "values", "Values", "VaLuEs", "vALUES", "VALUE\u017f"]),
    _CASES(["1, 'Zq9x'", "'Zq9x', now()", "'a,b', crypt('Zq9', x)", "1"]),
)
_SQL_ERROR_TEXT = st.builds(
    lambda sql, params: f"(db.Error) boom\n[SQL: {sql}]\n[parameters: {params}]",
    _CASES(["UPDATE u SET password=? WHERE id=?", "SELECT ? , ?", "SET token = %s, a = %s"]),
    _CASES(["('Zq9x', 7)", "[('Zq9x', 7), ('Zq9y', 8)]", "{'password': 'Zq9x'}", "('a,b', 'c')"]),
)


@SETTINGS
@given(data=st.data())
def test_the_span_finders_gates_never_skip_what_they_find(data: st.DataObject) -> None:
    text = data.draw(_in_text(st.one_of(_MULTIPART_TEXT, _INSERT_TEXT, _SQL_ERROR_TEXT)))
    assert RED.match_secret_value(text) == _full_scan(RED, text), text
    assert RED.redact_text(text) == _full_redact(RED, text), text
