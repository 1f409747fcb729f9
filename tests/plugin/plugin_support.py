"""Helpers for the plugin's pytester tests: a real hub process, a tiny shop, evidence lines."""

from __future__ import annotations

import dataclasses
import subprocess
import time
from pathlib import Path
from typing import Any

import hub_process
import pytest
from hub_process import CLIENT_TOKEN, SENSOR_TOKEN


@dataclasses.dataclass
class HubProcess:
    """A started hub (``tests/hub_process.py``) with the calls the plugin's tests make."""

    launcher: hub_process.HubProcess
    sensor_token: str = SENSOR_TOKEN
    client_token: str = CLIENT_TOKEN

    @property
    def url(self) -> str:
        return self.launcher.url

    @property
    def process(self) -> subprocess.Popen[str]:
        assert self.launcher.proc is not None
        return self.launcher.proc

    def request(self, method: str, path: str, *, token: str | None = None, **kwargs: Any) -> Any:
        import requests

        headers = {"Authorization": f"Bearer {token or self.client_token}"}
        response = requests.request(method, self.url + path, headers=headers, timeout=10, **kwargs)
        response.raise_for_status()
        return response.json() if response.text else None

    def register(self, service: str = "shop") -> str:
        body = {
            "service": service,
            "version": "1.0",
            "host": "test-host",
            "pid": 1,
            "python": "3.11",
            "labels": {},
            "runtime_id": f"rt-{time.monotonic_ns()}",
            "sensor_version": "0",
            "backend": "monitoring",
        }
        data = self.request("POST", "/v1/sensors/register", token=self.sensor_token, json=body)
        return str(data["source_id"])

    def post_statuses(self, source_id: str, statuses: list[dict[str, Any]]) -> None:
        """A sensor's heartbeat: its per-probe statuses (state, reason, counters)."""
        self.request(
            "POST",
            f"/v1/sensors/{source_id}/heartbeat",
            token=self.sensor_token,
            json={"statuses": statuses, "dropped": 0},
        )

    def post_hits(self, source_id: str, hits: list[dict[str, Any]]) -> None:
        self.request(
            "POST",
            f"/v1/sensors/{source_id}/hits",
            token=self.sensor_token,
            json={"hits": hits, "dropped": {}},
        )


def start_hub(tmp_path: Path) -> HubProcess:
    # generous: the machine is shared and often loaded
    launcher = hub_process.HubProcess(tmp_path / "hub.db").start(timeout=60)
    return HubProcess(launcher)


SHOP_PRICING = """
def apply_discount(price, rate):
    total = price - price * rate
    return total
"""


def make_shop(pytester: pytest.Pytester) -> None:
    """A tiny package under test: shop.pricing.apply_discount(price, rate)."""
    pytester.mkpydir("shop")
    pytester.path.joinpath("shop", "pricing.py").write_text(SHOP_PRICING)


def evidence_lines(
    location: str,
    states: list[dict[str, Any]],
    *,
    capture: list[str] | None = None,
    expect: str | None = None,
    expect_ok: list[bool | None] | None = None,
    ts: float | None = None,
) -> str:
    """An evidence file (docs/reference/evidence-schema.md) with one hit per production state."""
    import json

    from pytest_runtime.markers import parse_probe_args

    kwargs: dict[str, Any] = {"capture": capture or sorted(states[0]) if states else []}
    if expect:
        kwargs["expect"] = expect
    request = parse_probe_args((location,), kwargs)
    now = time.time() if ts is None else ts
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
    for n, state in enumerate(states):
        hit: dict[str, Any] = {
            "probe_id": request.probe.id,
            "signature": request.signature,
            "kind": "snapshot",
            "location": request.location,
            "ts": now - 60 + n * 0.01,
            "hit_id": f"prod-{n}",
            "captures": state,
            "source": {"id": f"src-{n % 2}", "service": "shop", "host": "web-1"},
        }
        if expect_ok is not None:
            hit["expect"] = {"ok": expect_ok[n], "error": None}
        records.append({"record": "hit", "hit": hit})
    return "\n".join(json.dumps(r) for r in records) + "\n"
