"""Capture and probe limits have documented maxima: refused when asked for, clamped if they arrive.

The probe model (shared by the hub and the sensor) refuses a limit above its maximum with an
error that names the field, the value and the maximum; the hub answers such a probe with a 422;
the sensor's encoder clamps again whatever limits object it is handed, so that no path can
make it keep more than the documented maximum or emit text its scanner did not see.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sensor import probes, redaction
from sensor.capture.encode import Budget, capture_frame, encode
from sensor.errors import ProbeSpecError
from sensor.probes import CaptureLimits, Probe, ProbeLimits

MAXIMA = probes.CAPTURE_LIMIT_MAXIMA


def test_every_capture_limit_has_a_documented_maximum() -> None:
    assert set(MAXIMA) == {f.name for f in dataclasses.fields(CaptureLimits)}
    # no text longer than the scanner's window can be kept unscanned
    assert MAXIMA["max_string"] <= redaction.MAX_MATCH_CHARS
    docs = (Path(__file__).parents[3] / "docs" / "reference" / "probes.md").read_text()
    for name, maximum in MAXIMA.items():
        assert f"`{name}`" in docs, name
        assert str(maximum) in docs or f"{maximum:g}" in docs, (name, maximum)


@pytest.mark.parametrize("field", sorted(MAXIMA))
def test_a_capture_limit_above_its_maximum_is_refused_naming_field_value_and_maximum(
    field: str,
) -> None:
    maximum = MAXIMA[field]
    CaptureLimits(**{field: maximum})  # the maximum itself is fine
    too_big = maximum * 1000 if field != "deadline_ms" else 6e5
    with pytest.raises(ProbeSpecError) as info:
        CaptureLimits(**{field: too_big})
    text = str(info.value)
    assert f"limits.capture.{field}" in text
    assert repr(too_big) in text
    assert str(maximum) in text or f"{maximum:g}" in text, text


@pytest.mark.parametrize(
    ("limits", "field"),
    [
        ({"capture": {"max_string": 1e9}}, "limits.capture.max_string"),
        ({"capture": {"max_string": 10**9}}, "limits.capture.max_string"),
        ({"capture": {"max_items": 10**8}}, "limits.capture.max_items"),
        ({"capture": {"deadline_ms": 6e5}}, "limits.capture.deadline_ms"),
        ({"capture": {"max_bytes": 2**40}}, "limits.capture.max_bytes"),
        ({"capture": {"max_depth": 10**6}}, "limits.capture.max_depth"),
        ({"capture": {"max_fields": 10**7}}, "limits.capture.max_fields"),
        ({"rate": 1e300}, "limits.rate"),
        ({"eval_rate": 1e300}, "limits.eval_rate"),
        ({"violation_rate": 1e300}, "limits.violation_rate"),
        ({"burst": 2**63}, "limits.burst"),
        ({"max_hits": 2**63}, "limits.max_hits"),
        ({"expires_at": 1e300}, "limits.expires_at"),
    ],
)
def test_a_probe_with_a_limit_out_of_bounds_is_refused(limits: dict[str, Any], field: str) -> None:
    spec = {"kind": "snapshot", "location": "shop.pricing:total", "limits": limits}
    with pytest.raises(ProbeSpecError) as info:
        Probe.from_dict(spec)
    assert repr(field) in str(info.value) or field in str(info.value)


def test_the_plugin_s_unlimited_rates_are_still_accepted() -> None:
    # pytest_runtime.session arms test-time probes with rate=1e9, burst=10**9
    ProbeLimits(rate=1e9, burst=10**9, max_hits=10**6)


def _unchecked(**values: Any) -> CaptureLimits:
    """A limits object that skipped validation (an older hub's record, a hand-made object)."""
    lim = object.__new__(CaptureLimits)
    for f in dataclasses.fields(CaptureLimits):
        object.__setattr__(lim, f.name, values.get(f.name, f.default))
    return lim


def test_the_encoder_clamps_limits_that_skipped_validation() -> None:
    lim = _unchecked(max_string=10**9, max_items=10**9, max_bytes=10**12, deadline_ms=6e5)
    long = "y" * (MAXIMA["max_string"] * 3)
    out = encode(long, lim, redactor=None)
    assert out["@trunc"] is True
    assert len(out["v"]) <= MAXIMA["max_string"]
    items = encode(list(range(MAXIMA["max_items"] * 2)), lim, redactor=None)
    assert len(items["v"]) <= MAXIMA["max_items"]
    budget = Budget(lim)
    assert budget.deadline_ms <= MAXIMA["deadline_ms"]
    assert budget.max_bytes <= MAXIMA["max_bytes"]


def test_capture_frame_clamps_max_fields() -> None:
    lim = _unchecked(max_fields=10**9, max_bytes=10**12)
    names = {f"v{i}": i for i in range(MAXIMA["max_fields"] + 50)}
    captures, truncated, _ = capture_frame(names, lim, None)
    assert len(captures) == MAXIMA["max_fields"]
    assert truncated


def test_every_emitted_string_was_scanned_at_the_largest_max_string() -> None:
    lim = CaptureLimits(max_string=MAXIMA["max_string"], max_bytes=MAXIMA["max_bytes"])
    red = redaction.Redactor()
    for pad in (0, 100, MAXIMA["max_string"] - 30, MAXIMA["max_string"] - 5):
        text = "z" * pad + " card 4111 1111 1111 1111 " + "z" * 300
        out = json.dumps(encode(text, lim, redactor=red))
        assert "1111 1111" not in out, pad


# -- the hub refuses them with a 4xx that says which field, which value and which maximum ---------


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Any]:
    from hub_process import HubProcess

    process = HubProcess(tmp_path / "hub.db").start()
    yield process
    process.stop()


@pytest.mark.integration
def test_the_hub_refuses_a_probe_asking_for_huge_capture_limits(hub: Any) -> None:
    from hub_process import CLIENT_TOKEN, call

    for field, value in (("max_string", 1e9), ("max_items", 10**8), ("deadline_ms", 6e5)):
        body = {
            "probe": {
                "kind": "snapshot",
                "location": "shop.pricing:total",
                "limits": {"capture": {field: value}},
            }
        }
        status, answer = call(hub.url, "POST", "/v1/probes", CLIENT_TOKEN, body)
        assert status == 422, answer
        text = json.dumps(answer)
        assert f"limits.capture.{field}" in text
        assert str(MAXIMA[field]) in text or f"{MAXIMA[field]:g}" in text, text
    status, listing = call(hub.url, "GET", "/v1/probes", CLIENT_TOKEN)
    assert status == 200
    assert listing["probes"] == []
