"""Fuzz the hub's HTTP API from its own OpenAPI document (schemathesis), against a real hub.

Every operation gets schema-valid and schema-breaking requests, sent with a token of the scope
it needs: no answer may be a 500, every answer must be one the document declares (status,
content type, body schema), and a body that breaks the schema must be refused. Afterwards the
hub must still list sources and probes and serve a sensor's poll. The number of examples per
operation and mode is bounded (``PYTEST_RUNTIME_FUZZ_EXAMPLES``, default 12) so that CI stays
under a minute.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hub_process import ADMIN_TOKEN, CLIENT_TOKEN, SENSOR_TOKEN, HubProcess, call

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from sensor.hub.openapi import build_openapi  # noqa: E402

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("PYTEST_RUNTIME_FUZZ_EXAMPLES", "12"))
TOKENS = {"sensor": SENSOR_TOKEN, "client": CLIENT_TOKEN, "admin": ADMIN_TOKEN}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProcess]:
    # long polls are bounded short: a fuzzed ?wait= must not hold the run for a minute
    process = HubProcess(tmp_path / "hub.db", env={"SENSOR_HUB_MAX_POLL_WAIT": "0.2"}).start()
    yield process
    process.stop()


def _token(operation: Any) -> dict[str, str]:
    security = operation.definition.raw.get("security") or []
    if not security:
        return {}
    (scope,) = security[0]["bearer"]
    return {"Authorization": f"Bearer {TOKENS[scope]}"}


def _fuzz(
    url: str,
    strategy: Any,
    headers: dict[str, str],
    label: str,
    statuses: Counter[int],
    examples: Counter[str],
) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        response = case.call(base_url=url, headers=headers, timeout=30)
        statuses[response.status_code] += 1
        examples[label] += 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    run()


def test_no_input_makes_the_hub_fail(hub: HubProcess, capsys: pytest.CaptureFixture[str]) -> None:
    _, registered = call(hub.url, "POST", "/v1/sensors/register", SENSOR_TOKEN, {"service": "fz"})
    source_id = registered["source_id"]
    _, placed = call(
        hub.url,
        "POST",
        "/v1/probes",
        CLIENT_TOKEN,
        {"probe": {"kind": "snapshot", "location": "m:f"}, "selector": {"service": "fz"}},
    )
    probe_id = placed["probe"]["id"]
    schema = schemathesis.openapi.from_dict(build_openapi())
    # the test sends a valid token of the right scope itself (the auth tests cover bad ones),
    # so a case that only breaks the Authorization header is not generated
    schema.config.generation.update(with_security_parameters=False)
    statuses: Counter[int] = Counter()
    examples: Counter[str] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        headers = _token(operation)
        # half the cases address the real source and probe, so bodies get past the 404s
        names = {p["name"] for p in operation.definition.raw.get("parameters", [])}
        real = {k: v for k, v in (("source_id", source_id), ("probe_id", probe_id)) if k in names}
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            for path_parameters in ({}, real) if real else ({},):
                strategy = operation.as_strategy(mode, path_parameters=path_parameters or None)
                label = f"{operation.label} {mode.value}"
                try:
                    _fuzz(hub.url, strategy, headers, label, statuses, examples)
                except Exception as exc:
                    if type(exc).__name__ == "Unsatisfiable":  # nothing breaks this schema
                        continue
                    raise
    with capsys.disabled():
        print(
            f"\nfuzz: {sum(examples.values())} requests over {len(examples)} operation/mode pairs "
            f"(at most {EXAMPLES} examples each, twice where a real source/probe id applies); "
            f"statuses {dict(sorted(statuses.items()))}"
        )
    assert 500 not in statuses
    assert sum(statuses.values()) >= 100
    # the hub still lists and serves
    status, sources = call(hub.url, "GET", "/v1/sources", CLIENT_TOKEN)
    assert status == 200
    assert sources["quarantined"] == []
    status, probes = call(hub.url, "GET", "/v1/probes", CLIENT_TOKEN)
    assert status == 200
    assert probes["quarantined"] == []
    _, fresh = call(hub.url, "POST", "/v1/sensors/register", SENSOR_TOKEN, {"service": "fz"})
    status, polled = call(hub.url, "GET", f"/v1/sensors/{fresh['source_id']}/probes", SENSOR_TOKEN)
    assert status == 200
    status, placed = call(
        hub.url,
        "POST",
        "/v1/probes",
        CLIENT_TOKEN,
        {"probe": {"kind": "snapshot", "location": "m:g"}},
    )
    assert status == 201
    status, polled = call(hub.url, "GET", f"/v1/sensors/{fresh['source_id']}/probes", SENSOR_TOKEN)
    assert status == 200
    assert placed["probe"]["id"] in {p["id"] for p in polled["probes"]}
