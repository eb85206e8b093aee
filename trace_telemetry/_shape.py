"""Events that need more than the common path: a ``before_send`` hook, or too many bytes.

Both keep the contract's shape (``docs/contract.md``): only its ten keys go
out, and an event over ``max_event_bytes`` keeps its envelope and a
preview of its ``data``. Every event dropped here is counted.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from ._event import EVENT_KEYS
from ._serialize import encode
from ._stats import Stats

__all__ = ["TRUNCATION_MARKER", "scrub", "shrink"]

TRUNCATION_MARKER = "…[truncated by trace_telemetry: event over max_event_bytes]"


def scrub(
    event: Dict[str, Any], hook: Callable[[Dict[str, Any]], Any], stats: Stats
) -> Optional[Dict[str, Any]]:
    """Run ``before_send``; the event to queue, or None (dropped, counted)."""
    kept = {"id": event["id"], "timestampUtc": event["timestampUtc"], "data": None}
    try:
        result = hook(event)
    except Exception as error:  # noqa: BLE001 - user code
        stats.drop("before_send_error", detail=f"before_send raised {error!r}")
        return None
    if result is None:
        stats.drop("before_send", detail="before_send returned None")
        return None
    if not isinstance(result, dict):
        stats.drop("before_send_error", detail=f"before_send returned a {type(result).__name__}")
        return None
    # Only the contract's keys go out. A key the hook deleted stays
    # deleted (emptied), so scrubbing by deletion is honoured.
    return {key: result.get(key, kept.get(key, "")) for key in EVENT_KEYS}


def shrink(event: Dict[str, Any], max_event_bytes: int, stats: Stats) -> bytes:
    """Cut ``data`` (and, if need be, ``name``) to fit ``max_event_bytes``; b"" if impossible."""
    stats.add("truncated")
    stats.warn_once(
        "truncated",
        "trace_telemetry truncated an event over max_event_bytes=%d (logged once)",
        max_event_bytes,
    )
    text = encode(event["data"]).decode("utf-8")
    shrunk = dict(event)
    name = shrunk["name"] if isinstance(shrunk["name"], str) else ""
    if len(name) > 1024:
        shrunk["name"] = name[:1024]
    shrunk["data"] = ""
    room = max_event_bytes - len(encode(shrunk)) - len(TRUNCATION_MARKER) * 3 - 8
    for _ in range(4):
        if room <= 0:
            break
        preview = text.encode("utf-8")[:room].decode("utf-8", "ignore")
        shrunk["data"] = preview + TRUNCATION_MARKER
        line = encode(shrunk) + b"\n"
        excess = len(line) - max_event_bytes
        if excess <= 0:
            return line
        room -= max(excess, room // 4)
    stats.drop("too_large", detail="event envelope over max_event_bytes")
    return b""
