"""Django: the ``LOGGING`` setting (Django passes it to dictConfig).

Django's handlers are built in every process that loads the settings; under
gunicorn or uWSGI see their recipes for where the process exits.
"""

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
            "queue_path": os.environ.get(
                "TELEMETRY_QUEUE", "/var/lib/myapp/telemetry-queue.ndjson"
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
