"""Hits ingested per second by one hub on SQLite: the store alone, then over HTTP.

Store: batches written with executemany in one transaction (synchronous=FULL), paired with
the baseline of one transaction per hit, interleaved, 5 pairs. HTTP: a real
``python -m sensor hub`` process and 1 or 2 keep-alive clients posting pre-encoded batches of
small hits (the clients' encoding is not timed), then a fleet of 50 sensors posting batches of
20 at once (group commit). Goal: at least 20,000 small hits/s.

    python bench/bench_hub_ingest.py [--json] [--pairs 5] [--batch 500] [--hits 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from benchlib import CLIENT, SENSOR, start_hub

from sensor.client import HubClient
from sensor.hub.store import ProbeRecord, SourceRecord
from sensor.hub.store.sqlite import SQLiteStore

GOAL = 20_000.0


def small_hit(probe_id: str, signature: str, n: int) -> dict[str, Any]:
    return {
        "probe_id": probe_id,
        "signature": signature,
        "kind": "snapshot",
        "location": "shop.pricing:apply_discount@return",
        "ts": 1_700_000_000.0 + n / 1000,
        "hit_id": f"b-{n}",
        "thread": "MainThread",
        "captures": {"price": n % 997, "rate": 0.15, "result": n % 997 * 0.85},
    }


def _source() -> SourceRecord:
    return SourceRecord("src", "shop", "1.0", "h", 1, "3.11", {}, None, None, None, None, 0.0, 0.0)


def _probe(probe_id: str) -> ProbeRecord:
    return ProbeRecord(probe_id, "sig", {"id": probe_id, "limits": {}}, {}, "active", 0.0, None)


def store_batched(directory: Path, total: int, batch: int) -> float:
    store = SQLiteStore(directory / f"batched-{time.monotonic_ns()}.db")
    store.add_probe(_probe("p"))
    hits = [small_hit("p", "sig", n) for n in range(total)]
    started = time.perf_counter()
    for start in range(0, total, batch):
        store.add_hits(_source(), hits[start : start + batch], {}, time.time())
    elapsed = time.perf_counter() - started
    store.close()
    return total / elapsed


def store_one_by_one(directory: Path, total: int) -> float:
    store = SQLiteStore(directory / f"single-{time.monotonic_ns()}.db")
    store.add_probe(_probe("p"))
    hits = [small_hit("p", "sig", n) for n in range(total)]
    started = time.perf_counter()
    for hit in hits:
        store.add_hits(_source(), [hit], {}, time.time())
    elapsed = time.perf_counter() - started
    store.close()
    return total / elapsed


def _post(url: str, path: str, body: bytes, token: str) -> dict[str, Any]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    conn.request("POST", path, body=body, headers=headers)
    response = conn.getresponse()
    data: dict[str, Any] = json.loads(response.read())
    conn.close()
    return data


def http_ingest(url: str, clients: int, total: int, batch: int, run: int) -> float:
    hub = HubClient(url, CLIENT)
    record = hub.place_probe({"kind": "snapshot", "location": "shop.pricing:apply_discount"})
    registered = _post(url, "/v1/sensors/register", b'{"service":"bench"}', SENSOR)
    path = f"/v1/sensors/{registered['source_id']}/hits"
    per_client = total // clients
    bodies: list[list[bytes]] = []
    for c in range(clients):
        mine = []
        for start in range(0, per_client, batch):
            hits = [
                small_hit(record["id"], record["signature"], run * 10**7 + c * 10**6 + n)
                for n in range(start, min(start + batch, per_client))
            ]
            mine.append(json.dumps({"hits": hits, "dropped": {}}).encode())
        bodies.append(mine)
    accepted = [0] * clients
    parts = urllib.parse.urlsplit(url)
    headers = {"Authorization": f"Bearer {SENSOR}", "Content-Type": "application/json"}

    def send(index: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
        for body in bodies[index]:
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            answer = json.loads(response.read())
            if response.status != 200:
                raise SystemExit(f"hub answered {response.status}: {answer}")
            accepted[index] += answer["accepted"]
        conn.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    stored = int(hub.probe(record["id"])["hit_count"])
    if stored != sum(accepted) or stored != per_client * clients:
        raise SystemExit(f"hub stored {stored} hits, accepted {sum(accepted)}")
    return stored / elapsed


def fleet_ingest(url: str, sensors: int, total: int, batch: int, run: int) -> float:
    """``sensors`` sources posting small batches at once (asyncio, one socket each)."""
    hub = HubClient(url, CLIENT)
    record = hub.place_probe({"kind": "snapshot", "location": "shop.pricing:apply_discount"})
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    per_sensor = total // sensors

    async def one(index: int) -> int:
        reader, writer = await asyncio.open_connection(host, port)

        async def request(path: str, payload: bytes) -> dict[str, Any]:
            head = (
                f"POST {path} HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {SENSOR}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
            )
            writer.write(head.encode() + payload)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            answer: dict[str, Any] = json.loads(await reader.readexactly(length))
            if status != 200:
                raise SystemExit(f"hub answered {status}: {answer}")
            return answer

        registered = await request("/v1/sensors/register", b'{"service":"fleet"}')
        path = f"/v1/sensors/{registered['source_id']}/hits"
        bodies = [
            json.dumps(
                {
                    "hits": [
                        small_hit(
                            record["id"], record["signature"], run * 10**7 + index * 10**5 + n
                        )
                        for n in range(start, min(start + batch, per_sensor))
                    ]
                }
            ).encode()
            for start in range(0, per_sensor, batch)
        ]
        await ready.wait()
        accepted = 0
        for body in bodies:
            accepted += (await request(path, body))["accepted"]
        writer.close()
        return accepted

    ready = asyncio.Event()

    async def main() -> tuple[int, float]:
        tasks = [asyncio.create_task(one(i)) for i in range(sensors)]
        await asyncio.sleep(0.5)  # every sensor registered and encoded its batches
        started = time.perf_counter()
        ready.set()
        counts = await asyncio.gather(*tasks)
        return sum(counts), time.perf_counter() - started

    accepted, elapsed = asyncio.run(main())
    if accepted != per_sensor * sensors:
        raise SystemExit(f"hub accepted {accepted} hits of {per_sensor * sensors}")
    return accepted / elapsed


def _emit(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result), flush=True)
        return
    figure = result.get("median_hits_per_s", result.get("median_ratio"))
    spread = f"min {result['min']:,.0f} max {result['max']:,.0f}"
    print(f"{result['case']:<40} median {figure:>12,.1f}  ({spread})  goal: {result['goal']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--hits", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as tmp:
        directory = Path(tmp)
        store_batched(directory, 2000, args.batch)  # warm-up
        batched, single, ratios = [], [], []
        for _ in range(args.pairs):
            b = store_batched(directory, args.hits, args.batch)
            s = store_one_by_one(directory, 500)
            batched.append(b)
            single.append(s)
            ratios.append(b / s)
        common = {"bench": "hub_ingest", "python": sys.version.split()[0], "pairs": args.pairs}
        _emit(
            {
                **common,
                "case": f"store, batches of {args.batch}",
                "median_hits_per_s": statistics.median(batched),
                "min": min(batched),
                "max": max(batched),
                "goal": ">= 20,000 hits/s",
            },
            args.json,
        )
        _emit(
            {
                **common,
                "case": "store, one transaction per hit",
                "median_hits_per_s": statistics.median(single),
                "min": min(single),
                "max": max(single),
                "goal": "baseline",
            },
            args.json,
        )
        _emit(
            {
                **common,
                "case": "store, batched / per-hit ratio",
                "median_ratio": statistics.median(ratios),
                "min": min(ratios),
                "max": max(ratios),
                "goal": "batching pays",
            },
            args.json,
        )
        proc, url = start_hub(directory / "hub.db", "--max-hits-per-probe", "100000000")
        try:
            http_ingest(url, 1, 2000, args.batch, run=99)  # warm-up
            for clients in (1, 2):
                rates = [
                    http_ingest(url, clients, args.hits, args.batch, run=clients * 100 + r)
                    for r in range(args.pairs)
                ]
                _emit(
                    {
                        **common,
                        "case": f"http, {clients} client(s), batches of {args.batch}",
                        "median_hits_per_s": statistics.median(rates),
                        "min": min(rates),
                        "max": max(rates),
                        "runs": [round(r) for r in rates],
                        "goal": ">= 20,000 hits/s",
                        "meets_goal": statistics.median(rates) >= GOAL,
                    },
                    args.json,
                )
            rates = [fleet_ingest(url, 50, args.hits, 20, run=1000 + r) for r in range(args.pairs)]
            _emit(
                {
                    **common,
                    "case": "http, 50 sensors at once, batches of 20",
                    "median_hits_per_s": statistics.median(rates),
                    "min": min(rates),
                    "max": max(rates),
                    "runs": [round(r) for r in rates],
                    "goal": ">= 20,000 hits/s",
                    "meets_goal": statistics.median(rates) >= GOAL,
                },
                args.json,
            )
        finally:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
