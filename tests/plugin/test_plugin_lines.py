"""Lines probes: the lines production ran and no test did, against coverage.py's data.

Production is a real process running the sensor's engine with a ``lines`` probe; pytest then
runs the tests with their coverage measured by the plugin, by pytest-cov, and under xdist.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import pytest

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "reference" / "report.schema.json"

CODE = """
def ship(country, postcode, waitlist=False):
    zone = 1
    if country != "US":
        zone = 3
    if waitlist:
        zone += 10
        zone *= 2
    if postcode and postcode[:1] == "9":
        zone += 1
    return zone
"""

PRODUCTION_RUN = """
import json, sys
sys.path.insert(0, sys.argv[1])
from sensor.engine import Engine
from pytest_runtime.evidence import Evidence, write
from pytest_runtime.markers import parse_probe_args
import shipping
hits = []
engine = Engine(cpu_budget=1.0)
probe = parse_probe_args(("shipping:ship",), {"kind": "lines"}).probe
probe = probe.with_changes(limits={"rate": 1e9, "burst": 10**9})
status = engine.install(probe, on_hit=hits.append)
assert str(status.state) == "installed", status.reason
for i in range(50):
    shipping.ship("US" if i % 2 else "DE", "94103" if i % 5 == 0 else "10001", i % 10 < 4)
evidence = Evidence()
evidence.add_hits([hit.to_dict() for hit in hits])
write(sys.argv[2], evidence)
print(len(hits))
"""

TESTS = """
import pytest
from shipping import ship

@pytest.mark.runtime_probe("shipping:ship", kind="lines")
def test_ship_domestic():
    assert ship("US", "10001") == 1

def test_ship_abroad():
    assert ship("DE", "10115") == 3
"""


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    prod = tmp_path / "prod"
    prod.mkdir()
    (prod / "shipping.py").write_text(CODE)
    out = tmp_path / "evidence.jsonl"
    run = subprocess.run(
        [sys.executable, "-c", PRODUCTION_RUN, str(prod), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "50"
    return out


def _line(text: str) -> int:
    return next(n for n, line in enumerate(CODE.splitlines(), start=1) if text in line)


def _project(pytester: pytest.Pytester, code: str = CODE) -> None:
    (pytester.path / "shipping.py").write_text(code)  # as is: its line numbers matter
    pytester.makepyfile(test_shipping=TESTS)
    pytester.syspathinsert()


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param([], id="own-measurement"),
        pytest.param(["-n", "2"], id="xdist"),
        pytest.param(["-p", "pytest_cov", "--cov=shipping", "--cov-branch"], id="pytest-cov"),
        pytest.param(
            ["-p", "pytest_cov", "--cov=shipping", "--cov-branch", "-n", "2"], id="pytest-cov-xdist"
        ),
    ],
)
def test_production_only_lines_are_named(
    pytester: pytest.Pytester, evidence: Path, extra: list[str]
) -> None:
    _project(pytester)
    report = pytester.path / "report.json"
    result = pytester.runpytest_subprocess(
        "--runtime-evidence", str(evidence), "--runtime-report-json", str(report), *extra
    )
    result.assert_outcomes(passed=2)
    waitlist, west = _line("if waitlist:"), _line('postcode[:1] == "9"')
    # 20 of the 50 sampled calls took the waitlist; 10 had a west-coast postcode
    result.stdout.fnmatch_lines(
        [
            f"*lines {waitlist + 1}-{waitlist + 2} (the branch at line {waitlist}: "
            "`if waitlist:`) ran on 40% of production calls (20 of 50 sampled calls); "
            "no test reached them*",
            f"*line {west + 1} (the branch at line {west}: *) ran on 20% of production calls "
            "(10 of 50 sampled calls); no test reached it*",
        ]
    )
    data = json.loads(report.read_text())
    jsonschema.validate(data, json.loads(SCHEMA.read_text()))  # the published schema holds
    entry = data["results"][0]
    assert entry["verdict"] == "diverged"
    assert {d["key"] for d in entry["divergences"]} >= {
        f"lines:{waitlist + 1}-{waitlist + 2}",
        f"lines:{west + 1}-{west + 1}",
    }
    # test_ship_abroad (unmarked) reached `zone = 3`: the whole run's coverage counts
    assert not any(d["key"] == f"lines:{_line('zone = 3')}-" for d in entry["divergences"])
    assert entry["counts"]["production_only_lines"] == 3


def test_lines_probe_with_other_source_is_inconclusive(
    pytester: pytest.Pytester, evidence: Path
) -> None:
    _project(pytester, "# moved down\n" + CODE)
    result = pytester.runpytest_subprocess("--runtime-evidence", str(evidence))
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*production runs other source for shipping:ship*"])


def test_fail_under_gates_state_and_line_coverage(
    pytester: pytest.Pytester, evidence: Path
) -> None:
    _project(pytester)
    report = pytester.path / "report.json"
    failing = pytester.runpytest_subprocess(
        "--runtime-evidence",
        str(evidence),
        "--runtime-fail-under",
        "80",
        "--runtime-report-json",
        str(report),
    )
    assert failing.ret == pytest.ExitCode.TESTS_FAILED
    failing.stdout.fnmatch_lines(
        [
            "*runtime coverage: production-run lines the tests ran 66.67% (6 of 9; 3 "
            "production-only, 1 lines probe(s))*",
            "*FAIL Required runtime coverage of 80% not reached: production-line coverage "
            "66.67% (6 of 9 production-run lines)*",
        ]
    )
    data = json.loads(report.read_text())
    assert data["coverage"]["lines"] == {
        "covered": 6,
        "of": 9,
        "over": "production-run lines",
        "percent": 66.67,
        "probes": 1,
        "production_only": 3,
    }
    assert data["coverage"]["fail_under"]["passed"] is False
    passing = pytester.runpytest_subprocess(
        "--runtime-evidence", str(evidence), "--runtime-fail-under", "60"
    )
    assert passing.ret == pytest.ExitCode.OK
    bad = pytester.runpytest_subprocess("--runtime-fail-under", "80")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--runtime-fail-under*production evidence*"])
