"""Server plumbing is set aside: a test client's environ, scope, streams and engine against a
server's are not divergences; the request's own data inside them still is.

The states are real captures (``data/plumbing.json``, made by ``data/make_plumbing.py``): a
Flask and a Django view under their test clients and under the environ gunicorn builds, a
Starlette endpoint under its TestClient and under uvicorn, and a SQLAlchemy session on an
in-memory test engine (``SingletonThreadPool``) and on a file one (``QueuePool``).
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from compare_hits import hit

from pytest_runtime.compare import CompareSettings, ProbeVerdict, compare
from pytest_runtime.compare.plumbing import find_plumbing, kind_of_type
from pytest_runtime.compare.shapes import ShapeWalker

DATA = Path(__file__).with_name("data") / "plumbing.json"
PROD_REPEAT = 3  # four captured production requests, three times: 12 hits (10 are needed)


@cache
def _captures() -> dict[str, list[dict[str, Any]]]:
    data: dict[str, list[dict[str, Any]]] = json.loads(DATA.read_text())
    return data


def captures(name: str) -> list[dict[str, Any]]:
    return copy.deepcopy(_captures()[name])


def hits(framework: str, prod: list[dict[str, Any]] | None = None) -> tuple[list[Any], list[Any]]:
    test = [hit(i, c, ok=None, prefix="t") for i, c in enumerate(captures(f"{framework}_test"))]
    states = prod if prod is not None else captures(f"{framework}_prod")
    prod_hits = [
        hit(i, copy.deepcopy(states[i % len(states)]), ok=None, prefix="p")
        for i in range(len(states) * PROD_REPEAT)
    ]
    return test, prod_hits


def paths(verdict: ProbeVerdict, severity: str | None = None) -> list[str]:
    return [d.path for d in verdict.divergences if severity is None or d.severity == severity]


# --------------------------------------------------------------------- plumbing is set aside


def test_a_flask_environ_under_gunicorn_differs_from_the_test_clients_only_in_plumbing() -> None:
    verdict = compare(*hits("flask"))
    # What is left is what the client sent: production's browsers send headers the tests
    # did not. Not one server key, stream or socket.
    assert paths(verdict) == ["env.HTTP_ACCEPT", "env.HTTP_X_FORWARDED_FOR"]
    assert paths(verdict, "high") == []
    assert {
        'env["wsgi.input"]',
        'env["wsgi.errors"]',
        'env["gunicorn.socket"]',
        "env.REQUEST_URI",
        "env.REMOTE_PORT",
        "env.SERVER_SOFTWARE",
    } <= set(verdict.plumbing)
    assert verdict.counts["plumbing_differed"] == len(verdict.plumbing)
    assert verdict.counts["plumbing_paths"] >= verdict.counts["plumbing_differed"]


def test_a_django_meta_with_fakepayload_against_gunicorns_body_is_not_a_type_change() -> None:
    verdict = compare(*hits("django"))
    assert not [p for p in paths(verdict) if "wsgi" in p or "gunicorn" in p or "URI" in p]
    assert 'meta["wsgi.input"]' in verdict.plumbing
    assert "meta.REMOTE_PORT" in verdict.plumbing
    # Django's test client always sends a Cookie header; production's requests here did not.
    # A header is the request's data: code reading META["HTTP_COOKIE"] would break on them.
    assert paths(verdict, "high") == ["meta.HTTP_COOKIE"]


def test_an_asgi_scope_from_uvicorn_matches_the_test_clients() -> None:
    verdict = compare(*hits("asgi"))
    assert verdict.verdict == "ok", [d.message for d in verdict.divergences]
    assert set(verdict.plumbing) == {"scope.asgi", "scope.extensions", "scope.server"}


def test_a_session_on_a_queuepool_engine_matches_one_on_a_singletonthreadpool() -> None:
    verdict = compare(*hits("sqlalchemy"))
    assert verdict.verdict == "ok", [d.message for d in verdict.divergences]
    assert verdict.plumbing == {
        "db": "compared as a database handle",
        "engine": "compared as a database handle",
    }


def test_the_rule_is_off_with_plumbing_false() -> None:
    verdict = compare(*hits("flask"), settings=CompareSettings(plumbing=False))
    assert {"env.REQUEST_URI", 'env["wsgi.input"]', 'env["gunicorn.socket"]'} <= set(paths(verdict))
    assert verdict.plumbing == {}
    assert verdict.counts["plumbing_paths"] == 0
    engine = compare(*hits("sqlalchemy"), settings=CompareSettings(plumbing=False))
    assert "engine.pool" in paths(engine, "high")


def test_deepdiff_lines_of_a_violation_leave_the_plumbing_out() -> None:
    test, prod = hits("flask")
    for h in test:
        h["expect"] = {"ok": True, "error": None}
    for h in prod:
        h["expect"] = {"ok": False, "error": None}
    verdict = compare(test, prod)
    (violation,) = [d for d in verdict.divergences if d.kind == "violation"]
    lines = "\n".join(violation.deepdiff)
    assert "HTTP_USER_AGENT" in lines  # the request's data is there
    for server in ("wsgi.input", "gunicorn", "REMOTE_PORT", "REQUEST_URI", "SERVER_SOFTWARE"):
        assert server not in lines


# --------------------------------------------------------- the request's data is still data


def test_a_header_the_code_reads_missing_in_production_is_found() -> None:
    prod = captures("flask_prod")
    for state in prod:
        del state["env"]["v"]["HTTP_X_TENANT"]
        state["tenant"] = None
    verdict = compare(*hits("flask", prod))
    assert verdict.verdict == "diverged"
    # The bug is the whole of what is high: nothing of the server's crowds it out.
    assert paths(verdict, "high") == ["env.HTTP_X_TENANT", "tenant"]


def test_an_empty_query_string_in_production_is_in_the_summary() -> None:
    prod = captures("django_prod")
    for state in prod:
        state["meta"]["v"]["QUERY_STRING"] = ""
    verdict = compare(*hits("django", prod))
    # The terminal shows a probe's first three divergences.
    shown = [(d.kind, d.path, d.key) for d in verdict.divergences[:3]]
    assert ("range", "meta.QUERY_STRING", "class:empty") in shown


def test_a_connection_address_is_compared_by_type() -> None:
    prod = captures("flask_prod")
    for state in prod:
        state["env"]["v"]["REMOTE_ADDR"] = None
    verdict = compare(*hits("flask", prod))
    assert "env.REMOTE_ADDR" in paths(verdict, "high")
    assert verdict.plumbing["env.REMOTE_ADDR"] == "WSGI connection address: compared by type"


def test_a_connection_address_only_one_side_has_is_not_a_divergence() -> None:
    test, prod = hits("flask")
    for h in test:
        del h["captures"]["env"]["v"]["REMOTE_ADDR"]
    verdict = compare(test, prod)
    assert "env.REMOTE_ADDR" not in paths(verdict)
    assert verdict.plumbing["env.REMOTE_ADDR"] == (
        "WSGI connection address: present on one side only"
    )


def _stream_states(prod_value: Any) -> tuple[list[Any], list[Any]]:
    test_stream = captures("flask_test")[0]["env"]["v"]["wsgi.input"]
    test = [hit(i, {"body": test_stream, "n": i}, ok=None, prefix="t") for i in range(3)]
    prod = [hit(i, {"body": prod_value, "n": i % 3}, ok=None, prefix="p") for i in range(12)]
    return test, prod


def test_a_bytesio_in_tests_and_a_socket_body_in_production_are_both_a_stream() -> None:
    body = captures("flask_prod")[0]["env"]["v"]["wsgi.input"]
    assert body["@t"] == "gunicorn.http.body.Body"
    verdict = compare(*_stream_states(body))
    assert verdict.verdict == "ok", [d.message for d in verdict.divergences]
    assert verdict.plumbing == {"body": "compared as a stream"}


def test_a_stream_that_is_none_in_production_still_diverges() -> None:
    verdict = compare(*_stream_states(None))
    assert paths(verdict, "high") == ["body"]
    (d,) = verdict.divergences
    assert d.key == "none"
    assert any("None" in line for line in d.deepdiff)


def test_a_session_that_is_none_in_production_still_diverges() -> None:
    prod = captures("sqlalchemy_prod")
    for state in prod:
        state["db"] = None
    verdict = compare(*hits("sqlalchemy", prod))
    assert paths(verdict, "high") == ["db"]


def test_server_keys_outside_an_environ_are_data() -> None:
    def state(**more: Any) -> dict[str, Any]:
        return {"row": {"@t": "dict", "v": {"RAW_URI": "/a", "REMOTE_PORT": "1", **more}}}

    test = [hit(i, state(), ok=None, prefix="t") for i in range(3)]
    prod = [hit(i, {"row": {"@t": "dict", "v": {}}}, ok=None, prefix="p") for i in range(12)]
    verdict = compare(test, prod)
    assert paths(verdict) == ["row.RAW_URI", "row.REMOTE_PORT"]
    assert verdict.plumbing == {}


def test_a_middlewares_key_in_the_environ_is_data() -> None:
    prod = captures("flask_prod")
    for state in prod:
        state["env"]["v"]["beaker.session"] = None
    test, prod_hits = hits("flask", prod)
    for h in test:
        h["captures"]["env"]["v"]["beaker.session"] = {"@t": "dict", "v": {"user": "ann"}}
    verdict = compare(test, prod_hits)
    assert 'env["beaker.session"]' in paths(verdict, "high")


@pytest.mark.parametrize(
    ("type_name", "kind"),
    [
        ("_io.BytesIO", "a stream"),
        ("socket.socket", "a stream"),
        ("gunicorn.http.body.Body", "a stream"),
        ("django.test.client.FakePayload", "a stream"),
        ("sqlalchemy.pool.impl.QueuePool", "a database handle"),
        ("sqlalchemy.orm.session.Session", "a database handle"),
        ("sqlite3.Connection", "a database handle"),
        ("psycopg.Connection", "a database handle"),
        ("django.db.backends.postgresql.base.DatabaseWrapper", "a database handle"),
        # rows and results are data
        ("sqlalchemy.engine.row.Row", None),
        ("sqlite3.Row", None),
        ("django.db.models.query.QuerySet", None),
        ("iolib.Reader", None),
    ],
)
def test_kind_of_type(type_name: str, kind: str | None) -> None:
    assert kind_of_type(type_name) == kind


def test_nothing_is_found_where_there_is_no_plumbing() -> None:
    walker = ShapeWalker()
    shape = walker.walk({"order": {"@t": "dict", "v": {"id": 1, "REQUEST_METHOD": "GET"}}})[0]
    assert not find_plumbing([shape], walker.parents)


def test_the_plumbing_survives_the_verdicts_round_trip() -> None:
    verdict = compare(*hits("flask"))
    again = ProbeVerdict.from_dict(json.loads(json.dumps(verdict.to_dict())))
    assert again.plumbing == verdict.plumbing
    assert again == verdict
