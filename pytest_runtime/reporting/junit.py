"""JUnit XML properties for a probe result (``record_property`` / ``add_global_property``).

Property values are strings; names carry the probe location so that several markers on one
test stay apart. (pytest's ``record_property`` output is not valid xunit2: use xunit1.)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pytest_runtime.compare import ProbeResult

__all__ = ["properties", "record"]


def properties(result: ProbeResult) -> list[tuple[str, str]]:
    """``(name, value)`` pairs describing one result, in a fixed order."""
    v = result.verdict
    prefix = f"runtime[{result.location}]"
    pairs = [
        (f"{prefix}.verdict", v.verdict),
        (f"{prefix}.prod_hits", str(v.counts.get("prod_hits", 0))),
        (f"{prefix}.test_hits", str(v.counts.get("test_hits", 0))),
        (f"{prefix}.state_coverage", f"{v.state_coverage:.4f}"),
        (f"{prefix}.divergences", str(len(v.divergences))),
    ]
    if v.divergences:
        top = v.divergences[0]
        pairs.append((f"{prefix}.top", f"{top.severity} {top.kind} {top.path}: {top.message}"))
    return pairs


def record(record_property: Callable[[str, object], None], results: Sequence[ProbeResult]) -> int:
    """Record the properties of ``results`` with pytest's ``record_property``; return how many."""
    n = 0
    for result in sorted(results, key=lambda r: (r.location, r.signature)):
        for name, value in properties(result):
            record_property(name, value)
            n += 1
    return n
