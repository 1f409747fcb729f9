"""Time from placing a probe to its delivery to 200 simulated sensors holding long polls.

A real ``python -m sensor hub`` process; in this process, N sensors (asyncio, one keep-alive
socket each, plain HTTP/1.1) register and hold ``GET /v1/sensors/{id}/probes?etag=..&wait=30``.
Each round places one probe and records, per sensor, the time from just before the POST to the
moment the sensor has read the answer that holds the probe (delivered), and to the moment the hub
acknowledged the sensor's heartbeat reporting the probe ``installed``; and the time until the probe
record, read by a client, lists every sensor as installed. Goal: p99 under 1 s.

    python bench/bench_hub_fanout.py [--json] [--sensors 200] [--rounds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

from benchlib import CLIENT, SENSOR, start_hub


class RawHttp:
    """A minimal HTTP/1.1 keep-alive client on one asyncio stream (no library in the timing)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> RawHttp:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(
        self, method: str, path: str, token: str, body: Any = None
    ) -> tuple[int, Any]:
        payload = b"" if body is None else json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)
        await self.writer.drain()
        status_line = await self.reader.readline()
        status = int(status_line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        data = await self.reader.readexactly(length)
        return status, json.loads(data)

    def close(self) -> None:
        self.writer.close()


async def run(url: str, sensors: int, rounds: int) -> dict[str, Any]:
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    conns = [await RawHttp.open(host, port) for _ in range(sensors)]
    ids, etags = [], []
    for i, conn in enumerate(conns):
        _, answer = await conn.request(
            "POST", "/v1/sensors/register", SENSOR, {"service": "bench", "pid": i}
        )
        ids.append(answer["source_id"])
        _, answer = await conn.request("GET", f"/v1/sensors/{answer['source_id']}/probes", SENSOR)
        etags.append(answer["etag"])
    client = await RawHttp.open(host, port)
    latencies: list[float] = []
    installed: list[float] = []
    record_complete: list[float] = []
    round_max: list[float] = []
    place_answer: list[float] = []
    for r in range(rounds):
        arrived: list[float] = [0.0] * sensors
        reported: list[float] = [0.0] * sensors
        probe_id = f"fanout-{r}"

        async def hold(
            i: int,
            probe_id: str = probe_id,
            arrived: list[float] = arrived,
            reported: list[float] = reported,
        ) -> None:
            path = f"/v1/sensors/{ids[i]}/probes?etag={etags[i]}&wait=30"
            _, answer = await conns[i].request("GET", path, SENSOR)
            arrived[i] = time.perf_counter()
            if probe_id not in {p["id"] for p in answer["probes"]}:
                raise SystemExit(f"sensor {i} woke without probe {probe_id}")
            etags[i] = answer["etag"]
            status = {"probe_id": probe_id, "state": "installed", "backend": "simulated"}
            await conns[i].request(
                "POST", f"/v1/sensors/{ids[i]}/heartbeat", SENSOR, {"statuses": [status]}
            )
            reported[i] = time.perf_counter()

        polls = [asyncio.create_task(hold(i)) for i in range(sensors)]
        await asyncio.sleep(1.0)  # every poll is parked on the hub
        if any(p.done() for p in polls):
            raise SystemExit("a poll returned before the probe was placed")
        started = time.perf_counter()
        status, _ = await client.request(
            "POST",
            "/v1/probes",
            CLIENT,
            {"probe": {"id": probe_id, "kind": "counter", "location": "bench.mod:f"}},
        )
        place_answer.append(time.perf_counter() - started)
        if status != 201:
            raise SystemExit(f"placing the probe answered {status}")
        # a client watches the probe record until every sensor shows as installed
        while True:
            _, record = await client.request("GET", f"/v1/probes/{probe_id}", CLIENT)
            states = [s["state"] for s in record["probe"]["statuses"].values()]
            if states.count("installed") == sensors:
                record_complete.append(time.perf_counter() - started)
                break
            if time.perf_counter() - started > 30:
                raise SystemExit(f"only {states.count('installed')} sensors reported installed")
            await asyncio.sleep(0.005)
        await asyncio.wait_for(asyncio.gather(*polls), timeout=30)
        round_latencies = [t - started for t in arrived]
        latencies += round_latencies
        installed += [t - started for t in reported]
        round_max.append(max(round_latencies))
    for conn in [*conns, client]:
        conn.close()
    ordered = sorted(latencies)
    ordered_installed = sorted(installed)

    def pct(p: float, values: list[float] = ordered) -> float:
        return values[min(len(values) - 1, int(p / 100 * len(values)))]

    return {
        "bench": "hub_fanout",
        "case": f"{sensors} sensors holding long polls",
        "python": sys.version.split()[0],
        "sensors": sensors,
        "rounds": rounds,
        "samples": len(latencies),
        "p50_ms": pct(50) * 1000,
        "p90_ms": pct(90) * 1000,
        "p99_ms": pct(99) * 1000,
        "max_ms": ordered[-1] * 1000,
        "installed_p50_ms": pct(50, ordered_installed) * 1000,
        "installed_p99_ms": pct(99, ordered_installed) * 1000,
        "record_complete_median_ms": statistics.median(record_complete) * 1000,
        "record_complete_max_ms": max(record_complete) * 1000,
        "median_round_max_ms": statistics.median(round_max) * 1000,
        "median_place_answer_ms": statistics.median(place_answer) * 1000,
        "goal": "p99 < 1000 ms",
        "meets_goal": pct(99) < 1.0 and pct(99, ordered_installed) < 1.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    parser.add_argument("--sensors", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as tmp:
        proc, url = start_hub(Path(tmp) / "hub.db")
        try:
            result = asyncio.run(run(url, args.sensors, args.rounds))
        finally:
            proc.terminate()
            proc.wait(10)
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"{result['case']}: {result['samples']} deliveries, "
            f"p50 {result['p50_ms']:.1f} ms, p90 {result['p90_ms']:.1f} ms, "
            f"p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms "
            f"(placing answered in {result['median_place_answer_ms']:.1f} ms); "
            f"installed reported p50 {result['installed_p50_ms']:.1f} ms, "
            f"p99 {result['installed_p99_ms']:.1f} ms; record lists all installed after "
            f"{result['record_complete_median_ms']:.1f} ms median, "
            f"{result['record_complete_max_ms']:.1f} ms max  goal: {result['goal']}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
