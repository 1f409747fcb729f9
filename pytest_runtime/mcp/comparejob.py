"""compare_test's jobs: one ``pytest --runtime-probe`` run in a child process, polled by id.

The verdict must be the one ``pytest --runtime-probe`` prints, so the job *is* that run: the
plugin arms the marked probes at test time, places them through the hub, waits for production
hits, compares with :func:`pytest_runtime.compare.compare` and writes its JSON report. The job
reads the report back into :class:`pytest_runtime.compare.ProbeResult` objects and renders them
with the plugin's own terminal summary; waiting for production hits happens in the child, so no
tool call blocks on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from pytest_runtime.mcp.bounds import shrink
from pytest_runtime.mcp.errors import ArgumentError
from pytest_runtime.mcp.settings import ServerSettings

__all__ = ["CompareJob", "check_marker", "check_nodeid"]

ENV_MARKER = "PYTEST_RUNTIME_MCP_MARKER"
_EXIT = {
    0: "every test passed and no verdict fails the run",
    1: "some test failed or some verdict fails the run (violated, or diverged under strict)",
    2: "the run was interrupted",
    3: "pytest hit an internal error",
    4: "pytest refused the command line (usage error)",
    5: "pytest collected no test",
}
_MARKER_TEST = '''\
"""Written by the MCP server's compare_test: a test with no test-time state of its own."""


def test_production_evidence_only():
    """The runtime_probe marker is added from JSON; production evidence meets the marker alone."""
'''
_SECTION = re.compile(r"^=+ runtime probes =+$")
_RULE = re.compile(r"^=+( .* =+)?$")


def check_nodeid(nodeid: object, project_dir: Path) -> str:
    """A pytest node id inside ``project_dir`` (never an option: it goes on a command line)."""
    expected = "a pytest node id such as 'tests/test_pricing.py::test_apply_discount'"
    if not isinstance(nodeid, str) or not nodeid.strip():
        raise ArgumentError("nodeid", nodeid, expected)
    if nodeid.startswith("-") or any(c in nodeid for c in "\x00\r\n"):
        raise ArgumentError("nodeid", nodeid, expected + " (not an option)")
    path = nodeid.split("::", 1)[0]
    target = (project_dir / path).resolve()
    if not target.exists():
        raise ArgumentError(
            "nodeid", nodeid, f"{expected}; {path!r} does not exist under {project_dir}"
        )
    if project_dir.resolve() not in (target, *target.parents):
        raise ArgumentError("nodeid", nodeid, f"a test inside the project {project_dir}")
    return nodeid


def check_marker(marker: object) -> dict[str, Any]:
    """The runtime_probe marker's arguments, validated by the plugin's own parser."""
    expected = (
        "the runtime_probe marker's arguments as an object, such as "
        '{"location": "shop.pricing:apply_discount", "capture": ["price"], '
        '"expect": "0 <= result <= price"}'
    )
    if not isinstance(marker, dict) or "location" not in marker:
        raise ArgumentError("marker", marker, expected)
    from pytest_runtime.errors import MarkerError
    from pytest_runtime.markers import parse_probe_args

    try:
        parse_probe_args((), marker)
    except MarkerError as exc:
        raise ArgumentError(f"marker.{exc.argument}", exc.value, exc.expected) from exc
    try:
        json.dumps(marker)
    except (TypeError, ValueError) as exc:
        raise ArgumentError("marker", marker, "JSON values only") from exc
    return dict(marker)


@dataclasses.dataclass
class CompareJob:
    """One pytest run started by compare_test."""

    id: str
    nodeid: str | None
    marker: dict[str, Any] | None
    argv: list[str]
    workdir: Path
    started: float  #: time.monotonic()
    started_at: float  #: epoch seconds
    deadline: float  #: time.monotonic() after which the run is stopped
    proc: subprocess.Popen[bytes]
    stopped: str | None = None  #: why the server stopped the run, if it did

    @classmethod
    def start(
        cls,
        settings: ServerSettings,
        *,
        nodeid: str | None,
        marker: dict[str, Any] | None,
        service: str | None,
        wait: float,
        min_hits: int | None,
    ) -> CompareJob:
        workdir = Path(tempfile.mkdtemp(prefix="pytest-runtime-mcp-"))
        report = workdir / "report.json"
        argv = [settings.python, "-m", "pytest"]
        cwd = settings.project_dir
        if nodeid is not None:
            argv.append(nodeid)
        else:
            (workdir / "test_marker_spec.py").write_text(_MARKER_TEST, encoding="utf-8")
            (workdir / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
            # Run from the project (``python -m`` puts it on sys.path), so that the test process
            # imports the location's module as the project's tests would: a marker whose
            # module cannot be imported fails its test (the plugin's misconfiguration check).
            argv += [str(workdir / "test_marker_spec.py"), "-c", str(workdir / "pytest.ini")]
        argv += [
            "-p", "no:cacheprovider", "-q", "--color=no",
            "--runtime-probe", "--runtime-hub", settings.hub,
            "--runtime-wait", f"{wait:g}",
            "--runtime-report-json", str(report),
        ]  # fmt: skip
        if service:
            argv += ["--runtime-service", service]
        if min_hits is not None:
            argv += ["--runtime-min-hits", str(min_hits)]
        env = dict(os.environ)
        env.pop(ENV_MARKER, None)
        if settings.token:
            env["SENSOR_CLIENT_TOKEN"] = settings.token  # never on the command line
        if marker is not None:
            argv += ["-p", "pytest_runtime.mcp._marker_plugin"]
            env[ENV_MARKER] = json.dumps(marker, sort_keys=True)
        output = open(workdir / "output.txt", "wb")  # noqa: SIM115 - the child owns it
        try:
            proc = subprocess.Popen(
                argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # stop the run and whatever it started as one group
            )
        finally:
            output.close()
        now = time.monotonic()
        return cls(
            id="cmp-" + uuid.uuid4().hex[:12],
            nodeid=nodeid,
            marker=marker,
            argv=argv,
            workdir=workdir,
            started=now,
            started_at=time.time(),
            deadline=now + wait + 180.0,  # test time + placing + waiting + comparing
            proc=proc,
        )

    @property
    def running(self) -> bool:
        if self.proc.poll() is None and time.monotonic() > self.deadline:
            self.stop("the run took longer than its wait plus 180 s")
        return self.proc.poll() is None

    def stop(self, why: str) -> None:
        """Interrupt the run (pytest removes the probes it placed), then kill what is left."""
        if self.proc.poll() is not None:
            return
        self.stopped = why
        for sig, grace in ((signal.SIGINT, 15.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(grace)
                return
            except subprocess.TimeoutExpired:
                continue

    def close(self) -> None:
        self.stop("the MCP session ended")
        shutil.rmtree(self.workdir, ignore_errors=True)

    def describe(self) -> dict[str, Any]:
        shown = list(self.argv[1:])
        return {
            "job_id": self.id,
            "nodeid": self.nodeid,
            "marker": self.marker,
            "command": "python " + " ".join(shown),
            "running_for_seconds": round(time.monotonic() - self.started),
        }

    def output_lines(self) -> list[str]:
        path = self.workdir / "output.txt"
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        from sensor.redaction import get_redactor

        redactor = get_redactor()
        return [redactor.redact_text(line)[:240] for line in text.splitlines()]

    def result(self) -> dict[str, Any]:
        """The finished run: exit status, the plugin's verdicts, and what pytest printed."""
        code = self.proc.returncode
        lines = self.output_lines()
        answer: dict[str, Any] = {
            **self.describe(),
            "state": "finished",
            "exit_code": code,
            "exit_meaning": _EXIT.get(code, "pytest ended with an unexpected status"),
            "pytest_summary": next((line for line in reversed(lines) if line.strip()), ""),
        }
        if self.stopped:
            answer["stopped_by_server"] = self.stopped
        report = self.workdir / "report.json"
        if not report.exists():
            answer["problem"] = (
                "pytest wrote no report: the run failed before the comparison; read pytest_output"
            )
            answer["pytest_output"] = lines[-30:]
            return answer
        results = _results(json.loads(report.read_text(encoding="utf-8")))
        answer["verdicts"] = [_verdict(r) for r in results[:10]]
        if len(results) > 10:
            answer["verdicts_not_shown"] = len(results) - 10
        if not results:
            answer["problem"] = (
                "the test has no runtime_probe marker, so there was nothing to compare: "
                "pass marker={...} with the location, capture and expect to compare"
            )
        answer["pytest_printed"] = _section(lines)
        if code not in (0, 1):
            answer["pytest_output"] = lines[-30:]
        return answer


def _results(report: dict[str, Any]) -> list[Any]:
    from pytest_runtime.compare import ProbeResult
    from pytest_runtime.reporting._common import sorted_results

    return sorted_results(ProbeResult.from_dict(entry) for entry in report.get("results", []))


def _verdict(result: Any) -> dict[str, Any]:
    verdict = result.verdict
    divergences = []
    for d in verdict.divergences[:5]:
        item: dict[str, Any] = {
            "kind": d.kind,
            "severity": d.severity,
            "path": d.path,
            "message": d.message,
            "hits": d.count,
            "share": round(d.share, 4),
            "hit_ids": list(d.hit_ids[:3]),
        }
        if d.deepdiff:
            item["deepdiff"] = list(d.deepdiff[:4])
        if d.representative is not None:
            item["production_state"], _ = shrink(d.representative, 700)
        divergences.append(item)
    entry: dict[str, Any] = {
        "nodeid": result.nodeid,
        "location": result.location,
        "verdict": verdict.verdict,
        "fails_the_run": verdict.fails,
        "hits": {
            "production": verdict.counts.get("prod_hits", 0),
            "test": verdict.counts.get("test_hits", 0),
        },
        "state_coverage": round(verdict.state_coverage, 4),
        "divergences": divergences,
    }
    hidden = len(verdict.divergences) - 5 + verdict.counts.get("divergences_cut", 0)
    if hidden > 0:
        entry["divergences_not_shown"] = hidden
    if verdict.hint:
        entry["hint"] = verdict.hint
    return entry


def _section(lines: list[str]) -> list[str]:
    """The ``runtime probes`` section pytest printed (the plugin's terminal summary), bounded."""
    out: list[str] = []
    inside = False
    for line in lines:
        if _SECTION.match(line.strip()):
            inside = True
            continue
        if inside and _RULE.match(line.strip()):
            break
        if inside:
            out.append(line)
    if len(out) > 40:
        out = [*out[:40], f"... {len(out) - 40} more line(s)"]
    return out
