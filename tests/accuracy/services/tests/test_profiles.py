"""The profile service's unit tests: tidy inputs only; each marker is a production probe."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools

import pytest
from acc_profiles import profiles

SERVICE = "acc-profiles"
probe = functools.partial(pytest.mark.runtime_probe, service=SERVICE, rate=5)
UTC = dt.UTC


@pytest.mark.runtime_probe(
    "acc_profiles.profiles:reserve_seats",
    capture=["available", "wanted"],
    expect="result >= 0",
    service=SERVICE,
)
def test_reserve_seats() -> None:
    assert profiles.reserve_seats(10, 4) == 6
    assert profiles.reserve_seats(30, 30) == 0


@probe("acc_profiles.profiles:fetch_avatar", capture=["user_id"])
def test_fetch_avatar() -> None:
    assert asyncio.run(profiles.fetch_avatar(8)).endswith("/8.png")
    assert asyncio.run(profiles.fetch_avatar(12)).endswith("/12.png")


@probe("acc_profiles.profiles:book_slot", capture=["start"])
def test_book_slot_naive() -> None:
    assert profiles.book_slot(dt.datetime(2026, 3, 1, 9, 30)) == "2026-03-01 09:30"
    assert profiles.book_slot(dt.datetime(2026, 3, 2, 14, 0)) == "2026-03-02 14:00"


@probe("acc_profiles.profiles:book_slot_utc", capture=["start"])
def test_book_slot_utc() -> None:
    start = dt.datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert profiles.book_slot_utc(start) == "2026-03-01 09:30 +0000"
    assert profiles.book_slot_utc(start + dt.timedelta(hours=5)).startswith("2026-03-01 14:30")


@probe("acc_profiles.profiles:local_day", capture=["moment"])
def test_local_day_aware() -> None:
    assert profiles.local_day(dt.datetime(2026, 3, 1, 23, 0, tzinfo=UTC)) == "2026-03-01"
    assert profiles.local_day(dt.datetime(2026, 3, 2, 1, 0, tzinfo=UTC)) == "2026-03-02"


TIDY_PROFILES = [
    {
        "username": "alice7",
        "city": "Salt Lake",
        "company": "Acme Corp",
        "note": "ring twice at gate",
        "title": "back office",
        "address": "Oak St 12",
        "surname": "Smith",
        "first_name": "Ada",
        "status": "available",
        "handle": "alice",
    },
    {
        "username": "bob21",
        "city": "Palo Alto",
        "company": "Globex Corp",
        "note": "leave at door",
        "title": "side entrance",
        "address": "Elm St 3",
        "surname": "Jones",
        "first_name": "Ben",
        "status": "busy",
        "handle": "bob",
    },
]


@probe("acc_profiles.profiles:register_profile", capture=["profile"])
def test_register_profile() -> None:
    for profile in TIDY_PROFILES:
        assert profiles.register_profile(profile) == profile


# Noise-only controls.


@probe("acc_profiles.profiles:stamp_event", capture=["created_at", "seen_at"])
def test_stamp_event_timestamps() -> None:
    created = "2026-01-02T03:04:05.123456+00:00"
    assert profiles.stamp_event(created, dt.datetime(2026, 1, 2, 3, 4, 6, 623456)) == 1.5
    created = "2026-02-03T10:00:00.000001+00:00"
    assert profiles.stamp_event(created, dt.datetime(2026, 2, 3, 10, 0, 2, 1)) == 2.0


@probe("acc_profiles.profiles:pack", capture=["size"])
def test_pack_every_size() -> None:
    assert profiles.pack("S") == "small box"
    assert profiles.pack("M") == "medium box"
    assert profiles.pack("L") == "large box"


@probe("acc_profiles.profiles:pick_vessel", capture=["vessel"])
def test_pick_vessel_mug() -> None:
    assert profiles.pick_vessel("mug") == "matte"


@probe("acc_profiles.profiles:greet", capture=["nickname", "city"])
def test_greet_free_text() -> None:
    assert profiles.greet("sam", "Springfield") == "Hello sam from Springfield"
    assert profiles.greet("kim", "Lakewood") == "Hello kim from Lakewood"
