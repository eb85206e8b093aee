"""OTLP/protobuf: the mapped records as an ``ExportLogsServiceRequest`` message.

Uses the official definitions from ``opentelemetry-proto`` (the
``trace-telemetry[otlp]`` extra), imported only when a client chooses
``otlp_encoding="protobuf"``.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

from ._otlp import NO_BODY, Attributes, ResourceGroup

__all__ = ["CONTENT_TYPE", "ProtobufEncoder", "load"]

CONTENT_TYPE = "application/x-protobuf"
_NEEDS = (
    "otlp_encoding='protobuf' needs the opentelemetry-proto package with "
    "LogRecord.event_name (>= 1.35, Python >= 3.9): pip install 'trace-telemetry[otlp]'"
)


def load() -> "ProtobufEncoder":
    """Import the definitions; ValueError (naming the option) if they are missing or too old."""
    try:
        from opentelemetry.proto.collector.logs.v1 import (  # noqa: PLC0415 - optional extra
            logs_service_pb2,
        )
        from opentelemetry.proto.logs.v1 import logs_pb2  # noqa: PLC0415
    except ImportError as error:
        msg = f"{_NEEDS} ({error})"
        raise ValueError(msg) from None
    if "event_name" not in logs_pb2.LogRecord.DESCRIPTOR.fields_by_name:
        raise ValueError(_NEEDS)
    return ProtobufEncoder(logs_service_pb2)


class ProtobufEncoder:
    """Builds request messages and reads response messages."""

    def __init__(self, service: Any) -> None:
        self._request = service.ExportLogsServiceRequest
        self._response = service.ExportLogsServiceResponse

    def encode_request(self, groups: List[ResourceGroup]) -> bytes:
        """The serialized request for ``groups``."""
        request = self._request()
        for group in groups:
            resource_logs = request.resource_logs.add()
            _fill_attributes(resource_logs.resource.attributes, group.attributes)
            for scope in group.scopes:
                scope_logs = resource_logs.scope_logs.add()
                scope_logs.scope.name = scope.name
                if scope.version:
                    scope_logs.scope.version = scope.version
                for record in scope.records:
                    out = scope_logs.log_records.add()
                    out.time_unix_nano = record.time_unix_nano
                    out.observed_time_unix_nano = record.time_unix_nano
                    out.severity_number = record.severity_number
                    if record.severity_text:
                        out.severity_text = record.severity_text
                    if record.body is not NO_BODY:
                        _fill_value(out.body, record.body)
                    _fill_attributes(out.attributes, record.attributes)
                    if record.trace_id:
                        out.trace_id = bytes.fromhex(record.trace_id)
                        if record.span_id:
                            out.span_id = bytes.fromhex(record.span_id)
                        out.flags = record.flags
                    if record.event_name:
                        out.event_name = record.event_name
        data: bytes = request.SerializeToString()
        return data

    def partial_success(self, body: bytes) -> Optional[Tuple[int, str]]:
        """``(rejected records, message)`` from a protobuf response, if any."""
        try:
            answer = self._response.FromString(body)
        except Exception:  # noqa: BLE001 - a garbled answer is treated as plain success
            return None
        if not answer.HasField("partial_success"):
            return None
        partial = answer.partial_success
        if not partial.rejected_log_records and not partial.error_message:
            return None
        return int(partial.rejected_log_records), str(partial.error_message)


def _fill_attributes(target: Any, attributes: Attributes) -> None:
    for key, value in attributes:
        entry = target.add()
        entry.key = key
        _fill_value(entry.value, value)


def _fill_value(target: Any, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, list):
        array = target.array_value
        array.SetInParent()
        for item in value:
            _fill_value(array.values.add(), item)
    elif isinstance(value, dict):
        kvlist = target.kvlist_value
        kvlist.SetInParent()
        _fill_attributes(kvlist.values, list(value.items()))
    else:
        target.string_value = str(value)
