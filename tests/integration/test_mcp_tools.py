"""The MCP tools through the SDK's in-memory client, against a real hub and a real service.

The hub is ``python -m sensor hub``; the service is a threaded HTTP server under
``python -m sensor run``; every tool answer is checked against the size budget (mcp_support.tool).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hub_process import CLIENT_TOKEN, HubProcess
from mcp_support import (
    Service,
    installed,
    probe_record,
    start_hub,
    tool,
    tool_error,
    wait_until,
)

from pytest_runtime.mcp import TOOL_NAMES, build_server
from pytest_runtime.mcp.settings import ServerSettings

pytestmark = [pytest.mark.integration]

mcp = pytest.importorskip("mcp")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    process = start_hub(tmp_path_factory.mktemp("hub"))
    yield process
    process.stop()


@pytest.fixture(scope="module")
def shop(hub: HubProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = Service(tmp_path_factory.mktemp("shop"), hub, f"shop-{uuid.uuid4().hex[:6]}")
    yield service
    service.stop()


def settings_for(hub: HubProcess, **changes: Any) -> ServerSettings:
    return ServerSettings(hub=hub.url, token=CLIENT_TOKEN, **changes)


def run(session: Any, settings: ServerSettings) -> Any:
    """Run ``session(client, budget)`` inside one MCP session of a fresh server."""

    async def main() -> Any:
        async with mcp.Client(build_server(settings)) as client:
            return await session(client, settings.budget_chars)

    return anyio.run(main)


def test_tools_and_instructions_tell_a_model_what_to_do(hub: HubProcess) -> None:
    async def session(client: Any, budget: int) -> None:
        listed = (await client.list_tools()).tools
        assert sorted(t.name for t in listed) == list(TOOL_NAMES)
        for t in listed:
            assert len(t.description) > 60, t.name  # a sentence a model can act on
            for name, schema in t.input_schema["properties"].items():
                assert schema.get("description"), f"{t.name}.{name} has no description"
        instructions = client.instructions
        for step in ("Hypotheses first", "Preflight", "list_sources", "Clean up", "Hand off"):
            assert step in instructions

    run(session, settings_for(hub))


def test_list_sources_is_the_preflight(hub: HubProcess, shop: Service) -> None:
    async def session(client: Any, budget: int) -> dict[str, Any]:
        return await tool(client, "list_sources", budget, service=shop.service)

    answer = run(session, settings_for(hub))
    (row,) = answer["sources"]
    assert row["service"] == shop.service
    assert row["version"] == "2.0.1"
    assert row["labels"] == {"env": "test"}
    assert row["pid"] == shop.proc.pid or row["pid"] > 0
    assert row["python"].count(".") == 2
    assert row["backend"]
    assert row["health"]["state"] == "live"
    assert answer["services"] == {shop.service: 1}


def test_a_snapshot_probe_from_placement_to_one_whole_hit(hub: HubProcess, shop: Service) -> None:
    async def session(client: Any, budget: int) -> dict[str, Any]:
        placed = await tool(
            client,
            "place_probe",
            budget,
            location="mcp_shop_app:total",
            hypothesis="totals are amount times qty",
            capture=["amount", "qty", "result"],
            service=shop.service,
            rate=50,
            max_hits=40,
            ttl_seconds=120,
        )
        probe_id = placed["probe_id"]
        # Answered at once: the probe's state on the one matching source, and why it waits.
        assert placed["state"] == "active"
        assert [row["source_id"] for row in placed["sources"]] == [
            s["id"] for s in shop.sources(hub)
        ]
        assert placed["sources"][0]["state"] in ("pending", "installed")
        assert placed["max_hits"] == 40
        assert 100 <= placed["expires_in_seconds"] <= 120
        assert "get_probe_status" in placed["next_step"]
        record = probe_record(hub, probe_id)
        assert record["probe"]["limits"]["max_hits"] == 40
        assert record["expires_at"] - record["created_at"] == pytest.approx(120, abs=1)
        assert record["probe"]["tags"]["hypothesis"] == "totals are amount times qty"

        assert wait_until(lambda: installed(hub, probe_id), 10)
        for n in range(1, 13):
            shop.get(f"/total?amount={n}&qty=3")
        status = await tool(client, "get_probe_status", budget, probe_id=probe_id, wait_seconds=15)
        assert wait_until(lambda: probe_record(hub, probe_id)["hit_count"] == 12, 10)

        def reported() -> bool:  # the sensor's counters arrive with its next heartbeat
            statuses = probe_record(hub, probe_id)["statuses"].values()
            return sum(s["hits"] for s in statuses) == 12

        assert wait_until(reported, 10)
        status = await tool(client, "get_probe_status", budget, probe_id=probe_id)
        assert status["hit_count"] == 12
        assert status["source_states"] == {"installed": 1}
        assert status["counters"]["hits"] == 12
        assert "get_evidence_summary" in status["next_step"]

        summary = await tool(client, "get_evidence_summary", budget, probe_id=probe_id)
        assert summary["hits_summarized"] == 12
        assert summary["distinct_shapes"] == 1
        assert summary["shapes"][0]["fields"] == {"amount": "int", "qty": "int", "result": "int"}
        amount = summary["values_by_path"]["amount"]
        assert (amount["min"], amount["max"], amount["classes"]) == (1, 12, {"positive": 12})
        assert summary["values_by_path"]["qty"]["values"] == {"3": 12}

        first = await tool(client, "list_hits", budget, probe_id=probe_id, limit=5)
        second = await tool(
            client, "list_hits", budget, probe_id=probe_id, limit=5, cursor=first["next_cursor"]
        )
        rows = first["hits"] + second["hits"]
        assert [r["captures"] for r in rows] == [
            f"amount={n}, qty=3, result={3 * n}" for n in range(1, 11)
        ]
        whole = await tool(client, "get_hit", budget, probe_id=probe_id, hit_id=rows[6]["hit_id"])
        assert whole["hit"]["captures"] == {"amount": 7, "qty": 3, "result": 21}
        assert whole["hit"]["source"]["service"] == shop.service
        return placed

    run(session, settings_for(hub))


def test_a_hypothesis_check_counts_what_the_sensor_counted(hub: HubProcess, shop: Service) -> None:
    # 100 / x > 10 is true for x in 1..9, false for x >= 10, and fails (ZeroDivisionError) at 0.
    passing = [1, 4, 7, 2, 9, 3, 8, 5, 6, 1, 2, 3]
    failing = [20, 0, 30, 11, 0, 50, 12, 0]
    true, false, errors = len(passing), sum(1 for x in failing if x), failing.count(0)

    async def session(client: Any, budget: int) -> dict[str, Any]:
        placed = await tool(
            client,
            "check_hypothesis",
            budget,
            location="mcp_shop_app:ratio",
            expression="100 / x > 10",
            hypothesis="the ratio is over 10 only for single-digit x",
            service=shop.service,
        )
        probe_id = placed["probe_id"]
        assert "get_hypothesis_result" in placed["next_step"]
        assert wait_until(lambda: installed(hub, probe_id), 10)
        for x in passing:
            shop.get(f"/ratio?x={x}")
        for x in failing:
            # Example states are captured at 0.5/s per source: spaced out, every false or failing
            # evaluation is captured, so the false/error split is exact (not scaled).
            shop.get(f"/ratio?x={x}")
            time.sleep(2.1)

        def counted() -> bool:
            statuses = probe_record(hub, probe_id)["statuses"].values()
            return sum(s["evaluations"] for s in statuses) == len(passing) + len(failing)

        assert wait_until(counted, 10)
        assert wait_until(lambda: probe_record(hub, probe_id)["hit_count"] >= false + errors, 10)
        return await tool(client, "get_hypothesis_result", budget, probe_id=probe_id)

    answer = run(session, settings_for(hub))
    record = probe_record(hub, answer["probe_id"])
    statuses = list(record["statuses"].values())
    counts = answer["counts"]
    # The sensor's own counters, as the hub holds them...
    assert counts["evaluated"] == sum(s["evaluations"] for s in statuses) == true + false + errors
    assert counts["false"] + counts["errors"] == sum(s["violations"] for s in statuses)
    # ... and what the traffic really was.
    assert (counts["true"], counts["false"], counts["errors"]) == (true, false, errors)
    assert counts["false_errors_split"].startswith("exact")
    assert "counters_behind" not in counts
    rate = answer["rate_true"]
    assert rate["rate"] == pytest.approx(true / (true + false + errors))
    assert rate["low"] < rate["rate"] < rate["high"]
    assert rate["over"] == true + false + errors
    assert f"true on {true} of {true + false + errors}" in answer["reading"]
    examples = answer["examples"]
    assert {e["captures"]["x"] for e in examples["error"]} == {0}
    assert "ZeroDivisionError" in examples["error"][0]["error"]
    assert all(e["captures"]["x"] >= 10 for e in examples["false"])
    assert all(1 <= e["captures"]["x"] <= 9 for e in examples["true"])
    assert record["state"] == "removed"  # the session ended


def test_a_probe_with_thousands_of_hits_answers_within_the_budget(
    hub: HubProcess, shop: Service
) -> None:
    calls = 3000

    async def session(client: Any, budget: int) -> None:
        placed = await tool(
            client,
            "place_probe",
            budget,
            location="mcp_shop_app:basket",
            hypothesis="baskets are large",
            service=shop.service,
            rate=100_000,
            max_hits=5000,
        )
        probe_id = placed["probe_id"]
        assert wait_until(lambda: installed(hub, probe_id), 10)
        # Each hit captures 40 items of 200 characters: far over any answer if shown whole.
        assert shop.get(f"/batch?n={calls}&size=40") == {"calls": calls}
        assert wait_until(lambda: probe_record(hub, probe_id)["hit_count"] == calls, 20), (
            probe_record(hub, probe_id)
        )
        status = await tool(client, "get_probe_status", budget, probe_id=probe_id)
        assert status["hit_count"] == calls
        summary = await tool(client, "get_evidence_summary", budget, probe_id=probe_id)
        assert summary["hits_on_hub"] == calls
        assert summary["hits_summarized"] == 2000
        assert "1000 later hit(s)" in summary["not_summarized"]
        # A capture over its deadline on a busy machine keeps a marker instead of late values.
        counted = summary["values_by_path"]["count"]["values"]
        assert list(counted) == ["40"]
        assert counted["40"] + summary.get("truncated_hits", 0) >= 2000
        assert summary["values_by_path"]["note"]["distinct"] == "over 64"
        page = await tool(client, "list_hits", budget, probe_id=probe_id, limit=25)
        assert len(page["hits"]) == 25
        # A hit whose capture met its deadline holds markers, not 40 items: show a whole one.
        # (CI on a loaded machine cut the last hit of the first page: nothing left to shorten.)
        chosen = None
        while chosen is None:
            chosen = next((h for h in page["hits"] if "count=40" in h["captures"]), None)
            if chosen is None:
                assert page["next_cursor"], "no hit of the probe was captured whole"
                page = await tool(
                    client,
                    "list_hits",
                    budget,
                    probe_id=probe_id,
                    limit=25,
                    cursor=page["next_cursor"],
                )
        whole = await tool(client, "get_hit", budget, probe_id=probe_id, hit_id=chosen["hit_id"])
        assert "captures_cut" in whole
        assert whole["hit"]["captures"]["count"] == 40
        session_list = await tool(client, "list_session_probes", budget)
        assert session_list["probes"][0]["hit_count"] == calls

    run(session, settings_for(hub, max_rate=100_000))


def test_errors_name_the_argument_the_value_and_what_was_expected(
    hub: HubProcess, shop: Service
) -> None:
    async def session(client: Any, budget: int) -> list[str]:
        base = {"hypothesis": "h", "service": shop.service}
        return [
            await tool_error(client, "place_probe", location="no colon", **base),
            await tool_error(
                client, "place_probe", location="mcp_shop_app:total", kind="trace", **base
            ),
            await tool_error(
                client,
                "place_probe",
                location="mcp_shop_app:total@entry",
                expect="result > 0",
                **base,
            ),
            await tool_error(
                client,
                "check_hypothesis",
                location="mcp_shop_app:total",
                expression="__import__('os').system('true')",
                **base,
            ),
            await tool_error(
                client, "place_probe", location="mcp_shop_app:total", ttl_seconds=86400, **base
            ),
            await tool_error(
                client, "place_probe", location="mcp_shop_app:total", max_hits=0, **base
            ),
            await tool_error(
                client,
                "place_probe",
                location="mcp_shop_app:total",
                kind="counter",
                capture=["amount"],
                **base,
            ),
            await tool_error(client, "get_probe_status", probe_id="no-such-probe"),
            await tool_error(client, "get_probe_status", probe_id="../v1/tokens"),
            await tool_error(client, "list_hits", probe_id="x", cursor="abc"),
            await tool_error(client, "get_comparison_result", job_id="cmp-nope"),
            await tool_error(client, "compare_test"),
            await tool_error(client, "compare_test", nodeid="--help"),
        ]

    texts = run(session, settings_for(hub))
    expected = [
        r"argument 'location': got 'no colon', expected 'module:qualname'",
        r"argument 'kind': got 'trace', expected one of snapshot, log, counter, timer, expect",
        r"argument 'expect': got 'result > 0', expected no 'result' at @entry",
        r"argument 'expression': got .*__import__.*, expected an expression the sensor accepts",
        r"argument 'ttl_seconds': got 86400(\.0)?, expected a number from 5 to 3600",
        r"argument 'max_hits': got 0, expected a whole number from 1 to 10000",
        r"argument 'capture': got \['amount'\], expected no capture on a counter probe",
        r"argument 'probe_id': got 'no-such-probe', expected the id of a probe on this hub",
        r"argument 'probe_id': got '../v1/tokens', expected a probe id",
        r"argument 'cursor': got 'abc', expected the next_cursor",
        r"argument 'job_id': got 'cmp-nope', expected a job id returned by compare_test",
        r"argument 'nodeid': got None, expected a test node id, a marker",
        r"argument 'nodeid': got '--help', expected a pytest node id .*not an option",
    ]
    assert len(texts) == len(expected)
    for text, pattern in zip(texts, expected, strict=True):
        assert re.search(pattern, text), (pattern, text)
        assert "Traceback" not in text
        assert CLIENT_TOKEN not in text


def test_refusals_say_what_to_do_instead(hub: HubProcess, shop: Service) -> None:
    async def session(client: Any, budget: int) -> list[str]:
        texts = [
            await tool_error(
                client,
                "place_probe",
                location="mcp_shop_app:total",
                hypothesis="h",
                service="no-such-service",
            )
        ]
        first = await tool(
            client,
            "place_probe",
            budget,
            location="mcp_shop_app:total",
            hypothesis="h",
            service=shop.service,
        )
        texts.append(
            await tool_error(
                client,
                "place_probe",
                location="mcp_shop_app:ratio",
                hypothesis="h",
                service=shop.service,
            )
        )
        # A probe someone else placed (here: through the hub directly) is not this session's.
        from hub_process import call

        status, body = call(
            hub.url,
            "POST",
            "/v1/probes",
            CLIENT_TOKEN,
            {"probe": {"kind": "counter", "location": "mcp_shop_app:total"}, "ttl": 60},
        )
        assert status == 201, body
        texts.append(await tool_error(client, "remove_probe", probe_id=body["probe"]["id"]))
        removed = await tool(client, "remove_probe", budget, probe_id=first["probe_id"])
        assert removed["probe"]["state"] == "removed"
        return texts

    no_source, too_many, not_ours = run(session, settings_for(hub, max_probes=1))
    assert "refused: no live source matches the selector {'service': 'no-such-service'}" in (
        no_source
    )
    assert "Instead: call list_sources" in no_source
    assert "already has 1 active probes (the limit is 1)" in too_many
    assert "Instead: remove a probe" in too_many
    assert "was not placed by this MCP session" in not_ours
    assert "python -m sensor probe rm" in not_ours


def test_every_probe_of_a_session_is_removed_when_it_ends(hub: HubProcess, shop: Service) -> None:
    async def session(client: Any, budget: int) -> list[str]:
        ids = []
        for location in ("mcp_shop_app:total", "mcp_shop_app:ratio@entry"):
            placed = await tool(
                client,
                "place_probe",
                budget,
                location=location,
                hypothesis="h",
                service=shop.service,
                ttl_seconds=300,
            )
            ids.append(placed["probe_id"])
        for probe_id in ids:
            assert probe_record(hub, probe_id)["state"] == "active"
        return ids

    ids = run(session, settings_for(hub))
    assert [probe_record(hub, probe_id)["state"] for probe_id in ids] == ["removed", "removed"]


def test_answers_are_deterministic(hub: HubProcess, shop: Service) -> None:
    async def session(client: Any, budget: int) -> tuple[str, str]:
        placed = await tool(
            client,
            "place_probe",
            budget,
            location="mcp_shop_app:total",
            hypothesis="h",
            capture=["amount", "qty"],
            service=shop.service,
            rate=50,
        )
        probe_id = placed["probe_id"]
        assert wait_until(lambda: installed(hub, probe_id), 10)
        for n in (3, 1, 2, 3):
            shop.get(f"/total?amount={n}&qty=1")
        assert wait_until(lambda: probe_record(hub, probe_id)["hit_count"] == 4, 10)
        one = await client.call_tool("get_evidence_summary", {"probe_id": probe_id})
        two = await client.call_tool("get_evidence_summary", {"probe_id": probe_id})
        return one.content[0].text, two.content[0].text

    one, two = run(session, settings_for(hub))
    assert one == two
    assert one == json.dumps(json.loads(one), sort_keys=True, separators=(",", ":"))


def test_a_missing_hub_is_a_clear_error(tmp_path: Path) -> None:
    async def session(client: Any, budget: int) -> str:
        return await tool_error(client, "list_sources")

    text = run(session, ServerSettings(hub="http://127.0.0.1:9", token="t"))
    assert "the hub at http://127.0.0.1:9 cannot be reached" in text
    assert "PYTEST_RUNTIME_HUB" in text


def test_the_false_error_split_is_exact_when_few_violations_were_captured(
    hub: HubProcess, shop: Service
) -> None:
    # Fired back to back: example states are captured at 0.5/s, so most false or failing
    # evaluations are not captured; the sensors count the failures (expect_errors) themselves.
    passing = [1, 4, 7, 2]
    failing = [20, 0, 30, 11, 0, 50, 12, 0, 0, 40]
    false, errors = sum(1 for x in failing if x), failing.count(0)

    async def session(client: Any, budget: int) -> dict[str, Any]:
        placed = await tool(
            client,
            "check_hypothesis",
            budget,
            location="mcp_shop_app:ratio",
            expression="100 / x > 10",
            hypothesis="the ratio is over 10 only for single-digit x",
            service=shop.service,
        )
        probe_id = placed["probe_id"]
        assert wait_until(lambda: installed(hub, probe_id), 10)
        for x in passing + failing:
            shop.get(f"/ratio?x={x}")

        def counted() -> bool:
            statuses = probe_record(hub, probe_id)["statuses"].values()
            return sum(s["evaluations"] for s in statuses) == len(passing) + len(failing)

        assert wait_until(counted, 10)
        return await tool(client, "get_hypothesis_result", budget, probe_id=probe_id)

    answer = run(session, settings_for(hub))
    counts = answer["counts"]
    captured = answer["examples_captured"]
    assert captured.get("false", 0) + captured.get("error", 0) < false + errors  # not all
    assert (counts["true"], counts["false"], counts["errors"]) == (len(passing), false, errors)
    assert counts["false_errors_split"].startswith("exact")
