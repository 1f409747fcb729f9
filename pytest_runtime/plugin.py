"""The pytest plugin's hooks (registered through the ``pytest11`` entry point as ``runtime``).

Hooks only: the work is in :mod:`pytest_runtime.session`. Like pytest's ``stepwise.py``, the
module-level hooks are cheap and register a :class:`RuntimePlugin` object only when a run needs
it (a ``--runtime-*`` option, a marked test, or a test using the ``runtime`` fixture), so an
unused plugin costs almost nothing. Nothing heavy (deepdiff, requests, coverage, hypothesis,
the sensor engine) is imported at module level.
"""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from pytest_runtime.fixtures import RuntimeFixture
    from pytest_runtime.options import RuntimeOptions
    from pytest_runtime.session import RuntimeSession

__all__ = ["MARKER_HELP", "RuntimePlugin", "runtime", "runtime_constructors"]

_SESSION: pytest.StashKey[RuntimeSession] = pytest.StashKey()
_OPTIONS: pytest.StashKey[RuntimeOptions] = pytest.StashKey()
_PLUGIN_NAME = "runtime-session"
_MARKER = "runtime_probe"  # == markers.MARKER; repeated so that this module imports nothing
MARKER_HELP = (
    "runtime_probe(location, capture=[...], expect='...', ignore=[...], min_hits=, strict=, "
    "wait=, service=, labels={...}, kind='snapshot', condition=, rate=, max_hits=, "
    "raises=(ValueError, ...), replay=False, plumbing=True): "
    "arm a probe at location while the test runs and compare its states with production "
    "evidence; see https://pytest-runtime.readthedocs.io/en/latest/reference/plugin/"
)


def pytest_addoption(parser: pytest.Parser) -> None:
    from pytest_runtime.options import add_options

    add_options(parser)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from pytest_runtime import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def _usage_error(exc: Exception) -> pytest.UsageError:
    return pytest.UsageError(f"pytest-runtime: {exc}")


def pytest_configure(config: pytest.Config) -> None:
    from pytest_runtime.options import any_given

    config.addinivalue_line("markers", MARKER_HELP)
    if not any_given(config):
        return  # the common run: options are resolved only if a test turns out to need them
    from pytest_runtime.errors import RuntimeProbeError
    from pytest_runtime.options import RuntimeOptions

    try:
        options = RuntimeOptions.from_config(config)
    except RuntimeProbeError as exc:
        raise _usage_error(exc) from exc
    config.stash[_OPTIONS] = options
    from pytest_runtime.options import rootdir_moved

    moved = rootdir_moved(config)
    if moved:
        config.issue_config_time_warning(pytest.PytestConfigWarning(moved), stacklevel=2)
    if options.publish:
        # Publishing reads the markers only: collect, run nothing (as --collect-only does).
        config.option.collectonly = True
    if options.active:
        session = _ensure_session(config)
        try:
            # Every input is read before any test runs: a corrupt evidence file or baseline,
            # or a hub that cannot be used, stops the run at once with one line.
            session.load_evidence_files()
            session.load_baseline()
            session.check_hub()
        except RuntimeProbeError as exc:
            raise _usage_error(exc) from exc


def _ensure_session(config: pytest.Config) -> RuntimeSession:
    """The run's RuntimeSession, creating it and registering the hook object on first use."""
    session = config.stash.get(_SESSION, None)
    if session is None:
        from pytest_runtime.options import RuntimeOptions
        from pytest_runtime.session import RuntimeSession

        options = config.stash.get(_OPTIONS, None) or RuntimeOptions.from_config(config)
        session = RuntimeSession(config, options)
        config.stash[_SESSION] = session
        config.pluginmanager.register(RuntimePlugin(session), _PLUGIN_NAME)
    return session


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    # Markers are checked while collecting, so an invalid one is a collection error naming
    # the test and the argument (as pytest does for an invalid parametrize). It is checked on
    # the collector's report, not by raising while the test's items are made: another plugin's
    # old-style wrapper of pytest_pycollect_makeitem (schemathesis's) would re-raise our error
    # inside its own ``except``, chaining its AssertionError onto the message, and pluggy would
    # warn about the wrapper (an error of its own under ``-W error``).
    report = yield
    if report.passed and report.result:
        message = _marker_error(report.result)
        if message is not None:
            report.outcome = "failed"
            report.longrepr = message
            report.result = []
    return report


def _marker_error(nodes: list[Any]) -> str | None:
    """The first invalid ``runtime_probe`` marker among collected test items, as a message.

    Only the markers of the test's definition (the function, its class and module) are
    checked here, as pytest checks its own at collection; a marker given to one parameter set
    (``pytest.param(..., marks=...)``) fails that test alone, when it runs.
    """
    seen: set[tuple[int, ...]] = set()
    for node in nodes:
        # Keywords hold the markers of the node and its parents: a dict lookup per level,
        # cheaper than walking the markers for each of thousands of unmarked tests.
        if not isinstance(node, pytest.Item) or _MARKER not in node.keywords:
            continue
        callspec = getattr(node, "callspec", None)
        own = {id(mark) for mark in getattr(callspec, "marks", ())}
        marks = [mark for mark in node.iter_markers(name=_MARKER) if id(mark) not in own]
        key = tuple(id(mark) for mark in marks)
        if not marks or key in seen:  # the other parameter sets of one test share them
            continue
        seen.add(key)
        from pytest_runtime.errors import MarkerError
        from pytest_runtime.markers import parse_probe_args

        try:
            for mark in marks:
                parse_probe_args(mark.args, mark.kwargs)
        except MarkerError as exc:
            return f"{node.nodeid}: {exc}"
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.stash.get(_SESSION, None) is not None:
        return
    for item in items:
        if _MARKER in item.keywords or "runtime" in getattr(item, "fixturenames", ()):
            _ensure_session(config)
            return


# tryfirst: the outermost wrapper, so that this runs after the terminal wrote its "[100%]".
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> Generator[None, object, object]:
    result = yield
    runtime = session.config.stash.get(_SESSION, None)
    if runtime is not None and not runtime.is_worker:
        _finish(session, runtime)
    return result


def _finish(session: pytest.Session, runtime: RuntimeSession) -> None:
    from pytest_runtime.errors import RuntimeProbeError

    reporter: Any = session.config.pluginmanager.get_plugin("terminalreporter")

    def progress(line: str) -> None:
        if reporter is None:
            return
        # With -q the progress dots leave the line open ("..  [100%]"): start a new one.
        writer = getattr(reporter, "_tw", None)
        if getattr(writer, "width_of_current_line", 0):
            reporter.write("\n")
        reporter.write_line(_escape(line))

    try:
        runtime.stop_line_coverage()
        runtime.compare_all(progress)
        gate_failure = runtime.check_gate()
        runtime.write_reports()
    except RuntimeProbeError as exc:
        raise _usage_error(exc) from exc
    if gate_failure:
        runtime.gate_failure = gate_failure
        session.testsfailed += 1
    if reporter is not None:
        # Counted in pytest's last line ("3 passed, 1 runtime violated"). The entries are plain
        # objects with a __dict__, like reports, since other plugins walk every stats list.
        for result in runtime.results:
            if result.verdict.verdict in ("violated", "diverged"):
                entry = _StatsEntry(result)
                reporter.stats.setdefault(f"runtime {result.verdict.verdict}", []).append(entry)
    session.testsfailed += len(runtime.failing)


def _escape(text: str) -> str:
    from sensor.render import escape_text

    return escape_text(text)


class _StatsEntry:
    """One verdict in the terminal reporter's stats (looks enough like a report)."""

    when = "runtime"
    count_towards_summary = True

    def __init__(self, result: Any) -> None:
        self.result = result
        self.nodeid = result.nodeid
        self.outcome = result.verdict.verdict
        self.location = (result.test_file, (result.test_line or 1) - 1, result.location)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """xdist controller: collect the test-time records a worker captured."""
    from pytest_runtime.session import WORKEROUTPUT_KEY

    data = getattr(node, "workeroutput", {}).get(WORKEROUTPUT_KEY)
    if data:
        _ensure_session(node.config).merge_worker_output(data)


@pytest.fixture
def runtime(request: pytest.FixtureRequest) -> Generator[RuntimeFixture, None, None]:
    """Arm probes from the test body: ``with runtime.probe("mod:func", expect=...) as probe:``."""
    from pytest_runtime.fixtures import RuntimeFixture

    session = _ensure_session(request.config)
    item = request.node
    yield RuntimeFixture(session, item)
    # When the hook object was registered too late to wrap this call (getfixturevalue), this
    # still disarms and checks; otherwise the call wrapper already did and this is a no-op.
    _end_test(session, item, "passed", raise_violation=True)


@pytest.fixture
def runtime_constructors(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The ``pytest_runtime_constructors`` hooks' mappings, merged (first plugin wins): what
    ``rebuild(..., constructors=runtime_constructors)`` in a written regression test uses."""
    merged: dict[str, Any] = {}
    for mapping in request.config.hook.pytest_runtime_constructors(config=request.config):
        for name, function in (mapping or {}).items():
            merged.setdefault(name, function)
    return merged


def _end_test(
    session: RuntimeSession, item: pytest.Item, outcome: str, *, raise_violation: bool
) -> None:
    message = session.end_test(item, outcome=outcome)
    if message and raise_violation:
        pytest.fail(message, pytrace=False)


class RuntimePlugin:
    """The hooks of a run that uses the plugin (registered by :func:`_ensure_session`)."""

    def __init__(self, session: RuntimeSession) -> None:
        self.session = session
        self.header_shown = 0  #: header lines already printed at the start of the run

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Generator[None, object, object]:
        from pytest_runtime.errors import RuntimeProbeError

        failure: str | None = None
        try:
            self.session.arm_markers(item)
        except RuntimeProbeError as exc:
            _end_test(self.session, item, "failed", raise_violation=False)
            failure = f"{item.nodeid}: {exc}"
        except BaseException:
            _end_test(self.session, item, "failed", raise_violation=False)
            raise
        if failure is not None:
            pytest.fail(failure, pytrace=False)  # outside the except: no chained traceback
        try:
            result = yield
        except BaseException:
            message = self.session.end_test(item, outcome="failed")
            if message:
                item.add_report_section("call", "runtime", message)
            raise
        _end_test(self.session, item, "passed", raise_violation=True)
        # Replay after the test body, while its fixtures (fakes of side effects) still stand.
        try:
            replay_failure = self.session.replay_item(item)
        except RuntimeProbeError as exc:
            replay_failure = f"{item.nodeid}: {exc}"
        if replay_failure:
            pytest.fail(replay_failure, pytrace=False)
        return result

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        from pytest_runtime.errors import RuntimeProbeError

        try:
            self.session.check_services(items)
        except RuntimeProbeError as exc:
            raise _usage_error(exc) from exc
        # Lines probes: the run's coverage, measured from before the first test.
        self.session.start_line_coverage(items)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not self.session.options.publish or self.session.is_worker:
            return
        from pytest_runtime.errors import RuntimeProbeError

        reporter: Any = session.config.pluginmanager.get_plugin("terminalreporter")
        try:
            lines = self.session.publish(session)
        except RuntimeProbeError as exc:
            pytest.exit(f"pytest-runtime: {exc}", returncode=pytest.ExitCode.USAGE_ERROR)
        if reporter is not None:
            for line in lines:
                reporter.write_line(_escape(line))

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        from pytest_runtime.session import close_test_engine

        close_test_engine()

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        workeroutput = getattr(session.config, "workeroutput", None)
        if workeroutput is not None:
            from pytest_runtime.session import WORKEROUTPUT_KEY

            workeroutput[WORKEROUTPUT_KEY] = self.session.worker_output()

    def pytest_report_header(self, config: pytest.Config) -> list[str]:
        session = self.session
        options = session.options
        if session.is_worker:
            return []
        lines: list[str] = []
        if session.file_evidence is not None:
            ev = session.file_evidence
            lines.append(
                f"runtime: evidence from {len(options.evidence)} path(s): "
                f"{len(ev.hits)} probe signature(s), {ev.hit_count} hit(s)"
            )
        elif options.probe:
            lines.append(
                f"runtime: live evidence from hub {options.hub} (standing probes read at once;"
                f" probes placed on demand wait up to {options.wait:g}s)"
            )
        lines.extend(options.deprecations)
        lines.extend(session.header)
        self.header_shown = len(session.header)
        return [_escape(line) for line in lines]

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        session = self.session
        header = session.header[self.header_shown :]
        replays = [] if session.is_worker else session.replays()
        if session.is_worker or not (session.results or session.notes or header or replays):
            return
        tr = terminalreporter
        if session.results or header or replays:
            from pytest_runtime.reporting import terminal

            terminal.write_summary(tr, session.results, header=header, replays=replays)
        if session.notes:
            tr.write_sep("-", "runtime notes")
            for note in session.notes:
                tr.write_line(_escape(note))
        if session.failing:
            tr.write_line(
                f"runtime: {len(session.failing)} probe verdict(s) fail this run "
                "(violated, or diverged under --runtime-strict)",
                red=True,
                bold=True,
            )
        if session.gate_failure:
            tr.write_line(_escape(session.gate_failure), red=True, bold=True)
        if session.results and os.environ.get("GITHUB_ACTIONS") == "true":
            annotations, summary = session.github_output()
            for line in annotations:
                tr.write_line(line)
            path = os.environ.get("GITHUB_STEP_SUMMARY")
            if path and summary:
                with open(path, "a", encoding="utf-8") as stream:
                    stream.write(summary + "\n")
