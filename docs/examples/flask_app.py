"""Flask: configure logging before the app is created, as Flask's docs advise."""

import logging
import logging.config
import os

from flask import Flask

logging.config.dictConfig(
    {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "telemetry": {
                "class": "trace_telemetry.TelemetryHandler",
                "level": "INFO",
                "endpoint_url": os.environ.get("TELEMETRY_URL", "http://127.0.0.1:8080/telemetry"),
                "application_name": "flask-shop",
            }
        },
        "root": {"handlers": ["telemetry"], "level": "INFO"},
    }
)

app = Flask(__name__)


@app.route("/buy/<sku>")
def buy(sku: str) -> str:
    app.logger.info("purchase", extra={"sku": sku})
    if sku == "broken":
        raise RuntimeError("out of stock")  # Flask logs it with exc_info: an exception event
    return "ok"


if __name__ == "__main__":
    with app.test_client() as browser:
        browser.get("/buy/sku-1")
        browser.get("/buy/broken")
    logging.shutdown()
