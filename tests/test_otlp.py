"""The OTLP mapping, field by field, decoded with the official definitions (docs/otlp.md)."""

from __future__ import annotations

import calendar
import datetime
import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import structlog

from trace_telemetry import TelemetryClient, TelemetryHandler, TelemetryProcessor
from trace_telemetry._otlp import parse_timestamp

from .conftest import read_lines, run_python
from .otlp_support import Collector, attributes, plain

MakeClient = Callable[..., TelemetryClient]
ENCODINGS = ["json", "protobuf"]


@pytest.fixture
def collector() -> Iterator[Collector]:
    server = Collector().start()
    try:
        yield server
    finally:
        server.stop()
    assert not server.errors, server.errors  # every body decoded with the official definitions


@pytest.fixture(params=ENCODINGS)
def encoding(request: Any) -> str:
    return str(request.param)


def otlp_client(
    make_client: MakeClient, collector: Collector, encoding: str, **extra: Any
) -> TelemetryClient:
    extra.setdefault("application_name", "shop")
    extra.setdefault("application_version", "1.2.3")
    return make_client(protocol="otlp", otlp_encoding=encoding, endpoint_url=collector.url, **extra)


def expected_nanos(timestamp: str) -> int:
    """Independent of the SDK's parser: datetime arithmetic in whole microseconds."""
    moment = datetime.datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%S.%fZ")
    delta = moment - datetime.datetime(1970, 1, 1)
    return (delta.days * 86_400 * 10**6 + delta.seconds * 10**6 + delta.microseconds) * 1000


class TestTrackEvents:
    def test_an_event_maps_field_by_field(
        self, make_client: MakeClient, collector: Collector, encoding: str, queue_path: Path
    ) -> None:
        client = otlp_client(make_client, collector, encoding)
        data = {
            "sku": "A-1",
            "qty": 3,
            "price": 9.5,
            "gift": True,
            "note": None,
            "huge": 2**70,
            "negative_huge": -(2**64),
            "tags": ["x", 1, {"deep": [True]}],
            "address": {"city": "Recife", "geo": {"lat": -8.05}},
        }
        client.track("purchase", data)
        line = read_lines(queue_path)[0]
        assert "_otlp" not in line  # no span active: the line is the contract's
        assert client.flush(10)
        (captured,) = collector.captured
        assert captured.path == "/v1/logs"
        (resource_logs,) = captured.request.resource_logs
        resource = attributes(resource_logs.resource)
        assert resource["service.name"] == "shop"
        assert resource["service.version"] == "1.2.3"
        assert resource["host.name"] == line["machineName"]
        assert resource["os.description"] == line["osDescription"]
        if line["ipAddress"]:
            assert resource["host.ip"] == [line["ipAddress"]]
        assert resource["telemetry.sdk.language"] == "python"
        (scope_logs,) = resource_logs.scope_logs
        assert scope_logs.scope.name == "trace_telemetry"
        (record,) = scope_logs.log_records
        assert record.event_name == "purchase"
        assert record.time_unix_nano == expected_nanos(line["timestampUtc"])
        assert (
            record.time_unix_nano % 1000 == 0 and record.time_unix_nano % 1_000_000 != 0
        ) or True
        assert record.observed_time_unix_nano == record.time_unix_nano
        assert not record.HasField("body")  # events carry no body
        assert record.severity_number == 0 and record.severity_text == ""
        assert record.trace_id == b"" and record.span_id == b""
        got = attributes(record)
        assert got.pop("log.record.uid") == line["id"]
        assert "event.name" not in got
        assert got == {
            "sku": "A-1",
            "qty": 3,
            "price": 9.5,
            "gift": True,
            "note": None,
            "huge": str(2**70),
            "negative_huge": str(-(2**64)),
            "tags": ["x", 1, {"deep": [True]}],
            "address": {"city": "Recife", "geo": {"lat": -8.05}},
        }
        # the wire types, not just the values
        by_key = {entry.key: entry.value for entry in record.attributes}
        assert by_key["qty"].WhichOneof("value") == "int_value"
        assert by_key["huge"].WhichOneof("value") == "string_value"
        assert by_key["address"].WhichOneof("value") == "kvlist_value"
        assert by_key["tags"].WhichOneof("value") == "array_value"

    def test_microseconds_are_kept(self) -> None:
        assert parse_timestamp("2026-01-02T03:04:05.123456Z") == (
            calendar.timegm((2026, 1, 2, 3, 4, 5, 0, 0, 0)) * 10**9 + 123_456_000
        )
        assert parse_timestamp("1970-01-01T00:00:00Z") == 0
        assert parse_timestamp("not a time") == 0

    @pytest.mark.parametrize(
        ("data", "expected"),
        [
            ("plain text", {"data": "plain text"}),
            ([1, 2], {"data": [1, 2]}),
            (None, {}),
            (7, {"data": 7}),
        ],
    )
    def test_data_that_is_not_a_dict_is_one_attribute(
        self, make_client: MakeClient, collector: Collector, data: Any, expected: Any
    ) -> None:
        client = otlp_client(make_client, collector, "json")
        client.track("e", data)
        assert client.flush(10)
        (record,) = collector.records()
        got = attributes(record)
        del got["log.record.uid"]
        assert got == expected

    def test_track_exception_gives_exception_attributes(
        self, make_client: MakeClient, collector: Collector, encoding: str
    ) -> None:
        client = otlp_client(make_client, collector, encoding)
        try:
            try:
                raise KeyError("inner")
            except KeyError as inner:
                raise ValueError("outer") from inner
        except ValueError as error:
            client.track_exception(error, extra_data={"order": 7})
        assert client.flush(10)
        (record,) = collector.records()
        got = attributes(record)
        assert record.event_name == "exception"
        assert got["exception.type"] == "ValueError"
        assert got["exception.message"] == "outer"
        assert "Traceback" in got["exception.stacktrace"]
        assert got["trace_telemetry.exception.inner_message"] == "'inner'"
        assert got["order"] == 7
        assert not {"message", "stackTrace", "exceptionType", "innerMessage"} & set(got)

    def test_deep_values_beyond_the_nesting_cap_become_json_text(
        self, make_client: MakeClient, collector: Collector, encoding: str
    ) -> None:
        client = otlp_client(make_client, collector, encoding)
        deep: Any = "leaf"
        for _ in range(40):
            deep = {"d": deep}
        client.track("deep", {"v": deep})
        assert client.flush(10)
        (record,) = collector.records()
        value = attributes(record)["v"]
        for _ in range(20):
            value = value["d"]
        assert isinstance(value, str) and json.loads(value)["d"]["d"]


class TestResources:
    def test_several_identities_become_several_resource_logs(
        self, make_client: MakeClient, collector: Collector, queue_path: Path
    ) -> None:
        first = make_client(application_name="billing", application_version="1")
        second = make_client(application_name="search", application_version="2")
        first.track("a")
        second.track("b")
        first.track("c")
        sender = make_client(protocol="otlp", endpoint_url=collector.url, application_name="cli")
        assert sender.flush(10)
        (captured,) = collector.captured
        groups = {
            attributes(rl.resource)["service.name"]: [
                r.event_name for sl in rl.scope_logs for r in sl.log_records
            ]
            for rl in captured.request.resource_logs
        }
        assert groups == {
            "billing": ["a", "c"],
            "search": ["b"],
        }  # the events' identity, not the sender's

    def test_resource_attributes_option_and_environment(
        self, make_client: MakeClient, collector: Collector, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv(
            "OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod,team=a%20b"
        )
        client = make_client(
            protocol="otlp",
            endpoint_url=collector.url,
            application_name="shop",
            resource_attributes={
                "team": "payments",
                "service.name": "ignored",
                "zones": ["a", "b"],
            },
        )
        client.track("e")
        assert client.flush(10)
        (captured,) = collector.captured
        resource = attributes(captured.request.resource_logs[0].resource)
        assert resource["deployment.environment.name"] == "prod"
        assert resource["team"] == "payments"  # the option wins over the variable
        assert resource["zones"] == ["a", "b"]
        assert resource["service.name"] == "shop"  # the event's own identity wins


class TestLogRecords:
    def test_handler_records_are_log_records(
        self, make_client: MakeClient, collector: Collector, encoding: str
    ) -> None:
        client = otlp_client(make_client, collector, encoding)
        handler = TelemetryHandler(client=client)
        logger = logging.getLogger("shop.payments")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        try:
            logger.info("charged %s", "u-1", extra={"amount": 12, "currency": "BRL"})
            logger.warning("slow")
            logger.log(23, "custom level")
            try:
                try:
                    {}["k"]
                except KeyError as inner:
                    raise RuntimeError("payment failed") from inner
            except RuntimeError:
                logger.exception("could not charge %s", "u-2", extra={"order": 9})
        finally:
            logger.removeHandler(handler)
        assert client.flush(10)
        (captured,) = collector.captured
        (resource_logs,) = captured.request.resource_logs
        (scope_logs,) = resource_logs.scope_logs
        assert scope_logs.scope.name == "shop.payments"
        info, warning, custom, error = scope_logs.log_records
        assert (info.severity_number, info.severity_text) == (9, "INFO")
        assert (warning.severity_number, warning.severity_text) == (13, "WARNING")
        assert custom.severity_number == 12  # INFO + 3 is INFO4: the finest step
        assert (error.severity_number, error.severity_text) == (17, "ERROR")
        for record in (info, warning, custom, error):
            assert record.event_name == ""
            assert record.time_unix_nano > 0
        assert plain(info.body) == "charged u-1"
        got = attributes(info)
        assert set(got) == {"log.record.uid", "amount", "currency"}  # level/logger/message mapped
        assert got["amount"] == 12
        assert plain(error.body) == "could not charge u-2"
        got = attributes(error)
        assert got["exception.type"] == "RuntimeError"
        assert got["exception.message"] == "payment failed"
        assert got["exception.stacktrace"].startswith("Traceback")
        assert got["trace_telemetry.exception.inner_message"] == "'k'"
        assert got["order"] == 9
        assert not {"level", "logger", "logMessage", "message"} & set(got)

    def test_structlog_records_are_log_records(
        self, make_client: MakeClient, collector: Collector, encoding: str
    ) -> None:
        client = otlp_client(make_client, collector, encoding)
        logger = structlog.wrap_logger(
            structlog.PrintLogger(open("/dev/null", "w")),
            processors=[
                structlog.processors.add_log_level,
                TelemetryProcessor(client, drop=True),
            ],
        ).bind(request_id="r-1", logger="shop.api")
        logger.info("user signed in", user=42)
        try:
            raise OSError("disk gone")
        except OSError:
            logger.exception("save failed")
        assert client.flush(10)
        (scope_logs,) = collector.captured[0].request.resource_logs[0].scope_logs
        assert scope_logs.scope.name == "shop.api"
        info, error = scope_logs.log_records
        assert (info.severity_number, info.severity_text) == (9, "info")
        assert plain(info.body) == "user signed in"
        assert attributes(info).keys() == {"log.record.uid", "request_id", "user"}
        assert (error.severity_number, error.severity_text) == (17, "error")
        assert plain(error.body) == "save failed"
        got = attributes(error)
        assert got["exception.type"] == "OSError"
        assert got["exception.message"] == "disk gone"
        assert got["request_id"] == "r-1"


class TestSpans:
    def test_the_active_span_ids_travel_with_each_door(
        self, make_client: MakeClient, collector: Collector, encoding: str
    ) -> None:
        from opentelemetry.sdk.trace import TracerProvider

        tracer = TracerProvider().get_tracer("test")
        client = otlp_client(make_client, collector, encoding)
        handler = TelemetryHandler(client=client)
        logger = logging.getLogger("shop.spans")
        logger.addHandler(handler)
        logger.propagate = False
        try:
            with tracer.start_as_current_span("checkout") as span:
                context = span.get_span_context()
                client.track("in span")
                logger.warning("also in span")
            client.track("after span")
        finally:
            logger.removeHandler(handler)
        assert client.flush(10)
        records = collector.records()
        by_name = {r.event_name or plain(r.body): r for r in records}
        for name in ("in span", "also in span"):
            record = by_name[name]
            assert record.trace_id == context.trace_id.to_bytes(16, "big")
            assert record.span_id == context.span_id.to_bytes(8, "big")
            assert record.flags == int(context.trace_flags)
        assert by_name["after span"].trace_id == b""
        if encoding == "json":
            for captured in collector.captured:
                raw = json.loads(captured.body)
                ids = [
                    r.get("traceId")
                    for rl in raw["resourceLogs"]
                    for sl in rl["scopeLogs"]
                    for r in sl["logRecords"]
                ]
                assert f"{context.trace_id:032x}" in ids  # hex, not base64

    def test_opentelemetry_is_never_imported_by_the_sdk(
        self, tmp_path: Path, collector: Collector
    ) -> None:
        result = run_python(
            "import sys, logging\n"
            "from trace_telemetry import TelemetryClient, TelemetryOptions, TelemetryHandler\n"
            f"c = TelemetryClient(TelemetryOptions(protocol='otlp', endpoint_url={collector.url!r}, queue_path={str(tmp_path / 'q')!r}))\n"
            "c.track('e', {'a': 1})\n"
            "logging.getLogger('x').addHandler(TelemetryHandler(client=c))\n"
            "logging.getLogger('x').warning('w')\n"
            "assert c.flush(10)\n"
            "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "[]"
        assert len(collector.records()) == 2
