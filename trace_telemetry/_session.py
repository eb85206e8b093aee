"""The sender's side of the queue: one drain at a time across threads and processes."""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

from . import _fileio
from ._queue import COMPACT_MIN_BYTES, FileQueue
from ._validate import valid_event_lines

__all__ = ["QueueSession"]


class QueueSession:
    """Exclusive access to the head of the queue, for one drain.

    Entered, it holds the in-process session lock and the cross-process
    sender lock (an ``flock`` on ``Q.offset``); :attr:`acquired` tells
    whether both were obtained within the timeout.
    """

    def __init__(self, queue: FileQueue, timeout: float) -> None:
        self.queue = queue
        self.timeout = timeout
        self.acquired = False
        self._thread_locked = False

    def __enter__(self) -> "QueueSession":
        queue = self.queue
        queue.check_fork()
        if not queue._session_lock.acquire(timeout=max(self.timeout, 0.0)):
            return self
        self._thread_locked = True
        try:
            if queue._lock_sender(self.timeout):
                self.acquired = True
                queue._sync_head()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        queue = self.queue
        try:
            if self.acquired:
                _fileio.unlock(queue._state_fd)
        finally:
            self.acquired = False
            if self._thread_locked:
                self._thread_locked = False
                queue._session_lock.release()

    def end_offset(self) -> int:
        """The size of the queue file now: a flush stops there."""
        if self.queue._read_fd < 0:
            return 0
        return os.fstat(self.queue._read_fd).st_size

    def read_batch(  # noqa: PLR0912 - one more branch: the read ahead
        self, max_events: int, stop_at: Optional[int] = None, start: Optional[int] = None
    ) -> List[Tuple[bytes, int]]:
        """Up to ``max_events`` valid events from the head: ``(line, end_offset)``.

        Invalid lines at the head are moved to ``Q.corrupt`` and committed
        past at once, so they can never stall the queue; an invalid line
        after valid ones ends the batch and leads the next one.

        With ``start`` (a line boundary past the head, where the previous
        read ahead ended), the lines from there are read and nothing is
        committed: up to ``max_events`` lines, each invalid one copied to
        ``Q.corrupt`` at once and returned in its place as ``(b"", end)``,
        for the caller to commit past in queue order and never send.
        """
        queue = self.queue
        if queue._read_fd < 0:
            return []
        if start is not None:
            return self._read_ahead(max_events, stop_at, start)
        while True:
            raw: List[Tuple[Optional[bytes], int]] = []
            limited = False
            last_end = queue._head.offset
            for line, end in queue._iter_lines(queue._head.offset):
                if stop_at is not None and end > stop_at:
                    limited = True
                    break
                raw.append((line, end))
                last_end = end
                if len(raw) >= max_events:
                    break
            if not raw:
                if not limited and os.fstat(queue._read_fd).st_size > last_end:
                    queue._repair_unterminated_tail()
                return []
            events: List[Tuple[bytes, int]] = []
            corrupt: List[bytes] = []
            corrupt_end = -1
            for (line, end), valid in zip(raw, valid_event_lines([line for line, _ in raw])):
                if valid and line is not None:
                    events.append((line, end))
                    continue
                if events:
                    break
                corrupt_end = end
                corrupt.append(b"" if line is None else line + b"\n")
            if corrupt:
                self._move_corrupt(corrupt, corrupt_end)
            if events:
                return events

    def _read_ahead(
        self, max_events: int, stop_at: Optional[int], start: int
    ) -> List[Tuple[bytes, int]]:
        raw: List[Tuple[Optional[bytes], int]] = []
        for line, end in self.queue._iter_lines(start):
            if stop_at is not None and end > stop_at:
                break
            raw.append((line, end))
            if len(raw) >= max_events:
                break
        batch: List[Tuple[bytes, int]] = []
        corrupt: List[bytes] = []
        for (line, end), valid in zip(raw, valid_event_lines([line for line, _ in raw])):
            if valid and line is not None:
                batch.append((line, end))
                continue
            batch.append((b"", end))
            if line != b"":  # None was streamed there already; a blank line held nothing
                corrupt.append(b"" if line is None else line + b"\n")
        data = b"".join(corrupt)
        if data:
            _fileio.append_private(self.queue.corrupt_path, data)
        if corrupt:
            self.queue.stats.add("corrupt", len(corrupt))
            self.queue.stats.warn_once(
                "corrupt",
                "trace_telemetry moved invalid queue line(s) to %s (logged once)",
                self.queue.corrupt_path,
            )
        return batch

    def _move_corrupt(self, lines: List[bytes], end: int) -> None:
        """Append ``lines`` to ``Q.corrupt`` and commit past them.

        Empty entries were streamed there already (over-long lines). Blank
        lines are skipped without a trace: a tail repair racing an append in
        flight leaves one, and it never held an event.
        """
        queue = self.queue
        kept = [line for line in lines if line != b"\n"]
        count = len(kept)
        data = b"".join(kept)
        if data:
            _fileio.append_private(queue.corrupt_path, data)
        self.commit(end, len(lines))
        if not count:
            return
        queue.stats.add("corrupt", count)
        queue.stats.warn_once(
            "corrupt",
            "trace_telemetry moved invalid queue line(s) to %s (logged once)",
            queue.corrupt_path,
        )

    def commit(self, end_offset: int, lines: int) -> None:
        """Mark everything before ``end_offset`` (``lines`` more lines) consumed."""
        head = self.queue._head
        self.queue._write_state(head._replace(offset=end_offset, lines=head.lines + lines))

    def dead_letter(self, line: bytes) -> None:
        """Move one refused event to ``Q.rejected`` (the caller commits past it)."""
        _fileio.append_private(self.queue.rejected_path, line + b"\n")

    def maintain(self) -> None:
        """Reclaim the consumed head and enforce ``max_queue_bytes``."""
        queue = self.queue
        if queue._read_fd < 0:
            return
        size = os.fstat(queue._read_fd).st_size
        offset = queue._head.offset
        if queue.max_bytes and size > queue.max_bytes:
            queue._trim(room=0)
        elif offset and (offset >= size or (offset >= COMPACT_MIN_BYTES and 2 * offset >= size)):
            queue._compact()
