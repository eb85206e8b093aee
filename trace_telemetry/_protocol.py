"""The wire protocols a client can speak: how a batch is encoded, how an answer is read.

:class:`Delivery` owns the queue side (batches, splitting, backoff); a
protocol only says what bytes to POST and which of three actions an answer
calls for (docs/delivery.md and docs/otlp.md "Failure table"):

* ``DONE``: the batch leaves the queue;
* ``SPLIT``: split the batch to isolate the refused events (a single one is
  dead-lettered to ``.rejected``);
* ``RETRY``: keep every event and back off.

Compression is not the protocol's: the transport gzips any body when the
``compression`` option asks for it (docs/configuration.md).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Protocol, Sequence, Tuple

from . import _envelope
from ._stats import Stats
from ._transport import Response

__all__ = [
    "DONE",
    "RETRY",
    "SPLIT",
    "OtlpProtocol",
    "TraceTelemetryProtocol",
    "WireProtocol",
    "build",
    "json_array",
]

DONE, SPLIT, RETRY = "done", "split", "retry"

_CONTRACT_SPLIT = frozenset({400, 413, 422})
#: OTLP's retryable answers (plus 500, and no answer at all).
_OTLP_RETRYABLE = frozenset({0, 429, 500, 502, 503, 504})


def json_array(lines: List[bytes]) -> bytes:
    """The contract's body: the event lines as one JSON array."""
    return b"[" + b",".join(lines) + b"]"


class WireProtocol(Protocol):
    """What the drain needs from a protocol (``_delivery.py``)."""

    name: str
    headers: Dict[str, str]

    def encode(self, lines: List[bytes]) -> bytes: ...

    def classify(self, answer: Response, stats: Stats) -> str: ...


class TraceTelemetryProtocol:
    """The TraceTelemetry contract (CONTRACT.md): a JSON array of the queue lines."""

    name = "tracetelemetry"
    content_type = "application/json; charset=utf-8"
    headers: Dict[str, str] = {}  # noqa: RUF012 - read-only

    def encode(self, lines: List[bytes]) -> bytes:
        """The lines joined as they are; an OTLP envelope, if any, is cut out."""
        return _envelope.strip_lines(lines, b"[" + b",".join(lines) + b"]")

    def encode_batch(self, lines: List[bytes]) -> Tuple[bytes, str]:
        """:meth:`encode` and the content type."""
        return self.encode(lines), self.content_type

    def classify(self, answer: Response, stats: Stats) -> str:
        """2xx done; 400/413/422 split; anything else retry."""
        if 200 <= answer.status < 300:
            return DONE
        if answer.status in _CONTRACT_SPLIT:
            return SPLIT
        return RETRY


class OtlpProtocol:
    """OTLP/HTTP logs, as JSON or protobuf (gzip is the transport's).

    Args:
        encoding: ``"json"`` or ``"protobuf"``.
        resource_attributes: the sender's extra resource attributes.
    """

    name = "otlp"

    def __init__(
        self,
        encoding: str,
        resource_attributes: Sequence[Tuple[str, Any]] = (),
    ) -> None:
        # Imported here: a client on the default protocol never loads them.
        from . import _otlp, _otlp_json  # noqa: PLC0415

        self._map = _otlp.map_lines
        self._json = _otlp_json
        self.encoding = encoding
        self.resource_attributes = list(resource_attributes)
        self._proto: Optional[Any] = None
        if encoding == "protobuf":
            from . import _otlp_proto  # noqa: PLC0415 - only when chosen

            self._proto = _otlp_proto.load()
            self.content_type = _otlp_proto.CONTENT_TYPE
        else:
            self.content_type = _otlp_json.CONTENT_TYPE
        self.headers = {"Content-Type": self.content_type}

    def encode(self, lines: List[bytes]) -> bytes:
        """One ``ExportLogsServiceRequest`` for the lines."""
        groups = self._map(lines, self.resource_attributes)
        if self._proto is not None:
            body: bytes = self._proto.encode_request(groups)
        else:
            body = self._json.encode_request(groups)
        return body

    def encode_batch(self, lines: List[bytes]) -> Tuple[bytes, str]:
        """:meth:`encode` and the content type."""
        return self.encode(lines), self.content_type

    def classify(self, answer: Response, stats: Stats) -> str:
        """The OTLP failure table (docs/otlp.md)."""
        status = answer.status
        if 200 <= status < 300:
            self._partial_success(answer, stats)
            return DONE
        if status in (400, 413):
            return SPLIT
        if status in _OTLP_RETRYABLE or status >= 500 or status < 400:
            return RETRY
        stats.warn_once(
            f"otlp:{status}",
            "trace_telemetry: the OTLP endpoint answered %s; check the URL (logs go to "
            "/v1/logs), the headers and the credentials. Events stay queued and are "
            "retried with backoff; nothing is discarded (logged once)",
            answer.error or f"HTTP {status}",
        )
        return RETRY

    def _partial_success(self, answer: Response, stats: Stats) -> None:
        body = answer.body
        if not body:
            return
        if self._proto is not None and not body.lstrip().startswith(b"{"):
            partial = self._proto.partial_success(body)
        else:
            partial = self._json.partial_success(body)
        if partial is None:
            return
        rejected, message = partial
        if rejected:
            stats.drop("otlp_partial_success", rejected, detail=message or "no message")
        else:
            stats.warn_once("otlp:partial", "trace_telemetry: the OTLP endpoint warns: %s", message)


def build(options: Any) -> WireProtocol:
    """The protocol object for validated :class:`~trace_telemetry.TelemetryOptions`."""
    if getattr(options, "protocol", "tracetelemetry") != "otlp":
        return TraceTelemetryProtocol()
    resource = options.resource_attributes or {}
    return OtlpProtocol(options.otlp_encoding, list(resource.items()))
