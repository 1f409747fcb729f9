"""Evidence summarized first: counts, shapes, value classes and exceptions of a probe's hits.

The summary is what an agent reads before asking for any single hit: how many hits from which
sources, which outcomes of the expectation, which exceptions, which state shapes (grouped the
way the comparison groups them, by :class:`pytest_runtime.compare.shapes.ShapeWalker`) and, per
captured path, the types and value classes seen. Every list is bounded and says what it left
out; every count says what it is over.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pytest_runtime.mcp.bounds import preview

__all__ = ["hit_row", "iso", "outcome", "source_label", "summarize", "value_class", "whole_hit"]

MAX_SHAPES = 6
MAX_PATHS = 24
MAX_FIELDS_SHOWN = 24
MAX_TOP_VALUES = 6
MAX_GROUPS = 6
_DISTINCT_CAP = 64  # distinct values tracked per path (more: "many")
_NUMERIC = frozenset({"int", "float", "decimal.Decimal", "datetime.timedelta"})


def iso(ts: Any) -> str | None:
    """Epoch seconds as an ISO time in UTC, to the second."""
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not math.isfinite(ts):
        return None
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def source_label(source: Any) -> str:
    """``host:pid`` of a hit's or a status's source (``?`` for what is missing)."""
    if not isinstance(source, Mapping):
        return "?"
    return f"{source.get('host') or '?'}:{source.get('pid') or '?'}"


def outcome(hit: Mapping[str, Any]) -> str | None:
    """``true``, ``false`` or ``error`` for a hit carrying an expectation result."""
    expect = hit.get("expect")
    if not isinstance(expect, Mapping):
        return None
    ok = expect.get("ok")
    if ok is True:
        return "true"
    if ok is False:
        return "false"
    return "error"


def value_class(tname: str, raw: Any) -> str:
    """The value class of one scalar leaf: negative, zero, positive, nan, empty, non-empty, ..."""
    if tname == "bool":
        return "true" if raw else "false"
    if tname == "str":
        return "empty" if raw == "" else "non-empty"
    if tname in _NUMERIC:
        try:
            x = float(raw)
        except (TypeError, ValueError, OverflowError):
            return "number"
        if math.isnan(x):
            return "nan"
        if math.isinf(x):
            return "inf" if x > 0 else "-inf"
        return "negative" if x < 0 else "zero" if x == 0 else "positive"
    return "value"


def leaf_text(tname: str, raw: Any, limit: int = 40) -> str:
    """One scalar leaf as text: ``'JPY'``, ``12``, ``Decimal(12.50)``."""
    if tname == "str":
        text = repr(raw)
    elif tname in ("int", "float", "bool"):
        text = str(raw)
    else:
        text = f"{tname.rsplit('.', 1)[-1]}({raw})"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bounded_counts(counter: Counter[str], limit: int) -> dict[str, Any]:
    """The ``limit`` most common entries (ties by name) and how many others were left out."""
    ordered = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))
    shown: dict[str, Any] = dict(ordered[:limit])
    if len(ordered) > limit:
        rest = sum(n for _, n in ordered[limit:])
        shown["(others)"] = f"{len(ordered) - limit} more, {rest} hits"
    return shown


def summarize(hits: Sequence[Mapping[str, Any]], *, hits_on_hub: int) -> dict[str, Any]:
    """The summary of ``hits`` (oldest first); ``hits_on_hub`` is the probe's total hit count."""
    from pytest_runtime.compare.shapes import ShapeWalker  # the comparison's own shapes

    n = len(hits)
    summary: dict[str, Any] = {
        "hits_summarized": n,
        "hits_on_hub": hits_on_hub,
    }
    if hits_on_hub > n:
        summary["not_summarized"] = (
            f"{hits_on_hub - n} later hit(s) are not in this summary (the first {n} are); "
            "list_hits pages through all of them"
        )
    if not n:
        return summary
    summary["first_hit"] = iso(hits[0].get("ts"))
    summary["last_hit"] = iso(hits[-1].get("ts"))
    summary["sources"] = _bounded_counts(Counter(source_label(h.get("source")) for h in hits), 8)
    outcomes = Counter(o for o in (outcome(h) for h in hits) if o is not None)
    if outcomes:
        summary["expectation"] = {
            **dict(sorted(outcomes.items())),
            "over": f"{sum(outcomes.values())} captured hit(s) with an evaluated expectation",
        }
    exceptions = Counter(
        str(h["exception"].get("type"))
        for h in hits
        if isinstance(h.get("exception"), Mapping) and h["exception"].get("type")
    )
    if exceptions:
        summary["exceptions"] = _bounded_counts(exceptions, MAX_GROUPS)
    errors = Counter(str(e)[:160] for h in hits for e in (h.get("errors") or ()))
    if errors:
        summary["capture_errors"] = _bounded_counts(errors, MAX_GROUPS)
    truncated = sum(1 for h in hits if h.get("truncated"))
    if truncated:
        summary["truncated_hits"] = truncated
    messages = Counter(str(h["message"])[:200] for h in hits if isinstance(h.get("message"), str))
    if messages:
        summary["log_messages"] = _bounded_counts(messages, MAX_GROUPS)
    aggregate = _aggregate(h.get("aggregate") for h in hits)
    if aggregate:
        summary["aggregate"] = aggregate
    captured = [h for h in hits if isinstance(h.get("captures"), Mapping)]
    if captured:
        summary.update(_shapes_and_values(captured, ShapeWalker()))
    return summary


def _aggregate(items: Iterable[Any]) -> dict[str, Any]:
    count = 0
    total_ns = 0
    low: float | None = None
    high: float | None = None
    seen = False
    for item in items:
        if not isinstance(item, Mapping):
            continue
        seen = True
        count += int(item.get("count") or 0)
        total_ns += int(item.get("sum_ns") or 0)
        for key, pick in (("min_ns", min), ("max_ns", max)):
            value = item.get(key)
            if isinstance(value, int | float):
                if key == "min_ns":
                    low = value if low is None else pick(low, value)
                else:
                    high = value if high is None else pick(high, value)
    if not seen:
        return {}
    data: dict[str, Any] = {"count": count}
    if total_ns and count:
        data["mean_ms"] = round(total_ns / count / 1e6, 3)
    if low is not None:
        data["min_ms"] = round(low / 1e6, 3)
    if high is not None:
        data["max_ms"] = round(high / 1e6, 3)
    return data


def _shapes_and_values(hits: Sequence[Mapping[str, Any]], walker: Any) -> dict[str, Any]:
    shapes: dict[frozenset[Any], list[int]] = {}
    types: dict[str, Counter[str]] = {}
    classes: dict[str, Counter[str]] = {}
    values: dict[str, Counter[str]] = {}
    many: set[str] = set()
    ranges: dict[str, list[float]] = {}
    for index, hit in enumerate(hits):
        shape, leaves = walker.walk(hit.get("captures"))
        shapes.setdefault(shape, []).append(index)
        for path, tname, raw in leaves:
            classes.setdefault(path, Counter())[value_class(tname, raw)] += 1
            if path not in many:
                bucket = values.setdefault(path, Counter())
                bucket[leaf_text(tname, raw)] += 1
                if len(bucket) > _DISTINCT_CAP:
                    many.add(path)
                    del values[path]
            if tname in _NUMERIC:
                try:
                    x = float(raw)
                except (TypeError, ValueError, OverflowError):
                    continue
                if math.isfinite(x):
                    span = ranges.setdefault(path, [x, x])
                    span[0] = min(span[0], x)
                    span[1] = max(span[1], x)
    for shape, indexes in shapes.items():
        for path, kind, value in shape:
            if kind == "t":
                types.setdefault(path, Counter())[value] += len(indexes)
    ordered = sorted(
        shapes.items(),
        key=lambda kv: (-len(kv[1]), str(hits[kv[1][0]].get("hit_id", "")), kv[1][0]),
    )
    common = _fields(ordered[0][0])
    shape_rows: list[dict[str, Any]] = []
    for rank, (shape, indexes) in enumerate(ordered[:MAX_SHAPES]):
        row: dict[str, Any] = {
            "hits": len(indexes),
            "share": round(len(indexes) / len(hits), 4),
            "example_hit_id": hits[indexes[0]].get("hit_id"),
        }
        fields = _fields(shape)
        if rank == 0:
            row["fields"] = _bounded_fields(fields)
        else:
            row["differs_from_first"] = _difference(common, fields)
        shape_rows.append(row)
    result: dict[str, Any] = {"shapes": shape_rows, "distinct_shapes": len(ordered)}
    if len(ordered) > MAX_SHAPES:
        result["shapes_not_shown"] = (
            f"{len(ordered) - MAX_SHAPES} rarer shape(s), "
            f"{sum(len(i) for _, i in ordered[MAX_SHAPES:])} hit(s)"
        )
    # The paths most hits have come first: a field every state has says more than a rare one.
    paths = sorted(types, key=lambda path: (-sum(types[path].values()), path))
    per_path: dict[str, Any] = {}
    for path in paths[:MAX_PATHS]:
        entry: dict[str, Any] = {"types": dict(sorted(types[path].items()))}
        if path in classes:
            entry["classes"] = dict(sorted(classes[path].items()))
        if path in ranges:
            entry["min"], entry["max"] = ranges[path]
        if path in many:
            entry["distinct"] = f"over {_DISTINCT_CAP}"
        elif path in values:
            entry["distinct"] = len(values[path])
            if len(values[path]) <= MAX_TOP_VALUES:
                entry["values"] = dict(sorted(values[path].items(), key=lambda kv: (-kv[1], kv[0])))
        per_path[path] = entry
    result["values_by_path"] = per_path
    if len(paths) > MAX_PATHS:
        result["paths_not_shown"] = len(paths) - MAX_PATHS
    return result


def _fields(shape: frozenset[Any]) -> dict[str, str]:
    """``path -> type`` (several types joined with ``|``) of one shape."""
    found: dict[str, set[str]] = {}
    for path, kind, value in shape:
        if kind == "t":
            found.setdefault(path, set()).add(value)
        elif kind == "o":
            found.setdefault(path, set()).add(str(value))
    return {path: "|".join(sorted(names)) for path, names in sorted(found.items())}


def _bounded_fields(fields: Mapping[str, str]) -> dict[str, str]:
    shown = dict(list(fields.items())[:MAX_FIELDS_SHOWN])
    if len(fields) > MAX_FIELDS_SHOWN:
        shown["..."] = f"{len(fields) - MAX_FIELDS_SHOWN} more path(s)"
    return shown


def _difference(common: Mapping[str, str], fields: Mapping[str, str]) -> list[str]:
    lines = []
    for path in sorted(set(common) | set(fields)):
        before, after = common.get(path), fields.get(path)
        if before == after:
            continue
        if before is None:
            lines.append(f"+ {path}: {after}")
        elif after is None:
            lines.append(f"- {path}: {before}")
        else:
            lines.append(f"~ {path}: {before} -> {after}")
    if len(lines) > 10:
        lines = [*lines[:10], f"... {len(lines) - 10} more difference(s)"]
    return lines


def hit_row(hit: Mapping[str, Any], *, width: int = 160) -> dict[str, Any]:
    """One hit as a compact listing row (the whole hit is get_hit's)."""
    row: dict[str, Any] = {
        "hit_id": hit.get("hit_id"),
        "time": iso(hit.get("ts")),
        "source": source_label(hit.get("source")),
    }
    if hit.get("line") is not None:
        row["line"] = hit.get("line")
    result = outcome(hit)
    if result is not None:
        row["expect"] = result
        error = hit["expect"].get("error")
        if error:
            row["expect_error"] = str(error)[:120]
    exception = hit.get("exception")
    if isinstance(exception, Mapping):
        row["exception"] = str(exception.get("type"))
    if isinstance(hit.get("message"), str):
        row["message"] = str(hit["message"])[:width]
    if isinstance(hit.get("aggregate"), Mapping):
        row["aggregate"] = dict(hit["aggregate"])
    captures = hit.get("captures")
    if isinstance(captures, Mapping):
        text = ", ".join(f"{k}={preview(v, 60)}" for k, v in sorted(captures.items()))
        row["captures"] = text if len(text) <= width else text[: width - 3] + "..."
    if hit.get("truncated"):
        row["truncated"] = True
    if hit.get("errors"):
        row["errors"] = len(hit["errors"])
    return row


def whole_hit(probe_id: str, hit: Mapping[str, Any], room: int) -> dict[str, Any]:
    """One hit as get_hit shows it: every field, the source's identity, captures within ``room``."""
    from pytest_runtime.mcp.bounds import shrink

    captures, cut = shrink(hit.get("captures"), max(1000, room))
    shown = {k: v for k, v in hit.items() if k not in ("captures", "source")}
    answer: dict[str, Any] = {
        "probe_id": probe_id,
        "hit": {
            **shown,
            "time": iso(hit.get("ts")),
            "source": {
                k: v
                for k, v in (hit.get("source") or {}).items()
                if k in ("id", "service", "version", "host", "pid")
            },
            "captures": captures,
        },
    }
    if cut:
        answer["captures_cut"] = (
            "captures were shortened to fit the answer (lists keep their first items, "
            "strings their start; markers say how much was left out)"
        )
    answer["next_step"] = (
        "use this state in a regression test (the values, with their types) or in the "
        "handoff as the production state that disproves the old code"
    )
    return answer
