"""gunicorn: ``gunicorn -c gunicorn.conf.py app:app``.

Each worker is a forked child; handlers built from this config (in the master
with ``preload_app``, or in each worker) get their own sender after the fork.
Workers share one queue file safely.
"""

import os

workers = 2
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {
        "telemetry": {
            "class": "trace_telemetry.TelemetryHandler",
            "level": "WARNING",
            "endpoint_url": os.environ.get("TELEMETRY_URL", "http://127.0.0.1:8080/telemetry"),
            "queue_path": "/var/lib/myapp/telemetry-queue.ndjson",
            "application_name": "gunicorn-app",
        }
    },
    "loggers": {"gunicorn.error": {"handlers": ["telemetry"], "level": "WARNING"}},
}
