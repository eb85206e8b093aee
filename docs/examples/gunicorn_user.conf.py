"""gunicorn started as root with ``--user``: telemetry set up in each worker.

Configured in the master (as in ``gunicorn.conf.py``), the root master would
create the queue files mode ``0600`` as root, and workers that have dropped to
``--user`` could not write them. Here the master keeps gunicorn's default
logging and each worker adds the handler after it switched user, so every
queue file belongs to that user. The master's own messages (worker timeouts,
boot failures) stay on stderr only.

Give that user the queue folder first:
``install -d -o www-data -g www-data -m 0700 /var/lib/myapp``.
"""

import logging
import os

workers = 2


def post_worker_init(worker):
    from trace_telemetry import TelemetryHandler

    handler = TelemetryHandler(
        level="WARNING",
        endpoint_url=os.environ.get("TELEMETRY_URL", "http://127.0.0.1:8080/telemetry"),
        queue_path=os.environ.get("TELEMETRY_QUEUE", "/var/lib/myapp/telemetry-queue.ndjson"),
        application_name="gunicorn-app",
    )
    logging.getLogger().addHandler(handler)  # the application's loggers
    logging.getLogger("gunicorn.error").addHandler(handler)  # "Error handling request"
