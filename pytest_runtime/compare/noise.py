"""Noise: values that differ on every hit by nature (ids, timestamps, UUIDs) and thresholds.

Noise is normalized, never dropped: a noisy path is compared by its type only, so a timestamp
that turns into ``None`` is still a divergence. A field is reported as divergent only past a
count and a share threshold (Diffy reports a field only above 0.03% of requests; Daikon prints
an invariant only with enough samples), so one odd hit in ten thousand does not fail a PR.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

__all__ = ["TYPE_ONLY_TYPES", "NoiseRule", "detect_noise", "passes_threshold"]

#: Typed scalars compared by type only: their values are instants and identities, not classes.
TYPE_ONLY_TYPES = frozenset(
    {"datetime.datetime", "datetime.date", "datetime.time", "uuid.UUID", "function"}
)

_ISO = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\Z"
)
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\Z"
)
# Enough values to call a field "unique on nearly every hit" (Daikon wants at least 5 samples).
_MIN_UNIQUE_SAMPLES = 5
_PATTERN_SAMPLE = 64


@dataclass(frozen=True, slots=True)
class NoiseRule:
    """A path (glob, in the comparison's path syntax) whose values are compared by type only."""

    path: str
    reason: str = "declared"


def passes_threshold(count: int, total: int, *, min_count: int, min_share: float) -> bool:
    """True when ``count`` of ``total`` hits is enough to report a divergence."""
    if total <= 0 or count <= 0:
        return False
    return count >= min_count and count / total >= min_share


def _pattern_reason(distinct: set[Any]) -> str | None:
    strings = [v for v in distinct if type(v) is str]
    if not strings:
        return None
    # The smallest distinct values: a sample that does not depend on the order of the hits.
    sample = heapq.nsmallest(_PATTERN_SAMPLE, strings)
    if sum(1 for s in sample if _ISO.match(s)) >= 0.9 * len(sample):
        return "timestamp"
    if sum(1 for s in sample if _UUID.match(s)) >= 0.9 * len(sample):
        return "uuid"
    return None


#: Names of fields that hold ids (the last part of a path): ``id``, ``order_id``, ``userId``.
_ID_NAME = re.compile(
    r"(?:^|[._\[\]{}])(?:id|uid|uuid|guid|pk|key|seq|nonce|token|ref|serial)\Z"
    r"|(?:_id|_uid|_uuid|_key|_seq|_ref|_token|_no|Id|ID|Uuid|Key)\Z"
)
#: An int field whose values are all distinct is an id only if they are spread this wide (or
#: the field is named like an id): a quantity between 5 and 100 can be distinct on 45 hits.
_ID_MIN_SPAN = 10_000
#: Tests that used small numbers for a field production fills with ids (``load(1042)``, then
#: 7,340,000 and up): nearly every production value is at least this many times the largest
#: tested one. A quantity whose minority of values moved far away never passes this.
_PLACEHOLDER_FACTOR = 100


def _looks_like_id_name(path: str) -> bool:
    return _ID_NAME.search(path) is not None


def _id_like(ints: Sequence[int]) -> bool:
    """True when sorted ``ints`` span an id's range or are all an id's size (10,000 or more)."""
    return ints[-1] - ints[0] >= _ID_MIN_SPAN or min(abs(ints[0]), abs(ints[-1])) >= _ID_MIN_SPAN


def _bulk(ints: Sequence[int]) -> Sequence[int]:
    """The shortest run of sorted ``ints`` that holds half of them (the "shorth").

    A robust window: the values a minority moved far away (the very sign and magnitude changes
    a quantity must not hide) cannot widen it unless they are half of all values.
    """
    k = (len(ints) + 1) // 2
    start = min(range(len(ints) - k + 1), key=lambda i: ints[i + k - 1] - ints[i])
    return ints[start : start + k]


def _int_ids(prod: Sequence[Any], test: Sequence[Any]) -> bool:
    """True when an int field not named like an id holds ids rather than quantities.

    Production's bulk (:func:`_bulk` of its distinct values) must look like ids: spread
    10,000 wide or all that large. And the tests' own values must agree: they are ids too
    (large, or spread as wide), or nearly every production value (all but the lowest tenth)
    is at least 100 times the largest tested one (tests used small placeholders). A field
    the tests gave small numbers is therefore never an id just because production's values
    spread wide: its sign and magnitude changes stay visible.
    """
    ints = sorted({v for v in prod if type(v) is int})
    if not ints or not _id_like(_bulk(ints)):
        return False
    tested = sorted({v for v in test if type(v) is int})
    if not tested or _id_like(tested):
        return True
    sizes = sorted(abs(v) for v in ints)
    return sizes[len(sizes) // 10] >= _PLACEHOLDER_FACTOR * max(1, *(abs(v) for v in tested))


def _ids_or_text(
    leaves: Sequence[tuple[int, str, Any]], types: Set[str] | None = None
) -> list[Any]:
    """The str and int values among ``leaves`` (the only types that carry ids and times)."""
    if not leaves:
        return []
    if types is None:
        types = {leaf[1] for leaf in leaves}
    if types <= {"str", "int"}:
        return [leaf[2] for leaf in leaves]
    if not types & {"str", "int"}:
        return []
    return [v for _, t, v in leaves if t == "str" or t == "int"]


def detect_noise(
    prod: Mapping[str, Sequence[tuple[int, str, Any]]],
    test: Mapping[str, Sequence[tuple[int, str, Any]]],
    *,
    unique_share: float,
    prod_types: Mapping[str, Set[str]] | None = None,
) -> dict[str, str]:
    """Paths whose values are ids or timestamps, with why (``timestamp``, ``uuid``, ``unique``).

    ``prod`` and ``test`` map a path to its leaves ``(hit index, type name, value)``;
    ``prod_types`` (path -> type names, from the shapes) saves a pass over the leaves.

    ``unique``: production values distinct on at least ``unique_share`` of at least 5 hits.
    For ints that is not enough: a small-range quantity (5 to 100) can be distinct on 45 hits,
    and calling it noise would hide its sign and magnitude. An int field is an id only when
    it is named like one (``id``, ``order_id``, ``userId``, ``*_key``...) or it looks like
    ids on both sides (see :func:`_int_ids`).
    """
    found: dict[str, str] = {}
    types = prod_types or {}
    for path in sorted(set(prod) | set(test)):
        reason = None
        sides = ((prod.get(path, ()), types.get(path), True), (test.get(path, ()), None, False))
        for side, side_types, judge_unique in sides:
            values = _ids_or_text(side, side_types)
            if not values:
                continue
            try:
                distinct = set(values)
            except TypeError:  # corrupt evidence: an unhashable "value"
                continue
            reason = _pattern_reason(distinct)
            # Uniqueness is judged on production only: tests often give each case its own
            # value (six currencies, one per test), which says nothing about ids.
            if (
                reason is None
                and judge_unique
                and len(values) >= _MIN_UNIQUE_SAMPLES
                and len(distinct) >= unique_share * len(values)
                and (
                    any(type(v) is str for v in distinct)
                    or _looks_like_id_name(path)
                    or _int_ids(values, _ids_or_text(test.get(path, ())))
                )
            ):
                reason = "unique"
            if reason is not None:
                break
        if reason is not None:
            found[path] = reason
    return found
