"""The plugin's work, with no hooks: arm probes around tests, fetch evidence, produce verdicts.

``plugin.py`` calls into :class:`RuntimeSession`; the session calls the sensor engine (test
time), the hub or evidence files (production), and ``pytest_runtime.compare`` /
``pytest_runtime.reporting`` for the verdicts and reports.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, cast

import pytest

from pytest_runtime.errors import RuntimeProbeError
from pytest_runtime.evidence import Evidence
from pytest_runtime.markers import ProbeRequest, requests_for_item
from pytest_runtime.options import RuntimeOptions

if TYPE_CHECKING:
    from pytest_runtime.compare import ProbeResult
    from sensor.probes import Hit, Probe, ProbeStatus

__all__ = [
    "TEST_MAX_HITS",
    "ArmedProbe",
    "RuntimeSession",
    "TestRecord",
    "close_test_engine",
    "function_id",
    "render_value",
    "testtime_engine",
]

#: Test-time hits kept per probe and test; more are counted, not stored (bounded memory).
TEST_MAX_HITS = 10_000
WORKEROUTPUT_KEY = "pytest_runtime"
_POLL_SECONDS = 1.0
_TTL_MARGIN = 120.0  # placed probes expire on the hub even if this process dies
_QUIET_AFTER = 5.0  # seconds before the progress line says no call reached a location


@dataclasses.dataclass
class ArmedProbe:
    """One probe armed in-process for one test, and the test-time hits it collected."""

    request: ProbeRequest
    local: Probe  #: the copy armed at test time (own id, no rate limit)
    hits: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    dropped: int = 0
    status: ProbeStatus | None = None
    armed: bool = False
    checked: bool = False
    #: names the expectation reads that the marker does not capture (shown on a violation only)
    extra: tuple[str, ...] = ()
    extra_values: dict[int, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def on_hit(self, hit: Hit) -> None:
        # Runs on the thread that fired the probe; list.append is atomic, and the cap keeps
        # a test that calls the function a million times from eating memory.
        if len(self.hits) >= TEST_MAX_HITS:
            self.dropped += 1
            return
        data = hit.to_dict()
        data["signature"] = self.request.signature
        if self.extra and isinstance(data.get("captures"), dict):
            # Extra captures stay out of the test-time state: production does not have them.
            captures = dict(data["captures"])
            values = {name: captures.pop(name) for name in self.extra if name in captures}
            data["captures"] = captures
            expect = data.get("expect")
            if values and isinstance(expect, dict) and expect.get("ok") is not True:
                self.extra_values[len(self.hits)] = values
        self.hits.append(data)


@dataclasses.dataclass
class TestRecord:
    """What one test contributed: its probes and their test-time hits (plain data for xdist)."""

    __test__ = False  # not a test class, whatever pytest's python_classes says

    nodeid: str
    file: str
    line: int
    requests: list[ProbeRequest]
    hits: dict[str, list[dict[str, Any]]]  #: signature -> test-time hit dicts
    outcome: str = "passed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "file": self.file,
            "line": self.line,
            "requests": [r.to_dict() for r in self.requests],
            "hits": self.hits,
            "outcome": self.outcome,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TestRecord:
        return cls(
            nodeid=data["nodeid"],
            file=data["file"],
            line=int(data["line"]),
            requests=[ProbeRequest.from_dict(r) for r in data["requests"]],
            hits={k: list(v) for k, v in data["hits"].items()},
            outcome=data.get("outcome", "passed"),
        )


def function_id(nodeid: str) -> str:
    """The node id without its parametrization: ``t.py::test_f[1-a]`` -> ``t.py::test_f``.

    The parameter sets of one test function are one test author's assertion over several
    states, so their test-time states are compared together, as one test: one verdict, and a
    state coverage that counts every case (per case, each would cover one state only).
    """
    head, sep, last = nodeid.rpartition("::")
    return head + sep + last.split("[", 1)[0]


def render_value(value: Any, limit: int = 120) -> str:
    """A short, readable form of a typed-JSON value (docs/reference/encoding.md) for messages."""
    if isinstance(value, dict) and "@t" in value:
        type_name = str(value["@t"]).rsplit(".", 1)[-1]
        if "@redacted" in value:
            text = f"<{type_name} redacted: {value['@redacted']}>"
        elif "v" in value and not isinstance(value["v"], list | dict):
            text = f"{type_name}({value['v']!r})"
        elif "v" in value:
            text = f"{type_name}({json.dumps(value['v'], sort_keys=True, default=str)})"
        elif "@attrs" in value:
            text = f"{type_name}({json.dumps(value['@attrs'], sort_keys=True, default=str)})"
        else:
            text = json.dumps(value, sort_keys=True, default=str)
    elif isinstance(value, str):
        text = repr(value)
    else:
        text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _violations(armed: ArmedProbe) -> str | None:
    """The failure message for test-time hits that broke the expectation, or None."""
    bad = [
        hit
        for hit in armed.hits
        if isinstance(hit.get("expect"), dict) and hit["expect"].get("ok") is not True
    ]
    if not bad:
        return None
    probe = armed.request.probe
    false = sum(1 for hit in bad if hit["expect"].get("ok") is False)
    errors = len(bad) - false
    parts = []
    if false:
        parts.append(f"false on {false}")
    if errors:
        parts.append(f"not evaluable on {errors}")
    lines = [
        f"runtime_probe {probe.location}: expect {probe.expect!r} was "
        f"{' and '.join(parts)} of {len(armed.hits)} test-time hit(s)"
    ]
    index = {id(hit): n for n, hit in enumerate(armed.hits)}
    for hit in bad[:5]:
        captures = dict(hit.get("captures") or {})
        captures.update(armed.extra_values.get(index[id(hit)], {}))
        values = ", ".join(f"{k}={render_value(v)}" for k, v in captures.items())
        error = hit["expect"].get("error")
        where = f" line {hit['line']}" if hit.get("line") else ""
        lines.append(f"  hit{where}: {values or '(nothing captured)'}")
        if error:
            lines.append(f"    error: {error}")
    if len(bad) > 5:
        lines.append(f"  ... and {len(bad) - 5} more")
    return "\n".join(lines)


_engine: Any = None


def testtime_engine() -> Any:
    """The engine that arms test-time probes (one per process, created on first use).

    Not :func:`sensor.engine.get_engine`: the process engine carries the production CPU budget
    (1% of a CPU), which disabled a probe on its first test-time hit (lazy imports made that
    hit cost 14 ms). Test time must see every state, so this engine has no CPU budget; the
    capture limits still bound each hit, and TEST_MAX_HITS bounds the count.
    """
    global _engine
    if _engine is None:
        from sensor.engine import Engine

        _engine = Engine(cpu_budget=1.0, sink_size=0)
    return _engine


def close_test_engine() -> None:
    """Remove every test-time probe and restore all code (end of the session)."""
    global _engine
    if _engine is not None:
        engine, _engine = _engine, None
        engine.close()


def _expect_names(probe: Probe) -> tuple[str, ...]:
    """Names the expectation reads that are not captured (``result``, other locals)."""
    if probe.expect is None:
        return ()
    try:
        from sensor.expressions import compile as compile_expression

        names = compile_expression(probe.expect).names
    except Exception:  # refused expressions are reported by the engine's status
        return ()
    captured = {spec.name for spec in probe.capture}
    return tuple(sorted(name for name in names if name not in captured))


def _test_probe(probe: Probe, extra: tuple[str, ...]) -> Probe:
    """The test-time copy: own id, every hit kept (no rate limit), bounded, extra captures."""
    from sensor.probes import CaptureSpec, ProbeLimits

    limits = ProbeLimits(
        rate=1e9, burst=10**9, max_hits=TEST_MAX_HITS * 10, capture=probe.limits.capture
    )
    capture = probe.capture
    if extra and capture:  # an empty capture already takes every local
        capture = capture + tuple(CaptureSpec(name, name) for name in extra)
    return probe.with_changes(id=f"test-{uuid.uuid4().hex[:20]}", limits=limits, capture=capture)


def _production_probe(probe: Probe) -> Probe:
    return probe.with_changes(id=uuid.uuid4().hex, created_at=time.time())


def apply_serializers(
    hits: Iterable[Mapping[str, Any]], serializers: Mapping[str, Callable[[dict[str, Any]], Any]]
) -> list[dict[str, Any]]:
    """Hits whose encoded values of the given type names are replaced by the serializer's output."""
    if not serializers:
        return [dict(hit) for hit in hits]

    def walk(value: Any, depth: int) -> Any:
        if depth > 64:  # encoded values are depth-bounded; this is only a guard
            return value
        if isinstance(value, dict):
            type_name = value.get("@t")
            if isinstance(type_name, str) and type_name in serializers:
                try:
                    return serializers[type_name](value)
                except Exception as exc:
                    return {"@t": type_name, "@error": f"serializer failed: {exc!r:.80}"}
            return {k: walk(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, depth + 1) for v in value]
        return value

    out = []
    for hit in hits:
        copy = dict(hit)
        if isinstance(copy.get("captures"), dict):
            copy["captures"] = walk(copy["captures"], 0)
        out.append(copy)
    return out


class RuntimeSession:
    """State of one pytest run: armed probes, test records, evidence and results."""

    def __init__(self, config: pytest.Config, options: RuntimeOptions) -> None:
        self.config = config
        self.options = options
        self.records: list[TestRecord] = []
        self.results: list[ProbeResult] = []
        self.notes: list[str] = []  #: shown in the terminal summary
        self.file_evidence: Evidence | None = None
        self.evidence: Evidence | None = None  #: the production evidence compared
        self.failing: list[ProbeResult] = []  #: results that fail the run
        self.accepted: list[ProbeResult] = []  #: would fail, but the baseline accepts them
        self.compared = False
        self.is_worker = hasattr(config, "workerinput")
        self._armed: dict[str, list[ArmedProbe]] = {}

    # ---------------------------------------------------------------- set-up

    def load_evidence_files(self) -> None:
        """Read ``--runtime-evidence`` now, so a corrupt file stops the run before any test."""
        if self.options.evidence and not self.is_worker:
            from pytest_runtime.evidence import read

            self.file_evidence = read(self.options.evidence)
            self.notes.extend(self.file_evidence.notes)
            self.notes.extend(self.file_evidence.cap_notes())

    def check_hub(self) -> None:
        """Ask the hub once at start: reachable, and the token has the client scope."""
        if self.options.probe and not self.is_worker:
            client = self._client()
            try:
                client.check()
            finally:
                client.close()

    def _client(self) -> Any:
        from pytest_runtime.hub import HubClient

        assert self.options.hub is not None
        return HubClient(self.options.hub, self.options.token)

    # ---------------------------------------------------------------- test time

    def armed_for(self, item: pytest.Item) -> list[ArmedProbe]:
        return self._armed.setdefault(item.nodeid, [])

    def arm(self, item: pytest.Item, request: ProbeRequest) -> ArmedProbe:
        """Arm one probe in-process for this test; a probe that cannot be armed fails the test."""
        try:
            engine = testtime_engine()
        except ImportError as exc:
            raise RuntimeProbeError(
                f"runtime_probe {request.location}: the sensor engine is not available ({exc})"
            ) from exc
        extra = _expect_names(request.probe)
        armed = ArmedProbe(request, _test_probe(request.probe, extra), extra=extra)
        self.armed_for(item).append(armed)
        status = engine.install(armed.local, on_hit=armed.on_hit)
        armed.status = status
        armed.armed = True
        if str(status.state) == "error":
            pytest.fail(
                f"runtime_probe {request.location}: the probe could not be armed: {status.reason}",
                pytrace=False,
            )
        item.user_properties.append(("runtime_probe", request.location))
        return armed

    def arm_markers(self, item: pytest.Item) -> None:
        for request in requests_for_item(item):
            self.arm(item, request)

    def disarm(self, armed: ArmedProbe) -> None:
        if not armed.armed:
            return
        engine = testtime_engine()
        status = engine.status(armed.local.id)
        if status is not None:
            armed.status = status
        engine.remove(armed.local.id)
        armed.armed = False

    def check(self, armed: ArmedProbe) -> str | None:
        """Disarm, then return the test-time violation message (once per armed probe)."""
        self.disarm(armed)
        if armed.checked:
            return None
        armed.checked = True
        return _violations(armed)

    def end_test(self, item: pytest.Item, *, outcome: str) -> str | None:
        """Disarm the test's probes, keep its record, return any unchecked violation message."""
        armed_list = self._armed.pop(item.nodeid, [])
        messages = [m for m in (self.check(a) for a in armed_list) if m]
        if armed_list:
            path, lineno, _ = item.location
            hits: dict[str, list[dict[str, Any]]] = {}
            requests: list[ProbeRequest] = []
            seen: set[str] = set()
            for armed in armed_list:
                hits.setdefault(armed.request.signature, []).extend(armed.hits)
                if armed.request.signature not in seen:
                    seen.add(armed.request.signature)
                    requests.append(armed.request)
                if armed.dropped:
                    item.add_report_section(
                        "call",
                        "runtime",
                        f"runtime_probe {armed.request.location}: kept {TEST_MAX_HITS} "
                        f"test-time hits, {armed.dropped} more were counted and dropped",
                    )
            self.add_record(
                TestRecord(
                    function_id(item.nodeid), path, (lineno or 0) + 1, requests, hits, outcome
                )
            )
        return "\n\n".join(messages) if messages else None

    # ---------------------------------------------------------------- xdist

    def worker_output(self) -> dict[str, Any]:
        return {"records": [record.to_dict() for record in self.records]}

    def merge_worker_output(self, data: Mapping[str, Any]) -> None:
        for raw in data.get("records", ()):
            self.add_record(TestRecord.from_dict(raw))

    def add_record(self, record: TestRecord) -> None:
        """Keep one record per test function: parameter sets and reruns add their states."""
        for old in self.records:
            if old.nodeid == record.nodeid:
                known = {r.signature for r in old.requests}
                old.requests.extend(r for r in record.requests if r.signature not in known)
                for signature, hits in record.hits.items():
                    old.hits.setdefault(signature, []).extend(hits)
                if record.outcome == "failed":
                    old.outcome = "failed"
                return
        self.records.append(record)

    # ---------------------------------------------------------------- production

    def _groups(self) -> dict[tuple[str, str], tuple[ProbeRequest, dict[str, Any]]]:
        """One entry per (signature, selector): what to place on the hub once."""
        groups: dict[tuple[str, str], tuple[ProbeRequest, dict[str, Any]]] = {}
        for record in self.records:
            for request in record.requests:
                selector = request.settings.selector(self.options.service)
                key = (request.signature, json.dumps(selector, sort_keys=True))
                groups.setdefault(key, (request, selector))
        return dict(sorted(groups.items()))

    def _min_hits(self, request: ProbeRequest) -> int:
        return request.settings.min_hits or self.options.min_hits

    def _wanted(self, request: ProbeRequest) -> int:
        """Production hits to wait for: the minimum for a verdict, and enough for the bound."""
        from pytest_runtime.compare.counters import hits_needed

        return max(self._min_hits(request), hits_needed(self.options.rarer_than))

    def fetch_from_hub(self, progress: Callable[[str], None]) -> Evidence:
        """Place (or reuse) each probe once, wait for hits, fetch evidence, remove ours.

        The wait for a probe ends when it has enough hits, when no source can produce more
        (disabled or in error everywhere: its verdict says why), or when the wait is over.
        The sensors' statuses (counters, states) are read on every poll and kept with the
        evidence, so that the verdicts report rates from the counters.
        """
        from pytest_runtime.errors import HubClientError

        options = self.options
        groups = self._groups()
        client = self._client()
        placed: list[str] = []
        watches: dict[str, _Watch] = {}
        waits: list[float] = [options.wait]
        try:
            for (signature, _), (request, selector) in groups.items():
                watch = watches.get(signature)
                if watch is None:
                    watch = watches[signature] = _Watch(request.location, 0)
                watch.wanted = max(watch.wanted, self._wanted(request))
                if request.settings.wait is not None:
                    waits.append(request.settings.wait)
                # A standing probe (placed by a person, an agent or another run) is reused when
                # it has hits in the window: its evidence is ours, and placing a twin would
                # only double the work in production.
                standing = [
                    str(record["id"])
                    for record in client.find_probes(signature, state="active")
                    if client.hits(str(record["id"]), since=options.since, limit=1)
                ]
                if standing:
                    self.notes.append(
                        f"reused standing probe(s) {', '.join(standing)} for {request.location}"
                    )
                    watch.ids.extend(standing)
                    continue
                live = client.sources(
                    service=selector.get("service"), labels=selector.get("labels")
                )
                if not live:
                    self.notes.append(
                        f"no live source matches {json.dumps(selector, sort_keys=True)} for "
                        f"{request.location}: its verdict will be inconclusive"
                    )
                watch.sources.update(str(source.get("id")) for source in live)
                wait = request.settings.wait if request.settings.wait is not None else options.wait
                record = client.place(
                    _production_probe(request.probe).to_dict(), selector, ttl=wait + _TTL_MARGIN
                )
                placed.append(str(record["id"]))
                watch.ids.append(str(record["id"]))
            deadline = time.monotonic() + max(waits)
            last_line = ""
            last_time = 0.0
            while True:
                sources: set[str] = set()
                for watch in watches.values():
                    watch.poll(client, options.since, sources)
                left = deadline - time.monotonic()
                line = _progress_line(watches, sources, left)
                now = time.monotonic()
                # Printed when anything but the seconds left changed, or every 5 s.
                key = re.sub(r", \d+s left|\(\d+s ago\)", "", line)
                if key != last_line or now - last_time > 5:
                    progress(line)
                    last_line, last_time = key, now
                if all(w.done for w in watches.values()) or left <= 0:
                    break
                time.sleep(min(_POLL_SECONDS, max(0.05, left)))
            evidence = Evidence()
            reported_at = time.time()
            for signature, watch in sorted(watches.items()):
                if not watch.collecting and watch.count < watch.wanted:
                    self.notes.append(
                        f"{watch.location}: stopped waiting after {watch.count} hit(s): the "
                        f"probe cannot collect more: {watch.states}"
                    )
                for probe_id in watch.ids:
                    # Read once more: a source's last heartbeat may have come after the poll.
                    watch.records[probe_id] = client.probe(probe_id)
                for probe_id, record in sorted(watch.records.items()):
                    self.notes.extend(_status_notes(watch.location, record))
                    for source_id, status in sorted(_effective_statuses(record).items()):
                        if source_id:
                            evidence.add_status(
                                _status_record(
                                    signature, probe_id, source_id, status, record, reported_at
                                )
                            )
            for signature in watches:
                evidence.merge(client.evidence(signature, since=options.since))
            self.notes.extend(evidence.notes)
            self.notes.extend(evidence.cap_notes())
            return evidence
        except BaseException:
            # Ctrl-C can land inside the HTTP client's connection pool and leave it locked, so
            # the clean-up below talks to the hub through a client of its own.
            client = self._client()
            raise
        finally:
            # Also on Ctrl-C and errors: a placed probe must not outlive the run (the TTL is
            # the second line of defence if this process is killed).
            for probe_id in placed:
                try:
                    client.remove(probe_id)
                except HubClientError as exc:
                    self.notes.append(f"could not remove probe {probe_id} from the hub: {exc}")
            client.close()

    def production_evidence(self, progress: Callable[[str], None]) -> Evidence | None:
        if self.file_evidence is not None:
            return self.file_evidence
        if self.options.probe:
            evidence = self.fetch_from_hub(progress)
            if self.options.record:
                from pytest_runtime.evidence import write

                written = write(self.options.record, evidence, generator="pytest-runtime record")
                self.notes.append(f"recorded {written} hit(s) to {self.options.record}")
            return evidence
        return None

    # ---------------------------------------------------------------- verdicts

    def compare_all(self, progress: Callable[[str], None]) -> None:
        """Compare every (test, probe) with production evidence and decide which fail."""
        if self.compared or self.is_worker:
            return
        self.compared = True
        if not self.records or not self.options.wants_production:
            return
        evidence = self.production_evidence(progress)
        if evidence is None:
            return
        self.evidence = evidence
        from pytest_runtime.compare import CompareSettings, ProbeResult, compare

        hook = self.config.hook
        serializers: dict[str, Callable[[dict[str, Any]], Any]] = {}
        for mapping in hook.pytest_runtime_serializers(config=self.config):
            for name, function in (mapping or {}).items():
                serializers.setdefault(name, function)
        noise: list[Any] = []
        for rules in hook.pytest_runtime_noise_rules(config=self.config):
            noise.extend(rules or ())

        # Recorded evidence is usually older than the hub default window: filter it by time
        # only when the user asked for a window.
        since: float | None = self.options.since
        if self.file_evidence is not None and not self.options.since_given:
            since = None
        prod_cache: dict[str, list[dict[str, Any]]] = {}
        results = []
        for record in sorted(self.records, key=lambda r: r.nodeid):
            for request in sorted(record.requests, key=lambda r: r.location):
                signature = request.signature
                if signature not in prod_cache:
                    prod_cache[signature] = apply_serializers(
                        evidence.hits_for(signature, since=since), serializers
                    )
                test_hits = apply_serializers(record.hits.get(signature, ()), serializers)
                strict = (
                    request.settings.strict
                    if request.settings.strict is not None
                    else self.options.strict
                )
                settings = CompareSettings(
                    ignore=tuple(request.settings.ignore),
                    min_hits=self._min_hits(request),
                    strict=strict,
                    noise_rules=tuple(noise),
                    raises=tuple(request.settings.raises),
                    # A live run waits for the bound, so it says whether it was reached; a
                    # replay of recorded evidence says so only when asked (it cannot wait).
                    rarer_than=(
                        self.options.rarer_than
                        if self.options.probe or self.options.rarer_than_given
                        else None
                    ),
                )
                verdict = compare(
                    test_hits,
                    prod_cache[signature],
                    probe=request.probe,
                    settings=settings,
                    statuses=evidence.statuses_for(signature),
                )
                results.append(
                    ProbeResult(
                        nodeid=record.nodeid,
                        test_file=record.file,
                        test_line=record.line,
                        location=request.location,
                        signature=signature,
                        verdict=verdict,
                    )
                )
        self.results = results
        self.failing = [r for r in results if r.verdict.fails]
        self._apply_baseline()
        for result in results:
            hook.pytest_runtime_verdict(config=self.config, result=result)

    def _apply_baseline(self) -> None:
        path = self.options.baseline
        if not path:
            return
        from pathlib import Path

        from pytest_runtime import baseline

        if self.options.write_baseline:
            baseline.write(path, self.results)
            self.notes.append(f"wrote the baseline {path} ({len(self.results)} result(s))")
            self.accepted, self.failing = self.failing, []
            return
        if not Path(path).exists():
            self.notes.append(f"no baseline at {path}: every divergence counts")
            return
        fresh = baseline.new_divergences(self.results, baseline.load(path))
        fresh_keys = {_result_key(item) for item in fresh}
        self.accepted = [r for r in self.failing if _result_key(r) not in fresh_keys]
        self.failing = [r for r in self.failing if _result_key(r) in fresh_keys]
        if self.accepted:
            self.notes.append(
                f"{len(self.accepted)} failing verdict(s) accepted by the baseline {path}"
            )

    # ---------------------------------------------------------------- reports

    def write_reports(self) -> None:
        if self.is_worker:
            return
        if self.options.report_json:
            from pytest_runtime.reporting import jsonreport

            jsonreport.write(self.options.report_json, self.results)
        self._junit_properties()

    def _junit_properties(self) -> None:
        # Per-test properties are written when each test ends, before any verdict exists, so
        # verdicts go into the test suite's properties (these also work under xdist).
        from _pytest.junitxml import xml_key

        xml = self.config.stash.get(xml_key, None)
        if xml is None:
            return
        from pytest_runtime.reporting import junit

        for result in self.results:
            for name, value in junit.properties(result):
                xml.add_global_property(f"{result.nodeid}::{name}", value)

    def github_output(self) -> tuple[list[str], str | None]:
        """Workflow commands and the job summary markdown, when running on GitHub Actions."""
        from pytest_runtime.reporting import github

        # cast: the module's `annotations` function shadows the __future__ feature for mypy
        gh = cast(Any, github)
        return list(gh.annotations(self.results)), gh.job_summary(self.results)


@dataclasses.dataclass
class _Watch:
    """What the wait knows of one probe signature: its hub probes, hits and sources' states."""

    location: str
    wanted: int
    ids: list[str] = dataclasses.field(default_factory=list)
    sources: set[str] = dataclasses.field(default_factory=set)  #: live at placement
    records: dict[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    count: int = 0
    collecting: bool = True
    states: str = ""
    calls: int | None = None  #: calls counted since placement (None: no counters yet)
    installed: int = 0
    placed_at: float | None = None
    started: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def done(self) -> bool:
        return self.count >= self.wanted or not self.collecting

    def poll(self, client: Any, since: float, sources: set[str]) -> None:
        """Read hits (up to the number wanted) and the probe records (statuses) once."""
        from pytest_runtime.compare.counters import collection_state, firings

        total = 0
        statuses: list[Mapping[str, Any]] = []
        reported: set[str] = set()
        active = False
        for probe_id in self.ids:
            hits = client.hits(probe_id, since=since, limit=self.wanted)
            total += len(hits)
            for hit in hits:
                source = hit.get("source") or {}
                if isinstance(source, Mapping) and source.get("id"):
                    sources.add(str(source["id"]))
            record = client.probe(probe_id)
            self.records[probe_id] = record
            if record.get("created_at") is not None:
                created = float(record["created_at"])
                self.placed_at = created if self.placed_at is None else min(self.placed_at, created)
            effective = _effective_statuses(record)
            reported.update(effective)
            statuses.extend(effective.values())
            active = active or str(record.get("state") or "active") == "active"
        self.count = total
        # Sources live at placement that have not reported yet may still install the probe,
        # unless the hub ended every probe of the signature.
        waiting = len(self.sources - reported) if active else 0
        self.collecting, self.states = collection_state(statuses, waiting)
        self.installed = sum(1 for s in statuses if s.get("state") == "installed")
        self.calls = sum(firings(s) for s in statuses) if statuses else None


def _effective_statuses(record: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The sources' statuses of a hub probe record, as far as collecting goes.

    A probe the hub ended (it reached its ``max_hits``, its TTL expired, someone removed it)
    collects nothing more, whatever its sources last reported: each status then reads
    ``removed`` with the hub's reason (the counters stay as the sources sent them).
    """
    ended = str(record.get("state") or "active")
    raw = record.get("statuses") or {}
    statuses = {
        str(k): v
        for k, v in (raw.items() if isinstance(raw, Mapping) else ())
        if isinstance(v, Mapping)
    }
    if ended == "active":
        return statuses
    if ended == "completed":
        limits = (record.get("probe") or {}).get("limits") or {}
        reason = f"the hub ended the probe: it reached max_hits ({limits.get('max_hits')})"
    elif ended == "expired":
        reason = "the hub ended the probe: its time to live expired"
    else:
        reason = f"the hub ended the probe ({ended})"
    if not statuses:
        return {"": {"state": "removed", "reason": reason}}
    return {k: {**v, "state": "removed", "reason": reason} for k, v in statuses.items()}


def _progress_line(watches: Mapping[str, _Watch], sources: set[str], left: float) -> str:
    """``runtime: waiting for production hits: 1/3 probes complete, ...`` plus what is wrong."""
    done = sum(1 for w in watches.values() if w.done)
    line = (
        f"runtime: waiting for production hits: {done}/{len(watches)} probes "
        f"complete, {len(sources)} source(s), "
        f"hits {sum(min(w.count, w.wanted) for w in watches.values())}/"
        f"{sum(w.wanted for w in watches.values())}, {max(0, left):.0f}s left"
    )
    # "No call reached it": the sources installed the probe and count no firing at all, no
    # hit came, and a few seconds passed (a status sent just after installing counts zero).
    now = time.monotonic()
    quiet = sorted(
        w.location
        for w in watches.values()
        if not w.done
        and w.installed
        and w.calls == 0
        and w.count == 0
        and now - w.started >= _QUIET_AFTER
    )
    if quiet:
        ago = max(now - w.started for w in watches.values())
        line += (
            f"; no call reached {', '.join(quiet[:3])}"
            f"{f' and {len(quiet) - 3} more' if len(quiet) > 3 else ''} since placement "
            f"({ago:.0f}s ago)"
        )
    stopped = sorted(w.location for w in watches.values() if not w.collecting)
    if stopped:
        line += f"; cannot collect more: {', '.join(stopped[:3])}"
    return line


def _status_record(
    signature: str,
    probe_id: str,
    source_id: str,
    status: Mapping[str, Any],
    record: Mapping[str, Any],
    reported_at: float,
) -> dict[str, Any]:
    from pytest_runtime.compare.counters import status_record

    created = record.get("created_at")
    return status_record(
        signature=signature,
        probe_id=probe_id,
        source_id=source_id,
        status=status,
        placed_at=float(created) if isinstance(created, int | float) else None,
        reported_at=reported_at,
    )


def _status_notes(location: str, record: Mapping[str, Any]) -> list[str]:
    """Why a production probe saw fewer hits than it could: the sensors' own statuses.

    A probe that is in error (target not found, source mismatch, denied) or was disabled by a
    guard (CPU budget, max hits, expiry) on some sources explains an ``inconclusive`` verdict
    better than the hit count alone; the reasons are grouped so that a fleet stays one line.
    """
    statuses = record.get("statuses") or {}
    if not isinstance(statuses, Mapping):
        return []
    # Group by the reason with its figures blanked, so a fleet stays a line or two; show the
    # first concrete reason of each group.
    groups: dict[tuple[str, str], tuple[int, str]] = {}
    for status in statuses.values():
        if not isinstance(status, Mapping):
            continue
        state = str(status.get("state", ""))
        if state in ("error", "disabled", "pending"):
            reason = str(status.get("reason") or "no reason given")
            key = (state, re.sub(r"\d+(?:\.\d+)?", "#", reason))
            count, example = groups.get(key, (0, reason))
            groups[key] = (count + 1, example)
    # A source that disabled the probe had imported the module: a source still pending on
    # that import is one that never imports it (a pre-fork master), not a wrong module name.
    imported = sum(
        1
        for s in statuses.values()
        if isinstance(s, Mapping) and s.get("state") in ("installed", "disabled")
    )
    notes = []
    for (state, _), (count, example) in sorted(groups.items()):
        note = f"{location}: {state} on {count} of {len(statuses)} source(s): {example}"
        if state == "pending" and example.startswith("waiting for module"):
            # A pre-fork master (gunicorn without --preload) never imports the application:
            # its pending state is expected once the workers have the probe.
            note += (
                " (expected in a process that never imports it, such as a pre-fork server's master)"
                if imported
                else " (no source has imported it yet: check the module name of the location)"
            )
        notes.append(note)
    return notes


def _result_key(item: Any) -> tuple[str, str]:
    """(node id, location) of a ProbeResult, or of whatever ``new_divergences`` returns."""
    if isinstance(item, tuple) and item and not isinstance(item[0], str):
        item = item[0]
    if isinstance(item, Mapping):
        return str(item.get("nodeid")), str(item.get("location"))
    return str(getattr(item, "nodeid", "")), str(getattr(item, "location", ""))
