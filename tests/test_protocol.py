"""The wire protocols: the default one byte for byte, OTLP's failure table, headers, gzip."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

from trace_telemetry import TelemetryClient
from trace_telemetry._receiver import Receiver
from trace_telemetry._transport import HttpTransport

from .conftest import read_lines
from .otlp_support import Captured, Collector, attributes, partial_success_body

MakeClient = Callable[..., TelemetryClient]


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector().start()
    try:
        yield server
    finally:
        server.stop()
    assert not server.errors, server.errors


def otlp(make_client: MakeClient, collector: Collector, **extra: Any) -> TelemetryClient:
    extra.setdefault("otlp_encoding", "json")
    return make_client(protocol="otlp", endpoint_url=collector.url, **extra)


class TestDefaultProtocolUnchanged:
    def test_the_body_is_the_queue_lines_byte_for_byte(
        self,
        make_client: MakeClient,
        receiver: Receiver,
        queue_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        bodies: List[bytes] = []
        client = make_client(endpoint_url=receiver.url)
        original = HttpTransport.post

        def spy(self: HttpTransport, body: bytes, timeout: float) -> Any:
            bodies.append(body)
            return original(self, body, timeout)

        monkeypatch.setattr(HttpTransport, "post", spy)  # every slot's transport
        for index in range(5):
            client.track("e", {"i": index, "text": "ação ✓"})
        lines = queue_path.read_bytes().splitlines()
        assert client.flush(10)
        assert bodies == [b"[" + b",".join(lines) + b"]"]
        assert receiver.requests[0].headers["Content-Type"] == "application/json; charset=utf-8"

    def test_a_queue_written_by_an_otlp_client_drains_without_the_envelope(
        self, make_client: MakeClient, receiver: Receiver, queue_path: Path
    ) -> None:
        writer = make_client(protocol="otlp", endpoint_url="")
        logger = logging.getLogger("envelope.test")
        from trace_telemetry import TelemetryHandler

        handler = TelemetryHandler(client=writer)
        logger.addHandler(handler)
        logger.propagate = False
        try:
            logger.warning('tricky ,"_otlp":{ text', extra={"k": {"_otlp": {"x": "}"}}})
        finally:
            logger.removeHandler(handler)
        writer.track("plain", {"a": ',"_otlp":{'})
        (enveloped, plain) = read_lines(queue_path)
        assert enveloped["_otlp"]["door"] == "logging" and "_otlp" not in plain
        sender = make_client(endpoint_url=receiver.url)
        assert sender.flush(10)
        events = receiver.events
        assert [sorted(e) for e in events] == [sorted(plain)] * 2  # exactly the ten keys
        assert events[0]["data"]["k"] == {"_otlp": {"x": "}"}}  # the user's data is untouched
        assert events[1]["data"] == {"a": ',"_otlp":{'}


class TestOtlpFailureTable:
    def test_2xx_delivers(
        self, make_client: MakeClient, collector: Collector, queue_path: Path
    ) -> None:
        client = otlp(make_client, collector)
        client.track("a")
        assert client.flush(10)
        assert client.queued_count == 0 and len(collector.uids()) == 1

    @pytest.mark.parametrize("encoding", ["json", "protobuf"])
    def test_partial_success_is_done_counted_and_logged_once(
        self, make_client: MakeClient, collector: Collector, encoding: str, caplog: Any
    ) -> None:
        collector.responder = lambda captured: partial_success_body(encoding, 2, "bad records")
        client = otlp(make_client, collector, otlp_encoding=encoding, batch_size=5)
        for index in range(10):
            client.track("e", {"i": index})
        with caplog.at_level(logging.WARNING, logger="trace_telemetry"):
            assert client.flush(10)
        stats = client.stats()
        assert stats["queued"] == 0 and stats["sent"] == 10
        assert stats["dropped"] == {"otlp_partial_success": 4}
        warnings = [r for r in caplog.records if "otlp_partial_success" in r.getMessage()]
        assert len(warnings) == 1 and "bad records" in warnings[0].getMessage()

    def test_400_isolates_the_poison_into_rejected(
        self, make_client: MakeClient, collector: Collector, queue_path: Path
    ) -> None:
        def refuse_poison(captured: Captured) -> Any:
            for rl in captured.request.resource_logs:
                for sl in rl.scope_logs:
                    for record in sl.log_records:
                        if attributes(record).get("poison"):
                            return 400, {}, b'{"code":3,"message":"bad"}'
            return None

        collector.responder = refuse_poison
        client = otlp(make_client, collector, batch_size=8)
        for index in range(8):
            client.track("e", {"i": index, "poison": index == 5})
        assert client.flush(10)
        rejected = read_lines(Path(str(queue_path) + ".rejected"))
        assert [e["data"]["i"] for e in rejected] == [5]
        assert sorted(attributes(r)["i"] for r in collector.records()) == [0, 1, 2, 3, 4, 6, 7]
        bodies = [c.body for c in collector.captured]
        assert len(bodies) == len(set(bodies))  # no request is ever re-sent as is

    def test_413_splits_until_it_fits(self, make_client: MakeClient, collector: Collector) -> None:
        def small_only(captured: Captured) -> Any:
            count = sum(
                len(sl.log_records) for rl in captured.request.resource_logs for sl in rl.scope_logs
            )
            return (413, {}, b"{}") if count > 2 else None

        collector.responder = small_only
        client = otlp(make_client, collector, batch_size=8)
        for index in range(8):
            client.track("e", {"i": index})
        assert client.flush(10)
        assert sorted(attributes(r)["i"] for r in collector.records()) == list(range(8))
        assert client.stats()["rejected"] == 0

    @pytest.mark.parametrize("status", [429, 502, 503, 504])
    def test_retryable_statuses_keep_events_and_honour_retry_after(
        self, make_client: MakeClient, collector: Collector, status: int, queue_path: Path
    ) -> None:
        collector.responder = lambda captured: (status, {"Retry-After": "7"}, b"{}")
        client = otlp(make_client, collector, max_backoff_seconds=60)
        client.track("a")
        before = time.monotonic()
        assert not client.flush(10)
        assert client.queued_count == 1 and client.stats()["backing_off"]
        wait = client._delivery.next_attempt - before
        assert 5 < wait < 9
        assert not Path(str(queue_path) + ".rejected").exists()
        collector.responder = None
        assert client.flush(10) and len(collector.uids()) == 1

    def test_500_backs_off(self, make_client: MakeClient, collector: Collector) -> None:
        collector.responder = lambda captured: (500, {}, b"{}")
        client = otlp(make_client, collector)
        client.track("a")
        assert not client.flush(10)
        assert client.queued_count == 1 and client.stats()["retries"] == 1

    @pytest.mark.parametrize("status", [401, 403, 404, 405, 415, 422])
    def test_other_4xx_keep_the_backlog_with_a_loud_warning(
        self,
        make_client: MakeClient,
        collector: Collector,
        status: int,
        queue_path: Path,
        caplog: Any,
    ) -> None:
        collector.responder = lambda captured: (status, {}, b"{}")
        client = otlp(make_client, collector, batch_size=4)
        for index in range(10):
            client.track("e", {"i": index})
        with caplog.at_level(logging.WARNING, logger="trace_telemetry"):
            assert not client.flush(10)
            assert not client.flush(10)
        assert client.queued_count == 10
        assert not Path(str(queue_path) + ".rejected").exists()
        loud = [
            r
            for r in caplog.records
            if f"HTTP {status}" in r.getMessage() and "/v1/logs" in r.getMessage()
        ]
        assert len(loud) == 1  # once, naming the status and what to check
        collector.responder = None
        assert client.flush(10) and len(collector.uids()) == 10

    def test_no_answer_keeps_everything(self, make_client: MakeClient) -> None:
        client = make_client(
            protocol="otlp", endpoint_url="http://127.0.0.1:9/v1/logs", timeout_seconds=1
        )
        client.track("a")
        assert not client.flush(5)
        assert client.queued_count == 1


class TestHeadersAndCompression:
    def test_headers_are_sent_hidden_and_api_key_wins(
        self, make_client: MakeClient, collector: Collector, caplog: Any
    ) -> None:
        client = otlp(
            make_client,
            collector,
            api_key="the-key",
            headers={"Authorization": "Bearer s3cret", "X-API-Key": "loser", "X-Tenant": "t1"},
        )
        assert "s3cret" not in repr(client.options) and "s3cret" not in str(client.options)
        collector.responder = lambda captured: (401, {}, b"{}")
        client.track("a")
        with caplog.at_level(logging.DEBUG):
            client.flush(5)
        assert client._senders._slots  # the slots' transports hide them too
        assert all("s3cret" not in repr(slot.transport) for slot in client._senders._slots)
        assert "s3cret" not in caplog.text and "the-key" not in caplog.text
        headers = collector.captured[0].headers
        assert headers["Authorization"] == "Bearer s3cret"
        assert headers["X-API-Key"] == "the-key"
        assert headers["X-Tenant"] == "t1"

    def test_headers_work_on_the_default_protocol_too(
        self, make_client: MakeClient, receiver: Receiver
    ) -> None:
        client = make_client(endpoint_url=receiver.url, headers={"Authorization": "Bearer x"})
        client.track("a")
        assert client.flush(10)
        assert receiver.requests[0].headers["Authorization"] == "Bearer x"

    def test_otlp_headers_reach_every_slot(
        self, make_client: MakeClient, collector: Collector
    ) -> None:
        def slow(captured: Captured) -> None:
            time.sleep(0.1)  # requests overlap: several slots

        collector.responder = slow
        client = otlp(make_client, collector, headers={"Authorization": "Bearer x"}, batch_size=5)
        for index in range(40):
            client.track("e", {"i": index})
        assert client.flush(10)
        assert len(client._senders._slots) > 1
        assert [c.headers.get("Authorization") for c in collector.captured] == ["Bearer x"] * 8
        assert sorted(attributes(r)["i"] for r in collector.records()) == list(range(40))

    def test_otlp_gzip_is_the_transports_with_its_415_fallback(
        self, make_client: MakeClient, collector: Collector, caplog: Any
    ) -> None:
        def no_gzip(captured: Captured) -> Any:
            if captured.headers.get("Content-Encoding") == "gzip":
                return 415, {}, b"{}"
            return None

        collector.responder = no_gzip
        client = otlp(make_client, collector, compression="gzip", max_in_flight=1)
        for index in range(3):
            client.track("e", {"i": index})
        with caplog.at_level(logging.WARNING, logger="trace_telemetry"):
            assert client.flush(10)
        assert [c.headers.get("Content-Encoding") for c in collector.captured] == ["gzip", None]
        assert sorted(attributes(r)["i"] for r in collector.records()) == [0, 1, 2]
        assert "refused gzip bodies" in caplog.text
        assert client.stats()["dropped"] == {} and client.stats()["rejected"] == 0

    def test_the_otel_compression_variable_feeds_the_one_option(
        self, make_client: MakeClient, collector: Collector, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "gzip")
        client = otlp(make_client, collector)
        assert client.options.compression == "gzip"
        assert make_client(endpoint_url="").options.compression is None  # default protocol
        client.track("e", {"text": "x" * 500})
        assert client.flush(10)
        (captured,) = collector.captured
        assert captured.headers["Content-Encoding"] == "gzip"
        assert len(captured.raw) < len(captured.body)

    @pytest.mark.parametrize("encoding", ["json", "protobuf"])
    def test_gzip(self, make_client: MakeClient, collector: Collector, encoding: str) -> None:
        client = otlp(make_client, collector, otlp_encoding=encoding, compression="gzip")
        for index in range(20):
            client.track("e", {"i": index, "text": "x" * 200})
        assert client.flush(10)
        (captured,) = collector.captured
        assert captured.headers["Content-Encoding"] == "gzip"
        assert len(captured.raw) < len(captured.body) / 3
        assert len(collector.uids()) == 20
