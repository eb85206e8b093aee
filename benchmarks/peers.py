"""Section 5: the peers on their hot path, each in its own process beside the floor.

Run as ``python -m benchmarks.peers NAME SINK_BASE TCP_PORT ROUNDS PER_ROUND``;
prints one JSON line. Each peer is configured as its documentation shows and
pointed at the local sink; after the burst it gets its documented flush or
shutdown, then the parent asks the sink how many events arrived.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from typing import Callable, Dict, Tuple

from ._common import PROPERTIES, make_floor
from ._timing import interleave

Setup = Tuple[Callable[[], None], Callable[[], None]]


def _posthog(base: str, tcp_port: int, folder: str) -> Setup:
    import inspect

    from posthog import Posthog

    client = Posthog("phc_benchmark", host=base)
    new_style = "distinct_id" not in list(inspect.signature(client.capture).parameters)[:1]
    if new_style:
        call = lambda: client.capture("purchase", distinct_id="u-42", properties=PROPERTIES)  # noqa: E731
    else:  # posthog < 4: capture(distinct_id, event, properties)
        call = lambda: client.capture("u-42", "purchase", PROPERTIES)  # noqa: E731
    return call, client.shutdown


def _logstash(base: str, tcp_port: int, folder: str) -> Setup:
    from logstash_async.handler import AsynchronousLogstashHandler

    handler = AsynchronousLogstashHandler(
        "127.0.0.1", tcp_port, database_path=os.path.join(folder, "logstash.db")
    )
    logger = logging.getLogger("bench.logstash")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False

    def finish() -> None:
        handler.flush()  # documented: ask the worker to send what it has
        time.sleep(5)
        handler.close()

    return (lambda: logger.info("purchase", extra=PROPERTIES)), finish


def _opentelemetry(base: str, tcp_port: int, folder: str) -> Setup:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider()
    provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{base}/v1/logs"))
    )
    logger = logging.getLogger("bench.otel")
    logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
    logger.setLevel(logging.INFO)
    logger.propagate = False

    def finish() -> None:
        provider.force_flush()
        provider.shutdown()

    return (lambda: logger.info("purchase", extra=PROPERTIES)), finish


def _sentry(base: str, tcp_port: int, folder: str) -> Setup:
    import sentry_sdk

    sentry_sdk.init(dsn=base.replace("http://", "http://public@") + "/1")

    def call() -> None:
        with sentry_sdk.new_scope() as scope:
            scope.set_context("purchase", PROPERTIES)
            sentry_sdk.capture_message("purchase")

    def finish() -> None:
        sentry_sdk.flush(timeout=30)

    return call, finish


PEERS: Dict[str, Callable[[str, int, str], Setup]] = {
    "posthog": _posthog,
    "logstash": _logstash,
    "opentelemetry": _opentelemetry,
    "sentry": _sentry,
}


def main() -> None:
    name, base, tcp_port, rounds, per_round = sys.argv[1:6]
    folder = tempfile.mkdtemp(prefix=f"tt-peer-{name}-")
    floor_file = open(os.path.join(folder, "floor.ndjson"), "a")
    call, finish = PEERS[name](base, int(tcp_port), folder)
    timings = interleave({"floor": make_floor(floor_file), name: call}, int(rounds), int(per_round))
    started = time.monotonic()
    finish()
    print(
        json.dumps(
            {
                "timings": timings,
                "calls": int(rounds) * int(per_round) + min(200, int(per_round)),
                "finish_seconds": round(time.monotonic() - started, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
