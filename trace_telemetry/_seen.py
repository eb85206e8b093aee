"""Which log call this thread has just recorded, so no call is recorded twice.

A common structlog-on-logging setup has ``TelemetryProcessor`` in the chain
and a root ``TelemetryHandler``: without this, each structlog call would
become two events (the processor's, then the handler's for the record that
``wrap_for_formatter`` or ``render_to_log_kwargs`` hands to logging), and
each plain ``logging`` call two events when the processor also sits in a
``ProcessorFormatter``'s ``foreign_pre_chain``.

The processor notes the event dict it recorded; the handler skips a record
whose ``msg`` is that very dict (or its ``event`` string with the dict's
other keys as attributes, from the same logger). Whichever of the two sees
a plain ``logging`` record first records it and notes it; the other skips
it. Per thread, and only once a ``TelemetryProcessor`` exists (the handler
alone pays one global read). See docs/structlog.md.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, MutableMapping, Optional, Tuple

__all__ = ["note_event_dict", "note_record", "recorded_by_processor", "recorded_record"]

#: Set once a ``TelemetryProcessor`` is built; until then nothing is noted.
state = {"processors": False}
_MISSING = object()
_PASSED_APART = frozenset({"event", "exc_info", "stack_info", "stacklevel"})


class _Noted(threading.local):
    event_dict: Optional[MutableMapping[str, Any]] = None
    event: Any = None
    logger_name: Optional[str] = None
    record: Optional[Tuple[Any, float, str, int]] = None
    record_by: str = ""


_noted = _Noted()


def note_event_dict(event_dict: MutableMapping[str, Any], logger: Any) -> None:
    """The processor recorded ``event_dict`` (a structlog call) on this thread."""
    _noted.event_dict = event_dict
    _noted.event = event_dict.get("event", _MISSING)
    _noted.logger_name = getattr(logger, "name", None)


def recorded_by_processor(record: logging.LogRecord) -> bool:
    """True (once) if ``record`` carries the event dict the processor just recorded."""
    event_dict = _noted.event_dict
    if event_dict is None:
        return False
    message = record.msg
    if message is not event_dict:
        if message is not _noted.event or _noted.logger_name != record.name:
            return False
        attributes = record.__dict__
        for key, value in event_dict.items():  # render_to_log_kwargs: the rest is extra=
            if key not in _PASSED_APART and attributes.get(key, _MISSING) is not value:
                return False
    _noted.event_dict = None
    _noted.event = None
    return True


def note_record(record: logging.LogRecord, by: str) -> None:
    """A plain ``logging`` record was recorded ``by`` "handler" or "processor"."""
    _noted.record = _identity(record)
    _noted.record_by = by


def recorded_record(record: logging.LogRecord, by: str) -> bool:
    """True if ``record``, or the copy ``ProcessorFormatter`` made of it, was recorded ``by``.

    Two handlers both recording a record is the application's choice (two
    queues, say); only the handler/processor pair is deduplicated.
    """
    noted = _noted.record
    if noted is None or _noted.record_by != by:
        return False
    return noted == _identity(record) and noted[0] is record.msg


def _identity(record: logging.LogRecord) -> Tuple[Any, float, str, int]:
    """What a copy shares with its record. Taken at once: ``ProcessorFormatter``
    later replaces its copy's ``msg`` with the rendered text."""
    return (record.msg, record.created, record.name, record.lineno)
