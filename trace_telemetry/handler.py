"""``TelemetryHandler``: Python logging into the telemetry queue.

Attach it with ``logging.config.dictConfig`` and every ``logger.exception()``
becomes an exception event. ``emit()`` only serializes and appends to the
queue file: no network I/O, no waiting on a slow server.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Tuple, Union

from . import _envelope, _records, _seen, _shared
from ._event import exception_data
from ._guard import in_sdk_work
from .client import TelemetryClient

__all__ = ["TelemetryHandler"]

EventName = Union[str, Callable[[logging.LogRecord], str]]

_OWN_LOGGER = "trace_telemetry"
_OWN_PREFIX = _OWN_LOGGER + "."
_SEEN = _seen.state


class TelemetryHandler(logging.Handler):
    """A ``logging.Handler`` that records each log record as an event.

    Build it one of two ways (both work from ``dictConfig``):

    * with option keywords (``endpoint_url=...``, ``queue_path=...``, any
      :class:`~trace_telemetry.TelemetryOptions` field): the handler owns a
      client and starts its sender. Handlers with the same ``queue_path`` in
      one process share one client.
    * with ``client=``: events go to that client; closing the handler leaves
      it running.

    Args:
        level: the handler's level.
        client: an existing client (``"ext://pkg.module.client"`` in dictConfig).
        event_name: the event name, as a string or a callable of the record.
            Default: the unformatted message template (``record.msg``), so the
            server can group ``"disk %d%% full"`` however full the disk is.
        exception_event_name: the name of events for records with
            ``exc_info``.
        **options: :class:`~trace_telemetry.TelemetryOptions` fields.

    Raises:
        ValueError: invalid options, or both ``client`` and options.
    """

    #: The SDK's own records are skipped here, so they do not count as
    #: handled (``_stats.SKIPS_SDK_RECORDS``): with only this handler, the
    #: SDK's warnings go to ``logging.lastResort`` (stderr).
    _skips_trace_telemetry_records = True

    def __init__(
        self,
        level: Union[int, str] = logging.NOTSET,
        *,
        client: Optional[TelemetryClient] = None,
        event_name: Optional[EventName] = None,
        exception_event_name: str = "exception",
        **options: Any,
    ) -> None:
        if event_name is not None and not (isinstance(event_name, str) or callable(event_name)):
            msg = f"event_name must be a str or a callable, got {event_name!r}"
            raise ValueError(msg)
        # Acquire before Handler.__init__ registers us for logging.shutdown().
        self.client, self._owns_client = _shared.client_for("TelemetryHandler", client, options)
        super().__init__(level)
        self.event_name = event_name
        self.exception_event_name = exception_event_name
        self._default_formatter = _records.default_formatter()
        self._closed = False

    def handle(self, record: logging.LogRecord) -> Any:
        """Filter, then emit without the handler lock: the client is thread-safe."""
        name = record.name
        if name == _OWN_LOGGER or name.startswith(_OWN_PREFIX) or in_sdk_work():
            return False  # the SDK's own records never loop back in
        if _SEEN["processors"]:
            return self._handle_beside_a_processor(record)
        if not self.filters:
            self.emit(record)
            return True
        return self._filter_and_emit(record)

    def _filter_and_emit(self, record: logging.LogRecord) -> Any:
        result = self.filter(record)
        if isinstance(result, logging.LogRecord):
            record = result
        if result:
            self.emit(record)
        return result

    def _handle_beside_a_processor(self, record: logging.LogRecord) -> Any:
        """Record each call once when a ``TelemetryProcessor`` exists (docs/structlog.md).

        A record carrying what the processor just recorded is skipped; a
        record this handler recorded is noted, so a processor in a
        ``ProcessorFormatter``'s ``foreign_pre_chain`` does not record it again.
        """
        if _seen.recorded_by_processor(record) or _seen.recorded_record(record, "processor"):
            return False
        result = self._filter_and_emit(record)
        if result:
            _seen.note_record(record, "handler")
        return result

    def emit(self, record: logging.LogRecord) -> None:
        """Queue the record as an event. Never raises, never does network I/O."""
        try:
            message = record.msg
            if (
                type(message) is str
                and self.formatter is None
                and self.event_name is None
                and not record.exc_info
                and not record.stack_info
            ):  # the common case, kept short: this is every log call's cost
                self.client._enqueue(
                    message,
                    _records.default_fields(record),
                    record.created,
                    _envelope.from_record(record) if self.client._capture else None,
                )
                return
            name, data = self._event(record)
            facts = _envelope.from_record(record) if self.client._capture else None
            self.client._enqueue(name, data, record.created, facts)
        except Exception as error:  # noqa: BLE001 - logging must not break the app
            self.client._internal_error(error)

    def _event(self, record: logging.LogRecord) -> Tuple[str, Any]:
        formatter = self.formatter
        if _records.is_json_formatter(formatter):
            data = _records.record_fields(formatter, record)
        else:
            if isinstance(record.msg, dict) or record.stack_info:
                data = _records.record_fields(self._default_formatter, record)
            else:
                data = _records.default_fields(record)
            if formatter is not None:
                data["message"] = formatter.format(record)
        exc_info = record.exc_info
        if exc_info and exc_info[1] is not None:
            data.pop("exc_info", None)
            data.pop("exc_text", None)
            if "message" in data:
                data["logMessage"] = data.pop("message")
            return self.exception_event_name, exception_data(exc_info[1], data)
        return self._name_of(record), data

    def _name_of(self, record: logging.LogRecord) -> str:
        chosen = self.event_name
        if chosen is None:
            return record.msg if isinstance(record.msg, str) else record.getMessage()
        if isinstance(chosen, str):
            return chosen
        return str(chosen(record))

    def flush(self) -> None:
        """Nothing to do: ``emit()`` has already written each record to the queue file.

        Deliberately no network I/O here; see :meth:`close`.
        """

    def close(self) -> None:
        """Release the client; an owned client's last user sends for at most ~2 s.

        Safe under logging's module lock (``dictConfig`` closes old handlers
        while holding it): it never waits for the sender thread. Events not
        sent stay queued for the next run.
        """
        try:
            if not self._closed and self._owns_client:
                self._closed = True
                _shared.release(self.client)
        finally:
            super().close()

    def __repr__(self) -> str:
        level = logging.getLevelName(self.level)
        return f"<TelemetryHandler ({level}) queue_path={self.client.options.queue_path!r}>"
