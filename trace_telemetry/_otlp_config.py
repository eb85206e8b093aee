"""The OTLP options and the ``OTEL_*`` environment variables (docs/otlp.md "Configuration").

An option given to :class:`~trace_telemetry.TelemetryOptions` always wins;
an option left at its default is read from the environment only when
``protocol="otlp"``, so an app on the default protocol is unaffected by
variables set for some other OpenTelemetry SDK in the same process.
"""

from __future__ import annotations

import math
import os
import urllib.parse
from typing import Any, Dict, Iterator, Mapping, Optional

__all__ = [
    "DEFAULT_ENDPOINT",
    "PROTOCOLS",
    "UNSET_TIMEOUT",
    "UNSET_URL",
    "check_headers",
    "check_resource_attributes",
    "resolve",
]

PROTOCOLS = ("tracetelemetry", "otlp")
ENCODINGS = ("json", "protobuf")
COMPRESSIONS = ("none", "gzip")
DEFAULT_ENDPOINT = "http://localhost:4318/v1/logs"
_ENV_PROTOCOLS = {"http/json": "json", "http/protobuf": "protobuf"}
#: Headers the protocol owns; ``headers`` may not set them.
_RESERVED_HEADERS = frozenset(
    {"content-type", "content-encoding", "content-length", "transfer-encoding", "host"}
)
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class _UnsetText(str):
    """A default ``""`` that remembers it was not given (``""`` means "send nothing")."""

    __slots__ = ()


class _UnsetNumber(float):
    """A default number that remembers it was not given."""

    __slots__ = ()


class FrozenMap(Mapping[str, Any]):
    """A read-only, hashable mapping: options stay frozen and hashable."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, Any]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(
            tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in self._items.items())
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Mapping) and self._items == dict(other)

    def __repr__(self) -> str:
        return repr(self._items)


UNSET_URL: Any = _UnsetText("")
UNSET_TIMEOUT: Any = _UnsetNumber(10.0)


def _env(name: str) -> Optional[str]:
    """``OTEL_EXPORTER_OTLP_LOGS_<name>``, else ``OTEL_EXPORTER_OTLP_<name>``; blank is unset."""
    for key in (f"OTEL_EXPORTER_OTLP_LOGS_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        value = os.environ.get(key, "").strip()
        if value:
            return value
    return None


def resolve(options: Any) -> Dict[str, Any]:
    """The values to store for the sentinel defaults of ``options``; raises ValueError.

    Returns a dict of field name -> resolved value.
    """
    protocol = options.protocol
    if protocol not in PROTOCOLS:
        msg = f"protocol must be one of {', '.join(map(repr, PROTOCOLS))}, got {protocol!r}"
        raise ValueError(msg)
    otlp = protocol == "otlp"
    out: Dict[str, Any] = {}
    out["endpoint_url"] = _endpoint(options.endpoint_url, otlp)
    out["timeout_seconds"] = _timeout(options.timeout_seconds, otlp)
    out["otlp_encoding"] = _choice(
        "otlp_encoding", options.otlp_encoding, ENCODINGS, (otlp and _env_encoding()) or "json"
    )
    if otlp and out["otlp_encoding"] == "protobuf":
        from . import _otlp_proto  # noqa: PLC0415 - only when chosen

        _otlp_proto.load()
    out["compression"] = _compression(options.compression, otlp)
    headers = options.headers
    if headers is None:
        text = _env("HEADERS") if otlp else None
        headers = _parse_pairs(text, "OTEL_EXPORTER_OTLP_HEADERS") if text else {}
    out["headers"] = FrozenMap(check_headers(headers))
    resource: Dict[str, Any] = {}
    if otlp:
        text = os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").strip()
        if text:
            resource.update(_parse_pairs(text, "OTEL_RESOURCE_ATTRIBUTES"))
    if options.resource_attributes is not None:
        resource.update(check_resource_attributes(options.resource_attributes))
    out["resource_attributes"] = FrozenMap(resource)
    name = options.application_name
    if otlp and isinstance(name, str) and not name.strip():
        service = os.environ.get("OTEL_SERVICE_NAME", "").strip()
        chosen = service or resource.get("service.name")
        out["application_name"] = chosen if isinstance(chosen, str) else ""
    out["sdk_disabled"] = otlp and os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    return out


def _endpoint(value: Any, otlp: bool) -> Any:
    if value is not UNSET_URL:
        return value
    if not otlp:
        return ""
    for name, suffix in (
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", ""),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "/v1/logs"),
    ):
        url = os.environ.get(name, "").strip()
        if url:
            if not url.lower().startswith(("http://", "https://")):
                msg = f"{name} must be an http(s):// URL, got {url!r} (endpoint_url not given)"
                raise ValueError(msg)
            return url.rstrip("/") + suffix if suffix else url
    return DEFAULT_ENDPOINT


def _compression(value: Any, otlp: bool) -> Any:
    """The ``compression`` option, fed by ``OTEL_*`` when not given and OTLP.

    One compression for both protocols: the option and its validation live
    in ``options.py``, gzip in the transport (docs/configuration.md).
    """
    if value is not None or not otlp:
        return value
    text = _env("COMPRESSION")
    if text is None:
        return None
    text = text.lower()
    if text not in COMPRESSIONS:
        msg = f"OTEL_EXPORTER_OTLP_COMPRESSION must be gzip or none, got {text!r}"
        raise ValueError(msg)
    return None if text == "none" else text


def _timeout(value: Any, otlp: bool) -> Any:
    if not isinstance(value, _UnsetNumber):
        return value
    text = _env("TIMEOUT") if otlp else None
    if text is None:
        return 10.0
    try:
        millis = float(text)
    except ValueError:
        millis = -1.0
    if not millis > 0 or millis == float("inf"):
        msg = f"OTEL_EXPORTER_OTLP_TIMEOUT must be a positive number of milliseconds, got {text!r}"
        raise ValueError(msg)
    return millis / 1000.0


def _env_encoding() -> Optional[str]:
    text = _env("PROTOCOL")
    if text is None:
        return None
    encoding = _ENV_PROTOCOLS.get(text.lower())
    if encoding is None:
        msg = (
            f"OTEL_EXPORTER_OTLP_PROTOCOL must be http/json or http/protobuf, got {text!r}"
            " (grpc is not supported: use the Collector's OTLP/HTTP receiver)"
        )
        raise ValueError(msg)
    return encoding


def _choice(name: str, value: Any, allowed: Any, default: str) -> str:
    if value is None:
        return default
    if value not in allowed:
        msg = f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}"
        raise ValueError(msg)
    return str(value)


def _parse_pairs(text: str, source: str) -> Dict[str, str]:
    """W3C-baggage-like ``key=value,key2=value2`` with percent-decoding."""
    pairs: Dict[str, str] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = urllib.parse.unquote(key.strip())
        if not sep or not key:
            msg = f"{source} must be key=value pairs separated by commas (value not shown)"
            raise ValueError(msg)
        pairs[key] = urllib.parse.unquote(value.strip())
    return pairs


def check_headers(headers: Any) -> Dict[str, str]:
    """Validated extra HTTP headers; values are never echoed in errors."""
    if not isinstance(headers, Mapping):
        msg = f"headers must be a mapping of str to str, got a {type(headers).__name__}"
        raise ValueError(msg)
    out: Dict[str, str] = {}
    for name, value in headers.items():
        if not isinstance(name, str) or not name or not set(name) <= _TOKEN:
            msg = f"headers: {name!r} is not a valid header name"
            raise ValueError(msg)
        if name.lower() in _RESERVED_HEADERS:
            msg = f"headers: {name!r} is set by the protocol and cannot be given"
            raise ValueError(msg)
        if not isinstance(value, str) or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            msg = (
                f"headers: the value of {name!r} must be a str without control "
                "characters (value not shown)"
            )
            raise ValueError(msg)
        out[name] = value
    return out


def check_resource_attributes(attributes: Any) -> Dict[str, Any]:
    """Validated resource attributes: str keys; str, bool, int, float or lists of them."""
    if not isinstance(attributes, Mapping):
        msg = f"resource_attributes must be a mapping, got {attributes!r}"
        raise ValueError(msg)
    out: Dict[str, Any] = {}
    for key, value in attributes.items():
        if not isinstance(key, str) or not key:
            msg = f"resource_attributes: keys must be non-empty str, got {key!r}"
            raise ValueError(msg)
        items = value if isinstance(value, (list, tuple)) else [value]
        if not all(_scalar(item) for item in items):
            msg = (
                f"resource_attributes[{key!r}] must be a str, bool, int, float "
                f"or a list of them, got {value!r}"
            )
            raise ValueError(msg)
        out[key] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def _scalar(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return bool(-(2**63) <= value < 2**63)
    return isinstance(value, (str, bool))
