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

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from pytest_runtime.mcp import arguments as check
from pytest_runtime.mcp.comparejob import CompareJob, check_marker, check_nodeid
from pytest_runtime.mcp.errors import ArgumentError, HubCallError, RefusedError
from pytest_runtime.mcp.hubport import HubPort
from pytest_runtime.mcp.hypotheses import evaluations, hypothesis_counts
from pytest_runtime.mcp.probes import (
    AGGREGATE_DEFAULT_MAX_HITS,
    AGGREGATE_MAX_MAX_HITS,
    AGGREGATED,
    HYPOTHESIS_RATE,
    KINDS,
    Placed,
    build_probe,
)
from pytest_runtime.mcp.settings import ServerSettings
from pytest_runtime.mcp.status import matches, probe_status, source_row, why
from pytest_runtime.mcp.summary import hit_row, summarize, whole_hit

__all__ = ["Investigation"]

T = TypeVar("T")

MAX_JOBS = 2  #: compare_test runs of one session running at once
_POLL = 0.5  #: seconds between hub reads while a tool waits


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
                    from pytest_runtime.mcp.hubport import hub_client

                    s = self.settings
                    self._hub = hub_client(s.hub, s.token, timeout=s.timeout)
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
                f"{what}: {exc}. Give the MCP server a client token in SENSOR_CLIENT_TOKEN"
            ) from exc
        except HubRequestError as exc:
            if exc.status == 404 and exc.code == "unknown_hit" and len(args) > 1:
                raise ArgumentError(
                    "hit_id", args[1], f"a hit id of probe {args[0]} (list_hits shows them)"
                ) from exc
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
        service = check.text("service", service, required=False, limit=200)
        wanted = check.labels(labels)
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
        rows = [source_row(source, now) for source in sources[:30]]
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
        service = check.text("service", service, required=False, limit=200) or self.settings.service
        if service:
            selector["service"] = service
        wanted = check.labels(labels)
        if wanted:
            selector["labels"] = wanted
        if source_id is not None:
            selector["source_id"] = check.probe_id(source_id, "source_id")
        return selector

    def _live_matching(self, selector: Mapping[str, Any]) -> list[dict[str, Any]]:
        sources = self._call(
            "listing sources",
            self.hub.sources,
            service=selector.get("service"),
            labels=selector.get("labels"),
            state="live",
        )
        return [s for s in sources if matches(s, selector)]

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
        ttl = check.number("ttl_seconds", ttl, low=s.min_ttl, high=s.max_ttl)
        probe_id = f"mcp-{self.session}-{uuid.uuid4().hex[:10]}"
        tags = {
            "placed_by": "pytest-runtime-mcp",
            "mcp_session": self.session,
            "hypothesis": hypothesis[:200],
        }
        probe = build_probe({**fields, "id": probe_id, "tags": tags}, names)
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
        location = check.text("location", location, required=True, limit=500) or ""
        hypothesis = check.text("hypothesis", hypothesis, required=True, limit=500) or ""
        if kind not in KINDS:
            raise ArgumentError("kind", kind, "one of " + ", ".join(KINDS))
        captured = check.captures(capture)
        if kind in AGGREGATED:
            if captured:
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
        cap = int(check.number("max_hits", cap, low=1, high=top, whole=True))
        limits: dict[str, Any] = {"max_hits": cap}
        if rate is not None:
            limits["rate"] = check.number("rate", rate, low=0.001, high=s.max_rate)
        fields = {
            "kind": kind,
            "location": location,
            "capture": captured,
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
        location = check.text("location", location, required=True, limit=500) or ""
        expression = check.text("expression", expression, required=True, limit=1000) or ""
        hypothesis = check.text("hypothesis", hypothesis, required=True, limit=500) or ""
        captured = check.captures(capture)
        cap = s.hypothesis_max_hits if max_hits is None else max_hits
        cap = int(check.number("max_hits", cap, low=1, high=s.max_max_hits, whole=True))
        fields = {
            "kind": "snapshot",
            "location": location,
            "capture": captured,
            "condition": condition,
            "expect": expression,
            "limits": {
                "max_hits": cap,
                "rate": HYPOTHESIS_RATE,
                "violation_rate": HYPOTHESIS_RATE,
            },
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
        if live is None:
            live = self._live_matching(record.get("selector") or {})
        return probe_status(record, live, placed)

    def _record(self, probe_id: str) -> dict[str, Any]:
        return self._call(f"reading probe {probe_id}", self.hub.probe, probe_id)

    def _wait(
        self, probe_id: str, wait_seconds: float, changed: Callable[[Mapping[str, Any]], bool]
    ) -> dict[str, Any]:
        """The probe record, after waiting up to ``wait_seconds`` for ``changed`` (never longer)."""
        wait = check.number("wait_seconds", wait_seconds, low=0, high=self.settings.max_wait)
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
        probe_id = check.probe_id(probe_id)
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
        probe_id = check.probe_id(probe_id)
        placed = self.probes.get(probe_id)
        first = self._record(probe_id)
        probe = first.get("probe") or {}
        if not probe.get("expect"):
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
        answer: dict[str, Any] = {
            "probe_id": probe_id,
            "location": probe.get("location"),
            "expression": probe.get("expect"),
            "condition": probe.get("condition"),
            "state": record.get("state"),
            **hypothesis_counts(record, self._read_hits(probe_id, 2000)),
        }
        if placed is not None:
            answer["hypothesis"] = placed.hypothesis
        if record.get("state") != "active":
            answer["ended"] = why(record, Counter(), Counter())
        if not answer["counts"]["evaluated"]:
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

    # ------------------------------------------------------------------ evidence

    def _read_hits(self, probe_id: str, most: int) -> list[dict[str, Any]]:
        hits: list[dict[str, Any]] = []
        cursor: str | None = None
        while len(hits) < most:
            answer = self._call(
                f"reading the hits of {probe_id}",
                self.hub.hits_page,
                probe_id,
                after=cursor,
                limit=min(1000, most - len(hits)),
            )
            page, cursor = answer["hits"], answer["next"]
            hits.extend(page)
            if cursor is None or not page:
                break
        return hits

    def evidence_summary(self, probe_id: str) -> dict[str, Any]:
        probe_id = check.probe_id(probe_id)
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
        probe_id = check.probe_id(probe_id)
        size = int(check.number("limit", limit, low=1, high=25, whole=True))
        if cursor is not None and (not isinstance(cursor, str) or not cursor.isdigit()):
            raise ArgumentError("cursor", cursor, "the next_cursor of a previous list_hits answer")
        read = self._call(
            f"reading the hits of {probe_id}",
            self.hub.hits_page,
            probe_id,
            after=cursor,
            limit=size,
        )
        page, following = read["hits"], read["next"]
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
        probe_id = check.probe_id(probe_id)
        hit = self._find_hit(probe_id, hit_id)
        return whole_hit(probe_id, hit, self.settings.budget_chars - 2500)

    def write_regression_test(self, probe_id: str, hit_id: str) -> dict[str, Any]:
        """A pytest test reproducing one hit (see :mod:`pytest_runtime.regression`)."""
        from pytest_runtime.regression import RegressionError, write_test

        probe_id = check.probe_id(probe_id)
        hit = self._find_hit(probe_id, hit_id)
        record = self._record(probe_id)
        probe = record.get("probe") if isinstance(record.get("probe"), Mapping) else None
        try:
            source = write_test(hit, probe)
        except RegressionError as exc:
            raise RefusedError(
                str(exc),
                "place a probe with replay=True (it records each call's arguments at entry) "
                "and use one of its hits",
            ) from exc
        name = "test_regression_" + "".join(c if c.isalnum() else "_" for c in hit_id) + ".py"
        return {
            "probe_id": probe_id,
            "hit_id": hit_id,
            "file": f"tests/{name}",
            "source": source,
            "next": f"save source as tests/{name}, run pytest tests/{name}: it fails on the code "
            "that produced the hit, and passes once the fix is in",
        }

    def _find_hit(self, probe_id: str, hit_id: str) -> dict[str, Any]:
        if not isinstance(hit_id, str) or not check.ID.match(hit_id):
            raise ArgumentError("hit_id", hit_id, "a hit id from list_hits or a summary")
        # GET /v1/probes/{id}/hits/{hit_id}: one hit by its id.
        hit = self._call(f"reading hit {hit_id} of {probe_id}", self.hub.hit, probe_id, hit_id)
        return dict(hit)

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
        wait = check.number("wait_seconds", wait_seconds, low=1, high=s.compare_max_wait)
        if min_hits is not None:
            min_hits = int(check.number("min_hits", min_hits, low=1, high=100_000, whole=True))
        service = check.text("service", service, required=False, limit=200) or s.service
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
        wait = check.number("wait_seconds", wait_seconds, low=0, high=self.settings.max_wait)
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
        probe_id = check.probe_id(probe_id)
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
