"""What ``Q.lock`` and ``Q.offset`` hold: the generation, the head, the drop counts.

``Q.lock`` is a 1 KiB text file, written whole when it is created so that
later updates overwrite bytes already on disk (they still work on a full
disk). It holds three things:

* the *generation* (bytes 0-31): 32 random hex digits, replaced whenever the
  content of ``Q`` is replaced (a compaction's rename, an emptying in place).
  Appenders compare it, under their shared lock, with the one their open file
  belongs to. It is random, not a count, so a truncated or recreated
  ``Q.lock`` can never show an old value again.
* the *intent* (bytes 40-59): when a process waits for the exclusive lock,
  the time it started waiting. Linux ``flock`` does not prefer writers, so
  appenders that keep the shared lock held in turn could starve a waiting
  compaction or commit; appenders that see a fresh intent step aside for a
  moment (see ``_append``). A courtesy, not a lock: an intent older than a
  second (its writer died) is ignored.
* the *state* (bytes 64-191): the head of the queue, see :class:`State`.
* the *drop counts* (bytes 256-1023): ``reason count`` lines, what every
  process sharing the queue dropped, for ``trace-telemetry status``.

``Q.offset`` holds a copy of the state (written by the sender after each
commit), so that deleting or truncating either file by hand does not rewind
the head. Every write here happens under an exclusive ``flock`` of
``Q.lock``, except the copy in ``Q.offset``, which only the holder of the
sender lock writes. See ``docs/delivery.md``.
"""

from __future__ import annotations

import os
import time
import zlib
from typing import Dict, Iterable, NamedTuple, Optional

__all__ = [
    "CONTROL_SIZE",
    "GENERATION_SIZE",
    "HEADER_SIZE",
    "INTENT",
    "NO_FINGERPRINT",
    "NO_INTENT",
    "QueuePaths",
    "State",
    "fingerprint",
    "head_of",
    "initialize",
    "new_generation",
    "read_drops",
    "read_generation",
    "read_state",
    "valid_generation",
    "write_drops",
    "write_state",
]

CONTROL_SIZE = 1024
GENERATION_SIZE = 32
#: Appenders read the generation and the intent with one ``pread`` of this size.
HEADER_SIZE = 60
INTENT = slice(40, 60)
NO_INTENT = b" " * 20
#: An intent older than this (its writer died or gave up) is ignored.
INTENT_SECONDS = 1.0
_STATE_AT = 64
_STATE_SIZE = 128
_DROPS_AT = 256
_DROPS_SIZE = CONTROL_SIZE - _DROPS_AT
_HEX = frozenset(b"0123456789abcdef")
#: Fingerprint of a file with no complete first line.
NO_FINGERPRINT = "-"


class State(NamedTuple):
    """The head of the queue file ``inode``, identified beyond its inode number.

    Attributes:
        seq: grows with every write; of two copies, the larger one is newer.
        inode: the queue file the head belongs to.
        fingerprint: a hash of that file's first line (see :func:`fingerprint`).
            Inode numbers are reused at once on ext4, so a file deleted and
            recreated by hand can have the same one; its first line (which
            holds a random event id) differs.
        offset: where the unconsumed lines start.
        origin_inode, origin_fingerprint, origin_offset: the file this one was
            copied from by a compaction, and the offset there that is offset 0
            here. A sender whose batch was in flight across a compaction
            translates its commit with them.
    """

    seq: int
    inode: int
    fingerprint: str
    offset: int
    origin_inode: int = 0
    origin_fingerprint: str = NO_FINGERPRINT
    origin_offset: int = 0


def fingerprint(fd: int) -> str:
    """A hash of the first line of the file (at most its first 64 bytes).

    Stable once the file holds a complete line or 64 bytes, which is always
    the case when a state with a non-zero offset is written for it.
    """
    first = os.pread(fd, 64, 0)
    newline = first.find(b"\n")
    if newline >= 0:
        first = first[: newline + 1]
    elif len(first) < 64:
        return NO_FINGERPRINT
    return f"{zlib.crc32(first):08x}{zlib.adler32(first):08x}"  # a name, not a secret


def valid_generation(value: bytes) -> bool:
    return len(value) == GENERATION_SIZE and set(value) <= _HEX


def read_generation(fd: int) -> bytes:
    """The generation, or ``b""`` when ``Q.lock`` was truncated or scribbled on."""
    value = os.pread(fd, GENERATION_SIZE, 0)
    return value if valid_generation(value) else b""


def new_generation(fd: int) -> bytes:
    """Write and return a fresh random generation (under the exclusive lock)."""
    value = os.urandom(GENERATION_SIZE // 2).hex().encode("ascii")
    _pwrite_all(fd, value, 0)
    return value


def initialize(fd: int) -> None:
    """Give a new, short or damaged ``Q.lock`` its full layout (under the exclusive lock).

    Keeps a readable state and readable drop counts; writes the whole 1 KiB
    so that later updates never need new disk blocks.
    """
    if os.fstat(fd).st_size >= CONTROL_SIZE and read_generation(fd):
        return
    state = read_state(fd, _STATE_AT)
    drops = read_drops(fd)
    blank = bytearray(b" " * CONTROL_SIZE)
    blank[GENERATION_SIZE] = blank[_STATE_AT - 1] = blank[CONTROL_SIZE - 1] = ord("\n")
    _pwrite_all(fd, bytes(blank), 0)
    new_generation(fd)
    if state is not None:
        write_state(fd, state)
    if drops:
        write_drops(fd, drops)


def intent_is_fresh(header: bytes) -> bool:
    """Does ``header`` (the first bytes of ``Q.lock``) show a fresh wish for the exclusive lock?"""
    raw = header[INTENT]
    if raw == NO_INTENT or not raw.strip().isdigit():
        return False
    return abs(time.time() - int(raw) / 1e6) < INTENT_SECONDS


def _encode_state(state: State) -> bytes:
    body = b"S1 %d %d %s %d %d %s %d" % (
        state.seq,
        state.inode,
        state.fingerprint.encode("ascii"),
        state.offset,
        state.origin_inode,
        state.origin_fingerprint.encode("ascii"),
        state.origin_offset,
    )
    record = b"%s %08x\n" % (body, zlib.crc32(body))
    return record.ljust(_STATE_SIZE - 1) + b"\n"


def read_state(fd: int, at: int = _STATE_AT) -> Optional[State]:
    """The state stored at ``at`` (``Q.lock``'s slot, or 0 in ``Q.offset``); None if unreadable."""
    try:
        raw = os.pread(fd, _STATE_SIZE, at)
    except OSError:
        return None
    line = raw.split(b"\n", 1)[0]
    body, _, checksum = line.rpartition(b" ")
    parts = body.split()
    if len(parts) != 8 or parts[0] != b"S1":
        return None
    try:
        if int(checksum, 16) != zlib.crc32(body):
            return None
        return State(
            int(parts[1]),
            int(parts[2]),
            parts[3].decode("ascii"),
            int(parts[4]),
            int(parts[5]),
            parts[6].decode("ascii"),
            int(parts[7]),
        )
    except ValueError:
        return None


def write_state(fd: int, state: State, at: int = _STATE_AT) -> None:
    _pwrite_all(fd, _encode_state(state), at)


def read_drops(fd: int) -> Dict[str, int]:
    """The drop counts of every process sharing the queue, by reason."""
    try:
        raw = os.pread(fd, _DROPS_SIZE, _DROPS_AT)
    except OSError:
        return {}
    drops: Dict[str, int] = {}
    for line in raw.split(b"\n"):
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            drops[parts[0].decode("ascii", "replace")] = int(parts[1])
    return drops


def write_drops(fd: int, drops: Dict[str, int]) -> None:
    """Store the counts; reasons that do not fit are summed under ``other``."""
    lines = []
    used = 1
    items = sorted(drops.items())
    for index, (reason, count) in enumerate(items):
        line = b"%s %d\n" % (reason.encode("ascii", "replace")[:40], count)
        if used + len(line) + 24 > _DROPS_SIZE and index < len(items) - 1:
            rest = sum(value for _, value in items[index:])
            line = b"other %d\n" % rest
            lines.append(line)
            break
        lines.append(line)
        used += len(line)
    data = b"".join(lines)[: _DROPS_SIZE - 1]
    _pwrite_all(fd, data.ljust(_DROPS_SIZE - 1) + b"\n", _DROPS_AT)


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    written = 0
    while written < len(data):
        step = os.pwrite(fd, data[written:], offset + written)
        if step <= 0:  # pragma: no cover - a regular file does not write short
            raise OSError("short write")
        written += step


class QueuePaths(NamedTuple):
    """The queue file ``Q`` and the files beside it (see ``docs/delivery.md``)."""

    queue: str
    state: str
    lock: str
    corrupt: str
    rejected: str
    compact: str

    @classmethod
    def beside(cls, path: str) -> "QueuePaths":
        """The files for ``path``, resolved once.

        A symlinked ``queue_path`` is followed here, once: compaction then
        replaces the real file, not the link, and the side files live beside
        the real file, so every process finds the same ones.
        """
        queue = os.path.realpath(os.path.abspath(path))
        return cls(
            queue,
            queue + ".offset",
            queue + ".lock",
            queue + ".corrupt",
            queue + ".rejected",
            queue + ".compact",
        )


def head_of(fd: int, states: Iterable[Optional[State]]) -> Optional[State]:
    """Of the stored copies of the state, the one that applies to the open file ``fd``.

    A copy applies when it names this inode and, past offset 0, this file's
    fingerprint, and its offset is a line boundary inside the file, unless
    another copy was derived from the content it describes (a compaction or
    an emptying in place names its origin: a file emptied in place keeps its
    inode, and garbage written by hand could give it the old first line). The head
    only moves forward within one file, so of two copies that apply the one
    further on is the newer. None when no copy applies: the head is then 0
    (a new file, one replaced by hand, or a compaction that died right after
    its rename: the new file starts where the old head was).
    """
    status = os.fstat(fd)
    best: Optional[State] = None
    first_line: Optional[str] = None
    copies = [state for state in states if state is not None]
    for state in copies:
        if state.inode != status.st_ino or state.offset > status.st_size:
            continue
        if any(_derived(other, state) for other in copies):
            continue  # the content it describes was emptied or copied since
        if state.offset:
            if first_line is None:
                first_line = fingerprint(fd)
            if state.fingerprint != first_line or os.pread(fd, 1, state.offset - 1) != b"\n":
                continue
        if best is None or state.offset > best.offset:
            best = state
    return best


def add_drops_locked(fd: int, drops: Dict[str, int]) -> None:
    """Add ``drops`` to the counts in ``Q.lock`` (its exclusive lock is held)."""
    merged = read_drops(fd)
    for reason, count in drops.items():
        merged[reason] = merged.get(reason, 0) + count
    write_drops(fd, merged)


def _derived(newer: State, older: State) -> bool:
    """Was ``newer`` written for content copied or emptied from what ``older`` describes?"""
    return (
        newer is not older
        and newer.origin_inode == older.inode
        and newer.origin_fingerprint == older.fingerprint
        and newer.seq != older.seq
        and older.fingerprint != NO_FINGERPRINT
    )
