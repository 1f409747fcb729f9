"""Verdicts: compare production evidence with test-time states and say ok, diverged, violated or
inconclusive, with the evidence (counts, hit ids, sources, deepdiff lines, a representative state,
a reproduction hint) and the state coverage.

The work is budgeted: every hit is walked once (linear), hits are grouped by shape, and only the
distinct shapes are compared (each unseen production shape against the nearest test-time
shape); deepdiff runs on one representative pair per reported divergence, at most
``max_diffed`` times.
"""

from __future__ import annotations

import gc
import heapq
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_runtime.compare.counters import (
    CONFIDENCE,
    Production,
    hits_needed,
    sampling_cause,
    summarize,
    unseen_bound,
)
from pytest_runtime.compare.noise import NoiseRule, detect_noise, passes_threshold
from pytest_runtime.compare.plumbing import Plumbing, find_plumbing
from pytest_runtime.compare.shapes import (
    Feature,
    ShapeWalker,
    children_of_opaque,
    key_path,
    parent_of,
)
from pytest_runtime.compare.values import (
    CATEGORY_ERROR,
    CATEGORY_MAX_DISTINCT,
    CATEGORY_MIN_REPEAT,
    Finding,
    collect,
    value_findings,
)

__all__ = [
    "KINDS",
    "NO_TEST_STATES",
    "SEVERITIES",
    "VERDICTS",
    "CompareSettings",
    "Divergence",
    "ProbeResult",
    "ProbeVerdict",
    "compare",
]

VERDICTS = ("ok", "diverged", "violated", "inconclusive")
KINDS = ("violation", "exception", "shape", "range", "path")
SEVERITIES = ("high", "medium", "low")
#: The key of the divergence "production reached this location, the tests never did".
NO_TEST_STATES = "no-test-states"
_REPR_STATE_MAX = 4000  # characters of JSON kept for a representative state
_MAX_NOISE_SHOWN = 50  # noise paths listed in a verdict (counts["noise_paths"] has them all)


@dataclass(frozen=True, slots=True)
class CompareSettings:
    """How a comparison judges evidence (per probe; the plugin fills it from marker and options).

    ``ignore`` and ``noise_rules`` are path globs (``order.id``, ``items[].created_at``,
    ``root['order']['id']``) whose values are compared by type only. ``min_count`` and
    ``min_share`` are the thresholds a divergence must pass (violations always count).
    ``raises`` names the exception types the test author expects to leave the function
    (``ValueError``, ``decimal.InvalidOperation``): production raising them is no divergence.
    ``rarer_than`` is the confidence bound the run asked for (reported as reached or not).
    ``category_max_distinct``, ``category_min_repeat`` and ``category_error`` decide when
    production's values at a path form a category (see
    :func:`pytest_runtime.compare.values.is_categorical`). ``plumbing`` sets server plumbing
    aside (WSGI environ and ASGI scope server keys, streams, database handles: see
    :mod:`pytest_runtime.compare.plumbing`); False compares it as data.
    """

    ignore: tuple[str, ...] = ()
    min_hits: int = 10
    strict: bool = False
    raises: tuple[str, ...] = ()
    rarer_than: float | None = None
    noise_rules: tuple[NoiseRule | str, ...] = ()
    min_count: int = 2
    min_share: float = 0.0003
    max_categories: int = 16
    category_max_distinct: int = CATEGORY_MAX_DISTINCT
    category_min_repeat: float = CATEGORY_MIN_REPEAT
    category_error: float = CATEGORY_ERROR
    unique_share: float = 0.9
    range_factor: float = 100.0
    max_divergences: int = 20
    max_hit_ids: int = 10
    max_sources: int = 5
    max_diff_lines: int = 20
    max_diffed: int = 50
    max_rechecks: int = 2000
    recheck_sample: int = 50
    plumbing: bool = True

    def __post_init__(self) -> None:
        for name in ("ignore", "noise_rules", "raises"):
            value: object = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, tuple | list):
                what = "exception type names" if name == "raises" else "path globs"
                raise TypeError(
                    f"CompareSettings.{name}: got {value!r}, expected a tuple of {what}"
                )
            object.__setattr__(self, name, tuple(value))
        for name in (
            "min_hits",
            "min_count",
            "max_categories",
            "category_max_distinct",
            "max_divergences",
            "max_hit_ids",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"CompareSettings.{name}: got {value!r}, expected an int >= 0")
        if not 0.0 <= self.min_share <= 1.0:
            raise ValueError(f"CompareSettings.min_share: got {self.min_share!r}, expected 0..1")
        if not self.category_min_repeat >= 1.0:
            raise ValueError(
                f"CompareSettings.category_min_repeat: got {self.category_min_repeat!r}, "
                "expected a number >= 1"
            )
        if not 0.0 < self.category_error < 1.0:
            raise ValueError(
                f"CompareSettings.category_error: got {self.category_error!r}, "
                "expected a probability in (0, 1)"
            )
        if not 0.0 < self.unique_share <= 1.0:
            raise ValueError(
                f"CompareSettings.unique_share: got {self.unique_share!r}, expected (0, 1]"
            )
        if self.rarer_than is not None and not 0.0 < self.rarer_than < 1.0:
            raise ValueError(
                f"CompareSettings.rarer_than: got {self.rarer_than!r}, expected a rate in (0, 1)"
            )

    @property
    def patterns(self) -> tuple[str, ...]:
        """Every path normalized to its type: declared ignores plus noise rules."""
        rules = tuple(r.path if isinstance(r, NoiseRule) else str(r) for r in self.noise_rules)
        return tuple(self.ignore) + rules


@dataclass(frozen=True, slots=True)
class Divergence:
    """One way production evidence differs from the test-time states, with its evidence."""

    kind: str  #: violation | exception | shape | range | path
    severity: str  #: high | medium | low
    path: str  #: where in the state ("" for the whole state, "expect", "exception")
    key: str  #: what changed, stable across runs (baseline fingerprints use it)
    message: str
    deepdiff: tuple[str, ...] = ()
    count: int = 0  #: production hits showing it
    share: float = 0.0  #: count / production hits
    hit_ids: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    representative: Any = None  #: one production state (captures, typed JSON, bounded)
    representative_hit: str | None = None
    #: what the sensors counted (violations, exception exits): ``count``, ``of`` (None when
    #: no total applies), ``over`` (what ``of`` counts), ``lower_bound``; None: captured only
    counted: Mapping[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "severity": self.severity,
            "path": self.path,
            "key": self.key,
            "message": self.message,
            "deepdiff": list(self.deepdiff),
            "count": self.count,
            "share": self.share,
            "hit_ids": list(self.hit_ids),
            "sources": list(self.sources),
            "representative": self.representative,
            "representative_hit": self.representative_hit,
            "counted": dict(self.counted) if self.counted is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Divergence:
        return cls(
            kind=str(data["kind"]),
            severity=str(data["severity"]),
            path=str(data.get("path", "")),
            key=str(data.get("key", "")),
            message=str(data.get("message", "")),
            deepdiff=tuple(data.get("deepdiff") or ()),
            count=int(data.get("count", 0)),
            share=float(data.get("share", 0.0)),
            hit_ids=tuple(data.get("hit_ids") or ()),
            sources=tuple(data.get("sources") or ()),
            representative=data.get("representative"),
            representative_hit=data.get("representative_hit"),
            counted=dict(data["counted"]) if isinstance(data.get("counted"), Mapping) else None,
        )


@dataclass(frozen=True, slots=True)
class ProbeVerdict:
    """The comparison's answer for one probe."""

    verdict: str  #: ok | diverged | violated | inconclusive
    counts: Mapping[str, int] = field(default_factory=dict)
    state_coverage: float = 0.0  #: share of production shapes some test-time state had (0..1)
    divergences: tuple[Divergence, ...] = ()
    hint: str = ""
    strict: bool = False
    noise: Mapping[str, str] = field(default_factory=dict)  #: path -> why compared by type only
    #: what production did, from the sensors' counters (``Production.to_dict()``)
    production: Mapping[str, Any] = field(default_factory=dict)
    #: how rare anything the evidence did not show must be (the rule of three, 95%)
    confidence: Mapping[str, Any] = field(default_factory=dict)
    #: server plumbing set aside whose content differed between tests and production:
    #: path -> why (see :mod:`pytest_runtime.compare.plumbing`)
    plumbing: Mapping[str, str] = field(default_factory=dict)

    @property
    def fails(self) -> bool:
        """True when the test should fail: violated, or diverged under strict."""
        return self.verdict == "violated" or (self.strict and self.verdict == "diverged")

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "counts": dict(sorted(self.counts.items())),
            "state_coverage": self.state_coverage,
            "divergences": [d.to_dict() for d in self.divergences],
            "hint": self.hint,
            "strict": self.strict,
            "noise": dict(sorted(self.noise.items())),
            "production": dict(self.production),
            "confidence": dict(self.confidence),
            "plumbing": dict(sorted(self.plumbing.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeVerdict:
        verdict = data.get("verdict")
        if verdict not in VERDICTS:
            raise ValueError(f"verdict: got {verdict!r}, expected one of {', '.join(VERDICTS)}")
        return cls(
            verdict=str(verdict),
            counts={str(k): int(v) for k, v in (data.get("counts") or {}).items()},
            state_coverage=float(data.get("state_coverage", 0.0)),
            divergences=tuple(Divergence.from_dict(d) for d in data.get("divergences") or ()),
            hint=str(data.get("hint", "")),
            strict=bool(data.get("strict", False)),
            noise={str(k): str(v) for k, v in (data.get("noise") or {}).items()},
            production=dict(data.get("production") or {}),
            confidence=dict(data.get("confidence") or {}),
            plumbing={str(k): str(v) for k, v in (data.get("plumbing") or {}).items()},
        )


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """A verdict with the test it belongs to (what the reports and the baseline consume)."""

    nodeid: str
    test_file: str
    test_line: int | None
    location: str
    signature: str
    verdict: ProbeVerdict

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "test_file": self.test_file,
            "test_line": self.test_line,
            "location": self.location,
            "signature": self.signature,
            **self.verdict.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProbeResult:
        line = data.get("test_line")
        return cls(
            nodeid=str(data["nodeid"]),
            test_file=str(data.get("test_file", "")),
            test_line=int(line) if line is not None else None,
            location=str(data.get("location", "")),
            signature=str(data.get("signature", "")),
            verdict=ProbeVerdict.from_dict(data),
        )


# --------------------------------------------------------------------------- one side's hits


@dataclass(slots=True)
class _Side:
    hits: Sequence[Mapping[str, Any]]
    shapes: dict[frozenset[Feature], list[int]] = field(default_factory=dict)
    leaves: dict[str, list[tuple[int, str, Any]]] = field(default_factory=dict)
    exceptions: dict[str, list[int]] = field(default_factory=dict)
    violations: list[int] = field(default_factory=list)
    expect_passed: int = 0
    expect_errors: int = 0
    unchecked: list[int] = field(default_factory=list)
    with_result: list[int] = field(default_factory=list)
    exits: int = 0  #: exception exits left out of the shapes (see _build)


def _build(
    hits: Sequence[Mapping[str, Any]],
    walker: ShapeWalker,
    expect: str | None,
    *,
    split_exits: bool = False,
) -> _Side:
    """Walk every hit once into shapes, leaves, exceptions and expectation results.

    With ``split_exits`` (a ``@return`` probe), a hit with an ``exception`` is an exception
    exit: it has no result and no evaluated expectation, so it joins ``exceptions`` only and
    stays out of the shapes (its missing ``result`` is not a shape divergence).
    """
    side = _Side(hits)
    shapes, leaves_by_path = side.shapes, side.leaves
    for idx, hit in enumerate(hits):
        exc = hit.get("exception")
        if isinstance(exc, Mapping) and exc.get("type"):
            side.exceptions.setdefault(str(exc["type"]), []).append(idx)
            if split_exits:
                side.exits += 1
                continue
        captures = hit.get("captures")
        feats = walker.walk_into(
            captures if isinstance(captures, Mapping) else None, idx, leaves_by_path
        )
        group = shapes.get(feats)
        if group is None:
            shapes[feats] = [idx]
        else:
            group.append(idx)
        result = hit.get("expect")
        if isinstance(result, Mapping) and ("ok" in result or "error" in result):
            ok = result.get("ok")
            if ok is not None:
                side.with_result.append(idx)
            if ok is False:
                side.violations.append(idx)
            elif ok is True:
                side.expect_passed += 1
            else:
                side.expect_errors += 1
                if result.get("error"):
                    # The sensor could not evaluate it on the live objects (a TypeError on a
                    # None, say): the assertion failed, as it fails a test at test time, and
                    # the sensor counts it among its violations.
                    side.violations.append(idx)
        elif expect is not None and isinstance(captures, Mapping):
            side.unchecked.append(idx)
    return side


def _hit_order(side: _Side) -> Any:
    def key(i: int) -> tuple[str, float]:
        hit = side.hits[i]
        ts = hit.get("ts")
        return (str(hit.get("hit_id") or ""), float(ts) if isinstance(ts, int | float) else 0.0)

    return key


def _recheck(side: _Side, expect: str, *, budget: int, sample: int) -> tuple[int, int]:
    """Re-check the expectation on the evidence; return (hits judged here, disagreements).

    Hits without a result (an older sensor, a hand-written file) are judged here, at most
    ``budget`` of them (smallest hit ids first), when every name the expression reads was
    captured. For hits with the sensor's result, a sample of ``sample`` is evaluated again and
    any disagreement is counted (the sensor saw the live objects; a capture may be truncated or
    redacted, so the sensor's result stands). The sensor's sandboxed evaluator is used, never
    ``eval``; hits it cannot judge stay unchecked.
    """
    try:
        from sensor import expressions  # type: ignore[attr-defined,unused-ignore]

        compiled = expressions.compile(expect)
        names = set(compiled.names)
    except Exception:  # no evaluator or an expression it refuses: leave them unchecked
        return 0, 0
    from pytest_runtime.compare.diff import decode_state

    def judge(idx: int) -> bool | None:
        captures = side.hits[idx].get("captures")
        if not isinstance(captures, Mapping) or not names <= set(captures):
            return None
        try:
            return bool(compiled.evaluate(decode_state(captures, None)))
        except Exception:
            return None

    order = _hit_order(side)
    checked = 0
    still: list[int] = []
    for n, idx in enumerate(sorted(side.unchecked, key=order)):
        ok = judge(idx) if n < budget else None
        if ok is None:
            still.append(idx)
            continue
        checked += 1
        if ok:
            side.expect_passed += 1
        else:
            side.violations.append(idx)
    side.violations.sort()
    side.unchecked = sorted(still)
    disagreements = 0
    for idx in heapq.nsmallest(sample, side.with_result, key=order):
        result = side.hits[idx].get("expect")
        reported = result.get("ok") if isinstance(result, Mapping) else None
        local = judge(idx)
        if local is not None and reported is not None and local != reported:
            disagreements += 1
    return checked, disagreements


# --------------------------------------------------------------------------- shape findings


@dataclass(slots=True)
class _TestIndex:
    types: dict[str, set[str]]
    lengths: dict[str, set[str]]
    keytypes: dict[str, set[str]]
    opaque: set[str]
    optional: set[str]  #: paths some test-time state lacked while having the parent
    required_item_keys: dict[str, set[str]]  #: list-item path -> keys every tested item had


def _index(side: _Side, walker: ShapeWalker) -> _TestIndex:
    types: dict[str, set[str]] = {}
    lengths: dict[str, set[str]] = {}
    keytypes: dict[str, set[str]] = {}
    keysets: dict[str, set[str]] = {}
    opaque: set[str] = set()
    per_shape: list[set[str]] = []
    for shape in side.shapes:
        paths: set[str] = set()
        for path, what, value in shape:
            if what == "t":
                types.setdefault(path, set()).add(value)
                paths.add(path)
            elif what == "n":
                lengths.setdefault(path, set()).add(value)
            elif what == "k":
                keytypes.setdefault(path, set()).add(value)
            elif what == "keys":
                keysets.setdefault(path, set()).add(value)
            else:
                opaque.add(path)
        per_shape.append(paths)
    optional = set()
    for path in types:
        parent = walker.parents.get(path)
        if parent is not None and any(parent in s and path not in s for s in per_shape):
            optional.add(path)
    # Keys every tested record inside a list had, per list-item path.
    required = {
        path: set.intersection(*(set(k.split("\x1f")) if k else set() for k in sets))
        for path, sets in keysets.items()
    }
    return _TestIndex(types, lengths, keytypes, opaque, optional, required)


def _bucket_order(bucket: str) -> int:
    return int(bucket.split("-")[0].rstrip("+"))


def _items(bucket: str) -> str:
    """A length class in words: '1 item', '2 to 10 items', 'over 1000 items'."""
    if bucket.endswith("+"):
        return f"over {int(bucket[:-1]) - 1} items"
    low, _, high = bucket.partition("-")
    if high:
        return f"{low} to {high} items"
    return "1 item" if low == "1" else f"{low} items"


def _fmt_types(types: set[str]) -> str:
    return ", ".join(sorted(types))


def _shape_findings(
    shape: frozenset[Feature], idxs: list[int], tix: _TestIndex, walker: ShapeWalker
) -> list[Finding]:
    types: dict[str, set[str]] = {}
    lengths: dict[str, set[str]] = {}
    keytypes: dict[str, set[str]] = {}
    keysets: dict[str, set[str]] = {}
    opaque: set[str] = set()
    for path, what, value in shape:
        if what == "t":
            types.setdefault(path, set()).add(value)
        elif what == "n":
            lengths.setdefault(path, set()).add(value)
        elif what == "k":
            keytypes.setdefault(path, set()).add(value)
        elif what == "keys":
            keysets.setdefault(path, set()).add(value)
        else:
            opaque.add(path)
    unknown = opaque | tix.opaque
    found: list[Finding] = []
    for path in sorted(types):
        if children_of_opaque(path, unknown):
            continue
        prod_types = types[path]
        tested = tix.types.get(path)
        if tested is None:
            if path.endswith(("[]", "{}")):
                continue  # items of a list the tests only had empty: the length class says it
            parent = walker.parents.get(path, parent_of(path))
            if parent is None or (
                parent in tix.types and types.get(parent, set()) <= tix.types[parent]
            ):
                found.append(
                    Finding(
                        "shape",
                        path,
                        "added",
                        "low",
                        f"{path}: field added in production ({_fmt_types(prod_types)}); "
                        "no test-time state had it",
                        idxs,
                    )
                )
            continue
        for tname in sorted(prod_types - tested):
            if tname == "None":
                message = f"{path}: None in production; tests always had {_fmt_types(tested)}"
                key = "none"
            else:
                message = f"{path}: type {tname} in production; tests had {_fmt_types(tested)}"
                key = f"type:{tname}"
            found.append(Finding("shape", path, key, "high", message, idxs))
        if prod_types <= tested and path in lengths and path in tix.lengths:
            had = " or ".join(_items(b) for b in sorted(tix.lengths[path], key=_bucket_order))
            for bucket in sorted(lengths[path] - tix.lengths[path]):
                found.append(
                    Finding(
                        "range",
                        path,
                        f"length:{bucket}",
                        "medium",
                        f"{path}: {_items(bucket)} in production; tests had {had}",
                        idxs,
                    )
                )
    for path in sorted(keytypes):
        for tname in sorted(keytypes[path] - tix.keytypes.get(path, keytypes[path])):
            found.append(
                Finding(
                    "shape",
                    path,
                    f"keytype:{tname}",
                    "high",
                    f"{path}: mapping keys of type {tname} in production; tests had "
                    f"{_fmt_types(tix.keytypes[path])}",
                    idxs,
                )
            )
    for path in sorted(keysets):
        required = tix.required_item_keys.get(path)
        if not required or children_of_opaque(path, unknown):
            continue
        lacking: set[str] = set()
        for keyset in keysets[path]:
            lacking |= required - (set(keyset.split("\x1f")) if keyset else set())
        for key in sorted(lacking):
            sub = key_path(path, key)
            found.append(
                Finding(
                    "shape",
                    sub,
                    "missing",
                    "high",
                    f"{sub}: missing in some production items; every tested item had it "
                    f"({_fmt_types(tix.types.get(sub, set()))})",
                    idxs,
                )
            )
    for path in sorted(tix.types):
        if path in types or path in tix.optional or path.endswith(("[]", "{}")):
            continue
        if children_of_opaque(path, unknown):
            continue
        parent = walker.parents.get(path, parent_of(path))
        if parent is not None:
            parent_types = types.get(parent)
            if not parent_types or not parent_types <= tix.types.get(parent, set()):
                continue  # the parent is absent or changed type: that is the divergence
        found.append(
            Finding(
                "shape",
                path,
                "missing",
                "high",
                f"{path}: missing in production; every test-time state had it "
                f"({_fmt_types(tix.types[path])})",
                idxs,
            )
        )
    return found


# --------------------------------------------------------------------------- helpers


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=repr)


def _pick(hits: Sequence[Mapping[str, Any]], idxs: Sequence[int]) -> int:
    """The representative among ``idxs``: smallest hit id, then time, then content."""

    def key(i: int) -> tuple[str, float]:
        hit = hits[i]
        ts = hit.get("ts")
        return (str(hit.get("hit_id") or ""), float(ts) if isinstance(ts, int | float) else 0.0)

    best = min(key(i) for i in idxs)
    tied = [i for i in idxs if key(i) == best]
    if len(tied) == 1:
        return tied[0]
    return min(tied, key=lambda i: _canonical(hits[i].get("captures")))


def _source_label(source: Any) -> str | None:
    if not isinstance(source, Mapping):
        return None
    for name in ("id", "source_id", "service", "host"):
        if source.get(name):
            return str(source[name])
    return None


def _bounded_state(captures: Any) -> Any:
    text = _canonical(captures)
    if len(text) <= _REPR_STATE_MAX:
        return captures
    return {"@t": "report.truncated", "@len": len(text), "v": text[:_REPR_STATE_MAX]}


_KIND_ORDER = {k: i for i, k in enumerate(KINDS)}
_SEVERITY_ORDER = {s: i for i, s in enumerate(SEVERITIES)}


def _order(d: Divergence) -> tuple[int, int, str, str]:
    return (_SEVERITY_ORDER[d.severity], _KIND_ORDER[d.kind], d.path, d.key)


def _share(kind: str, count: int, n_prod: int, figures: Mapping[str, Any] | None) -> float:
    """A divergence's share: of the calls the sensors evaluated, for a violation with
    counters (captured hits over-sample violations); otherwise of the captured hits."""
    if kind == "violation" and figures and figures.get("of"):
        return _round(float(figures["count"]) / float(figures["of"]))
    return _round(count / n_prod) if n_prod else 0.0


def _round(x: float) -> float:
    return round(x, 6) if math.isfinite(x) else 0.0


# --------------------------------------------------------------------------- compare


def compare(
    test_hits: Sequence[Mapping[str, Any]],
    prod_hits: Sequence[Mapping[str, Any]],
    *,
    probe: Any = None,
    settings: CompareSettings | None = None,
    statuses: Sequence[Mapping[str, Any]] | None = None,
) -> ProbeVerdict:
    """Compare production hits (evidence) with test-time hits of the same probe.

    Both are Hit dicts (``captures`` in the typed JSON encoding). ``probe`` (a
    :class:`sensor.probes.Probe`) gives the expectation and the location for messages.
    ``statuses`` are the sensors' status records of the probe (see
    :func:`pytest_runtime.compare.counters.status_record`): the rates come from their
    counters. The result does not depend on the order of the hits.
    """
    # Walking evidence allocates many small tuples that all stay alive until the end: the
    # cyclic GC would rescan them again and again (it doubled the time in bench_compare.py).
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _compare(
            test_hits, prod_hits, probe, settings or CompareSettings(), list(statuses or ())
        )
    finally:
        if gc_was_enabled:
            gc.enable()


def _point(probe: Any, location: str) -> str | None:
    """The probe's point (``return``, ``entry``, ``exception``, ``line``), None if unknown."""
    loc = getattr(probe, "location", None)
    point = getattr(loc, "point", None)
    if point is not None:
        return str(getattr(point, "value", point))
    if not location:
        return None
    tail = location.rpartition("@")[2] if "@" in location else "return"
    return tail if tail in ("entry", "return", "exception") else "line"


def _declared(etype: str, raises: Sequence[str]) -> bool:
    """True when ``etype`` is one of the declared types, or a subclass of one.

    Names compare as the sensor writes them (``ValueError``, ``decimal.InvalidOperation``;
    ``builtins.ValueError`` reads as ``ValueError``). A subclass is recognized when both
    classes are already imported in this process (nothing is imported for it).
    """
    import sys

    def norm(name: str) -> str:
        return name[len("builtins.") :] if name.startswith("builtins.") else name

    wanted = {norm(n) for n in raises}
    if norm(etype) in wanted:
        return True

    def resolve(name: str) -> Any:
        module, _, qual = name.rpartition(".")
        obj: Any = sys.modules.get(module or "builtins")
        while obj is not None and "." in qual:
            head, _, qual = qual.partition(".")
            obj = getattr(obj, head, None)
        cls = getattr(obj, qual, None) if obj is not None else None
        return cls if isinstance(cls, type) and issubclass(cls, BaseException) else None

    found = resolve(norm(etype))
    if found is None:
        return False
    return any((base := resolve(n)) is not None and issubclass(found, base) for n in wanted)


def _thousands(n: int) -> str:
    return f"{n:,}"


def _violation_text(expect: str | None, production: Production, captured: int) -> str:
    what = f"expectation {expect!r}" if expect else "the expectation"
    caught = f"{_thousands(captured)} violating hit{'s' if captured != 1 else ''} captured"
    if production.origin == "counters" and production.evaluations > 0:
        share = production.violations / production.evaluations
        split = ""
        errors = production.expect_errors
        if errors:
            # Counted by the sensors, exact: false, or no truth value at all. Said only when
            # some evaluation failed (0 is in the report's production.expect_errors).
            split = (
                f": {_thousands(production.violations - errors)} false, "
                f"{_thousands(errors)} evaluation error{'s' if errors != 1 else ''}"
            )
        text = (
            f"{what} failed on {_thousands(production.violations)} of "
            f"{_thousands(production.evaluations)} evaluations ({share:.1%}{split}) on "
            f"{production.sources} source{'s' if production.sources != 1 else ''}"
            f"{production.span_text()}; {caught}"
        )
        if production.sampled:
            cause = sampling_cause(production.sampled_by, production.skipped_budget)
            text += f"; evaluations are a sample of the calls ({cause})"
        if production.uncounted_violations:
            # Only what could change these figures: violating hits the counters left out.
            text += f" (a lower bound: {'; '.join(production.lower_bound)})"
        return text
    evaluated = max(production.evaluations, captured)
    share = captured / evaluated if evaluated else 0.0
    return (
        f"{what} failed on at least {_thousands(captured)} production call"
        f"{'s' if captured != 1 else ''}: {_thousands(captured)} of {_thousands(evaluated)} "
        f"captured hits ({share:.1%} of captured hits; the evidence has no sensor counters, "
        "and violations are captured more often than passing calls, so the production rate "
        "is lower)"
    )


def _exception_text(
    etype: str, where: str, captured: int, production: Production, types: int
) -> tuple[str, dict[str, Any] | None]:
    """The message of an exception divergence and its counted figures (None: captured only)."""
    plural = "s" if captured != 1 else ""
    if production.origin == "counters" and production.exceptions is not None and types == 1:
        n = max(production.exceptions, captured)
        # Exits captured after (or outside) the counters are added to their count: more
        # may have happened there uncaptured, so the count is then a lower bound.
        least = "at least " if production.uncounted_exceptions else ""
        text = (
            f"{etype} raised in production{where} on {least}{_thousands(n)} "
            f"call{'s' if n != 1 else ''}"
            f" counted by the sensors on {production.sources} source"
            f"{'s' if production.sources != 1 else ''}{production.span_text()} "
            f"({_thousands(captured)} captured); no test raised it"
        )
        return text, {
            "count": n,
            "of": None,
            "over": "exception exits",
            "lower_bound": bool(production.uncounted_exceptions),
        }
    if production.origin == "counters" and production.exceptions is not None:
        text = (
            f"{etype} raised in production{where} on at least {_thousands(captured)} call"
            f"{plural} ({_thousands(captured)} captured; the sensors counted "
            f"{_thousands(production.exceptions)} exception exits of {types} types); "
            "no test raised it"
        )
    else:
        text = (
            f"{etype} raised in production{where} on at least {_thousands(captured)} call"
            f"{plural} (captured hits; no exception counters in the evidence); "
            "no test raised it"
        )
    return text, None


def _compare(
    test_hits: Sequence[Mapping[str, Any]],
    prod_hits: Sequence[Mapping[str, Any]],
    probe: Any,
    settings: CompareSettings,
    statuses: list[Mapping[str, Any]],
) -> ProbeVerdict:
    expect: str | None = getattr(probe, "expect", None)
    location = str(getattr(probe, "location", "") or "")
    # At a return (or a line), an exception leaving the function is an exit of its own: it
    # has no result, so it is compared by its type, not by its shape.
    split_exits = _point(probe, location) == "return"
    walker = ShapeWalker(settings.patterns)
    prod = _build(prod_hits, walker, expect, split_exits=split_exits)
    test = _build(test_hits, walker, expect, split_exits=split_exits)
    # Server plumbing (the test client's streams and keys against the server's) is set aside
    # before anything is compared; what differed there is listed, never dropped silently.
    plumbing = (
        find_plumbing([*prod.shapes, *test.shapes], walker.parents)
        if settings.plumbing
        else Plumbing()
    )
    plumbing_differed: dict[str, str] = {}
    findings: list[Finding] = []
    if plumbing:
        plumbing_differed = plumbing.differed(prod.shapes, test.shapes)
        for path, tname, idxs in plumbing.odd_types(prod.shapes, test.shapes):
            had = _fmt_types({v for s in test.shapes for p, w, v in s if p == path and w == "t"})
            if tname == "None":
                key, text = "none", f"{path}: None in production; tests always had {had}"
            else:
                key, text = f"type:{tname}", f"{path}: type {tname} in production; tests had {had}"
            findings.append(Finding("shape", path, key, "high", text, idxs))
        prod.shapes = plumbing.rewrite(prod.shapes, prod.leaves)
        test.shapes = plumbing.rewrite(test.shapes, test.leaves)
    rechecked, disagreements = (
        _recheck(prod, expect, budget=settings.max_rechecks, sample=settings.recheck_sample)
        if expect is not None and (prod.unchecked or prod.with_result)
        else (0, 0)
    )
    n_prod = len(prod_hits)
    production = summarize(statuses, prod_hits, has_expect=expect is not None)
    counted: dict[tuple[str, str, str], dict[str, Any]] = {}

    # Violations: a context-deficient bug; no threshold, one violating hit is evidence.
    # The counters may see violations that no captured hit shows (all over the capture rate):
    # the verdict is still violated, with no state to show.
    if prod.violations or (production.origin == "counters" and production.violations):
        findings.append(
            Finding(
                "violation",
                "expect",
                "violation",
                "high",
                _violation_text(expect, production, len(prod.violations)),
                prod.violations,
            )
        )
        if production.origin == "counters":
            counted[("violation", "expect", "violation")] = {
                "count": max(production.violations, len(prod.violations)),
                "of": max(production.evaluations, len(prod.violations)),
                "over": "evaluations",
                "lower_bound": bool(production.uncounted_violations),
            }
    where = f" at {location}" if location else ""
    undeclared = [
        etype
        for etype in sorted(set(prod.exceptions) - set(test.exceptions))
        if not _declared(etype, settings.raises)
    ]
    for etype in undeclared:
        text, figures = _exception_text(
            etype, where, len(prod.exceptions[etype]), production, len(prod.exceptions)
        )
        findings.append(
            Finding(
                "exception", "exception", f"exception:{etype}", "high", text, prod.exceptions[etype]
            )
        )
        if figures is not None:
            counted[("exception", "exception", f"exception:{etype}")] = figures

    # Noise: ids and timestamps compare by type only (the shape still holds their type).
    prod_types: dict[str, set[str]] = {}
    for shape in prod.shapes:
        for path, what, value in shape:
            if what == "t":
                prod_types.setdefault(path, set()).add(value)
    noise = detect_noise(
        prod.leaves, test.leaves, unique_share=settings.unique_share, prod_types=prod_types
    )
    unseen = [s for s in prod.shapes if s not in test.shapes]
    if not test_hits and prod_hits:
        # Production reached a location the tests never did: a path divergence (the whole
        # state is new), not a shape one. The key stays "no-test-states" and the path "" so
        # that baseline fingerprints do not depend on the hit count in the message.
        findings.append(
            Finding(
                "path",
                "",
                NO_TEST_STATES,
                "high",
                f"the tests never reached {location or 'this location'}; production did "
                f"{n_prod} time{'s' if n_prod != 1 else ''}",
                list(range(n_prod)),
            )
        )
    elif test_hits and not test.shapes and prod.shapes:
        # Every test call left the function with an exception: no returned state to compare.
        returned = [i for members in prod.shapes.values() for i in members]
        findings.append(
            Finding(
                "path",
                "",
                NO_TEST_STATES,
                "high",
                f"every test call left {location or 'this location'} with an exception; "
                f"production returned normally {len(returned)} "
                f"time{'s' if len(returned) != 1 else ''}",
                sorted(returned),
            )
        )
    elif test_hits:
        tix = _index(test, walker)
        for shape in unseen:
            findings.extend(_shape_findings(shape, prod.shapes[shape], tix, walker))
        for path in sorted(prod.leaves):
            test_leaves = test.leaves.get(path)
            if not test_leaves:
                continue  # a path the tests never had: the shape comparison reports it
            tv = collect(test_leaves, max_categories=settings.max_categories)
            findings.extend(
                value_findings(
                    path,
                    prod.leaves[path],
                    tv,
                    types=prod_types.get(path),
                    max_categories=settings.max_categories,
                    range_factor=settings.range_factor,
                    max_distinct=settings.category_max_distinct,
                    min_repeat=settings.category_min_repeat,
                    category_error=settings.category_error,
                    noise=noise.get(path) or plumbing.typed.get(path),
                    strict=settings.strict,
                )
            )

    # Aggregate by (kind, path, key) across shapes, then apply the thresholds.
    merged: dict[tuple[str, str, str], Finding] = {}
    for f in findings:
        k = (f.kind, f.path, f.key)
        if k in merged:
            merged[k].hits.extend(f.hits)
            # Several shapes may word it differently: keep one, independent of hit order.
            merged[k].message = min(merged[k].message, f.message)
        else:
            merged[k] = Finding(f.kind, f.path, f.key, f.severity, f.message, list(f.hits))
    reported: list[tuple[Finding, list[int]]] = []
    suppressed = 0
    for k in sorted(merged):
        f = merged[k]
        idxs = sorted(set(f.hits))
        if f.kind == "violation" or passes_threshold(
            len(idxs), n_prod, min_count=settings.min_count, min_share=settings.min_share
        ):
            reported.append((f, idxs))
        else:
            suppressed += 1

    # Evidence for each divergence: ids, sources, a representative, deepdiff lines.
    test_shapes = sorted(test.shapes, key=lambda s: sorted(s))
    test_reps = {s: _pick(test.hits, test.shapes[s]) for s in test_shapes}
    noise_paths = set(noise)

    def normalize(path: str) -> bool | str:
        if plumbing:
            label = plumbing.normalized(path)
            if label:
                return label
        return path in noise_paths or walker.is_normalized(path)

    divergences: list[Divergence] = []
    diff_cache: dict[tuple[int, int], Any] = {}
    not_diffed = 0
    prod_shape_of: dict[int, frozenset[Feature]] = {}
    for f, idxs in reported:
        rep = _pick(prod.hits, idxs) if idxs else None
        rep_hit = prod.hits[rep] if rep is not None else {}
        lines: list[str] = []
        if f.kind == "exception":
            exc = rep_hit.get("exception") or {}
            message = exc.get("message") if isinstance(exc, Mapping) else None
            if isinstance(message, Mapping):
                message = message.get("v")
            lines = [f"exception {f.key.split(':', 1)[1]}: {str(message or '')[:200]}"]
        elif rep is not None and test_shapes and f.key != NO_TEST_STATES:
            if not prod_shape_of:
                for s, members in prod.shapes.items():
                    for i in members:
                        prod_shape_of[i] = s
            found = _diff_for(
                f,
                rep,
                prod,
                prod_shape_of[rep],
                test_shapes,
                test_reps,
                test,
                normalize,
                settings,
                diff_cache,
                plumbing,
            )
            if found is None:
                not_diffed += 1
            else:
                lines = found
        hit_ids = sorted({str(prod.hits[i].get("hit_id") or "") for i in idxs} - {""})
        sources = sorted(
            {label for i in idxs if (label := _source_label(prod.hits[i].get("source")))}
        )
        divergences.append(
            Divergence(
                kind=f.kind,
                severity=f.severity,
                path=f.path,
                key=f.key,
                message=f.message,
                deepdiff=tuple(lines),
                count=len(idxs),
                share=_share(f.kind, len(idxs), n_prod, counted.get((f.kind, f.path, f.key))),
                hit_ids=tuple(hit_ids[: settings.max_hit_ids]),
                sources=tuple(sources[: settings.max_sources]),
                representative=_bounded_state(rep_hit.get("captures")) if rep_hit else None,
                representative_hit=str(rep_hit.get("hit_id") or "") or None,
                counted=counted.get((f.kind, f.path, f.key)),
            )
        )
    divergences.sort(key=_order)
    cut = max(0, len(divergences) - settings.max_divergences)
    divergences = divergences[: settings.max_divergences]

    covered = [s for s in prod.shapes if s in test.shapes]
    coverage = len(covered) / len(prod.shapes) if prod.shapes else 0.0
    counts = {
        "prod_hits": n_prod,
        "test_hits": len(test_hits),
        "prod_shapes": len(prod.shapes),
        "test_shapes": len(test.shapes),
        "covered_shapes": len(covered),
        "covered_hits": sum(len(prod.shapes[s]) for s in covered),
        "violations": len(prod.violations),
        "expect_passed": prod.expect_passed,
        "expect_errors": prod.expect_errors,
        "expect_unchecked": len(prod.unchecked),
        "expect_rechecked": rechecked,
        "expect_disagreements": disagreements,
        "prod_exceptions": sum(len(v) for v in prod.exceptions.values()),
        "prod_exception_exits": prod.exits,
        "test_exceptions": sum(len(v) for v in test.exceptions.values()),
        "noise_paths": len(noise),
        "plumbing_paths": len(plumbing.aside) + len(plumbing.kinds) + len(plumbing.typed),
        "plumbing_differed": len(plumbing_differed),
        "divergences": len(divergences),
        "divergences_cut": cut,
        "below_threshold": suppressed,
        "not_diffed": not_diffed,
    }
    if any(d.kind == "violation" for d in divergences):
        verdict = "violated"
    elif n_prod < settings.min_hits:
        verdict = "inconclusive"
    elif divergences:
        verdict = "diverged"
    else:
        verdict = "ok"
    confidence = _confidence(verdict, expect, production, n_prod, settings)
    hint = _hint(verdict, divergences, location, n_prod, settings, production)
    return ProbeVerdict(
        verdict=verdict,
        counts=counts,
        state_coverage=_round(coverage),
        divergences=tuple(divergences),
        hint=hint,
        strict=settings.strict,
        noise=dict(sorted(noise.items())[:_MAX_NOISE_SHOWN]),
        production=production.to_dict(),
        confidence=confidence,
        plumbing=dict(sorted(plumbing_differed.items())[:_MAX_NOISE_SHOWN]),
    )


def _confidence(
    verdict: str,
    expect: str | None,
    production: Production,
    n_prod: int,
    settings: CompareSettings,
) -> dict[str, Any]:
    """How rare what the evidence did not show must be: the rule of three, exact, at 95%.

    ``states``: any state none of the ``n`` captured hits showed is rarer than ``below`` (of
    calls, the hits being a sample of them). ``violations``, for a probe with ``expect`` and
    no violation: over the sensors' evaluations (or the captured hits without counters).
    ``asked``/``reached``: the bound the run asked for (``--runtime-rarer-than``).
    """
    states_below = _round(unseen_bound(n_prod))
    states = {"n": n_prod, "over": "captured hits", "below": states_below}
    violations = None
    violations_below = 0.0
    if expect is not None and verdict != "violated":
        n = production.evaluations
        over = "evaluations" if production.origin == "counters" and n else "captured hits"
        violations_below = _round(unseen_bound(n))
        violations = {"n": n, "over": over, "below": violations_below}
    asked = settings.rarer_than
    reached = None
    if asked is not None:
        reached = states_below <= asked and violations_below <= asked
    return {
        "level": CONFIDENCE,
        "states": states,
        "violations": violations,
        "asked": asked,
        "reached": reached,
        "needed": hits_needed(asked) if asked is not None else None,
    }


def _distance(a: frozenset[Feature], b: frozenset[Feature]) -> int:
    return len(a ^ b)


def _diff_for(
    f: Finding,
    rep: int,
    prod: _Side,
    shape: frozenset[Feature],
    test_shapes: list[frozenset[Feature]],
    test_reps: Mapping[frozenset[Feature], int],
    test: _Side,
    normalize: Any,
    settings: CompareSettings,
    cache: dict[tuple[int, int], Any],
    plumbing: Plumbing,
) -> list[str] | None:
    """deepdiff lines for one divergence, or None when the diff budget is spent.

    Divergences that share a representative pair share one deepdiff run (``cache``).
    """
    from pytest_runtime.compare.diff import decode_state, diff_entries, select_lines

    # The nearest test-time state: fewest differing features; ties by the sorted shape order.
    nearest = min(test_shapes, key=lambda s: _distance(shape, s))
    pair = (rep, test_reps[nearest])
    entries = cache.get(pair)
    if entries is None:
        if len(cache) >= settings.max_diffed:
            return None
        entries = cache[pair] = [
            e
            for e in diff_entries(
                decode_state(test.hits[pair[1]].get("captures"), normalize),
                decode_state(prod.hits[rep].get("captures"), normalize),
            )
            if not (plumbing and plumbing.hides(e[0]))
        ]
    return select_lines(
        entries,
        focus=f.path if f.kind != "violation" else "",
        structural_only=f.kind == "shape",
        max_lines=settings.max_diff_lines,
    )


def _hint(
    verdict: str,
    divergences: Sequence[Divergence],
    location: str,
    n_prod: int,
    settings: CompareSettings,
    production: Production,
) -> str:
    if verdict == "inconclusive":
        text = f"only {n_prod} production hit(s), {settings.min_hits} needed"
        if not production.collecting:
            return f"{text}; the probe cannot collect more: {production.states}"
        if production.origin == "counters" and production.calls == 0 and n_prod:
            # Hits prove that calls reach it; the counters (a heartbeat from before the
            # traffic) have not caught up: "no call reached it" would send the user hunting.
            return (
                f"{text}; calls reach {location or 'the location'}, but the {n_prod} hit(s) "
                f"came after the last counters of the {production.reporting} source(s) that "
                "report them (sent with each heartbeat): run the check again once more hits "
                "have come, or wait longer (--runtime-wait)"
            )
        if production.origin == "counters" and production.calls == 0:
            return (
                f"{text}; no call reached {location or 'the location'}{production.span_text()} "
                f"on the {production.reporting} source(s) that report counters: send traffic "
                "that reaches it, or wait longer (--runtime-wait)"
            )
        return f"{text}: wait longer (--runtime-wait) or lower the minimum (--runtime-min-hits)"
    if not divergences:
        return ""
    top = divergences[0]
    from pytest_runtime.compare.diff import decode_state, short_repr

    state = decode_state(
        top.representative if isinstance(top.representative, Mapping) else None, None
    )
    args = ", ".join(f"{k}={short_repr(v, 60)}" for k, v in sorted(state.items()))
    if len(args) > 300:
        args = args[:297] + "..."
    where = location or "the probed function"
    hit = f" (production hit {top.representative_hit})" if top.representative_hit else ""
    if top.representative_hit is None and top.kind == "violation":
        return (
            f"no violating state was captured (the sensors counted them over the capture "
            f"rate): raise the probe's rate (rate=) to capture one at {where}"
        )
    text = f"reproduce: call {where} with the state {args or '{}'}{hit}"
    if top.kind == "exception":
        etype = top.key.split(":", 1)[1]
        said = top.deepdiff[0].split(": ", 1)[1] if top.deepdiff else ""
        text += (
            f"; production raised {etype}: {said!r}. If the tests expect it, raise it in a "
            f"test (pytest.raises) or declare raises=[{etype!r}] on the marker"
        )
    return text
