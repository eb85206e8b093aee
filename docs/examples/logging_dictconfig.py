"""TelemetryHandler from dictConfig, with option keywords: the handler owns its client."""

import logging
import logging.config
import os

logging.config.dictConfig(
    {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
        "handlers": {
            "console": {"class": "logging.StreamHandler", "formatter": "plain"},
            "telemetry": {
                "class": "trace_telemetry.TelemetryHandler",
                "level": "INFO",
                "endpoint_url": os.environ.get("TELEMETRY_URL", "http://127.0.0.1:8080/telemetry"),
                "api_key": os.environ.get("TELEMETRY_API_KEY", ""),
                "queue_path": "telemetry-queue.ndjson",
                "application_name": "shop",
                "flush_interval_seconds": 5,
            },
        },
        "root": {"handlers": ["console", "telemetry"], "level": "INFO"},
    }
)

log = logging.getLogger("shop.checkout")
log.info("disk %d%% full", 93, extra={"mount": "/var"})  # event "disk %d%% full"
try:
    {}["sku-42"]
except KeyError:
    log.exception("inventory lookup failed")  # an exception event, by itself

logging.shutdown()  # closes the handler: a best-effort send of at most ~2 s
