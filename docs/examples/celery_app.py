"""Celery: ``celery -A celery_app worker --pool prefork``.

Two signals carry the recipe:

* ``setup_logging``: connected, it makes Celery leave the logging
  configuration to the application (instead of installing its own handlers).
  It runs in the main worker process before the pool forks, and each prefork
  child gets its own sender after the fork.
* ``worker_process_shutdown``: prefork children leave with ``os._exit``, so
  neither ``atexit`` nor ``logging.shutdown`` runs in them: send there. The
  main process sends in ``worker_shutdown``.
"""

import logging
import logging.config
import os

from celery import Celery
from celery.signals import setup_logging, worker_process_shutdown, worker_shutdown

from trace_telemetry import TelemetryClient, TelemetryOptions

telemetry = TelemetryClient(
    TelemetryOptions(
        endpoint_url=os.environ.get("TELEMETRY_URL", "http://127.0.0.1:8080/telemetry"),
        queue_path=os.environ.get("TELEMETRY_QUEUE", "/var/lib/myapp/telemetry-queue.ndjson"),
        application_name="celery-worker",
    )
)

app = Celery("celery_app")
app.config_from_object("celeryconfig")  # broker_url and the rest of the settings

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "[%(asctime)s: %(levelname)s/%(processName)s] %(name)s: %(message)s"}
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        "telemetry": {
            "class": "trace_telemetry.TelemetryHandler",
            "level": "WARNING",
            "client": "ext://celery_app.telemetry",
        },
    },
    "root": {"level": "INFO", "handlers": ["console", "telemetry"]},
}

logger = logging.getLogger(__name__)


@setup_logging.connect
def configure_logging(**kwargs):
    logging.config.dictConfig(LOGGING)
    telemetry.start()


@worker_process_shutdown.connect
@worker_shutdown.connect
def send_queued_events(**kwargs):
    telemetry.flush(timeout=5)  # what is not sent in 5 s stays queued for the next run


@app.task
def charge(invoice):
    logger.warning("invoice %s overdue", invoice)


@app.task
def refund(invoice):
    raise ValueError(f"no payment for {invoice}")  # Celery logs it: an exception event
