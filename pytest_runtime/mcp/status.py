"""How a probe reads to an agent: its state on every source, why it waits or failed, what next.

Sources that match the probe's selector but have not reported it yet are listed as pending
with the reason; a fleet is cut to a few rows with the states counted, so the answer stays
small whatever the number of sources.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from pytest_runtime.mcp.probes import Placed
from pytest_runtime.mcp.summary import source_label

__all__ = [
    "MAX_SOURCES_SHOWN",
    "matches",
    "next_step",
    "probe_status",
    "source_name",
    "source_row",
    "why",
]

MAX_SOURCES_SHOWN = 10
_PENDING_UNREPORTED = (
    "not reported yet: the sensor installs the probe at its next poll answer and reports "
    "its status with its next heartbeat"
)


def source_name(source: Mapping[str, Any]) -> str:
    """``shop 1.4.2 on web-1:4242``."""
    version = f" {source['version']}" if source.get("version") else ""
    return f"{source.get('service')}{version} on {source_label(source)}"


def source_row(source: Mapping[str, Any], now: float) -> dict[str, Any]:
    """One source as list_sources shows it: identity, runtime, labels, backend and health."""
    last_seen = source.get("last_seen")
    return {
        "source_id": source.get("id"),
        "service": source.get("service"),
        "version": source.get("version"),
        "host": source.get("host"),
        "pid": source.get("pid"),
        "python": source.get("python"),
        "labels": source.get("labels") or {},
        "backend": source.get("backend"),
        "health": {
            "state": source.get("state"),
            "last_seen_seconds_ago": (
                round(now - last_seen, 1) if isinstance(last_seen, int | float) else None
            ),
            "dropped_hits": source.get("dropped") or 0,
        },
    }


def matches(source: Mapping[str, Any], selector: Mapping[str, Any]) -> bool:
    """True when the hub would send a probe with ``selector`` to ``source``."""
    if selector.get("source_id") and source.get("id") != selector["source_id"]:
        return False
    if selector.get("service") and source.get("service") != selector["service"]:
        return False
    labels = source.get("labels") or {}
    return all(labels.get(k) == v for k, v in (selector.get("labels") or {}).items())


def probe_status(
    record: Mapping[str, Any], live: Sequence[Mapping[str, Any]], placed: Placed | None
) -> dict[str, Any]:
    """A probe's state on the hub and on every source (``live``: the live sources its selector
    matches), with why it waits or failed and what to do next."""
    now = time.time()
    probe = record.get("probe") or {}
    statuses: Mapping[str, Any] = record.get("statuses") or {}
    known = {str(s.get("id")): s for s in live}
    ids = sorted(set(known) | set(statuses))
    rows = []
    states: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for source_id in ids:
        status = statuses.get(source_id)
        source = known.get(source_id)
        name = source_name(source) if source else f"source {source_id} (no longer live)"
        if isinstance(status, Mapping):
            state = str(status.get("state"))
            reason = status.get("reason")
            for key in (
                "hits",
                "evaluations",
                "violations",
                "errors",
                "expect_errors",
                "drops",
                "skipped_rate",
                "skipped_condition",
                "skipped_budget",
                "skipped_closed",
                "novel_classes",
                "novel_admitted",
                "novel_refused",
                "novel_full",
            ):
                value = status.get(key)
                if isinstance(value, int) and not isinstance(value, bool):
                    totals[key] += value
        else:
            state, reason = "pending", _PENDING_UNREPORTED
        states[state] += 1
        if reason:
            reasons[f"{state}: {reason}"] += 1
        row: dict[str, Any] = {"source": name, "source_id": source_id, "state": state}
        if reason:
            row["reason"] = str(reason)[:300]
        if isinstance(status, Mapping):
            row["hits"] = status.get("hits", 0)
        rows.append(row)
    rows.sort(key=lambda r: (r["state"] != "error", r["state"], r["source"]))
    expires_at = record.get("expires_at")
    answer: dict[str, Any] = {
        "probe_id": record.get("id"),
        "kind": probe.get("kind"),
        "location": probe.get("location"),
        "state": record.get("state"),
        "hit_count": record.get("hit_count", 0),
        "max_hits": (probe.get("limits") or {}).get("max_hits"),
        "expires_in_seconds": (
            max(0, round(float(expires_at) - now)) if isinstance(expires_at, int | float) else None
        ),
        "sources": rows[:MAX_SOURCES_SHOWN],
        "source_states": dict(sorted(states.items())),
        "counters": {
            **dict(sorted(totals.items())),
            "over": f"the last report of {len(statuses)} source(s)",
        },
    }
    if placed is not None:
        answer["hypothesis"] = placed.hypothesis
        answer["purpose"] = placed.purpose
    if len(rows) > MAX_SOURCES_SHOWN:
        answer["sources_not_shown"] = len(rows) - MAX_SOURCES_SHOWN
        answer["reasons"] = dict(sorted(reasons.items())[:8])
    if int(record.get("dropped") or 0):
        answer["dropped_hits"] = record.get("dropped")
    answer["why"] = why(answer, states, reasons)
    answer["next_step"] = next_step(answer, placed, states)
    return answer


def why(answer: Mapping[str, Any], states: Counter[str], reasons: Counter[str]) -> str:
    """One sentence: why the probe is where it is (ended, in error, pending, without hits)."""
    state = answer.get("state")
    if state == "completed":
        return "the probe reached its hit cap (max_hits) and ended"
    if state == "expired":
        return "the probe's TTL passed and it ended"
    if state == "removed":
        return "the probe was removed"
    if not states:
        return "no source matches the probe's selector any more"
    installed = states.get("installed", 0)
    if states.get("error"):
        first = next((r for r in sorted(reasons) if r.startswith("error:")), "error")
        return f"in error on {states['error']} source(s): {first[7:]}"
    pending = [r for r in sorted(reasons) if r.startswith("pending:")]
    if installed and pending and any("waiting for module" in r for r in pending):
        return (
            f"installed on {installed} source(s); pending on {states['pending']} that have "
            "not imported the module (expected in a process that never imports it, such as "
            "a pre-fork server's master)"
        )
    if installed:
        if answer.get("hit_count"):
            return f"installed on {installed} source(s), collecting hits"
        return (
            f"installed on {installed} source(s); no hit yet: no traffic has reached the "
            "location, or the condition was false every time"
        )
    if pending:
        return f"pending on {states.get('pending', 0)} source(s): {pending[0][9:]}"
    return ", ".join(f"{n} {s}" for s, n in sorted(states.items()))


def next_step(answer: Mapping[str, Any], placed: Placed | None, states: Counter[str]) -> str:
    """What the agent should do now; after two empty polls: stop waiting (go asynchronous)."""
    probe_id = answer.get("probe_id")
    if answer.get("state") != "active":
        return (
            f"read the evidence with get_evidence_summary(probe_id='{probe_id}'); place a "
            "new probe if the hypothesis needs more"
        )
    if states and states.get("error") == sum(states.values()):
        return (
            "fix the location or the expressions (see 'why'), remove this probe with "
            "remove_probe and place it again"
        )
    if answer.get("hit_count"):
        return f"read get_evidence_summary(probe_id='{probe_id}')"
    if placed is not None and placed.empty_polls >= 2:
        return (
            "two polls without a hit: stop waiting now. Keep this probe id, go on with other "
            "work, and poll once more later (it lives another "
            f"{answer.get('expires_in_seconds')} s); meanwhile check that traffic reaches "
            "the location and that the condition can be true"
        )
    return f"poll get_probe_status(probe_id='{probe_id}', wait_seconds=10) for the first hits"
