"""One agent's investigation: the tools' work, and every probe and run the session started.

:class:`Investigation` holds no MCP types: each tool of the server is one method here that
takes plain arguments, talks to the hub only through :class:`~pytest_runtime.mcp.hubport.HubPort`
and returns a plain dict (the server renders it within the size budget). Bad input raises
:class:`~pytest_runtime.mcp.errors.ArgumentError`, a refusal raises
:class:`~pytest_runtime.mcp.errors.RefusedError` with what to do instead. Every probe placed
here carries a TTL and a hit cap, and :meth:`Investigation.close` removes the ones still active
when the session ends (the TTL is the second line of defence if the process is killed).
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pytest_runtime.mcp.bounds import shrink
from pytest_runtime.mcp.comparejob import CompareJob, check_marker, check_nodeid
from pytest_runtime.mcp.errors import ArgumentError, HubCallError, RefusedError
from pytest_runtime.mcp.hubport import HubPort
from pytest_runtime.mcp.settings import ServerSettings
from pytest_runtime.mcp.stats import rate_with_bound
from pytest_runtime.mcp.summary import hit_row, iso, outcome, source_label, summarize

__all__ = ["KINDS", "Investigation", "Placed", "split_not_true"]

T = TypeVar("T")

KINDS = ("snapshot", "log", "counter", "timer", "expect")
AGGREGATED = ("counter", "timer")
#: Aggregated kinds count firings, not captures: their hit cap counts firings.
AGGREGATE_DEFAULT_MAX_HITS = 1_000_000
AGGREGATE_MAX_MAX_HITS = 100_000_000
HYPOTHESIS_RATE = 1.0  #: examples of a true outcome captured per second and source
MAX_SOURCES_SHOWN = 10
MAX_JOBS = 2
MAX_EXAMPLES = 3
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}\Z")
_POLL = 0.5
_PENDING_UNREPORTED = (
    "not reported yet: the sensor installs the probe at its next poll answer and reports "
    "its status with its next heartbeat"
)


@dataclasses.dataclass
class Placed:
    """A probe this session placed, and what the session knows about it."""

    probe_id: str
    purpose: str  #: "probe" or "hypothesis"
    kind: str
    location: str
    hypothesis: str
    selector: dict[str, Any]
    ttl: float
    max_hits: int
    created_at: float
    expires_at: float
    expression: str | None = None
    removed: bool = False
    last_hits: int = -1
    empty_polls: int = 0

    def describe(self, now: float) -> dict[str, Any]:
        data: dict[str, Any] = {
            "probe_id": self.probe_id,
            "purpose": self.purpose,
            "kind": self.kind,
            "location": self.location,
            "hypothesis": self.hypothesis,
            "max_hits": self.max_hits,
            "ttl_seconds": self.ttl,
            "expires_in_seconds": max(0, round(self.expires_at - now)),
        }
        if self.expression is not None:
            data["expression"] = self.expression
        if self.removed:
            data["removed_by_this_session"] = True
        return data


def _text(argument: str, value: object, *, required: bool, limit: int = 2000) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ArgumentError(argument, value, "a non-empty string")
    if len(value) > limit:
        raise ArgumentError(argument, value, f"at most {limit} characters")
    return value.strip()


def _probe_id(value: object, argument: str = "probe_id") -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise ArgumentError(
            argument, value, "a probe id as returned by place_probe or check_hypothesis"
        )
    return value


def _labels(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ArgumentError("labels", value, 'an object of strings, such as {"env": "prod"}')
    return dict(sorted(value.items()))


def _number(argument: str, value: object, *, low: float, high: float, whole: bool = False) -> float:
    kind = "a whole number" if whole else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ArgumentError(argument, value, f"{kind} from {low:g} to {high:g}")
    if whole and isinstance(value, float) and not value.is_integer():
        raise ArgumentError(argument, value, f"{kind} from {low:g} to {high:g}")
    if not math.isfinite(value) or not low <= value <= high:
        raise ArgumentError(argument, value, f"{kind} from {low:g} to {high:g}")
    return float(value)


def _source_name(source: Mapping[str, Any]) -> str:
    version = f" {source['version']}" if source.get("version") else ""
    return f"{source.get('service')}{version} on {source_label(source)}"


def _matches(source: Mapping[str, Any], selector: Mapping[str, Any]) -> bool:
    if selector.get("source_id") and source.get("id") != selector["source_id"]:
        return False
    if selector.get("service") and source.get("service") != selector["service"]:
        return False
    labels = source.get("labels") or {}
    return all(labels.get(k) == v for k, v in (selector.get("labels") or {}).items())


def split_not_true(not_true: int, captured_false: int, captured_error: int) -> tuple[int, int, str]:
    """(false, errors, how) from the sensors' count of false-or-failing evaluations.

    The sensors count ``violations`` (false or failing) exactly; which of the two each one was
    is known only for the captured ones. When every one was captured the split is exact;
    otherwise it is scaled from the captured ones, and ``how`` says so.
    """
    captured = captured_false + captured_error
    if not_true == 0:
        return 0, 0, "exact: no evaluation was false or failed"
    if captured == not_true:
        how = "exact: every false or failing evaluation was captured"
        return captured_false, captured_error, how
    if captured:
        errors = round(not_true * captured_error / captured)
        return (
            not_true - errors,
            errors,
            f"estimated: the sensors counted {not_true} false-or-failing evaluations and "
            f"captured {captured} of them ({captured_false} false, {captured_error} errors); "
            "the split is scaled from those",
        )
    return (
        not_true,
        0,
        f"unknown: none of the {not_true} false-or-failing evaluations was captured yet; "
        "all are counted as false",
    )


_ARGUMENT_OF_FIELD = {
    "limits.rate": "rate",
    "limits.max_hits": "max_hits",
    "location.line": "location",
}


class Investigation:
    """The tools' work for one MCP session (see the module docstring)."""

    def __init__(
        self, settings: ServerSettings, hub_factory: Callable[[], HubPort] | None = None
    ) -> None:
        self.settings = settings
        self.session = uuid.uuid4().hex[:12]
        self.probes: dict[str, Placed] = {}
        self.jobs: dict[str, CompareJob] = {}
        self.closed = False
        self._factory = hub_factory
        self._hub: HubPort | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ the hub

    @property
    def hub(self) -> HubPort:
        with self._lock:
            if self._hub is None:
                if self._factory is not None:
                    self._hub = self._factory()
                else:
                    from pytest_runtime.mcp.hubport import PluginHub

                    s = self.settings
                    self._hub = PluginHub(s.hub, s.token, timeout=s.timeout)
            return self._hub

    def _call(self, what: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One hub call; its failure becomes an error the agent can act on."""
        from pytest_runtime.errors import (
            HubAuthError,
            HubClientError,
            HubRequestError,
            HubUnreachableError,
        )

        try:
            return function(*args, **kwargs)
        except HubUnreachableError as exc:
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "no answer"
            raise HubCallError(
                f"{what}: the hub at {self.settings.hub} cannot be reached ({cause}). The MCP "
                "server reads the hub URL from --hub or PYTEST_RUNTIME_HUB; check that the hub "
                "runs there, then call the tool again"
            ) from exc
        except HubAuthError as exc:
            raise HubCallError(
                f"{what}: {exc}. Give the MCP server a client token in PYTEST_RUNTIME_TOKEN"
            ) from exc
        except HubRequestError as exc:
            if exc.status == 404 and args and isinstance(args[0], str):
                raise ArgumentError(
                    "probe_id",
                    args[0],
                    "the id of a probe on this hub (list_session_probes lists this session's)",
                ) from exc
            raise HubCallError(f"{what}: {exc}") from exc
        except HubClientError as exc:
            raise HubCallError(f"{what}: {exc}") from exc

    # ------------------------------------------------------------------ sources

    def list_sources(
        self,
        service: str | None = None,
        labels: Mapping[str, str] | None = None,
        state: str = "live",
    ) -> dict[str, Any]:
        service = _text("service", service, required=False, limit=200)
        wanted = _labels(labels)
        if state not in ("live", "stale", "gone", "all"):
            raise ArgumentError("state", state, "one of 'live', 'stale', 'gone', 'all'")
        health = self._call("hub health", self.hub.health)
        sources = self._call(
            "listing sources",
            self.hub.sources,
            service=service,
            labels=wanted,
            state=None if state == "all" else state,
        )
        now = time.time()
        sources.sort(key=lambda s: (str(s.get("service")), str(s.get("host")), str(s.get("id"))))
        rows = []
        for source in sources[:30]:
            last_seen = source.get("last_seen")
            rows.append(
                {
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
                            round(now - last_seen, 1)
                            if isinstance(last_seen, int | float)
                            else None
                        ),
                        "dropped_hits": source.get("dropped") or 0,
                    },
                }
            )
        services = Counter(str(s.get("service")) for s in sources)
        answer: dict[str, Any] = {
            "hub": {"url": self.hub.url, "version": health.get("version")},
            "filter": {"service": service, "labels": wanted, "state": state},
            "count": len(sources),
            "services": dict(sorted(services.items())),
            "sources": rows,
        }
        if len(sources) > len(rows):
            answer["sources_not_shown"] = len(sources) - len(rows)
        if not sources:
            answer["next_step"] = (
                "no source matches: start the service with the sensor attached "
                "(python -m sensor run -- <command>, with SENSOR_HUB_URL and SENSOR_TOKEN), "
                "or call list_sources(state='all') to see stale and gone ones"
            )
        else:
            answer["next_step"] = (
                "place probes on these sources with place_probe or check_hypothesis, passing "
                f"service= one of {sorted(services)[:5]} (and labels= to narrow further)"
            )
        return answer

    # ------------------------------------------------------------------ placing

    def _selector(
        self, service: str | None, labels: Mapping[str, str] | None, source_id: str | None
    ) -> dict[str, Any]:
        selector: dict[str, Any] = {}
        service = _text("service", service, required=False, limit=200) or self.settings.service
        if service:
            selector["service"] = service
        wanted = _labels(labels)
        if wanted:
            selector["labels"] = wanted
        if source_id is not None:
            selector["source_id"] = _probe_id(source_id, "source_id")
        return selector

    def _build_probe(self, fields: dict[str, Any], names: Mapping[str, str]) -> Any:
        """A validated :class:`sensor.probes.Probe`; errors name the tool's own arguments."""
        from sensor import expressions
        from sensor.errors import ExpressionError, ProbeSpecError
        from sensor.probes import Probe

        try:
            probe = Probe.from_dict(fields)
        except ProbeSpecError as exc:
            field = exc.field.split("[", 1)[0]
            argument = _ARGUMENT_OF_FIELD.get(exc.field, names.get(field, field))
            raise ArgumentError(argument, exc.value, exc.expected) from exc
        checks: list[tuple[str, str | None, Callable[[str], Any]]] = [
            (names.get("condition", "condition"), probe.condition, expressions.compile),
            (names.get("expect", "expect"), probe.expect, expressions.compile),
            ("template", probe.template, expressions.compile_template),
        ]
        checks += [("capture", spec.expr, expressions.compile) for spec in probe.capture]
        for argument, source, compile_one in checks:
            if source is None:
                continue
            try:
                compile_one(source)
            except ExpressionError as exc:
                raise ArgumentError(
                    argument, source, f"an expression the sensor accepts ({exc})"
                ) from exc
        return probe

    def _live_matching(self, selector: Mapping[str, Any]) -> list[dict[str, Any]]:
        sources = self._call(
            "listing sources",
            self.hub.sources,
            service=selector.get("service"),
            labels=selector.get("labels"),
            state="live",
        )
        return [s for s in sources if _matches(s, selector)]

    def _place(
        self,
        *,
        purpose: str,
        fields: dict[str, Any],
        names: Mapping[str, str],
        hypothesis: str,
        selector: dict[str, Any],
        ttl_seconds: float | None,
        expression: str | None = None,
    ) -> dict[str, Any]:
        s = self.settings
        ttl = s.default_ttl if ttl_seconds is None else ttl_seconds
        ttl = _number("ttl_seconds", ttl, low=s.min_ttl, high=s.max_ttl)
        probe_id = f"mcp-{self.session}-{uuid.uuid4().hex[:10]}"
        tags = {
            "placed_by": "pytest-runtime-mcp",
            "mcp_session": self.session,
            "hypothesis": hypothesis[:200],
        }
        probe = self._build_probe({**fields, "id": probe_id, "tags": tags}, names)
        with self._lock:
            if self.closed:
                raise RefusedError(
                    "this MCP session has ended", "start a new session of the MCP server"
                )
            now = time.time()
            active = [p for p in self.probes.values() if not p.removed and p.expires_at > now]
            if len(active) >= s.max_probes:
                raise RefusedError(
                    f"this session already has {len(active)} active probes (the limit is "
                    f"{s.max_probes})",
                    "remove a probe that has answered its hypothesis with remove_probe "
                    "(list_session_probes shows them), then place this one",
                )
            live = self._live_matching(selector)
            if not live:
                everywhere = self._call("listing sources", self.hub.sources, state="live")
                services = sorted({str(x.get("service")) for x in everywhere})
                raise RefusedError(
                    f"no live source matches the selector {selector or '{}'} "
                    f"(live services: {services[:8] or 'none'})",
                    "call list_sources, then pass service= (and labels=) of a live source; "
                    "a probe on no source would only wait for its TTL",
                )
            record = self._call("placing the probe", self.hub.place, probe.to_dict(), selector, ttl)
            placed = Placed(
                probe_id=probe_id,
                purpose=purpose,
                kind=probe.kind.value,
                location=str(probe.location),
                hypothesis=hypothesis,
                selector=selector,
                ttl=ttl,
                max_hits=int(probe.limits.max_hits or 0),
                created_at=float(record.get("created_at") or now),
                expires_at=float(record.get("expires_at") or now + ttl),
                expression=expression,
            )
            self.probes[probe_id] = placed
        return {"placed": True, **self._status(placed, record, live)}

    def place_probe(
        self,
        location: str,
        hypothesis: str,
        kind: str = "snapshot",
        capture: Sequence[str] | None = None,
        condition: str | None = None,
        expect: str | None = None,
        template: str | None = None,
        service: str | None = None,
        labels: Mapping[str, str] | None = None,
        source_id: str | None = None,
        ttl_seconds: float | None = None,
        max_hits: int | None = None,
        rate: float | None = None,
    ) -> dict[str, Any]:
        s = self.settings
        location = _text("location", location, required=True, limit=500) or ""
        hypothesis = _text("hypothesis", hypothesis, required=True, limit=500) or ""
        if kind not in KINDS:
            raise ArgumentError("kind", kind, "one of " + ", ".join(KINDS))
        if capture is not None and (
            isinstance(capture, str) or not all(isinstance(c, str) for c in capture)
        ):
            raise ArgumentError("capture", capture, 'a list of names or expressions, ["price"]')
        if kind in AGGREGATED:
            if capture:
                raise ArgumentError(
                    "capture",
                    capture,
                    f"no capture on a {kind} probe (it counts firings); use kind='snapshot' to "
                    "capture values",
                )
            default_cap, top = AGGREGATE_DEFAULT_MAX_HITS, AGGREGATE_MAX_MAX_HITS
        else:
            default_cap, top = s.default_max_hits, s.max_max_hits
        cap = default_cap if max_hits is None else max_hits
        cap = int(_number("max_hits", cap, low=1, high=top, whole=True))
        limits: dict[str, Any] = {"max_hits": cap}
        if rate is not None:
            limits["rate"] = _number("rate", rate, low=0.001, high=s.max_rate)
        fields = {
            "kind": kind,
            "location": location,
            "capture": list(capture or ()),
            "condition": condition,
            "expect": expect,
            "template": template,
            "limits": limits,
        }
        return self._place(
            purpose="probe",
            fields=fields,
            names={},
            hypothesis=hypothesis,
            selector=self._selector(service, labels, source_id),
            ttl_seconds=ttl_seconds,
        )

    def check_hypothesis(
        self,
        location: str,
        expression: str,
        hypothesis: str,
        condition: str | None = None,
        capture: Sequence[str] | None = None,
        service: str | None = None,
        labels: Mapping[str, str] | None = None,
        source_id: str | None = None,
        ttl_seconds: float | None = None,
        max_hits: int | None = None,
    ) -> dict[str, Any]:
        s = self.settings
        location = _text("location", location, required=True, limit=500) or ""
        expression = _text("expression", expression, required=True, limit=1000) or ""
        hypothesis = _text("hypothesis", hypothesis, required=True, limit=500) or ""
        if capture is not None and (
            isinstance(capture, str) or not all(isinstance(c, str) for c in capture)
        ):
            raise ArgumentError("capture", capture, 'a list of names or expressions, ["price"]')
        cap = s.default_max_hits if max_hits is None else max_hits
        cap = int(_number("max_hits", cap, low=1, high=s.max_max_hits, whole=True))
        fields = {
            "kind": "snapshot",
            "location": location,
            "capture": list(capture or ()),
            "condition": condition,
            "expect": expression,
            # True outcomes are captured at the probe's rate (examples); false and failing ones
            # at the violation rate. Every firing within the evaluation rate is counted.
            "limits": {"max_hits": cap, "rate": HYPOTHESIS_RATE},
        }
        answer = self._place(
            purpose="hypothesis",
            fields=fields,
            names={"expect": "expression"},
            hypothesis=hypothesis,
            selector=self._selector(service, labels, source_id),
            ttl_seconds=ttl_seconds,
            expression=expression,
        )
        answer["next_step"] = (
            f"poll get_hypothesis_result(probe_id='{answer['probe_id']}') for the counts "
            "(evaluated, true, false, errors) as traffic reaches the location"
        )
        return answer

    # ------------------------------------------------------------------ status

    def _status(
        self,
        placed: Placed | None,
        record: Mapping[str, Any],
        live: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A probe's state on the hub and on every source, with why it waits or failed."""
        now = time.time()
        probe = record.get("probe") or {}
        statuses: Mapping[str, Any] = record.get("statuses") or {}
        selector = record.get("selector") or {}
        if live is None:
            live = self._live_matching(selector)
        known = {str(s.get("id")): s for s in live}
        ids = sorted(set(known) | set(statuses))
        rows = []
        states: Counter[str] = Counter()
        totals: Counter[str] = Counter()
        reasons: Counter[str] = Counter()
        for source_id in ids:
            status = statuses.get(source_id)
            source = known.get(source_id)
            name = _source_name(source) if source else f"source {source_id} (no longer live)"
            if isinstance(status, Mapping):
                state = str(status.get("state"))
                reason = status.get("reason")
                for key in (
                    "hits",
                    "evaluations",
                    "violations",
                    "errors",
                    "drops",
                    "skipped_rate",
                    "skipped_condition",
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
                max(0, round(float(expires_at) - now))
                if isinstance(expires_at, int | float)
                else None
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
        answer["why"] = self._why(answer, states, reasons)
        answer["next_step"] = self._next_step(answer, placed, states)
        return answer

    @staticmethod
    def _why(answer: Mapping[str, Any], states: Counter[str], reasons: Counter[str]) -> str:
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

    @staticmethod
    def _next_step(answer: Mapping[str, Any], placed: Placed | None, states: Counter[str]) -> str:
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

    def _record(self, probe_id: str) -> dict[str, Any]:
        return self._call(f"reading probe {probe_id}", self.hub.probe, probe_id)

    def _wait(
        self, probe_id: str, wait_seconds: float, changed: Callable[[Mapping[str, Any]], bool]
    ) -> dict[str, Any]:
        """The probe record, after waiting up to ``wait_seconds`` for ``changed`` (never longer)."""
        wait = _number("wait_seconds", wait_seconds, low=0, high=self.settings.max_wait)
        record = self._record(probe_id)
        deadline = time.monotonic() + wait
        while not changed(record) and record.get("state") == "active":
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(_POLL, left))
            record = self._record(probe_id)
        return record

    def probe_status(self, probe_id: str, wait_seconds: float = 0) -> dict[str, Any]:
        probe_id = _probe_id(probe_id)
        placed = self.probes.get(probe_id)
        before = placed.last_hits if placed is not None and placed.last_hits >= 0 else 0
        record = self._wait(probe_id, wait_seconds, lambda r: int(r.get("hit_count") or 0) > before)
        hits = int(record.get("hit_count") or 0)
        if placed is not None:
            with self._lock:
                placed.empty_polls = placed.empty_polls + 1 if hits <= before else 0
                placed.last_hits = hits
        answer = self._status(placed, record)
        if placed is not None:
            answer["empty_polls"] = placed.empty_polls
        return answer

    # ------------------------------------------------------------------ hypotheses

    def hypothesis_result(self, probe_id: str, wait_seconds: float = 0) -> dict[str, Any]:
        probe_id = _probe_id(probe_id)
        placed = self.probes.get(probe_id)

        def evaluations(record: Mapping[str, Any]) -> int:
            return sum(
                int(s.get("evaluations") or 0)
                for s in (record.get("statuses") or {}).values()
                if isinstance(s, Mapping)
            )

        first = self._record(probe_id)
        expression = (first.get("probe") or {}).get("expect")
        if not expression:
            raise ArgumentError(
                "probe_id",
                probe_id,
                "a probe with an expression (check_hypothesis places one; this probe has none: "
                "read it with get_evidence_summary)",
            )
        before = evaluations(first)
        record = (
            self._wait(probe_id, wait_seconds, lambda r: evaluations(r) > before)
            if wait_seconds
            else first
        )
        statuses = [s for s in (record.get("statuses") or {}).values() if isinstance(s, Mapping)]
        evaluated = sum(int(s.get("evaluations") or 0) for s in statuses)
        not_true = sum(int(s.get("violations") or 0) for s in statuses)
        true = max(0, evaluated - not_true)
        hits = self._read_hits(probe_id, 2000)
        by_outcome: dict[str, list[Mapping[str, Any]]] = {"true": [], "false": [], "error": []}
        for hit in hits:
            result = outcome(hit)
            if result is not None:
                by_outcome[result].append(hit)
        false, errors, split = split_not_true(
            not_true, len(by_outcome["false"]), len(by_outcome["error"])
        )
        counts: dict[str, Any] = {
            "evaluated": evaluated,
            "true": true,
            "false": false,
            "errors": errors,
            "false_errors_split": split,
            "not_evaluated": {
                "condition_false": sum(int(s.get("skipped_condition") or 0) for s in statuses),
                "over_the_evaluation_rate": sum(int(s.get("skipped_rate") or 0) for s in statuses),
            },
            "over": (
                f"every evaluation on {len(statuses)} source(s), as counted by each sensor at "
                "its last heartbeat"
            ),
        }
        rate = rate_with_bound(true, evaluated) if evaluated else None
        examples: dict[str, Any] = {}
        for name, group in by_outcome.items():
            if group:
                examples[name] = [self._example(hit) for hit in group[:MAX_EXAMPLES]]
        answer: dict[str, Any] = {
            "probe_id": probe_id,
            "location": (record.get("probe") or {}).get("location"),
            "expression": expression,
            "condition": (record.get("probe") or {}).get("condition"),
            "state": record.get("state"),
            "counts": counts,
            "rate_true": rate,
            "reading": self._reading(true, evaluated, rate),
            "examples": examples,
            "examples_captured": {k: len(v) for k, v in sorted(by_outcome.items())},
        }
        if placed is not None:
            answer["hypothesis"] = placed.hypothesis
        if record.get("state") != "active":
            answer["ended"] = self._why(record, Counter(), Counter())
        if not evaluated:
            status = self._status(placed, record)
            answer["why_no_evaluation"] = status["why"]
            answer["next_step"] = (
                f"poll again with wait_seconds=10; after two empty polls stop waiting and come "
                f"back later (the probe lives {status['expires_in_seconds']} s more)"
            )
        else:
            answer["next_step"] = (
                "decide: does this confirm or rule out the hypothesis? If it is enough, remove "
                f"the probe (remove_probe('{probe_id}')); for the states behind an outcome read "
                "get_hit on the example hit ids"
            )
        return answer

    @staticmethod
    def _reading(true: int, evaluated: int, rate: Mapping[str, Any] | None) -> str:
        if not evaluated or rate is None:
            return "no evaluation yet: nothing can be concluded"
        if true == evaluated:
            return (
                f"true on all {evaluated} evaluations: if it is ever false or failing, that "
                f"happens on fewer than {100 * (1 - rate['low']):.2g}% of evaluations (95%)"
            )
        if true == 0:
            return (
                f"never true in {evaluated} evaluations: if it is ever true, that happens on "
                f"fewer than {100 * rate['high']:.2g}% of evaluations (95%)"
            )
        return (
            f"true on {true} of {evaluated} evaluations ({100 * rate['rate']:.3g}%, 95% interval "
            f"{100 * rate['low']:.3g}% to {100 * rate['high']:.3g}%)"
        )

    @staticmethod
    def _example(hit: Mapping[str, Any]) -> dict[str, Any]:
        example: dict[str, Any] = {
            "hit_id": hit.get("hit_id"),
            "source": source_label(hit.get("source")),
            "time": iso(hit.get("ts")),
        }
        if hit.get("line") is not None:
            example["line"] = hit.get("line")
        expect = hit.get("expect")
        if isinstance(expect, Mapping) and expect.get("error"):
            example["error"] = str(expect["error"])[:200]
        captures, cut = shrink(hit.get("captures"), 600)
        example["captures"] = captures
        if cut or hit.get("truncated"):
            example["cut"] = True
        return example

    # ------------------------------------------------------------------ evidence

    def _read_hits(self, probe_id: str, most: int) -> list[dict[str, Any]]:
        hits: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(hits) < most:
            page, cursor = self._call(
                f"reading the hits of {probe_id}",
                self.hub.hits_page,
                probe_id,
                after=cursor,
                limit=min(1000, most - len(hits)),
            )
            hits.extend(page)
            if cursor is None or not page:
                break
        return hits

    def evidence_summary(self, probe_id: str) -> dict[str, Any]:
        probe_id = _probe_id(probe_id)
        record = self._record(probe_id)
        hits = self._read_hits(probe_id, self.settings.summary_hits)
        probe = record.get("probe") or {}
        answer: dict[str, Any] = {
            "probe_id": probe_id,
            "kind": probe.get("kind"),
            "location": probe.get("location"),
            "state": record.get("state"),
            **summarize(hits, hits_on_hub=int(record.get("hit_count") or len(hits))),
        }
        placed = self.probes.get(probe_id)
        if placed is not None:
            answer["hypothesis"] = placed.hypothesis
        answer["next_step"] = (
            "read single hits with get_hit(probe_id, hit_id) (example_hit_id of a shape), or "
            "page with list_hits; then decide what the evidence says about the hypothesis"
            if hits
            else f"no hit yet: poll get_probe_status(probe_id='{probe_id}', wait_seconds=10)"
        )
        return answer

    def list_hits(
        self, probe_id: str, cursor: str | None = None, limit: int = 10
    ) -> dict[str, Any]:
        probe_id = _probe_id(probe_id)
        size = int(_number("limit", limit, low=1, high=25, whole=True))
        if cursor is not None and (not isinstance(cursor, str) or not cursor.isdigit()):
            raise ArgumentError("cursor", cursor, "the next_cursor of a previous list_hits answer")
        page, following = self._call(
            f"reading the hits of {probe_id}",
            self.hub.hits_page,
            probe_id,
            after=cursor,
            limit=size,
        )
        answer: dict[str, Any] = {
            "probe_id": probe_id,
            "hits": [hit_row(hit) for hit in page],
            "next_cursor": following,
        }
        answer["next_step"] = (
            f"list_hits(probe_id='{probe_id}', cursor='{following}') for the next page; "
            "get_hit for one whole hit"
            if following
            else "that was the last page; get_hit shows one whole hit"
        )
        return answer

    def get_hit(self, probe_id: str, hit_id: str) -> dict[str, Any]:
        probe_id = _probe_id(probe_id)
        if not isinstance(hit_id, str) or not _ID.match(hit_id):
            raise ArgumentError("hit_id", hit_id, "a hit id from list_hits or a summary")
        cursor: str | None = None
        scanned = 0
        # The hub has no read-one-hit call yet: scan the pages (bounded) for the id.
        while scanned < 20_000:
            page, cursor = self._call(
                f"reading the hits of {probe_id}",
                self.hub.hits_page,
                probe_id,
                after=cursor,
                limit=1000,
            )
            scanned += len(page)
            for hit in page:
                if hit.get("hit_id") == hit_id:
                    return self._whole_hit(probe_id, hit)
            if cursor is None or not page:
                break
        raise ArgumentError(
            "hit_id", hit_id, f"a hit id of probe {probe_id} (list_hits shows them)"
        )

    def _whole_hit(self, probe_id: str, hit: Mapping[str, Any]) -> dict[str, Any]:
        room = self.settings.budget_chars - 2500
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

    # ------------------------------------------------------------------ comparing

    def compare_test(
        self,
        nodeid: str | None = None,
        marker: Mapping[str, Any] | None = None,
        service: str | None = None,
        wait_seconds: float = 60,
        min_hits: int | None = None,
    ) -> dict[str, Any]:
        s = self.settings
        if nodeid is None and marker is None:
            raise ArgumentError(
                "nodeid",
                None,
                "a test node id, a marker (the runtime_probe arguments), or both",
            )
        checked_nodeid = check_nodeid(nodeid, s.project_dir) if nodeid is not None else None
        checked_marker = check_marker(marker) if marker is not None else None
        wait = _number("wait_seconds", wait_seconds, low=1, high=s.compare_max_wait)
        if min_hits is not None:
            min_hits = int(_number("min_hits", min_hits, low=1, high=100_000, whole=True))
        service = _text("service", service, required=False, limit=200) or s.service
        with self._lock:
            if self.closed:
                raise RefusedError(
                    "this MCP session has ended", "start a new session of the MCP server"
                )
            running = [j for j in self.jobs.values() if j.running]
            if len(running) >= MAX_JOBS:
                raise RefusedError(
                    f"{len(running)} comparisons of this session are still running "
                    f"(at most {MAX_JOBS})",
                    "poll get_comparison_result for them first: "
                    + ", ".join(j.id for j in running),
                )
            job = CompareJob.start(
                s,
                nodeid=checked_nodeid,
                marker=checked_marker,
                service=service,
                wait=wait,
                min_hits=min_hits,
            )
            self.jobs[job.id] = job
        return {
            **job.describe(),
            "state": "running",
            "next_step": (
                f"poll get_comparison_result(job_id='{job.id}', wait_seconds=20): the run places "
                f"the probe, waits up to {wait:g} s for production hits and compares"
            ),
        }

    def comparison_result(self, job_id: str, wait_seconds: float = 0) -> dict[str, Any]:
        job = self.jobs.get(job_id) if isinstance(job_id, str) else None
        if job is None:
            raise ArgumentError(
                "job_id", job_id, "a job id returned by compare_test in this session"
            )
        wait = _number("wait_seconds", wait_seconds, low=0, high=self.settings.max_wait)
        deadline = time.monotonic() + wait
        while job.running and time.monotonic() < deadline:
            time.sleep(min(_POLL, max(0.0, deadline - time.monotonic())))
        if job.running:
            progress = [line for line in job.output_lines() if line.startswith("runtime:")]
            return {
                **job.describe(),
                "state": "running",
                "progress": progress[-1] if progress else "running the test",
                "next_step": f"poll get_comparison_result(job_id='{job.id}', wait_seconds=20)",
            }
        answer = job.result()
        answer["next_step"] = (
            "a violated verdict is a context-deficient bug: the divergence's production_state "
            "and hit ids are the state for the regression test; fix the code, then run "
            "compare_test again on the fixed code"
        )
        return answer

    # ------------------------------------------------------------------ clean-up

    def remove_probe(self, probe_id: str) -> dict[str, Any]:
        if probe_id == "all":
            with self._lock:
                ids = [p.probe_id for p in self.probes.values() if not p.removed]
            removed = [self.remove_probe(one)["probe"] for one in ids]
            return {
                "removed": removed,
                "count": len(removed),
                "next_step": "write the handoff: diagnosis, confidence, unknowns, fix proposal, "
                "and the regression test carrying the production state",
            }
        probe_id = _probe_id(probe_id)
        placed = self.probes.get(probe_id)
        if placed is None:
            raise RefusedError(
                f"probe {probe_id} was not placed by this MCP session",
                "remove only your own probes here (list_session_probes lists them); a person "
                f"can remove any probe with: python -m sensor probe rm {probe_id}",
            )
        self._call(f"removing probe {probe_id}", self.hub.remove, probe_id)
        record = self._record(probe_id)
        with self._lock:
            placed.removed = True
        return {
            "probe": {
                "probe_id": probe_id,
                "state": record.get("state"),
                "hit_count": record.get("hit_count", 0),
                "hypothesis": placed.hypothesis,
            },
            "next_step": "its evidence stays readable with get_evidence_summary and list_hits",
        }

    def session_probes(self) -> dict[str, Any]:
        now = time.time()
        with self._lock:
            placed = sorted(self.probes.values(), key=lambda p: (p.created_at, p.probe_id))
            jobs = sorted(self.jobs.values(), key=lambda j: j.started)
        rows = []
        for probe in placed[-30:]:
            row = probe.describe(now)
            try:
                record = self._record(probe.probe_id)
                row["state"] = record.get("state")
                row["hit_count"] = record.get("hit_count", 0)
            except (HubCallError, ArgumentError) as exc:
                row["state"] = f"unknown ({exc})"
            rows.append(row)
        answer: dict[str, Any] = {
            "session": self.session,
            "probes": rows,
            "comparisons": [
                {**job.describe(), "state": "running" if job.running else "finished"}
                for job in jobs[-10:]
            ],
            "limits": {
                "active_probes": self.settings.max_probes,
                "max_ttl_seconds": self.settings.max_ttl,
                "max_hits": self.settings.max_max_hits,
            },
            "at_session_end": "every probe still active is removed, every running comparison "
            "is stopped",
        }
        if len(placed) > 30:
            answer["probes_not_shown"] = len(placed) - 30
        return answer

    def close(self) -> list[str]:
        """Remove every active probe and stop every run of this session; say what happened."""
        with self._lock:
            if self.closed:
                return []
            self.closed = True
            probes = [p for p in self.probes.values() if not p.removed]
            jobs = list(self.jobs.values())
        notes: list[str] = []
        for job in jobs:
            job.close()
        now = time.time()
        for probe in probes:
            if probe.expires_at <= now:
                continue  # ended by its TTL already
            try:
                self.hub.remove(probe.probe_id)
                probe.removed = True
                notes.append(f"removed probe {probe.probe_id} ({probe.location})")
            except Exception as exc:  # keep removing the others; the TTL ends this one
                notes.append(f"could not remove probe {probe.probe_id}: {exc}")
        if self._hub is not None:
            self._hub.close()
        return notes
