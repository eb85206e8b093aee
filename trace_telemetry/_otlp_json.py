"""OTLP/JSON: the mapped records as an ``ExportLogsServiceRequest`` JSON body.

OTLP/JSON differs from protobuf's canonical JSON mapping, and a Collector
follows OTLP's rules (docs/otlp.md "The wire"): trace and span ids are hex
strings, enums are integers, 64-bit integers are decimal strings, field
names are lowerCamelCase.
"""

from __future__ import annotations

import json
from typing import Any, Callable, List, Optional, Tuple

from ._otlp import NO_BODY, LogRecordData, ResourceGroup

__all__ = ["CONTENT_TYPE", "encode_request", "partial_success"]

CONTENT_TYPE = "application/json"

#: JSON string literal of a str (the C encoder's, as the queue lines use).
_text: Callable[[str], str] = getattr(json.encoder, "c_encode_basestring", None) or (
    json.encoder.encode_basestring
)


def encode_request(groups: List[ResourceGroup]) -> bytes:
    """The JSON body for ``groups``, written as text directly (no intermediate dicts)."""
    parts = ",".join(_resource_logs(group) for group in groups)
    return ('{"resourceLogs":[' + parts + "]}").encode("utf-8")


def _resource_logs(group: ResourceGroup) -> str:
    scopes = []
    for scope in group.scopes:
        described = '{"name":' + _text(scope.name)
        if scope.version:
            described += ',"version":' + _text(scope.version)
        records = ",".join(map(_record, scope.records))
        scopes.append('{"scope":' + described + '},"logRecords":[' + records + "]}")
    return (
        '{"resource":{"attributes":['
        + _attributes(group.attributes)
        + ']},"scopeLogs":['
        + ",".join(scopes)
        + "]}"
    )


def _record(record: LogRecordData) -> str:
    time_text = str(record.time_unix_nano)
    out = ['{"timeUnixNano":"', time_text, '","observedTimeUnixNano":"', time_text, '"']
    if record.severity_number:
        out.append(f',"severityNumber":{int(record.severity_number)}')
    if record.severity_text:
        out.append(',"severityText":' + _text(record.severity_text))
    if record.body is not NO_BODY:
        out.append(',"body":' + any_value(record.body))
    out.append(',"attributes":[' + _attributes(record.attributes) + "]")
    if record.trace_id:
        out.append(',"traceId":"' + record.trace_id + '"')
        if record.span_id:
            out.append(',"spanId":"' + record.span_id + '"')
        out.append(f',"flags":{int(record.flags)}')
    if record.event_name:
        out.append(',"eventName":' + _text(record.event_name))
    out.append("}")
    return "".join(out)


def _attributes(attributes: Any) -> str:
    return ",".join(
        '{"key":' + _text(key) + ',"value":' + any_value(value) + "}" for key, value in attributes
    )


def any_value(value: Any) -> str:  # noqa: PLR0911
    """An ``AnyValue`` as JSON text: ``None`` is the empty value ``{}``."""
    kind = type(value)
    if kind is str:
        return '{"stringValue":' + _text(value) + "}"
    if kind is int:
        return '{"intValue":"' + str(value) + '"}'
    if kind is float:
        return '{"doubleValue":' + float.__repr__(value) + "}"
    if kind is bool:
        return '{"boolValue":true}' if value else '{"boolValue":false}'
    if value is None:
        return "{}"
    if kind is list:
        return '{"arrayValue":{"values":[' + ",".join(map(any_value, value)) + "]}}"
    if kind is dict:
        return '{"kvlistValue":{"values":[' + _attributes(value.items()) + "]}}"
    return '{"stringValue":' + _text(str(value)) + "}"


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
