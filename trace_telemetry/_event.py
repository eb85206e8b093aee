"""Build events in the wire shape of ``docs/contract.md``.

Everything here sits on ``track()``'s hot path, so ids and timestamps avoid
the comparatively slow ``uuid`` and ``datetime`` objects.
"""

from __future__ import annotations

import os
import time
import traceback
from typing import Any, Dict, List, Mapping, Optional, Tuple

__all__ = [
    "EVENT_KEYS",
    "exception_data",
    "format_timestamp",
    "new_event_id",
    "qualified_name",
]

#: The ten keys of an event, in the order the .NET client writes them.
EVENT_KEYS = (
    "id",
    "name",
    "timestampUtc",
    "data",
    "applicationName",
    "applicationVersion",
    "machineName",
    "osDescription",
    "ipAddress",
    "countryCode",
)

#: Ids made per ``os.urandom`` call: one system call and one hex conversion
#: serve this many events.
_IDS_PER_DRAW = 256
#: Byte maps that stamp the UUID4 version (byte 6) and variant (byte 8).
_VERSION_TABLE = bytes((value & 0x0F) | 0x40 for value in range(256))
_VARIANT_TABLE = bytes((value & 0x3F) | 0x80 for value in range(256))
_spare_ids: List[str] = []


def new_event_id() -> str:
    """A random UUID4 as 32 lowercase hex digits (.NET ``Guid.ToString("N")``).

    Same bits as ``uuid.uuid4().hex`` (122 random bits from ``os.urandom``)
    at a tenth of the cost: ids are drawn 256 at a time and handed out with
    a ``list.pop``, which is atomic under the GIL. A forked child drops the
    ids it inherited, so parent and child never share one.
    """
    try:
        return _spare_ids.pop()
    except IndexError:
        ids = _draw_ids()
        first = ids.pop()
        _spare_ids.extend(ids)
        return first


def _draw_ids() -> List[str]:
    raw = bytearray(os.urandom(16 * _IDS_PER_DRAW))
    raw[6::16] = raw[6::16].translate(_VERSION_TABLE)
    raw[8::16] = raw[8::16].translate(_VARIANT_TABLE)
    text = raw.hex()
    return [text[start : start + 32] for start in range(0, len(text), 32)]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_spare_ids.clear)


_second_cache: Tuple[int, str] = (-1, "")
#: "000" to "999": two lookups format the microseconds without a format spec.
_THREE_DIGITS = tuple(f"{number:03d}" for number in range(1000))


def format_timestamp(epoch_seconds: Optional[float] = None) -> str:
    """Format a moment as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` in UTC.

    Args:
        epoch_seconds: seconds since the epoch (e.g. ``LogRecord.created``);
            ``None`` means now.

    The date part is cached per second: formatting it is most of the cost.
    The microseconds come from a table of three-digit strings, which halves
    what is left.
    """
    global _second_cache  # noqa: PLW0603 - a tuple swap is atomic under the GIL
    if epoch_seconds is None:
        micros = time.time_ns() // 1000
    else:
        try:
            micros = round(epoch_seconds * 1_000_000)
        except (TypeError, ValueError, OverflowError):
            micros = time.time_ns() // 1000
    second, fraction = divmod(micros, 1_000_000)
    cached_second, prefix = _second_cache
    if second != cached_second:
        try:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        except (OverflowError, OSError, ValueError):
            return format_timestamp(None)
        _second_cache = (second, prefix)
    milli, micro = divmod(fraction, 1000)
    return f"{prefix}.{_THREE_DIGITS[milli]}{_THREE_DIGITS[micro]}Z"


def qualified_name(cls: type) -> str:
    """``module.QualName`` for an exception class; just the name for builtins."""
    name = getattr(cls, "__qualname__", None) or getattr(cls, "__name__", "Exception")
    module = getattr(cls, "__module__", None)
    if not module or module == "builtins":
        return str(name)
    return f"{module}.{name}"


def exception_data(
    exc: Any, extra_data: Any = None, stack_trace: Optional[str] = None
) -> Dict[str, Any]:
    """The ``data`` of an exception event (``docs/contract.md``, "Exception events").

    Args:
        exc: the exception; anything else is tolerated and described.
        extra_data: a mapping merged under the exception keys, or any other
            value stored as ``extra``.
        stack_trace: an already formatted traceback to use instead of
            formatting ``exc`` (structlog's ``format_exc_info`` output).
    """
    data: Dict[str, Any] = {}
    if isinstance(extra_data, Mapping):
        try:
            data.update(extra_data)
        except Exception:  # noqa: BLE001 - hostile mapping
            data["extra"] = extra_data
    elif extra_data is not None:
        data["extra"] = extra_data
    data.pop("innerMessage", None)
    data["message"] = _text(exc)
    if stack_trace is None:
        stack_trace = _format_traceback(exc)
    data["stackTrace"] = stack_trace
    data["exceptionType"] = qualified_name(type(exc))
    if isinstance(exc, BaseException):
        inner = exc.__cause__
        if inner is None and not exc.__suppress_context__:
            inner = exc.__context__
        if inner is not None:
            data["innerMessage"] = _text(inner)
    return data


def _format_traceback(exc: Any) -> str:
    if not isinstance(exc, BaseException):
        return ""
    try:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    except Exception:  # noqa: BLE001 - a hostile __str__ inside the chain
        return f"{qualified_name(type(exc))}: <traceback unavailable>"


def _text(value: Any) -> str:
    try:
        return str(value)
    except Exception:  # noqa: BLE001
        try:
            return repr(value)
        except Exception:  # noqa: BLE001
            return f"<unprintable {type(value).__name__}>"
