"""Seeded production traffic for the accuracy services: what each request carries, and how often.

Request ``n`` of a service always carries the same payload (a ``random.Random`` seeded with the
service and ``n``), so every run of the suite sends the same mix. The shares below are the
truth the verdicts are held against: an expectation that the traffic breaks on exactly 2 of
every 10 consecutive requests has a true violation rate of 20% in any window of requests,
give or take 2/N over N requests.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

SEED = 12

#: reserve(stock, qty) breaks ``result >= 0`` on exactly this many of every 10 ledger requests.
LEDGER_VIOLATIONS_PER_10 = 2
#: reserve_seats(available, wanted) breaks ``result >= 0`` on this many of every 10 requests.
PROFILE_VIOLATIONS_PER_10 = 1
#: Only every QUANTITY_EVERY-th ledger request carries order lines with quantities.
QUANTITY_EVERY = 5
#: Share of requests that carry each odd class (words for numbers, a None address, a float...).
ODD_SHARE = 0.3

_NOT_NUMBERS = ["n/a", "twelve", "ten", "many", "tbd", "some", "unknown", "lots"]
_CODE_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_KNOWN_COUPONS = ["SPRING10", "VIP25", "WELCOME5"]
_FIRST = ["Ada", "Ben", "Cleo", "Dan", "Eve", "Finn", "Gus", "Hana", "Ivo", "Jon", "Kai", "Lea"]
_CITIES = ["Springfield", "Lakewood", "Fairview", "Riverside", "Greenville", "Bristol",
           "Clinton", "Salem", "Madison", "Georgetown", "Arlington", "Ashland"]  # fmt: skip
_STREETS = ["Oak St", "Pine Ave", "Maple Rd", "Cedar Ln", "Elm St", "Birch Way", "Hill Rd"]
_REASONS = ["damaged", "late", "lost", "wrong size"]
_ADJECTIVES = ["red", "blue", "green", "small", "large", "round", "square", "soft", "hard",
               "light", "dark", "plain"]  # fmt: skip
_NOUNS = ["widget", "gadget", "lamp", "chair", "table", "mug", "plate", "bowl", "shelf",
          "clock", "frame", "vase"]  # fmt: skip
_WORDS = ["call", "before", "delivery", "leave", "at", "door", "back", "gate", "ring", "twice",
          "side", "entrance", "office", "hours", "only"]  # fmt: skip
_HANDLES = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
            "mallory", "oscar", "peggy", "trent", "victor", "walter"]  # fmt: skip
_TWO_WORD_CITIES = [
    ("Salt", "Lake"), ("Santa", "Clara"), ("New", "Haven"), ("El", "Paso"),
    ("San", "Jose"), ("Fort", "Worth"), ("Long", "Beach"), ("Palo", "Alto"),
]  # fmt: skip
_COMPANIES = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Soylent", "Wonka",
              "Stark", "Wayne", "Tyrell", "Cyberdyne"]  # fmt: skip
_SURNAMES = ["Smith", "Jones", "Brown", "Taylor", "Wilson", "Evans", "Walker", "Wright",
             "Baker", "Hall", "Young", "King"]  # fmt: skip
_SURNAMES_ODD = ["Müller", "Øster", "Łukasz", "Straße", "Núñez", "Çelik", "Šimek", "Ærø"]
_FIRST_ODD = ["Jose\u0301", "Zoe\u0308", "Rene\u0301e", "Noe\u0308l", "Chloe\u0301"]
_EMOJI = ["\U0001f334", "\U0001f389", "\U0001f680", "\u2615", "\U0001f600"]
_CONTROL = ["\x1b[1m", "\x07", "\x00", "\x08", "\x1b"]
_BIDI = ["\u200f", "\u202e", "\u2066", "\u200e", "\u202b"]
_STATUSES = ["available", "busy", "on holiday", "in a meeting", "working remotely", "away",
             "back soon", "offline"]  # fmt: skip

#: register_profile fields: each carries one value class on ODD_SHARE of production calls and
#: never in the tests. The suite expects a named divergence at ``profile.<field>`` for each.
PROFILE_STRING_CLASSES = {
    "username": "leading or trailing whitespace",
    "city": "non-breaking space",
    "company": "zero-width space",
    "note": "control character",
    "title": "direction mark",
    "address": "tab",
    "surname": "non-ASCII letters",
    "first_name": "combining accent",
    "status": "emoji",
    "handle": "different case",
}


def _rng(service: str, n: int) -> random.Random:
    return random.Random(f"{SEED}:{service}:{n}")


def violates(service: str, n: int, per_10: int) -> bool:
    """True for exactly ``per_10`` requests of every block of 10 (seeded positions)."""
    block = random.Random(f"{SEED}:{service}:block:{n // 10}")
    return n % 10 in block.sample(range(10), per_10)


def _code(rng: random.Random) -> str:
    return "X" + "".join(rng.choice(_CODE_CHARS) for _ in range(6))


def ledger_payload(n: int) -> dict[str, Any]:
    """The body of ledger request ``n`` (``POST /book``)."""
    rng = _rng("ledger", n)
    odd = [rng.random() < ODD_SHARE for _ in range(10)]
    stock = rng.randint(20, 80)
    qty = (
        stock + rng.randint(1, 10)
        if violates("ledger", n, LEDGER_VIOLATIONS_PER_10)
        else rng.randint(1, stock)
    )
    customer: dict[str, Any] = {
        "name": f"{rng.choice(_FIRST)} {rng.choice(_SURNAMES)}",
        "address": {"city": rng.choice(_CITIES), "street": rng.choice(_STREETS)},
        "postcode": f"{rng.randint(10000, 99999)}",
    }
    if odd[5]:
        customer["address"] = None  # a guest checkout
    if rng.random() < ODD_SHARE:
        del customer["postcode"]  # an old client leaves the key out
    amount: Any = round(rng.uniform(1, 500), 2)
    payload: dict[str, Any] = {
        "reserve": {"stock": stock, "qty": qty},
        "typed_qty": rng.choice(_NOT_NUMBERS) if odd[0] else str(rng.randint(1, 50)),
        "coupon": _code(rng) if odd[1] else rng.choice(_KNOWN_COUPONS),
        "customer": customer,
        # a JSON number is a float once parsed; a string is parsed as Decimal by the service
        "amount": amount if odd[6] else f"{amount:.2f}",
        "refund": {
            "amount_cents": rng.randint(100, 20_000),
            "reason": "chargeback" if odd[7] else rng.choice(_REASONS),
        },
        "order_id": 7_340_000 + n,
        "trace": {
            "request_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "span": uuid.UUID(int=rng.getrandbits(128), version=4).hex,
        },
        "etag": f"{rng.getrandbits(128):032x}",
        "lines": rng.randint(3, 9),  # the worker's invoice-line counter moves by this much
        "latency_ms": round(max(0.5, rng.gauss(13.0, 2.0)), 3),
        "title": f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)}",
        "sku": f"sku-{rng.randint(1, 999):03d}",
        "wrap": "" if odd[8] else rng.choice(["paper", "box"]),
    }
    if n % QUANTITY_EVERY == 0:
        # Order lines with quantities: tidy ones run through 5..100 without repeating within
        # 96 consecutive lines (so a run's sample of them is all distinct values, the state in
        # which the issue saw a quantity taken for an id), the odd ones are negative (returns)
        # or wholesale (tens of thousands and more).
        k = n // QUANTITY_EVERY
        tidy = 5 + (k * 37) % 96
        payload["line"] = {
            "quantity": -rng.randint(1, 500) if odd[2] else tidy,
            "unit_cents": rng.randint(100, 5000),
        }
        payload["bulk"] = {
            "quantity": rng.randint(20_000, 2_000_000) if odd[3] else tidy,
            "unit_cents": rng.randint(100, 5000),
        }
    return payload


def _profile(rng: random.Random) -> dict[str, Any]:
    odd = {name: rng.random() < ODD_SHARE for name in PROFILE_STRING_CLASSES}
    handle = rng.choice(_HANDLES)
    username = f"{handle}{rng.randint(1, 99)}"
    city = rng.choice(_TWO_WORD_CITIES)
    company = rng.choice(_COMPANIES)
    note = " ".join(rng.sample(_WORDS, 3))
    title = " ".join(rng.sample(_WORDS, 2))
    street = rng.choice(_STREETS)
    number = rng.randint(1, 300)
    status = rng.choice(_STATUSES)
    return {
        "username": (" " + username if rng.random() < 0.5 else username + "  ")
        if odd["username"]
        else username,
        "city": "\u00a0".join(city) if odd["city"] else " ".join(city),
        "company": f"{company}\u200bCorp" if odd["company"] else f"{company} Corp",
        "note": note + rng.choice(_CONTROL) if odd["note"] else note,
        "title": rng.choice(_BIDI) + title if odd["title"] else title,
        "address": f"{street}\t{number}" if odd["address"] else f"{street} {number}",
        "surname": rng.choice(_SURNAMES_ODD) if odd["surname"] else rng.choice(_SURNAMES),
        "first_name": rng.choice(_FIRST_ODD) if odd["first_name"] else rng.choice(_FIRST),
        "status": f"{status} {rng.choice(_EMOJI)}" if odd["status"] else status,
        "handle": rng.choice([handle.upper(), handle.title()]) if odd["handle"] else handle,
    }  # fmt: skip


def profile_payload(n: int) -> dict[str, Any]:
    """The body of profile request ``n`` (``POST /profile``)."""
    rng = _rng("profile", n)
    odd = [rng.random() < ODD_SHARE for _ in range(4)]
    available = rng.randint(10, 60)
    wanted = (
        available + rng.randint(1, 5)
        if violates("profile", n, PROFILE_VIOLATIONS_PER_10)
        else rng.randint(1, available)
    )
    slot = dt.datetime(2026, 1, 1, 8) + dt.timedelta(minutes=15 * rng.randint(0, 20_000))
    now = dt.datetime.now(dt.UTC)
    return {
        "seats": {"available": available, "wanted": wanted},
        "user_id": rng.randint(1, 1_000_000),
        # tz-aware where every test had a naive time
        "slot": slot.isoformat() + ("+00:00" if odd[0] else ""),
        # another UTC offset where every test had UTC
        "slot_utc": slot.isoformat() + ("+05:30" if odd[1] else "+00:00"),
        # naive where every test had an aware time (the reverse)
        "moment": slot.isoformat() + ("" if odd[2] else "+00:00"),
        "profile": _profile(rng),
        "created_at": (now - dt.timedelta(seconds=rng.uniform(0, 5))).isoformat(),
        "seen_at": now.replace(tzinfo=None).isoformat(),
        "size": rng.choice(["S", "M", "L"]),
        "vessel": "cup" if odd[3] else "mug",
        "nickname": rng.choice(_HANDLES) + rng.choice(["", "y", "o", "ie"]),
        "city": rng.choice(_CITIES),
    }


class Traffic:
    """A paced, bounded loop of real HTTP requests to one service, on its own thread.

    It stops after ``limit`` requests or when :meth:`stop` is called, whichever is first, and
    counts what it sent, what was answered and which parts the service answered with errors.
    """

    def __init__(self, url: str, path: str, payload: Any, *, rate: float, limit: int) -> None:
        self.url = url + path
        self.payload = payload
        self.interval = 1.0 / rate
        self.limit = limit
        self.sent = 0
        self.answered = 0
        self.errors: dict[str, int] = {}
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"traffic {path}", daemon=True)

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def _run(self) -> None:
        next_at = time.monotonic()
        for n in range(self.limit):
            if self._stop.is_set():
                return
            self.send(n)
            next_at += self.interval
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def send(self, n: int) -> None:
        body = json.dumps(self.payload(n)).encode()
        request = urllib.request.Request(
            self.url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        self.sent += 1
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = json.loads(response.read())
        except (OSError, ValueError) as exc:
            if len(self.failures) < 20:  # bounded: the reason of the first few is enough
                self.failures.append(f"request {n}: {exc}")
            return
        self.answered += 1
        for part in answer.get("errors", {}):
            self.errors[part] = self.errors.get(part, 0) + 1

    def warm(self) -> bool:
        """True once the service has answered a first few requests."""
        return self.answered >= 25

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)
