"""Hub redaction rules add to the service's own SENSOR_REDACT_* rules, never replace them."""

from __future__ import annotations

from sensor.agent.lifecycle import merge_redaction
from sensor.redaction import Redactor


def test_hub_rules_are_added_to_the_local_ones() -> None:
    local = {"names": ["nickname"], "patterns": [r"ORD-\d+"], "allow": ["session"]}
    hub = {"names": ["loyalty_id"], "patterns": [r"LOY-\d+"], "allow": []}
    merged = merge_redaction(local, hub)
    assert merged["names"] == ["nickname", "loyalty_id"]
    assert merged["patterns"] == [r"ORD-\d+", r"LOY-\d+"]
    assert merged["allow"] == ["session"]


def test_hub_allow_list_cannot_unredact_a_locally_redacted_name() -> None:
    local = {"names": ["nickname"], "patterns": [], "allow": []}
    merged = merge_redaction(local, {"names": [], "patterns": [], "allow": ["nickname", "cookie"]})
    assert merged["allow"] == ["cookie"]
    redactor = Redactor()
    redactor.update(**merged)
    assert redactor.is_secret_name("nickname")


def test_malformed_hub_lists_are_ignored_not_applied() -> None:
    local = {"names": ["nickname"], "patterns": [], "allow": []}
    merged = merge_redaction(local, {"names": "everything", "patterns": [1, None], "allow": None})
    assert merged == {"names": ["nickname"], "patterns": [], "allow": []}


def test_merged_rules_keep_local_names_after_a_hub_update() -> None:
    redactor = Redactor()
    redactor.update(names=["nickname"])
    merged = merge_redaction(redactor.to_dict(), {"names": ["loyalty_id"]})
    redactor.update(**merged)
    assert redactor.is_secret_name("nickname")
    assert redactor.is_secret_name("loyalty_id")
