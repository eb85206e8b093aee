"""OTLP export: the same durable queue, sent to an OpenTelemetry Collector.

The endpoint, headers, encoding and service name come from the usual OTEL_*
variables when the options are not given, e.g.
OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318 (``/v1/logs`` is appended).
"""

import logging

from trace_telemetry import TelemetryClient, TelemetryHandler, TelemetryOptions

client = TelemetryClient(
    TelemetryOptions(
        protocol="otlp",  # otlp_encoding="protobuf" needs trace-telemetry[otlp]
        queue_path="otlp-queue.ndjson",
        application_name="shop",
        resource_attributes={"deployment.environment.name": "prod"},
    )
)
client.start()

client.track("purchase", {"sku": "A-1", "amount": 12.5})  # an OpenTelemetry event

logger = logging.getLogger("shop.payments")
logger.addHandler(TelemetryHandler(client=client))
logger.warning("payment took %d ms", 950, extra={"provider": "acme"})  # a log record

client.flush(timeout=10)
client.close()
