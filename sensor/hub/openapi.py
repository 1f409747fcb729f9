"""The hub's OpenAPI 3.1 document, built from the endpoint table (``python -m sensor.hub.openapi``).

The same document is served at ``/v1/openapi.json`` and kept in ``docs/reference/openapi.json``;
a test asserts that the two match.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from typing import Any

from sensor._version import __version__
from sensor.hub.redaction import MAX_NAME_CHARS, MAX_PATTERN_CHARS, MAX_RULES
from sensor.hub.store.base import DECLINE_REASONS
from sensor.probes import (
    CAPTURE_LIMIT_MAXIMA,
    PROBE_LIMIT_MAXIMA,
    CaptureLimits,
    Hit,
    Probe,
    ProbeKind,
    ProbeLimits,
    ProbeState,
    ProbeStatus,
)

__all__ = ["SCHEMAS", "build_openapi", "query_parameters"]

_OBJ: dict[str, Any] = {"type": "object"}
_STR: dict[str, Any] = {"type": "string"}
_NUM: dict[str, Any] = {"type": "number"}
_INT: dict[str, Any] = {"type": "integer"}
_BOOL: dict[str, Any] = {"type": "boolean"}

#: Longest service name, host, version, label key and other identifying string, in characters.
MAX_NAME_CHARS_ID = 255
#: Longest label or tag value.
MAX_LABEL_VALUE_CHARS = 1000
#: Most labels on a source or selector, tags on a probe.
MAX_LABELS = 64
#: Longest expression (capture, condition, expectation) and log template.
MAX_EXPRESSION_CHARS = 4096
#: Most captures on one probe.
MAX_CAPTURES = 100
#: Longest token name; its characters are TOKEN_NAME_PATTERN's.
MAX_TOKEN_NAME_CHARS = 64
TOKEN_NAME_PATTERN = "^[A-Za-z0-9 _.:@()/+-]+$"
#: Most services a sensor token may be limited to.
MAX_TOKEN_SERVICES = 100
#: The ids the hub hands out and accepts (probe ids follow sensor.probes.Probe's rule).
ID_PATTERN = "^[A-Za-z0-9_.:-]{1,64}$"
# No ASCII control character, and at least one character that is not a space.
_NAME_PATTERN = "^[^\\x00-\\x1f\\x7f]*[^\\x00-\\x20\\x7f][^\\x00-\\x1f\\x7f]*$"
_TEXT_PATTERN = "^[^\\x00-\\x1f\\x7f]*$"

_NAME: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME_CHARS_ID,
    "pattern": _NAME_PATTERN,
}
_ID: dict[str, Any] = {"type": "string", "pattern": ID_PATTERN}
_COUNT: dict[str, Any] = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
_EPOCH: dict[str, Any] = {"type": "number", "minimum": 0, "maximum": 1e11}


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


_LABELS: dict[str, Any] = {
    "type": "object",
    "maxProperties": MAX_LABELS,
    "propertyNames": _NAME,
    "additionalProperties": {
        "type": "string",
        "maxLength": MAX_LABEL_VALUE_CHARS,
        "pattern": _TEXT_PATTERN,
    },
}


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


def _expression(max_length: int = MAX_EXPRESSION_CHARS) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length}


def _capture_limits() -> dict[str, Any]:
    """CaptureLimits' fields, bounded by the maxima the sensor enforces (CAPTURE_LIMIT_MAXIMA)."""
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(CaptureLimits):
        kind = "number" if field.name == "deadline_ms" else "integer"
        fields[field.name] = {
            "type": kind,
            "minimum": 0,
            "maximum": CAPTURE_LIMIT_MAXIMA.get(field.name, 2**63 - 1),
        }
    return _object(fields)


def _probe_limits() -> dict[str, Any]:
    """ProbeLimits' fields, bounded by the maxima the sensor enforces (PROBE_LIMIT_MAXIMA)."""

    def rate(name: str) -> dict[str, Any]:
        return _nullable(
            {"type": "number", "exclusiveMinimum": 0, "maximum": PROBE_LIMIT_MAXIMA[name]}
        )

    def count(name: str) -> dict[str, Any]:
        return _nullable({"type": "integer", "minimum": 1, "maximum": PROBE_LIMIT_MAXIMA[name]})

    known: dict[str, Any] = {
        "rate": rate("rate"),
        "burst": count("burst"),
        "max_hits": count("max_hits"),
        "expires_at": _nullable(
            {"type": "number", "minimum": 0, "maximum": PROBE_LIMIT_MAXIMA["expires_at"]}
        ),
        "capture": _capture_limits(),
        "eval_rate": rate("eval_rate"),
        "violation_rate": rate("violation_rate"),
    }
    return _object({f.name: known.get(f.name, {}) for f in dataclasses.fields(ProbeLimits)})


def _probe() -> dict[str, Any]:
    capture_item = {
        "anyOf": [
            _expression(),
            _object(
                {"name": _expression(MAX_NAME_CHARS_ID), "expr": _expression()}, ["name", "expr"]
            ),
        ]
    }
    known: dict[str, Any] = {
        "id": _nullable(_ID),
        "kind": {"enum": [kind.value for kind in ProbeKind]},
        "location": {"type": "string", "minLength": 1, "maxLength": 1000},
        "capture": _nullable(
            {
                "anyOf": [
                    {"type": "array", "items": capture_item, "maxItems": MAX_CAPTURES},
                    {
                        "type": "object",
                        "maxProperties": MAX_CAPTURES,
                        "propertyNames": _expression(MAX_NAME_CHARS_ID),
                        "additionalProperties": _expression(),
                    },
                ]
            }
        ),
        "condition": _nullable(_expression()),
        "expect": _nullable(_expression()),
        "template": _nullable(_expression()),
        "until_line": _nullable({"type": "integer", "minimum": 1, "maximum": 10**7}),
        "source_hash": _nullable({"type": "string", "pattern": "^[0-9a-f]{64}$"}),
        "source_line": _nullable(_expression(MAX_LABEL_VALUE_CHARS * 10)),
        "limits": _nullable(_probe_limits()),
        "tags": _nullable(_LABELS),
        "created_at": _nullable(_EPOCH),
        "signature": _nullable({"type": "string", "maxLength": 64}),
        "replay": _nullable(_BOOL),
    }
    fields = [f.name for f in dataclasses.fields(Probe)] + ["signature"]
    return {
        **_object({name: known.get(name, {}) for name in fields}, ["kind", "location"]),
        "description": (
            "A probe dict as sensor.probes.Probe.to_dict() writes it; the hub then checks it "
            "with Probe.from_dict and the sensor's expression sandbox (422 invalid_probe)."
        ),
    }


def _probe_status() -> dict[str, Any]:
    """ProbeStatus's fields, typed from their defaults, so a counter added there is listed."""
    known: dict[str, Any] = {
        "probe_id": _ID,
        "state": {"enum": [state.value for state in ProbeState]},
        "reason": _nullable({"type": "string", "maxLength": 10_000}),
        "backend": _nullable({"type": "string", "maxLength": MAX_NAME_CHARS_ID}),
        "updated_at": _EPOCH,
    }
    properties: dict[str, Any] = {}
    for field in dataclasses.fields(ProbeStatus):
        if field.name in known:
            properties[field.name] = known[field.name]
        elif isinstance(field.default, int) and not isinstance(field.default, bool):
            properties[field.name] = _COUNT
        elif isinstance(field.default, bool):
            properties[field.name] = _BOOL
        elif field.default is None:
            properties[field.name] = _nullable({"type": "string", "maxLength": 10_000})
        else:
            properties[field.name] = {}
    return _object(properties, ["probe_id"])


def _hit() -> dict[str, Any]:
    known: dict[str, Any] = {
        "probe_id": _ID,
        "signature": {"type": "string", "minLength": 1, "maxLength": 64},
        "kind": {"enum": [kind.value for kind in ProbeKind]},
        "location": {"type": "string", "minLength": 1, "maxLength": 1000},
        "ts": _EPOCH,
        # a column of its own in the store: no control characters (PostgreSQL's text holds no
        # NUL, and one such hit would fail the whole group commit it is in)
        "hit_id": _nullable(
            {"type": "string", "maxLength": MAX_NAME_CHARS_ID, "pattern": _TEXT_PATTERN}
        ),
        "line": _nullable({"type": "integer", "minimum": 0, "maximum": 10**7}),
        "thread": _nullable(_STR),
        "captures": _nullable(_OBJ),
        "expect": _nullable(_OBJ),
        "exception": _nullable(_OBJ),
        "message": _nullable(_STR),
        "aggregate": _nullable(_OBJ),
        "truncated": _nullable(_BOOL),
        "errors": _nullable({"type": "array", "items": _STR}),
        "source": _nullable(_ref("HitSource")),
        "arguments": _nullable(_OBJ),
        "outcome": _nullable(_OBJ),
        "lines": _nullable(_OBJ),
    }
    return {
        **_object(
            {f.name: known.get(f.name, {}) for f in dataclasses.fields(Hit)},
            ["probe_id", "signature", "kind", "location", "ts"],
        ),
        "description": (
            "A hit dict (sensor.probes.Hit.to_dict()). Posted by a sensor, 'source' is "
            "ignored (the hub writes its own); read back, it names the source."
        ),
    }


SCHEMAS: dict[str, Any] = {
    "Error": _object(
        {"error": _object({"code": _STR, "message": _STR}, ["code", "message"])}, ["error"]
    ),
    "Register": _object(
        {
            "service": _NAME,
            "version": _nullable(_NAME),
            "host": _nullable(_NAME),
            "pid": _nullable({"type": "integer", "minimum": 0, "maximum": 2**63 - 1}),
            "python": _nullable(_NAME),
            "labels": _nullable(_LABELS),
            "runtime_id": _nullable(_NAME),
            "sensor_version": _nullable(_NAME),
            "backend": _nullable(_NAME),
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
    "ProbeSetUnchanged": {
        **_object(
            {"etag": _STR, "unchanged": {"type": "boolean", "enum": [True]}}, ["etag", "unchanged"]
        ),
        "description": (
            "The answer to a poll with unchanged=short whose etag is still current when its "
            "wait ends: the sensor keeps the probes and rules it holds"
        ),
    },
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
    "Probe": _probe(),
    "ProbeStatus": _probe_status(),
    "Heartbeat": _object(
        {
            "statuses": _nullable(
                {"type": "array", "items": _ref("ProbeStatus"), "maxItems": 10_000}
            ),
            "dropped": _nullable(_COUNT),
        }
    ),
    "Hit": _hit(),
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
            # the sensor's number for this batch, the same on every retry of it: a retried
            # batch (its answer was lost) counts nothing twice, drop counts included
            "batch": _nullable({"type": "integer", "minimum": 1, "maximum": 2**62}),
            "hits": _nullable({"type": "array", "items": _ref("Hit"), "maxItems": 100_000}),
            "dropped": _nullable(
                {
                    "type": "object",
                    "maxProperties": 10_000,
                    "propertyNames": _ID,
                    "additionalProperties": _COUNT,
                }
            ),
        }
    ),
    "Accepted": _object(
        {
            "accepted": _COUNT,
            "declined": _COUNT,
            "declined_by_probe": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "additionalProperties": _COUNT,
                    "description": "reason -> hits",
                },
                "description": (
                    "probe id -> {reason: hits} for every hit not stored; reasons: "
                    + ", ".join(DECLINE_REASONS)
                ),
            },
        },
        ["accepted", "declined", "declined_by_probe"],
    ),
    "Empty": _object({}),
    "Source": {
        "type": "object",
        "properties": {
            "id": _STR,
            "service": _STR,
            "version": _nullable(_STR),
            "host": _nullable(_STR),
            "pid": _nullable(_INT),
            "python": _nullable(_STR),
            "labels": {"type": "object", "additionalProperties": _STR},
            "first_seen": _NUM,
            "last_seen": _NUM,
            "state": {"enum": ["live", "stale", "gone"]},
            "backend": _nullable(_STR),
            "sensor_version": _nullable(_STR),
            "runtime_id": _nullable(_STR),
            "dropped": _INT,
            "token_id": _nullable(_STR),
        },
        "required": ["id", "service", "labels", "first_seen", "last_seen", "state"],
    },
    "Quarantined": {
        "type": "array",
        "description": (
            "stored records the hub cannot serve (written by an older hub or by hand): "
            "left out of the answer, each with the reason"
        ),
        "items": _object({"id": _STR, "reason": _STR}, ["id", "reason"]),
    },
    "Selector": _object(
        {"service": _nullable(_NAME), "labels": _nullable(_LABELS), "source_id": _nullable(_ID)}
    ),
    "PlaceProbe": _object(
        {
            "probe": _ref("Probe"),
            "selector": _nullable(_ref("Selector")),
            "ttl": _nullable({"type": "number", "exclusiveMinimum": 0}),
            "standing": {"type": "boolean"},
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
            "ended_reason": _nullable(_STR),
            "standing": {"type": "boolean"},
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
        {
            "hits": {"type": "array", "items": _ref("Hit")},
            "next": _nullable(_STR),
            "quarantined": _ref("Quarantined"),
        },
        ["hits", "next"],
    ),
    "NewToken": _object(
        {
            "name": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_TOKEN_NAME_CHARS,
                "pattern": TOKEN_NAME_PATTERN,
            },
            "scope": {"enum": ["sensor", "client", "admin"]},
            "services": _nullable(
                {
                    "type": "array",
                    "items": _NAME,
                    "minItems": 1,
                    "maxItems": MAX_TOKEN_SERVICES,
                    "description": (
                        "sensor tokens only: the services this token may register as "
                        "(null or absent: any service)"
                    ),
                }
            ),
        },
        ["name", "scope"],
    ),
    "Token": {
        "type": "object",
        "properties": {
            "id": _STR,
            "name": _STR,
            "scope": _STR,
            "created_at": _NUM,
            "services": _nullable({"type": "array", "items": _STR}),
            "token": _STR,
        },
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
            (
                "wait",
                "seconds to wait for a change (bounded by the hub)",
                {"schema": {"type": "number", "minimum": 0}},
            ),
            (
                "unchanged",
                "short: when the etag is still current at the end of the wait, answer "
                "{etag, unchanged: true} instead of the whole set again",
                {"schema": {"type": "string", "enum": ["short"]}},
            ),
        ],
        None,
        200,
        {"anyOf": [_ref("ProbeSet"), _ref("ProbeSetUnchanged")]},
    ),
    "heartbeat": ([], "Heartbeat", 200, None),
    "post_hits": ([], "HitBatch", 200, "Accepted"),
    "deregister": ([], "Empty", 200, None),
    "list_sources": (
        [
            ("service", "only this service", {"schema": _STR}),
            (
                "label",
                "key=value; repeat for several labels",
                {
                    "schema": {"type": "array", "items": {"type": "string", "pattern": "^[^=]+="}},
                    "style": "form",
                    "explode": True,
                },
            ),
            ("state", "live, stale or gone", {"schema": {"enum": ["live", "stale", "gone"]}}),
        ],
        None,
        200,
        {"sources": {"type": "array", "items": _ref("Source")}, "quarantined": _ref("Quarantined")},
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
            (
                "standing",
                "only standing probes (true) or only on-demand ones (false)",
                {"schema": {"enum": ["true", "false"]}},
            ),
        ],
        None,
        200,
        {
            "probes": {"type": "array", "items": _ref("ProbeRecord")},
            "quarantined": _ref("Quarantined"),
        },
    ),
    "get_probe": ([], None, 200, {"probe": _ref("ProbeRecord")}),
    "standing_summary": (
        [],
        None,
        200,
        {
            "probe_id": _STR,
            "standing": {"type": "boolean"},
            "versions": {
                "type": "array",
                "items": _object(
                    {
                        "version": _nullable(_STR),
                        "seen": _INT,
                        "kept": _INT,
                        "strata": _INT,
                        "first_seen": _NUM,
                        "last_seen": _NUM,
                        "counters": {"type": "object", "additionalProperties": _INT},
                        "sources": _INT,
                    },
                    [
                        "version",
                        "seen",
                        "kept",
                        "strata",
                        "first_seen",
                        "last_seen",
                        "counters",
                        "sources",
                    ],
                ),
            },
        },
    ),
    "remove_probe": ([], None, 200, {"probe": _ref("ProbeRecord")}),
    "probe_hits": (
        [
            *_HIT_FILTERS,
            (
                "after",
                "the cursor from the previous page's 'next'",
                {"schema": {"type": "string", "pattern": "^[0-9]{1,18}$"}},
            ),
            (
                "limit",
                "hits per page (1 to the hub's max page, 1000 by default; default 100)",
                {"schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
            ),
        ],
        None,
        200,
        "HitPage",
    ),
    "probe_hit": (
        [
            (
                "source_id",
                "the source that sent the hit (needed only when two sources sent the same id)",
                {"schema": _STR},
            )
        ],
        None,
        200,
        {"hit": _ref("Hit")},
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


def query_parameters(operation_id: str) -> dict[str, bool]:
    """The query parameters an operation takes, each with whether it may repeat (the hub
    refuses any other, and a repeated one that may not: 400)."""
    return {
        name: extra["schema"].get("type") == "array" for name, _, extra in _DETAILS[operation_id][0]
    }


_ERRORS = {
    400: "Bad request: malformed or too deeply nested JSON, or a bad query parameter",
    401: "No token, or an unknown one",
    403: (
        "The token's scope does not allow this endpoint, the sensor token may not register "
        "this service, or the source was registered with another token"
    ),
    404: "No such source, probe, hit or token",
    409: (
        "A probe with this id exists (placing), or several sources sent a hit with this id "
        "(reading one hit: add source_id)"
    ),
    413: "Request body over the hub's limit (bytes, JSON objects and arrays, or values)",
    422: (
        "A field breaks its schema (type, bound, a string that cannot be encoded, an integer "
        "beyond 64 bits, a non-finite number), or an invalid probe spec or redaction rule; "
        "the message names the field and the value"
    ),
    503: "The hub's database failed",
}


def _response_schema(spec: Any) -> dict[str, Any]:
    if spec is None:
        return _OBJ
    if isinstance(spec, str):
        return _ref(spec)
    if "anyOf" in spec:
        return dict(spec)
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
            "required": request_schema != "Empty",
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
        codes += [401, 403, 503]
        operation["security"] = [{"bearer": [endpoint.scope]}]
    if "{" in endpoint.path:
        codes.append(404)
    if endpoint.operation_id in ("place_probe", "probe_hit"):
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
