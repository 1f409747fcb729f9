"""Value classes and ranges (Daikon-style): sign, zero, nan, empty, magnitude, one-of sets.

Production reaching a value class that no test-time state had (a negative price, an empty name,
a currency outside the tested set) is a ``range`` divergence of medium severity. The test-time
side is summarized first (it is small); production leaves are then scanned once, and only the
hits that show something the tests did not are remembered.
"""

from __future__ import annotations

import math
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CATEGORY_MAX_DISTINCT",
    "CATEGORY_MIN_REPEAT",
    "Finding",
    "PathValues",
    "collect",
    "is_categorical",
    "value_findings",
]

_NUMERIC = frozenset({"int", "float", "decimal.Decimal", "datetime.timedelta"})
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


def _number(tname: str, raw: Any) -> float | None:
    if tname in ("int", "float") and isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    try:
        # float() reads decimal text ("12.50", "-0", "NaN", "Infinity") directly: a class and
        # a magnitude do not need the exact value.
        if tname in ("decimal.Decimal", "int", "float", "datetime.timedelta"):
            return float(str(raw))
    except (ValueError, ArithmeticError, OverflowError):
        return None
    return None


def _classify(tname: str, raw: Any) -> tuple[str | None, float | None]:
    """The value class of one leaf and its absolute size (numbers only)."""
    cls = type(raw)
    if (cls is int or cls is float) and tname != "bool":
        if raw > 0:
            return "positive", abs(raw)
        if raw < 0:
            return "negative", abs(raw)
        if raw == 0:
            return "zero", 0.0
        return "nan", None
    if tname == "str":
        return ("empty" if raw == "" else "non-empty"), None
    if tname in _NUMERIC:
        x = _number(tname, raw)
        if x is None:
            return None, None
        if math.isnan(x):
            return "nan", None
        if math.isinf(x):
            return ("inf" if x > 0 else "-inf"), None
        return ("negative" if x < 0 else "zero" if x == 0 else "positive"), abs(x)
    return None, None


#: At most this many distinct production values for a field to be a category (one-of set).
CATEGORY_MAX_DISTINCT = 6
#: Production hits per distinct value, on average, for a field to be a category.
CATEGORY_MIN_REPEAT = 4.0


def is_categorical(
    distinct: int,
    hits: int,
    *,
    max_distinct: int = CATEGORY_MAX_DISTINCT,
    min_repeat: float = CATEGORY_MIN_REPEAT,
) -> bool:
    """True when ``distinct`` values over ``hits`` production hits look like a category.

    Few distinct values (``<= max_distinct``), each seen ``min_repeat`` times on average: a
    currency, a status, a coupon code. Free text (cities, streets, postcodes, names) has many
    distinct values, most seen once or twice, and is not one.
    """
    return 0 < distinct <= max_distinct and hits >= min_repeat * distinct


def _categorical(tname: str, raw: Any) -> bool:
    return tname in _CATEGORICAL or (tname not in _NOT_CATEGORICAL and isinstance(raw, str))


def collect(leaves: Sequence[tuple[int, str, Any]], *, max_categories: int) -> PathValues:
    """Summarize the test-time values at one path."""
    pv = PathValues(count=len(leaves))
    cap = max_categories * 4
    for _, tname, raw in leaves:
        cls, size = _classify(tname, raw)
        if cls is not None:
            pv.classes.add(cls)
            if size is not None and size > pv.max_abs and not math.isinf(size):
                pv.max_abs = float(size)
        if pv.categorical:
            if not _categorical(tname, raw) or len(pv.categories) >= cap:
                pv.categorical = False
                pv.categories.clear()
            else:
                pv.categories.add((tname, raw))
    return pv


def _show(values: Sequence[Any], limit: int = 8) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    more = len(values) - limit
    return shown + (f", ... {more} more" if more > 0 else "")


_TEXT_NUMBERS = frozenset({"int", "float", "decimal.Decimal", "datetime.timedelta"})


def _as_numbers(leaves: Sequence[tuple[int, str, Any]]) -> list[tuple[int, str, Any]] | None:
    try:
        return [(i, "float", float(raw)) for i, _, raw in leaves]
    except (TypeError, ValueError, OverflowError):
        return None


def _scan(
    leaves: Sequence[tuple[int, str, Any]],
    test: PathValues,
    limit: float,
    check_categories: bool,
    cap: int,
    new_classes: dict[str, list[int]],
    over: list[int],
    seen: set[tuple[str, Any]],
    new_values: dict[tuple[str, Any], list[int]],
) -> tuple[float, bool]:
    """The general scan, leaf by leaf, for paths that mix types; returns (max size, one-of?)."""
    known = test.classes
    prod_max = 0.0
    for idx, tname, raw in leaves:
        cls, size = _classify(tname, raw)
        if cls is not None and cls not in known:
            new_classes.setdefault(cls, []).append(idx)
        if size is not None and size > limit:
            over.append(idx)
            prod_max = max(prod_max, float(size))
        if check_categories:
            if not _categorical(tname, raw):
                check_categories = False
                continue
            value = (tname, raw)
            if value not in seen:
                if len(seen) >= cap:
                    check_categories = False  # too many distinct values to be a one-of set
                    continue
                seen.add(value)
            if value not in test.categories:
                new_values.setdefault(value, []).append(idx)
    return prod_max, check_categories


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
) -> list[Finding]:
    """Value classes, magnitudes and categories production reached at ``path`` and tests did not.

    ``leaves`` are the production leaves ``(hit index, type name, value)`` at ``path``;
    ``types`` (the type names the shapes saw there) saves a pass over them. New one-of values
    are reported only when production's values at ``path`` form a category (see
    :func:`is_categorical`).
    """
    if test.count == 0 or not leaves:
        return []  # the shape comparison reports a path the tests never had
    known = test.classes
    limit = test.max_abs * range_factor if test.max_abs > 0 else math.inf
    check_categories = test.categorical and 0 < len(test.categories) <= max_categories
    cap = max_categories * 4
    new_classes: dict[str, list[int]] = {}
    over: list[int] = []
    prod_max = 0.0
    seen: set[tuple[str, Any]] = set()
    new_values: dict[tuple[str, Any], list[int]] = {}
    # The walker makes every "str" leaf a str and every "int"/"float" leaf a number.
    tnames = (types - {"None"}) if types is not None else {leaf[1] for leaf in leaves}
    if tnames == {"str"}:
        # Homogeneous paths (nearly all of them) are scanned with comprehensions, not a loop
        # of branches: one odd value class is found without classifying every value.
        distinct = {leaf[2] for leaf in leaves}
        if "empty" not in known and "" in distinct:
            new_classes["empty"] = [leaf[0] for leaf in leaves if leaf[2] == ""]
        if "non-empty" not in known and (len(distinct) > 1 or "" not in distinct):
            new_classes["non-empty"] = [leaf[0] for leaf in leaves if leaf[2] != ""]
        if check_categories and len(distinct) <= cap:
            seen = {("str", v) for v in distinct}
            fresh = {v for t, v in seen - test.categories}
            if fresh:
                for idx, _, raw in leaves:
                    if raw in fresh:
                        new_values.setdefault(("str", raw), []).append(idx)
        else:
            check_categories = False
    elif (
        tnames - {"int", "float"}
        and tnames <= _TEXT_NUMBERS
        and (numeric := _as_numbers(leaves)) is not None
    ):
        # Decimals and timedeltas: their text read as floats (a class and a magnitude do not
        # need the exact value), then the number path below.
        return value_findings(
            path,
            numeric,
            test,
            max_categories=max_categories,
            range_factor=range_factor,
            types={"float"},
            max_distinct=max_distinct,
            min_repeat=min_repeat,
        )
    elif tnames and tnames <= {"int", "float"}:
        # Tests nearly always had positives: one pass finds the rest (negative, zero, nan).
        # (No min()/max() here: with a nan among the values their answer depends on order.)
        rest = [x for x in leaves if not x[2] > 0]
        if "positive" not in known and len(rest) < len(leaves):
            new_classes["positive"] = [x[0] for x in leaves if x[2] > 0]
        for idx, _, raw in rest:
            cls = "negative" if raw < 0 else "zero" if raw == 0 else "nan"
            if cls not in known:
                new_classes.setdefault(cls, []).append(idx)
        if limit != math.inf:
            big = [(leaf[0], abs(leaf[2])) for leaf in leaves if abs(leaf[2]) > limit]
            if big:
                over = [idx for idx, _ in big]
                prod_max = float(max(size for _, size in big))
        check_categories = False
    else:
        prod_max, check_categories = _scan(
            leaves, test, limit, check_categories, cap, new_classes, over, seen, new_values
        )
    findings: list[Finding] = []
    tested = ", ".join(sorted(known)) or "none"
    for cls in sorted(new_classes):
        findings.append(
            Finding(
                "range",
                path,
                f"class:{cls}",
                "medium",
                f"{path}: {cls} value in production; tests only had {tested}",
                new_classes[cls],
            )
        )
    if over:
        findings.append(
            Finding(
                "range",
                path,
                "magnitude",
                "medium",
                f"{path}: magnitude up to {prod_max:g} in production; tests at most "
                f"{test.max_abs:g} (x{range_factor:g} allowed)",
                over,
            )
        )
    # A one-of set only when production's values repeat (Daikon reports an invariant only
    # with enough confidence): few distinct values, each seen several times on average. A
    # currency (4 values over 20 hits) is a category; a city, a street or a postcode (many
    # values, most seen once or twice) is free text, and a new one is not a divergence.
    if (
        check_categories
        and new_values
        and is_categorical(len(seen), len(leaves), max_distinct=max_distinct, min_repeat=min_repeat)
    ):
        known_values = sorted((v for _, v in test.categories), key=repr)
        for value in sorted(new_values, key=repr):
            findings.append(
                Finding(
                    "range",
                    path,
                    f"one-of:{value[1]!r}",
                    "medium",
                    f"{path}: new value {value[1]!r} in production; "
                    f"tests had one of {{{_show(known_values)}}}",
                    new_values[value],
                )
            )
    return findings
