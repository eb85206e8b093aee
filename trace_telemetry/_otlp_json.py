"""OTLP/JSON: the mapped records as an ``ExportLogsServiceRequest`` JSON body.

OTLP/JSON differs from protobuf's canonical JSON mapping, and a Collector
follows OTLP's rules (docs/otlp.md "The wire"): trace and span ids are hex
strings, enums are integers, 64-bit integers are decimal strings, field
names are lowerCamelCase.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from ._otlp import NO_BODY, Attributes, LogRecordData, ResourceGroup

__all__ = ["CONTENT_TYPE", "encode_request", "partial_success"]

CONTENT_TYPE = "application/json"

_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


_SCALAR_KEYS = {str: "stringValue", bool: "boolValue", float: "doubleValue"}


def encode_request(groups: List[ResourceGroup]) -> bytes:
    """The JSON body for ``groups``."""
    return _dumps({"resourceLogs": [_resource_logs(group) for group in groups]}).encode("utf-8")


def _resource_logs(group: ResourceGroup) -> Dict[str, Any]:
    scopes = []
    for scope in group.scopes:
        described: Dict[str, Any] = {"name": scope.name}
        if scope.version:
            described["version"] = scope.version
        scopes.append(
            {"scope": described, "logRecords": [_record(record) for record in scope.records]}
        )
    return {"resource": {"attributes": _attributes(group.attributes)}, "scopeLogs": scopes}


def _record(record: LogRecordData) -> Dict[str, Any]:
    out: Dict[str, Any] = {
        "timeUnixNano": str(record.time_unix_nano),
        "observedTimeUnixNano": str(record.time_unix_nano),
    }
    if record.severity_number:
        out["severityNumber"] = record.severity_number
    if record.severity_text:
        out["severityText"] = record.severity_text
    if record.body is not NO_BODY:
        out["body"] = any_value(record.body)
    out["attributes"] = _attributes(record.attributes)
    if record.trace_id:
        out["traceId"] = record.trace_id
        if record.span_id:
            out["spanId"] = record.span_id
        out["flags"] = record.flags
    if record.event_name:
        out["eventName"] = record.event_name
    return out


def _attributes(attributes: Attributes) -> List[Dict[str, Any]]:
    return [{"key": key, "value": any_value(value)} for key, value in attributes]


def any_value(value: Any) -> Dict[str, Any]:
    """An ``AnyValue``: ``None`` is the empty value ``{}``."""
    key = _SCALAR_KEYS.get(type(value))
    if key is not None:
        return {key: value}
    if value is None:
        return {}
    if type(value) is int:
        return {"intValue": str(value)}
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value(item) for item in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": _attributes(list(value.items()))}}
    return {"stringValue": str(value)}


def partial_success(body: bytes) -> Optional[Tuple[int, str]]:
    """``(rejected records, message)`` from an ``ExportLogsServiceResponse``, if any."""
    try:
        answer = json.loads(body)
        partial = answer.get("partialSuccess") or answer.get("partial_success")
        if not isinstance(partial, dict):
            return None
        rejected = partial.get("rejectedLogRecords", partial.get("rejected_log_records", 0))
        message = partial.get("errorMessage", partial.get("error_message", ""))
        count = int(rejected or 0)
    except (ValueError, TypeError, AttributeError, RecursionError):
        return None
    if not count and not message:
        return None
    return count, str(message)
