"""TelemetryProcessor in real structlog pipelines, configured as the docs show."""

from __future__ import annotations

import logging
import logging.config
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest
import structlog

from trace_telemetry import TelemetryClient, TelemetryHandler, TelemetryProcessor
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
        assert ["structured", "foreign %s"] == [e["name"] for e in events]
        assert {"order": 7, "level": "info", "logger": "shop"} == events[0]["data"]
        assert "warning" == events[1]["data"]["level"]
        assert "foreign record" == events[1]["data"]["message"]
        assert "_record" not in events[1]["data"]
        assert 2 == len(log_file.read_text().splitlines())


def configure_stdlib_pipeline(
    client: TelemetryClient, log_file: Path, telemetry_handler_first: bool
) -> None:
    """The common setup: the processor in the chain and in ``foreign_pre_chain``,
    a JSON file handler, and a root TelemetryHandler on the same client."""
    processor = TelemetryProcessor(client)
    handlers = ["telemetry", "file"] if telemetry_handler_first else ["file", "telemetry"]
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "formatters": {
                "json": {
                    "()": structlog.stdlib.ProcessorFormatter,
                    "processors": [
                        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                        structlog.processors.JSONRenderer(),
                    ],
                    "foreign_pre_chain": [structlog.stdlib.add_log_level, processor],
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "filename": str(log_file),
                    "formatter": "json",
                },
                "telemetry": {"class": "trace_telemetry.TelemetryHandler", "client": client},
            },
            "root": {"handlers": handlers, "level": "INFO"},
        }
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            processor,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


class TestProcessorAndHandlerTogether:
    @pytest.mark.parametrize("telemetry_handler_first", [True, False])
    def test_each_call_is_recorded_once(
        self,
        make_client: MakeClient,
        queue_path: Path,
        tmp_path: Path,
        telemetry_handler_first: bool,
    ) -> None:
        client = make_client()
        log_file = tmp_path / "app.log"
        configure_stdlib_pipeline(client, log_file, telemetry_handler_first)
        structlog.contextvars.bind_contextvars(request_id="r-1")
        log = structlog.get_logger("shop")
        log.info("order_placed", order=7)
        logging.getLogger("legacy").warning("disk %d%% full", 91)
        log.warning("order_placed", order=8)
        logging.getLogger("legacy").warning("disk %d%% full", 92)
        try:
            raise KeyError("k")
        except KeyError:
            log.exception("lookup_failed")
            logging.getLogger("legacy").exception("plain %s failed", "lookup")
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": False})
        events = read_lines(queue_path)
        names = [e["name"] for e in events]
        assert names == [
            "order_placed",
            "disk %d%% full",
            "order_placed",
            "disk %d%% full",
            "exception",
            "exception",
        ]
        # the structlog calls are the processor's events: bound context, no repr
        assert events[0]["data"] == {"request_id": "r-1", "order": 7, "level": "info"}
        assert events[4]["data"]["logMessage"] == "lookup_failed"
        assert events[4]["data"]["request_id"] == "r-1"
        assert [e["data"]["message"] for e in events[1:4:2]] == ["disk 91% full", "disk 92% full"]
        assert events[5]["data"]["logMessage"] == "plain lookup failed"
        assert len(log_file.read_text().splitlines()) == 6  # the file still gets every call

    def test_render_to_log_kwargs_is_recorded_once(
        self, make_client: MakeClient, queue_path: Path
    ) -> None:
        client = make_client()
        handler = TelemetryHandler(client=client)
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
        structlog.configure(
            processors=[
                structlog.stdlib.add_log_level,
                TelemetryProcessor(client),
                structlog.stdlib.render_to_log_kwargs,
            ],
            logger_factory=structlog.stdlib.LoggerFactory(),
            wrapper_class=structlog.stdlib.BoundLogger,
            cache_logger_on_first_use=False,
        )
        structlog.get_logger("api").info("served", status=200)
        structlog.get_logger("api").info("served", status=201)
        events = read_lines(queue_path)
        assert [(e["name"], e["data"]) for e in events] == [
            ("served", {"status": 200, "level": "info"}),
            ("served", {"status": 201, "level": "info"}),
        ]

    def test_a_plain_call_with_the_same_text_is_still_recorded(
        self, make_client: MakeClient, queue_path: Path
    ) -> None:
        """The processor's note never hides a later, different call."""
        client = make_client()
        logging.getLogger().addHandler(TelemetryHandler(client=client))
        logging.getLogger().setLevel(logging.INFO)
        structlog.configure(processors=[TelemetryProcessor(client, drop=True)])
        structlog.get_logger().info("hello")
        logging.getLogger("x").info("hello")
        logging.getLogger("x").info("hello")
        assert [e["name"] for e in read_lines(queue_path)] == ["hello"] * 3


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
