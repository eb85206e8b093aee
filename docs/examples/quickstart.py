"""The quick start, runnable: ``TELEMETRY_URL=http://127.0.0.1:8080/telemetry python quickstart.py``."""

import os

from trace_telemetry import TelemetryClient, TelemetryOptions

options = TelemetryOptions(
    endpoint_url=os.environ.get("TELEMETRY_URL", "http://127.0.0.1:8080/telemetry"),
    api_key=os.environ.get("TELEMETRY_API_KEY", ""),  # optional
    application_name="MyService",
    application_version="1.0.0",
    batch_size=20,
    flush_interval_seconds=10,
    queue_path="telemetry-queue.ndjson",
)

client = TelemetryClient(options)
client.start()

client.track("page_view")
client.track("purchase", {"order_id": "123", "amount": 99.90})
client.track("signup", "source", "google")


def risky_operation() -> None:
    raise RuntimeError("payment gateway timeout")


try:
    risky_operation()
except Exception as ex:
    client.track_exception(ex, event_name="exception", extra_data={"step": "checkout"})

client.flush()  # send what is queued now (optional: the timer does it too)
client.stop()  # does not flush; unsent events stay queued for the next run
