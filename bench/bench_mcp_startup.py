"""How fast the MCP server starts: launch to the answers of ``initialize`` and ``tools/list``.

    python bench/bench_mcp_startup.py [--pairs 7] [--json]

An editor starts ``python -m pytest_runtime.mcp`` over stdio and waits for it before the agent
can call anything. Each measurement is one fresh process, timed from launch until it has
answered ``initialize`` and ``tools/list`` (the whole handshake a client makes). Side by side in
one run, interleaved, after a warm-up:

- ``interpreter``: ``python -c pass`` (the floor of any Python server);
- ``bare SDK server``: an ``MCPServer`` with one tool over stdio (the floor of any server built
  on the MCP SDK 2.x);
- ``pytest_runtime.mcp``: ours, with its twelve tools.

Wall time is what a user waits; the CPU column (user + system time of the process, launch to exit)
is what it costs, and moves far less when the machine is busy.

Goal: ours answers in under 1 s, and within 1.25x of the bare SDK server (our own imports and
tool registration cost little next to the SDK's). No hub is needed: nothing talks to it before a
tool call.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import IO

GOAL_SECONDS = 1.0
GOAL_RATIO = 1.25

BARE = """
from mcp.server.mcpserver import MCPServer

server = MCPServer("bare")


@server.tool()
def echo(text: str) -> str:
    \"\"\"Echo the text.\"\"\"
    return text


server.run("stdio")
"""

CASES = {
    "bare SDK server": [sys.executable, "-c", BARE],
    "pytest_runtime.mcp": [sys.executable, "-m", "pytest_runtime.mcp"],
}


def _send(stream: IO[str], message: dict[str, object]) -> None:
    stream.write(json.dumps(message) + "\n")
    stream.flush()


def _answer(stream: IO[str], wanted: int) -> dict[str, object]:
    while True:
        line = stream.readline()
        if not line:
            raise RuntimeError("the server closed its output before answering")
        message = json.loads(line)
        if message.get("id") == wanted:
            return dict(message)


def time_server(command: list[str]) -> tuple[float, float, int]:
    """Seconds from launch to the tools/list answer, the process's CPU seconds (user + system,
    launch to exit: a figure a busy machine disturbs far less), and the number of tools."""
    env = dict(os.environ, PYTEST_RUNTIME_HUB="http://127.0.0.1:9", SENSOR_CLIENT_TOKEN="t")
    started = time.perf_counter()
    proc = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    try:
        _send(
            proc.stdin,
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "0"},
                },
            },
        )
        _answer(proc.stdout, 1)
        _send(proc.stdin, {"jsonrpc": "2.0", "method": "notifications/initialized"})
        _send(proc.stdin, {"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {}})
        tools = _answer(proc.stdout, 2)["result"]["tools"]  # type: ignore[index]
        elapsed = time.perf_counter() - started
    finally:
        proc.stdin.close()  # end of input: the server exits
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        proc.stdout.close()
    return elapsed, usage.ru_utime + usage.ru_stime, len(tools)


def time_interpreter() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=7, help="interleaved rounds (at least 5)")
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    args = parser.parse_args(argv)
    pairs = max(5, args.pairs)
    for command in CASES.values():  # warm-up: file caches, .pyc files
        time_server(command)
    # Wall times on a shared machine say little without how busy it was: printed with them.
    load_before = os.getloadavg()
    times: dict[str, list[float]] = {"interpreter": [], **{name: [] for name in CASES}}
    cpu: dict[str, list[float]] = {name: [] for name in CASES}
    tools: dict[str, int] = {}
    for _ in range(pairs):
        times["interpreter"].append(time_interpreter())
        for name, command in CASES.items():
            seconds, cpu_seconds, count = time_server(command)
            times[name].append(seconds)
            cpu[name].append(cpu_seconds)
            tools[name] = count
    load_after = os.getloadavg()
    ours, bare = times["pytest_runtime.mcp"], times["bare SDK server"]
    ratios = [a / b for a, b in zip(ours, bare, strict=True)]
    python = ".".join(map(str, sys.version_info[:3]))
    machine = {
        "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
    }
    if args.json:
        for name, values in times.items():
            print(
                json.dumps(
                    {
                        "benchmark": "mcp_startup",
                        "case": name,
                        "python": python,
                        "median_s": statistics.median(values),
                        "min_s": min(values),
                        "max_s": max(values),
                        "runs": len(values),
                        "cpu_median_s": statistics.median(cpu[name]) if name in cpu else None,
                        "tools": tools.get(name),
                        **machine,
                    }
                )
            )
        print(
            json.dumps(
                {
                    "benchmark": "mcp_startup",
                    "case": "ratio pytest_runtime.mcp / bare SDK server",
                    "python": python,
                    "median": statistics.median(ratios),
                    "min": min(ratios),
                    "max": max(ratios),
                    "goal": GOAL_RATIO,
                    **machine,
                }
            )
        )
        return 0
    print(f"MCP server start-up on Python {python}: launch to initialize + tools/list answered")
    print(f"{pairs} interleaved rounds after a warm-up; median (min to max)")
    print(
        f"load average (1, 5, 15 min) on {os.cpu_count()} CPUs: "
        f"{', '.join(f'{x:.2f}' for x in load_before)} before, "
        f"{', '.join(f'{x:.2f}' for x in load_after)} after"
    )
    print()
    print(f"{'case':<22} {'median':>8} {'min':>8} {'max':>8} {'CPU':>8}  goal")
    for name, values in times.items():
        goal = f"< {GOAL_SECONDS:g} s" if name == "pytest_runtime.mcp" else ""
        used = f"{statistics.median(cpu[name]):>7.3f}s" if name in cpu else f"{'':>8}"
        print(
            f"{name:<22} {statistics.median(values):>7.3f}s {min(values):>7.3f}s "
            f"{max(values):>7.3f}s {used}  {goal}"
        )
    print(
        f"{'ratio ours / bare SDK':<22} {statistics.median(ratios):>7.2f}x {min(ratios):>7.2f}x "
        f"{max(ratios):>7.2f}x  <= {GOAL_RATIO:g}x"
    )
    print(f"tools listed: {tools}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
