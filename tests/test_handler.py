"""TelemetryHandler through logging.config, against a real loopback receiver."""

from __future__ import annotations

import io
import logging
import logging.config
import textwrap
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

from trace_telemetry import TelemetryClient, TelemetryHandler, TelemetryOptions
from trace_telemetry._receiver import Receiver

from .conftest import Behaviour, read_lines, run_python

MakeClient = Callable[..., TelemetryClient]


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    """A uniquely named logger per test, detached afterwards."""
    log = logging.getLogger(f"test.{uuid.uuid4().hex[:8]}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    yield log
    for handler in log.handlers[:]:
        log.removeHandler(handler)
        handler.close()


def handler_config(queue_path: Path, endpoint: str = "", **extra: Any) -> Dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "telemetry": {
                "class": "trace_telemetry.TelemetryHandler",
                "level": "INFO",
                "endpoint_url": endpoint,
                "queue_path": str(queue_path),
                "application_name": "shop",
                "flush_interval_seconds": 1,
                **extra,
            }
        },
        "root": {"handlers": ["telemetry"], "level": "DEBUG"},
    }


def shutdown_root() -> None:
    logging.config.dictConfig(
        {
            "version": 1,
            "disable_existing_loggers": False,
            "root": {"handlers": [], "level": "WARNING"},
        }
    )


class TestRecordToEvent:
    def test_an_info_record_with_extras(
        self, make_client: MakeClient, queue_path: Path, logger: logging.Logger
    ) -> None:
        logger.addHandler(TelemetryHandler(client=make_client()))
        logger.info("disk %d%% full", 93, extra={"mount": "/", "free": 7.5})
        (event,) = read_lines(queue_path)
        assert "disk %d%% full" == event["name"]
        assert {
            "message": "disk 93% full",
            "level": "INFO",
            "logger": logger.name,
            "mount": "/",
            "free": 7.5,
        } == event["data"]

    def test_the_timestamp_is_the_record_creation_time(
        self, make_client: MakeClient, queue_path: Path, logger: logging.Logger
    ) -> None:
        logger.addHandler(TelemetryHandler(client=make_client()))
        record = logger.makeRecord(
            logger.name, logging.INFO, __file__, 1, "at a fixed time", (), None
        )
        record.created = 1795831454.123456
        logger.handle(record)
        assert "2026-11-28T02:04:14.123456Z" == read_lines(queue_path)[0]["timestampUtc"]

    def test_exception_records_become_exception_events(
        self, make_client: MakeClient, queue_path: Path, logger: logging.Logger
    ) -> None:
        logger.addHandler(TelemetryHandler(client=make_client()))
        try:
            raise KeyError("sku-9")
        except KeyError:
            logger.exception("checkout failed for %s", "u1", extra={"step": "pay"})
        (event,) = read_lines(queue_path)
        assert "exception" == event["name"]
        data = event["data"]
        assert "'sku-9'" == data["message"]
        assert "KeyError" == data["exceptionType"]
        assert "raise KeyError" in data["stackTrace"]
        assert "checkout failed for u1" == data["logMessage"]
        assert ("ERROR", logger.name, "pay") == (data["level"], data["logger"], data["step"])
        assert "exc_info" not in data

    def test_names_can_be_chosen(
        self, make_client: MakeClient, queue_path: Path, logger: logging.Logger
    ) -> None:
        client = make_client()
        logger.addHandler(
            TelemetryHandler(
                client=client,
                event_name=lambda r: f"{r.name}:{r.levelname}",
                exception_event_name="crash",
            )
        )
        logger.warning("hello")
        try:
            raise ValueError("x")
        except ValueError:
            logger.error("oops", exc_info=True)
        assert [f"{logger.name}:WARNING", "crash"] == [e["name"] for e in read_lines(queue_path)]

    def test_exc_info_without_an_exception_is_a_normal_event(
        self, make_client: MakeClient, queue_path: Path, logger: logging.Logger
    ) -> None:
        logger.addHandler(TelemetryHandler(client=make_client()))
        logger.exception("no exception active")
        assert "no exception active" == read_lines(queue_path)[0]["name"]

    def test_a_dict_message_is_not_modified(
        self, make_client: MakeClient, queue_path: Path, logger: logging.Logger
    ) -> None:
        logger.addHandler(TelemetryHandler(client=make_client()))
        payload = {"order": 1}
        logger.info(payload)
        assert {"order": 1} == payload
        assert 1 == read_lines(queue_path)[0]["data"]["order"]

    def test_non_json_extras_are_made_safe(
        self, make_client: MakeClient, queue_path: Path, logger: logging.Logger
    ) -> None:
        logger.addHandler(TelemetryHandler(client=make_client()))
        logger.info(
            "odd",
            extra={
                "when": __import__("datetime").date(2026, 1, 2),
                "nan": float("nan"),
                "obj": object,
            },
        )
        data = read_lines(queue_path)[0]["data"]
        assert ("2026-01-02", None, "<class 'object'>") == (data["when"], data["nan"], data["obj"])


class TestJsonFormatter:
    def test_a_configured_json_formatter_shapes_data(
        self, queue_path: Path, logger: logging.Logger
    ) -> None:
        config = handler_config(queue_path)
        config["formatters"] = {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter"
                if _has_json_module()
                else "pythonjsonlogger.jsonlogger.JsonFormatter",
                "fmt": "%(levelname)s %(name)s %(message)s %(funcName)s",
                "rename_fields": {"levelname": "severity"},
                "static_fields": {"service": "shop"},
            }
        }
        config["handlers"]["telemetry"]["formatter"] = "json"
        logging.config.dictConfig(config)
        log = logging.getLogger("shop.orders")
        log.info("order %s placed", 42, extra={"order_id": 42})
        try:
            raise RuntimeError("db down")
        except RuntimeError:
            log.exception("could not save")
        shutdown_root()
        info, error = read_lines(queue_path)
        assert {
            "severity": "INFO",
            "name": "shop.orders",
            "message": "order 42 placed",
            "funcName": "test_a_configured_json_formatter_shapes_data",
            "service": "shop",
            "order_id": 42,
        } == info["data"]
        assert "db down" == error["data"]["message"]
        assert "could not save" == error["data"]["logMessage"]
        assert ("ERROR", "shop") == (error["data"]["severity"], error["data"]["service"])
        assert "exc_info" not in error["data"]
        assert "RuntimeError: db down" in error["data"]["stackTrace"]

    def test_a_plain_formatter_formats_the_message(
        self, make_client: MakeClient, queue_path: Path, logger: logging.Logger
    ) -> None:
        handler = TelemetryHandler(client=make_client())
        handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
        logger.addHandler(handler)
        logger.info("hi %s", "there")
        assert "[INFO] hi there" == read_lines(queue_path)[0]["data"]["message"]


def _has_json_module() -> bool:
    try:
        import pythonjsonlogger.json  # noqa: F401
    except ImportError:
        return False
    return True


class TestDictConfig:
    def test_option_keywords_build_an_owned_started_client(
        self, queue_path: Path, receiver: Receiver
    ) -> None:
        logging.config.dictConfig(handler_config(queue_path, receiver.url))
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, TelemetryHandler)
        assert handler.client._worker.running
        logging.getLogger("shop").info("via dictConfig")
        deadline = time.monotonic() + 10
        while not receiver.events and time.monotonic() < deadline:
            time.sleep(0.05)
        shutdown_root()
        assert ["via dictConfig"] == [e["name"] for e in receiver.events]
        assert "shop" == receiver.events[0]["applicationName"]

    def test_handlers_on_the_same_queue_share_one_client(
        self, queue_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        config = handler_config(queue_path)
        config["handlers"]["second"] = dict(
            config["handlers"]["telemetry"], application_name="other"
        )
        config["root"]["handlers"] = ["telemetry", "second"]
        with caplog.at_level(logging.WARNING, logger="trace_telemetry"):
            logging.config.dictConfig(config)
        first, second = logging.getLogger().handlers
        assert first.client is second.client  # type: ignore[attr-defined]
        assert any("first configuration wins" in r.getMessage() for r in caplog.records)
        shutdown_root()

    def test_an_existing_client_by_ext_reference(
        self, queue_path: Path, make_client: MakeClient
    ) -> None:
        import tests

        tests.shared_client = make_client()  # type: ignore[attr-defined]
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {
                    "t": {
                        "class": "trace_telemetry.TelemetryHandler",
                        "client": "ext://tests.shared_client",
                    }
                },
                "root": {"handlers": ["t"], "level": "INFO"},
            }
        )
        logging.getLogger("x").info("to the shared client")
        shutdown_root()
        assert ["to the shared client"] == [e["name"] for e in read_lines(queue_path)]
        assert tests.shared_client._worker.running is False  # type: ignore[attr-defined]
        tests.shared_client.track("still usable")  # type: ignore[attr-defined]
        assert 2 == tests.shared_client.queued_count  # type: ignore[attr-defined]

    def test_bad_options_fail_at_configuration_time(self, queue_path: Path) -> None:
        with pytest.raises(ValueError, match="Unable to configure handler") as info:
            logging.config.dictConfig(handler_config(queue_path, "ftp://nope"))
        assert "endpoint_url" in str(info.value.__cause__)
        assert "'ftp://nope'" in str(info.value.__cause__)
        with pytest.raises(ValueError, match="not both"):
            TelemetryHandler(
                client=TelemetryClient(TelemetryOptions(queue_path=str(queue_path))),
                endpoint_url="http://x",
            )

    def test_file_config(self, tmp_path: Path, queue_path: Path) -> None:
        ini = tmp_path / "logging.ini"
        ini.write_text(
            textwrap.dedent(f"""
            [loggers]
            keys=root
            [handlers]
            keys=telemetry
            [formatters]
            keys=
            [logger_root]
            level=INFO
            handlers=telemetry
            [handler_telemetry]
            class=trace_telemetry.TelemetryHandler
            level=INFO
            args=()
            kwargs={{"queue_path": {str(queue_path)!r}, "application_name": "ini"}}
        """)
        )
        logging.config.fileConfig(str(ini), disable_existing_loggers=False)
        logging.getLogger("app").info("from fileConfig")
        shutdown_root()
        (event,) = read_lines(queue_path)
        assert ("from fileConfig", "ini") == (event["name"], event["applicationName"])


class TestNoFeedbackLoop:
    def test_a_root_handler_at_debug_does_not_record_its_own_traffic(
        self, queue_path: Path, receiver: Receiver
    ) -> None:
        logging.config.dictConfig(handler_config(queue_path, receiver.url, level="DEBUG"))
        logging.getLogger("app").debug("one")
        logging.getLogger("trace_telemetry").warning("sdk talking")
        handler = logging.getLogger().handlers[0]
        assert handler.client.flush(timeout=10)  # type: ignore[attr-defined]
        logging.getLogger("app").debug("two")
        time.sleep(2.5)  # let the background sender run with urllib3 logging at DEBUG
        shutdown_root()
        assert ["one", "two"] == [e["name"] for e in receiver.events]
        assert 0 == TelemetryClient(TelemetryOptions(queue_path=str(queue_path))).queued_count


class TestNoDeadlock:
    def test_reconfiguring_while_a_send_is_stuck_returns_promptly(
        self, queue_path: Path, receiver: Receiver, behaviour: Behaviour
    ) -> None:
        behaviour.release.clear()  # the server hangs
        logging.config.dictConfig(handler_config(queue_path, receiver.url, timeout_seconds=30))
        logging.getLogger("app").error("stuck")
        time.sleep(1.5)  # the sender's first tick (1 s) is now stuck in its request
        done = threading.Event()

        def reconfigure() -> None:
            shutdown_root()
            done.set()

        thread = threading.Thread(target=reconfigure, daemon=True)
        started = time.monotonic()
        thread.start()
        thread.join(15)
        elapsed = time.monotonic() - started
        # Count before releasing the server: the stuck request would then succeed.
        queued = TelemetryClient(TelemetryOptions(queue_path=str(queue_path))).queued_count
        behaviour.release.set()
        assert done.is_set()
        assert elapsed < 5
        assert 1 == queued

    def test_close_never_joins_a_sender_waiting_for_the_logging_lock(
        self, tmp_path: Path, receiver: Receiver
    ) -> None:
        code = r"""
import logging, logging.config, sys, threading, time
from trace_telemetry import TelemetryHandler
handler = TelemetryHandler(queue_path=sys.argv[1], endpoint_url=sys.argv[2], flush_interval_seconds=1)
logging.getLogger().addHandler(handler)
logging.getLogger("app").warning("x")
lock = getattr(logging, "_lock")
with lock:  # what dictConfig holds while it closes old handlers
    time.sleep(1.5)  # the sender ticks now and needs the lock to log
    started = time.monotonic()
    handler.close()
    print(round(time.monotonic() - started, 1))
"""
        result = run_python(code, str(tmp_path / "q.ndjson"), receiver.url, timeout=60)
        assert 0 == result.returncode, result.stderr
        assert float(result.stdout) < 3.0


def test_emit_never_raises_even_if_the_formatter_does(
    make_client: MakeClient, logger: logging.Logger
) -> None:
    class Broken(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            raise RuntimeError("formatter bug")

    client = make_client()
    handler = TelemetryHandler(client=client)
    handler.setFormatter(Broken())
    logger.addHandler(handler)
    logger.info("x")
    assert 1 == client.stats()["dropped"]["internal_error"]


class TestDefaultFields:
    """The handler's fast default fields must equal python-json-logger's output."""

    @pytest.mark.parametrize(
        "extra",
        [{}, {"order": 1, "user": "u"}, {"_private": 1, "visible": [1, 2]}, {"taskName_like": "x"}],
    )
    def test_identical_to_the_default_json_formatter(self, extra: Dict[str, Any]) -> None:
        from trace_telemetry import _records

        record = logging.makeLogRecord(
            {
                "name": "shop",
                "levelno": 20,
                "levelname": "INFO",
                "msg": "hello %s",
                "args": ("you",),
                **extra,
            }
        )
        expected = _records.record_fields(
            _records.default_formatter(), logging.makeLogRecord(record.__dict__)
        )
        assert expected == _records.default_fields(record)
        assert list(expected) == list(_records.default_fields(record))

    @pytest.mark.parametrize("already_formatted", [False, True])
    @pytest.mark.parametrize("factory", ["plain", "subclass", "adds_attributes"])
    def test_identical_for_records_from_real_logger_calls(
        self, factory: str, already_formatted: bool
    ) -> None:
        from trace_telemetry import _records

        class Record(logging.LogRecord):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                self.tenant = "acme"  # set before the standard attributes
                super().__init__(*args, **kwargs)

        plain = logging.getLogRecordFactory()

        def adds_attributes(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = plain(*args, **kwargs)
            record.request_id = "r-1"
            return record

        made: List[logging.LogRecord] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                made.append(record)

        logger = logging.getLogger("test.default_fields")
        logger.handlers[:] = [logging.StreamHandler(io.StringIO())] if already_formatted else []
        logger.handlers.append(Keep())
        logger.propagate = False
        chosen = {"plain": plain, "subclass": Record, "adds_attributes": adds_attributes}
        logging.setLogRecordFactory(chosen[factory])
        try:
            logger.warning("order %s", 7, extra={"order": 7, "_hidden": 1, "items": [1]})
        finally:
            logging.setLogRecordFactory(plain)
            logger.handlers.clear()
        record = made[0]
        expected = _records.record_fields(_records.default_formatter(), record)
        assert expected == _records.default_fields(record)
        assert list(expected) == list(_records.default_fields(record))
        assert {"order": 7, "items": [1]}.items() <= expected.items()
