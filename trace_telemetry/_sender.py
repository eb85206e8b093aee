"""The sending side of a client: its wire protocol, its request slots and its drain.

One protocol object (``_protocol.py``) builds every body and reads every
answer; each slot of the :class:`~trace_telemetry._inflight.SenderPool` gets
its own :class:`~trace_telemetry._transport.HttpTransport` with the user's
``headers``, the protocol's ``Content-Type`` and the one ``compression``
(docs/delivery.md, docs/otlp.md).
"""

from __future__ import annotations

from typing import NamedTuple

from . import _protocol
from ._delivery import Delivery
from ._inflight import SenderPool
from ._queue import FileQueue
from ._stats import Stats
from ._transport import HttpTransport
from .options import TelemetryOptions

__all__ = ["Sender", "build"]


class Sender(NamedTuple):
    """What a client sends with."""

    protocol: _protocol.WireProtocol
    pool: SenderPool
    delivery: Delivery


def build(options: TelemetryOptions, queue: FileQueue, stats: Stats) -> Sender:
    """The protocol, slots and drain for validated ``options``."""
    protocol = _protocol.build(options)

    def gzip_refused() -> None:
        stats.warn_once(
            "gzip-refused",
            "trace_telemetry: the endpoint refused gzip bodies (HTTP 415); "
            "sending them uncompressed (logged once)",
        )

    def make_transport() -> HttpTransport:
        return HttpTransport(
            options.endpoint_url,
            options.api_key,
            options.timeout_seconds,
            options.compression or "",
            gzip_refused,
            headers=options.headers,
            protocol_headers=protocol.headers,
        )

    pool = SenderPool(make_transport, options.max_in_flight)
    delivery = Delivery(
        queue,
        pool,
        stats,
        batch_size=options.batch_size,
        interval=options.flush_interval_seconds,
        timeout=options.timeout_seconds,
        max_backoff=options.max_backoff_seconds,
        enabled=bool(options.endpoint_url) and not options.sdk_disabled,
        protocol=protocol,
    )
    return Sender(protocol, pool, delivery)
