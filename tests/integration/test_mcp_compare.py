"""compare_test: the plugin's own verdict on a test, through the MCP server, against production.

A real hub, the shop service under the sensor with traffic that sometimes sends a discount rate
above 1 (the test's expectation ``0 <= result <= price`` breaks), and a project whose test passes.
"""

from __future__ import annotations

import json
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from hub_process import CLIENT_TOKEN, HubProcess
from mcp_support import APP, Service, start_hub, tool, tool_error

from pytest_runtime.mcp import build_server
from pytest_runtime.mcp.settings import ServerSettings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

mcp = pytest.importorskip("mcp")

TESTS = textwrap.dedent(
    """
    import pytest

    from mcp_shop_app import discount


    @pytest.mark.runtime_probe(
        "mcp_shop_app:discount", capture=["price", "rate"], expect="0 <= result <= price"
    )
    def test_discount_takes_a_share_off():
        assert discount(100.0, 0.1) == 90.0


    def test_discount_without_a_marker():
        assert discount(50.0, 0.5) == 25.0
    """
)
MARKER = {
    "location": "mcp_shop_app:discount",
    "capture": ["price", "rate"],
    "expect": "0 <= result <= price",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubProcess, Service, Path]]:
    hub = start_hub(tmp_path_factory.mktemp("hub"))
    shop = Service(tmp_path_factory.mktemp("shop"), hub, f"shop-{uuid.uuid4().hex[:6]}")
    project = tmp_path_factory.mktemp("project")
    (project / "mcp_shop_app.py").write_text(APP)
    (project / "test_discount.py").write_text(TESTS)
    stop = threading.Event()

    def traffic() -> None:
        n = 0
        while not stop.is_set():
            rate = (0.1, 0.25, 1.5)[n % 3]  # every third order: a rate the tests never had
            try:
                shop.get(f"/discount?price={10 + n % 7}&rate={rate}")
            except OSError:
                pass
            n += 1
            time.sleep(0.05)

    thread = threading.Thread(target=traffic, daemon=True)
    thread.start()
    yield hub, shop, project
    stop.set()
    thread.join(10)
    shop.stop()
    hub.stop()


def run(session: Any, settings: ServerSettings) -> Any:
    async def main() -> Any:
        async with mcp.Client(build_server(settings)) as client:
            return await session(client, settings.budget_chars)

    return anyio.run(main)


async def finished(client: Any, budget: int, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 240
    while True:
        answer = await tool(client, "get_comparison_result", budget, job_id=job_id, wait_seconds=20)
        if answer["state"] == "finished" or time.monotonic() > deadline:
            return answer


def test_compare_test_gives_the_plugins_verdict_for_a_node_id_a_marker_or_both(
    world: tuple[HubProcess, Service, Path],
) -> None:
    hub, shop, project = world
    settings = ServerSettings(hub=hub.url, token=CLIENT_TOKEN, project_dir=project)

    async def session(client: Any, budget: int) -> list[dict[str, Any]]:
        common = {"service": shop.service, "wait_seconds": 30, "min_hits": 5}
        marked = await tool(
            client,
            "compare_test",
            budget,
            nodeid="test_discount.py::test_discount_takes_a_share_off",
            **common,
        )
        assert marked["state"] == "running"
        assert "get_comparison_result" in marked["next_step"]
        added = await tool(
            client,
            "compare_test",
            budget,
            nodeid="test_discount.py::test_discount_without_a_marker",
            marker=MARKER,
            **common,
        )
        # Two runs at once is the limit: a third is refused with what to do instead.
        refused = await tool_error(client, "compare_test", marker=MARKER, **common)
        assert "refused: 2 comparisons of this session are still running" in refused
        assert marked["job_id"] in refused
        results = [await finished(client, budget, job["job_id"]) for job in (marked, added)]
        alone = await tool(client, "compare_test", budget, marker=MARKER, **common)
        results.append(await finished(client, budget, alone["job_id"]))
        unmarked = await tool(
            client,
            "compare_test",
            budget,
            nodeid="test_discount.py::test_discount_without_a_marker",
            **common,
        )
        results.append(await finished(client, budget, unmarked["job_id"]))
        return results

    marked, added, alone, unmarked = run(session, settings)
    for answer in (marked, added, alone):
        assert answer["state"] == "finished", answer
        assert answer["exit_code"] == 1, answer  # a violated verdict fails the run
        assert len(answer["verdicts"]) == 1, json.dumps(answer, indent=1)
        (verdict,) = answer["verdicts"]
        assert verdict["verdict"] == "violated", verdict
        assert verdict["fails_the_run"] is True
        assert verdict["location"] == "mcp_shop_app:discount@return"
        assert verdict["hits"]["production"] >= 5
        violation = next(d for d in verdict["divergences"] if d["kind"] == "violation")
        assert violation["production_state"]["rate"] == 1.5
        assert violation["hit_ids"]
        # What pytest --runtime-probe printed: the plugin's own terminal summary.
        printed = "\n".join(answer["pytest_printed"])
        assert f"VIOLATED {verdict['nodeid']}" in printed
        assert "runtime probes: 1 violated" in printed
    assert marked["verdicts"][0]["hits"]["test"] == 1
    assert added["verdicts"][0]["nodeid"].endswith("test_discount_without_a_marker")
    assert alone["verdicts"][0]["hits"]["test"] == 0  # production evidence alone
    assert unmarked["exit_code"] == 0
    assert unmarked["verdicts"] == []
    assert "no runtime_probe marker" in unmarked["problem"]


def test_compare_test_checks_its_arguments_before_running_anything(
    world: tuple[HubProcess, Service, Path],
) -> None:
    hub, _, project = world
    settings = ServerSettings(hub=hub.url, token=CLIENT_TOKEN, project_dir=project)

    async def session(client: Any, budget: int) -> list[str]:
        return [
            await tool_error(client, "compare_test", nodeid="tests/nowhere.py::test_x"),
            await tool_error(client, "compare_test", nodeid="../outside.py::test_x"),
            await tool_error(
                client, "compare_test", marker={**MARKER, "location": "mcp_shop_app:discount@entry"}
            ),
            await tool_error(client, "compare_test", marker={**MARKER, "sample": 3}),
            await tool_error(client, "compare_test", marker={"capture": ["price"]}),
            await tool_error(client, "compare_test", marker=MARKER, wait_seconds=0),
        ]

    texts = run(session, settings)
    assert "argument 'nodeid': got 'tests/nowhere.py::test_x'" in texts[0]
    assert "does not exist under" in texts[0]
    assert "argument 'nodeid'" in texts[1]
    assert "argument 'marker.expect': got '0 <= result <= price', expected no 'result'" in texts[2]
    assert "argument 'marker.sample': got 3, expected one of location" in texts[3]
    assert "argument 'marker': got {'capture': ['price']}" in texts[4]
    assert "argument 'wait_seconds': got 0" in texts[5]
