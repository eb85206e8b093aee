"""The wire protocols a client can speak: how a batch is encoded, how an answer is read.

:class:`Delivery` owns the queue side (batches, splitting, backoff); a
protocol only says what bytes to POST and which of three actions an answer
calls for (docs/delivery.md and docs/otlp.md "Failure table"):

* ``DONE``: the batch leaves the queue;
* ``SPLIT``: split the batch to isolate the refused events (a single one is
  dead-lettered to ``.rejected``);
* ``RETRY``: keep every event and back off.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from . import _envelope
from ._stats import Stats
from ._transport import Response

__all__ = ["DONE", "RETRY", "SPLIT", "OtlpProtocol", "TraceTelemetryProtocol", "build"]

DONE, SPLIT, RETRY = "done", "split", "retry"

_CONTRACT_SPLIT = frozenset({400, 413, 422})
#: OTLP's retryable answers (plus 500, and no answer at all).
_OTLP_RETRYABLE = frozenset({0, 429, 500, 502, 503, 504})


class TraceTelemetryProtocol:
    """The TraceTelemetry contract (CONTRACT.md): a JSON array of the queue lines."""

    name = "tracetelemetry"
    content_type = "application/json; charset=utf-8"
    headers: Dict[str, str] = {}  # noqa: RUF012 - read-only

    def encode_batch(self, lines: List[bytes]) -> Tuple[bytes, str]:
        """The lines joined as they are; an OTLP envelope, if any, is cut out."""
        body = b"[" + b",".join(lines) + b"]"
        return _envelope.strip_lines(lines, body), self.content_type

    def classify(self, answer: Response, stats: Stats) -> str:
        """2xx done; 400/413/422 split; anything else retry."""
        if 200 <= answer.status < 300:
            return DONE
        if answer.status in _CONTRACT_SPLIT:
            return SPLIT
        return RETRY


class OtlpProtocol:
    """OTLP/HTTP logs, as JSON or protobuf, optionally gzip-compressed.

    Args:
        encoding: ``"json"`` or ``"protobuf"``.
        resource_attributes: the sender's extra resource attributes.
        compression: ``"none"`` or ``"gzip"``.
    """

    name = "otlp"

    def __init__(
        self,
        encoding: str,
        resource_attributes: Sequence[Tuple[str, Any]] = (),
        compression: str = "none",
    ) -> None:
        # Imported here: a client on the default protocol never loads them.
        from . import _otlp, _otlp_json  # noqa: PLC0415

        self._map = _otlp.map_lines
        self._json = _otlp_json
        self.encoding = encoding
        self.resource_attributes = list(resource_attributes)
        self.compression = compression
        self._proto: Optional[Any] = None
        if encoding == "protobuf":
            from . import _otlp_proto  # noqa: PLC0415 - only when chosen

            self._proto = _otlp_proto.load()
            self.content_type = _otlp_proto.CONTENT_TYPE
        else:
            self.content_type = _otlp_json.CONTENT_TYPE
        self.headers = {"Content-Type": self.content_type}
        if compression == "gzip":
            self.headers["Content-Encoding"] = "gzip"

    def encode_batch(self, lines: List[bytes]) -> Tuple[bytes, str]:
        """One ``ExportLogsServiceRequest`` for the lines."""
        groups = self._map(lines, self.resource_attributes)
        if self._proto is not None:
            body: bytes = self._proto.encode_request(groups)
        else:
            body = self._json.encode_request(groups)
        if self.compression == "gzip":
            import gzip  # noqa: PLC0415 - only when chosen

            body = gzip.compress(body, compresslevel=6)
        return body, self.content_type

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


def build(options: Any) -> Any:
    """The protocol object for validated :class:`~trace_telemetry.TelemetryOptions`."""
    if getattr(options, "protocol", "tracetelemetry") != "otlp":
        return TraceTelemetryProtocol()
    resource = options.resource_attributes or {}
    return OtlpProtocol(options.otlp_encoding, list(resource.items()), options.compression)
