"""Session helpers that need no engine: value rendering, serializers, violation messages."""

from __future__ import annotations

from typing import Any

from pytest_runtime.markers import parse_probe_args
from pytest_runtime.session import (
    ArmedProbe,
    TestRecord,
    _status_notes,
    _violations,
    apply_serializers,
    render_value,
)


def test_render_value_shows_typed_values_readably() -> None:
    assert render_value(3) == "3"
    assert render_value("a") == "'a'"
    assert render_value(None) == "null"
    assert render_value({"@t": "decimal.Decimal", "v": "-1.50"}) == "Decimal('-1.50')"
    assert render_value({"@t": "str", "@redacted": "card", "@len": "9-32"}) == (
        "<str redacted: card>"
    )
    assert render_value({"@t": "list", "v": [1, 2]}) == "list([1, 2])"
    assert render_value({"@t": "shop.Cart", "@attrs": {"n": 1}}) == 'Cart({"n": 1})'
    assert render_value("x" * 500, limit=20).endswith("...")
    assert len(render_value("x" * 500, limit=20)) == 20


def test_serializers_replace_encoded_values_of_their_type_only() -> None:
    hits = [
        {
            "captures": {
                "m": {"@t": "money.Money", "@attrs": {"cents": 5}},
                "l": {"@t": "list", "v": [{"@t": "money.Money", "@attrs": {"cents": 7}}]},
                "n": 1,
            }
        }
    ]

    def money(value: dict[str, Any]) -> Any:
        return {"@t": "money.Money", "v": value["@attrs"]["cents"] / 100}

    out = apply_serializers(hits, {"money.Money": money})
    assert out[0]["captures"]["m"] == {"@t": "money.Money", "v": 0.05}
    assert out[0]["captures"]["l"]["v"][0] == {"@t": "money.Money", "v": 0.07}
    assert out[0]["captures"]["n"] == 1
    assert hits[0]["captures"]["m"]["@attrs"] == {"cents": 5}  # inputs untouched


def test_a_failing_serializer_marks_the_value_instead_of_raising() -> None:
    def broken(value: dict[str, Any]) -> Any:
        raise KeyError("cents")

    out = apply_serializers([{"captures": {"m": {"@t": "T"}}}], {"T": broken})
    assert out[0]["captures"]["m"]["@error"].startswith("serializer failed")


def armed_with(*expects: dict[str, Any]) -> ArmedProbe:
    request = parse_probe_args(
        ("shop.pricing:apply_discount",), {"capture": ["price"], "expect": "result >= 0"}
    )
    armed = ArmedProbe(request, request.probe)
    for n, expect in enumerate(expects):
        armed.hits.append({"captures": {"price": n, "result": -n}, "expect": expect, "line": 7})
    return armed


def test_no_violation_message_when_every_hit_kept_the_expectation() -> None:
    assert _violations(armed_with({"ok": True}, {"ok": True})) is None
    assert _violations(armed_with()) is None


def test_violation_message_names_the_probe_the_expectation_and_the_values() -> None:
    message = _violations(armed_with({"ok": True}, {"ok": False}, {"ok": None, "error": "boom"}))
    assert message is not None
    assert message.splitlines()[0] == (
        "runtime_probe shop.pricing:apply_discount@return: expect 'result >= 0' was "
        "false on 1 and not evaluable on 1 of 3 test-time hit(s)"
    )
    assert "  hit line 7: price=1, result=-1" in message
    assert "    error: boom" in message


def test_test_record_round_trips_for_xdist() -> None:
    request = parse_probe_args(("m:f",), {"capture": ["x"]})
    record = TestRecord("t.py::test", "t.py", 3, [request], {request.signature: [{"a": 1}]})
    copy = TestRecord.from_dict(record.to_dict())
    assert copy.nodeid == "t.py::test"
    assert copy.line == 3
    assert copy.requests[0].signature == request.signature
    assert copy.hits == record.hits


def test_a_rerun_adds_its_states_to_the_same_test_record() -> None:
    from pytest_runtime.options import RuntimeOptions
    from pytest_runtime.session import RuntimeSession

    class Config:
        pass

    session = RuntimeSession(Config(), RuntimeOptions())  # type: ignore[arg-type]
    first = parse_probe_args(("m:f",), {"capture": ["x"]})
    other = parse_probe_args(("m:g",), {"capture": ["x"]})
    session.add_record(TestRecord("t::a", "t.py", 1, [first], {first.signature: [{"n": 1}]}))
    session.add_record(
        TestRecord("t::a", "t.py", 1, [first, other], {first.signature: [{"n": 2}]}, "failed")
    )
    session.add_record(TestRecord("t::b", "t.py", 9, [first], {}))
    assert [r.nodeid for r in session.records] == ["t::a", "t::b"]
    record = session.records[0]
    assert [r.signature for r in record.requests] == [first.signature, other.signature]
    assert record.hits[first.signature] == [{"n": 1}, {"n": 2}]
    assert record.outcome == "failed"  # any failed run marks the merged record


def test_function_id_drops_the_parametrization_only() -> None:
    from pytest_runtime.session import function_id

    assert function_id("t.py::test_f[1-a]") == "t.py::test_f"
    assert function_id("t.py::TestC::test_f[x[0]]") == "t.py::TestC::test_f"
    assert function_id("t.py::test_f") == "t.py::test_f"


def _record(*states: tuple[str, str | None]) -> dict[str, Any]:
    return {
        "statuses": {
            f"src{n}": {"state": state, "reason": reason}
            for n, (state, reason) in enumerate(states)
        }
    }


def test_status_notes_group_sources_by_reason_with_figures_blanked() -> None:
    record = _record(
        ("installed", None),
        ("disabled", "cpu budget exceeded: 1.3% of 1%"),
        ("disabled", "cpu budget exceeded: 2.1% of 1%"),
        ("error", "target not found: shop:nope"),
    )
    notes, masters = _status_notes("shop:f@return", record)
    assert masters == set()
    assert notes == [
        "shop:f@return: disabled on 2 of 4 source(s): cpu budget exceeded: 1.3% of 1%",
        "shop:f@return: error on 1 of 4 source(s): target not found: shop:nope",
    ]


def test_a_master_that_never_imports_the_module_is_explained_not_alarming() -> None:
    record = _record(
        ("installed", None),
        ("installed", None),
        ("pending", "waiting for module 'shop' to be imported"),
    )
    notes, masters = _status_notes("shop:f@return", record)
    # Said once for the whole run (in the report header), not once per probe.
    assert notes == []
    assert masters == {"src2"}


def test_no_source_importing_the_module_points_at_the_location() -> None:
    record = _record(("pending", "waiting for module 'shpo' to be imported"))
    (note,), masters = _status_notes("shpo:f@return", record)
    assert masters == set()
    assert "check the module name of the location" in note
