"""Small, careful file primitives for the queue: private files, whole writes, locks.

Every file the SDK creates holds personal data, so it is created ``0600``
whatever the umask, with its parent folders created ``0700``.
"""

from __future__ import annotations

import os
import time
from typing import Optional

__all__ = [
    "HAS_FLOCK",
    "append_private",
    "copy_range",
    "count_newlines",
    "lock_exclusive",
    "lock_shared",
    "open_private",
    "same_file",
    "unlock",
    "write_all",
]

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt

#: ``flock`` semantics (locks per open file description, shared and exclusive).
HAS_FLOCK = fcntl is not None
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_BINARY = getattr(os, "O_BINARY", 0)


def open_private(path: str, flags: int) -> int:
    """Open ``path`` with ``flags``, creating it mode ``0600`` if missing.

    The mode is forced with ``fchmod`` when we created the file, because the
    ``mode`` argument of ``open`` is filtered by the process umask.
    """
    flags |= _CLOEXEC | _BINARY
    for _ in range(5):
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                return os.open(path, flags)
            except FileNotFoundError:
                continue  # deleted between the two calls: create it again
        except FileNotFoundError:
            # The folder is missing, or was missing: another thread or process
            # may be creating it right now, so create it if need be and retry.
            parent = os.path.dirname(path)
            if not parent:
                raise
            os.makedirs(parent, mode=0o700, exist_ok=True)
            continue
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)
        except OSError:
            pass
        return fd
    return os.open(path, flags | os.O_CREAT, 0o600)


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until everything is written (a regular file rarely writes short)."""
    written = os.write(fd, data)
    while written < len(data):
        step = os.write(fd, data[written:])
        if step <= 0:  # pragma: no cover - disk full without an error
            raise OSError("short write")
        written += step


def append_private(path: str, data: bytes) -> None:
    """Append ``data`` to a private side file (dead letters, corrupt lines)."""
    fd = open_private(path, os.O_WRONLY | os.O_APPEND)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def same_file(fd: int, path: str) -> bool:
    """Is the open file ``fd`` the one at ``path`` now (not deleted, replaced or renamed)?"""
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


def count_newlines(fd: int, start: int, end: int) -> int:
    """Newlines in bytes ``[start, end)`` of ``fd``, read 1 MiB at a time."""
    count = 0
    while start < end:
        chunk = os.pread(fd, min(1 << 20, end - start), start)
        if not chunk:
            break
        count += chunk.count(b"\n")
        start += len(chunk)
    return count


def copy_range(src: int, dst: int, start: int, end: int) -> None:
    """Copy bytes ``[start, end)`` of ``src`` to the current end of ``dst``."""
    position = start
    while position < end:
        chunk = os.pread(src, min(1 << 20, end - position), position)
        if not chunk:
            break
        write_all(dst, chunk)
        position += len(chunk)


if fcntl is not None:

    def _flock(fd: int, mode: int, timeout: Optional[float]) -> bool:
        if timeout is None:
            fcntl.flock(fd, mode)
            return True
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                time.sleep(min(delay, remaining))
                delay = min(delay * 2, 0.05)

    def lock_shared(fd: int, timeout: Optional[float] = None) -> bool:
        """Take a shared lock; ``timeout=0`` tries once, ``None`` waits forever."""
        return _flock(fd, fcntl.LOCK_SH, timeout)

    def lock_exclusive(fd: int, timeout: Optional[float] = None) -> bool:
        """Take an exclusive lock; ``timeout=0`` tries once, ``None`` waits forever."""
        return _flock(fd, fcntl.LOCK_EX, timeout)

    def unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)

else:  # pragma: no cover - Windows: one byte lock, shared behaves as exclusive

    def _locking(fd: int, mode: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, mode, 1)

    def lock_shared(fd: int, timeout: Optional[float] = None) -> bool:
        return lock_exclusive(fd, timeout)

    def lock_exclusive(fd: int, timeout: Optional[float] = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                _locking(fd, msvcrt.LK_NBLCK)
                return True
            except OSError:
                if deadline is not None and time.monotonic() >= deadline:
                    return False
                time.sleep(0.01)

    def unlock(fd: int) -> None:
        _locking(fd, msvcrt.LK_UNLCK)
