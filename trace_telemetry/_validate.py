"""What counts as a valid event line in the queue (``docs/contract.md``, strictly).

A line must be strict JSON (no ``NaN``, valid UTF-8, no lone surrogates) for an
object with exactly the ten contract keys (plus, from an OTLP client, the
private ``_otlp`` envelope: docs/otlp.md). Anything else is set aside in the
``.corrupt`` file rather than sent, so the server never rejects a batch for it.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from ._envelope import ENVELOPE_KEY
from ._event import EVENT_KEYS

__all__ = ["is_valid_event_line", "salvage", "valid_event_lines"]

_EVENT_KEY_SET = frozenset(EVENT_KEYS)


def _reject_constant(name: str) -> None:
    raise ValueError(name)


#: Strict like System.Text.Json: ``NaN`` and ``Infinity`` are refused.
_decode = json.JSONDecoder(parse_constant=_reject_constant).decode


def _is_event(event: Any) -> bool:
    return (
        isinstance(event, dict)
        and (event.keys() == _EVENT_KEY_SET or _has_envelope(event))
        and isinstance(event["id"], str)
        and isinstance(event["name"], str)
        and isinstance(event["timestampUtc"], str)
    )


def _has_envelope(event: Dict[str, Any]) -> bool:
    """The ten keys plus the OTLP envelope, an object (docs/otlp.md)."""
    return (
        len(event) == len(_EVENT_KEY_SET) + 1
        and isinstance(event.get(ENVELOPE_KEY), dict)
        and event.keys() - {ENVELOPE_KEY} == _EVENT_KEY_SET
    )


def is_valid_event_line(line: bytes) -> bool:
    """True if ``line`` is strict JSON for one event with exactly the ten keys."""
    try:
        event = _decode(line.decode("utf-8"))
    except (ValueError, RecursionError):
        return False
    if not _is_event(event):
        return False
    if b"\\ud" in line or b"\\uD" in line:  # escaped surrogates: reject lone ones
        try:
            json.dumps(event, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return False
    return True


def valid_event_lines(lines: List[Optional[bytes]]) -> List[bool]:
    """Validity of each line; one C-speed parse of the whole batch when all are fine.

    Parsing the lines as one JSON array is several times cheaper than one
    ``json.loads`` per line. Any doubt (a parse error, a count mismatch such
    as a line holding ``1,2``, escaped surrogates) falls back to line by line.
    """
    if lines and all(line is not None for line in lines):
        joined = b",".join(lines)  # type: ignore[arg-type]
        if b"\\ud" not in joined and b"\\uD" not in joined:
            try:
                events = _decode("[" + joined.decode("utf-8") + "]")
            except (ValueError, RecursionError):
                events = None
            if events is not None and len(events) == len(lines) and all(map(_is_event, events)):
                return [True] * len(lines)
    return [line is not None and is_valid_event_line(line) for line in lines]


_EVENT_START = b'{"id":"'


def salvage(line: bytes) -> int:
    """Where a complete event starts inside an invalid ``line``; -1 if none does.

    A writer killed mid-``write()`` (or a full disk) leaves a torn line, and
    the next append lands right after it on the same line. Events always
    begin with their ``id`` key, so the event is found by trying each
    ``{"id":"`` after the start, left to right (a nested ``"id"`` key inside
    ``data`` never makes a valid event of the rest of the line).
    """
    position = line.find(_EVENT_START, 1)
    while position > 0:
        if is_valid_event_line(line[position:]):
            return position
        position = line.find(_EVENT_START, position + 1)
    return -1
