from __future__ import annotations

import logging
import math
import os
import re
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict

import pytest

from trace_telemetry import TelemetryClient, TelemetryOptions
from trace_telemetry._event import EVENT_KEYS
from trace_telemetry._receiver import Receiver

from .conftest import read_lines
from .test_serialize import strict_loads

MakeClient = Callable[..., TelemetryClient]


class TestTrackForms:
    def test_the_three_forms_of_track_give_the_contract_data(
        self, make_client: MakeClient, queue_path: Path
    ) -> None:
        client = make_client(application_name=" MeuServico ", application_version="1.0.0")
        client.track("page_view")
        client.track("purchase", {"order_id": "123", "amount": 99.90})
        client.track("signup", "source", "google")
        client.track("cleared", "coupon", None)
        client.track(None)
        events = read_lines(queue_path)
        assert [
            None,
            {"order_id": "123", "amount": 99.9},
            {"source": "google"},
            {"coupon": None},
            None,
        ] == [e["data"] for e in events]
        assert ["page_view", "purchase", "signup", "cleared", ""] == [e["name"] for e in events]
        for event in events:
            assert list(EVENT_KEYS) == list(event)
            assert re.fullmatch("[0-9a-f]{32}", event["id"])
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", event["timestampUtc"])
            assert "MeuServico" == event["applicationName"]
            assert "1.0.0" == event["applicationVersion"]
            assert socket.gethostname() == event["machineName"]
            assert event["osDescription"]
            assert isinstance(event["ipAddress"], str)
            assert "" == event["countryCode"]

    def test_keyword_forms(self, make_client: MakeClient, queue_path: Path) -> None:
        client = make_client()
        client.track("a", data=[1, 2])
        client.track("b", property_name="k", property_value=0)
        assert [[1, 2], {"k": 0}] == [e["data"] for e in read_lines(queue_path)]

    def test_wrong_arguments_are_counted_not_raised(
        self, make_client: MakeClient, queue_path: Path
    ) -> None:
        client = make_client()
        client.track("x", 1, 2, 3)  # type: ignore[call-overload]
        client.track("y", bogus=1)  # type: ignore[call-overload]
        assert {"bad_arguments": 2} == client.stats()["dropped"]
        assert [] == read_lines(queue_path)

    def test_any_data_value_is_made_json_safe(
        self, make_client: MakeClient, queue_path: Path
    ) -> None:
        client = make_client()
        client.track("str", "text")
        client.track("num", 3)
        client.track("nan", math.nan)
        client.track("set", {1})
        assert ["text", 3, None, [1]] == [e["data"] for e in read_lines(queue_path)]

    def test_track_exception_works_after_the_except_block(
        self, make_client: MakeClient, queue_path: Path
    ) -> None:
        client = make_client()
        try:
            raise ValueError("boom")
        except ValueError as error:
            saved = error
        client.track_exception(saved, extra_data={"step": "checkout"})
        client.track_exception(saved, event_name="payment_failed", extra_data="note")
        first, second = read_lines(queue_path)
        assert "exception" == first["name"]
        assert {"message", "stackTrace", "exceptionType", "step"} == set(first["data"])
        assert "boom" == first["data"]["message"]
        assert "ValueError" == first["data"]["exceptionType"]
        assert 'raise ValueError("boom")' in first["data"]["stackTrace"]
        assert "payment_failed" == second["name"]
        assert "note" == second["data"]["extra"]


class TestHostilePayloads:
    def test_every_hostile_payload_is_queued_as_strict_json(
        self, make_client: MakeClient, queue_path: Path
    ) -> None:
        import datetime

        loop: Dict[str, Any] = {}
        loop["loop"] = loop
        deep: Any = 0
        for _ in range(2000):
            deep = {"d": deep}
        client = make_client()
        payloads = {
            "circular": loop,
            "nan": {"x": math.nan, "y": -math.inf},
            "bytes": b"\x00\xffraw",
            "sets": {frozenset({1, 2}), 3},
            "datetimes": [datetime.datetime.now(), datetime.date.today()],
            "deep": deep,
            "surrogates": {"\ud800key": "val\udfff"},
            "huge": "x" * (8 * 1024 * 1024),
        }
        for name, payload in payloads.items():
            client.track(name, payload)
        raw_lines = queue_path.read_bytes().splitlines()
        assert len(payloads) == len(raw_lines)
        for raw in raw_lines:
            assert len(raw) + 1 <= client.options.max_event_bytes
            assert list(EVENT_KEYS) == list(strict_loads(raw))
        huge = strict_loads(raw_lines[-1])
        assert huge["data"].startswith('"xxxx')
        assert huge["data"].endswith("[truncated by trace_telemetry: event over max_event_bytes]")
        assert 1 == client.stats()["truncated"]

    def test_a_huge_name_is_cut_too(self, make_client: MakeClient, queue_path: Path) -> None:
        client = make_client(max_event_bytes=4096)
        client.track("n" * 100_000, {"a": "b" * 100_000})
        (event,) = read_lines(queue_path)
        assert 1024 == len(event["name"])
        assert len(queue_path.read_bytes()) <= 4096


class TestBeforeSend:
    def test_the_hook_can_scrub_and_drop(self, make_client: MakeClient, queue_path: Path) -> None:
        def scrub(event: Dict[str, Any]) -> Any:
            if event["name"] == "drop me":
                return None
            event["data"] = {
                k: ("***" if k == "email" else v) for k, v in (event["data"] or {}).items()
            }
            del event["ipAddress"]
            event["extra_key"] = "ignored"
            return event

        client = make_client(before_send=scrub)
        client.track("signup", {"email": "a@b.c", "plan": "pro"})
        client.track("drop me")
        (event,) = read_lines(queue_path)
        assert {"email": "***", "plan": "pro"} == event["data"]
        assert "" == event["ipAddress"]
        assert list(EVENT_KEYS) == list(event)
        assert {"before_send": 1} == client.stats()["dropped"]

    def test_a_raising_hook_drops_the_event_instead_of_queueing_it_unscrubbed(
        self, make_client: MakeClient, queue_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        def broken(event: Dict[str, Any]) -> Dict[str, Any]:
            raise RuntimeError("scrubber bug")

        client = make_client(before_send=broken)
        with caplog.at_level(logging.WARNING, logger="trace_telemetry"):
            client.track("secret", {"ssn": "123"})
            client.track("secret", {"ssn": "456"})
        assert [] == read_lines(queue_path)
        assert {"before_send_error": 2} == client.stats()["dropped"]
        assert 1 == sum("before_send" in r.getMessage() for r in caplog.records)


class TestNeverRaises:
    def test_an_unwritable_queue_path_counts_drops(
        self, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        blocker = tmp_path / "a-file"
        blocker.write_text("x")
        client = TelemetryClient(TelemetryOptions(queue_path=str(blocker / "q.ndjson")))
        with caplog.at_level(logging.WARNING, logger="trace_telemetry"):
            for _ in range(3):
                client.track("lost")
        assert {"io_error": 3} == client.stats()["dropped"]
        assert 1 == len([r for r in caplog.records if "io_error" in r.getMessage()])
        assert 0 == client.queued_count
        assert client.flush(timeout=1) is False
        client.close()


class TestFilesArePrivate:
    def test_every_file_is_0600_whatever_the_umask(
        self, make_client: MakeClient, queue_path: Path, receiver: Receiver, behaviour: Any
    ) -> None:
        old = os.umask(0)
        try:
            behaviour.respond = lambda events, headers: (
                (400, {}) if events[0]["name"] == "bad" else None
            )
            client = make_client(endpoint_url=receiver.url, batch_size=1)
            client.track("good")
            client.track("bad")
            with open(queue_path, "ab") as handle:
                handle.write(b"garbage\n")
            assert client.flush(timeout=10)
            client.track("after")
        finally:
            os.umask(old)
        names = sorted(p.name for p in queue_path.parent.iterdir())
        assert [
            "telemetry-queue.ndjson",
            "telemetry-queue.ndjson.corrupt",
            "telemetry-queue.ndjson.lock",
            "telemetry-queue.ndjson.offset",
            "telemetry-queue.ndjson.rejected",
        ] == names
        for path in queue_path.parent.iterdir():
            assert 0o600 == path.stat().st_mode & 0o777, path.name
        assert 0o700 == queue_path.parent.stat().st_mode & 0o777


class TestSecrecy:
    def test_the_api_key_is_not_in_reprs_or_logs(
        self, make_client: MakeClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.DEBUG):
            client = make_client(
                endpoint_url="http://127.0.0.1:9/telemetry", api_key="top-secret", timeout_seconds=1
            )
            client.track("x")
            client.flush(timeout=2)
        assert "top-secret" not in repr(client)
        assert "top-secret" not in repr(client.options)
        assert "top-secret" not in str(client.stats())
        assert caplog.records
        assert all("top-secret" not in record.getMessage() for record in caplog.records)


class TestEmptyEndpoint:
    def test_nothing_is_sent_and_nothing_is_dropped(self, make_client: MakeClient) -> None:
        client = make_client(flush_interval_seconds=1)
        client.start()
        for index in range(5):
            client.track("kept", index)
        assert client.flush(timeout=1) is False
        time.sleep(1.3)
        assert 5 == client.queued_count
        assert 0 == client.stats()["dropped_total"]
        client.stop()


class TestLifecycle:
    def test_track_exception_of_a_non_exception_records_nothing(
        self, make_client: MakeClient
    ) -> None:
        client = make_client()
        client.track_exception(None)  # type: ignore[arg-type]
        client.track_exception("boom")  # type: ignore[arg-type]
        assert client.queued_count == 0
        assert client.stats()["dropped"] == {"bad_arguments": 2}

    def test_a_backlog_is_sent_within_about_a_second_of_start(
        self, make_client: MakeClient, receiver: Receiver
    ) -> None:
        earlier = make_client(endpoint_url=receiver.url)
        for number in range(5):
            earlier.track("from_an_earlier_run", number)
        earlier.close()
        client = make_client(endpoint_url=receiver.url, flush_interval_seconds=3600)
        started = time.monotonic()
        client.start()
        while len(receiver.events) < 5 and time.monotonic() - started < 30:
            time.sleep(0.02)
        assert len(receiver.events) == 5
        assert time.monotonic() - started < 1.0 + 2.0  # the interval is an hour

    def test_no_backlog_means_no_early_send(
        self, make_client: MakeClient, receiver: Receiver
    ) -> None:
        client = make_client(endpoint_url=receiver.url, flush_interval_seconds=3600)
        client.start()
        client.track("after_start")
        time.sleep(1.5)  # past the longest backlog delay
        assert receiver.requests == []

    def test_close_is_bounded_like_stop_while_a_request_hangs(
        self, make_client: MakeClient, queue_path: Path
    ) -> None:
        entered, release = threading.Event(), threading.Event()

        def hang(events: Any, headers: Any) -> None:
            entered.set()
            release.wait(30)

        with Receiver(responder=hang) as server:
            client = make_client(
                endpoint_url=server.url, flush_interval_seconds=1, timeout_seconds=20
            )
            client.track("stuck")
            client.start()
            assert entered.wait(10)  # the sender thread is inside a hanging request
            sender = client._worker._thread
            assert sender is not None
            assert client.flush(timeout=1) is False  # the queue is busy
            started = time.monotonic()
            client.close()
            assert time.monotonic() - started < 2.0 + 2.0
            release.set()
            sender.join(20)  # once free, the sender releases the files and session itself
            assert not sender.is_alive()
            assert not client._senders._slots  # sessions released
        assert len(server.events) == 1  # the answer came late, but it came: delivered
