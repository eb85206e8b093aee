"""What ``Q.lock`` holds: the compaction generation and a ring of moves.

Appenders write to the queue file without a lock, so compaction has to tell
them two things: that it happened (the *generation*, a counter bumped before
each compaction) and how far it copied each file it replaced (the *moves*,
the last 2047 ``(inode, copied end)`` pairs). Both live in ``Q.lock``, mapped
shared into every process, so an appender reads the generation with a memory
load instead of a system call.
"""

from __future__ import annotations

import mmap
import os
import struct
from typing import Optional

__all__ = ["GENERATION", "SHARED_GENERATION", "MoveLog"]

#: Both counters are unsigned 64-bit: moves recorded (offset 0), generation.
_U64 = struct.Struct("<Q")
#: Where the generation is in the mapping (appenders slice it directly).
GENERATION = slice(8, 16)
_MOVE = struct.Struct("<QQ")  # from offset 16: a ring of (inode, copied end)
_RING = 16
#: Room for this many moves: an appender stalled (descheduled, stopped)
#: through more compactions than this re-appends its line rather than risk
#: losing it, so at-least-once remains. Compactions come at most once per
#: send, so a ring this long spans minutes.
_MOVES = 2047
_SIZE = _RING + _MOVES * _MOVE.size

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
            32 KiB if it is shorter; it never shrinks, so a mapping of it
            stays valid.
    """

    def __init__(self, fd: int) -> None:
        if os.fstat(fd).st_size < _SIZE:
            os.ftruncate(fd, _SIZE)  # grown, never shrunk: mappings stay valid
        self.map = mmap.mmap(fd, _SIZE)

    def generation(self) -> bytes:
        """The current generation, as the bytes appenders compare."""
        return self.map[GENERATION]

    def bump(self) -> None:
        """Announce a compaction (or a queue file replaced by hand)."""
        (value,) = _U64.unpack(self.map[GENERATION])
        self.map[GENERATION] = _U64.pack(value + 1)

    def record(self, inode: int, copied_end: int) -> None:
        """Remember that the file ``inode`` was copied up to ``copied_end``.

        Called under ``Q.lock``'s exclusive lock, like :meth:`copied_end`.
        """
        (count,) = _U64.unpack_from(self.map, 0)
        offset = _RING + (count % _MOVES) * _MOVE.size
        self.map[offset : offset + _MOVE.size] = _MOVE.pack(inode, copied_end)
        self.map[: _U64.size] = _U64.pack(count + 1)

    def copied_end(self, inode: int) -> Optional[int]:
        """How far the newest compaction of ``inode`` copied it; None if unknown."""
        (count,) = _U64.unpack_from(self.map, 0)
        for back in range(min(count, _MOVES)):
            offset = _RING + ((count - 1 - back) % _MOVES) * _MOVE.size
            moved_inode, copied = _MOVE.unpack_from(self.map, offset)
            if moved_inode == inode:
                return int(copied)
        return None

    def close(self) -> None:
        self.map.close()
