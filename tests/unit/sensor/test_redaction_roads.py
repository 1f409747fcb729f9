"""Secrets carried by roads an outside tester tries: a query string encoded inside another, JSON
serialized into a string, an option value that starts with a dash, argv lists read inside
expressions. Each class is hidden by content and by the carriers' rules; ordinary values that
look alike are kept.

Every secret below holds "Zq9", so that one search finds a leak of any of them.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from sensor import redaction
from sensor.capture.encode import encode
from sensor.redaction import Redactor


@pytest.fixture(autouse=True)
def fresh_redactor() -> Any:
    redaction.set_redactor(redaction.Redactor())
    yield
    redaction.set_redactor(None)


CARRIED = [
    # A query string carried, percent-encoded once, as a parameter of another (a login's
    # `next=`, an OAuth `redirect_uri=`, a `state=`).
    ("/login?next=%2Fcb%3Ftoken%3DZq9nextAAAA", "/login?next=%2Fcb%3Ftoken%3D<redacted:field>"),
    (
        "/login?next=%2Fcb%3Fpage%3D2%26api_key%3dZq9keyAAAA%26lang%3Den",
        "/login?next=%2Fcb%3Fpage%3D2%26api_key%3d<redacted:field>%26lang%3Den",
    ),
    ("/sso?return=%2Fx%3Fauth%3DZq9authAAAA", "/sso?return=%2Fx%3Fauth%3D<redacted:field>"),
    # ... and twice.
    (
        "go?u=%252Fcb%253Fpassword%253DZq9twice%2526page%253D2",
        "go?u=%252Fcb%253Fpassword%253D<redacted:field>%2526page%253D2",
    ),
    # JSON serialized into a string (a queue message, a log line holding a request body).
    (
        json.dumps(json.dumps({"password": "Zq9hunter2", "user": "bob"})),
        json.dumps(json.dumps({"password": "<redacted:field>", "user": "bob"})),
    ),
    (
        json.dumps(json.dumps(json.dumps({"user": "bob", "api_key": 'Zq9key"q'}))),
        json.dumps(json.dumps(json.dumps({"user": "bob", "api_key": "<redacted:field>"}))),
    ),
    # A secret option's value that starts with a dash.
    ("run --password -Zq9dash --verbose", "run --password <redacted:field> --verbose"),
    ("deploy --api-token -Zq9-x -v", "deploy --api-token <redacted:field> -v"),
]


@pytest.mark.parametrize(("text", "shown"), CARRIED)
def test_a_doubly_carried_secret_is_redacted_and_the_rest_kept(text: str, shown: str) -> None:
    red = Redactor()
    assert red.redact_text(text) == shown
    assert red.match_secret_value(text) == "field"
    captured = json.dumps(encode({"v": text}, redactor=red))
    assert "Zq9" not in captured, captured


ORDINARY = [
    "/search?next=%2Fshop%3Fpage%3D2%26sort%3Dprice",
    "/login?next=%2Fcb%3Fstate%3Dabc123",
    json.dumps(json.dumps({"user": "bob", "page": 2})),
    "run --password --verbose",
    "run --verbose -x",
    "ls -p -l",
    "100%3D is not a field",
]


@pytest.mark.parametrize("text", ORDINARY)
def test_look_alikes_of_doubly_carried_secrets_are_kept(text: str) -> None:
    red = Redactor()
    assert red.redact_text(text) == text
    assert red.match_secret_value(text) is None
