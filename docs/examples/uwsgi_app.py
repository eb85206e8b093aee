"""uWSGI: ``uwsgi --ini uwsgi.ini``; the module it loads configures logging first.

uWSGI has no logging configuration of its own for Python: the module it loads
calls ``dictConfig`` and then imports the application.
"""

import logging.config
import os

logging.config.dictConfig(
    {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "console": {"class": "logging.StreamHandler"},
            "telemetry": {
                "class": "trace_telemetry.TelemetryHandler",
                "level": "WARNING",
                "endpoint_url": os.environ.get("TELEMETRY_URL", "http://127.0.0.1:8080/telemetry"),
                "queue_path": os.environ.get(
                    "TELEMETRY_QUEUE", "/var/lib/myapp/telemetry-queue.ndjson"
                ),
                "application_name": "uwsgi-app",
            },
        },
        "root": {"level": "INFO", "handlers": ["console", "telemetry"]},
    }
)

from wsgi_app import app  # noqa: E402, F401  (the application uWSGI serves)
