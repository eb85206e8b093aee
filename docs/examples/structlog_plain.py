"""structlog: record every event and keep rendering to the console."""

import os

import structlog

from trace_telemetry import TelemetryClient, TelemetryOptions, TelemetryProcessor

client = TelemetryClient(
    TelemetryOptions(
        endpoint_url=os.environ.get("TELEMETRY_URL", "http://127.0.0.1:8080/telemetry"),
        application_name="worker",
    )
)
client.start()

structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        TelemetryProcessor(client),  # records, then passes the event on
        structlog.processors.format_exc_info,
        structlog.processors.JSONRenderer(),
    ]
)

log = structlog.get_logger().bind(job="nightly-export")
log.info("export_started", rows=1200)
try:
    1 / 0
except ZeroDivisionError:
    log.exception("export_failed")  # an exception event with the traceback

client.flush()
client.stop()
