"""The profile service's HTTP API: one raw ASGI endpoint that calls every profile function.

``POST /profile`` takes the JSON document :func:`accuracy_traffic.profile_payload` builds;
times arrive as ISO 8601 strings and are parsed with ``datetime.fromisoformat`` (naive or
aware, as the client sent them). ``GET /health`` answers ``ok``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

from acc_profiles import profiles

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def handle(payload: dict[str, Any]) -> dict[str, Any]:
    """Call every profile function with its part of the payload; collect results and errors."""
    when = dt.datetime.fromisoformat
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("seats", lambda: profiles.reserve_seats(**payload["seats"])),
        ("slot", lambda: profiles.book_slot(when(payload["slot"]))),
        ("slot_utc", lambda: profiles.book_slot_utc(when(payload["slot_utc"]))),
        ("day", lambda: profiles.local_day(when(payload["moment"]))),
        ("profile", lambda: profiles.register_profile(payload["profile"])),
        ("event", lambda: profiles.stamp_event(payload["created_at"], when(payload["seen_at"]))),
        ("pack", lambda: profiles.pack(payload["size"])),
        ("vessel", lambda: profiles.pick_vessel(payload["vessel"])),
        ("greet", lambda: profiles.greet(payload["nickname"], payload["city"])),
    ]
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    try:
        results["avatar"] = await profiles.fetch_avatar(payload["user_id"])
    except Exception as exc:
        errors["avatar"] = type(exc).__name__
    for name, call in calls:
        try:
            results[name] = call()
        except Exception as exc:
            errors[name] = type(exc).__name__
    return {"pid": os.getpid(), "errors": errors, "results": results}


async def _reply(send: Send, status: int, payload: Any) -> None:
    body = json.dumps(payload, default=str).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Route one request."""
    if scope["type"] != "http":
        return
    path = scope.get("path", "/")
    if path == "/health":
        await _reply(send, 200, {"ok": True, "pid": os.getpid()})
        return
    if path == "/profile" and scope["method"] == "POST":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await _reply(send, 200, await handle(json.loads(body)))
        return
    await _reply(send, 404, {"error": path})
