"""The consuming side of the queue: the one sender reads, commits and compacts.

Whoever holds the *sender lock* (an exclusive ``flock`` on ``Q.offset``) is
the only process reading batches from the head of ``Q``. The head is the
state in ``Q.lock``, written under ``Q.lock``'s exclusive lock, and copied
to ``Q.offset`` after each commit so that either file may be lost by hand
without rewinding it. A commit only moves the head forward: an appender
that trimmed the oldest events past the cap may have moved it further
already. See ``docs/delivery.md``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from typing import List, Optional, Tuple

from . import _control, _fileio
from ._compact import COMPACT_MIN_BYTES, Compactor, last_line_end, write_head
from ._control import QueuePaths
from ._exclusive import Control
from ._lines import LineReader, classify, classify_in_place
from ._stats import Stats

__all__ = ["Consumer"]

#: The longest a commit waits for ``Q.lock``'s exclusive lock. Its holders are
#: short; a wait this long means a process stopped inside an append (SIGSTOP,
#: or a signal handler flushing on the very thread it interrupted). The batch
#: stays queued (it may be sent again) and the drain stops.
COMMIT_LOCK_WAIT = 2.0
#: ``Q.offset`` is written whole once, so the state copy never needs new blocks.
_STATE_FILE_SIZE = 128


class Consumer:
    """The sender's side of one queue in this process (its descriptors and head)."""

    def __init__(
        self,
        paths: QueuePaths,
        control: Control,
        compactor: Compactor,
        stats: Stats,
        max_line: int,
    ) -> None:
        self.paths = paths
        self.control = control
        self.compactor = compactor
        self.stats = stats
        self._lines = LineReader(paths.corrupt, max_line, stats)
        self._reset()

    def _reset(self) -> None:
        self.session_lock = threading.Lock()
        self._state_fd = -1
        self._read_fd = -1
        self._generation = b""
        self._fingerprint = _control.NO_FINGERPRINT
        self._stale = True
        #: The committed head of the read file, as this sender knows it.
        self.head = 0

    def forget(self) -> None:
        """In a forked child: drop the parent's descriptors without unlocking."""
        for fd in (self._state_fd, self._read_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._reset()

    def close(self) -> None:
        with self.session_lock:
            self._close_read()
            if self._state_fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(self._state_fd)
            self._state_fd = -1

    def _close_read(self) -> None:
        if self._read_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._read_fd)
        self._read_fd = -1
        self._stale = True

    # -- the sender lock ------------------------------------------------------------

    def lock(self, timeout: float) -> bool:
        """Take the sender lock within ``timeout``; it must be on the ``Q.offset`` at the path.

        ``Q.offset`` deleted by hand while another process holds the lock
        would otherwise let a second sender lock the new file.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        for _ in range(5):
            if self._state_fd < 0:
                self._state_fd = _fileio.open_private(self.paths.state, os.O_RDWR)
            remaining = max(0.0, deadline - time.monotonic())
            if not _fileio.lock_exclusive(self._state_fd, remaining):
                return False
            if _fileio.same_file(self._state_fd, self.paths.state):
                if os.fstat(self._state_fd).st_size < _STATE_FILE_SIZE:
                    with contextlib.suppress(OSError):
                        os.pwrite(self._state_fd, b" " * (_STATE_FILE_SIZE - 1) + b"\n", 0)
                return True
            _fileio.unlock(self._state_fd)
            os.close(self._state_fd)
            self._state_fd = -1
        return False

    def unlock(self) -> None:
        _fileio.unlock(self._state_fd)

    def still_locked(self) -> bool:
        """False if ``Q.offset`` was deleted or replaced since we locked it."""
        return _fileio.same_file(self._state_fd, self.paths.state)

    # -- the head ---------------------------------------------------------------------

    def sync(self) -> None:
        """Find the current ``Q`` and its head (sender lock held)."""
        with self.control.shared() as cfd:
            generation = _control.read_generation(cfd)
            fd = self._read_fd
            if fd >= 0 and not _fileio.same_file(fd, self.paths.queue):
                if generation == self._generation:
                    self._rescue(cfd, fd)  # replaced by hand, not compacted
                self._close_read()
            elif fd >= 0 and generation != self._generation:
                self._close_read()  # emptied in place: start again from its head
            if self._read_fd < 0:
                try:
                    self._read_fd = os.open(self.paths.queue, os.O_RDONLY | _fileio._CLOEXEC)
                except FileNotFoundError:
                    self.head = 0
                    return
            self._generation = generation
            self._fingerprint = _control.fingerprint(self._read_fd)
            self._stale = False
            state = _control.head_of(
                self._read_fd, (_control.read_state(cfd), _control.read_state(self._state_fd, 0))
            )
            self.head = state.offset if state is not None else 0

    def _rescue(self, cfd: int, old: int) -> None:
        """``Q`` was deleted or replaced by hand: its unconsumed lines go to the new ``Q``."""
        end = last_line_end(old, self.head)
        if end <= self.head:
            return
        target = _fileio.open_private(self.paths.queue, os.O_WRONLY | os.O_APPEND)
        try:
            _fileio.copy_range(old, target, self.head, end)
        finally:
            os.close(target)
        self.stats.warn_once(
            "queue_file_replaced_sender",
            "trace_telemetry: %s was deleted or replaced while in use; its unsent "
            "events were written to the new file (logged once)",
            self.paths.queue,
        )

    def refresh(self) -> None:
        """Catch up with a compaction or a trim done by another process."""
        if self._stale:
            self.sync()
            return
        with self.control.shared() as cfd:
            generation = _control.read_generation(cfd)
            if generation == self._generation and self._read_fd >= 0 and self._same_content():
                state = _control.head_of(self._read_fd, (_control.read_state(cfd),))
                if state is not None and state.offset > self.head:
                    self.head = state.offset
                return
        self.sync()

    def commit(self, end: int) -> None:
        """Move the head to ``end`` (never backwards), in ``Q.lock`` and ``Q.offset``."""
        fd = self._read_fd
        if fd < 0:
            return
        written: Optional[_control.State] = None
        with self.control.exclusive(COMMIT_LOCK_WAIT) as cfd:
            if cfd is None:
                raise TimeoutError("Q.lock stayed locked: the batch stays queued")
            if self._unchanged(cfd, fd):
                current = _control.head_of(
                    fd, (_control.read_state(cfd), _control.read_state(self._state_fd, 0))
                )
                if current is None or end > current.offset:
                    written = write_head(cfd, fd, current, end)
            else:
                self._commit_translated(cfd, fd, end)
            pending = self.stats.take_pending()
            if pending:
                _control.add_drops_locked(cfd, pending)
        self.head = max(self.head, end)
        if written is not None:
            with contextlib.suppress(OSError):
                _control.write_state(self._state_fd, written, 0)

    def _unchanged(self, cfd: int, fd: int) -> bool:
        """Is the content of our read file still what we read (not compacted, not emptied)?

        The generation says so. When ``Q.lock`` was replaced or rebuilt by
        hand the generation changed with no compaction: the state then names
        no origin in our file, and our file is still ``Q`` with the same
        first line.
        """
        if _control.read_generation(cfd) == self._generation:
            return self._same_content()  # not truncated and refilled by hand
        state = _control.read_state(cfd)
        inode = os.fstat(fd).st_ino
        if state is not None and state.origin_inode == inode:
            return False  # compacted or emptied from our file
        return _fileio.same_file(fd, self.paths.queue) and self._same_content()

    def _same_content(self) -> bool:
        """Does our read file still start with the first line we knew (learnt once it has one)?"""
        now = _control.fingerprint(self._read_fd)
        if self._fingerprint == _control.NO_FINGERPRINT:
            self._fingerprint = now
        return now == self._fingerprint

    def _commit_translated(self, cfd: int, old: int, end: int) -> None:
        """``Q`` was compacted by another process while our batch was in flight."""
        self._stale = True
        state = _control.read_state(cfd)
        # What our file's first line was when we read it (an emptied file has
        # another one now).
        known = self._fingerprint
        if known == _control.NO_FINGERPRINT:
            known = _control.fingerprint(old)
        if (
            state is None
            or state.origin_inode != os.fstat(old).st_ino
            or state.origin_fingerprint != known
        ):
            return  # replaced twice or by hand: the batch may be sent again
        translated = end - state.origin_offset
        if translated <= state.offset:
            return
        try:
            new = os.open(self.paths.queue, os.O_RDONLY | _fileio._CLOEXEC)
        except FileNotFoundError:
            return
        try:
            if os.fstat(new).st_ino == state.inode:
                write_head(cfd, new, state, translated)
        finally:
            os.close(new)

    # -- reading ------------------------------------------------------------------------

    def end_offset(self) -> int:
        return os.fstat(self._read_fd).st_size if self._read_fd >= 0 else 0

    def read_batch(
        self, max_events: int, stop_at: Optional[int], start: Optional[int] = None
    ) -> List[Tuple[bytes, int]]:
        """Up to ``max_events`` valid events from the head: ``(line, end_offset)``.

        Invalid lines at the head go to ``Q.corrupt`` and are committed past
        at once, so they never stall the queue; an invalid line after valid
        ones ends the batch and leads the next one. A valid event glued to
        the torn remains of another line is salvaged, the remains set aside.
        """
        if start is not None:
            return self._read_ahead(max_events, stop_at, start)
        self.refresh()
        if self._read_fd < 0:
            return []
        self._lines.fd = self._read_fd
        while True:
            raw: List[Tuple[Optional[bytes], int]] = []
            for line, end in self._lines.iter_from(self.head):
                if stop_at is not None and end > stop_at:
                    break
                raw.append((line, end))
                if len(raw) >= max_events:
                    break
            if not raw:
                return []
            events, corrupt, corrupt_end = classify(raw)
            if corrupt:
                self._set_aside(corrupt, corrupt_end if not events else -1)
            if events:
                return events

    def _read_ahead(
        self, max_events: int, stop_at: Optional[int], start: int
    ) -> List[Tuple[bytes, int]]:
        """Lines from ``start`` (past batches still in flight), committing nothing.

        Each invalid line is set aside in ``Q.corrupt`` at once and returned
        in its place as ``(b"", end)``, for the caller to commit past in
        queue order and never send. Nothing is read if ``Q`` was compacted
        or emptied since the head was read: offsets from before would not
        hold; the caller lets its window drain and reads at the head again.
        """
        fd = self._read_fd
        if fd < 0 or self._stale or not self._same_generation():
            return []
        self._lines.fd = fd
        raw: List[Tuple[Optional[bytes], int]] = []
        for line, end in self._lines.iter_from(start):
            if stop_at is not None and end > stop_at:
                break
            raw.append((line, end))
            if len(raw) >= max_events:
                break
        batch, corrupt = classify_in_place(raw)
        if corrupt:
            self._set_aside(corrupt, -1)
        return batch

    def _same_generation(self) -> bool:
        """No compaction or emptying since the head was read (a lock-free peek).

        A torn read only looks like a change, which stops the read ahead
        once: harmless. Hands on ``Q`` are caught at commit.
        """
        return self.control.peek_generation() == self._generation

    def _set_aside(self, lines: List[bytes], end: int) -> None:
        """Append ``lines`` to ``Q.corrupt``; commit past them if ``end`` >= 0.

        Empty entries were streamed there already (over-long lines); blank
        lines never held an event and leave no trace.
        """
        kept = [line for line in lines if line not in (b"", b"\n")]
        data = b"".join(kept)
        if data:
            try:
                _fileio.append_private(self.paths.corrupt, data)
            except OSError as error:  # a full disk: they are not events, sending goes on
                self.stats.error(f"could not save invalid lines to {self.paths.corrupt}: {error}")
        if end >= 0:
            self.commit(end)
        count = len(kept) + sum(1 for line in lines if line == b"")
        if count:
            self.stats.add("corrupt", count)
            self.stats.warn_once(
                "corrupt",
                "trace_telemetry moved invalid queue line(s) to %s (logged once)",
                self.paths.corrupt,
            )

    # -- upkeep -------------------------------------------------------------------------

    def maintain(self, max_bytes: int) -> None:
        """Reclaim the consumed head, enforce ``max_queue_bytes``, store pending drop counts."""
        fd = self._read_fd
        if fd >= 0:
            size = os.fstat(fd).st_size
            head = self.head
            if max_bytes and size > max_bytes:
                self.compactor.trim()
                self._after_compaction()
            elif (
                (head and head >= size)
                or (head >= COMPACT_MIN_BYTES and 2 * head >= size)
                or (size > head and last_line_end(fd, head) == head)
            ):
                if self.compactor.compact():
                    self._after_compaction()
            else:
                self.compactor.remove_leftover()
        pending = self.stats.take_pending()
        if pending and not self.control.add_drops(pending, timeout=self.compactor.lock_wait):
            self.stats.restore_pending(pending)

    def _after_compaction(self) -> None:
        """Follow the new ``Q`` and copy its head to ``Q.offset`` at once."""
        self.sync()
        with self.control.shared() as cfd:
            state = _control.read_state(cfd)
        if state is not None:
            with contextlib.suppress(OSError):
                _control.write_state(self._state_fd, state, 0)
