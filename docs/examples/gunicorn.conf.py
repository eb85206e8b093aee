"""gunicorn: ``gunicorn -c gunicorn.conf.py wsgi_app:app``.

gunicorn does not use ``logconfig_dict`` as it is: it copies its own default
config and ``update()``s it with this dict, so each top-level key given here
(``handlers``, ``loggers``, ``root``) replaces gunicorn's whole entry. This
config therefore spells out all of them: ``root`` must not be left naming a
handler this dict no longer defines ("Unable to configure root logger").

The config is applied in the master (before the workers fork, with or without
``--preload``): each worker gets its own sender after the fork, and all of them
share one queue file safely.
"""

import os

workers = 2
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "generic": {
            "format": "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s",
            "datefmt": "[%Y-%m-%d %H:%M:%S %z]",
        }
    },
    "handlers": {
        # gunicorn's own two stream handlers, kept under their usual names.
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stdout",
        },
        "error_console": {
            "class": "logging.StreamHandler",
            "formatter": "generic",
            "stream": "ext://sys.stderr",
        },
        "telemetry": {
            "class": "trace_telemetry.TelemetryHandler",
            "level": "WARNING",
            "endpoint_url": os.environ.get("TELEMETRY_URL", "http://127.0.0.1:8080/telemetry"),
            "queue_path": os.environ.get(
                "TELEMETRY_QUEUE", "/var/lib/myapp/telemetry-queue.ndjson"
            ),
            "application_name": "gunicorn-app",
        },
    },
    # The application's loggers ("myapp", Flask's, Django's) propagate here.
    "root": {"level": "INFO", "handlers": ["error_console", "telemetry"]},
    "loggers": {
        # gunicorn's error log: stderr as usual, plus telemetry for its
        # warnings and errors ("Error handling request" is an exception event).
        "gunicorn.error": {
            "level": "INFO",
            "handlers": ["error_console", "telemetry"],
            "propagate": False,
        },
        # The access log stays on stdout and out of telemetry.
        "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
    },
}


def when_ready(server):
    """With ``--user``, the workers cannot write queue files this root master created 0600."""
    if server.cfg.uid != os.geteuid():
        server.log.warning(
            "trace-telemetry: workers run as uid %s but the queue files belong to uid %s "
            "(mode 0600); configure telemetry in the workers instead, as in "
            "gunicorn_user.conf.py (see docs/deployment.md)",
            server.cfg.uid,
            os.geteuid(),
        )
