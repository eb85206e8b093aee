"""The file queue on real files: corruption, torn tails, compaction, the cap, counting."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, List, Tuple

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from trace_telemetry import TelemetryClient, TelemetryOptions, _queue
from trace_telemetry._movelog import SHARED_GENERATION
from trace_telemetry._queue import COMPACT_MIN_BYTES, FileQueue
from trace_telemetry._receiver import Receiver
from trace_telemetry._stats import Stats
from trace_telemetry._validate import is_valid_event_line

from .conftest import Behaviour, popen_python, read_lines, run_python

MakeClient = Callable[..., TelemetryClient]


def side(queue_path: Path, suffix: str) -> Path:
    return Path(str(queue_path) + suffix)


class TestCorruptLines:
    def test_garbage_lines_move_to_corrupt_and_never_block_the_queue(
        self, make_client: MakeClient, receiver: Receiver, queue_path: Path
    ) -> None:
        client = make_client(endpoint_url=receiver.url, batch_size=5)
        with open(
            queue_path.parent.mkdir(parents=True, exist_ok=True) or queue_path, "wb"
        ) as handle:
            handle.write(b"garbage one\n" * 12)  # more than a whole batch of garbage at the head
            handle.write(b"\n{not json\n")  # a blank line is skipped, not "corrupt"
        client.track("ok", 1)
        with open(queue_path, "ab") as handle:
            handle.write(b'{"edited": "by hand"}\n')
        client.track("ok", 2)
        assert client.flush(timeout=10)
        assert [1, 2] == [e["data"] for e in receiver.events]
        corrupt = side(queue_path, ".corrupt").read_bytes().splitlines()
        assert 14 == len(corrupt)
        assert b"" not in corrupt
        assert b'{"edited": "by hand"}' == corrupt[-1]
        assert 14 == client.stats()["corrupt"]
        assert 0 == client.queued_count

    def test_a_torn_tail_is_repaired_so_the_next_event_is_not_glued(
        self, make_client: MakeClient, receiver: Receiver, queue_path: Path
    ) -> None:
        first = make_client()
        first.track("before", 1)
        first.close()
        with open(queue_path, "ab") as handle:
            handle.write(b'{"id":"abc","name":"torn"')  # a crash mid-write
        client = make_client(endpoint_url=receiver.url)
        client.track("after", 2)
        assert client.flush(timeout=10)
        assert [1, 2] == [e["data"] for e in receiver.events]
        assert [b'{"id":"abc","name":"torn"'] == side(
            queue_path, ".corrupt"
        ).read_bytes().splitlines()

    def test_a_torn_tail_left_while_the_process_runs_is_repaired_by_the_sender(
        self, make_client: MakeClient, receiver: Receiver, queue_path: Path
    ) -> None:
        client = make_client(endpoint_url=receiver.url)
        client.track("a", 1)
        with open(queue_path, "ab") as handle:
            handle.write(b'{"torn')
        assert client.flush(timeout=10)
        client.track("b", 2)
        assert client.flush(timeout=10)
        assert [1, 2] == [e["data"] for e in receiver.events]
        assert [b'{"torn'] == side(queue_path, ".corrupt").read_bytes().splitlines()

    def test_an_enormous_line_is_streamed_to_corrupt(
        self, make_client: MakeClient, receiver: Receiver, queue_path: Path
    ) -> None:
        client = make_client(endpoint_url=receiver.url, max_event_bytes=1024)
        queue_path.parent.mkdir(parents=True, exist_ok=True)
        queue_path.write_bytes(b"x" * (5 << 20) + b"\n")
        client.track("ok", 1)
        assert client.flush(timeout=20)
        assert [1] == [e["data"] for e in receiver.events]
        assert (5 << 20) + 1 == side(queue_path, ".corrupt").stat().st_size


class TestCompaction:
    def test_a_drained_queue_file_is_emptied(
        self, make_client: MakeClient, receiver: Receiver, queue_path: Path
    ) -> None:
        client = make_client(endpoint_url=receiver.url)
        for index in range(50):
            client.track("e", index)
        assert queue_path.stat().st_size > 0
        assert client.flush(timeout=10)
        assert 0 == queue_path.stat().st_size
        client.track("e", 50)  # the appender reopens the new file
        assert 1 == client.queued_count
        assert [50] == [e["data"] for e in read_lines(queue_path)]

    def test_a_half_consumed_big_file_is_compacted_keeping_the_rest(
        self, make_client: MakeClient, receiver: Receiver, behaviour: Behaviour, queue_path: Path
    ) -> None:
        client = make_client(endpoint_url=receiver.url, batch_size=500, max_in_flight=1)
        payload = "p" * 900
        count = (3 * COMPACT_MIN_BYTES) // 1000
        for index in range(count):
            client.track("e", {"i": index, "p": payload})
        sent = 0

        def stop_after_half(events: list, headers: dict) -> object:
            nonlocal sent
            sent += len(events)
            return (503, {}) if sent > count // 2 + 500 else None

        behaviour.respond = stop_after_half
        assert client.flush(timeout=20) is False
        remaining = client.queued_count
        assert 0 < remaining < count
        size = queue_path.stat().st_size
        assert size < 2 * COMPACT_MIN_BYTES  # the consumed head was reclaimed
        assert remaining == len(read_lines(queue_path))
        behaviour.respond = None
        assert client.flush(timeout=20)
        assert list(range(count)) == [e["data"]["i"] for e in receiver.events]


class TestCap:
    def test_the_oldest_events_are_dropped_to_respect_max_queue_bytes(
        self, make_client: MakeClient, queue_path: Path
    ) -> None:
        client = make_client(max_queue_bytes=64 * 1024)
        for index in range(2000):
            client.track("e", {"i": index, "pad": "x" * 100})
        size = queue_path.stat().st_size
        assert size <= 64 * 1024
        kept = [e["data"]["i"] for e in read_lines(queue_path)]
        assert kept == sorted(kept)
        assert 1999 == kept[-1]  # the newest survive
        assert 2000 - len(kept) == client.stats()["dropped"]["queue_full"]
        assert len(kept) == client.queued_count

    def test_an_event_larger_than_the_cap_is_counted(
        self, make_client: MakeClient, queue_path: Path
    ) -> None:
        client = make_client(max_queue_bytes=2000, max_event_bytes=4096)
        client.track("big", "x" * 3000)
        assert {"event_larger_than_queue": 1} == client.stats()["dropped"]


class TestCounting:
    def test_queued_count_follows_appends_and_sends(
        self, make_client: MakeClient, receiver: Receiver
    ) -> None:
        client = make_client(endpoint_url=receiver.url, batch_size=10)
        assert 0 == client.queued_count
        for index in range(25):
            client.track("e", index)
        assert 25 == client.queued_count
        other = TelemetryClient(TelemetryOptions(queue_path=client.options.queue_path))
        other.track("from another client")
        assert 26 == client.queued_count
        assert client.flush(timeout=10)
        assert 0 == client.queued_count
        assert 0 == other.queued_count
        other.close()


def event_line(value: int) -> bytes:
    """A valid queue line whose ``data`` is ``value``."""
    return (
        json.dumps(
            {
                "id": f"{value:032x}",
                "name": "n",
                "timestampUtc": "2026-01-01T00:00:00.000000Z",
                "data": value,
                "applicationName": "",
                "applicationVersion": "",
                "machineName": "",
                "osDescription": "",
                "ipAddress": "",
                "countryCode": "",
            },
            separators=(",", ":"),
        ).encode()
        + b"\n"
    )


def queued_values(path: Path) -> List[int]:
    return [event["data"] for event in read_lines(path)]


def wait_for_growth(fd: int, size: int) -> None:
    deadline = time.monotonic() + 10
    while os.fstat(fd).st_size <= size:
        assert time.monotonic() < deadline, "the append never reached the file"
        time.sleep(0.001)


@pytest.fixture(params=["generation", "fstat"])
def check(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How appenders notice a compaction: the shared generation (x86) or ``fstat``."""
    if request.param == "generation" and not SHARED_GENERATION:
        pytest.skip("this CPU does not use the shared generation")
    monkeypatch.setattr(_queue, "SHARED_GENERATION", request.param == "generation")
    return str(request.param)


@pytest.mark.skipif(not _queue._LOCK_FREE, reason="appends take the locked path here")
class TestLockFreeAppends:
    """Appends race compaction without a lock; every line stays queued exactly once."""

    def make_pair(self, tmp_path: Path) -> Tuple[Path, FileQueue, FileQueue]:
        path = tmp_path / "q.ndjson"
        writer = FileQueue(str(path), 0, Stats(), max_line=1 << 20)
        sender = FileQueue(str(path), 0, Stats(), max_line=1 << 20)
        for value in range(3):
            assert writer.append(event_line(value))
        return path, writer, sender

    def compact_after_consuming_one(self, sender: FileQueue) -> None:
        with sender.session(timeout=5) as session:
            assert session.acquired
            session.commit(session.read_batch(1)[0][1], 1)
            sender._compact()

    def race_during_compaction(self, sender: FileQueue, writer: FileQueue, before: bool) -> None:
        """Append from another thread while ``sender`` compacts, around its copy end."""
        racer = threading.Thread(target=writer.append, args=(event_line(3),))
        last_line_end = sender._last_line_end

        def racing(start: int) -> int:
            end = -1 if before else last_line_end(start)
            size = os.fstat(sender._read_fd).st_size
            racer.start()  # lands in the sealed file; settling waits for our lock
            wait_for_growth(sender._read_fd, size)
            return last_line_end(start) if before else end

        sender._last_line_end = racing  # type: ignore[method-assign]
        self.compact_after_consuming_one(sender)
        racer.join(10)
        assert not racer.is_alive()

    def test_a_line_written_past_the_copied_end_is_appended_again(
        self, tmp_path: Path, check: str
    ) -> None:
        path, writer, sender = self.make_pair(tmp_path)
        self.race_during_compaction(sender, writer, before=False)
        assert [1, 2, 3] == queued_values(path)
        assert 0o600 == stat.S_IMODE(path.stat().st_mode)
        assert writer.append(event_line(4))  # the writer now appends to the new file
        assert [1, 2, 3, 4] == queued_values(path)

    def test_a_line_written_after_the_seal_but_inside_the_copy_is_not_duplicated(
        self, tmp_path: Path, check: str
    ) -> None:
        path, writer, sender = self.make_pair(tmp_path)
        self.race_during_compaction(sender, writer, before=True)
        assert [1, 2, 3] == queued_values(path)
        assert writer.append(event_line(4))
        assert [1, 2, 3, 4] == queued_values(path)

    def test_an_fstat_check_between_the_bump_and_the_seal_hides_nothing(
        self, tmp_path: Path, check: str
    ) -> None:
        path, writer, sender = self.make_pair(tmp_path)
        with sender.session(timeout=5):
            pass
        lock_fd = os.open(str(path) + ".lock", os.O_RDWR)
        try:
            moves = sender._move_log(lock_fd)
        finally:
            os.close(lock_fd)
        bump = moves.bump

        def bump_then_append() -> None:
            bump()
            writer._fstat_countdown = 0  # this append takes the fstat check
            assert writer.append(event_line(3))  # not sealed yet: no lock needed

        moves.bump = bump_then_append  # type: ignore[method-assign]
        self.compact_after_consuming_one(sender)
        assert writer.append(event_line(4))  # must notice the compaction
        assert [1, 2, 3, 4] == queued_values(path)

    def test_a_writer_idle_through_many_compactions_still_finds_its_move(
        self, tmp_path: Path, check: str
    ) -> None:
        path, writer, sender = self.make_pair(tmp_path)
        assert writer.append(event_line(3))
        self.compact_after_consuming_one(sender)  # copies 1, 2, 3
        for _ in range(300):  # the writer sleeps through these
            with sender.session(timeout=5):
                sender._compact()
        assert writer.append(event_line(4))
        assert [1, 2, 3, 4] == queued_values(path)

    @pytest.mark.parametrize("dies_in", ["_last_line_end", "os.replace"])
    def test_a_compactor_killed_mid_way_loses_nothing(
        self, tmp_path: Path, check: str, dies_in: str
    ) -> None:
        path, writer, _ = self.make_pair(tmp_path)
        killed = run_python(
            "import os, signal, sys\n"
            "from trace_telemetry._queue import FileQueue\n"
            "from trace_telemetry._stats import Stats\n"
            "queue = FileQueue(sys.argv[1], 0, Stats(), max_line=1 << 20)\n"
            "def die(*args):\n"
            "    os.kill(os.getpid(), signal.SIGKILL)\n"
            + ("os.replace = die\n" if dies_in == "os.replace" else "queue._last_line_end = die\n")
            + "with queue.session(timeout=5):\n"
            "    queue._compact()\n",
            str(path),
        )
        assert -signal.SIGKILL == killed.returncode, killed.stderr
        assert stat.S_IMODE(path.stat().st_mode) & stat.S_IXUSR  # left sealed
        assert writer.append(event_line(3))
        assert [0, 1, 2, 3] == queued_values(path)
        assert 0o600 == stat.S_IMODE(path.stat().st_mode)  # unsealed by the appender
        reader = FileQueue(str(path), 0, Stats(), max_line=1 << 20)
        with reader.session(timeout=5) as session:
            assert [0, 1, 2, 3] == [json.loads(line)["data"] for line, _ in session.read_batch(9)]

    def test_a_queue_file_deleted_by_hand_is_noticed_by_the_sender(
        self, tmp_path: Path, check: str
    ) -> None:
        path, writer, sender = self.make_pair(tmp_path)
        with sender.session(timeout=5):
            pass  # the sender has the file open
        path.unlink()
        with sender.session(timeout=5):
            pass  # ...and notices it is gone
        assert writer.append(event_line(3))
        kept = queued_values(path)
        # Appends since the writer's last fstat may be written again: never lost.
        assert kept[-1] == 3
        assert set(kept) <= {1, 2, 3}
        assert len(kept) == len(set(kept))
        assert {} == writer.stats.snapshot()["dropped"]

    def test_a_stale_move_for_a_reused_inode_number_is_ignored(
        self, tmp_path: Path, check: str
    ) -> None:
        path, writer, sender = self.make_pair(tmp_path)
        inode = path.stat().st_ino
        with sender.session(timeout=5):
            # An older file with this inode number was compacted "far": a
            # stale record that must not make the next line look copied.
            lock_fd = os.open(str(path) + ".lock", os.O_RDWR)
            try:
                sender._move_log(lock_fd).record(inode, 1 << 40)
            finally:
                os.close(lock_fd)
        path.unlink()
        with sender.session(timeout=5):
            pass  # the sender notices the deletion
        assert writer.append(event_line(3))
        assert 3 in queued_values(path)

    def test_a_queue_file_deleted_by_hand_with_no_sender_loses_nothing(
        self, tmp_path: Path, check: str
    ) -> None:
        path, writer, _ = self.make_pair(tmp_path)
        path.unlink()
        for value in range(3, 203):
            assert writer.append(event_line(value))
        kept = queued_values(path)
        assert set(range(3, 203)) <= set(kept)  # found by the periodic fstat, written again
        assert len(kept) == len(set(kept))
        assert {} == writer.stats.snapshot()["dropped"]

    def test_processes_appending_while_the_queue_is_compacted_nonstop(
        self, tmp_path: Path, check: str
    ) -> None:
        path = tmp_path / "q.ndjson"
        writers = [
            popen_python(
                "import sys\n"
                "from trace_telemetry import _queue\n"
                "from trace_telemetry._stats import Stats\n"
                "from tests.test_queue import event_line\n"
                "_queue.SHARED_GENERATION = sys.argv[3] == 'generation'\n"
                "queue = _queue.FileQueue(sys.argv[1], 0, Stats(), max_line=1 << 20)\n"
                "base = int(sys.argv[2])\n"
                "for value in range(base, base + 4000):\n"
                "    assert queue.append(event_line(value))\n"
                "print(queue.settled, queue.stats.snapshot()['dropped'])\n",
                str(path),
                str(worker * 100_000),
                check,
                stdout=subprocess.PIPE,
                text=True,
            )
            for worker in range(3)
        ]
        sender = FileQueue(str(path), 0, Stats(), max_line=1 << 20)
        consumed: List[int] = []
        compactions = 0

        def drain_and_compact() -> None:
            nonlocal compactions
            with sender.session(timeout=5) as session:
                batch = session.read_batch(50)
                if batch:
                    consumed.extend(json.loads(line)["data"] for line, _ in batch)
                    session.commit(batch[-1][1], len(batch))
                sender._compact()
                compactions += 1

        while any(writer.poll() is None for writer in writers):
            drain_and_compact()
        reports = [writer.communicate(timeout=10)[0].split(maxsplit=1) for writer in writers]
        assert all(writer.returncode == 0 for writer in writers)
        for _ in range(1000):
            drain_and_compact()
            if not sender.pending_count():
                break
        expected = [w * 100_000 + i for w in range(3) for i in range(4000)]
        assert sorted(consumed) == expected  # every line exactly once
        assert compactions > 20
        assert ["{}"] * 3 == [dropped.strip() for _, dropped in reports]
        assert sum(int(settled) for settled, _ in reports) > 0  # the race did happen
        assert not Path(str(path) + ".corrupt").exists()


class QueueMachine(RuleBasedStateMachine):
    """Random appends, garbage, partial sends, crashes (reopen) and caps."""

    def __init__(self) -> None:
        super().__init__()
        self.expected: List[int] = []
        self.delivered: List[int] = []
        self.counter = 0

    @initialize(tmp=st.just(None))
    def setup(self, tmp: None) -> None:
        import tempfile

        self.dir = tempfile.mkdtemp()
        self.path = os.path.join(self.dir, "q.ndjson")
        self.queue = FileQueue(self.path, 0, Stats(), max_line=1 << 20)

    @rule(count=st.integers(1, 30))
    def append(self, count: int) -> None:
        for _ in range(count):
            assert self.queue.append(event_line(self.counter))
            self.expected.append(self.counter)
            self.counter += 1

    @rule()
    def append_garbage(self) -> None:
        with open(self.path, "ab") as handle:
            handle.write(b"garbage\n")

    @rule(batch=st.integers(1, 20), deliver=st.integers(0, 20))
    def send(self, batch: int, deliver: int) -> None:
        with self.queue.session(1.0) as session:
            assert session.acquired
            events = session.read_batch(batch)
            taken = events[: min(deliver, len(events))]
            if taken:
                session.commit(taken[-1][1], len(taken))
                self.delivered.extend(json.loads(line)["data"] for line, _ in taken)
            session.maintain()

    @rule()
    def crash_and_reopen(self) -> None:
        self.queue.close()
        self.queue = FileQueue(self.path, 0, Stats(), max_line=1 << 20)

    @invariant()
    def nothing_lost_nothing_duplicated(self) -> None:
        if not hasattr(self, "queue"):
            return
        pending = (
            [
                json.loads(line)["data"]
                for line in open(self.path, "rb").read().splitlines()
                if is_valid_event_line(line)
            ]
            if os.path.exists(self.path)
            else []
        )
        with self.queue.session(1.0):
            head = self.queue._head.offset
        remaining = (
            [
                json.loads(line)["data"]
                for line in open(self.path, "rb").read()[head:].splitlines()
                if is_valid_event_line(line)
            ]
            if os.path.exists(self.path)
            else []
        )
        assert self.expected == self.delivered + remaining
        assert set(remaining) <= set(pending)
        assert self.queue.pending_count() >= len(remaining)


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(
    max_examples=40,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
