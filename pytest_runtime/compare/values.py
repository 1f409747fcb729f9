"""Value classes and ranges (Daikon-style): sign, zero, nan, empty, magnitude, one-of sets.

Production reaching a value class that no test-time state had (a negative price, an empty name,
a currency outside the tested set) is a ``range`` divergence of medium severity.
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Finding", "PathValues", "collect", "value_findings"]

_NUMERIC = frozenset({"int", "float", "decimal.Decimal", "datetime.timedelta"})
#: Types whose values form categories (one-of sets): strings, booleans and enums.
_CATEGORICAL = frozenset({"str", "bool"})
_NOT_CATEGORICAL = frozenset(
    {"int", "float", "decimal.Decimal", "datetime.timedelta", "bytes", "function"}
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
    """What one side saw at one path."""

    classes: dict[str, list[int]] = field(default_factory=dict)
    categories: dict[Any, list[int]] = field(default_factory=dict)
    categorical: bool = True
    numbers: list[tuple[float, int]] = field(default_factory=list)
    count: int = 0


def _number(tname: str, raw: Any) -> float | None:
    if tname in ("int", "float") and isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    try:
        if tname == "decimal.Decimal":
            return float(decimal.Decimal(str(raw)))
        if tname in ("int", "float", "datetime.timedelta"):
            return float(str(raw))
    except (ValueError, ArithmeticError, OverflowError):
        return None
    return None


def _classes(tname: str, raw: Any) -> tuple[str | None, float | None]:
    if tname in _NUMERIC:
        x = _number(tname, raw)
        if x is None:
            return None, None
        if math.isnan(x):
            return "nan", None
        if math.isinf(x):
            return ("inf" if x > 0 else "-inf"), None
        return ("negative" if x < 0 else "zero" if x == 0 else "positive"), x
    if tname == "str":
        return ("empty" if raw == "" else "non-empty"), None
    return None, None


def collect(
    leaves: Sequence[tuple[int, str, Any]], *, max_categories: int, type_only: bool
) -> PathValues:
    """Value classes, categories and numbers of one side at one path."""
    pv = PathValues(count=len(leaves))
    cap = max_categories * 4
    for idx, tname, raw in leaves:
        if type_only:
            continue
        cls, number = _classes(tname, raw)
        if cls is not None:
            pv.classes.setdefault(cls, []).append(idx)
        if number is not None:
            pv.numbers.append((abs(number), idx))
        if pv.categorical:
            if tname in _NOT_CATEGORICAL or (
                tname not in _CATEGORICAL and not isinstance(raw, str)
            ):
                pv.categorical = False
                continue
            bucket = pv.categories.get((tname, raw))
            if bucket is None:
                if len(pv.categories) >= cap:
                    pv.categorical = False
                    pv.categories.clear()
                    continue
                pv.categories[(tname, raw)] = bucket = []
            bucket.append(idx)
    return pv


def _show(values: Sequence[Any], limit: int = 8) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    more = len(values) - limit
    return shown + (f", ... {more} more" if more > 0 else "")


def value_findings(
    path: str, prod: PathValues, test: PathValues, *, max_categories: int, range_factor: float
) -> list[Finding]:
    """Value classes, magnitudes and categories production reached at ``path`` and tests did not."""
    if test.count == 0 or prod.count == 0:
        return []  # the shape comparison reports a path the tests never had
    findings: list[Finding] = []
    tested = sorted(test.classes)
    for cls in sorted(set(prod.classes) - set(test.classes)):
        findings.append(
            Finding(
                "range",
                path,
                f"class:{cls}",
                "medium",
                f"{path}: {cls} value in production; tests only had {', '.join(tested) or 'none'}",
                prod.classes[cls],
            )
        )
    if test.numbers and prod.numbers:
        test_max = max(n for n, _ in test.numbers)
        if test_max > 0:
            limit = test_max * range_factor
            over = [idx for n, idx in prod.numbers if n > limit]
            if over:
                prod_max = max(n for n, _ in prod.numbers)
                findings.append(
                    Finding(
                        "range",
                        path,
                        "magnitude",
                        "medium",
                        f"{path}: magnitude up to {prod_max:g} in production; tests at most "
                        f"{test_max:g} (x{range_factor:g} allowed)",
                        over,
                    )
                )
    if (
        prod.categorical
        and test.categorical
        and 0 < len(test.categories) <= max_categories
        and len(prod.categories) <= max(1, prod.count // 2)
    ):
        known = sorted((v for _, v in test.categories), key=repr)
        for value in sorted(set(prod.categories) - set(test.categories), key=repr):
            findings.append(
                Finding(
                    "range",
                    path,
                    f"one-of:{value[1]!r}",
                    "medium",
                    f"{path}: new value {value[1]!r} in production; "
                    f"tests had one of {{{_show(known)}}}",
                    prod.categories[value],
                )
            )
    return findings
