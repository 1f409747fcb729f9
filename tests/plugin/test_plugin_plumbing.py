"""Server plumbing through the plugin: a view tested with a stdlib test environ, compared with
the environs gunicorn built in production (real captures, ``data/plumbing.json``)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from pytest_runtime.markers import parse_probe_args

DATA = Path(__file__).parents[1] / "unit" / "pytest_runtime" / "compare" / "data" / "plumbing.json"
LOCATION = "shop.views:hello@return"
VIEWS = """
def hello(environ):
    tenant = environ.get("HTTP_X_TENANT")
    return tenant
"""
TESTS = """
import io
from wsgiref.util import setup_testing_defaults

import pytest
from shop.views import hello

@pytest.mark.runtime_probe("shop.views:hello@return", capture=["environ"]{extra})
def test_hello():
    for tenant in ("acme", "beta"):
        environ = {{
            "HTTP_X_TENANT": tenant,
            "QUERY_STRING": "name=ann",
            "PATH_INFO": "/hello",
            "HTTP_HOST": "shop.example",
            "HTTP_USER_AGENT": "Mozilla/5.0",
            "SCRIPT_NAME": "",
            "HTTP_ACCEPT": "*/*",
            "HTTP_X_FORWARDED_FOR": "203.0.113.9",
        }}
        setup_testing_defaults(environ)
        environ["wsgi.input"] = io.BytesIO(b"")
        assert hello(environ) == tenant
"""


def evidence() -> str:
    request = parse_probe_args((LOCATION,), {"capture": ["environ"]})
    now = time.time()
    records: list[dict[str, Any]] = [
        {
            "record": "header",
            "schema": "pytest-runtime/evidence",
            "version": 1,
            "created_at": now,
            "generator": "tests",
        },
        {"record": "probe", "probe": request.probe.to_dict()},
    ]
    environs = [c["env"] for c in json.loads(DATA.read_text())["flask_prod"]]
    for n in range(12):
        environ = environs[n % len(environs)]
        hit = {
            "probe_id": request.probe.id,
            "signature": request.signature,
            "kind": "snapshot",
            "location": request.location,
            "ts": now - 60 + n * 0.01,
            "hit_id": f"prod-{n:03d}",
            "source": {"id": "web-1", "service": "shop"},
            "captures": {"environ": environ},
        }
        records.append({"record": "hit", "hit": hit})
    return "\n".join(json.dumps(r) for r in records) + "\n"


def setup(pytester: pytest.Pytester, extra: str = "") -> None:
    pytester.mkpydir("shop")
    pytester.path.joinpath("shop", "views.py").write_text(VIEWS)
    pytester.makepyfile(test_shop=TESTS.format(extra=extra))
    pytester.path.joinpath("prod.jsonl").write_text(evidence())


def test_the_servers_plumbing_is_set_aside_and_said(pytester: pytest.Pytester) -> None:
    setup(pytester)
    result = pytester.runpytest_subprocess(
        "--runtime-evidence", "prod.jsonl", "--runtime-report-json", "report.json"
    )
    result.stdout.fnmatch_lines(
        [
            "server plumbing set aside in 1 probe(s): * path(s) where the test client and the "
            'server differ ("plumbing" in the JSON report); runtime_plumbing = false compares '
            "them",
            "runtime probes: 0 violated, 0 diverged, 0 inconclusive, 1 ok",
        ]
    )
    (entry,) = json.loads(pytester.path.joinpath("report.json").read_text())["results"]
    assert entry["plumbing"]['environ["wsgi.input"]'] == "WSGI server key"
    assert entry["plumbing"]['environ["gunicorn.socket"]'] == "WSGI server key"
    assert entry["counts"]["plumbing_differed"] == len(entry["plumbing"])


@pytest.mark.parametrize(
    ("extra", "args"),
    [(", plumbing=False", ()), ("", ("-o", "runtime_plumbing=false"))],
    ids=["marker", "ini"],
)
def test_plumbing_is_compared_when_turned_off(
    pytester: pytest.Pytester, extra: str, args: tuple[str, ...]
) -> None:
    setup(pytester, extra=extra)
    result = pytester.runpytest_subprocess("--runtime-evidence", "prod.jsonl", *args)
    result.stdout.fnmatch_lines(
        [
            "DIVERGED test_shop.py::test_hello  shop.views:hello@return  *",
            '    high shape: environ?"wsgi.errors"?: type gunicorn.http.wsgi.WSGIErrorsWrapper '
            "in production; tests had _io.StringIO*",
        ]
    )
    assert "server plumbing set aside" not in result.stdout.str()
