"""``TelemetryProcessor``: a structlog processor that records each event.

It returns the event dict unchanged so the chain goes on to the renderer;
``drop=True`` ends the chain instead, for telemetry-only pipelines.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Dict, Optional, Tuple

import structlog
from structlog.typing import EventDict, WrappedLogger

from . import _envelope, _seen, _shared
from ._event import exception_data
from ._guard import in_sdk_work
from .client import TelemetryClient

__all__ = ["TelemetryProcessor"]

#: Keys structlog's stdlib integration adds that are not the user's data.
_INTERNAL_KEYS = frozenset({"_record", "_from_structlog"})
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.<>]*)(?::\s?(.*))?$", re.DOTALL)


class TelemetryProcessor:
    """Record a structlog event as a telemetry event.

    ``name`` is ``event_dict["event"]``; ``data`` is the rest of the event
    dict (bound and context variables, ``level``, every key), made JSON-safe.
    An ``exc_info`` (``True``, an exception, or a tuple) makes an exception
    event in the shape of ``docs/contract.md`` plus the other keys, with the event text as
    ``logMessage``; an ``exception`` string left by ``format_exc_info`` is used
    as its ``stackTrace``.

    Args:
        client: the client to record into; or give option keywords and the
            processor shares the process's client for that ``queue_path``.
        drop: raise ``structlog.DropEvent`` after recording.
        exception_event_name: the name of exception events.
        **options: :class:`~trace_telemetry.TelemetryOptions` fields.
    """

    def __init__(
        self,
        client: Optional[TelemetryClient] = None,
        *,
        drop: bool = False,
        exception_event_name: str = "exception",
        **options: Any,
    ) -> None:
        self.client, self._owns_client = _shared.client_for("TelemetryProcessor", client, options)
        self.drop = drop
        self.exception_event_name = exception_event_name
        _seen.state["processors"] = True

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        if not in_sdk_work():
            try:
                record = event_dict.get("_record")
                capture = self.client._capture
                if record is None or event_dict.get("_from_structlog") is not False:
                    name, data = self._event(event_dict)
                    facts = (
                        _envelope.from_structlog(logger, method_name, event_dict)
                        if capture
                        else None
                    )
                    self.client._enqueue(name, data, None, facts)
                    _seen.note_event_dict(event_dict, logger)
                elif not _seen.recorded_record(record, "handler"):
                    # A plain logging record in a ProcessorFormatter's foreign_pre_chain.
                    name, data = self._event(event_dict)
                    facts = _envelope.from_record(record) if capture else None
                    self.client._enqueue(name, data, record.created, facts)
                    _seen.note_record(record, "processor")
            except Exception as error:  # noqa: BLE001 - logging must not break the app
                self.client._internal_error(error)
        if self.drop:
            raise structlog.DropEvent
        return event_dict

    def close(self) -> None:
        """Release an owned client (sends for at most ~2 s if it was the last user)."""
        if self._owns_client:
            self._owns_client = False
            _shared.release(self.client)

    def _event(self, event_dict: EventDict) -> Tuple[Any, Any]:
        data: Dict[str, Any] = dict(event_dict)
        message = data.pop("event", None)
        template = None
        if not _INTERNAL_KEYS.isdisjoint(data):
            record = data.pop("_record", None)
            if data.pop("_from_structlog", None) is False:
                template = getattr(record, "msg", None)
        exc_info = data.pop("exc_info", None)
        if exc_info is None and "exception" not in data:
            return self._plain(message, template, data)  # the common case
        error = _exception_of(exc_info)
        if error is not None:
            data.pop("exception", None)
            if message is not None:
                data["logMessage"] = message
            return self.exception_event_name, exception_data(error, data)
        rendered = data.get("exception")
        if isinstance(rendered, str) and rendered.strip():
            del data["exception"]
            if message is not None:
                data["logMessage"] = message
            return self.exception_event_name, _exception_from_text(rendered, data)
        return self._plain(message, template, data)

    @staticmethod
    def _plain(message: Any, template: Any, data: Dict[str, Any]) -> Tuple[Any, Any]:
        """A plain logging record (``template`` is its ``msg``) is named by its
        template, as ``TelemetryHandler`` does, so ``"disk %d%% full"`` groups
        however full the disk is; the formatted text goes in ``message``.
        """
        if isinstance(template, str):
            data["message"] = message
            return template, data
        return message, data


def _exception_of(exc_info: Any) -> Optional[BaseException]:
    if exc_info is None or exc_info is False:
        return None
    if isinstance(exc_info, BaseException):
        return exc_info
    if isinstance(exc_info, tuple) and len(exc_info) == 3:
        return exc_info[1] if isinstance(exc_info[1], BaseException) else None
    if exc_info is True:
        return sys.exc_info()[1]
    return None


def _exception_from_text(text: str, extra: Dict[str, Any]) -> Dict[str, Any]:
    """The exception shape from a formatted traceback (``format_exc_info``).

    The exception line is the first unindented line after the last
    ``Traceback`` header; its ``Type: message`` gives ``exceptionType`` and
    ``message`` (a message may span lines).
    """
    lines = text.rstrip("\n").split("\n")
    start = 0
    for index, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            start = index + 1
    while start < len(lines) - 1 and (not lines[start] or lines[start][:1].isspace()):
        start += 1
    exception_line = "\n".join(lines[start:]) if lines else ""
    match = _EXCEPTION_LINE.match(exception_line)
    data = dict(extra)
    data.pop("innerMessage", None)
    if match:
        data["message"] = (match.group(2) or "").strip()
        data["exceptionType"] = match.group(1).replace("builtins.", "", 1)
    else:
        data["message"] = exception_line.strip()
        data["exceptionType"] = "Exception"
    data["stackTrace"] = text
    return data
