"""structlog on top of logging: one processor for structlog and foreign records alike."""

import logging.config
import os

import structlog

from trace_telemetry import TelemetryClient, TelemetryOptions, TelemetryProcessor

client = TelemetryClient(
    TelemetryOptions(
        endpoint_url=os.environ.get("TELEMETRY_URL", "http://127.0.0.1:8080/telemetry"),
        application_name="api",
    )
)
client.start()
telemetry = TelemetryProcessor(client)

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
                # Records from plain logging (libraries) pass through here.
                "foreign_pre_chain": [structlog.stdlib.add_log_level, telemetry],
            }
        },
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json"}},
        "root": {"handlers": ["console"], "level": "INFO"},
    }
)
structlog.configure(
    processors=[
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        telemetry,
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
)

structlog.get_logger("api").info("request_served", path="/orders", status=200)
logging.getLogger("urllib3.legacy").warning("a library says %s", "hello")

client.flush()
client.stop()
