"""Publishing a suite's markers as the hub's standing probes (``python -m pytest_runtime publish``).

The standing set of a service is made equal to the ``runtime_probe`` markers a test suite
declares: a (signature, selector) the hub has no standing probe for is placed, one it has is
kept (with its evidence), and a standing probe of the service no marker asks for any more is
retired (removed: its sampled evidence stays on the hub until retention). Publishing twice in a
row changes nothing. Standing probes get budgets meant for always-on use (:func:`standing_probe`);
the sensors enforce them, and the CPU budget of each sensor, as for any probe.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pytest_runtime.errors import RuntimeProbeError
from pytest_runtime.markers import ProbeRequest

__all__ = [
    "STANDING_MAX_BYTES",
    "STANDING_RATE",
    "STANDING_VIOLATION_RATE",
    "Plan",
    "apply",
    "plan",
    "render",
    "standing_probe",
]

#: Captured hits per second per source of a standing probe (the sensors count every call).
STANDING_RATE = 1.0
#: Violation hits per second per source of a standing probe.
STANDING_VIOLATION_RATE = 5.0
#: Bytes of captures per hit: the hub's sample is bounded by hits, so a hit is kept small.
STANDING_MAX_BYTES = 8 * 1024
_MAX_TESTS_TAG = 200


def selector_key(selector: Mapping[str, Any]) -> str:
    return json.dumps(dict(selector), sort_keys=True)


def standing_probe(request: ProbeRequest, *, service: str, tests: str) -> Any:
    """The probe as it stands in production: own id, no expiry, no max hits, small captures."""
    probe = request.probe
    limits = probe.limits
    rate = min(limits.rate, STANDING_RATE) if limits.rate is not None else STANDING_RATE
    violation_rate = (
        min(limits.violation_rate, STANDING_VIOLATION_RATE)
        if limits.violation_rate is not None
        else STANDING_VIOLATION_RATE
    )
    capture = dataclasses.replace(
        limits.capture, max_bytes=min(limits.capture.max_bytes, STANDING_MAX_BYTES)
    )
    limits = dataclasses.replace(
        limits,
        rate=rate,
        burst=None,
        max_hits=None,
        expires_at=None,
        violation_rate=violation_rate,
        capture=capture,
    )
    tags = {**dict(probe.tags), "standing": service, "tests": tests}
    return probe.with_changes(
        id=f"standing-{uuid.uuid4().hex[:24]}", created_at=time.time(), limits=limits, tags=tags
    )


@dataclasses.dataclass
class Wanted:
    """One (signature, selector) the suite's markers ask to stand."""

    request: ProbeRequest
    selector: dict[str, Any]
    tests: list[str] = dataclasses.field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return self.request.signature, selector_key(self.selector)

    def tests_tag(self) -> str:
        kept: list[str] = []
        for nodeid in sorted(set(self.tests)):
            if len(json.dumps([*kept, nodeid])) > _MAX_TESTS_TAG:
                break
            kept.append(nodeid)
        return json.dumps(kept)


@dataclasses.dataclass
class Plan:
    """What publishing does to the standing set of the services it covers."""

    services: list[str]
    place: list[Wanted] = dataclasses.field(default_factory=list)
    keep: list[tuple[Wanted, dict[str, Any]]] = dataclasses.field(default_factory=list)
    retire: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    placed: list[dict[str, Any]] = dataclasses.field(default_factory=list)  #: after apply


def wanted_from(
    marked: Iterable[tuple[str, ProbeRequest]], default_service: str | None
) -> list[Wanted]:
    """One entry per (signature, selector) of the suite; every one must name a service."""
    wanted: dict[tuple[str, str], Wanted] = {}
    for nodeid, request in marked:
        selector = request.settings.selector(default_service)
        if not selector.get("service"):
            raise RuntimeProbeError(
                f"{nodeid}: runtime_probe {request.location} names no service: publishing "
                "needs one (--runtime-service, ini runtime_service or the marker's service=), "
                "since the standing set is kept per service"
            )
        entry = Wanted(request, selector)
        entry = wanted.setdefault(entry.key, entry)
        entry.tests.append(nodeid.split("[", 1)[0])
    return [wanted[key] for key in sorted(wanted)]


def plan(client: Any, wanted: Sequence[Wanted], extra_services: Iterable[str] = ()) -> Plan:
    """Compare the markers with the hub's active standing probes of the same services."""
    services = sorted({str(w.selector["service"]) for w in wanted} | set(extra_services))
    result = Plan(services)
    existing: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for record in client.list_probes(state="active", standing=True):
        selector = record.get("selector") or {}
        if selector.get("service") not in services:
            continue  # another service's standing set: not this suite's to change
        key = (str(record.get("signature")), selector_key(selector))
        existing.setdefault(key, []).append(record)
    for entry in wanted:
        records = sorted(
            existing.pop(entry.key, []), key=lambda r: (r.get("created_at") or 0, r["id"])
        )
        if records:
            result.keep.append((entry, records[0]))
            result.retire.extend(records[1:])  # twins (two publishes at once): keep the oldest
        else:
            result.place.append(entry)
    for records in existing.values():
        result.retire.extend(records)
    result.retire.sort(key=lambda r: (str(r.get("probe", {}).get("location")), str(r["id"])))
    return result


def apply(client: Any, result: Plan) -> None:
    """Place the new probes first, then retire the old ones (a check never sees a gap)."""
    for entry in result.place:
        service = str(entry.selector["service"])
        probe = standing_probe(entry.request, service=service, tests=entry.tests_tag())
        result.placed.append(client.place(probe.to_dict(), entry.selector, None, standing=True))
    for record in result.retire:
        client.remove(str(record["id"]))


def render(result: Plan, *, hub: str, dry_run: bool) -> list[str]:
    """The report: one summary line, then a line per probe (placed, kept, retired)."""
    verb = (
        ("would place", "would keep", "would retire") if dry_run else ("placed", "kept", "retired")
    )
    lines = [
        f"runtime publish{' (dry run)' if dry_run else ''}: service(s) "
        f"{', '.join(result.services) or '(none)'} on hub {hub}: {len(result.place)} "
        f"{verb[0]}, {len(result.keep)} {verb[1]}, {len(result.retire)} {verb[2]}"
    ]
    placed_ids = [str(r.get("id")) for r in result.placed]
    for n, entry in enumerate(result.place):
        probe_id = f" as {placed_ids[n]}" if n < len(placed_ids) else ""
        lines.append(
            f"  {verb[0]}  {entry.request.location} [{entry.request.signature[:12]}]"
            f" on {selector_key(entry.selector)}{probe_id}"
        )
    for entry, record in result.keep:
        hits = record.get("hit_count", 0)
        lines.append(
            f"  {verb[1]}  {entry.request.location} [{entry.request.signature[:12]}] "
            f"probe {record['id']} ({hits} hit(s) received)"
        )
    for record in result.retire:
        probe = record.get("probe") or {}
        lines.append(
            f"  {verb[2]}  {probe.get('location')} [{str(record.get('signature'))[:12]}] "
            f"probe {record['id']} (no marker asks for it)"
        )
    return lines
