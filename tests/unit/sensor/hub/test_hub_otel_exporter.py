"""The hub's OTLP exporter in-process, against a real OTLP/HTTP receiver: limits and errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is not installed")
pytest.importorskip("opentelemetry.proto", reason="opentelemetry-proto is not installed")

from otlp_receiver import OtlpReceiver

from sensor.errors import ConfigError
from sensor.hub.otel import OtelExporter


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    yield server
    server.close()


def _hit(n: int) -> dict[str, object]:
    return {
        "probe_id": "p1",
        "signature": "sig",
        "kind": "snapshot",
        "location": "m:f",
        "ts": 1.0 + n,
        "hit_id": f"h-{n}",
        "captures": {"n": n},
        "source": {"id": "s1", "service": "shop"},
    }


def test_a_full_export_queue_drops_and_counts_instead_of_waiting(
    receiver: OtlpReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = OtelExporter(receiver.url, metric_interval=60.0, max_queue=3)
    try:
        exporter.submit([_hit(n) for n in range(5)])  # more than the queue holds
        exporter.submit([_hit(n) for n in range(5, 7)])
        assert exporter.flush()
        assert (exporter.dropped, exporter.exported) == (5, 2)
        assert sorted(r["attributes"]["pytest_runtime.hit.id"] for r in receiver.logs) == [
            "h-5",
            "h-6",
        ]
        assert receiver.latest("pytest_runtime.hub.export.dropped_hits") == 5
        assert "dropped 5 stored hits" in caplog.text
    finally:
        exporter.close()


@pytest.mark.parametrize("endpoint", ["collector:4318", "grpc://collector:4317"])
def test_an_endpoint_that_is_not_an_http_url_is_refused(endpoint: str) -> None:
    with pytest.raises(ConfigError, match=f"--otel-endpoint {endpoint!r}: expected the http"):
        OtelExporter(endpoint)
