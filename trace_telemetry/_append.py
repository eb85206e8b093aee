"""The appending side of the queue: any thread of any process, one line per event.

An append holds ``Q.lock`` shared (and a thread lock: an ``flock`` belongs
to the open file description, which the process's threads share) around
one ``write()`` to ``Q`` opened with ``O_APPEND``. Before writing, it reads
the generation from ``Q.lock``: compaction changes it, under the exclusive
lock, whenever it replaces or empties ``Q``, so an appender whose file was
replaced reopens ``Q`` first. A line is therefore either written before a
compaction took the exclusive lock, and copied by it, or written to the new
``Q``. See ``docs/delivery.md``.

What no lock can announce, a hand deleting or replacing ``Q`` or ``Q.lock``,
is noticed by an identity check (``fstat`` against ``stat`` of the path)
every :data:`CHECK_EVERY` appends, by the sender's timer and at exit; the
appends made since the last check are then written again to the new ``Q``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from typing import List

from . import _control, _fileio
from ._compact import COPIED_MARK, Compactor
from ._control import QueuePaths
from ._exclusive import Control
from ._stats import Stats

__all__ = ["CHECK_EVERY", "LOCK_WAIT", "Appender", "LockTimeoutError"]


class LockTimeoutError(OSError):
    """``Q.lock`` could not be had in time: the event is dropped (``lock_timeout``)."""


#: Appends between two identity checks: at most this many appends of a
#: process killed right after ``Q`` was deleted by hand can be lost.
CHECK_EVERY = 64
#: The longest an append waits for ``Q.lock`` (see :meth:`Appender._lock_shared`).
LOCK_WAIT = 2.0
#: The longest an append steps aside for a process waiting for ``Q.lock``.
STEP_ASIDE_SECONDS = 0.2
_DISK_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG})


class Appender:
    """Appends event lines to ``Q``; safe from any thread.

    Args:
        paths: the queue's files.
        control: the process's exclusive descriptor of ``Q.lock`` (first
            use, repairs).
        compactor: trims the oldest events past the cap.
        stats: where drops are counted.
        max_bytes: ``max_queue_bytes`` (0: unbounded).
    """

    def __init__(
        self,
        paths: QueuePaths,
        control: Control,
        compactor: Compactor,
        stats: Stats,
        max_bytes: int,
    ) -> None:
        self.paths = paths
        self.control = control
        self.compactor = compactor
        self.stats = stats
        self.max_bytes = max_bytes
        self._reset()

    def _reset(self) -> None:
        # Re-entrant: a signal handler that tracks (or logs to a handler that
        # does) runs on the thread it interrupted, maybe inside an append.
        self._lock = threading.RLock()
        #: Set while this process is inside a critical section: an append
        #: re-entered from a signal handler is deferred to its end.
        self._busy = False
        self._deferred: List[bytes] = []
        #: Lines appended by this process (for ``stats()["enqueued"]``).
        self.appended = 0
        self._fd = -1
        self._lock_fd = -1
        self._lock_replaced = False
        self._stalled = False
        self._generation = b""
        self._countdown = 0
        #: The lines appended since the last identity check.
        self._unchecked: List[bytes] = []

    def forget(self) -> None:
        """In a forked child: drop the parent's descriptors without unlocking."""
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._reset()

    def close(self) -> None:
        with self._lock:
            if self._busy:  # pragma: no cover - close() from a signal handler
                return
            self._close()

    def _close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._lock_fd = -1
        self._generation = b""

    # -- appending ----------------------------------------------------------------

    def append(self, line: bytes) -> bool:
        """Append one event line (ending in ``\\n``); False if it was dropped (counted)."""
        max_bytes = self.max_bytes
        if max_bytes and len(line) > max_bytes:
            self.stats.drop("event_larger_than_queue", detail="the event exceeds max_queue_bytes")
            return False
        try:
            with self._lock:
                if self._busy or self.control.held_here():
                    # Re-entered from a signal handler: written after the
                    # interrupted append, or by the next one.
                    self._deferred.append(line)
                    return True
                self._busy = True
                try:
                    end = self._append(line)
                    while self._deferred:
                        end = self._append(self._deferred.pop(0))
                finally:
                    self._busy = False
        except OSError as error:
            self._failed(error)
            return False
        if max_bytes and end > max_bytes:
            try:
                self.compactor.trim(urgent=end > max_bytes + max_bytes // 10)
            except Exception as error:  # noqa: BLE001 - the event is queued; trimming waits
                self.stats.error(f"trimming the queue failed: {error!r}")
        return True

    def _append(self, line: bytes) -> int:
        lock_fd = self._lock_fd
        if lock_fd < 0:
            lock_fd = self._open_lock()
        self._lock_shared(lock_fd)
        try:
            self._follow(lock_fd, force_check=False)
            fd = self._fd
            written = os.write(fd, line)
            if written != len(line):  # pragma: no cover - a nearly full disk
                _fileio.write_all(fd, line[written:])
            end = os.lseek(fd, 0, os.SEEK_CUR)
            self._unchecked.append(line)
            self.appended += 1
            return end
        finally:
            _fileio.unlock(lock_fd)
            if self._lock_replaced:
                self._drop_lock_fd()

    def _drop_lock_fd(self) -> None:
        self._lock_replaced = False
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)
        self._lock_fd = -1
        self._generation = b""

    def _follow(self, lock_fd: int, force_check: bool) -> None:
        """Make our open ``Q`` the current one (``Q.lock`` held shared).

        The generation tells whether a compaction replaced or emptied ``Q``
        since our last append; every :data:`CHECK_EVERY` appends (or when
        ``force_check``), the identity check looks for hands on the files.
        """
        header = os.pread(lock_fd, _control.HEADER_SIZE, 0)
        if header[40:41] not in (b" ", b"") and _control.intent_is_fresh(header):
            header = self._step_aside(lock_fd)
        generation = header[: _control.GENERATION_SIZE]
        if generation != self._generation or self._fd < 0:
            if not _control.valid_generation(generation):
                generation = self._repair(lock_fd)
            self._switch(generation)
        self._countdown -= 1
        if self._countdown <= 0 or force_check:
            self._check(lock_fd)

    def _lock_shared(self, lock_fd: int) -> None:
        """Take ``Q.lock`` shared, waiting at most :data:`LOCK_WAIT`.

        An exclusive holder is brief, unless its process was stopped
        (Ctrl-Z, a debugger) in the middle: ``track()`` must not hang for
        that. Once a wait timed out, later appends try once, until a lock
        succeeds again; the events they cannot write are dropped and counted
        (``lock_timeout``).
        """
        if not _fileio.lock_shared(lock_fd, 0.0 if self._stalled else LOCK_WAIT):
            self._stalled = True
            raise LockTimeoutError(
                errno.ETIMEDOUT, "Q.lock held by a process that does not release it"
            )
        self._stalled = False

    def _step_aside(self, lock_fd: int) -> bytes:
        """Let a process waiting for the exclusive lock have it, then lock again.

        Waits while the intent is fresh, at most :data:`STEP_ASIDE_SECONDS`:
        the exclusive holders (the end of a compaction, a commit) are short.
        """
        deadline = time.monotonic() + STEP_ASIDE_SECONDS
        delay = 0.0001
        while True:
            _fileio.unlock(lock_fd)
            time.sleep(delay)
            self._lock_shared(lock_fd)
            header = os.pread(lock_fd, _control.HEADER_SIZE, 0)
            if not _control.intent_is_fresh(header) or time.monotonic() > deadline:
                return header
            delay = min(delay * 2, 0.005)

    def _open_lock(self) -> int:
        """Open ``Q.lock`` (made whole first, under the exclusive lock)."""
        with self.control.exclusive(timeout=LOCK_WAIT):
            pass  # creates or repairs the layout (a stopped holder: it stays as it is)
        self._lock_fd = _fileio.open_private(self.paths.lock, os.O_RDWR)
        return self._lock_fd

    def _repair(self, lock_fd: int) -> bytes:
        """``Q.lock`` was truncated or scribbled on: let it be rebuilt, then read again.

        Called holding the shared lock, which is released for the exclusive
        one (a generation is only ever learnt under a lock) and taken again.
        """
        _fileio.unlock(lock_fd)
        try:
            with self.control.exclusive(timeout=1.0):
                pass
        finally:
            self._lock_shared(lock_fd)
        return os.pread(lock_fd, _control.GENERATION_SIZE, 0)

    def _switch(self, generation: bytes) -> None:
        """A new generation: ``Q`` was compacted or emptied since our last append.

        Called under the shared lock, so no compaction is between its rename
        and its new generation: the ``Q`` at the path is the current one. The
        lines we appended before were copied by the compaction (or consumed,
        if it emptied the file), however many compactions ran since, so none
        is written again: the compaction marked the end of the file it
        replaced. A file without that mark was deleted by hand before some
        compaction of its successor: the lines since the last identity check
        are written again.
        """
        fd = self._fd
        if fd < 0 or not _is_current(fd, self.paths.queue):
            # A compaction that copied our file marked its end; a file deleted
            # by hand has no mark: our unchecked lines are written again.
            self._reopen(rescue=fd >= 0 and not _marked_copied(fd))
        self._unchecked.clear()
        self._generation = generation if _control.valid_generation(generation) else b""
        self._countdown = CHECK_EVERY

    def _check(self, lock_fd: int) -> None:
        """The identity check: is our ``Q`` still the one at the path, ``Q.lock`` too?"""
        self._countdown = CHECK_EVERY
        if not _is_current(self._fd, self.paths.queue):
            self._reopen(rescue=True)
        else:
            self._unchecked.clear()
        if not _is_current(lock_fd, self.paths.lock):
            # Replaced by hand: this append finishes under the old lock; the
            # next one opens the new file, whose generation differs from ours.
            self._lock_replaced = True

    def _reopen(self, rescue: bool) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._fd = _fileio.open_private(self.paths.queue, os.O_RDWR | os.O_APPEND)
        lines, self._unchecked = self._unchecked, []
        if rescue and lines:
            _fileio.write_all(self._fd, b"".join(lines))
            self.stats.warn_once(
                "queue_file_replaced",
                "trace_telemetry: %s was deleted or replaced while in use; %d event(s) "
                "appended to it were written again to the new file (logged once)",
                self.paths.queue,
                len(lines),
            )

    def verify(self) -> None:
        """Run the identity check now (the sender's timer, ``flush()``, exit)."""
        with self._lock:
            lock_fd = self._lock_fd
            if self._busy or lock_fd < 0 or self._fd < 0 or self.control.held_here():
                return
            self._busy = True
            try:
                self._lock_shared(lock_fd)
                try:
                    self._follow(lock_fd, force_check=True)
                finally:
                    _fileio.unlock(lock_fd)
                    if self._lock_replaced:
                        self._drop_lock_fd()
                while self._deferred:  # left by a signal handler at the very end of an append
                    self._append(self._deferred[0])
                    del self._deferred[0]
            except OSError as error:
                self.stats.error(f"queue check failed: {error}")
            finally:
                self._busy = False

    def _failed(self, error: OSError) -> None:
        """A write failed: count the drop, and start afresh on the next append."""
        self.stats.error(f"queue write failed: {error}")
        if isinstance(error, LockTimeoutError):
            self.stats.drop("lock_timeout", detail=f"{self.paths.lock}: {error.strerror}")
            return  # the files are fine: the next append tries the lock again
        reason = "disk_full" if error.errno in _DISK_FULL else "io_error"
        self.stats.drop(reason, detail=f"{self.paths.queue}: {error.strerror or error}")
        with self._lock:
            if not self._busy:
                self._close()


def _marked_copied(fd: int) -> bool:
    """Does our replaced file end with a compaction's mark (see ``_compact``)?"""
    size = os.fstat(fd).st_size
    mark = COPIED_MARK
    return size >= len(mark) and os.pread(fd, len(mark), size - len(mark)) == mark


def _is_current(fd: int, path: str) -> bool:
    """Is the open file ``fd`` still the one at ``path``?"""
    try:
        mine = os.fstat(fd)
        return mine.st_nlink > 0 and os.stat(path).st_ino == mine.st_ino
    except FileNotFoundError:
        return False
