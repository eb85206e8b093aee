"""Reading OTLP/JSON logs requests, for ``trace-telemetry serve --protocol otlp``.

Standard library only: each log record becomes one flat dict (its resource
and scope included) that ``serve`` appends as an NDJSON line. Not a
Collector: it checks the shape, not every OTLP rule.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

__all__ = ["decode_request", "plain_value"]


def decode_request(body: bytes) -> List[Dict[str, Any]]:
    """The log records of an OTLP/JSON ``ExportLogsServiceRequest``; ValueError if malformed."""
    request = json.loads(body)
    if not isinstance(request, dict):
        raise ValueError("not an ExportLogsServiceRequest object")
    records: List[Dict[str, Any]] = []
    for resource_logs in _list(request, "resourceLogs"):
        resource = _attributes(_dict(resource_logs, "resource"))
        for scope_logs in _list(resource_logs, "scopeLogs"):
            scope = _dict(scope_logs, "scope").get("name", "")
            for record in _list(scope_logs, "logRecords"):
                if not isinstance(record, dict):
                    raise ValueError("a log record is not an object")
                flat: Dict[str, Any] = {"resource": resource, "scope": scope}
                for key, value in record.items():
                    if key == "attributes":
                        flat[key] = _attributes(record)
                    elif key == "body":
                        flat[key] = plain_value(value)
                    else:
                        flat[key] = value
                records.append(flat)
    return records


def _list(parent: Dict[str, Any], key: str) -> List[Any]:
    value = parent.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"{key} is not an array")
    return value


def _dict(parent: Any, key: str) -> Dict[str, Any]:
    value = parent.get(key, {}) if isinstance(parent, dict) else None
    if not isinstance(value, dict):
        raise ValueError(f"{key} is not an object")
    return value


def _attributes(parent: Dict[str, Any]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for entry in _list(parent, "attributes"):
        if not isinstance(entry, dict) or not isinstance(entry.get("key"), str):
            raise ValueError("an attribute is not a {key, value} object")
        out[entry["key"]] = plain_value(entry.get("value", {}))
    return out


def plain_value(value: Any) -> Any:  # noqa: PLR0911
    """An OTLP/JSON ``AnyValue`` as a plain JSON value (int64 strings become ints)."""
    if not isinstance(value, dict) or not value:
        return None
    if "stringValue" in value:
        return value["stringValue"]
    if "boolValue" in value:
        return value["boolValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return value["doubleValue"]
    if "arrayValue" in value:
        return [plain_value(item) for item in _list(_dict(value, "arrayValue"), "values")]
    if "kvlistValue" in value:
        return _attributes({"attributes": _list(_dict(value, "kvlistValue"), "values")})
    if "bytesValue" in value:
        return value["bytesValue"]
    raise ValueError(f"unknown AnyValue {sorted(value)}")
