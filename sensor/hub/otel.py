"""OpenTelemetry export from the hub: stored hits as OTLP log records; counters, timers as metrics.

Enabled by ``--otel-endpoint URL`` (``SENSOR_HUB_OTEL_ENDPOINT``), the base URL of an OTLP/HTTP
receiver (a collector: ``http://collector:4318``); needs the ``otel`` extra. The SDK's own
exporters send protobuf to ``<URL>/v1/logs`` and ``<URL>/v1/metrics`` (headers, TLS and timeouts
from the SDK's standard ``OTEL_EXPORTER_OTLP_*`` variables).

Only what the hub stored is exported, as it was stored: the sensor redacted it before it left
the service, and nothing here adds a value the hit does not hold (the attributes are the hit's
own fields and the source the hub recorded with it). Export never slows ingestion: the store
thread hands each committed batch to a bounded queue; a full queue drops the batch and counts
it (``pytest_runtime.hub.export.dropped_hits``, and the hub's log).

Mapping (see docs/reference/opentelemetry.md):

- snapshot, log and expect hits: one log record each (``event_name`` ``pytest_runtime.hit``),
  timestamp = the hit's ``ts``; body = the log message, else the captures as compact JSON;
  severity WARN for a violated expectation, ERROR for an exception exit, INFO otherwise.
- counter hits: ``pytest_runtime.probe.calls`` (a counter, ``aggregate.count``).
- timer hits: ``pytest_runtime.probe.timed_calls`` and ``pytest_runtime.probe.duration``
  (counters: ``count`` and ``sum_ns``, unit ns), ``pytest_runtime.probe.duration.min`` and
  ``.max`` (gauges of the last flush's ``min_ns``/``max_ns``).
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sensor._version import __version__
from sensor.errors import ConfigError

__all__ = ["EXPORT_QUEUE_HITS", "OtelExporter", "hit_attributes", "metric_attributes"]

_log = logging.getLogger("sensor.hub")
#: Hits waiting for export at most; beyond it a batch is dropped and counted.
EXPORT_QUEUE_HITS = 100_000
_AGGREGATE_KINDS = ("counter", "timer")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def metric_attributes(hit: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of a counter or timer data point: which probe, where, which source."""
    source = hit.get("source") or {}
    attributes: dict[str, Any] = {
        "pytest_runtime.probe.id": hit["probe_id"],
        "pytest_runtime.probe.signature": hit["signature"],
        "pytest_runtime.probe.location": hit["location"],
    }
    if source.get("service") is not None:
        attributes["service.name"] = source["service"]
    if source.get("id") is not None:
        attributes["pytest_runtime.source.id"] = source["id"]
    return attributes


def hit_attributes(hit: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of a hit's log record: its fields, flat (nested values as JSON text)."""
    attributes = metric_attributes(hit)
    attributes["pytest_runtime.probe.kind"] = hit["kind"]
    source = hit.get("source") or {}
    for key, name in (
        ("version", "service.version"),
        ("host", "host.name"),
        ("pid", "process.pid"),
    ):
        if source.get(key) is not None:
            attributes[name] = source[key]
    for key, name in (
        ("hit_id", "pytest_runtime.hit.id"),
        ("line", "code.lineno"),
        ("thread", "thread.name"),
        ("truncated", "pytest_runtime.truncated"),
    ):
        if hit.get(key) is not None and hit.get(key) != "":
            attributes[name] = hit[key]
    for key in ("captures", "expect", "exception"):
        if hit.get(key) is not None:
            # the typed encoding as the sensor wrote it: attributes hold no nested maps
            attributes[f"pytest_runtime.{key}"] = _json(hit[key])
    if hit.get("errors"):
        attributes["pytest_runtime.errors"] = [str(item) for item in hit["errors"]]
    return attributes


def _nanos(seconds: float) -> int:
    """Epoch seconds as nanoseconds, without the float product's rounding (x.25 stays x.25)."""
    whole = int(seconds)
    return whole * 1_000_000_000 + round((seconds - whole) * 1e9)


def _body(hit: Mapping[str, Any]) -> str:
    if isinstance(hit.get("message"), str):
        return str(hit["message"])
    if hit.get("captures") is not None:
        return _json(hit["captures"])
    return f"{hit['kind']} hit at {hit['location']}"


class OtelExporter:
    """Hands stored hits to the OpenTelemetry SDK on a thread of its own."""

    def __init__(
        self,
        endpoint: str,
        *,
        metric_interval: float = 10.0,
        max_queue: int = EXPORT_QUEUE_HITS,
    ) -> None:
        try:
            from opentelemetry._logs import LogRecord, SeverityNumber
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.sdk._logs import LoggerProvider
            from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
            from opentelemetry.sdk.resources import Resource
        except ImportError:
            raise ConfigError(
                f"--otel-endpoint {endpoint!r}: the OpenTelemetry export needs the otel extra; "
                "install it with: pip install 'pytest-runtime[otel]'"
            ) from None
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"--otel-endpoint {endpoint!r}: expected the http:// or https:// base URL of an "
                "OTLP/HTTP receiver, e.g. http://collector:4318"
            )
        base = endpoint.rstrip("/")
        self.endpoint = base
        self._LogRecord = LogRecord
        self._severity = SeverityNumber
        resource = Resource.create(
            {"service.name": "pytest-runtime-hub", "service.version": __version__}
        )
        # providers of our own, never the process-wide globals: the hub is not instrumenting
        # itself, it forwards what sensors sent
        self._logs = LoggerProvider(resource=resource)
        self._logs.add_log_record_processor(
            BatchLogRecordProcessor(OTLPLogExporter(endpoint=base + "/v1/logs"))
        )
        self._reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=base + "/v1/metrics"),
            export_interval_millis=metric_interval * 1000,
        )
        self._metrics = MeterProvider(resource=resource, metric_readers=[self._reader])
        self._logger = self._logs.get_logger("pytest_runtime.hub", __version__)
        meter = self._metrics.get_meter("pytest_runtime.hub", __version__)
        self._calls = meter.create_counter(
            "pytest_runtime.probe.calls", unit="{call}", description="calls a counter probe counted"
        )
        self._timed = meter.create_counter(
            "pytest_runtime.probe.timed_calls",
            unit="{call}",
            description="calls a timer probe timed",
        )
        self._duration = meter.create_counter(
            "pytest_runtime.probe.duration",
            unit="ns",
            description="total time of the calls a timer probe timed",
        )
        self._min = meter.create_gauge(
            "pytest_runtime.probe.duration.min", unit="ns", description="shortest timed call"
        )
        self._max = meter.create_gauge(
            "pytest_runtime.probe.duration.max", unit="ns", description="longest timed call"
        )
        self._dropped_counter = meter.create_counter(
            "pytest_runtime.hub.export.dropped_hits",
            unit="{hit}",
            description="stored hits the hub could not export (its export queue was full)",
        )
        self._max_queue = max_queue
        self._queue: collections.deque[Sequence[Mapping[str, Any]]] = collections.deque()
        self._queued = 0
        self._cond = threading.Condition()
        self._closed = False
        self.exported = 0  #: hits handed to the SDK
        self.dropped = 0  #: hits dropped because the queue was full
        self._thread = threading.Thread(target=self._run, name="sensor-hub-otel", daemon=True)
        self._thread.start()

    def submit(self, hits: Sequence[Mapping[str, Any]]) -> None:
        """Queue stored hits for export (never blocks; a full queue drops and counts them)."""
        if not hits:
            return
        with self._cond:
            if self._closed or self._queued + len(hits) > self._max_queue:
                first = self.dropped == 0
                self.dropped += len(hits)
                dropped = True
            else:
                self._queue.append(hits)
                self._queued += len(hits)
                self._cond.notify()
                dropped = False
        if dropped:
            self._dropped_counter.add(len(hits))
            if first:
                _log.warning(
                    "OpenTelemetry export to %s cannot keep up: dropped %d stored hits "
                    "(counted in pytest_runtime.hub.export.dropped_hits; logged once)",
                    self.endpoint,
                    len(hits),
                )

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                hits = self._queue.popleft()
            for hit in hits:
                try:
                    self._export(hit)
                except Exception:
                    _log.exception("OpenTelemetry export of a hit failed")
            with self._cond:
                self._queued -= len(hits)  # counted until handed over: flush() waits for 0
                self.exported += len(hits)

    def _export(self, hit: Mapping[str, Any]) -> None:
        kind = hit["kind"]
        aggregate = hit.get("aggregate") or {}
        if kind == "counter":
            if isinstance(aggregate.get("count"), int):
                self._calls.add(aggregate["count"], metric_attributes(hit))
            return
        if kind == "timer":
            attributes = metric_attributes(hit)
            if isinstance(aggregate.get("count"), int):
                self._timed.add(aggregate["count"], attributes)
            if isinstance(aggregate.get("sum_ns"), int | float):
                self._duration.add(aggregate["sum_ns"], attributes)
            for key, gauge in (("min_ns", self._min), ("max_ns", self._max)):
                if isinstance(aggregate.get(key), int | float):
                    gauge.set(aggregate[key], attributes)
            return
        expect = hit.get("expect") or {}
        if hit.get("exception") is not None:
            severity, text = self._severity.ERROR, "ERROR"
        elif expect.get("ok") is False:
            severity, text = self._severity.WARN, "WARN"
        else:
            severity, text = self._severity.INFO, "INFO"
        self._logger.emit(
            self._LogRecord(
                timestamp=_nanos(float(hit["ts"])),
                observed_timestamp=time.time_ns(),
                severity_number=severity,
                severity_text=text,
                body=_body(hit),
                attributes=hit_attributes(hit),
                event_name="pytest_runtime.hit",
            )
        )

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the queue is empty, then push logs and metrics out now."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._cond:
                if not self._queued:
                    break
            time.sleep(0.01)
        millis = int(max(0.0, deadline - time.monotonic()) * 1000)
        logs_ok = bool(self._logs.force_flush(millis))
        metrics_ok = bool(self._metrics.force_flush(millis))
        return logs_ok and metrics_ok

    def close(self) -> None:
        """Export what is queued, then shut the SDK's exporters down."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=10)
        self._logs.shutdown()
        self._metrics.shutdown()
