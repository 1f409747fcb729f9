"""A scripted agent investigation of the demo shop, end to end, through the real MCP server.

No model is involved: examples/shop/investigate.py makes the calls an agent following the
workflow makes (preflight, hypothesis checks, summary, one hit, compare_test, clean-up) over
stdio against a real hub and the shop under gunicorn with the sensor and seeded traffic, and
``--check`` fails unless each answer carried what the next step needed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

pytest.importorskip("mcp")

#: The calls in the order the workflow makes them.
STEPS = [
    "list_sources",
    "check_hypothesis",
    "check_hypothesis",
    "check_hypothesis",
    "get_hypothesis_result",
    "get_hypothesis_result",
    "get_hypothesis_result",
    "get_evidence_summary",
    "get_hit",
    "compare_test",
    "get_comparison_result",
    "remove_probe",
]


def test_a_scripted_investigation_finds_the_seeded_bug(tmp_path: Path) -> None:
    transcript = tmp_path / "investigation.md"
    command = [sys.executable, "-m", "examples.shop.investigate", "--check"]
    result = subprocess.run(
        [*command, "--transcript", str(transcript)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "check passed" in output
    text = transcript.read_text()
    calls = re.findall(r"\*\*→ `(\w+)\(", text)
    assert calls == STEPS
    sizes = [int(n.replace(",", "")) for n in re.findall(r"\(([\d,]+) characters\)", text)]
    assert len(sizes) == len(STEPS)
    assert max(sizes) <= 12_000  # every answer within the default size budget
    assert '"verdict": "violated"' in text
    assert '"coupon": "WELCOME5"' in text
    assert "never true in" in text  # H2 ruled out, with its bound
