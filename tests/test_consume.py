"""The consuming side: the head applies only to its own file, and survives hands on the side files."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Callable

from trace_telemetry import TelemetryClient, _control
from trace_telemetry._inspect import report
from trace_telemetry._receiver import Receiver

from .conftest import Behaviour

MakeClient = Callable[..., TelemetryClient]


def half_sent(client: TelemetryClient, behaviour: Behaviour, total: int, sent: int) -> None:
    """Track ``total`` events and let the server take only the first ``sent``."""
    for index in range(total):
        client.track("e", index)
    taken = 0

    def respond(events: list, headers: dict) -> object:
        nonlocal taken
        taken += len(events)
        return (503, {}) if taken > sent else None

    behaviour.respond = respond
    assert client.flush(timeout=10) is False
    behaviour.respond = None


def rewrite_inode(path: str, at: int, inode: int) -> None:
    """Make the state stored at ``at`` in ``path`` name ``inode`` (a reused inode number)."""
    fd = os.open(path, os.O_RDWR)
    try:
        state = _control.read_state(fd, at)
        assert state is not None
        _control.write_state(fd, state._replace(inode=inode), at)
    finally:
        os.close(fd)


class TestTheHeadBelongsToOneFile:
    def test_a_queue_recreated_by_hand_with_a_reused_inode_is_read_from_its_start(
        self, make_client: MakeClient, receiver: Receiver, behaviour: Behaviour, queue_path: Path
    ) -> None:
        client = make_client(endpoint_url=receiver.url, batch_size=10, max_in_flight=1)
        half_sent(client, behaviour, total=30, sent=20)
        assert 10 == client.queued_count
        queue_path.unlink()  # by hand
        other = make_client()
        for index in range(100, 130):
            other.track("new", index)
        other.close()
        inode = queue_path.stat().st_ino
        # ext4 reuses inode numbers at once: make the stored head name the new file.
        rewrite_inode(str(queue_path) + ".lock", 64, inode)
        rewrite_inode(str(queue_path) + ".offset", 0, inode)
        receiver.events.clear()
        fresh = make_client(endpoint_url=receiver.url, batch_size=10)
        assert 30 == fresh.queued_count
        assert fresh.flush(timeout=10)
        assert list(range(100, 130)) == sorted(e["data"] for e in receiver.events)

    def test_the_head_survives_q_offset_deleted_or_truncated(
        self, make_client: MakeClient, receiver: Receiver, behaviour: Behaviour, queue_path: Path
    ) -> None:
        client = make_client(endpoint_url=receiver.url, batch_size=10, max_in_flight=1)
        half_sent(client, behaviour, total=40, sent=20)
        offset = Path(str(queue_path) + ".offset")
        offset.write_bytes(b"")
        assert 20 == client.queued_count
        offset.unlink()
        assert 20 == client.queued_count
        assert client.flush(timeout=10)
        assert list(range(40)) == sorted(e["data"] for e in receiver.events)  # no rewind

    def test_the_head_survives_q_lock_deleted_or_truncated(
        self, make_client: MakeClient, receiver: Receiver, behaviour: Behaviour, queue_path: Path
    ) -> None:
        client = make_client(endpoint_url=receiver.url, batch_size=10, max_in_flight=1)
        half_sent(client, behaviour, total=40, sent=20)
        lock = Path(str(queue_path) + ".lock")
        lock.unlink()
        assert 20 == client.queued_count
        client.track("e", 40)
        lock.write_bytes(b"")
        client.track("e", 41)
        assert client.flush(timeout=10)
        assert list(range(42)) == sorted(e["data"] for e in receiver.events)


class TestTheSenderLock:
    def test_q_offset_deleted_under_a_hung_sender_lets_one_other_sender_in(
        self, make_client: MakeClient, receiver: Receiver, behaviour: Behaviour, queue_path: Path
    ) -> None:
        first = make_client(
            endpoint_url=receiver.url, batch_size=5, timeout_seconds=30, max_in_flight=1
        )
        for index in range(20):
            first.track("e", index)
        behaviour.release.clear()  # the first request hangs, holding the sender lock
        hung = threading.Thread(target=first.flush, kwargs={"timeout": 30})
        hung.start()
        deadline = time.monotonic() + 10
        while not report(str(queue_path))["sender_active"]:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        second = make_client(endpoint_url=receiver.url, batch_size=5, max_in_flight=1)
        assert second.flush(timeout=0.5) is False  # excluded while the lock file is in place
        Path(str(queue_path) + ".offset").unlink()  # by hand
        sender = threading.Thread(target=second.flush, kwargs={"timeout": 10})
        sender.start()
        time.sleep(0.5)
        behaviour.release.set()
        hung.join(30)
        sender.join(30)
        assert second.flush(timeout=10)
        values = [e["data"] for e in receiver.events]
        assert set(range(20)) == set(values)
        assert len(values) - 20 <= 2 * 5  # the two overlapping senders re-sent at most a batch each


class TestPendingCount:
    def test_pending_count_follows_trims_compactions_and_emptying(
        self, make_client: MakeClient, receiver: Receiver, behaviour: Behaviour, queue_path: Path
    ) -> None:
        client = make_client(endpoint_url=receiver.url, batch_size=10, max_in_flight=1)
        half_sent(client, behaviour, total=50, sent=30)
        assert 20 == client.queued_count
        assert client.flush(timeout=10)
        assert 0 == client.queued_count
        client.track("e", 1)
        assert 1 == client.queued_count


def test_a_stale_copy_of_the_head_is_ignored_after_the_queue_was_emptied_in_place(
    tmp_path: Path,
) -> None:
    """Garbage written by hand can give an emptied file its old first line back.

    The head copied to ``Q.offset`` before the emptying would then seem to
    apply to the new content (found by the hypothesis state machine).
    """
    from trace_telemetry._queue import FileQueue
    from trace_telemetry._stats import Stats

    from .test_queue import event_line

    path = str(tmp_path / "q.ndjson")
    queue = FileQueue(path, 0, Stats(), max_line=1 << 20)
    with open(path, "ab") as handle:
        handle.write(b"garbage\n")
    queue.append(event_line(0))
    with queue.session(1.0) as session:
        batch = session.read_batch(1)
        session.commit(batch[-1][1], 1)
        session.maintain()  # everything consumed: emptied in place
    with open(path, "ab") as handle:
        handle.write(b"garbage\n")  # the same first line as before
    queue.append(event_line(1))
    assert 2 == queue.pending_count()
    with queue.session(1.0) as session:
        assert [1] == [json.loads(line)["data"] for line, _ in session.read_batch(10)]
    queue.close()


class TestABatchInFlight:
    def test_q_truncated_by_hand_while_a_batch_is_in_flight_loses_no_later_event(
        self, make_client: MakeClient, receiver: Receiver, behaviour: Behaviour, queue_path: Path
    ) -> None:
        # The commit of the in-flight batch checks the generation only; the
        # head is then written at the batch's end for a file that was
        # emptied by hand and refilled: the new events before it are skipped.
        client = make_client(endpoint_url=receiver.url, flush_interval_seconds=3600)
        for index in range(5):
            client.track("old", index)
        in_flight = threading.Event()
        go_on = threading.Event()

        def respond(events: list, headers: dict) -> object:
            if not in_flight.is_set():
                in_flight.set()
                go_on.wait(10)
            return None

        behaviour.respond = respond
        flusher = threading.Thread(target=client.flush, kwargs={"timeout": 20})
        flusher.start()
        assert in_flight.wait(10)
        os.truncate(queue_path, 0)  # by hand: `: > queue`
        for index in range(20):
            client.track("new", index)
        go_on.set()
        flusher.join(20)
        assert client.flush(timeout=10)
        new = sorted(e["data"] for e in receiver.events if e["name"] == "new")
        assert list(range(20)) == new


def test_a_copied_mark_written_by_hand_in_the_live_queue_does_not_stall_it(
    make_client: MakeClient, receiver: Receiver, queue_path: Path
) -> None:
    client = make_client(endpoint_url=receiver.url, batch_size=5)
    client.track("e", 0)
    with open(queue_path, "ab") as handle:
        handle.write(b"#copied\n")
    client.track("e", 1)
    assert client.flush(timeout=10)
    assert [0, 1] == sorted(e["data"] for e in receiver.events)
    assert b"#copied\n" == Path(str(queue_path) + ".corrupt").read_bytes()
