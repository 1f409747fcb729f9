"""A real OTLP/HTTP receiver for the tests: decodes what an exporter sends with opentelemetry-proto.

It answers ``POST /v1/logs`` and ``POST /v1/metrics`` the way a collector does (protobuf in,
an empty ``Export*ServiceResponse`` out) and keeps every request: the raw bytes (to search for
what must never leave) and the decoded log records and metric data points, flattened.
"""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["OtlpReceiver", "any_value"]


def any_value(value: Any) -> Any:
    """An OTLP ``AnyValue`` as a Python value."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: any_value(item.value) for item in value.kvlist_value.values}
    return getattr(value, kind)


def _attributes(items: Any) -> dict[str, Any]:
    return {item.key: any_value(item.value) for item in items}


class OtlpReceiver:
    """``url`` is the base URL to give an exporter; ``logs`` and ``points`` fill as it sends."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

        self.raw: list[bytes] = []
        self.logs: list[dict[str, Any]] = []
        self.points: list[dict[str, Any]] = []
        self.paths: list[str] = []
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.headers.get("Content-Type") != "application/x-protobuf":
                    self.send_error(415, "expected application/x-protobuf")
                    return
                if self.path == "/v1/logs":
                    request: Any = logs_service_pb2.ExportLogsServiceRequest()
                    request.ParseFromString(body)
                    answer = logs_service_pb2.ExportLogsServiceResponse()
                    with lock:
                        receiver._add_logs(request)
                elif self.path == "/v1/metrics":
                    request = metrics_service_pb2.ExportMetricsServiceRequest()
                    request.ParseFromString(body)
                    answer = metrics_service_pb2.ExportMetricsServiceResponse()
                    with lock:
                        receiver._add_metrics(request)
                else:
                    self.send_error(404)
                    return
                with lock:
                    receiver.raw.append(body)
                    receiver.paths.append(self.path)
                data = answer.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def _add_logs(self, request: Any) -> None:
        for resource_logs in request.resource_logs:
            resource = _attributes(resource_logs.resource.attributes)
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    self.logs.append(
                        {
                            "resource": resource,
                            "scope": scope_logs.scope.name,
                            "time_unix_nano": record.time_unix_nano,
                            "severity_number": record.severity_number,
                            "severity_text": record.severity_text,
                            "body": any_value(record.body),
                            "attributes": _attributes(record.attributes),
                            "event_name": record.event_name,
                        }
                    )

    def _add_metrics(self, request: Any) -> None:
        for resource_metrics in request.resource_metrics:
            resource = _attributes(resource_metrics.resource.attributes)
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    data = getattr(metric, kind)
                    for point in data.data_points:
                        value = point.WhichOneof("value")
                        self.points.append(
                            {
                                "resource": resource,
                                "name": metric.name,
                                "unit": metric.unit,
                                "kind": kind,
                                "monotonic": getattr(data, "is_monotonic", None),
                                "value": getattr(point, value),
                                "attributes": _attributes(point.attributes),
                            }
                        )

    def latest(self, name: str, **attributes: Any) -> Any:
        """The last value received of metric ``name`` with these attributes (None: none)."""
        found = None
        for point in self.points:
            if point["name"] == name and all(
                point["attributes"].get(k) == v for k, v in attributes.items()
            ):
                found = point["value"]
        return found

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def stop(self) -> None:  # for agent_support.Cleanup
        self.close()
