"""Turn any Python value into strict JSON (RFC 8259) without ever raising.

The receiving API parses with System.Text.Json, which rejects ``NaN``,
``Infinity`` and lone UTF-16 surrogates, so the stdlib encoder alone is not
enough. The common case (plain dicts of str/int/float/bool) is encoded by the
C encoder directly; only when that fails do we walk the value and repair it.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import datetime
import enum
import json
import math
import sys
from typing import TYPE_CHECKING, Any, Callable, Dict, Set

if TYPE_CHECKING:
    import decimal

__all__ = ["MAX_DEPTH", "encode", "encode_event", "to_jsonable"]

#: Containers nested deeper than this are replaced by a placeholder string.
#: System.Text.Json refuses documents deeper than 64 by default, and a batch
#: adds two levels (the array and the event) above an event's ``data``.
MAX_DEPTH = 60

CIRCULAR = "<circular reference>"
TOO_DEEP = "<max depth exceeded>"

_fast_encode: Callable[[Any], str] = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":")
).encode
_encode_text: Callable[[str], str] = getattr(json.encoder, "c_encode_basestring", None) or (
    json.encoder.encode_basestring
)


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


#: The C encoder behind ``_fast_encode``, made once. ``JSONEncoder.encode``
#: builds a new one on every call, which is a third of its cost for a small
#: dict. Its circular-reference ``markers`` outlive a call, so a failure
#: clears them; a stale entry could only cause a false "circular" error,
#: which takes the repairing path and still gives the right JSON.
_markers: Dict[int, Any] = {}
_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_encode_chunks: Callable[[Any, int], Any] = (
    _make_encoder(_markers, _refuse, _encode_text, None, ":", ",", False, False, False)
    if _make_encoder is not None
    else lambda value, _level: (_fast_encode(value),)
)


def encode_event(event_id: str, name: Any, timestamp: str, data: Any, tail: str) -> bytes:
    """The queue line of an event, or ``b""`` when the fast path cannot be used.

    Only ``name`` and ``data`` vary per event; ``tail`` is the pre-encoded
    rest of the envelope (``,"applicationName":...}\n``). Falls back (empty
    result) on anything :func:`encode` would have to repair.
    """
    if type(name) is not str:
        return b""
    try:
        body = "".join(_encode_chunks(data, 0))
        if body.count("[") + body.count("{") > MAX_DEPTH - 2 and not _shallow(data, 2):
            return b""
        return (
            f'{{"id":"{event_id}","name":{_encode_text(name)},'
            f'"timestampUtc":"{timestamp}","data":{body}{tail}'
        ).encode()
    except Exception:  # noqa: BLE001 - the caller takes the repairing path
        _markers.clear()
        return b""


def encode(value: Any) -> bytes:
    """Encode ``value`` as compact, strict UTF-8 JSON.

    Tries the C encoder first; anything it refuses (unknown types, ``NaN``,
    cycles, lone surrogates, absurd depth) goes through :func:`to_jsonable`.
    """
    try:
        raw = _fast_encode(value).encode("utf-8")
        # Few brackets cannot nest deeply; only then is the exact walk needed.
        if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH or _shallow(value):
            return raw
    except Exception:  # noqa: BLE001, S110 - any failure means "repair the value"
        pass
    try:
        return _fast_encode(to_jsonable(value)).encode("utf-8")
    except Exception:  # noqa: BLE001 - to_jsonable output should always encode
        return _fast_encode(_safe_text(value)).encode("utf-8")


def _shallow(value: Any, start: int = 0) -> bool:
    """True if no container in ``value`` sits deeper than :data:`MAX_DEPTH`.

    ``start`` is the depth of ``value`` itself (``data`` sits inside the event).
    """
    stack = [(value, start)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if depth >= MAX_DEPTH:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def to_jsonable(value: Any) -> Any:
    """Return a copy of ``value`` made only of JSON-safe types.

    Never raises. See ``docs/contract.md`` ("Making values JSON-safe") for the rules.
    """
    return _convert(value, 0, set())


def _convert(value: Any, depth: int, active: Set[int]) -> Any:  # noqa: PLR0911, PLR0912
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is str:
        return clean_str(value)
    if kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return _convert(value.value, depth, active)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return clean_str(str.__str__(value))
    if depth >= MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, (dict, collections.abc.Mapping)):
        return _convert_mapping(value, depth, active)
    if isinstance(value, (list, tuple, set, frozenset, collections.deque)):
        return _convert_sequence(value, depth, active)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
        return _convert_mapping(fields, depth, active, owner=value)
    return _convert_scalar(value)


def _convert_mapping(value: Any, depth: int, active: Set[int], owner: Any = None) -> Any:
    marker = id(owner if owner is not None else value)
    if marker in active:
        return CIRCULAR
    active.add(marker)
    try:
        out: Dict[str, Any] = {}
        for key, item in list(value.items()):
            out[_convert_key(key)] = _convert(item, depth + 1, active)
        return out
    except Exception:  # noqa: BLE001 - a hostile Mapping whose items() raises
        return _safe_text(value)
    finally:
        active.discard(marker)


def _convert_sequence(value: Any, depth: int, active: Set[int]) -> Any:
    marker = id(value)
    if marker in active:
        return CIRCULAR
    active.add(marker)
    try:
        items = list(value)
        if isinstance(value, (set, frozenset)):
            with contextlib.suppress(TypeError):
                items.sort()
        return [_convert(item, depth + 1, active) for item in items]
    finally:
        active.discard(marker)


def _convert_key(key: Any) -> str:
    if isinstance(key, str):
        return clean_str(str.__str__(key))
    if key is None:
        return "null"
    if key is True:
        return "true"
    if key is False:
        return "false"
    converted = _convert_scalar(key) if not isinstance(key, (int, float)) else key
    if isinstance(converted, str):
        return converted
    return clean_str(repr(converted) if isinstance(converted, float) else str(converted))


def _convert_scalar(value: Any) -> Any:  # noqa: PLR0911
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    # A Decimal, UUID or Path can only exist if its module was imported: look
    # there instead of importing them ourselves (import time matters).
    decimal_module = sys.modules.get("decimal")
    if decimal_module is not None and isinstance(value, decimal_module.Decimal):
        return _convert_decimal(value)
    uuid_module = sys.modules.get("uuid")
    if uuid_module is not None and isinstance(value, uuid_module.UUID):
        return str(value)
    pathlib_module = sys.modules.get("pathlib")
    if pathlib_module is not None and isinstance(value, pathlib_module.PurePath):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _convert_bytes(bytes(value))
    if isinstance(value, complex):
        return str(value)
    return _safe_text(value)


def _convert_decimal(value: decimal.Decimal) -> Any:
    if not value.is_finite():
        return None
    as_float = float(value)
    if math.isfinite(as_float) and type(value)(repr(as_float)) == value:
        return as_float
    return str(value)


def _convert_bytes(value: bytes) -> str:
    try:
        return clean_str(value.decode("utf-8"))
    except UnicodeDecodeError:
        import base64  # noqa: PLC0415 - rare

        return "base64:" + base64.b64encode(value).decode("ascii")


def clean_str(text: str) -> str:
    """Replace lone surrogates with U+FFFD; keep valid surrogate pairs joined."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _safe_text(value: Any) -> str:
    """``str(value)``, else ``repr(value)``, else a placeholder; never raises."""
    for render in (str, repr):
        try:
            text = render(value)
            if isinstance(text, str):
                return clean_str(str.__str__(text))
        except Exception:  # noqa: BLE001, S112 - hostile __str__/__repr__
            continue
    try:
        name = type(value).__name__
    except Exception:  # noqa: BLE001
        name = "object"
    return f"<unrepresentable {name}>"
