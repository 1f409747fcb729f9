"""The /v1 HTTP handlers: sensors, sources, probes, hits, evidence, tokens, redaction, health.

Each endpoint is declared once in :data:`ENDPOINTS` with its scope, so that routing, the
OpenAPI document and the auth tests all read the same table. Errors are
``{"error": {"code", "message"}}`` with a message that names the thing and the value.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from sensor._version import __version__
from sensor.errors import ExpressionError, ProbeSpecError
from sensor.hub.auth import SCOPES, allows, new_token, new_token_record
from sensor.hub.body import BodyError, BodyLimits, parse_body
from sensor.hub.core import Hub
from sensor.hub.redaction import RuleError, validate_rules
from sensor.hub.schema import SchemaError, Validator, compile_schema
from sensor.hub.store import (
    PROBE_STATES,
    SOURCE_STATES,
    CorruptRecordError,
    DuplicateError,
    ProbeRecord,
    RedactionRecord,
    SourceRecord,
    TokenRecord,
)
from sensor.probes import Probe, ProbeStatus

__all__ = ["ENDPOINTS", "ApiError", "Endpoint", "error_response"]

EVIDENCE_MEDIA_TYPE = "application/x-ndjson"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_log = logging.getLogger("sensor.hub")


class ApiError(Exception):
    """An error answer: HTTP status, a short code and a sentence naming the problem."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    # a message quoting a request's text must still encode (a lone surrogate would not)
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


# -- auth and input ------------------------------------------------------------------------


async def authorize(request: Request, scope: str) -> TokenRecord:
    """The caller's token record, or 401 (no/unknown token) or 403 (wrong scope)."""
    header = request.headers.get("authorization")
    if not header:
        raise ApiError(
            401, "missing_token", "no bearer token: send 'Authorization: Bearer <token>'"
        )
    kind, _, token = header.partition(" ")
    token = token.strip()
    if kind.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "invalid_token",
            "Authorization header: expected 'Bearer <token>', got another form",
        )
    hub = _hub(request)
    record = hub.tokens.peek(token)
    if record is None:
        record = await hub.call(hub.tokens.lookup, token)
    if record is None:
        raise ApiError(401, "invalid_token", "bearer token: unknown or removed token")
    if not allows(record.scope, scope):
        raise ApiError(
            403,
            "forbidden",
            f"token {record.name!r} has scope {record.scope!r}; "
            f"{request.method} {request.url.path} needs scope {scope!r}",
        )
    return record


#: Bodies smaller than this are parsed on the event loop; larger ones on a worker thread.
_INLINE_BODY = 64 * 1024


@functools.cache
def _validator(schema: str) -> Validator:
    from sensor.hub.openapi import SCHEMAS

    return compile_schema(SCHEMAS[schema], SCHEMAS)


def _schema_code(schema: str, exc: SchemaError) -> str:
    """The error code of a schema violation: by the body and the place in it."""
    path = exc.path
    if schema == "HitBatch" and path.startswith("hits["):
        return "invalid_hit"
    if schema == "Heartbeat" and path.startswith("statuses["):
        return "invalid_status"
    if schema == "PlaceProbe" and path.startswith("probe"):
        return "invalid_probe"
    if schema == "PlaceProbe" and path.startswith("selector"):
        return "invalid_selector"
    return "unknown_field" if exc.unknown else "invalid_field"


def _decode(body: bytearray, limits: BodyLimits, schema: str) -> dict[str, Any]:
    """Parse, check and validate a body (runs on a worker thread when the body is large)."""
    if not body.strip():
        data: Any = {}
    else:
        try:
            data = parse_body(body, limits)
        except BodyError as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
    if not isinstance(data, dict):
        raise ApiError(
            400,
            "malformed_json",
            f"request body: expected a JSON object, got {type(data).__name__}",
        )
    if schema == "RedactionRules":
        return data  # validate_rules checks these with its own, more specific messages
    try:
        _validator(schema)(data)
    except SchemaError as exc:
        raise ApiError(422, _schema_code(schema, exc), str(exc)) from None
    return data


async def read_json(request: Request, schema: str) -> dict[str, Any]:
    """The request body as a JSON object valid against ``SCHEMAS[schema]`` (empty body: ``{}``).

    413 when over the byte limit or the element limits, 400 when malformed or nested too
    deep, 422 naming the first field that breaks the schema or cannot be stored.
    """
    settings = _hub(request).settings
    limit = settings.max_body
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(
            413, "body_too_large", f"request body of {declared} bytes: expected at most {limit}"
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ApiError(
                413, "body_too_large", f"request body over {limit} bytes: expected at most {limit}"
            )
    limits = BodyLimits(
        max_depth=settings.max_json_depth,
        max_containers=settings.max_json_containers,
        max_items=settings.max_json_items,
    )
    if len(body) < _INLINE_BODY:
        return _decode(body, limits, schema)
    return await asyncio.to_thread(_decode, body, limits, schema)


def _query_float(request: Request, name: str) -> float | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ApiError(
            400, "invalid_query", f"query parameter {name!r}: got {text!r}, expected a number"
        )
    return value


def _query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise ApiError(
            400,
            "invalid_query",
            f"query parameter {name!r}: got {text!r}, expected an integer from {low} to {high}",
        )
    return value


def _query_choice(request: Request, name: str, choices: tuple[str, ...]) -> str | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    if text not in choices:
        raise ApiError(
            400,
            "invalid_query",
            f"query parameter {name!r}: got {text!r}, expected one of {', '.join(choices)}",
        )
    return text


async def _source(request: Request, token: TokenRecord) -> SourceRecord:
    """The source of the path, if ``token`` registered it (404 unknown, 403 another's)."""
    hub = _hub(request)
    source_id = request.path_params["source_id"]
    source = await hub.get_source(source_id)
    if source is None:
        raise ApiError(
            404, "unknown_source", f"source {source_id!r}: not registered (register again)"
        )
    if source.token_id != token.id:
        raise ApiError(
            403,
            "not_your_source",
            f"source {source_id!r} was registered with another token; token {token.name!r} "
            "may only poll, report and post hits for the sources it registered",
        )
    return source


async def _probe_record(request: Request) -> ProbeRecord:
    hub = _hub(request)
    probe_id = request.path_params["probe_id"]
    try:
        record = await hub.call(hub.store.get_probe, probe_id)
    except CorruptRecordError as exc:
        raise ApiError(
            409, "quarantined", f"probe {probe_id!r}: {exc.reason} (left out of every answer)"
        ) from None
    if record is None:
        raise ApiError(404, "unknown_probe", f"probe {probe_id!r}: no such probe on this hub")
    return record


# -- sensor endpoints ----------------------------------------------------------------------


async def register(request: Request, token: TokenRecord) -> Response:
    data = await read_json(request, "Register")
    service = data["service"]
    if not token.allows_service(service):
        allowed = ", ".join(repr(name) for name in token.services or ())
        raise ApiError(
            403,
            "service_not_allowed",
            f"register.service: got {service!r}, but token {token.name!r} may only register "
            f"as {allowed}",
        )
    now = time.time()
    source = SourceRecord(
        id=uuid.uuid4().hex,
        service=service,
        version=data.get("version"),
        host=data.get("host"),
        pid=data.get("pid"),
        python=data.get("python"),
        labels=dict(data.get("labels") or {}),
        runtime_id=data.get("runtime_id"),
        sensor_version=data.get("sensor_version"),
        backend=data.get("backend"),
        token_id=token.id,
        first_seen=now,
        last_seen=now,
    )
    hub = _hub(request)
    source = await hub.register_source(source)
    return JSONResponse(
        {
            "source_id": source.id,
            "poll_wait": hub.settings.poll_wait,
            "heartbeat_interval": hub.settings.heartbeat_interval,
        }
    )


async def poll_probes(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    source = await _source(request, token)
    etag = request.query_params.get("etag")
    unchanged = request.query_params.get("unchanged")
    if unchanged not in (None, "short"):
        raise ApiError(
            400,
            "invalid_query",
            f"query parameter 'unchanged': got {unchanged!r}, expected 'short'",
        )
    wait = _query_float(request, "wait") or 0.0
    if wait < 0:
        raise ApiError(400, "invalid_query", f"query parameter 'wait': got {wait!r}, expected >= 0")
    wait = min(wait, hub.settings.max_poll_wait)
    hub.touch(source.id)
    loop_deadline = time.monotonic() + wait
    while True:
        version = hub.notifier.version
        records, current = await hub.probe_set(source)
        remaining = loop_deadline - time.monotonic()
        if current != etag or remaining <= 0 or hub.closing:
            break
        await hub.notifier.wait(version, remaining)
    if unchanged and current == etag:
        # The sensor holds this set already: a few bytes instead of the whole set (a sensor
        # whose polls end at every send would otherwise decode it once a second for nothing).
        return Response(hub.unchanged_answer(current), media_type="application/json")
    return Response(hub.probe_set_answer(records, current), media_type="application/json")


async def heartbeat(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    data = await read_json(request, "Heartbeat")
    source = await _source(request, token)
    statuses = []
    for index, item in enumerate(data.get("statuses") or []):
        try:
            status = ProbeStatus.from_dict(item).to_dict()
        except (ProbeSpecError, TypeError, ValueError) as exc:
            raise ApiError(422, "invalid_status", f"statuses[{index}]: {exc}") from None
        for name in ProbeStatus.LATER_COUNTERS:  # not sent: unknown, not 0
            if name not in item:
                del status[name]
        statuses.append(status)
    dropped = data.get("dropped")
    # one transaction: last seen, drop total and statuses are stored together or not at all
    await hub.call(hub.store.store_heartbeat, source, statuses, dropped, time.time())
    return JSONResponse({})


def _hits_of(raw: Any) -> list[dict[str, Any]]:
    """The posted hits as the store takes them: ``None`` fields and ``source`` left out."""
    return [
        {key: value for key, value in item.items() if value is not None and key != "source"}
        for item in raw
    ]


async def post_hits(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    data = await read_json(request, "HitBatch")
    source = await _source(request, token)
    outcome = await hub.ingest(
        source, data.get("hits") or [], data.get("dropped") or {}, _hits_of, data.get("batch")
    )
    if outcome.completed:
        hub.changed()
    return JSONResponse(
        {
            "accepted": outcome.accepted,
            "declined": outcome.declined_total,
            "declined_by_probe": outcome.declined,
        }
    )


async def deregister(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    await read_json(request, "Empty")
    source = await _source(request, token)
    hub.forget_touch(source.id)
    await hub.call(hub.store.deregister_source, source.id, time.time())
    return JSONResponse({})


# -- client endpoints ----------------------------------------------------------------------


async def list_sources(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    service = request.query_params.get("service") or None
    state = _query_choice(request, "state", SOURCE_STATES)
    labels: dict[str, str] = {}
    for item in request.query_params.getlist("label"):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ApiError(
                400, "invalid_query", f"query parameter 'label': got {item!r}, expected key=value"
            )
        labels[key] = value
    settings = hub.settings
    await hub.flush_touches()  # this replica's polls of the last second count
    now = time.time()
    sources = []
    quarantined: list[tuple[str, str]] = []
    for source in await hub.call(hub.store.list_sources, quarantined=quarantined):
        if service is not None and source.service != service:
            continue
        if any(source.labels.get(k) != v for k, v in labels.items()):
            continue
        listed = source.to_dict(now, settings.stale_after, settings.gone_after)
        if state is not None and listed["state"] != state:
            continue
        sources.append(listed)
    return JSONResponse({"sources": sources, "quarantined": _quarantined(quarantined)})


def _quarantined(items: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"id": record_id, "reason": reason} for record_id, reason in items]


def _selector(value: Any) -> dict[str, Any]:
    """The selector as stored: only the fields given (the schema checked their types)."""
    return {k: v for k, v in (value or {}).items() if v is not None and v != {}}


def _check_expressions(probe: Probe) -> None:
    """Compile the probe's expressions with the sensor's own validation when it is present."""
    try:
        from sensor.engine import validate  # type: ignore[import-not-found,unused-ignore]
    except ImportError:  # the engine is optional for the hub; the sensor validates again
        return
    validate(probe)


async def place_probe(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    data = await read_json(request, "PlaceProbe")
    selector = _selector(data.get("selector"))
    standing = bool(data.get("standing"))
    ttl = data.get("ttl")
    if standing:
        return await _place_standing(hub, data, selector)
    if ttl is None:
        ttl = hub.settings.default_ttl
    if not 0 < ttl <= hub.settings.max_ttl:
        raise ApiError(
            422,
            "invalid_field",
            f"ttl: got {ttl!r}, expected seconds in (0, {hub.settings.max_ttl:g}]",
        )
    try:
        probe = Probe.from_dict(data["probe"])
        _check_expressions(probe)
    except (ProbeSpecError, ExpressionError) as exc:
        raise ApiError(422, "invalid_probe", str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise ApiError(422, "invalid_probe", f"probe: {exc}") from None
    now = time.time()
    expires_at = now + float(ttl)
    if probe.limits.expires_at is not None:
        expires_at = min(expires_at, probe.limits.expires_at)
    # the sensors enforce the TTL too: they get it as the probe's own expiry
    probe = probe.with_changes(limits=dataclasses.replace(probe.limits, expires_at=expires_at))
    record = ProbeRecord(
        id=probe.id,
        signature=probe.signature,
        probe=probe.to_dict(),
        selector=selector,
        state="active",
        created_at=now,
        expires_at=expires_at,
    )
    try:
        await hub.call(hub.store.add_probe, record)
    except DuplicateError:
        raise ApiError(
            409, "probe_exists", f"probe {probe.id!r}: a probe with this id exists"
        ) from None
    hub.changed()
    return JSONResponse({"probe": record.to_dict()}, status_code=201)


async def _place_standing(hub: Hub, data: dict[str, Any], selector: dict[str, Any]) -> Response:
    """A standing probe: no TTL (it stays until retired), no max hits (the hub samples its
    hits per service version instead: sensor/hub/strata.py), a selector naming its service."""
    if data.get("ttl") is not None:
        raise ApiError(
            422,
            "invalid_field",
            f"ttl: got {data['ttl']!r} with standing: true, expected none (a standing probe "
            "stays until it is retired)",
        )
    if not selector.get("service"):
        raise ApiError(
            422,
            "invalid_selector",
            "selector.service: required for a standing probe (the standing set is per service)",
        )
    try:
        probe = Probe.from_dict(data["probe"])
        _check_expressions(probe)
    except (ProbeSpecError, ExpressionError) as exc:
        raise ApiError(422, "invalid_probe", str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise ApiError(422, "invalid_probe", f"probe: {exc}") from None
    for name in ("max_hits", "expires_at"):
        value = getattr(probe.limits, name)
        if value is not None:
            raise ApiError(
                422,
                "invalid_probe",
                f"probe.limits.{name}: got {value!r} with standing: true, expected none (the "
                "hub bounds a standing probe's evidence by sampling it)",
            )
    record = ProbeRecord(
        id=probe.id,
        signature=probe.signature,
        probe=probe.to_dict(),
        selector=selector,
        state="active",
        created_at=time.time(),
        expires_at=None,
        standing=True,
    )
    try:
        await hub.call(hub.store.add_probe, record)
    except DuplicateError:
        raise ApiError(
            409, "probe_exists", f"probe {probe.id!r}: a probe with this id exists"
        ) from None
    hub.changed()
    return JSONResponse({"probe": record.to_dict()}, status_code=201)


async def list_probes(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    signature = request.query_params.get("signature") or None
    state = _query_choice(request, "state", PROBE_STATES)
    standing_text = _query_choice(request, "standing", ("true", "false"))
    standing = None if standing_text is None else standing_text == "true"
    quarantined: list[tuple[str, str]] = []
    records = await hub.call(
        hub.store.list_probes,
        signature=signature,
        state=state,
        quarantined=quarantined,
        standing=standing,
    )
    return JSONResponse(
        {
            "probes": [record.to_dict() for record in records],
            "quarantined": _quarantined(quarantined),
        }
    )


async def get_probe(request: Request, token: TokenRecord) -> Response:
    record = await _probe_record(request)
    return JSONResponse({"probe": record.to_dict()})


async def remove_probe(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    probe_id = request.path_params["probe_id"]
    reason = f"removed by token {token.name!r}"
    try:
        record = await hub.call(hub.store.end_probe, probe_id, "removed", time.time(), reason)
    except CorruptRecordError as exc:
        # ended all the same (the update ran before the read): it no longer reaches sensors
        hub.changed()
        raise ApiError(
            409,
            "quarantined",
            f"probe {probe_id!r}: removed, but its record cannot be served: {exc.reason}",
        ) from None
    if record is None:
        raise ApiError(404, "unknown_probe", f"probe {probe_id!r}: no such probe on this hub")
    hub.changed()
    return JSONResponse({"probe": record.to_dict()})


async def standing_summary(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    record = await _probe_record(request)
    versions = await hub.call(hub.store.standing_summary, record.id)
    return JSONResponse(
        {
            "probe_id": record.id,
            "standing": record.standing,
            "versions": [summary.to_dict() for summary in versions],
        }
    )


def _hit_filters(request: Request) -> dict[str, Any]:
    return {
        "since": _query_float(request, "since"),
        "until": _query_float(request, "until"),
        "source_id": request.query_params.get("source_id") or None,
    }


async def probe_hits(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    record = await _probe_record(request)
    limit = _query_int(request, "limit", 100, 1, hub.settings.max_page)
    after_text = request.query_params.get("after")
    after = None
    if after_text is not None:
        if not (after_text.isascii() and after_text.isdigit() and len(after_text) <= 18):
            raise ApiError(
                400,
                "invalid_query",
                f"query parameter 'after': got {after_text!r}, expected a cursor",
            )
        after = int(after_text)
    quarantined: list[tuple[str, str]] = []
    rows = await hub.call(
        hub.store.read_hits,
        probe_id=record.id,
        after=after,
        limit=limit + 1,
        quarantined=quarantined,
        **_hit_filters(request),
    )
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = json.dumps(str(rows[-1].seq)) if more else "null"
    # the stored bodies are JSON already: splice them in rather than parse and dump again
    body = (
        '{"hits":['
        + ",".join(row.body for row in rows)
        + '],"next":'
        + cursor
        + ',"quarantined":'
        + json.dumps(_quarantined(quarantined))
        + "}"
    )
    return Response(body, media_type="application/json")


_HIT_ID_SHOWN = 80  # characters of an unknown hit id quoted back in an error message


async def probe_hit(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    record = await _probe_record(request)
    hit_id = request.path_params["hit_id"]
    source_id = request.query_params.get("source_id") or None
    shown = repr(hit_id[:_HIT_ID_SHOWN]) + ("..." if len(hit_id) > _HIT_ID_SHOWN else "")
    quarantined: list[tuple[str, str]] = []
    rows = await hub.call(hub.store.find_hits, record.id, hit_id, quarantined=quarantined)
    hits = [json.loads(row.body) for row in rows]
    if source_id is not None:
        hits = [hit for hit in hits if (hit.get("source") or {}).get("id") == source_id]
    if not hits:
        where = f" from source {source_id!r}" if source_id is not None else ""
        why = (
            f"{len(quarantined)} stored hit(s) with that id cannot be served (quarantined)"
            if quarantined
            else "not stored on this hub (not posted yet, declined, or deleted by the retention)"
        )
        raise ApiError(404, "unknown_hit", f"probe {record.id!r} has no hit {shown}{where}: {why}")
    if len(hits) > 1:
        sources = ", ".join(repr((hit.get("source") or {}).get("id")) for hit in hits)
        raise ApiError(
            409,
            "ambiguous_hit",
            f"probe {record.id!r}: {len(hits)} sources sent a hit {shown} ({sources}); "
            "add ?source_id= with one of them",
        )
    return JSONResponse({"hit": hits[0]})


async def _evidence_lines(
    hub: Hub, records: list[ProbeRecord], hit_query: dict[str, Any]
) -> AsyncIterator[str]:
    header = {
        "record": "header",
        "schema": "pytest-runtime/evidence",
        "version": 1,
        "created_at": time.time(),
        "generator": f"sensor-hub {__version__}",
    }
    yield json.dumps(header) + "\n"
    for record in records:
        yield json.dumps({"record": "probe", "probe": record.probe}) + "\n"
    after = None
    while True:
        rows = await hub.call(hub.store.read_hits, after=after, limit=1000, **hit_query)
        if not rows:
            return
        yield "".join('{"record":"hit","hit":' + row.body + "}\n" for row in rows)
        after = rows[-1].seq


def _evidence_response(
    hub: Hub, records: list[ProbeRecord], hit_query: dict[str, Any], name: str
) -> Response:
    return StreamingResponse(
        _evidence_lines(hub, records, hit_query),
        media_type=EVIDENCE_MEDIA_TYPE,
        # the name comes from the query: only safe characters reach a header
        headers={
            "Content-Disposition": f'attachment; filename="{_SAFE_NAME.sub("_", name)}.jsonl"'
        },
    )


async def probe_evidence(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    record = await _probe_record(request)
    query = {"probe_id": record.id, **_hit_filters(request)}
    return _evidence_response(hub, [record], query, f"evidence-{record.id}")


async def evidence(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    signature = request.query_params.get("signature")
    if not signature:
        raise ApiError(
            400, "invalid_query", "query parameter 'signature': required (a probe signature)"
        )
    records = await hub.call(hub.store.list_probes, signature=signature)
    query = {"signature": signature, **_hit_filters(request)}
    return _evidence_response(hub, records, query, f"evidence-{signature}")


# -- admin endpoints -----------------------------------------------------------------------


async def add_token(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    data = await read_json(request, "NewToken")
    name, scope, services = data["name"].strip(), data["scope"], data.get("services")
    if not name:
        raise ApiError(422, "invalid_field", f"name: got {data['name']!r}, expected a name")
    if scope not in SCOPES:  # the schema's enum says the same; kept for a changed schema
        raise ApiError(
            422, "invalid_field", f"scope: got {scope!r}, expected one of {', '.join(SCOPES)}"
        )
    if services is not None and scope != "sensor":
        raise ApiError(
            422,
            "invalid_field",
            f"services: got {services!r} for a {scope!r} token, expected null: only sensor "
            "tokens are limited to services",
        )
    secret = new_token()
    record = new_token_record(name, scope, secret, services=services)
    await hub.call(hub.store.add_token, record)
    return JSONResponse({**record.to_dict(), "token": secret}, status_code=201)


async def list_tokens(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    records = await hub.call(hub.store.list_tokens)
    return JSONResponse({"tokens": [record.to_dict() for record in records]})


async def remove_token(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    token_id = request.path_params["token_id"]
    records = {record.id: record for record in await hub.call(hub.store.list_tokens)}
    if token_id not in records:
        raise ApiError(404, "unknown_token", f"token {token_id!r}: no such token")
    await hub.call(hub.store.remove_token, token_id)
    hub.tokens.forget(token_id)
    return JSONResponse({"token": records[token_id].to_dict()})


def _redaction_answer(record: RedactionRecord | None) -> dict[str, Any]:
    if record is None:  # never set: sensors keep the rules of their own environment
        return {"names": [], "patterns": [], "allow": [], "updated_at": None, "updated_by": None}
    return record.to_dict()


async def get_redaction(request: Request, token: TokenRecord) -> Response:
    return JSONResponse({"redaction": _redaction_answer(_hub(request).redaction)})


async def set_redaction(request: Request, token: TokenRecord) -> Response:
    hub = _hub(request)
    data = await read_json(request, "RedactionRules")
    try:
        rules = validate_rules(data)
    except RuleError as exc:
        raise ApiError(422, "invalid_rule", f"redaction rule {exc}") from None
    record = RedactionRecord(**rules, updated_at=time.time(), updated_by=token.name)
    await hub.set_redaction(record)
    # an audit trail: these rules decide what leaves every service
    _log.warning(
        "redaction rules replaced by token %r (%s): %d names, %d patterns, allow %s",
        token.name,
        token.id,
        len(record.names),
        len(record.patterns),
        record.allow,
    )
    return JSONResponse({"redaction": record.to_dict()})


# -- open endpoints ------------------------------------------------------------------------


async def health(request: Request, token: TokenRecord | None) -> Response:
    return JSONResponse({"status": "ok", "version": __version__})


async def openapi(request: Request, token: TokenRecord | None) -> Response:
    from sensor.hub.openapi import build_openapi

    return JSONResponse(build_openapi())


# -- the table -----------------------------------------------------------------------------

Handler = Callable[[Request, Any], Awaitable[Response]]


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """One route: method, path, the scope it needs (None: open), handler and its docs."""

    method: str
    path: str
    scope: str | None
    handler: Handler
    summary: str
    tag: str

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/v1/sensors/register",
        "sensor",
        register,
        "Register a sensor as a source",
        "sensors",
    ),
    Endpoint(
        "GET",
        "/v1/sensors/{source_id}/probes",
        "sensor",
        poll_probes,
        "Long-poll the source's probe set",
        "sensors",
    ),
    Endpoint(
        "POST",
        "/v1/sensors/{source_id}/heartbeat",
        "sensor",
        heartbeat,
        "Report liveness and per-probe statuses",
        "sensors",
    ),
    Endpoint(
        "POST",
        "/v1/sensors/{source_id}/hits",
        "sensor",
        post_hits,
        "Post a batch of hits (stored before the answer)",
        "sensors",
    ),
    Endpoint(
        "POST",
        "/v1/sensors/{source_id}/deregister",
        "sensor",
        deregister,
        "Mark the source gone",
        "sensors",
    ),
    Endpoint("GET", "/v1/sources", "client", list_sources, "List sources", "clients"),
    Endpoint(
        "POST",
        "/v1/probes",
        "client",
        place_probe,
        "Place a probe on the sources a selector picks",
        "clients",
    ),
    Endpoint("GET", "/v1/probes", "client", list_probes, "List probes", "clients"),
    Endpoint(
        "GET", "/v1/probes/{probe_id}", "client", get_probe, "Read one probe record", "clients"
    ),
    Endpoint(
        "DELETE",
        "/v1/probes/{probe_id}",
        "client",
        remove_probe,
        "Remove a probe from every source",
        "clients",
    ),
    Endpoint(
        "GET",
        "/v1/probes/{probe_id}/standing",
        "client",
        standing_summary,
        "A standing probe's evidence per service version: hits seen, kept, strata, time span",
        "clients",
    ),
    Endpoint(
        "GET",
        "/v1/probes/{probe_id}/hits",
        "client",
        probe_hits,
        "Read a probe's hits, paged",
        "clients",
    ),
    Endpoint(
        "GET",
        "/v1/probes/{probe_id}/hits/{hit_id}",
        "client",
        probe_hit,
        "Read one hit of a probe by its hit id",
        "clients",
    ),
    Endpoint(
        "GET",
        "/v1/probes/{probe_id}/evidence",
        "client",
        probe_evidence,
        "Export a probe's hits as evidence (JSON Lines)",
        "clients",
    ),
    Endpoint(
        "GET",
        "/v1/evidence",
        "client",
        evidence,
        "Export the evidence of a probe signature (JSON Lines)",
        "clients",
    ),
    Endpoint(
        "POST",
        "/v1/tokens",
        "admin",
        add_token,
        "Create a token (its secret is shown once)",
        "admin",
    ),
    Endpoint(
        "GET", "/v1/tokens", "admin", list_tokens, "List tokens (never their secrets)", "admin"
    ),
    Endpoint("DELETE", "/v1/tokens/{token_id}", "admin", remove_token, "Remove a token", "admin"),
    Endpoint(
        "GET",
        "/v1/redaction",
        "client",
        get_redaction,
        "Read the redaction rules sent to every sensor",
        "admin",
    ),
    Endpoint(
        "PUT",
        "/v1/redaction",
        "admin",
        set_redaction,
        "Replace the redaction rules (sensors apply them at their next poll answer)",
        "admin",
    ),
    Endpoint("GET", "/v1/health", None, health, "Liveness (no token needed)", "open"),
    Endpoint("GET", "/v1/openapi.json", None, openapi, "This API's OpenAPI document", "open"),
)
