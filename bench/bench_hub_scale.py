"""1,000 simulated sensors against real hubs: SQLite (one process), PostgreSQL (1 and 3 replicas).

One asyncio process simulates the fleet with real HTTP/1.1 (keep-alive sockets, no client library
in the timing): every sensor registers, holds a long poll (``wait=30``) on one socket and sends
heartbeats (every 10 s, with the status of each probe it holds, as the agent does) and hit
batches on another. With three replicas, sensor *i* talks to replica *i mod 3* (what DNS or a
load balancer does), and the clients place probes through the replicas in turn, so most
deliveries cross replicas through PostgreSQL's NOTIFY.

Phase 1, propagation: ``--clients`` clients place and remove ``--probes`` probes in all (each
selects every sensor; a client places one, waits until every sensor's poll answer holds it,
removes it, waits until every answer has dropped it). Per sensor and probe: the time from just
before the ``POST /v1/probes`` to the moment the sensor has read the poll answer holding it
(and the same for removal). Goal: p99 < 1 s.

Phase 2, ingest: every sensor posts ``--batches`` batches of ``--batch`` small hits, each batch
after the previous one was acknowledged (stored and committed), all sensors at once, while the
polls and heartbeats go on. Figure: acknowledged hits / wall time; the probe's stored count is
checked against it. Goals: >= 20,000 hits/s on SQLite; PostgreSQL three replicas >= 1.5x one.

CPU (user+system seconds over each phase, from /proc) and peak memory (VmHWM) are given per hub
replica, for the PostgreSQL server (postmaster and its backends together) and for the load
generator, also per 1,000 hits ingested and per 1,000 poll answers delivered: what each process
spent, whatever share of the machine it got, the figure to size a deployment with. The last
lines print each goal of the issue with its value (median over the runs), ``ok`` or ``MISSED``,
and the load average while measuring. The hit bodies are encoded before the timing starts, so
the generator spends about 1 ms of CPU per 1,000 hits. Every process shares the machine's
cores. PostgreSQL is a temporary cluster from Debian's binaries (``tests/pg_cluster.py``, fsync
on: commits are durable) unless ``SENSOR_BENCH_POSTGRES_URL`` names a server.

    python bench/bench_hub_scale.py [--json] [--runs 1] [--sensors 1000] [--probes 200]
        [--clients 8] [--batch 100] [--batches 3] [--cases sqlite,pg1,pg3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from benchlib import CLIENT, SENSOR, start_hub

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

INGEST_GOAL = 20_000.0
REPLICA_GOAL = 1.5
P99_GOAL_MS = 1000.0
HEARTBEAT_INTERVAL = 10.0
_TICK = os.sysconf("SC_CLK_TCK")


# -- processes: CPU and memory from /proc -----------------------------------------------------


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


class Meter:
    """CPU seconds of each watched process over a phase (PostgreSQL: postmaster + backends)."""

    def __init__(self, hubs: list[int], postmaster: int | None) -> None:
        self.hubs = hubs
        self.postmaster = postmaster
        self.start: dict[str, float] = {}

    def _postgres(self) -> list[int]:
        if self.postmaster is None:
            return []
        return [self.postmaster, *children(self.postmaster)]

    def sample(self) -> dict[str, float]:
        values = {f"hub{i}": cpu_seconds(pid) for i, pid in enumerate(self.hubs)}
        if self.postmaster is not None:
            values["postgres"] = sum(cpu_seconds(pid) for pid in self._postgres())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        values["generator"] = usage.ru_utime + usage.ru_stime
        return values

    def begin(self) -> None:
        self.start = self.sample()

    def end(self) -> dict[str, float]:
        now = self.sample()
        return {key: round(now[key] - self.start.get(key, 0.0), 2) for key in now}

    def memory(self) -> dict[str, float]:
        values = {f"hub{i}": round(peak_rss_mb(pid), 1) for i, pid in enumerate(self.hubs)}
        if self.postmaster is not None:
            # shared buffers are counted once per backend that touched them: an upper bound
            values["postgres"] = round(sum(peak_rss_mb(p) for p in self._postgres()), 1)
        values["generator"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        return values


# -- HTTP/1.1 on asyncio streams ---------------------------------------------------------------


class Http:
    """One keep-alive connection; requests on it are sent one at a time (a lock)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.lock = asyncio.Lock()

    async def request(
        self, method: str, path: str, token: str, body: bytes = b""
    ) -> tuple[int, Any]:
        async with self.lock:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
            assert self.reader is not None
            head = (
                f"{method} {path} HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            )
            self.writer.write(head.encode() + body)
            await self.writer.drain()
            status = int((await self.reader.readline()).split()[1])
            length = 0
            while (line := await self.reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            data = await self.reader.readexactly(length)
            return status, json.loads(data)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def small_hit(probe: dict[str, Any], n: int) -> dict[str, Any]:
    return {
        "probe_id": probe["id"],
        "signature": probe["signature"],
        "kind": "snapshot",
        "location": "shop.pricing:apply_discount@return",
        "ts": 1_700_000_000.0 + n / 1000,
        "hit_id": f"b-{n}",
        "thread": "MainThread",
        "captures": {"price": n % 997, "rate": 0.15, "result": n % 997 * 0.85},
    }


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


# -- the fleet ---------------------------------------------------------------------------------


class Sensor:
    def __init__(self, index: int, url: str) -> None:
        self.index = index
        self.poll = Http(*_address(url))
        self.send = Http(*_address(url))
        self.source_id = ""
        self.etag = ""
        self.held: set[str] = set()


class Fleet:
    def __init__(self, urls: list[str], sensors: int) -> None:
        self.urls = urls
        self.sensors = [Sensor(i, urls[i % len(urls)]) for i in range(sensors)]
        self.placed_at: dict[str, float] = {}
        self.removed_at: dict[str, float] = {}
        self.delivered: dict[str, int] = {}
        self.dropped: dict[str, int] = {}
        self.deliveries: list[float] = []
        self.removals: list[float] = []
        self.errors: list[str] = []
        self.changed = asyncio.Condition()
        self.stop = False

    async def register(self) -> None:
        limit = asyncio.Semaphore(50)

        async def one(sensor: Sensor) -> None:
            async with limit:
                body = json.dumps(
                    {"service": "fleet", "pid": sensor.index, "host": f"h{sensor.index % 40}"}
                ).encode()
                status, answer = await sensor.send.request(
                    "POST", "/v1/sensors/register", SENSOR, body
                )
                if status != 200:
                    raise SystemExit(f"register answered {status}: {answer}")
                sensor.source_id = answer["source_id"]
                _, answer = await sensor.poll.request(
                    "GET", f"/v1/sensors/{sensor.source_id}/probes", SENSOR
                )
                sensor.etag = answer["etag"]
                sensor.held = {p["id"] for p in answer["probes"]}

        await asyncio.gather(*(one(sensor) for sensor in self.sensors))

    async def poll_loop(self, sensor: Sensor) -> None:
        while not self.stop:
            path = f"/v1/sensors/{sensor.source_id}/probes?etag={sensor.etag}&wait=30"
            try:
                status, answer = await sensor.poll.request("GET", path, SENSOR)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                if not self.stop:
                    self.errors.append(f"poll: {exc!r}")
                return
            now = time.perf_counter()
            if status != 200:
                self.errors.append(f"poll answered {status}: {answer}")
                return
            sensor.etag = answer["etag"]
            held = {p["id"] for p in answer["probes"]}
            for probe_id in held - sensor.held:
                if probe_id in self.placed_at:
                    self.deliveries.append(now - self.placed_at[probe_id])
                    self.delivered[probe_id] = self.delivered.get(probe_id, 0) + 1
            for probe_id in sensor.held - held:
                if probe_id in self.removed_at:
                    self.removals.append(now - self.removed_at[probe_id])
                    self.dropped[probe_id] = self.dropped.get(probe_id, 0) + 1
            sensor.held = held
            async with self.changed:
                self.changed.notify_all()

    async def heartbeat_loop(self, sensor: Sensor) -> None:
        await asyncio.sleep(random.uniform(0, HEARTBEAT_INTERVAL))
        while not self.stop:
            statuses = [
                {"probe_id": probe_id, "state": "installed", "backend": "simulated"}
                for probe_id in sorted(sensor.held)
            ]
            body = json.dumps({"statuses": statuses, "dropped": 0}).encode()
            try:
                status, answer = await sensor.send.request(
                    "POST", f"/v1/sensors/{sensor.source_id}/heartbeat", SENSOR, body
                )
            except (OSError, asyncio.IncompleteReadError) as exc:
                if not self.stop:
                    self.errors.append(f"heartbeat: {exc!r}")
                return
            if status != 200:
                self.errors.append(f"heartbeat answered {status}: {answer}")
            await asyncio.sleep(HEARTBEAT_INTERVAL)

    async def wait_for(self, predicate: Any, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        async with self.changed:
            while not predicate():
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), remaining)
        return True

    async def client_loop(self, index: int, count: int) -> None:
        conn = Http(*_address(self.urls[index % len(self.urls)]))
        total = len(self.sensors)
        for n in range(count):
            probe_id = f"scale-{index}-{n}-{uuid.uuid4().hex[:6]}"
            body = json.dumps(
                {"probe": {"id": probe_id, "kind": "counter", "location": f"bench.mod:f{n}"}}
            ).encode()
            self.placed_at[probe_id] = time.perf_counter()
            status, answer = await conn.request("POST", "/v1/probes", CLIENT, body)
            if status != 201:
                raise SystemExit(f"placing a probe answered {status}: {answer}")
            if not await self.wait_for(lambda p=probe_id: self.delivered.get(p, 0) >= total, 30):
                raise SystemExit(
                    f"probe {probe_id} reached {self.delivered.get(probe_id, 0)} of {total}"
                )
            self.removed_at[probe_id] = time.perf_counter()
            status, answer = await conn.request("DELETE", f"/v1/probes/{probe_id}", CLIENT)
            if status != 200:
                raise SystemExit(f"removing a probe answered {status}: {answer}")
            if not await self.wait_for(lambda p=probe_id: self.dropped.get(p, 0) >= total, 30):
                raise SystemExit(
                    f"probe {probe_id} left {self.dropped.get(probe_id, 0)} of {total}"
                )
        conn.close()


async def run_case(
    name: str, urls: list[str], meter: Meter, args: argparse.Namespace, run: int
) -> dict[str, Any]:
    load_at_start = round(os.getloadavg()[0], 2)
    fleet = Fleet(urls, args.sensors)
    started = time.perf_counter()
    await fleet.register()
    registered_in = time.perf_counter() - started
    background = [asyncio.create_task(fleet.poll_loop(s)) for s in fleet.sensors]
    background += [asyncio.create_task(fleet.heartbeat_loop(s)) for s in fleet.sensors]
    await asyncio.sleep(1.0)  # every poll parked on its replica

    # phase 1: propagation
    meter.begin()
    began = time.perf_counter()
    per_client = [args.probes // args.clients + (i < args.probes % args.clients)
                  for i in range(args.clients)]  # fmt: skip
    await asyncio.gather(*(fleet.client_loop(i, n) for i, n in enumerate(per_client)))
    propagation_wall = time.perf_counter() - began
    propagation_cpu = meter.end()

    # phase 2: ingest (one snapshot probe on every sensor; closed-loop batches)
    client = Http(*_address(urls[0]))
    body = json.dumps(
        {"probe": {"kind": "snapshot", "location": "shop.pricing:apply_discount"}}
    ).encode()
    status, placed = await client.request("POST", "/v1/probes", CLIENT, body)
    if status != 201:
        raise SystemExit(f"placing the ingest probe answered {status}: {placed}")
    probe = placed["probe"]
    total = len(fleet.sensors)
    if not await fleet.wait_for(
        lambda: sum(probe["id"] in s.held for s in fleet.sensors) == total, 30
    ):
        raise SystemExit("the ingest probe did not reach every sensor")
    bodies = {
        sensor.index: [
            json.dumps(
                {
                    "hits": [
                        small_hit(probe, (run * 10**4 + sensor.index) * 10**4 + b * 1000 + n)
                        for n in range(args.batch)
                    ]
                }
            ).encode()
            for b in range(args.batches)
        ]
        for sensor in fleet.sensors
    }

    async def post(sensor: Sensor) -> int:
        accepted = 0
        for payload in bodies[sensor.index]:
            status, answer = await sensor.send.request(
                "POST", f"/v1/sensors/{sensor.source_id}/hits", SENSOR, payload
            )
            if status != 200:
                raise SystemExit(f"hits answered {status}: {answer}")
            accepted += int(answer["accepted"])
        return accepted

    meter.begin()
    began = time.perf_counter()
    accepted = sum(await asyncio.gather(*(post(s) for s in fleet.sensors)))
    ingest_wall = time.perf_counter() - began
    ingest_cpu = meter.end()
    expected = total * args.batch * args.batches
    _, record = await client.request("GET", f"/v1/probes/{probe['id']}", CLIENT)
    if accepted != expected or record["probe"]["hit_count"] != expected:
        raise SystemExit(
            f"accepted {accepted}, stored {record['probe']['hit_count']}, expected {expected}"
        )
    client.close()

    fleet.stop = True
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    for sensor in fleet.sensors:
        sensor.poll.close()
        sensor.send.close()
    if fleet.errors:
        raise SystemExit(f"{len(fleet.errors)} errors, first: {fleet.errors[0]}")
    return {
        "bench": "hub_scale",
        "case": name,
        "run": run,
        "replicas": len(urls),
        "python": sys.version.split()[0],
        "sensors": total,
        "probes": args.probes,
        "clients": args.clients,
        "register_s": round(registered_in, 2),
        "deliveries": len(fleet.deliveries),
        "removals": len(fleet.removals),
        "delivery_p50_ms": round(percentile(fleet.deliveries, 50) * 1000, 1),
        "delivery_p99_ms": round(percentile(fleet.deliveries, 99) * 1000, 1),
        "delivery_max_ms": round(max(fleet.deliveries) * 1000, 1),
        "removal_p50_ms": round(percentile(fleet.removals, 50) * 1000, 1),
        "removal_p99_ms": round(percentile(fleet.removals, 99) * 1000, 1),
        "propagation_wall_s": round(propagation_wall, 1),
        "propagation_cpu_s": propagation_cpu,
        "hits": accepted,
        "batch": args.batch,
        "ingest_wall_s": round(ingest_wall, 2),
        "hits_per_s": round(accepted / ingest_wall),
        "ingest_cpu_s": ingest_cpu,
        "peak_rss_mb": meter.memory(),
        # per 1,000 poll answers that delivered or dropped a probe: what the fan-out costs
        "propagation_cpu_ms_per_1000_answers": {
            key: round(value / max(1, len(fleet.deliveries) + len(fleet.removals)) * 1e6, 1)
            for key, value in propagation_cpu.items()
        },
        # per 1,000 hits, whatever else the machine runs: what the ingest costs each process
        "ingest_cpu_ms_per_1000_hits": {
            key: round(value / max(1, accepted) * 1e6, 1) for key, value in ingest_cpu.items()
        },
        "load_average_start": load_at_start,
        "load_average": round(os.getloadavg()[0], 2),
        "goal": f"delivery p99 < {P99_GOAL_MS:g} ms"
        + (f"; ingest >= {INGEST_GOAL:,.0f} hits/s" if name == "sqlite" else ""),
        "meets_goal": percentile(fleet.deliveries, 99) * 1000 < P99_GOAL_MS
        and (name != "sqlite" or accepted / ingest_wall >= INGEST_GOAL),
    }


# -- the cases ---------------------------------------------------------------------------------


HUB_OPTIONS = ("--max-hits-per-probe", "100000000", "--log-level", "error")


def _stop(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def one_case(name: str, args: argparse.Namespace, run: int, postgres: Any) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        procs: list[subprocess.Popen[str]] = []
        postmaster = None
        try:
            if name == "sqlite":
                proc, url = start_hub(Path(tmp) / "hub.db", *HUB_OPTIONS)
                procs.append(proc)
                urls = [url]
            else:
                import psycopg

                base, postmaster = postgres
                schema = f"bench_{uuid.uuid4().hex[:8]}"
                with psycopg.connect(base, autocommit=True) as conn:
                    conn.execute(f"CREATE SCHEMA {schema}")
                from pg_cluster import schema_url

                db = schema_url(base, schema)
                urls = []
                for _ in range(1 if name == "pg1" else 3):
                    proc, url = start_hub(db, *HUB_OPTIONS)  # type: ignore[arg-type]
                    procs.append(proc)
                    urls.append(url)
            meter = Meter([proc.pid for proc in procs], postmaster)
            return asyncio.run(run_case(name, urls, meter, args, run))
        finally:
            _stop(procs)


def _start_postgres() -> tuple[Any, tuple[str, int | None]]:
    given = os.environ.get("SENSOR_BENCH_POSTGRES_URL")
    if given:
        return None, (given, None)
    from pg_cluster import HOW_TO_GET, PostgresCluster, find_binaries

    binaries = find_binaries()
    if binaries is None:
        raise SystemExit(HOW_TO_GET)
    cluster = PostgresCluster(binaries, fsync=True).start()
    assert cluster.directory is not None
    pid_file = cluster.directory / "data" / "postmaster.pid"
    postmaster = int(pid_file.read_text().split()[0])
    return cluster, (cluster.url, postmaster)


def describe(result: dict[str, Any]) -> str:
    """One case of one run, in words: latencies, hits/s, CPU per unit of work per process."""

    def per_process(values: dict[str, float]) -> str:
        return ", ".join(f"{key} {value} ms" for key, value in values.items())

    return (
        f"run {result['run']} {result['case']} (load {result['load_average_start']} -> "
        f"{result['load_average']}): delivery p50 {result['delivery_p50_ms']} ms, p99 "
        f"{result['delivery_p99_ms']} ms ({result['deliveries']} deliveries); ingest "
        f"{result['hits_per_s']:,} hits/s ({result['hits']:,} hits)\n"
        f"    CPU per 1,000 hits: {per_process(result['ingest_cpu_ms_per_1000_hits'])}\n"
        f"    CPU per 1,000 poll answers: "
        f"{per_process(result['propagation_cpu_ms_per_1000_answers'])}\n"
        f"    peak memory MB: {result['peak_rss_mb']}"
    )


def figures(results: list[dict[str, Any]], runs: int) -> list[dict[str, Any]]:
    """The issue's figures, each with its goal and whether it is met (medians over runs)."""
    found: list[dict[str, Any]] = []
    loads = sorted(value for r in results for value in (r["load_average_start"], r["load_average"]))
    over = f"median of {runs} run(s), load average {loads[0]:g}..{loads[-1]:g}" if loads else ""

    def median_of(case: str, key: str) -> float | None:
        values = [r[key] for r in results if r["case"] == case]
        return statistics.median(values) if values else None

    for case, label in (("sqlite", "SQLite"), ("pg1", "PostgreSQL 1 replica"),
                        ("pg3", "PostgreSQL 3 replicas")):  # fmt: skip
        p99 = median_of(case, "delivery_p99_ms")
        if p99 is not None:
            found.append(
                {"figure": f"placement delivery p99, {label}", "value": f"{p99:,.0f} ms",
                 "goal": f"< {P99_GOAL_MS:,.0f} ms", "meets_goal": p99 < P99_GOAL_MS}
            )  # fmt: skip
    rate = median_of("sqlite", "hits_per_s")
    if rate is not None:
        found.append(
            {"figure": "ingest, SQLite, one hub process", "value": f"{rate:,.0f} hits/s",
             "goal": f">= {INGEST_GOAL:,.0f}", "meets_goal": rate >= INGEST_GOAL}
        )  # fmt: skip
    ratios = []
    for run in range(runs):
        one = [r["hits_per_s"] for r in results if r["run"] == run and r["case"] == "pg1"]
        three = [r["hits_per_s"] for r in results if r["run"] == run and r["case"] == "pg3"]
        if one and three:
            ratios.append(three[0] / one[0])
    if ratios:
        ratio = statistics.median(ratios)
        found.append(
            {"figure": "ingest, PostgreSQL, 3 replicas / 1 (per run)",
             "value": f"{ratio:.2f}x", "goal": f">= {REPLICA_GOAL}x",
             "meets_goal": ratio >= REPLICA_GOAL,
             "ratios": [round(value, 2) for value in ratios]}
        )  # fmt: skip
    for figure in found:
        figure["bench"] = "hub_scale"
        figure["over"] = over
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true", help="one JSON object per measurement")
    parser.add_argument("--runs", type=int, default=1, help="runs of every case, interleaved")
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--batch", type=int, default=100, help="hits per batch")
    parser.add_argument("--batches", type=int, default=3, help="batches per sensor")
    parser.add_argument("--cases", default="sqlite,pg1,pg3")
    args = parser.parse_args()
    cases = [case for case in args.cases.split(",") if case]
    # two sockets per sensor, in this process and in the hubs it starts
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * args.sensors + 512)), hard))
    cluster, postgres = (None, None)
    if any(case.startswith("pg") for case in cases):
        cluster, postgres = _start_postgres()
    results: list[dict[str, Any]] = []
    try:
        for run in range(args.runs):
            for case in cases:
                result = one_case(case, args, run, postgres)
                results.append(result)
                if args.json:
                    print(json.dumps(result), flush=True)
                else:
                    print(describe(result), flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
    for figure in figures(results, args.runs):
        if args.json:
            print(json.dumps(figure))
        else:
            print(
                f"{figure['figure']:<44} {figure['value']:>12} {figure['goal']:>14}  "
                f"{'ok' if figure['meets_goal'] else 'MISSED'}  ({figure['over']})"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
