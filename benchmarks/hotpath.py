"""Sections 1-4: the floor, ``track()``, the logging handler, the structlog processor."""

from __future__ import annotations

import logging
import os
import tempfile
from typing import Any, Dict, List

import structlog

from trace_telemetry import TelemetryClient, TelemetryHandler, TelemetryOptions, TelemetryProcessor

from ._common import PROPERTIES, make_floor
from ._timing import interleave

try:
    from pythonjsonlogger.json import JsonFormatter
except ImportError:  # python-json-logger 2.x
    from pythonjsonlogger.jsonlogger import JsonFormatter  # type: ignore[no-redef]

Row = Dict[str, Any]


def _logger(name: str, handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(f"bench.{name}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def run(sink_url: str, rounds: int, per_round: int) -> List[Row]:
    folder = tempfile.mkdtemp(prefix="tt-bench-")
    floor_file = open(os.path.join(folder, "floor.ndjson"), "a")
    fsync_file = open(os.path.join(folder, "fsync.ndjson"), "a")
    client = TelemetryClient(
        TelemetryOptions(
            endpoint_url=sink_url,
            queue_path=os.path.join(folder, "queue.ndjson"),
            batch_size=500,
            flush_interval_seconds=1,
        )
    )
    client.start()  # sending in the background, as in production

    file_handler = logging.FileHandler(os.path.join(folder, "json.log"))
    file_handler.setFormatter(JsonFormatter("%(message)s %(levelname)s %(name)s"))
    via_file = _logger("file", file_handler)
    via_telemetry = _logger("telemetry", TelemetryHandler(client=client))

    structlog_out = open(os.path.join(folder, "structlog.log"), "a")
    base_chain = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.processors.JSONRenderer(),
    ]
    plain = structlog.wrap_logger(structlog.WriteLogger(structlog_out), processors=base_chain)
    with_processor = structlog.wrap_logger(
        structlog.WriteLogger(structlog_out),
        processors=[*base_chain[:2], TelemetryProcessor(client), base_chain[2]],
    )

    candidates = {
        "floor": make_floor(floor_file),
        "floor_fsync": make_floor(fsync_file, fsync=True),
        "track": lambda: client.track("purchase", PROPERTIES),
        "filehandler_json": lambda: via_file.info("purchase", extra=PROPERTIES),
        "telemetry_handler": lambda: via_telemetry.info("purchase", extra=PROPERTIES),
        "structlog_plain": lambda: plain.info("purchase", **PROPERTIES),
        "structlog_with_processor": lambda: with_processor.info("purchase", **PROPERTIES),
    }
    timings = interleave(candidates, rounds, per_round)
    client.stop()
    client.flush(timeout=120)
    stats = client.stats()
    rows = [
        _row("floor: dict + json.dumps + write + flush", timings, "floor", "floor"),
        _row("floor with fsync", timings, "floor_fsync", "floor"),
        _row(
            "client.track()",
            timings,
            "track",
            "floor",
            target="<= 1.3",
            note=f"durable on return; {stats['sent']}/{stats['enqueued']} events of the "
            "client (track, handler, processor) delivered",
        ),
        _row(
            "logging.FileHandler + JsonFormatter", timings, "filehandler_json", "filehandler_json"
        ),
        _row("TelemetryHandler", timings, "telemetry_handler", "filehandler_json", target="<= 1.0"),
        _row("structlog pipeline", timings, "structlog_plain", "structlog_plain"),
        _row(
            "structlog pipeline + TelemetryProcessor",
            timings,
            "structlog_with_processor",
            "structlog_plain",
            target="<= 1.5",
        ),
    ]
    client.close()
    for handle in (floor_file, fsync_file, structlog_out):
        handle.close()
    return rows


def _row(
    label: str,
    timings: Dict[str, Dict[str, float]],
    name: str,
    baseline: str,
    target: str = "",
    note: str = "",
) -> Row:
    ratio = timings[name]["median_us"] / timings[baseline]["median_us"]
    return {
        "section": "hot path",
        "name": label,
        "median_us": round(timings[name]["median_us"], 2),
        "min_us": round(timings[name]["min_us"], 2),
        "baseline": baseline,
        "ratio": round(ratio, 2),
        "target": target,
        "met": _met(ratio, target),
        "note": note,
    }


def _met(ratio: float, target: str) -> Any:
    if not target:
        return None
    return ratio <= float(target.rsplit(maxsplit=1)[-1])
