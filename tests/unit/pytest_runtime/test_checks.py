"""What production hits and statuses say about a misconfigured probe (pytest_runtime.checks)."""

from __future__ import annotations

from pytest_runtime.checks import is_probe_error, production_problem


def test_capture_limits_are_not_probe_errors() -> None:
    assert is_probe_error("capture 'x': no name 'x' at this point")
    assert is_probe_error("template: NameError: y")
    assert not is_probe_error("budget: encoded size reached max_bytes=65536")
    assert not is_probe_error("fields: kept 20 of 35 names (max_fields=20)")


def test_hits_with_probe_errors_are_counted_by_kind() -> None:
    hits = [{"errors": ["capture 'rate': no name 'rate' at this point"]} for _ in range(3)]
    hits.append({"errors": ["deadline: capture took longer than deadline_ms=10"]})
    assert production_problem(hits) == (
        "probe misconfigured in production: capture 'rate': no name 'rate' at this point "
        "(on 3 of 4 production hit(s))"
    )


def test_a_log_template_field_that_failed_counts() -> None:
    hits = [{"message": "total {!error: name 'x' is not defined}"}]
    assert "template: name 'x' is not defined (on 1 of 1" in str(production_problem(hits))
    budget = [{"message": "{!error: template time budget exhausted}"}]
    assert production_problem(budget) is None


def test_statuses_refusing_everywhere_or_counting_errors() -> None:
    refused = [
        {"state": "error", "reason": "not found: module 'shop' has no attribute 'nope'"},
        {"state": "error", "reason": "not found: module 'shop' has no attribute 'nope'"},
    ]
    assert production_problem([], refused) == (
        "probe misconfigured in production: refused by every source (2): not found: module "
        "'shop' has no attribute 'nope'"
    )
    mixed = [{"state": "error", "reason": "x"}, {"state": "installed"}]
    assert production_problem([], mixed) is None
    erring = [{"state": "installed", "errors": 7}, {"state": "installed", "errors": 0}]
    assert "failed on 7 firing(s) on 1 source(s)" in str(production_problem([], erring))


def test_clean_evidence_has_no_problem() -> None:
    assert production_problem([{"captures": {"x": 1}}], [{"state": "installed"}]) is None


def test_not_found_listing_puts_close_and_public_names_before_private_ones(
    tmp_path: object, monkeypatch: object
) -> None:
    """A framework module defines dozens of private helpers that sort before its public names
    (``_APIRouteLike`` < ``get_request_handler``): the listing, cut at a few names, showed
    only those. The names closest to the one asked come first, then the public ones."""
    import sys
    import types

    from pytest_runtime.checks import defined_here
    from sensor.probes import Probe

    module = types.ModuleType("framework_routing")
    source = "\n".join(
        [f"def _helper_{i:02d}(): pass" for i in range(40)]
        + [
            "def get_request_handler(): pass",
            "def serialize_response(): pass",
            "class APIRouter: pass",
        ]
    )
    exec(compile(source, "framework_routing.py", "exec"), module.__dict__)
    sys.modules["framework_routing"] = module
    try:
        probe = Probe.from_dict(
            {"kind": "snapshot", "location": "framework_routing:serialise_response"}
        )
        listing = defined_here(probe)
    finally:
        del sys.modules["framework_routing"]
    assert listing.startswith(
        "functions and classes of framework_routing: serialize_response, APIRouter, "
        "get_request_handler, _helper_00"
    ), listing
    assert listing.endswith("and 13 more"), listing
