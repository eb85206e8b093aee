"""Reading lines from the queue file for the sender: bounded memory, torn lines salvaged."""

from __future__ import annotations

import os
from typing import Iterator, List, Optional, Tuple

from . import _fileio
from ._stats import Stats
from ._validate import salvage, valid_event_lines

__all__ = ["LineReader", "classify", "classify_in_place"]

_CHUNK = 256 * 1024
#: The mark a compaction appends to the file it replaced (``_compact.COPIED_MARK``).
_COPIED = b"#copied"


class LineReader:
    """Complete lines of the open queue file ``fd`` (set by the sender).

    Args:
        corrupt_path: where over-long lines are streamed (``Q.corrupt``).
        max_line: lines longer than this are set aside, never held in memory.
        stats: where salvaged lines are counted.
    """

    def __init__(self, corrupt_path: str, max_line: int, stats: Stats) -> None:
        self.corrupt_path = corrupt_path
        self.max_line = max_line
        self.stats = stats
        self.fd = -1

    def iter_from(self, offset: int) -> Iterator[Tuple[Optional[bytes], int]]:
        """Complete lines from ``offset``: ``(line, end_offset)``.

        A line longer than ``max_line`` is streamed to ``Q.corrupt`` and
        yielded as ``(None, end)`` so memory stays bounded. An unterminated
        tail is not yielded.
        """
        fd = self.fd
        buffer = b""
        position = offset
        while True:
            chunk = os.pread(fd, _CHUNK, position + len(buffer))
            if not chunk:
                return
            buffer += chunk
            start = 0
            while True:
                newline = buffer.find(b"\n", start)
                if newline < 0:
                    break
                if (
                    buffer[start:newline] == _COPIED
                    and position + newline + 1 == os.fstat(fd).st_size
                ):
                    # A compaction replaced this file here (see ``_compact``);
                    # the mark is always the file's last line (one written by
                    # hand elsewhere is an invalid line like any other).
                    return
                yield buffer[start:newline], position + newline + 1
                start = newline + 1
            buffer = buffer[start:]
            position += start
            if len(buffer) > self.max_line:
                end, salvaged = self._move_long_line(position, buffer)
                if end < 0:
                    return
                if salvaged is not None:
                    self.stats.add("corrupt")
                yield salvaged, end
                buffer = b""
                position = end

    def _move_long_line(self, position: int, head: bytes) -> Tuple[int, Optional[bytes]]:
        """Set an over-long line aside; return its end (-1 if unterminated) and any event.

        The line is copied to ``Q.corrupt`` in chunks. An event appended
        right after the torn remains of a huge one ends such a line: it is
        looked for in the line's last ``max_line`` bytes and returned.
        """
        scan = position + len(head)
        while True:
            chunk = os.pread(self.fd, _CHUNK, scan)
            if not chunk:
                return -1, None
            newline = chunk.find(b"\n")
            if newline >= 0:
                end = scan + newline + 1
                break
            scan += len(chunk)
        window_start = max(position, end - 1 - self.max_line)
        window = os.pread(self.fd, end - 1 - window_start, window_start)
        start = salvage(window)
        garbage_end = window_start + start if start > 0 else end
        fd = _fileio.open_private(self.corrupt_path, os.O_WRONLY | os.O_APPEND)
        try:
            _fileio.copy_range(self.fd, fd, position, garbage_end)
            if start > 0:
                _fileio.write_all(fd, b"\n")
        finally:
            os.close(fd)
        return end, window[start:] if start > 0 else None


def classify(
    raw: List[Tuple[Optional[bytes], int]],
) -> Tuple[List[Tuple[bytes, int]], List[bytes], int]:
    """Split read lines into the batch's events and the invalid lines before them.

    Returns the events, the lines to set aside, and the end of the last
    invalid line at the head (-1 if none). Reading stops at the first
    invalid line after a valid one: it will lead the next batch.
    """
    events: List[Tuple[bytes, int]] = []
    corrupt: List[bytes] = []
    corrupt_end = -1
    for (line, end), valid in zip(raw, valid_event_lines([line for line, _ in raw])):
        event = line if valid else None
        if not valid and line is not None:
            start = salvage(line)
            if start > 0:
                corrupt.append(line[:start] + b"\n")
                event = line[start:]
        if event is not None:
            events.append((event, end))
            continue
        if events:
            break
        corrupt_end = end
        corrupt.append(b"" if line is None else line + b"\n")
    return events, corrupt, corrupt_end


def classify_in_place(
    raw: List[Tuple[Optional[bytes], int]],
) -> Tuple[List[Tuple[bytes, int]], List[bytes]]:
    """Every read line in order: events as they are, invalid ones as ``(b"", end)``.

    Returns the batch and the lines to set aside (blank lines never held an
    event and are not among them; over-long ones, streamed already, are
    there as ``b""`` so they are counted).
    A torn line ending in a complete event yields that event.
    """
    batch: List[Tuple[bytes, int]] = []
    corrupt: List[bytes] = []
    for (line, end), valid in zip(raw, valid_event_lines([line for line, _ in raw])):
        if valid and line is not None:
            batch.append((line, end))
            continue
        start = salvage(line) if line else -1
        if line is not None and start > 0:
            corrupt.append(line[:start] + b"\n")
            batch.append((line[start:], end))
            continue
        batch.append((b"", end))
        if line is None:
            corrupt.append(b"")  # streamed there already; counted by the caller
        elif line:
            corrupt.append(line + b"\n")
    return batch, corrupt
