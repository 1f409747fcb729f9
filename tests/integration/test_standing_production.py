"""Standing probes against production: a real hub, gunicorn with the sensor, real traffic.

Publish the suite's markers, let traffic reach them, change one marker and publish again
(the others keep their probes and evidence), then run PR checks: one that reads the standing
evidence without waiting, one that waits only for the marker the PR adds.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from test_plugin_production import CLIENT_TOKEN, TESTS, clean_env, production, wait_until

pytestmark = [pytest.mark.integration]
__all__ = ["production"]  # the fixture, used by name

NEW_MARKER = """
import pytest
from shop_app import order_total


@pytest.mark.runtime_probe("shop_app:order_total", capture=["order"], service="shop")
def test_order_total_result():
    assert order_total({"amount": 100, "coupon": None}) == 100
"""


def standing(hub: str) -> dict[str, dict[str, Any]]:
    request = urllib.request.Request(
        f"{hub}/v1/probes?state=active&standing=true",
        headers={"Authorization": f"Bearer {CLIENT_TOKEN}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        probes = json.loads(response.read())["probes"]
    return {p["probe"]["location"]: p for p in probes}


def run(workdir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = clean_env() | {"SENSOR_CLIENT_TOKEN": CLIENT_TOKEN, "PYTHONPATH": str(workdir)}
    return subprocess.run(
        [sys.executable, *args],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip


def test_publish_then_pr_checks_read_standing_evidence(production: dict[str, Any]) -> None:
    workdir: Path = production["workdir"]
    hub: str = production["hub"]
    (workdir / "test_shop.py").write_text(TESTS)
    publish = ["-m", "pytest_runtime", "publish", "--hub", hub, "-p", "no:cacheprovider"]
    first = run(workdir, *publish, "test_shop.py")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    assert "3 placed, 0 kept, 0 retired" in first.stdout, first.stdout[-3000:]
    placed = standing(hub)
    assert len(placed) == 3

    def counted(location: str, least: int) -> bool:
        record = standing(hub).get(location)
        return record is not None and record["hit_count"] >= least

    # the sensor installs the standing probes and traffic reaches them (1 hit/s per probe)
    for location in placed:
        assert wait_until(lambda loc=location: counted(loc, 5), 60), standing(hub)
    before = {loc: p["hit_count"] for loc, p in standing(hub).items()}

    # one marker changes; publishing again keeps the two others with their evidence
    (workdir / "test_shop.py").write_text(TESTS.replace('capture=["receipt"]', 'capture=["total"]'))
    second = run(workdir, *publish, "test_shop.py")
    assert "1 placed, 2 kept, 1 retired" in second.stdout, second.stdout[-3000:]
    after = standing(hub)
    for location in ("shop_app:apply_discount@return", "shop_app:order_total@entry"):
        assert after[location]["id"] == placed[location]["id"]
        assert after[location]["hit_count"] >= before[location]
    receipt = "shop_app:make_receipt@return"
    assert after[receipt]["id"] != placed[receipt]["id"]
    assert wait_until(lambda: counted(receipt, 5), 60), standing(hub)

    # a PR check over the published markers: standing evidence, read at once
    check = [
        "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", "--rootdir",
        str(workdir), "--runtime-probe", "--runtime-hub", hub, "--runtime-min-hits", "5",
        "--runtime-wait", "60",
    ]  # fmt: skip
    pr = run(workdir, *check, "test_shop.py")
    out = pr.stdout + pr.stderr
    assert "3 passed" in out, out[-5000:]
    assert "3 probe(s) read at once (no wait)" in out, out[-5000:]
    assert "0 probe(s) placed on demand" in out, out[-5000:]
    assert "waiting for production hits" not in out, out[-5000:]
    assert "VIOLATED test_shop.py::test_apply_discount" in out, out[-5000:]
    assert pr.returncode == 1, out[-5000:]

    # the PR adds a marker: only its probe is placed and waited for
    (workdir / "test_new.py").write_text(NEW_MARKER)
    pr2 = run(workdir, *check, "test_shop.py", "test_new.py")
    out2 = pr2.stdout + pr2.stderr
    assert "4 passed" in out2, out2[-5000:]
    assert "3 probe(s) read at once (no wait)" in out2, out2[-5000:]
    assert "1 probe(s) placed on demand" in out2, out2[-5000:]
    assert "waiting for production hits: 1/1 probes complete" in out2, out2[-5000:]
    assert "/4 probes" not in out2, out2[-5000:]
    # the on-demand probe is removed after the check; the standing set is untouched
    assert set(standing(hub)) == set(after)
