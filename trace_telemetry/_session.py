"""One drain's hold on the queue: the sender lock, taken and released around it.

See :class:`~trace_telemetry._consume.Consumer` for what a session can do,
and ``docs/delivery.md`` for the locks.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from . import _fileio
from ._consume import Consumer

__all__ = ["QueueSession"]


class QueueSession:
    """Exclusive access to the head of the queue, for one drain.

    Entered, it holds the in-process session lock and the cross-process
    sender lock; :attr:`acquired` tells whether both were obtained within
    the timeout.
    """

    def __init__(self, consumer: Consumer, max_bytes: int, timeout: float) -> None:
        self.consumer = consumer
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.acquired = False
        self._thread_locked = False

    def __enter__(self) -> "QueueSession":
        consumer = self.consumer
        if not consumer.session_lock.acquire(timeout=max(self.timeout, 0.0)):
            return self
        self._thread_locked = True
        try:
            if consumer.lock(self.timeout):
                self.acquired = True
                consumer.sync()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self.acquired:
                self.consumer.unlock()
        finally:
            self.acquired = False
            if self._thread_locked:
                self._thread_locked = False
                self.consumer.session_lock.release()

    def end_offset(self) -> int:
        """The size of the queue file now: a flush stops there."""
        return self.consumer.end_offset()

    def read_batch(
        self, max_events: int, stop_at: Optional[int] = None, start: Optional[int] = None
    ) -> List[Tuple[bytes, int]]:
        """Up to ``max_events`` events: ``(line, end_offset)``.

        From the head (``start=None``), invalid lines are set aside and
        committed past at once. With ``start`` (where the previous read
        ahead ended), nothing is committed and each invalid line comes back
        as ``(b"", end)`` for the caller to commit past in order. See
        :meth:`Consumer.read_batch`.
        """
        return self.consumer.read_batch(max_events, stop_at, start)

    def commit(self, end_offset: int, lines: int = 0) -> None:
        """Mark everything before ``end_offset`` consumed (``lines`` is informative)."""
        self.consumer.commit(end_offset)

    def dead_letter(self, line: bytes) -> None:
        """Move one refused event to ``Q.rejected`` (the caller commits past it)."""
        _fileio.append_private(self.consumer.paths.rejected, line + b"\n")

    def still_locked(self) -> bool:
        """False once ``Q.offset`` was deleted by hand: the drain should stop."""
        return self.consumer.still_locked()

    def maintain(self) -> None:
        """Reclaim the consumed head and enforce ``max_queue_bytes``."""
        self.consumer.maintain(self.max_bytes)
