"""TelemetryHandler from dictConfig with an existing client (``ext://``)."""

import logging
import logging.config

from myapp_telemetry import client

logging.config.dictConfig(
    {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "telemetry": {
                "class": "trace_telemetry.TelemetryHandler",
                "client": "ext://myapp_telemetry.client",
                "level": "WARNING",
            }
        },
        "root": {"handlers": ["telemetry"], "level": "INFO"},
    }
)

logging.getLogger("billing").warning("invoice %s overdue", "F-17", extra={"days": 12})
client.flush()  # the handler does not own this client: its owner flushes and stops it
client.stop()
