"""Django: the ``LOGGING`` setting (Django passes it to dictConfig)."""

import os

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "console": {"class": "logging.StreamHandler"},
        "telemetry": {
            "class": "trace_telemetry.TelemetryHandler",
            "level": "WARNING",
            "endpoint_url": os.environ.get("TELEMETRY_URL", "http://127.0.0.1:8080/telemetry"),
            "queue_path": os.path.join(
                os.environ.get("TELEMETRY_DIR", "."), "telemetry-queue.ndjson"
            ),
            "application_name": "django-site",
        },
    },
    "loggers": {
        # Unhandled view exceptions are logged here with exc_info: exception events.
        "django.request": {"handlers": ["console", "telemetry"], "level": "ERROR"},
        "myapp": {"handlers": ["console", "telemetry"], "level": "INFO"},
    },
}
