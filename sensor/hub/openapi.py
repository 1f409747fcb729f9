"""The hub's OpenAPI 3.1 document, built from the endpoint table (``python -m sensor.hub.openapi``).

The same document is served at ``/v1/openapi.json`` and kept in ``docs/reference/openapi.json``;
a test asserts that the two match.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from sensor._version import __version__
from sensor.hub.redaction import MAX_NAME_CHARS, MAX_PATTERN_CHARS, MAX_RULES

__all__ = ["build_openapi"]

_OBJ: dict[str, Any] = {"type": "object"}
_STR: dict[str, Any] = {"type": "string"}
_NUM: dict[str, Any] = {"type": "number"}
_INT: dict[str, Any] = {"type": "integer"}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(
    properties: dict[str, Any], required: list[str] | None = None, *, closed: bool = True
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    if closed:
        schema["additionalProperties"] = False
    return schema


_LABELS = {"type": "object", "additionalProperties": _STR}


def _rule_list(max_length: int, description: str) -> dict[str, Any]:
    return {
        "type": "array",
        "items": {"type": "string", "minLength": 1, "maxLength": max_length},
        "maxItems": MAX_RULES,
        "description": description,
    }


def _redaction_rules() -> dict[str, Any]:
    return {
        "names": _rule_list(
            MAX_NAME_CHARS,
            "identifier names redacted in addition to the sensor's defaults (compared after "
            "removing case, '-', '_', '.' and spaces)",
        ),
        "patterns": _rule_list(
            MAX_PATTERN_CHARS,
            "Python regular expressions; a string value they match is redacted (reason "
            "'pattern'). Refused: invalid, matching the empty string, nested repetition",
        ),
        "allow": _rule_list(
            MAX_NAME_CHARS, "identifier names never redacted, even the default ones"
        ),
    }


SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {"error": _object({"code": _STR, "message": _STR}, ["code", "message"])}, ["error"]
    ),
    "Register": _object(
        {
            "service": _STR,
            "version": _nullable(_STR),
            "host": _nullable(_STR),
            "pid": _nullable(_INT),
            "python": _nullable(_STR),
            "labels": _LABELS,
            "runtime_id": _nullable(_STR),
            "sensor_version": _nullable(_STR),
            "backend": _nullable(_STR),
        },
        ["service"],
    ),
    "Registered": _object(
        {"source_id": _STR, "poll_wait": _NUM, "heartbeat_interval": _NUM},
        ["source_id", "poll_wait", "heartbeat_interval"],
    ),
    "ProbeSet": _object(
        {
            "etag": _STR,
            "probes": {"type": "array", "items": _ref("Probe")},
            "redaction": _nullable(_ref("RedactionRules")),
        },
        ["etag", "probes", "redaction"],
    ),
    "RedactionRules": {
        **_object(_redaction_rules()),
        "description": (
            "The hub's redaction rules (PUT body; a missing list is empty). A sensor passes "
            "them to sensor.redaction.Redactor.update: they replace the extra names, patterns "
            "and allow-list of its environment; the built-in defaults always stay."
        ),
    },
    "Redaction": _object(
        {
            "redaction": _object(
                {
                    **_redaction_rules(),
                    "updated_at": _nullable(_NUM),
                    "updated_by": _nullable(_STR),
                },
                ["names", "patterns", "allow", "updated_at", "updated_by"],
            )
        },
        ["redaction"],
    ),
    "Probe": {
        "type": "object",
        "description": "A probe dict as sensor.probes.Probe.to_dict() writes it.",
        "properties": {
            "id": _STR,
            "kind": {"enum": ["snapshot", "log", "counter", "timer", "expect"]},
            "location": _STR,
            "capture": {"type": "array"},
            "condition": _nullable(_STR),
            "expect": _nullable(_STR),
            "template": _nullable(_STR),
            "limits": _OBJ,
            "tags": _LABELS,
            "signature": _STR,
        },
        "required": ["kind", "location"],
    },
    "ProbeStatus": {
        "type": "object",
        "properties": {
            "probe_id": _STR,
            "state": {"enum": ["pending", "installed", "error", "disabled", "removed"]},
            "reason": _nullable(_STR),
            "hits": _INT,
            "drops": _INT,
            "skipped_rate": _INT,
            "skipped_condition": _INT,
            "errors": _INT,
            "evaluations": _INT,
            "violations": _INT,
            "exceptions": _INT,
            "skipped_budget": _INT,
            "backend": _nullable(_STR),
            "updated_at": _NUM,
        },
        "required": ["probe_id"],
    },
    "Heartbeat": _object(
        {"statuses": {"type": "array", "items": _ref("ProbeStatus")}, "dropped": _INT}
    ),
    "Hit": {
        "type": "object",
        "description": "A hit dict (sensor.probes.Hit.to_dict()); read back with 'source'.",
        "properties": {
            "probe_id": _STR,
            "signature": _STR,
            "kind": _STR,
            "location": _STR,
            "ts": _NUM,
            "hit_id": _STR,
            "source": _ref("HitSource"),
        },
        "required": ["probe_id", "signature", "kind", "location", "ts"],
    },
    "HitSource": {
        "type": "object",
        "properties": {
            "id": _STR,
            "service": _STR,
            "version": _nullable(_STR),
            "host": _nullable(_STR),
            "pid": _nullable(_INT),
        },
        "required": ["id", "service"],
    },
    "HitBatch": _object(
        {
            "hits": {"type": "array", "items": _ref("Hit")},
            "dropped": {"type": "object", "additionalProperties": _INT},
        }
    ),
    "Accepted": _object({"accepted": _INT}, ["accepted"]),
    "Source": {
        "type": "object",
        "properties": {
            "id": _STR,
            "service": _STR,
            "version": _nullable(_STR),
            "host": _nullable(_STR),
            "pid": _nullable(_INT),
            "python": _nullable(_STR),
            "labels": _LABELS,
            "first_seen": _NUM,
            "last_seen": _NUM,
            "state": {"enum": ["live", "stale", "gone"]},
            "backend": _nullable(_STR),
            "sensor_version": _nullable(_STR),
            "runtime_id": _nullable(_STR),
            "dropped": _INT,
        },
        "required": ["id", "service", "labels", "first_seen", "last_seen", "state"],
    },
    "Selector": _object({"service": _STR, "labels": _LABELS, "source_id": _STR}),
    "PlaceProbe": _object(
        {
            "probe": _ref("Probe"),
            "selector": _ref("Selector"),
            "ttl": {"type": "number", "exclusiveMinimum": 0},
        },
        ["probe"],
    ),
    "ProbeRecord": {
        "type": "object",
        "properties": {
            "id": _STR,
            "signature": _STR,
            "probe": _ref("Probe"),
            "selector": _ref("Selector"),
            "state": {"enum": ["active", "expired", "completed", "removed"]},
            "created_at": _NUM,
            "expires_at": _nullable(_NUM),
            "ended_at": _nullable(_NUM),
            "hit_count": _INT,
            "dropped": _INT,
            "statuses": {"type": "object", "additionalProperties": _ref("ProbeStatus")},
        },
        "required": [
            "id",
            "signature",
            "probe",
            "selector",
            "state",
            "created_at",
            "hit_count",
            "statuses",
        ],
    },
    "HitPage": _object(
        {"hits": {"type": "array", "items": _ref("Hit")}, "next": _nullable(_STR)}, ["hits", "next"]
    ),
    "NewToken": _object(
        {"name": _STR, "scope": {"enum": ["sensor", "client", "admin"]}}, ["name", "scope"]
    ),
    "Token": {
        "type": "object",
        "properties": {"id": _STR, "name": _STR, "scope": _STR, "created_at": _NUM, "token": _STR},
        "required": ["id", "name", "scope", "created_at"],
    },
    "Health": {"type": "object", "properties": {"status": _STR, "version": _STR}},
}

_FLOAT_Q = {"schema": _NUM}
_HIT_FILTERS = [
    ("since", "hits with ts >= since (epoch seconds)", _FLOAT_Q),
    ("until", "hits with ts < until (epoch seconds)", _FLOAT_Q),
    ("source_id", "hits of one source", {"schema": _STR}),
]

# operation id -> (query parameters, request schema, success status, response schema or media)
_DETAILS: dict[str, tuple[list[tuple[str, str, dict[str, Any]]], str | None, int, Any]] = {
    "register": ([], "Register", 200, "Registered"),
    "poll_probes": (
        [
            (
                "etag",
                "the etag of the set the sensor holds; the answer waits while it is current",
                {"schema": _STR},
            ),
            ("wait", "seconds to wait for a change (bounded by the hub)", _FLOAT_Q),
        ],
        None,
        200,
        "ProbeSet",
    ),
    "heartbeat": ([], "Heartbeat", 200, None),
    "post_hits": ([], "HitBatch", 200, "Accepted"),
    "deregister": ([], None, 200, None),
    "list_sources": (
        [
            ("service", "only this service", {"schema": _STR}),
            ("label", "key=value; repeat for several labels", {"schema": _STR}),
            ("state", "live, stale or gone", {"schema": {"enum": ["live", "stale", "gone"]}}),
        ],
        None,
        200,
        {"sources": {"type": "array", "items": _ref("Source")}},
    ),
    "place_probe": ([], "PlaceProbe", 201, {"probe": _ref("ProbeRecord")}),
    "list_probes": (
        [
            ("signature", "only probes of this signature", {"schema": _STR}),
            (
                "state",
                "active, expired, completed or removed",
                {"schema": {"enum": ["active", "expired", "completed", "removed"]}},
            ),
        ],
        None,
        200,
        {"probes": {"type": "array", "items": _ref("ProbeRecord")}},
    ),
    "get_probe": ([], None, 200, {"probe": _ref("ProbeRecord")}),
    "remove_probe": ([], None, 200, {"probe": _ref("ProbeRecord")}),
    "probe_hits": (
        [
            *_HIT_FILTERS,
            ("after", "the cursor from the previous page's 'next'", {"schema": _STR}),
            ("limit", "hits per page (1 to 1000, default 100)", {"schema": _INT}),
        ],
        None,
        200,
        "HitPage",
    ),
    "probe_evidence": (_HIT_FILTERS, None, 200, "jsonl"),
    "evidence": (
        [
            ("signature", "the probe signature (required)", {"schema": _STR, "required": True}),
            *_HIT_FILTERS,
        ],
        None,
        200,
        "jsonl",
    ),
    "add_token": ([], "NewToken", 201, "Token"),
    "list_tokens": ([], None, 200, {"tokens": {"type": "array", "items": _ref("Token")}}),
    "remove_token": ([], None, 200, {"token": _ref("Token")}),
    "get_redaction": ([], None, 200, "Redaction"),
    "set_redaction": ([], "RedactionRules", 200, "Redaction"),
    "health": ([], None, 200, "Health"),
    "openapi": ([], None, 200, None),
}

_ERRORS = {
    400: "Bad request: malformed JSON or query parameter",
    401: "No token, or an unknown one",
    403: "The token's scope does not allow this endpoint",
    404: "No such source, probe or token",
    409: "A probe with this id exists",
    413: "Request body over the hub's limit",
    422: "Invalid field, probe spec or redaction rule (the message names it)",
}


def _response_schema(spec: Any) -> dict[str, Any]:
    if spec is None:
        return _OBJ
    if isinstance(spec, str):
        return _ref(spec)
    return _object(spec, sorted(spec))


def _operation(endpoint: Any) -> dict[str, Any]:
    params, request_schema, status, response = _DETAILS[endpoint.operation_id]
    operation: dict[str, Any] = {
        "operationId": endpoint.operation_id,
        "summary": endpoint.summary,
        "tags": [endpoint.tag],
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": _STR}
        for name in re.findall(r"{(\w+)}", endpoint.path)
    ]
    for name, description, extra in params:
        parameters.append(
            {"name": name, "in": "query", "description": description, "required": False, **extra}
        )
    if parameters:
        operation["parameters"] = parameters
    if request_schema is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(request_schema)}},
        }
    if response == "jsonl":
        content = {
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "JSON Lines, see evidence.schema.json"}
            }
        }
    else:
        content = {"application/json": {"schema": _response_schema(response)}}
    responses: dict[str, Any] = {str(status): {"description": "OK", "content": content}}
    codes = [400, 413, 422] if endpoint.method in ("POST", "PUT") else [400]
    if endpoint.scope is not None:
        codes += [401, 403]
        operation["security"] = [{"bearer": [endpoint.scope]}]
    if "{" in endpoint.path:
        codes.append(404)
    if endpoint.operation_id == "place_probe":
        codes.append(409)
    if endpoint.operation_id in ("health", "openapi"):
        codes = []
    for code in sorted(codes):
        responses[str(code)] = {
            "description": _ERRORS[code],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    operation["responses"] = responses
    return operation


def build_openapi() -> dict[str, Any]:
    """The OpenAPI document of this hub version."""
    from sensor.hub.api import ENDPOINTS

    paths: dict[str, Any] = {}
    for endpoint in ENDPOINTS:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pytest-runtime sensor hub",
            "version": __version__,
            "description": (
                "Sensors register, long-poll their probe set and post hits; clients list sources, "
                "place probes and read hits and evidence; admins manage tokens and the redaction "
                "rules every sensor applies. Bearer tokens with scopes sensor, client "
                'and admin (admin implies client). Errors are {"error": {"code", "message"}}.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def main() -> int:
    json.dump(build_openapi(), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
