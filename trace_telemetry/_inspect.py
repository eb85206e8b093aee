"""Read-only looks into a queue from outside the app (``status``, ``peek``).

Nothing here creates a file: a missing queue is reported, not made.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, Iterator, List, Optional

from . import _control, _fileio
from ._control import State
from ._validate import is_valid_event_line

__all__ = ["QueueReport", "count_lines", "pending_lines", "report", "sender_active"]

QueueReport = Dict[str, Any]


def _read(path: str, at: int) -> Optional[State]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return _control.read_state(fd, at)
    finally:
        os.close(fd)


def _drops(path: str) -> Dict[str, int]:
    try:
        fd = os.open(path + ".lock", os.O_RDONLY)
    except OSError:
        return {}
    try:
        return _control.read_drops(fd)
    finally:
        os.close(fd)


def head_offset(path: str) -> int:
    """Where the unconsumed part of the queue file starts (as the sender sees it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return 0
    try:
        state = _control.head_of(fd, (_read(path + ".lock", 64), _read(path + ".offset", 0)))
        return state.offset if state is not None else 0
    finally:
        os.close(fd)


def pending_lines(path: str) -> Iterator[bytes]:
    """The complete lines after the head, valid or not, streaming."""
    with open(path, "rb") as handle:
        handle.seek(head_offset(path))
        for line in handle:
            if line.endswith(b"\n"):
                yield line[:-1]


def count_lines(path: str) -> int:
    try:
        with open(path, "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return 0


def sender_active(path: str) -> bool:
    """True if some process holds the sender lock (is sending right now)."""
    try:
        fd = os.open(path + ".offset", os.O_RDONLY)
    except OSError:
        return False
    try:
        if _fileio.lock_exclusive(fd, timeout=0):
            _fileio.unlock(fd)
            return False
        return True
    finally:
        os.close(fd)


def _newest_valid_line(path: str, start: int) -> Optional[bytes]:
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        block = 64 * 1024
        while end > start:
            begin = max(start, end - block)
            handle.seek(begin)
            lines = handle.read(end - begin).split(b"\n")
            for line in reversed(lines[1:] if begin > start else lines):
                if is_valid_event_line(line):
                    return line
            if begin == start or block > 16 << 20:
                return None
            block *= 4
    return None


def report(path: str) -> QueueReport:
    """Everything ``trace-telemetry status`` shows, as a dict."""
    offset = head_offset(path)
    size = os.stat(path).st_size
    pending = 0
    oldest: Optional[str] = None
    for line in pending_lines(path):
        pending += 1
        if oldest is None and is_valid_event_line(line):
            oldest = json.loads(line)["timestampUtc"]
    newest_line = _newest_valid_line(path, offset) if pending else None
    drops = _drops(path)
    return {
        "queue": os.path.abspath(path),
        "pending_events": pending,
        "pending_bytes": size - offset,
        "file_bytes": size,
        "oldest": oldest,
        "newest": json.loads(newest_line)["timestampUtc"] if newest_line else None,
        "corrupt_lines": count_lines(path + ".corrupt"),
        "rejected_events": count_lines(path + ".rejected"),
        "dropped_by_cap": drops.get("queue_full", 0),
        "dropped": drops,
        "dropped_total": sum(drops.values()),
        "sender_active": sender_active(path),
    }


def peek(path: str, count: int) -> List[bytes]:
    """The next ``count`` valid pending events, as raw lines."""
    found: List[bytes] = []
    for line in pending_lines(path):
        if len(found) >= count:
            break
        if is_valid_event_line(line):
            found.append(line)
    return found
