"""An application module that owns the process's telemetry client."""

import os

from trace_telemetry import TelemetryClient, TelemetryOptions

client = TelemetryClient(
    TelemetryOptions(
        endpoint_url=os.environ.get("TELEMETRY_URL", "http://127.0.0.1:8080/telemetry"),
        application_name="billing",
    )
)
client.start()
