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

from pytest_runtime.errors import MarkerError, RuntimeProbeError
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
_MARKER_KEYWORD = "runtime_probe"
_POLL_SECONDS = 1.0
_TTL_MARGIN = 120.0  # placed probes expire on the hub even if this process dies
_MAX_TESTS_TAG = 200  # characters of the "tests" tag of a placed probe
_MAX_PROBE_IDS = 20  # probe ids listed per verdict
_QUIET_AFTER = 5.0  # seconds before the progress line says no call reached a location
_UNSET: Any = object()
#: The longest wait for the sensors' next counters once the hits are read: the hub's default
#: heartbeat interval (counters come with heartbeats), and never more than the run's wait.
_COUNTERS_WAIT = 10.0
_COUNTERS_POLL = 0.5


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
    #: what replaying production states showed (ReplayReport dicts, one per replay probe)
    replays: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodeid": self.nodeid,
            "file": self.file,
            "line": self.line,
            "requests": [r.to_dict() for r in self.requests],
            "hits": self.hits,
            "outcome": self.outcome,
            "replays": self.replays,
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
            replays=list(data.get("replays") or ()),
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
_ERROR_LOG: Any = None  # checks.ErrorLog on the engine's logger, while a test engine exists


def testtime_engine() -> Any:
    """The engine that arms test-time probes (one per process, created on first use).

    Not :func:`sensor.engine.get_engine`: the process engine carries the production CPU budget
    (1% of a CPU), which disabled a probe on its first test-time hit (lazy imports made that
    hit cost 14 ms). Test time must see every state, so this engine has no CPU budget; the
    capture limits still bound each hit, and TEST_MAX_HITS bounds the count.
    """
    global _engine, _ERROR_LOG
    if _engine is None:
        import logging

        from pytest_runtime.checks import ErrorLog
        from sensor.engine import Engine

        _engine = Engine(cpu_budget=1.0, sink_size=0)
        if _ERROR_LOG is None:
            _ERROR_LOG = ErrorLog()
            logging.getLogger("sensor.engine").addHandler(_ERROR_LOG)
    return _engine


def close_test_engine() -> None:
    """Remove every test-time probe and restore all code (end of the session)."""
    global _engine, _ERROR_LOG
    if _engine is not None:
        engine, _engine = _engine, None
        engine.close()
    if _ERROR_LOG is not None:
        import logging

        logging.getLogger("sensor.engine").removeHandler(_ERROR_LOG)
        _ERROR_LOG = None


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


def _production_probe(probe: Probe, *, tests: str | None = None) -> Probe:
    tags = dict(probe.tags)
    if tests:
        tags["tests"] = tests
    return probe.with_changes(id=uuid.uuid4().hex, created_at=time.time(), tags=tags)


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
        #: said once at the top of the runtime report (terminal section, JSON ``notes``)
        self.header: list[str] = []
        self.file_evidence: Evidence | None = None
        self.evidence: Evidence | None = None  #: the production evidence compared
        self.failing: list[ProbeResult] = []  #: results that fail the run
        self.accepted: list[ProbeResult] = []  #: would fail, but the baseline accepts them
        self.baseline: Any = None  #: the loaded baseline (read at start-up)
        self.compared = False
        self.is_worker = hasattr(config, "workerinput")
        #: live services of the hub at start-up (None: not asked)
        self.hub_services: list[str] | None = None
        #: the service probes without one go to (the option, or the hub's only service)
        self.default_service: str | None = options.service
        #: hub probe ids per signature: placed, reused, or seen in the evidence
        self.probe_ids: dict[str, list[str]] = {}
        #: the per-source statuses of each signature's probes, read after the wait
        self.statuses: dict[str, list[Mapping[str, Any]]] = {}
        #: signature -> why its verdict cannot come from the comparison (hub lost, ...)
        self.reasons: dict[str, str] = {}
        self.hub_error: str | None = None  #: the hub failed for good during the run
        #: signatures answered by standing probes (read at once, never waited for)
        self.standing_signatures: set[str] = set()
        #: the evidence file before this run, when a record mode adds to it (``all``)
        self.cassette_evidence: Evidence | None = None
        self._source_versions: dict[str, str] | None = None  #: source id -> version, read once
        self._armed: dict[str, list[ArmedProbe]] = {}
        #: replay: production hits per signature (read once per process), constructors
        self._replay_hits: dict[str, list[dict[str, Any]]] = {}
        self._replay_evidence: Evidence | None = None
        self._constructors: dict[str, Callable[[dict[str, Any]], Any]] | None = None
        self._replayed: set[tuple[str, str]] = set()
        #: lines probes: the plugin's own coverage.py measurement, and what the run measured
        self._own_coverage: Any = None
        self.test_lines: Any = None  #: coverage_paths.TestLines (own or from workers)
        self.coverage_origin: str | None = None
        self.gate: dict[str, Any] | None = None  #: --runtime-fail-under's outcome
        self.gate_failure: str | None = None  #: its failure line, when it failed

    # ---------------------------------------------------------------- set-up

    def load_evidence_files(self) -> None:
        """Read ``--runtime-evidence`` now, so a corrupt file stops the run before any test.

        With a record mode the file is read when the mode compares with it (``none``,
        ``once`` when it exists, ``new_episodes``) or adds to it (``all``); ``rewrite``
        replaces it unread.
        """
        options = self.options
        if not options.evidence or self.is_worker:
            return
        from pathlib import Path

        from pytest_runtime.evidence import read

        if options.reads_file and (
            options.record_mode != "new_episodes" or Path(options.evidence[0]).exists()
        ):
            self.file_evidence = read(options.evidence)
            self.notes.extend(self.file_evidence.notes)
            self.notes.extend(self.file_evidence.cap_notes())
        elif options.record_mode == "all" and Path(options.evidence[0]).exists():
            self.cassette_evidence = read(options.evidence)

    def load_baseline(self) -> None:
        """Read ``--runtime-baseline`` now, so a corrupt file stops the run before any test.

        Found only after the whole suite ran, it cost the run its JSON report; a missing file
        is not an error (every divergence counts, and the notes say so).
        """
        path = self.options.baseline
        if not path or self.options.write_baseline or self.is_worker:
            return
        from pathlib import Path

        if not Path(path).exists():
            return
        from pytest_runtime import baseline

        self.baseline = baseline.load(path)

    def check_hub(self) -> None:
        """Ask the hub once at start: reachable, the token has the client scope, which services.

        With no service named (option or ini) and one live service on the hub, probes without
        a ``service=`` go to that service, and the header says so; with several, every probe
        must name one (:meth:`service_problem`), since placing it on every source would probe
        unrelated services.
        """
        if not self.options.probe or self.is_worker:
            return
        client = self._client()
        try:
            client.health()
            sources = client.sources()
        finally:
            client.close()
        services = sorted({str(s.get("service")) for s in sources if s.get("service")})
        self.hub_services = services
        if self.options.service:
            if self.options.service not in services:
                self.header.append(
                    f"runtime: no live source of service {self.options.service!r} on the hub "
                    f"(live services: {', '.join(services) or 'none'})"
                )
        elif len(services) == 1:
            self.default_service = services[0]
            self.header.append(
                f"runtime: the hub has one live service, {services[0]!r}: probes that name no "
                "service go to its sources (--runtime-service or ini runtime_service to choose)"
            )

    def service_problem(self, request: ProbeRequest) -> str | None:
        """Why ``request`` cannot be placed: no service named while the hub has several."""
        if (
            not self.options.probe
            or request.settings.service
            or self.default_service
            or self.hub_services is None
            or len(self.hub_services) < 2
        ):
            return None
        return (
            f"runtime_probe {request.location}: no service named, and the hub has "
            f"{len(self.hub_services)} live services ({', '.join(self.hub_services)}): name one "
            "with --runtime-service, ini runtime_service or the marker's service= (placing the "
            "probe on every source would probe unrelated services)"
        )

    def check_services(self, items: Iterable[pytest.Item]) -> None:
        """Raise RuntimeProbeError before any test runs when a marker needs a service named."""
        if self.hub_services is None or len(self.hub_services) < 2 or self.default_service:
            return
        for item in items:
            if _MARKER_KEYWORD not in item.keywords:
                continue
            try:
                requests = requests_for_item(item)
            except RuntimeProbeError:
                continue  # the marker's own error is reported by collection
            for request in requests:
                problem = self.service_problem(request)
                if problem is not None:
                    raise RuntimeProbeError(f"{item.nodeid}: {problem}")

    def _client(self) -> Any:
        from pytest_runtime.hub import HubClient

        assert self.options.hub is not None
        return HubClient(
            self.options.hub, self.options.token, token_variable=self.options.token_variable
        )

    # ---------------------------------------------------------------- publishing

    def publish(self, session: pytest.Session) -> list[str]:
        """Make the hub's standing set equal to the collected markers (``--runtime-publish``).

        Refused when collection failed or deselected tests (``-k``, ``-m``): the markers of
        the tests left out would read as removed, and their probes would be retired.
        """
        from pytest_runtime import publish
        from pytest_runtime.errors import HubClientError

        if session.testsfailed:
            raise RuntimeProbeError(
                f"collection had {session.testsfailed} error(s): nothing published (the "
                "markers of a module that failed to import would read as removed)"
            )
        option = self.config.option
        narrowed = [
            flag
            for flag, given in (
                ("-k", getattr(option, "keyword", "")),
                ("-m", getattr(option, "markexpr", "")),
                ("--deselect", getattr(option, "deselect", None)),
                ("--lf", getattr(option, "lf", False)),
            )
            if given
        ]
        if narrowed:
            raise RuntimeProbeError(
                f"--runtime-publish with {', '.join(narrowed)}: publish the whole suite (the "
                "markers of deselected tests would read as removed and their probes be retired)"
            )
        if self.config.pluginmanager.has_plugin("dsession"):
            # pytest-xdist collects in its workers: this process sees no test at all
            raise RuntimeProbeError(
                "--runtime-publish with pytest-xdist (-n): the tests are collected in the "
                "workers, so this process would read no marker and retire every standing "
                "probe; publish with -n 0 or -p no:xdist"
            )
        marked: list[tuple[str, ProbeRequest]] = []
        for item in session.items:
            if _MARKER_KEYWORD in item.keywords:
                marked.extend((item.nodeid, request) for request in requests_for_item(item))
        client = self._client()
        try:
            service = self.options.service
            if service is None:
                live = sorted({str(s.get("service")) for s in client.sources() if s.get("service")})
                service = live[0] if len(live) == 1 else None
            wanted = publish.wanted_from(marked, service)
            plan = publish.plan(client, wanted, [service] if service else [])
            if not self.options.dry_run:
                publish.apply(client, plan)
        except HubClientError as exc:
            raise RuntimeProbeError(f"publishing failed: {exc}") from exc
        finally:
            client.close()
        return publish.render(plan, hub=str(self.options.hub), dry_run=self.options.dry_run)

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
        from pytest_runtime import checks

        problem_text = self.service_problem(request)
        if problem_text is not None:
            raise RuntimeProbeError(problem_text)
        # A module the test process cannot import would leave the probe pending for ever and
        # the test passing on no evidence: import it now, and fail with the import's error.
        checks.import_target(request.probe)
        extra = _expect_names(request.probe)
        armed = ArmedProbe(request, _test_probe(request.probe, extra), extra=extra)
        self.armed_for(item).append(armed)
        status = engine.install(armed.local, on_hit=armed.on_hit)
        armed.status = status
        armed.armed = True
        if str(status.state) == "error":
            defined = (
                checks.defined_here(request.probe) if "not found" in str(status.reason) else ""
            )
            raise MarkerError(
                "location",
                request.location,
                f"a location the sensor can arm; the probe could not be armed: {status.reason}"
                + (f"; {defined}" if defined else ""),
            )
        problem = checks.static_problem(request.probe, request.location)
        if problem is not None:
            raise problem
        if self._per_test_properties():
            item.user_properties.append(("runtime_probe", request.location))
        return armed

    def _per_test_properties(self) -> bool:
        """Per-test JUnit properties are invalid in xunit2: write them only for xunit1."""
        try:
            family = str(self.config.getini("junit_family") or "xunit2")
        except (ValueError, KeyError):
            return True
        return family in ("xunit1", "legacy")

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
        """Disarm, then return the test-time failure message (once per armed probe).

        A misconfigured probe (a capture, condition or template that fails, a path location
        whose module never loaded) fails the test before any expectation is looked at: its
        hits do not show what the marker asked for.
        """
        self.disarm(armed)
        if armed.checked:
            return None
        armed.checked = True
        from pytest_runtime import checks

        logged = _ERROR_LOG.pop(armed.local.id) if _ERROR_LOG is not None else None
        problem = checks.runtime_problem(
            armed.request.probe, armed.request.location, armed.hits, armed.status, logged
        )
        if problem is not None:
            return str(problem)
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

    # ---------------------------------------------------------------- replay

    def constructors(self) -> dict[str, Callable[[dict[str, Any]], Any]]:
        """The ``pytest_runtime_constructors`` hooks' mappings, merged (first plugin wins)."""
        if self._constructors is None:
            merged: dict[str, Callable[[dict[str, Any]], Any]] = {}
            for mapping in self.config.hook.pytest_runtime_constructors(config=self.config):
                for name, function in (mapping or {}).items():
                    merged.setdefault(name, function)
            self._constructors = merged
        return self._constructors

    def production_hits(self, signature: str) -> list[dict[str, Any]]:
        """Production hits of one signature for replay: evidence files, else the hub's stored
        evidence (read once per signature in this process; xdist workers read their own)."""
        cached = self._replay_hits.get(signature)
        if cached is not None:
            return cached
        since: float | None = self.options.since if self.options.since_given else None
        if self.options.evidence:
            if self._replay_evidence is None:
                if self.file_evidence is not None:
                    self._replay_evidence = self.file_evidence
                else:
                    from pytest_runtime.evidence import read

                    self._replay_evidence = read(self.options.evidence)
            hits = self._replay_evidence.hits_for(signature, since=since)
        else:
            client = self._client()
            try:
                evidence = client.evidence(signature, since=self.options.since)
            finally:
                client.close()
            hits = evidence.hits_for(signature)
        self._replay_hits[signature] = hits
        return hits

    def replay_item(self, item: pytest.Item) -> str | None:
        """Replay the production states of the test's ``replay=True`` probes (after its body).

        Returns the failure message (the expectation broke on a production state; under
        strict also a behaviour change), or None. A marker on the test function is replayed
        once for all its parametrized cases (after the first case that runs, which says so);
        a marker on one case (``pytest.param(..., marks=...)``) is that case's own.
        """
        if not self.options.replay or _MARKER_KEYWORD not in item.keywords:
            return None
        from pytest_runtime.markers import MARKER, parse_probe_args
        from pytest_runtime.replay import run_replay

        function = function_id(item.nodeid)
        case_marks = getattr(getattr(item, "callspec", None), "marks", ())
        messages: list[str] = []
        for mark in item.iter_markers(name=MARKER):
            request = parse_probe_args(mark.args, mark.kwargs)
            own = any(m is mark for m in case_marks)
            nodeid = item.nodeid if own else function
            if not request.probe.replay or (nodeid, request.signature) in self._replayed:
                continue
            self._replayed.add((nodeid, request.signature))
            try:
                hits = self.production_hits(request.signature)
            except RuntimeProbeError as exc:
                raise RuntimeProbeError(f"replay {request.location}: {exc}") from exc
            strict = (
                request.settings.strict
                if request.settings.strict is not None
                else self.options.strict
            )
            report = run_replay(
                request,
                hits,
                nodeid=nodeid,
                limit=self.options.replay,
                engine=testtime_engine(),
                constructors=self.constructors(),
                strict=strict,
            )
            for record in self.records:
                if record.nodeid == function:
                    record.replays.append(report.to_dict())
                    break
            else:
                path, lineno, _ = item.location
                self.add_record(
                    TestRecord(
                        function,
                        path,
                        (lineno or 0) + 1,
                        [request],
                        {},
                        "passed",
                        [report.to_dict()],
                    )
                )
            if report.fails:
                shared = ""
                if not own and nodeid != item.nodeid:
                    # The failure is the function's, not this case's: say why it shows here.
                    name = function.rpartition("::")[2]
                    shared = (
                        f"replay of the marker of {name}, shared by its parametrized cases "
                        "(replayed once, with this case):\n"
                    )
                messages.append(shared + "\n".join(report.lines()))
            else:
                item.add_report_section("call", "runtime replay", "\n".join(report.lines()))
        return "\n\n".join(messages) if messages else None

    def replays(self) -> list[Any]:
        """Every replay report of the run (controller: from every worker), sorted."""
        from pytest_runtime.replay import ReplayReport

        reports = [ReplayReport.from_dict(r) for record in self.records for r in record.replays]
        return sorted(reports, key=lambda r: (r.nodeid, r.location))

    # ---------------------------------------------------------------- lines probes

    def start_line_coverage(self, items: Iterable[pytest.Item]) -> None:
        """Measure the files of marked ``lines`` probes with coverage.py, unless pytest-cov or
        another coverage.py already measures this process (their data is read instead)."""
        if not self.options.wants_production or self._own_coverage is not None:
            return
        from pytest_runtime.coverage_paths import OwnMeasurement, function_file

        files: set[str] = set()
        for item in items:
            if _MARKER_KEYWORD not in item.keywords:
                continue
            try:
                requests = requests_for_item(item)
            except RuntimeProbeError:
                continue
            for request in requests:
                if request.probe.kind.value == "lines":
                    found = function_file(request.location)
                    if found is not None:
                        files.add(found)
        if not files:
            return
        if getattr(self.config.pluginmanager.getplugin("_cov"), "cov_controller", None):
            self.coverage_origin = "pytest-cov"
            return
        import coverage

        if coverage.Coverage.current() is not None:
            self.coverage_origin = "coverage.py"
            return
        self._own_coverage = OwnMeasurement(sorted(files))
        self._own_coverage.start()
        self.coverage_origin = "pytest-runtime"

    def stop_line_coverage(self) -> None:
        """Stop the own measurement (if any) and keep what it measured."""
        own, self._own_coverage = self._own_coverage, None
        if own is None:
            return
        measured = own.stop()
        if self.test_lines is None:
            self.test_lines = measured
        else:
            self.test_lines.merge(measured.to_data())

    def tested_lines(self) -> Any:
        """What the test run executed: pytest-cov's data, a running coverage.py's, or ours."""
        from pytest_runtime.coverage_paths import TestLines, pytest_cov_lines

        found = pytest_cov_lines(self.config)
        if found is not None:
            return found
        import coverage

        current = coverage.Coverage.current()
        if current is not None and self.test_lines is None:
            from pytest_runtime.coverage_paths import _from_data

            try:
                return _from_data(current.get_data(), "coverage.py")
            except Exception:
                return None
        tested: TestLines | None = self.test_lines
        return tested

    # ---------------------------------------------------------------- xdist

    def worker_output(self) -> dict[str, Any]:
        self.stop_line_coverage()
        out: dict[str, Any] = {"records": [record.to_dict() for record in self.records]}
        if self.test_lines is not None:
            out["coverage"] = self.test_lines.to_data()
        return out

    def merge_worker_output(self, data: Mapping[str, Any]) -> None:
        for raw in data.get("records", ()):
            self.add_record(TestRecord.from_dict(raw))
        measured = data.get("coverage")
        if isinstance(measured, Mapping):
            from pytest_runtime.coverage_paths import TestLines

            if self.test_lines is None:
                self.test_lines = TestLines(str(measured.get("origin") or "coverage.py"))
            self.test_lines.merge(measured)

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
                known_replays = {r.get("signature") for r in old.replays}
                old.replays.extend(
                    r for r in record.replays if r.get("signature") not in known_replays
                )
                return
        self.records.append(record)

    # ---------------------------------------------------------------- production

    def _groups(self) -> dict[tuple[str, str], tuple[ProbeRequest, dict[str, Any]]]:
        """One entry per (signature, selector): what to place on the hub once."""
        groups: dict[tuple[str, str], tuple[ProbeRequest, dict[str, Any]]] = {}
        for record in self.records:
            for request in record.requests:
                selector = request.settings.selector(self.default_service)
                key = (request.signature, json.dumps(selector, sort_keys=True))
                groups.setdefault(key, (request, selector))
        return dict(sorted(groups.items()))

    def _min_hits(self, request: ProbeRequest) -> int:
        return request.settings.min_hits or self.options.min_hits

    def _tests_of(self, signature: str) -> str:
        """The ``tests`` tag of a placed probe: node ids of the tests that mark it (bounded).

        ``python -m sensor hits <node id>`` finds the probe by it, after the run too.
        """
        nodeids = sorted(
            {r.nodeid for r in self.records if any(q.signature == signature for q in r.requests)}
        )
        kept: list[str] = []
        for nodeid in nodeids:
            if len(json.dumps([*kept, nodeid])) > _MAX_TESTS_TAG:
                break
            kept.append(nodeid)
        return json.dumps(kept)

    def _min_hits_given(self, request: ProbeRequest) -> bool:
        """True when min hits was set explicitly: marker ``min_hits=``, option or ini key."""
        if request.settings.min_hits is not None:
            return True
        return bool(
            self.config.getoption("runtime_min_hits", None)
            or str(self.config.getini("runtime_min_hits") or "").strip()
        )

    def _aims_for_bound(self, request: ProbeRequest) -> bool:
        """True when the wait for this probe aims for the ``--runtime-rarer-than`` bound.

        An explicit min hits is the user's choice of evidence: the default bound does not
        raise it (``--runtime-min-hits 5`` waits for 5 hits, and each verdict says the bound
        its hits reached). A bound set explicitly is honoured too: the larger need wins.
        """
        return self.options.rarer_than_given or not self._min_hits_given(request)

    def _wanted(self, request: ProbeRequest) -> int:
        """Production hits to wait for: the minimum for a verdict, and enough for the bound."""
        from pytest_runtime.compare.counters import hits_needed

        if not self._aims_for_bound(request):
            return self._min_hits(request)
        return max(self._min_hits(request), hits_needed(self.options.rarer_than))

    def _wait_rules(self, requests: Iterable[ProbeRequest]) -> list[str]:
        """What the wait is for, where min hits was set explicitly: one line per rule, with
        the probes it applies to (``per probe`` when it applies to all of them)."""
        from pytest_runtime.compare.counters import hits_needed

        rate = self.options.rarer_than
        bound = f"--runtime-rarer-than {rate * 100:.2g}%"
        needed = hits_needed(rate)
        rules: dict[tuple[int, str], int] = {}
        total = 0
        for request in requests:
            total += 1
            if not self._min_hits_given(request):
                continue
            least = self._min_hits(request)
            if not self.options.rarer_than_given:
                key = (least, "(min hits, set explicitly; no --runtime-rarer-than): each "
                       "verdict says the confidence bound its hits reached")  # fmt: skip
            elif needed > least:
                key = (needed, f": {bound} needs {needed}, more than min hits {least}")
            elif least > needed:
                key = (least, f": min hits {least} is more than the {needed} that {bound} needs")
            else:
                continue
            rules[key] = rules.get(key, 0) + 1
        lines = []
        for (hits, why), count in sorted(rules.items()):
            who = "per probe" if count == total else f"for {count} of {total} probes"
            lines.append(
                f"runtime: waiting for {hits} production hits {who}{'' if why[0] == ':' else ' '}"
                f"{why}"
            )
        return lines

    def fetch_from_hub(self, progress: Callable[[str], None]) -> Evidence:
        """Place (or reuse) each probe once, wait for hits, fetch evidence, remove ours.

        The wait for a probe ends when it has enough hits, when no source can produce more
        (disabled or in error everywhere: its verdict says why), or when the wait is over.
        The sensors' statuses (counters, states) are read on every poll and kept with the
        evidence, so that the verdicts report rates from the counters.

        When the hub fails for good (its requests are already retried with backoff), the
        signatures whose evidence did not arrive get the reason (:attr:`reasons`), and the run
        goes on to its verdicts and reports with the evidence it has.
        """
        from pytest_runtime.errors import HubClientError

        options = self.options
        groups = self._groups()
        client = self._client()
        placed: dict[str, float] = {}  # probe id -> when the hub expires it
        watches: dict[str, _Watch] = {}
        self.probe_ids = {}  # signature -> hub probe ids (the watches' own lists)
        waits: list[float] = [options.wait]
        evidence = Evidence()
        fetched: set[str] = set()
        try:
            try:
                standing_by_key = self._standing_records(client) if groups else {}
                for (signature, _), (request, selector) in groups.items():
                    problem = self.service_problem(request) if "service" not in selector else None
                    if problem is not None:
                        self.reasons[signature] = problem
                        self.notes.append(f"{problem}: not placed")
                        continue
                    watch = watches.get(signature)
                    if watch is None:
                        watch = watches[signature] = _Watch(request.location, 0)
                        self.probe_ids[signature] = watch.ids
                    records = standing_by_key.get((signature, _selector_key(selector)))
                    if records:
                        # Published from the suite: its evidence is already on the hub, read
                        # at once; nothing is placed and nothing is waited for.
                        watch.standing = True
                        self.standing_signatures.add(signature)
                        for record in records:
                            watch.ids.append(str(record["id"]))
                            watch.records[str(record["id"])] = record
                        continue
                    watch.wanted = max(watch.wanted, self._wanted(request))
                    if request.settings.wait is not None:
                        waits.append(request.settings.wait)
                    # A standing probe (placed by a person, an agent or another run) is reused
                    # when it has hits in the window: its evidence is ours, and placing a twin
                    # would only double the work in production.
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
                    wait = (
                        request.settings.wait if request.settings.wait is not None else options.wait
                    )
                    probe = _production_probe(request.probe, tests=self._tests_of(signature))
                    record = client.place(probe.to_dict(), selector, ttl=wait + _TTL_MARGIN)
                    placed[str(record["id"])] = float(
                        record.get("expires_at") or time.time() + wait + _TTL_MARGIN
                    )
                    watch.ids.append(str(record["id"]))
                waited = {sig: w for sig, w in watches.items() if not w.standing}
                if waited:
                    rules = self._wait_rules(
                        request
                        for (signature, _), (request, _) in groups.items()
                        if signature in waited
                    )
                    for line in rules:
                        progress(line)
                    self._wait_for_hits(client, waited, max(waits), progress)
                # Hits first, then the counters that cover them (see _wait_for_counters).
                for signature, watch in watches.items():
                    since = self._since_for(signature)
                    if watch.standing:  # the standing probes' samples, nothing older
                        for probe_id in watch.ids:
                            evidence.merge(client.probe_evidence(probe_id, since=since))
                    else:
                        evidence.merge(client.evidence(signature, since=since))
                self._keep_versions(client, watches, evidence)
                bound = min(_COUNTERS_WAIT, max(waits))
                if waited:
                    self._wait_for_counters(client, waited, evidence, bound, progress)
                    # The standing probes kept collecting during the waits: read their
                    # counters again (one request), after the heartbeat waited for above, or
                    # the hits read after the wait would be newer than the counters read when
                    # the run began, and read as uncounted.
                    self._refresh_standing(client, watches)
                self._read_statuses(client, watches, evidence)
                self._read_earlier_statuses(client, watches, evidence)
                fetched.update(watches)
                self.notes.extend(evidence.notes)
                self.notes.extend(evidence.cap_notes())
            except HubClientError as exc:
                lost = {signature for (signature, _) in groups} - fetched
                self._hub_lost(exc, lost)
            return evidence
        except BaseException:
            # Ctrl-C can land inside the HTTP client's connection pool and leave it locked, so
            # the clean-up below talks to the hub through a client of its own.
            client = self._client()
            raise
        finally:
            # Also on Ctrl-C and errors: a placed probe must not outlive the run (the TTL is
            # the second line of defence if this process is killed or the hub is gone).
            self._remove_placed(client, placed)
            client.close()

    def _standing_records(self, client: Any) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """The hub's active standing probes by (signature, selector), in one request."""
        found: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for record in client.list_probes(state="active", standing=True):
            key = (str(record.get("signature")), _selector_key(record.get("selector") or {}))
            found.setdefault(key, []).append(record)
        return found

    def _refresh_standing(self, client: Any, watches: Mapping[str, _Watch]) -> None:
        """Re-read the standing probes' records (their statuses and counters), in one request."""
        if not any(watch.standing for watch in watches.values()):
            return
        fresh = {
            str(record["id"]): record
            for records in self._standing_records(client).values()
            for record in records
        }
        for watch in watches.values():
            if watch.standing:
                for probe_id in watch.records:
                    if probe_id in fresh:
                        watch.records[probe_id] = fresh[probe_id]

    def _since_for(self, signature: str) -> float | None:
        """The oldest hit to read: a standing probe's sample is bounded and per version, so
        its whole span is used unless ``--runtime-since`` was given."""
        if signature in self.standing_signatures and not self.options.since_given:
            return None
        return self.options.since

    def _keep_versions(
        self, client: Any, watches: Mapping[str, _Watch], evidence: Evidence
    ) -> None:
        """Keep the standing evidence of the version(s) chosen (``--runtime-version``), and
        say in the header which version and time span the evidence covers."""
        signatures = sorted(s for s, w in watches.items() if w.standing)
        if not signatures:
            return
        wanted = self.options.version
        services = sorted(
            {
                str(record.get("selector", {}).get("service"))
                for signature in signatures
                for record in watches[signature].records.values()
            }
        )
        versions: set[str] | None = None
        described = "every version (--runtime-version any)"
        if wanted == "live":
            live = client.sources(service=services[0]) if len(services) == 1 else client.sources()
            live = [src for src in live if src.get("service") in services]
            versions = {str(src.get("version")) for src in live}
            described = (
                f"version {', '.join(sorted(versions)).replace('None', '(none reported)')} "
                "(live now)"
                if versions
                else "every version (no live source: --runtime-version to choose)"
            )
            if not versions:
                versions = None
        elif wanted != "any":
            versions = {wanted}
            described = f"version {wanted} (--runtime-version)"
        first = last = None
        count = 0
        for signature in signatures:
            hits = evidence.hits.get(signature, [])
            if versions is not None:
                hits = evidence.keep_hits(signature, lambda hit: _hit_version(hit) in versions)
                keep_sources = {_hit_source(hit) for hit in hits}
                statuses = evidence.statuses.get(signature, {})
                for key in list(statuses):
                    if key[1] not in keep_sources and not self._source_has_version(
                        client, key[1], versions
                    ):
                        del statuses[key]
            for hit in hits:
                ts = hit.get("ts")
                if isinstance(ts, int | float):
                    first = ts if first is None else min(first, ts)
                    last = ts if last is None else max(last, ts)
            count += len(hits)
            if len(hits) < self.options.min_hits:
                watch = watches[signature]
                self.notes.append(
                    f"{watch.location}: its standing probe ({', '.join(watch.ids)}) has "
                    f"{len(hits)} hit(s) of {described}, fewer than min hits "
                    f"{self.options.min_hits}: traffic has not reached it enough since it was "
                    "published or deployed; run the check again later, or compare with "
                    "--runtime-version any"
                )
        span = (
            f"hits from {_utc(first)} to {_utc(last)}"
            if first is not None and last is not None
            else "no hit yet"
        )
        waited = sum(1 for w in watches.values() if not w.standing)
        self.header.append(
            f"runtime: standing evidence of service {', '.join(services)}, {described}: "
            f"{len(signatures)} probe(s) read at once (no wait), {count} sampled hit(s), "
            f"{span}; {waited} probe(s) placed on demand"
        )

    def _source_has_version(self, client: Any, source_id: str, versions: set[str]) -> bool:
        if self._source_versions is None:
            self._source_versions = {
                str(src.get("id")): str(src.get("version")) for src in client.sources(state=None)
            }
        return self._source_versions.get(source_id) in versions

    def _wait_for_hits(
        self,
        client: Any,
        watches: Mapping[str, _Watch],
        wait: float,
        progress: Callable[[str], None],
    ) -> None:
        """Poll the hub until every probe has its hits, cannot collect more, or ``wait`` ends."""
        deadline = time.monotonic() + wait
        last_line = ""
        last_time = 0.0
        while True:
            sources: set[str] = set()
            for watch in watches.values():
                watch.poll(client, self.options.since, sources)
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

    def _wait_for_counters(
        self,
        client: Any,
        watches: Mapping[str, _Watch],
        evidence: Evidence,
        bound: float,
        progress: Callable[[str], None],
    ) -> None:
        """Wait, ``bound`` seconds at most, for counters that cover the hits read.

        A sensor sends its hits at every flush and its counters with its heartbeats (every
        10 s by default), so when the hits are read some sources' last counters are usually
        behind them, and the verdicts would have to call their counts lower bounds. Only
        those sources are waited for, until their next heartbeat covers the hits read; one
        that does not report in time (gone, or a longer heartbeat interval) leaves verdicts
        that say what its counters miss.
        """
        captured: dict[str, dict[tuple[str, str], int]] = {}
        for signature in watches:
            counts = captured.setdefault(signature, {})
            for hit in evidence.hits_for(signature, since=self.options.since):
                source = hit.get("source")
                if isinstance(source, dict) and source.get("id"):
                    key = (str(hit.get("probe_id") or ""), str(source["id"]))
                    counts[key] = counts.get(key, 0) + 1
        deadline = time.monotonic() + bound
        lagging = _lagging(client, watches, captured, None)
        if not lagging:
            return
        sources = {source for probe in lagging.values() for source in probe}
        progress(
            f"runtime: waiting up to {bound:.0f}s for the next counters of {len(sources)} "
            "source(s) (their heartbeat), so that they cover the hits read"
        )
        while lagging:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(_COUNTERS_POLL, left))
            lagging = _lagging(client, watches, captured, lagging)

    def _read_statuses(
        self, client: Any, watches: Mapping[str, _Watch], evidence: Evidence
    ) -> None:
        """Keep each probe's per-source statuses (as evidence records), and note why some
        sources saw no hits.

        Sources that never imported the probed module while others of the run did are a
        pre-fork server's master (gunicorn without ``--preload``): expected on every such run,
        so it is said once in the report header, not once per probe.
        """
        masters: set[str] = set()
        reported_at = time.time()
        for signature, watch in sorted(watches.items()):
            location = watch.location
            if not watch.collecting and watch.count < watch.wanted:
                self.notes.append(
                    f"{location}: stopped waiting after {watch.count} hit(s): the "
                    f"probe cannot collect more: {watch.states}"
                )
            for probe_id in watch.ids if not watch.standing else ():
                # Read once more: a source's last heartbeat may have come after the poll.
                # (A standing probe's record was read with its statuses when the run began.)
                watch.records[probe_id] = client.probe(probe_id)
            for probe_id, record in sorted(watch.records.items()):
                raw = record.get("statuses") or {}
                states = (
                    [st for st in raw.values() if isinstance(st, Mapping)]
                    if isinstance(raw, Mapping)
                    else []
                )
                self.statuses.setdefault(signature, []).extend(states)
                for source_id, status in sorted(_effective_statuses(record).items()):
                    if source_id:
                        evidence.add_status(
                            _status_record(
                                signature, probe_id, source_id, status, record, reported_at
                            )
                        )
                notes, pending_masters = _status_notes(location, record)
                self.notes.extend(notes)
                masters |= pending_masters
                installed = sum(1 for st in states if st.get("state") == "installed")
                fired = sum(int(st.get("hits") or 0) for st in states)
                if installed and not fired and not record.get("hit_count"):
                    self.notes.append(
                        f"{location}: no call reached it while probe {probe_id} was placed "
                        f"(installed on {installed} source(s)); a probe sees only calls made "
                        "after it is placed: keep traffic flowing while the check runs"
                    )
        if masters:
            self.header.append(
                f"runtime: {len(masters)} source(s) never imported the probed module(s) while "
                "other sources did; their probes stayed pending (expected: a pre-fork server's "
                "master process, such as gunicorn without --preload, never imports the "
                "application)"
            )

    def _read_earlier_statuses(
        self, client: Any, watches: Mapping[str, _Watch], evidence: Evidence
    ) -> None:
        """The counters of earlier placements whose hits are in the evidence.

        The evidence of a signature holds the hits of every probe with it in the window
        (``--runtime-since``), such as the probe a previous run placed and removed: without
        that probe's counters, its violating hits would read as uncounted. Its statuses count
        up to its end (``ended_at``), so that placements one after the other do not overlap.
        At most ``_MAX_PROBE_IDS`` earlier placements per signature are read; hits of any
        others stay uncounted, and the verdict says so.
        """
        from pytest_runtime.errors import HubRequestError

        now = time.time()
        for signature, watch in sorted(watches.items()):
            ours = set(watch.ids)
            earlier = sorted(
                {
                    str(hit["probe_id"])
                    for hit in evidence.hits_for(signature, since=self.options.since)
                    if hit.get("probe_id") and str(hit["probe_id"]) not in ours
                }
            )
            for probe_id in earlier[:_MAX_PROBE_IDS]:
                try:
                    record = client.probe(probe_id)
                except HubRequestError as exc:
                    if exc.status == 404:  # deleted from the hub since: nothing to read
                        continue
                    raise
                ended = record.get("ended_at")
                until = float(ended) if isinstance(ended, int | float) else now
                for source_id, status in sorted(_effective_statuses(record).items()):
                    if source_id:
                        evidence.add_status(
                            _status_record(signature, probe_id, source_id, status, record, until)
                        )

    def _hub_lost(self, exc: Exception, signatures: Iterable[str]) -> None:
        """The hub failed for good: the verdicts left without evidence say why."""
        self.hub_error = f"the hub {self.options.hub} failed during the run: {exc}"
        for signature in signatures:
            self.reasons.setdefault(
                signature,
                f"{self.hub_error}; no production evidence was read for this probe",
            )

    def _remove_placed(self, client: Any, placed: Mapping[str, float]) -> None:
        """Remove every probe this run placed; once the hub is unreachable, stop trying."""
        from pytest_runtime.errors import HubClientError, HubRequestError

        left: list[str] = []
        for probe_id in placed:
            if left:
                left.append(probe_id)
                continue
            try:
                client.remove(probe_id)
            except HubRequestError as exc:
                if exc.status is not None and exc.status < 500 and exc.status != 429:
                    self.notes.append(f"could not remove probe {probe_id} from the hub: {exc}")
                else:
                    left.append(probe_id)
            except HubClientError:
                left.append(probe_id)
        if left:
            latest = max(placed[probe_id] for probe_id in left)
            self.notes.append(
                f"could not remove {len(left)} placed probe(s) from the hub "
                f"({', '.join(left)}): the hub is unreachable; it removes them when their TTL "
                f"ends, by {time.strftime('%H:%M:%S', time.localtime(latest))} at the latest"
            )

    def production_evidence(self, progress: Callable[[str], None]) -> Evidence | None:
        """The evidence compared: the file, the hub, or both (record modes).

        ``new_episodes`` compares with the file and the hub together and writes both;
        ``all`` compares with the hub and adds its hits to the file; ``rewrite`` (and
        ``once`` without a file, and the old ``--runtime-record``) write what the hub gave.
        Hits are de-duplicated by id, so re-recording never counts a hit twice.
        """
        options = self.options
        if not options.probe:
            return self.file_evidence
        hub = self.fetch_from_hub(progress)
        compared = hub
        if self.file_evidence is not None:  # new_episodes
            compared = Evidence()
            compared.merge(self.file_evidence)
            compared.merge(hub)
        target = options.writes_file
        if target:
            from pytest_runtime.evidence import write

            before = self.file_evidence or self.cassette_evidence
            out = compared
            if self.cassette_evidence is not None:  # all: the file keeps what it had
                out = Evidence()
                out.merge(self.cassette_evidence)
                out.merge(hub)
            written = write(target, out, generator="pytest-runtime record")
            mode = options.record_mode or "rewrite"
            known = before.hit_count if before is not None else 0
            added = f", {written - known} new" if before is not None else ""
            partial = " (partial: the hub failed during the run)" if self.hub_error else ""
            self.notes.append(
                f"recorded {written} hit(s) to {target} (record mode {mode}{added}){partial}"
            )
        return compared

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
        from pytest_runtime import checks
        from pytest_runtime.compare import CompareSettings, compare
        from pytest_runtime.reporting._common import RunResult

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
        results: list[ProbeResult] = []
        tested: Any = _UNSET
        for record in sorted(self.records, key=lambda r: r.nodeid):
            for request in sorted(record.requests, key=lambda r: r.location):
                signature = request.signature
                if signature not in prod_cache:
                    window = since if signature not in self.standing_signatures else None
                    prod_cache[signature] = apply_serializers(
                        evidence.hits_for(signature, since=window), serializers
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
                    plumbing=(
                        request.settings.plumbing
                        if request.settings.plumbing is not None
                        else self.options.plumbing
                    ),
                    # A live run waits for the bound, so it says whether it was reached; a
                    # replay of recorded evidence says so only when asked (it cannot wait).
                    rarer_than=(
                        self.options.rarer_than
                        if (self.options.probe and self._aims_for_bound(request))
                        or self.options.rarer_than_given
                        else None
                    ),
                )
                if request.probe.kind.value == "lines":
                    from pytest_runtime.coverage_paths import lines_verdict

                    if tested is _UNSET:
                        tested = self.tested_lines()
                    verdict = lines_verdict(
                        prod_cache[signature],
                        test_hits,
                        location=request.location,
                        tested=tested,
                        min_hits=self._min_hits(request),
                        strict=strict,
                    )
                else:
                    verdict = compare(
                        test_hits,
                        prod_cache[signature],
                        probe=request.probe,
                        settings=settings,
                        statuses=evidence.statuses_for(signature),
                    )
                reason = self.reasons.get(signature)
                if reason is not None:
                    # No evidence could be read (hub lost, no service named): say why.
                    verdict = dataclasses.replace(verdict, verdict="inconclusive", hint=reason)
                else:
                    reason = checks.production_problem(
                        prod_cache[signature], self.statuses.get(signature, ())
                    )
                    if reason is not None and verdict.verdict == "ok":
                        # The probe could not see what it was asked to see: never "ok".
                        verdict = dataclasses.replace(verdict, verdict="inconclusive", hint=reason)
                results.append(
                    RunResult(
                        nodeid=record.nodeid,
                        test_file=record.file,
                        test_line=record.line,
                        location=request.location,
                        signature=signature,
                        verdict=verdict,
                        probe_ids=self._probe_ids_of(signature, prod_cache[signature]),
                        reason=reason,
                    )
                )
        results = self._apply_replays(results)
        self.failing = [r for r in results if r.verdict.fails]
        self.results = results
        self._apply_baseline()
        if self.failing or self.accepted:
            failing = {_result_key(r) for r in self.failing}
            accepted = {_result_key(r) for r in self.accepted}
            self.results = [
                dataclasses.replace(
                    r, fails=_result_key(r) in failing, accepted=_result_key(r) in accepted
                )
                if isinstance(r, RunResult)
                else r
                for r in self.results
            ]
            by_key = {_result_key(r): r for r in self.results}
            self.failing = [by_key[_result_key(r)] for r in self.failing]
            self.accepted = [by_key[_result_key(r)] for r in self.accepted]
        else:
            self.results = [
                dataclasses.replace(r, fails=False) if isinstance(r, RunResult) else r
                for r in self.results
            ]
        if self.hub_error:
            lost = sum(1 for r in self.results if r.signature in self.reasons)
            self.header.append(
                f"runtime: {self.hub_error}; {lost} verdict(s) are inconclusive for it; every "
                "report was written with the evidence read before"
            )
        for result in self.results:
            hook.pytest_runtime_verdict(config=self.config, result=result)

    def _apply_replays(self, results: list[ProbeResult]) -> list[ProbeResult]:
        """A violation whose every failing production state holds on this code (replay) is
        fixed: the verdict drops it, and says so in its hint."""
        verified = {(r.nodeid, r.signature): r for r in self.replays() if r.verifies_fix}
        if not verified:
            return results
        out: list[ProbeResult] = []
        for result in results:
            report = verified.get((result.nodeid, result.signature))
            verdict = result.verdict
            if report is None or verdict.verdict != "violated":
                out.append(result)
                continue
            kept = tuple(d for d in verdict.divergences if d.kind != "violation")
            fixed = (
                f"fixed on this code: the {report.fixed} production state(s) that violated the "
                f"expectation hold when replayed ({report.replayed} replayed)"
            )
            counts = dict(verdict.counts)
            counts["divergences"] = len(kept)
            verdict = dataclasses.replace(
                verdict,
                verdict="diverged" if kept else "ok",
                divergences=kept,
                counts=counts,
                hint=fixed + (f"; {verdict.hint}" if kept and verdict.hint else ""),
            )
            out.append(dataclasses.replace(result, verdict=verdict))
        return out

    def _probe_ids_of(self, signature: str, hits: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
        """The hub probes behind a verdict: placed or reused by this run, or named by its hits."""
        ids = set(self.probe_ids.get(signature, ()))
        for hit in hits:
            probe_id = hit.get("probe_id")
            if isinstance(probe_id, str) and probe_id:
                ids.add(probe_id)
                if len(ids) >= _MAX_PROBE_IDS:
                    break
        return tuple(sorted(ids))

    def _apply_baseline(self) -> None:
        path = self.options.baseline
        if not path:
            return
        from pytest_runtime import baseline

        if self.options.write_baseline:
            baseline.write(path, self.results)
            self.notes.append(f"wrote the baseline {path} ({len(self.results)} result(s))")
            self.accepted, self.failing = self.failing, []
            return
        if self.baseline is None:
            self.notes.append(f"no baseline at {path}: every divergence counts")
            return
        fresh = baseline.new_divergences(self.results, self.baseline)
        fresh_keys = {_result_key(item) for item in fresh}
        self.accepted = [r for r in self.failing if _result_key(r) not in fresh_keys]
        self.failing = [r for r in self.failing if _result_key(r) in fresh_keys]
        if self.accepted:
            self.notes.append(
                f"{len(self.accepted)} failing verdict(s) accepted by the baseline {path}"
            )

    # ---------------------------------------------------------------- reports

    def report_notes(self) -> list[str]:
        """The header lines, then the notes: what the reports say about the run as a whole."""
        return [*self.options.deprecations, *self.header, *self.notes]

    def check_gate(self) -> str | None:
        """``--runtime-fail-under``: the failure line when the run's coverage is below it.

        Both figures of :func:`~pytest_runtime.reporting._common.run_coverage` are gated (the
        state coverage, and the production-run lines the tests ran, when lines probes exist);
        a run with nothing to measure fails too, since the gate could not be checked.
        """
        threshold = self.options.fail_under
        if threshold is None or self.is_worker:
            return None
        from pytest_runtime.reporting._common import run_coverage

        coverage = run_coverage(self.results)
        failures = []
        for kind, what in (("state", "state coverage"), ("lines", "production-line coverage")):
            entry = coverage[kind]
            if entry["of"] and entry["percent"] < threshold:
                failures.append(
                    f"{what} {entry['percent']:g}% ({entry['covered']} of {entry['of']} "
                    f"{entry['over']})"
                )
        if not coverage["state"]["of"] and not coverage["lines"]["of"]:
            failures.append("no production shape or line to measure (no evidence compared)")
        self.gate = {"threshold": threshold, "passed": not failures, "failures": failures}
        if not failures:
            self.notes.append(f"required runtime coverage of {threshold:g}% reached")
            return None
        return f"FAIL Required runtime coverage of {threshold:g}% not reached: " + "; ".join(
            failures
        )

    def write_reports(self) -> None:
        """Write the JSON report and the JUnit verdicts (the record file is written at fetch)."""
        if self.is_worker:
            return
        if self.options.report_json:
            from pytest_runtime.reporting import jsonreport

            jsonreport.write(
                self.options.report_json,
                self.results,
                notes=self.report_notes(),
                replays=self.replays(),
                gate=self.gate,
            )
        self._junit()

    def _junit(self) -> None:
        """Verdicts into the JUnit XML: suite properties, and a failing test case per failure.

        Per-test properties are written when each test ends, before any verdict exists, so
        verdicts go into the test suite's properties (these also work under xdist); a verdict
        that fails the run also gets a test case of its own with a ``<failure>``, so that CI
        test views show a red test, not only a red job.
        """
        from _pytest.junitxml import xml_key

        xml = self.config.stash.get(xml_key, None)
        if xml is None:
            return
        from pytest_runtime.reporting import junit

        for result in self.results:
            for name, value in junit.properties(result):
                xml.add_global_property(f"{result.nodeid}::{name}", value)
        if not junit.add_failures(xml, self.failing):
            self.notes.append(
                "the JUnit XML has the verdicts as suite properties only: this pytest's "
                "junitxml does not take extra test cases"
            )

    def github_output(self) -> tuple[list[str], str | None]:
        """Workflow commands and the job summary markdown, when running on GitHub Actions."""
        from pytest_runtime.reporting import github

        # cast: the module's `annotations` function shadows the __future__ feature for mypy
        gh = cast(Any, github)
        return list(gh.annotations(self.results)), gh.job_summary(
            self.results, notes=self.report_notes(), replays=self.replays()
        )


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
    standing: bool = False  #: answered by standing probes: read, never waited for
    states: str = ""
    calls: int | None = None  #: calls counted since placement (None: no counters yet)
    installed: int = 0
    placed_at: float | None = None
    started: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def done(self) -> bool:
        return self.standing or self.count >= self.wanted or not self.collecting

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


def _selector_key(selector: Mapping[str, Any]) -> str:
    return json.dumps(dict(selector), sort_keys=True)


def _hit_source(hit: Mapping[str, Any]) -> str:
    source = hit.get("source")
    return str(source.get("id")) if isinstance(source, Mapping) else ""


def _hit_version(hit: Mapping[str, Any]) -> str:
    source = hit.get("source")
    return str(source.get("version")) if isinstance(source, Mapping) else "None"


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _lagging(
    client: Any,
    watches: Mapping[str, _Watch],
    captured: Mapping[str, Mapping[tuple[str, str], int]],
    only: Mapping[str, set[str]] | None,
) -> dict[str, set[str]]:
    """Probe id -> the sources whose last counters do not cover the hits read from them.

    Reads the probe records again (``only``: just the probes still lagging) and keeps them in
    the watches. A source with hits and no status yet is lagging too: its first heartbeat
    may still come.
    """
    from pytest_runtime.compare.counters import covers

    lagging: dict[str, set[str]] = {}
    for signature, watch in watches.items():
        counts = captured.get(signature, {})
        for probe_id in watch.ids:
            if only is not None and probe_id not in only:
                continue
            wanted = {src: n for (pid, src), n in counts.items() if pid == probe_id}
            if not wanted:
                continue
            record = client.probe(probe_id)
            watch.records[probe_id] = record
            raw = record.get("statuses")
            statuses = raw if isinstance(raw, Mapping) else {}
            behind = {
                source
                for source, n in wanted.items()
                if not covers(_mapping(statuses.get(source)), n)
            }
            if behind:
                lagging[probe_id] = behind
    return lagging


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


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


def _status_notes(location: str, record: Mapping[str, Any]) -> tuple[list[str], set[str]]:
    """Why a production probe saw fewer hits than it could: the sensors' own statuses.

    A probe that is in error (target not found, source mismatch, denied) or was disabled by a
    guard (CPU budget, max hits, expiry) on some sources explains an ``inconclusive`` verdict
    better than the hit count alone; the reasons are grouped so that a fleet stays one line.

    Returns the notes and the ids of the sources that wait for the module while others have
    the probe installed: a pre-fork server's master, reported once for the run, not here.
    """
    statuses = record.get("statuses") or {}
    if not isinstance(statuses, Mapping):
        return [], set()
    # A source that installed or disabled the probe had imported the module: a source still
    # pending on that import is one that never imports it (a pre-fork master).
    imported = sum(
        1
        for s in statuses.values()
        if isinstance(s, Mapping) and s.get("state") in ("installed", "disabled")
    )
    masters: set[str] = set()
    # Group by the reason with its figures blanked, so a fleet stays a line or two; show the
    # first concrete reason of each group.
    groups: dict[tuple[str, str], tuple[int, str]] = {}
    for source_id, status in statuses.items():
        if not isinstance(status, Mapping):
            continue
        state = str(status.get("state", ""))
        if state in ("error", "disabled", "pending"):
            reason = str(status.get("reason") or "no reason given")
            if state == "pending" and reason.startswith("waiting for module") and imported:
                masters.add(str(source_id))
                continue
            key = (state, re.sub(r"\d+(?:\.\d+)?", "#", reason))
            count, example = groups.get(key, (0, reason))
            groups[key] = (count + 1, example)
    notes = []
    for (state, _), (count, example) in sorted(groups.items()):
        note = f"{location}: {state} on {count} of {len(statuses)} source(s): {example}"
        if state == "pending" and example.startswith("waiting for module"):
            note += " (no source has imported it yet: check the module name of the location)"
        notes.append(note)
    return notes, masters


def _result_key(item: Any) -> tuple[str, str]:
    """(node id, location) of a ProbeResult, or of whatever ``new_divergences`` returns."""
    if isinstance(item, tuple) and item and not isinstance(item[0], str):
        item = item[0]
    if isinstance(item, Mapping):
        return str(item.get("nodeid")), str(item.get("location"))
    return str(getattr(item, "nodeid", "")), str(getattr(item, "location", ""))
