"""The private OTLP envelope: facts only OTLP needs, kept beside the contract's keys.

An OTLP client appends one more member, ``"_otlp":{...}``, as the **last**
member of a queue line. It holds flat scalars only (see docs/otlp.md
"Where the OTLP-only facts live"): which door made the event, the severity,
the logger name, and the ids of the OpenTelemetry span active at the call.
Clients on the default protocol never write it, so their lines and the
bytes they send are unchanged.

Because the envelope is the last member and holds no nested object, its
start is the last unescaped ``,"_otlp":{`` of the line: a JSON string
escapes every ``"`` inside it, so no string can contain that sequence.
"""

from __future__ import annotations

import json
import logging
import operator
import sys
from typing import Any, Dict, List, Optional, Tuple

from ._serialize import encode

__all__ = [
    "ENVELOPE_KEY",
    "attach",
    "from_record",
    "from_structlog",
    "from_track",
    "severity_number",
    "span_facts",
    "strip_lines",
    "suffix",
]

ENVELOPE_KEY = "_otlp"
_SECOND_LAST = operator.itemgetter(-2)
_MARKER = b',"_otlp":{'
#: Longest logger name or level text kept in the envelope.
_MAX_TEXT = 256
#: OpenTelemetry SeverityNumber of each Python level (DEBUG=5 ... FATAL=21).
_BASES = ((50, 21), (40, 17), (30, 13), (20, 9), (10, 5))


def severity_number(levelno: int) -> int:
    """Python level number -> OTLP ``SeverityNumber`` (the OTel logging bridge's table).

    ``DEBUG`` 5, ``INFO`` 9, ``WARNING`` 13, ``ERROR`` 17, ``CRITICAL`` 21;
    a custom level between two gets the finer steps (``INFO2``...) of the
    lower one, up to three; below ``DEBUG`` is ``TRACE`` (1-4); 0 stays
    ``UNSPECIFIED``.
    """
    if levelno <= 0:
        return 0
    for level, base in _BASES:
        if levelno >= level:
            return base + min(levelno - level, 3)
    return 1 + min((levelno - 1) // 3, 3)


def span_facts(facts: Dict[str, Any]) -> Dict[str, Any]:
    """Add the active span's ids when the app already imported OpenTelemetry.

    Never imports ``opentelemetry``: a ``sys.modules`` look-up costs ~30 ns
    when it is absent.
    """
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return facts
    try:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            facts["traceId"] = f"{context.trace_id:032x}"
            facts["spanId"] = f"{context.span_id:016x}"
            facts["flags"] = int(context.trace_flags) & 0xFF
    except Exception:  # noqa: BLE001, S110 - a broken tracer never breaks tracking
        pass
    return facts


def suffix(facts: Dict[str, Any]) -> bytes:
    """The bytes that end an enveloped line: ``,"_otlp":{...}}`` and the newline."""
    return _MARKER[:-1] + encode(facts) + b"}\n"


def attach(line: bytes, ending: bytes) -> bytes:
    """``line`` (ending ``}`` and a newline) with the envelope ``ending`` as its last member."""
    return line[:-2] + ending


#: Envelopes without span ids, per (door, level number, level text, scope):
#: a call site logs with the same logger and level every time.
_cache: Dict[Tuple[str, int, str, str], bytes] = {}
_MAX_CACHED = 1024


def _cached(door: str, number: int, level: str, scope: str) -> bytes:
    key = (door, number, level, scope)
    if "opentelemetry.trace" not in sys.modules:
        ending = _cache.get(key)
        if ending is not None:
            return ending
    facts = span_facts(
        {
            "door": door,
            "severity": severity_number(number),
            "level": level[:_MAX_TEXT],
            "scope": scope[:_MAX_TEXT],
        }
    )
    ending = suffix(facts)
    if "traceId" not in facts:
        if len(_cache) >= _MAX_CACHED:
            _cache.clear()
        _cache[key] = ending
    return ending


def from_record(record: logging.LogRecord) -> bytes:
    """The envelope of a ``logging`` record (``TelemetryHandler``)."""
    levelno = record.levelno
    return _cached(
        "logging",
        levelno if type(levelno) is int else 0,
        str(record.levelname),
        str(record.name),
    )


def from_structlog(logger: Any, method_name: str, event_dict: Any) -> bytes:
    """The envelope of a structlog event (``TelemetryProcessor``).

    The level is the ``level`` key when ``add_log_level`` set it, else the
    method called; the scope is the ``logger`` key, else the wrapped
    logger's ``name``.
    """
    level = event_dict.get("level") if isinstance(event_dict, dict) else None
    if not isinstance(level, str):
        level = "error" if method_name == "exception" else str(method_name)
    number = logging.getLevelName(level.upper())
    scope = event_dict.get("logger") if isinstance(event_dict, dict) else None
    if not isinstance(scope, str):
        scope = getattr(logger, "name", None)
    return _cached(
        "structlog",
        number if isinstance(number, int) else 0,
        level,
        scope if isinstance(scope, str) else "",
    )


def from_track() -> Optional[bytes]:
    """The envelope of a ``track()`` call: only when a span is active."""
    if "opentelemetry.trace" not in sys.modules:
        return None
    facts = span_facts({"door": "track"})
    return suffix(facts) if "traceId" in facts else None


def split(line: bytes) -> Tuple[bytes, Optional[bytes]]:
    """``(contract line, envelope JSON or None)``; the line is one valid queue line."""
    if not line.endswith(b"}}"):
        return line, None
    start = line.rfind(_MARKER)
    if start < 0:
        return line, None
    try:  # rare (a queue written by an OTLP client): confirm it is top-level
        if ENVELOPE_KEY not in json.loads(line):
            return line, None
    except ValueError:
        return line, None
    return line[:start] + b"}", line[start + len(_MARKER) - 1 : -1]


def strip_lines(lines: List[bytes], body: bytes) -> bytes:
    """The TraceTelemetry batch ``body`` of ``lines`` without any envelope.

    The common case (no envelope in the batch) costs one look at the
    second-to-last byte of each line: a contract line ends in ``""}``.
    """
    if 0x7D not in bytes(map(_SECOND_LAST, lines)):  # no line ends in "}}"
        return body
    return b"[" + b",".join(split(line)[0] for line in lines) + b"]"
