"""The on-disk queue: one NDJSON file, shared by threads and processes.

Layout beside ``queue_path`` (``Q``):

``Q``
    The events, one JSON object per line, appended with ``O_APPEND`` by a
    single ``write()`` per event. Readable with ``cat`` and ``jq``.
``Q.offset``
    One line ``inode offset lines next_inode dropped``: how far the head of
    ``Q`` has been consumed. An ``flock`` on it is the *sender lock*: whoever
    holds it is the only process reading, committing or compacting the queue.
``Q.lock``
    Compaction holds an exclusive ``flock`` on it; appenders take it only on
    their slow paths. Its content (see ``_movelog``) is the compaction
    generation and a ring of *moves*: for each compacted file, its inode and
    how far it was copied.
``Q.corrupt``, ``Q.rejected``
    Lines that are not valid events, and events the server refused.

Why it is safe: an event is in ``Q`` once ``write()`` returned, so it
survives ``kill -9``. The offset only moves forward after a 2xx or a write to
a side file, so a crash re-sends at most one batch.

Appends take no cross-process lock: ``write()``, then a check. Compaction
bumps the generation, then *seals* the old file (``fchmod`` adds the owner's
execute bit). The kernel runs ``fchmod`` and ``write`` under the same inode
lock, so a write either finished before the seal, and the copy includes it,
or the check after it sees the change: the generation, read from shared
memory (x86), or the seal and link count from ``fstat`` (other CPUs, and
every 64th append everywhere, which also catches a file deleted by hand).
An appender that sees a change waits for the compaction and looks up the
move record: if its line ended past the copied end, it appends
the line again to the new ``Q``. The record is written before the rename, and
a sealed file that is still ``Q`` (the compactor died) is simply unsealed,
so a crash at any step loses nothing. Compaction writes the unconsumed lines
to a new file and records its inode as ``next_inode`` before renaming it over
``Q``; whichever file a crash leaves behind, the state says where its head
is. ``flock`` locks die with their process, so a crash never leaves the
queue locked.

Why it is fast: appends never read and make two system calls (``write`` and
``lseek`` or ``fstat``); reading a
batch costs the batch; the consumed head is reclaimed by compaction only when
it is at least half the file (amortized O(1) per event); ``pending_count``
counts newlines incrementally.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
import sys
import threading
from typing import TYPE_CHECKING, Iterator, List, NamedTuple, Optional, Tuple

from . import _fileio
from ._movelog import GENERATION, SHARED_GENERATION, MoveLog
from ._stats import Stats

__all__ = ["FileQueue", "QueueState"]

if TYPE_CHECKING:
    from ._session import QueueSession

_CHUNK = 256 * 1024
#: The mode bit that marks a queue file as being compacted.
_SEALED = stat.S_IXUSR
#: Appends skip the cross-process lock where ``fchmod`` and ``flock`` exist.
_LOCK_FREE = hasattr(os, "fchmod") and _fileio.HAS_FLOCK
#: With the shared generation, every this many appends still call ``fstat``:
#: it also notices a queue file deleted by hand, which bumps no generation.
_FSTAT_EVERY = 64
#: Consumed bytes worth reclaiming even while events remain queued.
COMPACT_MIN_BYTES = 1 << 20
_FD_NAMES = (
    "_append_fd",
    "_lock_fd",
    "_exclusive_fd",
    "_state_fd",
    "_count_state_fd",
    "_read_fd",
    "_count_fd",
)


class QueueState(NamedTuple):
    """What ``Q.offset`` says: the head of the file with inode ``inode``.

    ``dropped`` counts the events ever dropped to respect ``max_queue_bytes``,
    so ``trace-telemetry status`` can report them from another process.
    """

    inode: int
    offset: int
    lines: int
    next_inode: int
    dropped: int = 0


class FileQueue:
    """Appends events and hands batches to the one sender of the queue.

    ``append`` and ``pending_count`` may be called from any thread. Reading,
    committing and compacting happen inside :meth:`session`, which holds the
    sender lock across threads and processes.
    """

    def __init__(self, path: str, max_bytes: int, stats: Stats, max_line: int) -> None:
        self.path = os.path.abspath(path)
        self.state_path = self.path + ".offset"
        self.lock_path = self.path + ".lock"
        self.corrupt_path = self.path + ".corrupt"
        self.rejected_path = self.path + ".rejected"
        self.max_bytes = max_bytes
        self.max_line = max(max_line * 2, 4 << 20)
        self.stats = stats
        self._init_process_state()

    def _init_process_state(self) -> None:
        self._pid = os.getpid()
        #: Lines this process appended (counted under the append lock), and
        #: appends that found their file compacted or replaced under them.
        self.appended = 0
        self.settled = 0
        self._append_lock = threading.Lock()
        self._session_lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._append_fd = -1
        #: The size of the queue file at our last append: the cap check of
        #: the lock-free path, which goes the locked way when near the cap.
        self._size = 0
        self._fast_limit = (self.max_bytes or sys.maxsize) if _LOCK_FREE else -1
        #: ``Q.lock`` mapped, the generation our append file belongs to, and
        #: the appends left before the next ``fstat`` check.
        self._moves: Optional[MoveLog] = None
        self._generation_map: Optional[mmap.mmap] = None
        self._generation = b""
        self._fstat_countdown = 0
        #: ``(end, length)`` of the appends since the last ``fstat``: what to
        #: write again if the file turns out to have been deleted by hand.
        self._unchecked: List[Tuple[int, int]] = []
        self._lock_fd = -1
        self._exclusive_fd = -1
        self._state_fd = -1
        self._count_state_fd = -1
        self._read_fd = -1
        self._read_inode = -1
        self._count_fd = -1
        self._count_inode = -1
        self._count_pos = 0
        self._count_lines = 0
        self._head = QueueState(0, 0, 0, 0, 0)

    # -- process lifecycle -------------------------------------------------

    def check_fork(self) -> None:
        """Start afresh in a forked child: own locks, own file descriptions.

        Inherited descriptors share ``flock`` locks with the parent, so they
        are closed (which does not release the parent's locks), never unlocked.
        """
        if self._pid == os.getpid():
            return
        self._close_descriptors(_FD_NAMES)
        self._close_move_log()
        self._init_process_state()

    def _close_descriptors(self, names: Tuple[str, ...]) -> None:
        for name in names:
            fd = getattr(self, name)
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
                setattr(self, name, -1)

    def close(self) -> None:
        """Close every descriptor; the queue reopens them on next use."""
        with self._append_lock, self._session_lock, self._count_lock:
            self._close_descriptors(_FD_NAMES)
            self._close_move_log()
            self._read_inode = self._count_inode = -1

    def _close_move_log(self) -> None:
        if self._moves is not None:
            self._moves.close()
        self._moves = self._generation_map = None
        self._generation = b""

    # -- appending (the track() path) --------------------------------------

    def append(self, line: bytes) -> bool:
        """Append one event line (ending in ``\\n``); False if it was dropped.

        The caller owns the fork check (the client makes it once per event,
        calling :meth:`check_fork`); checking here too would cost a second
        ``getpid`` on every ``track()``.
        """
        try:
            with self._append_lock:
                fd = self._append_fd
                if fd >= 0 and self._size + len(line) <= self._fast_limit:
                    written = os.write(fd, line)
                    if written != len(line):  # pragma: no cover - disk nearly full
                        _fileio.write_all(fd, line[written:])
                    generation_map = self._generation_map
                    if generation_map is not None and self._fstat_countdown:
                        self._fstat_countdown -= 1
                        if generation_map[GENERATION] == self._generation:
                            self._size = end = os.lseek(fd, 0, os.SEEK_CUR)
                            self._unchecked.append((end, len(line)))
                            self.appended += 1
                            return True
                    else:
                        status = os.fstat(fd)
                        self._size = status.st_size
                        if status.st_nlink and not status.st_mode & _SEALED:
                            # Keep the generation we hold: a compaction may have
                            # bumped it already without sealing yet, and noting
                            # the new one would hide that compaction from us.
                            self._checked(self._generation)
                            self.appended += 1
                            return True
                    self._settle(fd, line)
                    self.appended += 1
                    return True
                written_locked, size = self._append_locked(line, allow_over=False)
                if written_locked:
                    self.appended += 1
                    return True
            return self._append_over_cap(line, size)
        except OSError as error:
            self._reset_append_fds()
            self.stats.error(f"queue write failed: {error}")
            self.stats.drop("io_error", detail=f"{self.path}: {error.strerror or error}")
            return False

    def _current_generation(self) -> bytes:
        return self._moves.generation() if self._moves is not None else b""

    def _checked(self, generation: bytes) -> None:
        """Our append file is the live, unsealed ``Q`` of ``generation``.

        A new ``generation`` may only be noted under ``Q.lock`` (either
        mode), when no compaction is between its bump and its rename.
        """
        self._unchecked.clear()
        self._fstat_countdown = _FSTAT_EVERY
        self._generation = generation

    def _append_locked(self, line: bytes, allow_over: bool) -> Tuple[bool, int]:
        """The locked append: first use, near the cap, and where ``fchmod`` is missing."""
        fd = self._append_fd
        if fd < 0:
            fd = self._open_for_append()
        lock_fd = self._lock_fd
        _fileio.lock_shared(lock_fd)
        try:
            status = os.fstat(fd)
            if status.st_nlink == 0:  # compacted (or deleted) under us: reopen
                os.close(fd)
                self._append_fd = -1
                fd = self._open_append_file()
                status = os.fstat(fd)
            elif status.st_mode & _SEALED:  # a compactor died; none runs while we lock
                os.fchmod(fd, 0o600)
            self._checked(self._current_generation())
            size = status.st_size
            limit = self.max_bytes
            if limit and size + len(line) > (limit + limit // 4 if allow_over else limit):
                self._size = size
                return False, size
            _fileio.write_all(fd, line)
            self._size = size + len(line)
            return True, size
        finally:
            _fileio.unlock(lock_fd)

    def _settle(self, fd: int, line: bytes) -> None:
        """Make sure ``line``, just written to a file that may have moved, is queued.

        Waits for any compaction to end (its exclusive lock), then: if the
        file is still ``Q``, the line is in place (a compactor that died
        after sealing leaves the file sealed, so it is unsealed). Otherwise
        the move record says how far the file was copied; a line that ended
        past that point is appended again to the new ``Q``. A file with no
        record was deleted (or replaced) by hand: the line, and those appended
        to it since the last ``fstat``, are written again to the new ``Q``.
        """
        self.settled += 1
        end = os.lseek(fd, 0, os.SEEK_CUR)
        lock_fd = self._lock_fd
        _fileio.lock_exclusive(lock_fd)
        try:
            status = os.fstat(fd)  # after the compaction: its seal is there now
            inode = status.st_ino
            try:
                live = os.stat(self.path).st_ino == inode
            except FileNotFoundError:
                live = False
            if live:
                os.fchmod(fd, 0o600)
                self._checked(self._current_generation())
                return
            moves = self._move_log(lock_fd)
            # Only a sealed file was compacted. An unsealed one was deleted by
            # hand, and a move recorded for its inode number would be stale:
            # inode numbers are reused.
            copied = moves.copied_end(inode) if status.st_mode & _SEALED else None
            rescued = [] if copied is not None else self._read_back(fd, end)
            os.close(fd)
            self._append_fd = -1
            fd = self._open_append_file()
            for earlier in rescued:
                _fileio.write_all(fd, earlier)
            if copied is None or end > copied:
                _fileio.write_all(fd, line)
            self._size = os.fstat(fd).st_size
            self._checked(moves.generation())
        finally:
            _fileio.unlock(lock_fd)

    def _read_back(self, fd: int, current_end: int) -> List[bytes]:
        """Our appends since the last ``fstat``, read back from a deleted file."""
        lines = [
            os.pread(fd, length, end - length)
            for end, length in self._unchecked
            if end != current_end
        ]
        if lines:
            self.stats.warn_once(
                "queue_file_deleted",
                "trace_telemetry: %s was deleted while in use; %d event(s) appended "
                "to it were written again to the new file (logged once)",
                self.path,
                len(lines),
            )
        return lines

    def _move_log(self, fd: int) -> MoveLog:
        """``Q.lock`` mapped (once per process), from any open descriptor of it."""
        if self._moves is None:
            self._moves = MoveLog(fd)
            if SHARED_GENERATION:
                self._generation_map = self._moves.map
        return self._moves

    def _append_over_cap(self, line: bytes, size: int) -> bool:
        """Make room by dropping the oldest events; else overshoot a little."""
        if len(line) > self.max_bytes:
            self.stats.drop("event_larger_than_queue", detail="the event exceeds max_queue_bytes")
            return False
        if self._session_lock.acquire(blocking=False):
            try:
                if self._lock_sender(timeout=0):
                    try:
                        self._sync_head()
                        self._trim(room=len(line))
                    finally:
                        _fileio.unlock(self._state_fd)
            finally:
                self._session_lock.release()
        with self._append_lock:
            written, _ = self._append_locked(line, allow_over=True)
            if written:
                self.appended += 1
        if not written:
            self.stats.drop("queue_full", detail=f"queue over max_queue_bytes={self.max_bytes}")
        return written

    def _open_for_append(self) -> int:
        """Open the lock and queue files; repair a torn tail left by a crash.

        Under the exclusive lock, so the generation we note belongs to the
        file we open.
        """
        if self._lock_fd < 0:
            self._lock_fd = _fileio.open_private(self.lock_path, os.O_RDWR)
        _fileio.lock_exclusive(self._lock_fd)
        try:
            self._move_log(self._lock_fd)
            fd = self._open_append_file()
            self._repair_tail(fd)
            self._checked(self._current_generation())
        finally:
            _fileio.unlock(self._lock_fd)
        return fd

    def _open_append_file(self) -> int:
        self._append_fd = _fileio.open_private(self.path, os.O_RDWR | os.O_APPEND)
        return self._append_fd

    @staticmethod
    def _repair_tail(fd: int) -> None:
        """End a torn last line so the next event is not glued to it.

        Called under the exclusive lock. A lock-free append of another
        process can still be in flight and look torn for a moment (a write
        that crosses a page is visible page by page); the newline then lands
        after it as an empty line, which the reader skips.
        """
        size = os.fstat(fd).st_size
        if size and _pread_last_byte(fd, size) != b"\n":
            _fileio.write_all(fd, b"\n")

    def _reset_append_fds(self) -> None:
        with self._append_lock:
            self._close_descriptors(("_append_fd", "_lock_fd"))

    # -- counting ------------------------------------------------------------

    def pending_count(self) -> int:
        """Events not yet consumed: newlines after the committed head.

        Newlines are counted incrementally from where the last call stopped,
        so repeated calls cost only what was appended since.
        """
        if self._pid != os.getpid():
            self.check_fork()
        with self._count_lock:
            try:
                status = os.stat(self.path)
            except FileNotFoundError:
                return 0
            if status.st_ino != self._count_inode:
                if self._count_fd >= 0:
                    os.close(self._count_fd)
                    self._count_fd = -1
                self._count_fd = os.open(self.path, os.O_RDONLY | _fileio._CLOEXEC)
                self._count_inode = os.fstat(self._count_fd).st_ino
                self._count_pos = self._count_lines = 0
            size = os.fstat(self._count_fd).st_size
            while self._count_pos < size:
                chunk = os.pread(self._count_fd, 1 << 20, self._count_pos)
                if not chunk:
                    break
                self._count_lines += chunk.count(b"\n")
                self._count_pos += len(chunk)
            if self._count_state_fd < 0:
                self._count_state_fd = _fileio.open_private(self.state_path, os.O_RDWR)
            state = _read_state(self._count_state_fd)
            consumed = state.lines if state is not None and state.inode == self._count_inode else 0
            return max(0, self._count_lines - consumed)

    # -- the sender's side -----------------------------------------------------

    def session(self, timeout: float) -> "QueueSession":
        """Hold the sender lock for a ``with`` block (see :class:`QueueSession`)."""
        from ._session import QueueSession  # noqa: PLC0415 - the two modules need each other

        return QueueSession(self, timeout)

    def _lock_sender(self, timeout: float) -> bool:
        if self._state_fd < 0:
            self._state_fd = _fileio.open_private(self.state_path, os.O_RDWR)
        return _fileio.lock_exclusive(self._state_fd, timeout)

    def _sync_head(self) -> None:
        """Find the head of the current queue file from ``Q.offset``."""
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            if self._read_fd >= 0:
                self._announce_replaced()
            self._close_read()
            self._head = QueueState(0, 0, 0, 0, 0)
            return
        if inode != self._read_inode:
            if self._read_fd >= 0:
                self._announce_replaced()
            self._close_read()
            self._read_fd = os.open(self.path, os.O_RDONLY | _fileio._CLOEXEC)
            self._read_inode = inode = os.fstat(self._read_fd).st_ino
        state = _read_state(self._state_fd)
        size = os.fstat(self._read_fd).st_size
        dropped = state.dropped if state is not None else 0
        if state is not None and state.inode == inode and state.offset <= size:
            head = state._replace(next_inode=0)
            if head.offset and _pread_last_byte(self._read_fd, head.offset) != b"\n":
                head = QueueState(inode, 0, 0, 0, dropped)  # not a line boundary: re-read all
        else:  # a new file, or a compaction that crashed after its rename
            head = QueueState(inode, 0, 0, 0, dropped)
        if state != head:
            self._write_state(head)
        self._head = head

    def _announce_replaced(self) -> None:
        """The queue file changed, not by our compaction: appenders must look.

        Deleted or replaced by hand (or compacted by another process that
        held the sender lock since); appenders still writing to the old file
        re-append their next line to the new one.
        """
        self._move_log(self._sender_lock_fd()).bump()

    def _close_read(self) -> None:
        if self._read_fd >= 0:
            os.close(self._read_fd)
        self._read_fd = -1
        self._read_inode = -1

    def _write_state(self, state: QueueState) -> None:
        text = b"%20d %20d %20d %20d %20d\n" % state
        os.pwrite(self._state_fd, text, 0)
        self._head = state

    def _iter_lines(self, offset: int) -> Iterator[Tuple[Optional[bytes], int]]:
        """Complete lines from ``offset``: ``(line, end_offset)``.

        A line longer than ``max_line`` is streamed to ``Q.corrupt`` and
        yielded as ``(None, end)`` so memory stays bounded. An unterminated
        tail is not yielded.
        """
        fd = self._read_fd
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
                yield buffer[start:newline], position + newline + 1
                start = newline + 1
            buffer = buffer[start:]
            position += start
            if len(buffer) > self.max_line:
                end = self._move_long_line(position, buffer)
                if end < 0:
                    return
                yield None, end
                buffer = b""
                position = end

    def _move_long_line(self, position: int, head: bytes) -> int:
        """Copy an over-long line to ``Q.corrupt``; return its end, or -1 if unterminated."""
        scan = position + len(head)
        while True:
            chunk = os.pread(self._read_fd, _CHUNK, scan)
            if not chunk:
                return -1
            newline = chunk.find(b"\n")
            if newline >= 0:
                end = scan + newline + 1
                break
            scan += len(chunk)
        fd = _fileio.open_private(self.corrupt_path, os.O_WRONLY | os.O_APPEND)
        try:
            _fileio.copy_range(self._read_fd, fd, position, end)
        finally:
            os.close(fd)
        return end

    def _trim(self, room: int) -> None:
        """Drop the oldest events until the file is at most 90% of the cap minus ``room``."""
        if not self.max_bytes or self._read_fd < 0:
            return
        size = os.fstat(self._read_fd).st_size
        target = max(0, self.max_bytes * 9 // 10 - room)
        if size <= target and size + room <= self.max_bytes:
            return
        head = self._head
        start = max(head.offset, size - target)
        if start > head.offset:
            boundary = self._next_line_start(start - 1)
            dropped = self._count_newlines(head.offset, boundary)
            if dropped:
                self.stats.drop(
                    "queue_full",
                    dropped,
                    detail=f"oldest events dropped to stay under max_queue_bytes={self.max_bytes}",
                )
            self._write_state(
                head._replace(
                    offset=boundary, lines=head.lines + dropped, dropped=head.dropped + dropped
                )
            )
        self._compact()

    def _next_line_start(self, position: int) -> int:
        while True:
            chunk = os.pread(self._read_fd, _CHUNK, position)
            if not chunk:
                return position
            newline = chunk.find(b"\n")
            if newline >= 0:
                return position + newline + 1
            position += len(chunk)

    def _count_newlines(self, start: int, end: int) -> int:
        count = 0
        while start < end:
            chunk = os.pread(self._read_fd, min(1 << 20, end - start), start)
            if not chunk:
                break
            count += chunk.count(b"\n")
            start += len(chunk)
        return count

    def _compact(self) -> None:
        """Swap ``Q`` for a copy of its unconsumed lines, reclaiming the head.

        Seals the old file first (see the module docstring): an append that
        lands after the copied end is appended again by its writer. Only
        complete lines are copied; a partial last line is either a write in
        flight, which its writer will append again, or the remains of a crash.
        """
        temp = f"{self.path}.compact-{os.getpid()}"
        self._lock_appends()
        try:
            self._sync_head()
            head = self._head
            old_fd = self._read_fd
            if old_fd < 0:  # no queue file: nothing to compact
                return
            moves = self._move_log(self._exclusive_fd)
            moves.bump()  # before the seal: see the _movelog module
            if _LOCK_FREE:
                os.fchmod(old_fd, 0o700)  # the seal; waits for writes in flight
            renamed = False
            try:
                end = self._last_line_end(head.offset)
                moves.record(self._read_inode, end)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temp)
                fd = _fileio.open_private(temp, os.O_RDWR | os.O_APPEND)
                try:
                    _fileio.copy_range(old_fd, fd, head.offset, end)
                    new_inode = os.fstat(fd).st_ino
                    self._write_state(head._replace(next_inode=new_inode))
                    os.replace(temp, self.path)
                    renamed = True
                except BaseException:
                    os.close(fd)
                    raise
            finally:
                if not renamed and _LOCK_FREE:
                    with contextlib.suppress(OSError):
                        os.fchmod(old_fd, 0o600)
            self._close_read()
            self._read_fd = fd
            self._read_inode = new_inode
            self._write_state(QueueState(new_inode, 0, 0, 0, head.dropped))
        finally:
            _fileio.unlock(self._exclusive_fd)

    def _last_line_end(self, start: int) -> int:
        """The end of the last complete line of the read file (``start`` if none)."""
        position = os.fstat(self._read_fd).st_size
        while position > start:
            chunk_start = max(start, position - _CHUNK)
            chunk = os.pread(self._read_fd, position - chunk_start, chunk_start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                return chunk_start + newline + 1
            position = chunk_start
        return start

    def _lock_appends(self) -> None:
        """Exclude appenders of every process (session side only).

        Uses its own open file description: ``flock`` locks belong to the
        description, so sharing the appenders' one would let an appender's
        unlock release this lock.
        """
        _fileio.lock_exclusive(self._sender_lock_fd())

    def _sender_lock_fd(self) -> int:
        """The session side's own descriptor of ``Q.lock``, opened on first use."""
        if self._exclusive_fd < 0:
            self._exclusive_fd = _fileio.open_private(self.lock_path, os.O_RDWR)
        return self._exclusive_fd

    def _repair_unterminated_tail(self) -> None:
        self._lock_appends()
        try:
            fd = _fileio.open_private(self.path, os.O_RDWR | os.O_APPEND)
            try:
                if os.fstat(fd).st_ino == self._read_inode:
                    self._repair_tail(fd)
            finally:
                os.close(fd)
        finally:
            _fileio.unlock(self._exclusive_fd)


def _read_state(fd: int) -> Optional[QueueState]:
    """Parse ``Q.offset``; None when empty or unreadable."""
    try:
        fields = [int(part) for part in os.pread(fd, 128, 0).split()]
    except (OSError, ValueError):
        return None
    if len(fields) not in (4, 5):
        return None
    return QueueState(*fields)


def _pread_last_byte(fd: int, end: int) -> bytes:
    return os.pread(fd, 1, end - 1)
