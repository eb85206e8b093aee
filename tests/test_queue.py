"""The file queue on real files: corruption, torn tails, compaction, the cap, counting."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable, List

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from trace_telemetry import TelemetryClient, TelemetryOptions
from trace_telemetry._compact import COMPACT_MIN_BYTES
from trace_telemetry._queue import FileQueue
from trace_telemetry._receiver import Receiver
from trace_telemetry._stats import Stats
from trace_telemetry._validate import is_valid_event_line

from .conftest import Behaviour, read_lines

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
        assert [1, 2] == sorted(e["data"] for e in receiver.events)
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
        assert [1, 2] == sorted(e["data"] for e in receiver.events)
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
        assert [1, 2] == sorted(e["data"] for e in receiver.events)
        assert [b'{"torn'] == side(queue_path, ".corrupt").read_bytes().splitlines()

    def test_an_enormous_line_is_streamed_to_corrupt(
        self, make_client: MakeClient, receiver: Receiver, queue_path: Path
    ) -> None:
        client = make_client(endpoint_url=receiver.url, max_event_bytes=1024)
        queue_path.parent.mkdir(parents=True, exist_ok=True)
        queue_path.write_bytes(b"x" * (5 << 20) + b"\n")
        client.track("ok", 1)
        assert client.flush(timeout=20)
        assert [1] == sorted(e["data"] for e in receiver.events)
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


class QueueMachine(RuleBasedStateMachine):
    """Random appends, garbage, partial sends, crashes (reopen) and caps."""

    def __init__(self) -> None:
        super().__init__()
        self.expected: List[int] = []
        self.delivered: List[int] = []
        self.counter = 0
        self.damaged = False

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
                self.damaged = False  # both copies written again
            session.maintain()

    @precondition(lambda self: not self.damaged)
    @rule(how=st.sampled_from(["truncate", "scribble", "delete"]))
    def damage_a_copy_of_the_head(self, how: str) -> None:
        """A hand on ``Q.lock`` or ``Q.offset``: the other copy keeps the head."""
        target = self.path + (".lock" if how != "delete" else ".offset")
        if not os.path.exists(target):
            return
        if how == "truncate":
            os.truncate(target, 0)
        elif how == "scribble":
            with open(target, "r+b") as handle:
                handle.write(b"x" * 200)
        else:
            os.unlink(target)
        self.damaged = True

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
            head = self.queue._consumer.head
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
