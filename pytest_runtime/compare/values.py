"""Value classes and ranges (Daikon-style): sign, magnitude, text and time classes, one-of sets.

Production reaching a value class that no test-time state had at the same path (a negative
price, a name with a trailing space, a timezone-aware datetime where every test had a naive
one) is a ``range`` divergence. Every class is one row of :data:`VALUE_CLASSES`, with its
severity and whether it is still checked on a noise path: read that table to know what the
comparison sees. The test-time side is summarized first (it is small); production leaves are
then scanned once, and only the hits that show something the tests did not are remembered.
"""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CATEGORY_ERROR",
    "CATEGORY_MAX_DISTINCT",
    "CATEGORY_MIN_REPEAT",
    "VALUE_CLASSES",
    "Finding",
    "PathValues",
    "ValueClass",
    "category_min_hits",
    "collect",
    "datetime_classes",
    "is_categorical",
    "text_classes",
    "unseen_values",
    "value_findings",
]


@dataclass(frozen=True, slots=True)
class ValueClass:
    """One class of values a test may never have reached (a row of :data:`VALUE_CLASSES`)."""

    name: str  #: the divergence key is ``class:<name>``
    of: str  #: ``number``, ``text`` or ``datetime``: the values it sorts
    severity: str  #: ``medium`` or ``low``
    meaning: str  #: what it is, for the docs; messages use the part before any ``(``
    on_noise: bool  #: still checked where values are ids or timestamps (noise paths)

    @property
    def label(self) -> str:
        """The meaning without its parenthesis: what a message says."""
        return self.meaning.split(" (")[0]


#: Every value class, in one table. A class present in production and absent from every
#: test-time value at the same path (of the same family: numbers, text, datetimes) is a
#: ``range`` divergence with this severity. ``on_noise``: still checked on a path whose values
#: are ids or timestamps (their values are compared by type, but a negative id or a tab in a
#: token is still news). Case classes are not, since ids and tokens mix cases at random.
VALUE_CLASSES: tuple[ValueClass, ...] = (
    # numbers: int, float, Decimal, timedelta
    ValueClass("negative", "number", "medium", "a negative value", True),
    ValueClass("zero", "number", "medium", "zero", True),
    ValueClass("positive", "number", "medium", "a positive value", True),
    ValueClass("nan", "number", "medium", "NaN", True),
    ValueClass("inf", "number", "medium", "infinity", True),
    ValueClass("-inf", "number", "medium", "minus infinity", True),
    # text: what tidy test data rarely has and real input often does
    ValueClass("empty", "text", "medium", "the empty string", True),
    ValueClass("non-empty", "text", "medium", "a non-empty string", True),
    ValueClass(
        "edge-whitespace",
        "text",
        "medium",
        "leading or trailing whitespace (other than a tab, a line break or a non-breaking space)",
        True,
    ),
    ValueClass(
        "tab-or-newline",
        "text",
        "medium",
        "a tab or line break (\\t, \\n, \\r, U+0085, U+2028, U+2029)",
        True,
    ),
    ValueClass(
        "non-breaking-space",
        "text",
        "medium",
        "a non-breaking space (U+00A0, U+2007, U+202F)",
        True,
    ),
    ValueClass(
        "zero-width",
        "text",
        "medium",
        "a zero-width character (U+200B, U+200C, U+200D outside emoji, U+2060, U+FEFF)",
        True,
    ),
    ValueClass(
        "control",
        "text",
        "medium",
        "a control character other than a tab or line break (U+0000-U+001F, U+007F-U+009F)",
        True,
    ),
    ValueClass(
        "direction-mark",
        "text",
        "medium",
        "a text direction mark or override (U+061C, U+200E, U+200F, U+202A-U+202E, U+2066-U+2069)",
        True,
    ),
    ValueClass(
        "combining-mark",
        "text",
        "medium",
        "a combining mark (e + U+0301 for é, and the like)",
        True,
    ),
    ValueClass("non-ascii-letter", "text", "low", "a letter outside ASCII (é, ß, Ж, 中)", True),
    ValueClass("emoji", "text", "low", "an emoji or pictograph", True),
    ValueClass("upper-case", "text", "low", "letters all in upper case ('MUG')", False),
    ValueClass("lower-case", "text", "low", "letters all in lower case ('mug')", False),
    ValueClass("mixed-case", "text", "low", "letters in both cases ('Mug')", False),
    # datetimes (and ISO 8601 text at a path whose tested values were all ISO times)
    ValueClass("naive", "datetime", "medium", "a datetime without a UTC offset (naive)", True),
    ValueClass("tz-aware", "datetime", "medium", "a datetime with a UTC offset (aware)", True),
    ValueClass("other-utc-offset", "datetime", "low", "a UTC offset the tests never had", True),
)
_BY_NAME = {c.name: c for c in VALUE_CLASSES}
_CASE = frozenset({"upper-case", "lower-case", "mixed-case"})

_NUMERIC = frozenset({"int", "float", "decimal.Decimal", "datetime.timedelta"})
_DATETIMES = frozenset({"datetime.datetime", "datetime.time"})
#: Types whose values form categories (one-of sets): strings, booleans and enums.
_CATEGORICAL = frozenset({"str", "bool"})
# Instants and identities (datetime, UUID) are compared by type only, never as categories.
_NOT_CATEGORICAL = frozenset(
    {
        "int",
        "float",
        "decimal.Decimal",
        "datetime.timedelta",
        "datetime.datetime",
        "datetime.date",
        "datetime.time",
        "uuid.UUID",
        "bytes",
        "function",
    }
)


@dataclass(slots=True)
class Finding:
    """One way production differs from the tests, before thresholds and aggregation."""

    kind: str
    path: str
    key: str  #: what changed, stable across runs (used in baseline fingerprints)
    severity: str
    message: str
    hits: list[int] = field(default_factory=list)  #: indexes of the production hits


@dataclass(slots=True)
class PathValues:
    """What the test-time states had at one path."""

    classes: set[str] = field(default_factory=set)
    categories: set[tuple[str, Any]] = field(default_factory=set)
    categorical: bool = True
    max_abs: float = 0.0
    count: int = 0
    numbers: int = 0  #: numeric leaves (their classes are comparable)
    texts: int = 0  #: str leaves
    iso_texts: int = 0  #: str leaves that are ISO 8601 datetimes
    datetimes: int = 0  #: datetime and time leaves (plus ISO texts when every text was one)
    offsets: set[str] = field(default_factory=set)  #: UTC offsets of the aware datetimes


# --------------------------------------------------------------------------- classifiers

# Spaces at either end: str.isspace's set less what a class of its own names (tabs, line
# breaks, non-breaking spaces, control characters), so that one character is one finding.
_WS_EDGE = frozenset(
    chr(c)
    for c in range(0x3001)
    if chr(c).isspace()
    and chr(c) not in "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u2007\u2028\u2029\u202f"
)
_TAB_NL = re.compile("[\t\n\r\x85\u2028\u2029]")
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f]")
_NBSP = re.compile("[\xa0\u2007\u202f]")
_ZERO_WIDTH = re.compile("[\u200b\u200c\u2060\ufeff]")
_ZWJ = "\u200d"
_DIRECTION = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff\ufe0f\U0001f1e6-\U0001f1ff]"
)


@functools.lru_cache(maxsize=65_536)  # bounded: distinct values of huge evidence stay bounded
def text_classes(value: str) -> frozenset[str]:
    """The text classes of one string (see :data:`VALUE_CLASSES`)."""
    if not value:
        return frozenset({"empty"})
    out = ["non-empty"]
    if value[0] in _WS_EDGE or value[-1] in _WS_EDGE:
        out.append("edge-whitespace")
    if _TAB_NL.search(value):
        out.append("tab-or-newline")
    if _CONTROL.search(value):
        out.append("control")
    if not value.isascii():
        if _NBSP.search(value):
            out.append("non-breaking-space")
        emoji = _EMOJI.search(value) is not None
        if emoji:
            out.append("emoji")
        if _ZERO_WIDTH.search(value) or (_ZWJ in value and not emoji):
            out.append("zero-width")
        if _DIRECTION.search(value):
            out.append("direction-mark")
        letter = combining = False
        for char in value:
            if char > "\x7f":
                if not letter and char.isalpha():
                    letter = True
                if not combining and unicodedata.category(char)[0] == "M":
                    combining = True
        if letter:
            out.append("non-ascii-letter")
        if combining:
            out.append("combining-mark")
    if value.isupper():
        out.append("upper-case")
    elif value.islower():
        out.append("lower-case")
    elif value.lower() != value.upper():  # has cased letters, in both cases
        out.append("mixed-case")
    return frozenset(out)


_ISO_TIME = re.compile(
    r"(?:\d{4}-\d{2}-\d{2}[T ])?\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?"
    r"(Z|[+-]\d{2}:?\d{2}(?::\d{2}(?:\.\d+)?)?)?\Z"
)


def datetime_classes(text: str) -> tuple[str, str | None] | None:
    """``("naive", None)`` or ``("tz-aware", offset)`` for ISO text; None if it is not one."""
    match = _ISO_TIME.match(text)
    if match is None:
        return None
    offset = match.group(1)
    if offset is None:
        return "naive", None
    if offset == "Z":
        return "tz-aware", "+00:00"
    if ":" not in offset[:4]:
        offset = offset[:3] + ":" + offset[3:]
    return "tz-aware", offset


def _number(tname: str, raw: Any) -> float | None:
    if tname in ("int", "float") and isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    try:
        # float() reads decimal text ("12.50", "-0", "NaN", "Infinity") directly: a class and
        # a magnitude do not need the exact value.
        if tname in _NUMERIC:
            return float(str(raw))
    except (ValueError, ArithmeticError, OverflowError):
        return None
    return None


def _number_class(x: float) -> str:
    if x > 0:
        return "inf" if math.isinf(x) else "positive"
    if x < 0:
        return "-inf" if math.isinf(x) else "negative"
    if x == 0:
        return "zero"
    return "nan"


#: At most this many distinct production values for a field to be a category (one-of set).
CATEGORY_MAX_DISTINCT = 6
#: Production hits per distinct value, on average, for a field to be a category.
CATEGORY_MIN_REPEAT = 4.0
#: The chance, at most, that a field of one value more than production showed, all its values
#: equally likely, is read as a category: the sample then had too few hits to miss one value
#: as common as the others this rarely (see :func:`category_min_hits`).
CATEGORY_ERROR = 0.001


@functools.lru_cache(maxsize=256)
def category_min_hits(distinct: int, error: float = CATEGORY_ERROR) -> int:
    """The fewest hits over which ``distinct`` values can be read as all the values there are.

    The smallest ``n`` with ``(d + 1) * (d / (d + 1)) ** n <= error``: were the field to have
    one value more, as common as the others (``d + 1`` values, each a share ``1 / (d + 1)``),
    ``n`` hits would show only ``d`` of them with a chance of at most ``error`` (the chance
    that one given value is missing, ``(d / (d + 1)) ** n``, times the ``d + 1`` values that
    could be the missing one). With the default 0.001: 11 hits for 1 value, 20 for 2, 29 for 3,
    39 for 4, 48 for 5, 58 for 6.
    """
    if distinct <= 0:
        return 0
    d = distinct
    n = max(1, math.ceil(math.log(error / (d + 1)) / math.log(d / (d + 1))))
    # Rounding in the logarithms may put the ceiling one off: settle it on the bound itself.
    while (d + 1) * (d / (d + 1)) ** n > error:
        n += 1
    while n > 1 and (d + 1) * (d / (d + 1)) ** (n - 1) <= error:
        n -= 1
    return n


def unseen_values(counts: Sequence[int]) -> float:
    """How many values production has that the sample did not show, estimated (Chao1).

    ``counts``: the hits of each distinct value. Values seen once (``f1``) and twice (``f2``)
    say how many were not seen at all (Good-Turing: the share of hits carrying a value not seen
    yet is about ``f1 / n``); the bias-corrected Chao1 estimate of the number of those values
    is ``(n - 1) / n * f1 * (f1 - 1) / (2 * (f2 + 1))``. It is 0 when no value was seen once
    (a sample in which every value repeats gives no sign of another) and a lower bound, not a
    confidence bound: it says values are still arriving, not how many.
    """
    n = sum(counts)
    if n <= 1:
        return 0.0
    f1 = sum(1 for c in counts if c == 1)
    f2 = sum(1 for c in counts if c == 2)
    return (n - 1) / n * f1 * (f1 - 1) / (2 * (f2 + 1))


def is_categorical(
    counts: Sequence[int],
    *,
    max_distinct: int = CATEGORY_MAX_DISTINCT,
    min_repeat: float = CATEGORY_MIN_REPEAT,
    error: float = CATEGORY_ERROR,
) -> bool:
    """True when production values with these hit ``counts`` (one per distinct value) form a
    category: a closed set of a few values, so that a value the tests never had is news.

    Few distinct values (``d <= max_distinct``), seen ``min_repeat`` times each on average: a
    currency, a status, a coupon code. Free text (cities, streets, postcodes, names) has many
    distinct values and is not one. But a small sample of free text shows only some of its
    values: 24 hits of a field of 7 equally likely streets show only 6 of them one time in 6,
    and 6 values seen 4 times each passed for a category. So the set must also look closed:

    - the sample is large enough that one more value, as common as the others, would have
      shown (:func:`category_min_hits`: a field of ``d + 1`` equally likely values passes for
      a ``d``-value category in at most ``error`` of samples, whatever their size), and
    - the values seen once and twice do not predict more values than a category may have
      (``d`` plus :func:`unseen_values`, the Chao1 estimate, is at most ``max_distinct``):
      a head of common values with a tail of rare ones keeps showing new ones.

    A field whose extra value is much rarer than the others (a 7th street on 2% of hits) can
    still pass over a sample that missed it: no sample size rules out every rare value.
    """
    d = sum(1 for c in counts if c > 0)
    if not 0 < d <= max_distinct:
        return False
    hits = sum(counts)
    if hits < min_repeat * d or hits < category_min_hits(d, error):
        return False
    return d + unseen_values([c for c in counts if c > 0]) <= max_distinct


def _categorical(tname: str, raw: Any) -> bool:
    return tname in _CATEGORICAL or (tname not in _NOT_CATEGORICAL and isinstance(raw, str))


def collect(leaves: Sequence[tuple[int, str, Any]], *, max_categories: int) -> PathValues:
    """Summarize the test-time values at one path."""
    pv = PathValues(count=len(leaves))
    cap = max_categories * 4
    dts: list[str] = []
    for _, tname, raw in leaves:
        if tname == "str" and isinstance(raw, str):
            pv.texts += 1
            pv.classes.update(text_classes(raw))
            if datetime_classes(raw) is not None:
                pv.iso_texts += 1
                dts.append(raw)
        elif tname in _DATETIMES and isinstance(raw, str):
            dts.append(raw)
        elif tname in _NUMERIC and (x := _number(tname, raw)) is not None:
            pv.numbers += 1
            pv.classes.add(_number_class(x))
            if math.isfinite(x) and abs(x) > pv.max_abs:
                pv.max_abs = abs(x)
        if pv.categorical:
            if not _categorical(tname, raw) or len(pv.categories) >= cap:
                pv.categorical = False
                pv.categories.clear()
            else:
                pv.categories.add((tname, raw))
    if pv.iso_texts < pv.texts:  # free text at this path: its ISO-looking values are text
        dts = [raw for _, tname, raw in leaves if tname in _DATETIMES and isinstance(raw, str)]
    for raw in dts:
        found = datetime_classes(raw)
        if found is not None:
            pv.datetimes += 1
            pv.classes.add(found[0])
            if found[1] is not None:
                pv.offsets.add(found[1])
    return pv


def _show(values: Sequence[Any], limit: int = 8) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    more = len(values) - limit
    return shown + (f", ... {more} more" if more > 0 else "")


def _example(values: Iterable[str], limit: int = 40, *, escape: bool = False) -> str:
    """The smallest value (deterministic), as repr, so that invisible characters show
    (``escape``: every non-ASCII character as an escape, for marks that print fused)."""
    text = ascii(min(values)) if escape else repr(min(values))
    return text if len(text) <= limit else text[: limit - 4] + "...'"


# --------------------------------------------------------------------------- findings


def _partition(
    leaves: Sequence[tuple[int, str, Any]], tnames: Set[str]
) -> tuple[
    Sequence[tuple[int, str, Any]],
    Sequence[tuple[int, str, Any]],
    Sequence[tuple[int, str, Any]],
]:
    """(text leaves, numeric leaves, datetime leaves): numeric leaves hold numbers."""
    if tnames == {"str"}:
        return leaves, [], []
    if tnames and tnames <= {"int", "float"}:
        return [], leaves, []
    if tnames and tnames <= _DATETIMES:
        return [], [], list(leaves)
    texts: list[tuple[int, str, Any]] = []
    numbers: list[tuple[int, str, Any]] = []
    dts: list[tuple[int, str, Any]] = []
    for leaf in leaves:
        idx, tname, raw = leaf
        if tname == "str" and isinstance(raw, str):
            texts.append(leaf)
        elif tname in _DATETIMES and isinstance(raw, str):
            dts.append(leaf)
        elif tname in _NUMERIC:
            x = raw if tname in ("int", "float") else _number(tname, raw)
            if isinstance(x, int | float) and not isinstance(x, bool):
                numbers.append((idx, tname, x))
    return texts, numbers, dts


def _class_finding(
    path: str, name: str, idxs: list[int], message: str, severity: str | None = None
) -> Finding:
    cls = _BY_NAME[name]
    return Finding("range", path, f"class:{name}", severity or cls.severity, message, idxs)


def value_findings(
    path: str,
    leaves: Sequence[tuple[int, str, Any]],
    test: PathValues,
    *,
    max_categories: int,
    range_factor: float,
    types: Set[str] | None = None,
    max_distinct: int = CATEGORY_MAX_DISTINCT,
    min_repeat: float = CATEGORY_MIN_REPEAT,
    category_error: float = CATEGORY_ERROR,
    noise: str | None = None,
    strict: bool = False,
) -> list[Finding]:
    """Value classes, magnitudes and categories production reached at ``path`` and tests did not.

    ``leaves`` are the production leaves ``(hit index, type name, value)`` at ``path``;
    ``types`` (the type names the shapes saw there) saves a pass over them. ``noise`` (why the
    path is noise, or None) keeps only the classes marked ``on_noise``, with no magnitude and
    no categories: an id is compared by type and sign. Classes of one family (numbers, text,
    datetimes) are compared only when the tests had values of that family at the path: a
    type change is the shape comparison's to report, once. New one-of values are reported
    when production's values form a category (see :func:`is_categorical`) and the tests had
    at least two values there (one tested value is a fixture, not a category: under
    ``strict`` its new values are reported, as low).
    """
    if test.count == 0 or not leaves:
        return []  # the shape comparison reports a path the tests never had
    tnames = (types - {"None"}) if types is not None else {leaf[1] for leaf in leaves}
    if tnames and tnames - {"int", "float"} and tnames <= _NUMERIC:
        # Decimals and timedeltas: their text read as floats (a class and a magnitude do not
        # need the exact value).
        try:
            numeric = [(i, "float", float(raw)) for i, _, raw in leaves]
        except (TypeError, ValueError, OverflowError):  # corrupt evidence: value by value
            numeric = [
                (i, "float", x) for i, t, raw in leaves if (x := _number(t, raw)) is not None
            ]
        leaves, tnames = numeric, {"float"}
    texts, numbers, dts = _partition(leaves, tnames)
    known = test.classes
    findings: list[Finding] = []
    reported: set[str] = set()

    def wanted(name: str) -> bool:
        return name not in known and (noise is None or _BY_NAME[name].on_noise)

    if numbers and test.numbers:
        # Tests nearly always had positives: one pass finds the rest (negative, zero, nan).
        # (No min()/max() here: with a nan among the values their answer depends on order.)
        new: dict[str, list[int]] = {}
        inf = math.inf
        rest = [x for x in numbers if not 0 < x[2] < inf]
        if wanted("positive") and len(rest) < len(numbers):
            new["positive"] = [x[0] for x in numbers if 0 < x[2] < inf]
        for idx, _, x in rest:
            name = _number_class(x)
            if wanted(name):
                new.setdefault(name, []).append(idx)
        tested = ", ".join(sorted(known & {c.name for c in VALUE_CLASSES if c.of == "number"}))
        for name in sorted(new):
            findings.append(
                _class_finding(
                    path,
                    name,
                    new[name],
                    f"{path}: {name} value in production; tests only had {tested or 'none'}",
                )
            )
        limit = test.max_abs * range_factor if test.max_abs > 0 else math.inf
        if noise is None and limit != math.inf:
            big = [(x[0], abs(x[2])) for x in numbers if abs(x[2]) > limit]
            if big:
                findings.append(
                    Finding(
                        "range",
                        path,
                        "magnitude",
                        "medium",
                        f"{path}: magnitude up to {max(s for _, s in big):g} in production; "
                        f"tests at most {test.max_abs:g} (x{range_factor:g} allowed)",
                        [i for i, _ in big],
                    )
                )
    distinct: set[Any] = set()
    if texts and test.texts:
        distinct = {raw for _, _, raw in texts}
        tested_case = sorted(known & _CASE)
        names = {
            c.name
            for c in VALUE_CLASSES
            if c.of == "text" and wanted(c.name) and (c.name not in _CASE or tested_case)
        }
        by_class: dict[str, list[str]] = {}
        if names and _present(distinct, names):
            # Only then classify value by value (most paths have nothing new: one scan says so).
            for value in distinct:
                for name in text_classes(value) & names:
                    by_class.setdefault(name, []).append(value)
        for name in sorted(by_class):
            if name in _CASE and not tested_case:
                continue  # no tested value had letters: case says nothing new
            values = set(by_class[name])
            idxs = [idx for idx, _, raw in texts if raw in values]
            if name == "non-empty":
                message = f"{path}: non-empty value in production; tests only had ''"
            elif name in _CASE:
                had = " or ".join(n.replace("-", " ") for n in tested_case)
                message = (
                    f"{path}: {_BY_NAME[name].label} in production, e.g. "
                    f"{_example(values)}; tested values were {had}"
                )
            elif name == "empty":
                message = f"{path}: empty value in production; tests never had ''"
            else:
                example = _example(values, escape=name == "combining-mark")
                message = (
                    f"{path}: {_BY_NAME[name].label} in production, e.g. {example}; "
                    "no tested value had one"
                )
            findings.append(_class_finding(path, name, idxs, message))
            reported.add(name)
        if test.texts == test.iso_texts:
            iso = {v for v in distinct if datetime_classes(v) is not None}
            dts = [*dts, *(leaf for leaf in texts if leaf[2] in iso)]
    if dts and test.datetimes:
        findings.extend(_datetime_findings(path, dts, test, wanted))
    if (
        noise is None
        and test.categorical
        and test.categories
        and (len(test.categories) >= 2 or strict)
    ):
        strings = distinct if tnames == {"str"} and distinct else None
        findings.extend(
            _one_of(
                path,
                leaves,
                test,
                reported,
                max_categories,
                max_distinct,
                min_repeat,
                strings,
                category_error,
            )
        )
    return findings


_ANY_CONTENT_CLASS = re.compile(
    "[\x00-\x1f\x7f-\x9f\xa0\u2007\u202f\u200b-\u200f\u2060\ufeff\u061c\u202a-\u202e"
    "\u2066-\u2069\u2028\u2029]"
)


def _present(distinct: set[str], names: Set[str]) -> bool:
    """True when some value may have one of the text classes ``names`` (a cheap pre-check).

    The classes found inside a string are looked for once over all the distinct values joined
    by a space (a space belongs to no such class); edges, emptiness and case need the values
    one by one, but only with C-level string methods.
    """
    if "empty" in names and "" in distinct:
        return True
    if "non-empty" in names and (len(distinct) > 1 or "" not in distinct):
        return True
    if "edge-whitespace" in names and any(
        v and (v[0] in _WS_EDGE or v[-1] in _WS_EDGE) for v in distinct
    ):
        return True
    if "upper-case" in names and any(v.isupper() for v in distinct):
        return True
    if "lower-case" in names and any(v.islower() for v in distinct):
        return True
    if "mixed-case" in names and any(
        not v.isupper() and not v.islower() and v.lower() != v.upper() for v in distinct
    ):
        return True
    blob = " ".join(distinct)
    if not blob.isascii():
        return True  # non-ASCII letters, marks, emoji, invisible spaces: classify the values
    return _ANY_CONTENT_CLASS.search(blob) is not None


def _datetime_findings(
    path: str, dts: Sequence[tuple[int, str, Any]], test: PathValues, wanted: Any
) -> list[Finding]:
    found: list[Finding] = []
    naive: list[int] = []
    aware: list[int] = []
    offsets: dict[str, list[int]] = {}
    examples: dict[str, list[str]] = {"naive": [], "tz-aware": []}
    seen: dict[str, tuple[str, str | None] | None] = {}
    for idx, _, raw in dts:
        if not isinstance(raw, str):
            continue
        if raw in seen:
            classes = seen[raw]
        else:
            classes = seen[raw] = datetime_classes(raw)
        if classes is None:
            continue
        if classes[0] == "naive":
            naive.append(idx)
            examples["naive"].append(raw)
        else:
            aware.append(idx)
            examples["tz-aware"].append(raw)
            if classes[1] is not None and classes[1] not in test.offsets:
                offsets.setdefault(classes[1], []).append(idx)
    if naive and wanted("naive"):
        found.append(
            _class_finding(
                path,
                "naive",
                naive,
                f"{path}: naive datetime (no UTC offset) in production, e.g. "
                f"{_example(examples['naive'])}; tests only had timezone-aware ones",
            )
        )
    if aware and wanted("tz-aware"):
        found.append(
            _class_finding(
                path,
                "tz-aware",
                aware,
                f"{path}: timezone-aware datetime in production, e.g. "
                f"{_example(examples['tz-aware'])}; tests only had naive ones",
            )
        )
    elif offsets and test.offsets and wanted("other-utc-offset"):
        names = sorted(offsets)
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        found.append(
            _class_finding(
                path,
                "other-utc-offset",
                sorted(i for idxs in offsets.values() for i in idxs),
                f"{path}: UTC offset {shown} in production; tests had "
                f"{', '.join(sorted(test.offsets))}",
            )
        )
    return found


def _one_of(
    path: str,
    leaves: Sequence[tuple[int, str, Any]],
    test: PathValues,
    reported: set[str],
    max_categories: int,
    max_distinct: int,
    min_repeat: float,
    strings: set[Any] | None = None,
    error: float = CATEGORY_ERROR,
) -> list[Finding]:
    """New values of a category, one finding each (values a class finding covers: none).

    ``strings``: the distinct values when every leaf is a str (computed once by the caller).
    """
    if len(test.categories) > max_categories:
        return []
    cap = max_categories * 4
    counts: dict[Any, int] = {}
    new_values: dict[tuple[str, Any], list[int]] = {}
    if strings is not None:
        # Nearly every categorical path holds strings only: set operations, not a loop.
        if len(strings) > cap:
            return []
        fresh = {v for v in strings if ("str", v) not in test.categories}
        if not fresh or len(strings) > max_distinct:
            return []
        counts = Counter(raw for _, _, raw in leaves)
        for idx, _, raw in leaves:
            if raw in fresh:
                new_values.setdefault(("str", raw), []).append(idx)
    else:
        for idx, tname, raw in leaves:
            if not _categorical(tname, raw):
                return []
            value = (tname, raw)
            if value not in counts:
                if len(counts) >= cap:
                    return []  # too many distinct values to be a one-of set
                counts[value] = 0
            counts[value] += 1
            if value not in test.categories:
                new_values.setdefault(value, []).append(idx)
    # A one-of set only when production's values are a closed set (Daikon reports an
    # invariant only with enough confidence): few distinct values, over enough hits that one
    # more value as common as the others would have shown, and no tail of values seen once. A
    # currency (4 values over 40 hits) is a category; a city, a street or a postcode (many
    # values, or a sample too small to have shown them all) is free text, and a new one is not
    # a divergence.
    if not new_values or not is_categorical(
        list(counts.values()), max_distinct=max_distinct, min_repeat=min_repeat, error=error
    ):
        return []
    known_values = sorted((v for _, v in test.categories), key=repr)
    single = len(known_values) == 1
    found = []
    for value in sorted(new_values, key=repr):
        raw = value[1]
        if isinstance(raw, str) and text_classes(raw) & reported:
            continue  # one line per finding: the class divergence already says it
        had = f"only {known_values[0]!r}" if single else f"one of {{{_show(known_values)}}}"
        found.append(
            Finding(
                "range",
                path,
                f"one-of:{raw!r}",
                "low" if single else "medium",
                f"{path}: new value {raw!r} in production; tests had {had}",
                new_values[value],
            )
        )
    return found
