"""Configuration of a :class:`~trace_telemetry.TelemetryClient`."""

from __future__ import annotations

import dataclasses
import math
import os
import urllib.parse
from typing import Any, Callable, Dict, Mapping, Optional, Union

from . import _otlp_config

__all__ = ["BeforeSend", "TelemetryOptions"]

#: The type of :attr:`TelemetryOptions.before_send`.
BeforeSend = Callable[[Dict[str, Any]], Optional[Dict[str, Any]]]

MIB = 1024 * 1024
#: The smallest ``max_event_bytes``: room for the envelope and a short preview.
MIN_EVENT_BYTES = 1024
#: The largest ``max_in_flight``: more only adds load on the server.
MAX_IN_FLIGHT = 64
#: The values ``compression`` accepts.
COMPRESSIONS = (None, "gzip")


@dataclasses.dataclass(frozen=True, repr=False)
class TelemetryOptions:
    """Everything a client needs to know, validated when it is built.

    Invalid values raise :class:`ValueError` naming the option and the value
    (the API key is never echoed). The object is frozen so that a validated
    configuration stays valid; use :func:`dataclasses.replace` to derive one.

    Attributes:
        endpoint_url: where batches are POSTed; ``""`` keeps events queued.
        api_key: sent as ``X-API-Key`` when not empty. Never logged or shown.
        queue_path: the NDJSON queue file; parent folders are created.
        batch_size: the most events in one request.
        flush_interval_seconds: the sender's period; values below 1 become 1.
        application_name: stored in every event (stripped).
        application_version: stored in every event (stripped).
        enable_country_lookup: reserved, like the .NET client; ``countryCode``
            is always ``""``.
        max_queue_bytes: cap on the queue file's size; past it the oldest
            events are dropped and counted. ``0`` means unbounded.
        max_event_bytes: an event whose line is larger has its ``data`` cut
            down to a truncated string.
        timeout_seconds: per-request connect and read timeout.
        max_backoff_seconds: the longest wait between failed attempts, also
            the cap on a server's ``Retry-After``.
        before_send: called with each event dict before it is queued; return
            it, a changed copy, or ``None`` to drop it. If it raises, the
            event is dropped and counted, never queued unscrubbed.
        shutdown_timeout_seconds: at interpreter exit, a started client
            sends what it can for at most this long; one budget for the
            whole exit, shared by every client and handler. ``0`` turns
            the exit send off.
        max_in_flight: the most requests outstanding at once while a backlog
            holds several batches (1 to 64); ``1`` sends one batch at a
            time. Batches still leave the queue in order (docs/delivery.md).
        protocol: ``"tracetelemetry"`` (the contract, default) or ``"otlp"``
            (OTLP/HTTP logs, see docs/otlp.md). With ``"otlp"``, options left
            at their defaults are read from the ``OTEL_*`` variables.
        otlp_encoding: ``"json"`` (default) or ``"protobuf"`` (needs the
            ``trace-telemetry[otlp]`` extra).
        headers: extra HTTP headers for every request (e.g.
            ``Authorization``), both protocols. Never logged or shown;
            ``api_key`` wins over an ``X-API-Key`` given here.
        resource_attributes: extra OpenTelemetry resource attributes (OTLP),
            merged over ``OTEL_RESOURCE_ATTRIBUTES``.
        compression: ``"gzip"`` compresses request bodies
            (``Content-Encoding: gzip``), both protocols; ``None`` (the
            default, also spelled ``"none"``) sends them as is, since not
            every server accepts compressed bodies. With ``"otlp"`` and not
            given, ``OTEL_EXPORTER_OTLP_(LOGS_)COMPRESSION`` is read.

    .. versionadded:: 0.1.0
       ``max_queue_bytes``, ``max_event_bytes``, ``timeout_seconds``,
       ``max_backoff_seconds`` and ``before_send`` (not in the .NET client).

    .. versionadded:: 0.2.0
       ``max_in_flight``, ``compression``, ``protocol``, ``otlp_encoding``,
       ``headers`` and ``resource_attributes``.
    """

    endpoint_url: str = _otlp_config.UNSET_URL
    api_key: str = ""
    queue_path: Union[str, "os.PathLike[str]"] = "telemetry-queue.ndjson"
    batch_size: int = 20
    flush_interval_seconds: float = 10
    application_name: str = ""
    application_version: str = ""
    enable_country_lookup: bool = False
    max_queue_bytes: int = 64 * MIB
    max_event_bytes: int = 1 * MIB
    timeout_seconds: float = _otlp_config.UNSET_TIMEOUT
    max_backoff_seconds: float = 300
    before_send: Optional[BeforeSend] = None
    shutdown_timeout_seconds: float = 2
    max_in_flight: int = 4
    # -- OTLP and headers (docs/otlp.md); resolved from OTEL_* when not given --
    protocol: str = "tracetelemetry"
    otlp_encoding: Optional[str] = None
    headers: Optional[Mapping[str, str]] = None
    resource_attributes: Optional[Mapping[str, Any]] = None
    compression: Optional[str] = None
    #: ``OTEL_SDK_DISABLED=true`` with ``protocol="otlp"``: record and send nothing.
    sdk_disabled: bool = dataclasses.field(default=False, init=False)

    def __post_init__(self) -> None:
        for name, value in _otlp_config.resolve(self).items():
            object.__setattr__(self, name, value)
        _check_type("endpoint_url", self.endpoint_url, str)
        _check_type("api_key", self.api_key, str)
        _check_type("application_name", self.application_name, str)
        _check_type("application_version", self.application_version, str)
        _check_type("enable_country_lookup", self.enable_country_lookup, bool)
        _check_endpoint(self.endpoint_url)
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in self.api_key):
            msg = "api_key must not contain control characters (value not shown)"
            raise ValueError(msg)
        object.__setattr__(self, "queue_path", _check_path(self.queue_path))
        object.__setattr__(self, "application_name", self.application_name.strip())
        object.__setattr__(self, "application_version", self.application_version.strip())
        _check_int("batch_size", self.batch_size, minimum=1)
        _check_int("max_queue_bytes", self.max_queue_bytes, minimum=0)
        _check_int("max_event_bytes", self.max_event_bytes, minimum=MIN_EVENT_BYTES)
        interval = _check_number("flush_interval_seconds", self.flush_interval_seconds)
        object.__setattr__(self, "flush_interval_seconds", max(1.0, interval))
        timeout = _check_number("timeout_seconds", self.timeout_seconds)
        if timeout <= 0:
            msg = f"timeout_seconds must be > 0, got {self.timeout_seconds!r}"
            raise ValueError(msg)
        backoff = _check_number("max_backoff_seconds", self.max_backoff_seconds)
        if backoff <= 0:
            msg = f"max_backoff_seconds must be > 0, got {self.max_backoff_seconds!r}"
            raise ValueError(msg)
        shutdown = _check_number("shutdown_timeout_seconds", self.shutdown_timeout_seconds)
        if shutdown < 0:
            msg = f"shutdown_timeout_seconds must be >= 0, got {self.shutdown_timeout_seconds!r}"
            raise ValueError(msg)
        object.__setattr__(self, "shutdown_timeout_seconds", shutdown)
        _check_int("max_in_flight", self.max_in_flight, minimum=1)
        if self.max_in_flight > MAX_IN_FLIGHT:
            msg = f"max_in_flight must be <= {MAX_IN_FLIGHT}, got {self.max_in_flight!r}"
            raise ValueError(msg)
        if self.compression in ("", "none"):
            object.__setattr__(self, "compression", None)
        if self.compression not in COMPRESSIONS:
            msg = f"compression must be None, 'none' or 'gzip', got {self.compression!r}"
            raise ValueError(msg)
        if self.before_send is not None and not callable(self.before_send):
            msg = f"before_send must be callable or None, got {self.before_send!r}"
            raise ValueError(msg)

    def __repr__(self) -> str:
        shown = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "api_key":
                shown.append(f"api_key={'***' if value else ''!r}")
            elif field.name == "headers":
                shown.append(f"headers={ {name: '***' for name in value or {}}!r}")
            else:
                shown.append(f"{field.name}={value!r}")
        return f"TelemetryOptions({', '.join(shown)})"

    __str__ = __repr__


def _check_type(name: str, value: Any, expected: type) -> None:
    if not isinstance(value, expected):
        msg = f"{name} must be a {expected.__name__}, got {value!r}"
        if name == "api_key":
            msg = f"api_key must be a str, got a {type(value).__name__}"
        raise ValueError(msg)


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{name} must be an int, got {value!r}"
        raise ValueError(msg)
    if value < minimum:
        msg = f"{name} must be >= {minimum}, got {value!r}"
        raise ValueError(msg)


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        msg = f"{name} must be a number, got {value!r}"
        raise ValueError(msg)
    if not math.isfinite(value):
        msg = f"{name} must be finite, got {value!r}"
        raise ValueError(msg)
    return float(value)


def _check_endpoint(url: str) -> None:
    if url == "":
        return
    problem = ""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as error:
        problem = str(error)
    else:
        if parts.scheme not in ("http", "https"):
            problem = "the scheme must be http or https"
        elif not parts.hostname:
            problem = "no host"
        elif any(ch.isspace() or ord(ch) < 32 for ch in url):
            problem = "it contains whitespace or control characters"
    if problem:
        msg = f"endpoint_url must be empty or an http(s):// URL, got {url!r} ({problem})"
        raise ValueError(msg)


def _check_path(path: Any) -> str:
    try:
        text = os.fspath(path)
    except TypeError:
        text = None
    if not isinstance(text, str) or not text or "\x00" in text:
        msg = f"queue_path must be a non-empty path, got {path!r}"
        raise ValueError(msg)
    return text
