"""The demo path, asserted: real hub, real shop under gunicorn with the sensor, real traffic."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]


def test_demo_finds_every_seeded_bug_and_leaves_noise_alone(demo_run: dict[str, Any]) -> None:
    # demo_run (conftest.py): `python -m examples.shop.demo --check`, once for the e2e tests
    output = demo_run["output"]
    assert demo_run["returncode"] == 0, output[-6000:]
    assert "check passed" in output
    out = Path(demo_run["out"])
    report = json.loads((out / "report.json").read_text())
    verdicts = {entry["nodeid"].split("::")[-1]: entry["verdict"] for entry in report["results"]}
    assert any(
        name.startswith("test_apply_discount") and v == "violated" for name, v in verdicts.items()
    )
    assert verdicts.get("test_place_order_issues_a_receipt") == "ok"
    evidence = (out / "evidence.jsonl").read_text().splitlines()
    assert json.loads(evidence[0])["record"] == "header"
    assert any(json.loads(line)["record"] == "hit" for line in evidence[1:])
