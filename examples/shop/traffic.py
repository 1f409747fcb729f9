"""A seeded, bounded traffic generator for the shop: a realistic mix of quotes, orders and lookups.

    python examples/shop/traffic.py --url http://127.0.0.1:8000 --seconds 20 --seed 7

The mix is what the shop's tests never imagined: JPY and GBP besides USD, single-sticker carts,
wholesale carts of 10 units and more, guest addresses with no postcode, west-coast postcodes.
It stops by itself after ``--seconds`` or ``--requests``, whichever comes first, and prints a
progress line while it runs.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import sys
import threading
import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

CURRENCIES = [("USD", 50), ("EUR", 20), ("GBP", 15), ("JPY", 15)]
COUPONS = [(None, 50), ("SPRING10", 20), ("WELCOME5", 20), ("VIP25", 10)]
SKUS = ["mug", "tee", "hoodie", "cap", "sticker", "poster"]
ADDRESSES: list[tuple[dict[str, Any], int]] = [
    ({"country": "US", "postcode": "10001", "city": "New York", "street": "W 34th St 20"}, 25),
    (
        {"country": "US", "postcode": "94103", "city": "San Francisco", "street": "Mission St 500"},
        15,
    ),
    ({"country": "US", "postcode": "80202", "city": "Denver", "street": "Larimer St 1400"}, 5),
    ({"country": "CA", "postcode": "M5V 2T6", "city": "Toronto", "street": "King St W 300"}, 10),
    ({"country": "GB", "postcode": "EC1V 9LT", "city": "London", "street": "City Rd 100"}, 10),
    ({"country": "DE", "postcode": "10115", "city": "Berlin", "street": "Invalidenstr 1"}, 10),
    ({"country": "JP", "postcode": "150-0002", "city": "Tokyo", "street": "Shibuya 2-21-1"}, 10),
    # Hong Kong has no postcodes: guest checkouts send null, some clients leave the key out.
    ({"country": "HK", "postcode": None, "city": "Hong Kong", "street": "Queen's Rd C 1"}, 10),
    ({"country": "HK", "city": "Kowloon", "street": "Nathan Rd 88"}, 5),
]


def _pick(rng: random.Random, weighted: list[tuple[Any, int]]) -> Any:
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights=weights)[0]


def make_order(rng: random.Random) -> dict[str, Any]:
    """One realistic order: a small or large cart, a currency, maybe a coupon, an address."""
    roll = rng.random()
    if roll < 0.2:
        items = [{"sku": "sticker", "qty": rng.randint(1, 3)}]  # the impulse buy
    elif roll < 0.26:
        items = [{"sku": rng.choice(SKUS), "qty": rng.randint(10, 24)}]  # a wholesale buyer
    else:
        items = [
            {"sku": rng.choice(SKUS), "qty": rng.randint(1, 3)} for _ in range(rng.randint(1, 4))
        ]
    order: dict[str, Any] = {
        "items": items,
        "currency": _pick(rng, CURRENCIES),
        "address": dict(_pick(rng, ADDRESSES)),
    }
    coupon = _pick(rng, COUPONS)
    if coupon:
        order["coupon"] = coupon
    return order


@dataclass
class Stats:
    """Counts shared by the worker threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())


def _worker(
    url: urllib.parse.SplitResult,
    seed: int,
    deadline: float,
    budget: list[int],
    stats: Stats,
    stop: threading.Event,
) -> None:
    rng = random.Random(seed)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 80, timeout=10)
    while time.monotonic() < deadline and not stop.is_set():
        with stats.lock:
            if budget[0] <= 0:
                break
            budget[0] -= 1
        roll = rng.random()
        if roll < 0.6:
            method, path, body = "POST", "/quote", make_order(rng)
        elif roll < 0.9:
            method, path, body = "POST", "/orders", make_order(rng)
        else:
            method, path, body = "GET", f"/products?currency={_pick(rng, CURRENCIES)}", None
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        started = time.perf_counter()
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            response.read()
            with stats.lock:
                stats.statuses[response.status] += 1
                stats.latencies.append(time.perf_counter() - started)
        except (OSError, http.client.HTTPException) as exc:
            with stats.lock:
                stats.errors[type(exc).__name__] += 1
            conn.close()
            conn = http.client.HTTPConnection(
                url.hostname or "127.0.0.1", url.port or 80, timeout=10
            )
            time.sleep(0.05)
    conn.close()


def run(
    url: str,
    *,
    seconds: float,
    max_requests: int = 1_000_000,
    seed: int = 7,
    concurrency: int = 4,
    progress: bool = True,
    stop: threading.Event | None = None,
) -> Stats:
    """Send traffic until ``seconds`` pass or ``max_requests`` are sent; return the counts."""
    target = urllib.parse.urlsplit(url)
    if target.scheme != "http" or not target.hostname:
        raise SystemExit(f"traffic: --url {url!r}: expected http://HOST:PORT")
    stats = Stats()
    stop = stop or threading.Event()
    deadline = time.monotonic() + seconds
    budget = [max_requests]
    threads = [
        threading.Thread(
            target=_worker, args=(target, seed * 1000 + i, deadline, budget, stats, stop)
        )
        for i in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    while any(thread.is_alive() for thread in threads):
        time.sleep(0.5)
        if progress:
            elapsed = time.monotonic() - started
            ok = sum(n for status, n in stats.statuses.items() if status < 400)
            line = (
                f"traffic: {elapsed:5.1f}/{seconds:.0f}s  {stats.sent} requests  {ok} ok  "
                f"{sum(stats.errors.values())} errors  {stats.sent / max(elapsed, 1e-9):.0f} req/s"
            )
            end = "\r" if sys.stderr.isatty() else "\n"
            print(line, end=end, file=sys.stderr, flush=True)
    for thread in threads:
        thread.join()
    if progress and sys.stderr.isatty():
        print(file=sys.stderr)
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the shop's base URL")
    parser.add_argument("--seconds", type=float, default=20.0, help="stop after this many seconds")
    parser.add_argument("--requests", type=int, default=1_000_000, help="stop after this many")
    parser.add_argument("--seed", type=int, default=7, help="seed of the request mix")
    parser.add_argument("--concurrency", type=int, default=4, help="parallel connections")
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    args = parser.parse_args(argv)
    stats = run(
        args.url,
        seconds=args.seconds,
        max_requests=args.requests,
        seed=args.seed,
        concurrency=args.concurrency,
        progress=not args.quiet,
    )
    print(
        json.dumps(
            {"sent": stats.sent, "statuses": dict(stats.statuses), "errors": dict(stats.errors)}
        )
    )
    return 0 if stats.sent and not stats.errors else 1


if __name__ == "__main__":
    sys.exit(main())
