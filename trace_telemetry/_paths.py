"""What the file system says about a queue path, before anything is written there."""

from __future__ import annotations

import errno
import os

from ._stats import Stats

__all__ = ["file_size", "queue_path_problem", "warn_if_unwritable"]


def warn_if_unwritable(path: str, stats: Stats) -> None:
    """Warn now, naming the path and the error, if a queue cannot be written at ``path``.

    Called when a client is built. Never raises: tracking keeps counting
    each event as an ``io_error`` drop. Leaves nothing behind: the nearest
    existing folder is probed with a temporary file, removed at once.
    See docs/configuration.md (Diagnostics).
    """
    problem = queue_path_problem(path)
    if problem:
        stats.warn_once(
            "queue_path",
            "trace_telemetry cannot write its queue at %s: %s; events tracked "
            "will be dropped and counted in stats()",
            path,
            problem,
        )


def file_size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def queue_path_problem(path: str) -> str:
    """Why ``path`` cannot hold a queue file, or ``""``.

    The queue needs its file and, next to it, its ``.offset`` and ``.lock``
    files: the nearest existing folder is probed with a temporary file.
    """
    try:
        if os.path.isdir(path):
            return f"[Errno {errno.EISDIR}] {os.strerror(errno.EISDIR)}"
        if os.path.exists(path):
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        folder = os.path.dirname(path)
        while not os.path.lexists(folder) and os.path.dirname(folder) != folder:
            folder = os.path.dirname(folder)
        if not os.path.isdir(folder):
            return f"[Errno {errno.ENOTDIR}] {os.strerror(errno.ENOTDIR)}: {folder!r}"
        import tempfile  # noqa: PLC0415 - only when a client is built, not at import

        fd, probe = tempfile.mkstemp(prefix=".trace-telemetry-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        return str(error)
    return ""
