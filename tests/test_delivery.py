"""The failure policy against a real server on 127.0.0.1 playing each answer."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from trace_telemetry import TelemetryClient
from trace_telemetry._receiver import Receiver
from trace_telemetry._transport import parse_retry_after

from .conftest import Behaviour, read_lines

MakeClient = Callable[..., TelemetryClient]


def names(receiver: Receiver) -> List[str]:
    return [event["name"] for event in receiver.events]


class TestSuccess:
    def test_flush_drains_everything_in_batches_of_batch_size(
        self, make_client: MakeClient, receiver: Receiver
    ) -> None:
        client = make_client(
            endpoint_url=receiver.url + "?tenant=7", api_key="k1", batch_size=20, max_in_flight=1
        )
        for index in range(45):
            client.track(f"e{index}", {"i": index})
        assert client.flush(timeout=10) is True
        assert [f"e{i}" for i in range(45)] == names(receiver)
        assert [20, 20, 5] == [len(r.events) for r in receiver.requests]
        request = receiver.requests[0]
        assert "/telemetry?tenant=7" == request.path
        assert "k1" == request.headers["X-API-Key"]
        assert request.headers["Content-Type"].startswith("application/json")
        assert 0 == client.queued_count
        stats = client.stats()
        assert (45, 45, 3) == (stats["enqueued"], stats["sent"], stats["requests"])

    def test_no_api_key_header_without_a_key(
        self, make_client: MakeClient, receiver: Receiver
    ) -> None:
        client = make_client(endpoint_url=receiver.url)
        client.track("x")
        assert client.flush(timeout=10)
        assert "X-API-Key" not in receiver.requests[0].headers

    def test_the_background_sender_delivers_without_flush(
        self, make_client: MakeClient, receiver: Receiver
    ) -> None:
        client = make_client(endpoint_url=receiver.url, flush_interval_seconds=1)
        client.start()
        client.start()  # idempotent
        for index in range(30):
            client.track("bg", index)
        deadline = time.monotonic() + 10
        while len(receiver.events) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        client.stop()
        assert list(range(30)) == sorted(e["data"] for e in receiver.events)  # batches in parallel


class TestRetryableFailures:
    @pytest.mark.parametrize("status", [500, 502, 503, 408, 401, 403, 404])
    def test_the_batch_is_kept_and_the_client_backs_off(
        self,
        status: int,
        make_client: MakeClient,
        receiver: Receiver,
        behaviour: Behaviour,
        queue_path: Path,
    ) -> None:
        behaviour.respond = lambda events, headers: (status, {})
        client = make_client(
            endpoint_url=receiver.url, flush_interval_seconds=2, max_backoff_seconds=60
        )
        for index in range(3):
            client.track("kept", index)
        assert client.flush(timeout=5) is False
        assert 3 == client.queued_count
        stats = client.stats()
        assert stats["backing_off"] is True
        assert 1 == stats["retries"]
        assert str(status) in stats["last_error"]
        wait = client._delivery.seconds_until_next()
        assert 1.0 <= wait <= 2.0  # first backoff: the interval, jittered down to half
        behaviour.respond = None
        assert client.flush(timeout=5) is True  # flush ignores backoff
        assert [0, 1, 2] == [e["data"] for e in receiver.events]
        assert client.stats()["backing_off"] is False

    def test_backoff_grows_exponentially_up_to_the_cap(
        self, make_client: MakeClient, receiver: Receiver, behaviour: Behaviour
    ) -> None:
        behaviour.respond = lambda events, headers: (503, {})
        client = make_client(
            endpoint_url=receiver.url, flush_interval_seconds=2, max_backoff_seconds=20
        )
        client.track("x")
        waits = []
        for _ in range(6):
            client.flush(timeout=5)
            waits.append(client._delivery.seconds_until_next())
        caps = [2, 4, 8, 16, 20, 20]
        for wait, cap in zip(waits, caps):
            assert cap / 2 - 0.2 <= wait <= cap

    @pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("120", 30.0)])
    def test_429_honours_retry_after_capped(
        self,
        header: str,
        expected: float,
        make_client: MakeClient,
        receiver: Receiver,
        behaviour: Behaviour,
    ) -> None:
        behaviour.respond = lambda events, headers: (429, {"Retry-After": header})
        client = make_client(endpoint_url=receiver.url, max_backoff_seconds=30)
        client.track("x")
        assert client.flush(timeout=5) is False
        assert expected - 0.5 <= client._delivery.seconds_until_next() <= expected
        assert 1 == client.queued_count

    def test_retry_after_as_an_http_date(self) -> None:
        from email.utils import formatdate

        assert 55 <= parse_retry_after(formatdate(time.time() + 60, usegmt=True)) <= 60  # type: ignore[operator]
        assert 0 == parse_retry_after(formatdate(time.time() - 60, usegmt=True))
        assert parse_retry_after("soon") is None
        assert parse_retry_after(None) is None

    def test_a_refused_connection_keeps_everything(self, make_client: MakeClient) -> None:
        client = make_client(endpoint_url="http://127.0.0.1:9/telemetry", timeout_seconds=2)
        client.track("x")
        assert client.flush(timeout=5) is False
        assert 1 == client.queued_count
        assert "ConnectionError" in client.stats()["last_error"]

    def test_redirects_are_not_followed(
        self, make_client: MakeClient, receiver: Receiver, behaviour: Behaviour
    ) -> None:
        behaviour.respond = lambda events, headers: (302, {"Location": "/elsewhere"})
        client = make_client(endpoint_url=receiver.url)
        client.track("x")
        assert client.flush(timeout=5) is False
        assert 1 == len(receiver.requests)
        assert 1 == client.queued_count


class TestRefusedEvents:
    def test_a_400_poison_event_is_isolated_and_dead_lettered(
        self, make_client: MakeClient, receiver: Receiver, behaviour: Behaviour, queue_path: Path
    ) -> None:
        def refuse_poison(events: List[Dict[str, Any]], headers: Dict[str, str]) -> Any:
            return (400, {}) if any(e["name"] == "poison" for e in events) else None

        behaviour.respond = refuse_poison
        client = make_client(endpoint_url=receiver.url, batch_size=20)
        for index in range(20):
            client.track("poison" if index == 13 else "ok", index)
        assert client.flush(timeout=10) is True
        assert [i for i in range(20) if i != 13] == [e["data"] for e in receiver.events]
        (rejected,) = read_lines(Path(str(queue_path) + ".rejected"))
        assert ("poison", 13) == (rejected["name"], rejected["data"])
        assert 1 == client.stats()["rejected"]
        assert 0 == client.queued_count
        assert len(receiver.requests) <= 2 * 5 + 1  # log2(20) levels of halving

    def test_422_is_treated_like_400(
        self, make_client: MakeClient, receiver: Receiver, behaviour: Behaviour, queue_path: Path
    ) -> None:
        behaviour.respond = lambda events, headers: (
            (422, {}) if any(e["data"] == 1 for e in events) else None
        )
        client = make_client(endpoint_url=receiver.url)
        for index in range(3):
            client.track("e", index)
        assert client.flush(timeout=10)
        assert [0, 2] == [e["data"] for e in receiver.events]
        assert [1] == [e["data"] for e in read_lines(Path(str(queue_path) + ".rejected"))]

    def test_413_splits_until_batches_fit(
        self, make_client: MakeClient, receiver: Receiver, behaviour: Behaviour, queue_path: Path
    ) -> None:
        behaviour.respond = lambda events, headers: (413, {}) if len(events) > 3 else None
        client = make_client(endpoint_url=receiver.url, batch_size=20)
        for index in range(20):
            client.track("e", index)
        assert client.flush(timeout=10)
        assert list(range(20)) == [e["data"] for e in receiver.events]
        assert not Path(str(queue_path) + ".rejected").exists()

    def test_a_single_event_still_too_large_is_dead_lettered(
        self, make_client: MakeClient, receiver: Receiver, behaviour: Behaviour, queue_path: Path
    ) -> None:
        behaviour.respond = lambda events, headers: (
            (413, {}) if any(e["name"] == "big" for e in events) else None
        )
        client = make_client(endpoint_url=receiver.url)
        client.track("small", 1)
        client.track("big", "x" * 1000)
        client.track("small", 2)
        assert client.flush(timeout=10)
        assert [1, 2] == [e["data"] for e in receiver.events]
        assert ["big"] == [e["name"] for e in read_lines(Path(str(queue_path) + ".rejected"))]

    def test_a_failure_after_a_split_keeps_the_undelivered_half(
        self, make_client: MakeClient, receiver: Receiver, behaviour: Behaviour
    ) -> None:
        calls: Counter[str] = Counter()

        def respond(events: List[Dict[str, Any]], headers: Dict[str, str]) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                return (400, {})
            if calls["n"] == 3:
                return (503, {})
            return None

        behaviour.respond = respond
        client = make_client(endpoint_url=receiver.url, batch_size=4)
        for index in range(4):
            client.track("e", index)
        assert client.flush(timeout=10) is False
        assert [0, 1] == [e["data"] for e in receiver.events]
        assert 2 == client.queued_count
        assert client.flush(timeout=10)
        assert [0, 1, 2, 3] == [e["data"] for e in receiver.events]


class TestHangingServer:
    def test_flush_is_bounded_and_stop_returns_quickly(
        self, make_client: MakeClient, receiver: Receiver, behaviour: Behaviour
    ) -> None:
        behaviour.release.clear()  # every request hangs until released
        client = make_client(endpoint_url=receiver.url, timeout_seconds=1, flush_interval_seconds=1)
        client.track("x")
        started = time.monotonic()
        assert client.flush(timeout=1.5) is False
        assert time.monotonic() - started < 4
        client.start()
        time.sleep(1.5)  # the sender is now stuck in a request
        started = time.monotonic()
        client.stop()
        assert time.monotonic() - started < 2.5
        assert 1 == client.queued_count
        behaviour.release.set()


class TestNoOverlap:
    def test_racing_flushes_and_the_timer_send_each_event_once(
        self, make_client: MakeClient, receiver: Receiver, behaviour: Behaviour
    ) -> None:
        behaviour.delay = 0.01
        client = make_client(endpoint_url=receiver.url, batch_size=7, flush_interval_seconds=1)
        client.start()
        stop = threading.Event()

        def produce() -> None:
            for index in range(300):
                client.track("race", index)
            stop.set()

        def flusher() -> None:
            while not stop.is_set():
                client.flush(timeout=5)

        threads = [threading.Thread(target=produce)] + [
            threading.Thread(target=flusher) for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert client.flush(timeout=20)
        client.stop()
        ids = receiver.received_ids()
        assert 300 == len(ids)
        assert 300 == len(set(ids))
        assert list(range(300)) == sorted(e["data"] for e in receiver.events)
