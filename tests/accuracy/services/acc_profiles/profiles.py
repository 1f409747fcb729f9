"""The profile service's functions. Correct on the tidy inputs of their tests."""

from __future__ import annotations

import datetime as dt
from typing import Any


def reserve_seats(available: int, wanted: int) -> int:
    """Seats left after a booking (production over-books on some calls)."""
    return available - wanted


async def fetch_avatar(user_id: int) -> str:
    """The avatar URL of a user; users without one raise LookupError (no test has such a user)."""
    if user_id % 4 == 3:
        raise LookupError(f"user {user_id} has no avatar")
    return f"https://cdn.example.test/avatars/{user_id}.png"


def book_slot(start: dt.datetime) -> str:
    """A calendar slot label (tests pass naive local times)."""
    return start.strftime("%Y-%m-%d %H:%M")


def book_slot_utc(start: dt.datetime) -> str:
    """A slot label from an aware time (tests pass UTC)."""
    return start.strftime("%Y-%m-%d %H:%M %z")


def local_day(moment: dt.datetime) -> str:
    """The day of an aware moment (tests pass aware times)."""
    return moment.date().isoformat()


def register_profile(profile: dict[str, Any]) -> dict[str, Any]:
    """Store a profile as typed (no cleaning: what the form sent is what is kept)."""
    return dict(profile)


# Noise-only controls.


def stamp_event(created_at: str, seen_at: dt.datetime) -> float:
    """Seconds between an event's creation (ISO string) and when it was seen."""
    return (seen_at - dt.datetime.fromisoformat(created_at).replace(tzinfo=None)).total_seconds()


def pack(size: str) -> str:
    """The box for a size: every size is tested."""
    return {"S": "small box", "M": "medium box", "L": "large box"}[size]


def pick_vessel(vessel: str) -> str:
    """The glaze of a vessel (tests only ever had a mug)."""
    return "matte" if vessel == "mug" else "gloss"


def greet(nickname: str, city: str) -> str:
    """A greeting (free text in, free text out)."""
    return f"Hello {nickname} from {city}"
