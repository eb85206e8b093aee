"""The argument forms of ``track()`` and the names events may be given."""

from __future__ import annotations

from typing import Any, Dict

__all__ = ["event_name", "parse_track_arguments"]

_MISSING: Any = object()


def parse_track_arguments(args: Any, kwargs: Dict[str, Any]) -> Any:
    """The ``data`` of ``track(name, ...)`` beyond the one-argument form.

    Raises:
        TypeError: an impossible combination (the client counts it as a
            ``bad_arguments`` drop; see docs/api.md).
    """
    if "data" in kwargs:
        if args or len(kwargs) > 1:
            raise TypeError("track() takes data or property_name/property_value, not both")
        return kwargs["data"]
    unknown = set(kwargs) - {"property_name", "property_value"}
    if unknown:
        raise TypeError(f"track() got unexpected keyword arguments {sorted(unknown)}")
    values = list(args)
    if len(values) > 2:
        raise TypeError(f"track() takes at most 3 arguments, got {len(values) + 1}")
    if len(values) < 1:
        values.append(kwargs.get("property_name", _MISSING))
    if len(values) < 2:
        values.append(kwargs.get("property_value", _MISSING))
    property_name, property_value = values
    if property_name is _MISSING:
        raise TypeError("track() got property_value without property_name")
    if property_value is _MISSING:
        property_value = None
    return {property_name: property_value}


def event_name(name: Any) -> str:
    """A name that is not a str, as a str (``None`` becomes ``""``)."""
    if name is None:
        return ""
    try:
        return str(name)
    except Exception:  # noqa: BLE001
        return repr(type(name))
