"""Production-only lines: the lines and branches production ran and no test did.

A ``lines`` probe records, for sampled calls of one function in production, which of its lines
ran (one hit per call). The test run's own coverage comes from coverage.py, through its API:

- the data pytest-cov collected (``--cov``), combined over xdist workers by pytest-cov;
- else the plugin's own measurement of the marked functions' files (a ``coverage.Coverage``
  started before the first test, per process; xdist workers send their lines and arcs to the
  controller);
- else, if coverage.py measured nothing of the file, the lines the marked tests ran by the same
  lines probe armed at test time (said in the verdict).

Lines are compared as statements (coverage.py's parser maps every line of a multi-line
statement to its first line). Branches production took are inferred from each call's lines:
from a line with several exits, an exit was taken when its destination ran and no other exit's
did (a loop that runs both is not counted). A production-only run of statements becomes one
``path`` divergence: "lines 42-44 (the branch at line 41: ``if waitlist:``) ran on 38% of
production calls (38 of 100 sampled calls); no test reached them".
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "COVERAGE_KEY",
    "LineFinding",
    "OwnMeasurement",
    "TestLines",
    "function_file",
    "lines_verdict",
    "pytest_cov_lines",
]

#: The key of the own measurement's data in xdist's workeroutput.
COVERAGE_KEY = "pytest_runtime_coverage"
_MAX_RANGES = 20  # production-only ranges reported per probe (the rest counted)


@dataclasses.dataclass
class TestLines:
    """What the test run executed, per file: lines (statements or raw) and arcs if measured."""

    __test__ = False  # not a test class

    origin: str  #: "pytest-cov", "coverage.py (pytest-runtime)", "coverage.py"
    lines: dict[str, set[int]] = dataclasses.field(default_factory=dict)
    arcs: dict[str, set[tuple[int, int]]] | None = None

    def merge(self, data: Mapping[str, Any]) -> None:
        """Add one worker's measurement (:meth:`to_data` of its own TestLines)."""
        for name, lines in (data.get("lines") or {}).items():
            self.lines.setdefault(name, set()).update(int(n) for n in lines)
        arcs = data.get("arcs")
        if arcs is not None:
            if self.arcs is None:
                self.arcs = {}
            for name, pairs in arcs.items():
                self.arcs.setdefault(name, set()).update((int(a), int(b)) for a, b in pairs)

    def to_data(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "lines": {k: sorted(v) for k, v in self.lines.items()},
            "arcs": None
            if self.arcs is None
            else {k: sorted(map(list, v)) for k, v in self.arcs.items()},
        }

    def for_file(self, filename: str) -> tuple[set[int], set[tuple[int, int]] | None] | None:
        key = _canonical(filename)
        for name, lines in self.lines.items():
            if _canonical(name) == key:
                arcs = None if self.arcs is None else self.arcs.get(name, set())
                return lines, arcs
        return None


def _canonical(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def function_file(location: str) -> str | None:
    """The source file of a location's module, found without importing it (None if unknown)."""
    import importlib.util

    module = location.partition(":")[0]
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    origin = getattr(spec, "origin", None)
    return _canonical(origin) if origin and origin.endswith(".py") else None


def _from_data(data: Any, origin: str, files: Iterable[str] | None = None) -> TestLines:
    """Lines and arcs of a ``coverage.CoverageData`` (only ``files`` when given)."""
    wanted = None if files is None else {_canonical(f) for f in files}
    out = TestLines(origin)
    has_arcs = bool(data.has_arcs())
    if has_arcs:
        out.arcs = {}
    for name in data.measured_files():
        if wanted is not None and _canonical(name) not in wanted:
            continue
        out.lines[name] = set(data.lines(name) or ())
        if has_arcs and out.arcs is not None:
            out.arcs[name] = set(data.arcs(name) or ())
    return out


def pytest_cov_lines(config: Any) -> TestLines | None:
    """pytest-cov's measurement of this run (after its own finish: xdist combined), or None."""
    plugin = config.pluginmanager.getplugin("_cov")
    controller = getattr(plugin, "cov_controller", None)
    cov = getattr(controller, "cov", None)
    if cov is None:
        return None
    try:
        return _from_data(cov.get_data(), "pytest-cov")
    except Exception:  # pytest-cov's data is its own: a failure to read it is said, not raised
        return None


class OwnMeasurement:
    """coverage.py started by the plugin on the marked functions' files (no data file)."""

    def __init__(self, files: Sequence[str]) -> None:
        import coverage

        self.files = sorted(set(files))
        self.cov = coverage.Coverage(
            data_file=None, branch=True, include=self.files, config_file=False
        )
        self.running = False

    def start(self) -> None:
        self.cov.start()
        self.running = True

    def stop(self) -> TestLines:
        if self.running:
            self.cov.stop()
            self.running = False
        return _from_data(self.cov.get_data(), "coverage.py (pytest-runtime)", self.files)


@dataclasses.dataclass(frozen=True)
class LineFinding:
    """One production-only range of statements, or one production-only branch."""

    first: int
    last: int
    calls: int  #: sampled production calls that ran it
    of: int  #: sampled production calls
    branch_line: int | None = None  #: the line whose branch leads there
    branch_text: str = ""
    arc: tuple[int, int] | None = None  #: a production-only branch between covered lines

    @property
    def key(self) -> str:
        if self.arc is not None:
            return f"branch:{self.arc[0]}->{self.arc[1]}"
        return f"lines:{self.first}-{self.last}"

    def message(self) -> str:
        share = self.calls / self.of if self.of else 0.0
        ran = f"ran on {share:.0%} of production calls ({self.calls} of {self.of} sampled calls)"
        if self.arc is not None:
            return (
                f"the branch from line {self.arc[0]} to line {self.arc[1]}"
                f"{_quote(self.branch_text)} {ran}; no test took it"
            )
        span = (
            f"line {self.first}" if self.first == self.last else (f"lines {self.first}-{self.last}")
        )
        via = (
            f" (the branch at line {self.branch_line}{_quote(self.branch_text)})"
            if self.branch_line is not None
            else ""
        )
        reached = "it" if self.first == self.last else "them"
        return f"{span}{via} {ran}; no test reached {reached}"


def _quote(text: str) -> str:
    return f": `{text}`" if text else ""


def _source_digest(filename: str, first: int, last: int) -> str:
    import hashlib
    import linecache

    linecache.checkcache(filename)
    text = "\n".join(linecache.getline(filename, n).rstrip() for n in range(first, last + 1))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def production_only(
    hits: Sequence[Mapping[str, Any]],
    filename: str,
    tested: set[int],
    tested_arcs: set[tuple[int, int]] | None,
) -> tuple[list[LineFinding], dict[str, int]]:
    """The production-only ranges and branches of one function, and the counts behind them."""
    import linecache

    from coverage.parser import PythonParser

    parser = PythonParser(filename=filename)
    parser.parse_source()
    statements = sorted(parser.statements)
    first = min(int(h["lines"]["first"]) for h in hits)
    last = max(int(h["lines"]["last"]) for h in hits)
    inside = [s for s in statements if first <= s <= last]
    index = {s: i for i, s in enumerate(inside)}
    runs = [parser.first_lines(h["lines"].get("ran") or ()) & set(inside) for h in hits]
    prod = set().union(*runs) if runs else set()
    covered = parser.first_lines(tested) & set(inside)
    only = sorted(prod - covered)
    arcs = {(a, b) for a, b in parser.arcs() if a in index and (b in index or b < 0)}
    exits: dict[int, set[int]] = {}
    for a, b in arcs:
        if b > 0 and a != b:
            exits.setdefault(a, set()).add(b)
    findings: list[LineFinding] = []
    group: list[int] = []
    sentinel: list[int | None] = [*only, None]
    for statement in sentinel:
        if group and (statement is None or index[statement] != index[group[-1]] + 1):
            calls = sum(1 for ran in runs if ran & set(group))
            start = group[0]
            sources = sorted(a for a, dests in exits.items() if start in dests and len(dests) > 1)
            branch = sources[-1] if sources else None
            text = linecache.getline(filename, branch).strip()[:60] if branch else ""
            findings.append(LineFinding(group[0], group[-1], calls, len(hits), branch, text))
            group = []
        if statement is not None:
            group.append(statement)
    if tested_arcs is not None:
        taken: dict[tuple[int, int], int] = {}
        for ran in runs:
            for a, dests in exits.items():
                if a not in ran or len(dests) < 2:
                    continue
                hit = [b for b in dests if b in ran]
                if len(hit) == 1:
                    taken[(a, hit[0])] = taken.get((a, hit[0]), 0) + 1
        tested_first = {
            (min(parser.first_lines([a])), min(parser.first_lines([b])))
            for a, b in tested_arcs
            if a > 0 and b > 0
        }
        for (a, b), calls in sorted(taken.items()):
            if (a, b) in tested_first or b not in covered or a not in covered:
                continue  # tested, or its lines are already reported as production-only
            text = linecache.getline(filename, a).strip()[:60]
            findings.append(LineFinding(a, b, calls, len(hits), a, text, arc=(a, b)))
    counts = {
        "prod_lines": len(prod),
        "covered_lines": len(prod & covered),
        "production_only_lines": len(prod - covered),
        "function_statements": len(inside),
    }
    return findings, counts


def lines_verdict(
    prod_hits: Sequence[Mapping[str, Any]],
    test_hits: Sequence[Mapping[str, Any]],
    *,
    location: str,
    tested: TestLines | None,
    min_hits: int,
    strict: bool,
) -> Any:
    """The verdict of one ``lines`` probe (see the module doc): ok, diverged or inconclusive."""
    from pytest_runtime.compare import Divergence, ProbeVerdict

    hits = [h for h in prod_hits if isinstance(h.get("lines"), Mapping)]
    filename = function_file(location)
    counts: dict[str, int] = {"prod_hits": len(hits), "test_hits": len(test_hits)}

    def verdict(kind: str, hint: str, divergences: Sequence[Any] = (), **more: int) -> Any:
        counts.update(more)
        counts["divergences"] = len(divergences)
        coverage = (
            counts.get("covered_lines", 0) / counts["prod_lines"]
            if counts.get("prod_lines")
            else 0.0
        )
        return ProbeVerdict(
            verdict=kind,
            counts=counts,
            state_coverage=round(coverage, 6),
            divergences=tuple(divergences),
            hint=hint,
            strict=strict,
        )

    if filename is None:
        return verdict("inconclusive", f"the test process cannot find the source of {location}")
    if len(hits) < min_hits:
        return verdict(
            "inconclusive",
            f"only {len(hits)} sampled production call(s), {min_hits} needed: wait longer "
            "(--runtime-wait) or lower the minimum (--runtime-min-hits)",
        )
    spans = {(int(h["lines"]["first"]), int(h["lines"]["last"])) for h in hits}
    digests = {str(h["lines"].get("source")) for h in hits}
    first, last = min(s[0] for s in spans), max(s[1] for s in spans)
    if len(spans) > 1 or digests != {_source_digest(filename, first, last)}:
        return verdict(
            "inconclusive",
            f"production runs other source for {location} than the tests (its lines "
            f"{first}-{last} differ from {filename}): line numbers cannot be compared",
        )
    where = "the tests' coverage.py data"
    found = tested.for_file(filename) if tested is not None else None
    if found is None:
        # coverage.py did not measure the file: the lines the marked tests ran (test time)
        lines = {n for h in test_hits for n in (h.get("lines") or {}).get("ran", ())}
        found = (lines, None)
        where = "the lines the marked tests ran (coverage.py did not measure this file)"
    elif tested is not None:
        where = f"{tested.origin}'s data of the whole test run"
    findings, figures = production_only(hits, filename, found[0], found[1])
    findings.sort(key=lambda f: (-f.calls, f.first, f.key))
    divergences = [
        Divergence(
            kind="path",
            severity="medium" if f.arc is None else "low",
            path="lines",
            key=f.key,
            message=f.message(),
            count=f.calls,
            share=round(f.calls / f.of, 6) if f.of else 0.0,
            counted={"count": f.calls, "of": f.of, "over": "sampled calls", "lower_bound": False},
        )
        for f in findings[:_MAX_RANGES]
    ]
    hint = f"compared with {where}"
    if len(findings) > _MAX_RANGES:
        hint += f"; {len(findings) - _MAX_RANGES} more production-only ranges not shown"
    if found[1] is None and tested is not None and tested.arcs is None:
        hint += "; branches not compared (coverage.py measured no arcs: use --cov-branch)"
    return verdict("diverged" if divergences else "ok", hint, divergences, **figures)
