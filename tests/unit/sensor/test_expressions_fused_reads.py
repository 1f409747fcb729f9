"""A dict read with several constant keys on every evaluation (the shop's quote identity): the fused
form checks its keys once and reads them all in one C-level step (sensor.expressions.fuse,
``_Gen.read_together``), and still answers as the closures do, or not at all, and never
compares a key of the host's own class.
"""

from __future__ import annotations

import decimal
import sys
from collections.abc import Callable
from decimal import Decimal
from types import FrameType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sensor.errors import ExpressionError
from sensor.expressions.compiler import Expression
from sensor.expressions.fuse import FALLBACK, fuse
from sensor.guards import NOTHING

QUOTE = "result['total'] == result['subtotal'] - result['discount'] + result['shipping']"
FIELDS = ("total", "subtotal", "discount", "shipping")
CALLS: list[str] = []


class Colliding:
    """A dict key of the host's own class whose hash is that of ``key``: a lookup of ``key``
    that meets it compares with it (its ``__eq__``)."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        CALLS.append(f"Colliding({self.key!r}).__eq__")
        return False


class RecordingStr(str):
    """A str key whose comparisons are the host's code."""

    def __eq__(self, other: object) -> bool:
        CALLS.append("RecordingStr.__eq__")
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def _fused(source: str) -> Callable[..., Any]:
    expr = Expression(source, slots=("result",))
    _, red, _, table = expr._compiled
    fn = fuse(expr._tree, red, table, "result", (), expr.max_steps)
    assert fn is not None, source
    return fn


def _forms(fn: Callable[..., Any]) -> list[Callable[..., Any]]:
    """The plain form and, where there is one, the Decimal form it leaves for."""
    dfused = fn.__globals__.get("DFUSED")  # type: ignore[attr-defined]
    return [fn] if dfused is None else [fn, dfused]


def _safe(source: str, result: object) -> tuple[str, Any]:
    try:
        return ("value", Expression(source, slots=("result",)).evaluate({}, values=(result,)))
    except ExpressionError as exc:
        return ("error", str(exc))


def test_a_dicts_unconditional_reads_are_taken_in_one_step() -> None:
    # The quote identity's four reads: one map of the dict's get over the four keys, unpacked
    # on the line of the keys' check; no read of its own and no Python loop over the keys.
    for form in _forms(_fused(QUOTE)):
        text = form.source  # type: ignore[attr-defined]
        assert text.count("map(v.get,") == 1, text
        assert "v.get(" not in text, text
        assert "for k" not in text, text
        (line,) = [ln for ln in text.splitlines() if "False not in map(IS, map(type, v)" in ln]
        assert line.strip().startswith("x"), line  # the unpacking, on the check's line
    # Reads that may not run keep their own check: the later operands of ``and`` and of a
    # comparison chain.
    for source in (
        "result['a'] + result['b'] > 0 and result['c'] > 0",
        "result['a'] <= result['b'] <= result['c']",
    ):
        text = _fused(source).source  # type: ignore[attr-defined]
        assert text.count("map(v.get,") == 1, text
        assert text.count("v.get(") == 1, text
        assert text.count("for k") == 1, text
    # One key read twice, or a key of each of two dicts: nothing to take together.
    for source in ("result['a'] > 0 and result['a'] < 9", "result['a'] == result['a'] + 0"):
        assert "map(v.get," not in _fused(source).source  # type: ignore[attr-defined]


def test_a_key_inserted_at_a_line_boundary_is_never_compared() -> None:
    # A tracer of the host's (Python code that runs at every line boundary of the fused
    # function, where a thread switch can happen too) replaces a key of the quote by a key of
    # the host's own class whose hash is that of the missing "total", on the line of the first
    # lookup. Checked on another line, the lookup of "total" would compare with it; checked on
    # the lookups' own line, it is refused first.
    fn = _fused(QUOTE)
    sources = {f.__code__: f.source.splitlines() for f in _forms(fn)}  # type: ignore[attr-defined]
    quote: dict[Any, Any] = {
        "currency": "EUR", "subtotal": Decimal("52.00"), "discount": Decimal("5.20"),
        "shipping": Decimal("6.44"), "extra": 1,
    }  # fmt: skip
    done: list[int] = []

    def local(frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and not done:
            text = sources[frame.f_code][frame.f_lineno - 1]
            if "v.get(" in text or "False not in map(" in text:
                done.append(frame.f_lineno)
                del quote["extra"]
                quote[Colliding("total")] = 2
        return local

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code in sources else None

    CALLS.clear()
    before = sys.gettrace()
    sys.settrace(tracer)
    try:
        got = fn(quote, NOTHING, NOTHING)
    finally:
        sys.settrace(before)
    assert done, "the tracer met no lookup"
    assert CALLS == [], CALLS
    assert got is FALLBACK


def test_a_hostile_key_present_is_never_compared_and_the_closures_answer() -> None:
    quote = {"subtotal": Decimal(2), "discount": Decimal(1), "shipping": Decimal(1)}
    for key in (Colliding("total"), Colliding("subtotal"), RecordingStr("note"), 1, b"x", 2.5):
        value = {**quote, "total": Decimal(2), key: 1}  # (building it compares: not ours)
        CALLS.clear()
        got = _fused(QUOTE)(value, NOTHING, NOTHING)
        assert CALLS == [], (key, CALLS)
        assert got is FALLBACK, key  # a key of another type than str: the closures answer


_NUMBERS = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True, allow_infinity=True, places=2),
    st.sampled_from([Decimal("NaN"), Decimal("sNaN"), Decimal("-0"), Decimal("1e999999")]),
)
_VALUES = st.one_of(_NUMBERS, st.none(), st.text(max_size=8), st.booleans())
_KEYS = st.one_of(
    st.sampled_from([*FIELDS, "currency", "id", "note"]),
    st.text(max_size=12),
    st.integers(-3, 3),
    st.binary(max_size=3),
    st.floats(allow_nan=False),
)


@st.composite
def _quotes(draw: st.DrawFn) -> dict[Any, Any]:
    # Mostly the four fields (some of them missing), with extra keys of every scalar kind.
    quote = {f: draw(_NUMBERS) for f in FIELDS if draw(st.integers(0, 9))}
    quote.update(draw(st.dictionaries(_KEYS, _VALUES, max_size=6)))
    return quote


def _flags(ctx: decimal.Context) -> list[str]:
    return sorted(sig.__name__ for sig, on in ctx.flags.items() if on)


@settings(max_examples=300, deadline=None)
@given(quote=_quotes(), trap=st.booleans())
def test_the_quote_identity_answers_as_the_closures_on_any_dict(
    quote: dict[Any, Any], trap: bool
) -> None:
    # Ints, floats, Decimals (NaN, sNaN, infinities), missing keys, extra keys of other types:
    # where the fused form answers, the closures' value; where it does not, the closures'
    # answer or error; and the thread's decimal flags as the closures leave them.
    fn = _fused(QUOTE)
    ctx = decimal.Context(traps=[decimal.Inexact] if trap else [])
    with decimal.localcontext(ctx) as alone:
        want = _safe(QUOTE, quote)
    with decimal.localcontext(ctx) as local:
        got = fn(quote, NOTHING, NOTHING)
        if got is FALLBACK:
            assert _safe(QUOTE, quote) == want
        else:
            assert want == ("value", got)
            assert type(want[1]) is type(got)
    assert _flags(local) == _flags(alone)
