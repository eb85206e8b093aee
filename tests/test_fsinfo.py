"""Filesystem detection from ``/proc/self/mountinfo``: a warning where locks are not local."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from trace_telemetry._fsinfo import filesystem_of, warn_if_unsupported
from trace_telemetry._stats import Stats

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
40 22 0:35 / /mnt/share rw,relatime shared:20 - nfs4 server:/export rw,vers=4.2
41 22 0:36 / /mnt/with\\040space rw - cifs //server/share rw
42 22 0:37 / /home/me/.cache/fuse rw - fuse.sshfs me@host: rw
"""


@pytest.fixture
def mountinfo(tmp_path: Path) -> str:
    path = tmp_path / "mountinfo"
    path.write_text(MOUNTINFO)
    return str(path)


def test_the_longest_mount_point_wins(mountinfo: str) -> None:
    assert "ext4" == filesystem_of("/var/lib/app/q.ndjson", mountinfo)
    assert "nfs4" == filesystem_of("/mnt/share/app/q.ndjson", mountinfo)
    assert "cifs" == filesystem_of("/mnt/with space/q.ndjson", mountinfo)
    assert "ext4" == filesystem_of("/mnt/shared/q.ndjson", mountinfo)  # a prefix is not a folder


@pytest.mark.parametrize(
    ("path", "warned"),
    [
        ("/mnt/share/q.ndjson", True),
        ("/mnt/with space/q.ndjson", True),
        ("/home/me/.cache/fuse/q.ndjson", True),
        ("/srv/q.ndjson", False),
    ],
)
def test_network_and_user_space_filesystems_are_warned_about_once(
    mountinfo: str, path: str, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    stats = Stats()
    with caplog.at_level(logging.WARNING, logger="trace_telemetry"):
        warn_if_unsupported(path, stats, mountinfo)
        warn_if_unsupported(path, stats, mountinfo)
    messages = [r.getMessage() for r in caplog.records if "file locks" in r.getMessage()]
    assert len(messages) == (1 if warned else 0)


def test_the_real_machine_is_read(tmp_path: Path) -> None:
    assert filesystem_of(str(tmp_path / "q.ndjson")) is not None  # /proc exists here
