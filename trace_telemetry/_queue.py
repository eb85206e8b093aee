"""The on-disk queue: one NDJSON file, shared by threads and processes.

Files beside ``queue_path`` (``Q``), each explained in ``docs/delivery.md``:

``Q``
    The events, one JSON object per line, appended with ``O_APPEND`` by one
    ``write()`` per event. Readable with ``cat`` and ``jq``.
``Q.lock``
    Appenders hold its ``flock`` shared around each write; compaction,
    trimming and commits hold it exclusively. It holds the generation, the
    head and the drop counts (see ``_control``).
``Q.offset``
    Its ``flock`` is the *sender lock*: whoever holds it is the only process
    reading and committing. It holds a copy of the head.
``Q.compact``
    The copy a compaction is writing (its ``flock`` is the compaction lock).
``Q.corrupt``, ``Q.rejected``
    Lines that are not valid events, and events the server refused.

This module puts the two sides together: :mod:`._append` (any thread, any
process) and :mod:`._consume` (the one sender), with :mod:`._compact` used by
both.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import weakref
from typing import Dict

from . import _control, _fileio, _fsinfo
from ._append import Appender
from ._compact import Compactor
from ._consume import Consumer
from ._control import QueuePaths
from ._exclusive import Control
from ._session import QueueSession
from ._stats import Stats

__all__ = ["COMPACT_LOCK_WAIT", "FileQueue"]

#: The longest a compaction or a trim waits for ``Q.lock``'s exclusive lock.
COMPACT_LOCK_WAIT = 1.0

_queues: "weakref.WeakSet[FileQueue]" = weakref.WeakSet()


class FileQueue:
    """Appends events and hands batches to the one sender of the queue.

    ``append`` and ``pending_count`` may be called from any thread. Reading,
    committing and compacting happen inside :meth:`session`, which holds the
    sender lock across threads and processes.

    Args:
        path: ``queue_path``; a symlink is resolved once, here.
        max_bytes: ``max_queue_bytes`` (0: unbounded).
        stats: where this process counts what it sends and drops.
        max_line: ``max_event_bytes``; lines much longer are set aside.
    """

    def __init__(self, path: str, max_bytes: int, stats: Stats, max_line: int) -> None:
        self.paths = QueuePaths.beside(path)
        self.path = self.paths.queue
        self.rejected_path = self.paths.rejected
        self.max_bytes = max_bytes
        self.max_line = max(max_line * 2, 4 << 20)
        self.stats = stats
        self._control = Control(self.paths.lock)
        self._compactor = Compactor(self.paths, self._control, stats, max_bytes, COMPACT_LOCK_WAIT)
        self._appender = Appender(self.paths, self._control, self._compactor, stats, max_bytes)
        self._consumer = Consumer(self.paths, self._control, self._compactor, stats, self.max_line)
        stats.sink = self._store_drops
        self._reset_counter()
        self._pid = os.getpid()
        _queues.add(self)
        _fsinfo.warn_if_unsupported(self.path, stats)

    @property
    def appended(self) -> int:
        """Lines this process appended."""
        return self._appender.appended

    # -- process lifecycle -----------------------------------------------------------

    def check_fork(self) -> None:
        """Start afresh in a forked child: own locks, own file descriptions.

        Inherited descriptors share ``flock`` locks with the parent, so they
        are closed (which does not release the parent's locks), never unlocked.
        """
        if self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._appender.forget()
        self._consumer.forget()
        self._control.forget()
        self._reset_counter()

    def close(self) -> None:
        """Close every descriptor; the queue reopens them on next use."""
        self.verify()
        self._appender.close()
        self._consumer.close()
        self._control.close()
        with self._count_lock:
            self._close_counter()

    def verify(self) -> None:
        """Check the files are still ours (hand deletions) and store pending drop counts."""
        if self._pid != os.getpid():
            return
        self._appender.verify()
        pending = self.stats.take_pending()
        if pending and not self._store_drops(pending):
            self.stats.restore_pending(pending)

    def _store_drops(self, drops: Dict[str, int]) -> bool:
        try:
            return self._control.add_drops(drops, timeout=0)
        except OSError:
            return False

    # -- the two sides ---------------------------------------------------------------

    def append(self, line: bytes) -> bool:
        """Append one event line (ending in ``\\n``); False if it was dropped (counted).

        The caller owns the fork check (the client makes it once per event).
        """
        return self._appender.append(line)

    def session(self, timeout: float) -> QueueSession:
        """Hold the sender lock for a ``with`` block (see :class:`QueueSession`)."""
        self.check_fork()
        return QueueSession(self._consumer, self.max_bytes, timeout)

    # -- counting ------------------------------------------------------------------------

    def _reset_counter(self) -> None:
        self._count_lock = threading.Lock()
        self._count_fd = -1
        self._count_generation = b""
        self._count_end = self._count_lines = 0
        self._count_head = self._count_head_lines = 0

    def _close_counter(self) -> None:
        if self._count_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._count_fd)
        self._count_fd = -1

    def pending_count(self) -> int:
        """Events not yet consumed: newlines after the head.

        Counts incrementally (the whole file's newlines, and those before the
        head), so repeated calls cost only what was appended or consumed since.
        """
        self.check_fork()
        with self._count_lock:
            generation = b""
            lock_state = None
            with contextlib.suppress(OSError):
                fd = os.open(self.paths.lock, os.O_RDONLY | _fileio._CLOEXEC)
                try:
                    generation = _control.read_generation(fd)
                    lock_state = _control.read_state(fd)
                finally:
                    os.close(fd)
            fd = self._count_fd
            if (
                fd < 0
                or generation != self._count_generation
                or not _fileio.same_file(fd, self.path)
            ):
                self._close_counter()
                try:
                    fd = self._count_fd = os.open(self.path, os.O_RDONLY | _fileio._CLOEXEC)
                except FileNotFoundError:
                    return 0
                self._count_generation = generation
                self._count_end = self._count_lines = 0
                self._count_head = self._count_head_lines = 0
            size = os.fstat(fd).st_size
            if size < self._count_end:  # truncated by hand
                self._count_end = self._count_lines = 0
                self._count_head = self._count_head_lines = 0
            self._count_lines += _fileio.count_newlines(fd, self._count_end, size)
            self._count_end = max(self._count_end, size)
            state = _control.head_of(fd, (lock_state, self._mirror()))
            head = state.offset if state is not None else 0
            if head < self._count_head:
                self._count_head = self._count_head_lines = 0
            self._count_head_lines += _fileio.count_newlines(fd, self._count_head, head)
            self._count_head = head
            return max(0, self._count_lines - self._count_head_lines)

    def _mirror(self) -> "_control.State | None":
        try:
            fd = os.open(self.paths.state, os.O_RDONLY | _fileio._CLOEXEC)
        except OSError:
            return None
        try:
            return _control.read_state(fd, 0)
        finally:
            os.close(fd)


def _at_exit() -> None:
    """At a normal exit: rescue appends to a ``Q`` deleted by hand, store drop counts."""
    for queue in list(_queues):
        with contextlib.suppress(Exception):
            queue.verify()


atexit.register(_at_exit)
