"""Turning log records into event ``data`` with python-json-logger.

python-json-logger already knows how to pick a record's fields (``fmt``,
``rename_fields``, ``static_fields``, extras); we reuse its ``add_fields`` and
stop before it serializes, so nothing is dumped to a string and parsed back.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, Optional, Tuple

try:  # python-json-logger >= 3
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter
except ImportError:  # pragma: no cover - python-json-logger 2.x
    from pythonjsonlogger.jsonlogger import (  # type: ignore[attr-defined,no-redef,unused-ignore]
        RESERVED_ATTRS,
        JsonFormatter,
    )

__all__ = ["default_fields", "default_formatter", "is_json_formatter", "record_fields"]

#: Record attributes that are not "extras" (python-json-logger's rule, plus
#: ``taskName`` which Python 3.12 added).
_NOT_EXTRA = frozenset(RESERVED_ATTRS) | {"taskName"}
#: How many attributes ``LogRecord.__init__`` sets (extras come after them).
_INIT_ATTRIBUTES = len(logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__)
#: Which names after those are extras, per sequence of names (bounded).
_extras_by_names: Dict[Tuple[str, ...], Tuple[str, ...]] = {}
_MAX_REMEMBERED = 512


def default_fields(record: logging.LogRecord) -> Dict[str, Any]:
    """What :func:`default_formatter` produces, computed directly.

    The same fields in the same order (``message``, ``level``, ``logger``,
    then every extra), about three times faster than going through
    ``add_fields``; a test keeps the two identical. Records with a dict
    ``msg`` or ``stack_info`` take the formatter's path instead.

    ``LogRecord.__init__`` always sets the same attributes first, so for a
    plain ``LogRecord`` only the attributes after those can be extras, and
    which of them are extras is remembered per sequence of names: a call
    site passes the same ``extra=`` keys every time.
    """
    fields: Dict[str, Any] = {
        "message": record.getMessage(),
        "level": record.levelname,
        "logger": record.name,
    }
    attributes = record.__dict__
    if type(record) is not logging.LogRecord:
        for key, value in attributes.items():
            if _is_extra(key):
                fields[key] = value
    elif len(attributes) > _INIT_ATTRIBUTES:
        names = tuple(attributes)[_INIT_ATTRIBUTES:]
        extras = _extras_by_names.get(names)
        if extras is None:
            extras = tuple(filter(_is_extra, names))
            if len(_extras_by_names) >= _MAX_REMEMBERED:
                _extras_by_names.clear()
            _extras_by_names[names] = extras
        for key in extras:
            fields[key] = attributes[key]
    return fields


def _is_extra(key: str) -> bool:
    """python-json-logger's rule: not a record attribute, not private."""
    return key not in _NOT_EXTRA and key[:1] != "_"


def default_formatter() -> logging.Formatter:
    """``message``, ``level`` and ``logger`` plus every ``extra=`` field."""
    formatter: logging.Formatter = JsonFormatter(
        "%(message)s %(levelname)s %(name)s",
        rename_fields={"levelname": "level", "name": "logger"},
    )
    return formatter


def is_json_formatter(formatter: Optional[logging.Formatter]) -> bool:
    """True for python-json-logger formatters (any version)."""
    return (
        formatter is not None
        and hasattr(formatter, "add_fields")
        and hasattr(formatter, "process_log_record")
    )


def record_fields(formatter: Any, record: logging.LogRecord) -> Dict[str, Any]:
    """The fields ``formatter`` would log for ``record``, as a dict.

    Mirrors python-json-logger's ``format()`` up to, not including, its
    serialization. A dict ``record.msg`` is copied, never changed. The
    formatted exception is left out: exception events carry ``stackTrace``.
    """
    message_dict: Dict[str, Any] = {}
    if isinstance(record.msg, dict):
        message_dict = dict(record.msg)
        record.message = ""
    else:
        record.message = record.getMessage()
    if "asctime" in getattr(formatter, "_required_fields", ()):
        record.asctime = formatter.formatTime(record, formatter.datefmt)
    if record.stack_info and not message_dict.get("stack_info"):
        message_dict["stack_info"] = formatter.formatStack(record.stack_info)
    fields: Dict[str, Any] = {}
    formatter.add_fields(fields, record, message_dict)
    processed = formatter.process_log_record(fields)
    return processed if isinstance(processed, dict) else fields
