"""Batches in flight (``_inflight.py`` and the window in ``_delivery.py``) against real servers."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from trace_telemetry import TelemetryClient, TelemetryOptions
from trace_telemetry._queue import FileQueue
from trace_telemetry._receiver import Receiver
from trace_telemetry._stats import Stats
from trace_telemetry._transport import Response

from .conftest import popen_python, read_lines

MakeClient = Callable[..., TelemetryClient]
Answer = Optional[Tuple[int, Dict[str, str]]]


class SlowServer:
    """A responder that answers after ``delay`` and records the most requests at once.

    ``decide(events, attempt)`` may return a status and headers instead of 200;
    ``attempt`` counts the requests so far (1 for the first).
    """

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.active = 0
        self.most = 0
        self.attempts = 0
        self.decide: Optional[Callable[[List[Dict[str, Any]], int], Answer]] = None
        #: How many requests were being served as each one arrived (itself included).
        self.arrivals: List[int] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, events: List[Dict[str, Any]], headers: Dict[str, str]) -> Answer:
        with self.lock:
            self.active += 1
            self.attempts += 1
            attempt = self.attempts
            self.most = max(self.most, self.active)
            self.arrivals.append(self.active)
        try:
            threading.Event().wait(self.delay)
            self.release.wait(30)
            return self.decide(events, attempt) if self.decide is not None else None
        finally:
            with self.lock:
                self.active -= 1


@pytest.fixture
def slow() -> SlowServer:
    return SlowServer(delay=0.05)


@pytest.fixture
def server(slow: SlowServer) -> Iterator[Receiver]:
    receiver = Receiver(responder=slow)
    receiver.start()
    try:
        yield receiver
    finally:
        slow.release.set()
        receiver.stop()


def data(server: Receiver) -> List[int]:
    with server.lock:
        return [event["data"] for event in server.events]


def track(client: TelemetryClient, count: int) -> None:
    for index in range(count):
        client.track("e", index)


class TestWindow:
    @pytest.mark.parametrize("window", [1, 4])
    def test_up_to_max_in_flight_requests_at_once_each_event_once(
        self, window: int, make_client: MakeClient, server: Receiver, slow: SlowServer
    ) -> None:
        client = make_client(endpoint_url=server.url, batch_size=10, max_in_flight=window)
        track(client, 200)
        assert client.flush(timeout=30) is True
        assert window == slow.most
        assert list(range(200)) == sorted(data(server))  # each exactly once
        stats = client.stats()
        assert (200, 20, 0) == (stats["sent"], stats["requests"], stats["queued"])

    def test_a_backlog_of_one_batch_sends_one_request(
        self, make_client: MakeClient, server: Receiver
    ) -> None:
        client = make_client(endpoint_url=server.url, batch_size=20)
        track(client, 15)
        assert client.flush(timeout=10)
        assert [15] == [len(request.events) for request in server.requests]

    def test_corrupt_lines_read_ahead_are_set_aside_in_order(
        self, make_client: MakeClient, server: Receiver, queue_path: Path
    ) -> None:
        client = make_client(endpoint_url=server.url, batch_size=5)
        for index in range(30):
            client.track("e", index)
            if index % 7 == 3:
                with open(queue_path, "ab") as handle:
                    handle.write(b'{"not":"an event"}\n\n')
        assert client.flush(timeout=10) is True
        assert list(range(30)) == sorted(data(server))
        assert 0 == client.queued_count
        corrupt = read_lines(Path(str(queue_path) + ".corrupt"))
        assert [{"not": "an event"}] * 4 == corrupt  # after events 3, 10, 17 and 24
        assert 4 == client.stats()["corrupt"]


class TestReadAhead:
    def test_read_batch_from_a_start_commits_nothing_and_marks_invalid_lines(
        self, tmp_path: Path
    ) -> None:
        path = tmp_path / "q.ndjson"
        client = TelemetryClient(TelemetryOptions(queue_path=str(path)))
        track(client, 3)
        client.close()
        with open(path, "ab") as handle:
            handle.write(b"garbage\n\n")
        client = TelemetryClient(TelemetryOptions(queue_path=str(path)))
        track(client, 2)
        client.close()
        queue = FileQueue(str(path), 0, Stats(), max_line=1 << 20)
        try:
            with queue.session(5) as session:
                assert session.acquired
                first = session.read_batch(2)
                ahead = session.read_batch(10, start=first[-1][1])
                assert [b"", b""] == [line for line, _ in ahead[1:3]]  # garbage, blank line
                assert 0 == queue._consumer.head  # nothing committed
                assert 5 == len(ahead)  # event 2, two marked lines, the next client's 0 and 1
                assert [2, 0, 1] == [json.loads(line)["data"] for line, _ in ahead if line]
                session.commit(ahead[-1][1], len(first) + len(ahead))
            assert b"garbage\n" == Path(str(path) + ".corrupt").read_bytes()  # the blank: nothing
            assert 1 == queue.stats.corrupt
            assert 0 == queue.pending_count()
        finally:
            queue.close()


class TestFailureInsideTheWindow:
    def test_a_500_to_the_second_of_four_batches_resends_only_the_window(
        self, make_client: MakeClient, server: Receiver, slow: SlowServer
    ) -> None:
        slow.delay = 0.2  # the four batches are in flight together
        slow.decide = lambda events, attempt: (500, {}) if events[0]["data"] == 5 else None
        client = make_client(endpoint_url=server.url, batch_size=5, max_in_flight=4)
        track(client, 20)
        assert client.flush(timeout=10) is False
        assert 4 == slow.most
        assert 15 == client.queued_count  # the first batch was committed, in order
        stats = client.stats()
        assert (1, 4) == (stats["retries"], stats["requests"])  # one backoff for the window
        assert stats["backing_off"] is True
        slow.decide = None
        slow.delay = 0.01
        assert client.flush(timeout=10) is True
        received = Counter(data(server))
        assert set(range(20)) == set(received)
        duplicates = sum(received.values()) - 20
        assert duplicates == 10  # batches three and four, delivered but not committable
        assert duplicates <= 4 * 5

    def test_after_a_backoff_one_batch_goes_alone_then_the_window_reopens(
        self, make_client: MakeClient, server: Receiver, slow: SlowServer
    ) -> None:
        failed = threading.Event()

        def fail_first_once(events: List[Dict[str, Any]], attempt: int) -> Answer:
            if events[0]["data"] == 0 and not failed.is_set():
                failed.set()
                return (502, {})
            return None

        slow.decide = fail_first_once
        client = make_client(endpoint_url=server.url, batch_size=5, max_in_flight=4)
        track(client, 100)
        assert client.flush(timeout=10) is False
        assert 4 == len(server.requests)  # the window drained before the backoff
        assert 0 == slow.active
        before = len(slow.arrivals)
        assert client.flush(timeout=30) is True
        retry = slow.arrivals[before:]
        assert [1, 1] == retry[:2]  # the probe went alone, its successor waited for it
        assert 4 == max(retry)  # then the window opened again
        received = Counter(data(server))
        assert set(range(100)) == set(received)
        assert sum(received.values()) - 100 <= 3 * 5

    def test_a_413_in_the_window_splits_alone_and_delivers_everything_once(
        self, make_client: MakeClient, server: Receiver, slow: SlowServer, queue_path: Path
    ) -> None:
        slow.decide = lambda events, attempt: (
            (413, {}) if len(events) > 3 and events[0]["data"] >= 16 else None
        )
        client = make_client(endpoint_url=server.url, batch_size=8, max_in_flight=4)
        track(client, 40)
        assert client.flush(timeout=20) is True
        assert list(range(40)) == sorted(data(server))
        assert not Path(str(queue_path) + ".rejected").exists()
        assert 0 == client.queued_count

    def test_a_400_poison_event_is_isolated_and_the_rest_sent_once(
        self, make_client: MakeClient, server: Receiver, slow: SlowServer, queue_path: Path
    ) -> None:
        slow.decide = lambda events, attempt: (
            (400, {}) if any(event["data"] == 23 for event in events) else None
        )
        client = make_client(endpoint_url=server.url, batch_size=10, max_in_flight=4)
        track(client, 40)
        assert client.flush(timeout=20) is True
        assert [i for i in range(40) if i != 23] == sorted(data(server))
        assert [23] == [event["data"] for event in read_lines(Path(str(queue_path) + ".rejected"))]
        assert 1 == client.stats()["rejected"]

    def test_a_429_backs_off_once_per_retry_after_and_halves_the_window(
        self, make_client: MakeClient, server: Receiver, slow: SlowServer
    ) -> None:
        slow.delay = 0.2
        slow.decide = lambda events, attempt: (
            (429, {"Retry-After": "7"}) if events[0]["data"] >= 5 else None
        )
        client = make_client(
            endpoint_url=server.url, batch_size=5, max_in_flight=4, max_backoff_seconds=60
        )
        track(client, 20)
        assert client.flush(timeout=10) is False
        assert 1 == client.stats()["retries"]
        assert 6.5 <= client._delivery.seconds_until_next() <= 7
        assert 2 == client._delivery.window
        assert 15 == client.queued_count
        slow.decide = None
        slow.delay = 0.01
        track(client, 100)
        assert client.flush(timeout=20) is True
        assert 4 == client._delivery.window  # grown back, one per window of successes
        assert set(range(20)) | set(range(100)) == set(data(server))


SENDER = r"""
import sys
from trace_telemetry import TelemetryClient, TelemetryOptions
client = TelemetryClient(TelemetryOptions(
    queue_path=sys.argv[1], endpoint_url=sys.argv[2], batch_size=10, max_in_flight=4))
print("ready", flush=True)
client.flush(timeout=120)
"""


class TestCrashesAndBudgets:
    def test_kill_9_with_batches_in_flight_loses_nothing(
        self, tmp_path: Path, server: Receiver, slow: SlowServer, make_client: MakeClient
    ) -> None:
        queue = tmp_path / "q.ndjson"
        seed = TelemetryClient(TelemetryOptions(queue_path=str(queue)))
        track(seed, 500)
        seed.close()
        slow.delay = 0.1
        sender = popen_python(SENDER, str(queue), server.url, stdout=subprocess.PIPE, text=True)
        assert sender.stdout is not None
        assert "ready" == sender.stdout.readline().strip()
        deadline = time.monotonic() + 30
        while not (len(server.requests) >= 6 and slow.active >= 3):
            assert time.monotonic() < deadline, "the sender never had batches in flight"
            time.sleep(0.002)
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(10)
        while slow.active:  # the server finishes the orphaned requests
            time.sleep(0.01)
        slow.delay = 0
        client = make_client(queue_path=str(queue), endpoint_url=server.url, batch_size=10)
        assert client.flush(timeout=60)
        received = Counter(data(server))
        assert set(range(500)) == set(received)
        assert sum(received.values()) - 500 <= 4 * 10  # at most the window again

    def test_flush_returns_by_its_deadline_with_a_hanging_server(
        self, make_client: MakeClient, server: Receiver, slow: SlowServer
    ) -> None:
        slow.release.clear()  # every request hangs
        client = make_client(endpoint_url=server.url, batch_size=10, timeout_seconds=30)
        track(client, 100)
        started = time.monotonic()
        assert client.flush(timeout=1.0) is False
        assert time.monotonic() - started < 1.0 + 1.5
        assert client._queue._consumer.session_lock.acquire(blocking=False)  # released
        client._queue._consumer.session_lock.release()
        assert 100 == client.queued_count
        slow.release.set()  # the late answers are ignored: nothing was committed
        assert client.flush(timeout=20) is True
        received = Counter(data(server))
        assert set(range(100)) == set(received)
        assert sum(received.values()) - 100 <= 4 * 10

    def test_flush_returns_by_its_deadline_when_a_request_thread_is_stuck(
        self, make_client: MakeClient, server: Receiver
    ) -> None:
        stuck = threading.Event()

        class Stuck:
            def post(self, body: bytes, timeout: float) -> Response:
                stuck.wait()  # ignores its timeout, like a thread blocked on a lock
                return Response(200)

            def close(self) -> None: ...

            def forget(self) -> None: ...

        client = make_client(endpoint_url=server.url, batch_size=10)
        client._senders._make_transport = Stuck
        track(client, 50)
        try:
            started = time.monotonic()
            assert client.flush(timeout=0.5) is False
            assert time.monotonic() - started < 0.5 + 1.5
            started = time.monotonic()
            assert client.flush(timeout=0.5) is False  # every slot busy: waits, then gives up
            assert time.monotonic() - started < 0.5 + 1.5
            assert 50 == client.queued_count
        finally:
            stuck.set()

    def test_stop_returns_quickly_with_requests_in_flight(
        self, make_client: MakeClient, server: Receiver, slow: SlowServer
    ) -> None:
        slow.release.clear()
        client = make_client(endpoint_url=server.url, batch_size=10, flush_interval_seconds=1)
        track(client, 100)
        client.start()
        deadline = time.monotonic() + 10
        while slow.active < 4:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        started = time.monotonic()
        client.stop()
        assert time.monotonic() - started < 2.5
        assert 100 == client.queued_count

    @pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
    def test_a_fork_with_requests_in_flight_leaves_the_child_none_and_no_lock(
        self, make_client: MakeClient, server: Receiver, slow: SlowServer
    ) -> None:
        slow.release.clear()
        client = make_client(endpoint_url=server.url, batch_size=10)
        track(client, 100)
        flusher = threading.Thread(target=client.flush, kwargs={"timeout": 20})
        flusher.start()
        deadline = time.monotonic() + 10
        while slow.active < 4:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report through the pipe, never assert here
            try:
                report = {
                    "free": client._senders.free(),
                    "lock": client._queue._consumer.session_lock.acquire(blocking=False),
                }
                started = time.monotonic()
                report["flush"] = client.flush(timeout=0.5)  # the parent holds the queue
                report["bounded"] = time.monotonic() - started < 3
                os.write(write_end, json.dumps(report).encode())
            finally:
                os._exit(0)
        os.close(write_end)
        _, status = os.waitpid(pid, 0)
        report = json.loads(os.read(read_end, 65536))
        os.close(read_end)
        slow.release.set()
        flusher.join(30)
        assert 0 == status
        assert {"free": 4, "lock": True, "flush": False, "bounded": True} == report
        assert client.flush(timeout=20)
        assert set(range(100)) == set(data(server))


class TestGzip:
    def test_bodies_are_gzipped_and_decoded_by_the_receiver(
        self, make_client: MakeClient, server: Receiver, tmp_path: Path
    ) -> None:
        plain = make_client(endpoint_url=server.url, queue_path=str(tmp_path / "plain.ndjson"))
        packed = make_client(endpoint_url=server.url, compression="gzip")
        for client in (plain, packed):
            for index in range(20):
                client.track("purchase", {"order": index, "currency": "BRL", "amount": 99.9})
            assert client.flush(timeout=10)
        first, second = server.requests
        assert "Content-Encoding" not in first.headers
        assert "gzip" == second.headers["Content-Encoding"]
        assert [e["data"] for e in first.events] == [e["data"] for e in second.events]
        assert second.size < first.size / 3
        encoded = json.dumps(second.events, separators=(",", ":")).encode()
        assert len(gzip.compress(encoded)) < first.size  # what the receiver got was gzip

    def test_a_415_to_gzip_falls_back_to_plain_bodies(
        self,
        make_client: MakeClient,
        server: Receiver,
        slow: SlowServer,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        slow.decide = lambda events, attempt: (415, {}) if attempt == 1 else None
        client = make_client(endpoint_url=server.url, compression="gzip", max_in_flight=1)
        track(client, 3)
        assert client.flush(timeout=5) is True
        refused, accepted = server.requests
        assert (415, "gzip") == (refused.status, refused.headers.get("Content-Encoding"))
        assert (200, None) == (accepted.status, accepted.headers.get("Content-Encoding"))
        assert [0, 1, 2] == data(server)
        assert "refused gzip bodies" in caplog.text
        track(client, 1)
        assert client.flush(timeout=5)
        assert "Content-Encoding" not in server.requests[-1].headers


class TestHeadersOnEverySlot:
    def test_the_headers_option_reaches_every_slots_transport(
        self, make_client: MakeClient, server: Receiver, slow: SlowServer
    ) -> None:
        slow.delay = 0.1  # requests overlap: several slots, each its own transport
        client = make_client(
            endpoint_url=server.url,
            headers={"Authorization": "Bearer x", "X-Tenant": "t1"},
            batch_size=5,
            max_in_flight=4,
        )
        track(client, 40)
        assert client.flush(timeout=10)
        assert slow.most > 1 and len(client._senders._slots) > 1
        assert len(server.requests) == 8
        for request in server.requests:
            assert (request.headers["Authorization"], request.headers["X-Tenant"]) == (
                "Bearer x",
                "t1",
            )
        assert list(range(40)) == sorted(data(server))
