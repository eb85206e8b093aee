"""Map queue lines to OpenTelemetry log records (docs/otlp.md "The mapping").

The result is a neutral structure (:class:`ResourceGroup`) that the JSON and
the protobuf encoders both walk, so the two wire forms cannot disagree on
the mapping. Values are plain Python: ``str``, ``bool``, ``int`` (within
int64; larger ones are already strings), ``float``, ``list``, ``dict`` and
``None`` (an empty ``AnyValue``).
"""

from __future__ import annotations

import json
import operator
from typing import Any, Dict, List, NamedTuple, Sequence, Tuple

from ._envelope import ENVELOPE_KEY
from ._version import __version__

__all__ = ["NO_BODY", "LogRecordData", "ResourceGroup", "ScopeGroup", "map_lines"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: Nesting kept as OTLP maps and arrays; deeper values become their JSON
#: text (protobuf decoders stop at 100 message levels, three per level here).
MAX_NESTING = 20
#: The scope of ``track()`` events.
EVENT_SCOPE = "trace_telemetry"
NO_BODY: Any = object()

Attributes = List[Tuple[str, Any]]


class LogRecordData(NamedTuple):
    time_unix_nano: int
    severity_number: int
    severity_text: str
    body: Any  # NO_BODY when there is none
    attributes: Attributes
    event_name: str
    trace_id: str  # 32 hex digits or ""
    span_id: str  # 16 hex digits or ""
    flags: int


class ScopeGroup(NamedTuple):
    name: str
    version: str
    records: List[LogRecordData]


class ResourceGroup(NamedTuple):
    attributes: Attributes
    scopes: List[ScopeGroup]


_IDENTITY = ("applicationName", "applicationVersion", "machineName", "osDescription", "ipAddress")
#: Validated lines always hold the ten keys: one C call reads the five.
_identity_of = operator.itemgetter(*_IDENTITY)
_PLAIN = frozenset({str, float, bool, type(None)})
_EXCEPTION_KEYS = (
    ("exceptionType", "exception.type"),
    ("message", "exception.message"),
    ("stackTrace", "exception.stacktrace"),
    ("innerMessage", "trace_telemetry.exception.inner_message"),
)
_SDK = (
    ("telemetry.sdk.language", "python"),
    ("telemetry.sdk.name", "trace-telemetry"),
    ("telemetry.sdk.version", __version__),
)


def map_lines(lines: Sequence[bytes], resource_attributes: Attributes) -> List[ResourceGroup]:
    """Valid queue lines -> resources -> scopes -> records, in first-seen order.

    Args:
        lines: queue lines, each one validated event (with or without the
            envelope).
        resource_attributes: extra resource attributes of the sender
            (``resource_attributes`` / ``OTEL_RESOURCE_ATTRIBUTES``); an
            event's own identity wins over them.
    """
    events = json.loads(b"[" + b",".join(lines) + b"]")
    resources: Dict[Tuple[Any, ...], Tuple[ResourceGroup, Dict[str, ScopeGroup]]] = {}
    result: List[ResourceGroup] = []
    for event in events:
        identity = _identity_of(event)
        entry = resources.get(identity)
        if entry is None:
            group = ResourceGroup(_resource(identity, resource_attributes), [])
            entry = resources[identity] = (group, {})
            result.append(group)
        group, scopes = entry
        scope_name, record = map_event(event)
        scope = scopes.get(scope_name)
        if scope is None:
            version = __version__ if scope_name == EVENT_SCOPE else ""
            scope = scopes[scope_name] = ScopeGroup(scope_name, version, [])
            group.scopes.append(scope)
        scope.records.append(record)
    return result


def _resource(identity: Tuple[Any, ...], extra: Attributes) -> Attributes:
    name, version, host, os_description, ip_address = (
        value if isinstance(value, str) else "" for value in identity
    )
    own: Attributes = [("service.name", name or _extra_service(extra) or "unknown_service")]
    if version:
        own.append(("service.version", version))
    if host:
        own.append(("host.name", host))
    if os_description:
        own.append(("os.description", os_description))
    if ip_address:
        own.append(("host.ip", [ip_address]))
    taken = {key for key, _ in own}
    own.extend((key, value) for key, value in extra if key not in taken)
    taken.update(key for key, _ in extra)
    own.extend(item for item in _SDK if item[0] not in taken)
    return own


def _extra_service(extra: Attributes) -> str:
    for key, value in extra:
        if key == "service.name" and isinstance(value, str):
            return value
    return ""


def map_event(event: Dict[str, Any]) -> Tuple[str, LogRecordData]:  # noqa: PLR0912
    """One event dict -> ``(scope name, record)``; see docs/otlp.md for each field."""
    facts = event.get(ENVELOPE_KEY)
    if not isinstance(facts, dict):
        facts = {}
    door = facts.get("door", "track")
    data = event.get("data")
    time_ns = parse_timestamp(event.get("timestampUtc"))
    attributes: Attributes = []
    body: Any = NO_BODY
    fields = dict(data) if isinstance(data, dict) else None
    exception = fields is not None and _is_exception(fields)
    if door in ("logging", "structlog") and fields is not None:
        level, scope = facts.get("level"), facts.get("scope")
        if exception:
            body = fields.pop("logMessage", NO_BODY)
        elif door == "logging":
            body = fields.pop("message", NO_BODY)
        else:
            body = event.get("name")
        for key, mapped in (("level", level), ("logger", scope)):
            if key in fields and fields[key] == mapped:
                del fields[key]
        event_name = ""
        scope_name = scope if isinstance(scope, str) else ""
        severity = facts.get("severity")
        severity_number = severity if type(severity) is int and 0 <= severity <= 24 else 0
        severity_text = level if isinstance(level, str) else ""
    else:
        name = event.get("name")
        event_name = name if isinstance(name, str) else ""
        scope_name, severity_number, severity_text = EVENT_SCOPE, 0, ""
    attributes.append(("log.record.uid", str(event.get("id"))))
    if fields is not None:
        if exception:
            for source, target in _EXCEPTION_KEYS:
                if source in fields:
                    attributes.append((target, value_of(fields.pop(source), 0)))
        attributes.extend(
            (key, value) if type(value) in _PLAIN else (key, value_of(value, 0))
            for key, value in fields.items()
        )
    elif data is not None:
        attributes.append(("data", value_of(data, 0)))
    record = LogRecordData(
        time_unix_nano=time_ns,
        severity_number=severity_number,
        severity_text=severity_text,
        body=NO_BODY if body is NO_BODY else value_of(body, 0),
        attributes=attributes,
        event_name=event_name,
        trace_id=_hex(facts.get("traceId"), 32),
        span_id=_hex(facts.get("spanId"), 16) if _hex(facts.get("traceId"), 32) else "",
        flags=facts["flags"] if type(facts.get("flags")) is int else 0,
    )
    return scope_name, record


def _is_exception(fields: Dict[str, Any]) -> bool:
    return (
        isinstance(fields.get("exceptionType"), str)
        and isinstance(fields.get("message"), str)
        and isinstance(fields.get("stackTrace"), str)
    )


def _hex(value: Any, digits: int) -> str:
    if not isinstance(value, str) or len(value) != digits or value == "0" * digits:
        return ""
    try:
        int(value, 16)
    except ValueError:
        return ""
    return value.lower()


def value_of(value: Any, depth: int) -> Any:
    """A JSON value as an attribute value: big ints as strings, deep values as JSON text."""
    kind = type(value)
    if kind is str or kind is float or kind is bool or value is None:
        return value
    if kind is int:
        return value if INT64_MIN <= value <= INT64_MAX else str(value)
    if depth >= MAX_NESTING:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    if isinstance(value, list):
        return [value_of(item, depth + 1) for item in value]
    if isinstance(value, dict):
        return {str(key): value_of(item, depth + 1) for key, item in value.items()}
    return str(value)


_seconds_cache: Dict[str, int] = {}


def parse_timestamp(text: Any) -> int:
    """``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` -> nanoseconds since the epoch (0 if unreadable).

    Microseconds are kept; a fraction of any length is read.
    """
    if not isinstance(text, str) or len(text) < 20 or text[-1] not in "Zz":
        return 0
    head = text[:19]
    seconds = _seconds_cache.get(head)
    if seconds is None:
        try:
            if head[4] != "-" or head[7] != "-" or head[10] not in "Tt " or head[13] != ":":
                return 0
            parts = (head[0:4], head[5:7], head[8:10], head[11:13], head[14:16], head[17:19])
            if not all(part.isdigit() for part in parts):
                return 0
            import calendar  # noqa: PLC0415 - once per new second; costly to import

            seconds = calendar.timegm((*(int(part) for part in parts), 0, 0, 0))
        except (ValueError, OverflowError, IndexError):
            return 0
        if len(_seconds_cache) > 4096:
            _seconds_cache.clear()
        _seconds_cache[head] = seconds
    fraction = text[19:-1]
    nanos = 0
    if fraction:
        digits = fraction[1:]
        if fraction[0] != "." or not digits.isdigit():
            return 0
        nanos = int((digits + "000000000")[:9])
    return max(0, seconds * 1_000_000_000 + nanos)
