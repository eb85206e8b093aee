"""What ``Q.lock`` holds: the compaction generation and a ring of moves.

Appenders write to the queue file without a lock, so compaction has to tell
them two things: that it happened (the *generation*, a counter bumped before
each compaction) and how far it copied each file it replaced (the *moves*,
the last 64 ``(inode, copied end)`` pairs). Both live in ``Q.lock``, mapped
shared into every process, so an appender reads the generation with a memory
load instead of a system call.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Optional

__all__ = ["GENERATION", "SHARED_GENERATION", "MoveLog"]

_SIZE = 4096
_COUNT = struct.Struct("<Q")  # at offset 0: moves recorded so far
_MOVE = struct.Struct("<QQ")  # then a ring of (inode, copied end)
_MOVES = 64
#: Where the generation is in the mapping (appenders slice it directly).
GENERATION = slice(2048, 2056)

#: Whether an appender may check the generation in shared memory after its
#: ``write()`` instead of calling ``fstat()``. Sound where a locked
#: instruction orders every earlier store before every later load (x86):
#: the kernel takes the inode lock inside both ``write()`` and the
#: compactor's ``fchmod()``, so either the compactor's size check sees the
#: appended line, or the appender's later load sees the new generation.
#: Other CPUs do not promise that ordering, so appenders there use ``fstat``.
SHARED_GENERATION = hasattr(os, "uname") and os.uname().machine.lower() in {
    "x86_64",
    "amd64",
    "i386",
    "i686",
}


class MoveLog:
    """``Q.lock``, mapped.

    Args:
        fd: an open, writable descriptor of ``Q.lock``. The file is grown to
            one page if it is shorter; it never shrinks, so a mapping of it
            stays valid.
    """

    def __init__(self, fd: int) -> None:
        if os.fstat(fd).st_size < _SIZE:
            os.ftruncate(fd, _SIZE)
        self.map = mmap.mmap(fd, _SIZE)

    def generation(self) -> bytes:
        """The current generation, as the bytes appenders compare."""
        return self.map[GENERATION]

    def bump(self) -> None:
        """Announce a compaction (or a queue file replaced by hand)."""
        (value,) = _COUNT.unpack(self.map[GENERATION])
        self.map[GENERATION] = _COUNT.pack(value + 1)

    def record(self, inode: int, copied_end: int) -> None:
        """Remember that the file ``inode`` was copied up to ``copied_end``.

        Called under ``Q.lock``'s exclusive lock, like :meth:`copied_end`.
        """
        (count,) = _COUNT.unpack_from(self.map, 0)
        offset = _COUNT.size + (count % _MOVES) * _MOVE.size
        self.map[offset : offset + _MOVE.size] = _MOVE.pack(inode, copied_end)
        self.map[: _COUNT.size] = _COUNT.pack(count + 1)

    def copied_end(self, inode: int) -> Optional[int]:
        """How far the newest compaction of ``inode`` copied it; None if unknown."""
        (count,) = _COUNT.unpack_from(self.map, 0)
        for back in range(min(count, _MOVES)):
            offset = _COUNT.size + ((count - 1 - back) % _MOVES) * _MOVE.size
            moved_inode, copied = _MOVE.unpack_from(self.map, offset)
            if moved_inode == inode:
                return int(copied)
        return None

    def close(self) -> None:
        self.map.close()
