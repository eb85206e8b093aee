"""TelemetryProcessor in real structlog pipelines, configured as the docs show."""

from __future__ import annotations

import logging
import logging.config
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest
import structlog

from trace_telemetry import TelemetryClient, TelemetryProcessor
from trace_telemetry._receiver import Receiver

from .conftest import read_lines

MakeClient = Callable[..., TelemetryClient]


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


class Capture:
    """A final 'renderer' that keeps what reached the end of the chain."""

    def __init__(self) -> None:
        self.seen: List[dict] = []

    def __call__(self, logger: Any, method_name: str, event_dict: dict) -> str:
        self.seen.append(dict(event_dict))
        return "rendered"


class TestPlainStructlog:
    def test_events_are_recorded_and_passed_on_unchanged(
        self, make_client: MakeClient, queue_path: Path
    ) -> None:
        capture = Capture()
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                TelemetryProcessor(make_client()),
                capture,
            ]
        )
        structlog.contextvars.bind_contextvars(request_id="r-1")
        log = structlog.get_logger().bind(user="u1")
        log.info("purchase", amount=99.9, items={"a", "b"})
        (event,) = read_lines(queue_path)
        assert "purchase" == event["name"]
        assert {
            "request_id": "r-1",
            "user": "u1",
            "amount": 99.9,
            "items": ["a", "b"],
            "level": "info",
        } == event["data"]
        assert [
            {
                "request_id": "r-1",
                "user": "u1",
                "amount": 99.9,
                "items": {"a", "b"},
                "level": "info",
                "event": "purchase",
            }
        ] == capture.seen

    def test_drop_makes_a_telemetry_only_pipeline(
        self, make_client: MakeClient, queue_path: Path
    ) -> None:
        capture = Capture()
        structlog.configure(processors=[TelemetryProcessor(make_client(), drop=True), capture])
        structlog.get_logger().info("only telemetry")
        assert [] == capture.seen
        assert ["only telemetry"] == [e["name"] for e in read_lines(queue_path)]

    @pytest.mark.parametrize("form", ["true", "exception", "tuple"])
    def test_exc_info_makes_an_exception_event(
        self, form: str, make_client: MakeClient, queue_path: Path
    ) -> None:
        structlog.configure(
            processors=[
                structlog.processors.add_log_level,
                TelemetryProcessor(make_client()),
                Capture(),
            ]
        )
        log = structlog.get_logger()
        try:
            raise ValueError("bad sku")
        except ValueError as error:
            if form == "true":
                log.exception("checkout failed", step="pay")
            elif form == "exception":
                log.error("checkout failed", step="pay", exc_info=error)
            else:
                import sys

                log.error("checkout failed", step="pay", exc_info=sys.exc_info())
        (event,) = read_lines(queue_path)
        data = event["data"]
        assert "exception" == event["name"]
        assert ("bad sku", "ValueError", "checkout failed", "pay", "error") == (
            data["message"],
            data["exceptionType"],
            data["logMessage"],
            data["step"],
            data["level"],
        )
        assert 'raise ValueError("bad sku")' in data["stackTrace"]
        assert "exc_info" not in data

    def test_after_format_exc_info_the_rendered_text_is_used(
        self, make_client: MakeClient, queue_path: Path
    ) -> None:
        structlog.configure(
            processors=[
                structlog.processors.format_exc_info,
                TelemetryProcessor(make_client()),
                Capture(),
            ]
        )

        class PaymentError(Exception):
            pass

        try:
            raise PaymentError("card declined\nsecond line")
        except PaymentError:
            structlog.get_logger().exception("payment")
        (event,) = read_lines(queue_path)
        data = event["data"]
        assert "exception" == event["name"]
        assert data["exceptionType"].endswith("PaymentError")
        assert "card declined\nsecond line" == data["message"]
        assert data["stackTrace"].startswith("Traceback (most recent call last):")
        assert "exception" not in data

    def test_a_non_serializable_value_never_breaks_the_chain(
        self, make_client: MakeClient, queue_path: Path
    ) -> None:
        capture = Capture()
        structlog.configure(processors=[TelemetryProcessor(make_client()), capture])
        loop: dict = {}
        loop["me"] = loop
        structlog.get_logger().info("weird", loop=loop, nan=float("nan"))
        assert 1 == len(capture.seen)
        assert {"loop": {"me": "<circular reference>"}, "nan": None} == read_lines(queue_path)[0][
            "data"
        ]


class TestStdlibIntegration:
    def test_structlog_stdlib_with_processor_formatter(
        self, make_client: MakeClient, queue_path: Path, tmp_path: Path
    ) -> None:
        client = make_client()
        log_file = tmp_path / "app.log"
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "formatters": {
                    "plain": {
                        "()": structlog.stdlib.ProcessorFormatter,
                        "processors": [
                            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                            structlog.processors.JSONRenderer(),
                        ],
                        "foreign_pre_chain": [
                            structlog.stdlib.add_log_level,
                            TelemetryProcessor(client),
                        ],
                    }
                },
                "handlers": {
                    "file": {
                        "class": "logging.FileHandler",
                        "filename": str(log_file),
                        "formatter": "plain",
                    }
                },
                "loggers": {"": {"handlers": ["file"], "level": "INFO"}},
            }
        )
        structlog.configure(
            processors=[
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                TelemetryProcessor(client),
                structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
        )
        structlog.get_logger("shop").info("structured", order=7)
        logging.getLogger("legacy").warning("foreign %s", "record")
        logging.config.dictConfig(
            {"version": 1, "disable_existing_loggers": False, "root": {"handlers": []}}
        )
        events = read_lines(queue_path)
        assert ["structured", "foreign record"] == [e["name"] for e in events]
        assert {"order": 7, "level": "info", "logger": "shop"} == events[0]["data"]
        assert "warning" == events[1]["data"]["level"]
        assert "_record" not in events[1]["data"]
        assert 2 == len(log_file.read_text().splitlines())


class TestOptions:
    def test_option_keywords_share_the_process_client(
        self, queue_path: Path, receiver: Receiver
    ) -> None:
        first = TelemetryProcessor(queue_path=str(queue_path), endpoint_url=receiver.url)
        second = TelemetryProcessor(queue_path=str(queue_path), endpoint_url=receiver.url)
        assert first.client is second.client
        assert first.client._worker.running
        structlog.configure(processors=[first, Capture()])
        structlog.get_logger().info("shared")
        second.close()
        assert first.client._worker.running
        first.close()
        assert ["shared"] == [e["name"] for e in receiver.events]

    def test_bad_options_raise_at_configuration_time(self, queue_path: Path) -> None:
        with pytest.raises(ValueError, match="batch_size"):
            TelemetryProcessor(queue_path=str(queue_path), batch_size=0)
