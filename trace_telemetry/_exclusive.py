"""This process's exclusive side of ``Q.lock``: compaction, trimming, commits, drop counts.

Appenders hold ``Q.lock`` shared through their own descriptor; everything
that changes what ``Q.lock`` holds takes it exclusively through this one.
See ``docs/delivery.md`` ("How it is safe").
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import time
from typing import Dict, Iterator, Optional

from . import _fileio
from ._control import (
    INTENT,
    NO_INTENT,
    add_drops_locked,
    initialize,
    read_generation,
)

__all__ = ["SHARED_WAIT", "Control"]

#: The longest the sender waits for ``Q.lock`` shared.
SHARED_WAIT = 2.0


class Control:
    """This process's own descriptor of ``Q.lock``, for work that excludes appenders.

    Compaction, trimming, commits and drop counts take its ``flock``
    exclusively; appenders hold it shared (through their own descriptor)
    around each ``write()``. A ``flock`` belongs to the open file
    description, so this descriptor is never the appenders' one, and a
    thread lock serialises its users within the process.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        #: The thread inside :meth:`exclusive` or :meth:`shared`: a signal
        #: handler that flushes runs on the thread it interrupted, and must
        #: neither wait for that thread nor lock the same descriptor again.
        self._owner = 0
        self._fd = -1

    def _descriptor(self) -> int:
        if self._fd < 0:
            self._fd = _fileio.open_private(self.path, os.O_RDWR)
        return self._fd

    @contextlib.contextmanager
    def exclusive(self, timeout: Optional[float] = None) -> Iterator[Optional[int]]:
        """Hold ``Q.lock`` exclusively: yields its descriptor, or None on timeout.

        While waiting, the intent is published so appenders step aside. A
        ``Q.lock`` that is short or damaged is rebuilt (see :func:`initialize`).
        """
        if self._owner == threading.get_ident():  # re-entered from a signal handler
            yield None
            return
        with self._lock:
            self._owner = threading.get_ident()
            try:
                fd = self._acquire(timeout, shared=False)
                if fd < 0:
                    yield None
                    return
                try:
                    if not read_generation(fd):  # new, truncated or scribbled on
                        initialize(fd)
                    yield fd
                finally:
                    _fileio.unlock(fd)
            finally:
                self._owner = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[int]:
        """Hold ``Q.lock`` shared: state and generation can be read, not changed.

        Raises:
            OSError: not had within :data:`SHARED_WAIT` (a process stopped while
                holding it exclusively); the sender's drain then ends, its
                events stay queued.
        """
        if self._owner == threading.get_ident():  # re-entered from a signal handler
            raise OSError(errno.EDEADLK, "Q.lock is held by the code this signal interrupted")
        with self._lock:
            self._owner = threading.get_ident()
            try:
                fd = self._acquire(SHARED_WAIT, shared=True)
                if fd < 0:
                    raise OSError(
                        errno.ETIMEDOUT, "Q.lock held by a process that does not release it"
                    )
                try:
                    yield fd
                finally:
                    _fileio.unlock(fd)
            finally:
                self._owner = 0

    def peek_generation(self) -> bytes:
        """The generation, read without a lock (see ``Consumer._same_generation``)."""
        with self._lock:
            try:
                return read_generation(self._descriptor())
            except OSError:
                return b""

    def held_here(self) -> bool:
        """Is this very thread inside :meth:`exclusive` or :meth:`shared` (a signal handler)?"""
        return self._owner == threading.get_ident()

    def _acquire(self, timeout: Optional[float], shared: bool) -> int:
        """Lock the ``Q.lock`` that is at the path now; -1 on timeout.

        A ``Q.lock`` deleted or replaced by hand is noticed here (the locked
        file must be the one at the path) and the lock is taken on the new one.
        """
        for _ in range(5):
            fd = self._descriptor()
            if shared:
                if not _fileio.lock_shared(fd, timeout):
                    return -1
            # The intent is published only when the lock is busy: the
            # common, uncontended case costs one system call.
            elif not _fileio.lock_exclusive(fd, 0):
                if timeout == 0:
                    return -1
                _set_intent(fd, True)
                try:
                    if not _fileio.lock_exclusive(fd, timeout):
                        return -1
                finally:
                    _set_intent(fd, False)
            if _fileio.same_file(fd, self.path):
                return fd
            _fileio.unlock(fd)
            self._close()
        return -1  # pragma: no cover - a hand replacing the file as fast as we lock

    def add_drops(self, drops: Dict[str, int], timeout: float) -> bool:
        """Add ``drops`` to the shared counts; False if the lock was not had in time."""
        with self.exclusive(timeout) as fd:
            if fd is None:
                return False
            add_drops_locked(fd, drops)
            return True

    def _close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = -1

    def close(self) -> None:
        with self._lock:
            self._close()

    def forget(self) -> None:
        """In a forked child: close without unlocking (the lock is the parent's)."""
        self._lock = threading.Lock()
        self._owner = 0
        self._close()


def _set_intent(fd: int, waiting: bool) -> None:
    value = b"%020d" % int(time.time() * 1e6) if waiting else NO_INTENT
    with contextlib.suppress(OSError):
        os.pwrite(fd, value, INTENT.start)
