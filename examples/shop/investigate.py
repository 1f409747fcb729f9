"""An agent-style investigation of the demo shop through the MCP server, scripted (no model).

    python -m examples.shop.investigate [--transcript investigation.md] [--check]

It starts what ``make demo`` starts (a hub, the shop under gunicorn with the sensor, seeded
traffic), then starts ``python -m pytest_runtime.mcp`` over stdio, exactly as an editor would,
and makes the calls an agent following docs/agents/live-investigation.md makes, from the
symptom ("some orders come out with a negative total") to a confirmed root cause and a
comparison of the marked test. ``--transcript`` writes every call and its bounded answer as
markdown; ``--check`` exits non-zero unless each answer carried what the next step needed
(the end-to-end test uses it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent

SYMPTOM = "Support reports that some shop orders come out with a negative total."
HYPOTHESES = {
    "H1": "apply_discount returns a negative price: a fixed coupon takes off more than a small "
    "cart costs",
    "H2": "shipping_cost is negative for some addresses, pulling the total below zero",
}
NEGATIVE = "result < 0"


class Transcript:
    """The calls and their answers, as markdown."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def say(self, text: str) -> None:
        self.parts.append(text.strip() + "\n")
        print(text.strip(), flush=True)

    def call(self, name: str, arguments: dict[str, Any], text: str) -> None:
        shown = ", ".join(f"{k}={json.dumps(v)}" for k, v in arguments.items())
        pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        self.parts.append(
            f"**→ `{name}({shown})`** ({len(text):,} characters)\n\n```json\n{pretty}\n```\n"
        )
        print(f"-> {name}({shown}): {len(text)} characters", flush=True)

    def markdown(self) -> str:
        return "\n".join(self.parts)


class Agent:
    """The scripted agent: calls tools, records them, and checks what each answer carries."""

    def __init__(self, client: Any, transcript: Transcript) -> None:
        self.client = client
        self.transcript = transcript
        self.problems: list[str] = []

    async def call(self, name: str, record: bool = True, **arguments: Any) -> dict[str, Any]:
        result = await self.client.call_tool(name, arguments)
        text = result.content[0].text
        if result.is_error:
            raise SystemExit(f"investigate: {name} failed: {text}")
        if record:
            self.transcript.call(name, arguments, text)
        data: dict[str, Any] = json.loads(text)
        return data

    def expect(self, what: str, ok: bool) -> None:
        if not ok:
            self.problems.append(what)
            print(f"investigate: CHECK FAILED: {what}", flush=True)

    async def poll(
        self, name: str, done: Callable[[dict[str, Any]], bool], timeout: float, **arguments: Any
    ) -> dict[str, Any]:
        """Poll with wait_seconds until ``done``; only the last answer goes to the transcript."""
        deadline = time.monotonic() + timeout
        while True:
            answer = await self.call(name, record=False, wait_seconds=10, **arguments)
            if done(answer) or time.monotonic() > deadline:
                break
        return await self.call(name, **arguments)


async def investigate(agent: Agent, say: Callable[[str], None]) -> None:
    say(f"## Symptom\n\n{SYMPTOM}")
    say(
        "## Hypotheses first\n\n"
        + "\n".join(f"- **{key}**: {text}." for key, text in HYPOTHESES.items())
        + "\n\nH1 is confirmed if `apply_discount` returns a negative price on live traffic, "
        "and strengthened if every negative price comes with the fixed coupon; H2 is ruled "
        "out if `shipping_cost` is never negative over enough evaluations."
    )
    say("## Preflight: is the code live, and where?")
    sources = await agent.call("list_sources", service="shop")
    agent.expect("list_sources shows the live shop", sources.get("count", 0) >= 1)

    say(
        "## One probe per hypothesis\n\nThree hypothesis checks, placed at once; each answers "
        "with a probe id to poll."
    )
    h1 = await agent.call(
        "check_hypothesis",
        location="shop.pricing:apply_discount",
        expression=NEGATIVE,
        hypothesis=HYPOTHESES["H1"],
        service="shop",
        capture=["price", "coupon", "currency"],
    )
    h1_cause = await agent.call(
        "check_hypothesis",
        location="shop.pricing:apply_discount",
        condition=NEGATIVE,
        expression="coupon == 'WELCOME5'",
        hypothesis=HYPOTHESES["H1"] + " (every negative price comes with the fixed coupon)",
        service="shop",
        capture=["price", "coupon", "currency"],
    )
    h2 = await agent.call(
        "check_hypothesis",
        location="shop.pricing:shipping_cost",
        expression=NEGATIVE,
        hypothesis=HYPOTHESES["H2"],
        service="shop",
        capture=["weight_grams"],
    )
    for answer in (h1, h1_cause, h2):
        agent.expect("check_hypothesis answers with a probe id", bool(answer.get("probe_id")))

    say("## Wait asynchronously, then read the counts")
    result_h1 = await agent.poll(
        "get_hypothesis_result",
        lambda a: a["counts"]["true"] >= 3 and a["counts"]["evaluated"] >= 100,
        90,
        probe_id=h1["probe_id"],
    )
    counts = result_h1["counts"]
    agent.expect("H1: apply_discount was negative on live traffic", counts["true"] > 0)
    true_examples = result_h1["examples"].get("true", [])
    agent.expect("H1: the answer carries example states", bool(true_examples))
    cause = await agent.poll(
        "get_hypothesis_result",
        lambda a: a["counts"]["evaluated"] >= 10,
        90,
        probe_id=h1_cause["probe_id"],
    )
    evaluated = cause["counts"]["evaluated"]
    agent.expect(
        "H1: every negative price came with the fixed coupon",
        evaluated > 0 and cause["counts"]["true"] == evaluated,
    )
    ruled_out = await agent.poll(
        "get_hypothesis_result",
        lambda a: a["counts"]["evaluated"] >= 300,
        90,
        probe_id=h2["probe_id"],
    )
    agent.expect(
        "H2: shipping was never negative",
        ruled_out["counts"]["evaluated"] > 0 and ruled_out["counts"]["true"] == 0,
    )

    say("## Summary first, then one state")
    summary = await agent.call("get_evidence_summary", probe_id=h1["probe_id"])
    agent.expect("the summary has value classes per path", "values_by_path" in summary)
    if true_examples:
        hit = await agent.call(
            "get_hit", probe_id=h1["probe_id"], hit_id=str(true_examples[0]["hit_id"])
        )
        captures = hit["hit"]["captures"]
        agent.expect(
            "the hit holds the production state (coupon, currency, typed price)",
            captures.get("coupon") == "WELCOME5" and "@t" in (captures.get("price") or {}),
        )

    say(
        "## Check the test against production\n\nThe test of `apply_discount` passes locally; "
        "`compare_test` runs it with `--runtime-probe` and answers with the plugin's verdict."
    )
    job = await agent.call(
        "compare_test",
        nodeid="tests/test_pricing.py::test_apply_discount",
        service="shop",
        wait_seconds=30,
        min_hits=20,
    )
    verdict = await agent.poll(
        "get_comparison_result",
        lambda a: a["state"] == "finished",
        240,
        job_id=job["job_id"],
    )
    verdicts = {v["verdict"] for v in verdict.get("verdicts", [])}
    agent.expect("compare_test: the marked test is violated in production", "violated" in verdicts)

    say("## Clean up")
    removed = await agent.call("remove_probe", probe_id="all")
    agent.expect("every probe of the session was removed", removed.get("count") == 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transcript", type=Path, help="write the calls and answers (markdown)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless every step held")
    args = parser.parse_args(argv)
    import anyio
    from mcp import Client, StdioServerParameters

    sys.path.insert(0, str(HERE))
    from traffic import run as run_traffic  # the demo's generator, next to this file

    # The demo's own way of starting the hub and the shop (same package, same processes).
    from examples.shop.demo import _start_hub, _start_shop

    tokens = {name: f"demo-{name}-{secrets.token_hex(8)}" for name in ("admin", "sensor", "client")}
    transcript = Transcript()
    problems: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="pytest-runtime-investigate-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        hub = _start_hub(Path(tmp), tokens, stack)
        shop = _start_shop(Path(tmp), hub, tokens, stack)
        stop = threading.Event()
        thread = threading.Thread(
            target=run_traffic,
            args=(shop,),
            kwargs={"seconds": 600.0, "progress": False, "stop": stop},
            daemon=True,
        )
        thread.start()
        stack.callback(thread.join, 15)
        stack.callback(stop.set)
        env = {
            **os.environ,
            "PYTEST_RUNTIME_HUB": hub,
            "SENSOR_CLIENT_TOKEN": tokens["client"],
            "PYTHONPATH": str(ROOT),
        }
        server = StdioServerParameters(
            command=sys.executable,
            args=["-m", "pytest_runtime.mcp", "--project-dir", str(HERE)],
            env=env,
            cwd=str(HERE),
        )

        async def session() -> None:
            async with Client(server) as client:
                agent = Agent(client, transcript)
                await investigate(agent, transcript.say)
                problems.extend(agent.problems)

        anyio.run(session)
    if args.transcript:
        args.transcript.write_text(transcript.markdown(), encoding="utf-8")
        print(f"investigate: transcript written to {args.transcript}")
    if args.check:
        if problems:
            return 1
        print("investigate: check passed: every answer carried what the next step needed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
