"""JUnit XML for probe results: properties, and a failing test case for each failing verdict.

Property values are strings; names carry the probe location so that several markers on one
test stay apart. (pytest's ``record_property`` output is not valid xunit2: the plugin writes
verdicts as test-suite properties, which are.) A verdict that fails the run is also written
as a test case of its own, named after the test and the probe, with a ``<failure>``: CI test
views (which read test cases, not properties) then show a red test where the run failed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pytest_runtime.compare import ProbeResult
from pytest_runtime.reporting._common import coverage_text, divergence_line, escape_text, reason

__all__ = ["add_failures", "failure_text", "properties", "record", "testcase_name"]

_MAX_DETAIL_LINES = 40


def properties(result: ProbeResult) -> list[tuple[str, str]]:
    """``(name, value)`` pairs describing one result, in a fixed order."""
    v = result.verdict
    prefix = f"runtime[{result.location}]"
    pairs = [
        (f"{prefix}.verdict", v.verdict),
        (f"{prefix}.prod_hits", str(v.counts.get("prod_hits", 0))),
        (f"{prefix}.test_hits", str(v.counts.get("test_hits", 0))),
        # In words, with what it is over: a bare 1.0000 next to a failing verdict read as a
        # contradiction ("all covered", yet violated). The JSON report keeps the number.
        (f"{prefix}.state_coverage", coverage_text(v)),
        (f"{prefix}.divergences", str(len(v.divergences))),
    ]
    if v.divergences:
        top = v.divergences[0]
        pairs.append((f"{prefix}.top", f"{top.severity} {top.kind} {top.path}: {top.message}"))
    why = reason(result)
    if why:
        pairs.append((f"{prefix}.reason", why))
    return [(name, escape_text(value)) for name, value in pairs]


def record(record_property: Callable[[str, object], None], results: Sequence[ProbeResult]) -> int:
    """Record the properties of ``results`` with pytest's ``record_property``; return how many."""
    n = 0
    for result in sorted(results, key=lambda r: (r.location, r.signature)):
        for name, value in properties(result):
            record_property(name, value)
            n += 1
    return n


def testcase_name(result: ProbeResult) -> tuple[str, str]:
    """(classname, name) of a verdict's own test case: the test's class path, and
    ``<test name>[runtime <location>]``, so that it sorts next to the test it belongs to."""
    from _pytest.junitxml import mangle_test_address

    names = mangle_test_address(result.nodeid)
    return ".".join(names[:-1]), f"{names[-1]}[runtime {result.location}]"


def failure_text(result: ProbeResult) -> tuple[str, str]:
    """The ``<failure>``'s one-line message and its details (escaped, bounded)."""
    v = result.verdict
    prod = v.counts.get("prod_hits", 0)
    message = f"runtime probe {v.verdict}: {result.location} against {prod} production hit(s)" + (
        f": {v.divergences[0].message}" if v.divergences else ""
    )
    lines = [message]
    for d in v.divergences:
        lines.append(divergence_line(d))
        lines.extend("    " + x for x in d.deepdiff[:4])
        if d.hit_ids:
            lines.append("    hits: " + ", ".join(d.hit_ids[:5]))
    why = reason(result)
    if why:
        lines.append(why)
    if v.hint:
        lines.append(v.hint)
    if len(lines) > _MAX_DETAIL_LINES:
        lines = [*lines[:_MAX_DETAIL_LINES], f"... {len(lines) - _MAX_DETAIL_LINES} more line(s)"]
    from _pytest.junitxml import bin_xml_escape

    return (
        bin_xml_escape(escape_text(message)),
        bin_xml_escape("\n".join(escape_text(line) for line in lines)),
    )


def add_failures(xml: Any, results: Sequence[ProbeResult]) -> bool:
    """Add a failing test case per result to pytest's ``LogXML``; False if it cannot.

    Uses the same calls pytest's own reporter makes for a test (``node_reporter``, the
    family's allowed attributes), so the testcase is valid in xunit1 and xunit2 alike.
    """
    import xml.etree.ElementTree as ET

    try:
        from _pytest.junitxml import families
    except ImportError:  # pragma: no cover - pytest moved it
        return False
    if not results:
        return True
    family = getattr(xml, "family", "xunit1")
    allowed = families.get(family, families.get("_base", {})).get("testcase", ())
    try:
        for result in sorted(results, key=lambda r: (r.nodeid, r.location, r.signature)):
            classname, name = testcase_name(result)
            key = f"{result.nodeid}::runtime[{result.location}]"
            reporter = xml.node_reporter(key)
            attrs = {"classname": classname, "name": name, "file": result.test_file}
            if result.test_line:
                attrs["line"] = str(result.test_line)
            reporter.attrs.update({k: v for k, v in attrs.items() if k in allowed and v})
            message, details = failure_text(result)
            failure = ET.Element("failure", message=message)
            failure.text = details
            reporter.append(failure)  # counts it in the suite's "failures"
    except (AttributeError, TypeError):  # a pytest whose LogXML differs: properties only
        return False
    return True
