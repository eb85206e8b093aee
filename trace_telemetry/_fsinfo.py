"""Which filesystem holds the queue, and a warning where ``flock`` is not local.

The queue's safety rests on ``flock`` between processes of one machine and
on ``rename`` replacing a file atomically. Network and user-space
filesystems weaken one or both: on NFS, ``flock`` is emulated with POSIX
record locks (a second descriptor of the same process upgrades instead of
waiting, and closing any descriptor drops them all); SMB/CIFS, 9p and FUSE
filesystems vary. Python has no ``statfs``, so the type is read from
``/proc/self/mountinfo`` where it exists; elsewhere nothing is said. See
``docs/delivery.md`` ("Filesystems").
"""

from __future__ import annotations

import os
from typing import List, Optional, Tuple

from ._stats import Stats

__all__ = ["UNSUPPORTED", "filesystem_of", "warn_if_unsupported"]

#: Filesystem types whose locking or rename semantics the queue cannot rely on.
UNSUPPORTED = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "v9fs", "vboxsf", "afs", "ncpfs", "virtiofs"}
)


def _mounts(text: str) -> List[Tuple[str, str]]:
    """``(mount point, filesystem type)`` pairs from ``/proc/self/mountinfo`` text."""
    mounts = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields = left.split()
        kinds = right.split()
        if len(fields) >= 5 and kinds:
            point = fields[4].replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")
            mounts.append((point, kinds[0]))
    return mounts


def filesystem_of(path: str, mountinfo: str = "/proc/self/mountinfo") -> Optional[str]:
    """The type of the filesystem holding ``path`` (the longest mount point that contains it)."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as handle:
            mounts = _mounts(handle.read())
    except OSError:
        return None
    folder = os.path.dirname(os.path.realpath(path))
    best: Optional[Tuple[str, str]] = None
    for point, kind in mounts:
        inside = folder == point or folder.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) > len(best[0])):
            best = (point, kind)
    return best[1] if best is not None else None


def warn_if_unsupported(path: str, stats: Stats, mountinfo: str = "/proc/self/mountinfo") -> None:
    """Log once if ``path`` lies on a filesystem whose locks the queue cannot trust."""
    kind = filesystem_of(path, mountinfo)
    if kind is None:
        return
    if kind in UNSUPPORTED or kind.startswith("fuse"):
        stats.warn_once(
            f"filesystem:{kind}",
            "trace_telemetry: the queue %s is on a %s filesystem, whose file locks are not "
            "reliable between processes; keep queue_path on a local disk (see docs/delivery.md)",
            path,
            kind,
        )
