"""Production counts from the sensors' own counters, and how sure a verdict can be.

Captured hits are a sample: a sensor captures passing hits at the probe's rate (1/s for a
snapshot) and violations at up to 10/s, so a share of captured hits overstates how often a
function breaks (a function broken on 23% of calls showed 76.7% of its captured hits
violating). Each sensor also *counts* every firing of each probe (``ProbeStatus``:
evaluations, violations, exception exits, hits, drops, skips), exactly and before any
sampling, and sends the counts to the hub with its heartbeats. The rates in a verdict come
from those counters, summed over the sources, and say when a count is only a lower bound:
when violating hits or exception exits were captured that the counters do not cover (sent
after a source's last counters, or by a source that sends none). Anything else the counters
leave out (passing calls after the last heartbeat, dropped hits, calls not evaluated) cannot
make a printed count low, and is a note.

The confidence bound is the rule of three, exact: after ``n`` independent observations that
all missed something, that thing happens with probability below ``1 - 0.05 ** (1 / n)`` at
95% confidence (about ``3 / n`` for large ``n``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CONFIDENCE",
    "COUNTERS",
    "Production",
    "collection_state",
    "covers",
    "firings",
    "hits_needed",
    "sampling_cause",
    "status_record",
    "summarize",
    "unseen_bound",
]

#: The confidence level of every bound the plugin prints.
CONFIDENCE = 0.95
#: The counters of a sensor's ``ProbeStatus`` (``exceptions``, ``skipped_budget`` and the ones
#: after ``exceptions`` come from newer sensors: an older one simply does not send them).
COUNTERS = (
    "hits",
    "drops",
    "skipped_rate",
    "skipped_condition",
    "skipped_budget",
    "errors",
    "evaluations",
    "violations",
    "exceptions",
    "expect_errors",
    "skipped_closed",
    "novel_classes",
    "novel_admitted",
    "novel_refused",
    "novel_full",
)
#: Counters that are a part of another (``violations`` of ``evaluations``, ``expect_errors`` of
#: ``violations``, ``skipped_closed`` of the skips) or count no firing (the rare-state sampling's
#: classes): left out when the firings are summed.
_NOT_FIRINGS = frozenset(
    {
        "violations",
        "expect_errors",
        "skipped_closed",
        "novel_classes",
        "novel_admitted",
        "novel_refused",
        "novel_full",
    }
)
_STATES_THAT_CANNOT_COLLECT = frozenset({"error", "disabled", "removed"})


def unseen_bound(n: int, confidence: float = CONFIDENCE) -> float:
    """The rate below which something unseen in ``n`` observations lies, at ``confidence``.

    ``1 - (1 - confidence) ** (1 / n)``: with 0 of ``n`` seen, a rate above it would have shown
    at least once with probability ``confidence``. 1.0 when ``n`` is 0 (nothing is known).
    """
    if n <= 0:
        return 1.0
    return 1.0 - float((1.0 - confidence) ** (1.0 / n))


def hits_needed(bound: float, confidence: float = CONFIDENCE) -> int:
    """The fewest observations ``n`` with ``unseen_bound(n) <= bound``."""
    if not 0.0 < bound < 1.0:
        raise ValueError(f"bound: got {bound!r}, expected a rate between 0 and 1 (exclusive)")
    n = max(1, math.ceil(math.log(1.0 - confidence) / math.log(1.0 - bound)))
    while unseen_bound(n, confidence) > bound:  # float rounding at the edge
        n += 1
    while n > 1 and unseen_bound(n - 1, confidence) <= bound:
        n -= 1
    return n


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def firings(status: Mapping[str, Any]) -> int:
    """Every firing a status counted (evaluated, captured, skipped or failed): calls reached."""
    return sum(_int(status.get(name)) for name in COUNTERS if name not in _NOT_FIRINGS)


def covers(counters: Mapping[str, Any], captured: int) -> bool:
    """True when a source's counters account for the ``captured`` hits it sent.

    Every hit a source produced is counted (``hits``) or was lost and counted (``drops``)
    before the heartbeat that carries the counters; more captured hits than that means some
    were sent after those counters.
    """
    return captured <= _int(counters.get("hits")) + _int(counters.get("drops"))


def status_record(
    *,
    signature: str,
    probe_id: str,
    source_id: str,
    status: Mapping[str, Any],
    placed_at: float | None,
    reported_at: float,
) -> dict[str, Any]:
    """One probe's status on one source, as an evidence ``status`` record holds it.

    ``placed_at`` is when the probe was placed (its counters count from then), and
    ``reported_at`` when the plugin read the status from the hub.
    """
    counters = {name: _int(status.get(name)) for name in COUNTERS if name in status}
    record: dict[str, Any] = {
        "signature": signature,
        "probe_id": probe_id,
        "source_id": source_id,
        "state": str(status.get("state") or "pending"),
        "counters": counters,
        "placed_at": placed_at,
        "reported_at": reported_at,
    }
    reason = status.get("reason")
    if reason:
        record["reason"] = str(reason)
    return record


def collection_state(
    statuses: Iterable[Mapping[str, Any]], waiting_sources: int = 0
) -> tuple[bool, str]:
    """``(True, "")`` while some source may still produce hits, else ``(False, why)``.

    ``statuses`` are status records (or hub status dicts) with ``state`` and ``reason``.
    A source that imported the module and then disabled the probe (CPU budget, max hits,
    expiry) or failed to place it cannot collect. A source pending on an import can, unless
    another source already imported the module: then it is a process that never imports it
    (a pre-fork server's master). ``waiting_sources`` counts live sources that have not
    reported a status yet (they may still install the probe).
    """
    items = [(str(s.get("state") or "pending"), str(s.get("reason") or "")) for s in statuses]
    if not items or waiting_sources:
        return True, ""
    imported = any(state in ("installed", "disabled") for state, _ in items)
    for state, _ in items:
        if state == "installed" or (state == "pending" and not imported):
            return True, ""
    return False, describe_states(items)


def describe_states(items: Sequence[tuple[str, str]]) -> str:
    """``disabled on 2 of 3 source(s): <reason>; pending on 1 of 3 ...``, grouped by reason."""
    groups: dict[tuple[str, str], int] = {}
    for state, reason in items:
        key = (state, reason or "no reason given")
        groups[key] = groups.get(key, 0) + 1
    parts = []
    for (state, reason), count in sorted(groups.items()):
        part = f"{state} on {count} of {len(items)} source(s): {reason}"
        if state == "pending" and reason.startswith("waiting for module"):
            part += " (a process that never imports it, such as a pre-fork server's master)"
        parts.append(part)
    return "; ".join(parts)


@dataclass(slots=True)
class _Captured:
    hits: int = 0
    evaluated: int = 0
    violations: int = 0
    exceptions: int = 0
    #: (ts, hit id, violating, exception) per hit, to tell the hits after a status apart
    order: list[tuple[float, str, bool, bool]] = field(default_factory=list)

    def after(self, produced: int) -> tuple[int, int]:
        """(violating, exception) hits among those after the first ``produced`` (by time)."""
        late = sorted(self.order)[produced:]
        return sum(1 for x in late if x[2]), sum(1 for x in late if x[3])


@dataclass(slots=True)
class _Uncounted:
    """Captured hits the counters do not cover, and the sources that sent them."""

    hits: int = 0
    violations: int = 0
    exceptions: int = 0
    sources: list[str] = field(default_factory=list)

    def add(self, source: str, hits: int, violations: int, exceptions: int) -> None:
        self.hits += hits
        self.violations += violations
        self.exceptions += exceptions
        if source not in self.sources:
            self.sources.append(source)

    def what(self) -> str:
        """``3 violating hits and 1 exception exit``: what is uncounted that counts."""
        parts = []
        if self.violations:
            parts.append(f"{self.violations:,} violating hit{'s' if self.violations != 1 else ''}")
        if self.exceptions:
            parts.append(f"{self.exceptions:,} exception exit{'s' if self.exceptions != 1 else ''}")
        return " and ".join(parts)

    def sources_text(self) -> str:
        """``2 sources (a, b)``: at most 3 ids, sorted."""
        names = sorted(self.sources)
        shown = ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")
        return f"{len(names)} source{'s' if len(names) != 1 else ''} ({shown})"


@dataclass(frozen=True, slots=True)
class Production:
    """What production did at a probe: counted by the sensors, or only seen in captured hits.

    ``origin`` is ``counters`` when some source sent its counters, ``captured`` when the
    evidence has none (an old evidence file, a hand-written one): then every count is a
    lower bound and no rate is exact. ``lower_bound`` lists why the counts may be low.
    """

    origin: str  #: counters | captured
    evaluations: int = 0
    violations: int = 0
    exceptions: int | None = None  #: None: the sensors do not count exception exits
    calls: int = 0  #: firings counted (every call that reached the location)
    drops: int = 0
    skipped_budget: int = 0
    #: of ``violations``, the evaluations that gave no truth value (refused, raised, not a
    #: bool); None when some source's sensor does not count them (the split is then unknown)
    expect_errors: int | None = None
    #: of the skipped firings, those skipped by a closed gate (no work at all)
    skipped_closed: int = 0
    #: rare-state sampling, summed over the sources: value classes remembered, new classes
    #: captured, refused by its rate limit, and left out because the classes table was full
    novel_classes: int = 0
    novel_admitted: int = 0
    novel_refused: int = 0
    novel_full: int = 0
    sources: int = 0  #: sources whose counters show calls
    reporting: int = 0  #: sources that sent counters (a status), calls or not
    placements: int = 0  #: probes (placements) whose counters are summed
    span: float | None = None  #: seconds from the first placement to the last report
    captured_hits: int = 0
    captured_violations: int = 0
    captured_exceptions: int = 0
    #: captured violating hits the counters do not cover (sent after a source's last counters,
    #: or by a placement or source with no counters)
    uncounted_violations: int = 0
    #: captured exception exits the counters do not cover (added to ``exceptions``)
    uncounted_exceptions: int = 0
    sampled: bool = False  #: some firings were not evaluated (rate limit, CPU budget)
    #: what left calls unevaluated: ``eval_rate`` (the evaluation rate limit), ``cpu_budget``
    sampled_by: tuple[str, ...] = ()
    #: why a printed count may be low: only what the counters leave out and could change it
    #: (violating hits, exception exits); empty: every count is exact over its span
    lower_bound: tuple[str, ...] = ()
    collecting: bool = True  #: False when no source can produce more hits
    states: str = ""  #: the sources' states and reasons when some cannot collect
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def violation_share(self) -> float | None:
        if self.origin != "counters" or self.evaluations <= 0:
            return None
        return self.violations / self.evaluations

    def to_dict(self) -> dict[str, Any]:
        share = self.violation_share
        return {
            "origin": self.origin,
            "evaluations": self.evaluations,
            "violations": self.violations,
            "violation_share": round(share, 6) if share is not None else None,
            "exceptions": self.exceptions,
            "calls": self.calls,
            "drops": self.drops,
            "skipped_budget": self.skipped_budget,
            "expect_errors": self.expect_errors,
            "skipped_closed": self.skipped_closed,
            "novel_classes": self.novel_classes,
            "novel_admitted": self.novel_admitted,
            "novel_refused": self.novel_refused,
            "novel_full": self.novel_full,
            "sources": self.sources,
            "reporting": self.reporting,
            "placements": self.placements,
            "span_seconds": round(self.span, 3) if self.span is not None else None,
            "captured_hits": self.captured_hits,
            "captured_violations": self.captured_violations,
            "captured_exceptions": self.captured_exceptions,
            "uncounted_violations": self.uncounted_violations,
            "uncounted_exceptions": self.uncounted_exceptions,
            "sampled": self.sampled,
            "sampled_by": list(self.sampled_by),
            "lower_bound": list(self.lower_bound),
            "notes": list(self.notes),
            "collecting": self.collecting,
            "states": self.states,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Production:
        span = data.get("span_seconds")
        exceptions = data.get("exceptions")
        return cls(
            origin=str(data.get("origin", "captured")),
            evaluations=int(data.get("evaluations", 0)),
            violations=int(data.get("violations", 0)),
            exceptions=int(exceptions) if exceptions is not None else None,
            calls=int(data.get("calls", 0)),
            drops=int(data.get("drops", 0)),
            skipped_budget=int(data.get("skipped_budget", 0)),
            expect_errors=(
                int(data["expect_errors"]) if data.get("expect_errors") is not None else None
            ),
            skipped_closed=int(data.get("skipped_closed", 0)),
            novel_classes=int(data.get("novel_classes", 0)),
            novel_admitted=int(data.get("novel_admitted", 0)),
            novel_refused=int(data.get("novel_refused", 0)),
            novel_full=int(data.get("novel_full", 0)),
            sources=int(data.get("sources", 0)),
            reporting=int(data.get("reporting", 0)),
            placements=int(data.get("placements", 0)),
            span=float(span) if span is not None else None,
            captured_hits=int(data.get("captured_hits", 0)),
            captured_violations=int(data.get("captured_violations", 0)),
            captured_exceptions=int(data.get("captured_exceptions", 0)),
            uncounted_violations=int(data.get("uncounted_violations", 0)),
            uncounted_exceptions=int(data.get("uncounted_exceptions", 0)),
            sampled=bool(data.get("sampled", False)),
            sampled_by=tuple(str(x) for x in data.get("sampled_by") or ()),
            lower_bound=tuple(str(x) for x in data.get("lower_bound") or ()),
            notes=tuple(str(x) for x in data.get("notes") or ()),
            collecting=bool(data.get("collecting", True)),
            states=str(data.get("states", "")),
        )

    def span_text(self) -> str:
        """`` in the 35s since placement`` or `` across 3 placements over 2h 5m``."""
        if self.span is None:
            return ""
        if self.placements <= 1:
            return f" in the {duration(self.span)} since placement"
        return f" across {self.placements} placements over {duration(self.span)}"


def sampling_cause(sampled_by: Iterable[str], skipped_budget: int) -> str:
    """``the evaluation rate limit`` and/or ``the CPU budget (N calls shed)``."""
    causes = set(sampled_by)
    parts = []
    if "eval_rate" in causes:
        parts.append("the evaluation rate limit")
    if "cpu_budget" in causes:
        parts.append(f"the CPU budget ({skipped_budget:,} calls shed)")
    return " and ".join(parts) or "the evaluation rate limit or the CPU budget"


def duration(seconds: float) -> str:
    """``35s``, ``4m 10s``, ``2h 5m``, ``3d 4h``."""
    s = max(0, round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60}m" if s % 3600 // 60 else f"{s // 3600}h"
    return f"{s // 86400}d {s % 86400 // 3600}h" if s % 86400 // 3600 else f"{s // 86400}d"


def _source_id(hit: Mapping[str, Any]) -> str:
    source = hit.get("source")
    # dict, not Mapping: evidence is parsed JSON, and an ABC check per hit is costly.
    if isinstance(source, dict) and source.get("id"):
        return str(source["id"])
    return ""


def _captured(hits: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], _Captured]:
    out: dict[tuple[str, str], _Captured] = {}
    for hit in hits:
        key = (str(hit.get("probe_id") or ""), _source_id(hit))
        c = out.get(key)
        if c is None:
            c = out[key] = _Captured()
        c.hits += 1
        violating = raised = False
        result = hit.get("expect")
        if isinstance(result, dict) and ("ok" in result or "error" in result):
            c.evaluated += 1
            if result.get("ok") is False or (result.get("ok") is None and result.get("error")):
                c.violations += 1
                violating = True
        exc = hit.get("exception")
        if isinstance(exc, dict) and exc.get("type"):
            c.exceptions += 1
            raised = True
        ts = hit.get("ts")
        c.order.append(
            (
                float(ts) if isinstance(ts, int | float) else 0.0,
                str(hit.get("hit_id")),
                violating,
                raised,
            )
        )
    return out


def _non_overlapping(records: list[Mapping[str, Any]]) -> tuple[list[Mapping[str, Any]], int]:
    """Per source, the records whose placements do not overlap in time (two probes with one
    signature on one source at once count the same calls twice); returns (kept, dropped)."""
    by_source: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        by_source.setdefault(str(record.get("source_id")), []).append(record)
    kept: list[Mapping[str, Any]] = []
    dropped = 0
    for source in sorted(by_source):
        chosen: list[Mapping[str, Any]] = []
        for record in sorted(
            by_source[source], key=lambda r: (_time(r, "placed_at"), str(r.get("probe_id")))
        ):
            start = _time(record, "placed_at")
            clash = [c for c in chosen if start < _time(c, "reported_at")]
            if not clash:
                chosen.append(record)
                continue
            dropped += 1
            other = clash[-1]
            if firings(_counters(record)) > firings(_counters(other)):
                chosen[chosen.index(other)] = record
        kept.extend(chosen)
    return kept, dropped


def _time(record: Mapping[str, Any], name: str) -> float:
    value = record.get(name)
    return float(value) if isinstance(value, int | float) else 0.0


def _counters(record: Mapping[str, Any]) -> Mapping[str, Any]:
    counters = record.get("counters")
    return counters if isinstance(counters, Mapping) else {}


def summarize(
    records: Sequence[Mapping[str, Any]],
    hits: Sequence[Mapping[str, Any]],
    *,
    has_expect: bool,
) -> Production:
    """Sum the sources' counters (``records``: status records) and check them against ``hits``.

    A count is a lower bound (``lower_bound``) only when captured violating hits or exception
    exits are not in the counters: sent after a source's last counters (its status is older
    than its last hits), or by sources or placements with no counters. Passing hits after
    the last counters, hits the sensors dropped and firings not evaluated (rate limit, CPU
    budget) leave every printed count exact over what it says it counts: they are ``notes``.
    """
    captured = _captured(hits)
    total = _Captured()
    for c in captured.values():
        total.hits += c.hits
        total.evaluated += c.evaluated
        total.violations += c.violations
        total.exceptions += c.exceptions
    if not records:
        missing: list[str] = []
        if has_expect:
            missing.append(
                "the evidence has no sensor counters: only captured hits were counted, and "
                "captured hits are a sample"
            )
        return Production(
            origin="captured",
            evaluations=total.evaluated,
            violations=total.violations,
            exceptions=None,
            calls=total.hits,
            captured_hits=total.hits,
            captured_violations=total.violations,
            captured_exceptions=total.exceptions,
            lower_bound=tuple(missing),
        )
    kept, overlapping = _non_overlapping(list(records))
    counted_pairs: set[tuple[str, str]] = set()
    evaluations = violations = calls = drops = skipped_budget = 0
    exceptions: int | None = None
    # Exact only when every record counted them (a sensor of an older version does not).
    expect_errors: int | None = 0 if kept else None
    parts = dict.fromkeys(
        ("skipped_closed", "novel_classes", "novel_admitted", "novel_refused", "novel_full"), 0
    )
    stale = _Uncounted()
    sampled_by: set[str] = set()
    sources: set[str] = set()
    for record in kept:
        counters = _counters(record)
        pair = (str(record.get("probe_id")), str(record.get("source_id")))
        counted_pairs.add(pair)
        c = captured.get(pair, _Captured())
        evals = _int(counters.get("evaluations"))
        viols = _int(counters.get("violations"))
        produced = _int(counters.get("hits")) + _int(counters.get("drops"))
        late_exceptions = 0
        if not covers(counters, c.hits):
            # The source sent hits after its last counters (they come with its heartbeats):
            # the counters cover the calls up to that report; the later hits are captured
            # only. The rate stays the counters' own.
            late, late_exceptions = c.after(produced)
            stale.add(pair[1], c.hits - produced, late, late_exceptions)
        evaluations += evals
        violations += viols
        calls += firings(counters)
        drops += _int(counters.get("drops"))
        skipped_budget += _int(counters.get("skipped_budget"))
        if expect_errors is not None:
            expect_errors = (
                expect_errors + _int(counters.get("expect_errors"))
                if "expect_errors" in counters
                else None
            )
        for name in parts:
            parts[name] += _int(counters.get(name))
        if "exceptions" in counters:
            exceptions = (exceptions or 0) + _int(counters.get("exceptions")) + late_exceptions
        if has_expect:
            # The expect gate's skipped_rate mixes firings never evaluated and violations not
            # captured; more skips than uncaptured violations means some were not evaluated.
            uncaptured = max(0, viols - c.violations)
            if _int(counters.get("skipped_rate")) > uncaptured:
                sampled_by.add("eval_rate")
        if _int(counters.get("skipped_budget")):
            sampled_by.add("cpu_budget")
        if firings(counters) or c.hits:
            sources.add(pair[1])
    dropped_pairs = {(str(r.get("probe_id")), str(r.get("source_id"))) for r in records}
    orphans = _Uncounted()
    for pair, c in sorted(captured.items()):
        if pair not in counted_pairs and pair not in dropped_pairs:
            orphans.add(pair[1], c.hits, c.violations, c.exceptions)
    if exceptions is not None:
        exceptions += orphans.exceptions
    reasons: list[str] = []
    notes: list[str] = []
    where = f"after the last counters of {stale.sources_text()}"
    if stale.violations or stale.exceptions:
        reasons.append(f"{stale.what()} captured {where} are not counted")
    elif stale.hits:
        notes.append(
            f"{stale.hits} captured hit(s) came {where}, none violating or raising: the counts "
            "cover the calls up to those counters"
        )
    if orphans.violations or orphans.exceptions:
        reasons.append(
            f"{orphans.what()} captured from placements or sources with no counters are not counted"
        )
    elif orphans.hits:
        notes.append(
            f"{orphans.hits} captured hit(s) come from placements or sources with no counters, "
            "none violating or raising: the counts cover the sources with counters"
        )
    if drops:
        notes.append(
            f"the sensors dropped {drops} hit(s) (full queue or capture over budget): fewer "
            "states were captured than fired; the counters count every firing"
        )
    if sampled_by:
        notes.append(
            f"some calls were not evaluated ({sampling_cause(sampled_by, skipped_budget)}): the "
            "counts are over the evaluated ones"
        )
    if overlapping:
        notes.append(
            f"{overlapping} placement(s) overlapping another on the same source were not summed"
        )
    starts = [_time(r, "placed_at") for r in kept if r.get("placed_at") is not None]
    ends = [_time(r, "reported_at") for r in kept if r.get("reported_at") is not None]
    span = max(ends) - min(starts) if starts and ends else None
    collecting, states = collection_state(
        [{"state": r.get("state"), "reason": r.get("reason")} for r in records]
    )
    return Production(
        origin="counters",
        evaluations=evaluations,
        violations=violations,
        exceptions=exceptions,
        calls=calls,
        drops=drops,
        skipped_budget=skipped_budget,
        expect_errors=expect_errors,
        **parts,
        sources=len(sources),
        reporting=len({str(r.get("source_id")) for r in records}),
        placements=len({str(r.get("probe_id")) for r in kept}),
        span=span if span is None else max(0.0, span),
        captured_hits=total.hits,
        captured_violations=total.violations,
        captured_exceptions=total.exceptions,
        uncounted_violations=stale.violations + orphans.violations,
        uncounted_exceptions=stale.exceptions + orphans.exceptions,
        sampled=bool(sampled_by),
        sampled_by=tuple(sorted(sampled_by)),
        lower_bound=tuple(reasons),
        collecting=collecting,
        states=states if not collecting else "",
        notes=tuple(notes),
    )
