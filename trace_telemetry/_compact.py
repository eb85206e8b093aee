"""Reclaiming the consumed head of ``Q``, and the oldest events past ``max_queue_bytes``.

Compaction copies the unconsumed lines to ``Q.compact`` and renames it over
``Q``. The copy runs *outside* ``Q.lock``'s exclusive lock, so ``track()``
never waits for it; the exclusive lock is held only to copy what was
appended meanwhile, rename, and publish a new generation and state. A queue
whose every line was consumed is instead emptied in place (``ftruncate``):
no copy, and it frees space even on a full disk.

``Q.compact`` is also the compaction lock: a compactor holds an ``flock``
on it, so two never copy at once, and a compactor killed mid-way leaves at
most that one file, which the next compactor (or sender) reuses or removes.

Crash safety, step by step (see ``docs/delivery.md``): the new generation is
written first (harmless alone), then the rename, then the state. A crash
after the rename leaves a state that does not apply to the new ``Q``, whose
head is then 0: exactly the old head, since the copy starts there.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
from typing import Optional, Tuple

from . import _control, _fileio
from ._control import NO_FINGERPRINT, QueuePaths, State
from ._exclusive import Control
from ._stats import Stats

__all__ = ["COMPACT_MIN_BYTES", "COPIED_MARK", "Compactor", "last_line_end"]

#: Consumed bytes worth reclaiming while events remain queued.
COMPACT_MIN_BYTES = 1 << 20
_CHUNK = 256 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class Compactor:
    """Compacts and trims one queue; used by the sender and by appenders over the cap.

    Args:
        paths: the queue's files.
        control: this process's exclusive descriptor of ``Q.lock``.
        stats: where drops and corrupt lines are counted.
        max_bytes: ``max_queue_bytes`` (0: unbounded).
        lock_wait: the longest wait for ``Q.lock``'s exclusive lock. Linux
            ``flock`` does not prefer writers, so busy appenders could make
            an unbounded wait long; a compaction that cannot get the lock
            gives up and is tried again later.
    """

    def __init__(
        self, paths: QueuePaths, control: Control, stats: Stats, max_bytes: int, lock_wait: float
    ) -> None:
        self.paths = paths
        self.control = control
        self.stats = stats
        self.max_bytes = max_bytes
        self.lock_wait = lock_wait

    # -- trimming ---------------------------------------------------------------

    def trim(self, urgent: bool = False) -> None:
        """Drop the oldest events until at most 90% of the cap remains, then compact.

        Args:
            urgent: the file is past 110% of the cap: if another compaction
                is running, wait for it (up to ``lock_wait``) and then compact
                again, instead of letting appends outrun it. This is the
                only time an append waits for a compaction.

        Needs no sender lock: a sender hung in a request must not let the
        queue grow past the cap. The head moves under ``Q.lock``'s exclusive
        lock, like every state write, so a sender's later commit cannot move
        it back (commits only move forward).
        """
        if not self.max_bytes:
            return
        dropped = 0
        with self.control.exclusive(self.lock_wait) as cfd:
            if cfd is None:
                return
            source = _open_queue(self.paths.queue)
            if source < 0:
                return
            try:
                state, head = self.head(cfd, source)
                size = os.fstat(source).st_size
                target = self.max_bytes * 9 // 10
                if size - head <= target:
                    moved = head > 0
                else:
                    boundary = _next_line_start(source, max(head, size - target))
                    dropped = _fileio.count_newlines(source, head, boundary)
                    write_head(cfd, source, state, boundary)
                    if dropped:
                        _control.add_drops_locked(cfd, {"queue_full": dropped})
                    moved = True
            finally:
                os.close(source)
        if dropped:  # logged outside the lock: a log handler may track (and append)
            self.stats.drop(
                "queue_full",
                dropped,
                detail=f"oldest events dropped to stay under max_queue_bytes={self.max_bytes}",
                shared=False,
            )
        if moved:
            self.compact(wait=self.lock_wait if urgent else 0.0)

    # -- compaction -------------------------------------------------------------

    def compact(self, wait: float = 0.0) -> bool:
        """Reclaim the consumed head; True if ``Q`` was replaced or emptied.

        Args:
            wait: how long to wait for a compaction already running (0: skip).
        """
        temp = self._lock_temp(wait)
        if temp < 0:
            return False  # another compaction runs
        try:
            _remove_leftovers(self.paths.queue)
            return self._compact(temp)
        finally:
            if _fileio.same_file(temp, self.paths.compact):  # not renamed: nothing to keep
                with contextlib.suppress(OSError):
                    os.unlink(self.paths.compact)
            os.close(temp)

    def remove_leftover(self) -> None:
        """Delete a ``Q.compact`` left by a compactor that was killed."""
        if not os.path.exists(self.paths.compact):
            return
        temp = self._lock_temp()
        if temp >= 0:
            with contextlib.suppress(OSError):
                os.unlink(self.paths.compact)
            os.close(temp)

    def head(self, cfd: int, source: int) -> Tuple[Optional[State], int]:
        """The state that applies to ``source`` (from ``Q.lock`` or ``Q.offset``) and its offset."""
        state = _control.head_of(source, (_control.read_state(cfd), _read_mirror(self.paths)))
        return state, state.offset if state is not None else 0

    def _lock_temp(self, wait: float = 0.0) -> int:
        for _ in range(3):
            try:
                fd = _fileio.open_private(self.paths.compact, os.O_RDWR | os.O_APPEND | _NOFOLLOW)
            except OSError as error:
                if error.errno != errno.ELOOP:
                    raise
                with contextlib.suppress(OSError):  # a symlink put there by hand: never follow it
                    os.unlink(self.paths.compact)
                continue
            if not _fileio.lock_exclusive(fd, timeout=wait):
                os.close(fd)
                return -1
            try:
                if os.stat(self.paths.compact).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)  # renamed over Q by the compactor we waited for: try again
        return -1

    def _compact(self, temp: int) -> bool:
        with self.control.exclusive(self.lock_wait) as cfd:
            if cfd is None:
                return False
            source = _open_queue(self.paths.queue)
            if source < 0:
                return False
            state, head = self.head(cfd, source)
            end = last_line_end(source, head)
            if end == head:  # everything consumed (perhaps but a torn tail)
                torn = self._empty_in_place(cfd, source, state, head)
                os.close(source)
                if torn:  # logged outside the lock: a log handler may track (and append)
                    self.stats.add("corrupt")
                    self.stats.warn_once(
                        "corrupt",
                        "trace_telemetry moved invalid queue line(s) to %s (logged once)",
                        self.paths.corrupt,
                    )
                return True
            generation = _control.read_generation(cfd)
        try:
            os.ftruncate(temp, 0)
            _fileio.copy_range(source, temp, head, end)  # outside the lock
            with self.control.exclusive(self.lock_wait) as cfd:
                if cfd is None or _control.read_generation(cfd) != generation:
                    return False
                if not _fileio.same_file(source, self.paths.queue):
                    return False  # replaced by hand meanwhile
                state, now = self.head(cfd, source)
                size = os.fstat(source).st_size
                _fileio.copy_range(source, temp, end, size)
                if size > end and os.pread(source, 1, size - 1) != b"\n":
                    _fileio.write_all(temp, b"\n")  # a torn line: its own (corrupt) line
                offset = max(0, now - head)
                old = os.fstat(source).st_ino
                new = State(
                    (state.seq if state else 0) + 1,
                    os.fstat(temp).st_ino,
                    _control.fingerprint(temp) if offset else NO_FINGERPRINT,
                    offset,
                    old,
                    _control.fingerprint(source),
                    head,
                )
                marker = _open_marker(self.paths.queue, source)
                _control.new_generation(cfd)
                os.replace(self.paths.compact, self.paths.queue)
                _control.write_state(cfd, new)
                _mark_copied(marker, source)
                return True
        finally:
            os.close(source)

    def _empty_in_place(self, cfd: int, source: int, state: Optional[State], head: int) -> bool:
        """Truncate a consumed ``Q`` to zero bytes; True if a torn tail went to ``Q.corrupt``."""
        size = os.fstat(source).st_size
        if size == 0:
            return False
        torn = size > head
        if torn:
            tail = os.pread(source, size - head, head)
            try:
                _fileio.append_private(self.paths.corrupt, tail + b"\n")
            except OSError as error:  # a full disk: the torn bytes are not worth more
                self.stats.error(f"could not save a torn line: {error}")
        inode = os.fstat(source).st_ino
        old_fingerprint = _control.fingerprint(source)
        _control.new_generation(cfd)
        writer = os.open(self.paths.queue, os.O_WRONLY | _fileio._CLOEXEC)
        try:
            os.ftruncate(writer, 0)
        finally:
            os.close(writer)
        seq = state.seq if state is not None else 0
        _control.write_state(
            cfd, State(seq + 1, inode, NO_FINGERPRINT, 0, inode, old_fingerprint, size)
        )
        return torn


def write_head(cfd: int, source: int, state: Optional[State], offset: int) -> State:
    """Store ``offset`` as the head of ``source`` in ``Q.lock`` (exclusive lock held)."""
    new = State(
        (state.seq if state is not None else 0) + 1,
        os.fstat(source).st_ino,
        _control.fingerprint(source) if offset else NO_FINGERPRINT,
        offset,
        *(state[4:] if state is not None else (0, NO_FINGERPRINT, 0)),
    )
    _control.write_state(cfd, new)
    return new


#: Appended to a file a compaction replaced: what was written to it before was copied.
COPIED_MARK = b"#copied\n"


def _open_marker(path: str, source: int) -> int:
    """A writable descriptor of ``source`` (still at ``path``), or -1."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | _fileio._CLOEXEC)
    except OSError:
        return -1
    if os.fstat(fd).st_ino != os.fstat(source).st_ino:
        os.close(fd)
        return -1
    return fd


def _mark_copied(fd: int, source: int) -> None:
    """Mark a file a compaction replaced (exclusive lock held), for appenders that had it open.

    An appender whose file is no longer ``Q`` when the generation changes
    finds this mark at its end if the compaction copied its lines; without
    it, the file was deleted by hand and the appender writes its unchecked
    lines again (see ``_append``). On failure (a full disk) they are
    written again: duplicates, never a loss.
    """
    if fd < 0:
        return
    try:
        size = os.fstat(source).st_size
        torn = size > 0 and os.pread(source, 1, size - 1) != b"\n"
        # After a torn tail, on a line of its own: a sender still reading
        # this file ends the torn line where the copy did, then stops.
        os.write(fd, b"\n" + COPIED_MARK if torn else COPIED_MARK)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_mirror(paths: QueuePaths) -> Optional[State]:
    try:
        fd = os.open(paths.state, os.O_RDONLY | _fileio._CLOEXEC)
    except OSError:
        return None
    try:
        return _control.read_state(fd, 0)
    finally:
        os.close(fd)


def _open_queue(path: str) -> int:
    try:
        return os.open(path, os.O_RDONLY | _fileio._CLOEXEC)
    except FileNotFoundError:
        return -1


def _remove_leftovers(queue: str) -> None:
    """Temporary files of older versions (``Q.compact-<pid>``): no process owns them now."""
    for leftover in glob.glob(glob.escape(queue) + ".compact-*"):
        with contextlib.suppress(OSError):
            os.unlink(leftover)


def last_line_end(fd: int, start: int) -> int:
    """The end of the last complete line of ``fd`` (``start`` if none past it)."""
    position = os.fstat(fd).st_size
    while position > start:
        chunk_start = max(start, position - _CHUNK)
        chunk = os.pread(fd, position - chunk_start, chunk_start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return chunk_start + newline + 1
        position = chunk_start
    return start


def _next_line_start(fd: int, position: int) -> int:
    """The start of the first line at or after ``position`` (a line boundary stays)."""
    if position == 0 or os.pread(fd, 1, position - 1) == b"\n":
        return position
    while True:
        chunk = os.pread(fd, _CHUNK, position)
        if not chunk:
            return position
        newline = chunk.find(b"\n")
        if newline >= 0:
            return position + newline + 1
        position += len(chunk)
