"""``Q.lock``'s layout: the state record, the drop counts, and damage done to them."""

from __future__ import annotations

import os
from pathlib import Path

from trace_telemetry import _control
from trace_telemetry._control import State


def open_control(tmp_path: Path) -> int:
    fd = os.open(tmp_path / "q.lock", os.O_RDWR | os.O_CREAT, 0o600)
    _control.initialize(fd)
    return fd


def test_a_new_file_is_written_whole_with_a_random_generation(tmp_path: Path) -> None:
    fd = open_control(tmp_path)
    first = _control.read_generation(fd)
    assert _control.valid_generation(first)
    assert os.fstat(fd).st_size == _control.CONTROL_SIZE
    assert _control.new_generation(fd) != first
    os.close(fd)


def test_the_state_round_trips_and_damage_reads_as_none(tmp_path: Path) -> None:
    fd = open_control(tmp_path)
    state = State(7, 1234, "00ff00ff00ff00ff", 4096, 99, "-", 10)
    _control.write_state(fd, state)
    assert state == _control.read_state(fd)
    os.pwrite(fd, b"9", 70)  # one digit changed by hand: the checksum catches it
    assert _control.read_state(fd) is None
    os.close(fd)


def test_drop_counts_add_up_and_overflow_into_other(tmp_path: Path) -> None:
    fd = open_control(tmp_path)
    _control.add_drops_locked(fd, {"disk_full": 2})
    _control.add_drops_locked(fd, {"disk_full": 3, "queue_full": 10})
    assert {"disk_full": 5, "queue_full": 10} == _control.read_drops(fd)
    many = {f"reason_{index:03d}_with_a_long_name": 1 for index in range(60)}
    _control.add_drops_locked(fd, many)
    drops = _control.read_drops(fd)
    assert 60 + 15 == sum(drops.values())
    assert "other" in drops
    os.close(fd)


def test_a_truncated_file_is_rebuilt_keeping_what_is_readable(tmp_path: Path) -> None:
    fd = open_control(tmp_path)
    _control.write_state(fd, State(1, 5, "-", 0))
    _control.add_drops_locked(fd, {"io_error": 4})
    os.pwrite(fd, b"x" * 32, 0)  # the generation scribbled on
    assert b"" == _control.read_generation(fd)
    _control.initialize(fd)
    assert _control.valid_generation(_control.read_generation(fd))
    assert State(1, 5, "-", 0) == _control.read_state(fd)
    assert {"io_error": 4} == _control.read_drops(fd)
    os.close(fd)


def test_the_fingerprint_is_the_first_line(tmp_path: Path) -> None:
    path = tmp_path / "q"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    assert _control.NO_FINGERPRINT == _control.fingerprint(fd)
    os.write(fd, b'{"id":"a"}\n')
    first = _control.fingerprint(fd)
    os.write(fd, b'{"id":"b"}\n')
    assert first == _control.fingerprint(fd)  # later lines do not change it
    os.close(fd)
    path.write_bytes(b'{"id":"c"}\n')
    fd = os.open(path, os.O_RDONLY)
    assert first != _control.fingerprint(fd)
    os.close(fd)
