"""The hub's redaction rules: admin-only replace, validation, poll answers, etag, persistence."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hub_helpers import ADMIN, CLIENT, SENSOR, auth, poll, register
from starlette.applications import Starlette
from starlette.testclient import TestClient

from sensor.hub import HubSettings, create_app
from sensor.hub.core import Hub
from sensor.hub.redaction import MAX_NAME_CHARS, MAX_PATTERN_CHARS, MAX_RULES
from sensor.hub.store import RedactionRecord, open_store
from sensor.redaction import Redactor

RULES = {"names": ["nickname"], "patterns": [r"\bORD-[0-9]{6}\b"], "allow": ["session"]}


def put(client: TestClient, body: Any, token: str | None = ADMIN) -> Any:
    headers = auth(token) if token else {}
    return client.put("/v1/redaction", json=body, headers=headers)


def refused(client: TestClient, body: Any) -> str:
    """The 422 message for ``body``; the rules stay as they were."""
    before = client.get("/v1/redaction", headers=auth(ADMIN)).json()
    answer = put(client, body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_rule"
    assert client.get("/v1/redaction", headers=auth(ADMIN)).json() == before
    message: str = error["message"]
    return message


# -- reading and replacing -----------------------------------------------------------------


def test_a_new_hub_has_no_rules_and_polls_carry_null(client: TestClient) -> None:
    answer = client.get("/v1/redaction", headers=auth(ADMIN))
    assert answer.status_code == 200
    assert answer.json() == {
        "redaction": {
            "names": [],
            "patterns": [],
            "allow": [],
            "updated_at": None,
            "updated_by": None,
        }
    }
    assert poll(client, register(client))["redaction"] is None


def test_admin_replaces_the_rules_and_every_poll_carries_them(client: TestClient) -> None:
    source_id = register(client)
    before = time.time()
    answer = put(client, RULES)
    assert answer.status_code == 200, answer.text
    stored = answer.json()["redaction"]
    assert {k: stored[k] for k in RULES} == RULES
    assert stored["updated_at"] >= before
    assert stored["updated_by"] == "admin (from start-up)"
    assert client.get("/v1/redaction", headers=auth(CLIENT)).json()["redaction"] == stored
    assert poll(client, source_id)["redaction"] == RULES
    assert poll(client, register(client, "billing"))["redaction"] == RULES


def test_a_put_replaces_everything_and_missing_lists_are_empty(client: TestClient) -> None:
    put(client, RULES)
    answer = put(client, {"names": ["  nickname  ", "nickname", "alias"]})
    assert answer.status_code == 200
    assert answer.json()["redaction"]["names"] == ["nickname", "alias"]  # stripped, deduplicated
    assert answer.json()["redaction"]["patterns"] == []
    assert answer.json()["redaction"]["allow"] == []
    cleared = put(client, {})
    assert cleared.status_code == 200
    source_id = register(client)
    assert poll(client, source_id)["redaction"] == {"names": [], "patterns": [], "allow": []}


def test_the_poll_answer_is_what_the_sensors_redactor_applies(client: TestClient) -> None:
    put(client, RULES)
    redaction = poll(client, register(client))["redaction"]
    redactor = Redactor()
    assert not redactor.is_secret_name("nickname")
    assert redactor.is_secret_name("session")
    redactor.update(**redaction)  # what sensor.agent does with the answer
    assert redactor.is_secret_name("nickname")
    assert redactor.is_secret_name("Nick-Name")
    assert not redactor.is_secret_name("session")  # allow un-redacts a default name
    assert redactor.is_secret_name("password")  # the defaults stay
    assert redactor.match_secret_value("order ORD-123456 shipped") == "pattern"
    assert redactor.match_secret_value("order ORD-12 shipped") is None


# -- etag and long polls -------------------------------------------------------------------


def test_new_rules_change_the_etag_and_the_same_rules_do_not(client: TestClient) -> None:
    source_id = register(client)
    first = poll(client, source_id)["etag"]
    put(client, RULES)
    second = poll(client, source_id)["etag"]
    assert second != first
    put(client, RULES)  # the same rules again: sensors holding them need not wake for nothing
    assert poll(client, source_id)["etag"] == second
    put(client, {**RULES, "names": ["alias"]})
    assert poll(client, source_id)["etag"] not in (first, second)


def test_putting_the_same_rules_again_wakes_no_poll(client: TestClient, hub: Hub) -> None:
    put(client, RULES)
    version = hub.notifier.version
    again = put(client, RULES)
    assert again.status_code == 200
    assert hub.notifier.version == version  # held polls keep waiting
    assert put(client, {"names": ["alias"]}).status_code == 200
    assert hub.notifier.version == version + 1


def test_a_held_long_poll_answers_at_once_with_new_rules(app: Starlette) -> None:
    async def scenario() -> tuple[float, dict[str, Any], str]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hub") as http:
            answer = await http.post(
                "/v1/sensors/register", json={"service": "shop"}, headers=auth(SENSOR)
            )
            path = f"/v1/sensors/{answer.json()['source_id']}/probes"
            etag = (await http.get(path, headers=auth(SENSOR))).json()["etag"]
            waiting = asyncio.create_task(
                http.get(path, params={"etag": etag, "wait": 60}, headers=auth(SENSOR))
            )
            await asyncio.sleep(0.2)
            assert not waiting.done()
            started = time.monotonic()
            changed = await http.put("/v1/redaction", json=RULES, headers=auth(ADMIN))
            assert changed.status_code == 200
            body = (await waiting).json()
            return time.monotonic() - started, body, etag

    elapsed, body, old_etag = asyncio.run(scenario())
    # Answered by the change, not at the end of the poll's 60 s wait (half of it: room for any
    # machine, where 5 s of a 10 s wait was a guess).
    assert elapsed < 30
    assert body["redaction"] == RULES
    assert body["etag"] != old_etag


# -- auth ----------------------------------------------------------------------------------


def test_no_token_is_401_for_reading_and_replacing(client: TestClient) -> None:
    assert client.get("/v1/redaction").status_code == 401
    answer = put(client, RULES, token=None)
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "missing_token"


@pytest.mark.parametrize("token", [SENSOR, CLIENT], ids=["sensor", "client"])
def test_only_an_admin_token_replaces_the_rules(client: TestClient, token: str) -> None:
    answer = put(client, RULES, token=token)
    assert answer.status_code == 403
    assert "needs scope 'admin'" in answer.json()["error"]["message"]
    assert poll(client, register(client))["redaction"] is None


def test_a_sensor_token_cannot_read_the_rules_but_a_client_can(client: TestClient) -> None:
    assert client.get("/v1/redaction", headers=auth(SENSOR)).status_code == 403
    assert client.get("/v1/redaction", headers=auth(CLIENT)).status_code == 200


# -- validation ----------------------------------------------------------------------------


def test_a_pattern_that_does_not_compile_is_named_with_the_reason(client: TestClient) -> None:
    message = refused(client, {"patterns": [r"ok-[0-9]{4}", "card=(\\d+"]})
    assert "patterns[1]" in message
    assert "'card=(\\\\d+'" in message
    assert "not a valid Python regular expression" in message
    assert "missing )" in message


def test_a_pattern_matching_the_empty_string_is_refused(client: TestClient) -> None:
    message = refused(client, {"patterns": ["x*"]})
    assert "patterns[0]" in message
    assert "empty string" in message


@pytest.mark.parametrize("pattern", [r"(a+)+$", r"(?:x(?:b+)+)?y", r"([a-z]+\.)*com"])
def test_nested_unbounded_repetition_is_refused(client: TestClient, pattern: str) -> None:
    message = refused(client, {"patterns": [pattern]})
    assert "patterns[0]" in message
    assert "exponential" in message


@pytest.mark.parametrize(
    "pattern", [r"(?:\d{4}-?){3}\d{4}", r"(?:[a-z]{1,63}\.){0,8}com", r"(?:foo|bar)+baz", r"a+b+"]
)
def test_bounded_or_flat_repetition_is_accepted(client: TestClient, pattern: str) -> None:
    assert put(client, {"patterns": [pattern]}).status_code == 200


@pytest.mark.parametrize(
    ("body", "field", "why"),
    [
        ({"names": [""]}, "names[0]", "non-empty"),
        ({"names": ["ok", "   "]}, "names[1]", "non-empty"),
        ({"names": ["--"]}, "names[0]", "letter or digit"),
        ({"names": [3]}, "names[0]", "expected a string"),
        ({"names": "nickname"}, "names", "expected a list of strings"),
        ({"allow": [None]}, "allow[0]", "expected a string"),
        ({"patterns": [""]}, "patterns[0]", "non-empty"),
        ({"names": ["n" * (MAX_NAME_CHARS + 1)]}, "names[0]", f"at most {MAX_NAME_CHARS}"),
        (
            {"patterns": ["p" * (MAX_PATTERN_CHARS + 1)]},
            "patterns[0]",
            f"at most {MAX_PATTERN_CHARS}",
        ),
        ({"names": [f"n{i}" for i in range(MAX_RULES + 1)]}, "names", f"at most {MAX_RULES}"),
        ({"names": ["nick_name"], "allow": ["NickName"]}, "allow[0]", "also in names"),
        ({"names": ["a"], "deny": ["b"]}, "redaction", "unknown field"),
    ],
)
def test_invalid_rules_are_422_naming_the_rule(
    client: TestClient, body: dict[str, Any], field: str, why: str
) -> None:
    message = refused(client, body)
    assert message.startswith(f"redaction rule {field}: "), message
    assert why in message


def test_malformed_json_is_400_and_changes_nothing(client: TestClient) -> None:
    put(client, RULES)
    answer = client.put(
        "/v1/redaction",
        content=b'{"names": [',
        headers={**auth(ADMIN), "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert client.get("/v1/redaction", headers=auth(ADMIN)).json()["redaction"]["names"] == [
        "nickname"
    ]


# -- storage -------------------------------------------------------------------------------


def test_rules_survive_a_hub_restart(tmp_path: Path) -> None:
    settings = HubSettings(db=str(tmp_path / "hub.db"), admin_token=ADMIN, sensor_token=SENSOR)
    first = create_app(settings)
    with TestClient(first) as client:
        assert put(client, RULES).status_code == 200
    first.state.hub.close()
    second = create_app(settings)
    try:
        with TestClient(second) as client:
            assert poll(client, register(client))["redaction"] == RULES
    finally:
        second.state.hub.close()


def test_the_sqlite_store_keeps_one_rule_set_and_replaces_it(tmp_path: Path) -> None:
    store = open_store(tmp_path / "hub.db")
    try:
        assert store.get_redaction() is None
        store.set_redaction(RedactionRecord(["a"], ["b+"], [], 1.0, "ops"))
        store.set_redaction(RedactionRecord(["c"], [], ["d"], 2.0, None))
        record = store.get_redaction()
        assert record == RedactionRecord(["c"], [], ["d"], 2.0, None)
    finally:
        store.close()
